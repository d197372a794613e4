/**
 * PostgreSQL's name rules. A collection is `schema.name`, each part exactly as the catalog
 * spells it: identifiers are compared as written (quoted identifiers keep their case, so
 * "Users" and users are two tables, as are schemas "S" and s). A bare name means the `public`
 * schema. A name a user writes that matches nothing as written is read as PostgreSQL reads an
 * unquoted identifier: ASCII letters lowercased (downcase_identifier; other letters are kept in
 * a multibyte encoding such as UTF8), so `--include Artist` still finds public.artist.
 */
import type { NameRules } from '../../core/selection.js';

/** The schema of a name written without one. */
export const DEFAULT_SCHEMA = 'public';

export const postgresNaming: NameRules = {
  qualify: (name) => (name.includes('.') ? name : `${DEFAULT_SCHEMA}.${name}`),
  key: (name) => name,
  unquoted: (name) => name.replace(/[A-Z]+/g, (c) => c.toLowerCase()),
};
