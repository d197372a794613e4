/**
 * /openapi.json against the server: every route the app serves is in the document (and nothing
 * else is), the document holds together as OpenAPI 3.1 (unique operationIds, path parameters
 * declared, every $ref resolves), and real answers of every route parse with the schema the
 * document names for them, with no field the schema does not know.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { SqliteTokenStore } from '../../src/catalog/tokens.js';
import { Repository } from '../../src/repo/repository.js';
import { createApp, type AppOptions } from '../../src/server/app.js';
import { catalogFile, startServer, type RunningServer } from '../../src/server/index.js';
import { openApiDocument } from '../../src/server/openapi.js';
import { ROUTES, type RouteId, type RouteSpec } from '../../src/server/routes/table.js';
import { ErrorAnswer, Job } from '../../src/server/schemas.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { readAnswer, waitJob } from '../helpers/api.js';

const CHINOOK_SQLITE = fileURLToPath(new URL('../../fixtures/chinook/chinook.sqlite', import.meta.url));
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

type Doc = { openapi: string; info: { title: string; version: string }; paths: Record<string, Record<string, Operation>>; components: Record<string, Record<string, unknown>>; security?: Record<string, string[]>[] };
type Operation = { operationId: string; parameters?: { name: string; in: string; required?: boolean }[]; responses: Record<string, unknown>; security?: Record<string, string[]>[] };

/** `METHOD /path` (OpenAPI's `{x}` spelled as Hono's `:x`) of every operation in the document. */
function documented(doc: Doc): string[] {
  return Object.entries(doc.paths).flatMap(([path, item]) => Object.keys(item).filter((m) => METHODS.includes(m)).map((m) => `${m.toUpperCase()} ${path.replace(/\{([^}]+)\}/g, ':$1')}`)).sort();
}

/** `METHOD /path` of every handler the app serves (middleware, registered for ALL methods, left out). */
function served(app: Hono<never>): string[] {
  return [...new Set(app.routes.filter((r) => r.method !== 'ALL').map((r) => `${r.method} ${r.path}`))].sort();
}

/** Every `$ref` in the document, with where it is. */
function refs(value: unknown, at = '#'): [string, string][] {
  if (Array.isArray(value)) return value.flatMap((v, i) => refs(v, `${at}/${i}`));
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([k, v]) => (k === '$ref' && typeof v === 'string' ? [[at, v] as [string, string]] : refs(v, `${at}/${k}`)));
}

/** What a local JSON pointer (#/a/b) points at in the document, or undefined. */
function resolve(doc: unknown, pointer: string): unknown {
  if (!pointer.startsWith('#/')) return undefined;
  return pointer
    .slice(2)
    .split('/')
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce<unknown>((node, key) => (node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[key] : undefined), doc);
}

