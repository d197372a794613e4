/**
 * CopyOutStream (src/sources/postgres/copy-out.ts), cairn's own COPY … TO STDOUT reader, against
 * the local server: the same bytes as pg-copy-streams' reader (still a dependency, for COPY
 * FROM), rows counted, batches of BATCH_BYTES, rows larger than a batch, and the connection
 * handed back to pg after the end and after a server error in the middle of the COPY.
 */
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BATCH_BYTES, copyOut } from '../../src/sources/postgres/copy-out.js';
import { ensurePostgres, PG_HOST, PG_PORT, PG_USER } from '../helpers/postgres.js';

let client: pg.Client;
beforeAll(async () => {
  ensurePostgres();
  client = new pg.Client({ host: PG_HOST, port: PG_PORT, user: PG_USER, database: 'postgres' });
  await client.connect();
});
afterAll(async () => {
  await client?.end();
});

async function collect(stream: AsyncIterable<Buffer>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const b of stream) out.push(b);
  return out;
}

// Rows of 1 to ~600 bytes, some far larger than a batch (1.5 MiB), ~3 MiB in all: message
// headers land across socket reads, rows across batches.
const SQL = `COPY (SELECT g, repeat(md5(g::text), 1 + g % 19), CASE WHEN g % 9000 = 0 THEN repeat('x', 1572864) END
  FROM generate_series(1, 20000) g) TO STDOUT`;

describe('CopyOutStream', () => {
  it('reads the same bytes as pg-copy-streams, in full batches, counting rows', async () => {
    const reference = Buffer.concat(await collect(client.query(copyTo(SQL)) as unknown as AsyncIterable<Buffer>));
    const stream = client.query(copyOut(SQL));
    const batches = await collect(stream);
    expect(Buffer.concat(batches).equals(reference)).toBe(true);
    expect(reference.length).toBeGreaterThan(4 * BATCH_BYTES);
    expect(batches.slice(0, -1).every((b) => b.length === BATCH_BYTES)).toBe(true);
    expect(stream.rows).toBe(20000);
    expect(stream.rowCount).toBe(20000);
    // The connection went back to pg.
    expect((await client.query('SELECT 41 + 1 AS n')).rows).toEqual([{ n: 42 }]);
  });

  it('gives the server error of a COPY that fails after sending rows, and the connection stays usable', async () => {
    const stream = client.query(copyOut('COPY (SELECT g, 1 / (g - 30000) FROM generate_series(1, 40000) g) TO STDOUT'));
    let bytes = 0;
    const read = async (): Promise<void> => {
      for await (const b of stream) bytes += (b as Buffer).length;
    };
    await expect(read()).rejects.toMatchObject({ code: '22012' });
    expect(stream.rows).toBeGreaterThan(0); // rows arrived before the error
    expect(bytes).toBeLessThanOrEqual(stream.rows * 20);
    expect((await client.query('SELECT 1 AS n')).rows).toEqual([{ n: 1 }]);
  });

  it('an empty result ends the stream without a batch', async () => {
    const stream = client.query(copyOut('COPY (SELECT 1 WHERE false) TO STDOUT'));
    expect(await collect(stream)).toEqual([]);
    expect(stream.rows).toBe(0);
    expect((await client.query('SELECT 2 AS n')).rows).toEqual([{ n: 2 }]);
  });
});
