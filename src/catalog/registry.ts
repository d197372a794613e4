import type BetterSqlite3 from 'better-sqlite3';
import { ConflictError, NotFoundError, UsageError } from '../core/errors.js';
import { openCatalogDatabase } from './database.js';

export type RegistrationKind = 'source' | 'repository';

export interface Registration {
  kind: RegistrationKind;
  name: string;
  /** Where it is, safe to show: never a secret. */
  location: string;
  createdAt: string;
}

const NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/**
 * Sources and repositories registered on the server by name. The URL (which for a source may
 * carry a password) stays in the catalog file (mode 0600) and is handed only to the code that
 * connects; listings and job records show the location.
 */
export class SqliteRegistry {
  private readonly db: BetterSqlite3.Database;

  constructor(file: string) {
    this.db = openCatalogDatabase(file);
    this.db.exec(`CREATE TABLE IF NOT EXISTS registrations (
      kind TEXT NOT NULL, name TEXT NOT NULL, url TEXT NOT NULL, location TEXT NOT NULL, created_at TEXT NOT NULL,
      PRIMARY KEY (kind, name))`);
  }

  add(kind: RegistrationKind, name: string, url: string, location: string): Registration {
    if (!NAME.test(name)) throw new UsageError(`Invalid ${kind} name "${name}": use lowercase letters, digits, - and _ (up to 63), starting with a letter or digit.`);
    const createdAt = new Date().toISOString();
    try {
      this.db.prepare('INSERT INTO registrations (kind, name, url, location, created_at) VALUES (?, ?, ?, ?, ?)').run(kind, name, url, location, createdAt);
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw new ConflictError(`A ${kind} named "${name}" is registered already; remove it first or choose another name.`);
      throw err;
    }
    return { kind, name, location, createdAt };
  }

  /** The URL to connect with (secrets included), or undefined. */
  url(kind: RegistrationKind, name: string): string | undefined {
    return (this.db.prepare('SELECT url FROM registrations WHERE kind = ? AND name = ?').get(kind, name) as { url: string } | undefined)?.url;
  }

  list(kind: RegistrationKind): Registration[] {
    return (this.db.prepare('SELECT name, location, created_at FROM registrations WHERE kind = ? ORDER BY name').all(kind) as { name: string; location: string; created_at: string }[]).map(
      (r) => ({ kind, name: r.name, location: r.location, createdAt: r.created_at }),
    );
  }

  remove(kind: RegistrationKind, name: string): void {
    if (this.db.prepare('DELETE FROM registrations WHERE kind = ? AND name = ?').run(kind, name).changes === 0) {
      throw new NotFoundError(`No ${kind} named "${name}" is registered.`);
    }
  }

  close(): void {
    this.db.close();
  }
}
