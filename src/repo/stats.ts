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
