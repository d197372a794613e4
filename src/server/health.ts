/**
 * The server's overview and health, as GET /v1/overview, GET /v1/health, /metrics, the
 * HealthMonitor and `cairn status` build them: every repository the asker may name (the default
 * one, then the registered ones), the summary cache, backup jobs, schedules and registered
 * sources, handed to jobs/overview.ts and jobs/health.ts.
 */
import { CairnError } from '../core/errors.js';
import type { SqliteRegistry } from '../catalog/registry.js';
import type { SqliteScheduleStore } from '../catalog/schedules.js';
import { cachedDatabaseKey, type SummaryStore } from '../jobs/backup-summaries.js';
import { buildHealth, type HealthReport } from '../jobs/health.js';
import type { JobCenter } from '../jobs/job-center.js';
import { buildOverview, type Overview } from '../jobs/overview.js';
import type { JobRecord } from '../jobs/ports.js';
import { cronOf } from '../jobs/scheduler.js';
import type { Repository } from '../repo/repository.js';
import { openSource } from '../sources/index.js';
import { DEFAULT_REPOSITORY, type AccessPolicy } from './access.js';
import { safeMessage } from './redact.js';
import type { Scope } from './scope.js';

export interface OverviewDeps {
  /** Backup jobs and active jobs (a JobCenter, or the CLI's read of the catalog). */
  center: Pick<JobCenter, 'list'>;
  registry: SqliteRegistry;
  schedules: SqliteScheduleStore;
  access: AccessPolicy;
  summaries?: SummaryStore;
}

/** The overview of every repository `open` is asked for (by name; it may throw: reported per repository). */
export async function serverOverview(
  deps: OverviewDeps,
  open: (name: string) => Promise<Repository>,
  signal?: AbortSignal,
  skipStoredBytes = false,
  scope?: Scope,
): Promise<Overview> {
  const { registry, access } = deps;
  const names = [...(access.hasDefaultRepository ? [DEFAULT_REPOSITORY] : []), ...registry.list('repository').map((r) => r.name).filter((n) => n !== DEFAULT_REPOSITORY)].filter(
    (n) => !scope || scope.repositoryName(n),
  );
  const overview = await buildOverview({
    repositories: names.map((name) => ({ name, open: () => open(name) })),
    ...(deps.summaries ? { store: deps.summaries } : {}),
    jobs: (await deps.center.list({ kind: 'backup', limit: 1000 })).filter((j) => !scope || scope.job(j)),
    schedules: deps.schedules.list().filter((s) => !scope || scope.schedule(s)),
    registeredSources: registry.list('source').filter((r) => !scope || scope.sourceName(r.name)).map((r) => ({ name: r.name, value: r.name })),
    // Parsed only (no connection): a registered name's URL, or the URL a schedule was given.
    sourceOf: (value) => {
      try {
        const ref = access.databaseUrl(value, 'server');
        const source = openSource(ref.url, { untrusted: ref.untrusted });
        return { location: source.location, kind: source.kind };
      } catch {
        return undefined;
      }
    },
    next: (s, after) => cronOf(s.cron, s.timezone).nextRun(after),
    keyOf: cachedDatabaseKey,
    // A repository that cannot be opened or listed is named with why (no secrets), never fails the overview.
    describeError: (err) => (err instanceof CairnError ? { code: err.code, message: safeMessage(err.message) } : { code: 'INTERNAL', message: 'Internal error reading the repository; GET /v1/backups?repository=… answers with the details.' }),
    now: new Date(),
    ...(signal ? { signal } : {}),
    ...(skipStoredBytes ? { skipStoredBytes } : {}),
  });
  if (scope?.limited) overview.sources = overview.sources.filter((s) => scope.sourceLocation(s.location));
  return overview;
}

/**
 * The health report (and the overview it was built from) over the repositories `open` is asked
 * for; with a scoped token's `scope`, its sources, repositories and jobs only.
 */
