/**
 * Issue 19, part C: what the console asks before it acts, over a real server and real databases.
 * A restore's dry run (POST /v1/restores {dryRun: true}, `cairn restore --dry-run`): a table the
 * target holds is a conflict under fail, none once renamed into a free name, and nothing is
 * written either way.
 */
import { copyFileSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { Repository } from '../../src/repo/repository.js';
import { CairnClient } from '../../src/sdk/index.js';
import { startServer, type RunningServer } from '../../src/server/index.js';
import type { ScheduleSpec } from '../../src/catalog/schedules.js';
import { applyScheduleRetention } from '../../src/jobs/scheduled-backup.js';
import { RestorePlan, RetentionPreview, SourceCheck } from '../../src/server/schemas.js';
import { openSource } from '../../src/sources/index.js';
import Database from '../../src/sources/sqlite/driver.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { apiFailure, serverWork } from '../helpers/api.js';
import { createDatabase, dropDatabase, ensurePostgres, pgUrl, psql } from '../helpers/postgres.js';

let work: string;
let server: RunningServer;
let operator: CairnClient;
let viewer: CairnClient;
let tokens: { admin: string; operator: string; viewer: string };
let repo: string;
let small: string;
let pgDb: string;

/** Runs the CLI in this process (the server keeps answering meanwhile): exit code and output. */
async function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    const code = await main(['node', 'cairn', ...args], { out: (t) => out.push(t), err: (t) => err.push(t) });
    return { code, out: out.join('\n'), err: err.join('\n') };
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

beforeAll(async () => {
  ensurePostgres();
  let dataDir: string;
  ({ work, dataDir, repo, tokens } = await serverWork('cairn-plan-'));
  small = join(work, 'small.db');
  const db = new Database(small);
  db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES ('a'), ('b'), ('c'); CREATE TABLE u (id INTEGER PRIMARY KEY);");
  db.close();
  pgDb = createDatabase('cairn_h19_plan_');
  psql(pgDb, 'CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 50) g;');
  server = await startServer({ dataDir, port: 0, allowAdHocUrls: true, scheduleTickMs: 3600_000, env: {} });
  operator = new CairnClient({ url: server.url, token: tokens.operator });
  viewer = new CairnClient({ url: server.url, token: tokens.viewer });
  await operator.backups.create({ source: `sqlite://${small}`, repository: repo, id: 'lite-1' }, { waitForCompletion: true, pollMs: 25 });
  await operator.backups.create({ source: pgUrl(pgDb), repository: repo, id: 'pg-1' }, { waitForCompletion: true, pollMs: 25 });
}, 120_000);

afterAll(async () => {
  await server?.close();
  if (pgDb) dropDatabase(pgDb);
  rmSync(work, { recursive: true, force: true });
});

describe('restore dry run', () => {
  it('SQLite: an existing table is a conflict under fail; renamed into a free name, none; nothing written', async () => {
    const target = join(work, 'target.db');
    copyFileSync(small, target);
    const before = statSync(target).mtimeMs;
    const plan = await operator.restores.dryRun({ backup: 'lite-1', repository: repo, target: `sqlite://${target}`, include: ['t'] });
    expect(RestorePlan.parse(plan)).toEqual(plan);
    expect(plan).toMatchObject({ dryRun: true, ok: false, backupId: 'lite-1', target: `sqlite://${target}`, onConflict: 'fail' });
    expect(plan.collections).toEqual([{ name: 't', targetName: 't', kind: 'table', rows: 3, logicalBytes: expect.any(Number) }]);
    expect(plan.conflicts).toEqual([{ name: 't', message: expect.stringMatching(/Table "t" already exists/) }]);

    const renamed = await operator.restores.dryRun({ backup: 'lite-1', repository: repo, target: `sqlite://${target}`, include: ['t'], renames: { t: 't_copy' } });
    expect(renamed).toMatchObject({ ok: true, conflicts: [], collections: [{ name: 't', targetName: 't_copy' }] });
    expect(statSync(target).mtimeMs).toBe(before);
    // No job was started by either.
    expect((await operator.jobs.list({ kind: 'restore' })).length).toBe(0);
    // Two conflicts: one entry each, named.
    const both = await operator.restores.dryRun({ backup: 'lite-1', repository: repo, target: `sqlite://${target}` });
    expect(both.conflicts.map((k) => k.name).sort()).toEqual(['t', 'u']);
  });

  it('PostgreSQL: a table in the way under fail, none renamed; overwrite with the same columns is fine', async () => {
    const plan = await operator.restores.dryRun({ backup: 'pg-1', repository: repo, target: pgUrl(pgDb) });
    expect(plan.ok).toBe(false);
    expect(plan.collections.map((c) => c.targetName)).toEqual(['public.items']);
    expect(plan.conflicts).toEqual([{ name: 'public.items', message: expect.stringMatching(/items.*already exists/) }]);
    expect((await operator.restores.dryRun({ backup: 'pg-1', repository: repo, target: pgUrl(pgDb), renames: { items: 'items_copy' } })).ok).toBe(true);
    expect((await operator.restores.dryRun({ backup: 'pg-1', repository: repo, target: pgUrl(pgDb), onConflict: 'overwrite' })).ok).toBe(true);
    // A database that does not exist yet is created by a restore: nothing is in the way.
    const fresh = await operator.restores.dryRun({ backup: 'pg-1', repository: repo, target: pgUrl(`${pgDb}_new`) });
    expect(fresh).toMatchObject({ ok: true, conflicts: [] });
    expect(psql('postgres', `SELECT count(*) FROM pg_database WHERE datname = '${pgDb}_new'`).trim()).toBe('0');
  });

  it('other problems answer as a restore would: 404, 400, 403 for a viewer', async () => {
    expect((await apiFailure(operator.restores.dryRun({ backup: 'nope', repository: repo, target: `sqlite://${join(work, 'x.db')}` }))).status).toBe(404);
    const bad = await apiFailure(operator.restores.dryRun({ backup: 'lite-1', repository: repo, target: `sqlite://${join(work, 'x.db')}`, include: ['missing'] }));
    expect([bad.status, bad.code]).toEqual([400, 'USAGE']);
    expect((await apiFailure(viewer.restores.dryRun({ backup: 'lite-1', repository: repo, target: `sqlite://${join(work, 'x.db')}` }))).status).toBe(403);
  });

  it('cairn restore --dry-run prints the same, here and through the server, exit 4 on conflicts', async () => {
    const target = join(work, 'cli-target.db');
    copyFileSync(small, target);
    const local = await cli(['restore', 'lite-1', '--repo', repo, '--to', `sqlite://${target}`, '--include', 't', '--dry-run', '--json']);
    expect(local.code).toBe(4);
    const doc = JSON.parse(local.out) as RestorePlan & { durationMs: number };
    const { durationMs: _d, ...planned } = doc;
    expect(planned).toEqual(await operator.restores.dryRun({ backup: 'lite-1', repository: repo, target: `sqlite://${target}`, include: ['t'] }));
    const remote = await cli(['restore', 'lite-1', '--repo', repo, '--to', `sqlite://${target}`, '--include', 't', '--rename', 't=fresh', '--dry-run', '--server', server.url], { CAIRN_TOKEN: tokens.operator });
    expect([remote.code, remote.err]).toEqual([0, '']);
    expect(remote.out).toMatch(/^Dry run: restore of backup lite-1 into .*cli-target\.db \(on conflict: fail\)\./);
    expect(remote.out).toMatch(/\bt\s+fresh\s+table\s+3\b/);
    expect(remote.out).toMatch(/nothing is in the way/);
    const text = await cli(['restore', 'lite-1', '--repo', repo, '--to', `sqlite://${target}`, '--dry-run']);
    expect(text.code).toBe(4);
    expect(text.out).toMatch(/Conflicts \(2\):\n- t: Table "t" already exists/);
    expect(text.err).toMatch(/dry run found 2 conflicts/);
  });
});

/** A time as the wall clock of `timeZone` shows it: "2027-03-28 12:00". */
function wallClock(iso: string, timeZone: string): string {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-GB', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' })
      .formatToParts(new Date(iso))
      .map((p) => [p.type, p.value]),
  );
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}`;
}

describe('cron preview', () => {
  it('Europe/Paris across the spring DST change: noon stays noon, its UTC hour moves', async () => {
    const preview = await viewer.schedules.cronPreview('0 12 * 3,4 *', 'Europe/Paris', 50);
    expect(preview).toMatchObject({ cron: '0 12 * 3,4 *', timezone: 'Europe/Paris', description: expect.stringMatching(/12:00.*March.*April/) });
    expect(preview.nextRuns).toHaveLength(50);
    expect(preview.nextRuns.map((r) => wallClock(r, 'Europe/Paris').slice(11))).toEqual(Array(50).fill('12:00'));
    // 50 days of March and April cross the last Sunday of March, whenever the test runs: winter
    // time (UTC+1, 11:00Z) before it, summer time (UTC+2, 10:00Z) after it.
    const hours = preview.nextRuns.map((r) => new Date(r).getUTCHours());
    expect(new Set(hours)).toEqual(new Set([11, 10]));
    const switched = preview.nextRuns.filter((r, i) => i > 0 && new Date(r).getUTCHours() === 10 && hours[i - 1] === 11);
    expect(switched).toHaveLength(1);
    const day = new Date(switched[0] as string);
    expect([day.getUTCMonth(), day.getUTCDay()]).toEqual([2, 0]); // the last Sunday of March (the switch is at 02:00)
    expect(day.getUTCDate()).toBeGreaterThan(24);
    expect([...preview.nextRuns].sort()).toEqual(preview.nextRuns); // oldest first
    // The default: 5 runs; shorthands in words too.
    const daily = await viewer.schedules.cronPreview('@daily');
    expect(daily).toMatchObject({ timezone: 'UTC', description: 'At 00:00' });
    expect(daily.nextRuns.map((r) => r.slice(11))).toEqual(Array(5).fill('00:00:00.000Z'));
  });

  it('a bad cron, zone or count is a 400 naming it', async () => {
    const bad = await apiFailure(viewer.schedules.cronPreview('61 * * * *'));
    expect([bad.status, bad.message]).toEqual([400, expect.stringMatching(/Invalid cron "61 \* \* \* \*"/)]);
    expect((await apiFailure(viewer.schedules.cronPreview('0 3 * *'))).message).toMatch(/five fields/);
    expect((await apiFailure(viewer.schedules.cronPreview('0 3 * * *', 'Mars/Olympus'))).message).toMatch(/Unknown time zone "Mars\/Olympus"/);
    expect((await apiFailure(viewer.schedules.cronPreview('0 3 * * *', 'UTC', 51))).message).toMatch(/count is a number from 1 to 50, not "51"/);
    const missing = await fetch(`${server.url}/v1/cron-preview`, { headers: { authorization: `Bearer ${tokens.viewer}` } });
    expect(missing.status).toBe(400);
    expect(await missing.text()).toMatch(/cron is required/);
  });

  it('schedule answers carry description and the next 5 runs (none while disabled)', async () => {
    const created = await operator.schedules.create({ name: 'plan-nightly', source: `sqlite://${small}`, repository: repo, cron: '30 2 * * *', timezone: 'Europe/Paris' });
    const preview = await viewer.schedules.cronPreview('30 2 * * *', 'Europe/Paris');
    expect(created).toMatchObject({ description: 'At 02:30', nextRuns: preview.nextRuns, nextRun: preview.nextRuns[0] });
    const listed = (await viewer.schedules.list()).find((s) => s.name === 'plan-nightly');
    expect(listed).toMatchObject({ description: 'At 02:30', nextRuns: preview.nextRuns });
    expect((await viewer.schedules.get('plan-nightly')).schedule.nextRuns).toEqual(preview.nextRuns);
    await operator.schedules.disable('plan-nightly');
    expect((await viewer.schedules.get('plan-nightly')).schedule).toMatchObject({ description: 'At 02:30', nextRun: null, nextRuns: [] });
    await operator.schedules.remove('plan-nightly');
  });
});

