// Shared pieces of the kill and damage campaigns (scripts/kill-campaign.mjs,
// scripts/damage-campaign.mjs): a seeded random generator, the built CLI as a child process,
// SQLite and PostgreSQL sources of a few MB, and content digests that compare a restored copy
// with what a backup must give back (row level, storage classes kept, like
// test/helpers/sqlite-compare.ts; PostgreSQL by count and md5 of the ordered rows per table,
// like test/helpers/postgres.ts). Everything runs the real `node bin/cairn.js` on dist/
// (`npm run build` first).
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../', import.meta.url));
export const CLI = path.join(ROOT, 'bin', 'cairn.js');

if (!fs.existsSync(path.join(ROOT, 'dist', 'cli', 'main.js'))) {
  console.error('dist/ is missing: run `npm run build` first.');
  process.exit(2);
}

const { default: Database } = await import('../dist/sources/sqlite/driver.js');
export { Database };

/** mulberry32: a small seeded generator, so that a campaign is repeated exactly by its seed. */
export function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n) => Math.floor(next() * n),
    pick: (arr) => arr[Math.floor(next() * arr.length)],
    bytes: (n) => {
      const b = Buffer.alloc(n);
      for (let i = 0; i < n; i++) b[i] = Math.floor(next() * 256);
      return b;
    },
  };
}

/** Parses `--name value` and `--flag` arguments (after `npm run x --`). */
export function parseArgs(argv, defaults) {
  const out = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const [k, inline] = a.slice(2).split('=', 2);
    const key = k.replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(key in defaults)) throw new Error(`unknown option --${k}`);
    if (typeof defaults[key] === 'boolean') out[key] = inline === undefined ? true : inline !== 'false';
    else {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`--${k} needs a value`);
      out[key] = typeof defaults[key] === 'number' ? Number(v) : v;
    }
  }
  return out;
}

/** Environment for every child: no inherited repository or server settings. */
export function childEnv() {
  const env = { ...process.env, PGHOST: '127.0.0.1', PGPORT: '5432', PGUSER: 'postgres', PGCONNECT_TIMEOUT: '10' };
  for (const k of ['CAIRN_REPO', 'CAIRN_SERVER', 'CAIRN_TOKEN', 'PGPASSWORD', 'PGDATABASE', 'PGSERVICE']) delete env[k];
  for (const k of Object.keys(env)) if (k.startsWith('BACKUP_')) delete env[k];
  return env;
}

/** Runs the CLI to completion: { code, stdout, stderr, ms }. */
export function cairn(args, { timeout = 300_000, cwd = ROOT } = {}) {
  const started = Date.now();
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd, env: childEnv(), encoding: 'utf8', timeout, maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw r.error;
  return { code: r.status ?? (r.signal ? 128 : -1), signal: r.signal, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - started };
}

