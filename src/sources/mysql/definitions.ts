/**
 * Rewrites of the CREATE statements a MySQL/MariaDB backup records (SHOW CREATE TABLE / VIEW /
 * SEQUENCE / TRIGGER / PROCEDURE …): the object's name (renames), the tables foreign keys name,
 * and the DEFINER clause (--no-owner). A small lexer reads the statement so that only real
 * identifiers are touched: never text inside a string literal, a comment or another name.
 */
import { ident } from './connection.js';

export interface Token {
  kind: 'id' | 'word' | 'str' | 'comment' | 'ws' | 'punct';
  start: number;
  end: number;
  /** The identifier's name (backticks removed, `` unescaped) or the word, as written. */
  text: string;
}

/** Splits MySQL SQL into tokens: `quoted` identifiers, words, 'strings' / "strings", comments, white space, punctuation. */
export function tokenize(sql: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i] as string;
    const start = i;
    if (c === '`') {
      let text = '';
      i++;
      while (i < n) {
        if (sql[i] === '`') {
          if (sql[i + 1] === '`') {
            text += '`';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        text += sql[i];
        i++;
      }
      out.push({ kind: 'id', start, end: i, text });
    } else if (c === "'" || c === '"') {
      i++;
      while (i < n) {
        if (sql[i] === '\\') {
          i += 2;
          continue;
        }
        if (sql[i] === c) {
          if (sql[i + 1] === c) {
            i += 2;
            continue;
          }
          i++;
          break;
        }
        i++;
      }
      out.push({ kind: 'str', start, end: i, text: sql.slice(start, i) });
    } else if (c === '/' && sql[i + 1] === '*') {
      const close = sql.indexOf('*/', i + 2);
      i = close < 0 ? n : close + 2;
      out.push({ kind: 'comment', start, end: i, text: sql.slice(start, i) });
    } else if (c === '#' || (c === '-' && sql[i + 1] === '-' && /\s/.test(sql[i + 2] ?? ' '))) {
      const close = sql.indexOf('\n', i);
      i = close < 0 ? n : close;
      out.push({ kind: 'comment', start, end: i, text: sql.slice(start, i) });
    } else if (/\s/.test(c)) {
      while (i < n && /\s/.test(sql[i] as string)) i++;
      out.push({ kind: 'ws', start, end: i, text: sql.slice(start, i) });
    } else if (/[A-Za-z0-9_$\u0080-\uffff]/.test(c)) {
      while (i < n && /[A-Za-z0-9_$\u0080-\uffff]/.test(sql[i] as string)) i++;
      out.push({ kind: 'word', start, end: i, text: sql.slice(start, i) });
    } else {
      i++;
      out.push({ kind: 'punct', start, end: i, text: c });
    }
  }
  return out;
}

/** The tokens that are neither white space nor comments. */
function significant(sql: string): Token[] {
  return tokenize(sql).filter((t) => t.kind !== 'ws' && t.kind !== 'comment');
}

const isWord = (t: Token | undefined, w: string): boolean => t !== undefined && t.kind === 'word' && t.text.toUpperCase() === w;
/** A name as written: `quoted` or a bare word. */
const isName = (t: Token | undefined): t is Token => t !== undefined && (t.kind === 'id' || t.kind === 'word');

interface Edit {
  start: number;
  end: number;
  text: string;
}

function apply(sql: string, edits: Edit[]): string {
  let out = sql;
  for (const e of [...edits].sort((a, b) => b.start - a.start)) out = out.slice(0, e.start) + e.text + out.slice(e.end);
  return out;
}

/** The index in `toks` of the name after the first `keyword` (e.g. TABLE, VIEW, TRIGGER), or -1. */
function nameAfter(toks: Token[], keyword: string): number {
  const k = toks.findIndex((t) => isWord(t, keyword));
  if (k < 0) return -1;
  let i = k + 1;
  // CREATE TABLE IF NOT EXISTS `t` (never in SHOW CREATE output, but harmless to skip).
  if (isWord(toks[i], 'IF') && isWord(toks[i + 1], 'NOT') && isWord(toks[i + 2], 'EXISTS')) i += 3;
  return isName(toks[i]) ? i : -1;
}

