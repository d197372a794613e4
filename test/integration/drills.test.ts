/**
 * Issue 20, restore drills: a real server backs up a SQLite file and a PostgreSQL database, then
 * drills restore the newest backup into scratch targets, compare row counts, run checks and drop
 * the copies. Passing drills (SQLite, PostgreSQL: scratch gone, recovery seconds recorded), a
 * false check and a damaged pack (FAILED, CORRUPT, scratch still dropped), targets refused at
 * add and at run time, a drill cancelled while it restores, the target's password never answered,
 * the drill scheduler's due times (a fake clock over a real catalog), MySQL, and the CLI locally
 * and through the server.
 * PostgreSQL databases are named cairn_t_drill*; MySQL ones cairn_drill_*.
 */
import { existsSync, mkdirSync, openSync, readdirSync, rmSync, statSync, writeSync, closeSync, cpSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AlertEvent } from '../../src/core/alerts.js';
import { SqliteDrillStore } from '../../src/catalog/drills.js';
import { SqliteRegistry } from '../../src/catalog/registry.js';
import { SqliteTokenStore } from '../../src/catalog/tokens.js';
import { DrillScheduler } from '../../src/jobs/drill.js';
import type { JobRecord } from '../../src/jobs/ports.js';
import { Repository } from '../../src/repo/repository.js';
import { CairnClient, JobFailedError } from '../../src/sdk/index.js';
import { catalogFile, startServer, type RunningServer } from '../../src/server/index.js';
import Database from '../../src/sources/sqlite/driver.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { apiFailure, serverWork } from '../helpers/api.js';
import { cairnRun } from '../helpers/cli.js';
import { createDatabase, databaseExists, dropDatabase, ensurePostgres, listDatabases, loadChinook, pgUrl, psql } from '../helpers/postgres.js';
import { ensureMysql, myUrl, sql as mysql } from '../helpers/mysql.js';
import { Receiver } from '../helpers/receivers.js';
import { createHmac } from 'node:crypto';

let work: string;
let dataDir: string;
let repo: string;
let server: RunningServer;
let tokens: { admin: string; operator: string; viewer: string };
let admin: CairnClient;
let operator: CairnClient;
let viewer: CairnClient;
let shopFile: string;
let pgSource: string;
/** A webhook channel's receiver: failed drills are alerted like any failed job. */
let hook: Receiver;
const HOOK_SECRET = 'drill-hook-secret-0123456789';
const alerts: AlertEvent[] = [];
const pgDatabases: string[] = [];
/** Measured recovery times, printed at the end (docs/operations.md quotes them). */
const measured: Record<string, number> = {};

const scratchName = (): string => `cairn_t_drillscratch_${randomBytes(4).toString('hex')}`;
const PASSWORD = 'drill-target-s3cret';

/** Every pack file of a file-system repository (data/…). */
function packFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(p);
    }
  };
  walk(join(root, 'data'));
  return out;
}

/** Overwrites 8 bytes in every 128 of every pack: every chunk read from them fails its check. */
function damagePacks(root: string): void {
  for (const f of packFiles(root)) {
    const size = statSync(f).size;
    const fd = openSync(f, 'r+');
    for (let at = 32; at + 8 <= size; at += 128) writeSync(fd, Buffer.alloc(8, 0x5a), 0, 8, at);
    closeSync(fd);
  }
}

beforeAll(async () => {
  ensurePostgres();
  ({ work, dataDir, repo, tokens } = await serverWork('cairn-drills-'));
  shopFile = join(work, 'shop.db');
  const db = new Database(shopFile);
  db.exec(`CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);
    CREATE TABLE orders (id INTEGER PRIMARY KEY, customer INTEGER REFERENCES customers(id), amount INTEGER);
    CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 100;
    INSERT INTO customers (name) VALUES ('ada'), ('grace');
    INSERT INTO orders (customer, amount) VALUES (1, 50), (1, 150), (2, 300);`);
  db.close();
  pgSource = createDatabase('drill');
  pgDatabases.push(pgSource);
  psql(pgSource, `CREATE TABLE customers (id serial PRIMARY KEY, name text);
    CREATE TABLE orders (id serial PRIMARY KEY, customer int REFERENCES customers(id), amount int);
    CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 100;
    INSERT INTO customers (name) SELECT 'c' || g FROM generate_series(1, 50) g;
    INSERT INTO orders (customer, amount) SELECT 1 + g % 50, g FROM generate_series(1, 2000) g;`);
  for (const r of ['damaged']) await Repository.init(new FileSystemStorage(join(work, r)));
  server = await startServer({ dataDir, port: 0, scheduleTickMs: 3600_000, env: {}, alerts: { emit: (e) => void alerts.push(e) } });
  admin = new CairnClient({ url: server.url, token: tokens.admin });
  operator = new CairnClient({ url: server.url, token: tokens.operator });
  viewer = new CairnClient({ url: server.url, token: tokens.viewer });
  await admin.sources.add('shop', `sqlite://${shopFile}`);
  await admin.sources.add('pgshop', pgUrl(pgSource));
  await admin.repositories.add('main', repo);
  await admin.repositories.add('damaged', join(work, 'damaged'));
  hook = await Receiver.start();
  await admin.alerts.addChannel({ name: 'ops', type: 'webhook', url: `${hook.url}/cairn`, secret: HOOK_SECRET });
  await operator.backups.create({ source: 'shop', repository: 'main', id: 'shop-1' }, { waitForCompletion: true, pollMs: 25 });
  await operator.backups.create({ source: 'pgshop', repository: 'main', id: 'pgshop-1' }, { waitForCompletion: true, pollMs: 25 });
  await operator.backups.create({ source: 'pgshop', repository: 'damaged', id: 'pgshop-dmg' }, { waitForCompletion: true, pollMs: 25 });
}, 120_000);