export async function serverHealth(
  deps: OverviewDeps & { activeJobs: () => Promise<JobRecord[]> },
  open: (name: string) => Promise<Repository>,
  signal?: AbortSignal,
  scope?: Scope,
): Promise<{ report: HealthReport; overview: Overview }> {
  // The backups are all health needs: no listing of each repository's packs.
  const overview = await serverOverview(deps, open, signal, true, scope);
  const registered = deps.registry.list('source').filter((r) => !scope || scope.sourceName(r.name));
  const activeJobs = (await deps.activeJobs()).filter((j) => !scope || scope.job(j));
  const report = buildHealth({ overview, registered, activeJobs, now: new Date() });
  return { report, overview };
}

/** The jobs a JobCenter runs now, as records (for the stuck-job list). */
export async function activeJobsOf(center: JobCenter): Promise<JobRecord[]> {
  const out: JobRecord[] = [];
  for (const id of center.activeIds()) {
    // A job that ended between the two calls is no longer active: left out.
    const job = await center.get(id).catch(() => undefined);
    if (job) out.push(job);
  }
  return out;
}

/** How long /metrics reuses a report (ms): a scrape never lists every repository more often than this. */
export const METRICS_MAX_AGE_MS = 15_000;

/**
 * The health of this server's sources for requests, the monitor and /metrics. Requests compute
 * it fresh with their role's repositories; the monitor and /metrics share one server-side
 * computation, reused for METRICS_MAX_AGE_MS and never run twice at once.
 */
export class HealthService {
  private last: { value: { report: HealthReport; overview: Overview }; atMs: number } | undefined;
  private inFlight: Promise<{ report: HealthReport; overview: Overview }> | undefined;

  constructor(private readonly deps: OverviewDeps & { center: JobCenter }) {}

  private get withJobs(): OverviewDeps & { activeJobs: () => Promise<JobRecord[]> } {
    return { ...this.deps, activeJobs: () => activeJobsOf(this.deps.center) };
  }

  /** For a request: the repositories `open` (the asker's role) may name. */
  forRequest(open: (name: string) => Promise<Repository>, signal?: AbortSignal, scope?: Scope): Promise<{ report: HealthReport; overview: Overview }> {
    return serverHealth(this.withJobs, open, signal, scope);
  }

  /** Computed now as the server (every repository), and kept for cached(). */
  fresh(): Promise<{ report: HealthReport; overview: Overview }> {
    this.inFlight ??= serverHealth(this.withJobs, (name) => this.deps.access.repository(name, 'server'))
      .then((value) => {
        this.last = { value, atMs: Date.now() };
        return value;
      })
      .finally(() => {
        this.inFlight = undefined;
      });
    return this.inFlight;
  }

  /** The latest server-side computation when younger than maxAgeMs, else a fresh one. */
  cached(maxAgeMs = METRICS_MAX_AGE_MS): Promise<{ report: HealthReport; overview: Overview }> {
    if (this.last && Date.now() - this.last.atMs < maxAgeMs) return Promise.resolve(this.last.value);
    return this.fresh();
  }
}

/** A Prometheus label value: backslash, double quote and line feed escaped (text format 0.0.4). */
export const labelValue = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

/** Upper bounds (seconds) of cairn_job_duration_seconds's buckets. */
export const DURATION_BUCKETS = [1, 5, 15, 60, 300, 900, 3600, 10_800, 43_200] as const;

/**
 * The health metrics: per registered source (by name) its last good backup time, objective and
 * breach; per registered source and repository the stored and new bytes of its newest backup;
 * the duration of finished jobs by kind (a histogram). /metrics needs no token: sources without a
 * registered name are left out, as their location names a host and a user.
 */
