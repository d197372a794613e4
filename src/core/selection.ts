import { UsageError } from './errors.js';

export interface Selection {
  include?: string[];
  exclude?: string[];
}

/**
 * A double-quoted part at `i` of a name as a user writes it, SQL style (`""` is one quote):
 * its text and the index after the closing quote; undefined when `s[i]` is no quote or the
 * quote never closes.
 */
export function readQuoted(s: string, i = 0): { text: string; end: number } | undefined {
  if (s[i] !== '"') return undefined;
  let text = '';
  for (let j = i + 1; j < s.length; j++) {
    if (s[j] !== '"') {
      text += s[j];
    } else if (s[j + 1] === '"') {
      text += '"';
      j++;
    } else {
      return { text, end: j + 1 };
    }
  }
  return undefined;
}

/**
 * Splits `s` at each `sep` outside double-quoted parts (at most `limit` pieces, the last one
 * holding the rest). A quote opens a part only where a name or a part of one starts (at the
 * start, after whitespace, `.`, `=` or `,`) and only when it closes; any other quote is an
 * ordinary character.
 */
function splitOutsideQuotes(s: string, sep: string, limit = Infinity): string[] {
  const pieces: string[] = [];
  let start = 0;
  for (let i = 0; i < s.length && pieces.length < limit - 1; i++) {
    if (s[i] === '"' && (i === 0 || /[\s.=,]/.test(s[i - 1] as string))) {
      const q = readQuoted(s, i);
      if (q !== undefined) {
        i = q.end - 1;
        continue;
      }
    }
    if (s[i] === sep) {
      pieces.push(s.slice(start, i));
      start = i + 1;
    }
  }
  pieces.push(s.slice(start));
  return pieces;
}

/**
 * Splits "a,b, c" flags into names; repeated flags are concatenated by the caller. A name
 * holding a comma (or leading or trailing spaces) is written in double quotes, SQL style:
 * `"a,b"`, `public."x, y"` (each engine's NameRules.qualify reads the quotes).
 */
export function parseNameList(values: string | string[] | undefined): string[] | undefined {
  if (values === undefined) return undefined;
  const list = (Array.isArray(values) ? values : [values]).flatMap((v) => splitOutsideQuotes(v, ',')).map((s) => s.trim()).filter(Boolean);
  return list;
}

export function validateSelection(selection: Selection): void {
  if (selection.include && selection.exclude) {
    throw new UsageError('--include and --exclude cannot be used together: list what to keep with --include, or what to leave out with --exclude.');
  }
  if (selection.include?.length === 0) throw new UsageError('--include needs at least one name.');
  if (selection.exclude?.length === 0) throw new UsageError('--exclude needs at least one name.');
}

/**
 * How one engine spells and compares collection names (each engine's driver supplies its own:
 * src/sources/<engine>/naming.ts). Core owns the shape so that selection needs no engine.
 */
export interface NameRules {
  /** A name or pattern as a user wrote it → the engine's full spelling (PostgreSQL: `film` → `public.film`). */
  qualify(name: string): string;
  /**
   * The key two names share exactly when the engine takes them for one object (SQLite: ASCII
   * letters folded, so "Users" = "users" but "Ä" ≠ "ä"; PostgreSQL: the name itself).
   */
  key(name: string): string;
  /**
   * A name or pattern as a user wrote it → its full spelling as the engine reads it, quotes
   * included (SQLite: as key(), quoted or not; PostgreSQL: qualified, ASCII letters of its
   * unquoted parts lowercased, quoted parts exactly): a pattern that matches nothing as written
   * is tried in this form against key() of each name.
   */
  unquoted(name: string): string;
  /**
   * A collection name as a user writes it in a list flag (--include a,b, --rename old=new) so
   * that parseNameList / parseRenames and qualify() give the name back: what a list would split
   * or trim is double-quoted (`"a,b"`, PostgreSQL `public." x"`). For messages.
   */
  written(name: string): string;
  /**
   * Engines whose collections fall into named groups (a whole PostgreSQL server's databases:
   * `shop/public.orders`): the name `name` takes when the rename `from=to` (both qualified)
   * renames a whole group, or undefined when that rename names no group or `name` is not in it.
   * Absent: every rename names one collection.
   */
  regroup?(name: string, from: string, to: string): string | undefined;
}

