/**
 * A typed client for the cairn REST API (docs/api.md). Uses the platform's fetch; no other
 * dependency, so other TypeScript projects can import it alone:
 *
 *   const cairn = new CairnClient({ url: 'http://127.0.0.1:8080', token: process.env.CAIRN_TOKEN });
 *   const job = await cairn.backups.create({ source: 'app', repository: 'prod' }, { waitForCompletion: true });
 *   console.log(job.result?.backupId);
 */
import { TERMINAL_STATES, type JobKind, type JobRecord, type JobState } from '../catalog/types.js';
import type { ScheduleInput } from '../jobs/schedule-spec.js';
import type { RunStatus } from '../catalog/schedules.js';

export type { JobKind, JobProgress, JobRecord, JobState } from '../catalog/types.js';
export type { RunStatus } from '../catalog/schedules.js';

/** One due time of a schedule: started, skipped (why) or failed (why). */
export interface ScheduleRunRecord {
  dueAt: string;
  status: RunStatus;
  jobId: string | null;
  at: string;
  /** Why it was skipped or failed; null for started runs. */
  reason: string | null;
}

export interface RegisteredSource {
  kind: 'source';
  name: string;
  location: string;
  createdAt: string;
}

export interface RegisteredRepository {
  kind: 'repository';
  name: string;
  location: string;
  createdAt: string;
}

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
export interface CreateBackupRequest {
  source: string;
  repository?: string;
  id?: string;
  include?: string[];
  exclude?: string[];
  config?: { compression?: 'zstd' | 'gzip' | 'none'; level?: 'fastest' | 'default' | 'best'; jobs?: number; cpuPercentage?: number; packSizeMiB?: number };
}

export interface CreateRestoreRequest {
  backup: string;
  repository?: string;
  target: string;
  include?: string[];
  exclude?: string[];
  renames?: Record<string, string>;
  onConflict?: 'fail' | 'overwrite';
  roles?: boolean;
  jobs?: number;
}

/** repository: left out, the server's default ("default", its BACKUP_* repository). */
export type CreateScheduleRequest = Omit<ScheduleInput, 'repository'> & { repository?: string };

export interface WaitOptions {
  /** Resolve only when the job has ended (SUCCESS), throw JobFailedError on FAILED / CANCELED. */
  waitForCompletion?: boolean;
  /** Poll interval while waiting (default 500 ms). */
  pollMs?: number;
  signal?: AbortSignal;
}

export interface BackupSummary {
  id: string;
  status: string;
  type: 'manual' | 'scheduled';
  source: { kind: string; name: string; location: string; serverVersion: string };
  createdAt: string;
  completedAt: string;
  expiresAt: string | null;
  size: { logicalBytes: number; storedBytes: number; newBytes: number };
  collections: number;
  rows: number;
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

export class CairnClient {
  private readonly base: string;
  private readonly doFetch: typeof fetch;

  constructor(private readonly options: ClientOptions) {
    this.base = options.url.replace(/\/+$/, '');
    this.doFetch = options.fetch ?? fetch;
  }

  readonly backups = {
    create: (request: CreateBackupRequest, wait: WaitOptions = {}): Promise<JobRecord> => this.startJob('/v1/backups', request, wait),
    list: async (query: { repository?: string; source?: string } = {}): Promise<BackupSummary[]> =>
      (await this.request<{ backups: BackupSummary[] }>('GET', `/v1/backups?${new URLSearchParams(query as Record<string, string>)}`)).backups,
    get: (id: string, repository?: string): Promise<Record<string, unknown>> =>
      this.request('GET', `/v1/backups/${encodeURIComponent(id)}${repository ? `?${new URLSearchParams({ repository })}` : ''}`),
    delete: (id: string, repository?: string): Promise<Record<string, unknown>> =>
      this.request('DELETE', `/v1/backups/${encodeURIComponent(id)}${repository ? `?${new URLSearchParams({ repository })}` : ''}`),
  };

  readonly restores = {
    create: (request: CreateRestoreRequest, wait: WaitOptions = {}): Promise<JobRecord> => this.startJob('/v1/restores', request, wait),
  };

