/**
 * `cairn dump` and `cairn diff` on real backups: a PostgreSQL table with tricky values dumped as
 * CSV and as SQL and loaded back with psql into a fresh database (rows compared with the
 * original), a SQLite table the same way with better-sqlite3 (values and storage classes
 * compared), name rules and usage errors, and diff's table and JSON. Databases are named
 * `cairn_t_dd_<random>` and dropped in afterAll.
 */
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { Repository } from '../../src/repo/repository.js';
import Database from '../../src/sources/sqlite/driver.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { CLI, cairn, cairnJson } from '../helpers/cli.js';
import { createDatabase, dropDatabase, ensurePostgres, pgEnv, pgUrl, psql } from '../helpers/postgres.js';

let work: string;
const databases: string[] = [];

beforeAll(() => {
  ensurePostgres();
  work = mkdtempSync(join(tmpdir(), 'cairn-dump-'));
});

afterAll(() => {
  for (const db of databases) dropDatabase(db);
  rmSync(work, { recursive: true, force: true });
});

function newDb(): string {
  const db = createDatabase('dd');
  databases.push(db);
  return db;
}

function newRepo(name: string): string {
  const repo = join(work, name);
  const r = cairn(['repo', 'init', repo]);
  expect(r.code, r.stderr).toBe(0);
  return repo;
}

function backup(repo: string, source: string, id: string): void {
  const r = cairn(['backup', 'create', '--repo', repo, '--source', source, '--id', id]);
  expect(r.code, r.stderr).toBe(0);
}

/** psql with a file, stopping at the first error, as a user would load a dump. */
function psqlFile(db: string, args: string[]): void {
  const r = spawnSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', db, ...args], { env: pgEnv(), encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
}

const PG_TABLE = `CREATE TABLE public."Odd ""Name"", x" (
  id int PRIMARY KEY, s text, b bytea, n numeric, ts timestamptz, a text[], j jsonb, f boolean, iv interval,
  g int GENERATED ALWAYS AS (id * 2) STORED)`;

/** Every row of the tricky table as text, in id order: equal strings mean equal rows. */
function pgRows(db: string): string {
  return psql(db, `SELECT string_agg(format('%s|%L|%L|%L|%L|%L|%L|%L|%L|%s', id, s, b, n, ts, a, j, f, iv, g), E'\\n' ORDER BY id) FROM public."Odd ""Name"", x";`);
}

