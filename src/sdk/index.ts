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
import type { BackupDetail, BackupInProgress, BackupListed, BackupUnfinished, Job, Registration, RestorePlan, Schedule, ScheduleRun, Stats, TokenInfo } from '../server/schemas.js';
import type { AnswerOf, QueryOf, RequestOf } from '../server/routes/table.js';

/*
 * Request and answer types come from the server's route table and schemas (src/server), the
 * same ones that check requests and generate /openapi.json: no hand-made copies to drift.
 */
export type { BackupDetail, BackupInProgress, BackupListed, BackupUnfinished, Registration, RestorePlan, Schedule, ScheduleRun, Stats, TokenInfo } from '../server/schemas.js';
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
/**
 * GET /v1/backups's query: filters (source, status, type, schedule, since, until), sort, order,
 * and a page (limit 1-1000, offset). Without limit, every backup.
 */
export type BackupListQuery = Omit<QueryOf<'listBackups'>, 'limit' | 'offset'> & { limit?: number; offset?: number };
/** A page of backups: `total` counts those passing the filters, before offset and limit. */
export type BackupPage = AnswerOf<'listBackups'>;

export interface ClientOptions {
  /** The server's base URL, e.g. http://127.0.0.1:8080. */
  url: string;
  /**
   * A bearer token (Authorization: Bearer). Left out in the browser console: its session
   * cookie authenticates instead (sent by the browser, same origin), with `csrfToken`.
   */
  token?: string;
  /**
   * A console session's CSRF token, sent as X-CSRF-Token on every request other than GET and
   * HEAD (session.create and session.get set it; so does setCsrfToken). Not needed with `token`.
   */
  csrfToken?: string;
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
/** Only the fields given change; null clears an optional one (a keep* rule, expires, copyTo, include / exclude). */
export type UpdateScheduleRequest = RequestOf<'updateSchedule'>;
/** POST /v1/drills: name, source (registered), target (scratch database URL), optional repository, cron, timezone, checks, disabled. */
export type CreateDrillRequest = RequestOf<'createDrill'>;
/** A restore drill as listed (its target as a location) and one of its runs. */
export type Drill = AnswerOf<'listDrills'>['drills'][number];
export type DrillRun = AnswerOf<'getDrill'>['runs'][number];
/** Which repository: a registered name or "default" (also when left out); a URL only with --allow-urls. */
export interface RepositoryOption {
  repository?: string;
}

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
function queryString(query: Record<string, string | number | boolean | undefined>): string {
  const given = Object.entries(query).filter((e): e is [string, string | number | boolean] => e[1] !== undefined);
  return given.length ? `?${new URLSearchParams(given.map(([k, v]): [string, string] => [k, String(v)]))}` : '';
}

/**
 * `options` checked to be a RepositoryOption, else a TypeError naming the form to use. Until
 * the option object came, backups.get / delete / setExpiry took the repository as a positional
 * string; a JavaScript caller still passing one would otherwise act on the DEFAULT repository
 * (`'offsite'.repository` is undefined) — for delete, a backup deleted in the wrong repository.
 * Unknown keys (`{ repo: 'offsite' }`) are refused for the same reason. `usage`: the method's
 * call shape, for the message.
 */
function repositoryOption(usage: string, options: unknown): RepositoryOption {
  if (options === undefined) return {};
  const method = usage.slice(0, usage.indexOf('('));
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    const shown = typeof options === 'string' ? `{ repository: ${JSON.stringify(options)} }` : '{ repository: "<name>" }';
    throw new TypeError(
      `${method}: the repository is given as an option object, not a ${options === null ? 'null' : Array.isArray(options) ? 'array' : typeof options}: call ${usage.replace('{ repository }', shown)} (or leave it out for the default repository).`,
    );
  }
  const unknown = Object.keys(options).filter((k) => k !== 'repository');
  if (unknown.length) throw new TypeError(`${method}: unknown option ${unknown.map((k) => JSON.stringify(k)).join(', ')}; the only option is { repository: "<name>" }.`);
  const { repository } = options as { repository?: unknown };
  if (repository !== undefined && typeof repository !== 'string') throw new TypeError(`${method}: repository must be a string (a registered name or "default"), not ${typeof repository}.`);
  return options as RepositoryOption;
}

