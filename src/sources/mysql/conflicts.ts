/**
 * What an existing MySQL/MariaDB target database holds, and what of it stands in a restore's way
 * under `--on-conflict fail` (any object of a restored name) or `overwrite` (a table whose
 * columns differ, an object of another kind, a restored trigger's name on a table the restore
 * does not replace). `replace` makes the database exactly the backup: nothing stands in its way.
 */
import type mysql from 'mysql2/promise';
import { ConflictError } from '../../core/errors.js';
import type { ConflictPolicy } from '../types.js';
import type { Plan } from './plan.js';
import { ident } from './connection.js';
import { definerToCurrentUser } from './definitions.js';
import { select, textLit } from './session.js';

export interface TargetState {
  /** Name → TABLE_TYPE ("BASE TABLE", "SYSTEM VERSIONED", "VIEW", "SEQUENCE"). */
  relations: Map<string, string>;
  /** Trigger name → its table. */
  triggers: Map<string, string>;
  /** "PROCEDURE name", "FUNCTION name", "EVENT name". */
  routines: Set<string>;
  /**
   * The restored routines and events ("KIND name") the target already holds with the recorded
   * definition (identicalRoutines): no conflict, left as they are.
   */
  identical: Set<string>;
}

const str = (v: unknown): string => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v));

/** Reads what `database` holds (names exact); with `plan`, which of its routines the target holds identically. */
export async function readTargetState(conn: mysql.Connection, database: string, plan?: Plan): Promise<TargetState> {
  const db = textLit(database);
  const relations = new Map((await select(conn, `SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${db}`)).map((r) => [str(r[0]), str(r[1])]));
  const triggers = new Map((await select(conn, `SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ${db}`)).map((r) => [str(r[0]), str(r[1])]));
  const routines = new Set([
    ...(await select(conn, `SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ${db}`)).map((r) => `${str(r[0])} ${str(r[1])}`),
    ...(await select(conn, `SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ${db}`)).map((r) => `EVENT ${str(r[0])}`),
  ]);
  return { relations, triggers, routines, identical: plan === undefined ? new Set() : await identicalRoutines(conn, database, plan, routines) };
}

/** A SHOW CREATE statement compared without its DEFINER (and trailing blanks). */
const comparable = (sql: string): string => definerToCurrentUser(sql).trim();

/**
 * The routines and events of `plan` that `database` holds (`existing`: "KIND name") with the
 * recorded definition: the same SHOW CREATE statement (parameters, body, characteristics; for
 * an event its schedule and state) with the DEFINER left out of the comparison, the same
 * sql_mode and, for an event, the same time zone. One SHOW CREATE cannot read (no privilege) is
 * not identical.
 */
export async function identicalRoutines(conn: mysql.Connection, database: string, plan: Plan, existing: ReadonlySet<string>): Promise<Set<string>> {
  const out = new Set<string>();
  for (const r of plan.routines?.def.routines ?? []) {
    const key = `${r.kind} ${r.name}`;
    if (!existing.has(key)) continue;
    const row = (await select(conn, `SHOW CREATE ${r.kind} ${ident(database)}.${ident(r.name)}`).catch(() => []))[0];
    if (row === undefined) continue;
    const create = r.kind === 'EVENT' ? row[3] : row[2];
    if (create === null || create === undefined) continue;
    const same = comparable(str(create)) === comparable(r.createSql) && str(row[1]) === r.sqlMode && (r.kind !== 'EVENT' || str(row[2]) === (r.timeZone ?? str(row[2])));
    if (same) out.add(key);
  }
  return out;
}

/** Whether the database holds no user objects at all. */
export function isEmpty(state: TargetState): boolean {
  return state.relations.size === 0 && state.routines.size === 0;
}

const KIND_OF: Record<string, string> = { 'BASE TABLE': 'table', 'SYSTEM VERSIONED': 'table', VIEW: 'view', SEQUENCE: 'sequence' };
export const kindOf = (tableType: string | undefined): string => KIND_OF[tableType ?? ''] ?? 'table';

const list = (names: string[]): string => `${names.slice(0, 10).join(', ')}${names.length > 10 ? ` and ${names.length - 10} more` : ''}`;

/**
 * Throws ConflictError naming what stands in the way under `policy` (and the fix). Reads column
 * lists for `overwrite`.
 */
