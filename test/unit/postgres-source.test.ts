import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CancelledError, NotFoundError, SourceError, UsageError } from '../../src/core/errors.js';
import { openSource } from '../../src/sources/index.js';
import { databaseKey } from '../../src/jobs/database-key.js';
import { connect, parsePostgresUrl, type PgConnectionSettings } from '../../src/sources/postgres/connection.js';
import type {
  PgRolesDefinition,
  PgSchemaDefinition,
  PgSequenceDefinition,
  PgTableDefinition,
  PgViewDefinition,
} from '../../src/sources/postgres/definitions.js';
import { PostgresSource } from '../../src/sources/postgres/source.js';
import type { CollectionDescriptor, DataStream, SourceSnapshot } from '../../src/sources/types.js';

// Records every child process the source starts, to check where the password goes.
const spawned = vi.hoisted(() => [] as { command: string; args: readonly string[]; env: NodeJS.ProcessEnv | undefined }[]);
vi.mock('node:child_process', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:child_process')>();
  const spawn = ((command: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv }) => {
    spawned.push({ command, args, env: options?.env });
    return actual.spawn(command, args, options);
  }) as typeof actual.spawn;
  return { ...actual, spawn, default: { ...actual, spawn } };
});

const BASE = process.env.CAIRN_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432';
const DB = `cairn_src_${randomBytes(4).toString('hex')}`;
const BIG_ROWS = 200_000;

let settings: PgConnectionSettings;
let admin: pg.Client;
let tmp: string;

const all = (names: string[]): Set<string> => new Set(names);

async function readAll(stream: DataStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(Buffer.from(chunk));
  return Buffer.concat(parts);
}

function byName(list: CollectionDescriptor[], name: string): CollectionDescriptor {
  const c = list.find((x) => x.name === name);
  if (c === undefined) throw new Error(`no collection ${name}`);
  return c;
}

async function open(options: Partial<Parameters<PostgresSource['openSnapshot']>[0]> = {}, src = new PostgresSource(settings)): Promise<SourceSnapshot> {
  return src.openSnapshot({ select: all, jobs: 1, ...options });
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-pg-src-'));
  const adminSettings = parsePostgresUrl(`${BASE}/postgres`);
  const a = await connect(adminSettings);
  await a.query(`CREATE DATABASE ${DB}`);
  await a.end();
  settings = parsePostgresUrl(`${BASE}/${DB}`);
  admin = await connect(settings);
  await admin.query(`
    CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
    CREATE TABLE people (
      id serial PRIMARY KEY,
      name text NOT NULL,
      mood mood,
      note varchar(40),
      shout text GENERATED ALWAYS AS (upper(name)) STORED
    );
    CREATE INDEX people_name ON people (name);
    CREATE TABLE orders (
      id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      person_id int REFERENCES people (id),
      total numeric(10,2) CHECK (total >= 0)
    );
    CREATE TABLE measurements (id int, at date NOT NULL, v double precision) PARTITION BY RANGE (at);
    CREATE TABLE measurements_2023 PARTITION OF measurements FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
    CREATE TABLE measurements_2024 PARTITION OF measurements FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
    CREATE VIEW happy_people AS SELECT id, name FROM people WHERE mood = 'happy';
    CREATE MATERIALIZED VIEW people_per_mood AS SELECT mood, count(*) AS n FROM people GROUP BY mood;
    CREATE UNIQUE INDEX people_per_mood_mood ON people_per_mood (mood);
    CREATE SEQUENCE ticket_seq START 100;
    SELECT nextval('ticket_seq');
    CREATE SCHEMA "Other";
    CREATE TABLE "Other"."Mixed Case" ("Col" text);
    INSERT INTO "Other"."Mixed Case" VALUES ('a"b'), (E'multi\\nline'), (NULL);
    CREATE TABLE drop_me (a int);
    CREATE TABLE locked_one (a int);
    CREATE TABLE race_drop (a int);
    CREATE TABLE race_recreate (a int);
    CREATE TABLE ddl_queued (a int);
    INSERT INTO ddl_queued SELECT generate_series(1, 7);
    CREATE TABLE big (id bigint, payload text);
    INSERT INTO people (name, mood, note)
      SELECT 'person ' || g || CASE WHEN g % 10 = 0 THEN E'\\nwith newline\\ttab' ELSE '' END,
             (ARRAY['sad','ok','happy'])[1 + g % 3]::mood, 'n' || g
      FROM generate_series(1, 1000) g;
    INSERT INTO orders (person_id, total) SELECT 1 + g % 1000, g FROM generate_series(1, 500) g;
    INSERT INTO measurements SELECT g, DATE '2023-06-01' + (g % 400), g / 3.0 FROM generate_series(1, 800) g;
    INSERT INTO big SELECT g, repeat('x', 80) || g FROM generate_series(1, ${BIG_ROWS}) g;
    REFRESH MATERIALIZED VIEW people_per_mood;
    SELECT lo_create(0);
  `);
}, 60_000);

