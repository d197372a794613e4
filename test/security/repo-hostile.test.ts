/**
 * Hostile repositories: whoever can write a repository writes what cairn reads back. Every id,
 * name, size and document there is hostile input: copy never writes a manifest under a name the
 * document supplies (issue 12, item 3); odd names under backups/, index/, data/ and locks/ are
 * reported or ignored, never followed; a manifest edited after it was written fails its
 * checksum in every reader and in verify (item 2); hostile configs are refused; repository
 * files are 0600 in 0700 folders (item 7). Counts of hostile inputs: HOSTILE_INPUTS.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, chmodSync, symlinkSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CorruptionError, UsageError } from '../../src/core/errors.js';
import type { BackupManifest } from '../../src/core/schemas.js';
import { runCopy } from '../../src/jobs/copy.js';
import { listLocks } from '../../src/repo/lock.js';
import { encodeManifest, encodeMetadata, manifestChecksum } from '../../src/repo/metadata.js';
import { Repository } from '../../src/repo/repository.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { CHINOOK, CLI, cairn, type CliResult } from '../helpers/cli.js';
import { repositoryConfig } from '../helpers/manifests.js';

const EXIT = { OK: 0, USAGE: 2, CORRUPT: 6 };

/** Hostile inputs of this file, by group (the note sums them). */
export const HOSTILE_INPUTS: Record<string, number> = {};
const count = (group: string, n: number): void => {
  HOSTILE_INPUTS[group] = (HOSTILE_INPUTS[group] ?? 0) + n;
};

let work: string;
let chinook: string;
let env: NodeJS.ProcessEnv;

function run(args: string[]): CliResult {
  return cairn(args, { env });
}

function ok(r: CliResult): CliResult {
  expect(r.code, `exit ${r.code}: ${r.stderr}`).toBe(0);
  return r;
}

/** A fresh repository with one backup of chinook; returns its folder. */
function repoWithBackup(name: string, id = 'base'): string {
  const repo = join(work, name);
  ok(run(['repo', 'init', repo]));
  ok(run(['backup', 'create', '--source', `sqlite://${chinook}`, '--repo', repo, '--id', id]));
  return repo;
}

let shared: string | undefined;
/** One repository with a backup, made once and shared by tests that only read it. */
function repoWithBackupOnce(): string {
  shared ??= repoWithBackup('shared');
  return shared;
}

function manifestOf(repo: string, id: string): Promise<BackupManifest> {
  return Repository.open(new FileSystemStorage(repo)).then((r) => r.readManifest(id));
}

/** list, verify and prune (grace 0) all succeed: the repository is usable. */
function expectUsable(repo: string, ids: string[]): void {
  const list = ok(run(['backup', 'list', '--repo', repo, '--json']));
  expect((JSON.parse(list.stdout) as { backups: { id: string }[] }).backups.map((b) => b.id).sort()).toEqual([...ids].sort());
  ok(run(['verify', '--repo', repo]));
  ok(run(['prune', '--repo', repo, '--grace', '0']));
}

