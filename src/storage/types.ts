/**
 * The small interface every repository backend implements. Objects are immutable once written:
 * the repository never rewrites a key, it writes new ones and deletes old ones.
 */
export interface ObjectInfo {
  /** Key relative to the repository root, "/"-separated, e.g. "data/ab/ab12…". */
  key: string;
  size: number;
}

export interface PutOptions {
  /**
   * Fail with ConflictError if the key exists. Backends honour it atomically where the medium
   * allows (link() on a filesystem); elsewhere it is a best-effort check, so correctness never
   * depends on it.
   */
  ifNotExists?: boolean;
  signal?: AbortSignal;
}

export interface Storage {
  /** Where the repository lives, safe to print: never contains a secret. */
  readonly location: string;
  put(key: string, data: Uint8Array, options?: PutOptions): Promise<void>;
  /** Whole object; NotFoundError when absent. */
  get(key: string, signal?: AbortSignal): Promise<Buffer>;
  /** `length` bytes from `offset`; NotFoundError when absent. */
  getRange(key: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer>;
  /** Every object whose key starts with `prefix` (a folder such as "data/"), in no set order. */
  list(prefix: string, signal?: AbortSignal): AsyncIterable<ObjectInfo>;
  /** Idempotent: deleting a missing key succeeds. */
  delete(key: string): Promise<void>;
  exists(key: string): Promise<boolean>;
}
