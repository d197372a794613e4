/**
 * Health (issue 20): each source's newest good backup against its recovery point objective
 * (RPO), the jobs the watchdog found stuck, and the HealthMonitor that reports a breach once.
 *
 * Built on the overview (jobs/overview.ts buildOverview: the backup summaries of every listed
 * repository), never a second listing. The objective of a source is the one set by name
 * (`cairn source add --rpo 26h`), else the default from the enabled schedules that back it up:
 * the longest gap between their consecutive runs (the next SCHEDULE_RUNS of each, in its time
 * zone) plus 1/12 of it — a daily schedule gives 26 h — else none (never breached).
 */
import type { AlertSink } from '../core/alerts.js';
import { parseDuration, type Duration } from '../core/durations.js';
import { UsageError } from '../core/errors.js';
import { CairnError } from '../core/errors.js';
import { scrubSecrets } from '../sources/redact.js';
import { JobConflictError, type JobCenter } from './job-center.js';
import type { JobRecord, ScheduleSpec } from './ports.js';
import type { Launched } from './scheduler.js';
import type { Overview } from './overview.js';
import { cronOf } from './scheduler.js';

const SECONDS: Partial<Record<Duration['unit'], number>> = { s: 1, m: 60, h: 3600, d: 86_400, w: 7 * 86_400 };

/**
 * An objective as written, in seconds: a duration (30m, 26h, 2d, 1w; months and years are not
 * fixed lengths and are refused), or "default" (null: from the source's schedules).
 * @throws UsageError naming the forms.
 */
export function parseRpo(value: string): number | null {
  if (value.trim().toLowerCase() === 'default') return null;
  let d: Duration | undefined;
  try {
    d = parseDuration(value, 'recovery point objective');
  } catch {
    d = undefined;
  }
  const unit = d === undefined ? undefined : SECONDS[d.unit];
  if (d === undefined || unit === undefined) throw new UsageError(`Invalid recovery point objective "${value}": use s, m, h, d or w (26h, 2d, 1w), or "default" for the one from its schedules.`);
  return d.amount * unit;
}

/** How many coming runs of each schedule the default objective looks at. */
export const SCHEDULE_RUNS = 50;

export type RpoFrom = 'set' | 'schedule' | 'none';

/** One source (a database, over every repository listed) against its objective. */
export interface SourceRpo {
  /** The database its location names (databaseKey). */
  key: string;
  /** The registered source naming it, if any. */
  name?: string;
  location: string;
  /** When its newest good backup completed (ISO), in any listed repository; null: none. */
  lastSuccessAt: string | null;
  /** Seconds since lastSuccessAt; null without one. */
  ageSeconds: number | null;
  /** The objective in seconds; null: none. */
  rpoSeconds: number | null;
  rpoFrom: RpoFrom;
  /**
   * No good backup within the objective: older than it, or none at all while the source has
   * been registered for longer than it. Never with no objective.
   */
  breached: boolean;
}

/** A running job the job center's watchdog marked (progress.stalledSince). */
export interface StuckJob {
  id: string;
  kind: string;
  state: string;
  stalledSince: string;
  source?: string;
  schedule?: string;
}

export interface HealthReport {
  /** degraded: a source is past its objective or a job is stuck. */
  status: 'ok' | 'degraded';
  generatedAt: string;
  /** Breached first, then the oldest newest-backup first, then key. */
  sources: SourceRpo[];
  stuckJobs: StuckJob[];
}

/**
 * The default objective of a source backed up by `schedules` (enabled ones only), in seconds:
 * the longest gap between consecutive runs of all of them together, over the next SCHEDULE_RUNS
 * runs of each (cut where the shortest of those horizons ends, so that a sparse schedule's
 * far runs do not make gaps the dense one fills), plus 1/12 of it. null: no enabled schedule
 * with two coming runs.
 */
export function scheduleRpoSeconds(schedules: readonly { cron: string; timezone: string; enabled: boolean }[], now: Date): number | null {
  const runs: number[] = [];
  let horizon = Infinity;
  for (const s of schedules) {
    if (!s.enabled) continue;
    let times: Date[];
    try {
      times = cronOf(s.cron, s.timezone).nextRuns(SCHEDULE_RUNS, now);
    } catch {
      continue; // a schedule that cannot be read sets no objective (the scheduler reports it)
    }
    if (times.length < 2) continue;
    horizon = Math.min(horizon, (times[times.length - 1] as Date).getTime());
    for (const t of times) runs.push(t.getTime());
  }
  if (runs.length < 2) return null;
  const sorted = [...new Set(runs.filter((t) => t <= horizon))].sort((a, b) => a - b);
  let gap = 0;
  for (let i = 1; i < sorted.length; i++) gap = Math.max(gap, (sorted[i] as number) - (sorted[i - 1] as number));
  if (gap <= 0) return null;
  return Math.round((gap * 13) / 12 / 1000);
}

export interface HealthInputs {
  overview: Overview;
  /** Registered sources: name, objective set by name (seconds) and when registered. */
  registered: readonly { name: string; rpoSeconds?: number; createdAt: string; location?: string }[];
  /** Active jobs (any), of which those with progress.stalledSince are listed as stuck. */
  activeJobs: readonly JobRecord[];
  now: Date;
}

