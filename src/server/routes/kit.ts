/**
 * What the route modules (backups.ts, operations.ts, registrations.ts, schedules.ts, jobs.ts,
 * stats.ts, tokens.ts)
 * share: `on`, which registers a handler for an entry of the route table (its method, path and
 * role, its body and query checked with the table's schemas), and the checks of path values.
 */
import type { Context } from 'hono';
import { CairnError, UsageError } from '../../core/errors.js';
import { validateBackupId } from '../../core/ids.js';
import type { RegistrationKind, SqliteRegistry } from '../../catalog/registry.js';
import type { SqliteScheduleStore } from '../../catalog/schedules.js';
import type { SqliteTokenStore, TokenInfo } from '../../catalog/tokens.js';
import type { SqliteSessionStore, SessionRecord } from '../../catalog/sessions.js';
import type { JobKind, JobRecord } from '../../catalog/types.js';
import type { JobCenter } from '../../jobs/job-center.js';
import type { Scheduler } from '../../jobs/scheduler.js';
import type { Repository } from '../../repo/repository.js';
import type { SummaryStore } from '../../jobs/backup-summaries.js';
import type { HealthService } from '../health.js';
import type { SqliteDrillStore } from '../../catalog/drills.js';
import type { DrillLauncherOptions } from '../../jobs/drill.js';
import { isName, type AccessPolicy, type DatabaseRef } from '../access.js';
import type { Scope } from '../scope.js';
import type { SqliteAuditLog } from '../../catalog/audit.js';
import { quote, safeMessage } from '../redact.js';
import type { BodyOf, QueryOf, RouteId } from './table.js';
import type { AlertCenter } from '../../alerts/center.js';
import type { SqliteAlertStore } from '../../catalog/alerts.js';

/**
 * inputs: the strings a request named (URLs, paths), redacted wherever an error quotes them.
 * session: the console session of a cookie-authenticated request (undefined for a bearer token).
 */
export type Env = { Variables: { token: TokenInfo; inputs: string[]; session: SessionRecord | undefined } };

/** A handler of one route: its body and query already checked against the route table. */
export type Handler<K extends RouteId> = (c: Context<Env>, request: { body: BodyOf<K>; query: QueryOf<K> }) => Response | Promise<Response>;

/** What the route modules are given (createApp builds it). */
export interface RouteKit {
  on<K extends RouteId>(id: K, handler: Handler<K>): void;
  center: JobCenter;
  registry: SqliteRegistry;
  schedules: SqliteScheduleStore;
  scheduler: Scheduler;
  tokens: SqliteTokenStore;
  /** Console sign-in sessions (routes/sessions.ts). */
  sessions: SqliteSessionStore;
  /** How often GET /v1/events writes its keep-alive comment, in ms (15 s). */
  eventsPingMs: number;
  /**
   * Access changed in this process (a token revoked, a session ended): open event streams check
   * at once whether what authenticated them still does, rather than at their next ping.
   * `onAccessChange` returns the unsubscribe function.
   */
  accessChanged(): void;
  onAccessChange(listener: () => void): () => void;
  access: AccessPolicy;
  /** What the request's token is limited to (scope.ts); an unscoped token's allows everything. */
  scope(c: Context<Env>): Scope;
  /** A repository a request names, as its token's role and scope may. */
  openRepo(c: Context<Env>, value: string | undefined): Promise<Repository>;
  /** A database a request names (a registered name or, when allowed, an untrusted URL), in the token's scope. */
  sourceUrl(c: Context<Env>, value: string, what?: 'source' | 'target'): DatabaseRef;
  /** A repository a schedule names, as the server opens it. */
  serverRepo(value: string): Promise<Repository>;
  /** Counts a started job for /metrics. */
  started(kind: JobKind): void;
  /** The server's data folder: export archives are kept in exports/, uploads in imports/. */
  dataDir: string;
  /** The per-backup summary cache (GET /v1/backups, /v1/overview); absent: every listing reads every manifest. */
  summaries?: SummaryStore;
  /** Notifications (routes/alerts.ts): the channels, rules and deliveries, and the center that sends; absent: the alert routes answer 404. */
  alerts?: AlertCenter;
  alertStore?: SqliteAlertStore;
  /** Sources against their recovery point objectives (routes/health.ts, /metrics). */
  health: HealthService;
  /** Restore drills (routes/drills.ts): their store and how their jobs start; absent: the routes answer 404. */
  drills?: { store: SqliteDrillStore; launcher: DrillLauncherOptions };
  /** The audit log (GET /v1/audit); absent when the app records none. */
  audit?: SqliteAuditLog;
}

/** A job record as answered: its error message through the same guard as every error (secrets, length). */
export function publicJob(job: JobRecord): JobRecord {
  return job.error ? { ...job, error: { ...job.error, message: safeMessage(job.error.message) } } : job;
}

/** A backup id from a path: checked before anything is looked up, and quoted short when invalid. */
export function backupId(value: string): string {
  if (value.length > 128) throw new UsageError(`Invalid backup id ${quote(value)}: use 1-128 lowercase letters, digits, "-" or "_".`);
  return validateBackupId(value);
}

/** A job id from a path (kind-hex): anything else cannot name a job. */
export function jobId(value: string): string {
  if (!/^[a-z]{1,16}-[0-9a-f]{1,64}$/.test(value)) throw new CairnError('NOT_FOUND', `Job ${quote(value)} not found: job ids look like backup-0123456789abcdef (GET /v1/jobs lists them).`);
  return value;
}

/** A schedule name from a path. */
export function scheduleName(value: string): string {
  if (!isName(value)) throw new CairnError('NOT_FOUND', `No schedule named ${quote(value)}: schedule names are lowercase letters, digits, - and _ (GET /v1/schedules lists them).`);
  return value;
}

/** A registered source or repository name from a path. */
export function registeredName(value: string, kind: RegistrationKind): string {
  if (!isName(value)) throw new CairnError('NOT_FOUND', `No ${kind} named ${quote(value)} is registered: names are lowercase letters, digits, - and _.`);
  return value;
}

/** A token id from a path (12 hex digits): anything else cannot name a token. */
export function tokenId(value: string): string {
  if (!/^[0-9a-f]{12}$/.test(value)) throw new CairnError('NOT_FOUND', `No token ${quote(value)}: token ids are 12 hex digits (GET /v1/tokens lists them).`);
  return value;
}
