/**
 * Restore items built from a live MySQL/MariaDB database the way the design says a backup
 * records them (src/sources/mysql/format.ts): SHOW CREATE …, information_schema columns, and
 * mysql-tsv-v1 bytes read in a connection.ts session with a typeCast returning the raw bytes and
 * encoded with escapeInto. For the target's tests, independent of the source being written.
 */
import type mysql from 'mysql2/promise';
import type { CollectionEntry } from '../../src/core/schemas.js';
import { connect, parseMysqlUrl } from '../../src/sources/mysql/connection.js';
import { referencedTables, tokenize } from '../../src/sources/mysql/definitions.js';
import {
  escapeInto,
  MYSQL_TSV,
  NULL_FIELD,
  ROUTINES_COLLECTION,
  ROUTINES_KIND,
  type MysqlColumn,
  type MysqlRoutine,
  type MysqlTableDefinition,
} from '../../src/sources/mysql/format.js';
import type { RestoreItem } from '../../src/sources/types.js';
import { ident, lit, myUrl } from '../helpers/mysql.js';

const str = (v: unknown): string => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v));

async function rows(conn: mysql.Connection, sql: string): Promise<unknown[][]> {
  const [r] = await conn.query<mysql.RowDataPacket[]>({
    sql,
    rowsAsArray: true,
    // The catalog's text is UTF-8 bytes; the driver (binary character set) would read them as latin1.
    typeCast: (field: { buffer(): Buffer | null }) => field.buffer()?.toString('utf8') ?? null,
  });
  return r as unknown[][];
}

/** One collection as a backup records it, with its data lines (segments: lines split in order). */
export interface BuiltItem {
  entry: CollectionEntry;
  lines: Buffer[];
}

function entry(name: string, kind: string, definition: object, lines: Buffer[] = [], dataFormat?: string, selectable?: boolean): BuiltItem {
  const bytes = lines.reduce((a, l) => a + l.length, 0);
  return {
    entry: { name, kind, definition: definition as Record<string, unknown>, ...(dataFormat ? { dataFormat } : {}), ...(selectable === false ? { selectable: false } : {}), rowCount: lines.length, logicalBytes: bytes, storedBytes: bytes, newBytes: 0, chunks: [] },
    lines,
  };
}

