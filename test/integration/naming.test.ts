/**
 * Names that differ only by letter case or by a non-ASCII letter, backed up and restored on
 * every engine: each engine's own rules decide (SQLite: "Users" = "users", "Ä" ≠ "ä";
 * PostgreSQL: "Users" ≠ users, schema "S" ≠ s). Each was refused at restore before the rules
 * moved into the engines (the restore lowercased every name).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseNameList, parseRenames, selectNames } from '../../src/core/selection.js';
import { runBackup } from '../../src/jobs/backup.js';
import { runRestore } from '../../src/jobs/restore.js';
import { Repository } from '../../src/repo/repository.js';
import { openSource, openTarget } from '../../src/sources/index.js';
import { postgresNaming } from '../../src/sources/postgres/naming.js';
import { sqliteNaming } from '../../src/sources/sqlite/naming.js';
import Database from '../../src/sources/sqlite/driver.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { createDatabase, dropDatabase, ensurePostgres, pgUrl, psql } from '../helpers/postgres.js';

let dir: string;
let repo: Repository;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cairn-naming-'));
  repo = await Repository.init(new FileSystemStorage(join(dir, 'repo')), { compression: { algorithm: 'none', level: 'default' } });
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('SQLite', () => {
  let db: string;
  const rows = (file: string, table: string): unknown[] => {
    const d = new Database(file, { readonly: true });
    try {
      return d.prepare(`SELECT v FROM "${table}" ORDER BY v`).pluck().all();
    } finally {
      d.close();
    }
  };
  const tables = (file: string): string[] => {
    const d = new Database(file, { readonly: true });
    try {
      return d.prepare(`SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name`).pluck().all() as string[];
    } finally {
      d.close();
    }
  };

  beforeAll(async () => {
    db = join(dir, 'names.db');
    const d = new Database(db);
    d.exec(`
      CREATE TABLE "Ä" (v TEXT); INSERT INTO "Ä" VALUES ('upper');
      CREATE TABLE "ä" (v TEXT); INSERT INTO "ä" VALUES ('lower'), ('lower 2');
      CREATE INDEX "idx_Ä" ON "Ä"(v);
      CREATE TABLE "Users" (v TEXT); INSERT INTO "Users" VALUES ('user');
      CREATE TABLE log (v TEXT); INSERT INTO log VALUES ('log');
    `);
    d.close();
    await runBackup({ repo, source: openSource(`sqlite://${db}`), id: 'sqlite-names', compressionWorkers: 0 });
  });

  it('"Ä" and "ä" are two tables: both restore, each with its rows and index', async () => {
    const out = join(dir, 'ae.db');
    const r = await runRestore({ repo, backupId: 'sqlite-names', target: openTarget(`sqlite://${out}`), jobs: 1 });
    expect(r.collections).toBe(4);
    expect(tables(out)).toEqual(['Users', 'log', 'Ä', 'ä']);
    expect(rows(out, 'Ä')).toEqual(['upper']);
    expect(rows(out, 'ä')).toEqual(['lower', 'lower 2']);
  });

  it('--include "ä" restores only "ä"; a rename finds "Users" by "users"; renamed indexes fold ASCII only', async () => {
    const out = join(dir, 'only.db');
    await runRestore({ repo, backupId: 'sqlite-names', target: openTarget(`sqlite://${out}`), selection: { include: ['ä'] } });
    expect(tables(out)).toEqual(['ä']);
    const renamed = join(dir, 'renamed.db');
    await runRestore({
      repo,
      backupId: 'sqlite-names',
      target: openTarget(`sqlite://${renamed}`),
      selection: { include: ['Ä', 'users'] },
      renames: new Map([['users', 'people'], ['Ä', 'ä2']]),
    });
    expect(tables(renamed)).toEqual(['people', 'ä2']);
    const d = new Database(renamed, { readonly: true });
    // "idx_Ä" holds the old name exactly: it becomes "idx_ä2".
    expect(d.prepare(`SELECT name FROM sqlite_schema WHERE type = 'index'`).pluck().all()).toEqual(['idx_ä2']);
    d.close();
  });

  it('"Users" and a rename to "users" are one name to SQLite: refused before anything is written', async () => {
    const out = join(dir, 'clash.db');
    await expect(
      runRestore({ repo, backupId: 'sqlite-names', target: openTarget(`sqlite://${out}`), selection: { include: ['Users', 'log'] }, renames: new Map([['log', 'users']]) }),
    ).rejects.toThrow('Two collections would be restored as "users" (Users and log); change a --rename.');
    // A rename onto "ä" while "Ä" is restored too is no clash.
    await runRestore({ repo, backupId: 'sqlite-names', target: openTarget(`sqlite://${out}`), selection: { include: ['Ä', 'log'] }, renames: new Map([['log', 'ä']]) });
    expect(tables(out)).toEqual(['Ä', 'ä']);
    expect(rows(out, 'ä')).toEqual(['log']);
  });
});

describe.sequential('PostgreSQL', () => {
  let db: string;
  const made: string[] = [];
  const fresh = (label: string): string => {
    const name = `cairn_t_naming_${label}_${Math.random().toString(16).slice(2, 10)}`;
    made.push(name);
    return name;
  };
  const contents = (database: string): string =>
    psql(database, `SELECT 'Users:' || string_agg(v, ',' ORDER BY v) FROM "Users" UNION ALL SELECT 'users:' || string_agg(v, ',' ORDER BY v) FROM users
      UNION ALL SELECT 'S.t:' || string_agg(v, ',' ORDER BY v) FROM "S".t UNION ALL SELECT 's.t:' || string_agg(v, ',' ORDER BY v) FROM s.t`).trim();

  beforeAll(async () => {
    ensurePostgres();
    db = createDatabase('naming');
    made.push(db);
    psql(
      db,
      `CREATE TABLE "Users" (id int PRIMARY KEY, v text); INSERT INTO "Users" VALUES (1, 'Upper');
       CREATE TABLE users (id int PRIMARY KEY, v text); INSERT INTO users VALUES (1, 'lower'), (2, 'lower 2');
       CREATE SCHEMA "S"; CREATE TABLE "S".t (v text); INSERT INTO "S".t VALUES ('S');
       CREATE SCHEMA s; CREATE TABLE s.t (v text); INSERT INTO s.t VALUES ('s');
       CREATE SCHEMA "a.b"; CREATE TABLE "a.b".t (v text); INSERT INTO "a.b".t VALUES ('dotted schema');
       CREATE TABLE "x.y" (v text); INSERT INTO "x.y" VALUES ('dotted table');`,
    );
    await runBackup({ repo, source: openSource(pgUrl(db)), id: 'pg-names', compressionWorkers: 0 });
  });

  afterAll(() => {
    for (const d of made) dropDatabase(d);
  });

  it('"Users" and users, "S".t and s.t: all four restore into a new database, each with its rows', async () => {
    const target = fresh('new');
    const r = await runRestore({ repo, backupId: 'pg-names', target: openTarget(pgUrl(target)), jobs: 2 });
    expect(r.rows).toBe(7);
    expect(contents(target)).toBe(contents(db));
    expect(contents(target)).toBe('Users:Upper\nusers:lower,lower 2\nS.t:S\ns.t:s');
    // A dot inside a schema or table name: the collection `"a.b".t` is table t of schema "a.b".
    expect(psql(target, `SELECT v FROM "a.b".t UNION ALL SELECT v FROM public."x.y"`).trim()).toBe('dotted schema\ndotted table');
  });

  it('into an existing database holding users: "Users" is no conflict with it, users is', async () => {
    const target = createDatabase('naming_existing');
    made.push(target);
    psql(target, `CREATE TABLE users (id int PRIMARY KEY, v text); INSERT INTO users VALUES (9, 'kept');`);
    await runRestore({ repo, backupId: 'pg-names', target: openTarget(pgUrl(target)), selection: { include: ['Users'] } });
    expect(psql(target, `SELECT v FROM "Users" UNION ALL SELECT v FROM users`).trim()).toBe('Upper\nkept');
    await expect(runRestore({ repo, backupId: 'pg-names', target: openTarget(pgUrl(target)), selection: { include: ['users'] } })).rejects.toThrow(
      /public\.users/,
    );
  });

  it('renames by exact name: users → "Users" clashes with "Users", "Users" → people does not touch users', async () => {
    const target = fresh('renamed');
    await expect(
      runRestore({ repo, backupId: 'pg-names', target: openTarget(pgUrl(target)), selection: { include: ['Users', 'users'] }, renames: new Map([['users', 'Users']]) }),
    ).rejects.toThrow('Two collections would be restored as "public.Users" (public.Users and public.users); change a --rename.');
    await runRestore({ repo, backupId: 'pg-names', target: openTarget(pgUrl(target)), selection: { include: ['Users', 'users'] }, renames: new Map([['Users', 'people']]) });
    expect(psql(target, `SELECT v FROM people UNION ALL SELECT v FROM users ORDER BY 1`).trim()).toBe('Upper\nlower\nlower 2');
  });
});

/**
 * Names with dots, quotes, commas, `=` and `*`: each bug found by naming-random.test.ts (or by
 * hand) kept as its smallest input.
 */
