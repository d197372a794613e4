/**
 * `cairn export --format sql` of a SQLite backup: one script that `sqlite3 -bail new.db < file` loads
 * into a new, empty database file, with nothing of cairn installed. In the order a restore into
 * a new file follows (load.ts loadStaging):
 *
 *   PRAGMA foreign_keys = OFF; the file's encoding, page_size and auto_vacuum (before the first
 *   table, when the backup records them); BEGIN;
 *   each table: its CREATE TABLE as recorded (renamed), then one INSERT per row;
 *   each virtual table (FTS, R*Tree, …): its CREATE VIRTUAL TABLE, then its shadow tables'
 *   rows in place of the module's initial ones, as `sqlite3 .dump` restores them;
 *   the indexes, the AUTOINCREMENT counters (sqlite_sequence), the triggers, the views and
 *   their INSTEAD OF triggers; user_version, application_id and the sqlite_stat1 statistics
 *   of the exported tables; COMMIT; the WAL journal mode when the source was in it.
 *
 * Values are exact (dump.ts sqlValue): INTEGER as decimal, REAL as the shortest decimal that
 * reads back to the same double (always with "." or an exponent, so it stays REAL), TEXT as
 * UTF-8 (text whose bytes are not UTF-8, or that holds NUL, as CAST(X'…' AS TEXT), which keeps
 * its bytes), BLOB as X'…', NULL. The hidden rowid of a table without an INTEGER PRIMARY KEY is
 * written as a column, so rowids survive.
 *
 * Definitions come from the manifest, which is read as untrusted: every CREATE statement is
 * checked, as a restore checks it (plan.ts planItems, validate.ts), to be the one statement
 * creating the object it names, before anything is written. Not carried (the script says so):
 * sqlite_stat4 rows (they need SQLite built with STAT4; run ANALYZE), application collations and
 * functions (a definition that names one loads only where the application registers it).
 */
import { CorruptionError, throwIfAborted, UsageError } from '../../core/errors.js';
import type { CollectionEntry } from '../../core/schemas.js';
import type { SqlScriptContext } from '../driver.js';
import { OutputBuffer } from '../dump.js';
import { RowDecoder } from '../row-codec.js';
import type { RestoreItem } from '../types.js';
import { appCollations, knownFunctions, unknownFunctions } from './app-names.js';
import { missingTriggerTargets } from './conflicts.js';
import { databaseOf, planItems, statNames, type Planned, type PlannedTable, type PlannedVirtual } from './plan.js';
import { readStatRows, renameIndex, type PlannedDatabase } from './database.js';
import { sqlValue } from './dump.js';
import { foldName } from './naming.js';
import { quoteIdent } from './sql.js';
import { shadowColumns, VIRTUAL_KIND } from './virtual.js';

/**
 * The script's bytes (see the module comment). Errors, before the first byte: CorruptionError /
 * SourceError for a definition a restore would refuse; while streaming: CorruptionError for
 * damaged data or a row count that differs from the manifest's, the signal's reason on abort.
 */
