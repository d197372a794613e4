/**
 * Issue 11's data-loss cases, each as it was found (small inputs), through the real CLI and the
 * repository API: prune, failed backups, lost/damaged packs and indexes, contained damage,
 * repair. Every case checks the promise itself: each listed backup verifies with --read-data
 * and restores to exactly what it held.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compress as zstdCompress } from 'zstd-napi';
import Database from '../../src/sources/sqlite/driver.js';
import type { BackupManifest } from '../../src/core/schemas.js';
import { CorruptionError } from '../../src/core/errors.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import type { Payload, PutOptions, Storage } from '../../src/storage/types.js';
import { StorageMiddleware, type StorageCall } from '../../src/storage/middleware/wrapper.js';
import { Repository } from '../../src/repo/repository.js';
import { ChunkIndex, writeIndexDocument } from '../../src/repo/chunk-index.js';
import { ChunkReader } from '../../src/repo/chunk-reader.js';
import { decompressBlob } from '../../src/repo/compression.js';
import { PackBuilder, packKey } from '../../src/repo/pack.js';
import { prune } from '../../src/repo/prune.js';
import { runBackup } from '../../src/jobs/backup.js';
import { runRestore } from '../../src/jobs/restore.js';
import { verifyBackups } from '../../src/repo/verify.js';
import { openSource, openTarget } from '../../src/sources/index.js';
import { sha256Hex } from '../../src/repo/hash.js';
import { cairn, cairnJson } from '../helpers/cli.js';
import { dumpSqlite } from '../helpers/sqlite-compare.js';

const CORRUPT = 6;
let work: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'cairn-integrity-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

let n = 0;
function fresh(): { dir: string; repo: string; db: string } {
  const dir = join(work, `case${++n}`);
  mkdirSync(dir);
  const repo = join(dir, 'repo');
  expect(cairn(['repo', 'init', repo]).code).toBe(0);
  return { dir, repo, db: join(dir, 'app.db') };
}

function sql(db: string, text: string): void {
  const d = new Database(db);
  d.exec(text);
  d.close();
}

function backup(repo: string, db: string, extra: string[] = []): BackupManifest {
  return cairnJson<BackupManifest>(['backup', 'create', '--source', `sqlite://${db}`, '--repo', repo, ...extra]);
}

/** Every listed backup verifies with --read-data and restores to exactly its recorded dump. */
function assertAllWhole(repo: string, expected: Map<string, ReturnType<typeof dumpSqlite>>): void {
  const listed = cairnJson<{ backups: { id: string }[] }>(['backup', 'list', '--repo', repo]).backups.map((b) => b.id).sort();
  expect(listed).toEqual([...expected.keys()].sort());
  const v = cairn(['verify', '--repo', repo, '--read-data']);
  expect(v.stderr).toBe('');
  expect(v.code).toBe(0);
  for (const [id, dump] of expected) {
    const to = join(work, `restore-${id}-${randomBytes(4).toString('hex')}.db`);
    const r = cairn(['restore', id, '--repo', repo, '--to', `sqlite://${to}`]);
    expect(r.stderr).toBe('');
    expect(dumpSqlite(to)).toEqual(dump);
  }
}

function packFiles(repo: string): string[] {
  const out: string[] = [];
  const data = join(repo, 'data');
  for (const d of readdirSync(data)) for (const f of readdirSync(join(data, d))) if (!f.startsWith('.')) out.push(join(data, d, f));
  return out;
}

