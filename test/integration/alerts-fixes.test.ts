/**
 * Issue 20, notifications, bugs a new-user trial found: plain SMTP carrying a password to
 * another machine (refused when added, and when sent), recovery told per source instead of per
 * subject (drills), drills' messages, URLs with credentials, secret errors naming the flags,
 * every event naming a registered source by its name, deliveries of an unknown channel, and
 * the documented payloads matching a real run. Real SMTP/HTTP receivers, a real server, the CLI.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlertCenter } from '../../src/alerts/center.js';
import { channelDriver } from '../../src/alerts/registry.js';
import { SqliteDrillStore } from '../../src/catalog/drills.js';
import { SqliteAlertStore } from '../../src/catalog/alerts.js';
import type { AlertEvent } from '../../src/core/alerts.js';
import type { JobRecord } from '../../src/jobs/ports.js';
import { CairnClient } from '../../src/sdk/index.js';
import { catalogFile, startServer, type RunningServer } from '../../src/server/index.js';
import { apiFailure, serverWork, type RoleTokens } from '../helpers/api.js';
import { cairnRun } from '../helpers/cli.js';
import { Receiver } from '../helpers/receivers.js';

/** Polls `get` every 20 ms until it gives a value, failing after `ms` with `what`. */
async function until<T>(get: () => T | undefined | false | Promise<T | undefined | false>, what: string, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await get();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const PASSWORD = 'smtp-clear-Pa55word';
const SECRET = 'whsec-0123456789abcdef-fixes';

/** A plain SMTP server (no STARTTLS, AUTH allowed in clear) on `host`:0 recording every AUTH it got. */
async function plainSmtp(host: string): Promise<{ server: SMTPServer; port: number; auths: string[] }> {
  const auths: string[] = [];
  const server = new SMTPServer({
    secure: false,
    disabledCommands: ['STARTTLS'],
    allowInsecureAuth: true,
    authOptional: true,
    logger: false,
    onAuth(auth, _s, cb) {
      auths.push(`${auth.username ?? ''}:${auth.password ?? ''}`);
      cb(null, { user: auth.username });
    },
    onData(stream, _s, cb) {
      stream.resume();
      stream.on('end', () => cb());
    },
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return { server, port: (server.server.address() as AddressInfo).port, auths };
}

/** This machine's first non-loopback IPv4 address (the trial's "another host" that can run here). */
const outsideAddress = (): string | undefined =>
  Object.values(networkInterfaces())
    .flat()
    .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;

let work: string;
const receivers: Receiver[] = [];
const receiver = async (): Promise<Receiver> => {
  const r = await Receiver.start();
  receivers.push(r);
  return r;
};

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'cairn-alert-fixes-'));
});
afterAll(async () => {
  for (const r of receivers) await r.close();
  rmSync(work, { recursive: true, force: true });
});

let jobSeq = 0;
const job = (kind: JobRecord['kind'], state: 'SUCCESS' | 'FAILED', params: Record<string, unknown>, result: Record<string, unknown> | null = null): JobRecord => ({
  id: `${kind}-${String(++jobSeq).padStart(16, '0')}`,
  kind,
  state,
  key: null,
  params,
  progress: {} as JobRecord['progress'],
  result,
  error: state === 'FAILED' ? { code: 'DRILL_FAILED', message: 'a check failed' } : null,
  createdAt: '2026-12-01T03:00:00.000Z',
  updatedAt: '2026-12-01T03:00:00.000Z',
  finishedAt: '2026-12-01T03:00:01.000Z',
});

