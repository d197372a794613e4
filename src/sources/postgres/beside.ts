/**
 * Restoring a renamed copy beside the live object of its original name (`--rename
 * public.orders=public.orders_yesterday` into the database where public.orders lives).
 *
 * Into an existing database, restored objects are created under their source names in the
 * switch and renamed at its end (load.ts applyRenames), so that views, defaults, triggers,
 * comments and grants, whose SQL names the source relations, land on the copy. A live
 * relation holding one of those names (the table itself, an index or index-backed
 * constraint, an owned sequence, an extended statistics object of the copy) is therefore
 * *moved aside* at the start of the switch (renamed to `cairn_aside_<tag>_<n>`), and *given
 * back* its name at the end, inside the same transaction: no other session ever sees it
 * renamed, its OID, data, dependents and definition are untouched (views and foreign keys of
 * the target refer to it by OID). The price is a lock (ACCESS EXCLUSIVE) on each object moved
 * aside for the duration of the switch, bounded by the switch's lock timeout like every lock
 * the switch takes.
 *
 * The copy's companions (indexes, constraints, owned sequences, statistics) whose names the live
 * objects hold get new names, by one rule (chosen so that PostgreSQL's default names read right):
 * a name that starts with the source table's name takes the new table name in its place
 * (`orders_pkey` → `orders_yesterday_pkey`, `orders_id_seq` → `orders_yesterday_id_seq`); any
 * other name gets `_<new table name>` appended (`idx_created` → `idx_created_orders_yesterday`);
 * when that is taken too, `_1`, `_2`, … is appended; all within 63 bytes. Each such new name is
 * reported as a warning. Companions whose names are free keep them.
 */
import type pg from 'pg';
import { ConflictError } from '../../core/errors.js';
import { randomId } from '../../core/ids.js';
import { quoteIdent } from './catalog.js';
import { display } from './naming.js';
import type { Plan, PlannedCollection, QName } from './plan.js';
import { addedConstraint, createdIndex, headRelation, readIdent, relKey, truncated } from './staging.js';
import type { ScriptBlock } from './toc.js';

/** What a name the copy is created under belongs to. */
type BesideWhat = 'collection' | 'index' | 'constraint' | 'sequence' | 'statistics';

/** A name a renamed collection's copy takes in the switch before its final rename. */
export interface BesideName extends QName {
  what: BesideWhat;
  /** The renamed collection it is (what = collection) or belongs to. */
  owner: PlannedCollection;
}

/** A live object moved aside in the switch: its word for ALTER, name and parked name. */
export interface MovedAside {
  name: BesideName;
  word: string;
  parked: string;
}

const isRenamed = (c: PlannedCollection): boolean => display(c.source) !== display(c.target);

/** The statistics object and its table of `CREATE STATISTICS s.n … FROM s.t;`, or undefined. */
function createdStatistics(sql: string): { name: QName; table: QName } | undefined {
  if (!sql.startsWith('CREATE STATISTICS ')) return undefined;
  const qualified = (at: number): { q: QName; end: number } | undefined => {
    const a = readIdent(sql, at);
    if (a === undefined || sql[a.end] !== '.') return undefined;
    const b = readIdent(sql, a.end + 1);
    return b === undefined ? undefined : { q: { schema: a.name, name: b.name }, end: b.end };
  };
  const name = qualified('CREATE STATISTICS '.length);
  const from = sql.lastIndexOf(' FROM ');
  const table = from < 0 ? undefined : qualified(from + ' FROM '.length);
  return name && table ? { name: name.q, table: table.q } : undefined;
}

/**
 * Every name the copies of renamed collections take in the switch before their final rename:
 * the collections' source names, their owned sequences, and the indexes, index-backed
 * constraints and statistics objects the post-data script creates on them. Empty when nothing
 * is renamed.
 */
