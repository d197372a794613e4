import { serve } from '@hono/node-server';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { SqliteJobCatalog } from '../catalog/sqlite.js';
import { PostgresJobCatalog } from '../catalog/postgres.js';
import type { JobCatalog } from '../catalog/types.js';
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { SqliteTokenStore } from '../catalog/tokens.js';
import { SqliteRegistry } from '../catalog/registry.js';
import { SqliteSummaryStore } from '../catalog/summaries.js';
import { SqliteSessionStore, type SessionStoreOptions } from '../catalog/sessions.js';
import type { ConsoleOptions } from './console.js';
import { UsageError } from '../core/errors.js';
import { JobCenter } from '../jobs/job-center.js';
import { createApp } from './app.js';
import { AccessPolicy } from './access.js';
import { storageFromEnv } from '../storage/index.js';
import { SqliteScheduleStore } from '../catalog/schedules.js';
import { Scheduler } from '../jobs/scheduler.js';
import { scheduledBackupLauncher } from '../jobs/scheduled-backup.js';
import { openSource } from '../sources/index.js';
import { DataDirLock } from './data-dir-lock.js';
import { catalogFile, protectFile } from '../catalog/database.js';
import { makeDirsSync } from '../core/folders.js';
import type { JobEvent } from '../jobs/job-center.js';
import type { Logger } from './log.js';
import { redactUrl } from './redact.js';
import { SqliteAlertStore } from '../catalog/alerts.js';
import { AlertCenter } from '../alerts/center.js';
import type { AlertSink } from '../core/alerts.js';
import { SqliteBreachStore } from '../catalog/health.js';
import { HealthMonitor, recordingFailedStarts } from '../jobs/health.js';
import { HealthService } from './health.js';
import { SqliteDrillStore } from '../catalog/drills.js';
import { DrillScheduler, drillOpener, startDrillJob, type DrillLauncherOptions } from '../jobs/drill.js';
import { serverDrillEnvironment } from './routes/drills.js';
import { SqliteAuditLog } from '../catalog/audit.js';
import { AuditRecorder } from './audit.js';
import { CatalogKey } from '../catalog/catalog-key.js';
import { PgCatalogDb } from '../catalog/pg-sync.js';
import type { CatalogTarget } from '../catalog/sql.js';
import { CAIRN_VERSION } from '../jobs/export.js';

export { catalogFile, defaultDataDir } from '../catalog/database.js';

/**
 * This server's identity in the job catalog: the host name and an id kept in the data
 * directory, so that after a restart it recognises the jobs it left running (and only those).
 */
export function serverId(dataDir: string): string {
  const file = path.join(dataDir, 'server-id');
  let id: string;
  try {
    id = fs.readFileSync(file, 'utf8').trim();
  } catch {
    makeDirsSync(dataDir, 0o700);
    id = randomBytes(8).toString('hex');
    fs.writeFileSync(file, `${id}\n`, { mode: 0o600 });
  }
  return `${os.hostname()}/${id}`;
}

/**
 * The data folder 0700 and its files 0600 (the catalog and its -wal/-shm, the lock, the server
 * id), whatever the umask was when they were created.
 */
export function secureDataDir(dataDir: string): void {
  makeDirsSync(dataDir, 0o700);
  fs.chmodSync(dataDir, 0o700);
  for (const name of fs.readdirSync(dataDir)) {
    const file = path.join(dataDir, name);
    const st = fs.lstatSync(file);
    if (st.isFile() && (st.mode & 0o077) !== 0) fs.chmodSync(file, 0o600);
  }
}

