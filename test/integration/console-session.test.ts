/**
 * Issue 19, console sign-in over HTTP against a real server: POST /v1/sessions trades a token
 * for an HttpOnly SameSite=Strict cookie (only a hash kept), cookie requests other than GET need
 * the session's X-CSRF-Token and the server's own origin, sessions end (idle 1 h, 8 h absolute,
 * on a clock the test moves), a revoked token ends its sessions, sign-out clears the cookie;
 * GET /v1/jobs pages; GET /v1/events streams every job's changes.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteTokenStore } from '../../src/catalog/tokens.js';
import type { JobRecord } from '../../src/catalog/types.js';
import { Repository } from '../../src/repo/repository.js';
import { CairnApiError, CairnClient } from '../../src/sdk/index.js';
import { catalogFile, startServer, type RunningServer } from '../../src/server/index.js';
import { Job, JobList, SessionAnswer, SessionCreated } from '../../src/server/schemas.js';
import Database from '../../src/sources/sqlite/driver.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { readAnswer, waitJob, type Answer } from '../helpers/api.js';

let work: string;
let dataDir: string;
let server: RunningServer;
let tokens: { admin: string; operator: string; viewer: string };
let small: string;
/** The sessions' clock: moved by the tests. */
let clock = Date.parse('2026-06-01T08:00:00Z');
const HOUR = 3600_000;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'cairn-console-session-'));
  dataDir = join(work, 'data');
  const store = new SqliteTokenStore(catalogFile(dataDir));
  tokens = { admin: store.create('admin', 'root').token, operator: store.create('operator', 'ops').token, viewer: store.create('viewer', 'watcher').token };
  store.close();
  await Repository.init(new FileSystemStorage(join(work, 'repo')));
  small = join(work, 'small.db');
  const db = new Database(small);
  db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES ('a'), ('b');");
  db.close();
  server = await startServer({
    dataDir, port: 0, allowAdHocUrls: true, scheduleTickMs: 3600_000, console: false, eventsPingMs: 200,
    env: { BACKUP_FILESYSTEM_PATH: join(work, 'repo') },
    sessions: { now: () => new Date(clock) },
  });
});

afterAll(async () => {
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});

/** A raw request: `cookie` the session id, headers as given. */
async function call(method: string, path: string, options: { cookie?: string; headers?: Record<string, string>; body?: unknown } = {}): Promise<Answer & { headers: Headers }> {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: {
      ...(options.cookie ? { cookie: `cairn_session=${options.cookie}` } : {}),
      ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...options.headers,
    },
    ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
  });
  return { ...(await readAnswer(res)), headers: res.headers };
}

/** Signs in with a token: the cookie's value, its Set-Cookie line and the answer's session. */
async function signIn(token: string, headers: Record<string, string> = {}) {
  const a = await call('POST', '/v1/sessions', { body: { token }, headers });
  expect(a.status, a.text).toBe(201);
  const setCookie = a.headers.get('set-cookie') ?? '';
  const id = /^cairn_session=([^;]+)/.exec(setCookie)?.[1] ?? '';
  return { id, setCookie, session: SessionCreated.parse(a.json).session };
}

