/**
 * PostgreSQL URLs as libpq reads them, and as errors show them (issue 12, items 4 and 8):
 *   - user information with an empty host (`postgres://u:p@/db?host=/var/run/postgresql`) is a
 *     valid libpq URL: accepted, and it connects through the Unix socket;
 *   - an invalid URL's error says why when a raw "/", "?", "#" or "@" in the password is the
 *     likely reason, never showing the password;
 *   - the server's answer keeps the usage hint (`postgres://user[:password]@host[:port]/dbname`)
 *     as written while still scrubbing real passwords.
 * Every URL below is a hostile (or odd) input; the total is printed (HOSTILE INPUTS TRIED).
 */
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteJobCatalog } from '../../src/catalog/sqlite.js';
import { SqliteRegistry } from '../../src/catalog/registry.js';
import { SqliteScheduleStore } from '../../src/catalog/schedules.js';
import { SqliteTokenStore } from '../../src/catalog/tokens.js';
import { JobCenter } from '../../src/jobs/job-center.js';
import { Scheduler } from '../../src/jobs/scheduler.js';
import { createApp } from '../../src/server/app.js';
import { AccessPolicy } from '../../src/server/access.js';
import { answerMessage, scrubSecrets } from '../../src/server/redact.js';
import { connect, parsePostgresUrl, POSTGRES_URL_FORMS } from '../../src/sources/postgres/connection.js';
import { processContext } from '../../src/sources/postgres/conninfo.js';
import { ensurePostgres } from '../helpers/postgres.js';

const tried: Record<string, number> = {};
const count = (what: string, n = 1): void => void (tried[what] = (tried[what] ?? 0) + n);
const work = fs.mkdtempSync(path.join(tmpdir(), 'cairn-pg-url-'));
const SOCKET_DIR = '/var/run/postgresql';

afterAll(() => {
  fs.rmSync(work, { recursive: true, force: true });
  const total = Object.values(tried).reduce((a, b) => a + b, 0);
  console.log(`HOSTILE INPUTS TRIED (test/security/pg-url.test.ts): ${total} — ${JSON.stringify(tried)}`);
});

describe('user information with an empty host (libpq-valid)', () => {
  const cases: [string, { host: string; port: number; user: string; password: string | undefined; database: string }][] = [
    ['postgres://u:p@/db?host=/var/run/postgresql', { host: '/var/run/postgresql', port: 5432, user: 'u', password: 'p', database: 'db' }],
    ['postgresql://u:p@/db?host=%2Fvar%2Frun%2Fpostgresql&port=5433', { host: '/var/run/postgresql', port: 5433, user: 'u', password: 'p', database: 'db' }],
    // No host, no PGHOST: libpq's default, the Unix socket in /var/run/postgresql (issue 16).
    ['postgres://u@:5433/db', { host: '/var/run/postgresql', port: 5433, user: 'u', password: undefined, database: 'db' }],
    ['postgres://u:p@/db', { host: '/var/run/postgresql', port: 5432, user: 'u', password: 'p', database: 'db' }],
    ['POSTGRES://u:p%2Fq@/db?host=/tmp', { host: '/tmp', port: 5432, user: 'u', password: 'p/q', database: 'db' }],
    ['postgres://u:p@q@/db?host=/tmp', { host: '/tmp', port: 5432, user: 'u', password: 'p@q', database: 'db' }],
  ];
  for (const [url, want] of cases) {
    it(url, () => {
      count('empty host: parsed');
      const s = parsePostgresUrl(url, {}, { ...processContext, env: {} });
      expect({ host: s.host, port: s.port, user: s.user, password: s.password, database: s.database }).toEqual(want);
      // The stand-in host used for parsing never comes out.
      expect(JSON.stringify(s)).not.toContain('invalid');
    });
  }

  it('a host both in the URL and given as ?host= is the parameter, as libpq reads it', () => {
    count('empty host: both', 1);
    expect(parsePostgresUrl('postgres://u:p@h/db?host=/tmp').host).toBe('/tmp');
  });

  it('connects through the Unix socket', async () => {
    ensurePostgres();
    count('empty host: connect');
    const s = parsePostgresUrl(`postgres://postgres:not-needed@/postgres?host=${encodeURIComponent(SOCKET_DIR)}`);
    const client = await connect(s);
    try {
      // A Unix-socket connection has no server address.
      const row = (await client.query('SELECT inet_server_addr() AS addr, current_user AS who')).rows[0] as { addr: string | null; who: string };
      expect(row).toEqual({ addr: null, who: 'postgres' });
    } finally {
      await client.end();
    }
  });
});

