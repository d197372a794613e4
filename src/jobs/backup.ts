import { ConflictError, CorruptionError, throwIfAborted } from '../core/errors.js';
import { lockedSignal } from '../repo/locked.js';
import { sleep } from '../core/sleep.js';
import { generateBackupId, validateBackupId } from '../core/ids.js';
import { FORMAT_VERSION, type BackupManifest, type BackupType, type CollectionEntry, type CompressionSettings } from '../core/schemas.js';
import { selectNames, type Selection } from '../core/selection.js';
import { chunkStream } from '../repo/chunker.js';
import { ChunkIndex, writeIndexDocument } from '../repo/chunk-index.js';
import { ChunkWriter } from '../repo/chunk-writer.js';
import { CompressionPool, defaultCompressionWorkers } from '../repo/compression-pool.js';
import { duplicateBackup, type Repository } from '../repo/repository.js';
import type { CollectionDescriptor, DatabaseSource } from '../sources/types.js';
import { namingFor } from '../sources/registry.js';
import { mapLimit } from '../core/errgroup.js';
import { availableParallelism } from 'node:os';
import type { ProgressListener } from './progress.js';

export interface BackupOptions {
  repo: Repository;
  source: DatabaseSource;
  /** Generated from the source name and the UTC time when absent. */
  id?: string;
  selection?: Selection;
  /** Defaults to the repository's configured compression. */
  compression?: CompressionSettings;
  /** Target size of this backup's packs in bytes (default: the repository's). */
  packSize?: number;
  type?: BackupType;
  /** For scheduled backups: the schedule's name, recorded in the manifest. */
  schedule?: string;
  /** For scheduled backups: the schedule's unique id, recorded in the manifest (retention matches it). */
  scheduleId?: string;
  expiresAt?: Date | null;
  /** Collections read at once, when the source allows it (default: the number of cores). */
  jobs?: number;
  /** Threads compressing chunks (default: cores - 1, at least 1); 0 compresses on the main thread. */
  compressionWorkers?: number;
  signal?: AbortSignal;
  onProgress?: ProgressListener;
  now?: () => Date;
  /**
   * How long to wait (ms) while a prune or repair holds the repository's exclusive lock, instead
   * of failing at once with LockedError (default 0). Scheduled backups wait.
   */
  lockWaitMs?: number;
}

/**
 * Backs up one consistent snapshot of a source. Data goes into new packs, then an index for
 * them, then the manifest: until that last write the backup does not exist, so an interrupted
 * backup leaves nothing visible (its packs are removed here when possible, else by prune).
 */
