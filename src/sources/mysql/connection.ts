/**
 * MySQL / MariaDB URLs and sessions: `mysql://user[:password]@host[:port]/db` or `mariadb://…`
 * (a Unix socket with `?socket=/path/to/mysqld.sock`). The password comes from the URL,
 * `MYSQL_PWD` or an option file (~/.my.cnf, [client] / [mysql] groups); it is never put on a
 * command line, in a manifest, a log or an error. Sessions are mysql2 connections set up the
 * same way for backup and restore (binary results, UTC, no character conversion), so that the
 * bytes a backup reads are the bytes a restore writes (format.ts).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type mysql from 'mysql2/promise';
import { CairnError, NotFoundError, SourceError, UsageError } from '../../core/errors.js';
import type { UrlTrust } from '../driver.js';

export const MYSQL_URL_FORMS = 'mysql://user[:password]@host[:port]/dbname';
export const MYSQL_SCHEMES = ['mysql', 'mariadb'] as const;
export const DEFAULT_PORT = 3306;
const URL_PREVIEW = 160;

/**
 * The option files the mysql and mariadb clients read on Linux, in order (a later one wins):
 * /etc/my.cnf, /etc/mysql/my.cnf, then $MYSQL_HOME/my.cnf and ~/.my.cnf (optionFiles adds
 * those two). `!include` and `!includedir` are followed. MySQL's encrypted ~/.mylogin.cnf is not read.
 */
export const SYSTEM_OPTION_FILES: readonly string[] = ['/etc/my.cnf', '/etc/mysql/my.cnf'];

/**
 * The option-file groups cairn reads: those every MySQL and MariaDB client reads. Not [mysql]
 * (the mysql program's own) nor [mysqld] / [mariadb] (the server's: their `user` is the OS user
 * the server runs as).
 */
export const OPTION_GROUPS: readonly string[] = ['client', 'client-server', 'client-mariadb'];

export interface MysqlSettings {
  /** "mysql" or "mariadb": as the URL was written (both reach either server). */
  scheme: string;
  host: string;
  port: number;
  /** A Unix socket path; host and port are then ignored for the connection. */
  socketPath?: string;
  user: string;
  password?: string;
  /** The database; '' for a whole server (not supported yet: openSource / openTarget refuse it). */
  database: string;
  /** Where the password came from, for messages ("the URL", "MYSQL_PWD", "/root/.my.cnf"). */
  passwordFrom?: string;
  untrusted?: boolean;
}

function invalidUrl(url: string, why: string): UsageError {
  return new UsageError(`Invalid MySQL URL "${previewUrl(url)}": ${why} Write ${MYSQL_URL_FORMS} (or mariadb://…).`);
}

/** Why an untrusted URL is refused: the sentence after "it …". */
const UNTRUSTED_FIX =
  "a URL sent to the server in a request may use nothing of the server's own settings (MYSQL_PWD, option files such as ~/.my.cnf, its Unix socket): write the network host, user, password and database in the URL, or ask an admin to register the source by name (POST /v1/sources).";

