/**
 * Issue 16: throughput and time left of a progress report (progressRates, shared by the job
 * records and the CLI), and the terminal's progress line built from them.
 */
import { describe, expect, it } from 'vitest';
import { EstimatedShare, progressRates, type Progress } from '../../src/jobs/progress.js';
import { fitProgressLine, formatClock, progressLine, ProgressBar } from '../../src/cli/progress-bar.js';

describe('progressRates', () => {
  it('bytes/s and rows/s over the time so far; ETA from the share done', () => {
    const r = progressRates({ bytes: 40_000_000, rows: 200_000, percent: 40 }, 10);
    expect(r.throughput).toBe(4_000_000);
    expect(r.rowsPerSecond).toBe(20_000);
    expect(r.etaSeconds).toBeCloseTo(15); // 10 s for 40 %: 15 s for the other 60 %
  });

  it('without a share: bytes left at the rate so far', () => {
    expect(progressRates({ bytes: 1000, rows: 0, bytesTotal: 4000 }, 2).etaSeconds).toBeCloseTo(6);
    // more read than the total said: nothing left, never negative
    expect(progressRates({ bytes: 5000, rows: 0, bytesTotal: 4000 }, 2).etaSeconds).toBe(0);
  });

  it('no ETA before 1 % is done, without totals or before anything moved; finite at time 0', () => {
    expect(progressRates({ bytes: 10, rows: 1, percent: 0.5 }, 3).etaSeconds).toBeUndefined();
    expect(progressRates({ bytes: 10, rows: 1 }, 3).etaSeconds).toBeUndefined();
    expect(progressRates({ bytes: 0, rows: 0, bytesTotal: 100 }, 3).etaSeconds).toBeUndefined();
    const zero = progressRates({ bytes: 100, rows: 10, percent: 50 }, 0);
    expect(Number.isFinite(zero.throughput) && Number.isFinite(zero.rowsPerSecond)).toBe(true);
    expect(progressRates({ bytes: 100, rows: 10, percent: 100 }, 5).etaSeconds).toBe(0);
  });
});

