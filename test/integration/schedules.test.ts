/**
 * Schedules driven by an injected clock (no real waiting): real backups of a small SQLite
 * database into a real repository, retention and expiry applied after each run.
 */
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newScheduleId, SqliteScheduleStore, type ScheduleSpec } from '../../src/catalog/schedules.js';
import { SqliteJobCatalog } from '../../src/catalog/sqlite.js';
import { runBackup } from '../../src/jobs/backup.js';
import { JobCenter, type JobContext } from '../../src/jobs/job-center.js';
import { databaseKey } from '../../src/jobs/database-key.js';
import { scheduledBackupLauncher } from '../../src/jobs/scheduled-backup.js';
import { backupIdFor, cronOf, Scheduler } from '../../src/jobs/scheduler.js';
import { Repository } from '../../src/repo/repository.js';
import Database from '../../src/sources/sqlite/driver.js';
import { openSource } from '../../src/sources/index.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { ConflictError, NotFoundError, StorageError } from '../../src/core/errors.js';
import { deleteScheduledBackupsOf } from '../../src/jobs/scheduled-backup.js';
import { SqliteTokenStore } from '../../src/catalog/tokens.js';
import { CairnClient } from '../../src/sdk/index.js';
import { catalogFile, startServer } from '../../src/server/index.js';
import { cairn, cairnJson } from '../helpers/cli.js';

let dir: string;
let dbFile: string;
let n = 0;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cairn-sched-'));
  dbFile = join(dir, 'app.db');
  const db = new Database(dbFile);
  db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES ('a'), ('b'), ('c');");
  db.close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A repository folder whose manifest deletions fail while `failing` is set (a storage fault). */
class FlakyDeletes extends FileSystemStorage {
  failing = false;
  override async delete(key: string): Promise<void> {
    if (this.failing && key.startsWith('backups/')) throw new StorageError(`Cannot delete ${key} in ${this.location}: injected fault.`);
    return super.delete(key);
  }
}

/**
 * A fresh world: repository, job center, schedule store, scheduler, and a clock the test sets.
 * `shared` gives the repository of another world (one repository, two data folders).
 */
async function world(graceMs = 3600_000, shared?: Repository) {
  const k = ++n;
  const storage = new FlakyDeletes(join(dir, `repo-${k}`));
  const repo = shared ?? (await Repository.init(storage));
  const center = new JobCenter(new SqliteJobCatalog(join(dir, `catalog-${k}.db`)));
  const store = new SqliteScheduleStore(join(dir, `catalog-${k}.db`));
  const clock = { now: new Date('2024-01-01T00:00:00Z') };
  const now = (): Date => new Date(clock.now.getTime());
  const launch = scheduledBackupLauncher({ center, now, openRepository: async () => repo, openSource: (s) => openSource(s) });
  const scheduler = new Scheduler(store, { now, graceMs, launch });
  const spec = (over: Partial<ScheduleSpec>): ScheduleSpec => ({
    id: newScheduleId(),
    name: 'nightly',
    source: `sqlite://${dbFile}`,
    repository: 'repo',
    cron: '0 3 * * *',
    timezone: 'UTC',
    pattern: '{source}-{yyyyMMdd-HHmmss}',
    retention: {},
    enabled: true,
    createdAt: clock.now.toISOString(),
    ...over,
  });
  /** Sets the clock and handles what is due, waiting for the runs to finish. */
  const at = async (iso: string): Promise<string[]> => {
    clock.now = new Date(iso);
    const jobs = await scheduler.tick();
    await scheduler.idle();
    return jobs;
  };
  const scheduled = async (): Promise<string[]> => (await repo.listManifests()).filter((m) => m.type === 'scheduled').map((m) => m.createdAt.slice(0, 10));
  return { repo, storage, center, store, scheduler, clock, spec, at, scheduled, now };
}

/** A small SQLite database of its own (another source). */
function sqliteDb(name: string): string {
  const file = join(dir, `${name}.db`);
  const db = new Database(file);
  db.exec("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES ('x');");
  db.close();
  return file;
}

const day = (d: number): string => `2024-05-${String(d).padStart(2, '0')}`;

