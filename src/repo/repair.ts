import { CorruptionError, throwIfAborted } from '../core/errors.js';
import { type BackupManifest, type IndexDocument, type IndexEntry } from '../core/schemas.js';
import { ChunkIndex, indexKey, listPacks, writeIndexDocument } from './chunk-index.js';
import { decompressBlob } from './compression.js';
import { mapLimit } from '../core/errgroup.js';
import { sha256Hex } from './hash.js';
import { removeStaleLocks, type RepositoryLock } from './lock.js';
import { withLock } from './locked.js';
import { decodeJson, encodeManifest, ZSTD_MAGIC } from './metadata.js';
import { PackBuilder, packKey, parsePackHeader } from './pack.js';
import { decodeManifest, manifestKey, type Repository } from './repository.js';

export interface RepairOptions {
  /** Say what would change without changing anything. */
  dryRun?: boolean;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
  now?: () => Date;
}

export interface DamagedBackup {
  id: string;
  /** Collections that lost data, with how many of their chunks are gone. */
  collections: { name: string; missingChunks: number }[];
}

export interface RepairReport {
  dryRun: boolean;
  packsRead: number;
  /** Packs whose content matches their name. */
  packsIntact: number;
  /** Damaged packs: their intact blobs were moved into new packs, then the pack was removed. */
  packsDamaged: string[];
  /** Blobs that could not be saved from damaged packs. */
  blobsLost: number;
  /** Blobs moved out of damaged packs into new ones. */
  blobsSalvaged: number;
  /** Index documents that were damaged (replaced like every other old one). */
  indexesDamaged: string[];
  indexesReplaced: number;
  /**
   * Objects under backups/ or index/ with names cairn never gives that are not cairn documents:
   * left where they are (they may be someone else's files behind a symbolic link); move them out
   * of the repository by hand.
   */
  foreignLeftAlone: string[];
  /** Unreadable manifests, moved under quarantine/ (their backups can no longer be listed). */
  manifestsQuarantined: string[];
  /** Backups that lost data, and what (their manifests now record it). */
  backupsDamaged: DamagedBackup[];
  /** Backups recorded as damaged earlier whose chunks are all back (a later backup uploaded them). */
  backupsHealed: string[];
  staleLocksRemoved: number;
}

/**
 * Rebuilds a consistent repository from what is actually stored, like restic's `repair index`
 * and `repair snapshots` together, under the exclusive lock:
 * 1. Every pack is read whole and checked against its name. An intact pack's own header is the
 *    truth about its blobs. A damaged pack's blobs (found by its header, or else by the old
 *    index) are checked one by one against their ids; the intact ones move into new packs.
 * 2. One new index document lists exactly the intact blobs and replaces every old one (damaged
 *    documents included). Chunks that are nowhere are thereby no longer indexed, so the next
 *    backup of the same data uploads them again instead of reusing what is gone.
 * 3. Each manifest is checked against the new index: a collection with missing chunks is
 *    recorded as damaged (`damage` in its entry; prune then keeps the rest instead of refusing),
 *    one whose chunks are all back is healed. Unreadable manifests move to quarantine/.
 * Crash-safe in the same order as prune: new packs, new index, then deletions.
 * @returns what was found and done; nothing is thrown for damage it can describe.
 */
export async function repair(repo: Repository, options: RepairOptions = {}): Promise<RepairReport> {
  return withLock(repo, true, 'repair', options.signal, (signal, lock) => repairLocked(repo, options, signal, lock));
}

