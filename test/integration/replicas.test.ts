/**
 * Issue 21: three `cairn server` processes on one shared PostgreSQL catalog and one repository.
 * Real processes (test/helpers/replica.mjs over the built dist/), real PostgreSQL, clocks the
 * test advances. Everything is created through the REST API of ONE replica and used through the
 * others: the catalog is the only thing they share besides the repository.
 *
 * In order, on one set of replicas (started at the same moment on an empty catalog):
 * migrations ran once; two replicas asked at once for one source's backup → one 202, one 409;
 * a job started on one replica is cancelled through another; a schedule every minute for ten
 * simulated minutes → ten runs, each due time once, on more than one replica; SIGKILL the
 * replica running a scheduled backup → a survivor marks it FAILED after the lease, the next due
 * time runs on a survivor, the repository verifies. The times measured are printed.
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../../src/catalog/pg-migrations.js';
import { Repository } from '../../src/repo/repository.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { readAnswer, type Answer } from '../helpers/api.js';
import { CHINOOK, cairnRun } from '../helpers/cli.js';
import { createDatabase, dropDatabase, pgUrl, psql } from '../helpers/postgres.js';
import { bootstrapAdminToken, startReplicas, until, type ReplicaSet } from '../helpers/replicas.js';

/** A job's lease in these tests (ms): a killed replica's job is failed by a survivor after it. */
const LEASE_MS = 3000;
const MINUTE = 60_000;

interface JobShape {
  id: string;
  state: string;
  finishedAt: string | null;
  error: { code: string; message: string } | null;
}
interface RunShape {
  dueAt: string;
  status: string;
  jobId: string | null;
  reason: string | null;
}

let work: string;
let repo: string;
let bigDb: string;
let set: ReplicaSet;
/** The admin token made over the API on replica 0, used through all of them. */
let token: string;
/** The first due time of the per-minute schedule; minute k (1..10) is base + (k − 1) min. */
let base: number;

