/**
 * Conflicts between a restore and what the target database holds: finding them before anything
 * is written (findConflicts, assertNoConflicts: the "fail" and "overwrite" policies), dropping
 * what an overwrite replaces inside the switch (dropReplaced), and turning the errors a step
 * meets at run time into ConflictErrors that say what to do (runStep).
 *
 * Names are compared as stored in pg_class (exact, case-sensitive): "Users" and users are two
 * relations, as PostgreSQL sees them.
 */
import type pg from 'pg';
import { CairnError, ConflictError } from '../../core/errors.js';
import { existingRoutines, routineConflicts } from './routine-restore.js';
import type { ConflictPolicy } from '../types.js';
import { pgError, pgLocation, type PgConnectionSettings } from './connection.js';
import { postgresNaming } from './naming.js';
import { ALTER_WORD, display, KIND_WORD, qname, type Plan, type PlannedCollection, type QName, type Relkind } from './plan.js';

/** Errors that say "this object exists already". */
export const DUPLICATE_CODES = new Set(['42710', '42P07', '42723', '42P06', '42P04', '42P05']);

/**
 * Whether an error says "this object exists already": one of DUPLICATE_CODES, or a unique
 * violation on a system catalog, which is how some CREATE statements say it (CREATE TEXT SEARCH
 * CONFIGURATION: duplicate key in pg_ts_config).
 */
export function isDuplicateObject(err: unknown): boolean {
  const e = err as { code?: string; schema?: string };
  return (e.code !== undefined && DUPLICATE_CODES.has(e.code)) || (e.code === '23505' && e.schema === 'pg_catalog');
}

/** A relation found in the target: pg_class.relkind as text, oid as a number. */
interface ExistingRelation {
  schema: string;
  name: string;
  relkind: string;
  oid: number;
}

/**
 * The relations of the target with one of these names (any relkind, indexes included). A name
 * the target's encoding has no character for (a WIN1252 database is sent U+0081) cannot exist
 * there: it is left out rather than failing the whole lookup (outside a transaction: inside one,
 * the failed statement would abort it; names read from the catalog always convert).
 */
async function findRelations(client: pg.Client, names: QName[]): Promise<ExistingRelation[]> {
  if (names.length === 0) return [];
  const query = async (some: QName[]): Promise<ExistingRelation[]> =>
    (
      await client.query<ExistingRelation>(
        `SELECT n.nspname AS schema, c.relname AS name, c.relkind::text AS relkind, c.oid::int8::float8 AS oid
           FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE (n.nspname, c.relname) IN (SELECT * FROM unnest($1::text[], $2::text[]))`,
        [some.map((n) => n.schema), some.map((n) => n.name)],
      )
    ).rows;
  try {
    return await query(names);
  } catch (err) {
    if ((err as { code?: string }).code !== '22P05') throw err;
  }
  const found: ExistingRelation[] = [];
  for (const n of names) {
    try {
      found.push(...(await query([n])));
    } catch (err) {
      if ((err as { code?: string }).code !== '22P05') throw err;
    }
  }
  return found;
}

/** "schema.name" of the given names that exist in the target. */
export async function existingRelations(client: pg.Client, names: QName[]): Promise<Set<string>> {
  return new Set((await findRelations(client, names)).map((r) => display(r)));
}

interface ColumnRow {
  name: string;
  type: string;
  qualified: string;
  notNull: boolean;
}

async function tableColumns(client: pg.Client, oid: number): Promise<ColumnRow[]> {
  // format_type() qualifies a type unless its schema is on the search path: compare both the
  // spelling under the session's search path and the fully qualified one (as pg_dump sees it).
  const sql = `SELECT a.attname AS name, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS "notNull"
                 FROM pg_catalog.pg_attribute a
                WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
                ORDER BY a.attnum`;
  const { rows } = await client.query<Omit<ColumnRow, 'qualified'>>(sql, [oid]);
  const { rows: saved } = await client.query<{ path: string }>(`SELECT pg_catalog.current_setting('search_path') AS path`);
  await client.query(`SELECT pg_catalog.set_config('search_path', 'pg_catalog', false)`);
  try {
    const { rows: qualified } = await client.query<{ type: string }>(sql, [oid]);
    return rows.map((r, i) => ({ ...r, qualified: qualified[i]?.type ?? r.type }));
  } finally {
    await client.query(`SELECT pg_catalog.set_config('search_path', $1, false)`, [saved[0]?.path ?? '"$user", public']);
  }
}

function describeColumns(cols: { name: string; type: string; notNull: boolean }[]): string {
  return cols.map((c) => `${c.name} ${c.type}${c.notNull ? ' NOT NULL' : ''}`).join(', ');
}

/** A collection name as it is typed on the command line (public."t " for a trailing space): how messages show names. */
const typed = (name: string): string => postgresNaming.written(name);

