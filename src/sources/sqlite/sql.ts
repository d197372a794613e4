/**
 * SQL text helpers for the SQLite driver: identifier quoting, the table definition
 * format recorded in manifests, and renaming objects inside the CREATE statements SQLite keeps.
 */
import { lexSql, type Lexeme } from './lexer.js';
import { foldName } from './naming.js';

export const SQLITE_KIND = 'sqlite';

export interface SqliteColumn {
  name: string;
  /** Declared type as written ("" when none). */
  type: string;
  notNull: boolean;
  defaultValue: string | null;
  /** 1-based position in the primary key, 0 when not part of it. */
  pk: number;
  /** Generated (computed) column: recreated by its CREATE TABLE, never stored in the stream. */
  generated: boolean;
}

export interface SqliteNamedSql {
  name: string;
  sql: string;
}

export interface SqliteTableDefinition {
  sql: string;
  columns: SqliteColumn[];
  indexes: SqliteNamedSql[];
  triggers: SqliteNamedSql[];
  withoutRowid: boolean;
  /**
   * For a rowid table without an INTEGER PRIMARY KEY alias: the name ("rowid", "_rowid_" or
   * "oid") under which the hidden rowid is read; it is the first value of every row in the data
   * stream so that a restore keeps rowids. null otherwise.
   */
  rowidColumn: string | null;
  /** The table's sqlite_sequence value (AUTOINCREMENT counter) as a decimal string, or null. */
  autoincrement: string | null;
}

export interface SqliteViewDefinition {
  sql: string;
  /** INSTEAD OF triggers defined on the view. */
  triggers?: SqliteNamedSql[];
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

// Moved to connection.ts; re-exported for the callers (tests) that import it from here.
export { parseSqliteUrl } from './connection.js';

// ---------------------------------------------------------------------------------------------
// SQL text is read by the one lexer (lexer.ts) the restore's definition checks use too.

type Token = Lexeme;

/** Every lexeme, whitespace and comments included: joining their texts gives `sql` back. */
function tokenize(sql: string): Token[] {
  return lexSql(sql, { trivia: true });
}

function nextSignificant(tokens: Token[], from: number): number {
  let i = from;
  while (i < tokens.length && tokens[i]?.kind === 'trivia') i++;
  return i;
}

function prevSignificant(tokens: Token[], from: number): number {
  let i = from;
  while (i >= 0 && tokens[i]?.kind === 'trivia') i--;
  return i;
}

function isKeyword(t: Token | undefined, ...words: string[]): boolean {
  return t !== undefined && t.kind === 'ident' && !t.quoted && words.includes(t.text.toUpperCase());
}

/**
 * Index of the token holding the name in "CREATE [UNIQUE|VIRTUAL] TABLE|INDEX|VIEW|TRIGGER
 * [IF NOT EXISTS] [schema.]name".
 */
function objectNameIndex(tokens: Token[]): number {
  let i = nextSignificant(tokens, 0);
  if (!isKeyword(tokens[i], 'CREATE')) throw new Error('not a CREATE statement');
  i = nextSignificant(tokens, i + 1);
  while (isKeyword(tokens[i], 'UNIQUE', 'VIRTUAL', 'TEMP', 'TEMPORARY')) i = nextSignificant(tokens, i + 1);
  if (!isKeyword(tokens[i], 'TABLE', 'INDEX', 'VIEW', 'TRIGGER')) throw new Error('unexpected CREATE statement');
  i = nextSignificant(tokens, i + 1);
  if (isKeyword(tokens[i], 'IF')) {
    i = nextSignificant(tokens, i + 1); // NOT
    i = nextSignificant(tokens, i + 1); // EXISTS
    i = nextSignificant(tokens, i + 1);
  }
  const after = nextSignificant(tokens, i + 1);
  if (tokens[after]?.text === '.') i = nextSignificant(tokens, after + 1);
  if (tokens[i]?.kind !== 'ident' && tokens[i]?.kind !== 'string') throw new Error('CREATE statement without a name');
  return i;
}

function join(tokens: Token[]): string {
  return tokens.map((t) => t.text).join('');
}

/** Replaces the created object's name (table, view, index or trigger) in a CREATE statement. */
export function renameCreatedObject(sql: string, newName: string): string {
  const tokens = tokenize(sql);
  const i = objectNameIndex(tokens);
  tokens[i] = { kind: 'ident', text: quoteIdent(newName), value: newName, quoted: true };
  return join(tokens);
}

/** Keywords after which an identifier names a table. */
const TABLE_CONTEXT = new Set(['ON', 'FROM', 'JOIN', 'INTO', 'UPDATE', 'TABLE', 'REFERENCES']);

/**
 * Rewrites references to table `oldName` as `newName` in an index or trigger statement (and the
 * created object's own name to `newObjectName` when given). A reference is an identifier equal
 * to oldName that follows ON/FROM/JOIN/INTO/UPDATE/REFERENCES or is followed by "." (a
 * qualified column). Trigger bodies that mention the table in other positions are not rewritten.
 */
export function renameTableReferences(
  sql: string,
  oldName: string,
  newName: string,
  newObjectName?: string,
): string {
  const tokens = tokenize(sql);
  const nameAt = objectNameIndex(tokens);
  const old = foldName(oldName);
  for (let i = nameAt + 1; i < tokens.length; i++) {
    const t = tokens[i] as Token;
    if (t.kind !== 'ident' || foldName(t.value) !== old) continue;
    const prev = tokens[prevSignificant(tokens, i - 1)];
    const next = tokens[nextSignificant(tokens, i + 1)];
    const prevIsDot = prev?.text === '.';
    const afterKeyword = isKeyword(prev, ...TABLE_CONTEXT);
    // schema.table after a keyword: "FROM main.t".
    let schemaQualified = false;
    if (prevIsDot) {
      const schemaAt = prevSignificant(tokens, prevSignificant(tokens, i - 1) - 1);
      schemaQualified = isKeyword(tokens[prevSignificant(tokens, schemaAt - 1)], ...TABLE_CONTEXT);
    }
    if (afterKeyword || schemaQualified || (next?.text === '.' && !prevIsDot)) {
      tokens[i] = { kind: 'ident', text: quoteIdent(newName), value: newName, quoted: true };
    }
  }
  if (newObjectName !== undefined) {
    tokens[nameAt] = { kind: 'ident', text: quoteIdent(newObjectName), value: newObjectName, quoted: true };
  }
  return join(tokens);
}

/**
 * Name for an index or trigger of a renamed table: the old table name inside it is replaced by
 * the new one ("idx_users_email" → "idx_people_email"); otherwise the new table name is
 * prefixed ("by_email" → "people_by_email"). Index and trigger names are database-wide.
 */
export function renamedObjectName(objectName: string, oldTable: string, newTable: string): string {
  // SQLite's own folding (ASCII only): "idx_Äpfel" is not an index of a table "äpfel".
  const at = foldName(objectName).indexOf(foldName(oldTable));
  if (at >= 0 && oldTable.length > 0) {
    return objectName.slice(0, at) + newTable + objectName.slice(at + oldTable.length);
  }
  return `${newTable}_${objectName}`;
}
