/**
 * End-to-end: `cairn export` / `cairn import` and `.cairn` archives as read-only repositories
 * (restore, verify, backup list straight from the file), through the built CLI, with real SQLite
 * and PostgreSQL sources and s3rver as an import target; hostile archives refused with nothing
 * added. The hostile archives are built here with a tar writer of the test's own, so that they
 * do not depend on the writer under test.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, closeSync, copyFileSync, existsSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import Database from '../../src/sources/sqlite/driver.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gunzipSync } from 'node:zlib';
import { decompress as zstdDecompress } from 'zstd-napi';
import { CHINOOK, CLI, PROJECT_ROOT, cairn, cairnJson, type CliResult } from '../helpers/cli.js';
import { S3RVER_CREDENTIALS, startS3rver, type LocalServer } from '../helpers/object-servers.js';
import { dropDatabase, ensurePostgres, ident, loadChinook, pgUrl, psql, schemaDump, tableChecksums } from '../helpers/postgres.js';
import { dumpSqlite } from '../helpers/sqlite-compare.js';

const EXIT = { USAGE: 2, NOT_FOUND: 3, CONFLICT: 4, CORRUPT: 6, STORAGE: 8 };
const BUCKET = 'cairn-archive';

let work: string;
let chinook: string;
let s3: LocalServer;
let env: NodeJS.ProcessEnv;
const databases: string[] = [];

const run = (args: string[], cwd?: string): CliResult => cairn(args, { env, ...(cwd ? { cwd } : {}) });
const json = <T>(args: string[]): T => cairnJson<T>(args, { env });
function ok(r: CliResult): CliResult {
  expect(r.code, `exit ${r.code}: ${r.stderr}`).toBe(0);
  return r;
}
const s3Url = (prefix: string): string => `s3://${BUCKET}/${prefix}?endpoint=${encodeURIComponent(s3.url)}&region=us-east-1&forcePathStyle=true`;

/** Every file under a folder (relative path → size), locks left out: what "nothing added" compares. */
function tree(dir: string): Record<string, number> {
  const out: Record<string, number> = {};
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (!relative(dir, p).startsWith('locks')) out[relative(dir, p)] = statSync(p).size;
    }
  };
  walk(dir);
  return out;
}

/** Sum of the pack files' sizes of a folder repository. */
function packBytes(repo: string): number {
  return Object.entries(tree(repo))
    .filter(([k]) => k.startsWith('data/'))
    .reduce((n, [, s]) => n + s, 0);
}

// ---- A tar reader and writer of the test's own (ustar, regular files) ----

interface TarMember {
  name: string;
  data: Buffer;
  /** Offset of the member's header in the archive. */
  at: number;
}

function readTar(bytes: Buffer): TarMember[] {
  const members: TarMember[] = [];
  for (let p = 0; p + 512 <= bytes.length; ) {
    const h = bytes.subarray(p, p + 512);
    if (h.every((b) => b === 0)) break;
    const name = h.toString('utf8', 0, 100).replace(/\0.*$/s, '');
    const size = parseInt(h.toString('ascii', 124, 136).replace(/\0.*$/s, '').trim(), 8);
    members.push({ name, data: bytes.subarray(p + 512, p + 512 + size), at: p });
    p += 512 + Math.ceil(size / 512) * 512;
  }
  return members;
}

function tarHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write('0000644\0', 100, 'ascii');
  h.write('0000000\0', 108, 'ascii');
  h.write('0000000\0', 116, 'ascii');
  h.write(size.toString(8).padStart(11, '0') + '\0', 124, 'ascii');
  h.write('00000000000\0', 136, 'ascii');
  h.write('0', 156, 'ascii');
  h.write('ustar\0' + '00', 257, 'ascii');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  return h;
}

const pad = (n: number): Buffer => Buffer.alloc((512 - (n % 512)) % 512);

/**
 * An archive from members, with a correct end member (members, bytes, sha256): what a hostile
 * writer would produce to get past the checksum. `sizeOf` lets a header claim another size.
 */
function writeTar(members: { name: string; data: Buffer; claimedSize?: number }[]): Buffer {
  const parts: Buffer[] = [];
  for (const m of members) parts.push(tarHeader(m.name, m.claimedSize ?? m.data.length), m.data, pad(m.data.length));
  const body = Buffer.concat(parts);
  const end = Buffer.from(JSON.stringify({ members: members.length, bytes: body.length, sha256: createHash('sha256').update(body).digest('hex') }));
  return Buffer.concat([body, tarHeader('cairn-archive-end.json', end.length), end, pad(end.length), Buffer.alloc(1024)]);
}

