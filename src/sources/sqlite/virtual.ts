/**
 * Virtual tables of SQLite's own modules (FTS3, FTS4, FTS5, R*Tree, Geopoly): collection kind
 * `virtual_table`. Definition: `sql` (its CREATE VIRTUAL TABLE), `module`, and `shadows`, the
 * ordinary tables the module keeps its content and index in (`<name>_<suffix>`: FTS5's _data,
 * _idx, _content, _docsize, _config; R*Tree's _node, _rowid, _parent; …), each with its columns,
 * WITHOUT ROWID flag and hidden rowid name as for a table. Data (rows-v1): every shadow table's
 * rows, each led by the shadow's position in `shadows`.
 *
 * A restore creates the virtual table from its definition (which makes the module create empty
 * shadow tables), then replaces the shadow tables' rows with the backup's: the index comes back
 * exactly as it was, whatever the kind (normal, external content, contentless FTS, R*Tree), as
 * `sqlite3 .dump` does. Shadow tables are written with SQLite's defensive mode off for those
 * statements only (better-sqlite3's unsafeMode); nothing from the manifest runs meanwhile.
 * Virtual tables of other modules (application or extension modules) are not backed up, with a
 * warning; a restore refuses a trigger that writes into a table the restored database lacks.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { z } from 'zod';
import { CorruptionError } from '../../core/errors.js';
import { ROWS_V1 } from '../row-codec.js';
import { lexSql, type Lexeme } from './lexer.js';
import { foldName } from './naming.js';
import { quoteIdent } from './sql.js';
import { DefinitionError, MAX_DEFINITION_LENGTH, preview } from './validate.js';

export const VIRTUAL_KIND = 'virtual_table';

/** Modules compiled into SQLite (and better-sqlite3's build) whose tables cairn recreates. */
export const VIRTUAL_MODULES = new Set(['fts3', 'fts4', 'fts5', 'rtree', 'rtree_i32', 'geopoly']);

const ShadowSchema = z.object({
  suffix: z.string().regex(/^[A-Za-z0-9_]{1,32}$/),
  columns: z.array(z.string().min(1).max(4096)).min(1),
  withoutRowid: z.boolean(),
  rowidColumn: z.enum(['rowid', '_rowid_', 'oid']).nullable(),
});
export const VirtualDefinitionSchema = z.object({
  sql: z.string().min(1).max(MAX_DEFINITION_LENGTH),
  module: z.string(),
  shadows: z.array(ShadowSchema).max(64),
});
export type VirtualDefinition = z.infer<typeof VirtualDefinitionSchema>;
export type ShadowDefinition = z.infer<typeof ShadowSchema>;

function isWord(t: Lexeme | undefined, ...words: string[]): boolean {
  return t !== undefined && t.kind === 'ident' && !t.quoted && words.includes(t.value.toUpperCase());
}

/**
 * The module of `CREATE VIRTUAL TABLE [main.]name USING module[(args)]`, checked to be exactly
 * that one statement creating `name` (args balanced, nothing after them). Throws DefinitionError.
 */
export function virtualModule(sql: string, name: string): string {
  if (sql.includes('\u0000')) throw new DefinitionError('it contains a NUL character');
  const t = lexSql(sql);
  let i = 0;
  if (!isWord(t[i++], 'CREATE') || !isWord(t[i++], 'VIRTUAL') || !isWord(t[i++], 'TABLE')) throw new DefinitionError('it is not a CREATE VIRTUAL TABLE statement');
  if (isWord(t[i], 'IF')) throw new DefinitionError('it has IF NOT EXISTS (SQLite never records one)');
  if ((t[i]?.kind === 'ident' || t[i]?.kind === 'string') && t[i + 1]?.text === '.') {
    if (foldName((t[i] as Lexeme).value) !== 'main') throw new DefinitionError(`it names the schema "${preview((t[i] as Lexeme).value)}" (only main is allowed)`);
    i += 2;
  }
  const nameTok = t[i++];
  if (nameTok === undefined || (nameTok.kind !== 'ident' && nameTok.kind !== 'string')) throw new DefinitionError('it names no table');
  if (foldName(nameTok.value) !== foldName(name)) throw new DefinitionError(`it creates "${preview(nameTok.value)}", not "${preview(name)}"`);
  if (!isWord(t[i++], 'USING')) throw new DefinitionError('it has no USING <module>');
  const mod = t[i++];
  if (mod === undefined || mod.kind !== 'ident') throw new DefinitionError('it names no module');
  if (t[i]?.text === '(') {
    let depth = 0;
    for (; i < t.length; i++) {
      const x = t[i] as Lexeme;
      if (x.text === '(') depth++;
      else if (x.text === ')' && --depth === 0) break;
      else if (x.text === ';') throw new DefinitionError('it holds more than one statement');
    }
    if (depth !== 0) throw new DefinitionError('its module arguments are not closed');
    i++;
  }
  if (t[i]?.text === ';') i++;
  if (i !== t.length) throw new DefinitionError('something follows the statement');
  return mod.value;
}

/** The CorruptionError of a virtual table definition that is not what it claims. */
function refused(collection: string, why: string): CorruptionError {
  return new CorruptionError(
    `Refusing to restore: the definition of virtual table "${preview(collection)}" in the backup's manifest ${why}. The manifest was altered or damaged; nothing was changed. Restore another backup, or --exclude "${preview(collection)}".`,
    { objects: [], collections: [collection] },
  );
}