describe('sign in', () => {
  it('a token gets an HttpOnly SameSite=Strict cookie of 256 random bits, of which only a hash is kept', async () => {
    const { id, setCookie, session } = await signIn(tokens.viewer);
    expect(id).toMatch(/^[A-Za-z0-9_-]{43}$/); // 32 bytes, base64url
    const flags = setCookie.split(';').map((f) => f.trim()).slice(1);
    expect(flags.sort()).toEqual(['HttpOnly', 'Max-Age=28800', 'Path=/', 'SameSite=Strict']); // no Secure over http
    expect(session).toEqual({ role: 'viewer', tokenId: tokens.viewer.slice(6, 18), tokenName: 'watcher', expiresAt: new Date(clock + 8 * HOUR).toISOString(), csrfToken: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) });
    expect(session.csrfToken).not.toBe(id);
    // The cookie's value is in no file of the data folder (searched by another process: opening
    // the catalog here would drop the server's locks on it); its csrf token is.
    expect(spawnSync('grep', ['-rlF', '--', id, dataDir]).status).toBe(1);
    expect(spawnSync('grep', ['-rlF', '--', session.csrfToken ?? '', dataDir]).status).toBe(0);
    // The cookie authenticates, with the token's role.
    const me = await call('GET', '/v1/session', { cookie: id });
    expect(me.status).toBe(200);
    expect(SessionAnswer.parse(me.json)).toEqual({ session, via: 'cookie' });
    expect((await call('GET', '/v1/jobs', { cookie: id })).status).toBe(200);
    expect((await call('GET', '/v1/tokens', { cookie: id })).json.error.code).toBe('FORBIDDEN');
  });

  it('over https (X-Forwarded-Proto) the cookie is Secure too', async () => {
    const { setCookie } = await signIn(tokens.viewer, { 'x-forwarded-proto': 'https' });
    expect(setCookie).toMatch(/; Secure/);
  });

  it('every failure answers the same 401 and sets no cookie; a bearer token is told apart from a cookie', async () => {
    const wrongSecret = `${tokens.viewer.slice(0, 19)}${'A'.repeat(43)}`;
    const answers = await Promise.all(['nope', wrongSecret, `cairn_000000000000_${'A'.repeat(43)}`].map((token) => call('POST', '/v1/sessions', { body: { token } })));
    for (const a of answers) {
      expect(a.status).toBe(401);
      expect(a.json.error).toEqual(answers[0]?.json.error);
      expect(a.headers.get('set-cookie')).toBeNull();
    }
    expect(answers[0]?.json.error.code).toBe('UNAUTHORIZED');
    expect((await call('POST', '/v1/sessions', { body: {} })).status).toBe(400);
    const bearer = await call('GET', '/v1/session', { headers: { authorization: `Bearer ${tokens.operator}` } });
    expect(bearer.json).toEqual({ session: { role: 'operator', tokenId: tokens.operator.slice(6, 18), tokenName: 'ops', expiresAt: null }, via: 'bearer' });
    expect((await call('GET', '/v1/session')).status).toBe(401);
    expect((await call('GET', '/v1/jobs', { cookie: 'A'.repeat(43) })).json.error.code).toBe('SESSION_EXPIRED');
    // A wrong bearer token is 401 even with a good cookie: the header is judged alone.
    const { id } = await signIn(tokens.viewer);
    expect((await call('GET', '/v1/jobs', { cookie: id, headers: { authorization: 'Bearer nope' } })).status).toBe(401);
  });

  it('a sign-in posted from another origin is refused', async () => {
    const a = await call('POST', '/v1/sessions', { body: { token: tokens.admin }, headers: { origin: 'https://evil.example' } });
    expect([a.status, a.json.error.code]).toEqual([403, 'CSRF']);
    expect(a.headers.get('set-cookie')).toBeNull();
    await signIn(tokens.admin, { origin: server.url });
  });
});

describe('CSRF', () => {
  it('a cookie change needs the session\'s X-CSRF-Token and the server\'s own origin; a bearer token needs neither', async () => {
    const { id, session } = await signIn(tokens.admin);
    const csrf = session.csrfToken ?? '';
    const create = (headers: Record<string, string>) => call('POST', '/v1/tokens', { cookie: id, headers, body: { role: 'viewer', name: 'csrf-test' } });
    const oneOff = `${csrf.slice(0, -1)}${csrf.endsWith('A') ? 'B' : 'A'}`; // the right length, one character wrong
    const wrong: Record<string, string>[] = [{}, { 'x-csrf-token': 'guess' }, { 'x-csrf-token': oneOff }, { 'x-csrf-token': '' }];
    for (const headers of wrong) {
      const refused = await create(headers);
      expect([refused.status, refused.json.error.code]).toEqual([403, 'CSRF']);
      expect(refused.json.error.message).toMatch(/X-CSRF-Token: the console sends it; scripts use a bearer token/);
    }
    // Another origin is refused even with the right token; the own origin passes.
    const cross = await create({ 'x-csrf-token': csrf, origin: 'http://evil.example:8080' });
    expect([cross.status, cross.json.error.code]).toEqual([403, 'CSRF']);
    expect((await create({ 'x-csrf-token': csrf, origin: 'null' })).status).toBe(403);
    const made = await create({ 'x-csrf-token': csrf, origin: server.url });
    expect(made.status, made.text).toBe(201);
    expect((await create({ 'x-csrf-token': csrf })).status).toBe(201);
    // Behind a reverse proxy: the host it was reached at, as the proxy tells it.
    expect((await create({ 'x-csrf-token': csrf, origin: 'https://backups.example.com', 'x-forwarded-host': 'backups.example.com' })).status).toBe(201);
    expect((await create({ 'x-csrf-token': csrf, origin: 'https://evil.example', 'x-forwarded-host': 'backups.example.com' })).status).toBe(403);
    // Another session's csrf token does not fit this one.
    const other = await signIn(tokens.admin);
    expect((await create({ 'x-csrf-token': other.session.csrfToken ?? '' })).status).toBe(403);
    // GET needs none; a bearer change needs none.
    expect((await call('GET', '/v1/tokens', { cookie: id })).status).toBe(200);
    const bearer = await call('POST', '/v1/tokens', { headers: { authorization: `Bearer ${tokens.admin}` }, body: { role: 'viewer', name: 'bearer' } });
    expect(bearer.status).toBe(201);
  });

  it('roles stay the server\'s: a viewer\'s cookie with the right CSRF token still gets 403 FORBIDDEN', async () => {
    const { id, session } = await signIn(tokens.viewer);
    const a = await call('POST', '/v1/backups', { cookie: id, headers: { 'x-csrf-token': session.csrfToken ?? '' }, body: { source: `sqlite://${small}` } });
    expect([a.status, a.json.error.code]).toEqual([403, 'FORBIDDEN']);
  });
});

