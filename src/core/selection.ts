import { UsageError } from './errors.js';

export interface Selection {
  include?: string[];
  exclude?: string[];
}

/** Splits "a,b, c" flags into names; repeated flags are concatenated by the caller. */
export function parseNameList(values: string | string[] | undefined): string[] | undefined {
  if (values === undefined) return undefined;
  const list = (Array.isArray(values) ? values : [values]).flatMap((v) => v.split(',')).map((s) => s.trim()).filter(Boolean);
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
   * How the engine reads a name written without quotes (SQLite: as key(); PostgreSQL: ASCII
   * letters lowercased): a pattern that matches nothing as written is tried in this form
   * against key() of each name.
   */
  unquoted(name: string): string;
}

/** Names compared exactly, written as they are: for engines this build does not know. */
export const EXACT_NAMES: NameRules = { qualify: (n) => n, key: (n) => n, unquoted: (n) => n };

function globToRegExp(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
  return new RegExp(`^${escaped}$`, '');
}

/**
 * Which names a pattern designates: exact match first, then the pattern read as the engine
 * reads an unquoted name (`rules.unquoted`) against each name's key, `*` matching any run of
 * characters. Never a wider folding than the engine's own: a SQLite "Ä" does not find "ä".
 */
function matchPattern(pattern: string, names: readonly string[], rules: NameRules): string[] {
  const exact = globToRegExp(pattern);
  const found = names.filter((n) => exact.test(n));
  if (found.length > 0) return found;
  const folded = globToRegExp(rules.unquoted(pattern));
  return names.filter((n) => folded.test(rules.key(n)));
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
    const m = matchPattern(p, names, rules);
    if (m.length === 0) unknown.push(p);
    for (const n of m) matched.add(n);
  }
  if (unknown.length > 0) {
    const available = names.length <= 12 ? names.join(', ') : `${names.slice(0, 12).join(', ')}, … (${names.length} in all)`;
    throw new UsageError(`Unknown ${what}${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}. Available: ${available || '(none)'}.`);
  }
  return selection.include ? matched : new Set(names.filter((n) => !matched.has(n)));
}

/** "old=new" pairs; every old name must be selected and new names must not collide. */
export function parseRenames(values: string[] | undefined): Map<string, string> {
  const renames = new Map<string, string>();
  for (const v of parseNameList(values) ?? []) {
    const eq = v.indexOf('=');
    const from = v.slice(0, eq).trim();
    const to = v.slice(eq + 1).trim();
    if (eq <= 0 || !from || !to) throw new UsageError(`Invalid --rename "${v}": write it as old=new.`);
    if (renames.has(from)) throw new UsageError(`--rename names "${from}" twice.`);
    renames.set(from, to);
  }
  return renames;
}
