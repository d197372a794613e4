import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { CompressionAlgorithm, CompressionLevel } from '../core/schemas.js';
import { COMPRESSION_LEVELS, compressBlob, type CompressedBlob } from './compression.js';

/**
 * The worker's code, CommonJS run with `eval: true`: the worker needs no file of its own, so it
 * works the same from the TypeScript sources (tests) and from dist/. It receives the numeric
 * level (from COMPRESSION_LEVELS, in the parent) and must compress exactly like compressBlob().
 *
 * Messages in:  { id, algorithm: 'zstd' | 'gzip', level: number, raw: Uint8Array } (raw's buffer transferred)
 * Messages out: { id, data: Uint8Array, algorithm } or { id, error: string }; data's buffer is
 * transferred, and is always a buffer of its own (never a view on Node's shared Buffer pool).
 */
const WORKER_CODE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const zlib = require('node:zlib');
const zstd = require(workerData.zstdPath);
const owned = (b) => {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength) return new Uint8Array(b.buffer, 0, b.byteLength);
  const copy = new Uint8Array(b.byteLength);
  copy.set(b);
  return copy;
};
parentPort.on('message', (task) => {
  const { id, algorithm, level, raw } = task;
  try {
    const packed =
      algorithm === 'zstd'
        ? zstd.compress(raw, { compressionLevel: level })
        : zlib.gzipSync(raw, { level, strategy: zlib.constants.Z_DEFAULT_STRATEGY });
    if (packed.length >= raw.byteLength) {
      parentPort.postMessage({ id, data: raw, algorithm: 'none' }, [raw.buffer]);
    } else {
      const data = owned(packed);
      parentPort.postMessage({ id, data, algorithm }, [data.buffer]);
    }
  } catch (err) {
    parentPort.postMessage({ id, error: String((err && err.message) || err) });
  }
});
`;

type WorkerReply = { id: number; data: Uint8Array; algorithm: CompressionAlgorithm } | { id: number; error: string };

interface Task {
  resolve: (blob: CompressedBlob) => void;
  reject: (err: Error) => void;
}

interface PoolWorker {
  worker: Worker;
  tasks: Map<number, Task>;
  dead: boolean;
}

export interface CompressionPoolOptions {
  /** Worker threads; 0 compresses inline on the calling thread. Default: cores - 1, at least 1. */
  workers?: number;
}

/** Blobs smaller than this are compressed on the calling thread. */
const INLINE_BELOW = 16 * 1024;

export function defaultCompressionWorkers(): number {
  return Math.max(1, availableParallelism() - 1);
}

/**
 * Compresses blobs on a few worker threads, so that reading, chunking and hashing (main thread)
 * overlap with compression. Workers start on demand, are unreferenced while idle (they never keep
 * the process alive) and must be stopped with close().
 */
export class CompressionPool {
  readonly size: number;
  private readonly workers: PoolWorker[] = [];
  private zstdPath: string | undefined;
  private nextId = 0;
  private closed = false;

  constructor(options: CompressionPoolOptions = {}) {
    const n = options.workers ?? defaultCompressionWorkers();
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`Invalid number of compression workers: ${n}.`);
    this.size = n;
  }

  /**
   * Same result as compressBlob(). The caller keeps ownership of `raw` (it is copied), unless
   * `transfer` is set: the caller then gives `raw` up (it must not read or write it afterwards),
   * and when raw is the whole of its own ArrayBuffer (a chunk from the chunker) that buffer moves
   * to the worker as is, saving an allocation and a copy of every compressed byte.
   */
  compress(raw: Uint8Array, algorithm: CompressionAlgorithm, level: CompressionLevel, transfer = false): Promise<CompressedBlob> {
    if (this.closed) return Promise.reject(new Error('The compression pool is closed.'));
    // A small blob compresses in less time than a round trip to a thread takes (10,000 small
    // tables make 10,000 of them).
    if (this.size === 0 || algorithm === 'none' || raw.byteLength < INLINE_BELOW) {
      try {
        return Promise.resolve(compressBlob(raw, algorithm, level));
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
    }
    const numericLevel = COMPRESSION_LEVELS[algorithm][level];
    // A chunk may be a view on a larger (shared) buffer: transfer only a buffer of our own.
    const copy = transfer && ownsWholeBuffer(raw) ? raw : copyOf(raw);
    const w = this.pick();
    const id = this.nextId++;
    return new Promise<CompressedBlob>((resolve, reject) => {
      w.tasks.set(id, { resolve, reject });
      if (w.tasks.size === 1) w.worker.ref();
      try {
        w.worker.postMessage({ id, algorithm, level: numericLevel, raw: copy }, [copy.buffer as ArrayBuffer]);
      } catch (err) {
        this.settle(w, id);
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  /** Stops the workers; compressions still pending are rejected. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const workers = this.workers.splice(0);
    for (const w of workers) this.fail(w, new Error('The compression pool was closed before the compression finished.'));
    await Promise.allSettled(workers.map((w) => w.worker.terminate()));
  }

  /** The least busy worker; a new one while fewer than `size` run and all are busy. */
  private pick(): PoolWorker {
    let best: PoolWorker | undefined;
    for (const w of this.workers) if (!best || w.tasks.size < best.tasks.size) best = w;
    if (best && (best.tasks.size === 0 || this.workers.length >= this.size)) return best;
    return this.spawn();
  }

  private spawn(): PoolWorker {
    this.zstdPath ??= createRequire(import.meta.url).resolve('zstd-napi');
    const worker = new Worker(WORKER_CODE, { eval: true, workerData: { zstdPath: this.zstdPath } });
    worker.unref();
    const w: PoolWorker = { worker, tasks: new Map(), dead: false };
    worker.on('message', (reply: WorkerReply) => {
      const task = this.settle(w, reply.id);
      if (!task) return;
      if ('error' in reply) task.reject(new Error(`Compression failed: ${reply.error}`));
      else task.resolve({ data: Buffer.from(reply.data.buffer, reply.data.byteOffset, reply.data.byteLength), algorithm: reply.algorithm });
    });
    worker.on('error', (err: Error) => this.fail(w, new Error(`A compression worker failed: ${err.message}`, { cause: err })));
    worker.on('exit', (code) => this.fail(w, new Error(`A compression worker stopped unexpectedly (exit code ${code}).`)));
    this.workers.push(w);
    return w;
  }

  private settle(w: PoolWorker, id: number): Task | undefined {
    const task = w.tasks.get(id);
    w.tasks.delete(id);
    if (w.tasks.size === 0 && !w.dead) w.worker.unref();
    return task;
  }

  /** Retires a worker (crashed, exited or closed) and rejects what it still had to do. */
  private fail(w: PoolWorker, err: Error): void {
    if (!w.dead) {
      w.dead = true;
      const i = this.workers.indexOf(w);
      if (i >= 0) this.workers.splice(i, 1);
      w.worker.unref();
      if (!this.closed) void w.worker.terminate().catch(() => undefined);
    }
    const tasks = [...w.tasks.values()];
    w.tasks.clear();
    for (const t of tasks) t.reject(err);
  }
}

/** Whether `b` spans its whole ArrayBuffer (not a view on Node's shared pool or a larger buffer). */
function ownsWholeBuffer(b: Uint8Array): boolean {
  return b.buffer instanceof ArrayBuffer && b.byteOffset === 0 && b.byteLength === b.buffer.byteLength;
}

function copyOf(raw: Uint8Array): Uint8Array {
  // allocUnsafe: every byte is overwritten at once, zero-filling first would be wasted work.
  // Large sizes never come from Buffer's shared pool, so the copy owns its ArrayBuffer.
  const copy = Buffer.allocUnsafeSlow(raw.byteLength);
  copy.set(raw);
  return copy;
}
