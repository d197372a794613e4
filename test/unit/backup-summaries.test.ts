/**
 * The summary cache of backup listings (jobs/backup-summaries.ts + catalog/summaries.ts) over a
 * real file-system repository and a real catalog file: rows are used only while the manifest's
 * (size, modified) match and the row has settled, changed / deleted / damaged / new manifests
 * are seen, a repository made anew at the same location never inherits rows; and the pure
 * filter/sort/page against a straightforward model.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteSummaryStore } from '../../src/catalog/summaries.js';
import { listBackupSummaries, queryBackups, SETTLE_MS, type BackupQuery, type BackupSummary, type ListedBackup, type UnfinishedBackup } from '../../src/jobs/backup-summaries.js';
import { Repository } from '../../src/repo/repository.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { manifest } from '../helpers/manifests.js';

let work: string;
let store: SqliteSummaryStore;
let repo: Repository;
/** A clock far enough ahead that every row read has settled. */
const later = (): number => Date.now() + 10 * SETTLE_MS;

beforeEach(async () => {
  work = mkdtempSync(join(tmpdir(), 'cairn-summaries-'));
  store = new SqliteSummaryStore(join(work, 'catalog.db'));
  repo = await Repository.init(new FileSystemStorage(join(work, 'repo')));
});
afterEach(() => {
  store.close();
  rmSync(work, { recursive: true, force: true });
});

async function write(id: string, createdAt: string, extra: Partial<ReturnType<typeof manifest>> = {}): Promise<void> {
  await repo.writeManifest({ ...manifest(id, []), createdAt, completedAt: createdAt, ...extra });
}

