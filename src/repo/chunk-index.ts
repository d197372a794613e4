import { randomBytes } from 'node:crypto';
import type { CompressionAlgorithm, IndexDocument } from '../core/schemas.js';
import { IndexDocumentSchema, FORMAT_VERSION } from '../core/schemas.js';
import type { Storage } from '../storage/types.js';
import { CorruptionError, NotFoundError, throwIfAborted } from '../core/errors.js';
import { decodeMetadata, encodeMetadata } from './metadata.js';
import { sha256Hex } from './hash.js';
import { mapLimit } from '../core/errgroup.js';
import { sleep } from '../core/sleep.js';
import { quotePrefix } from '../core/ids.js';

export interface ChunkLocation {
  packId: string;
  offset: number;
  length: number;
  rawLength: number;
  compression: CompressionAlgorithm;
}

export function indexKey(indexId: string): string {
  return `index/${indexId}`;
}

/** A pack as listed by the storage. */
export interface PackInfo {
  size: number;
  /** The storage's own last-modified time. */
  modified: Date;
}

/** An index document that could not be used: unreadable, or its content does not match its name. */
export interface DamagedIndex {
  id: string;
  message: string;
}

/** A loaded set of index documents, minus those a later prune superseded. */
export interface LoadedIndex {
  chunks: ChunkIndex;
  /** Ids of the live index documents (readable, not superseded). */
  documentIds: string[];
  /** Ids of documents that a newer one supersedes (left behind by an interrupted prune). */
  supersededIds: string[];
  /** Index documents skipped because they are damaged (empty in strict mode, which throws). */
  damaged: DamagedIndex[];
  /**
   * Indexed packs left out because the listing given as `present` lacks them or shows them
   * shorter than indexed: their chunks are not in `chunks`.
   */
  missingPacks: string[];
  /** Blob lists of every indexed pack (of every present one, when `present` was given). */
  packs: Map<string, { length: number; blobs: IndexDocument['packs'][number]['blobs'] }>;
}

export interface IndexLoadOptions {
  signal?: AbortSignal;
  /**
   * Throw CorruptionError on the first damaged document (prune: it must never act on a partial
   * picture). Otherwise damaged documents are skipped and reported in `damaged`: a backup then
   * simply uploads their chunks again, and a restore or verify names what is unreachable.
   */
  strict?: boolean;
  /**
   * The packs the storage lists. When given, an indexed pack that is absent (or shorter than its
   * index says) contributes no chunks, so that nothing is ever deduplicated against data that is
   * gone: the next backup uploads such chunks again.
   */
  present?: Map<string, PackInfo>;
}

const PACK_KEY = /^data\/([0-9a-f]{2})\/([0-9a-f]{64})$/;

/**
 * Lists the packs under data/. Keys that are not `data/xx/<64 hex>` with xx the id's first two
 * characters are returned in `foreign` and never treated as packs (nor deleted).
 */
export async function listPacks(storage: Storage, signal?: AbortSignal): Promise<{ packs: Map<string, PackInfo>; foreign: string[] }> {
  const packs = new Map<string, PackInfo>();
  const foreign: string[] = [];
  for await (const info of storage.list('data/', signal)) {
    const m = PACK_KEY.exec(info.key);
    if (!m || !(m[2] as string).startsWith(m[1] as string)) {
      foreign.push(info.key);
      continue;
    }
    packs.set(m[2] as string, { size: info.size, modified: info.modified });
  }
  return { packs, foreign };
}

/** In-memory map from chunk id to where its blob lives. */
export class ChunkIndex {
  private readonly map = new Map<string, ChunkLocation>();

  get size(): number {
    return this.map.size;
  }

  get(id: string): ChunkLocation | undefined {
    return this.map.get(id);
  }

  has(id: string): boolean {
    return this.map.has(id);
  }

  add(id: string, location: ChunkLocation): void {
    if (!this.map.has(id)) this.map.set(id, location);
  }

  entries(): IterableIterator<[string, ChunkLocation]> {
    return this.map.entries();
  }

