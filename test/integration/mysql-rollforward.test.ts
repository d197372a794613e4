/**
 * A MySQL/MariaDB restore killed around its switch, reproduced exactly with the test hook
 * CAIRN_TEST_MYSQL_KILL_AT (journal.ts: the process SIGKILLs itself at a named point), and then
 * settled from its journal by whoever finds the leftovers (leftovers.ts settleAbandoned, which
 * the next restore to the target runs first):
 * - killed after the RENAME (before any step, or part-way through the steps): the target holds
 *   the restored tables without some of their views, triggers and routines, until settling
 *   finishes it: then it equals a complete restore, and nothing of the killed restore remains;
 * - killed just before the RENAME (the replaced tables' triggers already dropped): settling puts
 *   them back: the target equals what it was;
 * - the next `cairn restore` does the settling and says so on stderr (in its error, when its
 *   conflict check then refuses it).
 * Also CAIRN_TEST_MYSQL_INTERRUPT_AT: a Ctrl-C (SIGINT) right after the RENAME is ignored, the
 * restore completes (exit 0).
 * Databases `cairn_rf_<pid>_<label>`, dropped in afterAll with their leftovers.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SourceError } from '../../src/core/errors.js';
import { parseMysqlUrl } from '../../src/sources/mysql/connection.js';
import { settleAbandoned } from '../../src/sources/mysql/leftovers.js';
import { close, openSession } from '../../src/sources/mysql/session.js';
import { cairn, CLI, PROJECT_ROOT, type CliResult } from '../helpers/cli.js';
import { column, createDatabase, databaseExists, dropScratchDatabases, ensureMysql, lit, myUrl, snapshotOf, sql, stagingDatabases } from '../helpers/mysql.js';

type Snapshot = Awaited<ReturnType<typeof snapshotOf>>;

const databases = new Set<string>();
let work: string;
let repo: string;
/** An existing target before a restore, after a complete overwrite restore; a new database after a complete restore. */
let before: Snapshot;
let after: Snapshot;
let fresh: Snapshot;

const dbName = (label: string): string => {
  const name = `cairn_rf_${process.pid}_${label}`;
  databases.add(name);
  return name;
};

function ok(r: CliResult): CliResult {
  expect(r.code, `exit ${r.code}: ${r.stderr}`).toBe(0);
  return r;
}

/** `cairn restore` of the backup into `db` with the test hook env; how it ended. */
function restoreWith(db: string, env: NodeJS.ProcessEnv, policy = 'overwrite'): { code: number | null; signal: NodeJS.Signals | null; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, 'restore', 'b1', '--repo', repo, '--to', myUrl(db), '--on-conflict', policy, '--jobs', '2'], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (r.error) throw r.error;
  return { code: r.status, signal: r.signal, stderr: r.stderr };
}

/** settleAbandoned as the next restore runs it: its messages. */
async function settle(db: string): Promise<string[]> {
  const settings = parseMysqlUrl(myUrl(db), {}, {}, '/nonexistent');
  const conn = await openSession(settings, '');
  try {
    return (await settleAbandoned(conn, db, db)).messages;
  } finally {
    await close(conn);
  }
}

const SOURCE_SQL = `
CREATE TABLE big (id INT NOT NULL PRIMARY KEY, v VARCHAR(60) NOT NULL, n BIGINT NOT NULL, KEY ix_n (n)) ENGINE=InnoDB;
INSERT INTO big SELECT seq, CONCAT('row ', seq), seq * 7 FROM seq_1_to_5000;
CREATE TABLE small (id INT NOT NULL PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB;
INSERT INTO small VALUES (1, 'one'), (2, 'two'), (3, 'three');
CREATE TABLE audit (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, what VARCHAR(40)) ENGINE=InnoDB;
CREATE TRIGGER small_ai AFTER INSERT ON small FOR EACH ROW INSERT INTO audit (what) VALUES (CONCAT('small ', NEW.id));
CREATE VIEW big_summary AS SELECT COUNT(*) AS rows_, SUM(n) AS total FROM big;
CREATE VIEW small_names AS SELECT v FROM small;
CREATE PROCEDURE add_small(IN i INT) INSERT INTO small (id, v) VALUES (i, 'added');
CREATE EVENT ev_tidy ON SCHEDULE EVERY 1 DAY STARTS '2031-01-01 00:00:00' DISABLE DO DELETE FROM audit WHERE id < 0;
`;

/**
 * An existing target: the backup's tables with other rows, its own trigger on one (dropped just
 * before the RENAME), its own view and procedure of restored names, and a table of its own whose
 * foreign key references a replaced table (re-pointed after the RENAME).
 */
