/**
 * The SDK's option-object forms refuse the old positional repository. backups.get / delete /
 * setExpiry took the repository as a string before; a JavaScript caller still passing one must
 * get a TypeError naming the new form, and no request may reach the server — else the call acts
 * on the DEFAULT repository (a delete in the wrong repository). Against a real server with two
 * repositories holding a backup of the same id; a fetch wrapper records what was sent.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SqliteTokenStore } from '../../src/catalog/tokens.js';
import { Repository } from '../../src/repo/repository.js';
import { CairnClient } from '../../src/sdk/index.js';
import { catalogFile, startServer, type RunningServer } from '../../src/server/index.js';
import Database from '../../src/sources/sqlite/driver.js';
import { FileSystemStorage } from '../../src/storage/fs.js';

let work: string;
let server: RunningServer;
let token: string;
let sent: string[] = [];
let client: CairnClient;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'cairn-sdkopt-'));
  const dataDir = join(work, 'data');
  const store = new SqliteTokenStore(catalogFile(dataDir));
  token = store.create('admin', 'first').token;
  store.close();
  for (const r of ['default-repo', 'offsite']) await Repository.init(new FileSystemStorage(join(work, r)));
  const db = new Database(join(work, 'small.db'));
  db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES ('a');");
  db.close();
  server = await startServer({ dataDir, port: 0, scheduleTickMs: 3600_000, env: { BACKUP_FILESYSTEM_PATH: join(work, 'default-repo') } });
  const setup = new CairnClient({ url: server.url, token });
  await setup.sources.add('small', `sqlite://${join(work, 'small.db')}`);
  await setup.repositories.add('offsite', join(work, 'offsite'));
  // The same id in both repositories: a call that lands in the wrong one finds a backup there.
  for (const repository of [undefined, 'offsite']) {
    await setup.backups.create({ source: 'small', id: 'b1', ...(repository ? { repository } : {}) }, { waitForCompletion: true, pollMs: 25 });
  }
  const recording: typeof fetch = (input, init) => {
    sent.push(`${(init?.method ?? 'GET').toUpperCase()} ${new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url).pathname}`);
    return fetch(input, init);
  };
  client = new CairnClient({ url: server.url, token, fetch: recording });
}, 60_000);

afterAll(async () => {
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});

beforeEach(() => {
  sent = [];
});

/** Whether each repository (default, offsite) still lists backup b1, asked by a client that is not recorded. */
async function held(): Promise<[boolean, boolean]> {
  const c = new CairnClient({ url: server.url, token });
  const has = async (repository?: string): Promise<boolean> => (await c.backups.list(repository ? { repository } : {})).some((b) => b.id === 'b1');
  return [await has(), await has('offsite')];
}

describe('SDK: the old positional repository is refused', () => {
  it('both repositories hold b1 at the start, and the recorder sees requests', async () => {
    expect(await held()).toEqual([true, true]);
    expect((await client.backups.get('b1', { repository: 'offsite' })).id).toBe('b1');
    expect(sent).toEqual(['GET /v1/backups/b1']); // the recorder sees requests
  });

  it("backups.delete(id, 'offsite'): TypeError naming the new form, no DELETE sent, both backups kept", async () => {
    const call = client.backups.delete('b1', 'offsite' as never);
    await expect(call).rejects.toThrow(TypeError);
    await expect(call).rejects.toThrow(`backups.delete(id, { repository: "offsite" })`);
    expect(sent).toEqual([]);
    expect(await held()).toEqual([true, true]);
  });

  it("backups.get(id, 'offsite') and setExpiry(id, expires, 'offsite'): TypeError, no request", async () => {
    await expect(client.backups.get('b1', 'offsite' as never)).rejects.toThrow(`backups.get(id, { repository: "offsite" })`);
    await expect(client.backups.setExpiry('b1', '1d', 'offsite' as never)).rejects.toThrow(`backups.setExpiry(id, expires, { repository: "offsite" })`);
    await expect(client.stats.get('offsite' as never)).rejects.toThrow(`stats.get({ repository: "offsite" })`);
    expect(sent).toEqual([]);
    const kept = await client.backups.get('b1');
    expect('expiresAt' in kept ? kept.expiresAt : undefined).toBeNull(); // the default one's expiry untouched
  });

  it('other non-objects, unknown keys and a non-string repository are refused too; no request', async () => {
    for (const bad of [null, 42, ['offsite'], { repo: 'offsite' }, { repository: 7 }]) {
      await expect(client.backups.delete('b1', bad as never), JSON.stringify(bad)).rejects.toThrow(TypeError);
    }
    expect(sent).toEqual([]);
    expect(await held()).toEqual([true, true]);
  });

  it('the option object and a left-out option still work', async () => {
    await client.backups.setExpiry('b1', 'never', { repository: 'offsite' });
    await client.backups.delete('b1', { repository: 'offsite' });
    expect(await held()).toEqual([true, false]);
    await client.backups.delete('b1');
    expect(await held()).toEqual([false, false]);
    expect(sent).toEqual(['PATCH /v1/backups/b1', 'DELETE /v1/backups/b1', 'DELETE /v1/backups/b1']);
  });
});