afterAll(async () => {
  await server?.close();
  await hook?.close();
  for (const d of [...pgDatabases, ...listDatabases('cairn_t_drillscratch_%')]) dropDatabase(d);
  if (work) rmSync(work, { recursive: true, force: true });
  // What docs/operations.md quotes as measured recovery times on this machine.
  console.log(`drill recovery seconds: ${JSON.stringify(measured)}`);
});

/** The job's final record, also when it failed (runNow with waitForCompletion throws JobFailedError then). */
async function runToEnd(client: CairnClient, name: string): Promise<JobRecord> {
  try {
    return (await client.drills.runNow(name, { waitForCompletion: true, pollMs: 25 })) as JobRecord;
  } catch (err) {
    if (err instanceof JobFailedError) return err.job as JobRecord;
    throw err;
  }
}

describe('restore drills on a server', () => {
  it('a SQLite drill restores, compares every table, runs its checks, drops the scratch file and records the recovery time', async () => {
    mkdirSync(join(work, 'scratch'), { recursive: true });
    const scratch = join(work, 'scratch', 'shop-drill.db');
    const added = await admin.drills.add({
      name: 'shop-weekly',
      source: 'shop',
      repository: 'main',
      target: `sqlite://${scratch}`,
      cron: '0 5 * * 0',
      checks: ['SELECT count(*) > 0 FROM orders', 'SELECT count(*) = 2 FROM big_orders'],
    });
    expect(added).toMatchObject({ name: 'shop-weekly', source: 'shop', target: `sqlite://${scratch}`, enabled: true, lastDue: null });
    // Sunday 05:00 UTC.
    expect(new Date(added.nextRun ?? '').getUTCDay()).toBe(0);
    expect(new Date(added.nextRun ?? '').getUTCHours()).toBe(5);

    const job = await runToEnd(operator, 'shop-weekly');
    expect(job.kind).toBe('drill');
    expect(job.state).toBe('SUCCESS');
    expect(job.params).toMatchObject({ drill: 'shop-weekly', source: 'shop', target: `sqlite://${scratch}`, trigger: 'manual' });
    expect(job.result).toMatchObject({ passed: true, backupId: 'shop-1', rowsCompared: 2, dropped: true });
    for (const f of [scratch, `${scratch}-wal`, `${scratch}-shm`, `${scratch}-journal`]) expect(existsSync(f)).toBe(false);

    const { drill, runs } = await viewer.drills.get('shop-weekly');
    expect(drill.name).toBe('shop-weekly');
    expect(runs).toHaveLength(1);
    const run = runs[0];
    expect(run).toMatchObject({ drill: 'shop-weekly', jobId: job.id, trigger: 'manual', state: 'SUCCESS', backupId: 'shop-1', rowsCompared: 2, error: null });
    expect(run?.tables).toEqual([
      { name: 'customers', expected: 2, actual: 2, ok: true },
      { name: 'orders', expected: 3, actual: 3, ok: true },
    ]);
    expect(run?.checks.map((c) => [c.ok, c.value])).toEqual([[true, '1'], [true, '1']]);
    expect(run?.recoverySeconds).toBeGreaterThan(0);
    expect(run?.recoverySeconds).toBeLessThan(60);
    measured.sqlite = run?.recoverySeconds ?? -1;
    expect((await viewer.drills.list()).map((d) => d.name)).toContain('shop-weekly');

    // Scoped tokens: drills of their sources and repositories only (listing, reading, running, jobs).
    const store = new SqliteTokenStore(catalogFile(dataDir));
    const inScope = new CairnClient({ url: server.url, token: store.create('operator', 'shop-team', { sources: ['shop'], repositories: ['main'] }).token });
    const outScope = new CairnClient({ url: server.url, token: store.create('operator', 'pg-team', { sources: ['pgshop'], repositories: ['main'] }).token });
    store.close();
    expect((await inScope.drills.list()).map((d) => d.name)).toContain('shop-weekly');
    expect((await outScope.drills.list()).map((d) => d.name)).not.toContain('shop-weekly');
    expect((await inScope.drills.get('shop-weekly')).drill.name).toBe('shop-weekly');
    for (const refused of [outScope.drills.get('shop-weekly'), outScope.drills.runNow('shop-weekly')]) {
      const err = await apiFailure(refused);
      expect([err.status, err.code]).toEqual([403, 'FORBIDDEN']);
      expect(err.message).toContain('shop-weekly');
    }
    expect((await inScope.jobs.list({ kind: 'drill' })).map((j) => j.id)).toContain(job.id);
    expect((await outScope.jobs.list({ kind: 'drill' })).map((j) => j.id)).not.toContain(job.id);
  });

  it('a PostgreSQL drill restores into a scratch database and drops it; the target password is never answered', async () => {
    const scratch = scratchName();
    await admin.drills.add({
      name: 'pg-nightly',
      source: 'pgshop',
      repository: 'main',
      target: pgUrl(scratch, 'postgres', PASSWORD),
      cron: '@daily',
      checks: ['SELECT count(*) = 2000 FROM orders', 'SELECT sum(amount) > 0 FROM public.big_orders'],
    });
    const job = await runToEnd(operator, 'pg-nightly');
    expect(job.state).toBe('SUCCESS');
    expect(databaseExists(scratch)).toBe(false);
    expect(listDatabases(`${scratch}%`)).toEqual([]); // no staging database left either
    const { drill, runs } = await viewer.drills.get('pg-nightly');
    expect(runs[0]).toMatchObject({ state: 'SUCCESS', backupId: 'pgshop-1', rowsCompared: 2 });
    expect(runs[0]?.tables.map((t) => [t.name, t.expected, t.actual])).toEqual([
      ['public.customers', 50, 50],
      ['public.orders', 2000, 2000],
    ]);
    expect(runs[0]?.checks.every((c) => c.ok && c.value === 'true')).toBe(true);
    measured.postgres = runs[0]?.recoverySeconds ?? -1;
    // Listings, the drill, its runs and the job: the location only.
    const answers = JSON.stringify([await admin.drills.list(), drill, runs, await admin.jobs.get(job.id), await admin.jobs.list({ kind: 'drill' })]);
    expect(answers).toContain(scratch);
    expect(answers).not.toContain(PASSWORD);
    // Viewers read, operators run, only admins add and remove (a drill holds a target URL).
    expect((await apiFailure(operator.drills.add({ name: 'x', source: 'pgshop', target: pgUrl(scratchName()) }))).status).toBe(403);
    expect((await apiFailure(operator.drills.remove('pg-nightly'))).status).toBe(403);
    expect((await apiFailure(viewer.drills.runNow('pg-nightly'))).status).toBe(403);
  }, 60_000);

  it('a PostgreSQL drill of Chinook (11 tables, 15 607 rows) compares every table', async () => {
    const chinook = createDatabase('drillchinook');
    pgDatabases.push(chinook);
    loadChinook(chinook);
    await admin.sources.add('chinook', pgUrl(chinook));
    await operator.backups.create({ source: 'chinook', repository: 'main', id: 'chinook-1' }, { waitForCompletion: true, pollMs: 25 });
    const scratch = scratchName();
    await admin.drills.add({ name: 'chinook', source: 'chinook', repository: 'main', target: pgUrl(scratch), checks: ['SELECT count(*) = 3503 FROM track'] });
    const job = await runToEnd(operator, 'chinook');
    expect(job.state, JSON.stringify(job.error)).toBe('SUCCESS');
    const [run] = (await viewer.drills.get('chinook')).runs;
    expect(run?.rowsCompared).toBe(11);
    expect(run?.tables.reduce((n, t) => n + t.actual, 0)).toBe(15_607);
    expect(databaseExists(scratch)).toBe(false);
    measured.postgresChinook = run?.recoverySeconds ?? -1;

    // Cancelled while it restores: CANCELED, recorded, and neither the scratch database nor a
    // staging one is left.
    const started = await operator.drills.runNow('chinook');
    const deadline = Date.now() + 30_000;
    let current = started as JobRecord;
    while (Date.now() < deadline && current.state === 'STARTED') current = (await viewer.jobs.get(started.id)) as JobRecord; // polled for a state, with a deadline
    expect(current.state).toBe('TRANSFERRING');
    await operator.jobs.cancel(started.id);
    const ended = (await viewer.jobs.wait(started.id, { pollMs: 25 })) as JobRecord;
    expect(ended.state).toBe('CANCELED');
    expect(listDatabases(`${scratch}%`)).toEqual([]);
    expect((await viewer.drills.get('chinook')).runs[0]).toMatchObject({ jobId: started.id, state: 'CANCELED', error: { code: 'CANCELLED' } });
  }, 60_000);

  it('a check that is false fails the drill (CORRUPT, naming the check) and the scratch copy is dropped', async () => {
    const scratch = scratchName();
    await admin.drills.add({
      name: 'pg-false',
      source: 'pgshop',
      repository: 'main',
      target: pgUrl(scratch),
      checks: ['SELECT count(*) > 0 FROM orders', 'SELECT count(*) = 999 FROM orders', 'SELECT * FROM no_such_table'],
    });
    const job = await runToEnd(operator, 'pg-false');
    expect(job.state).toBe('FAILED');
    expect(job.error?.code).toBe('CORRUPT');
    expect(job.error?.message).toContain('SELECT count(*) = 999 FROM orders');
    expect(job.error?.message).toContain('no_such_table');
    // What the alerts layer reports a failed job by: its params name the drill and the source.
    expect(job.params).toMatchObject({ drill: 'pg-false', source: 'pgshop' });
    expect(databaseExists(scratch)).toBe(false);
    const [run] = (await viewer.drills.get('pg-false')).runs;
    expect(run).toMatchObject({ state: 'FAILED', jobId: job.id, rowsCompared: 2, error: { code: 'CORRUPT' } });
    expect(run?.checks.map((c) => c.ok)).toEqual([true, false, false]);
    expect(run?.checks[1]?.value).toBe('false');
    expect(run?.checks[2]?.error).toMatch(/no_such_table/);
    expect(job.error?.message).not.toMatch(/\.\./); // one period at the end of each sentence
    expect(run?.recoverySeconds).toBeGreaterThan(0);
  }, 60_000);

  it('a damaged pack fails the drill with CORRUPT, and neither the scratch database nor a staging one is left', async () => {
    damagePacks(join(work, 'damaged'));
    const scratch = scratchName();
    await admin.drills.add({ name: 'pg-damaged', source: 'pgshop', repository: 'damaged', target: pgUrl(scratch), checks: ['SELECT true'] });
    const job = await runToEnd(operator, 'pg-damaged');
    expect(job.state).toBe('FAILED');
    expect(job.error?.code).toBe('CORRUPT');
    expect(listDatabases(`${scratch}%`)).toEqual([]);
    const [run] = (await viewer.drills.get('pg-damaged')).runs;
    // The run names the backup it tried, as does the error.
    expect(run).toMatchObject({ state: 'FAILED', backupId: 'pgshop-dmg', recoverySeconds: null, error: { code: 'CORRUPT' } });
    expect(job.error?.message).toMatch(/^Drill "pg-damaged" could not restore backup pgshop-dmg into /);
    const shownRun = await cairnRun(['drill', 'show', 'pg-damaged'], { CAIRN_SERVER: server.url, CAIRN_TOKEN: tokens.viewer, CAIRN_DATA_DIR: '', CAIRN_REPO: '' });
    expect(shownRun.stdout).toMatch(/FAILED backup pgshop-dmg, 0 table\(s\) compared/);
    // Alerted: the webhook channel (no rules: failures of anything) receives it, signed.
    let delivered: { body: string; headers: Record<string, unknown> } | undefined;
    for (const deadline = Date.now() + 15_000; !delivered && Date.now() < deadline; await new Promise((r) => setTimeout(r, 20))) {
      delivered = hook.received.find((r) => (JSON.parse(r.body) as { job?: { id?: string } }).job?.id === job.id);
    }
    expect(delivered, 'no alert for the failed drill reached the webhook').toBeDefined();
    const sent = JSON.parse(delivered?.body ?? '{}') as AlertEvent;
    expect(sent).toMatchObject({ kind: 'failure', drill: 'pg-damaged', source: 'pgshop', title: 'restore drill pg-damaged failed', job: { kind: 'drill', state: 'FAILED', error: { code: 'CORRUPT' } } });
    expect(delivered?.headers['x-cairn-signature']).toBe(`sha256=${createHmac('sha256', HOOK_SECRET).update(delivered?.body ?? '').digest('hex')}`);
  }, 60_000);

  it('a SQLite drill from a damaged pack fails too and leaves no scratch file', async () => {
    const damaged = join(work, 'damaged-sqlite');
    cpSync(repo, damaged, { recursive: true });
    await admin.repositories.add('damaged-sqlite', damaged);
    damagePacks(damaged);
    mkdirSync(join(work, 'scratch'), { recursive: true });
    const scratch = join(work, 'scratch', 'damaged.db');
    await admin.drills.add({ name: 'shop-damaged', source: 'shop', repository: 'damaged-sqlite', target: `sqlite://${scratch}` });
    const job = await runToEnd(operator, 'shop-damaged');
    expect([job.state, job.error?.code, job.error?.message]).toEqual(['FAILED', 'CORRUPT', expect.any(String)]);
    expect(readdirSync(join(work, 'scratch')).filter((f) => f.startsWith('damaged'))).toEqual([]);
  });

  it('refuses a target that is the source or another registered source, at add time and at run time', async () => {
    const same = await apiFailure(admin.drills.add({ name: 'self', source: 'shop', target: `sqlite://${shopFile}` }));
    expect([same.status, same.code]).toEqual([400, 'USAGE']);
    expect(same.message).toMatch(/registered source/);
    const other = await apiFailure(admin.drills.add({ name: 'other', source: 'shop', target: pgUrl(pgSource) }));
    expect(other.status).toBe(400);
    expect(other.message).toMatch(/scratch target .* is the registered source|is a registered source/);
    // Engines must match; an unknown source is a 404; a duplicate name a 409.
    expect((await apiFailure(admin.drills.add({ name: 'mixed', source: 'shop', target: pgUrl(scratchName()) }))).message).toMatch(/different engines/);
    // A whole PostgreSQL server backs up many databases: a drill restores one.
    await admin.sources.add('pgserver', 'postgres://postgres@127.0.0.1:5432/');
    expect((await apiFailure(admin.drills.add({ name: 'server', source: 'pgserver', target: pgUrl(scratchName()) }))).message).toMatch(/restores a source of one database/);
    expect((await apiFailure(admin.drills.add({ name: 'server', source: 'pgshop', target: 'postgres://postgres@127.0.0.1:5432/' }))).message).toMatch(/not a whole server/);
    await admin.sources.remove('pgserver');
    expect((await apiFailure(admin.drills.add({ name: 'nosrc', source: 'nope', target: pgUrl(scratchName()) }))).status).toBe(404);
    await admin.drills.add({ name: 'taken', source: 'shop', repository: 'main', target: `sqlite://${join(work, 'taken.db')}` });
    expect((await apiFailure(admin.drills.add({ name: 'taken', source: 'shop', repository: 'nope', target: `sqlite://${join(work, 'x.db')}` }))).status).toBe(409);
    expect((await apiFailure(admin.drills.add({ name: 'badcron', source: 'shop', target: `sqlite://${join(work, 'x.db')}`, cron: 'often' }))).status).toBe(400);
    // The server's own data folder is never a target.
    expect((await apiFailure(admin.drills.add({ name: 'catalog', source: 'shop', target: `sqlite://${catalogFile(dataDir)}` }))).status).toBe(403);

    // Registered as a source after the drill was added: the run refuses before any job exists.
    mkdirSync(join(work, 'scratch'), { recursive: true });
    const later = join(work, 'scratch', 'later.db');
    await admin.drills.add({ name: 'later', source: 'shop', repository: 'main', target: `sqlite://${later}` });
    const db = new Database(later);
    db.exec('CREATE TABLE keep (v TEXT); INSERT INTO keep VALUES (1);');
    db.close();
    await admin.sources.add('later-src', `sqlite://${later}`);
    const refused = await apiFailure(operator.drills.runNow('later'));
    expect(refused.status).toBe(400);
    expect(refused.message).toMatch(/registered source/);
    expect(existsSync(later)).toBe(true); // untouched
    await admin.sources.remove('later-src');
    expect((await admin.drills.remove('later')).removed).toBe('later');
    expect((await apiFailure(viewer.drills.get('later'))).status).toBe(404);
  });
});

