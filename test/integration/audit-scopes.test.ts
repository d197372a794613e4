/**
 * Issue 20 part D: the audit log and scoped tokens, against a real server on 127.0.0.1 backing
 * up SQLite files. Audit: records for a backup request and its job's end (who, from where, what,
 * result), a refused request (403), an unauthenticated one (401), a token creation (its secret
 * nowhere in the log), a sign-in (its token nowhere either); the table refuses UPDATE and DELETE;
 * a job started outside a request is the scheduler's; `cairn audit` locally and through the
 * server. Scoped tokens: in-scope backup works; an out-of-scope source, repository, restore
 * target, URL, job, backup and schedule are 403 naming the scope; listings (sources,
 * repositories, jobs, backups, overview, schedules, stats) show only what is in scope; admin
 * tokens cannot be scoped; `cairn token create --source … --repository …` and the listing.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteAuditLog, type AuditEntry } from '../../src/catalog/audit.js';
import { SqliteJobCatalog } from '../../src/catalog/sqlite.js';
import { JobCenter } from '../../src/jobs/job-center.js';
import { Repository } from '../../src/repo/repository.js';
import { CairnClient } from '../../src/sdk/index.js';
import { AuditRecorder } from '../../src/server/audit.js';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { AuditList, TokenCreated } from '../../src/server/schemas.js';
import Database from '../../src/sources/sqlite/driver.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { apiFailure, readAnswer, serverWork, type RoleTokens } from '../helpers/api.js';
import { cairnRun } from '../helpers/cli.js';

let work: string;
let dataDir: string;
let repo: string;
let otherRepo: string;
let server: RunningServer;
let tokens: RoleTokens;
let admin: CairnClient;
let operator: CairnClient;
let scoped: CairnClient;
let scopedSecret: string;
/** Backups the admin made of the out-of-scope source, and of the in-scope one into the other repository. */
const made: { crmInMain: string; shopInOther: string; crmJob: string } = { crmInMain: '', shopInOther: '', crmJob: '' };

function sqliteFile(name: string): string {
  const file = join(work, `${name}.db`);
  const db = new Database(file);
  db.exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES ('${name}-1'), ('${name}-2');`);
  db.close();
  return file;
}

/** Every record of the log (admin), newest first. */
async function records(query: { actor?: string } = {}): Promise<AuditEntry[]> {
  return (await admin.audit.list({ ...query, limit: 1000 })).entries as AuditEntry[];
}

beforeAll(async () => {
  ({ work, dataDir, repo, tokens } = await serverWork('cairn-audit-', { adminName: 'root' }));
  otherRepo = join(work, 'other');
  await Repository.init(new FileSystemStorage(otherRepo));
  server = await startServer({ dataDir, port: 0, allowAdHocUrls: true, scheduleTickMs: 3600_000, env: {} });
  admin = new CairnClient({ url: server.url, token: tokens.admin });
  operator = new CairnClient({ url: server.url, token: tokens.operator });
  await admin.sources.add('shop', `sqlite://${sqliteFile('shop')}`);
  await admin.sources.add('crm', `sqlite://${sqliteFile('crm')}`);
  await admin.repositories.add('main', repo);
  await admin.repositories.add('other', otherRepo);
  const crm = await admin.backups.create({ source: 'crm', repository: 'main', id: 'crm-1' }, { waitForCompletion: true, pollMs: 25 });
  made.crmInMain = 'crm-1';
  made.crmJob = crm.id;
  await admin.backups.create({ source: 'shop', repository: 'other', id: 'shop-other-1' }, { waitForCompletion: true, pollMs: 25 });
  made.shopInOther = 'shop-other-1';
  await admin.schedules.create({ name: 'crm-nightly', source: 'crm', repository: 'main', cron: '0 3 * * *' });
  const created = await admin.tokens.create({ role: 'operator', name: 'shop-ops', sources: ['shop'], repositories: ['main'] });
  scopedSecret = created.secret;
  scoped = new CairnClient({ url: server.url, token: scopedSecret });
}, 60_000);

