/**
 * The pure parts of PostgreSQL routine selection (routines.ts, toc.ts): which names a body
 * calls, the call closure, grouping overloads into collections, matching a comment's or grant's
 * tag to its routine, and the TOC filter leaving out the routines a restore does not create
 * (with their comments and grants) while keeping those it does and every other entry.
 */
import { describe, expect, it } from 'vitest';
import { callClosure, calledNames, routineGroups, type CatalogRoutine } from '../../src/sources/postgres/routines.js';
import { describesRoutine, filterToc, parseToc, type TocSelection } from '../../src/sources/postgres/toc.js';

describe('calledNames', () => {
  it('names followed by "(" count, in any case, quoted or qualified; table references do not', () => {
    const body = `BEGIN
      PERFORM Audit_Log(NEW.id);
      x := public.helper (1) + "Mixed Case"(2);
      INSERT INTO orders (id, total) VALUES (1, 2);
      INSERT INTO public.items (id) VALUES (1);
      UPDATE orders SET total = 0;
      RETURN QUERY SELECT * FROM set_fn(1) JOIN other_fn(2) ON on_fn(1, 2);
      EXECUTE 'SELECT dyn_fn(1)';
      RETURN NEW;
    END`;
    expect([...calledNames(body)].sort()).toEqual(['Mixed Case', 'audit_log', 'dyn_fn', 'helper', 'on_fn', 'other_fn', 'set_fn', 'values'].sort());
  });
});

describe('callClosure', () => {
  it('follows calls transitively, through cycles, and includes the start', () => {
    const calls = new Map([
      [1, new Set([2])],
      [2, new Set([3, 1])],
      [4, new Set([5])],
    ]);
    expect([...callClosure([1], calls)].sort()).toEqual([1, 2, 3]);
    expect([...callClosure([], calls)]).toEqual([]);
  });
});

describe('routineGroups', () => {
  const r = (oid: number, name: string, prokind: 'f' | 'p' | 'w' = 'f', schema = 'public'): CatalogRoutine => ({ oid, schema, name, prokind, signature: `${schema}.${name}()` });
  it('one collection per name with its overloads; procedure only when every overload is one; name() beside a relation of the name', () => {
    const groups = routineGroups([r(1, 'add'), r(2, 'add'), r(3, 'bump', 'p'), r(4, 'mixed', 'p'), r(5, 'mixed'), r(6, 'orders'), r(7, 'add', 'f', 'a.b')], new Set(['public.orders']));
    expect(groups.map((g) => [g.name, g.kind, g.overloads.map((o) => o.oid)])).toEqual([
      ['public.add', 'function', [1, 2]],
      ['public.bump', 'procedure', [3]],
      ['public.mixed', 'function', [4, 5]],
      ['public.orders()', 'function', [6]],
      ['"a.b".add', 'function', [7]],
    ]);
  });
});

describe('describesRoutine', () => {
  it('matches identity arguments (names, modes) to the entry tag\'s types', () => {
    expect(describesRoutine('customer_total(integer)', 'customer_total(c integer)')).toBe(true);
    expect(describesRoutine('f(integer, public.mood)', 'f(VARIADIC a integer, m public.mood)')).toBe(true);
    expect(describesRoutine('f(character varying)', 'f(x character varying)')).toBe(true);
    expect(describesRoutine('Fn(text)', '"Fn"(t text)')).toBe(true);
    expect(describesRoutine('f()', 'f()')).toBe(true);
    expect(describesRoutine('p_out(integer)', 'p_out(IN a integer, OUT b integer)')).toBe(true);
    expect(describesRoutine('p_io(integer)', 'p_io(INOUT a integer)')).toBe(true);
    expect(describesRoutine('f(integer)', 'f(a text)')).toBe(false);
    expect(describesRoutine('f(integer)', 'g(a integer)')).toBe(false);
    expect(describesRoutine('f(integer)', 'f(a integer, b integer)')).toBe(false);
  });
});

describe('filterToc and routines', () => {
  const toc = parseToc(
    [
      '10; 2615 2200 SCHEMA - public pg_database_owner',
      '20; 1255 100 FUNCTION public add(integer, integer) postgres',
      '21; 0 0 COMMENT public FUNCTION add(a integer, b integer) postgres',
      '22; 0 0 ACL public FUNCTION add(a integer, b integer) postgres',
      '23; 1255 101 FUNCTION public add(text, text) postgres',
      '24; 1255 102 PROCEDURE public bump(integer) postgres',
      '25; 0 0 COMMENT public PROCEDURE bump(n integer) postgres',
      '26; 1255 103 AGGREGATE public total(integer) postgres',
      '27; 1255 104 FUNCTION public extra() postgres',
      '28; 1247 200 TYPE public mood postgres',
    ].join('\n'),
  );
  const selection = (routines?: TocSelection['routines']): TocSelection => ({
    relationOids: new Set(),
    supportOids: new Set(),
    dependentOids: new Map(),
    ownedSequences: new Set(),
    partitionParents: new Map(),
    selected: new Set(),
    existsInTarget: () => false,
    fkReferences: new Map(),
    ...(routines ? { routines } : {}),
  });
  const kept = (s: TocSelection): number[] => filterToc(toc, s).kept.map((e) => e.dumpId);

  it('keeps the routines restored with their comments and grants, leaves the others out, keeps everything else', () => {
    expect(kept(selection({ restored: new Set([100]), universe: new Set([100, 101, 102]) }))).toEqual([10, 20, 21, 22, 26, 27, 28]);
    expect(kept(selection({ restored: new Set([102]), universe: new Set([100, 101, 102]) }))).toEqual([10, 24, 25, 26, 27, 28]);
  });

  it('a backup made before routines were collections restores every routine', () => {
    expect(kept(selection())).toEqual([10, 20, 21, 22, 23, 24, 25, 26, 27, 28]);
  });
});
