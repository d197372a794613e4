/**
 * MySQL/MariaDB's name rules, for a database's tables, views and sequences: a collection is
 * named by the object's name alone (its database is the URL's), exactly as the server stores
 * it. Names compare exactly: with lower_case_table_names=0 (Linux's default) `Users` and
 * `users` are two tables. A name a user writes wholly in double quotes is the text inside them
 * (`""` for a quote), as for every engine; wholly in backticks, as MySQL writes it, the text
 * inside them (` `` ` for a backtick). A pattern (`*`) is never unquoted.
 */
import { mustQuote, quoteName, readQuoted, type NameRules } from '../../core/selection.js';

/** `name` wholly in backticks → the text inside (doubled backticks as one); undefined otherwise. */
function readBackticked(name: string): string | undefined {
  if (name.length < 2 || !name.startsWith('`') || !name.endsWith('`')) return undefined;
  const inner = name.slice(1, -1);
  // A lone backtick inside would end the identifier in SQL: not one quoted name.
  if (inner.replace(/``/g, '').includes('`')) return undefined;
  return inner.replace(/``/g, '`');
}

function qualify(name: string): string {
  const quoted = readQuoted(name);
  if (quoted !== undefined && quoted.end === name.length) return quoted.text;
  return readBackticked(name) ?? name;
}

export const mysqlNaming: NameRules = {
  qualify,
  key: (name) => name,
  unquoted: qualify,
  // A name that starts and ends with a backtick would read back as the text inside: quoted.
  written: (name) => (mustQuote(name) || (name.length >= 2 && name.startsWith('`') && name.endsWith('`')) ? quoteName(name) : name),
};
