/**
 * Issue 20, health, against a real server: GET /v1/health (liveness without a token, the report
 * with one), a source past its recovery point objective listed with its age and alerted once
 * per breach (an AlertSink collecting events; delivery is the alerts layer's), cleared and
 * reported anew, `cairn status` (local data folder and --server) and its exit code 10, the
 * objective set by name (SDK, CLI) or taken from a schedule, /metrics parsed, and a PostgreSQL
 * backup held at a table lock marked stuck (progress.stalledSince, one 'stuck' event).
 */
import { rmSync } from 'node:fs';
import { Repository } from '../../src/repo/repository.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { join } from 'node:path';
import Database from '../../src/sources/sqlite/driver.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AlertEvent, AlertSink } from '../../src/core/alerts.js';
import { catalogFile } from '../../src/catalog/database.js';
import { SqliteBreachStore } from '../../src/catalog/health.js';
import { CairnClient } from '../../src/sdk/index.js';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { apiFailure, serverWork } from '../helpers/api.js';
import { cairnRun } from '../helpers/cli.js';
import { holdTableLock } from '../helpers/pg-lock.js';
import { createDatabase, dropDatabase, ensurePostgres, pgUrl, psql } from '../helpers/postgres.js';

let work: string;
let dataDir: string;
let server: RunningServer;
let tokens: { admin: string; operator: string; viewer: string };
let admin: CairnClient;
let operator: CairnClient;
let viewer: CairnClient;
const events: AlertEvent[] = [];
const sink: AlertSink = { emit: (e) => void events.push(e) };
const databases: string[] = [];

/** Polls `what` until it gives a value (not undefined), or fails after `ms`. */
async function until<T>(what: () => Promise<T | undefined> | T | undefined, ms = 20_000, label = 'state'): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await what();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${label}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function sqliteFile(name: string): string {
  const file = join(work, `${name}.db`);
  const db = new Database(file);
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES (\'a\'), (\'b\');');
  db.close();
  return file;
}

const cli = (args: string[], env: NodeJS.ProcessEnv = {}) => cairnRun(args, { CAIRN_REPO: '', CAIRN_SERVER: '', ...env });

beforeAll(async () => {
  let repo: string;
  ({ work, dataDir, repo, tokens } = await serverWork('cairn-health-'));
  server = await startServer({ dataDir, port: 0, env: {}, scheduleTickMs: 3600_000, healthTickMs: 100, stuckAfterMs: 800, alerts: sink, errorLog: () => undefined });
  admin = new CairnClient({ url: server.url, token: tokens.admin });
  operator = new CairnClient({ url: server.url, token: tokens.operator });
  viewer = new CairnClient({ url: server.url, token: tokens.viewer });
  await admin.repositories.add('main', repo);
  expect((await admin.sources.add('shop', `sqlite://${sqliteFile('shop')}`, { rpo: '3s' })).rpoSeconds).toBe(3);
  await admin.sources.add('crm', `sqlite://${sqliteFile('crm')}`);
  await operator.schedules.create({ name: 'crm-daily', source: 'crm', repository: 'main', cron: '0 3 * * *', timezone: 'UTC' });
});

afterAll(async () => {
  await server?.close();
  for (const db of databases) dropDatabase(db);
  rmSync(work, { recursive: true, force: true });
});

