/**
 * `cairn export --format sql`: a backup written out as one plain SQL script that the engine's own
 * client loads with no cairn installed (EngineDriver.openSqlScript spells each engine's SQL).
 *
 * The collections are chosen exactly as a restore chooses them (restore.ts restoreSelection:
 * --include / --exclude, --rename, the database-wide entries always). A shared lock is held while
 * the script is produced, so that a prune cannot remove packs under it; the data is read chunk by
 * chunk (each checked against its id), so memory stays at a few packs whatever the backup's size.
 */
import { CorruptionError, UsageError } from '../core/errors.js';
import type { BackupManifest, CollectionEntry } from '../core/schemas.js';
import type { Selection } from '../core/selection.js';
import { ChunkIndex } from '../repo/chunk-index.js';
import { readChunks, readerForIndex } from '../repo/chunk-reader.js';
import { lockedSignal } from '../repo/locked.js';
import type { Repository } from '../repo/repository.js';
import { driverForKind } from '../sources/registry.js';
import { restoreSelection } from './restore.js';

export interface SqlExportOptions {
  repo: Repository;
  backupId: string;
  /** --include / --exclude, as restore takes them. */
  selection?: Selection;
  /** --rename old=new, as restore takes them. */
  renames?: Map<string, string>;
  /** --no-owner / --no-privileges (SqlScriptContext). */
  noOwner?: boolean;
  noPrivileges?: boolean;
  /** Each warning of the script (SqlScriptContext.onWarning): written in it as a comment too. */
  onWarning?: (message: string) => void;
  signal?: AbortSignal;
}

/** Chunks read ahead of the one being written (as a restore reads). */
const READ_AHEAD = 4;

/**
 * The script's bytes, streamed (plain, uncompressed: the caller compresses for .gz / .zst).
 * Nothing is read before the consumer asks for the first piece; the lock is released when the
 * generator finishes, fails or is closed early (`return()`, e.g. the output went away).
 * @throws NotFoundError (backup), UsageError (selection, an engine without SQL export),
 *   CorruptionError (damaged data), CancelledError.
 */
export async function* sqlExport(options: SqlExportOptions): AsyncGenerator<Buffer> {
  const { repo } = options;
  const manifest = await repo.readManifest(options.backupId, options.signal);
  const driver = driverForKind(manifest.source.kind);
  if (driver === undefined) {
    throw new UsageError(`Backup "${manifest.id}" was made from a "${manifest.source.kind}" database, which this cairn does not know; export it with a cairn that does.`);
  }
  if (driver.openSqlScript === undefined) {
    throw new UsageError(
      `Backup "${manifest.id}" is a ${driver.kind} backup, which cannot be exported as SQL yet; export it as a cairn archive (--format cairn) or restore it with cairn restore.`,
    );
  }
  const { entries } = restoreSelection(manifest, options.selection, options.renames);
  const lock = await repo.lock(false, `export of ${manifest.id}`);
  try {
    // Aborts on the caller's cancel, or when the lock is lost (a prune could remove packs).
    const signal = lockedSignal(lock, options.signal);
    const reader = readerForIndex(repo.storage, await ChunkIndex.load(repo.storage, signal ? { signal } : {}), repo.chunkId, READ_AHEAD);
    for (const { entry } of entries) reader.want(entry.chunks);
    const script = driver.openSqlScript({
      manifest,
      entries,
      read: (entry) => annotateDamage(readChunks(reader, entry.chunks, signal), manifest, entry),
      ...(options.noOwner ? { noOwner: true } : {}),
      ...(options.noPrivileges ? { noPrivileges: true } : {}),
      ...(options.onWarning ? { onWarning: options.onWarning } : {}),
      ...(signal ? { signal } : {}),
    });
    yield* script;
  } finally {
    await lock.release().catch(() => undefined);
  }
}

/** Turns a damaged-chunk error into one that names the backup and the collection it breaks. */
async function* annotateDamage(chunks: AsyncIterable<Buffer>, manifest: BackupManifest, entry: CollectionEntry): AsyncGenerator<Buffer> {
  try {
    yield* chunks;
  } catch (err) {
    if (!(err instanceof CorruptionError)) throw err;
    throw new CorruptionError(
      `Export of backup "${manifest.id}" stopped at collection "${entry.name}"; the script written so far is incomplete: ${err.message} ` +
        `Run \`cairn verify ${manifest.id} --read-data\` for a full report, or leave the collection out with --exclude.`,
      { objects: err.objects, collections: [entry.name] },
    );
  }
}