describe('cairn dump (PostgreSQL)', () => {
  let source: string;
  let repo: string;
  beforeAll(() => {
    source = newDb();
    psql(
      source,
      `${PG_TABLE};
       INSERT INTO public."Odd ""Name"", x" (id, s, b, n, ts, a, j, f, iv) VALUES
        (1, NULL, '\\x00ff5c0a', 1.50, '2024-01-02 03:04:05.123456+02', '{a,"b,c",NULL,"\\"q\\""}', '{"k": "x,\\"y\\"\\n"}', true, '1 year 2 days 03:04:05'),
        (2, '', NULL, NULL, NULL, NULL, NULL, false, NULL),
        (3, E'quote " comma , nl \\n cr \\r tab \\t backslash \\\\ ''apos''', ''::bytea, 'NaN', 'infinity', '{}', '[]', NULL, '-1 day'),
        (4, '\\.', '\\x5c2e', -0.000000000000000000001, '1999-12-31 23:59:59+00', '{{1,2},{3,4}}', 'null', true, '0'),
        (5, 'ünïcødé 🎉 日本', NULL, 123456789012345678901234567890.123456789, '-infinity', ARRAY['', NULL], '"s"', NULL, NULL),
        (6, 'NULL', '\\x', 0, NULL, '{NULL}', '{}', false, NULL);
       CREATE VIEW public.v AS SELECT id FROM public."Odd ""Name"", x";`,
    );
    repo = newRepo('pg');
    backup(repo, pgUrl(source), 'pg1');
  });

  it('csv loads back with psql \\copy … csv header into a fresh table, every row equal', () => {
    const file = join(work, 'pg.csv');
    const r = cairn(['dump', 'pg1', 'Odd "Name", x', '--repo', repo, '-o', file]);
    // The name as PostgreSQL reads it: quoted parts exact, the schema public by default.
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/Wrote 6 rows of .* to .*pg\.csv \(csv\)/);
    const csv = readFileSync(file, 'utf8');
    expect(csv.split('\n')[0]).toBe('id,s,b,n,ts,a,j,f,iv');
    // NULL is an empty unquoted field, an empty string "" (row 2: s is '').
    expect(csv).toContain('\n2,"",,,,,,f,\n');
    // `\.` alone would end COPY's data: it is quoted. Bytea is PostgreSQL's \x hex.
    expect(csv).toContain('\n4,"\\.",\\x5c2e,');
    const target = newDb();
    psql(target, `${PG_TABLE};`);
    psqlFile(target, ['-c', `\\copy public."Odd ""Name"", x" (id, s, b, n, ts, a, j, f, iv) from '${file}' csv header`]);
    expect(pgRows(target)).toBe(pgRows(source));
    expect(psql(target, 'SELECT count(*) FROM public."Odd ""Name"", x";').trim()).toBe('6');
  });

  it('csv on stdout is what COPY FROM STDIN reads', () => {
    const r = cairn(['dump', 'pg1', 'public."Odd ""Name"", x"', '--repo', repo, '--format', 'csv']);
    expect(r.code, r.stderr).toBe(0);
    const target = newDb();
    psql(target, `${PG_TABLE};`);
    const load = spawnSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', target, '-c', `COPY public."Odd ""Name"", x" (id, s, b, n, ts, a, j, f, iv) FROM STDIN (FORMAT csv, HEADER true)`], {
      env: pgEnv(),
      input: r.stdout,
      encoding: 'utf8',
    });
    expect(load.status, load.stderr).toBe(0);
    expect(pgRows(target)).toBe(pgRows(source));
  });

  it('sql runs with psql -v ON_ERROR_STOP=1 into a fresh table, every row equal', () => {
    const file = join(work, 'pg.sql');
    const r = cairn(['dump', 'pg1', 'Odd "Name", x', '--repo', repo, '--format', 'sql', '--output', file]);
    expect(r.code, r.stderr).toBe(0);
    const sql = readFileSync(file, 'utf8');
    expect(sql).toMatch(/^SET client_encoding = 'UTF8';\n[\s\S]*\nBEGIN;\nINSERT INTO "public"\."Odd ""Name"", x" \("id", /);
    expect(sql.endsWith('COMMIT;\n')).toBe(true);
    expect(sql).toContain(`'\\x00ff5c0a'::bytea`);
    expect(sql.match(/^INSERT INTO /gm)).toHaveLength(6);
    const target = newDb();
    psql(target, `${PG_TABLE};`);
    psqlFile(target, ['-f', file]);
    expect(pgRows(target)).toBe(pgRows(source));
  });

  it('an unknown name is a usage error naming close ones; a view has no rows; nothing is written', () => {
    const file = join(work, 'never.csv');
    const unknown = cairn(['dump', 'pg1', 'odd "name", x', '--repo', repo, '-o', file]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/Unknown collection in backup "pg1": public\.odd "name", x\. Did you mean .*Odd/);
    const view = cairn(['dump', 'pg1', 'v', '--repo', repo, '-o', file]);
    expect(view.code).toBe(2);
    expect(view.stderr).toMatch(/"public\.v" is a view: it has no rows to dump/);
    const many = cairn(['dump', 'pg1', '*', '--repo', repo]);
    expect(many.code).toBe(2);
    expect(many.stderr).toMatch(/"\*" names 2 collections .*dump names one/);
    expect(spawnSync('test', ['-e', file]).status).toBe(1);
    const noBackup = cairn(['dump', 'nope', 'v', '--repo', repo]);
    expect(noBackup.code).toBe(3);
  });
});

