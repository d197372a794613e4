/**
 * Database-level properties of a SQLite file, carried as one collection `sqlite_database` (kind
 * `sqlite_database`, not selectable: --include/--exclude never drop it). Its name starts with
 * `sqlite_`, which SQLite reserves, so no table or view can have it.
 *
 * Definition: `userVersion`, `applicationId` (PRAGMA user_version / application_id, which
 * applications check when they open the file), `encoding`, `pageSize`, `autoVacuum` (0 none,
 * 1 full, 2 incremental) and `journalMode` ("wal" or "rollback"). Data (rows-v1): the rows of
 * `sqlite_stat1` and `sqlite_stat4` (ANALYZE's statistics, which the query planner uses), each
 * row led by the table's name: `['sqlite_stat1', tbl, idx, stat]`,
 * `['sqlite_stat4', tbl, idx, neq, nlt, ndlt, sample]`, only for the tables backed up.
 *
 * Restore into a new file: everything (encoding, page size and auto_vacuum before the first
 * table; WAL mode once loaded). Into an existing file: the statistics of the restored tables,
 * and user_version and application_id only when the restore brings the whole backup (no
 * --include/--exclude/--rename: RestoreOptions.partial), otherwise the file keeps its own and
 * they are no conflict; the file's encoding, page size, auto_vacuum and journal
 * mode stay as they are (SQLite cannot change the first three without rebuilding the file).
 * The backup only records the collection when something differs from a new file's defaults.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { z } from 'zod';
import { CorruptionError } from '../../core/errors.js';
import type { CollectionDescriptor, RestoreItem } from '../types.js';
import { RowDecoder, ROWS_V1, TextBytes } from '../row-codec.js';
import { CATALOG_APPLICATION_ID } from './catalog-mark.js';
import { foldName } from './naming.js';

export const DATABASE_COLLECTION = 'sqlite_database';
export const DATABASE_KIND = 'sqlite_database';

/** Statistics tables carried, with their columns after `tbl`. */
const STAT_TABLES = {
  sqlite_stat1: ['tbl', 'idx', 'stat'],
  sqlite_stat4: ['tbl', 'idx', 'neq', 'nlt', 'ndlt', 'sample'],
} as const;
type StatTable = keyof typeof STAT_TABLES;

const ENCODINGS = ['UTF-8', 'UTF-16le', 'UTF-16be'] as const;

const DatabaseDefinitionSchema = z.object({
  userVersion: z.number().int().min(-(2 ** 31)).max(2 ** 31 - 1),
  applicationId: z.number().int().min(-(2 ** 31)).max(2 ** 31 - 1),
  encoding: z.enum(ENCODINGS),
  pageSize: z.number().int().refine((n) => n >= 512 && n <= 65536 && (n & (n - 1)) === 0, 'a power of two from 512 to 65536'),
  autoVacuum: z.union([z.literal(0), z.literal(1), z.literal(2)]),
  journalMode: z.enum(['wal', 'rollback']),
});
export type DatabaseDefinition = z.infer<typeof DatabaseDefinitionSchema>;

/** What a file created by SQLite (and a restore without this collection) has. */
const DEFAULTS: DatabaseDefinition = { userVersion: 0, applicationId: 0, encoding: 'UTF-8', pageSize: 4096, autoVacuum: 0, journalMode: 'rollback' };

function int(db: BetterSqlite3.Database, pragma: string): number {
  return Number(db.prepare(`PRAGMA main.${pragma}`).pluck().safeIntegers(false).get());
}

/** The statistics tables present in the main schema. */
function statTables(db: BetterSqlite3.Database): StatTable[] {
  const names = db.prepare("SELECT name FROM main.sqlite_schema WHERE type = 'table' AND name LIKE 'sqlite_stat%'").pluck().all() as string[];
  return (Object.keys(STAT_TABLES) as StatTable[]).filter((t) => names.includes(t));
}

/**
 * The database collection of a snapshot, or undefined when the file has only defaults and no
 * statistics. Pushes a warning for what is not carried (sqlite_stat2/3 of old SQLite versions).
 */
