/**
 * The switch of a MySQL/MariaDB restore: the staging tables and sequences go into the target
 * with ONE `RENAME TABLE` (atomic), then views (in the backup's order), triggers, routines and
 * events are created there.
 *
 * New database: created with the backup's character set and collation; a failure after the
 * rename drops it again (the target was absent). Existing database: the tables the restore
 * replaces (overwrite: those of restored names; replace: all) move, in that same RENAME, to a
 * second staging database `<staging>_old` — out of the target, so their foreign key names
 * (which InnoDB keeps per database) are free for the restored tables. A table with triggers
 * cannot change database, so the replaced tables' triggers are dropped just before the RENAME
 * (and put back if it fails). Child tables the restore leaves in place, whose foreign keys
 * followed their parent out, are re-pointed at the restored table. Views, routines and events
 * the restore replaces are dropped and recreated. A failure after the RENAME undoes it all (the
 * tables moved back, children re-pointed, dropped objects recreated); the old tables are
 * dropped only once everything succeeded.
 */
import type mysql from 'mysql2/promise';
import { SourceError } from '../../core/errors.js';
import type { ConflictPolicy, RestoreOptions } from '../types.js';
import { ident } from './connection.js';
import { kindOf, type TargetState } from './conflicts.js';
import { renameObject, retargetTrigger, sequenceDefault } from './definitions.js';
import { OLD_SUFFIX } from './leftovers.js';
import { createUnder, routineModes, sequenceDefaults, triggerModes, viewModes, withDefiner, type CreateModes } from './load.js';
import type { Plan } from './plan.js';
import { exec, select, textLit } from './session.js';

export interface SwitchRun {
  plan: Plan;
  target: string;
  staging: string;
  options: RestoreOptions;
  /** sql_mode for triggers whose definition records none. */
  fallbackMode: string;
  charset?: string;
  collation?: string;
}

/** An object dropped from the target, with what recreates it. */
interface Saved {
  what: string;
  drop: string;
  create: string;
  modes: CreateModes;
}

const str = (v: unknown): string => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v ?? ''));

const messageOf = (err: unknown): string => (err as { sqlMessage?: string }).sqlMessage ?? (err as Error).message;

/** Creates the restored views, triggers, routines and events in the target (session `main`, current database the target). */
async function createObjects(main: mysql.Connection, run: SwitchRun, undo: string[]): Promise<void> {
  const { plan, options } = run;
  for (const v of plan.views) {
    try {
      await createUnder(main, viewModes(v.def), withDefiner(renameObject(v.def.createSql, 'VIEW', v.target), options));
    } catch (err) {
      throw new SourceError(`Cannot create view "${v.target}": ${messageOf(err)}.`, { cause: err });
    }
    undo.push(`DROP VIEW IF EXISTS ${ident(v.target)}`);
  }
  for (const t of plan.tables) {
    for (const trig of t.def.triggers) {
      try {
        await createUnder(main, triggerModes(trig as never, run.fallbackMode), withDefiner(retargetTrigger(trig.createSql, t.target), options));
      } catch (err) {
        throw new SourceError(`Cannot create trigger "${trig.name}" on "${t.target}": ${messageOf(err)}.`, { cause: err });
      }
      undo.push(`DROP TRIGGER IF EXISTS ${ident(trig.name)}`);
    }
  }
  for (const r of plan.routines?.def.routines ?? []) {
    try {
      await createUnder(main, routineModes(r), withDefiner(r.createSql, options));
    } catch (err) {
      throw new SourceError(`Cannot create ${r.kind.toLowerCase()} "${r.name}": ${messageOf(err)}.`, { cause: err });
    }
    undo.push(`DROP ${r.kind} IF EXISTS ${ident(r.name)}`);
  }
}

/**
 * Column defaults calling a restored sequence were created calling the staging copy (the server
 * checks the sequence exists); once both are in the target, they are aimed at the target's
 * (ALTER COLUMN … SET DEFAULT: a change of metadata only).
 */
async function aimDefaults(main: mysql.Connection, run: SwitchRun): Promise<void> {
  for (const { table, defaults } of sequenceDefaults(run.plan)) {
    const sets = defaults.map((d) => `ALTER COLUMN ${ident(d.column)} SET DEFAULT ${sequenceDefault(d, run.target)}`);
    await exec(main, `ALTER TABLE ${ident(run.target)}.${ident(table)} ${sets.join(', ')}`);
  }
}

/** Tables and sequences the restore brings (their target names). */
const movedIn = (plan: Plan): string[] => [...plan.tables.map((t) => t.target), ...plan.sequences.map((s) => s.target)];

/**
 * Into a new database: CREATE DATABASE, RENAME TABLE, the objects. Any failure drops the new
 * database (the target was absent). `main` is the staging lock's session.
 */
