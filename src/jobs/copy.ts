/**
 * Copying backups between repositories: one (runCopy, `cairn copy <id>`) or every one the target
 * lacks (runSync, `cairn sync` / `cairn copy --all`). Chunks are named by the SHA-256 of their
 * raw content, so a blob is copied as stored (compressed as in the source), whatever the target's
 * own compression and chunker settings; only the chunks the target lacks are sent. Between
 * repositories whose chunk ids differ (an encrypted one keys them with its own secret), every
 * chunk of the backup is read, renamed to the target's id for its content, sent only if the
 * target lacks that id, and the manifest is written with the target's ids; the storage views
 * re-encrypt on the way. Each blob is
 * checked (pack checksum, decompressed content against its id) before it is written into new
 * target packs; then the index document; then the backup is verified in the target; only then
 * is its manifest written, which is what makes it visible there. Both repositories hold a shared
 * lock meanwhile, so a prune (exclusive) on either waits or is refused.
 */
import { CancelledError, ConflictError, CorruptionError, NotFoundError, UsageError, throwIfAborted } from '../core/errors.js';
import { validateBackupId } from '../core/ids.js';
import type { BackupManifest, IndexDocument } from '../core/schemas.js';
import { ChunkIndex, writeIndexDocument, type ChunkLocation } from '../repo/chunk-index.js';
import { decompressBlob } from '../repo/compression.js';
import { mapLimit } from '../core/errgroup.js';
import { sha256Hex } from '../repo/hash.js';
import type { RepositoryLock } from '../repo/lock.js';
import { PackBuilder, packKey, type FinishedPack } from '../repo/pack.js';
import type { Repository } from '../repo/repository.js';
import { verifyBackups, verifyFailure } from '../repo/verify.js';
import { lockedSignal } from '../repo/locked.js';

export interface CopyProgress {
  phase: 'transferring' | 'finalizing' | 'done';
  /** Source packs read so far, of those holding chunks the target lacks. */
  packsDone: number;
  packsTotal: number;
  chunksCopied: number;
  /** Stored (compressed) bytes sent so far, and in all. */
  bytesCopied: number;
  bytesTotal: number;
}

export interface CopyOptions {
  from: Repository;
  to: Repository;
  backupId: string;
  signal?: AbortSignal;
  onProgress?: (progress: CopyProgress) => void;
  /** Source packs read at once (default 4). */
  concurrency?: number;
  /** The id the copy gets in the target (cairn import --as); default: the source's. Only the manifest's id changes. */
  asId?: string;
}

export interface CopyResult {
  backupId: string;
  from: string;
  to: string;
  /** Chunks the target lacked, sent as stored in the source. */
  chunksCopied: number;
  /** Stored bytes of the copied chunks. */
  bytesCopied: number;
  /** Chunks the target already had. */
  chunksSkipped: number;
  packsWritten: number;
}

/**
 * Same hash, different repositories: else chunk ids would not mean the same content.
 * @throws UsageError naming the problem (the API calls it before starting a job: 400).
 */
export function checkPair(from: Repository, to: Repository): void {
  if (from.location === to.location) {
    throw new UsageError(
      `--from and --to name the same repository (${from.location}): its backups are there already. Give --to another repository (create one with: cairn repo init <path>; the registered ones: cairn repo list).`,
    );
  }
  if (from.config.hash !== to.config.hash) {
    throw new UsageError(
      `Cannot copy: the source repository hashes chunks with ${from.config.hash} and the target with ${to.config.hash}; chunks can only be copied between repositories that use the same hash.`,
    );
  }
}

/** Runs `work` holding shared locks on both repositories; its signal aborts when either lock is lost. */
async function withBothLocks<T>(from: Repository, to: Repository, operation: string, signal: AbortSignal | undefined, work: (signal: AbortSignal, targetLock: RepositoryLock) => Promise<T>): Promise<T> {
  const sourceLock = await from.lock(false, `${operation} to ${to.location}`);
  try {
    const targetLock = await to.lock(false, `${operation} from ${from.location}`, { writes: `${operation.split(' ')[0]} into it` });
    try {
      return await work(lockedSignal(targetLock, lockedSignal(sourceLock, signal)), targetLock);
    } finally {
      // Packs of a failed copy stay: an identical pack (same name) may be another writer's.
      // Prune removes them once unreferenced and older than its grace period.
      await targetLock.release().catch(() => undefined);
    }
  } finally {
    await sourceLock.release().catch(() => undefined);
  }
}

