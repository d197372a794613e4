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

function globToRegExp(pattern: string, flags: string): RegExp {
  const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
  return new RegExp(`^${escaped}$`, flags);
}

/**
 * Which names a pattern designates: exact match first, then a case-insensitive match (SQLite
 * and MySQL names are case-insensitive), `*` matching any run of characters.
 */
function matchPattern(pattern: string, names: readonly string[]): string[] {
  const exact = names.filter((n) => globToRegExp(pattern, '').test(n));
  if (exact.length > 0) return exact;
  return names.filter((n) => globToRegExp(pattern, 'i').test(n));
}

/**
 * Applies include or exclude to a list of names. Every pattern must match something: a typo
 * in --include or --exclude is an error, never a silently different backup.
 */
export function selectNames(names: readonly string[], selection: Selection, what = 'collection'): Set<string> {
  validateSelection(selection);
  const patterns = selection.include ?? selection.exclude;
  if (!patterns) return new Set(names);
  const matched = new Set<string>();
  const unknown: string[] = [];
  for (const p of patterns) {
    const m = matchPattern(p, names);
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
