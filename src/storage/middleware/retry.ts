import { ConflictError, throwIfAborted } from '../../core/errors.js';
import { sleep } from '../../core/sleep.js';
import { holdsBytes } from '../common.js';
import { isTransient } from '../errors.js';
import type { ObjectInfo, Storage } from '../types.js';
import { StorageMiddleware, type StorageCall } from './wrapper.js';

/** Attempts per operation, the first included (as the S3 and GCS backends' SDK budgets). */
export const DEFAULT_RETRY_ATTEMPTS = 6;

export interface RetryOptions {
  /** Attempts per operation, the first included; 1 turns retries off. Default 6. */
  attempts?: number;
  /** Backoff with full jitter: before attempt n+1 a pause drawn from [0, min(maxDelayMs, baseDelayMs · 2^n)) ms. Default 100. */
  baseDelayMs?: number;
  /** Default 20 000 ms. */
  maxDelayMs?: number;
  /** Which failures are worth another attempt. Default `isTransient` (a TransientStorageError). */
  retryable?: (err: unknown) => boolean;
  /** Called before each pause (logging, tests). */
  onRetry?: (event: { op: StorageCall['op']; key: string; attempt: number; delayMs: number; error: unknown }) => void;
  /** Random numbers in [0, 1) for the jitter (tests pass a seeded one). */
  random?: () => number;
}

/**
 * Retries with exponential backoff around any backend, as restic's and kopia's retrying backends:
 * an operation that fails with a transient error (see TransientStorageError) is repeated up to
 * `attempts` times, with a random pause that doubles each time. It stops at once on a permanent
 * error (anything else) and when the caller's signal aborts, also mid-pause (CancelledError).
 *
 * Repeating is safe because the repository never rewrites a key with other bytes: a put is
 * repeated with the same bytes, delete and exists are idempotent. A create-only put
 * (`ifNotExists`) whose first attempt landed but whose answer was lost meets its own object on
 * the next attempt: a ConflictError then is success when the object holds exactly our bytes.
 * A listing that breaks is started again, and the keys it already gave are not given twice.
 */
export class RetryStorage extends StorageMiddleware {
  private readonly attempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly retryable: (err: unknown) => boolean;
  private readonly random: () => number;

  constructor(
    inner: Storage,
    private readonly options: RetryOptions = {},
  ) {
    super(inner);
    this.attempts = Math.max(1, Math.floor(options.attempts ?? DEFAULT_RETRY_ATTEMPTS));
    this.baseDelayMs = options.baseDelayMs ?? 100;
    this.maxDelayMs = options.maxDelayMs ?? 20_000;
    this.retryable = options.retryable ?? isTransient;
    this.random = options.random ?? Math.random;
  }

  protected async around<T>(call: StorageCall, run: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      throwIfAborted(call.signal);
      try {
        return await run();
      } catch (err) {
        if (attempt > 1 && call.op === 'put' && call.put?.ifNotExists && err instanceof ConflictError && call.data) {
          if (await holdsBytes(this.inner, call.key, call.data)) return undefined as T;
        }
        await this.pause(call, attempt, err);
      }
    }
  }

  protected override async *aroundList(call: StorageCall, run: () => AsyncIterable<ObjectInfo>): AsyncIterable<ObjectInfo> {
    const given = new Set<string>();
    for (let attempt = 1; ; attempt++) {
      throwIfAborted(call.signal);
      try {
        for await (const item of run()) {
          if (given.has(item.key)) continue;
          given.add(item.key);
          yield item;
        }
        return;
      } catch (err) {
        await this.pause(call, attempt, err);
      }
    }
  }

  /** Rethrows `err` unless another attempt is due; else waits before it (CancelledError on abort). */
  private async pause(call: StorageCall, attempt: number, err: unknown): Promise<void> {
    throwIfAborted(call.signal);
    if (attempt >= this.attempts || !this.retryable(err)) throw err;
    const delayMs = this.random() * Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** attempt);
    this.options.onRetry?.({ op: call.op, key: call.key, attempt, delayMs, error: err });
    await sleep(delayMs, call.signal);
  }
}
