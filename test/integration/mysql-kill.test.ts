/**
 * `cairn restore` into an existing MySQL/MariaDB database (--on-conflict overwrite), stopped
 * at seeded random moments: kill -9 (SIGKILL) and Ctrl-C (SIGINT). The moments: as soon as the
 * staging database appears, while a LOAD DATA runs into it, and just before the switch (the
 * largest table's rows committed in staging), each plus a seeded delay (delayFor).
 *
 * After a Ctrl-C the target is either unchanged (schema and every table's checksum as before) or
 * fully restored (as an uninterrupted restore leaves it), never in between; it exits 130 (or 0
 * when it came after the switch) and leaves nothing behind. After a kill, the leftovers are
 * settled as the next restore settles them first (leftovers.ts settleAbandoned): then the target
 * is unchanged or fully restored, never in between (a kill in the milliseconds after the switch
 * leaves it half-written only until then: the switch journal finishes it), and nothing of the
 * killed restore remains; the next restore then restores it. The exact points around the switch
 * are tested deterministically in mysql-rollforward.test.ts. Seed: MYSQL_KILL_SEED (printed).
 * Databases `cairn_kl_<pid>_<label>`, dropped in afterAll.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMysqlUrl } from '../../src/sources/mysql/connection.js';
import { settleAbandoned } from '../../src/sources/mysql/leftovers.js';
import { close, openSession } from '../../src/sources/mysql/session.js';
import { cairn, cairnAsync, type CliResult } from '../helpers/cli.js';
import { column, createDatabase, dropDatabase, ensureMysql, ident, lit, MY_HOST, MY_PORT, MY_USER, myUrl, snapshotOf, sql } from '../helpers/mysql.js';

const EXIT_CANCELLED = 130;
/** Rows of the large table: enough that its LOAD DATA is seen running, little enough to stay fast. */
const BIG_ROWS = 100_000;
const SEED = Number(process.env.MYSQL_KILL_SEED ?? 20261201);

type Moment = 'staging' | 'load' | 'switch';
type Snapshot = Awaited<ReturnType<typeof snapshotOf>>;

const databases = new Set<string>();
let work: string;
let repo: string;
let source: string;
/** The target before a restore and after a complete one (same for every run: built alike). */
let before: Snapshot;
let after: Snapshot;
/** A session of its own for polling (fast, no connection per check). */
let poller: mysql.Connection;

const dbName = (label: string): string => {
  const name = `cairn_kl_${process.pid}_${label}`;
  databases.add(name);
  return name;
};

/** mulberry32: the runs' moments and delays, reproducible from the seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function ok(r: CliResult): CliResult {
  expect(r.code, `exit ${r.code}: ${r.stderr}`).toBe(0);
  return r;
}

const like = (s: string): string => s.replace(/[|%_]/g, (c) => `|${c}`);
const stagingPattern = (db: string): string => lit(`${like(db.slice(0, 40))}|_|_cairn|_%`);

async function pollValue(text: string): Promise<string | undefined> {
  const [rows] = await poller.query({ sql: text, rowsAsArray: true });
  const first = (rows as unknown[][])[0]?.[0];
  return first === undefined || first === null ? undefined : String(first);
}

/** Staging databases of restores into `db`. */
const stagingFor = (db: string): Promise<string[]> =>
  column('', `SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ${stagingPattern(db)} ESCAPE '|' ORDER BY 1`);

/** Tables a restore works with inside the target (`…__cairn_…`: old copies before their drop). */
const stagingTablesIn = (db: string): Promise<string[]> =>
  column('', `SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${lit(db)} AND TABLE_NAME LIKE '%|_|_cairn|_%' ESCAPE '|' ORDER BY 1`);

/** Whether the moment has come, for a restore into `db`. */
async function reached(moment: Moment, db: string): Promise<boolean> {
  const staging = await pollValue(`SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ${stagingPattern(db)} ESCAPE '|' LIMIT 1`);
  if (staging === undefined) return false;
  if (moment === 'staging') return true;
  if (moment === 'load') {
    return (
      (await pollValue(
        `SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'LOAD DATA%' AND (DB = ${lit(staging)} OR INFO LIKE ${lit(`%${like(staging)}%`)} ESCAPE '|')`,
      )) !== '0'
    );
  }
  // The largest table is loaded first, in one statement: once its rows show, the switch is near.
  try {
    return (await pollValue(`SELECT 1 FROM ${ident(staging)}.\`big\` LIMIT 1`)) !== undefined;
  } catch {
    return false; // not created yet, or already moved
  }
}

