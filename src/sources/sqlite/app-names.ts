/**
 * Names only the application registers: collations (Android's LOCALIZED and UNICODE, an app's
 * own) and functions used in CHECK constraints, DEFAULTs, generated columns, index
 * expressions, views and triggers. SQLite alone has BINARY, NOCASE and RTRIM and its built-in
 * functions, and refuses to create a table, index or view that names another ("no such
 * collation sequence", "no such function"), so such a database could never be restored.
 *
 * A backup names each in a warning. A restore creates every object that uses them with a
 * fallback in their place: BINARY for a collation (rows that were distinct stay distinct, so
 * UNIQUE constraints hold), for a function an injective encoding of its arguments in tables and
 * indexes (again, distinct stays distinct; withFallbacks) and SQLite's char() in views and
 * triggers, with CHECK constraints not evaluated while the rows are loaded (they held in
 * the source). Once everything is loaded, the definitions are put back as written (PRAGMA
 * writable_schema, defensive mode off for those statements only; only these names differ from
 * what ran). Indexes on them are then in the fallback's order: the application must run
 * `REINDEX` (with its collations and functions registered) before relying on them (Android
 * does it for LOCALIZED when the locale recorded in android_metadata changes). A STORED
 * generated column computed by an application function cannot be recomputed: the restore
 * refuses that table, naming it.
 */
import type BetterSqlite3 from 'better-sqlite3';
import Database from './driver.js';
import { SourceError } from '../../core/errors.js';
import { lexSql, type Lexeme } from './lexer.js';
import { quoteIdent } from './sql.js';

/** Collations every SQLite has. */
const BUILT_IN_COLLATIONS = new Set(['binary', 'nocase', 'rtrim']);

/** SQLite keywords that a "(" may follow without being a function call (CAST(, EXISTS(, KEY(…). */
const KEYWORDS = new Set(
  `ABORT ACTION ADD AFTER ALL ALTER ALWAYS ANALYZE AND AS ASC ATTACH AUTOINCREMENT BEFORE BEGIN BETWEEN BY CASCADE CASE CAST CHECK COLLATE COLUMN COMMIT CONFLICT CONSTRAINT CREATE CROSS CURRENT CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP DATABASE DEFAULT DEFERRABLE DEFERRED DELETE DESC DETACH DISTINCT DO DROP EACH ELSE END ESCAPE EXCEPT EXCLUDE EXCLUSIVE EXISTS EXPLAIN FAIL FILTER FIRST FOLLOWING FOR FOREIGN FROM FULL GENERATED GLOB GROUP GROUPS HAVING IF IGNORE IMMEDIATE IN INDEX INDEXED INITIALLY INNER INSERT INSTEAD INTERSECT INTO IS ISNULL JOIN KEY LAST LEFT LIKE LIMIT MATCH MATERIALIZED NATURAL NO NOT NOTHING NOTNULL NULL NULLS OF OFFSET ON OR ORDER OTHERS OUTER OVER PARTITION PLAN PRAGMA PRECEDING PRIMARY QUERY RAISE RANGE RECURSIVE REFERENCES REGEXP REINDEX RELEASE RENAME REPLACE RESTRICT RETURNING RIGHT ROLLBACK ROW ROWS SAVEPOINT SELECT SET TABLE TEMP TEMPORARY THEN TIES TO TRANSACTION TRIGGER UNBOUNDED UNION UNIQUE UPDATE USING VACUUM VALUES VIEW VIRTUAL WHEN WHERE WINDOW WITH WITHOUT STRICT`.split(' '),
);
/**
 * Keywords after which `name(` is a function call; after any other word it names a table or a
 * column's type (`ON t(`, `key VARCHAR(`).
 */
const CALL_AFTER = new Set(['SELECT', 'DISTINCT', 'ALL', 'WHERE', 'HAVING', 'AND', 'OR', 'NOT', 'WHEN', 'THEN', 'ELSE', 'CASE', 'IS', 'IN', 'LIKE', 'GLOB', 'MATCH', 'REGEXP', 'BETWEEN', 'ESCAPE', 'BY', 'DEFAULT', 'RETURNING', 'SET', 'LIMIT', 'OFFSET']);

function significant(sql: string): Lexeme[] | undefined {
  try {
    return lexSql(sql);
  } catch {
    return undefined;
  }
}

