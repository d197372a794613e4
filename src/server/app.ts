/**
 * The REST API (JSON). Every long operation is a job: creating one validates the request, answers
 * 202 with the STARTED job at once, and runs it in the JobCenter. Secrets (passwords in source
 * URLs, storage keys) never leave the server: job records and responses carry locations only.
 */
import { Hono, type Context } from 'hono';
import { createMiddleware } from 'hono/factory';
import { bodyLimit } from 'hono/body-limit';
import { streamSSE } from 'hono/streaming';
import os from 'node:os';
import { CairnError, UsageError, type ErrorCode } from '../core/errors.js';
import { validateBackupId } from '../core/ids.js';
import type { Role, SqliteTokenStore, TokenInfo } from '../catalog/tokens.js';
import { JOB_STATES, type JobKind, type JobRecord, type JobState } from '../catalog/types.js';
import { runBackup } from '../jobs/backup.js';
import { isTerminal, type JobCenter } from '../jobs/job-center.js';
import { runRestore } from '../jobs/restore.js';
import { runCopy } from '../jobs/copy.js';
import { prune } from '../repo/prune.js';
import { verifyBackupsLocked, verifyFailure } from '../repo/verify.js';
import { Repository } from '../repo/repository.js';
import { definitionProblems, namesCollection, openSource, openTarget } from '../sources/index.js';
import { openStorage } from '../storage/index.js';
import { CreateBackupBody, CreateCopyBody, CreatePruneBody, CreateRestoreBody, CreateScheduleBody, CreateVerifyBody, LIMITS, RegisterBody, describeZodError } from './schemas.js';
import type { RegistrationKind, SqliteRegistry } from '../catalog/registry.js';
import type { SqliteScheduleStore } from '../catalog/schedules.js';
import type { Scheduler } from '../jobs/scheduler.js';
import { buildScheduleSpec } from '../jobs/schedule-spec.js';
import { deleteScheduledBackupsOf, enabledSchedulesUsing, sourceInUse } from '../jobs/scheduled-backup.js';
import { databaseKey } from '../jobs/database-key.js';
import { openApiDocument } from './openapi.js';
import { answerMessage, quote, safeMessage, scrubSecrets } from './redact.js';
import { AccessPolicy, DEFAULT_REPOSITORY, ForbiddenError, isName } from './access.js';
import { publicRuns, publicSchedule } from './public.js';

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
}

const STATUS: Record<ErrorCode, 400 | 404 | 409 | 423 | 422 | 502 | 500> = {
  USAGE: 400,
  NOT_FOUND: 404,
  CONFLICT: 409,
  LOCKED: 423,
  CORRUPT: 422,
  SOURCE: 502,
  STORAGE: 502,
  CANCELLED: 409,
  INTERNAL: 500,
};

const ALLOWED: Record<Role, ReadonlySet<string>> = {
  admin: new Set(['read', 'operate', 'admin']),
  operator: new Set(['read', 'operate']),
  viewer: new Set(['read']),
};

/** inputs: the strings a request named (URLs, paths), redacted wherever an error quotes them. */
type Env = { Variables: { token: TokenInfo; inputs: string[] } };

/** A job record as answered: its error message through the same guard as every error (secrets, length). */
function publicJob(job: JobRecord): JobRecord {
  return job.error ? { ...job, error: { ...job.error, message: safeMessage(job.error.message) } } : job;
}

const JOB_KINDS: readonly JobKind[] = ['backup', 'restore', 'copy', 'verify', 'prune'];

/** A backup id from a path: checked before anything is looked up, and quoted short when invalid. */
function backupId(value: string): string {
  if (value.length > 128) throw new UsageError(`Invalid backup id ${quote(value)}: use 1-128 lowercase letters, digits, "-" or "_".`);
  return validateBackupId(value);
}

/** A job id from a path (kind-hex): anything else cannot name a job. */
function jobId(value: string): string {
  if (!/^[a-z]{1,16}-[0-9a-f]{1,64}$/.test(value)) throw new CairnError('NOT_FOUND', `Job ${quote(value)} not found: job ids look like backup-0123456789abcdef (GET /v1/jobs lists them).`);
  return value;
}