export async function switchIntoNewDatabase(main: mysql.Connection, run: SwitchRun): Promise<void> {
  const { target, staging } = run;
  const charset = run.charset && /^\w+$/.test(run.charset) ? ` CHARACTER SET ${run.charset}` : '';
  const collation = run.collation && /^\w+$/.test(run.collation) ? ` COLLATE ${run.collation}` : '';
  await exec(main, `CREATE DATABASE ${ident(target)}${charset}${collation}`);
  try {
    const names = movedIn(run.plan);
    if (names.length > 0) await exec(main, `RENAME TABLE ${names.map((n) => `${ident(staging)}.${ident(n)} TO ${ident(target)}.${ident(n)}`).join(', ')}`);
    await exec(main, `USE ${ident(target)}`);
    await aimDefaults(main, run);
    await createObjects(main, run, []);
  } catch (err) {
    await exec(main, `USE ${ident(staging)}`).catch(() => undefined);
    await exec(main, `DROP DATABASE IF EXISTS ${ident(target)}`).catch(() => undefined);
    throw err instanceof SourceError ? new SourceError(`${err.message} The new database ${target} was removed again.`, { cause: err }) : err;
  }
}

/** Saves (SHOW CREATE …) and describes the trigger `name` of `database`. */
async function saveTrigger(main: mysql.Connection, database: string, name: string): Promise<Saved> {
  const r = (await select(main, `SHOW CREATE TRIGGER ${ident(database)}.${ident(name)}`))[0] ?? [];
  return {
    what: `trigger "${name}"`,
    drop: `DROP TRIGGER IF EXISTS ${ident(database)}.${ident(name)}`,
    create: str(r[2]),
    modes: { sqlMode: str(r[1]), characterSetClient: str(r[3]), collationConnection: str(r[4]) },
  };
}

async function saveView(main: mysql.Connection, database: string, name: string): Promise<Saved> {
  const r = (await select(main, `SHOW CREATE VIEW ${ident(database)}.${ident(name)}`))[0] ?? [];
  return { what: `view "${name}"`, drop: `DROP VIEW IF EXISTS ${ident(database)}.${ident(name)}`, create: str(r[1]), modes: { characterSetClient: str(r[2]), collationConnection: str(r[3]) } };
}

async function saveRoutine(main: mysql.Connection, database: string, kindName: string): Promise<Saved> {
  const kind = kindName.slice(0, kindName.indexOf(' '));
  const name = kindName.slice(kindName.indexOf(' ') + 1);
  const r = (await select(main, `SHOW CREATE ${kind} ${ident(database)}.${ident(name)}`))[0] ?? [];
  const modes: CreateModes =
    kind === 'EVENT'
      ? { sqlMode: str(r[1]), timeZone: str(r[2]), characterSetClient: str(r[4]), collationConnection: str(r[5]) }
      : { sqlMode: str(r[1]), characterSetClient: str(r[3]), collationConnection: str(r[4]) };
  return { what: `${kind.toLowerCase()} "${name}"`, drop: `DROP ${kind} IF EXISTS ${ident(database)}.${ident(name)}`, create: str(kind === 'EVENT' ? r[3] : r[2]), modes };
}

/**
 * Re-points the foreign keys of `database`'s tables that reference a table of `from` at the
 * table of the same name in `database` (foreign_key_checks off: the data is not re-checked).
 * InnoDB keeps a reference through renames, so children follow a parent that moves away.
 */
