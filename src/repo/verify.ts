import type { BackupManifest } from '../core/schemas.js';
import { CorruptionError, NotFoundError, throwIfAborted } from '../core/errors.js';
import { ChunkIndex, indexKey, listPacks, type ChunkLocation } from './chunk-index.js';
import { withLock } from './locked.js';
import { decompressBlob } from './compression.js';
import { sha256Hex } from './hash.js';
import { packKey, parsePackHeader } from './pack.js';
import type { Repository } from './repository.js';

export interface VerifyProblem {
  /** The damaged or missing object, e.g. "data/ab/ab12…". */
  object: string;
  message: string;
  /** "backup-id: collection" pairs that depend on the object. */
  affects: string[];
}

export interface VerifyReport {
  backups: string[];
  chunks: number;
  packs: number;
  bytesRead: number;
  problems: VerifyProblem[];
}

export interface VerifyOptions {
  /** Also download every pack and check every blob's content (slow, thorough). */
  readData?: boolean;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

/** verifyBackups under a shared repository lock, so that no prune removes packs while they are checked. */
export async function verifyBackupsLocked(repo: Repository, manifests: BackupManifest[], options: VerifyOptions = {}): Promise<VerifyReport> {
  return withLock(repo, false, 'verify', options.signal, (signal) => verifyBackups(repo, manifests, { ...options, signal }));
}

/**
 * Checks that backups can be restored: every chunk is indexed by an intact index document and
 * its pack exists with at least the indexed size; with readData, every blob a backup needs is
 * decompressed (bounded by its recorded size) and hashed against its id. Damage is attributed
 * blob by blob, so a report names exactly the collections that use a damaged blob, never a
 * neighbour in the same pack. Problems are collected, not thrown, so the report names
 * everything that is wrong.
 */
export async function verifyBackups(repo: Repository, manifests: BackupManifest[], options: VerifyOptions = {}): Promise<VerifyReport> {
  const { signal } = options;
  const { packs: listed } = await listPacks(repo.storage, signal);
  const loaded = await ChunkIndex.load(repo.storage, { ...(signal ? { signal } : {}), present: listed });
  // Where each chunk is, preferring present, full-size packs; for a chunk only in a missing or
  // short pack, its indexed place there (a truncated pack still holds the blobs before the cut).
  const all = loaded.missingPacks.length > 0 ? (await ChunkIndex.load(repo.storage, { ...(signal ? { signal } : {}) })).chunks : loaded.chunks;
  const index = loaded.chunks;
  const locOf = (id: string): ChunkLocation | undefined => index.get(id) ?? all.get(id);

  const problems = new Map<string, VerifyProblem>();
  const problem = (object: string, message: string): VerifyProblem => {
    let p = problems.get(object);
    if (!p) problems.set(object, (p = { object, message, affects: [] }));
    return p;
  };
  for (const d of loaded.damaged) problem(indexKey(d.id), `${d.message} Run cairn repair to rebuild the index from the packs.`);
  const damagedIndexNote = loaded.damaged.length > 0 ? ' (a damaged index document may have listed it; cairn repair rebuilds the index)' : '';
  // Which collections use each pack, so that a missing pack names what it breaks.
  const packUsers = new Map<string, Set<string>>();
  const neededChunks = new Map<string, Set<string>>();
  for (const m of manifests) {
    for (const c of m.collections) {
      const who = `${m.id}: ${c.name}`;
      for (const id of c.chunks) {
        const loc = locOf(id);
        if (!loc) {
          const lost = c.damage ? ` (lost: cairn repair recorded it at ${c.damage.detectedAt}; repair cannot bring it back, a backup of the same data can)` : damagedIndexNote;
          problem(`chunk ${id}`, `Chunk ${id} is not in any index${lost}.`).affects.push(who);
          continue;
        }
        const size = listed.get(loc.packId)?.size;
        if (size === undefined || loc.offset + loc.length > size) {
          // Only the collections whose blobs are gone: blobs before a truncation are intact.
          const key = packKey(loc.packId);
          problem(key, size === undefined ? `Pack ${key} is missing.` : `Pack ${key} is truncated (${size} bytes).`).affects.push(who);
          continue;
        }
        let users = packUsers.get(loc.packId);
        if (!users) packUsers.set(loc.packId, (users = new Set()));
        users.add(who);
        let needed = neededChunks.get(loc.packId);
        if (!needed) neededChunks.set(loc.packId, (needed = new Set()));
        needed.add(id);
      }
    }
  }
  // Collections that use a given chunk: looked up only when a blob is damaged (rare), so that
  // no per-chunk map of every backup is kept in memory.
  const usersOfChunk = (chunkId: string): string[] =>
    manifests.flatMap((m) => m.collections.filter((c) => c.chunks.includes(chunkId)).map((c) => `${m.id}: ${c.name}`));

  const packIds = [...packUsers.keys()];
  let bytesRead = 0;
  let done = 0;
  for (const packId of packIds) {
    throwIfAborted(signal);
    const key = packKey(packId);
    if (options.readData) {
      let bytes: Buffer;
      try {
        bytes = await repo.storage.get(key, signal);
      } catch (err) {
        // An encrypted pack that fails authentication is damaged as a whole: none of its blobs
        // can be trusted (their integrity comes from the one tag).
        if (err instanceof CorruptionError) {
          problem(key, `Pack ${key} is damaged: ${err.message}`).affects.push(...(packUsers.get(packId) ?? []));
          options.onProgress?.(++done, packIds.length);
          continue;
        }
        if (!(err instanceof NotFoundError)) throw err;
        problem(key, `Pack ${key} is missing.`).affects.push(...(packUsers.get(packId) ?? []));
        options.onProgress?.(++done, packIds.length);
        continue;
      }
      bytesRead += bytes.length;
      const damage = checkPack(bytes, packId, locOf, neededChunks.get(packId) ?? new Set(), repo.chunkId);
      if (damage.damagedChunks.length > 0) {
        problem(key, `Pack ${key} is damaged: ${damage.reasons.join('; ')}.`).affects.push(...damage.damagedChunks.flatMap(usersOfChunk));
      } else if (damage.reasons.length > 0) {
        // Every blob a backup needs is intact: the damage is elsewhere in the pack (an unused
        // blob or the header). Reported so that it gets repaired, affecting no backup.
        problem(key, `Pack ${key} is damaged outside the blobs backups use (${damage.reasons.join('; ')}); cairn repair rewrites it.`);
      }
    }
    options.onProgress?.(++done, packIds.length);
  }
  const chunkCount = [...neededChunks.values()].reduce((n, s) => n + s.size, 0);
  for (const p of problems.values()) p.affects = [...new Set(p.affects)];
  return { backups: manifests.map((m) => m.id), chunks: chunkCount, packs: packIds.length, bytesRead, problems: [...problems.values()] };
}

function checkPack(
  bytes: Buffer,
  packId: string,
  locOf: (id: string) => ChunkLocation | undefined,
  needed: Set<string>,
  chunkId: (raw: Uint8Array) => string,
): { reasons: string[]; damagedChunks: string[] } {
  const reasons: string[] = [];
  const damagedChunks: string[] = [];
  if (sha256Hex(bytes) !== packId) reasons.push('its content does not match its checksum');
  try {
    parsePackHeader(bytes, packId);
  } catch (err) {
    reasons.push((err as Error).message);
  }
  for (const id of needed) {
    const loc = locOf(id);
    if (!loc) continue;
    try {
      if (loc.offset + loc.length > bytes.length) throw new CorruptionError(`chunk ${id} lies beyond the end of the pack`, { objects: [] });
      const raw = decompressBlob(bytes.subarray(loc.offset, loc.offset + loc.length), loc.compression, loc.rawLength, `chunk ${id}`);
      if (chunkId(raw) !== id) throw new CorruptionError(`chunk ${id} does not match its hash`, { objects: [] });
    } catch (err) {
      reasons.push(err instanceof CorruptionError ? err.message : String(err));
      damagedChunks.push(id);
    }
  }
  return { reasons, damagedChunks };
}

/** One error that names every damaged object and the collections it breaks. */
export function verifyFailure(report: VerifyReport): CorruptionError {
  const lines = report.problems.map((p) => `${p.message} Affects ${p.affects.length > 0 ? summarize(p.affects) : 'no backup'}.`);
  return new CorruptionError(
    `Verification found ${report.problems.length} damaged object(s): ${lines.join(' ')}`,
    { objects: report.problems.map((p) => p.object), collections: [...new Set(report.problems.flatMap((p) => p.affects))] },
  );
}

function summarize(items: string[]): string {
  const unique = [...new Set(items)];
  return unique.length <= 10 ? unique.join(', ') : `${unique.slice(0, 10).join(', ')} and ${unique.length - 10} more`;
}