export async function runBackup(options: BackupOptions): Promise<BackupManifest> {
  const { repo, source } = options;
  const now = options.now ?? (() => new Date());
  if (options.id !== undefined) {
    validateBackupId(options.id);
    if (await repo.hasBackup(options.id)) throw duplicateBackup(options.id, repo.location);
  }
  const compression = options.compression ?? repo.config.compression;
  const lock = await repo.lock(false, `backup of ${source.location}`, {
    ...(options.lockWaitMs ? { waitMs: options.lockWaitMs } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  // Aborts when the caller cancels or when the lock is lost (a prune could then run).
  const signal = lockedSignal(lock, options.signal);
  let pool: CompressionPool | undefined;
  let writer: ChunkWriter | undefined;
  let committed = false;
  try {
    // Only chunks whose packs are present count as stored: a chunk whose pack is gone (or whose
    // index document is damaged) is uploaded again rather than referenced.
    const { chunks: index } = await ChunkIndex.loadUsable(repo.storage, signal);
    const jobs = Math.max(1, options.jobs ?? availableParallelism());
    const snapshot = await source.openSnapshot({
      select: (names) => selectNames(names, options.selection ?? {}, namingFor(source.kind)),
      jobs,
      ...(signal ? { signal } : {}),
    });
    try {
      const createdAt = now();
      const id = options.id ?? (await uniqueId(repo, generateBackupId(source.name, createdAt)));
      const collections = await snapshot.listCollections();
      pool = new CompressionPool({ workers: options.compressionWorkers ?? defaultCompressionWorkers() });
      const chunkWriter = new ChunkWriter(repo.storage, index, { packSize: options.packSize ?? repo.config.packSize, compression, pool, signal });
      writer = chunkWriter;
      let rows = 0;
      let bytes = 0;
      let done = 0;
      const report = (phase: 'transferring' | 'finalizing', collection?: string): void =>
        options.onProgress?.({ phase, collection, collectionsDone: done, collectionsTotal: collections.length, rows, bytes });
      const chunkerParams = repo.config.chunker;
      // Stored sizes of new chunks are known once compressed: the sizes are added up after flush().
      // A collection is read as one stream or as several segments (a large table in ranges);
      // every segment is a unit of work with its own chunk list, concatenated in order at the end.
      interface Planned {
        c: CollectionDescriptor;
        entry: CollectionEntry;
        units: Unit[];
        /** Chunks this backup added (their stored sizes are known after flush()). */
        newIds: string[];
        /** Units not finished yet. */
        left: number;
      }
      interface Unit {
        plan: Planned;
        segment: number | undefined;
        chunks: string[];
        rows: number;
      }
      const plans: Planned[] = collections.map((c) => {
        const plan: Planned = {
          c,
          entry: {
            name: c.name,
            kind: c.kind,
            definition: c.definition,
            ...(c.dataFormat ? { dataFormat: c.dataFormat } : {}),
            ...(c.selectable === false ? { selectable: false } : {}),
            rowCount: 0,
            logicalBytes: 0,
            storedBytes: 0,
            newBytes: 0,
            chunks: [],
          },
          units: [],
          newIds: [],
          left: 0,
        };
        const segments = c.dataFormat ? Math.max(1, Math.floor(c.segments ?? 1)) : 1;
        for (let k = 0; k < segments; k++) plan.units.push({ plan, segment: segments > 1 ? k : undefined, chunks: [], rows: 0 });
        plan.left = segments;
        return plan;
      });
      const entries = plans.map((p) => p.entry);
      // Largest first so that a big table's segments start early and the small ones fill the
      // gaps; what the source cannot size (a schema dump, say) may be slow and goes first. The
      // manifest keeps the source's order.
      const size = (u: Unit): number => (u.plan.c.estimatedBytes ?? Infinity) / u.plan.units.length;
      const schedule = plans
        .flatMap((p) => p.units)
        .map((u, i) => ({ u, i }))
        .sort((a, b) => (size(b.u) > size(a.u) ? 1 : size(b.u) < size(a.u) ? -1 : a.i - b.i))
        .map((x) => x.u);
      const backupUnit = async (u: Unit, _i: number, signal: AbortSignal): Promise<void> => {
        throwIfAborted(signal);
        const { c, entry, newIds } = u.plan;
        report('transferring', c.name);
        if (c.dataFormat) {
          const stream = snapshot.readData(c, signal, u.segment);
          for await (const chunk of chunkStream(stream, chunkerParams, signal)) {
            const length = chunk.length;
            const written = await chunkWriter.write(chunk);
            u.chunks.push(written.id);
            entry.logicalBytes += length;
            if (written.isNew) newIds.push(written.id);
            bytes += length;
            report('transferring', c.name);
          }
          u.rows = stream.rowCount;
          rows += stream.rowCount;
        }
        if (--u.plan.left === 0) done++;
      };
      await mapLimit(schedule, Math.max(1, Math.min(jobs, snapshot.maxParallelReads)), backupUnit, signal);
      for (const { entry, units } of plans) {
        entry.chunks = units.flatMap((u) => u.chunks);
        entry.rowCount = units.reduce((n, u) => n + u.rows, 0);
        if (units.length > 1) entry.segments = units.map((u) => u.chunks.length);
      }
      report('finalizing');
      const packs = await chunkWriter.flush();
      const storedSize = (chunkId: string): number => {
        const size = chunkWriter.storedSize(chunkId);
        if (size === undefined) throw new Error(`Internal error: no stored size for chunk ${chunkId}.`);
        return size;
      };
      let newChunks = 0;
      for (const { entry, newIds } of plans) {
        for (const chunkId of entry.chunks) entry.storedBytes += storedSize(chunkId);
        for (const chunkId of newIds) entry.newBytes += storedSize(chunkId);
        newChunks += newIds.length;
      }
      if (packs.length > 0) await writeIndexDocument(repo.storage, packs, [], signal);
      await assertStillStored(repo, entries, signal);
      throwIfAborted(signal);
      // The commit point: never make a backup visible without holding the lock right now.
      await lock.assertHeld();
      const manifest: BackupManifest = {
        formatVersion: FORMAT_VERSION,
        id,
        createdAt: createdAt.toISOString(),
        completedAt: now().toISOString(),
        type: options.type ?? 'manual',
        ...(options.schedule !== undefined ? { schedule: options.schedule } : {}),
        ...(options.scheduleId !== undefined ? { scheduleId: options.scheduleId } : {}),
        expiresAt: options.expiresAt ? options.expiresAt.toISOString() : null,
        source: { kind: source.kind, name: source.name, location: source.location, serverVersion: snapshot.serverVersion },
        scope: { ...(options.selection?.include ? { include: options.selection.include } : {}), ...(options.selection?.exclude ? { exclude: options.selection.exclude } : {}) },
        compression,
        collections: entries,
        totals: totals(entries, newChunks),
        warnings: snapshot.warnings,
      };
      try {
        await repo.writeManifest(manifest, signal);
      } catch (err) {
        // A generated id can be taken by a backup of the same source that finished meanwhile.
        if (!(err instanceof ConflictError) || options.id !== undefined) throw err;
        manifest.id = await uniqueId(repo, manifest.id);
        await repo.writeManifest(manifest, signal);
      }
      committed = true;
      options.onProgress?.({ phase: 'done', collectionsDone: entries.length, collectionsTotal: collections.length, rows, bytes });
      return manifest;
    } finally {
      await snapshot.close();
    }
  } finally {
    // The packs of a failed backup stay where they are: another backup may have written an
    // identical pack (same content, same name) or reused a chunk of ours through our index, so
    // deleting them here could break it. Prune removes them once nothing needs them and they
    // are older than its grace period. Uploads still running are awaited before the lock goes.
    if (!committed) await writer?.abandon().catch(() => undefined);
    await pool?.close().catch(() => undefined);
    await lock.release().catch(() => undefined);
  }
}

/**
 * The last check before a backup becomes visible: every chunk it references is listed by an
 * intact index in a pack that is present now. A chunk deduplicated against a pack that vanished
 * meanwhile (a prune that ignored our lock, damage) would make a backup that cannot be restored.
 * @throws CorruptionError naming the missing chunks; nothing is made visible.
 */
async function assertStillStored(repo: Repository, entries: CollectionEntry[], signal: AbortSignal): Promise<void> {
  const missing = new Set<string>();
  const affected = new Set<string>();
  // Looked at up to three times: a storage that answers one listing or read wrongly (a fault, a
  // hiccup) must not fail a good backup; data that is really gone stays gone.
  for (let attempt = 0; attempt < 3; attempt++) {
    if (attempt > 0) await sleep(250 * 4 ** (attempt - 1), signal);
    missing.clear();
    affected.clear();
    const { chunks } = await ChunkIndex.loadUsable(repo.storage, signal);
    for (const e of entries) {
      for (const id of e.chunks) {
        if (!chunks.has(id)) {
          missing.add(id);
          affected.add(e.name);
        }
      }
    }
    if (missing.size === 0) return;
  }
  throw new CorruptionError(
    `The backup was not made visible: ${missing.size} chunk(s) it reuses (in ${[...affected].join(', ')}) are no longer stored in ${repo.location} ` +
      '(their pack was removed or damaged while the backup ran). Run the backup again; it uploads them anew.',
    { objects: [...missing].slice(0, 20).map((id) => `chunk ${id}`), collections: [...affected] },
  );
}

function totals(entries: CollectionEntry[], newChunks: number): BackupManifest['totals'] {
  const unique = new Set<string>();
  const t = { collections: entries.length, rows: 0, logicalBytes: 0, storedBytes: 0, newBytes: 0, reusedBytes: 0, chunks: 0, newChunks: 0 };
  for (const e of entries) {
    t.rows += e.rowCount;
    t.logicalBytes += e.logicalBytes;
    t.storedBytes += e.storedBytes;
    t.newBytes += e.newBytes;
    for (const id of e.chunks) unique.add(id);
  }
  t.reusedBytes = t.storedBytes - t.newBytes;
  t.chunks = unique.size;
  t.newChunks = newChunks;
  return t;
}

async function uniqueId(repo: Repository, base: string): Promise<string> {
  if (!(await repo.hasBackup(base))) return base;
  for (let n = 2; n < 1000; n++) {
    const candidate = `${base}-${n}`;
    if (!(await repo.hasBackup(candidate))) return candidate;
  }
  throw new ConflictError(`Too many backups named ${base}-*; pass --id.`);
}
