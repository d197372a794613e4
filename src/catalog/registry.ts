import { ConflictError, NotFoundError, UsageError } from '../core/errors.js';
import { catalogDb, constraintViolated, type CatalogDb, type CatalogTarget } from './sql.js';

export type RegistrationKind = 'source' | 'repository';

export interface Registration {
  kind: RegistrationKind;
  name: string;
  /** Where it is, safe to show: never a secret. */
  location: string;
  createdAt: string;
  /**
   * A repository registered with a password source (encrypted): which kind, `file` or
   * `command`. The file's path or the command stays in the catalog; the password is never stored.
   */
  passwordSource?: 'file' | 'command';
  /**
   * A source's recovery point objective set by name (`cairn source add --rpo 26h`), in seconds:
   * its newest good backup may be at most this old. Absent: the default from its schedules (jobs/health.ts).
   */
  rpoSeconds?: number;
}

/** Where the password of a registered encrypted repository comes from (never the password itself). */
export type StoredPasswordSource = { file: string } | { command: string };

/** The catalog's JSON of a password source, checked when read back (a hand-edited catalog). */
function parsePasswordSource(text: string | null): StoredPasswordSource | undefined {
  if (text === null) return undefined;
  const v = JSON.parse(text) as { file?: unknown; command?: unknown };
  if (typeof v.file === 'string') return { file: v.file };
  if (typeof v.command === 'string') return { command: v.command };
  return undefined;
}

const sourceKind = (text: string | null): { passwordSource?: 'file' | 'command' } => {
  const s = parsePasswordSource(text);
  return s === undefined ? {} : { passwordSource: 'file' in s ? 'file' : 'command' };
};

const rpoOf = (seconds: number | null | undefined): { rpoSeconds?: number } => (seconds === null || seconds === undefined ? {} : { rpoSeconds: seconds });

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
  private readonly db: CatalogDb;

  constructor(target: CatalogTarget) {
    this.db = catalogDb(target);
    // SQLite only: the shared PostgreSQL catalog's tables are pg-migrations.ts's.
    if (this.db.dialect === 'sqlite') {
      this.db.exec(`CREATE TABLE IF NOT EXISTS registrations (
        kind TEXT NOT NULL, name TEXT NOT NULL, url TEXT NOT NULL, location TEXT NOT NULL, created_at TEXT NOT NULL,
        PRIMARY KEY (kind, name))`);
      // Added for encrypted repositories (issue 18): a catalog made before gets the column, empty.
      const columns = this.db.prepare('PRAGMA table_info(registrations)').all() as { name: string }[];
      if (!columns.some((c) => c.name === 'password_source')) this.db.exec('ALTER TABLE registrations ADD COLUMN password_source TEXT');
      // Added for recovery point objectives (issue 20): null = the default from the source's schedules.
      if (!columns.some((c) => c.name === 'rpo_seconds')) this.db.exec('ALTER TABLE registrations ADD COLUMN rpo_seconds INTEGER');
    }
  }

  /**
   * Sets (seconds, a positive whole number) or clears (null: back to the default from its
   * schedules) a registered source's recovery point objective.
   * @throws NotFoundError when no source has that name; UsageError for a bad number.
   */
  setRpo(name: string, seconds: number | null): Registration {
    if (seconds !== null && (!Number.isInteger(seconds) || seconds <= 0)) throw new UsageError(`Invalid recovery point objective ${seconds}: give a positive whole number of seconds (or a duration such as 26h).`);
    if (this.db.prepare("UPDATE registrations SET rpo_seconds = ? WHERE kind = 'source' AND name = ?").run(seconds, name).changes === 0) {
      throw new NotFoundError(`No source named "${name}" is registered; list them with: cairn source list`);
    }
    return this.list('source').find((r) => r.name === name) as Registration;
  }

  /**
   * Registers `name`. `passwordSource` (repositories only): where an encrypted repository's
   * password is read when it is opened by this name, a file path or a command, kept as such.
   */
  add(kind: RegistrationKind, name: string, url: string, location: string, passwordSource?: StoredPasswordSource, rpoSeconds?: number): Registration {
    validateName(kind, name);
    if (rpoSeconds !== undefined && kind !== 'source') throw new UsageError('A recovery point objective belongs to a source, not a repository.');
    if (rpoSeconds !== undefined && (!Number.isInteger(rpoSeconds) || rpoSeconds <= 0)) throw new UsageError(`Invalid recovery point objective ${rpoSeconds}: give a positive whole number of seconds.`);
    if (passwordSource !== undefined && kind !== 'repository') throw new UsageError('A password source belongs to a repository, not a source.');
    const createdAt = new Date().toISOString();
    const stored = passwordSource === undefined ? null : JSON.stringify(passwordSource);
    try {
      this.db.prepare('INSERT INTO registrations (kind, name, url, location, created_at, password_source, rpo_seconds) VALUES (?, ?, ?, ?, ?, ?, ?)').run(kind, name, this.db.seal(url, `registrations.url:${kind}:${name}`), location, createdAt, stored, rpoSeconds ?? null);
    } catch (err) {
      if (constraintViolated(err) === 'primary') throw new ConflictError(`A ${kind} named "${name}" is registered already; remove it first or choose another name.`);
      throw err;
    }
    return { kind, name, location, createdAt, ...sourceKind(stored), ...rpoOf(rpoSeconds) };
  }

  /** The password source registered with a repository (a file path or a command), or undefined. */
  passwordSource(kind: RegistrationKind, name: string): StoredPasswordSource | undefined {
    const row = this.db.prepare('SELECT password_source FROM registrations WHERE kind = ? AND name = ?').get(kind, name) as { password_source: string | null } | undefined;
    return row === undefined ? undefined : parsePasswordSource(row.password_source);
  }

  /** The URL to connect with (secrets included), or undefined. */
  url(kind: RegistrationKind, name: string): string | undefined {
    const row = this.db.prepare('SELECT url FROM registrations WHERE kind = ? AND name = ?').get(kind, name) as { url: string } | undefined;
    return row === undefined ? undefined : this.db.unseal(row.url, `registrations.url:${kind}:${name}`);
  }

  list(kind: RegistrationKind): Registration[] {
    return (
      this.db.prepare('SELECT name, location, created_at, password_source, rpo_seconds FROM registrations WHERE kind = ? ORDER BY name').all(kind) as { name: string; location: string; created_at: string; password_source: string | null; rpo_seconds: number | null }[]
    ).map((r) => ({ kind, name: r.name, location: r.location, createdAt: r.created_at, ...sourceKind(r.password_source), ...rpoOf(r.rpo_seconds) }));
  }

  /** Every registration of `kind` with its URL (secrets included): for the CLI's `repo list`, never for the API. */
  entries(kind: RegistrationKind): (Registration & { url: string })[] {
    return (
      this.db.prepare('SELECT name, url, location, created_at, password_source FROM registrations WHERE kind = ? ORDER BY name').all(kind) as {
        name: string;
        url: string;
        location: string;
        created_at: string;
        password_source: string | null;
      }[]
    ).map((r) => ({ kind, name: r.name, url: this.db.unseal(r.url, `registrations.url:${kind}:${r.name}`), location: r.location, createdAt: r.created_at, ...sourceKind(r.password_source) }));
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
