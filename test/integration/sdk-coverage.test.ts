/**
 * Issue 16: the SDK covers every route of the route table (each SDK method is called against a
 * real server through a fetch that records method and path; every route must be hit and every
 * method must be in the list below), /openapi.json lists every route the app serves; token
 * routes (admin only, the secret shown once, only its hash stored); PATCH /v1/schedules/{name}
 * and `cairn schedule edit` on a running server (nextRun moves at once; the scheduler fires by
 * the new cron and records no phantom missed runs); GET /v1/stats and `cairn stats`.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteScheduleStore } from '../../src/catalog/schedules.js';
import { SqliteJobCatalog } from '../../src/catalog/sqlite.js';
import { JobCenter } from '../../src/jobs/job-center.js';
import { scheduledBackupLauncher } from '../../src/jobs/scheduled-backup.js';
import { applyScheduleChanges, buildScheduleSpec, scheduleEdit } from '../../src/jobs/schedule-spec.js';
import { Scheduler } from '../../src/jobs/scheduler.js';
import { Repository } from '../../src/repo/repository.js';
import { CairnClient, type JobRecord } from '../../src/sdk/index.js';
import { createApp, type AppOptions } from '../../src/server/app.js';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { openApiDocument } from '../../src/server/openapi.js';
import { ROUTES, type RouteSpec } from '../../src/server/routes/table.js';
import { Stats, TokenCreated } from '../../src/server/schemas.js';
import { openSource } from '../../src/sources/index.js';
import Database from '../../src/sources/sqlite/driver.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { apiFailure, serverWork } from '../helpers/api.js';
import { CHINOOK, cairnRun } from '../helpers/cli.js';

let work: string;
let dataDir: string;
let repo: string;
let server: RunningServer;
let tokens: { admin: string; operator: string; viewer: string };
let admin: CairnClient;
let operator: CairnClient;
let small: string;

beforeAll(async () => {
  ({ work, dataDir, repo, tokens } = await serverWork('cairn-sdkcov-', { adminName: 'first' }));
  await Repository.init(new FileSystemStorage(join(work, 'copy')));
  small = join(work, 'small.db');
  const db = new Database(small);
  db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES ('a'), ('b'), ('c');");
  db.close();
  server = await startServer({ dataDir, port: 0, allowAdHocUrls: true, scheduleTickMs: 3600_000, env: {} });
  admin = new CairnClient({ url: server.url, token: tokens.admin });
  operator = new CairnClient({ url: server.url, token: tokens.operator });
});

afterAll(async () => {
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});

/** `METHOD /path` of every handler the app serves (middleware, registered for ALL methods, left out). */
function served(app: Hono<never>): string[] {
  return [...new Set(app.routes.filter((r) => r.method !== 'ALL').map((r) => `${r.method} ${r.path}`))].sort();
}

/** The route table entry a request (method, path without query) is for, or undefined. */
function routeOf(method: string, path: string): string | undefined {
  return (Object.entries(ROUTES) as [string, RouteSpec][]).find(
    ([, spec]) => spec.method.toUpperCase() === method && new RegExp(`^${spec.path.replace(/:[A-Za-z0-9_]+/g, '[^/]+')}$`).test(path),
  )?.[0];
}

/** Every SDK method as "group.method" (the client's own fields that are groups of functions). */
function sdkMethods(client: CairnClient): string[] {
  return Object.entries(client as unknown as Record<string, unknown>)
    .filter(([k, v]) => !['options', 'base', 'doFetch'].includes(k) && v !== null && typeof v === 'object')
    .flatMap(([group, v]) => Object.entries(v as Record<string, unknown>).filter(([, f]) => typeof f === 'function').map(([m]) => `${group}.${m}`))
    .sort();
}