/** The members of a real archive, the end member left out (writeTar adds a fresh one). */
function membersOf(file: string): { name: string; data: Buffer }[] {
  return readTar(readFileSync(file))
    .filter((m) => m.name !== 'cairn-archive-end.json')
    .map((m) => ({ name: m.name, data: Buffer.from(m.data) }));
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'cairn-archive-'));
  chinook = join(work, 'chinook.db');
  copyFileSync(CHINOOK, chinook);
  s3 = await startS3rver([BUCKET]);
  env = {
    CAIRN_CONFIG: join(work, 'config', 'cairn.json'),
    CAIRN_DATA_DIR: join(work, 'data'),
    AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    AWS_REGION: 'us-east-1',
    CAIRN_REPO: undefined,
  };
  ok(run(['repo', 'init', join(work, 'src')]));
  ok(run(['backup', 'create', '--source', `sqlite://${chinook}`, '--repo', join(work, 'src'), '--id', 'sq-1']));
  // Two more backups that share most chunks with the first.
  const db = new Database(chinook);
  db.exec("INSERT INTO Genre (Name) VALUES ('Archive 1')");
  db.close();
  ok(run(['backup', 'create', '--source', `sqlite://${chinook}`, '--repo', join(work, 'src'), '--id', 'sq-2']));
  const db2 = new Database(chinook);
  db2.exec("UPDATE Track SET Name = Name || ' (live)' WHERE TrackId % 50 = 0");
  db2.close();
  ok(run(['backup', 'create', '--source', `sqlite://${chinook}`, '--repo', join(work, 'src'), '--id', 'sq-3']));
  // Another repository whose sq-1 is another backup (sq-3's data), and an sq-9 the source lacks.
  ok(run(['repo', 'init', join(work, 'other')]));
  ok(run(['backup', 'create', '--source', `sqlite://${chinook}`, '--repo', join(work, 'other'), '--id', 'sq-1']));
  ok(run(['export', 'sq-1', '--repo', join(work, 'other'), '-o', join(work, 'other-sq-1.cairn')]));
}, 120_000);

afterAll(async () => {
  await s3?.stop();
  for (const db of databases) dropDatabase(db);
  rmSync(work, { recursive: true, force: true });
});