/** A schedule name from a path. */
function scheduleName(value: string): string {
  if (!isName(value)) throw new CairnError('NOT_FOUND', `No schedule named ${quote(value)}: schedule names are lowercase letters, digits, - and _ (GET /v1/schedules lists them).`);
  return value;
}

/** A registered source or repository name from a path. */
function registeredName(value: string, kind: RegistrationKind): string {
  if (!isName(value)) throw new CairnError('NOT_FOUND', `No ${kind} named ${quote(value)} is registered: names are lowercase letters, digits, - and _.`);
  return value;
}

/** A true/false query parameter, undefined when absent. */
function booleanQuery(c: Context<Env>, name: string): boolean | undefined {
  const v = c.req.query(name);
  if (v === undefined) return undefined;
  if (v !== 'true' && v !== 'false') throw new UsageError(`${name} is true or false, not ${quote(v)}.`);
  return v === 'true';
}

export function createApp(options: AppOptions): Hono<Env> {
  const { center, tokens, registry, access } = options;
  const app = new Hono<Env>();
  const counters = { requests: 0, jobsStarted: new Map<JobKind, number>() };

  const log = options.log ?? ((line: string) => void process.stderr.write(`${line}\n`));
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
  app.use(
    '*',
    bodyLimit({
      maxSize: LIMITS.bodyBytes,
      onError: (c) => {
        c.header('connection', 'close');
        return c.json({ error: { code: 'PAYLOAD_TOO_LARGE', message: `The request body is larger than ${LIMITS.bodyBytes} bytes (1 MiB): requests are small JSON documents.` } }, 413);
      },
    }),
  );

  app.use('*', async (_c, next) => {
    counters.requests++;
    await next();
  });
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/openapi.json', (c) => c.json(openApiDocument()));

  app.use('/v1/*', async (c, next) => {
    const header = c.req.header('authorization') ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    const token = m?.[1] ? tokens.authenticate(m[1]) : undefined;
    if (!token) {
      return c.json({ error: { code: 'UNAUTHORIZED', message: 'Missing or unknown bearer token: send Authorization: Bearer <token> (cairn token create --role …).' } }, 401);
    }
    c.set('token', token);
    await next();
  });
  /** A route's required permission: 403 naming what the token's role may not do. */
  const allow = (what: 'read' | 'operate' | 'admin') =>
    createMiddleware<Env>(async (c, next) => {
      const role = c.get('token').role;
      if (!ALLOWED[role].has(what)) {
        return c.json({ error: { code: 'FORBIDDEN', message: `The role "${role}" may not ${what === 'read' ? 'read' : what === 'operate' ? 'start or stop jobs or delete backups' : 'administer the server'}.` } }, 403);
      }
      await next();
    });
  const body = async (c: Context<Env>): Promise<unknown> => {
    try {
      return await c.req.json();
    } catch {
      throw new UsageError('The request body is not valid JSON.');
    }
  };
  const parse = <T>(schema: { safeParse: (v: unknown) => { success: true; data: T } | { success: false; error: import('zod').ZodError } }, value: unknown, c?: Context<Env>): T => {
    // The strings it names, for answerMessage (a URL's password is hidden wherever it is quoted).
    if (c && value !== null && typeof value === 'object') {
      c.set('inputs', ['source', 'target', 'repository', 'from', 'to', 'url'].map((k) => (value as Record<string, unknown>)[k]).filter((v): v is string => typeof v === 'string'));
    }
    const r = schema.safeParse(value);
    if (!r.success) throw new UsageError(`Invalid request: ${describeZodError(r.error)}.`);
    return r.data;
  };
  const role = (c: Context<Env>) => c.get('token').role;
  const openRepo = (c: Context<Env>, value: string | undefined) => access.repository(value, role(c));
  const sourceUrl = (c: Context<Env>, value: string, what: 'source' | 'target' = 'source') => access.databaseUrl(value, role(c), what);
  const serverRepo = (value: string) => access.repository(value, 'server');
  const started = (kind: JobKind): void => void counters.jobsStarted.set(kind, (counters.jobsStarted.get(kind) ?? 0) + 1);

  // ---- backups
  app.post('/v1/backups', allow('operate'), async (c) => {
    const req = parse(CreateBackupBody, await body(c), c);
    if (req.id !== undefined) validateBackupId(req.id);
    const source = openSource(sourceUrl(c, req.source)); // validates the URL; its location has no secret
    const repo = await openRepo(c, req.repository);
    if (req.id !== undefined && (await repo.hasBackup(req.id))) throw new CairnError('CONFLICT', `Backup "${req.id}" already exists in ${repo.location}; choose another id.`);
    const cores = os.availableParallelism();
    const jobs = req.config?.jobs ?? (req.config?.cpuPercentage !== undefined ? Math.max(1, Math.floor((cores * req.config.cpuPercentage) / 100)) : undefined);
    const compression = req.config?.compression || req.config?.level
      ? { algorithm: req.config.compression ?? repo.config.compression.algorithm, level: req.config.level ?? repo.config.compression.level }
      : undefined;
    const job = await center.start({
      kind: 'backup',
      exclusiveKey: databaseKey(source.location),
      params: { source: source.location, repository: repo.location, ...(req.id ? { id: req.id } : {}), ...(req.include ? { include: req.include } : {}), ...(req.exclude ? { exclude: req.exclude } : {}), ...(req.config ? { config: req.config } : {}) },
      run: async (ctx) => {
        const m = await runBackup({
          repo,
          source,
          ...(req.id ? { id: req.id } : {}),
          selection: { ...(req.include ? { include: req.include } : {}), ...(req.exclude ? { exclude: req.exclude } : {}) },
          ...(compression ? { compression } : {}),
          ...(jobs ? { jobs } : {}),
          ...(req.config?.packSizeMiB ? { packSize: req.config.packSizeMiB * 1024 * 1024 } : {}),
          signal: ctx.signal,
          onProgress: ctx.progress,
        });
        return { backupId: m.id, totals: m.totals };
      },
    });
    started('backup');
    return c.json({ job: publicJob(job) }, 202);
  });

  app.get('/v1/backups', allow('read'), async (c) => {
    const repo = await openRepo(c, c.req.query('repository'));
    const source = c.req.query('source');
    const status = c.req.query('status');
    if (status !== undefined && !(JOB_STATES as readonly string[]).includes(status)) throw new UsageError(`Unknown status ${quote(status)}: use one of ${JOB_STATES.join(', ')}.`);
    // One damaged or foreign object under backups/ is reported beside the others, never fails the list.
    const all = await repo.readAllManifests();
    const manifests = all.manifests.filter((m) => !source || m.source.location === source || m.source.name === source);
    // Complete backups are in the repository; running, failed and cancelled ones are jobs.
    const unfinished = (await center.list({ kind: 'backup', limit: 1000 }))
      .filter((j) => j.state !== 'SUCCESS' && j.params.repository === repo.location && (!source || j.params.source === source))
      .map((j) => ({ id: typeof j.params.id === 'string' ? j.params.id : null, status: j.state, jobId: j.id, source: { location: j.params.source }, createdAt: j.createdAt, finishedAt: j.finishedAt, error: publicJob(j).error }));
    const complete = manifests.map((m) => ({
        id: m.id,
        status: 'SUCCESS',
        type: m.type,
        source: m.source,
        createdAt: m.createdAt,
        completedAt: m.completedAt,
        expiresAt: m.expiresAt,
        size: { logicalBytes: m.totals.logicalBytes, storedBytes: m.totals.storedBytes, newBytes: m.totals.newBytes },
        collections: m.totals.collections,
        rows: m.totals.rows,
      }));
    return c.json({
      repository: repo.location,
      backups: [...complete, ...unfinished].filter((b) => status === undefined || b.status === status),
      damaged: all.damaged.map((d) => ({ id: d.id.length > 200 ? `${d.id.slice(0, 200)}…` : d.id, message: d.message })),
      unchecksummed: all.unchecksummed,
    });
  });

  app.get('/v1/backups/:id', allow('read'), async (c) => {
    const id = backupId(c.req.param('id'));
    const repo = await openRepo(c, c.req.query('repository'));
    const m = await repo.readManifest(id);
    return c.json({ ...m, collections: m.collections.map(({ chunks, segments: _s, definition: _d, ...rest }) => ({ ...rest, chunks: chunks.length })) });
  });

  app.delete('/v1/backups/:id', allow('operate'), async (c) => {
    const id = backupId(c.req.param('id'));
    const repo = await openRepo(c, c.req.query('repository'));
    await repo.deleteBackup(id);
    return c.json({ deleted: id, repository: repo.location, note: 'space is reclaimed by prune' });
  });

  // ---- restores
  app.post('/v1/restores', allow('operate'), async (c) => {
    const req = parse(CreateRestoreBody, await body(c), c);
    const backupId = validateBackupId(req.backup);
    const repo = await openRepo(c, req.repository);
    const manifest = await repo.readManifest(backupId); // 404 before a job exists
    // Every rename names a collection of the backup ("__proto__" too): none is dropped unseen.
    for (const [from] of req.renames ?? []) {
      if (!manifest.collections.some((col) => namesCollection(manifest.source.kind, from, col.name))) {
        throw new UsageError(`renames: ${quote(from)} is not a collection of backup "${backupId}"; see GET /v1/backups/${backupId}.`);
      }
    }
    const target = openTarget(sourceUrl(c, req.target, 'target'));
    const job = await center.start({
      kind: 'restore',
      exclusiveKey: databaseKey(target.location),
      params: { backup: backupId, repository: repo.location, target: target.location, ...(req.include ? { include: req.include } : {}), ...(req.exclude ? { exclude: req.exclude } : {}), ...(req.renames ? { renames: Object.fromEntries(req.renames) } : {}), onConflict: req.onConflict ?? 'fail' },
      run: async (ctx) => {
        const summary = await runRestore({
          repo,
          backupId,
          target,
          selection: { ...(req.include ? { include: req.include } : {}), ...(req.exclude ? { exclude: req.exclude } : {}) },
          renames: new Map(req.renames ?? []),
          onConflict: req.onConflict ?? 'fail',
          ...(req.jobs ? { jobs: req.jobs } : {}),
          ...(req.roles !== undefined ? { roles: req.roles } : {}),
          signal: ctx.signal,
          onProgress: ctx.progress,
          onFinalizing: ctx.finalizing,
        });
        return { ...summary };
      },
    });
    started('restore');
    return c.json({ job: publicJob(job) }, 202);
  });

  // ---- copy, verify, prune
  app.post('/v1/copies', allow('operate'), async (c) => {
    const req = parse(CreateCopyBody, await body(c), c);
    const backupId = validateBackupId(req.backup);
    const [from, to] = [await openRepo(c, req.from), await openRepo(c, req.to)];
    await from.readManifest(backupId);
    const job = await center.start({
      kind: 'copy',
      params: { backup: backupId, from: from.location, to: to.location },
      run: async (ctx) => {
        const result = await runCopy({
          from,
          to,
          backupId,
          signal: ctx.signal,
          onProgress: (p) => ctx.progress({ phase: p.phase, collectionsDone: p.packsDone, collectionsTotal: p.packsTotal, rows: 0, bytes: p.bytesCopied, bytesTotal: p.bytesTotal }),
        });
        return { ...result };
      },
    });
    started('copy');
    return c.json({ job: publicJob(job) }, 202);
  });

  app.post('/v1/verifications', allow('operate'), async (c) => {
    const req = parse(CreateVerifyBody, await body(c), c);
    const ids = (req.backups ?? []).map(validateBackupId);
    const repo = await openRepo(c, req.repository);
    const job = await center.start({
      kind: 'verify',
      params: { repository: repo.location, ...(ids.length ? { backups: ids } : {}), readData: Boolean(req.readData) },
      run: async (ctx) => {
        const all = ids.length
          ? { manifests: await Promise.all(ids.map((id) => repo.readManifest(id, ctx.signal))), damaged: [] }
          : await repo.readAllManifests(ctx.signal);
        const report = await verifyBackupsLocked(repo, all.manifests, {
          readData: Boolean(req.readData),
          signal: ctx.signal,
          onProgress: (done, total) => ctx.progress({ phase: 'transferring', collectionsDone: done, collectionsTotal: total, rows: 0, bytes: 0 }),
        });
        // A manifest that cannot be read is a backup that cannot be restored: a problem too (as the CLI).
        for (const d of all.damaged) report.problems.unshift({ object: `backups/${d.id}`, message: d.message, affects: [d.id] });
        report.problems.unshift(...definitionProblems(all.manifests));
        if (report.problems.length > 0) throw verifyFailure(report);
        return { backups: report.backups, chunks: report.chunks, packs: report.packs, bytesRead: report.bytesRead };
      },
    });
    started('verify');
    return c.json({ job: publicJob(job) }, 202);
  });

  app.post('/v1/prunes', allow('operate'), async (c) => {
    const req = parse(CreatePruneBody, await body(c), c);
    const repo = await openRepo(c, req.repository);
    const job = await center.start({
      kind: 'prune',
      exclusiveKey: repo.location,
      params: { repository: repo.location, dryRun: Boolean(req.dryRun), ...(req.graceSeconds !== undefined ? { graceSeconds: req.graceSeconds } : {}) },
      run: async (ctx) => ({
        ...(await prune(repo, { dryRun: Boolean(req.dryRun), signal: ctx.signal, ...(req.graceSeconds !== undefined ? { unindexedGraceMs: req.graceSeconds * 1000 } : {}) })),
      }),
    });
    started('prune');
    return c.json({ job: publicJob(job) }, 202);
  });

  // ---- registered sources and repositories (their URLs never leave the server)
  for (const [kind, plural] of [['source', 'sources'], ['repository', 'repositories']] as [RegistrationKind, string][]) {
    app.post(`/v1/${plural}`, allow('admin'), async (c) => {
      const req = parse(RegisterBody, await body(c), c);
      let location: string;
      if (kind === 'source') {
        location = openSource(req.url).location;
        access.checkDatabaseUrl(req.url, 'That source');
      } else {
        if (req.name === DEFAULT_REPOSITORY) throw new UsageError(`The repository name "${DEFAULT_REPOSITORY}" is reserved for the server's BACKUP_* repository: choose another.`);
        const resolved = isName(req.url) ? await access.resolveConfigName(req.url) : req.url;
        const storage = openStorage(resolved);
        access.checkStorage(storage);
        location = (await Repository.open(storage)).location; // it must exist: `cairn repo init` first
        req.url = resolved;
      }
      return c.json({ [kind]: registry.add(kind, req.name, req.url, location) }, 201);
    });
    app.get(`/v1/${plural}`, allow('read'), (c) => {
      return c.json({ [plural]: registry.list(kind) });
    });
    app.delete(`/v1/${plural}/:name`, allow('admin'), async (c) => {
      const name = registeredName(c.req.param('name'), kind);
      const flag = booleanQuery(c, 'deleteScheduledBackups');
      const force = booleanQuery(c, 'force');
      if (kind === 'repository' && flag !== undefined) throw new UsageError('deleteScheduledBackups applies to sources only.');
      const url = registry.url(kind, name);
      if (url === undefined) throw new CairnError('NOT_FOUND', `No ${kind} named ${quote(name)} is registered.`);
      // Enabled schedules naming it would fail at every run: refused, or disabled with force=true.
      const using = enabledSchedulesUsing(options.schedules.list(), name, kind);
      if (using.length > 0 && !force) throw sourceInUse(name, using, 'force=true', kind);
      // Scheduled backups of this source can go with it, on request; manual backups always stay.
      const deleted = kind === 'source' && flag ? await deleteScheduledBackupsOf(name, openSource(url).location, options.schedules.list(), serverRepo) : [];
      for (const s of using) options.schedules.setEnabled(s, false);
      registry.remove(kind, name);
      return c.json({
        removed: name,
        ...(kind === 'source' ? { deletedScheduledBackups: deleted } : {}),
        disabledSchedules: using,
        note: kind === 'repository' ? 'the repository and its backups are untouched' : deleted.length ? 'manual backups are kept; prune reclaims the space' : 'its backups are kept',
      });
    });
  }

  // ---- schedules
  const { schedules, scheduler } = options;
  app.get('/v1/schedules', allow('read'), (c) => {
    return c.json({ schedules: schedules.list().map((s) => ({ ...publicSchedule(s), nextRun: s.enabled ? scheduler.next(s, new Date())?.toISOString() ?? null : null })) });
  });
  app.post('/v1/schedules', allow('operate'), async (c) => {
    const req = parse(CreateScheduleBody, await body(c), c);
    const spec = buildScheduleSpec({ ...req, repository: req.repository ?? DEFAULT_REPOSITORY }, new Date());
    openSource(sourceUrl(c, spec.source));
    await openRepo(c, spec.repository);
    schedules.add(spec);
    return c.json({ schedule: { ...publicSchedule(spec), nextRun: spec.enabled ? scheduler.next(spec, new Date())?.toISOString() ?? null : null } }, 201);
  });
  app.get('/v1/schedules/:name', allow('read'), (c) => {
    const s = schedules.get(scheduleName(c.req.param('name')));
    return c.json({ schedule: { ...publicSchedule(s), nextRun: s.enabled ? scheduler.next(s, new Date())?.toISOString() ?? null : null }, runs: publicRuns(schedules.runs(s.name, 50), s) });
  });
  for (const action of ['enable', 'disable'] as const) {
    app.post(`/v1/schedules/:name/${action}`, allow('operate'), (c) => {
      const name = scheduleName(c.req.param('name'));
      schedules.setEnabled(name, action === 'enable');
      return c.json({ schedule: publicSchedule(schedules.get(name)) });
    });
  }
  app.post('/v1/schedules/:name/run', allow('operate'), async (c) => {
    // 409 only when a job holds the schedule's database; otherwise the error that stopped it.
    const name = scheduleName(c.req.param('name'));
    const spec = schedules.get(name);
    c.set('inputs', [spec.source, spec.repository]); // the error may quote its URL
    const jobId = await scheduler.runNow(name);
    return c.json({ job: publicJob(await center.get(jobId)) }, 202);
  });
  app.delete('/v1/schedules/:name', allow('operate'), (c) => {
    const name = scheduleName(c.req.param('name'));
    schedules.remove(name);
    return c.json({ removed: name, note: 'its backups are kept' });
  });

  // ---- the job center
  app.get('/v1/jobs', allow('read'), async (c) => {
    const kind = c.req.query('kind') as JobKind | undefined;
    const state = c.req.query('state') as JobState | undefined;
    if (kind !== undefined && !(JOB_KINDS as readonly string[]).includes(kind)) throw new UsageError(`Unknown kind ${quote(kind)}: use one of ${JOB_KINDS.join(', ')}.`);
    if (state !== undefined && !(JOB_STATES as readonly string[]).includes(state)) throw new UsageError(`Unknown state ${quote(state)}: use one of ${JOB_STATES.join(', ')}.`);
    return c.json({ jobs: (await center.list({ ...(kind ? { kind } : {}), ...(state ? { state } : {}) })).map(publicJob) });
  });
  app.get('/v1/jobs/:id', allow('read'), async (c) => {
    return c.json({ job: publicJob(await center.get(jobId(c.req.param('id')))) });
  });
  app.post('/v1/jobs/:id/cancel', allow('operate'), async (c) => {
    return c.json({ job: publicJob(await center.cancel(jobId(c.req.param('id')))) }, 202);
  });
  app.get('/v1/jobs/:id/events', allow('read'), async (c) => {
    const first = await center.get(jobId(c.req.param('id')));
    return streamSSE(c, async (stream) => {
      await stream.writeSSE({ event: 'job', data: JSON.stringify(publicJob(first)) });
      if (isTerminal(first.state)) return;
      // Writes in order; the last one (the final state) is awaited before the stream closes.
      let writes = Promise.resolve();
      await new Promise<void>((resolve) => {
        const stop = center.watch(first.id, (job) => {
          writes = writes.then(() => stream.writeSSE({ event: 'job', data: JSON.stringify(publicJob(job)) }));
          if (isTerminal(job.state)) {
            stop();
            resolve();
          }
        });
        stream.onAbort(() => {
          stop();
          resolve();
        });
        // It may have ended between get() and watch().
        void center.get(first.id).then((now) => {
          if (!isTerminal(now.state)) return;
          stop();
          writes = writes.then(() => stream.writeSSE({ event: 'job', data: JSON.stringify(publicJob(now)) }));
          resolve();
        }, resolve);
      });
      await writes;
    });
  });

  app.get('/metrics', async (c) => {
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
    ];
    return c.text(lines.join('\n') + '\n', 200, { 'content-type': 'text/plain; version=0.0.4' });
  });

  return app;
}
