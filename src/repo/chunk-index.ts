import type { CompressionAlgorithm, IndexDocument } from '../core/schemas.js';
import { IndexDocumentSchema, FORMAT_VERSION } from '../core/schemas.js';
import type { Storage } from '../storage/types.js';
import { throwIfAborted } from '../core/errors.js';
import { decodeMetadata, encodeMetadata } from './metadata.js';
import { sha256Hex } from './hash.js';
import { mapLimit } from './concurrency.js';

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

/** A loaded set of index documents, minus those a later prune superseded. */
export interface LoadedIndex {
  chunks: ChunkIndex;
  /** Ids of the live index documents. */
  documentIds: string[];
  /** Ids of documents that a newer one supersedes (left behind by an interrupted prune). */
  supersededIds: string[];
  /** Blob lists of every indexed pack. */
  packs: Map<string, { length: number; blobs: IndexDocument['packs'][number]['blobs'] }>;
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

  static async load(storage: Storage, signal?: AbortSignal): Promise<LoadedIndex> {
    const ids: string[] = [];
    for await (const info of storage.list('index/', signal)) ids.push(info.key.slice('index/'.length));
    const docs = await mapLimit(ids, 8, async (id) => ({
      id,
      doc: decodeMetadata(await storage.get(indexKey(id), signal), IndexDocumentSchema, `Index ${indexKey(id)}`),
    }));
    throwIfAborted(signal);
    const superseded = new Set(docs.flatMap((d) => d.doc.supersedes));
    const chunks = new ChunkIndex();
    const packs: LoadedIndex['packs'] = new Map();
    const live = docs.filter((d) => !superseded.has(d.id));
    for (const { doc } of live) {
      for (const pack of doc.packs) {
        packs.set(pack.id, { length: pack.length, blobs: pack.blobs });
        for (const b of pack.blobs) {
          chunks.add(b.id, { packId: pack.id, offset: b.offset, length: b.length, rawLength: b.rawLength, compression: b.compression });
        }
      }
    }
    return {
      chunks,
      packs,
      documentIds: live.map((d) => d.id),
      supersededIds: docs.filter((d) => superseded.has(d.id)).map((d) => d.id),
    };
  }
}

/** Writes one index document; its name is the hash of its content. Returns the id. */
export async function writeIndexDocument(
  storage: Storage,
  packs: IndexDocument['packs'],
  supersedes: string[] = [],
  signal?: AbortSignal,
): Promise<string> {
  const doc: IndexDocument = { formatVersion: FORMAT_VERSION, supersedes, packs };
  const bytes = encodeMetadata(doc);
  const id = sha256Hex(bytes);
  await storage.put(indexKey(id), bytes, { signal });
  return id;
}
