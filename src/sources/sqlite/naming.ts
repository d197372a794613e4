/**
 * SQLite's name rules: identifiers compare case-insensitively for the 26 ASCII letters only
 * (sqlite3StrICmp), so "Users" and "users" are one table while "Ä" and "ä" are two. Names have
 * no schema part: a collection is named by its table or view name alone, exactly as written
 * (dots, quotes, spaces included). A name a user writes wholly in double quotes is the name
 * inside them (`""` is one quote), as PostgreSQL's parts are: `"a,b"`, `" x"`, `"a=b"`.
 */
import { mustQuote, quoteName, readQuoted, type NameRules } from '../../core/selection.js';

/** The form under which SQLite takes two identifiers for one: ASCII A-Z lowered, nothing else. */
export function foldName(name: string): string {
  return name.replace(/[A-Z]+/g, (c) => c.toLowerCase());
}

/** A name as a user writes it → the name (wholly double-quoted: the text inside). */
function qualify(name: string): string {
  const quoted = readQuoted(name);
  return quoted !== undefined && quoted.end === name.length ? quoted.text : name;
}

export const sqliteNaming: NameRules = {
  qualify,
  key: foldName,
  // SQLite folds quoted names too.
  unquoted: (name) => foldName(qualify(name)),
  written: (name) => (mustQuote(name) ? quoteName(name) : name),
};
