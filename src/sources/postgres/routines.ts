/**
 * Functions and procedures as collections (issue 15, StarRocks backs up and restores UDFs one
 * by one): what the database has, which of them each table, view and supporting object needs,
 * and which each routine calls, read at backup in the snapshot.
 *
 * A routine collection is one name (`schema.name`, naming.ts display) with every overload of
 * that name: kind "procedure" when all of them are procedures, else "function". When a
 * relation has the same name, the routine collection is `schema.name()` so that two
 * collections never share a name. Aggregates are not collections: like types and operators
 * they are supporting objects, always restored.
 *
 * What a restored object needs comes along whatever the selection (a trigger's function, a
 * default's, a check's, a view's, an index expression's, a policy's): pg_depend records those.
 * What a routine calls comes along with it: pg_depend records it for SQL-standard bodies
 * (`BEGIN ATOMIC`); for bodies kept as text (PL/pgSQL, SQL strings) PostgreSQL records
 * nothing, so a routine whose name is followed by "(" in another's body counts as called by it
 * (calledNames; a false match only brings one routine too many). Routines that supporting objects use
 * (a domain's check, a type's I/O, an operator, a cast, an aggregate, an event trigger…) are
 * restored with every selection, as those objects are.
 *
 * Extension members and system schemas are left out: CREATE EXTENSION brings the former.
 */
import type pg from 'pg';
import { display } from './naming.js';

/** One overload, as the catalog has it. */
export interface CatalogRoutine {
  oid: number;
  schema: string;
  name: string;
  /** pg_proc.prokind: f function, p procedure, w window function. */
  prokind: 'f' | 'p' | 'w';
  /** `oid::regprocedure` under an empty search_path: `public.add(integer, public.mood)`. */
  signature: string;
  /** ROUTINE_DEFINITION_HASH of it. */
  definitionHash?: string;
}

/** One overload as the manifest records it. */
export interface PgRoutineOverload {
  oid: number;
  signature: string;
  prokind: 'f' | 'p' | 'w';
  /**
   * SHA-256 (hex) of `pg_get_functiondef` under an empty search_path (ROUTINE_DEFINITION_HASH):
   * a target routine of the same signature with the same hash is the same routine, no conflict.
   * Absent in older backups.
   */
  definitionHash?: string;
}

/** SQL for the hash of routine `oid`'s definition (PgRoutineOverload.definitionHash); the session's search_path must be empty. */
export const ROUTINE_DEFINITION_HASH = (oid: string): string =>
  `pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(pg_catalog.pg_get_functiondef(${oid}), 'UTF8')), 'hex')`;

/** kind "function" | "procedure": every overload of one name. */
export interface PgRoutineDefinition {
  schema: string;
  name: string;
  overloads: PgRoutineOverload[];
  /** OIDs of the routines these call directly (restored with them, and what those call: PgSchemaDefinition.routineCalls). */
  calls: number[];
  /** Relations ("schema.name") whose row type or rows these need to be created (pg_depend). */
  relations: string[];
}

/** What the snapshot knows about the routines of the database. */
export interface RoutineCatalog {
  routines: CatalogRoutine[];
  /** Routine OID → routine OIDs it calls, directly (pg_depend, and names in text bodies). */
  calls: Map<number, Set<number>>;
  /** Relation OID → routine OIDs its objects use directly (triggers, defaults, checks, rules, policies, indexes, statistics). */
  usedByRelation: Map<number, Set<number>>;
  /** Routines that objects restored with every selection use directly (types, operators, casts, aggregates, event triggers…). */
  support: Set<number>;
  /** Routine OID → relation OIDs it depends on (its row types, the tables a BEGIN ATOMIC body reads). */
  relationsOf: Map<number, Set<number>>;
}

const USER_SCHEMAS = `n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'`;

/**
 * Reads the user's functions and procedures (not aggregates, not extension members) with what
 * uses them and what they use, in the caller's snapshot. The session's search_path must be
 * empty (SESSION_SETUP) so that signatures come out schema-qualified.
 */