function collationAt(t: Lexeme[], i: number): Lexeme | undefined {
  const word = t[i];
  if (word === undefined || word.kind !== 'ident' || word.quoted || word.value.toUpperCase() !== 'COLLATE') return undefined;
  let k = i + 1;
  while (t[k]?.kind === 'trivia') k++;
  const name = t[k];
  return name !== undefined && (name.kind === 'ident' || name.kind === 'string') ? name : undefined;
}

/** Whether t[i] is the name in a call `name(`: not a keyword, not a table or a column type. */
function isCall(t: Lexeme[], i: number): boolean {
  const x = t[i];
  if (x === undefined || x.kind !== 'ident' || x.quoted || t[i + 1]?.text !== '(') return false;
  if (KEYWORDS.has(x.value.toUpperCase())) return false;
  const prev = t[i - 1];
  if (prev === undefined) return false;
  // `name(columns) AS [NOT] [MATERIALIZED] (…)` names a common table expression (while
  // `f(x) AS alias` is a call with a column alias).
  let depth = 0;
  for (let k = i + 1; k < t.length; k++) {
    if (t[k]?.text === '(') depth++;
    else if (t[k]?.text === ')' && --depth === 0) {
      const word = (x: Lexeme | undefined, w: string): boolean => x?.kind === 'ident' && !x.quoted && x.value.toUpperCase() === w;
      let m = k + 1;
      if (!word(t[m], 'AS')) break;
      m++;
      if (word(t[m], 'NOT')) m++;
      if (word(t[m], 'MATERIALIZED')) m++;
      if (t[m]?.text === '(') return false;
      break;
    }
  }
  if (prev.kind === 'ident') return !prev.quoted && CALL_AFTER.has(prev.value.toUpperCase());
  // After an operator or "(" / ","; not after ")" (a column type follows a name), nor "." (schema.table).
  return prev.kind === 'punct' || prev.kind === 'other' ? prev.text !== ')' && prev.text !== '.' : false;
}

/** The application collations `sql` names (first spelling of each), in order. */
export function appCollations(sql: string): string[] {
  const t = significant(sql) ?? [];
  const out = new Map<string, string>();
  for (let i = 0; i < t.length; i++) {
    const name = collationAt(t, i);
    if (name !== undefined && !BUILT_IN_COLLATIONS.has(name.value.toLowerCase()) && !out.has(name.value.toLowerCase())) out.set(name.value.toLowerCase(), name.value);
  }
  return [...out.values()];
}

/** The functions `sql` calls that `known` (lower-case names) lacks, first spelling of each. */
export function unknownFunctions(sql: string, known: Set<string>): string[] {
  const t = significant(sql) ?? [];
  const out = new Map<string, string>();
  for (let i = 0; i < t.length; i++) {
    if (!isCall(t, i)) continue;
    const name = (t[i] as Lexeme).value;
    if (!known.has(name.toLowerCase()) && !out.has(name.toLowerCase())) out.set(name.toLowerCase(), name);
  }
  return [...out.values()];
}

let builtIn: Set<string> | undefined;

/**
 * The functions (lower-case) this SQLite build has, table-valued ones included: what a
 * connection of cairn's (staging file, target) has, since cairn registers none.
 */
export function knownFunctions(): Set<string> {
  if (builtIn === undefined) {
    const db = new Database(':memory:');
    try {
      const names = db.prepare('SELECT name FROM pragma_function_list UNION SELECT name FROM pragma_module_list').pluck().all() as string[];
      builtIn = new Set(names.map((n) => n.toLowerCase()));
    } finally {
      db.close();
    }
  }
  return builtIn;
}

/**
 * `sql` with every application collation replaced by BINARY and every call of a function
 * `known` lacks by a stand-in (unchanged when it names none). With `values` (tables and
 * indexes, whose expressions are computed while rows are loaded: index keys, generated columns),
 * the stand-in is an injective encoding of all the call's arguments, so that values an index or
 * a UNIQUE constraint saw as distinct stay distinct (under BINARY, NOCASE and RTRIM alike: see
 * encodeArgs); and the WHERE of a partial index that calls one becomes `0` (the index is built
 * empty: any predicate on a stand-in could let in rows the application leaves out). Without
 * `values` (views, triggers: nothing is computed during the restore), SQLite's char(), which
 * takes any number of arguments and keeps aggregate and window forms parseable.
 */