/** Every reason the plan cannot be applied to the existing target database, as sentences. */
async function findConflicts(client: pg.Client, plan: Plan, onConflict: ConflictPolicy, location: string): Promise<string[]> {
  const names = plan.collections.map((c) => c.target);
  const found = new Map((await findRelations(client, names)).map((r) => [display(r), r]));
  const problems: string[] = [];
  // A partitioned table restored under a new name gets its restored partitions attached to the
  // copy. A partition that keeps a name the target already uses (most likely the live
  // original's partition of that name) would be replaced by overwrite, so the live table would
  // lose it and its rows, and fail would suggest just that: refused either way, naming them.
  // The rule is "the name exists in the target", not "keeps its original name": a partition
  // whose name is free (another database, a dropped partition) restores harmlessly.
  const renamedParents = new Map(plan.collections.filter((c) => display(c.source) !== display(c.target)).map((c) => [display(c.source), c]));
  const stranded = new Map<string, PlannedCollection[]>();
  for (const c of plan.collections) {
    const parent = c.table?.partitionOf;
    if (parent == null || !renamedParents.has(parent) || !found.has(display(c.target))) continue;
    stranded.set(parent, [...(stranded.get(parent) ?? []), c]);
  }
  for (const [parent, parts] of stranded) {
    const copy = (renamedParents.get(parent) as PlannedCollection).target;
    const from = (renamedParents.get(parent) as PlannedCollection).source.name;
    // The suggested new name: the copy's name with the partition's suffix (orders_2024 → orders_y_2024).
    const suggest = (p: QName): string => display({ schema: copy.schema, name: p.name.startsWith(from) ? copy.name + p.name.slice(from.length) : `${copy.name}_${p.name}` });
    const names = parts.map((p) => typed(display(p.target)));
    const many = parts.length > 1;
    problems.push(
      `Partitioned table ${typed(parent)} is restored as ${typed(display(copy))}, but its partition${many ? 's' : ''} ${names.join(', ')} keep${many ? '' : 's'} a name that exists in ${location}: restoring would replace ${many ? 'them' : 'it'}, and the live ${typed(parent)} would lose ${many ? 'those partitions' : 'that partition'} and ${many ? 'their' : 'its'} rows. Rename the partitions too (--rename ${parts.map((p) => `${typed(display(p.target))}=${typed(suggest(p.target))}`).join(',')}), or --exclude them.`,
    );
  }
  const hint = 'Use --on-conflict overwrite to replace it, --rename to restore it under another name, or --exclude it.';
  for (const c of plan.collections) {
    const name = display(c.target);
    const existing = found.get(name);
    if (existing === undefined) continue;
    if (c.table?.partitionOf != null && stranded.get(c.table.partitionOf)?.includes(c)) continue;
    const existingKind = KIND_WORD[existing.relkind as Relkind] ?? (existing.relkind === 'i' || existing.relkind === 'I' ? 'index' : `relation (relkind ${existing.relkind})`);
    if (onConflict === 'fail') {
      problems.push(`${capitalize(existingKind)} ${typed(name)} already exists in ${location}. ${hint}`);
      continue;
    }
    if (existing.relkind !== c.relkind) {
      problems.push(
        `${typed(name)} exists in ${location} as a ${existingKind}, and the backup has a ${KIND_WORD[c.relkind]}: overwrite only replaces a ${KIND_WORD[c.relkind]} with a ${KIND_WORD[c.relkind]}. Use --rename to restore it under another name, or --exclude it.`,
      );
      continue;
    }
    if (c.table !== undefined) {
      const current = await tableColumns(client, existing.oid);
      const wanted = c.table.columns;
      const same =
        current.length === wanted.length &&
        current.every((col, i) => {
          const w = wanted[i] as (typeof wanted)[number];
          return col.name === w.name && (col.type === w.type || col.qualified === w.type) && col.notNull === w.notNull;
        });
      if (!same) {
        problems.push(
          `Table ${typed(name)} in ${location} has different columns than the backup (target: ${describeColumns(current)}; backup: ${describeColumns(wanted)}). Use --rename to restore it under another name, or --exclude it.`,
        );
        continue;
      }
    }
  }
  // A renamed collection whose source name is taken restores beside it: the live object steps
  // aside for the switch (beside.ts).
  // … but a partition restored without its parent is attached to the target's parent, where
  // the live partition of that name holds its bounds.
  const restored = new Set(plan.collections.map((c) => display(c.source)));
  const lone = plan.collections.filter((c) => c.table?.partitionOf && !restored.has(c.table.partitionOf) && display(c.source) !== display(c.target));
  const live = new Set((await findRelations(client, lone.map((c) => c.source))).map((r) => display(r)));
  for (const c of lone) {
    if (!live.has(display(c.source))) continue;
    const parent = typed(c.table?.partitionOf as string);
    problems.push(
      `Partition ${typed(c.item.entry.name)} is restored as ${typed(display(c.target))} without its partitioned table ${parent}, so it would be attached to ${parent} in ${location}, where ${typed(display(c.source))} holds its bounds. Restore ${parent} with its partitions under new names too (--include '${parent}*' with a --rename for each), or into another database.`,
    );
  }
  return problems;
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/**
 * Throws ConflictError (one problem, or all of them listed) when the plan cannot be applied to
 * the existing target database under `onConflict`; `location` names the target in messages.
 */
export async function assertNoConflicts(
  client: pg.Client,
  plan: Plan,
  onConflict: ConflictPolicy,
  location: string,
  /** The selected routines the target has with another definition, when the caller read them already (routine-restore.ts). */
  differingRoutines?: ReadonlySet<string>,
): Promise<void> {
  const routines = differingRoutines ?? (await existingRoutines(client, plan));
  const problems = [...(await findConflicts(client, plan, onConflict, location)), ...routineConflicts(plan, routines, onConflict, location)];
  if (problems.length === 1) throw new ConflictError(problems[0] as string, { problems });
  if (problems.length > 1) {
    throw new ConflictError(`Cannot restore into ${location}: ${problems.length} conflicts:\n${problems.map((p) => `- ${p}`).join('\n')}`, { problems });
  }
}

/** Runs a step, turning driver errors into CairnErrors (duplicates and dependents into conflicts). */
export async function runStep(settings: PgConnectionSettings, database: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof CairnError) throw err;
    const e = err as { code?: string; message?: string; detail?: string };
    if (e.code && DUPLICATE_CODES.has(e.code)) {
      throw new ConflictError(
        `Cannot restore into ${pgLocation(settings, database)}: ${e.message ?? 'an object already exists'}. Something the restore creates (an index, constraint or sequence name) exists already; nothing was changed. Drop or rename it, or restore with --rename or --exclude.`,
        { cause: err },
      );
    }
    if (e.code === '2BP01') {
      throw new ConflictError(
        `Cannot replace objects in ${pgLocation(settings, database)}: ${e.message ?? 'other objects depend on them'}${e.detail ? ` (${e.detail.replace(/\n/g, '; ')})` : ''}. Nothing was changed. Drop or change the dependent objects first, or --exclude the collection.`,
        { cause: err },
      );
    }
    throw pgError(err, settings, database);
  }
}

