import { CancelledError, CorruptionError, NotFoundError, throwIfAborted } from '../core/errors.js';
import type { Storage } from '../storage/types.js';
import type { ChunkIndex, ChunkLocation, LoadedIndex } from './chunk-index.js';
import { decompressBlob } from './compression.js';
import { packKey } from './pack.js';

/**
 * A single ranged read never spans more than this (a whole-pack read may: packs are read whole
 * when most of them is wanted, as before ranges existed). Large enough that a store's per-request
 * cost is small against the transfer, small enough to bound what one cached read holds.
 */
export const MAX_RANGE_BYTES = 16 * 1024 * 1024;

export interface ChunkReaderOptions {
  /** Reads (whole packs or ranges of one) kept in memory; default 4. Each holds ≤ one pack. */
  cachedReads?: number;
  /** Appended to "not in any index" and "missing pack" errors, e.g. which index documents were damaged. */
  missingHint?: string;
  /**
   * Every indexed pack's length in bytes (LoadedIndex.packs). Lets the reader fetch a pack whole
   * when at least half of it is wanted; without it, only ranges of wanted blobs are read.
   */
  packs?: ReadonlyMap<string, { length: number }>;
}

/** One fetch in the cache: bytes [start, end) of a pack (end Infinity: the whole pack). */
interface CachedRead {
  packId: string;
  start: number;
  end: number;
  bytes: Promise<Buffer>;
}

/** A planned read of one pack: bytes [start, end), or the whole pack. */
interface PlannedRange {
  start: number;
  end: number;
  whole: boolean;
}

/**
 * Reads chunks for a restore. Every blob is checked on its own: decompressed within its
 * recorded size and hashed against its id, so damage stays contained — a flipped byte in one
 * blob fails only the collections that use that blob, never a neighbour stored in the same pack
 * (restores load into staging, so a failure still leaves the target untouched).
 *
 * What is fetched depends on what the caller declared it will read (`want`, which readChunks
 * calls for its list): per pack, the wanted blobs are grouped into ranges, neighbours merged
 * while a range stays at most twice the bytes it needs (and ≤ MAX_RANGE_BYTES), so restoring one
 * small table out of a large backup reads about that table's bytes, not whole 16 MiB packs
 * shared with other tables. A pack of which at least half is wanted is read whole (object stores
 * prefer few large reads; a full restore reads every pack whole, as before). Either way no read
 * holds more than twice the wanted bytes it serves. Storage that can only read objects whole
 * (`Storage.wholeObjectReads`: an encrypted repository, sealed per object) is always read whole.
 * A few reads stay cached because a collection's chunks are mostly stored side by side.
 */
export class ChunkReader {
  private readonly cache: CachedRead[] = [];
  private readonly cachedReads: number;
  private readonly missingHint: string;
  private readonly packs: ReadonlyMap<string, { length: number }> | undefined;
  /** Wanted blobs per pack, by chunk id. */
  private readonly wanted = new Map<string, Map<string, ChunkLocation>>();
  /** Planned ranges per pack, sorted by start; dropped when `want` adds a blob of that pack. */
  private readonly plans = new Map<string, PlannedRange[]>();

  constructor(
    private readonly storage: Storage,
    private readonly index: ChunkIndex,
    /** A chunk's id from its raw content (Repository.chunkId: SHA-256, or keyed in an encrypted repository). */
    private readonly chunkId: (raw: Uint8Array) => string,
    options: ChunkReaderOptions = {},
  ) {
    this.cachedReads = Math.max(1, options.cachedReads ?? 4);
    this.missingHint = options.missingHint ?? 'Run cairn verify to see which backups are affected and cairn repair to rebuild the index.';
    this.packs = options.packs;
  }

  /**
   * Declares chunks that will be read (any number of calls, before or while reading; ids not in
   * the index are ignored here and fail in `read`). Reading a chunk never declared fetches just
   * its blob. Declaring everything up front gives the best plan: a full restore reads whole packs.
   */
  want(ids: Iterable<string>): void {
    for (const id of ids) {
      const loc = this.index.get(id);
      if (!loc) continue;
      let blobs = this.wanted.get(loc.packId);
      if (!blobs) this.wanted.set(loc.packId, (blobs = new Map()));
      if (blobs.has(id)) continue;
      blobs.set(id, loc);
      this.plans.delete(loc.packId);
    }
  }

