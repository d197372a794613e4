/**
 * A MySQL/MariaDB backup is one consistent snapshot while writes go on: four clients move money
 * between accounts (InnoDB), each move one transaction that also logs it, while ten backups run
 * (runBackup, in this process, into a temporary repository). Every backup, restored into a new
 * database, must hold the initial total, and every account's balance must be its initial amount
 * plus the logged moves into it minus those out of it: a backup that saw half a transaction,
 * or the accounts and the log at different moments, fails. Databases `cairn_cs_<pid>_<label>`.
 */
import { randomInt } from 'node:crypto';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackupManifest } from '../../src/core/schemas.js';
import { runBackup } from '../../src/jobs/backup.js';
import { runRestore } from '../../src/jobs/restore.js';
import { openSource, openTarget } from '../../src/sources/index.js';
import { tempRepository, type TempRepository } from '../helpers/engines.js';
import { column, createDatabase, dropDatabase, ensureMysql, MY_HOST, MY_PORT, MY_USER, myUrl, sql } from '../helpers/mysql.js';

const ACCOUNTS = 200;
const INITIAL = 1000;
const CLIENTS = 4;
const BACKUPS = 10;
/** Moves committed between two backups, so that each backup sees another state. */
const MOVES_BETWEEN = 25;

const databases = new Set<string>();
const dbName = (label: string): string => {
  const name = `cairn_cs_${process.pid}_${label}`;
  databases.add(name);
  return name;
};
let source: string;
let temp: TempRepository;

/** Errors a transfer may meet under contention and retries (deadlock, lock wait timeout). */
const RETRY = new Set(['ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT']);

/** The load: committed moves so far, waiters for a count, and a stop flag. */
class Load {
  committed = 0;
  stopped = false;
  private failure: unknown;
  private waiters: { at: number; resolve: () => void; reject: (err: unknown) => void }[] = [];

  moved(): void {
    this.committed++;
    this.waiters = this.waiters.filter((w) => (this.committed >= w.at ? (w.resolve(), false) : true));
  }

  /** A client failed: whoever waits for moves hears it (rather than waiting forever). */
  fail(err: unknown): void {
    this.failure ??= err;
    for (const w of this.waiters) w.reject(err);
    this.waiters = [];
  }

  /** Resolves once `n` more moves have committed; rejects if a client fails. */
  more(n: number): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const at = this.committed + n;
    return new Promise((resolve, reject) => this.waiters.push({ at, resolve, reject }));
  }
}

/** One client: moves random amounts between random accounts until stopped; returns its count. */
async function client(db: string, load: Load): Promise<number> {
  const conn = await mysql.createConnection({ host: MY_HOST, port: MY_PORT, user: MY_USER, database: db });
  let moves = 0;
  try {
    while (!load.stopped) {
      const from = randomInt(1, ACCOUNTS + 1);
      let to = randomInt(1, ACCOUNTS);
      if (to >= from) to++;
      const amount = randomInt(1, 101);
      await conn.query('START TRANSACTION');
      try {
        // Both rows locked in id order: two clients never wait for each other in a cycle.
        await conn.query('SELECT id FROM accounts WHERE id IN (?, ?) ORDER BY id FOR UPDATE', [Math.min(from, to), Math.max(from, to)]);
        await conn.query('UPDATE accounts SET balance = balance - ? WHERE id = ?', [amount, from]);
        await conn.query('UPDATE accounts SET balance = balance + ? WHERE id = ?', [amount, to]);
        await conn.query('INSERT INTO moves (from_id, to_id, amount) VALUES (?, ?, ?)', [from, to, amount]);
        await conn.query('COMMIT');
        moves++;
        load.moved();
      } catch (err) {
        await conn.query('ROLLBACK');
        if (!RETRY.has((err as { code?: string }).code ?? '')) throw err;
      }
    }
  } catch (err) {
    load.fail(err);
    throw err;
  } finally {
    await conn.end();
  }
  return moves;
}

beforeAll(async () => {
  ensureMysql();
  temp = await tempRepository('mysql-consistency');
  source = dbName('bank');
  await createDatabase(source);
  await sql(
    source,
    `CREATE TABLE accounts (id INT NOT NULL PRIMARY KEY, balance BIGINT NOT NULL) ENGINE=InnoDB;
     CREATE TABLE moves (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, from_id INT NOT NULL, to_id INT NOT NULL, amount INT NOT NULL,
       at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB;
     INSERT INTO accounts (id, balance) SELECT seq, ${INITIAL} FROM seq_1_to_${ACCOUNTS};`,
  );
}, 60_000);