const PG_IDS = `CREATE TABLE public."Ids" (
  a int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, b bigint GENERATED BY DEFAULT AS IDENTITY, c serial, v text,
  g text GENERATED ALWAYS AS (v || '!') STORED)`;

/** The identity table's rows and its sequences' states, as text. */
function pgIds(db: string): string {
  return psql(
    db,
    `SELECT string_agg(format('%s|%s|%s|%L|%L', a, b, c, v, g), E'\\n' ORDER BY a) FROM public."Ids";
     SELECT string_agg(format('%s=%s', sequencename, last_value), ',' ORDER BY sequencename) FROM pg_sequences WHERE schemaname = 'public';`,
  );
}

describe('cairn dump --format sql (PostgreSQL identity, serial and generated columns)', () => {
  it('loads with psql -v ON_ERROR_STOP=1 into a table made from the same DDL: rows and sequences equal, new rows do not collide', () => {
    const source = newDb();
    psql(
      source,
      `${PG_IDS};
       INSERT INTO public."Ids" (v) VALUES ('x'), ('y'), (NULL);
       INSERT INTO public."Ids" (a, b, c, v) OVERRIDING SYSTEM VALUE VALUES (40, 50, 60, 'set');
       DELETE FROM public."Ids" WHERE a = 2;`,
    );
    const repo = newRepo('pg-ids');
    backup(repo, pgUrl(source), 'ids1');
    const r = cairn(['dump', 'ids1', 'Ids', '--repo', repo, '--format', 'sql']);
    expect(r.code, r.stderr).toBe(0);
    // The generated column is left out; identity values are written as they were.
    expect(r.stdout).toContain('INSERT INTO "public"."Ids" ("a", "b", "c", "v") OVERRIDING SYSTEM VALUE VALUES (\'40\', \'50\', \'60\', \'set\');\n');
    expect(r.stdout).toMatch(/SELECT pg_catalog\.setval\(c\.oid, 3, true\) FROM \(SELECT pg_catalog\.to_regclass\('"public"\."Ids_a_seq"'\) AS oid\) c WHERE c\.oid IS NOT NULL;\n[\s\S]*COMMIT;\n$/);
    const target = newDb();
    psql(target, `${PG_IDS};`);
    const file = join(work, 'ids.sql');
    writeFileSync(file, r.stdout);
    psqlFile(target, ['-f', file]);
    expect(pgIds(target)).toBe(pgIds(source));
    // The sequences continue where the source's stood: the next row takes fresh values.
    expect(psql(target, `INSERT INTO public."Ids" (v) VALUES ('next') RETURNING a, b, c;`).trim()).toBe('4|4|4');
    // Into a table without the sequences (plain columns), the rows still load.
    const plain = newDb();
    psql(plain, `CREATE TABLE public."Ids" (a int, b bigint, c int, v text, g text GENERATED ALWAYS AS (v || '!') STORED);`);
    psqlFile(plain, ['-f', file]);
    expect(psql(plain, 'SELECT count(*) FROM public."Ids";').trim()).toBe('3');
  });
});

/** Every value of the SQLite table with its storage class, bytes in hex: equal means identical. */
function sqliteRows(file: string): unknown[] {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare('SELECT rowid AS r, typeof(a) AS ta, hex(a) AS a, typeof(b) AS tb, hex(b) AS b, typeof(c) AS tc, quote(c) AS c FROM "My Table" ORDER BY rowid').all();
  } finally {
    db.close();
  }
}

const SQLITE_TABLE = 'CREATE TABLE "My Table" (a, b TEXT, c REAL)';