describe('the AlertCenter on a catalog', () => {
  let store: SqliteAlertStore;
  let center: AlertCenter;
  let hook: Receiver;
  const PG = 'postgres://postgres@127.0.0.1:5432/db';
  const events = (): AlertEvent[] => hook.received.map((r) => JSON.parse(r.body) as AlertEvent);

  beforeAll(async () => {
    store = new SqliteAlertStore(catalogFile(join(work, 'unit')));
    center = new AlertCenter({ store, retryDelaysMs: [10], attemptTimeoutMs: 3000, sources: () => [{ name: 'pg', location: PG }, { name: 'other', location: 'postgres://postgres@127.0.0.1:5432/other' }] });
    hook = await receiver();
    store.addChannel({ name: 'hook', type: 'webhook', config: channelDriver('webhook').configure({ url: hook.url, secret: SECRET }) });
    store.addRule({ channel: 'hook', on: ['failure', 'success', 'recovery', 'stuck', 'rpo'], source: null, schedule: null });
  });
  afterAll(async () => {
    await center.close(100);
    store.close();
  });

  it('SMTP security none: a user/password toward another host is refused when added and when sent; loopback is allowed', async () => {
    const driver = channelDriver('email');
    const base = { port: 25, security: 'none' as const, user: 'cairn', password: PASSWORD, from: 'cairn@example.test', to: ['ops@example.test'] };
    for (const host of ['mail.example.com', '192.0.2.10', '10.1.2.3']) expect(() => driver.configure({ ...base, host })).toThrow(/clear text to .*--smtp-security starttls\|tls/);
    for (const host of ['127.0.0.1', '127.8.9.10', 'localhost', '::1', '[::1]']) expect(driver.configure({ ...base, host })).toMatchObject({ host, user: 'cairn' });
    expect(driver.configure({ ...base, host: 'mail.example.com', user: undefined, password: undefined })).toMatchObject({ security: 'none' }); // no password: nothing to leak
    expect(driver.configure({ ...base, host: 'mail.example.com', security: 'starttls' })).toMatchObject({ security: 'starttls' });

    // A config stored without the check (an older catalog): the password still never goes out.
    const address = outsideAddress();
    if (address === undefined) {
      // The add-time checks above ran; the send-time one needs an address that is not loopback.
      console.log('skipped: the send-time check of a stored clear-text SMTP config: this machine has no non-loopback IPv4 address to run an SMTP server on');
      return;
    }
    const smtp = await plainSmtp(address);
    try {
      store.addChannel({ name: 'old-mail', type: 'email', config: { ...base, host: address, port: smtp.port } });
      const d = await center.test('old-mail');
      expect(d.state).toBe('failed');
      expect(d.lastError).toMatch(/clear text/);
      expect(d.lastError).not.toContain(PASSWORD);
      expect(smtp.auths).toEqual([]);
    } finally {
      store.removeChannel('old-mail');
      await new Promise<void>((resolve) => smtp.server.close(() => resolve()));
    }
  });

  it('recovery is per subject: a drill by its name, a backup by its source and schedule', async () => {
    const drill = (name: string, state: 'SUCCESS' | 'FAILED') =>
      job('drill', state, { drill: name, source: PG, repository: '/r', target: 'postgres://postgres@127.0.0.1:5432/scratch' }, state === 'SUCCESS' ? { passed: true, backupId: `pg-20261201-${name}`, recoverySeconds: 12.5, rowsCompared: 1200, tables: [{ name: 'a' }, { name: 'b' }, { name: 'c' }], checks: [{ sql: 'select 1', ok: true }, { sql: 'select true', ok: true }] } : null);
    const before = hook.received.length;
    const failed = drill('pg-dmg', 'FAILED');
    const weekly = drill('pg-weekly', 'SUCCESS'); // never failed: no recovery
    const fresh = drill('pg-new', 'SUCCESS'); // its first run: no recovery
    const again = drill('pg-dmg', 'SUCCESS'); // the same drill after failing: a recovery
    for (const j of [failed, weekly, fresh, again]) center.jobEnded(j);
    await until(() => events().some((e) => e.job?.id === again.id && e.kind === 'success'), 'the last drill success');
    await center.idle();
    const got = events().slice(before);
    expect(got.filter((e) => e.kind === 'recovery').map((e) => [e.job?.id, e.title])).toEqual([[again.id, 'restore drill pg-dmg succeeded again after failing']]);
    const ok = got.find((e) => e.kind === 'success' && e.job?.id === weekly.id);
    expect(ok?.message).toBe('Restored backup pg-20261201-pg-weekly: 3 table(s) compared, 1200 rows, 2/2 check(s) passed; recovery time 12.5 s.');
    expect(got.every((e) => !e.message.includes('written'))).toBe(true);

    // Backups: a failed scheduled backup is not recovered by a manual one, nor a backup of another source.
    const b = hook.received.length;
    center.jobEnded(job('backup', 'FAILED', { source: PG, schedule: 'nightly' }));
    center.jobEnded(job('backup', 'SUCCESS', { source: PG }));
    center.jobEnded(job('backup', 'SUCCESS', { source: 'postgres://postgres@127.0.0.1:5432/other', schedule: 'nightly' }));
    const back = job('backup', 'SUCCESS', { source: PG, schedule: 'nightly' }, { backupId: 'pg-1' });
    center.jobEnded(back);
    await until(() => events().some((e) => e.job?.id === back.id && e.kind === 'success'), 'the scheduled success');
    await center.idle();
    expect(events().slice(b).filter((e) => e.kind === 'recovery').map((e) => e.job?.id)).toEqual([back.id]);

    // A drill's due time that could not start (the DrillScheduler's event, no job) is a failure of
    // that drill: its next pass is a recovery. A drill removed and added again starts afresh.
    const c = hook.received.length;
    center.emit({ kind: 'failure', at: '2026-12-01T05:00:00.000Z', drill: 'pg-late', source: PG, title: 'restore drill pg-late could not start', message: 'the target exists' });
    const late = drill('pg-late', 'SUCCESS');
    center.jobEnded(late);
    await until(() => events().some((e) => e.job?.id === late.id && e.kind === 'success'), 'the late drill success');
    await center.idle();
    expect(events().slice(c).filter((e) => e.kind === 'recovery').map((e) => e.job?.id)).toEqual([late.id]);
    const d = hook.received.length;
    center.jobEnded(drill('pg-gone', 'FAILED'));
    const drills = new SqliteDrillStore(catalogFile(join(work, 'unit')));
    drills.add({ name: 'pg-gone', source: 'pg', repository: 'default', target: 'postgres://postgres@127.0.0.1:5432/scratch', cron: null, timezone: 'UTC', checks: [], enabled: true, createdAt: '2026-12-01T00:00:00.000Z' }, 'postgres://postgres@127.0.0.1:5432/scratch');
    drills.remove('pg-gone');
    drills.close();
    const readded = drill('pg-gone', 'SUCCESS');
    center.jobEnded(readded);
    await until(() => events().some((e) => e.job?.id === readded.id && e.kind === 'success'), 'the re-added drill success');
    await center.idle();
    expect(events().slice(d).filter((e) => e.kind === 'recovery')).toEqual([]);
  });

  it('every event kind names a registered source by its name, its location in details.sourceLocation', async () => {
    const before = hook.received.length;
    center.emit({ kind: 'stuck', at: '2026-12-01T03:00:00.000Z', source: PG, job: { id: 'backup-0000000000000099', kind: 'backup', state: 'RUNNING' }, title: `backup backup-0000000000000099 of ${PG} is stuck`, message: 'Job backup-0000000000000099 has reported no progress.', details: { jobId: 'backup-0000000000000099' } });
    center.emit({ kind: 'rpo', at: '2026-12-01T03:00:00.000Z', source: PG, title: `${PG} has missed its recovery point objective (1h)`, message: 'its newest good backup is 2h old', details: { key: 'k' } });
    center.emit({ kind: 'rpo', at: '2026-12-01T03:00:00.000Z', source: 'postgres://elsewhere/x', title: 'unregistered', message: 'm' });
    await until(() => hook.received.length >= before + 3 && true, 'three events');
    const [stuck, rpo, unregistered] = events().slice(before);
    expect(stuck).toMatchObject({ source: 'pg', title: 'backup backup-0000000000000099 of pg is stuck', details: { jobId: 'backup-0000000000000099', sourceLocation: PG } });
    expect(rpo).toMatchObject({ source: 'pg', title: 'pg has missed its recovery point objective (1h)', details: { key: 'k', sourceLocation: PG } });
    expect(unregistered?.source).toBe('postgres://elsewhere/x');
  });

  it('a webhook or ntfy URL with credentials is refused, naming the channel secret', () => {
    expect(() => channelDriver('webhook').configure({ url: 'http://user:pw@127.0.0.1/hook', secret: SECRET })).toThrow(/must not include a user name or password.*secret/);
    expect(() => channelDriver('ntfy').configure({ url: 'https://user@ntfy.example.com', topic: 't' })).toThrow(/must not include a user name or password.*token/);
  });
});

