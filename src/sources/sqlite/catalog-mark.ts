/**
 * The mark of cairn's own server catalog (`<data-dir>/catalog.db`: tokens, registered sources
 * with their passwords, jobs, schedules), and the check every SQLite source and target makes on
 * the file it actually opened.
 *
 * The server refuses paths in its data folder when a request arrives (src/server/access.ts),
 * but a path is only a name: a symbolic link (of the file or of a parent folder) swapped after
 * that check, or a hard link made after it, leads the job to the catalog all the same. So the
 * catalog marks itself with `PRAGMA application_id = 0x43524E43` ("CRNC" in ASCII), set every
 * time the catalog code opens or creates it, and a SQLite backup or restore reads the mark on
 * the connection it reads or writes through (inside its read or write transaction, before it
 * reads a row or changes anything) and refuses a file that carries it, whatever path led there.
 */
import fs from 'node:fs';
import type BetterSqlite3 from 'better-sqlite3';
import { CairnError } from '../../core/errors.js';

/** `PRAGMA application_id` of cairn's server catalog: "CRNC" as a big-endian 32-bit integer. */
export const CATALOG_APPLICATION_ID = 0x43524e43;

/** A SQLite backup or restore was pointed (by whatever path) at cairn's server catalog. */
export class ServerCatalogError extends CairnError {
  constructor(file: string, action: 'backup' | 'restore') {
    super(
      'USAGE',
      `${file} is cairn's server catalog (PRAGMA application_id 0x43524E43), which holds API tokens and registered passwords: ` +
        (action === 'backup'
          ? 'it cannot be backed up through cairn. '
          : 'cairn never restores into it; nothing was changed. ') +
        'If you need a copy of it, stop the server and copy its data folder with file tools.',
    );
    this.name = 'ServerCatalogError';
  }
}

/** The main database's application_id on this connection (inside the caller's transaction). */
export function applicationId(db: BetterSqlite3.Database): number {
  const v = db.prepare('PRAGMA main.application_id').pluck().safeIntegers(false).get() as number | undefined;
  return Number(v ?? 0);
}

/** Throws ServerCatalogError when the connection's main database is cairn's server catalog. */
export function refuseServerCatalog(db: BetterSqlite3.Database, file: string, action: 'backup' | 'restore'): void {
  if (applicationId(db) === CATALOG_APPLICATION_ID) throw new ServerCatalogError(file, action);
}

/**
 * The application_id in a SQLite file's header (bytes 68–71, big-endian) as the main file holds
 * it; undefined when unreadable. For tests and tools: it opens the file, so never call it on a
 * file this process holds open with SQLite (see protectFile).
 */
export function fileMark(file: string): number | undefined {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const header = Buffer.alloc(100);
    if (fs.readSync(fd, header, 0, 100, 0) < 100) return undefined;
    return header.readUInt32BE(68);
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------
// The files this process keeps open as its catalog, by identity (device, inode).
//
// The mark is read through SQLite, after the open; but merely opening and closing a file the
// process already holds releases every POSIX lock the process has on it (fcntl semantics), so a
// link to the catalog or its -wal/-shm, opened by a backup and closed again, would strip the
// server's own connections of their locks, and SQLite may then delete a -wal still in use. So
// before any open, the path is stat()ed (no descriptor) and refused when it is one of these
// files. The mark stays the last word for what this check cannot see (a file swapped between
// the stat and the open).

/** Identity → the path it was recorded under (an identity whose path is gone may be reused). */
const protectedFiles = new Map<string, string>();

function identity(file: string): string | undefined {
  try {
    const st = fs.statSync(file);
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

/** Records `file` (if it exists) as one never to be opened as a source or target. */
export function protectFile(file: string): void {
  const id = identity(file);
  if (id !== undefined) protectedFiles.set(id, file);
}

/** Throws ServerCatalogError when `file` (followed through links, not opened) is a protected file. */
export function refuseProtectedFile(file: string, action: 'backup' | 'restore'): void {
  if (isProtected(file)) throw new ServerCatalogError(file, action);
}

/**
 * Whether `file` is a protected file: same identity as one recorded, and that one still there
 * under its recorded path (a -wal removed when its database closed frees its inode for reuse).
 */
function isProtected(file: string): boolean {
  if (protectedFiles.size === 0) return false;
  const id = identity(file);
  const recorded = id === undefined ? undefined : protectedFiles.get(id);
  if (id === undefined || recorded === undefined) return false;
  if (identity(recorded) === id) return true;
  protectedFiles.delete(id);
  return false;
}

/**
 * For an open that failed: the catalog's refusal when the file is a protected one (the catalog
 * open in this very process, reached by a hard link under another name, fails to open with
 * "disk I/O error"), else the error as it was. Decided by stat(), never by opening the file.
 */
export function explainOpenFailure(err: unknown, file: string, action: 'backup' | 'restore'): unknown {
  if (err instanceof ServerCatalogError) return err;
  return isProtected(file) ? new ServerCatalogError(file, action) : err;
}
