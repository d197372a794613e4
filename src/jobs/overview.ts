/**
 * The overview (GET /v1/overview): per source and repository, how its backups are doing —
 * newest good backup, last result, schedules, a status (failing, late, never, running, ok), sizes
 * and a short history — and per repository its totals. Built from backup summaries
 * (listBackupSummaries, cached by the server: one listing of backups/ per repository, no full
 * manifest reads) and the job center's backup jobs. No server types: the caller passes what it
 * knows (repositories it may open, schedules, how to read a schedule's source).
 */
import { listPacks } from '../repo/chunk-index.js';
import type { Repository } from '../repo/repository.js';
import { listBackupSummaries, type BackupSummary, type SummaryStore } from './backup-summaries.js';
import { TERMINAL_STATES, type JobRecord, type ScheduleState } from './ports.js';

export const OVERVIEW_STATUSES = ['failing', 'late', 'never', 'running', 'ok'] as const;
export type SourceStatus = (typeof OVERVIEW_STATUSES)[number];

/** How long past a due time a backup may take before a source counts as late. */
export const LATE_GRACE_MS = 5 * 60_000;
/** How many backups a source's history shows (the newest). */
export const HISTORY_LENGTH = 30;

export interface SourceHealth {
  /** The database it names (databaseKey of its location): one entry per database and repository. */
  key: string;
  /** The registered source whose location names this database, if any (the first of `names`). */
  name?: string;
  /** Every registered source naming this database (two names may register one database), sorted. */
  names?: string[];
  location: string;
  kind: string;
  /** The repository's name as a request names it ("default" or a registered name). */
  repository: string;
  backups: number;
  newest: { id: string; createdAt: string; completedAt: string } | null;
  /** Seconds since the newest backup completed; null without one. */
  ageSeconds: number | null;
  /** The newest backup job's outcome (or state while it runs), else the newest backup's. */
  lastResult: { status: string; at: string; jobId?: string; error?: { code: string; message: string } } | null;
  schedules: { name: string; cron: string; timezone: string; enabled: boolean; nextRun: string | null; intervalSeconds: number | null }[];
  status: SourceStatus;
  logicalBytes: number;
  /**
   * Σ newBytes of its backups: what each added to the repository when it was made. Not what the
   * source holds now: a copied backup added nothing here, and deleting a source's first backup
   * leaves its chunks to later ones without moving these numbers.
   */
  addedBytes: number;
  /** Σ logicalBytes / Σ newBytes; null when nothing was added. */
  dedupRatio: number | null;
  /** The newest HISTORY_LENGTH backups, oldest first. */
  history: { id: string; createdAt: string; durationMs: number; logicalBytes: number; storedBytes: number; newBytes: number }[];
}

export interface RepositoryOverview {
  name: string;
  location: string;
  backups: number;
  /** Bytes of the objects under data/ (the packs) as the storage lists them: what it really stores now. */
  storedBytes: number;
  /** Σ logicalBytes of its backups. */
  logicalBytes: number;
  /** logicalBytes / storedBytes; null when nothing is stored. */
  dedupRatio: number | null;
  /** Why it could not be listed (code and message, already safe to show); then the numbers are 0. */
  error?: { code: string; message: string };
}

export interface Overview {
  generatedAt: string;
  sources: SourceHealth[];
  repositories: RepositoryOverview[];
}

export interface OverviewInputs {
  /** The repositories the caller may name, by name; `open` may throw (reported in `error`). */
  repositories: { name: string; open: () => Promise<Repository> }[];
  store?: SummaryStore;
  /** Backup jobs (any order). */
  jobs: JobRecord[];
  schedules: ScheduleState[];
  /**
   * Registered sources (name and URL); each is shown even with no backup and no schedule (status
   * never): in every listed repository holding a backup of it, else in the first listed repository.
   */
  registeredSources?: { name: string; value: string }[];
  /** A schedule's source (registered name or URL) as a location and kind; undefined when it cannot be told. */
  sourceOf: (source: string) => { location: string; kind: string } | undefined;
  /** The schedule's next due time after `after` (as the scheduler computes it). */
  next: (schedule: ScheduleState, after: Date) => Date | null;
  /** The database a location names (jobs/database-key.ts databaseKey). */
  keyOf: (location: string) => string;
  /** An error as answered (code, message without secrets). */
  describeError: (err: unknown) => { code: string; message: string };
  now: Date;
  signal?: AbortSignal;
  /**
   * Leave out what each repository stores now (one listing of data/ each: many requests on an
   * object store): storedBytes 0 and dedupRatio null. The health monitor, which looks every
   * minute and needs only the backups, sets it.
   */
  skipStoredBytes?: boolean;
}

