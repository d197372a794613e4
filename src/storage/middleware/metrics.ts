import { payloadLength } from '../payload.js';
import type { ObjectInfo, Storage } from '../types.js';
import { STORAGE_OPS, StorageMiddleware, type StorageCall, type StorageOp } from './wrapper.js';

/** What one kind of operation cost so far. */
export interface OpMetrics {
  /** Calls made (a listing counts once). */
  calls: number;
  /** Calls that failed (a listing that broke midway included). */
  errors: number;
  /** Bytes sent (put) or received (get, getRange). */
  bytes: number;
  /** Objects a listing gave. */
  items: number;
  /** Time spent waiting for the backend, ms. */
  ms: number;
}

export type StorageMetrics = Record<StorageOp, OpMetrics>;

function emptyMetrics(): StorageMetrics {
  return Object.fromEntries(STORAGE_OPS.map((op) => [op, { calls: 0, errors: 0, bytes: 0, items: 0, ms: 0 }])) as StorageMetrics;
}

/**
 * Counts calls, failures, bytes and time per operation around any backend (for `--verbose`
 * summaries, benchmarks and tests). Inside RetryStorage it counts every attempt; outside it,
 * every operation.
 */
export class MetricsStorage extends StorageMiddleware {
  private metrics = emptyMetrics();

  /** @param now a clock in ms (performance.now by default; tests pass their own). */
  constructor(
    inner: Storage,
    private readonly now: () => number = () => performance.now(),
  ) {
    super(inner);
  }

  /** A copy of the counts so far. */
  snapshot(): StorageMetrics {
    return Object.fromEntries(STORAGE_OPS.map((op) => [op, { ...this.metrics[op] }])) as StorageMetrics;
  }

  /** Starts counting from zero. */
  reset(): void {
    this.metrics = emptyMetrics();
  }

  protected async around<T>(call: StorageCall, run: () => Promise<T>): Promise<T> {
    const m = this.metrics[call.op];
    const started = this.now();
    m.calls++;
    try {
      const result = await run();
      m.bytes += call.data !== undefined ? payloadLength(call.data) : Buffer.isBuffer(result) ? result.length : 0;
      return result;
    } catch (err) {
      m.errors++;
      throw err;
    } finally {
      m.ms += this.now() - started;
    }
  }

  protected override async *aroundList(call: StorageCall, run: () => AsyncIterable<ObjectInfo>): AsyncIterable<ObjectInfo> {
    const m = this.metrics.list;
    m.calls++;
    // Time waiting for the backend only, not what the caller spends between items.
    const iterator = run()[Symbol.asyncIterator]();
    let done = false;
    try {
      for (;;) {
        const started = this.now();
        let next: IteratorResult<ObjectInfo>;
        try {
          next = await iterator.next();
        } catch (err) {
          done = true;
          m.errors++;
          throw err;
        } finally {
          m.ms += this.now() - started;
        }
        if (next.done) {
          done = true;
          return;
        }
        m.items++;
        yield next.value;
      }
    } finally {
      // The caller stopped early: let the backend close its listing.
      if (!done) await iterator.return?.();
    }
  }
}
