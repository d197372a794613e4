/**
 * The switch of a MySQL/MariaDB restore: the staging tables and sequences go into the target
 * with ONE `RENAME TABLE` (atomic), then views (in the backup's order), triggers, routines and
 * events are created there.
 *
 * Everything the switch does is prepared before it (prepareSwitch: every statement built, the
 * target's objects it replaces read) and written to the switch journal (journal.ts) before the
 * target changes; the RENAME renames the journal's marker in the same statement. So a restore
 * killed at any moment after it is finished by the next restore to the target, and one killed
 * before it is undone (leftovers.ts).
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
import { ConflictError, SourceError, throwIfAborted } from '../../core/errors.js';
import type { ConflictPolicy, RestoreOptions } from '../types.js';
import { ident } from './connection.js';
import { kindOf, type TargetState } from './conflicts.js';
import { renameObject, retargetTrigger, sequenceDefault } from './definitions.js';
import { markDone, runStep, switchMark, testKillPoint, unswitchMark, type Journal, type Step } from './journal.js';
import { OLD_SUFFIX, stagingMark } from './leftovers.js';
import { routineModes, sequenceDefaults, triggerModes, viewModes, withDefiner, type CreateModes } from './load.js';
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
  /** Users and grants (--roles), run after the objects. */
  grants?: string[];
}

/** An object dropped from the target, with what recreates it. */
interface Saved {
  what: string;
  drop: string;
  /** A SELECT returning a row while the object exists. */
  exists: string;
  create: string;
  modes: CreateModes;
}

/** Everything a switch does, built before it (prepareSwitch), run by runSwitch. */
export interface PreparedSwitch {
  journal: Journal;
  /** Statements that change the target just before the RENAME (CREATE DATABASE; drops of what cannot stay). */
  before: string[];
  /** Undo of `before`, when the RENAME fails. */
  beforeUndo: Step[];
  /** The one RENAME TABLE (with the journal's marker). */
  rename: string;
  /** The RENAME that moves everything back (existing database), with the marker back. */
  renameBack?: string;
  /** `<staging>_old`, when target tables are replaced (created by prepareSwitch). */
  old?: string;
  /** Set when a failure after the switch could not be undone wholly: the journal and `old` are kept for the next restore. */
  keepJournal: boolean;
}

const str = (v: unknown): string => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v ?? ''));

const messageOf = (err: unknown): string => (err as { sqlMessage?: string }).sqlMessage ?? (err as Error).message;

/** The steps creating the restored views, triggers, routines and events in the target (its current database). */
function createSteps(run: SwitchRun, keep: ReadonlySet<string> = new Set()): Step[] {
  const { plan, options } = run;
  const out: Step[] = [];
  for (const v of plan.views) {
    out.push({ op: 'create', what: `view "${v.target}"`, drop: `DROP VIEW IF EXISTS ${ident(v.target)}`, create: withDefiner(renameObject(v.def.createSql, 'VIEW', v.target), options), modes: viewModes(v.def) });
  }
  for (const t of plan.tables) {
    for (const trig of t.def.triggers) {
      out.push({
        op: 'create',
        what: `trigger "${trig.name}"`,
        drop: `DROP TRIGGER IF EXISTS ${ident(trig.name)}`,
        create: withDefiner(retargetTrigger(trig.createSql, t.target), options),
        modes: triggerModes(trig as never, run.fallbackMode),
      });
    }
  }
  for (const r of plan.routines?.def.routines ?? []) {
    // Already in the target as recorded (conflicts.ts identicalRoutines): left alone.
    if (keep.has(`${r.kind} ${r.name}`)) continue;
    out.push({ op: 'create', what: `${r.kind.toLowerCase()} "${r.name}"`, drop: `DROP ${r.kind} IF EXISTS ${ident(r.name)}`, create: withDefiner(r.createSql, options), modes: routineModes(r) });
  }
  return out;
}

/**
 * Column defaults calling a restored sequence were created calling the staging copy (the server
 * checks the sequence exists); once both are in the target, they are aimed at the target's
 * (ALTER COLUMN … SET DEFAULT: a change of metadata only).
 */
function defaultSteps(run: SwitchRun): Step[] {
  return sequenceDefaults(run.plan).map(({ table, defaults }) => ({
    op: 'sql',
    sql: `ALTER TABLE ${ident(run.target)}.${ident(table)} ${defaults.map((d) => `ALTER COLUMN ${ident(d.column)} SET DEFAULT ${sequenceDefault(d, run.target)}`).join(', ')}`,
  }));
}

