/**
 * Issue 14, restore fidelity: each case of fixtures/postgres/cases/ this file owns (and siblings
 * of its kind) is backed up by cairn, restored into a new database, then restored again with
 * `--on-conflict overwrite` into that copy after its rows changed; every result is compared
 * with what `pg_dump | pg_restore` makes of the same input (pgDumpReference): schema dump, each
 * table's ordered checksum (materialized views: populated or not), sequence states.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBackup } from '../../src/jobs/backup.js';
import { runRestore } from '../../src/jobs/restore.js';
import { Repository } from '../../src/repo/repository.js';
import { openSource, openTarget } from '../../src/sources/index.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { createCaseDatabase, pgDumpReference } from '../helpers/pg-cases.js';
import { createDatabase, dropDatabase, ensurePostgres, lit, loadEveryKind, pgUrl, psql, schemaDump, sequenceStates, tableChecksums } from '../helpers/postgres.js';

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

/**
 * What a restore must reproduce (helpers/postgres.ts snapshotOf), except that the leaf
 * partitions of `wholeTrees` count as one table each: where rows land in a hash partitioning that
 * is not portable (an enum's hash is its OID) differs between any two restored databases,
 * pg_dump's reference included; the tree's rows must not.
 */
function snapshot(db: string, wholeTrees: string[] = []): { schema: string; tables: Record<string, string>; sequences: Record<string, string> } {
  const tables = tableChecksums(db);
  for (const root of wholeTrees) {
    const leaves = psql(db, `SELECT n.nspname || '.' || c.relname FROM pg_partition_tree(${lit(root)}::regclass) t JOIN pg_class c ON c.oid = t.relid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE t.isleaf`)
      .split('\n')
      .filter(Boolean);
    for (const leaf of leaves) delete tables[leaf];
    tables[`tree ${root}`] = psql(db, `SELECT count(*) || ':' || md5(string_agg(t::text, E'\\n' ORDER BY t::text)) FROM ${root} t`).trim();
  }
  return { schema: schemaDump(db), tables, sequences: sequenceStates(db) };
}

/**
 * Backs `source` up, compares a new-database restore with the pg_dump reference, changes the
 * copy with `mutate`, restores over it with overwrite, compares again. Returns the copy.
 */
async function roundTrip(source: string, caseName: string, mutate: string, wholeTrees: string[] = []): Promise<{ copy: string; warnings: string[] }> {
  const id = `${caseName}-${counter++}`;
  await runBackup({ repo, source: openSource(pgUrl(source)), id, compressionWorkers: 0 });
  const ref = track(pgDumpReference(source, caseName));
  const expected = snapshot(ref, wholeTrees);
  const copy = targetName(caseName);
  const first = await runRestore({ repo, backupId: id, target: openTarget(pgUrl(copy)) });
  const fresh = snapshot(copy, wholeTrees);
  expect(fresh.schema, 'new database: schema').toEqual(expected.schema);
  expect(fresh.tables, 'new database: rows').toEqual(expected.tables);
  expect(fresh.sequences, 'new database: sequences').toEqual(expected.sequences);
  if (mutate) psql(copy, mutate);
  const second = await runRestore({ repo, backupId: id, target: openTarget(pgUrl(copy)), onConflict: 'overwrite' });
  expect(second.warnings ?? [], 'the same warnings both ways').toEqual(first.warnings ?? []);
  const again = snapshot(copy, wholeTrees);
  expect(again.schema, 'overwrite: schema').toEqual(expected.schema);
  expect(again.tables, 'overwrite: rows').toEqual(expected.tables);
  expect(again.sequences, 'overwrite: sequences').toEqual(expected.sequences);
  expect(psql(copy, `SELECT count(*) FROM pg_class WHERE relname LIKE '%\\_\\_cairn\\_%'`).trim(), 'no staging relation left').toBe('0');
  return { copy, warnings: first.warnings ?? [] };
}

async function caseRoundTrip(caseName: string, mutate: string, wholeTrees: string[] = []): Promise<{ copy: string; warnings: string[] }> {
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
    await caseRoundTrip('newline', `DELETE FROM "line1\nline2" WHERE id = 1; DELETE FROM "say ""hi"" ";`);
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
  });
});

describe('every kind of object, overwrite', () => {
  it('every-kind.sql: new database, then overwrite after changes, equals pg_dump | pg_restore', async () => {
    const source = track(createDatabase('fo_every'));
    loadEveryKind(source);
    await roundTrip(source, 'every', `UPDATE "Customer" SET "Full Name" = 'changed'; DELETE FROM "Sales Ünit"."Position"; DELETE FROM public.audit_log;`);
  }, 180_000);
});
