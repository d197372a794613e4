/**
 * JobCenter's leases on a shared catalog, without a database: a catalog whose coordination facet
 * is scripted. finalizing() refuses to commit once the lease is not known to be valid; the
 * heartbeat aborts jobs whose renewal failed for too long, and those reaped elsewhere.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { runBackup } from '../../src/jobs/backup.js';
import { Repository } from '../../src/repo/repository.js';
import { openSource } from '../../src/sources/index.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { LeaseLostError } from '../../src/core/errors.js';
import { JobCenter, leaseMargin, type JobContext } from '../../src/jobs/job-center.js';
import type { HeartbeatResult, JobCatalog, JobCoordination, JobRecord } from '../../src/jobs/ports.js';

/** An in-memory catalog with a coordination facet whose heartbeat the test scripts. */
function fakeCatalog(beat: (ids: readonly string[]) => Promise<HeartbeatResult>) {
  const rows = new Map<string, JobRecord>();
  const coordination: JobCoordination = {
    heartbeat: (_server, ids) => beat(ids),
    reapExpired: async () => [],
    requestCancel: async () => ({ outcome: 'missing' }),
    listenCancels: async () => async () => undefined,
    listServers: async () => [],
    markStopped: async () => undefined,
    changedSince: async () => ({ records: [], cursor: new Date().toISOString() }),
  };
  const catalog: JobCatalog = {
    coordination,
    insert: async (job) => void rows.set(job.id, structuredClone(job)),
    update: async (job) => void rows.set(job.id, structuredClone(job)),
    get: async (id) => rows.get(id),
    list: async () => [...rows.values()],
    count: async () => rows.size,
    failUnfinished: async () => 0,
    close: async () => undefined,
  };
  return { catalog, rows };
}

/** Resolves once `cond` holds, polling every 5 ms; fails after `ms`. */
async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

