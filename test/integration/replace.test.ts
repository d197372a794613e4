/**
 * `--on-conflict replace`: the target database becomes exactly the backup, on real PostgreSQL
 * and SQLite, through the CLI, the API and runRestore. Scenarios: objects made since the backup
 * are gone, changed tables and their dependants come back; the sessions policy each way; a
 * cancellation and a SIGKILL leave the old or the new target, never neither, and leftovers the
 * next restore removes; seeded random sequences (CAIRN_REPLACE_SEEDS=1..20 for a longer run,
 * CAIRN_REPLACE_KILLS=n for more kills).
 */
import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteTokenStore } from '../../src/catalog/tokens.js';
import { runBackup } from '../../src/jobs/backup.js';
import { runRestore } from '../../src/jobs/restore.js';
import { Repository } from '../../src/repo/repository.js';
import { CairnClient, JobFailedError } from '../../src/sdk/index.js';
import { catalogFile, startServer, type RunningServer } from '../../src/server/index.js';
import { openSource, openTarget } from '../../src/sources/index.js';
import { settingValue } from '../../src/sources/postgres/replace.js';
import Database from '../../src/sources/sqlite/driver.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { CLI, cairn, cairnJson } from '../helpers/cli.js';
import { dropDatabase, ensurePostgres, ident, lit, listDatabases, PG_HOST, PG_PORT, PG_USER, pgUrl, psql, snapshotOf } from '../helpers/postgres.js';
import { dumpSqlite } from '../helpers/sqlite-compare.js';

const EXIT = { USAGE: 2, CONFLICT: 4, CANCELLED: 130 };

let work: string;
let repo: string;
const databases: string[] = [];

/** A new PostgreSQL database named with this part's prefix, dropped after the file. */
function newDb(sql: string): string {
  const name = `i15rep_${randomBytes(4).toString('hex')}`;
  psql('postgres', `CREATE DATABASE ${ident(name)};`);
  databases.push(name);
  if (sql) psql(name, sql);
  return name;
}

/** Polls `cond` every 25 ms until it holds; throws after `ms`. */
async function until(cond: () => boolean, ms = 30_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function start(args: string[]): { child: ChildProcess; done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> } {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, stderr })));
  return { child, done };
}

function backup(url: string): string {
  return cairnJson<{ id: string }>(['backup', 'create', '--repo', repo, '--source', url]).id;
}

const stagingOf = (db: string): string[] => listDatabases(`${db}\\_\\_cairn\\_%`);

