/**
 * Issue 18, plain-SQL export (jobs/sql-export.ts, each engine's sql-script.ts): a backup written
 * out as one SQL script, loaded with the engine's own client only (`psql -X -v ON_ERROR_STOP=1
 * -f`, `sqlite3 new.db < file`) into a new database, and compared with the source as the
 * restore tests compare (schema dump, per-table checksums, sequence values; SQLite: every
 * object's SQL and every value with its storage class). With --include / --exclude / --rename,
 * the loaded database is compared with what `cairn restore` makes of the same selection. A
 * larger table (~200 MB of rows) is exported with the process's memory watched.
 */
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBackup } from '../../src/jobs/backup.js';
import { runRestore } from '../../src/jobs/restore.js';
import { sqlExport, type SqlExportOptions } from '../../src/jobs/sql-export.js';
import type { Selection } from '../../src/core/selection.js';
import { Repository } from '../../src/repo/repository.js';
import { openSource, openTarget } from '../../src/sources/index.js';
import Database from '../../src/sources/sqlite/driver.js';
import { exactReal } from '../../src/sources/sqlite/sql-script.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import {
  CHINOOK_SQL,
  dropDatabase,
  ensurePostgres,
  loadChinook,
  loadEveryKind,
  pgEnv,
  pgUrl,
  psql,
  snapshotOf,
} from '../helpers/postgres.js';
import { cairn } from '../helpers/cli.js';
import { dumpSqlite } from '../helpers/sqlite-compare.js';
import { SQLITE_EVERY_KIND as EVERY_KIND_BASE } from '../helpers/sqlite-every-kind.js';

const CHINOOK_SQLITE = new URL('../../fixtures/chinook/chinook.sqlite', import.meta.url).pathname;

let dir: string;
let repo: Repository;
const databases: string[] = [];
let counter = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cairn-sql-export-'));
  // Uncompressed: the tests measure the export, not zstd.
  repo = await Repository.init(new FileSystemStorage(join(dir, 'repo')), { compression: { algorithm: 'none', level: 'default' } });
}, 60_000);

afterAll(() => {
  for (const db of databases) dropDatabase(db);
  rmSync(dir, { recursive: true, force: true });
});

/** Writes the export of `backupId` to a new file (honouring back-pressure); returns its path. */
async function exportTo(backupId: string, options: Partial<SqlExportOptions> = {}, onChunk?: () => void): Promise<string> {
  const file = join(dir, `export-${counter++}.sql`);
  const out = createWriteStream(file);
  for await (const piece of sqlExport({ repo, backupId, ...options })) {
    if (!out.write(piece)) await once(out, 'drain');
    onChunk?.();
  }
  out.end();
  await once(out, 'finish');
  return file;
}

/**
 * Exports `backupId` while sampling the process's RSS at every piece: the growth over the
 * start, at most, in the first and in the second half of the pieces (MB). Flat: the second half
 * adds next to nothing (V8 and the read-ahead settle in the first), and the peak stays far below
 * the script's size.
 */
async function exportWatchingMemory(backupId: string): Promise<{ file: string; firstHalf: number; secondHalf: number }> {
  const before = process.memoryUsage().rss;
  const samples: number[] = [];
  const file = await exportTo(backupId, {}, () => samples.push(process.memoryUsage().rss));
  const mb = (list: number[]) => (Math.max(before, ...list) - before) / 1024 / 1024;
  const half = Math.floor(samples.length / 2);
  return { file, firstHalf: mb(samples.slice(0, half)), secondHalf: mb(samples.slice(half)) };
}

async function backup(url: string, id: string): Promise<void> {
  await runBackup({ repo, source: openSource(url), id, compressionWorkers: 0 });
}

