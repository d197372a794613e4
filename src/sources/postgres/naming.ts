/**
 * PostgreSQL's name rules. A collection is `schema.name`, each part exactly as the catalog
 * spells it: identifiers are compared as written (quoted identifiers keep their case, so
 * "Users" and users are two tables, as are schemas "S" and s). A bare name means the `public`
 * schema. A name a user writes that matches nothing as written is read as PostgreSQL reads an
 * unquoted identifier: ASCII letters lowercased (downcase_identifier; other letters are kept in
 * a multibyte encoding such as UTF8), so `--include Artist` still finds public.artist.
 *
 * A part holding a dot, or starting with a double quote, is written in double quotes, a quote
 * inside doubled (as SQL writes it): the schema "a.b" with table t is the collection `"a.b".t`,
 * the schema a with table "b.t" is `a."b.t"`, so two relations never share a collection name.
 * Every other part is written as it is (quotes inside, spaces, commas, `=`, any case or letter:
 * `public.we"ird`). A name a user writes is read the same way; an unquoted name splits at its
 * first dot (`a.b.t` is `a."b.t"`).
 * Backups made before this rule named every collection `schema.name` unquoted: see
 * legacyDisplay.
 */
import { mustQuote, quoteName, readQuoted, type NameRules } from '../../core/selection.js';

/** The schema of a name written without one. */
export const DEFAULT_SCHEMA = 'public';

/** A schema-qualified name, unquoted. */
export interface QName {
  schema: string;
  name: string;
}

/**
 * One part of a collection name: quoted when it holds a dot or starts with a double quote, so
 * that an unquoted part never does either and splitName reads every name back.
 */
function part(p: string): string {
  return p.includes('.') || p.startsWith('"') ? quoteName(p) : p;
}

/** A name as people read it, as collections are named, and as key of name sets: "schema.name". */
export const display = (n: QName): string => `${part(n.schema)}.${part(n.name)}`;

/** The collection name older versions wrote: both parts unquoted, whatever they hold. */
export const legacyDisplay = (n: QName): string => `${n.schema}.${n.name}`;

/**
 * "schema.name" as a user writes it (or as display() writes it) → parts. A part in double
 * quotes is taken as written inside them (`""` is one quote); an unquoted schema ends at the
 * first dot; a name without a schema means public. A quote that does not close a part where
 * a part ends is an ordinary character (`public.we"ird` is the table we"ird).
 */
export function splitName(name: string): QName {
  const { schema, name: relation } = readParts(name);
  return { schema, name: relation };
}

/** splitName, and which parts were written in quotes (a missing schema counts as quoted: public). */
function readParts(name: string): QName & { schemaQuoted: boolean; nameQuoted: boolean } {
  let schema: string;
  let schemaQuoted = false;
  let rest = name;
  const first = readQuoted(name);
  if (first !== undefined && name[first.end] === '.') {
    schema = first.text;
    schemaQuoted = true;
    rest = name.slice(first.end + 1);
  } else if (first !== undefined && first.end === name.length) {
    return { schema: DEFAULT_SCHEMA, name: first.text, schemaQuoted: true, nameQuoted: true };
  } else {
    const dot = name.indexOf('.');
    if (dot < 0) return { schema: DEFAULT_SCHEMA, name, schemaQuoted: true, nameQuoted: false };
    schema = name.slice(0, dot);
    rest = name.slice(dot + 1);
  }
  const second = readQuoted(rest);
  const nameQuoted = second !== undefined && second.end === rest.length;
  return { schema, name: nameQuoted && second ? second.text : rest, schemaQuoted, nameQuoted };
}

/** downcase_identifier: ASCII letters only (other letters are kept in a multibyte encoding). */
const downcase = (s: string): string => s.replace(/[A-Z]+/g, (c) => c.toLowerCase());

export const postgresNaming: NameRules = {
  qualify: (name) => display(splitName(name)),
  key: (name) => name,
  // As PostgreSQL reads `Sales."Q1"`: unquoted parts lowercased, quoted ones exactly.
  unquoted: (written) => {
    const n = readParts(written);
    return display({ schema: n.schemaQuoted ? n.schema : downcase(n.schema), name: n.nameQuoted ? n.name : downcase(n.name) });
  },
  written: (name) => {
    const n = splitName(name);
    const written = (p: string): string => (mustQuote(p, '.') ? quoteName(p) : p);
    return `${written(n.schema)}.${written(n.name)}`;
  },
};
