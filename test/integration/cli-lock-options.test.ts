/**
 * Options for waiting on locks and for refusing warnings, end to end with the built CLI (and the
 * server for the API fields): `backup create --lock-timeout` against a PostgreSQL table held under
 * ACCESS EXCLUSIVE and a SQLite file held under an exclusive lock; `--retry-lock` on prune while
 * this process holds the repository's exclusive lock; `--strict` with a warning PostgreSQL
 * backups really give (a large object); `lockTimeoutSeconds` and `strict` in POST /v1/backups.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteTokenStore } from '../../src/catalog/tokens.js';
import type { BackupManifest } from '../../src/core/schemas.js';
import { Repository } from '../../src/repo/repository.js';
import type { RepositoryLock } from '../../src/repo/lock.js';
import { CairnClient } from '../../src/sdk/index.js';
import { catalogFile, startServer, type RunningServer } from '../../src/server/index.js';
import Database from '../../src/sources/sqlite/driver.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { waitJob } from '../helpers/api.js';
import { CLI, cairn, cairnJson, cairnRun } from '../helpers/cli.js';
import { holdTableLock } from '../helpers/pg-lock.js';
import { createDatabase, dropDatabase, ensurePostgres, pgUrl, psql } from '../helpers/postgres.js';

const EXIT = { USAGE: 2, LOCKED: 5, SOURCE: 7, CANCELLED: 130 };

let work: string;
let plainDb: string;
let largeObjectDb: string;
let selectionDb: string;
let repoN = 0;

/** A new, initialised file-system repository; its path. */
async function newRepo(): Promise<string> {
  const dir = join(work, `repo-${++repoN}`);
  await Repository.init(new FileSystemStorage(dir));
  return dir;
}

function backupIds(repo: string): string[] {
  return cairnJson<{ backups: BackupManifest[] }>(['backup', 'list', '--repo', repo]).backups.map((m) => m.id);
}

/** `cairn args` in a child process; `exited` resolves at its end, `stderrHas` once stderr contains `text`. */
function startCairn(args: string[]): { exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; ms: number }>; stderrHas: (text: string) => Promise<void>; kill: (s: NodeJS.Signals) => void } {
  const started = Date.now();
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  const waiters: { text: string; resolve: () => void }[] = [];
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    for (const w of waiters.splice(0)) {
      if (stderr.includes(w.text)) w.resolve();
      else waiters.push(w);
    }
  });
  child.stdout.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; ms: number }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stderr, ms: Date.now() - started })),
  );
  return {
    exited,
    stderrHas: (text) =>
      Promise.race([
        new Promise<void>((resolve) => (stderr.includes(text) ? resolve() : waiters.push({ text, resolve }))),
        exited.then((r) => {
          throw new Error(`cairn ${args.join(' ')} ended (code ${r.code}) before saying "${text}": ${r.stderr}`);
        }),
      ]),
    kill: (s) => child.kill(s),
  };
}

beforeAll(() => {
  ensurePostgres();
  work = mkdtempSync(join(tmpdir(), 'cairn-lock-options-'));
  plainDb = createDatabase('lockopt');
  psql(plainDb, 'CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 100) g;');
  // t has a serial column (an owned sequence, a default calling nextval), u does not; s_other
  // is a standalone sequence nothing uses.
  selectionDb = createDatabase('lockopt_sel');
  psql(selectionDb, "CREATE TABLE t (id serial PRIMARY KEY, v text DEFAULT 'x'); INSERT INTO t (v) VALUES ('a'); CREATE TABLE u (id int); INSERT INTO u VALUES (1); CREATE SEQUENCE s_other;");
  largeObjectDb = createDatabase('lockopt_lo');
  psql(largeObjectDb, 'CREATE TABLE t (id int); INSERT INTO t VALUES (1); SELECT lo_from_bytea(0, \'\\x0102\'::bytea);');
}, 60_000);

afterAll(() => {
  for (const db of [plainDb, largeObjectDb, selectionDb]) if (db) dropDatabase(db);
  if (work) rmSync(work, { recursive: true, force: true });
});