describe('prune never deletes live data', () => {
  it('one tiny backup, then prune: nothing is lost (header bytes are not waste, an identical repacked pack is not deleted)', () => {
    const { repo, db } = fresh();
    sql(db, "CREATE TABLE settings(k TEXT PRIMARY KEY, v TEXT); INSERT INTO settings VALUES ('a','1'),('b','2');");
    const m = backup(repo, db);
    const p = cairn(['prune', '--repo', repo]);
    expect(p.code).toBe(0);
    assertAllWhole(repo, new Map([[m.id, dumpSqlite(db)]]));
    // Low threshold: every pack is repacked; the result is byte-identical, so same name.
    const again = cairn(['prune', '--repo', repo]);
    expect(again.code).toBe(0);
    assertAllWhole(repo, new Map([[m.id, dumpSqlite(db)]]));
  });

  it('nightly backups where only a small table changed, two prunes in a row, and a delete in between', () => {
    const { repo, db } = fresh();
    sql(db, 'CREATE TABLE big(id INTEGER PRIMARY KEY, body TEXT); CREATE TABLE small(k TEXT PRIMARY KEY, v INTEGER);');
    const d = new Database(db);
    const ins = d.prepare('INSERT INTO big(body) VALUES (?)');
    for (let i = 0; i < 3000; i++) ins.run(randomBytes(300).toString('base64'));
    d.close();
    const expected = new Map<string, ReturnType<typeof dumpSqlite>>();
    const ids: string[] = [];
    for (let night = 0; night < 3; night++) {
      sql(db, `INSERT OR REPLACE INTO small VALUES ('night', ${night}), ('n${night}', ${night * 7});`);
      const m = backup(repo, db, ['--id', `nightly-${night}`]);
      expected.set(m.id, dumpSqlite(db));
      ids.push(m.id);
    }
    expect(cairn(['prune', '--repo', repo]).code).toBe(0);
    expect(cairn(['prune', '--repo', repo]).code).toBe(0);
    assertAllWhole(repo, expected);
    expect(cairn(['backup', 'delete', ids[1] as string, '--repo', repo]).code).toBe(0);
    expected.delete(ids[1] as string);
    expect(cairn(['prune', '--repo', repo]).code).toBe(0);
    expect(cairn(['prune', '--repo', repo]).code).toBe(0);
    assertAllWhole(repo, expected);
  }, 300_000);

  it('a prune killed between writing a repacked pack and its index: the next prune keeps the pack its new index uses', async () => {
    const dir = mkdtempSync(join(work, 'killed-prune-'));
    const storage = new FileSystemStorage(dir);
    const repo = await Repository.init(storage, { packSize: 1024 * 1024, compression: { algorithm: 'none', level: 'default' } });
    const db = join(dir, '..', `${n++}-src.db`);
    sql(db, 'CREATE TABLE t(id INTEGER PRIMARY KEY, body BLOB);');
    const d = new Database(db);
    for (let i = 0; i < 8; i++) d.prepare('INSERT INTO t(body) VALUES (?)').run(randomBytes(100_000));
    d.close();
    const first = await runBackup({ repo, source: openSource(`sqlite://${db}`), id: 'first', compressionWorkers: 0 });
    sql(db, 'DELETE FROM t WHERE id > 2;');
    const second = await runBackup({ repo, source: openSource(`sqlite://${db}`), id: 'second', compressionWorkers: 0 });
    await repo.deleteBackup(first.id);
    // "Kill" prune right after it wrote its repacked pack: the index write fails.
    const dying = withFault(storage, (key) => key.startsWith('index/'));
    const reopened = await Repository.open(dying);
    await expect(prune(reopened, { unindexedGraceMs: 0 })).rejects.toThrow('killed');
    // The next prune (it repacks to the same bytes again) must keep what its index lists.
    await prune(repo, { unindexedGraceMs: 0 });
    await prune(repo, { unindexedGraceMs: 0 });
    const expected = dumpSqlite(db);
    const r = cairn(['verify', '--repo', dir, '--read-data']);
    expect(r.stderr).toBe('');
    const to = join(dir, '..', `${n++}-out.db`);
    expect(cairn(['restore', second.id, '--repo', dir, '--to', `sqlite://${to}`]).code).toBe(0);
    expect(dumpSqlite(to)).toEqual(expected);
  });
});

