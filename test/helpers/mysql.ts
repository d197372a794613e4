/**
 * Test helpers for the MySQL/MariaDB integration tests: scratch databases on the local server
 * (127.0.0.1:3306, root, no password), SQL through mysql2 (async: cases run at once), and
 * comparisons of two databases by schema (`mysqldump --no-data --routines --triggers --events`,
 * AUTO_INCREMENT included) and by content (`CHECKSUM TABLE … EXTENDED` per table, sequence states).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';

export const MY_HOST = '127.0.0.1';
export const MY_PORT = 3306;
export const MY_USER = 'root';

export const CHINOOK_MYSQL_SQL = fileURLToPath(new URL('../../fixtures/chinook/chinook-mysql.sql', import.meta.url));
export const MYSQL_EVERY_KIND_SQL = fileURLToPath(new URL('../../fixtures/mysql/every-kind.sql', import.meta.url));

/** The URL cairn takes for a database of the local server. */
export function myUrl(database: string, user = MY_USER, password?: string): string {
  return `mysql://${encodeURIComponent(user)}${password !== undefined ? `:${encodeURIComponent(password)}` : ''}@${MY_HOST}:${MY_PORT}/${encodeURIComponent(database)}`;
}

/** Starts the local MariaDB when it does not answer (the command the machine's notes give). */
export function ensureMysql(): void {
  const ready = (): boolean => spawnSync('mariadb-admin', ['-h', MY_HOST, '-P', String(MY_PORT), '-u', MY_USER, 'ping'], { stdio: 'ignore' }).status === 0;
  if (ready()) return;
  spawnSync('start-stop-daemon', ['--start', '--oknodo', '--background', '--exec', '/usr/sbin/mariadbd'], { stdio: 'ignore' });
  for (let i = 0; i < 100 && !ready(); i++) spawnSync('sleep', ['0.2']);
  if (!ready()) throw new Error('MariaDB at 127.0.0.1:3306 is not running and could not be started (start-stop-daemon --start --exec /usr/sbin/mariadbd).');
}

export const ident = (name: string): string => '`' + name.replace(/`/g, '``') + '`';
export const lit = (s: string): string => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;

/**
 * Runs SQL (any number of statements) in a database ('' for none) and returns the last result's
 * rows as arrays: text as strings (utf8mb4), binary as Buffers, numbers as strings (exact).
 */
export async function sql(database: string, text: string): Promise<unknown[][]> {
  const conn = await mysql.createConnection({
    host: MY_HOST,
    port: MY_PORT,
    user: MY_USER,
    ...(database ? { database } : {}),
    multipleStatements: true,
    charset: 'utf8mb4_general_ci',
    supportBigNumbers: true,
    bigNumberStrings: true,
    dateStrings: true,
    rowsAsArray: true,
  });
  try {
    const [result] = await conn.query({ sql: text, rowsAsArray: true });
    if (Array.isArray(result) && result.length > 0 && Array.isArray(result[0])) {
      // Several statements: the last one that returned rows.
      const sets = (result as unknown[]).filter((r) => Array.isArray(r));
      return (sets.at(-1) ?? []) as unknown[][];
    }
    return Array.isArray(result) ? (result as unknown[][]) : [];
  } finally {
    await conn.end();
  }
}

export async function column(database: string, text: string): Promise<string[]> {
  return (await sql(database, text)).map((r) => String(r[0]));
}

export async function databaseExists(name: string): Promise<boolean> {
  return (await sql('', `SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ${lit(name)}`)).length > 0;
}

export async function dropDatabase(name: string): Promise<void> {
  await sql('', `DROP DATABASE IF EXISTS ${ident(name)}`);
}

/** Loads a .sql file with the mysql client into a database. */
export function loadSqlFile(database: string, file: string): void {
  const r = spawnSync('mariadb', ['-h', MY_HOST, '-P', String(MY_PORT), '-u', MY_USER, database], { input: readFileSync(file, 'utf8'), encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`mariadb < ${file} exited ${r.status}: ${r.stderr.trim()}`);
}

/**
 * `mysqldump --no-data --routines --triggers --events` of a database, with the lines that name
 * the database or the dump's time removed: equal for two databases of one schema.
 */
export function schemaDump(database: string): string {
  const r = spawnSync(
    'mysqldump',
    ['-h', MY_HOST, '-P', String(MY_PORT), '-u', MY_USER, '--no-data', '--routines', '--triggers', '--events', '--skip-dump-date', '--skip-comments', database],
    { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 },
  );
  if (r.status !== 0) throw new Error(`mysqldump ${database} exited ${r.status}: ${r.stderr.trim()}`);
  return r.stdout
    .split('\n')
    .filter((l) => !/^-- (Host|Server version|Dump completed)/.test(l))
    .join('\n');
}

/** Every table's `CHECKSUM TABLE … EXTENDED`, by name, and every sequence's next value. */
export async function checksums(database: string): Promise<Record<string, string>> {
  const tables = await column(database, `SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1`);
  const out: Record<string, string> = {};
  for (const t of tables) {
    const rows = await sql(database, `CHECKSUM TABLE ${ident(t)} EXTENDED`);
    out[t] = String(rows[0]?.[1]);
  }
  const seqs = await column(database, `SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'SEQUENCE' ORDER BY 1`);
  for (const s of seqs) out[`sequence ${s}`] = String((await sql(database, `SELECT next_not_cached_value FROM ${ident(s)}`))[0]?.[0]);
  return out;
}

/** Schema dump and checksums: equal exactly when two databases are. */
export async function snapshotOf(database: string): Promise<{ schema: string; checksums: Record<string, string> }> {
  return { schema: schemaDump(database), checksums: await checksums(database) };
}
