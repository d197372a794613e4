/**
 * End-to-end: the built `cairn` CLI against real SQLite files and a local repository.
 */
import { createHash, randomInt } from 'node:crypto';
import { copyFileSync, existsSync, readFileSync, readdirSync, readlinkSync, writeFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import type BetterSqlite3 from 'better-sqlite3';
import Database, { SQLITE_DRIVER_PACKAGE } from '../../src/sources/sqlite/driver.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackupManifest } from '../../src/core/schemas.js';
import { CHINOOK, CLI, cairn, cairnAsync, cairnJson } from '../helpers/cli.js';
import { dumpSqlite } from '../helpers/sqlite-compare.js';
import { ownerToken } from '../../src/core/owner.js';

const EXIT = { USAGE: 2, NOT_FOUND: 3, CONFLICT: 4, CORRUPT: 6, SOURCE: 7, CANCELLED: 130 };

let work: string;
let chinook: string;
let big: string;

const WORDS = 'alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu'.split(' ');
function words(n: number): string {
  return Array.from({ length: n }, () => WORDS[randomInt(WORDS.length)]).join(' ');
}

/** A database with one large table (~24 MiB) and two small ones, in WAL mode. */
function makeBigDatabase(path: string): void {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.exec(`CREATE TABLE events (id INTEGER PRIMARY KEY, at TEXT NOT NULL, kind TEXT, payload TEXT);
           CREATE INDEX events_at ON events(at);
           CREATE TABLE ledger (id INTEGER PRIMARY KEY, amount INTEGER NOT NULL);
           CREATE TABLE totals (id INTEGER PRIMARY KEY, total INTEGER NOT NULL);
           INSERT INTO totals VALUES (1, 0);`);
  appendEvents(db, 0, 120_000);
  db.close();
}

function appendEvents(db: BetterSqlite3.Database, from: number, count: number): void {
  const insert = db.prepare('INSERT INTO events (id, at, kind, payload) VALUES (?, ?, ?, ?)');
  db.transaction(() => {
    for (let i = from; i < from + count; i++) {
      insert.run(i + 1, new Date(1_700_000_000_000 + i * 1000).toISOString(), WORDS[i % WORDS.length], `${words(25)} ${i}`);
    }
  })();
}

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function newRepo(name: string, extra: string[] = []): string {
  const repo = join(work, name);
  const r = cairn(['repo', 'init', repo, ...extra]);
  expect(r.code, r.stderr).toBe(0);
  return repo;
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'cairn-cli-'));
  chinook = join(work, 'chinook.db');
  copyFileSync(CHINOOK, chinook);
  big = join(work, 'big.db');
  makeBigDatabase(big);
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('Chinook round trip', () => {
  it('backs up, lists, shows and restores into a new file with the same schema and rows', () => {
    const repo = newRepo('chinook-repo');
    const manifest = cairnJson<BackupManifest>(['backup', 'create', '--source', `sqlite://${chinook}`, '--repo', repo]);
    expect(manifest.id).toMatch(/^chinook-\d{8}-\d{6}$/);
    expect(manifest.source).toMatchObject({ kind: 'sqlite', name: 'chinook' });
    expect(manifest.collections.map((c) => c.name)).toEqual(expect.arrayContaining(['Album', 'Artist', 'Track', 'Invoice', 'InvoiceLine']));
    const track = manifest.collections.find((c) => c.name === 'Track');
    expect(track?.rowCount).toBe(3503);
    expect(manifest.totals.rows).toBeGreaterThan(15_000);

    const list = cairnJson<{ backups: BackupManifest[] }>(['backup', 'list', '--repo', repo]).backups;
    expect(list.map((b) => b.id)).toEqual([manifest.id]);
    const human = cairn(['backup', 'list', '--repo', repo]);
    expect(human.stdout).toContain(manifest.id);
    expect(human.stdout).toMatch(/CREATED \(UTC\)/);

    const show = cairn(['backup', 'show', manifest.id, '--repo', repo]);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/Track\s+table\s+3,503/);
    expect(show.stdout).toMatch(/New data\s+.* new, .* reused/);

    const copy = join(work, 'chinook-copy.db');
    const restored = cairn(['restore', manifest.id, '--repo', repo, '--to', `sqlite://${copy}`]);
    expect(restored.code, restored.stderr).toBe(0);
    expect(dumpSqlite(copy)).toEqual(dumpSqlite(chinook));
    expect(readdirSync(work).filter((n) => n.includes('cairn-restore'))).toEqual([]);

    const verify = cairn(['verify', manifest.id, '--repo', repo, '--read-data']);
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout).toMatch(/Verified 1 backup/);
  });

  it('accepts sqlite:relative paths and file:// repository URLs', () => {
    const repo = newRepo('rel-repo');
    const r = cairn(['backup', 'create', '--source', 'sqlite:chinook.db', '--repo', `file://${repo}`, '--id', 'rel-1'], { cwd: work });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Backup rel-1 created');
  });

  it('without --repo, uses the repository the server-style BACKUP_* variables describe', () => {
    const repo = newRepo('env-repo');
    const env = { CAIRN_REPO: '', BACKUP_FILESYSTEM_PATH: repo };
    const r = cairn(['backup', 'create', '--source', `sqlite://${chinook}`, '--id', 'env-1'], { env });
    expect(r.code, r.stderr).toBe(0);
    const list = cairnJson<{ backups: { id: string }[] }>(['backup', 'list', '--json'], { env }).backups;
    expect(list.map((b) => b.id)).toEqual(['env-1']);
    const bad = cairn(['backup', 'list'], { env: { CAIRN_REPO: '', BACKUP_FILESYSTEM_PATH: '' } });
    expect(bad.code).toBe(EXIT.USAGE);
    expect(bad.stderr).toMatch(/BACKUP_FILESYSTEM_PATH/);
  });
});

