/**
 * PostgreSQL renames that trade names or move a table into another's place, and names past
 * PostgreSQL's 63-byte limit (found by the new-user trial of issue 13): a swap
 * `public.Users=public.users,public.users=public.Users` into a new database failed with
 * `relation "users" already exists` (renames ran one by one), its outcome depended on the order
 * of the renames, and a --rename to a 64-byte name restored under a name cut to 62 bytes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/core/errors.js';
import { runBackup } from '../../src/jobs/backup.js';
import { runRestore } from '../../src/jobs/restore.js';
import { Repository } from '../../src/repo/repository.js';
import { openSource, openTarget } from '../../src/sources/index.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { createDatabase, databaseExists, dropDatabase, ensurePostgres, pgUrl, psql } from '../helpers/postgres.js';

let dir: string;
let repo: Repository;
let source: string;
const made: string[] = [];
const fresh = (): string => {
  const name = `cairn_pgren_${process.pid}_${made.length}`;
  made.push(name);
  dropDatabase(name);
  return name;
};
/** Every user table as "schema.name=rows", sorted. */
const contents = (db: string): string =>
  psql(
    db,
    `SELECT format('%s.%s', table_schema, table_name) FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema')`,
  )
    .trim()
    .split('\n')
    .sort()
    .join(',');
const value = (db: string, rel: string): string => psql(db, `SELECT string_agg(v, ',' ORDER BY v) FROM ${rel}`).trim();

beforeAll(async () => {
  ensurePostgres();
  dir = mkdtempSync(join(tmpdir(), 'cairn-pgren-'));
  repo = await Repository.init(new FileSystemStorage(join(dir, 'repo')), { compression: { algorithm: 'none', level: 'default' } });
  source = createDatabase('cairn_pgren_src');
  psql(
    source,
    `CREATE TABLE "Users" (v text PRIMARY KEY); INSERT INTO "Users" VALUES ('upper');
     CREATE TABLE users (v text PRIMARY KEY); INSERT INTO users VALUES ('lower');
     CREATE SCHEMA "Sales"; CREATE TABLE "Sales".orders (v text); INSERT INTO "Sales".orders VALUES ('Sales');
     CREATE SCHEMA sales; CREATE TABLE sales.orders (v text); INSERT INTO sales.orders VALUES ('sales');
     CREATE SCHEMA "S"; CREATE TABLE "S".t (id serial PRIMARY KEY, v text); INSERT INTO "S".t (v) VALUES ('S');
     CREATE TABLE public.t (id serial PRIMARY KEY, v text); INSERT INTO public.t (v) VALUES ('public');`,
  );
  await runBackup({ repo, source: openSource(pgUrl(source)), id: 'pgren', compressionWorkers: 0 });
}, 120_000);

afterAll(() => {
  for (const db of [...made, source]) dropDatabase(db);
  rmSync(dir, { recursive: true, force: true });
});

