/**
 * What a schedule's due time does: a backup job (type "scheduled", the schedule's name and id in
 * the manifest, its expiry), then the schedule's retention over the backups it made, and expiry
 * over every backup of the repository. Manual backups are never retention candidates, nor are
 * backups of another schedule: one of the same name in another data folder has another id.
 */
import { addDuration, parseDuration } from '../core/durations.js';
import { ConflictError, NotFoundError } from '../core/errors.js';
import type { ScheduleSpec } from './ports.js';
import type { BackupManifest } from '../core/schemas.js';
import type { Repository } from '../repo/repository.js';
import type { DatabaseSource } from '../sources/types.js';
import { runBackup } from './backup.js';
import { runSync, syncProblems } from './copy.js';
import { scrubSecrets } from '../sources/redact.js';
import { databaseKey } from './database-key.js';
import type { JobCenter } from './job-center.js';
import { applyRetention } from './retention.js';
import { backupIdFor, retentionPolicy, type Launched } from './scheduler.js';

export interface LauncherDeps {
  center: JobCenter;
  now: () => Date;
  openRepository: (value: string) => Promise<Repository>;
  openSource: (value: string) => DatabaseSource;
  /** Where retention failures are reported besides the job's result (default: nowhere). */
  log?: (line: string) => void;
}

/** How long a scheduled backup waits for a prune or repair holding the exclusive lock. */
export const SCHEDULED_LOCK_WAIT_MS = 30 * 60_000;

export function scheduledBackupLauncher(deps: LauncherDeps): (spec: ScheduleSpec, dueAt: Date) => Promise<Launched> {
  return async (spec, dueAt) => {
    const source = deps.openSource(spec.source);
    const repo = await deps.openRepository(spec.repository);
    let id = backupIdFor(spec.pattern, { source: source.name, schedule: spec.name }, dueAt);
    for (let n = 2; await repo.hasBackup(id); n++) id = `${backupIdFor(spec.pattern, { source: source.name, schedule: spec.name }, dueAt)}-${n}`;
    const job = await deps.center.start({
      kind: 'backup',
      exclusiveKey: databaseKey(source.location),
      params: { source: source.location, repository: repo.location, id, schedule: spec.name, scheduleId: spec.id, dueAt: dueAt.toISOString() },
      run: async (ctx) => {
        // Under the database's key: no other backup or restore of it runs while this looks.
        const unchangedSince = spec.whenUnchanged === 'skip' ? await unchangedSinceBackup(repo, source, spec, deps.now(), ctx.signal) : undefined;
        if (unchangedSince !== undefined) {
          // No backup, so nothing new for retention or expiry to weigh: the last backup stands for now.
          // A copy an earlier run could not make is still caught up (docs: "retried at the next run").
          const warnings: string[] = [];
          const copied = await copyToSecond(deps, repo, spec, ctx.signal, warnings);
          for (const w of warnings) deps.log?.(`schedule ${spec.name}: ${w}`);
          return { skipped: 'unchanged', unchangedSince, reason: `unchanged since ${unchangedSince}`, ...(copied ? { copied } : {}), ...(warnings.length ? { warnings } : {}) };
        }
        const m = await runBackup({
          repo,
          source,
          id,
          type: 'scheduled',
          schedule: spec.name,
          scheduleId: spec.id,
          expiresAt: spec.expires ? addDuration(deps.now(), parseDuration(spec.expires, 'expiry')) : null,
          selection: { ...(spec.include ? { include: spec.include } : {}), ...(spec.exclude ? { exclude: spec.exclude } : {}) },
          signal: ctx.signal,
          onProgress: ctx.progress,
          // The manifest is written only while the job may still commit (not cancelled, lease held).
          beforeCommit: ctx.finalizing,
          now: deps.now,
          // A prune or repair running at the same hour delays a scheduled backup, not fails it.
          lockWaitMs: SCHEDULED_LOCK_WAIT_MS,
        });
        // The backup exists from here on: a retention failure (the repository locked by a prune,
        // a storage fault) does not undo it. It is reported as a warning of a successful job and
        // retried at the next run, which computes retention over all the schedule's backups again.
        const warnings: string[] = [];
        let deleted: string[] = [];
        try {
          const r = await applyScheduleRetention(repo, spec, source.location, deps.now());
          deleted = r.deleted;
          warnings.push(...r.failed.map((f) => `retention could not delete backup ${f.id} (${f.message}); it is retried at the next run`));
        } catch (err) {
          warnings.push(`retention and expiry were not applied (${err instanceof Error ? err.message : String(err)}); they are retried at the next run`);
        }
        const copied = await copyToSecond(deps, repo, spec, ctx.signal, warnings);
        for (const w of warnings) deps.log?.(`schedule ${spec.name}: ${w}`);
        return { backupId: m.id, totals: m.totals, deleted, ...(copied ? { copied } : {}), ...(warnings.length ? { warnings } : {}) };
      },
    });
    return { jobId: job.id, done: deps.center.wait(job.id) };
  };
}