/** Reads every table, view, sequence and routine of `database` (in a restorable order). */
export async function readDatabase(database: string): Promise<BuiltItem[]> {
  const conn = await connect(parseMysqlUrl(myUrl(database), {}, {}, '/nonexistent'));
  // Statement text in UTF-8 (names are non-ASCII here); the driver follows the session's client
  // character set. Results stay the stored bytes (character_set_results NULL).
  await conn.query(`SET SESSION character_set_client = utf8mb4, collation_connection = utf8mb4_general_ci`);
  try {
    const out: BuiltItem[] = [];
    const objects = await rows(conn, `SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME`);
    const names = new Set(objects.map((o) => str(o[0])));
    for (const [n, type] of objects.map((o): [string, string] => [str(o[0]), str(o[1])])) {
      if (type !== 'BASE TABLE' && type !== 'SYSTEM VERSIONED') continue;
      const createSql = str((await rows(conn, `SHOW CREATE TABLE ${ident(n)}`))[0]?.[1]);
      const cols = await rows(conn, `SELECT COLUMN_NAME, COLUMN_TYPE, DATA_TYPE, EXTRA, GENERATION_EXPRESSION FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ${lit(n)} ORDER BY ORDINAL_POSITION`);
      const columns: MysqlColumn[] = cols.map((c) => {
        const dataType = str(c[2]).toLowerCase();
        const extra = str(c[3]);
        return {
          name: str(c[0]),
          type: str(c[1]),
          dataType,
          // System versioning's ROW START / ROW END are generated without an expression: stored.
          stored: !/GENERATED/i.test(extra) || /^ROW (START|END)$/.test(str(c[4])),
          ...(dataType === 'float' ? { readAs: `CAST(${ident(str(c[0]))} AS DOUBLE)` } : {}),
          ...(dataType === 'bit' ? { loadAs: 'var' as const } : {}),
          ...(/INVISIBLE/i.test(extra) ? { invisible: true } : {}),
        };
      });
      const triggers = [];
      for (const t of await rows(conn, `SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = ${lit(n)} ORDER BY ACTION_ORDER`)) {
        const r = (await rows(conn, `SHOW CREATE TRIGGER ${ident(str(t[0]))}`))[0] ?? [];
        triggers.push({ name: str(t[0]), createSql: str(r[2]), sqlMode: str(r[1]), characterSetClient: str(r[3]), collationConnection: str(r[4]) });
      }
      const pk = (await rows(conn, `SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ${lit(n)} AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION`)).map((r) => str(r[0]));
      const stored = columns.filter((c) => c.stored);
      const select = `SELECT ${stored.map((c) => c.readAs ?? ident(c.name)).join(', ')} FROM ${ident(n)}${type === 'SYSTEM VERSIONED' ? ' FOR SYSTEM_TIME ALL' : ''}${pk.length > 0 ? ` ORDER BY ${pk.map(ident).join(', ')}` : ''}`;
      const [data] = await conn.query<mysql.RowDataPacket[]>({
        sql: select,
        rowsAsArray: true,
        typeCast: (field: { buffer(): Buffer | null }) => field.buffer(),
      });
      const lines = (data as (Buffer | null)[][]).map((row) => {
        const out = Buffer.alloc(row.reduce((a, v) => a + 2 * (v?.length ?? 2) + 1, 1));
        let pos = 0;
        row.forEach((v, i) => {
          if (i > 0) out[pos++] = 0x09;
          pos = v === null ? pos + NULL_FIELD.copy(out, pos) : escapeInto(v, out, pos);
        });
        out[pos++] = 0x0a;
        return out.subarray(0, pos);
      });
      const ai = (await rows(conn, `SELECT AUTO_INCREMENT, TABLE_COLLATION, ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ${lit(n)}`))[0] ?? [];
      const def: MysqlTableDefinition & Record<string, unknown> = {
        createSql,
        engine: str(ai[2]),
        transactional: str(ai[2]) === 'InnoDB',
        columns,
        primaryKey: pk,
        ...(ai[0] !== null ? { autoIncrement: Number(str(ai[0])) } : {}),
        ...(type === 'SYSTEM VERSIONED' ? { systemVersioned: true } : {}),
        references: [...new Set(referencedTables(createSql))],
        triggers,
        collation: str(ai[1]),
      };
      out.push(entry(n, 'table', def, lines, MYSQL_TSV));
    }
    for (const [n] of objects.filter((o) => str(o[1]) === 'SEQUENCE').map((o) => [str(o[0])])) {
      const createSql = str((await rows(conn, `SHOW CREATE SEQUENCE ${ident(n as string)}`))[0]?.[1]);
      const nextValue = str((await rows(conn, `SELECT next_not_cached_value FROM ${ident(n as string)}`))[0]?.[0]);
      out.push(entry(n as string, 'sequence', { createSql, nextValue }));
    }
    // Views in dependency order: those reading only tables first (enough for these tests).
    const views = objects.filter((o) => str(o[1]) === 'VIEW').map((o) => str(o[0]));
    const viewItems: BuiltItem[] = [];
    for (const v of views) {
      const r = (await rows(conn, `SHOW CREATE VIEW ${ident(v)}`))[0] ?? [];
      const createSql = str(r[1]);
      const body = tokenize(createSql.slice(createSql.search(/ AS /i)));
      const references = [...new Set(body.filter((t) => (t.kind === 'id' || t.kind === 'word') && names.has(t.text) && t.text !== v).map((t) => t.text))];
      viewItems.push(entry(v, 'view', { createSql, references, charset: str(r[2]), collation: str(r[3]) }));
    }
    viewItems.sort((a, b) => (a.entry.definition.references as string[]).filter((x) => views.includes(x)).length - (b.entry.definition.references as string[]).filter((x) => views.includes(x)).length);
    out.push(...viewItems);
    const db = (await rows(conn, `SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = DATABASE()`))[0] ?? [];
    const routines: MysqlRoutine[] = [];
    for (const r of await rows(conn, `SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE() ORDER BY 1, 2`)) {
      const kind = str(r[0]) as 'PROCEDURE' | 'FUNCTION';
      const s = (await rows(conn, `SHOW CREATE ${kind} ${ident(str(r[1]))}`))[0] ?? [];
      routines.push({ kind, name: str(r[1]), createSql: str(s[2]), sqlMode: str(s[1]), characterSetClient: str(s[3]), collationConnection: str(s[4]), databaseCollation: str(s[5]) });
    }
    for (const r of await rows(conn, `SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE() ORDER BY 1`)) {
      const s = (await rows(conn, `SHOW CREATE EVENT ${ident(str(r[0]))}`))[0] ?? [];
      routines.push({ kind: 'EVENT', name: str(r[0]), createSql: str(s[3]), sqlMode: str(s[1]), characterSetClient: str(s[4]), collationConnection: str(s[5]), databaseCollation: str(s[6]), timeZone: str(s[2]) } as MysqlRoutine);
    }
    out.push(entry(ROUTINES_COLLECTION, ROUTINES_KIND, { charset: str(db[0]), collation: str(db[1]), routines }, [], undefined, false));
    return out;
  } finally {
    await conn.end();
  }
}

export interface ItemOptions {
  /** Source name → target name. */
  rename?: Record<string, string>;
  /** Only these (plus the database-wide collections). */
  only?: string[];
  /** Split each table's data into this many segments. */
  segments?: number;
  /** Wraps every data stream (e.g. to abort midway). */
  wrap?: (name: string, data: AsyncIterable<Uint8Array>) => AsyncIterable<Uint8Array>;
}

async function* chunksOf(lines: Buffer[]): AsyncGenerator<Uint8Array> {
  // A few lines per chunk, so that rows straddle nothing and streams have several chunks.
  for (let i = 0; i < lines.length; i += 3) yield Buffer.concat(lines.slice(i, i + 3));
}

/** RestoreItems of built collections. */
export function toItems(built: BuiltItem[], options: ItemOptions = {}): RestoreItem[] {
  return built
    .filter((b) => options.only === undefined || b.entry.selectable === false || options.only.includes(b.entry.name))
    .map((b) => {
      const n = options.segments !== undefined && b.entry.kind === 'table' && b.lines.length >= options.segments ? options.segments : 1;
      const per = Math.ceil(b.lines.length / n);
      const wrap = options.wrap ?? ((_: string, d: AsyncIterable<Uint8Array>) => d);
      return {
        entry: b.entry,
        targetName: options.rename?.[b.entry.name] ?? b.entry.name,
        ...(n > 1 ? { segments: n } : {}),
        data: (segment?: number) => wrap(b.entry.name, chunksOf(segment === undefined ? b.lines : b.lines.slice(segment * per, (segment + 1) * per))),
      };
    });
}