describe('export and import (SQLite)', () => {
  it('round trip: export → import into another repository → restore identical; also restore, verify and list straight from the archive', () => {
    const file = join(work, 'sq-1.cairn');
    const out = ok(run(['export', 'sq-1', '--repo', join(work, 'src')], work));
    expect(out.stdout).toMatch(/Exported 1 backup from .* to .*sq-1\.cairn .*chunks? in 1 pack/);
    expect(existsSync(file)).toBe(true);
    // Standard tools read it: the members are the repository objects, in order.
    const names = spawnSync('tar', ['tf', file], { encoding: 'utf8' }).stdout.trim().split('\n');
    expect(names[0]).toBe('cairn-archive.json');
    expect(names[1]).toBe('config');
    expect(names.at(-2)).toBe('backups/sq-1');
    expect(names.at(-1)).toBe('cairn-archive-end.json');
    expect(names.filter((n) => n.startsWith('data/')).length).toBeGreaterThan(0);

    ok(run(['repo', 'init', join(work, 'dst')]));
    const imported = json<{ imported: { backupId: string; importedAs: string; chunksCopied: number }[] }>(['import', file, '--repo', join(work, 'dst')]);
    expect(imported.imported).toMatchObject([{ backupId: 'sq-1', importedAs: 'sq-1' }]);
    expect(imported.imported[0]?.chunksCopied).toBeGreaterThan(0);
    const fromRepo = join(work, 'from-repo.db');
    ok(run(['restore', 'sq-1', '--repo', join(work, 'dst'), '--to', `sqlite://${fromRepo}`]));
    const original = join(work, 'original.db');
    ok(run(['restore', 'sq-1', '--repo', join(work, 'src'), '--to', `sqlite://${original}`]));
    expect(dumpSqlite(fromRepo)).toEqual(dumpSqlite(original));

    // The archive is a read-only repository.
    const fromArchive = join(work, 'from-archive.db');
    ok(run(['restore', 'sq-1', '--repo', file, '--to', `sqlite://${fromArchive}`]));
    expect(dumpSqlite(fromArchive)).toEqual(dumpSqlite(original));
    expect(ok(run(['verify', file, '--read-data'])).stdout).toMatch(/Verified 1 backup\(s\): \d+ chunks in 1 packs, .* read and checked/);
    expect(ok(run(['verify', '--repo', file])).stdout).toMatch(/Verified 1 backup/);
    const list = json<{ backups: { id: string }[] }>(['backup', 'list', '--repo', file]);
    expect(list.backups.map((b) => b.id)).toEqual(['sq-1']);
    ok(run(['backup', 'show', 'sq-1', '--repo', file]));
    const write = run(['backup', 'create', '--source', `sqlite://${chinook}`, '--repo', file]);
    expect(write.code).toBe(EXIT.STORAGE);
    expect(write.stderr).toMatch(/read-only archive.*cairn import/);
  }, 120_000);

  it('several backups: shared chunks stored once (archive vs repository size); --all names the file after the repository', () => {
    const many = join(work, 'many.cairn');
    const all = json<{ backups: string[]; bytes: number; chunks: number }>(['export', 'sq-1', 'sq-2', 'sq-3', '--repo', join(work, 'src'), '-o', many]);
    expect(all.backups).toEqual(['sq-1', 'sq-2', 'sq-3']);
    const singles = ['sq-1', 'sq-2', 'sq-3'].map((id) => json<{ bytes: number }>(['export', id, '--repo', join(work, 'src'), '-o', join(work, `single-${id}.cairn`)]).bytes);
    const repoPacks = packBytes(join(work, 'src'));
    const sum = singles.reduce((a, b) => a + b, 0);
    // Shared chunks once: far less than three single archives, about the repository's pack bytes.
    expect(all.bytes).toBe(statSync(many).size);
    expect(all.bytes).toBeLessThan(sum * 0.7);
    expect(all.bytes).toBeLessThan(repoPacks * 1.1 + 64 * 1024);
    console.log(`archive sizes: 3 backups in one archive ${all.bytes} B; three single archives ${sum} B; repository packs ${repoPacks} B`);
    ok(run(['repo', 'init', join(work, 'many-dst')]));
    const imported = json<{ imported: { backupId: string }[] }>(['import', many, '--repo', join(work, 'many-dst')]);
    expect(imported.imported.map((b) => b.backupId)).toEqual(['sq-1', 'sq-2', 'sq-3']);
    expect(ok(run(['verify', '--repo', join(work, 'many-dst'), '--read-data'])).stdout).toMatch(/Verified 3 backup/);

    const dir = mkdtempSync(join(work, 'named-'));
    ok(run(['export', '--all', '--repo', join(work, 'src')], dir));
    const [name] = readdirSync(dir);
    expect(name).toMatch(/^[0-9a-f]{32}-\d{8}T\d{6}Z\.cairn$/);
  }, 180_000);

  it('-o - writes the archive to stdout; an existing file is refused without --force and replaced with it', () => {
    const piped = join(work, 'piped.cairn');
    const fd = openSync(piped, 'w');
    const r = spawnSync(process.execPath, [CLI, 'export', 'sq-2', '--repo', join(work, 'src'), '-o', '-'], { cwd: PROJECT_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', fd, 'pipe'], encoding: 'utf8' });
    closeSync(fd);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/Exported 1 backup .* to stdout/);
    expect(ok(run(['verify', piped, '--read-data'])).stdout).toMatch(/Verified 1 backup/);

    const target = join(work, 'exists.cairn');
    writeFileSync(target, 'precious');
    const refused = run(['export', 'sq-2', '--repo', join(work, 'src'), '-o', target]);
    expect(refused.code).toBe(EXIT.CONFLICT);
    expect(refused.stderr).toMatch(/exists: add --force/);
    expect(readFileSync(target, 'utf8')).toBe('precious');
    expect(readdirSync(work).filter((n) => n.includes('.cairn-'))).toEqual([]);
    ok(run(['export', 'sq-2', '--repo', join(work, 'src'), '-o', target, '--force']));
    expect(ok(run(['verify', target])).stdout).toMatch(/Verified 1 backup/);
    const json2 = run(['export', 'sq-2', '--repo', join(work, 'src'), '-o', '-', '--json']);
    expect(json2.code).toBe(EXIT.USAGE);
  }, 120_000);

  it('import sends only the chunks the target lacks; --as imports under another id; an existing id is refused naming --as', () => {
    ok(run(['repo', 'init', join(work, 'inc')]));
    ok(run(['export', 'sq-1', '--repo', join(work, 'src'), '-o', join(work, 'inc-1.cairn')]));
    ok(run(['export', 'sq-2', '--repo', join(work, 'src'), '-o', join(work, 'inc-2.cairn')]));
    const first = json<{ imported: { chunksCopied: number; chunksSkipped: number }[] }>(['import', join(work, 'inc-1.cairn'), '--repo', join(work, 'inc')]);
    const second = json<{ imported: { chunksCopied: number; chunksSkipped: number }[] }>(['import', join(work, 'inc-2.cairn'), '--repo', join(work, 'inc')]);
    const a = first.imported[0] as { chunksCopied: number; chunksSkipped: number };
    const b = second.imported[0] as { chunksCopied: number; chunksSkipped: number };
    expect(a.chunksSkipped).toBe(0);
    // sq-2 differs from sq-1 by one row: nearly every chunk is there already.
    expect(b.chunksSkipped).toBeGreaterThan(0);
    expect(b.chunksCopied).toBeLessThan(b.chunksSkipped);

    // The same backup again: skipped (as cairn sync), nothing sent.
    const before = tree(join(work, 'inc'));
    const same = json<{ imported: unknown[]; skipped: string[] }>(['import', join(work, 'inc-1.cairn'), '--repo', join(work, 'inc')]);
    expect(same).toMatchObject({ imported: [], skipped: ['sq-1'] });
    expect(tree(join(work, 'inc'))).toEqual(before);
    // Another backup under the same id: a conflict naming --as, nothing added.
    const dup = run(['import', join(work, 'other-sq-1.cairn'), '--repo', join(work, 'inc')]);
    expect(dup.code).toBe(EXIT.CONFLICT);
    expect(dup.stderr).toMatch(/"sq-1" but other content already exists .*Nothing was imported.*--as/);
    expect(tree(join(work, 'inc'))).toEqual(before);

    const renamed = json<{ imported: { importedAs: string; chunksCopied: number }[] }>(['import', join(work, 'inc-1.cairn'), '--repo', join(work, 'inc'), '--as', 'sq-1-again']);
    expect(renamed.imported).toMatchObject([{ importedAs: 'sq-1-again', chunksCopied: 0 }]);
    const again = join(work, 'again.db');
    ok(run(['restore', 'sq-1-again', '--repo', join(work, 'inc'), '--to', `sqlite://${again}`]));
    const original = join(work, 'original-2.db');
    ok(run(['restore', 'sq-1', '--repo', join(work, 'src'), '--to', `sqlite://${original}`]));
    expect(dumpSqlite(again)).toEqual(dumpSqlite(original));

    ok(run(['export', 'sq-1', 'sq-2', '--repo', join(work, 'src'), '-o', join(work, 'two.cairn')]));
    const asMany = run(['import', join(work, 'two.cairn'), '--repo', join(work, 'inc'), '--as', 'x']);
    expect(asMany.code).toBe(EXIT.USAGE);
    expect(asMany.stderr).toMatch(/--as renames the one backup of an archive; .* holds 2/);
  }, 180_000);

  it('the archive can come from stdin (cairn import -)', () => {
    ok(run(['repo', 'init', join(work, 'stdin-dst')]));
    const input = openSync(join(work, 'sq-1.cairn'), 'r');
    const r = spawnSync(process.execPath, [CLI, 'import', '-', '--repo', join(work, 'stdin-dst')], { env: { ...process.env, ...env }, stdio: [input, 'pipe', 'pipe'], encoding: 'utf8' });
    closeSync(input);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Imported 1 backup from stdin/);
  }, 60_000);
});

