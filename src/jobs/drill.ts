/**
 * Restore drills (issue 20): on a schedule or on request, restore the newest good backup of a
 * source into a scratch database, compare every restored table's row count with the count the
 * backup's manifest recorded, run the drill's checks (SQL whose first column of the first row
 * must be true), record the outcome and the measured recovery time (restore start → checks
 * done), and always drop the scratch copy. A drill that does not pass is a FAILED job (kind
 * "drill", params carrying `drill` and `source`), which the alerts layer reports like any
 * failed job.
 *
 * The drills and their runs are stored by src/catalog/drills.ts (DrillStore below); the engine
 * work (queries, counts, DROP) is the engines' ScratchTarget (src/sources/<engine>/scratch.ts).
 * Due times come from the schedules' cron code (cronOf): DrillScheduler is a small loop of its
 * own beside the backup Scheduler, whose store, runs and queueing are about backups.
 */
import { performance } from 'node:perf_hooks';
import type { AlertSink } from '../core/alerts.js';
import { CairnError, ConflictError, NotFoundError, UsageError } from '../core/errors.js';
import type { BackupManifest } from '../core/schemas.js';
import type { Repository } from '../repo/repository.js';
import type { RestoreTarget, ScratchTarget } from '../sources/types.js';
import { driverForKind, driverForUrl } from '../sources/registry.js';
import { databaseKey } from './database-key.js';
import type { JobCenter, JobContext } from './job-center.js';
import type { JobError, JobRecord } from './ports.js';
import { runRestore } from './restore.js';
import { cronOf } from './scheduler.js';

/** A drill as stored: what `cairn drill add` records (the target's URL stays in the catalog). */
export interface DrillSpec {
  /** A registered name's form (lowercase letters, digits, - and _). */
  name: string;
  /** The registered source whose backups the drill restores. */
  source: string;
  /** A registered repository name, or "default" (the server's BACKUP_* repository). */
  repository: string;
  /** Where the scratch copy goes, as people read it (the URL's location: never a secret). */
  target: string;
  /** Five cron fields or @daily …; null: run on request only. */
  cron: string | null;
  /** IANA zone of the cron (UTC when none was given). */
  timezone: string;
  /** SQL queries whose first column of the first row must be true (true, 1, 't'). */
  checks: string[];
  enabled: boolean;
  createdAt: string;
}

export interface DrillState extends DrillSpec {
  /** The latest due time handled by the scheduler (ISO), null before the first. */
  lastDue: string | null;
}

/** One restored table compared: `expected` from the manifest, `actual` counted in the scratch copy. */
export interface TableCount {
  name: string;
  expected: number;
  actual: number;
  ok: boolean;
}

/** One check: the SQL, the value its first column answered (as text), and whether it passed. */
export interface CheckResult {
  sql: string;
  ok: boolean;
  /** The first column of the first row, as text ("true", "1", "f"); null: no row. */
  value: string | null;
  /** Why it could not run (a syntax error, a missing table…). */
  error?: string;
}

export const DRILL_RUN_STATES = ['SUCCESS', 'FAILED', 'CANCELED'] as const;
export type DrillRunState = (typeof DRILL_RUN_STATES)[number];

/** One run of a drill, as recorded when it ended (or when a due time could not start it). */
export interface DrillRun {
  id: number;
  drill: string;
  /** null when the run could not start (the source not registered, the target busy…). */
  jobId: string | null;
  trigger: 'schedule' | 'manual';
  startedAt: string;
  finishedAt: string;
  state: DrillRunState;
  backupId: string | null;
  /** Seconds from the restore's start to the last check done: the measured recovery time. */
  recoverySeconds: number | null;
  /** How many tables' row counts were compared. */
  rowsCompared: number;
  tables: TableCount[];
  checks: CheckResult[];
  error: JobError | null;
}

