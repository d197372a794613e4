import { throwIfAborted } from '../core/errors.js';
import type { IndexDocument } from '../core/schemas.js';
import { ChunkIndex, indexKey, writeIndexDocument } from './chunk-index.js';
import { sha256Hex } from './hash.js';
import { removeStaleLocks } from './lock.js';
import { PackBuilder, packKey } from './pack.js';
import type { Repository } from './repository.js';
import { CorruptionError } from '../core/errors.js';

export interface PruneOptions {
  /** Repack a pack when more than this share of its bytes is unused (default 0.2). */
  repackThreshold?: number;
  /** Report what would be removed without removing anything. */
  dryRun?: boolean;
  signal?: AbortSignal;
  /** Temp files older than this are leftovers of crashed writers (default 1 hour). */
  tempFileAgeMs?: number;
}

export interface PruneReport {
  dryRun: boolean;
  packsTotal: number;
  packsDeleted: number;
  packsRepacked: number;
  packsWritten: number;
  bytesFreed: number;
  indexesReplaced: number;
  staleLocksRemoved: number;
  tempFilesRemoved: number;
}

interface StaleTempCleaner {
  removeStaleTempFiles(maxAgeMs: number): Promise<number>;
}

/**
 * Removes what no manifest references, under the exclusive lock (so no backup is writing).
 * Order makes every crash point safe: write new packs, then one new index that supersedes all
 * old ones, then delete the old indexes, and only then the packs nothing points to.
 */
export async function prune(repo: Repository, options: PruneOptions = {}): Promise<PruneReport> {
  const { signal } = options;
  const threshold = options.repackThreshold ?? 0.2;
  const lock = await repo.lock(true, 'prune');
  try {
    // Any unreadable manifest stops prune before it deletes anything: it might reference anything.
    const manifests = await repo.listManifests(signal);
    const used = new Set<string>();
    for (const m of manifests) for (const c of m.collections) for (const id of c.chunks) used.add(id);

    const loaded = await ChunkIndex.load(repo.storage, signal);
    const present = new Map<string, number>();
    for await (const info of repo.storage.list('data/', signal)) present.set(info.key.slice(info.key.lastIndexOf('/') + 1), info.size);

    const keep: IndexDocument['packs'] = [];
    const remove: string[] = [];
    const repack: IndexDocument['packs'] = [];
    let bytesFreed = 0;
    for (const [packId, size] of present) {
      const pack = loaded.packs.get(packId);
      if (!pack) {
        remove.push(packId); // written by a backup that never finished
        bytesFreed += size;
        continue;
      }
      const live = pack.blobs.filter((b) => used.has(b.id) && loaded.chunks.get(b.id)?.packId === packId);
      const liveBytes = live.reduce((n, b) => n + b.length, 0);
      if (live.length === 0) {
        remove.push(packId);
        bytesFreed += size;
      } else if (size - liveBytes > threshold * size) {
        repack.push({ id: packId, length: size, blobs: live });
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
        await repo.storage.put(packKey(pack.id), pack.bytes, { signal });
        written.push({ id: pack.id, length: pack.bytes.length, blobs: pack.blobs });
      };
      for (const old of repack) {
        throwIfAborted(signal);
        const bytes = await repo.storage.get(packKey(old.id), signal);
        if (sha256Hex(bytes) !== old.id) {
          throw new CorruptionError(
            `Prune stopped before deleting anything: pack ${packKey(old.id)} is damaged. Run cairn verify --read-data to see which backups it affects.`,
            { objects: [packKey(old.id)] },
          );
        }
        for (const b of old.blobs) {
          builder.add(b.id, bytes.subarray(b.offset, b.offset + b.length), b.rawLength, b.compression);
          if (builder.byteLength >= repo.config.packSize) await seal();
        }
      }
      await seal();
    }
    for (const old of repack) bytesFreed += old.length;
    bytesFreed -= written.reduce((n, p) => n + p.length, 0);

    const oldIndexes = [...loaded.documentIds, ...loaded.supersededIds];
    const changed = remove.length > 0 || repack.length > 0 || loaded.supersededIds.length > 0 || loaded.documentIds.length > 1;
    if (!options.dryRun && changed) {
      throwIfAborted(signal);
      const packs = [...keep, ...written];
      if (packs.length > 0) await writeIndexDocument(repo.storage, packs, oldIndexes, signal);
      for (const id of oldIndexes) await repo.storage.delete(indexKey(id));
      for (const id of [...remove, ...repack.map((p) => p.id)]) await repo.storage.delete(packKey(id));
    }

    let staleLocksRemoved = 0;
    let tempFilesRemoved = 0;
    if (!options.dryRun) {
      staleLocksRemoved = await removeStaleLocks(repo.storage);
      const cleaner = repo.storage as Partial<StaleTempCleaner>;
      if (typeof cleaner.removeStaleTempFiles === 'function') {
        tempFilesRemoved = await cleaner.removeStaleTempFiles(options.tempFileAgeMs ?? 3_600_000);
      }
    }
    return {
      dryRun: Boolean(options.dryRun),
      packsTotal: present.size,
      packsDeleted: remove.length,
      packsRepacked: repack.length,
      packsWritten: written.length,
      bytesFreed: Math.max(0, bytesFreed),
      indexesReplaced: changed ? oldIndexes.length : 0,
      staleLocksRemoved,
      tempFilesRemoved,
    };
  } finally {
    await lock.release();
  }
}
