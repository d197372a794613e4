/**
 * The staging database of a MySQL/MariaDB restore: tables created from their recorded CREATE
 * TABLE (renamed, foreign keys re-aimed), sequences set, the data streamed in with parallel
 * `LOAD DATA LOCAL INFILE` (one per table or segment, largest first), and views, triggers and
 * routines created once in staging and dropped again, so a definition the server refuses fails
 * the restore before the target is touched.
 */
import { Readable } from 'node:stream';
import type mysql from 'mysql2/promise';
import { CairnError, CorruptionError, SourceError, throwIfAborted } from '../../core/errors.js';
import type { RestoreOptions } from '../types.js';
import { ident, mysqlError, SESSION_SQL_MODE, type MysqlSettings } from './connection.js';
import { aimSequenceDefaults, definerToCurrentUser, renameObject, retargetTrigger, rewriteReferences, type SequenceDefault } from './definitions.js';
import type { MysqlRoutine, MysqlTableDefinition } from './format.js';
import type { Plan, PlannedObject } from './plan.js';
import { close, exec, openSession, select } from './session.js';

/** Bytes between two progress reports of one table. */
const PROGRESS_BYTES = 4 * 1024 * 1024;
/** Sessions loading at once, at most (the server's cores are the real bound). */
const MAX_LOAD_SESSIONS = 8;

export interface StageRun {
  settings: MysqlSettings;
  plan: Plan;
  /** The target database's name (foreign keys to tables this restore does not bring name it). */
  target: string;
  staging: string;
  jobs: number;
  options: RestoreOptions;
}

/** A CREATE TABLE for staging: renamed, its foreign keys aimed at the restored tables' new names or at the target's tables. */
export function stagingCreateTable(run: Pick<StageRun, 'plan' | 'target' | 'staging'>, t: PlannedObject<MysqlTableDefinition>): string {
  const restored = new Map(run.plan.tables.map((x) => [x.source, x.target]));
  const sql = rewriteReferences(renameObject(t.def.createSql, 'TABLE', t.target), (ref) => restored.get(ref) ?? { database: run.target, name: ref });
  // Defaults calling a restored sequence call the staging copy; the switch aims them at the target's.
  return aimSequenceDefaults(sql, new Map(run.plan.sequences.map((s) => [s.source, s.target])), run.staging).sql;
}

/** The columns whose default calls a restored sequence, by table (target names): re-aimed after the switch. */
export function sequenceDefaults(plan: Plan): { table: string; defaults: SequenceDefault[] }[] {
  const seqs = new Map(plan.sequences.map((s) => [s.source, s.target]));
  if (seqs.size === 0) return [];
  return plan.tables.map((t) => ({ table: t.target, defaults: aimSequenceDefaults(t.def.createSql, seqs, '').defaults })).filter((x) => x.defaults.length > 0);
}

/** A CREATE statement with its DEFINER as recorded, or CURRENT_USER with --no-owner. */
export function withDefiner(sql: string, options: RestoreOptions): string {
  return options.noOwner ? definerToCurrentUser(sql) : sql;
}

/** Session settings an object is created under (views, triggers and routines record them). */
export interface CreateModes {
  sqlMode?: string;
  characterSetClient?: string;
  collationConnection?: string;
  timeZone?: string;
}

const NAME = /^\w{1,64}$/;
const MODE = /^[A-Z_,]*$/;
const TZ = /^(SYSTEM|[+-]\d{1,2}:\d{2}|[A-Za-z_/+-]{1,64})$/;

/**
 * Runs `sql` under the recorded modes (then back to the restore session's own): a routine's
 * sql_mode and character sets are part of it (SHOW CREATE reports them, mysqldump replays them).
 */
