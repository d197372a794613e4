/**
 * What the server writes to the audit log (catalog/audit.ts): a record after every mutating
 * /v1 request (POST, PATCH, PUT, DELETE), answered or refused (401, 403, 4xx, 5xx), sign-ins
 * included; and a record when a job ends, naming who started it. The request's body is never
 * stored: only the names it gave (source, target, repository…), URLs redacted; a sign-in's
 * token never (it is not one of those names).
 *
 * Who started a job: the request that started it runs inside an AsyncLocalStorage context set
 * by the middleware, and the JobCenter tells its listeners of a new job synchronously inside
 * start(), so the listener reads the request's identity there. A job started outside any
 * request is the server's own: its scheduler's ("scheduler").
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Context, MiddlewareHandler } from 'hono';
import type { AuditVia, NewAuditEntry, SqliteAuditLog } from '../catalog/audit.js';
import type { JobRecord } from '../catalog/types.js';
import { isTerminal, type JobCenter } from '../jobs/job-center.js';
import { redactUrl } from './redact.js';
import { LIMITS } from './schemas.js';
import { ROUTES, type RouteSpec } from './routes/table.js';
import type { Env } from './routes/kit.js';

export interface AuditOptions {
  /**
   * Take the caller's address from the first X-Forwarded-For entry (a reverse proxy in front
   * that sets it); default false: the connection's peer address, which a client cannot forge.
   */
  trustForwardedFor?: boolean;
  /** Where a failed audit write is reported (it never fails the request). */
  log?: (line: string) => void;
}

/** Who did something, as a record names them. */
interface Actor {
  actorTokenId: string | null;
  actorName: string | null;
  actorRole: string | null;
  via: AuditVia;
  address: string | null;
}

const MUTATING = new Set(['POST', 'PATCH', 'PUT', 'DELETE']);
/** Body fields (and query parameters) a record names: names, locations, labels; never a secret field. */
const NAMED_FIELDS = ['name', 'role', 'source', 'target', 'repository', 'from', 'to', 'backup', 'backups', 'schedule', 'copyTo', 'sources', 'repositories', 'as', 'dryRun', 'force', 'url'] as const;
/** Job params a job's record names. */
const JOB_FIELDS = ['source', 'target', 'repository', 'from', 'to', 'backup', 'id', 'schedule', 'drill'] as const;

/** "createBackup" → "create backup". */
const words = (id: string): string => id.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase();

/** One value as recorded: URLs redacted, cut short. */
function shown(value: unknown): string | undefined {
  if (typeof value === 'string') {
    // A hostile value is not redacted (URL patterns backtrack on half a megabyte of one letter)
    // nor cut before redaction (that could cut a password from the "@" that marks it): its length only.
    if (value.length > 1000) return `(${value.length} characters)`;
    const v = redactUrl(value);
    return v.length > 120 ? `${v.slice(0, 120)}…` : v;
  }
  if (typeof value === 'boolean' || typeof value === 'number') return String(value);
  if (Array.isArray(value)) {
    // Its first 20 strings only (never nested: a hostile body may nest arrays 100 000 deep).
    const items = value.slice(0, 20).filter((v): v is string => typeof v === 'string').map(shown);
    return `${items.join(',')}${value.length > 20 ? ',…' : ''}`;
  }
  return undefined;
}

/** `key=value` pairs of the named fields of `from`, or null when none. */
function named(from: Record<string, unknown>, fields: readonly string[]): string | null {
  const pairs: string[] = [];
  for (const k of fields) {
    const v = shown(from[k]);
    if (v !== undefined) pairs.push(`${k}=${v}`);
  }
  return pairs.length ? pairs.join(' ') : null;
}

/** Route matchers of the route table: method and a path pattern → route id. */
const MATCHERS = (Object.entries(ROUTES) as [string, RouteSpec][]).map(([id, spec]) => ({
  id,
  method: spec.method.toUpperCase(),
  pattern: new RegExp(`^${spec.path.replace(/:[A-Za-z0-9_]+/g, '[^/]+')}$`),
  upload: Boolean(spec.upload),
}));

export class AuditRecorder {
  private readonly requests = new AsyncLocalStorage<{ actor: () => Actor }>();
  /** Jobs running, with who started them. */
  private readonly starters = new Map<string, Actor>();

  constructor(
    readonly log: SqliteAuditLog,
    private readonly options: AuditOptions = {},
  ) {}

