/**
 * The job center: starts long operations (backup, restore, copy, verify, prune) in the
 * background, answers at once with a STARTED record, keeps each job's state and progress in
 * the catalog, cancels on request, and lets callers wait or watch. One active job per key: a
 * backup and a restore of one database (databaseKey) never run at once.
 */
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { CairnError, CancelledError, ConflictError, LeaseLostError, NotFoundError } from '../core/errors.js';
import { randomId } from '../core/ids.js';
import { TERMINAL_STATES, type JobCatalog, type JobCoordination, type JobKind, type JobProgress, type JobRecord, type JobState, type ServerInfo, type ServerRecord } from './ports.js';
import { progressRates, type Progress } from './progress.js';
import type { AlertSink } from '../core/alerts.js';

export interface JobContext {
  signal: AbortSignal;
  /** Progress as the operations report it (a Progress of runBackup / runRestore). */
  progress(p: Progress): void;
  /**
   * Enters FINALIZING, after which the job cannot be cancelled (a restore switching in, a
   * backup's manifest about to be written). Throws the cancellation if one was requested before,
   * and LeaseLostError when the catalog is shared and this server's lease of the job is not known
   * to be valid (not renewed within the lease minus a safety margin): a replica may already have
   * marked it interrupted, so nothing may be committed.
   */
  finalizing(): void;
}

export type JobRun = (ctx: JobContext) => Promise<Record<string, unknown>>;

export interface StartJob {
  kind: JobKind;
  /**
   * At most one active job per key, whatever its kind: backups and restores give
   * databaseKey(location), so a backup never reads a database a restore is loading (and two
   * restores never load one); prune gives its repository.
   */
  exclusiveKey?: string;
  /** The request, without secrets: stored and shown as is. */
  params: Record<string, unknown>;
  run: JobRun;
}

export type JobListener = (job: JobRecord) => void;

export interface JobCenterOptions {
  now?: () => Date;
  /** Which server runs the jobs (catalogs shared by replicas keep each one's jobs apart). */
  owner?: string;
  /** Minimum time between two catalog writes of a job's progress (default 1 s). */
  persistEveryMs?: number;
  /** Where failed catalog writes are reported (default: stderr). */
  log?: (line: string) => void;
  /** Waits before retrying a failed final-state write, in ms (default 100, 500, 2000). */
  finalRetryDelaysMs?: number[];
  /**
   * Told when a job starts (once it is in the catalog) and when it ends (once its final record
   * is written or kept), e.g. for the server's log. Its failures are ignored.
   */
  onEvent?: (event: JobEvent) => void;
  /**
   * The stuck-job watchdog: a running job whose progress (bytes, rows, collections, state) has
   * not moved for this long, in ms, gets `progress.stalledSince` (cleared when it moves again)
   * and one 'stuck' event to `alerts`. Absent or 0: no watchdog.
   */
  stuckAfterMs?: number;
  /** How often the watchdog looks, in ms (default stuckAfterMs / 4, at most 60 s). */
  stuckCheckMs?: number;
  /** Where the watchdog reports stuck jobs (once per job). */
  alerts?: AlertSink;
  /**
   * With a shared catalog (one with `coordination`): how long a job's lease lasts without
   * renewal, in ms (default 30 000). A replica that stops renewing loses its jobs after this
   * long: others mark them FAILED (INTERRUPTED).
   */
  leaseMs?: number;
  /** How often a watchEverywhere stream reads other replicas' job changes from a shared catalog, in ms (default 1000). */
  remotePollMs?: number;
  /** How often leases are renewed and expired ones reaped, in ms (default leaseMs / 3). */
  heartbeatMs?: number;
}

/**
 * The margin by which a lease is taken as lost locally before it runs out in the catalog, in ms:
 * a fifth of the lease, at most 5 s. It covers the time between finalizing()'s check and the
 * commit it guards, and a heartbeat's round trip.
 */
export function leaseMargin(leaseMs: number): number {
  return Math.min(5000, Math.floor(leaseMs / 5));
}

/** A job started or ended; `durationMs`: from its start to its end. */
export type JobEvent = { type: 'started'; job: JobRecord } | { type: 'ended'; job: JobRecord; durationMs: number };

/** A job could not start because another one holds its key (409); `running` is that job. */
export class JobConflictError extends ConflictError {
  constructor(readonly running: JobRecord) {
    const rule = running.kind === 'backup' || running.kind === 'restore' ? 'one job at a time per database' : `one ${running.kind} at a time`;
    super(`A ${running.kind} of ${describeKey(running)} is already running as job ${running.id} (started ${running.createdAt}); ${rule}: wait for it or cancel it.`);
  }
}

