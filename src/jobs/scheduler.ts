/**
 * Fires schedules: each due time at most once (recorded before anything starts, so a restart in
 * the middle cannot repeat it), a run missed while the server was down catches up once at
 * start-up when it is within the grace period and is recorded as skipped otherwise, a run
 * whose previous one is still active is skipped and recorded, and one that finds another backup
 * of its source running (a manual one) waits for it, one per schedule (queued, then delayed). A
 * run that cannot start or whose job fails is recorded as failed, with the reason. Time comes
 * from an injected clock.
 */
import { Cron } from 'croner';
import { ConflictError, NotFoundError, UsageError } from '../core/errors.js';
import { parseDuration } from '../core/durations.js';
import type { JobRecord, RunStatus, ScheduleSpec, ScheduleState, ScheduleStore } from './ports.js';
import { JobConflictError } from './job-center.js';
import { scrubSecrets } from '../sources/redact.js';
import type { RetentionPolicy } from './retention.js';

export interface Launched {
  jobId: string;
  /** The run's job once it has ended. */
  done: Promise<Pick<JobRecord, 'state' | 'error' | 'result'>>;
}

export interface SchedulerOptions {
  now: () => Date;
  /** How late a missed due time may still run at start-up (default 1 h). */
  graceMs?: number;
  /** Starts the backup job of one due time (throws when it cannot start, e.g. 409). */
  launch: (spec: ScheduleSpec, dueAt: Date) => Promise<Launched>;
  /**
   * Resolves when the job `jobId` has ended (JobCenter.wait). Given, a due time that finds
   * another backup of its source running (a manual one, another schedule's) is queued until that
   * job ends, then runs (recorded queued, then delayed); absent, it is skipped (skipped-running).
   */
  waitForJob?: (jobId: string) => Promise<unknown>;
  log?: (line: string) => void;
  /**
   * Told of a due time that could not start (recorded failed: the source no longer registered,
   * the repository unreachable…), with the reason, secrets scrubbed; the AlertCenter alerts on
   * it. Not told of skipped runs, nor of runs whose job started and failed (the job tells).
   */
  onRunFailed?: (spec: ScheduleSpec, dueAt: string, reason: string) => void;
}

/** A schedule's cron, validated: five fields or @hourly, @daily, @weekly, @monthly, @yearly. */
export function cronOf(expression: string, timezone: string): Cron {
  if (!/^@(hourly|daily|weekly|monthly|yearly|annually)$/.test(expression) && expression.trim().split(/\s+/).length !== 5) {
    throw new UsageError(`Invalid cron "${expression}": give five fields (minute hour day month weekday, e.g. "0 3 * * *") or @hourly, @daily, @weekly, @monthly, @yearly.`);
  }
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
  } catch {
    throw new UsageError(`Unknown time zone "${timezone}": use an IANA name such as Europe/Berlin, Asia/Tokyo or UTC.`);
  }
  try {
    return new Cron(expression, { timezone, paused: true });
  } catch (err) {
    throw new UsageError(`Invalid cron "${expression}": ${(err as Error).message}.`);
  }
}

export function retentionPolicy(spec: ScheduleSpec): RetentionPolicy {
  const r = spec.retention;
  return {
    ...(r.keepLast ? { keepLast: r.keepLast } : {}),
    ...(r.keepWithin ? { keepWithin: parseDuration(r.keepWithin, '--keep-within') } : {}),
    ...(r.keepHourly ? { keepHourly: r.keepHourly } : {}),
    ...(r.keepDaily ? { keepDaily: r.keepDaily } : {}),
    ...(r.keepWeekly ? { keepWeekly: r.keepWeekly } : {}),
    ...(r.keepMonthly ? { keepMonthly: r.keepMonthly } : {}),
    ...(r.keepYearly ? { keepYearly: r.keepYearly } : {}),
  };
}