describe('session end', () => {
  it('1 h idle ends a session; each request slides it; 8 h after sign-in it ends whatever', async () => {
    const idle = await signIn(tokens.viewer);
    const busy = await signIn(tokens.viewer);
    for (let i = 1; i <= 9; i++) {
      clock += 50 * 60_000; // 50 min
      const a = await call('GET', '/v1/session', { cookie: busy.id });
      if (i * 50 < 8 * 60) expect(a.status, `after ${i * 50} min`).toBe(200);
      else {
        expect([a.status, a.json.error.code]).toEqual([401, 'SESSION_EXPIRED']);
        expect(a.json.error.message).toMatch(/sign in again/);
      }
    }
    const gone = await call('GET', '/v1/session', { cookie: idle.id });
    expect([gone.status, gone.json.error.code]).toEqual([401, 'SESSION_EXPIRED']);
    const fresh = await signIn(tokens.viewer);
    clock += HOUR - 1000;
    expect((await call('GET', '/v1/session', { cookie: fresh.id })).status).toBe(200);
    clock += HOUR;
    expect((await call('GET', '/v1/session', { cookie: fresh.id })).status).toBe(401);
  });

  it('revoking the token ends its sessions at once', async () => {
    const admin = new CairnClient({ url: server.url, token: tokens.admin });
    const { secret, token } = await admin.tokens.create({ role: 'operator', name: 'short-lived' });
    const { id } = await signIn(secret);
    expect((await call('GET', '/v1/session', { cookie: id })).json.session.role).toBe('operator');
    await admin.tokens.revoke(token.id);
    const a = await call('GET', '/v1/session', { cookie: id });
    expect([a.status, a.json.error.code]).toEqual([401, 'SESSION_EXPIRED']);
  });

  it('sign out needs the CSRF token, ends the session and clears the cookie', async () => {
    const { id, session } = await signIn(tokens.operator);
    const refused = await call('DELETE', '/v1/session', { cookie: id });
    expect([refused.status, refused.json.error.code]).toEqual([403, 'CSRF']);
    const out = await call('DELETE', '/v1/session', { cookie: id, headers: { 'x-csrf-token': session.csrfToken ?? '' } });
    expect(out.status).toBe(200);
    expect(out.json).toEqual({ signedOut: true });
    expect(out.headers.get('set-cookie')).toMatch(/^cairn_session=; Max-Age=0; Path=\/; HttpOnly; SameSite=Strict/);
    expect((await call('GET', '/v1/session', { cookie: id })).json.error.code).toBe('SESSION_EXPIRED');
    // Signing out of an ended session (or none) still clears the cookie.
    const again = await call('DELETE', '/v1/session', { cookie: id });
    expect([again.status, again.headers.get('set-cookie')]).toEqual([200, expect.stringMatching(/Max-Age=0/)]);
  });
});

