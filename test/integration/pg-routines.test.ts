/**
 * PostgreSQL functions and procedures selectable by name (issue 15; StarRocks backs up and
 * restores UDFs one by one), over the CLI and the API against a real server:
 * - `backup show` lists them (kind function / procedure; one collection per name, overloads
 *   together; `schema.name()` when a relation has the name);
 * - `backup create --include public.fn` holds fn and what it calls; `--include public.orders`
 *   holds orders with its trigger's function and what that calls, nothing else;
 * - `restore --include public.fn` creates exactly fn (every overload), its callees and its
 *   comment; the restored tables' functions come along with them; `--exclude` leaves one out;
 * - into an existing database: a conflict under fail (nothing changed), replaced under
 *   overwrite (also when the result type changed), refused naming the dependants when objects
 *   left alone depend on it, all in one transaction (a second routine is not created either);
 * - a routine needing a relation neither restored nor in the target is refused before anything
 *   is written; a --rename of a routine is a usage error.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackupManifest } from '../../src/core/schemas.js';
import { SqliteTokenStore } from '../../src/catalog/tokens.js';
import { CairnClient } from '../../src/sdk/index.js';
import { catalogFile, startServer, type RunningServer } from '../../src/server/index.js';
import { cairn, cairnJson, type CliResult } from '../helpers/cli.js';
import { dropDatabase, ensurePostgres, ident, pgUrl, psql, tableChecksums } from '../helpers/postgres.js';

const made: string[] = [];
const name = (what: string): string => {
  const n = `i15fn_${what}_${randomBytes(4).toString('hex')}`;
  made.push(n);
  return n;
};
const newDatabase = (what: string, sql = ''): string => {
  const n = name(what);
  psql('postgres', `CREATE DATABASE ${ident(n)}`);
  if (sql) psql(n, sql);
  return n;
};

const SCHEMA = `
  CREATE TYPE mood AS ENUM ('sad', 'ok');
  CREATE FUNCTION helper(x int) RETURNS int LANGUAGE plpgsql AS $$BEGIN RETURN x * 2; END$$;
  CREATE FUNCTION add(a int, b int) RETURNS int LANGUAGE sql AS 'SELECT helper(a) + b';
  CREATE FUNCTION add(a text, b text) RETURNS text LANGUAGE sql AS 'SELECT a || b';
  COMMENT ON FUNCTION add(a int, b int) IS 'adds, doubling the first';
  CREATE FUNCTION audit_val(v numeric) RETURNS numeric LANGUAGE sql AS 'SELECT v + 1000';
  CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.total := audit_val(NEW.total); RETURN NEW; END$$;
  CREATE FUNCTION unrelated() RETURNS int LANGUAGE sql AS 'SELECT 42';
  COMMENT ON FUNCTION unrelated() IS 'the answer';
  CREATE FUNCTION feeling(m mood) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT m::text';
  CREATE TABLE orders (id serial PRIMARY KEY, total numeric);
  CREATE TRIGGER orders_touch BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION touch();
  INSERT INTO orders (total) VALUES (1), (2);
  CREATE PROCEDURE bump(n int) LANGUAGE plpgsql AS $$BEGIN UPDATE orders SET total = total + n; END$$;
  CREATE FUNCTION orders() RETURNS SETOF orders LANGUAGE sql AS 'SELECT * FROM orders';
  CREATE TABLE notes (id int PRIMARY KEY, body text);
  CREATE SCHEMA extra;
  CREATE FUNCTION extra.g_row(r public.notes) RETURNS int LANGUAGE sql AS 'SELECT r.id';
  CREATE FUNCTION extra.f_caller() RETURNS int LANGUAGE plpgsql AS $$BEGIN RETURN (SELECT count(*) FROM public.notes a JOIN public.notes b ON extra.g_row(a) = b.id); END$$;
  CREATE PROCEDURE extra.p_out(IN a int, OUT b int) LANGUAGE plpgsql AS $$BEGIN b := a; END$$;
  COMMENT ON PROCEDURE extra.p_out(int, int) IS 'a procedure with an OUT argument';
  CREATE TYPE extra.frange AS RANGE (subtype = float8);
`;

/** The user's routines of a database (not a type's own), as regprocedure text, sorted. */
const routines = (db: string): string[] =>
  psql(
    db,
    `SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
        -- not those a type made (the range type's constructors: supporting objects, always there)
        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'i')
      ORDER BY 1`,
  )
    .split('\n')
    .filter(Boolean);
