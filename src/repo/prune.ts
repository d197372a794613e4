import { CorruptionError, LockedError, throwIfAborted } from '../core/errors.js';
import type { BackupManifest, IndexDocument } from '../core/schemas.js';
import { ChunkIndex, indexKey, listPacks, writeIndexDocument, type LoadedIndex, type PackInfo } from './chunk-index.js';
import { decompressBlob } from './compression.js';
import { removeStaleLocks, type RepositoryLock } from './lock.js';
import { removeExpiredClaims } from '../storage/common.js';
import { PackBuilder, packKey } from './pack.js';
import type { Repository } from './repository.js';
import { withLock } from './locked.js';

/**
 * Packs younger than this are neither deleted nor repacked: a writer may still need them (not
 * yet indexed, or indexed and deduplicated against before its manifest is written).
 */
export const DEFAULT_UNINDEXED_GRACE_MS = 60 * 60_000;

export interface PruneOptions {
  /** Repack a pack when more than this share of its blob bytes is unused (default 0.2). */
  repackThreshold?: number;
  /** Report what would be removed without removing anything. */
  dryRun?: boolean;
  signal?: AbortSignal;
  /** Temp files older than this are leftovers of crashed writers (default 1 hour). */
  tempFileAgeMs?: number;
  /**
   * Unreferenced packs are deleted (or repacked) only once they are this old on the storage's
   * clock (default 1 hour, DEFAULT_UNINDEXED_GRACE_MS): a backup uploads its packs before it
   * writes their index and its manifest, so a young pack may be in use even if a lock failed to
   * say so (kopia keeps a similar safety margin).
   */
  unindexedGraceMs?: number;
}

export interface PruneReport {
  dryRun: boolean;
  packsTotal: number;
  packsDeleted: number;
  packsRepacked: number;
  packsWritten: number;
  /** Packs with unreferenced (or unindexed) data left alone because they are younger than the grace period. */
  packsKeptYoung: number;
  bytesFreed: number;
  indexesReplaced: number;
  staleLocksRemoved: number;
  tempFilesRemoved: number;
  /** Objects under data/ that are not packs: never touched, listed so they can be looked at. */
  foreignObjects: string[];
}

interface StaleTempCleaner {
  removeStaleTempFiles(maxAgeMs: number): Promise<number>;
}

/**
 * Removes what no backup references, under the exclusive lock. The invariants it keeps
 * (docs/reliability.md):
 * - It acts only on a complete, consistent picture: every manifest readable, every index
 *   document intact (its name is its hash), and every chunk a backup references indexed in a
 *   pack that is present with its full size — otherwise it deletes nothing and says to run
 *   `cairn repair` (collections that repair marked as damaged are exempt for their lost chunks).
 * - A pack is deleted only if the index that replaces the old ones does not list it (a
 *   repacked pack can be byte-identical to its original, and then has the same name), and an
 *   unindexed pack only once it is older than the grace period.
 * - Order makes every crash point safe: new packs, then one index superseding all old ones,
 *   then the old index documents, and only then the packs nothing lists any more. Before the
 *   deletions it checks that its lock still holds and that no index appeared meanwhile.
 * @throws CorruptionError (nothing deleted) when the repository is inconsistent or a live blob
 *   to be repacked is damaged; LockedError when the lock cannot be taken or was lost.
 */
export async function prune(repo: Repository, options: PruneOptions = {}): Promise<PruneReport> {
  return withLock(repo, true, 'prune', options.signal, (signal, lock) => pruneLocked(repo, options, signal, lock));
}

