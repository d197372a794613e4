/**
 * Issue 19 part B: GET /v1/backups/{id}/deletion-preview (checked against what a real delete +
 * prune frees) and GET /v1/overview (statuses failing, late, never, ok in that order; sizes and
 * history from the summaries; a repository that cannot be opened is named with its error), over
 * a real server, real SQLite sources and a real repository.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteTokenStore } from '../../src/catalog/tokens.js';
import { repositoryStats } from '../../src/repo/stats.js';
import { Repository } from '../../src/repo/repository.js';
import { CairnApiError, CairnClient, type BackupListed } from '../../src/sdk/index.js';
import { catalogFile, startServer, type RunningServer } from '../../src/server/index.js';
import Database from '../../src/sources/sqlite/driver.js';
import { FileSystemStorage } from '../../src/storage/fs.js';

let work: string;
let repoPath: string;
let server: RunningServer;
let admin: CairnClient;
let viewer: CairnClient;

function makeDb(file: string, rows: number, seed: string): void {
  const db = new Database(file);
  db.exec('CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)');
  const put = db.prepare('INSERT INTO t (v) VALUES (?)');
  // Distinct, incompressible-ish text per seed: its chunks are shared with no other database.
  db.transaction(() => {
    for (let i = 0; i < rows; i++) put.run(`${seed}-${i}-${Math.random().toString(36).repeat(8)}`);
  })();
  db.close();
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'cairn-overview-'));
  const dataDir = join(work, 'data');
  const store = new SqliteTokenStore(catalogFile(dataDir));
  const tokens = { admin: store.create('admin').token, viewer: store.create('viewer').token };
  store.close();
  repoPath = join(work, 'repo');
  await Repository.init(new FileSystemStorage(repoPath));
  server = await startServer({ dataDir, port: 0, allowAdHocUrls: true, scheduleTickMs: 3600_000, env: { BACKUP_FILESYSTEM_PATH: repoPath } });
  admin = new CairnClient({ url: server.url, token: tokens.admin });
  viewer = new CairnClient({ url: server.url, token: tokens.viewer });
});
afterAll(async () => {
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('GET /v1/backups/{id}/deletion-preview', () => {
  it('counts the chunks only this backup references, as a delete and prune then frees them', async () => {
    const file = join(work, 'preview.db');
    makeDb(file, 2000, 'base');
    const base = await admin.backups.create({ source: `sqlite://${file}`, id: 'p-1' }, { waitForCompletion: true });
    expect(base.state).toBe('SUCCESS');
    expect((await admin.backups.create({ source: `sqlite://${file}`, id: 'p-2' }, { waitForCompletion: true })).state).toBe('SUCCESS');
    // Same content twice: every chunk of p-1 is shared with p-2.
    const same = await viewer.backups.deletionPreview('p-1');
    expect(same.uniqueChunks).toBe(0);
    expect(same.uniqueStoredBytes).toBe(0);
    expect(same.sharedChunks).toBe(same.totalChunks);
    expect(same.totalChunks).toBeGreaterThan(0);

    makeDb(file, 20_000, 'more');
    expect((await admin.backups.create({ source: `sqlite://${file}`, id: 'p-3' }, { waitForCompletion: true })).state).toBe('SUCCESS');
    const preview = await viewer.backups.deletionPreview('p-3');
    expect(preview.id).toBe('p-3');
    expect(preview.uniqueChunks).toBeGreaterThan(0);
    expect(preview.uniqueStoredBytes).toBeGreaterThan(0);
    expect(preview.uniqueChunks + preview.sharedChunks).toBe(preview.totalChunks);
    expect(preview.note).toMatch(/prune/);

    const before = await repositoryStats(await Repository.open(new FileSystemStorage(repoPath)));
    await admin.backups.delete('p-3');
    const prune = await admin.prunes.create({ graceSeconds: 0 }, { waitForCompletion: true });
    expect(prune.state).toBe('SUCCESS');
    const after = await repositoryStats(await Repository.open(new FileSystemStorage(repoPath)));
    expect(before.uniqueChunks - after.uniqueChunks).toBe(preview.uniqueChunks);
    expect(before.uniqueStoredBytes - after.uniqueStoredBytes).toBe(preview.uniqueStoredBytes);

    const gone = await viewer.backups.deletionPreview('p-3').catch((e: unknown) => e as CairnApiError);
    expect(gone).toBeInstanceOf(CairnApiError);
    expect((gone as CairnApiError).status).toBe(404);
  }, 120_000);
});

describe('GET /v1/overview', () => {
  it('reports failing, late, never and ok sources in that order, sizes and history from the backups, and a broken repository with its error', async () => {
    // ok: the preview source (p-1, p-2 remain). late: a source whose newest backup is 3 h old
    // under an hourly schedule. never: a scheduled source without backups. failing: a backup
    // that failed (its database file is missing).
    const lateDb = join(work, 'late.db');
    makeDb(lateDb, 10, 'late');
    expect((await admin.backups.create({ source: `sqlite://${lateDb}`, id: 'late-1' }, { waitForCompletion: true })).state).toBe('SUCCESS');
    const repo = await Repository.open(new FileSystemStorage(repoPath));
    const m = await repo.readManifest('late-1');
    await repo.deleteBackup('late-1');
    const old = Date.now() - 3 * 3600_000;
    await repo.writeManifest({ ...m, createdAt: new Date(old).toISOString(), completedAt: new Date(old + 1500).toISOString() });
    await admin.schedules.create({ name: 'late-hourly', source: `sqlite://${lateDb}`, cron: '@hourly', timezone: 'UTC' });
    const neverDb = join(work, 'never.db');
    makeDb(neverDb, 10, 'never');
    await admin.schedules.create({ name: 'never-daily', source: `sqlite://${neverDb}`, cron: '0 3 * * *', timezone: 'Europe/Paris' });
    await admin.backups.create({ source: `sqlite://${join(work, 'missing.db')}` }, { waitForCompletion: true }).catch(() => undefined); // the job FAILS
    // A registered repository that is gone.
    const brokenPath = join(work, 'broken');
    await Repository.init(new FileSystemStorage(brokenPath));
    await admin.repositories.add('broken', brokenPath);
    rmSync(brokenPath, { recursive: true });
    // A registered source never backed up and named by no schedule: still listed, as never.
    const registeredDb = join(work, 'registered.db');
    makeDb(registeredDb, 10, 'registered');
    await admin.sources.add('fresh-src', `sqlite://${registeredDb}`);

    const o = await viewer.overview.get();
    expect(Date.parse(o.generatedAt)).toBeGreaterThan(Date.now() - 60_000);
    const byLocation = (suffix: string) => o.sources.find((s) => s.location.endsWith(suffix));
    const ok = byLocation('preview.db');
    const late = byLocation('late.db');
    const never = byLocation('never.db');
    const failing = byLocation('missing.db');
    expect([ok?.status, late?.status, never?.status, failing?.status]).toEqual(['ok', 'late', 'never', 'failing']);
    expect(o.sources.map((s) => s.status)).toEqual([...o.sources.map((s) => s.status)].sort((a, b) => ['failing', 'late', 'never', 'running', 'ok'].indexOf(a) - ['failing', 'late', 'never', 'running', 'ok'].indexOf(b)));
    expect(failing?.lastResult?.status).toBe('FAILED');
    expect(failing?.lastResult?.error?.code).toBeTruthy();
    expect(late?.schedules).toEqual([expect.objectContaining({ name: 'late-hourly', cron: '@hourly', enabled: true, intervalSeconds: 3600 })]);
    expect(late?.ageSeconds).toBeGreaterThan(3 * 3600 - 60);
    expect(never?.schedules[0]?.intervalSeconds).toBe(86_400);
    expect(never?.newest).toBeNull();
    expect(never?.backups).toBe(0);
    const registered = byLocation('registered.db');
    expect(registered).toMatchObject({ name: 'fresh-src', status: 'never', backups: 0, newest: null, lastResult: null, repository: 'default', addedBytes: 0 });

    // The ok source's numbers are its backups' (from the listing).
    const listed = (await viewer.backups.list()).filter((b): b is BackupListed => b.status === 'SUCCESS' && b.source.location === ok?.location);
    expect(ok?.backups).toBe(listed.length);
    expect(ok?.repository).toBe('default');
    expect(ok?.logicalBytes).toBe(listed.reduce((a, b) => a + b.size.logicalBytes, 0));
    expect(ok?.addedBytes).toBe(listed.reduce((a, b) => a + b.size.newBytes, 0));
    expect(ok).not.toHaveProperty('storedBytes');
    expect(ok?.history.map((h) => h.id)).toEqual(listed.map((b) => b.id));
    expect(ok?.newest?.id).toBe(listed.at(-1)?.id);
    expect(ok?.lastResult?.status).toBe('SUCCESS');

    const all = (await viewer.backups.list()).filter((b): b is BackupListed => b.status === 'SUCCESS');
    const def = o.repositories.find((r) => r.name === 'default');
    // A repository's stored bytes are what its storage holds (the packs under data/, as `cairn
    // stats` counts them), not Σ newBytes: p-3 was deleted and pruned, so they differ.
    const stats = await repositoryStats(await Repository.open(new FileSystemStorage(repoPath)));
    const logical = all.reduce((a, b) => a + b.size.logicalBytes, 0);
    expect(def).toMatchObject({ location: repoPath.startsWith('/') ? expect.stringContaining('repo') : expect.any(String), backups: all.length, logicalBytes: logical, storedBytes: stats.storedBytes });
    expect(stats.storedBytes).toBeGreaterThan(0);
    expect(def?.dedupRatio).toBe(Math.round((logical / stats.storedBytes) * 100) / 100);
    expect(def?.error).toBeUndefined();
    const broken = o.repositories.find((r) => r.name === 'broken');
    expect(broken?.error?.code).toBe('NOT_FOUND');
    expect(broken?.backups).toBe(0);
  }, 120_000);
});
