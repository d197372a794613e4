/**
 * The decrypting view of an encrypted repository: a Storage over the backend that seals every
 * object it writes and opens (authenticates) every object it reads, so that the rest of cairn
 * (packs, indexes, manifests, locks, claims) works unchanged and never sees ciphertext. Only the
 * config and the key slots (keys/) pass through as they are: they are read before any key is known.
 */
import { CorruptionError } from '../core/errors.js';
import type { ObjectInfo, Payload, PutOptions, Storage } from '../storage/types.js';
import { SEALED_OVERHEAD, sealParts, unseal } from './crypto.js';

/** Keys stored in plain text: what a reader needs before it has a key. */
export function isPlainKey(key: string): boolean {
  return key === 'config' || key.startsWith('keys/');
}

export class EncryptedStorage implements Storage {
  readonly location: string;
  readonly atomicCreate: boolean;
  /** Objects are sealed whole, so a range of one costs reading (and opening) all of it. */
  readonly wholeObjectReads = true;
  readonly linksOutside?: (key: string) => Promise<boolean>;

  constructor(
    readonly inner: Storage,
    private readonly dataKey: Buffer,
  ) {
    this.location = inner.location;
    this.atomicCreate = inner.atomicCreate;
    if (inner.linksOutside) this.linksOutside = inner.linksOutside.bind(inner);
  }

  /**
   * Seals part by part into new parts (no concatenated copy of the plaintext); the plaintext is
   * not referenced from here once sealed, so a caller that let go of it frees it during the upload.
   */
  put(key: string, data: Payload, options?: PutOptions): Promise<void> {
    return this.inner.put(key, isPlainKey(key) ? data : sealParts(this.dataKey, data, key), options);
  }

  async get(key: string, signal?: AbortSignal): Promise<Buffer> {
    const bytes = await this.inner.get(key, signal);
    return isPlainKey(key) ? bytes : unseal(this.dataKey, bytes, key, `Object ${key}`);
  }

  /**
   * A range of the plaintext. Objects are sealed whole (one authentication tag), so the whole
   * object is read and opened (`wholeObjectReads`: ChunkReader then fetches packs whole).
   */
  async getRange(key: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    if (isPlainKey(key)) return this.inner.getRange(key, offset, length, signal);
    const plain = await this.get(key, signal);
    if (offset + length > plain.length) {
      throw new CorruptionError(`Object ${key} is shorter than expected (wanted bytes ${offset}-${offset + length}, it holds ${plain.length}).`, { objects: [key] });
    }
    return plain.subarray(offset, offset + length);
  }

  /** Sizes are the plaintext's, as the rest of cairn expects (the index records plaintext lengths). */
  async *list(prefix: string, signal?: AbortSignal): AsyncIterable<ObjectInfo> {
    for await (const info of this.inner.list(prefix, signal)) {
      yield isPlainKey(info.key) ? info : { ...info, size: Math.max(0, info.size - SEALED_OVERHEAD) };
    }
  }

  delete(key: string): Promise<void> {
    return this.inner.delete(key);
  }

  exists(key: string): Promise<boolean> {
    return this.inner.exists(key);
  }
}
