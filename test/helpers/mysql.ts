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
 * The sql_mode of `sql(…, { ansi: true })`: identifiers in double quotes, backslashes in strings
 * as plain characters (the engine contract suite writes SQL that way), strict otherwise.
 */
export const ANSI_SQL_MODE = 'ANSI_QUOTES,NO_BACKSLASH_ESCAPES,STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION';

export interface SqlOptions {
  /** Run under ANSI_SQL_MODE (default: the server's sql_mode). */
  ansi?: boolean;
  /**
   * Integers as JavaScript numbers (BIGINT too: count(*) is one) rather than exact strings; DECIMAL
   * stays a string. Default false.
   */
  numbers?: boolean;
}

/**
 * Runs SQL (any number of statements) in a database ('' for none) and returns the last result's
 * rows as arrays: text as strings (utf8mb4), binary as Buffers, numbers as strings (exact) unless
 * `options.numbers`, dates as the server prints them. A connection of its own each time, async:
 * concurrent test cases are not blocked while it runs.
 */
export async function sql(database: string, text: string, options: SqlOptions = {}): Promise<unknown[][]> {
  const conn = await mysql.createConnection({
    host: MY_HOST,
    port: MY_PORT,
    user: MY_USER,
    ...(database ? { database } : {}),
    multipleStatements: true,
    charset: 'utf8mb4_general_ci',
    supportBigNumbers: !options.numbers,
    bigNumberStrings: !options.numbers,
    decimalNumbers: false,
    dateStrings: true,
    rowsAsArray: true,
  });
  try {
    if (options.ansi) await conn.query(`SET SESSION sql_mode = '${ANSI_SQL_MODE}'`);
    const [result, fields] = await conn.query({ sql: text, rowsAsArray: true });
    // Several statements give one entry per statement, in `fields` too (undefined for those
    // without rows); one statement gives its rows and its fields. (With rowsAsArray a row is an
    // array as well, so `result` alone cannot tell them apart.)
    const several = Array.isArray(fields) && fields.length > 0 && (fields as unknown[]).some((f) => f === undefined || Array.isArray(f));
    if (several) {
      // The last statement that returned rows.
      const sets = (result as unknown[]).filter((r, i) => Array.isArray(r) && Array.isArray((fields as unknown[])[i]));
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

/** Loads a .sql file with the mysql client into a database (compound-statement markers: clientScript). */
export function loadSqlFile(database: string, file: string): void {
  loadSqlText(database, clientScript(readFileSync(file, 'utf8')), file);
}

/**
 * A script written for a multi-statement query (no DELIMITER lines) → the same for the `mariadb`
 * client: between the lines `-- compound:begin` and `-- compound:end`, statements end with a
 * line `END;` (their bodies hold ';'), so the block is run with the delimiter `//`.
 */
export function clientScript(text: string): string {
  let inside = false;
  return text
    .split('\n')
    .map((line) => {
      if (line === '-- compound:begin') {
        inside = true;
        return 'DELIMITER //';
      }
      if (line === '-- compound:end') {
        inside = false;
        return 'DELIMITER ;';
      }
      return inside && line === 'END;' ? 'END//' : line;
    })
    .join('\n');
}

/** Runs SQL text through the `mariadb` client (as `mariadb db < file` would); `label` names it in errors. */
export function loadSqlText(database: string, text: string, label = 'SQL text'): void {
  const r = spawnSync('mariadb', ['-h', MY_HOST, '-P', String(MY_PORT), '-u', MY_USER, database], { input: text, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`mariadb < ${label} exited ${r.status}: ${r.stderr.trim()}`);
}

/** Creates an empty database (utf8mb4, the server's default collation for it unless given). */
export async function createDatabase(name: string, collation = 'utf8mb4_general_ci'): Promise<void> {
  await sql('', `CREATE DATABASE ${ident(name)} CHARACTER SET utf8mb4 COLLATE ${collation}`);
}

/**
 * Adds fixtures/mysql/every-kind.sql to a database, through mysql2 as one multi-statement query
 * (the file has no DELIMITER lines; it loads with the `mariadb` client as well).
 */
export async function loadEveryKind(database: string): Promise<void> {
  await sql(database, readFileSync(MYSQL_EVERY_KIND_SQL, 'utf8'));
}

/**
 * Loads the Chinook sample (fixtures/chinook/chinook-mysql.sql) as database `database`: the
 * script drops, creates and uses `Chinook`; those three lines are rewritten to the given name.
 */
export function loadChinook(database: string): void {
  const text = readFileSync(CHINOOK_MYSQL_SQL, 'utf8').replace(/^(DROP DATABASE IF EXISTS|CREATE DATABASE|USE) `Chinook`;$/gm, (_m, verb: string) => `${verb} ${ident(database)};`);
  if (text.includes('`Chinook`')) throw new Error('chinook-mysql.sql names `Chinook` somewhere else than its DROP/CREATE/USE lines: rewrite that too');
  loadSqlText('', text, CHINOOK_MYSQL_SQL);
}

/**
 * `mysqldump --no-data --routines --triggers --events` of a database, with the lines that name
 * the dump's host, version or time removed and the database's own name (where a view, routine or
 * ALTER DATABASE line names it) replaced by `<db>`: equal for two databases of one schema.
 * `ignoreTables` leaves tables out (e.g. a restore's leftovers, compared separately).
 */
export function schemaDump(database: string, ignoreTables: string[] = []): string {
  const r = spawnSync(
    'mysqldump',
    [
      '-h', MY_HOST, '-P', String(MY_PORT), '-u', MY_USER, '--no-data', '--routines', '--triggers', '--events', '--skip-dump-date', '--skip-comments',
      ...ignoreTables.map((t) => `--ignore-table=${database}.${t}`),
      database,
    ],
    { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 },
  );
  if (r.status !== 0) throw new Error(`mysqldump ${database} exited ${r.status}: ${r.stderr.trim()}`);
  return r.stdout
    .split('\n')
    .filter((l) => !/^-- (Host|Server version|Dump completed)/.test(l))
    .join('\n')
    .split(ident(database))
    .join('`<db>`');
}

/**
 * Every table's `CHECKSUM TABLE … EXTENDED` (system-versioned tables: history rows included), by
 * name, and every sequence's next value (`sequence <name>`). `ignoreTables` leaves tables out.
 */
export async function checksums(database: string, ignoreTables: string[] = []): Promise<Record<string, string>> {
  const skip = new Set(ignoreTables);
  const tables = (await column(database, `SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') ORDER BY 1`)).filter((t) => !skip.has(t));
  const out: Record<string, string> = {};
  if (tables.length > 0) {
    for (const row of await sql(database, `CHECKSUM TABLE ${tables.map(ident).join(', ')} EXTENDED`)) {
      // "db.table": the table's name is what follows the database's.
      out[String(row[0]).slice(database.length + 1)] = String(row[1]);
    }
  }
  const seqs = (await column(database, `SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'SEQUENCE' ORDER BY 1`)).filter((t) => !skip.has(t));
  for (const s of seqs) out[`sequence ${s}`] = String((await sql(database, `SELECT next_not_cached_value FROM ${ident(s)}`))[0]?.[0]);
  return out;
}

/** Schema dump and checksums: equal exactly when two databases are. */
export async function snapshotOf(database: string, ignoreTables: string[] = []): Promise<{ schema: string; checksums: Record<string, string> }> {
  return { schema: schemaDump(database, ignoreTables), checksums: await checksums(database, ignoreTables) };
}

/**
 * The databases a restore to `database` works in (staging `<first 40 chars>__cairn_…`, its `_old`
 * and `_log`), as the engine names them: what a killed or running restore may leave behind.
 */
export function stagingDatabases(database: string): Promise<string[]> {
  const pattern = `${database.slice(0, 40).replace(/[|%_]/g, (c) => `|${c}`)}|_|_cairn|_%`;
  return column('', `SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ${lit(pattern)} ESCAPE '|' ORDER BY 1`);
}

/** Drops scratch databases and whatever restores into them left behind (afterAll of the MySQL tests). */
export async function dropScratchDatabases(databases: Iterable<string>): Promise<void> {
  for (const db of databases) {
    for (const staging of await stagingDatabases(db)) await dropDatabase(staging);
    await dropDatabase(db);
  }
}
