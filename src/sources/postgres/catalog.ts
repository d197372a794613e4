/**
 * Reads what a PostgreSQL backup records from the system catalogs, inside the snapshot
 * transaction: the relations cairn treats as collections, their columns, the catalog objects
 * that belong to each (so the restore side can pick their entries out of the schema archive),
 * and sequence values.
 */
import type pg from 'pg';
import type { PgColumn, PgSequenceState } from './definitions.js';
import { display } from './naming.js';

/** Double-quotes an identifier the way PostgreSQL's quote_ident() does, always. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function qualified(schema: string, name: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(name)}`;
}

/**
 * An identifier written in ASCII only: quoted as usual when it is printable ASCII, else as a
 * Unicode-escaped identifier (`U&"caf\00e9"`), which the server converts to its own encoding
 * whatever the session's client_encoding. Not for a SQL_ASCII server, which cannot convert
 * escapes above 007F.
 */
export function asciiIdent(name: string): string {
  if (/^[\x20-\x7e]*$/.test(name)) return quoteIdent(name);
  return `U&"${unicodeEscaped(name, '"')}"`;
}

/**
 * The body of a `U&'…'` string or `U&"…"` identifier: printable ASCII as itself, `quote` and
 * `\` doubled, every other character as `\XXXX` or `\+XXXXXX`.
 */
export function unicodeEscaped(text: string, quote: "'" | '"'): string {
  let out = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0) as number;
    if (ch === quote) out += quote + quote;
    else if (ch === '\\') out += '\\\\';
    else if (cp >= 0x20 && cp < 0x7f) out += ch;
    else out += cp > 0xffff ? `\\+${cp.toString(16).padStart(6, '0')}` : `\\${cp.toString(16).padStart(4, '0')}`;
  }
  return out;
}

/**
 * How to write identifiers in the statements of a session whose client_encoding is
 * `clientEncoding`, on a server whose encoding is `serverEncoding`. The driver sends statement
 * text as UTF-8 bytes and the server reads them in the client encoding, so a name outside ASCII
 * would arrive as other characters under, say, WIN1252: it is written with Unicode escapes
 * instead. Under UTF8 the bytes are right as they are; on a SQL_ASCII server (no conversion, no
 * escapes above 007F) the name's UTF-8 bytes are sent as they are, which are the catalog's bytes
 * when the catalog could be read at all.
 */
export function identQuoter(clientEncoding: string, serverEncoding: string): (name: string) => string {
  return clientEncoding === 'UTF8' || serverEncoding === 'SQL_ASCII' ? quoteIdent : asciiIdent;
}

export function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

export interface CatalogRelation {
  oid: number;
  schema: string;
  name: string;
  /** r, p, v, m, S (sequence), f (foreign table). */
  relkind: string;
  /** The parent's collection name (naming.ts display) for a partition. */
  partitionOf: string | null;
  /** True for a sequence owned by a table column (serial, identity, OWNED BY). */
  ownedSequence: boolean;
  /** pg_class.relispopulated: false for a materialized view left WITH NO DATA. */
  populated: boolean;
}

/** Schemas that never hold user collections. */
const USER_SCHEMA_FILTER = `
  n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'`;

/** Tables, partitions, views, materialized views, sequences and foreign tables that are not extension members. */
export async function readRelations(client: pg.Client): Promise<CatalogRelation[]> {
  const { rows } = await client.query<{
    oid: number;
    schema: string;
    name: string;
    relkind: string;
    parent_schema: string | null;
    parent_name: string | null;
    owned: boolean;
    populated: boolean;
  }>(`
    SELECT c.oid, n.nspname AS schema, c.relname AS name, c.relkind::text AS relkind,
      p.nspname AS parent_schema, p.relname AS parent_name,
      c.relkind = 'S' AND EXISTS (
        SELECT 1 FROM pg_depend d
        WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass
          AND d.deptype IN ('a', 'i')) AS owned,
      c.relispopulated AS populated
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN LATERAL (
      SELECT pn.nspname, pc.relname
      FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = pc.relnamespace
      WHERE c.relispartition AND i.inhrelid = c.oid LIMIT 1) p ON true
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
      AND c.relpersistence <> 't'
      AND ${USER_SCHEMA_FILTER}
      AND NOT EXISTS (
        SELECT 1 FROM pg_depend d
        WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
    ORDER BY n.nspname, c.relname`);
  return rows.map((r) => ({
    oid: Number(r.oid),
    schema: r.schema,
    name: r.name,
    relkind: r.relkind,
    partitionOf: r.parent_schema !== null && r.parent_name !== null ? display({ schema: r.parent_schema, name: r.parent_name }) : null,
    ownedSequence: r.owned,
    populated: r.populated,
  }));
}

