/**
 * What a MySQL/MariaDB backup reads from the server's catalog (information_schema and SHOW
 * CREATE …), in the session's current database (the URL's): the objects, their columns, keys,
 * references, triggers, views in dependency order, sequences, routines and events. Names in SQL
 * are written with ident(); results are read as bytes and decoded as UTF-8 (the catalog's
 * character set), so names outside ASCII arrive as they are stored.
 */
import type mysql from 'mysql2/promise';
import { ident } from './connection.js';
import type { MysqlColumn, MysqlRoutine, MysqlTrigger } from './format.js';
import { queryRaw, queryText } from './sessions.js';

/** A table, view or sequence of the database, as information_schema.TABLES lists it. */
export interface CatalogObject {
  name: string;
  type: 'table' | 'view' | 'sequence';
  /** The storage engine (null for a view). */
  engine: string | null;
  /** Whether the engine is transactional (information_schema.ENGINES.TRANSACTIONS). */
  transactional: boolean;
  systemVersioned: boolean;
  /** DATA_LENGTH + the estimate of rows (TABLE_ROWS), when the server reports them. */
  dataBytes?: number;
  rows?: number;
  autoIncrement?: number;
  collation?: string;
}

/** Engines whose rows live elsewhere (another server, a remote file): only the definition is backed up. */
export const REMOTE_ENGINES = new Set(['FEDERATED', 'FEDERATEDX', 'CONNECT', 'SPIDER']);

const num = (v: string | null | undefined): number | undefined => (v === null || v === undefined || v === '' ? undefined : Number(v));

/**
 * Every table, view and sequence of the current database, by name: kind, engine, whether it is
 * transactional, collation. Cheap enough to run under the global lock (no statistics: see readSizes).
 */
export async function readObjects(conn: mysql.Connection): Promise<CatalogObject[]> {
  const rows = await queryText(
    conn,
    `SELECT t.TABLE_NAME, t.TABLE_TYPE, t.ENGINE, e.TRANSACTIONS, t.TABLE_COLLATION
       FROM information_schema.TABLES t LEFT JOIN information_schema.ENGINES e ON e.ENGINE = t.ENGINE
      WHERE t.TABLE_SCHEMA = DATABASE() AND t.TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED', 'VIEW', 'SEQUENCE')
      ORDER BY t.TABLE_NAME`,
  );
  return rows.map(([name, type, engine, transactions, collation]) => {
    const kind = type === 'VIEW' ? 'view' : type === 'SEQUENCE' ? 'sequence' : 'table';
    const o: CatalogObject = {
      name: name ?? '',
      type: kind,
      engine: engine ?? null,
      transactional: kind !== 'table' || transactions === 'YES',
      systemVersioned: type === 'SYSTEM VERSIONED',
    };
    if (collation) o.collation = collation;
    return o;
  });
}

/**
 * Adds each table's statistics (DATA_LENGTH, TABLE_ROWS estimate, AUTO_INCREMENT counter) to
 * `objects`: they open every table, so they are read after the global lock is released.
 */
export async function readSizes(conn: mysql.Connection, objects: CatalogObject[]): Promise<void> {
  const rows = await queryText(
    conn,
    `SELECT TABLE_NAME, DATA_LENGTH, TABLE_ROWS, AUTO_INCREMENT FROM information_schema.TABLES
      WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED')`,
  );
  const byName = new Map(objects.map((o) => [o.name, o]));
  for (const [name, dataLength, tableRows, autoIncrement] of rows) {
    const o = byName.get(name ?? '');
    if (o === undefined) continue;
    const bytes = num(dataLength);
    if (bytes !== undefined) o.dataBytes = bytes;
    const r = num(tableRows);
    if (r !== undefined) o.rows = r;
    const ai = num(autoIncrement);
    if (ai !== undefined) o.autoIncrement = ai;
  }
}

/** A column as information_schema.COLUMNS describes it, with what the data stream needs. */
export interface CatalogColumn extends MysqlColumn {
  /** GENERATION_EXPRESSION ROW START / ROW END: a system-versioned table's period column. */
  period?: 'start' | 'end';
}

