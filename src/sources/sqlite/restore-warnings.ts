/**
 * What a SQLite restore did differently from a plain load, as RestoreResult.warnings (printed
 * by the CLI as `cairn: warning:` lines, carried by --json and the API):
 * - each application collation or function the restored definitions name (app-names.ts): the
 *   objects created with its stand-in (BINARY, char()), the tables whose rows were loaded
 *   without evaluating CHECK constraints that call it, and the indexes built in the stand-in's
 *   order, each with the REINDEX the application must run once it has registered the name;
 * - database properties of the backup that an existing target keeps its own of (database.ts:
 *   encoding, page size, auto_vacuum, journal mode);
 * - text that was not valid UTF-8, converted for a UTF-16 file (load.ts counts it).
 */
import type BetterSqlite3 from 'better-sqlite3';
import Database from './driver.js';
import { quoteIdent } from './sql.js';
import { appCollations, appNameRewrites, unknownFunctions } from './app-names.js';
import type { Planned } from './plan.js';
import type { DatabaseDefinition } from './database.js';

const BUILT_IN_COLLATIONS = new Set(['binary', 'nocase', 'rtrim']);

interface Use {
  name: string;
  objects: string[];
  indexes: string[];
  unchecked: string[];
}

function use(map: Map<string, Use>, name: string): Use {
  const key = name.toLowerCase();
  let u = map.get(key);
  if (u === undefined) {
    u = { name, objects: [], indexes: [], unchecked: [] };
    map.set(key, u);
  }
  return u;
}

function addOnce(list: string[], v: string): void {
  if (!list.includes(v)) list.push(v);
}

function reindexAdvice(indexes: string[], what: string): string {
  if (indexes.length === 0) return 'no index depends on it, so nothing needs rebuilding';
  return `${indexes.length === 1 ? 'the index' : 'the indexes'} ${indexes.join(', ')} ${indexes.length === 1 ? 'was' : 'were'} built with ${what}: run ${indexes.map((i) => `REINDEX ${i}`).join('; ')} once the application has registered it`;
}

/**
 * The stand-in warnings of a restore, read from the restored file (`file`, closed): its
 * definitions are the ones written back, so PRAGMA index_xinfo names each index
 * column's collation (a table column's COLLATE included, UNIQUE and PRIMARY KEY indexes too).
 */
export function standInWarnings(file: string, plan: Planned[], known: Set<string>): string[] {
  const rewrites = appNameRewrites(plan, known);
  if (rewrites.length === 0) return [];
  const collations = new Map<string, Use>();
  const functions = new Map<string, Use>();
  for (const r of rewrites) {
    const label = `${r.type} ${quoteIdent(r.name)}`;
    for (const c of appCollations(r.sql)) addOnce(use(collations, c).objects, label);
    for (const f of unknownFunctions(r.sql, known)) {
      const u = use(functions, f);
      addOnce(u.objects, label);
      // Whichever of CHECK, DEFAULT or generated column calls it: a table's CHECKs were off during the load.
      if (r.type === 'table') addOnce(u.unchecked, quoteIdent(r.name));
    }
  }
  // Functions each table's definition calls (a generated column's among them).
  const tableFunctions = new Map<string, string[]>();
  for (const r of rewrites) if (r.type === 'table') tableFunctions.set(r.name, unknownFunctions(r.sql, known));
  const db: BetterSqlite3.Database = new Database(file, { readonly: true, fileMustExist: true });
  try {
    for (const p of plan) {
      if (p.kind !== 'table') continue;
      const list = db.prepare('SELECT name FROM pragma_index_list(?)').pluck().all(p.name) as string[];
      // An index on a generated column holds what the column's expression computed: with a
      // stand-in, when that expression calls an application function.
      const fns = tableFunctions.get(p.name) ?? [];
      const generated = new Set(fns.length === 0 ? [] : (db.prepare('SELECT name FROM pragma_table_xinfo(?) WHERE hidden IN (2, 3)').pluck().all(p.name) as string[]));
      for (const idx of list) {
        const label = quoteIdent(idx);
        if (generated.size > 0) {
          const keyCols = db.prepare('SELECT name FROM pragma_index_xinfo(?) WHERE key = 1').pluck().all(idx) as (string | null)[];
          if (keyCols.some((c) => c !== null && generated.has(c))) for (const f of fns) addOnce(use(functions, f).indexes, label);
        }
        const cols = db.prepare('SELECT coll FROM pragma_index_xinfo(?) WHERE key = 1').pluck().all(idx) as (string | null)[];
        for (const c of cols) if (c !== null && !BUILT_IN_COLLATIONS.has(c.toLowerCase())) addOnce(use(collations, c).indexes, label);
        const sql = db.prepare("SELECT sql FROM main.sqlite_schema WHERE type = 'index' AND name = ?").pluck().get(idx) as string | null | undefined;
        if (typeof sql === 'string') for (const f of unknownFunctions(sql, known)) addOnce(use(functions, f).indexes, label);
      }
    }
  } finally {
    db.close();
  }
  const out: string[] = [];
  for (const u of collations.values()) {
    out.push(
      `collation ${u.name} is registered by the application, not by SQLite: ${u.objects.join(', ') || 'no definition'} ${u.objects.length === 1 ? 'was' : 'were'} created with BINARY in its place, then given ${u.objects.length === 1 ? 'its definition' : 'their definitions'} back as written; ${reindexAdvice(u.indexes, 'BINARY order')}`,
    );
  }
  for (const u of functions.values()) {
    out.push(
      `function ${u.name}() is registered by the application, not by SQLite: ${u.objects.join(', ')} ${u.objects.length === 1 ? 'was' : 'were'} created with a stand-in of SQLite's own in its place, then given ${u.objects.length === 1 ? 'its definition' : 'their definitions'} back as written` +
        (u.unchecked.length > 0 ? `; the rows of ${u.unchecked.join(', ')} were loaded without evaluating CHECK constraints (they held in the source)` : '') +
        `; ${reindexAdvice(u.indexes, "the stand-in's values")}`,
    );
  }
  return out;
}

