/**
 * MySQL/MariaDB's name rules, for a database's tables, views and sequences: a collection is
 * named by the object's name alone (its database is the URL's), exactly as the server stores
 * it. Names compare exactly: with lower_case_table_names=0 (Linux's default) `Users` and
 * `users` are two tables. A name a user writes wholly in double quotes is the text inside them.
 */
import { mustQuote, quoteName, readQuoted, type NameRules } from '../../core/selection.js';

function qualify(name: string): string {
  const quoted = readQuoted(name);
  return quoted !== undefined && quoted.end === name.length ? quoted.text : name;
}

export const mysqlNaming: NameRules = {
  qualify,
  key: (name) => name,
  unquoted: qualify,
  written: (name) => (mustQuote(name) ? quoteName(name) : name),
};
