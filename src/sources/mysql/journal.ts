/**
 * The switch journal of a MySQL/MariaDB restore: what a restore killed (kill -9, a crash, a lost
 * connection) around its switch must still do, so that whoever finds its leftovers finishes it
 * or undoes it and the target is never left half-written.
 *
 * MySQL DDL is not transactional: the switch is one atomic `RENAME TABLE`, followed by the
 * views, triggers, routines and events created in the target and the replaced tables dropped.
 * Before anything in the target changes, the restore writes into a database of its own,
 * `<staging>_log`:
 * - `steps`: every statement that must follow the RENAME (phase `forward`, in order, already
 *   validated in staging), every statement that puts the target back if the RENAME never
 *   happened (phase `undo`: objects dropped just before it recreated, a database created for it
 *   dropped), and a `meta` row (target database, whether the restore created it);
 * - `pending`: an empty marker table that the RENAME itself renames to `switched`, in the same
 *   atomic statement as the tables. So `switched` exists exactly when the switch happened: the
 *   journal cannot disagree with the target.
 *
 * Every step can run again after a kill at any point of it: a created object is dropped (IF
 * EXISTS) and created again, a foreign key is re-pointed only where it does not already point
 * at the target, an object put back only where it is missing. A step is marked done once it ran.
 */
import type mysql from 'mysql2/promise';
import { SourceError } from '../../core/errors.js';
import { ident } from './connection.js';
import { restoreGrants } from './grants-restore.js';
import { createUnder, type CreateModes } from './load.js';
import { stagingMark } from './leftovers.js';
import { exec, select, textLit } from './session.js';

/** The journal database of a staging database. */
export const LOG_SUFFIX = '_log';
/** The marker table, before and after the RENAME. */
export const PENDING = 'pending';
export const SWITCHED = 'switched';

/** One thing to do in the target (its current database): see the module comment. */
export type Step =
  /** An idempotent statement (DROP … IF EXISTS, ALTER … SET DEFAULT). */
  | { op: 'sql'; sql: string; what?: string }
  /** An object of the restore: `drop` (IF EXISTS) then `create` under `modes`. */
  | { op: 'create'; what: string; drop: string; create: string; modes: CreateModes }
  /** An object of the target put back: `create` when `exists` (a SELECT) returns no row. */
  | { op: 'ensure'; what: string; exists: string; create: string; modes: CreateModes }
  /** Foreign key `name` of `table` aimed at the target's tables: `clause` is its `CONSTRAINT … REFERENCES `x` …` as written in the target. */
  | { op: 'fk'; table: string; name: string; clause: string }
  /** Users and grants (--roles, grants-restore.ts restoreGrants): what the server refuses is a warning. */
  | { op: 'grants'; statements: string[] }
  /** A database dropped when it holds no table, view, routine or event. */
  | { op: 'drop-if-empty'; database: string };

export interface Journal {
  /** The target database. */
  target: string;
  /** Whether the restore creates the target database (a new-database restore). */
  newDatabase: boolean;
  forward: Step[];
  undo: Step[];
}

/** What running steps did, for the restore's warnings. */
export interface StepsDone {
  /** "view "v"", "trigger "t"" … of the steps that created or put back an object. */
  created: string[];
  warnings: string[];
  /** Undoing a new-database restore dropped the (empty) database it had created. */
  droppedTarget?: boolean;
}

const str = (v: unknown): string => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v ?? ''));
const messageOf = (err: unknown): string => (err as { sqlMessage?: string }).sqlMessage ?? (err as Error).message;
const hex = (value: string): string => `X'${Buffer.from(value, 'utf8').toString('hex')}'`;

/** The journal database of the restore whose staging database is `staging`. */
export const logDatabase = (staging: string): string => `${staging}${LOG_SUFFIX}`;

/**
 * Writes the journal into a new `<staging>_log` database (before the target changes). Throws
 * the server's error; the caller drops the database with the staging one.
 */