describe('hostile and damaged archives: refused with a clear error, nothing added', () => {
  let good: string;
  let target: string;
  let members: { name: string; data: Buffer }[];
  beforeAll(() => {
    good = join(work, 'good.cairn');
    ok(run(['export', 'sq-1', '--repo', join(work, 'src'), '-o', good]));
    target = join(work, 'hostile-dst');
    ok(run(['repo', 'init', target]));
    members = membersOf(good);
  }, 60_000);

  /** Imports `bytes` as an archive; expects the exit code and message, and the target untouched. */
  function refused(bytes: Buffer, code: number, message: RegExp): void {
    const file = join(work, `hostile-${randomBytes(4).toString('hex')}.cairn`);
    writeFileSync(file, bytes);
    const before = tree(target);
    const r = run(['import', file, '--repo', target]);
    expect(r.stderr).toMatch(message);
    expect(r.code, r.stderr).toBe(code);
    expect(tree(target)).toEqual(before);
  }

  it('a rebuilt archive of the same members imports (the test writer is sound)', () => {
    const file = join(work, 'rebuilt.cairn');
    writeFileSync(file, writeTar(members));
    ok(run(['repo', 'init', join(work, 'rebuilt-dst')]));
    ok(run(['import', file, '--repo', join(work, 'rebuilt-dst')]));
  }, 60_000);

  it('truncated at several offsets', () => {
    const bytes = readFileSync(good);
    const tar = readTar(bytes);
    const end = tar.at(-1) as TarMember;
    const pack = tar.find((m) => m.name.startsWith('data/')) as TarMember;
    for (const at of [0, 10, 511, 700, pack.at + 512 + 1000, end.at - 1, end.at + 100, end.at + 512 + end.data.length, end.at + 1024 + 100]) {
      refused(bytes.subarray(0, at), EXIT.CORRUPT, /archive .* (is damaged or not a cairn archive|empty or too short)/);
    }
    // Truncating a copy on disk says "truncated".
    const cut = join(work, 'cut.cairn');
    copyFileSync(good, cut);
    truncateSync(cut, pack.at + 512 + 1000);
    const r = run(['verify', cut]);
    expect(r.code).toBe(EXIT.CORRUPT);
    expect(r.stderr).toMatch(/past the end of the file .*truncated/);
  }, 180_000);

  it('a flipped byte in a pack, a manifest or a tar header', () => {
    const bytes = readFileSync(good);
    const tar = readTar(bytes);
    const flip = (at: number): Buffer => {
      const copy = Buffer.from(bytes);
      copy[at] = (copy[at] as number) ^ 0x01;
      return copy;
    };
    const pack = tar.find((m) => m.name.startsWith('data/')) as TarMember;
    const manifest = tar.find((m) => m.name.startsWith('backups/')) as TarMember;
    refused(flip(pack.at + 512 + 77), EXIT.CORRUPT, /does not match the checksum in cairn-archive-end\.json/);
    refused(flip(manifest.at + 512 + 20), EXIT.CORRUPT, /does not match the checksum in cairn-archive-end\.json/);
    refused(flip(manifest.at + 3), EXIT.CORRUPT, /tar header at byte \d+ is invalid: its checksum does not match/);
    // verify says the same of a damaged pack.
    const file = join(work, 'flipped.cairn');
    writeFileSync(file, flip(pack.at + 512 + 77));
    const v = run(['verify', file]);
    expect(v.code).toBe(EXIT.CORRUPT);
    expect(v.stderr).toMatch(/does not match the checksum/);
  }, 120_000);

  it('members outside the layout: ../x, /etc/x, an unknown folder; a duplicate; a size past the end or absurd', () => {
    const config = members.find((m) => m.name === 'config') as { name: string; data: Buffer };
    const insert = (extra: { name: string; data: Buffer; claimedSize?: number }): Buffer => writeTar([...members.slice(0, 2), extra, ...members.slice(2)]);
    refused(insert({ name: '../x', data: Buffer.from('x') }), EXIT.CORRUPT, /member "\.\.\/x" .* is not a repository object/);
    refused(insert({ name: '/etc/x', data: Buffer.from('x') }), EXIT.CORRUPT, /member "\/etc\/x" .* is not a repository object/);
    refused(insert({ name: 'data/../../x', data: Buffer.from('x') }), EXIT.CORRUPT, /is not a repository object/);
    refused(insert({ name: 'plugins/run.sh', data: Buffer.from('x') }), EXIT.CORRUPT, /member "plugins\/run\.sh" .* is not a repository object/);
    refused(insert({ name: 'config', data: config.data }), EXIT.CORRUPT, /member "config" appears twice/);
    refused(insert({ name: 'index/' + '0'.repeat(64), data: Buffer.from('x'), claimedSize: 50_000_000 }), EXIT.CORRUPT, /claims 50000000 bytes .*past the end of the file/);
    refused(insert({ name: 'index/' + '1'.repeat(64), data: Buffer.from('x'), claimedSize: 2 * 1024 ** 3 }), EXIT.CORRUPT, /claims 2147483648 bytes, more than any member may hold/);
    // Without the head member first, or with another format version.
    refused(writeTar(members.slice(1)), EXIT.CORRUPT, /first member is "config", not cairn-archive\.json/);
    const head = JSON.parse((members[0] as { data: Buffer }).data.toString()) as Record<string, unknown>;
    const v2 = writeTar([{ name: 'cairn-archive.json', data: Buffer.from(JSON.stringify({ ...head, formatVersion: 2 })) }, ...members.slice(1)]);
    refused(v2, EXIT.USAGE, /uses archive format version 2; this cairn reads version 1 only\. Use a newer cairn/);
  }, 180_000);
});

