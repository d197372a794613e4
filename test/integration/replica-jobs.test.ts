/**
 * Several cairn servers on one shared PostgreSQL job catalog (issue 21): two in-process servers,
 * each with its own data folder, on one scratch catalog database. One active backup per source
 * across replicas (409 naming the other's job, a unique index under an insert race), cancel and
 * event streams through the replica that does not run the job, and leases: a replica cut off
 * from the catalog has its job failed INTERRUPTED by the other, and its own job stops with
 * LEASE_LOST without writing a manifest.
 *
 * `cairn servers` runs the built CLI (npm run build first).
 *
 * Tokens live in the shared catalog: one set, made there before the replicas start, works on both.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresJobCatalog } from '../../src/catalog/postgres.js';
import { openSharedCatalog } from '../../src/catalog/shared.js';
import { SqliteTokenStore } from '../../src/catalog/tokens.js';
import { MIGRATIONS, migrate } from '../../src/catalog/pg-migrations.js';
import { ConflictError, NotFoundError } from '../../src/core/errors.js';
import { JobCenter, JobConflictError, type JobContext } from '../../src/jobs/job-center.js';
import type { JobRecord } from '../../src/jobs/ports.js';
import { Repository } from '../../src/repo/repository.js';
import { CairnClient } from '../../src/sdk/index.js';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { createLogger } from '../../src/server/log.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { serverWork, waitJob, type RoleTokens } from '../helpers/api.js';
import { cairnRun } from '../helpers/cli.js';
import { createDatabase, dropDatabase, ensurePostgres, ident, pgbenchInit, pgUrl, psql } from '../helpers/postgres.js';

const LEASE_MS = 1500;

interface Replica {
  name: string;
  server: RunningServer;
  work: string;
  tokens: RoleTokens;
  /** Its log lines (JSON), for job ends with their error codes. */
  log: Record<string, unknown>[];
}

let catalogDb: string;
let catalogUrl: string;
let sourceDb: string;
let repoDir: string;
let sharedTokens: RoleTokens;
const env = { CAIRN_CATALOG_KEY: randomBytes(32).toString('base64') };
let a: Replica;
let b: Replica;
const closeLater: { close(): Promise<void> }[] = [];

async function replica(name: string): Promise<Replica> {
  const { work, dataDir, repo } = await serverWork(`cairn-replica-${name}-`);
  const tokens = sharedTokens;
  const log: Record<string, unknown>[] = [];
  const logger = createLogger({ level: 'info', write: (line) => void log.push(JSON.parse(line) as Record<string, unknown>) });
  repoDir ??= repo; // both name the first one's repository
  const server = await startServer({ dataDir, port: 0, catalogUrl, allowAdHocUrls: true, env, leaseMs: LEASE_MS, logger, errorLog: (l) => void log.push({ msg: l, level: 'error' }) });
  return { name, server, work, tokens, log };
}

/** The SDK client of a replica (the tokens are the shared catalog's). */
const client = (r: Replica, role: keyof RoleTokens = 'operator'): CairnClient => new CairnClient({ url: r.server.url, token: r.tokens[role] });

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A session holding ACCESS EXCLUSIVE on the source's biggest table: a backup waits in LOCK TABLE until release(). */
async function holdSourceLock(): Promise<{ release(): Promise<void> }> {
  const c = new pg.Client({ connectionString: pgUrl(sourceDb) });
  await c.connect();
  await c.query('BEGIN');
  await c.query('LOCK TABLE pgbench_accounts IN ACCESS EXCLUSIVE MODE');
  return {
    release: async () => {
      await c.query('COMMIT').catch(() => undefined);
      await c.end();
    },
  };
}

const startBackup = (r: Replica) => client(r).backups.create({ source: pgUrl(sourceDb), repository: repoDir, lockTimeoutSeconds: 120 });

beforeAll(async () => {
  ensurePostgres();
  catalogDb = `cairn_test_replicas_${randomBytes(4).toString('hex')}`;
  psql('postgres', `CREATE DATABASE ${ident(catalogDb)}`);
  catalogUrl = `postgres://postgres@127.0.0.1:5432/${catalogDb}`;
  sourceDb = createDatabase('replica_src');
  pgbenchInit(sourceDb, 1);
  const shared = await openSharedCatalog(catalogUrl, { env });
  const store = new SqliteTokenStore(shared);
  sharedTokens = { admin: store.create('admin').token, operator: store.create('operator').token, viewer: store.create('viewer').token };
  store.close();
  shared.close();
  a = await replica('a');
  b = await replica('b');
}, 120_000);

