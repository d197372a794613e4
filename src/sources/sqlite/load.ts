/**
 * The data side of a SQLite restore: loadStaging fills a fresh staging file from the items'
 * streams (a transaction every BATCH_ROWS rows, journal and fsync off: the file is thrown away
 * on failure), then creates indexes, AUTOINCREMENT counters, triggers and views there;
 * copyFromStaging copies a table from the attached staging file into an existing target inside
 * the switch's transaction (target.ts). The create* helpers run a planned definition through
 * validate.ts (runDefinition), which checks that it created the one object it names.
 */
import type BetterSqlite3 from 'better-sqlite3';
import Database from './driver.js';
import { CorruptionError, throwIfAborted } from '../../core/errors.js';
import type { RestoreOptions } from '../types.js';
import { RowDecoder, TextBytes, type RowDecoderOptions } from '../row-codec.js';
import { Pacer } from '../pace.js';
import { quoteIdent, type SqliteNamedSql } from './sql.js';
import { foldName } from './naming.js';
import { createStagingFile } from './staging.js';
import { runDefinition } from './validate.js';
import { assertColumns } from './conflicts.js';
import { sqliteError } from './errors.js';
import { statNames, type Planned, type PlannedTable, type PlannedView, type PlannedVirtual } from './plan.js';
import { createVirtual, shadowColumns, VIRTUAL_KIND, withShadowWrites } from './virtual.js';
import { appNameRewrites, knownFunctions, needsUncheckedLoad, refuseStoredAppFunctions, restoreDefinitions, withFallbacks } from './app-names.js';
import { convertedTextWarning } from './restore-warnings.js';
import { applyDatabase, applyFileSettings, applyJournalMode, type DatabaseDefinition, type StatRow } from './database.js';

/** Rows between two progress reports of a table. */
const PROGRESS_ROWS = 65536;
/** Rows per staging transaction. */
const BATCH_ROWS = 262144;
/** The name the staging file is attached under to the target during the switch. */
export const STAGING_SCHEMA = 'cairn_staging';

/** Creates the planned table or view from its (renamed) CREATE statement; throws what runDefinition throws. */
export function createObject(db: BetterSqlite3.Database, p: PlannedTable | PlannedView): void {
  // Application collations and functions are created with fallbacks, and the definitions put
  // back as written once loaded (app-names.ts).
  runDefinition(db, withFallbacks(p.createSql, knownFunctions(), p.kind === 'table'), { kind: p.kind, name: p.name }, p.item.entry.name);
}

/** Creates one of a planned table's indexes. */
export function createIndex(db: BetterSqlite3.Database, t: PlannedTable, idx: SqliteNamedSql): void {
  runDefinition(db, withFallbacks(idx.sql, knownFunctions(), true), { kind: 'index', name: idx.name, table: t.name }, t.item.entry.name);
}

/** Creates one of a planned table's or view's triggers. */
export function createTrigger(db: BetterSqlite3.Database, p: Planned, tr: SqliteNamedSql): void {
  runDefinition(db, withFallbacks(tr.sql, knownFunctions()), { kind: 'trigger', name: tr.name, table: p.name }, p.item.entry.name);
}

/**
 * Loads every collection into a fresh staging file (path `staging`, which must not exist);
 * returns the number of rows. Throws CorruptionError for damaged or miscounted data, what
 * throwIfAborted throws once `signal` is aborted, and SourceError for SQLite's errors; the
 * caller removes the file. Pushes onto `warnings` what it converted (text that is not UTF-8, for
 * a UTF-16 file).
 */
