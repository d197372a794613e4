import type { CompressionSettings, IndexDocument } from '../core/schemas.js';
import { throwIfAborted } from '../core/errors.js';
import type { Storage } from '../storage/types.js';
import type { ChunkIndex } from './chunk-index.js';
import type { CompressedBlob } from './compression.js';
import { CompressionPool } from './compression-pool.js';
import { PackBuilder, packKey } from './pack.js';

export interface WrittenChunk {
  id: string;
  /**
   * False when the repository (or this writer) already held the chunk. Its stored size is known
   * after flush(): see ChunkWriter.storedSize().
   */
  isNew: boolean;
}

export interface ChunkWriterOptions {
  packSize: number;
  compression: CompressionSettings;
  /** Packs being uploaded at once; each holds up to packSize bytes in memory. Default 2. */
  maxUploads?: number;
  /**
   * Bytes of packs held in memory at once: the pack being filled plus those uploading. A new
   * blob waits for an upload to end rather than go past it, except that one pack is always
   * allowed (a pack larger than the budget is filled while nothing uploads, then uploaded while
   * the next waits). Default PACK_MEMORY_BUDGET (64 MiB): 16 MiB packs keep two uploads in
   * flight beside the pack being filled; 128 MiB packs are filled and uploaded in turn.
   */
  packMemory?: number;
  /**
   * Where new chunks are compressed. The caller owns it (and closes it). Default: compress inline,
   * on the calling thread.
   */
  pool?: CompressionPool;
  /**
   * New chunks compressed or waiting to go into a pack at once; each holds about a chunk's size
   * in memory. Default: 2 × the pool's workers + 2.
   */
  maxInFlight?: number;
  signal?: AbortSignal;
  /** A chunk's id from its raw content (Repository.chunkId: SHA-256, or keyed in an encrypted repository). */
  chunkId: (raw: Uint8Array) => string;
}

interface InFlight {
  id: string;
  rawLength: number;
  /** Settles (never rejects) when the compression is done; `blob` or `error` is then set. */
  done: Promise<void>;
  settled: boolean;
  blob?: CompressedBlob;
  error?: unknown;
}

const inlinePool = new CompressionPool({ workers: 0 });

/** Default ChunkWriterOptions.packMemory. */
export const PACK_MEMORY_BUDGET = 64 * 1024 * 1024;

/**
 * Deduplicates, compresses and packs chunks. A chunk already in the index costs nothing but its
 * id; a new one is compressed (on the pool's threads, while the caller goes on) and goes into the
 * current pack, which is uploaded when it reaches the target size. Blobs enter packs in the order
 * they were written, so pack boundaries do not depend on timing.
 * Nothing written here is visible until the caller writes an index and a manifest.
 */
export class ChunkWriter {
  private builder = new PackBuilder();
  /** Stored (compressed) size of each new chunk of this writer; undefined while compressing. */
  private readonly pending = new Map<string, number | undefined>();
  private readonly inFlight: InFlight[] = [];
  private readonly uploads = new Set<Promise<void>>();
  /** Bytes of sealed packs not yet stored: uploading, or waiting for an upload slot. */
  private sealedBytes = 0;
  private readonly written: IndexDocument['packs'] = [];
  private readonly pool: CompressionPool;
  private readonly maxInFlight: number;
  private error: unknown;

  constructor(
    private readonly storage: Storage,
    private readonly index: ChunkIndex,
    private readonly options: ChunkWriterOptions,
  ) {
    this.pool = options.pool ?? inlinePool;
    this.maxInFlight = Math.max(1, options.maxInFlight ?? 2 * this.pool.size + 2);
  }

  /** Packs uploaded so far (complete after flush()). */
  get packs(): IndexDocument['packs'] {
    return this.written;
  }