export async function readRoutineCatalog(client: pg.Client): Promise<RoutineCatalog> {
  const rows = await routineRows(client, true);
  const routines: CatalogRoutine[] = rows.map((r) => ({ oid: Number(r.oid), schema: r.schema, name: r.name, prokind: r.prokind, signature: r.signature, definitionHash: r.hash ?? undefined }));
  const calls = new Map<number, Set<number>>();
  const usedByRelation = new Map<number, Set<number>>();
  const support = new Set<number>();
  const relationsOf = new Map<number, Set<number>>();
  if (routines.length === 0) return { routines, calls, usedByRelation, support, relationsOf };
  const oids = routines.map((r) => r.oid);
  const add = (map: Map<number, Set<number>>, key: number, value: number): void => {
    const set = map.get(key) ?? new Set<number>();
    set.add(value);
    map.set(key, set);
  };

  // Who uses each routine, by the catalog the using object lives in.
  const { rows: users } = await client.query<{ fn: number; kind: string; obj: number | null }>(
    `WITH fns AS MATERIALIZED (SELECT unnest($1::oid[]) AS fn)
     SELECT d.refobjid AS fn,
            CASE d.classid
              WHEN 'pg_catalog.pg_class'::regclass THEN 'rel'
              WHEN 'pg_catalog.pg_attrdef'::regclass THEN 'rel'
              WHEN 'pg_catalog.pg_trigger'::regclass THEN 'rel'
              WHEN 'pg_catalog.pg_rewrite'::regclass THEN 'rel'
              WHEN 'pg_catalog.pg_policy'::regclass THEN 'rel'
              WHEN 'pg_catalog.pg_statistic_ext'::regclass THEN 'rel'
              WHEN 'pg_catalog.pg_constraint'::regclass THEN CASE WHEN con.conrelid <> 0 THEN 'rel' ELSE 'support' END
              WHEN 'pg_catalog.pg_proc'::regclass THEN CASE WHEN up.prokind IN ('f', 'p', 'w') THEN 'routine' ELSE 'support' END
              ELSE 'support'
            END AS kind,
            CASE d.classid
              WHEN 'pg_catalog.pg_class'::regclass THEN coalesce(ix.indrelid, d.objid)
              WHEN 'pg_catalog.pg_attrdef'::regclass THEN ad.adrelid
              WHEN 'pg_catalog.pg_trigger'::regclass THEN tg.tgrelid
              WHEN 'pg_catalog.pg_rewrite'::regclass THEN rw.ev_class
              WHEN 'pg_catalog.pg_policy'::regclass THEN pol.polrelid
              WHEN 'pg_catalog.pg_statistic_ext'::regclass THEN st.stxrelid
              WHEN 'pg_catalog.pg_constraint'::regclass THEN con.conrelid
              WHEN 'pg_catalog.pg_proc'::regclass THEN d.objid
            END AS obj
       FROM fns f JOIN pg_catalog.pg_depend d ON d.refclassid = 'pg_catalog.pg_proc'::regclass AND d.refobjid = f.fn AND d.deptype NOT IN ('e', 'x')
       LEFT JOIN pg_catalog.pg_index ix ON d.classid = 'pg_catalog.pg_class'::regclass AND ix.indexrelid = d.objid
       LEFT JOIN pg_catalog.pg_attrdef ad ON d.classid = 'pg_catalog.pg_attrdef'::regclass AND ad.oid = d.objid
       LEFT JOIN pg_catalog.pg_trigger tg ON d.classid = 'pg_catalog.pg_trigger'::regclass AND tg.oid = d.objid
       LEFT JOIN pg_catalog.pg_rewrite rw ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND rw.oid = d.objid
       LEFT JOIN pg_catalog.pg_policy pol ON d.classid = 'pg_catalog.pg_policy'::regclass AND pol.oid = d.objid
       LEFT JOIN pg_catalog.pg_statistic_ext st ON d.classid = 'pg_catalog.pg_statistic_ext'::regclass AND st.oid = d.objid
       LEFT JOIN pg_catalog.pg_constraint con ON d.classid = 'pg_catalog.pg_constraint'::regclass AND con.oid = d.objid
       LEFT JOIN pg_catalog.pg_proc up ON d.classid = 'pg_catalog.pg_proc'::regclass AND up.oid = d.objid`,
    [oids],
  );
  for (const u of users) {
    const fn = Number(u.fn);
    if (u.kind === 'routine' && u.obj !== null) add(calls, Number(u.obj), fn);
    else if (u.kind === 'rel' && u.obj !== null) add(usedByRelation, Number(u.obj), fn);
    else support.add(fn);
  }

  // What each routine depends on: other routines (SQL-standard bodies) and relations (row
  // types of its arguments and result, tables a BEGIN ATOMIC body reads).
  const { rows: deps } = await client.query<{ fn: number; kind: string; obj: number }>(
    `WITH fns AS MATERIALIZED (SELECT unnest($1::oid[]) AS fn)
     SELECT d.objid AS fn, 'routine' AS kind, d.refobjid AS obj
       FROM fns f JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = f.fn
        AND d.refclassid = 'pg_catalog.pg_proc'::regclass AND d.deptype = 'n'
     UNION
     SELECT d.objid, 'rel', d.refobjid
       FROM fns f JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = f.fn
        AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.deptype = 'n'
     UNION
     SELECT d.objid, 'rel', coalesce(nullif(t.typrelid, 0), e.typrelid)
       FROM fns f JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = f.fn
        AND d.refclassid = 'pg_catalog.pg_type'::regclass AND d.deptype = 'n'
       JOIN pg_catalog.pg_type t ON t.oid = d.refobjid
       LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem AND t.typelem <> 0
      WHERE coalesce(nullif(t.typrelid, 0), e.typrelid) <> 0`,
    [oids],
  );
  for (const d of deps) {
    if (d.kind === 'routine') add(calls, Number(d.fn), Number(d.obj));
    else add(relationsOf, Number(d.fn), Number(d.obj));
  }

  // Names in text bodies: every name followed by "(" (unquoted ones lowercased, as PostgreSQL
  // reads them) that is the name of a routine.
  const byName = new Map<string, number[]>();
  for (const r of routines) byName.set(r.name, [...(byName.get(r.name) ?? []), r.oid]);
  for (const r of rows) {
    if (r.src === null) continue;
    for (const word of calledNames(r.src)) {
      for (const callee of byName.get(word) ?? []) if (callee !== Number(r.oid)) add(calls, Number(r.oid), callee);
    }
  }
  return { routines, calls, usedByRelation, support, relationsOf };
}

