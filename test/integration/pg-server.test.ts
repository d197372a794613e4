/**
 * Whole-server PostgreSQL backups (`--source postgres://host:port/`, no database): every database,
 * the roles and the tablespaces in one backup; restores of all or chosen databases, renamed, to
 * the same server; conflicts refused before anything is created; schedules with retention.
 *
 * Everything runs on one private cluster started for this file (nothing else creates databases
 * there, so "every database" can be asserted exactly), CLI first, then the API. A seeded run of
 * changes and backups (CAIRN_PGSERVER_SEEDS=1..20 for a longer one) restores every backup after
 * each step.
 */
import { spawnSync } from 'node:child_process';
import { chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteTokenStore } from '../../src/catalog/tokens.js';
import { runBackup } from '../../src/jobs/backup.js';
import { runRestore } from '../../src/jobs/restore.js';
import { Repository } from '../../src/repo/repository.js';
import { CairnClient } from '../../src/sdk/index.js';
import { catalogFile, startServer, type RunningServer } from '../../src/server/index.js';
import { openSource, openTarget } from '../../src/sources/index.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { cairn, cairnAsync, cairnJson } from '../helpers/cli.js';
import {
  ensurePostgres,
  passwordClusterUnavailable,
  PG_HOST,
  psql,
  snapshotOf,
  startScratchCluster,
  type ScratchCluster,
} from '../helpers/postgres.js';

interface Manifest {
  id: string;
  source: { kind: string; location: string };
  collections: { name: string; kind: string; definition: Record<string, unknown>; rowCount: number }[];
  warnings: string[];
}