describe('a prune stopped at any point of its work (torture seed 6001)', () => {
  type Dump = ReturnType<typeof dumpSqlite>;
  let dbs: { first: string; second: string; third: string };
  let dumps: { second: Dump; third: Dump };

  beforeAll(() => {
    // Each has a small table k. first: t of 8 rows of 100 kB; second: t of 2 other rows; third:
    // second plus a table u. Once first is deleted, its pack holds k (live) and 800 kB of waste:
    // prune repacks it; once third is deleted, its pack (u) is removed whole.
    const rows = (count: number): Buffer[] => Array.from({ length: count }, () => randomBytes(100_000));
    const [t1, t2, u] = [rows(8), rows(2), rows(3)];
    const make = (name: string, t: Buffer[], extra: Buffer[] | undefined): string => {
      const db = join(work, `stop-${name}.db`);
      const d = new Database(db);
      d.exec("CREATE TABLE k(name TEXT PRIMARY KEY, v TEXT); INSERT INTO k VALUES ('a', 'one'), ('b', 'two');");
      d.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, body BLOB);');
      for (const r of t) d.prepare('INSERT INTO t(body) VALUES (?)').run(r);
      if (extra) {
        d.exec('CREATE TABLE u(id INTEGER PRIMARY KEY, body BLOB);');
        for (const r of extra) d.prepare('INSERT INTO u(body) VALUES (?)').run(r);
      }
      d.close();
      return db;
    };
    dbs = { first: make('first', t1, undefined), second: make('second', t2, undefined), third: make('third', t2, u) };
    dumps = { second: dumpSqlite(dbs.second), third: dumpSqlite(dbs.third) };
  });

  /** Every backup listed, and only those, verifies reading every blob and restores to exactly its dump. */
  async function assertWhole(repo: Repository, expected: Map<string, Dump>): Promise<void> {
    const manifests = await repo.listManifests();
    expect(manifests.map((m) => m.id).sort()).toEqual([...expected.keys()].sort());
    const report = await verifyBackups(repo, manifests, { readData: true });
    expect(report.problems).toEqual([]);
    for (const [id, dump] of expected) {
      const to = join(work, `${n++}-stop-out.db`);
      await runRestore({ repo, backupId: id, target: openTarget(`sqlite://${to}`), jobs: 1 });
      expect(dumpSqlite(to)).toEqual(dump);
    }
  }

  /**
   * For every k: a fresh repository (backups first, second, third; the deleted ones are removed
   * before prune), a prune whose storage dies after its k-th write or delete (a kill at that
   * point: each object write is atomic), then the next backup — of the very data of the deleted
   * third, so that it writes the pack and index prune just removed — which must succeed; every
   * backup verifies and restores; a whole prune then runs and all is still whole. k runs from 0
   * until a prune finishes before its storage dies. Returns the writes and deletes of that prune.
   */
  async function stopEverywhere(deleted: string[], kept: Map<string, Dump>): Promise<string[]> {
    for (let allowed = 0; ; allowed++) {
      const dir = mkdtempSync(join(work, `prune-stop-${allowed}-`));
      const storage = new FileSystemStorage(dir);
      const repo = await Repository.init(storage, { packSize: 1024 * 1024, compression: { algorithm: 'none', level: 'default' } });
      for (const id of ['first', 'second', 'third'] as const) {
        await runBackup({ repo, source: openSource(`sqlite://${dbs[id]}`), id, compressionWorkers: 0 });
      }
      for (const id of deleted) await repo.deleteBackup(id);
      const done: string[] = [];
      const killed = await prune(await Repository.open(dyingAfter(storage, allowed, done)), { unindexedGraceMs: 0 }).then(
        () => false,
        (err: unknown) => {
          expect(String(err)).toContain('killed before');
          return true;
        },
      );
      if (killed) expect(done.length).toBe(allowed);
      const context = `prune stopped after ${allowed} of its writes and deletes (${done.join(', ') || 'none'})`;
      const expected = new Map([...kept, ['again', dumps.third]]);
      await expect(runBackup({ repo, source: openSource(`sqlite://${dbs.third}`), id: 'again', compressionWorkers: 0 }), context).resolves.toMatchObject({ id: 'again' });
      await assertWhole(repo, expected);
      await prune(repo, { unindexedGraceMs: 0 });
      await assertWhole(repo, expected);
      if (!killed) return done;
    }
  }

  it('some backups deleted (repack, a whole pack removed): after a stop at each point the next backup, verify, restore and prune succeed', async () => {
    const ops = await stopEverywhere(['first', 'third'], new Map([['second', dumps.second]]));
    // Every phase was a stopping point: repacked pack, new index, old indexes, old packs.
    expect(ops.filter((o) => o.startsWith('put data/')).length).toBeGreaterThan(0);
    expect(ops.filter((o) => o.startsWith('put index/')).length).toBe(1);
    expect(ops.filter((o) => o.startsWith('delete index/')).length).toBe(3);
    expect(ops.filter((o) => o.startsWith('delete data/')).length).toBe(2);
  }, 300_000);

  it('every backup deleted (no new index, only deletions): the same', async () => {
    const ops = await stopEverywhere(['first', 'second', 'third'], new Map());
    expect(ops.filter((o) => o.startsWith('put data/') || o.startsWith('put index/')).length).toBe(0);
    expect(ops.filter((o) => o.startsWith('delete index/')).length).toBe(3);
    expect(ops.filter((o) => o.startsWith('delete data/')).length).toBe(3);
  }, 300_000);
});

