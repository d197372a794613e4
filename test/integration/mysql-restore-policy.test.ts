/**
 * MySQL/MariaDB restore policies against the local MariaDB, through runBackup / runRestore:
 * overwrite of a system-versioned table (its hidden period columns compared like with like),
 * the warning for rows an overwrite leaves without a parent, `--roles --no-privileges`,
 * `--sessions` under `--on-conflict replace` (refuse, wait, terminate), and routines identical
 * to the recorded ones left alone by a partial restore (differing ones conflict or are replaced).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConflictError } from '../../src/core/errors.js';
import { runBackup } from '../../src/jobs/backup.js';
import { runRestore } from '../../src/jobs/restore.js';
import { Repository } from '../../src/repo/repository.js';
import { openSource, openTarget } from '../../src/sources/index.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { column, createDatabase, dropDatabase, ensureMysql, ident, lit, MY_HOST, MY_PORT, MY_USER, myUrl, sql } from '../helpers/mysql.js';

const P = process.pid;
const made: string[] = [];
const users: string[] = [];
let dir: string;
let repo: Repository;
let backups = 0;

function fresh(tag: string): string {
  const name = `cairn_t_pol_${tag}_${P}_${made.length}`;
  made.push(name);
  return name;
}

/** A new source database `tag` holding `text`, backed up; returns its name and the backup id. */
async function backedUp(tag: string, text: string, roles = false): Promise<{ src: string; id: string }> {
  const src = fresh(tag);
  await createDatabase(src);
  await sql(src, text);
  const id = `pol-${++backups}`;
  await runBackup({ repo, source: openSource(myUrl(src), roles ? { roles: true } : {}), id, compressionWorkers: 0 });
  return { src, id };
}

beforeAll(async () => {
  ensureMysql();
  dir = mkdtempSync(join(tmpdir(), 'cairn-mysql-policy-'));
  repo = await Repository.init(new FileSystemStorage(join(dir, 'repo')), { compression: { algorithm: 'none', level: 'default' } });
});

afterAll(async () => {
  for (const u of users) await sql('', `DROP USER IF EXISTS ${lit(u)}@'%'`);
  for (const d of made) await dropDatabase(d);
  // Staging databases of a refused restore are dropped by it; any left by a failure here too.
  for (const d of made) for (const s of await column('', `SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ${lit(`${d.replace(/_/g, '\\_')}\\_\\_cairn\\_%`)}`)) await dropDatabase(s);
  rmSync(dir, { recursive: true, force: true });
});

