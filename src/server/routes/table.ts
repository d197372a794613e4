/**
 * The route table: every HTTP route of the server, with what it takes and answers. One source
 * for three surfaces: the app registers its handlers by these entries (method, path, role, body
 * and query checked with these schemas), /openapi.json is generated from it (openapi.ts), and the
 * SDK takes its types from the same schemas (type-only imports: no zod in the SDK's bundle).
 * A route served but missing here fails test/integration/openapi.test.ts.
 */
import { z } from 'zod';
import type { Role } from '../../catalog/tokens.js';
import { JOB_STATES } from '../../catalog/types.js';
import { quote } from '../redact.js';
import * as S from '../schemas.js';

/** The least role that may call a route (admin ⊃ operator ⊃ viewer). */
export type { Role };
/** Error statuses a route may answer, each with `{ error: { code, message } }` (ErrorAnswer). */
export type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 413 | 422 | 423 | 502;
/** An answer that is not JSON (event streams, Prometheus text). */
export interface RawAnswer {
  mediaType: string;
  description: string;
}

export interface RouteSpec {
  method: 'get' | 'post' | 'patch' | 'delete';
  /** Hono's syntax, `/v1/backups/:id` (OpenAPI's `{id}` is derived). */
  path: string;
  summary: string;
  /** null: no token needed. */
  role: Role | null;
  /** One entry per `:name` of the path. */
  params?: z.ZodObject;
  query?: z.ZodObject;
  /** The JSON body (a schema exported from schemas.ts, so that it is a named component). */
  body?: z.ZodType;
  /** A body that is not JSON, streamed by the handler (an uploaded archive): exempt from the 1 MiB limit. */
  upload?: RawAnswer;
  /** Success answers by status: a schema exported from schemas.ts, or another media type. */
  answers: Partial<Record<200 | 201 | 202, z.ZodType | RawAnswer>>;
  errors: readonly ErrorStatus[];
}

/** What each error status means (the `code`s it carries: docs/api.md). */
export const ERROR_STATUS: Record<ErrorStatus, string> = {
  400: 'USAGE: invalid JSON, fields, ids or query parameters (every problem named, up to 10)',
  401: 'UNAUTHORIZED: no or unknown bearer token or session; SESSION_EXPIRED: the session cookie\'s session ended (sign in again)',
  403: 'FORBIDDEN: the role may not do this, or it names a URL, path or data-folder file it may not; CSRF: a cookie-authenticated request without the right X-CSRF-Token or from another origin',
  404: 'NOT_FOUND: unknown backup, job, schedule, token or registered name',
  409: 'CONFLICT / CANCELLED: a duplicate, an ended job, or a database in use by a job (named)',
  413: 'PAYLOAD_TOO_LARGE: the body is over 1 MiB',
  422: 'CORRUPT: damaged data',
  423: 'LOCKED: the repository is locked',
  502: 'SOURCE / STORAGE: the database or the storage is unreachable',
};

/** A true/false query parameter, refused with its name when it is anything else. */
const flag = (name: string, description: string) =>
  z.enum(['true', 'false'], { error: (i) => `${name} is true or false, not ${quote(String(i.input))}` }).optional().describe(description);
/** An enumerated query parameter, refused naming the choices. */
const oneOf = <const T extends readonly [string, ...string[]]>(name: string, values: T) =>
  z.enum(values, { error: (i) => `unknown ${name} ${quote(String(i.input))}, use one of ${values.join(', ')}` }).optional();

const repository = z
  .string()
  .optional()
  .describe('a registered name, or "default" (the BACKUP_* repository, also when left out); a URL only with --allow-urls and not for viewers');
export const BackupQuery = z.object({ repository });
/** A whole number from a query string, refused with its name and bounds otherwise. */
const wholeNumber = (name: string, min: number, max: number, description: string) =>
  z
    .string()
    .refine((v) => /^\d{1,10}$/.test(v) && Number(v) >= min && Number(v) <= max, { error: (i) => `${name} is a whole number from ${min} to ${max}, not ${quote(String(i.input))}` })
    .optional()
    .describe(description);