export async function* sqliteSqlScript(context: SqlScriptContext): AsyncGenerator<Buffer> {
  const { signal } = context;
  const items: RestoreItem[] = context.entries.map(({ entry, targetName }) => ({ entry, targetName, data: () => context.read(entry) }));
  // Checks every definition (as recorded and as renamed) and gives the renamed SQL.
  const plan = planItems(items);
  // What a restore into a new file refuses: triggers (and external-content FTS tables) that
  // need a table the selection leaves out would fail on every change once loaded.
  const problems = missingTriggerTargets(plan, new Set(), true);
  if (problems.length > 0) throw new UsageError(`Cannot export this selection as SQL: ${problems.join(' ')}`);
  const database = databaseOf(items);
  const out = new OutputBuffer();
  out.add(header(context, plan));
  if (database !== undefined) {
    // Settable only while the file is empty: before the first table.
    const { def } = database;
    if (def.encoding !== 'UTF-8') out.add(`PRAGMA encoding = '${def.encoding}';\n`);
    out.add(`PRAGMA page_size = ${def.pageSize};\nPRAGMA auto_vacuum = ${def.autoVacuum};\n`);
  }
  out.add('PRAGMA foreign_keys = OFF;\nBEGIN TRANSACTION;\n');
  const tables = plan.filter((p): p is PlannedTable => p.kind === 'table');
  for (const t of tables) {
    throwIfAborted(signal);
    out.add(`\n-- Table ${comment(t.name)}\n`);
    out.add(statement(t.createSql));
    yield* tableRows(t, out, signal);
  }
  for (const v of plan) {
    if (v.kind !== VIRTUAL_KIND) continue;
    throwIfAborted(signal);
    out.add(`\n-- Virtual table ${comment(v.name)}: created, then its shadow tables hold the backup's rows\n`);
    out.add(statement(v.createSql));
    yield* shadowRows(v, out, signal);
  }
  out.add('\n-- Indexes, AUTOINCREMENT counters, triggers, views\n');
  for (const t of tables) for (const idx of t.indexes) out.add(statement(idx.sql));
  for (const t of tables) out.add(autoincrement(t));
  for (const t of tables) for (const tr of t.triggers) out.add(statement(tr.sql));
  for (const v of plan) if (v.kind === 'view') out.add(statement(v.createSql));
  for (const v of plan) if (v.kind === 'view') for (const tr of v.triggers) out.add(statement(tr.sql));
  if (database !== undefined) out.add(await databaseProperties(database, plan, context.onWarning));
  out.add('COMMIT;\n');
  if (database?.def.journalMode === 'wal') out.add('PRAGMA journal_mode = WAL;\n');
  const rest = out.take(true);
  if (rest) yield rest;
}

/** The script's opening comment: what it is, how to load it, what it does not carry. */
function header(context: SqlScriptContext, plan: Planned[]): string {
  const { manifest } = context;
  const lines = [
    `-- cairn plain-SQL export of backup ${manifest.id} (SQLite, taken ${manifest.createdAt} from ${manifest.source.location}).`,
    '-- Load it into a new, empty database file:  sqlite3 -bail new.db < this-file.sql',
    '-- One transaction: with -bail a failed load leaves no half-loaded tables behind (without it, sqlite3 goes on after an error and commits the rest).',
  ];
  const partial = context.entries.length !== manifest.collections.length || context.entries.some((e) => e.targetName !== e.entry.name);
  if (partial) lines.push('-- Part of the backup (--include / --exclude / --rename).');
  const collations = new Set<string>();
  const functions = new Set<string>();
  const known = knownFunctions();
  for (const p of plan) {
    for (const sql of definitionsOf(p)) {
      for (const c of appCollations(sql)) collations.add(c);
      if (p.kind !== VIRTUAL_KIND) for (const f of unknownFunctions(sql, known)) functions.add(f);
    }
  }
  if (collations.size > 0 || functions.size > 0) {
    const names = [...[...collations].map((c) => `collation ${c}`), ...[...functions].map((f) => `function ${f}()`)];
    const warning = `definitions name what the application registers, not SQLite (${names.join(', ')}): load this script where they are registered (the sqlite3 shell does not have them).`;
    context.onWarning?.(warning);
    lines.push(`-- Warning: ${comment(warning)}`);
  }
  return `${lines.join('\n')}\n\n`;
}

function definitionsOf(p: Planned): string[] {
  const own = [p.createSql, ...p.triggers.map((t) => t.sql)];
  return p.kind === 'table' ? [...own, ...p.indexes.map((i) => i.sql)] : own;
}

/**
 * A definition as a statement of its own: `;` on a line of its own when the SQL ends in a line
 * comment (which would swallow it). validate.ts made sure it is one statement.
 */
function statement(sql: string): string {
  const lastLine = sql.slice(sql.lastIndexOf('\n') + 1);
  return lastLine.includes('--') ? `${sql}\n;\n` : `${sql};\n`;
}

