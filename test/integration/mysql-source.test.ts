/**
 * The MySQL/MariaDB backup source against the local MariaDB: collections and definitions of
 * every object kind, exact bytes of every type in mysql-tsv-v1, key-range segments, the global
 * lock (released before the data is read, kept with lockNonTransactional), the snapshot's
 * consistency, the fallback without RELOAD, cancellation, a whole runBackup, and `cairn dump`.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mysql from 'mysql2/promise';
import { CancelledError } from '../../src/core/errors.js';
import { runBackup } from '../../src/jobs/backup.js';
import { prepareDump, streamDump } from '../../src/jobs/dump.js';
import { openSource } from '../../src/sources/index.js';
import { mysqlDriver } from '../../src/sources/mysql/index.js';
import {
  parseLine,
  type MysqlGrantsDefinition,
  type MysqlRoutinesDefinition,
  type MysqlSequenceDefinition,
  type MysqlTableDefinition,
  type MysqlViewDefinition,
} from '../../src/sources/mysql/format.js';
import { SEGMENT_MIN_BYTES_ENV } from '../../src/sources/mysql/segments.js';
import type { CollectionDescriptor, SourceSnapshot } from '../../src/sources/types.js';
import { tempRepository } from '../helpers/engines.js';
import { dropDatabase, ensureMysql, ident, MY_HOST, MY_PORT, myUrl, sql } from '../helpers/mysql.js';

const DB = `cairn_mysrc_${process.pid}`;
const NO_RELOAD_USER = `cairn_norel_${process.pid}`;
const NO_RELOAD_PASSWORD = 'pw-norel';

const SETUP = `
CREATE TABLE types (
  id INT PRIMARY KEY,
  ti TINYINT, bu BIGINT UNSIGNED, de DECIMAL(65,30), fl FLOAT, db DOUBLE,
  bi BIT(64), b1 BIT(1), bn BINARY(4), vb VARBINARY(20), bl BLOB, lb LONGBLOB,
  cl CHAR(5) CHARACTER SET latin1, vl VARCHAR(20) CHARACTER SET latin1, tu TEXT CHARACTER SET utf8mb4,
  js JSON, ge GEOMETRY, pt POINT, en ENUM('a','b c','é'), st SET('x','y','z'), yr YEAR,
  da DATE, dt DATETIME(6), ts TIMESTAMP(6) NULL, tm TIME(6)
) ENGINE=InnoDB;
INSERT INTO types VALUES
 (1, -128, 18446744073709551615, '-12345678901234567890123456789012345.123456789012345678901234567891', 0.1, 0.1,
  b'1000000000000000000000000000000000000000000000000000000000000001', b'1', X'00090A5C', X'1A0D0A09005C4E', X'000102035C4E0A', X'FFFE',
  X'E9E0', X'FF00815C4E0A', _utf8mb4 X'F09F988020E282AC5C4E', '{"a": [1, "\\\\t"], "b": null}', ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))'),
  ST_GeomFromText('POINT(1.5 -2.25)'), 'é', 'x,z', 1901, '0000-00-00', '2024-02-31 23:59:59.999999', '2038-01-19 03:14:07.999999', '-838:59:59.000000'),
 (2, 0, 0, 0, -3.4028234e38, 1.7976931348623157e308, b'0', b'0', X'', X'', X'', X'', '', '', '', '[]', NULL, NULL, 'b c', '', 2155,
  '2024-00-00', '0000-00-00 00:00:00', '1970-01-01 00:00:01', '00:00:00'),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (4, 1, 1, 1e-30, 1.17549435e-38, 4.9e-324, b'11', b'1', 'ab', 'x', 'y', 'z', 'a\\tb', 'N', 'x', '"\\\\N"', ST_GeomFromText('LINESTRING(0 0, 1 1)'), ST_GeomFromText('POINT(0 0)'), 'a', 'x,y,z', 0,
  '1000-01-01', '9999-12-31 23:59:59.999999', '2000-06-15 12:00:00', '838:59:59');
CREATE TABLE gen (id INT AUTO_INCREMENT PRIMARY KEY, a INT, v INT AS (a * 2) VIRTUAL, s VARCHAR(20) AS (CONCAT('s', a)) STORED, h INT INVISIBLE DEFAULT 7,
  CONSTRAINT a_positive CHECK (a > 0)) ENGINE=InnoDB AUTO_INCREMENT=100;
INSERT INTO gen (a, h) VALUES (1, 10), (2, 20);
CREATE TABLE hist (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING;
INSERT INTO hist VALUES (1, 1); UPDATE hist SET v = 2 WHERE id = 1;
CREATE TABLE hist2 (id INT PRIMARY KEY, v INT, rs TIMESTAMP(6) GENERATED ALWAYS AS ROW START INVISIBLE, re TIMESTAMP(6) GENERATED ALWAYS AS ROW END INVISIBLE,
  PERIOD FOR SYSTEM_TIME (rs, re)) WITH SYSTEM VERSIONING;
INSERT INTO hist2 (id, v) VALUES (1, 1); DELETE FROM hist2;
CREATE TABLE part (id INT NOT NULL, PRIMARY KEY (id)) ENGINE=InnoDB
  PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (10), PARTITION p1 VALUES LESS THAN MAXVALUE);
INSERT INTO part VALUES (1), (20);
CREATE TABLE docs (id INT NOT NULL PRIMARY KEY, body TEXT, place POINT NOT NULL, FULLTEXT KEY ft (body), SPATIAL KEY sp (place)) ENGINE=Aria;
INSERT INTO docs VALUES (1, 'hello world', ST_GeomFromText('POINT(3 4)'));
CREATE TABLE parent (id INT PRIMARY KEY) ENGINE=InnoDB;
CREATE TABLE child (id INT PRIMARY KEY, parent_id INT, CONSTRAINT fk_parent FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE) ENGINE=InnoDB;
INSERT INTO parent VALUES (1), (2); INSERT INTO child VALUES (10, 1);
CREATE TRIGGER child_bi BEFORE INSERT ON child FOR EACH ROW SET NEW.parent_id = COALESCE(NEW.parent_id, 1);
CREATE TRIGGER child_bi2 BEFORE INSERT ON child FOR EACH ROW FOLLOWS child_bi SET NEW.id = NEW.id + 0;
CREATE TABLE my (id INT PRIMARY KEY, v VARCHAR(10)) ENGINE=MyISAM;
INSERT INTO my VALUES (1, 'one');
CREATE TABLE big (id BIGINT PRIMARY KEY, pad VARCHAR(1000)) ENGINE=InnoDB;
CREATE TABLE live (id INT PRIMARY KEY) ENGINE=InnoDB;
INSERT INTO live VALUES (1);
CREATE SEQUENCE seq START WITH 5 INCREMENT BY 3;
`;
// A view on a view: created after its base, named so that alphabetical order would be wrong.
const SETUP_VIEWS = `
CREATE VIEW a_v1 AS SELECT id, vl FROM types;
CREATE VIEW v2_on_v1 AS SELECT id FROM a_v1;
CREATE VIEW z_base AS SELECT 1 AS one;
CREATE VIEW b_on_z AS SELECT one FROM z_base;
CREATE PROCEDURE p_add(IN x INT) SET @r = x + 1;
CREATE FUNCTION f_twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2;
CREATE EVENT e_tick ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DISABLE DO SET @t = 1;
`;

/** A session of our own for concurrent writes, with a short lock wait so a block shows as an error. */
async function writer(lockWaitSeconds = 10): Promise<mysql.Connection> {
  const c = await mysql.createConnection({ host: MY_HOST, port: MY_PORT, user: 'root', database: DB });
  await c.query(`SET SESSION lock_wait_timeout = ${lockWaitSeconds}, innodb_lock_wait_timeout = ${lockWaitSeconds}`);
  return c;
}