export async function createUnder(conn: mysql.Connection, modes: CreateModes, sql: string): Promise<void> {
  const sets: string[] = [];
  if (modes.sqlMode !== undefined && MODE.test(modes.sqlMode)) sets.push(`sql_mode = '${modes.sqlMode}'`);
  if (modes.characterSetClient !== undefined && NAME.test(modes.characterSetClient)) sets.push(`character_set_client = ${modes.characterSetClient}`);
  if (modes.collationConnection !== undefined && NAME.test(modes.collationConnection)) sets.push(`collation_connection = ${modes.collationConnection}`);
  if (modes.timeZone !== undefined && TZ.test(modes.timeZone)) sets.push(`time_zone = '${modes.timeZone}'`);
  if (sets.length > 0) await exec(conn, `SET SESSION ${sets.join(', ')}`);
  try {
    // The driver encodes the statement in the character set just set: the bytes its author's
    // client sent (SHOW CREATE printed them converted to UTF-8).
    await exec(conn, sql);
  } finally {
    if (sets.length > 0) await exec(conn, `SET SESSION sql_mode = '${SESSION_SQL_MODE}', character_set_client = utf8mb4, collation_connection = utf8mb4_general_ci, time_zone = '+00:00'`);
  }
}

/** A trigger's recorded modes (optional fields a backup may carry beside name and createSql). */
export function triggerModes(t: { sqlMode?: unknown; characterSetClient?: unknown; collationConnection?: unknown }, fallbackMode: string): CreateModes {
  return {
    sqlMode: typeof t.sqlMode === 'string' ? t.sqlMode : fallbackMode,
    characterSetClient: typeof t.characterSetClient === 'string' ? t.characterSetClient : 'utf8mb4',
    collationConnection: typeof t.collationConnection === 'string' ? t.collationConnection : 'utf8mb4_general_ci',
  };
}

/** A routine's recorded modes. */
export function routineModes(r: MysqlRoutine): CreateModes {
  const tz = (r as unknown as { timeZone?: unknown }).timeZone;
  return {
    sqlMode: r.sqlMode,
    characterSetClient: r.characterSetClient,
    collationConnection: r.collationConnection,
    ...(r.kind === 'EVENT' ? { timeZone: typeof tz === 'string' ? tz : 'SYSTEM' } : {}),
  };
}

/** A view's recorded modes: its character sets (views keep no sql_mode of their own). */
export function viewModes(v: { charset?: string; collation?: string }): CreateModes {
  return { characterSetClient: v.charset ?? 'utf8mb4', collationConnection: v.collation ?? 'utf8mb4_general_ci' };
}

/**
 * Creates the staging tables and sequences in `main` (a session whose current database is the
 * staging database, foreign_key_checks off).
 */
export async function createStagingObjects(main: mysql.Connection, run: StageRun): Promise<void> {
  const { plan, options } = run;
  for (const s of plan.sequences) {
    throwIfAborted(options.signal);
    try {
      await exec(main, renameObject(s.def.createSql, 'SEQUENCE', s.target));
      await exec(main, `SELECT SETVAL(${ident(s.target)}, ${BigInt(s.def.nextValue).toString()}, 0)`);
      // SETVAL never moves a sequence backwards (below its start, say): RESTART sets it exactly.
      const now = await select(main, `SELECT next_not_cached_value FROM ${ident(s.target)}`);
      if (String(now[0]?.[0]) !== s.def.nextValue) await exec(main, `ALTER SEQUENCE ${ident(s.target)} RESTART WITH ${BigInt(s.def.nextValue).toString()}`);
    } catch (err) {
      throw new SourceError(`Cannot create sequence "${s.target}": ${(err as Error).message}. The target was not changed.`, { cause: err });
    }
  }
  for (const t of plan.tables) {
    throwIfAborted(options.signal);
    try {
      await exec(main, stagingCreateTable(run, t));
    } catch (err) {
      throw new SourceError(`Cannot create table "${t.target}": ${(err as Error).message}. The target was not changed.`, { cause: err });
    }
  }
}

interface LoadTask {
  table: PlannedObject<MysqlTableDefinition>;
  segment?: number;
  weight: number;
}

interface TableLoad {
  /** ENUM column → how many of its fields were '' (its error value), over the segments loaded. */
  enumEmpty: Map<string, number>;
  rows: number;
  bytes: number;
  reported: number;
  segmentsLeft: number;
  loaded: number;
}