describe('schedules', () => {
  it('validates cron expressions and time zones, and names backups from the pattern', () => {
    expect(() => cronOf('0 3 * *', 'UTC')).toThrow(/five fields/);
    expect(() => cronOf('0 3 * * *', 'Mars/Olympus')).toThrow(/Unknown time zone/);
    expect(cronOf('@daily', 'Asia/Tokyo').nextRun(new Date('2024-01-01T00:00:00Z'))?.toISOString()).toBe('2024-01-01T15:00:00.000Z');
    expect(backupIdFor('{source}-{yyyyMMdd-HHmmss}', { source: 'App', schedule: 's' }, new Date('2026-11-22T03:00:00Z'))).toBe('app-20261122-030000');
  });

  it('daily over 10 simulated days with --keep-within 3d keeps exactly the last 3 days; manual backups survive, expired ones go', async () => {
    const w = await world();
    w.clock.now = new Date(`${day(1)}T00:00:00Z`);
    w.store.add(w.spec({ retention: { keepWithin: '3d' } }));
    // a manual backup without expiry, and one that expires on day 5
    await runBackup({ repo: w.repo, source: openSource(`sqlite://${dbFile}`), id: 'manual-keep', now: w.now });
    await runBackup({ repo: w.repo, source: openSource(`sqlite://${dbFile}`), id: 'manual-expiring', now: w.now, expiresAt: new Date(`${day(5)}T00:00:00Z`) });
    for (let d = 1; d <= 10; d++) expect(await w.at(`${day(d)}T03:00:30Z`)).toHaveLength(1);
    expect(await w.scheduled()).toEqual([day(8), day(9), day(10)]);
    const ids = await w.repo.listBackupIds();
    expect(ids).toContain('manual-keep');
    expect(ids).not.toContain('manual-expiring');
    expect(w.store.runs('nightly').filter((r) => r.status === 'started')).toHaveLength(10);
  }, 60_000);

  it('--keep-last 5 keeps 5', async () => {
    const w = await world();
    w.clock.now = new Date(`${day(1)}T00:00:00Z`);
    w.store.add(w.spec({ retention: { keepLast: 5 } }));
    for (let d = 1; d <= 8; d++) await w.at(`${day(d)}T03:05:00Z`);
    expect(await w.scheduled()).toEqual([day(4), day(5), day(6), day(7), day(8)]);
  }, 60_000);

  it('a year of simulated daily runs under 7 daily, 4 weekly, 12 monthly keeps the hand-checked set (month ends, leap day)', async () => {
    const w = await world();
    w.clock.now = new Date('2024-01-01T00:00:00Z');
    w.store.add(w.spec({ retention: { keepDaily: 7, keepWeekly: 4, keepMonthly: 12 } }));
    for (let t = Date.parse('2024-01-01T03:00:30Z'); t <= Date.parse('2024-12-31T03:00:30Z'); t += 86400e3) await w.at(new Date(t).toISOString());
    // daily: Dec 25–31; weekly (ISO weeks): Dec 31 (2025-W01), 29, 22, 15; monthly: every month's last day
    expect(await w.scheduled()).toEqual([
      '2024-01-31', '2024-02-29', '2024-03-31', '2024-04-30', '2024-05-31', '2024-06-30', '2024-07-31', '2024-08-31',
      '2024-09-30', '2024-10-31', '2024-11-30', '2024-12-15', '2024-12-22',
      '2024-12-25', '2024-12-26', '2024-12-27', '2024-12-28', '2024-12-29', '2024-12-30', '2024-12-31',
    ]);
    expect(w.store.runs('nightly', 1000).filter((r) => r.status === 'started')).toHaveLength(366);
  }, 180_000);

  it('a 03:00 schedule in Europe/Berlin runs once per local day across both DST switches', async () => {
    const w = await world();
    const local = new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Berlin', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    for (const [from, days] of [['2024-03-28T00:00:00Z', 6], ['2024-10-24T00:00:00Z', 6]] as const) {
      w.clock.now = new Date(from);
      w.store.add(w.spec({ name: `berlin-${from.slice(5, 7)}`, timezone: 'Europe/Berlin', createdAt: from }));
      // tick every 30 minutes of simulated time
      for (let t = Date.parse(from); t < Date.parse(from) + days * 86400e3; t += 1800e3) await w.at(new Date(t).toISOString());
      const runs = w.store.runs(`berlin-${from.slice(5, 7)}`).filter((r) => r.status === 'started');
      const localTimes = runs.map((r) => local.format(new Date(r.dueAt)));
      expect(runs, localTimes.join(', ')).toHaveLength(days);
      for (const lt of localTimes) expect(lt).toMatch(/, 03:00$/);
      expect(new Set(localTimes.map((lt) => lt.slice(0, 10))).size).toBe(days); // one per local day
      w.store.setEnabled(`berlin-${from.slice(5, 7)}`, false); // its source is the next one's too
    }
  }, 120_000);

  it('a restart in the middle of a due window does not run it twice; a long downtime gives one catch-up run at most', async () => {
    const w = await world();
    w.clock.now = new Date(`${day(1)}T00:00:00Z`);
    w.store.add(w.spec({}));
    expect(await w.at(`${day(1)}T03:00:10Z`)).toHaveLength(1);
    // "restart": a new scheduler on the same catalog, in the same due window
    const again = new Scheduler(w.store, { now: w.now, launch: scheduledBackupLauncher({ center: w.center, now: w.now, openRepository: async () => w.repo, openSource }) });
    w.clock.now = new Date(`${day(1)}T03:00:40Z`);
    expect(await again.tick()).toEqual([]);
    // down from day 1 to day 6, back at 03:20 (within the 1 h grace): one catch-up run
    w.clock.now = new Date(`${day(6)}T03:20:00Z`);
    expect(await again.tick()).toHaveLength(1);
    await again.idle();
    const runs = w.store.runs('nightly');
    expect(runs.filter((r) => r.status === 'started').map((r) => r.dueAt.slice(0, 10))).toEqual([day(6), day(1)]);
    expect(runs.filter((r) => r.status === 'skipped-missed').map((r) => r.dueAt.slice(0, 10))).toEqual([day(5), day(4), day(3), day(2)]);
    // down again until day 9 05:00, beyond the grace: nothing runs, all recorded as skipped
    w.clock.now = new Date(`${day(9)}T05:00:00Z`);
    expect(await again.tick()).toEqual([]);
    expect(w.store.runs('nightly', 3).map((r) => `${r.dueAt.slice(0, 10)} ${r.status}`)).toEqual([`${day(9)} skipped-missed`, `${day(8)} skipped-missed`, `${day(7)} skipped-missed`]);
    expect(await w.scheduled()).toEqual([day(1), day(6)]);
  }, 60_000);

  it('skips (and records) a run while the previous one is still active or the source is busy', async () => {
    const w = await world();
    w.clock.now = new Date('2024-05-01T00:00:00Z');
    w.store.add(w.spec({ cron: '@hourly' }));
    // a manual backup job of the same source holds it
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const manual = await w.center.start({ kind: 'backup', exclusiveKey: databaseKey(`sqlite://${dbFile}`), params: { source: `sqlite://${dbFile}` }, run: async (_ctx: JobContext) => (await held, {}) });
    w.clock.now = new Date('2024-05-01T01:00:05Z');
    expect(await w.scheduler.tick()).toEqual([]);
    expect(w.store.runs('nightly', 1)[0]).toMatchObject({ status: 'skipped-running', reason: expect.stringContaining(manual.id) });
    release();
    await w.center.wait(manual.id);
    // the next hour's run starts; the hour after that comes while it is still active
    w.clock.now = new Date('2024-05-01T02:00:05Z');
    expect(await w.scheduler.tick()).toHaveLength(1);
    w.clock.now = new Date('2024-05-01T03:00:05Z');
    expect(await w.scheduler.tick()).toEqual([]);
    await w.scheduler.idle();
    expect(w.store.runs('nightly').map((r) => r.status)).toEqual(['skipped-running', 'started', 'skipped-running']);
  }, 60_000);
});