describe('through a real server and the CLI', () => {
  let serverDir: string;
  let dataDir: string;
  let tokens: RoleTokens;
  let server: RunningServer;
  let admin: CairnClient;
  const local = (): string[] => ['--data-dir', dataDir];

  beforeAll(async () => {
    ({ work: serverDir, dataDir, tokens } = await serverWork('cairn-alert-fixes-server-'));
    server = await startServer({ dataDir, port: 0, scheduleTickMs: 3600_000, env: {}, errorLog: () => undefined, alertRetryDelaysMs: [20], alertAttemptTimeoutMs: 1500 });
    admin = new CairnClient({ url: server.url, token: tokens.admin });
  });
  afterAll(async () => {
    await server?.close();
    rmSync(serverDir, { recursive: true, force: true });
  });

  it('REST refuses a clear-text SMTP password to another host and a URL with credentials (400)', async () => {
    const clear = await apiFailure(admin.alerts.addChannel({ name: 'm', type: 'email', host: 'mail.example.com', security: 'none', user: 'cairn', password: PASSWORD, from: 'c@example.test', to: ['o@example.test'] }));
    expect([clear.status, clear.message]).toEqual([400, expect.stringMatching(/clear text.*--smtp-security starttls\|tls/)]);
    expect(clear.message).not.toContain(PASSWORD);
    const creds = await apiFailure(admin.alerts.addChannel({ name: 'h', type: 'webhook', url: 'http://user:pw@127.0.0.1:9/hook', secret: SECRET }));
    expect([creds.status, creds.message]).toEqual([400, expect.stringMatching(/must not include a user name or password/)]);
    expect(creds.message).not.toContain('pw@');
    expect(await admin.alerts.listChannels()).toEqual([]);
  });

  it('CLI add: clear-text SMTP and credentials in a URL refused (exit 2); secret errors name the channel secret and the flags', async () => {
    const secretFile = join(serverDir, 'smtp.secret');
    writeFileSync(secretFile, `${PASSWORD}\n`, { mode: 0o600 });
    const clear = await cairnRun(['alert', 'channel', 'add', 'mail', '--type', 'email', '--smtp-host', 'mail.example.com', '--smtp-security', 'none', '--smtp-user', 'cairn', '--secret-file', secretFile, '--from', 'c@example.test', '--to', 'o@example.test', ...local()], { CAIRN_SERVER: '' });
    expect([clear.code, clear.stderr]).toEqual([2, expect.stringMatching(/--smtp-security starttls\|tls/)]);
    writeFileSync(join(serverDir, 'hook.secret'), `${SECRET}\n`);
    const creds = await cairnRun(['alert', 'channel', 'add', 'hook', '--type', 'webhook', '--url', 'http://user:pw@127.0.0.1:9/hook', '--secret-file', join(serverDir, 'hook.secret'), ...local()], { CAIRN_SERVER: '' });
    expect([creds.code, creds.stderr]).toEqual([2, expect.stringMatching(/must not include a user name or password .*--secret-file/)]);

    const empty = join(serverDir, 'empty.secret');
    writeFileSync(empty, '\n');
    const emptied = await cairnRun(['alert', 'channel', 'add', 'hook', '--type', 'webhook', '--url', 'http://127.0.0.1:9/hook', '--secret-file', empty, ...local()], { CAIRN_SERVER: '' });
    expect(emptied.code).toBe(2);
    expect(emptied.stderr).toMatch(/the webhook channel's secret must not be empty/);
    expect(emptied.stderr).not.toMatch(/encrypted repository/);
    const none = await cairnRun(['alert', 'channel', 'add', 'hook', '--type', 'webhook', '--url', 'http://127.0.0.1:9/hook', ...local()], { CAIRN_SERVER: '' });
    expect([none.code, none.stderr]).toEqual([2, expect.stringMatching(/--secret-file <file> or --secret-env <variable>/)]);
    const listed = await cairnRun(['alert', 'channel', 'list', '--json', ...local()], { CAIRN_SERVER: '' });
    expect((JSON.parse(listed.stdout) as { channels: unknown[] }).channels).toEqual([]);
  });

  it('deliveries of an unknown channel: NOT_FOUND (CLI exit 3, API 404) naming cairn alert channel list', async () => {
    const cli = await cairnRun(['alert', 'deliveries', '--channel', 'nosuch', ...local()], { CAIRN_SERVER: '' });
    expect([cli.code, cli.stdout]).toEqual([3, '']);
    expect(cli.stderr).toMatch(/No alert channel named "nosuch".*cairn alert channel list/);
    const api = await apiFailure(admin.alerts.deliveries({ channel: 'nosuch' }));
    expect([api.status, api.code]).toEqual([404, 'NOT_FOUND']);
    // A channel that exists but got nothing yet: an empty list.
    const hook = await receiver();
    await admin.alerts.addChannel({ name: 'quiet', type: 'webhook', url: hook.url, secret: SECRET });
    expect(await admin.alerts.deliveries({ channel: 'quiet' })).toEqual({ deliveries: [], total: 0 });
  });

  it('the payloads docs/operations.md shows are what a real failed scheduled backup of a missing SQLite file sends', async () => {
    const hook = await receiver();
    await admin.alerts.addChannel({ name: 'docs-hook', type: 'webhook', url: hook.url, secret: SECRET });
    const shop = join(serverDir, 'gone', 'shop.db');
    await admin.sources.add('shop', `sqlite://${shop}`);
    await admin.alerts.addRule({ channel: 'docs-hook', on: ['failure'], source: 'shop' });
    await admin.repositories.add('main', join(serverDir, 'repo'));
    await admin.schedules.create({ name: 'nightly', source: 'shop', repository: 'main', cron: '0 3 * * *' });
    const started = await admin.schedules.runNow('nightly');
    const end = await admin.jobs.wait(started.id, { pollMs: 20 });
    expect(end.state).toBe('FAILED');
    const got = await until(() => hook.received.find((r) => r.body.includes(end.id)), 'the failure event');
    // The docs show /srv/shop.db, and their own ids and times.
    const real = got.body.split(shop).join('/srv/shop.db');
    const docs = readFileSync(new URL('../../docs/operations.md', import.meta.url), 'utf8');
    const block = /\*\*webhook\*\*[\s\S]*?```json\n([\s\S]*?)```/.exec(docs)?.[1] ?? '';
    const documented = JSON.parse(block.replace(/\n/g, '')) as Record<string, unknown> & { job: { id: string }; sentAt: string; at: string; deliveryId: number };
    const actual = JSON.parse(real) as typeof documented;
    const same = { ...actual, deliveryId: documented.deliveryId, sentAt: documented.sentAt, at: documented.at, job: { ...actual.job, id: documented.job.id } };
    expect(JSON.stringify(documented)).toBe(JSON.stringify(same)); // the same fields, in the same order
    // The Slack, ntfy and email samples carry the same message.
    const message = actual.message as string;
    expect(message).toMatch(/^NOT_FOUND: SQLite database not found: \/srv\/shop\.db\. Check the path/);
    expect(docs.split(message).length - 1).toBe(4);
    expect(docs).not.toContain('Cannot open the SQLite database');
  });
});
