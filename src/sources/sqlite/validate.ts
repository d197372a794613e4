/**
 * SQLite definitions read back from a manifest are hostile data, never code to trust: a restore
 * runs a definition only after it is shown to be exactly one CREATE statement of the expected
 * kind, naming the expected object (and, for an index or trigger, on the expected table), in
 * the main schema. Three layers, each enough against the attacks of issue 12 on its own:
 *
 * 1. checkDefinition (before anything is created, for every definition of the restore): a
 *    strict lexer with SQLite's own rules (whitespace is only space, tab, LF, FF and CR — a
 *    no-break space belongs to an identifier, as in SQLite) reads the statement's head:
 *    `CREATE [UNIQUE] TABLE|INDEX|VIEW|TRIGGER [main.]name …`, what follows the name (a column
 *    list for a table, never `AS SELECT`; `ON <table>` for an index or trigger), and refuses
 *    TEMP, VIRTUAL, IF NOT EXISTS (SQLite never records them), other schemas, NUL characters,
 *    unterminated strings/identifiers/comments and anything after the statement but
 *    whitespace and comments (no `;` followed by another statement: ATTACH, VACUUM INTO and
 *    PRAGMA are statements of their own and cannot hide inside one CREATE), and any call of
 *    load_extension().
 * 2. runDefinition: the statement is run with prepare().run(), which refuses a string holding
 *    more than one statement (exec() would run them all), on connections with
 *    `PRAGMA trusted_schema = OFF` (functions with side effects, such as load_extension(), are
 *    refused inside schema objects).
 * 3. runDefinition then checks what SQLite itself recorded: exactly one new object in
 *    main.sqlite_schema of the expected type, name and table (plus the automatic indexes of a
 *    table's UNIQUE / PRIMARY KEY constraints and sqlite_sequence), nothing in the temp schema. Every check runs inside the restore's staging file or its switch
 *    transaction, so a refusal leaves the target as it was.
 *
 * better-sqlite3 has no authorizer API (sqlite3_set_authorizer is not exposed), so the checks
 * above stand in for one: no ATTACH, VACUUM, PRAGMA or DML statement from a manifest ever
 * reaches SQLite. A trigger's body may write to other tables (that is what the user's trigger
 * does); it must be ON the expected table, and triggers are created after the data is loaded,
 * so none fires during the restore.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { CorruptionError } from '../../core/errors.js';
import { foldName } from './naming.js';
import { DefinitionError, lexSql, type Lexeme } from './lexer.js';

export { DefinitionError } from './lexer.js';

export type DefinitionKind = 'table' | 'index' | 'view' | 'trigger';

export interface ExpectedObject {
  kind: DefinitionKind;
  /** The object the statement must create. */
  name: string;
  /** For an index or trigger: the table (or view, for INSTEAD OF triggers) it must be on. */
  table?: string;
}

/** Longest definition accepted (a CREATE TABLE of 2,000 columns is far below this). */
export const MAX_DEFINITION_LENGTH = 4 * 1024 * 1024;
/** Longest object name accepted. */
export const MAX_NAME_LENGTH = 4096;

/** Characters of hostile input quoted in an error. */
const QUOTE_PREFIX = 60;

/** A short, printable prefix of hostile input for an error message. */
export function preview(text: string): string {
  const chars = [...text];
  // eslint-disable-next-line no-control-regex
  const shown = chars.slice(0, QUOTE_PREFIX).join('').replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return chars.length > QUOTE_PREFIX ? `${shown}…` : shown;
}

function isWord(t: Lexeme | undefined, ...words: string[]): boolean {
  return t !== undefined && t.kind === 'ident' && !t.quoted && words.includes(t.value.toUpperCase());
}

/** An identifier as SQLite accepts it in a name position (a string literal too, as SQLite does). */
function isName(t: Lexeme | undefined): t is Lexeme {
  return t !== undefined && (t.kind === 'ident' || t.kind === 'string');
}

const KIND_WORD: Record<DefinitionKind, string> = { table: 'TABLE', index: 'INDEX', view: 'VIEW', trigger: 'TRIGGER' };

/**
 * Checks that `sql` is one CREATE statement of the expected kind naming the expected object
 * (see the module comment). Throws DefinitionError with a sentence saying what is wrong.
 */
