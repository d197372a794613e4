/**
 * The backup listing, fast: one listing of backups/ plus a per-backup summary kept in a store
 * (the server's catalog, src/catalog/summaries.ts), validated by each manifest object's size and
 * modified time. Only new or changed manifests are read. Nothing here trusts the store for what
 * exists: the listing of backups/ decides which backups there are (a row not listed is dropped,
 * a listed id without a usable row is read), the store only spares reading manifests that did
 * not change. Without a store every manifest is read (the CLI's path).
 *
 * Also the pure filter/sort/page of a listing (GET /v1/backups).
 */
import { mapLimit } from '../core/errgroup.js';
import { CorruptionError, NotFoundError } from '../core/errors.js';
import type { BackupManifest } from '../core/schemas.js';
import { foreignManifestMessage, type BackupObject, type Repository } from '../repo/repository.js';
import { databaseKey } from './database-key.js';

/** One complete backup as listed: what its manifest says, without its collections and chunks. */
export interface BackupSummary {
  id: string;
  status: 'SUCCESS';
  type: BackupManifest['type'];
  source: BackupManifest['source'];
  /** The schedule that made it, null for a manual backup. */
  schedule: string | null;
  createdAt: string;
  completedAt: string;
  /** completedAt − createdAt, milliseconds. */
  durationMs: number;
  expiresAt: string | null;
  size: { logicalBytes: number; storedBytes: number; newBytes: number };
  collections: number;
  rows: number;
  /** The repository's location. */
  repository: string;
}

/** A row of the store: what one manifest object read as, and the listing values it was read under. */
export interface CachedSummary {
  id: string;
  /** size and modified (ms since the epoch, storage clock) of the object as listed when it was read. */
  size: number;
  modifiedMs: number;
  /** When the read began (ms, local clock): see SETTLE_MS. */
  readAtMs: number;
  checksummed: boolean;
  /** null when the manifest is damaged (then `damaged` holds why). */
  summary: BackupSummary | null;
  damaged: string | null;
}

/**
 * Where summaries are kept between listings, per repository location. `repositoryId` is the
 * repository's config id: rows of another repository once at the same location are never used.
 * Implemented in the catalog (SqliteSummaryStore); injected so this module needs no database.
 */
export interface SummaryStore {
  /** The rows for this location (rows of another repository id there are dropped first). */
  load(location: string, repositoryId: string): Map<string, CachedSummary>;
  /** Inserts or replaces rows. */
  save(location: string, repositoryId: string, rows: CachedSummary[]): void;
  /** Removes rows (a backup deleted, or its manifest rewritten by this process: read again). */
  drop(location: string, ids: string[]): void;
}

/**
 * A row is trusted only when its read began at least this long after the object's modified
 * time: a storage whose times have one-second precision could otherwise show the same (size,
 * modified) for a manifest rewritten within that second after it was read. Rows read sooner are
 * read again at the next listing (a few fresh manifests), until they settle.
 */
export const SETTLE_MS = 2000;

export interface BackupListing {
  /** Oldest first (createdAt, then id), as Repository.readAllManifests. */
  summaries: BackupSummary[];
  /** Manifests that cannot be read and objects under backups/ that are not backups. */
  damaged: { id: string; message: string }[];
  /** Manifests without a checksum (format-1 repositories). */
  unchecksummed: string[];
  /** How many manifests were read from the storage for this listing (the rest came from the store). */
  read: number;
}

/** The summary of a manifest read from the repository at `repository` (its location). */
export function summarize(m: BackupManifest, repository: string): BackupSummary {
  return {
    id: m.id,
    status: 'SUCCESS',
    type: m.type,
    source: m.source,
    schedule: m.schedule ?? null,
    createdAt: m.createdAt,
    completedAt: m.completedAt,
    durationMs: Math.max(0, Date.parse(m.completedAt) - Date.parse(m.createdAt)),
    expiresAt: m.expiresAt,
    size: { logicalBytes: m.totals.logicalBytes, storedBytes: m.totals.storedBytes, newBytes: m.totals.newBytes },
    collections: m.totals.collections,
    rows: m.totals.rows,
    repository,
  };
}

