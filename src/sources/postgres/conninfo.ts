/**
 * How a PostgreSQL URL becomes the settings of one connection, as libpq (psql, pg_dump) resolves
 * them: the URL is read by pg-connection-string (node-postgres' own parser); each setting then
 * comes from the URL (its query parameters included), else the service named by `?service=` or
 * PGSERVICE (pg_service.conf), else its PG* environment variable, else libpq's default. The
 * environment, the OS user and the home folder are injected so the rules can be tested as data.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse as parseConnectionString } from 'pg-connection-string';
import { UsageError } from '../../core/errors.js';

/**
 * The libpq keywords cairn honours, each with its environment variable. A URL's query, a service
 * file and the environment may set each of them; anything else is refused by name.
 */
export const KEYWORD_ENV = {
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
} as const;
export type Keyword = keyof typeof KEYWORD_ENV;
const KEYWORDS = Object.keys(KEYWORD_ENV) as Keyword[];

/**
 * libpq's compiled-in Unix socket directory on Debian and Ubuntu (DEFAULT_PGSOCKET_DIR; other
 * builds use /tmp): where a connection goes when neither the URL, the service nor PGHOST names a host.
 */
export const DEFAULT_SOCKET_DIR = '/var/run/postgresql';
/** libpq's compiled-in system configuration folder on Debian (`pg_config --sysconfdir`), for pg_service.conf. */
export const DEFAULT_SYSCONFDIR = '/etc/postgresql-common';
export const DEFAULT_PORT = 5432;

/** What the resolution reads besides the URL; the defaults are the process's own. */
export interface ConninfoContext {
  env: NodeJS.ProcessEnv;
  /** The operating-system user name: libpq's default user. */
  osUser: () => string;
  /** The home folder, for ~/.pg_service.conf. */
  home: () => string;
}

export const processContext: ConninfoContext = {
  env: process.env,
  osUser: () => os.userInfo().username,
  home: () => os.homedir(),
};

/**
 * A context with nothing in it: no PG* variable, no service file, no OS user. For reading back
 * what cairn itself wrote (locations, which name every setting) and for untrusted URLs.
 */
export const emptyContext: ConninfoContext = {
  env: {},
  osUser: () => '',
  home: () => '/nonexistent',
};

/**
 * How a URL is resolved. `server`: a lone "/" path is the whole server (see resolveConninfo).
 * `untrusted`: the URL came ad hoc in an API request (someone other than the machine's own
 * admin wrote it), so it may draw on nothing of the server's: no PG* variable, no service, no
 * ~/.pgpass, no Unix socket, no certificate file; everything it needs must be in the URL.
 */
export interface ResolveOptions {
  server?: boolean;
  untrusted?: boolean;
}

/** The settings of one connection, resolved; `database` '' is the whole server (see resolveConninfo). */
export interface ResolvedConninfo {
  /** Host name or address, or (starting with "/") the directory of the server's Unix socket. */
  host: string;
  port: number;
  user: string;
  database: string;
  /** undefined: none given; ~/.pgpass may still supply one (pgpass.ts). */
  password: string | undefined;
  /** The other keywords that have a value (sslmode, options, …), from wherever they came. */
  params: Partial<Record<Exclude<Keyword, 'host' | 'port' | 'user' | 'password' | 'dbname'>, string>>;
}

/** A host name no URL names: stands in for an empty host that the WHATWG parser refuses. */
const EMPTY_HOST = 'cairn-empty-host.invalid';

/**
 * libpq reads an empty host with user information or a port (`postgres://user:pw@/db`,
 * `postgres://user@:5433/db`, `postgres://:5433/db`); the WHATWG parser under pg-connection-string
 * refuses those, so the empty host is given a stand-in for parsing and read back as empty.
 */