describe('cairn dump (SQLite)', () => {
  let file: string;
  let repo: string;
  beforeAll(() => {
    file = join(work, 'src.db');
    const db = new Database(file);
    db.exec(SQLITE_TABLE);
    db.exec(`INSERT INTO "My Table" (rowid, a, b, c) VALUES
      (1, 9223372036854775807, 'it''s, "quoted"' || char(10) || 'line', 1.0),
      (2, -9223372036854775808, '', 0.0),
      (5, X'00FF27', NULL, 0.1),
      (7, 'ünïcødé 🎉', CAST(X'FF00FE' AS TEXT), 1e308 * 10),
      (9, NULL, 'a' || char(0) || 'b', 123456789.123456789),
      (10, 2.5, '\\.', -1e308 * 10)`);
    db.close();
    repo = newRepo('sqlite');
    backup(repo, `sqlite://${file}`, 's1');
  });

  it('sql loads into a fresh database with better-sqlite3: same values, storage classes and rowids', () => {
    const r = cairn(['dump', 's1', 'my table', '--repo', repo, '--format', 'sql']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^BEGIN;\nINSERT INTO "My Table" \("rowid", "a", "b", "c"\) VALUES \(1, 9223372036854775807, 'it''s, "quoted"\nline', 1\.0\);\n/);
    expect(r.stdout).toContain("X'00ff27'");
    expect(r.stdout.endsWith('COMMIT;\n')).toBe(true);
    const copy = join(work, 'copy.db');
    const db = new Database(copy);
    db.exec(SQLITE_TABLE);
    db.exec(r.stdout);
    db.close();
    const rows = sqliteRows(copy);
    expect(rows).toEqual(sqliteRows(file));
    expect(rows).toHaveLength(6);
  });

  it('csv: header, NULL vs "", blobs as \\x hex, reals stay reals', () => {
    const r = cairn(['dump', 's1', 'My Table', '--repo', repo]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe('rowid,a,b,c');
    expect(lines[1]).toBe('1,9223372036854775807,"it\'s, ""quoted""');
    expect(lines[2]).toBe('line",1.0');
    expect(lines[3]).toBe('2,-9223372036854775808,"",0.0');
    expect(lines[4]).toBe('5,\\x00ff27,,0.1');
    expect(lines[5]).toBe('7,ünïcødé 🎉,\uFFFD\0\uFFFD,Infinity');
    expect(lines.at(-2)).toBe('10,2.5,"\\.",-Infinity');
    expect(lines.at(-1)).toBe('');
  });
});

/** The lock files left in a file repository (none once every command has ended). */
function locksLeft(repo: string): string[] {
  return existsSync(join(repo, 'locks')) ? readdirSync(join(repo, 'locks')) : [];
}

/**
 * The CLI with stdout a pipe that this process closes once `keep` says it has read enough (at
 * once when `keep` is undefined: before the child writes anything), as `| head` does.
 */
function cairnIntoClosingReader(args: string[], keep?: (read: string) => boolean): Promise<{ code: number | null; signal: NodeJS.Signals | null; read: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let read = '';
    let stderr = '';
    if (keep === undefined) child.stdout.destroy();
    child.stdout.on('data', (d: Buffer) => {
      read += d.toString();
      if (keep?.(read)) child.stdout.destroy();
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code, signal) => resolve({ code, signal, read, stderr }));
  });
}