export async function assertNoConflicts(conn: mysql.Connection, database: string, location: string, plan: Plan, state: TargetState, policy: ConflictPolicy): Promise<void> {
  if (policy === 'replace') return;
  const restored: [string, string][] = [
    ...plan.tables.map((t): [string, string] => [t.target, 'table']),
    ...plan.views.map((v): [string, string] => [v.target, 'view']),
    ...plan.sequences.map((s): [string, string] => [s.target, 'sequence']),
  ];
  const restoredTables = new Set(plan.tables.map((t) => t.target));
  const triggerNames = plan.tables.flatMap((t) => t.def.triggers.map((tr) => ({ name: tr.name, table: t.target })));
  // Routines the target holds with the recorded definition are no conflict (left as they are).
  const routineNames = (plan.routines?.def.routines ?? []).map((r) => `${r.kind} ${r.name}`).filter((r) => !state.identical.has(r));
  if (policy === 'fail') {
    const taken = [
      ...restored.filter(([n]) => state.relations.has(n)).map(([n]) => `${kindOf(state.relations.get(n))} "${n}"`),
      ...triggerNames.filter((t) => state.triggers.has(t.name)).map((t) => `trigger "${t.name}"`),
      ...routineNames.filter((r) => state.routines.has(r)).map((r) => `${r.split(' ')[0]?.toLowerCase()} "${r.slice(r.indexOf(' ') + 1)}" (with another definition)`),
    ];
    if (taken.length > 0) {
      throw new ConflictError(
        `${location} already holds ${list(taken)}. Restore with --on-conflict overwrite to replace them, --on-conflict replace to make the database exactly the backup, or into another database (or --rename / --exclude them).`,
        { problems: taken.map((t) => `${location} already holds ${t}.`) },
      );
    }
    return;
  }
  // overwrite
  const problems: string[] = [];
  for (const [name, kind] of restored) {
    const there = state.relations.get(name);
    if (there === undefined) continue;
    if (kindOf(there) !== kind) problems.push(`"${name}" is a ${kindOf(there)} in the target but a ${kind} in the backup`);
  }
  for (const t of triggerNames) {
    const on = state.triggers.get(t.name);
    if (on !== undefined && !restoredTables.has(on)) problems.push(`trigger "${t.name}" exists on table "${on}", which this restore does not replace`);
  }
  for (const t of plan.tables) {
    if (kindOf(state.relations.get(t.target)) !== 'table' || !state.relations.has(t.target)) continue;
    const cols = await select(conn, `SELECT COLUMN_NAME, COLUMN_TYPE, GENERATION_EXPRESSION FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ${textLit(database)} AND TABLE_NAME = ${textLit(t.target)} ORDER BY ORDINAL_POSITION`);
    const thereCols = cols.map((r) => `${str(r[0])} ${str(r[1])}`);
    // Implicit system versioning: information_schema hides the period columns, which the backup
    // records as ROW_START / ROW_END (source.ts does the same): added here so that like is
    // compared with like.
    if (state.relations.get(t.target) === 'SYSTEM VERSIONED' && !cols.some((r) => /^ROW (START|END)$/.test(str(r[2])))) {
      thereCols.push('ROW_START timestamp(6)', 'ROW_END timestamp(6)');
    }
    const there = thereCols.join(', ');
    const backup = t.def.columns.map((c) => `${c.name} ${c.type}`).join(', ');
    if (there !== backup) problems.push(`table "${t.target}" has columns (${there}) in the target but (${backup}) in the backup`);
  }
  if (problems.length > 0) {
    throw new ConflictError(
      `Cannot overwrite in ${location}: ${list(problems)}. Restore with --on-conflict replace to make the database exactly the backup, or restore those objects under other names (--rename) or into another database.`,
      { problems: problems.map((p) => `Cannot overwrite in ${location}: ${p}.`) },
    );
  }
}

/**
 * After an `overwrite`: the foreign keys of `database` between a restored table and one the
 * restore left in place (either way round) that rows now break (the switch re-points them with
 * foreign_key_checks off, so the server checks nothing). One warning per key naming the child
 * table, the constraint, the parent and the count of rows without a parent, with the query that
 * finds them. `restored`: the restored tables' names in the target.
 */
export async function orphanWarnings(conn: mysql.Connection, database: string, restored: ReadonlySet<string>): Promise<string[]> {
  if (restored.size === 0) return [];
  const db = textLit(database);
  const rows = await select(
    conn,
    `SELECT TABLE_NAME, CONSTRAINT_NAME, REFERENCED_TABLE_NAME, COLUMN_NAME, REFERENCED_COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE
      WHERE TABLE_SCHEMA = ${db} AND REFERENCED_TABLE_SCHEMA = ${db} ORDER BY TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION`,
  );
  const keys = new Map<string, { child: string; name: string; parent: string; cols: [string, string][] }>();
  for (const r of rows) {
    const [child, name, parent, col, ref] = r.map(str) as [string, string, string, string, string];
    // Only keys crossing the line between what was restored and what was kept.
    if (restored.has(child) === restored.has(parent)) continue;
    const key = `${child}\u0000${name}`;
    const k = keys.get(key) ?? { child, name, parent, cols: [] };
    keys.set(key, k);
    k.cols.push([col, ref]);
  }
  const out: string[] = [];
  const q = (n: string): string => `\`${n.replace(/`/g, '``')}\``;
  for (const k of keys.values()) {
    const where = `${k.cols.map(([c]) => `c.${q(c)} IS NOT NULL`).join(' AND ')} AND NOT EXISTS (SELECT 1 FROM ${q(database)}.${q(k.parent)} p WHERE ${k.cols.map(([c, r]) => `p.${q(r)} = c.${q(c)}`).join(' AND ')})`;
    const count = Number(str((await select(conn, `SELECT COUNT(*) FROM ${q(database)}.${q(k.child)} c WHERE ${where}`))[0]?.[0] ?? 0));
    if (count > 0) {
      out.push(
        `table "${k.child}" has ${count} row${count === 1 ? '' : 's'} whose foreign key "${k.name}" finds no row in "${k.parent}" (${restored.has(k.parent) ? `restored from the backup; "${k.child}" was not` : `not restored; "${k.child}" was`}): the server did not check them. Find them with SELECT * FROM ${q(k.child)} c WHERE ${where.split(`${q(database)}.`).join('')}; restore "${k.child}" too, or fix or delete those rows.`,
      );
    }
  }
  return out;
}