  readonly schedules = {
    list: async (): Promise<Record<string, unknown>[]> => (await this.request<{ schedules: Record<string, unknown>[] }>('GET', '/v1/schedules')).schedules,
    create: async (schedule: CreateScheduleRequest): Promise<Record<string, unknown>> => (await this.request<{ schedule: Record<string, unknown> }>('POST', '/v1/schedules', schedule)).schedule,
    get: (name: string): Promise<{ schedule: Record<string, unknown>; runs: ScheduleRunRecord[] }> => this.request('GET', `/v1/schedules/${encodeURIComponent(name)}`),
    enable: (name: string): Promise<unknown> => this.request('POST', `/v1/schedules/${encodeURIComponent(name)}/enable`),
    disable: (name: string): Promise<unknown> => this.request('POST', `/v1/schedules/${encodeURIComponent(name)}/disable`),
    runNow: async (name: string, wait: WaitOptions = {}): Promise<JobRecord> => {
      const { job } = await this.request<{ job: JobRecord }>('POST', `/v1/schedules/${encodeURIComponent(name)}/run`);
      if (!wait.waitForCompletion) return job;
      const end = await this.jobs.wait(job.id, wait);
      if (end.state !== 'SUCCESS') throw new JobFailedError(end);
      return end;
    },
    remove: (name: string): Promise<unknown> => this.request('DELETE', `/v1/schedules/${encodeURIComponent(name)}`),
  };

  /** Sources registered by name (admin token to add or remove). */
  readonly sources = {
    list: async (): Promise<RegisteredSource[]> => (await this.request<{ sources: RegisteredSource[] }>('GET', '/v1/sources')).sources,
    add: async (name: string, url: string): Promise<RegisteredSource> => (await this.request<{ source: RegisteredSource }>('POST', '/v1/sources', { name, url })).source,
    /**
     * Refused (409, naming them) while enabled schedules use the source, unless `force`, which
     * disables them; `deleteScheduledBackups` also deletes the backups its schedules made.
     */
    remove: (name: string, options: { force?: boolean; deleteScheduledBackups?: boolean } = {}): Promise<{ removed: string; deletedScheduledBackups: string[]; disabledSchedules: string[] }> => {
      const query = new URLSearchParams();
      if (options.force !== undefined) query.set('force', String(options.force));
      if (options.deleteScheduledBackups !== undefined) query.set('deleteScheduledBackups', String(options.deleteScheduledBackups));
      const qs = query.toString();
      return this.request('DELETE', `/v1/sources/${encodeURIComponent(name)}${qs ? `?${qs}` : ''}`);
    },
  };

  /** Repositories registered by name (admin token to add or remove; they must be initialised). */
  readonly repositories = {
    list: async (): Promise<RegisteredRepository[]> => (await this.request<{ repositories: RegisteredRepository[] }>('GET', '/v1/repositories')).repositories,
    add: async (name: string, url: string): Promise<RegisteredRepository> => (await this.request<{ repository: RegisteredRepository }>('POST', '/v1/repositories', { name, url })).repository,
    /** Refused (409) while enabled schedules use the name, unless `force`, which disables them. */
    remove: (name: string, options: { force?: boolean } = {}): Promise<{ removed: string; disabledSchedules: string[] }> =>
      this.request('DELETE', `/v1/repositories/${encodeURIComponent(name)}${options.force !== undefined ? `?force=${options.force}` : ''}`),
  };

  readonly jobs = {
    get: async (id: string): Promise<JobRecord> => (await this.request<{ job: JobRecord }>('GET', `/v1/jobs/${encodeURIComponent(id)}`)).job,
    list: async (query: { kind?: JobKind; state?: JobState } = {}): Promise<JobRecord[]> =>
      (await this.request<{ jobs: JobRecord[] }>('GET', `/v1/jobs?${new URLSearchParams(query as Record<string, string>)}`)).jobs,
    cancel: async (id: string): Promise<JobRecord> => (await this.request<{ job: JobRecord }>('POST', `/v1/jobs/${encodeURIComponent(id)}/cancel`)).job,
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
    const { job } = await this.request<{ job: JobRecord }>('POST', path, body);
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