function describeKey(job: JobRecord): string {
  const p = job.params;
  const where = job.kind === 'restore' ? p.target : job.kind === 'backup' ? p.source : p.repository;
  return typeof where === 'string' ? where : (job.key ?? 'it');
}

interface Active {
  record: JobRecord;
  /** Catalog writes of this job, in order. */
  writes: Promise<void>;
  controller: AbortController;
  done: Promise<JobRecord>;
  listeners: Set<JobListener>;
  startedMs: number;
  persistedMs: number;
  /** When its progress last moved (Date.now() ms), and what it was then: the watchdog compares. */
  movedMs: number;
  moved: string;
  /** A 'stuck' event went out for this job (once per job). */
  stuckAlerted: boolean;
  /** Its record is in the catalog (so heartbeats renew it). */
  inserted: boolean;
  /** performance.now() when its latest successful lease renewal (or its insert) was sent. */
  renewedMono: number;
  /** Set once its lease is lost; the job is aborted with it. */
  leaseLost?: LeaseLostError;
}

const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => {
    setTimeout(resolve, ms).unref();
  });

/** What counts as progress for the watchdog: amounts done and the state (rates and ETAs are not). */
const movement = (r: JobRecord): string => `${r.state}|${r.progress.bytes}|${r.progress.rows}|${r.progress.collectionsDone}|${r.progress.collection ?? ''}|${r.progress.percent ?? ''}`;

export class JobCenter {
  private readonly active = new Map<string, Active>();
  /** Told of every change of every job (watchAll). */
  private readonly everyJob = new Set<JobListener>();
  /** Told of other replicas' job changes too (watchEverywhere), and the timer of that poll. */
  private readonly remoteWatchers = new Set<JobListener>();
  private remotePoll: NodeJS.Timeout | undefined;
  private readonly remotePollMs: number;
  /**
   * Ended jobs whose final record could not be written to the catalog: answered from here so
   * that callers still see how the job ended (the catalog shows an older state).
   */
  private readonly unsaved = new Map<string, JobRecord>();
  /** Jobs whose latest catalog write failed. */
  private readonly failedWrites = new Set<string>();
  private readonly now: () => Date;
  private readonly persistEveryMs: number;
  private readonly owner: string;
  private readonly log: (line: string) => void;
  private readonly finalRetryDelaysMs: number[];
  private readonly onEvent: (event: JobEvent) => void;
  private readonly stuckAfterMs: number;
  private readonly stuckCheckMs: number;
  private readonly alerts: AlertSink | undefined;
  /** The watchdog's timer, running while jobs are active (and a watchdog is configured). */
  private watchdog: NodeJS.Timeout | undefined;
  /** Present when the catalog is shared by replicas. */
  private readonly coordination: JobCoordination | undefined;
  private readonly leaseMs: number;
  private readonly heartbeatMs: number;
  private readonly server: ServerInfo;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  /** The heartbeat under way (one at a time). */
  private beating: Promise<void> | undefined;
  /** The latest heartbeat or reap failed (logged once per outage). */
  private beatFailing = false;
  private reapFailing = false;
  /** Stops listening for cancellation requests (once started). */
  private stopCancels: Promise<(() => Promise<void>) | undefined> | undefined;
  private closed = false;
  /** A heartbeat has put this server in the catalog's list (close() marks it stopped). */
  private announced = false;
  /** When this center was made (the server's start, for servers() without a shared catalog). */
  private readonly startedAt: Date;

  constructor(
    private readonly catalog: JobCatalog,
    options: JobCenterOptions = {},
  ) {
    this.now = options.now ?? (() => new Date());
    this.persistEveryMs = options.persistEveryMs ?? 1000;
    this.owner = options.owner ?? '';
    this.log = options.log ?? ((line) => void process.stderr.write(`${line}\n`));
    this.finalRetryDelaysMs = options.finalRetryDelaysMs ?? [100, 500, 2000];
    this.stuckAfterMs = options.stuckAfterMs ?? 0;
    this.stuckCheckMs = options.stuckCheckMs ?? Math.max(10, Math.min(60_000, Math.floor(this.stuckAfterMs / 4)));
    this.alerts = options.alerts;
    this.coordination = catalog.coordination;
    this.leaseMs = Math.max(100, options.leaseMs ?? 30_000);
    this.remotePollMs = options.remotePollMs ?? 1000;
    this.heartbeatMs = Math.max(10, options.heartbeatMs ?? Math.floor(this.leaseMs / 3));
    this.startedAt = this.now();
    this.server = { id: this.owner, host: os.hostname(), version: 'unknown', url: null, pid: process.pid };
    const onEvent = options.onEvent;
    this.onEvent = (event) => {
      try {
        onEvent?.(event);
      } catch {
        /* a listener's failure is its own */
      }
    };
  }