/** Where drills and their runs live (src/catalog/drills.ts implements it). */
export interface DrillStore {
  list(): DrillState[];
  /** Throws NotFoundError for an unknown drill. */
  get(name: string): DrillState;
  /** Moves the latest handled due time forward (never back). */
  /**
   * Moves the drill's latest handled due time forward; true when this call moved it. The move is
   * the claim of that due time: on a shared catalog exactly one replica's call answers true.
   */
  setLastDue(name: string, dueAt: string): boolean;
  recordRun(run: Omit<DrillRun, 'id'>): DrillRun;
  /**
   * The target location where a run of drill `name` began creating its scratch copy and did not
   * finish dropping it (recorded before the restore begins, cleared after the drop); null: none.
   * Only a target recorded here may be replaced by the drill: cairn drops nothing it did not create.
   */
  scratchPending(name: string): string | null;
  /** Records (a location) or clears (null) the scratch copy a run of drill `name` is making. */
  setScratchPending(name: string, location: string | null): void;
}

/** A drill that ran but did not pass: counts that differ, a check false or failing, a scratch copy left behind. */
export class DrillFailedError extends CairnError {
  constructor(message: string) {
    super('CORRUPT', message);
  }
}

export interface RunDrillOptions {
  name: string;
  repo: Repository;
  /** The source's location: its newest good backup in `repo` is restored. */
  sourceLocation: string;
  target: RestoreTarget;
  scratch: ScratchTarget;
  checks: string[];
  /**
   * Locations the scratch target must not be (the source, every registered source): checked
   * again here, at run time, as a registration may have changed since the drill was added.
   */
  protectedLocations: string[];
  /** The drill store's record of the scratch copy this drill is making (see DrillStore.scratchPending). */
  pending: Pick<DrillStore, 'scratchPending' | 'setScratchPending'>;
  /** Told the backup the run restores as soon as it is chosen (a failed run still names it). */
  onBackup?: (backupId: string) => void;
  signal?: AbortSignal;
  onProgress?: JobContext['progress'];
  onFinalizing?: () => void;
}

/** What a drill found. `passed` false: `failures` says why, one sentence each. */
export interface DrillOutcome {
  passed: boolean;
  backupId: string;
  backupCreatedAt: string;
  target: string;
  recoverySeconds: number;
  /** Seconds the restore itself took (part of recoverySeconds). */
  restoreSeconds: number;
  rowsCompared: number;
  tables: TableCount[];
  checks: CheckResult[];
  failures: string[];
  /** The scratch copy was dropped. */
  dropped: boolean;
}

/**
 * Refuses (UsageError) a scratch target that is one of `protectedLocations` (the drill's source,
 * a registered source), by database key: a drill drops its target afterwards.
 */
export function refuseProtectedTarget(targetLocation: string, protectedLocations: string[], drill: string): void {
  const key = databaseKey(targetLocation);
  const hit = protectedLocations.find((l) => databaseKey(l) === key);
  if (hit !== undefined) {
    throw new UsageError(
      `Drill "${drill}": the scratch target ${targetLocation} is ${hit === targetLocation ? 'a registered source' : `the registered source ${hit}`}; a drill restores into it and then drops it. Give a scratch database nobody uses (e.g. a new database name or file).`,
    );
  }
}

/**
 * Refuses (ConflictError) a scratch target that exists now, unless the drill store records that
 * an earlier run of this drill created it and did not finish dropping it: a drill restores into
 * a target that does not exist and drops it afterwards, and never replaces nor drops a database
 * or file it did not create. `adding`: said when the drill is added (no run recorded yet).
 * Answers true when the target is such a leftover of the drill's own (to be replaced).
 */
