import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ConflictError, NotFoundError, SourceError } from '../../src/core/errors.js';
import { SqliteJobCatalog } from '../../src/catalog/sqlite.js';
import { PostgresJobCatalog } from '../../src/catalog/postgres.js';
import { createDatabase, dropDatabase, ensurePostgres, pgUrl } from '../helpers/postgres.js';
import { runBackup } from '../../src/jobs/backup.js';
import { isTerminal, JobCenter, JobConflictError, type JobContext } from '../../src/jobs/job-center.js';
import { databaseKey } from '../../src/jobs/database-key.js';
import type { JobRecord } from '../../src/catalog/types.js';
import { Repository } from '../../src/repo/repository.js';
import { openSource } from '../../src/sources/index.js';
import { FileSystemStorage } from '../../src/storage/fs.js';

const dir = mkdtempSync(join(tmpdir(), 'cairn-jobs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const catalogFile = (): string => join(dir, `catalog-${++n}.db`);

/** A job that waits until released (or aborted), reporting progress on the way. */
function gate() {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const run = async (ctx: JobContext): Promise<Record<string, unknown>> => {
    ctx.progress({ phase: 'transferring', collectionsDone: 0, collectionsTotal: 2, rows: 10, bytes: 1000, bytesTotal: 4000 });
    await new Promise<void>((resolve, reject) => {
      released.then(resolve, reject);
      ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true });
    });
    ctx.progress({ phase: 'finalizing', collectionsDone: 2, collectionsTotal: 2, rows: 40, bytes: 4000, bytesTotal: 4000 });
    return { ok: true };
  };
  return { run, release };
}

