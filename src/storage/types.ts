/**
 * The small interface every repository backend implements. Objects are immutable once written:
 * the repository never rewrites a key, it writes new ones and deletes old ones. (Lock objects are
 * the one exception: a holder rewrites its own lock in place so that its storage time advances.)
 */
export interface ObjectInfo {
  /** Key relative to the repository root, "/"-separated, e.g. "data/ab/ab12…". */
  key: string;
  size: number;
  /**
   * When the object was last written, on the *storage's* clock (file mtime, S3 LastModified,
   * Azure Last-Modified, GCS `updated`). Compare it only with other `modified` values from the
   * same storage, never with the local clock, which may be off. Precision may be one second.
   */
  modified: Date;
}

/**
 * What `put` writes: one byte array, or a list of them stored one after the other as one object
 * (a pack is its blobs and its header). Writing the parts as they are, instead of concatenating
 * them first, keeps a second whole copy of a 16–128 MiB pack out of memory; a backend streams or
 * writes them in order. The parts must not change until the put has settled (a retry sends
 * them again). Helpers: payload.ts.
 */
export type Payload = Uint8Array | readonly Uint8Array[];

export interface PutOptions {
  /**
   * Fail with ConflictError if the key exists. Atomic where `Storage.atomicCreate` is true (link()
   * on a filesystem, If-None-Match on Azure, a generation precondition on GCS); elsewhere a
   * best-effort check: use `createExclusive` (common.ts) when two writers may race.
   */
  ifNotExists?: boolean;
  signal?: AbortSignal;
}

export interface Storage {
  /** Where the repository lives, safe to print: never contains a secret. */
  readonly location: string;
  /**
   * Whether `put(…, { ifNotExists: true })` is atomic: of racing create-only writers of one key,
   * exactly one wins. False where the service (or a compatible one) may ignore the condition.
   */
  readonly atomicCreate: boolean;
  /**
   * Set where `getRange` has to read the whole object anyway (an encrypted repository's view:
   * objects are sealed whole, one authentication tag each). Readers that want several ranges of
   * one object then read it once, whole. Absent: ranges are read as ranges.
   */
  readonly wholeObjectReads?: boolean;
  /** Stores `data` (a byte array, or parts stored as their concatenation) under `key`, whole or not at all. */
  put(key: string, data: Payload, options?: PutOptions): Promise<void>;
  /** Whole object; NotFoundError when absent. */
  get(key: string, signal?: AbortSignal): Promise<Buffer>;
  /** `length` bytes from `offset`; NotFoundError when absent. */
  getRange(key: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer>;
  /** Every object whose key starts with `prefix` (a folder such as "data/"), in no set order. */
  list(prefix: string, signal?: AbortSignal): AsyncIterable<ObjectInfo>;
  /** Idempotent: deleting a missing key succeeds. */
  delete(key: string): Promise<void>;
  exists(key: string): Promise<boolean>;
  /**
   * Whether the object is reached through a symbolic link to somewhere outside the storage's
   * root (file-system storage only; others have no links): what is there may be someone else's
   * file, which cairn must never delete or move (docs/security.md). Absent: never.
   */
  linksOutside?(key: string): Promise<boolean>;
  /**
   * Set on storage that can never be written (a `.cairn` archive): the error any write would
   * get, naming `operation` ("back up into", "prune", …) and what to do instead. Checked before a
   * writing job does any work (Repository.requireWritable). Absent: writable.
   */
  readOnlyError?(operation: string): Error;
}