describe('the OpenAPI document and the served routes', () => {
  // Registering routes touches none of the options: an app built on nothing lists them all.
  const app = (): Hono<never> => createApp({} as AppOptions) as unknown as Hono<never>;
  const doc = openApiDocument() as unknown as Doc;

  it('documents every served route, and only those', () => {
    expect(served(app())).toEqual(documented(doc));
    expect(served(app()).length).toBe(Object.keys(ROUTES).length);
    // The comparison sees a route added beside the table.
    const extra = app();
    extra.get('/v1/undocumented', (c) => c.text('x'));
    expect(served(extra)).not.toEqual(documented(doc));
  });

  it('is OpenAPI 3.1 that holds together: unique operationIds, declared path parameters, answers, $refs that resolve', () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(typeof doc.info.title).toBe('string');
    expect(typeof doc.info.version).toBe('string');
    const ids: string[] = [];
    for (const [path, item] of Object.entries(doc.paths)) {
      expect(path).toMatch(/^\/[a-z0-9/{}._-]*$/i);
      for (const [method, op] of Object.entries(item)) {
        expect(METHODS, `${method} ${path}`).toContain(method);
        ids.push(op.operationId);
        const inPath = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]).sort();
        const declared = (op.parameters ?? []).filter((p) => p.in === 'path');
        expect(declared.map((p) => p.name).sort(), `${method} ${path}`).toEqual(inPath);
        for (const p of declared) expect(p.required).toBe(true);
        for (const p of op.parameters ?? []) expect(['path', 'query', 'header', 'cookie']).toContain(p.in);
        const statuses = Object.keys(op.responses);
        expect(statuses.some((s) => /^2\d\d$/.test(s)), `${method} ${path} has a success answer`).toBe(true);
        for (const s of statuses) expect(s).toMatch(/^[1-5]\d\d$/);
        for (const requirement of op.security ?? doc.security ?? []) for (const scheme of Object.keys(requirement)) expect(doc.components.securitySchemes).toHaveProperty(scheme);
      }
    }
    expect(ids.every((id) => typeof id === 'string' && id.length > 0)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    const all = refs(doc);
    expect(all.length).toBeGreaterThan(50);
    for (const [at, ref] of all) expect(resolve(doc, ref), `${ref} at ${at}`).toBeDefined();
    // Components are JSON Schema 2020-12 objects, without the keywords of stand-alone documents.
    for (const [name, schema] of Object.entries(doc.components.schemas as Record<string, Record<string, unknown>>)) {
      expect(['type', '$ref', 'anyOf', 'oneOf', 'allOf', 'enum', 'const'].some((k) => k in schema), name).toBe(true);
      expect(schema, name).not.toHaveProperty('$schema');
      expect(schema, name).not.toHaveProperty('$id');
    }
    // Every schema the table names is a component: nothing is described twice.
    for (const name of ['CreateBackupBody', 'CreateScheduleBody', 'JobAnswer', 'BackupList', 'ScheduleDetail', 'ErrorAnswer']) expect(doc.components.schemas).toHaveProperty(name);
    // renames is sent as an object, whatever zod parses it into.
    expect(resolve(doc, '#/components/schemas/CreateRestoreBody/properties/renames/type')).toBe('object');
  });
});

