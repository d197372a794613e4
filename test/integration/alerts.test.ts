/**
 * Issue 20, notifications: each channel type against a real local receiver (node:http for the
 * webhook — its HMAC signature checked —, Slack and ntfy formats; smtp-server on loopback with
 * AUTH for email), retries with backoff and their record, rules (default, per source, per
 * schedule), a down or hanging endpoint never delaying a backup, recovery told once (also across
 * a restart), a scheduled run that could not start, secrets never answered; through a real
 * server (SQLite backups), the SDK and the CLI.
 */
import { createHmac } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlertCenter } from '../../src/alerts/center.js';
import { publicChannel, channelDriver } from '../../src/alerts/registry.js';
import { SqliteAlertStore, type AlertDelivery } from '../../src/catalog/alerts.js';
import type { AlertEvent } from '../../src/core/alerts.js';
import { CairnClient, type JobRecord } from '../../src/sdk/index.js';
import { catalogFile, startServer, type RunningServer } from '../../src/server/index.js';
import { apiFailure, serverWork, type RoleTokens } from '../helpers/api.js';
import { CHINOOK, cairnRun } from '../helpers/cli.js';
import { Receiver, type Received } from '../helpers/receivers.js';

interface Mail {
  from: string;
  to: string[];
  data: string;
  user: string | undefined;
  /** The session was under TLS (implicit or after STARTTLS). */
  secure: boolean;
}

/**
 * smtp-server on 127.0.0.1:0, AUTH required (user alerts, password `password`): plain text (no
 * STARTTLS offered), or with `tls` STARTTLS (AUTH only after it) or implicit TLS.
 */
async function smtp(password: string, tls?: { key: string; cert: string; implicit: boolean }): Promise<{ server: SMTPServer; port: number; mails: Mail[]; auths: { user: string; ok: boolean }[] }> {
  const mails: Mail[] = [];
  const auths: { user: string; ok: boolean }[] = [];
  const server = new SMTPServer({
    ...(tls ? { secure: tls.implicit, key: tls.key, cert: tls.cert, allowInsecureAuth: false } : { secure: false, disabledCommands: ['STARTTLS'], allowInsecureAuth: true }),
    authOptional: false,
    logger: false,
    onAuth(auth, _session, callback) {
      const ok = auth.username === 'alerts' && auth.password === password;
      auths.push({ user: auth.username ?? '', ok });
      callback(ok ? null : new Error('Invalid username or password'), ok ? { user: auth.username } : undefined);
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        mails.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          data: Buffer.concat(chunks).toString('utf8'),
          user: typeof session.user === 'string' ? session.user : undefined,
          secure: session.secure,
        });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.server.address() as AddressInfo).port, mails, auths };
}

