/**
 * The console's job panels (web/src/job-counters.ts): a counter shows only for job kinds whose
 * server-side progress fills it (rows only for backup and restore: a copy or an export panel said
 * "ROWS 0"), and a canceled job's error reads once (not "CANCELED, CANCELLED").
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { countersOf, errorCodeShown, JOB_COUNTERS } from '../../web/src/job-counters.js';

describe('job panel counters', () => {
  it('rows only where the server counts rows; copies and exports count packs', () => {
    expect(Object.entries(JOB_COUNTERS).filter(([, c]) => c.rows).map(([k]) => k).sort()).toEqual(['backup', 'drill', 'restore']); // a drill's progress is its restore's
    expect(countersOf('copy')).toEqual({ bytes: true, rows: false, items: 'Packs' });
    expect(countersOf('export')).toEqual({ bytes: true, rows: false, items: 'Packs' });
    expect(countersOf('prune').items).toBeNull();
    expect(countersOf('some-future-kind').rows).toBe(true);
  });

  it('agrees with the server: a kind reported with `rows: 0` never shows rows', () => {
    // Every progress report the routes make for non-row kinds says rows: 0 literally.
    const root = join(import.meta.dirname, '../../src/server/routes');
    const text = ['operations.ts', 'exports.ts'].map((f) => readFileSync(join(root, f), 'utf8')).join('\n');
    const kinds = [...text.matchAll(/kind: '([a-z]+)'[\s\S]*?(?=kind: '|$)/g)].filter((m) => /rows: 0\b/.test(m[0])).map((m) => m[1] as string);
    expect(kinds.length).toBeGreaterThan(0);
    for (const k of kinds) expect(countersOf(k).rows, k).toBe(false);
  });

  it('a canceled job shows its message without repeating CANCELLED; other errors keep their code', () => {
    expect(errorCodeShown({ state: 'CANCELED', error: { code: 'CANCELLED' } })).toBeUndefined();
    expect(errorCodeShown({ state: 'FAILED', error: { code: 'SOURCE' } })).toBe('SOURCE');
    expect(errorCodeShown({ state: 'CANCELED', error: { code: 'INTERNAL' } })).toBe('INTERNAL');
    expect(errorCodeShown({ state: 'SUCCESS', error: null })).toBeUndefined();
  });
});