/** Checks a manifest definition (as recorded, and its SQL as it will run under `name`). Throws CorruptionError. */
export function checkVirtual(def: VirtualDefinition, createSql: string, name: string, collection: string): void {
  for (const [sql, n] of [
    [def.sql, collection],
    [createSql, name],
  ] as const) {
    let mod: string;
    try {
      mod = virtualModule(sql, n);
    } catch (err) {
      if (err instanceof DefinitionError) throw refused(collection, `is not one CREATE VIRTUAL TABLE statement: ${err.message}`);
      throw err;
    }
    if (!VIRTUAL_MODULES.has(foldName(mod)) || foldName(mod) !== foldName(def.module)) {
      throw refused(collection, `uses the module "${preview(mod)}" (cairn recreates only ${[...VIRTUAL_MODULES].join(', ')})`);
    }
    // FTS3/FTS4's compress= and uncompress= name SQL functions the table would call on every
    // row; a backup of SQLite's own modules needs none (an application's would be missing).
    const args = lexSql(sql);
    const fn = args.findIndex((x, k) => x.kind === 'ident' && ['compress', 'uncompress'].includes(x.value.toLowerCase()) && args[k + 1]?.text === '=');
    if (fn >= 0) throw refused(collection, `has the option ${preview((args[fn] as Lexeme).value)}=, which names a function (not restored)`);
  }
  const suffixes = new Set<string>();
  for (const s of def.shadows) {
    if (suffixes.has(foldName(s.suffix))) throw refused(collection, `names the shadow table suffix "${s.suffix}" twice`);
    suffixes.add(foldName(s.suffix));
  }
}

/** The data columns of a shadow table, as read and inserted (hidden rowid first when kept). */
export function shadowColumns(s: ShadowDefinition): string[] {
  return s.rowidColumn !== null ? [s.rowidColumn, ...s.columns] : s.columns;
}

interface SchemaRow {
  rowid: bigint;
  type: string;
  name: string;
}

/**
 * Creates the virtual table `name` from `sql` (checked by checkVirtual) and checks what SQLite
 * made: the table and its shadow tables, nothing else, with the columns the manifest records.
 * Throws CorruptionError otherwise.
 */
export function createVirtual(db: BetterSqlite3.Database, sql: string, name: string, def: VirtualDefinition, collection: string): void {
  const maxBefore = BigInt(db.prepare('SELECT coalesce(max(rowid), 0) FROM main.sqlite_schema').pluck().safeIntegers(true).get() as bigint);
  try {
    db.prepare(sql).run();
  } catch (err) {
    if ((err as { code?: unknown }).code === 'SQLITE_ERROR') throw refused(collection, `was refused by SQLite: ${preview((err as Error).message)}`);
    throw err;
  }
  const added = db.prepare('SELECT rowid, type, name FROM main.sqlite_schema WHERE rowid > ? ORDER BY rowid').safeIntegers(true).all(maxBefore) as SchemaRow[];
  const prefix = `${foldName(name)}_`;
  const stray = added.filter((r) => foldName(r.name) !== foldName(name) && !(foldName(r.name).startsWith(prefix) || r.name.startsWith('sqlite_autoindex_')));
  if (stray.length > 0 || !added.some((r) => foldName(r.name) === foldName(name))) {
    throw refused(collection, `created ${added.map((r) => `${r.type} "${preview(r.name)}"`).join(', ')}, not the virtual table and its shadow tables`);
  }
  // Only the shadow tables this statement made are written to: never a table that was there.
  const made = new Set(added.filter((r) => r.type === 'table').map((r) => foldName(r.name)));
  for (const s of def.shadows) {
    if (!made.has(foldName(`${name}_${s.suffix}`))) {
      throw refused(collection, `records a shadow table "${preview(`${name}_${s.suffix}`)}" that SQLite's ${def.module} did not create`);
    }
    const cols = (db.prepare(`PRAGMA main.table_info(${quoteIdent(`${name}_${s.suffix}`)})`).all() as { name: string }[]).map((c) => foldName(c.name));
    if (cols.length !== s.columns.length || s.columns.some((c, k) => foldName(c) !== cols[k])) {
      throw refused(collection, `records a shadow table "${preview(`${name}_${s.suffix}`)}" (${preview(s.columns.join(', '))}) that SQLite's ${def.module} does not create that way (${preview(cols.join(', ')) || 'none'})`);
    }
  }
}

/** Runs `write` with SQLite's defensive mode off, which is what lets shadow tables be written. */
export function withShadowWrites<T>(db: BetterSqlite3.Database, write: () => T): T {
  db.unsafeMode(true);
  try {
    return write();
  } finally {
    db.unsafeMode(false);
  }
}

/** The rows-v1 data format of a virtual table collection. */
export const VIRTUAL_DATA_FORMAT = ROWS_V1;

/**
 * The table an FTS4/FTS5 table with external content reads its rows from (`content='docs'`, or
 * `content=docs`), or undefined (normal or contentless: `content=''`).
 */
export function contentTable(sql: string): string | undefined {
  let t: Lexeme[];
  try {
    t = lexSql(sql);
  } catch {
    return undefined;
  }
  for (let i = 0; i + 2 < t.length; i++) {
    const x = t[i] as Lexeme;
    if (x.kind !== 'ident' || x.quoted || x.value.toLowerCase() !== 'content' || t[i + 1]?.text !== '=') continue;
    const v = t[i + 2] as Lexeme;
    if ((v.kind === 'string' || v.kind === 'ident') && v.value !== '') return v.value;
  }
  return undefined;
}
