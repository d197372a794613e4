/**
 * The REST API (JSON). Every route is an entry of the route table (routes/table.ts): createApp
 * registers each entry's handler (routes/*.ts) with its method, path and role, and checks its
 * body and query with the table's schemas; /openapi.json is generated from the same table.
 * Every long operation is a job: creating one validates the request, answers 202 with the
 * STARTED job at once, and runs it in the JobCenter. Secrets (passwords in source URLs, storage
 * keys) never leave the server: job records and responses carry locations only.
 */
import os from 'node:os';
import path from 'node:path';
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { CairnError, UsageError, type ErrorCode } from '../core/errors.js';
import type { SqliteRegistry } from '../catalog/registry.js';
import type { SqliteScheduleStore } from '../catalog/schedules.js';
import type { SqliteTokenStore } from '../catalog/tokens.js';
import type { JobKind } from '../catalog/types.js';
import type { JobCenter } from '../jobs/job-center.js';
import type { Scheduler } from '../jobs/scheduler.js';
import type { SummaryStore } from '../jobs/backup-summaries.js';
import { LIMITS, describeZodError } from './schemas.js';
import { openApiDocument } from './openapi.js';
import { answerMessage, quote, scrubSecrets } from './redact.js';
import type { Logger } from './log.js';
import { ForbiddenError, type AccessPolicy } from './access.js';
import { ROUTES, type Role, type RouteId, type RouteSpec } from './routes/table.js';
import type { Env, Handler, RouteKit } from './routes/kit.js';
import { backupRoutes } from './routes/backups.js';
import { overviewRoutes } from './routes/overview.js';
import { operationRoutes } from './routes/operations.js';
import { registrationRoutes } from './routes/registrations.js';
import { scheduleRoutes } from './routes/schedules.js';
import { jobRoutes } from './routes/jobs.js';
import { statsRoutes } from './routes/stats.js';
import { tokenRoutes } from './routes/tokens.js';
import { sessionRoutes } from './routes/sessions.js';
import { identify } from './session-auth.js';
import { serveConsole, type ConsoleOptions } from './console.js';
import { SqliteSessionStore } from '../catalog/sessions.js';
import { archiveRoutes } from './routes/exports.js';
import { alertRoutes } from './routes/alerts.js';
import type { AlertCenter } from '../alerts/center.js';
import type { SqliteAlertStore } from '../catalog/alerts.js';
import { healthRoutes } from './routes/health.js';
import { serverRoutes } from './routes/servers.js';
import { HealthService, healthMetricLines } from './health.js';
import { drillRoutes } from './routes/drills.js';
import type { AuditRecorder } from './audit.js';
import { auditRoutes } from './routes/audit.js';
import { Scope } from './scope.js';

export interface AppOptions {
  center: JobCenter;
  tokens: SqliteTokenStore;
  /** Sources and repositories registered on the server (checked before resolveRepository). */
  registry: SqliteRegistry;
  schedules: SqliteScheduleStore;
  scheduler: Scheduler;
  /** What requests may name: registered sources and repositories, the default repository, ad-hoc URLs or not. */
  access: AccessPolicy;
  /** Where server errors (500) are reported, secrets scrubbed (default: stderr). */
  log?: (line: string) => void;
  /**
   * The structured log: every answer with status 400 or more gets a line (method, path without
   * the query, status, error code, durationMs; 5xx at error, 4xx at warn), every other one a
   * debug line. Absent: requests are not logged.
   */
  logger?: Logger;
  /** Console sign-in sessions (default: in memory, lost at restart; the server keeps them in its catalog). */
  sessions?: SqliteSessionStore;
  /** Serve the web console's built files at / (absent: not served, / is 404). */
  console?: ConsoleOptions;
  /** How often GET /v1/events writes a `: ping` comment, in ms (default 15 000). */
  eventsPingMs?: number;
  /** Where export archives and uploaded imports are kept (exports/, imports/ inside); default: a folder under the system's temp folder. */
  dataDir?: string;
  /** The per-backup summary cache of listings (the catalog's SqliteSummaryStore); absent: listings read every manifest. */
  summaries?: SummaryStore;
  /** Notifications: the AlertCenter and its store (both, or the alert routes answer 404). */
  alerts?: { center: AlertCenter; store: SqliteAlertStore };
  /** Sources against their recovery point objectives (GET /v1/health, /metrics); default: one built from these options. */
  health?: HealthService;
  /** Restore drills: their store and job launcher (server/index.ts); absent: the drill routes answer 404. */
  drills?: RouteKit['drills'];
  /** The audit log's recorder (server/audit.ts): every mutating request and job end; absent: nothing recorded, GET /v1/audit answers empty. */
  audit?: AuditRecorder;
}