const grantSteps = (run: SwitchRun): Step[] => (run.grants !== undefined && run.grants.length > 0 ? [{ op: 'grants', statements: run.grants }] : []);

/** Tables and sequences the restore brings (their target names). */
const movedIn = (plan: Plan): string[] => [...plan.tables.map((t) => t.target), ...plan.sequences.map((s) => s.target)];

/** Saves (SHOW CREATE …) and describes the trigger `name` of `database`. */
async function saveTrigger(main: mysql.Connection, database: string, name: string): Promise<Saved> {
  const r = (await select(main, `SHOW CREATE TRIGGER ${ident(database)}.${ident(name)}`))[0] ?? [];
  return {
    what: `trigger "${name}"`,
    drop: `DROP TRIGGER IF EXISTS ${ident(database)}.${ident(name)}`,
    exists: `SELECT 1 FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ${textLit(database)} AND TRIGGER_NAME = ${textLit(name)}`,
    create: str(r[2]),
    modes: { sqlMode: str(r[1]), characterSetClient: str(r[3]), collationConnection: str(r[4]) },
  };
}

async function saveView(main: mysql.Connection, database: string, name: string): Promise<Saved> {
  const r = (await select(main, `SHOW CREATE VIEW ${ident(database)}.${ident(name)}`))[0] ?? [];
  return {
    what: `view "${name}"`,
    drop: `DROP VIEW IF EXISTS ${ident(database)}.${ident(name)}`,
    exists: `SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${textLit(database)} AND TABLE_NAME = ${textLit(name)}`,
    create: str(r[1]),
    modes: { characterSetClient: str(r[2]), collationConnection: str(r[3]) },
  };
}

async function saveRoutine(main: mysql.Connection, database: string, kindName: string): Promise<Saved> {
  const kind = kindName.slice(0, kindName.indexOf(' '));
  const name = kindName.slice(kindName.indexOf(' ') + 1);
  const r = (await select(main, `SHOW CREATE ${kind} ${ident(database)}.${ident(name)}`))[0] ?? [];
  const modes: CreateModes =
    kind === 'EVENT'
      ? { sqlMode: str(r[1]), timeZone: str(r[2]), characterSetClient: str(r[4]), collationConnection: str(r[5]) }
      : { sqlMode: str(r[1]), characterSetClient: str(r[3]), collationConnection: str(r[4]) };
  const exists =
    kind === 'EVENT'
      ? `SELECT 1 FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ${textLit(database)} AND EVENT_NAME = ${textLit(name)}`
      : `SELECT 1 FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ${textLit(database)} AND ROUTINE_TYPE = ${textLit(kind)} AND ROUTINE_NAME = ${textLit(name)}`;
  return { what: `${kind.toLowerCase()} "${name}"`, drop: `DROP ${kind} IF EXISTS ${ident(database)}.${ident(name)}`, exists, create: str(kind === 'EVENT' ? r[3] : r[2]), modes };
}

const ensureStep = (s: Saved): Step => ({ op: 'ensure', what: s.what, exists: s.exists, create: s.create, modes: s.modes });

/**
 * The foreign keys of `database`'s tables (all, or `tables` only; `except` left out) that
 * reference one of `parents` of `parentDatabase`, as steps aiming them at the target's table of
 * that name: each key's clause as SHOW CREATE TABLE writes it.
 */
async function foreignKeySteps(main: mysql.Connection, database: string, parentDatabase: string, parents: string[], except: ReadonlySet<string>): Promise<Step[]> {
  if (parents.length === 0) return [];
  const rows = await select(
    main,
    `SELECT TABLE_NAME, CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ${textLit(database)} AND UNIQUE_CONSTRAINT_SCHEMA = ${textLit(parentDatabase)} AND REFERENCED_TABLE_NAME IN (${parents.map(textLit).join(', ')}) ORDER BY 1, 2`,
  );
  const steps: Step[] = [];
  const creates = new Map<string, string>();
  for (const r of rows) {
    const table = str(r[0]);
    const name = str(r[1]);
    if (except.has(table)) continue;
    let create = creates.get(table);
    if (create === undefined) {
      create = str((await select(main, `SHOW CREATE TABLE ${ident(database)}.${ident(table)}`))[0]?.[1]);
      creates.set(table, create);
    }
    const line = create.split('\n').find((l) => l.trim().startsWith(`CONSTRAINT ${ident(name)} FOREIGN KEY`));
    if (line !== undefined) steps.push({ op: 'fk', table, name, clause: line.trim().replace(/,$/, '') });
  }
  return steps;
}