/**
 * The columns of every table, by table name, in ordinal order. Generated columns are not stored
 * (the server computes them again), except a system-versioned table's ROW START / ROW END
 * columns, which hold history. FLOAT is read as its exact DOUBLE; BIT is loaded through a
 * variable (format.ts).
 */
export async function readColumns(conn: mysql.Connection): Promise<Map<string, CatalogColumn[]>> {
  const rows = await queryText(
    conn,
    `SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, EXTRA, GENERATION_EXPRESSION
       FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, ORDINAL_POSITION`,
  );
  const out = new Map<string, CatalogColumn[]>();
  for (const [table, name, dataType, type, extra, expression] of rows) {
    const t = table ?? '';
    const list = out.get(t) ?? [];
    out.set(t, list);
    list.push(describeColumn(name ?? '', (dataType ?? '').toLowerCase(), type ?? '', extra ?? '', expression ?? null));
  }
  return out;
}

/** One column's description (see readColumns). */
export function describeColumn(name: string, dataType: string, type: string, extra: string, expression: string | null): CatalogColumn {
  const upper = extra.toUpperCase();
  const period = expression === 'ROW START' ? 'start' : expression === 'ROW END' ? 'end' : undefined;
  const generated = /\b(VIRTUAL|STORED|PERSISTENT) GENERATED\b/.test(upper) && period === undefined;
  const c: CatalogColumn = { name, type, dataType, stored: !generated };
  if (dataType === 'float') c.readAs = `CAST(${ident(name)} AS DOUBLE)`;
  if (dataType === 'bit') c.loadAs = 'var';
  if (/\bINVISIBLE\b/.test(upper)) c.invisible = true;
  if (period !== undefined) c.period = period;
  return c;
}

/** Primary key columns of every table that has one, in key order. */
export async function readPrimaryKeys(conn: mysql.Connection): Promise<Map<string, string[]>> {
  const rows = await queryText(
    conn,
    `SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE
      WHERE TABLE_SCHEMA = DATABASE() AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY TABLE_NAME, ORDINAL_POSITION`,
  );
  const out = new Map<string, string[]>();
  for (const [table, column] of rows) {
    const list = out.get(table ?? '') ?? [];
    list.push(column ?? '');
    out.set(table ?? '', list);
  }
  return out;
}

/** The tables of this database each table's foreign keys reference (itself included when it does). */
export async function readReferences(conn: mysql.Connection): Promise<Map<string, string[]>> {
  const rows = await queryText(
    conn,
    `SELECT DISTINCT TABLE_NAME, REFERENCED_TABLE_NAME FROM information_schema.KEY_COLUMN_USAGE
      WHERE TABLE_SCHEMA = DATABASE() AND REFERENCED_TABLE_SCHEMA = DATABASE() AND REFERENCED_TABLE_NAME IS NOT NULL
      ORDER BY 1, 2`,
  );
  const out = new Map<string, string[]>();
  for (const [table, referenced] of rows) {
    const list = out.get(table ?? '') ?? [];
    list.push(referenced ?? '');
    out.set(table ?? '', list);
  }
  return out;
}

/** The second column of `SHOW CREATE …` (the statement), or undefined when the server hides it (privileges). */
async function showCreate(conn: mysql.Connection, what: string, name: string, column = 1): Promise<(string | null)[] | undefined> {
  const rows = await queryText(conn, `SHOW CREATE ${what} ${ident(name)}`);
  const row = rows[0];
  if (row === undefined || typeof row[column] !== 'string') return undefined;
  return row;
}

/** SHOW CREATE TABLE (AUTO_INCREMENT, partitions, CHECKs, FKs, FULLTEXT/SPATIAL, system versioning). */
export async function showCreateTable(conn: mysql.Connection, name: string): Promise<string> {
  const row = await showCreate(conn, 'TABLE', name);
  return row?.[1] ?? '';
}

/** SHOW CREATE VIEW, in the database (names unqualified), with the character set it was made under. */
export async function showCreateView(conn: mysql.Connection, name: string): Promise<{ createSql: string; charset?: string; collation?: string }> {
  const row = await showCreate(conn, 'VIEW', name);
  return { createSql: row?.[1] ?? '', ...(row?.[2] ? { charset: row[2] } : {}), ...(row?.[3] ? { collation: row[3] } : {}) };
}

