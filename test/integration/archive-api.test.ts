/**
 * Archives through the REST API and the SDK: an export job's archive downloaded (streamed) and
 * restorable, imported into another repository by upload; a hostile upload refused (422) with
 * nothing added and no upload left in the data folder; an existing id 409 naming `as`; the file
 * route's 409 / 404 and the roles (viewers may neither export, download nor import).
 */
import { copyFileSync, cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteTokenStore } from '../../src/catalog/tokens.js';
import { Repository } from '../../src/repo/repository.js';
import { CairnClient } from '../../src/sdk/index.js';
import { catalogFile, startServer, type RunningServer } from '../../src/server/index.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { apiFailure } from '../helpers/api.js';
import { CHINOOK, cairn } from '../helpers/cli.js';
import { dumpSqlite } from '../helpers/sqlite-compare.js';

let work: string;
let dataDir: string;
let server: RunningServer;
let operator: CairnClient;
let viewer: CairnClient;
let src: string;
let dst: string;
let archive: Buffer;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'cairn-archive-api-'));
  dataDir = join(work, 'data');
  const store = new SqliteTokenStore(catalogFile(dataDir));
  const tokens = { operator: store.create('operator').token, viewer: store.create('viewer').token };
  store.close();
  src = join(work, 'src');
  dst = join(work, 'dst');
  await Repository.init(new FileSystemStorage(src));
  await Repository.init(new FileSystemStorage(dst));
  copyFileSync(CHINOOK, join(work, 'chinook.db'));
  const r = cairn(['backup', 'create', '--source', `sqlite://${join(work, 'chinook.db')}`, '--repo', src, '--id', 'api-1'], { env: { CAIRN_DATA_DIR: join(work, 'cli') } });
  expect(r.code, r.stderr).toBe(0);
  server = await startServer({ dataDir, port: 0, allowAdHocUrls: true, scheduleTickMs: 3600_000, env: {} });
  operator = new CairnClient({ url: server.url, token: tokens.operator });
  viewer = new CairnClient({ url: server.url, token: tokens.viewer });
}, 60_000);

afterAll(async () => {
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('exports and imports through the API', () => {
  it('exports as a job, downloads the archive streamed, imports it by upload; restores identical', async () => {
    const job = await operator.exports.create({ repository: src, backups: ['api-1'] }, { waitForCompletion: true, pollMs: 25 });
    expect(job.result).toMatchObject({ backups: ['api-1'], packs: 1, encrypted: false });
    archive = Buffer.from(await new Response(await operator.exports.download(job.id)).arrayBuffer());
    expect(archive.length).toBe(job.result?.bytes);
    // The downloaded file is an archive the CLI reads.
    writeFileSync(join(work, 'api-1.cairn'), archive);
    expect(cairn(['verify', join(work, 'api-1.cairn'), '--read-data']).code).toBe(0);

    const imported = await operator.imports.create(new Blob([archive]), { repository: dst }, { waitForCompletion: true, pollMs: 25 });
    expect(imported.result).toMatchObject({ imported: [{ backupId: 'api-1', importedAs: 'api-1' }] });
    expect(imported.result).not.toHaveProperty('file');
    const restored = join(work, 'restored.db');
    expect(cairn(['restore', 'api-1', '--repo', dst, '--to', `sqlite://${restored}`]).code).toBe(0);
    expect(dumpSqlite(restored)).toEqual(dumpSqlite(join(work, 'chinook.db')));
    // Uploads do not stay in the data folder.
    expect(readdirSync(join(dataDir, 'imports'))).toEqual([]);
  }, 120_000);

  it('an existing id is 409 naming as; as imports under another id', async () => {
    const err = await apiFailure(operator.imports.create(archive, { repository: dst }));
    expect(err.status).toBe(409);
    expect(err.message).toMatch(/"api-1" already exists .*as=<new id>/);
    const job = await operator.imports.create(archive, { repository: dst, as: 'api-1-again' }, { waitForCompletion: true, pollMs: 25 });
    expect(job.result).toMatchObject({ imported: [{ importedAs: 'api-1-again', chunksCopied: 0 }] });
  }, 60_000);

  it('a hostile or damaged upload is 422 before a job starts, nothing added, no upload left', async () => {
    const before = readdirSync(dst, { recursive: true }).sort();
    const jobsBefore = (await operator.jobs.list({ kind: 'import' })).length;
    const truncated = archive.subarray(0, archive.length - 2000);
    const err = await apiFailure(operator.imports.create(truncated, { repository: dst, as: 'never' }));
    expect(err.status).toBe(422);
    expect(err.message).toMatch(/damaged or not a cairn archive/);
    const notTar = await apiFailure(operator.imports.create(Buffer.from('hello'), { repository: dst, as: 'never' }));
    expect(notTar.status).toBe(422);
    // A flipped byte inside a pack passes the structure check: the job fails CORRUPT, adding nothing.
    const flipped = Buffer.from(archive);
    const at = flipped.indexOf(Buffer.from('data/')) + 4096;
    flipped[at] = (flipped[at] as number) ^ 1;
    const job = await operator.imports.create(flipped, { repository: dst, as: 'never' });
    const end = await operator.jobs.wait(job.id, { pollMs: 25 });
    expect(end.state).toBe('FAILED');
    expect(end.error?.code).toBe('CORRUPT');
    expect(end.error?.message).toMatch(/does not match the checksum/);
    expect(readdirSync(dst, { recursive: true }).sort()).toEqual(before);
    expect((await operator.jobs.list({ kind: 'import' })).length).toBe(jobsBefore + 1);
    expect(readdirSync(join(dataDir, 'imports'))).toEqual([]);
  }, 60_000);

  it('the file route: 404 for another kind of job, 409 for a failed export; viewers may not export, download or import', async () => {
    const importJob = (await operator.jobs.list({ kind: 'import' }))[0]?.id as string;
    expect((await apiFailure(operator.exports.download(importJob))).status).toBe(404);
    // A repository that lost its packs: the export job fails, and has no file.
    const broken = join(work, 'broken');
    cpSync(src, broken, { recursive: true });
    rmSync(join(broken, 'data'), { recursive: true });
    const bad = await operator.exports.create({ repository: broken, backups: ['api-1'] });
    expect((await operator.jobs.wait(bad.id, { pollMs: 25 })).error?.code).toBe('CORRUPT');
    const notDone = await apiFailure(operator.exports.download(bad.id));
    expect(notDone.status).toBe(409);
    expect(notDone.message).toMatch(/is FAILED: its archive can be downloaded once it ends SUCCESS/);
    expect(readdirSync(join(dataDir, 'exports')).filter((f) => f.endsWith('.part'))).toEqual([]);
    const all = await operator.exports.create({ repository: src, all: true, compression: 'gzip' });
    const end = await operator.jobs.wait(all.id, { pollMs: 25 });
    expect(end.state).toBe('SUCCESS');
    expect(readFileSync(join(dataDir, 'exports', String(end.result?.file))).length).toBe(end.result?.bytes);
    expect((await apiFailure(operator.exports.create({ repository: src, backups: ['nope'] }))).status).toBe(404);
    expect((await apiFailure(operator.exports.create({ repository: src }))).status).toBe(400);
    expect((await apiFailure(viewer.exports.create({ repository: src, all: true }))).status).toBe(403);
    expect((await apiFailure(viewer.exports.download(all.id))).status).toBe(403);
    expect((await apiFailure(viewer.imports.create(archive, { repository: dst, as: 'v' }))).status).toBe(403);
  }, 60_000);
});