/** Starts the CLI: { child, done: Promise<{code, signal, stdout, stderr}> }. */
export function cairnChild(args, { cwd = ROOT } = {}) {
  const child = spawn(process.execPath, [CLI, ...args], { cwd, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const done = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, done };
}

export function oneLine(s, max = 300) {
  const t = String(s).replace(/\s+/g, ' ').trim();
  return t.length > max ? `${t.slice(0, max)}…` : t;
}

export function sha(s) {
  return createHash('sha256').update(s).digest('hex');
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function processAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

// ---------------------------------------------------------------- SQLite

/**
 * A SQLite source of about `mb` MB: a rowid table with an INTEGER PRIMARY KEY, a table with a
 * hidden rowid, a WITHOUT ROWID table, a blob table (most of the bytes), a tiny key/value table
 * and an index. Returns the table names.
 */
export function makeSqliteSource(file, r, mb = 4) {
  fs.rmSync(file, { force: true });
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.exec(`
    CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, score REAL, born INTEGER);
    CREATE INDEX users_email ON users(email);
    CREATE TABLE orders(user_id INTEGER, amount REAL, note TEXT, at TEXT);
    CREATE TABLE tags(tag TEXT PRIMARY KEY, n INTEGER) WITHOUT ROWID;
    CREATE TABLE files(id INTEGER PRIMARY KEY, name TEXT, data BLOB);
    CREATE TABLE settings(k TEXT PRIMARY KEY, v TEXT);
  `);
  const words = ['alpha', 'beta', 'gamma', 'delta', 'kilo', 'lima', 'oscar', 'papa', 'sierra', 'tango'];
  const word = () => words[r.int(words.length)];
  const users = Math.max(200, Math.floor(mb * 2000));
  db.transaction(() => {
    const iu = db.prepare('INSERT INTO users(id, name, email, score, born) VALUES (?, ?, ?, ?, ?)');
    for (let i = 1; i <= users; i++) iu.run(i, `${word()} ${word()} ${i}`, r.next() < 0.1 ? null : `u${i}@${word()}.example`, r.next() * 1000, 1950 + r.int(60));
    const io = db.prepare('INSERT INTO orders(user_id, amount, note, at) VALUES (?, ?, ?, ?)');
    for (let i = 0; i < users * 2; i++) io.run(1 + r.int(users), Math.round(r.next() * 100000) / 100, r.next() < 0.5 ? null : word(), `2026-0${1 + r.int(9)}-1${r.int(10)}`);
    const it = db.prepare('INSERT INTO tags(tag, n) VALUES (?, ?)');
    for (let i = 0; i < 500; i++) it.run(`${word()}-${i}`, r.int(1000));
    // Blobs: random (incompressible) so that the stored size stays a few MB.
    const blobBytes = Math.floor(mb * 0.6 * 1024 * 1024);
    const ifl = db.prepare('INSERT INTO files(id, name, data) VALUES (?, ?, ?)');
    let n = 0;
    for (let i = 1; n < blobBytes; i++) {
      const size = 1000 + r.int(60_000);
      ifl.run(i, `file-${i}.bin`, r.bytes(size));
      n += size;
    }
    db.prepare("INSERT INTO settings VALUES ('theme', 'dark'), ('lang', 'en')").run();
  })();
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  return ['users', 'orders', 'tags', 'files', 'settings'];
}

/** A small random change (a nightly's worth): some rows inserted, updated, deleted; a blob or two. */
export function mutateSqlite(file, r) {
  const db = new Database(file);
  db.transaction(() => {
    const maxUser = Number(db.prepare('SELECT max(id) AS m FROM users').get().m ?? 0);
    const k = r.int(4);
    if (k === 0 || k === 3) {
      const iu = db.prepare('INSERT INTO users(name, email, score, born) VALUES (?, ?, ?, ?)');
      for (let i = 0; i < 20 + r.int(50); i++) iu.run(`new ${r.int(1e6)}`, null, r.next(), 2000);
      db.prepare('UPDATE users SET score = score + 1 WHERE id % 97 = ?').run(r.int(97));
    }
    if (k === 1 || k === 3) {
      const maxFile = Number(db.prepare('SELECT max(id) AS m FROM files').get().m ?? 0);
      db.prepare('INSERT INTO files(name, data) VALUES (?, ?)').run(`new-${r.int(1e6)}.bin`, r.bytes(2000 + r.int(80_000)));
      if (maxFile > 2) db.prepare('DELETE FROM files WHERE id = ?').run(1 + r.int(maxFile));
    }
    if (k === 2) {
      db.prepare("INSERT OR REPLACE INTO settings VALUES ('rev', ?)").run(String(r.int(1e9)));
      db.prepare('DELETE FROM orders WHERE rowid % 53 = ?').run(r.int(53));
      db.prepare('INSERT INTO orders(user_id, amount, note, at) VALUES (?, ?, ?, ?)').run(1 + r.int(Math.max(1, maxUser)), 1.5, 'n', '2026-11-30');
    }
    db.prepare('INSERT OR REPLACE INTO tags(tag, n) VALUES (?, ?)').run(`t-${r.int(100)}`, r.int(1000));
  })();
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
}

function norm(v) {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'bigint') return `i:${v}`;
  if (typeof v === 'number') return Object.is(v, -0) ? 'r:-0' : `r:${v}`;
  if (typeof v === 'string') return `t:${v}`;
  if (Buffer.isBuffer(v)) return `x:${v.toString('hex')}`;
  return `?:${String(v)}`;
}
const qi = (name) => `"${name.replace(/"/g, '""')}"`;

/**
 * Row-level digest of a SQLite database (the same rules as test/helpers/sqlite-compare.ts):
 * { schema: sha of the sorted schema, tables: { name: sha of its rows in rowid/primary key
 * order, storage classes kept } }. Opened read-write, so that a hot journal left by a killed
 * writer is rolled back as any later user would see it. undefined when the file is absent.
 */
export function sqliteDigest(file) {
  if (!fs.existsSync(file)) return undefined;
  const db = new Database(file, { fileMustExist: true, timeout: 5000 });
  try {
    db.defaultSafeIntegers(true);
    const list = db.prepare('PRAGMA main.table_list').all();
    const skip = new Set(list.filter((t) => t.type === 'virtual' || t.type === 'shadow').map((t) => t.name));
    const objects = db.prepare('SELECT type, name, tbl_name, sql FROM main.sqlite_schema WHERE sql IS NOT NULL').all();
    const schemaLines = objects.filter((o) => !skip.has(o.name) && !skip.has(o.tbl_name)).map((o) => `${o.type} ${o.name}: ${o.sql}`).sort();
    const tables = {};
    for (const t of list) {
      if (t.type !== 'table' || skip.has(t.name) || t.name.startsWith('sqlite_schema') || t.name === 'sqlite_temp_schema') continue;
      if (/^sqlite_stat/.test(t.name)) continue;
      const cols = db.prepare(`PRAGMA main.table_xinfo(${qi(t.name)})`).all();
      let sql;
      if (t.wr !== 0n) {
        const pk = cols.filter((c) => c.pk > 0n).sort((a, b) => Number(a.pk - b.pk));
        sql = `SELECT * FROM main.${qi(t.name)} ORDER BY ${pk.map((c) => qi(c.name)).join(', ')}`;
      } else {
        const names = new Set(cols.map((c) => c.name.toLowerCase()));
        const rowid = ['rowid', '_rowid_', 'oid'].find((n) => !names.has(n));
        sql = rowid ? `SELECT ${rowid}, * FROM main.${qi(t.name)} ORDER BY ${rowid}` : `SELECT * FROM main.${qi(t.name)} ORDER BY ${cols.map((c) => qi(c.name)).join(', ')}`;
      }
      if (t.name === 'sqlite_sequence') sql = 'SELECT name, seq FROM main.sqlite_sequence ORDER BY name';
      const h = createHash('sha256');
      for (const row of db.prepare(sql).raw(true).iterate()) {
        for (const v of row) {
          // Blobs hashed as bytes (with their length), everything else by its tagged text form.
          if (Buffer.isBuffer(v)) h.update(`x${v.length}:`).update(v);
          else h.update(norm(v));
          h.update('\x1f');
        }
        h.update('\n');
      }
      tables[t.name] = h.digest('hex');
    }
    return { schema: sha(schemaLines.join('\n')), tables };
  } finally {
    db.close();
  }
}

/** Whether two digests are equal; with `only`, just those tables (and not the schema). */
export function sameDigest(a, b, only) {
  if (!a || !b) return false;
  if (only) return only.every((t) => a.tables[t] !== undefined && a.tables[t] === b.tables[t]);
  const ka = Object.keys(a.tables).sort();
  const kb = Object.keys(b.tables).sort();
  return a.schema === b.schema && JSON.stringify(ka) === JSON.stringify(kb) && ka.every((k) => a.tables[k] === b.tables[k]);
}

/** Tables whose digests differ between a and b (present in one only included); ['(schema)'] when schemas differ. */
export function diffTables(a, b) {
  if (!a || !b) return [a ? 'target absent' : 'target unreadable'];
  const names = [...new Set([...Object.keys(a.tables), ...Object.keys(b.tables)])].sort();
  return [...(a.schema !== b.schema ? ['(schema)'] : []), ...names.filter((n) => a.tables[n] !== b.tables[n])];
}

/** Names of SQLite restore staging files (`.<name>.cairn-restore-*`) in a folder. */
export function sqliteStagingFiles(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((f) => /^\..*\.cairn-restore-/.test(f));
}

// ---------------------------------------------------------------- PostgreSQL

export function pgUrl(db) {
  return `postgres://postgres@127.0.0.1:5432/${encodeURIComponent(db)}`;
}

/** psql, unaligned tuples-only output; throws on error. */
export function psql(db, sql) {
  const r = spawnSync('psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', db, '-f', '-'], {
    env: childEnv(),
    input: sql,
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    timeout: 120_000,
  });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`psql -d ${db} exited ${r.status}: ${r.stderr.trim()}`);
  return r.stdout;
}