async function readAll(snapshot: SourceSnapshot, c: CollectionDescriptor, segment?: number): Promise<{ bytes: Buffer; rows: number }> {
  const stream = snapshot.readData(c, undefined, segment);
  const parts: Buffer[] = [];
  for await (const p of stream) parts.push(Buffer.from(p));
  return { bytes: Buffer.concat(parts), rows: stream.rowCount };
}

function lines(bytes: Buffer): (Buffer | null)[][] {
  const out: (Buffer | null)[][] = [];
  let start = 0;
  for (let i = bytes.indexOf(0x0a); i >= 0; i = bytes.indexOf(0x0a, start)) {
    out.push(parseLine(bytes.subarray(start, i)));
    start = i + 1;
  }
  expect(start).toBe(bytes.length);
  return out;
}

async function open(options: { jobs?: number; url?: string; lockNonTransactional?: boolean; roles?: boolean; rolesWithPasswords?: boolean } = {}): Promise<SourceSnapshot> {
  const source = openSource(options.url ?? myUrl(DB), {
    ...(options.lockNonTransactional ? { lockNonTransactional: true } : {}),
    ...(options.roles ? { roles: true } : {}),
    ...(options.rolesWithPasswords ? { rolesWithPasswords: true } : {}),
  });
  return source.openSnapshot({ select: (names) => new Set(names), jobs: options.jobs ?? 2 });
}

/** A collection's definition, typed. */
function def<T>(list: CollectionDescriptor[], name: string): T {
  const c = list.find((x) => x.name === name);
  if (c === undefined) throw new Error(`no collection ${name}`);
  return c.definition as unknown as T;
}

async function collection(snapshot: SourceSnapshot, name: string): Promise<CollectionDescriptor> {
  const c = (await snapshot.listCollections()).find((x) => x.name === name);
  if (c === undefined) throw new Error(`no collection ${name}`);
  return c;
}