async function repairLocked(repo: Repository, options: RepairOptions, signal: AbortSignal, lock: RepositoryLock): Promise<RepairReport> {
  const now = options.now ?? (() => new Date());
  const dryRun = Boolean(options.dryRun);
  const { packs: present } = await listPacks(repo.storage, signal);
  // The old index: which documents to replace, and blob lists to fall back on for a pack whose
  // own header is damaged.
  const old = await ChunkIndex.load(repo.storage, { signal });
  const oldIndexes = [...old.documentIds, ...old.supersededIds, ...old.damaged.map((d) => d.id)];

  const intact: IndexDocument['packs'] = [];
  const damagedPacks: string[] = [];
  const salvage: { packId: string; bytes: Buffer; blobs: IndexEntry[] }[] = [];
  let blobsLost = 0;
  let done = 0;
  const packIds = [...present.keys()];
  await mapLimit(packIds, 4, async (packId, _i, signal) => {
    throwIfAborted(signal);
    let bytes: Buffer;
    try {
      bytes = await repo.storage.get(packKey(packId), signal);
    } catch (err) {
      // An encrypted pack that fails authentication: nothing in it can be trusted or salvaged.
      if (!(err instanceof CorruptionError)) throw err;
      damagedPacks.push(packId);
      blobsLost += old.packs.get(packId)?.blobs.length ?? 0;
      options.onProgress?.(++done, packIds.length);
      return;
    }
    let header: IndexEntry[] | undefined;
    try {
      header = parsePackHeader(bytes, packId);
    } catch {
      header = undefined;
    }
    if (sha256Hex(bytes) === packId && header) {
      intact.push({ id: packId, length: bytes.length, blobs: header });
    } else {
      damagedPacks.push(packId);
      const candidates = header ?? old.packs.get(packId)?.blobs ?? [];
      const good: IndexEntry[] = [];
      for (const b of candidates) {
        if (blobIntact(bytes, b, repo.chunkId)) good.push(b);
        else blobsLost++;
      }
      // Only the intact blobs are kept (copied, so the damaged pack's buffer can go).
      if (good.length > 0) salvage.push({ packId, bytes: Buffer.from(bytes), blobs: good });
    }
    options.onProgress?.(++done, packIds.length);
  }, signal);

  // Salvaged blobs go into new packs; a blob already intact elsewhere needs no copy.
  const written: IndexDocument['packs'] = [];
  const have = new Set(intact.flatMap((p) => p.blobs.map((b) => b.id)));
  let blobsSalvaged = 0;
  let builder = new PackBuilder();
  const seal = async (): Promise<void> => {
    if (builder.blobCount === 0) return;
    const pack = builder.finish();
    builder = new PackBuilder();
    if (!dryRun) await repo.storage.put(packKey(pack.id), pack.parts, { signal });
    written.push({ id: pack.id, length: pack.length, blobs: pack.blobs });
  };
  for (const s of salvage) {
    for (const b of s.blobs) {
      if (have.has(b.id)) continue;
      have.add(b.id);
      builder.add(b.id, s.bytes.subarray(b.offset, b.offset + b.length), b.rawLength, b.compression);
      blobsSalvaged++;
      if (builder.byteLength >= repo.config.packSize) await seal();
    }
  }
  await seal();

  const packs = [...intact, ...written].sort((a, b) => a.id.localeCompare(b.id));
  const index = new ChunkIndex();
  for (const p of packs) for (const b of p.blobs) index.add(b.id, { packId: p.id, offset: b.offset, length: b.length, rawLength: b.rawLength, compression: b.compression });

  let newIndex: string | undefined;
  if (!dryRun) {
    throwIfAborted(signal);
    // Only names an index can have are superseded; foreign names under index/ (not 64 hex) are
    // just deleted below, and readers already skip them as damaged meanwhile.
    if (packs.length > 0) newIndex = await writeIndexDocument(repo.storage, packs, oldIndexes.filter((id) => /^[0-9a-f]{64}$/.test(id)), signal);
  }

  // Manifests against the new index.
  const quarantined: string[] = [];
  /** Foreign objects that are not cairn documents: never moved or deleted (see looksLike). */
  const leftAlone: string[] = [];
  const backupsDamaged: DamagedBackup[] = [];
  const healed: string[] = [];
  const detectedAt = now().toISOString();
  const { ids: backupIds, foreign } = await repo.listBackupKeys(signal);
  // Objects under backups/ that are not backups: moved to quarantine under a name derived from
  // their key (never the key itself, which may be anything), so that list, verify and prune work.
  for (const key of foreign) {
    throwIfAborted(signal);
    const bytes = await repo.storage.get(key, signal).catch(() => undefined);
    // backups/ may be a link to a folder of other files: there, only what may be a cairn document moves.
    if (!bytes || (!looksLike(bytes, 'collections') && (await linksOutside(repo, key)))) {
      leftAlone.push(key);
      continue;
    }
    quarantined.push(key.slice('backups/'.length));
    if (!dryRun) {
      await repo.storage.put(`quarantine/backups/foreign-${sha256Hex(Buffer.from(key, 'utf8')).slice(0, 32)}`, bytes, { signal });
      await repo.storage.delete(key);
    }
  }
  for (const id of backupIds) {
    throwIfAborted(signal);
    const bytes = await repo.storage.get(manifestKey(id), signal).catch(() => undefined);
    if (!bytes) continue;
    let manifest: BackupManifest;
    try {
      manifest = decodeManifest(bytes, id, { checksumRequired: repo.checksumsRequired, what: `Manifest ${manifestKey(id)}` }).manifest;
    } catch (err) {
      if (!(err instanceof CorruptionError)) throw err;
      // A damaged manifest moves to quarantine; through a link out of the repository, a file that
      // never was a cairn document stays (backups/ may be a link to a folder of other files).
      if (!mayBeCairnDocument(bytes) && (await linksOutside(repo, manifestKey(id)))) {
        leftAlone.push(manifestKey(id));
        continue;
      }
      quarantined.push(id);
      if (!dryRun) {
        await repo.storage.put(`quarantine/${manifestKey(id)}`, bytes, { signal });
        await repo.storage.delete(manifestKey(id));
      }
      continue;
    }
    let changed = false;
    const lost: DamagedBackup['collections'] = [];
    let wasDamaged = false;
    for (const c of manifest.collections) {
      const missing = new Set(c.chunks.filter((chunk) => !index.has(chunk))).size;
      if (c.damage) wasDamaged = true;
      if (missing > 0) {
        lost.push({ name: c.name, missingChunks: missing });
        if (c.damage?.missingChunks !== missing) {
          c.damage = { missingChunks: missing, detectedAt: c.damage?.detectedAt ?? detectedAt };
          changed = true;
        }
      } else if (c.damage) {
        delete c.damage;
        changed = true;
      }
    }
    if (lost.length > 0) backupsDamaged.push({ id, collections: lost });
    else if (wasDamaged) healed.push(id);
    if (changed && !dryRun) await repo.storage.put(manifestKey(id), encodeManifest(manifest), { signal });
  }

  if (!dryRun) {
    throwIfAborted(signal);
    await lock.assertHeld();
    // Deletions last: every object still needed is listed by the new index by now.
    for (const id of oldIndexes) {
      if (id === newIndex) continue;
      // A name an index cannot have, through a link out of the repository, is deleted only when it
      // holds an index document: index/ may be a link to a folder of other files.
      if (!/^[0-9a-f]{64}$/.test(id)) {
        const bytes = await repo.storage.get(indexKey(id), signal).catch(() => undefined);
        if (!bytes || (!looksLike(bytes, 'packs') && (await linksOutside(repo, indexKey(id))))) {
          leftAlone.push(indexKey(id));
          continue;
        }
      }
      await repo.storage.delete(indexKey(id));
    }
    const listed = new Set(packs.map((p) => p.id));
    for (const id of damagedPacks) if (!listed.has(id)) await repo.storage.delete(packKey(id));
  }
  const staleLocksRemoved = dryRun ? 0 : await removeStaleLocks(repo.storage, { lock, signal });
  return {
    dryRun,
    packsRead: packIds.length,
    packsIntact: intact.length,
    packsDamaged: damagedPacks.sort(),
    blobsLost,
    blobsSalvaged,
    indexesDamaged: old.damaged.map((d) => d.id).sort(),
    indexesReplaced: oldIndexes.length,
    manifestsQuarantined: quarantined.sort(),
    foreignLeftAlone: leftAlone.sort(),
    backupsDamaged: backupsDamaged.sort((a, b) => a.id.localeCompare(b.id)),
    backupsHealed: healed.sort(),
    staleLocksRemoved,
  };
}