/**
 * One value as a SQLite literal (dump.ts sqlValue), except a REAL that is not a whole number
 * below 2^53: SQLite before 3.43 does not always read a decimal back to the nearest double
 * (about 1 in 300 random doubles came back one unit off with sqlite3 3.40), so such a value is
 * written as its exact binary form, `CAST(M AS REAL) * 2^E` with M an odd integer below 2^53
 * and 2^E as a product or quotient of integer powers of two, each step exact in any version.
 */
export function scriptValue(v: unknown): string {
  if (typeof v !== 'number' || !Number.isFinite(v) || v === 0 || (Number.isInteger(v) && Math.abs(v) < 2 ** 53)) return sqlValue(v);
  return exactReal(v);
}

const TWO_62 = 2n ** 62n;

/** `v` (finite, non-zero) as M × 2^E written out (see scriptValue). */
export function exactReal(v: number): string {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, v);
  const bits = view.getBigUint64(0);
  const negative = bits >> 63n === 1n;
  const biased = Number((bits >> 52n) & 0x7ffn);
  const fraction = bits & ((1n << 52n) - 1n);
  let mantissa = biased === 0 ? fraction : fraction | (1n << 52n);
  let exponent = (biased === 0 ? 1 : biased) - 1075;
  while ((mantissa & 1n) === 0n) {
    mantissa >>= 1n;
    exponent++;
  }
  let sql = `CAST(${negative ? '-' : ''}${mantissa} AS REAL)`;
  // Each step multiplies or divides by at most 2^62 (an exact 64-bit integer literal); every
  // intermediate value lies between the first and the result, so none rounds.
  const op = exponent >= 0 ? ' * ' : ' / ';
  for (let left = Math.abs(exponent); left > 0; left -= 62) sql += op + (left >= 62 ? TWO_62 : 2n ** BigInt(left)).toString();
  return sql;
}

/** A name inside a `--` comment: on one line. */
function comment(text: string): string {
  return text.replace(/[\r\n]+/g, ' ');
}

/**
 * One INSERT per row of a table, yielded as the output buffer fills. Errors: CorruptionError for
 * data that does not decode, a row with the wrong number of values, a count that differs from
 * the manifest's.
 */
async function* tableRows(t: PlannedTable, out: OutputBuffer, signal: AbortSignal | undefined): AsyncGenerator<Buffer> {
  const prefix = `INSERT INTO ${quoteIdent(t.name)} (${t.columns.map(quoteIdent).join(', ')}) VALUES (`;
  let rows = 0;
  for await (const decoded of decodedRows(t.item, signal)) {
    for (const values of decoded) {
      if (values.length !== t.columns.length) {
        throw damaged(t.item.entry, `row ${rows + 1} has ${values.length} values, expected ${t.columns.length}`);
      }
      out.add(`${prefix}${values.map(scriptValue).join(', ')});\n`);
      rows++;
      // Handed out every 64 KiB, not once per chunk (a few MB): less held between two writes.
      const b = out.take();
      if (b) yield b;
    }
  }
  if (rows !== t.item.entry.rowCount) throw damaged(t.item.entry, `the backup recorded ${t.item.entry.rowCount} rows but its data holds ${rows}`);
}

