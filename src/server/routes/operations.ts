/** Jobs on backups and repositories: /v1/restores, /v1/copies, /v1/syncs, /v1/verifications, /v1/prunes. */
import { scrubSecrets } from '../../sources/redact.js';
import os from 'node:os';
import { UsageError } from '../../core/errors.js';
import { validateBackupId } from '../../core/ids.js';
import { databaseKey } from '../../jobs/database-key.js';
import { checkPair, runCopy, runSync, syncProblems } from '../../jobs/copy.js';
import { runRestore } from '../../jobs/restore.js';
import { planRestore, type RestorePlanOptions } from '../../jobs/restore-plan.js';
import { expiredBackups } from '../../jobs/scheduled-backup.js';
import { prune } from '../../repo/prune.js';
import { repair } from '../../repo/repair.js';
import { verifyBackupsLocked, verifyFailure } from '../../repo/verify.js';
import { definitionProblems, namesCollection, openTarget } from '../../sources/index.js';
import { quote, safeMessage } from '../redact.js';
import { publicJob, type RouteKit } from './kit.js';

export function operationRoutes({ on, center, openRepo, sourceUrl, started, scope }: RouteKit): void {
  on('createRestore', async (c, { body: req }) => {
    const backupId = validateBackupId(req.backup);
    const repo = await openRepo(c, req.repository);
    const manifest = await repo.readManifest(backupId); // 404 before a job exists
    scope(c).checkBackup(backupId, manifest.source.location); // a scoped token restores its sources' backups only
    // Every rename names a collection of the backup ("__proto__" too): none is dropped unseen.
    for (const [from] of req.renames ?? []) {
      if (!manifest.collections.some((col) => namesCollection(manifest.source.kind, from, col.name))) {
        throw new UsageError(`renames: ${quote(from)} is not a collection of backup "${backupId}"; see GET /v1/backups/${backupId}.`);
      }
    }
    const ref = sourceUrl(c, req.target, 'target');
    const target = openTarget(ref.url, { untrusted: ref.untrusted });
    // What the dry run and the restore job both take (the job adds its streams and roles as asked).
    const restoreOptions = {
      repo,
      backupId,
      target,
      selection: { ...(req.include ? { include: req.include } : {}), ...(req.exclude ? { exclude: req.exclude } : {}) },
      renames: new Map(req.renames ?? []),
      onConflict: req.onConflict ?? 'fail',
      ...(req.sessions ? { sessions: req.sessions } : {}),
      ...(req.sessionsTimeoutSeconds !== undefined ? { sessionsTimeoutMs: req.sessionsTimeoutSeconds * 1000 } : {}),
      ...(req.noOwner ? { noOwner: true } : {}),
      ...(req.noPrivileges ? { noPrivileges: true } : {}),
    } satisfies RestorePlanOptions;
    if (req.dryRun) {
      // The checks a restore makes before writing, answered at once: no job, nothing written.
      const plan = await planRestore({ ...restoreOptions, ...(req.roles ? { roles: true } : {}) });
      return c.json({ ...plan, conflicts: plan.conflicts.map((k) => ({ ...k, message: safeMessage(k.message) })), message: safeMessage(plan.message) }, 200);
    }
    // cpuPercentage: a share of the server's cores, as on a backup.
    const jobs = req.jobs ?? (req.cpuPercentage !== undefined ? Math.max(1, Math.floor((os.availableParallelism() * req.cpuPercentage) / 100)) : undefined);
    const job = await center.start({
      kind: 'restore',
      exclusiveKey: databaseKey(target.location),
      params: { backup: backupId, repository: repo.location, target: target.location, ...(req.include ? { include: req.include } : {}), ...(req.exclude ? { exclude: req.exclude } : {}), ...(req.renames ? { renames: Object.fromEntries(req.renames) } : {}), onConflict: req.onConflict ?? 'fail', ...(req.sessions ? { sessions: req.sessions } : {}), ...(req.noOwner ? { noOwner: true } : {}), ...(req.noPrivileges ? { noPrivileges: true } : {}), ...(req.roles ? { roles: true } : {}), ...(req.jobs !== undefined ? { jobs: req.jobs } : {}), ...(req.cpuPercentage !== undefined ? { cpuPercentage: req.cpuPercentage } : {}) },
      run: async (ctx) => {
        const summary = await runRestore({
          ...restoreOptions,
          ...(jobs ? { jobs } : {}),
          ...(req.roles !== undefined ? { roles: req.roles } : {}),
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
    checkPair(from, to);
    scope(c).checkBackup(backupId, (await from.readManifest(backupId)).source.location);
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

  on('createSync', async (c, { body: req }) => {
    const [from, to] = [await openRepo(c, req.from), await openRepo(c, req.to)];
    checkPair(from, to); // 400 before a job exists
    const job = await center.start({
      kind: 'sync',
      // One sync into a repository at a time: two would race for the same backups.
      exclusiveKey: `sync:${to.location}`,
      // A source given as a URL may carry a password: job params are shown to viewers.
      params: { from: from.location, to: to.location, ...(req.source !== undefined ? { source: scrubSecrets(req.source) } : {}) },
      run: async (ctx) => {
        const result = await runSync({
          from,
          to,
          ...(req.source !== undefined ? { source: req.source } : {}),
          signal: ctx.signal,
          onProgress: (p) => ctx.progress({ phase: p.phase, ...(p.backup ? { collection: p.backup } : {}), collectionsDone: p.backupsDone, collectionsTotal: p.backupsTotal, rows: 0, bytes: p.bytesCopied, bytesTotal: p.bytesTotal }),
        });
        // Left-out backups fail the job, naming them; those copied stay copied.
        const problem = syncProblems(result);
        if (problem) throw problem;
        return { ...result };
      },
    });
    started('sync');
    return c.json({ job: publicJob(job) }, 202);
  });

  on('createRepair', async (c, { body: req }) => {
    const repo = await openRepo(c, req.repository);
    const job = await center.start({
      kind: 'repair',
      exclusiveKey: repo.location,
      params: { repository: repo.location, dryRun: Boolean(req.dryRun) },
      run: async (ctx) => ({ ...(await repair(repo, { dryRun: Boolean(req.dryRun), signal: ctx.signal })) }),
    });
    started('repair');
    return c.json({ job: publicJob(job) }, 202);
  });

  on('expireBackups', async (c, { body: req }) => {
    const repo = await openRepo(c, req.repository);
    // As cairn backup expire: every backup whose expiry has passed, manual or scheduled.
    const expired = expiredBackups(await repo.listManifests(), new Date()).map((m) => m.id);
    if (!req.dryRun) for (const id of expired) await repo.deleteBackup(id);
    return c.json({ repository: repo.location, dryRun: Boolean(req.dryRun), expired });
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