/** SHOW CREATE SEQUENCE and its next_not_cached_value now. */
export async function readSequence(conn: mysql.Connection, name: string): Promise<{ createSql: string; nextValue: string }> {
  const row = await showCreate(conn, 'SEQUENCE', name);
  const value = await queryText(conn, `SELECT next_not_cached_value FROM ${ident(name)}`);
  return { createSql: row?.[1] ?? '', nextValue: value[0]?.[0] ?? '1' };
}

/**
 * Every trigger of the database by table, in the order the server fires them (timing, event,
 * ACTION_ORDER): creating them in this order gives the same order again.
 */
export async function readTriggers(conn: mysql.Connection): Promise<Map<string, MysqlTrigger[]>> {
  const rows = await queryText(
    conn,
    `SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()
      ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER`,
  );
  const out = new Map<string, MysqlTrigger[]>();
  for (const [name, table] of rows) {
    const row = await showCreate(conn, 'TRIGGER', name ?? '', 2);
    if (row === undefined) continue;
    const list = out.get(table ?? '') ?? [];
    list.push({
      name: name ?? '',
      createSql: row[2] ?? '',
      ...(row[1] !== null && row[1] !== undefined ? { sqlMode: row[1] } : {}),
      ...(row[3] ? { characterSetClient: row[3] } : {}),
      ...(row[4] ? { collationConnection: row[4] } : {}),
      ...(row[5] ? { databaseCollation: row[5] } : {}),
    });
    out.set(table ?? '', list);
  }
  return out;
}

/**
 * The tables and views each view reads, from its stored definition (information_schema.VIEWS,
 * where every name is written `db`.`name` or `db`.`name`.`column`): the names of this database
 * among `known`.
 */
export async function readViewReferences(conn: mysql.Connection, known: Set<string>): Promise<Map<string, string[]>> {
  const db = (await queryText(conn, 'SELECT DATABASE()'))[0]?.[0] ?? '';
  const rows = await queryText(conn, 'SELECT TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE()');
  const out = new Map<string, string[]>();
  for (const [view, definition] of rows) {
    const refs = new Set<string>();
    for (const chain of identifierChains(definition ?? '')) {
      if (chain.length >= 2 && chain[0] === db && known.has(chain[1] as string)) refs.add(chain[1] as string);
    }
    out.set(view ?? '', [...refs].sort());
  }
  return out;
}

/** The dotted chains of backtick-quoted identifiers in SQL text (`a`.`b`.`c` → [a, b, c]), outside string literals. */
export function identifierChains(sql: string): string[][] {
  const chains: string[][] = [];
  let chain: string[] = [];
  let i = 0;
  const flush = (): void => {
    if (chain.length > 0) chains.push(chain);
    chain = [];
  };
  while (i < sql.length) {
    const c = sql[i];
    if (c === '`') {
      let j = i + 1;
      let name = '';
      for (;;) {
        const k = sql.indexOf('`', j);
        if (k < 0) {
          j = sql.length;
          break;
        }
        name += sql.slice(j, k);
        if (sql[k + 1] === '`') {
          name += '`';
          j = k + 2;
          continue;
        }
        j = k + 1;
        break;
      }
      chain.push(name);
      i = j;
      if (sql[i] === '.') {
        i++;
        continue;
      }
      flush();
      continue;
    }
    flush();
    if (c === "'" || c === '"') {
      // Skip a string literal (doubled quotes and backslash escapes inside).
      let j = i + 1;
      while (j < sql.length) {
        if (sql[j] === '\\') j += 2;
        else if (sql[j] === c && sql[j + 1] === c) j += 2;
        else if (sql[j] === c) break;
        else j++;
      }
      i = j + 1;
      continue;
    }
    i++;
  }
  flush();
  return chains;
}

/**
 * Views in an order where each comes after the views it reads (a cycle cannot exist; names left
 * over, e.g. from a stale definition, keep their alphabetical order at the end).
 */