describe('cairn dump (and other output) when stdout fails', () => {
  let repo: string;
  beforeAll(() => {
    // Several MiB of CSV: far more than a pipe holds, so the reader closes while dump writes.
    const file = join(work, 'big.db');
    const db = new Database(file);
    db.exec("CREATE TABLE big (a, b); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60000) INSERT INTO big SELECT i, printf('%.100c', 'x') FROM n;");
    db.close();
    repo = newRepo('out');
    backup(repo, `sqlite://${file}`, 'o1');
  });

  it('stdout on a full disk (/dev/full): exit 8 naming stdout and the cause, no stack trace, no lock left', () => {
    const full = openSync('/dev/full', 'w');
    try {
      for (const args of [
        ['dump', 'o1', 'big', '--repo', repo],
        ['dump', 'o1', 'big', '--repo', repo, '--format', 'sql'],
        ['backup', 'list', '--repo', repo, '--json'],
        ['diff', 'o1', 'o1', '--repo', repo],
      ]) {
        const r = spawnSync(process.execPath, [CLI, ...args], { stdio: ['ignore', full, 'pipe'], encoding: 'utf8' });
        expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(8);
        expect(r.stderr).toMatch(/^cairn: error: Cannot write to stdout: ENOSPC: no space left on device.*Free space/);
        expect(r.stderr).not.toMatch(/\n\s+at /);
        expect(locksLeft(repo)).toEqual([]);
      }
    } finally {
      closeSync(full);
    }
    expect(cairnJson<{ removed: string[] }>(['unlock', '--repo', repo]).removed).toEqual([]);
  });

  it('a reader that closes after the first line (| head -1): exit 0, nothing on stderr, no lock left', async () => {
    const r = await cairnIntoClosingReader(['dump', 'o1', 'big', '--repo', repo], (read) => read.includes('\n'));
    expect(r.read.split('\n')[0]).toBe('rowid,a,b');
    expect({ code: r.code, signal: r.signal, stderr: r.stderr }).toEqual({ code: 0, signal: null, stderr: '' });
    expect(locksLeft(repo)).toEqual([]);
    expect(cairnJson<{ removed: string[] }>(['unlock', '--repo', repo]).removed).toEqual([]);
  });

  it('--retry-lock waits while an exclusive lock (prune, repair) is held, then dumps (exit 0)', async () => {
    const held = await (await Repository.open(new FileSystemStorage(repo))).lock(true, 'held by the test');
    const child = spawn(process.execPath, [CLI, 'dump', 'o1', 'big', '--repo', repo, '--retry-lock', '30s'], { stdio: ['ignore', 'pipe', 'pipe'] });
    // A failed expectation must not leave the lock to the tests after this one.
    onTestFinished(() => held.release().catch(() => undefined));
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    // The notice on stderr says the dump is waiting: release the lock then (or the dump ended).
    const waiting = await Promise.race([
      new Promise<boolean>((resolve) =>
        child.stderr.on('data', (d: Buffer) => {
          stderr += d.toString();
          if (stderr.includes('waiting up to 30s')) resolve(true);
        }),
      ),
      exited.then(() => false),
    ]);
    expect(waiting, stderr).toBe(true);
    expect(stdout).toBe('');
    await held.release();
    expect(await exited, stderr).toBe(0);
    expect(stderr).toContain('"held by the test"');
    expect(stdout.split('\n')[0]).toBe('rowid,a,b');
    expect(stdout.split('\n')).toHaveLength(60002);
    expect(locksLeft(repo)).toEqual([]);
  });

  it('diff and stats into a reader already gone: exit 0, quietly', async () => {
    for (const args of [['diff', 'o1', 'o1', '--repo', repo], ['stats', '--repo', repo]]) {
      const r = await cairnIntoClosingReader(args);
      expect({ args, code: r.code, stderr: r.stderr }).toEqual({ args, code: 0, stderr: '' });
    }
    expect(locksLeft(repo)).toEqual([]);
  });
});

interface DiffJson {
  a: { id: string };
  b: { id: string };
  durationMs: number;
  summary: { added: number; removed: number; changed: number; unchanged: number; rowsDelta: number };
  collections: { name: string; status: string; a: { rows: number | null }; b: { rows: number | null }; rowsDelta: number; sameContent: boolean | null; definitionChanged: boolean | null }[];
}

