/**
 * Several `cairn server` processes on one shared PostgreSQL catalog (issue 21's tests): each a
 * real process (test/helpers/replica.mjs, forked, running the built dist/), with its own data
 * folder and a clock the test sets. The catalog is a fresh scratch database
 * `cairn_test_repl_<random>` on the local server, dropped by `stop()`.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cairnRun } from './cli.js';
import { ensurePostgres, ident, pgUrl, psql } from './postgres.js';

const REPLICA = fileURLToPath(new URL('./replica.mjs', import.meta.url));

export interface ReplicaOptions {
  /** How often each replica looks at due schedules, ms (default 100). */
  scheduleTickMs?: number;
  /** How long a job's lease lasts without renewal, ms (h-jobs' ServerOptions.leaseMs). */
  leaseMs?: number;
  /** Added to each replica's environment: the default repository's BACKUP_* variables, … */
  env?: Record<string, string>;
  /** Any other ServerOptions field, given to every replica as is. */
  server?: Record<string, unknown>;
  /** Each replica's clock at start (default: the real time then). */
  clockStart?: Date;
  /** No shared catalog: each replica keeps its embedded SQLite one (for one server alone). */
  embedded?: boolean;
}

export interface Replica {
  index: number;
  dataDir: string;
  url: string;
  child: ChildProcess;
  /** Its structured log lines, parsed, in order. */
  logs: Record<string, unknown>[];
  /** Ids of the jobs this replica started (from its "job started" log lines). */
  jobsStarted: Set<string>;
  /** Its exit code or signal, once it has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  alive: boolean;
}

export interface ReplicaSet {
  /** The scratch database's name and URL ('' with `embedded`). */
  database: string;
  catalogUrl: string;
  /** The shared CAIRN_CATALOG_KEY (32 random bytes, base64) every replica was given. */
  catalogKey: string;
  replicas: Replica[];
  /** The replicas still running. */
  alive(): Replica[];
  /**
   * Sets every running replica's clock to `at` (forward only) and waits until each has it; each
   * call tells them in another order (rotating).
   */
  setClock(at: Date): Promise<void>;
  /** SIGKILLs replica `i` and waits for it to be gone. */
  kill(i: number): Promise<void>;
  /** Starts one more replica on the same catalog (a fresh data folder unless given). */
  add(dataDir?: string): Promise<Replica>;
  /** SIGTERMs every running replica, waits for them, drops the database, removes the folders. */
  stop(): Promise<void>;
  /** Which replica started job `id` (its index), or undefined. */
  ranBy(id: string): number | undefined;
}

/** A new empty database on the local server, named cairn_test_repl_<random>. */
export function scratchCatalog(): { database: string; url: string } {
  ensurePostgres();
  const database = `cairn_test_repl_${randomBytes(4).toString('hex')}`;
  psql('postgres', `CREATE DATABASE ${ident(database)};`);
  return { database, url: pgUrl(database) };
}

export function dropCatalog(database: string): void {
  psql('postgres', `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${database}' AND pid <> pg_backend_pid();`);
  psql('postgres', `DROP DATABASE IF EXISTS ${ident(database)};`);
}

/**
 * Starts `n` replicas at the same moment on a new scratch catalog (or, `embedded`, each on its
 * own SQLite catalog); resolves once all listen.
 */