/** Reads a manifest of the source under the validated id asked for, never under a name the document supplies. */
async function sourceManifest(from: Repository, id: string, signal: AbortSignal): Promise<BackupManifest> {
  const read = await from.readManifest(id, signal);
  if (read.id !== id) {
    throw new CorruptionError(`The manifest of backup "${id}" in ${from.location} claims another id. Nothing was copied.`, { objects: [`backups/${id}`] });
  }
  return { ...read, id };
}

/** The chunks of one backup that the target lacks, grouped by the source pack that holds them. */
interface ChunkPlan {
  byPack: Map<string, { id: string; loc: ChunkLocation }[]>;
  chunksSkipped: number;
  bytesTotal: number;
}

function planChunks(manifest: BackupManifest, sourceIndex: ChunkIndex, targetHas: (chunkId: string) => boolean, fromLocation: string): ChunkPlan {
  const seen = new Set<string>();
  const byPack = new Map<string, { id: string; loc: ChunkLocation }[]>();
  let chunksSkipped = 0;
  let bytesTotal = 0;
  for (const c of manifest.collections) {
    for (const chunkId of c.chunks) {
      if (seen.has(chunkId)) continue;
      seen.add(chunkId);
      if (targetHas(chunkId)) {
        chunksSkipped++;
        continue;
      }
      const loc = sourceIndex.get(chunkId);
      if (!loc) {
        throw new CorruptionError(`Chunk ${chunkId} of backup "${manifest.id}" (${c.name}) is not in any index of ${fromLocation}; run cairn verify there.`, {
          objects: [`chunk ${chunkId}`],
          collections: [`${manifest.id}: ${c.name}`],
        });
      }
      let list = byPack.get(loc.packId);
      if (!list) byPack.set(loc.packId, (list = []));
      list.push({ id: chunkId, loc });
      bytesTotal += loc.length;
    }
  }
  return { byPack, chunksSkipped, bytesTotal };
}

/**
 * Sends one backup's planned chunks into new target packs, writes their index document, verifies
 * the backup in the target, and only then writes its manifest. Locks are held by the caller.
 */
async function transferBackup(
  from: Repository,
  to: Repository,
  manifest: BackupManifest,
  plan: ChunkPlan,
  ctx: {
    signal: AbortSignal;
    targetLock: RepositoryLock;
    concurrency: number;
    report: (p: Omit<CopyProgress, 'bytesTotal'>) => void;
    /** Set when chunk ids differ (see the module comment): whether the target has a target id; ids this run added. */
    remap?: { targetHas: (targetId: string) => boolean; added: Set<string> };
  },
): Promise<{ chunksCopied: number; bytesCopied: number; chunksSkipped: number; packsWritten: number; manifest: BackupManifest }> {
  const { signal } = ctx;
  // Chunk ids differ between the repositories: source id -> target id, and what the target has.
  const renamed = ctx.remap ? new Map<string, string>() : undefined;
  const written: IndexDocument['packs'] = [];
  const packIds = [...plan.byPack.keys()];
  let builder = new PackBuilder();
  let chunksCopied = 0;
  let chunksSkipped = plan.chunksSkipped;
  let bytesCopied = 0;
  let packsDone = 0;
  const report = (phase: CopyProgress['phase']): void => ctx.report({ phase, packsDone, packsTotal: packIds.length, chunksCopied, bytesCopied });
  const upload = async (pack: FinishedPack): Promise<void> => {
    await to.storage.put(packKey(pack.id), pack.parts, { signal });
    written.push({ id: pack.id, length: pack.length, blobs: pack.blobs });
  };
  report('transferring');
  await mapLimit(packIds, ctx.concurrency, async (packId, _i, signal) => {
    throwIfAborted(signal);
    const pack = await readSourcePack(from, packId, signal);
    for (const { id: chunkId, loc } of plan.byPack.get(packId) ?? []) {
      if (loc.offset + loc.length > pack.length) {
        throw new CorruptionError(`Pack ${packKey(packId)} in ${from.location} is shorter than its index says.`, { objects: [packKey(packId)] });
      }
      const stored = pack.subarray(loc.offset, loc.offset + loc.length);
      const raw = decompressBlob(stored, loc.compression, loc.rawLength, `chunk ${chunkId} in ${packKey(packId)}`);
      if (from.chunkId(raw) !== chunkId) {
        throw new CorruptionError(`Chunk ${chunkId} in pack ${packKey(packId)} of ${from.location} does not match its hash.`, { objects: [packKey(packId)] });
      }
      let targetId = chunkId;
      if (renamed && ctx.remap) {
        targetId = to.chunkId(raw);
        renamed.set(chunkId, targetId);
        if (ctx.remap.targetHas(targetId) || ctx.remap.added.has(targetId)) {
          chunksSkipped++;
          continue;
        }
        ctx.remap.added.add(targetId);
      }
      // Copy out of the source pack so that it can be freed once this pack is done.
      builder.add(targetId, Buffer.from(stored), loc.rawLength, loc.compression);
      chunksCopied++;
      bytesCopied += stored.length;
    }
    packsDone++;
    report('transferring');
    if (builder.byteLength >= to.config.packSize) {
      const full = builder;
      builder = new PackBuilder();
      await upload(full.finish());
    }
  }, signal);
  report('finalizing');
  if (builder.blobCount > 0) await upload(builder.finish());
  throwIfAborted(signal);
  if (written.length > 0) await writeIndexDocument(to.storage, written, [], signal);
  if (renamed) {
    const target = (id: string): string => {
      const t = renamed.get(id);
      if (t === undefined) throw new CorruptionError(`Chunk ${id} of backup "${manifest.id}" was not read while copying; nothing was made visible.`, { objects: [`chunk ${id}`] });
      return t;
    };
    manifest = { ...manifest, collections: manifest.collections.map((c) => ({ ...c, chunks: c.chunks.map(target) })) };
  }

  // Visible only once everything it needs is indexed and present in the target.
  const verified = await verifyBackups(to, [manifest], { readData: false, signal });
  if (verified.problems.length > 0) throw verifyFailure(verified);
  throwIfAborted(signal);
  await ctx.targetLock.assertHeld();
  try {
    await to.writeManifest(manifest, signal);
  } catch (err) {
    if (err instanceof ConflictError) throw new ConflictError(`A backup with id "${manifest.id}" appeared in ${to.location} while copying; the copy was not made visible.`);
    throw err;
  }
  return { chunksCopied, bytesCopied, chunksSkipped, packsWritten: written.length, manifest };
}

