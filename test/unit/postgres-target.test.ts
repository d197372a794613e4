/**
 * PostgresTarget against the local PostgreSQL server: the restore items are built here from a
 * scratch source database (catalog queries like the source driver's, pg_dump for the schema
 * archive, COPY TO STDOUT for the data), so these tests do not need the backup side.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CancelledError, ConflictError, SourceError } from '../../src/core/errors.js';
import type { CollectionEntry } from '../../src/core/schemas.js';
import { parsePostgresUrl, type PgConnectionSettings } from '../../src/sources/postgres/connection.js';
import { firstErrors } from '../../src/sources/postgres/tools.js';
import { PG_COPY_TEXT, PG_DUMP_CUSTOM, PG_ROLES_SQL, ROLES_COLLECTION, SCHEMA_COLLECTION } from '../../src/sources/postgres/definitions.js';
import {
  attachedIndex,
  createdDomain,
  foreignKeyNotValid,
  headRelation,
  notValidDomainCheck,
  isStagingRelationName,
  newRestoreId,
  relKey,
  restoreLockKey,
  rewriteQualified,
  STAGING_LOCK_CLASS,
  stagingDatabaseId,
  stagingDatabaseName,
  stagingRelationId,
  stagingRelationName,
} from '../../src/sources/postgres/staging.js';
import { isAbandonedStaging, PostgresTarget, processExists, STAGING_MARK } from '../../src/sources/postgres/target.js';
import { splitScript } from '../../src/sources/postgres/toc.js';
import type { RestoreItem } from '../../src/sources/types.js';
import { hostIdentity, ownerToken } from '../../src/core/owner.js';

const HOST = '127.0.0.1';
const PORT = 5432;
const prefix = `cairn_tt_${randomBytes(3).toString('hex')}`;
const SRC = `${prefix}_src`;
const created = new Set<string>([SRC]);
const ROLE = `${prefix}_role`;

const SOURCE_SQL = `
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE SCHEMA other;
CREATE FUNCTION add1(i int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT i + 1';
CREATE TABLE author (id serial PRIMARY KEY, name text NOT NULL, m mood);
COMMENT ON TABLE author IS 'authors';
COMMENT ON COLUMN author.name IS 'the name';
CREATE TABLE book (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  author_id int REFERENCES author(id),
  title varchar(40),
  price numeric(10,2) DEFAULT 0,
  up text GENERATED ALWAYS AS (upper(title)) STORED
);
CREATE INDEX book_title_idx ON book(title);
CREATE TRIGGER book_trg BEFORE UPDATE ON book FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();
CREATE VIEW book_v AS SELECT b.title, a.name FROM book b JOIN author a ON a.id = b.author_id;
CREATE MATERIALIZED VIEW book_mv AS SELECT author_id, count(*) AS n FROM book GROUP BY author_id;
CREATE INDEX book_mv_idx ON book_mv(author_id);
CREATE MATERIALIZED VIEW book_mv2 AS SELECT sum(n) AS total FROM book_mv;
CREATE TABLE events (id int, at date NOT NULL, v text) PARTITION BY RANGE (at);
CREATE TABLE events_2023 PARTITION OF events FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE INDEX events_at_idx ON events(at);
CREATE SEQUENCE lone_seq;
SELECT setval('lone_seq', 42);
CREATE TABLE other.t (k text PRIMARY KEY, n int DEFAULT add1(1));
GRANT SELECT ON author TO PUBLIC;
INSERT INTO author (name, m) VALUES ('a', 'sad'), ('b', NULL), (E'tab\\there\\nnewline', 'happy');
INSERT INTO book (author_id, title, price) VALUES (1, 'x', 1.5), (2, 'y', NULL), (1, NULL, 3);
INSERT INTO events VALUES (1, '2023-05-01', 'a'), (2, '2024-02-02', 'b'), (3, '2024-03-03', NULL);
INSERT INTO other.t (k) VALUES ('z'), ('y');
CREATE SCHEMA "Sales Ünit";
CREATE TABLE "Sales Ünit"."Order Lines" (id serial PRIMARY KEY, "Note" text, author_id int REFERENCES author(id));
COMMENT ON COLUMN "Sales Ünit"."Order Lines"."Note" IS 'free text';
INSERT INTO "Sales Ünit"."Order Lines" ("Note", author_id) VALUES ('first', 1), (NULL, 2);
REFRESH MATERIALIZED VIEW book_mv;
REFRESH MATERIALIZED VIEW book_mv2;
`;

function settingsFor(db: string): PgConnectionSettings {
  return parsePostgresUrl(`postgres://postgres@${HOST}:${PORT}/${db}`);
}

async function withClient<T>(db: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ host: HOST, port: PORT, user: 'postgres', database: db });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

const qi = (s: string): string => `"${s.replace(/"/g, '""')}"`;

function pgDump(db: string, ...args: string[]): Buffer {
  const r = spawnSync('pg_dump', ['-h', HOST, '-p', String(PORT), '-U', 'postgres', ...args, db], { maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`pg_dump failed: ${r.stderr.toString()}`);
  return r.stdout;
}

/** Plain schema dump without the random \restrict keys. */
function schemaText(db: string): string {
  return pgDump(db, '--schema-only')
    .toString('utf8')
    .split('\n')
    .filter((l) => !/^\\(un)?restrict /.test(l))
    .join('\n');
}

