/**
 * A typed client for the cairn REST API (docs/api.md). Uses the platform's fetch; no other
 * dependency, so other TypeScript projects can import it alone:
 *
 *   const cairn = new CairnClient({ url: 'http://127.0.0.1:8080', token: process.env.CAIRN_TOKEN });
 *   const job = await cairn.backups.create({ source: 'app', repository: 'prod' }, { waitForCompletion: true });
 *   console.log(job.result?.backupId);
 */
import { TERMINAL_STATES } from '../catalog/types.js';
// Types only: they are erased from the built SDK, which loads neither zod nor the server.
import type { BackupDetail, BackupInProgress, BackupListed, BackupUnfinished, Job, Registration, Schedule, ScheduleRun } from '../server/schemas.js';
import type { AnswerOf, QueryOf, RequestOf } from '../server/routes/table.js';

/*
 * Request and answer types come from the server's route table and schemas (src/server), the
 * same ones that check requests and generate /openapi.json: no hand-made copies to drift.
 */
export type { BackupDetail, BackupInProgress, BackupListed, BackupUnfinished, Registration, Schedule, ScheduleRun } from '../server/schemas.js';
export type { RunStatus } from '../catalog/schedules.js';

/** A job record as the API answers it. */
export type JobRecord = Job;
export type JobKind = Job['kind'];
export type JobState = Job['state'];
export type JobProgress = Job['progress'];
/** One due time of a schedule: started, skipped (why) or failed (why). */
export type ScheduleRunRecord = ScheduleRun;
export type RegisteredSource = Registration & { kind: 'source' };
export type RegisteredRepository = Registration & { kind: 'repository' };
/** A backup in a listing: complete (status SUCCESS, from its manifest) or a job's (running, failed, cancelled). */
export type BackupSummary = BackupListed | BackupUnfinished;

export interface ClientOptions {
  /** The server's base URL, e.g. http://127.0.0.1:8080. */
  url: string;
  token?: string;
  /** For tests and custom transports. */
  fetch?: typeof fetch;
}

/**
 * `source`, `target`, `repository`, `from`, `to`: names registered on the server (sources.add,
 * repositories.add; "default" is the server's BACKUP_* repository, used when `repository` is
 * left out). URLs and paths only when the server runs with --allow-urls (never for viewers).
 */
export type CreateBackupRequest = RequestOf<'createBackup'>;
/**
 * renames: an object of "old name": "new name". onConflict "replace" makes the whole target
 * database the backup (no include/exclude/renames), with `sessions` ("refuse" | "wait" |
 * "terminate") for those using the target and `sessionsTimeoutSeconds` for "wait".
 */
export type CreateRestoreRequest = RequestOf<'createRestore'>;
/** Copy one backup: `backup` from repository `from` to `to`. */
export type CreateCopyRequest = RequestOf<'createCopy'>;
/** Every backup of `from` that `to` lacks; `source`: only that source's (name or location). */
export type CreateSyncRequest = RequestOf<'createSync'>;
export type CreateVerificationRequest = RequestOf<'createVerification'>;
export type CreatePruneRequest = RequestOf<'createPrune'>;
/** repository: left out, the server's default ("default", its BACKUP_* repository). */
export type CreateScheduleRequest = RequestOf<'createSchedule'>;

export interface WaitOptions {
  /** Resolve only when the job has ended (SUCCESS), throw JobFailedError on FAILED / CANCELED. */
  waitForCompletion?: boolean;
  /** Poll interval while waiting (default 500 ms). */
  pollMs?: number;
  signal?: AbortSignal;
}

/** An HTTP error answer of the API: its status and the server's stable code and message. */
export class CairnApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'CairnApiError';
  }
}

/** A job waited for with waitForCompletion ended in FAILED or CANCELED. */
export class JobFailedError extends Error {
  constructor(readonly job: JobRecord) {
    super(`Job ${job.id} ended ${job.state}${job.error ? `: ${job.error.message}` : ''}`);
    this.name = 'JobFailedError';
  }
  get code(): string {
    return this.job.error?.code ?? this.job.state;
  }
}

/** `?a=1&b=2` of the parameters given (undefined ones left out), or "". */
function queryString(query: Record<string, string | boolean | undefined>): string {
  const given = Object.entries(query).filter((e): e is [string, string | boolean] => e[1] !== undefined);
  return given.length ? `?${new URLSearchParams(given.map(([k, v]): [string, string] => [k, String(v)]))}` : '';
}