/** A table or sequence an extension registered with pg_extension_config_dump. */
export interface ExtensionConfigRelation extends CatalogRelation {
  extension: string;
  /** The extension's filter for a table ("WHERE …"), '' for all rows or for a sequence. */
  condition: string;
}

/**
 * Configuration tables and sequences of installed extensions (pg_extension.extconfig /
 * extcondition): CREATE EXTENSION makes them with the extension's own rows, and the user's rows
 * (those the filter selects) and the sequences' values are data that pg_dump dumps and cairn
 * backs up too.
 */
export async function readExtensionConfig(client: pg.Client): Promise<ExtensionConfigRelation[]> {
  const { rows } = await client.query<{ extension: string; oid: number; schema: string; name: string; relkind: string; condition: string | null }>(`
    SELECT e.extname AS extension, c.oid, n.nspname AS schema, c.relname AS name, c.relkind::text AS relkind,
      e.extcondition[u.i] AS condition
    FROM pg_extension e CROSS JOIN LATERAL unnest(e.extconfig) WITH ORDINALITY AS u(reloid, i)
    JOIN pg_class c ON c.oid = u.reloid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'S')
    ORDER BY n.nspname, c.relname`);
  return rows.map((r) => ({
    oid: Number(r.oid),
    schema: r.schema,
    name: r.name,
    relkind: r.relkind,
    populated: true,
    partitionOf: null,
    ownedSequence: false,
    extension: r.extension,
    condition: r.condition ?? '',
  }));
}

/** Columns of each relation in attnum order (dropped columns left out). */
export async function readColumns(client: pg.Client, oids: number[]): Promise<Map<number, PgColumn[]>> {
  const out = new Map<number, PgColumn[]>();
  if (oids.length === 0) return out;
  const { rows } = await client.query<{ rel: number; name: string; type: string; notnull: boolean; generated: boolean }>(
    `SELECT a.attrelid AS rel, a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull AS notnull, a.attgenerated <> '' AS generated
     FROM pg_attribute a
     WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
     ORDER BY a.attrelid, a.attnum`,
    [oids],
  );
  for (const r of rows) {
    const rel = Number(r.rel);
    let list = out.get(rel);
    if (list === undefined) out.set(rel, (list = []));
    list.push({ name: r.name, type: r.type, notNull: r.notnull, generated: r.generated });
  }
  return out;
}

/**
 * Catalog objects that belong to each relation: indexes (including those backing constraints),
 * constraints it owns, user triggers, rules other than a view's _RETURN, row-level security
 * policies, extended statistics (CREATE STATISTICS), and owned sequences. These are the pg_dump
 * objects that hang off one relation with an entry of their own; the rest (defaults, statistics
 * targets, storage, replica identity, column options) are part of the relation's entry.
 */
export async function readDependents(client: pg.Client, oids: number[]): Promise<Map<number, number[]>> {
  const out = new Map<number, number[]>();
  if (oids.length === 0) return out;
  const { rows } = await client.query<{ rel: number; oid: number }>(
    `SELECT indrelid AS rel, indexrelid AS oid FROM pg_index WHERE indrelid = ANY($1::oid[])
     UNION ALL
     SELECT conrelid, oid FROM pg_constraint WHERE conrelid = ANY($1::oid[])
     UNION ALL
     SELECT tgrelid, oid FROM pg_trigger WHERE tgrelid = ANY($1::oid[]) AND NOT tgisinternal
     UNION ALL
     SELECT ev_class, oid FROM pg_rewrite WHERE ev_class = ANY($1::oid[]) AND rulename <> '_RETURN'
     UNION ALL
     SELECT polrelid, oid FROM pg_policy WHERE polrelid = ANY($1::oid[])
     UNION ALL
     SELECT stxrelid, oid FROM pg_statistic_ext WHERE stxrelid = ANY($1::oid[])
     UNION ALL
     SELECT d.refobjid, d.objid FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
     WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
       AND d.deptype IN ('a', 'i') AND d.refobjid = ANY($1::oid[])`,
    [oids],
  );
  for (const r of rows) {
    const rel = Number(r.rel);
    let list = out.get(rel);
    if (list === undefined) out.set(rel, (list = []));
    const oid = Number(r.oid);
    if (!list.includes(oid)) list.push(oid);
  }
  for (const list of out.values()) list.sort((a, b) => a - b);
  return out;
}

/** Sequences owned by each table (serial / identity / OWNED BY), as [table oid → sequences]. */
export async function readOwnedSequences(
  client: pg.Client,
  tableOids: number[],
): Promise<Map<number, { oid: number; schema: string; name: string }[]>> {
  if (tableOids.length === 0) return new Map();
  const { rows } = await client.query<{ rel: number; oid: number; schema: string; name: string }>(
    `SELECT DISTINCT d.refobjid AS rel, s.oid, n.nspname AS schema, s.relname AS name
     FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
       JOIN pg_namespace n ON n.oid = s.relnamespace
     WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
       AND d.deptype IN ('a', 'i') AND d.refobjid = ANY($1::oid[])
     ORDER BY n.nspname, s.relname`,
    [tableOids],
  );
  return groupByRelation(rows);
}