describe('prune acts only on a complete picture', () => {
  function setup(): { dir: string; repo: string; db: string; expected: Map<string, ReturnType<typeof dumpSqlite>> } {
    const { dir, repo, db } = fresh();
    sql(db, 'CREATE TABLE a(id INTEGER PRIMARY KEY, body BLOB); CREATE TABLE b(k TEXT);');
    const expected = new Map<string, ReturnType<typeof dumpSqlite>>();
    for (let i = 0; i < 3; i++) {
      const d = new Database(db);
      d.prepare('INSERT INTO a(body) VALUES (?)').run(randomBytes(1_500_000));
      d.prepare('INSERT INTO b VALUES (?)').run(`row ${i}`);
      d.close();
      const m = backup(repo, db, ['--id', `b${i}`]);
      expected.set(m.id, dumpSqlite(db));
    }
    return { dir, repo, db, expected };
  }

  it('with an index document lost it deletes nothing and says to run cairn repair; repair rebuilds the index from the packs', () => {
    const { repo, expected } = setup();
    const packsBefore = packFiles(repo).length;
    const indexes = readdirSync(join(repo, 'index'));
    unlinkSync(join(repo, 'index', indexes[0] as string));
    const p = cairn(['prune', '--repo', repo]);
    expect(p.code).toBe(CORRUPT);
    expect(p.stderr).toContain('cairn repair');
    expect(packFiles(repo).length).toBe(packsBefore);
    const r = cairnJson<{ backupsDamaged: unknown[] }>(['repair', '--repo', repo]);
    expect(r.backupsDamaged).toEqual([]);
    expect(cairn(['prune', '--repo', repo]).code).toBe(0);
    assertAllWhole(repo, expected);
  });

  it('with a pack briefly missing from the listing it deletes nothing; when the pack is back all is whole', () => {
    const { repo, expected } = setup();
    const pack = packFiles(repo)[0] as string;
    renameSync(pack, `${pack}.away`.replace(/([^/]+)\.away$/, '.$1.away'));
    const p = cairn(['prune', '--repo', repo]);
    expect(p.code).toBe(CORRUPT);
    expect(p.stderr).toContain('cairn repair');
    renameSync(`${pack}.away`.replace(/([^/]+)\.away$/, '.$1.away'), pack);
    expect(cairn(['prune', '--repo', repo]).code).toBe(0);
    expect(cairn(['prune', '--repo', repo]).code).toBe(0);
    assertAllWhole(repo, expected);
  });

  it('keeps packs under a symlinked data/xx folder', () => {
    const { dir, repo, expected } = setup();
    const pack = packFiles(repo)[0] as string;
    const folder = join(pack, '..');
    const elsewhere = join(dir, 'moved-folder');
    renameSync(folder, elsewhere);
    symlinkSync(elsewhere, folder);
    expect(cairn(['prune', '--repo', repo]).code).toBe(0);
    expect(cairn(['prune', '--repo', repo]).code).toBe(0);
    assertAllWhole(repo, expected);
  });
});