export const ident = (s) => `"${s.replace(/"/g, '""')}"`;
export const lit = (s) => `'${s.replace(/'/g, "''")}'`;

export function pgAvailable() {
  return spawnSync('pg_isready', ['-h', '127.0.0.1', '-p', '5432'], { stdio: 'ignore' }).status === 0;
}

export function pgDatabases(pattern) {
  return psql('postgres', `SELECT datname FROM pg_database WHERE datname LIKE ${lit(pattern)} ORDER BY 1;`).split('\n').filter(Boolean);
}

export function pgDrop(db) {
  psql('postgres', `DROP DATABASE IF EXISTS ${ident(db)} WITH (FORCE);`);
}

/** A PostgreSQL source of about `mb` MB in a new database (several tables, a bytea table, a sequence, an FK). */
export function makePgSource(db, r, mb = 4) {
  psql('postgres', `CREATE DATABASE ${ident(db)};`);
  const users = Math.max(200, Math.floor(mb * 2000));
  const seed = r.next();
  psql(
    db,
    `SELECT setseed(${seed.toFixed(6)});
     CREATE TABLE users(id serial PRIMARY KEY, name text NOT NULL, email text, score double precision, born int);
     CREATE INDEX users_email ON users(email);
     CREATE TABLE orders(id bigserial PRIMARY KEY, user_id int REFERENCES users(id), amount numeric(10,2), note text, at date);
     CREATE TABLE tags(tag text PRIMARY KEY, n int);
     CREATE TABLE files(id serial PRIMARY KEY, name text, data bytea);
     CREATE TABLE settings(k text PRIMARY KEY, v text);
     INSERT INTO users(name, email, score, born)
       SELECT 'user ' || g, CASE WHEN random() < 0.1 THEN NULL ELSE 'u' || g || '@x.example' END, random() * 1000, 1950 + (random() * 60)::int
       FROM generate_series(1, ${users}) g;
     INSERT INTO orders(user_id, amount, note, at)
       SELECT 1 + (random() * (${users} - 1))::int, round((random() * 1000)::numeric, 2), CASE WHEN random() < 0.5 THEN NULL ELSE md5(g::text) END, DATE '2026-01-01' + (g % 300)
       FROM generate_series(1, ${users * 2}) g;
     INSERT INTO tags SELECT 'tag-' || g, g % 1000 FROM generate_series(1, 500) g;
     INSERT INTO files(name, data)
       SELECT 'file-' || g || '.bin', decode(string_agg(md5(g::text || '-' || s::text || random()::text), ''), 'hex')
       FROM generate_series(1, ${Math.max(10, Math.floor(mb * 10))}) g, generate_series(1, 3500) s GROUP BY g;
     INSERT INTO settings VALUES ('theme', 'dark'), ('lang', 'en');`,
  );
  return ['public.users', 'public.orders', 'public.tags', 'public.files', 'public.settings'];
}

