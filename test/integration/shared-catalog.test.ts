/**
 * Every store of a server on both catalogs (sql.ts): the embedded SQLite file and the shared
 * PostgreSQL catalog (pg-sync.ts), through the same calls with the same answers; then what only
 * the shared one has: migrations applied once by replicas opening together, secrets sealed with
 * CAIRN_CATALOG_KEY (never in plain text in the database), a replica with another key refused,
 * and due times claimed once by two "replicas" (two connections).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, dropDatabase, ensurePostgres, pgUrl, psql } from '../helpers/postgres.js';
import { openSharedCatalog } from '../../src/catalog/shared.js';
import { catalogDb, type CatalogDb } from '../../src/catalog/sql.js';
import { SqliteTokenStore } from '../../src/catalog/tokens.js';
import { SqliteRegistry } from '../../src/catalog/registry.js';
import { SqliteScheduleStore } from '../../src/catalog/schedules.js';
import { SqliteAlertStore } from '../../src/catalog/alerts.js';
import { SqliteDrillStore } from '../../src/catalog/drills.js';
import { SqliteAuditLog } from '../../src/catalog/audit.js';
import { SqliteSessionStore } from '../../src/catalog/sessions.js';
import { SqliteBreachStore } from '../../src/catalog/health.js';
import { MIGRATIONS } from '../../src/catalog/pg-migrations.js';
import { toPostgresSql } from '../../src/catalog/pg-sync.js';
import { cairnRun } from '../helpers/cli.js';

const KEY = randomBytes(32).toString('base64');
const env = { CAIRN_CATALOG_KEY: KEY };
let database: string;
let url: string;
let dir: string;

beforeAll(() => {
  ensurePostgres();
  database = createDatabase('shared_catalog');
  url = pgUrl(database);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-shared-catalog-'));
});
afterAll(() => {
  if (database) dropDatabase(database);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const dialects: [string, () => Promise<CatalogDb>][] = [
  ['sqlite', async () => catalogDb(path.join(dir, `catalog-${randomBytes(3).toString('hex')}.db`))],
  ['postgres', async () => openSharedCatalog(url, { env })],
];

describe.each(dialects)('the stores on the %s catalog', (dialect, open) => {
  let db: CatalogDb;
  beforeAll(async () => {
    db = await open();
    if (dialect === 'postgres') psql(database, 'TRUNCATE tokens, sessions, registrations, schedules, schedule_runs, alert_channels, alert_rules, alert_deliveries, alert_outcomes, drills, drill_runs, drill_scratch, rpo_breaches;');
  });
  afterAll(() => db?.close());

  it('tokens: create, authenticate, list, revoke', () => {
    const tokens = new SqliteTokenStore(db);
    const t = tokens.create('operator', 'ci', { sources: ['shop'], repositories: null });
    expect(tokens.authenticate(t.token)).toMatchObject({ id: t.id, role: 'operator', sources: ['shop'], repositories: null });
    expect(tokens.authenticate(`${t.token}x`)).toBeUndefined();
    expect(tokens.list().map((x) => x.id)).toEqual([t.id]);
    expect(tokens.revoke(t.id)).toBe(true);
    expect(tokens.revoke(t.id)).toBe(false);
    expect(tokens.authenticate(t.token)).toBeUndefined();
    tokens.close();
  });

  it('sessions: create, look up, delete', () => {
    const sessions = new SqliteSessionStore(db);
    const { id } = sessions.create('tok-1');
    expect(sessions.lookup(id)).toMatchObject({ session: { tokenId: 'tok-1' } });
    expect(sessions.deleteForToken('tok-1')).toBe(1);
    expect(sessions.delete(id)).toBe(false);
    sessions.close();
  });

  it('registry: names are unique, URLs come back whole, rpo is kept', () => {
    const registry = new SqliteRegistry(db);
    registry.add('source', 'shop', 'postgres://app:s3cret@db.internal:5432/shop', 'postgres://db.internal:5432/shop', undefined, 3600);
    expect(() => registry.add('source', 'shop', 'sqlite:///x.db', '/x.db')).toThrow(/registered already/);
    expect(registry.url('source', 'shop')).toBe('postgres://app:s3cret@db.internal:5432/shop');
    expect(registry.url('source', 'nope')).toBeUndefined();
    expect(registry.list('source')).toEqual([expect.objectContaining({ name: 'shop', location: 'postgres://db.internal:5432/shop', rpoSeconds: 3600 })]);
    expect(registry.setRpo('shop', null).rpoSeconds).toBeUndefined();
    expect(registry.entries('source')[0]?.url).toContain('s3cret');
    registry.remove('source', 'shop');
    expect(() => registry.remove('source', 'shop')).toThrow(/No source named/);
    registry.close();
  });

  it('schedules: a due time is recorded once; edits are transactions; queued runs end', () => {
    const schedules = new SqliteScheduleStore(db, { owner: 'me' });
    const spec = { id: '', name: 'nightly', source: 'shop', repository: 'main', cron: '* * * * *', timezone: 'UTC', pattern: '{source}-{yyyy}{MM}{dd}', retention: { keepLast: 3 }, enabled: true, createdAt: '2026-01-01T00:00:00.000Z' };
    schedules.add({ ...spec });
    expect(() => schedules.add({ ...spec, id: '' })).toThrow(/exists already/);
    expect(schedules.recordRun('nightly', '2026-01-01T00:01:00.000Z', 'started', '2026-01-01T00:01:00.100Z')).toBe(true);
    expect(schedules.recordRun('nightly', '2026-01-01T00:01:00.000Z', 'started', '2026-01-01T00:01:00.200Z')).toBe(false);
    schedules.setLastDue('nightly', '2026-01-01T00:01:00.000Z');
    schedules.setLastDue('nightly', '2026-01-01T00:00:00.000Z'); // never back
    expect(schedules.get('nightly').lastDue).toBe('2026-01-01T00:01:00.000Z');
    const edited = schedules.update('nightly', (current) => ({ spec: { ...current, cron: '0 * * * *' }, dueFrom: '2026-01-01T00:30:00.000Z' }));
    expect(edited).toMatchObject({ cron: '0 * * * *', lastDue: '2026-01-01T00:30:00.000Z' });
    expect(() => schedules.update('nightly', () => { throw new Error('refused'); })).toThrow('refused');
    expect(schedules.get('nightly').cron).toBe('0 * * * *');
    schedules.recordRun('nightly', '2026-01-01T01:00:00.000Z', 'started', '2026-01-01T01:00:00.000Z');
    schedules.setRunStatus('nightly', '2026-01-01T01:00:00.000Z', 'queued', 'behind job x');
    expect(schedules.endQueued('stopped')).toBe(1);
    expect(schedules.runs('nightly').map((r) => r.status)).toEqual(['failed', 'started']);
    schedules.remove('nightly');
    expect(schedules.list()).toEqual([]);
    schedules.close();
  });

  it('alerts: channel secrets come back whole; deliveries and outcomes', () => {
    const alerts = new SqliteAlertStore(db, { owner: 'me' });
    alerts.addChannel({ name: 'ops', type: 'webhook', config: { url: 'https://hooks.example/x', secret: 'hmac-s3cret' } });
    expect(() => alerts.addChannel({ name: 'ops', type: 'webhook', config: {} })).toThrow(/exists already/);
    expect(alerts.channel('ops').config).toEqual({ url: 'https://hooks.example/x', secret: 'hmac-s3cret' });
    const id = alerts.addDelivery({ channel: 'ops', kind: 'failure', title: 't', at: '2026-01-01T00:00:00.000Z' });
    expect(alerts.addDelivery({ channel: 'ops', kind: 'failure', title: 't2', at: '2026-01-01T00:00:01.000Z' })).toBe(id + 1);
    alerts.updateDelivery(id, { state: 'delivered', attempts: 1, lastError: null, deliveredAt: '2026-01-01T00:00:02.000Z' });
    expect(alerts.failPending('stopped')).toBe(1);
    expect(alerts.deliveries({}).deliveries.map((d) => d.state)).toEqual(['failed', 'delivered']);
    expect(alerts.swapOutcome('source:shop', 'failure', 'x')).toBeUndefined();
    expect(alerts.swapOutcome('source:shop', 'success', 'y')).toBe('failure');
    alerts.close();
  });

  it('drills: a due time is claimed once; target URLs come back whole; runs get ids', () => {
    const drills = new SqliteDrillStore(db);
    drills.add({ name: 'weekly', source: 'shop', repository: 'main', target: 'postgres://db:5432/scratch', cron: '0 3 * * 0', timezone: 'UTC', checks: ['SELECT true'], enabled: true, createdAt: '2026-01-01T00:00:00.000Z' }, 'postgres://u:pw@db:5432/scratch');
    expect(drills.targetUrl('weekly')).toBe('postgres://u:pw@db:5432/scratch');
    expect(drills.setLastDue('weekly', '2026-01-04T03:00:00.000Z')).toBe(true);
    expect(drills.setLastDue('weekly', '2026-01-04T03:00:00.000Z')).toBe(false);
    const base = { drill: 'weekly', jobId: null, trigger: 'schedule' as const, startedAt: 'a', finishedAt: 'b', state: 'FAILED' as const, backupId: null, recoverySeconds: 1.5, rowsCompared: 0, tables: [], checks: [], error: { code: 'X', message: 'y' } };
    const a = drills.recordRun(base);
    const b = drills.recordRun(base);
    expect(b.id).toBeGreaterThan(a.id);
    expect(drills.runs('weekly').map((r) => r.id)).toEqual([b.id, a.id]);
    drills.remove('weekly');
    drills.close();
  });

  it('audit: append-only, newest first', () => {
    const audit = new SqliteAuditLog(db);
    const entry = { type: 'request' as const, actorTokenId: 't', actorName: 'ci', actorRole: 'admin', via: 'token' as const, address: '127.0.0.1', method: 'POST', path: '/v1/backups', route: 'createBackup', action: 'create backup', target: 'source=shop', status: 202, result: 'ok', jobId: null };
    const first = audit.append(entry);
    const second = audit.append({ ...entry, action: 'second' });
    expect(second.id).toBeGreaterThan(first.id);
    expect(audit.list({}).entries.map((e) => e.action).slice(0, 2)).toEqual(['second', 'create backup']);
    expect(() => db.prepare('UPDATE audit_log SET action = ? WHERE id = ?').run('forged', first.id)).toThrow(/append-only/);
    expect(() => db.prepare('DELETE FROM audit_log WHERE id = ?').run(first.id)).toThrow(/append-only/);
    audit.close();
  });

  it('health: a breach opens once and clears once', () => {
    const breaches = new SqliteBreachStore(db);
    expect(breaches.open('source:shop', 'x')).toBe(true);
    expect(breaches.open('source:shop', 'y')).toBe(false);
    expect(breaches.openKeys()).toEqual(['source:shop']);
    expect(breaches.clear('source:shop')).toBe(true);
    expect(breaches.clear('source:shop')).toBe(false);
    breaches.close();
  });
});

describe('only the shared catalog', () => {
  it('replicas opening an empty catalog together migrate it once', async () => {
    const fresh = createDatabase('shared_migrate');
    try {
      const dbs = await Promise.all([1, 2, 3, 4].map(() => openSharedCatalog(pgUrl(fresh), { env })));
      const versions = psql(fresh, 'SELECT version FROM cairn_schema_migrations ORDER BY version;').split('\n').filter(Boolean).map(Number);
      expect(versions).toEqual(MIGRATIONS.map((m) => m.version).sort((a, b) => a - b));
      for (const d of dbs) d.close();
    } finally {
      dropDatabase(fresh);
    }
  });

  it('keeps secrets sealed in the database, and refuses a replica with another key or none', async () => {
    const db = await openSharedCatalog(url, { env });
    const registry = new SqliteRegistry(db);
    registry.add('source', 'crm', 'postgres://app:Very-s3cret-pw@crm:5432/crm', 'postgres://crm:5432/crm');
    const alerts = new SqliteAlertStore(db);
    alerts.addChannel({ name: 'pager', type: 'webhook', config: { url: 'https://hooks.example/p', secret: 'Hook-s3cret' } });
    const raw = psql(database, 'SELECT url FROM registrations UNION ALL SELECT config FROM alert_channels;');
    expect(raw).not.toMatch(/Very-s3cret-pw|Hook-s3cret/);
    expect(raw).toMatch(/^sealed:v1:/m);
    // A sealed value moved to another row does not open there.
    psql(database, "INSERT INTO registrations (kind, name, url, location, created_at) SELECT kind, 'moved', url, location, created_at FROM registrations WHERE name = 'crm';");
    expect(() => registry.url('source', 'moved')).toThrow(/changed or moved/);
    registry.close();
    alerts.close();
    db.close();
    await expect(openSharedCatalog(url, { env: { CAIRN_CATALOG_KEY: randomBytes(32).toString('base64') } })).rejects.toThrow(/not the key this shared catalog was set up with/);
    await expect(openSharedCatalog(url, { env: {} })).rejects.toThrow(/needs CAIRN_CATALOG_KEY.*openssl rand -base64 32/);
    await expect(openSharedCatalog(url, { env: { CAIRN_CATALOG_KEY: 'short' } })).rejects.toThrow(/not a 32-byte key/);
  });

  it('two replicas racing for one due time: exactly one records it', async () => {
    const a = await openSharedCatalog(url, { env });
    const b = await openSharedCatalog(url, { env });
    const sa = new SqliteScheduleStore(a, { owner: 'a' });
    const sb = new SqliteScheduleStore(b, { owner: 'b' });
    sa.add({ id: '', name: 'race', source: 's', repository: 'r', cron: '* * * * *', timezone: 'UTC', pattern: '{source}', retention: {}, enabled: true, createdAt: '2026-01-01T00:00:00.000Z' });
    let wins = 0;
    for (let minute = 1; minute <= 20; minute++) {
      const due = `2026-01-01T00:${String(minute).padStart(2, '0')}:00.000Z`;
      wins += [sa.recordRun('race', due, 'started', due), sb.recordRun('race', due, 'started', due)].filter(Boolean).length;
    }
    expect(wins).toBe(20);
    // A queued run of a live replica is not ended by another replica's start-up; its own restart ends it.
    sa.recordRun('race', '2026-01-01T01:00:00.000Z', 'started', 'x');
    sa.setRunStatus('race', '2026-01-01T01:00:00.000Z', 'queued', 'behind job y');
    psql(database, "INSERT INTO cairn_servers (id, host, version, url, pid, started_at, heartbeat_at, lease_until) VALUES ('a', 'h', 'v', 'u', 1, now(), now(), now() + interval '1 hour') ON CONFLICT (id) DO UPDATE SET lease_until = excluded.lease_until, stopped_at = NULL;");
    expect(sb.endQueued('stopped')).toBe(0);
    psql(database, "UPDATE cairn_servers SET lease_until = now() - interval '1 second' WHERE id = 'a';");
    expect(sb.endQueued('stopped')).toBe(1);
    sa.close();
    sb.close();
    a.close();
    b.close();
  });

  it('the CLI (built): catalog commands work on the shared catalog with CAIRN_CATALOG; local-only ones refuse; no password on --catalog', async () => {
    const cli = { CAIRN_CATALOG: url, CAIRN_CATALOG_KEY: KEY, CAIRN_DATA_DIR: path.join(dir, 'cli-data') };
    const token = await cairnRun(['token', 'create', '--role', 'viewer', '--name', 'from-cli'], cli);
    expect(token.code, token.stderr).toBe(0);
    const db = await openSharedCatalog(url, { env });
    const tokens = new SqliteTokenStore(db);
    expect(tokens.authenticate(token.stdout.trim())).toMatchObject({ name: 'from-cli', role: 'viewer' });
    tokens.close();
    db.close();
    const channels = await cairnRun(['alert', 'channel', 'list', '--json'], cli);
    expect(channels.code, channels.stderr).toBe(0);
    expect(JSON.parse(channels.stdout)).toMatchObject({ channels: expect.arrayContaining([expect.objectContaining({ name: 'pager' })]) });
    const repo = await cairnRun(['repo', 'list'], cli);
    expect(repo.code).toBe(2);
    expect(repo.stderr).toMatch(/CAIRN_CATALOG names a shared catalog.*unset CAIRN_CATALOG/);
    // Refused before anything is written: the local catalog has no such name afterwards.
    expect((await cairnRun(['repo', 'add', 'zz', path.join(dir, 'r')], cli)).code).toBe(2);
    const local = await cairnRun(['repo', 'list', '--json'], { CAIRN_DATA_DIR: cli.CAIRN_DATA_DIR });
    expect(local.stdout).not.toContain('"zz"');
    for (const bad of [
      `postgres://postgres:pw@127.0.0.1:5432/${database}`,
      `postgres://postgres@127.0.0.1:5432/${database}?password=pw`,
      `postgres://postgres@127.0.0.1:5432/${database}?sslmode=disable&pass%77ord=pw`,
      `postgres://postgres@127.0.0.1:5432/${database}?PASSWORD=pw`,
    ]) {
      const server = await cairnRun(['server', '--catalog', bad, '--listen', '127.0.0.1:0', '--data-dir', path.join(dir, 'srv')], { CAIRN_CATALOG_KEY: KEY });
      expect(server.code).toBe(2);
      expect(server.stderr).toMatch(/Do not put the catalog's password in --catalog/);
    }
  });

  it('a statement after the catalog dropped its connection reconnects and answers', async () => {
    const db = await openSharedCatalog(url, { env });
    const tokens = new SqliteTokenStore(db);
    const before = tokens.list().length;
    const killed = psql(database, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'cairn catalog' AND datname = current_database();");
    expect(Number(killed.trim())).toBeGreaterThanOrEqual(1);
    expect(tokens.list()).toHaveLength(before);
    tokens.close();
    db.close();
  });

  it('translates placeholders and INSERT OR IGNORE, leaving quoted text alone', () => {
    expect(toPostgresSql("SELECT * FROM t WHERE a = ? AND b = '?' AND \"c?\" = ?")).toBe("SELECT * FROM t WHERE a = $1 AND b = '?' AND \"c?\" = $2");
    expect(toPostgresSql('INSERT OR IGNORE INTO t (a) VALUES (?)')).toBe('INSERT INTO t (a) VALUES ($1) ON CONFLICT DO NOTHING');
  });
});