export interface ServerOptions {
  dataDir: string;
  /** postgres://… for a job catalog shared by several servers; default: SQLite in dataDir. */
  catalogUrl?: string;
  /** Default 127.0.0.1: the API is reachable from elsewhere only when asked. */
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  log?: (line: string) => void;
  /**
   * Where problems are reported — server errors (500), job catalog writes that failed, schedule
   * runs that failed — default: stderr (also when `log` is not given).
   */
  errorLog?: (line: string) => void;
  /**
   * Let operators and admins name sources, targets and repositories by URL or path, not only
   * registered names (`cairn server --allow-urls`). Viewers never may; the data folder never.
   */
  allowAdHocUrls?: boolean;
  /** Where the default repository's BACKUP_* variables are read (default: process.env). */
  env?: NodeJS.ProcessEnv;
  /** How often due schedules are looked at (default 15 s). */
  scheduleTickMs?: number;
  /**
   * The clock schedules and drills are due by (default: the machine's). Tests of several server
   * processes inject one they advance, so that ten minutes of due times take seconds.
   */
  now?: () => Date;
  /**
   * The structured log (`cairn server` gives one, docs/cli.md): the start-up line, one line per
   * job start and end, per failed request, and the problems of `errorLog`. With it, `log` and
   * `errorLog` default to its info and error lines.
   */
  logger?: Logger;
  /** Serve the web console at / (default true; `cairn server --no-console` gives false). */
  console?: boolean | ConsoleOptions;
  /** Console sessions' clock and lifetimes (tests); default 8 h absolute, 1 h idle. */
  sessions?: SessionStoreOptions;
  /** How often GET /v1/events writes a `: ping` comment (and re-checks its caller), in ms; default 15 000. */
  eventsPingMs?: number;
  /** Alert deliveries: waits before each retry in ms (default 1 s, 4 s, 16 s, 64 s, 256 s) and one attempt's limit (default 15 s). */
  alertRetryDelaysMs?: number[];
  alertAttemptTimeoutMs?: number;
  /** Also told of every alert event besides the notification channels (tests, embedders). */
  alerts?: AlertSink;
  /** A running job with no progress for this long (ms) is marked stuck (`--stuck-after`, default 30 min); 0: never. */
  stuckAfterMs?: number;
  /** How often the health monitor looks at the sources' objectives, in ms (default 60 000; also at start). */
  healthTickMs?: number;
  /** The audit log takes the caller's address from X-Forwarded-For (behind a reverse proxy that sets it); default: the connection's peer. */
  trustForwardedFor?: boolean;
  /**
   * With catalogUrl: a job's lease in the shared catalog, in ms (`--lease`, default 30 000),
   * renewed every third of it; the jobs of a server that stops renewing are failed by the others.
   */
  leaseMs?: number;
}

export interface RunningServer {
  url: string;
  /** Jobs a previous process left running, now marked FAILED. */
  interrupted: number;
  close(): Promise<void>;
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 8080;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`Invalid port ${port}: give 0–65535.`);
  // Before anything reads the catalog: a second server must not touch the first one's jobs.
  const lock = DataDirLock.acquire(options.dataDir, 'cairn server');
  const closers: (() => unknown)[] = [() => lock.release()];
  const closeAll = async (): Promise<void> => {
    for (const close of closers.reverse()) await Promise.resolve().then(close).catch(() => undefined);
  };
  try {
    return await serveLocked(options, host, port, closers, closeAll, lock);
  } catch (err) {
    await closeAll();
    throw err;
  }
}