describe.sequential('MySQL restore policies', () => {
  it('overwrite accepts a system-versioned table with the same columns (implicit period columns) and brings back its history', async () => {
    const { src, id } = await backedUp('sv', `CREATE TABLE versioned (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING; INSERT INTO versioned VALUES (1, 1), (2, 2); UPDATE versioned SET v = 3 WHERE id = 1`);
    const dst = fresh('svdst');
    await runRestore({ repo, backupId: id, target: openTarget(myUrl(dst)) });
    await sql(dst, `UPDATE versioned SET v = 99; DELETE FROM versioned WHERE id = 2`);
    const result = await runRestore({ repo, backupId: id, target: openTarget(myUrl(dst)), onConflict: 'overwrite' });
    expect(result.plan?.replaced).toMatchObject({ table: 1 });
    const history = `SELECT id, v, ROW_START, ROW_END FROM versioned FOR SYSTEM_TIME ALL ORDER BY id, ROW_START`;
    expect(await sql(dst, history)).toEqual(await sql(src, history));
    // A target table whose visible columns differ is still refused.
    await sql(dst, `SET SESSION system_versioning_alter_history = KEEP; ALTER TABLE versioned ADD COLUMN extra INT`);
    await expect(runRestore({ repo, backupId: id, target: openTarget(myUrl(dst)), onConflict: 'overwrite' })).rejects.toThrow(
      /table "versioned" has columns \(id int\(11\), v int\(11\), extra int\(11\), ROW_START timestamp\(6\), ROW_END timestamp\(6\)\) in the target but \(id int\(11\), v int\(11\), ROW_START timestamp\(6\), ROW_END timestamp\(6\)\)/,
    );
  }, 60_000);

  it('overwrite of a parent warns of child rows left without a parent, naming the table, the constraint and the count', async () => {
    const { id } = await backedUp(
      'fk',
      `CREATE TABLE customers (id INT PRIMARY KEY, name TEXT);
       CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT, CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id));
       INSERT INTO customers VALUES (1, 'a'), (2, 'b'), (3, 'c'); INSERT INTO orders VALUES (10, 1), (11, 3), (12, NULL);`,
    );
    const dst = fresh('fkdst');
    await runRestore({ repo, backupId: id, target: openTarget(myUrl(dst)) });
    await sql(dst, `INSERT INTO customers VALUES (4, 'd'); INSERT INTO orders VALUES (13, 4), (14, 4)`);
    const result = await runRestore({ repo, backupId: id, target: openTarget(myUrl(dst)), selection: { include: ['customers'] }, onConflict: 'overwrite' });
    expect(await column(dst, `SELECT id FROM customers ORDER BY id`)).toEqual(['1', '2', '3']);
    const warnings = (result.warnings ?? []).join('\n');
    expect(warnings).toMatch(/table "orders" has 2 rows whose foreign key "fk_orders_customer" finds no row in "customers"/);
    // A restore that leaves no orphans says nothing of the kind.
    await sql(dst, `DELETE FROM orders WHERE customer_id = 4`);
    const clean = await runRestore({ repo, backupId: id, target: openTarget(myUrl(dst)), selection: { include: ['customers'] }, onConflict: 'overwrite' });
    expect((clean.warnings ?? []).join('\n')).not.toMatch(/finds no row/);
  }, 60_000);

  it('--roles --no-privileges creates the users without their grants', async () => {
    const name = `cairn_p_${P}_np`;
    users.push(name);
    const account = `${lit(name)}@'%'`;
    await sql('', `DROP USER IF EXISTS ${account}`);
    const src = fresh('np');
    await createDatabase(src);
    await sql(src, `CREATE TABLE t (id INT PRIMARY KEY)`);
    await sql('', `CREATE USER ${account}; GRANT SELECT, INSERT ON ${ident(src)}.* TO ${account}`);
    const id = `pol-${++backups}`;
    await runBackup({ repo, source: openSource(myUrl(src), { roles: true }), id, compressionWorkers: 0 });
    await sql('', `DROP USER ${account}`);
    const dst = fresh('npdst');
    await runRestore({ repo, backupId: id, target: openTarget(myUrl(dst)), roles: true, noPrivileges: true });
    const grants = await column('', `SHOW GRANTS FOR ${account}`);
    expect(grants).toEqual([`GRANT USAGE ON *.* TO ${ident(name)}@\`%\``]);
    // Without --no-privileges the grants come back (aimed at the database restored into).
    await sql('', `DROP USER ${account}`);
    const dst2 = fresh('npdst');
    await runRestore({ repo, backupId: id, target: openTarget(myUrl(dst2)), roles: true });
    expect((await column('', `SHOW GRANTS FOR ${account}`)).join('\n')).toContain(`GRANT SELECT, INSERT ON ${ident(dst2)}.*`);
  }, 60_000);

  it('replace with another session in the target: refuse names it, wait waits for it to leave, terminate ends it', async () => {
    const { id } = await backedUp('ses', `CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2)`);
    const dst = fresh('sesdst');
    await runRestore({ repo, backupId: id, target: openTarget(myUrl(dst)) });
    const open = async (): Promise<{ conn: mysql.Connection; threadId: number }> => {
      const conn = await mysql.createConnection({ host: MY_HOST, port: MY_PORT, user: MY_USER, database: dst });
      await conn.query('START TRANSACTION');
      await conn.query('SELECT * FROM t');
      return { conn, threadId: conn.threadId ?? -1 };
    };

    // refuse (the default): ConflictError naming the session and the fix; nothing changed.
    const a = await open();
    const refused = await runRestore({ repo, backupId: id, target: openTarget(myUrl(dst)), onConflict: 'replace' }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ConflictError);
    expect((refused as Error).message).toMatch(new RegExp(`id ${a.threadId} \\(root@[^,]+, Sleep, \\d+s\\).*--sessions wait.*--sessions terminate`));

    // wait, bounded: still there after the timeout → ConflictError.
    const timedOut = await runRestore({ repo, backupId: id, target: openTarget(myUrl(dst)), onConflict: 'replace', sessions: 'wait', sessionsTimeoutMs: 500 }).catch((e: unknown) => e);
    expect(timedOut).toBeInstanceOf(ConflictError);
    expect((timedOut as Error).message).toMatch(/still using .* after waiting/);

    // wait: the restore finishes only once the session has left.
    let left = false;
    const waiting = runRestore({ repo, backupId: id, target: openTarget(myUrl(dst)), onConflict: 'replace', sessions: 'wait', sessionsTimeoutMs: 60_000 }).then((r) => {
      expect(left).toBe(true);
      return r;
    });
    // The journal is written just before the sessions are looked at: once it exists, the restore waits.
    const pattern = lit(`${dst.replace(/_/g, '\\_')}\\_\\_cairn\\_%\\_log`);
    for (let i = 0; i < 600 && (await column('', `SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ${pattern}`)).length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    left = true;
    await a.conn.end();
    await waiting;
    expect(await column(dst, `SELECT id FROM t ORDER BY id`)).toEqual(['1', '2']);

    // terminate: the session is ended and the restore says so.
    const b = await open();
    const ended = await runRestore({ repo, backupId: id, target: openTarget(myUrl(dst)), onConflict: 'replace', sessions: 'terminate' });
    expect((ended.warnings ?? []).join('\n')).toMatch(new RegExp(`ended a session using .*id ${b.threadId} `));
    await expect(b.conn.query('SELECT 1')).rejects.toThrow();
    b.conn.destroy();
  }, 120_000);

  it('a partial restore leaves routines identical to the recorded ones alone; a differing one conflicts (fail) or is replaced (overwrite)', async () => {
    const { id } = await backedUp(
      'rt',
      `CREATE TABLE t (id INT PRIMARY KEY); CREATE TABLE u (id INT PRIMARY KEY); INSERT INTO u VALUES (1);
       CREATE PROCEDURE p(IN x INT) COMMENT 'recorded' SELECT x + 1;
       CREATE FUNCTION f(x INT) RETURNS INT DETERMINISTIC RETURN x * 2;
       CREATE EVENT e ON SCHEDULE EVERY 1 DAY STARTS '2031-01-01 00:00:00' DISABLE DO DELETE FROM u WHERE id < 0;`,
    );
    const dst = fresh('rtdst');
    await runRestore({ repo, backupId: id, target: openTarget(myUrl(dst)) });
    const routineSql = async (): Promise<string[]> => column('', `SELECT CONCAT(ROUTINE_NAME, ':', ROUTINE_DEFINITION, ':', ROUTINE_COMMENT, ':', CREATED) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ${lit(dst)} ORDER BY 1`);
    const before = await routineSql();

    // One table, under fail: the identical routines and event are no conflict and stay untouched
    // (same CREATED time); a missing function is created.
    await sql(dst, `DROP TABLE u; DROP FUNCTION f`);
    const one = await runRestore({ repo, backupId: id, target: openTarget(myUrl(dst)), selection: { include: ['u'] } });
    expect(await column(dst, `SELECT id FROM u`)).toEqual(['1']);
    const after = await routineSql();
    expect(after.find((r) => r.startsWith('p:'))).toBe(before.find((r) => r.startsWith('p:')));
    expect(after.find((r) => r.startsWith('f:'))).toMatch(/^f:RETURN x \* 2:/);
    expect(one.plan?.created).toMatchObject({ table: 1, function: 1 });
    expect(one.plan?.replaced ?? {}).toEqual({});

    // A procedure with another body: fail names it; overwrite replaces it with the recorded one.
    await sql(dst, `DROP TABLE u; DROP PROCEDURE p; CREATE PROCEDURE p(IN x INT) COMMENT 'recorded' SELECT x + 2`);
    const err = await runRestore({ repo, backupId: id, target: openTarget(myUrl(dst)), selection: { include: ['u'] } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as Error).message).toMatch(/already holds procedure "p" \(with another definition\)/);
    expect((err as Error).message).not.toMatch(/function "f"|event "e"/);
    const over = await runRestore({ repo, backupId: id, target: openTarget(myUrl(dst)), selection: { include: ['u'] }, onConflict: 'overwrite' });
    expect(over.plan?.replaced).toEqual({ procedure: 1 });
    expect((await routineSql()).find((r) => r.startsWith('p:'))).toMatch(/^p:SELECT x \+ 1:recorded:/);
  }, 60_000);
});
