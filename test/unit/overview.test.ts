/**
 * buildOverview (jobs/overview.ts) over a real file-system repository, with job records and
 * schedule states as the job center and schedule store hold them and an injected clock: each
 * status rule (failing, late by age, late by a missed due time, never, running, ok), their order,
 * and a repository that cannot be opened.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cron } from 'croner';
import { CairnError } from '../../src/core/errors.js';
import { buildOverview, type OverviewInputs } from '../../src/jobs/overview.js';
import type { JobRecord, ScheduleState } from '../../src/jobs/ports.js';
import { Repository } from '../../src/repo/repository.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { manifest } from '../helpers/manifests.js';

const NOW = new Date('2026-12-01T12:00:00.000Z');
const ago = (minutes: number): string => new Date(NOW.getTime() - minutes * 60_000).toISOString();
let work: string;
let repo: Repository;

async function backup(id: string, location: string, completedMinutesAgo: number, newBytes = 10): Promise<void> {
  const m = manifest(id, []);
  const at = ago(completedMinutesAgo);
  await repo.writeManifest({ ...m, createdAt: ago(completedMinutesAgo + 1), completedAt: at, source: { ...m.source, kind: 'sqlite', location }, totals: { ...m.totals, logicalBytes: 100, newBytes } });
}

function job(id: string, location: string, state: JobRecord['state'], minutesAgo: number): JobRecord {
  return {
    id,
    kind: 'backup',
    state,
    key: null,
    params: { source: location, repository: repo.location },
    progress: null,
    result: null,
    error: state === 'FAILED' ? { code: 'SOURCE', message: 'unreachable' } : null,
    createdAt: ago(minutesAgo),
    updatedAt: ago(minutesAgo),
    finishedAt: ['SUCCESS', 'FAILED', 'CANCELED'].includes(state) ? ago(minutesAgo) : null,
  } as unknown as JobRecord;
}

function schedule(name: string, location: string, cron: string, lastDue: string | null): ScheduleState {
  return { id: `id-${name}`, name, source: location, repository: 'default', cron, timezone: 'UTC', pattern: '{source}', retention: {}, enabled: true, createdAt: ago(60 * 24 * 30), lastDue } as unknown as ScheduleState;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'cairn-overview-unit-'));
  repo = await Repository.init(new FileSystemStorage(join(work, 'repo')));
  await backup('ok-1', '/db/ok', 120);
  await backup('ok-2', '/db/ok', 30, 5);
  await backup('failing-1', '/db/failing', 300);
  await backup('old-1', '/db/old', 4 * 60); // hourly schedule: 1.5 h + 5 min exceeded
  await backup('missed-1', '/db/missed', 180); // daily at 10:00: the run due today 10:00 made nothing
  await backup('running-1', '/db/running', 20);
  // What the repository stores is its packs, whatever the backups' newBytes say (copies add 0).
  await repo.storage.put(`data/ab/${'ab'.repeat(32)}`, new Uint8Array(40));
  await repo.storage.put(`data/cd/${'cd'.repeat(32)}`, new Uint8Array(20));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('buildOverview', () => {
  it('gives each source its status by the rules, failing first, and names a broken repository', async () => {
    const inputs: OverviewInputs = {
      repositories: [
        { name: 'default', open: async () => repo },
        { name: 'gone', open: () => Promise.reject(new CairnError('NOT_FOUND', 'No cairn repository at /nowhere.')) },
      ],
      jobs: [job('backup-1', '/db/failing', 'SUCCESS', 300), job('backup-2', '/db/failing', 'FAILED', 10), job('backup-3', '/db/running', 'TRANSFERRING', 1), job('backup-4', '/db/ok', 'SUCCESS', 30)],
      schedules: [
        schedule('hourly', '/db/old', '0 * * * *', ago(0)),
        schedule('daily', '/db/missed', '0 10 * * *', '2026-12-01T10:00:00.000Z'),
        schedule('never', '/db/new', '0 3 * * *', null),
        schedule('fine', '/db/ok', '0 * * * *', ago(0)),
      ],
      // Registered: one never backed up nor scheduled, one whose backups exist.
      // Two names registered for one database (trial: the later one hid the other): one entry, both names.
      registeredSources: [{ name: 'fresh', value: '/db/fresh' }, { name: 'okay', value: '/db/ok' }, { name: 'another', value: '/db/ok' }],
      sourceOf: (value) => ({ location: value, kind: 'sqlite' }),
      next: (s, after) => new Cron(s.cron, { timezone: s.timezone }).nextRun(after),
      keyOf: (location) => location,
      describeError: (err) => ({ code: (err as CairnError).code, message: (err as Error).message }),
      now: NOW,
    };
    const o = await buildOverview(inputs);
    const status = Object.fromEntries(o.sources.map((s) => [s.location, s.status]));
    expect(status).toEqual({ '/db/ok': 'ok', '/db/failing': 'failing', '/db/old': 'late', '/db/missed': 'late', '/db/new': 'never', '/db/fresh': 'never', '/db/running': 'running' });
    expect(o.sources.map((s) => s.status)).toEqual(['failing', 'late', 'late', 'never', 'never', 'running', 'ok']);
    expect(o.sources.find((s) => s.location === '/db/fresh')).toMatchObject({ name: 'fresh', repository: 'default', backups: 0, newest: null, lastResult: null, schedules: [], addedBytes: 0, dedupRatio: null });
    expect(o.sources.filter((s) => s.location === '/db/ok').map((s) => [s.name, s.names])).toEqual([['another', ['another', 'okay']]]);
    const ok = o.sources.find((s) => s.location === '/db/ok');
    expect(ok).toMatchObject({ backups: 2, logicalBytes: 200, addedBytes: 15, dedupRatio: 13.33, ageSeconds: 30 * 60, newest: { id: 'ok-2' }, lastResult: { status: 'SUCCESS', jobId: 'backup-4' } });
    expect(ok?.history.map((h) => h.id)).toEqual(['ok-1', 'ok-2']);
    expect(ok?.schedules).toEqual([{ name: 'fine', cron: '0 * * * *', timezone: 'UTC', enabled: true, nextRun: '2026-12-01T13:00:00.000Z', intervalSeconds: 3600 }]);
    expect(o.sources.find((s) => s.location === '/db/failing')?.lastResult).toMatchObject({ status: 'FAILED', error: { code: 'SOURCE' } });
    expect(o.sources.find((s) => s.location === '/db/new')).toMatchObject({ backups: 0, newest: null, ageSeconds: null, lastResult: null });
    expect(o.repositories).toEqual([
      { name: 'default', location: repo.location, backups: 6, logicalBytes: 600, storedBytes: 60, dedupRatio: 10 },
      { name: 'gone', location: '', backups: 0, logicalBytes: 0, storedBytes: 0, dedupRatio: null, error: { code: 'NOT_FOUND', message: 'No cairn repository at /nowhere.' } },
    ]);
  });

  it('is not late within 1.5 intervals + 5 min, nor before the grace after a due time', async () => {
    const o = await buildOverview({
      repositories: [{ name: 'default', open: async () => repo }],
      jobs: [],
      // /db/ok's newest is 30 min old: hourly is fine. /db/missed's last due was 2 min ago: within grace.
      schedules: [schedule('hourly', '/db/ok', '0 * * * *', ago(0)), schedule('daily', '/db/missed', '0 10 * * *', ago(2))],
      sourceOf: (value) => ({ location: value, kind: 'sqlite' }),
      next: (s, after) => new Cron(s.cron, { timezone: s.timezone }).nextRun(after),
      keyOf: (location) => location,
      describeError: () => ({ code: 'X', message: 'x' }),
      now: NOW,
    });
    expect(o.sources.find((s) => s.location === '/db/ok')?.status).toBe('ok');
    expect(o.sources.find((s) => s.location === '/db/missed')?.status).toBe('ok');
  });
});