export class CairnClient {
  private readonly base: string;
  private readonly doFetch: typeof fetch;

  constructor(private readonly options: ClientOptions) {
    this.base = options.url.replace(/\/+$/, '');
    this.doFetch = options.fetch ?? fetch;
  }

  readonly backups = {
    create: (request: CreateBackupRequest, wait: WaitOptions = {}): Promise<JobRecord> => this.startJob('/v1/backups', request, wait),
    list: async (query: QueryOf<'listBackups'> = {}): Promise<BackupSummary[]> =>
      (await this.request<AnswerOf<'listBackups'>>('GET', `/v1/backups${queryString(query)}`)).backups,
    /** The manifest of a complete backup; while it runs (or after it failed), its status, job and progress (BackupInProgress). */
    get: (id: string, repository?: string): Promise<BackupDetail | BackupInProgress> => this.request('GET', `/v1/backups/${encodeURIComponent(id)}${queryString({ repository })}`),
    delete: (id: string, repository?: string): Promise<AnswerOf<'deleteBackup'>> => this.request('DELETE', `/v1/backups/${encodeURIComponent(id)}${queryString({ repository })}`),
    /** `expires`: a duration from now ("30d"), a date ("2027-01-31" or an ISO time) or "never". */
    setExpiry: (id: string, expires: string, repository?: string): Promise<AnswerOf<'setBackupExpiry'>> =>
      this.request('PATCH', `/v1/backups/${encodeURIComponent(id)}${queryString({ repository })}`, { expires } satisfies RequestOf<'setBackupExpiry'>),
  };

  readonly restores = {
    create: (request: CreateRestoreRequest, wait: WaitOptions = {}): Promise<JobRecord> => this.startJob('/v1/restores', request, wait),
  };

  /** One backup to another repository; only the chunks it lacks are sent. */
  readonly copies = {
    create: (request: CreateCopyRequest, wait: WaitOptions = {}): Promise<JobRecord> => this.startJob('/v1/copies', request, wait),
  };

  /**
   * Every backup of `from` that `to` lacks. The job's result lists copied, skipped (already
   * there, identical), conflicts and failed; it FAILS (CONFLICT or CORRUPT) when any was left out.
   */
  readonly syncs = {
    create: (request: CreateSyncRequest, wait: WaitOptions = {}): Promise<JobRecord> => this.startJob('/v1/syncs', request, wait),
  };

  /** Verify backups (all when `backups` is left out); readData reads and checks every chunk. */
  readonly verifications = {
    create: (request: CreateVerificationRequest = {}, wait: WaitOptions = {}): Promise<JobRecord> => this.startJob('/v1/verifications', request, wait),
  };

  /** Repair a repository (as cairn repair; dryRun reports only). */
  readonly repairs = {
    create: (request: RequestOf<'createRepair'> = {}, wait: WaitOptions = {}): Promise<JobRecord> => this.startJob('/v1/repairs', request, wait),
  };

  /** Delete every expired backup (as cairn backup expire); dryRun lists them only. */
  readonly expirations = {
    create: (request: RequestOf<'expireBackups'> = {}): Promise<AnswerOf<'expireBackups'>> => this.request('POST', '/v1/expirations', request),
  };

  /** Prune a repository (one at a time per repository). */
  readonly prunes = {
    create: (request: CreatePruneRequest = {}, wait: WaitOptions = {}): Promise<JobRecord> => this.startJob('/v1/prunes', request, wait),
  };

  readonly schedules = {
    list: async (): Promise<Schedule[]> => (await this.request<AnswerOf<'listSchedules'>>('GET', '/v1/schedules')).schedules,
    create: async (schedule: CreateScheduleRequest): Promise<Schedule> => (await this.request<AnswerOf<'createSchedule'>>('POST', '/v1/schedules', schedule)).schedule,
    get: (name: string): Promise<AnswerOf<'getSchedule'>> => this.request('GET', `/v1/schedules/${encodeURIComponent(name)}`),
    enable: async (name: string): Promise<Schedule> => (await this.request<AnswerOf<'enableSchedule'>>('POST', `/v1/schedules/${encodeURIComponent(name)}/enable`)).schedule,
    disable: async (name: string): Promise<Schedule> => (await this.request<AnswerOf<'disableSchedule'>>('POST', `/v1/schedules/${encodeURIComponent(name)}/disable`)).schedule,
    runNow: async (name: string, wait: WaitOptions = {}): Promise<JobRecord> => {
      const { job } = await this.request<AnswerOf<'runSchedule'>>('POST', `/v1/schedules/${encodeURIComponent(name)}/run`);
      if (!wait.waitForCompletion) return job;
      const end = await this.jobs.wait(job.id, wait);
      if (end.state !== 'SUCCESS') throw new JobFailedError(end);
      return end;
    },
    remove: (name: string): Promise<AnswerOf<'removeSchedule'>> => this.request('DELETE', `/v1/schedules/${encodeURIComponent(name)}`),
  };

