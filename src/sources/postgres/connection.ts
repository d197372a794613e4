/**
 * PostgreSQL connection settings from a URL, for the `pg` client and for the PostgreSQL tools
 * (pg_dump, pg_restore, pg_dumpall) cairn runs as child processes. The password comes from the
 * URL, else PGPASSWORD, else ~/.pgpass (read by `pg` and by libpq); it is handed to tools only
 * through their environment, never on a command line, and never appears in `location`,
 * manifests, logs or errors.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import pg from 'pg';
import { CairnError, NotFoundError, SourceError, UsageError } from '../../core/errors.js';

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
}

export const POSTGRES_URL_FORMS = 'postgres://user[:password]@host[:port]/dbname';

/**
 * Query parameters a PostgreSQL URL may carry, with libpq's meaning; each is given to the `pg`
 * client and, as its PG* variable, to the tools cairn runs (pg_dump, pg_restore, psql). Any
 * other parameter is refused by name: none is ever silently ignored.
 */
export const URL_PARAMS: Record<string, string> = {
  host: 'PGHOST',
  port: 'PGPORT',
  user: 'PGUSER',
  password: 'PGPASSWORD',
  dbname: 'PGDATABASE',
  sslmode: 'PGSSLMODE',
  sslrootcert: 'PGSSLROOTCERT',
  sslcert: 'PGSSLCERT',
  sslkey: 'PGSSLKEY',
  application_name: 'PGAPPNAME',
  connect_timeout: 'PGCONNECT_TIMEOUT',
  options: 'PGOPTIONS',
};

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

/** A host name no URL names: stands in for an empty host while the URL is parsed. */
const EMPTY_HOST = 'cairn-empty-host.invalid';

/**
 * libpq reads user information without a host (`postgres://user:pw@/db?host=/var/run/postgresql`,
 * `postgres://user@:5433/db`: the default host, or ?host=); the WHATWG parser refuses it. The
 * empty host is given a stand-in for parsing, and read back as empty.
 */