const dir = mkdtempSync(join(tmpdir(), 'cairn-lease-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const centers: JobCenter[] = [];
afterEach(async () => {
  for (const c of centers.splice(0)) await c.close();
});

describe('JobCenter leases (shared catalog)', () => {
  it('finalizing() passes while the lease is fresh and throws LEASE_LOST once it lapsed (no renewal)', async () => {
    // Heartbeats never run on their own here (60 s), so only the insert's lease counts.
    const { catalog } = fakeCatalog(async () => ({ renewed: [], lost: [], cancelRequested: [] }));
    const leaseMs = 300;
    const center = new JobCenter(catalog, { owner: 'a', leaseMs, heartbeatMs: 60_000, log: () => undefined });
    centers.push(center);
    let fresh: unknown = 'not called';
    const early = await center.start({ kind: 'verify', params: {}, run: async (ctx: JobContext) => {
      try {
        ctx.finalizing();
        fresh = undefined;
      } catch (err) {
        fresh = err;
      }
      return {};
    } });
    expect((await center.wait(early.id)).state).toBe('SUCCESS');
    expect(fresh).toBeUndefined();

    let thrown: unknown;
    const late = await center.start({ kind: 'backup', exclusiveKey: 'db', params: {}, run: async (ctx: JobContext) => {
      await new Promise((r) => setTimeout(r, leaseMs - leaseMargin(leaseMs) + 50));
      try {
        ctx.finalizing();
      } catch (err) {
        thrown = err;
        throw err;
      }
      return { committed: true };
    } });
    const end = await center.wait(late.id);
    expect(thrown).toBeInstanceOf(LeaseLostError);
    expect(end).toMatchObject({ state: 'FAILED', result: null, error: { code: 'LEASE_LOST' } });
    expect(end.error?.message).toMatch(/lost its lease.*could not renew it.*start the job again/s);
  });

  it('a heartbeat that keeps failing aborts the job with LEASE_LOST after the lease minus the margin; a renewed one keeps it', async () => {
    let failing = false;
    const logged: string[] = [];
    const { catalog } = fakeCatalog(async (ids) => {
      if (failing) throw new Error('connection refused');
      return { renewed: [...ids], lost: [], cancelRequested: [] };
    });
    const leaseMs = 400;
    const center = new JobCenter(catalog, { owner: 'a', leaseMs, heartbeatMs: 50, log: (l) => logged.push(l) });
    centers.push(center);
    let aborted = 0;
    const job = await center.start({ kind: 'backup', exclusiveKey: 'db', params: {}, run: async (ctx) => {
      await new Promise<void>((_, reject) => ctx.signal.addEventListener('abort', () => {
        aborted = performance.now();
        reject(ctx.signal.reason as Error);
      }, { once: true }));
      return {};
    } });
    // Renewed for well past the lease: still running.
    await new Promise((r) => setTimeout(r, leaseMs * 2));
    expect((await center.get(job.id)).state).not.toMatch(/FAILED|CANCELED|SUCCESS/);
    const cut = performance.now();
    failing = true;
    const end = await center.wait(job.id);
    expect(end).toMatchObject({ state: 'FAILED', error: { code: 'LEASE_LOST' } });
    // Aborted no later than the lease after the last good renewal (plus a heartbeat and slack).
    expect(aborted - cut).toBeLessThan(leaseMs + 50 + 200);
    expect(logged.filter((l) => l.includes('renewing the leases'))).toHaveLength(1); // once per outage
  });

  it('a job the catalog no longer has active (reaped by a replica) is aborted with LEASE_LOST at the next heartbeat', async () => {
    let lose = false;
    const { catalog } = fakeCatalog(async (ids) => (lose ? { renewed: [], lost: [...ids], cancelRequested: [] } : { renewed: [...ids], lost: [], cancelRequested: [] }));
    const center = new JobCenter(catalog, { owner: 'a', leaseMs: 10_000, heartbeatMs: 20, log: () => undefined });
    centers.push(center);
    const job = await center.start({ kind: 'backup', exclusiveKey: 'db', params: {}, run: (ctx) => new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error), { once: true })) });
    await center.heartbeat();
    lose = true;
    const end = await center.wait(job.id);
    expect(end).toMatchObject({ state: 'FAILED', error: { code: 'LEASE_LOST' } });
    expect(end.error?.message).toMatch(/another cairn server .* marked it interrupted/);
    await until(() => center.activeIds().length === 0);
  });

  it('a backup job whose lease lapsed before its manifest fails LEASE_LOST and leaves no backup (runBackup calls finalizing right before the manifest)', async () => {
    const { catalog } = fakeCatalog(async () => ({ renewed: [], lost: [], cancelRequested: [] }));
    const leaseMs = 200;
    const center = new JobCenter(catalog, { owner: 'a', leaseMs, heartbeatMs: 60_000, log: () => undefined });
    centers.push(center);
    const repo = await Repository.init(new FileSystemStorage(join(dir, 'repo')));
    const chinook = fileURLToPath(new URL('../../fixtures/chinook/chinook.sqlite', import.meta.url));
    const states: string[] = [];
    const job = await center.start({ kind: 'backup', exclusiveKey: 'chinook', params: {}, run: async (ctx) => {
      const m = await runBackup({
        repo, source: openSource(`sqlite://${chinook}`), signal: ctx.signal, onProgress: ctx.progress,
        // The data is written; the lease runs out before the commit point.
        beforeCommit: () => {
          const until = performance.now() + leaseMs;
          while (performance.now() < until) { /* the lease lapses here */ }
          ctx.finalizing();
        },
      });
      return { backupId: m.id };
    } });
    center.watch(job.id, (j) => states.push(j.state));
    const end = await center.wait(job.id);
    expect(end).toMatchObject({ state: 'FAILED', error: { code: 'LEASE_LOST' } });
    expect(states).not.toContain('FINALIZING');
    expect(await repo.listBackupIds()).toEqual([]);
    // With a lease that holds, the same backup commits, through FINALIZING.
    const held = new JobCenter(fakeCatalog(async () => ({ renewed: [], lost: [], cancelRequested: [] })).catalog, { owner: 'a', leaseMs: 60_000, heartbeatMs: 60_000, log: () => undefined });
    centers.push(held);
    const ok = await held.start({ kind: 'backup', exclusiveKey: 'chinook', params: {}, run: async (ctx) => ({ backupId: (await runBackup({ repo, source: openSource(`sqlite://${chinook}`), signal: ctx.signal, beforeCommit: ctx.finalizing })).id }) });
    const seen: string[] = [];
    held.watch(ok.id, (j) => seen.push(j.state));
    expect((await held.wait(ok.id)).state).toBe('SUCCESS');
    expect(seen).toContain('FINALIZING');
    expect(await repo.listBackupIds()).toHaveLength(1);
  });
});
