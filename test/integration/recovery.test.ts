/**
 * Recovery without the manager (docs/recovery.md): scripts/cairn-read.py, a reader of the format
 * written from the documentation in Python, reads cairn's repositories (plain, encrypted, and an
 * extracted .cairn archive) and gives a PostgreSQL table's rows back exactly as COPY writes them.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBackup } from '../../src/jobs/backup.js';
import { Repository } from '../../src/repo/repository.js';
import { openSource } from '../../src/sources/index.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { PROJECT_ROOT, cairn } from '../helpers/cli.js';
import { createDatabase, dropDatabase, ensurePostgres, pgUrl, psql } from '../helpers/postgres.js';

process.env.CAIRN_TEST_WEAK_KDF = '1';

const READER = path.join(PROJECT_ROOT, 'scripts', 'cairn-read.py');
const missing = ((): string | undefined => {
  if (spawnSync('python3', ['--version']).status !== 0) return 'python3 is not installed';
  if (spawnSync('zstd', ['--version']).status !== 0) return 'the zstd command is not installed';
  if (spawnSync('python3', ['-c', 'import cryptography']).status !== 0) return 'the python3 cryptography package is not installed';
  return undefined;
})();

let dir: string;
let db: string;
let expected: string;

function read(repo: string, args: string[], env: NodeJS.ProcessEnv = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('python3', [READER, repo, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const sorted = (copyText: string): string[] => copyText.split('\n').filter(Boolean).sort();

describe.skipIf(missing !== undefined)(`scripts/cairn-read.py reads repositories without cairn${missing ? ` (skipped: ${missing})` : ''}`, () => {
  beforeAll(async () => {
    ensurePostgres();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-recovery-'));
    db = createDatabase('cairn_recovery');
    psql(db, `CREATE TABLE notes (id int PRIMARY KEY, body text, data bytea, at timestamptz);
      INSERT INTO notes SELECT g, 'note ' || g || E' with\\ttab and \\\\ backslash', decode(md5(g::text), 'hex'), '2026-01-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, 5000) g;`);
    expected = psql(db, 'COPY public.notes TO STDOUT');
    expect(sorted(expected)).toHaveLength(5000);
  }, 120_000);
  afterAll(() => {
    if (db) dropDatabase(db);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a plain repository: list, then a table as COPY text identical to the source', async () => {
    const root = path.join(dir, 'plain');
    const repo = await Repository.init(new FileSystemStorage(root));
    const { id } = await runBackup({ repo, source: openSource(pgUrl(db)), jobs: 2, compressionWorkers: 0 });
    const list = read(root, ['list']);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toContain(id);
    const cat = read(root, ['cat', id, 'public.notes']);
    expect(cat.code, cat.stderr).toBe(0);
    expect(sorted(cat.stdout)).toEqual(sorted(expected));
  }, 120_000);

  it('an encrypted repository with its password (and a wrong password refused)', async () => {
    const root = path.join(dir, 'encrypted');
    const repo = await Repository.init(new FileSystemStorage(root), { encryption: { password: 'recovery pässword' } });
    const { id } = await runBackup({ repo, source: openSource(pgUrl(db)), jobs: 1, compressionWorkers: 0 });
    const cat = read(root, ['cat', id, 'public.notes'], { CAIRN_PASSWORD: 'recovery pässword' });
    expect(cat.code, cat.stderr).toBe(0);
    expect(sorted(cat.stdout)).toEqual(sorted(expected));
    const wrong = read(root, ['list'], { CAIRN_PASSWORD: 'not it' });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/wrong password/);
    // A tampered object: one line naming it, no traceback.
    const manifest = path.join(root, 'backups', id);
    const bytes = fs.readFileSync(manifest);
    bytes[bytes.length - 3] = (bytes[bytes.length - 3] as number) ^ 1;
    fs.writeFileSync(manifest, bytes);
    const pwFile = path.join(dir, 'pw');
    fs.writeFileSync(pwFile, 'recovery pässword\n');
    const tampered = read(root, ['show', id], { CAIRN_PASSWORD_FILE: pwFile });
    expect(tampered.code).toBe(1);
    expect(tampered.stderr).toBe(`cairn-read: backups/${id} fails authentication: it was altered or damaged\n`);
  }, 120_000);

  it('an extracted .cairn archive (tar xf) is a repository the reader reads too', async () => {
    const root = path.join(dir, 'for-archive');
    await Repository.init(new FileSystemStorage(root));
    const made = cairn(['backup', 'create', '--source', pgUrl(db), '--repo', root, '--id', 'notes-1', '--json']);
    expect(made.code, made.stderr).toBe(0);
    const archive = path.join(dir, 'notes-1.cairn');
    const exported = cairn(['export', 'notes-1', '--repo', root, '-o', archive]);
    expect(exported.code, exported.stderr).toBe(0);
    const extracted = path.join(dir, 'extracted');
    fs.mkdirSync(extracted);
    expect(spawnSync('tar', ['xf', archive, '-C', extracted]).status).toBe(0);
    const cat = read(extracted, ['cat', 'notes-1', 'public.notes']);
    expect(cat.code, cat.stderr).toBe(0);
    expect(sorted(cat.stdout)).toEqual(sorted(expected));
  }, 120_000);
});