/** Names compared exactly, written as they are: for engines this build does not know. */
export const EXACT_NAMES: NameRules = { qualify: (n) => n, key: (n) => n, unquoted: (n) => n, written: (n) => n };

/** A name in double quotes, SQL style (a quote inside doubled): what readQuoted reads back. */
export function quoteName(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * Whether a name, as one unit of a list flag, must be quoted to come back unchanged: it holds a
 * list or rename separator, starts or ends with white space (trimmed), is empty, or holds a
 * quote (which could open a quoted part). `also` adds the engine's own separators (PostgreSQL's
 * dot).
 */
export function mustQuote(name: string, also = ''): boolean {
  // Control characters (a line break, a tab) too: quoted, a name that holds one still reads as one name.
  // eslint-disable-next-line no-control-regex
  return name === '' || /^\s|\s$|[\u0000-\u001f\u007f]/.test(name) || [',', '=', '"', ...also].some((c) => name.includes(c));
}

function globToRegExp(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
  // 's': a `*` runs over line breaks too (PostgreSQL and SQLite names may hold them).
  return new RegExp(`^${escaped}$`, 's');
}

/**
 * Which names a pattern designates: the name spelled exactly as the pattern, else the pattern as
 * a glob matched exactly, then the pattern read as the engine
 * reads an unquoted name (`rules.unquoted`) against each name's key, `*` matching any run of
 * characters. Never a wider folding than the engine's own: a SQLite "Ä" does not find "ä".
 */
function matchPattern(written: string, pattern: string, names: readonly string[], rules: NameRules): string[] {
  // A name spelled exactly so is that name, even when it holds a `*` (a table "a*" beside "ab").
  if (names.includes(pattern)) return [pattern];
  const exact = globToRegExp(pattern);
  const found = names.filter((n) => exact.test(n));
  if (found.length > 0) return found;
  const folded = globToRegExp(rules.unquoted(written));
  return names.filter((n) => folded.test(rules.key(n)));
}

/**
 * Names the user probably meant by `unknown` (as the user can type them back): those equal to
 * one of them but for letter case, quotes or spaces at the ends (`trail` for "trail "), and
 * those that a comma or "=" inside split into the unknown pieces (`x, y` or just `x` for "x,y").
 */