/**
 * Per source (database key), over every repository of the overview: its newest good backup,
 * age, objective and whether it is breached; plus the stuck jobs. Two registered names of one
 * database: the stricter (smaller) objective set on either counts.
 */
export function buildHealth({ overview, registered, activeJobs, now }: HealthInputs): HealthReport {
  const byName = new Map(registered.map((r) => [r.name, r]));
  const groups = new Map<string, Overview['sources']>();
  for (const s of overview.sources) groups.set(s.key, [...(groups.get(s.key) ?? []), s]);
  const sources: SourceRpo[] = [];
  for (const [key, entries] of groups) {
    const first = entries[0] as Overview['sources'][number];
    const names = [...new Set(entries.flatMap((e) => e.names ?? (e.name !== undefined ? [e.name] : [])))].sort();
    let newest: string | null = null;
    for (const e of entries) if (e.newest && (newest === null || e.newest.completedAt > newest)) newest = e.newest.completedAt;
    const set = names.map((n) => byName.get(n)?.rpoSeconds).filter((v): v is number => v !== undefined);
    const seen = new Set<string>();
    const schedules = entries.flatMap((e) => e.schedules).filter((s) => !seen.has(s.name) && seen.add(s.name));
    let rpoSeconds: number | null = null;
    let rpoFrom: RpoFrom = 'none';
    if (set.length > 0) {
      rpoSeconds = Math.min(...set);
      rpoFrom = 'set';
    } else {
      rpoSeconds = scheduleRpoSeconds(schedules, now);
      if (rpoSeconds !== null) rpoFrom = 'schedule';
    }
    const ageSeconds = newest === null ? null : Math.max(0, Math.round((now.getTime() - Date.parse(newest)) / 1000));
    // Never backed up: counted from its registration (a source just added is not late yet).
    const registeredAt = names.map((n) => byName.get(n)?.createdAt).filter((v): v is string => v !== undefined).sort()[0];
    const since = ageSeconds ?? (registeredAt !== undefined ? Math.round((now.getTime() - Date.parse(registeredAt)) / 1000) : null);
    const breached = rpoSeconds !== null && since !== null && since > rpoSeconds;
    sources.push({
      key,
      ...(names[0] !== undefined ? { name: names[0] } : {}),
      location: first.location,
      lastSuccessAt: newest,
      ageSeconds,
      rpoSeconds,
      rpoFrom,
      breached,
    });
  }
  // A registered source in no listed repository (none can be opened, or none is registered):
  // listed all the same, with no backup, so that it is not silently left out.
  const listed = new Set(sources.flatMap((s) => (s.name !== undefined ? [s.name] : [])));
  const seenNames = new Set(overview.sources.flatMap((e) => e.names ?? (e.name !== undefined ? [e.name] : [])));
  for (const r of registered) {
    if (listed.has(r.name) || seenNames.has(r.name)) continue;
    const since = Math.round((now.getTime() - Date.parse(r.createdAt)) / 1000);
    const rpoSeconds = r.rpoSeconds ?? null;
    sources.push({ key: r.location ?? r.name, name: r.name, location: r.location ?? '', lastSuccessAt: null, ageSeconds: null, rpoSeconds, rpoFrom: rpoSeconds === null ? 'none' : 'set', breached: rpoSeconds !== null && since > rpoSeconds });
  }
  sources.sort((a, b) => Number(b.breached) - Number(a.breached) || (a.lastSuccessAt ?? '').localeCompare(b.lastSuccessAt ?? '') || a.key.localeCompare(b.key));
  const stuckJobs: StuckJob[] = activeJobs
    .filter((j) => j.progress.stalledSince !== undefined)
    .map((j) => ({
      id: j.id,
      kind: j.kind,
      state: j.state,
      stalledSince: j.progress.stalledSince as string,
      ...(typeof j.params.source === 'string' ? { source: j.params.source } : {}),
      ...(typeof j.params.schedule === 'string' ? { schedule: j.params.schedule } : {}),
    }));
  const degraded = sources.some((s) => s.breached) || stuckJobs.length > 0;
  return { status: degraded ? 'degraded' : 'ok', generatedAt: now.toISOString(), sources, stuckJobs };
}

/**
 * "26h", "3d2h", "45m", "1m5s", "26h30s": an age or objective for people, exact to the second
 * (never rounded: an age just past its objective must not read as equal to it). Hours up to two
 * days (a daily schedule's 26 h reads as such), then days; zero units left out.
 */
export function formatSeconds(seconds: number): string {
  let left = Math.max(0, Math.floor(seconds));
  if (left === 0) return '0s';
  const parts: string[] = [];
  const units: [string, number][] = left >= 86_400 * 2 ? [['d', 86_400], ['h', 3600], ['m', 60], ['s', 1]] : [['h', 3600], ['m', 60], ['s', 1]];
  for (const [unit, size] of units) {
    const n = Math.floor(left / size);
    left -= n * size;
    if (n > 0) parts.push(`${n}${unit}`);
  }
  return parts.join('');
}

