// Peers of cairn that are not database dump tools (issue 22), for bench/run.js:
//   - restic: a local restic repository, fed `pg_dump -Fc | restic backup --stdin` for PostgreSQL
//     (set b) and the SQLite file itself (set s);
//   - set s: a SQLite file (~--scale-mib MiB), cairn against `sqlite3 .backup` + `zstd -3`,
//     `sqlite3 VACUUM INTO` + `zstd -3` and restic.
// The restic password is given the way restic reads it from a script: RESTIC_PASSWORD in the
// environment, never on a command line (it would show in process lists).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { MiB, dirBytes, ensureDebianPackage, log, pipeline, rm } from './measure.mjs';

const require = createRequire(import.meta.url);

/** The environment of every restic command: the password, and its cache inside the work dir. */
export const resticEnv = (work) => ({ RESTIC_PASSWORD: 'bench password restic', RESTIC_CACHE_DIR: path.join(work, 'restic-cache') });

/** restic present (Debian's package installed when missing), else why not. */
export const resticProblem = () => ensureDebianPackage('restic', ['restic']);

/** The summary line of `restic backup --json` (message_type "summary"), or {}. */
function resticSummary(stdout) {
  for (const line of String(stdout).trim().split('\n').reverse()) {
    try {
      const m = JSON.parse(line);
      if (m.message_type === 'summary') return m;
    } catch {
      // progress lines and non-JSON output: not the summary
    }
  }
  return {};
}

/**
 * restic commands bound to a measurer's timed() and a work dir. Every backup sample carries
 * bytes (repository growth, the figure compared with cairn's), newBytes (restic's data_added:
 * blob bytes added before compression) and snapshot (the snapshot id).
 */
