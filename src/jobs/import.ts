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
import { withoutRepairAdvice } from '../storage/archive/advice.js';
import { ArchiveStorage } from '../storage/archive/reader.js';
import { runCopy, runSync } from './copy.js';

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
  /**
   * Return a result that left conflicts out instead of throwing importConflicts' error: the CLI
   * prints the report first, then ends with that error (as cairn sync does).
   */
  deferConflicts?: boolean;
  /** The archive as the user named it in messages (default: its path; "stdin" for `import -`). */
  displayName?: string;
}

export interface ImportResult {
  file: string;
  to: string;
  /** Each backup imported: its id in the archive, its id in `to`, what was sent. */
  imported: { backupId: string; importedAs: string; chunksCopied: number; bytesCopied: number; chunksSkipped: number }[];
  /** Backups `to` already held with the same content (as cairn sync skips them): nothing sent. */
  skipped: string[];
  /** Backups `to` holds under the same id with other content (or cannot read): left alone. */
  conflicts: { backupId: string; message: string }[];
  chunksCopied: number;
  bytesCopied: number;
}

/**
 * Imports every backup of an archive (see the module comment).
 * Idempotent as cairn sync: a backup `to` already holds with the same content is skipped; one
 * it holds under the same id with other content is a conflict, left alone, while the others
 * are imported.
 * @throws CorruptionError (damaged or hostile archive; nothing added), UsageError (another
 *   archive format version, --as with several backups), ConflictError (importConflicts: after
 *   the others were imported; naming --as for an archive of one backup; with --as, an id that
 *   exists, nothing added), NotFoundError, StorageError, CancelledError.
 */
export async function runImport(options: ImportOptions): Promise<ImportResult> {
  const { to, signal } = options;
  const storage = new ArchiveStorage(options.file, options.displayName);
  const file = storage.location;
  const report = (p: Partial<ImportProgress> & Pick<ImportProgress, 'phase'>): void =>
    options.onProgress?.({ backupsDone: 0, backupsTotal: 0, bytesCopied: 0, bytesTotal: 0, ...p });
  report({ phase: 'checking' });
  const { head } = await storage.contents();
  await storage.verifyChecksum(signal);
  const from = await (options.openArchive ?? ((s: ArchiveStorage) => Repository.open(s)))(storage);
  const all = await from.readAllManifests(signal);
  if (all.damaged.length > 0) {
    // Repair cannot write an archive: the fix is a new export.
    throw new CorruptionError(`The archive ${file} holds an unreadable manifest (${all.damaged[0]?.id}: ${withoutRepairAdvice(all.damaged[0]?.message ?? '')}) Nothing was imported. Export the backups again from the repository they came from.`, {
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
  if (options.asId !== undefined) {
    // --as names a new id: one that exists is refused before anything is sent, whatever it holds.
    if (await to.hasBackup(options.asId)) {
      throw new ConflictError(`A backup with id "${options.asId}" already exists in ${to.location}. Nothing was imported. Give --as another id, or delete the existing one first.`);
    }
    const id = ids[0] as string;
    const r = await runCopy({
      from,
      to,
      backupId: id,
      asId: options.asId,
      ...(signal ? { signal } : {}),
      onProgress: (p) => report({ phase: p.phase, backupsDone: p.phase === 'done' ? 1 : 0, backupsTotal: 1, bytesCopied: p.bytesCopied, bytesTotal: p.bytesTotal }),
    });
    return { file, to: to.location, imported: [{ backupId: id, importedAs: r.backupId, chunksCopied: r.chunksCopied, bytesCopied: r.bytesCopied, chunksSkipped: r.chunksSkipped }], skipped: [], conflicts: [], chunksCopied: r.chunksCopied, bytesCopied: r.bytesCopied };
  }
  // As cairn sync: a backup the target holds with the same content is skipped; one it holds
  // under the same id with other content is a conflict, left alone; the others are imported.
  const r = await runSync({ from, to, ...(signal ? { signal } : {}), onProgress: (p) => report({ ...p }) });
  const result: ImportResult = {
    file,
    to: to.location,
    imported: r.copied.map((c) => ({ ...c, importedAs: c.backupId })),
    skipped: r.skipped,
    conflicts: [...r.conflicts, ...r.failed],
    chunksCopied: r.chunksCopied,
    bytesCopied: r.bytesCopied,
  };
  if (r.failed.length > 0) {
    // The archive was checked whole: a backup that fails to copy is damage the checks missed.
    throw new CorruptionError(`${summary(result, ids.length)} ${r.failed.map((f) => `${f.backupId}: ${f.message}`).join('; ')}. Export it again from its repository.`, {
      objects: r.failed.map((f) => `backups/${f.backupId}`),
    });
  }
  if (!options.deferConflicts) {
    const problem = importConflicts(result);
    if (problem) throw problem;
  }
  return result;
}

function summary(r: ImportResult, total: number): string {
  return `Imported ${r.imported.length} of ${total} backup(s) into ${r.to}, skipped ${r.skipped.length} already there (identical), left out ${r.conflicts.length}:`;
}

/**
 * The error an import ends with when it left backups out (ConflictError, exit 4), naming them and
 * what to do; undefined when it left none out.
 */
export function importConflicts(r: ImportResult): ConflictError | undefined {
  if (r.conflicts.length === 0) return undefined;
  const from = r.file;
  const total = r.imported.length + r.skipped.length + r.conflicts.length;
  if (total === 1) {
    const c = r.conflicts[0] as { backupId: string };
    return new ConflictError(
      `A backup with id "${c.backupId}" but other content already exists in ${r.to}. Nothing was imported from ${from}. Import it under another id with --as <new id>, or delete the existing one first.`,
    );
  }
  const names = r.conflicts.map((c) => `${c.backupId} (${c.message})`);
  return new ConflictError(
    `${summary(r, total)} ${names.slice(0, 10).join('; ')}${names.length > 10 ? `; and ${names.length - 10} more` : ''}. ` +
      'Each was left alone: delete the one in the repository to import the archive\'s, or export that backup into an archive of its own and import it with --as <new id>.',
  );
}