describe('PostgreSQL into s3rver', () => {
  it('exports a PostgreSQL backup, imports it into an S3 repository, restores it identical to the source', () => {
    ensurePostgres();
    const source = `cairn_h18_arch_${randomBytes(4).toString('hex')}`;
    databases.push(source);
    psql('postgres', `CREATE DATABASE ${ident(source)};`);
    loadChinook(source);
    ok(run(['backup', 'create', '--source', pgUrl(source), '--repo', join(work, 'src'), '--id', 'pg-1']));
    const file = join(work, 'pg-1.cairn');
    ok(run(['export', 'pg-1', '--repo', join(work, 'src'), '-o', file, '--compression', 'gzip', '--level', 'fastest']));
    ok(run(['repo', 'init', s3Url('imported')]));
    ok(run(['import', file, '--repo', s3Url('imported')]));
    const target = `${source}_r`;
    databases.push(target);
    ok(run(['restore', 'pg-1', '--repo', s3Url('imported'), '--to', pgUrl(target)]));
    expect(schemaDump(target)).toEqual(schemaDump(source));
    expect(tableChecksums(target)).toEqual(tableChecksums(source));
    // And straight from the archive.
    const direct = `${source}_d`;
    databases.push(direct);
    ok(run(['restore', 'pg-1', '--repo', file, '--to', pgUrl(direct)]));
    expect(tableChecksums(direct)).toEqual(tableChecksums(source));
  }, 240_000);
});