async function pruneLocked(repo: Repository, options: PruneOptions, signal: AbortSignal, lock: RepositoryLock): Promise<PruneReport> {
  const threshold = options.repackThreshold ?? 0.2;
  const grace = options.unindexedGraceMs ?? DEFAULT_UNINDEXED_GRACE_MS;
  // Any unreadable manifest stops prune before it deletes anything: it might reference anything.
  const manifests = await repo.listManifests(signal);
  const { packs: present, foreign } = await listPacks(repo.storage, signal);
  const loaded = await ChunkIndex.load(repo.storage, { signal, strict: true, present });
  const used = checkConsistency(manifests, loaded, present);
  const storageNow = await storageClock(lock, signal);

  const keep: IndexDocument['packs'] = [];
  const remove: string[] = [];
  const repack: IndexDocument['packs'] = [];
  let keptYoung = 0;
  let bytesFreed = 0;
  for (const [packId, info] of present) {
    const pack = loaded.packs.get(packId);
    // Young packs are never deleted or repacked: a backup may be writing them (unindexed), or
    // have indexed them or deduplicated against their blobs without its manifest yet written.
    const age = storageNow - info.modified.getTime();
    if (age < grace) {
      if (pack && !pack.blobs.every((b) => used.has(b.id))) keptYoung++;
      else if (!pack) keptYoung++;
      if (pack) keep.push({ id: packId, length: pack.length, blobs: pack.blobs });
      continue;
    }
    if (!pack) {
      // Unindexed and old: left by a backup that never finished.
      remove.push(packId);
      bytesFreed += info.size;
      continue;
    }
    const live = pack.blobs.filter((b) => used.has(b.id) && loaded.chunks.get(b.id)?.packId === packId);
    const liveBytes = live.reduce((n, b) => n + b.length, 0);
    const blobBytes = pack.blobs.reduce((n, b) => n + b.length, 0);
    if (live.length === 0) {
      remove.push(packId);
      bytesFreed += info.size;
    } else if (blobBytes - liveBytes > threshold * blobBytes) {
      repack.push({ id: packId, length: info.size, blobs: live });
    } else {
      keep.push({ id: packId, length: pack.length, blobs: pack.blobs });
    }
  }

  const written: IndexDocument['packs'] = [];
  if (!options.dryRun) {
    let builder = new PackBuilder();
    const seal = async (): Promise<void> => {
      if (builder.blobCount === 0) return;
      const pack = builder.finish();
      builder = new PackBuilder();
      await repo.storage.put(packKey(pack.id), pack.parts, { signal });
      written.push({ id: pack.id, length: pack.length, blobs: pack.blobs });
    };
    for (const old of repack) {
      throwIfAborted(signal);
      const bytes = await repo.storage.get(packKey(old.id), signal);
      for (const b of old.blobs) {
        // Each live blob is checked on its own before it moves: a damaged one stops prune
        // before anything is deleted (its original stays where it is).
        const stored = bytes.subarray(b.offset, b.offset + b.length);
        let intact = b.offset + b.length <= bytes.length;
        if (intact) {
          try {
            intact = repo.chunkId(decompressBlob(stored, b.compression, b.rawLength, `chunk ${b.id}`)) === b.id;
          } catch {
            intact = false;
          }
        }
        if (!intact) {
          throw new CorruptionError(
            `Prune stopped before deleting anything: chunk ${b.id} in pack ${packKey(old.id)} is damaged. Run cairn verify --read-data to see which backups it affects, then cairn repair.`,
            { objects: [packKey(old.id), `chunk ${b.id}`] },
          );
        }
        builder.add(b.id, stored, b.rawLength, b.compression);
        if (builder.byteLength >= repo.config.packSize) await seal();
      }
    }
    await seal();
  }
  for (const old of repack) bytesFreed += old.length;
  bytesFreed -= written.reduce((n, p) => n + p.length, 0);

  const oldIndexes = [...loaded.documentIds, ...loaded.supersededIds];
  const changed = remove.length > 0 || repack.length > 0 || loaded.supersededIds.length > 0 || loaded.documentIds.length > 1 || loaded.missingPacks.length > 0;
  let packsDeleted = remove.length;
  if (!options.dryRun && changed) {
    throwIfAborted(signal);
    const packs = [...keep, ...written];
    assertCovers(packs, used, manifests, loaded);
    const newIndex = packs.length > 0 ? await writeIndexDocument(repo.storage, packs, oldIndexes, signal) : undefined;
    // Nothing the new index lists is ever deleted: a repacked pack may have its old name.
    const listedNow = new Set(packs.map((p) => p.id));
    const doomed = [...new Set([...remove, ...repack.map((p) => p.id)])].filter((id) => !listedNow.has(id));
    packsDeleted = doomed.filter((id) => !repack.some((p) => p.id === id)).length;
    await assertNoNewIndexes(repo, new Set([...oldIndexes, ...(newIndex ? [newIndex] : [])]), signal);
    await lock.assertHeld();
    // Superseded documents go first: while a document that supersedes them is left, readers
    // ignore them (deleting it first would make them count again, if only until they go too).
    for (const id of [...loaded.supersededIds, ...loaded.documentIds]) if (id !== newIndex) await repo.storage.delete(indexKey(id));
    for (const id of doomed) {
      throwIfAborted(signal);
      await repo.storage.delete(packKey(id));
    }
  }

  let staleLocksRemoved = 0;
  let tempFilesRemoved = 0;
  if (!options.dryRun) {
    staleLocksRemoved = await removeStaleLocks(repo.storage, { lock, signal });
    await removeExpiredClaims(repo.storage, signal);
    const cleaner = repo.storage as Partial<StaleTempCleaner>;
    if (typeof cleaner.removeStaleTempFiles === 'function') {
      tempFilesRemoved = await cleaner.removeStaleTempFiles(options.tempFileAgeMs ?? 3_600_000);
    }
  }
  return {
    dryRun: Boolean(options.dryRun),
    packsTotal: present.size,
    packsDeleted,
    packsRepacked: repack.length,
    packsWritten: written.length,
    packsKeptYoung: keptYoung,
    bytesFreed: Math.max(0, bytesFreed),
    indexesReplaced: changed ? oldIndexes.length : 0,
    staleLocksRemoved,
    tempFilesRemoved,
    foreignObjects: foreign,
  };
}