describe('the SDK covers the route table', () => {
  it('/openapi.json lists every route the app serves, a route added outside the table included', () => {
    const app = (): Hono<never> => createApp({} as AppOptions) as unknown as Hono<never>;
    const doc = openApiDocument() as { paths: Record<string, Record<string, unknown>> };
    const documented = Object.entries(doc.paths)
      .flatMap(([path, item]) => Object.keys(item).map((m) => `${m.toUpperCase()} ${path.replace(/\{([^}]+)\}/g, ':$1')}`))
      .sort();
    expect(served(app())).toEqual(documented);
    const extra = app();
    extra.get('/v1/outside-the-table', (c) => c.text('x'));
    expect(served(extra)).not.toEqual(documented);
  });

  it('every route is called by some SDK method, and every SDK method is exercised here', async () => {
    const seen: string[] = [];
    const spy: typeof fetch = (input, init) => {
      const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
      seen.push(`${(init?.method ?? 'GET').toUpperCase()} ${url.pathname}`);
      return fetch(input, init);
    };
    const c = new CairnClient({ url: server.url, token: tokens.admin, fetch: spy });
    const ok = <T>(p: Promise<T>): Promise<T | undefined> => p.catch(() => undefined); // errors still made their request
    const source = `sqlite://${small}`;
    const calls: Record<string, () => Promise<unknown>> = {
      'server.health': () => c.server.health(),
      'server.openApi': () => c.server.openApi(),
      'server.metrics': () => c.server.metrics(),
      'sources.add': () => c.sources.add('cov-src', source),
      'sources.list': () => c.sources.list(),
      'sources.update': () => c.sources.update('cov-src', { rpo: '26h' }),
      'health.get': () => c.health.get(),
      'sources.check': () => c.sources.check('cov-src'),
      'repositories.add': () => c.repositories.add('cov-repo', repo),
      'repositories.list': () => c.repositories.list(),
      'backups.create': () => c.backups.create({ source: 'cov-src', repository: 'cov-repo', id: 'cov-1' }, { waitForCompletion: true, pollMs: 25 }),
      'backups.list': () => c.backups.list({ repository: 'cov-repo' }),
      'backups.deletionPreview': () => c.backups.deletionPreview('cov-1', { repository: 'cov-repo' }),
      'overview.get': () => c.overview.get(),
      'backups.listPage': () => c.backups.listPage({ repository: 'cov-repo', sort: 'createdAt', order: 'desc', limit: 10 }),
      'backups.get': () => c.backups.get('cov-1', { repository: 'cov-repo' }),
      'backups.setExpiry': () => c.backups.setExpiry('cov-1', 'never', { repository: 'cov-repo' }),
      'restores.dryRun': () => c.restores.dryRun({ backup: 'cov-1', repository: 'cov-repo', target: `sqlite://${join(work, 'cov-restored.db')}` }),
      'restores.create': () => c.restores.create({ backup: 'cov-1', repository: 'cov-repo', target: `sqlite://${join(work, 'cov-restored.db')}` }, { waitForCompletion: true, pollMs: 25 }),
      'copies.create': () => c.copies.create({ backup: 'cov-1', from: 'cov-repo', to: join(work, 'copy') }, { waitForCompletion: true, pollMs: 25 }),
      'syncs.create': () => c.syncs.create({ from: 'cov-repo', to: join(work, 'copy') }, { waitForCompletion: true, pollMs: 25 }),
      'verifications.create': () => c.verifications.create({ repository: 'cov-repo' }, { waitForCompletion: true, pollMs: 25 }),
      'repairs.create': () => c.repairs.create({ repository: 'cov-repo', dryRun: true }, { waitForCompletion: true, pollMs: 25 }),
      'expirations.create': () => c.expirations.create({ repository: 'cov-repo', dryRun: true }),
      'prunes.create': () => c.prunes.create({ repository: 'cov-repo', dryRun: true }, { waitForCompletion: true, pollMs: 25 }),
      'exports.create': () => c.exports.create({ repository: 'cov-repo', backups: ['cov-1'] }, { waitForCompletion: true, pollMs: 25 }),
      'exports.download': async () => {
        const stream = await c.exports.download((await c.jobs.list({ kind: 'export' }))[0]?.id ?? 'export-0');
        writeFileSync(join(work, 'cov.cairn'), Buffer.from(await new Response(stream).arrayBuffer()));
      },
      'imports.create': () => c.imports.create(readFileSync(join(work, 'cov.cairn')), { repository: 'cov-repo', as: 'cov-imported' }, { waitForCompletion: true, pollMs: 25 }),
      'stats.get': () => c.stats.get({ repository: 'cov-repo' }),
      'schedules.create': () => c.schedules.create({ name: 'cov', source: 'cov-src', repository: 'cov-repo', cron: '@daily' }),
      'schedules.list': () => c.schedules.list(),
      'schedules.get': () => c.schedules.get('cov'),
      'schedules.update': () => c.schedules.update('cov', { keepLast: 2 }),
      'schedules.disable': () => c.schedules.disable('cov'),
      'schedules.enable': () => c.schedules.enable('cov'),
      'schedules.runNow': () => c.schedules.runNow('cov', { waitForCompletion: true, pollMs: 25 }),
      'schedules.cronPreview': () => c.schedules.cronPreview('0 3 * * *', 'Europe/Paris'),
      'retention.preview': () => c.retention.preview({ schedule: 'cov', keepLast: 1 }),
      'schedules.remove': () => c.schedules.remove('cov'),
      'drills.add': () => c.drills.add({ name: 'cov', source: 'cov-src', repository: 'cov-repo', target: `sqlite://${join(work, 'cov-drill.db')}`, checks: ['SELECT count(*) = 3 FROM t'] }),
      'drills.list': () => c.drills.list(),
      'drills.get': () => c.drills.get('cov'),
      'drills.runNow': () => c.drills.runNow('cov', { waitForCompletion: true, pollMs: 25 }),
      'drills.remove': () => c.drills.remove('cov'),
      'jobs.list': () => c.jobs.list({ kind: 'backup' }),
      'jobs.get': async () => c.jobs.get((await c.jobs.list())[0]?.id ?? 'backup-0'),
      'jobs.wait': async () => c.jobs.wait((await c.jobs.list())[0]?.id ?? 'backup-0', { pollMs: 25 }),
      'jobs.watch': async () => {
        const states: string[] = [];
        for await (const job of c.jobs.watch((await c.jobs.list({ kind: 'backup' }))[0]?.id ?? 'backup-0')) states.push(job.state);
        expect(states.at(-1)).toBe('SUCCESS');
      },
      'jobs.cancel': async () => c.jobs.cancel((await c.jobs.list())[0]?.id ?? 'backup-0'), // ended: 409, the request was made
      'jobs.page': async () => expect((await c.jobs.page({ kind: 'backup', limit: 1 })).jobs).toHaveLength(1),
      'jobs.watchAll': async () => {
        let seen = false;
        const reading = (async () => {
          for await (const job of c.jobs.watchAll()) {
            seen = job.kind === 'verify';
            if (seen) break;
          }
        })();
        // Jobs until the stream (connected at some point meanwhile) has told of one.
        while (!seen) await c.verifications.create({ repository: 'cov-repo' }, { waitForCompletion: true, pollMs: 25 });
        await reading;
      },
      'session.create': async () => expect((await c.session.create({ token: tokens.admin })).role).toBe('admin'),
      'session.get': async () => expect((await c.session.get()).via).toBe('bearer'),
      'session.delete': () => c.session.delete(),
      'audit.list': () => c.audit.list({ limit: 10 }),
      'servers.list': async () => expect((await c.servers.list()).map((s) => s.alive)).toEqual([true]),
      'tokens.list': () => c.tokens.list(),
      'tokens.create': () => c.tokens.create({ role: 'viewer', name: 'cov' }),
      'tokens.revoke': async () => c.tokens.revoke((await c.tokens.list()).find((t) => t.name === 'cov')?.id ?? '000000000000'),
      // Alerts: a webhook on a port nothing listens on (9, discard): the test answers a failed delivery.
      'alerts.addChannel': () => c.alerts.addChannel({ name: 'cov', type: 'webhook', url: 'http://127.0.0.1:9/hook', secret: 'cov-secret-0123456789' }),
      'alerts.listChannels': () => c.alerts.listChannels(),
      'alerts.testChannel': async () => expect((await c.alerts.testChannel('cov')).state).toBe('failed'),
      'alerts.addRule': () => c.alerts.addRule({ channel: 'cov', on: ['failure', 'recovery'] }),
      'alerts.listRules': () => c.alerts.listRules(),
      'alerts.removeRule': async () => c.alerts.removeRule((await c.alerts.listRules())[0]?.id ?? '000000000000'),
      'alerts.deliveries': async () => expect((await c.alerts.deliveries({ channel: 'cov', state: 'failed' })).total).toBe(1),
      'alerts.removeChannel': () => c.alerts.removeChannel('cov'),
      'backups.delete': () => c.backups.delete('cov-1', { repository: 'cov-repo' }),
      'sources.remove': () => c.sources.remove('cov-src'),
      'repositories.remove': () => c.repositories.remove('cov-repo'),
    };
    expect(Object.keys(calls).sort(), 'an SDK method without a call here (or a call of a method that is gone)').toEqual(sdkMethods(c));
    const failed: string[] = [];
    for (const [name, call] of Object.entries(calls)) if ((await ok(call().then(() => true))) === undefined) failed.push(name);
    expect(failed).toEqual(['jobs.cancel']); // every other call succeeded: the shapes fit the server
    const unknown = seen.filter((r) => routeOf(r.split(' ')[0] as string, r.split(' ')[1] as string) === undefined);
    expect(unknown, 'requests the route table does not have').toEqual([]);
    const hit = new Set(seen.map((r) => routeOf(r.split(' ')[0] as string, r.split(' ')[1] as string)));
    expect(Object.keys(ROUTES).filter((id) => !hit.has(id)), 'routes no SDK method calls').toEqual([]);
  }, 120_000);
});