/** Copies one backup between repositories on any backends (see the module comment). */
export async function runCopy(options: CopyOptions): Promise<CopyResult> {
  const { from, to } = options;
  const id = validateBackupId(options.backupId);
  const targetId = options.asId === undefined ? id : validateBackupId(options.asId);
  checkPair(from, to);
  return withBothLocks(from, to, `copy ${id}`, options.signal, async (signal, targetLock) => {
    const manifest = { ...(await sourceManifest(from, id, signal)), id: targetId };
    if (await to.hasBackup(targetId)) {
      throw new ConflictError(`A backup with id "${targetId}" already exists in ${to.location}. Nothing was copied.`);
    }
    // The target's chunks count as present only if their packs are: a chunk whose pack is gone
    // there is sent again.
    const [{ chunks: sourceIndex }, { chunks: targetIndex }] = await Promise.all([ChunkIndex.load(from.storage, { signal }), ChunkIndex.loadUsable(to.storage, signal)]);
    const same = from.sameChunkIds(to);
    const plan = planChunks(manifest, sourceIndex, (c) => same && targetIndex.has(c), from.location);
    const sent = await transferBackup(from, to, manifest, plan, {
      signal,
      targetLock,
      concurrency: options.concurrency ?? 4,
      report: (p) => options.onProgress?.({ ...p, bytesTotal: plan.bytesTotal }),
      ...(same ? {} : { remap: { targetHas: (t: string) => targetIndex.has(t), added: new Set<string>() } }),
    });
    options.onProgress?.({ phase: 'done', packsDone: plan.byPack.size, packsTotal: plan.byPack.size, chunksCopied: sent.chunksCopied, bytesCopied: sent.bytesCopied, bytesTotal: plan.bytesTotal });
    return { backupId: targetId, from: from.location, to: to.location, chunksCopied: sent.chunksCopied, bytesCopied: sent.bytesCopied, chunksSkipped: sent.chunksSkipped, packsWritten: sent.packsWritten };
  });
}

export interface SyncOptions {
  from: Repository;
  to: Repository;
  /** Only the backups of this source: its name or its location as the manifests record them. */
  source?: string;
  /** Only backups carrying this schedule id (a schedule's --copy-to). */
  scheduleId?: string;
  signal?: AbortSignal;
  /** collectionsDone / collectionsTotal count backups; bytes are stored bytes sent. */
  onProgress?: (progress: SyncProgress) => void;
  /** Source packs read at once (default 4). */
  concurrency?: number;
}

export interface SyncProgress {
  phase: 'transferring' | 'finalizing' | 'done';
  backupsDone: number;
  backupsTotal: number;
  /** The backup being copied. */
  backup?: string;
  bytesCopied: number;
  /** Estimated before the first backup is sent (chunks shared between backups counted once). */
  bytesTotal: number;
}

