import { CairnError, CancelledError, StorageError, throwIfAborted } from '../core/errors.js';
import { normalizePrefix, readExactRange } from './common.js';

/** An inclusive byte range, as HTTP Range headers and the SDKs take it. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * What the object-store backends (S3, Azure, GCS) do alike: get and getRange over one
 * `readBytes`, and the first steps of mapping an SDK error. A backend implements the SDK calls
 * and `describeError`, which turns an SDK failure into a CairnError naming the fix.
 */
export abstract class ObjectStore {
  /** Where the repository lives, safe to print. */
  readonly location: string;
  /** The folder inside the bucket or container: "" or ending in "/". */
  protected readonly prefix: string;
  /** Objects per listing page. */
  protected readonly listPageSize: number;
  /** The bucket or container the repository is in. */
  protected readonly holder: { kind: 'bucket' | 'container'; name: string };
  /** Whether a custom endpoint was given (an emulator, a compatible server), for messages. */
  protected readonly customEndpoint: boolean;

  /**
   * @param location where the repository lives, safe to print
   * @param options the backend's: folder, listing page size, custom endpoint
   * @param maxListPageSize the service's cap on a listing page (and the default)
   */
  constructor(
    location: string,
    holder: { kind: 'bucket' | 'container'; name: string },
    options: { prefix?: string; listPageSize?: number; endpoint?: string },
    maxListPageSize: number,
  ) {
    this.location = location;
    this.holder = holder;
    this.customEndpoint = options.endpoint !== undefined;
    this.prefix = normalizePrefix(options.prefix ?? '');
    this.listPageSize = Math.min(maxListPageSize, Math.max(1, options.listPageSize ?? maxListPageSize));
  }

  abstract exists(key: string): Promise<boolean>;

  /** The whole object or an inclusive range of it, as the SDK returns it; SDK errors unmapped. */
  protected abstract readBytes(key: string, range: ByteRange | undefined, signal?: AbortSignal): Promise<Buffer>;

  /** Whether a failed range read means the range starts past the end (HTTP 416): an empty answer. */
  protected abstract pastEnd(err: unknown): boolean;

  /** An SDK failure (not a CairnError, not a cancellation) as a CairnError saying what to fix. */
  protected abstract describeError(err: unknown, action: string, key: string | undefined): Error;

  async get(key: string, signal?: AbortSignal): Promise<Buffer> {
    throwIfAborted(signal);
    try {
      return await this.readBytes(key, undefined, signal);
    } catch (err) {
      throw this.mapError(err, `read ${key}`, key, signal);
    }
  }

  async getRange(key: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    throwIfAborted(signal);
    return readExactRange(this, key, offset, length, async () => {
      try {
        return await this.readBytes(key, { start: offset, end: offset + length - 1 }, signal);
      } catch (err) {
        if (this.pastEnd(err)) return Buffer.alloc(0);
        throw this.mapError(err, `read ${key}`, key, signal);
      }
    });
  }

  /** The error for a bucket or container that does not exist, saying what to fix. */
  protected missingHolder(action: string, err: unknown): StorageError {
    const { kind, name } = this.holder;
    return new StorageError(
      `Cannot ${action}: ${kind} "${name}" does not exist${this.customEndpoint ? ' on that endpoint' : ''}. Create it, or fix the ${kind} name in ${this.location}.`,
      { cause: err },
    );
  }

  /**
   * Any failure as a CairnError: ours pass through, an aborted call is a CancelledError, the
   * rest is the backend's `describeError`.
   */
  protected mapError(err: unknown, action: string, key: string | undefined, signal?: AbortSignal): Error {
    if (err instanceof CairnError) return err;
    if (signal?.aborted || (err instanceof Error && err.name === 'AbortError')) return new CancelledError();
    return this.describeError(err, action, key);
  }
}
