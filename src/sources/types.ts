/**
 * What every database driver implements. A source hands the backup engine a consistent snapshot
 * as a list of collections plus one byte stream per collection; a restore target takes those
 * streams back. The engine never interprets the bytes: encoding rows is the driver's business,
 * named by `dataFormat` so a reader knows how to decode them.
 */
import type { CollectionEntry } from '../core/schemas.js';

export interface CollectionDescriptor {
  /** The name users write in --include/--exclude/--rename (SQLite: the table or view name). */
  name: string;
  /** "table", "view", … (source-specific vocabulary, documented per source). */
  kind: string;
  /** JSON-serialisable definition: enough to recreate, rename and compare the collection. */
  definition: Record<string, unknown>;
  /** Encoding of the data stream, e.g. "rows-v1"; undefined when the collection has no data. */
  dataFormat?: string;
  /**
   * False for collections that belong to the whole database rather than to a table (e.g. a
   * PostgreSQL schema archive, roles): --include/--exclude never select or drop them, and
   * restores always receive them. Default true.
   */
  selectable?: boolean;
  /**
   * The data can be read as this many independent streams (readData with a segment index) whose
   * concatenation, in order, is the collection's stream; they may be read in parallel. A large
   * table split this way keeps every core busy even when it dominates the database. Default 1.
   */
  segments?: number;
  /** Rough size of the data in bytes, when the source knows it: the largest are read first. */
  estimatedBytes?: number;
  /** Rough number of rows, when the source's catalog knows it (PostgreSQL reltuples): backup progress. */
  estimatedRows?: number;
}

/** A collection's data; `rowCount` is final once iteration has finished. */
export interface DataStream extends AsyncIterable<Uint8Array> {
  readonly rowCount: number;
}

export interface SourceSnapshot {
  /** e.g. "3.46.1" for SQLite, "15.19" for PostgreSQL. */
  readonly serverVersion: string;
  /** Things the backup does not capture, said at backup time. */
  readonly warnings: string[];
  /** How many readData() streams may be consumed at the same time (1 for SQLite). */
  readonly maxParallelReads: number;
  /**
   * Rough size in bytes of all the data, for sources that cannot size each collection (SQLite:
   * the file's used pages); backup progress uses it when no collection has estimatedBytes.
   */
  readonly estimatedBytes?: number;
  /**
   * Evidence of the state this snapshot holds, for schedules with --when-unchanged skip: taken
   * at or before the moment the snapshot was fixed, never after (a change in between then reads
   * as a change). Equal evidence of two moments means the database did not change between them;
   * an engine that cannot promise that leaves it undefined. Opaque, at most 512 characters.
   */
  readonly changeEvidence?: string;
  /**
   * Where the snapshot sits in the server's change log (MySQL: `binlogFile`, `binlogOffset`,
   * `gtid`; or `binlog: "off"`), recorded in the manifest's source.position and shown by
   * `backup show`: what a later log replay starts from. At most 16 entries.
   */
  readonly position?: Record<string, string>;
  /** Every collection, in an order that restores safely (tables before the views that use them). */
  listCollections(): Promise<CollectionDescriptor[]>;
  /** The collection's data, or one segment of it (0 ≤ segment < descriptor.segments). */
  readData(collection: CollectionDescriptor, signal?: AbortSignal, segment?: number): DataStream;
  close(): Promise<void>;
}

export interface DatabaseSource {
  readonly kind: string;
  /** Short name for generated backup ids, e.g. the database or file name. */
  readonly name: string;
  /** Where the database is, safe to print and store: never contains a secret. */
  readonly location: string;
  /**
   * Opens one consistent snapshot of the collections `select` keeps; writers may go on while
   * it is open. `select` receives every selectable collection name and returns those to back
   * up (it throws for unknown names), so a source can avoid locking or reading the others.
   */
  openSnapshot(options: SnapshotOptions): Promise<SourceSnapshot>;
  /**
   * The database's change evidence now, comparable with SourceSnapshot.changeEvidence (equal:
   * nothing changed since); undefined when the engine cannot tell. Reads no data.
   */
  changeEvidence?(signal?: AbortSignal): Promise<string | undefined>;
  /**
   * A connection test: connects (reading nothing but the server's version) and reports the
   * client tools a backup of it needs. Throws what a backup would (SourceError unreachable or
   * refused, NotFoundError no such database); a tool missing or too old is reported, not thrown.
   */
  check?(signal?: AbortSignal): Promise<SourceCheckReport>;
}

/** What DatabaseSource.check found: the server's (or library's) version and the tools checked. */
export interface SourceCheckReport {
  serverVersion?: string;
  tools?: ToolCheck[];
}

/** A client tool a backup runs (pg_dump, …): its version and whether it can serve this server. */
export interface ToolCheck {
  name: string;
  /** "17.2"; empty when the tool is missing. */
  version: string;
  ok: boolean;
  /** Why not ok, and what to install. */
  message?: string;
}

export interface SnapshotOptions {
  select: (names: string[]) => Set<string>;
  /** Parallel streams the caller intends to use. */
  jobs: number;
  signal?: AbortSignal;
}

/**
 * What a restore does about objects of the target that the backup also holds: `fail` refuses,
 * `overwrite` replaces each restored collection (same columns), `replace` makes the whole
 * target database exactly the backup (a staging copy switched in for the old one: objects
 * created since the backup are gone, changed tables come back as they were).
 */
export type ConflictPolicy = 'fail' | 'overwrite' | 'replace';

/**
 * `replace`: what to do about other sessions (PostgreSQL) or processes (SQLite) that have the
 * target open when it is switched: `refuse` (say who), `wait` until they leave (bounded by
 * sessionsTimeoutMs and the signal), `terminate` them (PostgreSQL, MySQL).
 */