function nearNames(names: readonly string[], unknown: readonly string[], rules: NameRules): string[] {
  const loose = (s: string): string => s.replace(/"/g, '').trim().toLowerCase();
  const bare = (s: string): string => loose(s.slice(s.lastIndexOf('.') + 1));
  const wanted = new Set(unknown.flatMap((u) => [loose(u), bare(u)]));
  if (unknown.length > 1) for (const sep of [',', '=']) wanted.add(unknown.map(bare).join(sep));
  const same = names.filter(
    (n) =>
      wanted.has(loose(n)) ||
      wanted.has(loose(rules.written(n))) ||
      wanted.has(bare(n)) ||
      // `x` for "x,y": the shell or the list split a name at its comma or "="
      (/[,=]/.test(bare(n)) && bare(n).split(/[,=]/).some((piece) => wanted.has(piece.trim()))),
  );
  // Typos (`tt` for `t`, `albmu` for `album`): names whose last part is within a small edit
  // distance of the last part typed, closest first. Wildcard patterns are left out: they match
  // by design, and a near miss of one says little.
  const typed = unknown.filter((u) => !u.includes('*')).map(bare);
  // A distance as long as the longer string is a different name (`x` for `a`), not a typo.
  const close = (t: string, n: string): number => {
    const d = editDistance(t, n);
    return d < Math.max(t.length, n.length) ? d : Infinity;
  };
  // Last parts only: `public.y` is not a typo of `public.z`, and a schema is rarely the typo.
  const distance = (n: string): number => Math.min(...typed.map((t) => close(t, bare(n))));
  const typos = typed.length === 0 ? [] : names
    .filter((n) => !same.includes(n))
    .map((n) => ({ n, d: distance(n) }))
    .filter(({ n, d }) => d <= typoBudget(bare(n)))
    .sort((a, b) => a.d - b.d)
    .map(({ n }) => n);
  return [...same, ...typos].map((n) => rules.written(n)).slice(0, 5);
}

/** How many edits a typo of `name` may hold: 1 up to 5 characters, 2 up to 10, then 3. */
const typoBudget = (name: string): number => (name.length <= 5 ? 1 : name.length <= 10 ? 2 : 3);

/**
 * Edit distance of two strings (insertions, deletions, substitutions and swaps of two
 * neighbours, each 1: the optimal-string-alignment form of Damerau-Levenshtein), by UTF-16 unit.
 */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  // rows[i][j]: the distance of a's first i units to b's first j units.
  const rows: number[][] = [Array.from({ length: b.length + 1 }, (_v, j) => j)];
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const up = rows[i - 1] as number[];
      let d = Math.min((up[j] as number) + 1, (row[j - 1] as number) + 1, (up[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, ((rows[i - 2] as number[])[j - 2] as number) + 1);
      row[j] = d;
    }
    rows.push(row);
  }
  return (rows[a.length] as number[])[b.length] as number;
}

/**
 * Applies include or exclude to a list of names, patterns first qualified by `rules`. Every
 * pattern must match something: a typo in --include or --exclude is an error (UsageError),
 * never a silently different backup.
 */
export function selectNames(names: readonly string[], selection: Selection, rules: NameRules, what = 'collection'): Set<string> {
  validateSelection(selection);
  const patterns = selection.include ?? selection.exclude;
  if (!patterns) return new Set(names);
  const matched = new Set<string>();
  const unknown: string[] = [];
  for (const written of patterns) {
    const p = rules.qualify(written);
    const m = matchPattern(written, p, names, rules);
    if (m.length === 0) unknown.push(p);
    for (const n of m) matched.add(n);
  }
  if (unknown.length > 0) {
    const shown = names.map((n) => rules.written(n));
    const available = shown.length <= 12 ? shown.join(', ') : `${shown.slice(0, 12).join(', ')}, … (${shown.length} in all)`;
    // "collection in backup "x"" → "collections in backup "x"": the noun takes the plural.
    const noun = unknown.length > 1 ? what.replace(/^(\w+)/, '$1s') : what;
    const near = nearNames(names, unknown, rules);
    const hint = near.length > 0 ? ` Did you mean ${near.join(', ')}? (A name holding ",", "=", "*" or spaces at either end goes in double quotes.)` : '';
    throw new UsageError(`Unknown ${noun}: ${unknown.join(', ')}.${hint} Available: ${available || '(none)'}.`);
  }
  return selection.include ? matched : new Set(names.filter((n) => !matched.has(n)));
}

/**
 * "old=new" pairs; every old name must be selected and new names must not collide. The pair
 * splits at the first `=` outside double quotes: a name holding `=` is quoted (`"a=b"=c`).
 */
export function parseRenames(values: string[] | undefined): Map<string, string> {
  const renames = new Map<string, string>();
  for (const v of parseNameList(values) ?? []) {
    const pair = splitOutsideQuotes(v, '=', 2);
    const from = (pair[0] ?? '').trim();
    const to = (pair[1] ?? '').trim();
    if (pair.length < 2 || !from || !to) {
      throw new UsageError(`Invalid --rename "${v}": write it as old=new (a name holding "=", "," or "." in double quotes, e.g. "a=b"=c).`);
    }
    if (renames.has(from)) throw new UsageError(`--rename names "${from}" twice.`);
    renames.set(from, to);
  }
  return renames;
}