/** A session on `db` named `app`, as an application would hold one. */
async function session(db: string, app: string): Promise<pg.Client> {
  const c = new pg.Client({ host: PG_HOST, port: PG_PORT, user: PG_USER, database: db, application_name: app });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

const BASE_SQL = `CREATE TABLE parent (id int PRIMARY KEY, v text);
  CREATE TABLE child (id int PRIMARY KEY, parent int REFERENCES parent(id));
  CREATE VIEW pv AS SELECT id, v FROM parent;
  INSERT INTO parent VALUES (1, 'a'), (2, 'b'); INSERT INTO child VALUES (10, 1);`;
/** Changes made after the backup: a changed table shape, new objects, a view over the new shape. */
const CHANGE_SQL = `DROP VIEW pv; ALTER TABLE parent ADD COLUMN extra int; ALTER TABLE parent ALTER COLUMN v TYPE varchar(5);
  INSERT INTO parent VALUES (3, 'c', 7); CREATE TABLE newer (x int); CREATE VIEW pv AS SELECT id, extra FROM parent;
  CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'; DELETE FROM child;`;

beforeAll(() => {
  ensurePostgres();
  work = mkdtempSync(join(tmpdir(), 'cairn-replace-'));
  repo = join(work, 'repo');
  expect(cairn(['repo', 'init', repo]).code).toBe(0);
});

afterAll(() => {
  for (const db of databases) {
    dropDatabase(db);
    for (const s of stagingOf(db)) dropDatabase(s);
  }
  rmSync(work, { recursive: true, force: true });
});

describe.sequential('PostgreSQL --on-conflict replace', () => {
  let db: string;
  let id: string;
  let atBackup: ReturnType<typeof snapshotOf>;

  beforeAll(() => {
    db = newDb(BASE_SQL);
    psql('postgres', `ALTER DATABASE ${ident(db)} SET work_mem = '3MB'; COMMENT ON DATABASE ${ident(db)} IS 'shop'; REVOKE TEMPORARY ON DATABASE ${ident(db)} FROM PUBLIC;`);
    id = backup(pgUrl(db));
    atBackup = snapshotOf(db);
  });

  it('makes the database the backup: new objects gone, changed table and its view and foreign key back; database settings kept', () => {
    psql(db, CHANGE_SQL);
    const r = cairn(['restore', id, '--repo', repo, '--to', pgUrl(db), '--on-conflict', 'replace']);
    expect(r.code, r.stderr).toBe(0);
    expect(snapshotOf(db)).toEqual(atBackup);
    expect(psql(db, `SELECT conname FROM pg_constraint WHERE contype = 'f'`).trim()).toBe('child_parent_fkey');
    const props = psql(
      'postgres',
      `SELECT shobj_description(d.oid, 'pg_database') || ' ' || (SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(datacl) a) || ' ' ||
              (SELECT setconfig::text FROM pg_db_role_setting WHERE setdatabase = d.oid) FROM pg_database d WHERE datname = ${lit(db)}`,
    ).trim();
    expect(props).toBe('shop =c/postgres,postgres=CTc/postgres {work_mem=3MB}');
    expect(stagingOf(db)).toEqual([]);
  });

  it('refuses with include/exclude/rename, and sessions options without replace (nothing changed)', () => {
    const r = cairn(['restore', id, '--repo', repo, '--to', pgUrl(db), '--on-conflict', 'replace', '--include', 'parent']);
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.stderr).toMatch(/takes no --include.*--on-conflict overwrite/s);
    const s = cairn(['restore', id, '--repo', repo, '--to', pgUrl(db), '--sessions', 'wait']);
    expect(s.code).toBe(EXIT.USAGE);
    expect(s.stderr).toContain('--on-conflict replace only');
  });

  it('sessions: refuse names them and changes nothing; wait waits for them; terminate ends them', async () => {
    psql(db, 'CREATE TABLE since (x int)');
    const changed = snapshotOf(db);
    const app = await session(db, 'i15-shop-app');
    const pid = Number((await app.query('SELECT pg_backend_pid() AS p')).rows[0].p);
    const refused = cairn(['restore', id, '--repo', repo, '--to', pgUrl(db), '--on-conflict', 'replace']);
    expect(refused.code).toBe(EXIT.CONFLICT);
    expect(refused.stderr).toContain(`pid ${pid} (user postgres, application "i15-shop-app"`);
    expect(refused.stderr).toContain('--sessions wait');
    expect(snapshotOf(db)).toEqual(changed);

    // wait: the restore loads, then waits (its staging database exists) until the session leaves.
    const waiting = start(['restore', id, '--repo', repo, '--to', pgUrl(db), '--on-conflict', 'replace', '--sessions', 'wait', '--sessions-timeout', '60s']);
    await until(() => stagingOf(db).length > 0, 30_000, 'the staging database');
    expect(psql(db, 'SELECT count(*) FROM since').trim()).toBe('0'); // still the old database
    await app.end();
    const w = await waiting.done;
    expect(w.code, w.stderr).toBe(0);
    expect(snapshotOf(db)).toEqual(atBackup);

    psql(db, 'CREATE TABLE since (x int)');
    const victim = await session(db, 'i15-victim');
    const gone = new Promise((resolve) => victim.on('error', resolve));
    const t = cairn(['restore', id, '--repo', repo, '--to', pgUrl(db), '--on-conflict', 'replace', '--sessions', 'terminate']);
    expect(t.code, t.stderr).toBe(0);
    expect(String(await gone)).toMatch(/terminat/);
    expect(snapshotOf(db)).toEqual(atBackup);
  }, 60_000);

  it('a cancellation while waiting for sessions leaves the old database; the staging database is dropped', async () => {
    psql(db, 'CREATE TABLE since (x int)');
    const changed = snapshotOf(db);
    const app = await session(db, 'i15-stays');
    try {
      const run = start(['restore', id, '--repo', repo, '--to', pgUrl(db), '--on-conflict', 'replace', '--sessions', 'wait']);
      await until(() => stagingOf(db).length > 0, 30_000, 'the staging database');
      run.child.kill('SIGINT');
      const r = await run.done;
      expect(r.code).toBe(EXIT.CANCELLED);
    } finally {
      await app.end();
    }
    expect(snapshotOf(db)).toEqual(changed);
    expect(stagingOf(db)).toEqual([]);
  }, 60_000);

  it('SIGKILL at random points: the database is the old or the new one, never missing; the next restore cleans up (a database renamed aside too)', async () => {
    const kills = Number(process.env.CAIRN_REPLACE_KILLS ?? 1);
    let seed = 15;
    const rand = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let k = 0; k < kills; k++) {
      psql(db, 'DROP TABLE IF EXISTS since; CREATE TABLE since (x int)');
      const before = snapshotOf(db);
      // Even kills land around the swap: the restore waits (loaded) for a session, which then
      // leaves; the swap follows within the 250 ms poll. Odd ones anywhere from the staging
      // database's creation on (load, swap, drop).
      const app = k % 2 === 0 ? await session(db, 'i15-kill') : undefined;
      const left = new Set(stagingOf(db)); // a previous kill's, until this restore drops them
      const run = start(['restore', id, '--repo', repo, '--to', pgUrl(db), '--on-conflict', 'replace', ...(app ? ['--sessions', 'wait'] : [])]);
      await until(() => stagingOf(db).some((n) => !left.has(n)) || run.child.exitCode !== null, 30_000, 'the staging database');
      if (app) {
        // Loaded, and polling for the sessions on the target (the session's last query shows it).
        const polling = (): boolean =>
          psql('postgres', `SELECT count(*) FROM pg_stat_activity WHERE datname = 'postgres' AND pid <> pg_backend_pid() AND query LIKE '%pg_stat_activity WHERE datname = $1 AND pid <> pg_catalog.pg_backend_pid()%'`).trim() !== '0';
        await until(() => polling() || run.child.exitCode !== null, 30_000, 'the restore to wait for sessions');
        await app.end();
      }
      await new Promise((r) => setTimeout(r, Math.floor(rand() * (app ? 1200 : 400))));
      run.child.kill('SIGKILL');
      await run.done;
      const now = snapshotOf(db); // the database exists under its name
      expect([JSON.stringify(before), JSON.stringify(atBackup)]).toContain(JSON.stringify(now));
      if (process.env.CAIRN_REPLACE_KILLS) console.log(`kill ${k}: ${JSON.stringify(now) === JSON.stringify(atBackup) ? 'new' : 'old'} database, leftovers ${stagingOf(db).length}`);
    }
    // As a swap killed between its commit and the drop leaves the old database: renamed aside, its lock free.
    const aside = `${db}__cairn_0badcafe`;
    psql('postgres', `CREATE DATABASE ${ident(aside)}`);
    const r = cairn(['restore', id, '--repo', repo, '--to', pgUrl(db), '--on-conflict', 'replace']);
    expect(r.code, r.stderr).toBe(0);
    expect(snapshotOf(db)).toEqual(atBackup);
    expect(stagingOf(db)).toEqual([]);
  }, 120_000);

  it('into a database that does not exist: a new-database restore', () => {
    const name = `i15rep_new_${randomBytes(3).toString('hex')}`;
    databases.push(name);
    const r = cairn(['restore', id, '--repo', repo, '--to', pgUrl(name), '--on-conflict', 'replace']);
    expect(r.code, r.stderr).toBe(0);
    expect(snapshotOf(name).tables).toEqual(atBackup.tables);
  });

  it('refuses the maintenance database', () => {
    const r = cairn(['restore', id, '--repo', repo, '--to', pgUrl('postgres'), '--on-conflict', 'replace']);
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.stderr).toContain('cannot replace the database "postgres"');
  });

  it('list settings are written item by item', () => {
    expect(settingValue('search_path', '"$user", public, "a ""b"", c"')).toBe(`'$user', 'public', 'a "b", c'`);
    expect(settingValue('work_mem', "3'MB")).toBe(`'3''MB'`);
  });
});

