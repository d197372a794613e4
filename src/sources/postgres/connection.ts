/**
 * PostgreSQL connection settings from a URL, for the `pg` client and for the PostgreSQL tools
 * (pg_dump, pg_restore, pg_dumpall, psql) cairn runs as child processes. The URL is resolved as
 * libpq resolves it (conninfo.ts: URL, service, PG* variables, defaults); both the client and the
 * tools get the one result, the tools through PG* variables only. The password comes from the
 * URL, its service or PGPASSWORD, else ~/.pgpass (pgpassPassword; libpq for the tools); it is
 * handed to tools only through their environment, never on a command line, and never appears in
 * `location`, manifests, logs or errors.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import type pg from 'pg';
import { CairnError, NotFoundError, SourceError, UsageError, stoppedBySignal } from '../../core/errors.js';
import { decodeParamNames } from '../../core/param-names.js';
import { DEFAULT_SOCKET_DIR, emptyContext, KEYWORD_ENV, processContext, readUrl, resolveConninfo, type ConninfoContext, type ResolveOptions } from './conninfo.js';

export interface PgConnectionSettings {
  /** Host name or address, or (starting with "/") the directory of the server's Unix socket. */
  host: string;
  port: number;
  user: string;
  database: string;
  /** undefined: let `pg` and libpq find it (PGPASSWORD, ~/.pgpass). */
  password: string | undefined;
  /** The supported libpq parameters given in the URL query (see URL_PARAMS), password excepted. */
  params: Record<string, string>;
  /**
   * Resolved untrusted (ResolveOptions.untrusted: an ad-hoc URL from an API request): the
   * connection, and the tools cairn runs for it, use no ~/.pgpass, no PG* variable and no client
   * certificate of the server's; only what the URL says.
   */
  untrusted?: boolean;
}

export const POSTGRES_URL_FORMS = 'postgres://user[:password]@host[:port]/dbname';


/**
 * Query parameters a PostgreSQL URL may carry, with libpq's meaning, and the PG* variable of each
 * (also read when the URL and its service do not set it); each is given to the `pg` client and,
 * as its PG* variable, to the tools cairn runs (pg_dump, pg_restore, psql). `service` names a
 * pg_service.conf section. Any other parameter is refused by name: none is ever silently ignored.
 */
export const URL_PARAMS: Record<string, string> = KEYWORD_ENV;

const SSLMODES = new Set(['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full']);
/** Characters of a URL quoted in an error at most. */
const URL_PREVIEW = 120;

function invalidUrl(url: string, why: string): UsageError {
  return new UsageError(`Invalid PostgreSQL URL "${previewUrl(url)}": ${why}`);
}

/**
 * The likely reason a URL does not parse (or parses into nonsense): a raw "/", "?", "#" or "@"
 * in its password, which ends the user information early. Says so without saying which.
 */
