/**
 * PostgreSQL connection settings from a URL, for the `pg` client and for the PostgreSQL tools
 * (pg_dump, pg_restore, pg_dumpall) cairn runs as child processes. The password comes from the
 * URL, else PGPASSWORD, else ~/.pgpass (read by `pg` and by libpq); it is handed to tools only
 * through their environment, never on a command line, and never appears in `location`,
 * manifests, logs or errors.
 */
import { spawn } from 'node:child_process';
import pg from 'pg';
import { CairnError, NotFoundError, SourceError, UsageError } from '../../core/errors.js';

export interface PgConnectionSettings {
  host: string;
  port: number;
  user: string;
  database: string;
  /** undefined: let `pg` and libpq find it (PGPASSWORD, ~/.pgpass). */
  password: string | undefined;
  /** Extra libpq parameters from the URL query (sslmode, application_name, …). */
  params: Record<string, string>;
}

export const POSTGRES_URL_FORMS = 'postgres://user[:password]@host[:port]/dbname';

export function parsePostgresUrl(url: string): PgConnectionSettings {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(`Invalid PostgreSQL URL "${redactUrl(url)}": write ${POSTGRES_URL_FORMS}.`);
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new UsageError(`Invalid PostgreSQL URL "${redactUrl(url)}": write ${POSTGRES_URL_FORMS}.`);
  }
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (!database || database.includes('/')) {
    throw new UsageError(`The PostgreSQL URL "${redactUrl(url)}" names no database: write ${POSTGRES_URL_FORMS}.`);
  }
  const params: Record<string, string> = {};
  for (const [k, v] of u.searchParams) params[k] = v;
  return {
    host: decodeURIComponent(u.hostname) || process.env.PGHOST || '127.0.0.1',
    port: u.port ? Number(u.port) : Number(process.env.PGPORT || 5432),
    user: decodeURIComponent(u.username) || process.env.PGUSER || 'postgres',
    database,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    params,
  };
}

/** `postgres://user@host:port/db`: safe to print and to store in a manifest. */
export function pgLocation(s: PgConnectionSettings, database = s.database): string {
  const host = s.host.includes(':') ? `[${s.host}]` : s.host;
  return `postgres://${encodeURIComponent(s.user)}@${host}:${s.port}/${encodeURIComponent(database)}`;
}

export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/:@]*):[^@/]*@/i, '$1:***@');
}

/** Client settings for `pg`; `database` overrides the URL's (e.g. "postgres" for CREATE DATABASE). */
export function clientConfig(s: PgConnectionSettings, database = s.database): pg.ClientConfig {
  return {
    host: s.host,
    port: s.port,
    user: s.user,
    database,
    ...(s.password !== undefined ? { password: s.password } : {}),
    application_name: s.params.application_name ?? 'cairn',
    ...(s.params.sslmode && s.params.sslmode !== 'disable' ? { ssl: { rejectUnauthorized: s.params.sslmode === 'verify-full' } } : {}),
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
  if (s.password !== undefined) env.PGPASSWORD = s.password;
  if (s.params.sslmode) env.PGSSLMODE = s.params.sslmode;
  env.PGAPPNAME = 'cairn';
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