export async function loadStaging(
  staging: string,
  plan: Planned[],
  signal: AbortSignal | undefined,
  onProgress: RestoreOptions['onProgress'],
  database?: { def: DatabaseDefinition; stats: StatRow[] },
  targetEncoding?: string,
  warnings?: string[],
): Promise<number> {
  const rewrites = appNameRewrites(plan, knownFunctions());
  refuseStoredAppFunctions(plan, knownFunctions());
  // Created empty, private (0600 whatever the umask), before SQLite opens it.
  createStagingFile(staging);
  const db = new Database(staging);
  let total = 0;
  try {
    // Functions with side effects are refused inside the definitions created below.
    db.pragma('trusted_schema = OFF');
    db.pragma('journal_mode = OFF');
    db.pragma('synchronous = OFF');
    db.pragma('foreign_keys = OFF');
    // CHECK constraints calling an application function run with a fallback: the rows, which
    // satisfied them in the source, are loaded without evaluating them.
    if (needsUncheckedLoad(rewrites, knownFunctions())) db.pragma('ignore_check_constraints = ON');
    db.pragma('cache_size = -65536');
    // The source's encoding, page size and auto_vacuum: settable only before the first write.
    applyFileSettings(db, database?.def, targetEncoding);
    // Writes the header now: SQLite leaves a database without tables as a 0-byte file, which
    // nothing (cairn's backup included) would recognise as a database.
    db.pragma('user_version = 0');
    const tables = plan.filter((p): p is PlannedTable => p.kind === 'table');
    for (const t of tables) {
      throwIfAborted(signal);
      createObject(db, t);
      assertColumns(db, t);
      const loaded = await loadTable(db, t, signal, onProgress, warnings);
      total += loaded;
    }
    for (const v of plan) {
      if (v.kind !== VIRTUAL_KIND) continue;
      throwIfAborted(signal);
      createVirtual(db, v.createSql, v.name, v.def, v.item.entry.name);
      // Defensive mode off while the shadow tables are written (no manifest SQL runs meanwhile).
      db.unsafeMode(true);
      try {
        total += await loadShadows(db, v, signal, onProgress);
      } finally {
        db.unsafeMode(false);
      }
    }
    for (const t of tables) for (const idx of t.indexes) createIndex(db, t, idx);
    for (const t of tables) setSequence(db, 'main', t);
    for (const t of tables) for (const tr of t.triggers) createTrigger(db, t, tr);
    for (const v of plan) if (v.kind === 'view') createObject(db, v);
    for (const v of plan) if (v.kind === 'view') for (const tr of v.triggers) createTrigger(db, v, tr);
    if (database !== undefined) {
      db.transaction(() => applyDatabase(db, 'main', database.def, database.stats, statNames(plan)))();
      // A staging file that is copied into an existing target needs no WAL of its own.
      if (targetEncoding === undefined) applyJournalMode(db, database.def);
    }
    // Last: the definitions as written, application collations included. Not in a staging file
    // that is copied into an existing target: SQLite could not read its tables keyed by an
    // application collation there (the switch puts the target's definitions back instead).
    if (targetEncoding === undefined) restoreDefinitions(db, rewrites);
    throwIfAborted(signal);
    // Views and their triggers have no data: their streams are not read.
  } catch (err) {
    if (db.inTransaction) db.exec('ROLLBACK');
    throw sqliteError(err, 'Cannot load the restore staging database');
  } finally {
    db.close();
  }
  return total;
}

/**
 * Puts the definitions back as written in a staging file loaded for an existing target (where
 * loadStaging left the fallbacks) that is to become the target itself after all: the target
 * was removed meanwhile.
 */
export function finishStagingDefinitions(staging: string, plan: Planned[]): void {
  const db = new Database(staging);
  try {
    restoreDefinitions(db, appNameRewrites(plan, knownFunctions()));
  } catch (err) {
    throw sqliteError(err, 'Cannot load the restore staging database');
  } finally {
    db.close();
  }
}

/**
 * Streams one table's rows into the open staging database, in transactions of BATCH_ROWS rows;
 * returns the number of rows. Throws CorruptionError when the data does not decode, a row has
 * the wrong number of values, or the count differs from the manifest's.
 */
