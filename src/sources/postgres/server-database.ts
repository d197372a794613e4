/**
 * A database's own properties in a whole-server backup (the `<database>/` entry): its owner, its
 * grants (`datacl`: who may CONNECT, CREATE schemas, use TEMPORARY tables), its comment and its
 * connection limit, which a one-database backup leaves out and pg_dumpall keeps. Read from
 * pg_database at backup time; set again on the restored database, after its switch-in, by
 * statements built here from checked values (names only as quoted identifiers, privileges from a
 * fixed list, setting names checked, values as literals): a manifest is untrusted input. Settings
 * (`ALTER DATABASE … SET`, `ALTER ROLE … IN DATABASE … SET`) are kept too, except those that load
 * server libraries (refused, as in roles scripts).
 */
import { quoteIdent } from './catalog.js';

/** Definition of a `<database>/` entry (kind "pg_database"). */
export interface PgDatabaseDefinition {
  database: string;
  owner: string;
  /** How many selectable collections of the database the backup holds besides this one (a restore of fewer is partial). */
  collections: number;
  /** pg_database.datacl as aclitem texts (`grantee=privs/grantor`, '' grantee = PUBLIC); null: the default grants. Absent in no backup written by this version. */
  acl?: string[] | null;
  comment?: string | null;
  /** -1: no limit. */
  connectionLimit?: number;
  /** pg_db_role_setting of the database: `role` null for every role (ALTER DATABASE … SET), else ALTER ROLE … IN DATABASE … SET; `config` as `name=value`. */
  settings?: { role: string | null; config: string[] }[];
}

/** The SQL that reads a database's properties, by name ($1). */
/** The columns of pg_database (aliased d) that make a PgDatabaseDefinition's properties. */
export const DATABASE_PROPERTIES_COLUMNS = `pg_catalog.pg_get_userbyid(d.datdba) AS owner, d.datacl::text[] AS acl,
  pg_catalog.shobj_description(d.oid, 'pg_database') AS comment, d.datconnlimit AS "connectionLimit",
  (SELECT coalesce(json_agg(json_build_object('role', r.rolname, 'config', s.setconfig) ORDER BY r.rolname NULLS FIRST), '[]'::json)
     FROM pg_catalog.pg_db_role_setting s LEFT JOIN pg_catalog.pg_roles r ON r.oid = s.setrole AND s.setrole <> 0
    WHERE s.setdatabase = d.oid) AS settings`;

/** Settings whose value is a list, each element quoted on its own (pg_dump's variable_is_guc_list_quote). */
export const LIST_SETTINGS = new Set(['search_path', 'temp_tablespaces', 'session_preload_libraries', 'local_preload_libraries', 'shared_preload_libraries', 'unix_socket_directories']);
/** Settings that load libraries into server sessions: refused, as in roles scripts (roles.ts). */
const LIBRARY_SETTINGS = /^(?:session_preload_libraries|local_preload_libraries|shared_preload_libraries|dynamic_library_path)$/i;

/** A list setting's value split at commas outside double quotes, quotes read SQL-style (SplitGUCList). */
export function splitList(value: string): string[] {
  const out: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i] as string;
    if (c === '"') {
      if (quoted && value[i + 1] === '"') {
        current += '"';
        i++;
      } else quoted = !quoted;
    } else if (c === ',' && !quoted) {
      out.push(current.trim());
      current = '';
    } else current += c;
  }
  out.push(current.trim());
  return out;
}

/** `ALTER … SET name TO value` for one `name=value` of pg_db_role_setting; undefined when refused. */
function settingClause(item: string): string | undefined {
  const eq = item.indexOf('=');
  const name = item.slice(0, eq);
  const value = item.slice(eq + 1);
  if (eq < 1 || !/^[A-Za-z_][A-Za-z0-9_.]*$/.test(name) || LIBRARY_SETTINGS.test(name)) return undefined;
  const values = LIST_SETTINGS.has(name.toLowerCase()) ? splitList(value) : [value];
  const literals = values.map(literal);
  if (literals.some((l) => l === undefined)) return undefined;
  return `SET ${name} TO ${literals.join(', ')}`;
}