export function besideNames(plan: Plan, post: ScriptBlock[]): BesideName[] {
  const renamed = new Map(plan.collections.filter(isRenamed).map((c) => [relKey(c.source.schema, c.source.name), c]));
  if (renamed.size === 0) return [];
  const out: BesideName[] = [];
  for (const c of renamed.values()) {
    out.push({ schema: c.source.schema, name: c.source.name, what: 'collection', owner: c });
    for (const s of c.table?.sequences ?? []) out.push({ schema: s.schema, name: s.name, what: 'sequence', owner: c });
  }
  for (const b of post) {
    if (b.desc === 'INDEX' || b.desc === 'CONSTRAINT') {
      const head = headRelation(b.sql);
      const owner = head === undefined ? undefined : renamed.get(relKey(head.schema, head.name));
      const name = b.desc === 'INDEX' ? createdIndex(b.sql) : addedConstraint(b.sql);
      // An index lives in its table's schema.
      if (owner !== undefined && head !== undefined && name !== undefined) out.push({ schema: head.schema, name, what: b.desc === 'INDEX' ? 'index' : 'constraint', owner });
    } else if (b.desc === 'STATISTICS') {
      const s = createdStatistics(b.sql);
      const owner = s === undefined ? undefined : renamed.get(relKey(s.table.schema, s.table.name));
      if (s !== undefined && owner !== undefined) out.push({ ...s.name, what: 'statistics', owner });
    }
  }
  return out;
}

/** The ALTER word for a pg_class relkind (any relation may hold a name the copy needs). */
function alterWord(relkind: string): string {
  switch (relkind) {
    case 'i':
    case 'I':
      return 'INDEX';
    case 'S':
      return 'SEQUENCE';
    case 'v':
      return 'VIEW';
    case 'm':
      return 'MATERIALIZED VIEW';
    case 'f':
      return 'FOREIGN TABLE';
    case 'c':
      return 'TYPE';
    default:
      return 'TABLE';
  }
}

const sqlName = (schema: string, name: string): string => `${quoteIdent(schema)}.${quoteIdent(name)}`;

/**
 * Moves aside (renames to `cairn_aside_<tag>_<n>`) every object of the target holding one of
 * `names`; run inside the switch transaction, after what an overwrite replaces is dropped.
 * Returns what was moved, for giveBack.
 */
