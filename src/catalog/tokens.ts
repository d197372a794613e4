import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { UsageError } from '../core/errors.js';
import { catalogDb, type CatalogDb, type CatalogTarget } from './sql.js';
import { REGISTERED_NAME } from './registry.js';

/** admin: everything; operator: backup, restore, cancel, delete; viewer: read only. */
export type Role = 'admin' | 'operator' | 'viewer';
export const ROLES = ['admin', 'operator', 'viewer'] as const satisfies readonly Role[];

export interface TokenInfo {
  id: string;
  name: string;
  role: Role;
  createdAt: string;
  /**
   * A scoped token's registered source names (null: every source). A scoped token (either list
   * set) names registered sources and repositories only, never URLs (server/scope.ts).
   */
  sources: string[] | null;
  /** A scoped token's repository names, "default" for the BACKUP_* one (null: every repository). */
  repositories: string[] | null;
}

/** What a token may be limited to (null or absent: not limited on that side). */
export interface TokenScopeSpec {
  sources?: string[] | null;
  repositories?: string[] | null;
}

interface TokenRow {
  id: string;
  name: string;
  role: Role;
  created_at: string;
  sources: string | null;
  repositories: string | null;
}

const parseList = (v: string | null): string[] | null => (v === null ? null : (JSON.parse(v) as string[]));
const infoOf = (r: TokenRow): TokenInfo => ({ id: r.id, name: r.name, role: r.role, createdAt: r.created_at, sources: parseList(r.sources), repositories: parseList(r.repositories) });
const COLUMNS = 'id, name, role, created_at, sources, repositories';
/** A scope's names: the registered-name form (catalog/registry.ts). */
const SCOPE_NAME = REGISTERED_NAME;

/** Checks a scope list: names only, at least one, no duplicates kept. UsageError naming the bad one. */
function scopeList(list: string[] | null | undefined, what: 'source' | 'repository'): string[] | null {
  if (list === undefined || list === null) return null;
  if (list.length === 0) throw new UsageError(`A token scoped to no ${what === 'source' ? 'source' : 'repository'} could do nothing: name at least one, or leave the ${what === 'source' ? 'sources' : 'repositories'} out (every one).`);
  for (const n of list) {
    if (!SCOPE_NAME.test(n)) throw new UsageError(`Invalid ${what} name "${n.slice(0, 64)}" in a token's scope: scopes name registered ${what === 'source' ? 'sources' : 'repositories'} (lowercase letters, digits, - and _), never URLs${what === 'repository' ? '; "default" is the BACKUP_* repository' : ''}.`);
  }
  return [...new Set(list)].sort();
}

const hashOf = (token: string): Buffer => createHash('sha256').update(token).digest();

/**
 * API tokens, of which only a SHA-256 hash is stored: a token is shown once, when created.
 * Tokens are 256 random bits, so a plain hash (no salt, no slow KDF) cannot be reversed.
 */
export class SqliteTokenStore {
  private readonly db: CatalogDb;

  constructor(target: CatalogTarget) {
    this.db = catalogDb(target);
    // SQLite only: the shared PostgreSQL catalog's tables are pg-migrations.ts's.
    if (this.db.dialect === 'sqlite') {
      this.db.exec(`CREATE TABLE IF NOT EXISTS tokens (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, hash BLOB NOT NULL UNIQUE, created_at TEXT NOT NULL)`);
      // Scopes (JSON arrays of names, NULL: unlimited), added to catalogs made before them.
      const columns = new Set((this.db.prepare('PRAGMA table_info(tokens)').all() as { name: string }[]).map((c) => c.name));
      for (const column of ['sources', 'repositories']) if (!columns.has(column)) this.db.exec(`ALTER TABLE tokens ADD COLUMN ${column} TEXT`);
    }
  }

  /**
   * Creates a token; the returned `token` is the only time the secret exists outside its holder.
   * `scope` limits it to registered sources and/or repositories by name. Errors (UsageError): an
   * unknown role, a scoped admin (an admin administers the whole server: registrations, tokens),
   * an empty list or a name that is not a registered-name form.
   */
  create(role: string, name = '', scope: TokenScopeSpec = {}): TokenInfo & { token: string } {
    if (!ROLES.includes(role as Role)) throw new UsageError(`Unknown role "${role}": choose admin, operator or viewer.`);
    const sources = scopeList(scope.sources, 'source');
    const repositories = scopeList(scope.repositories, 'repository');
    if (role === 'admin' && (sources || repositories)) {
      throw new UsageError('An admin token cannot be scoped: an admin registers sources and repositories and makes tokens, which no scope could limit. Scope an operator or viewer token instead.');
    }
    const id = randomBytes(6).toString('hex');
    const token = `cairn_${id}_${randomBytes(32).toString('base64url')}`;
    const createdAt = new Date().toISOString();
    this.db
      .prepare('INSERT INTO tokens (id, name, role, hash, created_at, sources, repositories) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(id, name, role, hashOf(token), createdAt, sources && JSON.stringify(sources), repositories && JSON.stringify(repositories));
    return { id, name, role: role as Role, createdAt, sources, repositories, token };
  }

  /** The token's identity, or undefined when it is unknown or revoked. */
  authenticate(token: string): TokenInfo | undefined {
    const id = /^cairn_([0-9a-f]{12})_/.exec(token)?.[1];
    if (!id) return undefined;
    const row = this.db.prepare(`SELECT ${COLUMNS}, hash FROM tokens WHERE id = ?`).get(id) as (TokenRow & { hash: Buffer }) | undefined;
    if (!row || !timingSafeEqual(row.hash, hashOf(token))) return undefined;
    return infoOf(row);
  }

  /** A token's identity by id (a session names its token so), or undefined once revoked. */
  get(id: string): TokenInfo | undefined {
    const r = this.db.prepare(`SELECT ${COLUMNS} FROM tokens WHERE id = ?`).get(id) as TokenRow | undefined;
    return r ? infoOf(r) : undefined;
  }

  list(): TokenInfo[] {
    return (this.db.prepare(`SELECT ${COLUMNS} FROM tokens ORDER BY created_at`).all() as TokenRow[]).map(infoOf);
  }

  revoke(id: string): boolean {
    return this.db.prepare('DELETE FROM tokens WHERE id = ?').run(id).changes > 0;
  }

  close(): void {
    this.db.close();
  }
}
