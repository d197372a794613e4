/**
 * Deterministic dump of a SQLite database for comparing a source with a restored copy.
 * - schema: "type name: sql" for every object in sqlite_schema with SQL (sorted), excluding
 *   virtual tables and their shadow tables;
 * - tables: every ordinary table's rows (sqlite_sequence included), ordered by rowid (the rowid
 *   is the first value of each row) or, for WITHOUT ROWID tables, by primary key. Values keep
 *   their storage class: "null", "i:<int>", "r:<real>" ("r:-0" kept), "t:<text>", "x:<hex>".
 */
import Database from '../../src/sources/sqlite/driver.js';

function norm(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'bigint') return `i:${v}`;
  if (typeof v === 'number') return Object.is(v, -0) ? 'r:-0' : `r:${v}`;
  if (typeof v === 'string') return `t:${v}`;
  if (Buffer.isBuffer(v)) return `x:${v.toString('hex')}`;
  return `?:${String(v)}`;
}

const q = (name: string): string => `"${name.replace(/"/g, '""')}"`;

export function dumpSqlite(path: string): { schema: string[]; tables: Record<string, unknown[][]> } {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    db.defaultSafeIntegers(true);
    const list = db.prepare('PRAGMA main.table_list').all() as { name: string; type: string; wr: bigint }[];
    const skip = new Set(list.filter((t) => t.type === 'virtual' || t.type === 'shadow').map((t) => t.name));
    const objects = db
      .prepare('SELECT type, name, tbl_name, sql FROM main.sqlite_schema WHERE sql IS NOT NULL')
      .all() as { type: string; name: string; tbl_name: string; sql: string }[];
    const schema = objects
      .filter((o) => !skip.has(o.name) && !skip.has(o.tbl_name))
      .map((o) => `${o.type} ${o.name}: ${o.sql}`)
      .sort();
    const tables: Record<string, unknown[][]> = {};
    for (const t of list) {
      if (t.type !== 'table' || skip.has(t.name) || t.name.startsWith('sqlite_schema') || t.name === 'sqlite_temp_schema') {
        continue;
      }
      if (/^sqlite_stat/.test(t.name)) continue;
      const cols = db.prepare(`PRAGMA main.table_xinfo(${q(t.name)})`).all() as { name: string; pk: bigint }[];
      let sql: string;
      if (t.wr !== 0n) {
        const pk = cols.filter((c) => c.pk > 0n).sort((a, b) => Number(a.pk - b.pk));
        sql = `SELECT * FROM main.${q(t.name)} ORDER BY ${pk.map((c) => q(c.name)).join(', ')}`;
      } else {
        const names = new Set(cols.map((c) => c.name.toLowerCase()));
        const rowid = ['rowid', '_rowid_', 'oid'].find((n) => !names.has(n));
        sql = rowid
          ? `SELECT ${rowid}, * FROM main.${q(t.name)} ORDER BY ${rowid}`
          : `SELECT * FROM main.${q(t.name)} ORDER BY ${cols.map((c) => q(c.name)).join(', ')}`;
      }
      if (t.name === 'sqlite_sequence') sql = 'SELECT name, seq FROM main.sqlite_sequence ORDER BY name';
      tables[t.name] = (db.prepare(sql).raw(true).all() as unknown[][]).map((r) => r.map(norm));
    }
    return { schema, tables };
  } finally {
    db.close();
  }
}
