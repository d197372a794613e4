/**
 * Issue 17: "schedules, retention, copy, verify, server jobs, SDK: all work for the new engine
 * unchanged". A real `cairn server` (in process) and the TypeScript SDK against MariaDB: a
 * backup job, a schedule run twice with keep-last 1 (retention deletes the older backup) and a
 * copy to a second repository, verify with --read-data of both, and a restore job whose result
 * equals the source (schema dump and checksums).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteTokenStore } from '../../src/catalog/tokens.js';
import { Repository } from '../../src/repo/repository.js';
import { catalogFile, startServer, type RunningServer } from '../../src/server/index.js';
import { CairnClient } from '../../src/sdk/index.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { dropDatabase, ensureMysql, myUrl, snapshotOf, sql } from '../helpers/mysql.js';

ensureMysql();
const DB = `cairn_srv_${process.pid}`;
const COPY = `${DB}_r`;
let work: string;
let server: RunningServer;
let client: CairnClient;
let repo: string;
let second: string;

beforeAll(async () => {
  await dropDatabase(DB);
  await sql('', `CREATE DATABASE \`${DB}\``);
  await sql(
    DB,
    `CREATE TABLE customers (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(40) CHARACTER SET utf8mb4, since DATETIME(3));
     INSERT INTO customers (name, since) VALUES ('Zoë', '2026-01-02 03:04:05.678'), ('李', '0000-00-00 00:00:00'), (NULL, NULL);
     CREATE TABLE orders (id INT PRIMARY KEY, customer INT, total DECIMAL(12,2), FOREIGN KEY (customer) REFERENCES customers (id));
     INSERT INTO orders VALUES (1, 1, 10.50), (2, 2, 99999999.99);
     CREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 100;`,
  );
  work = mkdtempSync(join(tmpdir(), 'cairn-mysrv-'));
  const dataDir = join(work, 'data');
  const store = new SqliteTokenStore(catalogFile(dataDir));
  const token = store.create('operator').token;
  store.close();
  repo = join(work, 'repo');
  second = join(work, 'second');
  await Repository.init(new FileSystemStorage(repo));
  await Repository.init(new FileSystemStorage(second));
  server = await startServer({ dataDir, port: 0, allowAdHocUrls: true, scheduleTickMs: 3600_000, env: {} });
  client = new CairnClient({ url: server.url, token });
});

afterAll(async () => {
  await server?.close();
  await dropDatabase(DB);
  await dropDatabase(COPY);
  rmSync(work, { recursive: true, force: true });
});

describe('MySQL through the server and the SDK', () => {
  it('runs a backup job, a schedule with retention and a copy, verifies both repositories, and restores exactly', async () => {
    const source = myUrl(DB);
    const job = await client.backups.create({ source, repository: repo, id: 'srv-manual' }, { waitForCompletion: true });
    expect(job.state).toBe('SUCCESS');

    await client.schedules.create({ name: `mysql-${process.pid}`, source, repository: repo, cron: '0 3 * * *', keepLast: 1, copyTo: second });
    const first = await client.schedules.runNow(`mysql-${process.pid}`, { waitForCompletion: true });
    expect(first.state).toBe('SUCCESS');
    await sql(DB, `INSERT INTO orders VALUES (3, 3, 5.00)`);
    const again = await client.schedules.runNow(`mysql-${process.pid}`, { waitForCompletion: true });
    expect(again.state).toBe('SUCCESS');

    // keep-last 1 kept the schedule's newest backup only; the manual one is not the schedule's.
    const listed = (await Repository.open(new FileSystemStorage(repo)).then((r) => r.listManifests())).map((m) => m.id);
    const scheduled = listed.filter((id) => id !== 'srv-manual');
    expect(listed).toContain('srv-manual');
    expect(scheduled).toHaveLength(1);
    const copied = (await Repository.open(new FileSystemStorage(second)).then((r) => r.listManifests())).map((m) => m.id);
    expect(copied).toContain(scheduled[0]);

    for (const repository of [repo, second]) {
      const verified = await client.verifications.create({ repository, readData: true }, { waitForCompletion: true });
      expect(verified.state).toBe('SUCCESS');
    }

    const restored = await client.restores.create({ backup: scheduled[0]!, repository: second, target: myUrl(COPY) }, { waitForCompletion: true });
    expect(restored.state).toBe('SUCCESS');
    expect(await snapshotOf(COPY)).toEqual(await snapshotOf(DB));
  });
});