describe('SDK sessions', () => {
  it('session.create remembers the CSRF token and sends it; get and delete', async () => {
    // A cookie jar of one cookie: fetch in Node keeps none, a browser does this itself.
    let jar = '';
    const seen: Headers[] = [];
    const browserLike: typeof fetch = async (input, init) => {
      const headers = new Headers(init?.headers);
      if (jar) headers.set('cookie', jar);
      seen.push(headers);
      const res = await fetch(input, { ...init, headers });
      const set = res.headers.get('set-cookie');
      if (set) jar = /Max-Age=0/.test(set) ? '' : (set.split(';')[0] ?? '');
      return res;
    };
    const client = new CairnClient({ url: server.url, fetch: browserLike });
    const session = await client.session.create({ token: tokens.operator });
    expect(session.role).toBe('operator');
    expect(jar).toMatch(/^cairn_session=/);
    expect((await client.session.get()).via).toBe('cookie');
    const job = await client.backups.create({ source: `sqlite://${small}` });
    expect(seen.at(-1)?.get('x-csrf-token')).toBe(session.csrfToken);
    expect(seen.at(-1)?.get('authorization')).toBeNull();
    expect((await waitJob(server.url, tokens.viewer, job.id)).state).toBe('SUCCESS');
    // Without the token set, the change is refused.
    client.setCsrfToken(undefined);
    const refused = await client.backups.create({ source: `sqlite://${small}` }).catch((e: unknown) => e as CairnApiError);
    expect([refused instanceof CairnApiError && refused.status, (refused as CairnApiError).code]).toEqual([403, 'CSRF']);
    client.setCsrfToken(session.csrfToken);
    expect(await client.session.delete()).toEqual({ signedOut: true });
    expect(jar).toBe('');
    expect((await client.session.get().catch((e: unknown) => e as CairnApiError)) as CairnApiError).toMatchObject({ status: 401 });
  });
});