afterAll(async () => {
  for (const c of closeLater) await c.close().catch(() => undefined);
  for (const r of [a, b]) {
    await r?.server.close().catch(() => undefined);
    if (r) rmSync(r.work, { recursive: true, force: true });
  }
  if (sourceDb) dropDatabase(sourceDb);
  if (catalogDb) dropDatabase(catalogDb);
});

describe.sequential('jobs across replicas sharing a PostgreSQL catalog', () => {
  it('GET /v1/servers lists both replicas alive, with their URL and version, from either', async () => {
    const servers = await client(b, 'viewer').servers.list();
    expect(servers).toHaveLength(2);
    expect(servers.map((s) => s.url).sort()).toEqual([a.server.url, b.server.url].sort());
    for (const s of servers) {
      expect(s).toMatchObject({ alive: true, stoppedAt: null, activeJobs: 0, version: '0.1.0', pid: process.pid });
      expect(Date.parse(s.leaseUntil)).toBeGreaterThan(Date.parse(s.heartbeatAt));
    }
    expect(await client(a, 'viewer').servers.list()).toHaveLength(2);
    // cairn servers (the built CLI, in a child process: this one must keep serving).
    const env = { CAIRN_SERVER: b.server.url, CAIRN_TOKEN: b.tokens.viewer };
    const json = await cairnRun(['servers', '--json'], env);
    expect(json.code, json.stderr).toBe(0);
    expect((JSON.parse(json.stdout) as { servers: { url: string; alive: boolean }[] }).servers.map((s) => s.alive)).toEqual([true, true]);
    const text = await cairnRun(['servers'], env);
    expect(text.stdout).toMatch(/^ID\s+STATUS\s+VERSION\s+URL/);
    expect(text.stdout.split('\n').filter((l) => l.includes(' alive '))).toHaveLength(2);
    expect(text.stdout).toContain(a.server.url);
  });

  it('a backup running on A: B answers 409 naming it; cancel through B ends it CANCELED, awaited and streamed through B', async () => {
    const lock = await holdSourceLock();
    try {
      const started = await startBackup(a);
      const jobId = started.id;
      const refused = (await startBackup(b).then(() => undefined, (e: unknown) => e)) as Error & { status: number; code: string };
      expect(refused).toMatchObject({ status: 409, code: 'CONFLICT' });
      expect(refused.message).toContain(jobId);
      // A's own second request is refused the same way.
      expect(await startBackup(a).catch((e: unknown) => (e as { status: number }).status)).toBe(409);
      // B streams A's job: its events end with the job's end.
      const events = fetch(`${b.server.url}/v1/jobs/${jobId}/events`, { headers: { authorization: `Bearer ${b.tokens.viewer}` } }).then((res) => res.text());
      const servers = await client(b, 'viewer').servers.list();
      expect(servers.find((s) => s.url === a.server.url)?.activeJobs).toBe(1);
      // Its record names A as the server running it, read through either replica.
      const aId = servers.find((s) => s.url === a.server.url)?.id;
      expect(aId).toBeTruthy();
      expect(started.server).toBe(aId);
      expect((await client(b, 'viewer').jobs.get(jobId)).server).toBe(aId);
      const t0 = performance.now();
      const cancelling = await client(b).jobs.cancel(jobId);
      expect(cancelling.state).toBe('CANCELLING');
      // A hears of it by NOTIFY and stops the job (its LOCK TABLE waits until the lock goes).
      await until('A to take the cancel', async () => ((await client(a, 'viewer').jobs.get(jobId)).state === 'CANCELLING' ? true : undefined));
      console.info(`[replica-jobs] cancel through B reached A in ${Math.round(performance.now() - t0)} ms`);
      await lock.release();
      const end = await waitJob(b.server.url, b.tokens.viewer, jobId);
      expect(end).toMatchObject({ state: 'CANCELED', error: { code: 'CANCELLED' } });
      const states = [...(await events).matchAll(/"state":"([A-Z]+)"/g)].map((m) => m[1]);
      expect(states[0]).toMatch(/STARTED|TRANSFERRING/);
      expect(states.at(-1)).toBe('CANCELED');
      // Ended: a second cancel through either is 409.
      expect(await client(b).jobs.cancel(jobId).catch((e: unknown) => (e as { status: number }).status)).toBe(409);
      expect(await (await Repository.open(new FileSystemStorage(repoDir))).listBackupIds()).toEqual([]);
    } finally {
      await lock.release().catch(() => undefined);
    }
  }, 60_000);

  it('the unique index lets exactly one of two racing inserts of one key in, the other gets the running job', async () => {
    const [c1, c2] = [await PostgresJobCatalog.open(catalogUrl, 'race-1'), await PostgresJobCatalog.open(catalogUrl, 'race-2')];
    closeLater.push(c1, c2);
    const record = (id: string, key: string): JobRecord => {
      const at = new Date().toISOString();
      return { id, kind: 'backup', state: 'STARTED', key, params: {}, progress: { bytes: 0, rows: 0, collectionsDone: 0, collectionsTotal: 0, throughput: 0 }, result: null, error: null, createdAt: at, updatedAt: at, finishedAt: null };
    };
    for (let i = 0; i < 10; i++) {
      const key = `race-key-${i}`;
      const results = await Promise.allSettled([c1.insert(record(`race-${i}-a`, key), 'race-1'), c2.insert(record(`race-${i}-b`, key), 'race-2')]);
      const won = results.findIndex((r) => r.status === 'fulfilled');
      const lost = results.find((r) => r.status === 'rejected');
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      expect(lost?.reason).toBeInstanceOf(JobConflictError);
      expect((lost?.reason as JobConflictError).running.id).toBe(`race-${i}-${won === 0 ? 'a' : 'b'}`);
      // Once it ends, the key is free again.
      await c1.update({ ...record(`race-${i}-${won === 0 ? 'a' : 'b'}`, key), state: 'SUCCESS' });
      await c2.insert(record(`race-${i}-c`, key), 'race-2');
      await c2.update({ ...record(`race-${i}-c`, key), state: 'SUCCESS' });
    }
  });

  it('job centers on two catalogs: B waits for, watches and cancels A\'s job; an ended row is never rewritten', async () => {
    const [ca, cb] = [await PostgresJobCatalog.open(catalogUrl, 'unit-a'), await PostgresJobCatalog.open(catalogUrl, 'unit-b')];
    closeLater.push(ca, cb);
    const ja = new JobCenter(ca, { owner: 'unit-a', leaseMs: LEASE_MS, persistEveryMs: 0, log: () => undefined });
    const jb = new JobCenter(cb, { owner: 'unit-b', leaseMs: LEASE_MS, persistEveryMs: 0, log: () => undefined });
    closeLater.push(ja, jb);
    await ja.startHeartbeat({ url: 'http://unit-a' });
    await jb.startHeartbeat({ url: 'http://unit-b' });
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const job = await ja.start({ kind: 'verify', exclusiveKey: 'unit-key', params: {}, run: async (ctx: JobContext) => {
      ctx.progress({ phase: 'transferring', collectionsDone: 0, collectionsTotal: 1, rows: 1, bytes: 1 });
      await Promise.race([released, new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error), { once: true }))]);
      return { ok: true };
    } });
    const seen: string[] = [];
    jb.watch(job.id, (j) => seen.push(j.state));
    const waited = jb.wait(job.id);
    await expect(jb.start({ kind: 'verify', exclusiveKey: 'unit-key', params: {}, run: async () => ({}) })).rejects.toBeInstanceOf(JobConflictError);
    release();
    expect(await waited).toMatchObject({ id: job.id, state: 'SUCCESS', result: { ok: true } });
    await until('B\'s watch to see the end', () => (seen.at(-1) === 'SUCCESS' ? true : undefined));
    // An ended row stays as it ended, whoever writes.
    await ca.update({ ...(await ca.get(job.id))!, state: 'FAILED' });
    expect((await cb.get(job.id))?.state).toBe('SUCCESS');

    const second = await ja.start({ kind: 'verify', exclusiveKey: 'unit-key', params: {}, run: (ctx) => new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error), { once: true })) });
    const t0 = performance.now();
    expect((await jb.cancel(second.id)).state).toBe('CANCELLING');
    expect(await jb.wait(second.id)).toMatchObject({ state: 'CANCELED' });
    console.info(`[replica-jobs] cross-replica cancel to CANCELED (awaited by polling) in ${Math.round(performance.now() - t0)} ms`);
    await expect(jb.cancel(second.id)).rejects.toBeInstanceOf(ConflictError);
    await expect(jb.cancel('verify-nosuchjob')).rejects.toBeInstanceOf(NotFoundError);
    // Stopped: they no longer reap (the next test wants server B to be the one that does).
    await Promise.all([ja.close(), jb.close()]);
    const listed = await cb.listServers();
    expect(listed.filter((s) => s.id.startsWith('unit-')).map((s) => [s.id, s.alive, s.stoppedAt !== null])).toEqual([['unit-a', false, true], ['unit-b', false, true]]);
  }, 30_000);

  it("GET /v1/events on B tells of A's job, from its start to its end", async () => {
    const controller = new AbortController();
    const res = await fetch(`${b.server.url}/v1/events`, { headers: { authorization: `Bearer ${sharedTokens.viewer}` }, signal: controller.signal });
    expect(res.status).toBe(200);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = '';
    // The stream is open (its first comment read) before the job starts.
    while (!text.includes(': connected')) text += decoder.decode((await reader.read()).value ?? new Uint8Array(), { stream: true });
    const started = await startBackup(a);
    const states: string[] = [];
    const deadline = Date.now() + 60_000;
    try {
      while (!states.some((st) => ['SUCCESS', 'FAILED', 'CANCELED'].includes(st))) {
        if (Date.now() > deadline) throw new Error(`no end of job ${started.id} on B's stream; states seen: ${states.join(', ')}`);
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
        let cut: number;
        while ((cut = text.indexOf('\n\n')) >= 0) {
          const event = text.slice(0, cut);
          text = text.slice(cut + 2);
          const data = /^data: (.*)$/m.exec(event)?.[1];
          if (!data) continue;
          const job = JSON.parse(data) as JobRecord;
          if (job.id === started.id) states.push(job.state);
        }
      }
    } finally {
      controller.abort();
    }
    expect(states[states.length - 1]).toBe('SUCCESS');
    expect(states.length).toBeGreaterThanOrEqual(1);
    expect(await waitJob(a.server.url, a.tokens.viewer, started.id)).toMatchObject({ state: 'SUCCESS' });
  });

  it('A cut off from the catalog: B fails its job INTERRUPTED once the lease runs out; A stops it with LEASE_LOST and writes no manifest', async () => {
    const lock = await holdSourceLock();
    const cat = new pg.Client({ connectionString: catalogUrl });
    await cat.connect();
    try {
      const before = await (await Repository.open(new FileSystemStorage(repoDir))).listBackupIds();
      const jobId = (await startBackup(a)).id;
      const aId = (await client(b, 'viewer').servers.list()).find((s) => s.url === a.server.url)?.id;
      expect(aId).toBeTruthy();
      // From here on every write of A's sessions (application_name "cairn <server id>") to its
      // job fails, as if A could not reach the catalog; B's reaping gets through.
      await cat.query(`CREATE FUNCTION test_cut_off() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF OLD.id = '${jobId}' AND current_setting('application_name') = 'cairn ${aId}' THEN
            RAISE EXCEPTION 'test: server A is cut off from the catalog';
          END IF;
          RETURN NEW;
        END $$`);
      await cat.query('CREATE TRIGGER test_cut_off BEFORE UPDATE ON cairn_jobs FOR EACH ROW EXECUTE FUNCTION test_cut_off()');
      const failed = await until('B to reap A\'s job', async () => {
        const j = await client(b, 'viewer').jobs.get(jobId);
        return j.state === 'FAILED' ? j : undefined;
      }, 20_000);
      expect(failed.error?.code).toBe('INTERRUPTED');
      expect(failed.error?.message).toContain(`the server ${aId} holding its lease stopped renewing it`);
      expect(failed.error?.message).toMatch(/partial data is removed by prune/);
      const { rows } = await cat.query<{ expired: Date; reaped: string }>(`SELECT lease_until AS expired, record->>'finishedAt' AS reaped FROM cairn_jobs WHERE id = $1`, [jobId]);
      const lag = Date.parse(rows[0]!.reaped) - rows[0]!.expired.getTime();
      console.info(`[replica-jobs] lease ${LEASE_MS} ms (heartbeat ${LEASE_MS / 3} ms): marked FAILED ${lag} ms after the lease ran out`);
      expect(lag).toBeGreaterThanOrEqual(0);
      expect(lag).toBeLessThan(LEASE_MS);
      // B told its log (and so its audit and alerts) of the end.
      await until('B to log the reaped job', () => (b.log.some((l) => l.msg === 'job ended' && l.job === jobId && l.code === 'INTERRUPTED') ? true : undefined));
      // A: the job was aborted; once the source lets the backup go on, it ends LEASE_LOST without a manifest.
      await lock.release();
      const ended = await until('A to end its job', () => a.log.find((l) => l.msg === 'job ended' && l.job === jobId), 30_000);
      expect(ended).toMatchObject({ state: 'FAILED', code: 'LEASE_LOST' });
      expect(await (await Repository.open(new FileSystemStorage(repoDir))).listBackupIds()).toEqual(before);
      // The catalog keeps the reaped record (A's late write cannot rewrite an ended row).
      expect(await client(a, 'viewer').jobs.get(jobId)).toMatchObject({ state: 'FAILED', error: { code: 'INTERRUPTED' } });
      // And the source is free again for a backup through B, which succeeds.
      await cat.query('DROP TRIGGER test_cut_off ON cairn_jobs');
      const again = await startBackup(b);
      expect((await waitJob(b.server.url, b.tokens.viewer, again.id)).state).toBe('SUCCESS');
    } finally {
      await lock.release().catch(() => undefined);
      await cat.query('DROP TRIGGER IF EXISTS test_cut_off ON cairn_jobs').catch(() => undefined);
      await cat.end();
    }
  }, 90_000);

  it('a server that stops cleanly is listed stopped, its lease ended', async () => {
    const aUrl = a.server.url;
    await a.server.close();
    const gone = (await client(b, 'viewer').servers.list()).find((s) => s.url === aUrl);
    expect(gone).toMatchObject({ alive: false, activeJobs: 0 });
    expect(gone?.stoppedAt).not.toBeNull();
  });
});

