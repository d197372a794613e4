/**
 * Restoring functions and procedures selected by name (routines.ts): which of them the target
 * has already, what that means under each conflict policy, the relations they need, and how an
 * overwrite replaces one in the switch.
 *
 * A selected routine (every overload of its name) that exists in an existing target with the
 * same signature is a conflict under `fail`, like a table; under `overwrite` it is replaced in
 * the switch transaction (`CREATE OR REPLACE`; when that cannot change it — another return type,
 * other argument names — it is dropped and created, which objects the restore leaves alone that
 * depend on it refuse: nothing is changed then). A selected routine that no restored table needs
 * is created in the switch too, so a restore of routines alone is one transaction. Routines the
 * restored tables need are created with the supporting objects (existing ones kept), as before.
 */
import type pg from 'pg';
import { ConflictError, SourceError, UsageError } from '../../core/errors.js';
import type { ConflictPolicy } from '../types.js';
import { postgresNaming } from './naming.js';
import { callClosure, ROUTINE_DEFINITION_HASH } from './routines.js';
import { callGraph, restoredRoutines, type Plan, type PlannedRoutine } from './plan.js';
import { describedObject, describesRoutine, entryKey, type ScriptBlock, type TocEntry } from './toc.js';

const ROUTINE_DESCS = new Set(['FUNCTION', 'PROCEDURE']);

/**
 * Signatures (`public.fn(integer)`, as the backup recorded them) of the selected overloads the
 * target has with another definition than the backup's (PgRoutineOverload.definitionHash; one
 * the backup recorded no hash of counts as different). A routine the target has exactly as the
 * backup does is no conflict and is left as it is: restoring part of a backup, then the rest,
 * meets the routines the first part brought along.
 */
export async function existingRoutines(client: pg.Client, plan: Plan): Promise<Set<string>> {
  return (await routinesInTarget(client, plan)).differing;
}

/** The selected overloads the target has: with another definition than the backup's (see existingRoutines), and the same. */
export async function routinesInTarget(client: pg.Client, plan: Plan): Promise<{ differing: Set<string>; same: Set<string> }> {
  const overloads = plan.routines.flatMap((r) => r.definition.overloads);
  const found = new Set<string>();
  const same = new Set<string>();
  if (overloads.length === 0) return { differing: found, same };
  // Signatures and definitions read as the backup read them: names qualified.
  const { rows: path } = await client.query<{ p: string }>("SELECT pg_catalog.current_setting('search_path') AS p");
  await client.query("SELECT pg_catalog.set_config('search_path', '', false)");
  try {
    for (const o of overloads) {
      // One at a time: a signature naming a type the target lacks is no routine of the target
      // (to_regprocedure answers NULL, or an error on older servers).
      const { rows } = await client
        .query<{ hash: string | null }>(`SELECT ${ROUTINE_DEFINITION_HASH('r.oid')} AS hash FROM (SELECT pg_catalog.to_regprocedure($1) AS oid) r WHERE r.oid IS NOT NULL`, [o.signature])
        .catch(() => ({ rows: [] as { hash: string | null }[] }));
      const there = rows[0];
      if (there === undefined) continue;
      if (o.definitionHash === undefined || there.hash !== o.definitionHash) found.add(o.signature);
      else same.add(o.signature);
    }
  } finally {
    await client.query("SELECT pg_catalog.set_config('search_path', $1, false)", [path[0]?.p ?? '']);
  }
  return { differing: found, same };
}

/**
 * For the plan summary: the routine collections of the plan that the target has with another
 * definition (replaced under overwrite), and those it has exactly as the backup (kept: neither
 * created nor replaced).
 */
export function routineOutcomes(plan: Plan, found: { differing: ReadonlySet<string>; same: ReadonlySet<string> }): { replaced: Set<string>; kept: Set<string> } {
  const replaced = new Set<string>();
  const kept = new Set<string>();
  for (const r of plan.routines) {
    if (r.definition.overloads.some((o) => found.differing.has(o.signature))) replaced.add(r.item.entry.name);
    else if (r.definition.overloads.every((o) => found.same.has(o.signature))) kept.add(r.item.entry.name);
  }
  return { replaced, kept };
}