export function withFallbacks(sql: string, known: Set<string>, values = false): string {
  if (appCollations(sql).length === 0 && unknownFunctions(sql, known).length === 0) return sql;
  const t = lexSql(sql, { trivia: true });
  const at = t.map((x, k) => ({ x, k })).filter(({ x }) => x.kind !== 'trivia');
  const toks = at.map(({ x }) => x);
  const pos = at.map(({ k }) => k);
  const unknownCall = (j: number): boolean => isCall(toks, j) && !known.has((toks[j] as Lexeme).value.toLowerCase());
  /** The index of the ")" closing the "(" at significant index `open`. */
  const closing = (open: number): number => {
    let depth = 0;
    for (let k = open; k < toks.length; k++) {
      if (toks[k]?.text === '(') depth++;
      else if (toks[k]?.text === ')' && --depth === 0) return k;
    }
    return toks.length - 1;
  };
  /** The text of significant lexemes [a, b] (trivia between them kept), fallbacks applied. */
  const render = (a: number, b: number): string => {
    let out = '';
    for (let j = a; j <= b; j++) {
      if (j > a) for (let k = (pos[j - 1] as number) + 1; k < (pos[j] as number); k++) out += (t[k] as Lexeme).text;
      const x = toks[j] as Lexeme;
      const coll = collationAt(toks, j);
      if (coll !== undefined && !BUILT_IN_COLLATIONS.has(coll.value.toLowerCase())) {
        out += x.text;
        for (let k = (pos[j] as number) + 1; k < (pos[j + 1] as number); k++) out += (t[k] as Lexeme).text;
        out += 'BINARY';
        j++;
        continue;
      }
      if (unknownCall(j)) {
        if (!values) {
          out += 'char';
          continue;
        }
        const close = closing(j + 1);
        const args: StandInArg[] = [];
        // An argument that is itself a stand-in call is used as it is (see encodeArgs).
        const arg = (a: number, b: number): StandInArg => ({ sql: render(a, b), standIn: unknownCall(a) && closing(a + 1) === b });
        let from = j + 2;
        let depth = 0;
        for (let k = j + 2; k < close; k++) {
          const text = toks[k]?.text;
          if (text === '(') depth++;
          else if (text === ')') depth--;
          else if (text === ',' && depth === 0) {
            args.push(arg(from, k - 1));
            from = k + 1;
          }
        }
        if (from < close) args.push(arg(from, close - 1));
        out += encodeArgs(args);
        j = close;
        continue;
      }
      out += x.text;
    }
    return out;
  };
  if (values && toks.length > 0) {
    // CREATE [UNIQUE] INDEX … ON t (…) WHERE <predicate>: the first WHERE outside parentheses.
    const head = toks.slice(0, 4).map((x) => x.value.toUpperCase());
    if (head[0] === 'CREATE' && head.includes('INDEX')) {
      let depth = 0;
      for (let j = 0; j < toks.length; j++) {
        const x = toks[j] as Lexeme;
        if (x.text === '(') depth++;
        else if (x.text === ')') depth--;
        else if (depth === 0 && x.kind === 'ident' && !x.quoted && x.value.toUpperCase() === 'WHERE') {
          let calls = false;
          for (let k = j + 1; k < toks.length; k++) if (unknownCall(k)) calls = true;
          if (calls) {
            const end = toks[toks.length - 1]?.text === ';' ? toks.length - 2 : toks.length - 1;
            return `${render(0, j)} 0${end < toks.length - 1 ? ';' : ''}`;
          }
          break;
        }
      }
    }
  }
  const lead = t.slice(0, pos[0] ?? t.length).map((x) => x.text).join('');
  const tail = pos.length > 0 ? t.slice((pos[pos.length - 1] as number) + 1).map((x) => x.text).join('') : '';
  return lead + (toks.length > 0 ? render(0, toks.length - 1) : '') + tail;
}

interface StandInArg {
  sql: string;
  /** The argument is exactly one stand-in call (its value is text of encodeArgs's form). */
  standIn: boolean;
}

/**
 * The stand-in value of a call with arguments `args` (SQL expressions): "(" a1 "," a2 … ")",
 * each TEXT as "T" and its bytes in hex, anything else as quote() writes it (integers, reals to
 * the last bit, X'…' blobs, NULL). No two argument lists give one value: the parts are
 * self-delimiting, and the parentheses keep calls concatenated by `||` apart. No lower-case
 * letter nor trailing space that NOCASE or RTRIM could merge either (quote()'s reals hold only
 * "e", in a place no other part has a letter). An argument that is a stand-in itself goes in
 * as it is: it starts with "(", which no other part does, and is self-delimiting (which also
 * keeps nested calls from growing threefold per level).
 */
