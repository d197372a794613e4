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

/** A registered name: 1–63 lowercase letters, digits, "-" or "_", starting with a letter or digit. */
export const REGISTERED_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** The repository name that stands for the server's BACKUP_* repository: never registered. */
export const RESERVED_REPOSITORY_NAME = 'default';

/** Throws UsageError unless `name` may be registered as a `kind`. */
export function validateName(kind: RegistrationKind, name: string): string {
  if (!REGISTERED_NAME.test(name)) throw new UsageError(`Invalid ${kind} name "${name}": use lowercase letters, digits, - and _ (up to 63), starting with a letter or digit.`);
  if (kind === 'repository' && name === RESERVED_REPOSITORY_NAME) {
    throw new UsageError(`The repository name "${RESERVED_REPOSITORY_NAME}" is reserved for the server's BACKUP_* repository: choose another.`);
  }
  return name;
}

/**
 * The one registry of names: sources and repositories registered by name, in the catalog of a
 * data folder. The server resolves request names here (POST /v1/sources, /v1/repositories), and
 * so does the CLI (`cairn source add`, `cairn repo add`, `--repo <name>`: src/config/registry.ts).
 * The URL (which for a source may carry a password) stays in the catalog file (mode 0600) and is
 * handed only to the code that connects; server listings and job records show the location.
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
    validateName(kind, name);
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

  /** Every registration of `kind` with its URL (secrets included): for the CLI's `repo list`, never for the API. */
  entries(kind: RegistrationKind): (Registration & { url: string })[] {
    return (this.db.prepare('SELECT name, url, location, created_at FROM registrations WHERE kind = ? ORDER BY name').all(kind) as { name: string; url: string; location: string; created_at: string }[]).map(
      (r) => ({ kind, name: r.name, url: r.url, location: r.location, createdAt: r.created_at }),
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