const collections = (m: BackupManifest): Record<string, string> =>
  Object.fromEntries(m.collections.filter((c) => c.selectable !== false).map((c) => [c.name, c.kind]));
const ok = (r: CliResult): CliResult => {
  expect(r.code, r.stderr).toBe(0);
  return r;
};

let dir: string;
let repo: string;
let source: string;

beforeAll(() => {
  ensurePostgres();
  dir = mkdtempSync(join(tmpdir(), 'cairn-routines-'));
  repo = join(dir, 'repo');
  ok(cairn(['repo', 'init', repo]));
  source = newDatabase('src', SCHEMA);
  ok(cairn(['backup', 'create', '--source', pgUrl(source), '--repo', repo, '--id', 'full']));
});

afterAll(() => {
  for (const db of made) dropDatabase(db);
  rmSync(dir, { recursive: true, force: true });
});

describe('backup: functions and procedures are collections', () => {
  it('backup show lists each routine name once (overloads together), procedures as such, and schema.name() beside a table of the name', () => {
    const show = ok(cairn(['backup', 'show', 'full', '--repo', repo])).stdout;
    expect(show).toMatch(/public\.add\s+function/);
    expect(show).toMatch(/public\.bump\s+procedure/);
    expect(show).toMatch(/public\.orders\(\)\s+function/);
    const m = cairnJson<BackupManifest>(['backup', 'show', 'full', '--repo', repo]);
    const kinds = collections(m);
    expect(kinds).toMatchObject({ 'public.add': 'function', 'public.bump': 'procedure', 'public.orders': 'table', 'public.orders()': 'function', 'public.unrelated': 'function', 'extra.p_out': 'procedure' });
    // A range type's constructors come with the type: no collections of their own.
    expect(Object.keys(kinds).filter((n) => n.startsWith('extra.f'))).toEqual(['extra.f_caller']);
    const add = m.collections.find((c) => c.name === 'public.add');
    const signatures = (add?.definition as { overloads: { signature: string }[] }).overloads.map((o) => o.signature).sort();
    expect(signatures).toEqual(['public.add(integer,integer)', 'public.add(text,text)']);
  });

  it('--include public.add holds add and what it calls, nothing else', () => {
    const m = cairnJson<BackupManifest>(['backup', 'create', '--source', pgUrl(source), '--repo', repo, '--id', 'only-add', '--include', 'public.add']);
    expect(collections(m)).toEqual({ 'public.add': 'function', 'public.helper': 'function' });
  });

  it('--include public.orders holds orders, its trigger function and what that calls (named in a PL/pgSQL body)', () => {
    const m = cairnJson<BackupManifest>(['backup', 'create', '--source', pgUrl(source), '--repo', repo, '--id', 'only-orders', '--include', 'public.orders']);
    expect(collections(m)).toEqual({ 'public.orders': 'table', 'public.touch': 'function', 'public.audit_val': 'function' });
    const target = name('orders');
    ok(cairn(['restore', 'only-orders', '--repo', repo, '--to', pgUrl(target)]));
    expect(routines(target)).toEqual(['audit_val(numeric)', 'touch()']);
    // The trigger works: its function and the one it calls are there.
    psql(target, 'INSERT INTO orders (total) VALUES (5)');
    expect(psql(target, 'SELECT total FROM orders ORDER BY id DESC LIMIT 1').trim()).toBe('1005');
  });

  it('a routine selected alone that returns a table\'s rows warns at backup that the table is left out', () => {
    const r = ok(cairn(['backup', 'create', '--source', pgUrl(source), '--repo', repo, '--id', 'only-orders-fn', '--include', 'public.orders()']));
    expect(r.stdout + r.stderr).toMatch(/public\.orders\(\) needs public\.orders/);
  });
});