export function viewOrder(views: string[], refs: Map<string, string[]>): string[] {
  const set = new Set(views);
  const done = new Set<string>();
  const out: string[] = [];
  const visit = (v: string, path: Set<string>): void => {
    if (done.has(v) || path.has(v)) return;
    path.add(v);
    for (const r of refs.get(v) ?? []) if (set.has(r)) visit(r, path);
    path.delete(v);
    done.add(v);
    out.push(v);
  };
  for (const v of [...views].sort()) visit(v, new Set());
  return out;
}

/** The database's default character set and collation. */
export async function readDatabaseCharset(conn: mysql.Connection): Promise<{ charset: string; collation: string }> {
  const row = (await queryText(conn, 'SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = DATABASE()'))[0];
  return { charset: row?.[0] ?? 'utf8mb4', collation: row?.[1] ?? '' };
}

/**
 * Procedures, functions and events of the database (SHOW CREATE …, with the sql_mode, character
 * sets and time zone each was created under), and the names of those the user may not see
 * (SHOW CREATE returns no statement without the privilege) and of PACKAGEs (not captured).
 */
export async function readRoutines(conn: mysql.Connection): Promise<{ routines: MysqlRoutine[]; hidden: string[]; packages: string[]; mayMiss: boolean }> {
  const routines: MysqlRoutine[] = [];
  const hidden: string[] = [];
  const list = await queryText(conn, 'SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE() ORDER BY ROUTINE_TYPE, ROUTINE_NAME');
  const packages: string[] = [];
  for (const [type, name] of list) {
    if (type !== 'PROCEDURE' && type !== 'FUNCTION') {
      packages.push(`${(type ?? '').toLowerCase()} ${name ?? ''}`);
      continue;
    }
    const row = (await queryText(conn, `SHOW CREATE ${type} ${ident(name ?? '')}`))[0];
    if (row === undefined || typeof row[2] !== 'string') {
      hidden.push(`${type.toLowerCase()} ${name ?? ''}`);
      continue;
    }
    routines.push({
      kind: type,
      name: name ?? '',
      createSql: row[2],
      sqlMode: row[1] ?? '',
      characterSetClient: row[3] ?? '',
      collationConnection: row[4] ?? '',
      databaseCollation: row[5] ?? '',
    });
  }
  const events = await queryText(conn, 'SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE() ORDER BY EVENT_NAME');
  for (const [name] of events) {
    const row = (await queryText(conn, `SHOW CREATE EVENT ${ident(name ?? '')}`))[0];
    if (row === undefined || typeof row[3] !== 'string') {
      hidden.push(`event ${name ?? ''}`);
      continue;
    }
    routines.push({
      kind: 'EVENT',
      name: name ?? '',
      createSql: row[3],
      sqlMode: row[1] ?? '',
      timeZone: row[2] ?? 'SYSTEM',
      characterSetClient: row[4] ?? '',
      collationConnection: row[5] ?? '',
      databaseCollation: row[6] ?? '',
    });
  }
  return { routines, hidden, packages, mayMiss: !(await seesEveryRoutine(conn)) };
}

/**
 * Whether the session's user sees every routine of the database: information_schema.ROUTINES
 * lists only those it defines or may execute, so a routine of another definer is simply absent
 * (nothing says it exists). MariaDB: SELECT on mysql.proc shows them all; MySQL 8: the
 * SHOW_ROUTINE privilege or a global SELECT.
 */
async function seesEveryRoutine(conn: mysql.Connection): Promise<boolean> {
  try {
    await queryText(conn, 'SELECT 1 FROM mysql.proc LIMIT 0');
    return true;
  } catch (err) {
    if ((err as { code?: string }).code !== 'ER_NO_SUCH_TABLE') return false;
  }
  const grants = (await queryText(conn, 'SHOW GRANTS').catch(() => [])).map((r) => String(r[0] ?? ''));
  return grants.some((g) => /\bON \*\.\*/.test(g) && /\b(ALL PRIVILEGES|SELECT|SHOW_ROUTINE)\b/.test(g.split(' ON ')[0] ?? ''));
}