  /**
   * Marks the jobs a previous process left running as FAILED ("interrupted"); their partial
   * data is unreferenced and left for prune. Call once at start-up, before starting jobs.
   */
  recoverInterrupted(): Promise<number> {
    return this.catalog.failUnfinished(
      this.owner,
      { code: 'INTERRUPTED', message: 'interrupted: the server stopped while the job was running; its partial data is removed by prune' },
      this.now().toISOString(),
    );
  }

  /** Starts a job and returns its STARTED record at once (once it is in the catalog). */
  async start(request: StartJob): Promise<JobRecord> {
    if (request.exclusiveKey !== undefined) {
      for (const a of this.active.values()) {
        if (a.record.key === request.exclusiveKey) throw new JobConflictError(structuredClone(a.record));
      }
    }
    const at = this.now().toISOString();
    const record: JobRecord = {
      id: `${request.kind}-${randomId(8)}`,
      kind: request.kind,
      state: 'STARTED',
      key: request.exclusiveKey ?? null,
      params: request.params,
      progress: { bytes: 0, rows: 0, collectionsDone: 0, collectionsTotal: 0, throughput: 0 },
      result: null,
      error: null,
      createdAt: at,
      updatedAt: at,
      finishedAt: null,
      ...(this.owner ? { server: this.owner } : {}),
    };
    const controller = new AbortController();
    const active: Active = {
      record, controller, listeners: new Set(), startedMs: Date.now(), persistedMs: 0, done: Promise.resolve(record), writes: Promise.resolve(),
      movedMs: Date.now(), moved: movement(record), stuckAlerted: false, inserted: false, renewedMono: performance.now(),
    };
    // Registered before the insert so that a concurrent start of the same key is refused. With
    // a shared catalog, the insert refuses a key another replica's job holds (JobConflictError).
    this.active.set(record.id, active);
    try {
      const sent = performance.now();
      if (this.coordination) await this.catalog.insert(record, this.owner, this.leaseMs);
      else await this.catalog.insert(record, this.owner);
      active.inserted = true;
      active.renewedMono = sent;
    } catch (err) {
      this.active.delete(record.id);
      throw err;
    }
    this.armHeartbeat();
    this.onEvent({ type: 'started', job: structuredClone(record) });
    this.tell(this.everyJob, record);
    this.armWatchdog();
    active.done = this.execute(active, request.run);
    return structuredClone(record);
  }

  /**
   * Records a job that could not start as FAILED at once (a scheduled run whose source or
   * repository could not be opened): in the catalog, so GET /v1/jobs lists it with its reason,
   * and told to watchAll listeners and onEvent as ended, as any failed job. `params` and the
   * error's message must hold no secret (the caller redacts them).
   */
  async recordFailed(request: { kind: JobKind; params: Record<string, unknown>; error: { code: string; message: string } }): Promise<JobRecord> {
    const at = this.now().toISOString();
    const record: JobRecord = {
      id: `${request.kind}-${randomId(8)}`,
      kind: request.kind,
      state: 'FAILED',
      key: null,
      params: request.params,
      progress: { bytes: 0, rows: 0, collectionsDone: 0, collectionsTotal: 0, throughput: 0 },
      result: null,
      error: request.error,
      createdAt: at,
      updatedAt: at,
      finishedAt: at,
      ...(this.owner ? { server: this.owner } : {}),
    };
    await this.catalog.insert(record, this.owner);
    this.tell(this.everyJob, record);
    this.onEvent({ type: 'ended', job: structuredClone(record), durationMs: 0 });
    return structuredClone(record);
  }

  async get(id: string): Promise<JobRecord> {
    const a = this.active.get(id);
    if (a) return structuredClone(a.record);
    const kept = this.unsaved.get(id);
    if (kept) return structuredClone(kept);
    const r = await this.catalog.get(id);
    if (!r) throw new NotFoundError(`Job "${id}" not found. List jobs with GET /v1/jobs or \`cairn job list\`.`);
    return r;
  }

  async list(filter: Parameters<JobCatalog['list']>[0] = {}): Promise<JobRecord[]> {
    // Active jobs' in-memory records are fresher than their last persisted progress, and so are
    // those whose final write failed.
    return (await this.catalog.list(filter)).map((r) => {
      const fresher = this.active.get(r.id)?.record ?? this.unsaved.get(r.id);
      return fresher ? structuredClone(fresher) : r;
    });
  }