describe('JobCenter', () => {
  it('watchAll tells every change of every job, from its STARTED on, until unsubscribed; list pages, count counts', async () => {
    const center = new JobCenter(new SqliteJobCatalog(catalogFile()), { persistEveryMs: 0 });
    const seen: [string, string][] = [];
    const stop = center.watchAll((j) => seen.push([j.id, j.state]));
    const g1 = gate();
    const g2 = gate();
    const one = await center.start({ kind: 'backup', exclusiveKey: 'a', params: {}, run: g1.run });
    const two = await center.start({ kind: 'verify', params: {}, run: g2.run });
    expect(seen.slice(0, 2)).toEqual([[one.id, 'STARTED'], [two.id, 'STARTED']]);
    g1.release();
    g2.release();
    await Promise.all([center.wait(one.id), center.wait(two.id)]);
    for (const job of [one, two]) {
      const states = seen.filter(([id]) => id === job.id).map(([, s]) => s);
      expect(states).toEqual(expect.arrayContaining(['STARTED', 'TRANSFERRING', 'TRANSFERRED', 'SUCCESS']));
      expect(states.at(-1)).toBe('SUCCESS');
    }
    stop();
    const before = seen.length;
    const three = await center.start({ kind: 'backup', exclusiveKey: 'b', params: {}, run: async () => ({}) });
    await center.wait(three.id);
    expect(seen.length).toBe(before);
    expect(await center.count()).toBe(3);
    expect(await center.count({ kind: 'backup' })).toBe(2);
    expect((await center.list({ limit: 2 })).length).toBe(2);
    expect((await center.list({ kind: 'backup', limit: 1, offset: 1 })).map((j) => j.id)).toEqual([one.id]);
    expect(await center.list({ offset: 3 })).toEqual([]);
  });

  it('answers STARTED at once, then moves through TRANSFERRING and TRANSFERRED to SUCCESS', async () => {
    const center = new JobCenter(new SqliteJobCatalog(catalogFile()), { persistEveryMs: 0 });
    const g = gate();
    const started = await center.start({ kind: 'backup', exclusiveKey: 'sqlite:///a.db', params: { source: 'sqlite:///a.db' }, run: g.run });
    expect(started.state).toBe('STARTED');
    const seen: string[] = [];
    center.watch(started.id, (j) => seen.push(j.state));
    await new Promise((r) => setTimeout(r, 20));
    const running = await center.get(started.id);
    expect(running.state).toBe('TRANSFERRING');
    expect(running.progress).toMatchObject({ bytes: 1000, bytesTotal: 4000, rows: 10, collectionsTotal: 2 });
    expect(running.progress.etaSeconds).toBeGreaterThanOrEqual(0);
    g.release();
    const done = await center.wait(started.id);
    expect(done.state).toBe('SUCCESS');
    expect(done.result).toEqual({ ok: true });
    expect(done.finishedAt).not.toBeNull();
    expect(seen).toContain('TRANSFERRED');
    expect(seen.at(-1)).toBe('SUCCESS');
    expect((await center.list({ kind: 'backup' })).map((j) => j.id)).toEqual([started.id]);
  });

  it('refuses a second active backup of one source, naming the running job', async () => {
    const center = new JobCenter(new SqliteJobCatalog(catalogFile()));
    const g = gate();
    const first = await center.start({ kind: 'backup', exclusiveKey: 'postgres://h/db', params: {}, run: g.run });
    const err = await center.start({ kind: 'backup', exclusiveKey: 'postgres://h/db', params: {}, run: g.run }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as Error).message).toContain(first.id);
    // another source is fine
    const other = await center.start({ kind: 'backup', exclusiveKey: 'postgres://h/other', params: {}, run: async () => ({}) });
    expect((await center.wait(other.id)).state).toBe('SUCCESS');
    g.release();
    await center.wait(first.id);
    // once it has ended, the source can be backed up again
    const again = await center.start({ kind: 'backup', exclusiveKey: 'postgres://h/db', params: {}, run: async () => ({}) });
    expect((await center.wait(again.id)).state).toBe('SUCCESS');
  });

  it('cancels: CANCELLING, then CANCELED; an ended job cannot be cancelled; unknown ids are NotFound', async () => {
    const center = new JobCenter(new SqliteJobCatalog(catalogFile()));
    const g = gate();
    const job = await center.start({ kind: 'restore', params: {}, run: g.run });
    await new Promise((r) => setTimeout(r, 10));
    expect((await center.cancel(job.id)).state).toBe('CANCELLING');
    const end = await center.wait(job.id);
    expect(end.state).toBe('CANCELED');
    expect(end.error?.code).toBe('CANCELLED');
    await expect(center.cancel(job.id)).rejects.toThrow(ConflictError);
    await expect(center.get('nope')).rejects.toThrow(NotFoundError);
  });

  it('does not cancel a job that is finalizing', async () => {
    const center = new JobCenter(new SqliteJobCatalog(catalogFile()));
    let proceed!: () => void;
    const job = await center.start({
      kind: 'restore',
      params: {},
      run: async (ctx) => {
        ctx.finalizing();
        await new Promise<void>((r) => (proceed = r));
        return {};
      },
    });
    await new Promise((r) => setTimeout(r, 10));
    expect((await center.get(job.id)).state).toBe('FINALIZING');
    await expect(center.cancel(job.id)).rejects.toThrow(/finalizing/);
    proceed();
    expect((await center.wait(job.id)).state).toBe('SUCCESS');
  });

  it('records a failure with its code and message', async () => {
    const center = new JobCenter(new SqliteJobCatalog(catalogFile()));
    const job = await center.start({ kind: 'backup', params: {}, run: async () => Promise.reject(new SourceError('PostgreSQL is not reachable at h:5432.')) });
    const end = await center.wait(job.id);
    expect(end).toMatchObject({ state: 'FAILED', error: { code: 'SOURCE', message: 'PostgreSQL is not reachable at h:5432.' } });
  });

  it('after a restart, jobs that were running read FAILED (interrupted); ended ones are kept as they were', async () => {
    const file = catalogFile();
    const before = new JobCenter(new SqliteJobCatalog(file));
    const ended = await before.start({ kind: 'verify', params: {}, run: async () => ({ fine: 1 }) });
    await before.wait(ended.id);
    const running = await before.start({ kind: 'backup', exclusiveKey: 's', params: { source: 's' }, run: gate().run });
    await new Promise((r) => setTimeout(r, 10));
    // a new process opens the same catalog (the old one "died")
    const after = new JobCenter(new SqliteJobCatalog(file));
    expect(await after.recoverInterrupted()).toBe(1);
    expect(await after.get(running.id)).toMatchObject({ state: 'FAILED', error: { code: 'INTERRUPTED' } });
    expect((await after.get(running.id)).error?.message).toMatch(/interrupted/);
    expect(await after.get(ended.id)).toMatchObject({ state: 'SUCCESS', result: { fine: 1 } });
  });

  it('runs a real backup as a job, with progress, into a repository', async () => {
    const center = new JobCenter(new SqliteJobCatalog(catalogFile()), { persistEveryMs: 0 });
    const repo = await Repository.init(new FileSystemStorage(join(dir, 'repo')));
    const chinook = fileURLToPath(new URL('../../fixtures/chinook/chinook.sqlite', import.meta.url));
    const states: string[] = [];
    const job = await center.start({
      kind: 'backup',
      exclusiveKey: `sqlite://${chinook}`,
      params: { source: `sqlite://${chinook}` },
      run: async (ctx) => {
        const m = await runBackup({ repo, source: openSource(`sqlite://${chinook}`), signal: ctx.signal, onProgress: ctx.progress });
        return { backupId: m.id, totals: m.totals };
      },
    });
    center.watch(job.id, (j) => states.push(j.state));
    const end = await center.wait(job.id);
    expect(end.state).toBe('SUCCESS');
    expect(states).toEqual(expect.arrayContaining(['TRANSFERRING', 'TRANSFERRED', 'SUCCESS']));
    expect(end.progress.rows).toBeGreaterThan(15000);
    expect(await repo.hasBackup(end.result?.backupId as string)).toBe(true);
  });
});