describe('a failed backup deletes nothing others need', () => {
  it('a failure after the index write: the next backup of the same data restores', async () => {
    const dir = mkdtempSync(join(work, 'failed-after-index-'));
    const storage = new FileSystemStorage(dir);
    const repo = await Repository.init(storage);
    const db = join(dir, '..', `${n++}-src.db`);
    sql(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t(v) VALUES ('x'), ('y');");
    const failing = await Repository.open(withFault(storage, (key) => key.startsWith('backups/')));
    await expect(runBackup({ repo: failing, source: openSource(`sqlite://${db}`), compressionWorkers: 0 })).rejects.toThrow('killed');
    const m = await runBackup({ repo, source: openSource(`sqlite://${db}`), compressionWorkers: 0 });
    const to = join(dir, '..', `${n++}-out.db`);
    const r = cairn(['restore', m.id, '--repo', dir, '--to', `sqlite://${to}`]);
    expect(r.stderr).toBe('');
    expect(dumpSqlite(to)).toEqual(dumpSqlite(db));
  });

  it('two simultaneous backups of one source writing identical packs: cancelling one leaves the other whole', async () => {
    const dir = mkdtempSync(join(work, 'twin-backups-'));
    const storage = new FileSystemStorage(dir);
    const repo = await Repository.init(storage);
    const db = join(dir, '..', `${n++}-src.db`);
    sql(db, 'CREATE TABLE t(id INTEGER PRIMARY KEY, body BLOB);');
    const d = new Database(db);
    for (let i = 0; i < 4; i++) d.prepare('INSERT INTO t(body) VALUES (?)').run(randomBytes(200_000));
    d.close();
    // A's manifest write waits until B has finished; then A is cancelled.
    const controller = new AbortController();
    let releaseA!: () => void;
    const aWaits = new Promise<void>((resolve) => (releaseA = resolve));
    const gated: Storage = Object.assign(Object.create(storage) as Storage, {
      put: async (key: string, data: Payload, options?: PutOptions) => {
        if (key.startsWith('index/')) await aWaits;
        return storage.put(key, data, options);
      },
    });
    const a = runBackup({ repo: await Repository.open(gated), source: openSource(`sqlite://${db}`), id: 'a', signal: controller.signal, compressionWorkers: 0 });
    const b = await runBackup({ repo, source: openSource(`sqlite://${db}`), id: 'b', compressionWorkers: 0 });
    controller.abort();
    releaseA();
    await expect(a).rejects.toThrow();
    const to = join(dir, '..', `${n++}-out.db`);
    const r = cairn(['restore', b.id, '--repo', dir, '--to', `sqlite://${to}`]);
    expect(r.stderr).toBe('');
    expect(dumpSqlite(to)).toEqual(dumpSqlite(db));
    expect(cairn(['verify', '--repo', dir, '--read-data']).code).toBe(0);
  });
});

describe('lost or damaged objects do not poison later backups', () => {
  it('a lost pack: the next backup uploads its chunks again (not "0 B new"), restores, and heals the older backup', () => {
    const { repo, db } = fresh();
    sql(db, 'CREATE TABLE a(id INTEGER PRIMARY KEY, body BLOB);');
    const d = new Database(db);
    d.prepare('INSERT INTO a(body) VALUES (?)').run(randomBytes(300_000));
    d.close();
    const first = backup(repo, db);
    for (const p of packFiles(repo)) unlinkSync(p);
    const v = cairn(['verify', '--repo', repo]);
    expect(v.code).toBe(CORRUPT);
    expect(v.stderr).toContain(first.id);
    const second = backup(repo, db);
    expect(second.totals.newBytes).toBeGreaterThan(0);
    assertAllWhole(repo, new Map([[first.id, dumpSqlite(db)], [second.id, dumpSqlite(db)]]));
  });

  it('a damaged index document: backup, restore and verify go on, verify names the index, prune refuses, repair fixes it', () => {
    const { repo, db } = fresh();
    sql(db, "CREATE TABLE t(k TEXT); INSERT INTO t VALUES ('one');");
    const first = backup(repo, db);
    const idx = join(repo, 'index', readdirSync(join(repo, 'index'))[0] as string);
    const bytes = readFileSync(idx);
    bytes[bytes.length - 3] = (bytes[bytes.length - 3] as number) ^ 0x40;
    writeFileSync(idx, bytes);
    const v = cairn(['verify', '--repo', repo]);
    expect(v.code).toBe(CORRUPT);
    expect(v.stderr).toContain(`index/${idx.split('/').pop()}`);
    const firstDump = dumpSqlite(db);
    sql(db, "INSERT INTO t VALUES ('two');"); // so that the next index differs from the damaged one
    const second = backup(repo, db);
    expect(second.totals.newBytes).toBeGreaterThan(0);
    const to = join(work, `dmg-index-${n++}.db`);
    expect(cairn(['restore', second.id, '--repo', repo, '--to', `sqlite://${to}`]).code).toBe(0);
    expect(cairn(['prune', '--repo', repo]).code).toBe(CORRUPT);
    const r = cairnJson<{ indexesDamaged: string[]; backupsDamaged: unknown[] }>(['repair', '--repo', repo]);
    expect(r.indexesDamaged).toHaveLength(1);
    expect(r.backupsDamaged).toEqual([]);
    expect(cairn(['prune', '--repo', repo]).code).toBe(0);
    assertAllWhole(repo, new Map([[first.id, firstDump], [second.id, dumpSqlite(db)]]));
  }, 120_000);
});

describe('damage is contained', () => {
  it('a flipped byte in one blob fails only the collections that use it; verify names only those; repair records the loss and prune runs', () => {
    const { repo, db } = fresh();
    sql(db, "CREATE TABLE big(id INTEGER PRIMARY KEY, body BLOB); CREATE TABLE tiny(k TEXT); INSERT INTO tiny VALUES ('sixteen bytes!!!');");
    const d = new Database(db);
    d.prepare('INSERT INTO big(body) VALUES (?)').run(randomBytes(600_000));
    d.close();
    const m = backup(repo, db);
    const packs = packFiles(repo);
    expect(packs).toHaveLength(1);
    const bytes = readFileSync(packs[0] as string);
    bytes[1000] = (bytes[1000] as number) ^ 0x01; // inside big's blob (random bytes stored as is), far from tiny's
    writeFileSync(packs[0] as string, bytes);
    const v = cairn(['verify', '--repo', repo, '--read-data']);
    expect(v.code).toBe(CORRUPT);
    expect(v.stderr).toContain(`${m.id}: big`);
    expect(v.stderr).not.toContain(`${m.id}: tiny`);
    const to = join(work, `contained-${n++}.db`);
    const r = cairn(['restore', m.id, '--repo', repo, '--include', 'tiny', '--to', `sqlite://${to}`]);
    expect(r.stderr).toBe('');
    expect(dumpSqlite(to).tables.tiny).toEqual(dumpSqlite(db).tables.tiny);
    const all = cairn(['restore', m.id, '--repo', repo, '--to', `sqlite://${to}-all`]);
    expect(all.code).toBe(CORRUPT);
    expect(all.stderr).toContain('big');
    const rep = cairnJson<{ backupsDamaged: { id: string; collections: { name: string }[] }[]; packsDamaged: string[] }>(['repair', '--repo', repo]);
    expect(rep.packsDamaged).toHaveLength(1);
    expect(rep.backupsDamaged).toEqual([{ id: m.id, collections: [{ name: 'big', missingChunks: expect.any(Number) as number }] }]);
    expect(cairn(['prune', '--repo', repo]).code).toBe(0);
    const after = join(work, `contained-after-${n++}.db`);
    expect(cairn(['restore', m.id, '--repo', repo, '--exclude', 'big', '--to', `sqlite://${after}`]).code).toBe(0);
    // The next backup of the same data uploads the lost chunk again, which heals the old backup.
    backup(repo, db);
    const healed = cairnJson<{ backupsHealed: string[] }>(['repair', '--repo', repo]);
    expect(healed.backupsHealed).toEqual([m.id]);
    expect(cairn(['verify', '--repo', repo, '--read-data']).code).toBe(0);
  });

  it('a truncated pack: verify names only the collections whose blobs lie past the cut; the others restore', async () => {
    const { repo, db } = fresh();
    sql(db, "CREATE TABLE big(id INTEGER PRIMARY KEY, body BLOB); CREATE TABLE small(k TEXT); INSERT INTO small VALUES ('a'), ('b');");
    const d = new Database(db);
    d.prepare('INSERT INTO big(body) VALUES (?)').run(randomBytes(600_000));
    d.close();
    const m = backup(repo, db);
    const pack = packFiles(repo)[0] as string;
    const { chunks } = await ChunkIndex.load(new FileSystemStorage(repo));
    const where = (name: string) => chunks.get(m.collections.find((c) => c.name === name)?.chunks[0] as string);
    const [first, last] = ['big', 'small'].sort((a, b) => (where(a)?.offset ?? 0) - (where(b)?.offset ?? 0)) as [string, string];
    // Cut in the middle of the last blob: the first one stays whole.
    const lastLoc = where(last);
    writeFileSync(pack, readFileSync(pack).subarray(0, (lastLoc?.offset ?? 0) + Math.floor((lastLoc?.length ?? 0) / 2)));
    const v = cairn(['verify', '--repo', repo, '--read-data']);
    expect(v.code).toBe(CORRUPT);
    expect(v.stderr).toContain('truncated');
    expect(v.stderr).toContain(`${m.id}: ${last}`);
    expect(v.stderr).not.toContain(`${m.id}: ${first}`);
    const to = join(work, `truncated-${n++}.db`);
    expect(cairn(['restore', m.id, '--repo', repo, '--include', first, '--to', `sqlite://${to}`]).stderr).toBe('');
  });

  it('a flipped bit in a manifest that still decodes is detected (metadata carries a checksum)', () => {
    const { repo, db } = fresh();
    sql(db, "CREATE TABLE t(k TEXT); INSERT INTO t VALUES ('x');");
    const m = backup(repo, db);
    const path = join(repo, 'backups', m.id);
    const original = readFileSync(path);
    // Past the frame header, every flipped bit is caught (content or checksum).
    for (const at of [12, Math.floor(original.length / 3), Math.floor(original.length / 2), original.length - 6, original.length - 1]) {
      const bytes = Buffer.from(original);
      bytes[at] = (bytes[at] as number) ^ 0x40;
      writeFileSync(path, bytes);
      expect(cairn(['backup', 'show', m.id, '--repo', repo, '--json']).code, `flip at byte ${at}`).toBe(CORRUPT);
    }
    writeFileSync(path, original);
    expect(cairn(['backup', 'show', m.id, '--repo', repo, '--json']).code).toBe(0);
  });

  it('a blob that would inflate past its recorded size is refused without inflating it', () => {
    const bomb = zstdCompress(Buffer.alloc(64 * 1024 * 1024));
    expect(bomb.length).toBeLessThan(64 * 1024);
    const before = process.memoryUsage().arrayBuffers;
    let err: unknown;
    try {
      decompressBlob(bomb, 'zstd', 1024 * 1024, 'chunk x');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CorruptionError);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 * 1024 * 1024);
    expect(() => decompressBlob(bomb, 'zstd', 2 ** 40, 'chunk y')).toThrow('impossible size');
  });

  it('an index whose content does not match its name is named as damaged, not a chunk', async () => {
    const dir = mkdtempSync(join(work, 'index-id-'));
    const storage = new FileSystemStorage(dir);
    const repo = await Repository.init(storage);
    const b = new PackBuilder();
    const data = Buffer.from('hello');
    b.add(sha256Hex(data), data, 5, 'none');
    const pack = b.finish();
    await storage.put(packKey(pack.id), pack.parts);
    const id = await writeIndexDocument(storage, [{ id: pack.id, length: pack.length, blobs: pack.blobs }]);
    const other = await writeIndexDocument(storage, []);
    // The document stored under another id's name:
    await storage.put(`index/${other}`, await storage.get(`index/${id}`));
    const loaded = await ChunkIndex.load(storage);
    expect(loaded.damaged.map((d) => d.id)).toEqual([other]);
    await expect(ChunkIndex.load(storage, { strict: true })).rejects.toThrow(`index/${other}`);
    expect((await new ChunkReader(storage, loaded.chunks, sha256Hex).read(sha256Hex(data))).toString()).toBe('hello');
    void repo;
  });
});