/** A date (2026-11-30, UTC) or an ISO date and time with an offset, refused otherwise. */
const dateOrTime = (name: string, description: string) =>
  z
    .string()
    .refine((v) => parseListDate(v, 'since') !== undefined, { error: (i) => `${name} is a date (2026-11-30) or an ISO time (2026-11-30T03:00:00Z), not ${quote(String(i.input))}` })
    .optional()
    .describe(description);
/**
 * A since/until bound in ms since the epoch: a date is its first instant (UTC) for since, the
 * first instant of the next day for until (so until=2026-11-30 keeps that whole day); a time is
 * itself (until: that instant kept too). undefined when it is neither.
 */
export function parseListDate(value: string, bound: 'since' | 'until'): number | undefined {
  if (/^\d{4}-\d{2}-\d{2}$/.test(value)) {
    const t = Date.parse(`${value}T00:00:00Z`);
    if (Number.isNaN(t)) return undefined;
    return bound === 'since' ? t : t + 86_400_000;
  }
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/.test(value)) return undefined;
  const t = Date.parse(value);
  if (Number.isNaN(t)) return undefined;
  return bound === 'since' ? t : t + 1;
}
export const BackupListQuery = z.object({
  repository,
  source: z.string().optional().describe("a source's name or location"),
  schedule: z.string().optional().describe('only the backups this schedule (by name) made'),
  status: oneOf('status', JOB_STATES),
  type: oneOf('type', ['manual', 'scheduled']).describe('manual or scheduled backups only (an unfinished one is scheduled when a schedule started it)'),
  since: dateOrTime('since', 'only backups created at or after this date (UTC) or time'),
  until: dateOrTime('until', 'only backups created up to this time, or up to the end of this date (UTC)'),
  sort: oneOf('sort', ['createdAt', 'logicalBytes', 'storedBytes', 'id', 'expiresAt']).describe('the order (default createdAt); ties by createdAt then id; backups without the value (unfinished ones for sizes and expiresAt, never-expiring ones for expiresAt) come last'),
  order: oneOf('order', ['asc', 'desc']).describe('asc (default) or desc'),
  limit: wholeNumber('limit', 1, 1000, 'a page of at most this many backups (1-1000); without it, every backup'),
  offset: wholeNumber('offset', 0, 1_000_000_000, 'skip this many (after filters and sorting; default 0)'),
});
export const SourceRemoveQuery = z.object({
  force: flag('force', 'disable the enabled schedules that use it instead of refusing (409)'),
  deleteScheduledBackups: flag('deleteScheduledBackups', 'also delete the backups its schedules made (manual backups stay)'),
});
export const RepositoryRemoveQuery = SourceRemoveQuery.pick({ force: true });
/** A whole number in [min, max] from a query parameter, refused with its name otherwise. */
const count = (name: string, min: number, max: number, description: string) =>
  z
    .string()
    .regex(/^\d{1,7}$/, { error: `${name} is a whole number ${min}–${max}` })
    .transform(Number)
    .refine((n) => n >= min && n <= max, { error: `${name} is a whole number ${min}–${max}` })
    .optional()
    .describe(description);
export const JobListQuery = z.object({
  kind: oneOf('kind', S.JOB_KINDS),
  state: oneOf('state', JOB_STATES),
  limit: count('limit', 1, 1000, 'at most this many jobs (1–1000, default 100)'),
  offset: count('offset', 0, 1_000_000, 'skip this many of the newest first (default 0)'),
});

export const AuditQuery = z.object({
  since: dateOrTime('since', 'only records at or after this date (UTC) or time'),
  until: dateOrTime('until', 'only records up to this time, or up to the end of this date (UTC)'),
  actor: z.string().max(200).optional().describe('only records of this token (its name or id), or "scheduler"'),
  limit: count('limit', 1, 1000, 'at most this many records (1–1000, default 100)'),
  offset: count('offset', 0, 1_000_000, 'skip this many of the newest first (default 0)'),
});

const backupId = z.object({ id: z.string().describe('a backup id (1-128 of a-z, 0-9, "-", "_")') });
const jobId = z.object({ id: z.string().describe('a job id, e.g. backup-0123456789abcdef') });
const tokenId = z.object({ id: z.string().describe('a token id, 12 hex digits (GET /v1/tokens lists them)') });
const name = z.object({ name: z.string().describe('lowercase letters, digits, - and _') });