describe('PostgreSQL renames', () => {
  it('a swap of two names restores into a new database, whichever order the renames are given in', async () => {
    for (const order of [
      [['public.Users', 'public.users'], ['public.users', 'public.Users']],
      [['public.users', 'public.Users'], ['public.Users', 'public.users']],
    ] as [string, string][][]) {
      const target = fresh();
      await runRestore({ repo, backupId: 'pgren', target: openTarget(pgUrl(target)), renames: new Map(order) });
      expect(value(target, '"Users"')).toBe('lower');
      expect(value(target, 'users')).toBe('upper');
      expect(psql(target, `SELECT count(*) FROM pg_class WHERE relname LIKE 'cairn_rename_%'`).trim()).toBe('0');
    }
  });

  it('a table moved into the place another leaves, across schemas, in either order', async () => {
    for (const order of [
      [['Sales.orders', 'sales.orders2'], ['sales.orders', 'Sales.orders2']],
      [['sales.orders', 'Sales.orders2'], ['Sales.orders', 'sales.orders2']],
    ] as [string, string][][]) {
      const target = fresh();
      await runRestore({ repo, backupId: 'pgren', target: openTarget(pgUrl(target)), selection: { include: ['Sales.orders', 'sales.orders'] }, renames: new Map(order) });
      expect(value(target, 'sales.orders2')).toBe('Sales');
      expect(value(target, '"Sales".orders2')).toBe('sales');
      expect(contents(target)).toBe('Sales.orders2,sales.orders2');
    }
  });

  it('a rename to a name over 63 bytes is refused before anything is created; 63 bytes restore as written', async () => {
    const long = 'é'.repeat(32); // 64 bytes in UTF-8
    const target = fresh();
    await expect(
      runRestore({ repo, backupId: 'pgren', target: openTarget(pgUrl(target)), selection: { include: ['users'] }, renames: new Map([['users', long]]) }),
    ).rejects.toThrow(UsageError);
    await expect(
      runRestore({ repo, backupId: 'pgren', target: openTarget(pgUrl(target)), selection: { include: ['users'] }, renames: new Map([['users', long]]) }),
    ).rejects.toThrow(/is 64 bytes; PostgreSQL keeps at most 63 bytes/);
    expect(databaseExists(target)).toBe(false);
    const fits = `${'é'.repeat(31)}x`; // 63 bytes
    await runRestore({ repo, backupId: 'pgren', target: openTarget(pgUrl(target)), selection: { include: ['users'] }, renames: new Map([['users', fits]]) });
    expect(contents(target)).toBe(`public.${fits}`);
    expect(value(target, `"${fits}"`)).toBe('lower');
  });

  it('a rename to a name cairn reserves for staging is refused, and a table of such a name without the staging mark is never dropped', async () => {
    const target = fresh();
    await expect(
      runRestore({ repo, backupId: 'pgren', target: openTarget(pgUrl(target)), selection: { include: ['users'] }, renames: new Map([['users', 'x__cairn_0123abcd_1']]) }),
    ).rejects.toThrow(/reserved for cairn's staging tables/);
    expect(databaseExists(target)).toBe(false);
    // The new-user trial's sequence: such a table (made by hand here, as --rename made it then)
    // was taken for an abandoned staging table and dropped by the next restore into the database.
    await runRestore({ repo, backupId: 'pgren', target: openTarget(pgUrl(target)), selection: { include: ['users'] } });
    psql(target, `CREATE TABLE "x__cairn_0123abcd_1" (v text); INSERT INTO "x__cairn_0123abcd_1" VALUES ('mine');`);
    await runRestore({ repo, backupId: 'pgren', target: openTarget(pgUrl(target)), selection: { include: ['Users'] } });
    expect(value(target, '"x__cairn_0123abcd_1"')).toBe('mine');
    expect(contents(target)).toBe('public.Users,public.users,public.x__cairn_0123abcd_1');
  });

  it('bad --rename values are refused before anything is created, naming the fix (second new-user trial)', async () => {
    const target = fresh();
    const attempt = (renames: [string, string][], include = ['users']) =>
      runRestore({ repo, backupId: 'pgren', target: openTarget(pgUrl(target)), selection: { include }, renames: new Map(renames) });
    await expect(attempt([['public.users', 'x'], ['users', 'y']])).rejects.toThrow('--rename names public.users twice; keep one.');
    await expect(attempt([['users', 'public.']])).rejects.toThrow(/the new name is empty/);
    await expect(attempt([['users', 'pg_catalog.x']])).rejects.toThrow(/"pg_catalog" is a system schema name/);
    await expect(attempt([['users', 'information_schema.x']])).rejects.toThrow(UsageError);
    await expect(attempt([['Users', 'x']])).rejects.toThrow(
      '--rename public.Users=…: that name is not among the collections being restored (public.users). Write names as listed',
    );
    expect(databaseExists(target)).toBe(false);
  });

  it('a table moves to a schema where its index and sequence names are taken: they get names free there; a swap keeps them', async () => {
    const companions = (db: string): string =>
      psql(db, `SELECT format('%s.%s', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('i', 'S') AND n.nspname IN ('public', 'S')`)
        .trim()
        .split('\n')
        .sort()
        .join(',');
    const moved = fresh();
    await runRestore({ repo, backupId: 'pgren', target: openTarget(pgUrl(moved)), selection: { include: ['"S".t', 't'] }, renames: new Map([['"S".t', 'public.t2']]) });
    expect(value(moved, 'public.t2')).toBe('S');
    expect(value(moved, 'public.t')).toBe('public');
    expect(companions(moved)).toBe('public.t2_id_seq,public.t2_pkey,public.t_id_seq,public.t_pkey');
    expect(psql(moved, `INSERT INTO public.t2 (v) VALUES ('next') RETURNING id`).trim()).toBe('2');
    const swapped = fresh();
    await runRestore({ repo, backupId: 'pgren', target: openTarget(pgUrl(swapped)), selection: { include: ['"S".t', 't'] }, renames: new Map([['"S".t', 'public.t'], ['t', '"S".t']]) });
    expect(value(swapped, 'public.t')).toBe('S');
    expect(value(swapped, '"S".t')).toBe('public');
    expect(companions(swapped)).toBe('S.t_id_seq,S.t_pkey,public.t_id_seq,public.t_pkey');
    expect(psql(swapped, `SELECT count(*) FROM pg_class WHERE relname LIKE 'cairn_rename_%'`).trim()).toBe('0');
  });
});
