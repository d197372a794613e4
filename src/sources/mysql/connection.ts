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
import mysql from 'mysql2/promise';
import { CairnError, NotFoundError, SourceError, UsageError } from '../../core/errors.js';
import type { UrlTrust } from '../driver.js';

export const MYSQL_URL_FORMS = 'mysql://user[:password]@host[:port]/dbname';
export const MYSQL_SCHEMES = ['mysql', 'mariadb'] as const;
const URL_PREVIEW = 160;

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
  /** Where the password came from, for messages ("the URL", "MYSQL_PWD", "~/.my.cnf"). */
  passwordFrom?: string;
  untrusted?: boolean;
}

function invalidUrl(url: string, why: string): UsageError {
  return new UsageError(`Invalid MySQL URL "${previewUrl(url)}": ${why} Write ${MYSQL_URL_FORMS} (or mariadb://…).`);
}

/** Options of an option file's [client], [mysql] and [mariadb] groups (later groups win), e.g. ~/.my.cnf. */
export function readOptionFile(file: string): Record<string, string> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return {};
  }
  const out: Record<string, string> = {};
  let group = '';
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const g = /^\[(.+)\]$/.exec(line);
    if (g) {
      group = (g[1] ?? '').trim().toLowerCase();
      continue;
    }
    if (!['client', 'mysql', 'mariadb', 'client-mariadb'].includes(group)) continue;
    const eq = line.indexOf('=');
    const key = (eq < 0 ? line : line.slice(0, eq)).trim().toLowerCase().replace(/-/g, '_');
    let value = eq < 0 ? '' : line.slice(eq + 1).trim();
    if (/^(['"]).*\1$/.test(value)) value = value.slice(1, -1);
    out[key] = value;
  }
  return out;
}

/**
 * A MySQL/MariaDB URL → settings. Throws UsageError for a malformed URL. `untrusted` (an ad-hoc
 * URL in an API request): nothing of the server's environment is used (no MYSQL_PWD, no option
 * file, no socket), and the URL must name the host and the user.
 */
export function parseMysqlUrl(url: string, trust: UrlTrust = {}, env: NodeJS.ProcessEnv = process.env, home = os.homedir()): MysqlSettings {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw invalidUrl(url, 'it does not parse as a URL.');
  }
  const scheme = u.protocol.slice(0, -1).toLowerCase();
  if (!(MYSQL_SCHEMES as readonly string[]).includes(scheme)) throw invalidUrl(url, `the scheme "${scheme}:" is not mysql: or mariadb:.`);
  const path = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (path.includes('/')) throw invalidUrl(url, `the path "/${path}" has more than one part; it names one database.`);
  const params = Object.fromEntries(u.searchParams.entries());
  for (const k of Object.keys(params)) {
    if (k !== 'socket') throw invalidUrl(url, `the query parameter "${k.slice(0, 40)}" is not supported (only socket=/path/to/mysqld.sock).`);
  }
  const untrusted = trust.untrusted === true;
  if (untrusted && params.socket !== undefined) throw new UsageError(`A MySQL URL sent to the server may not name a Unix socket ("socket="): connect over TCP with host and port.`);
  const file = untrusted ? {} : readOptionFile(path_join(home, '.my.cnf'));
  const user = u.username !== '' ? decodeURIComponent(u.username) : untrusted ? '' : (file.user ?? env.USER ?? os.userInfo().username);
  if (user === '') throw new UsageError(`A MySQL URL sent to the server must name the user: ${MYSQL_URL_FORMS}.`);
  if (untrusted && u.hostname === '') throw new UsageError(`A MySQL URL sent to the server must name the host: ${MYSQL_URL_FORMS}.`);
  let password: string | undefined;
  let passwordFrom: string | undefined;
  if (u.password !== '') {
    password = decodeURIComponent(u.password);
    passwordFrom = 'the URL';
  } else if (!untrusted && env.MYSQL_PWD !== undefined) {
    password = env.MYSQL_PWD;
    passwordFrom = 'MYSQL_PWD';
  } else if (!untrusted && file.password !== undefined) {
    password = file.password;
    passwordFrom = '~/.my.cnf';
  }
  const port = u.port === '' ? Number(file.port ?? 3306) : Number(u.port);
  const host = u.hostname === '' ? (file.host ?? 'localhost') : u.hostname.replace(/^\[(.*)\]$/, '$1');
  const socketPath = params.socket ?? (!untrusted && u.hostname === '' && file.socket !== undefined ? file.socket : undefined);
  return {
    scheme,
    host,
    port,
    ...(socketPath !== undefined ? { socketPath } : {}),
    user,
    ...(password !== undefined ? { password, passwordFrom } : {}),
    database: path,
    ...(untrusted ? { untrusted: true } : {}),
  };
}

const path_join = (a: string, b: string): string => path.join(a, b);