/**
 * Sequences each table's rows draw from besides its own (see PgTableDefinition.usedSequences):
 * those its column defaults depend on (pg_depend of pg_attrdef), and those the functions its
 * defaults and triggers call depend on (SQL-standard bodies) or name in their source text (a
 * PL/pgSQL body records no dependency; a name found in it may be a false match, which only
 * carries one more sequence value). As [table oid → sequences].
 */
export async function readUsedSequences(
  client: pg.Client,
  tableOids: number[],
): Promise<Map<number, { oid: number; schema: string; name: string }[]>> {
  if (tableOids.length === 0) return new Map();
  const { rows } = await client.query<{ rel: number; oid: number; schema: string; name: string }>(
    `WITH rels AS MATERIALIZED (SELECT DISTINCT unnest($1::oid[]) AS rel),
     defaults AS MATERIALIZED (SELECT ad.adrelid AS rel, ad.oid FROM rels r JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = r.rel),
     fns AS MATERIALIZED (
       SELECT a.rel, d.refobjid AS fn FROM defaults a
         JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_attrdef'::regclass AND d.objid = a.oid AND d.refclassid = 'pg_catalog.pg_proc'::regclass
       UNION
       SELECT t.tgrelid, t.tgfoid FROM rels r JOIN pg_catalog.pg_trigger t ON t.tgrelid = r.rel AND NOT t.tgisinternal
     ), bodies AS MATERIALIZED (
       -- each function once (one audit trigger may serve every table), and only those: the
       -- planner would otherwise match every function of the catalog against every sequence
       SELECT p.oid AS fn, lower(p.prosrc) AS src FROM pg_catalog.pg_proc p
         JOIN pg_catalog.pg_language l ON l.oid = p.prolang AND l.lanname NOT IN ('c', 'internal')
        WHERE p.oid IN (SELECT fn FROM fns)
     ), named AS MATERIALIZED (
       SELECT b.fn, s.oid AS seq FROM bodies b JOIN pg_catalog.pg_class s ON s.relkind = 'S' AND strpos(b.src, lower(s.relname)) > 0
     ), used AS (
       SELECT a.rel, d.refobjid AS seq FROM defaults a
         JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_attrdef'::regclass AND d.objid = a.oid AND d.refclassid = 'pg_catalog.pg_class'::regclass
       UNION
       SELECT f.rel, d.refobjid FROM fns f
         JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = f.fn AND d.refclassid = 'pg_catalog.pg_class'::regclass
       UNION
       SELECT f.rel, n.seq FROM fns f JOIN named n ON n.fn = f.fn
     )
     SELECT DISTINCT u.rel, s.oid, n.nspname AS schema, s.relname AS name
       FROM used u JOIN pg_catalog.pg_class s ON s.oid = u.seq AND s.relkind = 'S'
       JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
        -- not the table's own (serial, identity): those travel with it already
        AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend o WHERE o.classid = 'pg_catalog.pg_class'::regclass AND o.objid = s.oid
                          AND o.refobjid = u.rel AND o.deptype IN ('a', 'i'))
      ORDER BY 1, 3, 4`,
    [tableOids],
  );
  return groupByRelation(rows);
}

/**
 * Current values of sequences. Sequences are not transactional: this reads their state now
 * (right after the snapshot was taken), which can only be ahead of the rows the snapshot sees.
 */
export async function readSequenceValues(
  client: pg.Client,
  sequences: { schema: string; name: string }[],
): Promise<PgSequenceState[]> {
  const out: PgSequenceState[] = [];
  const BATCH = 200;
  for (let start = 0; start < sequences.length; start += BATCH) {
    const batch = sequences.slice(start, start + BATCH);
    const sql = batch
      .map((s, i) => `SELECT ${i} AS i, last_value::text AS last_value, is_called FROM ${qualified(s.schema, s.name)}`)
      .join('\nUNION ALL\n');
    const { rows } = await client.query<{ i: number; last_value: string; is_called: boolean }>(sql);
    const byIndex = new Map(rows.map((r) => [Number(r.i), r]));
    batch.forEach((s, i) => {
      const r = byIndex.get(i);
      if (r !== undefined) out.push({ schema: s.schema, name: s.name, lastValue: r.last_value, isCalled: r.is_called });
    });
  }
  return out;
}