/** settleAbandoned as the next restore to `db` runs it first: its messages. */
async function settle(db: string): Promise<string[]> {
  const conn = await openSession(parseMysqlUrl(myUrl(db), {}, {}, '/nonexistent'), '');
  try {
    return (await settleAbandoned(conn, db, db)).messages;
  } finally {
    await close(conn);
  }
}

/** How a state differs from `after` (a restore stopped half-way): schema lines and tables. */
function differences(state: Snapshot): string {
  const lines = (x: string): Set<string> => new Set(x.split('\n'));
  const [got, want] = [lines(state.schema), lines(after.schema)];
  const missing = [...want].filter((l) => !got.has(l));
  const extra = [...got].filter((l) => !want.has(l));
  const tables = Object.keys({ ...after.checksums, ...state.checksums }).filter((t) => state.checksums[t] !== after.checksums[t]);
  return `compared with a complete restore: schema lines missing ${JSON.stringify(missing.slice(0, 8))}, extra ${JSON.stringify(extra.slice(0, 8))}; tables differing ${JSON.stringify(tables)}`;
}

/** Polls until `cond` holds or the child exits; returns whether it held. */
async function until(child: ChildProcess, cond: () => Promise<boolean>, timeoutMs = 60_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && child.exitCode === null && child.signalCode === null) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 3));
  }
  return false;
}

const exitOf = (child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve({ code: child.exitCode, signal: child.signalCode })
    : new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));

