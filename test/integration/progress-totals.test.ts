/**
 * Progress totals against real databases. A PostgreSQL backup's byte total is first the stored
 * size (pg_table_size: pages, tuple headers, dead rows), far from the logical bytes a backup
 * counts, then the logical bytes so far scaled to the estimated rows, so it ends close to what
 * the backup read. A restore knows exact totals from the manifest: rows and bytes of their
 * totals, a share and a time left, and collections counted as its summary counts them (not
 * PostgreSQL's "(schema)" archive, not SQLite's database properties).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { progressLine } from '../../src/cli/progress-bar.js';
import type { BackupManifest } from '../../src/core/schemas.js';
import { runBackup } from '../../src/jobs/backup.js';
import { progressRates, type Progress } from '../../src/jobs/progress.js';
import { runRestore } from '../../src/jobs/restore.js';
import { Repository } from '../../src/repo/repository.js';
import { openSource, openTarget } from '../../src/sources/index.js';
import Database from '../../src/sources/sqlite/driver.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { createDatabase, dropDatabase, pgUrl, psql } from '../helpers/postgres.js';

const ROWS = 200_000;
let dir: string;
let db: string;
let restored: string | undefined;
let repo: Repository;
let pgBackup: { manifest: BackupManifest; events: Progress[] };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cairn-g3prog-'));
  db = createDatabase('g3prog');
  // Every row the same width (7-digit ids), so the logical bytes per row are the same all along;
  // updated once, so half the stored pages hold dead rows.
  psql(db, `CREATE TABLE big (id int PRIMARY KEY, v text); INSERT INTO big SELECT g, repeat('x', 80) FROM generate_series(1000001, ${1000000 + ROWS}) g;
            UPDATE big SET v = repeat('y', 80); CREATE VIEW big_ids AS SELECT id FROM big; ANALYZE;`);
  repo = await Repository.init(new FileSystemStorage(join(dir, 'repo')));
  const events: Progress[] = [];
  const manifest = await runBackup({ repo, source: openSource(pgUrl(db)), jobs: 1, progressEveryMs: 0, onProgress: (p) => events.push(p) });
  pgBackup = { manifest, events };
}, 120_000);
afterAll(() => {
  dropDatabase(db);
  if (restored) dropDatabase(restored);
  rmSync(dir, { recursive: true, force: true });
});

/** Percent defined, within 0–100, never back; returns the transferring reports. */
function checkShare(events: Progress[]): Progress[] {
  let last = 0;
  for (const e of events) {
    expect(e.percent).toBeDefined();
    expect(e.percent as number).toBeGreaterThanOrEqual(last);
    expect(e.percent as number).toBeLessThanOrEqual(100);
    last = e.percent as number;
  }
  expect(events.at(-1)?.percent).toBe(100);
  return events.filter((e) => e.phase === 'transferring');
}

describe('PostgreSQL backup: the byte total', () => {
  it('starts at the stored size, then follows the logical bytes: within 10 % of what was read once a tenth of the rows is', () => {
    const { manifest, events } = pgBackup;
    const read = manifest.totals.logicalBytes;
    const moving = checkShare(events);
    // The stored size (dead rows, tuple headers) is far above the logical bytes: the measure differs.
    expect(moving[0]?.bytesTotal).toBeGreaterThan(read * 1.5);
    const later = moving.filter((e) => e.rows >= ROWS / 10);
    expect(later.length).toBeGreaterThan(2);
    for (const e of later) expect(Math.abs((e.bytesTotal as number) - read) / read).toBeLessThan(0.1);
    expect(events.at(-1)?.bytesTotal).toBe(read);
  });
});

describe('restore progress: exact totals, collections as the summary counts them', () => {
  it('PostgreSQL: rows and bytes of their totals, share and ETA; 1 table + 1 view, not the (schema)', async () => {
    const { manifest } = pgBackup;
    expect(manifest.collections.map((c) => c.name).sort()).toEqual(['(schema)', 'public.big', 'public.big_ids']);
    restored = `${db}_r`;
    const events: Progress[] = [];
    const started = Date.now();
    const etas: (number | undefined)[] = [];
    const summary = await runRestore({
      repo,
      backupId: manifest.id,
      target: openTarget(pgUrl(restored)),
      onProgress: (p) => {
        events.push(p);
        etas.push(progressRates(p, (Date.now() - started) / 1000).etaSeconds);
      },
    });
    expect(summary.collections).toBe(2);
    const moving = checkShare(events);
    expect(moving.length).toBeGreaterThan(2);
    for (const e of moving) {
      expect(e.rowsTotal).toBe(ROWS);
      expect(e.bytesTotal).toBe(manifest.totals.logicalBytes);
      expect(e.estimated).toBeUndefined();
      expect(e.collectionsTotal).toBe(summary.collections);
      expect(e.collectionsDone).toBeLessThanOrEqual(summary.collections);
    }
    // The view (no data) is done from the start; the table once all its bytes are in.
    expect(moving[0]?.collectionsDone).toBe(1);
    expect(moving.at(-1)?.collectionsDone).toBe(2);
    expect(moving.some((e) => (e.percent as number) > 0 && (e.percent as number) < 100)).toBe(true);
    expect(etas.slice(0, moving.length).some((eta) => eta !== undefined)).toBe(true);
    const last = events.at(-1) as Progress;
    expect(last).toMatchObject({ phase: 'done', collectionsDone: 2, collectionsTotal: 2, rows: ROWS, rowsTotal: ROWS, percent: 100 });
    // As the terminal shows it: rows of the total, a share, no "~".
    expect(progressLine(moving[1] as Progress, 2)).toMatch(/^\[[#.]{20}\] \d+% .* of [\d.]+ MiB, [\d,]+ of 200,000 rows, \d\/2 collections, .*ETA \d+:\d\d public\.big$/);
  }, 120_000);

  it('SQLite: the database properties entry is not a collection either', async () => {
    const file = join(dir, 'app.db');
    const s = new Database(file);
    s.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE u (id INTEGER PRIMARY KEY); CREATE VIEW tv AS SELECT v FROM t; WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 20000) INSERT INTO t SELECT n, 'row ' || n FROM g; INSERT INTO u VALUES (1), (2);");
    s.close();
    const manifest = await runBackup({ repo, source: openSource(`sqlite://${file}`) });
    const events: Progress[] = [];
    const summary = await runRestore({ repo, backupId: manifest.id, target: openTarget(`sqlite://${join(dir, 'restored.db')}`), onProgress: (p) => events.push(p) });
    const moving = checkShare(events);
    expect(moving.length).toBeGreaterThan(0);
    for (const e of events) {
      expect(e.collectionsTotal).toBe(summary.collections);
      expect(e.rowsTotal).toBe(20_002);
      expect(e.bytesTotal).toBe(manifest.totals.logicalBytes);
    }
    expect(events.at(-1)).toMatchObject({ phase: 'done', collectionsDone: summary.collections, rows: 20_002 });
    // Something in the manifest is not counted: SQLite's database-wide entry, if it has one.
    expect(summary.collections).toBe(manifest.collections.filter((c) => c.selectable !== false).length);
  }, 60_000);
});
