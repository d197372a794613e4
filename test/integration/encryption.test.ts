/**
 * Client-side encryption at the repository level, against real files and a real SQLite source:
 * nothing readable in any stored object, every object authenticated (tampering, renaming and
 * downgrading detected), key slots (add, remove, change, a lost slot recovered with another),
 * keyed chunk ids, and copies between repositories with other keys (re-encrypted, renamed ids).
 * The CLI's password sources are tested in test/integration/keys-cli.test.ts.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from '../../src/sources/sqlite/driver.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConflictError, CorruptionError, KeyError, LockedError, UsageError } from '../../src/core/errors.js';
import { listLocks, removeLocks } from '../../src/repo/lock.js';
import { runBackup } from '../../src/jobs/backup.js';
import { runCopy, runSync } from '../../src/jobs/copy.js';
import { runRestore } from '../../src/jobs/restore.js';
import { addKey, changePassword, listKeys, removeKey } from '../../src/repo/keys.js';
import { prune } from '../../src/repo/prune.js';
import { Repository } from '../../src/repo/repository.js';
import { verifyBackupsLocked } from '../../src/repo/verify.js';
import { sha256Hex } from '../../src/repo/hash.js';
import { openSource, openTarget } from '../../src/sources/index.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { dumpSqlite } from '../helpers/sqlite-compare.js';

// Key slots cheap to open in tests (N = 2^10); the default is measured in the bench.
process.env.CAIRN_TEST_WEAK_KDF = '1';

const SECRET = 'needle-7f3a9c-known-plaintext';
let dir: string;
let source: string;

function files(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(p);
    }
  };
  walk(root);
  return out.sort();
}

const pw = (p: string) => () => Promise.resolve(p);

async function encryptedRepo(name: string, password = 'correct horse'): Promise<{ repo: Repository; root: string }> {
  const root = path.join(dir, name);
  const repo = await Repository.init(new FileSystemStorage(root), { encryption: { password } });
  return { repo, root };
}

async function backup(repo: Repository): Promise<string> {
  return (await runBackup({ repo, source: openSource(`sqlite://${source}`), jobs: 1, compressionWorkers: 0 })).id;
}

async function restoreTo(repo: Repository, id: string, file: string): Promise<void> {
  await runRestore({ repo, backupId: id, target: openTarget(`sqlite://${file}`), jobs: 1 });
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-enc-'));
  source = path.join(dir, 'source.db');
  const db = new Database(source);
  db.exec(`CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, data BLOB);`);
  const insert = db.prepare('INSERT INTO notes (body, data) VALUES (?, ?)');
  // The known string repeated (compressible) and in a table of its own: both must stay hidden.
  for (let i = 0; i < 2000; i++) insert.run(`${SECRET} row ${i}`, Buffer.from(`${SECRET}-${i}`));
  db.exec(`CREATE TABLE "${SECRET}_table" (v TEXT); INSERT INTO "${SECRET}_table" VALUES ('${SECRET}');`);
  db.close();
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('encrypted repository', () => {
  it('stores no readable trace of the source: the known string is in no object, chunk ids are keyed', async () => {
    const { repo, root } = await encryptedRepo('hidden');
    expect(repo.encrypted).toBe(true);
    const id = await backup(repo);
    const needle = Buffer.from(SECRET);
    // Compressed plaintext would hide the string too: check the decrypted view holds it, so the
    // test would fail if encryption were off (and compression alone did the hiding).
    const plainRoot = path.join(dir, 'hidden-plain');
    const plain = await Repository.init(new FileSystemStorage(plainRoot), { compression: { algorithm: 'none', level: 'default' } });
    await backup(plain);
    expect(files(plainRoot).some((f) => fs.readFileSync(f).includes(needle))).toBe(true);
    for (const f of files(root)) expect(fs.readFileSync(f).includes(needle), f).toBe(false);
    // Every object but the config and the key slots is sealed.
    for (const f of files(root)) {
      const rel = path.relative(root, f);
      if (rel === 'config' || rel.startsWith('keys')) continue;
      expect(fs.readFileSync(f).subarray(0, 4).toString('latin1'), rel).toBe('CRNE');
    }
    // Chunk ids are not the SHA-256 of the content (the store cannot confirm known content).
    const manifest = await repo.readManifest(id);
    const chunk = manifest.collections.find((c) => c.chunks.length > 0)?.chunks[0] as string;
    expect(chunk).toMatch(/^[0-9a-f]{64}$/);
    expect(repo.chunkId(Buffer.from('x'))).not.toBe(sha256Hex(Buffer.from('x')));
    // And it restores exactly, after reopening with the password.
    const reopened = await Repository.open(new FileSystemStorage(root), { password: pw('correct horse') });
    const out = path.join(dir, 'hidden-restored.db');
    await restoreTo(reopened, id, out);
    expect(dumpSqlite(out)).toEqual(dumpSqlite(source));
    expect((await verifyBackupsLocked(reopened, [manifest], { readData: true })).problems).toEqual([]);
  });

  it('asks for a password only when encrypted; a wrong one is a KeyError; none is a UsageError naming the sources', async () => {
    const { root } = await encryptedRepo('passwords');
    await expect(Repository.open(new FileSystemStorage(root))).rejects.toThrow(UsageError);
    await expect(Repository.open(new FileSystemStorage(root))).rejects.toThrow(/CAIRN_PASSWORD.*CAIRN_PASSWORD_FILE.*--password-command/);
    const wrong = await Repository.open(new FileSystemStorage(root), { password: pw('wrong') }).catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(KeyError);
    expect((wrong as KeyError).exitCode).toBe(9);
    expect((wrong as Error).message).not.toContain('wrong'.repeat(2));
    let asked = 0;
    const plainRoot = path.join(dir, 'never-asks');
    await Repository.init(new FileSystemStorage(plainRoot));
    await Repository.open(new FileSystemStorage(plainRoot), { password: () => Promise.resolve(String(++asked)) });
    expect(asked).toBe(0);
  });

  it('detects tampering: a flipped byte, a truncated object, an object moved to another name — CORRUPT naming it', async () => {
    const { repo, root } = await encryptedRepo('tamper');
    const id = await backup(repo);
    const manifestFile = path.join(root, 'backups', id);
    const original = fs.readFileSync(manifestFile);
    const flipped = Buffer.from(original);
    flipped[flipped.length - 20] = (flipped[flipped.length - 20] as number) ^ 0x01;
    fs.writeFileSync(manifestFile, flipped);
    const err = await repo.readManifest(id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptionError);
    expect((err as CorruptionError).objects).toEqual([`backups/${id}`]);
    expect((err as Error).message).toMatch(/failed authentication/);
    fs.writeFileSync(manifestFile, original.subarray(0, 10));
    await expect(repo.readManifest(id)).rejects.toThrow(/not an encrypted object/);
    fs.writeFileSync(manifestFile, original);
    // A pack with a flipped byte: verify names it and the backup.
    const pack = files(path.join(root, 'data'))[0] as string;
    const bytes = fs.readFileSync(pack);
    bytes[100] = (bytes[100] as number) ^ 0x80;
    fs.writeFileSync(pack, bytes);
    const report = await verifyBackupsLocked(repo, [await repo.readManifest(id)], { readData: true });
    expect(report.problems.length).toBeGreaterThan(0);
    expect(JSON.stringify(report.problems)).toContain(path.basename(pack));
    // A sealed object under another name (the store swapping two manifests) does not open.
    const id2 = await backup(repo);
    fs.copyFileSync(path.join(root, 'backups', id2), path.join(root, 'backups', 'swapped-20270101-000000'));
    await expect(repo.readManifest('swapped-20270101-000000')).rejects.toThrow(CorruptionError);
  });

  it('an unreadable lock (empty, flipped, random) blocks like an exclusive one and unlock --remove-all removes it', async () => {
    const { repo, root } = await encryptedRepo('bad-lock');
    await backup(repo);
    fs.mkdirSync(path.join(root, 'locks'), { recursive: true });
    for (const junk of [Buffer.alloc(0), Buffer.from('CRNE\x01' + 'x'.repeat(40), 'latin1'), crypto.randomBytes(300)]) {
      fs.writeFileSync(path.join(root, 'locks', '0123456789abcdef0123456789abcdef'), junk);
      const blocked = await backup(repo).catch((e: unknown) => e);
      expect(blocked).toBeInstanceOf(LockedError);
      expect(String((blocked as Error).message)).toMatch(/unlock --remove-all/);
      const unreadable = (await listLocks(repo.storage)).filter((l) => l.problem !== undefined);
      expect(unreadable.map((l) => l.key)).toEqual(['locks/0123456789abcdef0123456789abcdef']);
      expect(await removeLocks(repo.storage, { all: true })).toEqual(['locks/0123456789abcdef0123456789abcdef']);
      await backup(repo);
    }
  });

  it('refuses a config edited to say "not encrypted" (a downgrade would write plain data)', async () => {
    const { root } = await encryptedRepo('downgrade');
    const configFile = path.join(root, 'config');
    const config = JSON.parse(fs.readFileSync(configFile, 'utf8')) as Record<string, unknown>;
    // Re-encode with a valid checksum as an attacker could.
    const { encodeRepositoryConfig } = await import('../../src/repo/repository.js');
    const { checksum: _c, ...rest } = config;
    fs.writeFileSync(configFile, encodeRepositoryConfig({ ...(rest as object), encryption: { algorithm: 'none' } } as never));
    await expect(Repository.open(new FileSystemStorage(root))).rejects.toThrow(/says the repository is not encrypted, but it holds key slots/);
    // With the key slots moved aside too (trial): the sealed manifests give it away.
    const { repo: withData, root: root2 } = await encryptedRepo('downgrade-2');
    await backup(withData);
    const config2 = JSON.parse(fs.readFileSync(path.join(root2, 'config'), 'utf8')) as Record<string, unknown>;
    const { checksum: _c2, ...rest2 } = config2;
    fs.writeFileSync(path.join(root2, 'config'), encodeRepositoryConfig({ ...(rest2 as object), encryption: { algorithm: 'none' } } as never));
    fs.renameSync(path.join(root2, 'keys'), path.join(dir, 'keys-aside'));
    await expect(Repository.open(new FileSystemStorage(root2))).rejects.toThrow(/not encrypted, but it holds encrypted objects \(backups\//);
  });

  it('key slots: add, list, change the password, remove; a lost slot is recovered with another', async () => {
    const { repo, root } = await encryptedRepo('slots', 'first password');
    const id = await backup(repo);
    const second = await addKey(repo, 'second password');
    let slots = await listKeys(repo);
    expect(slots).toHaveLength(2);
    expect(slots.filter((s) => s.current)).toHaveLength(1);
    expect(slots.find((s) => s.current)?.id).not.toBe(second.id);
    // The slot in use and the last slot are refused.
    await expect(removeKey(repo, repo.keySlotId as string)).rejects.toThrow(ConflictError);
    // Lost slot: the first password's slot file is gone; the second password still opens everything.
    fs.rmSync(path.join(root, 'keys', repo.keySlotId as string));
    await expect(Repository.open(new FileSystemStorage(root), { password: pw('first password') })).rejects.toThrow(KeyError);
    const viaSecond = await Repository.open(new FileSystemStorage(root), { password: pw('second password') });
    const out = path.join(dir, 'slots-restored.db');
    await restoreTo(viaSecond, id, out);
    expect(dumpSqlite(out)).toEqual(dumpSqlite(source));
    await expect(removeKey(viaSecond, second.id)).rejects.toThrow(/only one/);
    // Rotation: after passwd the old password fails and the new one works.
    const rotated = await changePassword(viaSecond, 'third password');
    expect(rotated.current).toBe(true);
    await expect(Repository.open(new FileSystemStorage(root), { password: pw('second password') })).rejects.toThrow(KeyError);
    const viaThird = await Repository.open(new FileSystemStorage(root), { password: pw('third password') });
    expect((await viaThird.readManifest(id)).id).toBe(id);
    slots = await listKeys(viaThird);
    expect(slots.map((s) => s.id)).toEqual([rotated.id]);
    // The password appears in no slot file.
    for (const f of files(path.join(root, 'keys'))) expect(fs.readFileSync(f, 'utf8')).not.toContain('third password');
  });

  it('copies between repositories with other keys (and plain ones) re-encrypted, each chunk sent once; prune keeps what they need', async () => {
    const { repo: a } = await encryptedRepo('copy-a', 'pa');
    const { repo: b, root: rootB } = await encryptedRepo('copy-b', 'pb');
    const plain = await Repository.init(new FileSystemStorage(path.join(dir, 'copy-plain')));
    expect(a.sameChunkIds(b)).toBe(false);
    expect(plain.sameChunkIds(await Repository.open(new FileSystemStorage(path.join(dir, 'copy-plain'))))).toBe(true);
    const id1 = await backup(a);
    const id2 = await backup(a);
    const first = await runCopy({ from: a, to: b, backupId: id1 });
    expect(first.chunksCopied).toBeGreaterThan(0);
    // The second backup has the same content: every chunk is already in b under b's ids.
    const second = await runCopy({ from: a, to: b, backupId: id2 });
    expect(second.chunksCopied).toBe(0);
    expect(second.chunksSkipped).toBe(first.chunksCopied);
    const mb = await b.readManifest(id1);
    const ma = await a.readManifest(id1);
    expect(mb.collections.map((c) => c.chunks)).not.toEqual(ma.collections.map((c) => c.chunks));
    for (const f of files(rootB)) expect(fs.readFileSync(f).includes(Buffer.from(SECRET)), f).toBe(false);
    // Into a plain repository and back into an encrypted one: a sync of both backups.
    const toPlain = await runSync({ from: b, to: plain });
    expect(toPlain.copied.map((c) => c.backupId).sort()).toEqual([id1, id2].sort());
    expect((await plain.readManifest(id1)).collections.map((c) => c.chunks)).toEqual(ma.collections.map((c) => c.chunks).map((l) => l.map(() => expect.any(String))));
    const again = await runSync({ from: b, to: plain });
    expect(again.skipped.sort()).toEqual([id1, id2].sort());
    for (const [repo, id, name] of [[b, id1, 'b1'], [plain, id2, 'p2']] as const) {
      const out = path.join(dir, `copy-${name}.db`);
      await restoreTo(repo, id, out);
      expect(dumpSqlite(out)).toEqual(dumpSqlite(source));
    }
    // Prune in the target keeps everything the copied backups need.
    await b.deleteBackup(id2);
    const pruned = await prune(b, { unindexedGraceMs: 0 });
    expect(pruned).toBeDefined();
    const out = path.join(dir, 'copy-after-prune.db');
    await restoreTo(b, id1, out);
    expect(dumpSqlite(out)).toEqual(dumpSqlite(source));
  });
});