describe.sequential('SQLite --on-conflict replace', () => {
  let file: string;
  let id: string;
  let atBackup: ReturnType<typeof dumpSqlite>;
  const url = (): string => `sqlite://${file}`;

  beforeAll(() => {
    file = join(work, 'shop.db');
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.exec(`CREATE TABLE parent (id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE child (id INTEGER PRIMARY KEY, parent INT REFERENCES parent(id));
             CREATE VIEW pv AS SELECT id, v FROM parent; INSERT INTO parent VALUES (1, 'a'), (2, 'b'); INSERT INTO child VALUES (10, 1);`);
    db.close();
    chmodSync(file, 0o640);
    id = backup(url());
    atBackup = dumpSqlite(file);
  });

  let changes = 0;
  const change = (): void => {
    const n = ++changes;
    const db = new Database(file);
    db.exec(`DROP VIEW pv; ALTER TABLE parent ADD COLUMN extra${n} INT; INSERT INTO parent (id, v) VALUES (${100 + n}, 'c'); CREATE TABLE newer${n} (x);
             CREATE VIEW pv AS SELECT id, extra${n} FROM parent; DELETE FROM child;`);
    db.close();
  };

  it('makes the file the backup; a WAL left by a killed writer is not replayed into the new file; mode kept', async () => {
    change();
    // A writer killed with committed frames still in the WAL (no checkpoint): they belong to the old file.
    const crash = spawn(process.execPath, ['-e', `const D=require('better-sqlite3');const d=new D(${JSON.stringify(file)});d.pragma('wal_autocheckpoint=0');d.exec("CREATE TABLE crashed(x); INSERT INTO crashed VALUES (1)");process.kill(process.pid,'SIGKILL')`], { stdio: 'ignore' });
    await new Promise((r) => crash.on('exit', r));
    expect(statSync(`${file}-wal`).size).toBeGreaterThan(0);
    const r = cairn(['restore', id, '--repo', repo, '--to', url(), '--on-conflict', 'replace']);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(`${file}-wal`)).toBe(false);
    expect(dumpSqlite(file)).toEqual(atBackup);
    const db = new Database(file, { readonly: true });
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    db.close();
    expect(statSync(file).mode & 0o777).toBe(0o640);
    expect(readdirSync(work).filter((n) => n.includes('cairn-restore'))).toEqual([]);
  });

  it('a process holding the file: refused by name; --sessions wait waits; a cancellation meanwhile leaves the old file', async () => {
    change();
    const changed = dumpSqlite(file);
    const reader = new Database(file);
    reader.prepare('SELECT count(*) FROM parent').get();
    try {
      const refused = cairn(['restore', id, '--repo', repo, '--to', url(), '--on-conflict', 'replace']);
      expect(refused.code).toBe(EXIT.CONFLICT);
      expect(refused.stderr).toContain(`pid ${process.pid} (`);
      expect(cairn(['restore', id, '--repo', repo, '--to', url(), '--on-conflict', 'replace', '--sessions', 'terminate']).code).toBe(EXIT.USAGE);
      const staged = (): boolean => readdirSync(work).some((n) => n.startsWith('.shop.db.cairn-restore-'));
      const cancelled = start(['restore', id, '--repo', repo, '--to', url(), '--on-conflict', 'replace', '--sessions', 'wait']);
      await until(staged, 30_000, 'the staging file');
      cancelled.child.kill('SIGINT');
      expect((await cancelled.done).code).toBe(EXIT.CANCELLED);
      expect(staged()).toBe(false);
      const waiting = start(['restore', id, '--repo', repo, '--to', url(), '--on-conflict', 'replace', '--sessions', 'wait', '--sessions-timeout', '60s']);
      await until(staged, 30_000, 'the staging file');
      expect(dumpSqlite(file)).toEqual(changed);
      reader.close();
      const w = await waiting.done;
      expect(w.code, w.stderr).toBe(0);
    } finally {
      if (reader.open) reader.close();
    }
    expect(dumpSqlite(file)).toEqual(atBackup);
  }, 60_000);

  it('WAL mode: a connection /proc cannot show (one of this very process) is refused by SQLite\'s own lock; the file unchanged, still in WAL mode', async () => {
    change();
    const changed = dumpSqlite(file);
    const reader = new Database(file);
    reader.prepare('SELECT count(*) FROM parent').get();
    try {
      const r = await Repository.open(new FileSystemStorage(repo));
      const err = await runRestore({ repo: r, backupId: id, target: openTarget(url()), onConflict: 'replace', jobs: 1 }).catch((e: unknown) => e);
      expect((err as { code?: string }).code).toBe('CONFLICT');
      expect(String(err)).toContain('WAL mode');
      expect(reader.pragma('journal_mode', { simple: true })).toBe('wal');
    } finally {
      reader.close();
    }
    expect(dumpSqlite(file)).toEqual(changed);
  });

  it('through a symbolic link: the file it leads to is replaced, the link stays', () => {
    change();
    const link = join(work, 'link.db');
    symlinkSync(file, link);
    const r = cairn(['restore', id, '--repo', repo, '--to', `sqlite://${link}`, '--on-conflict', 'replace']);
    expect(r.code, r.stderr).toBe(0);
    expect(dumpSqlite(file)).toEqual(atBackup);
    rmSync(link);
  });

  it('SIGKILL at random points: the old file or the new one, intact; the next restore removes the staging file', async () => {
    const kills = Number(process.env.CAIRN_REPLACE_KILLS ?? 1);
    let seed = 7;
    const rand = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let k = 0; k < kills; k++) {
      change();
      const before = dumpSqlite(file);
      // Even kills around the switch (the restore waits, loaded, for a reader that then closes;
      // the switch follows within the 200 ms poll), odd ones anywhere.
      const reader = k % 2 === 0 ? new Database(file) : undefined;
      reader?.prepare('SELECT 1 FROM parent').get();
      const left = new Set(readdirSync(work)); // a previous kill's staging file, until this restore removes it
      const run = start(['restore', id, '--repo', repo, '--to', url(), '--on-conflict', 'replace', ...(reader ? ['--sessions', 'wait'] : [])]);
      if (reader) {
        await until(() => readdirSync(work).some((n) => n.startsWith('.shop.db.cairn-restore-') && !left.has(n)) || run.child.exitCode !== null, 30_000, 'the staging file');
        reader.close();
      }
      await new Promise((r) => setTimeout(r, (reader ? 0 : 150) + Math.floor(rand() * 400)));
      run.child.kill('SIGKILL');
      await run.done;
      const now = dumpSqlite(file);
      expect([JSON.stringify(before), JSON.stringify(atBackup)]).toContain(JSON.stringify(now));
      if (process.env.CAIRN_REPLACE_KILLS) console.log(`kill ${k}: ${JSON.stringify(now) === JSON.stringify(atBackup) ? 'new' : 'old'} file`);
      const db = new Database(file, { readonly: true });
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      db.close();
    }
    expect(cairn(['restore', id, '--repo', repo, '--to', url(), '--on-conflict', 'replace']).code).toBe(0);
    expect(readdirSync(work).filter((n) => n.includes('cairn-restore'))).toEqual([]);
  }, 60_000);
});