/** Bytes each get / getRange returned, per key, and the pack reads' operations. */
class ReadBytes extends StorageMiddleware {
  bytes = new Map<string, number>();
  packOps: string[] = [];
  protected async around<T>(call: StorageCall, run: () => Promise<T>): Promise<T> {
    const result = await run();
    if (call.op === 'get' || call.op === 'getRange') {
      this.bytes.set(call.key, (this.bytes.get(call.key) ?? 0) + (result as Buffer).length);
      if (call.key.startsWith('data/')) this.packOps.push(call.op);
    }
    return result;
  }
  /** Bytes read under keys starting with `prefix`. */
  sum(prefix: string): number {
    return [...this.bytes].filter(([k]) => k.startsWith(prefix)).reduce((n, [, v]) => n + v, 0);
  }
}

/** Per table of (id, v) rows, a SHA-256 of its rows in id order (comparing megabytes of rows with toEqual is slow). */
function tableDigests(path: string): Record<string, string> {
  const d = new Database(path, { readonly: true });
  try {
    const out: Record<string, string> = {};
    for (const { name } of d.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").all() as { name: string }[]) {
      const rows = d.prepare(`SELECT id, v FROM "${name}" ORDER BY id`).all() as { id: number; v: Buffer }[];
      out[name] = sha256Hex(Buffer.concat(rows.flatMap((r) => [Buffer.from(`${r.id}:${r.v.length}:`), r.v])));
    }
    return out;
  } finally {
    d.close();
  }
}