function passwordHint(url: string): string {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(url);
  if (!scheme) return '';
  const at = url.lastIndexOf('@');
  if (at <= scheme[0].length) return '';
  const userinfo = url.slice(scheme[0].length, at);
  const colon = userinfo.indexOf(':');
  if (colon < 0 || !/[/?#@]/.test(userinfo.slice(colon + 1))) return '';
  // No double quotes: a message is cut between quotes when it reaches an answer (safeMessage).
  return ' If the password holds a raw /, ?, # or @, percent-encode it in the URL (%2F, %3F, %23, %40), or give the password in PGPASSWORD or ~/.pgpass instead.';
}

/**
 * A PostgreSQL URL resolved as libpq resolves it (conninfo.ts: the URL, then its service, then
 * the PG* variables, then the defaults: the Unix socket in /var/run/postgresql, port 5432, the OS
 * user, a database named after the user). `options.server`: a URL whose path is exactly "/" and
 * that names no database (`postgres://host:port/`, `postgres:///`) names the whole server
 * (database ''), for whole-server backups and restores (server-source.ts); a URL without a path
 * that names no database anywhere is refused. `options.untrusted`: an ad-hoc URL from an API
 * request, resolved from its own text only (conninfo.ts ResolveOptions). `context` replaces
 * the process's environment, OS user and home folder (tests). Throws UsageError for a URL that
 * does not parse, an unsupported parameter, an unknown service, no database, a bad port or
 * sslmode, or (untrusted) anything it would take from the server.
 */
export function parsePostgresUrl(url: string, options: ResolveOptions = {}, context: ConninfoContext = processContext): PgConnectionSettings {
  const invalid = (why: string): UsageError => invalidUrl(url, why);
  const u = readUrl(url, invalid, () => invalidUrl(url, `write ${POSTGRES_URL_FORMS}.${passwordHint(url)}`), options);
  const r = resolveConninfo(u, options, context, invalid);
  if (r.database.includes('/')) {
    throw new UsageError(`The PostgreSQL URL "${previewUrl(url)}" names no single database (its path holds a "/", which cairn does not take in a database name; the path is not echoed, as it may be part of a password): write ${POSTGRES_URL_FORMS}.${passwordHint(url)}`);
  }
  if (r.host.includes(',')) throw invalidUrl(url, 'several hosts are not supported; name one.');
  const port = Number(r.port);
  if (!/^\d{1,5}$/.test(r.port) || port < 1 || port > 65535) throw invalidUrl(url, `the port "${r.port.slice(0, 20)}" is not a number from 1 to 65535.`);
  const { sslmode, sslrootcert, connect_timeout } = r.params;
  if (sslmode !== undefined && !SSLMODES.has(sslmode)) {
    throw invalidUrl(url, `sslmode must be one of ${[...SSLMODES].join(', ')}.`);
  }
  if (sslmode === 'verify-ca' && sslrootcert === undefined) {
    throw invalidUrl(url, 'sslmode=verify-ca needs sslrootcert=<file>, the certificate authority that signed the server certificate (as libpq: give the file, or use sslmode=verify-full to check against the system authorities).');
  }
  if (connect_timeout !== undefined && !/^\d{1,6}$/.test(connect_timeout)) {
    throw invalidUrl(url, 'connect_timeout must be a whole number of seconds.');
  }
  return { ...r, port, params: r.params as Record<string, string>, ...(options.untrusted ? { untrusted: true } : {}) };
}

/** `postgres://user@host:port/db`: safe to print and to store in a manifest. */
export function pgLocation(s: PgConnectionSettings, database = s.database): string {
  if (s.host.startsWith('/')) {
    // A Unix socket directory: the form parsePostgresUrl reads back.
    return `postgres:///${encodeURIComponent(database)}?host=${encodeURIComponent(s.host)}&port=${s.port}&user=${encodeURIComponent(s.user)}`;
  }
  const host = s.host.includes(':') ? `[${s.host}]` : s.host;
  return `postgres://${encodeURIComponent(s.user)}@${host}:${s.port}/${encodeURIComponent(database)}`;
}

/** Host names that mean "this machine" (a Unix socket directory does too). */
const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '::1', '0:0:0:0:0:0:0:1']);

/**
 * A location (pgLocation's forms, no secret) → `postgres://host:port/db`, from its parsed
 * settings: the user does not change the database; any Unix socket folder and localhost,
 * 127.0.0.1, ::1 are one machine ("localhost"); a whole server's key ends in "/". The location is
 * read with nothing of the environment (it names every setting). Undefined for a location that
 * is not a PostgreSQL one or does not parse.
 */
export function postgresDatabaseKey(location: string): string | undefined {
  let s: PgConnectionSettings;
  try {
    s = parsePostgresUrl(location, { server: true }, emptyContext);
  } catch {
    return undefined;
  }
  let host = s.host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (host === '' || host.startsWith('/') || LOCAL_HOSTS.has(host)) host = 'localhost';
  else if (host.includes(':')) host = `[${host}]`;
  return `postgres://${host}:${s.port}/${s.database}`;
}