describe.sequential('backup create --lock-timeout', () => {
  it('PostgreSQL: a table under ACCESS EXCLUSIVE fails within the timeout, naming the table and the option (exit 7), and nothing is committed', async () => {
    const repo = await newRepo();
    const held = await holdTableLock(plainDb, 't');
    try {
      const started = Date.now();
      const r = await cairnRun(['backup', 'create', '--source', pgUrl(plainDb), '--repo', repo, '--lock-timeout', '1s']);
      const ms = Date.now() - started;
      expect(r.code, r.stderr).toBe(EXIT.SOURCE);
      expect(r.stderr).toContain('table public.t');
      expect(r.stderr).toContain('within 1 s');
      expect(r.stderr).toContain('--lock-timeout');
      // The default would wait 30 s; 1 s plus start-up and the snapshot stays well below it.
      expect(ms).toBeLessThan(20_000);
    } finally {
      await held.release();
    }
    expect(backupIds(repo)).toEqual([]);
  });

  /**
   * `cairn args` with a deadline: resolves with the result, or with code 'deadline' once
   * `deadlineMs` passed (the child is then killed), so a backup that waits on a lock the test
   * holds until it ends fails the test instead of hanging it.
   */
  async function runWithin(args: string[], deadlineMs: number): Promise<{ code: number | null | 'deadline'; stderr: string; ms: number }> {
    const run = startCairn(args);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'deadline'>((resolve) => (timer = setTimeout(() => resolve('deadline'), deadlineMs)));
    const r = await Promise.race([run.exited, deadline]);
    clearTimeout(timer);
    if (r === 'deadline') {
      run.kill('SIGKILL');
      const late = await run.exited;
      return { code: 'deadline', stderr: late.stderr, ms: late.ms };
    }
    return { code: r.code, stderr: r.stderr, ms: r.ms };
  }

  it('PostgreSQL: a table outside the selection under ACCESS EXCLUSIVE is neither locked nor read: --include u succeeds at once', async () => {
    const repo = await newRepo();
    // Held until the test releases it, i.e. longer than the backup may take: the backup used to
    // wait for it (pg_dump read the defaults of t for its sequence) and then succeed.
    const held = await holdTableLock(selectionDb, 't');
    let r;
    try {
      r = await runWithin(['backup', 'create', '--source', pgUrl(selectionDb), '--repo', repo, '--lock-timeout', '1s', '--include', 'u', '--id', 'only-u'], 15_000);
    } finally {
      await held.release();
    }
    expect(r.code, r.stderr).toBe(0);
    expect(r.ms).toBeLessThan(10_000);
    expect(backupIds(repo)).toEqual(['only-u']);
    // And the backup restores u alone into a new database (its archive lacks nothing u needs).
    const target = `${selectionDb}_restored`;
    try {
      const restored = cairn(['restore', 'only-u', '--repo', repo, '--to', pgUrl(target)]);
      expect(restored.code, restored.stderr).toBe(0);
      expect(psql(target, 'SELECT count(*) FROM u').trim()).toBe('1');
      expect(psql(target, "SELECT count(*) FROM pg_class WHERE relname IN ('t', 't_id_seq')").trim()).toBe('0');
    } finally {
      dropDatabase(target);
    }
  });

  it('PostgreSQL: the same table locked with the whole database selected still fails within the timeout naming it (exit 7)', async () => {
    const repo = await newRepo();
    const held = await holdTableLock(selectionDb, 't');
    let r;
    try {
      r = await runWithin(['backup', 'create', '--source', pgUrl(selectionDb), '--repo', repo, '--lock-timeout', '1s'], 15_000);
    } finally {
      await held.release();
    }
    expect(r.code, r.stderr).toBe(EXIT.SOURCE);
    expect(r.stderr).toContain('table public.t');
    expect(r.stderr).toContain('--lock-timeout');
    expect(r.ms).toBeLessThan(10_000);
    expect(backupIds(repo)).toEqual([]);
  });

  it('PostgreSQL: a wait before any table lock (every sequence is read for the snapshot) is bounded by --lock-timeout too, naming the sequence (exit 7)', async () => {
    const repo = await newRepo();
    // A pending DROP SEQUENCE holds ACCESS EXCLUSIVE on it; the snapshot's first reads (change
    // evidence, sequence values) read every sequence: they used to run without lock_timeout.
    const client = new pg.Client({ connectionString: pgUrl(selectionDb) });
    await client.connect();
    await client.query('BEGIN');
    await client.query('DROP SEQUENCE s_other');
    let r;
    try {
      r = await runWithin(['backup', 'create', '--source', pgUrl(selectionDb), '--repo', repo, '--lock-timeout', '1s', '--include', 'u'], 15_000);
    } finally {
      await client.query('ROLLBACK');
      await client.end();
    }
    expect(r.code, r.stderr).toBe(EXIT.SOURCE);
    expect(r.stderr).toContain('sequence public.s_other');
    expect(r.stderr).toContain('within 1 s');
    expect(r.stderr).toContain('--lock-timeout');
    expect(r.ms).toBeLessThan(10_000);
    expect(backupIds(repo)).toEqual([]);
  });

  it('PostgreSQL: without a conflicting lock the same command succeeds', async () => {
    const repo = await newRepo();
    const r = cairn(['backup', 'create', '--source', pgUrl(plainDb), '--repo', repo, '--lock-timeout', '1s', '--id', 'ok']);
    expect(r.code, r.stderr).toBe(0);
    expect(backupIds(repo)).toEqual(['ok']);
  });

  it('SQLite: a file held under an exclusive lock fails after the busy timeout with exit 7 and a message naming --lock-timeout', async () => {
    const repo = await newRepo();
    const file = join(work, 'held.db');
    const db = new Database(file);
    db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1); PRAGMA journal_mode = DELETE;");
    // An EXCLUSIVE transaction in rollback-journal mode keeps every reader out until it ends.
    db.exec('BEGIN EXCLUSIVE');
    try {
      const r = await cairnRun(['backup', 'create', '--source', `sqlite://${file}`, '--repo', repo, '--lock-timeout', '1s']);
      expect(r.code, r.stderr).toBe(EXIT.SOURCE);
      expect(r.stderr).toContain('within 1 s');
      expect(r.stderr).toContain('--lock-timeout');
    } finally {
      db.exec('ROLLBACK');
    }
    expect(backupIds(repo)).toEqual([]);
    const ok = cairn(['backup', 'create', '--source', `sqlite://${file}`, '--repo', repo, '--lock-timeout', '1s']);
    db.close();
    expect(ok.code, ok.stderr).toBe(0);
    expect(backupIds(repo)).toHaveLength(1);
  });

  it('refuses 0 and malformed values as usage errors (exit 2) that show the forms', async () => {
    const repo = await newRepo();
    for (const value of ['0', '500ms', 'soon', '2d']) {
      const r = cairn(['backup', 'create', '--source', pgUrl(plainDb), '--repo', repo, '--lock-timeout', value]);
      expect(r.code, `${value}: ${r.stderr}`).toBe(EXIT.USAGE);
      expect(r.stderr).toContain('--lock-timeout');
    }
  });
});