describe('retention preview', () => {
  it("matches what a scheduled run's retention keeps; manual backups are never candidates", async () => {
    await operator.schedules.create({ name: 'plan-keep', source: `sqlite://${small}`, repository: repo, cron: '@daily', pattern: '{schedule}-{yyyyMMdd-HHmmss}-{random}' });
    const admin = new CairnClient({ url: server.url, token: tokens.admin });
    await admin.sources.add('plan-src', `sqlite://${small}`);
    await admin.repositories.add('plan-repo', repo);
    const made: string[] = [];
    for (let i = 0; i < 4; i++) made.push(String((await operator.schedules.runNow('plan-keep', { waitForCompletion: true, pollMs: 25 })).result?.backupId));
    const [oldest, , , newest] = made;
    // The oldest has expired: a run deletes it whatever the rules say.
    await operator.backups.setExpiry(oldest as string, '2020-01-01', { repository: repo });

    const byRules = await viewer.retention.preview({ schedule: 'plan-keep', repository: 'plan-repo', keepLast: 2 });
    expect(RetentionPreview.parse(byRules)).toEqual(byRules);
    expect(byRules.keep.map((k) => [k.id, k.reasons])).toEqual([[newest, ['last']], [made[2], ['last']]]);
    expect(byRules.remove).toEqual([
      { id: made[1], createdAt: expect.any(String) },
      { id: oldest, createdAt: expect.any(String), expired: true },
    ]);
    expect(byRules).toMatchObject({ timezone: 'UTC', rules: { keepLast: 2 } });
    expect(JSON.stringify(byRules)).not.toContain('lite-1'); // the manual backup of the same source
    // By source: every schedule's backups of it (one schedule here), the same decision.
    const bySource = await viewer.retention.preview({ source: 'plan-src', repository: 'plan-repo', keepLast: 2 });
    expect([bySource.keep, bySource.remove]).toEqual([byRules.keep, byRules.remove]);

    // The schedule's own rules when none are given; then the function a run applies, for real.
    await operator.schedules.update('plan-keep', { keepLast: 2, keepDaily: 1 });
    const own = await viewer.retention.preview({ schedule: 'plan-keep' });
    expect(own.rules).toEqual({ keepLast: 2, keepDaily: 1 });
    expect(own.keep.map((k) => [k.id, k.reasons])).toEqual([[newest, ['last', 'daily']], [made[2], ['last']]]);
    const { schedule } = await viewer.schedules.get('plan-keep');
    const repository = await Repository.open(new FileSystemStorage(repo));
    await applyScheduleRetention(repository, { ...schedule, source: `sqlite://${small}` } as ScheduleSpec, openSource(`sqlite://${small}`).location, new Date());
    const left = (await operator.backups.list({ repository: repo, schedule: 'plan-keep' })).map((b) => b.id).sort();
    expect(left).toEqual(own.keep.map((k) => k.id).sort());
    expect((await operator.backups.list({ repository: repo })).map((b) => b.id)).toContain('lite-1');
    await operator.schedules.remove('plan-keep');
  }, 60_000);

  it('refuses what it cannot preview, naming it', async () => {
    const both = await apiFailure(viewer.retention.preview({ source: 'x', schedule: 'y' }));
    expect([both.status, both.message]).toEqual([400, expect.stringMatching(/give "source" or "schedule", not both/)]);
    expect((await apiFailure(viewer.retention.preview({}))).message).toMatch(/give "source" \(its scheduled backups\) or "schedule"/);
    expect((await apiFailure(viewer.retention.preview({ schedule: 'nope' }))).status).toBe(404);
    expect((await apiFailure(operator.retention.preview({ source: `sqlite://${small}`, repository: repo, keepWithin: 'soon' }))).message).toMatch(/Invalid keepWithin "soon"/);
    expect((await apiFailure(operator.retention.preview({ source: `sqlite://${small}`, repository: repo, timezone: 'Nowhere/City' }))).message).toMatch(/Unknown time zone/);
    // A viewer names registered sources and repositories only.
    expect((await apiFailure(viewer.retention.preview({ source: `sqlite://${small}`, repository: repo }))).status).toBe(403);
  });
});