function files(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    out.push(join(e.parentPath, e.name));
  }
  return out;
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'cairn-repo-hostile-'));
  chinook = join(work, 'chinook.db');
  copyFileSync(CHINOOK, chinook);
  env = { CAIRN_CONFIG: join(work, 'config', 'cairn.json'), CAIRN_DATA_DIR: join(work, 'data'), CAIRN_REPO: undefined };
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('copy never writes a manifest under a name the document supplies (item 3)', () => {
  const claims = ['../x', 'sub/dir', '../../../../tmp/evil', 'x'.repeat(50_000), 'Other', '', 'base', 'a\\b', '/abs'];
  count('copy: claimed ids', claims.length);

  it('a source manifest claiming another id (a path, a huge id, another backup) is refused; the target is untouched and stays usable', async () => {
    const source = repoWithBackup('copy-src');
    const target = join(work, 'copy-dst');
    ok(run(['repo', 'init', target]));
    const real = await manifestOf(source, 'base');
    const from = await Repository.open(new FileSystemStorage(source));
    const to = await Repository.open(new FileSystemStorage(target));
    for (const [i, claim] of claims.entries()) {
      // The attacker can write the source and recomputes the checksum.
      writeFileSync(join(source, 'backups', `evil-${i}`), encodeManifest({ ...real, id: claim }));
      const err = await runCopy({ from, to, backupId: `evil-${i}` }).catch((e: unknown) => e);
      expect(err, JSON.stringify(claim.slice(0, 20))).toBeInstanceOf(CorruptionError);
      expect((err as Error).message.length).toBeLessThan(400);
    }
    expect(existsSync(join(target, 'backups')) ? readdirSync(join(target, 'backups'), { recursive: true }) : []).toEqual([]);
    expect(existsSync(join(work, 'x')) || existsSync('/tmp/evil') || existsSync(join(work, 'sub'))).toBe(false);
    expectUsable(target, []);
    // The genuine backup still copies, under its own id.
    ok(run(['copy', 'base', '--from', source, '--to', target]));
    expectUsable(target, ['base']);
  });

  it('writeManifest never writes under a name that is not a backup id, nor a manifest readers would refuse', async () => {
    const repo = join(work, 'write-guard');
    const r = await Repository.init(new FileSystemStorage(repo));
    const m = await manifestOf(repoWithBackupOnce(), 'base');
    for (const id of ['../x', 'sub/dir', 'x'.repeat(5000)]) {
      await expect(r.writeManifest({ ...m, id })).rejects.toBeInstanceOf(CorruptionError);
    }
    const long = { ...m, collections: [{ ...(m.collections[0] as BackupManifest['collections'][number]), name: 'n'.repeat(5000) }] };
    await expect(r.writeManifest(long)).rejects.toThrow(/would not be readable/);
    count('writeManifest: refused', 4);
    expect(existsSync(join(repo, 'backups'))).toBe(false);
    expect(existsSync(join(work, 'x')) || existsSync(join(work, 'sub'))).toBe(false);
  });

  it('hostile ids requested on the command line are refused before anything is read', () => {
    const ids = ['../x', 'sub/dir', 'x'.repeat(50_000), 'A'];
    count('copy: requested ids', ids.length);
    const target = join(work, 'copy-ids-dst');
    ok(run(['repo', 'init', target]));
    const source = repoWithBackup('copy-ids-src');
    for (const id of ids) {
      const r = run(['copy', id, '--from', source, '--to', target]);
      expect(r.code).toBe(EXIT.USAGE);
      // At most a short prefix of the id is echoed.
      expect(r.stderr.length).toBeLessThan(600);
    }
    expectUsable(target, []);
  });
});