/** An option value as the clients read it: quotes removed, escapes (\n \t \s \\ …) decoded, a trailing # comment dropped. */
function optionValue(raw: string): string {
  let v = raw.trim();
  const q = v[0];
  if ((q === '"' || q === "'") && v.indexOf(q, 1) > 0) {
    v = v.slice(1, v.indexOf(q, 1));
  } else {
    const hash = v.search(/\s#/);
    if (hash >= 0) v = v.slice(0, hash).trimEnd();
  }
  return v.replace(/\\([btnrs\\"'])/g, (_, c: string) => ({ b: '\b', t: '\t', n: '\n', r: '\r', s: ' ' })[c as 'b'] ?? c);
}

/**
 * Reads one option file into `out` (keys lowercase, "-" as "_"; a later value wins), with the
 * file each value came from in `from`. Only OPTION_GROUPS count. A missing or unreadable file is
 * skipped; a world-writable one too, as the clients do ("World-writable config file is
 * ignored"): anyone could have put a host or user there. `!include` / `!includedir` are followed
 * up to 10 levels deep.
 */
function readOptionFileInto(file: string, out: Record<string, string>, from: Record<string, string>, depth = 0): void {
  if (depth > 10) return;
  let text: string;
  try {
    if ((fs.statSync(file).mode & 0o002) !== 0) return;
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return;
  }
  let group = '';
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const inc = /^!include(dir)?\s+(.+)$/.exec(line);
    if (inc) {
      const target = path.resolve(path.dirname(file), (inc[2] ?? '').trim());
      if (inc[1] === undefined) readOptionFileInto(target, out, from, depth + 1);
      else {
        let names: string[] = [];
        try {
          names = fs.readdirSync(target).filter((n) => n.endsWith('.cnf')).sort();
        } catch {
          // A missing folder is skipped, as the clients do.
        }
        for (const n of names) readOptionFileInto(path.join(target, n), out, from, depth + 1);
      }
      continue;
    }
    const g = /^\[(.+)\]$/.exec(line);
    if (g) {
      group = (g[1] ?? '').trim().toLowerCase();
      continue;
    }
    if (!OPTION_GROUPS.includes(group)) continue;
    const eq = line.indexOf('=');
    // `password` alone asks the mysql client to prompt: nothing to use here.
    if (eq < 0) continue;
    const key = line.slice(0, eq).trim().toLowerCase().replace(/-/g, '_');
    out[key] = optionValue(line.slice(eq + 1));
    from[key] = file;
  }
}

/**
 * The options of the [client], [client-server] and [client-mariadb] groups of one option file
 * (e.g. ~/.my.cnf), keys lowercase with "_" for "-"; {} when it is missing.
 */
export function readOptionFile(file: string): Record<string, string> {
  const out: Record<string, string> = {};
  readOptionFileInto(file, out, {});
  return out;
}

/** The option files read for a connection, in order: the system's, $MYSQL_HOME/my.cnf, ~/.my.cnf. */
export function optionFiles(env: NodeJS.ProcessEnv, home: string, systemFiles: readonly string[] = SYSTEM_OPTION_FILES): string[] {
  return [...systemFiles, ...(env.MYSQL_HOME ? [path.join(env.MYSQL_HOME, 'my.cnf')] : []), path.join(home, '.my.cnf')];
}

/** Every option of `files` (later files win), with the file each came from. */
export function readOptionFiles(files: readonly string[]): { values: Record<string, string>; from: Record<string, string> } {
  const values: Record<string, string> = {};
  const from: Record<string, string> = {};
  for (const f of files) readOptionFileInto(f, values, from);
  return { values, from };
}

/** A host name no URL names: stands in for the empty host the WHATWG parser refuses (`mysql://u@/db`). */
const EMPTY_HOST = 'cairn-empty-host.invalid';

/** Decodes a percent-encoded URL part; UsageError naming `what` for a "%" that starts no escape. */
function decodePart(url: string, text: string, what: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw invalidUrl(url, `the ${what} has an invalid percent-encoding (a "%" not followed by two hex digits; write a literal "%" as %25).`);
  }
}

/**
 * A MySQL/MariaDB URL → settings, as the mysql client would resolve them: each of user,
 * password, host, port and socket comes from the URL, else (password) MYSQL_PWD, else the option
 * files (optionFiles: /etc/my.cnf, /etc/mysql/my.cnf, $MYSQL_HOME/my.cnf, ~/.my.cnf; groups
 * [client], [client-server], [client-mariadb]), else the default: user → $USER or the OS user,
 * host → localhost, port → 3306. A host left out or written `localhost` goes through the
 * option files' socket when they name one (as the mysql client does), else TCP. User, password
 * and database are percent-decoded; an IPv6 host is written in brackets (`[::1]`).
 *
 * `trust.untrusted` (a URL that came in an API request): nothing of the machine's is used (no
 * MYSQL_PWD, no option file, no socket), and the URL must name the host and the user.
 * Throws UsageError for a malformed URL, naming the fix; the message never holds the password.
 */
export function parseMysqlUrl(
  url: string,
  trust: UrlTrust = {},
  env: NodeJS.ProcessEnv = process.env,
  home = os.homedir(),
  systemFiles: readonly string[] = SYSTEM_OPTION_FILES,
): MysqlSettings {
  // An empty host: right after the user information, or before a port with no "@" after it.
  const m = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*@)?(?=[/?#]|$|:[^/?#@]*(?:[/?#]|$))/i.exec(url);
  const text = m ? `${m[1]}://${m[2] ?? ''}${EMPTY_HOST}${url.slice(m[0].length)}` : url;
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw invalidUrl(url, 'it does not parse as a URL (a "/", "?", "#" or "@" in the password must be percent-encoded: %2F, %3F, %23, %40).');
  }
  const scheme = u.protocol.slice(0, -1).toLowerCase();
  if (!(MYSQL_SCHEMES as readonly string[]).includes(scheme)) throw invalidUrl(url, `the scheme "${scheme}:" is not mysql: or mariadb:.`);
  if (u.hash !== '') throw invalidUrl(url, 'it has a "#" part (a "#" in the password must be percent-encoded: %23).');
  const database = decodePart(url, u.pathname.replace(/^\//, ''), 'database');
  if (u.pathname.replace(/^\//, '').includes('/')) throw invalidUrl(url, `the path has more than one part; it names one database (a "/" in a name is written %2F).`);
  const params = [...u.searchParams.entries()];
  for (const [k] of params) {
    if (k !== 'socket') throw invalidUrl(url, `the query parameter "${k.slice(0, 40)}" is not supported (only socket=/path/to/mysqld.sock).`);
  }
  if (params.length > 1) throw invalidUrl(url, 'it names socket= more than once.');
  const socketParam = params[0]?.[1];
  if (socketParam === '') throw invalidUrl(url, 'socket= is empty; give the path of the server\'s Unix socket.');
  const rawHost = u.hostname === EMPTY_HOST ? '' : u.hostname;
  const urlUser = decodePart(url, u.username, 'user');
  const untrusted = trust.untrusted === true;
  if (untrusted) {
    if (socketParam !== undefined) throw invalidUrl(url, `it names a Unix socket (socket=), and ${UNTRUSTED_FIX}`);
    if (rawHost === '') throw invalidUrl(url, `it names no host, and ${UNTRUSTED_FIX}`);
    if (urlUser === '') throw invalidUrl(url, `it names no user, and ${UNTRUSTED_FIX}`);
  }
  const files = untrusted ? { values: {} as Record<string, string>, from: {} as Record<string, string> } : readOptionFiles(optionFiles(env, home, systemFiles));
  const opt = files.values;
  const user = urlUser !== '' ? urlUser : (opt.user || env.USER || env.LOGNAME || safeOsUser());
  if (user === '') throw invalidUrl(url, 'it names no user, and none is set in an option file (user=) or the environment ($USER).');
  let password: string | undefined;
  let passwordFrom: string | undefined;
  if (u.password !== '') {
    password = decodePart(url, u.password, 'password');
    passwordFrom = 'the URL';
  } else if (!untrusted && env.MYSQL_PWD !== undefined) {
    // MYSQL_PWD before the option files: set for one run, it is the more specific wish (the
    // mysql client ranks option files first; see docs/mysql.md).
    password = env.MYSQL_PWD;
    passwordFrom = 'MYSQL_PWD';
  } else if (!untrusted && opt.password !== undefined) {
    password = opt.password;
    passwordFrom = files.from.password;
  }
  let port = DEFAULT_PORT;
  if (u.port !== '') port = Number(u.port);
  else if (opt.port !== undefined && opt.port !== '') {
    port = Number(opt.port);
    if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new UsageError(`The option file ${files.from.port} sets port=${opt.port.slice(0, 20)}, which is not a port (1–65535). Fix it, or write the port in the URL.`);
  }
  const host = (rawHost !== '' ? rawHost : opt.host || 'localhost').replace(/^\[(.*)\]$/, '$1');
  // As the mysql client: localhost means the Unix socket when one is configured.
  const socketPath = socketParam ?? (!untrusted && host === 'localhost' && u.port === '' && opt.socket ? opt.socket : undefined);
  return {
    scheme,
    host,
    port,
    ...(socketPath !== undefined ? { socketPath } : {}),
    user,
    ...(password !== undefined ? { password, ...(passwordFrom !== undefined ? { passwordFrom } : {}) } : {}),
    database,
    ...(untrusted ? { untrusted: true } : {}),
  };
}

function safeOsUser(): string {
  try {
    return os.userInfo().username;
  } catch {
    return '';
  }
}

/** `mysql://user@host:port/db` (or `?socket=`): safe to print and to store in a manifest. */
export function mysqlLocation(s: MysqlSettings, database = s.database): string {
  const host = s.host.includes(':') ? `[${s.host}]` : s.host;
  const base = `${s.scheme}://${encodeURIComponent(s.user)}@${host}:${s.port}/${encodeURIComponent(database)}`;
  return s.socketPath !== undefined ? `${base}?socket=${encodeURIComponent(s.socketPath)}` : base;
}

const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '::1']);

/**
 * A location → `mysql://host:port/db`: the user and the scheme (mysql / mariadb) do not change
 * the database; a socket and localhost, 127.0.0.1, ::1 are one machine; host names compare in
 * any letter case, database names exactly (lower_case_table_names=0, Linux's default).
 * Undefined when it is not a MySQL location. Reads no option file: a location names everything.
 */
export function mysqlDatabaseKey(location: string): string | undefined {
  let s: MysqlSettings;
  try {
    s = parseMysqlUrl(location, {}, {}, '/nonexistent', []);
  } catch {
    return undefined;
  }
  let host = s.host.toLowerCase();
  if (s.socketPath !== undefined || LOCAL_HOSTS.has(host)) host = 'localhost';
  else if (host.includes(':')) host = `[${host}]`;
  return `mysql://${host}:${s.port}/${encodeURIComponent(s.database)}`;
}

/**
 * The URL with its password replaced by *** (everything from the first ":" of the user
 * information to the last "@" of the text, so a password with a raw "@", "/" or ":" goes whole;
 * over-redacting a "@" in a socket path is the safe side; a user part that holds "/", "?", "#"
 * or a space is hidden too). Text without a scheme is returned as it is.
 */
export function redactMysqlUrl(url: string): string {
  let out = String(url);
  const scheme = /^[a-z][a-z0-9+.-]*:\/*/i.exec(out);
  if (scheme) {
    const at = out.lastIndexOf('@');
    if (at > scheme[0].length) {
      const userinfo = out.slice(scheme[0].length, at);
      const colon = userinfo.indexOf(':');
      const user = colon < 0 ? userinfo : userinfo.slice(0, colon);
      // A "user" holding "/", "?", "#" or a space is no user name: a broken URL, hidden whole.
      if (/[/?#\s]/.test(user)) out = `${scheme[0]}***${out.slice(at)}`;
      else if (colon >= 0) out = `${scheme[0]}${user}:***${out.slice(at)}`;
    }
  }
  return out;
}

/** The URL redacted and cut to 160 characters, for messages. */
export function previewUrl(url: string): string {
  const text = redactMysqlUrl(String(url));
  return text.length > URL_PREVIEW ? `${text.slice(0, URL_PREVIEW)}…` : text;
}

/**
 * Every session cairn opens is set up alike: results as the stored bytes (no character
 * conversion: character_set_results NULL, client and connection binary), UTC for TIMESTAMP,
 * a sql_mode that reads and writes every value the server holds (zero and partial dates,
 * 0 in AUTO_INCREMENT columns), and a lock wait bound.
 */
export interface SessionOptions {
  /** Connect to this database ('' or undefined: none). Default: the settings' database. */
  database?: string;
  /** lock_wait_timeout in ms (rounded up to seconds; default 30 s). */
  lockTimeoutMs?: number;
  /** Allow LOAD DATA LOCAL INFILE from streams (restore). */
  localInfile?: boolean;
}

export const SESSION_SQL_MODE = 'NO_AUTO_VALUE_ON_ZERO,ALLOW_INVALID_DATES,NO_ENGINE_SUBSTITUTION';

export async function connect(s: MysqlSettings, options: SessionOptions = {}): Promise<mysql.Connection> {
  const database = options.database ?? s.database;
  let conn: mysql.Connection;
  try {
    // Loaded on first use: every cairn command loads the engine registry, and mysql2 costs ~70 ms.
    const { default: driver } = await import('mysql2/promise');
    conn = await driver.createConnection({
      ...(s.socketPath !== undefined ? { socketPath: s.socketPath } : { host: s.host, port: s.port }),
      user: s.user,
      ...(s.password !== undefined ? { password: s.password } : {}),
      ...(database ? { database } : {}),
      // The handshake in UTF-8: mysql2 encodes the user and database names in the handshake's
      // character set, and a binary one sent `ß` as the latin1 byte 0xDF, which the server
      // refuses ("Invalid binary character string"). The SET below then makes the session
      // binary: bytes as stored, no conversion on the way out or in (format.ts).
      charset: 'UTF8MB4_BIN',
      supportBigNumbers: true,
      bigNumberStrings: true,
      dateStrings: true,
      multipleStatements: false,
      connectTimeout: 10_000,
      flags: options.localInfile ? ['+LOCAL_FILES'] : [],
    });
  } catch (err) {
    throw mysqlError(err, s, database);
  }
  try {
    await conn.query(
      `SET SESSION sql_mode = '${SESSION_SQL_MODE}', time_zone = '+00:00', character_set_results = NULL, character_set_client = binary, character_set_connection = binary, lock_wait_timeout = ${Math.max(1, Math.ceil((options.lockTimeoutMs ?? 30_000) / 1000))}`,
    );
  } catch (err) {
    await conn.end().catch(() => undefined);
    throw mysqlError(err, s, database);
  }
  keepUtf8Statements(conn);
  return conn;
}

/** mysql2's charset number of utf8mb4_bin. */
const UTF8MB4_BIN = 46;

/**
 * mysql2 follows the server's session tracking: once character_set_client is binary it encodes
 * every statement's text as latin1, so a name outside latin1 in SQL text (`CREATE TABLE \`€\``)
 * reaches the server as "?" bytes and fails. Statement text is written in UTF-8 whatever the
 * session's character_set_client (the server reads identifiers of a binary client as UTF-8, and
 * values go in as hex literals or LOAD DATA … CHARACTER SET binary), so the encoding is set back.
 */
function keepUtf8Statements(conn: mysql.Connection): void {
  const config = (conn as unknown as { connection?: { config?: { charsetNumber?: number } } }).connection?.config;
  if (config !== undefined) config.charsetNumber = UTF8MB4_BIN;
}

/** `SELECT VERSION()` → { version: "10.11.19", mariadb: true }. */
export function parseVersion(text: string): { version: string; mariadb: boolean; major: number; minor: number } {
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(text);
  return { version: m ? m[0] : text, mariadb: /mariadb/i.test(text), major: Number(m?.[1] ?? 0), minor: Number(m?.[2] ?? 0) };
}

/** What a user needs to back up and restore one database, for messages (docs/mysql.md explains each). */
export const PRIVILEGES_HINT =
  'a backup needs SELECT, SHOW VIEW, TRIGGER, EVENT and CREATE TEMPORARY TABLES on the database, SELECT on mysql.proc for other definers\' routines (RELOAD and BINLOG MONITOR or REPLICATION CLIENT for parallel reads and the binlog position); a restore needs ALL on the database and on `<database>__cairn_%` staging databases (see docs/mysql.md)';

/**
 * Driver errors → CairnErrors whose message names the problem and the fix, never the password
 * (it is scrubbed from the server's text too, decoded and percent-encoded):
 * unreachable server, unknown host, missing socket → SourceError; wrong user or password →
 * SourceError naming where the password came from; unknown database → NotFoundError; a missing
 * privilege → SourceError naming PRIVILEGES_HINT; a lock wait past lock_wait_timeout →
 * SourceError naming --lock-timeout; anything else → SourceError with the server's code and text.
 * A CairnError passes through unchanged.
 */
export function mysqlError(err: unknown, s: MysqlSettings, database = s.database): CairnError {
  if (err instanceof CairnError) return err;
  const e = err as { code?: string; errno?: number; message?: string; sqlMessage?: string };
  const where = s.socketPath !== undefined ? `the socket ${s.socketPath}` : s.host.includes(':') ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`;
  const scrub = (m: string | undefined): string => scrubPassword((m ?? String(err)).replace(/[\s.]+$/, ''), s.password);
  // The server names the database it refused (a restore's staging database, not the URL's).
  const named = /to database '((?:[^']|'')*)'/.exec(e.sqlMessage ?? e.message ?? '')?.[1]?.replace(/''/g, "'");
  const db = `"${e.code === 'ER_DBACCESS_DENIED_ERROR' && named !== undefined ? named : database}"`;
  switch (e.code) {
    case 'ECONNREFUSED':
      return new SourceError(`Cannot connect to MySQL at ${where}: connection refused. Is the server running and listening there? Check the host and port in the URL.`, { cause: err });
    case 'ENOENT':
      return new SourceError(`Cannot connect to MySQL: there is no socket at ${s.socketPath ?? where}. Check the socket path, or connect over TCP with host and port.`, { cause: err });
    case 'EACCES':
      return new SourceError(`Cannot connect to MySQL through ${where}: permission denied. Run cairn as a user that may open the socket, or connect over TCP.`, { cause: err });
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new SourceError(`Cannot connect to MySQL: host "${s.host}" not found. Check the host name in the URL.`, { cause: err });
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new SourceError(`Cannot connect to MySQL at ${where}: ${e.code === 'ETIMEDOUT' ? 'timed out' : 'no route to the host'}. Check the host, the port and the firewall.`, { cause: err });
    case 'ECONNRESET':
    case 'PROTOCOL_CONNECTION_LOST':
      return new SourceError(`The connection to MySQL at ${where} was lost (${e.code}). Check that the server is up and that ${where} is a MySQL or MariaDB server, then retry.`, { cause: err });
    case 'ER_ACCESS_DENIED_ERROR':
    case 'ER_ACCESS_DENIED_NO_PASSWORD_ERROR':
      return new SourceError(
        `MySQL at ${where} refused user "${s.user}": wrong user or password${s.password !== undefined ? ` (the password came from ${s.passwordFrom ?? 'the URL'})` : ' (no password was given)'}. Check them: the URL, MYSQL_PWD or an option file such as ~/.my.cnf.`,
        { cause: err },
      );
    case 'ER_HOST_NOT_PRIVILEGED':
      return new SourceError(`MySQL at ${where} does not let this machine connect: ${scrub(e.sqlMessage ?? e.message)}. Create the user for this client's host (CREATE USER 'name'@'host').`, { cause: err });
    case 'ER_BAD_DB_ERROR':
      return new NotFoundError(`MySQL database ${db} does not exist on ${where}. Check the database name in the URL (names are case-sensitive).`, { cause: err });
    case 'ER_DBACCESS_DENIED_ERROR':
      return new SourceError(`MySQL user "${s.user}" may not use database ${db} on ${where} (${scrub(e.sqlMessage ?? e.message)}). Grant it the privileges it needs: ${PRIVILEGES_HINT}.`, { cause: err });
    case 'ER_TABLEACCESS_DENIED_ERROR':
    case 'ER_COLUMNACCESS_DENIED_ERROR':
    case 'ER_SPECIFIC_ACCESS_DENIED_ERROR':
    case 'ER_PROCACCESS_DENIED_ERROR':
    case 'ER_KILL_DENIED_ERROR':
      return new SourceError(`MySQL refused user "${s.user}" an operation on ${db}: ${scrub(e.sqlMessage ?? e.message)}. Grant the privilege it names: ${PRIVILEGES_HINT}.`, { cause: err });
    case 'ER_LOCK_WAIT_TIMEOUT':
      return new SourceError(`MySQL lock not granted in time on ${where}, database ${db}: ${scrub(e.sqlMessage ?? e.message)}. Retry when the other session is done, or raise --lock-timeout.`, { cause: err });
    default:
      return new SourceError(`MySQL error${e.code ? ` ${e.code}` : ''} on ${where}, database ${db}: ${scrub(e.sqlMessage ?? e.message)}.`, { cause: err });
  }
}

/**
 * A server message with the password replaced by *** (decoded and percent-encoded forms) wherever
 * it stands as a whole word (not inside a longer name). Replacing every substring would give the
 * password away when it is part of a name the message quotes (user "trial_rest" with password
 * "rest" → "trial_***").
 */
export function scrubPassword(text: string, password: string | undefined): string {
  if (!password) return text;
  const secrets = [...new Set([password, encodeURIComponent(password)])];
  const escape = (x: string): string => x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const whole = new RegExp(`(?<![\\p{L}\\p{N}_])(?:${secrets.map(escape).join('|')})(?![\\p{L}\\p{N}_])`, 'gu');
  return text.replace(whole, '***');
}

/** `name` as a backtick-quoted identifier. */
export function ident(name: string): string {
  return '`' + name.replace(/`/g, '``') + '`';
}

/** A string literal (bytes or text) as a hex literal: safe under any sql_mode and character set. */
export function hexLiteral(value: string | Buffer): string {
  const b = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  return b.length === 0 ? "''" : `X'${b.toString('hex')}'`;
}

/** A UTF-8 string literal (names, comments) under the sessions' binary character set. */
export function textLiteral(value: string): string {
  return `_utf8mb4 ${hexLiteral(value)}`;
}
