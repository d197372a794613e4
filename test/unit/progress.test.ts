/**
 * Issue 16: throughput and time left of a progress report (progressRates, shared by the job
 * records and the CLI), and the terminal's progress line built from them.
 */
import { describe, expect, it } from 'vitest';
import { progressRates, type Progress } from '../../src/jobs/progress.js';
import { formatClock, progressLine } from '../../src/cli/progress-bar.js';

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