describe('output into a pipe that closes early', () => {
  it('`cairn … --help | head -1` ends quietly: exit 0, no stack trace', () => {
    const r = spawnSync('bash', ['-c', `set -o pipefail; "${process.execPath}" "${CLI}" schedule add --help | head -1`], { encoding: 'utf8' });
    expect(r.stdout).toMatch(/^Usage: cairn schedule add/);
    expect(r.stderr).not.toMatch(/EPIPE|at /);
    expect(r.status).toBe(0);
  });
});

describe('include, exclude, rename and conflicts', () => {
  let repo: string;
  beforeAll(() => {
    repo = newRepo('select-repo');
    expect(cairn(['backup', 'create', '--source', `sqlite://${chinook}`, '--repo', repo, '--id', 'full']).code).toBe(0);
  });

  it('backs up only the included tables, or all but the excluded ones', () => {
    const inc = cairnJson<BackupManifest>(['backup', 'create', '--source', `sqlite://${chinook}`, '--repo', repo, '--id', 'inc', '--include', 'Artist,Album']);
    expect(inc.collections.map((c) => c.name).sort()).toEqual(['Album', 'Artist']);
    expect(inc.scope).toEqual({ include: ['Artist', 'Album'] });
    const exc = cairnJson<BackupManifest>(['backup', 'create', '--source', `sqlite://${chinook}`, '--repo', repo, '--id', 'exc', '--exclude', 'Track', '--exclude', 'Invoice*']);
    const names = exc.collections.map((c) => c.name);
    expect(names).not.toContain('Track');
    expect(names).not.toContain('Invoice');
    expect(names).not.toContain('InvoiceLine');
    expect(names).toContain('Album');
    // Unchanged tables cost nothing: the included ones were already stored by "full".
    expect(inc.totals.newBytes).toBe(0);
  });

  it('restores a subset under a new name into an existing file, leaving other tables alone', () => {
    const target = join(work, 'existing.db');
    const db = new Database(target);
    db.exec('CREATE TABLE mine (x INTEGER); INSERT INTO mine VALUES (42);');
    db.close();
    const r = cairn(['restore', 'full', '--repo', repo, '--to', `sqlite://${target}`, '--include', 'Album,Artist', '--rename', 'Album=AlbumCopy']);
    expect(r.code, r.stderr).toBe(0);
    const out = new Database(target, { readonly: true });
    const tables = out.prepare("SELECT name FROM sqlite_schema WHERE type='table' ORDER BY name").pluck().all();
    expect(tables).toEqual(['AlbumCopy', 'Artist', 'mine']);
    expect(out.prepare('SELECT count(*) FROM AlbumCopy').pluck().get()).toBe(347);
    expect(out.prepare('SELECT x FROM mine').pluck().get()).toBe(42);
    out.close();
  });

  it('refuses to overwrite under the default policy and leaves the target byte-identical', () => {
    const target = join(work, 'conflict.db');
    const db = new Database(target);
    db.exec('CREATE TABLE Artist (ArtistId INTEGER PRIMARY KEY, Name TEXT); INSERT INTO Artist VALUES (1, \'mine\');');
    db.close();
    const before = sha256File(target);
    const r = cairn(['restore', 'full', '--repo', repo, '--to', `sqlite://${target}`]);
    expect(r.code).toBe(EXIT.CONFLICT);
    expect(r.stderr).toMatch(/Artist.*already exists.*--on-conflict overwrite/s);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(sha256File(target)).toBe(before);
  });

  it('overwrites a table whose schema matches, and refuses one whose schema differs without writing anything', () => {
    const target = join(work, 'overwrite.db');
    copyFileSync(chinook, target);
    const db = new Database(target);
    db.pragma('foreign_keys = OFF');
    db.exec('DELETE FROM Genre');
    db.close();
    const ok = cairn(['restore', 'full', '--repo', repo, '--to', `sqlite://${target}`, '--include', 'Genre', '--on-conflict', 'overwrite']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(dumpSqlite(target).tables.Genre).toEqual(dumpSqlite(chinook).tables.Genre);

    const other = join(work, 'different.db');
    const d2 = new Database(other);
    d2.exec('CREATE TABLE Genre (GenreId INTEGER PRIMARY KEY, Label TEXT, Extra INTEGER)');
    d2.close();
    const before = sha256File(other);
    const refused = cairn(['restore', 'full', '--repo', repo, '--to', `sqlite://${other}`, '--include', 'Genre', '--on-conflict', 'overwrite']);
    expect(refused.code).toBe(EXIT.CONFLICT);
    expect(refused.stderr).toMatch(/Genre/);
    expect(sha256File(other)).toBe(before);
  });
});

describe('deduplication', () => {
  it('stores under 1% new bytes for an unchanged database and about the appended rows after an append', () => {
    const repo = newRepo('dedup-repo');
    const first = cairnJson<BackupManifest>(['backup', 'create', '--source', `sqlite://${big}`, '--repo', repo, '--id', 'first']);
    expect(first.totals.logicalBytes).toBeGreaterThan(15 * 1024 * 1024);
    const second = cairnJson<BackupManifest>(['backup', 'create', '--source', `sqlite://${big}`, '--repo', repo, '--id', 'second']);
    expect(second.totals.newBytes).toBeLessThan(0.01 * second.totals.storedBytes);

    const copy = join(work, 'big-appended.db');
    copyFileSync(big, copy);
    const db = new Database(copy);
    const before = (db.prepare('SELECT count(*) FROM events').pluck().get() as number) ?? 0;
    appendEvents(db, before, 4000); // ~3% more rows
    db.close();
    const third = cairnJson<BackupManifest>(['backup', 'create', '--source', `sqlite://${copy}`, '--repo', repo, '--id', 'third']);
    const events = third.collections.find((c) => c.name === 'events');
    const firstEvents = first.collections.find((c) => c.name === 'events');
    if (!events || !firstEvents) throw new Error('events collection missing');
    const appendedLogical = events.logicalBytes - firstEvents.logicalBytes;
    // New data is the appended rows plus at most the one chunk they were cut into (≤ 4 MiB raw).
    expect(events.newBytes).toBeGreaterThan(0);
    expect(events.newBytes).toBeLessThan(0.25 * events.storedBytes);
    const ratio = first.totals.storedBytes / first.totals.logicalBytes; // compression ratio
    expect(events.newBytes).toBeLessThan((appendedLogical + 4 * 1024 * 1024) * ratio * 1.2);
    for (const c of third.collections.filter((c) => c.name !== 'events')) expect(c.newBytes, c.name).toBe(0);

    const show = cairn(['backup', 'show', 'third', '--repo', repo]);
    expect(show.stdout).toMatch(/New data\s+\S+ \S+ new, \S+ \S+ reused/);
  });

  it('reclaims the space of a deleted backup with prune, and keeps the others restorable', () => {
    const repo = newRepo('prune-repo', ['--pack-size', '1']);
    expect(cairn(['backup', 'create', '--source', `sqlite://${chinook}`, '--repo', repo, '--id', 'keep']).code).toBe(0);
    expect(cairn(['backup', 'create', '--source', `sqlite://${big}`, '--repo', repo, '--id', 'drop', '--include', 'events']).code).toBe(0);
    const sizeBefore = dirSize(join(repo, 'data'));
    const del = cairn(['backup', 'delete', 'drop', '--repo', repo]);
    expect(del.code, del.stderr).toBe(0);
    expect(cairn(['backup', 'show', 'drop', '--repo', repo]).code).toBe(EXIT.NOT_FOUND);
    const young = cairnJson<{ packsDeleted: number; packsKeptYoung: number }>(['prune', '--repo', repo]);
    expect(young).toMatchObject({ packsDeleted: 0 }); // younger than the default grace period
    expect(young.packsKeptYoung).toBeGreaterThan(0);
    const pruned = cairnJson<{ packsDeleted: number; bytesFreed: number }>(['prune', '--repo', repo, '--grace', '0']);
    expect(pruned.packsDeleted).toBeGreaterThan(0);
    expect(dirSize(join(repo, 'data'))).toBeLessThan(sizeBefore / 4);
    expect(cairn(['verify', '--repo', repo, '--read-data']).code).toBe(0);
    const copy = join(work, 'after-prune.db');
    expect(cairn(['restore', 'keep', '--repo', repo, '--to', `sqlite://${copy}`]).code).toBe(0);
    expect(dumpSqlite(copy)).toEqual(dumpSqlite(chinook));
  });
});

function dirSize(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += statSync(join(entry.parentPath, entry.name)).size;
  }
  return total;
}

