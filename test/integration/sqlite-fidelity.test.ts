/**
 * Issue 14, SQLite lines 16-19: what `sqlite3 src .dump | sqlite3 dst` carries, cairn carries
 * too (and where the dump cannot, cairn does better or refuses with a message). Every input is
 * restored into a new file and over an existing one (--on-conflict overwrite), and compared with
 * the source value by value (`typeof`, `hex`), and with the sqlite3 CLI's dump where it exists.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Database from '../../src/sources/sqlite/driver.js';
import { SqliteSource } from '../../src/sources/sqlite/source.js';
import { openTarget } from '../../src/sources/index.js';
import { runRestore } from '../../src/jobs/restore.js';
import { backupInto } from '../helpers/hostile.js';
import { knownFunctions, withFallbacks } from '../../src/sources/sqlite/app-names.js';
import type { BackupManifest } from '../../src/core/schemas.js';
import { cairn, cairnJson } from '../helpers/cli.js';

let work: string;
let repo: string;
let counter = 0;

const SQLITE3 = spawnSync('sqlite3', ['-version'], { encoding: 'utf8' }).status === 0;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'cairn-sqlite-fidelity-'));
  repo = join(work, 'repo');
  const r = cairn(['repo', 'init', repo]);
  expect(r.code, r.stderr).toBe(0);
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

function fresh(name: string): string {
  counter++;
  return join(work, `${name}-${counter}.db`);
}

/** Creates a database file with `setup` run on it. */
function make(name: string, setup: (db: BetterSqlite3.Database) => void): string {
  const file = fresh(name);
  const db = new Database(file);
  try {
    setup(db);
  } finally {
    db.close();
  }
  return file;
}

function backup(file: string, extra: string[] = []): BackupManifest & { warnings: string[] } {
  return cairnJson<BackupManifest & { warnings: string[] }>(['backup', 'create', '--source', `sqlite://${file}`, '--repo', repo, ...extra]);
}

function restore(id: string, to: string, extra: string[] = []): ReturnType<typeof cairn> {
  return cairn(['restore', id, '--repo', repo, '--to', `sqlite://${to}`, ...extra]);
}

/** The sqlite3 CLI's copy: `sqlite3 src .dump | sqlite3 dst`. */
function dumpReference(file: string): string {
  const ref = fresh('reference');
  const dump = execFileSync('sqlite3', [file, '.dump'], { maxBuffer: 1 << 30 });
  spawnSync('sqlite3', [ref], { input: dump, maxBuffer: 1 << 30 });
  return ref;
}

const q = (name: string): string => `"${name.replace(/"/g, '""')}"`;

/** Every value of a table as `typeof:hex`, rows by rowid. */
function cells(file: string, table: string, order = 'rowid'): string[][] {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const cols = (db.prepare(`PRAGMA table_info(${q(table)})`).all() as { name: string }[]).map((c) => q(c.name));
    const sql = `SELECT ${cols.map((c) => `typeof(${c}) || ':' || coalesce(hex(${c}), '')`).join(', ')} FROM ${q(table)} ORDER BY ${order}`;
    return db.prepare(sql).raw(true).all() as string[][];
  } finally {
    db.close();
  }
}

function pragma(file: string, name: string): unknown {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return db.pragma(name, { simple: true });
  } finally {
    db.close();
  }
}

function query(file: string, sql: string): unknown[][] {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return db.prepare(sql).raw(true).all() as unknown[][];
  } finally {
    db.close();
  }
}

/** An existing target holding an older copy of `table` (same columns), for overwrite restores. */
function existingTarget(setup: (db: BetterSqlite3.Database) => void): string {
  return make('existing', setup);
}