const usable = (row: CachedSummary | undefined, o: BackupObject): row is CachedSummary =>
  row !== undefined && row.size === o.size && row.modifiedMs === o.modified.getTime() && row.readAtMs - row.modifiedMs >= SETTLE_MS;

/**
 * Every backup of `repo` as summaries: one listing of backups/, then the store's rows for
 * manifests whose (size, modified) did not change, and reads (8 at a time) of the others.
 * Rows of objects no longer listed are dropped. Without `store`, every manifest is read.
 * @throws StorageError when the storage cannot be listed or read (a damaged manifest is reported
 *   in `damaged`, never thrown).
 */
export async function listBackupSummaries(
  repo: Repository,
  options: { store?: SummaryStore; signal?: AbortSignal; now?: () => number } = {},
): Promise<BackupListing> {
  const { store, signal } = options;
  const now = options.now ?? Date.now;
  const location = repo.location;
  const { objects, foreign } = await repo.listBackupObjects(signal);
  const cached = store?.load(location, repo.config.id) ?? new Map<string, CachedSummary>();
  const rows: CachedSummary[] = [];
  const toRead: BackupObject[] = [];
  for (const o of objects) {
    const row = cached.get(o.id);
    if (usable(row, o)) rows.push(row);
    else toRead.push(o);
  }
  const gone = new Set<string>();
  const fresh = await mapLimit(
    toRead,
    8,
    async (o, _i, group): Promise<CachedSummary | undefined> => {
      const readAtMs = now();
      const base = { id: o.id, size: o.size, modifiedMs: o.modified.getTime(), readAtMs };
      try {
        const r = await repo.readManifestChecked(o.id, group);
        return { ...base, checksummed: r.checksummed, summary: summarize(r.manifest, location), damaged: null };
      } catch (err) {
        if (err instanceof NotFoundError) {
          gone.add(o.id); // deleted since the listing
          return undefined;
        }
        if (!(err instanceof CorruptionError)) throw err;
        return { ...base, checksummed: true, summary: null, damaged: err.message };
      }
    },
    signal,
  );
  const read = fresh.filter((r): r is CachedSummary => r !== undefined);
  if (store) {
    const listed = new Set(objects.map((o) => o.id));
    const dropped = [...cached.keys()].filter((id) => !listed.has(id) || gone.has(id));
    if (dropped.length > 0) store.drop(location, dropped);
    if (read.length > 0) store.save(location, repo.config.id, read);
  }
  const all = [...rows, ...read];
  const summaries = all.map((r) => r.summary).filter((s): s is BackupSummary => s !== null);
  // As readAllManifests orders them (ids by the locale's order), the common case compared cheaply.
  summaries.sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.id.localeCompare(b.id)));
  const damaged = [
    ...foreign.map((key) => ({ id: key.slice('backups/'.length), message: foreignManifestMessage(key) })),
    ...all.filter((r) => r.damaged !== null).map((r) => ({ id: r.id, message: r.damaged as string })),
  ].sort((a, b) => a.id.localeCompare(b.id));
  const unchecksummed = all.filter((r) => r.summary !== null && !r.checksummed).map((r) => r.id).sort();
  return { summaries, damaged, unchecksummed, read: toRead.length };
}

// ---------------------------------------------------------------------------------------------
// filter, sort, page

/** A backup that is not (yet) in the repository: a backup job running, failed or cancelled. */
export interface UnfinishedBackup {
  id: string | null;
  status: string;
  jobId: string;
  source: { location: string };
  createdAt: string;
  finishedAt: string | null;
  error: { code: string; message: string } | null;
  /** The schedule whose run it is (not answered: used by the filters). */
  schedule?: string | null;
}

export type ListedBackup = BackupSummary | UnfinishedBackup;

export const BACKUP_SORT_KEYS = ['createdAt', 'logicalBytes', 'storedBytes', 'id', 'expiresAt'] as const;
export type BackupSortKey = (typeof BACKUP_SORT_KEYS)[number];

