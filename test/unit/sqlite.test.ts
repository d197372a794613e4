import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from '../../src/sources/sqlite/driver.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CancelledError, ConflictError, CorruptionError, NotFoundError, SourceError, UsageError } from '../../src/core/errors.js';
import type { CollectionEntry } from '../../src/core/schemas.js';
import { parseSqliteUrl, SqliteSource, SqliteTarget } from '../../src/sources/sqlite/index.js';
import { renameTableReferences } from '../../src/sources/sqlite/sql.js';
import { lexSql } from '../../src/sources/sqlite/lexer.js';
import type { CollectionDescriptor, RestoreItem } from '../../src/sources/types.js';
import { dumpSqlite } from '../helpers/sqlite-compare.js';
import { hostIdentity, ownerIsDead, ownerToken, parseOwnerToken, type Owner } from '../../src/core/owner.js';
import { processStartTicks } from '../../src/core/process.js';
import { isStagingFileName, removeAbandonedStaging, stagingPath } from '../../src/sources/sqlite/staging.js';

const CHINOOK = path.resolve(__dirname, '../../fixtures/chinook/chinook.sqlite');

let tmp: string;
let src: string;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-sqlite-'));
  src = path.join(tmp, 'source.db');
  buildSource(src);
});

afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function buildSource(file: string): void {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.exec(`
    CREATE TABLE "Users" (id INTEGER PRIMARY KEY, "Full Name" TEXT NOT NULL, email TEXT UNIQUE, age INT DEFAULT 0, score REAL, avatar BLOB);
    CREATE INDEX idx_users_name ON "Users"("Full Name");
    CREATE INDEX "idx partial" ON "Users"(age) WHERE age > 18;
    CREATE INDEX idx_users_lower_email ON "Users"(lower(email));
    CREATE TABLE log (msg TEXT, n);
    CREATE TABLE kv (k TEXT PRIMARY KEY, v) WITHOUT ROWID;
    CREATE TABLE seq (id INTEGER PRIMARY KEY AUTOINCREMENT, label TEXT);
    CREATE TABLE "we""ird Table" ("Col ""A""" TEXT, "b c" INTEGER, PRIMARY KEY ("Col ""A""", "b c"));
    CREATE TABLE audit (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES "Users"(id), action TEXT);
    CREATE TRIGGER users_audit AFTER UPDATE ON "Users" BEGIN INSERT INTO audit (user_id, action) VALUES (new.id, 'update'); END;
    CREATE TABLE gen (a INT, b INT GENERATED ALWAYS AS (a * 2) VIRTUAL, c TEXT);
    CREATE VIEW adults AS SELECT id, "Full Name" FROM "Users" WHERE age >= 18;
    CREATE VIEW adult_count AS SELECT count(*) AS n FROM adults;
    CREATE TRIGGER adults_insert INSTEAD OF INSERT ON adults BEGIN INSERT INTO "Users" (id, "Full Name", age) VALUES (new.id, new."Full Name", 18); END;
    CREATE VIRTUAL TABLE docs USING fts5(body);
    INSERT INTO docs (body) VALUES ('full text');
  `);
  db.defaultSafeIntegers(true);
  const users = db.prepare('INSERT INTO "Users" (id, "Full Name", email, age, score, avatar) VALUES (?, ?, ?, ?, ?, ?)');
  const names = ['Ada', 'Zoë Ünïcødé', '日本語 名前', 'emoji 😀🎉', "O'Brien \"quoted\"", ''];
  for (let i = 1; i <= 300; i++) {
    users.run(
      BigInt(i * 3),
      `${names[i % names.length]} ${i}`,
      i % 7 === 0 ? null : `user${i}@example.com`,
      BigInt(i % 90),
      i % 5 === 0 ? null : i / 7,
      i % 4 === 0 ? null : Buffer.from([i & 255, 0, 255, (i * 7) & 255]),
    );
  }
  const log = db.prepare('INSERT INTO log (msg, n) VALUES (?, ?)');
  const specials: unknown[] = [
    2n ** 63n - 1n,
    -(2n ** 63n),
    -0,
    0,
    1.5,
    -1e300,
    'text in untyped column',
    Buffer.alloc(0),
    '',
    null,
    9007199254740993n,
    Buffer.from('blob'),
  ];
  for (let i = 0; i < 40; i++) log.run(`m${i}`, specials[i % specials.length]);
  db.exec('DELETE FROM log WHERE rowid IN (3, 4, 17, 40)');
  db.exec("INSERT INTO log (rowid, msg, n) VALUES (1000, 'far', 1)");
  const kv = db.prepare('INSERT INTO kv (k, v) VALUES (?, ?)');
  for (let i = 0; i < 50; i++) kv.run(`key-${String(50 - i).padStart(3, '0')}`, i % 2 ? BigInt(i) : `v${i}`);
  for (let i = 0; i < 5; i++) db.prepare('INSERT INTO seq (label) VALUES (?)').run(`s${i}`);
  db.exec('DELETE FROM seq WHERE id >= 4');
  db.prepare(`INSERT INTO "we""ird Table" VALUES (?, ?)`).run('a "quoted" value', 1n);
  db.prepare(`INSERT INTO "we""ird Table" VALUES (?, ?)`).run('b', 2n);
  db.prepare('INSERT INTO gen (a, c) VALUES (?, ?)').run(21n, 'x');
  db.exec(`UPDATE "Users" SET age = age + 1 WHERE id <= 30`);
  db.close();
}