/**
 * Drops the collections an overwrite replaces (RESTRICT: an object that depends on one and is
 * not replaced too makes it fail). A drop that fails only because another replaced object
 * still depends on it is retried after the others, until no progress is made. Standalone
 * sequences that objects left alone still depend on (a default of a table already there) are
 * not dropped: returned ("schema.name", target names) to be replaced in place.
 */
export async function dropReplaced(client: pg.Client, plan: Plan): Promise<Set<string>> {
  const found = new Map((await findRelations(client, plan.collections.map((c) => c.target))).map((r) => [display(r), r]));
  // Reverse restore order first: views before the tables they read, partitions before their parent.
  let pending = [...plan.collections].reverse().filter((c) => found.has(display(c.target)));
  const tryDrop = async (word: string, names: QName[]): Promise<unknown> => {
    await client.query('SAVEPOINT cairn_drop');
    try {
      await client.query(`DROP ${word} IF EXISTS ${names.map(qname).join(', ')} RESTRICT`);
      await client.query('RELEASE SAVEPOINT cairn_drop');
      return undefined;
    } catch (err) {
      if ((err as { code?: string }).code !== '2BP01') throw err;
      await client.query('ROLLBACK TO SAVEPOINT cairn_drop');
      return err;
    }
  };
  while (pending.length > 0) {
    let failed: PlannedCollection[] = [];
    let lastError: unknown;
    for (const c of pending) {
      const err = await tryDrop(ALTER_WORD[c.relkind], [c.target]);
      if (err !== undefined) {
        failed.push(c);
        lastError = err;
      }
    }
    if (failed.length === pending.length) {
      // No single drop went through: a cycle among them. All of one kind at once.
      const byWord = new Map<string, PlannedCollection[]>();
      for (const c of failed) byWord.set(ALTER_WORD[c.relkind], [...(byWord.get(ALTER_WORD[c.relkind]) ?? []), c]);
      let progress = false;
      for (const [word, group] of byWord) {
        if (group.length < 2) continue;
        const err = await tryDrop(word, group.map((c) => c.target));
        if (err === undefined) {
          progress = true;
          failed = failed.filter((c) => !group.includes(c));
        } else lastError = err;
      }
      if (!progress) {
        // Only sequences left: what holds them is not replaced (a default of a table already
        // there, as after a restore of that table alone). They are replaced in place.
        // (Not when renamed: the staged one then takes another name, and the one in the target
        // is not what the restore replaces.)
        if (failed.every((c) => c.relkind === 'S' && display(c.source) === display(c.target))) return new Set(failed.map((c) => display(c.target)));
        throw lastError;
      }
    }
    pending = failed;
  }
  return new Set();
}
