/**
 * Schedules driven by an injected clock (no real waiting): real backups of a small SQLite
 * database into a real repository, retention and expiry applied after each run.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteScheduleStore, type ScheduleSpec } from '../../src/catalog/schedules.js';
import { SqliteJobCatalog } from '../../src/catalog/sqlite.js';
import { runBackup } from '../../src/jobs/backup.js';
import { JobCenter, type JobContext } from '../../src/jobs/job-center.js';
import { scheduledBackupLauncher } from '../../src/jobs/scheduled-backup.js';
import { backupIdFor, cronOf, Scheduler } from '../../src/jobs/scheduler.js';
import { Repository } from '../../src/repo/repository.js';
import Database from '../../src/sources/sqlite/driver.js';
import { openSource } from '../../src/sources/index.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
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

/** A fresh world: repository, job center, schedule store, scheduler, and a clock the test sets. */
async function world(graceMs = 3600_000) {
  const k = ++n;
  const repo = await Repository.init(new FileSystemStorage(join(dir, `repo-${k}`)));
  const center = new JobCenter(new SqliteJobCatalog(join(dir, `catalog-${k}.db`)));
  const store = new SqliteScheduleStore(join(dir, `catalog-${k}.db`));
  const clock = { now: new Date('2024-01-01T00:00:00Z') };
  const now = (): Date => new Date(clock.now.getTime());
  const launch = scheduledBackupLauncher({ center, now, openRepository: async () => repo, openSource: (s) => openSource(s) });
  const scheduler = new Scheduler(store, { now, graceMs, launch });
  const spec = (over: Partial<ScheduleSpec>): ScheduleSpec => ({
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
  return { repo, center, store, scheduler, clock, spec, at, scheduled, now };
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
    const manual = await w.center.start({ kind: 'backup', exclusiveKey: `sqlite://${dbFile}`, params: {}, run: async (_ctx: JobContext) => (await held, {}) });
    w.clock.now = new Date('2024-05-01T01:00:05Z');
    expect(await w.scheduler.tick()).toEqual([]);
    expect(w.store.runs('nightly', 1)[0]?.status).toBe('skipped-running');
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
    const listed = cairnJson<{ id: string; type: string; schedule?: string }[]>(['backup', 'list', '--repo', repo, '--schedule', 'nightly', '--json'], { env });
    expect(listed.map((b) => b.id)).toEqual(ids.slice(1)); // --keep-last 2
    expect(listed.every((b) => b.type === 'scheduled' && b.schedule === 'nightly')).toBe(true);
    const show = cairn(['schedule', 'show', 'nightly'], { env });
    expect(show.stdout).toMatch(/retention +keepLast=2/);
    expect(show.stdout.match(/ started/g)).toHaveLength(3);
    expect(cairn(['schedule', 'disable', 'nightly'], { env }).stdout).toContain('disabled');
    expect(cairnJson<{ enabled: boolean; nextRun: string | null }[]>(['schedule', 'list', '--json'], { env })[0]).toMatchObject({ enabled: false, nextRun: null });
    expect(cairn(['schedule', 'remove', 'nightly'], { env }).code).toBe(0);
    expect(cairnJson<unknown[]>(['backup', 'list', '--repo', repo, '--json'], { env })).toHaveLength(2); // backups kept

    // a registered source, removed with the backups its schedules made; manual backups stay
    expect(cairn(['source', 'add', 'app', `sqlite://${dbFile}`], { env }).code).toBe(0);
    expect(cairnJson<{ name: string }[]>(['source', 'list', '--json'], { env }).map((x) => x.name)).toEqual(['app']);
    expect(cairn(['schedule', 'add', 'by-src', '--source', 'app', '--repo', repo, '--cron', '@daily'], { env }).code).toBe(0);
    const run = cairn(['schedule', 'run-now', 'by-src', '--json'], { env });
    expect(run.code, run.stderr).toBe(0);
    const scheduledId = JSON.parse(run.stdout).result.backupId as string;
    expect(cairn(['backup', 'create', '--source', `sqlite://${dbFile}`, '--repo', repo, '--id', 'manual-x'], { env }).code).toBe(0);
    const removed = cairnJson<{ deletedScheduledBackups: string[] }>(['source', 'remove', 'app', '--delete-scheduled-backups', '--json'], { env });
    expect(removed.deletedScheduledBackups).toEqual([scheduledId]);
    const after = cairnJson<{ id: string }[]>(['backup', 'list', '--repo', repo, '--json'], { env }).map((b) => b.id);
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
    const server = await startServer({ dataDir, port: 0, scheduleTickMs: 3600_000 });
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
      const removed = (await (await call('DELETE', '/v1/sources/app?deleteScheduledBackups=true')).json()) as { deletedScheduledBackups: string[] };
      expect(removed.deletedScheduledBackups).toEqual([byName.result?.backupId]);
      const left = (await (await Repository.open(new FileSystemStorage(repoDir))).listBackupIds());
      expect(left).toContain('manual-one');
      expect(left).toContain(String(job.result?.backupId)); // the other schedule's backup (its source was a URL)
      expect(left).not.toContain(String(byName.result?.backupId));
      expect((await call('DELETE', '/v1/sources/app')).status).toBe(404);
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