  /**
   * Hashes and deduplicates a chunk; a new one is handed to the compression pool, and this
   * returns without waiting for it unless too many compressions are outstanding. The writer takes
   * `chunk` over: the caller must not use it after the call (its memory may move to a worker).
   */
  async write(chunk: Buffer): Promise<WrittenChunk> {
    this.check();
    const id = this.options.chunkId(chunk);
    if (this.index.has(id) || this.pending.has(id)) return { id, isNew: false };
    this.pending.set(id, undefined);
    const task: InFlight = { id, rawLength: chunk.length, done: Promise.resolve(), settled: false };
    task.done = this.pool.compress(chunk, this.options.compression.algorithm, this.options.compression.level, true).then(
      (blob) => {
        task.blob = blob;
        task.settled = true;
      },
      (err: unknown) => {
        task.error = err ?? new Error('Compression failed.');
        task.settled = true;
      },
    );
    this.inFlight.push(task);
    await this.drain(false);
    return { id, isNew: true };
  }

  /**
   * Bytes a chunk occupies in the repository (compressed), for every chunk this writer was given;
   * complete after flush(). Undefined for a chunk it never saw.
   */
  storedSize(id: string): number | undefined {
    return this.index.get(id)?.length ?? this.pending.get(id);
  }

  /** Waits for every compression, uploads the last partial pack and waits for every upload. */
  async flush(): Promise<IndexDocument['packs']> {
    this.check();
    await this.drain(true);
    if (this.builder.blobCount > 0) await this.sealPack();
    await Promise.all(this.uploads);
    this.check();
    return this.written;
  }

  /**
   * Stops the writer after a failure and waits until nothing it started is still running, so
   * that no upload lands after the caller released its lock. What was uploaded stays (another
   * writer may have stored the identical pack under the same name); prune removes it later.
   */
  async abandon(): Promise<void> {
    this.error ??= new Error('The chunk writer was abandoned.');
    await Promise.allSettled(this.inFlight.map((t) => t.done));
    this.inFlight.length = 0;
    await Promise.allSettled(this.uploads);
  }

  private check(): void {
    if (this.error) throw this.error;
    throwIfAborted(this.options.signal);
  }

  /**
   * Moves finished compressions, oldest first, into the current pack (sealing it when full).
   * Waits for the oldest while too many are outstanding, or for all of them when `all` is set.
   */
  private async drain(all: boolean): Promise<void> {
    for (;;) {
      const head = this.inFlight[0];
      if (!head) return;
      if (!head.settled) {
        if (!all && this.inFlight.length < this.maxInFlight) return;
        await head.done;
        // Another write() may have taken it meanwhile.
        if (this.inFlight[0] !== head) continue;
      }
      // Memory for packs stays within the budget: wait for an upload to end first (with the
      // blob still at the head, so that blobs enter packs in order whoever adds them).
      const budget = this.options.packMemory ?? PACK_MEMORY_BUDGET;
      if (head.blob && this.uploads.size > 0 && this.builder.byteLength + head.blob.data.length + this.sealedBytes > budget) {
        await Promise.race(this.uploads);
        this.check();
        continue;
      }
      this.inFlight.shift();
      if (head.error !== undefined) {
        this.error ??= head.error;
        this.check();
      }
      const blob = head.blob as CompressedBlob;
      this.builder.add(head.id, blob.data, head.rawLength, blob.algorithm);
      this.pending.set(head.id, blob.data.length);
      if (this.builder.byteLength >= this.options.packSize) await this.sealPack();
      this.check();
    }
  }

  private async sealPack(): Promise<void> {
    const pack = this.builder.finish();
    this.builder = new PackBuilder();
    const { id, length, blobs } = pack;
    // Counted from now: blobs of other writers wait for it as for an upload.
    this.sealedBytes += length;
    const maxUploads = this.options.maxUploads ?? 2;
    try {
      while (this.uploads.size >= maxUploads) await Promise.race(this.uploads);
      this.check();
    } catch (err) {
      this.sealedBytes -= length;
      throw err;
    }
    // Only the put holds the parts (the callbacks below keep the id, length and blob list), so
    // they are freed when it ends, and an encrypting storage can drop the plaintext once sealed.
    const upload = this.storage
      .put(packKey(id), pack.parts, { signal: this.options.signal })
      .then(
        () => {
          this.written.push({ id, length, blobs });
        },
        (err: unknown) => {
          this.error ??= err;
        },
      )
      .finally(() => {
        this.uploads.delete(upload);
        this.sealedBytes -= length;
      });
    this.uploads.add(upload);
  }
}
