/**
 * The Backups screen's "Sort by" select (web/src/backup-sort.ts), the only sort control at phone
 * width: it offers every sort key in both orders, so whatever a column header or a shared link
 * sorts by is one of its options (a controlled select whose value is no option shows nothing).
 */
import { describe, expect, it } from 'vitest';
import { SORT_CHOICES, SORTABLE, sortOf } from '../../web/src/backup-sort.js';

describe('backups sort choices', () => {
  it('offer every sort key × both orders, each once, each with its own label', () => {
    const values = SORT_CHOICES.map(([v]) => v);
    const expected = Object.keys(SORTABLE).flatMap((k) => [`${k}:asc`, `${k}:desc`]);
    expect([...values].sort()).toEqual([...expected].sort());
    expect(new Set(SORT_CHOICES.map(([, label]) => label)).size).toBe(SORT_CHOICES.length);
  });

  it('a hash sort is always one of the choices (unknown keys and orders fall back to newest first)', () => {
    const values = new Set(SORT_CHOICES.map(([v]) => v));
    const cases: [string | undefined, string | undefined][] = [[undefined, undefined], ['id', 'desc'], ['expiresAt', 'desc'], ['createdAt', 'asc'], ['storedBytes', 'asc'], ['bogus', 'asc'], ['toString', 'up'], ['logicalBytes', 'sideways']];
    for (const [sort, order] of cases) {
      const s = sortOf(sort, order);
      expect(values.has(`${s.sort}:${s.order}`)).toBe(true);
    }
    expect(sortOf('bogus', 'up')).toEqual({ sort: 'createdAt', order: 'desc' });
    expect(sortOf('id', 'asc')).toEqual({ sort: 'id', order: 'asc' });
  });
});
