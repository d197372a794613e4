/**
 * End-to-end: named repositories (cairn repo add/list/remove) and cairn copy between a
 * filesystem repository, s3rver and azurite, through the built CLI.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackupManifest } from '../../src/core/schemas.js';
import { AzureBlobStorage } from '../../src/storage/azure.js';
import { CHINOOK, cairn, cairnJson, type CliResult } from '../helpers/cli.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, S3RVER_CREDENTIALS, startAzurite, startS3rver, type LocalServer } from '../helpers/object-servers.js';
import { createDatabase, dropDatabase, ensurePostgres, loadChinook, pgUrl, schemaDump, tableChecksums } from '../helpers/postgres.js';
import { dumpSqlite } from '../helpers/sqlite-compare.js';

const EXIT = { NOT_FOUND: 3, CONFLICT: 4 };
const BUCKET = 'cairn-copy';
const CONTAINER = 'cairn-copy';

interface CopyResult {
  backupId: string;
  chunksCopied: number;
  bytesCopied: number;
  chunksSkipped: number;
}

let work: string;
let chinook: string;
let s3: LocalServer;
let azurite: LocalServer;
/** Environment of every CLI call: the registry in a temp dir, credentials of both servers. */
let env: NodeJS.ProcessEnv;

function ok(r: CliResult): CliResult {
  expect(r.code, `exit ${r.code}: ${r.stderr}`).toBe(0);
  return r;
}

function run(args: string[]): CliResult {
  return cairn(args, { env });
}

function json<T>(args: string[]): T {
  return cairnJson<T>(args, { env });
}

function s3Url(prefix: string): string {
  return `s3://${BUCKET}/${prefix}?endpoint=${encodeURIComponent(s3.url)}&region=us-east-1&forcePathStyle=true`;
}

function azureUrl(prefix: string): string {
  return `azure://${CONTAINER}/${prefix}?endpoint=${encodeURIComponent(azurite.url)}`;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'cairn-copy-'));
  chinook = join(work, 'chinook.db');
  copyFileSync(CHINOOK, chinook);
  [s3, azurite] = await Promise.all([startS3rver([BUCKET]), startAzurite()]);
  await new AzureBlobStorage({ container: CONTAINER, account: AZURITE_ACCOUNT, key: AZURITE_KEY, endpoint: azurite.url }).containerClient.createIfNotExists();
  env = {
    CAIRN_CONFIG: join(work, 'config', 'cairn.json'),
    CAIRN_DATA_DIR: join(work, 'data'),
    AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    AWS_REGION: 'us-east-1',
    AZURE_STORAGE_ACCOUNT: AZURITE_ACCOUNT,
    AZURE_STORAGE_KEY: AZURITE_KEY,
    AZURE_STORAGE_CONNECTION_STRING: undefined,
    CAIRN_REPO: undefined,
  };
}, 60_000);

afterAll(async () => {
  await Promise.all([s3?.stop(), azurite?.stop()]);
  rmSync(work, { recursive: true, force: true });
});

describe('named repositories', () => {
  it('adds, lists, resolves and removes names; removing keeps the data', () => {
    const dir = join(work, 'named-repo');
    ok(run(['repo', 'init', dir]));
    const added = ok(run(['repo', 'add', 'local', dir]));
    expect(added.stdout).toContain('Registered repository local');
    // In the one registry of names: the catalog of the data folder, private to its owner.
    const catalog = join(env.CAIRN_DATA_DIR as string, 'catalog.db');
    expect(statSync(catalog).mode & 0o777).toBe(0o600);
    expect(json<{ repositories: { name: string; url: string }[] }>(['repo', 'list']).repositories).toMatchObject([{ name: 'local', url: dir }]);

    ok(run(['repo', 'add', 'remote', s3Url('unused')]));
    const list = json<{ repositories: { name: string; url: string }[] }>(['repo', 'list']).repositories;
    expect(list.map((r) => r.name)).toEqual(['local', 'remote']);
    expect(run(['repo', 'list']).stdout).toMatch(/local\s+\S*named-repo/);

    // The name works wherever a repository is taken.
    ok(run(['backup', 'create', '--source', `sqlite://${chinook}`, '--repo', 'local', '--id', 'named-1']));
    expect(json<{ backups: BackupManifest[] }>(['backup', 'list', '--repo', 'local']).backups.map((b) => b.id)).toEqual(['named-1']);

    expect(run(['repo', 'add', 'local', dir]).code).toBe(EXIT.CONFLICT);
    expect(run(['repo', 'add', 'Bad/Name', dir]).code).toBe(2);
    expect(run(['repo', 'add', 'bogus', 'ftp://host/x']).code).toBe(2);

    const removed = ok(run(['repo', 'remove', 'local']));
    expect(removed.stdout).toMatch(/No data was deleted/);
    expect(existsSync(join(dir, 'config'))).toBe(true);
    expect(json<{ backups: BackupManifest[] }>(['backup', 'list', '--repo', dir]).backups.map((b) => b.id)).toEqual(['named-1']);
    expect(run(['repo', 'remove', 'local']).code).toBe(EXIT.NOT_FOUND);
    ok(run(['repo', 'remove', 'remote']));

    // A name can be registered before the repository exists, then used to create it.
    const later = join(work, 'later-repo');
    ok(run(['repo', 'add', 'later', later]));
    ok(run(['repo', 'init', 'later']));
    expect(existsSync(join(later, 'config'))).toBe(true);
    ok(run(['repo', 'remove', 'later']));
    expect(json<{ repositories: unknown[] }>(['repo', 'list']).repositories).toEqual([]);
  });

  it('moves the names of the legacy configuration file into the catalog, keeping its other keys', () => {
    const dir = join(work, 'legacy-repo');
    ok(run(['repo', 'init', dir]));
    const configFile = env.CAIRN_CONFIG as string;
    mkdirSync(join(work, 'config'), { recursive: true });
    writeFileSync(configFile, JSON.stringify({ other: 1, repositories: { old: { url: dir, addedAt: '2026-01-01T00:00:00.000Z' } } }), { mode: 0o600 });
    expect(json<{ repositories: { name: string; url: string }[] }>(['repo', 'list']).repositories).toMatchObject([{ name: 'old', url: dir }]);
    expect(JSON.parse(readFileSync(configFile, 'utf8'))).toEqual({ other: 1 });
    expect(json<{ backups: { location: string }[] }>(['backup', 'list', '--repo', 'old']).backups).toEqual([]);
    ok(run(['repo', 'remove', 'old']));
    expect(json<{ repositories: unknown[] }>(['repo', 'list']).repositories).toEqual([]);
  });
});