describe('PostgreSQL: psql -f loads the export', () => {
  /** A database name of this test (dropped at the end); created empty unless `create` is false. */
  function scratch(label: string, create = true): string {
    const name = `cairn_h18_sql_${label}_${process.pid}_${counter++}`;
    databases.push(name);
    dropDatabase(name);
    if (create) psql('postgres', `CREATE DATABASE "${name}" TEMPLATE template0 ENCODING 'UTF8';`);
    return name;
  }

  /** psql exactly as a user without cairn would run it. */
  function load(db: string, file: string): { code: number | null; stderr: string } {
    const r = spawnSync('psql', ['-X', '-v', 'ON_ERROR_STOP=1', '-d', db, '-f', file], { env: pgEnv(), encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    return { code: r.status, stderr: r.stderr };
  }

  let everyKind: string;
  let chinook: string;

  beforeAll(async () => {
    ensurePostgres();
    everyKind = scratch('every');
    loadEveryKind(everyKind);
    await backup(pgUrl(everyKind), 'pg-every');
    chinook = scratch('chinook');
    loadChinook(chinook);
    await backup(pgUrl(chinook), 'pg-chinook');
  }, 120_000);

  it('every-kind fixture: schema dump, table checksums and sequences identical to the source', async () => {
    const file = await exportTo('pg-every');
    const text = spawnSync('head', ['-c', '4000', file], { encoding: 'utf8' }).stdout;
    expect(text).toMatch(/Roles are not created by this script/);
    const target = scratch('every_load');
    const r = load(target, file);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/ERROR/);
    expect(snapshotOf(target)).toEqual(snapshotOf(everyKind));
  }, 120_000);

  it('--no-owner / --no-privileges: no ALTER … OWNER TO and no GRANT or REVOKE in the script', async () => {
    const withRoles = await exportTo('pg-every');
    const text = readFileSync(withRoles, 'utf8');
    // The fixture has owners and grants: otherwise this test could not fail.
    expect(text).toMatch(/OWNER TO/);
    expect(text).toMatch(/^GRANT /m);
    const bare = readFileSync(await exportTo('pg-every', { noOwner: true, noPrivileges: true }), 'utf8');
    expect(bare).not.toMatch(/OWNER TO/);
    expect(bare).not.toMatch(/^(GRANT|REVOKE) /m);
  }, 120_000);

  it('chinook: identical to the source', async () => {
    expect(CHINOOK_SQL).toBeTruthy();
    const file = await exportTo('pg-chinook');
    const target = scratch('chinook_load');
    const r = load(target, file);
    expect(r.code, r.stderr).toBe(0);
    expect(snapshotOf(target)).toEqual(snapshotOf(chinook));
  }, 120_000);

  it('--include / --exclude / --rename: the same database as cairn restore of that selection', async () => {
    const cases: { selection?: Selection; renames?: [string, string][] }[] = [
      { selection: { include: ['public.album', 'public.artist', 'public.track', 'public.genre', 'public.media_type'] }, renames: [['album', 'music.records'], ['artist', 'artist_renamed']] },
      { selection: { exclude: ['public.invoice_line', 'public.playlist_track'] } },
    ];
    for (const c of cases) {
      const options = { ...(c.selection ? { selection: c.selection } : {}), ...(c.renames ? { renames: new Map(c.renames) } : {}) };
      const file = await exportTo('pg-chinook', options);
      const loaded = scratch('sel_load');
      const r = load(loaded, file);
      expect(r.code, r.stderr).toBe(0);
      const restored = scratch('sel_restore', false);
      await runRestore({ repo, backupId: 'pg-chinook', target: openTarget(pgUrl(restored)), ...options });
      const got = snapshotOf(loaded);
      expect(got).toEqual(snapshotOf(restored));
      if (c.renames) {
        expect(Object.keys(got.tables)).toContain('music.records');
        expect(Object.keys(got.tables)).toContain('public.artist_renamed');
        expect(Object.keys(got.tables)).not.toContain('public.album');
      } else {
        expect(Object.keys(got.tables)).not.toContain('public.invoice_line');
        expect(Object.keys(got.tables)).toContain('public.invoice');
      }
    }
  }, 180_000);

  it('a selection a restore refuses is refused before the first byte (a rename of nothing)', async () => {
    const gen = sqlExport({ repo, backupId: 'pg-chinook', renames: new Map([['public.nope', 'x']]) });
    await expect(gen.next()).rejects.toThrow(/--rename public\.nope=…: that name is not among the collections/);
  });

  it('cairn export --format sql (CLI): a foreign key dropped with the table it references is a warning on stderr and in --json, worded for an export', () => {
    const repoDir = join(dir, 'repo');
    const file = join(dir, `cli-fk-${counter++}.sql`);
    const r = cairn(['export', 'pg-chinook', '--format', 'sql', '--exclude', 'public.artist', '-o', file, '--repo', repoDir]);
    expect(r.code, r.stderr).toBe(0);
    const warnings = r.stderr.split('\n').filter((l) => l.startsWith('cairn: warning: '));
    expect(warnings).toEqual([expect.stringMatching(/^cairn: warning: foreign key "\w+" of public\.album left out of this script: it references public\.artist, which this export leaves out \(export both together to keep it\)$/)]);
    expect(r.stderr).not.toMatch(/restore|target/i);
    // The same sentence is a comment of the script.
    expect(readFileSync(file, 'utf8')).toContain(`-- Warning: ${warnings[0]!.slice('cairn: warning: '.length)}`);
    const j = cairn(['export', 'pg-chinook', '--format', 'sql', '--exclude', 'public.artist', '-o', file, '--force', '--json', '--repo', repoDir]);
    expect(j.code, j.stderr).toBe(0);
    expect(j.stderr).not.toMatch(/warning/);
    const doc = JSON.parse(j.stdout) as { backupId: string; file: string; warnings: string[] };
    expect(doc).toMatchObject({ backupId: 'pg-chinook', file });
    expect(doc.warnings).toEqual([warnings[0]!.slice('cairn: warning: '.length)]);
    // Without a warning, the array is empty.
    const none = cairn(['export', 'pg-chinook', '--format', 'sql', '-o', file, '--force', '--json', '--repo', repoDir]);
    expect((JSON.parse(none.stdout) as { warnings: string[] }).warnings).toEqual([]);
  }, 120_000);

  it('an export that leaves out what a view reads is refused in export words', async () => {
    const gen = sqlExport({ repo, backupId: 'pg-every', selection: { exclude: ['inventory.items'] } });
    await expect(gen.next()).rejects.toThrow(/^Cannot export the selected views?: .* left out of this export, so the script would not load\. Nothing was written\./);
  }, 60_000);

  it('--roles --roles-with-passwords: the role password hashes are data, never printed by create, list, show or diff', async () => {
    const role = `cairn_h18_role_${process.pid}`;
    const db = scratch('roles');
    psql('postgres', `DROP ROLE IF EXISTS ${role}; CREATE ROLE ${role} LOGIN PASSWORD 'h18-role-secret'; GRANT CONNECT ON DATABASE "${db}" TO ${role};`);
    try {
      const hash = spawnSync('psql', ['-X', '-At', '-d', 'postgres', '-c', `SELECT rolpassword FROM pg_authid WHERE rolname = '${role}'`], { env: pgEnv(), encoding: 'utf8' }).stdout.trim();
      expect(hash).toMatch(/^(SCRAM-SHA-256\$|md5)/);
      const repoDir = join(dir, 'repo');
      const outputs: [string, string][] = [];
      for (const [id, json] of [['pg-roles-1', true], ['pg-roles-2', false]] as const) {
        const r = cairn(['backup', 'create', '--source', pgUrl(db), '--repo', repoDir, '--id', id, '--roles', '--roles-with-passwords', ...(json ? ['--json'] : [])]);
        expect(r.code, r.stderr).toBe(0);
        outputs.push([`backup create ${id}`, r.stdout + r.stderr]);
      }
      for (const args of [['backup', 'list'], ['backup', 'list', '--json'], ['backup', 'show', 'pg-roles-1'], ['backup', 'show', 'pg-roles-1', '--json'], ['diff', 'pg-roles-1', 'pg-roles-2'], ['diff', 'pg-roles-1', 'pg-roles-2', '--json']]) {
        const r = cairn([...args, '--repo', repoDir]);
        expect(r.code, r.stderr).toBe(0);
        outputs.push([args.join(' '), r.stdout + r.stderr]);
      }
      const manifest = await repo.readManifest('pg-roles-1');
      outputs.push(['stored manifest', JSON.stringify(manifest)]);
      // The roles are a data stream (pg_dumpall --roles-only), and its chunks do hold the hash.
      const roles = manifest.collections.find((c) => c.name === '(roles)');
      expect(roles?.dataFormat).toBe('pg_dumpall-roles-sql');
      expect(roles?.chunks.length).toBeGreaterThan(0);
      const file = await exportTo('pg-roles-1');
      outputs.push(['export --format sql', readFileSync(file, 'utf8')]);
      for (const [what, text] of outputs) expect(text.includes(hash), `${what} prints the hash`).toBe(false);
      expect(outputs.find(([w]) => w === 'backup show pg-roles-1 --json')?.[1]).toContain(role);
    } finally {
      psql('postgres', `DROP DATABASE IF EXISTS "${db}"; DROP ROLE IF EXISTS ${role};`);
    }
  }, 120_000);

  it('memory stays flat while ~200 MB of rows are exported', async () => {
    const big = scratch('big');
    // ~1.2 M rows of ~190 bytes of COPY text each.
    psql(big, "CREATE TABLE big (id bigint PRIMARY KEY, t text); INSERT INTO big SELECT g, md5(g::text) || repeat('x', 150) FROM generate_series(1, 1200000) g;");
    await backup(pgUrl(big), 'pg-big');
    const manifest = await repo.readManifest('pg-big');
    const bytes = manifest.collections.find((c) => c.name === 'public.big')?.logicalBytes ?? 0;
    expect(bytes).toBeGreaterThan(200 * 1024 * 1024);
    const { file, firstHalf, secondHalf } = await exportWatchingMemory('pg-big');
    const size = statSync(file).size;
    expect(size).toBeGreaterThan(bytes);
    console.log(`pg export, ${(size / 1024 / 1024).toFixed(0)} MB script: RSS +${firstHalf.toFixed(0)} MB at most in the first half, +${secondHalf.toFixed(0)} MB in the second`);
    // Bounds that tell flat from growing under a loaded machine's noise (RSS in-process): memory
    // that grew with the data would add about half the script's size (>100 MB) in the second half.
    expect(Math.max(firstHalf, secondHalf)).toBeLessThan(300);
    expect(secondHalf - firstHalf).toBeLessThan(100);
    const target = scratch('big_load');
    const r = load(target, file);
    expect(r.code, r.stderr).toBe(0);
    expect(psql(target, 'SELECT count(*), sum(length(t)) FROM big;').trim()).toBe(psql(big, 'SELECT count(*), sum(length(t)) FROM big;').trim());
    rmSync(file);
  }, 600_000);
});

/** The engine contract's fixture, plus values at the edges of REAL and text, and an application_id. */
const SQLITE_EVERY_KIND = `${EVERY_KIND_BASE}
INSERT INTO untyped (rowid, a, b) VALUES (9, 0.1, 6.034013741875827e-305),
  (10, 'line one' || char(10) || '.shell echo no' || char(10) || 'go', 'quote '' and "double"'), (11, 5e-324, -1.7976931348623157e308);
PRAGMA application_id = 1234567;
`;

describe('SQLite: sqlite3 new.db < file loads the export', () => {
  const SQLITE3 = spawnSync('sqlite3', ['-version'], { encoding: 'utf8' }).status === 0;

  /** sqlite3 exactly as a user without cairn would run it (docs/cli.md: -bail). */
  function load(file: string): string {
    const db = join(dir, `loaded-${counter++}.db`);
    const r = spawnSync('sh', ['-c', 'sqlite3 -bail "$1" < "$2"', 'load', db, file], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    return db;
  }

  /** Besides dumpSqlite: what it leaves out (text bytes, pragmas, FTS / R*Tree answers, statistics). */
  function details(file: string): Record<string, unknown> {
    const db = new Database(file, { readonly: true });
    try {
      const has = (name: string): boolean => db.prepare('SELECT count(*) FROM sqlite_schema WHERE name = ?').pluck().get(name) !== 0;
      return {
        userVersion: db.pragma('user_version', { simple: true }),
        applicationId: db.pragma('application_id', { simple: true }),
        journal: db.pragma('journal_mode', { simple: true }),
        stat1: has('sqlite_stat1') ? db.prepare('SELECT tbl, idx, stat FROM sqlite_stat1 ORDER BY tbl, idx').raw(true).all() : [],
        untyped: has('untyped') ? db.prepare('SELECT rowid, typeof(a), hex(a), typeof(b), hex(b) FROM untyped ORDER BY rowid').raw(true).all() : [],
        sequence: has('sqlite_sequence') ? db.prepare('SELECT name, seq FROM sqlite_sequence ORDER BY name').raw(true).all() : [],
        notiz: has('notiz') ? db.prepare("SELECT rowid, text FROM notiz WHERE notiz MATCH 'milch OR klempner' ORDER BY rowid").raw(true).all() : [],
        boxen: has('boxen') ? db.prepare('SELECT id FROM boxen WHERE maxx >= 12 ORDER BY id').raw(true).all() : [],
      };
    } finally {
      db.close();
    }
  }

  let every: string;

  beforeAll(async () => {
    if (!SQLITE3) return;
    every = join(dir, 'every.db');
    const db = new Database(every);
    db.exec(SQLITE_EVERY_KIND);
    db.pragma('journal_mode = WAL');
    db.close();
    await backup(`sqlite://${every}`, 'sq-every');
    await backup(`sqlite://${CHINOOK_SQLITE}`, 'sq-chinook');
  }, 60_000);

  it.skipIf(!SQLITE3)('every kind of object and value: identical to the source (skipped when there is no sqlite3 CLI)', async () => {
    const loaded = load(await exportTo('sq-every'));
    // sqlite_stat4 rows need a sqlite3 built with STAT4: the script carries sqlite_stat1 only.
    const withoutStat4 = (d: ReturnType<typeof dumpSqlite>) => ({ ...d, schema: d.schema.filter((s) => !s.startsWith('table sqlite_stat4')) });
    expect(withoutStat4(dumpSqlite(loaded))).toEqual(withoutStat4(dumpSqlite(every)));
    expect(details(loaded)).toEqual(details(every));
    expect(details(loaded)).toMatchObject({ userVersion: 14, applicationId: 1234567, journal: 'wal', sequence: [['counter', 4]] });
  }, 60_000);

  it.skipIf(!SQLITE3)('chinook: identical to the source', async () => {
    const loaded = load(await exportTo('sq-chinook'));
    expect(dumpSqlite(loaded)).toEqual(dumpSqlite(CHINOOK_SQLITE));
  }, 60_000);

  it.skipIf(!SQLITE3)('--include / --exclude / --rename: the same database as cairn restore of that selection', async () => {
    const cases: { selection?: Selection; renames?: [string, string][] }[] = [
      { selection: { include: ['Kunde Ünit', 'audit', 'bestellung', 'counter', 'notiz'] }, renames: [['Kunde Ünit', 'kunden'], ['counter', 'Zähler']] },
      { selection: { exclude: ['untyped', 'boxen', 'adult_count'] } },
    ];
    for (const c of cases) {
      const options = { ...(c.selection ? { selection: c.selection } : {}), ...(c.renames ? { renames: new Map(c.renames) } : {}) };
      const loaded = load(await exportTo('sq-every', options));
      const restored = join(dir, `restored-${counter++}.db`);
      await runRestore({ repo, backupId: 'sq-every', target: openTarget(`sqlite://${restored}`), ...options });
      const withoutStat4 = (d: ReturnType<typeof dumpSqlite>) => ({ ...d, schema: d.schema.filter((s) => !s.startsWith('table sqlite_stat4')) });
      expect(withoutStat4(dumpSqlite(loaded))).toEqual(withoutStat4(dumpSqlite(restored)));
      expect(details(loaded)).toEqual(details(restored));
      const tables = Object.keys(dumpSqlite(loaded).tables);
      if (c.renames) {
        expect(tables).toEqual(expect.arrayContaining(['kunden', 'Zähler', 'bestellung']));
        expect(tables).not.toContain('Kunde Ünit');
        expect(tables).not.toContain('untyped');
      } else {
        expect(tables).not.toContain('untyped');
        expect(tables).toContain('kv');
      }
    }
  }, 60_000);

  it('a selection a restore into a new file refuses is refused (a trigger writing into a table left out)', async () => {
    const gen = sqlExport({ repo, backupId: 'sq-every', selection: { include: ['Kunde Ünit'] } });
    await expect(gen.next()).rejects.toThrow(/Cannot export this selection as SQL: Trigger "kunde_audit" of "Kunde Ünit" writes into "audit"/);
  });

  it.skipIf(!SQLITE3)('one transaction: a load that fails part-way (sqlite3 -bail) leaves nothing of the script behind', async () => {
    const file = await exportTo('sq-chinook');
    const text = readFileSync(file, 'utf8');
    // The failing statement comes after other tables' rows, so that a commit would show.
    const last = text.lastIndexOf('CREATE TABLE ');
    const name = /^CREATE TABLE ["[]?(\w+)/.exec(text.slice(last))?.[1] as string;
    expect(name).toMatch(/^\w+$/);
    expect(text.indexOf('INSERT INTO')).toBeLessThan(last);
    const db = join(dir, `failed-${counter++}.db`);
    const pre = new Database(db);
    pre.exec(`CREATE TABLE "${name}" (x)`);
    pre.close();
    const r = spawnSync('sh', ['-c', 'sqlite3 -bail "$1" < "$2"', 'load', db, file], { encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/already exists/);
    const after = new Database(db, { readonly: true });
    try {
      expect(after.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'").pluck().all()).toEqual([name]);
    } finally {
      after.close();
    }
  }, 60_000);

  it('a definition naming an application function is a warning through onWarning, and a comment of the script', async () => {
    const file = join(dir, 'appfn.db');
    const db = new Database(file);
    db.function('h18_fn', (x: unknown) => (typeof x === 'number' || typeof x === 'bigint' ? 1 : 0));
    db.exec('CREATE TABLE t (a INTEGER CHECK (h18_fn(a) = 1)); INSERT INTO t VALUES (1)');
    db.close();
    await backup(`sqlite://${file}`, 'sq-appfn');
    const warnings: string[] = [];
    const out = await exportTo('sq-appfn', { onWarning: (w) => warnings.push(w) });
    expect(warnings).toEqual(['definitions name what the application registers, not SQLite (function h18_fn()): load this script where they are registered (the sqlite3 shell does not have them).']);
    expect(readFileSync(out, 'utf8')).toContain(`-- Warning: ${warnings[0]}\n`);
    // Without one, nothing is said.
    const none: string[] = [];
    await exportTo('sq-chinook', { onWarning: (w) => none.push(w) });
    expect(none).toEqual([]);
  }, 60_000);

  it.skipIf(!SQLITE3)('memory stays flat while ~200 MB of rows are exported', async () => {
    const file = join(dir, 'big.db');
    const db = new Database(file);
    db.exec('CREATE TABLE big (id INTEGER PRIMARY KEY, t TEXT, r REAL, b BLOB)');
    const insert = db.prepare('INSERT INTO big (t, r, b) VALUES (?, ?, ?)');
    db.transaction(() => {
      for (let i = 0; i < 800_000; i++) insert.run(`row ${i} `.padEnd(120, 'x'), i / 7, Buffer.alloc(64, i % 251));
    })();
    db.close();
    await backup(`sqlite://${file}`, 'sq-big');
    const { file: out, firstHalf, secondHalf } = await exportWatchingMemory('sq-big');
    const size = statSync(out).size;
    expect(size).toBeGreaterThan(200 * 1024 * 1024);
    console.log(`sqlite export, ${(size / 1024 / 1024).toFixed(0)} MB script: RSS +${firstHalf.toFixed(0)} MB at most in the first half, +${secondHalf.toFixed(0)} MB in the second`);
    // Bounds that tell flat from growing under a loaded machine's noise (RSS in-process): memory
    // that grew with the data would add about half the script's size (>100 MB) in the second half.
    expect(Math.max(firstHalf, secondHalf)).toBeLessThan(300);
    expect(secondHalf - firstHalf).toBeLessThan(100);
    const loaded = load(out);
    const check = (f: string) => {
      const d = new Database(f, { readonly: true });
      try {
        return d.prepare('SELECT count(*), sum(length(t)), sum(r), sum(length(b)) FROM big').raw(true).get();
      } finally {
        d.close();
      }
    };
    expect(check(loaded)).toEqual(check(file));
    rmSync(out);
  }, 600_000);

  it('a REAL is written in an exact form that every sqlite3 reads back to the same double', () => {
    expect(exactReal(0.1)).toBe('CAST(3602879701896397 AS REAL) / 36028797018963968');
    expect(exactReal(-(2 ** 70))).toBe('CAST(-1 AS REAL) * 4611686018427387904 * 256');
    if (!SQLITE3) return;
    const values = [0.1, 6.034013741875827e-305, 5e-324, 1.7976931348623157e308, -1 / 3, 2 ** 60 + 2048, 2.2250738585072014e-308];
    const file = join(dir, `reals-${counter++}.db`);
    const sql = `CREATE TABLE r (i INTEGER PRIMARY KEY, v);\n${values.map((v, i) => `INSERT INTO r VALUES (${i}, ${exactReal(v)});`).join('\n')}\n`;
    const r = spawnSync('sqlite3', [file], { input: sql, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const db = new Database(file, { readonly: true });
    try {
      expect(db.prepare('SELECT v FROM r ORDER BY i').pluck().all()).toEqual(values);
      expect(db.prepare("SELECT count(*) FROM r WHERE typeof(v) = 'real'").pluck().get()).toBe(values.length);
    } finally {
      db.close();
    }
  });
});