describe('cairn diff', () => {
  it('added, removed, changed (rows, definition) and unchanged collections, as a table and as JSON', () => {
    const file = join(work, 'diff.db');
    const db = new Database(file);
    db.exec(`CREATE TABLE keep (x); INSERT INTO keep VALUES (1), (2);
             CREATE TABLE grow (x); INSERT INTO grow VALUES (1);
             CREATE TABLE shape (x); INSERT INTO shape VALUES (1);
             CREATE TABLE gone (x);
             CREATE VIEW vw AS SELECT x FROM keep;`);
    const repo = newRepo('diff');
    backup(repo, `sqlite://${file}`, 'd1');
    db.exec(`INSERT INTO grow VALUES (2), (3); ALTER TABLE shape ADD COLUMN y; DROP TABLE gone; CREATE TABLE fresh (z); INSERT INTO fresh VALUES (1);`);
    db.close();
    backup(repo, `sqlite://${file}`, 'd2');

    const doc = cairnJson<DiffJson>(['diff', 'd1', 'd2', '--repo', repo]);
    expect(doc.a.id).toBe('d1');
    expect(doc.b.id).toBe('d2');
    expect(typeof doc.durationMs).toBe('number');
    const by = Object.fromEntries(doc.collections.map((c) => [c.name, c]));
    expect(by.keep).toMatchObject({ status: 'unchanged', sameContent: true, definitionChanged: false, rowsDelta: 0, a: { rows: 2 }, b: { rows: 2 } });
    expect(by.vw).toMatchObject({ status: 'unchanged' });
    expect(by.grow).toMatchObject({ status: 'changed', sameContent: false, definitionChanged: false, rowsDelta: 2, a: { rows: 1 }, b: { rows: 3 } });
    expect(by.shape).toMatchObject({ status: 'changed', definitionChanged: true });
    expect(by.gone).toMatchObject({ status: 'removed', b: { rows: null }, sameContent: null });
    expect(by.fresh).toMatchObject({ status: 'added', a: { rows: null }, rowsDelta: 1 });
    expect(doc.summary).toMatchObject({ added: 1, removed: 1, changed: 2, unchanged: 2, rowsDelta: 3 });

    const human = cairn(['diff', 'd1', 'd2', '--repo', repo]);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/^Backup d1 .* → d2 .*: 1 added, 1 removed, 2 changed, 2 unchanged; rows \+3/);
    expect(human.stdout).toMatch(/STATUS +COLLECTION +KIND +ROWS A +ROWS B +ROWS Δ/);
    expect(human.stdout).toMatch(/\nchanged +grow +table +1 +3 +\+2 .* differs +same\n/);
    expect(human.stdout).toMatch(/\nadded +fresh +table +- +1 +\+1/);

    // The same backup twice: nothing changed.
    const same = cairnJson<DiffJson>(['diff', 'd2', 'd2', '--repo', repo]);
    expect(same.summary).toMatchObject({ added: 0, removed: 0, changed: 0, rowsDelta: 0 });
    expect(cairn(['diff', 'd1', 'nope', '--repo', repo]).code).toBe(3);
  });

  it('a PostgreSQL backup of an unchanged database: tables and views unchanged', () => {
    const db = newDb();
    psql(db, 'CREATE TABLE t (id serial PRIMARY KEY, v text); INSERT INTO t (v) VALUES (\'a\'); CREATE VIEW w AS SELECT v FROM t;');
    const repo = newRepo('pgdiff');
    backup(repo, pgUrl(db), 'p1');
    backup(repo, pgUrl(db), 'p2');
    psql(db, 'ALTER TABLE t ADD COLUMN extra int;');
    backup(repo, pgUrl(db), 'p3');
    const same = cairnJson<DiffJson>(['diff', 'p1', 'p2', '--repo', repo]);
    const by = Object.fromEntries(same.collections.map((c) => [c.name, c]));
    expect(by['public.t']).toMatchObject({ status: 'unchanged', sameContent: true, definitionChanged: false });
    expect(by['public.w']).toMatchObject({ status: 'unchanged' });
    const altered = cairnJson<DiffJson>(['diff', 'p2', 'p3', '--repo', repo]);
    expect(altered.collections.find((c) => c.name === 'public.t')).toMatchObject({ status: 'changed', definitionChanged: true });
  });
});