describe('odd names read from storage are reported or ignored, never followed', () => {
  it('objects under backups/ whose names are not backup ids: listed as warnings, verify fails naming them, prune refuses, repair quarantines them', async () => {
    const repo = repoWithBackup('foreign-backups');
    const real = readFileSync(join(repo, 'backups', 'base'));
    const names = ['sub/dir', 'UPPER', 'a b', 'x..y', '-dash', 'z'.repeat(200), 'deep/a/b/c/d', 'ünï'];
    count('backups/: foreign names', names.length);
    for (const n of names) {
      mkdirSync(join(repo, 'backups', ...n.split('/').slice(0, -1)), { recursive: true });
      writeFileSync(join(repo, 'backups', ...n.split('/')), real);
    }
    const list = run(['backup', 'list', '--repo', repo]);
    expect(list.code).toBe(EXIT.OK);
    expect(list.stdout).toContain('base');
    expect(list.stderr).toContain('not a backup');
    const verify = run(['verify', '--repo', repo]);
    expect(verify.code).toBe(EXIT.CORRUPT);
    expect(verify.stderr).toContain('sub/dir');
    const before = files(repo).length;
    const prune = run(['prune', '--repo', repo, '--grace', '0']);
    expect(prune.code).toBe(EXIT.CORRUPT);
    expect(files(repo).length).toBe(before);
    ok(run(['repair', '--repo', repo]));
    expect(readdirSync(join(repo, 'quarantine', 'backups')).filter((n) => n.startsWith('foreign-'))).toHaveLength(names.length);
    expectUsable(repo, ['base']);
    // The library sees the same: ids only, foreign names apart.
    const r = await Repository.open(new FileSystemStorage(repo));
    expect(await r.listBackupKeys()).toEqual({ ids: ['base'], foreign: [] });
  });

  it('an object that is a symbolic link to a file outside the repository is read as untrusted data: no error quotes what it holds', () => {
    const repo = repoWithBackup('linked-secrets');
    const secretFile = join(work, 'shadow-like');
    const secret = 'root:S3CRETHASH0123456789:20000:0:99999:7:::';
    writeFileSync(secretFile, `${secret}\n`);
    const links: [string, string[]][] = [
      [join(repo, 'backups', 'leak'), ['backup', 'show', 'leak', '--repo', repo]],
      [join(repo, 'backups', 'leak2'), ['verify', '--repo', repo]],
      [join(repo, 'backups', 'leak3'), ['backup', 'list', '--repo', repo]],
      [join(repo, 'locks', 'deadbeef'), ['backup', 'list', '--repo', repo]],
    ];
    count('symlinked objects to secret files', links.length);
    for (const [link, args] of links) {
      symlinkSync(secretFile, link);
      const r = run(args);
      for (const part of [secret.slice(0, 10), 'S3CRET', secret.slice(-8)]) {
        expect(r.stdout + r.stderr).not.toContain(part);
      }
      expect(r.stdout + r.stderr).not.toContain('root:');
      rmSync(link);
    }
    expect(readFileSync(secretFile, 'utf8')).toBe(`${secret}\n`);
  });

  it('a locks/, index/ or backups/ folder that is a link to a folder of other files: prune, unlock and repair never delete or move those files', () => {
    const victims = join(work, 'victim-folder');
    mkdirSync(victims, { recursive: true });
    const names = ['catalog.db', 'server-id', 'Notes.txt', 'settings.json'];
    count('folders linked to a folder of other files', 3);
    for (const n of names) {
      writeFileSync(join(victims, n), n === 'settings.json' ? '{"keep": true}' : `precious ${n}`);
      utimesSync(join(victims, n), new Date(Date.now() - 86_400_000), new Date(Date.now() - 86_400_000)); // a day old: "stale"
    }
    const before = Object.fromEntries(names.map((n) => [n, readFileSync(join(victims, n), 'utf8')]));
    for (const folder of ['locks', 'index', 'backups']) {
      const repo = repoWithBackup(`linked-${folder}`);
      if (folder !== 'locks') {
        // Keep the repository's own objects readable beside the victims: move them in.
        for (const f of readdirSync(join(repo, folder))) copyFileSync(join(repo, folder, f), join(victims, f));
      }
      rmSync(join(repo, folder), { recursive: true, force: true });
      symlinkSync(victims, join(repo, folder));
      run(['prune', '--repo', repo, '--grace', '0']);
      run(['unlock', '--repo', repo]);
      run(['repair', '--repo', repo]);
      for (const n of names) expect(readFileSync(join(victims, n), 'utf8'), `${folder}: ${n}`).toBe(before[n]);
      rmSync(join(repo, folder));
      for (const f of readdirSync(victims)) if (!names.includes(f)) rmSync(join(victims, f), { recursive: true, force: true });
    }
  });

  it('names no key can address (a backslash) are ignored under backups/, index/ and locks/, and no key with "." or ".." parts reaches the filesystem', async () => {
    const repo = repoWithBackup('foreign-unaddressable');
    mkdirSync(join(repo, 'locks'), { recursive: true });
    for (const p of [['backups', 'a\\b'], ['index', 'c\\d'], ['locks', 'e\\f'], ['data', 'g\\h']]) writeFileSync(join(repo, ...p), 'x');
    count('fs: unaddressable names', 4);
    const r = await Repository.open(new FileSystemStorage(repo));
    const all = await r.readAllManifests();
    expect(all.manifests.map((m) => m.id)).toEqual(['base']);
    expect(all.damaged).toEqual([]);
    // Not a denial of service either: every operation still takes its lock and runs.
    expectUsable(repo, ['base']);
    const storage = new FileSystemStorage(repo);
    const keys = ['../x', 'backups/../../x', 'a/./b', 'a//b', '/etc/passwd', 'a\\..\\b', 'a\u0000b', `${'k/'.repeat(3000)}x`];
    count('fs: hostile keys', keys.length);
    for (const k of keys) {
      await expect(storage.get(k)).rejects.toThrow(/Invalid object key/);
      await expect(storage.put(k, Buffer.from('x'))).rejects.toThrow(/Invalid object key/);
    }
    expect(existsSync(join(work, 'x'))).toBe(false);
  });

  it('index documents with names that are not 64 hex: verify names them, prune refuses, repair replaces them', () => {
    const repo = repoWithBackup('foreign-index');
    const names = ['not-hex', 'sub/' + 'a'.repeat(64), 'A'.repeat(64), 'b'.repeat(63)];
    count('index/: foreign names', names.length);
    for (const n of names) {
      mkdirSync(join(repo, 'index', ...n.split('/').slice(0, -1)), { recursive: true });
      writeFileSync(join(repo, 'index', ...n.split('/')), encodeMetadata({ formatVersion: 1, supersedes: [], packs: [] }));
    }
    const verify = run(['verify', '--repo', repo]);
    expect(verify.code).toBe(EXIT.CORRUPT);
    expect(verify.stderr).toContain('index/not-hex');
    expect(run(['prune', '--repo', repo, '--grace', '0']).code).toBe(EXIT.CORRUPT);
    ok(run(['repair', '--repo', repo]));
    expectUsable(repo, ['base']);
    // Only index documents named by their hash are left (empty folders may stay).
    const left = files(join(repo, 'index')).filter((p) => statSync(p).isFile());
    expect(left.length).toBeGreaterThan(0);
    for (const p of left) expect(p.slice(join(repo, 'index').length + 1)).toMatch(/^[0-9a-f]{64}$/);
  });

  it('objects under data/ that are not packs are left alone by prune and ignored by verify', () => {
    const repo = repoWithBackup('foreign-data');
    const names = ['zz/notapack', `ab/${'c'.repeat(64)}`, 'd'.repeat(64), 'ee/../ee', `ff/${'f'.repeat(64)}.bak`];
    const created = names.filter((n) => !n.includes('..'));
    count('data/: foreign names', names.length);
    for (const n of created) {
      mkdirSync(join(repo, 'data', ...n.split('/').slice(0, -1)), { recursive: true });
      writeFileSync(join(repo, 'data', ...n.split('/')), 'not a pack');
    }
    ok(run(['verify', '--repo', repo, '--read-data']));
    const prune = ok(run(['prune', '--repo', repo, '--grace', '0']));
    expect(prune.stderr).toContain('is not a pack');
    for (const n of created) expect(existsSync(join(repo, 'data', ...n.split('/')))).toBe(true);
  });

  it('hostile lock objects (a zstd bomb, a huge operation, nested names) are reported as unreadable, quickly', async () => {
    const repo = repoWithBackup('hostile-locks');
    mkdirSync(join(repo, 'locks', 'sub'), { recursive: true });
    const rle = (blocks: number): Buffer => {
      const parts = [Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58])];
      for (let i = 0; i < blocks; i++) {
        const h = ((128 * 1024) << 3) | 2 | (i === blocks - 1 ? 1 : 0);
        parts.push(Buffer.from([h & 0xff, (h >> 8) & 0xff, (h >> 16) & 0xff, 0x7b]));
      }
      return Buffer.concat(parts);
    };
    const locks: [string, Buffer][] = [
      ['bomb', rle(4096)], // 2 KB inflating to 512 MiB
      ['sub/nested', encodeMetadata({ exclusive: false, operation: 'x', hostname: 'h', pid: -5, createdAt: 'now', refreshedAt: 'now' })],
      ['huge-op', encodeMetadata({ exclusive: false, operation: 'o'.repeat(100_000), hostname: 'h', pid: 1, createdAt: '2026-11-30T10:00:00.000Z', refreshedAt: '2026-11-30T10:00:00.000Z' })],
      ['proto', Buffer.from('{"__proto__":{"exclusive":true}}')],
    ];
    count('locks/: hostile documents', locks.length);
    for (const [n, b] of locks) writeFileSync(join(repo, 'locks', ...n.split('/')), b);
    const started = Date.now();
    const held = await listLocks(new FileSystemStorage(repo));
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(held).toHaveLength(locks.length);
    for (const h of held) {
      expect(h.doc).toBeUndefined();
      expect((h.problem ?? '').length).toBeLessThan(400);
    }
    // They block like exclusive locks until removed (docs/repository-format.md); unlock removes them.
    expect(run(['verify', '--repo', repo]).code).not.toBe(EXIT.OK);
    ok(run(['unlock', '--repo', repo, '--remove-all']));
    expectUsable(repo, ['base']);
  });
});