describe('a drill never replaces or drops a target it did not create', () => {
  const pgRows = (db: string): string => psql(db, 'SELECT count(*) FROM keep;').trim();

  it('refuses an existing PostgreSQL target at add time and at run time (created after the add), its data intact', async () => {
    // The trial's repro: a database of someone else's, named as the target.
    const other = createDatabase('drillscratch');
    psql(other, 'CREATE TABLE keep (v int); INSERT INTO keep SELECT generate_series(1, 7);');
    const atAdd = await apiFailure(admin.drills.add({ name: 'pg-other', source: 'pgshop', repository: 'main', target: pgUrl(other) }));
    expect([atAdd.status, atAdd.code]).toEqual([409, 'CONFLICT']);
    expect(atAdd.message).toContain(other);
    expect(atAdd.message).toMatch(/exists already, and cairn did not create it.*drop it yourself/);
    expect((await apiFailure(viewer.drills.get('pg-other'))).status).toBe(404);
    // The same through the CLI in a data folder: CONFLICT's exit code, nothing added.
    const local = join(work, 'refuse-data');
    const env = { CAIRN_DATA_DIR: local, CAIRN_SERVER: '', CAIRN_TOKEN: '', CAIRN_REPO: '' };
    expect((await cairnRun(['source', 'add', 'pgshop', pgUrl(pgSource)], env)).code).toBe(0);
    expect((await cairnRun(['repo', 'add', 'main', repo], env)).code).toBe(0);
    const cliAdd = await cairnRun(['drill', 'add', 'pg-other', '--source', 'pgshop', '--repository', 'main', '--target', pgUrl(other)], env);
    expect([cliAdd.code, cliAdd.stderr]).toEqual([4, expect.stringContaining(other)]);

    // Created after the drill was added: the run refuses before any job exists, and drops nothing.
    const later = `cairn_t_drillscratch_${randomBytes(4).toString('hex')}`;
    await admin.drills.add({ name: 'pg-later', source: 'pgshop', repository: 'main', target: pgUrl(later) });
    expect((await cairnRun(['drill', 'add', 'pg-later', '--source', 'pgshop', '--repository', 'main', '--target', pgUrl(later)], env)).code).toBe(0);
    psql('postgres', `CREATE DATABASE ${later};`);
    psql(later, 'CREATE TABLE keep (v int); INSERT INTO keep SELECT generate_series(1, 5);');
    const atRun = await apiFailure(operator.drills.runNow('pg-later'));
    expect([atRun.status, atRun.code]).toEqual([409, 'CONFLICT']);
    expect(atRun.message).toContain(later);
    const cliRun = await cairnRun(['drill', 'run-now', 'pg-later'], env);
    expect([cliRun.code, cliRun.stdout]).toEqual([4, '']);
    expect(cliRun.stderr).toMatch(/exists already, and cairn did not create it/);
    expect([pgRows(other), pgRows(later)]).toEqual(['7', '5']);
    expect((await viewer.drills.get('pg-later')).runs).toEqual([]);
  }, 60_000);

  it('refuses an existing SQLite target at add time and at run time, the file intact', async () => {
    mkdirSync(join(work, 'scratch'), { recursive: true });
    const other = join(work, 'scratch', 'other.db');
    const db = new Database(other);
    db.exec("CREATE TABLE keep (v TEXT); INSERT INTO keep VALUES ('mine');");
    db.close();
    const atAdd = await apiFailure(admin.drills.add({ name: 'sq-other', source: 'shop', repository: 'main', target: `sqlite://${other}` }));
    expect([atAdd.status, atAdd.code]).toEqual([409, 'CONFLICT']);
    expect(atAdd.message).toContain(other);
    // A -wal file alone is a database's too.
    const walOnly = join(work, 'scratch', 'walonly.db');
    closeSync(openSync(`${walOnly}-wal`, 'w'));
    expect((await apiFailure(admin.drills.add({ name: 'sq-wal', source: 'shop', repository: 'main', target: `sqlite://${walOnly}` }))).status).toBe(409);

    const later = join(work, 'scratch', 'later-file.db');
    await admin.drills.add({ name: 'sq-later', source: 'shop', repository: 'main', target: `sqlite://${later}` });
    cpSync(other, later);
    const atRun = await apiFailure(operator.drills.runNow('sq-later'));
    expect([atRun.status, atRun.code]).toEqual([409, 'CONFLICT']);
    for (const f of [other, later]) {
      const check = new Database(f, { readonly: true });
      expect(check.prepare('SELECT v FROM keep').pluck().all()).toEqual(['mine']);
      check.close();
    }
  });

  it('replaces the leftover of an interrupted run of the same drill (recorded as pending), and says nothing of --sessions', async () => {
    // SQLite: a partial copy where the store records "scratch pending" for this drill.
    mkdirSync(join(work, 'scratch'), { recursive: true });
    const file = join(work, 'scratch', 'leftover.db');
    await admin.drills.add({ name: 'sq-leftover', source: 'shop', repository: 'main', target: `sqlite://${file}`, checks: ['SELECT count(*) = 3 FROM orders'] });
    const partial = new Database(file);
    partial.exec('CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);');
    partial.close();
    // PostgreSQL: the same, a database the interrupted run had created.
    const pgLeft = `cairn_t_drillscratch_${randomBytes(4).toString('hex')}`;
    await admin.drills.add({ name: 'pg-leftover', source: 'pgshop', repository: 'main', target: pgUrl(pgLeft), checks: ['SELECT count(*) = 2000 FROM orders'] });
    psql('postgres', `CREATE DATABASE ${pgLeft};`);
    psql(pgLeft, 'CREATE TABLE customers (id int);');
    const store = new SqliteDrillStore(catalogFile(dataDir));
    try {
      store.setScratchPending('sq-leftover', `sqlite://${file}`);
      store.setScratchPending('pg-leftover', (await viewer.drills.get('pg-leftover')).drill.target);
      // Recorded for another drill only: not this one's to replace.
      store.setScratchPending('sq-other-drill', `sqlite://${file}`);
    } finally {
      store.close();
    }
    for (const name of ['sq-leftover', 'pg-leftover']) {
      const job = await runToEnd(operator, name);
      expect(JSON.stringify(job.error ?? null)).not.toMatch(/--sessions/);
      expect([name, job.state]).toEqual([name, 'SUCCESS']);
      expect(job.result).toMatchObject({ passed: true, dropped: true });
    }
    expect(existsSync(file)).toBe(false);
    expect(databaseExists(pgLeft)).toBe(false);
    const after = new SqliteDrillStore(catalogFile(dataDir));
    try {
      expect([after.scratchPending('sq-leftover'), after.scratchPending('pg-leftover')]).toEqual([null, null]); // cleared after the drop
    } finally {
      after.close();
    }
  }, 60_000);

  it('a restore error in a drill names the drill, backup and target and quotes no flag the user did not give', async () => {
    const { drillRestoreError } = await import('../../src/jobs/drill.js');
    const { ConflictError, SourceError, UsageError } = await import('../../src/core/errors.js');
    const cases = [
      new UsageError('--sessions terminate: cairn does not end processes that have a SQLite file open; stop them, or use --sessions wait (until they close it) or refuse.'),
      new SourceError('must be owner of table orders. The backup records object owners, and the restoring role is neither a superuser nor a member of those roles: restore with --no-owner (API: noOwner) so the objects belong to the restoring role, or restore as a superuser.'),
      new ConflictError('Table "orders" exists in sqlite:///x.db; restore with --on-conflict overwrite or replace, or --rename it.'),
    ];
    for (const err of cases) {
      const out = drillRestoreError(err, 'nightly', 'shop-1', 'sqlite:///x.db') as Error & { code: string };
      expect(out.message).toMatch(/^Drill "nightly" could not restore backup shop-1 into sqlite:\/\/\/x\.db: /);
      expect(out.message).not.toMatch(/--[a-z]/);
      expect(out.message).not.toMatch(/\.\.$/);
      expect(out.code).toBe(err.code);
    }
    expect((drillRestoreError(cases[1], 'n', 'b', 't') as Error).message).toContain('must be owner of table orders');
  });
});