export interface SyncResult {
  from: string;
  to: string;
  /** Backups copied, oldest first, with what each sent. */
  copied: { backupId: string; chunksCopied: number; bytesCopied: number; chunksSkipped: number }[];
  /** Backups the target already holds with the same content. */
  skipped: string[];
  /**
   * Backups the target holds under the same id with other content (or unreadable there):
   * never overwritten.
   */
  conflicts: { backupId: string; message: string }[];
  /** Backups that could not be copied (e.g. damaged in the source), each with the reason. */
  failed: { backupId: string; code: string; message: string }[];
  chunksCopied: number;
  bytesCopied: number;
}

/**
 * Brings `to` up to date with every backup of `from` it lacks (optionally one source's, or one
 * schedule's), oldest first. Idempotent: a backup `to` already holds with the same content is
 * skipped; one it holds under the same id with different content is a conflict, reported and
 * never overwritten. Backups deleted or expired in `from` are not removed from `to`: a second
 * repository is a copy to fall back on, not a mirror of mistakes. One backup that cannot be
 * copied (damaged in the source, a conflict) does not stop the others; the caller decides how
 * to end (the CLI and the API report and then fail, naming them). Cancellation and lost locks
 * stop everything at once; what was made visible before stays complete.
 */
export async function runSync(options: SyncOptions): Promise<SyncResult> {
  const { from, to } = options;
  checkPair(from, to);
  return withBothLocks(from, to, 'sync', options.signal, async (signal, targetLock) => {
    const [fromAll, toAll] = await Promise.all([from.readAllManifests(signal), to.readAllManifests(signal)]);
    const wanted = (m: BackupManifest): boolean =>
      (options.source === undefined || m.source.name === options.source || m.source.location === options.source) && (options.scheduleId === undefined || m.scheduleId === options.scheduleId);
    const result: SyncResult = { from: from.location, to: to.location, copied: [], skipped: [], conflicts: [], failed: [], chunksCopied: 0, bytesCopied: 0 };
    for (const d of fromAll.damaged) result.failed.push({ backupId: d.id, code: 'CORRUPT', message: `unreadable in ${from.location}: ${d.message}` });
    const inTarget = new Map(toAll.manifests.map((m) => [m.id, m]));
    const damagedInTarget = new Map(toAll.damaged.map((d) => [d.id, d.message]));

    // A --source that names nothing is a typo until shown otherwise (as --include is).
    if (options.source !== undefined && !fromAll.manifests.some(wanted)) {
      const known = [...new Set(fromAll.manifests.map((m) => m.source.name))].sort();
      throw new NotFoundError(
        `No backup of source "${options.source}" in ${from.location}: give a source's name or location as cairn backup list shows it${known.length ? ` (${known.slice(0, 10).join(', ')}${known.length > 10 ? ', …' : ''})` : '; it holds no backups'}.`,
      );
    }
    // Chunk ids differ (other keys): the same backup has other chunk ids there.
    const same = from.sameChunkIds(to);
    const todo: BackupManifest[] = [];
    for (const m of fromAll.manifests.filter(wanted)) {
      const there = inTarget.get(m.id);
      if (damagedInTarget.has(m.id)) {
        result.conflicts.push({ backupId: m.id, message: `a backup with this id exists in ${to.location} but cannot be read there (${damagedInTarget.get(m.id)}); it was left alone` });
      } else if (there && sameContent(m, there, same)) {
        result.skipped.push(m.id);
      } else if (there) {
        result.conflicts.push({ backupId: m.id, message: `a backup with this id but other content exists in ${to.location}; it was left alone (a copy keeps its id: to replace it, delete it there first)` });
      } else {
        todo.push(m);
      }
    }

    const [{ chunks: sourceIndex }, { chunks: targetIndex }] = await Promise.all([ChunkIndex.load(from.storage, { signal }), ChunkIndex.loadUsable(to.storage, signal)]);
    // Chunks sent by this sync count as present for the backups after them.
    const sentChunks = new Set<string>();
    const targetHas = (c: string): boolean => same && (targetIndex.has(c) || sentChunks.has(c));
    // Target ids sent by this sync (chunk ids differ): as sentChunks, only those of backups that made it.
    const sentTargets = new Set<string>();
    // The total to send, estimated up front (each chunk once, across all backups).
    const estimated = new Set<string>();
    let bytesTotal = 0;
    for (const m of todo) {
      for (const c of m.collections) {
        for (const chunkId of c.chunks) {
          if (estimated.has(chunkId) || targetIndex.has(chunkId)) continue;
          estimated.add(chunkId);
          bytesTotal += sourceIndex.get(chunkId)?.length ?? 0;
        }
      }
    }
    let backupsDone = 0;
    const report = (phase: SyncProgress['phase'], backup?: string, inFlight = 0): void =>
      options.onProgress?.({ phase, backupsDone, backupsTotal: todo.length, ...(backup ? { backup } : {}), bytesCopied: result.bytesCopied + inFlight, bytesTotal });
    report('transferring');
    for (const m of todo) {
      throwIfAborted(signal);
      try {
        // Planned now, not up front: a backup that failed before sent nothing the next one may count on.
        const plan = planChunks(m, sourceIndex, targetHas, from.location);
        const remap = same ? undefined : { targetHas: (t: string) => targetIndex.has(t) || sentTargets.has(t), added: new Set<string>() };
        const sent = await transferBackup(from, to, m, plan, {
          signal,
          targetLock,
          concurrency: options.concurrency ?? 4,
          report: (p) => report('transferring', m.id, p.bytesCopied),
          ...(remap ? { remap } : {}),
        });
        for (const c of m.collections) for (const chunkId of c.chunks) sentChunks.add(chunkId);
        for (const t of remap?.added ?? []) sentTargets.add(t);
        result.copied.push({ backupId: m.id, chunksCopied: sent.chunksCopied, bytesCopied: sent.bytesCopied, chunksSkipped: sent.chunksSkipped });
        result.chunksCopied += sent.chunksCopied;
        result.bytesCopied += sent.bytesCopied;
      } catch (err) {
        // Cancellation, a lost lock or an unreachable storage stops the sync; a backup's own problem does not.
        if (signal.aborted || err instanceof CancelledError || !(err instanceof CorruptionError || err instanceof ConflictError)) throw err;
        // Written meanwhile by another sync of the same backup (a schedule's copy): the same one is no conflict.
        const there = err instanceof ConflictError ? await to.readManifest(m.id, signal).catch(() => undefined) : undefined;
        if (there && sameContent(m, there, same)) result.skipped.push(m.id);
        else if (err instanceof ConflictError) result.conflicts.push({ backupId: m.id, message: err.message });
        else result.failed.push({ backupId: m.id, code: err.code, message: err.message });
      }
      backupsDone++;
      report('transferring');
    }
    report('done');
    return result;
  });
}