export interface BackupQuery {
  /** A source's name or location (unfinished backups: location only). */
  source?: string;
  /**
   * The database `source` names (databaseKey: a registered source's location, or the location
   * given): a backup whose location spells the same database matches too, whatever user, host
   * alias or database name its URL used.
   */
  sourceKey?: string;
  status?: string;
  type?: 'manual' | 'scheduled';
  schedule?: string;
  /** Inclusive lower bound on createdAt (ms since the epoch). */
  sinceMs?: number;
  /** Exclusive upper bound on createdAt (ms since the epoch). */
  untilMs?: number;
  sort?: BackupSortKey;
  order?: 'asc' | 'desc';
  limit?: number;
  offset?: number;
}

const isComplete = (b: ListedBackup): b is BackupSummary => b.status === 'SUCCESS' && 'size' in b;

/** The value a backup sorts by; null (no value) sorts last in either order. */
function sortValue(b: ListedBackup, key: BackupSortKey): string | number | null {
  switch (key) {
    case 'createdAt':
      return b.createdAt;
    case 'id':
      return b.id;
    case 'logicalBytes':
      return isComplete(b) ? b.size.logicalBytes : null;
    case 'storedBytes':
      return isComplete(b) ? b.size.storedBytes : null;
    case 'expiresAt':
      return isComplete(b) ? b.expiresAt : null;
  }
}

/** Code-point order (not the locale's, which may ignore "-" and "_"): one order on every machine. */
const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const compareValues = (a: string | number, b: string | number): number => (typeof a === 'number' && typeof b === 'number' ? a - b : cmp(String(a), String(b)));

/**
 * databaseKey of a location, remembered: a SQLite key resolves real paths, and a listing or the
 * overview asks once per backup (10,000 backups, a handful of locations).
 */
const keys = new Map<string, string>();
export function cachedDatabaseKey(location: string): string {
  let key = keys.get(location);
  if (key === undefined) {
    if (keys.size > 10_000) keys.clear();
    key = databaseKey(location);
    keys.set(location, key);
  }
  return key;
}

/** Whether a backup passes the filters of `q` (not the paging). */
export function matchesBackup(b: ListedBackup, q: BackupQuery): boolean {
  if (q.source !== undefined && b.source.location !== q.source && !(isComplete(b) && b.source.name === q.source) && !(q.sourceKey !== undefined && cachedDatabaseKey(b.source.location) === q.sourceKey)) return false;
  if (q.status !== undefined && b.status !== q.status) return false;
  const schedule = isComplete(b) ? b.schedule : (b.schedule ?? null);
  if (q.schedule !== undefined && schedule !== q.schedule) return false;
  if (q.type !== undefined && (isComplete(b) ? b.type : schedule !== null ? 'scheduled' : 'manual') !== q.type) return false;
  if (q.sinceMs !== undefined || q.untilMs !== undefined) {
    const t = Date.parse(b.createdAt);
    if (q.sinceMs !== undefined && !(t >= q.sinceMs)) return false;
    if (q.untilMs !== undefined && !(t < q.untilMs)) return false;
  }
  return true;
}

/**
 * Filters, sorts (by `sort`, default createdAt, `order` default asc; ties by createdAt, then id,
 * then job id, in the same order; backups without the value — unfinished ones for sizes and
 * expiresAt, never-expiring ones for expiresAt — last in either order) and pages.
 * @returns the page and `total`, the count after filters before paging.
 */
export function queryBackups<T extends ListedBackup>(all: readonly T[], q: BackupQuery): { backups: T[]; total: number } {
  const key = q.sort ?? 'createdAt';
  const dir = q.order === 'desc' ? -1 : 1;
  const kept = all.filter((b) => matchesBackup(b, q));
  const tie = (b: ListedBackup): string => `${b.id ?? ''}\u0000${'jobId' in b ? b.jobId : ''}`;
  kept.sort((a, b) => {
    const va = sortValue(a, key);
    const vb = sortValue(b, key);
    if (va === null || vb === null) {
      if (va !== vb) return va === null ? 1 : -1;
    } else {
      const c = compareValues(va, vb);
      if (c !== 0) return c * dir;
    }
    return (cmp(a.createdAt, b.createdAt) || cmp(tie(a), tie(b))) * dir;
  });
  const offset = q.offset ?? 0;
  const page = q.limit === undefined ? kept.slice(offset) : kept.slice(offset, offset + q.limit);
  return { backups: page, total: kept.length };
}