describe('migration 2 on a catalog that already has duplicate active jobs of one key', () => {
  it('fails the older duplicates (INTERRUPTED), keeps the newest, then builds the unique index', async () => {
    const db = `cairn_test_replicas_${randomBytes(4).toString('hex')}_mig`;
    psql('postgres', `CREATE DATABASE ${ident(db)}`);
    const c = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:5432/${db}` });
    await c.connect();
    try {
      await migrate(c, 'old', MIGRATIONS.filter((m) => m.version === 1));
      const row = (id: string, state: string, at: string): unknown[] => [id, state, at, JSON.stringify({ id, kind: 'backup', state, key: 'k', createdAt: at, error: null })];
      for (const [id, state, at] of [['old', 'TRANSFERRING', '2026-01-01T00:00:00Z'], ['new', 'STARTED', '2026-01-02T00:00:00Z'], ['done', 'SUCCESS', '2025-12-01T00:00:00Z']]) {
        await c.query(`INSERT INTO cairn_jobs (id, kind, state, key, owner, created_at, record) VALUES ($1, 'backup', $2, 'k', 'x', $3, $4)`, row(id!, state!, at!));
      }
      expect(await migrate(c, 'new', MIGRATIONS.filter((m) => m.version <= 2))).toMatchObject({ applied: [2], version: 2 });
      const { rows } = await c.query<{ id: string; state: string; code: string | null }>(`SELECT id, state, record->'error'->>'code' AS code FROM cairn_jobs ORDER BY id`);
      expect(rows).toEqual([{ id: 'done', state: 'SUCCESS', code: null }, { id: 'new', state: 'STARTED', code: null }, { id: 'old', state: 'FAILED', code: 'INTERRUPTED' }]);
      await expect(c.query(`INSERT INTO cairn_jobs (id, kind, state, key, created_at, record) VALUES ('dup', 'backup', 'STARTED', 'k', now(), '{}')`)).rejects.toMatchObject({ code: '23505', constraint: 'cairn_jobs_active_key' });
    } finally {
      await c.end();
      dropDatabase(db);
    }
  });
});