describe('expiry', () => {
  const ok = (r: { code: number | null; stderr: string }): void => expect(r.code, r.stderr).toBe(0);
  it('--expires sets an expiry; set-expiry changes it (date, duration or never); expire deletes only expired backups', () => {
    const repo = newRepo('expiry-repo');
    const src = `sqlite://${chinook}`;
    const before = Date.now();
    const a = cairnJson<BackupManifest>(['backup', 'create', '--source', src, '--repo', repo, '--id', 'keep-manual', '--json']);
    expect(a.expiresAt).toBeNull();
    const b = cairnJson<BackupManifest>(['backup', 'create', '--source', src, '--repo', repo, '--id', 'thirty-days', '--expires', '30d', '--json']);
    const expires = Date.parse(b.expiresAt as string);
    expect(expires - before).toBeGreaterThanOrEqual(30 * 86400e3 - 60e3);
    expect(expires - before).toBeLessThan(30 * 86400e3 + 60e3);
    ok(cairn(['backup', 'create', '--source', src, '--repo', repo, '--id', 'old', '--expires', '1y']));
    // moved into the past: expired now, without waiting
    const set = cairn(['backup', 'set-expiry', 'old', '2020-01-01', '--repo', repo]);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toContain('expires at 2020-01-01T00:00:00.000Z');
    ok(cairn(['backup', 'create', '--source', src, '--repo', repo, '--id', 'rescued', '--expires', '1d']));
    ok(cairn(['backup', 'set-expiry', 'rescued', '2020-01-01', '--repo', repo]));
    expect(cairn(['backup', 'set-expiry', 'rescued', 'never', '--repo', repo]).stdout).toContain('never expires');
    expect(cairn(['backup', 'set-expiry', 'rescued', 'soon', '--repo', repo]).code).toBe(EXIT.USAGE);
    expect(cairn(['backup', 'create', '--source', src, '--repo', repo, '--expires', '3 days']).stderr).toMatch(/--expires "3 days"/);
    const dry = cairnJson<{ expired: string[] }>(['backup', 'expire', '--repo', repo, '--dry-run', '--json']);
    expect(dry.expired).toEqual(['old']);
    const run = cairn(['backup', 'expire', '--repo', repo]);
    expect(run.stdout).toContain('Deleted 1 expired backup: old.');
    const left = cairnJson<{ backups: { id: string; expiresAt: string | null }[] }>(['backup', 'list', '--repo', repo, '--json']).backups;
    expect(left.map((m) => m.id).sort()).toEqual(['keep-manual', 'rescued', 'thirty-days']);
    expect(cairn(['backup', 'expire', '--repo', repo]).stdout).toContain('No backup has expired.');
  });
});

