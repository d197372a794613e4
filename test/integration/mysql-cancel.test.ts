/**
 * `cairn restore` to MySQL/MariaDB through the built CLI, as a user ran it:
 * - Ctrl-C (SIGINT) while a large `LOAD DATA LOCAL INFILE` streams into staging: it used to hang
 *   ("cancelling…" for minutes, the staging database held by an idle session) because the
 *   driver never settles a query whose connection it closed itself. Now it exits 130 within
 *   seconds, leaving the target as it was, no staging database, no repository lock.
 * - A user's database whose name matches the staging pattern (`<target>__cairn_<8 hex>`) is not
 *   cairn's: it is left alone; a leftover cairn marked as its own is dropped and named.
 * Databases `cairn_cx_<pid>_<label>`, dropped in afterAll.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STAGING_COMMENT } from '../../src/sources/mysql/leftovers.js';
import { cairn, cairnAsync, type CliResult } from '../helpers/cli.js';
import { column, createDatabase, databaseExists, dropScratchDatabases, ensureMysql, ident, lit, myUrl, snapshotOf, sql, stagingDatabases } from '../helpers/mysql.js';

const EXIT_CANCELLED = 130;
/** Rows of ~800 bytes: ~60 MiB, a LOAD DATA of a few seconds (the hang needed only one in flight). */
const ROWS = 75_000;

const databases = new Set<string>();
let work: string;
let repo: string;

const dbName = (label: string): string => {
  const name = `cairn_cx_${process.pid}_${label}`;
  databases.add(name);
  return name;
};

function ok(r: CliResult): CliResult {
  expect(r.code, `exit ${r.code}: ${r.stderr}`).toBe(0);
  return r;
}

/** Whether a LOAD DATA runs into a staging database of `db`. */
async function loading(db: string): Promise<boolean> {
  const n = await column(
    '',
    `SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'LOAD DATA%' AND DB LIKE ${lit(`${db.replace(/_/g, '\\_')}\\_\\_cairn\\_%`)}`,
  );
  return n[0] !== '0';
}

async function until(child: ChildProcess, cond: () => Promise<boolean>, timeoutMs = 60_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && child.exitCode === null && child.signalCode === null) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return false;
}

const exitOf = (child: ChildProcess): Promise<number | null> =>
  child.exitCode !== null || child.signalCode !== null ? Promise.resolve(child.exitCode) : new Promise((resolve) => child.once('exit', (code) => resolve(code)));

beforeAll(async () => {
  ensureMysql();
  work = mkdtempSync(join(tmpdir(), 'cairn-my-cancel-'));
  repo = join(work, 'repo');
  ok(cairn(['repo', 'init', repo]));
  const src = dbName('src');
  await createDatabase(src);
  await sql(src, `CREATE TABLE big (id INT NOT NULL PRIMARY KEY, v VARCHAR(1000) NOT NULL) ENGINE=InnoDB`);
  await sql(src, `INSERT INTO big SELECT seq, REPEAT(MD5(seq), 25) FROM seq_1_to_${ROWS}`);
  ok(cairn(['backup', 'create', '--source', myUrl(src), '--repo', repo, '--id', 'big']));
}, 120_000);

afterAll(async () => {
  await dropScratchDatabases(databases);
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('Ctrl-C during a large LOAD DATA (MySQL restore through the CLI)', () => {
  for (const existing of [false, true]) {
    it(`${existing ? 'into an existing database (--on-conflict overwrite)' : 'into a new database'}: exits 130 within seconds, target as it was, no staging database, no lock`, async () => {
      const target = dbName(existing ? 'over' : 'new');
      if (existing) {
        await createDatabase(target);
        await sql(target, `CREATE TABLE big (id INT NOT NULL PRIMARY KEY, v VARCHAR(1000) NOT NULL) ENGINE=InnoDB`);
        await sql(target, `INSERT INTO big VALUES (1, 'mine'), (2, 'mine too')`);
      }
      const before = existing ? await snapshotOf(target) : undefined;
      const child = cairnAsync(['restore', 'big', '--repo', repo, '--to', myUrl(target), ...(existing ? ['--on-conflict', 'overwrite'] : [])]);
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      expect(await until(child, () => loading(target)), `no LOAD DATA was seen: ${stderr}`).toBe(true);
      // Well inside the load (it takes seconds), with rows streamed.
      await new Promise((r) => setTimeout(r, 300));
      expect(await loading(target), 'the LOAD DATA still runs when Ctrl-C comes').toBe(true);
      const at = Date.now();
      child.kill('SIGINT');
      const exited = await Promise.race([exitOf(child), new Promise<'hung'>((r) => setTimeout(() => r('hung'), 15_000))]);
      if (exited === 'hung') child.kill('SIGKILL');
      expect(exited, `still running 15 s after Ctrl-C: ${stderr}`).toBe(EXIT_CANCELLED);
      console.log(`exit ${exited} ${Date.now() - at} ms after Ctrl-C`);
      expect(stderr).toMatch(/cancel/i);
      expect(await stagingDatabases(target)).toEqual([]);
      if (existing) expect(await snapshotOf(target)).toEqual(before);
      else expect(await databaseExists(target)).toBe(false);
      expect(readdirSync(join(repo, 'locks')), 'repository locks').toEqual([]);
    }, 60_000);
  }
});

describe('leftovers of killed restores (MySQL)', () => {
  it("a user's database named like a staging database is left alone; a marked leftover is dropped and named", async () => {
    const target = dbName('q');
    const users = `${target}__cairn_0badf00d`;
    const leftover = `${target}__cairn_deadbeef`;
    databases.add(users);
    databases.add(leftover);
    await sql('', `CREATE DATABASE ${ident(users)}`);
    await sql(users, `CREATE TABLE precious (id INT PRIMARY KEY, v VARCHAR(20))`);
    await sql(users, `INSERT INTO precious VALUES (1, 'keep me'), (2, 'me too')`);
    const kept = await snapshotOf(users);
    await sql('', `CREATE DATABASE ${ident(leftover)} COMMENT ${lit(STAGING_COMMENT)}`);
    await sql(leftover, `CREATE TABLE big (id INT)`);
    const r = ok(cairn(['restore', 'big', '--repo', repo, '--to', myUrl(target)]));
    expect(await snapshotOf(users)).toEqual(kept);
    expect(await databaseExists(leftover)).toBe(false);
    expect(r.stderr).toContain(`removed the database ${leftover} left by an interrupted restore to`);
    expect(r.stderr + r.stdout).not.toContain(users);
    expect(Number((await column(target, 'SELECT COUNT(*) FROM big'))[0])).toBe(ROWS);
    // Again (the user's database still there): it neither blocks nor is touched.
    ok(cairn(['restore', 'big', '--repo', repo, '--to', myUrl(target), '--on-conflict', 'overwrite']));
    expect(await snapshotOf(users)).toEqual(kept);
  }, 120_000);
});