/**
 * Whether two manifests are the same backup: everything but what may change after it was made
 * (its expiry, set-expiry; the damage repair records; the checksum over those).
 */
export function sameContent(a: BackupManifest, b: BackupManifest, compareChunks = true): boolean {
  // Between repositories with different chunk ids (other keys) the chunk lists cannot match.
  const strip = (m: BackupManifest): unknown => {
    const { expiresAt: _e, checksum: _c, collections, ...rest } = m;
    return { ...rest, collections: collections.map(({ damage: _d, chunks, ...c }) => (compareChunks ? { ...c, chunks } : c)) };
  };
  return canonical(strip(a)) === canonical(strip(b));
}

/** JSON with object keys sorted, so that key order never makes two equal documents differ. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The error a sync that left backups out ends with, naming them (the report is printed first). */
export function syncProblems(result: SyncResult): ConflictError | CorruptionError | undefined {
  if (result.conflicts.length === 0 && result.failed.length === 0) return undefined;
  const parts = [
    ...result.conflicts.map((c) => `${c.backupId}: ${c.message}`),
    ...result.failed.map((f) => `${f.backupId}: ${f.message}`),
  ];
  const text = `Sync from ${result.from} to ${result.to} copied ${result.copied.length} backup(s), skipped ${result.skipped.length} already there, and left out ${parts.length}: ${parts.slice(0, 10).join('; ')}${parts.length > 10 ? `; and ${parts.length - 10} more` : ''}.`;
  return result.failed.length > 0 ? new CorruptionError(`${text} Run cairn verify on ${result.from}.`, { objects: result.failed.map((f) => `backups/${f.backupId}`) }) : new ConflictError(text);
}

async function readSourcePack(repo: Repository, packId: string, signal?: AbortSignal): Promise<Buffer> {
  const key = packKey(packId);
  let bytes: Buffer;
  try {
    bytes = await repo.storage.get(key, signal);
  } catch (err) {
    if (err instanceof NotFoundError) throw new CorruptionError(`Pack ${key} is missing from ${repo.location}.`, { objects: [key] });
    throw err;
  }
  if (sha256Hex(bytes) !== packId) {
    throw new CorruptionError(`Pack ${key} in ${repo.location} is damaged: its content does not match its checksum.`, { objects: [key] });
  }
  return bytes;
}