/** A backup id from a schedule's pattern, e.g. "{source}-{yyyyMMdd-HHmmss}" → "shop-20261122-030000". */
export function backupIdFor(pattern: string, values: { source: string; schedule: string }, at: Date): string {
  const p2 = (n: number): string => String(n).padStart(2, '0');
  const date: Record<string, string> = {
    yyyy: String(at.getUTCFullYear()),
    MM: p2(at.getUTCMonth() + 1),
    dd: p2(at.getUTCDate()),
    HH: p2(at.getUTCHours()),
    mm: p2(at.getUTCMinutes()),
    ss: p2(at.getUTCSeconds()),
  };
  const out = pattern.replace(/\{([^}]+)\}/g, (_m, token: string) => {
    if (token === 'source') return values.source;
    if (token === 'schedule') return values.schedule;
    return token.replace(/yyyy|MM|dd|HH|mm|ss/g, (t) => date[t] as string);
  });
  return out.toLowerCase().replace(/[^a-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 100);
}

export class Scheduler {
  /** Runs in progress by schedule name: their job and when it ends. */
  private readonly active = new Map<string, { jobId: string; done: Promise<unknown> }>();
  /** Runs waiting for another backup of their source, by schedule name: at most one each. */
  private readonly queued = new Map<string, { dueAt: string; waitingFor: string; done: Promise<unknown> }>();
  private readonly graceMs: number;

  constructor(
    private readonly store: ScheduleStore,
    private readonly options: SchedulerOptions,
  ) {
    this.graceMs = options.graceMs ?? 3600_000;
  }

  /** The next due time of a schedule after `after`. */
  next(spec: ScheduleSpec, after: Date): Date | null {
    return cronOf(spec.cron, spec.timezone).nextRun(after);
  }

  /**
   * Handles every due time up to now; returns the jobs it started. Each schedule is read again
   * right before its due times are worked out: starting an earlier schedule's run awaits, and an
   * edit landing meanwhile (a new cron counts from the edit: lastDue moves to then) must not be
   * run by the spec read at the start of the tick. From that read to recording the run there is
   * no await, so no edit of this process comes in between.
   */
  async tick(): Promise<string[]> {
    const now = this.options.now();
    const started: string[] = [];
    await this.takeOver(now, started);
    for (const { name } of this.store.list()) {
      let s: ScheduleState;
      try {
        s = this.store.get(name);
      } catch (err) {
        if (err instanceof NotFoundError) continue; // removed since the list was read
        throw err;
      }
      if (!s.enabled) continue;
      const cron = cronOf(s.cron, s.timezone);
      const due: Date[] = [];
      for (let d = cron.nextRun(new Date(s.lastDue ?? s.createdAt)); d && d.getTime() <= now.getTime() && due.length < 100_000; d = cron.nextRun(d)) due.push(d);
      if (due.length === 0) continue;
      const at = now.toISOString();
      // Every due time but the latest was missed (the server was down): recorded, not run.
      for (const d of due.slice(-1000, -1)) this.store.recordRun(s.name, d.toISOString(), 'skipped-missed', at);
      const latest = due[due.length - 1] as Date;
      const dueAt = latest.toISOString();
      if (now.getTime() - latest.getTime() > this.graceMs) {
        this.store.recordRun(s.name, dueAt, 'skipped-missed', at);
      } else if (this.active.has(s.name)) {
        this.store.recordRun(s.name, dueAt, 'skipped-running', at, null, `the previous run (job ${this.active.get(s.name)?.jobId}) is still running`);
      } else if (this.queued.has(s.name)) {
        const q = this.queued.get(s.name);
        this.store.recordRun(s.name, dueAt, 'skipped-coalesced', at, null, `the run due at ${q?.dueAt} is still queued behind job ${q?.waitingFor}; one run waits per schedule`);
      } else if (this.store.recordRun(s.name, dueAt, 'started', at)) {
        try {
          const id = await this.start(s, latest);
          if (id !== undefined) started.push(id);
        } catch {
          /* recorded by start() */
        }
      }
      this.store.setLastDue(s.name, dueAt);
    }
    return started;
  }

