/**
 * Restore sessions: connection.ts's sessions (raw results, UTC, the permissive sql_mode) whose
 * statements are UTF-8 text (character_set_client utf8mb4), since the CREATE statements a backup
 * records are the server's UTF-8 text (SHOW CREATE …); the data itself goes in as bytes (LOAD
 * DATA … CHARACTER SET binary). The driver follows the session's character_set_client (the
 * server reports its changes), so statements are sent as plain strings: UTF-8 here, and, while
 * createUnder sets a routine's recorded client character set, that character set, as its author's
 * client sent it.
 */
import type mysql from 'mysql2/promise';
import { connect, mysqlError, type MysqlSettings } from './connection.js';

/** Opens a restore session on `database` ('' for none); `localInfile` allows LOAD DATA LOCAL from streams. */
export async function openSession(settings: MysqlSettings, database: string, localInfile = false): Promise<mysql.Connection> {
  const conn = await connect(settings, { database, localInfile });
  try {
    await conn.query(`SET SESSION character_set_client = utf8mb4, collation_connection = utf8mb4_general_ci`);
  } catch (err) {
    await conn.end().catch(() => undefined);
    throw mysqlError(err, settings, database);
  }
  return conn;
}

/** Runs one statement (UTF-8 text). */
export async function exec(conn: mysql.Connection, sql: string): Promise<void> {
  await conn.query(sql);
}

/**
 * Runs a query and returns its rows as arrays of strings (null for NULL): every value's bytes
 * read as UTF-8, which is what the catalog (names, SHOW CREATE …) sends with
 * character_set_results NULL. (The driver, set up for a binary character set, would decode
 * them as single bytes.)
 */
export async function select(conn: mysql.Connection, sql: string): Promise<(string | null)[][]> {
  const [rows] = await conn.query<mysql.RowDataPacket[]>({
    sql,
    rowsAsArray: true,
    typeCast: (field: { buffer(): Buffer | null }) => {
      const b = field.buffer();
      return b === null ? null : b.toString('utf8');
    },
  });
  return rows as (string | null)[][];
}

/** Closes a session, ignoring errors (it may be dead already). */
export async function close(conn: mysql.Connection | undefined): Promise<void> {
  if (conn === undefined) return;
  await conn.end().catch(() => conn.destroy());
}

/**
 * A UTF-8 string literal (names) for these sessions: `_utf8mb4 X'…'`. (connection.ts's
 * textLiteral writes no space after the introducer, which the server reads as a name.)
 */
export function textLit(value: string): string {
  return value === '' ? "''" : `_utf8mb4 X'${Buffer.from(value, 'utf8').toString('hex')}'`;
}
