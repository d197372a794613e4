/**
 * Issue 19 part B: GET /v1/backups from the per-backup summary cache, over a real server, a real
 * repository and the real CLI. A random sequence of backups (API and CLI), deletions and expiry
 * changes (API and CLI, and manifests written by another writer) is checked after every step
 * against the repository itself (reading every manifest) and a model: the listing never shows a
 * backup that is gone nor hides one that exists, and shows each one's current expiry. Paging,
 * sorting and filters over HTTP; the cache survives a restart and still sees changes made while
 * the server was down.
 */
import Database from '../../src/sources/sqlite/driver.js';
import { mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteTokenStore } from '../../src/catalog/tokens.js';
import { Repository } from '../../src/repo/repository.js';
import { CairnClient, type BackupListed, type BackupPage } from '../../src/sdk/index.js';
import { catalogFile, startServer, type RunningServer } from '../../src/server/index.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { readAnswer } from '../helpers/api.js';
import { cairnRun } from '../helpers/cli.js';

let work: string;
let dataDir: string;
let repoPath: string;
let source: string;
let server: RunningServer;
let tokens: { operator: string; viewer: string };
let operator: CairnClient;
let viewer: CairnClient;

const env = (): NodeJS.ProcessEnv => ({ BACKUP_FILESYSTEM_PATH: repoPath });

async function start(): Promise<void> {
  server = await startServer({ dataDir, port: 0, allowAdHocUrls: true, scheduleTickMs: 3600_000, env: env() });
  operator = new CairnClient({ url: server.url, token: tokens.operator });
  viewer = new CairnClient({ url: server.url, token: tokens.viewer });
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'cairn-list-paging-'));
  dataDir = join(work, 'data');
  const store = new SqliteTokenStore(catalogFile(dataDir));
  tokens = { operator: store.create('operator').token, viewer: store.create('viewer').token };
  store.close();
  repoPath = join(work, 'repo');
  await Repository.init(new FileSystemStorage(repoPath));
  source = join(work, 'small.db');
  const db = new Database(source);
  db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES ('a'), ('b'), ('c');");
  db.close();
  await start();
});
afterAll(async () => {
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});

/** What the repository holds, read the slow way: id → expiresAt. */
async function truth(): Promise<Map<string, string | null>> {
  const repo = await Repository.open(new FileSystemStorage(repoPath));
  const all = await repo.readAllManifests();
  expect(all.damaged).toEqual([]);
  return new Map(all.manifests.map((m) => [m.id, m.expiresAt]));
}

/** Every complete backup through the API, fetched in pages of `size`, newest first. */
async function listedInPages(size: number): Promise<BackupListed[]> {
  const out: BackupListed[] = [];
  for (let offset = 0; ; offset += size) {
    const page = await viewer.backups.listPage({ status: 'SUCCESS', sort: 'createdAt', order: 'desc', limit: size, offset });
    out.push(...(page.backups as BackupListed[]));
    if (offset + size >= page.total) break;
  }
  return out;
}

let backdated = 0;
/**
 * Manifests written in the last minute get a modified time a day ago (each a distinct one), as
 * if written long before: their rows then settle and later listings use them, so the steps test
 * the cache (a rewrite gets a new modified time, which the cache must notice).
 */
function backdate(): void {
  const dir = join(repoPath, 'backups');
  for (const name of readdirSync(dir)) {
    const file = join(dir, name);
    if (statSync(file).mtimeMs > Date.now() - 60_000) {
      const t = new Date(Date.now() - 86_400_000 + ++backdated * 1000);
      utimesSync(file, t, t);
    }
  }
}

/** When each cached row was read (catalog rows), to count the rows a listing did not read again. */
function readTimes(): Map<string, number> {
  const db = new Database(catalogFile(dataDir), { readonly: true });
  try {
    return new Map((db.prepare('SELECT id, read_at_ms FROM backup_summaries').all() as { id: string; read_at_ms: number }[]).map((r) => [r.id, r.read_at_ms]));
  } finally {
    db.close();
  }
}
let cacheHits = 0;

async function check(model: Map<string, string | null>, step: string): Promise<void> {
  const before = readTimes();
  backdate();
  const real = await truth();
  expect([...real].sort(), `repository vs model after ${step}`).toEqual([...model].sort());
  const all = (await viewer.backups.list()).filter((b): b is BackupListed => b.status === 'SUCCESS');
  expect(all.map((b) => [b.id, b.expiresAt]).sort(), `listing after ${step}`).toEqual([...model].sort());
  const paged = await listedInPages(3);
  expect(paged.map((b) => [b.id, b.expiresAt]).sort(), `paged listing after ${step}`).toEqual([...model].sort());
  expect(paged.map((b) => b.createdAt)).toEqual([...paged.map((b) => b.createdAt)].sort().reverse());
  for (const [id, at] of readTimes()) if (before.get(id) === at) cacheHits++;
}