describe('16: TEXT values keep their bytes', () => {
  const setup = (db: BetterSqlite3.Database): void => {
    db.exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, v, w TEXT);
      INSERT INTO t VALUES (1, CAST(x'61FF62' AS TEXT), 'plain');
      INSERT INTO t VALUES (2, CAST(x'C0AF' AS TEXT), CAST(x'F09080' AS TEXT));
      INSERT INTO t VALUES (3, CAST(x'610062' AS TEXT), CAST(x'EDA080' AS TEXT));
      INSERT INTO t VALUES (4, 'é' || char(65533), x'61FF62');
      INSERT INTO t VALUES (5, CAST(x'FFFE' AS TEXT), 1.5);
      INSERT INTO t VALUES (6, NULL, 42);
      CREATE TABLE k (name TEXT PRIMARY KEY, n) WITHOUT ROWID;
      INSERT INTO k VALUES (CAST(x'6BFF' AS TEXT), 1), ('k', 2);
      CREATE TABLE plain (a, b);
      INSERT INTO plain VALUES (CAST(x'80' AS TEXT), CAST(x'FF' AS TEXT));`);
    // A huge value with an invalid byte in the middle (spans many chunks).
    db.prepare('INSERT INTO t VALUES (7, CAST(? AS TEXT), NULL)').run(Buffer.concat([Buffer.alloc(3_000_000, 0x61), Buffer.from([0xff]), Buffer.alloc(10, 0x62)]));
  };

  it('restores invalid UTF-8, NUL inside text and a 3 MB value byte for byte, new file and overwrite', () => {
    const src = make('text-bytes', setup);
    const m = backup(src);
    const expected = { t: cells(src, 't'), k: cells(src, 'k', 'name'), plain: cells(src, 'plain') };
    expect(expected.t[0]).toEqual(['integer:31', 'text:61FF62', 'text:706C61696E']);

    const copy = fresh('text-bytes-copy');
    const r = restore(m.id, copy);
    expect(r.code, r.stderr).toBe(0);
    expect({ t: cells(copy, 't'), k: cells(copy, 'k', 'name'), plain: cells(copy, 'plain') }).toEqual(expected);

    // Over an existing file: the rows go through the switch's INSERT … SELECT.
    const target = existingTarget((db) => db.exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, v, w TEXT); INSERT INTO t VALUES (9, 'old', 'old');
      CREATE TABLE k (name TEXT PRIMARY KEY, n) WITHOUT ROWID; CREATE TABLE plain (a, b); CREATE TABLE other (x); INSERT INTO other VALUES (1);`));
    const o = restore(m.id, target, ['--on-conflict', 'overwrite']);
    expect(o.code, o.stderr).toBe(0);
    expect({ t: cells(target, 't'), k: cells(target, 'k', 'name'), plain: cells(target, 'plain') }).toEqual(expected);
    expect(query(target, 'SELECT x FROM other')).toEqual([[1]]);

    if (!SQLITE3) {
      console.log('skipped the sqlite3 .dump comparison: the sqlite3 CLI is not installed');
      return;
    }
    // The dump keeps the bytes too (except after a NUL): cairn is at least as exact.
    const ref = dumpReference(src);
    const refT = cells(ref, 't');
    expect(refT[0]).toEqual(expected.t[0]);
  });

  it('restores a 24 MiB BLOB and a 24 MiB TEXT in one row exactly (issue 22: large values are streamed, not copied whole)', () => {
    // Incompressible bytes, and text of 1-, 2- and 4-byte characters (a surrogate pair lands on
    // the encoder's 1 Mi-unit piece boundaries), with a small value after each large one.
    const blob = randomBytes(24 * 1024 * 1024);
    const text = 'aé😀'.repeat(3 * 1024 * 1024).slice(0, 24 * 1024 * 1024 - 7);
    const src = make('large-values', (db) => {
      db.exec('CREATE TABLE big (id INTEGER PRIMARY KEY, b BLOB, s TEXT, tail INTEGER)');
      db.prepare('INSERT INTO big VALUES (1, ?, ?, 7), (2, x\'00\', \'x\', 8)').run(blob, text);
    });
    const m = backup(src);
    const copy = fresh('large-values-copy');
    const r = restore(m.id, copy);
    expect(r.code, r.stderr).toBe(0);
    const db = new Database(copy, { readonly: true, fileMustExist: true });
    try {
      const rows = db.prepare('SELECT id, typeof(b), b, typeof(s), s, tail FROM big ORDER BY id').raw(true).all() as unknown[][];
      expect(rows.map((row) => [row[0], row[1], row[3], row[5]])).toEqual([[1, 'blob', 'text', 7], [2, 'blob', 'text', 8]]);
      expect((rows[0]?.[2] as Buffer).equals(blob)).toBe(true);
      expect(rows[0]?.[4] === text).toBe(true);
    } finally {
      db.close();
    }
  });

  it('UTF-16 databases: the encoding and the text are kept; restores across encodings convert', () => {
    for (const encoding of ['UTF-16le', 'UTF-16be']) {
      const src = make('utf16', (db) => {
        db.pragma(`encoding = '${encoding}'`);
        db.exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, v); INSERT INTO t VALUES (1, 'héllo ☃ 𝄞'), (2, ''), (3, 'a' || char(0) || 'b'), (4, x'00ff');`);
      });
      const m = backup(src);
      const copy = fresh('utf16-copy');
      const r = restore(m.id, copy);
      expect(r.code, r.stderr).toBe(0);
      expect(pragma(copy, 'encoding')).toBe(encoding);
      expect(cells(copy, 't')).toEqual(cells(src, 't'));
    }
    // Across encodings over an existing file (SQLite attaches only files of one encoding): the
    // text is converted, its characters kept.
    const utf16 = make('utf16-src', (db) => {
      db.pragma("encoding = 'UTF-16le'");
      db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v); INSERT INTO t VALUES (1, 'héllo ☃ 𝄞');");
    });
    const utf8 = make('utf8-src', (db) => db.exec("CREATE TABLE u (id INTEGER PRIMARY KEY, v); INSERT INTO u VALUES (1, 'grüße'), (2, CAST(x'61FF' AS TEXT));"));
    const into8 = existingTarget((db) => db.exec('CREATE TABLE keep (x)'));
    const into16 = existingTarget((db) => {
      db.pragma("encoding = 'UTF-16be'");
      db.exec('CREATE TABLE keep (x)');
    });
    const r8 = restore(backup(utf16).id, into8, ['--on-conflict', 'overwrite']);
    expect(r8.code, r8.stderr).toBe(0);
    expect(query(into8, 'SELECT v FROM t')).toEqual([['héllo ☃ 𝄞']]);
    expect(pragma(into8, 'encoding')).toBe('UTF-8');
    const r16 = restore(backup(utf8).id, into16, ['--on-conflict', 'overwrite']);
    expect(r16.code, r16.stderr).toBe(0);
    // The one value that is not UTF-8 cannot be kept in a UTF-16 file: said, with the count.
    expect(r16.stderr).toMatch(/cairn: warning: table "u": 1 text value was not valid UTF-8 and was converted to the file's UTF-16be/);
    expect(r8.stderr).toMatch(/cairn: warning: .* keeps its encoding UTF-8, not the backup's UTF-16le/);
    expect(r8.stderr).not.toMatch(/not valid UTF-8/);
    expect(query(into16, 'SELECT v FROM u WHERE id = 1')).toEqual([['grüße']]);
    expect(pragma(into16, 'encoding')).toBe('UTF-16be');
  });
});

describe('17: database-level properties', () => {
  const setup = (db: BetterSqlite3.Database): void => {
    db.pragma('page_size = 8192');
    db.pragma('auto_vacuum = INCREMENTAL');
    db.pragma('journal_mode = WAL');
    db.pragma('user_version = 42');
    db.pragma('application_id = 1095650131');
    db.exec(`CREATE TABLE items (id INTEGER PRIMARY KEY, cat TEXT, sku TEXT UNIQUE);
      CREATE INDEX items_cat ON items(cat);
      CREATE TABLE other (a, b); CREATE INDEX other_a ON other(a);
      WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
      INSERT INTO items SELECT i, 'c' || (i % 7), 's' || i FROM n;
      INSERT INTO other SELECT id, cat FROM items;
      ANALYZE;`);
  };
  const stat1 = (file: string): unknown[][] => query(file, 'SELECT tbl, idx, stat FROM sqlite_stat1 ORDER BY tbl, idx');
  const stat4 = (file: string): unknown[][] => query(file, 'SELECT tbl, idx, neq, nlt, ndlt, hex(sample) FROM sqlite_stat4 ORDER BY tbl, idx, nlt');

  it('a new file gets user_version, application_id, page size, auto_vacuum, WAL and the statistics', () => {
    const src = make('props', setup);
    const m = backup(src);
    expect(m.collections.find((c) => c.name === 'sqlite_database')).toMatchObject({ kind: 'sqlite_database', selectable: false });
    const copy = fresh('props-copy');
    const r = restore(m.id, copy);
    expect(r.code, r.stderr).toBe(0);
    for (const p of ['user_version', 'application_id', 'page_size', 'auto_vacuum', 'journal_mode', 'encoding']) {
      expect(pragma(copy, p), p).toEqual(pragma(src, p));
    }
    expect(stat1(copy)).toEqual(stat1(src));
    expect(stat4(copy)).toEqual(stat4(src));
    expect(stat1(copy).length).toBeGreaterThan(2);
    if (!SQLITE3) {
      console.log('skipped the sqlite3 .dump comparison: the sqlite3 CLI is not installed');
      return;
    }
    // The dump carries sqlite_stat1 (not user_version): cairn's statistics are the same.
    expect(stat1(copy)).toEqual(stat1(dumpReference(src)));
  });

  it('--include and --rename carry the statistics of the restored tables under their new names', () => {
    const src = make('props-rename', setup);
    const m = backup(src);
    const copy = fresh('props-rename-copy');
    const r = restore(m.id, copy, ['--include', 'items', '--rename', 'items=goods']);
    expect(r.code, r.stderr).toBe(0);
    const renamed = stat1(src)
      .filter((row) => row[0] === 'items')
      .map(([, idx, stat]) => ['goods', String(idx).replace('items_cat', 'goods_cat').replace('sqlite_autoindex_items_', 'sqlite_autoindex_goods_'), stat])
      .sort((a, b) => String(a[1]).localeCompare(String(b[1])));
    expect(stat1(copy)).toEqual(renamed);
    expect(pragma(copy, 'user_version')).toBe(42);
    // The planner reads them: the index names exist in the copy.
    const idxNames = query(copy, "SELECT name FROM sqlite_schema WHERE type = 'index'").map((x) => x[0]);
    for (const row of stat1(copy)) expect(idxNames).toContain(row[1]);
  });

  it('an existing file gets user_version, application_id and the statistics; fail mode names a different user_version', () => {
    const src = make('props-existing', setup);
    const m = backup(src);
    const target = existingTarget((db) => {
      db.pragma('user_version = 3');
      db.exec('CREATE TABLE keep (x); INSERT INTO keep VALUES (1);');
    });
    const refused = restore(m.id, target);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toContain('PRAGMA user_version = 3');
    expect(pragma(target, 'user_version')).toBe(3);
    const r = restore(m.id, target, ['--on-conflict', 'overwrite']);
    expect(r.code, r.stderr).toBe(0);
    expect(pragma(target, 'user_version')).toBe(42);
    expect(pragma(target, 'application_id')).toBe(1095650131);
    expect(stat1(target)).toEqual(stat1(src));
    expect(query(target, 'SELECT x FROM keep')).toEqual([[1]]);
    // The file's own layout stays (SQLite cannot change it in place), and the restore says so.
    expect(pragma(target, 'page_size')).toBe(4096);
    expect(r.stderr).toMatch(/cairn: warning: .* keeps its page_size 4096, not the backup's 8192/);
    expect(r.stderr).toMatch(/keeps its auto_vacuum none, not the backup's incremental/);
    expect(r.stderr).toMatch(/keeps its journal mode rollback, not the backup's WAL/);
    expect(r.stderr).not.toMatch(/encoding/);
    // A new file gets them all: nothing to warn about.
    const copy = fresh('props-existing-copy');
    const n = cairnJson<{ warnings?: string[] }>(['restore', m.id, '--repo', repo, '--to', `sqlite://${copy}`, '--json']);
    expect(n.warnings).toBeUndefined();
  });

  it('a restore of part of the backup (--include, --exclude, --rename) leaves the file\'s user_version and application_id, never a conflict; statistics go with the tables', () => {
    const src = make('props-part', setup);
    const m = backup(src);
    const live = (db: BetterSqlite3.Database): void => {
      db.pragma('user_version = 12');
      db.pragma('application_id = 777');
      db.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, cat TEXT, sku TEXT UNIQUE); CREATE TABLE keep (x); INSERT INTO keep VALUES (1);');
    };
    const cases: [string, string[]][] = [
      ['include+rename', ['--include', 'items', '--rename', 'items=items_old']],
      ['include', ['--include', 'other']],
      ['exclude', ['--exclude', 'items']],
      ['rename only', ['--rename', 'items=goods', '--rename', 'other=other2']],
    ];
    for (const [label, args] of cases) {
      for (const mode of ['fail', 'overwrite']) {
        const target = existingTarget(live);
        const r = restore(m.id, target, [...args, '--on-conflict', mode]);
        expect(r.code, `${label} ${mode}: ${r.stderr}`).toBe(0);
        expect(pragma(target, 'user_version'), `${label} ${mode}`).toBe(12);
        expect(pragma(target, 'application_id'), `${label} ${mode}`).toBe(777);
        expect(query(target, 'SELECT x FROM keep')).toEqual([[1]]);
      }
    }
    // The statistics of the renamed table come along under its new name.
    const renamed = existingTarget(live);
    const r = restore(m.id, renamed, ['--include', 'items', '--rename', 'items=items_old']);
    expect(r.code, r.stderr).toBe(0);
    expect(stat1(renamed).map((row) => row[0])).toContain('items_old');
    expect(stat1(renamed).map((row) => row[0])).not.toContain('other');
    // The whole backup still sets them (and under fail names the difference).
    const whole = existingTarget((db) => {
      db.pragma('user_version = 12');
      db.exec('CREATE TABLE keep (x)');
    });
    const refused = restore(m.id, whole);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toContain('PRAGMA user_version = 12');
    const w = restore(m.id, whole, ['--on-conflict', 'overwrite']);
    expect(w.code, w.stderr).toBe(0);
    expect(pragma(whole, 'user_version')).toBe(42);
  });

  it('a file with only defaults records no properties collection', () => {
    const src = make('props-none', (db) => db.exec('CREATE TABLE t (a); INSERT INTO t VALUES (1);'));
    const m = backup(src);
    expect(m.collections.map((c) => c.name)).toEqual(['t']);
  });
});

