/**
 * Which post-data entries a restore into a new database builds as soon as their table is loaded
 * (post-data.ts), and when a batch starts: pure planning, no database.
 */
import { describe, expect, it } from 'vitest';
import type { PlannedCollection } from '../../src/sources/postgres/plan.js';
import { EarlyPostData, earlyPostData } from '../../src/sources/postgres/post-data.js';
import { parseToc, type TocEntry } from '../../src/sources/postgres/toc.js';

const toc = parseToc(
  [
    '10; 1259 100 TABLE public big postgres',
    '11; 1259 200 TABLE public part postgres',
    '12; 1259 300 TABLE public small postgres',
    '20; 1259 101 INDEX public big_lower postgres',
    '21; 2606 102 CONSTRAINT public big big_pkey postgres',
    '22; 1259 103 INDEX public big_clustered postgres',
    '23; 2606 201 CONSTRAINT public part part_pkey postgres',
    '24; 2606 301 CONSTRAINT public small small_pkey postgres',
    '25; 2606 302 FK CONSTRAINT public small small_big_id_fkey postgres',
    '26; 2620 104 TRIGGER public big big_audit postgres',
  ].join('\n'),
);
const entry = (tag: string): TocEntry => toc.find((e) => e.tag === tag) as TocEntry;
const table = (name: string, dependentOids: number[], extra: Partial<PlannedCollection> = {}, bytes = 100): PlannedCollection =>
  ({ source: { schema: 'public', name }, target: { schema: 'public', name }, relkind: 'r', table: {}, dependentOids, item: { entry: { logicalBytes: bytes } }, ...extra }) as unknown as PlannedCollection;

describe('early post-data (indexes and keys built while other tables load)', () => {
  const big = table('big', [101, 102, 103, 104], {}, 64);
  const part = table('part', [201], { table: { partitionOf: 'public.parent' } } as Partial<PlannedCollection>);
  const small = table('small', [301, 302], {}, 16);
  const postData = new Set(toc.filter((e) => e.dumpId >= 20));

  it('takes only the indexes and key constraints of plain tables, never foreign keys, triggers or partitions', () => {
    const plan = earlyPostData({ collections: [big, part, small] }, toc, postData, new Set(), () => false);
    expect(plan.get(big)?.entries.map((e) => e.tag)).toEqual(['big_lower', 'big big_pkey', 'big_clustered']);
    expect(plan.get(big)?.analyze).toBe(true);
    expect(plan.get(small)?.entries.map((e) => e.tag)).toEqual(['small small_pkey']);
    expect(plan.has(part)).toBe(false);
    // Loaded through its partition root: its table is not the one the rows go into.
    expect(earlyPostData({ collections: [small] }, toc, postData, new Set(), (t) => t === small).has(small)).toBe(false);
  });

  it('leaves an index that alters its table to the end, and then the table is analyzed at the end too', () => {
    const plan = earlyPostData({ collections: [big] }, toc, postData, new Set([entry('big_clustered')]), () => false);
    expect(plan.get(big)?.entries.map((e) => e.tag)).toEqual(['big_lower', 'big big_pkey']);
    expect(plan.get(big)?.analyze).toBe(false);
  });

  it('ignores an OID that names a constraint of another table', () => {
    const wrong = table('small', [102]);
    expect(earlyPostData({ collections: [wrong] }, toc, postData, new Set(), () => false).has(wrong)).toBe(false);
  });

  it('queues a table\'s entries one by one only once the loaded tables waiting are large enough', () => {
    const plan = earlyPostData({ collections: [big, small] }, toc, postData, new Set(), () => false);
    const early = new EarlyPostData(plan, '/nonexistent', async () => undefined, 50);
    early.loaded(small);
    expect(early.take()).toBeUndefined(); // 16 bytes < 50
    early.loaded(big);
    // small's key and big's three entries, each its own piece of work (they may build at once)
    for (let k = 0; k < 4; k++) expect(early.take()).toBeTypeOf('function');
    expect(early.take()).toBeUndefined();
  });
});