export function restic({ timed, work }) {
  const env = resticEnv(work);
  function init(repo) {
    rm(repo);
    const r = spawnSync('restic', ['init', '-q', '--repo', repo], { encoding: 'utf8', env: { ...process.env, ...env } });
    if (r.status !== 0) throw new Error(`restic init failed: ${r.stderr}`);
  }
  const withGrowth = (repo, run) => {
    const before = dirBytes(repo);
    const s = run();
    const m = resticSummary(s.stdout);
    s.bytes = dirBytes(repo) - before;
    s.newBytes = m.data_added ?? null;
    s.snapshot = m.snapshot_id ?? null;
    return s;
  };
  return {
    init,
    /** `pg_dump -Fc <url> | restic backup --stdin --stdin-filename <name>` (pipefail: either failing fails the job). */
    backupDump: (url, repo, name) => withGrowth(repo, () => timed(...pipeline('pg_dump -Fc -d "$1" | restic --repo "$2" backup --json -q --stdin --stdin-filename "$3"', url, repo, name), { env })),
    /**
     * `restic dump <snapshot> /<name> | pg_restore -d <url>` into a database created first: one
     * stream, no -j (pg_restore needs a seekable file for parallel jobs).
     */
    restoreDump: (repo, snapshot, name, adminUrl, createSql, url) =>
      timed(...pipeline('psql -X -q -v ON_ERROR_STOP=1 -d "$1" -c "$2" && restic --repo "$3" dump "$4" "/$5" | pg_restore -d "$6"', adminUrl, createSql, repo, snapshot, name, url), { env }),
    /** `restic backup <file>` (cd to its folder so the snapshot path is the bare name). */
    backupFile: (file, repo) => withGrowth(repo, () => timed(...pipeline('cd "$1" && restic --repo "$2" backup --json -q "$3"', path.dirname(file), repo, path.basename(file)), { env })),
    /** `restic restore <snapshot> --target <dir>`, the dir emptied first. */
    restoreFile: (repo, snapshot, dir) => {
      rm(dir);
      return timed('restic', ['--repo', repo, 'restore', '-q', snapshot, '--target', dir], { env });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// set s: the SQLite file

const SQLITE_VERSION = 'cairn-bench s v1';

/** Rows per insert transaction while generating. */
const BATCH = 20000;

/**
 * The SQLite data set `<dir>/bench_s_<mib>.sqlite` (about `mib` MiB), created when missing or
 * when its marker row (table cairn_bench_marker) differs; `recreate` forces. Written under a
 * temporary name and renamed when complete, so a killed run leaves no half set to reuse.
 * Tables like set b's: customers, events (random-word text, JSON text, a blob on every fifth
 * row, an index on created_at), products. Returns the file's path.
 */
export function ensureSqliteSet({ dir, mib, vocab, recreate }) {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `bench_s_${mib}.sqlite`);
  const marker = `${SQLITE_VERSION} mib=${mib}`;
  if (!recreate && fs.existsSync(file)) {
    const r = spawnSync('sqlite3', ['-readonly', file, 'SELECT v FROM cairn_bench_marker'], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.trim() === marker) {
      log(`reusing ${file} (${(fs.statSync(file).size / MiB).toFixed(0)} MiB)`);
      return file;
    }
  }
  const tmp = `${file}.creating`;
  rm(tmp);
  rm(file);
  log(`creating ${file}`);
  const t0 = performance.now();
  const Database = require('better-sqlite3');
  const db = new Database(tmp);
  db.pragma('journal_mode = OFF');
  db.pragma('synchronous = OFF');
  db.exec(`CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, country TEXT, created_at TEXT NOT NULL, balance REAL, bio TEXT);
CREATE TABLE products (id INTEGER PRIMARY KEY, sku TEXT UNIQUE NOT NULL, title TEXT, price REAL, stock INTEGER, attrs TEXT);
CREATE TABLE events (id INTEGER PRIMARY KEY, created_at TEXT NOT NULL, customer_id INTEGER, kind TEXT, amount REAL, payload TEXT, note TEXT, blob BLOB);
CREATE INDEX events_created_at ON events (created_at);
CREATE TABLE cairn_bench_marker (v TEXT);`);
  // A seeded generator: the same set every time it is made.
  let x = 7;
  const rnd = () => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648);
  const word = () => vocab[Math.floor(rnd() ** 3 * vocab.length)];
  const words = (n) => Array.from({ length: n }, word).join(' ');
  const kinds = ['view', 'click', 'search', 'add_to_cart', 'purchase', 'login', 'logout', 'refund'];
  const countries = ['DE', 'FR', 'US', 'GB', 'NL', 'PL', 'ES', 'IT', 'SE', 'JP'];
  const t2023 = Date.parse('2023-01-01T00:00:00Z');
  const insP = db.prepare('INSERT INTO products VALUES (?, ?, ?, ?, ?, ?)');
  db.transaction(() => {
    for (let g = 1; g <= 5000; g++) insP.run(g, `SKU-${String(g).padStart(6, '0')}`, words(2 + (g % 4)), Math.round(100 + rnd() * 30000) / 100, Math.floor(rnd() * 1000), JSON.stringify({ color: word(), size: ['S', 'M', 'L', 'XL'][g % 4] }));
  })();
  const insC = db.prepare('INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?)');
  const insE = db.prepare('INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
  const target = mib * MiB;
  let c = 0;
  let e = 0;
  const size = () => db.pragma('page_count', { simple: true }) * db.pragma('page_size', { simple: true });
  while (size() < target) {
    db.transaction(() => {
      for (let k = 0; k < BATCH / 10; k++) {
        c++;
        insC.run(c, `${word()} ${word()}`, `${word()}.${c}@${word()}.example`, countries[Math.floor(rnd() ** 2 * 10)], new Date(Date.parse('2020-01-01T00:00:00Z') + c * 1020000).toISOString(), Math.round(rnd() * 1000000 - 200000) / 100, c % 3 === 0 ? words(5 + (c % 30)) : null);
      }
      for (let k = 0; k < BATCH; k++) {
        e++;
        const blob = e % 5 === 0 ? Buffer.from(Array.from({ length: 32 }, () => Math.floor(rnd() * 256))) : null;
        insE.run(e, new Date(t2023 + e * 3000 + Math.floor(rnd() * 2000)).toISOString(), 1 + Math.floor(rnd() * c), kinds[Math.floor(rnd() ** 2 * 8)], Math.round(rnd() * 50000) / 100,
          JSON.stringify({ ua: `${word()}/${Math.floor(rnd() * 20)}`, ip: `10.${Math.floor(rnd() * 255)}.${Math.floor(rnd() * 255)}.${e % 255}`, ok: rnd() < 0.95, ms: Math.floor(rnd() * 900), tags: [word(), word()] }),
          words(2 + (e % 19)), blob);
      }
    })();
    if (e % (BATCH * 25) === 0) log(`${path.basename(file)}: ${(size() / MiB).toFixed(0)} / ${mib} MiB`);
  }
  db.prepare('INSERT INTO cairn_bench_marker VALUES (?)').run(marker);
  db.pragma('journal_mode = DELETE');
  db.close();
  fs.renameSync(tmp, file);
  log(`created ${file} in ${((performance.now() - t0) / 1000).toFixed(0)} s (${(fs.statSync(file).size / MiB).toFixed(0)} MiB, ${e} events)`);
  return file;
}

/** Row count of a table in a SQLite file (sqlite3, read-only). */
export function sqliteCount(file, table) {
  const r = spawnSync('sqlite3', ['-readonly', file, `SELECT count(*) FROM ${table}`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`sqlite3 ${file}: ${r.stderr}`);
  return Number(r.stdout.trim());
}

/**
 * The SQL of one small change before a set-s second backup, for the work copy `file`, as an
 * application mostly appending makes it: 1,000 of the newest 10,000 events updated (every 10th)
 * and 1,000 appended after the last one. (Updates spread over the whole table touch every chunk
 * of any chunking tool, cairn's and restic's alike: a different, worst-case measurement.)
 */
export function sqliteChangeSql(file) {
  const r = spawnSync('sqlite3', ['-readonly', file, 'SELECT max(id) FROM events'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`sqlite3 ${file}: ${r.stderr}`);
  const max = Number(r.stdout.trim());
  return `BEGIN;
UPDATE events SET amount = amount + 1, note = note || ' changed' WHERE id > ${max - 10000} AND id % 10 = 0;
INSERT INTO events (id, created_at, customer_id, kind, amount, payload, note, blob)
  SELECT ${max} + value, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 1, 'click', 1.5, '{"ok":true}', 'appended row ' || value, NULL FROM generate_series(1, 1000);
COMMIT;`;
}
