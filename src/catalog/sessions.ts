/**
 * Console sign-in sessions, in the catalog next to the tokens. A session is made from a token
 * (POST /v1/sessions) and names it by id only: the role is read from the token at each request,
 * so revoking the token ends its sessions at once. Only a SHA-256 of the session id is stored
 * (the id is 256 random bits, as a token's secret, so a plain hash cannot be reversed); the
 * CSRF token is stored as is: it is worth nothing without the session id.
 */
import { createHash, randomBytes } from 'node:crypto';
import { catalogDb, type CatalogDb, type CatalogTarget } from './sql.js';

/** Absolute lifetime: 8 h from sign-in, however active. */
export const SESSION_LIFETIME_SECONDS = 8 * 3600;
/** Idle timeout: 1 h without a request ends it. */
export const SESSION_IDLE_SECONDS = 3600;
/** lastSeen is written at most this often (a write per request would be a write per request). */
const TOUCH_EVERY_MS = 10_000;

export interface SessionStoreOptions {
  /** The clock (tests move it to expire sessions). */
  now?: () => Date;
  lifetimeSeconds?: number;
  idleSeconds?: number;
}

/** A live session: the token it was made from, its CSRF token, its absolute end (ISO). */
export interface SessionRecord {
  tokenId: string;
  csrfToken: string;
  createdAt: string;
  expiresAt: string;
  lastSeen: string;
}

/** What `lookup` found: a live session, one that has ended (expired, idle), or nothing. */
export type SessionLookup = { state: 'live'; session: SessionRecord } | { state: 'expired' } | { state: 'unknown' };

const hashOf = (id: string): Buffer => createHash('sha256').update(id).digest();

export class SqliteSessionStore {
  private readonly db: CatalogDb;
  private readonly now: () => Date;
  /** Milliseconds. */
  readonly lifetimeMs: number;
  readonly idleMs: number;

  constructor(target: CatalogTarget, options: SessionStoreOptions = {}) {
    this.db = catalogDb(target);
    // SQLite only: the shared PostgreSQL catalog's tables are pg-migrations.ts's.
    if (this.db.dialect === 'sqlite') {
      this.db.exec(`CREATE TABLE IF NOT EXISTS sessions (
        hash BLOB PRIMARY KEY, token_id TEXT NOT NULL, csrf TEXT NOT NULL,
        created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, last_seen INTEGER NOT NULL)`);
      this.db.exec('CREATE INDEX IF NOT EXISTS sessions_token ON sessions (token_id)');
    }
    this.now = options.now ?? (() => new Date());
    this.lifetimeMs = (options.lifetimeSeconds ?? SESSION_LIFETIME_SECONDS) * 1000;
    this.idleMs = (options.idleSeconds ?? SESSION_IDLE_SECONDS) * 1000;
  }

  /**
   * A new session for `tokenId` (the token already authenticated by the caller). `id`: the
   * cookie's value, returned only here. Ended sessions of every token are dropped meanwhile.
   */
  create(tokenId: string): { id: string; session: SessionRecord } {
    const now = this.now().getTime();
    this.db.prepare('DELETE FROM sessions WHERE expires_at <= ? OR last_seen <= ?').run(now, now - this.idleMs);
    const id = randomBytes(32).toString('base64url');
    const csrf = randomBytes(32).toString('base64url');
    const expires = now + this.lifetimeMs;
    this.db.prepare('INSERT INTO sessions (hash, token_id, csrf, created_at, expires_at, last_seen) VALUES (?, ?, ?, ?, ?, ?)').run(hashOf(id), tokenId, csrf, now, expires, now);
    return { id, session: record({ token_id: tokenId, csrf, created_at: now, expires_at: expires, last_seen: now }) };
  }

  /**
   * The session a cookie names. Live: its lastSeen slides to now, unless `touch` is false (an
   * open event stream checking it is still valid: a tab left open is not activity). Past its
   * absolute end or idle too long: deleted, and answered `expired`.
   */
  lookup(id: string, { touch = true }: { touch?: boolean } = {}): SessionLookup {
    if (!/^[A-Za-z0-9_-]{43}$/.test(id)) return { state: 'unknown' };
    const hash = hashOf(id);
    const row = this.db.prepare('SELECT token_id, csrf, created_at, expires_at, last_seen FROM sessions WHERE hash = ?').get(hash) as Row | undefined;
    if (!row) return { state: 'unknown' };
    const now = this.now().getTime();
    if (now >= row.expires_at || now - row.last_seen >= this.idleMs) {
      this.db.prepare('DELETE FROM sessions WHERE hash = ?').run(hash);
      return { state: 'expired' };
    }
    if (touch && (now - row.last_seen >= TOUCH_EVERY_MS || now < row.last_seen)) {
      this.db.prepare('UPDATE sessions SET last_seen = ? WHERE hash = ?').run(now, hash);
      row.last_seen = now;
    }
    return { state: 'live', session: record(row) };
  }

  /** Ends the session a cookie names; false when there was none. */
  delete(id: string): boolean {
    return this.db.prepare('DELETE FROM sessions WHERE hash = ?').run(hashOf(id)).changes > 0;
  }

  /** Ends every session of a token (revoked); returns how many. */
  deleteForToken(tokenId: string): number {
    return this.db.prepare('DELETE FROM sessions WHERE token_id = ?').run(tokenId).changes;
  }

  close(): void {
    this.db.close();
  }
}

interface Row {
  token_id: string;
  csrf: string;
  created_at: number;
  expires_at: number;
  last_seen: number;
}

const iso = (ms: number): string => new Date(ms).toISOString();
const record = (r: Row): SessionRecord => ({ tokenId: r.token_id, csrfToken: r.csrf, createdAt: iso(r.created_at), expiresAt: iso(r.expires_at), lastSeen: iso(r.last_seen) });