  /** The chunk's raw bytes, checked against its id; CorruptionError naming the pack when it cannot be. */
  async read(id: string, signal?: AbortSignal): Promise<Buffer> {
    throwIfAborted(signal);
    const loc = this.index.get(id);
    if (!loc) {
      throw new CorruptionError(`Chunk ${id} is not in any usable index of ${this.storage.location}. ${this.missingHint}`, { objects: [`chunk ${id}`] });
    }
    const { bytes, start } = await this.fetchCovering(loc, signal);
    const from = loc.offset - start;
    if (from + loc.length > bytes.length) {
      throw new CorruptionError(`Pack ${packKey(loc.packId)} is shorter than its index says.`, { objects: [packKey(loc.packId), `chunk ${id}`] });
    }
    const where = { objects: [packKey(loc.packId), `chunk ${id}`] };
    let raw: Buffer;
    try {
      raw = decompressBlob(bytes.subarray(from, from + loc.length), loc.compression, loc.rawLength, `chunk ${id} in ${packKey(loc.packId)}`);
    } catch (err) {
      if (err instanceof CorruptionError) throw new CorruptionError(err.message, where);
      throw err;
    }
    if (this.chunkId(raw) !== id) {
      throw new CorruptionError(`Chunk ${id} in pack ${packKey(loc.packId)} does not match its hash.`, where);
    }
    return raw;
  }

  /** A cached or new read holding the blob at `loc`; `start` is the read's offset in the pack. */
  private async fetchCovering(loc: ChunkLocation, signal?: AbortSignal): Promise<{ bytes: Buffer; start: number }> {
    const end = loc.offset + loc.length;
    const i = this.cache.findIndex((c) => c.packId === loc.packId && c.start <= loc.offset && end <= c.end);
    let entry: CachedRead;
    if (i >= 0) {
      // Move to the back: the array's order is the eviction order.
      entry = this.cache.splice(i, 1)[0] as CachedRead;
    } else {
      const range = this.rangeFor(loc);
      const bytes = range.whole ? this.fetchWhole(loc.packId, signal) : this.fetchRange(loc.packId, range, signal);
      entry = { packId: loc.packId, start: range.whole ? 0 : range.start, end: range.whole ? Infinity : range.end, bytes };
      bytes.catch(() => {
        const at = this.cache.indexOf(entry);
        if (at >= 0) this.cache.splice(at, 1);
      });
    }
    this.cache.push(entry);
    while (this.cache.length > this.cachedReads) this.cache.shift();
    return { bytes: await entry.bytes, start: entry.start };
  }

  /** The planned read that holds the blob at `loc`: its pack's plan, or the blob alone when it was never declared. */
  private rangeFor(loc: ChunkLocation): PlannedRange {
    const end = loc.offset + loc.length;
    if (this.storage.wholeObjectReads) return { start: 0, end, whole: true };
    const plan = this.plan(loc.packId);
    return plan.find((r) => r.whole || (r.start <= loc.offset && end <= r.end)) ?? { start: loc.offset, end, whole: false };
  }

  private plan(packId: string): PlannedRange[] {
    let plan = this.plans.get(packId);
    if (plan) return plan;
    plan = planPackReads([...(this.wanted.get(packId)?.values() ?? [])], this.packs?.get(packId)?.length);
    this.plans.set(packId, plan);
    return plan;
  }

  private async fetchWhole(packId: string, signal?: AbortSignal): Promise<Buffer> {
    const key = packKey(packId);
    try {
      // No whole-pack checksum here: each blob is checked against its own id in read(), so damage
      // elsewhere in this pack does not stop blobs that are intact.
      return await this.storage.get(key, signal);
    } catch (err) {
      if (err instanceof NotFoundError) {
        throw new CorruptionError(`Pack ${key} is missing from ${this.storage.location}. ${this.missingHint}`, { objects: [key] });
      }
      throw err;
    }
  }