describe('copy between backends', () => {
  let fsRepo: string;

  beforeAll(() => {
    fsRepo = join(work, 'fs-repo');
    ok(run(['repo', 'init', fsRepo]));
    // The targets' own settings differ: copied blobs keep the source's compression.
    ok(run(['repo', 'init', s3Url('copies'), '--compression', 'gzip']));
    ok(run(['repo', 'init', azureUrl('copies'), '--compression', 'none', '--pack-size', '1']));
    ok(run(['repo', 'add', 'fs', fsRepo]));
    ok(run(['repo', 'add', 's3', s3Url('copies')]));
    ok(run(['repo', 'add', 'az', azureUrl('copies')]));
  }, 120_000);

  it('copies a SQLite backup fs → s3 → azure and restores it from azure identical to the source', () => {
    ok(run(['backup', 'create', '--source', `sqlite://${chinook}`, '--repo', 'fs', '--id', 'sq-1']));
    const first = json<CopyResult>(['copy', 'sq-1', '--from', 'fs', '--to', 's3']);
    expect(first.chunksCopied).toBeGreaterThan(0);
    expect(first.chunksSkipped).toBe(0);
    const second = json<CopyResult>(['copy', 'sq-1', '--from', 's3', '--to', 'az']);
    expect(second.chunksCopied).toBe(first.chunksCopied);

    const shown = json<BackupManifest>(['backup', 'show', 'sq-1', '--repo', azureUrl('copies')]);
    expect(shown.id).toBe('sq-1');
    ok(run(['verify', 'sq-1', '--repo', 'az', '--read-data']));
    const restored = join(work, 'from-azure.db');
    ok(run(['restore', 'sq-1', '--repo', 'az', '--to', `sqlite://${restored}`]));
    expect(dumpSqlite(restored)).toEqual(dumpSqlite(chinook));

    // Another backup of the same database: the target has (almost) every chunk already.
    ok(run(['backup', 'create', '--source', `sqlite://${chinook}`, '--repo', 'fs', '--id', 'sq-2']));
    const human = ok(run(['copy', 'sq-2', '--from', 'fs', '--to', 's3']));
    expect(human.stdout).toMatch(/Copied backup sq-2 from .* to s3:\/\/.*verified\./);
    const again = json<CopyResult>(['copy', 'sq-2', '--from', 's3', '--to', 'az']);
    expect(again.chunksCopied).toBeLessThanOrEqual(Math.max(1, Math.floor(first.chunksCopied / 10)));
    expect(again.chunksSkipped).toBeGreaterThan(0);
    expect(json<{ backups: BackupManifest[] }>(['backup', 'list', '--repo', 'az']).backups.map((b) => b.id).sort()).toEqual(['sq-1', 'sq-2']);
  }, 180_000);

  it('refuses an id the target has (exit 4) and an unknown id (exit 3), copying nothing', () => {
    ok(run(['backup', 'create', '--source', `sqlite://${chinook}`, '--repo', 'fs', '--id', 'dup-1']));
    ok(run(['copy', 'dup-1', '--from', 'fs', '--to', 's3']));
    const dup = run(['copy', 'dup-1', '--from', 'fs', '--to', 's3']);
    expect(dup.code).toBe(EXIT.CONFLICT);
    expect(dup.stderr).toMatch(/already exists/);
    // (The AWS SDK may add its own Node version warning on stderr: only cairn's lines count.)
    expect(dup.stderr.split('\n').filter((l) => l.startsWith('cairn:'))).toHaveLength(1);
    const missing = run(['copy', 'no-such-backup', '--from', 'fs', '--to', 's3']);
    expect(missing.code).toBe(EXIT.NOT_FOUND);
    expect(missing.stderr).toMatch(/no-such-backup.*not found/);
  }, 120_000);

  describe('PostgreSQL', () => {
    const databases: string[] = [];
    afterAll(() => {
      for (const db of databases) dropDatabase(db);
    });

    it('copies a PostgreSQL backup fs → s3 → azure and restores it identical to the source', () => {
      ensurePostgres();
      const source = createDatabase('copy_src');
      databases.push(source);
      loadChinook(source);
      ok(run(['backup', 'create', '--source', pgUrl(source), '--repo', 'fs', '--id', 'pg-1']));
      ok(run(['copy', 'pg-1', '--from', 'fs', '--to', 's3']));
      ok(run(['copy', 'pg-1', '--from', 's3', '--to', 'az']));
      const target = `${source}_copy`;
      databases.push(target);
      ok(run(['restore', 'pg-1', '--repo', 'az', '--to', pgUrl(target)]));
      expect(schemaDump(target)).toEqual(schemaDump(source));
      expect(tableChecksums(target)).toEqual(tableChecksums(source));
    }, 180_000);
  });
});
