import type { BackupManifest } from '../core/schemas.js';
import { CorruptionError, throwIfAborted } from '../core/errors.js';
import { ChunkIndex } from './chunk-index.js';
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
  const lock = await repo.lock(false, 'verify');
  try {
    return await verifyBackups(repo, manifests, options);
  } finally {
    await lock.release();
  }
}

/**
 * Checks that backups can be restored: every chunk is indexed and its pack exists with the
 * right size; with readData, every pack's content matches its name and every blob decompresses
 * to its id. Problems are collected, not thrown, so the report names everything that is wrong.
 */
export async function verifyBackups(repo: Repository, manifests: BackupManifest[], options: VerifyOptions = {}): Promise<VerifyReport> {
  const { signal } = options;
  const { chunks: index } = await ChunkIndex.load(repo.storage, signal);
  const present = new Map<string, number>();
  for await (const info of repo.storage.list('data/', signal)) present.set(info.key, info.size);

  const problems = new Map<string, VerifyProblem>();
  const problem = (object: string, message: string): VerifyProblem => {
    let p = problems.get(object);
    if (!p) problems.set(object, (p = { object, message, affects: [] }));
    return p;
  };
  // Which collections use each pack, so that a damaged pack names what it breaks.
  const packUsers = new Map<string, Set<string>>();
  const neededChunks = new Map<string, Set<string>>();
  for (const m of manifests) {
    for (const c of m.collections) {
      const who = `${m.id}: ${c.name}`;
      for (const id of c.chunks) {
        const loc = index.get(id);
        if (!loc) {
          problem(`chunk ${id}`, `Chunk ${id} is not in any index.`).affects.push(who);
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

  const packIds = [...packUsers.keys()];
  let bytesRead = 0;
  let done = 0;
  for (const packId of packIds) {
    throwIfAborted(signal);
    const key = packKey(packId);
    const users = [...(packUsers.get(packId) ?? [])];
    const size = present.get(key);
    const expected = Math.max(...[...(neededChunks.get(packId) ?? [])].map((id) => {
      const loc = index.get(id);
      return loc ? loc.offset + loc.length : 0;
    }));
    if (size === undefined) {
      problem(key, `Pack ${key} is missing.`).affects.push(...users);
    } else if (size < expected) {
      problem(key, `Pack ${key} is truncated (${size} bytes).`).affects.push(...users);
    } else if (options.readData) {
      const bytes = await repo.storage.get(key, signal);
      bytesRead += bytes.length;
      const damage = checkPack(bytes, packId, index, neededChunks.get(packId) ?? new Set());
      if (damage) problem(key, damage).affects.push(...users);
    }
    options.onProgress?.(++done, packIds.length);
  }
  const chunkCount = [...neededChunks.values()].reduce((n, s) => n + s.size, 0);
  return { backups: manifests.map((m) => m.id), chunks: chunkCount, packs: packIds.length, bytesRead, problems: [...problems.values()] };
}

function checkPack(bytes: Buffer, packId: string, index: ChunkIndex, needed: Set<string>): string | undefined {
  const key = packKey(packId);
  const reasons: string[] = [];
  if (sha256Hex(bytes) !== packId) reasons.push('its content does not match its checksum');
  try {
    parsePackHeader(bytes, packId);
  } catch (err) {
    reasons.push((err as Error).message);
  }
  for (const id of needed) {
    const loc = index.get(id);
    if (!loc) continue;
    try {
      const raw = decompressBlob(bytes.subarray(loc.offset, loc.offset + loc.length), loc.compression, loc.rawLength, `chunk ${id}`);
      if (sha256Hex(raw) !== id) reasons.push(`chunk ${id} does not match its hash`);
    } catch (err) {
      reasons.push(err instanceof CorruptionError ? err.message : String(err));
    }
  }
  return reasons.length > 0 ? `Pack ${key} is damaged: ${reasons.join('; ')}.` : undefined;
}

/** One error that names every damaged object and the collections it breaks. */
export function verifyFailure(report: VerifyReport): CorruptionError {
  const lines = report.problems.map((p) => `${p.message} Affects ${summarize(p.affects)}.`);
  return new CorruptionError(
    `Verification found ${report.problems.length} damaged object(s): ${lines.join(' ')}`,
    { objects: report.problems.map((p) => p.object), collections: [...new Set(report.problems.flatMap((p) => p.affects))] },
  );
}

function summarize(items: string[]): string {
  const unique = [...new Set(items)];
  return unique.length <= 10 ? unique.join(', ') : `${unique.slice(0, 10).join(', ')} and ${unique.length - 10} more`;
}
