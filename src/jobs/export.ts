/**
 * `cairn export`: backups written out as one standalone `.cairn` archive (a tar whose members are
 * repository objects; docs/repository-format.md "Archives"), streamed to any Writable. The
 * archive holds the manifests unchanged and new packs with only the blobs they need, each chunk
 * once across all exported backups; every blob is checked (pack checksum, decompressed content
 * against its id) before it is written. Memory stays flat: source packs are read a few at a
 * time and one archive pack (<= the repository's pack size) is built at a time.
 */
import type { Writable } from 'node:stream';
import { CorruptionError, NotFoundError, UsageError, throwIfAborted } from '../core/errors.js';
import { mapLimit } from '../core/errgroup.js';
import { randomId, validateBackupId } from '../core/ids.js';
import type { BackupManifest, CompressionSettings, IndexDocument } from '../core/schemas.js';
import { ChunkIndex, writeIndexDocument, type ChunkLocation } from '../repo/chunk-index.js';
import { compressBlob, decompressBlob } from '../repo/compression.js';
import { sha256Hex } from '../repo/hash.js';
import { withLock } from '../repo/locked.js';
import { PackBuilder, packKey, type FinishedPack } from '../repo/pack.js';
import { CONFIG_KEY, decodeManifest, encodeRepositoryConfig, manifestKey, type Repository } from '../repo/repository.js';
import { ARCHIVE_FORMAT, ARCHIVE_FORMAT_VERSION, ARCHIVE_HEAD, type ArchiveHead } from '../storage/archive/format.js';
import { ArchiveWriter } from '../storage/archive/writer.js';

/** The cairn version recorded in archives (as `cairn --version` says). */
export const CAIRN_VERSION = '0.1.0';

export interface ExportProgress {
  phase: 'exporting' | 'done';
  /** Source packs read so far, of those holding needed chunks. */
  packsDone: number;
  packsTotal: number;
  /** Stored (compressed, as in the source) bytes of the needed chunks read so far, and in all. */
  bytesRead: number;
  bytesTotal: number;
  /** Archive bytes written so far. */
  bytesWritten: number;
}

export interface ExportOptions {
  repo: Repository;
  /** The backups to export (at least one; duplicates are ignored). */
  backupIds: string[];
  /** Where the tar bytes go; not ended by the export (stdout stays open). */
  output: Writable;
  /** Recompress every blob with these settings; absent: blobs are copied as stored. */
  compression?: CompressionSettings;
  signal?: AbortSignal;
  onProgress?: (progress: ExportProgress) => void;
  /** Source packs read at once (default 2). */
  concurrency?: number;
}

export interface ExportResult {
  backups: string[];
  /** Distinct chunks stored in the archive. */
  chunks: number;
  packs: number;
  /** Total bytes of the archive. */
  bytes: number;
  /** SHA-256 (hex) of the archive up to its end member, as the end member records it. */
  sha256: string;
  encrypted: boolean;
}

/**
 * The config and key slots an archive starts with, as stored (plain JSON): an encrypted
 * repository's exactly as they are (its key slots are bound to its id, so the same password
 * opens the archive); a plain one's config with a new id (the archive is a repository of its own).
 */
async function headObjects(repo: Repository, createdAt: Date, compression: CompressionSettings | undefined, signal: AbortSignal): Promise<{ key: string; bytes: Buffer }[]> {
  if (!repo.encrypted) {
    const config = { ...repo.config, id: randomId(16), createdAt: createdAt.toISOString(), ...(compression ? { compression } : {}) };
    return [{ key: CONFIG_KEY, bytes: encodeRepositoryConfig(config) }];
  }
  const objects = [{ key: CONFIG_KEY, bytes: await repo.rawStorage.get(CONFIG_KEY, signal) }];
  const slots: string[] = [];
  for await (const info of repo.rawStorage.list('keys/', signal)) if (/^keys\/[0-9a-f]{32}$/.test(info.key)) slots.push(info.key);
  for (const key of slots.sort()) objects.push({ key, bytes: await repo.rawStorage.get(key, signal) });
  return objects;
}