describe.sequential('--retry-lock', () => {
  let repo: string;
  let lock: RepositoryLock | undefined;

  beforeAll(async () => {
    repo = await newRepo();
  });
  afterAll(async () => {
    await lock?.release();
  });

  async function holdRepository(): Promise<RepositoryLock> {
    lock = await (await Repository.open(new FileSystemStorage(repo))).lock(true, 'lock held by the test');
    return lock;
  }

  it('prune waits, says once for whom, and succeeds once the lock is released', async () => {
    const held = await holdRepository();
    const run = startCairn(['prune', '--repo', repo, '--retry-lock', '30s']);
    await run.stderrHas('waiting up to 30s');
    await held.release();
    lock = undefined;
    const r = await run.exited;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('"lock held by the test"');
    expect(r.stderr).toContain(`pid ${process.pid}`);
    expect(r.stderr.match(/waiting up to/g)).toHaveLength(1);
  });

  it('with the lock kept, gives up after the duration with exit 5', async () => {
    await holdRepository();
    const r = await startCairn(['prune', '--repo', repo, '--retry-lock', '1s']).exited;
    expect(r.code, r.stderr).toBe(EXIT.LOCKED);
    expect(r.ms).toBeGreaterThanOrEqual(1000);
    expect(r.stderr).toContain('waiting up to 1s');
    expect(r.stderr).toContain('is locked by');
  });

  it('without it, a locked repository fails at once with exit 5 and no waiting notice', async () => {
    const r = cairn(['backup', 'delete', 'nothing', '--repo', repo]);
    expect(r.code, r.stderr).toBe(EXIT.LOCKED);
    expect(r.stderr).not.toContain('waiting');
  });

  it('Ctrl-C ends the wait (exit 130)', async () => {
    const run = startCairn(['backup', 'create', '--source', pgUrl(plainDb), '--repo', repo, '--retry-lock', '2h']);
    await run.stderrHas('waiting up to 2h');
    run.kill('SIGINT');
    const r = await run.exited;
    expect(r.code, r.stderr).toBe(EXIT.CANCELLED);
    expect(r.ms).toBeLessThan(30_000);
  });

  it('is refused with --server (exit 2): the server takes the locks', () => {
    const restore = cairn(['restore', 'x', '--repo', 'prod', '--to', 'sqlite:///tmp/never.db', '--retry-lock', '5s', '--server', 'http://127.0.0.1:1']);
    expect(restore.code, restore.stderr).toBe(EXIT.USAGE);
    expect(restore.stderr).toContain('--retry-lock applies when the command runs in this process');
  });

  it('refuses a malformed duration (exit 2)', () => {
    const r = cairn(['verify', '--repo', repo, '--retry-lock', 'forever']);
    expect(r.code, r.stderr).toBe(EXIT.USAGE);
    expect(r.stderr).toContain('--retry-lock');
  });
});