async function loadTable(
  db: BetterSqlite3.Database,
  t: PlannedTable,
  signal: AbortSignal | undefined,
  onProgress: RestoreOptions['onProgress'],
  warnings?: string[],
): Promise<number> {
  const name = t.item.entry.name;
  const cols = t.columns;
  const insertSql = (text?: Set<number>): string =>
    `INSERT INTO main.${quoteIdent(t.name)} (${cols.map(quoteIdent).join(', ')}) VALUES (${cols.map((_, i) => (text?.has(i) ? 'CAST(? AS TEXT)' : '?')).join(', ')})`;
  const insert = db.prepare(insertSql());
  // Rows holding text that is not valid UTF-8 (TextBytes): bound as a blob and cast to TEXT,
  // which keeps the bytes in a UTF-8 file; one statement per pattern of such columns.
  const encoding = String(db.pragma('main.encoding', { simple: true }));
  const utf8 = encoding === 'UTF-8';
  let converted = 0;
  const withBytes = new Map<string, BetterSqlite3.Statement>();
  const insertRow = (row: unknown[]): void => {
    let text: Set<number> | undefined;
    for (let i = 0; i < row.length; i++) {
      const v = row[i];
      if (!(v instanceof TextBytes)) continue;
      // A UTF-16 file cannot hold bytes that are not text: SQLite converts what it is given.
      if (!utf8) {
        row[i] = Buffer.from(v.bytes).toString('utf8');
        converted++;
        continue;
      }
      (text ??= new Set()).add(i);
      row[i] = v.bytes;
    }
    if (text === undefined) {
      insert.run(row);
      return;
    }
    const key = [...text].join(',');
    let stmt = withBytes.get(key);
    if (stmt === undefined) {
      stmt = db.prepare(insertSql(text));
      withBytes.set(key, stmt);
    }
    stmt.run(row);
  };
  const pacer = new Pacer();
  let rows = 0;
  const counted = { bytes: 0 };
  let batch = 0;
  const report = (): void => onProgress?.({ collection: name, rows, bytes: counted.bytes });
  const damaged = (err: CorruptionError): CorruptionError =>
    new CorruptionError(`Table "${name}": ${err.message}`, { objects: err.objects, collections: [name] });
  db.exec('BEGIN');
  try {
    // Long text comes as its bytes (TextBytes, bound as a blob cast to TEXT: the same bytes in a
    // UTF-8 file): a string would be one more copy, and binding it one more again.
    for await (const decoded of decodedChunks(t.item.data(), signal, damaged, counted, { largeTextAsBytes: utf8 })) {
      for (const row of decoded) {
        if (row.length !== cols.length) {
          throw new CorruptionError(
            `Table "${name}": row ${rows + 1} has ${row.length} values, expected ${cols.length}.`,
            { objects: [], collections: [name] },
          );
        }
        insertRow(row);
        rows++;
        if (rows % PROGRESS_ROWS === 0) report();
        // Inserting a chunk's rows is synchronous: give signals and requests a turn meanwhile.
        if (rows % 256 === 0 && pacer.due()) {
          await pacer.pause();
          throwIfAborted(signal);
        }
        if (++batch >= BATCH_ROWS) {
          batch = 0;
          db.exec('COMMIT');
          db.exec('BEGIN');
        }
      }
    }
    db.exec('COMMIT');
  } catch (err) {
    if (db.inTransaction) db.exec('ROLLBACK');
    throw err;
  }
  if (rows !== t.item.entry.rowCount) {
    throw new CorruptionError(
      `Table "${name}": the backup recorded ${t.item.entry.rowCount} rows but its data holds ${rows}.`,
      { objects: [], collections: [name] },
    );
  }
  if (converted > 0) warnings?.push(convertedTextWarning(t.name, converted, encoding));
  report();
  return rows;
}

/**
 * Replaces the rows of a virtual table's shadow tables (just created, holding the module's
 * initial rows) with the backup's; returns the number of rows. Defensive mode must be off
 * (withShadowWrites). Throws CorruptionError like loadTable.
 */
async function loadShadows(
  db: BetterSqlite3.Database,
  v: PlannedVirtual,
  signal: AbortSignal | undefined,
  onProgress: RestoreOptions['onProgress'],
): Promise<number> {
  const name = v.item.entry.name;
  const inserts = v.def.shadows.map((sh, k) => {
    const cols = shadowColumns(sh);
    const table = `main.${quoteIdent(v.shadowNames[k] as string)}`;
    db.prepare(`DELETE FROM ${table}`).run();
    return {
      width: cols.length,
      plain: db.prepare(`INSERT INTO ${table} (${cols.map(quoteIdent).join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`),
      sql: (text: Set<number>): string => `INSERT INTO ${table} (${cols.map(quoteIdent).join(', ')}) VALUES (${cols.map((_, i) => (text.has(i) ? 'CAST(? AS TEXT)' : '?')).join(', ')})`,
    };
  });
  const pacer = new Pacer();
  let rows = 0;
  const counted = { bytes: 0 };
  const damaged = (why: string): CorruptionError => new CorruptionError(`Virtual table "${name}": ${why}`, { objects: [], collections: [name] });
  db.exec('BEGIN');
  try {
    for await (const decoded of decodedChunks(v.item.data(), signal, (err) => damaged(err.message), counted)) {
      for (const row of decoded) {
        const k = row[0];
        const target = typeof k === 'bigint' && k >= 0n && k < BigInt(inserts.length) ? inserts[Number(k)] : undefined;
        if (target === undefined || row.length !== target.width + 1) throw damaged(`row ${rows + 1} names no shadow table or has the wrong number of values.`);
        const values = row.slice(1);
        let text: Set<number> | undefined;
        values.forEach((x, i) => {
          if (x instanceof TextBytes) {
            (text ??= new Set()).add(i);
            values[i] = x.bytes;
          }
        });
        (text === undefined ? target.plain : db.prepare(target.sql(text))).run(values);
        rows++;
        if (rows % 256 === 0 && pacer.due()) {
          await pacer.pause();
          throwIfAborted(signal);
        }
      }
    }
    db.exec('COMMIT');
  } catch (err) {
    if (db.inTransaction) db.exec('ROLLBACK');
    throw err;
  }
  if (rows !== v.item.entry.rowCount) throw damaged(`the backup recorded ${v.item.entry.rowCount} rows but its data holds ${rows}.`);
  onProgress?.({ collection: name, rows, bytes: counted.bytes });
  return rows;
}

/**
 * The rows of a collection's stream, one array per chunk (rows-v1, RowDecoder), the stream's
 * bytes added to `counted.bytes` as they come; a stream that ends inside a row is damage too.
 * Errors: CorruptionError as `damaged` words it; the signal's reason on abort.
 */