const STATUS: Record<ErrorCode, 400 | 403 | 404 | 409 | 423 | 422 | 502 | 500> = {
  USAGE: 400,
  NOT_FOUND: 404,
  CONFLICT: 409,
  LOCKED: 423,
  CORRUPT: 422,
  SOURCE: 502,
  STORAGE: 502,
  CANCELLED: 409,
  // The password the server holds for a registered repository opens no key slot of it.
  KEY: 403,
  // A job's end, never a request's: a job that lost its lease to a replica.
  LEASE_LOST: 409,
  INTERNAL: 500,
};

/** Each role may do what the roles before it may (admin ⊃ operator ⊃ viewer). */
const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };
/** What a role below `role` may not do, for the 403 message. */
const DENIED: Record<Role, string> = { viewer: 'read', operator: 'change anything (start or cancel jobs; edit, copy, export or delete backups; add, edit or run schedules; test connections)', admin: 'administer the server' };

/** The JSON body, 400 when it is not JSON. */
async function readJson(c: Context<Env>): Promise<unknown> {
  try {
    return await c.req.json();
  } catch {
    throw new UsageError('The request body is not valid JSON.');
  }
}

/** A body or query checked with its schema: 400 naming every problem (describeZodError). */
function check<T>(schema: { safeParse: (v: unknown) => { success: true; data: T } | { success: false; error: import('zod').ZodError } }, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) throw new UsageError(`Invalid ${what}: ${describeZodError(r.error)}.`);
  return r.data;
}