afterAll(async () => {
  for (const db of databases) await dropDatabase(db);
  temp?.remove();
});

/** What must hold in any consistent state of the bank: [total, accounts whose balance disagrees with the log]. */
async function audit(db: string): Promise<[number, number]> {
  const [total] = await column(db, 'SELECT SUM(balance) FROM accounts');
  const [wrong] = await column(
    db,
    `SELECT COUNT(*) FROM accounts a
      WHERE a.balance <> ${INITIAL} + IFNULL((SELECT SUM(amount) FROM moves WHERE to_id = a.id), 0) - IFNULL((SELECT SUM(amount) FROM moves WHERE from_id = a.id), 0)`,
  );
  return [Number(total), Number(wrong)];
}

describe('MySQL backups under a bank-transfer load', () => {
  it('the load keeps the bank consistent, and the audit sees a state that is not', async () => {
    const load = new Load();
    const clients = Array.from({ length: CLIENTS }, () => client(source, load));
    try {
      await load.more(4 * MOVES_BETWEEN);
    } finally {
      load.stopped = true;
      await Promise.allSettled(clients);
    }
    expect((await Promise.all(clients)).reduce((a, b) => a + b, 0)).toBe(load.committed);
    expect(await audit(source)).toEqual([ACCOUNTS * INITIAL, 0]);
    // A copy that lost its last logged move (as a backup reading the log before the accounts
    // would): two accounts disagree with the log.
    const torn = dbName('torn');
    await createDatabase(torn);
    await sql(torn, `CREATE TABLE accounts AS SELECT * FROM \`${source}\`.accounts; CREATE TABLE moves AS SELECT * FROM \`${source}\`.moves; DELETE FROM moves ORDER BY id DESC LIMIT 1`);
    expect(await audit(torn)).toEqual([ACCOUNTS * INITIAL, 2]);
  }, 60_000);

  it(`${BACKUPS} backups taken while ${CLIENTS} clients move money each restore to a consistent state`, async () => {
    const load = new Load();
    const clients = Array.from({ length: CLIENTS }, () => client(source, load));
    const manifests: BackupManifest[] = [];
    try {
      await load.more(MOVES_BETWEEN);
      for (let i = 0; i < BACKUPS; i++) {
        manifests.push(await runBackup({ repo: temp.repo, source: openSource(myUrl(source)), id: `bank-${i}`, jobs: 2, compressionWorkers: 0 }));
        await load.more(MOVES_BETWEEN);
      }
    } finally {
      // Stop the load cleanly: every client finishes its transaction and disconnects.
      load.stopped = true;
      await Promise.allSettled(clients);
    }
    const perClient = await Promise.all(clients);
    expect(perClient.reduce((a, b) => a + b, 0)).toBe(load.committed);
    for (const n of perClient) expect(n, 'every client made moves').toBeGreaterThan(0);
    // The source itself is consistent once the load stops.
    expect(await audit(source)).toEqual([ACCOUNTS * INITIAL, 0]);
    const finalMoves = Number((await column(source, 'SELECT COUNT(*) FROM moves'))[0]);

    const loggedMoves: number[] = [];
    for (const [i, manifest] of manifests.entries()) {
      expect(manifest.warnings, `backup ${i}: InnoDB only, nothing read outside the snapshot`).toEqual([]);
      const target = dbName(`restored_${i}`);
      await runRestore({ repo: temp.repo, backupId: manifest.id, target: openTarget(myUrl(target)), jobs: 2 });
      expect(await audit(target), `backup ${i}: [total, accounts disagreeing with the log]`).toEqual([ACCOUNTS * INITIAL, 0]);
      const [moves] = await column(target, 'SELECT COUNT(*) FROM moves');
      loggedMoves.push(Number(moves));
      expect(manifest.collections.find((c) => c.name === 'moves')?.rowCount, `backup ${i}: rows recorded`).toBe(Number(moves));
      await dropDatabase(target);
    }
    // Each backup saw the load at another moment, all during it.
    console.log(`moves seen by the ${BACKUPS} backups: ${loggedMoves.join(', ')} (of ${finalMoves} at the end)`);
    for (let i = 1; i < loggedMoves.length; i++) expect(loggedMoves[i], `backup ${i} is later than backup ${i - 1}`).toBeGreaterThan(loggedMoves[i - 1] as number);
    expect(loggedMoves[0]).toBeGreaterThanOrEqual(MOVES_BETWEEN);
    expect(loggedMoves.at(-1)).toBeLessThan(finalMoves);
  }, 120_000);
});
