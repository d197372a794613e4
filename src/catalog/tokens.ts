import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type BetterSqlite3 from 'better-sqlite3';
import { UsageError } from '../core/errors.js';
import { openCatalogDatabase } from './database.js';

/** admin: everything; operator: backup, restore, cancel, delete; viewer: read only. */
export type Role = 'admin' | 'operator' | 'viewer';
export const ROLES = ['admin', 'operator', 'viewer'] as const satisfies readonly Role[];

export interface TokenInfo {
  id: string;
  name: string;
  role: Role;
  createdAt: string;
}

const hashOf = (token: string): Buffer => createHash('sha256').update(token).digest();

/**
 * API tokens, of which only a SHA-256 hash is stored: a token is shown once, when created.
 * Tokens are 256 random bits, so a plain hash (no salt, no slow KDF) cannot be reversed.
 */
export class SqliteTokenStore {
  private readonly db: BetterSqlite3.Database;

  constructor(file: string) {
    this.db = openCatalogDatabase(file);
    this.db.exec(`CREATE TABLE IF NOT EXISTS tokens (
      id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, hash BLOB NOT NULL UNIQUE, created_at TEXT NOT NULL)`);
  }

  /** Creates a token; the returned `token` is the only time the secret exists outside its holder. */
  create(role: string, name = ''): TokenInfo & { token: string } {
    if (!ROLES.includes(role as Role)) throw new UsageError(`Unknown role "${role}": choose admin, operator or viewer.`);
    const id = randomBytes(6).toString('hex');
    const token = `cairn_${id}_${randomBytes(32).toString('base64url')}`;
    const createdAt = new Date().toISOString();
    this.db.prepare('INSERT INTO tokens (id, name, role, hash, created_at) VALUES (?, ?, ?, ?, ?)').run(id, name, role, hashOf(token), createdAt);
    return { id, name, role: role as Role, createdAt, token };
  }

  /** The token's identity, or undefined when it is unknown or revoked. */
  authenticate(token: string): TokenInfo | undefined {
    const id = /^cairn_([0-9a-f]{12})_/.exec(token)?.[1];
    if (!id) return undefined;
    const row = this.db.prepare('SELECT id, name, role, hash, created_at FROM tokens WHERE id = ?').get(id) as
      | { id: string; name: string; role: Role; hash: Buffer; created_at: string }
      | undefined;
    if (!row || !timingSafeEqual(row.hash, hashOf(token))) return undefined;
    return { id: row.id, name: row.name, role: row.role, createdAt: row.created_at };
  }

  /** A token's identity by id (a session names its token so), or undefined once revoked. */
  get(id: string): TokenInfo | undefined {
    const r = this.db.prepare('SELECT id, name, role, created_at FROM tokens WHERE id = ?').get(id) as { id: string; name: string; role: Role; created_at: string } | undefined;
    return r ? { id: r.id, name: r.name, role: r.role, createdAt: r.created_at } : undefined;
  }

  list(): TokenInfo[] {
    return (this.db.prepare('SELECT id, name, role, created_at FROM tokens ORDER BY created_at').all() as { id: string; name: string; role: Role; created_at: string }[]).map(
      (r) => ({ id: r.id, name: r.name, role: r.role, createdAt: r.created_at }),
    );
  }

  revoke(id: string): boolean {
    return this.db.prepare('DELETE FROM tokens WHERE id = ?').run(id).changes > 0;
  }

  close(): void {
    this.db.close();
  }
}