/**
 * The URL with its password replaced by *** wherever it is: in the user info (up to the last
 * "@", so a raw "/", "?", "#" or "@" in the password is covered too; at worst more is hidden)
 * and in a `password=` query parameter (hidden to the end of the URL), however its name is
 * spelled: any letter case, percent-escapes (`pass%77ord=`, which the parser reads as password).
 */
export function redactUrl(url: string): string {
  // A password= parameter first, to the end of the URL: a raw "&" or "#" in it cannot end it early.
  let out = decodeParamNames(String(url)).replace(/([?&;]password=).*$/is, '$1***');
  // Any number of slashes: "postgres:u:pw@h/db" and "postgres:/u:pw@h/db" are malformed, and
  // quoted in the error that says so.
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

/** A redacted URL, at most URL_PREVIEW characters, for an error message. */
export function previewUrl(url: string): string {
  const text = redactUrl(String(url));
  return text.length > URL_PREVIEW ? `${text.slice(0, URL_PREVIEW)}…` : text;
}

function readFile(file: string, what: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`Cannot read the ${what} file ${file} named by the PostgreSQL URL: ${(err as Error).message}.`);
  }
}

/** TLS settings for `pg` from sslmode / sslrootcert / sslcert / sslkey, as libpq reads them. */
function sslConfig(p: Record<string, string>): pg.ClientConfig['ssl'] {
  const mode = p.sslmode;
  if (mode === 'disable' || (mode === undefined && p.sslrootcert === undefined && p.sslcert === undefined)) return undefined;
  // allow / prefer: libpq tries TLS first and may fall back to plain text; `pg` cannot fall
  // back by itself, so they connect with TLS, and connect() retries in plain text when the
  // server has no SSL (a pool, catalog/postgres.ts, does not).
  const ssl: Exclude<pg.ClientConfig['ssl'], boolean | undefined> = {
    // require without a root certificate checks nothing (as libpq); verify-ca checks the chain;
    // verify-full checks the chain and the host name.
    rejectUnauthorized: mode === 'verify-ca' || mode === 'verify-full' || (mode === 'require' && p.sslrootcert !== undefined),
  };
  if (mode !== 'verify-full') ssl.checkServerIdentity = () => undefined;
  if (p.sslrootcert !== undefined) ssl.ca = readFile(p.sslrootcert, 'sslrootcert');
  if (p.sslcert !== undefined) ssl.cert = readFile(p.sslcert, 'sslcert');
  if (p.sslkey !== undefined) ssl.key = readFile(p.sslkey, 'sslkey');
  return ssl;
}

/** Client settings for `pg`; `database` overrides the URL's (e.g. "postgres" for CREATE DATABASE). */
export function clientConfig(s: PgConnectionSettings, database = s.database): pg.ClientConfig {
  const ssl = sslConfig(s.params);
  return {
    host: s.host,
    port: s.port,
    user: s.user,
    database,
    // No password given: ~/.pgpass (or PGPASSFILE), looked up as libpq does, so cairn's sessions
    // and the tools it runs find the same line. A function, because `pg`'s own lookup is
    // deprecated and prints a warning.
    // (`pg` takes undefined from the function as "no password"; its type says string only.)
    // Untrusted: no password given is none (a function, so that `pg` reads no PGPASSWORD either).
    password: s.password ?? ((() => (s.untrusted ? undefined : pgpassPassword(s, database))) as () => Promise<string>),
    application_name: s.params.application_name ?? 'cairn',
    ...(s.params.connect_timeout !== undefined && Number(s.params.connect_timeout) > 0 ? { connectionTimeoutMillis: Number(s.params.connect_timeout) * 1000 } : {}),
    ...(s.params.options !== undefined ? { options: s.params.options } : {}),
    // false, not undefined: `pg` would otherwise read PGSSLMODE itself (already resolved here).
    ssl: ssl ?? false,
  };
}

type PgpassLookup = (info: { host: string; port: number; database: string; user: string }, found: (password: string | undefined) => void) => void;
// The module `pg` itself uses (a dependency of pg; CommonJS without types).
const pgpass = createRequire(import.meta.url)('pgpass') as PgpassLookup;

