import type { ObjectInfo, Payload, PutOptions, Storage } from '../types.js';

/** The Storage operations a middleware sees. */
export type StorageOp = 'put' | 'get' | 'getRange' | 'list' | 'delete' | 'exists' | 'linksOutside';

export const STORAGE_OPS: readonly StorageOp[] = ['put', 'get', 'getRange', 'list', 'delete', 'exists', 'linksOutside'];

/** One call as a middleware sees it. */
export interface StorageCall {
  op: StorageOp;
  /** The key, or the prefix for `list`. */
  key: string;
  /** The caller's signal (put, get, getRange, list); delete, exists and linksOutside take none. */
  signal?: AbortSignal;
  /** The bytes written, for `put` (held until the call settles, so a retry can send them again). */
  data?: Payload;
  /** The put's options, for `put`. */
  put?: PutOptions;
}

/**
 * The base of a storage middleware: a Storage around another one (`inner`), which sends every
 * call through one hook, `around`, and every listing through `aroundList`. Middleware stack:
 * `new RetryStorage(new MetricsStorage(backend))` retries and counts each attempt.
 *
 * `location`, `atomicCreate` and `wholeObjectReads` are the inner storage's; `linksOutside` exists exactly when the
 * inner storage has it (callers test for it).
 */
export abstract class StorageMiddleware implements Storage {
  readonly location: string;
  readonly atomicCreate: boolean;
  readonly wholeObjectReads?: boolean;
  readonly linksOutside?: (key: string) => Promise<boolean>;

  constructor(readonly inner: Storage) {
    this.location = inner.location;
    this.atomicCreate = inner.atomicCreate;
    if (inner.wholeObjectReads) this.wholeObjectReads = true;
    const links = inner.linksOutside?.bind(inner);
    if (links) this.linksOutside = (key) => this.around({ op: 'linksOutside', key }, () => links(key));
  }

  /** Runs one call (`run` calls the inner storage; it may be called again, to retry). */
  protected abstract around<T>(call: StorageCall, run: () => Promise<T>): Promise<T>;

  /** Wraps one listing; by default each item passes through unchanged. */
  protected aroundList(_call: StorageCall, run: () => AsyncIterable<ObjectInfo>): AsyncIterable<ObjectInfo> {
    return run();
  }

  put(key: string, data: Payload, options?: PutOptions): Promise<void> {
    return this.around({ op: 'put', key, signal: options?.signal, data, put: options }, () => this.inner.put(key, data, options));
  }

  get(key: string, signal?: AbortSignal): Promise<Buffer> {
    return this.around({ op: 'get', key, signal }, () => this.inner.get(key, signal));
  }

  getRange(key: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    return this.around({ op: 'getRange', key, signal }, () => this.inner.getRange(key, offset, length, signal));
  }

  list(prefix: string, signal?: AbortSignal): AsyncIterable<ObjectInfo> {
    return this.aroundList({ op: 'list', key: prefix, signal }, () => this.inner.list(prefix, signal));
  }

  delete(key: string): Promise<void> {
    return this.around({ op: 'delete', key }, () => this.inner.delete(key));
  }

  exists(key: string): Promise<boolean> {
    return this.around({ op: 'exists', key }, () => this.inner.exists(key));
  }
}

/** The storage below every middleware (and below nothing else): `storage` itself when it is none. */
export function innermost(storage: Storage): Storage {
  let s = storage;
  while (s instanceof StorageMiddleware) s = s.inner;
  return s;
}
