/** /v1/backups: start a backup (a job), list backups (complete and unfinished), show and delete one. */
import os from 'node:os';
import { parseExpiry } from '../../core/durations.js';
import { CairnError, NotFoundError } from '../../core/errors.js';
import { generateBackupId, validateBackupId } from '../../core/ids.js';
import type { BackupManifest } from '../../core/schemas.js';
import type { Repository } from '../../repo/repository.js';
import { deletionPreview } from '../../repo/stats.js';
import { databaseKey } from '../../jobs/database-key.js';
import { runBackup } from '../../jobs/backup.js';
import { openSource } from '../../sources/index.js';
import { ForbiddenError } from '../access.js';
import { listBackupSummaries, matchesBackup, queryBackups, type BackupQuery, type ListedBackup, type UnfinishedBackup } from '../../jobs/backup-summaries.js';
import type { JobCenter } from '../../jobs/job-center.js';
import type { BackupInProgress, BackupUnfinished } from '../schemas.js';
import { parseListDate } from './table.js';
import type { Context } from 'hono';
import { backupId, publicJob, type Env, type RouteKit } from './kit.js';

export function backupRoutes({ on, center, openRepo, sourceUrl, started, summaries, registry, scope: scopeOf }: RouteKit): void {
  /**
   * 403 when the backup `id` of `repo` is of a source outside the token's scope (read from its
   * manifest; a scoped-by-sources token only). A backup not in the repository passes: the
   * handler answers 404, or the job's record, itself checked.
   */
  const checkBackup = async (c: Context<Env>, repo: Repository, id: string): Promise<void> => {
    const scope = scopeOf(c);
    if (!scope.limited) return;
    const m = await repo.readManifest(id).catch((err: unknown) => {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    });
    if (m) scope.checkBackup(id, m.source.location);
  };

  on('createBackup', async (c, { body: req }) => {
    if (req.id !== undefined) validateBackupId(req.id);
    // Password hashes are secrets of the whole server: only an admin may copy them into a repository.
    if (req.rolesWithPasswords && c.get('token').role !== 'admin') throw new ForbiddenError('rolesWithPasswords records password hashes: it needs an admin token (or leave it out: roles alone records no hashes).');
    // Checked now (400); a duration counts from when the job starts (as the CLI's --expires).
    if (req.expires !== undefined) parseExpiry(req.expires, new Date());
    const roles = { ...(req.roles ? { roles: true } : {}), ...(req.rolesWithPasswords ? { rolesWithPasswords: true } : {}) };
    const ref = sourceUrl(c, req.source);
    const source = openSource(ref.url, { untrusted: ref.untrusted, ...roles, ...(req.lockTimeoutSeconds !== undefined ? { lockTimeoutMs: req.lockTimeoutSeconds * 1000 } : {}), ...(req.lockNonTransactional ? { lockNonTransactional: true } : {}) }); // validates the URL; its location has no secret
    const repo = await openRepo(c, req.repository);
    if (req.id !== undefined && (await repo.hasBackup(req.id))) throw new CairnError('CONFLICT', `Backup "${req.id}" already exists in ${repo.location}; choose another id.`);
    // The id is chosen now, so the 202 can name it and GET /v1/backups/{id} answers while it runs.
    // It is reserved until the job ends: two requests in one second never announce one id.
    const id = await reserveId(repo, req.id ?? generateBackupId(source.name, new Date()), req.id !== undefined);
    const cores = os.availableParallelism();
    const jobs = req.config?.jobs ?? (req.config?.cpuPercentage !== undefined ? Math.max(1, Math.floor((cores * req.config.cpuPercentage) / 100)) : undefined);
    const compression = req.config?.compression || req.config?.level
      ? { algorithm: req.config.compression ?? repo.config.compression.algorithm, level: req.config.level ?? repo.config.compression.level }
      : undefined;
    const job = await center.start({
      kind: 'backup',
      exclusiveKey: databaseKey(source.location),
      params: { source: source.location, repository: repo.location, id, ...(req.include ? { include: req.include } : {}), ...(req.exclude ? { exclude: req.exclude } : {}), ...(req.config ? { config: req.config } : {}), ...(req.expires !== undefined ? { expires: req.expires } : {}), ...roles, ...(req.lockTimeoutSeconds !== undefined ? { lockTimeoutSeconds: req.lockTimeoutSeconds } : {}), ...(req.lockNonTransactional ? { lockNonTransactional: true } : {}), ...(req.strict ? { strict: true } : {}) },
      run: async (ctx) => {
        try {
        const expiresAt = req.expires !== undefined ? parseExpiry(req.expires, new Date()) : null;
        const m = await runBackup({
          repo,
          source,
          ...(expiresAt ? { expiresAt: new Date(expiresAt) } : {}),
          id,
          ...(req.id === undefined ? { idGenerated: true } : {}),
          selection: { ...(req.include ? { include: req.include } : {}), ...(req.exclude ? { exclude: req.exclude } : {}) },
          ...(compression ? { compression } : {}),
          ...(jobs ? { jobs } : {}),
          ...(req.config?.packSizeMiB ? { packSize: req.config.packSizeMiB * 1024 * 1024 } : {}),
          ...(req.strict ? { strict: true } : {}),
          signal: ctx.signal,
          onProgress: ctx.progress,
          // The manifest is written only while the job may still commit (not cancelled, lease held).
          beforeCommit: ctx.finalizing,
        });
        return { backupId: m.id, totals: m.totals };
        } finally {
          release(repo, id);
        }
      },
    }).catch((err: unknown) => {
      release(repo, id);
      throw err;
    });
    started('backup');
    return c.json({ job: publicJob(job), backupId: id }, 202);
  });

  /**
   * The database a `source` filter names: a registered source's (its name is not the database's
   * name: "pgbig" backs up database "shop"), or the location given; none for a bare database name.
   */
  const sourceKeyOf = (source: string): { sourceKey?: string } => {
    const registered = registry.list('source').find((r) => r.name === source);
    if (registered) return { sourceKey: databaseKey(registered.location) };
    if (!source.includes(':')) return {};
    try {
      return { sourceKey: databaseKey(source) };
    } catch {
      return {}; // not a location an engine reads: matched as given only
    }
  };

  on('listBackups', async (c, { query }) => {
    const repo = await openRepo(c, query.repository);
    // One damaged or foreign object under backups/ is reported beside the others, never fails the list.
    const listing = await listBackupSummaries(repo, { ...(summaries ? { store: summaries } : {}), signal: c.req.raw.signal });
    const unfinished = await unfinishedBackups(center, repo.location);
    const q: BackupQuery = {
      ...(query.source !== undefined ? { source: query.source, ...sourceKeyOf(query.source) } : {}),
      ...(query.status !== undefined ? { status: query.status } : {}),
      ...(query.type !== undefined ? { type: query.type } : {}),
      ...(query.schedule !== undefined ? { schedule: query.schedule } : {}),
      ...(query.since !== undefined ? { sinceMs: parseListDate(query.since, 'since') as number } : {}),
      ...(query.until !== undefined ? { untilMs: parseListDate(query.until, 'until') as number } : {}),
      ...(query.sort !== undefined ? { sort: query.sort } : {}),
      ...(query.order !== undefined ? { order: query.order } : {}),
      ...(query.limit !== undefined ? { limit: Number(query.limit) } : {}),
      ...(query.offset !== undefined ? { offset: Number(query.offset) } : {}),
    };
    // A token scoped to sources lists their backups only.
    const scope = scopeOf(c);
    if (scope.limited) {
      listing.summaries = listing.summaries.filter((b) => scope.sourceLocation(b.source.location));
      unfinished.splice(0, unfinished.length, ...unfinished.filter((b) => scope.sourceLocation(b.source.location)));
    }
    let backups: ListedBackup[];
    let total: number;
    if (query.sort === undefined && query.order === undefined && query.limit === undefined && query.offset === undefined) {
      // As before paging existed: complete backups oldest first, then unfinished ones newest first.
      backups = [...listing.summaries, ...unfinished].filter((b) => matchesBackup(b, q));
      total = backups.length;
    } else {
      ({ backups, total } = queryBackups<ListedBackup>([...listing.summaries, ...unfinished], q));
    }
    return c.json({
      repository: repo.location,
      backups: backups.map((b) => ('jobId' in b ? publicUnfinished(b) : b)),
      damaged: listing.damaged.map((d) => ({ id: d.id.length > 200 ? `${d.id.slice(0, 200)}…` : d.id, message: d.message })),
      unchecksummed: listing.unchecksummed,
      total,
      offset: q.offset ?? 0,
      limit: q.limit ?? null,
    });
  });

  on('getBackup', async (c, { query }) => {
    const id = backupId(c.req.param('id') ?? '');
    const repo = await openRepo(c, query.repository);
    let m: BackupManifest;
    try {
      m = await repo.readManifest(id);
    } catch (err) {
      // Not (yet) in the repository: a backup job running under this id, or one that failed.
      if (!(err instanceof NotFoundError)) throw err;
      const job = (await center.list({ kind: 'backup', limit: 1000 })).find((j) => j.state !== 'SUCCESS' && j.params.id === id && j.params.repository === repo.location);
      if (!job) throw err;
      scopeOf(c).checkJob(job);
      const shown = publicJob(job);
      const running: BackupInProgress = {
        id,
        status: job.state as BackupInProgress['status'],
        jobId: job.id,
        source: { location: String(job.params.source) },
        repository: repo.location,
        createdAt: job.createdAt,
        finishedAt: job.finishedAt,
        progress: shown.progress,
        error: shown.error,
      };
      return c.json(running);
    }
    scopeOf(c).checkBackup(id, m.source.location);
    return c.json({ ...m, collections: m.collections.map(({ chunks, segments: _s, definition: _d, ...rest }) => ({ ...rest, chunks: chunks.length })) });
  });

  on('setBackupExpiry', async (c, { body: req, query }) => {
    const id = backupId(c.req.param('id') ?? '');
    const expiresAt = parseExpiry(req.expires, new Date()); // as cairn backup set-expiry
    const repo = await openRepo(c, query.repository);
    await checkBackup(c, repo, id);
    const manifest = await repo.readManifest(id).catch(async (err: unknown) => {
      // A backup still being made has no manifest yet: say so rather than "not found".
      const job = err instanceof NotFoundError ? (await center.list({ kind: 'backup', limit: 1000 })).find((j) => !['SUCCESS', 'FAILED', 'CANCELED'].includes(j.state) && j.params.id === id && j.params.repository === repo.location) : undefined;
      if (job) throw new CairnError('CONFLICT', `Backup "${id}" is still being made (job ${job.id}, ${job.state}): set its expiry once the job has ended, or give expires when starting the backup.`);
      throw err;
    });
    manifest.expiresAt = expiresAt;
    try {
      await repo.updateManifest(manifest);
    } finally {
      // Read again at the next listing (its size and modified time may not change within a second).
      summaries?.drop(repo.location, [id]);
    }
    return c.json({ id, repository: repo.location, expiresAt });
  });

  on('backupDeletionPreview', async (c, { query }) => {
    const id = backupId(c.req.param('id') ?? '');
    const repo = await openRepo(c, query.repository);
    await checkBackup(c, repo, id);
    return c.json(await deletionPreview(repo, id, c.req.raw.signal));
  });

  on('deleteBackup', async (c, { query }) => {
    const id = backupId(c.req.param('id') ?? '');
    const repo = await openRepo(c, query.repository);
    await checkBackup(c, repo, id);
    try {
      await repo.deleteBackup(id);
    } finally {
      summaries?.drop(repo.location, [id]);
    }
    return c.json({ deleted: id, repository: repo.location, note: 'space is reclaimed by prune' });
  });
}

