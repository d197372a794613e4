/**
 * Archives of encrypted repositories (jobs level; the CLI's password sources are another part):
 * an export stays encrypted (a known string of the source appears nowhere in the archive, the
 * key slots travel with it so the same password opens it), restores straight from the archive,
 * a wrong password is a KeyError, and an import into a plain repository or one with other keys
 * re-encrypts (chunk ids renamed) and restores identical.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyError } from '../../src/core/errors.js';
import { runBackup } from '../../src/jobs/backup.js';
import { runExport } from '../../src/jobs/export.js';
import { runImport } from '../../src/jobs/import.js';
import { runRestore } from '../../src/jobs/restore.js';
import { Repository } from '../../src/repo/repository.js';
import { openSource, openTarget } from '../../src/sources/index.js';
import Database from '../../src/sources/sqlite/driver.js';
import { ArchiveStorage } from '../../src/storage/archive/reader.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { CHINOOK } from '../helpers/cli.js';
import { dumpSqlite } from '../helpers/sqlite-compare.js';

// Key slots cheap to open in tests (N = 2^10).
process.env.CAIRN_TEST_WEAK_KDF = '1';

const SECRET = 'needle-archive-5d1e0b-known-plaintext';
const pw = (p: string) => () => Promise.resolve(p);
let dir: string;
let source: string;
let repo: Repository;
let backupId: string;
let archive: string;

async function exportTo(file: string, ids: string[]): Promise<void> {
  const out = fs.createWriteStream(file);
  await runExport({ repo, backupIds: ids, output: out });
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
}

async function restoreTo(from: Repository, id: string, file: string): Promise<void> {
  await runRestore({ repo: from, backupId: id, target: openTarget(`sqlite://${file}`), jobs: 1 });
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-archive-enc-'));
  source = path.join(dir, 'source.db');
  fs.copyFileSync(CHINOOK, source);
  const db = new Database(source);
  db.prepare('INSERT INTO Genre (Name) VALUES (?)').run(SECRET);
  db.close();
  repo = await Repository.init(new FileSystemStorage(path.join(dir, 'enc')), { encryption: { password: 'correct horse' } });
  backupId = (await runBackup({ repo, source: openSource(`sqlite://${source}`), jobs: 1, compressionWorkers: 0 })).id;
  archive = path.join(dir, 'enc.cairn');
  await exportTo(archive, [backupId]);
}, 120_000);

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('an encrypted repository exported', () => {
  it('stays encrypted: the known string is nowhere in the archive; key slots and the same config travel with it', async () => {
    const bytes = fs.readFileSync(archive);
    expect(bytes.includes(Buffer.from(SECRET))).toBe(false);
    // Nor does any manifest field in clear: the backup's collection names are sealed too.
    expect(bytes.includes(Buffer.from('"collections"'))).toBe(false);
    const storage = new ArchiveStorage(archive);
    const { head, members } = await storage.contents();
    expect(head.encrypted).toBe(true);
    expect([...members.keys()].filter((k) => k.startsWith('keys/'))).toHaveLength(1);
    expect(JSON.parse((await storage.get('config')).toString()).id).toBe(repo.config.id);
    await storage.verifyChecksum();
  });

  it('opens with the same password and restores identical; a wrong password is a KeyError', async () => {
    await expect(Repository.open(new ArchiveStorage(archive), { password: pw('wrong') })).rejects.toBeInstanceOf(KeyError);
    const fromArchive = await Repository.open(new ArchiveStorage(archive), { password: pw('correct horse') });
    expect(await fromArchive.listBackupIds()).toEqual([backupId]);
    const restored = path.join(dir, 'from-archive.db');
    await restoreTo(fromArchive, backupId, restored);
    expect(dumpSqlite(restored)).toEqual(dumpSqlite(source));
  }, 60_000);

  it('imports into a plain repository and into one with other keys (re-encrypted), restoring identical', async () => {
    const openArchive = (s: ArchiveStorage): Promise<Repository> => Repository.open(s, { password: pw('correct horse') });
    const plain = await Repository.init(new FileSystemStorage(path.join(dir, 'plain')));
    const intoPlain = await runImport({ file: archive, to: plain, openArchive });
    expect(intoPlain.imported).toMatchObject([{ backupId, importedAs: backupId }]);
    const a = path.join(dir, 'plain.db');
    await restoreTo(plain, backupId, a);
    expect(dumpSqlite(a)).toEqual(dumpSqlite(source));

    const other = await Repository.init(new FileSystemStorage(path.join(dir, 'other')), { encryption: { password: 'battery staple' } });
    await runImport({ file: archive, to: other, asId: 'renamed', openArchive });
    const b = path.join(dir, 'other.db');
    await restoreTo(other, 'renamed', b);
    expect(dumpSqlite(b)).toEqual(dumpSqlite(source));
    for (const f of fs.readdirSync(path.join(dir, 'other'), { recursive: true, withFileTypes: true })) {
      if (f.isFile()) expect(fs.readFileSync(path.join(f.parentPath, f.name)).includes(Buffer.from(SECRET)), f.name).toBe(false);
    }
  }, 120_000);
});
