/**
 * Issue 20, health: the default recovery point objective from schedules, objectives as written,
 * the report built from an overview, the monitor's once-per-breach events over the catalog's
 * breach table (across a restart), the job center's stuck-job watchdog, Prometheus label escaping.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { AlertEvent, AlertSink } from '../../src/core/alerts.js';
import { SqliteBreachStore } from '../../src/catalog/health.js';
import { SqliteJobCatalog } from '../../src/catalog/sqlite.js';
import { buildHealth, formatSeconds, HealthMonitor, parseRpo, recordingFailedStarts, scheduleRpoSeconds, type HealthReport } from '../../src/jobs/health.js';
import { JobCenter, JobConflictError, type JobContext } from '../../src/jobs/job-center.js';
import { NotFoundError } from '../../src/core/errors.js';
import type { ScheduleSpec } from '../../src/jobs/ports.js';
import { redactUrl } from '../../src/server/redact.js';
import type { Overview } from '../../src/jobs/overview.js';
import { labelValue } from '../../src/server/health.js';

const dir = mkdtempSync(join(tmpdir(), 'cairn-health-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Collects what is emitted. */
const collector = (): AlertSink & { events: AlertEvent[] } => {
  const events: AlertEvent[] = [];
  return { events, emit: (e) => void events.push(e) };
};

const NOW = new Date('2026-12-01T12:00:00Z');

describe('recovery point objectives', () => {
  it('default from schedules: the longest gap between runs + 1/12 (daily → 26 h), in the schedule\'s zone, merged over schedules', () => {
    expect(scheduleRpoSeconds([{ cron: '0 3 * * *', timezone: 'UTC', enabled: true }], NOW)).toBe(26 * 3600);
    expect(scheduleRpoSeconds([{ cron: '@hourly', timezone: 'UTC', enabled: true }], NOW)).toBe(3900);
    // Weekdays only: the weekend gap (Friday 03:00 → Monday 03:00) is the longest.
    expect(scheduleRpoSeconds([{ cron: '0 3 * * 1-5', timezone: 'Europe/Paris', enabled: true }], NOW)).toBe(78 * 3600);
    // Two schedules of one source: 03:00 and 15:00 together leave 12 h gaps.
    expect(scheduleRpoSeconds([{ cron: '0 3 * * *', timezone: 'UTC', enabled: true }, { cron: '0 15 * * *', timezone: 'UTC', enabled: true }], NOW)).toBe(13 * 3600);
    // A daily and an hourly one: the hourly one fills the day (its horizon cuts the daily one's far runs).
    expect(scheduleRpoSeconds([{ cron: '0 3 * * *', timezone: 'UTC', enabled: true }, { cron: '@hourly', timezone: 'UTC', enabled: true }], NOW)).toBe(3900);
    expect(scheduleRpoSeconds([{ cron: '0 3 * * *', timezone: 'UTC', enabled: false }], NOW)).toBeNull();
    expect(scheduleRpoSeconds([], NOW)).toBeNull();
  });

  it('parses objectives as written: s, m, h, d, w or default; refuses months and nonsense naming the forms', () => {
    expect(parseRpo('26h')).toBe(93_600);
    expect(parseRpo('90m')).toBe(5400);
    expect(parseRpo('2d')).toBe(172_800);
    expect(parseRpo('1w')).toBe(604_800);
    expect(parseRpo('default')).toBeNull();
    expect(() => parseRpo('6mo')).toThrow(/Invalid recovery point objective "6mo": use s, m, h, d or w/);
    expect(() => parseRpo('soon')).toThrow(/Invalid recovery point objective "soon".*26h.*default/);
    expect(() => parseRpo('0h')).toThrow(/Invalid recovery point objective/);
  });

  it('builds the report over repositories: newest anywhere, set beats schedule, none never breaches, breached first', () => {
    const entry = (key: string, repository: string, completedAt: string | null, extra: Partial<Overview['sources'][number]> = {}): Overview['sources'][number] => ({
      key, location: `sqlite:///${key}.db`, kind: 'sqlite', repository, backups: completedAt ? 1 : 0,
      newest: completedAt ? { id: `${key}-1`, createdAt: completedAt, completedAt } : null,
      ageSeconds: null, lastResult: null, schedules: [], status: 'ok', logicalBytes: 0, addedBytes: 0, dedupRatio: null, history: [], ...extra,
    });
    const overview: Overview = {
      generatedAt: NOW.toISOString(),
      repositories: [],
      sources: [
        entry('shop', 'a', '2026-11-30T00:00:00Z', { name: 'shop', names: ['shop'] }),
        entry('shop', 'b', '2026-12-01T11:00:00Z', { name: 'shop', names: ['shop'] }), // the newest counts, whichever repository
        entry('crm', 'a', '2026-11-29T12:00:00Z', { name: 'crm', names: ['crm'], schedules: [{ name: 'd', cron: '0 3 * * *', timezone: 'UTC', enabled: true, nextRun: null, intervalSeconds: 86400 }] }),
        entry('old', 'a', '2020-01-01T00:00:00Z'),
        entry('fresh', 'a', null, { name: 'fresh', names: ['fresh'] }),
      ],
    };
    const report = buildHealth({
      overview,
      registered: [
        { name: 'shop', rpoSeconds: 7200, createdAt: '2026-01-01T00:00:00Z' },
        { name: 'crm', createdAt: '2026-01-01T00:00:00Z' },
        { name: 'fresh', rpoSeconds: 3600, createdAt: '2026-12-01T11:30:00Z' },
      ],
      activeJobs: [],
      now: NOW,
    });
    const by = Object.fromEntries(report.sources.map((s) => [s.key, s]));
    expect(by.shop).toMatchObject({ name: 'shop', lastSuccessAt: '2026-12-01T11:00:00Z', ageSeconds: 3600, rpoSeconds: 7200, rpoFrom: 'set', breached: false });
    expect(by.crm).toMatchObject({ ageSeconds: 48 * 3600, rpoSeconds: 26 * 3600, rpoFrom: 'schedule', breached: true });
    expect(by.old).toMatchObject({ rpoSeconds: null, rpoFrom: 'none', breached: false });
    // Never backed up, registered 30 min ago with a 1 h objective: not late yet.
    expect(by.fresh).toMatchObject({ lastSuccessAt: null, ageSeconds: null, breached: false });
    expect(report.sources[0]?.key).toBe('crm');
    expect(report.status).toBe('degraded');
    expect(buildHealth({ overview, registered: [{ name: 'fresh', rpoSeconds: 3600, createdAt: '2026-12-01T10:00:00Z' }], activeJobs: [], now: NOW }).sources.find((s) => s.key === 'fresh')?.breached).toBe(true);
    // Registered, but in no listed repository (none opens): listed without a backup, not left out.
    const lonely = buildHealth({ overview: { ...overview, sources: [] }, registered: [{ name: 'lonely', rpoSeconds: 60, createdAt: '2026-12-01T10:00:00Z', location: 'sqlite:///lonely.db' }], activeJobs: [], now: NOW });
    expect(lonely.sources).toEqual([{ key: 'sqlite:///lonely.db', name: 'lonely', location: 'sqlite:///lonely.db', lastSuccessAt: null, ageSeconds: null, rpoSeconds: 60, rpoFrom: 'set', breached: true }]);
  });

  it('escapes Prometheus label values (backslash, quote, line feed)', () => {
    expect(labelValue('a"b\\c\nd')).toBe('a\\"b\\\\c\\nd');
  });
});

