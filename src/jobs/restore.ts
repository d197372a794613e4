import { CorruptionError, UsageError } from '../core/errors.js';
import type { BackupManifest, CollectionEntry } from '../core/schemas.js';
import { selectNames, type NameRules, type Selection } from '../core/selection.js';
import { lockedSignal } from '../repo/locked.js';
import { ChunkIndex } from '../repo/chunk-index.js';
import { readChunks, readerForIndex } from '../repo/chunk-reader.js';
import { packKey } from '../repo/pack.js';
import type { Repository } from '../repo/repository.js';
import type { ConflictPolicy, RestoreItem, RestoreResult, RestoreTarget, SessionsPolicy } from '../sources/types.js';
import type { ProgressListener } from './progress.js';
import { namingFor } from '../sources/registry.js';
import { refuseOtherEngine, refuseRoles } from '../sources/index.js';

export interface RestoreOptions {
  repo: Repository;
  backupId: string;
  target: RestoreTarget;
  selection?: Selection;
  /** old name → new name */
  renames?: Map<string, string>;
  onConflict?: ConflictPolicy;
  /** `replace`: other sessions on the target at the switch (see SessionsPolicy; default refuse). */
  sessions?: SessionsPolicy;
  /** `replace` with sessions "wait": the longest wait, in milliseconds. */
  sessionsTimeoutMs?: number;
  /** Parallel streams the target may use. */
  jobs?: number;
  /** Restore the roles recorded in the backup. */
  roles?: boolean;
  /** Leave out object ownership / grants (engines with roles; pg_restore's --no-owner, --no-privileges). */
  noOwner?: boolean;
  noPrivileges?: boolean;
  signal?: AbortSignal;
  onProgress?: ProgressListener;
  /** See RestoreOptions.onFinalizing of the targets: the switch-in is about to start. */
  onFinalizing?: () => void;
}

/**
 * The checks every restore (and its dry run) makes before it reads any data: the backup's
 * manifest, the target's engine, the roles options, the selection and renames, and the
 * policy's limits. Answers the manifest and the entries to restore with their target names;
 * throws NOT_FOUND (no such backup) or USAGE (what the options ask cannot be done).
 */
export async function checkRestore(options: RestoreOptions): Promise<{ manifest: BackupManifest } & ReturnType<typeof restoreSelection>> {
  const { target } = options;
  const manifest = await options.repo.readManifest(options.backupId, options.signal);
  refuseOtherEngine(manifest.source.kind, manifest.id, target.kind, target.location);
  if (options.roles) refuseRoles(target.kind, 'restore');
  if (options.noOwner) refuseRoles(target.kind, 'restore', '--no-owner');
  if (options.noPrivileges) refuseRoles(target.kind, 'restore', '--no-privileges');
  const selected = restoreSelection(manifest, options.selection, options.renames);
  refuseReplacingPart(options, selected.entries.length !== manifest.collections.length || selected.renames.size > 0, manifest);
  return { manifest, ...selected };
}

export interface RestoreSummary extends RestoreResult {
  backupId: string;
  target: string;
  renamed: Record<string, string>;
  bytes: number;
}

/**
 * Restores a backup (or part of it) into a target. The target loads everything into staging
 * and switches it in at the end, so damaged data, a conflict or a cancellation leaves it as it
 * was. A shared lock keeps prune from removing packs while they are being read.
 */
