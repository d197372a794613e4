/**
 * Issue 14, restore fidelity: each case of fixtures/postgres/cases/ this file owns (and siblings
 * of its kind) is backed up by cairn, restored into a new database, then restored again with
 * `--on-conflict overwrite` into that copy after its rows changed; every result is compared
 * with what `pg_dump | pg_restore` makes of the same input (pgDumpReference): schema dump, each
 * table's ordered checksum (materialized views: populated or not), sequence states.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBackup } from '../../src/jobs/backup.js';
import { runRestore } from '../../src/jobs/restore.js';
import { Repository } from '../../src/repo/repository.js';
import { openSource, openTarget } from '../../src/sources/index.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { cairn } from '../helpers/cli.js';
import { createCaseDatabase, pgDumpReference } from '../helpers/pg-cases.js';
import { createDatabase, createDatabaseWith, dropDatabase, ensurePostgres, ident, lit, loadEveryKind, pgEnv, pgUrl, psql, schemaDump } from '../helpers/postgres.js';

let dir: string;
let repo: Repository;
const databases: string[] = [];
let counter = 0;

/** A database name a restore will create (dropped in afterAll). */
function targetName(prefix: string): string {
  const name = `cairn_t_${prefix}_${process.pid}_${counter++}`;
  databases.push(name);
  return name;
}

function track(db: string): string {
  databases.push(db);
  return db;
}

beforeAll(async () => {
  ensurePostgres();
  dir = mkdtempSync(join(tmpdir(), 'cairn-pgfo-'));
  repo = await Repository.init(new FileSystemStorage(join(dir, 'repo')), { compression: { algorithm: 'none', level: 'default' } });
});

