/**
 * The API does what the CLI does: expiry on create (`expires`) and afterwards (PATCH
 * /v1/backups/{id}, the parsing of `cairn backup set-expiry`), roles on a PostgreSQL backup
 * (`roles`, `rolesWithPasswords` for admins only) and restore (`roles`, `noOwner`,
 * `noPrivileges`), `cpuPercentage` on restore; the SDK's copies, syncs, verifications and prunes;
 * and the CLI's --server paths that use them (backup --expires / --roles, set-expiry).
 * SQLite where the engine does not matter; one small PostgreSQL database (prefix i15api_).
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repository } from '../../src/repo/repository.js';
import { CairnClient } from '../../src/sdk/index.js';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { apiFailure, serverWork } from '../helpers/api.js';
import { CHINOOK, cairnRun } from '../helpers/cli.js';
import { dropDatabase, ensurePostgres, pgUrl, psql, tableChecksums } from '../helpers/postgres.js';

let work: string;
let server: RunningServer;
let tokens: { admin: string; operator: string; viewer: string };
let repo: string;
let operator: CairnClient;
let admin: CairnClient;
const databases: string[] = [];

/** A PostgreSQL database named with this file's prefix (dropped afterwards). */
function pgDatabase(sql = ''): string {
  const name = `i15api_${randomBytes(4).toString('hex')}`;
  psql('postgres', `CREATE DATABASE ${name};`);
  databases.push(name);
  if (sql) psql(name, sql);
  return name;
}

/** The CLI in a child process without blocking this one: the server runs here and must keep answering. */
function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return cairnRun(args, { CAIRN_SERVER: server.url, CAIRN_TOKEN: tokens.operator, CAIRN_REPO: '', ...env });
}

/** The manifest as stored (definitions included), read from the repository itself. */
const stored = async (id: string, at = repo) => (await Repository.open(new FileSystemStorage(at))).readManifest(id);
const DAY = 86_400_000;

beforeAll(async () => {
  ensurePostgres();
  let dataDir: string;
  ({ work, dataDir, repo, tokens } = await serverWork('cairn-parity-'));
  server = await startServer({ dataDir, port: 0, allowAdHocUrls: true, scheduleTickMs: 3600_000, env: {} });
  operator = new CairnClient({ url: server.url, token: tokens.operator });
  admin = new CairnClient({ url: server.url, token: tokens.admin });
});

afterAll(async () => {
  await server?.close();
  for (const db of databases) dropDatabase(db);
  rmSync(work, { recursive: true, force: true });
});

/** GET /v1/backups/{id} of a finished backup: its manifest (a running one answers its status instead). */
async function manifestOf(id: string): Promise<{ expiresAt: string | null }> {
  const answer = await operator.backups.get(id, { repository: repo });
  if ('status' in answer) throw new Error(`backup ${id} is ${answer.status}, not complete`);
  return answer;
}