export function checkDefinitionSql(sql: unknown, expected: ExpectedObject): void {
  if (typeof sql !== 'string' || sql.length === 0) throw new DefinitionError('it is empty');
  if (sql.length > MAX_DEFINITION_LENGTH) throw new DefinitionError(`it is longer than ${MAX_DEFINITION_LENGTH} characters`);
  if (sql.includes('\u0000')) throw new DefinitionError('it contains a NUL character');
  const t = lexSql(sql);
  let i = 0;
  const want = KIND_WORD[expected.kind];
  if (!isWord(t[i], 'CREATE')) throw new DefinitionError(`it is not a CREATE ${want} statement`);
  i++;
  if (isWord(t[i], 'TEMP', 'TEMPORARY')) throw new DefinitionError('it creates a TEMP object');
  if (isWord(t[i], 'VIRTUAL')) throw new DefinitionError('it creates a virtual table (cairn never backs one up)');
  if (expected.kind === 'index' && isWord(t[i], 'UNIQUE')) i++;
  if (!isWord(t[i], want)) throw new DefinitionError(`it is not a CREATE ${want} statement`);
  i++;
  if (isWord(t[i], 'IF')) throw new DefinitionError('it has IF NOT EXISTS (SQLite never records one)');
  // [main.]name
  if (isName(t[i]) && t[i + 1]?.text === '.') {
    if (foldName((t[i] as Lexeme).value) !== 'main') throw new DefinitionError(`it names the schema "${preview((t[i] as Lexeme).value)}" (only main is allowed)`);
    i += 2;
  }
  const nameTok = t[i];
  if (!isName(nameTok)) throw new DefinitionError('it names no object');
  if (foldName(nameTok.value) !== foldName(expected.name)) {
    throw new DefinitionError(`it creates "${preview(nameTok.value)}", not "${preview(expected.name)}"`);
  }
  i++;
  switch (expected.kind) {
    case 'table':
      if (t[i]?.text !== '(') throw new DefinitionError('it is not a CREATE TABLE with a column list (CREATE TABLE … AS SELECT is refused)');
      break;
    case 'view':
      if (t[i]?.text !== '(' && !isWord(t[i], 'AS')) throw new DefinitionError('it is not a CREATE VIEW … AS statement');
      break;
    case 'index': {
      if (!isWord(t[i], 'ON')) throw new DefinitionError('it has no ON <table>');
      i++;
      i = expectTable(t, i, expected);
      if (t[i]?.text !== '(') throw new DefinitionError('it has no column list after ON <table>');
      break;
    }
    case 'trigger': {
      if (isWord(t[i], 'BEFORE', 'AFTER')) i++;
      else if (isWord(t[i], 'INSTEAD')) {
        if (!isWord(t[i + 1], 'OF')) throw new DefinitionError('it has INSTEAD without OF');
        i += 2;
      }
      if (isWord(t[i], 'DELETE', 'INSERT')) i++;
      else if (isWord(t[i], 'UPDATE')) {
        i++;
        if (isWord(t[i], 'OF')) {
          i++;
          for (;;) {
            if (!isName(t[i])) throw new DefinitionError('it has a malformed UPDATE OF column list');
            i++;
            if (t[i]?.text !== ',') break;
            i++;
          }
        }
      } else throw new DefinitionError('it has no DELETE, INSERT or UPDATE event');
      if (!isWord(t[i], 'ON')) throw new DefinitionError('it has no ON <table>');
      i++;
      if (isName(t[i]) && t[i + 1]?.text === '.') {
        if (foldName((t[i] as Lexeme).value) !== 'main') throw new DefinitionError(`it is on a table of the schema "${preview((t[i] as Lexeme).value)}"`);
        i += 2;
      }
      i = expectTable(t, i, expected);
      break;
    }
  }
  // No extension loading from a definition, whatever the connection allows.
  if (t.some((x, k) => isWord(x, 'LOAD_EXTENSION') && t[k + 1]?.text === '(')) throw new DefinitionError('it calls load_extension()');
  // Exactly one statement: a ";" may only end it (prepare() refuses a second one too).
  if (expected.kind !== 'trigger') {
    const semicolon = t.findIndex((x) => x.text === ';');
    if (semicolon >= 0 && semicolon !== t.length - 1) throw new DefinitionError('it holds more than one statement');
    return;
  }
  // A trigger: [FOR EACH ROW] [WHEN expr] BEGIN stmt; … END [;]. Every body statement starts
  // with a DML word after BEGIN or a ";"; END only closes the body, as the last word.
  const begin = t.findIndex((x, k) => k >= i && isWord(x, 'BEGIN'));
  if (begin < 0) throw new DefinitionError('it has no BEGIN … END body');
  let last = t.length - 1;
  if (t[last]?.text === ';') last--;
  if (!isWord(t[last], 'END') || t[last - 1]?.text !== ';') throw new DefinitionError('it does not end with "…; END" (something follows the trigger body)');
  for (let k = begin; k < last; k++) {
    if (k !== begin && t[k]?.text !== ';') continue;
    const next = t[k + 1];
    if (k + 1 === last) continue;
    if (!isWord(next, ...BODY_STARTS)) {
      throw new DefinitionError(`its body holds a statement that is not INSERT, UPDATE, DELETE or SELECT ("${preview(next?.text ?? '')}")`);
    }
  }
  if (last === begin + 1) throw new DefinitionError('its body is empty');
}

/** Words a statement of a trigger body starts with. */
const BODY_STARTS = ['INSERT', 'UPDATE', 'DELETE', 'SELECT', 'WITH', 'REPLACE', 'VALUES'];

