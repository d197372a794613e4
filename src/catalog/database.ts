import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { CATALOG_APPLICATION_ID, fileMark, protectFile, SqliteDatabase as Database } from './engines.js';
import { makeDirsSync } from '../core/folders.js';

export { CATALOG_APPLICATION_ID, fileMark, protectFile };

/**
 * The catalog's SQLite file (created with a private folder), in WAL mode so readers never wait,
 * and marked as cairn's catalog (PRAGMA application_id = CATALOG_APPLICATION_ID, "CRNC"): a
 * SQLite backup or restore refuses a file with that mark whatever path led to it (a symbolic or
 * hard link made after the server checked the path). Catalogs made before the mark get it at
 * their next open.
 */
export function openCatalogDatabase(file: string): BetterSqlite3.Database {
  if (file !== ':memory:' && makeDirsSync(path.dirname(file), 0o700) !== undefined) fs.chmodSync(path.dirname(file), 0o700);
  const db = new Database(file);
  // It may hold database passwords (registered sources): readable by its owner only, and so
  // are its -wal and -shm files (whatever the umask, whoever created them first).
  if (file !== ':memory:') fs.chmodSync(file, 0o600);
  db.pragma('busy_timeout = 5000');
  // The mark, written only when missing (a write on every open would make openers wait). A new
  // catalog gets it before WAL mode, straight into the file.
  const marked = Number(db.pragma('application_id', { simple: true })) === CATALOG_APPLICATION_ID;
  if (!marked) db.pragma(`application_id = ${CATALOG_APPLICATION_ID}`);
  db.pragma('journal_mode = WAL');
  // A catalog already in WAL mode that got the mark now has it in its -wal file only: a hard
  // link to the catalog opened under another name reads the main file without that -wal, so the
  // mark goes into the main file at once (checkpoint). Page 1 keeps it from then on.
  if (!marked && file !== ':memory:') db.pragma('wal_checkpoint(TRUNCATE)');
  if (file !== ':memory:') {
    db.prepare('SELECT 1').get();
    for (const extra of [`${file}-wal`, `${file}-shm`]) {
      try {
        fs.chmodSync(extra, 0o600);
      } catch {
        /* not there (yet): SQLite creates them with the database file's mode */
      }
    }
    // Never to be opened by a SQLite source or target of this process (see protectFile).
    for (const f of [file, `${file}-wal`, `${file}-shm`]) protectFile(f);
  }
  return db;
}

/** The server's data folder: $CAIRN_DATA_DIR, else $XDG_DATA_HOME/cairn, else ~/.local/share/cairn. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.CAIRN_DATA_DIR) return path.resolve(env.CAIRN_DATA_DIR);
  const base = env.XDG_DATA_HOME || path.join(os.homedir(), '.local', 'share');
  return path.join(base, 'cairn');
}

/** The catalog file in a data folder (jobs, tokens, registrations, schedules). */
export const catalogFile = (dataDir: string): string => path.join(dataDir, 'catalog.db');