const SECRET = 'Zq9-Pw';
/** Passwords with a raw character that breaks the URL: the hint names the kind, not the password. */
const BROKEN: string[] = [
  `postgres://app:${SECRET}/x@db.internal:5432/shop`,
  `postgres://app:${SECRET}?x@db.internal:5432/shop`,
  `postgres://app:${SECRET}#x@db.internal:5432/shop`,
  `postgres://app:12/${SECRET}@db.internal/shop`,
  `postgresql://app:${SECRET}/@/shop?host=/tmp`,
  `postgres://app:/${SECRET}@h/shop`,
];

describe('an invalid URL says why', () => {
  for (const url of BROKEN) {
    it(url.replace(SECRET, '<secret>'), () => {
      count('raw character in the password');
      let message = '';
      try {
        parsePostgresUrl(url);
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).toMatch(/raw \/, \?, # or @, percent-encode it in the URL \(%2F, %3F, %23, %40\)/);
      expect(message).toContain(POSTGRES_URL_FORMS);
      expect(message).not.toContain(SECRET);
      expect(answerMessage(message, [url])).not.toContain(SECRET);
      expect(answerMessage(message, [url])).toContain(POSTGRES_URL_FORMS);
    });
  }

  it('a URL with one slash or none after the scheme: the error never shows its password', () => {
    for (const url of [`postgres:/u:${SECRET}@h/db`, `postgres:u:${SECRET}@h/db`, `postgresql:u:${SECRET}@h:5432/db`]) {
      count('malformed scheme part');
      let message = '';
      try {
        parsePostgresUrl(url);
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).not.toBe('');
      expect(message).not.toContain(SECRET);
      expect(answerMessage(message, [url])).not.toContain(SECRET);
    }
  });

  it('no password hint when the password is not the likely reason', () => {
    count('no hint');
    expect(() => parsePostgresUrl('postgres://app@db:99999/shop')).toThrow(/^(?!.*percent-encode).*$/s);
    expect(() => parsePostgresUrl('postgres://app@db:99999/shop')).toThrow(/port/);
  });
});

describe('the usage hint survives redaction; passwords do not', () => {
  const texts: [string, string[]][] = [
    [`Invalid PostgreSQL URL "x": write ${POSTGRES_URL_FORMS}.`, []],
    [`write ${POSTGRES_URL_FORMS}`, []],
    [`${POSTGRES_URL_FORMS}, or a name`, []],
    // Glued to something else it is not the hint: scrubbed as any URL would be.
    [`postgres://app:Glued-Secret${POSTGRES_URL_FORMS}`, ['Glued-Secret']],
    [`postgres://app:Glued-Secret"${POSTGRES_URL_FORMS}`, ['Glued-Secret']],
    [`postgres://app:Sp-Secret@h/db and write ${POSTGRES_URL_FORMS}.`, ['Sp-Secret']],
    [`password=Kv-Secret write ${POSTGRES_URL_FORMS}.`, ['Kv-Secret']],
  ];
  for (const [text, secrets] of texts) {
    it(text.slice(0, 60), () => {
      count('scrubSecrets with a usage form');
      const out = scrubSecrets(text);
      for (const s of secrets) expect(out).not.toContain(s);
      if (secrets.length === 0) expect(out).toBe(text);
    });
  }

  it("the server's answer to an invalid URL carries the hint as written, and no password", async () => {
    const file = path.join(work, 'catalog.db');
    const tokens = new SqliteTokenStore(file);
    const admin = tokens.create('admin').token;
    const registry = new SqliteRegistry(file);
    const schedules = new SqliteScheduleStore(file);
    const center = new JobCenter(new SqliteJobCatalog(file));
    const scheduler = new Scheduler(schedules, { now: () => new Date(), launch: async () => ({ jobId: 'x', done: Promise.reject(new Error('unused')) }) });
    const app = createApp({ center, tokens, registry, schedules, scheduler, access: new AccessPolicy({ dataDir: work, registry }), log: () => undefined });
    for (const url of BROKEN) {
      count('server: invalid URL registered');
      const res = await app.request('/v1/sources', {
        method: 'POST',
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'broken', url }),
      });
      const text = await res.text();
      expect(res.status, text).toBe(400);
      expect(text).toContain(POSTGRES_URL_FORMS);
      expect(text).toContain('percent-encode');
      expect(text).not.toContain(SECRET);
    }
  });
});