export function createApp(options: AppOptions): Hono<Env> {
  const { center, tokens, access } = options;
  const app = new Hono<Env>();
  const counters = { requests: 0, jobsStarted: new Map<JobKind, number>() };

  const log = options.log ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const logger = options.logger;
  if (logger) {
    // First, so that it sees every answer: the handlers', onError's, notFound's, bodyLimit's.
    app.use('*', async (c, next) => {
      const started = Date.now();
      await next();
      const status = c.res.status;
      const level = status >= 500 ? 'error' : status >= 400 ? 'warn' : 'debug';
      if (!logger.enabled(level)) return;
      let code: string | undefined;
      if (status >= 400 && (c.res.headers.get('content-type') ?? '').includes('json')) {
        // Error answers are small JSON documents ({ error: { code, message } }).
        const body = (await c.res.clone().json().catch(() => undefined)) as { error?: { code?: unknown } } | undefined;
        if (typeof body?.error?.code === 'string') code = body.error.code;
      }
      // The path only (never the query, which may name a URL); cut, and scrubbed by the logger.
      const path = c.req.path.length > 200 ? `${c.req.path.slice(0, 200)}…` : c.req.path;
      logger[level](status >= 400 ? 'request failed' : 'request', { method: c.req.method, path, status, code, durationMs: Date.now() - started });
    });
  }
  // Before the body limit and authentication: refused requests (413, 401, 403) are recorded too.
  if (options.audit) app.use('*', options.audit.middleware());
  app.onError((err, c) => {
    const status = err instanceof CairnError ? (STATUS[err.code] ?? 500) : 500;
    if (status === 500) {
      // The answer says only "internal error"; the log has what happened, without secrets.
      const detail = err instanceof Error ? (err.stack ?? `${err.name}: ${err.message}`) : String(err);
      log(scrubSecrets(`cairn server: ${c.req.method} ${c.req.path} answered 500: ${detail}`));
    }
    const inputs = [...(c.get('inputs') ?? []), ...['repository', 'source'].map((q) => c.req.query(q) ?? '')];
    if (err instanceof ForbiddenError) return c.json({ error: { code: 'FORBIDDEN', message: answerMessage(err.message, inputs) } }, 403);
    if (err instanceof CairnError) return c.json({ error: { code: err.code, message: answerMessage(err.message, inputs) } }, status);
    return c.json({ error: { code: 'INTERNAL', message: 'Internal error; the server log has the details.' } }, 500);
  });
  app.notFound((c) => c.json({ error: { code: 'NOT_FOUND', message: `No route ${c.req.method} ${quote(c.req.path)}; see /openapi.json.` } }, 404));

  // Bodies are refused past 1 MiB, by Content-Length at once or while streaming: never buffered.
  // Uploads (an archive to import) are streamed to a file by their handler instead.
  const uploads = new Set(Object.values(ROUTES as Record<string, RouteSpec>).filter((r) => r.upload).map((r) => `${r.method.toUpperCase()} ${r.path}`));
  const limit = bodyLimit({
      maxSize: LIMITS.bodyBytes,
      onError: (c) => {
        c.header('connection', 'close');
        return c.json({ error: { code: 'PAYLOAD_TOO_LARGE', message: `The request body is larger than ${LIMITS.bodyBytes} bytes (1 MiB): requests are small JSON documents.` } }, 413);
      },
    });
  app.use('*', (c, next) => (uploads.has(`${c.req.method} ${c.req.path}`) ? next() : limit(c, next)));

  app.use('*', async (_c, next) => {
    counters.requests++;
    await next();
  });

  // The console's files (GET / and the built assets), outside /v1; off without options.console.
  if (options.console) app.use('*', serveConsole(options.console));

  // Every /v1 route needs a bearer token or a session cookie (session-auth.ts), but the few
  // of role null (signing in and out).
  const sessions = options.sessions ?? new SqliteSessionStore(':memory:');
  const open = new Set(Object.values(ROUTES as Record<string, RouteSpec>).filter((r) => r.role === null).map((r) => `${r.method.toUpperCase()} ${r.path}`));
  app.use('/v1/*', async (c, next) => {
    if (open.has(`${c.req.method} ${c.req.path}`)) return next();
    const who = identify(c, tokens, sessions);
    if (!who.ok) return c.json({ error: { code: who.code, message: who.message } }, who.status);
    c.set('token', who.token);
    c.set('session', who.via === 'cookie' ? who.session : undefined);
    await next();
  });

  /** Registers the handler of a route table entry: its role (403), then its body and query (400). */
  const on = <K extends RouteId>(id: K, handler: Handler<K>): void => {
    const spec: RouteSpec = ROUTES[id];
    app.on(spec.method.toUpperCase(), spec.path, async (c) => {
      if (spec.role) {
        const role = c.get('token').role;
        if (RANK[role] < RANK[spec.role]) return c.json({ error: { code: 'FORBIDDEN', message: `The role "${role}" may not ${DENIED[spec.role]}.` } }, 403);
      }
      let body: unknown;
      if (spec.body) {
        const value = await readJson(c);
        // The strings it names, for answerMessage (a URL's password is hidden wherever it is quoted).
        if (value !== null && typeof value === 'object') {
          c.set('inputs', ['source', 'target', 'repository', 'from', 'to', 'url'].map((k) => (value as Record<string, unknown>)[k]).filter((v): v is string => typeof v === 'string'));
        }
        body = check(spec.body, value, 'request');
      }
      const query = spec.query ? check(spec.query, c.req.query(), 'query') : {};
      return handler(c, { body, query } as Parameters<Handler<K>>[1]);
    });
  };
  const role = (c: Context<Env>) => c.get('token').role;
  const accessListeners = new Set<() => void>();
  const kit: RouteKit = {
    on,
    center,
    registry: options.registry,
    schedules: options.schedules,
    scheduler: options.scheduler,
    tokens,
    sessions,
    eventsPingMs: options.eventsPingMs ?? 15_000,
    accessChanged: () => {
      for (const listener of [...accessListeners]) listener();
    },
    onAccessChange: (listener) => {
      accessListeners.add(listener);
      return () => void accessListeners.delete(listener);
    },
    access,
    // A scoped token's limits first (403 naming its scope), then what its role may name.
    scope: (c) => new Scope(c.get('token'), access, options.registry),
    openRepo: async (c, value) => {
      kit.scope(c).checkRepository(value);
      return access.repository(value, role(c));
    },
    sourceUrl: (c, value, what = 'source') => {
      kit.scope(c).checkSource(value, what);
      return access.databaseUrl(value, role(c), what);
    },
    ...(options.audit ? { audit: options.audit.log } : {}),
    serverRepo: (value) => access.repository(value, 'server'),
    started: (kind) => void counters.jobsStarted.set(kind, (counters.jobsStarted.get(kind) ?? 0) + 1),
    dataDir: options.dataDir ?? path.join(os.tmpdir(), `cairn-server-${process.pid}`),
    ...(options.summaries ? { summaries: options.summaries } : {}),
    ...(options.alerts ? { alerts: options.alerts.center, alertStore: options.alerts.store } : {}),
    health: options.health ?? new HealthService({ center, registry: options.registry, schedules: options.schedules, access, ...(options.summaries ? { summaries: options.summaries } : {}) }),
    ...(options.drills ? { drills: options.drills } : {}),
  };

  on('health', (c) => c.json({ status: 'ok' }));
  on('openApi', (c) => c.json(openApiDocument()));
  backupRoutes(kit);
  overviewRoutes(kit);
  operationRoutes(kit);
  registrationRoutes(kit);
  scheduleRoutes(kit);
  jobRoutes(kit);
  statsRoutes(kit);
  tokenRoutes(kit);
  sessionRoutes(kit);
  archiveRoutes(kit);
  alertRoutes(kit);
  healthRoutes(kit);
  serverRoutes(kit);
  drillRoutes(kit);
  auditRoutes(kit);

  on('metrics', async (c) => {
    const jobs = await center.list({ limit: 10_000 });
    const byState = new Map<string, number>();
    for (const j of jobs) byState.set(`${j.kind}|${j.state}`, (byState.get(`${j.kind}|${j.state}`) ?? 0) + 1);
    const lines = [
      '# HELP cairn_http_requests_total HTTP requests served.',
      '# TYPE cairn_http_requests_total counter',
      `cairn_http_requests_total ${counters.requests}`,
      '# HELP cairn_jobs Jobs in the catalog by kind and state.',
      '# TYPE cairn_jobs gauge',
      ...[...byState].map(([k, n]) => {
        const [kind, state] = k.split('|');
        return `cairn_jobs{kind="${kind}",state="${state}"} ${n}`;
      }),
      '# HELP cairn_jobs_active Jobs running now.',
      '# TYPE cairn_jobs_active gauge',
      `cairn_jobs_active ${center.activeIds().length}`,
      // Sources and job durations (server/health.ts): one listing per repository at most every 15 s.
      ...healthMetricLines(await kit.health.cached(), jobs),
    ];
    return c.text(lines.join('\n') + '\n', 200, { 'content-type': 'text/plain; version=0.0.4' });
  });

  return app;
}
