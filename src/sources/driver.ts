/**
 * What one database engine contributes to cairn. Each engine lives in one folder
 * (src/sources/<engine>/, the same files in each: index.ts exports the driver, connection.ts,
 * naming.ts, source.ts, target.ts) and is listed once in registry.ts; nothing outside its
 * folder knows its URL scheme, its name rules or its manifest checks.
 */
import type { BackupManifest, CollectionEntry } from '../core/schemas.js';
import type { NameRules } from '../core/selection.js';
import type { CollectionDump, DumpFormat } from './dump.js';
import type { DatabaseSource, RestoreTarget, ScratchTarget } from './types.js';

/**
 * How far a URL may draw on the machine that connects. `untrusted`: the URL arrived ad hoc in an
 * API request; an engine resolves it from its own text only (PostgreSQL: no service, PG*
 * variables, ~/.pgpass, Unix socket or certificate file of the server's) and refuses with a
 * UsageError what it would otherwise complete from them.
 */
export interface UrlTrust {
  untrusted?: boolean;
}

/** Options of a backup's source, by URL. */
export interface SourceOptions extends UrlTrust {
  /** Also record roles and memberships (engines with capabilities.roles). */
  roles?: boolean;
  rolesWithPasswords?: boolean;
  /**
   * How long the backup may wait for a lock on what it reads, in ms (the CLI's --lock-timeout,
   * the API's lockTimeoutSeconds): PostgreSQL, each table lock (lock_timeout; default 30 000);
   * SQLite, the file lock its read snapshot needs (busy timeout; default 5 000). Past it the
   * backup fails with a SourceError that names what was locked.
   */
  lockTimeoutMs?: number;
  /**
   * Engines with non-transactional tables (MySQL MyISAM/Aria): keep the global read lock taken
   * for the snapshot until those tables have been read, so that they are consistent with the
   * rest (writers wait meanwhile). Default: read them without the lock, named in a warning.
   */
  lockNonTransactional?: boolean;
}

/**
 * What an engine can do, declared for callers that must not test a kind name. Enforced today:
 * `roles` (openSource and runRestore refuse --roles without it); the others describe what the
 * source and target report themselves (maxParallelReads, segments, selectable: false).
 */
export interface EngineCapabilities {
  /** A snapshot may serve several readData() streams at once (SourceSnapshot.maxParallelReads > 1). */
  parallelReads: boolean;
  /** A large collection may be read and restored as several segments (CollectionDescriptor.segments). */
  segments: boolean;
  /** Roles and memberships can be backed up and restored (SourceOptions.roles, RestoreOptions.roles). */
  roles: boolean;
  /**
   * The collections that belong to the whole database (selectable: false: never picked by
   * --include/--exclude, always restored), by kind, e.g. PostgreSQL's `pg_schema` archive; empty
   * when the engine has none.
   */
  databaseWideKinds: readonly string[];
}