describe('a restore reads only what it needs (issue 22)', () => {
  it('one small table stored among large ones: at most twice its stored bytes of packs; a full restore reads whole packs', async () => {
    const dir = mkdtempSync(join(work, 'partial-reads-'));
    const storage = new FileSystemStorage(join(dir, 'repo'));
    // Tables are written largest first, so the small one goes into the last pack; 8 MiB packs
    // here hold the whole backup (~5 MB), so that pack is mostly other tables' data.
    const init = await Repository.init(storage, { packSize: 8 * 1024 * 1024, compression: { algorithm: 'none', level: 'default' } });
    const db = join(dir, 'src.db');
    const d = new Database(db);
    for (const t of ['t1', 't2', 't3']) {
      d.exec(`CREATE TABLE ${t} (id INTEGER PRIMARY KEY, v BLOB); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) INSERT INTO ${t} SELECT i, randomblob(8000) FROM n;`);
    }
    d.exec('CREATE TABLE t2_small (id INTEGER PRIMARY KEY, v BLOB); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 150) INSERT INTO t2_small SELECT i, randomblob(1000) FROM n;');
    d.close();
    const manifest = await runBackup({ repo: init, source: openSource(`sqlite://${db}`), id: 'b', compressionWorkers: 0 });
    const loaded = await ChunkIndex.load(storage);
    const small = manifest.collections.find((c) => c.name === 't2_small') as BackupManifest['collections'][number];
    const stored = small.chunks.reduce((n, id) => n + (loaded.chunks.get(id)?.length ?? 0), 0);
    const smallPacks = new Set(small.chunks.map((id) => loaded.chunks.get(id)?.packId));
    const packBytes = [...smallPacks].reduce((n, id) => n + (loaded.packs.get(id as string)?.length ?? 0), 0);
    // The case that matters: whole packs would be far more than twice the table.
    expect(packBytes).toBeGreaterThan(4 * stored);

    const counted = new ReadBytes(storage);
    const repo = await Repository.open(counted);
    counted.bytes.clear();
    await runRestore({ repo, backupId: 'b', target: openTarget(`sqlite://${join(dir, 'small.db')}`), selection: { include: ['t2_small'] }, jobs: 1 });
    expect(tableDigests(join(dir, 'small.db'))).toEqual({ t2_small: tableDigests(db).t2_small });
    // Fixed cost, accounted for by key: the manifest once and the index documents once (plus the
    // restore's own lock, read back when it is taken); nothing else outside data/.
    const sizes = new Map<string, number>();
    for await (const o of storage.list('')) sizes.set(o.key, o.size);
    const fixedKeys = [...counted.bytes.keys()].filter((k) => !k.startsWith('data/'));
    expect(fixedKeys.filter((k) => !/^(backups|index|locks)\//.test(k))).toEqual([]);
    for (const k of fixedKeys.filter((k) => !k.startsWith('locks/'))) expect(counted.bytes.get(k), k).toBe(sizes.get(k));
    const packsRead = counted.sum('data/');
    console.log(`partial restore: ${packsRead} B of packs (${counted.packOps.length} reads) for a table stored in ${stored} B (whole packs: ${packBytes} B); fixed ${counted.sum('backups/') + counted.sum('index/')} B manifest + index, ${counted.sum('locks/')} B locks`);
    expect(packsRead).toBeLessThanOrEqual(2 * stored);

    // The whole backup: every pack read once, whole (object stores prefer few large reads).
    counted.bytes.clear();
    counted.packOps = [];
    await runRestore({ repo, backupId: 'b', target: openTarget(`sqlite://${join(dir, 'full.db')}`), jobs: 1 });
    expect(tableDigests(join(dir, 'full.db'))).toEqual(tableDigests(db));
    expect(new Set(counted.packOps)).toEqual(new Set(['get']));
    expect(counted.sum('data/')).toBe([...loaded.packs.values()].reduce((n, p) => n + p.length, 0));
  }, 120_000);
});

describe('locks', () => {
  it('a backup given lockWaitMs (as scheduled backups are) waits for a prune holding the exclusive lock instead of failing', async () => {
    const dir = mkdtempSync(join(work, 'lock-wait-'));
    const storage = new FileSystemStorage(dir);
    const repo = await Repository.init(storage);
    const db = join(dir, '..', `${n++}-src.db`);
    sql(db, "CREATE TABLE t(k TEXT); INSERT INTO t VALUES ('x');");
    const exclusive = await repo.lock(true, 'prune (test)');
    const pending = runBackup({ repo, source: openSource(`sqlite://${db}`), id: 'waited', lockWaitMs: 60_000, compressionWorkers: 0 });
    // Await the backup's first attempt (its lock object appears beside ours), then let go.
    for (let seen = false; !seen; ) {
      const keys: string[] = [];
      for await (const o of storage.list('locks/')) keys.push(o.key);
      seen = keys.some((k) => k !== exclusive.key);
      if (!seen) await new Promise((r) => setImmediate(r));
    }
    await exclusive.release();
    expect((await pending).id).toBe('waited');
    // Without lockWaitMs the same situation fails at once, naming the holder.
    const again = await repo.lock(true, 'prune (test)');
    await expect(runBackup({ repo, source: openSource(`sqlite://${db}`), id: 'no-wait', compressionWorkers: 0 })).rejects.toThrow('prune (test)');
    await again.release();
  });
});

describe('repo init', () => {
  it('refuses a location that holds repository data but no config', () => {
    const { repo, db } = fresh();
    sql(db, "CREATE TABLE t(k TEXT); INSERT INTO t VALUES ('x');");
    backup(repo, db);
    unlinkSync(join(repo, 'config'));
    const r = cairn(['repo', 'init', repo]);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('no config');
    expect(readdirSync(join(repo, 'data')).length).toBeGreaterThan(0);
  });
});

/** A storage that fails ("killed") on the first put whose key matches. */
function withFault(storage: Storage, matches: (key: string) => boolean): Storage {
  return Object.assign(Object.create(storage) as Storage, {
    put: async (key: string, data: Payload, options?: PutOptions) => {
      if (matches(key)) throw new Error(`killed before writing ${key}`);
      return storage.put(key, data, options);
    },
  });
}

/**
 * The storage of a process that dies after `allowed` writes and deletes (each recorded in
 * `done`): every later one throws before it acts. Lock objects still work, so the lock goes as a
 * dead holder's does (stale by proof; tested in lock.test.ts).
 */
function dyingAfter(storage: Storage, allowed: number, done: string[]): Storage {
  const act = async (what: string, key: string, op: () => Promise<void>): Promise<void> => {
    if (key.startsWith('locks/')) return op();
    if (done.length >= allowed) throw new Error(`killed before ${what} ${key}`);
    await op();
    done.push(`${what} ${key}`);
  };
  return Object.assign(Object.create(storage) as Storage, {
    put: (key: string, data: Uint8Array, options?: PutOptions) => act('put', key, () => storage.put(key, data, options)),
    delete: (key: string) => act('delete', key, () => storage.delete(key)),
  });
}