/**
 * The copy to a second repository (spec.copyTo): this schedule's backups it lacks, earlier misses
 * too. A failure leaves the backup made: it is pushed to `warnings` and the next run tries again.
 * Returns the ids copied, or undefined without copyTo. Throws only when `signal` aborted.
 */
async function copyToSecond(deps: LauncherDeps, repo: Repository, spec: ScheduleSpec, signal: AbortSignal, warnings: string[]): Promise<string[] | undefined> {
  if (!spec.copyTo) return undefined;
  // Named by its location once open (a URL as written may carry a secret).
  let target = 'the second repository (copyTo)';
  try {
    const to = await deps.openRepository(spec.copyTo);
    target = to.location;
    const r = await runSync({ from: repo, to, scheduleId: spec.id, signal });
    const problem = syncProblems(r);
    if (problem) warnings.push(`the copy to ${target} left backups out (${problem.message}); it is retried at the next run`);
    return r.copied.map((c) => c.backupId);
  } catch (err) {
    if (signal.aborted) throw err;
    warnings.push(`the copy to ${target} failed (${scrubSecrets(err instanceof Error ? err.message : String(err))}); it is retried at the next run`);
    return undefined;
  }
}

/**
 * The id of the schedule's latest backup when the source has not changed since it, else
 * undefined: the backup must exist and not be expired, cover the schedule's selection, and carry
 * change evidence equal to the source's evidence now (an engine without evidence never skips).
 */
export async function unchangedSinceBackup(repo: Repository, source: DatabaseSource, spec: ScheduleSpec, now: Date, signal?: AbortSignal): Promise<string | undefined> {
  if (!source.changeEvidence) return undefined;
  const mine = (await repo.listManifests())
    .filter((m) => madeBySchedule(m, spec, source.location) && (m.expiresAt === null || Date.parse(m.expiresAt) > now.getTime()))
    .sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt));
  const last = mine[0];
  const recorded = last?.source.changeEvidence;
  if (last === undefined || recorded === undefined) return undefined;
  // A backup `cairn repair` found damaged cannot stand for the current state: make a new one.
  if (last.collections.some((c) => c.damage !== undefined)) return undefined;
  const sameScope = JSON.stringify(last.scope.include ?? null) === JSON.stringify(spec.include ?? null) && JSON.stringify(last.scope.exclude ?? null) === JSON.stringify(spec.exclude ?? null);
  if (!sameScope) return undefined;
  const current = await source.changeEvidence(signal);
  return current !== undefined && current === recorded ? last.id : undefined;
}

/**
 * Whether a backup was made by this schedule: it carries the schedule's id and comes from the
 * schedule's source (`sourceLocation`, the resolved source's location). A backup from before
 * schedule ids (no scheduleId) counts only when both the schedule's name and the source match.
 */
export function madeBySchedule(m: BackupManifest, spec: Pick<ScheduleSpec, 'id' | 'name'>, sourceLocation: string): boolean {
  if (m.type !== 'scheduled' || m.source.location !== sourceLocation) return false;
  return m.scheduleId !== undefined ? m.scheduleId === spec.id : m.schedule === spec.name;
}