/**
 * The password ~/.pgpass (or PGPASSFILE) gives for these settings, or undefined. As libpq, a
 * connection through the default socket directory matches the host name "localhost" (any other
 * socket directory matches itself); a file readable by group or others is ignored.
 */
export function pgpassPassword(s: PgConnectionSettings, database = s.database): Promise<string | undefined> {
  if (s.untrusted) return Promise.resolve(undefined);
  const host = s.host === DEFAULT_SOCKET_DIR ? 'localhost' : s.host;
  return new Promise((resolve) => pgpass({ host, port: s.port, database, user: s.user }, resolve));
}

/** What a session has in force from its first query on (connect's `session`). */
export interface SessionDefaults {
  /**
   * lock_timeout in ms (>= 1), set at connection start (`options=-c lock_timeout=…`, after any
   * options of the URL, so it wins): every statement of the session, the first catalog read
   * included, waits at most that long for a lock. A backup's sessions set it; a restore's
   * statements set their own.
   */
  lockTimeoutMs?: number;
}

/**
 * Opens a client, turning connection failures into one clear CairnError. `session`: settings in
 * force from the first query (SessionDefaults).
 */
export async function connect(s: PgConnectionSettings, database = s.database, session: SessionDefaults = {}): Promise<pg.Client> {
  let config = clientConfig(s, database);
  if (session.lockTimeoutMs !== undefined) {
    const option = `-c lock_timeout=${Math.max(1, Math.floor(session.lockTimeoutMs))}`;
    config = { ...config, options: config.options !== undefined ? `${config.options} ${option}` : option };
  }
  // pg (and the undici it wakes) is loaded by the first connection, not by every command that
  // only registers this engine (issue 22: ~0.2 s of start-up).
  const { default: pgModule } = await import('pg');
  let client = new pgModule.Client(config);
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    // allow / prefer: like libpq, a server without SSL is then reached in plain text.
    const mode = s.params.sslmode;
    if (!((mode === 'allow' || mode === 'prefer') && /does not support SSL/i.test((err as Error).message ?? ''))) throw pgError(err, s, database);
    client = new pgModule.Client({ ...config, ssl: false });
    try {
      await client.connect();
    } catch (again) {
      await client.end().catch(() => undefined);
      throw pgError(again, s, database);
    }
  }
  // An idle client's socket error must not crash the process; the next query reports it.
  client.on('error', () => undefined);
  return client;
}

/** A path that does not exist: libpq reads "no such file" as "none" (untrusted tool runs). */
const NO_FILE = '/nonexistent/cairn-untrusted-url';

/** Environment for pg_dump / pg_restore / pg_dumpall / psql: connection by PG* variables only. */
export function toolEnv(s: PgConnectionSettings, database = s.database): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (s.untrusted) {
    // Nothing of the server's own libpq settings: no PG* variable at all, no ~/.pgpass, no
    // client certificate from ~/.postgresql (paths that do not exist, which libpq takes as
    // "none"), no Kerberos encryption with the server's credentials.
    for (const name of Object.keys(env)) if (name.startsWith('PG')) delete env[name];
  }
  // Every setting cairn resolved (from the URL, its service or these very variables) is set
  // below; none is inherited as it stood, so the tools reach the server as the driver does.
  for (const name of Object.values(KEYWORD_ENV)) delete env[name];
  Object.assign(env, { PGHOST: s.host, PGPORT: String(s.port), PGUSER: s.user, PGDATABASE: database });
  // Variables that would send the tools elsewhere than cairn's own connections (which do not
  // read them) are not passed on: both always reach the same server.
  for (const name of ['PGHOSTADDR', 'PGSERVICE', 'PGSERVICEFILE', 'PGTARGETSESSIONATTRS', 'PGLOADBALANCEHOSTS']) delete env[name];
  if (s.untrusted) Object.assign(env, { PGPASSFILE: NO_FILE, PGSSLCERT: NO_FILE, PGSSLKEY: NO_FILE, PGSYSCONFDIR: NO_FILE, PGGSSENCMODE: 'disable' });
  // The schema archive is in the database's own encoding, as its data is (pg_dump's default;
  // PGCLIENTENCODING would make pg_dump convert, and fail on text with no equivalent).
  delete env.PGCLIENTENCODING;
  // Without one, libpq reads ~/.pgpass (PGPASSFILE) as pgpassPassword does.
  if (s.password !== undefined) env.PGPASSWORD = s.password;
  for (const [k, v] of Object.entries(s.params)) {
    const name = URL_PARAMS[k];
    if (name !== undefined) env[name] = v;
  }
  env.PGAPPNAME = s.params.application_name ?? 'cairn';
  return env;
}

