// Compares two SQLite files: schema (sqlite_schema) and every table's rows, rowid included.
// Prints a one-line verdict; exits 1 when they differ.
import Database from '../dist/sources/sqlite/driver.js';

function dump(path) {
  const db = new Database(path, { readonly: true });
  db.defaultSafeIntegers(true);
  const schema = db.prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name").raw().all();
  const tables = {};
  let rows = 0;
  for (const [type, name] of schema) {
    if (type !== 'table') continue;
    const q = `"${name.replaceAll('"', '""')}"`;
    let stmt;
    try {
      stmt = db.prepare(`SELECT rowid, * FROM ${q} ORDER BY rowid`);
    } catch {
      stmt = db.prepare(`SELECT * FROM ${q} ORDER BY 1`); // WITHOUT ROWID
    }
    tables[name] = stmt.raw().all().map((r) => JSON.stringify(r, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v)));
    rows += tables[name].length;
  }
  db.close();
  return { schema: JSON.stringify(schema), tables, rows };
}

const [a, b] = process.argv.slice(2);
if (!a || !b) {
  console.error('usage: node scripts/compare-sqlite.mjs <a.db> <b.db>');
  process.exit(2);
}
const x = dump(a);
const y = dump(b);
const differing = Object.keys({ ...x.tables, ...y.tables }).filter((t) => JSON.stringify(x.tables[t]) !== JSON.stringify(y.tables[t]));
if (x.schema !== y.schema || differing.length > 0) {
  console.log(`DIFFERENT: ${x.schema !== y.schema ? 'schema differs; ' : ''}${differing.length} table(s) differ: ${differing.join(', ')}`);
  process.exit(1);
}
console.log(`IDENTICAL: same schema, ${Object.keys(x.tables).length} tables, ${x.rows.toLocaleString('en-US')} rows, every row equal`);