function expectTable(t: Lexeme[], i: number, expected: ExpectedObject): number {
  const tok = t[i];
  if (!isName(tok)) throw new DefinitionError('it names no table after ON');
  const table = expected.table ?? '';
  if (foldName(tok.value) !== foldName(table)) {
    throw new DefinitionError(`it is on "${preview(tok.value)}", not on "${preview(table)}"`);
  }
  return i + 1;
}

/** Checks a definition, turning a refusal into the CorruptionError a restore reports. */
export function checkDefinition(sql: unknown, expected: ExpectedObject, collection: string): void {
  try {
    checkDefinitionSql(sql, expected);
  } catch (err) {
    if (!(err instanceof DefinitionError)) throw err;
    throw refused(expected, collection, err.message, typeof sql === 'string' ? sql : '');
  }
}

function refused(expected: ExpectedObject, collection: string, why: string, sql: string): CorruptionError {
  const what = expected.kind === 'table' || expected.kind === 'view' ? `the definition of ${expected.kind} "${preview(collection)}"` : `the ${expected.kind} "${preview(expected.name)}" of "${preview(collection)}"`;
  return new CorruptionError(
    `Refusing to restore: ${what} in the backup's manifest is not one CREATE ${KIND_WORD[expected.kind]} statement of the expected object: ${why}${sql ? ` (it starts "${preview(sql)}")` : ''}. The manifest was altered or damaged; nothing was changed. Restore another backup, or --exclude "${preview(collection)}".`,
    { objects: [], collections: [collection] },
  );
}

interface SchemaRow {
  rowid: bigint | number;
  type: string;
  name: string;
  tbl_name: string;
}

/**
 * Runs a checked definition on `db` (one statement: prepare() refuses more) and checks what
 * SQLite recorded: one new object of the expected type, name and table in main (plus a
 * table's automatic indexes and sqlite_sequence), nothing in temp.
 */
export function runDefinition(db: BetterSqlite3.Database, sql: string, expected: ExpectedObject, collection: string): void {
  checkDefinition(sql, expected, collection);
  // (A single CREATE statement cannot remove an object, so only additions are looked for.)
  const count = (schema: 'temp'): bigint => BigInt(db.prepare(`SELECT count(*) FROM ${schema}.sqlite_schema`).pluck().safeIntegers(true).get() as bigint);
  const tempBefore = count('temp');
  const maxBefore = BigInt(db.prepare('SELECT coalesce(max(rowid), 0) FROM main.sqlite_schema').pluck().safeIntegers(true).get() as bigint);
  // SQLite refusing a checked definition (a syntax error, an unsafe function, a name taken) is
  // the manifest's fault too; a busy or full database is not.
  const sqliteRefused = (err: unknown): boolean => (err as { code?: unknown }).code === 'SQLITE_ERROR';
  let stmt: BetterSqlite3.Statement;
  try {
    stmt = db.prepare(sql);
  } catch (err) {
    if (err instanceof RangeError) throw refused(expected, collection, 'it holds more than one statement', sql);
    if (sqliteRefused(err)) throw refused(expected, collection, `SQLite refused it: ${preview((err as Error).message)}`, sql);
    throw err;
  }
  if (stmt.reader) throw refused(expected, collection, 'it returns rows', sql);
  try {
    stmt.run();
  } catch (err) {
    if (sqliteRefused(err)) throw refused(expected, collection, `SQLite refused it: ${preview((err as Error).message)}`, sql);
    throw err;
  }
  const added = db
    .prepare('SELECT rowid, type, name, tbl_name FROM main.sqlite_schema WHERE rowid > ? ORDER BY rowid')
    .safeIntegers(true)
    .all(maxBefore) as SchemaRow[];
  const problems: string[] = [];
  if (count('temp') !== tempBefore) problems.push('it created an object in the temp schema');
  const table = foldName(expected.kind === 'table' || expected.kind === 'view' ? expected.name : (expected.table ?? ''));
  const main = added.filter((r) => r.type === expected.kind && foldName(r.name) === foldName(expected.name) && foldName(r.tbl_name) === table);
  const extra = added.filter((r) => {
    if (main.includes(r)) return false;
    if (expected.kind !== 'table') return true;
    if (r.type === 'table' && r.name === 'sqlite_sequence') return false;
    return !(r.type === 'index' && r.name.startsWith('sqlite_autoindex_') && foldName(r.tbl_name) === table);
  });
  if (main.length !== 1) problems.push(`SQLite did not record exactly one ${expected.kind} "${preview(expected.name)}"${expected.table !== undefined ? ` on "${preview(expected.table)}"` : ''}`);
  if (extra.length > 0) problems.push(`it also created ${extra.map((r) => `${r.type} "${preview(r.name)}"`).join(', ')}`);
  if (problems.length > 0) throw refused(expected, collection, problems.join('; '), sql);
}