describe('manifest checksums (item 2)', () => {
  it('a manifest edited after it was written (SQL appended to a definition) fails in verify, verify --read-data, show and restore', async () => {
    const repo = repoWithBackup('edited');
    const r = await Repository.open(new FileSystemStorage(repo));
    const stored = JSON.parse(JSON.stringify(await r.readManifest('base'))) as BackupManifest;
    const raw = (await import('zstd-napi')).decompress(readFileSync(join(repo, 'backups', 'base')));
    const doc = JSON.parse(raw.toString()) as BackupManifest & { checksum: string };
    expect(doc.checksum).toMatch(/^sha256:[0-9a-f]{64}$/);
    const table = doc.collections.find((c) => c.kind === 'table');
    expect(table).toBeDefined();
    const edits: [string, (d: typeof doc) => void][] = [
      ['SQL appended to a definition', (d) => {
        const t = d.collections.find((c) => c.kind === 'table') as { definition: Record<string, unknown> };
        t.definition.sql = `${String(t.definition.sql)}; ATTACH DATABASE '${join(work, 'evil.db')}' AS x; VACUUM INTO '${join(work, 'evil2.db')}'`;
      }],
      ['a row count changed', (d) => void ((d.collections[0] as { rowCount: number }).rowCount += 1)],
      ['a chunk removed', (d) => void (d.collections.find((c) => c.chunks.length > 0) as { chunks: string[] }).chunks.pop()],
      ['expiry moved', (d) => void (d.expiresAt = '2000-01-01T00:00:00.000Z')],
      ['checksum of other content', (d) => void (d.checksum = `sha256:${'0'.repeat(64)}`)],
    ];
    count('manifest: edits', edits.length);
    for (const [what, edit] of edits) {
      const copy = structuredClone(doc);
      edit(copy);
      writeFileSync(join(repo, 'backups', 'base'), encodeMetadata(copy));
      for (const args of [['verify', '--repo', repo], ['verify', '--repo', repo, '--read-data'], ['verify', 'base', '--repo', repo], ['backup', 'show', 'base', '--repo', repo]]) {
        const v = run(args);
        expect(v.code, `${what}: ${args.join(' ')}`).toBe(EXIT.CORRUPT);
        expect(v.stderr, what).toMatch(/checksum/);
      }
      const target = join(work, `edited-${edits.findIndex((e) => e[0] === what)}.db`);
      expect(run(['restore', 'base', '--repo', repo, '--to', `sqlite://${target}`]).code).toBe(EXIT.CORRUPT);
      expect(existsSync(join(work, 'evil.db')) || existsSync(join(work, 'evil2.db'))).toBe(false);
    }
    // Put back as written: everything reads again.
    writeFileSync(join(repo, 'backups', 'base'), encodeManifest(stored));
    expectUsable(repo, ['base']);
  });

  it('a checksum stripped from a manifest of a format-2 repository is refused; in a format-1 repository it reads, flagged by verify', async () => {
    const repo = repoWithBackup('stripped');
    const r = await Repository.open(new FileSystemStorage(repo));
    const m = await r.readManifest('base');
    expect(r.config.formatVersion).toBe(2);
    writeFileSync(join(repo, 'backups', 'base'), encodeMetadata(m)); // no checksum field
    const v = run(['verify', '--repo', repo]);
    expect(v.code).toBe(EXIT.CORRUPT);
    expect(v.stderr).toContain('carries no checksum');
    // A repository written by the previous version: format 1, manifests without checksums.
    const config = JSON.parse(readFileSync(join(repo, 'config'), 'utf8')) as { formatVersion: number };
    writeFileSync(join(repo, 'config'), JSON.stringify({ ...config, formatVersion: 1, checksum: undefined }, null, 2));
    const v1 = run(['verify', '--repo', repo]);
    expect(v1.code, v1.stderr).toBe(EXIT.OK);
    expect(v1.stderr).toContain('carry no checksum');
    const j = JSON.parse(ok(run(['verify', '--repo', repo, '--json'])).stdout) as { unchecksummed: string[] };
    expect(j.unchecksummed).toEqual(['base']);
    // New backups in a format-1 repository are written with checksums.
    ok(run(['backup', 'create', '--source', `sqlite://${chinook}`, '--repo', repo, '--id', 'second']));
    const j2 = JSON.parse(ok(run(['verify', '--repo', repo, '--json'])).stdout) as { unchecksummed: string[] };
    expect(j2.unchecksummed).toEqual(['base']);
    // Repair rewrites only manifests it changes; restore of the old backup still works.
    ok(run(['restore', 'base', '--repo', repo, '--to', `sqlite://${join(work, 'stripped-restore.db')}`]));
  });
});