export interface DatabaseInfo {
  encoding: string;
  collate: string;
  ctype: string;
  /** Default collation provider (PostgreSQL 15+; libc before). */
  localeProvider: 'libc' | 'icu' | 'builtin';
  /** The ICU locale (provider icu) or builtin locale (provider builtin, PostgreSQL 17+). */
  locale?: string;
  /** ICU tailoring rules (PostgreSQL 16+). */
  icuRules?: string;
  /** The default collation's version recorded for the database (PostgreSQL 15+). */
  collationVersion?: string;
  extensions: { name: string; schema: string; version: string }[];
  largeObjects: number;
}

const PROVIDERS: Record<string, DatabaseInfo['localeProvider']> = { c: 'libc', i: 'icu', b: 'builtin' };

export async function readDatabaseInfo(client: pg.Client): Promise<DatabaseInfo> {
  // The whole row as JSON: the locale columns differ by version (datlocprovider and
  // daticulocale in 15, daticurules in 16, daticulocale renamed datlocale in 17).
  const db = await client.query<{ encoding: string; collate: string; ctype: string; row: Record<string, unknown> }>(
    `SELECT pg_encoding_to_char(encoding) AS encoding, datcollate AS collate, datctype AS ctype, to_jsonb(d) AS row
     FROM pg_database d WHERE datname = current_database()`,
  );
  const ext = await client.query<{ name: string; schema: string; version: string }>(
    `SELECT e.extname AS name, n.nspname AS schema, e.extversion AS version
     FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace ORDER BY e.extname`,
  );
  const lo = await client.query<{ n: string }>('SELECT count(*)::text AS n FROM pg_largeobject_metadata');
  const row = db.rows[0];
  const text = (key: string): string | undefined => {
    const v = row?.row[key];
    return typeof v === 'string' && v !== '' ? v : undefined;
  };
  const locale = text('datlocale') ?? text('daticulocale');
  const icuRules = text('daticurules');
  const collationVersion = text('datcollversion');
  return {
    encoding: row?.encoding ?? '',
    collate: row?.collate ?? '',
    ctype: row?.ctype ?? '',
    localeProvider: PROVIDERS[text('datlocprovider') ?? 'c'] ?? 'libc',
    ...(locale !== undefined ? { locale } : {}),
    ...(icuRules !== undefined ? { icuRules } : {}),
    ...(collationVersion !== undefined ? { collationVersion } : {}),
    extensions: ext.rows,
    largeObjects: Number(lo.rows[0]?.n ?? 0),
  };
}

/** Login and group roles pg_dumpall would write (its --roles-only leaves out the pg_* roles). */
export async function readRoleNames(client: pg.Client): Promise<string[]> {
  const { rows } = await client.query<{ rolname: string }>(
    "SELECT rolname FROM pg_roles WHERE rolname !~ '^pg_' ORDER BY rolname",
  );
  return rows.map((r) => r.rolname);
}

export interface RelationSize {
  /** Blocks of the main fork (what a TID range scan walks). */
  blocks: number;
  /** Bytes including TOAST. */
  bytes: number;
  /** pg_class.reltuples (the planner's row estimate); undefined when never vacuumed or analyzed. */
  rows?: number;
}

/** Physical sizes of tables (not transactional: as the files are now, close enough to plan reads). */
export async function readRelationSizes(client: pg.Client, oids: number[]): Promise<Map<number, RelationSize>> {
  const out = new Map<number, RelationSize>();
  if (oids.length === 0) return out;
  // reltuples is -1 (PostgreSQL 14+) or 0 with relpages 0 (before) for a table never vacuumed or
  // analyzed: unknown then, unless the table has no pages at all (empty).
  const { rows } = await client.query<{ oid: number; blocks: string; bytes: string; tuples: string | null }>(
    `SELECT c.oid, (pg_relation_size(c.oid) / current_setting('block_size')::int)::text AS blocks, pg_table_size(c.oid)::text AS bytes,
       CASE WHEN c.reltuples < 0 OR (c.reltuples = 0 AND c.relpages = 0 AND pg_relation_size(c.oid) > 0) THEN NULL ELSE round(c.reltuples)::bigint::text END AS tuples
     FROM pg_class c WHERE c.oid = ANY($1::oid[])`,
    [oids],
  );
  for (const r of rows) out.set(Number(r.oid), { blocks: Number(r.blocks), bytes: Number(r.bytes), ...(r.tuples !== null ? { rows: Number(r.tuples) } : {}) });
  return out;
}

/** Rows of (relation, sequence) grouped by relation OID. */
function groupByRelation(rows: { rel: number; oid: number; schema: string; name: string }[]): Map<number, { oid: number; schema: string; name: string }[]> {
  const out = new Map<number, { oid: number; schema: string; name: string }[]>();
  for (const r of rows) {
    const rel = Number(r.rel);
    let list = out.get(rel);
    if (list === undefined) out.set(rel, (list = []));
    list.push({ oid: Number(r.oid), schema: r.schema, name: r.name });
  }
  return out;
}
