/**
 * What a MySQL/MariaDB backup stores, shared by the source (which writes it) and the target
 * (which reads it): the collection kinds, their definitions, and the data format.
 *
 * Data format `mysql-tsv-v1`: exactly what `LOAD DATA … CHARACTER SET binary FIELDS TERMINATED
 * BY '\t' ENCLOSED BY '' ESCAPED BY '\\' LINES TERMINATED BY '\n'` reads, so a restore streams
 * the stored bytes into the server without parsing them. One line per row; the fields are the
 * table's `columns` whose `stored` is true, in that order. NULL is `\N`; any other value is
 * the bytes the server sends for it in a session set up by connection.ts (character_set_results
 * NULL: a string column's own bytes in its own character set, invalid ones included;
 * time_zone +00:00; zero and partial dates as written) with `\` → `\\`, TAB → `\t`, LF → `\n`,
 * CR → `\r`, NUL → `\0`, 0x1A → `\Z`. Columns whose text form is not exact are read through an
 * expression (`readAs`) and loaded through a user variable (`loadAs`): FLOAT as its exact
 * DOUBLE value (`CAST(c AS DOUBLE)`; the text form of FLOAT rounds to 6 digits).
 */

export const MYSQL_KIND = 'mysql';
export const MYSQL_TSV = 'mysql-tsv-v1';

/** Collection kinds. Routines and events belong to the whole database (selectable: false). */
export const TABLE_KIND = 'table';
export const VIEW_KIND = 'view';
export const SEQUENCE_KIND = 'sequence';
export const ROUTINES_KIND = 'mysql_routines';
export const ROUTINES_COLLECTION = '(routines)';
export const GRANTS_KIND = 'mysql_grants';
export const GRANTS_COLLECTION = '(users and grants)';
/**
 * The `(users and grants)` data stream of a backup taken with rolesWithPasswords: the CREATE USER
 * statements that carry password hashes, one per line (UTF-8, no trailing ';'), so that the
 * hashes live in chunks (encrypted in an encrypted repository, never printed by a listing) and
 * never in the manifest. Their accounts have no createSql in the definition (createInData).
 */
export const MYSQL_GRANTS_SQL = 'mysql-grants-sql-v1';

export interface MysqlColumn {
  name: string;
  /** information_schema.COLUMNS.COLUMN_TYPE, e.g. "varchar(20)", "float", "bit(10)". */
  type: string;
  /** DATA_TYPE, lowercase, e.g. "varchar", "float", "bit". */
  dataType: string;
  /** Written in the data stream (false for generated columns, which the server computes). */
  stored: boolean;
  /** The SELECT expression that reads it when not the column itself (e.g. CAST(`f` AS DOUBLE)). */
  readAs?: string;
  /**
   * How LOAD DATA assigns it when not directly: "var" (into a user variable, then SET col = @v:
   * BIT, whose bytes LOAD DATA would otherwise take as text digits).
   */
  loadAs?: 'var';
  /** MariaDB INVISIBLE / MySQL INVISIBLE: read and loaded only when named. */
  invisible?: boolean;
}

export interface MysqlTrigger {
  name: string;
  /** SHOW CREATE TRIGGER's statement (DEFINER included). */
  createSql: string;
  /** The sql_mode, character set and collations it was created under (SHOW CREATE TRIGGER reports them). */
  sqlMode?: string;
  characterSetClient?: string;
  collationConnection?: string;
  databaseCollation?: string;
}

export interface MysqlTableDefinition {
  /** SHOW CREATE TABLE, as the server prints it (AUTO_INCREMENT=, partitions, FKs, CHECKs). */
  createSql: string;
  engine: string;
  /** InnoDB (and other transactional engines): read in the snapshot; MyISAM/Aria are not. */
  transactional: boolean;
  columns: MysqlColumn[];
  /** Primary key columns in order ([] when none). */
  primaryKey: string[];
  /** The AUTO_INCREMENT counter when the table has one. */
  autoIncrement?: number;
  /** MariaDB WITH SYSTEM VERSIONING: the stream holds every row version (FOR SYSTEM_TIME ALL). */
  systemVersioned?: boolean;
  /** Tables (in this database) its foreign keys reference: restored with it, renamed with it. */
  references: string[];
  triggers: MysqlTrigger[];
  /** Table and column character set / collation defaults (for messages and new databases). */
  charset?: string;
  collation?: string;
}

