/**
 * `(users and grants)` (SourceOptions.roles): the accounts and roles that hold a privilege in the
 * database (at database, table, column or routine level: mysql.db, tables_priv, columns_priv,
 * procs_priv), each as CREATE USER / CREATE ROLE and the SHOW GRANTS lines that concern this
 * database, plus the roles granted to it. Accounts with only global privileges (root, …) are
 * server-wide and not part of one database's backup. Password hashes only with
 * rolesWithPasswords. Needs SELECT on the mysql schema (a SourceError says so).
 */
import type mysql from 'mysql2/promise';
import { SourceError } from '../../core/errors.js';
import { ident, textLiteral } from './connection.js';
import type { MysqlAccount, MysqlGrantsDefinition } from './format.js';
import { queryText } from './sessions.js';

const QUOTED = "'(?:[^'\\\\]|\\\\.|'')*'";

/** A CREATE USER statement without its password hashes (IDENTIFIED BY PASSWORD / USING / AS). */
export function withoutPasswords(sql: string): string {
  return sql
    .replace(new RegExp(` IDENTIFIED BY PASSWORD ${QUOTED}`, 'g'), '')
    .replace(new RegExp(` USING ${QUOTED}`, 'g'), '')
    .replace(new RegExp(` AS (?:${QUOTED}|0x[0-9A-Fa-f]+)`, 'g'), '');
}

/** Whether a grant's database part (a LIKE pattern unless escaped, as in mysql.db) covers `db`. */
export function coversDatabase(pattern: string, db: string): boolean {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '\\' && i + 1 < pattern.length) re += escapeRe(pattern[++i] as string);
    else if (c === '%') re += '.*';
    else if (c === '_') re += '.';
    else re += escapeRe(c);
  }
  return new RegExp(`^${re}$`, 's').test(db);
}

const escapeRe = (c: string): string => c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
const unquote = (q: string): string => (q.startsWith('`') ? q.slice(1, -1).replace(/``/g, '`') : q);
const ON_TARGET = /\bON (?:(?:PROCEDURE|FUNCTION|PACKAGE(?: BODY)?) )?(`(?:[^`]|``)*`|\*)\.(`(?:[^`]|``)*`|\*)/;

/** The SHOW GRANTS lines about `db` (its objects and routines) and the roles granted. */
export function grantsForDatabase(lines: string[], db: string): string[] {
  return lines.filter((line) => {
    const on = ON_TARGET.exec(line);
    if (on === null) return /^GRANT\s+`/.test(line) && !/\bON\b/.test(line);
    const part = on[1] as string;
    return part !== '*' && coversDatabase(unquote(part), db);
  });
}

/** Reads `(users and grants)` in the current database (see the module comment). */
/**
 * `definition`: what the manifest holds (never a password hash); `passwordStatements`: the CREATE
 * USER statements with their hashes (withPasswords only), one line each, for the data stream.
 */
export async function readGrants(conn: mysql.Connection, withPasswords: boolean): Promise<{ definition: MysqlGrantsDefinition; passwordStatements: string[] }> {
  let accounts: (string | null)[][];
  try {
    accounts = await queryText(
      conn,
      `SELECT User, Host FROM mysql.db WHERE DATABASE() LIKE Db
       UNION SELECT User, Host FROM mysql.tables_priv WHERE Db = DATABASE()
       UNION SELECT User, Host FROM mysql.columns_priv WHERE Db = DATABASE()
       UNION SELECT User, Host FROM mysql.procs_priv WHERE Db = DATABASE()
       ORDER BY 1, 2`,
    );
  } catch (err) {
    throw new SourceError(`Cannot list the accounts with privileges in the database for --roles: ${(err as Error).message}. GRANT SELECT ON mysql.* TO the backup's user, or back up without --roles.`, { cause: err });
  }
  const db = (await queryText(conn, 'SELECT DATABASE()'))[0]?.[0] ?? '';
  const out: MysqlAccount[] = [];
  const passwordStatements: string[] = [];
  for (const [user, host] of accounts) {
    const u = user ?? '';
    const h = host ?? '';
    const account = `${ident(u)}@${ident(h)}`;
    const roleRow = (await queryText(conn, `SELECT is_role FROM mysql.user WHERE User = ${textLiteral(u)} AND Host = ${textLiteral(h)}`).catch(() => []))[0];
    const isRole = roleRow?.[0] === 'Y';
    const createSql = isRole ? `CREATE ROLE ${ident(u)}` : ((await queryText(conn, `SHOW CREATE USER ${account}`))[0]?.[0] ?? '');
    const grants = (await queryText(conn, `SHOW GRANTS FOR ${isRole ? ident(u) : account}`)).map((r) => r[0] ?? '');
    const stripped = withoutPasswords(createSql);
    // A statement with a hash goes to the data stream (one line: a line break is whitespace
    // outside a literal, and SHOW CREATE USER prints no literal holding one but a COMMENT).
    const inData = withPasswords && !isRole && stripped !== createSql;
    if (inData) passwordStatements.push(createSql.replace(/[\r\n]+/g, ' '));
    out.push({
      user: u,
      host: h,
      isRole,
      ...(inData ? { createInData: true } : { createSql: stripped }),
      grants: grantsForDatabase(grants, db).map(withoutPasswords),
      ...(!withPasswords && stripped !== createSql ? { passwordLeftOut: true } : {}),
    });
  }
  // The database's name: a restore into another database aims the grants at that one.
  return { definition: { accounts: out, withPasswords, database: db }, passwordStatements };
}