describe('restore: functions and procedures by name', () => {
  it('--include public.add into a new database creates every overload, its callee and its comment, and nothing else', () => {
    const target = name('add');
    const r = ok(cairn(['restore', 'full', '--repo', repo, '--to', pgUrl(target), '--include', 'public.add']));
    expect(r.stdout).toMatch(/created 1 function/);
    expect(routines(target)).toEqual(['add(integer,integer)', 'add(text,text)', 'helper(integer)']);
    expect(psql(target, 'SELECT add(1, 2)').trim()).toBe('4');
    expect(psql(target, "SELECT obj_description('add(int,int)'::regprocedure)").trim()).toBe('adds, doubling the first');
    expect(psql(target, "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace").trim()).toBe('0');
  });

  it('a procedure by name, and patterns match routines', () => {
    const target = name('proc');
    ok(cairn(['restore', 'full', '--repo', repo, '--to', pgUrl(target), '--include', 'public.bump,public.notes']));
    expect(routines(target)).toEqual(['bump(integer)']);
    const pattern = name('pattern');
    ok(cairn(['restore', 'full', '--repo', repo, '--to', pgUrl(pattern), '--include', 'public.a*']));
    expect(routines(pattern)).toEqual(['add(integer,integer)', 'add(text,text)', 'audit_val(numeric)', 'helper(integer)']);
  });

  it('--exclude leaves a routine out; a table\'s function comes along with it even when excluded', () => {
    const target = name('excl');
    ok(cairn(['restore', 'full', '--repo', repo, '--to', pgUrl(target), '--exclude', 'public.unrelated,public.touch']));
    expect(routines(target)).not.toContain('unrelated()');
    expect(routines(target)).toContain('touch()');
    expect(tableChecksums(target)['public.orders']).toBe(tableChecksums(source)['public.orders']);
  });

  it('a routine whose row type is neither restored nor in the target is refused before anything is written', () => {
    const target = newDatabase('needs');
    const r = cairn(['restore', 'full', '--repo', repo, '--to', pgUrl(target), '--include', 'public.orders(),public.unrelated']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/public\.orders \(needed by public\.orders\(\)\).*--include public\.orders/);
    expect(routines(target)).toEqual([]);
    // With the table, or into a database that has it, it restores.
    ok(cairn(['restore', 'full', '--repo', repo, '--to', pgUrl(target), '--include', 'public.orders']));
    ok(cairn(['restore', 'full', '--repo', repo, '--to', pgUrl(target), '--include', 'public.orders()']));
    expect(psql(target, 'SELECT count(*) FROM orders()').trim()).toBe('2');
  });

  it('a routine that calls one taking a table\'s row type (after ON in a join) needs that table too: refused before anything is written, restored with it', () => {
    const target = newDatabase('callee');
    const r = cairn(['restore', 'full', '--repo', repo, '--to', pgUrl(target), '--include', 'extra.f_caller']);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/public\.notes \(needed by extra\.g_row\(public\.notes\)\)/);
    expect(routines(target)).toEqual([]);
    ok(cairn(['restore', 'full', '--repo', repo, '--to', pgUrl(target), '--include', 'extra.f_caller,public.notes']));
    expect(psql(target, 'SELECT extra.f_caller()').trim()).toBe('0');
    // A procedure with an OUT argument, selected into an existing database: its comment comes with it.
    ok(cairn(['restore', 'full', '--repo', repo, '--to', pgUrl(target), '--include', 'extra.p_out']));
    expect(psql(target, "SELECT obj_description('extra.p_out(int)'::regprocedure)").trim()).toBe('a procedure with an OUT argument');
  });

  it('--rename of a routine is a usage error', () => {
    const r = cairn(['restore', 'full', '--repo', repo, '--to', pgUrl(name('ren')), '--include', 'public.add', '--rename', 'public.add=public.plus']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/a function is restored under its own name/);
  });

  it('into an existing database: a conflict under fail, replaced under overwrite, in one transaction with the other routines', () => {
    const target = newDatabase('exist', `CREATE FUNCTION add(a int, b int) RETURNS int LANGUAGE sql AS 'SELECT 0';`);
    const conflict = cairn(['restore', 'full', '--repo', repo, '--to', pgUrl(target), '--include', 'public.add,public.unrelated']);
    expect(conflict.code).toBe(4);
    expect(conflict.stderr).toMatch(/Function public\.add\(integer,integer\) already exists .*--on-conflict overwrite/);
    expect(routines(target)).toEqual(['add(integer,integer)']);
    const r = ok(cairn(['restore', 'full', '--repo', repo, '--to', pgUrl(target), '--include', 'public.add,public.unrelated', '--on-conflict', 'overwrite']));
    expect(r.stdout).toMatch(/created 1 function; replaced 1 function/);
    expect(psql(target, 'SELECT add(1, 2)').trim()).toBe('4');
    expect(psql(target, "SELECT obj_description('add(int,int)'::regprocedure)").trim()).toBe('adds, doubling the first');
    expect(routines(target)).toEqual(['add(integer,integer)', 'add(text,text)', 'helper(integer)', 'unrelated()']);
  });

  it('a routine the target has exactly as the backup is kept, no conflict: a part of a backup, then the rest, is the whole', () => {
    const target = name('parts');
    ok(cairn(['restore', 'full', '--repo', repo, '--to', pgUrl(target), '--include', 'public.orders,public.add']));
    const rest = ok(cairn(['restore', 'full', '--repo', repo, '--to', pgUrl(target), '--exclude', 'public.orders,public.add']));
    expect(rest.stdout).not.toMatch(/replaced/);
    expect(routines(target)).toEqual(routines(source));
  });

  it('overwrite of a routine whose result type changed: dropped and created; refused, with nothing changed, when objects left alone depend on it', () => {
    const target = newDatabase('rettype', `CREATE FUNCTION unrelated() RETURNS bigint LANGUAGE sql AS 'SELECT 7';`);
    ok(cairn(['restore', 'full', '--repo', repo, '--to', pgUrl(target), '--include', 'public.unrelated', '--on-conflict', 'overwrite']));
    expect(psql(target, "SELECT pg_typeof(unrelated())::text || ' ' || unrelated()").trim()).toBe('integer 42');

    const held = newDatabase('held', `CREATE FUNCTION unrelated() RETURNS bigint LANGUAGE sql AS 'SELECT 7'; CREATE VIEW v AS SELECT unrelated() AS x;`);
    const r = cairn(['restore', 'full', '--repo', repo, '--to', pgUrl(held), '--include', 'public.unrelated,public.add', '--on-conflict', 'overwrite']);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/Cannot replace function public\.unrelated\(\).*view public\.v depends on function public\.unrelated\(\)/);
    // One transaction: add was not created either, and the old function is as it was.
    expect(routines(held)).toEqual(['unrelated()']);
    expect(psql(held, 'SELECT x FROM v').trim()).toBe('7');
  });
});