  /**
   * Requests cancellation; the job goes CANCELLING, then CANCELED when it has stopped. A job of
   * another replica (shared catalog) is asked through the catalog; its owner stops it and the
   * answer is its record as CANCELLING. ConflictError when it has ended or is finalizing.
   */
  async cancel(id: string): Promise<JobRecord> {
    const a = this.active.get(id);
    if (!a) {
      if (this.coordination && !this.unsaved.has(id)) return this.cancelRemote(this.coordination, id);
      const r = await this.get(id); // NotFoundError when unknown
      throw new ConflictError(`Job ${id} has already ended (${r.state}); there is nothing to cancel.`);
    }
    if (a.record.state === 'FINALIZING') throw finalizingConflict(a.record);
    this.cancelActive(a);
    return structuredClone(a.record);
  }

  private async cancelRemote(coordination: JobCoordination, id: string): Promise<JobRecord> {
    const r = await coordination.requestCancel(id);
    if (r.outcome === 'missing') throw new NotFoundError(`Job "${id}" not found. List jobs with GET /v1/jobs or \`cairn job list\`.`);
    if (r.outcome === 'ended') throw new ConflictError(`Job ${id} has already ended (${r.job.state}); there is nothing to cancel.`);
    if (r.outcome === 'finalizing') throw finalizingConflict(r.job);
    return r.job;
  }

  /** Stops an active job of this server (a local request, or one from another replica). */
  private cancelActive(a: Active): void {
    const state = a.record.state;
    if (state === 'CANCELLING' || state === 'FINALIZING' || isTerminal(state)) return;
    this.transition(a, 'CANCELLING');
    a.controller.abort(new CancelledError(`Job ${a.record.id} was cancelled.`));
  }

  /**
   * Resolves with the job's final record (at once for a job that has ended). A job of another
   * replica is polled in the catalog (every 200 ms, growing to 1 s) until it ends; its lease
   * guarantees it does, by the owner or, if the owner dies, by a replica's reaping.
   */
  async wait(id: string): Promise<JobRecord> {
    const a = this.active.get(id);
    if (a) return structuredClone(await a.done);
    let r = await this.get(id);
    if (!this.coordination) return r;
    for (let delay = 200; !isTerminal(r.state) && !this.closed; delay = Math.min(1000, Math.round(delay * 1.5))) {
      await sleep(delay);
      const local = this.active.get(id);
      r = local ? structuredClone(await local.done) : await this.get(id);
    }
    return r;
  }

  /**
   * Calls `listener` on every change of an active job; returns the unsubscribe function. A job of
   * another replica (shared catalog) is polled in the catalog every 500 ms: the listener is told
   * of each change of its record (as often as its owner writes progress, about once a second)
   * until it ends, and of its end when it has already ended at the first look.
   */
  watch(id: string, listener: JobListener): () => void {
    const a = this.active.get(id);
    if (a) {
      a.listeners.add(listener);
      return () => a.listeners.delete(listener);
    }
    if (!this.coordination) return () => undefined;
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    let last: string | undefined;
    const poll = async (): Promise<void> => {
      try {
        const r = await this.catalog.get(id);
        if (stopped) return;
        if (r) {
          const seen = JSON.stringify(r);
          const first = last === undefined;
          if (seen !== last && (!first || isTerminal(r.state))) listener(structuredClone(r));
          last = seen;
          if (isTerminal(r.state)) {
            stopped = true;
            return;
          }
        }
      } catch {
        /* the catalog did not answer: look again at the next poll */
      }
      if (stopped || this.closed) return;
      timer = setTimeout(() => void poll(), 500);
      timer.unref();
    };
    void poll();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
  }

  /**
   * With a shared catalog: announces this server (its API's url once it listens, its version),
   * renews its jobs' leases every heartbeatMs, reaps the jobs of replicas that stopped renewing
   * theirs, and listens for cancellation requests. Resolves after the first heartbeat. Without
   * a shared catalog it does nothing.
   */
  async startHeartbeat(info: Partial<Omit<ServerInfo, 'id'>> = {}): Promise<void> {
    if (!this.coordination || this.closed) return;
    Object.assign(this.server, info);
    if (!this.stopCancels) {
      this.stopCancels = this.coordination.listenCancels((id) => this.cancelRequested(id)).catch((err: unknown) => {
        this.log(`cairn: cannot listen for job cancellations in the shared job catalog (${errorText(err)}); requests from other servers arrive with the heartbeat instead.`);
        return undefined;
      });
      await this.stopCancels;
    }
    this.armHeartbeat();
    await this.heartbeat();
  }

  /**
   * One heartbeat: renews the leases of this server's jobs, aborts those whose lease is lost,
   * delivers cancellation requests, and reaps expired jobs of any server (told to watchAll
   * listeners and onEvent as ended). Never throws; failures are logged once per outage.
   */
  heartbeat(): Promise<void> {
    if (!this.coordination) return Promise.resolve();
    this.beating ??= this.beat(this.coordination).finally(() => {
      this.beating = undefined;
    });
    return this.beating;
  }