/**
 * Writes backups as one archive (see the module comment), under a shared lock on the source so
 * that no prune removes packs meanwhile. Nothing but `output` is written.
 * @throws NotFoundError for a backup that is not there (before any byte is written);
 *   CorruptionError for damaged source data (the output then holds a partial archive without its
 *   end member, which every reader refuses); StorageError when the output fails; CancelledError.
 */
export async function runExport(options: ExportOptions): Promise<ExportResult> {
  const { repo } = options;
  const ids = [...new Set(options.backupIds.map((id) => validateBackupId(id)))];
  if (ids.length === 0) throw new UsageError('Name at least one backup to export.');
  return withLock(repo, false, `export ${ids.length === 1 ? ids[0] : `${ids.length} backups`}`, options.signal, async (signal) => {
    // Every manifest is read (and checked) before a byte is written: a missing id writes nothing.
    const manifests: { manifest: BackupManifest; bytes: Buffer }[] = [];
    for (const id of ids) {
      let bytes: Buffer;
      try {
        bytes = await repo.storage.get(manifestKey(id), signal);
      } catch (err) {
        if (err instanceof NotFoundError) throw new NotFoundError(`Backup "${id}" not found in ${repo.location}. List the backups with: cairn backup list --repo ${repo.location}`);
        throw err;
      }
      const { manifest } = decodeManifest(bytes, id, { checksumRequired: repo.checksumsRequired });
      manifests.push({ manifest, bytes });
    }
    const { chunks: index } = await ChunkIndex.load(repo.storage, { signal });
    const plan = planExport(manifests.map((m) => m.manifest), index, repo.location);

    const createdAt = new Date();
    const writer = new ArchiveWriter(options.output, createdAt);
    const sink = writer.sink(`archive of ${repo.location}`);
    // An encrypted repository's packs, index and manifests are sealed with its keys: the export stays encrypted.
    const sealed = repo.sealedView(sink);
    const encrypted = repo.encrypted;
    const head: ArchiveHead = { format: ARCHIVE_FORMAT, formatVersion: ARCHIVE_FORMAT_VERSION, createdAt: createdAt.toISOString(), backups: ids, encrypted, cairnVersion: CAIRN_VERSION };
    await writer.add(ARCHIVE_HEAD, Buffer.from(JSON.stringify(head, null, 2) + '\n'), signal);
    // Blobs keep the compression their pack headers name: the config's only says what --compression asked.
    for (const o of await headObjects(repo, createdAt, options.compression, signal)) await writer.add(o.key, o.bytes, signal);

    const written: IndexDocument['packs'] = [];
    let builder = new PackBuilder();
    let packsDone = 0;
    let bytesRead = 0;
    const report = (phase: ExportProgress['phase']): void =>
      options.onProgress?.({ phase, packsDone, packsTotal: plan.byPack.size, bytesRead, bytesTotal: plan.bytesTotal, bytesWritten: writer.bytes });
    const flush = async (pack: FinishedPack): Promise<void> => {
      await sealed.put(packKey(pack.id), pack.parts, { signal });
      written.push({ id: pack.id, length: pack.length, blobs: pack.blobs });
    };
    report('exporting');
    await mapLimit([...plan.byPack.keys()], options.concurrency ?? 2, async (packId, _i, signal) => {
      throwIfAborted(signal);
      const pack = await readPack(repo, packId, signal);
      for (const { id: chunkId, loc } of plan.byPack.get(packId) ?? []) {
        if (loc.offset + loc.length > pack.length) throw new CorruptionError(`Pack ${packKey(packId)} in ${repo.location} is shorter than its index says.`, { objects: [packKey(packId)] });
        const stored = pack.subarray(loc.offset, loc.offset + loc.length);
        const raw = decompressBlob(stored, loc.compression, loc.rawLength, `chunk ${chunkId} in ${packKey(packId)}`);
        if (repo.chunkId(raw) !== chunkId) {
          throw new CorruptionError(`Chunk ${chunkId} in pack ${packKey(packId)} of ${repo.location} does not match its hash. Nothing usable was exported; run cairn verify there.`, { objects: [packKey(packId)] });
        }
        if (options.compression) {
          const c = compressBlob(raw, options.compression.algorithm, options.compression.level);
          builder.add(chunkId, Buffer.from(c.data), loc.rawLength, c.algorithm);
        } else {
          // Copied out of the source pack so that it can be freed once this pack is done.
          builder.add(chunkId, Buffer.from(stored), loc.rawLength, loc.compression);
        }
        bytesRead += loc.length;
      }
      packsDone++;
      report('exporting');
      if (builder.byteLength >= repo.config.packSize) {
        const full = builder;
        builder = new PackBuilder();
        await flush(full.finish());
      }
    }, signal);
    if (builder.blobCount > 0) await flush(builder.finish());
    throwIfAborted(signal);
    if (written.length > 0) await writeIndexDocument(sealed, written, [], signal);
    // Manifests last, as a repository makes a backup visible: unchanged, same chunk ids.
    for (const m of manifests) await sealed.put(manifestKey(m.manifest.id), m.bytes, { signal });
    const summary = await writer.finish(signal);
    report('done');
    return { backups: ids, chunks: plan.chunks, packs: written.length, bytes: summary.totalBytes, sha256: summary.sha256, encrypted };
  });
}