async function copyOut(c: pg.Client, sql: string): Promise<Buffer> {
  const stream = c.query(copyTo(sql));
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

function entry(name: string, kind: string, definition: Record<string, unknown>, extra: Partial<CollectionEntry> = {}): CollectionEntry {
  return { name, kind, definition, rowCount: 0, logicalBytes: 0, storedBytes: 0, newBytes: 0, chunks: [], ...extra };
}

/** Yields the buffer in a few pieces, like the repository does. */
function streamOf(buf: Buffer): () => AsyncIterable<Uint8Array> {
  return async function* () {
    const step = Math.max(1, Math.ceil(buf.length / 3));
    for (let i = 0; i < buf.length; i += step) yield buf.subarray(i, i + step);
  };
}

interface Backup {
  items: RestoreItem[];
  byName: Map<string, RestoreItem>;
}

/** Builds restore items from a live database, as the PostgreSQL source records them. */
async function backupOf(db: string): Promise<Backup> {
  const archive = pgDump(db, '--format=custom', '--schema-only');
  const items: RestoreItem[] = [];
  await withClient(db, async (c) => {
    const { rows: info } = await c.query(
      `SELECT pg_encoding_to_char(encoding) AS encoding, datcollate, datctype FROM pg_database WHERE datname = current_database()`,
    );
    const d = info[0] as { encoding: string; datcollate: string; datctype: string };
    items.push({
      entry: entry(
        SCHEMA_COLLECTION,
        'schema',
        { database: db, encoding: d.encoding, collate: d.datcollate, ctype: d.datctype, pgDumpVersion: 'pg_dump (PostgreSQL) 15', extensions: [] },
        { selectable: false, dataFormat: PG_DUMP_CUSTOM, logicalBytes: archive.length },
      ),
      targetName: SCHEMA_COLLECTION,
      data: streamOf(archive),
    });
    const { rows: rels } = await c.query<{ oid: number; schema: string; name: string; relkind: string; parent: string | null; owned: boolean }>(
      `SELECT c.oid::int AS oid, n.nspname AS schema, c.relname AS name, c.relkind::text AS relkind,
              (SELECT pn.nspname || '.' || pc.relname FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhparent
                 JOIN pg_namespace pn ON pn.oid = pc.relnamespace WHERE i.inhrelid = c.oid AND c.relispartition) AS parent,
              EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                        AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')) AS owned
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
          AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
        ORDER BY CASE WHEN c.relkind IN ('r', 'p') THEN 0 WHEN c.relkind = 'S' THEN 1 ELSE 2 END, c.oid`,
    );
    for (const r of rels) {
      const name = `${r.schema}.${r.name}`;
      const q = `${qi(r.schema)}.${qi(r.name)}`;
      if (r.relkind === 'S') {
        if (r.owned) continue;
        const { rows } = await c.query(`SELECT last_value::text AS v, is_called FROM ${q}`);
        const s = rows[0] as { v: string; is_called: boolean };
        items.push({
          entry: entry(name, 'sequence', { schema: r.schema, name: r.name, oid: r.oid, lastValue: s.v, isCalled: s.is_called }),
          targetName: name,
          data: streamOf(Buffer.alloc(0)),
        });
        continue;
      }
      const { rows: dep } = await c.query<{ oid: number }>(
        `SELECT indexrelid::int AS oid FROM pg_index WHERE indrelid = $1
         UNION ALL SELECT oid::int FROM pg_constraint WHERE conrelid = $1
         UNION ALL SELECT oid::int FROM pg_trigger WHERE tgrelid = $1 AND NOT tgisinternal
         UNION ALL SELECT oid::int FROM pg_rewrite WHERE ev_class = $1 AND rulename <> '_RETURN'
         UNION ALL SELECT oid::int FROM pg_policy WHERE polrelid = $1
         UNION ALL SELECT d.objid::int FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
                    WHERE d.classid = 'pg_class'::regclass AND d.refobjid = $1 AND d.deptype IN ('a', 'i')`,
        [r.oid],
      );
      const dependentOids = dep.map((x) => x.oid);
      if (r.relkind === 'v' || r.relkind === 'm') {
        items.push({
          entry: entry(name, r.relkind === 'v' ? 'view' : 'materialized_view', { schema: r.schema, name: r.name, oid: r.oid, relkind: r.relkind, dependentOids }),
          targetName: name,
          data: streamOf(Buffer.alloc(0)),
        });
        continue;
      }
      const { rows: cols } = await c.query<{ name: string; type: string; notNull: boolean; generated: boolean }>(
        `SELECT attname AS name, format_type(atttypid, atttypmod) AS type, attnotnull AS "notNull", attgenerated <> '' AS generated
           FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
        [r.oid],
      );
      const { rows: seqs } = await c.query<{ schema: string; name: string }>(
        `SELECT sn.nspname AS schema, s.relname AS name FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
           JOIN pg_namespace sn ON sn.oid = s.relnamespace
          WHERE d.classid = 'pg_class'::regclass AND d.refobjid = $1 AND d.deptype IN ('a', 'i')`,
        [r.oid],
      );
      const sequences = [];
      for (const s of seqs) {
        const { rows } = await c.query(`SELECT last_value::text AS v, is_called FROM ${qi(s.schema)}.${qi(s.name)}`);
        const st = rows[0] as { v: string; is_called: boolean };
        sequences.push({ schema: s.schema, name: s.name, lastValue: st.v, isCalled: st.is_called });
      }
      const copyColumns = cols.filter((x) => !x.generated).map((x) => x.name);
      const definition = {
        schema: r.schema,
        name: r.name,
        oid: r.oid,
        relkind: r.relkind,
        partitionOf: r.parent,
        copyColumns,
        columns: cols,
        dependentOids,
        sequences,
      };
      const kind = r.relkind === 'p' ? 'partitioned_table' : r.parent ? 'partition' : 'table';
      if (r.relkind === 'p') {
        items.push({ entry: entry(name, kind, definition), targetName: name, data: streamOf(Buffer.alloc(0)) });
        continue;
      }
      const data = await copyOut(c, `COPY ${q} (${copyColumns.map(qi).join(', ')}) TO STDOUT`);
      const rowCount = data.toString('utf8').split('\n').length - 1;
      items.push({
        entry: entry(name, kind, definition, { dataFormat: PG_COPY_TEXT, rowCount, logicalBytes: data.length }),
        targetName: name,
        data: streamOf(data),
      });
    }
  });
  return { items, byName: new Map(items.map((i) => [i.entry.name, i])) };
}

/** The (schema) item plus the named collections, optionally renamed; fresh data() each call. */
function select(b: Backup, names: string[], renames: Record<string, string> = {}): RestoreItem[] {
  const pick = [SCHEMA_COLLECTION, ...names].map((n) => {
    const it = b.byName.get(n);
    if (!it) throw new Error(`no item ${n}`);
    return { ...it, targetName: renames[n] ?? it.targetName };
  });
  return pick;
}

async function tableDigest(db: string, table: string): Promise<string> {
  return withClient(db, async (c) => {
    const { rows } = await c.query(`SELECT count(*)::int AS n, md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS h FROM ${table} t`);
    return JSON.stringify(rows[0]);
  });
}

async function relations(db: string): Promise<string[]> {
  return withClient(db, async (c) => {
    const { rows } = await c.query<{ r: string }>(
      `SELECT n.nspname || '.' || c.relname || ':' || c.relkind::text AS r FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1`,
    );
    return rows.map((x) => x.r);
  });
}

/** Relations left under staging names (`<name>__cairn_<hex>`). */
async function stagingRelations(db: string): Promise<string[]> {
  return withClient(db, async (c) => {
    const { rows } = await c.query<{ r: string }>(`SELECT c.oid::regclass::text AS r FROM pg_class c WHERE c.relname LIKE '%\\_\\_cairn\\_%' ORDER BY 1`);
    return rows.map((x) => x.r);
  });
}

/** A data() stream that yields the first rows, then waits until `release()` is called. */
function pausedStream(buf: Buffer): { data: () => AsyncIterable<Uint8Array>; paused: Promise<void>; release: () => void } {
  let release!: () => void;
  let reached!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const paused = new Promise<void>((r) => (reached = r));
  const cut = buf.indexOf(10) + 1;
  return {
    data: async function* () {
      yield buf.subarray(0, cut);
      reached();
      await gate;
      yield buf.subarray(cut);
    },
    paused,
    release,
  };
}

async function bufferOf(data: () => AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of data()) parts.push(Buffer.from(chunk));
  return Buffer.concat(parts);
}

async function databases(pattern: string): Promise<string[]> {
  return withClient('postgres', async (c) => {
    const { rows } = await c.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE $1`, [pattern]);
    return rows.map((r) => r.datname);
  });
}

const TABLES = ['"Sales Ünit"."Order Lines"', 'public.author', 'public.book', 'public.events', 'public.book_mv', 'public.book_mv2', 'other.t'];
let backup: Backup;
let allNames: string[];

function dbName(label: string): string {
  const name = `${prefix}_${label}`;
  created.add(name);
  return name;
}

/** Restores the whole backup into a new database (case A). */
async function restoreAll(label: string): Promise<string> {
  const db = dbName(label);
  await new PostgresTarget(settingsFor(db)).restore(select(backup, allNames), { onConflict: 'fail', jobs: 2 });
  return db;
}

beforeAll(async () => {
  await withClient('postgres', (c) => c.query(`CREATE DATABASE ${qi(SRC)}`));
  await withClient(SRC, (c) => c.query(SOURCE_SQL));
  backup = await backupOf(SRC);
  allNames = backup.items.map((i) => i.entry.name).filter((n) => n !== SCHEMA_COLLECTION);
});

afterAll(async () => {
  await withClient('postgres', async (c) => {
    const { rows } = await c.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE $1`, [`${prefix}%`]);
    for (const r of rows) await c.query(`DROP DATABASE IF EXISTS ${qi(r.datname)} WITH (FORCE)`);
    await c.query(`DROP ROLE IF EXISTS ${qi(ROLE)}`);
  });
});

describe('PostgresTarget into a new database', () => {
  it('restores a whole database identically', async () => {
    const db = await restoreAll('full');
    expect(schemaText(db)).toBe(schemaText(SRC));
    for (const t of TABLES) expect(await tableDigest(db, t), t).toBe(await tableDigest(SRC, t));
    const seqs = async (d: string) =>
      withClient(d, async (c) => (await c.query(`SELECT sequencename, last_value FROM pg_sequences ORDER BY 1`)).rows);
    expect(await seqs(db)).toEqual(await seqs(SRC));
    expect(await databases(`${prefix}%_cairn_%`)).toEqual([]);
    // The grant and comments came along.
    const acl = await withClient(db, async (c) => (await c.query(`SELECT relacl::text AS a FROM pg_class WHERE relname = 'author'`)).rows[0]);
    expect(String((acl as { a: string }).a)).toContain('=r/');
  });

  it('restores a subset: only the chosen tables and their indexes, no dangling foreign key', async () => {
    const db = dbName('subset');
    await new PostgresTarget(settingsFor(db)).restore(select(backup, ['public.book']), { onConflict: 'fail' });
    expect(await relations(db)).toEqual(['public.book:r', 'public.book_id_seq:S', 'public.book_pkey:i', 'public.book_title_idx:i']);
    expect(await tableDigest(db, 'public.book')).toBe(await tableDigest(SRC, 'public.book'));
    const fks = await withClient(db, async (c) => (await c.query(`SELECT conname FROM pg_constraint WHERE contype = 'f'`)).rows);
    expect(fks).toEqual([]);
    // Shared objects (types, functions, schemas) come along.
    const fn = await withClient(db, async (c) => (await c.query(`SELECT public.add1(1) AS v`)).rows[0]);
    expect(fn).toEqual({ v: 2 });
    // A schema and table names with spaces; the foreign key to a table left out is dropped.
    const db2 = dbName('subset2');
    await new PostgresTarget(settingsFor(db2)).restore(select(backup, ['Sales Ünit.Order Lines']), { onConflict: 'fail' });
    expect(await relations(db2)).toEqual(['Sales Ünit.Order Lines:r', 'Sales Ünit.Order Lines_id_seq:S', 'Sales Ünit.Order Lines_pkey:i']);
    expect(await tableDigest(db2, '"Sales Ünit"."Order Lines"')).toBe(await tableDigest(SRC, '"Sales Ünit"."Order Lines"'));
    const next = await withClient(db2, async (c) => (await c.query(`SELECT nextval('"Sales Ünit"."Order Lines_id_seq"')::int AS v`)).rows[0]);
    expect(next).toEqual({ v: 3 });
  });

  it('renames, within the schema and into a new one', async () => {
    const db = dbName('rename');
    await new PostgresTarget(settingsFor(db)).restore(select(backup, ['public.author', 'public.book', 'other.t', 'public.book_v']), {
      onConflict: 'fail',
      jobs: 1,
    });
    const db2 = dbName('rename2');
    await new PostgresTarget(settingsFor(db2)).restore(
      select(backup, ['public.author', 'public.book', 'other.t', 'public.book_v'], {
        'public.author': 'public.author2',
        'other.t': 'archive.t3',
        'public.book_v': 'archive.bv',
      }),
      { onConflict: 'fail' },
    );
    const rels = await relations(db2);
    expect(rels).toContain('public.author2:r');
    expect(rels).toContain('archive.t3:r');
    expect(rels).toContain('archive.bv:v');
    expect(rels).not.toContain('public.author:r');
    expect(rels).not.toContain('other.t:r');
    expect(await tableDigest(db2, 'public.author2')).toBe(await tableDigest(SRC, 'public.author'));
    expect(await tableDigest(db2, 'archive.t3')).toBe(await tableDigest(SRC, 'other.t'));
    expect(await tableDigest(db2, 'archive.bv')).toBe(await tableDigest(SRC, 'public.book_v'));
  });

  it('restores roles first when asked, and ignores them otherwise', async () => {
    const sql = Buffer.from(`CREATE ROLE ${qi(ROLE)};\nCREATE ROLE postgres;\nGRANT SELECT ON public.book TO ${qi(ROLE)};\n`);
    const roles: RestoreItem = {
      entry: entry(ROLES_COLLECTION, 'roles', { withPasswords: false, roles: [ROLE, 'postgres'] }, { selectable: false, dataFormat: PG_ROLES_SQL }),
      targetName: ROLES_COLLECTION,
      data: streamOf(sql),
    };
    const roleExists = async () =>
      withClient('postgres', async (c) => (await c.query(`SELECT 1 FROM pg_roles WHERE rolname = $1`, [ROLE])).rowCount === 1);
    await new PostgresTarget(settingsFor(dbName('noroles'))).restore([...select(backup, ['other.t']), roles], { onConflict: 'fail' });
    expect(await roleExists()).toBe(false);
    await new PostgresTarget(settingsFor(dbName('roles'))).restore([...select(backup, ['other.t']), roles], { onConflict: 'fail', roles: true });
    expect(await roleExists()).toBe(true);
    // Roles asked of a backup that holds none: refused by name, nothing created.
    const none = dbName('roles-none');
    await expect(new PostgresTarget(settingsFor(none)).restore(select(backup, ['other.t']), { onConflict: 'fail', roles: true })).rejects.toThrow(
      /--roles: this backup holds no roles \(it was taken without --roles\)/,
    );
    expect(await withClient('postgres', async (c) => (await c.query(`SELECT 1 FROM pg_database WHERE datname = $1`, [none])).rowCount)).toBe(0);
  });

  it('leaves nothing behind when a data stream fails midway', async () => {
    const db = dbName('broken');
    const items = select(backup, allNames).map((it) =>
      it.entry.name === 'public.book'
        ? {
            ...it,
            data: async function* () {
              yield Buffer.from('1\t1\tx\t1.50\n');
              throw new Error('disk on fire');
            },
          }
        : it,
    );
    await expect(new PostgresTarget(settingsFor(db)).restore(items, { onConflict: 'fail', jobs: 2 })).rejects.toThrow(/disk on fire/);
    expect(await databases(`${prefix}_broken%`)).toEqual([]);
    expect(await databases(`${prefix}%_cairn_%`)).toEqual([]);
  });

  it('reports a row count mismatch as corruption', async () => {
    const db = dbName('short');
    const items = select(backup, ['other.t']).map((it) => (it.entry.name === 'other.t' ? { ...it, entry: { ...it.entry, rowCount: 5 } } : it));
    await expect(new PostgresTarget(settingsFor(db)).restore(items, { onConflict: 'fail' })).rejects.toMatchObject({ code: 'CORRUPT' });
    expect(await databases(`${prefix}_short%`)).toEqual([]);
  });

  it('honours an abort signal', async () => {
    const db = dbName('abort');
    const ac = new AbortController();
    const items = select(backup, allNames).map((it) =>
      it.entry.name === 'public.author'
        ? {
            ...it,
            data: async function* () {
              yield Buffer.from('1\ta\tsad\n');
              ac.abort();
              await new Promise((r) => setTimeout(r, 20));
              yield Buffer.from('2\tb\t\\N\n');
            },
          }
        : it,
    );
    await expect(new PostgresTarget(settingsFor(db)).restore(items, { onConflict: 'fail', signal: ac.signal })).rejects.toBeInstanceOf(CancelledError);
    expect(await databases(`${prefix}_abort%`)).toEqual([]);
    expect(await databases(`${prefix}%_cairn_%`)).toEqual([]);
  });
});

describe('PostgresTarget into an existing database', () => {
  let db: string;
  beforeAll(async () => {
    db = await restoreAll('exist');
  });

  it('fails on existing collections under "fail", listing them all, and changes nothing', async () => {
    const before = schemaText(db);
    const target = new PostgresTarget(settingsFor(db));
    const err = await target.restore(select(backup, ['public.author', 'other.t', 'public.book_v']), { onConflict: 'fail' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    const message = (err as Error).message;
    expect(message).toContain('public.author');
    expect(message).toContain('other.t');
    expect(message).toContain('public.book_v');
    await expect(target.check(select(backup, ['public.lone_seq']), 'fail')).rejects.toBeInstanceOf(ConflictError);
    expect(schemaText(db)).toBe(before);
  });

  it('overwrites a table with the same columns', async () => {
    await withClient(db, (c) => c.query(`DELETE FROM other.t WHERE k = 'z'; INSERT INTO other.t (k) VALUES ('new1'), ('new2')`));
    expect(await tableDigest(db, 'other.t')).not.toBe(await tableDigest(SRC, 'other.t'));
    const result = await new PostgresTarget(settingsFor(db)).restore(select(backup, ['other.t']), { onConflict: 'overwrite' });
    expect(result).toMatchObject({ collections: 1, rows: 2, plan: { database: 'existing', created: {}, replaced: { table: 1 } } });
    expect(result.warnings).toBeUndefined();
    expect(await tableDigest(db, 'other.t')).toBe(await tableDigest(SRC, 'other.t'));
    expect(schemaText(db)).toBe(schemaText(SRC));
  });

  it('refuses to overwrite a table with other columns, or one others depend on', async () => {
    const before = schemaText(db);
    const target = new PostgresTarget(settingsFor(db));
    await withClient(db, (c) => c.query(`ALTER TABLE other.t ADD COLUMN extra int`));
    const changed = schemaText(db);
    await expect(target.restore(select(backup, ['other.t']), { onConflict: 'overwrite' })).rejects.toThrow(/different columns/);
    expect(schemaText(db)).toBe(changed);
    await withClient(db, (c) => c.query(`ALTER TABLE other.t DROP COLUMN extra`));
    // book has a foreign key to author and views read it: the DROP … RESTRICT fails, all is rolled back.
    const digest = await tableDigest(db, 'public.author');
    const err = await target.restore(select(backup, ['public.author']), { onConflict: 'overwrite' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as Error).message).toMatch(/depend/);
    expect(await tableDigest(db, 'public.author')).toBe(digest);
    expect(schemaText(db)).toBe(before);
    expect(await stagingRelations(db)).toEqual([]);
  });

  it('overwrites several related collections together, refreshing materialized views', async () => {
    await withClient(db, (c) => c.query(`DELETE FROM public.book WHERE title = 'x'; REFRESH MATERIALIZED VIEW public.book_mv`));
    await new PostgresTarget(settingsFor(db)).restore(
      // book_mv2 reads book_mv: listed first, its refresh fails once and is retried.
      select(backup, ['public.author', 'public.book', 'public.book_v', 'public.book_mv2', 'public.book_mv', 'Sales Ünit.Order Lines']),
      { onConflict: 'overwrite' },
    );
    for (const t of ['public.author', 'public.book', 'public.book_mv', 'public.book_mv2']) expect(await tableDigest(db, t), t).toBe(await tableDigest(SRC, t));
    expect(schemaText(db)).toBe(schemaText(SRC));
  });

  it('rolls back when a data stream fails midway', async () => {
    const before = schemaText(db);
    const digest = await tableDigest(db, 'other.t');
    const items = select(backup, ['other.t']).map((it) =>
      it.entry.name === 'other.t'
        ? {
            ...it,
            data: async function* () {
              yield Buffer.from('q\t2\n');
              throw new Error('network gone');
            },
          }
        : it,
    );
    await expect(new PostgresTarget(settingsFor(db)).restore(items, { onConflict: 'overwrite' })).rejects.toThrow(/network gone/);
    expect(await tableDigest(db, 'other.t')).toBe(digest);
    expect(schemaText(db)).toBe(before);
    expect(await stagingRelations(db)).toEqual([]);
  });

  it('keeps the replaced table and the tables its foreign keys reference writable until the switch', async () => {
    const name = 'Sales Ünit.Order Lines';
    const table = '"Sales Ünit"."Order Lines"';
    const item = backup.byName.get(name) as RestoreItem;
    const stream = pausedStream(await bufferOf(item.data));
    const items = select(backup, [name]).map((it) => (it.entry.name === name ? { ...it, data: stream.data } : it));
    const restore = new PostgresTarget(settingsFor(db)).restore(items, { onConflict: 'overwrite' });
    const failed = restore.then(
      () => undefined,
      (e: unknown) => e,
    );
    await Promise.race([stream.paused, failed]);
    try {
      // Midway through the load: a staging table, marked, next to the table it replaces…
      const staged = await stagingRelations(db);
      expect(staged.some((r) => r.startsWith('"Sales Ünit"."Order Lines__cairn_'))).toBe(true);
      const marks = await withClient(db, async (c) => {
        const { rows } = await c.query<{ d: string }>(`SELECT obj_description(oid, 'pg_class') AS d FROM pg_class WHERE relname LIKE 'Order Lines\\_\\_cairn\\_%' AND relkind = 'r'`);
        return rows.map((r) => r.d);
      });
      expect(marks).toHaveLength(1);
      expect(marks[0]).toMatch(new RegExp(`^${STAGING_MARK} host=\\S+ pid=${process.pid} started=`));
      // …and other sessions keep reading and writing the replaced table and the referenced one.
      await withClient(db, async (c) => {
        await c.query(`SET lock_timeout = '2s'`);
        await c.query(`INSERT INTO ${table} ("Note", author_id) VALUES ('while restoring', 1)`);
        await c.query(`UPDATE ${table} SET "Note" = 'changed' WHERE "Note" = 'first'`);
        await c.query(`INSERT INTO public.author (name) VALUES ('while restoring')`);
        await c.query(`UPDATE public.author SET name = name WHERE id = 1`);
        await c.query(`SELECT count(*) FROM ${table}`);
      });
    } finally {
      stream.release();
    }
    expect(await failed).toBeUndefined();
    expect(await tableDigest(db, table)).toBe(await tableDigest(SRC, table));
    expect(await stagingRelations(db)).toEqual([]);
    // The foreign key to the existing table was added NOT VALID in the switch and validated after.
    const fk = await withClient(db, async (c) => {
      const { rows } = await c.query<{ v: boolean }>(`SELECT convalidated AS v FROM pg_constraint WHERE conname = 'Order Lines_author_id_fkey'`);
      await c.query(`DELETE FROM public.author WHERE name = 'while restoring'`);
      return rows.map((r) => r.v);
    });
    expect(fk).toEqual([true]);
    expect(schemaText(db)).toBe(schemaText(SRC));
  });

  it('a restore aborted during the load leaves the target as it was, without staging tables', async () => {
    const before = schemaText(db);
    const digest = await tableDigest(db, 'other.t');
    const item = backup.byName.get('other.t') as RestoreItem;
    const stream = pausedStream(await bufferOf(item.data));
    const items = select(backup, ['other.t', 'public.lone_seq']).map((it) => (it.entry.name === 'other.t' ? { ...it, data: stream.data } : it));
    const controller = new AbortController();
    const restore = new PostgresTarget(settingsFor(db)).restore(items, { onConflict: 'overwrite', signal: controller.signal }).catch((e: unknown) => e);
    await Promise.race([stream.paused, restore]);
    expect((await stagingRelations(db)).length).toBeGreaterThan(0);
    controller.abort();
    stream.release();
    expect(await restore).toBeInstanceOf(CancelledError);
    expect(await stagingRelations(db)).toEqual([]);
    expect(await tableDigest(db, 'other.t')).toBe(digest);
    expect(schemaText(db)).toBe(before);
  });

  it('restores a single partition into the existing partitioned table', async () => {
    await withClient(db, (c) => c.query(`DROP TABLE public.events_2024`));
    await new PostgresTarget(settingsFor(db)).restore(select(backup, ['public.events_2024']), { onConflict: 'fail' });
    expect(await tableDigest(db, 'public.events')).toBe(await tableDigest(SRC, 'public.events'));
    expect(schemaText(db)).toBe(schemaText(SRC));
  });

  it('gives up on the switch when a lock is held too long, changing nothing', async () => {
    const before = schemaText(db);
    const digest = await tableDigest(db, 'other.t');
    const target = new PostgresTarget(settingsFor(db));
    target.switchLockTimeoutMs = 300;
    const holder = new pg.Client({ host: HOST, port: PORT, user: 'postgres', database: db });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE other.t IN ACCESS SHARE MODE');
      const err = await target.restore(select(backup, ['other.t']), { onConflict: 'overwrite' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SourceError);
      expect((err as Error).message).toMatch(/lock.*Nothing was changed/s);
    } finally {
      await holder.query('ROLLBACK');
      await holder.end();
    }
    expect(await tableDigest(db, 'other.t')).toBe(digest);
    expect(schemaText(db)).toBe(before);
    expect(await stagingRelations(db)).toEqual([]);
  });

  it('commits, then reports a foreign key to an existing table that does not hold (left NOT VALID)', async () => {
    const table = '"Sales Ünit"."Order Lines"';
    await withClient(db, (c) => c.query(`DELETE FROM ${table} WHERE author_id = 2; UPDATE public.book SET author_id = NULL WHERE author_id = 2; DELETE FROM public.author WHERE id = 2`));
    const err = await new PostgresTarget(settingsFor(db)).restore(select(backup, ['Sales Ünit.Order Lines']), { onConflict: 'overwrite' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SourceError);
    expect((err as Error).message).toMatch(/committed.*"Order Lines_author_id_fkey".*NOT VALID/s);
    expect(await tableDigest(db, table)).toBe(await tableDigest(SRC, table));
    const valid = async (): Promise<boolean[]> =>
      withClient(db, async (c) => (await c.query<{ v: boolean }>(`SELECT convalidated AS v FROM pg_constraint WHERE conname = 'Order Lines_author_id_fkey'`)).rows.map((r) => r.v));
    expect(await valid()).toEqual([false]);
    expect(await stagingRelations(db)).toEqual([]);
    // Once the row is back, a restore validates it again.
    await withClient(db, (c) => c.query(`INSERT INTO public.author (id, name) VALUES (2, 'b')`));
    await new PostgresTarget(settingsFor(db)).restore(select(backup, ['Sales Ünit.Order Lines']), { onConflict: 'overwrite' });
    expect(await valid()).toEqual([true]);
  });

  it('into an empty existing database: new supporting objects are dropped again on failure; renames apply', async () => {
    const empty = dbName('empty');
    await withClient('postgres', (c) => c.query(`CREATE DATABASE ${qi(empty)}`));
    const before = schemaText(empty);
    const failing = select(backup, ['other.t', 'public.author']).map((it) =>
      it.entry.name === 'other.t'
        ? {
            ...it,
            data: async function* () {
              yield Buffer.from('q\t2\n');
              throw new Error('network gone');
            },
          }
        : it,
    );
    await expect(new PostgresTarget(settingsFor(empty)).restore(failing, { onConflict: 'fail', jobs: 1 })).rejects.toThrow(/network gone/);
    // Schema "other", type mood and function add1 were created for the load, and dropped.
    expect(schemaText(empty)).toBe(before);
    expect(await relations(empty)).toEqual([]);
    await new PostgresTarget(settingsFor(empty)).restore(select(backup, ['other.t', 'public.author'], { 'other.t': 'fresh.t2' }), { onConflict: 'fail' });
    expect(await relations(empty)).toEqual(['fresh.t2:r', 'fresh.t_pkey:i', 'public.author:r', 'public.author_id_seq:S', 'public.author_pkey:i']);
    expect(await tableDigest(empty, 'fresh.t2')).toBe(await tableDigest(SRC, 'other.t'));
    expect(await tableDigest(empty, 'public.author')).toBe(await tableDigest(SRC, 'public.author'));
    expect(await stagingRelations(empty)).toEqual([]);
  });

  it('accepts a rename whose original name is taken in the target (restored beside it, issue 15), not one whose new name is', async () => {
    await expect(new PostgresTarget(settingsFor(db)).check(select(backup, ['other.t'], { 'other.t': 'other.t9' }), 'fail')).resolves.toBeUndefined();
    await expect(new PostgresTarget(settingsFor(db)).check(select(backup, ['other.t'], { 'other.t': 'public.author' }), 'fail')).rejects.toThrow(/already exists/);
  });
});

describe('reading pg_restore statements (issue 14)', () => {
  it('a bare name before ";" is read without it: ALTER INDEX … ATTACH PARTITION', () => {
    expect(attachedIndex('ALTER INDEX public.customers_pkey ATTACH PARTITION public.customers_eu_pkey;')).toEqual({ schema: 'public', name: 'customers_eu_pkey' });
    expect(attachedIndex('ALTER INDEX public."p\nk" ATTACH PARTITION "S x"."a ""b"" ";')).toEqual({ schema: 'S x', name: 'a "b" ' });
    expect(headRelation('ALTER INDEX public.customers_pkey ATTACH PARTITION public.x;')).toEqual({ schema: 'public', name: 'customers_pkey' });
  });

  it('a pg_restore header spelled inside a quoted name, a literal or a dollar quote does not start a block', () => {
    const fake = '--\n-- Name: y; Type: TABLE; Schema: p; Owner: o\n--\n';
    const script = [
      'SET x = 1;',
      '--\n-- Name: t; Type: TABLE; Schema: public; Owner: o\n--\n',
      `CREATE TABLE public."a\n${fake}b" (c text DEFAULT '\n${fake}', d text DEFAULT E'\\'\n${fake}');`,
      '--\n-- Name: f; Type: FUNCTION; Schema: public; Owner: o\n--\n',
      `CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS $_$\n${fake}SELECT 1$_$;`,
    ].join('\n');
    const blocks = splitScript(script).filter((b) => b.desc !== undefined);
    expect(blocks.map((b) => `${b.desc} ${b.name}`)).toEqual(['TABLE t', 'FUNCTION f']);
    expect(blocks[0]?.sql).toContain('DEFAULT E');
  });

  it('domains: the one a CREATE DOMAIN makes, and a NOT VALID check of one', () => {
    expect(createdDomain('CREATE DOMAIN public."pct\n" AS integer;')).toEqual({ schema: 'public', name: 'pct\n' });
    expect(notValidDomainCheck('ALTER DOMAIN public.pct\n    ADD CONSTRAINT pct_range CHECK (((VALUE >= 0) AND (VALUE <= 100))) NOT VALID;')).toEqual({ schema: 'public', name: 'pct' });
    expect(notValidDomainCheck('ALTER DOMAIN public.pct\n    ADD CONSTRAINT pct_range CHECK ((VALUE >= 0));')).toBeUndefined();
    expect(notValidDomainCheck('ALTER TABLE public.m\n    ADD CONSTRAINT q CHECK ((q > 0)) NOT VALID;')).toBeUndefined();
  });
});

describe('staging names', () => {
  it('are <name>__cairn_<restore id>_<n> and <target>__cairn_<restore id>, truncated to 63 bytes, recognised by name alone', () => {
    expect(stagingRelationName('film', '0abcdef1', 0)).toBe('film__cairn_0abcdef1_0');
    expect(stagingRelationName('film', '0abcdef1', 71)).toBe('film__cairn_0abcdef1_1z');
    const long = stagingRelationName('ü'.repeat(40), '0abcdef1', 3);
    expect(Buffer.byteLength(long)).toBeLessThanOrEqual(63);
    expect(long).toBe(`${'ü'.repeat(22)}__cairn_0abcdef1_3`);
    expect(stagingDatabaseName('x'.repeat(70), 'ffffffff')).toBe(`${'x'.repeat(47)}__cairn_ffffffff`);
    expect(newRestoreId()).toMatch(/^[0-9a-f]{8}$/);
    expect(stagingRelationId('film__cairn_0abcdef1_1z')).toBe('0abcdef1');
    expect(stagingDatabaseId('shop__cairn_0abcdef1')).toBe('0abcdef1');
    expect(stagingDatabaseId('shop_cairn_0abcdef1')).toBeUndefined();
    expect(isStagingRelationName('film__cairn_0abcdef1_0')).toBe(true);
    expect(isStagingRelationName('film__cairn_abc123')).toBe(true); // older versions' form
    expect(isStagingRelationName('film__cairn_notes')).toBe(false);
    expect(isStagingRelationName('film')).toBe(false);
    // Lock keys are int4: ids above 7fffffff wrap to negative numbers.
    expect(restoreLockKey('ffffffff')).toBe(-1);
    expect(restoreLockKey('00000010')).toBe(16);
  });

  it('rewrite qualified names outside literals, dollar quotes and comments', () => {
    const map = new Map([
      [relKey('public', 'film'), 'film__cairn_1'],
      [relKey('Sales Ünit', 'Bestellung'), 'Bestellung__cairn_2'],
      [relKey('public', 'film_id_seq'), 'film_id_seq__cairn_3'],
    ]);
    expect(rewriteQualified('CREATE TABLE public.film (\n    id integer\n);\nALTER TABLE public.film OWNER TO x;', map)).toBe(
      'CREATE TABLE public."film__cairn_1" (\n    id integer\n);\nALTER TABLE public."film__cairn_1" OWNER TO x;',
    );
    expect(rewriteQualified('CREATE TABLE "Sales Ünit"."Bestellung" (a int);', map)).toBe('CREATE TABLE "Sales Ünit"."Bestellung__cairn_2" (a int);');
    expect(rewriteQualified('ALTER SEQUENCE public.film_id_seq OWNED BY public.film.id;', map)).toBe(
      'ALTER SEQUENCE public."film_id_seq__cairn_3" OWNED BY public."film__cairn_1".id;',
    );
    expect(rewriteQualified(`CREATE TABLE public.p (id integer DEFAULT nextval('public.film_id_seq'::regclass), n text DEFAULT 'public.film_id_seq');`, map)).toBe(
      `CREATE TABLE public.p (id integer DEFAULT nextval('public."film_id_seq__cairn_3"'::regclass), n text DEFAULT 'public.film_id_seq');`,
    );
    expect(rewriteQualified(`SELECT nextval('"Sales Ünit"."Bestellung"'::regclass), nextval('public.other'::regclass)`, map)).toBe(
      `SELECT nextval('"Sales Ünit"."Bestellung__cairn_2"'::regclass), nextval('public.other'::regclass)`,
    );
    const untouched = [
      "CREATE TABLE public.films (c text DEFAULT 'public.film', d text CHECK (d <> $x$public.film$x$)); -- public.film",
      'SELECT other.public.film, x.film, public.film2, mypublic.film',
      "COMMENT ON TABLE public.other IS E'it\\'s public.film';",
    ];
    for (const sql of untouched) expect(rewriteQualified(sql, map)).toBe(sql);
  });

  it('add foreign keys NOT VALID, unless they are already', () => {
    const fk = 'ALTER TABLE ONLY public.film\n    ADD CONSTRAINT film_fk FOREIGN KEY (a) REFERENCES public.x(id) ON DELETE CASCADE;';
    expect(foreignKeyNotValid(fk)).toBe(fk.replace(/;$/, ' NOT VALID;'));
    expect(foreignKeyNotValid(`${fk}\n\n--\n-- PostgreSQL database dump complete\n--`)).toBe(`${fk.replace(/;$/, ' NOT VALID;')}\n\n--\n-- PostgreSQL database dump complete\n--`);
    expect(foreignKeyNotValid(fk.replace(/;$/, ' NOT VALID;'))).toBeUndefined();
  });

  it('read the relation at the head of an entry', () => {
    expect(headRelation('CREATE UNIQUE INDEX "my idx" ON ONLY "Sales Ünit"."Bestellung" USING btree (a);')).toEqual({ schema: 'Sales Ünit', name: 'Bestellung' });
    expect(headRelation('ALTER TABLE ONLY public.film\n    ADD CONSTRAINT film_pkey PRIMARY KEY (id);')).toEqual({ schema: 'public', name: 'film' });
    expect(headRelation('GRANT SELECT ON TABLE public.film TO x;')).toBeUndefined();
  });
});

describe('leftovers of restores killed outright (SIGKILL)', () => {
  /** The id of a process that has exited (and been reaped). */
  const deadPid = (): number => {
    const r = spawnSync(process.execPath, ['-e', '']);
    expect(processExists(r.pid)).toBe(false);
    return r.pid;
  };
  const mark = (host: string, pid: number, started: Date): string => `${STAGING_MARK} host=${host} pid=${pid} started=${started.toISOString()}`;
  const comment = async (db: string): Promise<string | null> =>
    withClient('postgres', async (c) => {
      const { rows } = await c.query<{ d: string | null }>(`SELECT shobj_description(oid, 'pg_database') AS d FROM pg_database WHERE datname = $1`, [db]);
      return rows[0]?.d ?? null;
    });
  /** A database (not named like a staging database: the marks alone count) with this comment. */
  const leftover = async (label: string, text: string | null): Promise<string> => {
    const db = dbName(`left_${label}`);
    await withClient('postgres', async (c) => {
      await c.query(`CREATE DATABASE ${qi(db)}`);
      if (text !== null) await c.query(`COMMENT ON DATABASE ${qi(db)} IS '${text.replace(/'/g, "''")}'`);
    });
    return db;
  };

  it('recognises abandoned staging marks', () => {
    const host = os.hostname();
    const now = new Date();
    const dead = deadPid();
    expect(isAbandonedStaging(mark(host, dead, now))).toBe(true);
    expect(isAbandonedStaging(mark(host, process.pid, now))).toBe(false);
    expect(isAbandonedStaging(mark(`not-${host}`, dead, now))).toBe(false);
    expect(isAbandonedStaging(mark(`not-${host}`, process.pid, new Date(Date.now() - 25 * 3600_000)))).toBe(true);
    expect(isAbandonedStaging(mark(host, process.pid, new Date(Date.now() - 23 * 3600_000)))).toBe(false);
    expect(isAbandonedStaging(`${STAGING_MARK} something else`)).toBe(false);
    expect(isAbandonedStaging(`${STAGING_MARK} host=${host} pid=${dead} started=yesterday`)).toBe(false);
    expect(isAbandonedStaging(`my db: ${mark(host, dead, now)}`)).toBe(false);
    expect(isAbandonedStaging(null)).toBe(false);
  });

  it('a restore first drops abandoned staging databases and temporary folders, and nothing else', async () => {
    const host = os.hostname();
    const dead = deadPid();
    const now = new Date();
    const gone = [await leftover('dead', mark(host, dead, now)), await leftover('old', mark('elsewhere.example', 1, new Date('2000-01-01T00:00:00Z')))];
    const kept = [
      await leftover('live', mark(host, process.pid, now)),
      await leftover('away', mark('elsewhere.example', dead, now)),
      await leftover('odd', `${STAGING_MARK} garbage`),
      await leftover('none', null),
    ];
    const tmp = os.tmpdir();
    const deadDir = fs.mkdtempSync(path.join(tmp, `cairn-pg-restore-${dead}-`));
    fs.writeFileSync(path.join(deadDir, 'schema.dump'), 'x');
    const liveDir = fs.mkdtempSync(path.join(tmp, `cairn-pg-restore-${process.pid}-`));
    const otherDir = fs.mkdtempSync(path.join(tmp, 'cairn-pg-restore-'));
    // This version's names carry an owner token (../../src/sources/owner.ts).
    const deadOwnerDir = fs.mkdtempSync(path.join(tmp, `cairn-pg-restore-${hostIdentity()}-${dead}-x-`));
    const liveOwnerDir = fs.mkdtempSync(path.join(tmp, `cairn-pg-restore-${ownerToken()}-`));
    const farOwnerDir = fs.mkdtempSync(path.join(tmp, `cairn-pg-restore-0000000000-${dead}-x-`)); // another container or machine
    try {
      // Into a new database.
      const db = dbName('after_kill');
      await new PostgresTarget(settingsFor(db)).restore(select(backup, ['other.t']), { onConflict: 'fail' });
      expect(await tableDigest(db, 'other.t')).toBe(await tableDigest(SRC, 'other.t'));
      expect(await comment(db), 'the switch clears the staging mark').toBeNull();
      for (const d of gone) expect(await databases(d), d).toEqual([]);
      for (const d of kept) expect(await databases(d), d).toEqual([d]);
      expect(fs.existsSync(deadDir)).toBe(false);
      expect(fs.existsSync(liveDir)).toBe(true);
      expect(fs.existsSync(otherDir)).toBe(true);
      expect(fs.existsSync(deadOwnerDir)).toBe(false);
      expect(fs.existsSync(liveOwnerDir)).toBe(true);
      expect(fs.existsSync(farOwnerDir)).toBe(true);
      expect(await databases(`${prefix}%_cairn_%`)).toEqual([]);
      // Into an existing database too.
      const again = await leftover('dead2', mark(host, deadPid(), now));
      // Staging tables of a restore into this database killed during its load, and others'.
      const deadMark = mark(host, deadPid(), now);
      await withClient(db, async (c) => {
        // One references the other: they are dropped together.
        await c.query(`CREATE TABLE other."t__cairn_0dead0" (k text PRIMARY KEY); COMMENT ON TABLE other."t__cairn_0dead0" IS '${deadMark}'`);
        await c.query(`CREATE TABLE public."p__cairn_0dead1" (k text REFERENCES other."t__cairn_0dead0"(k)); COMMENT ON TABLE public."p__cairn_0dead1" IS '${deadMark}'`);
        await c.query(`CREATE SEQUENCE public."s__cairn_0dead2"; COMMENT ON SEQUENCE public."s__cairn_0dead2" IS '${deadMark}'`);
        await c.query(`CREATE TABLE public."live__cairn_0a11ve" (x int); COMMENT ON TABLE public."live__cairn_0a11ve" IS '${mark(host, process.pid, now)}'`);
        await c.query(`CREATE TABLE public."mine__cairn_000000" (x int)`);
      });
      await new PostgresTarget(settingsFor(db)).restore(select(backup, ['other.t']), { onConflict: 'overwrite' });
      expect(await databases(again)).toEqual([]);
      expect(await stagingRelations(db)).toEqual(['live__cairn_0a11ve', 'mine__cairn_000000']);
      for (const d of kept) expect(await databases(d), d).toEqual([d]);
    } finally {
      for (const d of [deadDir, liveDir, otherDir, deadOwnerDir, liveOwnerDir, farOwnerDir]) fs.rmSync(d, { recursive: true, force: true });
    }
  });

  it('drops staging databases named by a restore whose lock is free (its owner is gone), marked or not, and staging relations carrying the mark; keeps those whose lock is held and unmarked relations', async () => {
    // A kill during CREATE DATABASE leaves a database with a staging name and no comment.
    const deadId = newRestoreId();
    const liveId = newRestoreId();
    const unmarked = stagingDatabaseName(`${prefix}_unmarked`, deadId);
    const live = stagingDatabaseName(`${prefix}_live`, liveId);
    created.add(unmarked);
    created.add(live);
    await withClient('postgres', async (c) => {
      await c.query(`CREATE DATABASE ${qi(unmarked)}`);
      await c.query(`CREATE DATABASE ${qi(live)}`);
    });
    // The live restore's session: it holds its lock on the maintenance database.
    const holder = new pg.Client({ host: HOST, port: PORT, user: 'postgres', database: 'postgres' });
    await holder.connect();
    try {
      await holder.query('SELECT pg_advisory_lock($1, $2)', [STAGING_LOCK_CLASS, restoreLockKey(liveId)]);
      const db = dbName('by_name');
      await new PostgresTarget(settingsFor(db)).restore(select(backup, ['other.t']), { onConflict: 'fail' });
      expect(await databases(unmarked), 'unmarked staging database of a dead owner').toEqual([]);
      expect(await databases(live), 'staging database whose owner holds its lock').toEqual([live]);

      // Staging relations in an existing database, marked as a restore marks them in the
      // transaction that creates them: one restore gone, one live (its lock held on that
      // database). A user's table that only has such a name (no mark) is never dropped.
      const target = new pg.Client({ host: HOST, port: PORT, user: 'postgres', database: db });
      await target.connect();
      try {
        const gone = newRestoreId();
        const running = newRestoreId();
        const users = stagingRelationName('mine', gone, 3);
        await target.query('SELECT pg_advisory_lock($1, $2)', [STAGING_LOCK_CLASS, restoreLockKey(running)]);
        await withClient(db, async (c) => {
          const mark = (kind: string, rel: string): Promise<unknown> => c.query(`COMMENT ON ${kind} ${rel} IS '${STAGING_MARK} host=h pid=1 started=2026-01-01T00:00:00.000Z'`);
          await c.query(`CREATE TABLE other.${qi(stagingRelationName('t', gone, 0))} (k text PRIMARY KEY)`);
          await mark('TABLE', `other.${qi(stagingRelationName('t', gone, 0))}`);
          await c.query(`CREATE SEQUENCE public.${qi(stagingRelationName('s', gone, 1))}`);
          await mark('SEQUENCE', `public.${qi(stagingRelationName('s', gone, 1))}`);
          await c.query(`CREATE TABLE public.${qi(stagingRelationName('p', gone, 2))} (k text REFERENCES other.${qi(stagingRelationName('t', gone, 0))}(k))`);
          await mark('TABLE', `public.${qi(stagingRelationName('p', gone, 2))}`);
          await c.query(`CREATE TABLE public.${qi(stagingRelationName('r', running, 0))} (x int)`);
          await mark('TABLE', `public.${qi(stagingRelationName('r', running, 0))}`);
          await c.query(`CREATE TABLE public.${qi(users)} (x int)`);
        });
        await new PostgresTarget(settingsFor(db)).restore(select(backup, ['other.t']), { onConflict: 'overwrite' });
        expect(await stagingRelations(db)).toEqual([users, stagingRelationName('r', running, 0)].sort());
        // Its owner gone (the session ends), the next restore drops it; the user's table stays.
        await target.end();
        await new PostgresTarget(settingsFor(db)).restore(select(backup, ['other.t']), { onConflict: 'overwrite' });
        expect(await stagingRelations(db)).toEqual([users]);
      } finally {
        await target.end().catch(() => undefined);
      }
    } finally {
      await holder.end();
    }
    await new PostgresTarget(settingsFor(dbName('after_release'))).restore(select(backup, ['other.t']), { onConflict: 'fail' });
    expect(await databases(live), 'its lock free, the next restore drops it').toEqual([]);
  });

  it('a restore whose session holding the staging lock ends stops, and leaves nothing behind', async () => {
    const db = dbName('lease_lost');
    const paused = pausedStream(await bufferOf(select(backup, ['other.t']).find((i) => i.entry.name === 'other.t')?.data as () => AsyncIterable<Uint8Array>));
    const items = select(backup, ['other.t']).map((i) => (i.entry.name === 'other.t' ? { ...i, data: paused.data } : i));
    const restoring = new PostgresTarget(settingsFor(db)).restore(items, { onConflict: 'fail', jobs: 1 });
    const outcome = restoring.then(() => 'resolved', (err: unknown) => err);
    await paused.paused;
    // End the owner's maintenance session (the one holding the lock) from the server side.
    await withClient('postgres', async (c) => {
      const { rows } = await c.query<{ pid: number; id: string }>(
        `SELECT l.pid, lpad(to_hex(l.objid::int8), 8, '0') AS id FROM pg_locks l
          WHERE l.locktype = 'advisory' AND l.classid = $1::int8::oid AND l.objsubid = 2 AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = 'postgres')`,
        [STAGING_LOCK_CLASS],
      );
      const mine: number[] = [];
      for (const r of rows) if ((await databases(stagingDatabaseName(db, r.id))).length === 1) mine.push(r.pid);
      expect(mine).toHaveLength(1);
      await c.query('SELECT pg_terminate_backend($1)', [mine[0]]);
    });
    paused.release();
    const err = await outcome;
    expect(err).toBeInstanceOf(SourceError);
    expect((err as Error).message).toMatch(/lost its PostgreSQL session holding the staging lock/);
    expect(await databases(db)).toEqual([]);
    expect(await databases(`${db}__cairn_%`)).toEqual([]);
  });


  it('drops the supporting objects recorded on an abandoned staging relation only as its owner could', async () => {
    const db = dbName('recorded');
    const mallory = `${prefix}_mallory`;
    await withClient('postgres', (c) => c.query(`CREATE DATABASE ${qi(db)}`));
    await withClient('postgres', (c) => c.query(`CREATE ROLE ${qi(mallory)}`));
    try {
      const id = newRestoreId();
      const table = stagingRelationName('t', id, 0);
      await withClient(db, async (c) => {
        await c.query(`GRANT CREATE ON SCHEMA public TO ${qi(mallory)}`);
        await c.query(`CREATE FUNCTION public.precious() RETURNS int LANGUAGE sql AS 'SELECT 1'`); // owned by postgres
        await c.query(`SET ROLE ${qi(mallory)}`);
        await c.query(`CREATE FUNCTION public.own() RETURNS int LANGUAGE sql AS 'SELECT 2'`);
        await c.query(`CREATE TABLE public.${qi(table)} (x int)`);
        const record = `created: ${JSON.stringify([{ desc: 'FUNCTION', schema: 'public', name: 'precious()' }, { desc: 'FUNCTION', schema: 'public', name: 'own()' }])}`;
        await c.query(`COMMENT ON TABLE public.${qi(table)} IS '${STAGING_MARK} host=h pid=1 started=2026-01-01T00:00:00.000Z\n${record}'`);
        await c.query('RESET ROLE');
      });
      await new PostgresTarget(settingsFor(db)).restore(select(backup, ['other.t']), { onConflict: 'fail' });
      expect(await stagingRelations(db)).toEqual([]);
      const functions = await withClient(db, async (c) => (await c.query<{ p: string }>(`SELECT proname AS p FROM pg_proc WHERE proname IN ('precious', 'own') ORDER BY 1`)).rows.map((r) => r.p));
      // mallory could drop its own function, not the one it does not own.
      expect(functions).toEqual(['precious']);
    } finally {
      await withClient('postgres', async (c) => {
        await c.query(`DROP DATABASE IF EXISTS ${qi(db)} WITH (FORCE)`);
        await c.query(`DROP ROLE IF EXISTS ${qi(mallory)}`);
      });
    }
  });

});

describe('errors quoting SQL from pg_restore', () => {
  it('never quote a user mapping’s or a server’s options, or a role’s password', () => {
    const stderr = [
      'pg_restore: error: could not execute query: ERROR:  server "remote" does not exist',
      `Command was: CREATE USER MAPPING FOR app SERVER remote OPTIONS ("user" 'app', password 's3cr''et (x)');`,
      `Command was: CREATE SERVER remote FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'db', password 'hunter2');`,
      `Command was: CREATE ROLE app LOGIN PASSWORD 'SCRAM-SHA-256$4096:abc';`,
    ].join('\n');
    const out = firstErrors(stderr);
    for (const secret of ['s3cr', 'hunter2', 'SCRAM-SHA-256', "'app'"]) expect(out).not.toContain(secret);
    expect(out).toContain('server "remote" does not exist');
    expect(out).toContain('CREATE USER MAPPING FOR app SERVER remote OPTIONS (…)');
  });
});
