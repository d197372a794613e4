/**
 * The one small synchronous SQL surface every catalog store is written against, so that one store
 * runs on either catalog: the embedded SQLite file (better-sqlite3, a server of its own) or the
 * shared PostgreSQL catalog (pg-sync.ts, several replicas). It is better-sqlite3's own shape
 * (prepare → run / get / all, exec, transaction), which the stores were written with.
 *
 * What a store writes must mean the same on both: `?` placeholders, `INSERT … ON CONFLICT`
 * (never SQLite's `INSERT OR REPLACE`; `INSERT OR IGNORE` is translated), `RETURNING id` for a
 * new row's id (never lastInsertRowid), ISO-8601 text for times, 0/1 integers for flags. Table
 * definitions are per dialect: a store creates its SQLite tables itself; the PostgreSQL ones are
 * pg-migrations.ts's numbered migrations.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { openCatalogDatabase } from './database.js';

export interface CatalogRunResult {
  /** Rows inserted, changed or deleted. */
  changes: number;
}

export interface CatalogStatement {
  run(...params: unknown[]): CatalogRunResult;
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}

/** A transaction function: call it (deferred) or `.immediate(…)` (takes the write lock first). */
export type CatalogTransaction<A extends unknown[], R> = ((...args: A) => R) & { immediate(...args: A): R };

export interface CatalogDb {
  readonly dialect: 'sqlite' | 'postgres';
  prepare(sql: string): CatalogStatement;
  exec(sql: string): void;
  /**
   * `fn` runs in one transaction: committed when it returns, rolled back when it throws (and the
   * error rethrown). On PostgreSQL every transaction also takes one advisory lock, so catalog
   * transactions of all replicas run one at a time, as SQLite's write lock makes them on one
   * file: a read-modify-write (a schedule edit) never interleaves with another replica's.
   * Nested calls are savepoints.
   */
  transaction<A extends unknown[], R>(fn: (...args: A) => R): CatalogTransaction<A, R>;
  /**
   * A secret as the catalog keeps it: as is in the SQLite file (mode 0600, on the server's disk),
   * sealed with CAIRN_CATALOG_KEY in the shared PostgreSQL catalog (catalog-key.ts). `context`
   * names the row ("registrations.url:source:shop"): a sealed value opens only there.
   */
  seal(plain: string, context: string): string;
  unseal(stored: string, context: string): string;
  /** Another holder of this connection (a store given it); each holder calls close() once. */
  retain(): CatalogDb;
  /** Releases one holder's use; the connection closes with its last holder. */
  close(): void;
}

/** A store's catalog: a SQLite file path (opened here, its own connection) or a shared CatalogDb. */
export type CatalogTarget = string | CatalogDb;

/** Opens `target` for one store: a path becomes a SQLite connection; a CatalogDb is shared (retained). */
export function catalogDb(target: CatalogTarget): CatalogDb {
  if (typeof target !== 'string') return target.retain();
  return sqliteCatalogDb(openCatalogDatabase(target));
}

/** A better-sqlite3 connection as a CatalogDb. */
export function sqliteCatalogDb(db: BetterSqlite3.Database): CatalogDb {
  let holders = 1;
  const handle: CatalogDb = {
    dialect: 'sqlite',
    prepare: (sql) => db.prepare(sql) as unknown as CatalogStatement,
    exec: (sql) => void db.exec(sql),
    transaction: <A extends unknown[], R>(fn: (...args: A) => R) => db.transaction(fn) as unknown as CatalogTransaction<A, R>,
    seal: (plain) => plain,
    unseal: (stored) => stored,
    retain: () => {
      holders++;
      return handle;
    },
    close: () => {
      if (--holders === 0) db.close();
    },
  };
  return handle;
}

/**
 * Shared catalog only: SQL true when `table`.owner names no live replica — none with that id
 * holds an unexpired lease in cairn_servers (the database's clock decides, not a replica's).
 * What a gone replica left waiting in its memory (queued runs, pending deliveries) is ended by
 * the others on this condition.
 */
export const ownerGone = (table: string): string =>
  `NOT EXISTS (SELECT 1 FROM cairn_servers s WHERE s.id = ${table}.owner AND s.lease_until > now() AND s.stopped_at IS NULL)`;

/**
 * Which constraint a failed insert broke, on either catalog: 'primary' (the table's key) or
 * 'unique' (another unique index), else undefined.
 */
export function constraintViolated(err: unknown): 'primary' | 'unique' | undefined {
  const e = err as { code?: string; constraint?: string };
  if (e?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY') return 'primary';
  if (e?.code === 'SQLITE_CONSTRAINT_UNIQUE') return 'unique';
  if (e?.code === '23505') return e.constraint?.endsWith('_pkey') ? 'primary' : 'unique';
  return undefined;
}
