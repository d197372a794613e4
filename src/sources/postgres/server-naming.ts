/**
 * Collection names of a whole-server backup (kind "postgres-server"): `<database>/<name>`, where
 * `<name>` is the collection's name in a one-database backup (`public.orders`, `(schema)`), so
 * `shop/public.orders` and `crm/public.orders` are two collections. The database part is written
 * in double quotes (SQL style, a quote inside doubled) when it holds a "/", starts with a quote or
 * is empty (`"a/b"/public.t`), and, as users type it, also when a list flag would split or trim
 * it (`"a,b"/public.x`); a name splits at its first "/" outside quotes.
 *
 * Each database has one selectable entry of its own, `<database>/` (kind `pg_database`, no data),
 * so that `--include 'shop/*'` selects a database with no tables too. The server's own
 * collections, `(roles)` and `(tablespaces)`, have no database part and are never selected.
 *
 * As a user writes them: `shop` (no "/") is the whole database, `shop/*`; `shop/orders` is
 * `shop/public.orders` (the rest is read by the one-database rules, naming.ts); `shop/*` and
 * `*` are patterns. `--rename shop=shop_copy` renames the database (NameRules.regroup).
 */
import { mustQuote, quoteName, readQuoted, type NameRules } from '../../core/selection.js';
import { postgresNaming } from './naming.js';

/** A collection of a whole-server backup, split: `database` undefined for the server's own collections. */
export interface ServerName {
  database: string | undefined;
  /** The one-database collection name ('' for the database's own entry). */
  rest: string;
}

/**
 * The database part as written in a collection name: quoted when it holds "/", starts with a
 * quote or is empty. (A `*` stays as it is: in a pattern it is a wildcard; a database named `*`
 * is still found by its exact name, which selection tries first.)
 */
export function databasePart(database: string): string {
  return database.includes('/') || database.startsWith('"') || database === '' ? quoteName(database) : database;
}

/** `<database>/<rest>`, the collection name of a database's collection in a server backup. */
export function serverName(database: string, rest: string): string {
  return `${databasePart(database)}/${rest}`;
}

/**
 * Splits a server collection name (or a name as a user writes it) at its first "/" outside a
 * leading quoted part. No "/": `database` undefined and `rest` the whole text.
 */
export function splitServerName(name: string): ServerName {
  const q = readQuoted(name);
  if (q !== undefined && name[q.end] === '/') return { database: q.text, rest: name.slice(q.end + 1) };
  const slash = name.indexOf('/');
  if (q === undefined && slash >= 0) return { database: name.slice(0, slash), rest: name.slice(slash + 1) };
  return { database: undefined, rest: name };
}

/** How `rest` (a name as the user wrote it after the database's "/") reads: `*` and '' as they are. */
function qualifyRest(rest: string, how: (n: string) => string): string {
  return rest === '' || rest === '*' ? rest : how(rest);
}

/** A name as the user wrote it → the full spelling, `how` reading the part after the database. */
function read(written: string, how: (n: string) => string): string {
  const n = splitServerName(written);
  if (n.database === undefined) {
    // No "/": the whole database of that name (its quotes read SQL-style).
    const q = readQuoted(written);
    const database = q !== undefined && q.end === written.length ? q.text : written;
    // The server's own collections keep their names (they are never selected anyway).
    return written.startsWith('(') ? written : `${databasePart(database)}/*`;
  }
  return serverName(n.database, qualifyRest(n.rest, how));
}

export const postgresServerNaming: NameRules = {
  qualify: (written) => read(written, postgresNaming.qualify),
  key: (name) => name,
  unquoted: (written) => read(written, postgresNaming.unquoted),
  written: (name) => {
    const n = splitServerName(name);
    if (n.database === undefined) return name;
    const db = mustQuote(n.database, '/') ? quoteName(n.database) : n.database;
    return `${db}/${n.rest === '' ? '' : postgresNaming.written(n.rest)}`;
  },
  regroup: (name, from, to) => {
    const f = splitServerName(from);
    const t = splitServerName(to);
    // Only `db=other` (qualified to `db/*` and `other/*`) renames a database.
    if (f.database === undefined || f.rest !== '*' || t.database === undefined || t.rest !== '*') return undefined;
    const n = splitServerName(name);
    return n.database === f.database ? serverName(t.database, n.rest) : undefined;
  },
};