describe('expiry through the API and the CLI with --server', () => {
  it('sets expires on create (a duration, a date, never) and refuses a bad one naming it', async () => {
    const before = Date.now();
    const job = await operator.backups.create({ source: `sqlite://${CHINOOK}`, repository: repo, id: 'exp-30d', include: ['Artist'], expires: '30d' }, { waitForCompletion: true });
    expect(job.params.expires).toBe('30d');
    const at = Date.parse((await manifestOf('exp-30d')).expiresAt ?? '');
    expect(at).toBeGreaterThanOrEqual(before + 30 * DAY);
    expect(at).toBeLessThan(Date.now() + 30 * DAY + 1000);
    await operator.backups.create({ source: `sqlite://${CHINOOK}`, repository: repo, id: 'exp-date', include: ['Artist'], expires: '2031-01-31' }, { waitForCompletion: true });
    expect((await manifestOf('exp-date')).expiresAt).toBe('2031-01-31T00:00:00.000Z');
    const bad = await apiFailure(operator.backups.create({ source: `sqlite://${CHINOOK}`, repository: repo, expires: 'soon' }));
    expect(bad.status).toBe(400);
    expect(bad.message).toMatch(/Invalid expiry "soon".*30m, 12h, 3d/);
  });

  it('PATCH /v1/backups/{id} parses as set-expiry does: a duration, a date, never; 400, 404 and 403 otherwise', async () => {
    const now = Date.now();
    const d = await operator.backups.setExpiry('exp-30d', '6mo', { repository: repo });
    expect(d.id).toBe('exp-30d');
    expect(Date.parse(d.expiresAt ?? '')).toBeGreaterThan(now + 180 * DAY);
    expect((await operator.backups.setExpiry('exp-30d', '2027-01-31', { repository: repo })).expiresAt).toBe('2027-01-31T00:00:00.000Z');
    expect((await operator.backups.setExpiry('exp-30d', 'never', { repository: repo })).expiresAt).toBeNull();
    expect((await stored('exp-30d')).expiresAt).toBeNull();
    expect((await apiFailure(operator.backups.setExpiry('exp-30d', '2027-02-31x', { repository: repo }))).message).toMatch(/Invalid expiry date/);
    expect((await apiFailure(operator.backups.setExpiry('nope', '1d', { repository: repo }))).status).toBe(404);
    expect((await apiFailure(new CairnClient({ url: server.url, token: tokens.viewer }).backups.setExpiry('exp-30d', '1d', { repository: repo }))).status).toBe(403);
    const raw = await fetch(`${server.url}/v1/backups/exp-30d?repository=${encodeURIComponent(repo)}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${tokens.operator}`, 'content-type': 'application/json' },
      body: JSON.stringify({ expires: '1d', expiresAt: 'x' }),
    });
    expect(raw.status).toBe(400);
    expect(((await raw.json()) as { error: { message: string } }).error.message).toMatch(/unknown field "expiresAt"/);
  });

  it('cairn backup create --expires and cairn backup set-expiry work through a server', async () => {
    const created = await cli(['backup', 'create', '--source', `sqlite://${CHINOOK}`, '--repo', repo, '--id', 'cli-exp', '--include', 'Genre', '--expires', '7d', '--json']);
    expect(created.code, created.stderr).toBe(0);
    expect(Date.parse((JSON.parse(created.stdout) as { expiresAt: string }).expiresAt)).toBeGreaterThan(Date.now() + 6 * DAY);
    const set = await cli(['backup', 'set-expiry', 'cli-exp', 'never', '--repo', repo]);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toBe('Backup cli-exp never expires.\n');
    expect((await stored('cli-exp')).expiresAt).toBeNull();
  });
});

describe('restore options and SQLite', () => {
  it('cpuPercentage on restore (not with jobs); roles refused for SQLite with a clear error', async () => {
    const target = join(work, 'cpu.sqlite');
    const job = await operator.restores.create({ backup: 'exp-date', repository: repo, target: `sqlite://${target}`, cpuPercentage: 50 }, { waitForCompletion: true });
    expect(job.params.cpuPercentage).toBe(50);
    expect(job.result?.collections).toBe(1);
    const both = await apiFailure(operator.restores.create({ backup: 'exp-date', repository: repo, target: `sqlite://${target}`, cpuPercentage: 50, jobs: 2 }));
    expect(both.status).toBe(400);
    expect(both.message).toMatch(/give "jobs" or "cpuPercentage", not both/);
    expect((await apiFailure(operator.restores.create({ backup: 'exp-date', repository: repo, target: `sqlite://${target}`, cpuPercentage: 81 }))).status).toBe(400);
    const roles = await apiFailure(operator.backups.create({ source: `sqlite://${CHINOOK}`, repository: repo, roles: true }));
    expect(roles.status).toBe(400);
    expect(roles.message).toMatch(/roles/);
    const alone = await apiFailure(operator.backups.create({ source: `sqlite://${CHINOOK}`, repository: repo, rolesWithPasswords: true }));
    expect(alone.message).toMatch(/rolesWithPasswords goes with "roles": true/);
  });
});