export class CairnClient {
  private readonly base: string;
  private readonly doFetch: typeof fetch;
  private csrfToken: string | undefined;

  constructor(private readonly options: ClientOptions) {
    this.base = options.url.replace(/\/+$/, '');
    // The platform's fetch, called unbound (a browser's fetch refuses another `this`).
    this.doFetch = options.fetch ?? ((input, init) => fetch(input, init));
    this.csrfToken = options.csrfToken;
  }

  /** The CSRF token to send from now on (after a sign-in made elsewhere); undefined stops sending one. */
  setCsrfToken(token: string | undefined): void {
    this.csrfToken = token;
  }

  /**
   * Console sessions: `create` trades a token for the session cookie (HttpOnly: kept by the
   * browser, never readable here) and remembers the answer's CSRF token; `get` tells who is
   * signed in (and remembers the CSRF token too, for a page loaded again); `delete` signs out.
   * In Node, where fetch keeps no cookies, use a bearer `token` instead.
   */
  readonly session = {
    create: async (request: RequestOf<'createSession'>): Promise<AnswerOf<'createSession'>['session']> => {
      const { session } = await this.request<AnswerOf<'createSession'>>('POST', '/v1/sessions', request);
      if (session.csrfToken) this.csrfToken = session.csrfToken;
      return session;
    },
    get: async (): Promise<AnswerOf<'getSession'>> => {
      const answer = await this.request<AnswerOf<'getSession'>>('GET', '/v1/session');
      if (answer.session.csrfToken) this.csrfToken = answer.session.csrfToken;
      return answer;
    },
    delete: async (): Promise<AnswerOf<'deleteSession'>> => {
      const answer = await this.request<AnswerOf<'deleteSession'>>('DELETE', '/v1/session');
      this.csrfToken = undefined;
      return answer;
    },
  };

  readonly backups = {
    create: (request: CreateBackupRequest, wait: WaitOptions = {}): Promise<JobRecord> => this.startJob('/v1/backups', request, wait),
    list: async (query: BackupListQuery = {}): Promise<BackupSummary[]> =>
      (await this.request<AnswerOf<'listBackups'>>('GET', `/v1/backups${queryString(query)}`)).backups,
    /** The whole answer of GET /v1/backups: a page of backups with total, offset, limit, damaged, unchecksummed. */
    listPage: async (query: BackupListQuery = {}): Promise<BackupPage> => this.request<AnswerOf<'listBackups'>>('GET', `/v1/backups${queryString(query)}`),
    /** The manifest of a complete backup; while it runs (or after it failed), its status, job and progress (BackupInProgress). */
    get: async (id: string, options: RepositoryOption = {}): Promise<BackupDetail | BackupInProgress> =>
      this.request('GET', `/v1/backups/${encodeURIComponent(id)}${queryString({ repository: repositoryOption('backups.get(id, { repository })', options).repository })}`),
    /** TypeError (no request sent) when `options` is not an object: the old `delete(id, 'name')` form. */
    delete: async (id: string, options: RepositoryOption = {}): Promise<AnswerOf<'deleteBackup'>> =>
      this.request('DELETE', `/v1/backups/${encodeURIComponent(id)}${queryString({ repository: repositoryOption('backups.delete(id, { repository })', options).repository })}`),
    /** What a prune after deleting the backup would free: chunks no other backup references and their stored bytes. */
    deletionPreview: async (id: string, options: RepositoryOption = {}): Promise<AnswerOf<'backupDeletionPreview'>> =>
      this.request(
        'GET',
        `/v1/backups/${encodeURIComponent(id)}/deletion-preview${queryString({ repository: repositoryOption('backups.deletionPreview(id, { repository })', options).repository })}`,
      ),
    /** `expires`: a duration from now ("30d"), a date ("2027-01-31" or an ISO time) or "never". */
    setExpiry: async (id: string, expires: string, options: RepositoryOption = {}): Promise<AnswerOf<'setBackupExpiry'>> =>
      this.request(
        'PATCH',
        `/v1/backups/${encodeURIComponent(id)}${queryString({ repository: repositoryOption('backups.setExpiry(id, expires, { repository })', options).repository })}`,
        { expires } satisfies RequestOf<'setBackupExpiry'>,
      ),
  };

