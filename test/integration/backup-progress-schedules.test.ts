/**
 * Issue 15, jobs and schedules, against real PostgreSQL and SQLite: backup progress with
 * estimated totals (rows rising while a table streams, percent ≤ 100 and never going back);
 * GET /v1/backups/{id} while the backup runs; a scheduled run queued behind a manual backup of
 * its source (recorded queued, then delayed; a second due time coalesced); --when-unchanged
 * skip (a write, an update, a delete and DDL each make a backup; nothing changed: skipped).
 *
 * A running backup is held deterministically by a lock: another session holds ACCESS EXCLUSIVE
 * on a table, so the backup waits at its LOCK TABLE (STARTED) until the test commits.
 *
 * PostgreSQL's change evidence is the cluster's (transaction ids): on the shared server other
 * tests' writes read as changes, so "nothing changed: skipped" is checked on SQLite here, and on
 * PostgreSQL with a private cluster when CAIRN_JOBS_SCRATCH_PG=1 (about 6 s more).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newScheduleId, SqliteScheduleStore, type ScheduleSpec } from '../../src/catalog/schedules.js';
import { SqliteJobCatalog } from '../../src/catalog/sqlite.js';
import { SqliteTokenStore } from '../../src/catalog/tokens.js';
import { runBackup } from '../../src/jobs/backup.js';
import { runRestore } from '../../src/jobs/restore.js';
import { databaseKey } from '../../src/jobs/database-key.js';
import { JobCenter } from '../../src/jobs/job-center.js';
import { EstimatedShare, type Progress } from '../../src/jobs/progress.js';
import { scheduledBackupLauncher } from '../../src/jobs/scheduled-backup.js';
import { Scheduler } from '../../src/jobs/scheduler.js';
import { Repository } from '../../src/repo/repository.js';
import { catalogFile, startServer } from '../../src/server/index.js';
import { openSource, openTarget } from '../../src/sources/index.js';
import Database from '../../src/sources/sqlite/driver.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { readAnswer, waitJob } from '../helpers/api.js';
import { cairn, cairnJson, CLI } from '../helpers/cli.js';
import { holdTableLock } from '../helpers/pg-lock.js';
import { createDatabase, dropDatabase, passwordClusterUnavailable, pgUrl, psql, startPasswordCluster } from '../helpers/postgres.js';

const BIG_ROWS = 30_000;
let dir: string;
let db: string;
let url: string;
let sqliteFile: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cairn-i15job-'));
  db = createDatabase('i15job');
  url = pgUrl(db);
  psql(db, `CREATE TABLE big (id int PRIMARY KEY, v text); INSERT INTO big SELECT g, repeat('x', 30) || g FROM generate_series(1, ${BIG_ROWS}) g;
            CREATE TABLE small (id serial PRIMARY KEY, v text); INSERT INTO small (v) VALUES ('a'), ('b'); ANALYZE;`);
  sqliteFile = join(dir, 'app.db');
  const s = new Database(sqliteFile);
  s.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 30000) INSERT INTO t SELECT n, 'row ' || n || hex(randomblob(16)) FROM g;");
  s.close();
});
afterAll(() => {
  dropDatabase(db);
  rmSync(dir, { recursive: true, force: true });
});

let repoN = 0;
async function newRepo(): Promise<Repository> {
  return Repository.init(new FileSystemStorage(join(dir, `repo-${++repoN}`)));
}

/** Waits until the backend of a backup waits for a lock on `database` (so the backup is really held). */
async function untilWaitingForLock(database: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const n = psql('postgres', `SELECT count(*) FROM pg_stat_activity WHERE datname = '${database}' AND wait_event_type = 'Lock';`).trim();
    if (Number(n) > 0) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`no session of ${database} ever waited for a lock`);
}