function encodeArgs(args: StandInArg[]): string {
  if (args.length === 0) return "'()'";
  const parts = args.map(({ sql: a, standIn }) => (standIn ? a : `CASE typeof(${a}) WHEN 'text' THEN 'T' || hex(${a}) ELSE quote(${a}) END`));
  return `('(' || ${parts.join(" || ',' || ")} || ')')`;
}

/** A definition created with fallbacks, to be put back as written. */
export interface AppNameRewrite {
  type: 'table' | 'index' | 'view' | 'trigger';
  name: string;
  /** The definition as the backup recorded it (renamed). */
  sql: string;
}

interface PlannedLike {
  kind: string;
  name: string;
  createSql: string;
  indexes?: { name: string; sql: string }[];
  triggers: { name: string; sql: string }[];
  item: { entry: { name: string } };
  def?: unknown;
}

/** Every definition of the plan that names an application collation or function (renamed, as recorded). */
export function appNameRewrites(objects: PlannedLike[], known: Set<string>): AppNameRewrite[] {
  const out: AppNameRewrite[] = [];
  const add = (type: AppNameRewrite['type'], name: string, sql: string): void => {
    if (withFallbacks(sql, known) !== sql) out.push({ type, name, sql });
  };
  for (const p of objects) {
    if (p.kind !== 'table' && p.kind !== 'view') continue;
    add(p.kind, p.name, p.createSql);
    for (const idx of p.indexes ?? []) add('index', idx.name, idx.sql);
    for (const tr of p.triggers) add('trigger', tr.name, tr.sql);
  }
  return out;
}

/**
 * Refuses a table with a STORED generated column whose expression calls an application
 * function: the restore would store the fallback's values. Throws SourceError naming them.
 */
export function refuseStoredAppFunctions(objects: PlannedLike[], known: Set<string>): void {
  for (const p of objects) {
    if (p.kind !== 'table') continue;
    const t = significant(p.createSql) ?? [];
    // Each "AS ( … ) STORED" of a generated column.
    for (let i = 0; i < t.length; i++) {
      if (!(t[i]?.kind === 'ident' && (t[i] as Lexeme).value.toUpperCase() === 'AS' && t[i + 1]?.text === '(')) continue;
      let depth = 0;
      let j = i + 1;
      for (; j < t.length; j++) {
        if (t[j]?.text === '(') depth++;
        else if (t[j]?.text === ')' && --depth === 0) break;
      }
      const after = t[j + 1];
      if (after?.kind !== 'ident' || after.value.toUpperCase() !== 'STORED') continue;
      const fns = unknownFunctions(t.slice(i + 1, j + 1).map((x) => x.text).join(' '), known);
      if (fns.length > 0) {
        throw new SourceError(
          `Cannot restore table "${p.name}": a STORED generated column is computed by ${fns.join(', ')}, which only its application registers, so SQLite cannot compute it here and the restored values would be wrong. --exclude "${p.item.entry.name}", or restore it from the application.`,
        );
      }
    }
  }
}

/** Whether the plan needs CHECK constraints off while rows are loaded (they call an application function). */
export function needsUncheckedLoad(rewrites: AppNameRewrite[], known: Set<string>): boolean {
  return rewrites.some((r) => r.type === 'table' && unknownFunctions(r.sql, known).length > 0);
}

/**
 * Puts the definitions back as written in main's sqlite_schema (the staging file, or the
 * target inside the switch's transaction, as its last change). Each must have been created
 * from its fallback text (createObject & co.); nothing else is touched.
 */
export function restoreDefinitions(db: BetterSqlite3.Database, rewrites: AppNameRewrite[]): void {
  if (rewrites.length === 0) return;
  db.unsafeMode(true);
  try {
    db.pragma('writable_schema = ON');
    try {
      const update = db.prepare('UPDATE main.sqlite_schema SET sql = ? WHERE type = ? AND name = ?');
      for (const r of rewrites) {
        const changed = update.run(r.sql, r.type, r.name).changes;
        if (changed !== 1) throw new Error(`the ${r.type} ${quoteIdent(r.name)} created with a fallback was not found to restore its definition`);
      }
    } finally {
      db.pragma('writable_schema = OFF');
    }
  } finally {
    db.unsafeMode(false);
  }
}
