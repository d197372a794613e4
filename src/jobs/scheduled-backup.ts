/**
 * What a schedule's due time does: a backup job (type "scheduled", the schedule's name in the
 * manifest, its expiry), then the schedule's retention over the backups it made, and expiry over
 * every backup of the repository. Manual backups are never retention candidates.
 */
import { addDuration, parseDuration } from '../core/durations.js';
import type { ScheduleSpec } from '../catalog/schedules.js';
import type { BackupManifest } from '../core/schemas.js';
import type { Repository } from '../repo/repository.js';
import type { DatabaseSource } from '../sources/types.js';
import { runBackup } from './backup.js';
import type { JobCenter } from './job-center.js';
import { applyRetention } from './retention.js';
import { backupIdFor, retentionPolicy, type Launched } from './scheduler.js';

export interface LauncherDeps {
  center: JobCenter;
  now: () => Date;
  openRepository: (value: string) => Promise<Repository>;
  openSource: (value: string) => DatabaseSource;
}

export function scheduledBackupLauncher(deps: LauncherDeps): (spec: ScheduleSpec, dueAt: Date) => Promise<Launched> {
  return async (spec, dueAt) => {
    const repo = await deps.openRepository(spec.repository);
    const source = deps.openSource(spec.source);
    let id = backupIdFor(spec.pattern, { source: source.name, schedule: spec.name }, dueAt);
    for (let n = 2; await repo.hasBackup(id); n++) id = `${backupIdFor(spec.pattern, { source: source.name, schedule: spec.name }, dueAt)}-${n}`;
    const job = await deps.center.start({
      kind: 'backup',
      exclusiveKey: source.location,
      params: { source: source.location, repository: repo.location, id, schedule: spec.name, dueAt: dueAt.toISOString() },
      run: async (ctx) => {
        const m = await runBackup({
          repo,
          source,
          id,
          type: 'scheduled',
          schedule: spec.name,
          expiresAt: spec.expires ? addDuration(deps.now(), parseDuration(spec.expires, 'expiry')) : null,
          selection: { ...(spec.include ? { include: spec.include } : {}), ...(spec.exclude ? { exclude: spec.exclude } : {}) },
          signal: ctx.signal,
          onProgress: ctx.progress,
          now: deps.now,
        });
        const deleted = await applyScheduleRetention(repo, spec, deps.now());
        return { backupId: m.id, totals: m.totals, deleted };
      },
    });
    return { jobId: job.id, done: deps.center.wait(job.id) };
  };
}

/** Deletes what the schedule's retention drops among its own backups, and every expired backup. */
export async function applyScheduleRetention(repo: Repository, spec: ScheduleSpec, now: Date): Promise<string[]> {
  const manifests = await repo.listManifests();
  const mine = manifests.filter((m) => m.type === 'scheduled' && m.schedule === spec.name);
  const { remove } = applyRetention(mine.map((m) => ({ id: m.id, createdAt: m.createdAt })), retentionPolicy(spec), now, spec.timezone);
  const expired = expiredBackups(manifests, now).map((m) => m.id);
  const doomed = [...new Set([...remove, ...expired])];
  for (const id of doomed) await repo.deleteBackup(id);
  return doomed.sort();
}

/** The backups whose expiry has passed (manual or scheduled; without an expiry, never). */
export function expiredBackups(manifests: BackupManifest[], now: Date): BackupManifest[] {
  return manifests.filter((m) => m.expiresAt !== null && Date.parse(m.expiresAt) <= now.getTime());
}

/**
 * Deletes the backups the schedules of a registered source made (removing the source with
 * --delete-scheduled-backups); manual backups are never touched. Returns the ids, sorted.
 */
export async function deleteScheduledBackupsOf(source: string, schedules: ScheduleSpec[], openRepository: (value: string) => Promise<Repository>): Promise<string[]> {
  const deleted: string[] = [];
  for (const s of schedules.filter((x) => x.source === source)) {
    const repo = await openRepository(s.repository);
    for (const m of await repo.listManifests()) {
      if (m.type === 'scheduled' && m.schedule === s.name) {
        await repo.deleteBackup(m.id);
        deleted.push(m.id);
      }
    }
  }
  return deleted.sort();
}
