/**
 * `cairn import`: the backups of a `.cairn` archive added to a repository. The whole archive is
 * checked first (its structure, then the SHA-256 of every byte against its end member), so a
 * truncated, damaged or hostile archive is refused before anything is written; then the backups
 * are copied from the archive (a read-only repository) as `cairn copy` / `cairn sync` copy, so
 * only the chunks the target lacks are sent and each backup is verified before it appears.
 */
import { ConflictError, CorruptionError, UsageError } from '../core/errors.js';
import { validateBackupId } from '../core/ids.js';
import { Repository } from '../repo/repository.js';
import { ArchiveStorage } from '../storage/archive/reader.js';
import { runCopy, runSync, syncProblems } from './copy.js';

export interface ImportProgress {
  phase: 'checking' | 'transferring' | 'finalizing' | 'done';
  backupsDone: number;
  backupsTotal: number;
  /** Stored bytes sent so far, and the estimate of all to send. */
  bytesCopied: number;
  bytesTotal: number;
}

export interface ImportOptions {
  /** The archive file's path. */
  file: string;
  to: Repository;
  /** The id the one backup of the archive gets in `to` (refused for an archive of several). */
  asId?: string;
  /**
   * Opens the archive's repository (an encrypted archive needs its password); default
   * Repository.open on the archive.
   */
  openArchive?: (storage: ArchiveStorage) => Promise<Repository>;
  signal?: AbortSignal;
  onProgress?: (progress: ImportProgress) => void;
}

export interface ImportResult {
  file: string;
  to: string;
  /** Each backup imported: its id in the archive, its id in `to`, what was sent. */
  imported: { backupId: string; importedAs: string; chunksCopied: number; bytesCopied: number; chunksSkipped: number }[];
  chunksCopied: number;
  bytesCopied: number;
}

/**
 * Imports every backup of an archive (see the module comment).
 * @throws CorruptionError (damaged or hostile archive; nothing added), UsageError (another
 *   archive format version, --as with several backups), ConflictError naming --as when `to`
 *   holds a backup with the same id (nothing added), NotFoundError, StorageError, CancelledError.
 */
export async function runImport(options: ImportOptions): Promise<ImportResult> {
  const { to, signal } = options;
  const storage = new ArchiveStorage(options.file);
  const file = storage.location;
  const report = (p: Partial<ImportProgress> & Pick<ImportProgress, 'phase'>): void =>
    options.onProgress?.({ backupsDone: 0, backupsTotal: 0, bytesCopied: 0, bytesTotal: 0, ...p });
  report({ phase: 'checking' });
  const { head } = await storage.contents();
  await storage.verifyChecksum(signal);
  const from = await (options.openArchive ?? ((s: ArchiveStorage) => Repository.open(s)))(storage);
  const all = await from.readAllManifests(signal);
  if (all.damaged.length > 0) {
    throw new CorruptionError(`The archive ${file} holds an unreadable manifest (${all.damaged[0]?.id}: ${all.damaged[0]?.message}). Nothing was imported.`, {
      objects: all.damaged.map((d) => `backups/${d.id}`),
    });
  }
  const ids = all.manifests.map((m) => m.id);
  const listed = [...head.backups].sort();
  if (ids.length === 0 || [...ids].sort().join(',') !== listed.join(',')) {
    throw new CorruptionError(`The archive ${file} lists backups ${listed.join(', ')} but holds ${ids.length ? ids.join(', ') : 'none'}. Nothing was imported.`, { objects: [file] });
  }
  if (options.asId !== undefined) {
    validateBackupId(options.asId);
    if (ids.length !== 1) {
      throw new UsageError(`--as renames the one backup of an archive; ${file} holds ${ids.length} (${ids.join(', ')}). Import them under their own ids (leave out --as).`);
    }
  }
  // An id that exists is refused before anything is sent (as incus import refuses a name that exists).
  for (const id of ids) {
    const targetId = options.asId ?? id;
    if (await to.hasBackup(targetId)) {
      throw new ConflictError(
        `A backup with id "${targetId}" already exists in ${to.location}. Nothing was imported. ` +
          (ids.length === 1 ? `Import it under another id with --as <new id>, or delete the existing one first.` : `--as takes an archive of one backup: delete the existing one first, or export the others into their own archives.`),
      );
    }
  }
  if (ids.length === 1) {
    const id = ids[0] as string;
    const r = await runCopy({
      from,
      to,
      backupId: id,
      ...(options.asId !== undefined ? { asId: options.asId } : {}),
      ...(signal ? { signal } : {}),
      onProgress: (p) => report({ phase: p.phase, backupsDone: p.phase === 'done' ? 1 : 0, backupsTotal: 1, bytesCopied: p.bytesCopied, bytesTotal: p.bytesTotal }),
    });
    return { file, to: to.location, imported: [{ backupId: id, importedAs: r.backupId, chunksCopied: r.chunksCopied, bytesCopied: r.bytesCopied, chunksSkipped: r.chunksSkipped }], chunksCopied: r.chunksCopied, bytesCopied: r.bytesCopied };
  }
  const r = await runSync({ from, to, ...(signal ? { signal } : {}), onProgress: (p) => report({ ...p }) });
  const problem = syncProblems(r);
  if (problem) throw problem;
  return { file, to: to.location, imported: r.copied.map((c) => ({ ...c, importedAs: c.backupId })), chunksCopied: r.chunksCopied, bytesCopied: r.bytesCopied };
}