/** Deterministic pseudo-random numbers. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

describe('GET /v1/backups with the summary cache', () => {
  it('equals reading every manifest after each of a random sequence of backups, deletions and expiry changes (API, CLI, another writer)', async () => {
    const r = rng(1919);
    const model = new Map<string, string | null>();
    const pick = (): string | undefined => [...model.keys()][Math.floor(r() * model.size)];
    let n = 0;
    const cliEnv = { CAIRN_REPO: '', CAIRN_SERVER: '', BACKUP_FILESYSTEM_PATH: repoPath };
    const steps = ['api-backup', 'cli-backup', 'writer', 'writer', 'api-delete', 'cli-delete', 'api-expiry', 'cli-expiry', 'cli-expiry', 'writer-expiry'];
    for (let i = 0; i < 30; i++) {
      const op = i < 3 ? (['api-backup', 'cli-backup', 'writer'] as const)[i] : steps[Math.floor(r() * steps.length)];
      const id = `b-${++n}`;
      const target = pick();
      const date = `2027-0${1 + Math.floor(r() * 9)}-1${Math.floor(r() * 10)}`;
      switch (op) {
        case 'api-backup': {
          const job = await operator.backups.create({ source: `sqlite://${source}`, id }, { waitForCompletion: true });
          expect(job.state).toBe('SUCCESS');
          model.set(id, null);
          break;
        }
        case 'cli-backup': {
          const res = await cairnRun(['backup', 'create', '--source', `sqlite://${source}`, '--repo', repoPath, '--id', id, '--json'], cliEnv);
          expect(res.code, res.stderr).toBe(0);
          model.set(id, null);
          break;
        }
        case 'writer': {
          // Another process's writer: a copy of an existing backup's manifest under a new id.
          const repo = await Repository.open(new FileSystemStorage(repoPath));
          const from = [...(await truth()).keys()][0];
          if (!from) break;
          const m = await repo.readManifest(from);
          await repo.writeManifest({ ...m, id, createdAt: new Date(Date.UTC(2026, 0, 1 + n)).toISOString() });
          model.set(id, m.expiresAt);
          break;
        }
        case 'api-delete':
        case 'cli-delete': {
          if (!target) break;
          if (op === 'api-delete') await operator.backups.delete(target);
          else expect((await cairnRun(['backup', 'delete', target, '--repo', repoPath, '--json'], cliEnv)).code).toBe(0);
          model.delete(target);
          break;
        }
        case 'api-expiry':
        case 'cli-expiry': {
          if (!target) break;
          const expires = r() < 0.25 ? 'never' : date;
          if (op === 'api-expiry') await operator.backups.setExpiry(target, expires);
          else {
            const res = await cairnRun(['backup', 'set-expiry', target, expires, '--repo', repoPath, '--json'], cliEnv);
            expect(res.code, res.stderr).toBe(0);
          }
          model.set(target, expires === 'never' ? null : new Date(`${date}T00:00:00Z`).toISOString());
          break;
        }
        case 'writer-expiry': {
          if (!target) break;
          const repo = await Repository.open(new FileSystemStorage(repoPath));
          const m = await repo.readManifest(target);
          m.expiresAt = new Date(Date.UTC(2028, 0, 1 + n)).toISOString();
          await repo.updateManifest(m);
          model.set(target, m.expiresAt);
          break;
        }
      }
      await check(model, `step ${i} (${op})`);
    }
    expect(model.size).toBeGreaterThan(2);
    // Most rows were served from the cache, not read again.
    expect(cacheHits).toBeGreaterThan(30);
  }, 240_000);

  it('keeps the cache across a restart and still sees what changed while the server was down', async () => {
    const before = (await viewer.backups.list()).filter((b): b is BackupListed => b.status === 'SUCCESS');
    await server.close();
    const rows = new Database(catalogFile(dataDir), { readonly: true }).prepare('SELECT id FROM backup_summaries').all() as { id: string }[];
    expect(rows.map((x) => x.id).sort()).toEqual(before.map((b) => b.id).sort());
    // While it is down: one backup deleted, one expiry changed by the CLI.
    const cliEnv = { CAIRN_REPO: '', CAIRN_SERVER: '', BACKUP_FILESYSTEM_PATH: repoPath };
    const [gone, changed] = before.map((b) => b.id);
    const del = await cairnRun(['backup', 'delete', gone as string, '--repo', repoPath], cliEnv);
    expect(del.code, del.stderr).toBe(0);
    const exp = await cairnRun(['backup', 'set-expiry', changed as string, '2031-05-05', '--repo', repoPath], cliEnv);
    expect(exp.code, exp.stderr).toBe(0);
    await start();
    const after = (await viewer.backups.list()).filter((b): b is BackupListed => b.status === 'SUCCESS');
    expect(after.map((b) => b.id).sort()).toEqual(before.map((b) => b.id).filter((id) => id !== gone).sort());
    expect(after.find((b) => b.id === changed)?.expiresAt).toBe('2031-05-05T00:00:00.000Z');
  }, 60_000);

  it('pages, sorts and filters over HTTP; unfinished backups take part; bad parameters are 400 naming them', async () => {
    // A failed backup job (a source that does not exist) is an unfinished backup of this repository.
    const failed = await operator.backups.create({ source: `sqlite://${join(work, 'missing.db')}`, id: 'failed-one' }, { waitForCompletion: true }).catch(() => undefined);
    const all: BackupPage = await viewer.backups.listPage();
    expect(all.limit).toBeNull();
    expect(all.offset).toBe(0);
    expect(all.total).toBe(all.backups.length);
    const complete = all.backups.filter((b): b is BackupListed => b.status === 'SUCCESS');
    // Without new parameters: the old order (complete oldest first, then unfinished).
    expect(complete.map((b) => b.createdAt)).toEqual([...complete.map((b) => b.createdAt)].sort());
    if (failed) expect(all.backups.some((b) => b.status === 'FAILED' && b.id === 'failed-one')).toBe(true);
    for (const b of complete) {
      expect(b.repository).toBe(all.repository);
      expect(b.durationMs).toBe(Date.parse(b.completedAt) - Date.parse(b.createdAt));
      expect(b.schedule).toBeNull();
    }

    const bySize = await viewer.backups.listPage({ sort: 'logicalBytes', order: 'desc', limit: 2, offset: 1 });
    expect(bySize.total).toBe(all.total);
    expect(bySize.limit).toBe(2);
    expect(bySize.offset).toBe(1);
    // Unfinished backups have no size: last in either order.
    const sizes: (number | null)[] = [...complete.map((b) => b.size.logicalBytes).sort((a, b) => b - a), ...all.backups.filter((b) => b.status !== 'SUCCESS').map(() => null)];
    expect(bySize.backups.map((b) => ('size' in b ? b.size.logicalBytes : null))).toEqual(sizes.slice(1, 3));

    const newest = complete.reduce((a, b) => (a.createdAt > b.createdAt ? a : b));
    const since = await viewer.backups.listPage({ since: newest.createdAt, status: 'SUCCESS' });
    expect(since.backups.map((b) => b.id)).toEqual([newest.id]);
    const until = await viewer.backups.listPage({ until: '2026-01-01', status: 'SUCCESS' });
    expect(until.total).toBe(complete.filter((b) => b.createdAt < '2026-01-02').length);
    expect((await viewer.backups.listPage({ type: 'scheduled' })).total).toBe(0);
    expect((await viewer.backups.listPage({ type: 'manual', status: 'SUCCESS' })).total).toBe(complete.length);
    expect((await viewer.backups.listPage({ source: 'nope' })).total).toBe(0);

    for (const [q, name] of [
      ['limit=0', 'limit'],
      ['limit=1001', 'limit'],
      ['offset=-1', 'offset'],
      ['sort=size', 'sort'],
      ['order=up', 'order'],
      ['since=yesterday', 'since'],
      ['type=auto', 'type'],
    ] as const) {
      const res = await readAnswer(await fetch(`${server.url}/v1/backups?${q}`, { headers: { authorization: `Bearer ${tokens.viewer}` } }));
      expect(res.status, q).toBe(400);
      expect(res.json.error.message, q).toContain(name);
    }
  }, 60_000);

  it('filters by a registered source name whose database has another name, and by any spelling of its location (trial: ?source=pgbig listed nothing)', async () => {
    // The file is small.db (database name "small"); registered as "appdb"; a symlink is another spelling.
    const link = join(work, 'alias.db');
    symlinkSync(source, link);
    const add = await cairnRun(['source', 'add', 'appdb', `sqlite://${link}`, '--data-dir', dataDir], env());
    expect(add.code, add.stderr).toBe(0);
    const viaName = await operator.backups.create({ source: 'appdb' }, { waitForCompletion: true });
    expect(viaName.state).toBe('SUCCESS');
    const all = (await viewer.backups.listPage({ status: 'SUCCESS' })).backups as BackupListed[];
    // Every backup of that database, made through the URL or the name.
    const ofDatabase = all.filter((b) => b.source.name === 'small' || b.source.name === 'alias').map((b) => b.id).sort();
    expect(ofDatabase.length).toBeGreaterThan(1);
    for (const spelling of ['appdb', `sqlite://${link}`, `sqlite://${join(work, '.', 'small.db')}`]) {
      const page = await viewer.backups.listPage({ status: 'SUCCESS', source: spelling });
      expect((page.backups as BackupListed[]).map((b) => b.id).sort(), spelling).toEqual(ofDatabase);
    }
    // A bare database name still matches as before; a registered name of nothing matches nothing.
    expect((await viewer.backups.listPage({ source: 'nope' })).total).toBe(0);
  }, 60_000);
});