export async function writeJournal(conn: mysql.Connection, staging: string, journal: Journal): Promise<void> {
  const log = ident(logDatabase(staging));
  await exec(conn, `CREATE DATABASE ${log}${stagingMark()}`);
  // InnoDB: its rows are durable once the INSERT returns, and RENAME TABLE of InnoDB tables is atomic.
  await exec(conn, `CREATE TABLE ${log}.\`steps\` (n INT NOT NULL PRIMARY KEY, phase VARCHAR(8) NOT NULL, step LONGBLOB NOT NULL, done TINYINT NOT NULL DEFAULT 0) ENGINE=InnoDB`);
  const rows: string[] = [`(0, 'meta', ${hex(JSON.stringify({ target: journal.target, newDatabase: journal.newDatabase }))})`];
  journal.forward.forEach((s, i) => rows.push(`(${i + 1}, 'forward', ${hex(JSON.stringify(s))})`));
  const base = journal.forward.length + 1;
  journal.undo.forEach((s, i) => rows.push(`(${base + i}, 'undo', ${hex(JSON.stringify(s))})`));
  // Batches well within any max_allowed_packet.
  let batch: string[] = [];
  let size = 0;
  for (const r of rows) {
    if (batch.length > 0 && size + r.length > 512 * 1024) {
      await exec(conn, `INSERT INTO ${log}.\`steps\` (n, phase, step) VALUES ${batch.join(', ')}`);
      batch = [];
      size = 0;
    }
    batch.push(r);
    size += r.length;
  }
  if (batch.length > 0) await exec(conn, `INSERT INTO ${log}.\`steps\` (n, phase, step) VALUES ${batch.join(', ')}`);
  await exec(conn, `CREATE TABLE ${log}.\`${PENDING}\` (id INT NOT NULL PRIMARY KEY) ENGINE=InnoDB`);
}

/** The `RENAME TABLE` pair that marks the switch (part of the switch's one RENAME); and its reverse. */
export const switchMark = (staging: string): string => `${ident(logDatabase(staging))}.\`${PENDING}\` TO ${ident(logDatabase(staging))}.\`${SWITCHED}\``;
export const unswitchMark = (staging: string): string => `${ident(logDatabase(staging))}.\`${SWITCHED}\` TO ${ident(logDatabase(staging))}.\`${PENDING}\``;

/** A journal as read back: its steps with their numbers and whether they ran. */
export interface ReadJournal extends Journal {
  switched: boolean;
  /** Step number → done, for `forward` then `undo` steps in order. */
  numbers: { forward: number[]; undo: number[] };
  done: Set<number>;
}

/** Reads the journal of `log` (a `<staging>_log` database), or undefined when it holds none (killed while writing it: nothing in the target changed). */
export async function readJournal(conn: mysql.Connection, log: string): Promise<ReadJournal | undefined> {
  const tables = new Set(
    (await select(conn, `SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${textLit(log)}`)).map((r) => str(r[0])),
  );
  // `pending` is created last: without it (and without `switched`) the journal is incomplete.
  if (!tables.has('steps') || (!tables.has(PENDING) && !tables.has(SWITCHED))) return undefined;
  const rows = await select(conn, `SELECT n, phase, step, done FROM ${ident(log)}.\`steps\` ORDER BY n`);
  let meta: { target: string; newDatabase: boolean } | undefined;
  const journal: ReadJournal = { target: '', newDatabase: false, forward: [], undo: [], switched: tables.has(SWITCHED), numbers: { forward: [], undo: [] }, done: new Set() };
  for (const r of rows) {
    const n = Number(r[0]);
    const phase = str(r[1]);
    const value = JSON.parse(str(r[2])) as unknown;
    if (Number(r[3]) === 1) journal.done.add(n);
    if (phase === 'meta') meta = value as { target: string; newDatabase: boolean };
    else if (phase === 'forward' || phase === 'undo') {
      journal[phase].push(value as Step);
      journal.numbers[phase].push(n);
    }
  }
  if (meta === undefined) return undefined;
  journal.target = meta.target;
  journal.newDatabase = meta.newDatabase;
  return journal;
}

/**
 * Runs one step in `conn` (current database the target, foreign_key_checks off). Throws the
 * server's error for a step that fails (a grant: returned as a warning instead). Returns the
 * object it created or put back, if any.
 */
