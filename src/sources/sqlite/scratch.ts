/**
 * A restore drill's scratch SQLite file (ScratchTarget): checks run on a connection that may not
 * write (PRAGMA query_only), row counts by `SELECT count(*)`, and drop() deletes the file with
 * its -wal, -shm and -journal files.
 */
import fs from 'node:fs/promises';
import type BetterSqlite3 from 'better-sqlite3';
import { SourceError } from '../../core/errors.js';
import type { CollectionEntry } from '../../core/schemas.js';
import { ROWS_V1 } from '../row-codec.js';
import type { ScratchTarget } from '../types.js';
import { refuseProtectedFile } from './catalog-mark.js';
import { sqliteLocation } from './connection.js';
import Database from './driver.js';

const quoteName = (name: string): string => `"${name.replace(/"/g, '""')}"`;

export class SqliteScratch implements ScratchTarget {
  readonly location: string;

  constructor(private readonly file: string) {
    this.location = sqliteLocation(file);
  }

  /** The file opened for reading only (query_only: a check cannot change it); SourceError when it cannot be. */
  private open(): BetterSqlite3.Database {
    refuseProtectedFile(this.file, 'restore');
    let db: BetterSqlite3.Database;
    try {
      db = new Database(this.file, { fileMustExist: true });
    } catch (err) {
      throw new SourceError(`Cannot open the drill's scratch file ${this.file}: ${(err as Error).message}.`, { cause: err });
    }
    db.pragma('query_only = 1');
    return db;
  }

  private withDb<T>(use: (db: BetterSqlite3.Database) => T): T {
    const db = this.open();
    try {
      return use(db);
    } finally {
      db.close();
    }
  }

  async query(sql: string): Promise<unknown> {
    return this.withDb((db) => {
      try {
        const row = db.prepare(sql).raw(true).get() as unknown[] | undefined;
        return row?.[0];
      } catch (err) {
        throw new SourceError(`The check failed on ${this.location}: ${(err as Error).message}.`, { cause: err });
      }
    });
  }

  async countRows(entry: CollectionEntry): Promise<number | undefined> {
    // Tables with a rows stream; views, the database's own settings (sqlite_database) hold none.
    if (entry.kind !== 'table' || entry.dataFormat !== ROWS_V1) return undefined;
    return this.withDb((db) => Number((db.prepare(`SELECT count(*) FROM ${quoteName(entry.name)}`).raw(true).get() as unknown[])[0]));
  }

  async exists(): Promise<boolean> {
    for (const f of this.files()) {
      if (await fs.lstat(f).then(() => true, (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? false : Promise.reject(err)))) return true;
    }
    return false;
  }

  /** The database file and the files SQLite keeps beside it. */
  private files(): string[] {
    return [this.file, `${this.file}-wal`, `${this.file}-shm`, `${this.file}-journal`];
  }

  async drop(): Promise<void> {
    for (const f of this.files()) await fs.rm(f, { force: true });
  }
}