describe('source check', () => {
  it('reachable PostgreSQL, SQLite and MariaDB sources: ok, with the server version and the tools', async () => {
    const admin = new CairnClient({ url: server.url, token: tokens.admin });
    await admin.sources.add('check-pg', pgUrl(pgDb));
    await admin.sources.add('check-lite', `sqlite://${small}`);
    await admin.sources.add('check-maria', 'mysql://root@127.0.0.1:3306/mysql');
    const serverVersion = psql(pgDb, "SELECT split_part(current_setting('server_version'), ' ', 1)").trim();
    const pg = await operator.sources.check('check-pg');
    expect(SourceCheck.parse(pg)).toEqual(pg);
    expect(pg).toMatchObject({ name: 'check-pg', kind: 'postgres', ok: true, serverVersion, durationMs: expect.any(Number) });
    expect(pg.tools).toEqual([
      { name: 'pg_dump', version: expect.stringMatching(/^\d+\.\d+/), ok: true },
      { name: 'pg_restore', version: expect.stringMatching(/^\d+\.\d+/), ok: true },
    ]);
    expect(pg.error).toBeUndefined();
    expect(await operator.sources.check('check-lite')).toMatchObject({ kind: 'sqlite', ok: true, serverVersion: expect.stringMatching(/^3\.\d+/) });
    expect(await operator.sources.check('check-maria')).toMatchObject({ kind: 'mysql', ok: true, serverVersion: expect.stringMatching(/^\d+\.\d+/) });
    // A whole server: pg_dumpall too.
    await admin.sources.add('check-pgserver', 'postgres://postgres@127.0.0.1:5432/');
    const whole = await operator.sources.check('check-pgserver');
    expect(whole).toMatchObject({ kind: 'postgres-server', ok: true, serverVersion });
    expect(whole.tools?.map((t) => [t.name, t.ok])).toEqual([['pg_dump', true], ['pg_dumpall', true], ['pg_restore', true]]);
  });

  it('a dead port is ok: false with the error, never the password; pg_dump older than the server is named', async () => {
    const admin = new CairnClient({ url: server.url, token: tokens.admin });
    const port = await freePort();
    await admin.sources.add('check-dead', `postgres://postgres:s3cret-word@127.0.0.1:${port}/nowhere`);
    const dead = await operator.sources.check('check-dead');
    expect(SourceCheck.parse(dead)).toEqual(dead);
    expect(dead).toMatchObject({ name: 'check-dead', kind: 'postgres', ok: false, error: { code: 'SOURCE', message: expect.stringContaining(`127.0.0.1:${port}`) } });
    expect(dead.serverVersion).toBeUndefined();
    expect(JSON.stringify(dead)).not.toContain('s3cret');
    await admin.sources.add('check-gone', `sqlite://${join(work, 'gone.db')}`);
    expect((await operator.sources.check('check-gone')).error).toMatchObject({ code: 'NOT_FOUND', message: expect.stringMatching(/not found/) });

    // A pg_dump older than the server, first on PATH: the backup would refuse; the check says why.
    const bin = join(work, 'old-bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'pg_dump'), '#!/bin/sh\necho "pg_dump (PostgreSQL) 9.6.24"\n', { mode: 0o755 });
    const path = process.env.PATH;
    process.env.PATH = `${bin}:${path}`;
    try {
      const old = await operator.sources.check('check-pg');
      expect(old.ok).toBe(false);
      expect(old.tools?.[0]).toEqual({ name: 'pg_dump', version: '9.6.24', ok: false, message: expect.stringMatching(/must be at least as new as the server.*postgresql-client-\d+/) });
      expect(old.tools?.[1]).toMatchObject({ name: 'pg_restore', ok: true });
    } finally {
      process.env.PATH = path;
    }
  });

  it('operator and up; 404 for an unknown name', async () => {
    expect((await apiFailure(viewer.sources.check('check-pg'))).status).toBe(403);
    expect((await apiFailure(operator.sources.check('nope'))).status).toBe(404);
  });
});

/** A TCP port nothing listens on (one the OS just handed out and took back). */
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

describe('cairn schedule show', () => {
  it('prints the cron in words and the next runs, as the API answers them', async () => {
    const dataDir = join(work, 'cli-data');
    const add = await cli(['schedule', 'add', 'words', '--source', `sqlite://${small}`, '--repo', repo, '--cron', '15 4 * * 1-5', '--timezone', 'Europe/Paris', '--data-dir', dataDir]);
    expect(add.code, add.err).toBe(0);
    const shown = await cli(['schedule', 'show', 'words', '--data-dir', dataDir, '--json']);
    const doc = JSON.parse(shown.out) as { schedule: { description: string; nextRuns: string[] } };
    const preview = await viewer.schedules.cronPreview('15 4 * * 1-5', 'Europe/Paris');
    expect(doc.schedule).toMatchObject({ description: preview.description, nextRuns: preview.nextRuns });
    expect(preview.description).toBe('At 04:15, Monday through Friday');
    const text = await cli(['schedule', 'show', 'words', '--data-dir', dataDir]);
    expect(text.out).toContain('  in words     At 04:15, Monday through Friday (Europe/Paris)');
    expect(text.out).toContain(`  next runs    ${preview.nextRuns.join('\n               ')}`);
  });
});