/**
 * Where open breaches are kept (the catalog's rpo_breaches table), so that a restarted server
 * does not report one again. Keyed by the source's database key.
 */
export interface BreachStore {
  /** Records a breach; true when it is new (not open already). */
  open(key: string, since: string): boolean;
  /** Clears a breach (a good backup within the objective arrived); true when one was open. */
  clear(key: string): boolean;
  /** The keys with an open breach. */
  openKeys(): string[];
}

export interface HealthMonitorOptions {
  /** The report as of now (the server builds it from the overview). */
  compute: () => Promise<HealthReport>;
  store: BreachStore;
  alerts?: AlertSink;
  /** How often, in ms (default 60 000); also once at start. */
  tickMs?: number;
  /** Where a failed computation is reported. */
  log?: (line: string) => void;
}

/**
 * Looks at the sources every tickMs (and at start): emits one 'rpo' event when a source's
 * objective is first breached, none again while the breach lasts (also across restarts: the
 * store keeps it), and forgets it when the source is within its objective again, so that a
 * later breach is reported anew. Keeps the latest report (`latest`) for /metrics.
 */
export class HealthMonitor {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<HealthReport | undefined> | undefined;
  /** The latest report and when it was made (Date.now() ms). */
  latest: { report: HealthReport; atMs: number } | undefined;

  constructor(private readonly options: HealthMonitorOptions) {}

  start(): void {
    if (this.timer !== undefined) return;
    void this.tick();
    this.timer = setInterval(() => void this.tick(), this.options.tickMs ?? 60_000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One look (a look already under way is joined, not doubled); resolves with its report, undefined when it failed (logged). */
  tick(): Promise<HealthReport | undefined> {
    this.running ??= this.look().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async look(): Promise<HealthReport | undefined> {
    let report: HealthReport;
    try {
      report = await this.options.compute();
    } catch (err) {
      this.options.log?.(`health: the sources could not be looked at: ${err instanceof Error ? err.message : String(err)}`);
      return undefined;
    }
    this.latest = { report, atMs: Date.now() };
    for (const s of report.sources) {
      if (!s.breached) {
        this.options.store.clear(s.key);
        continue;
      }
      if (!this.options.store.open(s.key, report.generatedAt)) continue;
      this.emit(s, report.generatedAt);
    }
    return report;
  }

  private emit(s: SourceRpo, at: string): void {
    if (!this.options.alerts) return;
    const who = s.name ?? s.location;
    const objective = s.rpoSeconds === null ? '' : formatSeconds(s.rpoSeconds);
    const age = s.ageSeconds === null ? 'it has no good backup' : `its newest good backup is ${formatSeconds(s.ageSeconds)} old (completed ${s.lastSuccessAt})`;
    try {
      this.options.alerts.emit({
        kind: 'rpo',
        at,
        source: who,
        title: `${who} has missed its recovery point objective (${objective})`,
        message: `${age}, past its objective of ${objective} (${s.rpoFrom === 'set' ? 'set with --rpo' : 'from its schedules'}). Look at its schedule runs and recent jobs (cairn status, GET /v1/health), or run a backup now.`,
        details: { key: s.key, location: s.location, lastSuccessAt: s.lastSuccessAt, ageSeconds: s.ageSeconds, rpoSeconds: s.rpoSeconds, rpoFrom: s.rpoFrom },
      });
    } catch {
      /* a sink never throws */
    }
  }
}

/**
 * A schedule launcher that also records a run that could not start as a FAILED backup job
 * (kind backup; params: the schedule, its id, the due time, and its source and repository as
 * the schedule names them, redacted; error: the code and reason), so that it is in GET /v1/jobs,
 * counts as the source's last result, and reaches whatever watches job ends (alerts). The
 * scheduler still records the run as failed with its reason, and the error is rethrown to it.
 * A run that waits for or skips because of another job (JobConflictError) is not a failure.
 * `redact`: a value as it may be shown (URLs without their password).
 */
export function recordingFailedStarts(
  launch: (spec: ScheduleSpec, dueAt: Date) => Promise<Launched>,
  center: Pick<JobCenter, 'recordFailed'>,
  redact: (value: string) => string,
  log?: (line: string) => void,
): (spec: ScheduleSpec, dueAt: Date) => Promise<Launched> {
  return async (spec, dueAt) => {
    try {
      return await launch(spec, dueAt);
    } catch (err) {
      if (!(err instanceof JobConflictError)) {
        const code = err instanceof CairnError ? err.code : 'INTERNAL';
        const message = scrubSecrets(`scheduled run of ${spec.name} due at ${dueAt.toISOString()} could not start: ${err instanceof Error ? err.message : String(err)}`);
        await center
          .recordFailed({
            kind: 'backup',
            params: { schedule: spec.name, scheduleId: spec.id, dueAt: dueAt.toISOString(), source: redact(spec.source), repository: redact(spec.repository), notStarted: true },
            error: { code, message },
          })
          .catch((e: unknown) => log?.(`schedule ${spec.name}: its failed run could not be recorded as a job: ${e instanceof Error ? e.message : String(e)}`));
      }
      throw err;
    }
  };
}