  /** Sources registered by name (admin token to add or remove). */
  readonly sources = {
    list: async (): Promise<RegisteredSource[]> => (await this.request<AnswerOf<'listSources'>>('GET', '/v1/sources')).sources,
    add: async (name: string, url: string): Promise<RegisteredSource> => (await this.request<AnswerOf<'registerSource'>>('POST', '/v1/sources', { name, url } satisfies RequestOf<'registerSource'>)).source,
    /**
     * Refused (409, naming them) while enabled schedules use the source, unless `force`, which
     * disables them; `deleteScheduledBackups` also deletes the backups its schedules made.
     */
    remove: (name: string, options: { force?: boolean; deleteScheduledBackups?: boolean } = {}): Promise<AnswerOf<'removeSource'>> =>
      this.request('DELETE', `/v1/sources/${encodeURIComponent(name)}${queryString(options)}`),
  };

  /** Repositories registered by name (admin token to add or remove; they must be initialised). */
  readonly repositories = {
    list: async (): Promise<RegisteredRepository[]> => (await this.request<AnswerOf<'listRepositories'>>('GET', '/v1/repositories')).repositories,
    add: async (name: string, url: string): Promise<RegisteredRepository> =>
      (await this.request<AnswerOf<'registerRepository'>>('POST', '/v1/repositories', { name, url } satisfies RequestOf<'registerRepository'>)).repository,
    /** Refused (409) while enabled schedules use the name, unless `force`, which disables them. */
    remove: (name: string, options: { force?: boolean } = {}): Promise<AnswerOf<'removeRepository'>> =>
      this.request('DELETE', `/v1/repositories/${encodeURIComponent(name)}${queryString(options)}`),
  };

  readonly jobs = {
    get: async (id: string): Promise<JobRecord> => (await this.request<AnswerOf<'getJob'>>('GET', `/v1/jobs/${encodeURIComponent(id)}`)).job,
    list: async (query: QueryOf<'listJobs'> = {}): Promise<JobRecord[]> => (await this.request<AnswerOf<'listJobs'>>('GET', `/v1/jobs${queryString(query)}`)).jobs,
    cancel: async (id: string): Promise<JobRecord> => (await this.request<AnswerOf<'cancelJob'>>('POST', `/v1/jobs/${encodeURIComponent(id)}/cancel`)).job,
    /** Polls until the job has ended; returns its final record whatever the outcome. */
    wait: async (id: string, options: Omit<WaitOptions, 'waitForCompletion'> = {}): Promise<JobRecord> => {
      for (;;) {
        options.signal?.throwIfAborted();
        const job = await this.jobs.get(id);
        if (TERMINAL_STATES.has(job.state)) return job;
        await new Promise((r) => setTimeout(r, options.pollMs ?? 500));
      }
    },
  };

  private async startJob(path: string, body: unknown, wait: WaitOptions): Promise<JobRecord> {
    const { job } = await this.request<AnswerOf<'createBackup'>>('POST', path, body);
    if (!wait.waitForCompletion) return job;
    const end = await this.jobs.wait(job.id, wait);
    if (end.state !== 'SUCCESS') throw new JobFailedError(end);
    return end;
  }

  private async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.doFetch(`${this.base}${path}`, {
      method,
      headers: {
        ...(this.options.token ? { authorization: `Bearer ${this.options.token}` } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (!res.ok) {
      const err = (parsed as { error?: { code?: string; message?: string } } | undefined)?.error;
      throw new CairnApiError(res.status, err?.code ?? `HTTP_${res.status}`, err?.message ?? `${method} ${path} answered ${res.status}`);
    }
    return parsed as T;
  }
}