describe.sequential('PostgreSQL: dots and quotes inside names', () => {
  let db: string;
  const made: string[] = [];
  const tables = (database: string): string =>
    psql(database, `SELECT n.nspname || '|' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND n.nspname IN ('a', 'a.b', 'public') ORDER BY 1`).trim();

  beforeAll(async () => {
    ensurePostgres();
    db = createDatabase('naming_dots');
    made.push(db);
    psql(
      db,
      `CREATE SCHEMA "a.b"; CREATE SCHEMA a;
       CREATE TABLE "a.b".t (id int PRIMARY KEY, v text); INSERT INTO "a.b".t VALUES (1, 'schema a.b, table t');
       CREATE TABLE a."b.t" (id int PRIMARY KEY, v text); INSERT INTO a."b.t" VALUES (1, 'schema a, table b.t');
       CREATE TABLE public.c (id int PRIMARY KEY, ref int CONSTRAINT c_ref REFERENCES "a.b".t (id)); INSERT INTO public.c VALUES (1, 1);
       CREATE TABLE "a.b".p (k int, v text) PARTITION BY RANGE (k);
       CREATE TABLE a."b.p1" PARTITION OF "a.b".p FOR VALUES FROM (0) TO (10); INSERT INTO "a.b".p VALUES (1, 'partition');
       CREATE TABLE public."a*" (v text); CREATE TABLE public.ab (v text);
       CREATE TABLE public."x,y" (v text); INSERT INTO public."x,y" VALUES ('comma');
       CREATE TABLE public."k=v" (v text); INSERT INTO public."k=v" VALUES ('equals');
       CREATE TABLE public."we""ird" (v text); INSERT INTO public."we""ird" VALUES ('quote');`,
    );
    await runBackup({ repo, source: openSource(pgUrl(db)), id: 'pg-dots', compressionWorkers: 0 });
  });

  afterAll(() => {
    for (const d of made) dropDatabase(d);
  });

  it('"a.b".t and a."b.t" are two collections (they were one name: backed up, then refused at restore)', async () => {
    const manifest = await repo.readManifest('pg-dots');
    const names = manifest.collections.map((c) => c.name);
    expect(names).toEqual(expect.arrayContaining(['"a.b".t', 'a."b.t"', '"a.b".p', 'a."b.p1"', 'public.we"ird', 'public.x,y']));
    const target = `cairn_t_naming_dots_new_${process.pid}`;
    made.push(target);
    await runRestore({ repo, backupId: 'pg-dots', target: openTarget(pgUrl(target)) });
    expect(psql(target, `SELECT v FROM "a.b".t UNION ALL SELECT v FROM a."b.t"`).trim()).toBe('schema a.b, table t\nschema a, table b.t');
  });

  it('a foreign key to "a.b".t and a partition of "a.b".p find them in an existing database (they were split at the first dot and left out)', async () => {
    const target = createDatabase('naming_dots_fk');
    made.push(target);
    await runRestore({ repo, backupId: 'pg-dots', target: openTarget(pgUrl(target)), selection: { include: ['"a.b".t', '"a.b".p'] } });
    await runRestore({ repo, backupId: 'pg-dots', target: openTarget(pgUrl(target)), selection: { include: ['public.c', 'a."b.p1"'] } });
    expect(psql(target, `SELECT conname || ' ' || confrelid::regclass::text FROM pg_constraint WHERE contype = 'f'`).trim()).toBe('c_ref "a.b".t');
    expect(psql(target, `SELECT inhrelid::regclass::text || ' of ' || inhparent::regclass::text FROM pg_inherits`).trim()).toBe('a."b.p1" of "a.b".p');
    expect(psql(target, `SELECT v FROM "a.b".p`).trim()).toBe('partition');
  });

  it('--include and --rename as the CLI reads them: quoted parts hold dots, commas, "=" and quotes', async () => {
    const target = `cairn_t_naming_dots_cli_${process.pid}`;
    made.push(target);
    const include = parseNameList(['"a.b".t, a."b.t"', 'public."x,y",public."k=v"', 'public.we"ird']) as string[];
    expect(include).toEqual(['"a.b".t', 'a."b.t"', 'public."x,y"', 'public."k=v"', 'public.we"ird']);
    const renames = parseRenames(['"a.b".t="c.d"."e""f"', 'public."k=v"=public."x=y, z"']);
    await runRestore({ repo, backupId: 'pg-dots', target: openTarget(pgUrl(target)), selection: { include }, renames });
    expect(tables(target)).toBe('a|b.t\npublic|we"ird\npublic|x,y\npublic|x=y, z');
    expect(psql(target, `SELECT v FROM "c.d"."e""f" UNION ALL SELECT v FROM public."x=y, z"`).trim()).toBe('schema a.b, table t\nequals');
  });

  it('a line break or "; Schema: " in a name: restored into an existing database under its own name (pg_restore headers show a line break as a space and were read at the wrong "; ")', async () => {
    const source = createDatabase('naming_lines');
    made.push(source);
    psql(
      source,
      `CREATE SCHEMA "new
line"; CREATE TABLE "new
line"."t
1" (id serial PRIMARY KEY, v text); CREATE INDEX "i
1" ON "new
line"."t
1" (v); INSERT INTO "new
line"."t
1" (v) VALUES ('line break');
       CREATE SCHEMA "s; Schema: x"; CREATE TABLE "s; Schema: x".t (id int PRIMARY KEY); INSERT INTO "s; Schema: x".t VALUES (7);`,
    );
    await runBackup({ repo, source: openSource(pgUrl(source)), id: 'pg-lines', compressionWorkers: 0 });
    const target = createDatabase('naming_lines_existing');
    made.push(target);
    for (const policy of ['fail', 'overwrite'] as const) {
      await runRestore({ repo, backupId: 'pg-lines', target: openTarget(pgUrl(target)), onConflict: policy });
      const names = psql(target, `SELECT c.relkind::text || ' ' || replace(n.nspname || '|' || c.relname, E'\\n', '\\n') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname IN (E'new\\nline', 's; Schema: x') ORDER BY 1`);
      expect(names.trim().split('\n')).toEqual(['S new\\nline|t\\n1_id_seq', 'i new\\nline|i\\n1', 'i new\\nline|t\\n1_pkey', 'i s; Schema: x|t_pkey', 'r new\\nline|t\\n1', 'r s; Schema: x|t']);
      expect(psql(target, `SELECT v FROM "new
line"."t
1" UNION ALL SELECT id::text FROM "s; Schema: x".t`).trim()).toBe('line break\n7');
    }
  });

  it('a name holding "*" selects itself alone; unknown names are listed as they are written', () => {
    expect([...selectNames(['public.a*', 'public.ab'], { include: ['a*'] }, postgresNaming)]).toEqual(['public.a*']);
    // A quoted part is read exactly, as PostgreSQL reads it: "Users" is not users (it was folded).
    expect(() => selectNames(['public.users', 'Sales.t'], { include: ['"Users"'] }, postgresNaming)).toThrow(/Unknown collection: public\.Users\./);
    expect([...selectNames(['public.users', 'Sales.t'], { include: ['USERS', '"Sales".T'] }, postgresNaming)]).toEqual(['public.users', 'Sales.t']);
    expect(() => selectNames(['public.users', 'Sales.t'], { include: ['SALES.t'] }, postgresNaming)).toThrow(/Unknown collection: SALES\.t\./);
    expect(() => selectNames(['public.x,y', '"a.b".t', 'public. lead'], { include: ['nope'] }, postgresNaming)).toThrow(
      'Unknown collection: public.nope. Available: public."x,y", "a.b".t, public." lead".',
    );
  });
});