/**
 * Prepares the switch (see the module comment): reads what the target's replaced objects are
 * (SHOW CREATE, to put them back), builds every statement that follows the RENAME, and, for an
 * existing database that loses tables, creates `<staging>_old`. Changes nothing in the target.
 * `state`: what the target held (undefined: it does not exist).
 */
export async function prepareSwitch(main: mysql.Connection, run: SwitchRun, state: TargetState | undefined, policy: ConflictPolicy): Promise<PreparedSwitch> {
  const { plan, target, staging } = run;
  const incoming = movedIn(plan);
  if (state === undefined) {
    const charset = run.charset && /^\w+$/.test(run.charset) ? ` CHARACTER SET ${run.charset}` : '';
    const collation = run.collation && /^\w+$/.test(run.collation) ? ` COLLATE ${run.collation}` : '';
    return {
      journal: { target, newDatabase: true, forward: [...defaultSteps(run), ...createSteps(run), ...grantSteps(run)], undo: [{ op: 'drop-if-empty', database: target }] },
      before: [`CREATE DATABASE ${ident(target)}${charset}${collation}`],
      beforeUndo: [{ op: 'drop-if-empty', database: target }],
      rename: `RENAME TABLE ${[...incoming.map((n) => `${ident(staging)}.${ident(n)} TO ${ident(target)}.${ident(n)}`), switchMark(staging)].join(', ')}`,
      keepJournal: false,
    };
  }
  const old = `${staging}${OLD_SUFFIX}`;
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
  // Routines identical to the recorded ones stay under overwrite; replace recreates all (the
  // comparison leaves out the DEFINER, which replace must make the backup's too).
  const keep: ReadonlySet<string> = policy === 'replace' ? new Set() : state.identical;
  const routines = [...state.routines].filter((r) => (policy === 'replace' || restoredRoutines.has(r)) && !keep.has(r));
  const triggers = [...state.triggers.entries()].filter(([, table]) => leaving.has(table)).map(([n]) => n);

  // Saved before anything changes, so that a failure or a kill can put them back.
  const savedTriggers = await Promise.all(triggers.map((n) => saveTrigger(main, target, n)));
  const savedViews = await Promise.all(views.map((n) => saveView(main, target, n)));
  const savedRoutines = await Promise.all(routines.map((r) => saveRoutine(main, target, r)));
  // Views whose names a restored table takes must go before the RENAME (views cannot move).
  const blockingViews = savedViews.filter((_, i) => incomingSet.has(views[i] as string));
  const laterDrops = [...savedViews.filter((v) => !blockingViews.includes(v)), ...savedRoutines];
  // Foreign keys that follow a leaving table out (InnoDB keeps a reference through renames):
  // the target's own tables that stay, and the restored tables that reference a target table.
  const ownChildren = await foreignKeySteps(main, target, target, replacedTables, leaving);
  const incomingChildren = await foreignKeySteps(main, staging, target, replacedTables, new Set());
  if (replacedTables.length > 0) await exec(main, `CREATE DATABASE ${ident(old)}${stagingMark()}`);
  const pairs = [
    ...replacedTables.map((n) => `${ident(target)}.${ident(n)} TO ${ident(old)}.${ident(n)}`),
    ...incoming.map((n) => `${ident(staging)}.${ident(n)} TO ${ident(target)}.${ident(n)}`),
    switchMark(staging),
  ];
  const back = [
    ...incoming.map((n) => `${ident(target)}.${ident(n)} TO ${ident(staging)}.${ident(n)}`),
    ...replacedTables.map((n) => `${ident(old)}.${ident(n)} TO ${ident(target)}.${ident(n)}`),
    unswitchMark(staging),
  ];
  const putBack = [...savedTriggers, ...savedViews, ...savedRoutines].map(ensureStep);
  return {
    journal: {
      target,
      newDatabase: false,
      forward: [
        ...defaultSteps(run),
        ...ownChildren,
        ...incomingChildren,
        ...laterDrops.map((s): Step => ({ op: 'sql', sql: s.drop })),
        ...createSteps(run, keep),
        ...grantSteps(run),
        ...(replacedTables.length > 0 ? [{ op: 'sql', sql: `DROP DATABASE IF EXISTS ${ident(old)}`, what: 'the replaced tables' } as Step] : []),
      ],
      // Not switched (killed before the RENAME, or after an undone one): what was dropped is put
      // back, and keys that followed a table to staging and back aimed at the target again.
      undo: [...putBack, ...ownChildren],
    },
    before: [...savedTriggers, ...blockingViews].map((s) => s.drop),
    beforeUndo: [...savedTriggers, ...blockingViews].map(ensureStep),
    rename: `RENAME TABLE ${pairs.join(', ')}`,
    renameBack: `RENAME TABLE ${back.join(', ')}`,
    ...(replacedTables.length > 0 ? { old } : {}),
    keepJournal: false,
  };
}