describe('the drill scheduler', () => {
  it('runs a drill once when its due time passes (missed ones once), and records and alerts a run that cannot start', async () => {
    const file = join(work, 'sched-catalog.db');
    const registry = new SqliteRegistry(file);
    const store = new SqliteDrillStore(file);
    try {
      store.add({ name: 'weekly', source: 'shop', repository: 'main', target: 'sqlite:///tmp/x.db', cron: '0 5 * * 0', timezone: 'UTC', checks: [], enabled: true, createdAt: '2026-11-28T10:00:00.000Z' }, 'sqlite:///tmp/x.db');
      store.add({ name: 'manual', source: 'shop', repository: 'main', target: 'sqlite:///tmp/y.db', cron: null, timezone: 'UTC', checks: [], enabled: true, createdAt: '2026-11-28T10:00:00.000Z' }, 'sqlite:///tmp/y.db');
      let now = new Date('2026-11-29T04:59:00Z'); // Sunday, before 05:00
      const launched: string[] = [];
      let fail = false;
      const events: AlertEvent[] = [];
      const scheduler = new DrillScheduler(store, {
        now: () => now,
        launch: async (name) => {
          if (fail) throw new Error(`source "shop" of drill ${name} is not registered`);
          launched.push(name);
          return { id: `drill-${launched.length}` } as JobRecord;
        },
        alerts: { emit: (e) => void events.push(e) },
      });
      expect(await scheduler.tick()).toEqual([]);
      now = new Date('2026-11-29T05:00:10Z');
      expect(await scheduler.tick()).toEqual(['drill-1']);
      expect(store.get('weekly').lastDue).toBe('2026-11-29T05:00:00.000Z');
      expect(await scheduler.tick()).toEqual([]); // that due time fired already
      now = new Date('2026-12-14T12:00:00Z'); // two Sundays missed: one run
      expect(await scheduler.tick()).toEqual(['drill-2']);
      expect(store.get('weekly').lastDue).toBe('2026-12-13T05:00:00.000Z');
      expect(launched).toEqual(['weekly', 'weekly']); // "manual" has no cron
      fail = true;
      now = new Date('2026-12-20T05:01:00Z');
      expect(await scheduler.tick()).toEqual([]);
      const [run] = store.runs('weekly');
      expect(run).toMatchObject({ jobId: null, trigger: 'schedule', state: 'FAILED', startedAt: '2026-12-20T05:00:00.000Z', error: { code: 'INTERNAL' } });
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ kind: 'failure', drill: 'weekly', source: 'shop' });
      expect(events[0]?.message).toMatch(/not registered/);
      store.setEnabled('weekly', false);
      now = new Date('2026-12-27T06:00:00Z');
      expect(await scheduler.tick()).toEqual([]);
    } finally {
      store.close();
      registry.close();
    }
  });

  it('a due drill on a running server starts from the server\'s own tick', async () => {
    // The server ticks once at start: a drill whose due time passed while it was down runs then.
    const w = await serverWork('cairn-drills-tick-');
    const file = catalogFile(w.dataDir);
    const registry = new SqliteRegistry(file);
    registry.add('source', 'shop', `sqlite://${shopFile}`, `sqlite://${shopFile}`);
    registry.add('repository', 'main', repo, repo);
    registry.close();
    const store = new SqliteDrillStore(file);
    const scratch = join(w.work, 'tick.db');
    store.add({ name: 'tick', source: 'shop', repository: 'main', target: `sqlite://${scratch}`, cron: '@hourly', timezone: 'UTC', checks: ['SELECT 1'], enabled: true, createdAt: '2026-01-01T00:00:00.000Z' }, `sqlite://${scratch}`);
    store.close();
    const s = await startServer({ dataDir: w.dataDir, port: 0, scheduleTickMs: 3600_000, env: {} });
    try {
      const client = new CairnClient({ url: s.url, token: w.tokens.viewer });
      const deadline = Date.now() + 30_000;
      let runs: Awaited<ReturnType<typeof client.drills.get>>['runs'] = [];
      while (Date.now() < deadline && runs.length === 0) {
        runs = (await client.drills.get('tick')).runs;
        if (runs.length === 0) await new Promise((r) => setTimeout(r, 50)); // polling for a state, with a deadline
      }
      expect(runs[0]).toMatchObject({ trigger: 'schedule', state: 'SUCCESS', backupId: 'shop-1' });
      expect(existsSync(scratch)).toBe(false);
    } finally {
      await s.close();
      rmSync(w.work, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('MySQL drills', () => {
  it('restores a MariaDB backup into a scratch database, counts, checks and drops it', async () => {
    ensureMysql();
    const source = `cairn_drill_src_${randomBytes(3).toString('hex')}`;
    const scratch = `cairn_drill_scr_${randomBytes(3).toString('hex')}`;
    await mysql('', `CREATE DATABASE ${source}; CREATE TABLE ${source}.orders (id INT PRIMARY KEY, amount INT); INSERT INTO ${source}.orders VALUES (1, 10), (2, 20), (3, 30);`);
    try {
      await admin.sources.add('myshop', myUrl(source));
      await operator.backups.create({ source: 'myshop', repository: 'main', id: 'myshop-1' }, { waitForCompletion: true, pollMs: 25 });
      await admin.drills.add({ name: 'my', source: 'myshop', repository: 'main', target: myUrl(scratch), checks: ['SELECT SUM(amount) = 60 FROM orders', 'SELECT COUNT(*) = 4 FROM orders'] });
      const job = await runToEnd(operator, 'my');
      expect(job.state).toBe('FAILED'); // the second check is false
      const [run] = (await viewer.drills.get('my')).runs;
      expect(run?.tables).toEqual([{ name: 'orders', expected: 3, actual: 3, ok: true }]);
      expect(run?.checks.map((c) => [c.ok, c.value])).toEqual([[true, '1'], [false, '0']]);
      measured.mysql = run?.recoverySeconds ?? -1;
      const left = await mysql('', `SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE '${scratch}%'`);
      expect(left).toEqual([]);
    } finally {
      await mysql('', `DROP DATABASE IF EXISTS ${source}; DROP DATABASE IF EXISTS ${scratch}`);
    }
  }, 60_000);
});

describe('cairn drill', () => {
  it('adds, lists, shows, runs and removes drills in a data folder, and through the server', async () => {
    const local = join(work, 'cli-data');
    const env = { CAIRN_DATA_DIR: local, CAIRN_SERVER: '', CAIRN_TOKEN: '', CAIRN_REPO: '' };
    expect((await cairnRun(['source', 'add', 'shop', `sqlite://${shopFile}`], env)).code).toBe(0);
    expect((await cairnRun(['repo', 'add', 'main', repo], env)).code).toBe(0);
    mkdirSync(join(work, 'scratch'), { recursive: true });
    const scratch = join(work, 'scratch', 'cli.db');
    // The command shape: --schedule, --repository.
    const add = await cairnRun(['drill', 'add', 'cli', '--source', 'shop', '--repository', 'main', '--schedule', '0 5 * * 0', '--target', `sqlite://${scratch}`, '--check', 'SELECT count(*) = 3 FROM orders', '--json'], env);
    expect(add.stderr).toBe('');
    expect(JSON.parse(add.stdout)).toMatchObject({ name: 'cli', repository: 'main', cron: '0 5 * * 0', checks: ['SELECT count(*) = 3 FROM orders'] });
    // --repo and --cron, the first spellings, still work; two different values are refused.
    const old = await cairnRun(['drill', 'add', 'cli-old', '--source', 'shop', '--repo', 'main', '--cron', '@daily', '--target', `sqlite://${join(work, 'scratch', 'old.db')}`, '--json'], env);
    expect(JSON.parse(old.stdout)).toMatchObject({ repository: 'main', cron: '@daily' });
    expect((await cairnRun(['drill', 'add', 'cli-two', '--source', 'shop', '--schedule', '@daily', '--cron', '@hourly', '--target', `sqlite://${join(work, 'scratch', 'two.db')}`], env)).stderr).toMatch(/--schedule and --cron are the same option/);
    expect((await cairnRun(['drill', 'remove', 'cli-old'], env)).code).toBe(0);
    // CAIRN_REPO names the repository as for every other command; a flag given wins.
    const viaEnv = await cairnRun(['drill', 'add', 'cli-repo-env', '--source', 'shop', '--target', `sqlite://${join(work, 'scratch', 'repo-env.db')}`, '--json'], { ...env, CAIRN_REPO: 'main' });
    expect([viaEnv.code, (JSON.parse(viaEnv.stdout) as { repository?: string; drill?: { repository?: string } }).drill?.repository ?? (JSON.parse(viaEnv.stdout) as { repository?: string }).repository], viaEnv.stderr).toEqual([0, 'main']);
    expect((await cairnRun(['drill', 'remove', 'cli-repo-env'], env)).code).toBe(0);
    expect((await cairnRun(['drill', 'add', 'bad', '--source', 'shop', '--target', `sqlite://${shopFile}`], env)).code).toBe(2);
    // The URL from an environment variable (a password in it never on the command line).
    const fromEnv = await cairnRun(['drill', 'add', 'cli-env', '--source', 'shop', '--repo', 'main', '--target-env', 'SCRATCH_URL', '--json'], { ...env, SCRATCH_URL: `sqlite://${join(work, 'scratch', 'env.db')}` });
    expect(JSON.parse(fromEnv.stdout)).toMatchObject({ target: `sqlite://${join(work, 'scratch', 'env.db')}` });
    expect((await cairnRun(['drill', 'add', 'cli-env2', '--source', 'shop', '--target-env', 'UNSET_VAR_X'], env)).stderr).toMatch(/--target-env UNSET_VAR_X: the environment variable is not set/);
    const run = await cairnRun(['drill', 'run-now', 'cli'], env);
    expect(run.stderr).toBe('');
    expect(run.stdout).toMatch(/^Drill cli passed: backup shop-1 restored into .* and dropped; 2 table\(s\) match the backup's row counts, 1 check\(s\) true; recovery time \d+\.\d s\.\n$/);
    expect(existsSync(scratch)).toBe(false);
    const list = await cairnRun(['drill', 'list'], env);
    expect(list.stdout).toMatch(/^NAME\s+SOURCE\s+REPO\s+TARGET\s+SCHEDULE/);
    expect(list.stdout).toMatch(/cli\s+shop\s+main\s+sqlite:\/\/.*cli\.db\s+0 5 \* \* 0\s+1\s+yes/);
    const show = await cairnRun(['drill', 'show', 'cli'], env);
    expect(show.stdout).toMatch(/runs\s+\S+ SUCCESS backup shop-1, recovered in \d+\.\d s, 2 table\(s\) compared, 1\/1 check\(s\) true/);
    // A false check: the exit code of CORRUPT (6).
    expect((await cairnRun(['drill', 'add', 'cli-false', '--source', 'shop', '--repo', 'main', '--target', `sqlite://${join(work, 'scratch', 'cli-false.db')}`, '--check', 'SELECT 0', '--check', 'SELECT * FROM nosuchtable'], env)).code).toBe(0);
    const failed = await cairnRun(['drill', 'run-now', 'cli-false'], env);
    expect(failed.code).toBe(6);
    expect(failed.stderr).toMatch(/check "SELECT 0" answered 0, not true/);
    expect(failed.stderr).toMatch(/nosuchtable\.\n/);
    expect(failed.stderr).not.toMatch(/\.\./);
    expect((await cairnRun(['drill', 'remove', 'cli'], env)).stdout).toBe('Removed drill cli.\n');
    expect((await cairnRun(['drill', 'show', 'cli'], env)).code).toBe(3);

    // Through the server: list and show as a viewer, run-now as an operator.
    const remote = { CAIRN_SERVER: server.url, CAIRN_DATA_DIR: '', CAIRN_REPO: '' };
    const added = await cairnRun(['drill', 'add', 'cli-remote', '--source', 'shop', '--repo', 'main', '--target', `sqlite://${join(work, 'scratch', 'remote.db')}`, '--json'], { ...remote, CAIRN_TOKEN: tokens.admin });
    expect(JSON.parse(added.stdout)).toMatchObject({ name: 'cli-remote', cron: null, nextRun: null });
    const listed = await cairnRun(['drill', 'list', '--json'], { ...remote, CAIRN_TOKEN: tokens.viewer });
    expect((JSON.parse(listed.stdout) as { drills: { name: string }[] }).drills.map((d) => d.name)).toContain('cli-remote');
    const ran = await cairnRun(['drill', 'run-now', 'cli-remote'], { ...remote, CAIRN_TOKEN: tokens.operator });
    expect(ran.stdout).toMatch(/^Drill cli-remote passed: backup shop-1/);
    const shown = await cairnRun(['drill', 'show', 'cli-remote', '--json'], { ...remote, CAIRN_TOKEN: tokens.viewer });
    expect((JSON.parse(shown.stdout) as { runs: { state: string }[] }).runs.map((r) => r.state)).toEqual(['SUCCESS']);
    expect((await cairnRun(['drill', 'remove', 'cli-remote'], { ...remote, CAIRN_TOKEN: tokens.operator })).code).toBe(2); // 403: admins only
    expect((await cairnRun(['drill', 'remove', 'cli-remote'], { ...remote, CAIRN_TOKEN: tokens.admin })).stdout).toBe('Removed drill cli-remote.\n');
  }, 120_000);
});
