/**
 * SQLite's lexer, for what a definition can hold — the one reader of SQL text in cairn, shared by
 * the restore's definition checks (validate.ts) and its renames (sql.ts), so that what is
 * checked and what is rewritten are read the same way. Strings, quoted identifiers ("", ``, []),
 * blob literals (x'…') and bare identifiers are read as SQLite reads them; whitespace is only
 * space, tab, LF, FF and CR (a no-break space belongs to an identifier, as in SQLite).
 * Unterminated quotes, blob literals and block comments are refused with DefinitionError: SQLite
 * would read them differently than a careless reader.
 */

/** A definition that is not what it must be; the message says what is wrong. */
export class DefinitionError extends Error {}

export interface Lexeme {
  /** "trivia": whitespace and comments, only with `trivia: true`. */
  kind: 'ident' | 'string' | 'punct' | 'other' | 'trivia';
  text: string;
  /** For ident: the unquoted name; bare identifiers also are keywords. */
  value: string;
  quoted: boolean;
}

const SPACE = /[ \t\n\f\r]/;
const IDENT_START = /[A-Za-z_\u0080-\uffff]/;
const IDENT_PART = /[A-Za-z0-9_$\u0080-\uffff]/;

/**
 * The lexemes of `sql`. With `trivia`, whitespace and comments are kept as "trivia" lexemes, so
 * that joining every lexeme's text gives `sql` back (renames rewrite some lexemes and join).
 * Throws DefinitionError on an unterminated quote, blob literal or block comment.
 */
export function lexSql(sql: string, options: { trivia?: boolean } = {}): Lexeme[] {
  const out: Lexeme[] = [];
  const trivia = (from: number, to: number): void => {
    if (options.trivia) out.push({ kind: 'trivia', text: sql.slice(from, to), value: '', quoted: false });
  };
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i] as string;
    if (SPACE.test(c)) {
      const start = i;
      while (i < n && SPACE.test(sql[i] as string)) i++;
      trivia(start, i);
    } else if (c === '-' && sql[i + 1] === '-') {
      const start = i;
      while (i < n && sql[i] !== '\n') i++;
      trivia(start, i);
    } else if (c === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      if (end < 0) throw new DefinitionError('an unterminated /* comment');
      trivia(i, end + 2);
      i = end + 2;
    } else if (c === '"' || c === '`' || c === "'") {
      const start = i;
      i++;
      let value = '';
      for (;;) {
        if (i >= n) throw new DefinitionError(`an unterminated ${c === "'" ? 'string' : 'quoted identifier'}`);
        if (sql[i] === c) {
          if (sql[i + 1] === c) {
            value += c;
            i += 2;
            continue;
          }
          i++;
          break;
        }
        value += sql[i];
        i++;
      }
      out.push({ kind: c === "'" ? 'string' : 'ident', text: sql.slice(start, i), value, quoted: true });
    } else if (c === '[') {
      const end = sql.indexOf(']', i + 1);
      if (end < 0) throw new DefinitionError('an unterminated [identifier]');
      out.push({ kind: 'ident', text: sql.slice(i, end + 1), value: sql.slice(i + 1, end), quoted: true });
      i = end + 1;
    } else if ((c === 'x' || c === 'X') && sql[i + 1] === "'") {
      const end = sql.indexOf("'", i + 2);
      if (end < 0) throw new DefinitionError('an unterminated blob literal');
      out.push({ kind: 'string', text: sql.slice(i, end + 1), value: sql.slice(i + 2, end), quoted: true });
      i = end + 1;
    } else if (IDENT_START.test(c)) {
      const start = i;
      while (i < n && IDENT_PART.test(sql[i] as string)) i++;
      const text = sql.slice(start, i);
      out.push({ kind: 'ident', text, value: text, quoted: false });
    } else if (/[(),;.]/.test(c)) {
      out.push({ kind: 'punct', text: c, value: c, quoted: false });
      i++;
    } else {
      out.push({ kind: 'other', text: c, value: c, quoted: false });
      i++;
    }
  }
  return out;
}