/** `mysql://user@host:port/db` (or `?socket=`): safe to print and to store in a manifest. */
export function mysqlLocation(s: MysqlSettings, database = s.database): string {
  const host = s.host.includes(':') ? `[${s.host}]` : s.host;
  const base = `${s.scheme}://${encodeURIComponent(s.user)}@${host}:${s.port}/${encodeURIComponent(database)}`;
  return s.socketPath !== undefined ? `${base}?socket=${encodeURIComponent(s.socketPath)}` : base;
}

const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '::1']);

/**
 * A location → `mysql://host:port/db`: the user and the scheme (mysql / mariadb) do not change
 * the database; a socket and localhost, 127.0.0.1, ::1 are one machine. Undefined when it is
 * not a MySQL location.
 */
export function mysqlDatabaseKey(location: string): string | undefined {
  let s: MysqlSettings;
  try {
    s = parseMysqlUrl(location, {}, {}, '/nonexistent');
  } catch {
    return undefined;
  }
  let host = s.host.toLowerCase();
  if (s.socketPath !== undefined || LOCAL_HOSTS.has(host)) host = 'localhost';
  else if (host.includes(':')) host = `[${host}]`;
  return `mysql://${host}:${s.port}/${s.database}`;
}

/** The URL with its password replaced by *** (up to the last "@" of the authority). */
export function redactMysqlUrl(url: string): string {
  let out = String(url);
  const scheme = /^[a-z][a-z0-9+.-]*:\/*/i.exec(out);
  if (scheme) {
    const at = out.lastIndexOf('@');
    if (at > scheme[0].length) {
      const userinfo = out.slice(scheme[0].length, at);
      const colon = userinfo.indexOf(':');
      if (colon >= 0) out = `${scheme[0]}${userinfo.slice(0, colon)}:***${out.slice(at)}`;
    }
  }
  return out;
}

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
    conn = await mysql.createConnection({
      ...(s.socketPath !== undefined ? { socketPath: s.socketPath } : { host: s.host, port: s.port }),
      user: s.user,
      ...(s.password !== undefined ? { password: s.password } : {}),
      ...(database ? { database } : {}),
      // Bytes as stored: no conversion on the way out or in (format.ts).
      charset: 'BINARY',
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

/** Driver errors → CairnErrors whose message names the problem and the fix, never the password. */
export function mysqlError(err: unknown, s: MysqlSettings, database = s.database): CairnError {
  if (err instanceof CairnError) return err;
  const e = err as { code?: string; errno?: number; message?: string; sqlMessage?: string };
  const where = s.socketPath ?? `${s.host}:${s.port}`;
  const scrub = (m: string | undefined): string => {
    let text = m ?? String(err);
    if (s.password) text = text.split(s.password).join('***');
    return text;
  };
  switch (e.code) {
    case 'ECONNREFUSED':
      return new SourceError(`Cannot connect to MySQL at ${where}: connection refused. Is the server running and listening there?`, { cause: err });
    case 'ENOENT':
      return new SourceError(`Cannot connect to MySQL: no socket at ${where}. Check the socket path, or connect over TCP with host and port.`, { cause: err });
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new SourceError(`Cannot connect to MySQL: host "${s.host}" not found. Check the host name in the URL.`, { cause: err });
    case 'ETIMEDOUT':
      return new SourceError(`Cannot connect to MySQL at ${where}: timed out. Check the host, port and firewall.`, { cause: err });
    case 'ER_ACCESS_DENIED_ERROR':
    case 'ER_ACCESS_DENIED_NO_PASSWORD_ERROR':
      return new SourceError(
        `MySQL at ${where} refused user "${s.user}": access denied${s.password !== undefined ? ` (password from ${s.passwordFrom ?? 'the URL'})` : ' (no password given)'}. Check the user and password (URL, MYSQL_PWD or ~/.my.cnf).`,
        { cause: err },
      );
    case 'ER_BAD_DB_ERROR':
      return new NotFoundError(`MySQL database "${database}" does not exist on ${where}. Check the database name in the URL.`, { cause: err });
    case 'ER_DBACCESS_DENIED_ERROR':
    case 'ER_TABLEACCESS_DENIED_ERROR':
    case 'ER_COLUMNACCESS_DENIED_ERROR':
    case 'ER_SPECIFIC_ACCESS_DENIED_ERROR':
    case 'ER_PROCACCESS_DENIED_ERROR':
      return new SourceError(`MySQL refused an operation: ${scrub(e.sqlMessage ?? e.message)}. Grant the user "${s.user}" the privilege it needs.`, { cause: err });
    case 'ER_LOCK_WAIT_TIMEOUT':
      return new SourceError(`MySQL lock not granted in time on ${where}/${database}: ${scrub(e.sqlMessage ?? e.message)}. Retry when the other session is done, or raise --lock-timeout.`, { cause: err });
    default:
      return new SourceError(`MySQL error${e.code ? ` ${e.code}` : ''} on ${where}/${database}: ${scrub(e.sqlMessage ?? e.message)}.`, { cause: err });
  }
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
  return `_utf8mb4${hexLiteral(value)}`;
}