async function call(i: number, method: string, path: string, body?: unknown): Promise<Answer> {
  const r = set.replicas[i];
  if (!r) throw new Error(`no replica ${i}`);
  const res = await fetch(`${r.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return readAnswer(res);
}

async function ok(i: number, method: string, path: string, body?: unknown): Promise<Answer> {
  const a = await call(i, method, path, body);
  if (a.status >= 300) throw new Error(`${method} ${path} on replica ${i}: ${a.status} ${a.text}`);
  return a;
}

/** The job as replica `i` sees it. */
async function job(i: number, id: string): Promise<JobShape> {
  return (await ok(i, 'GET', `/v1/jobs/${id}`)).json.job as JobShape;
}

/** Waits (through replica `i`) until job `id` has ended; returns its final record. */
function ended(i: number, id: string, timeoutMs = 60_000): Promise<JobShape> {
  return until(`job ${id} to end (seen through replica ${i})`, async () => {
    const j = await job(i, id);
    return j.finishedAt ? j : undefined;
  }, timeoutMs);
}

async function runs(i: number, schedule: string): Promise<RunShape[]> {
  return (await ok(i, 'GET', `/v1/schedules/${schedule}`)).json.runs as RunShape[];
}

const survivor = (except: number): number => {
  const r = set.alive().find((x) => x.index !== except);
  if (!r) throw new Error('no replica survives');
  return r.index;
};

describe('three replicas on one PostgreSQL catalog', () => {
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'cairn-repl-test-'));
    repo = join(work, 'repo');
    await Repository.init(new FileSystemStorage(repo));
    copyFileSync(CHINOOK, join(work, 'chinook.sqlite'));
    // Big enough that its backup is still running when it is cancelled, refused or killed.
    bigDb = createDatabase('repl_big');
    psql(bigDb, 'CREATE TABLE big AS SELECT g AS id, md5(g::text) AS a, md5((g * 7)::text) AS b, repeat(md5(g::text), 2) AS c FROM generate_series(1, 1000000) g;');
    set = await startReplicas(3, { scheduleTickMs: 100, leaseMs: LEASE_MS, env: { BACKUP_FILESYSTEM_PATH: repo } });
    // The first admin token as an operator makes it; every other name comes from the API.
    const bootstrap = await bootstrapAdminToken(set, 0);
    token = bootstrap;
    token = (await ok(0, 'POST', '/v1/tokens', { role: 'admin', name: 'ops' })).json.secret as string;
    await ok(0, 'POST', '/v1/sources', { name: 'chinook', url: `sqlite://${join(work, 'chinook.sqlite')}` });
    await ok(0, 'POST', '/v1/sources', { name: 'big', url: pgUrl(bigDb) });
  }, 240_000);

  afterAll(async () => {
    await set?.stop();
    if (bigDb) dropDatabase(bigDb);
    if (work) rmSync(work, { recursive: true, force: true });
  }, 120_000);

  it('started at the same moment on an empty catalog, migrated it once, and all serve', async () => {
    const rows = psql(set.database, 'SELECT version, count(*) FROM cairn_schema_migrations GROUP BY version ORDER BY version;')
      .trim()
      .split('\n')
      .map((l) => l.split('|').map(Number));
    expect(rows.length).toBeGreaterThan(0);
    for (const [version, count] of rows) expect({ version, count }).toEqual({ version, count: 1 });
    // Every version this cairn knows, none missing.
    expect(rows.map(([v]) => v)).toEqual(MIGRATIONS.map((m) => m.version).sort((a, b) => a - b));
    // One replica migrated (under the advisory lock, the whole run): one applied_by for all.
    const appliers = psql(set.database, 'SELECT DISTINCT applied_by FROM cairn_schema_migrations;').trim().split('\n');
    expect(appliers).toHaveLength(1);
    for (const r of set.replicas) {
      const health = await fetch(`${r.url}/healthz`);
      expect(health.status).toBe(200);
    }
  });

  it('shares tokens and registered sources: what replica 0 made, every replica knows', async () => {
    for (const i of [0, 1, 2]) {
      const sources = (await ok(i, 'GET', '/v1/sources')).json.sources as { name: string }[];
      expect(sources.map((s) => s.name).sort()).toEqual(['big', 'chinook']);
    }
  });

  it('two replicas asked at once to back up one source: one 202, one 409', async () => {
    const answers = await Promise.all([call(1, 'POST', '/v1/backups', { source: 'big' }), call(2, 'POST', '/v1/backups', { source: 'big' })]);
    const statuses = answers.map((a) => a.status).sort();
    // Whatever happens, the started job is cancelled and awaited, so the next test finds the source free.
    for (const [k, a] of answers.entries()) if (a.status === 202) await call(k + 1, 'POST', `/v1/jobs/${a.json.job.id}/cancel`);
    for (const [k, a] of answers.entries()) if (a.status === 202) await ended(k + 1, a.json.job.id as string);
    expect(statuses, answers.map((a) => a.text).join('\n')).toEqual([202, 409]);
    const refused = answers.find((a) => a.status === 409);
    expect(refused?.json.error.code).toBe('CONFLICT');
  }, 120_000);

  it('cancels through one replica a job that runs on another', async () => {
    const started = await ok(1, 'POST', '/v1/backups', { source: 'big' });
    const id = started.json.job.id as string;
    // It runs (on replica 1) before it is cancelled through replica 0.
    await until('the backup to be transferring', async () => ((await job(1, id)).state === 'TRANSFERRING' ? true : undefined));
    const t0 = Date.now();
    const cancel = await call(0, 'POST', `/v1/jobs/${id}/cancel`);
    expect(cancel.status, cancel.text).toBe(202);
    const final = await ended(2, id);
    console.log(`replicas: cancel through replica 0 of a job on replica 1 → CANCELED seen on replica 2 after ${Date.now() - t0} ms`);
    expect(final.state).toBe('CANCELED');
    expect(set.ranBy(id)).toBe(1);
  }, 120_000);

  it('runs a schedule every minute for ten simulated minutes exactly ten times, on more than one replica', async () => {
    const created = await ok(0, 'POST', '/v1/schedules', { name: 'every-minute', source: 'chinook', cron: '* * * * *' });
    const createdAt = Date.parse(created.json.schedule.createdAt as string);
    base = Math.ceil((createdAt + 1) / MINUTE) * MINUTE;
    // A second schedule, on the big source, due only at minutes 11 and 12 (the SIGKILL test's).
    const m11 = new Date(base + 10 * MINUTE).getUTCMinutes();
    const m12 = new Date(base + 11 * MINUTE).getUTCMinutes();
    await ok(1, 'POST', '/v1/schedules', { name: 'big-twice', source: 'big', cron: `${m11},${m12} * * * *`, timezone: 'UTC' });

    const ranBy: number[] = [];
    for (let k = 1; k <= 10; k++) {
      const due = new Date(base + (k - 1) * MINUTE);
      await set.setClock(new Date(due.getTime() + 200));
      // Asked of a different replica each minute: the record is shared.
      const run = await until(`minute ${k}'s run (due ${due.toISOString()}) to be recorded`, async () => {
        const r = (await runs(k % 3, 'every-minute')).find((x) => x.dueAt === due.toISOString());
        return r?.jobId ? r : undefined;
      });
      expect(run.status, JSON.stringify(run)).toBe('started');
      const final = await ended((k + 1) % 3, run.jobId as string);
      if (final.state !== 'SUCCESS') {
        // What each replica did, to tell a double run from a failed one.
        console.log(`minute ${k}: runs ${JSON.stringify(await runs(0, 'every-minute'))}`);
        for (const r of set.replicas) console.log(`replica ${r.index}: ${JSON.stringify(r.logs.filter((l) => l.level !== 'info' || String(l.msg).startsWith('job ')))}`);
      }
      expect(final.state, JSON.stringify(final.error)).toBe('SUCCESS');
      const by = await until(`the replica that ran job ${run.jobId}`, () => set.ranBy(run.jobId as string), 5000);
      ranBy.push(by);
    }
    const all = await runs(2, 'every-minute');
    const started = all.filter((r) => r.status === 'started');
    expect(started).toHaveLength(10);
    const dues = all.map((r) => r.dueAt);
    expect(new Set(dues).size).toBe(dues.length); // each due time once, whatever its status
    expect(started.map((r) => r.dueAt).sort()).toEqual(Array.from({ length: 10 }, (_, k) => new Date(base + k * MINUTE).toISOString()));
    const listed = (await ok(1, 'GET', '/v1/backups')).json.backups as { status: string; schedule: string | null }[];
    const scheduled = listed.filter((b) => b.status === 'SUCCESS' && b.schedule === 'every-minute');
    expect(scheduled).toHaveLength(10);
    console.log(`replicas: the ten per-minute runs ran on replicas ${ranBy.join(', ')}`);
    expect(new Set(ranBy).size).toBeGreaterThan(1);
  }, 300_000);

  it('SIGKILL the replica running a scheduled backup: a survivor fails it after the lease, the next due time runs on a survivor, the repository verifies', async () => {
    await ok(1, 'POST', '/v1/schedules/every-minute/disable');
    const due11 = new Date(base + 10 * MINUTE);
    const due12 = new Date(base + 11 * MINUTE);
    await set.setClock(new Date(due11.getTime() + 200));
    const run = await until('the big schedule\'s minute-11 run', async () => {
      const r = (await runs(0, 'big-twice')).find((x) => x.dueAt === due11.toISOString());
      return r?.jobId ? r : undefined;
    });
    const jobId = run.jobId as string;
    const victim = await until(`the replica running job ${jobId}`, () => set.ranBy(jobId), 10_000);
    const other = survivor(victim);
    await until('the backup to be transferring', async () => ((await job(other, jobId)).state === 'TRANSFERRING' ? true : undefined));

    const killedAt = Date.now();
    await set.kill(victim);
    // The next due time comes at once: it must wait for the dead replica's job to be failed.
    await set.setClock(new Date(due12.getTime() + 200));

    const failed = await until(`job ${jobId} of the killed replica to be FAILED`, async () => {
      const j = await job(survivor(victim), jobId);
      return j.state === 'FAILED' ? j : undefined;
    }, 60_000, 100);
    const failedAfter = Date.now() - killedAt;
    const next = await until('the minute-12 run to start on a survivor', async () => {
      const r = (await runs(survivor(victim), 'big-twice')).find((x) => x.dueAt === due12.toISOString());
      // started, or delayed: queued behind the dead replica's job until that one was failed.
      return r?.jobId && (r.status === 'started' || r.status === 'delayed') ? r : undefined;
    }, 60_000, 100);
    const startedAfter = Date.now() - killedAt;
    const nextFinal = await ended(survivor(victim), next.jobId as string, 120_000);
    const doneAfter = Date.now() - killedAt;
    // The killed due time itself: a survivor takes it over (runs it again, within the grace
    // period) unless that survivor was running the schedule already (then recorded failed).
    const retried = await until('the killed due time to be settled', async () => {
      const r = (await runs(survivor(victim), 'big-twice')).find((x) => x.dueAt === due11.toISOString());
      if (r?.status === 'failed') return { run: r, job: null };
      if (!r?.jobId || r.jobId === jobId) return undefined;
      const j = await job(survivor(victim), r.jobId);
      return j.finishedAt ? { run: r, job: j } : undefined;
    }, 120_000, 100);
    console.log(
      `replicas: SIGKILL of replica ${victim} (lease ${LEASE_MS} ms) → its job FAILED (${failed.error?.code}) seen after ${failedAfter} ms; ` +
        `the next due time's run started (${next.status}) after ${startedAfter} ms and succeeded after ${doneAfter} ms (on replica ${set.ranBy(next.jobId as string)}); ` +
        `the killed due time: ${retried.job ? `run again on replica ${set.ranBy(retried.job.id)}, ${retried.job.state}` : `not run again (${retried.run.reason})`}`,
    );
    if (retried.job) {
      expect(retried.job.state, JSON.stringify(retried.job.error)).toBe('SUCCESS');
      expect(set.ranBy(retried.job.id)).not.toBe(victim);
    }
    expect(failed.error?.code).toBe('INTERRUPTED');
    // GET /v1/servers: the killed replica no longer alive, the survivors alive.
    const servers = (await ok(survivor(victim), 'GET', '/v1/servers')).json.servers as { url: string; alive: boolean }[];
    for (const r of set.replicas) expect({ url: r.url, alive: servers.find((x) => x.url === r.url)?.alive }).toEqual({ url: r.url, alive: r.index !== victim });
    expect(nextFinal.state, JSON.stringify(nextFinal.error)).toBe('SUCCESS');
    expect(set.ranBy(next.jobId as string)).not.toBe(victim);
    expect(failedAfter).toBeGreaterThanOrEqual(LEASE_MS * 0.5);

    // The repository: the CLI's verify with every pack read, and the server's listing.
    const verify = await cairnRun(['verify', '--repo', repo, '--read-data', '--json']);
    expect(verify.code, verify.stderr).toBe(0);
    const listing = (await ok(survivor(victim), 'GET', '/v1/backups')).json as { backups: { id: string | null; status: string; jobId?: string }[]; damaged: unknown[] };
    expect(listing.damaged).toEqual([]);
    const complete = listing.backups.filter((b) => b.status === 'SUCCESS');
    // Ten per-minute runs, the minute-12 run, and the killed due time's when it was run again.
    expect(complete.length).toBe(11 + (retried.job ? 1 : 0));
    // The killed backup left no manifest: listed, if at all, as its failed job.
    for (const b of listing.backups.filter((x) => x.status !== 'SUCCESS')) expect(b.status).not.toMatch(/STARTED|TRANSFERRING|FINALIZING/);
  }, 300_000);
});