describe.sequential('JobCenter on a PostgreSQL catalog (shared by several servers)', () => {
  let db: string;
  const open: PostgresJobCatalog[] = [];
  const catalog = async (): Promise<PostgresJobCatalog> => {
    const c = await PostgresJobCatalog.open(pgUrl(db, 'postgres', 'Catal0g-pw'));
    open.push(c);
    return c;
  };
  afterAll(async () => {
    for (const c of open) await c.close().catch(() => undefined);
    if (db) dropDatabase(db);
  });

  it('keeps job records there; a restarting server fails only its own unfinished jobs', async () => {
    ensurePostgres();
    db = createDatabase('cairn_catalog');
    const a = new JobCenter(await catalog(), { owner: 'host-a/1', persistEveryMs: 0 });
    const b = new JobCenter(await catalog(), { owner: 'host-b/2', persistEveryMs: 0 });
    expect((await catalog()).location).not.toContain('Catal0g-pw');
    const done = await a.start({ kind: 'backup', exclusiveKey: 'x', params: { source: 'x' }, run: async (ctx) => {
      ctx.progress({ phase: 'transferring', collectionsDone: 0, collectionsTotal: 1, rows: 5, bytes: 50 });
      return { ok: 1 };
    } });
    expect((await a.wait(done.id)).state).toBe('SUCCESS');
    const runningA = await a.start({ kind: 'backup', exclusiveKey: 'y', params: {}, run: gate().run });
    const runningB = await b.start({ kind: 'restore', params: {}, run: gate().run });
    await new Promise((r) => setTimeout(r, 20));
    // server A "dies" and starts again: its running job fails, B's goes on
    const a2 = new JobCenter(await catalog(), { owner: 'host-a/1' });
    expect(await a2.recoverInterrupted()).toBe(1);
    expect(await a2.get(runningA.id)).toMatchObject({ state: 'FAILED', error: { code: 'INTERRUPTED' } });
    expect((await a2.get(runningB.id)).state).toBe('TRANSFERRING');
    expect(await a2.get(done.id)).toMatchObject({ state: 'SUCCESS', result: { ok: 1 }, progress: { rows: 5 } });
    expect((await a2.list({ kind: 'backup' })).map((j) => j.id)).toEqual([runningA.id, done.id]);
    expect((await a2.list({ kind: 'backup', limit: 1, offset: 1 })).map((j) => j.id)).toEqual([done.id]);
    expect([await a2.count({ kind: 'backup' }), await a2.count({ kind: 'restore' }), await a2.count({ kind: 'verify' })]).toEqual([2, 1, 0]);
    await b.cancel(runningB.id);
    expect((await b.wait(runningB.id)).state).toBe('CANCELED');
    expect((await a2.get(runningB.id)).state).toBe('CANCELED');
  }, 60_000);

  it('names the server, not the password, when the catalog is unreachable', async () => {
    const err = await PostgresJobCatalog.open('postgres://postgres:Catal0g-pw@127.0.0.1:1/x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SourceError);
    expect((err as Error).message).toMatch(/127\.0\.0\.1:1/);
    expect((err as Error).message).not.toContain('Catal0g-pw');
  });
});

describe('one job per database', () => {
  it('names a database the same whatever URL reaches it', () => {
    const sub = join(dir, 'db-folder');
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, 'app.db'), '');
    symlinkSync(sub, join(dir, 'db-link'));
    const key = databaseKey(`sqlite://${join(sub, 'app.db')}`);
    expect(databaseKey(`sqlite://${join(dir, 'db-link', 'app.db')}`)).toBe(key);
    expect(databaseKey(`sqlite://${join(dir, 'db-link', '..', 'db-folder', 'app.db')}`)).toBe(key);
    // a file that does not exist yet (a new restore target) through the symlinked folder
    expect(databaseKey(`sqlite://${join(dir, 'db-link', 'new.db')}`)).toBe(databaseKey(`sqlite://${join(sub, 'new.db')}`));
    expect(databaseKey(`sqlite://${join(sub, 'other.db')}`)).not.toBe(key);
    const pg = databaseKey('postgres://alice@127.0.0.1:5432/shop');
    expect(databaseKey('postgres://bob@localhost:5432/shop')).toBe(pg);
    expect(databaseKey('postgres://bob@[::1]:5432/shop')).toBe(pg);
    // A socket folder, in the form a location records it (pgLocation) and as a user may write it.
    expect(databaseKey('postgres:///shop?host=%2Fvar%2Frun%2Fpostgresql&port=5432&user=postgres')).toBe(pg);
    expect(databaseKey('postgres://postgres@%2Fvar%2Frun%2Fpostgresql:5432/shop')).toBe(pg);
    expect(databaseKey('postgres://alice@127.0.0.1:5433/shop')).not.toBe(pg);
    expect(databaseKey('postgres://alice@127.0.0.1:5432/Shop')).not.toBe(pg);
    expect(databaseKey('postgres://alice@DB.example:5432/shop')).toBe(databaseKey('postgres://x@db.example:5432/shop'));
  });

  it('a backup and a restore of one database never run at once: the second gets a conflict naming the running job', async () => {
    const center = new JobCenter(new SqliteJobCatalog(catalogFile()));
    const g = gate();
    const backup = await center.start({ kind: 'backup', exclusiveKey: databaseKey('postgres://alice@127.0.0.1:5432/shop'), params: { source: 'postgres://alice@127.0.0.1:5432/shop' }, run: g.run });
    const restore = await center
      .start({ kind: 'restore', exclusiveKey: databaseKey('postgres://bob@localhost:5432/shop'), params: { target: 'postgres://bob@localhost:5432/shop' }, run: async () => ({}) })
      .catch((e: unknown) => e);
    expect(restore).toBeInstanceOf(JobConflictError);
    expect((restore as JobConflictError).running.id).toBe(backup.id);
    expect((restore as Error).message).toMatch(new RegExp(`A backup of postgres://alice@127\\.0\\.0\\.1:5432/shop is already running as job ${backup.id}`));
    // another database is free; once the backup has ended, the restore runs
    const elsewhere = await center.start({ kind: 'restore', exclusiveKey: databaseKey('postgres://bob@localhost:5432/shop2'), params: {}, run: async () => ({}) });
    expect((await center.wait(elsewhere.id)).state).toBe('SUCCESS');
    g.release();
    await center.wait(backup.id);
    const h = gate();
    const r1 = await center.start({ kind: 'restore', exclusiveKey: databaseKey('postgres://bob@localhost:5432/shop'), params: { target: 'postgres://bob@localhost:5432/shop' }, run: h.run });
    // two restores into one database, and a backup while a restore loads it, are refused too
    for (const kind of ['restore', 'backup'] as const) {
      const err = await center.start({ kind, exclusiveKey: databaseKey('postgres://carol@127.0.0.1:5432/shop'), params: {}, run: async () => ({}) }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConflictError);
      expect((err as Error).message).toContain(`A restore of postgres://bob@localhost:5432/shop is already running as job ${r1.id}`);
    }
    h.release();
    expect((await center.wait(r1.id)).state).toBe('SUCCESS');
  });
});