  private async fetchRange(packId: string, range: PlannedRange, signal?: AbortSignal): Promise<Buffer> {
    const key = packKey(packId);
    try {
      const bytes = await this.storage.getRange(key, range.start, range.end - range.start, signal);
      if (bytes.length === range.end - range.start) return bytes;
    } catch (err) {
      if (err instanceof NotFoundError) {
        throw new CorruptionError(`Pack ${key} is missing from ${this.storage.location}. ${this.missingHint}`, { objects: [key] });
      }
      if (err instanceof CancelledError || signal?.aborted) throw err;
    }
    // A range past the pack's end fails as a whole (storage answers "shorter than expected", or
    // fewer bytes); the whole pack then tells which blobs are intact, so that only those past the
    // cut fail (read() checks each blob against the length it got). A failure that is not about
    // the range fails the whole read too and is thrown from there; a read that now succeeds is
    // used (every blob is still checked against its id).
    return (await this.fetchWhole(packId, signal)).subarray(range.start);
  }
}

/**
 * A reader over a loaded index (ChunkIndex.load, not strict): its chunks and pack lengths, and,
 * when index documents were skipped as damaged, a hint naming them for "not in any index" and
 * "missing pack" errors. What restore, dump and the SQL export each built by hand.
 */
export function readerForIndex(
  storage: Storage,
  loaded: Pick<LoadedIndex, 'chunks' | 'damaged' | 'packs'>,
  chunkId: (raw: Uint8Array) => string,
  cachedReads?: number,
): ChunkReader {
  const { chunks, damaged, packs } = loaded;
  const options: ChunkReaderOptions = { packs };
  if (cachedReads !== undefined) options.cachedReads = cachedReads;
  if (damaged.length > 0) options.missingHint = `Damaged index document(s): ${damaged.map((d) => d.id).join(', ')}; run cairn repair to rebuild the index from the packs.`;
  return new ChunkReader(storage, chunks, chunkId, options);
}

/**
 * The reads that fetch `blobs` (the wanted blobs of one pack, any order) from a pack of
 * `packLength` bytes (undefined: unknown). The whole pack when at least half of it is wanted;
 * otherwise ranges in offset order, a neighbour merged into a range while the range stays at
 * most twice the wanted bytes in it and at most MAX_RANGE_BYTES long (a blob longer than that is
 * a range of its own). Every read thus holds at most twice the wanted bytes it serves.
 */
export function planPackReads(blobs: readonly { offset: number; length: number }[], packLength?: number): PlannedRange[] {
  const sorted = [...blobs].sort((a, b) => a.offset - b.offset);
  const wantedBytes = sorted.reduce((n, b) => n + b.length, 0);
  if (packLength !== undefined && packLength > 0 && wantedBytes * 2 >= packLength) return [{ start: 0, end: packLength, whole: true }];
  const ranges: PlannedRange[] = [];
  let current: PlannedRange | undefined;
  let need = 0;
  for (const b of sorted) {
    const end = b.offset + b.length;
    if (current && b.offset < current.end) {
      // Overlapping entries (one blob listed under two ids cannot happen, but stay safe).
      need += Math.max(0, end - current.end);
      current.end = Math.max(current.end, end);
      continue;
    }
    if (current && end - current.start <= MAX_RANGE_BYTES && end - current.start <= 2 * (need + b.length)) {
      current.end = end;
      need += b.length;
      continue;
    }
    current = { start: b.offset, end, whole: false };
    need = b.length;
    ranges.push(current);
  }
  return ranges;
}

/**
 * The data of one collection as a stream, reading ahead a few chunks so that fetching and
 * decompressing overlap with the consumer's work. Declares `ids` to the reader first (ChunkReader.want).
 */
export async function* readChunks(reader: ChunkReader, ids: readonly string[], signal?: AbortSignal, readAhead = 4): AsyncGenerator<Buffer> {
  reader.want(ids);
  const inFlight: Promise<Buffer>[] = [];
  let next = 0;
  const fill = (): void => {
    while (inFlight.length < readAhead && next < ids.length) {
      const p = reader.read(ids[next++] as string, signal);
      p.catch(() => undefined); // observed when awaited below; avoids an unhandled rejection meanwhile
      inFlight.push(p);
    }
  };
  fill();
  while (inFlight.length > 0) {
    const chunk = await (inFlight.shift() as Promise<Buffer>);
    fill();
    yield chunk;
  }
}