/** Conflicts of the selected routines with the target under `onConflict`, as sentences. */
export function routineConflicts(plan: Plan, existing: ReadonlySet<string>, onConflict: ConflictPolicy, location: string): string[] {
  if (onConflict !== 'fail') return [];
  const problems: string[] = [];
  for (const r of plan.routines) {
    const there = r.definition.overloads.filter((o) => existing.has(o.signature)).map((o) => o.signature);
    if (there.length === 0) continue;
    const word = r.kind === 'procedure' ? 'Procedure' : 'Function';
    const many = there.length > 1;
    problems.push(
      `${word}${many ? 's' : ''} ${there.join(', ')} already exist${many ? '' : 's'} in ${location}. Use --on-conflict overwrite to replace ${many ? 'them' : 'it'}, or leave ${postgresNaming.written(r.item.entry.name)} out of the restore (--exclude, or an --include without it).`,
    );
  }
  return problems;
}

/**
 * Throws UsageError, before anything is written, when a selected routine needs relations (its
 * row types, the tables a BEGIN ATOMIC body reads) that the restore leaves out and the target
 * lacks. `present` says which of some "schema.name" exist in the target. `exporting`: the message
 * speaks of a plain-SQL export (which has no target).
 */
export async function assertRoutinesHaveTheirRelations(plan: Plan, present: (names: string[]) => Promise<Set<string>>, exporting = false): Promise<void> {
  const restored = new Set(plan.collections.map((c) => c.item.entry.name));
  const wanted = new Map<string, string[]>();
  const want = (rel: string, by: string): void => {
    if (!restored.has(rel) && !(wanted.get(rel) ?? []).includes(by)) wanted.set(rel, [...(wanted.get(rel) ?? []), by]);
  };
  for (const r of plan.routines) for (const rel of r.definition.relations) want(rel, postgresNaming.written(r.item.entry.name));
  // Every routine the restore creates: those selected, those they call, those the restored
  // relations and supporting objects need (a callee taking a table's row type too).
  const creates = restoredRoutines(plan)?.restored;
  for (const r of plan.schemaDef.routineRelations ?? []) {
    if (creates?.has(r.oid)) for (const rel of r.relations) want(rel, r.signature);
  }
  if (wanted.size === 0) return;
  const there = await present([...wanted.keys()]);
  const missing = [...wanted.keys()].filter((n) => !there.has(n));
  if (missing.length === 0) return;
  const shown = missing.map((n) => `${postgresNaming.written(n)} (needed by ${(wanted.get(n) ?? []).join(', ')})`);
  if (exporting) {
    throw new UsageError(
      `Cannot export the selected routines: ${shown.join('; ')} ${missing.length === 1 ? 'is' : 'are'} left out of this export (a row type a routine takes or returns, or rows its body reads), so the script would not load. Nothing was written. Add --include ${missing.map((n) => postgresNaming.written(n)).join(',')} (when the backup holds ${missing.length === 1 ? 'it' : 'them'}).`,
    );
  }
  throw new UsageError(
    `Cannot restore the selected routines: ${shown.join('; ')} ${missing.length === 1 ? 'is' : 'are'} not restored and not in the target (a row type a routine takes or returns, or rows its body reads). Nothing was changed. Add --include ${missing.map((n) => postgresNaming.written(n)).join(',')} (when the backup holds ${missing.length === 1 ? 'it' : 'them'}), or restore into a database that has ${missing.length === 1 ? 'it' : 'them'}.`,
  );
}

/** How each FUNCTION / PROCEDURE block of the restore runs in an existing database. */
export interface RoutineSteps {
  /** Keys (toc.ts entryKey) of blocks created in the switch instead of the first load transaction. */
  inSwitch: Set<string>;
  /** Keys of blocks that replace an existing routine in the switch → its signature. */
  replace: Map<string, string>;
  /** Those routines' entries, so that their comments, grants and labels move too. */
  moved: TocEntry[];
}

/** Whether a block runs in the switch (RoutineSteps): a moved routine, or a comment, grant or label on one. */
export function movedToSwitch(steps: RoutineSteps, b: ScriptBlock): boolean {
  const key = blockKey(b);
  if (key === undefined) return false;
  if (steps.inSwitch.has(key) || steps.replace.has(key)) return true;
  if (b.desc !== 'COMMENT' && b.desc !== 'ACL' && b.desc !== 'SECURITY LABEL') return false;
  const target = describedObject({ line: '', dumpId: 0, tableoid: 0, oid: 0, desc: b.desc, schema: b.schema as string, tag: b.name as string, owner: '' });
  return target !== undefined && ROUTINE_DESCS.has(target.desc) && steps.moved.some((e) => e.schema === b.schema && describesRoutine(e.tag, target.name));
}

