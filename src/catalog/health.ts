import type { BreachStore } from '../jobs/health.js';
import { catalogDb, type CatalogDb, type CatalogTarget } from './sql.js';

/**
 * Open recovery-point-objective breaches (jobs/health.ts HealthMonitor), one row per source's
 * database key, so that a breach is reported once, also across restarts of the server.
 */
export class SqliteBreachStore implements BreachStore {
  private readonly db: CatalogDb;

  constructor(target: CatalogTarget) {
    this.db = catalogDb(target);
    // SQLite only: the shared PostgreSQL catalog's tables are pg-migrations.ts's.
    if (this.db.dialect === 'sqlite') {
      this.db.exec('CREATE TABLE IF NOT EXISTS rpo_breaches (key TEXT PRIMARY KEY, since TEXT NOT NULL)');
    }
  }

  open(key: string, since: string): boolean {
    return this.db.prepare('INSERT OR IGNORE INTO rpo_breaches (key, since) VALUES (?, ?)').run(key, since).changes === 1;
  }

  clear(key: string): boolean {
    return this.db.prepare('DELETE FROM rpo_breaches WHERE key = ?').run(key).changes === 1;
  }

  openKeys(): string[] {
    return (this.db.prepare('SELECT key FROM rpo_breaches ORDER BY key').all() as { key: string }[]).map((r) => r.key);
  }

  close(): void {
    this.db.close();
  }
}