interface Collected {
  entry: CollectionEntry;
  bytes: Buffer;
}

async function backup(file: string): Promise<{ collections: Collected[]; warnings: string[]; version: string }> {
  const snap = await new SqliteSource(file).openSnapshot();
  try {
    const collections: Collected[] = [];
    for (const desc of await snap.listCollections()) {
      const stream = snap.readData(desc);
      const parts: Buffer[] = [];
      for await (const chunk of stream) parts.push(Buffer.from(chunk));
      const bytes = Buffer.concat(parts);
      const entry: CollectionEntry = {
        name: desc.name,
        kind: desc.kind,
        // The manifest is JSON: the definition must survive it.
        definition: JSON.parse(JSON.stringify(desc.definition)) as Record<string, unknown>,
        dataFormat: desc.dataFormat,
        rowCount: stream.rowCount,
        logicalBytes: bytes.length,
        storedBytes: bytes.length,
        newBytes: bytes.length,
        chunks: [],
      };
      collections.push({ entry, bytes });
    }
    return { collections, warnings: [...snap.warnings], version: snap.serverVersion };
  } finally {
    await snap.close();
  }
}

interface ItemOptions {
  renames?: Record<string, string>;
  only?: string[];
  /** Throw after this many chunks of the named collection. */
  failIn?: string;
  onChunk?: (collection: string, index: number) => void;
  step?: number;
}

function items(collections: Collected[], opts: ItemOptions = {}): RestoreItem[] {
  return collections
    .filter((c) => !opts.only || opts.only.includes(c.entry.name))
    .map((c) => ({
      entry: c.entry,
      targetName: opts.renames?.[c.entry.name] ?? c.entry.name,
      data: async function* () {
        // Re-split at odd boundaries so rows straddle chunks.
        const step = opts.step ?? 997;
        let index = 0;
        for (let off = 0; off < c.bytes.length; off += step) {
          opts.onChunk?.(c.entry.name, index);
          if (opts.failIn === c.entry.name && index === 2) throw new Error('storage read failed');
          index++;
          await Promise.resolve();
          yield c.bytes.subarray(off, Math.min(off + step, c.bytes.length));
        }
      },
    }));
}

const sha256 = (file: string): string => createHash('sha256').update(fs.readFileSync(file)).digest('hex');
const leftovers = (dir: string): string[] => fs.readdirSync(dir).filter((f) => f.includes('.cairn-restore-'));

function freshDir(name: string): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

describe('SQL text: one lexer for checks and renames', () => {
  it('keeps every character (joining the lexemes gives the text back) and reads blob literals as literals', () => {
    const sql = "CREATE INDEX \"i x\" ON [x] (a) -- note\n/* c */ WHERE b <> X'78' AND c = 'x''y'";
    expect(lexSql(sql, { trivia: true }).map((t) => t.text).join('')).toBe(sql);
    expect(lexSql(sql).filter((t) => t.kind === 'string').map((t) => t.text)).toEqual(["X'78'", "'x''y'"]);
  });

  it('renames a table named like a blob literal prefix without touching the literal', () => {
    const sql = "CREATE TRIGGER t AFTER INSERT ON x BEGIN INSERT INTO x(b) VALUES (X'00'); END";
    expect(renameTableReferences(sql, 'x', 'y')).toBe('CREATE TRIGGER t AFTER INSERT ON "y" BEGIN INSERT INTO "y"(b) VALUES (X\'00\'); END');
  });
});