/** Asserts what every backup progress sequence must show, and returns the reports. */
function checkProgress(events: Progress[]): void {
  expect(events.length).toBeGreaterThan(2);
  let percent = 0;
  let rows = 0;
  for (const e of events) {
    expect(e.percent).toBeDefined();
    expect(e.percent as number).toBeGreaterThanOrEqual(percent);
    expect(e.percent as number).toBeLessThanOrEqual(100);
    expect(e.rows).toBeGreaterThanOrEqual(rows);
    expect(e.bytesTotal).toBeGreaterThan(0);
    if (e.phase !== 'done') {
      expect(e.estimated).toBe(true);
      expect(e.percent as number).toBeLessThan(100);
    }
    percent = e.percent as number;
    rows = e.rows;
  }
  const last = events.at(-1) as Progress;
  expect(last.phase).toBe('done');
  expect(last.percent).toBe(100);
  expect(last.estimated).toBe(false);
}

describe('backup progress', () => {
  it('PostgreSQL: rows rise while a table streams, against reltuples and table sizes; percent ≤ 100, never back', async () => {
    const events: Progress[] = [];
    const m = await runBackup({ repo: await newRepo(), source: openSource(url), jobs: 1, progressEveryMs: 0, onProgress: (p) => events.push(p) });
    checkProgress(events);
    const during = events.filter((e) => e.phase === 'transferring' && e.collection === 'public.big' && e.rows > 0 && e.rows < BIG_ROWS);
    expect(during.length).toBeGreaterThan(1); // rows counted while the table is copied, not only at its end
    expect(events.find((e) => e.phase === 'transferring')?.rowsTotal).toBe(BIG_ROWS + 2); // ANALYZE's reltuples
    expect(events.at(-1)?.rows).toBe(m.totals.rows);
  });

  it('SQLite: the file\'s used pages as the estimate', async () => {
    const events: Progress[] = [];
    await runBackup({ repo: await newRepo(), source: openSource(`sqlite://${sqliteFile}`), progressEveryMs: 0, onProgress: (p) => events.push(p) });
    checkProgress(events);
    expect(events.some((e) => e.phase === 'transferring' && e.rows > 0 && e.rows < 30000)).toBe(true);
    expect(events.find((e) => e.phase === 'transferring')?.rowsTotal).toBeUndefined();
  });
});

describe('EstimatedShare', () => {
  it('an estimate that proves low holds the share below 100 and raises the totals; done is 100', () => {
    const share = new EstimatedShare({ bytes: 1000, rows: 10 });
    const at = (rows: number, bytes: number, done = false) => share.fields({ rows, bytes, collectionsDone: 0, collectionsTotal: 1 }, done);
    expect(at(5, 500)).toEqual({ bytesTotal: 1000, rowsTotal: 10, percent: 50, estimated: true });
    expect(at(20, 3000)).toEqual({ bytesTotal: 3000, rowsTotal: 20, percent: 99, estimated: true });
    expect(at(25, 3500, true)).toEqual({ bytesTotal: 3500, rowsTotal: 25, percent: 100, estimated: false });
    // Never back, whatever the counts say.
    const other = new EstimatedShare({ bytes: 100 });
    other.fields({ rows: 0, bytes: 80, collectionsDone: 0, collectionsTotal: 1 });
    expect(other.fields({ rows: 0, bytes: 10, collectionsDone: 0, collectionsTotal: 1 }).percent).toBe(80);
  });
});