export async function runStep(conn: mysql.Connection, target: string, step: Step, warnings: string[]): Promise<string | undefined> {
  switch (step.op) {
    case 'sql':
      await exec(conn, step.sql);
      return undefined;
    case 'create':
      await exec(conn, step.drop);
      await createUnder(conn, step.modes, step.create);
      return step.what;
    case 'ensure':
      if ((await select(conn, step.exists)).length > 0) return undefined;
      await createUnder(conn, step.modes, step.create);
      return step.what;
    case 'fk': {
      const rows = await select(
        conn,
        `SELECT UNIQUE_CONSTRAINT_SCHEMA FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ${textLit(target)} AND TABLE_NAME = ${textLit(step.table)} AND CONSTRAINT_NAME = ${textLit(step.name)}`,
      );
      if (rows.length > 0 && str(rows[0]?.[0]) === target) return undefined;
      // Two statements (the server refuses to drop and add a constraint of one name in one
      // ALTER): a kill between them leaves the key missing, which this step, run again, adds.
      if (rows.length > 0) await exec(conn, `ALTER TABLE ${ident(target)}.${ident(step.table)} DROP FOREIGN KEY ${ident(step.name)}`);
      await exec(conn, `ALTER TABLE ${ident(target)}.${ident(step.table)} ADD ${step.clause}`);
      return undefined;
    }
    case 'grants':
      warnings.push(...(await restoreGrants(conn, step.statements)));
      return undefined;
    case 'drop-if-empty': {
      const db = textLit(step.database);
      const held = await select(
        conn,
        `SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${db} UNION ALL SELECT 1 FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ${db} UNION ALL SELECT 1 FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ${db} LIMIT 1`,
      );
      if (held.length === 0) await exec(conn, `DROP DATABASE IF EXISTS ${ident(step.database)}`);
      return undefined;
    }
  }
}

/** Marks step `n` of the journal of `staging` done (autocommit: durable once it returns). */
export async function markDone(conn: mysql.Connection, staging: string, n: number): Promise<void> {
  await exec(conn, `UPDATE ${ident(logDatabase(staging))}.\`steps\` SET done = 1 WHERE n = ${n}`);
}

/**
 * Test hooks, at the points `before-rename` (the target's objects that must go before the RENAME
 * dropped, the RENAME not run), `after-rename` (the RENAME done, no step after it) and
 * `step-<n>` (after the n-th step that follows the RENAME): `CAIRN_TEST_MYSQL_KILL_AT=<point>`
 * makes the process SIGKILL itself there, as a crash would stop it;
 * `CAIRN_TEST_MYSQL_INTERRUPT_AT=<point>` sends it a SIGINT (a Ctrl-C) there. Never set
 * outside tests.
 */
export function testKillPoint(point: string): void {
  if (process.env.CAIRN_TEST_MYSQL_KILL_AT === point) process.kill(process.pid, 'SIGKILL');
  if (process.env.CAIRN_TEST_MYSQL_INTERRUPT_AT === point) process.kill(process.pid, 'SIGINT');
}

/** Describes objects for a message: `view "a", view "b", trigger "t"` → `views a, b; trigger t`. */
export function describeObjects(whats: string[]): string {
  const groups = new Map<string, string[]>();
  for (const w of whats) {
    const m = /^(\w+) "(.*)"$/s.exec(w);
    const kind = m?.[1] ?? 'object';
    const list = groups.get(kind) ?? [];
    list.push(m?.[2] ?? w);
    groups.set(kind, list);
  }
  return [...groups.entries()].map(([k, names]) => `${k}${names.length === 1 ? '' : 's'} ${names.join(', ')}`).join('; ');
}

/**
 * Finishes (switched) or undoes (not switched) the restore whose journal `journal` is, in `conn`
 * (a session of its own: its current database and foreign_key_checks are changed). Steps done
 * already are skipped; each step is safe to run again. Throws SourceError naming the step the
 * server refuses. Returns what was created or put back.
 */
export async function settleJournal(conn: mysql.Connection, staging: string, journal: ReadJournal): Promise<StepsDone> {
  const done: StepsDone = { created: [], warnings: [] };
  await exec(conn, `SET SESSION foreign_key_checks = 0`);
  const exists = (await select(conn, `SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ${textLit(journal.target)}`)).length > 0;
  if (!exists) return done;
  await exec(conn, `USE ${ident(journal.target)}`);
  const phase = journal.switched ? 'forward' : 'undo';
  const steps = journal[phase];
  for (const [i, step] of steps.entries()) {
    const n = journal.numbers[phase][i] as number;
    if (journal.done.has(n)) continue;
    try {
      const what = await runStep(conn, journal.target, step, done.warnings);
      if (what !== undefined) done.created.push(what);
    } catch (err) {
      throw new SourceError(
        `Cannot ${journal.switched ? 'finish' : 'undo'} an interrupted restore of ${journal.target}: ${'what' in step && step.what ? `${step.what}: ` : ''}${messageOf(err)}. Its journal is kept in ${logDatabase(staging)}; fix the cause and run the restore again (it finishes this one first), or abandon it by dropping the databases ${staging}, ${staging}_old and ${logDatabase(staging)} (the target then stays as it is now).`,
        { cause: err },
      );
    }
    await markDone(conn, staging, n);
  }
  if (!journal.switched && journal.newDatabase) {
    done.droppedTarget = (await select(conn, `SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ${textLit(journal.target)}`)).length === 0;
  }
  return done;
}