describe('listBackupSummaries with a store', () => {
  it('reads only new or changed manifests, drops deleted ones, and matches reading every manifest', async () => {
    await write('a', '2026-01-01T00:00:00.000Z');
    await write('b', '2026-01-02T00:00:00.000Z');
    const first = await listBackupSummaries(repo, { store, now: later });
    expect(first.read).toBe(2);
    expect(first.summaries.map((s) => s.id)).toEqual(['a', 'b']);
    const again = await listBackupSummaries(repo, { store, now: later });
    expect(again.read).toBe(0);
    expect(again.summaries).toEqual(first.summaries);

    // Another writer (not through the store): a new backup, an expiry change, a deletion.
    await write('c', '2026-01-03T00:00:00.000Z');
    const m = await repo.readManifest('a');
    m.expiresAt = '2027-06-01T00:00:00.000Z';
    await repo.updateManifest(m);
    await repo.deleteBackup('b');
    const third = await listBackupSummaries(repo, { store, now: later });
    expect(third.read).toBe(2); // a (changed) and c (new)
    expect(third.summaries.map((s) => [s.id, s.expiresAt])).toEqual([
      ['a', '2027-06-01T00:00:00.000Z'],
      ['c', null],
    ]);
    expect([...store.load(repo.location, repo.config.id).keys()].sort()).toEqual(['a', 'c']);
    const truth = await repo.readAllManifests();
    expect(third.summaries.map((s) => s.id)).toEqual(truth.manifests.map((x) => x.id));
  });

  it('uses a row only when size and modified match and it has settled', async () => {
    await write('a', '2026-01-01T00:00:00.000Z', { expiresAt: '2027-01-01T00:00:00.000Z' });
    await listBackupSummaries(repo, { store, now: later });
    const row = store.load(repo.location, repo.config.id).get('a');
    if (!row?.summary) throw new Error('no row');
    // A row saying something else than the manifest (as after a rewrite within one second on a
    // storage with coarse times), with the manifest's current size and modified time.
    const stale = { ...row, summary: { ...row.summary, expiresAt: '2099-01-01T00:00:00.000Z' } };
    store.save(repo.location, repo.config.id, [{ ...stale, readAtMs: row.modifiedMs + SETTLE_MS - 1 }]);
    const unsettled = await listBackupSummaries(repo, { store, now: later });
    expect(unsettled.read).toBe(1);
    expect(unsettled.summaries[0]?.expiresAt).toBe('2027-01-01T00:00:00.000Z');
    // Size or modified time differing: read again too.
    for (const changed of [{ size: row.size + 1 }, { modifiedMs: row.modifiedMs - 1000 }]) {
      store.save(repo.location, repo.config.id, [{ ...stale, ...changed }]);
      const r = await listBackupSummaries(repo, { store, now: later });
      expect(r.read).toBe(1);
      expect(r.summaries[0]?.expiresAt).toBe('2027-01-01T00:00:00.000Z');
    }
    // Settled and matching: the row is what is used (nothing read).
    store.save(repo.location, repo.config.id, [stale]);
    const used = await listBackupSummaries(repo, { store, now: later });
    expect(used.read).toBe(0);
    expect(used.summaries[0]?.expiresAt).toBe('2099-01-01T00:00:00.000Z');
    // A row read right after its manifest was written is not settled: read again next time.
    store.drop(repo.location, ['a']);
    const mtime = statSync(join(work, 'repo', 'backups', 'a')).mtime.getTime();
    await listBackupSummaries(repo, { store, now: () => mtime + 10 });
    expect((await listBackupSummaries(repo, { store, now: later })).read).toBe(1);
    expect((await listBackupSummaries(repo, { store, now: later })).read).toBe(0);
  });

  it('reports damaged manifests and foreign objects, and sees a repaired one', async () => {
    await write('a', '2026-01-01T00:00:00.000Z');
    await write('b', '2026-01-02T00:00:00.000Z');
    const key = join(work, 'repo', 'backups', 'b');
    const good = readFileSync(key);
    writeFileSync(key, '{"not":"a manifest"}');
    writeFileSync(join(work, 'repo', 'backups', 'Not An Id'), 'x');
    const damaged = await listBackupSummaries(repo, { store, now: later });
    expect(damaged.summaries.map((s) => s.id)).toEqual(['a']);
    expect(damaged.damaged.map((d) => d.id)).toEqual(['b', 'Not An Id']);
    const cached = await listBackupSummaries(repo, { store, now: later });
    expect(cached.read).toBe(0);
    expect(cached.damaged.map((d) => d.id)).toEqual(['b', 'Not An Id']);
    writeFileSync(key, good);
    const repaired = await listBackupSummaries(repo, { store, now: later });
    expect(repaired.summaries.map((s) => s.id)).toEqual(['a', 'b']);
    expect(repaired.damaged.map((d) => d.id)).toEqual(['Not An Id']);
  });

  it('never uses the rows of another repository once at the same location', async () => {
    await write('a', '2026-01-01T00:00:00.000Z');
    await listBackupSummaries(repo, { store, now: later });
    rmSync(join(work, 'repo'), { recursive: true });
    repo = await Repository.init(new FileSystemStorage(join(work, 'repo')));
    await write('b', '2026-01-05T00:00:00.000Z');
    const other = await listBackupSummaries(repo, { store, now: later });
    expect(other.summaries.map((s) => s.id)).toEqual(['b']);
    expect(other.read).toBe(1);
  });

  it('without a store reads every manifest every time (the CLI path)', async () => {
    await write('a', '2026-01-01T00:00:00.000Z');
    expect((await listBackupSummaries(repo)).read).toBe(1);
    expect((await listBackupSummaries(repo)).read).toBe(1);
  });
});