afterAll(async () => {
  await admin?.end().catch(() => undefined);
  const a = await connect(parsePostgresUrl(`${BASE}/postgres`));
  await a.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await a.end();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('PostgresSource', () => {
  it('lists collections in restore order with their definitions', async () => {
    const src = new PostgresSource(settings);
    expect(src.kind).toBe('postgres');
    expect(src.name).toBe(DB);
    expect(src.location).toBe(`postgres://postgres@127.0.0.1:5432/${DB}`);
    const snap = await src.openSnapshot({ select: all, jobs: 2 });
    try {
      expect(snap.serverVersion).toMatch(/^\d+\.\d+/);
      expect(snap.maxParallelReads).toBe(2);
      expect(snap.warnings).toEqual(['1 large object is not backed up']);
      const list = await snap.listCollections();
      expect(list.map((c) => [c.name, c.kind])).toEqual([
        ['(schema)', 'pg_schema'],
        ['Other.Mixed Case', 'table'],
        ['public.big', 'table'],
        ['public.ddl_queued', 'table'],
        ['public.drop_me', 'table'],
        ['public.locked_one', 'table'],
        ['public.measurements', 'partitioned_table'],
        ['public.orders', 'table'],
        ['public.people', 'table'],
        ['public.race_drop', 'table'],
        ['public.race_recreate', 'table'],
        ['public.measurements_2023', 'partition'],
        ['public.measurements_2024', 'partition'],
        ['public.ticket_seq', 'sequence'],
        ['public.happy_people', 'view'],
        ['public.people_per_mood', 'materialized_view'],
      ]);
      const schema = byName(list, '(schema)');
      expect(schema.selectable).toBe(false);
      expect(schema.dataFormat).toBe('pg_dump-custom');
      const sdef = schema.definition as unknown as PgSchemaDefinition;
      expect(sdef.database).toBe(DB);
      expect(sdef.encoding).toBe('UTF8');
      expect(sdef.pgDumpVersion).toMatch(/^pg_dump \(PostgreSQL\) \d+/);
      expect(sdef.extensions.map((e) => e.name)).toContain('plpgsql');

      const people = byName(list, 'public.people');
      expect(people.dataFormat).toBe('pg-copy-text');
      const pdef = people.definition as unknown as PgTableDefinition;
      expect(pdef.relkind).toBe('r');
      expect(pdef.partitionOf).toBeNull();
      expect(pdef.copyColumns).toEqual(['id', 'name', 'mood', 'note']);
      expect(pdef.columns).toEqual([
        { name: 'id', type: 'integer', notNull: true, generated: false },
        { name: 'name', type: 'text', notNull: true, generated: false },
        { name: 'mood', type: 'public.mood', notNull: false, generated: false },
        { name: 'note', type: 'character varying(40)', notNull: false, generated: false },
        { name: 'shout', type: 'text', notNull: false, generated: true },
      ]);
      // PK index + constraint, people_name, the owned sequence: all catalog OIDs of its own.
      const own = await admin.query<{ oid: number }>(
        `SELECT indexrelid AS oid FROM pg_index WHERE indrelid = 'people'::regclass
         UNION SELECT oid FROM pg_constraint WHERE conrelid = 'people'::regclass
         UNION SELECT 'people_id_seq'::regclass::oid`,
      );
      expect([...pdef.dependentOids].sort()).toEqual(own.rows.map((r) => Number(r.oid)).sort());
      expect(pdef.sequences).toEqual([{ schema: 'public', name: 'people_id_seq', lastValue: '1000', isCalled: true }]);

      const orders = byName(list, 'public.orders').definition as unknown as PgTableDefinition;
      expect(orders.sequences).toEqual([{ schema: 'public', name: 'orders_id_seq', lastValue: '500', isCalled: true }]);
      expect(orders.dependentOids.length).toBeGreaterThanOrEqual(5); // pk index, pk, fk, check, identity sequence

      const parent = byName(list, 'public.measurements');
      expect(parent.dataFormat).toBeUndefined();
      expect((parent.definition as unknown as PgTableDefinition).relkind).toBe('p');
      const part = byName(list, 'public.measurements_2023');
      expect(part.dataFormat).toBe('pg-copy-text');
      expect((part.definition as unknown as PgTableDefinition).partitionOf).toBe('public.measurements');

      const seq = byName(list, 'public.ticket_seq').definition as unknown as PgSequenceDefinition;
      expect(seq).toMatchObject({ schema: 'public', name: 'ticket_seq', lastValue: '100', isCalled: true });
      expect(seq.oid).toBeGreaterThan(0);
      expect(list.some((c) => c.name === 'public.people_id_seq')).toBe(false);

      const view = byName(list, 'public.happy_people');
      expect(view.dataFormat).toBeUndefined();
      expect((view.definition as unknown as PgViewDefinition).relkind).toBe('v');
      const mv = byName(list, 'public.people_per_mood');
      expect(mv.dataFormat).toBeUndefined();
      const mvdef = mv.definition as unknown as PgViewDefinition;
      expect(mvdef.dependentOids).toHaveLength(1);
    } finally {
      await snap.close();
      await snap.close(); // idempotent
    }
  });

  it('streams COPY text with row counts, in the snapshot, and a valid schema archive', async () => {
    const snap = await open({ jobs: 3 });
    try {
      // Written after the snapshot: invisible to it.
      await admin.query("INSERT INTO people (name) SELECT 'late' FROM generate_series(1, 10)");
      const list = await snap.listCollections();
      const reads = ['public.people', 'public.orders', 'public.measurements_2023', 'public.measurements_2024', 'Other.Mixed Case'].map(
        async (name) => {
          const stream = snap.readData(byName(list, name));
          const data = await readAll(stream);
          return { name, rows: stream.rowCount, data };
        },
      );
      const results = await Promise.all(reads);
      const get = (n: string) => results.find((r) => r.name === n)!;
      expect(get('public.people').rows).toBe(1000);
      expect(get('public.people').data.toString()).toContain('10\tperson 10\\nwith newline\\ttab\tok\tn10\n');
      expect(get('public.orders').rows).toBe(500);
      expect(get('public.measurements_2023').rows + get('public.measurements_2024').rows).toBe(800);
      expect(get('Other.Mixed Case').data.toString()).toBe('a"b\nmulti\\nline\n\\N\n');
      expect(get('Other.Mixed Case').rows).toBe(3);

      // No data: the partitioned parent, views, sequences.
      const parent = snap.readData(byName(list, 'public.measurements'));
      expect((await readAll(parent)).length).toBe(0);
      expect(parent.rowCount).toBe(0);

      // The schema archive, taken in the same snapshot.
      const schema = snap.readData(byName(list, '(schema)'));
      const archive = await readAll(schema);
      expect(schema.rowCount).toBe(0);
      expect(archive.subarray(0, 5).toString()).toBe('PGDMP');
      const file = path.join(tmp, 'schema.dump');
      fs.writeFileSync(file, archive);
      const toc = execFileSync('pg_restore', ['-l', file]).toString();
      for (const name of ['people', 'orders', 'measurements', 'measurements_2023']) {
        const def = byName(list, `public.${name}`).definition as unknown as PgTableDefinition;
        expect(toc).toMatch(new RegExp(`; 1259 ${def.oid} TABLE public ${name} `));
      }
      const people = byName(list, 'public.people').definition as unknown as PgTableDefinition;
      const tocOids = [...toc.matchAll(/^\d+; \d+ (\d+) /gm)].map((m) => Number(m[1]));
      expect(people.dependentOids.some((oid) => tocOids.includes(oid))).toBe(true);
      expect(toc).not.toMatch(/TABLE DATA/);
    } finally {
      await snap.close();
      await admin.query("DELETE FROM people WHERE name = 'late'");
    }
  });

  it('measures COPY throughput and survives an aborted or abandoned read', async () => {
    const snap = await open({ jobs: 1 });
    try {
      const list = await snap.listCollections();
      const big = byName(list, 'public.big');
      const t0 = performance.now();
      const stream = snap.readData(big);
      const bytes = (await readAll(stream)).length;
      const ms = performance.now() - t0;
      expect(stream.rowCount).toBe(BIG_ROWS);
      console.log(`COPY: ${BIG_ROWS} rows, ${(bytes / 1e6).toFixed(1)} MB in ${ms.toFixed(0)} ms = ${(bytes / 1e6 / (ms / 1000)).toFixed(0)} MB/s`);

      // Abort mid-stream (jobs 1: this is the main session, which holds the snapshot).
      const ac = new AbortController();
      const aborted = (async () => {
        let n = 0;
        for await (const _chunk of snap.readData(big, ac.signal)) if (++n === 2) ac.abort();
      })();
      await expect(aborted).rejects.toBeInstanceOf(CancelledError);

      // A consumer that stops early.
      for await (const _chunk of snap.readData(big)) break;

      // The session is still usable and still in the snapshot.
      const again = snap.readData(byName(list, 'public.people'));
      await readAll(again);
      expect(again.rowCount).toBe(1000);
    } finally {
      await snap.close();
    }
  });

  it('recovers a worker session after an aborted read', async () => {
    const snap = await open({ jobs: 2 });
    try {
      const list = await snap.listCollections();
      const big = byName(list, 'public.big');
      const holdMain = snap.readData(big)[Symbol.asyncIterator]();
      await holdMain.next(); // the main session is busy: the next reads go to a worker
      const ac = new AbortController();
      const aborted = (async () => {
        let n = 0;
        for await (const _chunk of snap.readData(big, ac.signal)) if (++n === 2) ac.abort();
      })();
      await expect(aborted).rejects.toBeInstanceOf(CancelledError);
      const again = snap.readData(big);
      await readAll(again);
      expect(again.rowCount).toBe(BIG_ROWS);
      await holdMain.return?.();
      const people = snap.readData(byName(list, 'public.people'));
      await readAll(people);
      expect(people.rowCount).toBe(1000);
    } finally {
      await snap.close();
    }
  });

  it('selects collections and lets the selector reject unknown names', async () => {
    let seen: string[] = [];
    const snap = await open({
      select: (names) => {
        seen = names;
        return new Set(['public.people', 'public.happy_people']);
      },
    });
    try {
      expect(seen).toContain('public.ticket_seq');
      expect(seen).toContain('public.measurements_2024');
      expect(seen).not.toContain('(schema)');
      expect(seen).not.toContain('public.people_id_seq');
      const list = await snap.listCollections();
      expect(list.map((c) => c.name)).toEqual(['(schema)', 'public.people', 'public.happy_people']);
    } finally {
      await snap.close();
    }
    const err = new UsageError('No collection matches "nope".');
    await expect(
      open({
        select: () => {
          throw err;
        },
      }),
    ).rejects.toBe(err);
  });

  it('holds ACCESS SHARE locks: a concurrent DROP TABLE waits until close()', async () => {
    const snap = await open({ select: (names) => new Set(names.filter((n) => n === 'public.drop_me')) });
    const other = await connect(settings);
    try {
      let done = false;
      const drop = other.query('DROP TABLE drop_me').then(() => (done = true));
      await new Promise((r) => setTimeout(r, 300));
      expect(done).toBe(false);
      await snap.close();
      await drop;
      expect(done).toBe(true);
    } finally {
      await snap.close();
      await other.end();
    }
  });

  it('fails clearly when a table is dropped between the catalog read and the lock', async () => {
    // select() runs after the catalog read and before the locks: a synchronous psql commits the
    // DDL exactly in that window.
    const psql = (sql: string): void => void execFileSync('psql', ['-X', '-q', '-h', settings.host, '-p', String(settings.port), '-U', settings.user, '-d', DB, '-c', sql]);
    const dropped = open({
      select: (names) => {
        psql('DROP TABLE race_drop');
        return new Set(names.filter((n) => n === 'public.race_drop'));
      },
    });
    await expect(dropped).rejects.toThrow('PostgreSQL table public.race_drop was dropped while the backup started; retry the backup.');
    const recreated = open({
      select: (names) => {
        psql('DROP TABLE race_recreate; CREATE TABLE race_recreate (b text)');
        return new Set(names.filter((n) => n === 'public.race_recreate'));
      },
    });
    await expect(recreated).rejects.toThrow('PostgreSQL table public.race_recreate was dropped while the backup started; retry the backup.');
  });

  it('reads in the main session a table whose DDL is queued behind the backup lock', async () => {
    const snap = await open({ jobs: 2, select: (names) => new Set(names.filter((n) => n === 'public.big' || n === 'public.ddl_queued')) });
    const other = await connect(settings);
    try {
      const list = await snap.listCollections();
      let altered = false;
      const alter = other.query('ALTER TABLE ddl_queued ADD COLUMN b int').then(() => (altered = true));
      await new Promise((r) => setTimeout(r, 100));
      // Keep the main session busy with a COPY, so the next read goes to a worker, which cannot
      // lock ddl_queued (the ALTER is queued) and falls back to the main session.
      const bigIter = snap.readData(byName(list, 'public.big'))[Symbol.asyncIterator]();
      await bigIter.next();
      const queued = snap.readData(byName(list, 'public.ddl_queued'));
      const queuedData = readAll(queued);
      await new Promise((r) => setTimeout(r, 100));
      for (let r = await bigIter.next(); !r.done; r = await bigIter.next()) {
        /* drain */
      }
      expect((await queuedData).toString()).toBe('1\n2\n3\n4\n5\n6\n7\n');
      expect(queued.rowCount).toBe(7);
      expect(altered).toBe(false);
      await snap.close();
      await alter;
    } finally {
      await snap.close();
      await other.end();
    }
  });

  it('fails clearly when another session holds a conflicting lock', async () => {
    const other = await connect(settings);
    try {
      await other.query('BEGIN; LOCK TABLE locked_one IN ACCESS EXCLUSIVE MODE');
      const src = new PostgresSource(settings, { lockTimeoutMs: 200 });
      const p = src.openSnapshot({ select: all, jobs: 1 });
      await expect(p).rejects.toBeInstanceOf(SourceError);
      await expect(p).rejects.toThrow(/table public\.locked_one .*another session holds a conflicting lock/);
    } finally {
      await other.query('ROLLBACK');
      await other.end();
    }
  });

  it('leaves out the staging tables and sequences of a restore into the database, without locking or reading them', async () => {
    // As a restore into this database leaves them while it loads (marked or not yet: by name
    // alone), and while its switch holds them under ACCESS EXCLUSIVE.
    await admin.query(`
      CREATE TABLE "people__cairn_0a1b2c3d_0" (id int PRIMARY KEY, name text);
      CREATE SEQUENCE "people_id_seq__cairn_0a1b2c3d_1";
      CREATE TABLE "Other"."old__cairn_abc123" (x int);
      COMMENT ON TABLE "Other"."old__cairn_abc123" IS 'cairn restore staging: host=h pid=1 started=2026-01-01T00:00:00.000Z';
      INSERT INTO "people__cairn_0a1b2c3d_0" VALUES (1, 'half-loaded');`);
    const restore = await connect(settings);
    try {
      await restore.query('BEGIN; LOCK TABLE "people__cairn_0a1b2c3d_0", "Other"."old__cairn_abc123" IN ACCESS EXCLUSIVE MODE');
      const src = new PostgresSource(settings, { lockTimeoutMs: 500 });
      const snap = await src.openSnapshot({ select: all, jobs: 2 });
      try {
        const list = await snap.listCollections();
        expect(list.filter((c) => c.name.includes('__cairn_'))).toEqual([]);
        expect(list.map((c) => c.name)).toContain('public.people');
        expect(snap.warnings.join('\n')).toMatch(/staging relations of a cairn restore into this database .*not backed up: .*people__cairn_0a1b2c3d_0/);
        const archive = await readAll(snap.readData(byName(list, '(schema)')));
        const file = path.join(tmp, 'staging-schema.dump');
        fs.writeFileSync(file, archive);
        const toc = execFileSync('pg_restore', ['-l', file]).toString();
        expect(toc).not.toMatch(/__cairn_/);
        expect(toc).toMatch(/ TABLE public people /);
      } finally {
        await snap.close();
      }
      // Only names of the staging forms count: a table that merely mentions cairn is backed up.
      await admin.query('CREATE TABLE "notes__cairn_plans" (x int)');
      const snap2 = await open();
      try {
        expect((await snap2.listCollections()).map((c) => c.name)).toContain('public.notes__cairn_plans');
      } finally {
        await snap2.close();
      }
    } finally {
      await restore.query('ROLLBACK');
      await restore.end();
      await admin.query('DROP TABLE "people__cairn_0a1b2c3d_0", "Other"."old__cairn_abc123", "notes__cairn_plans"; DROP SEQUENCE "people_id_seq__cairn_0a1b2c3d_1"');
    }
  });

  it('refuses to back up a restore\'s staging database', async () => {
    const src = new PostgresSource({ ...settings, database: 'shop__cairn_0a1b2c3d' });
    await expect(src.openSnapshot({ select: all, jobs: 1 })).rejects.toThrow(/staging database of a cairn restore/);
  });

  it('backs up roles with pg_dumpall, without passwords by default', async () => {
    const src = new PostgresSource(settings, { roles: true });
    const snap = await src.openSnapshot({ select: () => new Set(), jobs: 1 });
    try {
      const list = await snap.listCollections();
      expect(list.map((c) => c.name)).toEqual(['(schema)', '(roles)']);
      const roles = byName(list, '(roles)');
      expect(roles.dataFormat).toBe('pg_dumpall-roles-sql');
      const def = roles.definition as unknown as PgRolesDefinition;
      expect(def.withPasswords).toBe(false);
      expect(def.roles).toContain('postgres');
      const sql = (await readAll(snap.readData(roles))).toString();
      expect(sql).toContain('CREATE ROLE postgres');
      expect(sql).not.toMatch(/PASSWORD '/);
    } finally {
      await snap.close();
    }
  });

  it('never puts the password on a command line', async () => {
    const secret = `S3cret-${randomBytes(4).toString('hex')}`;
    // pg_hba is "trust" here, so any password is accepted; what matters is where it shows.
    const src = new PostgresSource({ ...settings, password: secret }, { roles: true });
    const snap = await src.openSnapshot({ select: () => new Set(), jobs: 1 });
    try {
      spawned.length = 0;
      let ps = '';
      for (const c of await snap.listCollections()) {
        for await (const _chunk of snap.readData(c)) {
          if (ps === '') ps = execFileSync('ps', ['-eo', 'args']).toString();
        }
      }
      expect(spawned.map((c) => c.command)).toEqual(['pg_dump', 'pg_dumpall']);
      for (const call of spawned) {
        expect(call.args.join(' ')).not.toContain(secret);
        expect(call.args.join(' ')).not.toContain('postgres://');
        expect(call.env?.PGPASSWORD).toBe(secret);
      }
      expect(spawned[0]!.args).toEqual(expect.arrayContaining(['--format=custom', '--schema-only', '--no-password']));
      expect(spawned[1]!.args).toEqual(['--roles-only', '--no-password', '--no-role-passwords']);
      expect(ps.split('\n').filter((l) => l.includes('pg_dump')).join('\n')).not.toContain(secret);
      expect(JSON.stringify(await snap.listCollections())).not.toContain(secret);
      expect(src.location).not.toContain(secret);
    } finally {
      await snap.close();
    }
  });

  it('is what openSource() returns for postgres:// and postgresql:// URLs', () => {
    const a = openSource(`postgresql://postgres:pw@127.0.0.1:5432/${DB}`, { roles: true });
    expect(a).toBeInstanceOf(PostgresSource);
    expect(a.location).toBe(`postgres://postgres@127.0.0.1:5432/${DB}`);
    expect(openSource(`postgres://127.0.0.1/${DB}`)).toBeInstanceOf(PostgresSource);
    // An IPv6 literal: the bare address to connect to, one pair of brackets in the location.
    const v6 = parsePostgresUrl(`postgres://postgres@[::1]:5432/${DB}`);
    expect(v6.host).toBe('::1');
    expect(openSource(`postgres://postgres@[::1]:5432/${DB}`).location).toBe(`postgres://postgres@[::1]:5432/${DB}`);
    expect(databaseKey(`postgres://postgres@[::1]:5432/${DB}`)).toBe(databaseKey(`postgres://postgres@127.0.0.1:5432/${DB}`));
  });
});

describe('PostgresSource connection errors', () => {
  it('names a missing database', async () => {
    const src = new PostgresSource(parsePostgresUrl(`${BASE}/${DB}_missing`));
    const p = src.openSnapshot({ select: all, jobs: 1 });
    await expect(p).rejects.toBeInstanceOf(NotFoundError);
    await expect(p).rejects.toThrow(`PostgreSQL database "${DB}_missing" does not exist on 127.0.0.1:5432`);
  });

  it('names a refused connection', async () => {
    const port = await freePort();
    const src = new PostgresSource(parsePostgresUrl(`postgres://postgres@127.0.0.1:${port}/x`));
    const p = src.openSnapshot({ select: all, jobs: 1 });
    await expect(p).rejects.toBeInstanceOf(SourceError);
    await expect(p).rejects.toThrow(`Cannot connect to PostgreSQL at 127.0.0.1:${port}: connection refused`);
  });

  // The local server trusts every connection from 127.0.0.1 (pg_hba "trust"), so a wrong password
  // cannot be provoked from it: a stub server answers the startup packet with SQLSTATE 28P01,
  // exactly what PostgreSQL sends after a failed password exchange.
  it('names a rejected password without printing it', async () => {
    const server = net.createServer((socket) => {
      socket.once('data', () => {
        const fields = Buffer.from('SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed for user "app"\0\0');
        const head = Buffer.alloc(5);
        head.write('E', 0);
        head.writeInt32BE(fields.length + 4, 1);
        socket.end(Buffer.concat([head, fields]));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as net.AddressInfo;
    try {
      const src = new PostgresSource(parsePostgresUrl(`postgres://app:hunter2secret@127.0.0.1:${port}/db`));
      const err = await src.openSnapshot({ select: all, jobs: 1 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SourceError);
      expect((err as Error).message).toBe(
        `PostgreSQL at 127.0.0.1:${port} refused user "app": password authentication failed. Check the user and password (URL, PGPASSWORD or ~/.pgpass).`,
      );
      expect((err as Error).message).not.toContain('hunter2secret');
    } finally {
      server.close();
    }
  });
});

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}
