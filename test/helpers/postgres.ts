/**
 * Test helpers for the PostgreSQL integration tests: scratch databases on the local server
 * (127.0.0.1:5432, user postgres, trust auth), fixtures, and comparisons of two databases by
 * schema (pg_dump --schema-only) and by content (per-table row checksums, sequence states).
 * Everything goes through psql / pg_dump as child processes, configured by PG* variables only.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PG_HOST = '127.0.0.1';
export const PG_PORT = 5432;
export const PG_USER = 'postgres';

export const CHINOOK_SQL = fileURLToPath(new URL('../../fixtures/chinook/chinook-postgres.sql', import.meta.url));
export const EVERY_KIND_SQL = fileURLToPath(new URL('../../fixtures/postgres/every-kind.sql', import.meta.url));

/** Environment for psql/pg_dump/pgbench: the local server, never an inherited password or database. */
export function pgEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PGHOST: PG_HOST, PGPORT: String(PG_PORT), PGUSER: PG_USER, PGCONNECT_TIMEOUT: '10' };
  delete env.PGPASSWORD;
  delete env.PGDATABASE;
  delete env.PGSERVICE;
  return { ...env, ...extra };
}

function run(cmd: string, args: string[], input?: string, env: NodeJS.ProcessEnv = pgEnv()): string {
  const r = spawnSync(cmd, args, { env, input, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, timeout: 120_000 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Starts the local cluster when it is not accepting connections. */
export function ensurePostgres(): void {
  const ready = (): boolean => spawnSync('pg_isready', ['-h', PG_HOST, '-p', String(PG_PORT)], { stdio: 'ignore' }).status === 0;
  if (ready()) return;
  const r = spawnSync('sh', ['-c', 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start'], { encoding: 'utf8' });
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (ready()) return;
    spawnSync('sleep', ['0.2']);
  }
  throw new Error(`PostgreSQL is not running at ${PG_HOST}:${PG_PORT} and could not be started: ${r.stderr ?? ''}`);
}

/** Runs SQL (any number of statements, DO blocks, …) in `db`; returns unaligned, tuples-only output. */
export function psql(db: string, sql: string, env?: NodeJS.ProcessEnv): string {
  return run('psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', db, '-f', '-'], sql, env);
}

export function psqlFile(db: string, file: string): void {
  run('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', db, '-f', file]);
}

/** SQL-quoted string literal. */
export function lit(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** SQL-quoted identifier. */
export function ident(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}

/** Creates an empty database `cairn_t_<prefix>_<random>` and returns its name. */
export function createDatabase(prefix: string): string {
  return createDatabaseWith(prefix, '');
}

/** Like createDatabase, with options after the name (`TEMPLATE template0 ENCODING 'WIN1252' …`). */
export function createDatabaseWith(prefix: string, options: string): string {
  const name = `cairn_t_${prefix}_${randomBytes(4).toString('hex')}`;
  psql('postgres', `CREATE DATABASE ${ident(name)} ${options};`);
  return name;
}

export function dropDatabase(name: string): void {
  psql('postgres', `DROP DATABASE IF EXISTS ${ident(name)} WITH (FORCE);`);
}

export function databaseExists(name: string): boolean {
  return psql('postgres', `SELECT 1 FROM pg_database WHERE datname = ${lit(name)};`).trim() === '1';
}

/** Names of databases matching a LIKE pattern, sorted. */
export function listDatabases(pattern: string): string[] {
  return psql('postgres', `SELECT datname FROM pg_database WHERE datname LIKE ${lit(pattern)} ORDER BY datname;`)
    .split('\n')
    .filter(Boolean);
}

export function pgUrl(db: string, user = PG_USER, password?: string): string {
  const auth = password === undefined ? encodeURIComponent(user) : `${encodeURIComponent(user)}:${encodeURIComponent(password)}`;
  return `postgres://${auth}@${PG_HOST}:${PG_PORT}/${encodeURIComponent(db)}`;
}

/**
 * Loads the Chinook script into `db`. The upstream script drops and creates a database called
 * "chinook" and connects to it (`\c chinook`): those lines are left out so that it lands in the
 * scratch database instead.
 */
export function loadChinook(db: string): void {
  const sql = readFileSync(CHINOOK_SQL, 'utf8')
    .split('\n')
    .filter((line) => !/^\s*(DROP DATABASE|CREATE DATABASE)\b/i.test(line) && !/^\s*\\c(onnect)?\s/.test(line))
    .join('\n');
  run('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', db, '-f', '-'], sql);
}

export function loadEveryKind(db: string): void {
  psqlFile(db, EVERY_KIND_SQL);
}

/**
 * `pg_dump --schema-only` (comments, ownership and privileges kept), normalised only where two
 * dumps of identical databases differ: the random `\restrict` key, the version header lines,
 * and runs of blank lines.
 */
export function schemaDump(db: string): string {
  const out = run('pg_dump', ['--schema-only', '-d', db]);
  return out
    .split('\n')
    .filter((line) => !/^\\(un)?restrict\b/.test(line) && !/^-- Dumped (from|by) /.test(line))
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

const SEP = '\x1f';

/** User tables, partitions and materialized views (not extension members), as [schema, name, relkind, populated]. */
function relations(db: string): [string, string, string, boolean][] {
  const rows = psql(
    db,
    `SELECT n.nspname || ${lit(SEP)} || c.relname || ${lit(SEP)} || c.relkind::text || ${lit(SEP)} || c.relispopulated::text
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'm')
        AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
      ORDER BY 1;`,
  );
  return rows
    .split('\n')
    .filter(Boolean)
    .map((r) => {
      const [s, n, k, p] = r.split(SEP);
      return [s ?? '', n ?? '', k ?? '', p === 'true'];
    });
}

/**
 * `schema.table` → `count:md5` of the table's rows in a canonical order, for every ordinary
 * table, leaf partition and materialized view ("unpopulated" for a materialized view without
 * data). Partitioned parents are left out: their rows are their partitions'.
 */
export function tableChecksums(db: string): Record<string, string> {
  const rels = relations(db);
  if (rels.length === 0) return {};
  const selects = rels.map(([s, n, , populated]) => {
    const q = `${ident(s)}.${ident(n)}`;
    const key = lit(`${s}.${n}`);
    if (!populated) return `SELECT ${key} || ${lit(SEP)} || 'unpopulated'`;
    return `SELECT ${key} || ${lit(SEP)} || count(*) || ':' || coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '') FROM ${q} t`;
  });
  const out = psql(db, `${selects.join('\nUNION ALL\n')};`);
  const result: Record<string, string> = {};
  for (const line of out.split('\n').filter(Boolean)) {
    const [k, v] = line.split(SEP);
    if (k !== undefined) result[k] = v ?? '';
  }
  return result;
}

/** `schema.sequence` → `last_value:is_called` for every sequence (owned or not). */
export function sequenceStates(db: string): Record<string, string> {
  const seqs = psql(
    db,
    `SELECT n.nspname || ${lit(SEP)} || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'S' ORDER BY 1;`,
  )
    .split('\n')
    .filter(Boolean)
    .map((r) => r.split(SEP) as [string, string]);
  if (seqs.length === 0) return {};
  const out = psql(
    db,
    seqs.map(([s, n]) => `SELECT ${lit(`${s}.${n}`)} || ${lit(SEP)} || last_value || ':' || is_called FROM ${ident(s)}.${ident(n)}`).join('\nUNION ALL\n') + ';',
  );
  const result: Record<string, string> = {};
  for (const line of out.split('\n').filter(Boolean)) {
    const [k, v] = line.split(SEP);
    if (k !== undefined) result[k] = v ?? '';
  }
  return result;
}

/** Everything a restore must reproduce, for "unchanged" and "identical" assertions. */
export function snapshotOf(db: string): { schema: string; tables: Record<string, string>; sequences: Record<string, string> } {
  return { schema: schemaDump(db), tables: tableChecksums(db), sequences: sequenceStates(db) };
}

/** Tables, partitioned tables and partitions (relkind r/p) as `schema.name`, sorted. */
export function listTables(db: string): string[] {
  return psql(
    db,
    `SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
      ORDER BY 1;`,
  )
    .split('\n')
    .filter(Boolean);
}

/** Runs pgbench with the local server settings (synchronously). */
export function pgbenchInit(db: string, scale: number): void {
  run('pgbench', ['-i', '-q', '-s', String(scale), db]);
}

export interface ScratchCluster {
  port: number;
  /** A private folder owned by the server's user (e.g. for tablespace directories); removed by stop(). */
  dir: string;
  /** Unix socket directory (local connections are trusted, for setup). */
  socketDir: string;
  stop(): void;
}

/**
 * A throw-away PostgreSQL cluster whose TCP connections need a password (scram-sha-256): the
 * shared server trusts 127.0.0.1, so a wrong password can only be detected on a server of our
 * own. Returns undefined, with the reason, when initdb cannot be run here.
 */
function clusterTools(): { initdb: string; pgCtl: string; owner?: { uid: number; gid: number }; reason?: string } {
  const cfg = spawnSync('pg_config', ['--bindir'], { encoding: 'utf8' });
  let bindir = cfg.status === 0 ? cfg.stdout.trim() : '';
  if (!bindir) {
    const v = spawnSync('sh', ['-c', 'ls /etc/postgresql | sort -n | tail -1'], { encoding: 'utf8' }).stdout.trim();
    bindir = `/usr/lib/postgresql/${v}/bin`;
  }
  const initdb = `${bindir}/initdb`;
  const pgCtl = `${bindir}/pg_ctl`;
  if (spawnSync(initdb, ['--version']).status !== 0) return { initdb, pgCtl, reason: `initdb not found in ${bindir}` };
  if (process.getuid?.() !== 0) return { initdb, pgCtl };
  const uid = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (uid.status !== 0 || spawnSync('runuser', ['--help'], { stdio: 'ignore' }).status !== 0) {
    return { initdb, pgCtl, reason: 'running as root, and there is no "postgres" user (or no runuser) to run initdb as' };
  }
  return { initdb, pgCtl, owner: { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) } };
}

/** Why startPasswordCluster() cannot work here, or undefined when it can (cheap: runs no server). */
export function passwordClusterUnavailable(): string | undefined {
  return clusterTools().reason;
}

/**
 * A throw-away PostgreSQL cluster whose TCP connections need a password (scram-sha-256): the
 * shared server trusts 127.0.0.1, so a wrong password can only be detected on a server of our
 * own. Local (socket) connections are trusted, for setting it up. Throws when it cannot start.
 */
export function startPasswordCluster(): ScratchCluster {
  return startScratchCluster('scram-sha-256');
}

/**
 * A throw-away PostgreSQL cluster on a loopback port, with TCP connections authenticated by
 * `hostAuth` (default trust: `postgres://postgres@127.0.0.1:<port>/…` connects), for tests that
 * need a whole server of their own (every database, roles, tablespaces). Throws when it cannot start.
 */
export function startScratchCluster(hostAuth: 'trust' | 'scram-sha-256' = 'trust'): ScratchCluster {
  const { initdb, pgCtl, owner, reason } = clusterTools();
  if (reason) throw new Error(reason);
  const asOwner = (cmd: string, args: string[]) =>
    owner ? spawnSync('runuser', ['-u', 'postgres', '--', cmd, ...args], { encoding: 'utf8' }) : spawnSync(cmd, args, { encoding: 'utf8' });
  const dir = mkdtempSync(join(tmpdir(), 'cairn-pgpw-'));
  const cleanupDir = () => rmSync(dir, { recursive: true, force: true });
  if (owner) chownSync(dir, owner.uid, owner.gid);
  const pwfile = join(dir, 'pw');
  writeFileSync(pwfile, `${randomBytes(12).toString('hex')}\n`);
  if (owner) chownSync(pwfile, owner.uid, owner.gid);
  const data = join(dir, 'data');
  const init = asOwner(initdb, ['-D', data, '-U', 'postgres', '--auth-local=trust', `--auth-host=${hostAuth}`, `--pwfile=${pwfile}`, '-E', 'UTF8', '--no-sync']);
  if (init.status !== 0) {
    cleanupDir();
    throw new Error(`initdb failed: ${(init.stderr || init.error?.message || '').trim()}`);
  }
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = 40_000 + Math.floor(Math.random() * 20_000);
    const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c shared_buffers=16MB -c max_connections=20 -c fsync=off`;
    const start = asOwner(pgCtl, ['-D', data, '-l', join(dir, 'log'), '-w', '-t', '30', '-o', opts, 'start']);
    if (start.status === 0) {
      return {
        port,
        dir,
        socketDir: dir,
        stop: () => {
          asOwner(pgCtl, ['-D', data, '-m', 'immediate', '-w', 'stop']);
          cleanupDir();
        },
      };
    }
  }
  let log = '';
  try {
    log = readFileSync(join(dir, 'log'), 'utf8').trim();
  } catch {
    // no log
  }
  cleanupDir();
  throw new Error(`pg_ctl start failed: ${log}`);
}
