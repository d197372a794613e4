/**
 * The server's own failures are logged, never swallowed: a 500 goes to the log with the error
 * and the request (secrets scrubbed), the client gets a generic message.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteJobCatalog } from '../../src/catalog/sqlite.js';
import { SqliteRegistry } from '../../src/catalog/registry.js';
import { newScheduleId, SqliteScheduleStore } from '../../src/catalog/schedules.js';
import { SqliteTokenStore } from '../../src/catalog/tokens.js';
import { JobCenter } from '../../src/jobs/job-center.js';
import { Scheduler } from '../../src/jobs/scheduler.js';
import { createApp } from '../../src/server/app.js';
import { AccessPolicy } from '../../src/server/access.js';
import { scrubSecrets } from '../../src/server/redact.js';

const dir = mkdtempSync(join(tmpdir(), 'cairn-srv-err-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('server errors', () => {
  it('a 500 is logged to the error log with the route and the error, without secrets; the answer stays generic', async () => {
    const file = join(dir, 'catalog.db');
    const tokens = new SqliteTokenStore(file);
    const token = tokens.create('operator').token;
    const schedules = new SqliteScheduleStore(file);
    schedules.add({ id: newScheduleId(), name: 'nightly', source: 'sqlite:///x.db', repository: '/r', cron: '@daily', timezone: 'UTC', pattern: '{source}-{yyyyMMdd-HHmmss}', retention: {}, enabled: true, createdAt: new Date().toISOString() });
    const center = new JobCenter(new SqliteJobCatalog(file));
    // A launcher failing the way a driver does: a plain Error quoting the URL it was given.
    const scheduler = new Scheduler(schedules, {
      now: () => new Date(),
      launch: async () => {
        throw new TypeError('connect ECONNREFUSED while opening postgres://app:Sup3r-Secret@db.internal:5432/shop?password=Other-Secret');
      },
    });
    const lines: string[] = [];
    const registry = new SqliteRegistry(file);
    const app = createApp({ center, tokens, registry, schedules, scheduler, access: new AccessPolicy({ dataDir: dir, registry }), log: (l) => lines.push(l) });
    const res = await app.request('/v1/schedules/nightly/run', { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(500);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error).toEqual({ code: 'INTERNAL', message: 'Internal error; the server log has the details.' });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/POST \/v1\/schedules\/nightly\/run answered 500: TypeError: connect ECONNREFUSED while opening postgres:\/\/app:\*\*\*@db\.internal:5432\/shop/);
    expect(lines[0]).toMatch(/at .*scheduler/); // the stack, to find where
    expect(lines[0]).not.toContain('Sup3r-Secret');
    expect(lines[0]).not.toContain('Other-Secret');
    // a CairnError is an answer, not a server fault: nothing logged
    expect((await app.request('/v1/schedules/nope/run', { method: 'POST', headers: { authorization: `Bearer ${token}` } })).status).toBe(404);
    expect(lines).toHaveLength(1);
    tokens.close();
    registry.close();
    schedules.close();
  });

  it('scrubs passwords in URLs, secret parameters, bearer and cairn tokens', () => {
    expect(scrubSecrets('postgres://u:p%40ss@h/db and s3://AKIA:wJalr/x@bucket')).toBe('postgres://u:***@h/db and s3://AKIA:***@bucket');
    expect(scrubSecrets('mysql://root:pw@h:3306/x?sslmode=require&password=abc&token=t1')).toBe('mysql://root:***@h:3306/x?sslmode=require&password=***&token=***');
    expect(scrubSecrets('PGPASSWORD=hunter2 accountKey: "k==" X-Amz-Signature=abcd')).toBe('PGPASSWORD=*** accountKey: *** X-Amz-Signature=***');
    expect(scrubSecrets('Authorization: Bearer cairn_0123456789ab_SECRETSECRET')).toBe('Authorization: Bearer ***');
    expect(scrubSecrets('token cairn_0123456789ab_SECRETSECRET leaked')).toBe('token cairn_0123456789ab_*** leaked');
    expect(scrubSecrets('sqlite:///var/lib/app.db is fine')).toBe('sqlite:///var/lib/app.db is fine');
  });
});