describe('job paging and the global event stream', () => {
  it('GET /v1/jobs pages newest first with total; bad limit/offset are 400', async () => {
    const viewer = new CairnClient({ url: server.url, token: tokens.viewer });
    const operator = new CairnClient({ url: server.url, token: tokens.operator });
    for (let i = 0; i < 3; i++) await operator.backups.create({ source: `sqlite://${small}` }, { waitForCompletion: true, pollMs: 20 });
    const all = JobList.parse(await viewer.jobs.page({ kind: 'backup' }));
    expect(all.limit).toBe(100);
    expect(all.offset).toBe(0);
    expect(all.total).toBe(all.jobs.length);
    expect(all.total).toBeGreaterThanOrEqual(4);
    const created = all.jobs.map((j) => j.createdAt);
    expect([...created].sort().reverse()).toEqual(created);
    const pages: string[] = [];
    for (let offset = 0; offset < all.total; offset += 2) {
      const page = await viewer.jobs.page({ kind: 'backup', limit: 2, offset });
      expect(page.total).toBe(all.total);
      expect(page.jobs.length).toBe(Math.min(2, all.total - offset));
      pages.push(...page.jobs.map((j) => j.id));
    }
    expect(pages).toEqual(all.jobs.map((j) => j.id));
    expect((await viewer.jobs.page({ kind: 'restore' })).total).toBe(0);
    expect(await viewer.jobs.list({ limit: 1 })).toHaveLength(1);
    for (const q of ['limit=0', 'limit=1001', 'offset=-1', 'limit=abc', 'offset=1.5']) {
      const a = await call('GET', `/v1/jobs?${q}`, { headers: { authorization: `Bearer ${tokens.viewer}` } });
      expect([a.status, a.json.error.message], q).toEqual([400, expect.stringMatching(/(limit|offset) is a whole number/)]);
    }
  });

  it('GET /v1/events (cookie) streams every job\'s changes, start to end, with pings; it ends when the session does', async () => {
    const { id } = await signIn(tokens.viewer);
    const abort = new AbortController();
    const res = await fetch(`${server.url}/v1/events`, { headers: { cookie: `cairn_session=${id}` }, signal: abort.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = '';
    const events: JobRecord[] = [];
    /** Reads until `done` holds of what came (false when the stream ended first). */
    const readUntil = async (done: () => boolean): Promise<boolean> => {
      while (!done()) {
        const { value, done: ended } = await reader.read();
        if (ended) return false;
        text += decoder.decode(value, { stream: true });
        for (let end = text.indexOf('\n\n'); end >= 0; end = text.indexOf('\n\n')) {
          const block = text.slice(0, end);
          text = text.slice(end + 2);
          if (block.startsWith('event: job\n')) events.push(Job.parse(JSON.parse(block.slice('event: job\ndata: '.length))) as JobRecord);
          if (block === ': ping') pings++;
        }
      }
      return true;
    };
    let pings = 0;
    await readUntil(() => pings >= 1);
    // Two jobs of different kinds, started by bearer tokens, while the stream is open.
    const operator = new CairnClient({ url: server.url, token: tokens.operator });
    const backup = await operator.backups.create({ source: `sqlite://${small}` });
    const verify = await operator.verifications.create({});
    expect(await readUntil(() => [backup.id, verify.id].every((j) => events.some((e) => e.id === j && e.state === 'SUCCESS')))).toBe(true);
    for (const job of [backup, verify]) {
      const mine = events.filter((e) => e.id === job.id).map((e) => e.state);
      expect(mine[0], job.id).toBe('STARTED');
      expect(mine.at(-1)).toBe('SUCCESS');
    }
    expect(events.find((e) => e.id === backup.id && e.state === 'SUCCESS')).toEqual(await operator.jobs.get(backup.id));
    // The pings do not keep the session alive: with no other request for an hour it ends (idle),
    // and the stream ends at its next ping.
    const pingsBefore = pings;
    clock += HOUR - 5000;
    await readUntil(() => pings >= pingsBefore + 2);
    clock += 5000;
    expect(await readUntil(() => false)).toBe(false);
    abort.abort();
  });

  it('GET /v1/events needs a token or a session; jobs.watchAll reads it', async () => {
    expect((await call('GET', '/v1/events')).status).toBe(401);
    const viewer = new CairnClient({ url: server.url, token: tokens.viewer });
    const operator = new CairnClient({ url: server.url, token: tokens.operator });
    const abort = new AbortController();
    const seen: JobRecord[] = [];
    let done = false;
    const reading = (async () => {
      for await (const job of viewer.jobs.watchAll({ signal: abort.signal })) {
        seen.push(job);
        if (job.kind === 'backup' && job.state === 'SUCCESS') break;
      }
      done = true;
    })();
    // The stream may connect after a first backup has ended: back up until it has seen one end.
    const started: string[] = [];
    while (!done && started.length < 20) started.push((await operator.backups.create({ source: `sqlite://${small}` }, { waitForCompletion: true, pollMs: 20 })).id);
    await reading;
    const ended = seen.find((j) => j.state === 'SUCCESS');
    expect(started).toContain(ended?.id);
  });
});

describe('a token revoked through the API ends its open event streams at once, not at the next ping', () => {
  it('GET /v1/events (bearer, and a cookie session of that token) ends when the admin revokes the token, with an hour-long ping', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-events-revoke-'));
    const store = new SqliteTokenStore(catalogFile(join(dir, 'data')));
    const admin = store.create('admin', 'root').token;
    const doomed = store.create('viewer', 'doomed');
    store.close();
    const slow = await startServer({ dataDir: join(dir, 'data'), port: 0, scheduleTickMs: 3600_000, console: false, eventsPingMs: HOUR });
    try {
      const signedIn = await fetch(`${slow.url}/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: doomed.token }) });
      expect(signedIn.status).toBe(201);
      const cookie = /cairn_session=([^;]+)/.exec(signedIn.headers.get('set-cookie') ?? '')?.[1];
      expect(cookie).toBeDefined();
      const open = async (headers: Record<string, string>) => {
        const res = await fetch(`${slow.url}/v1/events`, { headers });
        expect(res.status).toBe(200);
        const reader = (res.body as ReadableStream<Uint8Array>).getReader();
        await reader.read(); // ": connected"
        return reader;
      };
      const streams = [await open({ authorization: `Bearer ${doomed.token}` }), await open({ cookie: `cairn_session=${cookie}` })];
      const ended = streams.map(async (reader) => {
        for (;;) if ((await reader.read()).done) return true;
      });
      const revoked = await fetch(`${slow.url}/v1/tokens/${doomed.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${admin}` } });
      expect(revoked.status).toBe(200);
      // An hour-long ping: only the revocation can end them within the test's time.
      expect(await Promise.all(ended)).toEqual([true, true]);
    } finally {
      await slow.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 20_000);
});

