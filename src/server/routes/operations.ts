/** Jobs on backups and repositories: /v1/restores, /v1/copies, /v1/verifications, /v1/prunes. */
import { UsageError } from '../../core/errors.js';
import { validateBackupId } from '../../core/ids.js';
import { databaseKey } from '../../jobs/database-key.js';
import { runCopy } from '../../jobs/copy.js';
import { runRestore } from '../../jobs/restore.js';
import { prune } from '../../repo/prune.js';
import { verifyBackupsLocked, verifyFailure } from '../../repo/verify.js';
import { definitionProblems, namesCollection, openTarget } from '../../sources/index.js';
import { quote } from '../redact.js';
import { publicJob, type RouteKit } from './kit.js';

export function operationRoutes({ on, center, openRepo, sourceUrl, started }: RouteKit): void {
  on('createRestore', async (c, { body: req }) => {
    const backupId = validateBackupId(req.backup);
    const repo = await openRepo(c, req.repository);
    const manifest = await repo.readManifest(backupId); // 404 before a job exists
    // Every rename names a collection of the backup ("__proto__" too): none is dropped unseen.
    for (const [from] of req.renames ?? []) {
      if (!manifest.collections.some((col) => namesCollection(manifest.source.kind, from, col.name))) {
        throw new UsageError(`renames: ${quote(from)} is not a collection of backup "${backupId}"; see GET /v1/backups/${backupId}.`);
      }
    }
    const target = openTarget(sourceUrl(c, req.target, 'target'));
    const job = await center.start({
      kind: 'restore',
      exclusiveKey: databaseKey(target.location),
      params: { backup: backupId, repository: repo.location, target: target.location, ...(req.include ? { include: req.include } : {}), ...(req.exclude ? { exclude: req.exclude } : {}), ...(req.renames ? { renames: Object.fromEntries(req.renames) } : {}), onConflict: req.onConflict ?? 'fail', ...(req.sessions ? { sessions: req.sessions } : {}), ...(req.noOwner ? { noOwner: true } : {}), ...(req.noPrivileges ? { noPrivileges: true } : {}) },
      run: async (ctx) => {
        const summary = await runRestore({
          repo,
          backupId,
          target,
          selection: { ...(req.include ? { include: req.include } : {}), ...(req.exclude ? { exclude: req.exclude } : {}) },
          renames: new Map(req.renames ?? []),
          onConflict: req.onConflict ?? 'fail',
          ...(req.sessions ? { sessions: req.sessions } : {}),
          ...(req.sessionsTimeoutSeconds !== undefined ? { sessionsTimeoutMs: req.sessionsTimeoutSeconds * 1000 } : {}),
          ...(req.jobs ? { jobs: req.jobs } : {}),
          ...(req.roles !== undefined ? { roles: req.roles } : {}),
          ...(req.noOwner ? { noOwner: true } : {}),
          ...(req.noPrivileges ? { noPrivileges: true } : {}),
          signal: ctx.signal,
          onProgress: ctx.progress,
          onFinalizing: ctx.finalizing,
        });
        return { ...summary };
      },
    });
    started('restore');
    return c.json({ job: publicJob(job) }, 202);
  });

  on('createCopy', async (c, { body: req }) => {
    const backupId = validateBackupId(req.backup);
    const [from, to] = [await openRepo(c, req.from), await openRepo(c, req.to)];
    await from.readManifest(backupId);
    const job = await center.start({
      kind: 'copy',
      params: { backup: backupId, from: from.location, to: to.location },
      run: async (ctx) => {
        const result = await runCopy({
          from,
          to,
          backupId,
          signal: ctx.signal,
          onProgress: (p) => ctx.progress({ phase: p.phase, collectionsDone: p.packsDone, collectionsTotal: p.packsTotal, rows: 0, bytes: p.bytesCopied, bytesTotal: p.bytesTotal }),
        });
        return { ...result };
      },
    });
    started('copy');
    return c.json({ job: publicJob(job) }, 202);
  });

  on('createVerification', async (c, { body: req }) => {
    const ids = (req.backups ?? []).map(validateBackupId);
    const repo = await openRepo(c, req.repository);
    const job = await center.start({
      kind: 'verify',
      params: { repository: repo.location, ...(ids.length ? { backups: ids } : {}), readData: Boolean(req.readData) },
      run: async (ctx) => {
        const all = ids.length
          ? { manifests: await Promise.all(ids.map((id) => repo.readManifest(id, ctx.signal))), damaged: [] }
          : await repo.readAllManifests(ctx.signal);
        const report = await verifyBackupsLocked(repo, all.manifests, {
          readData: Boolean(req.readData),
          signal: ctx.signal,
          onProgress: (done, total) => ctx.progress({ phase: 'transferring', collectionsDone: done, collectionsTotal: total, rows: 0, bytes: 0 }),
        });
        // A manifest that cannot be read is a backup that cannot be restored: a problem too (as the CLI).
        for (const d of all.damaged) report.problems.unshift({ object: `backups/${d.id}`, message: d.message, affects: [d.id] });
        report.problems.unshift(...definitionProblems(all.manifests));
        if (report.problems.length > 0) throw verifyFailure(report);
        return { backups: report.backups, chunks: report.chunks, packs: report.packs, bytesRead: report.bytesRead };
      },
    });
    started('verify');
    return c.json({ job: publicJob(job) }, 202);
  });

  on('createPrune', async (c, { body: req }) => {
    const repo = await openRepo(c, req.repository);
    const job = await center.start({
      kind: 'prune',
      exclusiveKey: repo.location,
      params: { repository: repo.location, dryRun: Boolean(req.dryRun), ...(req.graceSeconds !== undefined ? { graceSeconds: req.graceSeconds } : {}) },
      run: async (ctx) => ({
        ...(await prune(repo, { dryRun: Boolean(req.dryRun), signal: ctx.signal, ...(req.graceSeconds !== undefined ? { unindexedGraceMs: req.graceSeconds * 1000 } : {}) })),
      }),
    });
    started('prune');
    return c.json({ job: publicJob(job) }, 202);
  });
}