/**
 * The chunks the backups use. Throws (before prune changes anything) when a backup references
 * a chunk that no intact index lists in a present, full-size pack — unless `cairn repair`
 * already recorded that collection as damaged.
 */
function checkConsistency(manifests: BackupManifest[], loaded: LoadedIndex, present: Map<string, PackInfo>): Set<string> {
  const used = new Set<string>();
  const unindexed = new Set<string>();
  const affected = new Set<string>();
  for (const m of manifests) {
    for (const c of m.collections) {
      for (const id of c.chunks) {
        used.add(id);
        if (!loaded.chunks.has(id) && !c.damage) {
          unindexed.add(id);
          affected.add(m.id);
        }
      }
    }
  }
  if (unindexed.size === 0) return used;
  const missing = loaded.missingPacks.map((id) => `${packKey(id)}${present.has(id) ? ' (shorter than indexed)' : ''}`);
  throw new CorruptionError(
    `Prune stopped before deleting anything: the repository is inconsistent. ${unindexed.size} chunk(s) used by ` +
      `${[...affected].sort().join(', ')} are not listed by any intact index in a present, full-size pack (the index may be what is missing)` +
      (missing.length > 0 ? `; indexed packs missing: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` and ${missing.length - 5} more` : ''}` : '') +
      `. If packs are only briefly unavailable (a storage outage, an unmounted folder), retry when they are back; otherwise run cairn repair, which rebuilds the index from the packs present and records which backups lost what.`,
    { objects: missing.length > 0 ? loaded.missingPacks.map(packKey) : [...unindexed].slice(0, 20).map((id) => `chunk ${id}`), collections: [...affected] },
  );
}

/** Last line of defence: the index about to replace the old ones must list every used chunk. */
function assertCovers(packs: IndexDocument['packs'], used: Set<string>, manifests: BackupManifest[], loaded: LoadedIndex): void {
  const listed = new Set<string>();
  for (const p of packs) for (const b of p.blobs) listed.add(b.id);
  for (const id of used) {
    if (!listed.has(id) && loaded.chunks.has(id)) {
      const who = manifests.find((m) => m.collections.some((c) => c.chunks.includes(id)))?.id ?? '?';
      throw new Error(`Internal error: prune's new index would drop chunk ${id} of backup ${who}; nothing was deleted.`);
    }
  }
}

/** An index written by someone else while we held the exclusive lock means the lock did not hold. */
async function assertNoNewIndexes(repo: Repository, known: Set<string>, signal: AbortSignal): Promise<void> {
  for await (const info of repo.storage.list('index/', signal)) {
    const id = info.key.slice('index/'.length);
    if (!known.has(id)) {
      throw new LockedError(
        `Prune stopped before deleting anything: index ${info.key} appeared while prune held the exclusive lock, so another cairn is writing. Run prune again when no backup is running.`,
      );
    }
  }
}

/**
 * "Now" on the storage's clock, in ms: the storage's time of a rewrite of this prune's own lock
 * (lock.storageNow). Host clocks do not enter into it, so a client whose clock is wrong cannot
 * make a young pack look old.
 */
async function storageClock(lock: RepositoryLock, signal: AbortSignal): Promise<number> {
  return (await lock.storageNow(signal)).getTime();
}