/** MIN and MAX of an integer column in the session's snapshot (null for an empty table). */
export async function readKeyRange(conn: mysql.Connection, table: string, column: string): Promise<{ min: bigint; max: bigint } | null> {
  const row = (await queryRaw(conn, `SELECT MIN(${ident(column)}), MAX(${ident(column)}) FROM ${ident(table)}`))[0];
  if (row === undefined || row[0] === null || row[1] === null) return null;
  return { min: BigInt((row[0] as Buffer).toString('latin1')), max: BigInt((row[1] as Buffer).toString('latin1')) };
}

/**
 * SHOW CREATE TABLE prints ENUM and SET members in utf8mb3, so a 4-byte character in a member
 * (an emoji) comes out as "?" although the server holds it (MariaDB 10.11; the column's values
 * keep it): a table created from that text would refuse the value. For every ENUM/SET column
 * whose printed members hold a "?", the real members are read back from the server — a
 * one-column temporary copy of the column's type, one row per member index — and written into
 * the statement in place of the printed list. Needs CREATE TEMPORARY TABLES; without it the
 * statement is left as printed (the restore then refuses the value rather than change it) and
 * the column is named in `unread`, for the backup's warning.
 */
export async function exactMemberLists(
  side: () => Promise<mysql.Connection>,
  table: string,
  createSql: string,
  columns: readonly MysqlColumn[],
): Promise<{ createSql: string; unread: string[] }> {
  let sql = createSql;
  const unread: string[] = [];
  for (const col of columns) {
    if (col.dataType !== 'enum' && col.dataType !== 'set') continue;
    const at = sql.indexOf(`\n  ${ident(col.name)} ${col.dataType}(`);
    if (at < 0) continue;
    const open = sql.indexOf('(', at + col.name.length + 4);
    const close = memberListEnd(sql, open);
    if (close < 0) continue;
    const printed = sql.slice(open + 1, close);
    if (!printed.includes('?')) continue;
    const count = splitMembers(printed).length;
    if (count === 0 || (col.dataType === 'set' && count > 64)) continue;
    const tmp = '`cairn_members`';
    try {
      // A session of its own: the snapshot's transactions are READ ONLY.
      const conn = await side();
      await conn.query(`CREATE TEMPORARY TABLE ${tmp} AS SELECT ${ident(col.name)} AS m FROM ${ident(table)} LIMIT 0`);
      try {
        const values = Array.from({ length: count }, (_, i) => (col.dataType === 'enum' ? String(i + 1) : (1n << BigInt(i)).toString()));
        await conn.query(`INSERT INTO ${tmp} (m) VALUES ${values.map((v) => `(${v})`).join(', ')}`);
        const rows = await queryRaw(conn, `SELECT m, m + 0 FROM ${tmp} ORDER BY m + 0`);
        const members = rows.map((r) => (r[0] ?? Buffer.alloc(0)).toString('utf8'));
        if (members.length !== count) {
          unread.push(col.name);
          continue;
        }
        const list = members.map((m) => `'${m.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`).join(',');
        sql = sql.slice(0, open + 1) + list + sql.slice(close);
      } finally {
        await conn.query(`DROP TEMPORARY TABLE IF EXISTS ${tmp}`);
      }
    } catch {
      // No CREATE TEMPORARY TABLES privilege: keep the printed list (see above).
      unread.push(col.name);
    }
  }
  return { createSql: sql, unread };
}

/** The index of the ")" closing a member list that opens at `open`, skipping quoted members; -1 if none. */
function memberListEnd(sql: string, open: number): number {
  let inQuote = false;
  for (let i = open + 1; i < sql.length; i++) {
    const c = sql[i];
    if (inQuote) {
      if (c === '\\') i++;
      else if (c === "'") {
        if (sql[i + 1] === "'") i++;
        else inQuote = false;
      }
    } else if (c === "'") inQuote = true;
    else if (c === ')') return i;
  }
  return -1;
}

/** The quoted members of a printed list `'a','b''c'` (as printed, quotes included). */
function splitMembers(list: string): string[] {
  const out: string[] = [];
  let start = -1;
  for (let i = 0; i < list.length; i++) {
    const c = list[i];
    if (start < 0) {
      if (c === "'") start = i;
    } else if (c === '\\') i++;
    else if (c === "'") {
      if (list[i + 1] === "'") i++;
      else {
        out.push(list.slice(start, i + 1));
        start = -1;
      }
    }
  }
  return out;
}
