/**
 * Reading a WITHOUT ROWID table whose primary key uses a collation only its application
 * registers (app-names.ts). SQLite cannot open such a table's b-tree without the collation: every
 * SELECT fails ("no query solution", or "no such collation sequence" with ORDER BY), and
 * better-sqlite3 cannot register a collation. So the backup reads those tables from a private
 * copy of the snapshot:
 * - the copy is made with SQLite's backup API from the snapshot's own connection, inside its
 *   read transaction, so it holds exactly the snapshot's pages (not what was committed since);
 * - in the copy, the definitions name BINARY instead of the application collations (and
 *   char() instead of application functions) — only so that SQLite opens the tables; the rows
 *   are read as stored (in the source collation's order), and the backup records the
 *   definitions as the source has them;
 * - it lives in a private folder (0700) under the system's temporary folder, made once per
 *   snapshot on the first such table and removed when the snapshot closes. It needs as much free
 *   space as the database file; rows still stream from it, never held in memory.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import Database from './driver.js';
import { SourceError } from '../../core/errors.js';
import { appCollations, knownFunctions, withFallbacks } from './app-names.js';
import type { SqliteTableDefinition } from './sql.js';

/** Whether SQLite alone cannot read the table's rows (see above). */
export function needsCollatedCopy(def: SqliteTableDefinition): boolean {
  return def.withoutRowid && appCollations(def.sql).length > 0;
}

/** A readable copy of a snapshot; close() removes it. */
export class CollatedCopy {
  private constructor(
    readonly db: BetterSqlite3.Database,
    private readonly dir: string,
  ) {}

  /** Copies the snapshot held open on `source` (read-only, in its read transaction). */
  static async make(source: BetterSqlite3.Database): Promise<CollatedCopy> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-sqlite-read-'));
    const file = path.join(dir, 'snapshot.db');
    try {
      await source.backup(file);
      const w = new Database(file);
      try {
        w.unsafeMode(true);
        w.pragma('writable_schema = ON');
        const rows = w.prepare("SELECT rowid AS id, sql FROM main.sqlite_schema WHERE sql IS NOT NULL AND type IN ('table', 'index')").all() as { id: number; sql: string }[];
        const update = w.prepare('UPDATE main.sqlite_schema SET sql = ? WHERE rowid = ?');
        for (const r of rows) {
          const sql = withFallbacks(r.sql, knownFunctions());
          if (sql !== r.sql) update.run(sql, r.id);
        }
        w.pragma('writable_schema = OFF');
      } finally {
        w.close();
      }
      // A new connection reads the edited schema.
      const db = new Database(file, { readonly: true, fileMustExist: true });
      db.defaultSafeIntegers(true);
      db.unsafeMode(true);
      db.exec('BEGIN');
      return new CollatedCopy(db, dir);
    } catch (err) {
      fs.rmSync(dir, { recursive: true, force: true });
      throw new SourceError(
        `Cannot back up a WITHOUT ROWID table whose primary key uses an application collation: the private copy it is read from (in ${os.tmpdir()}) could not be made (${(err as Error).message}). Free space there (as much as the database file), or set TMPDIR to a folder with room.`,
      );
    }
  }

  close(): void {
    try {
      if (this.db.open) {
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
        this.db.close();
      }
    } finally {
      fs.rmSync(this.dir, { recursive: true, force: true });
    }
  }
}