interface ExportPlan {
  byPack: Map<string, { id: string; loc: ChunkLocation }[]>;
  chunks: number;
  bytesTotal: number;
}

/** Every chunk the backups need, once, grouped by the source pack that holds it. */
function planExport(manifests: BackupManifest[], index: ChunkIndex, location: string): ExportPlan {
  const seen = new Set<string>();
  const byPack = new Map<string, { id: string; loc: ChunkLocation }[]>();
  let bytesTotal = 0;
  for (const m of manifests) {
    for (const c of m.collections) {
      for (const chunkId of c.chunks) {
        if (seen.has(chunkId)) continue;
        seen.add(chunkId);
        const loc = index.get(chunkId);
        if (!loc) {
          throw new CorruptionError(`Chunk ${chunkId} of backup "${m.id}" (${c.name}) is not in any index of ${location}: nothing was exported. Run cairn verify there.`, {
            objects: [`chunk ${chunkId}`],
            collections: [`${m.id}: ${c.name}`],
          });
        }
        let list = byPack.get(loc.packId);
        if (!list) byPack.set(loc.packId, (list = []));
        list.push({ id: chunkId, loc });
        bytesTotal += loc.length;
      }
    }
  }
  // Each pack's blobs in their order in the pack: the archive's packs then keep a collection's
  // chunks side by side as the source had them.
  for (const list of byPack.values()) list.sort((a, b) => a.loc.offset - b.loc.offset);
  return { byPack, chunks: seen.size, bytesTotal };
}

async function readPack(repo: Repository, packId: string, signal: AbortSignal): Promise<Buffer> {
  const key = packKey(packId);
  let bytes: Buffer;
  try {
    bytes = await repo.storage.get(key, signal);
  } catch (err) {
    if (err instanceof NotFoundError) throw new CorruptionError(`Pack ${key} is missing from ${repo.location}: nothing usable was exported. Run cairn verify there.`, { objects: [key] });
    throw err;
  }
  if (sha256Hex(bytes) !== packId) {
    throw new CorruptionError(`Pack ${key} in ${repo.location} is damaged: its content does not match its checksum. Nothing usable was exported; run cairn verify there.`, { objects: [key] });
  }
  return bytes;
}