/** The edit replacing a possibly qualified name at `i` (`db`.`x` or `x`) by `name` unqualified. */
function nameEdit(toks: Token[], i: number, name: string): Edit {
  const t = toks[i] as Token;
  const dotted = toks[i + 1]?.text === '.' && isName(toks[i + 2]);
  // The name as it is: the statement stays exactly as recorded (SHOW CREATE TRIGGER keeps its author's spelling).
  if (!dotted && t.text === name) return { start: t.start, end: t.start, text: '' };
  return { start: t.start, end: dotted ? (toks[i + 2] as Token).end : t.end, text: ident(name) };
}

/**
 * A `CREATE TABLE` / `CREATE SEQUENCE` / `CREATE VIEW` statement with its object renamed to
 * `name` (unqualified). Throws when the statement names no object after `keyword`.
 */
export function renameObject(sql: string, keyword: 'TABLE' | 'SEQUENCE' | 'VIEW', name: string): string {
  const toks = significant(sql);
  const i = nameAfter(toks, keyword);
  if (i < 0) throw new Error(`no ${keyword.toLowerCase()} name after CREATE … ${keyword}`);
  return apply(sql, [nameEdit(toks, i, name)]);
}

/** The name the statement creates (after `keyword`), or undefined. */
export function createdName(sql: string, keyword: 'TABLE' | 'SEQUENCE' | 'VIEW' | 'TRIGGER' | 'PROCEDURE' | 'FUNCTION' | 'EVENT'): string | undefined {
  const toks = significant(sql);
  const i = nameAfter(toks, keyword);
  if (i < 0) return undefined;
  // A qualified name: the object's own name is the part after the dot.
  return toks[i + 1]?.text === '.' && isName(toks[i + 2]) ? (toks[i + 2] as Token).text : (toks[i] as Token).text;
}

/**
 * The foreign keys' `REFERENCES` clauses of a CREATE TABLE: each unqualified table name is
 * mapped through `target` (a renamed table's new name, or `{ database, name }` to qualify a
 * reference to a table of another database: the target's tables a staging copy must name);
 * names `target` returns undefined for, and names qualified with a database, stay as written.
 */
export function rewriteReferences(sql: string, target: (table: string) => string | { database: string; name: string } | undefined): string {
  const toks = significant(sql);
  const edits: Edit[] = [];
  for (let i = 0; i < toks.length - 1; i++) {
    if (!isWord(toks[i], 'REFERENCES') || !isName(toks[i + 1])) continue;
    if (toks[i + 2]?.text === '.') continue;
    const t = toks[i + 1] as Token;
    const to = target(t.text);
    if (to === undefined) continue;
    edits.push({ start: t.start, end: t.end, text: typeof to === 'string' ? ident(to) : `${ident(to.database)}.${ident(to.name)}` });
  }
  return apply(sql, edits);
}

/** The tables a CREATE TABLE's foreign keys reference unqualified (tables of its own database). */
export function referencedTables(sql: string): string[] {
  const toks = significant(sql);
  const out: string[] = [];
  for (let i = 0; i < toks.length - 1; i++) {
    if (isWord(toks[i], 'REFERENCES') && isName(toks[i + 1]) && toks[i + 2]?.text !== '.') out.push((toks[i + 1] as Token).text);
  }
  return out;
}

/**
 * `DEFINER=`user`@`host`` → `DEFINER=CURRENT_USER` (--no-owner: objects belong to the restoring
 * account). Statements without a DEFINER clause are returned as they are.
 */
export function definerToCurrentUser(sql: string): string {
  const toks = significant(sql);
  const k = toks.findIndex((t) => isWord(t, 'DEFINER'));
  // Only the clause in the statement's head (before the object keyword), never a body's text.
  if (k < 0 || toks[k + 1]?.text !== '=') return sql;
  const first = toks[k + 2];
  if (first === undefined) return sql;
  let last = first;
  if (toks[k + 3]?.text === '@' && toks[k + 4] !== undefined) last = toks[k + 4] as Token;
  else if (isWord(first, 'CURRENT_USER') && toks[k + 3]?.text === '(' && toks[k + 4]?.text === ')') last = toks[k + 4] as Token;
  return apply(sql, [{ start: first.start, end: last.end, text: 'CURRENT_USER' }]);
}

/**
 * A CREATE TRIGGER for the table `table` (its `ON` clause rewritten): the trigger travels with
 * its table, renamed with it.
 */