export interface RetentionOutcome {
  /** Backups deleted (by retention or expiry), sorted. */
  deleted: string[];
  /** Backups that should have gone but could not be deleted (retried at the next run). */
  failed: { id: string; message: string }[];
}

/**
 * Deletes what the schedule's retention drops among its own backups (see madeBySchedule), and
 * every expired backup. A backup that cannot be deleted is reported in `failed` and the others
 * are still tried; one deleted meanwhile by someone else counts as deleted.
 */
export async function applyScheduleRetention(repo: Repository, spec: ScheduleSpec, sourceLocation: string, now: Date): Promise<RetentionOutcome> {
  const manifests = await repo.listManifests();
  const mine = manifests.filter((m) => madeBySchedule(m, spec, sourceLocation));
  const { remove } = applyRetention(mine.map((m) => ({ id: m.id, createdAt: m.createdAt })), retentionPolicy(spec), now, spec.timezone);
  const expired = expiredBackups(manifests, now).map((m) => m.id);
  const doomed = [...new Set([...remove, ...expired])].sort();
  const deleted: string[] = [];
  const failed: RetentionOutcome['failed'] = [];
  for (const id of doomed) {
    try {
      await repo.deleteBackup(id);
      deleted.push(id);
    } catch (err) {
      if (err instanceof NotFoundError) deleted.push(id);
      else failed.push({ id, message: err instanceof Error ? err.message : String(err) });
    }
  }
  return { deleted, failed };
}

/** The backups whose expiry has passed (manual or scheduled; without an expiry, never). */
export function expiredBackups(manifests: BackupManifest[], now: Date): BackupManifest[] {
  return manifests.filter((m) => m.expiresAt !== null && Date.parse(m.expiresAt) <= now.getTime());
}

/**
 * Deletes the backups the schedules of a registered source made (removing the source with
 * --delete-scheduled-backups): for each schedule naming `source`, the backups madeBySchedule,
 * where `sourceLocation` is the registered source's location. Manual backups, and backups other
 * schedules (of this or another data folder) made, are never touched. Returns the ids, sorted.
 */
export async function deleteScheduledBackupsOf(
  source: string,
  sourceLocation: string,
  schedules: ScheduleSpec[],
  openRepository: (value: string) => Promise<Repository>,
): Promise<string[]> {
  const deleted: string[] = [];
  for (const s of schedules.filter((x) => x.source === source)) {
    const repo = await openRepository(s.repository);
    for (const m of await repo.listManifests()) {
      if (madeBySchedule(m, s, sourceLocation)) {
        await repo.deleteBackup(m.id);
        deleted.push(m.id);
      }
    }
  }
  return deleted.sort();
}

/** The enabled schedules that name a registered source (or repository) by its name, sorted. */
export function enabledSchedulesUsing(schedules: ScheduleSpec[], name: string, kind: 'source' | 'repository' = 'source'): string[] {
  return schedules.filter((s) => s.enabled && (kind === 'source' ? s.source === name : s.repository === name || s.copyTo === name)).map((s) => s.name).sort();
}

/**
 * Why a registered source (or repository) cannot be removed: enabled schedules use it (each of
 * their runs would fail). Names them and the ways on; `forceHint` is how to force it
 * ("--force", "force=true").
 */
export function sourceInUse(name: string, schedules: string[], forceHint: string, kind: 'source' | 'repository' = 'source'): ConflictError {
  const many = schedules.length > 1;
  return new ConflictError(
    `${kind === 'source' ? 'Source' : 'Repository'} "${name}" is used by enabled schedule${many ? 's' : ''} ${schedules.map((n) => `"${n}"`).join(', ')}: ` +
      `disable or remove ${many ? 'them' : 'it'} first (cairn schedule disable <name>, cairn schedule remove <name>), ` +
      `or pass ${forceHint} to disable ${many ? 'them' : 'it'} and remove the ${kind}.`,
  );
}