  /**
   * Runs a schedule now, outside its cron (recorded under the current time); returns its job id.
   * Throws ConflictError (409) only when a job really holds the schedule's database (its previous
   * run, a manual backup, a restore into it), naming that job; otherwise the error that stopped
   * the run: NotFoundError for an unknown schedule or source or a missing repository, a storage
   * error for an unreachable one, and so on (recorded as a failed run).
   */
  async runNow(name: string): Promise<string> {
    const s = this.store.get(name);
    const now = this.options.now();
    const running = this.active.get(name);
    if (running) {
      const reason = `the previous run (job ${running.jobId}) is still running`;
      this.store.recordRun(name, now.toISOString(), 'skipped-running', now.toISOString(), null, reason);
      throw new ConflictError(`Schedule "${name}" was not run: ${reason}; wait for it or cancel it.`);
    }
    // A run recorded at this very time before (a refused one) is started over.
    if (!this.store.recordRun(name, now.toISOString(), 'started', now.toISOString())) this.store.setRunStatus(name, now.toISOString(), 'started');
    // Asked for now: a source held by another backup answers 409 at once (not queued).
    const id = await this.start(s, now, false);
    if (id === undefined) throw new Error('Internal error: a run-now was queued.');
    return id;
  }

  /** Waits for the runs in progress and those queued (tests; shutdown). */
  async idle(): Promise<void> {
    while (this.active.size > 0 || this.queued.size > 0) {
      await Promise.allSettled([...this.active.values(), ...this.queued.values()].map((r) => r.done));
    }
  }

  /**
   * Runs again, within the grace period, the due times a replica that is gone had claimed but
   * not finished (shared catalog: its job was failed as interrupted when its lease ran out, or it
   * died before starting one); ends the queued runs gone replicas left. Each due time is taken
   * over by one replica only (ScheduleStore.takeOverOrphaned).
   */
  private async takeOver(now: Date, started: string[]): Promise<void> {
    if (!this.store.takeOverOrphaned) return;
    this.store.endQueued('the server it was queued in stopped (its lease ran out) while the run waited behind another backup of its source; it did not run', false);
    const since = new Date(now.getTime() - this.graceMs).toISOString();
    const reason = `caught up at ${now.toISOString()}: the server that had claimed this due time stopped before its backup could finish`;
    for (const { schedule, dueAt } of this.store.takeOverOrphaned(since, now.toISOString(), reason)) {
      let s: ScheduleState;
      try {
        s = this.store.get(schedule);
      } catch {
        continue; // removed meanwhile
      }
      if (!s.enabled || this.active.has(s.name)) {
        this.store.setRunStatus(schedule, dueAt, 'failed', `${reason}; not run again: the schedule is ${s.enabled ? 'running here already' : 'disabled'}`);
        continue;
      }
      this.options.log?.(`schedule ${schedule}: run at ${dueAt} ${reason}`);
      try {
        const id = await this.start(s, new Date(dueAt));
        if (id !== undefined) started.push(id);
      } catch {
        /* recorded by start() */
      }
    }
  }

  /**
   * Marks the runs a stopped process left queued (they waited in its memory) as failed. Call
   * once at start-up, before the first tick, in the process that runs the schedules.
   */
  recoverQueued(): number {
    return this.store.endQueued('the server stopped while the run was queued behind another backup of its source; it did not run');
  }

  /** The runs queued now, by schedule name (what they wait for). */
  queuedRuns(): { schedule: string; dueAt: string; waitingFor: string }[] {
    return [...this.queued].map(([schedule, q]) => ({ schedule, dueAt: q.dueAt, waitingFor: q.waitingFor }));
  }

