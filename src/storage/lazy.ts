import type { ObjectInfo, Payload, PutOptions, Storage } from './types.js';

/**
 * A Storage whose backend module is loaded on first use, so that commands working on a local
 * folder never pay for loading a cloud SDK (~0.4 s for the AWS and Azure SDKs together). The
 * configuration was checked before this is built: only network errors remain for later.
 */
export class LazyStorage implements Storage {
  private loading: Promise<Storage> | undefined;

  /**
   * @param atomicCreate what the backend will answer (known from the URL scheme before it loads);
   *   checked against the backend when it loads.
   */
  constructor(
    readonly location: string,
    readonly atomicCreate: boolean,
    private readonly load: () => Promise<Storage>,
  ) {}

  /** The real backend (loaded once). */
  backend(): Promise<Storage> {
    this.loading ??= this.load().then((backend) => {
      if (backend.atomicCreate !== this.atomicCreate) {
        throw new Error(`LazyStorage for ${this.location} promised atomicCreate=${this.atomicCreate}, the backend has ${backend.atomicCreate}.`);
      }
      return backend;
    });
    return this.loading;
  }

  async put(key: string, data: Payload, options?: PutOptions): Promise<void> {
    return (await this.backend()).put(key, data, options);
  }

  async get(key: string, signal?: AbortSignal): Promise<Buffer> {
    return (await this.backend()).get(key, signal);
  }

  async getRange(key: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    return (await this.backend()).getRange(key, offset, length, signal);
  }

  async *list(prefix: string, signal?: AbortSignal): AsyncIterable<ObjectInfo> {
    yield* (await this.backend()).list(prefix, signal);
  }

  async delete(key: string): Promise<void> {
    return (await this.backend()).delete(key);
  }

  async exists(key: string): Promise<boolean> {
    return (await this.backend()).exists(key);
  }
}

/**
 * The `open` of a backend whose SDK loads on first use (StorageBackend.open): bad options are
 * refused at once by `check`; the SDK module is imported by `load` on the first call.
 */
export function openLazily<O>(
  check: (options: O) => void,
  location: (options: O) => string,
  atomicCreate: boolean,
  load: (options: O) => Promise<Storage>,
): (options: O) => Storage {
  return (options) => {
    check(options);
    return new LazyStorage(location(options), atomicCreate, () => load(options));
  };
}