describe('token routes', () => {
  it('admin only: list, create (the secret once, only a hash stored), revoke; 403 / 404 / 400 named', async () => {
    const before = await admin.tokens.list();
    expect(before.map((t) => t.role).sort()).toEqual(['admin', 'operator', 'viewer']);
    expect(JSON.stringify(before)).not.toContain('cairn_'); // no secret in a listing
    const created = await admin.tokens.create({ role: 'operator', name: 'ci' });
    expect(TokenCreated.parse(created)).toEqual(created);
    expect(created.token).toMatchObject({ role: 'operator', name: 'ci' });
    expect(created.secret).toMatch(new RegExp(`^cairn_${created.token.id}_`));
    // The new token works, with its role.
    const ci = new CairnClient({ url: server.url, token: created.secret });
    expect(await ci.schedules.list()).toEqual([]);
    expect((await apiFailure(ci.tokens.list())).status).toBe(403);
    // Only a hash is kept: the secret is nowhere in the catalog's files. Searched by another
    // process: opening and closing the catalog here would drop the server's POSIX locks on it.
    const grep = spawnSync('grep', ['-rlF', '--', created.secret, dataDir], { encoding: 'utf8' });
    expect([grep.status, grep.stdout]).toEqual([1, '']); // 1: no file matched
    expect(spawnSync('grep', ['-rlF', '--', created.token.id, dataDir]).status).toBe(0); // the search does find what is there
    expect((await admin.tokens.list()).find((t) => t.id === created.token.id)).toEqual(created.token);

    expect((await apiFailure(operator.tokens.create({ role: 'admin' }))).status).toBe(403);
    const badRole = await apiFailure(admin.tokens.create({ role: 'root' as 'admin' }));
    expect([badRole.status, badRole.message]).toEqual([400, expect.stringMatching(/unknown role "root", use one of admin, operator, viewer/)]);
    expect((await apiFailure(admin.tokens.revoke('nothex'))).status).toBe(404);
    expect((await apiFailure(admin.tokens.revoke('0123456789ab'))).message).toMatch(/No token 0123456789ab.*GET \/v1\/tokens/);

    const revoked = await admin.tokens.revoke(created.token.id);
    expect(revoked).toMatchObject({ revoked: created.token.id, self: false });
    expect((await apiFailure(ci.schedules.list())).status).toBe(401);

    // An admin may revoke the token it uses: said in the answer; its next request is refused.
    const second = await admin.tokens.create({ role: 'admin', name: 'rotating' });
    const rotating = new CairnClient({ url: server.url, token: second.secret });
    expect(await rotating.tokens.revoke(second.token.id)).toMatchObject({ revoked: second.token.id, self: true, note: expect.stringMatching(/no longer works/) });
    expect((await apiFailure(rotating.tokens.list())).status).toBe(401);
  });
});