/**
 * Loads every table's data into staging with up to `jobs` sessions in parallel (each segment of
 * a table is a task of its own; the largest first). Returns the rows loaded. The first failure
 * stops the others; the server changing a value on the way in (any warning) is a failure.
 */
export async function loadData(run: StageRun): Promise<number> {
  const { plan, options } = run;
  const tasks: LoadTask[] = [];
  for (const t of plan.tables) {
    if (!t.def.columns.some((c) => c.stored)) continue;
    const n = t.item.segments ?? 1;
    const bytes = t.item.entry.logicalBytes;
    if (n > 1) for (let s = 0; s < n; s++) tasks.push({ table: t, segment: s, weight: bytes / n });
    else tasks.push({ table: t, weight: bytes });
  }
  tasks.sort((a, b) => b.weight - a.weight);
  const loads = new Map<string, TableLoad>(plan.tables.map((t) => [t.source, { enumEmpty: new Map(), rows: 0, bytes: 0, reported: 0, segmentsLeft: t.item.segments ?? 1, loaded: 0 }]));
  if (tasks.length === 0) return 0;
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  const sessions: LoadSession[] = [];
  let stopped = false;
  let failure: unknown;
  const worker = async (): Promise<void> => {
    const conn = await openSession(run.settings, run.staging, true);
    const session: LoadSession = { conn, threadId: threadIdOf(conn) };
    // Opened after the loads were stopped: nobody else would close it.
    if (stopped) return hardClose(session);
    sessions.push(session);
    // Every warning of a load listed (SHOW WARNINGS keeps max_error_count of them).
    await conn.query(`SET SESSION foreign_key_checks = 0, unique_checks = 0, max_error_count = 65535`);
    for (let task = tasks.shift(); task !== undefined && failure === undefined; task = tasks.shift()) {
      throwIfAborted(signal);
      await loadTask(session, run, task, loads.get(task.table.source) as TableLoad, signal);
    }
  };
  const n = Math.max(1, Math.min(run.jobs, MAX_LOAD_SESSIONS, tasks.length));
  const workers = Promise.all(
    Array.from({ length: n }, () =>
      worker().catch((err: unknown) => {
        failure ??= err;
        stop.abort(err);
      }),
    ),
  );
  try {
    // A Ctrl-C (or another load's failure) ends the wait at once: mysql2 never settles a query
    // whose connection it closed itself, and the server may be waiting for the rest of a file.
    await Promise.race([workers, whenAborted(signal)]);
  } catch {
    // The abort: its reason is thrown below.
  } finally {
    stopped = true;
    if (signal.aborted) await stopLoads(run.settings, sessions);
    else await Promise.all(sessions.map((s) => close(s.conn)));
  }
  throwIfAborted(options.signal);
  if (failure !== undefined) throw failure instanceof CairnError ? failure : mysqlError(failure, run.settings, run.staging);
  let rows = 0;
  for (const l of loads.values()) rows += l.loaded;
  return rows;
}

/** A column's character set as its CREATE TABLE line says, else the table's default (utf8mb4 when neither does). */
export function columnCharset(createSql: string, column: string): string {
  const head = `  ${ident(column)} `;
  const line = createSql.split('\n').find((l) => l.startsWith(head));
  const bare = (line ?? '').replace(/'(?:[^'\\]|\\.|'')*'/g, "''");
  const cs = /CHARACTER SET (\w+)/.exec(bare)?.[1] ?? /DEFAULT CHARSET=(\w+)/.exec(createSql)?.[1] ?? 'utf8mb4';
  return cs;
}

/**
 * MariaDB types whose text form is parsed only from a text string: LOAD DATA … CHARACTER SET
 * binary hands them a binary string, which they read as their binary form ("Incorrect uuid
 * value"), so their field goes through a variable converted to text.
 */
const TEXT_FORM_TYPES = new Set(['uuid', 'inet6', 'inet4']);