  /**
   * Launches a recorded run; records why when it cannot start (and throws that error). Returns
   * its job id, or undefined when it was queued behind another backup (`queueable`);
   * `delayedAfter`: the job a queued run waited for (the run is then recorded delayed).
   */
  private async start(s: ScheduleSpec, dueAt: Date, queueable = true, delayedAfter?: string): Promise<string | undefined> {
    const due = dueAt.toISOString();
    let run: Launched;
    try {
      run = await this.options.launch(s, dueAt);
    } catch (err) {
      // Another backup of the source (not this schedule's own run: that one is `active`) holds it:
      // wait for it rather than skip, when the caller can wait (the cron's runs only).
      // Another backup of the source queues the run — also the schedule's own previous run on
      // another replica sharing the catalog (this process's own is caught by `active` before):
      // that replica may be dead, its job failed only when its lease runs out, and the due time
      // must then still run on a survivor.
      if (queueable && this.options.waitForJob && err instanceof JobConflictError && err.running.kind === 'backup') {
        this.enqueue(s.name, due, err.running.id);
        return undefined;
      }
      const [status, verb] = whyNotStarted(err);
      const reason = scrubSecrets(err instanceof Error ? err.message : String(err));
      this.store.setRunStatus(s.name, due, status, reason);
      this.options.log?.(`schedule ${s.name}: run at ${due} ${verb}: ${reason}`);
      if (status === 'failed') {
        try {
          this.options.onRunFailed?.(s, due, reason);
        } catch {
          /* the hook's failure is its own */
        }
      }
      throw err;
    }
    this.store.setRunJob(s.name, due, run.jobId);
    if (delayedAfter !== undefined) this.store.setRunStatus(s.name, due, 'delayed', `queued behind job ${delayedAfter}, another backup of the same source; started at ${this.options.now().toISOString()} when it ended`);
    const done = run.done
      .then((job) => {
        if (job.state === 'SUCCESS' && job.result?.skipped === 'unchanged') {
          this.store.setRunStatus(s.name, due, 'skipped-unchanged', `unchanged since ${String(job.result.unchangedSince)}`);
        }
        // The run started but its job did not succeed: recorded as what it was.
        if (job.state === 'FAILED') {
          const reason = scrubSecrets(job.error ? `${job.error.code}: ${job.error.message}` : 'the backup job failed');
          this.store.setRunStatus(s.name, due, 'failed', reason);
          this.options.log?.(`schedule ${s.name}: run at ${due} failed: ${reason}`);
        }
      })
      .catch((err: unknown) => this.options.log?.(`schedule ${s.name}: run at ${due}: ${err instanceof Error ? err.message : String(err)}`))
      .finally(() => this.active.delete(s.name));
    this.active.set(s.name, { jobId: run.jobId, done });
    return run.jobId;
  }

  /**
   * Queues a recorded run behind `jobId` (another backup of its source): recorded queued, then
   * started when that job ends (recorded delayed), queued again if yet another backup took the
   * source meanwhile. A schedule disabled or removed meanwhile does not run.
   */
  private enqueue(name: string, due: string, jobId: string): void {
    const reason = `queued behind job ${jobId}, another backup of the same source; runs when it ends`;
    this.store.setRunStatus(name, due, 'queued', reason);
    this.options.log?.(`schedule ${name}: run at ${due} ${reason}`);
    const waitFor = this.options.waitForJob as (id: string) => Promise<unknown>;
    const entry = { dueAt: due, waitingFor: jobId, done: Promise.resolve() as Promise<unknown> };
    // The entry stays until the run has started (then it is `active`) or queued again (a new
    // entry), so that a tick in between never launches a second run of the schedule.
    entry.done = waitFor(jobId)
      .catch(() => undefined)
      .then(async () => {
        let spec: ScheduleSpec | undefined;
        try {
          spec = this.store.get(name);
        } catch {
          spec = undefined; // removed meanwhile (its runs with it)
        }
        if (spec && !spec.enabled) this.store.setRunStatus(name, due, 'failed', `the schedule was disabled while the run was queued behind job ${jobId}`);
        else if (spec) await this.start(spec, new Date(due), true, jobId).catch(() => undefined /* recorded by start() */);
      })
      .finally(() => {
        if (this.queued.get(name) === entry) this.queued.delete(name);
      });
    this.queued.set(name, entry);
  }
}

/**
 * A run that could not start: skipped only when another job really holds its database (a
 * backup of it: skipped-running; a restore into it: skipped-busy); anything else — the source
 * no longer registered, the repository missing or unreachable — is a failure.
 */
function whyNotStarted(err: unknown): [RunStatus, string] {
  if (err instanceof JobConflictError) return err.running.kind === 'backup' ? ['skipped-running', 'skipped'] : ['skipped-busy', 'skipped'];
  return ['failed', 'failed'];
}