/** A route that starts a job: an operator's POST answered 202 with the STARTED job. */
const startsJob = <B extends z.ZodType>(path: string, body: B, summary: string) =>
  ({ method: 'post', path, role: 'operator', summary, body, answers: { 202: S.JobAnswer }, errors: [400, 401, 403, 404, 409, 413, 422, 502] }) as const;

export const ROUTES = {
  health: { method: 'get', path: '/healthz', summary: 'liveness', role: null, answers: { 200: S.Health }, errors: [] },
  openApi: { method: 'get', path: '/openapi.json', summary: 'this document, generated from the route table', role: null, answers: { 200: S.OpenApiDocument }, errors: [] },
  metrics: {
    method: 'get', path: '/metrics', role: null,
    summary: 'Prometheus text: requests, jobs by kind and state, active and stuck jobs, job durations by kind; per source its last good backup time, objective and breach, and its newest backup\'s stored and new bytes',
    answers: { 200: { mediaType: 'text/plain', description: 'Prometheus text format 0.0.4' } }, errors: [],
  },

  createBackup: { ...startsJob('/v1/backups', S.CreateBackupBody, 'start a backup; the answer names the backup id too'), answers: { 202: S.BackupStarted } },
  listBackups: {
    method: 'get', path: '/v1/backups', role: 'viewer',
    summary: 'complete backups (SUCCESS) and, from the job center, running, failed and cancelled ones',
    query: BackupListQuery, answers: { 200: S.BackupList }, errors: [400, 401, 403, 404, 422, 502],
  },
  setBackupExpiry: {
    method: 'patch', path: '/v1/backups/:id', role: 'operator',
    summary: 'change when a backup expires: expires is a duration from now (30d, 6mo), a date (2027-01-31 or an ISO time) or "never"',
    params: backupId, query: BackupQuery, body: S.PatchBackupBody, answers: { 200: S.BackupExpiry }, errors: [400, 401, 403, 404, 409, 413, 422, 423, 502],
  },
  getBackup: { method: 'get', path: '/v1/backups/:id', summary: "one backup's manifest; while it runs (or after it failed), its status, job and progress", role: 'viewer', params: backupId, query: BackupQuery, answers: { 200: S.BackupShown }, errors: [400, 401, 403, 404, 422, 502] },
  deleteBackup: {
    method: 'delete', path: '/v1/backups/:id', role: 'operator',
    summary: 'delete a backup (space is reclaimed by prune)',
    params: backupId, query: BackupQuery, answers: { 200: S.BackupDeleted }, errors: [400, 401, 403, 404, 422, 423, 502],
  },
  backupDeletionPreview: {
    method: 'get', path: '/v1/backups/:id/deletion-preview', role: 'viewer',
    summary: 'what a prune after deleting this backup would free: the chunks no other backup references and their stored bytes (reads the index and every manifest)',
    params: backupId, query: BackupQuery, answers: { 200: S.DeletionPreview }, errors: [400, 401, 403, 404, 422, 502],
  },
  getOverview: {
    method: 'get', path: '/v1/overview', role: 'viewer',
    summary: 'per source and repository: newest backup, last result, schedules, status (failing, late, never, running, ok), sizes and history; per repository its totals (from the summary cache and the job center)',
    answers: { 200: S.Overview }, errors: [401, 403],
  },
  createRestore: {
    ...startsJob('/v1/restores', S.CreateRestoreBody, 'start a restore; with dryRun: true, check it only (200, no job): its collections and the conflicts in the target'),
    answers: { 200: S.RestorePlan, 202: S.JobAnswer },
  },
  createCopy: startsJob('/v1/copies', S.CreateCopyBody, 'copy a backup to another repository (verified before its manifest is written)'),
  createSync: startsJob('/v1/syncs', S.CreateSyncBody, 'copy every backup of `from` that `to` lacks (only missing chunks sent; each verified before it appears); FAILS with CONFLICT or CORRUPT naming the backups left out, after copying the others'),
  createExport: startsJob('/v1/exports', S.CreateExportBody, 'export backups of one repository into one .cairn archive kept in the server\'s data folder (as cairn export); the result names its size and sha256; download it with GET /v1/exports/{jobId}/file'),
  exportFile: {
    method: 'get', path: '/v1/exports/:id/file', role: 'operator',
    summary: 'the archive a SUCCESS export job wrote, streamed (application/x-tar, a .cairn file)',
    params: jobId, answers: { 200: { mediaType: 'application/x-tar', description: 'the .cairn archive' } }, errors: [401, 403, 404, 409],
  },
  createImport: {
    method: 'post', path: '/v1/imports', role: 'operator',
    summary: 'import the .cairn archive sent as the body (streamed to the data folder, its structure checked: 422 for a damaged or hostile one) as a job (as cairn import: the whole archive checked, only missing chunks sent; an id the repository holds is a CONFLICT naming `as`)',
    query: S.ImportQuery, upload: { mediaType: 'application/octet-stream', description: 'the .cairn archive' },
    answers: { 202: S.JobAnswer }, errors: [400, 401, 403, 404, 409, 422, 502],
  },
  createRepair: startsJob('/v1/repairs', S.CreateRepairBody, 'repair a repository (exclusive lock): rebuild the index from the packs present, salvage intact blobs of damaged packs, record which backups lost what; result: the repair report'),
  expireBackups: {
    method: 'post', path: '/v1/expirations', role: 'operator',
    summary: 'delete every backup whose expiry has passed, manual or scheduled (dryRun: list them, delete nothing); space is reclaimed by prune',
    body: S.ExpireBody, answers: { 200: S.ExpiredBackups }, errors: [400, 401, 403, 404, 413, 422, 423, 502],
  },
  createVerification: startsJob('/v1/verifications', S.CreateVerifyBody, 'verify backups; the job FAILS with code CORRUPT naming every damaged object'),
  createPrune: startsJob('/v1/prunes', S.CreatePruneBody, 'prune a repository (one at a time per repository); unreferenced packs younger than graceSeconds (default 3600) are kept'),

  registerSource: {
    method: 'post', path: '/v1/sources', role: 'admin',
    summary: 'register a source by name; its URL may hold a password, which is never shown again',
    body: S.RegisterSourceBody, answers: { 201: S.SourceAdded }, errors: [400, 401, 403, 409, 413],
  },
  listSources: { method: 'get', path: '/v1/sources', summary: 'registered sources: locations only, never passwords', role: 'viewer', answers: { 200: S.SourceList }, errors: [401, 403] },
  removeSource: {
    method: 'delete', path: '/v1/sources/:name', role: 'admin',
    summary: 'forget a source; its backups are kept. 409 (naming them) while enabled schedules use it, unless force=true, which disables them',
    params: name, query: SourceRemoveQuery, answers: { 200: S.SourceRemoved }, errors: [400, 401, 403, 404, 409, 423, 502],
  },
  checkSource: {
    method: 'post', path: '/v1/sources/:name/check', role: 'operator',
    summary: "test a registered source: connect (reading nothing but its version), and for PostgreSQL that pg_dump and pg_restore are at least the server's major version; a failure is ok: false with its code and message",
    params: name, answers: { 200: S.SourceCheck }, errors: [401, 403, 404],
  },
  registerRepository: {
    method: 'post', path: '/v1/repositories', role: 'admin',
    summary: 'register an existing (initialised) repository by name; not "default", not in the data folder; an encrypted one with passwordFile or passwordCommand (checked: the password must open it)',
    body: S.RegisterRepositoryBody, answers: { 201: S.RepositoryAdded }, errors: [400, 401, 403, 404, 409, 413, 422, 502],
  },
  listRepositories: { method: 'get', path: '/v1/repositories', summary: 'registered repositories', role: 'viewer', answers: { 200: S.RepositoryList }, errors: [401, 403] },
  removeRepository: {
    method: 'delete', path: '/v1/repositories/:name', role: 'admin',
    summary: 'forget a repository; its data is untouched. 409 (naming them) while enabled schedules use the name, unless force=true, which disables them',
    params: name, query: RepositoryRemoveQuery, answers: { 200: S.RepositoryRemoved }, errors: [400, 401, 403, 404, 409],
  },

  listSchedules: { method: 'get', path: '/v1/schedules', summary: 'schedules with nextRun, lastDue, description (the cron in words) and nextRuns (5)', role: 'viewer', answers: { 200: S.ScheduleList }, errors: [401, 403] },
  createSchedule: {
    method: 'post', path: '/v1/schedules', role: 'operator',
    summary: 'add a schedule (repository left out: "default")',
    body: S.CreateScheduleBody, answers: { 201: S.ScheduleAnswer }, errors: [400, 401, 403, 404, 409, 413, 422, 502],
  },
  getSchedule: { method: 'get', path: '/v1/schedules/:name', summary: 'a schedule and its latest runs', role: 'viewer', params: name, answers: { 200: S.ScheduleDetail }, errors: [401, 403, 404] },
  enableSchedule: { method: 'post', path: '/v1/schedules/:name/enable', summary: 'enable a schedule', role: 'operator', params: name, answers: { 200: S.ScheduleAnswer }, errors: [401, 403, 404] },
  disableSchedule: { method: 'post', path: '/v1/schedules/:name/disable', summary: 'disable a schedule', role: 'operator', params: name, answers: { 200: S.ScheduleAnswer }, errors: [401, 403, 404] },
  runSchedule: {
    method: 'post', path: '/v1/schedules/:name/run', role: 'operator',
    summary: "run a schedule now: 409 naming the job only when a job holds its source, else the error that stopped it",
    params: name, answers: { 202: S.JobAnswer }, errors: [400, 401, 403, 404, 409, 422, 502],
  },
  updateSchedule: {
    method: 'patch', path: '/v1/schedules/:name', role: 'operator',
    summary: 'change a schedule: only the fields given, checked as when adding (null clears an optional one); the running scheduler uses it from its next look (at most 15 s), a new cron or time zone counting from now',
    params: name, body: S.UpdateScheduleBody, answers: { 200: S.ScheduleAnswer }, errors: [400, 401, 403, 404, 413, 422, 502],
  },
  removeSchedule: { method: 'delete', path: '/v1/schedules/:name', summary: 'remove a schedule; its backups are kept', role: 'operator', params: name, answers: { 200: S.ScheduleRemoved }, errors: [401, 403, 404] },
  retentionPreview: {
    method: 'post', path: '/v1/retention-previews', role: 'viewer',
    summary: "which backups retention rules would keep and remove (a schedule's own backups, or a source's scheduled ones), as a scheduled run decides; nothing is deleted",
    body: S.RetentionPreviewBody, answers: { 200: S.RetentionPreview }, errors: [400, 401, 403, 404, 413, 422, 502],
  },
  cronPreview: {
    method: 'get', path: '/v1/cron-preview', role: 'viewer',
    summary: 'a cron expression in plain words and its next due times in a time zone, as the scheduler computes them; 400 naming a bad cron or zone',
    query: S.CronPreviewQuery, answers: { 200: S.CronPreview }, errors: [400, 401, 403],
  },

  getStats: {
    method: 'get', path: '/v1/stats', role: 'viewer',
    summary: 'what a repository stores: pack bytes, logical bytes, dedup and compression ratios, per source its backups, newest, logical and unique stored bytes',
    query: BackupQuery, answers: { 200: S.Stats }, errors: [400, 401, 403, 404, 422, 502],
  },

  // Console sign-in (docs/api.md "Sessions"): a token traded for an HttpOnly SameSite=Strict
  // cookie; cookie-authenticated requests other than GET/HEAD need X-CSRF-Token.
  createSession: {
    method: 'post', path: '/v1/sessions', role: null,
    summary: 'sign in: trade a token for a session cookie (cairn_session, HttpOnly, SameSite=Strict; 8 h, 1 h idle); the answer holds the CSRF token to send as X-CSRF-Token',
    body: S.CreateSessionBody, answers: { 201: S.SessionCreated }, errors: [400, 401, 403, 413],
  },
  getSession: { method: 'get', path: '/v1/session', summary: 'who is signed in: role, token, expiry (and the CSRF token for a cookie session)', role: 'viewer', answers: { 200: S.SessionAnswer }, errors: [401] },
  deleteSession: { method: 'delete', path: '/v1/session', summary: 'sign out: ends the cookie\'s session and clears the cookie (needs no valid session)', role: null, answers: { 200: S.SignedOut }, errors: [403] },
  events: {
    method: 'get', path: '/v1/events', role: 'viewer',
    summary: 'server-sent events: an `event: job` with the record (Job) of any job of this server on every change (start, progress, end); a `: ping` comment every 15 s',
    answers: { 200: { mediaType: 'text/event-stream', description: 'event: job, data: a Job as JSON' } }, errors: [401, 403],
  },

  listTokens: { method: 'get', path: '/v1/tokens', summary: 'API tokens (never their secrets)', role: 'admin', answers: { 200: S.TokenList }, errors: [401, 403] },
  createToken: {
    method: 'post', path: '/v1/tokens', role: 'admin',
    summary: 'create a token; the answer holds its secret, the only time it is shown (only a hash is kept)',
    body: S.CreateTokenBody, answers: { 201: S.TokenCreated }, errors: [400, 401, 403, 413],
  },
  revokeToken: {
    method: 'delete', path: '/v1/tokens/:id', role: 'admin',
    summary: 'revoke a token at once; revoking the token of the request itself is allowed (self: true in the answer)',
    params: tokenId, answers: { 200: S.TokenRevoked }, errors: [401, 403, 404],
  },

  listJobs: { method: 'get', path: '/v1/jobs', summary: 'jobs, newest first, a page at a time (limit, offset; total counts all that match)', role: 'viewer', query: JobListQuery, answers: { 200: S.JobList }, errors: [400, 401, 403] },
  getJob: { method: 'get', path: '/v1/jobs/:id', summary: 'one job', role: 'viewer', params: jobId, answers: { 200: S.JobAnswer }, errors: [401, 403, 404] },
  cancelJob: { method: 'post', path: '/v1/jobs/:id/cancel', summary: 'cancel a job (CANCELLING); FINALIZING cannot be cancelled', role: 'operator', params: jobId, answers: { 202: S.JobAnswer }, errors: [401, 403, 404, 409] },
  jobEvents: {
    method: 'get', path: '/v1/jobs/:id/events', role: 'viewer',
    summary: "server-sent events: an `event: job` with the job's record (Job) on every change, until it ends",
    params: jobId, answers: { 200: { mediaType: 'text/event-stream', description: 'event: job, data: a Job as JSON' } }, errors: [401, 403, 404],
  },

  // Alerts (docs/operations.md "Notifications"): admin only; channels hold secrets, never answered.
  listAlertChannels: { method: 'get', path: '/v1/alert-channels', summary: 'notification channels, without their secrets (secretSet, target: scheme and host)', role: 'admin', answers: { 200: S.AlertChannelList }, errors: [401, 403] },
  createAlertChannel: {
    method: 'post', path: '/v1/alert-channels', role: 'admin',
    summary: 'add a notification channel: webhook (HMAC-signed JSON), slack (incoming webhook), ntfy or email (SMTP); its secrets are stored, never answered',
    body: S.CreateAlertChannelBody, answers: { 201: S.AlertChannelAnswer }, errors: [400, 401, 403, 409, 413],
  },
  removeAlertChannel: { method: 'delete', path: '/v1/alert-channels/:name', summary: 'remove a channel and its rules (its deliveries stay on record)', role: 'admin', params: name, answers: { 200: S.AlertChannelRemoved }, errors: [401, 403, 404] },
  testAlertChannel: {
    method: 'post', path: '/v1/alert-channels/:name/test', role: 'admin',
    summary: 'send a sample alert now (one attempt, at most 15 s) and answer the delivery: delivered, or failed with the reason',
    params: name, answers: { 200: S.AlertTestAnswer }, errors: [401, 403, 404],
  },
  listAlertRules: { method: 'get', path: '/v1/alert-rules', summary: 'alert rules: which kinds of event (of which source or schedule) go to which channel', role: 'admin', answers: { 200: S.AlertRuleList }, errors: [401, 403] },
  createAlertRule: {
    method: 'post', path: '/v1/alert-rules', role: 'admin',
    summary: 'add a rule: events of the kinds `on` (default failure), of `source` and `schedule` when given, go to `channel`',
    body: S.CreateAlertRuleBody, answers: { 201: S.AlertRuleAnswer }, errors: [400, 401, 403, 404, 413],
  },
  removeAlertRule: { method: 'delete', path: '/v1/alert-rules/:id', summary: 'remove a rule', role: 'admin', params: z.object({ id: z.string().describe('a rule id, 12 hex digits') }), answers: { 200: S.AlertRuleRemoved }, errors: [401, 403, 404] },
  listAlertDeliveries: { method: 'get', path: '/v1/alert-deliveries', summary: 'deliveries, newest first: pending (retrying), delivered, failed (with the last error)', role: 'admin', query: S.AlertDeliveryQuery, answers: { 200: S.AlertDeliveryList }, errors: [400, 401, 403, 404] },
  // Health (issue 20): recovery point objectives and stuck jobs.
  getHealth: {
    method: 'get', path: '/v1/health', role: null,
    summary: 'without a token: liveness ({status: "ok"}, for load balancers); with a token (any role): status ok or degraded, each source\'s newest good backup against its recovery point objective (breached first) and the stuck jobs. 200 either way',
    answers: { 200: S.HealthReport }, errors: [401],
  },
  updateSource: {
    method: 'patch', path: '/v1/sources/:name', role: 'admin',
    summary: 'set a source\'s recovery point objective: rpo is a duration (26h, 2d) or "default" (from its schedules: the longest gap between runs + 1/12)',
    params: name, body: S.PatchSourceBody, answers: { 200: S.SourceAdded }, errors: [400, 401, 403, 404, 413],
  },
  // Restore drills (issue 20): add and remove hold a target URL (admin); run: operator; read: viewer.
  listDrills: { method: 'get', path: '/v1/drills', summary: 'restore drills with their next run (targets as locations, never their URLs)', role: 'viewer', answers: { 200: S.DrillList }, errors: [401, 403] },
  createDrill: {
    method: 'post', path: '/v1/drills', role: 'admin',
    summary: 'add a restore drill: the newest backup of a registered source restored into a scratch database, row counts compared, checks run, the copy dropped; 400 when the target is a registered source',
    body: S.CreateDrillBody, answers: { 201: S.DrillAnswer }, errors: [400, 401, 403, 404, 409, 413, 422, 502],
  },
  getDrill: { method: 'get', path: '/v1/drills/:name', summary: 'a drill and its latest runs (recovery seconds, tables compared, checks)', role: 'viewer', params: name, answers: { 200: S.DrillDetail }, errors: [401, 403, 404] },
  runDrill: {
    method: 'post', path: '/v1/drills/:name/run', role: 'operator',
    summary: 'run a drill now: 202 with its job (kind drill), which FAILS when counts differ, a check is false or the restore fails',
    params: name, answers: { 202: S.JobAnswer }, errors: [401, 403, 404, 409, 422, 502],
  },
  removeDrill: { method: 'delete', path: '/v1/drills/:name', summary: 'remove a drill and the record of its runs', role: 'admin', params: name, answers: { 200: S.DrillRemoved }, errors: [401, 403, 404] },
  // Replicas sharing a PostgreSQL job catalog (docs/reliability.md "Leases").
  listServers: {
    method: 'get', path: '/v1/servers', role: 'viewer',
    summary: 'the cairn servers sharing the job catalog: version, URL, latest heartbeat, whether their lease runs (alive), their active jobs; with the SQLite catalog, this server',
    answers: { 200: S.ServerList }, errors: [401],
  },
  // Audit log (docs/operations.md "Audit log"): append-only, admin only.
  listAudit: {
    method: 'get', path: '/v1/audit', role: 'admin',
    summary: 'the audit log, newest first: every mutating request (refused ones too: who, from where, what, result) and every job end (who started it)',
    query: AuditQuery, answers: { 200: S.AuditList }, errors: [400, 401, 403],
  },
} as const satisfies Record<string, RouteSpec>;

export type RouteId = keyof typeof ROUTES;
type Routes = typeof ROUTES;

/** What a route's JSON body is once parsed (undefined for routes without one). */
export type BodyOf<K extends RouteId> = Routes[K] extends { body: infer B extends z.ZodType } ? z.output<B> : undefined;
/** What a client sends as the body. */
export type RequestOf<K extends RouteId> = Routes[K] extends { body: infer B extends z.ZodType } ? z.input<B> : never;
/** A route's query parameters once checked. */
export type QueryOf<K extends RouteId> = Routes[K] extends { query: infer Q extends z.ZodType } ? z.output<Q> : Record<string, never>;
/** A route's JSON answer (its first success status). */
export type AnswerOf<K extends RouteId> = {
  [S in keyof Routes[K]['answers']]: Routes[K]['answers'][S] extends z.ZodType ? z.output<Routes[K]['answers'][S]> : never;
}[keyof Routes[K]['answers']];
