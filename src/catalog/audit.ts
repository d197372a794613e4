/**
 * The audit log: one row per mutating API request (refused ones too) and per job end, in the
 * data folder's catalog. Append-only, enforced by the database itself: triggers abort every
 * UPDATE and DELETE on audit_log, so neither a bug nor a request can rewrite history (only
 * someone with the catalog file in hand can, and the file is its owner's only, 0600).
 * Retention: none; rows are small (no bodies) and kept until an operator archives the catalog.
 * Never a secret in a row: callers pass names, locations and redacted URLs only.
 */
import { catalogDb, type CatalogDb, type CatalogTarget } from './sql.js';

/** How a request authenticated: a bearer token, a console session cookie; `server`: the server itself (its scheduler); `none`: not authenticated. */
export type AuditVia = 'token' | 'session' | 'server' | 'none';

/** One audit record. Times are ISO 8601 UTC. */
export interface AuditEntry {
  id: number;
  at: string;
  /** `request` (an API call) or `job` (a job that ended). */
  type: 'request' | 'job';
  actorTokenId: string | null;
  /** The token's label, "scheduler" for what the server started by itself, null when unknown. */
  actorName: string | null;
  actorRole: string | null;
  via: AuditVia;
  /** The caller's address (the socket's peer; X-Forwarded-For only when the server trusts a proxy). */
  address: string | null;
  /** HTTP method, or JOB for a job's end. */
  method: string;
  /** The path without its query (job entries: /v1/jobs/<id>). */
  path: string;
  /** The route table id (createBackup…), or jobEnded; null for a path no route serves. */
  route: string | null;
  /** What was done, in words ("create backup", "backup job ended"). */
  action: string;
  /** What it named: `key=value` pairs (names, locations, redacted URLs), or null. */
  target: string | null;
  /** The HTTP status answered; null for job entries. */
  status: number | null;
  /** ok, an error code (FORBIDDEN, NOT_FOUND…) for a refused request; SUCCESS / FAILED / CANCELED for a job. */
  result: string;
  jobId: string | null;
}

export type NewAuditEntry = Omit<AuditEntry, 'id' | 'at'> & { at?: string };

/** GET /v1/audit's filters: since/until in ms since the epoch (inclusive / exclusive), actor a token name or id. */
export interface AuditQuery {
  sinceMs?: number;
  untilMs?: number;
  actor?: string;
  limit?: number;
  offset?: number;
}

interface Row {
  id: number;
  at: string;
  type: 'request' | 'job';
  actor_token_id: string | null;
  actor_name: string | null;
  actor_role: string | null;
  via: AuditVia;
  address: string | null;
  method: string;
  path: string;
  route: string | null;
  action: string;
  target: string | null;
  status: number | null;
  result: string;
  job_id: string | null;
}

const fromRow = (r: Row): AuditEntry => ({
  id: r.id,
  at: r.at,
  type: r.type,
  actorTokenId: r.actor_token_id,
  actorName: r.actor_name,
  actorRole: r.actor_role,
  via: r.via,
  address: r.address,
  method: r.method,
  path: r.path,
  route: r.route,
  action: r.action,
  target: r.target,
  status: r.status,
  result: r.result,
  jobId: r.job_id,
});

/** Longest text kept in one field: hostile input (a 1 MiB path) is cut, never stored whole. */
const FIELD_MAX = 500;
const cut = (v: string | null): string | null => (v === null || v.length <= FIELD_MAX ? v : `${v.slice(0, FIELD_MAX)}…`);

export class SqliteAuditLog {
  private readonly db: CatalogDb;

  constructor(target: CatalogTarget) {
    this.db = catalogDb(target);
    // SQLite only: the shared PostgreSQL catalog's tables are pg-migrations.ts's.
    if (this.db.dialect === 'sqlite') {
      this.db.exec(`CREATE TABLE IF NOT EXISTS audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, type TEXT NOT NULL,
        actor_token_id TEXT, actor_name TEXT, actor_role TEXT, via TEXT NOT NULL, address TEXT,
        method TEXT NOT NULL, path TEXT NOT NULL, route TEXT, action TEXT NOT NULL, target TEXT,
        status INTEGER, result TEXT NOT NULL, job_id TEXT);
      CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log (at);
      CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: records are never changed'); END;
      CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: records are never deleted'); END;`);
    }
  }

  /** Appends a record and returns it with its id and time. */
  append(entry: NewAuditEntry): AuditEntry {
    const at = entry.at ?? new Date().toISOString();
    const e = { ...entry, path: cut(entry.path) ?? '', target: cut(entry.target), address: cut(entry.address), actorName: cut(entry.actorName) };
    const info = this.db
      .prepare(
        `INSERT INTO audit_log (at, type, actor_token_id, actor_name, actor_role, via, address, method, path, route, action, target, status, result, job_id)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
      )
      .get(at, e.type, e.actorTokenId, e.actorName, e.actorRole, e.via, e.address, e.method, e.path, e.route, e.action, e.target, e.status, e.result, e.jobId);
    return { ...e, id: Number((info as { id: number }).id), at };
  }

  /** Records newest first (by id), filtered; `total` counts all that match before limit/offset. */
  list(query: AuditQuery = {}): { entries: AuditEntry[]; total: number } {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (query.sinceMs !== undefined) {
      where.push('at >= ?');
      args.push(new Date(query.sinceMs).toISOString());
    }
    if (query.untilMs !== undefined) {
      where.push('at < ?');
      args.push(new Date(query.untilMs).toISOString());
    }
    if (query.actor !== undefined) {
      where.push('(actor_name = ? OR actor_token_id = ?)');
      args.push(query.actor, query.actor);
    }
    const clause = where.length ? `WHERE ${where.join(' AND ')}` : '';
    const total = (this.db.prepare(`SELECT count(*) AS n FROM audit_log ${clause}`).get(...args) as { n: number }).n;
    const rows = this.db
      .prepare(`SELECT * FROM audit_log ${clause} ORDER BY id DESC LIMIT ? OFFSET ?`)
      .all(...args, query.limit ?? 100, query.offset ?? 0) as Row[];
    return { entries: rows.map(fromRow), total };
  }

  close(): void {
    this.db.close();
  }
}