/** A small random change to the PostgreSQL source. */
export function mutatePg(db, r) {
  const k = r.int(3);
  const sql = [
    `INSERT INTO users(name, score, born) SELECT 'new ' || g, random(), 2000 FROM generate_series(1, ${10 + r.int(50)}) g; UPDATE users SET score = score + 1 WHERE id % 97 = ${r.int(97)};`,
    `INSERT INTO files(name, data) VALUES ('new-${r.int(1e6)}', decode(repeat(md5('${r.int(1e9)}'), ${100 + r.int(2000)}), 'hex')); DELETE FROM files WHERE id = (SELECT min(id) FROM files);`,
    `INSERT INTO settings VALUES ('rev', '${r.int(1e9)}') ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v; DELETE FROM orders WHERE id % 53 = ${r.int(53)};`,
  ][k];
  psql(db, `${sql} INSERT INTO tags VALUES ('t-${r.int(100)}', ${r.int(1000)}) ON CONFLICT (tag) DO UPDATE SET n = EXCLUDED.n;`);
}

const SEP = '\x1f';

/**
 * { tables: { "schema.table": "count:md5 of rows ordered by their text form" } } for every
 * ordinary table of `db`, or undefined when the database does not exist. Restore staging
 * tables (`…__cairn_<hex>`) are left out: they are leftovers, counted as such, not content.
 */