function withHostStandIn(url: string): { text: string; standIn: boolean } {
  const m = /^(postgres(?:ql)?:\/\/[^/?#]*@)(?=[:/?#]|$)/i.exec(url);
  const head = m?.[1];
  return head !== undefined ? { text: `${head}${EMPTY_HOST}${url.slice(head.length)}`, standIn: true } : { text: url, standIn: false };
}

/**
 * `options.server`: a URL without a database (`postgres://host:port/`) is accepted and names the
 * whole server (database ''), for whole-server backups and restores (server-source.ts).
 */
export function parsePostgresUrl(url: string, options: { server?: boolean } = {}): PgConnectionSettings {
  let u: URL;
  const { text, standIn } = withHostStandIn(url);
  try {
    u = new URL(text);
  } catch {
    throw invalidUrl(url, `write ${POSTGRES_URL_FORMS}.${passwordHint(url)}`);
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw invalidUrl(url, `write ${POSTGRES_URL_FORMS}.`);
  }
  const params: Record<string, string> = {};
  const unknown: string[] = [];
  for (const [k, v] of u.searchParams) {
    if (!Object.hasOwn(URL_PARAMS, k)) {
      unknown.push(k);
      continue;
    }
    if (Object.hasOwn(params, k)) throw invalidUrl(url, `the query parameter "${k}" is given twice.`);
    params[k] = v;
  }
  if (unknown.length > 0) {
    const names = unknown.map((k) => `"${k.length > 40 ? `${k.slice(0, 40)}…` : k}"`).join(', ');
    throw invalidUrl(
      url,
      `cairn does not support the query parameter${unknown.length > 1 ? 's' : ''} ${names}. Supported: ${Object.keys(URL_PARAMS).join(', ')}; or set the PG* environment variable instead.`,
    );
  }
  const fromUrl = (what: 'host' | 'port' | 'user' | 'password' | 'dbname', inUrl: string): string | undefined => {
    const q = params[what];
    delete params[what];
    if (q !== undefined && inUrl !== '' && q !== inUrl) {
      throw invalidUrl(url, `the ${what === 'dbname' ? 'database' : what} is given both in the URL and as ?${what}=; give it once.`);
    }
    return inUrl !== '' ? inUrl : q;
  };
  let database: string;
  let hostInUrl: string;
  let userInUrl: string;
  let passwordInUrl: string;
  try {
    database = decodeURIComponent(u.pathname.replace(/^\//, ''));
    // WHATWG keeps an IPv6 literal's brackets; libpq and pg want the bare address.
    hostInUrl = standIn && u.hostname === EMPTY_HOST ? '' : decodeURIComponent(u.hostname).replace(/^\[(.*)\]$/, '$1');
    userInUrl = decodeURIComponent(u.username);
    passwordInUrl = u.password ? decodeURIComponent(u.password) : '';
  } catch {
    throw invalidUrl(url, 'it has an invalid percent-encoding.');
  }
  database = fromUrl('dbname', database) ?? '';
  if (database.includes('/')) {
    throw new UsageError(`The PostgreSQL URL "${previewUrl(url)}" names no single database (its path holds a "/", which cairn does not take in a database name; the path is not echoed, as it may be part of a password): write ${POSTGRES_URL_FORMS}.${passwordHint(url)}`);
  }
  if (!database && !options.server) {
    throw new UsageError(`The PostgreSQL URL "${previewUrl(url)}" names no database: write ${POSTGRES_URL_FORMS}.${passwordHint(url)}`);
  }
  const host = fromUrl('host', hostInUrl) || process.env.PGHOST || '127.0.0.1';
  if (host.includes(',')) throw invalidUrl(url, 'several hosts are not supported; name one.');
  const portText = fromUrl('port', u.port) || process.env.PGPORT || '5432';
  const port = Number(portText);
  if (!/^\d{1,5}$/.test(portText) || port < 1 || port > 65535) throw invalidUrl(url, `the port "${portText.slice(0, 20)}" is not a number from 1 to 65535.`);
  const user = fromUrl('user', userInUrl) || process.env.PGUSER || 'postgres';
  const password = fromUrl('password', passwordInUrl);
  if (params.sslmode !== undefined && !SSLMODES.has(params.sslmode)) {
    throw invalidUrl(url, `sslmode must be one of ${[...SSLMODES].join(', ')}.`);
  }
  if (params.connect_timeout !== undefined && !/^\d{1,6}$/.test(params.connect_timeout)) {
    throw invalidUrl(url, 'connect_timeout must be a whole number of seconds.');
  }
  return { host, port, user, database, password: password === '' ? undefined : password, params };
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
 * `postgres://user@host:port/db` (a location, no secret) → `postgres://host:port/db`: the user
 * does not change the database; localhost, 127.0.0.1, ::1 and a socket folder are one server.
 * Undefined for a location that is not a PostgreSQL one.
 */
export function postgresDatabaseKey(location: string): string | undefined {
  // Greedy host part: the port and database are the last ":port/db" (a socket folder has slashes).
  const pg = /^postgres(?:ql)?:\/\/(?:[^@/]*@)?(.*):(\d+)\/([^/]*)$/i.exec(location);
  if (!pg) return undefined;
  let host = (pg[1] ?? '').replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (host === '' || host.startsWith('/') || LOCAL_HOSTS.has(host)) host = 'localhost';
  let db = pg[3] ?? '';
  try {
    db = decodeURIComponent(db);
  } catch {
    /* kept as written */
  }
  return `postgres://${host}:${pg[2]}/${db}`;
}

/**
 * The URL with its password replaced by *** wherever it is: in the user info (up to the last
 * "@", so a raw "/", "?", "#" or "@" in the password is covered too; at worst more is hidden)
 * and in a `password=` query parameter (hidden to the end of the URL).
 */
export function redactUrl(url: string): string {
  // A password= parameter first, to the end of the URL: a raw "&" or "#" in it cannot end it early.
  let out = String(url).replace(/([?&;]password=).*$/is, '$1***');
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
  // back, so they connect with TLS, as require does.
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
    ...(s.password !== undefined ? { password: s.password } : {}),
    application_name: s.params.application_name ?? 'cairn',
    ...(s.params.connect_timeout !== undefined && Number(s.params.connect_timeout) > 0 ? { connectionTimeoutMillis: Number(s.params.connect_timeout) * 1000 } : {}),
    ...(s.params.options !== undefined ? { options: s.params.options } : {}),
    ...(ssl !== undefined ? { ssl } : {}),
  };
}

/** Opens a client, turning connection failures into one clear CairnError. */
export async function connect(s: PgConnectionSettings, database = s.database): Promise<pg.Client> {
  const client = new pg.Client(clientConfig(s, database));
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw pgError(err, s, database);
  }
  // An idle client's socket error must not crash the process; the next query reports it.
  client.on('error', () => undefined);
  return client;
}

/** Environment for pg_dump / pg_restore / pg_dumpall / psql: connection by PG* variables only. */
export function toolEnv(s: PgConnectionSettings, database = s.database): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PGHOST: s.host, PGPORT: String(s.port), PGUSER: s.user, PGDATABASE: database };
  // Variables that would send the tools elsewhere than cairn's own connections (which do not
  // read them) are not passed on: both always reach the same server.
  for (const name of ['PGHOSTADDR', 'PGSERVICE', 'PGSERVICEFILE', 'PGTARGETSESSIONATTRS', 'PGLOADBALANCEHOSTS']) delete env[name];
  // The schema archive is in the database's own encoding, as its data is (pg_dump's default;
  // PGCLIENTENCODING would make pg_dump convert, and fail on text with no equivalent).
  delete env.PGCLIENTENCODING;
  // A password from the environment of cairn itself is inherited; one from the URL replaces it.
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
    child.on('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new SourceError(`${tool} --version failed (exit ${code}).`))));
  });
}