describe('SQLite: quotes, commas and "=" inside names', () => {
  it('--include and --rename as the CLI reads them, and names holding "*"', async () => {
    const file = join(dir, 'marks.db');
    const d = new Database(file);
    d.exec(`CREATE TABLE "x,y" (v TEXT); INSERT INTO "x,y" VALUES ('comma');
      CREATE TABLE [k=v] (v TEXT); INSERT INTO [k=v] VALUES ('equals');
      CREATE TABLE \`"q"\` (v TEXT); INSERT INTO \`"q"\` VALUES ('quoted');
      CREATE TABLE "a*" (v TEXT); CREATE TABLE ab (v TEXT);`);
    d.close();
    await runBackup({ repo, source: openSource(`sqlite://${file}`), id: 'sqlite-marks', compressionWorkers: 0 });
    const out = join(dir, 'marks-out.db');
    const include = parseNameList(['"x,y", "k=v"', '"""q"""', 'a*']) as string[];
    await runRestore({ repo, backupId: 'sqlite-marks', target: openTarget(`sqlite://${out}`), selection: { include }, renames: parseRenames(['"k=v"="a=b, c"']) });
    const o = new Database(out, { readonly: true });
    try {
      expect(o.prepare(`SELECT name FROM sqlite_schema ORDER BY name`).pluck().all()).toEqual(['"q"', 'a*', 'a=b, c', 'x,y']);
    } finally {
      o.close();
    }
    expect(sqliteNaming.written('"q"')).toBe('"""q"""');
  });
});