describe('editing a schedule', () => {
  it('PATCH changes only what is given, validates like add, and nextRun moves at once', async () => {
    const created = await operator.schedules.create({ name: 'edit-api', source: `sqlite://${small}`, repository: repo, cron: '0 3 * * *', keepLast: 3, exclude: ['x'] });
    const before = (await operator.schedules.get('edit-api')).schedule;
    expect(before.nextRun).toMatch(/T03:00:00.000Z$/);
    const after = await operator.schedules.update('edit-api', { cron: '30 17 * * *', timezone: 'Asia/Tokyo', keepDaily: 7, keepLast: null, include: ['t'] });
    expect(after.nextRun).toMatch(/T08:30:00.000Z$/); // 17:30 in Tokyo
    expect(after).toMatchObject({ id: created.id, cron: '30 17 * * *', timezone: 'Asia/Tokyo', retention: { keepDaily: 7 }, include: ['t'], enabled: true, createdAt: created.createdAt });
    expect(after.exclude).toBeUndefined();
    expect(after.retention).not.toHaveProperty('keepLast');
    expect((await operator.schedules.list()).find((s) => s.name === 'edit-api')?.nextRun).toBe(after.nextRun);

    const bad = await apiFailure(operator.schedules.update('edit-api', { cron: 'every day' }));
    expect([bad.status, bad.message]).toEqual([400, expect.stringMatching(/Invalid cron "every day"/)]);
    expect((await apiFailure(operator.schedules.update('edit-api', { copyTo: repo }))).message).toMatch(/--copy-to names the schedule's own repository/);
    expect((await apiFailure(operator.schedules.update('edit-api', {}))).status).toBe(400);
    expect((await apiFailure(operator.schedules.update('edit-api', { name: 'other' } as object))).message).toMatch(/unknown field "name"/);
    expect((await apiFailure(operator.schedules.update('nope', { cron: '@daily' }))).status).toBe(404);
    expect((await apiFailure(new CairnClient({ url: server.url, token: tokens.viewer }).schedules.update('edit-api', { cron: '@daily' }))).status).toBe(403);
    expect((await operator.schedules.get('edit-api')).schedule.cron).toBe('30 17 * * *'); // the refused edits changed nothing
  });

  it('cairn schedule edit on the data folder of a running server: the server answers the new nextRun at once', async () => {
    await operator.schedules.create({ name: 'edit-cli', source: `sqlite://${small}`, repository: repo, cron: '0 3 * * *' });
    const r = await cairnRun(['schedule', 'edit', 'edit-cli', '--cron', '45 5 * * *', '--keep-weekly', '4', '--expires', '30d', '--data-dir', dataDir, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const printed = JSON.parse(r.stdout) as { nextRun: string; retention: object };
    expect(printed.nextRun).toMatch(/T05:45:00.000Z$/);
    const shown = (await operator.schedules.get('edit-cli')).schedule;
    expect(shown).toMatchObject({ cron: '45 5 * * *', retention: { keepWeekly: 4 }, expires: '30d', nextRun: printed.nextRun });

    const unset = await cairnRun(['schedule', 'edit', 'edit-cli', '--unset', 'expires', '--unset', 'keep-weekly', '--data-dir', dataDir]);
    expect(unset.code, unset.stderr).toBe(0);
    expect(unset.stdout).toMatch(/Changed schedule edit-cli \(expires, keepWeekly\)/);
    const cleared = (await operator.schedules.get('edit-cli')).schedule;
    expect([cleared.expires, cleared.retention]).toEqual([undefined, {}]);

    const cases: [string[], number, RegExp][] = [
      [['--cron', 'soon'], 2, /Invalid cron "soon"/],
      [['--keep-last', '0'], 2, /Invalid count "0"/],
      [['--unset', 'cron'], 2, /Cannot --unset "cron"/],
      [['--expires', '1d', '--unset', 'expires'], 2, /contradict/],
      [[], 2, /Nothing to change in schedule "edit-cli"/],
    ];
    for (const [args, code, message] of cases) {
      const bad = await cairnRun(['schedule', 'edit', 'edit-cli', ...args, '--data-dir', dataDir]);
      expect([bad.code, bad.stderr], args.join(' ')).toEqual([code, expect.stringMatching(message)]);
    }
    const missing = await cairnRun(['schedule', 'edit', 'nope', '--cron', '@daily', '--data-dir', dataDir]);
    expect([missing.code, missing.stderr]).toEqual([3, expect.stringMatching(/No schedule named "nope"/)]);
    expect((await operator.schedules.get('edit-cli')).schedule.cron).toBe('45 5 * * *');
  });

  it('the scheduler fires by the new cron from the edit on, recording no runs of the old one as missed', async () => {
    const catalog = join(work, 'sched-catalog.db');
    const store = new SqliteScheduleStore(catalog);
    const jobCatalog = new SqliteJobCatalog(catalog);
    const center = new JobCenter(jobCatalog);
    const repository = await Repository.open(new FileSystemStorage(repo));
    const clock = { now: new Date('2024-01-01T10:00:00Z') };
    const now = (): Date => new Date(clock.now.getTime());
    const scheduler = new Scheduler(store, { now, launch: scheduledBackupLauncher({ center, now, openRepository: async () => repository, openSource }) });
    try {
      store.add(buildScheduleSpec({ name: 'moved', source: `sqlite://${small}`, repository: repo, cron: '0 3 * * *' }, now()));
      expect(await scheduler.tick()).toEqual([]);
      clock.now = new Date('2024-01-01T10:10:00Z');
      expect(applyScheduleChanges(store.get('moved'), { cron: '*/5 * * * *' }, now()).timingChanged).toBe(true);
      expect(store.update('moved', scheduleEdit({ cron: '*/5 * * * *' }, now())).lastDue).toBe(now().toISOString());
      expect(scheduler.next(store.get('moved'), now())?.toISOString()).toBe('2024-01-01T10:15:00.000Z');
      clock.now = new Date('2024-01-01T10:16:00Z');
      const started = await scheduler.tick();
      expect(started).toHaveLength(1);
      const job = (await center.wait(started[0] as string)) as JobRecord;
      expect(job.state, JSON.stringify(job.error)).toBe('SUCCESS');
      await scheduler.idle();
      // Only the new cron's due time: 10:05 (which the new cron would have had since the
      // schedule was made) is neither run nor recorded missed.
      expect(store.runs('moved').map((r) => [r.dueAt, r.status])).toEqual([['2024-01-01T10:15:00.000Z', 'started']]);
    } finally {
      store.close();
      await jobCatalog.close();
    }
  });
});

describe('stats', () => {
  it('GET /v1/stats and cairn stats: sizes, ratios and per-source shares, the same numbers', async () => {
    const statsRepo = join(work, 'stats-repo');
    await Repository.init(new FileSystemStorage(statsRepo));
    // Two sources with the same content share every chunk; a third has its own.
    const twinA = join(work, 'twin-a.sqlite');
    const twinB = join(work, 'twin-b.sqlite');
    copyFileSync(CHINOOK, twinA);
    copyFileSync(CHINOOK, twinB);
    const run = (source: string, id: string) => operator.backups.create({ source: `sqlite://${source}`, repository: statsRepo, id }, { waitForCompletion: true, pollMs: 25 });
    await run(twinA, 'a-1');
    await run(twinA, 'a-2');
    await run(twinB, 'b-1');
    await run(small, 's-1');

    const s = await operator.stats.get({ repository: statsRepo });
    expect(Stats.parse(s)).toEqual(s);
    const repository = await Repository.open(new FileSystemStorage(statsRepo));
    const manifests = await repository.listManifests();
    const packBytes = (dir: string): number =>
      readdirSync(dir, { withFileTypes: true }).reduce((n, e) => n + (e.isDirectory() ? packBytes(join(dir, e.name)) : statSync(join(dir, e.name)).size), 0);
    expect(s.backups).toBe(4);
    expect(s.storedBytes).toBe(packBytes(join(statsRepo, 'data')));
    expect(s.logicalBytes).toBe(manifests.reduce((n, m) => n + m.totals.logicalBytes, 0));
    // The same data four times over (three of chinook): dedup well above 1, and zstd compresses.
    expect(s.dedupRatio).toBeGreaterThan(2.5);
    expect(s.compressionRatio).toBeGreaterThan(1.2);
    expect(s.uniqueStoredBytes).toBeLessThanOrEqual(s.storedBytes);
    const by = Object.fromEntries(s.sources.map((x) => [x.location, x]));
    const a = by[`sqlite://${twinA}`];
    const b = by[`sqlite://${twinB}`];
    const own = by[`sqlite://${small}`];
    expect([a?.backups, b?.backups, own?.backups]).toEqual([2, 1, 1]);
    expect(a?.newest).toBe(manifests.find((m) => m.id === 'a-2')?.completedAt);
    expect(a?.logicalBytes).toBe(2 * (b?.logicalBytes ?? 0));
    // Chunks of the twins are each used by both: neither has any of its own.
    expect([a?.uniqueStoredBytes, b?.uniqueStoredBytes]).toEqual([0, 0]);
    expect(own?.uniqueStoredBytes).toBeGreaterThan(0);
    expect(s.sources[0]?.location).toBe(`sqlite://${small}`); // newest backup first

    const cli = await cairnRun(['stats', '--repo', statsRepo, '--json']);
    expect(cli.code, cli.stderr).toBe(0);
    // --json objects carry the command's durationMs (docs/cli.md); the rest is the API's answer.
    const { durationMs, ...printed } = JSON.parse(cli.stdout) as Record<string, unknown>;
    expect(typeof durationMs).toBe('number');
    expect(printed).toEqual(s);
    const text = await cairnRun(['stats', '--repo', statsRepo]);
    expect(text.stdout).toMatch(/: 4 backups in \d+ packs?\n/);
    expect(text.stdout).toContain(`dedup         ${(s.dedupRatio as number).toFixed(2)}x`);
    expect(text.stdout).toMatch(/ONLY ITS OWN/);

    // An empty repository: no ratios (null), not a division by zero.
    const empty = join(work, 'empty-repo');
    await Repository.init(new FileSystemStorage(empty));
    expect(await operator.stats.get({ repository: empty })).toMatchObject({ backups: 0, storedBytes: 0, dedupRatio: null, compressionRatio: null, sources: [] });
    expect((await apiFailure(operator.stats.get({ repository: join(work, 'nowhere') }))).status).toBe(404);
  }, 120_000);
});