describe('hostile configs are refused before anything uses them', () => {
  const good = repositoryConfig;
  const configs: [string, (c: Record<string, unknown>) => unknown, number, RegExp][] = [
    ['chunker maxSize 1 TB', (c) => ({ ...c, chunker: { algorithm: 'fastcdc-2020', minSize: 64, avgSize: 1024, maxSize: 1e12 } }), EXIT.CORRUPT, /chunker\.maxSize/],
    ['chunker sizes 0', (c) => ({ ...c, chunker: { algorithm: 'fastcdc-2020', minSize: 0, avgSize: 0, maxSize: 0 } }), EXIT.CORRUPT, /chunker/],
    ['avgSize not a power of two', (c) => ({ ...c, chunker: { algorithm: 'fastcdc-2020', minSize: 100, avgSize: 1000, maxSize: 5000 } }), EXIT.CORRUPT, /power of two/],
    ['min > max', (c) => ({ ...c, chunker: { algorithm: 'fastcdc-2020', minSize: 4194304, avgSize: 1048576, maxSize: 262144 } }), EXIT.CORRUPT, /minSize < avgSize/],
    ['packSize 1 PB', (c) => ({ ...c, packSize: 1e15 }), EXIT.CORRUPT, /packSize/],
    ['packSize fractional', (c) => ({ ...c, packSize: 1048576.5 }), EXIT.CORRUPT, /packSize/],
    ['formatVersion 3', (c) => ({ ...c, formatVersion: 3 }), EXIT.USAGE, /Upgrade cairn/],
    ['formatVersion 1e400', () => '{"formatVersion":1e400}', EXIT.CORRUPT, /formatVersion/],
    ['__proto__ key', (c) => JSON.stringify(c).replace('{', '{"__proto__":{"packSize":1},'), EXIT.CORRUPT, /__proto__/],
    ['deep nesting', () => `{"chunker":${'['.repeat(50_000)}${']'.repeat(50_000)}}`, EXIT.CORRUPT, /nested/],
    ['not JSON', () => 'x'.repeat(10_000), EXIT.CORRUPT, /cannot be read/],
    ['an id with a path', (c) => ({ ...c, id: '../../etc' }), EXIT.CORRUPT, /id/],
    ['encryption claimed', (c) => ({ ...c, encryption: { algorithm: 'aes-256-gcm' } }), EXIT.CORRUPT, /encryption/],
    ['format 2 without a checksum', (c) => JSON.stringify(c), EXIT.CORRUPT, /carries no checksum/],
    ['a stale checksum', (c) => JSON.stringify({ ...c, checksum: manifestChecksum({ ...c, packSize: 1 }) }), EXIT.CORRUPT, /does not match its checksum/],
  ];
  count('config: hostile documents', configs.length);

  it.each(configs)('%s', (_name, make, code, message) => {
    const repo = join(work, `cfg-${Math.random().toString(36).slice(2)}`);
    mkdirSync(repo);
    const c = make(good());
    // Objects are sealed with a recomputed checksum: the attacker can write the repository, so
    // what must hold is the check of each field.
    writeFileSync(join(repo, 'config'), typeof c === 'string' ? c : JSON.stringify({ ...(c as object), checksum: manifestChecksum(c as Record<string, unknown>) }));
    const r = run(['backup', 'list', '--repo', repo]);
    expect(r.code, r.stderr).toBe(code);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.length).toBeLessThan(600);
  });

  it('a config of the previous format (1) still opens', async () => {
    const repo = join(work, 'cfg-v1');
    mkdirSync(repo);
    writeFileSync(join(repo, 'config'), JSON.stringify({ ...good(), formatVersion: 1 }));
    const r = await Repository.open(new FileSystemStorage(repo));
    expect(r.checksumsRequired).toBe(false);
    await expect(Repository.open(new FileSystemStorage(join(work, 'cfg-missing')))).rejects.not.toBeInstanceOf(UsageError);
  });
});

