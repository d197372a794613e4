/**
 * What a repository holds and what deduplication and compression save: `cairn stats` and
 * GET /v1/stats. Read-only and without a lock (like a listing): a backup or prune running
 * meanwhile may make the numbers a moment old, never wrong about what is committed.
 */
import { ChunkIndex, listPacks } from './chunk-index.js';
import type { Repository } from './repository.js';

/**
 * One source's share of a repository: one database, however its backups spelled its location
 * (sources told apart by RepositoryStatsOptions.sourceKey, else by location).
 */
export interface SourceStats {
  /** The location of its newest backup, as that manifest records it (no secrets). */
  location: string;
  /** Every location its backups recorded, newest first (one unless it was reached several ways). */
  locations: string[];
  kind: string;
  backups: number;
  /** completedAt of its newest backup (ISO). */
  newest: string;
  /** Sum of its backups' logical (uncompressed, before dedup) bytes. */
  logicalBytes: number;
  /**
   * Stored (compressed) bytes of the chunks only this source's backups reference: what deleting
   * all its backups and pruning would free, at most (a pack is repacked or removed as a whole).
   */
  uniqueStoredBytes: number;
}

export interface RepositoryStats {
  repository: string;
  backups: number;
  packs: number;
  /** Bytes of the packs under data/ as the storage lists them (referenced or not). */
  storedBytes: number;
  /** Sum of every backup's logical bytes (what restoring each of them would read). */
  logicalBytes: number;
  /** Distinct chunks the backups reference, uncompressed and as stored (compressed). */
  uniqueChunks: number;
  uniqueRawBytes: number;
  uniqueStoredBytes: number;
  /** logicalBytes / uniqueRawBytes: how many times each distinct byte is used; null without data. */
  dedupRatio: number | null;
  /** uniqueRawBytes / uniqueStoredBytes; null without data. */
  compressionRatio: number | null;
  /** Referenced chunks the index does not know (a damaged repository: cairn verify names them). */
  unindexedChunks: number;
  /** Newest backup first. */
  sources: SourceStats[];
  /** Manifests that could not be read (left out of every number). */
  damaged: { id: string; message: string }[];
}

export interface RepositoryStatsOptions {
  signal?: AbortSignal;
  /**
   * The database a manifest's source location names (jobs/database-key.ts databaseKey: the user,
   * a loopback host or socket folder, a relative or symlinked path do not change it): backups
   * with the same key are one source. Default: the location itself.
   */
  sourceKey?: (location: string) => string;
}

const ratio = (a: number, b: number): number | null => (b > 0 ? Math.round((a / b) * 100) / 100 : null);

/**
 * Reads the pack listing, the index and every manifest. Memory: one entry per distinct chunk
 * referenced (as any backup holds its index), not per byte.
 * @throws StorageError when the storage cannot be listed or read.
 */
