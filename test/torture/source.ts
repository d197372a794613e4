/**
 * The SQLite source database the torture test backs up: created with a few tables, changed by
 * seeded random mutations, and captured as exact content (schema and every row of every table,
 * storage classes kept) for the model.
 */
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import Database from '../../src/sources/sqlite/driver.js';
import { dumpSqlite } from '../helpers/sqlite-compare.js';
import { Rng } from './random.js';

export interface Content {
  schema: string[];
  tables: Record<string, unknown[][]>;
}

/** Exact content of a SQLite file and its digest (the model stores digests, contents once each). */
export function capture(path: string): { hash: string; content: Content } {
  let content: Content;
  try {
    content = dumpSqlite(path);
  } catch (err) {
    // A restore killed inside its switch transaction (rollback-journal mode) leaves a hot journal:
    // the file reads as it was once any read-write open rolls it back, as sqlite3 or an
    // application would. A read-only open cannot, so let one read-write open do it first.
    if ((err as { code?: string }).code !== 'SQLITE_READONLY_ROLLBACK') throw err;
    new Database(path).close();
    content = dumpSqlite(path);
  }
  return { hash: contentHash(content), content };
}

export function contentHash(content: Content): string {
  return createHash('sha256').update(JSON.stringify(content)).digest('hex').slice(0, 16);
}

const q = (name: string): string => `"${name.replace(/"/g, '""')}"`;

/** Keep the source small enough that a check (which restores every backup) stays fast. */
const MAX_SOURCE_BYTES = 10 * 1024 * 1024;

export function createSource(path: string, rng: Rng): void {
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    // The issue's first reproduction: a tiny table prune used to lose.
    db.exec('CREATE TABLE settings(k TEXT PRIMARY KEY, v TEXT)');
    db.exec("INSERT INTO settings VALUES ('theme', 'dark'), ('lang', 'en')");
    db.exec('CREATE TABLE blobs(id INTEGER PRIMARY KEY, label TEXT, data BLOB NOT NULL)');
    db.prepare('INSERT INTO blobs(label, data) VALUES (?, ?)').run('seed', rng.bytes(300_000));
    createTable(db, 'n_1', rng);
  } finally {
    db.close();
  }
}