const ratio = (a: number, b: number): number | null => (b > 0 ? Math.round((a / b) * 100) / 100 : null);
const isRunning = (state: JobRecord['state']): boolean => !TERMINAL_STATES.has(state);

/** Seconds between two consecutive due times after `now`, null when it has fewer than two. */
function intervalSeconds(s: ScheduleState, next: OverviewInputs['next'], now: Date): number | null {
  const a = next(s, now);
  const b = a ? next(s, a) : null;
  return a && b ? Math.round((b.getTime() - a.getTime()) / 1000) : null;
}

/**
 * The overview over every repository given. Statuses: failing when the last result is FAILED;
 * late when an enabled schedule exists and the newest good backup is older than 1.5 × its
 * interval + 5 min, or there is none since the schedule's previous due time + 5 min; never
 * without a good backup; running while a backup job runs; else ok. Sorted in that order, then
 * oldest newest-backup first, then key.
 */
export async function buildOverview(inputs: OverviewInputs): Promise<Overview> {
  const { now } = inputs;
  const repositories: RepositoryOverview[] = [];
  const entries = new Map<string, { key: string; location: string; kind: string; repository: string; repoLocation: string; backups: BackupSummary[] }>();
  const entry = (key: string, repository: string, location: string, kind: string, repoLocation: string) => {
    const id = `${repository}\u0000${key}`;
    let e = entries.get(id);
    if (!e) entries.set(id, (e = { key, location, kind, repository, repoLocation, backups: [] }));
    return e;
  };
  const byRepoLocation = new Map<string, string>();
  for (const r of inputs.repositories) {
    try {
      const repo = await r.open();
      const listing = await listBackupSummaries(repo, { ...(inputs.store ? { store: inputs.store } : {}), ...(inputs.signal ? { signal: inputs.signal } : {}) });
      let logical = 0;
      for (const b of listing.summaries) {
        logical += b.size.logicalBytes;
        entry(inputs.keyOf(b.source.location), r.name, b.source.location, b.source.kind, repo.location).backups.push(b); // oldest first
      }
      byRepoLocation.set(repo.location, r.name);
      // What it stores now (copies, deletions, prunes included): one listing of data/, as `cairn stats` counts.
      let stored = 0;
      if (!inputs.skipStoredBytes) {
        const { packs } = await listPacks(repo.storage, inputs.signal);
        for (const p of packs.values()) stored += p.size;
      }
      repositories.push({ name: r.name, location: repo.location, backups: listing.summaries.length, storedBytes: stored, logicalBytes: logical, dedupRatio: ratio(logical, stored) });
    } catch (err) {
      repositories.push({ name: r.name, location: '', backups: 0, storedBytes: 0, logicalBytes: 0, dedupRatio: null, error: inputs.describeError(err) });
    }
  }
  // Registered sources, matched by the database their location names: shown where backups of
  // them are, else (never backed up) in the first listed repository, so none is left out.
  const namesOfKey = new Map<string, string[]>();
  const [firstRepo] = byRepoLocation; // [location, name] of the first repository listed
  for (const reg of inputs.registeredSources ?? []) {
    const src = inputs.sourceOf(reg.value);
    if (!src) continue;
    const key = inputs.keyOf(src.location);
    namesOfKey.set(key, [...(namesOfKey.get(key) ?? []), reg.name].sort());
    const anywhere = [...entries.values()].some((e) => e.key === key);
    if (!anywhere && firstRepo !== undefined) entry(key, firstRepo[1], src.location, src.kind, firstRepo[0]);
  }
  // Backup jobs, newest first, of the repositories listed.
  const jobs = [...inputs.jobs].sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id));
  const jobsOf = new Map<string, JobRecord[]>();
  for (const j of jobs) {
    const repoName = byRepoLocation.get(String(j.params.repository));
    const location = j.params.source;
    if (repoName === undefined || typeof location !== 'string') continue;
    const e = entries.get(`${repoName}\u0000${inputs.keyOf(location)}`) ?? entry(inputs.keyOf(location), repoName, location, inputs.sourceOf(location)?.kind ?? '', String(j.params.repository));
    const id = `${e.repository}\u0000${e.key}`;
    jobsOf.set(id, [...(jobsOf.get(id) ?? []), j]);
  }
  const locationOfName = new Map([...byRepoLocation].map(([location, name]) => [name, location]));
  const schedulesOf = new Map<string, ScheduleState[]>();
  for (const s of inputs.schedules) {
    const src = inputs.sourceOf(s.source);
    const repoLocation = locationOfName.get(s.repository);
    if (!src || repoLocation === undefined) continue; // a source it cannot tell, or a repository not listed here
    const e = entries.get(`${s.repository}\u0000${inputs.keyOf(src.location)}`) ?? entry(inputs.keyOf(src.location), s.repository, src.location, src.kind, repoLocation);
    const id = `${e.repository}\u0000${e.key}`;
    schedulesOf.set(id, [...(schedulesOf.get(id) ?? []), s]);
  }

  const sources: SourceHealth[] = [];
  for (const [id, e] of entries) {
    const backups = e.backups;
    const newest = backups.reduce<BackupSummary | undefined>((a, b) => (!a || b.completedAt > a.completedAt ? b : a), undefined);
    const myJobs = jobsOf.get(id) ?? [];
    const lastJob = myJobs[0];
    const lastResult: SourceHealth['lastResult'] = lastJob
      ? {
          status: lastJob.state,
          at: lastJob.finishedAt ?? lastJob.updatedAt,
          jobId: lastJob.id,
          ...(lastJob.error ? { error: lastJob.error } : {}),
        }
      : newest
        ? { status: 'SUCCESS', at: newest.completedAt }
        : null;
    const schedules = (schedulesOf.get(id) ?? []).map((s) => ({
      state: s,
      shown: {
        name: s.name,
        cron: s.cron,
        timezone: s.timezone,
        enabled: s.enabled,
        nextRun: s.enabled ? (inputs.next(s, now)?.toISOString() ?? null) : null,
        intervalSeconds: intervalSeconds(s, inputs.next, now),
      },
    }));
    const newestMs = newest ? Date.parse(newest.completedAt) : undefined;
    const late = schedules.some(({ state: s, shown }) => {
      if (!s.enabled) return false;
      if (shown.intervalSeconds !== null && newestMs !== undefined && now.getTime() - newestMs > 1.5 * shown.intervalSeconds * 1000 + LATE_GRACE_MS) return true;
      // None since the previous due time (+ grace): that run made no backup.
      if (s.lastDue !== null && now.getTime() > Date.parse(s.lastDue) + LATE_GRACE_MS && (newest === undefined || Date.parse(newest.createdAt) < Date.parse(s.lastDue))) return true;
      return false;
    });
    const status: SourceStatus =
      lastResult?.status === 'FAILED' ? 'failing' : late ? 'late' : !newest ? 'never' : lastJob && isRunning(lastJob.state) ? 'running' : 'ok';
    let logical = 0;
    let added = 0;
    for (const b of backups) {
      logical += b.size.logicalBytes;
      added += b.size.newBytes;
    }
    const names = namesOfKey.get(e.key);
    sources.push({
      key: e.key,
      ...(names !== undefined ? { name: names[0] as string, names } : {}),
      location: newest?.source.location ?? e.location,
      kind: newest?.source.kind ?? e.kind,
      repository: e.repository,
      backups: backups.length,
      newest: newest ? { id: newest.id, createdAt: newest.createdAt, completedAt: newest.completedAt } : null,
      ageSeconds: newestMs === undefined ? null : Math.max(0, Math.round((now.getTime() - newestMs) / 1000)),
      lastResult,
      schedules: schedules.map((s) => s.shown),
      status,
      logicalBytes: logical,
      addedBytes: added,
      dedupRatio: ratio(logical, added),
      history: backups.slice(-HISTORY_LENGTH).map((b) => ({ id: b.id, createdAt: b.createdAt, durationMs: b.durationMs, logicalBytes: b.size.logicalBytes, storedBytes: b.size.storedBytes, newBytes: b.size.newBytes })),
    });
  }
  const rank = (s: SourceStatus): number => OVERVIEW_STATUSES.indexOf(s);
  sources.sort((a, b) => rank(a.status) - rank(b.status) || (a.newest?.completedAt ?? '').localeCompare(b.newest?.completedAt ?? '') || a.key.localeCompare(b.key) || a.repository.localeCompare(b.repository));
  return { generatedAt: now.toISOString(), sources, repositories };
}
