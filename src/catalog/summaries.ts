import type BetterSqlite3 from 'better-sqlite3';
import { openCatalogDatabase } from './database.js';
import type { BackupSummary, CachedSummary, SummaryStore } from '../jobs/backup-summaries.js';

/**
 * The per-backup summary cache of GET /v1/backups and GET /v1/overview, in the catalog's SQLite
 * file: one row per (repository location, backup id), with the manifest object's size and
 * modified time it was read under (jobs/backup-summaries.ts decides when a row may be used).
 * A cache only: deleting every row loses nothing but speed.
 */
export class SqliteSummaryStore implements SummaryStore {
  private readonly db: BetterSqlite3.Database;
  /**
   * The rows of each location as last loaded or written, so a listing does not parse thousands
   * of JSON rows again: only this process writes the table (the data folder's lock keeps a second
   * server out), and every write goes to both.
   */
  private readonly memo = new Map<string, { repositoryId: string; rows: Map<string, CachedSummary> }>();

  constructor(file: string) {
    this.db = openCatalogDatabase(file);
    this.db.exec(`CREATE TABLE IF NOT EXISTS backup_summaries (
      location TEXT NOT NULL, id TEXT NOT NULL, repository_id TEXT NOT NULL,
      size INTEGER NOT NULL, modified_ms INTEGER NOT NULL, read_at_ms INTEGER NOT NULL,
      checksummed INTEGER NOT NULL, summary TEXT, damaged TEXT,
      PRIMARY KEY (location, id))`);
  }

  /** The rows for `location` (the map is the store's own: read it, do not change it). */
  load(location: string, repositoryId: string): Map<string, CachedSummary> {
    const memo = this.memo.get(location);
    if (memo?.repositoryId === repositoryId) return memo.rows;
    // Another repository made at the same location since: nothing of the old one applies.
    this.db.prepare('DELETE FROM backup_summaries WHERE location = ? AND repository_id <> ?').run(location, repositoryId);
    const rows = this.db
      .prepare('SELECT id, size, modified_ms, read_at_ms, checksummed, summary, damaged FROM backup_summaries WHERE location = ?')
      .all(location) as { id: string; size: number; modified_ms: number; read_at_ms: number; checksummed: number; summary: string | null; damaged: string | null }[];
    const out = new Map<string, CachedSummary>();
    for (const r of rows) {
      out.set(r.id, {
        id: r.id,
        size: r.size,
        modifiedMs: r.modified_ms,
        readAtMs: r.read_at_ms,
        checksummed: r.checksummed === 1,
        summary: r.summary === null ? null : (JSON.parse(r.summary) as BackupSummary),
        damaged: r.damaged,
      });
    }
    this.memo.set(location, { repositoryId, rows: out });
    return out;
  }

  save(location: string, repositoryId: string, rows: CachedSummary[]): void {
    const put = this.db.prepare(
      'INSERT OR REPLACE INTO backup_summaries (location, id, repository_id, size, modified_ms, read_at_ms, checksummed, summary, damaged) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    this.db.transaction(() => {
      for (const r of rows) put.run(location, r.id, repositoryId, r.size, r.modifiedMs, r.readAtMs, r.checksummed ? 1 : 0, r.summary === null ? null : JSON.stringify(r.summary), r.damaged);
    })();
    const memo = this.memo.get(location);
    if (memo?.repositoryId === repositoryId) for (const r of rows) memo.rows.set(r.id, r);
    else this.memo.delete(location); // loaded afresh next time
  }

  drop(location: string, ids: string[]): void {
    const del = this.db.prepare('DELETE FROM backup_summaries WHERE location = ? AND id = ?');
    this.db.transaction(() => {
      for (const id of ids) del.run(location, id);
    })();
    const memo = this.memo.get(location);
    for (const id of ids) memo?.rows.delete(id);
  }

  close(): void {
    this.db.close();
  }
}