export function describeDatabase(db: BetterSqlite3.Database, warnings: string[]): CollectionDescriptor | undefined {
  const journal = String(db.prepare('PRAGMA main.journal_mode').pluck().get()).toLowerCase();
  const definition: DatabaseDefinition = {
    userVersion: int(db, 'user_version'),
    applicationId: int(db, 'application_id'),
    encoding: String(db.pragma('main.encoding', { simple: true })) as DatabaseDefinition['encoding'],
    pageSize: int(db, 'page_size'),
    autoVacuum: int(db, 'auto_vacuum') as 0 | 1 | 2,
    journalMode: journal === 'wal' ? 'wal' : 'rollback',
  };
  const legacy = db
    .prepare("SELECT name FROM main.sqlite_schema WHERE type = 'table' AND name IN ('sqlite_stat2', 'sqlite_stat3')")
    .pluck()
    .all() as string[];
  if (legacy.length > 0) warnings.push(`${legacy.join(' and ')} (statistics of SQLite before 3.8) are not backed up; run ANALYZE after a restore`);
  const hasStats = statTables(db).length > 0;
  const differs = (Object.keys(DEFAULTS) as (keyof DatabaseDefinition)[]).some((k) => definition[k] !== DEFAULTS[k]);
  if (!hasStats && !differs) return undefined;
  return { name: DATABASE_COLLECTION, kind: DATABASE_KIND, definition: { ...definition }, dataFormat: ROWS_V1, selectable: false };
}

/** The statistics rows of the tables in `tables` (by folded name), each led by its table's name. */
export function* statRows(db: BetterSqlite3.Database, tables: Set<string>): Generator<unknown[]> {
  for (const stat of statTables(db)) {
    const cols = STAT_TABLES[stat];
    const rows = db.prepare(`SELECT ${cols.join(', ')} FROM main.${stat} ORDER BY rowid`).raw(true).safeIntegers(true).all() as unknown[][];
    for (const row of rows) {
      if (typeof row[0] !== 'string' || !tables.has(foldName(row[0]))) continue;
      yield [stat, ...row];
    }
  }
}

/** The database collection as a restore applies it. */
export interface PlannedDatabase {
  item: RestoreItem;
  def: DatabaseDefinition;
}

/** Checks a `sqlite_database` item; throws CorruptionError for a definition that is not one. */
export function planDatabase(item: RestoreItem): PlannedDatabase {
  const parsed = DatabaseDefinitionSchema.safeParse(item.entry.definition);
  const bad = (why: string): CorruptionError =>
    new CorruptionError(
      `Refusing to restore: the database properties (${DATABASE_COLLECTION}) in the backup's manifest ${why}. The manifest was altered or damaged; nothing was changed. Restore another backup.`,
      { objects: [], collections: [item.entry.name] },
    );
  if (!parsed.success) throw bad(`are invalid: ${parsed.error.message}`);
  if (item.entry.name !== DATABASE_COLLECTION || item.entry.dataFormat !== ROWS_V1) throw bad('have the wrong name or data format');
  // A restored file marked as cairn's server catalog would be refused by every later backup.
  if (parsed.data.applicationId === CATALOG_APPLICATION_ID) throw bad("set the application_id of cairn's server catalog");
  return { item, def: parsed.data };
}

/** A statistics row of the backup, for the restored tables. */
export interface StatRow {
  stat: StatTable;
  values: unknown[];
}

/** Reads the collection's statistics rows; throws CorruptionError for damaged data. */
export async function readStatRows(p: PlannedDatabase): Promise<StatRow[]> {
  const decoder = new RowDecoder();
  const out: StatRow[] = [];
  const take = (rows: unknown[][]): void => {
    for (const row of rows) {
      const stat = row[0];
      if ((stat !== 'sqlite_stat1' && stat !== 'sqlite_stat4') || row.length !== STAT_TABLES[stat].length + 1) {
        throw new CorruptionError(`${DATABASE_COLLECTION}: statistics row ${out.length + 1} is not one of sqlite_stat1 or sqlite_stat4.`, {
          objects: [],
          collections: [p.item.entry.name],
        });
      }
      out.push({ stat, values: row.slice(1).map((v) => (v instanceof TextBytes ? Buffer.from(v.bytes).toString('utf8') : v)) });
    }
  };
  for await (const chunk of p.item.data()) take(decoder.push(chunk));
  decoder.finish();
  if (out.length !== p.item.entry.rowCount) {
    throw new CorruptionError(`${DATABASE_COLLECTION}: the backup recorded ${p.item.entry.rowCount} statistics rows but its data holds ${out.length}.`, {
      objects: [],
      collections: [p.item.entry.name],
    });
  }
  return out;
}

/**
 * Settings a new file can only get before its first table: run on the empty staging file.
 * `encoding`, when given, is the existing target's, which the staging file must share (SQLite
 * attaches only files of the main file's encoding).
 */