describe('parseSqliteUrl', () => {
  it('accepts absolute and relative forms', () => {
    expect(parseSqliteUrl('sqlite:///var/data/app.db')).toBe('/var/data/app.db');
    expect(parseSqliteUrl('sqlite:data/app.db')).toBe(path.resolve(process.cwd(), 'data/app.db'));
    expect(parseSqliteUrl('sqlite:app.db')).toBe(path.resolve(process.cwd(), 'app.db'));
  });
  it('rejects anything else with the accepted forms', () => {
    for (const bad of ['postgres://x/y', 'sqlite://host/app.db', 'sqlite:', 'sqlite://', '/plain/path.db']) {
      expect(() => parseSqliteUrl(bad)).toThrow(UsageError);
    }
    expect(() => parseSqliteUrl('file:x.db')).toThrow(/sqlite:\/\/\/absolute\/path\.db/);
  });
});

describe('SqliteSource', () => {
  it('describes itself', () => {
    const s = new SqliteSource(src);
    expect(s.kind).toBe('sqlite');
    expect(s.name).toBe('source');
    expect(s.location).toBe(`sqlite://${src}`);
  });

  it('fails clearly on a missing file or a non-database', async () => {
    await expect(new SqliteSource(path.join(tmp, 'nope.db')).openSnapshot()).rejects.toThrow(NotFoundError);
    await expect(new SqliteSource(path.join(tmp, 'nope.db')).openSnapshot()).rejects.toThrow(
      /cairn does not create a source database/,
    );
    const junk = path.join(tmp, 'junk.db');
    fs.writeFileSync(junk, 'this is not a database at all, just some text that is long enough'.repeat(20));
    await expect(new SqliteSource(junk).openSnapshot()).rejects.toThrow(SourceError);
  });

  it('lists tables, virtual tables (FTS5 with its shadow tables) then views', async () => {
    const snap = await new SqliteSource(src).openSnapshot();
    try {
      const list = await snap.listCollections();
      expect(list.map((c) => `${c.kind}:${c.name}`)).toEqual([
        'table:Users',
        'table:log',
        'table:kv',
        'table:seq',
        'table:we"ird Table',
        'table:audit',
        'table:gen',
        'virtual_table:docs',
        'view:adults',
        'view:adult_count',
        // The WAL mode (database.ts), which a restored new file gets too.
        'sqlite_database:sqlite_database',
      ]);
      expect(snap.warnings.some((w) => w.includes('docs'))).toBe(false);
      expect(snap.serverVersion).toMatch(/^3\.\d+\.\d+$/);
      const def = (n: string): Record<string, unknown> => list.find((c) => c.name === n)!.definition;
      expect(def('log').rowidColumn).toBe('rowid');
      expect(def('Users').rowidColumn).toBeNull();
      expect(def('kv').withoutRowid).toBe(true);
      expect(def('seq').autoincrement).toBe('5');
      expect(def('we"ird Table').rowidColumn).toBe('rowid');
      expect((def('Users').indexes as unknown[]).length).toBe(3);
      expect((def('Users').triggers as unknown[]).length).toBe(1);
      expect((def('adults').triggers as unknown[]).length).toBe(1);
      expect(list.find((c) => c.name === 'adults')!.dataFormat).toBeUndefined();
    } finally {
      await snap.close();
    }
  });

  it('reads one consistent snapshot while another connection writes (WAL)', async () => {
    const file = path.join(freshDir('snapshot'), 'live.db');
    const w = new Database(file);
    w.pragma('journal_mode = WAL');
    w.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
    const ins = w.prepare('INSERT INTO t (v) VALUES (?)');
    for (let i = 0; i < 1000; i++) ins.run(`before ${i}`);
    const snap = await new SqliteSource(file).openSnapshot();
    try {
      // The writer is not blocked by the open snapshot.
      w.exec("UPDATE t SET v = 'after' WHERE id <= 500");
      for (let i = 0; i < 100; i++) ins.run(`new ${i}`);
      w.exec('CREATE TABLE later (x)');
      const [t] = await snap.listCollections();
      // (sqlite_database: the WAL mode, which a restored new file gets too.)
      expect((await snap.listCollections()).map((c) => c.name)).toEqual(['t', 'sqlite_database']);
      const stream = snap.readData(t!);
      const parts: Buffer[] = [];
      for await (const c of stream) parts.push(Buffer.from(c));
      expect(stream.rowCount).toBe(1000);
      const { RowDecoder } = await import('../../src/sources/row-codec.js');
      const rows = new RowDecoder().push(Buffer.concat(parts));
      expect(rows.every((r) => String(r[1]).startsWith('before'))).toBe(true);
    } finally {
      await snap.close();
      w.close();
    }
  });

  it('stops streaming when aborted', async () => {
    const snap = await new SqliteSource(CHINOOK).openSnapshot();
    try {
      const track = (await snap.listCollections()).find((c) => c.name === 'PlaylistTrack')!;
      const ac = new AbortController();
      ac.abort();
      const consume = async (): Promise<void> => {
        for await (const _ of snap.readData(track, ac.signal)) void _;
      };
      await expect(consume()).rejects.toThrow(CancelledError);
    } finally {
      await snap.close();
    }
  });
});