describe('damage', () => {
  it('a flipped byte in a pack fails verify --read-data and restore, naming the pack and only the collections using the damaged chunk, and writes nothing', () => {
    const repo = newRepo('damage-repo');
    expect(cairn(['backup', 'create', '--source', `sqlite://${chinook}`, '--repo', repo, '--id', 'b']).code).toBe(0);
    const packs = readdirSync(join(repo, 'data'), { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
    expect(packs.length).toBeGreaterThan(0);
    const pack = packs[0];
    if (!pack) throw new Error('no pack');
    const path = join(pack.parentPath, pack.name);
    const bytes = readFileSync(path);
    const at = Math.floor(bytes.length / 3);
    bytes.writeUInt8(bytes.readUInt8(at) ^ 0x20, at);
    writeFileSync(path, bytes);

    expect(cairn(['verify', 'b', '--repo', repo]).code).toBe(0); // structure intact; content is only read with --read-data
    const verify = cairn(['verify', 'b', '--repo', repo, '--read-data']);
    expect(verify.code).toBe(EXIT.CORRUPT);
    expect(verify.stderr).toContain(pack.name);
    // Contained: exactly the collections that use the damaged chunk are named.
    const named = [...verify.stderr.matchAll(/b: (\w+)/g)].map((m) => m[1] as string);
    expect(named.length).toBeGreaterThan(0);
    expect(named.length).toBeLessThan(11);

    const target = join(work, 'damaged-restore.db');
    const restore = cairn(['restore', 'b', '--repo', repo, '--to', `sqlite://${target}`]);
    expect(restore.code).toBe(EXIT.CORRUPT);
    expect(restore.stderr).toContain(pack.name);
    expect(restore.stderr).toContain(`Affected collections: ${named.join(', ')}.`);
    expect(existsSync(target)).toBe(false);
    // Everything else restores.
    const rest = join(work, 'damaged-rest.db');
    const partial = cairn(['restore', 'b', '--repo', repo, '--to', `sqlite://${rest}`, '--exclude', named.join(',')]);
    expect(partial.stderr).toBe('');
    expect(Object.keys(dumpSqlite(rest).tables).length).toBe(11 - named.length);
    expect(readdirSync(work).filter((n) => n.includes('cairn-restore'))).toEqual([]);

    const existing = join(work, 'damaged-existing.db');
    copyFileSync(chinook, existing);
    const before = sha256File(existing);
    expect(cairn(['restore', 'b', '--repo', repo, '--to', `sqlite://${existing}`, '--on-conflict', 'overwrite']).code).toBe(EXIT.CORRUPT);
    expect(sha256File(existing)).toBe(before);
  });
});

describe('interruption and concurrency', () => {
  it('a backup killed with SIGKILL leaves no visible backup; the next backup, verify and prune succeed', async () => {
    const repo = newRepo('kill-repo', ['--pack-size', '1']);
    const child = cairnAsync(['backup', 'create', '--source', `sqlite://${big}`, '--repo', repo, '--id', 'killed', '--level', 'best']);
    const dataDir = join(repo, 'data');
    const deadline = Date.now() + 60_000;
    const packsWritten = (): number =>
      existsSync(dataDir) ? readdirSync(dataDir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile() && !e.name.startsWith('.')).length : 0;
    while (Date.now() < deadline && packsWritten() < 2) {
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(packsWritten()).toBeGreaterThanOrEqual(2); // it had written packs when it died
    expect(cairnJson<{ backups: BackupManifest[] }>(['backup', 'list', '--repo', repo]).backups).toEqual([]);
    expect(cairn(['backup', 'show', 'killed', '--repo', repo]).code).toBe(EXIT.NOT_FOUND);

    const next = cairn(['backup', 'create', '--source', `sqlite://${chinook}`, '--repo', repo, '--id', 'next']);
    expect(next.code, next.stderr).toBe(0);
    expect(cairn(['verify', '--repo', repo, '--read-data']).code).toBe(0);
    // The dead backup's packs are unindexed and young: kept for the grace period (a live backup
    // could be writing them), removed with --grace 0.
    const kept = cairnJson<{ packsDeleted: number; packsKeptYoung: number; staleLocksRemoved: number }>(['prune', '--repo', repo]);
    expect(kept.packsKeptYoung).toBeGreaterThanOrEqual(2);
    expect(kept.staleLocksRemoved).toBe(1);
    const pruned = cairnJson<{ packsDeleted: number }>(['prune', '--repo', repo, '--grace', '0']);
    expect(pruned.packsDeleted).toBeGreaterThan(0);
    expect(cairn(['verify', '--repo', repo, '--read-data']).code).toBe(0);
    // The id of the killed backup is free again.
    expect(cairn(['backup', 'create', '--source', `sqlite://${chinook}`, '--repo', repo, '--id', 'killed']).code).toBe(0);
  });

  it('Ctrl-C during a backup exits 130, leaves no backup, and leaves the packs it wrote to prune', async () => {
    const repo = newRepo('cancel-backup-repo', ['--pack-size', '1']);
    const child = cairnAsync(['backup', 'create', '--source', `sqlite://${big}`, '--repo', repo, '--id', 'cancelled', '--level', 'best']);
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const dataDir = join(repo, 'data');
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && !(existsSync(dataDir) && readdirSync(dataDir, { recursive: true, withFileTypes: true }).some((e) => e.isFile() && !e.name.startsWith('.')))) {
      await new Promise((r) => setTimeout(r, 10));
    }
    child.kill('SIGINT');
    const code = await new Promise((r) => child.once('exit', r));
    expect(code).toBe(130);
    expect(stderr).toMatch(/cancel/i);
    expect(cairnJson<{ backups: BackupManifest[] }>(['backup', 'list', '--repo', repo]).backups).toEqual([]);
    expect(readdirSync(join(repo, 'locks'))).toEqual([]);
    // Its packs are never deleted by the cancelled backup itself (an identical pack may be
    // another backup's); prune removes them once older than its grace period (here: at once).
    expect(cairnJson<{ packsDeleted: number }>(['prune', '--repo', repo, '--grace', '0']).packsDeleted).toBeGreaterThan(0);
    const leftover = readdirSync(dataDir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
    expect(leftover).toEqual([]);
  });

  it('Ctrl-C during a restore exits 130 and leaves the target as it was', async () => {
    const repo = newRepo('cancel-restore-repo');
    expect(cairn(['backup', 'create', '--source', `sqlite://${big}`, '--repo', repo, '--id', 'b']).code).toBe(0);
    for (const [name, existing] of [['cancel-new.db', false], ['cancel-existing.db', true]] as const) {
      const target = join(work, name);
      // A restore that reaches its switch before the signal is handled completes (exit 0), which
      // is right; on a loaded machine that can happen, so such a run is repeated (at most 3 times).
      let code: unknown;
      for (let attempt = 1; attempt <= 3; attempt++) {
        rmSync(target, { force: true });
        if (existing) copyFileSync(chinook, target);
        const before = existing ? sha256File(target) : undefined;
        const child = cairnAsync(['restore', 'b', '--repo', repo, '--to', `sqlite://${target}`, '--on-conflict', 'overwrite']);
        const deadline = Date.now() + 60_000;
        while (Date.now() < deadline && !readdirSync(work).some((n) => n.startsWith(`.${name}.cairn-restore`))) {
          await new Promise((r) => setTimeout(r, 5));
        }
        child.kill('SIGINT');
        code = await new Promise((r) => child.once('exit', r));
        expect(readdirSync(work).filter((n) => n.includes('cairn-restore'))).toEqual([]);
        if (code === 0) {
          console.log(`${name}: attempt ${attempt} finished before the signal was handled; again`);
          continue;
        }
        expect(code, name).toBe(130);
        if (existing) expect(sha256File(target)).toBe(before);
        else expect(existsSync(target)).toBe(false);
        break;
      }
      expect(code, `${name}: never cancelled in 3 attempts`).toBe(130);
    }
  });

  it('two backups write into one repository at the same time without harm', async () => {
    const repo = newRepo('concurrent-repo', ['--pack-size', '1']);
    const run = (id: string, src: string) =>
      new Promise<number>((resolve) => {
        const c = cairnAsync(['backup', 'create', '--source', `sqlite://${src}`, '--repo', repo, '--id', id]);
        c.once('exit', (code) => resolve(code ?? -1));
      });
    const codes = await Promise.all([run('one', big), run('two', chinook), run('three', big)]);
    expect(codes).toEqual([0, 0, 0]);
    expect(cairnJson<{ backups: BackupManifest[] }>(['backup', 'list', '--repo', repo]).backups.map((b) => b.id).sort()).toEqual(['one', 'three', 'two']);
    expect(cairn(['verify', '--repo', repo, '--read-data']).code).toBe(0);
    const copy = join(work, 'concurrent-copy.db');
    expect(cairn(['restore', 'three', '--repo', repo, '--to', `sqlite://${copy}`]).code).toBe(0);
    expect(dumpSqlite(copy)).toEqual(dumpSqlite(big));
  });

  it('takes one consistent snapshot while another process keeps writing (WAL)', async () => {
    const db = join(work, 'busy.db');
    copyFileSync(big, db);
    for (const suffix of ['-wal', '-shm']) if (existsSync(big + suffix)) copyFileSync(big + suffix, db + suffix);
    // Each transaction inserts into ledger and updates totals: a consistent snapshot has sum(ledger) = total.
    const writer = spawn(
      process.execPath,
      [
        '-e',
        `const D = require(${JSON.stringify(SQLITE_DRIVER_PACKAGE)}); const db = new D(${JSON.stringify(db)}); db.pragma('busy_timeout = 5000');
         const ins = db.prepare('INSERT INTO ledger (amount) VALUES (?)'); const upd = db.prepare('UPDATE totals SET total = total + ? WHERE id = 1');
         const tx = db.transaction((v) => { ins.run(v); upd.run(v); });
         const end = Date.now() + 30000; let n = 0;
         while (Date.now() < end) { tx(1 + (n++ % 7)); if (n === 50) process.stdout.write('ready\\n'); }`,
      ],
      { cwd: join(work, '..'), stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, NODE_PATH: join(process.cwd(), 'node_modules') } },
    );
    try {
      await new Promise<void>((resolve, reject) => {
        writer.stdout?.once('data', () => resolve());
        writer.once('exit', (code) => reject(new Error(`writer exited early (${code})`)));
      });
      const repo = newRepo('busy-repo');
      const m = cairnJson<BackupManifest>(['backup', 'create', '--source', `sqlite://${db}`, '--repo', repo, '--id', 'busy']);
      const copy = join(work, 'busy-copy.db');
      expect(cairn(['restore', 'busy', '--repo', repo, '--to', `sqlite://${copy}`]).code).toBe(0);
      const out = new Database(copy, { readonly: true });
      const sum = out.prepare('SELECT coalesce(sum(amount), 0) FROM ledger').pluck().get();
      const total = out.prepare('SELECT total FROM totals WHERE id = 1').pluck().get();
      const rows = out.prepare('SELECT count(*) FROM ledger').pluck().get() as number;
      out.close();
      expect(rows).toBeGreaterThan(0);
      expect(sum).toBe(total);
      expect(m.collections.find((c) => c.name === 'ledger')?.rowCount).toBe(rows);
    } finally {
      writer.kill('SIGKILL');
    }
    // The writer was still running after the backup: the live database has moved on.
    const live = new Database(db, { readonly: true });
    expect(live.prepare('SELECT count(*) FROM ledger').pluck().get() as number).toBeGreaterThan(50);
    live.close();
  });
});

/** Polls `cond` every 5 ms until it holds or `ms` pass; returns whether it held. */
async function until(cond: () => boolean, ms = 60_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 5));
  }
  return cond();
}