export async function runRestore(options: RestoreOptions): Promise<RestoreSummary> {
  const { repo, target } = options;
  const { manifest, entries, renames } = await checkRestore(options);
  const lock = await repo.lock(false, `restore of ${manifest.id}`);
  // Aborts on the caller's cancel, or when the lock is lost (a prune could remove packs).
  const signal = lockedSignal(lock, options.signal);
  try {
    // Damaged index documents are skipped: the collections whose chunks only they listed fail
    // (naming the damage), every other collection restores.
    const loaded = await ChunkIndex.load(repo.storage, signal ? { signal } : {});
    const index = loaded.chunks;
    const reader = readerForIndex(repo.storage, loaded, repo.chunkId);
    // Everything this restore reads, declared before the first read: the reader then fetches only
    // the selected collections' byte ranges of each pack, and whole packs when most is selected.
    for (const { entry } of entries) reader.want(entry.chunks);
    const items: RestoreItem[] = entries.map(({ entry, targetName }) => ({
      entry,
      targetName,
      data: (segment?: number) => annotateDamage(readChunks(reader, segmentChunks(entry, segment), signal), manifest, index),
      segments: entry.segments?.length ?? 1,
    }));
    const bytesTotal = entries.reduce((n, e) => n + e.entry.logicalBytes, 0);
    const rowsTotal = entries.reduce((n, e) => n + e.entry.rowCount, 0);
    const progress = new RestoreCounts(entries);
    // Targets report each collection's running totals; the restore's are their sum.
    const perCollection = new Map<string, { rows: number; bytes: number }>();
    let rows = 0;
    let bytes = 0;
    let percent = 0;
    const result = await target.restore(items, {
      onConflict: options.onConflict ?? 'fail',
      ...(options.sessions !== undefined ? { sessions: options.sessions } : {}),
      ...(options.sessionsTimeoutMs !== undefined ? { sessionsTimeoutMs: options.sessionsTimeoutMs } : {}),
      ...(options.jobs !== undefined ? { jobs: options.jobs } : {}),
      ...(options.roles !== undefined ? { roles: options.roles } : {}),
      ...(options.noOwner ? { noOwner: true } : {}),
      ...(options.noPrivileges ? { noPrivileges: true } : {}),
      ...(options.onFinalizing ? { onFinalizing: options.onFinalizing } : {}),
      // Anything of the backup left out or renamed: the target keeps its database-level properties.
      ...(entries.length !== manifest.collections.length || entries.some((e) => e.targetName !== e.entry.name) ? { partial: true } : {}),
      signal,
      onProgress: (p) => {
        const prev = perCollection.get(p.collection) ?? { rows: 0, bytes: 0 };
        rows += p.rows - prev.rows;
        bytes += p.bytes - prev.bytes;
        perCollection.set(p.collection, { rows: p.rows, bytes: p.bytes });
        progress.reached(p.collection, p.bytes);
        // Exact totals from the manifest: the share is of bytes, never back, 100 only when done
        // (what targets load without reporting, the schema archive, keeps it below until then).
        if (bytesTotal > 0) percent = Math.max(percent, Math.min(99.9, Math.floor((bytes / bytesTotal) * 1000) / 10));
        options.onProgress?.({
          phase: 'transferring',
          collection: p.collection,
          collectionsDone: progress.done,
          collectionsTotal: progress.total,
          rows,
          rowsTotal,
          bytes,
          bytesTotal,
          ...(bytesTotal > 0 ? { percent } : {}),
        });
      },
    });
    options.onProgress?.({
      phase: 'done',
      collectionsDone: progress.total,
      collectionsTotal: progress.total,
      rows: result.rows,
      rowsTotal,
      bytes: bytesTotal,
      bytesTotal,
      percent: 100,
    });
    return {
      ...result,
      backupId: manifest.id,
      target: target.location,
      renamed: Object.fromEntries(renames),
      bytes: bytesTotal,
    };
  } finally {
    await lock.release().catch(() => undefined);
  }
}

/**
 * Collections done of a restore, counted as its summary counts them (RestoreResult.collections):
 * what a user selects (tables, views, routines, …), not the entries of the whole database that
 * go with every restore (selectable: false: PostgreSQL's "(schema)" archive and "(roles)", an
 * extension's configuration tables, SQLite's database properties). A collection is done once
 * the target has reported all its logical bytes; one without data from the start.
 */
class RestoreCounts {
  readonly total: number;
  done = 0;
  /** Name (as in the backup and as restored) → logical bytes still to come, of counted collections. */
  private readonly pending = new Map<string, { bytes: number; finished: boolean }>();

  constructor(entries: { entry: CollectionEntry; targetName: string }[]) {
    const counted = entries.filter((e) => e.entry.selectable !== false);
    this.total = counted.length;
    for (const { entry, targetName } of counted) {
      if (entry.logicalBytes === 0) {
        this.done++;
        continue;
      }
      const state = { bytes: entry.logicalBytes, finished: false };
      this.pending.set(entry.name, state);
      this.pending.set(targetName, state);
    }
  }