async function* decodedChunks(
  data: AsyncIterable<Uint8Array>,
  signal: AbortSignal | undefined,
  damaged: (err: CorruptionError) => CorruptionError,
  counted: { bytes: number },
  options?: RowDecoderOptions,
): AsyncGenerator<unknown[][]> {
  const decoder = new RowDecoder(options);
  const decode = <T>(step: () => T): T => {
    try {
      return step();
    } catch (err) {
      throw err instanceof CorruptionError ? damaged(err) : err;
    }
  };
  for await (const chunk of data) {
    throwIfAborted(signal);
    counted.bytes += chunk.length;
    yield decode(() => decoder.push(chunk));
  }
  decode(() => decoder.finish());
}

/** Copies a virtual table's shadow rows from the attached staging file into the target's (just created) shadow tables. */
export function copyShadowsFromStaging(db: BetterSqlite3.Database, v: PlannedVirtual): void {
  withShadowWrites(db, () => {
    v.def.shadows.forEach((sh, k) => {
      const table = quoteIdent(v.shadowNames[k] as string);
      const cols = shadowColumns(sh).map(quoteIdent).join(', ');
      db.prepare(`DELETE FROM main.${table}`).run();
      db.prepare(`INSERT INTO main.${table} (${cols}) SELECT ${cols} FROM ${STAGING_SCHEMA}.${table}`).run();
    });
  });
}

/** Sets the table's AUTOINCREMENT counter to the backed-up value, in `schema` (main or the staging file). */
export function setSequence(db: BetterSqlite3.Database, schema: string, t: PlannedTable): void {
  if (t.def.autoincrement === null) return;
  const seq = BigInt(t.def.autoincrement);
  const exists = db
    .prepare(`SELECT count(*) FROM ${schema}.sqlite_schema WHERE type = 'table' AND name = 'sqlite_sequence'`)
    .pluck()
    .get() as bigint;
  if (exists === 0n) return; // the table was not created with AUTOINCREMENT
  const updated = db.prepare(`UPDATE ${schema}.sqlite_sequence SET seq = ? WHERE name = ?`).run(seq, t.name);
  if (updated.changes === 0) {
    db.prepare(`INSERT INTO ${schema}.sqlite_sequence (name, seq) VALUES (?, ?)`).run(t.name, seq);
  }
}

/** Rows per INSERT … SELECT of the switch, between turns of the event loop. */
const SWITCH_BATCH_ROWS = 50_000;

/**
 * Copies a table's rows from the attached staging file into the target, inside the switch's
 * transaction: a rowid table in batches of rowid ranges with a turn of the event loop between
 * them when due (one statement over 100 MB keeps the main thread for seconds), a WITHOUT ROWID
 * table in one statement.
 */
export async function copyFromStaging(db: BetterSqlite3.Database, t: PlannedTable, pacer: Pacer): Promise<void> {
  const cols = t.columns.map(quoteIdent).join(', ');
  const from = `${STAGING_SCHEMA}.${quoteIdent(t.name)}`;
  const insert = `INSERT INTO main.${quoteIdent(t.name)} (${cols}) SELECT ${cols} FROM ${from}`;
  if (t.def.withoutRowid) {
    db.exec(insert);
    return;
  }
  // Batch bounds by keyset (sparse rowids make ranges of fixed width useless). The rowid of the
  // staging table, whatever its columns are called: _rowid_ always names it in the staging file
  // unless a real column has that name, then rowid or oid.
  const names = new Set(t.def.columns.map((c) => foldName(c.name)));
  const rowid = ['_rowid_', 'rowid', 'oid'].find((n) => !names.has(n));
  if (rowid === undefined) {
    db.exec(insert);
    return;
  }
  // The last rowid of the batch starting at a rowid.
  const bound = db.prepare(`SELECT ${rowid} FROM ${from} WHERE ${rowid} >= ? ORDER BY ${rowid} LIMIT 1 OFFSET ${SWITCH_BATCH_ROWS - 1}`).pluck();
  const first = db.prepare(`SELECT min(${rowid}) FROM ${from}`).pluck().get() as bigint | null;
  if (first === null) return;
  const range = db.prepare(`${insert} WHERE ${rowid} >= ? AND ${rowid} <= ?`);
  const rest = db.prepare(`${insert} WHERE ${rowid} >= ?`);
  let lo: bigint = first;
  for (;;) {
    const hi = bound.get(lo) as bigint | undefined;
    if (hi === undefined) {
      rest.run(lo);
      return;
    }
    range.run(lo, hi);
    if (hi === 9223372036854775807n) return;
    lo = hi + 1n;
    if (pacer.due()) await pacer.pause();
  }
}
