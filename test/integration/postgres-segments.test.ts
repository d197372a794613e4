/**
 * Large tables read in block ranges (segments) in parallel under one snapshot, and loaded back
 * in parallel: the same rows, in both kinds of restore, and deduplication across backups.
 * The threshold is lowered so that a table of a few MiB is split (the default is 64 MiB).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackupManifest, CollectionEntry } from '../../src/core/schemas.js';
import { runBackup } from '../../src/jobs/backup.js';
import { runRestore } from '../../src/jobs/restore.js';
import { Repository } from '../../src/repo/repository.js';
import { verifyBackups } from '../../src/repo/verify.js';
import { parsePostgresUrl } from '../../src/sources/postgres/connection.js';
import { PostgresSource, segmentRanges } from '../../src/sources/postgres/source.js';
import { PostgresTarget } from '../../src/sources/postgres/target.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { createDatabase, dropDatabase, ensurePostgres, pgUrl, psql, schemaDump, tableChecksums } from '../helpers/postgres.js';

describe('segmentRanges', () => {
  it('splits only large tables, into jobs+1 … 2×jobs power-of-two ranges covering every block', () => {
    expect(segmentRanges(8191, 2)).toEqual([]);
    expect(segmentRanges(1_000_000, 1)).toEqual([]);
    for (const [blocks, jobs] of [[8192, 2], [100_000, 2], [88_000, 4], [1_000_000, 8], [123_457, 3]] as const) {
      const r = segmentRanges(blocks, jobs);
      expect(r.length, `${blocks} blocks, ${jobs} jobs`).toBeGreaterThan(jobs);
      expect(r.length).toBeLessThanOrEqual(2 * jobs);
      expect(r[0]?.[0]).toBe(0);
      expect(r.at(-1)?.[1]).toBeNull(); // open-ended: rows added meanwhile are read
      const size = (r[0]?.[1] as number) - (r[0]?.[0] as number);
      expect(Math.log2(size) % 1).toBe(0);
      for (let k = 1; k < r.length; k++) expect(r[k]?.[0]).toBe(r[k - 1]?.[1]);
    }
  });

  it('keeps the boundaries where they were when a table grows by 2%', () => {
    const before = segmentRanges(100_000, 2).slice(0, -1);
    const after = segmentRanges(102_000, 2);
    expect(after.slice(0, before.length)).toEqual(before);
  });
});

describe.sequential('segmented PostgreSQL backups', () => {
  let db: string;
  let dir: string;
  let repo: Repository;
  const targets: string[] = [];
  const source = (): PostgresSource => new PostgresSource(parsePostgresUrl(pgUrl(db)), { segmentMinBlocks: 64 });
  const big = (m: BackupManifest): CollectionEntry => m.collections.find((c) => c.name === 'public.big') as CollectionEntry;

  beforeAll(async () => {
    ensurePostgres();
    db = createDatabase('cairn_seg');
    psql(
      db,
      `CREATE TABLE big (id int PRIMARY KEY, t text NOT NULL, j jsonb, n numeric, g int GENERATED ALWAYS AS (id * 2) STORED);
       INSERT INTO big (id, t, j, n) SELECT g, repeat(md5(g::text), 1 + g % 7), jsonb_build_object('k', g, 's', md5((g * 7)::text)), g / 7.0
         FROM generate_series(1, 30000) g;
       -- a child by inheritance: its rows belong to it, not to the segments of its parent
       CREATE TABLE big_child (extra text) INHERITS (big);
       INSERT INTO big_child (id, t, extra) SELECT g, 'child ' || g, 'x' FROM generate_series(1000001, 1000500) g;
       CREATE INDEX big_lower ON big (lower(t));
       CREATE TABLE small (id int PRIMARY KEY, big_id int REFERENCES big (id));
       INSERT INTO small SELECT g, g FROM generate_series(1, 100) g;
       VACUUM ANALYZE;`,
    );
    dir = mkdtempSync(join(tmpdir(), 'cairn-seg-'));
    repo = await Repository.init(new FileSystemStorage(join(dir, 'repo')), { packSize: 2 * 1024 * 1024 });
  }, 120_000);

  afterAll(() => {
    for (const t of targets) dropDatabase(t);
    if (db) dropDatabase(db);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('reads a large table in ranges in parallel and restores it into a new database identically', async () => {
    const m = await runBackup({ repo, source: source(), id: 's1', jobs: 2 });
    const entry = big(m);
    expect(entry.segments?.length).toBeGreaterThanOrEqual(3);
    expect(entry.segments?.reduce((a, b) => a + b, 0)).toBe(entry.chunks.length);
    expect(entry.rowCount).toBe(30000);
    expect(m.collections.find((c) => c.name === 'public.small')?.segments).toBeUndefined();
    expect((await verifyBackups(repo, [m], { readData: true })).problems).toEqual([]);

    const target = `${db}_new`;
    targets.push(target);
    dropDatabase(target);
    const restored = await runRestore({ repo, backupId: 's1', target: new PostgresTarget(parsePostgresUrl(pgUrl(target))), jobs: 2 });
    expect(tableChecksums(target)).toEqual(tableChecksums(db));
    // Segments loaded in parallel: every one's rows counted (big, big_child, small).
    expect(restored.rows).toBe(30000 + 500 + 100);
    // an unsegmented restore (one COPY per table) of the same backup gives the same rows
    const serial = `${db}_serial`;
    targets.push(serial);
    dropDatabase(serial);
    await runRestore({ repo, backupId: 's1', target: new PostgresTarget(parsePostgresUrl(pgUrl(serial))), jobs: 1 });
    expect(tableChecksums(serial)).toEqual(tableChecksums(db));
  }, 120_000);

  it('builds the indexes and keys of loaded tables, and analyzes them, while other tables still load', async () => {
    // Every table counts as large: each one's indexes and primary key are built (post-data.ts)
    // as soon as it is loaded, in the loading workers' slots; the foreign key after the load.
    const target = `${db}_early`;
    targets.push(target);
    dropDatabase(target);
    const t = new PostgresTarget(parsePostgresUrl(pgUrl(target)));
    t.earlyPostDataMinBytes = 0;
    await runRestore({ repo, backupId: 's1', target: t, jobs: 2 });
    expect(tableChecksums(target)).toEqual(tableChecksums(db));
    expect(schemaDump(target)).toEqual(schemaDump(db));
    // Analyzed after its expression index was built: the index's statistics exist.
    expect(psql(target, `SELECT count(*) FROM pg_stats WHERE tablename = 'big_lower'`).trim()).toBe('1');
    expect(psql(target, `SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL`).trim()).toBe('big,big_child,small');
  }, 120_000);

  it('after 2% more rows, every range but the last deduplicates', async () => {
    const first = await repo.readManifest('s1');
    // Rows larger than any gap the first load left in its pages: they go into new blocks at the
    // end (smaller ones could fill free space anywhere, which changes those ranges instead).
    psql(db, `INSERT INTO big (id, t) SELECT g, repeat(md5(g::text), 40) FROM generate_series(30001, 30600) g;`);
    const m = await runBackup({ repo, source: source(), id: 's2', jobs: 2 });
    const [a, b] = [big(first), big(m)];
    const keep = (a.segments ?? []).slice(0, -1).reduce((x, y) => x + y, 0);
    expect(b.chunks.slice(0, keep)).toEqual(a.chunks.slice(0, keep));
    expect(b.rowCount).toBe(30600);
    expect(m.totals.newBytes).toBeLessThan(0.25 * m.totals.storedBytes);
  }, 120_000);

  it('overwrites an existing table from a segmented backup, loading the ranges in parallel', async () => {
    const target = `${db}_existing`;
    targets.push(target);
    dropDatabase(target);
    psql('postgres', `CREATE DATABASE ${target}`);
    psql(target, `CREATE TABLE big (id int PRIMARY KEY, t text NOT NULL, j jsonb, n numeric, g int GENERATED ALWAYS AS (id * 2) STORED);
      INSERT INTO big (id, t) VALUES (1, 'old');
      CREATE TABLE other (x int); INSERT INTO other VALUES (42);`);
    await runRestore({
      repo,
      backupId: 's2',
      target: new PostgresTarget(parsePostgresUrl(pgUrl(target))),
      selection: { include: ['big'] },
      onConflict: 'overwrite',
      jobs: 2,
    });
    expect(psql(target, 'SELECT count(*), sum(g) FROM ONLY big')).toBe(psql(db, 'SELECT count(*), sum(g) FROM ONLY big'));
    expect(psql(target, `SELECT md5(string_agg(t || j::text || n::text, ',' ORDER BY id)) FROM ONLY big WHERE j IS NOT NULL`)).toBe(
      psql(db, `SELECT md5(string_agg(t || j::text || n::text, ',' ORDER BY id)) FROM ONLY big WHERE j IS NOT NULL`),
    );
    expect(psql(target, 'SELECT x FROM other').trim()).toBe('42');
  }, 120_000);
});