/** `(col, @v2, …) SET col2 = @v2`: LOAD DATA's column list and assignments for a table's stored columns. */
export function loadColumns(def: MysqlTableDefinition): { list: string; set: string; enums: { column: string; counter: string }[] } {
  const list: string[] = [];
  const set: string[] = [];
  const enums: { column: string; counter: string }[] = [];
  def.columns
    .filter((c) => c.stored)
    .forEach((c, i) => {
      if (c.loadAs === 'var') {
        list.push(`@v${i}`);
        set.push(`${ident(c.name)} = @v${i}`);
      } else if (c.dataType.toLowerCase() === 'enum' || c.dataType.toLowerCase() === 'set') {
        // A member is matched in the column's character set (a binary string would not match a
        // non-ASCII member). An ENUM's '' (its error value) loads only with a warning: counted
        // here, and checked against the loaded table (checkEnumEmpties).
        const cs = columnCharset(def.createSql, c.name);
        list.push(`@v${i}`);
        if (c.dataType.toLowerCase() === 'enum') {
          const counter = `@cairn_e${i}`;
          enums.push({ column: c.name, counter });
          set.push(`${ident(c.name)} = IF((${counter} := ${counter} + IFNULL(@v${i} = _binary'', 0)) IS NULL, NULL, CONVERT(@v${i} USING ${cs}))`);
        } else {
          set.push(`${ident(c.name)} = CONVERT(@v${i} USING ${cs})`);
        }
      } else if (TEXT_FORM_TYPES.has(c.dataType.toLowerCase())) {
        list.push(`@v${i}`);
        set.push(`${ident(c.name)} = CONVERT(@v${i} USING utf8mb4)`);
      } else {
        list.push(ident(c.name));
      }
    });
  return { list: `(${list.join(', ')})`, set: set.length > 0 ? ` SET ${set.join(', ')}` : '', enums };
}

/** One load session: its connection, the server's id of it (KILL), the stream its LOAD DATA reads. */
interface LoadSession {
  conn: mysql.Connection;
  threadId: number;
  infile?: Readable;
}

const threadIdOf = (conn: mysql.Connection): number => (conn as unknown as { connection: { threadId: number } }).connection.threadId;

/** Rejects (with nothing: the caller throws the signal's reason) once `signal` fires. */
function whenAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(new Error('aborted'));
    else signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
  });
}

/**
 * Drops a load session at once: its infile stream stopped (destroyed without an error, so the
 * driver does not send the end-of-file packet that would commit a partial load) and its socket
 * destroyed (closed marked first, so the driver reports nothing for it).
 */
function hardClose(s: LoadSession): void {
  s.infile?.destroy();
  const core = (s.conn as unknown as { connection: { destroy(): void; stream?: { destroy(): void } } }).connection;
  try {
    core.destroy();
    core.stream?.destroy();
  } catch {
    // Already gone.
  }
}

/** How long a stopped restore waits for the server to end its loads (their rollback) before dropping staging. */
const STOP_WAIT_MS = 20_000;

/**
 * Stops loads in flight (abort or failure): each session dropped (hardClose), then, from a
 * short session of its own, the server told to end them (KILL CONNECTION: a LOAD DATA whose
 * client went away may otherwise wait for the rest of its file), and waited for until they are
 * gone (at most STOP_WAIT_MS), so that the staging database can be dropped at once (a DROP
 * DATABASE waits for their metadata locks). Never throws.
 */
