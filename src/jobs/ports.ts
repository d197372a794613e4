/**
 * What the jobs layer needs from the layers that keep its records, as interfaces it owns:
 * job records and the JobCatalog that stores them (JobCenter), schedules, their runs and the
 * ScheduleStore (Scheduler). src/catalog implements them (SqliteJobCatalog, PostgresJobCatalog,
 * SqliteScheduleStore) and is handed in through constructors, so jobs never imports catalog.
 */

export type JobKind = 'backup' | 'restore' | 'copy' | 'sync' | 'verify' | 'prune' | 'repair' | 'export' | 'import' | 'drill';

/**
 * STARTED → TRANSFERRING → TRANSFERRED → FINALIZING → SUCCESS, or FAILED / CANCELED from any
 * state before FINALIZING (CANCELLING while a cancellation is under way). FINALIZING (a restore
 * switching in, a manifest being written) cannot be cancelled.
 */
export const JOB_STATES = ['STARTED', 'TRANSFERRING', 'TRANSFERRED', 'FINALIZING', 'CANCELLING', 'SUCCESS', 'FAILED', 'CANCELED'] as const;
export type JobState = (typeof JOB_STATES)[number];

export const TERMINAL_STATES: ReadonlySet<JobState> = new Set(['SUCCESS', 'FAILED', 'CANCELED']);

export interface JobProgress {
  bytes: number;
  /** Exact for restores and copies; for backups an estimate from the source's catalog (`estimated`). */
  bytesTotal?: number;
  /** Backups: rows expected, estimated from the source's catalog (PostgreSQL reltuples). */
  rowsTotal?: number;
  /** Share done, 0–100, never above 100 nor going back (backups: from the estimates). */
  percent?: number;
  /** bytesTotal, rowsTotal and percent are estimates ("about"). */
  estimated?: boolean;
  rows: number;
  collectionsDone: number;
  collectionsTotal: number;
  /** Bytes per second over the job so far. */
  throughput: number;
  /** Rows per second over the job so far (absent in records of older servers). */
  rowsPerSecond?: number;
  /** Seconds left, when bytesTotal or percent is known and the job is moving (an estimate for backups). */
  etaSeconds?: number;
  collection?: string;
  /**
   * Set by the job center's watchdog (stuckAfterMs): the job has reported no progress since this
   * time (ISO), for longer than it allows. Cleared when its progress moves again.
   */
  stalledSince?: string;
}

export interface JobError {
  /** A stable code (CairnError codes, or INTERRUPTED). */
  code: string;
  message: string;
}

export interface JobRecord {
  id: string;
  kind: JobKind;
  state: JobState;
  /** What "one active job per key" is about: a backup's source location. */
  key: string | null;
  /** The request, without secrets. */
  params: Record<string, unknown>;
  progress: JobProgress;
  /** The job's outcome (e.g. the backup manifest's id and totals) once it succeeded. */
  result: Record<string, unknown> | null;
  error: JobError | null;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
  /**
   * The server that runs (ran) it: its id (host name / data folder's server-id), as
   * GET /v1/servers lists the replicas of a shared catalog. Absent in older records.
   */
  server?: string;
}

export interface JobFilter {
  kind?: JobKind;
  state?: JobState;
  key?: string;
  /** At most this many (newest first; default 1000, at most 10 000). */
  limit?: number;
  /** Skip this many of the newest first (default 0). */
  offset?: number;
}

/**
 * Where job records live: an embedded SQLite file by default, PostgreSQL for shared deployments.
 * `owner` names the server that runs a job, so that a server starting up fails only the jobs it
 * left running itself, not those of another replica sharing the catalog.
 */