describe('queryBackups against a model', () => {
  /** Deterministic pseudo-random numbers. */
  function rng(seed: number): () => number {
    let s = seed >>> 0;
    return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  }

  function dataset(r: () => number): ListedBackup[] {
    const out: ListedBackup[] = [];
    for (let i = 0; i < 120; i++) {
      const createdAt = new Date(Date.UTC(2026, 0, 1) + Math.floor(r() * 20) * 86_400_000 + Math.floor(r() * 3) * 3600_000).toISOString();
      if (r() < 0.15) {
        const u: UnfinishedBackup = { id: r() < 0.3 ? null : `u${i}`, status: r() < 0.5 ? 'FAILED' : 'TRANSFERRING', jobId: `backup-${i.toString(16)}`, source: { location: r() < 0.5 ? '/db/x' : '/db/y' }, createdAt, finishedAt: null, error: null, schedule: r() < 0.5 ? 'nightly' : null };
        out.push(u);
        continue;
      }
      const schedule = r() < 0.4 ? (r() < 0.5 ? 'nightly' : 'hourly') : null;
      const s: BackupSummary = {
        id: `b${String(i).padStart(3, '0')}${r() < 0.3 ? '-x' : ''}`,
        status: 'SUCCESS',
        type: schedule ? 'scheduled' : 'manual',
        source: { kind: 'sqlite', name: r() < 0.5 ? 'x' : 'y', location: r() < 0.5 ? '/db/x' : '/db/y', serverVersion: '3' },
        schedule,
        createdAt,
        completedAt: createdAt,
        durationMs: 0,
        expiresAt: r() < 0.5 ? null : new Date(Date.UTC(2027, 0, 1 + Math.floor(r() * 5))).toISOString(),
        size: { logicalBytes: Math.floor(r() * 10) * 100, storedBytes: Math.floor(r() * 10) * 10, newBytes: 1 },
        collections: 1,
        rows: 1,
        repository: '/repo',
      };
      out.push(s);
    }
    return out;
  }

  /** The model: compare as the API documents, written independently of the implementation. */
  function model(all: ListedBackup[], q: BackupQuery): ListedBackup[] {
    const kept = all.filter((b) => {
      const complete = b.status === 'SUCCESS';
      const schedule = complete ? (b as BackupSummary).schedule : ((b as UnfinishedBackup).schedule ?? null);
      if (q.source && !(b.source.location === q.source || (complete && (b as BackupSummary).source.name === q.source))) return false;
      if (q.status && b.status !== q.status) return false;
      if (q.schedule && schedule !== q.schedule) return false;
      if (q.type && (schedule ? 'scheduled' : 'manual') !== q.type) return false;
      const t = new Date(b.createdAt).getTime();
      if (q.sinceMs !== undefined && t < q.sinceMs) return false;
      if (q.untilMs !== undefined && t >= q.untilMs) return false;
      return true;
    });
    const key = q.sort ?? 'createdAt';
    const value = (b: ListedBackup): string | number | null => {
      const s = b.status === 'SUCCESS' ? (b as BackupSummary) : undefined;
      if (key === 'createdAt') return b.createdAt;
      if (key === 'id') return b.id;
      if (key === 'expiresAt') return s ? s.expiresAt : null;
      return s ? s.size[key] : null;
    };
    const sign = q.order === 'desc' ? -1 : 1;
    const tieKey = (b: ListedBackup): string => `${b.createdAt}|${b.id ?? ''}\u0000${'jobId' in b ? b.jobId : ''}`;
    const sorted = [...kept].sort((a, b) => {
      const va = value(a);
      const vb = value(b);
      if (va === null && vb !== null) return 1;
      if (vb === null && va !== null) return -1;
      if (va !== null && vb !== null && va !== vb) return (va < vb ? -1 : 1) * sign;
      return (tieKey(a) < tieKey(b) ? -1 : tieKey(a) > tieKey(b) ? 1 : 0) * sign;
    });
    return sorted.slice(q.offset ?? 0, q.limit === undefined ? undefined : (q.offset ?? 0) + q.limit);
  }

  it('matches the model for 300 random queries, and pages cover the whole list once', () => {
    const r = rng(19);
    const all = dataset(r);
    const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
    for (let i = 0; i < 300; i++) {
      const q: BackupQuery = {};
      if (r() < 0.3) q.source = pick(['/db/x', '/db/y', 'x', 'y', 'zz']);
      if (r() < 0.2) q.status = pick(['SUCCESS', 'FAILED', 'TRANSFERRING']);
      if (r() < 0.2) q.type = pick(['manual', 'scheduled'] as const);
      if (r() < 0.2) q.schedule = pick(['nightly', 'hourly']);
      if (r() < 0.3) q.sinceMs = Date.UTC(2026, 0, 1 + Math.floor(r() * 20));
      if (r() < 0.3) q.untilMs = Date.UTC(2026, 0, 1 + Math.floor(r() * 20));
      if (r() < 0.8) q.sort = pick(['createdAt', 'logicalBytes', 'storedBytes', 'id', 'expiresAt'] as const);
      if (r() < 0.7) q.order = pick(['asc', 'desc'] as const);
      if (r() < 0.7) q.limit = 1 + Math.floor(r() * 40);
      if (r() < 0.5) q.offset = Math.floor(r() * 60);
      const got = queryBackups(all, q);
      expect(got.backups, JSON.stringify(q)).toEqual(model(all, q));
      expect(got.total).toBe(model(all, { ...q, limit: undefined, offset: undefined }).length);
      // Paging through the whole filtered list yields each backup once, in order.
      const pages: ListedBackup[] = [];
      for (let offset = 0; offset < got.total; offset += 7) pages.push(...queryBackups(all, { ...q, offset, limit: 7 }).backups);
      expect(pages).toEqual(model(all, { ...q, limit: undefined, offset: undefined }));
    }
  });
});