describe('one server on its embedded SQLite catalog (no --catalog)', () => {
  it('still runs its schedule once per due time', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-repl-embedded-'));
    const own = join(dir, 'repo');
    await Repository.init(new FileSystemStorage(own));
    copyFileSync(CHINOOK, join(dir, 'app.sqlite'));
    const one = await startReplicas(1, { embedded: true, env: { BACKUP_FILESYSTEM_PATH: own } });
    try {
      const admin = await bootstrapAdminToken(one, 0);
      const url = one.replicas[0]?.url as string;
      const send = async (method: string, path: string, body?: unknown): Promise<Answer> => {
        const a = await readAnswer(
          await fetch(`${url}${path}`, { method, headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) }),
        );
        if (a.status >= 300) throw new Error(`${method} ${path}: ${a.status} ${a.text}`);
        return a;
      };
      await send('POST', '/v1/sources', { name: 'app', url: `sqlite://${join(dir, 'app.sqlite')}` });
      const created = await send('POST', '/v1/schedules', { name: 'app-minutely', source: 'app', cron: '* * * * *' });
      const first = Math.ceil((Date.parse(created.json.schedule.createdAt as string) + 1) / MINUTE) * MINUTE;
      for (let k = 0; k < 3; k++) {
        const due = new Date(first + k * MINUTE).toISOString();
        await one.setClock(new Date(first + k * MINUTE + 200));
        const run = await until(`the run due ${due}`, async () => {
          const r = ((await send('GET', '/v1/schedules/app-minutely')).json.runs as RunShape[]).find((x) => x.dueAt === due);
          return r?.jobId ? r : undefined;
        });
        const final = await until(`job ${run.jobId} to end`, async () => {
          const j = (await send('GET', `/v1/jobs/${run.jobId}`)).json.job as JobShape;
          return j.finishedAt ? j : undefined;
        });
        expect(final.state).toBe('SUCCESS');
      }
      const all = (await send('GET', '/v1/schedules/app-minutely')).json.runs as RunShape[];
      expect(all.filter((r) => r.status === 'started')).toHaveLength(3);
      const listed = (await send('GET', '/v1/backups')).json.backups as { status: string }[];
      expect(listed.filter((b) => b.status === 'SUCCESS')).toHaveLength(3);
    } finally {
      await one.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