  private async beat(coordination: JobCoordination): Promise<void> {
    const sent = performance.now();
    const ids = [...this.active.values()].filter((a) => a.inserted && !isTerminal(a.record.state)).map((a) => a.record.id);
    try {
      const r = await coordination.heartbeat(this.server, ids, this.leaseMs);
      if (this.beatFailing) this.log(`cairn: the shared job catalog answers again; leases renewed.`);
      this.beatFailing = false;
      this.announced = true;
      for (const id of r.renewed) {
        const a = this.active.get(id);
        if (a) a.renewedMono = Math.max(a.renewedMono, sent);
      }
      for (const id of r.lost) {
        const a = this.active.get(id);
        if (a && !isTerminal(a.record.state)) {
          this.loseLease(a, `Job ${id} lost its lease: another cairn server sharing the job catalog marked it interrupted, because this server (${this.owner}) had not renewed its lease for ${seconds(this.leaseMs)}. It stopped before committing anything; its partial data is removed by prune. Check this server's connection to the catalog database and its load, then start the job again.`);
        }
      }
      for (const id of r.cancelRequested) this.cancelRequested(id);
    } catch (err) {
      if (!this.beatFailing) this.log(`cairn: renewing the leases of this server's jobs in the shared job catalog failed (${errorText(err)}); jobs not renewed within ${seconds(this.leaseMs - leaseMargin(this.leaseMs))} are stopped.`);
      this.beatFailing = true;
    }
    try {
      const reaped = await coordination.reapExpired();
      this.reapFailing = false;
      for (const job of reaped) {
        const a = this.active.get(job.id);
        if (a) {
          // Our own job, reaped because our renewals failed: it ends here, as LEASE_LOST.
          this.loseLease(a, `Job ${job.id} lost its lease: this server could not renew it in the shared job catalog for ${seconds(this.leaseMs)}, so it was marked interrupted. It stopped before committing anything; its partial data is removed by prune. Check this server's connection to the catalog database, then start the job again.`);
          continue;
        }
        this.tell(this.everyJob, job);
        this.onEvent({ type: 'ended', job: structuredClone(job), durationMs: Math.max(0, Date.parse(job.finishedAt ?? job.updatedAt) - Date.parse(job.createdAt)) });
      }
    } catch (err) {
      if (!this.reapFailing) this.log(`cairn: looking for jobs of stopped servers in the shared job catalog failed (${errorText(err)}); retrying at the next heartbeat.`);
      this.reapFailing = true;
    }
    const now = performance.now();
    const valid = this.leaseMs - leaseMargin(this.leaseMs);
    for (const a of this.active.values()) {
      if (!a.inserted || isTerminal(a.record.state) || now - a.renewedMono <= valid) continue;
      this.loseLease(a, this.lapsedMessage(a, now));
    }
  }

  private lapsedMessage(a: Active, now: number): string {
    return `Job ${a.record.id} lost its lease: this server could not renew it in the shared job catalog for ${seconds(now - a.renewedMono)} (the lease is ${seconds(this.leaseMs)}), so another cairn server may already have marked it interrupted. It stopped before committing anything; its partial data is removed by prune. Check this server's connection to the catalog database, then start the job again.`;
  }

  /** Aborts a job whose lease is lost (once); answers the error it ends with. */
  private loseLease(a: Active, message: string): LeaseLostError {
    if (a.leaseLost) return a.leaseLost;
    a.leaseLost = new LeaseLostError(message);
    a.controller.abort(a.leaseLost);
    return a.leaseLost;
  }

  /** Another replica asked to cancel a job: this server stops it if it runs it. */
  private cancelRequested(id: string): void {
    const a = this.active.get(id);
    if (a) this.cancelActive(a);
  }