describe('--format sql through the CLI', () => {
  it('writes a script sqlite3 loads into the same database (plain, .gz, .zst, stdout); include/exclude/rename apply; wrong flags refused', () => {
    const original = join(work, 'sql-original.db');
    ok(run(['restore', 'sq-1', '--repo', join(work, 'src'), '--to', `sqlite://${original}`]));
    const load = (script: Buffer, name: string): string => {
      const db = join(work, name);
      const r = spawnSync('sqlite3', [db], { input: script });
      expect(r.status, r.stderr.toString()).toBe(0);
      return db;
    };
    const plain = join(work, 'sq-1.sql');
    ok(run(['export', 'sq-1', '--repo', join(work, 'src'), '--format', 'sql', '-o', plain]));
    // Owner-only, as repository files: the script holds the database in plain text.
    expect(statSync(plain).mode & 0o777).toBe(0o600);
    expect(dumpSqlite(load(readFileSync(plain), 'sql-plain.db'))).toEqual(dumpSqlite(original));
    const gz = join(work, 'sq-1.sql.gz');
    ok(run(['export', 'sq-1', '--repo', join(work, 'src'), '--format', 'sql', '-o', gz]));
    expect(dumpSqlite(load(gunzipSync(readFileSync(gz)), 'sql-gz.db'))).toEqual(dumpSqlite(original));
    const zst = join(work, 'sq-1.sql.zst');
    ok(run(['export', 'sq-1', '--repo', join(work, 'src'), '--format', 'sql', '-o', zst]));
    expect(dumpSqlite(load(zstdDecompress(readFileSync(zst)), 'sql-zst.db'))).toEqual(dumpSqlite(original));
    const out = spawnSync(process.execPath, [CLI, 'export', 'sq-1', '--repo', join(work, 'src'), '--format', 'sql', '-o', '-', '--exclude', 'Track,PlaylistTrack,InvoiceLine', '--rename', 'Genre=Style'], { maxBuffer: 64 * 1024 * 1024 });
    expect(out.status, out.stderr.toString()).toBe(0);
    const part = dumpSqlite(load(out.stdout, 'sql-part.db'));
    expect(Object.keys(part.tables).sort()).toEqual(Object.keys(dumpSqlite(original).tables).filter((t) => !['Track', 'PlaylistTrack', 'InvoiceLine'].includes(t)).map((t) => (t === 'Genre' ? 'Style' : t)).sort());
    expect(part.tables.Style).toEqual(dumpSqlite(original).tables.Genre);
    const two = run(['export', 'sq-1', 'sq-2', '--repo', join(work, 'src'), '--format', 'sql']);
    expect(two.code).toBe(EXIT.USAGE);
    expect(two.stderr).toMatch(/--format sql writes one backup/);
    const include = run(['export', 'sq-1', '--repo', join(work, 'src'), '--include', 'Genre', '-o', join(work, 'never.cairn')]);
    expect(include.code).toBe(EXIT.USAGE);
    expect(include.stderr).toMatch(/--include, --exclude and --rename go with --format sql/);
    expect(existsSync(join(work, 'never.cairn'))).toBe(false);
  }, 120_000);
});