/** Waits until no session works in `db` or its staging databases (a killed client's sessions end with its sockets). */
async function sessionsGone(db: string): Promise<boolean> {
  const deadline = Date.now() + 15_000;
  const query = `SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND (DB = ${lit(db)} OR DB LIKE ${stagingPattern(db)} ESCAPE '|')`;
  while (Date.now() < deadline) {
    if ((await pollValue(query)) === '0') return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

/** An existing target: the backup's tables with the same columns and other rows, and one of its own. */
async function existingTarget(label: string): Promise<string> {
  const db = dbName(label);
  await createDatabase(db);
  await sql(
    db,
    `CREATE TABLE big (id INT NOT NULL PRIMARY KEY, v VARCHAR(60) NOT NULL, n BIGINT NOT NULL, KEY ix_n (n)) ENGINE=InnoDB;
     INSERT INTO big VALUES (1, 'mine', 1), (2, 'mine too', 2);
     CREATE TABLE small (id INT NOT NULL PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB;
     INSERT INTO small VALUES (1, 'mine');
     CREATE TABLE keep (id INT NOT NULL PRIMARY KEY, v VARCHAR(20));
     INSERT INTO keep VALUES (1, 'kept');`,
  );
  return db;
}

beforeAll(async () => {
  ensureMysql();
  work = mkdtempSync(join(tmpdir(), 'cairn-my-kill-'));
  repo = join(work, 'repo');
  ok(cairn(['repo', 'init', repo]));
  poller = await mysql.createConnection({ host: MY_HOST, port: MY_PORT, user: MY_USER });
});

/** The source, its backup, and the two states a stopped restore may leave. */
async function setUp(): Promise<void> {
  source = dbName('src');
  await createDatabase(source);
  await sql(
    source,
    `CREATE TABLE big (id INT NOT NULL PRIMARY KEY, v VARCHAR(60) NOT NULL, n BIGINT NOT NULL, KEY ix_n (n)) ENGINE=InnoDB;
     INSERT INTO big SELECT seq, CONCAT('row ', seq, ' ', REPEAT('x', seq % 40)), seq * 7 FROM seq_1_to_${BIG_ROWS};
     CREATE TABLE small (id INT NOT NULL PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB;
     INSERT INTO small VALUES (1, 'one'), (2, 'two'), (3, 'three');
     CREATE TABLE audit (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, what VARCHAR(40)) ENGINE=InnoDB;
     CREATE TRIGGER small_ai AFTER INSERT ON small FOR EACH ROW INSERT INTO audit (what) VALUES (CONCAT('small ', NEW.id));
     CREATE VIEW big_summary AS SELECT COUNT(*) AS rows_, SUM(n) AS total FROM big;`,
  );
  ok(cairn(['backup', 'create', '--source', myUrl(source), '--repo', repo, '--id', 'b1']));
  // The two states a stopped restore may leave: as the target was, and as a complete restore makes it.
  before = await snapshotOf(await existingTarget('before'));
  const complete = await existingTarget('complete');
  ok(cairn(['restore', 'b1', '--repo', repo, '--to', myUrl(complete), '--on-conflict', 'overwrite']));
  after = await snapshotOf(complete);
  expect(after).not.toEqual(before);
}

afterAll(async () => {
  await poller?.end();
  for (const db of databases) {
    for (const staging of await stagingFor(db)) await dropDatabase(staging);
    await dropDatabase(db);
  }
  if (work) rmSync(work, { recursive: true, force: true });
});

const rand = prng(SEED);
/** Fisher–Yates with the seeded generator. */
function shuffle<T>(items: T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}
const MOMENTS: Moment[] = ['staging', 'load', 'switch'];
/**
 * A few milliseconds into the staging and load moments; up to 400 ms after the largest table's
 * rows show, so that some stops land before the switch and some during or after it.
 */
const delayFor = (m: Moment): number => Math.floor(rand() * (m === 'switch' ? 400 : 25));
const runs: { signal: 'SIGKILL' | 'SIGINT'; moment: Moment; delayMs: number }[] = [
  // Six kills: each moment twice, in a seeded order, with seeded delays.
  ...shuffle(MOMENTS.flatMap((m) => [m, m])).map((m) => ({ signal: 'SIGKILL' as const, moment: m, delayMs: delayFor(m) })),
  ...MOMENTS.map((m) => ({ signal: 'SIGINT' as const, moment: m, delayMs: delayFor(m) })),
];

describe('the checks of this file (without cairn)', () => {
  it('a target with leftover tables compares as before once they are left out; a changed row does not', async () => {
    const a = await existingTarget('check_a');
    const b = await existingTarget('check_b');
    const base = await snapshotOf(a);
    expect(await snapshotOf(b)).toEqual(base);
    await sql(b, 'CREATE TABLE `big__cairn_old_0badf00d` (id INT); CREATE TABLE `x__cairn_0badf00d_1` (id INT)');
    const left = await stagingTablesIn(b);
    expect(left).toEqual(['big__cairn_old_0badf00d', 'x__cairn_0badf00d_1']);
    expect(await snapshotOf(b)).not.toEqual(base);
    expect(await snapshotOf(b, left)).toEqual(base);
    await sql(b, "UPDATE small SET v = 'other'");
    expect(await snapshotOf(b, left)).not.toEqual(base);
    const staging = `${b}__cairn_0badf00d`;
    databases.add(staging);
    await sql('', `CREATE DATABASE ${ident(staging)}`);
    expect(await stagingFor(b)).toEqual([staging]);
    expect(await stagingFor(a)).toEqual([]);
    expect(await sessionsGone(b)).toBe(true);
  }, 60_000);

  it('the runs are the same for a seed', () => {
    const again = prng(SEED);
    const first = prng(SEED);
    expect(Array.from({ length: 5 }, again)).toEqual(Array.from({ length: 5 }, first));
    expect(runs.filter((r) => r.signal === 'SIGKILL').map((r) => r.moment).sort()).toEqual(['load', 'load', 'staging', 'staging', 'switch', 'switch']);
  });
});

describe(`a restore into an existing MySQL database stopped at random moments (seed ${SEED})`, () => {
  beforeAll(setUp, 120_000);

  for (const [i, run] of runs.entries()) {
    it(`${run.signal} ${run.delayMs} ms after the ${run.moment} moment: the target is unchanged or fully restored${run.signal === 'SIGKILL' ? ', and the next restore cleans up' : ', exit 130'}`, async () => {
      const target = await existingTarget(`run${i}`);
      expect(await snapshotOf(target)).toEqual(before);
      const child = cairnAsync(['restore', 'b1', '--repo', repo, '--to', myUrl(target), '--on-conflict', 'overwrite', '--jobs', '1']);
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      const seen = await until(child, () => reached(run.moment, target));
      expect(seen, `the restore ended before the ${run.moment} moment was seen: ${stderr}`).toBe(true);
      if (run.delayMs > 0) await new Promise((r) => setTimeout(r, run.delayMs));
      // The restore may have finished within the delay: then there is nothing to stop.
      const stopped = child.exitCode === null && child.signalCode === null && child.kill(run.signal);
      const { code, signal } = await exitOf(child);
      expect(await sessionsGone(target), 'the stopped restore\'s sessions end').toBe(true);

      let leftDatabases = await stagingFor(target);
      let leftTables = await stagingTablesIn(target);
      const judge = (state: Snapshot): 'unchanged' | 'restored' | 'neither' =>
        JSON.stringify(state) === JSON.stringify(before) ? 'unchanged' : JSON.stringify(state) === JSON.stringify(after) ? 'restored' : 'neither';
      let state = await snapshotOf(target, leftTables);
      const observed = judge(state);
      let settled: string[] = [];
      if (signal === 'SIGKILL') {
        // What the next restore does first: the killed restore finished or undone from its journal.
        settled = await settle(target);
        leftDatabases = await stagingFor(target);
        leftTables = await stagingTablesIn(target);
        expect([...leftDatabases, ...leftTables], 'nothing of the killed restore remains once settled').toEqual([]);
        state = await snapshotOf(target);
      }
      const outcome = judge(state);
      console.log(`${run.signal} at ${run.moment} + ${run.delayMs} ms: exit ${code ?? signal}, target ${observed}${signal === 'SIGKILL' ? ` (settled: ${outcome}; ${JSON.stringify(settled)})` : ''}, leftovers ${JSON.stringify([...leftDatabases, ...leftTables])}`);
      // A target seen half-written is one the journal finishes (killed after the RENAME) or puts
      // back (killed between the drops that must precede it and the RENAME).
      if (observed === 'neither') expect(settled.join(' '), differences(await snapshotOf(target))).toMatch(/^(finished|undid) an interrupted restore/);
      expect(outcome, `the target is as it was, or as a complete restore leaves it; ${outcome === 'neither' ? differences(state) : ''}`).not.toBe('neither');
      if (!stopped) {
        expect(code, `finished before the ${run.signal}: ${stderr}`).toBe(0);
        expect(outcome).toBe('restored');
        expect([...leftDatabases, ...leftTables]).toEqual([]);
        return;
      }

      if (run.signal === 'SIGINT') {
        // Ctrl-C before the switch cancels (130) and leaves the target as it was; after it, the
        // restore completes (0). Either way it cleans up after itself.
        expect([EXIT_CANCELLED, 0], stderr).toContain(code);
        expect(outcome).toBe(code === 0 ? 'restored' : 'unchanged');
        if (code === EXIT_CANCELLED) expect(stderr).toMatch(/cancel/i);
        if (run.moment !== 'switch') expect(code, 'a Ctrl-C during the load cancels').toBe(EXIT_CANCELLED);
        expect([...leftDatabases, ...leftTables]).toEqual([]);
        return;
      }
      expect(signal).toBe('SIGKILL');
      if (run.moment !== 'switch') expect(outcome, 'killed during the load: the target is untouched').toBe('unchanged');
      if (observed === 'unchanged') expect(outcome, 'an untouched target stays as it was').toBe('unchanged');
      // The next restore into this target drops what the killed one left, and restores it.
      ok(cairn(['restore', 'b1', '--repo', repo, '--to', myUrl(target), '--on-conflict', 'overwrite']));
      expect(await stagingFor(target), 'staging databases of the killed restore').toEqual([]);
      expect(await stagingTablesIn(target), 'staging tables in the target').toEqual([]);
      expect(await snapshotOf(target)).toEqual(after);
    }, 60_000);
  }
});