  /** Starts the heartbeat's timer when the catalog is shared and it is not running. */
  private armHeartbeat(): void {
    if (!this.coordination || this.closed || this.heartbeatTimer !== undefined) return;
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), this.heartbeatMs);
    this.heartbeatTimer.unref();
  }

  /**
   * The servers sharing the catalog (GET /v1/servers), oldest first; without a shared catalog,
   * this one server, alive while this center is open.
   */
  async servers(): Promise<ServerRecord[]> {
    if (this.coordination) return this.coordination.listServers();
    const now = this.now().toISOString();
    return [{
      ...this.server, startedAt: this.startedAt.toISOString(), heartbeatAt: now, leaseUntil: now, alive: !this.closed,
      stoppedAt: this.closed ? now : null, activeJobs: this.active.size,
    }];
  }

  /**
   * Stops the timers (heartbeat, watchdog, remote polls) and the cancellation listener; with a
   * shared catalog, marks this server stopped (its lease ends now). Call after the jobs ended.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = undefined;
    if (this.remotePoll) clearTimeout(this.remotePoll);
    this.remotePoll = undefined;
    await this.beating?.catch(() => undefined);
    const stop = await this.stopCancels;
    await stop?.().catch(() => undefined);
    if (this.coordination && this.announced) {
      await this.coordination.markStopped(this.owner).catch((err: unknown) => this.log(`cairn: could not mark this server stopped in the shared job catalog (${errorText(err)}); its lease runs out by itself.`));
    }
  }

  /**
   * Calls `listener` on every change of every job this center runs: its start (STARTED), each
   * progress and state change, its end (the final record). Returns the unsubscribe function.
   * Jobs that started before the call are told from their next change on.
   */
  watchAll(listener: JobListener): () => void {
    this.everyJob.add(listener);
    return () => void this.everyJob.delete(listener);
  }

  /**
   * Like watchAll, and with a shared catalog also every other replica's jobs: their changes are
   * read from the catalog about once a second (GET /v1/events on any replica tells of every
   * job). For streams to people, not for this server's own bookkeeping (audit, alerts), which
   * watchAll serves: each replica records its own jobs. Returns the unsubscribe function.
   */
  watchEverywhere(listener: JobListener): () => void {
    const stopLocal = this.watchAll(listener);
    if (!this.coordination) return stopLocal;
    this.remoteWatchers.add(listener);
    this.pollRemote(this.coordination);
    return () => {
      stopLocal();
      this.remoteWatchers.delete(listener);
    };
  }

  /**
   * The poll of other replicas' job changes, running while someone watches everywhere. It asks
   * from a little before its last cursor (a change committed just after a look can carry an
   * earlier time) and tells each record state once (by id, updatedAt and state).
   */
  private pollRemote(coordination: JobCoordination): void {
    if (this.remotePoll !== undefined) return;
    const OVERLAP_MS = 2000;
    let cursor: string | null = null;
    const seen = new Map<string, { sig: string; atMs: number }>();
    const look = async (): Promise<void> => {
      try {
        const since = cursor === null ? null : new Date(Date.parse(cursor) - OVERLAP_MS).toISOString();
        const { records, cursor: next } = await coordination.changedSince(since, this.owner);
        cursor = next;
        const nowMs = Date.parse(next);
        for (const r of records) {
          const sig = `${r.updatedAt}|${r.state}`;
          if (seen.get(r.id)?.sig === sig) continue;
          seen.set(r.id, { sig, atMs: nowMs });
          this.tell(this.remoteWatchers, r);
        }
        for (const [id, s] of seen) if (nowMs - s.atMs > 10 * OVERLAP_MS) seen.delete(id);
      } catch {
        /* the catalog did not answer: look again next time */
      }
      if (this.remoteWatchers.size === 0 || this.closed) {
        this.remotePoll = undefined;
        return;
      }
      this.remotePoll = setTimeout(() => void look(), this.remotePollMs);
      this.remotePoll.unref();
    };
    this.remotePoll = setTimeout(() => void look(), 0);
    this.remotePoll.unref();
  }

  /** How many jobs of the catalog match the filter's kind, state and key. */
  count(filter: Parameters<JobCatalog['count']>[0] = {}): Promise<number> {
    return this.catalog.count(filter);
  }

  /** Active job ids (for a graceful shutdown). */
  activeIds(): string[] {
    return [...this.active.keys()];
  }

  private async execute(a: Active, run: JobRun): Promise<JobRecord> {
    // Let start() return STARTED before anything runs.
    await new Promise((resolve) => setImmediate(resolve));
    const ctx: JobContext = {
      signal: a.controller.signal,
      progress: (p) => this.onProgress(a, p),
      finalizing: () => {
        a.controller.signal.throwIfAborted();
        if (this.coordination && a.inserted) {
          // The commit point: only while the lease is known to be ours (monotonic clock).
          const now = performance.now();
          if (now - a.renewedMono > this.leaseMs - leaseMargin(this.leaseMs)) throw this.loseLease(a, this.lapsedMessage(a, now));
        }
        this.transition(a, 'FINALIZING');
      },
    };
    try {
      a.controller.signal.throwIfAborted();
      const result = await run(ctx);
      a.record.result = result;
      this.finish(a, 'SUCCESS', null);
    } catch (err) {
      if (a.leaseLost) {
        this.finish(a, 'FAILED', { code: a.leaseLost.code, message: a.leaseLost.message });
      } else if (a.controller.signal.aborted && a.record.state !== 'FINALIZING') {
        this.finish(a, 'CANCELED', { code: 'CANCELLED', message: `Job ${a.record.id} was cancelled.` });
      } else if (err instanceof CairnError) {
        this.finish(a, 'FAILED', { code: err.code, message: err.message });
      } else {
        this.finish(a, 'FAILED', { code: 'INTERNAL', message: err instanceof Error ? err.message : String(err) });
      }
    }
    // The final record is in the catalog before the job leaves memory (and before wait() answers).
    await a.writes;
    await this.saveFinal(a.record);
    this.active.delete(a.record.id);
    if (this.active.size === 0 && this.watchdog !== undefined) {
      clearInterval(this.watchdog);
      this.watchdog = undefined;
    }
    this.onEvent({ type: 'ended', job: structuredClone(a.record), durationMs: Date.now() - a.startedMs });
    return a.record;
  }

  /** Starts the watchdog's timer when one is configured and not running (it stops when no job is active). */
  private armWatchdog(): void {
    if (this.stuckAfterMs <= 0 || this.watchdog !== undefined) return;
    this.watchdog = setInterval(() => this.checkStuck(), this.stuckCheckMs);
    this.watchdog.unref();
  }

  /**
   * Marks each running job whose progress has not moved for stuckAfterMs: progress.stalledSince
   * (persisted, so GET /v1/jobs shows it) and one 'stuck' event per job. FINALIZING and
   * CANCELLING jobs are left alone: they are ending.
   */
  checkStuck(nowMs = Date.now()): void {
    if (this.stuckAfterMs <= 0) return;
    for (const a of this.active.values()) {
      const r = a.record;
      if (isTerminal(r.state) || r.state === 'FINALIZING' || r.state === 'CANCELLING') continue;
      const sig = movement(r);
      if (sig !== a.moved) {
        // Moved since the last look (onProgress clears stalledSince itself; a state change may not).
        a.moved = sig;
        a.movedMs = nowMs;
        if (r.progress.stalledSince !== undefined) {
          delete r.progress.stalledSince;
          this.persist(a);
          this.notify(a);
        }
        continue;
      }
      if (r.progress.stalledSince !== undefined || nowMs - a.movedMs < this.stuckAfterMs) continue;
      const since = new Date(a.movedMs).toISOString();
      r.progress.stalledSince = since;
      r.updatedAt = this.now().toISOString();
      this.persist(a);
      this.notify(a);
      if (!a.stuckAlerted) {
        a.stuckAlerted = true;
        this.emitStuck(r, since, nowMs - a.movedMs);
      }
    }
  }

  private emitStuck(r: JobRecord, since: string, stalledMs: number): void {
    if (!this.alerts) return;
    const p = r.params;
    const what = typeof p.source === 'string' ? p.source : typeof p.target === 'string' ? p.target : typeof p.repository === 'string' ? p.repository : undefined;
    const minutes = Math.round(stalledMs / 60_000);
    try {
      this.alerts.emit({
        kind: 'stuck',
        at: this.now().toISOString(),
        ...(typeof p.source === 'string' ? { source: p.source } : {}),
        ...(typeof p.schedule === 'string' ? { schedule: p.schedule } : {}),
        job: { id: r.id, kind: r.kind, state: r.state },
        title: `${r.kind} ${r.id}${what ? ` of ${what}` : ''} is stuck`,
        message: `Job ${r.id} has reported no progress since ${since} (${minutes >= 1 ? `${minutes} min` : `${Math.round(stalledMs / 1000)} s`}; the server's --stuck-after is ${Math.round(this.stuckAfterMs / 1000)} s). Look at what it waits for (a lock in the database, an unreachable storage) or cancel it: cairn job cancel ${r.id}.`,
        details: { jobId: r.id, stalledSince: since, stalledSeconds: Math.round(stalledMs / 1000), stuckAfterSeconds: Math.round(this.stuckAfterMs / 1000) },
      });
    } catch {
      /* a sink never throws; if one does, the watchdog goes on */
    }
  }

  /**
   * Writes the final record again until it lands (the write queued by finish() may have failed):
   * a job must never read as running in the catalog after it ended. When every retry fails, the
   * record stays in memory (get/list/wait answer it) and the failure goes to the log.
   */
  private async saveFinal(record: JobRecord): Promise<void> {
    if (!this.failedWrites.has(record.id)) return;
    let last: unknown;
    // The queued write was the first attempt; each retry waits a little longer.
    for (const delay of this.finalRetryDelaysMs) {
      await new Promise((r) => setTimeout(r, delay));
      try {
        await this.catalog.update(structuredClone(record));
        this.failedWrites.delete(record.id);
        return;
      } catch (err) {
        last = err;
      }
    }
    this.failedWrites.delete(record.id);
    this.unsaved.set(record.id, structuredClone(record));
    this.log(
      `cairn: job ${record.id} ended ${record.state}, but its final state could not be written to the job catalog ` +
        `after ${this.finalRetryDelaysMs.length + 1} attempts (${errorText(last)}); this server reports it as ${record.state} until it restarts, ` +
        'after which the catalog shows it as interrupted.',
    );
  }

  private onProgress(a: Active, p: Progress): void {
    const { throughput, rowsPerSecond, etaSeconds } = progressRates(p, (Date.now() - a.startedMs) / 1000);
    const progress: JobProgress = {
      bytes: p.bytes,
      rows: p.rows,
      collectionsDone: p.collectionsDone,
      collectionsTotal: p.collectionsTotal,
      throughput,
      rowsPerSecond,
      ...(p.bytesTotal !== undefined ? { bytesTotal: p.bytesTotal } : {}),
      ...(p.rowsTotal !== undefined ? { rowsTotal: p.rowsTotal } : {}),
      ...(p.percent !== undefined ? { percent: p.percent } : {}),
      ...(p.estimated !== undefined ? { estimated: p.estimated } : {}),
      ...(etaSeconds !== undefined ? { etaSeconds } : {}),
      ...(p.collection !== undefined ? { collection: p.collection } : {}),
    };
    const stalledSince = a.record.progress.stalledSince;
    a.record.progress = progress;
    // The watchdog's clock restarts when the amounts move; a report of the same amounts keeps the mark.
    const sig = movement(a.record);
    if (sig !== a.moved) {
      a.moved = sig;
      a.movedMs = Date.now();
    } else if (stalledSince !== undefined) a.record.progress.stalledSince = stalledSince;
    const state = a.record.state;
    if (state !== 'CANCELLING' && state !== 'FINALIZING') {
      if (p.phase === 'transferring' && state === 'STARTED') return this.transition(a, 'TRANSFERRING');
      if ((p.phase === 'finalizing' || p.phase === 'done') && (state === 'STARTED' || state === 'TRANSFERRING')) return this.transition(a, 'TRANSFERRED');
    }
    a.record.updatedAt = this.now().toISOString();
    if (Date.now() - a.persistedMs >= this.persistEveryMs) this.persist(a);
    this.notify(a);
  }

  private transition(a: Active, state: JobState): void {
    a.record.state = state;
    a.record.updatedAt = this.now().toISOString();
    this.persist(a);
    this.notify(a);
  }

  private finish(a: Active, state: JobState, error: JobRecord['error']): void {
    a.record.error = error;
    a.record.finishedAt = this.now().toISOString();
    this.transition(a, state);
    a.listeners.clear();
  }

  /** Queues a write of the record as it is now; writes of one job land in order. */
  private persist(a: Active): void {
    a.persistedMs = Date.now();
    const snapshot = structuredClone(a.record);
    const id = snapshot.id;
    // The chain never rejects (each link catches), so writes land in order. A lost progress write
    // is not worth failing the job: the next write carries the whole record again, and the final
    // one is retried (saveFinal). The first failure of a job is logged, not swallowed.
    a.writes = a.writes.then(
      () => this.catalog.update(snapshot).then(() => void this.failedWrites.delete(id)),
    ).catch((err: unknown) => {
      if (!this.failedWrites.has(id)) this.log(`cairn: job ${id}: writing its ${snapshot.state} state to the job catalog failed (${errorText(err)}); retrying with the next change.`);
      this.failedWrites.add(id);
    });
  }

  private notify(a: Active): void {
    this.tell(a.listeners, a.record);
    this.tell(this.everyJob, a.record);
  }

  /** Each listener gets its own copy; a listener's failure is its own. */
  private tell(listeners: Set<JobListener>, record: JobRecord): void {
    for (const l of listeners) {
      try {
        l(structuredClone(record));
      } catch {
        /* a listener's failure is its own */
      }
    }
  }
}

function finalizingConflict(job: JobRecord): ConflictError {
  const what = job.kind === 'restore' || job.kind === 'drill' ? 'switching the restored data in' : 'committing its result';
  return new ConflictError(`Job ${job.id} is finalizing (${what}) and can no longer be cancelled; it ends in a moment.`);
}

/** "12 s", "1.5 s": a duration in ms as people read it. */
function seconds(ms: number): string {
  const s = ms / 1000;
  return `${s >= 10 ? Math.round(s) : Math.round(s * 10) / 10} s`;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function isTerminal(state: JobState): boolean {
  return TERMINAL_STATES.has(state);
}