describe.sequential('refused before anything is touched', () => {
  it('a backup made with --include holds part of its database: replace would drop the rest', () => {
    const file = join(work, 'part.db');
    const db = new Database(file);
    db.exec('CREATE TABLE keep (x); INSERT INTO keep VALUES (1); CREATE TABLE orders (y); INSERT INTO orders VALUES (2)');
    db.close();
    const id = cairnJson<{ id: string }>(['backup', 'create', '--repo', repo, '--source', `sqlite://${file}`, '--include', 'orders']).id;
    const before = dumpSqlite(file);
    const r = cairn(['restore', id, '--repo', repo, '--to', `sqlite://${file}`, '--on-conflict', 'replace']);
    expect(r.code, r.stderr).toBe(EXIT.USAGE);
    expect(r.stderr).toMatch(/holds only part of its database \(made with --include orders\).*--on-conflict overwrite/);
    expect(dumpSqlite(file)).toEqual(before);
  });

  it('a backup of one engine into another engine\'s database: one line naming the URL form, nothing created', () => {
    const file = join(work, 'engine.db');
    const db = new Database(file);
    db.exec('CREATE TABLE t (x)');
    db.close();
    const id = cairnJson<{ id: string }>(['backup', 'create', '--repo', repo, '--source', `sqlite://${file}`]).id;
    const name = `i15rep_${randomBytes(4).toString('hex')}`;
    const r = cairn(['restore', id, '--repo', repo, '--to', pgUrl(name)]);
    expect(r.code, r.stderr).toBe(EXIT.USAGE);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/is a sqlite backup; it cannot be restored into .* a postgres database\. Restore it to a URL of the form sqlite:/);
    expect(listDatabases(name)).toEqual([]);
  });
});