/**
 * Maps driver errors to CairnErrors with a message that names the problem and the fix, and
 * never contains the password.
 */
export function pgError(err: unknown, s: PgConnectionSettings, database = s.database): CairnError {
  if (err instanceof CairnError) return err;
  const e = err as { code?: string; message?: string };
  const where = `${s.host}:${s.port}`;
  const scrub = (m: string | undefined): string => {
    let text = m ?? String(err);
    if (s.password) text = text.split(s.password).join('***');
    return text;
  };
  switch (e.code) {
    case 'ECONNREFUSED':
      return new SourceError(`Cannot connect to PostgreSQL at ${where}: connection refused. Is the server running and listening there?`, { cause: err });
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new SourceError(`Cannot connect to PostgreSQL: host "${s.host}" not found. Check the host name in the URL.`, { cause: err });
    case 'ETIMEDOUT':
      return new SourceError(`Cannot connect to PostgreSQL at ${where}: timed out. Check the host, port and firewall.`, { cause: err });
    case '28P01':
    case '28000':
      return new SourceError(
        `PostgreSQL at ${where} refused user "${s.user}": ${e.code === '28P01' ? 'password authentication failed' : scrub(e.message)}. Check the user and password (URL, PGPASSWORD or ~/.pgpass).`,
        { cause: err },
      );
    case undefined:
      if (/\bSSL\b/.test(e.message ?? '')) {
        return new SourceError(
          `Cannot connect to PostgreSQL at ${where} with SSL: ${scrub(e.message)}. sslmode=${s.params.sslmode ?? '(from the certificates given)'} asks for SSL; enable SSL on the server, or connect with sslmode=disable (URL ?sslmode=, the service or PGSSLMODE).`,
          { cause: err },
        );
      }
      if (/password must be a string/.test(e.message ?? '')) {
        return new SourceError(`PostgreSQL at ${where} asks user "${s.user}" for a password, and none was given. Give it in the URL, the service, PGPASSWORD or ~/.pgpass.`, { cause: err });
      }
      return new SourceError(`PostgreSQL error on ${where}/${database}: ${scrub(e.message)}.`, { cause: err });
    case '3D000':
      return new NotFoundError(`PostgreSQL database "${database}" does not exist on ${where}. Check the database name in the URL.`, { cause: err });
    case '42501':
      return new SourceError(`PostgreSQL refused an operation: ${scrub(e.message)}. Grant the user "${s.user}" the privilege it needs (e.g. SELECT on the tables to back up).`, { cause: err });
    default:
      return new SourceError(`PostgreSQL error${e.code ? ` ${e.code}` : ''} on ${where}/${database}: ${scrub(e.message)}.`, { cause: err });
  }
}

/** The version line of a PostgreSQL tool, e.g. "pg_dump (PostgreSQL) 15.20"; a clear error when it is missing. */
export async function toolVersion(tool: 'pg_dump' | 'pg_restore' | 'pg_dumpall' | 'psql'): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(tool, ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', () =>
      reject(new SourceError(`${tool} is not installed or not on PATH. Install the PostgreSQL client tools (Debian: apt-get install postgresql-client).`)),
    );
    child.on('exit', (code, signal) =>
      code === 0 ? resolve(out.trim()) : reject(stoppedBySignal(`${tool} --version`, signal) ?? new SourceError(`${tool} --version failed (exit ${code ?? signal}).`)),
    );
  });
}