  /** Per source and repository: newest backup, last result, schedules, status, sizes, history; per repository its totals. */
  readonly overview = {
    get: async (): Promise<AnswerOf<'getOverview'>> => this.request('GET', '/v1/overview'),
  };

  readonly restores = {
    /** Starts the restore job (dryRun: see restores.dryRun, which answers a plan, not a job). */
    create: (request: CreateRestoreRequest & { dryRun?: false }, wait: WaitOptions = {}): Promise<JobRecord> => this.startJob('/v1/restores', request, wait),
    /**
     * The restore's checks without writing or starting a job: the collections it would write
     * (renames applied) and the conflicts in the target (`ok: false`); other problems (unknown
     * backup, invalid selection, unreachable target) throw CairnApiError as create would.
     */
    dryRun: (request: Omit<CreateRestoreRequest, 'dryRun'>): Promise<RestorePlan> => this.request('POST', '/v1/restores', { ...request, dryRun: true } satisfies CreateRestoreRequest),
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

  /**
   * Archives (as cairn export): `create` starts a job writing backups of one repository
   * (`backups: [ids]` or `all: true`) into one .cairn archive kept on the server; once it ends
   * SUCCESS, `download` streams that archive (a web ReadableStream of its bytes).
   */
  readonly exports = {
    create: (request: RequestOf<'createExport'>, wait: WaitOptions = {}): Promise<JobRecord> => this.startJob('/v1/exports', request, wait),
    /** CairnApiError 409 while the job has not ended SUCCESS, 404 for another kind of job. */
    download: async (jobId: string, options: { signal?: AbortSignal } = {}): Promise<ReadableStream<Uint8Array>> => {
      const path = `/v1/exports/${encodeURIComponent(jobId)}/file`;
      const res = await this.open('GET', path, undefined, options.signal);
      if (!res.ok) throw await apiError(res, 'GET', path);
      if (!res.body) throw new CairnApiError(res.status, 'HTTP_EMPTY', `GET ${path} answered no body`);
      return res.body;
    },
  };

  /**
   * Imports a .cairn archive (as cairn import): the archive is the request body, streamed (a
   * ReadableStream, a Blob or bytes); `repository` the target, `as` the id its one backup gets.
   * A damaged or hostile archive answers 422, an id the repository holds 409 naming `as`.
   */
  readonly imports = {
    create: async (archive: ReadableStream<Uint8Array> | Blob | Uint8Array, options: { repository?: string; as?: string } = {}, wait: WaitOptions = {}): Promise<JobRecord> => {
      const path = `/v1/imports${queryString({ repository: options.repository, as: options.as })}`;
      const res = await this.doFetch(`${this.base}${path}`, {
        method: 'POST',
        headers: { ...this.authHeaders('POST'), 'content-type': 'application/octet-stream' },
        body: archive as unknown as RequestInit['body'],
        // A stream body must say so (fetch's half-duplex upload).
        ...(archive instanceof ReadableStream ? { duplex: 'half' } : {}),
        ...(wait.signal ? { signal: wait.signal } : {}),
      } as RequestInit);
      if (!res.ok) throw await apiError(res, 'POST', path);
      const { job } = (await res.json()) as AnswerOf<'createImport'>;
      if (!wait.waitForCompletion) return job;
      const end = await this.jobs.wait(job.id, wait);
      if (end.state !== 'SUCCESS') throw new JobFailedError(end);
      return end;
    },
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

  /**
   * Restore drills: the newest backup of a source restored into a scratch database, row counts
   * compared with the manifest, checks run, the copy dropped. add / remove need an admin token
   * (a drill holds a target URL), runNow an operator's. A drill that does not pass is a FAILED
   * job (JobFailedError with waitForCompletion); `get` answers its runs with recoverySeconds.
   */
  readonly drills = {
    list: async (): Promise<Drill[]> => (await this.request<AnswerOf<'listDrills'>>('GET', '/v1/drills')).drills,
    add: async (drill: CreateDrillRequest): Promise<Drill> => (await this.request<AnswerOf<'createDrill'>>('POST', '/v1/drills', drill)).drill,
    get: (name: string): Promise<AnswerOf<'getDrill'>> => this.request('GET', `/v1/drills/${encodeURIComponent(name)}`),
    runNow: async (name: string, wait: WaitOptions = {}): Promise<JobRecord> => {
      const { job } = await this.request<AnswerOf<'runDrill'>>('POST', `/v1/drills/${encodeURIComponent(name)}/run`);
      if (!wait.waitForCompletion) return job;
      const end = await this.jobs.wait(job.id, wait);
      if (end.state !== 'SUCCESS') throw new JobFailedError(end);
      return end;
    },
    remove: (name: string): Promise<AnswerOf<'removeDrill'>> => this.request('DELETE', `/v1/drills/${encodeURIComponent(name)}`),
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
    /**
     * Changes only the fields given, checked as when adding (400 naming the problem); a running
     * server uses the new spec from its next look at the schedules (within 15 s), and a new cron
     * or time zone counts from now. The answer has the new nextRun.
     */
    update: async (name: string, changes: UpdateScheduleRequest): Promise<Schedule> =>
      (await this.request<AnswerOf<'updateSchedule'>>('PATCH', `/v1/schedules/${encodeURIComponent(name)}`, changes)).schedule,
    remove: (name: string): Promise<AnswerOf<'removeSchedule'>> => this.request('DELETE', `/v1/schedules/${encodeURIComponent(name)}`),
    /**
     * A cron expression in plain words and its next `count` (1–50, default 5) due times in
     * `timezone` (default UTC), as the scheduler computes them: `{ cron, timezone, description,
     * nextRuns }`. CairnApiError 400 naming a bad cron or time zone.
     */
    cronPreview: (cron: string, timezone?: string, count?: number): Promise<AnswerOf<'cronPreview'>> =>
      this.request('GET', `/v1/cron-preview${queryString({ cron, timezone, count: count === undefined ? undefined : String(count) })}`),
  };

  /**
   * Which backups retention rules would keep and remove, as a scheduled run decides, deleting
   * nothing: `{ schedule }` (its own backups; its own rules and zone unless keep* / timezone are
   * given) or `{ source }` (that source's scheduled backups), with `repository` (default: the
   * schedule's, else "default").
   */
  readonly retention = {
    preview: (request: RequestOf<'retentionPreview'>): Promise<AnswerOf<'retentionPreview'>> => this.request('POST', '/v1/retention-previews', request),
  };

  /** What a repository stores: pack bytes, logical bytes, dedup and compression ratios, per source. */
  readonly stats = {
    get: async (options: RepositoryOption = {}): Promise<Stats> =>
      this.request('GET', `/v1/stats${queryString({ repository: repositoryOption('stats.get({ repository })', options).repository })}`),
  };

  /**
   * API tokens (an admin token for all three). Only hashes are stored: `create` answers the secret
   * once. `create({ role, name, sources, repositories })`: an operator or viewer token may be
   * scoped to registered sources and repositories by name (403 for anything else; listings show
   * only what is in scope).
   */
  readonly tokens = {
    list: async (): Promise<TokenInfo[]> => (await this.request<AnswerOf<'listTokens'>>('GET', '/v1/tokens')).tokens,
    /** `{ token, secret }`: send `secret` as the bearer token; it cannot be shown again. */
    create: (request: RequestOf<'createToken'>): Promise<AnswerOf<'createToken'>> => this.request('POST', '/v1/tokens', request),
    /** Revoking the token this client uses is allowed (`self: true`); its next request gets 401. */
    revoke: (id: string): Promise<AnswerOf<'revokeToken'>> => this.request('DELETE', `/v1/tokens/${encodeURIComponent(id)}`),
  };

  /**
   * GET /v1/health with this client's token: status ok or degraded, each source's newest good
   * backup against its recovery point objective (breached first), and the stuck jobs.
   */
  readonly health = {
    get: (): Promise<AnswerOf<'getHealth'>> => this.request('GET', '/v1/health'),
  };

  /**
   * The audit log (admin token): every mutating request (refused ones too) and every job end,
   * newest first; filters since / until (a date or an ISO time), actor (a token's name or id,
   * or "scheduler"), a page (limit 1-1000, default 100; offset).
   */
  readonly audit = {
    list: (query: QueryOf<'listAudit'> = {}): Promise<AnswerOf<'listAudit'>> => this.request('GET', `/v1/audit${queryString(query)}`),
  };

  /**
   * The cairn servers sharing the job catalog (any token): id, host, version, url, heartbeatAt,
   * leaseUntil, alive, stoppedAt, activeJobs; with the SQLite catalog, the one server.
   */
  readonly servers = {
    list: async (): Promise<AnswerOf<'listServers'>['servers']> => (await this.request<AnswerOf<'listServers'>>('GET', '/v1/servers')).servers,
  };

  /** The routes that need no token. */
  readonly server = {
    health: (): Promise<AnswerOf<'health'>> => this.request('GET', '/healthz'),
    /** The OpenAPI 3.1 document, generated from the server's route table. */
    openApi: (): Promise<AnswerOf<'openApi'>> => this.request('GET', '/openapi.json'),
    /** Prometheus text format. */
    metrics: async (): Promise<string> => (await this.send('GET', '/metrics')).text,
  };

  /** Sources registered by name (admin token to add or remove). */
  readonly sources = {
    list: async (): Promise<RegisteredSource[]> => (await this.request<AnswerOf<'listSources'>>('GET', '/v1/sources')).sources,
    /** `options.rpo`: its recovery point objective, a duration (26h, 2d); absent: the default from its schedules. */
    add: async (name: string, url: string, options: { rpo?: string } = {}): Promise<RegisteredSource> =>
      (await this.request<AnswerOf<'registerSource'>>('POST', '/v1/sources', { name, url, ...(options.rpo !== undefined ? { rpo: options.rpo } : {}) } satisfies RequestOf<'registerSource'>)).source,
    /** Sets its recovery point objective (admin): a duration (26h, 2d) or "default" (from its schedules). */
    update: async (name: string, changes: { rpo: string }): Promise<RegisteredSource> =>
      (await this.request<AnswerOf<'updateSource'>>('PATCH', `/v1/sources/${encodeURIComponent(name)}`, changes satisfies RequestOf<'updateSource'>)).source,
    /**
     * Refused (409, naming them) while enabled schedules use the source, unless `force`, which
     * disables them; `deleteScheduledBackups` also deletes the backups its schedules made.
     */
    remove: (name: string, options: { force?: boolean; deleteScheduledBackups?: boolean } = {}): Promise<AnswerOf<'removeSource'>> =>
      this.request('DELETE', `/v1/sources/${encodeURIComponent(name)}${queryString(options)}`),
    /**
     * Tests a registered source (operator): `{ name, kind, location, ok, serverVersion?, tools?,
     * error?: { code, message }, durationMs }`; a source that cannot be reached is `ok: false`
     * with the error, not a thrown CairnApiError (404 for an unknown name is).
     */
    check: (name: string): Promise<AnswerOf<'checkSource'>> => this.request('POST', `/v1/sources/${encodeURIComponent(name)}/check`),
  };

  /** Repositories registered by name (admin token to add or remove; they must be initialised). */
  readonly repositories = {
    list: async (): Promise<RegisteredRepository[]> => (await this.request<AnswerOf<'listRepositories'>>('GET', '/v1/repositories')).repositories,
    /**
     * `password`: an encrypted repository's password source on the server, `{ passwordFile }` (an
     * absolute path) or `{ passwordCommand }` (sh -c); kept by the server, never answered back.
     */
    add: async (name: string, url: string, password: { passwordFile?: string; passwordCommand?: string } = {}): Promise<RegisteredRepository> =>
      (await this.request<AnswerOf<'registerRepository'>>('POST', '/v1/repositories', { name, url, ...password } satisfies RequestOf<'registerRepository'>)).repository,
    /** Refused (409) while enabled schedules use the name, unless `force`, which disables them. */
    remove: (name: string, options: { force?: boolean } = {}): Promise<AnswerOf<'removeRepository'>> =>
      this.request('DELETE', `/v1/repositories/${encodeURIComponent(name)}${queryString(options)}`),
  };

  /**
   * Notifications (admin token): channels (webhook, slack, ntfy, email; secrets are sent, never
   * answered back), rules (which events go where) and the record of deliveries.
   */
  readonly alerts = {
    listChannels: async (): Promise<AnswerOf<'listAlertChannels'>['channels']> => (await this.request<AnswerOf<'listAlertChannels'>>('GET', '/v1/alert-channels')).channels,
    /** CairnApiError 400 naming a missing or invalid setting, 409 for a name in use. */
    addChannel: async (channel: RequestOf<'createAlertChannel'>): Promise<AnswerOf<'createAlertChannel'>['channel']> => (await this.request<AnswerOf<'createAlertChannel'>>('POST', '/v1/alert-channels', channel)).channel,
    /** Its rules go with it; its deliveries stay on record. */
    removeChannel: (name: string): Promise<AnswerOf<'removeAlertChannel'>> => this.request('DELETE', `/v1/alert-channels/${encodeURIComponent(name)}`),
    /** Sends a sample now (one attempt) and answers the delivery: state delivered, or failed with lastError. */
    testChannel: async (name: string): Promise<AnswerOf<'testAlertChannel'>['delivery']> => (await this.request<AnswerOf<'testAlertChannel'>>('POST', `/v1/alert-channels/${encodeURIComponent(name)}/test`)).delivery,
    listRules: async (): Promise<AnswerOf<'listAlertRules'>['rules']> => (await this.request<AnswerOf<'listAlertRules'>>('GET', '/v1/alert-rules')).rules,
    /** `on` defaults to ["failure"]; `source` (name or location) and `schedule` narrow it. */
    addRule: async (rule: RequestOf<'createAlertRule'>): Promise<AnswerOf<'createAlertRule'>['rule']> => (await this.request<AnswerOf<'createAlertRule'>>('POST', '/v1/alert-rules', rule)).rule,
    removeRule: (id: string): Promise<AnswerOf<'removeAlertRule'>> => this.request('DELETE', `/v1/alert-rules/${encodeURIComponent(id)}`),
    /** Newest first; `total` counts those matching state and channel. */
    deliveries: (query: { state?: 'pending' | 'delivered' | 'failed'; channel?: string; limit?: number; offset?: number } = {}): Promise<AnswerOf<'listAlertDeliveries'>> =>
      this.request('GET', `/v1/alert-deliveries${queryString(query)}`),
  };

  readonly jobs = {
    get: async (id: string): Promise<JobRecord> => (await this.request<AnswerOf<'getJob'>>('GET', `/v1/jobs/${encodeURIComponent(id)}`)).job,
    /** Newest first: the first `limit` (default 100, at most 1000) after `offset`. */
    list: async (query: QueryOf<'listJobs'> = {}): Promise<JobRecord[]> => (await this.request<AnswerOf<'listJobs'>>('GET', `/v1/jobs${queryString(query)}`)).jobs,
    /** One page of jobs with `total` (how many match kind and state), `limit` and `offset`. */
    page: (query: QueryOf<'listJobs'> = {}): Promise<AnswerOf<'listJobs'>> => this.request('GET', `/v1/jobs${queryString(query)}`),
    cancel: async (id: string): Promise<JobRecord> => (await this.request<AnswerOf<'cancelJob'>>('POST', `/v1/jobs/${encodeURIComponent(id)}/cancel`)).job,
    /**
     * The job's record on every change (GET /v1/jobs/{id}/events, server-sent events), from its
     * current state until it ends; breaking out of the loop or `signal` closes the stream.
     */
    watch: (id: string, options: { signal?: AbortSignal } = {}): AsyncIterableIterator<JobRecord> => this.events(`/v1/jobs/${encodeURIComponent(id)}/events`, options.signal),
    /**
     * Every job's record on every change (GET /v1/events): starts, progress, ends, of any job
     * of the server, until the loop is left or `signal` aborts (the stream never ends by itself).
     */
    watchAll: (options: { signal?: AbortSignal } = {}): AsyncIterableIterator<JobRecord> => this.events('/v1/events', options.signal),
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

  private async *events(path: string, signal?: AbortSignal): AsyncIterableIterator<JobRecord> {
    const abort = new AbortController();
    const stop = (): void => abort.abort(signal?.reason);
    signal?.addEventListener('abort', stop, { once: true });
    try {
      const res = await this.open('GET', path, undefined, abort.signal);
      if (!res.ok) throw await apiError(res, 'GET', path);
      if (!res.body) return;
      const decoder = new TextDecoder();
      let buffer = '';
      for await (const bytes of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(bytes, { stream: true }).replace(/\r\n?/g, '\n');
        // One event per blank-line-separated block; only `event: job` blocks carry a record.
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const lines = block.split('\n');
          const event = lines.find((l) => l.startsWith('event:'))?.slice(6).trim() ?? 'message';
          const data = lines.filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
          if (event === 'job' && data) yield JSON.parse(data) as JobRecord;
        }
      }
    } finally {
      signal?.removeEventListener('abort', stop);
      abort.abort();
    }
  }

  private open(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
    return this.doFetch(`${this.base}${path}`, {
      method,
      headers: {
        ...this.authHeaders(method),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      ...(signal ? { signal } : {}),
    });
  }

  /** The bearer token when there is one; the CSRF token on changes when there is one. */
  private authHeaders(method: string): Record<string, string> {
    return {
      ...(this.options.token ? { authorization: `Bearer ${this.options.token}` } : {}),
      ...(this.csrfToken && method !== 'GET' && method !== 'HEAD' ? { 'x-csrf-token': this.csrfToken } : {}),
    };
  }

  /** The answer's text; CairnApiError for an error status. */
  private async send(method: string, path: string, body?: unknown): Promise<{ text: string }> {
    const res = await this.open(method, path, body);
    if (!res.ok) throw await apiError(res, method, path);
    return { text: await res.text() };
  }

  private async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const { text } = await this.send(method, path, body);
    return (text ? JSON.parse(text) : undefined) as T;
  }
}

/** An error answer as a CairnApiError: the server's code and message, else the status. */
async function apiError(res: Response, method: string, path: string): Promise<CairnApiError> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await res.text());
  } catch {
    parsed = undefined;
  }
  const err = (parsed as { error?: { code?: string; message?: string } } | undefined)?.error;
  return new CairnApiError(res.status, err?.code ?? `HTTP_${res.status}`, err?.message ?? `${method} ${path} answered ${res.status}`);
}
