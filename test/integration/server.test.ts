/**
 * cairn server over HTTP: jobs for backups and restores of PostgreSQL and SQLite, the job
 * center, cancellation, one active backup per source, tokens and roles, malformed requests, and
 * a server killed with SIGKILL mid-backup.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteTokenStore } from '../../src/catalog/tokens.js';
import type { JobRecord } from '../../src/catalog/types.js';
import { prune } from '../../src/repo/prune.js';
import { Repository } from '../../src/repo/repository.js';
import { verifyBackups } from '../../src/repo/verify.js';
import { CairnApiError, CairnClient, JobFailedError } from '../../src/sdk/index.js';
import { catalogFile, startServer, type RunningServer } from '../../src/server/index.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { createDatabase, dropDatabase, ensurePostgres, loadChinook, pgUrl, pgbenchInit, psql } from '../helpers/postgres.js';

const CHINOOK_SQLITE = fileURLToPath(new URL('../../fixtures/chinook/chinook.sqlite', import.meta.url));
const CAIRN = fileURLToPath(new URL('../../bin/cairn.js', import.meta.url));

let work: string;
let dataDir: string;
let server: RunningServer;
let tokens: { admin: string; operator: string; viewer: string };
let chinookDb: string;
let benchDb: string;
const dropLater: string[] = [];

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies are checked field by field
async function call(method: string, path: string, token: string | undefined, body?: unknown, raw?: string): Promise<{ status: number; json: any }> {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined || raw !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(raw !== undefined ? { body: raw } : body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, json };
}

async function until(jobId: string, done: (j: JobRecord) => boolean, base = () => server.url, timeoutMs = 120_000): Promise<JobRecord> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await fetch(`${base()}/v1/jobs/${jobId}`, { headers: { authorization: `Bearer ${tokens.viewer}` } });
    const job = ((await res.json()) as { job: JobRecord }).job;
    if (done(job) || Date.now() > deadline) return job;
    await new Promise((r) => setTimeout(r, 50));
  }
}
const ended = (j: JobRecord): boolean => ['SUCCESS', 'FAILED', 'CANCELED'].includes(j.state);

/** The CLI in a child process, asynchronously: the server runs in this process and must keep answering. */
function cli(args: string[], options: { env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CAIRN, ...args], { env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function newRepo(name: string): string {
  const dir = join(work, name);
  return dir;
}
async function initRepo(name: string): Promise<Repository> {
  return Repository.init(new FileSystemStorage(newRepo(name)));
}

beforeAll(async () => {
  ensurePostgres();
  work = mkdtempSync(join(tmpdir(), 'cairn-server-'));
  dataDir = join(work, 'data');
  const store = new SqliteTokenStore(catalogFile(dataDir));
  tokens = { admin: store.create('admin').token, operator: store.create('operator').token, viewer: store.create('viewer').token };
  store.close();
  server = await startServer({ dataDir, port: 0, allowAdHocUrls: true });
  chinookDb = createDatabase('cairn_srv_chinook');
  loadChinook(chinookDb);
  benchDb = createDatabase('cairn_srv_bench');
  pgbenchInit(benchDb, 4); // a backup that takes long enough to be caught running
  dropLater.push(chinookDb, benchDb);
}, 180_000);

afterAll(async () => {
  await server?.close();
  for (const db of dropLater) dropDatabase(db);
  rmSync(work, { recursive: true, force: true });
});

describe.sequential('cairn server', () => {
  it('answers /healthz, /openapi.json and /metrics; refuses /v1 without a token (401)', async () => {
    expect((await call('GET', '/healthz', undefined)).status).toBe(200);
    const api = await call('GET', '/openapi.json', undefined);
    expect(api.json.openapi).toBe('3.1.0');
    expect(Object.keys(api.json.paths)).toEqual(expect.arrayContaining(['/v1/backups', '/v1/restores', '/v1/jobs/{id}/cancel']));
    expect((await call('GET', '/v1/jobs', undefined)).status).toBe(401);
    expect((await call('GET', '/v1/jobs', 'cairn_000000000000_nope')).status).toBe(401);
    const metrics = await fetch(`${server.url}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/cairn_http_requests_total \d+/);
  });

  it('refuses malformed requests with 400 and a message, and a viewer with 403', async () => {
    await initRepo('r-bad');
    const repo = newRepo('r-bad');
    const cases: [unknown, string | undefined, RegExp][] = [
      [undefined, '{not json', /not valid JSON/],
      [{ source: `sqlite://${CHINOOK_SQLITE}` }, undefined, /Give the repository .*no default one/],
      [{ source: `sqlite://${CHINOOK_SQLITE}`, repository: repo, bogus: 1 }, undefined, /unknown field "bogus"/],
      [{ source: `sqlite://${CHINOOK_SQLITE}`, repository: repo, include: ['a'], exclude: ['b'] }, undefined, /"include" or "exclude", not both/],
      [{ source: `sqlite://${CHINOOK_SQLITE}`, repository: repo, id: 'Bad Id!' }, undefined, /backup id/i],
      [{ source: 'mysql://nope', repository: repo }, undefined, /./],
    ];
    for (const [body, raw, message] of cases) {
      const r = await call('POST', '/v1/backups', tokens.operator, body, raw);
      expect(r.status, JSON.stringify(body ?? raw)).toBe(400);
      expect(r.json.error.message).toMatch(message);
    }
    const viewer = await call('POST', '/v1/backups', tokens.viewer, { source: `sqlite://${CHINOOK_SQLITE}`, repository: repo });
    expect(viewer.status).toBe(403);
    expect((await call('GET', '/v1/jobs/nope', tokens.viewer)).status).toBe(404);
  });

  it('backs up SQLite and PostgreSQL databases as jobs, polled to SUCCESS, listed with details', async () => {
    const repoDir = newRepo('r-main');
    await initRepo('r-main');
    const a = await call('POST', '/v1/backups', tokens.operator, { source: `sqlite://${CHINOOK_SQLITE}`, repository: repoDir, id: 'sqlite-1' });
    expect(a.status).toBe(202);
    expect(a.json.job.state).toBe('STARTED');
    const b = await call('POST', '/v1/backups', tokens.admin, { source: pgUrl(chinookDb, 'postgres', 'S3cret-pw'), repository: repoDir, id: 'pg-1', config: { compression: 'zstd', level: 'fastest', jobs: 2, packSizeMiB: 1 } });
    expect(b.status).toBe(202);
    expect(JSON.stringify(b.json)).not.toContain('S3cret-pw');
    const [ja, jb] = await Promise.all([until(a.json.job.id, ended), until(b.json.job.id, ended)]);
    expect(ja.state, JSON.stringify(ja.error)).toBe('SUCCESS');
    expect(jb.state, JSON.stringify(jb.error)).toBe('SUCCESS');
    expect(jb.progress.rows).toBeGreaterThan(15000);
    expect(JSON.stringify(jb)).not.toContain('S3cret-pw');
    // A viewer names registered repositories only (test/security/server.test.ts): an ad-hoc path needs an operator and --allow-urls.
    const list = await call('GET', `/v1/backups?repository=${encodeURIComponent(repoDir)}`, tokens.operator);
    expect(list.json.backups.map((x: { id: string }) => x.id).sort()).toEqual(['pg-1', 'sqlite-1']);
    const details = await call('GET', `/v1/backups/pg-1?repository=${encodeURIComponent(repoDir)}`, tokens.operator);
    expect(details.json.collections.find((c: { name: string }) => c.name === 'public.track').rowCount).toBe(3503);
    const jobs = await call('GET', '/v1/jobs?kind=backup&state=SUCCESS', tokens.viewer);
    expect(jobs.json.jobs.length).toBeGreaterThanOrEqual(2);
  }, 120_000);

  it('a second backup of a running source gets 409 naming the job; cancel → CANCELED, nothing visible, prune clean, verify passes', async () => {
    const repoDir = newRepo('r-cancel');
    const repo = await initRepo('r-cancel');
    const first = await call('POST', '/v1/backups', tokens.operator, { source: pgUrl(benchDb), repository: repoDir, config: { jobs: 1, level: 'best' } });
    expect(first.status).toBe(202);
    const second = await call('POST', '/v1/backups', tokens.operator, { source: pgUrl(benchDb), repository: repoDir });
    expect(second.status).toBe(409);
    expect(second.json.error.message).toContain(first.json.job.id);
    await until(first.json.job.id, (j) => j.state === 'TRANSFERRING' || ended(j));
    const cancel = await call('POST', `/v1/jobs/${first.json.job.id}/cancel`, tokens.operator);
    expect(cancel.status).toBe(202);
    const end = await until(first.json.job.id, ended);
    expect(end.state).toBe('CANCELED');
    expect(await repo.listBackupIds()).toEqual([]);
    const listed = await call('GET', `/v1/backups?repository=${encodeURIComponent(repoDir)}&status=CANCELED`, tokens.operator);
    expect(listed.json.backups.map((x: { jobId: string }) => x.jobId)).toEqual([first.json.job.id]);
    expect((await call('GET', `/v1/backups?repository=${encodeURIComponent(repoDir)}&status=SUCCESS`, tokens.operator)).json.backups).toEqual([]);
    expect((await call('GET', `/v1/backups?repository=${encodeURIComponent(repoDir)}&status=nope`, tokens.operator)).status).toBe(400);
    await prune(repo, { unindexedGraceMs: 0 }); // the cancelled backup's packs are young and unindexed
    const dataDir = join(repoDir, 'data');
    const dataFiles = existsSync(dataDir) ? readdirSync(dataDir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()) : [];
    expect(dataFiles).toEqual([]);
    expect((await verifyBackups(repo, [])).problems).toEqual([]);
  }, 120_000);

  it('restores with a rename as a job, and streams its progress as server-sent events', async () => {
    const repoDir = newRepo('r-main');
    const target = createDatabase('cairn_srv_restored');
    dropDatabase(target);
    dropLater.push(target);
    const r = await call('POST', '/v1/restores', tokens.operator, { backup: 'pg-1', repository: repoDir, target: pgUrl(target), renames: { 'public.album': 'public.album2' } });
    expect(r.status).toBe(202);
    const events = await fetch(`${server.url}/v1/jobs/${r.json.job.id}/events`, { headers: { authorization: `Bearer ${tokens.viewer}` } }).then((x) => x.text());
    const states = [...events.matchAll(/"state":"([A-Z]+)"/g)].map((m) => m[1]);
    expect(states.at(-1)).toBe('SUCCESS');
    expect(states).toContain('FINALIZING'); // the switch-in, which cannot be cancelled
    expect(psql(target, 'SELECT count(*) FROM public.album2').trim()).toBe('347');
    expect(psql(target, "SELECT to_regclass('public.album') IS NULL").trim()).toBe('t');
  }, 120_000);
});

describe.sequential('one job per database', () => {
  it('a restore into a database being backed up gets 409 naming the backup job, whatever URL spells it; then it runs', async () => {
    const repoDir = newRepo('r-main'); // holds pg-1 (Chinook)
    const backup = await call('POST', '/v1/backups', tokens.operator, { source: pgUrl(benchDb), repository: repoDir, config: { jobs: 1, level: 'best' } });
    expect(backup.status).toBe(202);
    const jobId = backup.json.job.id as string;
    for (const spelling of [pgUrl(benchDb), `postgres://someone@localhost:5432/${benchDb}`]) {
      const restore = await call('POST', '/v1/restores', tokens.operator, { backup: 'pg-1', repository: repoDir, target: spelling, onConflict: 'overwrite' });
      expect(restore.status, JSON.stringify(restore.json)).toBe(409);
      expect(restore.json.error.message).toContain(jobId);
      expect(restore.json.error.message).toMatch(/one job at a time per database/);
    }
    await call('POST', `/v1/jobs/${jobId}/cancel`, tokens.operator);
    expect(['CANCELED', 'SUCCESS']).toContain((await until(jobId, ended)).state);
    // a restore holds its target the same way: a backup of it waits its turn
    const target = createDatabase('cairn_srv_one_job');
    dropLater.push(target);
    const restore = await call('POST', '/v1/restores', tokens.operator, { backup: 'pg-1', repository: repoDir, target: pgUrl(target), onConflict: 'overwrite' });
    expect(restore.status).toBe(202);
    const during = await call('POST', '/v1/backups', tokens.operator, { source: `postgres://postgres@localhost:5432/${target}`, repository: repoDir });
    expect(during.status).toBe(409);
    expect(during.json.error.message).toContain(restore.json.job.id);
    expect((await until(restore.json.job.id, ended)).state).toBe('SUCCESS');
    const after = await call('POST', '/v1/backups', tokens.operator, { source: pgUrl(target), repository: repoDir });
    expect(after.status).toBe(202);
    expect((await until(after.json.job.id, ended)).state).toBe('SUCCESS');
  }, 120_000);
});

describe.sequential('copy, verify, delete and prune as jobs', () => {
  it('copies a backup to another repository, verifies it, deletes it and prunes the space', async () => {
    const from = newRepo('r-main');
    const to = newRepo('r-copy');
    await initRepo('r-copy');
    const copy = await call('POST', '/v1/copies', tokens.operator, { backup: 'pg-1', from, to });
    expect(copy.status).toBe(202);
    const copied = await until(copy.json.job.id, ended);
    expect(copied.state, JSON.stringify(copied.error)).toBe('SUCCESS');
    expect(copied.result?.chunksCopied).toBeGreaterThan(0);
    const verify = await call('POST', '/v1/verifications', tokens.operator, { repository: to, readData: true });
    const verified = await until(verify.json.job.id, ended);
    expect(verified.state, JSON.stringify(verified.error)).toBe('SUCCESS');
    expect(verified.result?.backups).toEqual(['pg-1']);
    // One foreign object and one unreadable manifest under backups/: the list still answers,
    // naming them apart; a verification fails naming them; neither quotes what the objects hold.
    writeFileSync(join(to, 'backups', 'Not An Id'), 'SECRET-CONTENT-1');
    writeFileSync(join(to, 'backups', 'broken'), 'SECRET-CONTENT-2');
    const listed = await call('GET', `/v1/backups?repository=${encodeURIComponent(to)}`, tokens.operator); // a path: operators only
    expect(listed.status, JSON.stringify(listed.json)).toBe(200);
    expect(listed.json.backups.map((b: { id: string }) => b.id)).toEqual(['pg-1']);
    expect(listed.json.damaged.map((d: { id: string }) => d.id).sort()).toEqual(['Not An Id', 'broken']);
    expect(JSON.stringify(listed.json)).not.toContain('SECRET-CONTENT');
    const failing = await until((await call('POST', '/v1/verifications', tokens.operator, { repository: to })).json.job.id, ended);
    expect(failing.state).toBe('FAILED');
    expect(failing.error?.message).toContain('backups/broken');
    expect(JSON.stringify(failing)).not.toContain('SECRET-CONTENT');
    rmSync(join(to, 'backups', 'Not An Id'));
    rmSync(join(to, 'backups', 'broken'));
    expect((await call('DELETE', `/v1/backups/pg-1?repository=${encodeURIComponent(to)}`, tokens.viewer)).status).toBe(403);
    expect((await call('DELETE', `/v1/backups/pg-1?repository=${encodeURIComponent(to)}`, tokens.operator)).status).toBe(200);
    const pruneJob = await call('POST', '/v1/prunes', tokens.operator, { repository: to, graceSeconds: 0 });
    const pruned = await until(pruneJob.json.job.id, ended);
    expect(pruned.state, JSON.stringify(pruned.error)).toBe('SUCCESS');
    expect(pruned.result?.packsDeleted).toBeGreaterThan(0);
    expect((await call('POST', '/v1/copies', tokens.operator, { backup: 'nope', from, to })).status).toBe(404);
  }, 120_000);
});

describe.sequential('the CLI through a server (--server / CAIRN_SERVER)', () => {
  it('prints the same results as in-process; --no-wait prints the job id; job wait/show; errors keep their exit codes', async () => {
    const repoDir = newRepo('r-cli');
    await initRepo('r-cli');
    const env = { CAIRN_SERVER: server.url, CAIRN_TOKEN: tokens.operator, CAIRN_REPO: '' };
    const created = await cli(['backup', 'create', '--source', `sqlite://${CHINOOK_SQLITE}`, '--repo', repoDir, '--id', 'cli-1'], { env });
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toMatch(/^Backup cli-1 created in .*\n {2}source .*\n {2}snapshot at .*\n {2}collections {2}11, 15,607 rows/);
    const queued = await cli(['backup', 'create', '--source', `sqlite://${CHINOOK_SQLITE}`, '--repo', repoDir, '--id', 'cli-2', '--no-wait'], { env });
    expect(queued.code, queued.stderr).toBe(0);
    const jobId = queued.stdout.trim();
    expect(jobId).toMatch(/^backup-[0-9a-f]+$/);
    const waited = await cli(['job', 'wait', jobId], { env });
    expect(waited.code, waited.stderr).toBe(0);
    expect(waited.stdout).toContain('SUCCESS');
    expect((await cli(['job', 'show', jobId, '--json'], { env })).stdout).toContain('"backupId": "cli-2"');
    const restored = join(work, 'cli-restored.sqlite');
    const r = await cli(['restore', 'cli-1', '--repo', repoDir, '--to', `sqlite://${restored}`, '--rename', 'Album=Album2'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Restored backup cli-1 into sqlite:.* 11 collections, 15,607 rows\./);
    const missing = await cli(['restore', 'nope', '--repo', repoDir, '--to', `sqlite://${restored}`], { env });
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/not found/);
    expect((await cli(['backup', 'create', '--source', `sqlite://${CHINOOK_SQLITE}`, '--repo', repoDir], { env: { ...env, CAIRN_TOKEN: tokens.viewer } })).code).toBe(2);
    expect((await cli(['backup', 'create', '--source', `sqlite://${CHINOOK_SQLITE}`, '--repo', repoDir, '--no-wait'], { env: { CAIRN_SERVER: '' } })).stderr).toMatch(/--no-wait needs a server/);
  }, 120_000);
});

describe.sequential('registered sources and repositories', () => {
  it('registers by name (admin only), never shows a source password, backs up by names, and removing keeps the data', async () => {
    const repoDir = newRepo('r-named');
    await initRepo('r-named');
    const secret = 'Reg1stered-S3cret';
    expect((await call('POST', '/v1/sources', tokens.operator, { name: 'shop', url: pgUrl(chinookDb, 'postgres', secret) })).status).toBe(403);
    const src = await call('POST', '/v1/sources', tokens.admin, { name: 'shop', url: pgUrl(chinookDb, 'postgres', secret) });
    expect(src.status).toBe(201);
    expect(JSON.stringify(src.json)).not.toContain(secret);
    expect((await call('POST', '/v1/sources', tokens.admin, { name: 'shop', url: pgUrl(chinookDb) })).status).toBe(409);
    expect((await call('POST', '/v1/sources', tokens.admin, { name: 'Bad Name', url: pgUrl(chinookDb) })).status).toBe(400);
    expect((await call('POST', '/v1/repositories', tokens.admin, { name: 'nowhere', url: join(work, 'not-initialised') })).status).toBe(404);
    expect((await call('POST', '/v1/repositories', tokens.admin, { name: 'named', url: repoDir })).status).toBe(201);
    const listed = await call('GET', '/v1/sources', tokens.viewer);
    expect(listed.json.sources.map((x: { name: string }) => x.name)).toEqual(['shop']);
    expect(JSON.stringify(listed.json)).not.toContain(secret);
    expect(statSync(catalogFile(dataDir)).mode & 0o777).toBe(0o600); // it holds the source's password
    const b = await call('POST', '/v1/backups', tokens.operator, { source: 'shop', repository: 'named', id: 'by-name' });
    expect(b.status).toBe(202);
    const done = await until(b.json.job.id, ended);
    expect(done.state, JSON.stringify(done.error)).toBe('SUCCESS');
    expect(JSON.stringify(done)).not.toContain(secret);
    expect((await call('POST', '/v1/backups', tokens.operator, { source: 'unknown', repository: 'named' })).status).toBe(404);
    expect((await call('DELETE', '/v1/repositories/named', tokens.admin)).status).toBe(200);
    expect((await call('DELETE', '/v1/sources/shop', tokens.admin)).status).toBe(200);
    expect((await call('DELETE', '/v1/sources/shop', tokens.admin)).status).toBe(404);
    expect(await (await Repository.open(new FileSystemStorage(repoDir))).listBackupIds()).toEqual(['by-name']);
  }, 120_000);
});

describe.sequential('the TypeScript SDK', () => {
  it('backups.create with waitForCompletion returns the final job; a failing job throws JobFailedError; API errors are typed', async () => {
    const cairn = new CairnClient({ url: server.url, token: tokens.operator });
    const repoDir = newRepo('r-sdk');
    await initRepo('r-sdk');
    const job = await cairn.backups.create({ source: `sqlite://${CHINOOK_SQLITE}`, repository: repoDir, id: 'sdk-1' }, { waitForCompletion: true, pollMs: 50 });
    expect(job.state).toBe('SUCCESS');
    expect(job.result?.backupId).toBe('sdk-1');
    expect((await cairn.backups.list({ repository: repoDir })).map((b) => b.id)).toEqual(['sdk-1']);
    const missing = pgUrl('cairn_no_such_database_here');
    const err = await cairn.backups.create({ source: missing, repository: repoDir }, { waitForCompletion: true, pollMs: 50 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JobFailedError);
    expect((err as JobFailedError).job.state).toBe('FAILED');
    expect((err as JobFailedError).code).toBe('NOT_FOUND');
    const denied = await new CairnClient({ url: server.url, token: tokens.viewer }).backups.create({ source: `sqlite://${CHINOOK_SQLITE}`, repository: repoDir }).catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(CairnApiError);
    expect((denied as CairnApiError).status).toBe(403);
    const restored = join(work, 'sdk-restored.sqlite');
    const r = await cairn.restores.create({ backup: 'sdk-1', repository: repoDir, target: `sqlite://${restored}` }, { waitForCompletion: true, pollMs: 50 });
    expect(r.result?.rows).toBe(job.result ? (job.result.totals as { rows: number }).rows : -1);
  }, 60_000);
});

describe.sequential('a server killed with SIGKILL during a backup', () => {
  it('reads the job as FAILED (interrupted) after a restart; the repository verifies; a new backup succeeds', async () => {
    const dir = join(work, 'killed');
    const repoDir = newRepo('r-killed');
    const repo = await initRepo('r-killed');
    const start = async (): Promise<{ child: ChildProcess; url: string }> => {
      const child = spawn(process.execPath, [CAIRN, 'server', '--listen', '127.0.0.1:0', '--data-dir', dir, '--allow-urls'], { stdio: ['ignore', 'pipe', 'pipe'] });
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stderr?.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /listening on (http:\/\/[\d.]+:\d+)/.exec(out);
          if (m?.[1]) resolve(m[1]);
        });
        child.once('exit', (code) => reject(new Error(`server exited (${code}): ${out}`)));
      });
      return { child, url };
    };
    const store = new SqliteTokenStore(catalogFile(dir));
    const op = store.create('operator').token;
    store.close();
    const second = await start();
    const post = await fetch(`${second.url}/v1/backups`, {
      method: 'POST',
      headers: { authorization: `Bearer ${op}`, 'content-type': 'application/json' },
      body: JSON.stringify({ source: pgUrl(benchDb), repository: repoDir, config: { jobs: 1, level: 'best' } }),
    });
    expect(post.status).toBe(202);
    const jobId = ((await post.json()) as { job: JobRecord }).job.id;
    const poll = async (url: string, id: string, done: (j: JobRecord) => boolean): Promise<JobRecord> => {
      for (const deadline = Date.now() + 60_000; ; ) {
        const j = ((await (await fetch(`${url}/v1/jobs/${id}`, { headers: { authorization: `Bearer ${op}` } })).json()) as { job: JobRecord }).job;
        if (done(j) || Date.now() > deadline) return j;
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    expect((await poll(second.url, jobId, (j) => j.state === 'TRANSFERRING' || ended(j))).state).toBe('TRANSFERRING');
    second.child.kill('SIGKILL');
    await new Promise((r) => second.child.once('exit', r));

    const third = await start();
    try {
      const after = await poll(third.url, jobId, () => true);
      expect(after.state).toBe('FAILED');
      expect(after.error?.code).toBe('INTERRUPTED');
      expect(await repo.listBackupIds()).toEqual([]);
      expect((await verifyBackups(repo, await repo.listManifests())).problems).toEqual([]);
      const again = await fetch(`${third.url}/v1/backups`, {
        method: 'POST',
        headers: { authorization: `Bearer ${op}`, 'content-type': 'application/json' },
        body: JSON.stringify({ source: pgUrl(benchDb), repository: repoDir, id: 'after-kill' }),
      });
      expect(again.status).toBe(202);
      const id = ((await again.json()) as { job: JobRecord }).job.id;
      const done = await poll(third.url, id, ended);
      expect(done.state, JSON.stringify(done.error)).toBe('SUCCESS');
      expect(await repo.listBackupIds()).toEqual(['after-kill']);
      await prune(repo);
      expect((await verifyBackups(repo, await repo.listManifests(), { readData: true })).problems).toEqual([]);
    } finally {
      third.child.kill('SIGTERM');
      await new Promise((r) => third.child.once('exit', r));
    }
  }, 180_000);
});

describe.sequential('two cairn servers on one data dir', () => {
  it('the second refuses to start, naming the first one\'s pid and the folder; the first one\'s running job ends SUCCESS, not INTERRUPTED', async () => {
    const dir = join(work, 'shared-data');
    const repoDir = newRepo('r-two');
    const repo = await initRepo('r-two');
    const store = new SqliteTokenStore(catalogFile(dir));
    const op = store.create('operator').token;
    store.close();
    const first = spawn(process.execPath, [CAIRN, 'server', '--listen', '127.0.0.1:0', '--data-dir', dir, '--allow-urls'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        first.stderr?.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /listening on (http:\/\/[\d.]+:\d+)/.exec(out);
          if (m?.[1]) resolve(m[1]);
        });
        first.once('exit', (code) => reject(new Error(`server exited (${code}): ${out}`)));
      });
      const post = await fetch(`${url}/v1/backups`, {
        method: 'POST',
        headers: { authorization: `Bearer ${op}`, 'content-type': 'application/json' },
        body: JSON.stringify({ source: pgUrl(benchDb), repository: repoDir, id: 'while-second-starts', config: { jobs: 1, level: 'best' } }),
      });
      expect(post.status).toBe(202);
      const jobId = ((await post.json()) as { job: JobRecord }).job.id;
      const get = async (): Promise<JobRecord> => ((await (await fetch(`${url}/v1/jobs/${jobId}`, { headers: { authorization: `Bearer ${op}` } })).json()) as { job: JobRecord }).job;
      const second = await cli(['server', '--listen', '127.0.0.1:0', '--data-dir', dir]);
      expect(second.code).toBe(5);
      expect(second.stderr).toContain(`The data folder ${dir} is in use by cairn server (pid ${first.pid} `);
      expect(second.stderr).toContain(`listening on ${url}`);
      // the refusal came while the job ran: a second server must not have touched it
      expect(['STARTED', 'TRANSFERRING', 'TRANSFERRED', 'FINALIZING']).toContain((await get()).state);
      // an in-process run-now on that folder is refused the same way, pointing at the server
      const runNow = await cli(['schedule', 'run-now', 'any', '--data-dir', dir], { env: { CAIRN_SERVER: '' } });
      expect(runNow.code).toBe(5);
      expect(runNow.stderr).toMatch(/in use by cairn server .*--server http:/);
      expect((await get()).state).not.toBe('FAILED');
      let job = await get();
      for (const deadline = Date.now() + 120_000; !ended(job) && Date.now() < deadline; job = await get()) await new Promise((r) => setTimeout(r, 100));
      expect(job.state, JSON.stringify(job.error)).toBe('SUCCESS');
      expect(await repo.listBackupIds()).toEqual(['while-second-starts']);
    } finally {
      first.kill('SIGTERM');
      await new Promise((r) => (first.exitCode !== null ? r(null) : first.once('exit', r)));
    }
    // once it has stopped, the folder is free: a server starts on it, even over the holder
    // record a killed server leaves behind (the lock itself is the kernel's, gone with it)
    writeFileSync(join(dir, 'server.lock'), JSON.stringify({ command: 'cairn server', pid: 2 ** 22 + 1, host: 'elsewhere', startedAt: '2020-01-01T00:00:00.000Z' }));
    const next = await startServer({ dataDir: dir, port: 0, allowAdHocUrls: true });
    expect(JSON.parse(readFileSync(join(dir, 'server.lock'), 'utf8'))).toMatchObject({ pid: process.pid, url: next.url });
    expect(next.interrupted).toBe(0);
    await next.close();
  }, 180_000);
});