  /** A target reported `bytes` of `collection` (running total). */
  reached(collection: string, bytes: number): void {
    const state = this.pending.get(collection);
    if (state === undefined || state.finished || bytes < state.bytes) return;
    state.finished = true;
    this.done++;
  }
}

/**
 * `replace` makes the whole target database the backup: a part of it (--include, --exclude,
 * --rename) would drop everything else of the target, which nobody means. Errors: UsageError
 * pointing to `overwrite`, which replaces only the collections restored. Sessions options
 * without `replace`: UsageError (they would do nothing).
 */
export function refuseReplacingPart(options: RestoreOptions, partial: boolean, manifest: BackupManifest): void {
  if (options.onConflict !== 'replace') {
    if (options.sessions !== undefined || options.sessionsTimeoutMs !== undefined) {
      throw new UsageError('--sessions and --sessions-timeout apply to --on-conflict replace only (the other policies never switch the whole database); leave them out.');
    }
    return;
  }
  if (partial) {
    throw new UsageError(
      '--on-conflict replace makes the whole target database exactly the backup, so it takes no --include, --exclude or --rename. ' +
        'To replace only some collections, use --on-conflict overwrite with them; to get a part of the backup as a database of its own, restore it into a new database.',
    );
  }
  // A backup made with --include/--exclude (a scoped schedule's too) holds part of the database:
  // replacing the target with it would drop everything it left out.
  const scope = [...(manifest.scope.include ?? []).map((n) => `--include ${n}`), ...(manifest.scope.exclude ?? []).map((n) => `--exclude ${n}`)];
  if (scope.length > 0) {
    throw new UsageError(
      `Backup "${manifest.id}" holds only part of its database (made with ${scope.slice(0, 3).join(', ')}${scope.length > 3 ? ', …' : ''}): --on-conflict replace would drop everything else the target holds. ` +
        'Use --on-conflict overwrite to replace the collections it holds, or restore it into a new database.',
    );
  }
  if (options.sessionsTimeoutMs !== undefined && options.sessions !== 'wait') {
    throw new UsageError('--sessions-timeout is how long --sessions wait waits; give --sessions wait with it.');
  }
}

/**
 * What a restore (and a plain-SQL export, sql-export.ts) takes of a backup: the entries chosen
 * by --include / --exclude (the database-wide ones, selectable: false, always), in manifest
 * order, each with the name it gets (`targetName`), and the renames as given, both sides
 * qualified by the engine's name rules (`public.a` for PostgreSQL's `a`). Errors: UsageError for
 * a selection that names nothing, a name renamed twice, a rename of a collection not chosen, two
 * collections given one name (see selectEntries).
 */
export function restoreSelection(
  manifest: BackupManifest,
  selection: Selection | undefined,
  renameOptions: Map<string, string> | undefined,
): { entries: { entry: CollectionEntry; targetName: string }[]; renames: Map<string, string> } {
  const rules = namingFor(manifest.source.kind);
  const renames = new Map<string, string>();
  const keys = new Set<string>();
  for (const [from, to] of renameOptions ?? []) {
    const name = rules.qualify(from);
    // `public.a=x` and `a=y` (or SQLite's `Album` and `album`) name one table: say so rather
    // than let the last one win.
    if (keys.has(rules.key(name))) throw new UsageError(`--rename names ${rules.written(name)} twice; keep one.`);
    keys.add(rules.key(name));
    renames.set(name, rules.qualify(to));
  }
  return { entries: selectEntries(manifest, selection ?? {}, renames, rules), renames };
}

/**
 * The manifest's entries a restore writes, each with the name it gets in the target. Names are
 * compared by the engine's rules (NameRules.key): a rename finds "Album" from "album" on SQLite
 * but not on PostgreSQL, and two entries whose target names are one name to the engine (SQLite
 * "Users" and "users"; never PostgreSQL "Users" and users, nor SQLite "Ä" and "ä") are refused
 * with UsageError before anything is read.
 */