export function pgDigest(db) {
  if (pgDatabases(db.replace(/[_%\\]/g, (c) => `\\${c}`)).length === 0) return undefined;
  const rels = psql(
    db,
    `SELECT n.nspname || ${lit(SEP)} || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
        AND c.relname NOT LIKE '%\\_\\_cairn\\_%' ORDER BY 1;`,
  )
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(SEP));
  const tables = {};
  if (rels.length > 0) {
    const selects = rels.map(
      ([s, n]) =>
        `SELECT ${lit(`${s}.${n}`)} || ${lit(SEP)} || count(*) || ':' || coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '') FROM ${ident(s)}.${ident(n)} t`,
    );
    for (const line of psql(db, `${selects.join('\nUNION ALL\n')};`).split('\n').filter(Boolean)) {
      const [k, v] = line.split(SEP);
      tables[k] = v;
    }
  }
  return { schema: '', tables };
}

/** Staging databases of restores into `target…` (`<target>_cairn_<8 hex>`). */
export function pgStagingDatabases(prefix) {
  return pgDatabases(`${prefix.replace(/[_%\\]/g, (c) => `\\${c}`)}%\\_cairn\\_%`);
}

/**
 * Staging tables and sequences (`…__cairn_<6 hex>`) left in a database: names (quoted
 * `schema.name`), or with `withKind` { name, kind } (kind: pg_class.relkind).
 */
export function pgStagingRelations(db, withKind = false) {
  const rows = psql(
    db,
    `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) || ${lit(SEP)} || c.relkind::text
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relname LIKE '%\\_\\_cairn\\_%' AND c.relkind IN ('r', 'p', 'S') ORDER BY 1;`,
  )
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [name, kind] = l.split(SEP);
      return { name, kind };
    });
  return withKind ? rows : rows.map((x) => x.name);
}

// ---------------------------------------------------------------- repository

/** Every file under dir (relative paths, including dot-files). */
export function listFiles(dir, prefix = '') {
  const out = [];
  if (!fs.existsSync(dir)) return out;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...listFiles(path.join(dir, e.name), rel));
    else out.push(rel);
  }
  return out;
}

/** Repository temporary files (`.<name>.tmp-*` of an interrupted put). */
export function repoTempFiles(repo) {
  return listFiles(repo).filter((f) => /(^|\/)\.[^/]*\.tmp-/.test(f));
}

/** The lock documents in a repository: [{ key, pid, hostname, exclusive } | { key, unreadable }]. */
export async function readLocks(repo) {
  const dir = path.join(repo, 'locks');
  if (!fs.existsSync(dir)) return [];
  const { decompressDocument } = await loadDocReader();
  const out = [];
  for (const f of fs.readdirSync(dir)) {
    if (f.startsWith('.')) continue;
    try {
      const doc = decompressDocument(fs.readFileSync(path.join(dir, f)));
      out.push({ key: `locks/${f}`, pid: doc.pid, hostname: doc.hostname, exclusive: doc.exclusive });
    } catch {
      out.push({ key: `locks/${f}`, unreadable: true });
    }
  }
  return out;
}

let docReader;
/** Reads zstd-compressed (or plain) JSON documents as the repository stores them. */
async function loadDocReader() {
  if (docReader) return docReader;
  const zstd = await import('zstd-napi');
  const decompressDocument = (buf) => {
    const text = buf[0] === 0x7b ? buf.toString('utf8') : Buffer.from(zstd.decompress(buf)).toString('utf8');
    return JSON.parse(text);
  };
  docReader = { decompressDocument };
  return docReader;
}

export async function readDocument(file) {
  const { decompressDocument } = await loadDocReader();
  return decompressDocument(fs.readFileSync(file));
}

export function tmpDir(prefix) {
  const base = process.env.CAIRN_CAMPAIGN_TMP || '/tmp';
  const dir = path.join(base, `${prefix}-${randomBytes(4).toString('hex')}`);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** Prints rows as an aligned text table. */
export function printTable(header, rows, write = (s) => process.stderr.write(`${s}\n`)) {
  const all = [header, ...rows].map((r) => r.map(String));
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const line = (r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  write(line(all[0]));
  write(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of all.slice(1)) write(line(r));
}

export function gitCommit() {
  const r = spawnSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' });
  const dirty = spawnSync('git', ['-C', ROOT, 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' }).stdout.trim();
  return r.status === 0 ? `${r.stdout.trim()}${dirty ? '+dirty' : ''}` : 'unknown';
}