describe.sequential('backup create --strict', () => {
  it('a backup with a warning (a large object) fails with exit 7 listing it, and nothing is committed', async () => {
    const repo = await newRepo();
    const r = cairn(['backup', 'create', '--source', pgUrl(largeObjectDb), '--repo', repo, '--strict']);
    expect(r.code, r.stderr).toBe(EXIT.SOURCE);
    expect(r.stderr).toContain('--strict');
    expect(r.stderr).toContain('1 large object is not backed up');
    expect(backupIds(repo)).toEqual([]);
  });

  it('without --strict the same backup is kept with its warning; with --strict and no warning it succeeds', async () => {
    const repo = await newRepo();
    const kept = cairn(['backup', 'create', '--source', pgUrl(largeObjectDb), '--repo', repo, '--id', 'kept']);
    expect(kept.code, kept.stderr).toBe(0);
    expect(kept.stderr).toContain('warning: 1 large object is not backed up');
    const clean = cairn(['backup', 'create', '--source', pgUrl(plainDb), '--repo', repo, '--strict', '--id', 'clean']);
    expect(clean.code, clean.stderr).toBe(0);
    expect(backupIds(repo).sort()).toEqual(['clean', 'kept']);
  });
});

describe.sequential('POST /v1/backups: lockTimeoutSeconds and strict', () => {
  let server: RunningServer;
  let client: CairnClient;
  let token: string;

  beforeAll(async () => {
    const dataDir = join(work, 'data');
    const store = new SqliteTokenStore(catalogFile(dataDir));
    token = store.create('operator').token;
    store.close();
    server = await startServer({ dataDir, port: 0, allowAdHocUrls: true });
    client = new CairnClient({ url: server.url, token });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('strict: a backup with warnings ends FAILED with code SOURCE naming them; nothing is committed', async () => {
    const repo = await newRepo();
    const started = await client.backups.create({ source: pgUrl(largeObjectDb), repository: repo, strict: true });
    const job = await waitJob(server.url, token, started.id);
    expect(job.state).toBe('FAILED');
    expect(job.error?.code).toBe('SOURCE');
    expect(job.error?.message).toContain('large object');
    expect(backupIds(repo)).toEqual([]);
  });

  it('lockTimeoutSeconds: a held table fails the job after that long, naming the table', async () => {
    const repo = await newRepo();
    const held = await holdTableLock(plainDb, 't');
    try {
      const started = await client.backups.create({ source: pgUrl(plainDb), repository: repo, lockTimeoutSeconds: 1 });
      const job = await waitJob(server.url, token, started.id);
      expect(job.state).toBe('FAILED');
      expect(job.error?.code).toBe('SOURCE');
      expect(job.error?.message).toContain('table public.t');
      expect(job.error?.message).toContain('within 1 s');
    } finally {
      await held.release();
    }
    expect(backupIds(repo)).toEqual([]);
  });

  it('refuses a lockTimeoutSeconds below 1 (400)', async () => {
    const res = await fetch(`${server.url}/v1/backups`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ source: pgUrl(plainDb), repository: join(work, 'repo-1'), lockTimeoutSeconds: 0 }),
    });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain('lockTimeoutSeconds');
  });
});