describe('schedules from the CLI and the API', () => {
  it('schedule add / list / show / run-now / disable / remove; retention after runs; backup list --schedule', async () => {
    const dataDir = join(dir, 'cli-data');
    const repo = join(dir, 'cli-repo');
    const env = { CAIRN_DATA_DIR: dataDir, CAIRN_REPO: '', CAIRN_SERVER: '' };
    expect(cairn(['repo', 'init', repo], { env }).code).toBe(0);
    const bad = cairn(['schedule', 'add', 'x', '--source', `sqlite://${dbFile}`, '--repo', repo, '--cron', '0 3 * *'], { env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/five fields/);
    expect(cairn(['schedule', 'add', 'x', '--source', `sqlite://${dbFile}`, '--repo', repo, '--cron', '@daily', '--keep-within', '3 days'], { env }).stderr).toMatch(/--keep-within "3 days"/);
    const add = cairn(['schedule', 'add', 'nightly', '--source', `sqlite://${dbFile}`, '--repo', repo, '--cron', '0 3 * * *', '--timezone', 'Asia/Tokyo', '--keep-last', '2'], { env });
    expect(add.code, add.stderr).toBe(0);
    expect(add.stdout).toMatch(/next run \d{4}-\d{2}-\d{2}T18:00:00\.000Z/); // 03:00 in Tokyo
    expect(cairn(['schedule', 'add', 'nightly', '--source', `sqlite://${dbFile}`, '--repo', repo, '--cron', '@daily'], { env }).code).toBe(4);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const run = cairn(['schedule', 'run-now', 'nightly', '--json'], { env });
      expect(run.code, run.stderr).toBe(0);
      ids.push(JSON.parse(run.stdout).result.backupId); // the same second gets -2, -3
    }
    const listed = cairnJson<{ backups: { id: string; type: string; schedule?: string }[] }>(['backup', 'list', '--repo', repo, '--schedule', 'nightly', '--json'], { env }).backups;
    expect(listed.map((b) => b.id)).toEqual(ids.slice(1)); // --keep-last 2
    expect(listed.every((b) => b.type === 'scheduled' && b.schedule === 'nightly')).toBe(true);
    const show = cairn(['schedule', 'show', 'nightly'], { env });
    expect(show.stdout).toMatch(/retention +keepLast=2/);
    expect(show.stdout.match(/ started/g)).toHaveLength(3);
    expect(cairn(['schedule', 'disable', 'nightly'], { env }).stdout).toContain('disabled');
    expect(cairnJson<{ schedules: { enabled: boolean; nextRun: string | null }[] }>(['schedule', 'list', '--json'], { env }).schedules[0]).toMatchObject({ enabled: false, nextRun: null });
    expect(cairn(['schedule', 'remove', 'nightly'], { env }).code).toBe(0);
    expect(cairnJson<{ backups: unknown[] }>(['backup', 'list', '--repo', repo, '--json'], { env }).backups).toHaveLength(2); // backups kept

    // a registered source, removed with the backups its schedules made; manual backups stay
    expect(cairn(['source', 'add', 'app', `sqlite://${dbFile}`], { env }).code).toBe(0);
    expect(cairnJson<{ sources: { name: string }[] }>(['source', 'list', '--json'], { env }).sources.map((x) => x.name)).toEqual(['app']);
    expect(cairn(['schedule', 'add', 'by-src', '--source', 'app', '--repo', repo, '--cron', '@daily'], { env }).code).toBe(0);
    const run = cairn(['schedule', 'run-now', 'by-src', '--json'], { env });
    expect(run.code, run.stderr).toBe(0);
    const scheduledId = JSON.parse(run.stdout).result.backupId as string;
    expect(cairn(['backup', 'create', '--source', `sqlite://${dbFile}`, '--repo', repo, '--id', 'manual-x'], { env }).code).toBe(0);
    // refused while an enabled schedule uses it, naming the schedule and the ways on
    const refused = cairn(['source', 'remove', 'app', '--delete-scheduled-backups'], { env });
    expect(refused.code).toBe(4);
    expect(refused.stderr).toMatch(/Source "app" is used by enabled schedule "by-src".*cairn schedule disable.*--force/);
    expect(cairnJson<{ sources: { name: string }[] }>(['source', 'list'], { env }).sources.map((x) => x.name)).toEqual(['app']);
    expect(cairnJson<{ backups: unknown[] }>(['backup', 'list', '--repo', repo], { env }).backups.map((b) => (b as { id: string }).id)).toContain(scheduledId);
    const removed = cairnJson<{ deletedScheduledBackups: string[]; disabledSchedules: string[] }>(['source', 'remove', 'app', '--delete-scheduled-backups', '--force'], { env });
    expect(removed.deletedScheduledBackups).toEqual([scheduledId]);
    expect(removed.disabledSchedules).toEqual(['by-src']);
    expect(cairnJson<{ schedules: { name: string; enabled: boolean }[] }>(['schedule', 'list'], { env }).schedules.find((x) => x.name === 'by-src')?.enabled).toBe(false);
    const after = cairnJson<{ backups: { id: string }[] }>(['backup', 'list', '--repo', repo, '--json'], { env }).backups.map((b) => b.id);
    expect(after).toContain('manual-x');
    expect(after).not.toContain(scheduledId);
    expect(after).toHaveLength(3); // the two kept from "nightly" and the manual one
    expect(cairn(['source', 'remove', 'app'], { env }).code).toBe(3);
  }, 60_000);

  it('the same through the REST API and the SDK', async () => {
    const dataDir = join(dir, 'api-data');
    const repoDir = join(dir, 'api-repo');
    await Repository.init(new FileSystemStorage(repoDir));
    const tokens = new SqliteTokenStore(catalogFile(dataDir));
    const token = tokens.create('operator').token;
    tokens.close();
    const server = await startServer({ dataDir, port: 0, scheduleTickMs: 3600_000, allowAdHocUrls: true });
    try {
      const client = new CairnClient({ url: server.url, token });
      const created = await client.schedules.create({ name: 'hourly', source: `sqlite://${dbFile}`, repository: repoDir, cron: '@hourly', keepLast: 1, expires: '7d' });
      expect(created.nextRun).toMatch(/:00:00\.000Z$/);
      await expect(client.schedules.create({ name: 'bad', source: `sqlite://${dbFile}`, repository: repoDir, cron: 'nope' })).rejects.toMatchObject({ status: 400 });
      const job = await client.schedules.runNow('hourly', { waitForCompletion: true, pollMs: 50 });
      expect(job.state).toBe('SUCCESS');
      const details = await client.schedules.get('hourly');
      expect(details.runs[0]).toMatchObject({ status: 'started', jobId: job.id });
      const m = await (await Repository.open(new FileSystemStorage(repoDir))).readManifest(String(job.result?.backupId));
      expect(m).toMatchObject({ type: 'scheduled', schedule: 'hourly' });
      expect(Date.parse(m.expiresAt as string) - Date.now()).toBeGreaterThan(6.9 * 86400e3);
      // a registered source removed with its scheduled backups: manual ones stay
      const adminStore = new SqliteTokenStore(catalogFile(dataDir));
      const adminToken = adminStore.create('admin').token;
      adminStore.close();
      const call = (method: string, path: string, body?: unknown): Promise<Response> =>
        fetch(`${server.url}${path}`, { method, headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
      expect((await call('POST', '/v1/sources', { name: 'app', url: `sqlite://${dbFile}` })).status).toBe(201);
      await client.schedules.create({ name: 'by-name', source: 'app', repository: repoDir, cron: '@daily' });
      const byName = await client.schedules.runNow('by-name', { waitForCompletion: true, pollMs: 50 });
      const manual = await client.backups.create({ source: 'app', repository: repoDir, id: 'manual-one' }, { waitForCompletion: true, pollMs: 50 });
      expect(manual.state).toBe('SUCCESS');
      const refused = await call('DELETE', '/v1/sources/app?deleteScheduledBackups=true');
      expect(refused.status).toBe(409);
      expect(((await refused.json()) as { error: { message: string } }).error.message).toMatch(/enabled schedule "by-name".*force=true/);
      const removed = (await (await call('DELETE', '/v1/sources/app?deleteScheduledBackups=true&force=true')).json()) as { deletedScheduledBackups: string[]; disabledSchedules: string[] };
      expect(removed.deletedScheduledBackups).toEqual([byName.result?.backupId]);
      expect(removed.disabledSchedules).toEqual(['by-name']);
      // its (disabled) schedule run now fails for what it is: the source is not registered (404, not 409)
      const orphan = await client.schedules.runNow('by-name').catch((e: unknown) => e);
      expect(orphan).toMatchObject({ status: 404, message: expect.stringMatching(/No source named "app"/) });
      expect((await client.schedules.get('by-name')).runs[0]).toMatchObject({ status: 'failed', reason: expect.stringMatching(/No source named "app"/) });
      const left = (await (await Repository.open(new FileSystemStorage(repoDir))).listBackupIds());
      expect(left).toContain('manual-one');
      expect(left).toContain(String(job.result?.backupId)); // the other schedule's backup (its source was a URL)
      expect(left).not.toContain(String(byName.result?.backupId));
      expect((await call('DELETE', '/v1/sources/app')).status).toBe(404);
      // a registered repository that an enabled schedule names: the same rule
      expect((await call('POST', '/v1/repositories', { name: 'named-repo', url: repoDir })).status).toBe(201);
      await client.schedules.create({ name: 'to-named', source: `sqlite://${dbFile}`, repository: 'named-repo', cron: '@daily' });
      const repoRefused = await call('DELETE', '/v1/repositories/named-repo');
      expect(repoRefused.status).toBe(409);
      expect(((await repoRefused.json()) as { error: { message: string } }).error.message).toMatch(/Repository "named-repo" is used by enabled schedule "to-named"/);
      expect(await (await call('DELETE', '/v1/repositories/named-repo?force=true')).json()).toMatchObject({ removed: 'named-repo', disabledSchedules: ['to-named'] });
      await client.schedules.remove('to-named');
      await client.schedules.disable('hourly');
      expect((await client.schedules.list()).find((x) => x.name === 'hourly')).toMatchObject({ enabled: false });
      await client.schedules.remove('hourly');
      await client.schedules.remove('by-name');
      expect(await client.schedules.list()).toEqual([]);
    } finally {
      await server.close();
    }
  }, 60_000);
});

describe('retention touches only what its own schedule made (a unique id, and its source)', () => {
  it('two data dirs, each with a schedule "nightly" on one repository for different sources: running B\'s three times with --keep-last 2 leaves A\'s backups (real CLI processes)', () => {
    const repo = join(dir, 'two-servers-repo');
    const a = sqliteDb('shop-a');
    const b = sqliteDb('shop-b');
    const envA = { CAIRN_DATA_DIR: join(dir, 'data-a'), CAIRN_REPO: '', CAIRN_SERVER: '' };
    const envB = { CAIRN_DATA_DIR: join(dir, 'data-b'), CAIRN_REPO: '', CAIRN_SERVER: '' };
    expect(cairn(['repo', 'init', repo], { env: envA }).code).toBe(0);
    for (const [env, db] of [[envA, a], [envB, b]] as const) {
      const add = cairn(['schedule', 'add', 'nightly', '--source', `sqlite://${db}`, '--repo', repo, '--cron', '0 3 * * *', '--keep-last', '2'], { env });
      expect(add.code, add.stderr).toBe(0);
    }
    const idA = cairnJson<{ schedules: { id: string }[] }>(['schedule', 'list'], { env: envA }).schedules[0]?.id;
    const idB = cairnJson<{ schedules: { id: string }[] }>(['schedule', 'list'], { env: envB }).schedules[0]?.id;
    expect(idA).toMatch(/^sch-[0-9a-f]{24}$/);
    expect(idB).not.toBe(idA);
    const run = (env: NodeJS.ProcessEnv): string => {
      const r = cairn(['schedule', 'run-now', 'nightly', '--json'], { env });
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout).result.backupId as string;
    };
    const madeByA = [run(envA), run(envA)];
    const madeByB = [run(envB), run(envB), run(envB)];
    const left = cairnJson<{ backups: { id: string; scheduleId?: string }[] }>(['backup', 'list', '--repo', repo], { env: envA }).backups.map((m) => m.id).sort();
    expect(left).toEqual([...madeByA, ...madeByB.slice(1)].sort());
  }, 120_000);

  it('the same schedule name and the same source in two data dirs: each keeps its own --keep-last', async () => {
    const one = await world();
    const two = await world(3600_000, one.repo);
    for (const w of [one, two]) {
      w.clock.now = new Date(`${day(1)}T00:00:00Z`);
      w.store.add(w.spec({ retention: { keepLast: 2 } }));
    }
    const ids = (w: typeof one): string => w.store.get('nightly').id;
    for (let d = 1; d <= 3; d++) {
      await one.at(`${day(d)}T03:00:10Z`);
      await two.at(`${day(d)}T03:00:20Z`);
    }
    const manifests = await one.repo.listManifests();
    const by = (id: string): string[] => manifests.filter((m) => m.scheduleId === id).map((m) => m.createdAt.slice(0, 10));
    expect(by(ids(one))).toEqual([day(2), day(3)]);
    expect(by(ids(two))).toEqual([day(2), day(3)]);
    expect(manifests).toHaveLength(4);
    expect(manifests.every((m) => m.schedule === 'nightly' && m.source.location === `sqlite://${dbFile}`)).toBe(true);
    // removing the source of one data dir's schedules deletes its backups only
    const deleted = await deleteScheduledBackupsOf(`sqlite://${dbFile}`, `sqlite://${dbFile}`, [one.store.get('nightly')], async () => one.repo);
    expect(deleted).toHaveLength(2);
    expect((await one.repo.listManifests()).map((m) => m.scheduleId)).toEqual([ids(two), ids(two)]);
  }, 60_000);

  it('a backup from before schedule ids is a candidate only when both the schedule name and the source match', async () => {
    const w = await world();
    const other = sqliteDb('legacy-other');
    w.clock.now = new Date(`${day(1)}T00:00:00Z`);
    const legacy = (id: string, db: string, schedule: string) =>
      runBackup({ repo: w.repo, source: openSource(`sqlite://${db}`), id, type: 'scheduled', schedule, now: w.now });
    await legacy('legacy-mine', dbFile, 'nightly');
    await legacy('legacy-other-source', other, 'nightly');
    await legacy('legacy-other-name', dbFile, 'weekly');
    w.store.add(w.spec({ retention: { keepLast: 1 } }));
    await w.at(`${day(2)}T03:00:10Z`);
    const ids = await w.repo.listBackupIds();
    expect(ids).not.toContain('legacy-mine');
    expect(ids).toContain('legacy-other-source');
    expect(ids).toContain('legacy-other-name');
    expect(ids).toHaveLength(3);
  }, 60_000);

  it('a schedule catalog from before schedule ids is migrated: every schedule gets its own id, runs get a reason column', async () => {
    const file = join(dir, 'old-catalog.db');
    const db = new Database(file);
    db.exec(`CREATE TABLE schedules (name TEXT PRIMARY KEY, spec TEXT NOT NULL, enabled INTEGER NOT NULL, last_due TEXT);
      CREATE TABLE schedule_runs (schedule TEXT NOT NULL, due_at TEXT NOT NULL, status TEXT NOT NULL, job_id TEXT, at TEXT NOT NULL, PRIMARY KEY (schedule, due_at));`);
    const old = { name: 'a', source: 'sqlite:///x.db', repository: '/r', cron: '@daily', timezone: 'UTC', pattern: '{source}-{yyyyMMdd-HHmmss}', retention: {}, enabled: true, createdAt: '2024-01-01T00:00:00.000Z' };
    for (const name of ['a', 'b']) db.prepare('INSERT INTO schedules VALUES (?, ?, 1, NULL)').run(name, JSON.stringify({ ...old, name }));
    db.prepare("INSERT INTO schedule_runs VALUES ('a', '2024-01-02T00:00:00.000Z', 'started', 'backup-1', '2024-01-02T00:00:00.000Z')").run();
    db.close();
    const store = new SqliteScheduleStore(file);
    const [a, b] = store.list();
    expect(a?.id).toMatch(/^sch-[0-9a-f]{24}$/);
    expect(b?.id).toMatch(/^sch-[0-9a-f]{24}$/);
    expect(a?.id).not.toBe(b?.id);
    expect(store.runs('a')).toEqual([{ schedule: 'a', dueAt: '2024-01-02T00:00:00.000Z', status: 'started', jobId: 'backup-1', at: '2024-01-02T00:00:00.000Z', reason: null }]);
    store.close();
    const again = new SqliteScheduleStore(file); // ids are kept, not regenerated
    expect(again.get('a').id).toBe(a?.id);
    again.close();
  });
});

describe('a scheduled backup is not failed by its retention', () => {
  it('runs while another backup holds a shared lock on the repository: SUCCESS, and retention applied', async () => {
    const w = await world();
    w.clock.now = new Date(`${day(1)}T00:00:00Z`);
    w.store.add(w.spec({ retention: { keepLast: 1 } }));
    await w.at(`${day(1)}T03:00:10Z`);
    const other = await w.repo.lock(false, 'backup of another source');
    try {
      const [jobId] = await w.at(`${day(2)}T03:00:10Z`);
      const job = await w.center.get(jobId as string);
      expect(job.state, JSON.stringify(job.error)).toBe('SUCCESS');
      expect(job.result?.warnings, JSON.stringify(job.result?.warnings)).toBeUndefined();
      expect(await w.scheduled()).toEqual([day(2)]);
    } finally {
      await other.release();
    }
  }, 60_000);

  it('when retention cannot delete, the backup job still succeeds with the failure as a warning, and the next run applies it', async () => {
    const w = await world();
    w.clock.now = new Date(`${day(1)}T00:00:00Z`);
    w.store.add(w.spec({ retention: { keepLast: 1 } }));
    await w.at(`${day(1)}T03:00:10Z`);
    w.storage.failing = true;
    const [jobId] = await w.at(`${day(2)}T03:00:10Z`);
    const job = await w.center.get(jobId as string);
    expect(job.state).toBe('SUCCESS');
    expect(job.result?.deleted).toEqual([]);
    expect((job.result?.warnings as string[])[0]).toMatch(/retention could not delete backup .*injected fault.*retried at the next run/);
    expect(await w.scheduled()).toEqual([day(1), day(2)]);
    expect(w.store.runs('nightly', 1)[0]?.status).toBe('started');
    w.storage.failing = false;
    await w.at(`${day(3)}T03:00:10Z`);
    expect(await w.scheduled()).toEqual([day(3)]);
  }, 60_000);
});

describe('scheduled runs are recorded as what they are', () => {
  it('an unregistered source or a missing repository: failed with the reason (not skipped-running); run-now throws that error, not a conflict', async () => {
    const w = await world();
    const registered = new Map<string, string>();
    const launch = scheduledBackupLauncher({
      center: w.center,
      now: w.now,
      openRepository: async (r) => (r === 'repo' ? w.repo : Repository.open(new FileSystemStorage(join(dir, 'no-such-repo')))),
      openSource: (v) => {
        const url = registered.get(v);
        if (!url && !v.includes(':')) throw new NotFoundError(`No source named "${v}" is registered: list them with GET /v1/sources, or give a database URL.`);
        return openSource(url ?? v);
      },
    });
    const scheduler = new Scheduler(w.store, { now: w.now, launch });
    w.clock.now = new Date(`${day(1)}T00:00:00Z`);
    w.store.add(w.spec({ name: 'by-name', source: 'gone' }));
    w.store.add(w.spec({ name: 'no-repo', source: `sqlite://${sqliteDb('no-repo-src')}`, repository: 'missing' }));
    w.clock.now = new Date(`${day(1)}T03:00:10Z`);
    expect(await scheduler.tick()).toEqual([]);
    expect(w.store.runs('by-name')[0]).toMatchObject({ status: 'failed', jobId: null, reason: expect.stringMatching(/No source named "gone"/) });
    expect(w.store.runs('no-repo')[0]).toMatchObject({ status: 'failed', reason: expect.stringMatching(/no-such-repo/) });
    const err = await scheduler.runNow('by-name').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect(w.store.runs('by-name')[0]).toMatchObject({ status: 'failed', reason: expect.stringMatching(/No source named "gone"/) });
    // registered again: the next run starts
    registered.set('gone', `sqlite://${dbFile}`);
    expect(await scheduler.runNow('by-name')).toMatch(/^backup-/);
    await scheduler.idle();
    expect(w.store.runs('by-name')[0]?.status).toBe('started');
  }, 60_000);

  it('a run whose backup job fails turns failed with the job\'s error', async () => {
    const w = await world();
    const vanishing = sqliteDb('vanishing');
    w.clock.now = new Date(`${day(1)}T00:00:00Z`);
    w.store.add(w.spec({ name: 'vanishing', source: `sqlite://${vanishing}` }));
    rmSync(vanishing);
    const [jobId] = await w.at(`${day(1)}T03:00:10Z`);
    expect((await w.center.get(jobId as string)).state).toBe('FAILED');
    expect(w.store.runs('vanishing')[0]).toMatchObject({ status: 'failed', jobId, reason: expect.stringMatching(/^NOT_FOUND: .*vanishing/) });
  }, 60_000);

  it('a restore into the source holds it: the run is skipped-busy naming the restore; run-now is a conflict naming it', async () => {
    const w = await world();
    w.clock.now = new Date(`${day(1)}T00:00:00Z`);
    w.store.add(w.spec({ cron: '@hourly' }));
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    // the same file by another spelling (relative path through a symlinked folder)
    symlinkSync(dir, join(dir, 'link'));
    const restore = await w.center.start({ kind: 'restore', exclusiveKey: databaseKey(`sqlite://${join(dir, 'link', 'app.db')}`), params: { target: 'sqlite://…/link/app.db' }, run: async () => (await held, {}) });
    w.clock.now = new Date(`${day(1)}T01:00:05Z`);
    expect(await w.scheduler.tick()).toEqual([]);
    expect(w.store.runs('nightly')[0]).toMatchObject({ status: 'skipped-busy', reason: expect.stringContaining(restore.id) });
    const err = await w.scheduler.runNow('nightly').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as Error).message).toContain(restore.id);
    release();
    await w.center.wait(restore.id);
    expect(await w.scheduler.runNow('nightly')).toMatch(/^backup-/);
    // and while that run is active, run-now is a conflict naming its job
    const again = await w.scheduler.runNow('nightly').catch((e: unknown) => e);
    expect(again).toBeInstanceOf(ConflictError);
    expect((again as Error).message).toMatch(/previous run \(job backup-/);
    await w.scheduler.idle();
  }, 60_000);
});