function tableNames(db: InstanceType<typeof Database>): string[] {
  return (db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
}

function createTable(db: InstanceType<typeof Database>, name: string, rng: Rng): void {
  if (name.startsWith('n_')) {
    db.exec(`CREATE TABLE ${q(name)}(id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER, price REAL, data BLOB)`);
  } else if (name.startsWith('kv_')) {
    db.exec(`CREATE TABLE ${q(name)}(k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID`);
  } else {
    db.exec(`CREATE TABLE ${q(name)}(a INTEGER, b TEXT)`);
    if (rng.chance(0.5)) db.exec(`CREATE INDEX ${q(`${name}_b`)} ON ${q(name)}(b)`);
  }
  insertRows(db, name, rng, rng.int(1, 40));
}

function text(rng: Rng): string {
  const words = ['alpha', 'beta', 'gamma', 'delta', 'ε', '日本', "o'brien", 'x'.repeat(rng.int(1, 60))];
  return `${rng.pick(words)}-${rng.int(0, 1_000_000)}`;
}

function insertRows(db: InstanceType<typeof Database>, name: string, rng: Rng, n: number): void {
  db.transaction(() => {
    for (let i = 0; i < n; i++) {
      if (name.startsWith('n_')) {
        const qty = rng.chance(0.1) ? null : rng.chance(0.1) ? BigInt('9007199254740993') * BigInt(rng.int(1, 100)) : rng.int(-1000, 1000);
        const price = rng.chance(0.05) ? -0 : rng.next() * 1000;
        const data = rng.chance(0.3) ? rng.bytes(rng.int(0, 2000)) : null;
        db.prepare(`INSERT INTO ${q(name)}(name, qty, price, data) VALUES (?, ?, ?, ?)`).run(text(rng), qty, price, data);
      } else if (name.startsWith('kv_')) {
        db.prepare(`INSERT OR REPLACE INTO ${q(name)}(k, v) VALUES (?, ?)`).run(text(rng), rng.chance(0.1) ? null : text(rng));
      } else if (name === 'blobs') {
        db.prepare('INSERT INTO blobs(label, data) VALUES (?, ?)').run(text(rng), rng.bytes(rng.int(100, 50_000)));
      } else if (name === 'settings') {
        db.prepare('INSERT OR REPLACE INTO settings(k, v) VALUES (?, ?)').run(text(rng), text(rng));
      } else {
        db.prepare(`INSERT INTO ${q(name)}(a, b) VALUES (?, ?)`).run(rng.int(-50, 50), text(rng));
      }
    }
  })();
}

function firstTextColumn(name: string): string {
  if (name.startsWith('n_')) return 'name';
  if (name.startsWith('kv_') || name === 'settings') return 'v';
  if (name === 'blobs') return 'label';
  return 'b';
}

/**
 * Applies 1–3 random changes chosen by `seed`: rows inserted, updated or deleted, a table
 * created or dropped, a big blob (0.3–2.5 MB, several chunks) added, or big blobs removed when
 * the file grows past 10 MB. What is changed depends on the tables present, so the same seed on
 * the same database always does the same.
 */
export function mutateSource(path: string, seed: number): string[] {
  const rng = new Rng(seed);
  const done: string[] = [];
  const db = new Database(path);
  try {
    db.pragma('busy_timeout = 10000');
    const changes = rng.int(1, 3);
    for (let c = 0; c < changes; c++) {
      const tables = tableNames(db);
      const big = statSync(path).size + (statSync(`${path}-wal`, { throwIfNoEntry: false })?.size ?? 0) > MAX_SOURCE_BYTES;
      const op = rng.weighted({ insert: 30, update: 20, delete: 14, create: 6, drop: tables.length > 2 ? 4 : 0, blob: big ? 0 : 7, shrink: big ? 30 : 0 });
      const table = tables.length > 0 ? rng.pick(tables) : undefined;
      switch (op) {
        case 'insert':
          if (!table) break;
          insertRows(db, table, rng, rng.int(1, 30));
          done.push(`insert into ${table}`);
          break;
        case 'update': {
          if (!table) break;
          const col = firstTextColumn(table);
          // WITHOUT ROWID tables have no rowid: update by key instead.
          if (table.startsWith('kv_') || table === 'settings') {
            const keys = (db.prepare(`SELECT k FROM ${q(table)} ORDER BY k`).all() as { k: string }[]).map((x) => x.k);
            for (let i = 0; i < Math.min(keys.length, rng.int(1, 5)); i++) db.prepare(`UPDATE ${q(table)} SET v = ? WHERE k = ?`).run(text(rng), rng.pick(keys));
          } else {
            const ids = (db.prepare(`SELECT rowid AS r FROM ${q(table)} ORDER BY rowid`).all() as { r: number }[]).map((x) => x.r);
            for (let i = 0; i < Math.min(ids.length, rng.int(1, 5)); i++) db.prepare(`UPDATE ${q(table)} SET ${q(col)} = ? WHERE rowid = ?`).run(text(rng), rng.pick(ids));
          }
          done.push(`update ${table}`);
          break;
        }
        case 'delete': {
          if (!table) break;
          if (table.startsWith('kv_') || table === 'settings') {
            const keys = (db.prepare(`SELECT k FROM ${q(table)} ORDER BY k`).all() as { k: string }[]).map((x) => x.k);
            if (keys.length > 0) db.prepare(`DELETE FROM ${q(table)} WHERE k = ?`).run(rng.pick(keys));
          } else {
            const ids = (db.prepare(`SELECT rowid AS r FROM ${q(table)} ORDER BY rowid`).all() as { r: number }[]).map((x) => x.r);
            for (let i = 0; i < Math.min(ids.length, rng.int(1, 4)); i++) db.prepare(`DELETE FROM ${q(table)} WHERE rowid = ?`).run(rng.pick(ids));
          }
          done.push(`delete from ${table}`);
          break;
        }
        case 'create': {
          const prefix = rng.pick(['n_', 'kv_', 'h_']);
          let i = 1;
          while (tables.includes(`${prefix}${i}`)) i++;
          createTable(db, `${prefix}${i}`, rng);
          done.push(`create ${prefix}${i}`);
          break;
        }
        case 'drop': {
          const droppable = tables.filter((t) => t !== 'settings');
          if (droppable.length === 0) break;
          const t = rng.pick(droppable);
          db.exec(`DROP TABLE ${q(t)}`);
          done.push(`drop ${t}`);
          break;
        }
        case 'blob':
          if (!tables.includes('blobs')) db.exec('CREATE TABLE blobs(id INTEGER PRIMARY KEY, label TEXT, data BLOB NOT NULL)');
          db.prepare('INSERT INTO blobs(label, data) VALUES (?, ?)').run(text(rng), rng.bytes(rng.int(300_000, 2_500_000)));
          done.push('big blob');
          break;
        case 'shrink':
          for (const t of tables) {
            if (t === 'blobs' || t.startsWith('n_')) db.exec(`DELETE FROM ${q(t)} WHERE length(data) > 10000`);
          }
          db.pragma('wal_checkpoint(TRUNCATE)');
          db.exec('VACUUM');
          done.push('shrink');
          break;
      }
    }
  } finally {
    db.close();
  }
  return done;
}