describe('MySQL source', () => {
  beforeAll(async () => {
    ensureMysql();
    await dropDatabase(DB);
    await sql('', `CREATE DATABASE ${ident(DB)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
    await sql(DB, `SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION,ALLOW_INVALID_DATES,NO_AUTO_VALUE_ON_ZERO', time_zone = '+00:00'; ${SETUP}`);
    await sql(DB, SETUP_VIEWS);
    // 3000 rows of ~1 KB: several output buffers, and (with a low threshold) several segments.
    await sql(DB, `INSERT INTO big SELECT seq, REPEAT(CHAR(65 + seq % 26), 1000) FROM seq_1_to_3000`);
    await sql(DB, 'ANALYZE TABLE big');
  }, 60_000);

  afterAll(async () => {
    await dropDatabase(DB);
    await sql('', `DROP USER IF EXISTS ${ident(NO_RELOAD_USER)}@'%'`);
  });

  it('lists every object kind with its definition, views in dependency order, position and version', async () => {
    const snapshot = await open();
    try {
      expect(snapshot.serverVersion).toMatch(/^10\.\d+\.\d+-MariaDB$/);
      expect(snapshot.position).toEqual({ binlog: 'off' });
      expect(snapshot.maxParallelReads).toBe(2);
      const list = await snapshot.listCollections();
      const names = list.map((c) => `${c.kind}:${c.name}`);
      expect(names).toEqual([
        'table:big', 'table:child', 'table:docs', 'table:gen', 'table:hist', 'table:hist2', 'table:live', 'table:my', 'table:parent', 'table:part', 'table:types',
        'sequence:seq',
        'view:a_v1', 'view:b_on_z', 'view:v2_on_v1', 'view:z_base',
        'mysql_routines:(routines)',
      ].sort((a, b) => names.indexOf(a) - names.indexOf(b)));
      expect(names.length).toBe(17);
      const index = (n: string): number => names.indexOf(n);
      expect(index('view:a_v1')).toBeLessThan(index('view:v2_on_v1'));
      expect(index('view:z_base')).toBeLessThan(index('view:b_on_z'));
      expect(index('table:types')).toBeLessThan(index('sequence:seq'));
      expect(index('sequence:seq')).toBeLessThan(index('view:a_v1'));

      const gen = def<MysqlTableDefinition>(list, 'gen');
      expect(gen.createSql).toMatch(/AUTO_INCREMENT=\d+/);
      expect(gen.createSql).toContain('CONSTRAINT `a_positive` CHECK');
      expect(gen.columns.map((c) => [c.name, c.stored, c.invisible ?? false])).toEqual([
        ['id', true, false], ['a', true, false], ['v', false, false], ['s', false, false], ['h', true, true],
      ]);
      expect(gen.primaryKey).toEqual(['id']);
      expect(gen.autoIncrement).toBe(100 + 2);
      const types = def<MysqlTableDefinition>(list, 'types');
      const fl = types.columns.find((c) => c.name === 'fl')!;
      expect(fl.readAs).toBe('CAST(`fl` AS DOUBLE)');
      expect(types.columns.find((c) => c.name === 'bi')!.loadAs).toBe('var');
      const hist = def<MysqlTableDefinition>(list, 'hist');
      expect(hist.systemVersioned).toBe(true);
      expect(hist.createSql).toContain('WITH SYSTEM VERSIONING');
      expect(hist.columns.map((c) => c.name)).toEqual(['id', 'v', 'ROW_START', 'ROW_END']);
      const hist2 = def<MysqlTableDefinition>(list, 'hist2');
      expect(hist2.columns.map((c) => [c.name, c.stored, c.invisible ?? false])).toEqual([['id', true, false], ['v', true, false], ['rs', true, true], ['re', true, true]]);
      const part = def<MysqlTableDefinition>(list, 'part');
      expect(part.createSql).toMatch(/PARTITION BY RANGE/);
      expect(part.transactional).toBe(true);
      const docs = def<MysqlTableDefinition>(list, 'docs');
      expect(docs.createSql).toMatch(/FULLTEXT KEY `ft`/);
      expect(docs.createSql).toMatch(/SPATIAL KEY `sp`/);
      expect(docs.transactional).toBe(false);
      const child = def<MysqlTableDefinition>(list, 'child');
      expect(child.references).toEqual(['parent']);
      expect(child.createSql).toContain('FOREIGN KEY (`parent_id`) REFERENCES `parent` (`id`) ON DELETE CASCADE');
      expect(child.triggers.map((t) => t.name)).toEqual(['child_bi', 'child_bi2']);
      expect(child.triggers[0]!.createSql).toMatch(/^CREATE DEFINER=`root`@`[^`]+` TRIGGER child_bi BEFORE INSERT ON child FOR EACH ROW/);
      const seq = list.find((c) => c.name === 'seq')!;
      expect(seq.dataFormat).toBeUndefined();
      expect((seq.definition as unknown as MysqlSequenceDefinition).createSql).toMatch(/^CREATE SEQUENCE `seq` start with 5/);
      expect((seq.definition as unknown as MysqlSequenceDefinition).nextValue).toBe('5');
      const v2 = def<MysqlViewDefinition>(list, 'v2_on_v1');
      expect(v2.references).toEqual(['a_v1']);
      expect(v2.createSql).toMatch(/VIEW `v2_on_v1` AS select `a_v1`.`id` AS `id` from `a_v1`/);
      const routines = list.find((c) => c.name === '(routines)')!;
      expect(routines.selectable).toBe(false);
      const r = routines.definition as unknown as MysqlRoutinesDefinition;
      expect(r.charset).toBe('utf8mb4');
      expect(r.collation).toBe('utf8mb4_unicode_ci');
      expect(r.routines.map((x) => `${x.kind} ${x.name}`)).toEqual(['FUNCTION f_twice', 'PROCEDURE p_add', 'EVENT e_tick']);
      expect(r.routines[2]!.timeZone).toBeDefined();
      expect(r.routines[0]!.createSql).toMatch(/FUNCTION `f_twice`/);
      const big = list.find((c) => c.name === 'big')!;
      expect(big.estimatedBytes).toBeGreaterThan(1_000_000);
      expect(big.estimatedRows).toBeGreaterThan(1000);
      expect(big.segments).toBeUndefined();
      expect(snapshot.warnings.some((w) => w.includes('my (MyISAM)') && w.includes('docs (Aria)') && w.includes('--lock-nontransactional'))).toBe(true);
      expect(list.some((c) => c.kind === 'mysql_grants')).toBe(false);
    } finally {
      await snapshot.close();
    }
  });

  it('reads every type as the exact bytes the server holds', async () => {
    const snapshot = await open();
    try {
      const types = await collection(snapshot, 'types');
      const { bytes, rows } = await readAll(snapshot, types);
      expect(rows).toBe(4);
      const data = lines(bytes);
      const columns = (types.definition as unknown as MysqlTableDefinition).columns;
      // The server's own account of each value, in a UTC session: HEX of the stored bytes for
      // strings, of the text form for numbers and dates, the value of BIT, the exact double of FLOAT.
      const exprs = columns.map(({ name, dataType }) =>
        dataType === 'float' ? `HEX(CAST(CAST(${ident(name)} AS DOUBLE) AS CHAR))` : dataType === 'bit' ? `HEX(CAST(${ident(name)} AS UNSIGNED))` : /^(tinyint|bigint|int|decimal|double|year|date|datetime|timestamp|time)$/.test(dataType) ? `HEX(CAST(${ident(name)} AS CHAR))` : `HEX(${ident(name)})`,
      );
      const w = await writer();
      let expected: unknown[][];
      try {
        await w.query("SET SESSION time_zone = '+00:00'");
        [expected] = (await w.query({ sql: `SELECT ${exprs.join(', ')} FROM types ORDER BY id`, rowsAsArray: true })) as unknown as [unknown[][]];
      } finally {
        await w.end();
      }
      expect(data.length).toBe(expected.length);
      for (let r = 0; r < data.length; r++) {
        for (let i = 0; i < columns.length; i++) {
          const got = data[r]![i];
          const want = expected[r]![i];
          const col = columns[i]!;
          if (want === null) {
            expect(got, `${col.name} row ${r}`).toBeNull();
          } else if (col.dataType === 'bit') {
            expect(BigInt(`0x${(got as Buffer).toString('hex') || '0'}`), `${col.name} row ${r}`).toBe(BigInt(`0x${String(want)}`));
          } else {
            expect((got as Buffer).toString('hex').toUpperCase(), `${col.name} row ${r}`).toBe(String(want));
          }
        }
      }
      // Spot checks of what the above compares: invalid latin1 bytes, a supplementary character, zero dates.
      expect(data[0]![columns.findIndex((c) => c.name === 'vl')]!.toString('hex')).toBe('ff00815c4e0a');
      expect(data[0]![columns.findIndex((c) => c.name === 'tu')]!.toString('utf8')).toBe('😀 €\\N');
      expect(data[0]![columns.findIndex((c) => c.name === 'da')]!.toString()).toBe('0000-00-00');
      expect(data[0]![columns.findIndex((c) => c.name === 'fl')]!.toString()).toBe('0.10000000149011612');
      expect(data[1]![columns.findIndex((c) => c.name === 'ts')]!.toString()).toBe('1970-01-01 00:00:01.000000');
      // The escapes themselves: \N for NULL, \0 \t \n \\ \Z in the line.
      const line3 = bytes.toString('latin1').split('\n')[2]!;
      expect(line3).toBe(['3', ...Array<string>(columns.length - 1).fill('\\N')].join('\t'));
      expect(bytes.toString('latin1')).toContain('\\0\\t\\n\\\\');
      expect(bytes.toString('latin1')).toContain('\\Z\r'.replace('\r', '\\r'));

      // Generated columns are left out, invisible ones read; a system-versioned table's history is there.
      const gen = lines((await readAll(snapshot, await collection(snapshot, 'gen'))).bytes);
      expect(gen.map((r) => r.map((v) => v?.toString() ?? null))).toEqual([['100', '1', '10'], ['101', '2', '20']]);
      const hist = lines((await readAll(snapshot, await collection(snapshot, 'hist'))).bytes);
      expect(hist.map((r) => r.slice(0, 2).map(String))).toEqual([['1', '1'], ['1', '2']]);
      expect(hist[1]![3]!.toString()).toMatch(/^(2038-01-19 03:14:07|2106-02-07 06:28:15)\.999999$/);
      // A deleted row is history only: its period ended.
      const hist2 = lines((await readAll(snapshot, await collection(snapshot, 'hist2'))).bytes);
      expect(hist2.length).toBe(1);
      expect(hist2[0]![3]!.toString()).not.toMatch(/^(2038|2106)/);
    } finally {
      await snapshot.close();
    }
  });

  it('reads a large table in key ranges whose concatenation is the whole table', async () => {
    const whole = await open();
    let expected: Buffer;
    try {
      expected = (await readAll(whole, await collection(whole, 'big'))).bytes;
    } finally {
      await whole.close();
    }
    process.env[SEGMENT_MIN_BYTES_ENV] = '1';
    let snapshot: SourceSnapshot;
    try {
      snapshot = await open({ jobs: 2 });
    } finally {
      delete process.env[SEGMENT_MIN_BYTES_ENV];
    }
    try {
      const big = await collection(snapshot, 'big');
      expect(big.segments).toBe(4);
      const parts = await Promise.all(Array.from({ length: big.segments! }, (_, i) => readAll(snapshot, big, i)));
      expect(parts.every((p) => p.rows > 0)).toBe(true);
      expect(parts.reduce((n, p) => n + p.rows, 0)).toBe(3000);
      expect(Buffer.concat(parts.map((p) => p.bytes)).equals(expected)).toBe(true);
      // Tables below the threshold, or without a single integer key, are read whole.
      expect((await collection(snapshot, 'live')).segments).toBeUndefined();
      expect((await collection(snapshot, 'docs')).segments).toBeUndefined();
      expect((await collection(snapshot, 'gen')).segments).toBe(2);
    } finally {
      await snapshot.close();
    }
  });

  it('releases the global lock before the data is read, and reads as of openSnapshot', async () => {
    const snapshot = await open();
    const w = await writer(5);
    try {
      // A commit goes through while the snapshot is open (the lock would make it wait and time out).
      await w.query('INSERT INTO live VALUES (2)');
      await w.query('INSERT INTO my VALUES (2, "two")');
      await w.query('CREATE TABLE made_later (id INT)');
      const live = lines((await readAll(snapshot, await collection(snapshot, 'live'))).bytes);
      expect(live.map((r) => r[0]!.toString())).toEqual(['1']);
      // The metadata lock keeps DDL on a backed-up table waiting until the snapshot closes.
      await w.query('SET SESSION lock_wait_timeout = 1');
      await expect(w.query('ALTER TABLE live ADD COLUMN x INT')).rejects.toThrow(/Lock wait timeout/);
      expect((await snapshot.listCollections()).some((c) => c.name === 'made_later')).toBe(false);
    } finally {
      await snapshot.close();
      await w.query('DELETE FROM live WHERE id = 2').catch(() => undefined);
      await w.query('DELETE FROM my WHERE id = 2').catch(() => undefined);
      await w.query('DROP TABLE IF EXISTS made_later').catch(() => undefined);
      await w.end();
    }
  });

  it('waits for another backup that holds BACKUP STAGE, without blocking writers meanwhile, then takes its own', async () => {
    const other = await writer();
    let released = false;
    try {
      await other.query('BACKUP STAGE START');
      const opening = open();
      // The waiting BACKUP STAGE START shows in the process list; writers go on meanwhile.
      const probe = await writer(5);
      try {
        for (let i = 0; ; i++) {
          const [rows] = await probe.query("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE INFO = 'BACKUP STAGE START' AND ID <> CONNECTION_ID()");
          if (Number((rows as { n: number }[])[0]?.n) > 0) break;
          if (i > 200) throw new Error('the second backup never waited for BACKUP STAGE START');
          await new Promise((r) => setImmediate(r));
        }
        await probe.query('INSERT INTO live VALUES (7)');
        await probe.query('DELETE FROM live WHERE id = 7');
      } finally {
        await probe.end();
      }
      await other.query('BACKUP STAGE END');
      released = true;
      const snapshot = await opening;
      try {
        expect(snapshot.maxParallelReads).toBe(2);
        const live = lines((await readAll(snapshot, await collection(snapshot, 'live'))).bytes);
        expect(live.map((r) => r[0]!.toString())).toEqual(['1']);
      } finally {
        await snapshot.close();
      }
    } finally {
      if (!released) await other.query('BACKUP STAGE END').catch(() => undefined);
      await other.end();
    }
  });

  it('keeps the lock until non-transactional tables are read with lockNonTransactional', async () => {
    const snapshot = await open({ lockNonTransactional: true });
    const w = await writer(30);
    const probe = await writer(5);
    try {
      expect(snapshot.warnings.some((w) => w.includes('non-transactional'))).toBe(false);
      const [[{ id }]] = (await w.query('SELECT CONNECTION_ID() AS id')) as unknown as [[{ id: number }]];
      const insert = w.query('INSERT INTO my VALUES (3, "three")');
      // Awaited state: the insert waits for the backup's lock.
      for (;;) {
        const [rows] = (await probe.query('SELECT STATE FROM information_schema.PROCESSLIST WHERE ID = ?', [id])) as unknown as [{ STATE: string }[]];
        if (/backup|lock/i.test(rows[0]?.STATE ?? '')) break;
        await new Promise((r) => setImmediate(r));
      }
      for (const name of ['my', 'docs']) {
        const data = lines((await readAll(snapshot, await collection(snapshot, name))).bytes);
        if (name === 'my') expect(data.map((r) => r[0]!.toString())).toEqual(['1']);
      }
      // Both non-transactional tables read: the lock is gone and the insert completes.
      await insert;
    } finally {
      await snapshot.close();
      await w.query('DELETE FROM my WHERE id = 3').catch(() => undefined);
      await w.end();
      await probe.end();
    }
  });

  it('falls back to one session without the RELOAD privilege', async () => {
    await sql('', `DROP USER IF EXISTS ${ident(NO_RELOAD_USER)}@'%'; CREATE USER ${ident(NO_RELOAD_USER)}@'%' IDENTIFIED BY '${NO_RELOAD_PASSWORD}'; GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES ON ${ident(DB)}.* TO ${ident(NO_RELOAD_USER)}@'%'`);
    try {
      const snapshot = await open({ url: myUrl(DB, NO_RELOAD_USER, NO_RELOAD_PASSWORD), jobs: 4, lockNonTransactional: true });
      const w = await writer(30);
      const probe = await writer(5);
      try {
        expect(snapshot.maxParallelReads).toBe(1);
        expect(snapshot.position).toEqual({ binlog: 'off' });
        expect(snapshot.warnings.some((x) => x.includes('reads were not parallel') && x.includes('RELOAD'))).toBe(true);
        // lockNonTransactional is honoured with LOCK TABLES … READ (the user may): no warning.
        expect(snapshot.warnings.filter((x) => /non-transactional|nontransactional/.test(x))).toEqual([]);
        // A transactional write commits at once (no global lock) and is not in the snapshot.
        await probe.query('INSERT INTO live VALUES (5)');
        await probe.query('DELETE FROM live WHERE id = 5');
        // A write to a non-transactional table waits until those tables have been read.
        const [[{ id }]] = (await w.query('SELECT CONNECTION_ID() AS id')) as unknown as [[{ id: number }]];
        const insert = w.query('INSERT INTO my VALUES (4, "four")');
        for (;;) {
          const [rows] = (await probe.query('SELECT STATE FROM information_schema.PROCESSLIST WHERE ID = ?', [id])) as unknown as [{ STATE: string }[]];
          if (/lock/i.test(rows[0]?.STATE ?? '')) break;
          await new Promise((r) => setImmediate(r));
        }
        const list = await snapshot.listCollections();
        const results = new Map<string, { bytes: Buffer; rows: number }>();
        for (const c of list.filter((x) => x.dataFormat)) results.set(c.name, await readAll(snapshot, c));
        await insert;
        expect([...results.values()].reduce((n, r) => n + r.rows, 0)).toBeGreaterThan(3000);
        expect(lines(results.get('live')!.bytes).length).toBe(1);
        expect(lines(results.get('my')!.bytes).map((r) => r[0]!.toString())).toEqual(['1']);
        expect(JSON.stringify(list)).not.toContain(NO_RELOAD_PASSWORD);
      } finally {
        await snapshot.close();
        await w.query('DELETE FROM my WHERE id = 4').catch(() => undefined);
        await w.end();
        await probe.end();
      }
    } finally {
      await sql('', `DROP USER IF EXISTS ${ident(NO_RELOAD_USER)}@'%'`);
    }
  });

  it('warns when the user cannot read ENUM members exactly or may not see every routine, and is silent once granted', async () => {
    const db = `${DB}_w`;
    const user = `cairn_limited_${process.pid}`;
    await sql('', `DROP DATABASE IF EXISTS ${ident(db)}; CREATE DATABASE ${ident(db)} CHARACTER SET utf8mb4`);
    await sql(
      db,
      `CREATE TABLE moods (id INT PRIMARY KEY, m ENUM('ok', 'happy \u{1F600}') CHARACTER SET utf8mb4); INSERT INTO moods VALUES (1, 'happy \u{1F600}');
       CREATE DEFINER = root@localhost PROCEDURE root_only() SELECT 1`,
    );
    await sql('', `DROP USER IF EXISTS ${ident(user)}@'%'; CREATE USER ${ident(user)}@'%' IDENTIFIED BY 'pw-lim'; GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON ${ident(db)}.* TO ${ident(user)}@'%'`);
    const warningsAndCreate = async (): Promise<{ warnings: string[]; createSql: string; routines: string }> => {
      const snapshot = await openSource(myUrl(db, user, 'pw-lim'), {}).openSnapshot({ select: (n) => new Set(n), jobs: 1 });
      try {
        const list = await snapshot.listCollections();
        return {
          warnings: snapshot.warnings,
          createSql: String(list.find((c) => c.name === 'moods')?.definition.createSql),
          routines: JSON.stringify(list.find((c) => c.kind === 'mysql_routines')?.definition ?? {}),
        };
      } finally {
        await snapshot.close();
      }
    };
    try {
      const before = await warningsAndCreate();
      expect(before.warnings.some((w) => w.includes('moods.m') && w.includes('CREATE TEMPORARY TABLES'))).toBe(true);
      expect(before.warnings.some((w) => w.includes('may be missing') && w.includes('mysql.proc'))).toBe(true);
      expect(before.routines).not.toContain('root_only');
      await sql('', `GRANT CREATE TEMPORARY TABLES ON ${ident(db)}.* TO ${ident(user)}@'%'; GRANT SELECT ON mysql.proc TO ${ident(user)}@'%'`);
      const after = await warningsAndCreate();
      expect(after.warnings.filter((w) => w.includes('CREATE TEMPORARY TABLES') || w.includes('may be missing'))).toEqual([]);
      expect(after.createSql).toContain("'happy \u{1F600}'");
      expect(after.routines).toContain('root_only');
    } finally {
      await sql('', `DROP USER IF EXISTS ${ident(user)}@'%'; DROP DATABASE IF EXISTS ${ident(db)}`);
    }
  });

  it('streams a huge value in bounded buffers, and reads tables whose names are not ASCII', async () => {
    const name = 'Grüße `€` Ω';
    const w = await writer();
    try {
      await w.query(`CREATE TABLE ${ident(name)} (id INT PRIMARY KEY, b LONGBLOB) ENGINE=InnoDB`);
      // 6 MiB of every byte value, so escapes fall everywhere, including across slice boundaries.
      const value = Buffer.from(Uint8Array.from({ length: 6 * 1024 * 1024 }, (_, i) => (i * 7 + (i >> 8)) & 0xff));
      await w.query(`INSERT INTO ${ident(name)} VALUES (1, X'${value.toString('hex')}'), (2, 'small')`);
      const snapshot = await open();
      try {
        const c = await collection(snapshot, name);
        const stream = snapshot.readData(c);
        const parts: Buffer[] = [];
        for await (const p of stream) parts.push(Buffer.from(p));
        expect(Math.max(...parts.map((p) => p.length))).toBeLessThanOrEqual(512 * 1024 + 2);
        expect(parts.length).toBeGreaterThan(20);
        const rows = lines(Buffer.concat(parts));
        expect(rows.length).toBe(2);
        expect(rows[0]![1]!.equals(value)).toBe(true);
        expect(rows[1]![1]!.toString()).toBe('small');
        expect(stream.rowCount).toBe(2);
      } finally {
        await snapshot.close();
      }
    } finally {
      await w.query(`DROP TABLE IF EXISTS ${ident(name)}`);
      await w.end();
    }
  }, 60_000);

  it('stops a read on abort and closes cleanly', async () => {
    const snapshot = await open({ jobs: 1 });
    try {
      const big = await collection(snapshot, 'big');
      const controller = new AbortController();
      const stream = snapshot.readData(big, controller.signal);
      let chunks = 0;
      await expect(
        (async () => {
          for await (const _ of stream) {
            chunks++;
            controller.abort();
          }
        })(),
      ).rejects.toBeInstanceOf(CancelledError);
      expect(chunks).toBe(1);
      expect(stream.rowCount).toBeLessThan(3000);
      // The session was dropped: the next read fails clearly rather than hanging.
      await expect(readAll(snapshot, big)).rejects.toThrow(/lost/);
    } finally {
      await snapshot.close();
    }
    const [[count]] = (await sql('', `SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = '${DB}' AND INFO LIKE 'SELECT %FROM \`big\`%'`)) as unknown as [[string]];
    expect(Number(count)).toBe(0);
  });

  it('records users and grants with roles, without password hashes unless asked', async () => {
    await sql('', `DROP USER IF EXISTS ${ident(NO_RELOAD_USER)}@'%'; CREATE USER ${ident(NO_RELOAD_USER)}@'%' IDENTIFIED BY '${NO_RELOAD_PASSWORD}'; GRANT SELECT ON ${ident(DB)}.* TO ${ident(NO_RELOAD_USER)}@'%'; GRANT INSERT ON ${ident(DB)}.\`live\` TO ${ident(NO_RELOAD_USER)}@'%'`);
    try {
      for (const withPasswords of [false, true]) {
        const snapshot = await open({ roles: true, rolesWithPasswords: withPasswords });
        try {
          const c = await collection(snapshot, '(users and grants)');
          const grants = c.definition as unknown as MysqlGrantsDefinition;
          const account = grants.accounts.find((a) => a.user === NO_RELOAD_USER)!;
          expect(account.host).toBe('%');
          expect(account.grants).toEqual([`GRANT SELECT ON \`${DB}\`.* TO \`${NO_RELOAD_USER}\`@\`%\``, `GRANT INSERT ON \`${DB}\`.\`live\` TO \`${NO_RELOAD_USER}\`@\`%\``]);
          // The definition (the manifest) never holds a hash; with passwords the CREATE USER
          // carrying it is a line of the data stream.
          expect(JSON.stringify(c.definition)).not.toMatch(/PASSWORD|\*[0-9A-F]{40}/);
          const data = (await readAll(snapshot, c)).bytes.toString('utf8');
          if (withPasswords) {
            expect(c.dataFormat).toBe('mysql-grants-sql-v1');
            expect(account.createInData).toBe(true);
            expect(account.createSql).toBeUndefined();
            expect(data).toMatch(new RegExp(`^CREATE USER \`${NO_RELOAD_USER}\`@\`%\` IDENTIFIED BY PASSWORD '\\*[0-9A-F]{40}'`, 'm'));
          } else {
            expect(c.dataFormat).toBeUndefined();
            expect(account.createSql).toMatch(/^CREATE USER /);
            expect(data).toBe('');
          }
          expect(grants.accounts.some((a) => a.user === 'root')).toBe(false);
        } finally {
          await snapshot.close();
        }
      }
    } finally {
      await sql('', `DROP USER IF EXISTS ${ident(NO_RELOAD_USER)}@'%'`);
    }
  });

  it('runBackup into a repository records the position, the warnings and every collection', async () => {
    const temp = await tempRepository('mysrc');
    try {
      const manifest = await runBackup({ repo: temp.repo, source: openSource(myUrl(DB)), jobs: 2, compressionWorkers: 0 });
      expect(manifest.source.kind).toBe('mysql');
      expect(manifest.source.serverVersion).toMatch(/-MariaDB$/);
      expect(manifest.source.position).toEqual({ binlog: 'off' });
      expect(manifest.warnings.some((w) => w.includes('my (MyISAM)'))).toBe(true);
      const byName = new Map(manifest.collections.map((c) => [c.name, c]));
      expect(byName.get('big')!.rowCount).toBe(3000);
      expect(byName.get('types')!.rowCount).toBe(4);
      expect(byName.get('hist')!.rowCount).toBe(2);
      expect(byName.get('(routines)')!.selectable).toBe(false);

      // cairn dump of the types table: CSV header and rows, SQL INSERTs naming the stored columns.
      const entry = byName.get('types')!;
      const dump = async (format: 'csv' | 'sql'): Promise<Buffer> => Buffer.concat(await collect(streamDump(temp.repo, await prepareDump(temp.repo, manifest.id, 'types', format))));
      const csv = await dump('csv');
      expect(csv.toString('latin1').split('\n')[0]).toBe('id,ti,bu,de,fl,db,bi,b1,bn,vb,bl,lb,cl,vl,tu,js,ge,pt,en,st,yr,da,dt,ts,tm');
      expect(csv.toString('latin1')).toMatch(/\n3,{24}\n4,1,1,/);
      const text = (await dump('sql')).toString('latin1');
      expect(entry.rowCount).toBe(4);
      expect(text).toContain("INSERT INTO `types` (`id`, `ti`");
      expect(text.match(/^INSERT INTO/gm)?.length).toBe(4);
      expect(text).toContain("X'00090a5c'");
      expect(() => mysqlDriver.openDump!(manifest, byName.get('a_v1')!, 'csv')).toThrow(/view/);
      // The SQL dump loads back into the same table definition with the same content.
      const copy = `${DB}_dump`;
      await dropDatabase(copy);
      await sql('', `CREATE DATABASE ${ident(copy)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
      try {
        await sql(copy, (entry.definition as unknown as MysqlTableDefinition).createSql);
        const r = spawnSync('mariadb', ['-h', MY_HOST, '-P', String(MY_PORT), '-u', 'root', '--binary-mode', copy], { input: await dump('sql') });
        expect(r.stderr.toString()).toBe('');
        expect(r.status).toBe(0);
        const sum = async (db: string): Promise<unknown> => (await sql(db, 'CHECKSUM TABLE types EXTENDED'))[0]?.[1];
        expect(await sum(copy)).toBe(await sum(DB));
      } finally {
        await dropDatabase(copy);
      }
    } finally {
      temp.remove();
    }
  }, 60_000);
});

async function collect(gen: AsyncIterable<Buffer>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const b of gen) out.push(b);
  return out;
}