export async function refuseExistingTarget(scratch: ScratchTarget, drill: string, pending: string | null, adding = false): Promise<boolean> {
  if (!(await scratch.exists())) return false;
  if (!adding && pending === scratch.location) return true;
  throw new ConflictError(
    `Drill "${drill}": the scratch target ${scratch.location} exists already, and cairn did not create it. A drill restores into a target that does not exist and drops it after every run, so it never replaces or drops a database or file it did not create. ` +
      (adding
        ? 'Choose a target that does not exist, or, after checking that it holds nothing you need, drop it yourself and add the drill again.'
        : `After checking that it holds nothing you need, drop it yourself and run the drill again; or give the drill a target that does not exist (cairn drill remove ${drill}, then cairn drill add ${drill} … --target <a new database or file>).`),
  );
}

/** A CLI flag in a message (--on-conflict, --no-owner…): a drill takes none of them. */
const FLAG = /(^|[\s(`'"])--[a-z][a-z-]*/;

/**
 * A restore error as a drill reports it: naming the drill, the backup and the target, with the
 * same code; advice that names restore flags (which a drill never passes and its user never gave)
 * left out, clause by clause.
 */
export function drillRestoreError(err: unknown, drill: string, backupId: string, target: string): unknown {
  if (!(err instanceof CairnError) || err.code === 'CANCELLED') return err;
  const sentences = err.message.split(/(?<=\.)\s+/).flatMap((sentence) => {
    const at = sentence.search(FLAG);
    if (at < 0) return [sentence];
    // The problem before the advice ("X is in the way: restore with --y"): kept, the advice dropped.
    const head = sentence.slice(0, at);
    const cut = Math.max(head.lastIndexOf(':'), head.lastIndexOf(';'), head.lastIndexOf(' ('), head.lastIndexOf(', or'));
    const kept = (cut > 0 ? head.slice(0, cut) : '').trim();
    return kept === '' ? [] : [`${kept}.`];
  });
  const message = sentences.join(' ').trim().replace(/\.+$/, '');
  return new CairnError(err.code, `Drill "${drill}" could not restore backup ${backupId} into ${target}: ${message}.`, { cause: err });
}

/** The newest backup of `sourceLocation` in `repo` whose manifest reads and records no lost chunks. */
export async function newestGoodBackup(repo: Repository, sourceLocation: string, signal?: AbortSignal): Promise<BackupManifest> {
  const key = databaseKey(sourceLocation);
  const { manifests } = await repo.readAllManifests(signal);
  const good = manifests.filter((m) => databaseKey(m.source.location) === key && !m.collections.some((c) => c.damage));
  const newest = good.reduce<BackupManifest | undefined>((a, b) => (!a || b.completedAt > a.completedAt ? b : a), undefined);
  if (!newest) throw new NotFoundError(`No backup of ${sourceLocation} in ${repo.location} to drill: make one first (cairn backup), or check the drill's source and repository.`);
  return newest;
}

/** A check's answer is a pass: true, 1, or the text 't' / 'true' / '1' (any case). */
function passes(value: unknown): boolean {
  if (value === true) return true;
  if (typeof value === 'number' || typeof value === 'bigint') return Number(value) === 1;
  if (typeof value === 'string') return /^(t|true|1)$/i.test(value.trim());
  return false;
}

const asText = (value: unknown): string | null => (value === undefined || value === null ? null : typeof value === 'string' ? value : Buffer.isBuffer(value) ? value.toString('utf8') : String(value));

/**
 * Runs one drill: the newest good backup of the source restored into the scratch target, which
 * must not exist (a copy an interrupted run of this drill left, as the store records, is dropped
 * first; anything else is refused: ConflictError, nothing touched), every table's rows counted
 * against the manifest, every check run, the scratch copy dropped whatever happened. Answers the
 * outcome (passed or not); throws what stopped the restore (CORRUPT for a damaged pack,
 * NOT_FOUND without a backup, CANCELLED; restore errors name the drill, backup and target),
 * after dropping the scratch copy it created.
 */
export async function runDrill(options: RunDrillOptions): Promise<DrillOutcome> {
  const { scratch, target, pending, name } = options;
  refuseProtectedTarget(target.location, [options.sourceLocation, ...options.protectedLocations], name);
  const manifest = await newestGoodBackup(options.repo, options.sourceLocation, options.signal);
  options.onBackup?.(manifest.id);
  // Checked last before anything is created: a target that exists is replaced only when it is
  // the leftover of an interrupted run of this drill (recorded below, before the restore).
  const leftover = await refuseExistingTarget(scratch, name, pending.scratchPending(name));
  pending.setScratchPending(name, scratch.location);
  let outcome: DrillOutcome | undefined;
  let failure: unknown;
  /** The target turned out to be someone else's (it appeared after the check): never dropped. */
  let notOurs = false;
  const started = performance.now();
  try {
    if (leftover) await scratch.drop();
    let restored;
    try {
      // Into a target that does not exist (onConflict fail: the restore itself refuses to write
      // into anything that holds objects); no sessions policy: there is nothing to switch.
      restored = await runRestore({
        repo: options.repo,
        backupId: manifest.id,
        target,
        onConflict: 'fail',
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
        ...(options.onFinalizing ? { onFinalizing: options.onFinalizing } : {}),
      });
    } catch (err) {
      if (err instanceof CairnError && err.code === 'CONFLICT') notOurs = true;
      throw drillRestoreError(err, name, manifest.id, scratch.location);
    }
    const into = restored.plan?.database;
    if (into === 'existing' || into === 'existing-empty') {
      notOurs = true;
      throw new ConflictError(`Drill "${name}": the scratch target ${scratch.location} was created by someone else while the drill began; cairn restored backup ${manifest.id} into it and leaves it as it is (it drops only what it created). Check it, drop it yourself, and run the drill again.`);
    }
    const restoreSeconds = (performance.now() - started) / 1000;
    const tables: TableCount[] = [];
    for (const entry of manifest.collections) {
      const actual = await scratch.countRows(entry, options.signal);
      if (actual !== undefined) tables.push({ name: entry.name, expected: entry.rowCount, actual, ok: actual === entry.rowCount });
    }
    const checks: CheckResult[] = [];
    for (const sql of options.checks) {
      try {
        const value = await scratch.query(sql, options.signal);
        checks.push({ sql, ok: passes(value), value: asText(value) });
      } catch (err) {
        checks.push({ sql, ok: false, value: null, error: (err as Error).message });
      }
    }
    const recoverySeconds = (performance.now() - started) / 1000;
    const failures = [
      ...tables.filter((t) => !t.ok).map((t) => `table ${t.name} has ${t.actual} rows, the backup recorded ${t.expected}`),
      // The engines' messages end with a period; the sentences are joined and closed by the caller.
      ...checks.filter((c) => !c.ok).map((c) => `check ${JSON.stringify(c.sql)} ${c.error ? `failed: ${c.error.trim().replace(/\.+$/, '')}` : `answered ${c.value ?? 'no row'}, not true`}`),
    ];
    outcome = {
      passed: failures.length === 0,
      backupId: manifest.id,
      backupCreatedAt: manifest.createdAt,
      target: scratch.location,
      recoverySeconds: round(recoverySeconds),
      restoreSeconds: round(restoreSeconds),
      rowsCompared: tables.length,
      tables,
      checks,
      failures,
      dropped: false,
    };
  } catch (err) {
    failure = err;
  }
  // Always: a scratch copy left behind holds the data of a production database.
  let dropError: unknown;
  if (notOurs) pending.setScratchPending(name, null);
  else {
    try {
      await scratch.drop();
      pending.setScratchPending(name, null);
    } catch (err) {
      // Still recorded: the next run of this drill may replace the copy left behind.
      dropError = err;
    }
  }
  if (failure !== undefined) throw failure;
  const result = outcome as DrillOutcome;
  if (dropError === undefined) result.dropped = true;
  else {
    result.passed = false;
    result.failures.push(`the scratch copy ${scratch.location} could not be dropped: ${(dropError as Error).message}; drop it by hand`);
  }
  return result;
}

const round = (seconds: number): number => Math.round(seconds * 1000) / 1000;

/** What a drill needs opened to run, resolved from its stored spec (the server's or the CLI's way). */
export interface OpenedDrill {
  spec: DrillState;
  repo: Repository;
  sourceLocation: string;
  target: RestoreTarget;
  scratch: ScratchTarget;
  protectedLocations: string[];
}

export interface DrillLauncherOptions {
  center: JobCenter;
  store: DrillStore;
  /** Resolves a drill's source, repository and target (throws NotFoundError, UsageError…). */
  open: (name: string) => Promise<OpenedDrill>;
  now?: () => Date;
}

/**
 * Starts drill `name` as a job (kind "drill") and answers its STARTED record; the run is
 * recorded in the store when it ends. Throws before any job exists when the drill cannot be
 * opened (unknown source, repository…) or its target is busy (409, JobConflictError).
 */
export async function startDrillJob(options: DrillLauncherOptions, name: string, trigger: DrillRun['trigger']): Promise<JobRecord> {
  const now = options.now ?? (() => new Date());
  const opened = await options.open(name);
  const { spec, repo, scratch } = opened;
  refuseProtectedTarget(scratch.location, [opened.sourceLocation, ...opened.protectedLocations], name);
  // Said before any job exists (a 409 to run-now, a FAILED run and an alert on schedule).
  await refuseExistingTarget(scratch, name, options.store.scratchPending(name));
  let jobIdOf: (id: string) => void = () => undefined;
  const jobId = new Promise<string>((resolve) => (jobIdOf = resolve));
  const startedAt = now().toISOString();
  const record = async (state: DrillRunState, outcome: Partial<DrillOutcome>, error: JobError | null): Promise<void> => {
    options.store.recordRun({
      drill: name,
      jobId: await jobId,
      trigger,
      startedAt,
      finishedAt: now().toISOString(),
      state,
      backupId: outcome.backupId ?? null,
      recoverySeconds: outcome.recoverySeconds ?? null,
      rowsCompared: outcome.rowsCompared ?? 0,
      tables: outcome.tables ?? [],
      checks: outcome.checks ?? [],
      error,
    });
  };
  const job = await options.center.start({
    kind: 'drill',
    // One job at a time per scratch database (a restore into it, another drill).
    exclusiveKey: databaseKey(scratch.location),
    params: { drill: name, source: spec.source, repository: repo.location, target: scratch.location, trigger, checks: spec.checks.length },
    run: async (ctx) => {
      let outcome: DrillOutcome;
      let backupId: string | undefined;
      try {
        outcome = await runDrill({
          name,
          repo,
          sourceLocation: opened.sourceLocation,
          target: opened.target,
          scratch,
          checks: spec.checks,
          protectedLocations: opened.protectedLocations,
          pending: options.store,
          onBackup: (id) => (backupId = id),
          signal: ctx.signal,
          onProgress: ctx.progress,
          onFinalizing: ctx.finalizing,
        });
      } catch (err) {
        const code = err instanceof CairnError ? err.code : 'INTERNAL';
        await record(code === 'CANCELLED' ? 'CANCELED' : 'FAILED', backupId !== undefined ? { backupId } : {}, { code, message: (err as Error).message });
        throw err;
      }
      if (!outcome.passed) {
        const error = new DrillFailedError(`Drill "${name}" of backup ${outcome.backupId} failed: ${outcome.failures.join('; ')}.`);
        await record('FAILED', outcome, { code: error.code, message: error.message });
        throw error;
      }
      await record('SUCCESS', outcome, null);
      return { ...outcome };
    },
  });
  jobIdOf(job.id);
  return job;
}

export interface DrillSchedulerOptions {
  now: () => Date;
  /** Starts one due run (startDrillJob with trigger "schedule"); throws when it cannot start. */
  launch: (name: string) => Promise<JobRecord>;
  /** Told when a due time could not start its drill (recorded FAILED in the store too). */
  alerts?: AlertSink;
  log?: (line: string) => void;
}

/**
 * Runs drills on their cron: at each tick, a drill whose next due time (after the latest one
 * handled, or after its creation) has passed runs once, however many due times passed meanwhile
 * (a server that was down runs a missed drill once when it starts). A due time that cannot start
 * its drill is a FAILED run with the reason, and a failure alert.
 */
export class DrillScheduler {
  constructor(
    private readonly store: DrillStore,
    private readonly options: DrillSchedulerOptions,
  ) {}

  /** The next due time of a drill after `after`, or null (no cron, disabled, no more runs). */
  static next(spec: Pick<DrillSpec, 'cron' | 'timezone' | 'enabled'>, after: Date): Date | null {
    if (!spec.enabled || spec.cron === null) return null;
    return cronOf(spec.cron, spec.timezone).nextRun(after);
  }

  /** Handles every drill that is due; answers the jobs it started. */
  async tick(): Promise<string[]> {
    const now = this.options.now();
    const started: string[] = [];
    for (const d of this.store.list()) {
      if (!d.enabled || d.cron === null) continue;
      let cron;
      try {
        cron = cronOf(d.cron, d.timezone);
      } catch (err) {
        this.options.log?.(`drill ${d.name}: ${(err as Error).message}`);
        continue;
      }
      let due = cron.nextRun(new Date(d.lastDue ?? d.createdAt));
      if (!due || due > now) continue;
      for (let next = cron.nextRun(due); next && next <= now; next = cron.nextRun(next)) due = next;
      const dueAt = due.toISOString();
      // Claimed by this server, or by another replica sharing the catalog first: then it is theirs.
      if (!this.store.setLastDue(d.name, dueAt)) continue;
      try {
        started.push((await this.options.launch(d.name)).id);
      } catch (err) {
        const code = err instanceof CairnError ? err.code : 'INTERNAL';
        const message = (err as Error).message;
        this.options.log?.(`drill ${d.name} due ${dueAt} could not start: ${message}`);
        this.store.recordRun({
          drill: d.name, jobId: null, trigger: 'schedule', startedAt: dueAt, finishedAt: now.toISOString(), state: 'FAILED',
          backupId: null, recoverySeconds: null, rowsCompared: 0, tables: [], checks: [], error: { code, message },
        });
        this.options.alerts?.emit({
          kind: 'failure',
          at: now.toISOString(),
          source: d.source,
          drill: d.name,
          title: `restore drill ${d.name} could not start`,
          message,
          details: { dueAt, code },
        });
      }
    }
    return started;
  }
}

/** What `cairn drill add` and POST /v1/drills take. */
export interface DrillInput {
  name: string;
  source: string;
  /** Absent: "default". */
  repository?: string;
  /** The scratch database's URL (may carry a password: kept in the catalog only). */
  target: string;
  cron?: string;
  timezone?: string;
  checks?: string[];
  disabled?: boolean;
}

/** Limits of a drill's checks: each one SQL query run on the scratch copy. */
export const MAX_CHECKS = 50;
export const MAX_CHECK_LENGTH = 10_000;

export interface DrillEnvironment {
  /** The URL of a registered source, or undefined. */
  sourceUrl(name: string): string | undefined;
  /** The locations of every registered source (a scratch target must be none of them). */
  sourceLocations(): string[];
  /** Extra checks of a URL the server makes (its data folder, its job catalog); throws ForbiddenError. */
  checkTargetUrl?(url: string): void;
  /** Opens a repository by the drill's value ("default" or a registered name). */
  openRepository(value: string): Promise<Repository>;
  openSource(url: string): { location: string; kind: string };
  openTarget(url: string): RestoreTarget;
  openScratch(url: string): ScratchTarget;
}

/**
 * A drill as it will be stored, checked: the source is registered, the cron and zone are valid,
 * the target names one database of the source's engine and is no registered source (nor the
 * server's own files), the checks are SQL text within limits. Answers the spec (target: the
 * location) and the target URL to keep. Throws UsageError / NotFoundError naming the problem.
 */
export async function buildDrillSpec(input: DrillInput, env: DrillEnvironment, now: Date): Promise<{ spec: DrillSpec; targetUrl: string }> {
  const sourceUrl = env.sourceUrl(input.source);
  if (sourceUrl === undefined) throw new NotFoundError(`Drill "${input.name}": no source named "${input.source}" is registered; a drill restores backups of a registered source (cairn source add ${input.source} <url>).`);
  const timezone = input.timezone ?? 'UTC';
  if (input.cron !== undefined) cronOf(input.cron, timezone);
  else if (input.timezone !== undefined) cronOf('@daily', timezone); // the zone checked all the same
  const checks = input.checks ?? [];
  if (checks.length > MAX_CHECKS) throw new UsageError(`Drill "${input.name}" has ${checks.length} checks; at most ${MAX_CHECKS}.`);
  for (const c of checks) {
    if (c.trim() === '' || c.length > MAX_CHECK_LENGTH) throw new UsageError(`Drill "${input.name}": each check is one SQL query of 1 to ${MAX_CHECK_LENGTH} characters whose first column is true when it passes, e.g. "SELECT count(*) > 0 FROM orders".`);
  }
  env.checkTargetUrl?.(input.target);
  const scratch = env.openScratch(input.target);
  const target = env.openTarget(input.target);
  const source = env.openSource(sourceUrl);
  refuseProtectedTarget(scratch.location, [source.location, ...env.sourceLocations()], input.name);
  // A backup of one engine cannot be restored into another's database: said now, not at the first run.
  if (driverForUrl(input.target) !== driverForUrl(sourceUrl)) {
    throw new UsageError(`Drill "${input.name}": the source ${source.location} and the scratch target ${scratch.location} are different engines; give a scratch database of the source's engine.`);
  }
  // A variant of the engine (a whole PostgreSQL server) backs up several databases: a drill
  // restores one database into one scratch database.
  if (driverForKind(source.kind) !== driverForKind(target.kind)) {
    throw new UsageError(`Drill "${input.name}": the source ${source.location} is a ${source.kind} source and the scratch target ${scratch.location} one database; a drill restores a source of one database (register one database of that server as the drill's source).`);
  }
  await refuseExistingTarget(scratch, input.name, null, true);
  return {
    spec: {
      name: input.name,
      source: input.source,
      repository: input.repository ?? 'default',
      target: scratch.location,
      cron: input.cron ?? null,
      timezone,
      checks,
      enabled: !input.disabled,
      createdAt: now.toISOString(),
    },
    targetUrl: input.target,
  };
}

/**
 * The `open` of DrillLauncherOptions over a drill store and an environment: reads the drill,
 * resolves its source (still registered?), repository and target, and checks the target again.
 */
export function drillOpener(store: DrillStore & { targetUrl(name: string): string }, env: DrillEnvironment): (name: string) => Promise<OpenedDrill> {
  return async (name) => {
    const spec = store.get(name);
    const sourceUrl = env.sourceUrl(spec.source);
    if (sourceUrl === undefined) throw new NotFoundError(`Drill "${name}" names source "${spec.source}", which is no longer registered: register it again (cairn source add ${spec.source} <url>) or remove the drill.`);
    const url = store.targetUrl(name);
    env.checkTargetUrl?.(url);
    const repo = await env.openRepository(spec.repository);
    return {
      spec,
      repo,
      sourceLocation: env.openSource(sourceUrl).location,
      target: env.openTarget(url),
      scratch: env.openScratch(url),
      protectedLocations: env.sourceLocations(),
    };
  };
}