export interface MysqlViewDefinition {
  /** SHOW CREATE VIEW (ALGORITHM, DEFINER, SQL SECURITY; names unqualified within the database). */
  createSql: string;
  /** Tables and views of this database it reads (information_schema.VIEW_TABLE_USAGE or parsed). */
  references: string[];
  charset?: string;
  collation?: string;
}

export interface MysqlSequenceDefinition {
  /** SHOW CREATE SEQUENCE. */
  createSql: string;
  /** next_not_cached_value at the snapshot: restored with SETVAL(seq, value, 0). */
  nextValue: string;
}

export interface MysqlRoutine {
  kind: 'PROCEDURE' | 'FUNCTION' | 'EVENT';
  name: string;
  /** SHOW CREATE PROCEDURE / FUNCTION / EVENT (DEFINER included). */
  createSql: string;
  /** The sql_mode, character set and collation it was created under (SHOW CREATE reports them). */
  sqlMode: string;
  /** EVENT: the time zone its schedule is read in (SHOW CREATE EVENT's time_zone). */
  timeZone?: string;
  characterSetClient: string;
  collationConnection: string;
  databaseCollation: string;
}

export interface MysqlRoutinesDefinition {
  /** The database's default character set and collation (a new database gets them). */
  charset: string;
  collation: string;
  routines: MysqlRoutine[];
}

/** One account (or role) that holds a privilege in the database, for `(users and grants)`. */
export interface MysqlAccount {
  user: string;
  host: string;
  isRole: boolean;
  /**
   * CREATE USER (SHOW CREATE USER: authentication, TLS and resource options) or CREATE ROLE,
   * never with a password hash. Absent when createInData (the statement with its hash is in the
   * collection's data stream); backups written before that held the hash here.
   */
  createSql?: string;
  /** The account's CREATE USER, with its password hash, is a line of the data stream (MYSQL_GRANTS_SQL). */
  createInData?: boolean;
  /** SHOW GRANTS lines on this database, its objects and routines, and granted roles (without password hashes). */
  grants: string[];
  /**
   * The account had a password (hash) that createSql leaves out (a backup without
   * rolesWithPasswords): a restore creates it locked rather than password-less.
   */
  passwordLeftOut?: boolean;
}

export interface MysqlGrantsDefinition {
  accounts: MysqlAccount[];
  /** Whether the backup recorded password hashes (in the data stream; older backups: in createSql). */
  withPasswords: boolean;
  /**
   * The backed-up database, as the grants name it (`ON \`db\`.…`): a restore into another
   * database aims them at that one instead.
   */
  database: string;
}

const ESC: Record<number, number> = { 0x5c: 0x5c, 0x09: 0x74, 0x0a: 0x6e, 0x0d: 0x72, 0x00: 0x30, 0x1a: 0x5a };

/** The NULL field. */
export const NULL_FIELD = Buffer.from('\\N');

/**
 * Appends one field's escaped bytes to `out` at `pos` (out must have room for 2 × value.length);
 * returns the new position.
 */
export function escapeInto(value: Uint8Array, out: Buffer, pos: number): number {
  for (let i = 0; i < value.length; i++) {
    const c = value[i] as number;
    const e = ESC[c];
    if (e === undefined) {
      out[pos++] = c;
    } else {
      out[pos++] = 0x5c;
      out[pos++] = e;
    }
  }
  return pos;
}

/**
 * One line of fields → the values (null for \N), unescaped: the reader of `cairn dump` and of
 * tests (a restore streams the bytes to LOAD DATA as they are).
 */
export function parseLine(line: Uint8Array): (Buffer | null)[] {
  const fields: (Buffer | null)[] = [];
  let cur: number[] = [];
  let escaped = false;
  let isNull = false;
  for (let i = 0; i <= line.length; i++) {
    const c = i < line.length ? (line[i] as number) : 0x09;
    if (escaped) {
      escaped = false;
      if (c === 0x4e) isNull = true;
      else cur.push(c === 0x74 ? 0x09 : c === 0x6e ? 0x0a : c === 0x72 ? 0x0d : c === 0x30 ? 0x00 : c === 0x5a ? 0x1a : c === 0x62 ? 0x08 : c);
      continue;
    }
    if (c === 0x5c) {
      escaped = true;
    } else if (c === 0x09) {
      fields.push(isNull && cur.length === 0 ? null : Buffer.from(cur));
      cur = [];
      isNull = false;
    } else {
      cur.push(c);
    }
  }
  return fields;
}
