/**
 * Restore sessions: connection.ts's sessions (raw results, UTC, the permissive sql_mode) whose
 * statements are UTF-8 text (character_set_client utf8mb4), since the CREATE statements a backup
 * records are the server's UTF-8 text (SHOW CREATE …); the data itself goes in as bytes (LOAD
 * DATA … CHARACTER SET binary). Every statement is sent through utf8Query: the driver, set up
 * for a binary character set, writes one byte per character.
 */
import type mysql from 'mysql2/promise';
import { connect, mysqlError, type MysqlSettings } from './connection.js';
import { utf8Query } from './definitions.js';

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
  await conn.query(utf8Query(sql));
}

/** Runs a query and returns its rows as arrays (text as strings, binary as Buffers). */
export async function select(conn: mysql.Connection, sql: string): Promise<unknown[][]> {
  const [rows] = await conn.query<mysql.RowDataPacket[]>({ sql: utf8Query(sql), rowsAsArray: true });
  return rows as unknown[][];
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
