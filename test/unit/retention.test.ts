import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/core/errors.js';
import { addDuration, parseDuration } from '../../src/core/durations.js';
import { applyRetention } from '../../src/jobs/retention.js';

/** One backup a day at 03:00 UTC from `first` for `days` days, ids = the date. */
function daily(first: string, days: number): { id: string; createdAt: string }[] {
  const start = Date.parse(`${first}T03:00:00Z`);
  return Array.from({ length: days }, (_, i) => {
    const at = new Date(start + i * 86400e3).toISOString();
    return { id: at.slice(0, 10), createdAt: at };
  });
}

describe('durations', () => {
  it('reads 30m, 12h, 3d, 4w, 6mo, 1y and refuses anything else, naming the forms', () => {
    expect(['30m', '12h', '3d', '4w', '6mo', '1y', ' 90s '].map((v) => parseDuration(v).text)).toEqual(['30m', '12h', '3d', '4w', '6mo', '1y', '90s']);
    for (const bad of ['', '3', 'd', '0d', '-1d', '3 days', '1.5h', 'never']) expect(() => parseDuration(bad)).toThrow(UsageError);
    expect(() => parseDuration('3x', '--expires')).toThrow(/--expires "3x".*30m, 12h, 3d, 4w, 6mo or 1y/);
  });

  it('counts months and years on the calendar, clamping to the end of shorter months', () => {
    const at = (s: string): Date => new Date(s);
    expect(addDuration(at('2024-08-31T03:00:00Z'), parseDuration('6mo')).toISOString()).toBe('2025-02-28T03:00:00.000Z');
    expect(addDuration(at('2023-08-31T03:00:00Z'), parseDuration('6mo')).toISOString()).toBe('2024-02-29T03:00:00.000Z');
    expect(addDuration(at('2024-02-29T00:00:00Z'), parseDuration('1y')).toISOString()).toBe('2025-02-28T00:00:00.000Z');
    expect(addDuration(at('2024-03-31T00:00:00Z'), parseDuration('1mo'), -1).toISOString()).toBe('2024-02-29T00:00:00.000Z');
    expect(addDuration(at('2024-01-01T00:00:00Z'), parseDuration('4w')).toISOString()).toBe('2024-01-29T00:00:00.000Z');
  });
});

describe('retention', () => {
  it('--keep-within 3d over 10 daily backups keeps exactly the last 3 days; --keep-last 5 keeps 5', () => {
    const backups = daily('2024-05-01', 10); // May 1 … May 10
    const now = new Date('2024-05-10T03:01:00Z');
    const within = applyRetention(backups, { keepWithin: parseDuration('3d') }, now);
    expect([...within.keep.keys()]).toEqual(['2024-05-10', '2024-05-09', '2024-05-08']);
    expect(within.remove).toHaveLength(7);
    const last = applyRetention(backups, { keepLast: 5 }, now);
    expect([...last.keep.keys()]).toEqual(['2024-05-10', '2024-05-09', '2024-05-08', '2024-05-07', '2024-05-06']);
    expect(applyRetention(backups, {}, now).remove).toEqual([]); // no rules: nothing is removed
  });

  it('a year of daily backups under 7 daily, 4 weekly, 12 monthly keeps the hand-checked set (month ends, leap day)', () => {
    const backups = daily('2024-01-01', 366); // 2024 is a leap year: Jan 1 … Dec 31
    const d = applyRetention(backups, { keepDaily: 7, keepWeekly: 4, keepMonthly: 12 }, new Date('2024-12-31T04:00:00Z'));
    // daily: Dec 25–31. weekly (ISO weeks, newest of each): 2025-W01 → Dec 31, W52 → Dec 29,
    // W51 → Dec 22, W50 → Dec 15. monthly (newest of each month): the last day of every month,
    // Feb 29 included.
    const expected = [
      '2024-12-31', '2024-12-30', '2024-12-29', '2024-12-28', '2024-12-27', '2024-12-26', '2024-12-25',
      '2024-12-22', '2024-12-15',
      '2024-11-30', '2024-10-31', '2024-09-30', '2024-08-31', '2024-07-31', '2024-06-30',
      '2024-05-31', '2024-04-30', '2024-03-31', '2024-02-29', '2024-01-31',
    ];
    expect([...d.keep.keys()].sort().reverse()).toEqual(expected);
    expect(d.remove).toHaveLength(366 - expected.length);
    expect(d.keep.get('2024-12-29')).toEqual(['daily', 'weekly']);
    expect(d.keep.get('2024-02-29')).toEqual(['monthly']);
  });

  it('counts calendar buckets in the schedule\'s time zone', () => {
    // 16:00 UTC on Feb 29 is already March 1 in Tokyo: two backups, two Tokyo months
    const backups = [
      { id: 'a', createdAt: '2024-02-29T14:00:00Z' },
      { id: 'b', createdAt: '2024-02-29T16:00:00Z' },
    ];
    const now = new Date('2024-03-01T00:00:00Z');
    expect([...applyRetention(backups, { keepMonthly: 12 }, now, 'UTC').keep.keys()]).toEqual(['b']);
    expect([...applyRetention(backups, { keepMonthly: 12 }, now, 'Asia/Tokyo').keep.keys()].sort()).toEqual(['a', 'b']);
  });
});