async function existingTarget(label: string): Promise<string> {
  const db = dbName(label);
  await createDatabase(db);
  await sql(
    db,
    `CREATE TABLE big (id INT NOT NULL PRIMARY KEY, v VARCHAR(60) NOT NULL, n BIGINT NOT NULL, KEY ix_n (n)) ENGINE=InnoDB;
     INSERT INTO big VALUES (1, 'mine', 1);
     CREATE TABLE small (id INT NOT NULL PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB;
     INSERT INTO small VALUES (1, 'mine');
     CREATE TABLE audit (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, what VARCHAR(40)) ENGINE=InnoDB;
     CREATE TRIGGER small_ai AFTER INSERT ON small FOR EACH ROW INSERT INTO audit (what) VALUES ('mine');
     CREATE VIEW big_summary AS SELECT 'mine' AS rows_, 0 AS total;
     CREATE PROCEDURE add_small(IN i INT) SELECT i;
     CREATE TABLE keep (id INT NOT NULL PRIMARY KEY, s INT, CONSTRAINT fk_keep_small FOREIGN KEY (s) REFERENCES small (id)) ENGINE=InnoDB;
     INSERT INTO keep VALUES (1, 1);`,
  );
  return db;
}

beforeAll(async () => {
  ensureMysql();
  work = mkdtempSync(join(tmpdir(), 'cairn-my-rf-'));
  repo = join(work, 'repo');
  ok(cairn(['repo', 'init', repo]));
  const source = dbName('src');
  await createDatabase(source);
  await sql(source, SOURCE_SQL);
  ok(cairn(['backup', 'create', '--source', myUrl(source), '--repo', repo, '--id', 'b1']));
  before = await snapshotOf(await existingTarget('before'));
  const complete = await existingTarget('complete');
  ok(cairn(['restore', 'b1', '--repo', repo, '--to', myUrl(complete), '--on-conflict', 'overwrite']));
  after = await snapshotOf(complete);
  expect(after).not.toEqual(before);
  const made = dbName('fresh');
  ok(cairn(['restore', 'b1', '--repo', repo, '--to', myUrl(made)]));
  fresh = await snapshotOf(made);
}, 120_000);