  private write(entry: NewAuditEntry): void {
    try {
      this.log.append(entry);
    } catch (err) {
      // Never fails the request or the job; the server log says the record is missing.
      this.options.log?.(`audit: could not write a record of ${entry.method} ${entry.path}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private address(c: Context<Env>): string | null {
    if (this.options.trustForwardedFor) {
      const forwarded = c.req.header('x-forwarded-for')?.split(',')[0]?.trim();
      if (forwarded) return forwarded;
    }
    const env = c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined;
    return env?.incoming?.socket?.remoteAddress ?? null;
  }

  private actorOf(c: Context<Env>): Actor {
    const token = c.get('token');
    return {
      actorTokenId: token?.id ?? null,
      actorName: token ? token.name : null,
      actorRole: token?.role ?? null,
      via: token ? (c.get('session') ? 'session' : 'token') : 'none',
      address: this.address(c),
    };
  }

  /** The middleware: register it before every other /v1 middleware so that it sees every answer. */
  middleware(): MiddlewareHandler<Env> {
    return async (c, next) => {
      if (!MUTATING.has(c.req.method) || !c.req.path.startsWith('/v1/')) return next();
      await this.requests.run({ actor: () => this.actorOf(c) }, next);
      const route = MATCHERS.find((m) => m.method === c.req.method && m.pattern.test(c.req.path));
      const status = c.res.status;
      let actor = this.actorOf(c);
      let answer: Record<string, unknown> | undefined;
      if ((c.res.headers.get('content-type') ?? '').includes('json')) {
        answer = (await c.res.clone().json().catch(() => undefined)) as Record<string, unknown> | undefined;
      }
      // A sign-in has no token in the context: the answer names whose it is.
      const session = answer?.session as { tokenId?: string; tokenName?: string; role?: string } | undefined;
      if (route?.id === 'createSession' && status === 201 && session) {
        actor = { ...actor, actorTokenId: session.tokenId ?? null, actorName: session.tokenName ?? null, actorRole: session.role ?? null, via: 'session' };
      }
      let body: Record<string, unknown> = {};
      if (!route?.upload && (c.req.header('content-type') ?? '').includes('json')) {
        // The body the handler parsed (cached); else, for a request refused before its body was
        // read (401, 403), read now only when it declared a length within the body limit: a
        // refused 50 MB body is never buffered for its record.
        const parsed: unknown =
          c.req.bodyCache.json !== undefined || (status !== 413 && Number(c.req.header('content-length') ?? Number.NaN) <= LIMITS.bodyBytes)
            ? await c.req.json().catch(() => undefined)
            : undefined;
        if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) body = parsed as Record<string, unknown>;
      }
      const query = c.req.query();
      const target = [named(body, NAMED_FIELDS), named(query, ['repository', 'as', 'force', 'deleteScheduledBackups'])].filter(Boolean).join(' ') || null;
      const error = answer?.error as { code?: unknown } | undefined;
      const job = answer?.job as { id?: unknown } | undefined;
      this.write({
        type: 'request',
        ...actor,
        method: c.req.method,
        path: c.req.path,
        route: route?.id ?? null,
        action: route ? words(route.id) : `${c.req.method} (no such route)`,
        target,
        status,
        result: status < 400 ? 'ok' : typeof error?.code === 'string' ? error.code : `HTTP_${status}`,
        jobId: typeof job?.id === 'string' && status === 202 ? job.id : null,
      });
    };
  }

  /** Records every job's end with who started it; returns the unsubscribe function. */
  watch(center: JobCenter): () => void {
    return center.watchAll((job) => this.onJob(job));
  }

  private onJob(job: JobRecord): void {
    if (job.state === 'STARTED' && !this.starters.has(job.id)) {
      const request = this.requests.getStore();
      this.starters.set(
        job.id,
        request?.actor() ?? { actorTokenId: null, actorName: typeof job.params.schedule === 'string' || typeof job.params.drill === 'string' ? 'scheduler' : 'server', actorRole: null, via: 'server', address: null },
      );
      return;
    }
    if (!isTerminal(job.state)) return;
    const actor = this.starters.get(job.id);
    if (!actor) return; // started before this recorder watched: not this server's to tell
    this.starters.delete(job.id);
    this.write({
      type: 'job',
      ...actor,
      method: 'JOB',
      path: `/v1/jobs/${job.id}`,
      route: 'jobEnded',
      action: `${job.kind} job ended`,
      target: named(job.params, JOB_FIELDS),
      status: null,
      result: job.error?.code && job.state !== 'SUCCESS' ? `${job.state} ${job.error.code}` : job.state,
      jobId: job.id,
    });
  }
}