afterAll(() => {
  for (const db of databases) {
    try {
      dropDatabase(db);
    } catch (err) {
      console.error(`could not drop ${db}: ${String(err)}`);
    }
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Runs a query whose one row and column is JSON (names may hold line breaks: psql's lines cannot carry them). */
function json<T>(db: string, sql: string): T {
  return JSON.parse(psql(db, sql).trim() || 'null') as T;
}

/**
 * `schema.name` → `count:md5` of the rows in a canonical order for every table, leaf partition
 * and materialized view ("unpopulated" when it has no data), as helpers/postgres.ts
 * tableChecksums, but read as JSON. The leaf partitions of `wholeTrees` count as one table each:
 * where rows land in a hash partitioning that is not portable (an enum's hash is its OID)
 * differs between any two restored databases, pg_dump's reference included; the tree's rows
 * must not.
 */
function tablesOf(db: string, wholeTrees: string[]): Record<string, string> {
  const rels = json<[string, string, boolean][] | null>(
    db,
    `SELECT json_agg(json_build_array(n.nspname, c.relname, c.relispopulated) ORDER BY n.nspname, c.relname)
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'`,
  ) ?? [];
  const hidden = new Set<string>();
  for (const root of wholeTrees) {
    const leaves = json<string[] | null>(
      db,
      `SELECT json_agg(n.nspname || '.' || c.relname) FROM pg_partition_tree(${lit(root)}::regclass) t
         JOIN pg_class c ON c.oid = t.relid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE t.isleaf`,
    );
    for (const leaf of leaves ?? []) hidden.add(leaf);
  }
  const selects = rels
    .filter(([schema, name]) => !hidden.has(`${schema}.${name}`))
    .map(([schema, name, populated]) => {
    const q = `${ident(schema)}.${ident(name)}`;
    const key = lit(`${schema}.${name}`);
    if (!populated) return `SELECT ${key} AS k, 'unpopulated' AS v`;
    return `SELECT ${key}, count(*) || ':' || coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '') FROM ${q} t`;
  });
  for (const root of wholeTrees) selects.push(`SELECT ${lit(`tree ${root}`)}, count(*) || ':' || md5(string_agg(t::text, E'\\n' ORDER BY t::text)) FROM ${root} t`);
  if (selects.length === 0) return {};
  const all = json<Record<string, string>>(db, `SELECT json_object_agg(k, v) FROM (${selects.join('\nUNION ALL\n')}) x(k, v)`);
  return Object.fromEntries(Object.entries(all).filter(([k]) => !hidden.has(k)));
}

/** `schema.sequence` → `last_value:is_called` of every sequence, read as JSON. */
function sequencesOf(db: string): Record<string, string> {
  const seqs = json<[string, string][] | null>(
    db,
    `SELECT json_agg(json_build_array(n.nspname, c.relname) ORDER BY 1) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'S'`,
  ) ?? [];
  if (seqs.length === 0) return {};
  const selects = seqs.map(([schema, name]) => `SELECT ${lit(`${schema}.${name}`)}, last_value || ':' || is_called FROM ${ident(schema)}.${ident(name)}`);
  return json<Record<string, string>>(db, `SELECT json_object_agg(k, v) FROM (${selects.join('\nUNION ALL\n')}) x(k, v)`);
}

/** The lines only one of two schema dumps has (the failure message of a schema comparison). */
function dumpDiff(got: string, want: string): string {
  const a = new Set(got.split('\n'));
  const b = new Set(want.split('\n'));
  const extra = [...a].filter((l) => !b.has(l)).slice(0, 15).map((l) => `+ ${l}`);
  const missing = [...b].filter((l) => !a.has(l)).slice(0, 15).map((l) => `- ${l}`);
  return [...missing, ...extra].join('\n');
}

/** What a restore must reproduce: the schema dump, every table's rows, every sequence's state. */
function snapshot(db: string, wholeTrees: string[] = []): { schema: string; tables: Record<string, string>; sequences: Record<string, string> } {
  return { schema: schemaDump(db), tables: tablesOf(db, wholeTrees), sequences: sequencesOf(db) };
}

/**
 * Backs `source` up, compares a new-database restore with the pg_dump reference, changes the
 * copy with `mutate`, restores over it with overwrite, compares again. Returns the copy.
 */
async function roundTrip(
  source: string,
  caseName: string,
  mutate: string,
  wholeTrees: string[] = [],
  reference: (db: string, caseName: string) => string = pgDumpReference,
): Promise<{ copy: string; warnings: string[]; id: string }> {
  const id = `${caseName}-${counter++}`;
  await runBackup({ repo, source: openSource(pgUrl(source)), id, compressionWorkers: 0 });
  const ref = track(reference(source, caseName));
  const expected = snapshot(ref, wholeTrees);
  const copy = targetName(caseName);
  const first = await runRestore({ repo, backupId: id, target: openTarget(pgUrl(copy)) });
  const fresh = snapshot(copy, wholeTrees);
  expect(fresh.schema, `new database: schema\n${dumpDiff(fresh.schema, expected.schema)}`).toEqual(expected.schema);
  expect(fresh.tables, 'new database: rows').toEqual(expected.tables);
  expect(fresh.sequences, 'new database: sequences').toEqual(expected.sequences);
  if (mutate) psql(copy, mutate);
  const second = await runRestore({ repo, backupId: id, target: openTarget(pgUrl(copy)), onConflict: 'overwrite' });
  expect(second.warnings ?? [], 'the same warnings both ways').toEqual(first.warnings ?? []);
  const again = snapshot(copy, wholeTrees);
  expect(again.schema, `overwrite: schema\n${dumpDiff(again.schema, expected.schema)}`).toEqual(expected.schema);
  expect(again.tables, 'overwrite: rows').toEqual(expected.tables);
  expect(again.sequences, 'overwrite: sequences').toEqual(expected.sequences);
  expect(psql(copy, `SELECT count(*) FROM pg_class WHERE relname LIKE '%\\_\\_cairn\\_%'`).trim(), 'no staging relation left').toBe('0');
  return { copy, warnings: first.warnings ?? [], id };
}

async function caseRoundTrip(caseName: string, mutate: string, wholeTrees: string[] = []): Promise<{ copy: string; warnings: string[]; id: string }> {
  const source = track(createCaseDatabase(caseName));
  return roundTrip(source, caseName, mutate, wholeTrees);
}

describe('issue 14 cases, new database and overwrite, against pg_dump | pg_restore', () => {
  it('line 12: a foreign key to a partitioned table\'s primary key (partfk)', async () => {
    await caseRoundTrip('partfk', `DELETE FROM orders; DELETE FROM customers; INSERT INTO customers VALUES ('eu', 9, 'Z');`);
  });

  it('line 13: circular foreign keys, both tables replaced (circular)', async () => {
    await caseRoundTrip('circular', `BEGIN; SET CONSTRAINTS ALL DEFERRED; UPDATE emp SET boss = NULL; DELETE FROM emp WHERE id = 21; COMMIT;`);
  });

  it('line 14: NOT VALID checks (domain, table, foreign key) with old violating rows (notvalid)', async () => {
    await caseRoundTrip('notvalid', `DELETE FROM m WHERE id = 2;`);
  });

  it('line 15: table names with a newline, a double quote and a trailing space (newline)', async () => {
    const { copy } = await caseRoundTrip('newline', `DELETE FROM "line1\nline2" WHERE id = 1; DELETE FROM "say ""hi"" ";`);
    // Each alone, by --include: into a new database and over the copy.
    const id = `newline-inc-${counter++}`;
    await runBackup({ repo, source: openSource(pgUrl(copy)), id, compressionWorkers: 0 });
    for (const name of ['"line1\nline2"', '"say ""hi"" "']) {
      const alone = targetName('newline_inc');
      const r = await runRestore({ repo, backupId: id, target: openTarget(pgUrl(alone)), selection: { include: [name] } });
      expect(r.collections).toBe(1);
      expect(psql(alone, `SELECT count(*) FROM ${name}`).trim()).toBe(name.startsWith('"line') ? '2' : '1');
      psql(copy, `DELETE FROM ${name}`);
      await runRestore({ repo, backupId: id, target: openTarget(pgUrl(copy)), selection: { include: [name] }, onConflict: 'overwrite' });
      expect(psql(copy, `SELECT count(*) FROM ${name}`).trim()).toBe(name.startsWith('"line') ? '2' : '1');
    }
  });

  it('line 2: a materialized view WITH NO DATA stays unpopulated (mv_nodata)', async () => {
    const { copy, warnings } = await caseRoundTrip('mv_nodata', `REFRESH MATERIALIZED VIEW hourly; DELETE FROM readings WHERE id > 40;`);
    expect(psql(copy, `SELECT relname || '=' || relispopulated FROM pg_class WHERE relkind = 'm' ORDER BY 1`).trim()).toBe('hourly=false\ntotals=true');
    expect(warnings).toEqual([]);
  });

  it('line 2: an unpopulated materialized view whose query fails on the data does not abort the restore (mv_nodata_err)', async () => {
    const { warnings } = await caseRoundTrip('mv_nodata_err', `DELETE FROM readings WHERE id > 40;`);
    expect(warnings).toEqual([]);
  });

  it('line 6: hash partitions on an enum column load through the partitioned root (hashenum)', async () => {
    const { copy, warnings } = await caseRoundTrip('hashenum', `DELETE FROM paint WHERE id > 40;`, ['public.paint']);
    expect(warnings.join('\n')).toMatch(/rows of public\.paint_0, .* were loaded through their partitioned table public\.paint \(hash partitioning on an enum/);
    expect(psql(copy, `SELECT count(*) FROM paint`).trim()).toBe('80');
    // The CLI says so (stderr), and --json carries it.
    const cliRepo = join(dir, `cli-${counter++}`);
    expect(cairn(['repo', 'init', cliRepo]).code).toBe(0);
    const made = cairn(['backup', 'create', '--source', pgUrl(copy), '--repo', cliRepo, '--id', 'h']);
    expect(made.code, made.stderr).toBe(0);
    const restored = cairn(['restore', 'h', '--repo', cliRepo, '--to', pgUrl(targetName('hashenum_cli'))]);
    expect(restored.code, restored.stderr).toBe(0);
    expect(restored.stderr).toMatch(/^cairn: warning: rows of public\.paint_0, public\.paint_1, public\.paint_2, public\.paint_3 were loaded through their partitioned table public\.paint \(hash partitioning on an enum/m);
    const json = cairn(['restore', 'h', '--repo', cliRepo, '--to', pgUrl(copy), '--on-conflict', 'overwrite', '--json']);
    expect(json.code, json.stderr).toBe(0);
    expect((JSON.parse(json.stdout) as { warnings?: string[] }).warnings).toEqual([expect.stringMatching(/^rows of public\.paint_0/)]);
  });
});

/** pgDumpReference with `pg_dump --load-via-partition-root` (pg_dump's rule covers only enum_ops keys). */
function viaRootReference(db: string, caseName: string): string {
  const ref = createDatabaseWith(`${caseName}_ref`, 'TEMPLATE template0');
  const dump = spawnSync('pg_dump', ['--format=custom', '--load-via-partition-root', '-d', db], { env: pgEnv(), maxBuffer: 256 * 1024 * 1024 });
  if (dump.status !== 0) throw new Error(`pg_dump ${db}: ${dump.stderr.toString()}`);
  const restore = spawnSync('pg_restore', ['--exit-on-error', '-d', ref], { env: pgEnv(), input: dump.stdout, maxBuffer: 64 * 1024 * 1024 });
  if (restore.status !== 0) throw new Error(`pg_restore into ${ref}: ${restore.stderr.toString()}`);
  return ref;
}

/** Loads `sql` into a new database (dropped in afterAll) and returns its name. */
function sourceWith(prefix: string, sql: string): string {
  const db = track(createDatabase(prefix));
  psql(db, sql);
  return db;
}

describe('siblings of each kind, new database and overwrite, against pg_dump | pg_restore', () => {
  it('identifiers: line breaks, quotes, trailing spaces and dots in schema, table, column, sequence, index, constraint, view and matview names; a name and a literal spelling a pg_restore header', async () => {
    const source = sourceWith(
      'fo_names',
      `CREATE SCHEMA "s
 x.y";
       CREATE TABLE "s
 x.y"."t
""q"" " (id serial PRIMARY KEY, "col
umn" text UNIQUE, n int CONSTRAINT "chk
1" CHECK (n > 0));
       INSERT INTO "s
 x.y"."t
""q"" " ("col
umn", n) VALUES ('a', 1), ('b', 2);
       CREATE INDEX "idx
2" ON "s
 x.y"."t
""q"" " (n);
       CREATE TABLE "ref
x" (id int REFERENCES "s
 x.y"."t
""q"" " (id), "k;" int);
       INSERT INTO "ref
x" VALUES (1, 1), (2, 2);
       CREATE VIEW "v
w" AS SELECT * FROM "ref
x";
       CREATE MATERIALIZED VIEW "m
v" AS SELECT count(*) AS c FROM "ref
x";
       CREATE TABLE "p
art" (k int, v text) PARTITION BY RANGE (k);
       CREATE TABLE "p
art 1" PARTITION OF "p
art" FOR VALUES FROM (0) TO (10);
       ALTER TABLE "p
art" ADD PRIMARY KEY (k);
       INSERT INTO "p
art" VALUES (1, 'one');
       COMMENT ON TABLE "ref
x" IS 'a
comment';
       CREATE TABLE "x
--
-- Name: y; Type: TABLE; Schema: p; Owner: o
--
z" (id int PRIMARY KEY, note text DEFAULT '
--
-- Name: n; Type: INDEX; Schema: public; Owner: o
--
');
       INSERT INTO "x
--
-- Name: y; Type: TABLE; Schema: p; Owner: o
--
z" (id) VALUES (1);`,
    );
    await roundTrip(source, 'names', `DELETE FROM "ref
x"; INSERT INTO "p
art" VALUES (2, 'two'); REFRESH MATERIALIZED VIEW "m
v";`);
  });

  it('partitioned foreign keys: to a sub-partitioned table, from a partitioned table, to a unique constraint', async () => {
    const source = sourceWith(
      'fo_partfk',
      `CREATE TABLE c (region text NOT NULL, id int NOT NULL, code text NOT NULL, PRIMARY KEY (region, id), UNIQUE (region, id, code)) PARTITION BY LIST (region);
       CREATE TABLE c_eu PARTITION OF c FOR VALUES IN ('eu') PARTITION BY HASH (id);
       CREATE TABLE c_eu_0 PARTITION OF c_eu FOR VALUES WITH (MODULUS 2, REMAINDER 0);
       CREATE TABLE c_eu_1 PARTITION OF c_eu FOR VALUES WITH (MODULUS 2, REMAINDER 1);
       CREATE TABLE c_rest PARTITION OF c DEFAULT;
       CREATE TABLE o (id int, region text, cust int, code text, PRIMARY KEY (id, region),
         FOREIGN KEY (region, cust) REFERENCES c (region, id), FOREIGN KEY (region, cust, code) REFERENCES c (region, id, code)) PARTITION BY LIST (region);
       CREATE TABLE o_all PARTITION OF o DEFAULT;
       INSERT INTO c VALUES ('eu', 1, 'a'), ('eu', 2, 'b'), ('us', 3, 'c');
       INSERT INTO o VALUES (1, 'eu', 1, 'a'), (2, 'us', 3, 'c');`,
    );
    await roundTrip(source, 'partfk2', `DELETE FROM o; DELETE FROM c WHERE id = 2;`);
  });

  it('foreign key cycles: three tables in a ring, a self-reference, a cycle through a partitioned table', async () => {
    const source = sourceWith(
      'fo_cycle',
      `CREATE TABLE a (id int PRIMARY KEY, b_id int);
       CREATE TABLE b (id int PRIMARY KEY, c_id int);
       CREATE TABLE c (id int PRIMARY KEY, a_id int REFERENCES a DEFERRABLE INITIALLY DEFERRED, parent int REFERENCES c);
       ALTER TABLE a ADD FOREIGN KEY (b_id) REFERENCES b DEFERRABLE INITIALLY DEFERRED;
       ALTER TABLE b ADD FOREIGN KEY (c_id) REFERENCES c DEFERRABLE INITIALLY DEFERRED;
       CREATE TABLE pp (id int PRIMARY KEY, a_id int REFERENCES a DEFERRABLE INITIALLY DEFERRED) PARTITION BY RANGE (id);
       CREATE TABLE pp_1 PARTITION OF pp FOR VALUES FROM (0) TO (100);
       ALTER TABLE a ADD COLUMN pp_id int REFERENCES pp DEFERRABLE INITIALLY DEFERRED;
       BEGIN;
       INSERT INTO a VALUES (1, 1, 1); INSERT INTO b VALUES (1, 1); INSERT INTO c VALUES (1, 1, NULL), (2, 1, 1); INSERT INTO pp VALUES (1, 1);
       COMMIT;`,
    );
    await roundTrip(source, 'cycle', `BEGIN; SET CONSTRAINTS ALL DEFERRED; DELETE FROM c WHERE id = 2; COMMIT;`);
  });

  it('NOT VALID: a domain over a domain, an array of the domain, a comment and a grant on it, checks on a table and a partitioned table, a foreign key', async () => {
    const source = sourceWith(
      'fo_notvalid',
      `CREATE DOMAIN base_pct AS int;
       CREATE DOMAIN pct AS base_pct;
       CREATE TABLE r (id int PRIMARY KEY, p pct, ps pct[], q int);
       INSERT INTO r VALUES (1, 150, '{200,5}', -1), (2, 50, '{1}', 3);
       CREATE TABLE pr (id int, q pct) PARTITION BY RANGE (id);
       CREATE TABLE pr_1 PARTITION OF pr FOR VALUES FROM (0) TO (10);
       INSERT INTO pr VALUES (1, -1);
       ALTER DOMAIN pct ADD CONSTRAINT pct_range CHECK (VALUE BETWEEN 0 AND 100) NOT VALID;
       ALTER DOMAIN base_pct ADD CONSTRAINT base_pos CHECK (VALUE >= 0) NOT VALID;
       COMMENT ON DOMAIN pct IS 'percent';
       GRANT USAGE ON DOMAIN pct TO PUBLIC;
       ALTER TABLE r ADD CONSTRAINT q_pos CHECK (q > 0) NOT VALID;
       CREATE TABLE k (id int PRIMARY KEY);
       ALTER TABLE r ADD COLUMN k_id int DEFAULT 7;
       ALTER TABLE r ADD CONSTRAINT r_k FOREIGN KEY (k_id) REFERENCES k NOT VALID;
       ALTER TABLE pr ADD CONSTRAINT pr_q CHECK (q > 0) NOT VALID;`,
    );
    await roundTrip(source, 'notvalid2', `DELETE FROM r WHERE id = 2;`);
  });

  it('materialized views: populated one over an unpopulated one, WITH NO DATA with an index, a populated one whose query fails now', async () => {
    const source = sourceWith(
      'fo_mv',
      `CREATE TABLE r (id int PRIMARY KEY, v numeric);
       INSERT INTO r SELECT g, g FROM generate_series(1, 10) g;
       CREATE MATERIALIZED VIEW base AS SELECT id, v FROM r WITH NO DATA;
       CREATE UNIQUE INDEX base_id ON base (id);
       CREATE MATERIALIZED VIEW top AS SELECT sum(v) AS s FROM r;
       CREATE MATERIALIZED VIEW second AS SELECT s * 2 AS d FROM top;`,
    );
    await roundTrip(source, 'mv2', `REFRESH MATERIALIZED VIEW base; DELETE FROM r WHERE id > 5;`);
    // Populated at backup, but its query fails on the data restored: pg_restore fails there; cairn
    // leaves it unpopulated and says so.
    const failing = sourceWith(
      'fo_mvfail',
      `CREATE TABLE r (id int PRIMARY KEY, v numeric);
       INSERT INTO r VALUES (1, 1);
       CREATE MATERIALIZED VIEW inv AS SELECT 100 / v AS x FROM r;
       CREATE MATERIALIZED VIEW fine AS SELECT count(*) AS n FROM r;
       INSERT INTO r VALUES (2, 0);`,
    );
    const id = `mvfail-${counter++}`;
    await runBackup({ repo, source: openSource(pgUrl(failing)), id, compressionWorkers: 0 });
    const copy = targetName('mvfail');
    const first = await runRestore({ repo, backupId: id, target: openTarget(pgUrl(copy)) });
    expect(first.warnings).toEqual([expect.stringMatching(/^materialized view public\.inv is left unpopulated: its query failed on the restored data \(division by zero\)/)]);
    const populated = (db: string): string => psql(db, `SELECT string_agg(relname || '=' || relispopulated, ',' ORDER BY relname) FROM pg_class WHERE relkind = 'm'`).trim();
    expect(populated(copy)).toBe('fine=true,inv=false');
    const second = await runRestore({ repo, backupId: id, target: openTarget(pgUrl(copy)), onConflict: 'overwrite' });
    expect(second.warnings).toEqual(first.warnings);
    expect(populated(copy)).toBe('fine=true,inv=false');
  });

  it('hash partitioning: on a domain over an enum, on an enum array, under a range partition, and on int (loaded directly)', async () => {
    const source = sourceWith(
      'fo_hash',
      `CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'great', 'meh');
       CREATE DOMAIN dmood AS mood;
       CREATE TABLE h1 (id int, m dmood) PARTITION BY HASH (m);
       CREATE TABLE h1_0 PARTITION OF h1 FOR VALUES WITH (MODULUS 3, REMAINDER 0);
       CREATE TABLE h1_1 PARTITION OF h1 FOR VALUES WITH (MODULUS 3, REMAINDER 1);
       CREATE TABLE h1_2 PARTITION OF h1 FOR VALUES WITH (MODULUS 3, REMAINDER 2);
       CREATE TABLE h2 (id int, ms mood[]) PARTITION BY HASH (ms);
       CREATE TABLE h2_0 PARTITION OF h2 FOR VALUES WITH (MODULUS 2, REMAINDER 0);
       CREATE TABLE h2_1 PARTITION OF h2 FOR VALUES WITH (MODULUS 2, REMAINDER 1);
       CREATE TABLE r (d int, m mood) PARTITION BY RANGE (d);
       CREATE TABLE r_low PARTITION OF r FOR VALUES FROM (0) TO (50) PARTITION BY HASH (m);
       CREATE TABLE r_low_0 PARTITION OF r_low FOR VALUES WITH (MODULUS 2, REMAINDER 0);
       CREATE TABLE r_low_1 PARTITION OF r_low FOR VALUES WITH (MODULUS 2, REMAINDER 1);
       CREATE TABLE r_high PARTITION OF r FOR VALUES FROM (50) TO (100);
       CREATE TABLE hi (id int) PARTITION BY HASH (id);
       CREATE TABLE hi_0 PARTITION OF hi FOR VALUES WITH (MODULUS 2, REMAINDER 0);
       CREATE TABLE hi_1 PARTITION OF hi FOR VALUES WITH (MODULUS 2, REMAINDER 1);
       INSERT INTO h1 SELECT g, (enum_range(NULL::mood))[1 + g % 5] FROM generate_series(1, 60) g;
       INSERT INTO h2 SELECT g, ARRAY[(enum_range(NULL::mood))[1 + g % 5], 'ok'::mood] FROM generate_series(1, 60) g;
       INSERT INTO r SELECT g, (enum_range(NULL::mood))[1 + g % 5] FROM generate_series(0, 99) g;
       INSERT INTO hi SELECT g FROM generate_series(1, 20) g;`,
    );
    // pg_dump routes h1 (enum_ops) and r (an enum-hashed level below it) itself; h2's enum array
    // is cairn's widening (pg_dump | pg_restore fails on it: "violates partition constraint"),
    // so the reference is made with --load-via-partition-root.
    const { warnings } = await roundTrip(source, 'hash', `DELETE FROM h1 WHERE id > 30; DELETE FROM r WHERE d < 10;`, ['public.h1', 'public.h2', 'public.r'], viaRootReference);
    const text = warnings.join('\n');
    expect(text).toMatch(/partitioned table public\.h1 \(hash partitioning on an enum/);
    expect(text).toMatch(/partitioned table public\.h2 \(hash partitioning on a type holding an enum/);
    // As pg_dump: r_high's only ancestor (range) is safe, it loads directly.
    expect(text).toMatch(/rows of public\.r_low_0, public\.r_low_1 were loaded through their partitioned table public\.r \(hash partitioning on an enum/);
    expect(text).not.toMatch(/public\.hi\b/);
  });
});

/**
 * Object kinds pg_dump emits that every-kind.sql does not hold, all hanging off restored tables
 * (what the overwrite path rebuilds by hand): inheritance, typed and unlogged tables, identity
 * and generated columns, exclusion / deferrable / NOT VALID constraints, partial, expression,
 * INCLUDE and CLUSTER ON indexes, column statistics targets, storage and collation, replica
 * identity, rules, constraint and conditional triggers, disabled triggers, forced row security,
 * publications, comments on columns, constraints, indexes and triggers,
 * column grants, a casted default, an operator, a cast, an aggregate, a text search configuration.
 */
const MORE_KINDS = `
  CREATE EXTENSION IF NOT EXISTS btree_gist;
  CREATE TYPE pair AS (a int, b int);
  CREATE FUNCTION pair_sum(pair) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1.a + $1.b';
  CREATE OPERATOR ### (LEFTARG = int, RIGHTARG = int, FUNCTION = int4pl);
  CREATE FUNCTION pair_of(int) RETURNS pair LANGUAGE sql IMMUTABLE AS 'SELECT ROW($1, $1)::pair';
  CREATE CAST (int AS pair) WITH FUNCTION pair_of(int);
  CREATE AGGREGATE total(int) (SFUNC = int4pl, STYPE = int, INITCOND = '0');
  CREATE TEXT SEARCH CONFIGURATION my_ts (COPY = simple);
  CREATE TABLE parent_t (id int PRIMARY KEY, note text);
  CREATE TABLE child_t (extra int) INHERITS (parent_t);
  CREATE TABLE typed_t OF pair (PRIMARY KEY (a));
  CREATE UNLOGGED TABLE scratch (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text COLLATE "C", w int GENERATED ALWAYS AS (length(v)) STORED);
  ALTER TABLE scratch ALTER COLUMN v SET STATISTICS 500, ALTER COLUMN v SET STORAGE EXTERNAL;
  CREATE TABLE rooms (id int PRIMARY KEY, during tstzrange, room int, code text,
    CONSTRAINT no_overlap EXCLUDE USING gist (room WITH =, during WITH &&),
    CONSTRAINT code_u UNIQUE (code) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT room_pos CHECK (room > 0));
  CREATE INDEX rooms_partial ON rooms (room) WHERE room > 10;
  CREATE INDEX rooms_expr ON rooms (lower(code)) INCLUDE (room);
  ALTER TABLE rooms CLUSTER ON rooms_expr;
  ALTER TABLE rooms REPLICA IDENTITY FULL;
  CREATE TABLE log_t (id serial PRIMARY KEY, msg text DEFAULT (1 ### 2)::text, p pair DEFAULT 5::pair);
  CREATE FUNCTION log_it() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN INSERT INTO log_t (msg) VALUES (TG_OP); RETURN NEW; END$$;
  CREATE TRIGGER rooms_when AFTER UPDATE ON rooms FOR EACH ROW WHEN (OLD.room IS DISTINCT FROM NEW.room) EXECUTE FUNCTION log_it();
  CREATE CONSTRAINT TRIGGER rooms_ct AFTER INSERT ON rooms DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION log_it();
  CREATE TRIGGER rooms_off AFTER DELETE ON rooms FOR EACH ROW EXECUTE FUNCTION log_it();
  ALTER TABLE rooms DISABLE TRIGGER rooms_off;
  CREATE RULE parent_ro AS ON DELETE TO parent_t WHERE OLD.id < 0 DO INSTEAD NOTHING;
  ALTER TABLE parent_t ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
  CREATE POLICY all_rows ON parent_t USING (true);
  CREATE PUBLICATION pub_rooms FOR TABLE rooms, log_t;
  COMMENT ON COLUMN rooms.code IS 'booking code';
  COMMENT ON CONSTRAINT room_pos ON rooms IS 'positive';
  COMMENT ON INDEX rooms_expr IS 'by code';
  COMMENT ON TRIGGER rooms_when ON rooms IS 'logs moves';
  GRANT SELECT (id, code) ON rooms TO PUBLIC;
  INSERT INTO parent_t VALUES (1, 'p'); INSERT INTO child_t VALUES (2, 'c', 7);
  INSERT INTO typed_t VALUES (1, 2);
  INSERT INTO scratch (v) VALUES ('x'), ('yy');
  INSERT INTO rooms VALUES (1, '[2024-01-01,2024-01-02)', 11, 'A'), (2, '[2024-01-01,2024-01-02)', 12, 'B');
  UPDATE rooms SET room = 13 WHERE id = 2;
  ALTER TABLE rooms ADD CONSTRAINT room_small CHECK (room < 13) NOT VALID;
`;

describe('limits, as docs/postgres.md states them', () => {
  it('a domain with a NOT VALID check that a table not restored uses: the restored columns are converted to it, rows that break it fail the restore, nothing changed', async () => {
    const source = sourceWith(
      'fo_domlim',
      `CREATE DOMAIN pct AS int;
       CREATE TABLE a (id int PRIMARY KEY, p pct); CREATE TABLE b (id int PRIMARY KEY, p pct); CREATE TABLE c (id int PRIMARY KEY, p pct);
       INSERT INTO a VALUES (1, 150); INSERT INTO b VALUES (1, 10); INSERT INTO c VALUES (1, 20);
       ALTER DOMAIN pct ADD CONSTRAINT pct_range CHECK (VALUE BETWEEN 0 AND 100) NOT VALID;`,
    );
    const id = `domlim-${counter++}`;
    await runBackup({ repo, source: openSource(pgUrl(source)), id, compressionWorkers: 0 });
    const copy = targetName('domlim');
    await runRestore({ repo, backupId: id, target: openTarget(pgUrl(copy)) });
    psql(copy, `UPDATE b SET p = 11; UPDATE a SET p = 50;`);
    const before = snapshot(copy);
    // b's rows hold: b is replaced, c (not restored) keeps the domain in place.
    await runRestore({ repo, backupId: id, target: openTarget(pgUrl(copy)), selection: { include: ['b'] }, onConflict: 'overwrite' });
    expect(psql(copy, `SELECT p FROM b`).trim()).toBe('10');
    expect(psql(copy, `SELECT count(*) FROM pg_type WHERE typname LIKE 'pct%'`).trim()).toBe('1');
    // a's backed-up row (150) breaks the check: refused, the target as it was.
    psql(copy, `UPDATE b SET p = 11;`);
    await expect(
      runRestore({ repo, backupId: id, target: openTarget(pgUrl(copy)), selection: { include: ['a'] }, onConflict: 'overwrite' }),
    ).rejects.toThrow(/Cannot restore the columns of domain public\.pct: the restored rows break a check the archive added NOT VALID/);
    expect(snapshot(copy)).toEqual(before);
    expect(psql(copy, `SELECT count(*) FROM pg_class WHERE relname LIKE '%\\_\\_cairn\\_%'`).trim()).toBe('0');
  });

  it('a hash partition on an enum restored alone over its existing partition is loaded directly: a row whose hash picks another partition fails the switch, nothing changed', async () => {
    const source = track(createCaseDatabase('hashenum', 'fo_hashlim'));
    const id = `hashlim-${counter++}`;
    await runBackup({ repo, source: openSource(pgUrl(source)), id, compressionWorkers: 0 });
    const copy = targetName('hashlim');
    await runRestore({ repo, backupId: id, target: openTarget(pgUrl(copy)) });
    // Some backed-up partition's rows land elsewhere in the copy (other enum OIDs): find one. (A
    // partition whose rows all fit replaces the copy's one, as a partition restored alone does.)
    const failures: string[] = [];
    for (const p of ['paint_0', 'paint_1', 'paint_2', 'paint_3']) {
      const before = snapshot(copy);
      try {
        await runRestore({ repo, backupId: id, target: openTarget(pgUrl(copy)), selection: { include: [p] }, onConflict: 'overwrite' });
      } catch (err) {
        failures.push(`${p}: ${(err as Error).message}`);
        expect(snapshot(copy), 'nothing changed').toEqual(before);
      }
    }
    expect(failures.length, failures.join('\n')).toBeGreaterThan(0);
    for (const f of failures) expect(f).toMatch(/^paint_\d: Cannot attach a restored partition in .*: partition constraint of relation "paint_\d" is violated by some row: some of its rows belong in another partition .* Nothing was changed; restore the partitioned table with its partitions/);
  });
});

describe('every kind of object, overwrite', () => {
  it('object kinds every-kind.sql lacks: new database, then overwrite after changes, equals pg_dump | pg_restore', async () => {
    const source = sourceWith('fo_more', MORE_KINDS);
    await roundTrip(
      source,
      'more',
      `DELETE FROM child_t; DELETE FROM rooms; INSERT INTO log_t (msg) VALUES ('new'); TRUNCATE scratch; ALTER TABLE rooms ENABLE TRIGGER rooms_off;`,
    );
  }, 180_000);

  it('every-kind.sql: new database, then overwrite after changes, equals pg_dump | pg_restore', async () => {
    const source = track(createDatabase('fo_every'));
    loadEveryKind(source);
    await roundTrip(source, 'every', `UPDATE "Customer" SET "Full Name" = 'changed'; DELETE FROM "Sales Ünit"."Position"; DELETE FROM public.audit_log;`);
  }, 180_000);
});

/** A small deterministic PRNG (mulberry32): a failing seed can be run again (CAIRN_PG_SEED). */
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

/** Names a user may give that the restore paths must carry (quoted as SQL writes them). */
const NAME_POOL = ['t', 'Upper', 'with space', 'trail ', 'dot.ted', 'quo"te', 'line\nbreak', 'select', 'ünï', 'semi;colon', 'a,b', 'x=y', '"lead'];

/**
 * A random database over the kinds of the issue-14 lines: schemas and tables with hostile names,
 * plain, list-, range- and hash-partitioned tables (hash on an enum, a domain over it or int),
 * foreign keys between tables (cycles and self-references, deferrable so rows can go in), domains
 * with NOT VALID checks and rows that break them, NOT VALID table checks, materialized views with
 * and without data. Returns the SQL and the partitioned roots whose rows may land elsewhere.
 */
function randomDatabase(seed: number): { sql: string; hashRoots: string[]; plain: [string, string][]; refs: number[]; viewsOf: string[][] } {
  const rnd = prng(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const names = [...NAME_POOL].sort(() => rnd() - 0.5);
  let k = 0;
  const fresh = (): string => `${names[k++ % names.length]}${k > names.length ? k : ''}`;
  const schemas = ['public', fresh()];
  const q = (schema: string, name: string): string => `${ident(schema)}.${ident(name)}`;
  const sql: string[] = [
    `CREATE SCHEMA ${ident(schemas[1] as string)};`,
    `CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy', 'great', 'meh');`,
    `CREATE DOMAIN public.dmood AS public.mood;`,
    `CREATE DOMAIN public.pct AS int;`,
    `CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.v := NEW.v || '!'; RETURN NEW; END$$;`,
  ];
  const hashRoots: string[] = [];
  const plain: string[] = [];
  const plainNames: [string, string][] = [];
  const viewsOf: string[][] = [];
  const tables = 3 + Math.floor(rnd() * 3);
  const inserts: string[] = [];
  for (let i = 0; i < tables; i++) {
    const [schema, table] = [pick(schemas), fresh()];
    const name = q(schema, table);
    const kind = i < 2 ? 'plain' : pick(['plain', 'list', 'range', 'hash-enum', 'hash-domain', 'hash-int']);
    if (kind === 'plain') {
      sql.push(`CREATE TABLE ${name} (id int PRIMARY KEY, v text, p public.pct, ref int, s serial, g int GENERATED ALWAYS AS (id * 2) STORED);`);
      if (rnd() < 0.5) sql.push(`CREATE INDEX ${ident(fresh())} ON ${name} (lower(v)) WHERE id > 0;`);
      const views: string[] = [];
      if (rnd() < 0.5) views.push(q(pick(schemas), fresh()));
      for (const v of views) sql.push(`CREATE VIEW ${v} AS SELECT id, v FROM ${name} WHERE id % 2 = 0;`);
      viewsOf.push(views);
      if (rnd() < 0.5) sql.push(`CREATE TRIGGER ${ident(fresh())} BEFORE UPDATE ON ${name} FOR EACH ROW EXECUTE FUNCTION public.touch();`);
      plain.push(name);
      plainNames.push([schema, table]);
      // Rows that break the domain's NOT VALID check, in some tables.
      const breaking = rnd() < 0.4 ? 'CASE WHEN g % 3 = 0 THEN 150 ELSE g END' : 'g';
      inserts.push(`INSERT INTO ${name} (id, v, p, ref) SELECT g, 'v' || g, ${breaking}, NULL FROM generate_series(1, 12) g;`);
      continue;
    }
    const keyType = kind === 'hash-enum' ? 'public.mood' : kind === 'hash-domain' ? 'public.dmood' : 'int';
    const strategy = kind === 'list' ? 'LIST' : kind === 'range' ? 'RANGE' : 'HASH';
    sql.push(`CREATE TABLE ${name} (id int, k ${keyType}, v text, ref int, PRIMARY KEY (id, k)) PARTITION BY ${strategy} (k);`);
    const parts = 2 + Math.floor(rnd() * 2);
    for (let j = 0; j < parts; j++) {
      const part = q(pick(schemas), fresh());
      const bound =
        strategy === 'HASH'
          ? `FOR VALUES WITH (MODULUS ${parts}, REMAINDER ${j})`
          : strategy === 'LIST'
            ? j === parts - 1 ? 'DEFAULT' : `FOR VALUES IN (${j})`
            : `FOR VALUES FROM (${j * 10}) TO (${j * 10 + 10})`;
      sql.push(`CREATE TABLE ${part} PARTITION OF ${name} ${bound};`);
    }
    if (strategy === 'HASH' && keyType !== 'int') hashRoots.push(name);
    const key = keyType === 'int' ? (strategy === 'RANGE' ? `g % ${parts * 10}` : `g % ${parts}`) : `(enum_range(NULL::public.mood))[1 + g % 5]`;
    inserts.push(`INSERT INTO ${name} SELECT g, ${key}, 'v' || g, NULL FROM generate_series(1, 20) g;`);
  }
  // Foreign keys among plain tables: a ring (a cycle once there are two), self-references.
  const fks: string[] = [];
  const refs: number[] = [];
  plain.forEach((t, i) => {
    refs.push(rnd() < 0.3 ? i : (i + 1) % plain.length);
    const to = plain[refs[i] as number] as string;
    fks.push(`ALTER TABLE ${t} ADD FOREIGN KEY (ref) REFERENCES ${to} (id) DEFERRABLE INITIALLY DEFERRED;`);
    inserts.push(`UPDATE ${t} SET ref = id WHERE id % 2 = 0;`);
  });
  const after: string[] = [
    `ALTER DOMAIN public.pct ADD CONSTRAINT pct_range CHECK (VALUE BETWEEN 0 AND 100) NOT VALID;`,
    ...plain.filter(() => rnd() < 0.5).map((t) => `ALTER TABLE ${t} ADD CHECK (length(v) > 2) NOT VALID;`),
  ];
  const views = plain.map((t, i) => `CREATE MATERIALIZED VIEW public.${ident(`mv ${i}`)} AS SELECT count(*) AS n, sum(100 / (id - 1)) AS s FROM ${t} WHERE id > 1 ${rnd() < 0.5 ? 'WITH NO DATA' : ''};`);
  return { sql: [...sql, ...fks, 'BEGIN;', ...inserts, 'COMMIT;', ...after, ...views].join('\n'), hashRoots, plain: plainNames, refs, viewsOf };
}

describe('random databases over the kinds (property: cairn = pg_dump --load-via-partition-root | pg_restore, new database and overwrite)', () => {
  const seeds = process.env.CAIRN_PG_SEED ? [Number(process.env.CAIRN_PG_SEED)] : [Math.floor(Math.random() * 2 ** 31), Math.floor(Math.random() * 2 ** 31)];
  for (const seed of seeds) {
    it(`seed ${seed} (CAIRN_PG_SEED=${seed} runs it again)`, async () => {
      const { sql, hashRoots, plain, refs, viewsOf } = randomDatabase(seed);
      const source = sourceWith(`fo_rand`, sql);
      const mutate = `BEGIN; SET CONSTRAINTS ALL DEFERRED; ${psql(source, `SELECT string_agg(format('UPDATE %I.%I SET v = ''changed'';', n.nspname, c.relname), ' ') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname NOT IN ('pg_catalog', 'information_schema')`).trim()} COMMIT;`;
      const { copy, id } = await roundTrip(source, 'rand', mutate, hashRoots, viaRootReference);
      // Overwrite of a random subset of the plain tables (--include): those come back as backed
      // up, the others keep their changes; foreign keys to the others are checked after the
      // switch. A replaced table's dependents must be replaced too (docs: refused otherwise, as
      // pg_restore --clean fails on them): the tables whose keys reference it, its views.
      const rnd = prng(seed + 1);
      const picked = new Set(plain.map((_, i) => i).filter(() => rnd() < 0.5));
      if (picked.size === 0) picked.add(Math.floor(rnd() * plain.length));
      for (let grew = true; grew; ) {
        grew = false;
        refs.forEach((to, i) => {
          if (picked.has(to) && !picked.has(i)) {
            picked.add(i);
            grew = true;
          }
        });
      }
      const chosen = plain.filter((_, i) => picked.has(i));
      const expected = tablesOf(source, hashRoots);
      psql(copy, mutate);
      const changed = tablesOf(copy, hashRoots);
      const include = [...chosen.map(([s, t]) => `${ident(s)}.${ident(t)}`), ...[...picked].flatMap((i) => [`public.${ident(`mv ${i}`)}`, ...(viewsOf[i] ?? [])])];
      try {
        await runRestore({ repo, backupId: id, target: openTarget(pgUrl(copy)), selection: { include }, onConflict: 'overwrite' });
      } catch (err) {
        // The documented limit (docs/postgres.md): the domain with a NOT VALID check is used by
        // tables not restored, and restored rows break the check (pg_restore -t fails too).
        expect((err as Error).message).toMatch(/^Cannot restore the columns of domain public\.pct: the restored rows break a check/);
        expect(tablesOf(copy, hashRoots), 'nothing changed').toEqual(changed);
        return;
      }
      const keys = new Set(chosen.map(([s, t]) => `${s}.${t}`));
      const now = tablesOf(copy, hashRoots);
      for (const [k, v] of Object.entries(now)) {
        if (k.startsWith('public.mv ')) continue; // materialized views: not restored here
        expect(v, `${JSON.stringify(k)} after --include ${include.join(',')}`).toBe(keys.has(k) ? expected[k] : changed[k]);
      }
    }, 180_000);
  }
});