async function serveLocked(
  options: ServerOptions,
  host: string,
  port: number,
  closers: (() => unknown)[],
  closeAll: () => Promise<void>,
  lock: DataDirLock,
): Promise<RunningServer> {
  const logger = options.logger;
  const errorLog = options.errorLog ?? (logger ? (line: string) => logger.error(line) : (line: string) => void process.stderr.write(`${line}\n`));
  const infoLog = options.log ?? (logger ? (line: string) => logger.info(line) : undefined);
  // The data folder holds the catalog (tokens, registered passwords): its owner's only.
  secureDataDir(options.dataDir);
  const owner = serverId(options.dataDir);
  // A shared catalog (docs/deployment.md): every store's state in PostgreSQL, secrets sealed with
  // CAIRN_CATALOG_KEY (checked before anything is opened); else the SQLite file of the data folder.
  const key = options.catalogUrl ? CatalogKey.fromEnv(options.env ?? process.env) : undefined;
  const catalog: JobCatalog = options.catalogUrl ? await PostgresJobCatalog.open(options.catalogUrl, owner) : new SqliteJobCatalog(catalogFile(options.dataDir));
  closers.push(() => catalog.close());
  const shared = options.catalogUrl && key ? await PgCatalogDb.open(options.catalogUrl, { key }) : undefined;
  // The stores each release their hold on close; this one is the server's own, released last.
  if (shared) closers.push(() => shared.close());
  const store: CatalogTarget = shared ?? catalogFile(options.dataDir);
  const tokens = new SqliteTokenStore(store);
  closers.push(() => tokens.close());
  const registry = new SqliteRegistry(store);
  closers.push(() => registry.close());
  const schedules = new SqliteScheduleStore(store, { owner });
  closers.push(() => schedules.close());
  // A cache of what the repositories hold (backup summaries), not state: each server keeps its own.
  const summaries = new SqliteSummaryStore(catalogFile(options.dataDir));
  closers.push(() => summaries.close());
  const sessions = new SqliteSessionStore(store, options.sessions);
  closers.push(() => sessions.close());
  // Notifications (docs/operations.md): built before the job center so that whatever notices
  // something can be given `alerts` (an AlertSink); deliveries a previous process left pending failed.
  const alertStore = new SqliteAlertStore(store, { owner });
  const alerts = new AlertCenter({
    store: alertStore,
    sources: () => registry.list('source'),
    log: errorLog,
    ...(options.alertRetryDelaysMs ? { retryDelaysMs: options.alertRetryDelaysMs } : {}),
    ...(options.alertAttemptTimeoutMs ? { attemptTimeoutMs: options.alertAttemptTimeoutMs } : {}),
  });
  closers.push(() => alertStore.close());
  closers.push(() => alerts.close());
  alerts.recoverPending();
  // What notices something (stuck jobs, objectives) tells the channels and the embedder's sink.
  const extra = options.alerts;
  const sink: AlertSink = extra
    ? {
        emit: (event) => {
          alerts.emit(event);
          extra.emit(event);
        },
      }
    : alerts;
  const center = new JobCenter(catalog, {
    owner, log: errorLog, ...(logger ? { onEvent: (e: JobEvent) => logJobEvent(logger, e) } : {}),
    stuckAfterMs: options.stuckAfterMs ?? 30 * 60_000, alerts: sink,
    ...(options.leaseMs ? { leaseMs: options.leaseMs } : {}),
  });
  // Before the catalog closes (closers run in reverse): stops the heartbeat, marks this server stopped.
  closers.push(() => center.close());
  // Every file of the data folder (catalog, its -wal/-shm, the lock): a SQLite source or target
  // of this process never opens one, however a path leads there (see catalog-mark.ts).
  for (const f of fs.readdirSync(options.dataDir)) protectFile(path.join(options.dataDir, f));
  // The audit log: every mutating request and every job end (who started it), append-only.
  const auditLog = new SqliteAuditLog(store);
  closers.push(() => auditLog.close());
  const audit = new AuditRecorder(auditLog, { log: errorLog, ...(options.trustForwardedFor ? { trustForwardedFor: true } : {}) });
  closers.push(audit.watch(center));
  const interrupted = await center.recoverInterrupted();
  // After the job's own end, not inside it: the catalog writes of jobEnded (a recovery's memory)
  // may wait for a lock another process holds, and nothing of alerting belongs on a job's path.
  center.watchAll((job) => {
    if (job.finishedAt !== null) setImmediate(() => alerts.jobEnded(job));
  });
  secureDataDir(options.dataDir); // the catalog's -wal and -shm exist by now
  const defaultRepository = storageFromEnv(options.env ?? process.env);
  const access = new AccessPolicy({
    dataDir: options.dataDir,
    registry,
    allowAdHocUrls: Boolean(options.allowAdHocUrls),
    ...(defaultRepository ? { defaultRepository } : {}),
    env: options.env ?? process.env,
    // Names come from this data folder's catalog only (never from the config of the user who
    // started the server): the same registry `cairn repo add` writes with CAIRN_DATA_DIR set to it.
    resolveConfigName: async (value) => registry.url('repository', value) ?? value,
    ...(catalog instanceof PostgresJobCatalog ? { protectedDatabases: [catalog.location] } : {}),
  });
  const scheduler = new Scheduler(schedules, {
    now: options.now ?? (() => new Date()),
    // Schedules were checked when added; the data folder is checked again at every run.
    // A run that could not start is also a FAILED job record (jobs/health.ts), visible in GET /v1/jobs.
    launch: recordingFailedStarts(scheduledBackupLauncher({
      center,
      now: options.now ?? (() => new Date()),
      openRepository: (value) => access.repository(value, 'server'),
      // A schedule's ad-hoc URL came in a request: opened untrusted, as it was checked.
      openSource: (value) => {
        const ref = access.databaseUrl(value, 'server');
        return openSource(ref.url, { untrusted: ref.untrusted });
      },
      log: errorLog,
    }), center, redactUrl, errorLog),
    // A due time that finds a manual backup of its source running waits for it (queued).
    waitForJob: (id) => center.wait(id),
    log: errorLog,
    onRunFailed: (spec, dueAt, reason) => alerts.runFailed(spec, dueAt, reason),
  });
  scheduler.recoverQueued();
  // Health (issue 20): sources against their recovery point objectives, one 'rpo' event per breach.
  const health = new HealthService({ center, registry, schedules, access, summaries });
  const breaches = new SqliteBreachStore(store);
  const monitor = new HealthMonitor({ compute: async () => (await health.fresh()).report, store: breaches, alerts: sink, tickMs: options.healthTickMs ?? 60_000, log: errorLog });
  closers.push(() => breaches.close());
  closers.push(() => monitor.stop());
  // Restore drills: their store, how their jobs start, and their own small cron loop (drill.ts).
  const drillStore = new SqliteDrillStore(store);
  closers.push(() => drillStore.close());
  const drillLauncher: DrillLauncherOptions = { center, store: drillStore, open: drillOpener(drillStore, serverDrillEnvironment({ registry, access })) };
  const drillScheduler = new DrillScheduler(drillStore, {
    now: options.now ?? (() => new Date()),
    launch: (name) => startDrillJob(drillLauncher, name, 'schedule'),
    alerts: sink,
    log: errorLog,
  });
  const consoleOptions = options.console === false ? undefined : options.console === true || options.console === undefined ? {} : options.console;
  const app = createApp({
    center, tokens, sessions, registry, schedules, scheduler, access, summaries, health, audit, log: errorLog, dataDir: options.dataDir,
    alerts: { center: alerts, store: alertStore },
    ...(logger ? { logger } : {}),
    ...(consoleOptions ? { console: consoleOptions } : {}),
    ...(options.eventsPingMs ? { eventsPingMs: options.eventsPingMs } : {}),
    drills: { store: drillStore, launcher: drillLauncher },
  });
  const server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname: host, port }, () => resolve(s));
    s.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'EADDRINUSE' ? new UsageError(`Port ${port} on ${host} is in use: choose another with --listen.`) : err),
    );
  });
  monitor.start();
  const address = server.address() as AddressInfo;
  const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  lock.setUrl(url);
  // A shared catalog: announce this server and keep its jobs' leases (no-op with SQLite).
  await center.startHeartbeat({ url, version: CAIRN_VERSION });
  // After the heartbeat has announced this server: a due time it claims must never look like a
  // claim of a server that is gone (ScheduleStore.takeOverOrphaned) to the other replicas.
  // Due schedules are looked at every 15 s, and once now (a run missed while the server was
  // down and still within the grace period catches up).
  const tick = (): void => {
    // Shared catalog: deliveries whose server is gone will not be retried by it (schedules'
    // orphans are the scheduler's own tick's).
    if (shared) {
      try {
        alertStore.failPending('the server delivering it stopped (its lease ran out) before it was delivered', false);
      } catch (err) {
        errorLog(`alerts: ${(err as Error).message}`);
      }
    }
    void scheduler.tick().catch((err: unknown) => errorLog(`scheduler: ${(err as Error).message}`));
    void drillScheduler.tick().catch((err: unknown) => errorLog(`drill scheduler: ${(err as Error).message}`));
  };
  tick();
  const timer = setInterval(tick, options.scheduleTickMs ?? 15_000);
  timer.unref();
  const where = catalog instanceof PostgresJobCatalog ? `shared catalog ${catalog.location}, ` : '';
  const names = `${options.allowAdHocUrls ? 'registered names and ad-hoc URLs' : 'registered names only'}${defaultRepository ? `, default repository ${defaultRepository.location}` : ''}`;
  const listening = `cairn server listening on ${url} (${where}data in ${options.dataDir}; ${names})${interrupted ? `; ${interrupted} interrupted job(s) marked FAILED` : ''}`;
  if (logger && !options.log) logger.info(listening, { url, interrupted });
  else infoLog?.(listening);
  return {
    url,
    interrupted,
    async close() {
      clearInterval(timer);
      for (const id of center.activeIds()) await center.cancel(id).catch(() => undefined); // finalizing: let it end
      await Promise.allSettled(center.activeIds().map((id) => center.wait(id)));
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Event streams stay open until their job ends: do not wait for them.
        (server as { closeAllConnections?: () => void }).closeAllConnections?.();
      });
      await closeAll();
    },
  };
}

/** What a job names, for its log lines: the locations in its params (never a secret; redacted anyway). */
const NAMED = ['source', 'target', 'repository', 'from', 'to', 'backup', 'schedule'] as const;

/**
 * One line per job start (info) and end (info when it succeeded, warn when it failed or was
 * cancelled): job id, kind, what it names, and at the end its state, durationMs and error code.
 */
function logJobEvent(logger: Logger, event: JobEvent): void {
  const { job } = event;
  const named: Record<string, string> = {};
  for (const k of NAMED) {
    const v = job.params[k];
    if (typeof v === 'string') named[k] = redactUrl(v);
  }
  if (event.type === 'started') {
    logger.info('job started', { job: job.id, kind: job.kind, ...named });
    return;
  }
  const fields = { job: job.id, kind: job.kind, ...named, state: job.state, durationMs: event.durationMs, code: job.error?.code };
  if (job.state === 'SUCCESS') logger.info('job ended', fields);
  else logger.warn('job ended', fields);
}