/** A virtual table's shadow tables: emptied (CREATE VIRTUAL TABLE filled them), then the backup's rows. */
async function* shadowRows(v: PlannedVirtual, out: OutputBuffer, signal: AbortSignal | undefined): AsyncGenerator<Buffer> {
  const targets = v.def.shadows.map((sh, k) => {
    const cols = shadowColumns(sh);
    const table = quoteIdent(v.shadowNames[k] as string);
    out.add(`DELETE FROM ${table};\n`);
    return { width: cols.length, prefix: `INSERT INTO ${table} (${cols.map(quoteIdent).join(', ')}) VALUES (` };
  });
  let rows = 0;
  for await (const decoded of decodedRows(v.item, signal)) {
    for (const row of decoded) {
      const k = row[0];
      const target = typeof k === 'bigint' && k >= 0n && k < BigInt(targets.length) ? targets[Number(k)] : undefined;
      if (target === undefined || row.length !== target.width + 1) throw damaged(v.item.entry, `row ${rows + 1} names no shadow table or has the wrong number of values`);
      out.add(`${target.prefix}${row.slice(1).map(scriptValue).join(', ')});\n`);
      rows++;
      const b = out.take();
      if (b) yield b;
    }
  }
  if (rows !== v.item.entry.rowCount) throw damaged(v.item.entry, `the backup recorded ${v.item.entry.rowCount} rows but its data holds ${rows}`);
}

/** The rows of an item's stream, one array per chunk (rows-v1); a stream that ends inside a row is damage. */
async function* decodedRows(item: RestoreItem, signal: AbortSignal | undefined): AsyncGenerator<unknown[][]> {
  const decoder = new RowDecoder();
  try {
    for await (const chunk of item.data()) {
      throwIfAborted(signal);
      yield decoder.push(chunk);
    }
    decoder.finish();
  } catch (err) {
    if (err instanceof CorruptionError && err.collections.length === 0) throw damaged(item.entry, err.message, err.objects);
    throw err;
  }
}

function damaged(entry: CollectionEntry, why: string, objects: string[] = []): CorruptionError {
  return new CorruptionError(`Cannot export "${entry.name}": ${why.replace(/\.$/, '')}. Run cairn verify --read-data on the backup, or leave it out with --exclude.`, {
    objects,
    collections: [entry.name],
  });
}

/**
 * The table's AUTOINCREMENT counter as backed up (the INSERTs moved it to the largest rowid
 * only). sqlite_sequence exists once a table declared AUTOINCREMENT is created; a counter
 * recorded for a table whose SQL does not declare it is left out.
 */
function autoincrement(t: PlannedTable): string {
  if (t.def.autoincrement === null || !/\bAUTOINCREMENT\b/i.test(t.createSql)) return '';
  const name = sqlValue(t.name);
  const seq = BigInt(t.def.autoincrement).toString();
  return (
    `UPDATE sqlite_sequence SET seq = ${seq} WHERE name = ${name};\n` +
    `INSERT INTO sqlite_sequence (name, seq) SELECT ${name}, ${seq} WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = ${name});\n`
  );
}

/**
 * user_version, application_id and the sqlite_stat1 rows of the exported tables (renamed as
 * they are), as a restore into a new file applies them (database.ts applyDatabase).
 */
async function databaseProperties(database: PlannedDatabase, plan: Planned[], onWarning?: (message: string) => void): Promise<string> {
  const { def } = database;
  let sql = `\n-- Database properties\nPRAGMA user_version = ${def.userVersion};\nPRAGMA application_id = ${def.applicationId};\n`;
  const names = statNames(plan);
  const stats = (await readStatRows(database)).filter((r) => typeof r.values[0] === 'string' && names.tables.has(foldName(r.values[0])));
  const stat1 = stats.filter((r) => r.stat === 'sqlite_stat1');
  if (stat1.length > 0) {
    // ANALYZE of sqlite_schema (which has no index) creates the statistics tables and adds no rows, as sqlite3's .dump does.
    sql += 'ANALYZE sqlite_schema;\n';
    for (const r of stat1) {
      const table = names.tables.get(foldName(r.values[0] as string)) as string;
      const idx = renameIndex(r.values[1], r.values[0] as string, table, names);
      sql += `INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES (${[table, idx, r.values[2]].map(scriptValue).join(', ')});\n`;
    }
  }
  if (stats.length > stat1.length) {
    const warning = 'sqlite_stat4 statistics are left out of this script (they need SQLite built with STAT4): run ANALYZE after loading.';
    onWarning?.(warning);
    sql += `-- Warning: ${warning}\n`;
  }
  return sql;
}