let work: string;
beforeAll(() => {
  ensurePostgres();
  work = mkdtempSync(join(tmpdir(), 'cairn-pgserver-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const unavailable = passwordClusterUnavailable();
if (unavailable) console.log(`skipping the private-cluster tests of whole-server backups: ${unavailable}`);

describe.skipIf(unavailable !== undefined)('whole server on a private cluster (every database, roles, tablespaces)', () => {
  let cluster: ScratchCluster;
  let server: string;
  let repo: string;
  let spaceDir: string;
  const on = (db: string): string => `host=${PG_HOST} port=${cluster.port} dbname=${db}`;
  const sql = (db: string, text: string): string => psql(on(db), text);
  const DATABASES = ['crm', 'empty', 'postgres', 'shop'];
  let before: Record<string, ReturnType<typeof snapshotOf>>;
  let beforeProps: string;
  /** Owner, grants (sorted), comment and connection limit of every database. */
  const props = (): string =>
    sql(
      'postgres',
      `SELECT string_agg(datname || ' ' || pg_get_userbyid(datdba) || ' ' || coalesce((SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(datacl) a), '-')
         || ' ' || coalesce(shobj_description(oid, 'pg_database'), '-') || ' ' || datconnlimit, E'\n' ORDER BY datname) FROM pg_database WHERE NOT datistemplate
       UNION ALL
       SELECT string_agg(d.datname || ' ' || coalesce(r.rolname, '-') || ' ' || s.setconfig::text, E'\n' ORDER BY d.datname, r.rolname NULLS FIRST)
         FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase LEFT JOIN pg_roles r ON r.oid = s.setrole`,
    );
  let backupId: string;

  beforeAll(() => {
    cluster = startScratchCluster();
    server = `postgres://postgres@${PG_HOST}:${cluster.port}/`;
    repo = join(work, 'private-repo');
    expect(cairn(['repo', 'init', repo]).code).toBe(0);
    // A tablespace directory must belong to the server's user.
    spaceDir = join(cluster.dir, 'ts1');
    mkdirSync(spaceDir);
    const uid = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    if (process.getuid?.() === 0 && uid.status === 0) chownSync(spaceDir, Number(uid.stdout), Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout));
    sql('postgres', `CREATE ROLE app_owner LOGIN; CREATE ROLE reader NOLOGIN; GRANT app_owner TO reader; CREATE TABLESPACE ts1 OWNER app_owner LOCATION '${spaceDir}';`);
    sql('postgres', 'CREATE DATABASE shop OWNER app_owner; CREATE DATABASE crm; CREATE DATABASE empty; CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes VALUES (1, $$hello$$);');
    sql('shop', `CREATE TABLE orders (id serial PRIMARY KEY, item text NOT NULL); INSERT INTO orders (item) VALUES ('pen'), ('ink');
      CREATE TABLE archive (id int) TABLESPACE ts1; INSERT INTO archive VALUES (7);
      CREATE VIEW big_orders AS SELECT * FROM orders WHERE id > 1; ALTER TABLE orders OWNER TO app_owner; GRANT SELECT ON orders TO reader;`);
    sql('crm', `CREATE SCHEMA sales; CREATE TABLE sales.orders (id int, who text); INSERT INTO sales.orders VALUES (1, 'ann'), (2, 'bob');`);
    // Database-level properties a whole-server backup keeps: grants, a comment, a connection limit.
    sql('postgres', `REVOKE CONNECT ON DATABASE crm FROM PUBLIC; GRANT CONNECT ON DATABASE crm TO reader; COMMENT ON DATABASE shop IS 'the shop''s \\ db'; ALTER DATABASE shop CONNECTION LIMIT 7;
      ALTER DATABASE shop SET work_mem = '8MB'; ALTER DATABASE shop SET search_path = "$user", public, "We ird"; ALTER ROLE reader IN DATABASE crm SET statement_timeout = '5s';`);
    before = Object.fromEntries(DATABASES.map((d) => [d, snapshotOf(on(d))]));
    beforeProps = props();
  }, 60_000);
  afterAll(() => cluster?.stop());

  it('CLI: backs up every database but the templates, with the roles and tablespaces, in one backup', () => {
    const out = cairnJson<{ id: string }>(['backup', 'create', '--repo', repo, '--source', server]);
    backupId = out.id;
    const m = cairnJson<Manifest>(['backup', 'show', backupId, '--repo', repo]);
    expect(m.source.kind).toBe('postgres-server');
    expect(m.source.location).toBe(server);
    const byName = new Map(m.collections.map((c) => [c.name, c]));
    expect(m.collections.filter((c) => c.kind === 'pg_database').map((c) => c.name).sort()).toEqual(DATABASES.map((d) => `${d}/`));
    expect(m.collections.some((c) => c.name.startsWith('template'))).toBe(false);
    expect(byName.get('shop/public.orders')?.rowCount).toBe(2);
    expect(byName.get('crm/sales.orders')?.rowCount).toBe(2);
    expect(byName.get('postgres/public.notes')?.rowCount).toBe(1);
    expect(byName.get('shop/')?.definition.owner).toBe('app_owner');
    expect(byName.get('(roles)')?.definition.roles).toEqual(expect.arrayContaining(['app_owner', 'reader']));
    expect(byName.get('(tablespaces)')?.definition.tablespaces).toEqual([{ name: 'ts1', location: spaceDir }]);
  });

  it('restoring onto the server where the databases exist is refused before anything is created, naming them', () => {
    const r = cairn(['restore', backupId, '--repo', repo, '--to', server]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Databases crm, empty, shop already exist/);
    expect(sql('postgres', "SELECT count(*) FROM pg_database WHERE datname LIKE '%cairn%'").trim()).toBe('0');
    // Replace rolls back one database; across a server it is refused, saying what to do instead.
    const replace = cairn(['restore', backupId, '--repo', repo, '--to', server, '--on-conflict', 'replace']);
    expect(replace.code).toBe(2);
    expect(replace.stderr).toMatch(/replace rolls back one database.*--on-conflict overwrite/);
    expect(sql('postgres', "SELECT count(*) FROM pg_database WHERE datname LIKE '%cairn%'").trim()).toBe('0');
  });

  it('CLI --roles: the whole server comes back exactly (databases, owners, roles, memberships, tablespace)', () => {
    sql('postgres', 'DROP DATABASE shop; DROP DATABASE crm; DROP DATABASE empty; DROP TABLE notes; DROP TABLESPACE ts1; DROP ROLE reader; DROP ROLE app_owner;');
    const r = cairn(['restore', backupId, '--repo', repo, '--to', server, '--roles']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    for (const d of DATABASES) expect(snapshotOf(on(d)), d).toEqual(before[d]);
    expect(props()).toBe(beforeProps);
    expect(beforeProps).toContain('crm postgres =T/postgres,postgres=CTc/postgres,reader=c/postgres - -1\n');
    expect(beforeProps).toContain("shop app_owner - the shop's \\ db 7");
    expect(beforeProps).toContain('crm reader {statement_timeout=5s}');
    expect(beforeProps).toContain('shop - {work_mem=8MB,"search_path=\\"$user\\", public, \\"We ird\\""}');
    expect(sql('postgres', "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'shop'").trim()).toBe('app_owner');
    expect(sql('postgres', "SELECT pg_has_role('reader', 'app_owner', 'MEMBER')").trim()).toBe('t');
    expect(sql('postgres', "SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'ts1'").trim()).toBe(spaceDir);
    expect(sql('shop', "SELECT coalesce(t.spcname, '-') FROM pg_class c LEFT JOIN pg_tablespace t ON t.oid = c.reltablespace WHERE c.relname = 'archive'").trim()).toBe('ts1');
  });

  it('API: the server URL backs up and restores (a tablespace whose directory is gone: said, objects into the default tablespace); a schedule with retention', async () => {
    const dataDir = join(work, 'data');
    const store = new SqliteTokenStore(catalogFile(dataDir));
    const token = store.create('admin').token;
    store.close();
    const api: RunningServer = await startServer({ dataDir, port: 0, allowAdHocUrls: true });
    try {
      const client = new CairnClient({ url: api.url, token });
      const job = await client.backups.create({ source: server, repository: repo, include: ['crm/*'] }, { waitForCompletion: true });
      const m = cairnJson<Manifest>(['backup', 'show', String(job.result?.backupId), '--repo', repo]);
      expect(m.collections.filter((c) => c.kind === 'pg_database').map((c) => c.name)).toEqual(['crm/']);

      sql('postgres', 'DROP DATABASE shop; DROP TABLESPACE ts1;');
      rmSync(spaceDir, { recursive: true, force: true });
      const restored = await client.restores.create({ backup: backupId, repository: repo, target: server, include: ['shop'], renames: { shop: 'shop_api' }, roles: true }, { waitForCompletion: true });
      const warnings = (restored.result?.warnings as string[] | undefined) ?? [];
      expect(warnings.join('\n')).toMatch(/tablespace not created .*ts1/);
      expect(warnings.join('\n')).toMatch(/tablespace ts1 of the backup does not exist .*every object was restored into the default tablespace/);
      expect(snapshotOf(on('shop_api')).tables).toEqual(before.shop?.tables);
      expect(sql('shop_api', "SELECT reltablespace FROM pg_class WHERE relname = 'archive'").trim()).toBe('0');
      expect(sql('postgres', "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'shop_api'").trim()).toBe('app_owner');

      await client.schedules.create({ name: 'whole', source: server, repository: repo, cron: '0 3 * * *', include: ['crm'], keepLast: 1 });
      const first = await client.schedules.runNow('whole', { waitForCompletion: true });
      const second = await client.schedules.runNow('whole', { waitForCompletion: true });
      expect(second.result?.deleted).toEqual([first.result?.backupId]);
    } finally {
      await api.close();
    }
  });

  it('refusals with the fix: a one-database URL for a server backup, a server URL for a one-database backup, a collection moved to another database', async () => {
    const repository = await Repository.open(new FileSystemStorage(repo));
    const oneDb = openTarget(`postgres://postgres@${PG_HOST}:${cluster.port}/elsewhere`);
    await expect(runRestore({ repo: repository, backupId, target: oneDb })).rejects.toThrow(/backup of a whole PostgreSQL server.*--include 'crm\/\*'/);
    await expect(runRestore({ repo: repository, backupId, target: openTarget(server), renames: new Map([['crm/sales.orders', 'shop/sales.orders']]) })).rejects.toThrow(/cannot move to another database/);
    const single = await runBackup({ repo: repository, source: openSource(`postgres://postgres@${PG_HOST}:${cluster.port}/crm`), compressionWorkers: 0 });
    await expect(runRestore({ repo: repository, backupId: single.id, target: openTarget(server) })).rejects.toThrow(/one PostgreSQL database, not of a whole server/);
    expect(sql('postgres', "SELECT count(*) FROM pg_database WHERE datname IN ('elsewhere') OR datname LIKE '%cairn%'").trim()).toBe('0');
  });

  it('cancelled while the second database loads, the first one built and waiting: no database appears, no staging database is left', async () => {
    const repository = await Repository.open(new FileSystemStorage(repo));
    const abort = new AbortController();
    const restore = runRestore({
      repo: repository,
      backupId,
      target: openTarget(server),
      selection: { include: ['crm', 'shop'] },
      renames: new Map([['crm', 'crm_c'], ['shop', 'shop_c']]),
      signal: abort.signal,
      onProgress: (p) => {
        if (p.collection?.startsWith('shop/')) abort.abort(new Error('stop'));
      },
    });
    await expect(restore).rejects.toThrow(/stop|cancel/i);
    expect(sql('postgres', "SELECT string_agg(datname, ',') FROM pg_database WHERE datname LIKE 'crm_c%' OR datname LIKE 'shop_c%' OR datname LIKE '%cairn%'").trim()).toBe('');
  });

  it('a database created under a target name while the other is built: that switch fails, the other switches in, the error names both', async () => {
    const repository = await Repository.open(new FileSystemStorage(repo));
    let created = false;
    const restore = runRestore({
      repo: repository,
      backupId,
      target: openTarget(server),
      selection: { include: ['crm', 'shop'] },
      renames: new Map([['crm', 'crm_d'], ['shop', 'shop_d']]),
      onProgress: (p) => {
        // crm is built and waits; shop is being built: crm_d appears meanwhile.
        if (!created && p.collection?.startsWith('shop/')) {
          created = true;
          sql('postgres', 'CREATE DATABASE crm_d');
        }
      },
    });
    await expect(restore).rejects.toThrow(/crm_d not restored .*restored: shop_d/);
    expect(created).toBe(true);
    expect(sql('crm_d', "SELECT count(*) FROM pg_class WHERE relname = 'orders'").trim()).toBe('0');
    expect(snapshotOf(on('shop_d')).tables).toEqual(before.shop?.tables);
    sql('postgres', 'DROP DATABASE crm_d; DROP DATABASE shop_d;');
  });

  it('kill -9 while one database waits built and the next is being built: no database appears; the next restore on the server drops both staging databases', async () => {
    const staging = (): string[] => sql('postgres', "SELECT datname FROM pg_database WHERE datname LIKE '%\\_\\_cairn\\_%' ORDER BY 1").split('\n').filter(Boolean);
    const child = cairnAsync(['restore', backupId, '--repo', repo, '--to', server, '--include', 'crm,shop', '--rename', 'crm=crm_k,shop=shop_k']);
    const exited = new Promise((resolve) => child.on('exit', resolve));
    const deadline = Date.now() + 60_000;
    while (staging().length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGKILL');
    await exited;
    expect(staging()).toHaveLength(2);
    expect(sql('postgres', "SELECT count(*) FROM pg_database WHERE datname IN ('crm_k', 'shop_k')").trim()).toBe('0');
    // Any later restore on the server (here: of the empty database) drops what the killed one left.
    const repository = await Repository.open(new FileSystemStorage(repo));
    await runRestore({ repo: repository, backupId, target: openTarget(server), selection: { include: ['empty'] }, renames: new Map([['empty', 'empty_k']]) });
    expect(staging()).toEqual([]);
    expect(sql('postgres', "SELECT string_agg(datname, ',') FROM pg_database WHERE datname LIKE '%\\_k'").trim()).toBe('empty_k');
    sql('postgres', 'DROP DATABASE empty_k');
  });

  it('a database the backup role may not connect to fails the backup, naming it, unless it is left out', async () => {
    sql('postgres', 'CREATE ROLE backup_user LOGIN; CREATE DATABASE secret; REVOKE CONNECT ON DATABASE secret FROM PUBLIC; CREATE DATABASE open1 OWNER backup_user;');
    try {
      const repository = await Repository.open(new FileSystemStorage(repo));
      const asUser = `postgres://backup_user@${PG_HOST}:${cluster.port}/`;
      await expect(runBackup({ repo: repository, source: openSource(asUser), compressionWorkers: 0 })).rejects.toThrow(/Cannot read database (crm|secret) of the server: .*--exclude '(crm|secret)'/);
      const m = await runBackup({ repo: repository, source: openSource(asUser), selection: { include: ['open1'] }, compressionWorkers: 0 });
      expect(m.collections.filter((c) => c.kind === 'pg_database').map((c) => c.name)).toEqual(['open1/']);
    } finally {
      sql('postgres', 'DROP DATABASE secret; DROP DATABASE open1; DROP ROLE backup_user;');
    }
  });

  it('seeded changes and backups: after each step every listed backup restores to exactly what it held', async () => {
    // A short fixed seed in npm test; CAIRN_PGSERVER_SEEDS=1..20 runs more, longer.
    const env = process.env.CAIRN_PGSERVER_SEEDS;
    const [from, to] = env ? (env.split('..').map(Number) as [number, number]) : [7, 7];
    const steps = env ? 4 : 2;
    for (let seed = from; seed <= (to ?? from); seed++) {
      let state = seed;
      const rand = (n: number): number => {
        state = (state * 1103515245 + 12345) % 2147483648;
        return state % n;
      };
      const repository = await Repository.init(new FileSystemStorage(join(work, `random-${seed}`)));
      const dbs = env ? [`rnd${seed}_a`, `rnd${seed}_b`] : [`rnd${seed}_a`];
      for (const d of dbs) sql('postgres', `CREATE DATABASE ${d}`);
      const held: { id: string; snaps: Record<string, ReturnType<typeof snapshotOf>> }[] = [];
      for (let step = 0; step < steps; step++) {
        const d = dbs[rand(dbs.length)] as string;
        const t = `t${rand(3)}`;
        sql(d, `CREATE TABLE IF NOT EXISTS ${t} (id int, v text); INSERT INTO ${t} SELECT g, md5(g::text) FROM generate_series(1, ${1 + rand(20)}) g;`);
        if (rand(4) === 0) sql(d, `UPDATE ${t} SET v = 'changed' WHERE id % 2 = 0`);
        if (rand(3) === 0) sql(d, `DROP TABLE IF EXISTS t${rand(3)}`);
        const m = await runBackup({ repo: repository, source: openSource(server), selection: { include: dbs }, compressionWorkers: 0, jobs: 2 });
        held.push({ id: m.id, snaps: Object.fromEntries(dbs.map((x) => [x, snapshotOf(on(x))])) });
        for (const [k, b] of held.entries()) {
          const renames = new Map(dbs.map((x) => [x, `${x}_r${k}`]));
          await runRestore({ repo: repository, backupId: b.id, target: openTarget(server), renames, jobs: 2 });
          for (const x of dbs) {
            expect(snapshotOf(on(`${x}_r${k}`)), `seed ${seed} step ${step} backup ${k} ${x}`).toEqual(b.snaps[x]);
            sql('postgres', `DROP DATABASE ${x}_r${k}`);
          }
        }
      }
      for (const d of dbs) sql('postgres', `DROP DATABASE ${d}`);
    }
  }, process.env.CAIRN_PGSERVER_SEEDS ? 3_600_000 : 120_000);
});