describe('PostgreSQL roles, owners and privileges through the API', () => {
  let source: string;
  beforeAll(() => {
    source = pgDatabase('CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 50) g; GRANT SELECT ON t TO PUBLIC;');
  });

  it('records roles (admins only with password hashes) and restores with roles, noOwner and noPrivileges', async () => {
    const job = await operator.backups.create({ source: pgUrl(source), repository: repo, id: 'pg-roles', roles: true }, { waitForCompletion: true });
    expect(job.params.roles).toBe(true);
    const m = await stored('pg-roles');
    const rolesEntry = m.collections.find((c) => c.name === '(roles)');
    expect(rolesEntry, 'the roles collection').toBeDefined();
    expect(JSON.stringify(rolesEntry?.definition)).toMatch(/"withPasswords":false/);

    const denied = await apiFailure(operator.backups.create({ source: pgUrl(source), repository: repo, roles: true, rolesWithPasswords: true }));
    expect(denied.status).toBe(403);
    expect(denied.message).toMatch(/needs an admin token/);
    await admin.backups.create({ source: pgUrl(source), repository: repo, id: 'pg-pw', roles: true, rolesWithPasswords: true }, { waitForCompletion: true });
    expect(JSON.stringify((await stored('pg-pw')).collections.find((c) => c.name === '(roles)')?.definition)).toMatch(/"withPasswords":true/);

    const target = `i15api_${randomBytes(4).toString('hex')}`;
    databases.push(target);
    const restored = await operator.restores.create({ backup: 'pg-roles', repository: repo, target: pgUrl(target), roles: true, noOwner: true, noPrivileges: true }, { waitForCompletion: true });
    expect(restored.params).toMatchObject({ roles: true, noOwner: true, noPrivileges: true });
    expect(tableChecksums(target)).toEqual(tableChecksums(source));
    // noPrivileges: the grant to PUBLIC was left out.
    expect(psql(target, "SELECT count(*) FROM information_schema.role_table_grants WHERE table_name = 't' AND grantee = 'PUBLIC';").trim()).toBe('0');
    expect(psql(source, "SELECT count(*) FROM information_schema.role_table_grants WHERE table_name = 't' AND grantee = 'PUBLIC';").trim()).toBe('1');
  });

  it('cairn backup create --roles works through a server', async () => {
    const r = await cli(['backup', 'create', '--source', pgUrl(source), '--repo', repo, '--id', 'pg-cli-roles', '--roles']);
    expect(r.code, r.stderr).toBe(0);
    expect((await stored('pg-cli-roles')).collections.some((c) => c.name === '(roles)')).toBe(true);
  });
});

describe('the SDK covers every job route', () => {
  it('copies, syncs, verifications and prunes', async () => {
    const other = join(work, 'other');
    await Repository.init(new FileSystemStorage(other));
    const copy = await operator.copies.create({ backup: 'exp-date', from: repo, to: other }, { waitForCompletion: true });
    expect(copy.result).toMatchObject({ backupId: 'exp-date' });
    const sync = await operator.syncs.create({ from: repo, to: other, source: 'chinook' }, { waitForCompletion: true });
    expect(sync.kind).toBe('sync');
    expect((sync.result?.skipped as string[])).toEqual(['exp-date']);
    expect((sync.result?.copied as { backupId: string }[]).map((c) => c.backupId).sort()).toEqual(['cli-exp', 'exp-30d']);
    const same = await apiFailure(operator.syncs.create({ from: repo, to: repo }));
    expect(same.status).toBe(400);
    expect(same.message).toMatch(/name the same repository/);
    const verify = await operator.verifications.create({ repository: other, readData: true }, { waitForCompletion: true });
    expect(verify.result?.backups).toHaveLength(3);
    const prune = await operator.prunes.create({ repository: other, dryRun: true }, { waitForCompletion: true });
    expect(prune.result?.dryRun).toBe(true);
    const repaired = await operator.repairs.create({ repository: other, dryRun: true }, { waitForCompletion: true });
    expect(repaired.result).toMatchObject({ dryRun: true, backupsDamaged: [] });
  });

  it('expirations (as backup expire) and the list filtered by schedule (as backup list --schedule)', async () => {
    await operator.backups.setExpiry('exp-date', '2020-01-01', { repository: repo });
    expect(await operator.expirations.create({ repository: repo, dryRun: true })).toEqual({ repository: expect.any(String), dryRun: true, expired: ['exp-date'] });
    expect((await stored('exp-date')).id).toBe('exp-date');
    expect((await operator.expirations.create({ repository: repo })).expired).toEqual(['exp-date']);
    expect((await apiFailure(stored('exp-date'))).message).toMatch(/not found/);
    const nightly = await operator.schedules.create({ name: 'parity', source: `sqlite://${CHINOOK}`, repository: repo, cron: '@daily', include: ['Genre'] });
    const run = await operator.schedules.runNow(nightly.name, { waitForCompletion: true });
    const listed = await operator.backups.list({ repository: repo, schedule: 'parity' });
    expect(listed.map((b) => b.id)).toEqual([run.result?.backupId]);
    expect((await operator.backups.list({ repository: repo, schedule: 'none-such' }))).toEqual([]);
  });
});