describe('repository files are 0600 in 0700 folders (item 7)', () => {
  it('a repository created and backed up into under umask 000 has no file or folder readable by others', () => {
    const repo = join(work, 'modes', 'repo');
    const sh = (args: string[]): void => {
      const quoted = args.map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
      const r = spawnSync('sh', ['-c', `umask 000; exec '${process.execPath}' '${CLI}' ${quoted}`], { env: { ...process.env, ...env }, encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
    };
    sh(['repo', 'init', repo]);
    sh(['backup', 'create', '--source', `sqlite://${chinook}`, '--repo', repo, '--id', 'm1']);
    sh(['prune', '--repo', repo, '--grace', '0']);
    const all = [repo, ...files(repo)];
    expect(all.length).toBeGreaterThan(5);
    for (const p of all) {
      const st = statSync(p);
      expect((st.mode & 0o777).toString(8), p).toBe(st.isDirectory() ? '700' : '600');
    }
    // The folder above the repository, made by cairn too, is private as well.
    expect((statSync(join(work, 'modes')).mode & 0o777).toString(8)).toBe('700');
  });

  it('a repository whose files are 0644 in 0755 folders (written by the previous version) keeps working', () => {
    const repo = repoWithBackup('old-modes');
    for (const p of [repo, ...files(repo)]) chmodSync(p, statSync(p).isDirectory() ? 0o755 : 0o644);
    ok(run(['backup', 'create', '--source', `sqlite://${chinook}`, '--repo', repo, '--id', 'again']));
    expectUsable(repo, ['base', 'again']);
    // Existing folders keep their mode; new objects are 0600.
    expect((statSync(join(repo, 'backups')).mode & 0o777).toString(8)).toBe('755');
    expect((statSync(join(repo, 'backups', 'again')).mode & 0o777).toString(8)).toBe('600');
  });
});

describe('counts', () => {
  it('reports the hostile inputs tried', () => {
    const total = Object.values(HOSTILE_INPUTS).reduce((a, b) => a + b, 0);
    console.log(`HOSTILE INPUTS TRIED (test/security/repo-hostile.test.ts): ${total} — ${JSON.stringify(HOSTILE_INPUTS)}`);
    expect(total).toBeGreaterThan(50);
  });
});