/** A manifest's text as an escape-string literal, whatever standard_conforming_strings says; undefined for a NUL. */
function literal(value: string): string | undefined {
  return value.includes('\u0000') ? undefined : `E'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

const PRIVILEGES: Record<string, string> = { C: 'CREATE', T: 'TEMPORARY', c: 'CONNECT' };

/** Reads a role name of an aclitem at `i` (quoted as putid writes it, or bare up to `stop`). */
function readRole(text: string, i: number, stop: string): { name: string; end: number } | undefined {
  if (text[i] === '"') {
    let name = '';
    for (let j = i + 1; j < text.length; j++) {
      if (text[j] === '"') {
        if (text[j + 1] === '"') {
          name += '"';
          j++;
          continue;
        }
        return { name, end: j + 1 };
      }
      name += text[j];
    }
    return undefined;
  }
  const end = text.indexOf(stop, i);
  return { name: text.slice(i, end < 0 ? text.length : end), end: end < 0 ? text.length : end };
}

/**
 * One aclitem of a database (`grantee=privs/grantor`) → its grantee ('' for PUBLIC) and the
 * privileges it holds, with or without grant option; undefined when it is not one PostgreSQL
 * writes for a database.
 */
export function parseDatabaseAcl(item: string): { grantee: string; privileges: string[]; grantable: string[] } | undefined {
  const who = readRole(item, 0, '=');
  if (who === undefined || item[who.end] !== '=') return undefined;
  const slash = item.indexOf('/', who.end + 1);
  if (slash < 0) return undefined;
  const privileges: string[] = [];
  const grantable: string[] = [];
  const codes = item.slice(who.end + 1, slash);
  for (let k = 0; k < codes.length; k++) {
    const p = PRIVILEGES[codes[k] as string];
    if (p === undefined) return undefined;
    if (codes[k + 1] === '*') {
      grantable.push(p);
      k++;
    } else privileges.push(p);
  }
  return { grantee: who.name, privileges, grantable };
}

/**
 * The statements that give `target` the recorded grants, comment, connection limit and settings
 * (the owner is set apart, first). Grants: PUBLIC's default ones revoked, then each recorded one
 * given (null acl: the defaults, nothing to do). Items that are not aclitems of a database, and
 * settings refused, are skipped and returned as `refused`.
 */
export function databasePropertyStatements(target: string, def: PgDatabaseDefinition, withGrants: boolean): { statements: string[]; refused: string[] } {
  const db = quoteIdent(target);
  const statements: string[] = [];
  const refused: string[] = [];
  if (withGrants && Array.isArray(def.acl)) {
    statements.push(`REVOKE ALL ON DATABASE ${db} FROM PUBLIC`);
    for (const item of def.acl) {
      const acl = typeof item === 'string' ? parseDatabaseAcl(item) : undefined;
      if (acl === undefined) {
        refused.push(String(item).slice(0, 80));
        continue;
      }
      const to = acl.grantee === '' ? 'PUBLIC' : quoteIdent(acl.grantee);
      if (acl.privileges.length > 0) statements.push(`GRANT ${acl.privileges.join(', ')} ON DATABASE ${db} TO ${to}`);
      if (acl.grantable.length > 0) statements.push(`GRANT ${acl.grantable.join(', ')} ON DATABASE ${db} TO ${to} WITH GRANT OPTION`);
    }
  }
  const comment = typeof def.comment === 'string' ? literal(def.comment) : undefined;
  if (comment !== undefined) statements.push(`COMMENT ON DATABASE ${db} IS ${comment}`);
  if (Number.isInteger(def.connectionLimit) && (def.connectionLimit as number) >= -1) statements.push(`ALTER DATABASE ${db} CONNECTION LIMIT ${def.connectionLimit as number}`);
  for (const s of Array.isArray(def.settings) ? def.settings : []) {
    for (const item of Array.isArray(s?.config) ? s.config : []) {
      const clause = typeof item === 'string' ? settingClause(item) : undefined;
      if (clause === undefined) {
        refused.push(String(item).slice(0, 80));
        continue;
      }
      statements.push(typeof s.role === 'string' ? `ALTER ROLE ${quoteIdent(s.role)} IN DATABASE ${db} ${clause}` : `ALTER DATABASE ${db} ${clause}`);
    }
  }
  return { statements, refused };
}
