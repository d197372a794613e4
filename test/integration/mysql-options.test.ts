/**
 * The MySQL/MariaDB options around the engine, end to end: `backup create --lock-nontransactional`
 * (CLI) and `lockNonTransactional` (API) are accepted, recorded in the job's params and, for
 * engines without non-transactional tables (SQLite here), change nothing; a MySQL URL sent ad
 * hoc to the server is resolved untrusted (no socket, no option file, host and user required:
 * 400 before any job). What the option does to a MySQL backup is the source's (todo below).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteTokenStore } from '../../src/catalog/tokens.js';
import { Repository } from '../../src/repo/repository.js';
import { CairnClient } from '../../src/sdk/index.js';
import { catalogFile, startServer, type RunningServer } from '../../src/server/index.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { connect, parseMysqlUrl, readOptionFiles, SYSTEM_OPTION_FILES } from '../../src/sources/mysql/connection.js';
import { waitJob } from '../helpers/api.js';
import { ensureMysql } from '../helpers/mysql.js';
import { CHINOOK, cairn, cairnJson } from '../helpers/cli.js';

let work: string;
let server: RunningServer;
let client: CairnClient;
let token: string;
let repoN = 0;

async function newRepo(): Promise<string> {
  const dir = join(work, `repo-${++repoN}`);
  await Repository.init(new FileSystemStorage(dir));
  return dir;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), `cairn-myopt-${process.pid}-`));
  const dataDir = join(work, 'data');
  const store = new SqliteTokenStore(catalogFile(dataDir));
  token = store.create('operator').token;
  store.close();
  server = await startServer({ dataDir, port: 0, allowAdHocUrls: true });
  client = new CairnClient({ url: server.url, token });
});

afterAll(async () => {
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('--lock-nontransactional / lockNonTransactional', () => {
  it('the CLI documents it in --help as MySQL/MariaDB only', () => {
    const r = cairn(['backup', 'create', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout.replace(/\s+/g, ' ')).toMatch(/--lock-nontransactional MySQL\/MariaDB only: hold the global read lock until the non-transactional tables/);
  });

  it('the CLI accepts it; a SQLite backup (no non-transactional tables) is the same as without it', async () => {
    const repo = await newRepo();
    const m = cairnJson<{ totals: { rows: number }; warnings?: string[] }>(['backup', 'create', '--source', `sqlite://${CHINOOK}`, '--repo', repo, '--lock-nontransactional']);
    const plain = cairnJson<{ totals: { rows: number } }>(['backup', 'create', '--source', `sqlite://${CHINOOK}`, '--repo', repo]);
    expect(m.totals.rows).toBeGreaterThan(0);
    expect(m.totals.rows).toBe(plain.totals.rows);
  });

  it('the API takes it, records it in the job params, and the job succeeds', async () => {
    const repo = await newRepo();
    const started = await client.backups.create({ source: `sqlite://${CHINOOK}`, repository: repo, lockNonTransactional: true });
    const job = await waitJob(server.url, token, started.id);
    expect(job.state).toBe('SUCCESS');
    expect(job.params.lockNonTransactional).toBe(true);
  });

  it('the API refuses a non-boolean (400 naming the field)', async () => {
    const res = await fetch(`${server.url}/v1/backups`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ source: `sqlite://${CHINOOK}`, repository: await newRepo(), lockNonTransactional: 'yes' }),
    });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain('lockNonTransactional');
  });

  it.todo('MySQL: with a MyISAM table written during the backup, --lock-nontransactional keeps it consistent and gives no warning (needs the source body, src/sources/mysql/source.ts)');
});

describe('a MySQL URL sent ad hoc to the server is untrusted', () => {
  it.each([
    ['a Unix socket', 'mysql://root@localhost/shop?socket=/run/mysqld/mysqld.sock', /names a Unix socket \(socket=\)/],
    ['no user', 'mysql://127.0.0.1:3306/shop', /names no user/],
    ['no host', 'mysql:///shop', /names no host/],
  ])('%s: 400 before any job, saying what the URL must name', async (_what, source, re) => {
    const res = await fetch(`${server.url}/v1/backups`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ source, repository: await newRepo() }),
    });
    expect(res.status).toBe(400);
    const text = await res.text();
    expect(text).toMatch(re);
    expect(text).toMatch(/nothing of the server's own settings/);
  });

  it('a URL without a database: 400 naming the form', async () => {
    const res = await fetch(`${server.url}/v1/backups`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ source: 'mysql://root:Secret-9@127.0.0.1:3306', repository: await newRepo() }),
    });
    expect(res.status).toBe(400);
    const text = await res.text();
    expect(text).toContain('names no database');
    expect(text).toContain('mysql://user[:password]@host[:port]/dbname');
    expect(text).not.toContain('Secret-9');
  });
});

describe('connecting as the mysql client would', () => {
  const socket = readOptionFiles(SYSTEM_OPTION_FILES).values.socket;
  const reason = socket === undefined ? 'no option file of this machine names a socket' : !existsSync(socket) ? `the socket ${socket} its option files name does not exist` : undefined;
  it.skipIf(reason !== undefined)(`mysql://root@localhost/… goes through the option files' socket and reaches the server${reason ? ` (skipped: ${reason})` : ''}`, async () => {
    ensureMysql();
    const s = parseMysqlUrl('mysql://root@localhost/mysql', {}, { USER: 'root' });
    expect(s.socketPath).toBe(socket);
    const conn = await connect(s);
    try {
      const [rows] = await conn.query({ sql: 'SELECT @@socket, DATABASE()', rowsAsArray: true });
      const row = (rows as unknown[][])[0] ?? [];
      expect(String(row[0])).toBe(socket);
      expect(String(row[1])).toBe('mysql');
    } finally {
      await conn.end();
    }
  });
});