export function applyFileSettings(db: BetterSqlite3.Database, def: DatabaseDefinition | undefined, encoding?: string): void {
  const enc = encoding ?? def?.encoding;
  if (enc !== undefined && (ENCODINGS as readonly string[]).includes(enc)) db.pragma(`encoding = '${enc}'`);
  if (def === undefined) return;
  db.pragma(`page_size = ${def.pageSize}`);
  db.pragma(`auto_vacuum = ${def.autoVacuum}`);
}

/** Names of the restored tables and their indexes: backup name (folded) → name in the target. */
export interface StatNames {
  tables: Map<string, string>;
  indexes: Map<string, string>;
}

/**
 * Sets user_version and application_id (when `properties`) and loads the statistics of the
 * restored tables into `schema` (main, or the staging file), replacing what it held for those
 * tables. In a transaction of the caller's. An existing file restored in part keeps its own
 * user_version and application_id: they describe the application's whole schema (its
 * migrations), of which such a restore replaces only some tables.
 */
export function applyDatabase(db: BetterSqlite3.Database, schema: string, def: DatabaseDefinition, stats: StatRow[], names: StatNames, properties = true): void {
  if (properties) {
    db.pragma(`${schema}.user_version = ${def.userVersion}`);
    db.pragma(`${schema}.application_id = ${def.applicationId}`);
  }
  const rows = stats.filter((r) => typeof r.values[0] === 'string' && names.tables.has(foldName(r.values[0])));
  if (rows.length === 0) return;
  // ANALYZE of sqlite_schema (which has no index) creates the statistics tables, as sqlite3's
  // .dump does; it adds no rows.
  if (statTablesIn(db, schema).length < 2) db.exec(`ANALYZE ${schema}.sqlite_schema`);
  const present = statTablesIn(db, schema);
  for (const stat of present) {
    const del = db.prepare(`DELETE FROM ${schema}.${stat} WHERE tbl = ?`);
    for (const table of new Set(rows.map((r) => names.tables.get(foldName(r.values[0] as string)) as string))) del.run(table);
  }
  for (const r of rows) {
    if (!present.includes(r.stat)) continue;
    const cols = STAT_TABLES[r.stat];
    const table = names.tables.get(foldName(r.values[0] as string)) as string;
    const renamedIdx = renameIndex(r.values[1], r.values[0] as string, table, names);
    db.prepare(`INSERT INTO ${schema}.${r.stat} (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`).run([table, renamedIdx, ...r.values.slice(2)]);
  }
}

/** The name a statistics row's `idx` takes in the target (the table's own name, an index's, an automatic index's). */
export function renameIndex(idx: unknown, oldTable: string, table: string, names: StatNames): unknown {
  if (typeof idx !== 'string') return idx;
  const folded = foldName(idx);
  if (folded === foldName(oldTable)) return table;
  const renamed = names.indexes.get(folded);
  if (renamed !== undefined) return renamed;
  const auto = `sqlite_autoindex_${foldName(oldTable)}_`;
  if (folded.startsWith(auto) && /^\d+$/.test(idx.slice(auto.length))) return `sqlite_autoindex_${table}_${idx.slice(auto.length)}`;
  return idx;
}

function statTablesIn(db: BetterSqlite3.Database, schema: string): StatTable[] {
  const names = db.prepare(`SELECT name FROM ${schema}.sqlite_schema WHERE type = 'table' AND name LIKE 'sqlite_stat%'`).pluck().all() as string[];
  return (Object.keys(STAT_TABLES) as StatTable[]).filter((t) => names.includes(t));
}

/** Puts a new file into WAL mode when the source was (the staging file, once loaded). */
export function applyJournalMode(db: BetterSqlite3.Database, def: DatabaseDefinition | undefined): void {
  if (def?.journalMode === 'wal') db.pragma('journal_mode = WAL');
}

/** The conflicts the properties raise in an existing target under --on-conflict fail. */
export function databaseConflicts(db: BetterSqlite3.Database, def: DatabaseDefinition, file: string): string[] {
  const problems: string[] = [];
  for (const [pragma, wanted] of [
    ['user_version', def.userVersion],
    ['application_id', def.applicationId],
  ] as const) {
    const current = int(db, pragma);
    if (current !== 0 && current !== wanted) {
      problems.push(
        `${file} has PRAGMA ${pragma} = ${current}, and the backup's is ${wanted}. Use --on-conflict overwrite to set it to the backup's, or restore into a new file.`,
      );
    }
  }
  return problems;
}