afterAll(async () => {
  await dropScratchDatabases(databases);
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('a MySQL restore killed around its switch is settled from its journal', () => {
  for (const point of ['after-rename', 'step-1', 'step-3', 'step-6']) {
    it(`into an existing database, killed at ${point}: half-written until settled, then exactly a complete restore; nothing left`, async () => {
      const db = await existingTarget(`ex_${point.replace('-', '_')}`);
      const r = restoreWith(db, { CAIRN_TEST_MYSQL_KILL_AT: point });
      expect(r.signal, r.stderr).toBe('SIGKILL');
      // The kill reproduced the problem: the tables are in, not everything else yet.
      const killed = await snapshotOf(db);
      expect(killed).not.toEqual(before);
      expect(killed).not.toEqual(after);
      expect(await stagingDatabases(db)).toContainEqual(expect.stringMatching(/_log$/));
      const messages = await settle(db);
      // The journal's line, then the line naming the databases removed (leftovers.ts).
      expect(messages).toHaveLength(2);
      expect(messages[1]).toMatch(new RegExp(`^removed the databases ${db}__cairn_[0-9a-f]{8}, ${db}__cairn_[0-9a-f]{8}_old, ${db}__cairn_[0-9a-f]{8}_log left by an interrupted restore to ${db}\\.$`));
      expect(messages[0]).toMatch(new RegExp(`^finished an interrupted restore of ${db} \\(it was stopped after switching its tables in; created .*; dropped the tables it replaced\\)\\.$`));
      if (point === 'after-rename') expect(messages[0]).toContain('views big_summary, small_names');
      expect(await snapshotOf(db)).toEqual(after);
      expect(await stagingDatabases(db)).toEqual([]);
      // The child table's foreign key was re-pointed at the restored "small".
      expect(await column('', `SELECT UNIQUE_CONSTRAINT_SCHEMA FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ${lit(db)} AND CONSTRAINT_NAME = 'fk_keep_small'`)).toEqual([db]);
    }, 120_000);
  }

  it('into an existing database, killed just before the RENAME (its triggers dropped): settling puts the target back as it was', async () => {
    const db = await existingTarget('ex_before');
    const r = restoreWith(db, { CAIRN_TEST_MYSQL_KILL_AT: 'before-rename' });
    expect(r.signal, r.stderr).toBe('SIGKILL');
    expect(await snapshotOf(db), 'the trigger of the replaced table is gone until settled').not.toEqual(before);
    const messages = await settle(db);
    expect(messages).toEqual([
      `undid an interrupted restore of ${db} (it was stopped just before switching its tables in; put back trigger small_ai).`,
      expect.stringMatching(new RegExp(`^removed the databases ${db}__cairn_[0-9a-f]{8}, ${db}__cairn_[0-9a-f]{8}_old, ${db}__cairn_[0-9a-f]{8}_log left by an interrupted restore to ${db}\\.$`)),
    ]);
    expect(await snapshotOf(db)).toEqual(before);
    expect(await stagingDatabases(db)).toEqual([]);
  }, 120_000);

  it('into a new database, killed after the RENAME: settling finishes it; killed before: the database it created is dropped', async () => {
    const db = dbName('new_after');
    let r = restoreWith(db, { CAIRN_TEST_MYSQL_KILL_AT: 'after-rename' }, 'fail');
    expect(r.signal, r.stderr).toBe('SIGKILL');
    expect(await snapshotOf(db)).not.toEqual(fresh);
    expect((await settle(db))[0]).toMatch(/^finished an interrupted restore .*created views big_summary, small_names; trigger small_ai; procedure add_small; event ev_tidy\)\.$/);
    expect(await snapshotOf(db)).toEqual(fresh);
    expect(await stagingDatabases(db)).toEqual([]);

    const other = dbName('new_before');
    r = restoreWith(other, { CAIRN_TEST_MYSQL_KILL_AT: 'before-rename' }, 'fail');
    expect(r.signal, r.stderr).toBe('SIGKILL');
    expect(await databaseExists(other), 'created just before the RENAME').toBe(true);
    expect(await settle(other)).toEqual([
      `undid an interrupted restore of ${other} (it was stopped just before switching its tables in; dropped the database ${other} it had created).`,
      expect.stringMatching(new RegExp(`^removed the databases ${other}__cairn_[0-9a-f]{8}, ${other}__cairn_[0-9a-f]{8}_log left by an interrupted restore to ${other}\\.$`)),
    ]);
    expect(await databaseExists(other)).toBe(false);
    expect(await stagingDatabases(other)).toEqual([]);
  }, 120_000);

  it('the next cairn restore to the target finishes the killed one first and says so', async () => {
    const db = await existingTarget('cli');
    const r = restoreWith(db, { CAIRN_TEST_MYSQL_KILL_AT: 'after-rename' });
    expect(r.signal, r.stderr).toBe('SIGKILL');
    const next = restoreWith(db, {});
    expect(next.code, next.stderr).toBe(0);
    expect(next.stderr).toMatch(new RegExp(`cairn: warning: finished an interrupted restore of \\S*${db}\\S* \\(it was stopped after switching its tables in; created views big_summary, small_names; trigger small_ai; procedure add_small; event ev_tidy; dropped the tables it replaced\\)\\.`));
    expect(await snapshotOf(db)).toEqual(after);
    expect(await stagingDatabases(db)).toEqual([]);
  }, 120_000);

  it('a restore refused by its conflict check still finishes the killed one first, and its error says so', async () => {
    const db = await existingTarget('cli_fail');
    const r = restoreWith(db, { CAIRN_TEST_MYSQL_KILL_AT: 'step-2' });
    expect(r.signal, r.stderr).toBe('SIGKILL');
    const next = restoreWith(db, {}, 'fail');
    expect(next.code, next.stderr).not.toBe(0);
    expect(next.stderr).toMatch(/already holds .*\(Before that, this restore finished an interrupted restore of \S+ \(it was stopped after switching its tables in; created .*\); removed the databases \S+, \S+, \S+ left by an interrupted restore to \S+\.\)/s);
    expect(await snapshotOf(db)).toEqual(after);
    expect(await stagingDatabases(db)).toEqual([]);
  }, 120_000);

  it('a step the server refuses while finishing fails naming it and keeps the journal; once fixed, the next try finishes', async () => {
    const db = await existingTarget('refused');
    const r = restoreWith(db, { CAIRN_TEST_MYSQL_KILL_AT: 'after-rename' });
    expect(r.signal, r.stderr).toBe('SIGKILL');
    // The table a view reads moved away meanwhile: its CREATE VIEW fails.
    await sql(db, 'RENAME TABLE small TO small_away');
    const err = await settle(db).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SourceError);
    expect((err as Error).message).toMatch(new RegExp(`^Cannot finish an interrupted restore of ${db}: view "small_names": .*small.* Its journal is kept in ${db}__cairn_[0-9a-f]{8}_log;`));
    expect(await stagingDatabases(db)).toContainEqual(expect.stringMatching(/_log$/));
    await sql(db, 'RENAME TABLE small_away TO small');
    expect((await settle(db))[0]).toMatch(/^finished an interrupted restore .*created view small_names; trigger small_ai; procedure add_small; event ev_tidy; dropped the tables it replaced\)\.$/);
    expect(await snapshotOf(db)).toEqual(after);
    expect(await stagingDatabases(db)).toEqual([]);
  }, 120_000);

  it('a Ctrl-C right after the RENAME is ignored: the restore completes, exit 0, nothing left', async () => {
    const db = await existingTarget('sigint');
    const r = restoreWith(db, { CAIRN_TEST_MYSQL_INTERRUPT_AT: 'after-rename' });
    expect(r.code, r.stderr).toBe(0);
    expect(await snapshotOf(db)).toEqual(after);
    expect(await stagingDatabases(db)).toEqual([]);
  }, 120_000);
});