describe('the API selects routines as the CLI does', () => {
  let server: RunningServer;
  let client: CairnClient;
  beforeAll(async () => {
    const dataDir = join(dir, 'data');
    const store = new SqliteTokenStore(catalogFile(dataDir));
    const token = store.create('operator').token;
    store.close();
    server = await startServer({ dataDir, port: 0, allowAdHocUrls: true, scheduleTickMs: 3600_000, env: {} });
    client = new CairnClient({ url: server.url, token });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('POST /v1/backups and POST /v1/restores with include of a function', async () => {
    const backup = await client.backups.create({ source: pgUrl(source), repository: repo, id: 'api-fn', include: ['public.feeling'] }, { waitForCompletion: true });
    expect(backup.state, JSON.stringify(backup.error)).toBe('SUCCESS');
    const answer = await client.backups.get('api-fn', { repository: repo });
    expect('collections' in answer && answer.collections.filter((c) => c.selectable !== false).map((c) => `${c.name} ${c.kind}`)).toEqual(['public.feeling function']);
    const target = name('api');
    const job = await client.restores.create({ backup: 'full', repository: repo, target: pgUrl(target), include: ['public.feeling', 'public.bump'] }, { waitForCompletion: true });
    expect(job.state, JSON.stringify(job.error)).toBe('SUCCESS');
    expect((job.result as { plan: { created: Record<string, number> } }).plan.created).toEqual({ function: 1, procedure: 1 });
    expect(routines(target)).toEqual(['bump(integer)', 'feeling(mood)']);
    expect(psql(target, "SELECT feeling('ok')").trim()).toBe('ok');
    // The same routine again is no conflict (kept); a changed one is.
    await client.restores.create({ backup: 'api-fn', repository: repo, target: pgUrl(target) }, { waitForCompletion: true });
    psql(target, `CREATE OR REPLACE FUNCTION feeling(m mood) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT ''changed'''`);
    await expect(client.restores.create({ backup: 'api-fn', repository: repo, target: pgUrl(target) }, { waitForCompletion: true })).rejects.toThrow(
      /Function public\.feeling\(public\.mood\) already exists/,
    );
  });
});