describe('19: virtual tables come back with their index, and the application keeps working', () => {
  const setup = (db: BetterSqlite3.Database): void => {
    db.exec(`CREATE TABLE docs (id INTEGER PRIMARY KEY, title TEXT, body TEXT);
      CREATE VIRTUAL TABLE docs_fts USING fts5(title, body, content='docs', content_rowid='id');
      CREATE TRIGGER docs_ai AFTER INSERT ON docs BEGIN
        INSERT INTO docs_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END;
      CREATE TRIGGER docs_ad AFTER DELETE ON docs BEGIN
        INSERT INTO docs_fts(docs_fts, rowid, title, body) VALUES ('delete', old.id, old.title, old.body); END;
      CREATE TRIGGER docs_au AFTER UPDATE ON docs BEGIN
        INSERT INTO docs_fts(docs_fts, rowid, title, body) VALUES ('delete', old.id, old.title, old.body);
        INSERT INTO docs_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END;
      INSERT INTO docs (title, body) VALUES ('alpha', 'the quick brown fox'), ('beta', 'jumps over the lazy dog'), ('gamma', 'sphinx of black quartz');
      CREATE VIRTUAL TABLE notes USING fts5(text);
      INSERT INTO notes VALUES ('remember the milk'), ('call the plumber');
      CREATE VIRTUAL TABLE bare USING fts5(w, content='');
      INSERT INTO bare (rowid, w) VALUES (7, 'contentless words here');
      CREATE VIRTUAL TABLE old4 USING fts4(a, b);
      INSERT INTO old4 VALUES ('fts four', 'still here');
      CREATE VIRTUAL TABLE old3 USING fts3(c);
      INSERT INTO old3 VALUES ('fts three lives');
      CREATE TABLE src4 (title, body);
      INSERT INTO src4 VALUES ('sphinx', 'of black quartz'), ('judge', 'my vow');
      CREATE VIRTUAL TABLE ext4 USING fts4(content='src4', title, body);
      INSERT INTO ext4(ext4) VALUES ('rebuild');
      CREATE VIRTUAL TABLE boxes USING rtree(id, minx, maxx, miny, maxy);
      INSERT INTO boxes VALUES (1, 0, 10, 0, 10), (2, 5, 15, 5, 15), (3, 20, 30, 20, 30);
      CREATE VIEW hits AS SELECT rowid, title FROM docs_fts WHERE docs_fts MATCH 'fox';`);
  };
  const searches = (file: string): unknown => ({
    docs: query(file, "SELECT rowid FROM docs_fts WHERE docs_fts MATCH 'quick OR dog' ORDER BY rowid"),
    notes: query(file, "SELECT text FROM notes WHERE notes MATCH 'milk'"),
    bare: query(file, "SELECT rowid FROM bare WHERE bare MATCH 'words'"),
    old4: query(file, "SELECT a FROM old4 WHERE old4 MATCH 'still'"),
    old3: query(file, "SELECT c FROM old3 WHERE old3 MATCH 'three'"),
    ext4: query(file, "SELECT docid, title FROM ext4 WHERE ext4 MATCH 'sphinx'"),
    boxes: query(file, 'SELECT id FROM boxes WHERE maxx >= 8 AND minx <= 12 ORDER BY id'),
    hits: query(file, 'SELECT * FROM hits'),
  });
  /** Writes through the sync triggers and searches what they indexed. */
  const write = (file: string, boxes = true): unknown[][] => {
    const db = new Database(file);
    try {
      db.exec(`INSERT INTO docs (title, body) VALUES ('delta', 'a brand new zebra');
        UPDATE docs SET body = 'the slow brown fox' WHERE id = 1; DELETE FROM docs WHERE id = 2;`);
      if (boxes) db.exec('INSERT INTO boxes VALUES (4, 1, 2, 1, 2);');
      expect(db.prepare("SELECT rowid FROM docs_fts WHERE docs_fts MATCH 'zebra OR slow OR lazy'").raw(true).all()).toEqual([[1n], [4n]].map((r) => r.map(Number)));
      return db.prepare("INSERT INTO docs_fts(docs_fts, rank) VALUES ('integrity-check', 0) RETURNING 1").raw(true).all() as unknown[][];
    } finally {
      db.close();
    }
  };

  it('FTS5 (external content, normal, contentless), FTS4 and R*Tree: new file, overwrite, compared with the dump', () => {
    const src = make('vtab', setup);
    const m = backup(src);
    expect(m.collections.filter((c) => c.kind === 'virtual_table').map((c) => c.name).sort()).toEqual(['bare', 'boxes', 'docs_fts', 'ext4', 'notes', 'old3', 'old4']);
    expect(m.warnings.join('\n')).not.toContain('not backed up');
    const expected = searches(src);
    const copy = fresh('vtab-copy');
    const r = restore(m.id, copy);
    expect(r.code, r.stderr).toBe(0);
    expect(searches(copy)).toEqual(expected);
    // The shadow tables are the source's, row for row.
    for (const shadow of ['docs_fts_data', 'docs_fts_idx', 'docs_fts_docsize', 'docs_fts_config', 'notes_content', 'bare_data', 'old4_segdir', 'old3_segments', 'ext4_segdir', 'boxes_node', 'boxes_rowid']) {
      expect(cells(copy, shadow, '1'), shadow).toEqual(cells(src, shadow, '1'));
    }
    write(copy);
    expect(query(copy, 'PRAGMA integrity_check')).toEqual([['ok']]);

    const target = existingTarget((db) => db.exec(`CREATE TABLE docs (id INTEGER PRIMARY KEY, title TEXT, body TEXT);
      CREATE VIRTUAL TABLE docs_fts USING fts5(title, body, content='docs', content_rowid='id'); CREATE TABLE keep (x); INSERT INTO keep VALUES (1);`));
    const o = restore(m.id, target, ['--on-conflict', 'overwrite']);
    expect(o.code, o.stderr).toBe(0);
    expect(searches(target)).toEqual(expected);
    write(target);
    expect(query(target, 'PRAGMA integrity_check')).toEqual([['ok']]);
    expect(query(target, 'SELECT x FROM keep')).toEqual([[1]]);

    if (!SQLITE3) {
      console.log('skipped the sqlite3 .dump comparison: the sqlite3 CLI is not installed');
      return;
    }
    expect(searches(dumpReference(src))).toEqual(expected);
  });

  it('leaving the FTS table out while its sync triggers come back is refused, naming the trigger', () => {
    const src = make('vtab-partial', setup);
    const m = backup(src);
    const copy = fresh('vtab-partial-copy');
    const r = restore(m.id, copy, ['--include', 'docs']);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('docs_ai');
    expect(r.stderr).toContain('"docs_fts"');
    expect(existsSync(copy)).toBe(false);
    // The FTS table without the table it indexes (or with that table renamed) is refused too.
    for (const args of [['--include', 'docs_fts'], ['--include', 'docs,docs_fts', '--rename', 'docs=papers']]) {
      const refused = restore(m.id, copy, args);
      expect(refused.code, args.join(' ')).toBe(4);
      expect(refused.stderr).toContain(`content='docs'`);
      expect(existsSync(copy)).toBe(false);
    }
    // With it, the copy works; renamed, the index follows its new name.
    const ok = restore(m.id, copy, ['--include', 'docs,docs_fts,notes', '--rename', 'notes=memos']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(query(copy, "SELECT text FROM memos WHERE memos MATCH 'plumber'")).toEqual([['call the plumber']]);
    write(copy, false);
  });

  it('a virtual table of an application module is named in a warning at backup', () => {
    const src = make('vtab-unknown', (db) => {
      db.exec('CREATE TABLE t (a); CREATE VIRTUAL TABLE s USING fts5(x);');
      // A module this SQLite does not have (as an application-registered one would look).
      db.unsafeMode(true);
      db.pragma('writable_schema = ON');
      db.exec(`INSERT INTO sqlite_schema (type, name, tbl_name, rootpage, sql) VALUES ('table', 'appvt', 'appvt', 0, 'CREATE VIRTUAL TABLE appvt USING appmodule(a, b)')`);
      db.pragma('writable_schema = OFF');
    });
    const m = backup(src);
    expect(m.warnings.join('\n')).toMatch(/virtual table appvt is not backed up: its module appmodule/);
    expect(m.collections.map((c) => c.name).sort()).toEqual(['s', 't']);
  });
});

describe('18: collations the application registers', () => {
  /** Android-like: the app registers LOCALIZED and UNICODE; SQLite alone has neither. */
  const setup = (db: BetterSqlite3.Database): void => {
    db.exec(`CREATE TABLE android_metadata (locale TEXT); INSERT INTO android_metadata VALUES ('de_DE');
      CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT COLLATE NOCASE UNIQUE, city TEXT);
      CREATE INDEX contacts_city ON contacts (city COLLATE RTRIM);
      CREATE VIEW by_name AS SELECT name FROM contacts ORDER BY name COLLATE NOCASE;
      CREATE TABLE log (msg TEXT);
      CREATE TRIGGER contacts_log AFTER INSERT ON contacts WHEN new.city = 'x' COLLATE NOCASE BEGIN INSERT INTO log VALUES (new.name); END;
      INSERT INTO contacts (name, city) VALUES ('Zoë', 'Berlin'), ('adam', 'Köln'), ('Émile', 'Aachen');`);
    // What the application's schema says (SQLite cannot create it without the collations).
    db.unsafeMode(true);
    db.pragma('writable_schema = ON');
    db.exec(`UPDATE sqlite_schema SET sql = replace(replace(sql, 'COLLATE NOCASE', 'COLLATE LOCALIZED'), 'COLLATE RTRIM', 'COLLATE "UNICODE"')
      WHERE name IN ('contacts', 'contacts_city', 'by_name', 'contacts_log')`);
    db.pragma('writable_schema = OFF');
  };
  const schemaOf = (file: string): unknown[][] => query(file, "SELECT type, name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY name");
  const PYTHON = spawnSync('python3', ['-c', 'import sqlite3'], { encoding: 'utf8' }).status === 0;
  /** The application's view: registers its collations, reindexes, writes and checks the file. */
  const asApplication = (file: string): string => {
    const script = `import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
cmp = lambda a, b: (a.casefold() > b.casefold()) - (a.casefold() < b.casefold())
db.create_collation('LOCALIZED', cmp)
db.create_collation('UNICODE', cmp)
db.execute('REINDEX LOCALIZED'); db.execute('REINDEX UNICODE')
db.execute("INSERT INTO contacts (name, city) VALUES ('bob', 'x')")
db.commit()
print(db.execute('PRAGMA integrity_check').fetchone()[0], [r[0] for r in db.execute('SELECT name FROM by_name')], db.execute('SELECT count(*) FROM log').fetchone()[0])`;
    return execFileSync('python3', ['-c', script, file], { encoding: 'utf8' }).trim();
  };

  it('backs up with a warning, restores the definitions as written (new file and overwrite); the application reindexes and writes', () => {
    const src = make('collate', setup);
    const m = backup(src);
    expect(m.warnings.join('\n')).toMatch(/collation LOCALIZED \(used by table contacts, view by_name, trigger contacts_log\).*REINDEX LOCALIZED/);
    expect(m.warnings.join('\n')).toMatch(/collation UNICODE \(used by index contacts_city\)/);
    const copy = fresh('collate-copy');
    const r = restore(m.id, copy);
    expect(r.code, r.stderr).toBe(0);
    // The restore says what it did in their place, and which index the application must rebuild.
    expect(r.stderr).toMatch(
      /cairn: warning: collation LOCALIZED is registered by the application, not by SQLite: table "contacts", trigger "contacts_log", view "by_name" were created with BINARY in its place.*the index "sqlite_autoindex_contacts_1" was built with BINARY order: run REINDEX "sqlite_autoindex_contacts_1" once the application has registered it/,
    );
    expect(r.stderr).toMatch(/cairn: warning: collation UNICODE .*index "contacts_city" was created with BINARY.*run REINDEX "contacts_city" once/);
    expect(schemaOf(copy)).toEqual(schemaOf(src));
    expect(cells(copy, 'contacts')).toEqual(cells(src, 'contacts'));

    const target = existingTarget(setup);
    const o = cairnJson<{ warnings?: string[] }>(['restore', m.id, '--repo', repo, '--to', `sqlite://${target}`, '--on-conflict', 'overwrite', '--include', 'contacts,by_name', '--json']);
    expect(o.warnings?.join('\n')).toMatch(/collation LOCALIZED .*REINDEX "sqlite_autoindex_contacts_1"/);
    expect(schemaOf(target)).toEqual(schemaOf(src));

    const renamed = fresh('collate-renamed');
    const n = restore(m.id, renamed, ['--rename', 'contacts=people', '--exclude', 'by_name']);
    expect(n.code, n.stderr).toBe(0);
    // Under the new names.
    expect(n.stderr).toMatch(/table "people", trigger "people_log".*REINDEX "sqlite_autoindex_people_1"/);
    expect(n.stderr).toMatch(/collation UNICODE .*REINDEX "people_city"/);
    expect(query(renamed, "SELECT sql FROM sqlite_schema WHERE name = 'people'")[0]?.[0]).toContain('COLLATE LOCALIZED');

    if (SQLITE3) {
      // The dump cannot create the table at all: cairn does better.
      expect(query(dumpReference(src), "SELECT count(*) FROM sqlite_schema WHERE name = 'contacts'")).toEqual([[0]]);
    } else console.log('skipped the sqlite3 .dump comparison: the sqlite3 CLI is not installed');
    if (!PYTHON) {
      console.log("skipped the application check: python3's sqlite3 module (to register a collation) is not installed");
      return;
    }
    expect(asApplication(copy)).toBe("ok ['adam', 'bob', 'Zoë', 'Émile'] 1");
    expect(asApplication(target)).toMatch(/^ok /);
  });
});

describe('18 (siblings): a WITHOUT ROWID table keyed by an application collation', () => {
  const setup = (db: BetterSqlite3.Database): void => {
    db.exec(`CREATE TABLE words (w TEXT COLLATE NOCASE PRIMARY KEY, n INTEGER) WITHOUT ROWID;
      CREATE TABLE pairs (a TEXT, b TEXT, v, PRIMARY KEY (a COLLATE NOCASE, b)) WITHOUT ROWID;
      CREATE INDEX pairs_v ON pairs (v);
      CREATE TABLE plain (id INTEGER PRIMARY KEY, w TEXT COLLATE NOCASE);
      INSERT INTO words VALUES ('Zebra', 1), ('apple', 2), ('Äpfel', 3), (CAST(x'61FF' AS TEXT), 4);
      INSERT INTO pairs VALUES ('x', 'B', 1), ('Y', 'a', 2), ('x', 'a', x'00');
      INSERT INTO plain VALUES (1, 'one');`);
    db.unsafeMode(true);
    db.pragma('writable_schema = ON');
    db.exec("UPDATE sqlite_schema SET sql = replace(sql, 'COLLATE NOCASE', 'COLLATE LOCALIZED') WHERE name IN ('words', 'pairs', 'plain')");
    db.pragma('writable_schema = OFF');
  };
  const schemaOf = (file: string): unknown[][] => query(file, "SELECT type, name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY name");
  /** Rows as `typeof:hex`, read from a copy whose schema says BINARY (SQLite cannot read the file's). */
  const rowsOf = (file: string): unknown[][] => {
    const copy = fresh('rows-of');
    execFileSync('cp', [file, copy]);
    const db = new Database(copy);
    try {
      db.unsafeMode(true);
      db.pragma('writable_schema = ON');
      db.exec("UPDATE sqlite_schema SET sql = replace(sql, 'COLLATE LOCALIZED', 'COLLATE BINARY')");
      db.pragma('writable_schema = OFF');
    } finally {
      db.close();
    }
    // Sorted here: a b-tree built in the source collation's order reads in that order.
    const cellsOf = (t: string, order: string): unknown[][] => cells(copy, t, order).sort((x, y) => (JSON.stringify(x) < JSON.stringify(y) ? -1 : 1));
    return [cellsOf('words', 'w'), cellsOf('pairs', 'a, b'), cellsOf('plain', 'id')];
  };

  it('backs up (read from a private copy of the snapshot, rows streamed) and restores into a new file and over an existing one', () => {
    const src = make('wr-collate', setup);
    // A temporary folder of its own, to see that the private copy is gone once the backup is done.
    const tmp = mkdtempSync(join(work, 'tmp-'));
    const m = cairnJson<BackupManifest & { warnings: string[] }>(['backup', 'create', '--source', `sqlite://${src}`, '--repo', repo], { env: { TMPDIR: tmp } });
    expect(m.warnings.join('\n')).toMatch(/collation LOCALIZED/);
    expect(m.collections.find((c) => c.name === 'words')?.rowCount).toBe(4);
    expect(m.collections.find((c) => c.name === 'pairs')?.rowCount).toBe(3);
    expect(readdirSync(tmp)).toEqual([]);
    const expected = rowsOf(src);
    expect(expected[0]).toHaveLength(4);

    const copy = fresh('wr-collate-copy');
    const r = restore(m.id, copy);
    expect(r.code, r.stderr).toBe(0);
    expect(schemaOf(copy)).toEqual(schemaOf(src));
    expect(rowsOf(copy)).toEqual(expected);

    const target = existingTarget((db) => {
      setup(db);
    });
    const o = restore(m.id, target, ['--on-conflict', 'overwrite']);
    expect(o.code, o.stderr).toBe(0);
    expect(schemaOf(target)).toEqual(schemaOf(src));
    expect(rowsOf(target)).toEqual(expected);

    // Renamed into the existing file next to the original.
    const renamed = restore(m.id, target, ['--include', 'words', '--rename', 'words=words_old']);
    expect(renamed.code, renamed.stderr).toBe(0);
    expect(query(target, "SELECT sql FROM sqlite_schema WHERE name = 'words_old'")[0]?.[0]).toContain('COLLATE LOCALIZED');
  });
});

describe('18 (siblings): the copy a WITHOUT ROWID table keyed by an application collation is read from', () => {
  it('holds the snapshot, not rows committed after it opened (WAL), and is removed on close', async () => {
    const src = make('wr-collate-snap', (db) => {
      db.pragma('journal_mode = WAL');
      db.exec("CREATE TABLE words (w TEXT COLLATE NOCASE PRIMARY KEY, n) WITHOUT ROWID; INSERT INTO words VALUES ('a', 1), ('B', 2);");
      db.unsafeMode(true);
      db.pragma('writable_schema = ON');
      db.exec("UPDATE sqlite_schema SET sql = replace(sql, 'COLLATE NOCASE', 'COLLATE LOCALIZED') WHERE name = 'words'");
      db.pragma('writable_schema = OFF');
    });
    // A temporary folder of its own (os.tmpdir() reads TMPDIR), to see the copy come and go.
    const tmp = mkdtempSync(join(work, 'tmp-'));
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = tmp;
    const snap = await new SqliteSource(src).openSnapshot();
    try {
      const desc = (await snap.listCollections()).find((c) => c.name === 'words');
      expect(desc).toBeDefined();
      // Committed after the snapshot opened, before the table is read (the copy is made then).
      const writer = new Database(src);
      try {
        writer.unsafeMode(true);
        writer.pragma('writable_schema = ON');
        writer.exec("UPDATE sqlite_schema SET sql = replace(sql, 'COLLATE LOCALIZED', 'COLLATE NOCASE') WHERE name = 'words'");
        writer.pragma('writable_schema = OFF');
      } finally {
        writer.close();
      }
      const w2 = new Database(src);
      try {
        w2.exec("INSERT INTO words VALUES ('c', 3)");
      } finally {
        w2.close();
      }
      const stream = snap.readData(desc!);
      const parts: Buffer[] = [];
      for await (const chunk of stream) parts.push(Buffer.from(chunk));
      expect(stream.rowCount).toBe(2);
      expect(readdirSync(tmp).filter((n) => n.startsWith('cairn-sqlite-read-'))).toHaveLength(1);
    } finally {
      await snap.close();
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    }
    expect(readdirSync(tmp)).toEqual([]);
  });
});

describe('18 (siblings): a target removed while its restore loaded', () => {
  it('the staging file (loaded for an existing file) becomes the target with the definitions as written', async () => {
    const src = make('gone-target-src', (db) => {
      db.exec("CREATE TABLE words (w TEXT COLLATE NOCASE PRIMARY KEY, n) WITHOUT ROWID; INSERT INTO words VALUES ('a', 1), ('B', 2);");
      db.unsafeMode(true);
      db.pragma('writable_schema = ON');
      db.exec("UPDATE sqlite_schema SET sql = replace(sql, 'COLLATE NOCASE', 'COLLATE LOCALIZED') WHERE name = 'words'");
      db.pragma('writable_schema = OFF');
    });
    const dir = mkdtempSync(join(work, 'gone-'));
    const { repo: r, id } = await backupInto(dir, `sqlite://${src}`);
    const target = existingTarget((db) => db.exec('CREATE TABLE other (x)'));
    await runRestore({ repo: r, backupId: id, target: openTarget(`sqlite://${target}`), onConflict: 'overwrite', jobs: 1, onFinalizing: () => rmSync(target) });
    expect(query(target, "SELECT name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'")).toEqual([
      ['words', query(src, "SELECT sql FROM sqlite_schema WHERE name = 'words'")[0]?.[0]],
    ]);
    expect(String(query(target, "SELECT sql FROM sqlite_schema WHERE name = 'words'")[0]?.[0])).toContain('COLLATE LOCALIZED');
  });
});

describe('18 (siblings): functions the application registers', () => {
  const setup = (db: BetterSqlite3.Database): void => {
    db.exec(`CREATE TABLE items (id INTEGER PRIMARY KEY, key VARCHAR(64), action DECIMAL(10,2), x TEXT CHECK (length(x) > 0), d DEFAULT (upper('a')), g AS (upper(x)) VIRTUAL);
      CREATE INDEX items_g ON items (lower(x));
      CREATE VIEW shouted AS SELECT id, upper(x) AS s FROM items;
      CREATE TABLE log (m);
      CREATE TRIGGER items_log AFTER INSERT ON items BEGIN INSERT INTO log VALUES (lower(new.x)); END;
      INSERT INTO items (id, key, action, x) VALUES (1, 'k1', 1.5, 'Hello'), (2, 'k2', 2, 'World'), (3, 'k3', 3, 'ünïcode');`);
    db.unsafeMode(true);
    db.pragma('writable_schema = ON');
    db.exec(`UPDATE sqlite_schema SET sql = replace(replace(replace(sql, 'length(x)', 'app_valid(x)'), 'upper(', 'app_upper('), 'lower(', 'app_fold(')
      WHERE name IN ('items', 'items_g', 'shouted', 'items_log')`);
    db.pragma('writable_schema = OFF');
  };
  const schemaOf = (file: string): unknown[][] => query(file, "SELECT type, name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY name");
  const PYTHON = spawnSync('python3', ['-c', 'import sqlite3'], { encoding: 'utf8' }).status === 0;

  it('warns at backup (not for column types), restores the definitions as written and the rows; the application reindexes and writes', () => {
    const src = make('appfn', setup);
    const m = backup(src);
    const warnings = m.warnings.join('\n');
    expect(warnings).toMatch(/function app_valid\(\) \(used by table items\)/);
    expect(warnings).toMatch(/function app_fold\(\) \(used by index items_g, trigger items_log\)/);
    expect(warnings).toMatch(/function app_upper\(\) \(used by table items, view shouted\)/);
    expect(warnings).not.toMatch(/varchar|decimal/i);
    const copy = fresh('appfn-copy');
    const r = cairnJson<{ warnings?: string[] }>(['restore', m.id, '--repo', repo, '--to', `sqlite://${copy}`, '--json']);
    const restored = r.warnings?.join('\n') ?? '';
    expect(restored).toMatch(/function app_valid\(\) is registered by the application.*table "items" was created with a stand-in of SQLite's own in its place.*rows of "items" were loaded without evaluating CHECK constraints.*no index depends on it/);
    expect(restored).toMatch(/function app_fold\(\) .*index "items_g", trigger "items_log" were created with a stand-in of SQLite's own.*the index "items_g" was built with the stand-in's values: run REINDEX "items_g" once the application has registered it/);
    expect(restored).toMatch(/function app_upper\(\) .*table "items", view "shouted"/);
    expect(restored).not.toMatch(/varchar|decimal/i);
    expect(schemaOf(copy)).toEqual(schemaOf(src));
    expect(cells(copy, 'items')).toEqual(cells(src, 'items'));
    const target = existingTarget(setup);
    const o = restore(m.id, target, ['--on-conflict', 'overwrite']);
    expect(o.code, o.stderr).toBe(0);
    expect(o.stderr).toMatch(/cairn: warning: function app_fold\(\) .*run REINDEX "items_g"/);
    expect(schemaOf(target)).toEqual(schemaOf(src));
    expect(cells(target, 'items')).toEqual(cells(src, 'items'));
    if (!PYTHON) {
      console.log("skipped the application check: python3's sqlite3 module (to register functions) is not installed");
      return;
    }
    const script = `import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.create_function('app_valid', 1, lambda x: len(x) > 0, deterministic=True)
db.create_function('app_upper', 1, lambda x: x.upper(), deterministic=True)
db.create_function('app_fold', 1, lambda x: x.casefold(), deterministic=True)
db.execute('REINDEX')
db.execute("INSERT INTO items (id, key, action, x) VALUES (4, 'k4', 4, 'Neu')")
db.commit()
print(db.execute('PRAGMA integrity_check').fetchone()[0], db.execute("SELECT id FROM items WHERE app_fold(x) = 'world'").fetchall(), db.execute('SELECT s FROM shouted WHERE id = 4').fetchone()[0], db.execute('SELECT m FROM log').fetchall())`;
    for (const file of [copy, target]) {
      expect(execFileSync('python3', ['-c', script, file], { encoding: 'utf8' }).trim()).toBe("ok [(2,)] NEU [('hello',), ('world',), ('ünïcode',), ('neu',)]");
    }
  });

  it('unique indexes and generated columns on application functions (one and several arguments, nested, concatenated, NOCASE, partial) restore: the stand-in never merges distinct values', () => {
    // The application's functions, registered while the source is written (as the app does).
    const appSetup = (db: BetterSqlite3.Database): void => {
      db.function('norm', { deterministic: true }, (x: unknown) => (typeof x === 'string' ? `[${x.toLowerCase()}]` : x));
      db.function('pair', { deterministic: true, varargs: true }, (...xs: unknown[]) => xs.map(String).join('/'));
      db.function('same', { deterministic: true }, (x: unknown) => x);
      db.function('gone', { deterministic: true }, (x: unknown) => (x === 1n || x === 1 ? 1 : 0));
      db.exec(`CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, a, b, deleted, n AS (norm(email)) VIRTUAL UNIQUE);
        CREATE UNIQUE INDEX users_email ON users (norm(email));
        CREATE UNIQUE INDEX users_ab ON users (pair(a, b, id % 2));
        CREATE UNIQUE INDEX users_nested ON users (pair(norm(email), same(b)));
        CREATE UNIQUE INDEX users_cat ON users (same(a) || same(b), id);
        CREATE UNIQUE INDEX users_nocase ON users (same(b) COLLATE NOCASE, norm(email) COLLATE NOCASE);
        CREATE UNIQUE INDEX users_live ON users (a) WHERE NOT gone(deleted);
        CREATE INDEX users_n ON users (n);`);
      const ins = db.prepare('INSERT INTO users (id, email, a, b, deleted) VALUES (?, ?, ?, ?, ?)');
      ins.run(1, 'Bob@x', 1, 'x', 0);
      ins.run(2, 'alice@x', 2, 'y', 0);
      ins.run(3, 'alice@y', 12, '3', 0);
      ins.run(4, 'a\u0000b', 1, '23', 1); // deleted: `a` repeats outside the partial index
      ins.run(5, 'a\u0000c', 1.5, Buffer.from([0]), 1);
      ins.run(6, 'é', 1.0000000000000002, Buffer.from([0, 0]), 1);
    };
    const src = make('appfn-unique', appSetup);
    const m = backup(src);
    expect(m.warnings.join('\n')).toMatch(/function norm\(\)/);
    const copy = fresh('appfn-unique-copy');
    const r = restore(m.id, copy);
    expect(r.code, r.stderr).toBe(0);
    // Indexes on the generated column n (computed by norm) are named for REINDEX too.
    const normWarning = r.stderr.split('\n').find((l) => l.includes('function norm()')) ?? '';
    expect(normWarning).toContain('REINDEX "users_n"');
    expect(normWarning).toMatch(/REINDEX "sqlite_autoindex_users_\d+"/);
    expect(schemaOf(copy)).toEqual(schemaOf(src));
    expect(cells(copy, 'users')).toEqual(cells(src, 'users'));
    const target = existingTarget((db) => {
      appSetup(db);
      db.exec('DELETE FROM users');
    });
    const o = restore(m.id, target, ['--on-conflict', 'overwrite']);
    expect(o.code, o.stderr).toBe(0);
    expect(schemaOf(target)).toEqual(schemaOf(src));
    expect(cells(target, 'users')).toEqual(cells(src, 'users'));
    // The application reindexes with its functions: every index and the generated column check out.
    for (const file of [copy, target]) {
      const db = new Database(file);
      try {
        db.function('norm', { deterministic: true }, (x: unknown) => (typeof x === 'string' ? `[${x.toLowerCase()}]` : x));
        db.function('pair', { deterministic: true, varargs: true }, (...xs: unknown[]) => xs.map(String).join('/'));
        db.function('same', { deterministic: true }, (x: unknown) => x);
        db.function('gone', { deterministic: true }, (x: unknown) => (x === 1n || x === 1 ? 1 : 0));
        db.exec('REINDEX');
        expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
        expect(db.prepare("SELECT id FROM users WHERE norm(email) = '[alice@y]'").pluck().all()).toEqual([3]);
        expect(() => db.prepare("INSERT INTO users (id, email, a, b, deleted) VALUES (9, 'BOB@X', 9, 'z', 0)").run()).toThrow(/UNIQUE/);
      } finally {
        db.close();
      }
    }
  });

  it('the stand-in gives distinct values for distinct arguments of every storage class, under BINARY, NOCASE and RTRIM', () => {
    const sql = withFallbacks('CREATE INDEX i ON t (app_f(a), app_g(a, b) || app_g(b, a))', knownFunctions(), true);
    const exprs = /ON t \((.*)\)$/.exec(sql)?.[1] ?? '';
    expect(exprs).not.toContain('app_');
    const db = new Database(':memory:');
    try {
      db.exec('CREATE TABLE t (a, b)');
      const values: unknown[] = [1, 1.5, '1', '1.0', Buffer.from([1]), null, 'a\u0000b', 'a\u0000c', 'A', 'a', 'a ', '', Buffer.alloc(0), 12, 2];
      const ins = db.prepare('INSERT INTO t VALUES (?, ?)');
      for (const a of values) for (const b of values.slice(0, 6)) ins.run(a, b);
      db.prepare('INSERT INTO t VALUES (1.0000000000000002, NULL)').run();
      for (const collation of ['BINARY', 'NOCASE', 'RTRIM']) {
        const [first, second] = exprs.split(/, (?=\('\(')/);
        const distinct = (e: string): number => Number(db.prepare(`SELECT count(DISTINCT (${e}) COLLATE ${collation}) FROM t`).pluck().get());
        const rows = Number(db.prepare('SELECT count(*) FROM t').pluck().get());
        const args1 = Number(db.prepare('SELECT count(*) FROM (SELECT DISTINCT typeof(a), CAST(a AS BLOB) FROM t)').pluck().get());
        expect(distinct(first as string), collation).toBe(args1);
        expect(distinct(second as string), collation).toBe(rows);
      }
    } finally {
      db.close();
    }
  });

  it('refuses a STORED generated column computed by an application function, naming it', () => {
    const src = make('appfn-stored', (db) => {
      db.exec('CREATE TABLE s (x TEXT, y AS (upper(x)) STORED); INSERT INTO s (x) VALUES (\'a\'); CREATE TABLE fine (z); INSERT INTO fine VALUES (1);');
      db.unsafeMode(true);
      db.pragma('writable_schema = ON');
      db.exec("UPDATE sqlite_schema SET sql = replace(sql, 'upper(', 'app_upper(') WHERE name = 's'");
      db.pragma('writable_schema = OFF');
    });
    const m = backup(src);
    const copy = fresh('appfn-stored-copy');
    const r = restore(m.id, copy);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('STORED generated column is computed by app_upper');
    expect(existsSync(copy)).toBe(false);
    const ok = restore(m.id, copy, ['--exclude', 's']);
    expect(ok.code, ok.stderr).toBe(0);
  });
});
