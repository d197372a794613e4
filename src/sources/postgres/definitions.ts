/**
 * What a PostgreSQL backup records per collection (CollectionEntry.definition), shared by
 * PostgresSource (writes it) and PostgresTarget (reads it). Names are unquoted identifiers;
 * collection names are `schema.name` exactly as stored in the catalog (case preserved).
 */

/** Collection names of the database-wide collections (never selected by include/exclude). */
export const SCHEMA_COLLECTION = '(schema)';
export const ROLES_COLLECTION = '(roles)';

/** Data formats. */
export const PG_DUMP_CUSTOM = 'pg_dump-custom'; // stdout of `pg_dump --format=custom --schema-only --snapshot=…`
export const PG_COPY_TEXT = 'pg-copy-text'; // `COPY … TO STDOUT` text format, one line per row
export const PG_ROLES_SQL = 'pg_dumpall-roles-sql'; // stdout of `pg_dumpall --roles-only`

export interface PgColumn {
  name: string;
  /** format_type(atttypid, atttypmod), e.g. "character varying(40)", "public.mood". */
  type: string;
  notNull: boolean;
  /** Generated columns are not in the data stream (COPY leaves them out). */
  generated: boolean;
}

export interface PgSequenceState {
  schema: string;
  name: string;
  lastValue: string; // bigint as string
  isCalled: boolean;
}

/** kind "table" | "partitioned_table" | "partition" (a partition may itself be partitioned: kind "partitioned_table" with partitionOf set). */
export interface PgTableDefinition {
  schema: string;
  name: string;
  /** Source catalog OID of the table: TOC entries of the schema archive are matched by it. */
  oid: number;
  relkind: 'r' | 'p';
  /** `schema.parent` when this table is a partition. */
  partitionOf: string | null;
  /** Columns in the data stream's order (generated columns excluded) — the COPY column list. */
  copyColumns: string[];
  /** All columns in attnum order, for comparing with an existing table under --on-conflict overwrite. */
  columns: PgColumn[];
  /** Catalog OIDs of objects that belong to this table (indexes, constraints incl. FKs it owns, triggers, rules, policies, owned sequences): their archive entries go with it. */
  dependentOids: number[];
  /** Sequences owned by the table (serial/identity), with their values in the snapshot. */
  sequences: PgSequenceState[];
  /**
   * Other sequences the table's rows draw from, with their values in the snapshot: those its
   * column defaults call (a standalone sequence, another table's serial, in any schema) and
   * those the functions its defaults and triggers call name. A restore creates them when
   * missing and never leaves them behind the restored rows. Absent in older backups.
   */
  usedSequences?: PgSequenceDefinition[];
  /**
   * OIDs of the functions and procedures its triggers, defaults, checks, indexes, rules and
   * policies use directly (routines.ts): a restore of the table creates them, and those they call
   * (PgSchemaDefinition.routineCalls), when missing, whatever the selection. Absent in older
   * backups (every routine was restored).
   */
  routineOids?: number[];
}

/**
 * kind "extension_table" (not selectable: it goes with its extension, which every restore
 * creates): a configuration table of an extension (pg_extension_config_dump). Its data is the
 * rows the extension's filter selects (the user's, not those CREATE EXTENSION inserts), loaded
 * into the table the extension creates.
 */
export interface PgExtensionTableDefinition extends PgTableDefinition {
  extension: string;
  /** The extension's filter ("WHERE …"), '' for every row. */
  condition: string;
}

/** kind "view" | "materialized_view". */
export interface PgViewDefinition {
  schema: string;
  name: string;
  oid: number;
  relkind: 'v' | 'm';
  /** Objects that belong to it (indexes of a materialized view, rules, triggers). */
  dependentOids: number[];
  /**
   * Materialized views: whether it held data at backup time (false: WITH NO DATA, restored
   * unpopulated, as pg_dump writes no REFRESH for it). Absent in older backups: refreshed.
   */
  populated?: boolean;
  /** The routines it uses directly (see PgTableDefinition.routineOids). */
  routineOids?: number[];
}

/**
 * kind "foreign_table": the definition only (it is in the schema archive, with its server and
 * user mappings); its data lives elsewhere and is not backed up.
 */
export interface PgForeignTableDefinition {
  schema: string;
  name: string;
  oid: number;
  relkind: 'f';
  /** `schema.parent` when the foreign table is a partition. */
  partitionOf: string | null;
  /** Objects that belong to it (check constraints, triggers). */
  dependentOids: number[];
  /** The routines it uses directly (see PgTableDefinition.routineOids). */
  routineOids?: number[];
}

/** kind "sequence": a sequence no table owns. */
export interface PgSequenceDefinition extends PgSequenceState {
  oid: number;
}

/** The "(schema)" collection. */
export interface PgSchemaDefinition {
  database: string;
  encoding: string;
  collate: string;
  ctype: string;
  /**
   * The encoding the tables' COPY data is in: the database's own (data travels byte for byte).
   * Absent in backups made before it was recorded, whose data is UTF-8.
   */
  dataEncoding?: string;
  /** Default collation provider of the database (absent: libc, as before PostgreSQL 15). */
  localeProvider?: 'libc' | 'icu' | 'builtin';
  /** ICU locale (provider icu) or builtin locale (provider builtin). */
  locale?: string;
  /** ICU tailoring rules (PostgreSQL 16+). */
  icuRules?: string;
  /** The database's recorded collation version at backup (datcollversion), for comparison. */
  collationVersion?: string;
  /** pg_dump's version line, e.g. "pg_dump (PostgreSQL) 15.20". */
  pgDumpVersion: string;
  /** Extensions installed in the database (name, schema, version). */
  extensions: { name: string; schema: string; version: string }[];
  /** Values of the extensions' configuration sequences (pg_extension_config_dump), set after the data. */
  extensionSequences?: PgSequenceState[];
  /**
   * OIDs of every sequence no table owns. A restore always creates them (a restored table's
   * default may call one), like functions and types; their values are set only when selected.
   */
  standaloneSequenceOids?: number[];
  /**
   * The values of those sequences in the snapshot, whether selected or not: a restore sets
   * each one it creates (absent in older backups, whose unselected ones restart).
   */
  standaloneSequences?: PgSequenceDefinition[];
  /**
   * OIDs of every function and procedure of the archive that is a routine collection's
   * (routines.ts; not aggregates, not extension members): a restore creates those of them it
   * restores, and only those. Absent in older backups: every routine is restored.
   */
  routineOids?: number[];
  /**
   * The routines that supporting objects use directly (a domain's check, a type's I/O, an
   * operator, a cast, an aggregate, an event trigger…): restored with every selection, with
   * those they call (routineCalls).
   */
  supportRoutineOids?: number[];
  /** The call graph of the listed routines: [routine OID, OIDs of the routines it calls directly]. */
  routineCalls?: [number, number[]][];
  /** Listed routines that need relations (a row type they take or return, rows a BEGIN ATOMIC body reads): checked before a restore creates them. */
  routineRelations?: { oid: number; signature: string; relations: string[] }[];
}

export type { PgRoutineDefinition, PgRoutineOverload } from './routines.js';

/** The "(roles)" collection. */
export interface PgRolesDefinition {
  withPasswords: boolean;
  roles: string[];
}
