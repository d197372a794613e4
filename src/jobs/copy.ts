import { ConflictError, CorruptionError, NotFoundError, UsageError, throwIfAborted } from '../core/errors.js';
import { validateBackupId } from '../core/ids.js';
import type { IndexDocument } from '../core/schemas.js';
import { ChunkIndex, writeIndexDocument, type ChunkLocation } from '../repo/chunk-index.js';
import { decompressBlob } from '../repo/compression.js';
import { mapLimit } from '../core/errgroup.js';
import { sha256Hex } from '../repo/hash.js';
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
 * Copies one backup between repositories on any backends. Chunks are named by the SHA-256 of
 * their raw content, so a blob is copied as stored (compressed as in the source), whatever the
 * target's own compression and chunker settings; only the chunks the target's index lacks are
 * sent. Each blob is checked (pack checksum, decompressed content against its id) before it is
 * written into new target packs; then the index document; then the backup is verified in the
 * target; only then is the manifest written, which is what makes the backup visible there.
 * Both repositories hold a shared lock meanwhile.
 */
export async function runCopy(options: CopyOptions): Promise<CopyResult> {
  const { from, to } = options;
  const id = validateBackupId(options.backupId);
  if (from.location === to.location) throw new UsageError(`--from and --to name the same repository (${from.location}).`);
  if (from.config.hash !== to.config.hash) {
    throw new UsageError(
      `Cannot copy: the source repository hashes chunks with ${from.config.hash} and the target with ${to.config.hash}; chunks can only be copied between repositories that use the same hash.`,
    );
  }
  const sourceLock = await from.lock(false, `copy ${id} to ${to.location}`);
  const written: IndexDocument['packs'] = [];
  try {
    const targetLock = await to.lock(false, `copy ${id} from ${from.location}`);
    // Aborts on the caller's cancel or when either lock is lost.
    const signal = lockedSignal(targetLock, lockedSignal(sourceLock, options.signal));
    try {
      // readManifest checks that the manifest claims the id it is stored under; the target copy is
      // written under the validated id requested, never under a name the document supplies.
      const read = await from.readManifest(id, signal);
      if (read.id !== id) {
        throw new CorruptionError(`The manifest of backup "${id}" in ${from.location} claims another id. Nothing was copied.`, { objects: [`backups/${id}`] });
      }
      const manifest = { ...read, id };
      if (await to.hasBackup(id)) {
        throw new ConflictError(`A backup with id "${id}" already exists in ${to.location}. Nothing was copied.`);
      }
      // The target's chunks count as present only if their packs are: a chunk whose pack is gone
      // there is sent again.
      const [{ chunks: sourceIndex }, { chunks: targetIndex }] = await Promise.all([ChunkIndex.load(from.storage, { signal }), ChunkIndex.loadUsable(to.storage, signal)]);

      // The chunks to send, grouped by the source pack that holds them.
      const seen = new Set<string>();
      const byPack = new Map<string, { id: string; loc: ChunkLocation }[]>();
      let chunksSkipped = 0;
      let bytesTotal = 0;
      for (const c of manifest.collections) {
        for (const chunkId of c.chunks) {
          if (seen.has(chunkId)) continue;
          seen.add(chunkId);
          if (targetIndex.has(chunkId)) {
            chunksSkipped++;
            continue;
          }
          const loc = sourceIndex.get(chunkId);
          if (!loc) {
            throw new CorruptionError(`Chunk ${chunkId} of backup "${id}" (${c.name}) is not in any index of ${from.location}; run cairn verify there.`, {
              objects: [`chunk ${chunkId}`],
              collections: [`${id}: ${c.name}`],
            });
          }
          let list = byPack.get(loc.packId);
          if (!list) byPack.set(loc.packId, (list = []));
          list.push({ id: chunkId, loc });
          bytesTotal += loc.length;
        }
      }

      const packIds = [...byPack.keys()];
      let builder = new PackBuilder();
      let chunksCopied = 0;
      let bytesCopied = 0;
      let packsDone = 0;
      const report = (phase: CopyProgress['phase']): void =>
        options.onProgress?.({ phase, packsDone, packsTotal: packIds.length, chunksCopied, bytesCopied, bytesTotal });
      const upload = async (pack: FinishedPack): Promise<void> => {
        await to.storage.put(packKey(pack.id), pack.bytes, { signal });
        written.push({ id: pack.id, length: pack.bytes.length, blobs: pack.blobs });
      };
      report('transferring');
      await mapLimit(packIds, options.concurrency ?? 4, async (packId, _i, signal) => {
        throwIfAborted(signal);
        const pack = await readSourcePack(from, packId, signal);
        for (const { id: chunkId, loc } of byPack.get(packId) ?? []) {
          if (loc.offset + loc.length > pack.length) {
            throw new CorruptionError(`Pack ${packKey(packId)} in ${from.location} is shorter than its index says.`, { objects: [packKey(packId)] });
          }
          const stored = pack.subarray(loc.offset, loc.offset + loc.length);
          const raw = decompressBlob(stored, loc.compression, loc.rawLength, `chunk ${chunkId} in ${packKey(packId)}`);
          if (sha256Hex(raw) !== chunkId) {
            throw new CorruptionError(`Chunk ${chunkId} in pack ${packKey(packId)} of ${from.location} does not match its hash.`, { objects: [packKey(packId)] });
          }
          // Copy out of the source pack so that it can be freed once this pack is done.
          builder.add(chunkId, Buffer.from(stored), loc.rawLength, loc.compression);
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

      // Visible only once everything it needs is indexed and present in the target.
      const report2 = await verifyBackups(to, [manifest], { readData: false, signal });
      if (report2.problems.length > 0) throw verifyFailure(report2);
      throwIfAborted(signal);
      await targetLock.assertHeld();
      try {
        await to.writeManifest(manifest, signal);
      } catch (err) {
        if (err instanceof ConflictError) throw new ConflictError(`A backup with id "${id}" appeared in ${to.location} while copying; the copy was not made visible.`);
        throw err;
      }
      report('done');
      return { backupId: id, from: from.location, to: to.location, chunksCopied, bytesCopied, chunksSkipped, packsWritten: written.length };
    } finally {
      // Packs of a failed copy stay: an identical pack (same name) may be another writer's.
      // Prune removes them once unreferenced and older than its grace period.
      await targetLock.release().catch(() => undefined);
    }
  } finally {
    await sourceLock.release().catch(() => undefined);
  }
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
