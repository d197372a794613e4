/**
 * `cairn stats` (and GET /v1/stats) shows one row per database, however its backups reached it:
 * by the engine's database key (jobs/database-key.ts), not by the location as spelled. One
 * PostgreSQL database backed up by TCP, by socket as postgres and by socket as another role;
 * one SQLite file through its own path, a symbolic link and a relative path.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteTokenStore } from '../../src/catalog/tokens.js';
import type { RepositoryStats } from '../../src/repo/stats.js';
import { catalogFile, startServer } from '../../src/server/index.js';
import Database from '../../src/sources/sqlite/driver.js';
import { cairn, cairnJson } from '../helpers/cli.js';
import { createDatabase, dropDatabase, psql } from '../helpers/postgres.js';

const ROLE = 'g3stats_other';
let dir: string;
let repo: string;
let db: string;
let file: string;

/** Backs up `source` into the test's repository (through the CLI, as a user would). */
function backup(source: string, cwd?: string): { id: string; source: { location: string }; completedAt: string } {
  return cairnJson(['backup', 'create', '--source', source, '--repo', repo], cwd ? { cwd } : {});
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cairn-g3stats-'));
  repo = join(dir, 'repo');
  expect(cairn(['repo', 'init', repo]).code).toBe(0);
  db = createDatabase('g3stats');
  psql(db, 'CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 500) g;');
  psql('postgres', `DROP ROLE IF EXISTS ${ROLE}; CREATE ROLE ${ROLE} LOGIN SUPERUSER;`);
  mkdirSync(join(dir, 'data'));
  file = join(dir, 'data', 'app.db');
  const s = new Database(file);
  s.exec('CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO a VALUES (1, 2), (2, 3);');
  s.close();
  symlinkSync(join(dir, 'data'), join(dir, 'linked'));
});
afterAll(() => {
  dropDatabase(db);
  psql('postgres', `DROP ROLE IF EXISTS ${ROLE};`);
  rmSync(dir, { recursive: true, force: true });
});

describe('stats per database, not per spelling', () => {
  it('three PostgreSQL spellings and three SQLite spellings: two rows, the newest location shown, every spelling listed', async () => {
    const pg = [
      backup(`postgres://postgres@127.0.0.1:5432/${db}`),
      backup(`postgres:///${db}?host=/var/run/postgresql&user=postgres`),
      backup(`postgres:///${db}?host=/var/run/postgresql&user=${ROLE}`),
    ];
    const lite = [backup(`sqlite://${file}`), backup(`sqlite://${join(dir, 'linked', 'app.db')}`), backup('sqlite:./app.db', join(dir, 'data'))];
    // The backups recorded different spellings (else there is nothing to merge).
    expect(new Set(pg.map((m) => m.source.location)).size).toBe(3);
    expect(new Set(lite.map((m) => m.source.location)).size).toBe(2); // the relative path reads absolute already
    const stats = cairnJson<RepositoryStats>(['stats', '--repo', repo]);
    expect(stats.sources).toHaveLength(2);
    const [newest, older] = stats.sources;
    // Newest backup first: the SQLite file, shown by the location of its newest backup.
    expect(newest).toMatchObject({ kind: 'sqlite', backups: 3, location: lite[2]?.source.location, newest: lite[2]?.completedAt });
    expect(new Set(newest?.locations)).toEqual(new Set(lite.map((m) => m.source.location)));
    expect(newest?.locations[0]).toBe(lite[2]?.source.location);
    expect(older).toMatchObject({ kind: 'postgres', backups: 3, location: pg[2]?.source.location });
    expect(older?.locations).toEqual(pg.map((m) => m.source.location).reverse());
    expect(older?.logicalBytes).toBe(stats.logicalBytes - (newest?.logicalBytes ?? 0));

    const text = cairn(['stats', '--repo', repo]);
    expect(text.code).toBe(0);
    const rows = text.stdout.split('\n').filter((l) => /^(postgres|sqlite):/.test(l) && !l.includes(' also backed up as: '));
    expect(rows).toHaveLength(2);
    expect(text.stdout).toContain(`${pg[2]?.source.location} also backed up as: ${pg[1]?.source.location}, ${pg[0]?.source.location}`);

    // The API groups the same way.
    const dataDir = join(dir, 'server');
    // A viewer names registered repositories only.
    expect(cairn(['repo', 'add', 'r', repo], { env: { CAIRN_DATA_DIR: dataDir } }).code).toBe(0);
    const tokens = new SqliteTokenStore(catalogFile(dataDir));
    const token = tokens.create('viewer').token;
    tokens.close();
    const server = await startServer({ dataDir, port: 0, scheduleTickMs: 3600_000, log: () => undefined });
    try {
      const res = await fetch(`${server.url}/v1/stats?repository=r`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(200);
      const api = (await res.json()) as RepositoryStats;
      expect(api.sources.map((s) => [s.location, s.backups, s.locations.length])).toEqual(stats.sources.map((s) => [s.location, 3, s.locations.length]));
    } finally {
      await server.close();
    }
  }, 120_000);
});
