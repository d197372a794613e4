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
 * policies, and owned sequences.
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
  const out = new Map<number, { oid: number; schema: string; name: string }[]>();
  if (tableOids.length === 0) return out;
  const { rows } = await client.query<{ rel: number; oid: number; schema: string; name: string }>(
    `SELECT DISTINCT d.refobjid AS rel, s.oid, n.nspname AS schema, s.relname AS name
     FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
       JOIN pg_namespace n ON n.oid = s.relnamespace
     WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
       AND d.deptype IN ('a', 'i') AND d.refobjid = ANY($1::oid[])
     ORDER BY n.nspname, s.relname`,
    [tableOids],
  );
  for (const r of rows) {
    const rel = Number(r.rel);
    let list = out.get(rel);
    if (list === undefined) out.set(rel, (list = []));
    list.push({ oid: Number(r.oid), schema: r.schema, name: r.name });
  }
  return out;
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
  extensions: { name: string; schema: string; version: string }[];
  largeObjects: number;
}

export async function readDatabaseInfo(client: pg.Client): Promise<DatabaseInfo> {
  const db = await client.query<{ encoding: string; collate: string; ctype: string }>(
    `SELECT pg_encoding_to_char(encoding) AS encoding, datcollate AS collate, datctype AS ctype
     FROM pg_database WHERE datname = current_database()`,
  );
  const ext = await client.query<{ name: string; schema: string; version: string }>(
    `SELECT e.extname AS name, n.nspname AS schema, e.extversion AS version
     FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace ORDER BY e.extname`,
  );
  const lo = await client.query<{ n: string }>('SELECT count(*)::text AS n FROM pg_largeobject_metadata');
  const row = db.rows[0];
  return {
    encoding: row?.encoding ?? '',
    collate: row?.collate ?? '',
    ctype: row?.ctype ?? '',
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
}

/** Physical sizes of tables (not transactional: as the files are now, close enough to plan reads). */
export async function readRelationSizes(client: pg.Client, oids: number[]): Promise<Map<number, RelationSize>> {
  const out = new Map<number, RelationSize>();
  if (oids.length === 0) return out;
  const { rows } = await client.query<{ oid: number; blocks: string; bytes: string }>(
    `SELECT c.oid, (pg_relation_size(c.oid) / current_setting('block_size')::int)::text AS blocks, pg_table_size(c.oid)::text AS bytes
     FROM pg_class c WHERE c.oid = ANY($1::oid[])`,
    [oids],
  );
  for (const r of rows) out.set(Number(r.oid), { blocks: Number(r.blocks), bytes: Number(r.bytes) });
  return out;
}