describe('progressLine', () => {
  const base: Progress = { phase: 'transferring', collection: 'public.big', collectionsDone: 1, collectionsTotal: 3, rows: 310_000, bytes: 1.2 * 2 ** 30 };

  it('an estimated backup: share, bytes and rows of ~totals, rates, ETA as a clock', () => {
    const line = progressLine({ ...base, bytesTotal: 2.9 * 2 ** 30, rowsTotal: 740_000, percent: 42, estimated: true }, 25);
    expect(line).toBe(
      '[########............] ~42% 1.20 GiB of ~2.90 GiB, 310,000 of ~740,000 rows, 1/3 collections, 49.2 MiB/s, 12,400 rows/s, ETA 0:35 public.big',
    );
  });

  it('exact totals (a restore) without "~"; no ETA once finalizing; no share without totals', () => {
    const exact = progressLine({ ...base, bytesTotal: 2.4 * 2 ** 30, percent: 50 }, 10);
    expect(exact).toMatch(/^\[##########\.{10}\] 50% 1\.20 GiB of 2\.40 GiB, 310,000 rows, .* ETA 0:10 public\.big$/);
    expect(exact).not.toContain('~');
    expect(progressLine({ ...base, phase: 'finalizing', percent: 99, estimated: true }, 10)).toMatch(/ 310,000 rows, 1\/3 collections, [^E]*finalizing$/);
    expect(progressLine({ ...base, rows: 0, bytes: 0 }, 1)).toBe('0 B, 0 rows, 1/3 collections, 0 B/s public.big');
  });

  it('a share above 100 is shown as 100 with a full bar', () => {
    expect(progressLine({ ...base, percent: 130 }, 1)).toMatch(/^\[#{20}\] 100% /);
  });

  it('formatClock', () => {
    expect([0, 35, 61, 725, 7389.4].map(formatClock)).toEqual(['0:00', '0:35', '1:01', '12:05', '2:03:09']);
  });
});

describe('progress line at a terminal width', () => {
  // A long backup of many tables: in full, about 200 characters.
  const big: Progress = {
    phase: 'transferring',
    collection: 'public.order_line_items_archive_2024',
    collectionsDone: 12,
    collectionsTotal: 148,
    rows: 12_310_000,
    bytes: 1.2 * 2 ** 30,
    bytesTotal: 2.9 * 2 ** 30,
    rowsTotal: 29_740_000,
    percent: 42,
    estimated: true,
  };
  const full = `backup ${progressLine(big, 725)}`;

  it.each([40, 60, 80, 132, 200])('%i columns: shorter than the width; share, throughput and ETA always (here from 40), name cut with … or left out', (width) => {
    const line = fitProgressLine('backup', big, 725, width);
    expect(line.length).toBeLessThan(width); // the last column stays free
    expect(line).toMatch(/^backup (\[[#.]{20}\] )?~42% /);
    expect(line.includes('ETA 16:41')).toBe(width >= 40);
    expect(line.includes('1.69 MiB/s')).toBe(width >= 40);
    if (width >= 60) expect(line).toMatch(/1\.20 GiB.*1\.69 MiB\/s, (.* )?ETA 16:41/);
    // What is shown is a subsequence of the full line's parts, never something else.
    const name = /(public\.\S*)$/.exec(line)?.[1];
    if (name !== undefined && name !== big.collection) expect(name.endsWith('…') && big.collection?.startsWith(name.slice(0, -1))).toBe(true);
    if (width >= full.length + 1) expect(line).toBe(full);
  });

  it('drops parts in a fixed order: rows/s, counter, bar, name, totals, rows, bytes, throughput, ETA', () => {
    const at = (w: number): string => fitProgressLine('backup', big, 725, w);
    // Each width keeps everything a wider one drops later in the order.
    expect(at(full.length + 1)).toContain('rows/s');
    expect(at(full.length)).not.toContain('rows/s');
    expect(at(full.length)).toContain('12/148 collections');
    expect(at(150)).not.toContain('collections');
    expect(at(150)).toContain('[########............]');
    expect(at(132)).not.toContain('[');
    expect(at(132)).toContain('public.order_line_items_archive_2024');
    expect(at(100)).toMatch(/ public\.or…$/);
    expect(at(80)).toBe('backup ~42% 1.20 GiB of ~2.90 GiB, 12,310,000 rows, 1.69 MiB/s, ETA 16:41');
    expect(at(70)).toBe('backup ~42% 1.20 GiB, 12,310,000 rows, 1.69 MiB/s, ETA 16:41');
    expect(at(60)).toBe('backup ~42% 1.20 GiB, 1.69 MiB/s, ETA 16:41');
    expect(at(40)).toBe('backup ~42% 1.69 MiB/s, ETA 16:41');
    expect(at(30)).toBe('backup ~42% ETA 16:41');
    expect(at(16)).toBe('backup ~42%');
    expect(at(8).length).toBeLessThan(8);
  });

  it('ProgressBar writes within the stream\'s columns, 80 when it does not say', () => {
    const written: string[] = [];
    const stream = (columns: number | undefined): NodeJS.WriteStream =>
      ({ columns, write: (s: string) => written.push(s) }) as unknown as NodeJS.WriteStream;
    for (const columns of [60, undefined]) {
      written.length = 0;
      const bar = new ProgressBar('backup', stream(columns), true);
      bar.update({ ...big, phase: 'finalizing' });
      // "\r", the line, then "clear to the end of the line".
      // eslint-disable-next-line no-control-regex -- the escape that clears the rest of the line
      const drawn = /^\r(.*)\x1b\[K$/.exec(written[0] ?? '')?.[1] ?? '';
      expect(drawn.length).toBeGreaterThan(10);
      expect(drawn.length).toBeLessThan(columns ?? 80);
      expect(drawn).toMatch(/^backup ~42% .*finalizing$/);
    }
  });
});

describe('EstimatedShare: the byte total in the unit `bytes` counts', () => {
  // A PostgreSQL table stored in 146 MiB (pages, tuple headers, dead rows) whose rows are 91 MiB
  // as the backup reads them.
  const MiB = 2 ** 20;
  const at = (share: EstimatedShare, rows: number, bytes: number, done = false) => share.fields({ rows, bytes, collectionsDone: 0, collectionsTotal: 1 }, done);

  it('the stored size until 1 % of the rows is read, then the logical bytes so far scaled to all rows', () => {
    const share = new EstimatedShare({ bytes: 146 * MiB, rows: 1_000_000 });
    expect(at(share, 0, 40_000).bytesTotal).toBe(146 * MiB); // a schema dump, no rows yet
    expect(at(share, 9_999, 0.91 * MiB).bytesTotal).toBe(146 * MiB);
    expect(at(share, 10_000, 0.91 * MiB).bytesTotal).toBe(Math.round(91 * MiB));
    expect(at(share, 500_000, 45.5 * MiB)).toEqual({ bytesTotal: 91 * MiB, rowsTotal: 1_000_000, percent: 50, estimated: true });
    expect(at(share, 1_000_000, 91 * MiB, true)).toEqual({ bytesTotal: 91 * MiB, rowsTotal: 1_000_000, percent: 100, estimated: false });
  });

  it('never below what was read; the share still never goes back nor above 99 before the end', () => {
    const share = new EstimatedShare({ bytes: 10 * MiB, rows: 100 });
    const seen = [at(share, 50, 5 * MiB), at(share, 150, 30 * MiB), at(share, 120, 30 * MiB)];
    expect(seen.map((f) => f.percent)).toEqual([50, 99, 99]);
    for (const f of seen.slice(1)) expect(f.bytesTotal).toBe(30 * MiB);
    // Without a row estimate (SQLite): the stored size, raised to what was read.
    const sqlite = new EstimatedShare({ bytes: 4 * MiB });
    expect(at(sqlite, 10, 1 * MiB).bytesTotal).toBe(4 * MiB);
    expect(at(sqlite, 10, 5 * MiB).bytesTotal).toBe(5 * MiB);
  });
});