export interface EngineDriver {
  /** `source.kind` of the manifests its sources write, e.g. "postgres". */
  readonly kind: string;
  /** URL schemes it answers to, lowercase, without ":" (e.g. "postgres", "postgresql"). */
  readonly schemes: readonly string[];
  /** The URL forms it accepts, for messages ("sqlite:///absolute/path.db, …"). */
  readonly urlForms: readonly string[];
  readonly naming: NameRules;
  readonly capabilities: EngineCapabilities;
  /**
   * Fields of the manifest's `source` the engine fills from its snapshot (today serverVersion;
   * e.g. a binlog position for MySQL once the manifest has room for it).
   */
  readonly snapshotMetadata: readonly string[];
  /** The URL with every secret replaced by ***, safe in a message or a log. */
  redactUrl(url: string): string;
  /**
   * The database a URL names, as `location` (source.location, target.location) spells it: no
   * secret. Throws UsageError for a malformed URL (and, `untrusted`, one that needs the server's settings).
   */
  location(url: string, trust?: UrlTrust): string;
  /**
   * One name per database for a `location`, however it was spelled (jobs/database-key.ts): two
   * locations with one key are one database. Undefined when the location is not this engine's.
   */
  databaseKey(location: string): string | undefined;
  /** A local file the URL names (SQLite), for checks on paths; undefined for a server. */
  localFile?(url: string): string;
  /**
   * The URL with a path relative to the working directory made absolute, so that it names the
   * same database from any folder (a schedule's or a registered source's URL is used later, by a
   * server started elsewhere). Absent when the engine's URLs hold no relative path. UsageError
   * for a malformed URL.
   */
  absoluteUrl?(url: string): string;
  /** The backup's source; UsageError for a malformed URL. Nothing is opened until openSnapshot. */
  openSource(url: string, options: SourceOptions): DatabaseSource;
  /** The restore's target; UsageError for a malformed URL. Nothing is written until restore. */
  openTarget(url: string, trust?: UrlTrust): RestoreTarget;
  /**
   * What a restore would refuse in the manifest's definitions, checked without a target (for
   * verify), as messages; [] when nothing is wrong or the engine checks only at restore.
   */
  manifestProblems(manifest: BackupManifest): string[];
  /**
   * `cairn dump`: how to write the rows of `entry` (a collection of `manifest`) as `format`.
   * Throws UsageError, before anything is read, when the collection has no rows to dump (a view,
   * a sequence, a database-wide archive) or the format cannot express them. Absent: the engine's
   * backups cannot be dumped (the caller says so).
   */
  openDump?(manifest: BackupManifest, entry: CollectionEntry, format: DumpFormat): CollectionDump;
  /**
   * `cairn export --format sql`: the backup (the entries chosen, renamed) as one plain script the
   * engine's own client loads with nothing else installed (psql -f, sqlite3 db < file, mysql <
   * file). Streams: memory stays at a few packs and one row. Absent: the engine's backups cannot
   * be exported as SQL (the caller says so).
   */
  openSqlScript?(context: SqlScriptContext): AsyncGenerator<Buffer>;
  /**
   * `cairn diff`: the part of a collection's definition that describes its shape (columns, DDL),
   * without what changes with the data or the catalog's bookkeeping (OIDs, sequence values,
   * AUTOINCREMENT counters), so that two backups of an unchanged schema compare equal. Absent:
   * the whole definition is compared.
   */
  shapeOf?(entry: CollectionEntry): unknown;
  /**
   * Other manifest kinds the same engine writes and reads, each with its own name rules and
   * capabilities (e.g. PostgreSQL's whole-server backups, kind "postgres-server"): found by
   * driverForKind, never by URL scheme (the engine's own openSource / openTarget choose them).
   */
  readonly variants?: readonly EngineDriver[];
  /**
   * A restore drill's scratch database at `url` (ScratchTarget): read back with SQL and dropped
   * afterwards. Throws UsageError for a URL that names no single database (a whole server).
   */
  openScratch(url: string, trust?: UrlTrust): ScratchTarget;
}

/** What an engine gets to write a backup as one plain SQL script (EngineDriver.openSqlScript). */
export interface SqlScriptContext {
  manifest: BackupManifest;
  /**
   * The entries chosen by include/exclude (the database-wide ones, `selectable: false`, always),
   * in manifest order, each with the name it gets in the script (renames applied), as restore's
   * selection gives them.
   */
  entries: { entry: CollectionEntry; targetName: string }[];
  /** A collection's data stream: its chunks in order, each checked against its id. */
  read(entry: CollectionEntry): AsyncIterable<Uint8Array>;
  /**
   * Leave out object ownership (ALTER … OWNER TO) / grants, as pg_dump's --no-owner and
   * --no-privileges: for loading where the backup's roles do not exist. Engines whose scripts
   * carry neither ignore them.
   */
  noOwner?: boolean;
  noPrivileges?: boolean;
  /**
   * Called once per warning, as the script is produced (before its first bytes for most): what
   * the script leaves out or what will not work once loaded (a routine still naming a renamed
   * table, a foreign key dropped with the table it references, …). The script carries each as a
   * comment too; this is how the user sees them (the CLI prints them on stderr). One sentence,
   * no trailing newline.
   */
  onWarning?: (message: string) => void;
  signal?: AbortSignal;
}