export async function moveAside(client: pg.Client, names: BesideName[]): Promise<MovedAside[]> {
  if (names.length === 0) return [];
  const relations = names.filter((n) => n.what !== 'statistics');
  const stats = names.filter((n) => n.what === 'statistics');
  const found = new Map<string, string>();
  if (relations.length > 0) {
    const { rows } = await client.query<{ schema: string; name: string; relkind: string }>(
      `SELECT n.nspname AS schema, c.relname AS name, c.relkind::text AS relkind
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE (n.nspname, c.relname) IN (SELECT * FROM unnest($1::text[], $2::text[]))`,
      [relations.map((n) => n.schema), relations.map((n) => n.name)],
    );
    for (const r of rows) found.set(relKey(r.schema, r.name), alterWord(r.relkind));
  }
  const foundStats = new Set<string>();
  if (stats.length > 0) {
    const { rows } = await client.query<{ schema: string; name: string }>(
      `SELECT n.nspname AS schema, s.stxname AS name
         FROM pg_catalog.pg_statistic_ext s JOIN pg_catalog.pg_namespace n ON n.oid = s.stxnamespace
        WHERE (n.nspname, s.stxname) IN (SELECT * FROM unnest($1::text[], $2::text[]))`,
      [stats.map((n) => n.schema), stats.map((n) => n.name)],
    );
    for (const r of rows) foundStats.add(relKey(r.schema, r.name));
  }
  const tag = randomId(4);
  const moved: MovedAside[] = [];
  const seen = new Set<string>();
  for (const n of names) {
    const key = `${n.what === 'statistics' ? 's' : 'r'}${relKey(n.schema, n.name)}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const word = n.what === 'statistics' ? (foundStats.has(relKey(n.schema, n.name)) ? 'STATISTICS' : undefined) : found.get(relKey(n.schema, n.name));
    if (word === undefined) continue;
    const parked = `cairn_aside_${tag}_${moved.length}`;
    await client.query(`ALTER ${word} ${sqlName(n.schema, n.name)} RENAME TO ${quoteIdent(parked)}`);
    moved.push({ name: n, word, parked });
  }
  return moved;
}

/**
 * The names to try for a companion of the copy whose name a live object holds (see the module
 * comment): the new table name in place of the old one, or `_<new table name>` appended, then
 * numbered.
 */
export function besideCandidates(original: string, owner: PlannedCollection): string[] {
  const base = original.startsWith(owner.source.name) && owner.source.name !== owner.target.name
    ? truncated(owner.target.name + original.slice(owner.source.name.length))
    : truncated(original, `_${owner.target.name}`);
  return [...new Set([base, ...Array.from({ length: 99 }, (_, n) => truncated(base, `_${n + 1}`))])].filter((n) => n !== original);
}

/**
 * Gives the moved objects their names back, at the end of the switch (after applyRenames): a
 * companion of the copy still holding the name is renamed first (besideCandidates, free in
 * its schema and among the names given back). Returns a warning per companion renamed.
 * Errors: ConflictError when no candidate is free (nothing is committed: the switch rolls back).
 */
export async function giveBack(client: pg.Client, moved: MovedAside[]): Promise<string[]> {
  const warnings: string[] = [];
  const returning = new Set(moved.map((m) => relKey(m.name.schema, m.name.name)));
  for (const m of moved) {
    const { name } = m;
    if (name.what === 'collection') continue;
    const stats = name.what === 'statistics';
    const holder = await client.query(
      stats
        ? `SELECT 1 FROM pg_catalog.pg_statistic_ext s JOIN pg_catalog.pg_namespace n ON n.oid = s.stxnamespace WHERE n.nspname = $1 AND s.stxname = $2`
        : `SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`,
      [name.schema, name.name],
    );
    // Gone: the copy's companion moved schema with its table (applyRenames named it there).
    if (holder.rowCount === 0) continue;
    const candidates = besideCandidates(name.name, name.owner);
    const { rows } = await client.query<{ name: string }>(
      stats
        ? `SELECT s.stxname AS name FROM pg_catalog.pg_statistic_ext s JOIN pg_catalog.pg_namespace n ON n.oid = s.stxnamespace WHERE n.nspname = $1 AND s.stxname = ANY($2)`
        : `SELECT c.relname AS name FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = ANY($2)`,
      [name.schema, candidates],
    );
    const taken = new Set(rows.map((r) => r.name));
    const chosen = candidates.find((c) => !taken.has(c) && !returning.has(relKey(name.schema, c)));
    if (chosen === undefined) {
      throw new ConflictError(
        `Cannot name the ${name.what} "${name.name}" of ${display(name.owner.target)} beside the one of ${display(name.owner.source)}: ${candidates.length} names tried are taken in schema "${name.schema}". Nothing was changed; restore into another schema or database.`,
      );
    }
    const word = stats ? 'STATISTICS' : name.what === 'sequence' ? 'SEQUENCE' : 'INDEX';
    await client.query(`ALTER ${word} ${sqlName(name.schema, name.name)} RENAME TO ${quoteIdent(chosen)}`);
    // A primary key, unique or exclusion constraint is renamed with its index (same name).
    const what = name.what === 'constraint' ? 'constraint (and its index)' : name.what;
    warnings.push(`${what} "${name.name}" of ${display(name.owner.target)} restored as "${chosen}": the target's "${name.name}" keeps its name`);
  }
  for (const m of moved) {
    await client.query(`ALTER ${m.word} ${sqlName(m.name.schema, m.parked)} RENAME TO ${quoteIdent(m.name.name)}`);
  }
  return warnings;
}