function exitOf(child: ReturnType<typeof cairnAsync>): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
}

/** Whether process `pid` has `file` open (Linux /proc). */
function hasOpen(pid: number, file: string): boolean {
  try {
    return readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`) === file;
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}

describe('leftovers of restores killed outright, staging files and backups', () => {
  let repo: string;
  beforeAll(() => {
    repo = newRepo('leftover-repo');
    expect(cairn(['backup', 'create', '--source', `sqlite://${big}`, '--repo', repo, '--id', 'big']).code).toBe(0);
    expect(cairn(['backup', 'create', '--source', `sqlite://${chinook}`, '--repo', repo, '--id', 'chinook']).code).toBe(0);
  });

  /** Starts a restore of "big" into `target` and SIGKILLs it as soon as its staging file exists; returns the staging file's name. */
  async function killedRestore(dir: string, target: string): Promise<string> {
    const name = target.slice(dir.length + 1);
    const child = cairnAsync(['restore', 'big', '--repo', repo, '--to', `sqlite://${target}`]);
    const staging = (): string | undefined => readdirSync(dir).find((n) => n.startsWith(`.${name}.cairn-restore-`) && !/-(journal|wal|shm)$/.test(n));
    expect(await until(() => staging() !== undefined || child.exitCode !== null)).toBe(true);
    child.kill('SIGKILL');
    const exit = await exitOf(child);
    expect(exit.signal, 'the restore was killed while loading').toBe('SIGKILL');
    const left = staging();
    expect(left, 'a killed restore cannot remove its staging file').toBeDefined();
    expect(existsSync(target)).toBe(false);
    return left as string;
  }

  it('the next restore into any file of the folder removes the staging files (and companions) of killed restores, and only those', async () => {
    const dir = mkdtempSync(join(work, 'killed-'));
    const staging = await killedRestore(dir, join(dir, 'app.db'));
    // A journal as SQLite may leave next to it.
    writeFileSync(join(dir, `${staging}-journal`), 'x');
    // Staging files whose owner may be alive: this test process; another machine, container or
    // boot (another host part); an older version's name (no owner in it).
    const live = `.live.db.cairn-restore-${ownerToken()}-0123abcd`;
    const foreign = '.far.db.cairn-restore-0000000000-1-1-0123abcd';
    const legacy = '.old.db.cairn-restore-0123456789ab';
    for (const n of [live, `${live}-wal`, foreign, legacy]) writeFileSync(join(dir, n), 'x');

    const other = join(dir, 'other.db');
    const r = cairn(['restore', 'chinook', '--repo', repo, '--to', `sqlite://${other}`]);
    expect(r.code, r.stderr).toBe(0);
    expect(dumpSqlite(other)).toEqual(dumpSqlite(chinook));
    expect(readdirSync(dir).sort()).toEqual([foreign, live, `${live}-wal`, legacy, 'other.db'].sort());

    // The killed restore again: now the restore completes into its target.
    const again = cairn(['restore', 'big', '--repo', repo, '--to', `sqlite://${join(dir, 'app.db')}`]);
    expect(again.code, again.stderr).toBe(0);
    expect(dumpSqlite(join(dir, 'app.db'))).toEqual(dumpSqlite(big));
  });

  it('the next backup of a file in the folder removes them too', async () => {
    const dir = mkdtempSync(join(work, 'killed-backup-'));
    const app = join(dir, 'app.db');
    copyFileSync(chinook, app);
    const staging = await killedRestore(dir, join(dir, 'new.db'));
    const r = cairn(['backup', 'create', '--source', `sqlite://${app}`, '--repo', repo]);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(dir, staging))).toBe(false);
    expect(readdirSync(dir)).toEqual(['app.db']);
  });

  it('a backup of a file while a restore loads into it succeeds and holds only its real tables', async () => {
    const dir = mkdtempSync(join(work, 'busy-target-'));
    const target = join(dir, 'target.db');
    copyFileSync(chinook, target);
    const tablesBefore = cairnJson<BackupManifest>(['backup', 'create', '--source', `sqlite://${target}`, '--repo', repo]).collections.filter((c) => c.selectable !== false).map((c) => c.name);
    const child = cairnAsync(['restore', 'big', '--repo', repo, '--to', `sqlite://${target}`]);
    expect(await until(() => readdirSync(dir).some((n) => n.includes('.cairn-restore-')) || child.exitCode !== null)).toBe(true);
    expect(child.exitCode, 'the restore was still loading').toBeNull();
    const m = cairnJson<BackupManifest>(['backup', 'create', '--source', `sqlite://${target}`, '--repo', repo]);
    // One consistent state or the other: before the restore's switch (the tables it had), or
    // after it (those plus the restored ones), never the staging file's tables or a mix. Which
    // one depends on how fast the restore loads on a loaded machine.
    // Tables and views (the file's properties, sqlite_database, are the target's own).
    const restored = cairnJson<BackupManifest>(['backup', 'show', 'big', '--repo', repo]).collections.filter((c) => c.selectable !== false).map((c) => c.name);
    const names = m.collections.filter((c) => c.selectable !== false).map((c) => c.name);
    expect([[...tablesBefore].sort(), [...tablesBefore, ...restored].sort()].map((x) => JSON.stringify(x))).toContain(JSON.stringify([...names].sort()));
    expect(m.collections.some((c) => c.name.includes('cairn'))).toBe(false);
    const exit = await exitOf(child);
    expect(exit.code).toBe(0);
    // A staging file is never a source: refused, not read.
    writeFileSync(join(dir, '.target.db.cairn-restore-0000000000-1-1-0123abcd'), readFileSync(chinook));
    const refused = cairn(['backup', 'create', '--source', `sqlite://${join(dir, '.target.db.cairn-restore-0000000000-1-1-0123abcd')}`, '--repo', repo]);
    expect(refused.code).toBe(EXIT.SOURCE);
    expect(refused.stderr).toMatch(/staging file of a cairn restore/);
  });

  it('a backup without tables restores to an empty database file', () => {
    const dir = mkdtempSync(join(work, 'empty-'));
    const empty = join(dir, 'empty.db');
    const db = new Database(empty);
    db.pragma('user_version = 7');
    db.close();
    const m = cairnJson<BackupManifest>(['backup', 'create', '--source', `sqlite://${empty}`, '--repo', repo]);
    // No table: only the database's properties (its user_version, carried since issue 14).
    expect(m.collections.map((c) => c.name)).toEqual(['sqlite_database']);
    const copy = join(dir, 'copy.db');
    expect(cairn(['restore', m.id, '--repo', repo, '--to', `sqlite://${copy}`]).code).toBe(0);
    expect(statSync(copy).size).toBeGreaterThan(0);
    const out = new Database(copy, { readonly: true });
    expect(out.prepare('SELECT count(*) FROM sqlite_schema').pluck().get()).toBe(0);
    expect(out.pragma('user_version', { simple: true })).toBe(7);
    out.close();
    expect(readdirSync(dir).sort()).toEqual(['copy.db', 'empty.db']);
  });
});