describe('SqliteTarget', () => {
  let full: Awaited<ReturnType<typeof backup>>;
  beforeAll(async () => {
    full = await backup(src);
  });

  it('round-trips the test database into a new file', async () => {
    const dir = freshDir('roundtrip');
    const out = path.join(dir, 'copy.db');
    const progress: string[] = [];
    const result = await new SqliteTarget(out).restore(items(full.collections), {
      onConflict: 'fail',
      onProgress: (p) => progress.push(`${p.collection}:${p.rows}`),
    });
    expect(result.collections).toBe(10);
    expect(result.rows).toBe(full.collections.reduce((a, c) => a + c.entry.rowCount, 0));
    expect(progress).toContain('Users:300');
    expect(leftovers(dir)).toEqual([]);
    const a = dumpSqlite(src);
    const b = dumpSqlite(out);
    expect(b.schema).toEqual(a.schema);
    expect(b.tables).toEqual(a.tables);
    expect(Object.keys(b.tables)).toContain('log');
    // Rowid gaps, -0 and 64-bit edges survive.
    expect(b.tables.log!.map((r) => r[0])).toContain('i:1000');
    expect(b.tables.log!.map((r) => r[0])).not.toContain('i:3');
    expect(b.tables.log!.flat()).toEqual(expect.arrayContaining(['r:-0', 'i:9223372036854775807', 'i:-9223372036854775808']));
    // AUTOINCREMENT continues after the highest id ever used, not the highest present.
    const db = new Database(out);
    db.prepare('INSERT INTO seq (label) VALUES (?)').run('next');
    expect(db.prepare("SELECT id FROM seq WHERE label = 'next'").pluck().get()).toBe(6);
    expect(db.prepare('SELECT b FROM gen').pluck().get()).toBe(42);
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    db.close();
  });

  it('round-trips Chinook', async () => {
    const dir = freshDir('chinook');
    const copyOfFixture = path.join(dir, 'chinook.sqlite');
    fs.copyFileSync(CHINOOK, copyOfFixture);
    const b = await backup(copyOfFixture);
    expect(b.collections.length).toBe(11);
    const out = path.join(dir, 'restored.sqlite');
    await new SqliteTarget(out).restore(items(b.collections, { step: 4093 }), { onConflict: 'fail' });
    const x = dumpSqlite(copyOfFixture);
    const y = dumpSqlite(out);
    expect(y.schema).toEqual(x.schema);
    expect(y.tables).toEqual(x.tables);
    expect(y.tables.Track!.length).toBe(3503);
  });

  it('refuses to overwrite under "fail", listing every conflict, without touching the file', async () => {
    const dir = freshDir('fail');
    const out = path.join(dir, 'target.db');
    await new SqliteTarget(out).restore(items(full.collections), { onConflict: 'fail' });
    const before = sha256(out);
    const target = new SqliteTarget(out);
    const err = await target.restore(items(full.collections), { onConflict: 'fail' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    const msg = (err as Error).message;
    expect(msg).toContain(`Table "Users" already exists in ${out}. Use --on-conflict overwrite`);
    expect(msg).toContain('View "adults" already exists');
    expect(msg).toContain('Table "kv" already exists');
    await expect(target.check(items(full.collections), 'fail')).rejects.toThrow(ConflictError);
    expect(sha256(out)).toBe(before);
    expect(leftovers(dir)).toEqual([]);
  });

  it('overwrites tables with the same columns and keeps unrelated objects', async () => {
    const dir = freshDir('overwrite');
    const out = path.join(dir, 'target.db');
    await new SqliteTarget(out).restore(items(full.collections), { onConflict: 'fail' });
    const db = new Database(out);
    db.pragma('journal_mode = WAL');
    db.pragma('foreign_keys = OFF');
    db.exec(`DELETE FROM "Users"; DELETE FROM log; DROP INDEX idx_users_name; CREATE TABLE keep (x); INSERT INTO keep VALUES (1)`);
    db.close();
    const r = await new SqliteTarget(out).restore(items(full.collections), { onConflict: 'overwrite' });
    expect(r.collections).toBe(10);
    const a = dumpSqlite(src);
    const b = dumpSqlite(out);
    expect(b.tables.keep).toEqual([['i:1', 'i:1']]);
    delete b.tables.keep;
    expect(b.tables).toEqual(a.tables);
    expect(b.schema.filter((s) => !s.includes('keep'))).toEqual(a.schema);
    expect(leftovers(dir)).toEqual([]);
  });

  it('refuses to overwrite a table whose columns differ, without touching the file', async () => {
    const dir = freshDir('overwrite-diff');
    const out = path.join(dir, 'target.db');
    const db = new Database(out);
    db.exec(`CREATE TABLE "Users" (id INTEGER PRIMARY KEY, name TEXT); CREATE VIEW kv AS SELECT 1; CREATE TABLE log (msg TEXT, n)`);
    db.close();
    const before = sha256(out);
    const err = await new SqliteTarget(out)
      .restore(items(full.collections), { onConflict: 'overwrite' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    const msg = (err as Error).message;
    expect(msg).toContain('Table "Users" in');
    expect(msg).toContain('different columns');
    expect(msg).toContain('"kv" exists in');
    expect(msg).not.toContain('"log"');
    expect(sha256(out)).toBe(before);
    expect(leftovers(dir)).toEqual([]);
  });

  it('restores under new names, renaming indexes and triggers', async () => {
    const dir = freshDir('rename');
    const out = path.join(dir, 'target.db');
    // The target already holds the originals: renamed copies must not clash with them.
    await new SqliteTarget(out).restore(items(full.collections), { onConflict: 'fail' });
    const renames = { Users: 'People', log: 'Old "Log"', adults: 'grown ups', kv: 'KV2' };
    await new SqliteTarget(out).restore(
      items(full.collections, { renames, only: ['Users', 'log', 'adults', 'kv'] }),
      { onConflict: 'fail' },
    );
    const a = dumpSqlite(src);
    const b = dumpSqlite(out);
    expect(b.tables.People).toEqual(a.tables.Users);
    expect(b.tables['Old "Log"']).toEqual(a.tables.log);
    expect(b.tables.KV2).toEqual(a.tables.kv);
    expect(b.tables.Users).toEqual(a.tables.Users);
    const sqlOf = (name: string): string | undefined =>
      b.schema.find((line) => line.startsWith(`table ${name}: `))?.replace(/^[^:]*: /, '');
    const original = a.schema.find((line) => line.startsWith('table Users: '))!.replace(/^[^:]*: /, '');
    expect(sqlOf('People')).toBe(original.replace('CREATE TABLE "Users"', 'CREATE TABLE "People"'));
    expect(b.schema).toContain(
      a.schema.find((l) => l.startsWith('view adults: '))!.replace('view adults: CREATE VIEW adults', 'view grown ups: CREATE VIEW "grown ups"'),
    );
    const db = new Database(out);
    const objects = db.prepare("SELECT type, name, tbl_name FROM sqlite_schema WHERE tbl_name = 'People'").all();
    expect(objects).toEqual(
      expect.arrayContaining([
        { type: 'index', name: 'idx_People_name', tbl_name: 'People' },
        { type: 'index', name: 'People_idx partial', tbl_name: 'People' },
        { type: 'index', name: 'idx_People_lower_email', tbl_name: 'People' },
        { type: 'trigger', name: 'People_audit', tbl_name: 'People' },
      ]),
    );
    // The renamed trigger fires on the renamed table.
    const auditBefore = db.prepare('SELECT count(*) FROM audit').pluck().get() as number;
    db.exec('UPDATE People SET age = 99 WHERE id = 3');
    expect(db.prepare('SELECT count(*) FROM audit').pluck().get()).toBe(auditBefore + 1);
    expect(db.prepare('SELECT count(*) FROM "grown ups"').pluck().get()).toBe(
      db.prepare('SELECT count(*) FROM adults').pluck().get(),
    );
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    db.close();
  });

  it('leaves the target untouched when a data stream fails midway', async () => {
    const dir = freshDir('failing');
    const out = path.join(dir, 'target.db');
    const db = new Database(out);
    db.exec('CREATE TABLE other (x); INSERT INTO other VALUES (1)');
    db.close();
    const before = sha256(out);
    await expect(
      new SqliteTarget(out).restore(items(full.collections, { failIn: 'log', step: 100 }), { onConflict: 'fail' }),
    ).rejects.toThrow('storage read failed');
    expect(sha256(out)).toBe(before);
    expect(leftovers(dir)).toEqual([]);
    // Missing target: nothing is created.
    const missing = path.join(dir, 'missing.db');
    await expect(
      new SqliteTarget(missing).restore(items(full.collections, { failIn: 'Users', step: 100 }), { onConflict: 'fail' }),
    ).rejects.toThrow('storage read failed');
    expect(fs.existsSync(missing)).toBe(false);
    expect(leftovers(dir)).toEqual([]);
  });

  it('reports damaged data as corruption and leaves the target untouched', async () => {
    const dir = freshDir('corrupt');
    const out = path.join(dir, 'target.db');
    const damaged = full.collections.map((c) =>
      c.entry.name === 'kv' ? { ...c, bytes: c.bytes.subarray(0, c.bytes.length - 3) } : c,
    );
    const err = await new SqliteTarget(out)
      .restore(items(damaged), { onConflict: 'fail' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptionError);
    expect((err as CorruptionError).collections).toEqual(['kv']);
    expect(fs.existsSync(out)).toBe(false);
    expect(leftovers(dir)).toEqual([]);
  });

  it('stops on abort and leaves the target untouched', async () => {
    const dir = freshDir('abort');
    const out = path.join(dir, 'target.db');
    const db = new Database(out);
    db.exec('CREATE TABLE other (x)');
    db.close();
    const before = sha256(out);
    const ac = new AbortController();
    const its = items(full.collections, {
      step: 50,
      onChunk: (name, index) => {
        if (name === 'Users' && index === 5) ac.abort();
      },
    });
    await expect(new SqliteTarget(out).restore(its, { onConflict: 'fail', signal: ac.signal })).rejects.toThrow(
      CancelledError,
    );
    expect(sha256(out)).toBe(before);
    expect(leftovers(dir)).toEqual([]);
  });

  it('rejects a target that is not a database', async () => {
    const dir = freshDir('notadb');
    const out = path.join(dir, 'target.db');
    fs.writeFileSync(out, 'not a database'.repeat(100));
    await expect(new SqliteTarget(out).check(items(full.collections), 'overwrite')).rejects.toThrow(SourceError);
  });
});

describe('staging files of killed restores', () => {
  /** A process that has exited (and been reaped), with the start time it had. */
  const deadOwner = (): { pid: number; start: number } => {
    const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(require("fs").readFileSync("/proc/self/stat", "utf8"))'], { encoding: 'utf8' });
    const fields = child.stdout.slice(child.stdout.lastIndexOf(')') + 2).split(' ');
    return { pid: child.pid as number, start: Number(fields[19]) };
  };

  it('name their owner: this host part, pid and start time; only a provably gone owner is dead', () => {
    const own = parseOwnerToken(ownerToken());
    expect(own).toEqual({ host: hostIdentity(), pid: process.pid, start: Number(processStartTicks(process.pid)) });
    expect(ownerIsDead(own as Owner)).toBe(false);
    const dead = deadOwner();
    expect(ownerIsDead({ host: hostIdentity(), pid: dead.pid, start: dead.start })).toBe(true);
    // The pid lives, but it is another process than the one that wrote the name (reused pid).
    expect(ownerIsDead({ host: hostIdentity(), pid: process.pid, start: Number(processStartTicks(process.pid)) + 1 })).toBe(true);
    // Start time unknown: a live pid may be the owner.
    expect(ownerIsDead({ host: hostIdentity(), pid: process.pid, start: undefined })).toBe(false);
    // Another machine, container or boot: its processes cannot be seen from here.
    expect(ownerIsDead({ host: '0000000000', pid: dead.pid, start: dead.start })).toBe(false);
    for (const bad of ['', 'abc-1-2', '0123456789-0-1', '0123456789-1', '0123456789-x-1', 'ABCDEF0123-1-1']) expect(parseOwnerToken(bad)).toBeUndefined();
  });

  it('a restore and a backup remove those of a gone owner in their folder, with companions, and nothing else', async () => {
    const dir = freshDir('abandoned');
    const dead = deadOwner();
    const deadToken = `${hostIdentity()}-${dead.pid}-${dead.start}`;
    const abandoned = [`.a.db.cairn-restore-${deadToken}-0123abcd`, `.a.db.cairn-restore-${deadToken}-0123abcd-journal`, `.b.db.cairn-restore-${deadToken}-89abcdef-wal`];
    const kept = [
      `.c.db.cairn-restore-${ownerToken()}-0123abcd`, // this process: alive
      `.d.db.cairn-restore-0000000000-${dead.pid}-${dead.start}-0123abcd`, // another host part
      '.e.db.cairn-restore-0123456789ab', // an older version's name: owner unknown
      `e.db.cairn-restore-${deadToken}-0123abcd`, // not hidden: not a staging file
      `.f.db.cairn-restore-${deadToken}-0123abcd-backup`, // not a companion suffix
    ];
    for (const n of [...abandoned, ...kept]) fs.writeFileSync(path.join(dir, n), 'x');
    fs.mkdirSync(path.join(dir, `.g.db.cairn-restore-${deadToken}-0123abcd`)); // a directory: never removed
    kept.push(`.g.db.cairn-restore-${deadToken}-0123abcd`);
    expect(removeAbandonedStaging(dir).sort()).toEqual([...abandoned].sort());
    expect(fs.readdirSync(dir).sort()).toEqual([...kept].sort());

    // Through a restore (into another file of the folder) and a backup (of a file there).
    for (const n of abandoned) fs.writeFileSync(path.join(dir, n), 'x');
    const target = new SqliteTarget(path.join(dir, 'restored.db'));
    await target.restore([], { onConflict: 'fail' });
    expect(fs.readdirSync(dir).sort()).toEqual([...kept, 'restored.db'].sort());
    for (const n of abandoned) fs.writeFileSync(path.join(dir, n), 'x');
    const snap = await new SqliteSource(path.join(dir, 'restored.db')).openSnapshot();
    await snap.close();
    expect(fs.readdirSync(dir).sort()).toEqual([...kept, 'restored.db'].sort());
  });

  it('are named next to the target, fit in 255 bytes, and are recognised', () => {
    const p = stagingPath(path.join(tmp, `${'n'.repeat(250)}.db`));
    expect(path.dirname(p)).toBe(tmp);
    expect(Buffer.byteLength(`${path.basename(p)}-journal`)).toBeLessThanOrEqual(255);
    expect(isStagingFileName(path.basename(p))).toBe(true);
    expect(path.basename(stagingPath(path.join(tmp, 'app.db')))).toMatch(new RegExp(`^\\.app\\.db\\.cairn-restore-${ownerToken()}-[0-9a-f]{8}$`));
  });

  it('a 0-byte source is refused, and left as it was', async () => {
    const dir = freshDir('zero');
    const zero = path.join(dir, 'zero.db');
    fs.writeFileSync(zero, '');
    await expect(new SqliteSource(zero).openSnapshot()).rejects.toThrow(SourceError);
    await expect(new SqliteSource(zero).openSnapshot()).rejects.toThrow(/zero\.db is empty \(0 bytes\), not a SQLite database; check the path/);
    expect(fs.statSync(zero).size).toBe(0); // not turned into a database by the attempt
  });
});

describe('SqliteSource reading in batches', () => {
  it('gives the event loop a turn at least every few ms while reading rows, and closing mid-read fails the read instead of ending it early', async () => {
    const dir = freshDir('batches');
    const file = path.join(dir, 'many.db');
    const db = new Database(file);
    db.exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
      WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 600000) INSERT INTO t SELECT i, 'value ' || i FROM g;`);
    db.close();
    // A timer that should fire every 5 ms: the longest gap while all rows are read.
    const snap = await new SqliteSource(file).openSnapshot();
    let last = performance.now();
    let worst = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      worst = Math.max(worst, now - last);
      last = now;
    }, 5);
    const [table] = await snap.listCollections();
    const stream = snap.readData(table as CollectionDescriptor);
    const started = performance.now();
    let bytes = 0;
    for await (const chunk of stream) bytes += chunk.length;
    clearInterval(timer);
    expect(bytes).toBeGreaterThan(0);
    const took = performance.now() - started;
    expect(stream.rowCount).toBe(600000);
    console.log(`worst timer gap while reading 600,000 rows in ${took.toFixed(0)} ms: ${worst.toFixed(0)} ms`);
    // Read in one go (as before batches), the gap would be the whole read. The bound leaves room
    // for a loaded machine (GC, other processes on the cores).
    expect(worst).toBeLessThan(Math.min(1000, took / 3));

    // Closing while a read is paused: close() succeeds, the read fails (never a short read).
    const it = snap.readData(table as CollectionDescriptor)[Symbol.asyncIterator]();
    expect((await it.next()).done).toBe(false);
    await snap.close();
    await expect(it.next()).rejects.toThrow(SourceError);
  });
});

describe('SqliteTarget switch into an existing file in batches', () => {
  it('copies every row of large tables with sparse, negative and extreme rowids, hidden rowids and WITHOUT ROWID', async () => {
    const dir = freshDir('batched-switch');
    const file = path.join(dir, 'source.db');
    const db = new Database(file);
    db.defaultSafeIntegers(true);
    db.exec(`CREATE TABLE alias (id INTEGER PRIMARY KEY, v TEXT);
      CREATE TABLE hidden (v TEXT, n INTEGER);
      CREATE TABLE shadowed ("rowid" TEXT, "_rowid_" TEXT, v INTEGER);
      CREATE TABLE wr (k TEXT PRIMARY KEY, v INTEGER) WITHOUT ROWID;
      WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 60000)
        INSERT INTO alias SELECT i * 7919 - 400000000, 'a' || i FROM g;
      INSERT INTO alias VALUES (-9223372036854775808, 'min'), (9223372036854775807, 'max');
      WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 55000)
        INSERT INTO hidden (rowid, v, n) SELECT i * 3 + 1000, 'h' || i, i FROM g;
      WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 52000)
        INSERT INTO shadowed (rowid, "rowid", "_rowid_", v) SELECT i * 5, 'r' || i, 'u' || i, i FROM g;
      WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 5000)
        INSERT INTO wr SELECT printf('k%08d', i), i FROM g;`);
    db.close();
    const full = await backup(file);
    const out = path.join(dir, 'target.db');
    await new SqliteTarget(out).restore(items(full.collections, { step: 65536 }), { onConflict: 'fail' });
    const t = new Database(out);
    t.exec('DELETE FROM alias; DELETE FROM hidden; DELETE FROM wr; INSERT INTO hidden (v) VALUES (\'stale\')');
    t.close();
    const r = await new SqliteTarget(out).restore(items(full.collections, { step: 65536 }), { onConflict: 'overwrite' });
    expect(r.rows).toBe(60002 + 55000 + 52000 + 5000);
    expect(dumpSqlite(out)).toEqual(dumpSqlite(file));
    const check = new Database(out, { readonly: true });
    check.defaultSafeIntegers(true);
    // Hidden rowids kept (the dump compares visible columns only).
    expect(check.prepare('SELECT min(rowid), max(rowid), count(*) FROM hidden').raw(true).get()).toEqual([1003n, 166000n, 55000n]);
    expect(check.prepare('SELECT min(_rowid_), max(_rowid_) FROM alias').raw(true).get()).toEqual([-9223372036854775808n, 9223372036854775807n]);
    check.close();
    expect(leftovers(dir)).toEqual([]);
  }, 60_000);
});

describe('capabilities: roles', () => {
  it('--roles on SQLite is refused by name, on backup and on restore, instead of being ignored', async () => {
    const { openSource, refuseRoles } = await import('../../src/sources/index.js');
    expect(() => openSource('sqlite:///tmp/never-opened.db', { roles: true })).toThrow(UsageError);
    expect(() => openSource('sqlite:///tmp/never-opened.db', { rolesWithPasswords: true })).toThrow(/sqlite databases have no roles to record; leave --roles out \(it applies to postgres, mysql\)/);
    expect(() => refuseRoles('sqlite', 'restore')).toThrow(/no roles to restore/);
    expect(() => refuseRoles('postgres', 'restore')).not.toThrow();
    expect(openSource('sqlite:///tmp/never-opened.db', {}).kind).toBe('sqlite');
  });
});