export async function repointChildren(main: mysql.Connection, database: string, from: string): Promise<void> {
  const rows = await select(
    main,
    `SELECT DISTINCT TABLE_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ${textLit(database)} AND UNIQUE_CONSTRAINT_SCHEMA = ${textLit(from)}`,
  );
  for (const r of rows) {
    const child = str(r[0]);
    const create = str((await select(main, `SHOW CREATE TABLE ${ident(database)}.${ident(child)}`))[0]?.[1]);
    const prefix = `REFERENCES ${ident(from)}.`;
    for (const line of create.split('\n')) {
      const m = /^\s*CONSTRAINT (`(?:[^`]|``)*`) FOREIGN KEY/.exec(line);
      if (!m || !line.includes(prefix)) continue;
      const clause = line.trim().replace(/,$/, '').replace(prefix, 'REFERENCES ');
      await exec(main, `ALTER TABLE ${ident(database)}.${ident(child)} DROP FOREIGN KEY ${m[1]}`);
      await exec(main, `ALTER TABLE ${ident(database)}.${ident(child)} ADD ${clause}`);
    }
  }
}

/**
 * Into an existing database (see the module comment). `state`: what the target held, read before
 * the load. `main` is the staging lock's session; foreign_key_checks is off in it.
 */
export async function switchIntoExistingDatabase(main: mysql.Connection, run: SwitchRun, state: TargetState, policy: ConflictPolicy): Promise<void> {
  const { plan, target, staging } = run;
  const old = `${staging}${OLD_SUFFIX}`;
  const incoming = movedIn(plan);
  const incomingSet = new Set(incoming);
  // The tables (and sequences) that leave the target for the old database.
  const replacedTables = [...state.relations.entries()]
    .filter(([name, type]) => kindOf(type) !== 'view' && (policy === 'replace' || incomingSet.has(name)))
    .map(([name]) => name);
  const leaving = new Set(replacedTables);
  // Views that go: replace, all; overwrite, those of restored names.
  const restoredViews = new Set(plan.views.map((v) => v.target));
  const views = [...state.relations.entries()].filter(([name, type]) => type === 'VIEW' && (policy === 'replace' || restoredViews.has(name))).map(([n]) => n);
  const restoredRoutines = new Set((plan.routines?.def.routines ?? []).map((r) => `${r.kind} ${r.name}`));
  const routines = [...state.routines].filter((r) => policy === 'replace' || restoredRoutines.has(r));
  const triggers = [...state.triggers.entries()].filter(([, table]) => leaving.has(table)).map(([n]) => n);

  // Saved before anything changes, so that any failure can put them back.
  const savedTriggers = await Promise.all(triggers.map((n) => saveTrigger(main, target, n)));
  const savedViews = await Promise.all(views.map((n) => saveView(main, target, n)));
  const savedRoutines = await Promise.all(routines.map((r) => saveRoutine(main, target, r)));
  const recreate = async (saved: Saved[]): Promise<string[]> => {
    const lost: string[] = [];
    for (const s of saved) {
      await createUnder(main, s.modes, s.create).catch(() => lost.push(s.what));
    }
    return lost;
  };

  if (replacedTables.length > 0) await exec(main, `CREATE DATABASE ${ident(old)}`);
  await exec(main, `USE ${ident(target)}`);
  // Views whose names a restored table takes must go before the RENAME (views cannot move).
  const blockingViews = savedViews.filter((_, i) => incomingSet.has(views[i] as string));
  const droppedFirst: Saved[] = [];
  try {
    for (const s of [...savedTriggers, ...blockingViews]) {
      await exec(main, s.drop);
      droppedFirst.push(s);
    }
    const pairs = [
      ...replacedTables.map((n) => `${ident(target)}.${ident(n)} TO ${ident(old)}.${ident(n)}`),
      ...incoming.map((n) => `${ident(staging)}.${ident(n)} TO ${ident(target)}.${ident(n)}`),
    ];
    if (pairs.length > 0) await exec(main, `RENAME TABLE ${pairs.join(', ')}`);
  } catch (err) {
    const lost = await recreate(droppedFirst);
    await exec(main, `DROP DATABASE IF EXISTS ${ident(old)}`).catch(() => undefined);
    throw new SourceError(
      `Cannot switch the restored tables into ${target}: ${messageOf(err)}. The target was not changed${lost.length > 0 ? `, except that ${lost.join(', ')} could not be put back` : ''}.`,
      { cause: err },
    );
  }

  // From here on the tables are in: any failure undoes the switch.
  const undo: string[] = [];
  const remaining = [...blockingViews];
  try {
    await aimDefaults(main, run);
    if (replacedTables.length > 0) await repointChildren(main, target, old);
    for (const s of [...savedViews.filter((v) => !blockingViews.includes(v)), ...savedRoutines]) {
      await exec(main, s.drop);
      remaining.push(s);
    }
    await createObjects(main, run, undo);
  } catch (err) {
    const problems: string[] = [];
    for (const u of undo.reverse()) await exec(main, u).catch(() => problems.push(u));
    try {
      const back = [
        ...incoming.map((n) => `${ident(target)}.${ident(n)} TO ${ident(staging)}.${ident(n)}`),
        ...replacedTables.map((n) => `${ident(old)}.${ident(n)} TO ${ident(target)}.${ident(n)}`),
      ];
      if (back.length > 0) await exec(main, `RENAME TABLE ${back.join(', ')}`);
      await repointChildren(main, target, staging);
      problems.push(...(await recreate([...savedTriggers, ...remaining])));
      if (replacedTables.length > 0) await exec(main, `DROP DATABASE IF EXISTS ${ident(old)}`);
    } catch (undoErr) {
      problems.push(`the tables (${messageOf(undoErr)})`);
    }
    throw new SourceError(
      `${err instanceof SourceError ? err.message : messageOf(err)} The switch into ${target} was undone${problems.length > 0 ? `, except: ${problems.join(', ')} (repair by hand, or restore again with --on-conflict replace)` : ': the target is as it was'}.`,
      { cause: err },
    );
  }
  if (replacedTables.length > 0) await exec(main, `DROP DATABASE IF EXISTS ${ident(old)}`);
}
