import { CorruptionError, NotFoundError, throwIfAborted } from '../core/errors.js';
import type { Storage } from '../storage/types.js';
import type { ChunkIndex } from './chunk-index.js';
import { decompressBlob } from './compression.js';
import { packKey } from './pack.js';

/**
 * Reads chunks for a restore. Every blob is checked on its own: decompressed within its
 * recorded size and hashed against its id, so damage stays contained — a flipped byte in one
 * blob fails only the collections that use that blob, never a neighbour stored in the same pack
 * (restores load into staging, so a failure still leaves the target untouched).
 * Whole packs are fetched (object stores prefer few large reads) and a few stay cached because
 * a collection's chunks are mostly stored side by side.
 */
export class ChunkReader {
  private readonly cache = new Map<string, Promise<Buffer>>();

  constructor(
    private readonly storage: Storage,
    private readonly index: ChunkIndex,
    /** A chunk's id from its raw content (Repository.chunkId: SHA-256, or keyed in an encrypted repository). */
    private readonly chunkId: (raw: Uint8Array) => string,
    private readonly cachedPacks = 4,
    /** Appended to "not in any index" errors, e.g. which index documents were damaged. */
    private readonly missingHint = 'Run cairn verify to see which backups are affected and cairn repair to rebuild the index.',
  ) {}

  async read(id: string, signal?: AbortSignal): Promise<Buffer> {
    throwIfAborted(signal);
    const loc = this.index.get(id);
    if (!loc) {
      throw new CorruptionError(`Chunk ${id} is not in any usable index of ${this.storage.location}. ${this.missingHint}`, { objects: [`chunk ${id}`] });
    }
    const pack = await this.pack(loc.packId, signal);
    if (loc.offset + loc.length > pack.length) {
      throw new CorruptionError(`Pack ${packKey(loc.packId)} is shorter than its index says.`, { objects: [packKey(loc.packId), `chunk ${id}`] });
    }
    const where = { objects: [packKey(loc.packId), `chunk ${id}`] };
    let raw: Buffer;
    try {
      raw = decompressBlob(pack.subarray(loc.offset, loc.offset + loc.length), loc.compression, loc.rawLength, `chunk ${id} in ${packKey(loc.packId)}`);
    } catch (err) {
      if (err instanceof CorruptionError) throw new CorruptionError(err.message, where);
      throw err;
    }
    if (this.chunkId(raw) !== id) {
      throw new CorruptionError(`Chunk ${id} in pack ${packKey(loc.packId)} does not match its hash.`, where);
    }
    return raw;
  }

  private pack(packId: string, signal?: AbortSignal): Promise<Buffer> {
    let entry = this.cache.get(packId);
    if (entry) {
      // Move to the back: the map's order is the eviction order.
      this.cache.delete(packId);
      this.cache.set(packId, entry);
      return entry;
    }
    entry = this.fetchPack(packId, signal);
    entry.catch(() => this.cache.delete(packId));
    this.cache.set(packId, entry);
    while (this.cache.size > this.cachedPacks) {
      const oldest = this.cache.keys().next().value as string;
      this.cache.delete(oldest);
    }
    return entry;
  }

  private async fetchPack(packId: string, signal?: AbortSignal): Promise<Buffer> {
    const key = packKey(packId);
    let bytes: Buffer;
    try {
      bytes = await this.storage.get(key, signal);
    } catch (err) {
      if (err instanceof NotFoundError) {
        throw new CorruptionError(`Pack ${key} is missing from ${this.storage.location}. ${this.missingHint}`, { objects: [key] });
      }
      throw err;
    }
    // No whole-pack checksum here: each blob is checked against its own id in read(), so damage
    // elsewhere in this pack does not stop blobs that are intact.
    return bytes;
  }
}

/**
 * The data of one collection as a stream, reading ahead a few chunks so that fetching and
 * decompressing overlap with the consumer's work.
 */
export async function* readChunks(reader: ChunkReader, ids: readonly string[], signal?: AbortSignal, readAhead = 4): AsyncGenerator<Buffer> {
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
