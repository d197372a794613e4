/**
 * PostgreSQL's name rules. A collection is `schema.name`, each part exactly as the catalog
 * spells it: identifiers are compared as written (quoted identifiers keep their case, so
 * "Users" and users are two tables, as are schemas "S" and s). A bare name means the `public`
 * schema. A name a user writes that matches nothing as written is read as PostgreSQL reads an
 * unquoted identifier: ASCII letters lowercased (downcase_identifier; other letters are kept in
 * a multibyte encoding such as UTF8), so `--include Artist` still finds public.artist.
 *
 * `schema.name` cannot say where a dot inside a schema name ends: a name a user writes is split
 * at its first dot, and a collection restored under its own name keeps the parts its definition
 * records (the schema "a.b" and table t of the collection "a.b.t").
 */
import type { NameRules } from '../../core/selection.js';

/** The schema of a name written without one. */
export const DEFAULT_SCHEMA = 'public';

/** A schema-qualified name, unquoted. */
export interface QName {
  schema: string;
  name: string;
}

/** A name as people read it, as collections are named, and as key of name sets: "schema.name". */
export const display = (n: QName): string => `${n.schema}.${n.name}`;

/** "schema.name" as a user writes it → parts (split at the first dot; a bare name means public). */
export function splitName(name: string): QName {
  const dot = name.indexOf('.');
  return dot < 0 ? { schema: DEFAULT_SCHEMA, name } : { schema: name.slice(0, dot), name: name.slice(dot + 1) };
}

export const postgresNaming: NameRules = {
  qualify: (name) => display(splitName(name)),
  key: (name) => name,
  unquoted: (name) => name.replace(/[A-Z]+/g, (c) => c.toLowerCase()),
};