async function stopLoads(settings: MysqlSettings, sessions: LoadSession[]): Promise<void> {
  for (const s of sessions) hardClose(s);
  const ids = sessions.map((s) => Math.floor(s.threadId)).filter((id) => Number.isFinite(id) && id > 0);
  if (ids.length === 0) return;
  let side: mysql.Connection | undefined;
  try {
    side = await openSession(settings, '');
    for (const id of ids) await side.query(`KILL CONNECTION ${id}`).catch(() => undefined); // already gone: 1094
    const deadline = Date.now() + STOP_WAIT_MS;
    while (Date.now() < deadline) {
      const left = await select(side, `SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID IN (${ids.join(', ')})`);
      if (Number(left[0]?.[0] ?? 0) === 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
  } catch {
    // The staging database is dropped anyway (or settled by the next restore).
  } finally {
    await close(side);
  }
}

/** Resolves when `socket` drains, closes, or `signal` fires (the caller then sees the abort). */
function drained(socket: NodeJS.WritableStream, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      socket.removeListener('drain', done);
      socket.removeListener('close', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    socket.once('drain', done);
    socket.once('close', done);
    signal.addEventListener('abort', done, { once: true });
  });
}

async function loadTask(session: LoadSession, run: StageRun, task: LoadTask, load: TableLoad, signal: AbortSignal): Promise<void> {
  const { conn } = session;
  const { table } = task;
  const name = table.source;
  const { onProgress } = run.options;
  let streamError: unknown;
  let lines = 0;
  // The driver pipes the stream into the socket without waiting for it to drain (it listens for
  // a 'pause' a socket never emits): wait here, so a fast source never piles up in memory.
  const socket = (conn as unknown as { connection?: { stream?: NodeJS.WritableStream & { writableNeedDrain?: boolean } } }).connection?.stream;
  async function* counted(): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of task.segment === undefined ? table.item.data() : table.item.data(task.segment)) {
        throwIfAborted(signal);
        const b = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        for (let i = b.indexOf(10); i >= 0; i = b.indexOf(10, i + 1)) lines++;
        load.bytes += b.length;
        load.reported += b.length;
        if (load.reported >= PROGRESS_BYTES) {
          load.reported = 0;
          onProgress?.({ collection: name, rows: load.rows + lines, bytes: load.bytes });
        }
        if (socket?.writableNeedDrain) await drained(socket, signal);
        yield b;
      }
    } catch (err) {
      streamError = err;
      throw err;
    }
  }
  const stream = Readable.from(counted(), { objectMode: false });
  session.infile = stream;
  const { list, set, enums } = loadColumns(table.def);
  if (enums.length > 0) await conn.query(`SET ${enums.map((e) => `${e.counter} = 0`).join(', ')}`);
  const versioned = table.def.systemVersioned === true;
  if (versioned) await conn.query(`SET SESSION system_versioning_insert_history = 1`);
  let result: mysql.ResultSetHeader;
  try {
    const sql = `LOAD DATA LOCAL INFILE 'cairn-stream' INTO TABLE ${ident(table.target)} CHARACTER SET binary FIELDS TERMINATED BY '\\t' ENCLOSED BY '' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ${list}${set}`;
    [result] = await conn.query<mysql.ResultSetHeader>({ sql, infileStreamFactory: () => stream });
  } catch (err) {
    throwIfAborted(signal);
    if (streamError !== undefined) throw streamError;
    throw new SourceError(`Cannot load table "${name}"${table.target !== name ? ` (as "${table.target}")` : ''}: ${(err as { sqlMessage?: string }).sqlMessage ?? (err as Error).message}. The target was not changed.`, { cause: err });
  } finally {
    stream.destroy();
    session.infile = undefined;
  }
  throwIfAborted(signal);
  if (streamError !== undefined) throw streamError;
  if (versioned) await conn.query(`SET SESSION system_versioning_insert_history = 0`);
  if (result.warningStatus > 0) {
    const warnings = await select(conn, 'SHOW WARNINGS');
    const enums = new Set(table.def.columns.filter((c) => c.dataType.toLowerCase() === 'enum').map((c) => c.name));
    // An ENUM's error value ('', index 0: what a non-member became in the source) can only be
    // loaded with a "Data truncated" warning, and comes back exactly as it was: the one warning
    // a restore accepts, when every warning was listed (max_error_count) and is that one.
    const tolerated = (w: (string | null)[]): boolean => w[1] === '1265' && enums.has(/for column '((?:[^']|'')*)' at row/.exec(w[2] ?? '')?.[1]?.replace(/''/g, "'") ?? '\0');
    const first = warnings.length === result.warningStatus ? warnings.find((w) => !tolerated(w)) : (warnings.find((w) => !tolerated(w)) ?? warnings[0]);
    if (first !== undefined || warnings.length !== result.warningStatus) {
    const text = first ? `${String(first[0])} ${String(first[1])}: ${String(first[2])}` : `${result.warningStatus} warning(s)`;
    throw new SourceError(
      `Table "${name}": the server changed or dropped data while loading it (${result.warningStatus} warning${result.warningStatus === 1 ? '' : 's'}; first: ${text}). A restore keeps every value exactly or fails; the target was not changed. Check that the target server's version, sql_mode and character sets accept what the backup holds (the table's definition may need a type or charset the server lacks).`,
    );
    }
  }
  if (enums.length > 0) {
    const counts = (await select(conn, `SELECT ${enums.map((e) => e.counter).join(', ')}`))[0] ?? [];
    enums.forEach((e, k) => load.enumEmpty.set(e.column, (load.enumEmpty.get(e.column) ?? 0) + Number(counts[k] ?? 0)));
  }
  load.rows += lines;
  load.loaded += result.affectedRows;
  load.segmentsLeft--;
  if (lines !== result.affectedRows) {
    throw new SourceError(`Table "${name}": the data held ${lines} rows but the server loaded ${result.affectedRows}. The target was not changed.`);
  }
  if (load.segmentsLeft === 0) {
    if (load.rows !== table.item.entry.rowCount) {
      throw new CorruptionError(`Table "${name}": the backup recorded ${table.item.entry.rowCount} rows but its data holds ${load.rows}.`, { objects: [], collections: [name] });
    }
    // Every ENUM value that became '' must have been '' in the backup (the tolerated warnings).
    for (const [column, expected] of load.enumEmpty) {
      const got = Number((await select(conn, `SELECT COUNT(*) FROM ${ident(table.target)} WHERE ${ident(column)} + 0 = 0`))[0]?.[0] ?? 0);
      if (got !== expected) {
        throw new SourceError(`Table "${name}": ${got - expected} value(s) of ENUM column "${column}" did not load as a member (they became ''); the target was not changed. Check the column's members and character set on the target server.`);
      }
    }
    onProgress?.({ collection: name, rows: load.rows, bytes: load.bytes });
  }
}

