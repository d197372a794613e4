import type { CompressionSettings, IndexDocument } from '../core/schemas.js';
import { throwIfAborted } from '../core/errors.js';
import type { Storage } from '../storage/types.js';
import type { ChunkIndex } from './chunk-index.js';
import { compressBlob } from './compression.js';
import { sha256Hex } from './hash.js';
import { PackBuilder, packKey } from './pack.js';

export interface WrittenChunk {
  id: string;
  /** Bytes the chunk occupies in the repository (compressed). */
  storedBytes: number;
  /** False when the repository (or this writer) already held the chunk. */
  isNew: boolean;
}

export interface ChunkWriterOptions {
  packSize: number;
  compression: CompressionSettings;
  /** Packs being uploaded at once; each holds up to packSize bytes in memory. */
  maxUploads?: number;
  signal?: AbortSignal;
}

/**
 * Deduplicates, compresses and packs chunks. A chunk already in the index costs nothing but its
 * id; a new one goes into the current pack, which is uploaded when it reaches the target size.
 * Nothing written here is visible until the caller writes an index and a manifest.
 */
export class ChunkWriter {
  private builder = new PackBuilder();
  private readonly pending = new Map<string, number>();
  private readonly uploads = new Set<Promise<void>>();
  private readonly written: IndexDocument['packs'] = [];
  private uploadError: unknown;

  constructor(
    private readonly storage: Storage,
    private readonly index: ChunkIndex,
    private readonly options: ChunkWriterOptions,
  ) {}

  /** Packs uploaded so far (complete after flush()). */
  get packs(): IndexDocument['packs'] {
    return this.written;
  }

  async write(chunk: Buffer): Promise<WrittenChunk> {
    this.check();
    const id = sha256Hex(chunk);
    const known = this.index.get(id)?.length ?? this.pending.get(id);
    if (known !== undefined) return { id, storedBytes: known, isNew: false };
    const blob = compressBlob(chunk, this.options.compression.algorithm, this.options.compression.level);
    this.builder.add(id, blob.data, chunk.length, blob.algorithm);
    this.pending.set(id, blob.data.length);
    if (this.builder.byteLength >= this.options.packSize) await this.sealPack();
    return { id, storedBytes: blob.data.length, isNew: true };
  }

  /** Uploads the last partial pack and waits for every upload. */
  async flush(): Promise<IndexDocument['packs']> {
    this.check();
    if (this.builder.blobCount > 0) await this.sealPack();
    await Promise.all(this.uploads);
    this.check();
    return this.written;
  }

  /** Best-effort removal of the packs this writer uploaded: used when a backup fails. */
  async discard(): Promise<void> {
    await Promise.allSettled(this.uploads);
    await Promise.allSettled(this.written.map((p) => this.storage.delete(packKey(p.id))));
  }

  private check(): void {
    if (this.uploadError) throw this.uploadError;
    throwIfAborted(this.options.signal);
  }

  private async sealPack(): Promise<void> {
    const pack = this.builder.finish();
    this.builder = new PackBuilder();
    const maxUploads = this.options.maxUploads ?? 2;
    while (this.uploads.size >= maxUploads) await Promise.race(this.uploads);
    this.check();
    const upload = this.storage
      .put(packKey(pack.id), pack.bytes, { signal: this.options.signal })
      .then(
        () => {
          this.written.push({ id: pack.id, length: pack.bytes.length, blobs: pack.blobs });
        },
        (err: unknown) => {
          this.uploadError ??= err;
        },
      )
      .finally(() => this.uploads.delete(upload));
    this.uploads.add(upload);
  }
}