export function retargetTrigger(sql: string, table: string): string {
  const toks = significant(sql);
  const trig = toks.findIndex((t) => isWord(t, 'TRIGGER'));
  for (let i = trig + 1; trig >= 0 && i < toks.length - 1; i++) {
    if (isWord(toks[i], 'ON') && isName(toks[i + 1])) return apply(sql, [nameEdit(toks, i + 1, table)]);
  }
  throw new Error('no ON <table> clause in CREATE TRIGGER');
}

/**
 * The names a statement's body mentions (quoted identifiers and bare words after the object's
 * head), for refusing a view or trigger that reads a renamed table: the body is not rewritten
 * (a column or alias may share the table's name), so such a restore is refused.
 */
export function bodyNames(sql: string, after: 'AS' | 'ROW' | 'ON'): Set<string> {
  const toks = significant(sql);
  let from = toks.findIndex((t) => isWord(t, after));
  if (after === 'ON') from += 1; // skip the trigger's own table name
  const out = new Set<string>();
  for (let i = Math.max(0, from + 1); i < toks.length; i++) {
    const t = toks[i] as Token;
    if (t.kind === 'id' || t.kind === 'word') out.add(t.text);
  }
  return out;
}

/**
 * Encodes SQL text for a session whose client character set is `binary` (connection.ts's
 * sessions as opened): the driver then writes a query string's characters as single bytes, so
 * the string handed to it must hold the UTF-8 bytes one per character. (Restore sessions switch
 * to utf8mb4 and need no such step: session.ts.)
 */
export function utf8Query(sql: string): string {
  return Buffer.from(sql, 'utf8').toString('latin1');
}

/** A column default that calls a sequence of the restored database (`DEFAULT nextval(`db`.`s`)`). */
export interface SequenceDefault {
  column: string;
  /** The DEFAULT expression, its sequence's database written as NUL: sequenceDefault() fills it in. */
  expression: string;
}

/**
 * SHOW CREATE TABLE writes a default that calls a sequence qualified with its database
 * (`nextval(`src`.`s`)`), and the server checks it exists at CREATE: the calls to `sequences`
 * (source name → target name) are aimed at `database`. Returns the statement and, per column,
 * the expression (for aiming it at another database later: ALTER … SET DEFAULT).
 */
export function aimSequenceDefaults(sql: string, sequences: ReadonlyMap<string, string>, database: string): { sql: string; defaults: SequenceDefault[] } {
  const toks = significant(sql);
  const edits: Edit[] = [];
  const defaults: SequenceDefault[] = [];
  for (let i = 0; i < toks.length; i++) {
    const call = (isWord(toks[i], 'NEXTVAL') || isWord(toks[i], 'LASTVAL')) && toks[i + 1]?.text === '(';
    const valueFor = isWord(toks[i], 'VALUE') && isWord(toks[i + 1], 'FOR');
    if (!call && !valueFor) continue;
    const j = i + 2;
    if (!isName(toks[j])) continue;
    const qualified = toks[j + 1]?.text === '.' && isName(toks[j + 2]);
    const seq = (qualified ? toks[j + 2] : toks[j]) as Token;
    const target = sequences.get(seq.text);
    if (target === undefined) continue;
    const edit = { start: (toks[j] as Token).start, end: seq.end, text: `${ident(database)}.${ident(target)}` };
    edits.push(edit);
    // The column: the quoted name that starts the line holding the call.
    const lineStart = sql.lastIndexOf('\n', edit.start) + 1;
    const m = /^\s*(`(?:[^`]|``)*`)/.exec(sql.slice(lineStart));
    const d = toks.slice(0, i).map((t, k) => (isWord(t, 'DEFAULT') ? k : -1)).filter((k) => k >= 0).at(-1);
    if (m && d !== undefined) {
      const close = toks.findIndex((t, k) => k > j && t.text === ')');
      const endTok = call && close > 0 ? (toks[close] as Token) : seq;
      const exprStart = (toks[d + 1] as Token).start;
      defaults.push({ column: (m[1] as string).slice(1, -1).replace(/``/g, '`'), expression: apply(sql.slice(exprStart, endTok.end), [{ start: edit.start - exprStart, end: edit.end - exprStart, text: `\u0000.${ident(target)}` }]) });
    }
  }
  return { sql: apply(sql, edits), defaults };
}

/** A SequenceDefault's expression with its sequence in `database`. */
export function sequenceDefault(d: SequenceDefault, database: string): string {
  return d.expression.split('\u0000').join(ident(database));
}