function withHostStandIn(url: string): { text: string; standIn: boolean } {
  const m = /^(postgres(?:ql)?:\/\/(?:[^/?#]*@)?)(?=:)|^(postgres(?:ql)?:\/\/[^/?#]*@)(?=[/?#]|$)/i.exec(url);
  const head = m?.[1] ?? m?.[2];
  return head !== undefined ? { text: `${head}${EMPTY_HOST}${url.slice(head.length)}`, standIn: true } : { text: url, standIn: false };
}

/**
 * pg-connection-string decodes the path with decodeURI, which leaves the escapes of reserved
 * characters (`%40` for "@", `%3F` for "?", …) as they are; libpq decodes every escape.
 */
function decodeReserved(text: string): string {
  return text.replace(/%(2[3469ABCF]|3[ABDF]|40)/gi, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

export interface UrlSettings {
  /** Keywords the URL sets (user information, host, port, path and query), empty values left out. */
  values: Partial<Record<Keyword, string>>;
  service: string | undefined;
  /** The URL's path is exactly "/": a database-less URL written with its slash (the whole server). */
  emptyPath: boolean;
  /** The URL has no path at all (`postgres://host`, `postgres://host?sslmode=…`). */
  noPath: boolean;
}

/** Why a URL cannot be used untrusted (ResolveOptions.untrusted): the sentence after "it …". */
const UNTRUSTED_FIX =
  'a URL sent to the server in a request may use nothing of the server\'s own settings (service files, PG* variables, ~/.pgpass, its Unix socket, its files): write the network host, user, password and database in the URL, or ask an admin to register the source by name (POST /v1/sources).';

/** Query parameters that name files on the machine that connects (refused in an untrusted URL). */
const FILE_KEYWORDS = ['sslrootcert', 'sslcert', 'sslkey'];

/**
 * The URL's query parameter names, decoded as the parser decodes them (`pass%77ord` is
 * `password`); none for a URL without a query.
 */
function queryNames(url: string): string[] {
  const q = url.indexOf('?');
  if (q < 0) return [];
  const hash = url.indexOf('#', q);
  return [...new URLSearchParams(url.slice(q + 1, hash < 0 ? undefined : hash)).keys()];
}

/**
 * Reads a URL with pg-connection-string. Throws `invalid(why)` for a URL that does not parse, a
 * query parameter cairn does not honour, or a certificate file that cannot be read.
 */
export function readUrl(url: string, invalid: (why: string) => UsageError, parseFailure: () => UsageError, options: ResolveOptions = {}): UrlSettings {
  if (!/^postgres(?:ql)?:\/\//i.test(url)) throw parseFailure();
  // libpq refuses a "%" that does not start an escape; pg-connection-string would keep it as text.
  if (/%(?![0-9a-f]{2})/i.test(url)) throw invalid('it has an invalid percent-encoding (a "%" not followed by two hex digits; write a literal "%" as %25).');
  if (options.untrusted) {
    // Before parsing: pg-connection-string reads certificate files as it parses.
    const names = queryNames(url);
    if (names.includes('service')) throw invalid(`it names a service (?service=), and ${UNTRUSTED_FIX}`);
    const files = FILE_KEYWORDS.filter((k) => names.includes(k));
    if (files.length > 0) throw invalid(`it names a file of the server (${files.join(', ')}), and ${UNTRUSTED_FIX}`);
  }
  const { text, standIn } = withHostStandIn(url);
  let c: ReturnType<typeof parseConnectionString>;
  try {
    // libpq semantics for sslmode (no "verify-full for everything" warnings); cairn builds its
    // own TLS settings from the keywords (connection.ts), whatever their origin.
    c = parseConnectionString(text, { useLibpqCompat: true });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (typeof e.path === 'string') throw invalid(`cannot read the certificate file ${e.path} it names (${e.code ?? 'error'}); check sslrootcert, sslcert and sslkey.`);
    if (/verify-ca/.test(e.message)) throw invalid('sslmode=verify-ca needs sslrootcert=<file>, the certificate authority that signed the server certificate (as libpq: give the file, or use sslmode=verify-full to check against the system authorities).');
    throw parseFailure();
  }
  const special = new Set(['host', 'port', 'user', 'password', 'database', 'ssl']);
  const unknown = Object.keys(c).filter((k) => !special.has(k) && k !== 'service' && !Object.hasOwn(KEYWORD_ENV, k));
  // pg-connection-string adds `ssl` itself only when an ssl* keyword is given: otherwise it came as ?ssl=.
  if (c.ssl !== undefined && !['sslmode', 'sslrootcert', 'sslcert', 'sslkey'].some((k) => c[k] !== undefined)) unknown.push('ssl');
  if (unknown.length > 0) {
    const names = unknown.map((k) => `"${k.length > 40 ? `${k.slice(0, 40)}…` : k}"`).join(', ');
    throw invalid(
      `cairn does not support the query parameter${unknown.length > 1 ? 's' : ''} ${names}. Supported: ${[...KEYWORDS, 'service'].join(', ')}; or set the PG* environment variable instead.`,
    );
  }
  const values: Partial<Record<Keyword, string>> = {};
  const set = (k: Keyword, v: unknown): void => {
    if (typeof v === 'string' && v !== '') values[k] = v;
  };
  // host, port, user and password: pg-connection-string has already let a query parameter win
  // over the URL's part, as libpq does.
  for (const k of KEYWORDS) if (k !== 'host' && k !== 'port' && k !== 'user' && k !== 'password') set(k, c[k]);
  const host = c.host === EMPTY_HOST && standIn ? '' : c.host;
  set('host', host);
  set('port', c.port);
  set('user', c.user);
  set('password', c.password);
  // ?dbname= wins over the path, as in libpq (a query parameter overrides the URL's part).
  if (values.dbname === undefined && typeof c.database === 'string') set('dbname', decodeReserved(c.database));
  const service = typeof c.service === 'string' && c.service !== '' ? c.service : undefined;
  const emptyPath = /^postgres(?:ql)?:\/\/[^/?#]*\/(?:[?#]|$)/i.test(url);
  const noPath = /^postgres(?:ql)?:\/\/[^/?#]*(?:[?#]|$)/i.test(url);
  return { values, service, emptyPath, noPath };
}

/** One `[name]` section of a pg_service.conf file: its keywords, or why it cannot be used. */
function readServiceSection(file: string, name: string): Partial<Record<Keyword, string>> | undefined {
  const text = fs.readFileSync(file, 'utf8');
  let inSection = false;
  let found = false;
  const values: Partial<Record<Keyword, string>> = {};
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? '').trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('[')) {
      // libpq reads the first section of that name and stops at the next one.
      if (found) break;
      inSection = line === `[${name}]`;
      found = inSection;
      continue;
    }
    if (!inSection) continue;
    const eq = line.indexOf('=');
    const key = (eq < 0 ? line : line.slice(0, eq)).trim();
    if (eq < 0) throw new UsageError(`Syntax error in the PostgreSQL service file ${file}, line ${i + 1}: expected keyword=value. Fix the line.`);
    if (key === 'service') throw new UsageError(`The PostgreSQL service file ${file}, line ${i + 1}, names a service inside service "${name}"; libpq does not allow nested services. Remove the line.`);
    if (!Object.hasOwn(KEYWORD_ENV, key)) {
      throw new UsageError(
        `The PostgreSQL service file ${file}, line ${i + 1}, sets "${key.slice(0, 40)}", which cairn does not support. Supported: ${KEYWORDS.join(', ')}; remove the line or use another service.`,
      );
    }
    // The first value of a keyword counts, as in libpq.
    const value = line.slice(eq + 1).trim();
    if (values[key as Keyword] === undefined && value !== '') values[key as Keyword] = value;
  }
  return found ? values : undefined;
}

/**
 * The keywords of service `name`, as libpq finds it: in PGSERVICEFILE (else ~/.pg_service.conf),
 * then in PGSYSCONFDIR/pg_service.conf (else /etc/postgresql-common/pg_service.conf). A missing
 * file is skipped. Throws UsageError naming every file searched when no file defines it.
 */
export function serviceValues(name: string, ctx: ConninfoContext): Partial<Record<Keyword, string>> {
  const files = [ctx.env.PGSERVICEFILE || path.join(ctx.home(), '.pg_service.conf'), path.join(ctx.env.PGSYSCONFDIR || DEFAULT_SYSCONFDIR, 'pg_service.conf')];
  const searched: string[] = [];
  for (const file of files) {
    let values: Partial<Record<Keyword, string>> | undefined;
    try {
      values = readServiceSection(file, name);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ENOENT' || e.code === 'ENOTDIR') {
        searched.push(`${file} (no such file)`);
        continue;
      }
      if (err instanceof UsageError) throw err;
      throw new UsageError(`Cannot read the PostgreSQL service file ${file}: ${e.code ?? e.message}. Fix its permissions, or set PGSERVICEFILE to another file.`);
    }
    if (values !== undefined) return values;
    searched.push(`${file} (no [${name}] section)`);
  }
  throw new UsageError(
    `PostgreSQL service "${name.slice(0, 60)}" is not defined: searched ${searched.join(' and ')}. Add a [${name.slice(0, 60)}] section to one of them, set PGSERVICEFILE to the file that has it, or fix the service name (?service= in the URL, or PGSERVICE).`,
  );
}

/** The usage error of a URL that names no database (resolveConninfo). */
export const NO_DATABASE_FIX = 'write postgres://host/ for the whole server, or postgres://host/db for one database';

/**
 * Resolves a read URL the way libpq does. Each keyword: the URL, else the service (`?service=`,
 * else PGSERVICE), else its PG* variable, else the default: host → the Unix socket in
 * /var/run/postgresql, port → 5432, user → the OS user, database → PGDATABASE, else the user name.
 *
 * Two exceptions. The whole server: with `options.server`, a URL whose path is exactly "/"
 * (`postgres://host:port/`, `postgres:///`) and that names no database, nor does its service,
 * is the whole server (database ''), PGDATABASE notwithstanding. No path: a URL without a path
 * (`postgres://host:5432`) that names no database anywhere (no ?dbname=, no service dbname, no
 * PGDATABASE) is refused: it once meant the whole server, and must not quietly become the
 * user's database.
 *
 * `options.untrusted` (ResolveOptions): only the URL counts; it must name a network host (not a
 * socket folder) and a user; no service (readUrl refuses it), no variable, no default user or
 * database beyond the URL's own. Throws `invalid(why)` (a UsageError) for those, and UsageError
 * for an unknown service.
 */
export function resolveConninfo(
  u: UrlSettings,
  options: ResolveOptions,
  ctx: ConninfoContext = processContext,
  invalid: (why: string) => UsageError = (why) => new UsageError(`Invalid PostgreSQL URL: ${why}`),
): Omit<ResolvedConninfo, 'port'> & { port: string } {
  if (options.untrusted) {
    if (u.service !== undefined) throw invalid(`it names a service (?service=), and ${UNTRUSTED_FIX}`);
    ctx = emptyContext;
    const host = u.values.host;
    if (host === undefined) throw invalid(`it names no host, and ${UNTRUSTED_FIX}`);
    if (host.startsWith('/')) throw invalid(`its host is a Unix socket folder of the server, and ${UNTRUSTED_FIX}`);
    if (u.values.user === undefined) throw invalid(`it names no user, and ${UNTRUSTED_FIX}`);
  }
  const serviceName = u.service ?? (ctx.env.PGSERVICE || undefined);
  const service = serviceName !== undefined ? serviceValues(serviceName, ctx) : {};
  const pick = (k: Keyword): string | undefined => u.values[k] ?? service[k] ?? (ctx.env[KEYWORD_ENV[k]] || undefined);
  const user = pick('user') ?? ctx.osUser();
  const named = u.values.dbname ?? service.dbname ?? (ctx.env.PGDATABASE || undefined);
  let database: string;
  if (u.values.dbname ?? service.dbname) database = named as string;
  else if (options.server && u.emptyPath) database = '';
  else if (named !== undefined) database = named;
  else if (u.noPath) throw invalid(`it names no database (no path, no ?dbname=${options.untrusted ? '' : ', no dbname in a service, no PGDATABASE'}); ${NO_DATABASE_FIX}.`);
  else database = user;
  const params: ResolvedConninfo['params'] = {};
  for (const k of KEYWORDS) {
    if (k === 'host' || k === 'port' || k === 'user' || k === 'password' || k === 'dbname') continue;
    const v = pick(k);
    if (v !== undefined) params[k] = v;
  }
  return {
    host: pick('host') ?? DEFAULT_SOCKET_DIR,
    port: pick('port') ?? String(DEFAULT_PORT),
    user,
    database,
    password: pick('password'),
    params,
  };
}
