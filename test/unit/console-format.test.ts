/**
 * The console's pure helpers: sizes, durations, ages, UTC titles (web/src/format.ts) and the hash
 * routes (web/src/router.ts: parse and build round-trip, ids with any character).
 */
import { describe, expect, it } from 'vitest';
import { age, bytes, count, duration, relative, utcTime } from '../../web/src/format.js';
import { href, parseHash } from '../../web/src/hash.js';

describe('console formatting', () => {
  it('sizes in binary units, one decimal below 10', () => {
    expect(bytes(0)).toBe('0 B');
    expect(bytes(1023)).toBe('1023 B');
    expect(bytes(1536)).toBe('1.5 KiB');
    expect(bytes(420 * 1024)).toBe('420 KiB');
    expect(bytes(5 * 1024 ** 3)).toBe('5.0 GiB');
    expect(bytes(null)).toBe('—');
    expect(count(1234567)).toBe('1,234,567');
  });

  it('durations and ages', () => {
    expect(duration(850)).toBe('850 ms');
    expect(duration(12_340)).toBe('12 s');
    expect(duration(3_400)).toBe('3.4 s');
    expect(duration(245_000)).toBe('4 min 5 s');
    expect(duration(2 * 3600_000 + 3 * 60_000)).toBe('2 h 3 min');
    expect(duration(undefined)).toBe('—');
    expect(age(45)).toBe('45 s');
    expect(age(3 * 3600)).toBe('3 h');
    expect(age(5 * 86400)).toBe('5 d');
    const now = Date.parse('2026-12-01T12:00:00Z');
    expect(relative('2026-12-01T09:00:00Z', now)).toBe('3 h ago');
    expect(relative('2026-12-01T12:20:00Z', now)).toBe('in 20 min');
  });

  it('UTC titles whatever the zone', () => {
    expect(utcTime('2026-12-01T13:45:07.123Z')).toBe('2026-12-01 13:45:07 UTC');
    expect(utcTime('not a time')).toBe('not a time');
  });
});

describe('console routes', () => {
  it('parses screens, ids and queries; the overview by default', () => {
    expect(parseHash('')).toMatchObject({ screen: 'overview' });
    expect(parseHash('#/jobs')).toMatchObject({ screen: 'jobs' });
    const r = parseHash('#/backups/app-20261201-031500?repository=offsite');
    expect(r.screen).toBe('backups');
    expect(r.id).toBe('app-20261201-031500');
    expect(r.query.get('repository')).toBe('offsite');
  });

  it('builds what it parses, leaving empty values out', () => {
    const h = href(`backups/${encodeURIComponent('a b/ç')}`, { repository: 'x y', source: undefined, offset: 0, limit: 50, status: '' });
    const r = parseHash(h);
    expect(r.id).toBe('a b/ç');
    expect(Object.fromEntries(r.query)).toEqual({ repository: 'x y', offset: '0', limit: '50' });
  });
});

describe('console counts with nouns', () => {
  it('singular for one, plural otherwise', async () => {
    const { counted } = await import('../../web/src/format.js');
    expect(counted(1, 'backup')).toBe('1 backup');
    expect(counted(0, 'backup')).toBe('0 backups');
    expect(counted(1234, 'row')).toBe('1,234 rows');
    expect(counted(2, 'match', 'matches')).toBe('2 matches');
  });
});