describe.sequential('the API: onConflict "replace"', () => {
  let server: RunningServer;
  let client: CairnClient;
  let db: string;
  let id: string;

  beforeAll(async () => {
    const dataDir = join(work, 'data');
    const store = new SqliteTokenStore(catalogFile(dataDir));
    const token = store.create('operator').token;
    store.close();
    server = await startServer({ dataDir, port: 0, allowAdHocUrls: true });
    client = new CairnClient({ url: server.url, token });
    db = newDb(BASE_SQL);
    id = backup(pgUrl(db));
  });
  afterAll(async () => {
    await server?.close();
  });

  it('replaces the database; sessions "refuse" fails the job naming the session; include is refused', async () => {
    const atBackup = snapshotOf(db);
    psql(db, CHANGE_SQL);
    const app = await session(db, 'i15-api-app');
    try {
      const err = await client.restores.create({ backup: id, repository: repo, target: pgUrl(db), onConflict: 'replace' }, { waitForCompletion: true, pollMs: 50 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(JobFailedError);
      expect((err as JobFailedError).code).toBe('CONFLICT');
      expect((err as JobFailedError).message).toContain('i15-api-app');
      const job = await client.restores.create(
        { backup: id, repository: repo, target: pgUrl(db), onConflict: 'replace', sessions: 'terminate' },
        { waitForCompletion: true, pollMs: 50 },
      );
      expect(job.state).toBe('SUCCESS');
    } finally {
      await app.end().catch(() => undefined);
    }
    expect(snapshotOf(db)).toEqual(atBackup);
    const part = await client.restores.create({ backup: id, repository: repo, target: pgUrl(db), onConflict: 'replace', include: ['parent'] }, { waitForCompletion: true, pollMs: 50 }).catch((e: unknown) => e);
    expect((part as { code?: string }).code).toBe('USAGE');
  }, 60_000);
});

/**
 * Seeded random sequences through runBackup / runRestore: change the target at random, back it
 * up, replace it with a random earlier backup; after each replace the target equals what that
 * backup held. CAIRN_REPLACE_SEEDS=1..20 runs more seeds.
 */
describe.sequential('seeded random: change / backup / replace', () => {
  const seeds = (process.env.CAIRN_REPLACE_SEEDS ?? '1..1').split('..').map(Number) as [number, number];
  const steps = Number(process.env.CAIRN_REPLACE_STEPS ?? 2);

  const OPS = [
    (n: number) => `CREATE TABLE t${n} (id integer PRIMARY KEY, v text); INSERT INTO t${n} VALUES (${n}, 'r${n}')`,
    (n: number) => `CREATE TABLE IF NOT EXISTS base (id integer PRIMARY KEY); INSERT INTO base VALUES (${n}) ON CONFLICT DO NOTHING`,
    (n: number) => `CREATE TABLE IF NOT EXISTS base (id integer PRIMARY KEY); CREATE VIEW v${n} AS SELECT id FROM base`,
    (n: number) => `CREATE TABLE IF NOT EXISTS base (id integer PRIMARY KEY); ALTER TABLE base ADD COLUMN c${n} int DEFAULT ${n}`,
  ];
  const SQLITE_OPS = OPS.map((op) => (n: number) => op(n).replace(/ON CONFLICT DO NOTHING/, '').replace(/INSERT INTO base/, 'INSERT OR IGNORE INTO base'));

  for (let seed = seeds[0]; seed <= (seeds[1] ?? seeds[0]); seed++) {
    it(`seed ${seed}: PostgreSQL and SQLite`, async () => {
      let s = seed * 7919;
      const rand = (n: number): number => (s = (s * 1103515245 + 12345) % 2 ** 31) % n;
      const r = await Repository.init(new FileSystemStorage(join(work, `random-${seed}`)));
      const db = newDb('');
      const file = join(work, `random-${seed}.db`);
      new Database(file).exec('CREATE TABLE seed (x)');
      const held: { pg: string; pgSnap: string; sq: string; sqSnap: string }[] = [];
      for (let step = 0; step < steps; step++) {
        const n = step * 10 + rand(10);
        psql(db, OPS[rand(OPS.length)]!(n));
        const sdb = new Database(file);
        sdb.exec(SQLITE_OPS[rand(OPS.length)]!(n));
        sdb.close();
        const pgId = (await runBackup({ repo: r, source: openSource(pgUrl(db)), id: `pg-${seed}-${step}`, jobs: 1, compressionWorkers: 0 })).id;
        const sqId = (await runBackup({ repo: r, source: openSource(`sqlite://${file}`), id: `sq-${seed}-${step}`, jobs: 1, compressionWorkers: 0 })).id;
        held.push({ pg: pgId, pgSnap: JSON.stringify(snapshotOf(db)), sq: sqId, sqSnap: JSON.stringify(dumpSqlite(file)) });
        const back = held[rand(held.length)]!;
        await runRestore({ repo: r, backupId: back.pg, target: openTarget(pgUrl(db)), onConflict: 'replace', jobs: 1 });
        await runRestore({ repo: r, backupId: back.sq, target: openTarget(`sqlite://${file}`), onConflict: 'replace', jobs: 1 });
        expect(JSON.stringify(snapshotOf(db))).toBe(back.pgSnap);
        expect(JSON.stringify(dumpSqlite(file))).toBe(back.sqSnap);
      }
      expect(stagingOf(db)).toEqual([]);
    }, 120_000);
  }
});