export async function startReplicas(n: number, options: ReplicaOptions = {}): Promise<ReplicaSet> {
  const { database, url: catalogUrl } = options.embedded ? { database: '', url: '' } : scratchCatalog();
  const work = mkdtempSync(join(tmpdir(), 'cairn-replicas-'));
  const catalogKey = randomBytes(32).toString('base64');
  const replicas: Replica[] = [];
  let clock = options.clockStart?.getTime() ?? Date.now();
  let rotation = 0;

  const launch = (index: number, dataDir: string): Promise<Replica> => {
    const replicaOptions = {
      server: { dataDir, ...(catalogUrl ? { catalogUrl } : {}), scheduleTickMs: options.scheduleTickMs ?? 100, ...(options.leaseMs ? { leaseMs: options.leaseMs } : {}), ...options.server },
      env: options.env ?? {},
      clockStart: new Date(clock).toISOString(),
    };
    const child = fork(REPLICA, [], {
      env: { ...process.env, CAIRN_REPLICA_OPTIONS: JSON.stringify(replicaOptions), CAIRN_CATALOG_KEY: catalogKey, ...options.env },
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-20_000);
    });
    const replica: Replica = {
      index,
      dataDir,
      url: '',
      child,
      logs: [],
      jobsStarted: new Set(),
      alive: true,
      exited: new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal }))),
    };
    void replica.exited.then(() => (replica.alive = false));
    child.on('message', (m: { type: string; line?: string }) => {
      if (m.type !== 'log' || !m.line) return;
      try {
        const record = JSON.parse(m.line) as Record<string, unknown>;
        replica.logs.push(record);
        if (record.msg === 'job started' && typeof record.job === 'string') replica.jobsStarted.add(record.job);
      } catch {
        /* not a JSON line */
      }
    });
    return new Promise<Replica>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`replica ${index} did not start within 60 s: ${stderr}`)), 60_000);
      child.on('message', (m: { type: string; url?: string; message?: string }) => {
        if (m.type === 'ready' && m.url) {
          clearTimeout(timer);
          replica.url = m.url;
          resolve(replica);
        } else if (m.type === 'failed') {
          clearTimeout(timer);
          reject(new Error(`replica ${index} failed to start: ${m.message}`));
        }
      });
      void replica.exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`replica ${index} exited (${code ?? signal}) before it listened: ${stderr}`));
      });
    });
  };

  const set: ReplicaSet = {
    database,
    catalogUrl,
    catalogKey,
    replicas,
    alive: () => replicas.filter((r) => r.alive),
    async setClock(at) {
      clock = Math.max(clock, at.getTime());
      const iso = new Date(clock).toISOString();
      // Told in a rotating order: the first one told usually claims the due time first, and a
      // fixed order would hand every due time to the same replica.
      const alive = set.alive();
      const shift = rotation++ % Math.max(1, alive.length);
      await Promise.all(
        [...alive.slice(shift), ...alive.slice(0, shift)].map(
          (r) =>
            new Promise<void>((resolve) => {
              const onMessage = (m: { type: string; at?: string }): void => {
                if (m.type === 'clock-set') {
                  r.child.off('message', onMessage);
                  resolve();
                }
              };
              r.child.on('message', onMessage);
              void r.exited.then(() => resolve());
              r.child.send({ type: 'clock', at: iso });
            }),
        ),
      );
    },
    async kill(i) {
      const r = replicas[i];
      if (!r?.alive) return;
      r.child.kill('SIGKILL');
      await r.exited;
    },
    async add(dataDir) {
      const r = await launch(replicas.length, dataDir ?? join(work, `replica-${replicas.length}`));
      replicas.push(r);
      return r;
    },
    async stop() {
      for (const r of set.alive()) r.child.kill('SIGTERM');
      await Promise.all(
        replicas.map((r) =>
          Promise.race([
            r.exited,
            new Promise((resolve) =>
              setTimeout(() => {
                r.child.kill('SIGKILL');
                resolve(undefined);
              }, 20_000),
            ),
          ]),
        ),
      );
      if (database) dropCatalog(database);
      rmSync(work, { recursive: true, force: true });
    },
    ranBy(id) {
      return replicas.find((r) => r.jobsStarted.has(id))?.index;
    },
  };
  const started = await Promise.allSettled(Array.from({ length: n }, (_, i) => launch(i, join(work, `replica-${i}`))));
  for (const s of started) if (s.status === 'fulfilled') replicas.push(s.value);
  const failure = started.find((s) => s.status === 'rejected');
  if (failure) {
    await set.stop();
    throw (failure as PromiseRejectedResult).reason;
  }
  replicas.sort((a, b) => a.index - b.index);
  return set;
}

/**
 * A first admin token, made as an operator would before any token exists: `cairn token create`
 * on replica `i`'s data folder with the shared catalog in CAIRN_CATALOG.
 */
export async function bootstrapAdminToken(set: ReplicaSet, i = 0): Promise<string> {
  const r = await cairnRun(['token', 'create', '--role', 'admin', '--name', 'bootstrap', '--json'], {
    CAIRN_DATA_DIR: set.replicas[i]?.dataDir ?? '',
    ...(set.catalogUrl ? { CAIRN_CATALOG: set.catalogUrl } : {}),
    CAIRN_CATALOG_KEY: set.catalogKey,
  });
  if (r.code !== 0) throw new Error(`cairn token create exited ${r.code}: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { token: string }).token;
}

/** Polls `check` until it returns a value other than undefined; throws `what` after `timeoutMs`. */
export async function until<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000, pollMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}