/** A real SQLite catalog whose writes of final states fail `failures` times (a disk fault). */
class FailingFinalWrites extends SqliteJobCatalog {
  failures = 0;
  attempts = 0;
  override async update(job: JobRecord): Promise<void> {
    if (isTerminal(job.state)) {
      this.attempts++;
      if (this.failures > 0) {
        this.failures--;
        throw new Error('disk I/O error');
      }
    }
    return super.update(job);
  }
}

describe('a job\'s final state write that fails', () => {
  it('is retried until it lands', async () => {
    const file = catalogFile();
    const catalog = new FailingFinalWrites(file);
    catalog.failures = 2;
    const lines: string[] = [];
    const center = new JobCenter(catalog, { log: (l) => lines.push(l), finalRetryDelaysMs: [5, 5, 5] });
    const job = await center.start({ kind: 'verify', params: {}, run: async () => ({ fine: true }) });
    expect((await center.wait(job.id)).state).toBe('SUCCESS');
    expect(catalog.attempts).toBe(3);
    expect(await new SqliteJobCatalog(file).get(job.id)).toMatchObject({ state: 'SUCCESS', result: { fine: true } });
    expect(lines.join('\n')).toMatch(new RegExp(`job ${job.id}: writing its SUCCESS state to the job catalog failed \\(disk I/O error\\)`));
  });

  it('when every retry fails: logged (never swallowed), and the job still reads as ended here', async () => {
    const file = catalogFile();
    const catalog = new FailingFinalWrites(file);
    catalog.failures = 1000;
    const lines: string[] = [];
    const center = new JobCenter(catalog, { log: (l) => lines.push(l), finalRetryDelaysMs: [1, 1, 1] });
    const job = await center.start({ kind: 'backup', exclusiveKey: 'k', params: {}, run: async () => Promise.reject(new SourceError('PostgreSQL is not reachable at h:5432.')) });
    const end = await center.wait(job.id);
    expect(end).toMatchObject({ state: 'FAILED', error: { code: 'SOURCE' } });
    expect(catalog.attempts).toBe(4); // the queued write, then 3 retries
    expect(lines.at(-1)).toMatch(new RegExp(`job ${job.id} ended FAILED, but its final state could not be written to the job catalog after 4 attempts \\(disk I/O error\\)`));
    expect(await center.get(job.id)).toMatchObject({ state: 'FAILED', error: { code: 'SOURCE' } });
    expect((await center.list({})).find((j) => j.id === job.id)?.state).toBe('FAILED');
    expect(await center.wait(job.id)).toMatchObject({ state: 'FAILED' });
    await expect(center.cancel(job.id)).rejects.toThrow(/already ended \(FAILED\)/);
    expect((await new SqliteJobCatalog(file).get(job.id))?.state).toBe('STARTED');
    // the key is free again
    const next = await center.start({ kind: 'backup', exclusiveKey: 'k', params: {}, run: async () => ({}) });
    expect((await center.wait(next.id)).state).toBe('SUCCESS'); // its final write failed too, but it ended
  });
});
