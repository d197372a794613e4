import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import Database from '../sources/sqlite/driver.js';

/** The catalog's SQLite file (created with a private folder), in WAL mode so readers never wait. */
export function openCatalogDatabase(file: string): BetterSqlite3.Database {
  if (file !== ':memory:' && fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 }) !== undefined) fs.chmodSync(path.dirname(file), 0o700);
  const db = new Database(file);
  // It may hold database passwords (registered sources): readable by its owner only, and so
  // are its -wal and -shm files (whatever the umask, whoever created them first).
  if (file !== ':memory:') fs.chmodSync(file, 0o600);
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 5000');
  if (file !== ':memory:') {
    db.prepare('SELECT 1').get();
    for (const extra of [`${file}-wal`, `${file}-shm`]) {
      try {
        fs.chmodSync(extra, 0o600);
      } catch {
        /* not there (yet): SQLite creates them with the database file's mode */
      }
    }
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