describe('HealthMonitor', () => {
  const report = (breached: boolean): HealthReport => ({
    status: breached ? 'degraded' : 'ok',
    generatedAt: new Date().toISOString(),
    stuckJobs: [],
    sources: [{ key: 'k-shop', name: 'shop', location: 'sqlite:///shop.db', lastSuccessAt: '2026-11-01T00:00:00Z', ageSeconds: 100_000, rpoSeconds: 93_600, rpoFrom: 'schedule', breached }],
  });

  it("emits 'rpo' once per breach, not again after a restart, and anew after a good backup cleared it", async () => {
    const file = join(dir, 'monitor.db');
    let breached = true;
    const sink = collector();
    const store = new SqliteBreachStore(file);
    const monitor = new HealthMonitor({ compute: async () => report(breached), store, alerts: sink });
    await monitor.tick();
    await monitor.tick();
    expect(sink.events.map((e) => e.kind)).toEqual(['rpo']);
    expect(sink.events[0]).toMatchObject({ source: 'shop', title: expect.stringMatching(/shop has missed its recovery point objective \(26h\)/), details: { ageSeconds: 100_000, rpoSeconds: 93_600 } });
    expect(store.openKeys()).toEqual(['k-shop']);
    store.close();

    // A restarted server (a new monitor on the same catalog): the breach is known, nothing sent.
    const store2 = new SqliteBreachStore(file);
    const sink2 = collector();
    const again = new HealthMonitor({ compute: async () => report(breached), store: store2, alerts: sink2 });
    await again.tick();
    expect(sink2.events).toEqual([]);
    breached = false;
    await again.tick();
    expect(store2.openKeys()).toEqual([]);
    breached = true;
    await again.tick();
    expect(sink2.events.map((e) => e.kind)).toEqual(['rpo']);
    store2.close();
  });

  it('a failing computation is logged, sends nothing and keeps the breach table as it was', async () => {
    const store = new SqliteBreachStore(join(dir, 'failing.db'));
    const lines: string[] = [];
    const sink = collector();
    const monitor = new HealthMonitor({ compute: () => Promise.reject(new Error('storage down')), store, alerts: sink, log: (l) => void lines.push(l) });
    expect(await monitor.tick()).toBeUndefined();
    expect(lines).toEqual(['health: the sources could not be looked at: storage down']);
    expect(sink.events).toEqual([]);
    store.close();
  });
});