describe('Ctrl-C is handled at once while rows are read', () => {
  it('SIGINT during a long backup (4 million rows) exits 130 within 3 s, leaving no backup', async () => {
    // Before cairn yielded to the event loop while reading rows, a backup of this file kept the
    // main thread for its whole read (10-13 s measured on a loaded 2-core machine): the signal
    // waited for it.
    const dir = mkdtempSync(join(work, 'ticks-'));
    const file = join(dir, 'ticks.db');
    const db = new Database(file);
    db.exec(`CREATE TABLE ticks (id INTEGER PRIMARY KEY, v INTEGER NOT NULL);
      WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 4000000)
      INSERT INTO ticks SELECT i, (i * 2654435761) % 1000003 FROM g;`);
    db.close();
    const repo = newRepo('ticks-repo');
    const child = cairnAsync(['backup', 'create', '--source', `sqlite://${file}`, '--repo', repo]);
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    // Reading starts as soon as the process has the database open (the snapshot is opened,
    // then its rows are read at once).
    expect(await until(() => hasOpen(child.pid as number, file) || child.exitCode !== null)).toBe(true);
    expect(child.exitCode, stderr).toBeNull();
    const sent = Date.now();
    child.kill('SIGINT');
    const exit = await exitOf(child);
    const took = Date.now() - sent;
    console.log(`SIGINT during a SQLite backup: exit ${exit.code} after ${took} ms`);
    expect(exit.code, stderr).toBe(EXIT.CANCELLED);
    expect(took).toBeLessThan(3000);
    expect(cairnJson<{ backups: BackupManifest[] }>(['backup', 'list', '--repo', repo]).backups).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);
});

describe('Ctrl-C at several moments of a SQLite backup', () => {
  // The repository lock taken (before the snapshot), the database open (rows being read), the
  // first pack written: always exit 130, one error line, no backup, no lock left.
  for (const moment of ['lock', 'open', 'pack'] as const) {
    it(`exits 130 and leaves no backup (${moment})`, async () => {
      const repo = newRepo(`sigint-${moment}-repo`, ['--pack-size', '1']);
      const child = cairnAsync(['backup', 'create', '--source', `sqlite://${big}`, '--repo', repo, '--level', 'best']);
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      const files = (sub: string): boolean =>
        existsSync(join(repo, sub)) && readdirSync(join(repo, sub), { recursive: true, withFileTypes: true }).some((e) => e.isFile() && !e.name.startsWith('.'));
      const reached = { lock: () => files('locks'), open: () => hasOpen(child.pid as number, big), pack: () => files('data') }[moment];
      expect(await until(() => reached() || child.exitCode !== null)).toBe(true);
      expect(child.exitCode, `the backup ended before the moment was seen: ${stderr}`).toBeNull();
      child.kill('SIGINT');
      const exit = await exitOf(child);
      expect(exit.code, stderr).toBe(EXIT.CANCELLED);
      expect(stderr).not.toMatch(/internal error|AbortError|This operation was aborted/);
      expect(stderr.trim().split('\n').filter((l) => l.startsWith('cairn: error:'))).toHaveLength(1);
      expect(cairnJson<{ backups: BackupManifest[] }>(['backup', 'list', '--repo', repo]).backups).toEqual([]);
      expect(readdirSync(join(repo, 'locks'))).toEqual([]);
    });
  }
});

describe('bad input gets one clear line and a distinct exit code', () => {
  let repo: string;
  beforeAll(() => {
    repo = newRepo('errors-repo');
    expect(cairn(['backup', 'create', '--source', `sqlite://${chinook}`, '--repo', repo, '--id', 'ok']).code).toBe(0);
  });

  const cases: [string, () => string[], number, RegExp][] = [
    ['unknown source scheme', () => ['backup', 'create', '--source', 'oracle://db', '--repo', repo], EXIT.USAGE, /Unsupported database URL scheme "oracle:"/],
    ['missing source file', () => ['backup', 'create', '--source', `sqlite://${join(work, 'nope.db')}`, '--repo', repo], EXIT.NOT_FOUND, /not found.*nope\.db/],
    ['bad backup id', () => ['backup', 'create', '--source', `sqlite://${chinook}`, '--repo', repo, '--id', 'Bad Id!'], EXIT.USAGE, /Invalid backup id "Bad Id!"/],
    ['duplicate id', () => ['backup', 'create', '--source', `sqlite://${chinook}`, '--repo', repo, '--id', 'ok'], EXIT.CONFLICT, /already exists/],
    ['include with exclude', () => ['backup', 'create', '--source', `sqlite://${chinook}`, '--repo', repo, '--include', 'Album', '--exclude', 'Track'], EXIT.USAGE, /--include and --exclude cannot be used together/],
    ['unknown table', () => ['backup', 'create', '--source', `sqlite://${chinook}`, '--repo', repo, '--include', 'Albums'], EXIT.USAGE, /Unknown collection: Albums\. Did you mean Album\?.*Available: .*Album/],
    ['repository not initialised', () => ['backup', 'list', '--repo', join(work, 'no-repo')], EXIT.NOT_FOUND, /No cairn repository at .*cairn repo init/],
    ['unknown backup', () => ['restore', 'missing', '--repo', repo, '--to', `sqlite://${join(work, 'x.db')}`], EXIT.NOT_FOUND, /Backup "missing" not found/],
    ['unknown restore table', () => ['restore', 'ok', '--repo', repo, '--to', `sqlite://${join(work, 'x.db')}`, '--exclude', 'Nope'], EXIT.USAGE, /Unknown collection in backup "ok": Nope/],
    ['bad rename', () => ['restore', 'ok', '--repo', repo, '--to', `sqlite://${join(work, 'x.db')}`, '--rename', 'Album'], EXIT.USAGE, /--rename "Album": write it as old=new/],
    ['bad compression', () => ['backup', 'create', '--source', `sqlite://${chinook}`, '--repo', repo, '--compression', 'lz4'], EXIT.USAGE, /Unknown compression "lz4"/],
    ['unknown option', () => ['backup', 'list', '--repo', repo, '--bogus'], EXIT.USAGE, /unknown option '--bogus'/],
    ['missing --repo', () => ['backup', 'list'], EXIT.USAGE, /--repo/],
    ['0-byte source file', () => ['backup', 'create', '--source', `sqlite://${emptyFile()}`, '--repo', repo], EXIT.SOURCE, /is empty \(0 bytes\), not a SQLite database; check the path/],
    ['source that is not SQLite', () => ['backup', 'create', '--source', `sqlite://${textFile()}`, '--repo', repo], EXIT.SOURCE, /not a SQLite database/],
    ['source that is a directory', () => ['backup', 'create', '--source', `sqlite://${work}`, '--repo', repo], EXIT.SOURCE, /is a directory, not a SQLite database; check the path/],
  ];
  function emptyFile(): string {
    const f = join(work, 'zero.db');
    writeFileSync(f, '');
    return f;
  }
  function textFile(): string {
    const f = join(work, 'notes.db');
    writeFileSync(f, 'these are my notes, not a database\n'.repeat(200));
    return f;
  }

  it.each(cases)('%s', (_name, args, code, message) => {
    const r = cairn(args(), { env: { CAIRN_REPO: '' } });
    expect(r.code).toBe(code);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace without --debug
    expect(r.stdout).toBe('');
  });

  it('prints a stack trace only with --debug', () => {
    const r = cairn(['backup', 'list', '--repo', join(work, 'no-repo'), '--debug']);
    expect(r.code).toBe(EXIT.NOT_FOUND);
    expect(r.stderr).toMatch(/\n\s+at /);
  });
});