  /**
   * Reads every index document. Each is checked against its name (the SHA-256 of its bytes)
   * before it is believed, so a damaged document is named as such rather than surfacing later
   * as a wrong chunk. See IndexLoadOptions for what happens to damaged documents and missing packs.
   * @throws CorruptionError in strict mode, naming the damaged index and `cairn repair`.
   */
  static async load(storage: Storage, options: IndexLoadOptions | AbortSignal = {}): Promise<LoadedIndex> {
    const opts: IndexLoadOptions = options instanceof AbortSignal ? { signal: options } : options;
    const { signal } = opts;
    const ids: string[] = [];
    for await (const info of storage.list('index/', signal)) ids.push(info.key.slice('index/'.length));
    const damaged: DamagedIndex[] = [];
    const read = await mapLimit(ids, 8, async (id, _i, signal) => {
      if (!/^[0-9a-f]{64}$/.test(id)) {
        // A name read from storage that no index can have: not read at all (it may not even be
        // addressable), quoted short, only ever deleted by repair.
        const err = new CorruptionError(`Index ${quotePrefix(indexKey(id), 80)} is not an index: its name is not a 64-hex id.`, { objects: [indexKey(id)] });
        if (opts.strict) {
          throw new CorruptionError(`${err.message} Nothing was changed. Run cairn repair, which removes it.`, { objects: [indexKey(id)] });
        }
        damaged.push({ id, message: err.message });
        return undefined;
      }
      let bytes: Buffer | undefined;
      let unreadable: CorruptionError | undefined;
      // A read that does not match the name is tried again before the document counts as
      // damaged: a storage may hand out a short body once (a connection cut, a server mid-write
      // of an identical document), and a false "damaged" makes a backup fail or prune refuse.
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          bytes = await storage.get(indexKey(id), signal);
          unreadable = undefined;
        } catch (err) {
          if (err instanceof NotFoundError) return undefined; // removed by a prune since the listing
          // An encrypted repository's document that fails authentication: damaged like one whose
          // hash does not match (and read again first, for the same reason).
          if (!(err instanceof CorruptionError)) throw err;
          unreadable = err;
          bytes = undefined;
        }
        if (bytes && sha256Hex(bytes) === id) break;
        if (attempt < 2) await sleep(50 * (attempt + 1), signal);
      }
      try {
        if (unreadable) throw unreadable;
        if (!bytes) return undefined;
        if (sha256Hex(bytes) !== id) {
          throw new CorruptionError(`Index ${indexKey(id)} is damaged: its content does not match its name.`, { objects: [indexKey(id)] });
        }
        return { id, doc: decodeMetadata(bytes, IndexDocumentSchema, `Index ${indexKey(id)}`) };
      } catch (err) {
        if (!(err instanceof CorruptionError)) throw err;
        if (opts.strict) {
          throw new CorruptionError(`${err.message} Nothing was changed. Run cairn repair to rebuild the index from the packs.`, { objects: [indexKey(id)] });
        }
        damaged.push({ id, message: err.message });
        return undefined;
      }
    }, signal);
    throwIfAborted(signal);
    const docs = read.filter((d): d is { id: string; doc: IndexDocument } => d !== undefined);
    const superseded = new Set(docs.flatMap((d) => d.doc.supersedes));
    const chunks = new ChunkIndex();
    const packs: LoadedIndex['packs'] = new Map();
    const missing = new Set<string>();
    const live = docs.filter((d) => !superseded.has(d.id));
    for (const { doc } of live) {
      for (const pack of doc.packs) {
        if (opts.present) {
          const listed = opts.present.get(pack.id);
          if (!listed || listed.size < pack.length) {
            missing.add(pack.id);
            continue;
          }
        }
        packs.set(pack.id, { length: pack.length, blobs: pack.blobs });
        for (const b of pack.blobs) {
          chunks.add(b.id, { packId: pack.id, offset: b.offset, length: b.length, rawLength: b.rawLength, compression: b.compression });
        }
      }
    }
    return {
      chunks,
      packs,
      damaged,
      missingPacks: [...missing],
      documentIds: live.map((d) => d.id),
      supersededIds: docs.filter((d) => superseded.has(d.id)).map((d) => d.id),
    };
  }

  /** The index as a backup or copy should see it: damaged documents and missing packs left out. */
  static async loadUsable(storage: Storage, signal?: AbortSignal): Promise<LoadedIndex> {
    const { packs } = await listPacks(storage, signal);
    return ChunkIndex.load(storage, { ...(signal ? { signal } : {}), present: packs });
  }
}

/**
 * Writes one index document; its name is the hash of its content. Returns the id. Every document
 * carries a random nonce, so no two writes ever share a name: a name that some document
 * supersedes is never given to a new one, which readers would then ignore (the same packs
 * written again after a prune removed them and their index would otherwise be invisible).
 */
export async function writeIndexDocument(
  storage: Storage,
  packs: IndexDocument['packs'],
  supersedes: string[] = [],
  signal?: AbortSignal,
): Promise<string> {
  const doc: IndexDocument = { formatVersion: FORMAT_VERSION, supersedes, nonce: randomBytes(16).toString('hex'), packs };
  const bytes = encodeMetadata(doc);
  const id = sha256Hex(bytes);
  await storage.put(indexKey(id), bytes, { signal });
  return id;
}
