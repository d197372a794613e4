/**
 * `cairn dump` and `cairn diff`'s repository side: one collection of a backup read back as rows
 * (the engine writes them, EngineDriver.openDump), without any database.
 */
import { CorruptionError, UsageError } from '../core/errors.js';
import type { BackupManifest, CollectionEntry } from '../core/schemas.js';
import { selectNames } from '../core/selection.js';
import { ChunkIndex } from '../repo/chunk-index.js';
import { readChunks, readerForIndex } from '../repo/chunk-reader.js';
import type { Repository } from '../repo/repository.js';
import type { CollectionDump, DumpFormat } from '../sources/dump.js';
import { driverForKind, namingFor } from '../sources/index.js';

export { DUMP_FORMATS, type DumpFormat } from '../sources/dump.js';

/** A dump whose collection was found and can be written; nothing has been read yet. */
export interface PreparedDump {
  manifest: BackupManifest;
  entry: CollectionEntry;
  format: DumpFormat;
  dump: CollectionDump;
}

/**
 * Finds `collection` in backup `backupId` by the same name rules as restore --include (the
 * engine's: PostgreSQL `t` is `public.t`, SQLite folds ASCII case) and checks that its rows can
 * be dumped as `format`. Throws NotFoundError for an unknown backup, UsageError for an unknown
 * collection (naming close ones), a pattern that names several, or a collection without rows.
 */
export async function prepareDump(repo: Repository, backupId: string, collection: string, format: DumpFormat, signal?: AbortSignal): Promise<PreparedDump> {
  const manifest = await repo.readManifest(backupId, signal);
  const entry = findCollection(manifest, collection);
  if (entry.selectable === false) {
    throw new UsageError(
      `"${entry.name}" belongs to the whole database (kind ${entry.kind}), not to one table: it has no rows to dump; dump a table (cairn backup show ${manifest.id} lists the collections and their rows).`,
    );
  }
  const driver = driverForKind(manifest.source.kind);
  if (driver?.openDump === undefined) {
    throw new UsageError(`Backup ${manifest.id} is a "${manifest.source.kind}" backup, which this version of cairn cannot dump; restore it instead (cairn restore).`);
  }
  if (entry.damage) {
    throw new CorruptionError(
      `"${entry.name}" in backup ${manifest.id} lost ${entry.damage.missingChunks} chunk(s) (found by cairn repair); its rows cannot be dumped whole. Dump it from another backup (cairn backup list).`,
      { objects: [], collections: [entry.name] },
    );
  }
  return { manifest, entry, format, dump: driver.openDump(manifest, entry, format) };
}

/** The one collection `written` names in the manifest (UsageError otherwise). */
export function findCollection(manifest: BackupManifest, written: string): CollectionEntry {
  const rules = namingFor(manifest.source.kind);
  // A database-wide collection ("(schema)") is named as it is, never qualified ("public.(schema)"):
  // found, prepareDump says that it has no rows; the patterns match tables, as restore --include's do.
  const wide = manifest.collections.find((c) => c.selectable === false && c.name === written.trim());
  if (wide) return wide;
  const names = manifest.collections.filter((c) => c.selectable !== false).map((c) => c.name);
  const found = [...selectNames(names, { include: [written] }, rules, `collection in backup "${manifest.id}"`)];
  if (found.length !== 1) {
    const shown = found.slice(0, 8).map((n) => rules.written(n));
    throw new UsageError(`"${written}" names ${found.length} collections of backup ${manifest.id} (${shown.join(', ')}${found.length > 8 ? ', …' : ''}); dump names one.`);
  }
  return manifest.collections.find((c) => c.name === found[0]) as CollectionEntry;
}

/**
 * The dump's bytes, streamed: the collection's chunks read (its byte ranges of each pack, each chunk checked
 * against its hash) under a shared repository lock, so a prune cannot remove packs meanwhile,
 * and written by the engine as they are decoded. Memory stays at a few packs and one row.
 * Throws CorruptionError for damaged or missing data, CancelledError on abort.
 */
export async function* streamDump(repo: Repository, prepared: PreparedDump, signal?: AbortSignal): AsyncGenerator<Buffer> {
  const { manifest, entry } = prepared;
  const lock = await repo.lock(false, `dump of ${entry.name} from ${manifest.id}`);
  try {
    const lockSignal = signal ? AbortSignal.any([signal, lock.signal]) : lock.signal;
    const reader = readerForIndex(repo.storage, await ChunkIndex.load(repo.storage, { signal: lockSignal }), repo.chunkId);
    // Segments are complete streams of their own whose concatenation is the collection's: the
    // chunk list read in order is one stream.
    yield* prepared.dump(readChunks(reader, entry.chunks, lockSignal));
  } finally {
    await lock.release().catch(() => undefined);
  }
}