export function healthMetricLines({ report, overview }: { report: HealthReport; overview: Overview }, jobs: readonly JobRecord[]): string[] {
  const src = (s: { name?: string }) => `source="${labelValue(s.name ?? '')}"`;
  const named = <T extends { name?: string }>(list: readonly T[]): T[] => list.filter((s) => s.name !== undefined);
  const lines: string[] = [
    '# HELP cairn_source_last_success_timestamp_seconds When the newest good backup of a source completed (Unix time), over every repository.',
    '# TYPE cairn_source_last_success_timestamp_seconds gauge',
    ...named(report.sources).filter((s) => s.lastSuccessAt !== null).map((s) => `cairn_source_last_success_timestamp_seconds{${src(s)}} ${Math.floor(Date.parse(s.lastSuccessAt as string) / 1000)}`),
    '# HELP cairn_source_rpo_seconds The recovery point objective of a source (set, or from its schedules).',
    '# TYPE cairn_source_rpo_seconds gauge',
    ...named(report.sources).filter((s) => s.rpoSeconds !== null).map((s) => `cairn_source_rpo_seconds{${src(s)},from="${s.rpoFrom}"} ${s.rpoSeconds}`),
    '# HELP cairn_source_rpo_breached 1 when a source has no good backup within its objective.',
    '# TYPE cairn_source_rpo_breached gauge',
    ...named(report.sources).filter((s) => s.rpoSeconds !== null).map((s) => `cairn_source_rpo_breached{${src(s)}} ${s.breached ? 1 : 0}`),
    '# HELP cairn_backup_stored_bytes Bytes the newest backup of a source stores in a repository (its chunks, shared ones included).',
    '# TYPE cairn_backup_stored_bytes gauge',
  ];
  const newestOf = named(overview.sources).filter((s) => s.history.length > 0).map((s) => ({ s, last: s.history[s.history.length - 1] as Overview['sources'][number]['history'][number] }));
  for (const { s, last } of newestOf) lines.push(`cairn_backup_stored_bytes{${src(s)},repository="${labelValue(s.repository)}"} ${last.storedBytes}`);
  lines.push('# HELP cairn_backup_new_bytes Bytes the newest backup of a source added to a repository.', '# TYPE cairn_backup_new_bytes gauge');
  for (const { s, last } of newestOf) lines.push(`cairn_backup_new_bytes{${src(s)},repository="${labelValue(s.repository)}"} ${last.newBytes}`);
  lines.push('# HELP cairn_jobs_stuck Running jobs that reported no progress for the server\'s --stuck-after.', '# TYPE cairn_jobs_stuck gauge', `cairn_jobs_stuck ${report.stuckJobs.length}`);
  // Finished jobs of the catalog (the newest 10 000), by kind: created → finished.
  const byKind = new Map<string, number[]>();
  for (const j of jobs) {
    if (j.finishedAt === null) continue;
    const seconds = Math.max(0, (Date.parse(j.finishedAt) - Date.parse(j.createdAt)) / 1000);
    byKind.set(j.kind, [...(byKind.get(j.kind) ?? []), seconds]);
  }
  lines.push('# HELP cairn_job_duration_seconds How long finished jobs took, by kind (start to end).', '# TYPE cairn_job_duration_seconds histogram');
  for (const [kind, seconds] of [...byKind].sort(([a], [b]) => a.localeCompare(b))) {
    const k = `kind="${labelValue(kind)}"`;
    for (const le of DURATION_BUCKETS) lines.push(`cairn_job_duration_seconds_bucket{${k},le="${le}"} ${seconds.filter((s) => s <= le).length}`);
    lines.push(`cairn_job_duration_seconds_bucket{${k},le="+Inf"} ${seconds.length}`);
    lines.push(`cairn_job_duration_seconds_sum{${k}} ${Math.round(seconds.reduce((a, b) => a + b, 0) * 1000) / 1000}`);
    lines.push(`cairn_job_duration_seconds_count{${k}} ${seconds.length}`);
  }
  return lines;
}