/** The user's functions and procedures alone (names, kinds, signatures), without what uses them: what a selection offers. */
export async function readRoutines(client: pg.Client): Promise<CatalogRoutine[]> {
  return (await routineRows(client, false)).map((r) => ({ oid: Number(r.oid), schema: r.schema, name: r.name, prokind: r.prokind, signature: r.signature }));
}

/** pg_proc rows of the user's routines; `full`: with their definition hash and body text. */
async function routineRows(
  client: pg.Client,
  full: boolean,
): Promise<{ oid: number; schema: string; name: string; prokind: 'f' | 'p' | 'w'; signature: string; hash: string | null; src: string | null }[]> {
  const { rows } = await client.query<{ oid: number; schema: string; name: string; prokind: 'f' | 'p' | 'w'; signature: string; hash: string | null; src: string | null }>(
    `SELECT p.oid, n.nspname AS schema, p.proname AS name, p.prokind::text AS prokind, p.oid::pg_catalog.regprocedure::text AS signature,
            ${full ? ROUTINE_DEFINITION_HASH('p.oid') : 'NULL'} AS hash,
            ${full ? "CASE WHEN l.lanname IN ('c', 'internal') THEN NULL ELSE p.prosrc END" : 'NULL'} AS src
       FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
       JOIN pg_catalog.pg_language l ON l.oid = p.prolang
      WHERE p.prokind IN ('f', 'p', 'w') AND ${USER_SCHEMAS}
        -- extension members come with their extension; routines a type made (a range type's
        -- constructors) come with their type, and pg_dump writes none of them
        AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype IN ('e', 'i'))
      ORDER BY n.nspname, p.proname, p.oid`,
  );
  return rows;
}

/** Words after which a name followed by "(" is a table's (`INSERT INTO t (a, b)`), not a call. */
const TABLE_CONTEXT = new Set(['into', 'table', 'references']);

/**
 * The names a routine body may call: each name followed by "(" (unquoted ones lowercased as
 * PostgreSQL reads them, quoted ones as written; `schema.fn(` gives fn), except after a word
 * that makes it a table (`INSERT INTO t (…)`). Text inside literals is read too: dynamic SQL
 * (`EXECUTE 'SELECT fn(1)'`) calls what it names. A false match brings one routine too many.
 */
export function calledNames(src: string): Set<string> {
  const out = new Set<string>();
  const word = /"((?:[^"]|"")+)"|([A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*)/g;
  let previous = '';
  for (const m of src.matchAll(word)) {
    const name = m[1] !== undefined ? m[1].replace(/""/g, '"') : (m[2] as string).replace(/[A-Z]/g, (c) => c.toLowerCase());
    const after = src.slice((m.index ?? 0) + m[0].length);
    if (/^\s*\(/.test(after) && !TABLE_CONTEXT.has(previous)) out.add(name);
    // The word before a name, skipping a schema qualifier (`INSERT INTO s.t (`).
    if (!/^\s*\./.test(after)) previous = m[1] !== undefined ? '' : name;
  }
  return out;
}

/** `start` and every routine it calls, directly or not. */
export function callClosure(start: Iterable<number>, calls: Map<number, Set<number>>): Set<number> {
  const seen = new Set<number>();
  const queue = [...start];
  while (queue.length > 0) {
    const oid = queue.pop() as number;
    if (seen.has(oid)) continue;
    seen.add(oid);
    for (const next of calls.get(oid) ?? []) if (!seen.has(next)) queue.push(next);
  }
  return seen;
}

/** One routine collection: its name, kind and overloads. */
export interface RoutineGroup {
  name: string;
  kind: 'function' | 'procedure';
  schema: string;
  routine: string;
  overloads: CatalogRoutine[];
}

/**
 * The routines grouped by name into collections; `taken` holds the relations' collection
 * names, which a routine of the same name yields to (it becomes `schema.name()`).
 */
export function routineGroups(routines: CatalogRoutine[], taken: Set<string>): RoutineGroup[] {
  const groups = new Map<string, CatalogRoutine[]>();
  for (const r of routines) {
    const key = display(r);
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups].map(([key, overloads]) => {
    const first = overloads[0] as CatalogRoutine;
    return {
      name: taken.has(key) ? display({ schema: first.schema, name: `${first.name}()` }) : key,
      kind: overloads.every((o) => o.prokind === 'p') ? 'procedure' : 'function',
      schema: first.schema,
      routine: first.name,
      overloads,
    };
  });
}