function blobIntact(pack: Buffer, b: IndexEntry, chunkId: (raw: Uint8Array) => string): boolean {
  if (b.offset + b.length > pack.length) return false;
  try {
    return chunkId(decompressBlob(pack.subarray(b.offset, b.offset + b.length), b.compression, b.rawLength, `chunk ${b.id}`)) === b.id;
  } catch {
    return false;
  }
}

/**
 * Whether `bytes` is a cairn metadata document (zstd or plain JSON, an object with a
 * formatVersion and `field`): the only foreign objects repair moves or deletes.
 */
function looksLike(bytes: Buffer, field: 'collections' | 'packs'): boolean {
  try {
    const doc = decodeJson(bytes, 'object');
    return doc !== null && typeof doc === 'object' && !Array.isArray(doc) && 'formatVersion' in doc && field in doc;
  } catch {
    return false;
  }
}

/**
 * Whether damaged bytes may once have been a cairn document: every one cairn writes starts with
 * zstd's magic number or "{" (a truncated one may be empty). Anything else is someone's file.
 */
function mayBeCairnDocument(bytes: Buffer): boolean {
  return bytes.length === 0 || bytes.subarray(0, 4).equals(ZSTD_MAGIC) || bytes.subarray(0, 1).toString() === '{';
}

/** Whether the object is reached through a link out of the repository (see Storage.linksOutside). */
async function linksOutside(repo: Repository, key: string): Promise<boolean> {
  return (await repo.storage.linksOutside?.(key)) ?? false;
}