export interface JobCatalog {
  /**
   * Records a new job. `leaseMs`: a catalog shared by replicas (one with `coordination`) gives
   * the job a lease of that long, renewed by its owner's heartbeat. A catalog that enforces one
   * active job per key across replicas throws JobConflictError naming the running job.
   */
  insert(job: JobRecord, owner: string, leaseMs?: number): Promise<void>;
  update(job: JobRecord): Promise<void>;
  get(id: string): Promise<JobRecord | undefined>;
  /** Newest first. */
  list(filter?: JobFilter): Promise<JobRecord[]>;
  /** How many jobs match the filter's kind, state and key (limit and offset ignored). */
  count(filter?: JobFilter): Promise<number>;
  /** Every job of `owner` not in a terminal state becomes FAILED with `error`; returns how many. */
  failUnfinished(owner: string, error: JobError, at: string): Promise<number>;
  /**
   * Present when several servers share the catalog (PostgreSQL): leases, reaping of the jobs of
   * servers that stopped renewing them, cancellation across replicas, the list of servers.
   * Absent (SQLite): one server, whose memory is the truth.
   */
  readonly coordination?: JobCoordination;
  close(): Promise<void>;
}

/** A server as it announces itself in a shared catalog. */
export interface ServerInfo {
  /** The owner name of its jobs (serverId: host/random). */
  id: string;
  host: string;
  /** cairn's version. */
  version: string;
  /** Where its API listens (null until it does). */
  url: string | null;
  pid: number;
}

/** A server of a shared catalog, as GET /v1/servers answers it (times ISO, from the database's clock). */
export interface ServerRecord {
  id: string;
  host: string;
  version: string;
  url: string | null;
  pid: number;
  startedAt: string;
  heartbeatAt: string;
  leaseUntil: string;
  /** Its lease is still running (lease_until > now() in the database). */
  alive: boolean;
  stoppedAt: string | null;
  /** Its jobs not in a terminal state. */
  activeJobs: number;
}

export interface HeartbeatResult {
  /** Of the ids given, those whose lease was renewed. */
  renewed: string[];
  /** Of the ids given, those no longer active in the catalog (reaped by another replica, or gone). */
  lost: string[];
  /** Of the ids renewed, those another replica asked to cancel. */
  cancelRequested: string[];
}

/** What requestCancel found: the request was recorded, or why not. */
export type CancelRequest =
  | { outcome: 'requested'; job: JobRecord; owner: string }
  | { outcome: 'ended' | 'finalizing'; job: JobRecord; owner: string }
  | { outcome: 'missing' };

/** Coordination of jobs between servers sharing one catalog; every time comes from the database's clock. */
export interface JobCoordination {
  /**
   * Announces `server` alive for `leaseMs` and renews the lease of its jobs `activeIds` (those
   * still active in the catalog) by as long.
   */
  heartbeat(server: ServerInfo, activeIds: readonly string[], leaseMs: number): Promise<HeartbeatResult>;
  /**
   * Fails (INTERRUPTED, naming the owner) every active job whose lease has expired and answers
   * them; each is answered to one caller only, even when replicas reap at once.
   */
  reapExpired(): Promise<JobRecord[]>;
  /** Marks a job's cancellation as requested and tells its owner (NOTIFY). */
  requestCancel(id: string): Promise<CancelRequest>;
  /** Calls `listener` with each job id whose cancellation another replica requests; resolves once listening. Returns the stop function. */
  listenCancels(listener: (id: string) => void): Promise<() => Promise<void>>;
  listServers(): Promise<ServerRecord[]>;
  /** At a clean shutdown: the server is stopped and its lease ends now. */
  markStopped(serverId: string): Promise<void>;
  /**
   * The records of other servers' jobs (owner ≠ `exceptOwner`) changed after `since` (an opaque
   * cursor from a previous answer; null: none, only the cursor of now), oldest change first,
   * at most 1000, and the cursor to ask from next (the database's clock).
   */
  changedSince(since: string | null, exceptOwner: string): Promise<{ records: JobRecord[]; cursor: string }>;
}

/** A schedule's retention as written: counts, and `keepWithin` as a duration ("3d"). */
export interface RetentionRules {
  keepLast?: number;
  keepWithin?: string;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
}