describe('a backup while it runs, over the API and the CLI', () => {
  it('202 names the backup id; GET /v1/backups/{id} answers STARTED with the job and its progress, then the manifest', async () => {
    const dataDir = join(dir, 'server');
    const repoDir = join(dir, 'api-repo');
    await Repository.init(new FileSystemStorage(repoDir));
    const tokens = new SqliteTokenStore(catalogFile(dataDir));
    const token = tokens.create('operator').token;
    tokens.close();
    const server = await startServer({ dataDir, port: 0, scheduleTickMs: 3600_000, allowAdHocUrls: true });
    const call = async (method: string, path: string, body?: unknown) =>
      readAnswer(await fetch(`${server.url}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) }));
    const lock = await holdTableLock(db, 'small');
    try {
      const created = await call('POST', '/v1/backups', { source: url, repository: repoDir });
      expect(created.status).toBe(202);
      const id = created.json.backupId as string;
      expect(id).toMatch(/^cairn_t_i15job_/);
      expect(created.json.job.params.id).toBe(id);
      await untilWaitingForLock(db);
      const running = await call('GET', `/v1/backups/${id}?repository=${encodeURIComponent(repoDir)}`);
      expect(running.status).toBe(200);
      expect(running.json).toMatchObject({ id, status: 'STARTED', jobId: created.json.job.id, repository: expect.any(String), error: null });
      expect(running.json.progress.rows).toBe(0);
      // Its expiry cannot be set before its manifest exists: 409 naming the job, not 404.
      const patch = await call('PATCH', `/v1/backups/${id}?repository=${encodeURIComponent(repoDir)}`, { expires: 'never' });
      expect(patch.status).toBe(409);
      expect(patch.json.error.message).toMatch(new RegExp(`still being made \\(job ${created.json.job.id}`));
      // The announced id is reserved until the job ends.
      const again = await call('POST', '/v1/backups', { source: url, repository: repoDir, id });
      expect(again.status).toBe(409);
      expect(again.json.error.message).toMatch(/already exists or is being made by another job/);
      // The CLI through the server sees the same job (run asynchronously: the server is in this process).
      const job = JSON.parse(await cliOutput(['job', 'show', created.json.job.id, '--server', server.url, '--json'], { CAIRN_TOKEN: token })) as { state: string; params: { id: string } };
      expect(job).toMatchObject({ state: 'STARTED', params: { id } });
      await lock.release();
      const final = await waitJob(server.url, token, created.json.job.id);
      expect(final.state).toBe('SUCCESS');
      expect(final.result?.backupId).toBe(id);
      expect(final.progress).toMatchObject({ percent: 100, estimated: false });
      const done = await call('GET', `/v1/backups/${id}?repository=${encodeURIComponent(repoDir)}`);
      expect(done.json.id).toBe(id);
      expect(done.json.totals.rows).toBe(BIG_ROWS + 2);
      expect(done.json.source.changeEvidence).toMatch(/^pg1:/);
      // Schedules take whenUnchanged through the API too.
      const sched = await call('POST', '/v1/schedules', { name: 'quiet', source: url, repository: repoDir, cron: '@daily', whenUnchanged: 'skip' });
      expect(sched.status).toBe(201);
      expect(sched.json.schedule.whenUnchanged).toBe('skip');
      const bad = await call('POST', '/v1/schedules', { name: 'loud', source: url, repository: repoDir, cron: '@daily', whenUnchanged: 'never' });
      expect(bad.status).toBe(400);
      expect(bad.json.error.message).toMatch(/whenUnchanged/);
    } finally {
      await lock.release().catch(() => undefined);
      await server.close();
    }
  });
});

/** A job center, schedule store and scheduler on a data folder (its catalog), with a clock the test sets. */
function world(name: string) {
  const dataDir = join(dir, name);
  const catalog = catalogFile(dataDir);
  const center = new JobCenter(new SqliteJobCatalog(catalog));
  const store = new SqliteScheduleStore(catalog);
  const clock = { now: new Date('2030-01-01T00:00:00Z') };
  const now = (): Date => new Date(clock.now.getTime());
  const repos = new Map<string, Repository>();
  const launch = scheduledBackupLauncher({ center, now, openRepository: async (r) => repos.get(r) as Repository, openSource: (s) => openSource(s) });
  const scheduler = new Scheduler(store, { now, launch, waitForJob: (id) => center.wait(id) });
  const add = (over: Partial<ScheduleSpec> & { source: string; repository: string }): ScheduleSpec => {
    const spec: ScheduleSpec = { id: newScheduleId(), name: 'hourly', cron: '0 * * * *', timezone: 'UTC', pattern: '{source}-{yyyyMMdd-HHmmss}', retention: {}, enabled: true, createdAt: clock.now.toISOString(), ...over };
    store.add(spec);
    return spec;
  };
  const at = async (iso: string): Promise<string[]> => {
    clock.now = new Date(iso);
    return scheduler.tick();
  };
  return { dataDir, center, store, scheduler, clock, repos, add, at };
}

describe('a scheduled run while a manual backup of its source runs', () => {
  it('is queued, runs when the manual backup ends (recorded delayed), and a second due time meanwhile is coalesced', async () => {
    const w = world('queue');
    const repo = await newRepo();
    w.repos.set('r', repo);
    w.add({ source: url, repository: 'r' });
    const source = openSource(url);
    const lock = await holdTableLock(db, 'small');
    let manualId: string;
    try {
      const manual = await w.center.start({
        kind: 'backup',
        exclusiveKey: databaseKey(source.location),
        params: { source: source.location },
        run: async (ctx) => ({ backupId: (await runBackup({ repo, source, id: 'manual-1', signal: ctx.signal, onProgress: ctx.progress })).id }),
      });
      manualId = manual.id;
      await untilWaitingForLock(db);
      expect(await w.at('2030-01-01T01:00:05Z')).toEqual([]); // queued, not started
      expect(w.scheduler.queuedRuns()).toEqual([{ schedule: 'hourly', dueAt: '2030-01-01T01:00:00.000Z', waitingFor: manual.id }]);
      expect(w.store.runs('hourly')[0]).toMatchObject({ status: 'queued', reason: expect.stringContaining(manual.id) });
      await w.at('2030-01-01T02:00:05Z');
      expect(w.store.runs('hourly')[0]).toMatchObject({ dueAt: '2030-01-01T02:00:00.000Z', status: 'skipped-coalesced', reason: expect.stringContaining('still queued') });
    } finally {
      await lock.release();
    }
    await w.scheduler.idle();
    const [coalesced, delayed] = w.store.runs('hourly');
    expect(coalesced?.status).toBe('skipped-coalesced');
    expect(delayed).toMatchObject({ dueAt: '2030-01-01T01:00:00.000Z', status: 'delayed', reason: expect.stringContaining(manualId) });
    const job = await w.center.get(delayed?.jobId as string);
    expect(job.state).toBe('SUCCESS');
    const ids = (await repo.listManifests()).map((m) => [m.id, m.type]);
    expect(ids).toEqual(expect.arrayContaining([['manual-1', 'manual'], [job.result?.backupId, 'scheduled']]));
    // The CLI shows the history as recorded.
    const shown = cairnJson<{ runs: { status: string; reason: string | null }[] }>(['schedule', 'show', 'hourly', '--data-dir', w.dataDir, '--json']);
    expect(shown.runs.map((r) => r.status)).toEqual(['skipped-coalesced', 'delayed']);
    // A server starting on a data folder whose process stopped with a run queued ends that run.
    w.store.recordRun('hourly', '2030-01-01T03:00:00.000Z', 'queued', '2030-01-01T03:00:05.000Z', null, 'queued behind job x');
    expect(w.scheduler.recoverQueued()).toBe(1);
    expect(w.store.runs('hourly')[0]).toMatchObject({ status: 'failed', reason: expect.stringContaining('server stopped') });
  });
});

describe('--when-unchanged skip', () => {
  it('the CLI takes it (the API: above); a bad value is refused naming the choices', () => {
    const dataDir = join(dir, 'cli-sched');
    const bad = cairn(['schedule', 'add', 'x', '--source', `sqlite://${sqliteFile}`, '--repo', join(dir, 'x'), '--cron', '@daily', '--when-unchanged', 'never', '--data-dir', dataDir]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--when-unchanged "never".*skip.*backup/);
    const ok = cairnJson<{ whenUnchanged?: string }>(['schedule', 'add', 'x', '--source', `sqlite://${sqliteFile}`, '--repo', join(dir, 'x'), '--cron', '@daily', '--when-unchanged', 'skip', '--data-dir', dataDir, '--json']);
    expect(ok.whenUnchanged).toBe('skip');
    expect(cairn(['schedule', 'show', 'x', '--data-dir', dataDir]).stdout).toMatch(/unchanged\s+skip/);
  });

  it.each(['WAL', 'DELETE'])('SQLite (journal mode %s): skipped exactly when nothing changed (insert, update, delete, DDL each make a backup)', async (mode) => {
    const w = world(`unchanged-sqlite-${mode}`);
    const repo = await newRepo();
    w.repos.set('r', repo);
    const file = join(dir, `unchanged-${mode}.db`);
    const s = new Database(file);
    s.exec(`PRAGMA journal_mode = ${mode}; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a');`);
    try {
      w.add({ source: `sqlite://${file}`, repository: 'r', whenUnchanged: 'skip' });
      await expectRuns(w, repo, [
        ['first', () => undefined, 'backup'],
        ['nothing', () => undefined, 'skip'],
        ['insert', () => s.exec("INSERT INTO t VALUES (2, 'b')"), 'backup'],
        ['nothing', () => undefined, 'skip'],
        ['update', () => s.exec("UPDATE t SET v = 'c' WHERE id = 1"), 'backup'],
        ['delete', () => s.exec('DELETE FROM t WHERE id = 2'), 'backup'],
        ['DDL', () => s.exec('CREATE INDEX t_v ON t (v)'), 'backup'],
        ['checkpoint only', () => mode === 'WAL' && s.pragma('wal_checkpoint(TRUNCATE)'), 'either'],
        ['nothing', () => undefined, 'skip'],
      ]);
    } finally {
      s.close();
    }
  });

  it('SQLite in WAL mode whose writer closed: the -wal/-shm a backup\'s own read leaves are no change', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-evidence-'));
    try {
      const file = join(dir, 'w.db');
      const db = new Database(file);
      db.pragma('journal_mode = WAL');
      db.exec('CREATE TABLE t (x); INSERT INTO t VALUES (1)');
      db.close(); // the last connection: the log is checkpointed and removed
      const source = openSource(`sqlite://${file}`);
      const before = await source.changeEvidence?.();
      const repo = await Repository.init(new FileSystemStorage(join(dir, 'repo')));
      await runBackup({ repo, source });
      expect(await source.changeEvidence?.()).toBe(before);
      const writer = new Database(file);
      writer.exec('INSERT INTO t VALUES (2)');
      writer.close();
      expect(await source.changeEvidence?.()).not.toBe(before);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('PostgreSQL: insert, update, delete, DDL and a bare nextval each make a backup', async () => {
    const w = world('unchanged-pg');
    const repo = await newRepo();
    w.repos.set('r', repo);
    const d = createDatabase('i15job');
    try {
      psql(d, 'CREATE TABLE t (id int PRIMARY KEY, v text); CREATE SEQUENCE s; INSERT INTO t VALUES (1, \'a\');');
      w.add({ source: pgUrl(d), repository: 'r', whenUnchanged: 'skip' });
      // On the shared server other tests' transactions read as changes: only "backup" is certain.
      await expectRuns(w, repo, [
        ['first', () => undefined, 'backup'],
        ['insert', () => psql(d, "INSERT INTO t VALUES (2, 'b')"), 'backup'],
        ['update', () => psql(d, "UPDATE t SET v = 'c' WHERE id = 1"), 'backup'],
        ['delete', () => psql(d, 'DELETE FROM t WHERE id = 2'), 'backup'],
        ['DDL', () => psql(d, 'ALTER TABLE t ADD COLUMN w int'), 'backup'],
        ['nextval', () => psql(d, "SELECT nextval('s'); SELECT nextval('s')"), 'backup'],
      ]);
    } finally {
      dropDatabase(d);
    }
  });

  const scratch = process.env.CAIRN_JOBS_SCRATCH_PG === '1' ? passwordClusterUnavailable() : 'set CAIRN_JOBS_SCRATCH_PG=1 to run it (starts a private cluster, about 6 s)';
  /** The title, and when the case is skipped, the reason printed to the run log too. */
  const titled = (title: string, why: string | undefined): string => (why === undefined ? title : (console.log(`skipped: ${title}: ${why}`), `${title} — skipped: ${why}`));
  it.skipIf(scratch !== undefined)(titled('PostgreSQL on a private cluster: skipped exactly when nothing changed', scratch), async () => {
    const cluster = startPasswordCluster();
    try {
      const password = readFileSync(join(cluster.socketDir, 'pw'), 'utf8').trim();
      const base = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${cluster.port}`;
      const admin = new pg.Client({ connectionString: `${base}/postgres` });
      await admin.connect();
      await admin.query('CREATE DATABASE i15job_scratch');
      await admin.end();
      const c = new pg.Client({ connectionString: `${base}/i15job_scratch` });
      await c.connect();
      await c.query("CREATE TABLE t (id int PRIMARY KEY, v text); CREATE UNLOGGED TABLE u (id int); CREATE SEQUENCE s; INSERT INTO t VALUES (1, 'a')");
      const w = world('unchanged-pg-scratch');
      const repo = await newRepo();
      w.repos.set('r', repo);
      w.add({ source: `${base}/i15job_scratch`, repository: 'r', whenUnchanged: 'skip' });
      const sql = (q: string) => () => c.query(q);
      await expectRuns(w, repo, [
        ['first', () => undefined, 'backup'],
        ['nothing', () => undefined, 'skip'],
        ['insert', sql("INSERT INTO t VALUES (2, 'b')"), 'backup'],
        ['nothing', () => undefined, 'skip'],
        ['update', sql("UPDATE t SET v = 'c' WHERE id = 1"), 'backup'],
        ['delete', sql('DELETE FROM t WHERE id = 2'), 'backup'],
        ['DDL', sql('ALTER TABLE t ADD COLUMN w int'), 'backup'],
        ['unlogged insert', sql('INSERT INTO u VALUES (1)'), 'backup'],
        ['nextval', sql("SELECT nextval('s')"), 'backup'],
        // Within the 32 values the first call logged: no WAL, no transaction id; the value is evidence.
        ['nextval, unlogged', sql("SELECT nextval('s')"), 'backup'],
        ['nothing', () => undefined, 'skip'],
      ]);
      await c.end();
    } finally {
      cluster.stop();
    }
  }, 60_000);
});

/** The CLI's stdout, run as a child process without blocking this process (a server in it must answer). */
function cliOutput(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`cairn ${args.join(' ')} exited ${code}: ${err}`))));
  });
}

/**
 * Seeded random sequences on SQLite (CAIRN_JOBS_SEEDS=1..20 for more; one seed by default): after
 * each random operation (or none), the schedule runs; it must skip exactly when nothing was
 * written, and the schedule's newest backup must restore to exactly what the database holds now.
 */
describe('--when-unchanged skip, seeded random operations', () => {
  const range = (process.env.CAIRN_JOBS_SEEDS ?? '1..1').split('..').map(Number);
  const seeds = Array.from({ length: (range[1] ?? range[0] ?? 1) - (range[0] ?? 1) + 1 }, (_, i) => (range[0] ?? 1) + i);
  it.each(seeds)('seed %i', async (seed) => {
    let state = seed * 2654435761;
    const rand = (n: number): number => {
      state = (state * 1103515245 + 12345) % 2147483648;
      return state % n;
    };
    const w = world(`random-${seed}`);
    const repo = await newRepo();
    w.repos.set('r', repo);
    const file = join(dir, `random-${seed}.db`);
    const s = new Database(file);
    s.exec(`PRAGMA journal_mode = ${seed % 2 ? 'WAL' : 'DELETE'}; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);`);
    const dump = (d: InstanceType<typeof Database>): string =>
      JSON.stringify([d.prepare("SELECT name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY name").all(), d.prepare('SELECT * FROM t ORDER BY id').all()]);
    try {
      w.add({ source: `sqlite://${file}`, repository: 'r', whenUnchanged: 'skip' });
      let next = 1;
      for (let step = 1; step <= 8; step++) {
        const op = step === 1 ? 0 : rand(6);
        const ops = [
          () => s.prepare('INSERT INTO t (id, v) VALUES (?, ?)').run(next++, `v${rand(1000)}`),
          () => s.prepare('UPDATE t SET v = ? WHERE id = ?').run(`u${rand(1000)}`, 1 + rand(next)),
          () => s.prepare('DELETE FROM t WHERE id = ?').run(1 + rand(next)),
          () => s.exec(`CREATE TABLE IF NOT EXISTS x${rand(3)} (a)`),
        ];
        // 4, 5: nothing. An UPDATE or DELETE that matches no row changes nothing either, but
        // SQLite may count it as a write transaction: a backup then is allowed, never required.
        const wrote = op < 4 ? ops[op]?.() : undefined;
        const changed = op === 0 || op === 3 ? true : op < 3 ? ((wrote as { changes: number } | undefined)?.changes ?? 0) > 0 : false;
        const started = await w.at(`2030-02-01T${String(step).padStart(2, '0')}:00:01Z`);
        await w.scheduler.idle();
        const job = await w.center.get(started[0] as string);
        expect(job.state).toBe('SUCCESS');
        const skipped = job.result?.skipped === 'unchanged';
        if (changed || step === 1) expect(skipped, `seed ${seed} step ${step} op ${op}`).toBe(false);
        if (op >= 4) expect(skipped, `seed ${seed} step ${step}: nothing changed`).toBe(true);
        const newest = (await repo.listManifests()).sort((a, b) => b.createdAt.localeCompare(a.createdAt))[0];
        const out = join(dir, `random-${seed}-${step}.db`);
        await runRestore({ repo, backupId: newest?.id as string, target: openTarget(`sqlite://${out}`), onConflict: 'fail' });
        const restored = new Database(out, { readonly: true });
        try {
          expect(dump(restored), `seed ${seed} step ${step}`).toBe(dump(s));
        } finally {
          restored.close();
        }
      }
    } finally {
      s.close();
    }
  }, 120_000);
});

type Step = [what: string, change: () => unknown, expect: 'backup' | 'skip' | 'either'];

/** Runs the schedule once per step (an hour apart) after the step's change, checking what it did. */
async function expectRuns(w: ReturnType<typeof world>, repo: Repository, steps: Step[]): Promise<void> {
  let hour = 0;
  let lastBackup: string | undefined;
  for (const [what, change, expected] of steps) {
    await change();
    await new Promise((r) => setTimeout(r, 0)); // a query sent by `change` has been handed to the socket
    hour++;
    const started = await w.at(`2030-01-02T${String(hour).padStart(2, '0')}:00:01Z`);
    await w.scheduler.idle();
    expect(started.length, what).toBe(1);
    const job = await w.center.get(started[0] as string);
    expect(job.state, `${what}: ${JSON.stringify(job.error)}`).toBe('SUCCESS');
    const run = w.store.runs('hourly')[0];
    if (expected === 'either') {
      if (job.result?.backupId) lastBackup = String(job.result.backupId);
      continue;
    }
    if (expected === 'skip') {
      expect(run, what).toMatchObject({ status: 'skipped-unchanged', reason: `unchanged since ${lastBackup}` });
      expect(job.result?.backupId, what).toBeUndefined();
    } else {
      expect(run?.status, what).toBe('started');
      lastBackup = String(job.result?.backupId);
      expect((await repo.listManifests()).some((m) => m.id === lastBackup), what).toBe(true);
    }
  }
}