describe('the stuck-job watchdog', () => {
  it('marks a job without progress (stalledSince, persisted), alerts once, clears when it moves', async () => {
    const catalog = new SqliteJobCatalog(join(dir, 'jobs.db'));
    const sink = collector();
    const center = new JobCenter(catalog, { stuckAfterMs: 200, stuckCheckMs: 20, alerts: sink, persistEveryMs: 0 });
    let ctx!: JobContext;
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const job = await center.start({
      kind: 'backup',
      params: { source: 'sqlite:///stuck.db', schedule: 'nightly' },
      run: async (c) => {
        ctx = c;
        c.progress({ phase: 'transferring', collectionsDone: 0, collectionsTotal: 2, rows: 1, bytes: 10 });
        await released;
        return {};
      },
    });
    const until = async <T>(what: () => Promise<T | undefined> | T | undefined, ms = 5000): Promise<T> => {
      const deadline = Date.now() + ms;
      for (;;) {
        const v = await what();
        if (v !== undefined) return v;
        if (Date.now() > deadline) throw new Error('timed out');
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    const stalled = await until(async () => {
      const r = await catalog.get(job.id); // persisted, not only in memory
      return r?.progress.stalledSince;
    });
    expect(Date.parse(stalled)).toBeLessThanOrEqual(Date.now() - 200);
    expect(sink.events).toHaveLength(1);
    expect(sink.events[0]).toMatchObject({ kind: 'stuck', source: 'sqlite:///stuck.db', schedule: 'nightly', job: { id: job.id, kind: 'backup', state: 'TRANSFERRING' } });
    // The same amounts reported again: still stalled.
    ctx.progress({ phase: 'transferring', collectionsDone: 0, collectionsTotal: 2, rows: 1, bytes: 10 });
    expect((await center.get(job.id)).progress.stalledSince).toBe(stalled);
    // It moves: cleared; stalled again later, but alerted once per job.
    ctx.progress({ phase: 'transferring', collectionsDone: 1, collectionsTotal: 2, rows: 5, bytes: 50 });
    expect((await center.get(job.id)).progress.stalledSince).toBeUndefined();
    await until(async () => (await center.get(job.id)).progress.stalledSince);
    expect(sink.events).toHaveLength(1);
    release();
    expect((await center.wait(job.id)).state).toBe('SUCCESS');
    await catalog.close();
  });
});

describe('scheduled runs that could not start', () => {
  it('become a FAILED backup job (source redacted, told to watchers); a run held by another job does not', async () => {
    const catalog = new SqliteJobCatalog(join(dir, 'not-started.db'));
    const center = new JobCenter(catalog);
    const ended: string[] = [];
    center.watchAll((j) => void ended.push(`${j.state} ${String(j.params.schedule)}`));
    const spec = { id: 's1', name: 'nightly', source: 'postgres://app:s3cret@db/shop', repository: 'main', cron: '@daily', timezone: 'UTC' } as ScheduleSpec;
    const failing = recordingFailedStarts(() => Promise.reject(new NotFoundError('No repository named "main" is registered.')), center, redactUrl);
    await expect(failing(spec, new Date('2026-12-01T03:00:00Z'))).rejects.toThrow(/No repository named "main"/);
    const [job] = await catalog.list({ state: 'FAILED' });
    expect(job).toMatchObject({ kind: 'backup', params: { schedule: 'nightly', dueAt: '2026-12-01T03:00:00.000Z', repository: 'main', notStarted: true }, error: { code: 'NOT_FOUND', message: 'scheduled run of nightly due at 2026-12-01T03:00:00.000Z could not start: No repository named "main" is registered.' } });
    expect(JSON.stringify(job)).not.toContain('s3cret');
    expect(ended).toEqual(['FAILED nightly']);
    const running = (await catalog.list())[0] as NonNullable<typeof job>;
    const held = recordingFailedStarts(() => Promise.reject(new JobConflictError(running)), center, redactUrl);
    await expect(held(spec, new Date())).rejects.toBeInstanceOf(JobConflictError);
    expect(await catalog.count({ state: 'FAILED' })).toBe(1);
    await catalog.close();
  });
});

describe('formatSeconds: ages and objectives for people', () => {
  it('is exact to the second: an age just past its objective never reads as equal to it', () => {
    expect([65, 60, 59, 0, 3600, 3630, 93_600, 93_630, 86_400 * 2 + 3600 + 5].map(formatSeconds)).toEqual(['1m5s', '1m', '59s', '0s', '1h', '1h30s', '26h', '26h30s', '2d1h5s']);
    for (let objective = 1; objective < 200_000; objective += 997) expect(formatSeconds(objective + 1)).not.toBe(formatSeconds(objective));
  });
});