describe('trial fixes: output errors, verify FILE, idempotent import, archive advice, refused nonsense, read-only archives', () => {
  const src = (): string => join(work, 'src');
  /** Temporary files export leaves beside an output (.<name>.cairn-<hex>). */
  const temps = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir).filter((n) => /\.cairn-[0-9a-f]{8}$/.test(n)) : []);
  const locks = (): string[] => (existsSync(join(src(), 'locks')) ? readdirSync(join(src(), 'locks')) : []);

  it('export to a folder that does not exist or cannot be written: one line, exit 8, no temp file, no lock (archive, sql, sql.gz)', () => {
    const readOnlyDir = mkdtempSync(join(work, 'ro-'));
    chmodSync(readOnlyDir, 0o555);
    const cases: [string, string[]][] = [
      [join(work, 'no-such-dir', 'x.cairn'), []],
      ['/proc/x.cairn', []],
      // Under a file (ENOTDIR): what root cannot write either.
      [join(work, 'chinook.db', 'x.cairn'), []],
      [join(work, 'no-such-dir', 'x.sql'), ['--format', 'sql']],
      [join(work, 'no-such-dir', 'x.sql.gz'), ['--format', 'sql']],
    ];
    // root writes anywhere: the read-only folder only counts when the permission holds.
    if (process.getuid?.() !== 0) cases.push([join(readOnlyDir, 'x.cairn'), []]);
    else console.log('skip: the read-only folder case runs as root, which writes anyway');
    for (const [output, extra] of cases) {
      const r = run(['export', 'sq-1', '--repo', src(), '-o', output, ...extra]);
      expect(r.code, `${output}: ${r.stderr}`).toBe(EXIT.STORAGE);
      expect(r.stderr).toMatch(new RegExp(`^cairn: error: Cannot write ${output.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: .*Check the folder exists`));
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).not.toMatch(/Unhandled|\n {4}at /);
      expect(r.stderr).not.toMatch(/\.cairn-[0-9a-f]{8}/);
    }
    expect(temps(work)).toEqual([]);
    expect(temps(readOnlyDir)).toEqual([]);
    expect(locks()).toEqual([]);
    chmodSync(readOnlyDir, 0o755);
  }, 120_000);

  it('verify FILE: a missing archive is "No archive at" (exit 3) as import says; a file that is not an archive is refused as import refuses it', () => {
    for (const name of ['nofile.cairn', 'x.sql', join(work, 'missing', 'y'), './z']) {
      const v = run(['verify', name], work);
      expect(v.code, `${name}: ${v.stderr}`).toBe(EXIT.NOT_FOUND);
      expect(v.stderr).toMatch(/No archive at .*/);
      const i = run(['import', name, '--repo', src()], work);
      expect(i.code).toBe(EXIT.NOT_FOUND);
      expect(i.stderr).toMatch(/No archive at /);
    }
    const notArchive = join(work, 'not-archive.sql');
    writeFileSync(notArchive, 'SELECT 1;\n'.repeat(100));
    const v = run(['verify', notArchive]);
    expect(v.code).toBe(EXIT.CORRUPT);
    expect(v.stderr).toMatch(/not-archive\.sql is damaged or not a cairn archive/);
    // A backup id is still a backup id.
    expect(run(['verify', 'sq-1', '--repo', src()]).code).toBe(0);
  }, 60_000);

  it('import of several backups is idempotent as sync: identical ones skipped, the others imported, a different one under the same id a conflict (exit 4) named at the end', () => {
    const target = join(work, 'idem');
    ok(run(['repo', 'init', target]));
    const many = join(work, 'idem-many.cairn');
    ok(run(['export', 'sq-1', 'sq-2', 'sq-3', '--repo', src(), '-o', many]));
    ok(run(['export', 'sq-2', '--repo', src(), '-o', join(work, 'idem-2.cairn')]));
    ok(run(['import', join(work, 'idem-2.cairn'), '--repo', target]));
    // sq-2 there and identical: skipped; sq-1 and sq-3 imported.
    const first = json<{ imported: { backupId: string }[]; skipped: string[]; conflicts: unknown[] }>(['import', many, '--repo', target]);
    expect(first.imported.map((b) => b.backupId)).toEqual(['sq-1', 'sq-3']);
    expect(first.skipped).toEqual(['sq-2']);
    expect(first.conflicts).toEqual([]);
    // Again: everything skipped, exit 0, nothing added.
    const before = tree(target);
    const again = ok(run(['import', many, '--repo', target]));
    expect(again.stdout).toMatch(/Imported 0 backups .* 3 already there \(identical\), 0 conflicts/);
    expect(tree(target)).toEqual(before);

    // A target whose sq-1 is another backup: sq-2 and sq-3 imported, sq-1 left alone and named.
    const mixed = join(work, 'idem-mixed');
    ok(run(['repo', 'init', mixed]));
    ok(run(['import', join(work, 'other-sq-1.cairn'), '--repo', mixed]));
    const theirs = json<{ backups: { id: string; createdAt: string }[] }>(['backup', 'list', '--repo', mixed]).backups;
    const r = run(['import', many, '--repo', mixed]);
    expect(r.code, r.stderr).toBe(EXIT.CONFLICT);
    expect(r.stdout).toMatch(/conflict {2}sq-1: a backup with this id but other content/);
    expect(r.stderr).toMatch(/Imported 2 of 3 backup\(s\) .*left out 1: sq-1 /);
    const after = json<{ backups: { id: string; createdAt: string }[] }>(['backup', 'list', '--repo', mixed]).backups;
    expect(after.map((b) => b.id).sort()).toEqual(['sq-1', 'sq-2', 'sq-3']);
    expect(after.find((b) => b.id === 'sq-1')).toEqual(theirs.find((b) => b.id === 'sq-1'));
    ok(run(['verify', '--repo', mixed, '--read-data']));
  }, 180_000);

  it('advice that fits archives: no cairn repair for a damaged manifest, verify with --repo FILE after a failed restore, stdin named as stdin', () => {
    const good = join(work, 'advice.cairn');
    ok(run(['export', 'sq-1', 'sq-2', '--repo', src(), '-o', good]));
    const members = membersOf(good);
    // A manifest that names another backup (its content is sq-2's under sq-1's name): "Run cairn repair" in a repository.
    const sq2 = members.find((m) => m.name === 'backups/sq-2') as { data: Buffer };
    const misnamed = join(work, 'advice-misnamed.cairn');
    writeFileSync(misnamed, writeTar(members.map((m) => (m.name === 'backups/sq-1' ? { name: m.name, data: sq2.data } : m))));
    for (const args of [['verify', misnamed], ['restore', 'sq-1', '--repo', misnamed, '--to', `sqlite://${join(work, 'advice-never.db')}`], ['backup', 'list', '--repo', misnamed]]) {
      const r = run(args);
      expect(r.stderr, args.join(' ')).toMatch(/names another backup/);
      expect(r.stderr).not.toMatch(/Run cairn repair|run cairn repair/);
      expect(r.stderr).toMatch(/read-only archive, which cairn repair cannot write: export the backups again/);
    }
    ok(run(['repo', 'init', join(work, 'advice-dst')]));
    const imp = run(['import', misnamed, '--repo', join(work, 'advice-dst')]);
    expect(imp.code).toBe(EXIT.CORRUPT);
    expect(imp.stderr).not.toMatch(/cairn repair/);
    expect(imp.stderr).toMatch(/Export the backups again/);

    // A damaged pack under a correct end checksum: restore names the archive in its verify advice.
    const damaged = join(work, 'advice-pack.cairn');
    writeFileSync(damaged, writeTar(members.map((m) => {
      if (!m.name.startsWith('data/')) return m;
      // Every 512th byte: which pack holds sq-1's chunks depends on the export's read order.
      const data = Buffer.from(m.data);
      for (let i = 200; i < data.length; i += 512) data[i] = (data[i] as number) ^ 0xff;
      return { name: m.name, data };
    })));
    const restore = run(['restore', 'sq-1', '--repo', damaged, '--to', `sqlite://${join(work, 'advice-r.db')}`]);
    expect(restore.code).toBe(EXIT.CORRUPT);
    expect(restore.stderr).toContain(`cairn verify sq-1 --repo ${damaged} --read-data`);

    // import -: errors say stdin, never the spool file (gone by then).
    const input = openSync(misnamed, 'r');
    const r = spawnSync(process.execPath, [CLI, 'import', '-', '--repo', join(work, 'advice-dst')], { env: { ...process.env, ...env }, stdio: [input, 'pipe', 'pipe'], encoding: 'utf8' });
    closeSync(input);
    expect(r.status).toBe(EXIT.CORRUPT);
    expect(r.stderr).toMatch(/The archive stdin holds an unreadable manifest/);
    expect(r.stderr).not.toMatch(/cairn-import-/);
    const cut = readFileSync(good).subarray(0, 3000);
    const t = spawnSync(process.execPath, [CLI, 'import', '-', '--repo', join(work, 'advice-dst')], { env: { ...process.env, ...env }, input: cut, encoding: 'utf8' });
    expect(t.status).toBe(EXIT.CORRUPT);
    expect(t.stderr).toMatch(/The archive stdin is damaged/);
    expect(t.stderr).not.toMatch(/cairn-import-/);
  }, 180_000);

  it('refuses what would be silently wrong: --level without compression, a compression suffix export does not write, a SQL name for an archive and the reverse', () => {
    const cases: [string[], RegExp][] = [
      [['--compression', 'none', '--level', 'best', '-o', join(work, 'n1.cairn')], /--level best has no meaning without compression/],
      [['--format', 'sql', '-o', join(work, 'n2.sql.bz2')], /compresses by the name with \.gz or \.zst only .*nothing writes \.bz2/],
      [['--format', 'sql', '-o', join(work, 'n3.sql.xz')], /nothing writes \.xz/],
      [['--format', 'sql', '-o', join(work, 'n4.zip')], /nothing writes \.zip/],
      [['-o', join(work, 'n5.sql')], /did you mean --format sql\?/],
      [['-o', join(work, 'n6.sql.gz')], /did you mean --format sql\?/],
      [['-o', join(work, 'n7.cairn.zst')], /an archive is not compressed by its name/],
      [['--format', 'sql', '-o', join(work, 'n8.cairn')], /names an archive, but --format sql writes a SQL script/],
    ];
    for (const [extra, message] of cases) {
      const r = run(['export', 'sq-1', '--repo', src(), ...extra]);
      expect(r.code, `${extra.join(' ')}: ${r.stderr}`).toBe(EXIT.USAGE);
      expect(r.stderr).toMatch(message);
    }
    expect(readdirSync(work).filter((n) => /^n\d/.test(n))).toEqual([]);
    // The same --level rule for backups.
    const b = run(['backup', 'create', '--source', `sqlite://${chinook}`, '--repo', src(), '--compression', 'none', '--level', 'fastest']);
    expect(b.code).toBe(EXIT.USAGE);
    expect(b.stderr).toMatch(/--level fastest has no meaning without compression/);
  }, 60_000);

  it('every writing command on an archive is refused before any work, with one message and exit 8', () => {
    const file = join(work, 'ro.cairn');
    ok(run(['export', 'sq-1', '--repo', src(), '-o', file]));
    const bytes = readFileSync(file);
    ok(run(['repo', 'init', join(work, 'ro-src')]));
    // A source that cannot be read: a backup that read it first would fail on it (exit 7), not on the archive.
    const commands: string[][] = [
      ['backup', 'create', '--source', `sqlite://${join(work, 'no-such.db')}`, '--repo', file],
      ['backup', 'delete', 'sq-1', '--repo', file],
      ['backup', 'set-expiry', 'sq-1', 'never', '--repo', file],
      ['backup', 'expire', '--repo', file],
      ['prune', '--repo', file],
      ['prune', '--repo', file, '--dry-run'],
      ['repair', '--repo', file],
      ['copy', 'sq-1', '--from', src(), '--to', file],
      ['sync', '--from', src(), '--to', file],
      ['import', join(work, 'sq-1.cairn'), '--repo', file],
    ];
    for (const args of commands) {
      const r = run(args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(EXIT.STORAGE);
      expect(r.stderr).toMatch(/^cairn: error: Cannot [^:]+: .*ro\.cairn is a read-only archive\. Import it into a repository first \(cairn import ro\.cairn --repo <repo>\)/);
    }
    expect(readFileSync(file).equals(bytes)).toBe(true);
  }, 180_000);
});