describe('GET /v1/health', () => {
  it('answers liveness without a token, 401 for a wrong one, the report to any role', async () => {
    const anonymous = await fetch(`${server.url}/v1/health`);
    expect(anonymous.status).toBe(200);
    expect(await anonymous.json()).toEqual({ status: 'ok' });
    const wrong = await fetch(`${server.url}/v1/health`, { headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);
    const report = await viewer.health.get();
    const by = Object.fromEntries((report.sources ?? []).map((s) => [s.name, s]));
    // Registered a moment ago, never backed up: not late yet.
    expect(by.shop).toMatchObject({ lastSuccessAt: null, ageSeconds: null, rpoSeconds: 3, rpoFrom: 'set', breached: false });
    // A daily schedule: 24 h + 2 h.
    expect(by.crm).toMatchObject({ rpoSeconds: 26 * 3600, rpoFrom: 'schedule', breached: false });
    expect(report.stuckJobs).toEqual([]);
  });

  it('PATCH /v1/sources/{name}: admin only, a duration or default, 404 for an unknown name', async () => {
    expect((await apiFailure(operator.sources.update('crm', { rpo: '2d' }))).status).toBe(403);
    expect((await apiFailure(admin.sources.update('nope', { rpo: '2d' }))).status).toBe(404);
    const bad = await apiFailure(admin.sources.update('crm', { rpo: '6mo' }));
    expect(bad.status).toBe(400);
    expect(bad.message).toMatch(/Invalid recovery point objective "6mo"/);
    expect((await admin.sources.update('crm', { rpo: '2d' })).rpoSeconds).toBe(172_800);
    expect((await viewer.health.get()).sources?.find((s) => s.name === 'crm')).toMatchObject({ rpoSeconds: 172_800, rpoFrom: 'set' });
    expect((await admin.sources.update('crm', { rpo: 'default' })).rpoSeconds).toBeUndefined();
    expect((await viewer.sources.list()).find((s) => s.name === 'crm')?.rpoSeconds).toBeUndefined();
  });
});

describe('a source past its objective', () => {
  let completedAt: string;

  it('is listed with its age, alerted once per breach, and `cairn status` exits 10 listing it first', async () => {
    const job = await operator.backups.create({ source: 'shop', repository: 'main' }, { waitForCompletion: true, pollMs: 25 });
    expect(job.state).toBe('SUCCESS');
    const shop = await until(async () => {
      const s = (await viewer.health.get()).sources?.find((x) => x.name === 'shop');
      return s?.breached ? s : undefined;
    }, 20_000, 'shop breached');
    completedAt = shop.lastSuccessAt as string;
    expect(shop.ageSeconds).toBeGreaterThan(3);
    expect(shop.ageSeconds).toBeLessThan(60);
    expect((await viewer.health.get()).status).toBe('degraded');
    const rpo = await until(() => events.find((e) => e.kind === 'rpo' && e.source === 'shop'), 20_000, 'rpo event');
    expect(rpo.title).toBe('shop has missed its recovery point objective (3s)');
    expect(rpo.message).toMatch(/newest good backup is \d+s old/);

    // Through the server (a viewer token) and from the data folder: breaches first, exit code 10.
    const remote = await cli(['status', '--server', server.url], { CAIRN_TOKEN: tokens.viewer });
    expect(remote.code, remote.stderr).toBe(10);
    const lines = remote.stdout.split('\n');
    expect(lines[0]).toBe('DEGRADED: 1 source(s) past their recovery point objective, 0 stuck job(s).');
    expect(lines[2]).toMatch(/^SOURCE\s+LAST GOOD BACKUP\s+AGE\s+RPO\s+STATE$/);
    expect(lines[3]).toMatch(/^shop\s+\S+\s+\d+s\s+3s \(set\)\s+BREACHED$/);
    expect(lines.some((l) => /^crm\s+-\s+never\s+26h \(schedule\)\s+ok$/.test(l))).toBe(true);
    const nowhere = await cli(['status', '--data-dir', join(work, 'no-such-data')]);
    expect(nowhere.code).toBe(3);
    expect(nowhere.stderr).toMatch(/No cairn catalog in .*no-such-data: give the server's data folder with --data-dir/);
    const local = await cli(['status', '--data-dir', dataDir, '--json']);
    expect(local.code, local.stderr).toBe(10);
    const json = JSON.parse(local.stdout) as { status: string; sources: { name?: string; breached: boolean; lastSuccessAt: string | null }[] };
    expect(json.status).toBe('degraded');
    expect(json.sources[0]).toMatchObject({ name: 'shop', breached: true, lastSuccessAt: completedAt });
    // Seconds went by and the monitor looked many times (every 100 ms): still one event for this breach.
    expect(events.filter((e) => e.kind === 'rpo' && e.source === 'shop')).toHaveLength(1);
  });

  it('clears when the source is within its objective again, then a new breach is reported anew', async () => {
    const breaches = new SqliteBreachStore(catalogFile(dataDir));
    try {
      expect(breaches.openKeys()).toHaveLength(1);
      const set = await cli(['source', 'set', 'shop', '--rpo', '1h', '--server', server.url, '--json'], { CAIRN_TOKEN: tokens.admin });
      expect(set.code, set.stderr).toBe(0);
      expect((JSON.parse(set.stdout) as { source: { rpoSeconds: number } }).source.rpoSeconds).toBe(3600);
      await until(() => (breaches.openKeys().length === 0 ? true : undefined), 20_000, 'breach cleared');
      const ok = await cli(['status', '--server', server.url], { CAIRN_TOKEN: tokens.viewer });
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stdout).toMatch(/^OK: 2 source\(s\) within their recovery point objectives, no stuck job\./);
      // The local data folder's catalog, as `cairn source set` without --server writes it.
      const local = await cli(['source', 'set', 'shop', '--rpo', '3s', '--data-dir', dataDir]);
      expect(local.code, local.stderr).toBe(0);
      expect(local.stdout).toBe('Source shop: recovery point objective 3s.\n');
      await until(() => (events.filter((e) => e.kind === 'rpo' && e.source === 'shop').length === 2 ? true : undefined), 20_000, 'second rpo event');
    } finally {
      breaches.close();
    }
  });

  it('/metrics: last success time, objectives and breaches, newest backup bytes, job durations, in the text format', async () => {
    const res = await fetch(`${server.url}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    const samples = new Map<string, number>();
    for (const line of text.split('\n')) {
      if (line === '' || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
      const m = /^([a-z_]+)(\{(?:[a-z_]+="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+]+|\+Inf)$/.exec(line);
      expect(m, line).not.toBeNull();
      samples.set(`${m?.[1]}${m?.[2] ?? ''}`, Number(m?.[3]));
    }
    expect(samples.get('cairn_source_last_success_timestamp_seconds{source="shop"}')).toBe(Math.floor(Date.parse(completedAt) / 1000));
    expect(samples.has('cairn_source_last_success_timestamp_seconds{source="crm"}')).toBe(false);
    expect(samples.get('cairn_source_rpo_seconds{source="shop",from="set"}')).toBe(3);
    expect(samples.get('cairn_source_rpo_seconds{source="crm",from="schedule"}')).toBe(93_600);
    expect(samples.get('cairn_source_rpo_breached{source="shop"}')).toBe(1);
    expect(samples.get('cairn_source_rpo_breached{source="crm"}')).toBe(0);
    expect(samples.get('cairn_backup_stored_bytes{source="shop",repository="main"}')).toBeGreaterThan(0);
    expect(samples.get('cairn_backup_new_bytes{source="shop",repository="main"}')).toBeGreaterThan(0);
    const count = samples.get('cairn_job_duration_seconds_count{kind="backup"}') ?? 0;
    expect(count).toBeGreaterThanOrEqual(1);
    expect(samples.get('cairn_job_duration_seconds_bucket{kind="backup",le="+Inf"}')).toBe(count);
    expect(samples.get('cairn_job_duration_seconds_bucket{kind="backup",le="1"}')).toBeLessThanOrEqual(count);
    expect(samples.get('cairn_jobs_stuck')).toBe(0);
    // No token here: registered names only, never a location (it names a host, a user, a path).
    expect(text).not.toContain('sqlite:');
    expect(text).not.toContain(work);
  });
});

describe('stuck jobs', () => {
  it('a PostgreSQL backup waiting at a table lock is marked stuck, alerted once, listed by /v1/health, and ends when the lock goes', async () => {
    ensurePostgres();
    const db = createDatabase('i20health');
    databases.push(db);
    psql(db, 'CREATE TABLE orders (id int PRIMARY KEY, total numeric); INSERT INTO orders SELECT g, g * 1.5 FROM generate_series(1, 100) g;');
    await admin.sources.add('orders', pgUrl(db));
    const lock = await holdTableLock(db, 'orders');
    let released = false;
    try {
      const job = await operator.backups.create({ source: 'orders', repository: 'main' });
      const stalled = await until(async () => (await viewer.jobs.get(job.id)).progress.stalledSince, 30_000, 'stalledSince');
      expect(Date.parse(stalled)).toBeLessThan(Date.now());
      const report = await viewer.health.get();
      expect(report.status).toBe('degraded');
      expect(report.stuckJobs).toEqual([expect.objectContaining({ id: job.id, kind: 'backup', stalledSince: stalled })]);
      const stuck = events.filter((e) => e.kind === 'stuck');
      expect(stuck).toHaveLength(1);
      expect(stuck[0]).toMatchObject({ job: { id: job.id, kind: 'backup' }, title: expect.stringMatching(new RegExp(`^backup ${job.id} of .* is stuck$`)) });
      expect(JSON.stringify(stuck[0])).not.toContain('password');
      await lock.release();
      released = true;
      const done = await until(async () => {
        const j = await viewer.jobs.get(job.id);
        return j.finishedAt !== null ? j : undefined;
      }, 60_000, 'backup end');
      expect(done.state).toBe('SUCCESS');
      expect(done.progress.stalledSince).toBeUndefined();
      expect((await viewer.health.get()).stuckJobs).toEqual([]);
      expect(events.filter((e) => e.kind === 'stuck')).toHaveLength(1);
    } finally {
      if (!released) await lock.release();
    }
  });
});

describe('scheduled runs that could not start', () => {
  it('are a failed run of the schedule and a FAILED backup job, both with the reason, in the API', async () => {
    const gone = join(work, 'gone-repo');
    await Repository.init(new FileSystemStorage(gone));
    await admin.repositories.add('gone', gone);
    await operator.schedules.create({ name: 'to-gone', source: 'shop', repository: 'gone', cron: '0 4 * * *', timezone: 'UTC' });
    rmSync(gone, { recursive: true, force: true });
    const failed = await apiFailure(operator.schedules.runNow('to-gone'));
    expect(failed.status).toBeGreaterThanOrEqual(400);
    const run = (await viewer.schedules.get('to-gone')).runs[0];
    expect(run).toMatchObject({ status: 'failed', jobId: null, reason: expect.stringContaining(failed.message.slice(0, 40)) });
    const job = (await viewer.jobs.list({ state: 'FAILED' })).find((j) => j.params.schedule === 'to-gone');
    expect(job).toMatchObject({ kind: 'backup', state: 'FAILED', params: { schedule: 'to-gone', source: 'shop', repository: 'gone', notStarted: true }, error: { code: failed.code } });
    expect(job?.error?.message).toMatch(/^scheduled run of to-gone due at \S+ could not start: /);
    expect(job?.finishedAt).toBe(job?.createdAt);
  });
});
