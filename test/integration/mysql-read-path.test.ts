/**
 * The backup's row path against the local MariaDB (src/sources/mysql/sessions.ts + rows.ts):
 * rows read from the packets give the bytes of the driver's values escaped one by one, across
 * buffer boundaries and with a slow consumer; a connection lost in the middle of a result set
 * fails the read with a SourceError instead of leaving it waiting.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mysql from 'mysql2/promise';
import { SourceError } from '../../src/core/errors.js';
import { openSource } from '../../src/sources/index.js';
import type { CollectionDescriptor, SourceSnapshot } from '../../src/sources/types.js';
import { referenceTsv } from '../helpers/mysql-tsv.js';
import { dropDatabase, ensureMysql, ident, MY_HOST, MY_PORT, myUrl, sql } from '../helpers/mysql.js';

const DB = `cairn_myread_${process.pid}`;
/** Rows of `wide`: about 24 MB in mysql-tsv-v1, so a read spans many buffers and socket pauses. */
const ROWS = 6000;

async function open(jobs = 1): Promise<SourceSnapshot> {
  return openSource(myUrl(DB), {}).openSnapshot({ select: (names) => new Set(names), jobs });
}

async function collection(snapshot: SourceSnapshot, name: string): Promise<CollectionDescriptor> {
  const c = (await snapshot.listCollections()).find((x) => x.name === name);
  if (c === undefined) throw new Error(`no collection ${name}`);
  return c;
}

/** The table's rows as the driver returns them, escaped value by value (the encoding before rows.ts). */
async function reference(table: string): Promise<Buffer> {
  const c = await mysql.createConnection({ host: MY_HOST, port: MY_PORT, user: 'root', database: DB, charset: 'binary' });
  try {
    await c.query("SET SESSION character_set_results = NULL, time_zone = '+00:00'");
    const [rows] = await c.query({ sql: `SELECT * FROM ${ident(table)}`, rowsAsArray: true, typeCast: ((field: { buffer(): Buffer | null }) => field.buffer()) as never });
    return referenceTsv(rows as unknown as (Buffer | null)[][]);
  } finally {
    await c.end();
  }
}

describe('MySQL backup row path', () => {
  beforeAll(async () => {
    ensureMysql();
    await dropDatabase(DB);
    await sql('', `CREATE DATABASE ${ident(DB)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
    await sql(
      DB,
      `CREATE TABLE wide (id INT PRIMARY KEY, t TEXT, b LONGBLOB, n INT NULL, d DATETIME(6)) ENGINE=InnoDB;
       INSERT INTO wide SELECT seq, CONCAT(REPEAT('x\\ty\\nz\\\\', seq % 50), seq), RANDOM_BYTES(1 + seq % 1024),
         IF(seq % 3 = 0, NULL, seq), '2024-01-02 03:04:05.678901' FROM seq_1_to_${ROWS};
       UPDATE wide SET b = CONCAT(b, REPEAT(RANDOM_BYTES(1024), 3000)) WHERE id % 500 = 0;`,
    );
  }, 120_000);

  afterAll(async () => {
    await dropDatabase(DB);
  });

  it('gives the bytes of the values escaped one by one, with a consumer slower than the server', async () => {
    const want = await reference('wide');
    const snapshot = await open();
    try {
      const stream = snapshot.readData(await collection(snapshot, 'wide'));
      const parts: Buffer[] = [];
      let n = 0;
      for await (const p of stream) {
        parts.push(Buffer.from(p));
        // Every 8th buffer waits for a round trip of its own: the socket pauses meanwhile.
        if (++n % 8 === 0) await new Promise((resolve) => setImmediate(resolve));
        expect(p.length).toBeLessThanOrEqual(256 * 1024 + 64);
      }
      expect(stream.rowCount).toBe(ROWS);
      expect(Buffer.concat(parts).equals(want)).toBe(true);
    } finally {
      await snapshot.close();
    }
  }, 120_000);

  it('fails with a SourceError, without hanging, when the connection is lost in the middle of a result set', async () => {
    const snapshot = await open();
    const admin = await mysql.createConnection({ host: MY_HOST, port: MY_PORT, user: 'root' });
    try {
      const stream = snapshot.readData(await collection(snapshot, 'wide'));
      const read = (async () => {
        let first = true;
        for await (const _ of stream) {
          if (!first) continue;
          first = false;
          // The read's session is the one running the SELECT on `wide`.
          const [rows] = await admin.query(`SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND INFO LIKE 'SELECT %FROM \`wide\`%'`, [DB]);
          const id = (rows as { ID: number }[])[0]?.ID;
          expect(id).toBeTypeOf('number');
          await admin.query(`KILL CONNECTION ${Number(id)}`);
        }
      })();
      await expect(read).rejects.toBeInstanceOf(SourceError);
      expect(stream.rowCount).toBeLessThan(ROWS);
    } finally {
      await admin.end();
      await snapshot.close();
    }
  }, 60_000);
});