/** The properties of an existing target file that the restore leaves as they are. */
export interface FileProperties {
  encoding: string;
  pageSize: number;
  autoVacuum: number;
  journalMode: 'wal' | 'rollback';
}

export function readFileProperties(db: BetterSqlite3.Database): FileProperties {
  const int = (p: string): number => Number(db.prepare(`PRAGMA main.${p}`).pluck().safeIntegers(false).get());
  const journal = String(db.prepare('PRAGMA main.journal_mode').pluck().get()).toLowerCase();
  return {
    encoding: String(db.pragma('main.encoding', { simple: true })),
    pageSize: int('page_size'),
    autoVacuum: int('auto_vacuum'),
    journalMode: journal === 'wal' ? 'wal' : 'rollback',
  };
}

const AUTO_VACUUM = ['none', 'full', 'incremental'];

/**
 * One warning per property the backup recorded (database.ts) that an existing target keeps its
 * own of: SQLite sets encoding, page size and auto_vacuum only in a new file, and cairn does not
 * change the journal mode of a file other programs use.
 */
export function propertyWarnings(file: string, def: DatabaseDefinition, have: FileProperties): string[] {
  const out: string[] = [];
  const kept = (what: string, backup: string, target: string, fix: string): void => {
    out.push(`${file} keeps its ${what} ${target}, not the backup's ${backup}: properties of an existing file are not changed by a restore (${fix}, or restore into a new file)`);
  };
  if (have.encoding !== def.encoding) kept('encoding', def.encoding, have.encoding, 'the text was converted; SQLite cannot change the encoding of a file that has tables');
  if (have.pageSize !== def.pageSize) kept('page_size', String(def.pageSize), String(have.pageSize), `PRAGMA page_size = ${def.pageSize} then VACUUM changes it`);
  if (have.autoVacuum !== def.autoVacuum) {
    kept('auto_vacuum', AUTO_VACUUM[def.autoVacuum] as string, AUTO_VACUUM[have.autoVacuum] ?? String(have.autoVacuum), `PRAGMA auto_vacuum = ${AUTO_VACUUM[def.autoVacuum] as string} then VACUUM changes it`);
  }
  if (have.journalMode !== def.journalMode) {
    kept('journal mode', def.journalMode === 'wal' ? 'WAL' : 'rollback', have.journalMode === 'wal' ? 'WAL' : 'rollback', `PRAGMA journal_mode = ${def.journalMode === 'wal' ? 'WAL' : 'DELETE'} changes it`);
  }
  return out;
}

/** The warning for text values that were not valid UTF-8 and were converted into a UTF-16 file. */
export function convertedTextWarning(table: string, count: number, encoding: string): string {
  return `table ${quoteIdent(table)}: ${count} text ${count === 1 ? 'value was' : 'values were'} not valid UTF-8 and ${count === 1 ? 'was' : 'were'} converted to the file's ${encoding}: the invalid bytes became U+FFFD (a UTF-16 file cannot hold them; restore into a UTF-8 file to keep them)`;
}