/**
 * Runs a prepared switch in `main` (the staging lock's session; foreign_key_checks off): the
 * statements before the RENAME, the RENAME, then the journal's forward steps, each marked done.
 * A failure undoes it (SourceError saying whether the target is as it was). Returns warnings
 * (grants the server refused).
 */
export async function runSwitch(main: mysql.Connection, run: SwitchRun, prepared: PreparedSwitch): Promise<string[]> {
  const { target, staging } = run;
  const warnings: string[] = [];
  const { journal } = prepared;
  if (!journal.newDatabase) await exec(main, `USE ${ident(target)}`);
  const done: Step[] = [];
  try {
    for (const s of prepared.before) {
      await exec(main, s);
      // A database created here is dropped by beforeUndo only while empty: no bookkeeping needed.
    }
    testKillPoint('before-rename');
    await exec(main, prepared.rename);
  } catch (err) {
    const lost: string[] = [];
    for (const s of prepared.beforeUndo) {
      await runStep(main, target, s, []).catch(() => lost.push('what' in s ? String(s.what) : s.op));
    }
    if (prepared.old !== undefined) await exec(main, `DROP DATABASE IF EXISTS ${ident(prepared.old)}`).catch(() => undefined);
    throw new SourceError(
      `Cannot switch the restored tables into ${target}: ${messageOf(err)}. The target was not changed${lost.length > 0 ? `, except that ${lost.join(', ')} could not be put back` : ''}.`,
      { cause: err },
    );
  }
  testKillPoint('after-rename');

  // From here on the tables are in: any failure undoes the switch.
  try {
    await exec(main, `USE ${ident(target)}`);
    for (const [i, step] of journal.forward.entries()) {
      done.push(step);
      try {
        await runStep(main, target, step, warnings);
      } catch (err) {
        throw new SourceError(`Cannot ${step.op === 'create' ? `create ${step.what}` : `run ${step.op === 'sql' ? step.sql.slice(0, 80) : `the step ${step.op}`}`}: ${messageOf(err)}.`, { cause: err });
      }
      // Forward steps are numbered from 1 in the journal (writeJournal).
      await markDone(main, staging, i + 1);
      testKillPoint(`step-${i + 1}`);
    }
  } catch (err) {
    if (journal.newDatabase) {
      await exec(main, `USE ${ident(staging)}`).catch(() => undefined);
      await exec(main, `DROP DATABASE IF EXISTS ${ident(target)}`).catch(() => undefined);
      throw new SourceError(`${(err as Error).message} The new database ${target} was removed again.`, { cause: err });
    }
    const problems: string[] = [];
    for (const s of done.reverse()) if (s.op === 'create') await exec(main, s.drop).catch(() => problems.push(s.what));
    try {
      if (prepared.renameBack !== undefined) await exec(main, prepared.renameBack);
      await repointChildren(main, target, staging);
      for (const s of journal.undo) await runStep(main, target, s, []).catch(() => problems.push('what' in s ? String(s.what) : `foreign key ${s.op === 'fk' ? s.name : ''}`));
      if (prepared.old !== undefined && problems.length === 0) await exec(main, `DROP DATABASE IF EXISTS ${ident(prepared.old)}`);
    } catch (undoErr) {
      problems.push(`the tables (${messageOf(undoErr)})`);
    }
    if (problems.length > 0) prepared.keepJournal = true;
    throw new SourceError(
      `${(err as Error).message} The switch into ${target} was undone${problems.length > 0 ? `, except: ${problems.join(', ')} (the next restore to this database retries from the journal it keeps; or repair by hand)` : ': the target is as it was'}.`,
      { cause: err },
    );
  }
  return warnings;
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

/** Another session using the target database (PROCESSLIST, or a metadata lock on one of its objects). */
export interface TargetSession {
  id: number;
  user: string;
  host: string;
  command: string;
  /** Seconds in its current state. */
  time: number;
}

/**
 * The other sessions using `database`: those whose current database it is (PROCESSLIST.DB), and,
 * when the METADATA_LOCK_INFO plugin is loaded, those holding a metadata lock on one of its
 * objects (an open transaction that read a table while in another database). Our own
 * connection is left out.
 */
export async function sessionsUsing(main: mysql.Connection, database: string): Promise<TargetSession[]> {
  const db = textLit(database);
  const ids = new Set<number>();
  const mdl = await select(main, `SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'information_schema' AND TABLE_NAME = 'METADATA_LOCK_INFO'`);
  if (mdl.length > 0) {
    for (const r of await select(main, `SELECT DISTINCT THREAD_ID FROM information_schema.METADATA_LOCK_INFO WHERE TABLE_SCHEMA = ${db}`)) ids.add(Number(str(r[0])));
  }
  const rows = await select(
    main,
    `SELECT ID, USER, HOST, COMMAND, TIME FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND COMMAND NOT IN ('Daemon', 'Binlog Dump') AND (DB = ${db}${ids.size > 0 ? ` OR ID IN (${[...ids].join(', ')})` : ''}) ORDER BY ID`,
  );
  return rows.map((r) => ({ id: Number(str(r[0])), user: str(r[1]), host: str(r[2]), command: str(r[3]), time: Number(str(r[4])) }));
}

const describeSessions = (list: TargetSession[]): string =>
  `${list
    .slice(0, 10)
    .map((s) => `id ${s.id} (${s.user}@${s.host}, ${s.command}, ${s.time}s)`)
    .join(', ')}${list.length > 10 ? ` and ${list.length - 10} more` : ''}`;

/**
 * `--on-conflict replace`: other sessions using the target just before the switch, handled as
 * `policy` says: `refuse` throws ConflictError naming them (id, user@host, command, seconds) and
 * the fix; `wait` polls until they are gone, at most `timeoutMs` (ConflictError naming those
 * left) or until `signal` aborts (its error); `terminate` ends them (KILL CONNECTION; one already
 * gone is fine) and returns a warning naming them. Returns warnings.
 */
export async function settleSessions(main: mysql.Connection, database: string, location: string, policy: 'refuse' | 'wait' | 'terminate', timeoutMs: number, signal?: AbortSignal): Promise<string[]> {
  let list = await sessionsUsing(main, database);
  if (list.length === 0) return [];
  if (policy === 'refuse') {
    throw new ConflictError(
      `${list.length === 1 ? 'A session is' : `${list.length} sessions are`} using ${location}: ${describeSessions(list)}. --on-conflict replace switches the whole database; end ${list.length === 1 ? 'it' : 'them'}, or restore with --sessions wait (wait until they leave, --sessions-timeout) or --sessions terminate (KILL CONNECTION them).`,
    );
  }
  if (policy === 'terminate') {
    for (const s of list) {
      await exec(main, `KILL CONNECTION ${s.id}`).catch((err: unknown) => {
        // Already gone (1094: unknown thread id) is what we wanted.
        if ((err as { errno?: number }).errno !== 1094) throw err;
      });
    }
    const ended = list;
    // KILL marks the connection; it goes once its statement notices: awaited (briefly).
    list = await waitGone(main, database, 30_000, signal);
    if (list.length > 0) throw new ConflictError(`${location}: ${describeSessions(list)} did not end after KILL CONNECTION within 30s. Try again, or end them by hand.`);
    return [`ended ${ended.length === 1 ? 'a session' : `${ended.length} sessions`} using ${location} (--sessions terminate): ${describeSessions(ended)}.`];
  }
  list = await waitGone(main, database, timeoutMs, signal);
  if (list.length > 0) {
    throw new ConflictError(
      `${list.length === 1 ? 'A session is' : `${list.length} sessions are`} still using ${location} after waiting ${Math.round(timeoutMs / 1000)}s: ${describeSessions(list)}. End ${list.length === 1 ? 'it' : 'them'}, wait longer (--sessions-timeout), or restore with --sessions terminate.`,
    );
  }
  return [];
}

/** Polls sessionsUsing until none is left or `timeoutMs` passed (then returns those left); throws the signal's error on abort. */
async function waitGone(main: mysql.Connection, database: string, timeoutMs: number, signal?: AbortSignal): Promise<TargetSession[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    throwIfAborted(signal);
    const list = await sessionsUsing(main, database);
    if (list.length === 0 || Date.now() >= deadline) return list;
    await new Promise<void>((resolve) => {
      const t = setTimeout(done, Math.min(250, Math.max(0, deadline - Date.now())));
      function done(): void {
        clearTimeout(t);
        signal?.removeEventListener('abort', done);
        resolve();
      }
      signal?.addEventListener('abort', done, { once: true });
    });
  }
}