afterAll(async () => {
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('audit log', () => {
  it('records a backup request (who, from where, what, job) and the job end with who started it', async () => {
    const job = await operator.backups.create({ source: 'shop', repository: 'main', id: 'op-1' }, { waitForCompletion: true, pollMs: 25 });
    expect(job.state).toBe('SUCCESS');
    const all = await records();
    const request = all.find((e) => e.type === 'request' && e.jobId === job.id);
    expect(request).toMatchObject({
      method: 'POST', path: '/v1/backups', route: 'createBackup', action: 'create backup', status: 202, result: 'ok',
      actorRole: 'operator', via: 'token', address: '127.0.0.1', target: 'source=shop repository=main',
    });
    // The job's end, once it is recorded (after the final state is written).
    const end = all.find((e) => e.type === 'job' && e.jobId === job.id);
    expect(end).toMatchObject({ method: 'JOB', route: 'jobEnded', action: 'backup job ended', result: 'SUCCESS', actorTokenId: request?.actorTokenId, actorRole: 'operator', address: '127.0.0.1' });
    expect(end?.target).toContain('id=op-1');
    expect(end!.id).toBeGreaterThan(request!.id);
    expect(AuditList.parse(await admin.audit.list({ limit: 5 })).entries).toHaveLength(5);
  });

  it('records refused requests: 403 (role), 401 (no token), 404', async () => {
    const viewer = new CairnClient({ url: server.url, token: tokens.viewer });
    expect((await apiFailure(viewer.backups.create({ source: 'shop', repository: 'main' }))).status).toBe(403);
    const anonymous = await readAnswer(await fetch(`${server.url}/v1/backups`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ source: 'crm', repository: 'main' }) }));
    expect(anonymous.status).toBe(401);
    expect((await apiFailure(operator.schedules.remove('no-such'))).status).toBe(404);
    // Over the body limit: refused unread (before authentication, so by no one), recorded without its body.
    const big = await readAnswer(await fetch(`${server.url}/v1/backups`, { method: 'POST', headers: { authorization: `Bearer ${tokens.operator}`, 'content-type': 'application/json' }, body: JSON.stringify({ source: 'x'.repeat(2 << 20) }) }));
    expect(big.status).toBe(413);
    const all = await records();
    expect(all.find((e) => e.status === 413)).toMatchObject({ route: 'createBackup', result: 'PAYLOAD_TOO_LARGE', target: null, via: 'none', address: '127.0.0.1' });
    expect(all.find((e) => e.actorRole === 'viewer' && e.route === 'createBackup')).toMatchObject({ status: 403, result: 'FORBIDDEN', target: 'source=shop repository=main', jobId: null });
    expect(all.find((e) => e.via === 'none' && e.route === 'createBackup' && e.status === 401)).toMatchObject({ status: 401, result: 'UNAUTHORIZED', actorTokenId: null, target: 'source=crm repository=main', address: '127.0.0.1' });
    expect(all.find((e) => e.route === 'removeSchedule')).toMatchObject({ status: 404, result: 'NOT_FOUND', path: '/v1/schedules/no-such' });
    // Reads are not recorded.
    expect(all.some((e) => e.method === 'GET')).toBe(false);
  });

  it('records a token creation and a sign-in without their secrets; an operator may not read the log', async () => {
    const auditor = await admin.tokens.create({ role: 'viewer', name: 'auditor' });
    const signIn = await readAnswer(await fetch(`${server.url}/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: auditor.secret }) }));
    expect(signIn.status).toBe(201);
    const bad = await readAnswer(await fetch(`${server.url}/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: `${auditor.secret}x` }) }));
    expect(bad.status).toBe(401);
    const all = await records();
    expect(all.find((e) => e.route === 'createToken' && e.target?.includes('auditor'))).toMatchObject({ status: 201, result: 'ok', actorName: 'root', actorRole: 'admin', target: 'name=auditor role=viewer' });
    const sessions = all.filter((e) => e.route === 'createSession');
    expect(sessions[1]).toMatchObject({ status: 201, result: 'ok', actorTokenId: auditor.token.id, actorName: 'auditor', actorRole: 'viewer', via: 'session', target: null });
    expect(sessions[0]).toMatchObject({ status: 401, result: 'UNAUTHORIZED', actorTokenId: null, via: 'none' });
    // No secret anywhere in the log: not the new token's, not the scoped one's, not any bearer token used.
    const text = JSON.stringify(all);
    for (const secret of [auditor.secret, scopedSecret, tokens.admin, tokens.operator, tokens.viewer]) expect(text).not.toContain(secret.slice(19));
    expect(text).not.toContain('cairn_');
    expect((await apiFailure(operator.audit.list())).status).toBe(403);
  });

  it('filters by actor, since and until, and pages newest first', async () => {
    const root = await admin.audit.list({ actor: 'root', limit: 1000 });
    expect(root.entries.length).toBeGreaterThan(3);
    expect(root.entries.every((e) => e.actorName === 'root')).toBe(true);
    const ids = root.entries.map((e) => e.id);
    expect(ids).toEqual([...ids].sort((a, b) => b - a));
    const page = await admin.audit.list({ actor: 'root', limit: 2, offset: 1 });
    expect(page.entries.map((e) => e.id)).toEqual(ids.slice(1, 3));
    expect(page.total).toBe(root.total);
    expect((await admin.audit.list({ since: '2999-01-01' })).total).toBe(0);
    expect((await admin.audit.list({ until: '2000-01-01' })).total).toBe(0);
    const bad = await apiFailure(admin.audit.list({ since: 'yesterday' }));
    expect(bad.status).toBe(400);
    expect(bad.message).toMatch(/since is a date/);
  });

  it('the table is append-only: SQLite refuses UPDATE and DELETE', () => {
    // A scratch catalog: opening the server's own here would drop its POSIX locks when closed.
    const file = join(work, 'scratch-audit.db');
    const log = new SqliteAuditLog(file);
    const e = log.append({ type: 'request', actorTokenId: null, actorName: 'x', actorRole: null, via: 'none', address: null, method: 'POST', path: '/v1/x', route: null, action: 'x', target: null, status: 401, result: 'UNAUTHORIZED', jobId: null });
    log.close();
    const db = new Database(file);
    expect(() => db.prepare("UPDATE audit_log SET result = 'ok' WHERE id = ?").run(e.id)).toThrow(/append-only/);
    expect(() => db.prepare('DELETE FROM audit_log').run()).toThrow(/append-only/);
    expect((db.prepare('SELECT result FROM audit_log WHERE id = ?').get(e.id) as { result: string }).result).toBe('UNAUTHORIZED');
    db.close();
  });

  it('a job started outside any request is recorded as the scheduler\'s', async () => {
    const file = join(work, 'scratch-jobs.db');
    const log = new SqliteAuditLog(file);
    const catalog = new SqliteJobCatalog(file);
    const center = new JobCenter(catalog, { log: () => undefined });
    const recorder = new AuditRecorder(log);
    const stop = recorder.watch(center);
    const job = await center.start({ kind: 'backup', params: { source: 'sqlite:///x.db', schedule: 'nightly' }, run: () => Promise.reject(new Error('boom')) });
    await center.wait(job.id);
    stop();
    const [end] = log.list().entries;
    expect(end).toMatchObject({ type: 'job', jobId: job.id, actorName: 'scheduler', via: 'server', result: 'FAILED INTERNAL', target: 'source=sqlite:///x.db schedule=nightly' });
    catalog.close();
    log.close();
  });

  it('cairn audit reads the log from the data folder and through the server', async () => {
    const local = await cairnRun(['audit', '--data-dir', dataDir, '--actor', 'root', '--limit', '3', '--json']);
    expect(local.code, local.stderr).toBe(0);
    const doc = JSON.parse(local.stdout) as { entries: AuditEntry[]; total: number };
    expect(doc.entries).toHaveLength(3);
    expect(doc.entries.every((e) => e.actorName === 'root')).toBe(true);
    const remote = await cairnRun(['audit', '--limit', '5'], { CAIRN_SERVER: server.url, CAIRN_TOKEN: tokens.admin, CAIRN_DATA_DIR: '' });
    expect(remote.code, remote.stderr).toBe(0);
    expect(remote.stdout).toMatch(/^AT +WHO +FROM +ACTION/);
    expect(remote.stdout).toContain('127.0.0.1');
    const refused = await cairnRun(['audit'], { CAIRN_SERVER: server.url, CAIRN_TOKEN: tokens.operator });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/may not administer the server/);
    const badSince = await cairnRun(['audit', '--data-dir', dataDir, '--since', 'soon']);
    expect(badSince.code).toBe(2);
    expect(badSince.stderr).toMatch(/Invalid --since "soon"/);
  });
});