/**
 * Which routine blocks move to the switch: the selected ones (and those they call) that no
 * restored relation or supporting object needs (created there, atomically with the rest), and
 * under overwrite the selected ones the target has (replaced there).
 */
export function routineSteps(plan: Plan, toc: TocEntry[], existing: ReadonlySet<string>, onConflict: ConflictPolicy): RoutineSteps {
  const graph = callGraph(plan);
  const needed = callClosure([...(plan.schemaDef.supportRoutineOids ?? []), ...plan.collections.flatMap((c) => c.routineOids ?? [])], graph);
  const selected = new Map<number, { routine: PlannedRoutine; signature: string }>();
  for (const r of plan.routines) for (const o of r.definition.overloads) selected.set(o.oid, { routine: r, signature: o.signature });
  const inSwitch = new Set<string>();
  const replace = new Map<string, string>();
  const moved: TocEntry[] = [];
  // What the selected routines call: created in the switch too when nothing else needs it (an
  // existing one is kept, as a supporting object is).
  const callees = callClosure(plan.routines.flatMap((r) => r.definition.calls), graph);
  for (const e of toc) {
    if (!ROUTINE_DESCS.has(e.desc)) continue;
    const s = selected.get(e.oid);
    const key = entryKey(e.desc, e.schema, e.tag);
    if (s === undefined) {
      if (callees.has(e.oid) && !needed.has(e.oid)) {
        inSwitch.add(key);
        moved.push(e);
      }
      continue;
    }
    if (existing.has(s.signature)) {
      if (onConflict !== 'overwrite') continue;
      replace.set(key, s.signature);
    } else if (!needed.has(e.oid)) inSwitch.add(key);
    else continue;
    moved.push(e);
  }
  return { inSwitch, replace, moved };
}

/** The key of a script block (toc.ts entryKey), or undefined for the preamble. */
export function blockKey(b: ScriptBlock): string | undefined {
  return b.desc === undefined ? undefined : entryKey(b.desc, b.schema as string, b.name as string);
}

/**
 * In the switch: replaces the target's routine `signature` by the archive's block (CREATE OR
 * REPLACE; when PostgreSQL refuses that change, DROP … RESTRICT and CREATE). Errors:
 * ConflictError when objects the restore leaves alone depend on it and it cannot be replaced in
 * place (the switch rolls back: nothing is changed).
 */
export async function replaceRoutine(client: pg.Client, block: ScriptBlock, signature: string): Promise<void> {
  const create = /^CREATE (FUNCTION|PROCEDURE) /;
  const m = create.exec(block.sql);
  if (m === null) throw new SourceError(`Cannot replace ${signature}: the archive's entry does not start with CREATE ${block.desc ?? 'FUNCTION'}; nothing was changed.`);
  await client.query('SAVEPOINT cairn_routine');
  try {
    await client.query(block.sql.replace(create, `CREATE OR REPLACE ${m[1]} `));
    await client.query('RELEASE SAVEPOINT cairn_routine');
    return;
  } catch (err) {
    // 42P13: another return type, other argument names or defaults — CREATE OR REPLACE cannot.
    if ((err as { code?: string }).code !== '42P13') throw err;
    await client.query('ROLLBACK TO SAVEPOINT cairn_routine');
  }
  const word = m[1] as string;
  try {
    await client.query(`DROP ${word} ${signature} RESTRICT`);
  } catch (err) {
    if ((err as { code?: string }).code !== '2BP01') throw err;
    throw new ConflictError(
      `Cannot replace ${word.toLowerCase()} ${signature}: the backup's differs in a way CREATE OR REPLACE cannot change (its result type or argument names), so it must be dropped and created, and objects depend on it (${(err as { detail?: string }).detail ?? (err as Error).message}). Nothing was changed. Restore into another database, or drop those objects' use of it first (a restored table's default or trigger calling it counts: they are built before the switch).`,
      { cause: err },
    );
  }
  await client.query(block.sql);
}