/**
 * Backups of the repository at `location` that are not in it: backup jobs running, failed or
 * cancelled (the newest 1000 backup jobs, newest first), with the schedule that started them.
 */
export async function unfinishedBackups(center: JobCenter, location: string): Promise<UnfinishedBackup[]> {
  return (await center.list({ kind: 'backup', limit: 1000 }))
    .filter((j) => j.state !== 'SUCCESS' && j.params.repository === location)
    .map((j) => ({
      id: typeof j.params.id === 'string' ? j.params.id : null,
      status: j.state,
      jobId: j.id,
      source: { location: j.params.source as string },
      createdAt: j.createdAt,
      finishedAt: j.finishedAt,
      error: publicJob(j).error,
      schedule: typeof j.params.schedule === 'string' ? j.params.schedule : null,
    }));
}

/** An unfinished backup as answered (BackupUnfinished: the schedule is for filters only). */
function publicUnfinished({ schedule: _s, ...b }: UnfinishedBackup): BackupUnfinished {
  return b as BackupUnfinished;
}

/** `base`, or `base-2`, `base-3`… when a backup of that id exists (as runBackup names generated ids). */
/** Ids announced by a 202 whose job has not ended, per repository location. */
const reserved = new Set<string>();
const reservationKey = (repo: Repository, id: string): string => `${repo.location}\u0000${id}`;

function release(repo: Repository, id: string): void {
  reserved.delete(reservationKey(repo, id));
}

/**
 * The backup id a new backup job announces: `base` when free (neither in the repository nor
 * announced by a running job), else (a generated id) `base-2`, `base-3`…; taken at once, so two
 * requests in one second never get one id. Errors: CONFLICT for a given id that a running job
 * announced, or too many taken.
 */
async function reserveId(repo: Repository, base: string, given: boolean): Promise<string> {
  for (let n = 1; n < 1000 && (n === 1 || !given); n++) {
    const id = n === 1 ? base : `${base}-${n}`;
    // Checked after the await too: another request may have taken it meanwhile.
    const free = !reserved.has(reservationKey(repo, id)) && !(await repo.hasBackup(id)) && !reserved.has(reservationKey(repo, id));
    if (!free) continue;
    reserved.add(reservationKey(repo, id));
    return id;
  }
  if (given) throw new CairnError('CONFLICT', `Backup "${base}" already exists or is being made by another job in ${repo.location}; choose another id.`);
  throw new CairnError('CONFLICT', `Too many backups named ${base}-*; pass an id.`);
}
