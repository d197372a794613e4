/**
 * The engine contract suite (./contract.ts) for SQLite: each database file in a folder of its own
 * (restores stage next to their target, and the cases run at once).
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import Database from '../../src/sources/sqlite/driver.js';
import { dumpSqlite } from '../helpers/sqlite-compare.js';
import { describeEngineContract, type EngineFixture, type ObjectKind } from './contract.js';
import { SQLITE_EVERY_KIND } from '../helpers/sqlite-every-kind.js';

const dir = mkdtempSync(join(tmpdir(), 'cairn-ec-sqlite-'));
let n = 0;
const pathOf = (url: string): string => url.replace(/^sqlite:\/\//, '');
const q = (name: string): string => `"${name.replace(/"/g, '""')}"`;

function withDb<T>(url: string, fn: (db: InstanceType<typeof Database>) => T, readonly = false): T {
  const db = new Database(pathOf(url), { readonly, fileMustExist: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

const EVERY_KIND = SQLITE_EVERY_KIND;

function objects(url: string): Record<ObjectKind, string[]> {
  return withDb(url, (db) => {
    const schema = db.prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY name").all() as
      { type: string; name: string; tbl_name: string; sql: string | null }[];
    const of = (type: string): string[] => schema.filter((o) => o.type === type).map((o) => `${o.name}: ${o.sql}`);
    const constraints: string[] = [];
    for (const t of schema.filter((o) => o.type === 'table')) {
      for (const fk of db.prepare(`PRAGMA foreign_key_list(${q(t.name)})`).all()) constraints.push(`${t.name} foreign key ${JSON.stringify(fk)}`);
      for (const ix of db.prepare(`PRAGMA index_list(${q(t.name)})`).all() as { name: string; unique: number; origin: string }[]) {
        if (ix.origin === 'c') continue;
        const cols = (db.prepare(`PRAGMA index_info(${q(ix.name)})`).all() as { name: string }[]).map((c) => c.name);
        constraints.push(`${t.name} ${ix.origin === 'pk' ? 'primary key' : 'unique'} (${cols.join(', ')})`);
      }
      for (const c of db.prepare(`PRAGMA table_xinfo(${q(t.name)})`).all() as { name: string; notnull: number; dflt_value: string | null }[]) {
        if (c.notnull) constraints.push(`${t.name}.${c.name} not null`);
        if (c.dflt_value !== null) constraints.push(`${t.name}.${c.name} default ${c.dflt_value}`);
      }
      const checks = (t.sql ?? '').match(/\bCHECK\s*\([^)]*\)/gi) ?? [];
      for (const c of checks) constraints.push(`${t.name} ${c}`);
    }
    return {
      tables: of('table'),
      indexes: of('index'),
      views: of('view'),
      triggers: of('trigger'),
      sequences: [],
      constraints: constraints.sort(),
    };
  }, true);
}

const fixture: EngineFixture = {
  kind: 'sqlite',
  createDatabase() {
    const url = this.missingDatabase();
    const db = new Database(pathOf(url));
    // A database file with a header and no objects (a 0-byte file is not a database).
    db.exec('CREATE TABLE x (a); DROP TABLE x;');
    db.close();
    return url;
  },
  missingDatabase: () => {
    const folder = join(dir, `d${++n}`);
    mkdirSync(folder);
    return `sqlite://${join(folder, 'db.sqlite')}`;
  },
  exists: (url) => existsSync(pathOf(url)),
  exec: (url, sql) => withDb(url, (db) => void db.exec(sql)),
  query: async (url, sql) => withDb(url, (db) => db.prepare(sql).raw(true).all() as unknown[][], true),
  // Also what dumpSqlite leaves out: text bytes, virtual tables' contents, statistics, user_version.
  dump: (url) => ({
    ...dumpSqlite(pathOf(url)),
    ...withDb(
      url,
      (db) => {
        const has = (name: string): boolean => db.prepare('SELECT count(*) FROM sqlite_schema WHERE name = ?').pluck().get(name) !== 0;
        return {
          userVersion: db.pragma('user_version', { simple: true }),
          stat1: has('sqlite_stat1') ? db.prepare('SELECT tbl, idx, stat FROM sqlite_stat1 ORDER BY tbl, idx').raw(true).all() : [],
          untypedBytes: has('untyped') ? db.prepare('SELECT rowid, typeof(a), hex(a), typeof(b), hex(b) FROM untyped ORDER BY rowid').raw(true).all() : [],
          virtual: db.prepare("SELECT name, sql FROM sqlite_schema WHERE sql LIKE 'CREATE VIRTUAL%' ORDER BY name").raw(true).all(),
          notiz: has('notiz') ? db.prepare("SELECT rowid, text FROM notiz WHERE notiz MATCH 'milch OR klempner' ORDER BY rowid").raw(true).all() : [],
          boxen: has('boxen') ? db.prepare('SELECT id FROM boxen WHERE maxx >= 12 ORDER BY id').raw(true).all() : [],
        };
      },
      true,
    ),
  }),
  objects,
  tables: (url) =>
    withDb(url, (db) => db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").pluck().all() as string[], true),
  // Staging files sit next to the target, alone in its folder.
  leftovers: (url) => readdirSync(dirname(pathOf(url))).filter((f) => f !== 'db.sqlite'),
  collection: (table) => table,
  blobType: 'BLOB',
  blobLiteral: (bytes) => `X'${bytes.toString('hex')}'`,
  addEveryKind: (url) => withDb(url, (db) => void db.exec(EVERY_KIND)),
  unsupported: {
    'object kind: sequences':
      'SQLite has no sequence objects; AUTOINCREMENT counters live in the sqlite_sequence table, compared row by row by the round trips',
    'naming: ASCII case':
      'SQLite folds ASCII letters when it compares identifiers: "Users" and users name one table, so no database holds both (non-ASCII letters are not folded: see naming: non-ASCII case)',
  },
  cleanup: () => rmSync(dir, { recursive: true, force: true }),
};

describeEngineContract('SQLite', fixture);