describe('real answers against the documented schemas', () => {
  let work: string;
  let server: RunningServer;
  let tokens: { admin: string; operator: string; viewer: string };
  const called = new Set<RouteId>();

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'cairn-openapi-'));
    const dataDir = join(work, 'data');
    const store = new SqliteTokenStore(catalogFile(dataDir));
    tokens = { admin: store.create('admin').token, operator: store.create('operator').token, viewer: store.create('viewer').token };
    store.close();
    await Repository.init(new FileSystemStorage(join(work, 'repo')));
    await Repository.init(new FileSystemStorage(join(work, 'copy')));
    server = await startServer({ dataDir, port: 0, allowAdHocUrls: true, scheduleTickMs: 3600_000, env: {} });
  });
  afterAll(async () => {
    await server?.close();
    rmSync(work, { recursive: true, force: true });
  });

  /**
   * Calls a route of the table: the body must pass the route's own schema, the status must be
   * one it documents, and a JSON answer must parse with the documented schema and lose nothing
   * in parsing (zod drops fields it does not know: an undocumented field fails the comparison).
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- answers are checked by schema, then read
  async function call(id: RouteId, path: string, token: string | undefined, body?: unknown): Promise<{ status: number; json: any; text: string }> {
    const spec: RouteSpec = ROUTES[id];
    if (spec.body) spec.body.parse(body);
    // An upload route takes its body as bytes of its media type.
    const type = spec.upload ? spec.upload.mediaType : 'application/json';
    const res = await fetch(`${server.url}${path}`, {
      method: spec.method.toUpperCase(),
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': type } : {}) },
      ...(body !== undefined ? { body: spec.upload ? (body as Uint8Array) : JSON.stringify(body) } : {}),
    });
    const answer = await readAnswer(res);
    const documentedAnswer = (spec.answers as Record<number, z.ZodType | { mediaType: string }>)[answer.status];
    if (documentedAnswer === undefined) {
      expect(spec.errors as readonly number[], `${id} answered ${answer.status}: ${answer.text.slice(0, 300)}`).toContain(answer.status);
      expect(ErrorAnswer.parse(answer.json)).toEqual(answer.json);
    } else if ('mediaType' in documentedAnswer && !('safeParse' in documentedAnswer)) {
      expect(res.headers.get('content-type')).toContain(documentedAnswer.mediaType);
    } else {
      const parsed = (documentedAnswer as z.ZodType).safeParse(answer.json);
      expect(parsed.error, `${id}: ${JSON.stringify(answer.json).slice(0, 500)}`).toBeUndefined();
      expect(parsed.data, `${id}: fields the schema does not document`).toEqual(answer.json);
    }
    called.add(id);
    return { status: answer.status, json: answer.json, text: answer.text };
  }
  const done = async (jobId: string): Promise<void> => {
    const job = await waitJob(server.url, tokens.viewer, jobId);
    expect(job.state, JSON.stringify(job.error)).toBe('SUCCESS');
  };

  it('every route answers what the document says', async () => {
    const repo = join(work, 'repo');
    const q = '?repository=main'; // viewers name registered repositories only
    expect((await call('health', '/healthz', undefined)).status).toBe(200);
    expect((await call('openApi', '/openapi.json', undefined)).json).toEqual(JSON.parse(JSON.stringify(openApiDocument())));

    // Registered names, then a backup by them.
    expect((await call('registerSource', '/v1/sources', tokens.admin, { name: 'chinook', url: `sqlite://${CHINOOK_SQLITE}` })).status).toBe(201);
    expect((await call('registerRepository', '/v1/repositories', tokens.admin, { name: 'main', url: repo })).status).toBe(201);
    expect((await call('listSources', '/v1/sources', tokens.viewer)).json.sources).toHaveLength(1);
    expect((await call('updateSource', '/v1/sources/chinook', tokens.admin, { rpo: '26h' })).json.source.rpoSeconds).toBe(93_600);
    expect((await call('getHealth', '/v1/health', undefined)).json).toEqual({ status: 'ok' });
    expect((await call('getHealth', '/v1/health', tokens.viewer)).json.sources[0]).toMatchObject({ name: 'chinook', rpoSeconds: 93_600, rpoFrom: 'set' });
    expect((await call('checkSource', '/v1/sources/chinook/check', tokens.operator)).json).toMatchObject({ kind: 'sqlite', ok: true });
    expect((await call('listRepositories', '/v1/repositories', tokens.viewer)).json.repositories).toHaveLength(1);
    const backup = await call('createBackup', '/v1/backups', tokens.operator, { source: 'chinook', repository: 'main', id: 'api-1', include: ['Album', 'Artist'] });
    expect(backup.status).toBe(202);
    await done(backup.json.job.id);
    expect((await call('getJob', `/v1/jobs/${backup.json.job.id}`, tokens.viewer)).json.job.result.backupId).toBe('api-1');
    const events = await call('jobEvents', `/v1/jobs/${backup.json.job.id}/events`, tokens.viewer);
    const first = /^data: (.*)$/m.exec(events.text)?.[1];
    expect(Job.parse(JSON.parse(first ?? 'null')).state).toBe('SUCCESS');
    // A failed backup is listed beside the complete one (from the job center).
    const failed = await call('createBackup', '/v1/backups', tokens.operator, { source: `sqlite://${join(work, 'missing.sqlite')}`, repository: repo });
    expect((await waitJob(server.url, tokens.viewer, failed.json.job.id)).state).toBe('FAILED');
    const list = await call('listBackups', `/v1/backups${q}`, tokens.viewer);
    expect(list.json.backups.map((b: { status: string }) => b.status).sort()).toEqual(['FAILED', 'SUCCESS']);
    expect((await call('getBackup', `/v1/backups/api-1${q}`, tokens.viewer)).json.collections.length).toBeGreaterThan(0);
    expect((await call('listJobs', '/v1/jobs?kind=backup', tokens.viewer)).json.jobs).toHaveLength(2);

    // Jobs on the backup.
    const restore = await call('createRestore', '/v1/restores', tokens.operator, { backup: 'api-1', repository: repo, target: `sqlite://${join(work, 'restored.sqlite')}`, renames: { Album: 'Records' } });
    await done(restore.json.job.id);
    // Its dry run: 200, the plan (the table restored above is now in the way).
    const dry = await call('createRestore', '/v1/restores', tokens.operator, { backup: 'api-1', repository: repo, target: `sqlite://${join(work, 'restored.sqlite')}`, renames: { Album: 'Records' }, dryRun: true });
    expect([dry.status, dry.json.ok, [...new Set(dry.json.conflicts.map((k: { name: string }) => k.name))].sort()]).toEqual([200, false, ['Artist', 'Records']]);
    const copy = await call('createCopy', '/v1/copies', tokens.operator, { backup: 'api-1', from: repo, to: join(work, 'copy') });
    await done(copy.json.job.id);
    // Already there and identical: skipped, nothing sent.
    const sync = await call('createSync', '/v1/syncs', tokens.operator, { from: repo, to: join(work, 'copy') });
    await done(sync.json.job.id);
    expect((await waitJob(server.url, tokens.viewer, sync.json.job.id)).result).toMatchObject({ copied: [], skipped: ['api-1'], bytesCopied: 0 });
    // Archives: an export, its file, and the file imported back under another id.
    const exported = await call('createExport', '/v1/exports', tokens.operator, { repository: repo, backups: ['api-1'] });
    await done(exported.json.job.id);
    expect((await call('exportFile', `/v1/exports/${exported.json.job.id}/file`, tokens.operator)).status).toBe(200);
    const archive = new Uint8Array(await (await fetch(`${server.url}/v1/exports/${exported.json.job.id}/file`, { headers: { authorization: `Bearer ${tokens.operator}` } })).arrayBuffer());
    const imported = await call('createImport', `/v1/imports?repository=${encodeURIComponent(repo)}&as=api-1-again`, tokens.operator, archive);
    await done(imported.json.job.id);
    expect((await call('createImport', `/v1/imports?repository=${encodeURIComponent(repo)}`, tokens.operator, archive)).status).toBe(409);
    const expiry = await call('setBackupExpiry', `/v1/backups/api-1?repository=${encodeURIComponent(repo)}`, tokens.operator, { expires: '2031-01-31' });
    expect(expiry.json.expiresAt).toBe('2031-01-31T00:00:00.000Z');
    const verify = await call('createVerification', '/v1/verifications', tokens.operator, { repository: repo, readData: true });
    await done(verify.json.job.id);
    // An ended job cannot be cancelled: a documented error.
    expect((await call('cancelJob', `/v1/jobs/${verify.json.job.id}/cancel`, tokens.operator)).status).toBe(409);

    // Schedules.
    const created = await call('createSchedule', '/v1/schedules', tokens.operator, { name: 'nightly', source: 'chinook', repository: 'main', cron: '@daily', keepLast: 3 });
    expect(created.status).toBe(201);
    expect((await call('listSchedules', '/v1/schedules', tokens.viewer)).json.schedules[0].nextRun).toEqual(expect.any(String));
    const run = await call('runSchedule', '/v1/schedules/nightly/run', tokens.operator);
    await done(run.json.job.id);
    expect((await call('getSchedule', '/v1/schedules/nightly', tokens.viewer)).json.runs[0].status).toBe('started');
    const edited = await call('updateSchedule', '/v1/schedules/nightly', tokens.operator, { cron: '30 4 * * *', keepLast: null, keepDaily: 7 });
    expect(edited.json.schedule).toMatchObject({ cron: '30 4 * * *', retention: { keepDaily: 7 } });
    expect((await call('updateSchedule', '/v1/schedules/nightly', tokens.operator, { cron: 'x' })).status).toBe(400);
    expect((await call('cronPreview', '/v1/cron-preview?cron=30+4+*+*+*&timezone=Europe/Paris', tokens.viewer)).json.description).toBe('At 04:30');
    expect((await call('cronPreview', '/v1/cron-preview?cron=x', tokens.viewer)).status).toBe(400);
    const kept = await call('retentionPreview', '/v1/retention-previews', tokens.viewer, { schedule: 'nightly' });
    expect(kept.json).toMatchObject({ rules: { keepDaily: 7 }, remove: [] });
    expect(kept.json.keep).toHaveLength(1); // the run above
    expect((await call('getStats', `/v1/stats${q}`, tokens.viewer)).json.backups).toBeGreaterThan(0);
    expect((await call('backupDeletionPreview', `/v1/backups/api-1/deletion-preview${q}`, tokens.viewer)).json.totalChunks).toBeGreaterThan(0);
    expect((await call('getOverview', '/v1/overview', tokens.viewer)).json.repositories.map((r: { name: string }) => r.name)).toContain('main');
    expect((await call('disableSchedule', '/v1/schedules/nightly/disable', tokens.operator)).json.schedule.enabled).toBe(false);
    expect((await call('enableSchedule', '/v1/schedules/nightly/enable', tokens.operator)).json.schedule.enabled).toBe(true);
    expect((await call('removeSource', '/v1/sources/chinook', tokens.admin)).status).toBe(409); // the schedule uses it
    expect((await call('removeSchedule', '/v1/schedules/nightly', tokens.operator)).status).toBe(200);

    // Restore drills (issue 20): the newest backup of chinook in main (the schedule's run) into a scratch file.
    const drill = await call('createDrill', '/v1/drills', tokens.admin, { name: 'weekly', source: 'chinook', repository: 'main', target: `sqlite://${join(work, 'drill.sqlite')}`, cron: '0 5 * * 0', checks: ['SELECT count(*) > 0 FROM Artist'] });
    expect(drill.status).toBe(201);
    expect((await call('listDrills', '/v1/drills', tokens.viewer)).json.drills[0].nextRun).toEqual(expect.any(String));
    const drillJob = await call('runDrill', '/v1/drills/weekly/run', tokens.operator);
    await done(drillJob.json.job.id);
    expect((await call('getDrill', '/v1/drills/weekly', tokens.viewer)).json.runs[0]).toMatchObject({ state: 'SUCCESS', backupId: expect.any(String) });
    expect((await call('removeDrill', '/v1/drills/weekly', tokens.admin)).json.removed).toBe('weekly');

    // Deletions and the rest.
    expect((await call('deleteBackup', `/v1/backups/api-1?repository=${encodeURIComponent(repo)}`, tokens.operator)).json.deleted).toBe('api-1');
    const prune = await call('createPrune', '/v1/prunes', tokens.operator, { repository: repo, graceSeconds: 0 });
    await done(prune.json.job.id);
    const repaired = await call('createRepair', '/v1/repairs', tokens.operator, { repository: repo, dryRun: true });
    await done(repaired.json.job.id);
    expect((await call('expireBackups', '/v1/expirations', tokens.operator, { repository: repo, dryRun: true })).json).toMatchObject({ dryRun: true, expired: [] });
    expect((await call('removeSource', '/v1/sources/chinook', tokens.admin)).json.removed).toBe('chinook');
    expect((await call('removeRepository', '/v1/repositories/main', tokens.admin)).json.removed).toBe('main');
    expect((await call('getJob', '/v1/jobs/backup-0000', tokens.viewer)).status).toBe(404);
    expect((await call('createBackup', '/v1/backups', tokens.viewer, { source: 'chinook' })).status).toBe(403);
    const token = await call('createToken', '/v1/tokens', tokens.admin, { role: 'viewer', name: 'openapi' });
    expect(token.status).toBe(201);
    expect((await call('listTokens', '/v1/tokens', tokens.admin)).json.tokens).toHaveLength(4);
    expect((await call('listTokens', '/v1/tokens', tokens.operator)).status).toBe(403);
    expect((await call('revokeToken', `/v1/tokens/${token.json.token.id}`, tokens.admin)).json).toMatchObject({ revoked: token.json.token.id, self: false });
    expect((await call('revokeToken', `/v1/tokens/${token.json.token.id}`, tokens.admin)).status).toBe(404);
    expect((await call('listAudit', '/v1/audit?limit=5&actor=nobody', tokens.admin)).json.total).toBe(0);
    expect((await call('listAudit', '/v1/audit?limit=5', tokens.admin)).json.entries).toHaveLength(5);
    expect((await call('metrics', '/metrics', undefined)).text).toMatch(/cairn_http_requests_total \d+/);
    // With the SQLite catalog: this one server, alive.
    expect((await call('listServers', '/v1/servers', tokens.viewer)).json.servers).toMatchObject([{ alive: true, stoppedAt: null }]);

    // Console sessions, and the global event stream (which never ends: its head only).
    const session = await call('createSession', '/v1/sessions', undefined, { token: tokens.viewer });
    expect(session.json.session.role).toBe('viewer');
    expect((await call('createSession', '/v1/sessions', undefined, { token: 'nope' })).status).toBe(401);
    expect((await call('getSession', '/v1/session', tokens.viewer)).json.via).toBe('bearer');
    expect((await call('deleteSession', '/v1/session', undefined)).json).toEqual({ signedOut: true });
    const stream = new AbortController();
    const everyJob = await fetch(`${server.url}/v1/events`, { headers: { authorization: `Bearer ${tokens.viewer}` }, signal: stream.signal });
    expect([everyJob.status, everyJob.headers.get('content-type')]).toEqual([200, expect.stringContaining(ROUTES.events.answers[200].mediaType)]);
    stream.abort();
    called.add('events');

    // Alerts: a webhook on a port nothing listens on (9): the test answers its failed delivery.
    const channel = await call('createAlertChannel', '/v1/alert-channels', tokens.admin, { name: 'ops', type: 'webhook', url: 'http://127.0.0.1:9/hook', secret: 'openapi-secret-0123456789' });
    expect(channel.json.channel).toMatchObject({ name: 'ops', secretSet: true });
    expect(channel.text).not.toContain('openapi-secret');
    expect((await call('listAlertChannels', '/v1/alert-channels', tokens.admin)).json.channels).toHaveLength(1);
    expect((await call('listAlertChannels', '/v1/alert-channels', tokens.operator)).status).toBe(403);
    expect((await call('testAlertChannel', '/v1/alert-channels/ops/test', tokens.admin)).json.delivery.state).toBe('failed');
    const rule = await call('createAlertRule', '/v1/alert-rules', tokens.admin, { channel: 'ops', on: ['failure', 'recovery'] });
    expect((await call('listAlertRules', '/v1/alert-rules', tokens.admin)).json.rules).toHaveLength(1);
    expect((await call('removeAlertRule', `/v1/alert-rules/${rule.json.rule.id}`, tokens.admin)).json.removed).toBe(rule.json.rule.id);
    expect((await call('listAlertDeliveries', '/v1/alert-deliveries?state=failed', tokens.admin)).json.total).toBeGreaterThan(0);
    expect((await call('listAlertDeliveries', '/v1/alert-deliveries?state=nope', tokens.admin)).status).toBe(400);
    expect((await call('removeAlertChannel', '/v1/alert-channels/ops', tokens.admin)).json).toEqual({ removed: 'ops', rulesRemoved: 0 });

    // A route added to the table is called here too.
    expect([...called].sort()).toEqual(Object.keys(ROUTES).sort());
  }, 120_000);
});
