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
import { runBackup } from '../../src/jobs/backup.js';
import { runRestore } from '../../src/jobs/restore.js';
import { Repository } from '../../src/repo/repository.js';
import { openSource, openTarget } from '../../src/sources/index.js';
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
    // A dot inside a schema or table name: the collection "a.b.t" is table t of schema "a.b".
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