/** A port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

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

const SECRET = 'whsec-0123456789abcdef-not-in-answers';
const SLACK_PATH = '/services/T0001/B0002/slackTokenNotInAnswers';
const NTFY_TOKEN = 'tk_ntfyTokenNotInAnswers';
const SMTP_PASSWORD = 'smtp-Pa55word-not-in-answers';
const SECRETS = [SECRET, SLACK_PATH, 'slackTokenNotInAnswers', NTFY_TOKEN, SMTP_PASSWORD];

const hmac = (body: string, secret = SECRET): string => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
const noSecrets = (value: unknown): void => {
  const text = JSON.stringify(value);
  for (const s of SECRETS) expect(text).not.toContain(s);
};

const event = (over: Partial<AlertEvent> = {}): AlertEvent => ({
  kind: 'failure',
  at: '2026-12-01T03:00:00.000Z',
  source: 'shop',
  schedule: 'nightly',
  job: { id: 'backup-00112233', kind: 'backup', state: 'FAILED', error: { code: 'SOURCE', message: 'no such file' } },
  title: 'backup of shop failed',
  message: 'SOURCE: no such file',
  details: { sourceLocation: '/srv/shop.db' },
  ...over,
});

let work: string;
const receivers: Receiver[] = [];
const receiver = async (): Promise<Receiver> => {
  const r = await Receiver.start();
  receivers.push(r);
  return r;
};

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'cairn-alerts-'));
});

afterAll(async () => {
  for (const r of receivers) await r.close();
  rmSync(work, { recursive: true, force: true });
});

describe('channels against real receivers (AlertCenter on a catalog)', () => {
  let store: SqliteAlertStore;
  let center: AlertCenter;
  const logged: string[] = [];

  beforeAll(() => {
    store = new SqliteAlertStore(catalogFile(join(work, 'unit')));
    center = new AlertCenter({ store, retryDelaysMs: [10, 10], log: (l) => logged.push(l) });
  });
  afterAll(async () => {
    await center.close(100);
    store.close();
  });

  const add = (name: string, type: string, settings: Record<string, unknown>) => store.addChannel({ name, type: channelDriver(type).type, config: channelDriver(type).configure(settings) });

  it('webhook: signed JSON (HMAC-SHA256 of the raw body), Slack {text, blocks}, ntfy text with Title/Priority/Tags/Bearer, email over SMTP with AUTH', async () => {
    const hook = await receiver();
    const slack = await receiver();
    const ntfy = await receiver();
    const mail = await smtp(SMTP_PASSWORD);
    try {
      add('hook', 'webhook', { url: `${hook.url}/cairn?x=1`, secret: SECRET });
      add('chat', 'slack', { url: `${slack.url}${SLACK_PATH}` });
      add('push', 'ntfy', { url: ntfy.url, topic: 'backups', token: NTFY_TOKEN });
      add('mail', 'email', { host: '127.0.0.1', port: mail.port, security: 'none', user: 'alerts', password: SMTP_PASSWORD, from: 'cairn@example.test', to: ['ops@example.test', 'dba@example.test'] });
      center.emit(event());
      await center.idle();

      // Webhook: the signature is the HMAC of exactly the bytes received.
      expect(hook.received).toHaveLength(1);
      const h = hook.received[0] as Received;
      expect(h.path).toBe('/cairn?x=1');
      expect(h.headers['content-type']).toBe('application/json');
      expect(h.headers['x-cairn-signature']).toBe(hmac(h.body));
      expect(h.headers['x-cairn-signature']).not.toBe(hmac(h.body, 'another-secret-0123456789'));
      const body = JSON.parse(h.body) as Record<string, unknown>;
      expect(body).toMatchObject({ version: 1, kind: 'failure', title: 'backup of shop failed', source: 'shop', schedule: 'nightly', job: { id: 'backup-00112233', state: 'FAILED' } });
      expect(h.headers['x-cairn-timestamp']).toBe(String(Math.floor(Date.parse(body.sentAt as string) / 1000)));
      expect(h.headers['x-cairn-event']).toBe('failure');
      expect(h.headers['x-cairn-delivery']).toBe(String(body.deliveryId));

      // Slack: text plus header / section / context blocks.
      const s = JSON.parse((slack.received[0] as Received).body) as { text: string; blocks: { type: string; text?: { text: string } }[] };
      expect(slack.received[0]?.path).toBe(SLACK_PATH);
      expect(s.text).toBe(':rotating_light: backup of shop failed');
      expect(s.blocks.map((b) => b.type)).toEqual(['header', 'section', 'context']);
      expect(s.blocks[0]?.text?.text).toBe('backup of shop failed');
      expect(s.blocks[1]?.text?.text).toBe('SOURCE: no such file');

      // ntfy: POST <server>/<topic>, the message as text.
      const n = ntfy.received[0] as Received;
      expect(n.path).toBe('/backups');
      expect(n.headers).toMatchObject({ title: 'backup of shop failed', priority: 'high', tags: 'rotating_light,cairn,failure', authorization: `Bearer ${NTFY_TOKEN}` });
      expect(n.body).toBe('SOURCE: no such file\njob backup-00112233\n2026-12-01T03:00:00.000Z');

      // Email: authenticated, to both recipients.
      expect(mail.auths).toEqual([{ user: 'alerts', ok: true }]);
      expect(mail.mails).toHaveLength(1);
      expect(mail.mails[0]).toMatchObject({ from: 'cairn@example.test', to: ['ops@example.test', 'dba@example.test'], user: 'alerts' });
      expect(mail.mails[0]?.data).toMatch(/^Subject: \[cairn\] backup of shop failed$/m);
      expect(mail.mails[0]?.data).toContain('job: backup-00112233 (backup, FAILED)');

      const { deliveries } = store.deliveries();
      expect(deliveries.map((d) => [d.channel, d.state, d.attempts]).sort()).toEqual([['chat', 'delivered', 1], ['hook', 'delivered', 1], ['mail', 'delivered', 1], ['push', 'delivered', 1]]);
      // Listings and deliveries carry no secret; the webhook shows its host only.
      const listed = store.channels().map(publicChannel);
      noSecrets(listed);
      noSecrets(deliveries);
      expect(listed.find((c) => c.name === 'hook')).toMatchObject({ target: `${hook.url}/…`, secretSet: true, settings: {} });
      expect(listed.find((c) => c.name === 'mail')).toMatchObject({ secretSet: true, settings: { host: '127.0.0.1', user: 'alerts', security: 'none', to: ['ops@example.test', 'dba@example.test'] } });
      expect(listed.find((c) => c.name === 'push')?.settings).toEqual({ topic: 'ba…' });
    } finally {
      for (const name of ['hook', 'chat', 'push', 'mail']) store.removeChannel(name);
      await new Promise<void>((resolve) => mail.server.close(() => resolve()));
    }
  });

  it('a wrong SMTP password fails the delivery, recorded without the password', async () => {
    const mail = await smtp('the-right-one');
    try {
      add('mail2', 'email', { host: '127.0.0.1', port: mail.port, security: 'none', user: 'alerts', password: SMTP_PASSWORD, from: 'cairn@example.test', to: ['ops@example.test'] });
      const d = await center.test('mail2');
      expect(d).toMatchObject({ state: 'failed', attempts: 1, kind: 'test' });
      expect(d.lastError).toMatch(/^smtp:\/\/127\.0\.0\.1:\d+: EAUTH/);
      noSecrets(d);
      expect(mail.mails).toEqual([]);
    } finally {
      store.removeChannel('mail2');
      await new Promise<void>((resolve) => mail.server.close(() => resolve()));
    }
  });

  it('email over TLS: STARTTLS and implicit TLS with a private CA; an unknown certificate or a server without STARTTLS is refused before AUTH', async () => {
    // A certificate for 127.0.0.1, made here by openssl, trusted only through the channel's `ca`.
    const dir = mkdtempSync(join(work, 'tls-'));
    const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { encoding: 'utf8' });
    expect(made.status, made.stderr).toBe(0);
    const key = readFileSync(join(dir, 'key.pem'), 'utf8');
    const cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
    const starttls = await smtp(SMTP_PASSWORD, { key, cert, implicit: false });
    const implicit = await smtp(SMTP_PASSWORD, { key, cert, implicit: true });
    const plain = await smtp(SMTP_PASSWORD);
    const mail = (port: number, security: 'tls' | 'starttls', ca?: string) => ({ host: '127.0.0.1', port, security, user: 'alerts', password: SMTP_PASSWORD, from: 'cairn@example.test', to: ['ops@example.test'], ...(ca ? { ca } : {}) });
    try {
      add('tls-start', 'email', mail(starttls.port, 'starttls', cert));
      add('tls-implicit', 'email', mail(implicit.port, 'tls', cert));
      add('tls-unknown', 'email', mail(starttls.port, 'starttls'));
      add('tls-missing', 'email', mail(plain.port, 'starttls', cert));
      expect(publicChannel(store.channel('tls-start')).settings).toMatchObject({ security: 'starttls', customCa: true });
      expect((await center.test('tls-start')).state).toBe('delivered');
      expect((await center.test('tls-implicit')).state).toBe('delivered');
      expect([...starttls.mails, ...implicit.mails].map((m) => [m.user, m.secure])).toEqual([['alerts', true], ['alerts', true]]);
      const unknown = await center.test('tls-unknown');
      expect(unknown).toMatchObject({ state: 'failed', lastError: expect.stringMatching(/self[- ]signed certificate/i) });
      const missing = await center.test('tls-missing');
      expect(missing).toMatchObject({ state: 'failed', lastError: expect.stringMatching(/STARTTLS/) });
      // Neither refused server saw the password: no AUTH was attempted in the clear or to an unknown server.
      expect(starttls.auths).toEqual([{ user: 'alerts', ok: true }]);
      expect(plain.auths).toEqual([]);
      expect(() => channelDriver('email').configure({ ...mail(1, 'starttls'), ca: 'not a certificate' })).toThrow(/must be PEM certificates/);
    } finally {
      for (const name of ['tls-start', 'tls-implicit', 'tls-unknown', 'tls-missing']) store.removeChannel(name);
      for (const s of [starttls, implicit, plain]) await new Promise<void>((resolve) => s.server.close(() => resolve()));
    }
  });

  it('retries with backoff: two 503 answers, then delivered on the third attempt', async () => {
    const flaky = await receiver();
    flaky.answer = (n) => (n <= 2 ? 503 : 200);
    add('flaky', 'webhook', { url: flaky.url, secret: SECRET });
    center.emit(event());
    await center.idle();
    const d = store.deliveries({ channel: 'flaky' }).deliveries[0] as AlertDelivery;
    expect(d).toMatchObject({ state: 'delivered', attempts: 3, lastError: null });
    expect(flaky.received).toHaveLength(3);
    // A retry is the same delivery: same id, same body, signed alike.
    expect(new Set(flaky.received.map((r) => r.headers['x-cairn-delivery']))).toEqual(new Set([String(d.id)]));
    store.removeChannel('flaky');
  });

  it('a closed port: every attempt fails, recorded failed with the reason and logged once', async () => {
    const port = await closedPort();
    add('down', 'webhook', { url: `http://127.0.0.1:${port}/hook/secretpath`, secret: SECRET });
    logged.length = 0;
    const started = Date.now();
    center.emit(event());
    expect(Date.now() - started).toBeLessThan(200); // emit does not wait for delivery
    expect(store.deliveries({ channel: 'down' }).deliveries[0]?.state).toBe('pending');
    await center.idle();
    const d = store.deliveries({ channel: 'down' }).deliveries[0] as AlertDelivery;
    expect(d).toMatchObject({ state: 'failed', attempts: 3, deliveredAt: null });
    expect(d.lastError).toBe(`cannot reach http://127.0.0.1:${port}/…: ECONNREFUSED`);
    expect(logged.filter((l) => l.includes('channel down failed after 3 attempt(s)'))).toHaveLength(1);
    expect(store.deliveries({ state: 'failed', channel: 'down' }).total).toBe(1);
    store.removeChannel('down');
  });

  it('rules: a channel without rules gets failures only; rules filter by kind, source (name or location) and schedule', async () => {
    const r = await receiver();
    add('ruled', 'webhook', { url: r.url, secret: SECRET });
    center.emit(event({ kind: 'success', title: 'ok 1' }));
    center.emit(event({ title: 'fail 1' }));
    await center.idle();
    expect(r.received.map((x) => (JSON.parse(x.body) as AlertEvent).title)).toEqual(['fail 1']);
    store.addRule({ channel: 'ruled', on: ['success'], source: '/srv/shop.db', schedule: null });
    store.addRule({ channel: 'ruled', on: ['failure'], source: null, schedule: 'hourly' });
    center.emit(event({ kind: 'success', title: 'ok by location' }));
    center.emit(event({ kind: 'success', title: 'ok of another source', source: 'crm', details: { sourceLocation: '/srv/crm.db' } }));
    center.emit(event({ title: 'fail of nightly' }));
    center.emit(event({ title: 'fail of hourly', schedule: 'hourly' }));
    await center.idle();
    expect(r.received.slice(1).map((x) => (JSON.parse(x.body) as AlertEvent).title)).toEqual(['ok by location', 'fail of hourly']);
    store.removeChannel('ruled');
  });

  it('an event naming a source by its registered name matches a rule naming its location, and the other way round', async () => {
    const r = await receiver();
    add('named', 'webhook', { url: r.url, secret: SECRET });
    store.addRule({ channel: 'named', on: ['rpo'], source: '/srv/shop.db', schedule: null });
    store.addRule({ channel: 'named', on: ['stuck'], source: 'crm', schedule: null });
    const named = new AlertCenter({ store, sources: () => [{ name: 'shop', location: '/srv/shop.db' }, { name: 'crm', location: 'postgres://db/crm' }] });
    const bare = (over: Partial<AlertEvent>): AlertEvent => ({ kind: 'rpo', at: '2026-12-01T03:00:00.000Z', title: 'x', message: 'm', ...over });
    named.emit(bare({ source: 'shop', title: 'rpo of shop by name' }));
    named.emit(bare({ source: 'crm', title: 'rpo of crm: no rule' }));
    named.emit(bare({ kind: 'stuck', source: 'postgres://db/crm', title: 'stuck crm by location' }));
    named.emit(bare({ kind: 'stuck', source: 'shop', title: 'stuck shop: no rule' }));
    await named.idle();
    expect(r.received.map((x) => (JSON.parse(x.body) as AlertEvent).title)).toEqual(['rpo of shop by name', 'stuck crm by location']);
    await named.close(0);
    store.removeChannel('named');
  });
});

describe('a real server: SQLite backups, the SDK, the CLI', () => {
  let serverDir: string;
  let dataDir: string;
  let repo: string;
  let tokens: RoleTokens;
  let server: RunningServer;
  let admin: CairnClient;
  let operator: CairnClient;
  let shop: string;
  let hook: Receiver;
  let chat: Receiver;
  let push: Receiver;
  let hanging: Receiver;
  let mail: Awaited<ReturnType<typeof smtp>>;
  const serverOptions = () => ({ dataDir, port: 0, scheduleTickMs: 3600_000, env: {}, errorLog: () => undefined, alertRetryDelaysMs: [20, 40], alertAttemptTimeoutMs: 1500 });
  /** Webhook events received, parsed. */
  const events = (r: Receiver = hook): AlertEvent[] => r.received.map((x) => JSON.parse(x.body) as AlertEvent);
  const backup = (): Promise<JobRecord> => operator.backups.create({ source: 'shop', repository: 'main' }).then((j) => operator.jobs.wait(j.id, { pollMs: 20 }));

  beforeAll(async () => {
    ({ work: serverDir, dataDir, repo, tokens } = await serverWork('cairn-alerts-server-'));
    shop = join(serverDir, 'shop.db');
    copyFileSync(CHINOOK, shop);
    [hook, chat, push, hanging] = [await receiver(), await receiver(), await receiver(), await receiver()];
    hanging.hang = true;
    mail = await smtp(SMTP_PASSWORD);
    server = await startServer(serverOptions());
    admin = new CairnClient({ url: server.url, token: tokens.admin });
    operator = new CairnClient({ url: server.url, token: tokens.operator });
    await admin.sources.add('shop', `sqlite://${shop}`);
    await admin.repositories.add('main', repo);
  });

  afterAll(async () => {
    await server?.close();
    await new Promise<void>((resolve) => mail.server.close(() => resolve()));
    rmSync(serverDir, { recursive: true, force: true });
  });

  it('admin adds channels through the API; secrets are never answered; other roles get 403', async () => {
    const down = await closedPort();
    const added = [
      await admin.alerts.addChannel({ name: 'hook', type: 'webhook', url: `${hook.url}/in`, secret: SECRET }),
      await admin.alerts.addChannel({ name: 'chat', type: 'slack', url: `${chat.url}${SLACK_PATH}` }),
      await admin.alerts.addChannel({ name: 'push', type: 'ntfy', url: push.url, topic: 'cairn-alerts', token: NTFY_TOKEN }),
      await admin.alerts.addChannel({ name: 'mail', type: 'email', host: '127.0.0.1', port: mail.port, security: 'none', user: 'alerts', password: SMTP_PASSWORD, from: 'cairn@example.test', to: ['ops@example.test'] }),
      await admin.alerts.addChannel({ name: 'down', type: 'webhook', url: `http://127.0.0.1:${down}/`, secret: SECRET }),
      await admin.alerts.addChannel({ name: 'hang', type: 'webhook', url: hanging.url, secret: SECRET }),
    ];
    noSecrets(added);
    const listed = await admin.alerts.listChannels();
    noSecrets(listed);
    expect(listed.map((c) => [c.name, c.type, c.secretSet])).toEqual([['chat', 'slack', true], ['down', 'webhook', true], ['hang', 'webhook', true], ['hook', 'webhook', true], ['mail', 'email', true], ['push', 'ntfy', true]]);
    expect(listed.find((c) => c.name === 'chat')?.target).toBe(`${chat.url}/…`);

    for (const c of [operator, new CairnClient({ url: server.url, token: tokens.viewer })]) expect((await apiFailure(c.alerts.listChannels())).status).toBe(403);
    expect((await apiFailure(admin.alerts.addChannel({ name: 'hook', type: 'webhook', url: hook.url, secret: SECRET }))).status).toBe(409);
    const weak = await apiFailure(admin.alerts.addChannel({ name: 'weak', type: 'webhook', url: hook.url, secret: 'short' }));
    expect([weak.status, weak.message]).toEqual([400, expect.stringMatching(/secret of at least 16 characters/)]);
    const mixed = await apiFailure(admin.alerts.addChannel({ name: 'mixed', type: 'slack', url: hook.url, topic: 'x' }));
    expect(mixed.message).toMatch(/A slack channel does not take topic/);
    const unknown = await apiFailure(admin.alerts.addChannel({ name: 'x', type: 'pager' as 'slack', url: hook.url }));
    expect(unknown.message).toMatch(/unknown channel type "pager"/);
  });

  it('test: a sample sent now, the outcome answered (delivered, or failed with the reason)', async () => {
    const ok = await admin.alerts.testChannel('hook');
    expect(ok).toMatchObject({ channel: 'hook', kind: 'test', state: 'delivered', attempts: 1 });
    expect(events().at(-1)?.title).toBe('cairn test alert for channel hook');
    expect(hook.received.at(-1)?.headers['x-cairn-signature']).toBe(hmac(hook.received.at(-1)?.body ?? ''));
    const bad = await admin.alerts.testChannel('down');
    expect(bad).toMatchObject({ state: 'failed', attempts: 1, lastError: expect.stringMatching(/ECONNREFUSED/) });
    expect((await apiFailure(admin.alerts.testChannel('nope'))).status).toBe(404);
  });

  it('rules through the API: checked channel, kinds, source and schedule', async () => {
    const r = await admin.alerts.addRule({ channel: 'hook', on: ['failure', 'recovery', 'success'], source: 'shop' });
    expect(r).toMatchObject({ channel: 'hook', on: ['failure', 'recovery', 'success'], source: 'shop', schedule: null });
    expect((await apiFailure(admin.alerts.addRule({ channel: 'nope' }))).status).toBe(404);
    expect((await apiFailure(admin.alerts.addRule({ channel: 'hook', source: 'unregistered' }))).status).toBe(404);
    expect((await apiFailure(admin.alerts.addRule({ channel: 'hook', schedule: 'nope' }))).status).toBe(404);
    expect((await apiFailure(admin.alerts.addRule({ channel: 'hook', on: ['boom' as 'failure'] }))).message).toMatch(/unknown alert kind "boom"/);
    const tmp = await admin.alerts.addRule({ channel: 'chat' });
    expect(tmp.on).toEqual(['failure']);
    expect(await admin.alerts.removeRule(tmp.id)).toEqual({ removed: tmp.id });
    expect((await admin.alerts.listRules()).map((x) => x.id)).toEqual([r.id]);
  });

  it('a failed backup is told to every channel; a down and a hanging endpoint neither fail nor delay it', async () => {
    // The down channel is told of successes too: a backup that succeeds is neither failed nor delayed by it.
    const downRule = await admin.alerts.addRule({ channel: 'down', on: ['failure', 'success'] });
    const good = await backup();
    expect(good.state).toBe('SUCCESS');
    expect(Date.parse(good.finishedAt ?? '') - Date.parse(good.createdAt)).toBeLessThan(1500);
    await until(() => events().some((e) => e.kind === 'success' && e.job?.id === good.id), 'the success event');
    const downSuccess = await until(async () => (await admin.alerts.deliveries({ channel: 'down' })).deliveries.find((d) => d.kind === 'success' && d.state === 'failed'), 'the down success delivery failed');
    expect(downSuccess).toMatchObject({ attempts: 3, title: 'backup of shop succeeded' });
    await admin.alerts.removeRule(downRule.id);
    expect(events().filter((e) => e.kind === 'recovery')).toEqual([]); // no failure before: nothing recovered

    renameSync(shop, `${shop}.away`);
    const failed = await backup();
    expect(failed.state).toBe('FAILED');
    // Not delayed: the hanging channel's first attempt (1.5 s) is still under way when the job has ended.
    expect(Date.parse(failed.finishedAt ?? '') - Date.parse(failed.createdAt)).toBeLessThan(1500);
    const pendingNow = (await admin.alerts.deliveries({ channel: 'hang' })).deliveries[0];
    expect(pendingNow?.state).toBe('pending');

    const failure = await until(() => events().find((e) => e.kind === 'failure' && e.job?.id === failed.id), 'the webhook failure event');
    expect(failure).toMatchObject({ source: 'shop', title: 'backup of shop failed', job: { kind: 'backup', state: 'FAILED', error: { code: failed.error?.code } } });
    expect(failure.message).toBe(`${failed.error?.code}: ${failed.error?.message}`);
    await until(() => chat.received.length === 1 && push.received.length === 1 && mail.mails.length === 1, 'slack, ntfy and email');
    expect((JSON.parse(chat.received[0]?.body ?? '') as { text: string }).text).toBe(':rotating_light: backup of shop failed');
    expect(push.received[0]?.headers.title).toBe('backup of shop failed');
    expect(mail.mails[0]?.data).toMatch(/Subject: \[cairn\] backup of shop failed/);

    const final = await until(async () => {
      const all = (await admin.alerts.deliveries({ limit: 1000 })).deliveries;
      const byChannel = (c: string) => all.find((d) => d.channel === c && d.kind === 'failure');
      return byChannel('down')?.state === 'failed' && byChannel('hang')?.state === 'failed' ? all : undefined;
    }, 'down and hang recorded failed', 20_000);
    expect(final.find((d) => d.channel === 'down' && d.kind === 'failure')).toMatchObject({ attempts: 3, lastError: expect.stringMatching(/ECONNREFUSED/) });
    expect(final.find((d) => d.channel === 'hang' && d.kind === 'failure')).toMatchObject({ attempts: 3, lastError: expect.stringMatching(/did not answer in time/) });
    noSecrets(final);
    expect((await admin.alerts.deliveries({ state: 'failed', channel: 'down' })).total).toBeGreaterThanOrEqual(2); // the test and this one
  });

  it('recovery: told once, on the first success after failures, also across a restart', async () => {
    const before = events().length;
    expect((await backup()).state).toBe('FAILED'); // a second failure in a row
    await server.close();
    server = await startServer(serverOptions());
    admin = new CairnClient({ url: server.url, token: tokens.admin });
    operator = new CairnClient({ url: server.url, token: tokens.operator });
    renameSync(`${shop}.away`, shop);
    const first = await backup();
    const second = await backup();
    expect([first.state, second.state]).toEqual(['SUCCESS', 'SUCCESS']);
    await until(() => events().some((e) => e.kind === 'success' && e.job?.id === second.id), 'the second success');
    const after = events().slice(before);
    expect(after.filter((e) => e.kind === 'recovery').map((e) => [e.job?.id, e.title])).toEqual([[first.id, 'backup of shop succeeded again after failing']]);
    expect(after.filter((e) => e.kind === 'failure')).toHaveLength(1);
  });

  it('a scheduled run that could not start is a failure alert with its reason', async () => {
    const gone = join(dataDir, '..', 'gone-repo');
    await operator.schedules.create({ name: 'nightly', source: 'shop', repository: 'main', cron: '0 3 * * *' });
    await admin.alerts.addRule({ channel: 'chat', on: ['failure'], schedule: 'nightly' });
    // The schedule's repository vanishes: the run cannot start.
    renameSync(repo, gone);
    try {
      await apiFailure(operator.schedules.runNow('nightly'));
    } finally {
      renameSync(gone, repo);
    }
    const e = await until(() => events().find((x) => x.schedule === 'nightly'), 'the could-not-start event');
    expect(e).toMatchObject({ kind: 'failure', source: 'shop', title: 'scheduled backup nightly could not start' });
    expect(e.message).toMatch(/^The run due at .* did not start: /);
    expect(e.job).toBeUndefined();
    await until(() => chat.received.some((r) => r.body.includes('nightly could not start')), 'the schedule rule of chat');
  });

  it('other jobs are named by what they did: a restore that failed goes to the channels without rules', async () => {
    const id = (await backup()).result?.backupId as string;
    const before = push.received.length;
    const restore = await operator.restores.create({ backup: id, repository: 'main', target: 'shop' }); // its tables are there: CONFLICT
    const end = await operator.jobs.wait(restore.id, { pollMs: 20 });
    expect(end.state).toBe('FAILED');
    const got = await until(() => push.received.slice(before).find((r) => r.body.includes(end.id)), 'the restore failure on ntfy');
    expect(got.headers.title).toBe(`restore of ${id} into shop failed`); // a registered target by its name
    expect(events().some((e) => e.job?.id === end.id)).toBe(false); // hook's rules name the source shop: a restore into it names no source
  });

  it('the CLI: channels and rules in the data folder (secrets from a file or a variable), test and deliveries through the server', async () => {
    const secretFile = join(dataDir, '..', 'hook.secret');
    writeFileSync(secretFile, `${SECRET}\n`, { mode: 0o600 });
    const slackFile = join(dataDir, '..', 'slack.url');
    writeFileSync(slackFile, `${chat.url}${SLACK_PATH}\n`, { mode: 0o600 });
    const local = ['--data-dir', dataDir];
    const added = await cairnRun(['alert', 'channel', 'add', 'cli-hook', '--type', 'webhook', '--url', `${hook.url}/cli`, '--secret-file', secretFile, ...local, '--json'], { CAIRN_SERVER: '' });
    expect(added.code, added.stderr).toBe(0);
    expect(JSON.parse(added.stdout)).toMatchObject({ name: 'cli-hook', type: 'webhook', secretSet: true });
    const slack = await cairnRun(['alert', 'channel', 'add', 'cli-chat', '--type', 'slack', '--url-env', 'SLACK_URL', ...local], { CAIRN_SERVER: '', SLACK_URL: `${chat.url}${SLACK_PATH}` });
    expect(slack.code, slack.stderr).toBe(0);
    const onCommandLine = await cairnRun(['alert', 'channel', 'add', 'cli-chat2', '--type', 'slack', '--url', `${chat.url}${SLACK_PATH}`, ...local], { CAIRN_SERVER: '' });
    expect([onCommandLine.code, onCommandLine.stderr]).toEqual([2, expect.stringMatching(/--url-file or --url-env/)]);
    const rule = await cairnRun(['alert', 'rule', 'add', '--channel', 'cli-hook', '--on', 'failure,recovery', '--source', 'shop', ...local, '--json'], { CAIRN_SERVER: '' });
    expect(rule.code, rule.stderr).toBe(0);
    const badKinds = await cairnRun(['alert', 'rule', 'add', '--channel', 'cli-hook', '--on', 'failure,oops', ...local], { CAIRN_SERVER: '' });
    expect(badKinds.stderr).toMatch(/Invalid alert kinds "oops"/);

    // Through the server (its catalog is the same data folder): listing, test, deliveries.
    const remote = { CAIRN_SERVER: server.url, CAIRN_TOKEN: tokens.admin };
    const list = await cairnRun(['alert', 'channel', 'list'], remote);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/cli-hook\s+webhook\s+http:\/\/127\.0\.0\.1:\d+\/…\s+set/);
    expect(list.stdout).toMatch(/cli-chat\s+slack/);
    for (const s of SECRETS) expect(list.stdout).not.toContain(s);
    const test = await cairnRun(['alert', 'channel', 'test', 'cli-hook'], remote);
    expect([test.code, test.stdout]).toEqual([0, 'Test alert delivered to cli-hook.\n']);
    const received = hook.received.at(-1) as Received;
    expect(received.path).toBe('/cli');
    expect(received.headers['x-cairn-signature']).toBe(hmac(received.body));
    const failedTest = await cairnRun(['alert', 'channel', 'test', 'down'], remote);
    expect(failedTest.code).toBe(2);
    expect(failedTest.stderr).toMatch(/was not delivered: cannot reach http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
    const deliveries = await cairnRun(['alert', 'deliveries', '--state', 'failed', '--channel', 'down', '--json'], remote);
    expect(deliveries.code, deliveries.stderr).toBe(0);
    const answer = JSON.parse(deliveries.stdout) as { deliveries: AlertDelivery[]; total: number };
    expect(answer.deliveries.every((d) => d.channel === 'down' && d.state === 'failed')).toBe(true);
    expect(answer.total).toBe(answer.deliveries.length);
    noSecrets(answer);
    const rules = await cairnRun(['alert', 'rule', 'list', '--json'], remote);
    expect((JSON.parse(rules.stdout) as { rules: { channel: string }[] }).rules.map((r) => r.channel)).toContain('cli-hook');
    const removed = await cairnRun(['alert', 'channel', 'remove', 'cli-hook', ...local], { CAIRN_SERVER: '' });
    expect([removed.code, removed.stdout]).toEqual([0, 'Removed channel cli-hook and its 1 rule(s).\n']);
  });

  it('stopping the server gives up pending retries (recorded failed at the next start), without waiting for them', async () => {
    const t = Date.now();
    await admin.alerts.testChannel('hook'); // the server answers
    hanging.hang = true;
    await admin.alerts.addRule({ channel: 'hang', on: ['success'] });
    const job = await backup();
    await until(async () => (await admin.alerts.deliveries({ channel: 'hang', state: 'pending' })).total > 0 && hanging.received.length > 0, 'an attempt under way');
    const closing = Date.now();
    await server.close();
    expect(Date.now() - closing).toBeLessThan(3000); // the grace (2 s) at most, not the retries
    server = await startServer(serverOptions());
    admin = new CairnClient({ url: server.url, token: tokens.admin });
    const d = (await admin.alerts.deliveries({ channel: 'hang' })).deliveries.find((x) => x.kind === 'success');
    expect(d).toMatchObject({ state: 'failed', lastError: expect.stringMatching(/the server stopped before it was delivered$/) });
    expect(job.state).toBe('SUCCESS');
    expect(Date.now() - t).toBeLessThan(15_000);
  });
});