describe('scoped tokens', () => {
  it('admin tokens cannot be scoped; empty or URL scopes are refused; the listing shows scopes', async () => {
    const admins = await apiFailure(admin.tokens.create({ role: 'admin', sources: ['shop'] }));
    expect(admins.status).toBe(400);
    expect(admins.message).toMatch(/admin token cannot be scoped/);
    expect((await apiFailure(admin.tokens.create({ role: 'viewer', sources: [] }))).message).toMatch(/name at least one/);
    expect((await apiFailure(admin.tokens.create({ role: 'viewer', repositories: ['/tmp/repo'] }))).message).toMatch(/never URLs/);
    const listed = (await admin.tokens.list()).find((t) => t.name === 'shop-ops');
    expect(listed).toMatchObject({ role: 'operator', sources: ['shop'], repositories: ['main'] });
    expect((await admin.tokens.list()).find((t) => t.name === 'root')).toMatchObject({ sources: null, repositories: null });
    expect(TokenCreated.shape.token.parse(listed)).toEqual(listed);
  });

  it('backs up an in-scope source into an in-scope repository; anything else is 403 naming the scope', async () => {
    const job = await scoped.backups.create({ source: 'shop', repository: 'main', id: 'scoped-1' }, { waitForCompletion: true, pollMs: 25 });
    expect(job.state).toBe('SUCCESS');
    const crm = await apiFailure(scoped.backups.create({ source: 'crm', repository: 'main' }));
    expect(crm.status).toBe(403);
    expect(crm.code).toBe('FORBIDDEN');
    expect(crm.message).toMatch(/source "crm" is outside this token's scope: the token "shop-ops" is scoped to sources shop; repositories main/);
    const other = await apiFailure(scoped.backups.create({ source: 'shop', repository: 'other' }));
    expect(other.status).toBe(403);
    expect(other.message).toMatch(/repository "other" is outside/);
    // The default repository only when listed; a URL never (the server allows URLs to others).
    expect((await apiFailure(scoped.backups.create({ source: 'shop' }))).message).toMatch(/repository "default" is outside/);
    const url = await apiFailure(scoped.backups.create({ source: `sqlite://${join(work, 'shop.db')}`, repository: 'main' }));
    expect(url.status).toBe(403);
    expect(url.message).toMatch(/names registered sources only/);
    expect((await apiFailure(scoped.backups.create({ source: 'shop', repository: repo }))).message).toMatch(/names registered repositories only/);
    // A restore target is a source: crm is out of scope.
    expect((await apiFailure(scoped.restores.create({ backup: 'scoped-1', repository: 'main', target: 'crm' }))).status).toBe(403);
    // A backup of an out-of-scope source, in an in-scope repository: not to be read, restored, deleted.
    expect((await apiFailure(scoped.backups.get(made.crmInMain, { repository: 'main' }))).status).toBe(403);
    expect((await apiFailure(scoped.restores.create({ backup: made.crmInMain, repository: 'main', target: 'shop' }))).status).toBe(403);
    expect((await apiFailure(scoped.backups.delete(made.crmInMain, { repository: 'main' }))).status).toBe(403);
    expect((await apiFailure(scoped.sources.check('crm'))).status).toBe(403);
    expect((await scoped.sources.check('shop')).ok).toBe(true);
    // Jobs and schedules of what is out of scope.
    expect((await apiFailure(scoped.jobs.get(made.crmJob))).status).toBe(403);
    expect((await apiFailure(scoped.schedules.get('crm-nightly'))).status).toBe(403);
    expect((await apiFailure(scoped.schedules.runNow('crm-nightly'))).status).toBe(403);
    expect((await apiFailure(scoped.schedules.create({ name: 'x', source: 'crm', repository: 'main', cron: '@daily' }))).status).toBe(403);
    // Still there: nothing was deleted or changed by the refused requests.
    expect((await admin.backups.get(made.crmInMain, { repository: 'main' })).id).toBe(made.crmInMain);
  });

  it('listings show only what is in scope', async () => {
    expect((await scoped.sources.list()).map((s) => s.name)).toEqual(['shop']);
    expect((await scoped.repositories.list()).map((r) => r.name)).toEqual(['main']);
    const jobs = await scoped.jobs.page({ limit: 1000 });
    expect(jobs.jobs.length).toBeGreaterThan(0);
    expect(jobs.total).toBe(jobs.jobs.length);
    const mainLocation = (await admin.repositories.list()).find((r) => r.name === 'main')?.location;
    expect(jobs.jobs.every((j) => String(j.params.source).includes('shop.db') && j.params.repository === mainLocation)).toBe(true);
    expect(jobs.jobs.some((j) => j.id === made.crmJob)).toBe(false);
    expect((await admin.jobs.page({ limit: 1000 })).total).toBeGreaterThan(jobs.total);
    const backups = await scoped.backups.list({ repository: 'main' });
    expect(backups.length).toBeGreaterThan(0);
    expect(backups.every((b) => b.source.location.includes('shop.db'))).toBe(true);
    expect((await admin.backups.list({ repository: 'main' })).some((b) => b.id === made.crmInMain)).toBe(true);
    const overview = await scoped.overview.get();
    expect(overview.repositories.map((r) => r.name)).toEqual(['main']);
    expect(overview.sources.length).toBeGreaterThan(0);
    expect(overview.sources.every((s) => s.location.includes('shop.db'))).toBe(true);
    expect(await scoped.schedules.list()).toEqual([]);
    expect((await admin.schedules.list()).map((s) => s.name)).toEqual(['crm-nightly']);
    const stats = await scoped.stats.get({ repository: 'main' });
    expect(stats.sources.every((s) => s.location.includes('shop.db'))).toBe(true);
    // The event stream of every job tells a scoped token of its jobs only.
    const seen: string[] = [];
    let connected = false;
    const reading = (async () => {
      for await (const j of scoped.jobs.watchAll()) {
        seen.push(String(j.params.source));
        connected = true;
        if (j.params.id === 'watch-shop' && j.state === 'SUCCESS') break;
      }
    })();
    // Backups of its source until the stream (connected at some point meanwhile) has told of one;
    // then one of each source.
    for (let n = 0; !connected; n++) await admin.backups.create({ source: 'shop', repository: 'main', id: `ready-${n}` }, { waitForCompletion: true, pollMs: 25 });
    await admin.backups.create({ source: 'crm', repository: 'main', id: 'watch-crm' }, { waitForCompletion: true, pollMs: 25 });
    await admin.backups.create({ source: 'shop', repository: 'main', id: 'watch-shop' }, { waitForCompletion: true, pollMs: 25 });
    await reading;
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((s) => s.includes('shop.db'))).toBe(true);
  });

  it('the audit log records what the scoped token did, allowed and refused', async () => {
    const mine = await records({ actor: 'shop-ops' });
    expect(mine.find((e) => e.route === 'createBackup' && e.status === 202)).toMatchObject({ result: 'ok', target: 'source=shop repository=main', actorRole: 'operator' });
    expect(mine.find((e) => e.route === 'createBackup' && e.target === 'source=crm repository=main')).toMatchObject({ status: 403, result: 'FORBIDDEN' });
    expect(mine.some((e) => e.type === 'job' && e.result === 'SUCCESS')).toBe(true);
  });

  it('cairn token create --source --repository and cairn token list show the scope', async () => {
    const created = await cairnRun(['token', 'create', '--role', 'viewer', '--name', 'cli-scoped', '--source', 'shop', '--source', 'crm', '--repository', 'main', '--data-dir', dataDir]);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stderr).toContain('scoped to sources crm,shop; repositories main');
    const viewer = new CairnClient({ url: server.url, token: created.stdout.trim() });
    expect((await viewer.sources.list()).map((s) => s.name)).toEqual(['crm', 'shop']);
    const list = await cairnRun(['token', 'list', '--data-dir', dataDir]);
    expect(list.stdout).toMatch(/cli-scoped +sources crm,shop; repositories main/);
    const refused = await cairnRun(['token', 'create', '--role', 'admin', '--source', 'shop', '--data-dir', dataDir]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/admin token cannot be scoped/);
  });
});