export type SessionsPolicy = 'refuse' | 'wait' | 'terminate';

export interface RestoreItem {
  /** The collection as recorded in the manifest. */
  entry: CollectionEntry;
  /** Name to create in the target (differs from entry.name when renamed). */
  targetName: string;
  /**
   * The collection's data stream, verified and decompressed, in order; or, with an index, one of
   * its `segments` (streams that concatenate to the whole, recorded when the backup read them in
   * parallel), which a target may load in parallel. Call once for the whole or once per segment.
   */
  data(segment?: number): AsyncIterable<Uint8Array>;
  /** How many segments data(segment) accepts (absent or 1 when the backup recorded none). */
  segments?: number;
}

export interface RestoreProgress {
  collection: string;
  rows: number;
  bytes: number;
}

export interface RestoreOptions {
  onConflict: ConflictPolicy;
  /** Parallel streams the target may use (default: the number of cores). */
  jobs?: number;
  /** Restore roles recorded in the backup (sources that record them). */
  roles?: boolean;
  /** Engines with roles: leave out object ownership; objects belong to the restoring role (pg_restore --no-owner). */
  noOwner?: boolean;
  /** Engines with roles: leave out grants and default privileges (pg_restore --no-privileges). */
  noPrivileges?: boolean;
  /**
   * The restore brings only part of the backup, or renames (--include/--exclude/--rename):
   * database-level properties are then left as an existing target has them (absent: the whole).
   */
  partial?: boolean;
  /** `replace`: other sessions on the target at the switch (default refuse). */
  sessions?: SessionsPolicy;
  /** `replace` with sessions "wait": how long to wait for them, in milliseconds (default 5 minutes). */
  sessionsTimeoutMs?: number;
  signal?: AbortSignal;
  onProgress?: (progress: RestoreProgress) => void;
  /**
   * Called just before the point of no return (the staging data is switched in); from then on
   * the restore is not cancelled. It may throw to stop the restore there (a cancellation that
   * arrived meanwhile), which leaves the target as it was.
   */
  onFinalizing?: () => void;
  /**
   * Awaited just before onFinalizing (the staging data is complete): a coordinator of several
   * restores (a whole PostgreSQL server's databases) holds each there until all are ready, so
   * they switch in together. Throwing stops the restore there, leaving the target as it was.
   */
  beforeSwitch?: () => Promise<void>;
  /** Engines with tablespaces: every object goes into the default tablespace (pg_restore --no-tablespaces). */
  noTablespaces?: boolean;
}

export interface RestoreResult {
  collections: number;
  rows: number;
  /** What the restore did differently from a plain load, or could not do, for people to read (absent: nothing). */
  warnings?: string[];
  /** What was created where (absent: the target does not report it). */
  plan?: RestorePlanSummary;
}

/**
 * What a restore created where: into a new database, an existing one, or an existing one that
 * held no user objects (a restore merges into an existing database); counts by kind ("table",
 * "view", …) of what it created and what it replaced (overwrite); renames (old → new name).
 */
export interface RestorePlanSummary {
  /** `replaced-whole`: --on-conflict replace, a new database swapped in for the target. */
  database: 'new' | 'existing' | 'existing-empty' | 'replaced-whole';
  /** The target database as people read it. */
  location: string;
  created: Record<string, number>;
  replaced: Record<string, number>;
  renamed: Record<string, string>;
  /** One sentence, e.g. "Into existing database … (empty: merged into it): created 12 tables, 3 views". */
  summary: string;
}

export interface RestoreTarget {
  readonly kind: string;
  readonly location: string;
  /**
   * Checks the items against the target without writing anything: throws ConflictError when
   * a target object exists under "fail", or exists with a different schema under "overwrite".
   * `partial`: part of the backup is restored (see RestoreOptions.partial).
   */
  check(items: RestoreItem[], onConflict: ConflictPolicy, partial?: boolean): Promise<void>;
  /**
   * check(), then load everything into staging and switch it in at the end, so that a failure
   * or an abort at any point leaves the target exactly as it was.
   */
  restore(items: RestoreItem[], options: RestoreOptions): Promise<RestoreResult>;
}

/**
 * A restore drill's scratch database (jobs/drill.ts): the place a drill restores the newest
 * backup into, reads back, and drops. One implementation per engine (<engine>/scratch.ts),
 * opened by EngineDriver.openScratch.
 */
export interface ScratchTarget {
  /** Where it is, as RestoreTarget.location spells it (never a secret). */
  readonly location: string;
  /**
   * Runs one SQL query of a drill's checks and answers the first column of its first row
   * (undefined when it returns no row). The query runs in a read-only transaction where the
   * engine has one. Throws SourceError (or the engine's error) when the query fails.
   */
  query(sql: string, signal?: AbortSignal): Promise<unknown>;
  /**
   * The rows the restored collection holds now, counted with SQL; undefined for a collection
   * that holds no rows of its own (views, schema archives, sequences, roles…), which a drill
   * does not compare.
   */
  countRows(entry: CollectionEntry, signal?: AbortSignal): Promise<number | undefined>;
  /**
   * Whether the scratch database exists now (PostgreSQL: a pg_database row; MySQL: an
   * information_schema.schemata row; SQLite: the file or any of its -wal, -shm, -journal files).
   * A drill never restores into, nor drops, a target it did not create: it asks this first.
   */
  exists(signal?: AbortSignal): Promise<boolean>;
  /**
   * Removes the scratch database and everything of it (PostgreSQL, MySQL: DROP DATABASE;
   * SQLite: the file and its -wal, -shm and -journal files). Nothing there: nothing happens.
   */
  drop(): Promise<void>;
}