/**
 * Creates every view (in the backup's order), trigger and routine (not events, which a
 * scheduler could fire) in staging, then drops them: the server checks each definition before
 * the target is touched. Views reading objects this restore does not bring are left to the
 * switch (they read the target's). `fallbackMode`: sql_mode for triggers that record none.
 */
export async function validateInStaging(main: mysql.Connection, run: StageRun, fallbackMode: string, skipViews: ReadonlySet<string>): Promise<void> {
  const { plan, options } = run;
  const created: string[] = [];
  const fail = (what: string, err: unknown): never => {
    throw new SourceError(
      `The server refuses ${what}: ${(err as { sqlMessage?: string }).sqlMessage ?? (err as Error).message}. The target was not changed.${/definer|SUPER|SET USER|1227|1449/i.test(String((err as Error).message)) && !options.noOwner ? ' Restore with --no-owner to create it as the restoring account.' : ''}`,
      { cause: err },
    );
  };
  for (const v of plan.views) {
    throwIfAborted(options.signal);
    if (skipViews.has(v.source)) continue;
    try {
      await createUnder(main, viewModes(v.def), withDefiner(renameObject(v.def.createSql, 'VIEW', v.target), options));
      created.push(`DROP VIEW IF EXISTS ${ident(v.target)}`);
    } catch (err) {
      fail(`view "${v.source}"`, err);
    }
  }
  for (const t of plan.tables) {
    for (const trig of t.def.triggers) {
      throwIfAborted(options.signal);
      try {
        await createUnder(main, triggerModes(trig as never, fallbackMode), withDefiner(retargetTrigger(trig.createSql, t.target), options));
        created.push(`DROP TRIGGER IF EXISTS ${ident(trig.name)}`);
      } catch (err) {
        fail(`trigger "${trig.name}" of table "${t.source}"`, err);
      }
    }
  }
  for (const r of plan.routines?.def.routines ?? []) {
    if (r.kind === 'EVENT') continue;
    throwIfAborted(options.signal);
    try {
      await createUnder(main, routineModes(r), withDefiner(r.createSql, options));
      created.push(`DROP ${r.kind} IF EXISTS ${ident(r.name)}`);
    } catch (err) {
      fail(`${r.kind.toLowerCase()} "${r.name}"`, err);
    }
  }
  for (const drop of created.reverse()) await exec(main, drop);
}