/** What `cairn schedule add` records. Durations are kept as written ("3d"). */
export interface ScheduleSpec {
  /**
   * Unique and random (newScheduleId), written into every backup the schedule makes: retention
   * and --delete-scheduled-backups touch only backups carrying it (and its source's location).
   */
  id: string;
  name: string;
  /** Database URL or a registered source name. */
  source: string;
  repository: string;
  /** Five-field cron expression or @hourly / @daily / @weekly … */
  cron: string;
  /** IANA time zone the cron expression and calendar retention buckets are read in. */
  timezone: string;
  include?: string[];
  exclude?: string[];
  /** Backup id pattern: {source}, {schedule}, {yyyy} {MM} {dd} {HH} {mm} {ss} (UTC). */
  pattern: string;
  retention: RetentionRules;
  /** Expiry of each backup it makes, e.g. "7d". */
  expires?: string;
  /**
   * A second repository: after each run, the backups this schedule made that it lacks are
   * copied there (runSync with the schedule's id; nothing is ever deleted there).
   */
  copyTo?: string;
  /**
   * What a due time does when the source has not changed since the schedule's last backup:
   * "backup" (the default: a backup anyway) or "skip" (none; the run is recorded skipped-unchanged).
   */
  whenUnchanged?: 'backup' | 'skip';
  enabled: boolean;
  createdAt: string;
}

/**
 * started: its backup job was started (a job that then fails turns the run to failed);
 * queued: another backup of its source (a manual one, another schedule's) was running, so the
 * run waits for that job to end (`reason` names it); delayed: a queued run that then started
 * (`reason` says after which job); skipped-coalesced: it came while a run of the same schedule
 * was queued (at most one waits per schedule); skipped-unchanged: its schedule says
 * --when-unchanged skip and the source had not changed since the schedule's last backup
 * (`reason`: "unchanged since <backup id>"; its job made no backup);
 * skipped-running: the schedule's previous run was still running;
 * skipped-busy: a restore into its source was running; skipped-missed: the server was down;
 * failed: it could not run or its job failed (`reason` says why: source not registered,
 * repository missing or unreachable, the job's error…).
 */
export const RUN_STATUSES = ['started', 'queued', 'delayed', 'skipped-running', 'skipped-coalesced', 'skipped-unchanged', 'skipped-busy', 'skipped-missed', 'failed'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

export interface ScheduleRun {
  schedule: string;
  dueAt: string;
  status: RunStatus;
  jobId: string | null;
  at: string;
  /** Why it was skipped or failed (null for started runs). */
  reason: string | null;
}

export interface ScheduleState extends ScheduleSpec {
  /** The latest due time handled (run or skipped). */
  lastDue: string | null;
}

/**
 * Where schedules and the record of their due times live. A due time is recorded at most once
 * per schedule (recordRun answers false the second time), so it fires at most once even when a
 * server restarts in the middle of it.
 */
export interface ScheduleStore {
  /** Every schedule, by name. */
  list(): ScheduleState[];
  /** Throws NotFoundError for an unknown name. */
  get(name: string): ScheduleState;
  /** Moves the latest handled due time forward (never back). */
  setLastDue(name: string, dueAt: string): void;
  /** Records a due time; false when it was recorded before. */
  recordRun(name: string, dueAt: string, status: RunStatus, at: string, jobId?: string | null, reason?: string | null): boolean;
  setRunJob(name: string, dueAt: string, jobId: string): void;
  setRunStatus(name: string, dueAt: string, status: RunStatus, reason?: string | null): void;
  /**
   * Runs recorded `queued` by a process that has stopped (they waited in its memory) become
   * `failed` with `reason`; returns how many. Called once at start-up by the one process that
   * runs schedules for a data folder.
   */
  endQueued(reason: string, own?: boolean): number;
  /**
   * A shared catalog's due times since `since` whose claiming replica is gone (its job failed as
   * interrupted, or it died before starting one), each handed to exactly one caller, who runs
   * it; none for a catalog of one server.
   */
  takeOverOrphaned?(since: string, at: string, reason: string): { schedule: string; dueAt: string }[];
}