export async function repositoryStats(repo: Repository, options: RepositoryStatsOptions = {}): Promise<RepositoryStats> {
  const { signal } = options;
  const keyOf = options.sourceKey ?? ((location: string) => location);
  const { packs } = await listPacks(repo.storage, signal);
  const { chunks } = await ChunkIndex.load(repo.storage, { ...(signal ? { signal } : {}) });
  const { manifests, damaged } = await repo.readAllManifests(signal);
  const sources: SourceStats[] = [];
  const bySource = new Map<string, number>();
  /** Chunk id → the index in `sources` of the one source referencing it, or -1 when shared. */
  const owner = new Map<string, number>();
  let logicalBytes = 0;
  /** Per source, each location spelling → completedAt of its newest backup. */
  const spellings: Map<string, string>[] = [];
  for (const m of manifests) {
    logicalBytes += m.totals.logicalBytes;
    const key = `${m.source.kind}\u0000${keyOf(m.source.location)}`;
    let i = bySource.get(key);
    if (i === undefined) {
      i = sources.push({ location: m.source.location, locations: [], kind: m.source.kind, backups: 0, newest: m.completedAt, logicalBytes: 0, uniqueStoredBytes: 0 }) - 1;
      spellings.push(new Map());
      bySource.set(key, i);
    }
    const s = sources[i] as SourceStats;
    s.backups++;
    s.logicalBytes += m.totals.logicalBytes;
    if (m.completedAt > s.newest) s.newest = m.completedAt;
    const seen = spellings[i] as Map<string, string>;
    if (!(m.completedAt <= (seen.get(m.source.location) ?? ''))) seen.set(m.source.location, m.completedAt);
    for (const c of m.collections) {
      for (const id of c.chunks) {
        const was = owner.get(id);
        if (was === undefined) owner.set(id, i);
        else if (was !== i && was !== -1) owner.set(id, -1);
      }
    }
  }
  let uniqueRawBytes = 0;
  let uniqueStoredBytes = 0;
  let unindexedChunks = 0;
  for (const [id, who] of owner) {
    const at = chunks.get(id);
    if (!at) {
      unindexedChunks++;
      continue;
    }
    uniqueRawBytes += at.rawLength;
    uniqueStoredBytes += at.length;
    if (who !== -1) (sources[who] as SourceStats).uniqueStoredBytes += at.length;
  }
  let storedBytes = 0;
  for (const p of packs.values()) storedBytes += p.size;
  sources.forEach((s, i) => {
    s.locations = [...(spellings[i] as Map<string, string>)].sort((a, b) => b[1].localeCompare(a[1]) || a[0].localeCompare(b[0])).map(([l]) => l);
    s.location = s.locations[0] ?? s.location;
  });
  sources.sort((a, b) => b.newest.localeCompare(a.newest) || a.location.localeCompare(b.location));
  return {
    repository: repo.location,
    backups: manifests.length,
    packs: packs.size,
    storedBytes,
    logicalBytes,
    uniqueChunks: owner.size,
    uniqueRawBytes,
    uniqueStoredBytes,
    dedupRatio: ratio(logicalBytes, uniqueRawBytes),
    compressionRatio: ratio(uniqueRawBytes, uniqueStoredBytes),
    unindexedChunks,
    sources,
    damaged,
  };
}

/** What deleting one backup and then pruning would free (GET /v1/backups/{id}/deletion-preview). */
export interface DeletionPreview {
  id: string;
  repository: string;
  /** Chunks this backup references that no other backup does, and their stored (compressed) bytes per the index. */
  uniqueChunks: number;
  uniqueStoredBytes: number;
  /** Chunks another backup references too (kept by a prune). */
  sharedChunks: number;
  /** Distinct chunks the backup references. */
  totalChunks: number;
  /** What the numbers do not cover (packs removed or repacked whole, damaged manifests, chunks the index lacks). */
  note: string;
}

/**
 * Reads the index and every manifest (read-only, no lock) and counts the chunks of backup `id`
 * that no other readable backup references. A damaged manifest's references are unknown: the
 * note says so (a prune refuses to run while one exists anyway).
 * @throws NotFoundError for an unknown backup; CorruptionError when its own manifest is damaged;
 *   StorageError when the storage cannot be read.
 */
export async function deletionPreview(repo: Repository, id: string, signal?: AbortSignal): Promise<DeletionPreview> {
  const { manifests, damaged } = await repo.readAllManifests(signal);
  const target = manifests.find((m) => m.id === id) ?? (await repo.readManifest(id, signal)); // throws what readManifest throws
  const mine = new Set<string>();
  for (const c of target.collections) for (const chunk of c.chunks) mine.add(chunk);
  const shared = new Set<string>();
  for (const m of manifests) {
    if (m.id === id) continue;
    for (const c of m.collections) for (const chunk of c.chunks) if (mine.has(chunk)) shared.add(chunk);
  }
  const { chunks } = await ChunkIndex.load(repo.storage, { ...(signal ? { signal } : {}) });
  let uniqueChunks = 0;
  let uniqueStoredBytes = 0;
  let unindexed = 0;
  for (const chunk of mine) {
    if (shared.has(chunk)) continue;
    uniqueChunks++;
    const at = chunks.get(chunk);
    if (at) uniqueStoredBytes += at.length;
    else unindexed++;
  }
  const notes = [
    'Deleting removes only the manifest; prune frees the space (a pack is removed or repacked as a whole, packs younger than its grace period are kept), and a backup made meanwhile may reuse these chunks.',
  ];
  if (damaged.length > 0) notes.push(`${damaged.length} object(s) under backups/ could not be read: chunks they reference may be counted as unique here (prune refuses to run until cairn repair).`);
  if (unindexed > 0) notes.push(`${unindexed} unique chunk(s) are not in the index (counted without bytes): run cairn verify.`);
  return { id, repository: repo.location, uniqueChunks, uniqueStoredBytes, sharedChunks: shared.size, totalChunks: mine.size, note: notes.join(' ') };
}
