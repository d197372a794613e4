/**
 * A restore's dry run: everything a restore checks before it writes (the backup's manifest, the
 * selection and renames, the policy, the target's conflicts through RestoreTarget.check), and
 * nothing written. Used by POST /v1/restores {dryRun: true} and `cairn restore --dry-run`.
 */
import { ConflictError } from '../core/errors.js';
import { namingFor } from '../sources/registry.js';
import type { ConflictPolicy, RestoreItem } from '../sources/types.js';
import { checkRestore, type RestoreOptions } from './restore.js';

/** A restore's options, less those only a running restore uses (its streams and callbacks). */
export type RestorePlanOptions = Omit<RestoreOptions, 'jobs' | 'onProgress' | 'onFinalizing'>;

/** One collection a restore would write: its name in the backup and in the target. */
export interface PlannedCollection {
  name: string;
  targetName: string;
  kind: string;
  rows: number;
  logicalBytes: number;
}

/** One thing in the way; `name` the collection (as restored) it is about, when one is named, else the target. */
export interface PlannedConflict {
  name: string;
  message: string;
}

/**
 * The answer of a dry run (the shape of POST /v1/restores {dryRun: true}). ok: false exactly
 * when conflicts is not empty; message says what a restore would do or why it would stop.
 */
export interface RestorePlan {
  dryRun: true;
  ok: boolean;
  backupId: string;
  /** The target's location (never a password). */
  target: string;
  onConflict: ConflictPolicy;
  collections: PlannedCollection[];
  conflicts: PlannedConflict[];
  message: string;
}

/**
 * Runs the checks of runRestore up to (and including) the target's conflict check, writing
 * nothing and taking no repository lock (no chunk is read). A ConflictError of the check becomes
 * `ok: false` with its problems; every other error (NOT_FOUND backup, USAGE selection or policy,
 * SOURCE unreachable target) is thrown as the restore itself would throw it.
 */
export async function planRestore(options: RestorePlanOptions): Promise<RestorePlan> {
  const { target } = options;
  const onConflict = options.onConflict ?? 'fail';
  // The same checks as the restore itself (an unset policy is "fail" there too).
  const { manifest, entries } = await checkRestore({ ...options, onConflict });
  const partial = entries.length !== manifest.collections.length || entries.some((e) => e.targetName !== e.entry.name);
  const items: RestoreItem[] = entries.map(({ entry, targetName }) => ({
    entry,
    targetName,
    // A check reads definitions only (from the manifest); data would mean a bug, so it says so.
    data: () => {
      throw new Error(`Internal error: the dry run of a restore read the data of ${entry.name}.`);
    },
    segments: entry.segments?.length ?? 1,
  }));
  const rules = namingFor(manifest.source.kind);
  // What a user selects (tables, views, …), not the entries every restore carries along.
  const collections = entries
    .filter((e) => e.entry.selectable !== false)
    .map(({ entry, targetName }) => ({ name: rules.written(entry.name), targetName: rules.written(targetName), kind: entry.kind, rows: entry.rowCount, logicalBytes: entry.logicalBytes }));
  let conflicts: PlannedConflict[] = [];
  try {
    await target.check(items, onConflict, partial);
  } catch (err) {
    if (!(err instanceof ConflictError)) throw err;
    const names = collections.map((c) => c.targetName);
    conflicts = (err.problems ?? [err.message]).map((message) => ({ name: conflictName(message, names) ?? target.location, message }));
  }
  const what = `${collections.length} collection${collections.length === 1 ? '' : 's'} of backup ${manifest.id} into ${target.location} (on conflict: ${onConflict})`;
  return {
    dryRun: true,
    ok: conflicts.length === 0,
    backupId: manifest.id,
    target: target.location,
    onConflict,
    collections,
    conflicts,
    message:
      conflicts.length === 0
        ? `A restore of ${what} would start: nothing is in the way. Nothing was written.`
        : `A restore of ${what} would stop with ${conflicts.length} conflict${conflicts.length === 1 ? '' : 's'}; nothing was written. Use another --on-conflict policy, --rename or --exclude, or another target.`,
  };
}

/**
 * The restored name a conflict's sentence is about: the longest of `names` it quotes (or names
 * bare, as PostgreSQL's messages write simple names), else the first quoted name, else undefined.
 * Best effort: the sentence itself is always given in full.
 */
function conflictName(message: string, names: string[]): string | undefined {
  const quoted = [...message.matchAll(/"((?:[^"]|"")+)"/g)].map((m) => m[1] as string);
  const found = [...names]
    .sort((a, b) => b.length - a.length)
    .find((n) => quoted.includes(n.replace(/^"|"$/g, '')) || quoted.includes(n) || new RegExp(`(^|[\\s(])${escapeRegExp(n)}([\\s.,:;)]|$)`).test(message));
  return found ?? quoted[0];
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
