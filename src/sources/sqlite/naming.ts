/**
 * SQLite's name rules: identifiers compare case-insensitively for the 26 ASCII letters only
 * (sqlite3StrICmp), so "Users" and "users" are one table while "Ä" and "ä" are two. Names have
 * no schema part: a collection is named by its table or view name alone.
 */
import type { NameRules } from '../../core/selection.js';

/** The form under which SQLite takes two identifiers for one: ASCII A-Z lowered, nothing else. */
export function foldName(name: string): string {
  return name.replace(/[A-Z]+/g, (c) => c.toLowerCase());
}

export const sqliteNaming: NameRules = {
  qualify: (name) => name,
  key: foldName,
  unquoted: foldName,
};