function selectEntries(
  manifest: BackupManifest,
  selection: Selection,
  renames: Map<string, string>,
  rules: NameRules,
): { entry: CollectionEntry; targetName: string }[] {
  const names = manifest.collections.filter((c) => c.selectable !== false).map((c) => c.name);
  const selected = selectNames(names, selection, rules, `collection in backup "${manifest.id}"`);
  const chosen = manifest.collections.filter((c) => c.selectable === false || selected.has(c.name));
  const renameOf = new Map<string, string>();
  // Renames of a whole group (a database of a whole-server backup): applied after those of
  // single collections, so `shop=copy` with `shop/public.a=shop/public.b` gives copy/public.b.
  const groupRenames: [string, string][] = [];
  for (const [from, to] of renames) {
    if (rules.regroup && chosen.some((c) => rules.regroup?.(c.name, from, to) !== undefined)) {
      groupRenames.push([from, to]);
      continue;
    }
    const key = rules.key(from);
    if (!chosen.some((c) => rules.key(c.name) === key)) {
      const restorable = chosen.filter((c) => c.selectable !== false).map((c) => rules.written(c.name));
      throw new UsageError(
        `--rename ${rules.written(from)}=…: that name is not among the collections being restored (${restorable.join(', ') || 'none'}). ` +
          'Write names as listed; one holding "=", "," or "." goes in double quotes.',
      );
    }
    renameOf.set(key, to);
  }
  const regrouped = (entry: CollectionEntry, name: string): string => {
    for (const [from, to] of groupRenames) {
      if (rules.regroup?.(entry.name, from, to) !== undefined) return rules.regroup(name, from, to) ?? name;
    }
    return name;
  };
  const result = chosen.map((entry) => ({ entry, targetName: regrouped(entry, renameOf.get(rules.key(entry.name)) ?? entry.name) }));
  const seen = new Map<string, string>();
  for (const r of result) {
    const key = rules.key(r.targetName);
    const other = seen.get(key);
    if (other !== undefined) throw new UsageError(`Two collections would be restored as "${r.targetName}" (${other} and ${r.entry.name}); change a --rename.`);
    seen.set(key, r.entry.name);
  }
  return result;
}

/** Turns a damaged-chunk error into one that says which collections of the backup it breaks. */
async function* annotateDamage(chunks: AsyncIterable<Buffer>, manifest: BackupManifest, index: ChunkIndex): AsyncGenerator<Buffer> {
  try {
    yield* chunks;
  } catch (err) {
    if (!(err instanceof CorruptionError)) throw err;
    const damagedPacks = new Set(err.objects.filter((o) => o.startsWith('data/')));
    const damagedChunks = new Set(err.objects.filter((o) => o.startsWith('chunk ')).map((o) => o.slice(6)));
    // Blob-level damage names the chunk: only the collections using that chunk are affected.
    const affected = manifest.collections
      .filter((c) => c.chunks.some((id) => damagedChunks.size > 0 ? damagedChunks.has(id) : damagedPacks.has(packKey(index.get(id)?.packId ?? ''))))
      .map((c) => c.name);
    throw new CorruptionError(
      `Restore of backup "${manifest.id}" stopped, nothing was written to the target: ${err.message} ` +
        `Affected collections: ${affected.join(', ') || 'unknown'}. Run \`cairn verify ${manifest.id} --read-data\` for a full report.`,
      { objects: err.objects, collections: affected },
    );
  }
}

/** The chunks of one segment of a collection (all of them when `segment` is undefined). */
function segmentChunks(entry: CollectionEntry, segment: number | undefined): string[] {
  if (segment === undefined) return entry.chunks;
  const counts = entry.segments ?? [entry.chunks.length];
  if (!Number.isInteger(segment) || segment < 0 || segment >= counts.length) {
    throw new Error(`Internal error: collection ${entry.name} has no segment ${segment}.`);
  }
  const start = counts.slice(0, segment).reduce((a, b) => a + b, 0);
  return entry.chunks.slice(start, start + (counts[segment] as number));
}
