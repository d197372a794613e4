import type { Readable } from 'node:stream';
import {
  IdempotencyStrategy,
  RETRYABLE_ERR_FN_DEFAULT,
  Storage as GcsClient,
  type ApiError,
  type Bucket,
  type File,
  type StorageOptions,
} from '@google-cloud/storage';
import { CancelledError, ConflictError, NotFoundError, StorageError, UsageError, throwIfAborted } from '../core/errors.js';
import { checkKey, holdsBytes, publicEndpoint, unlessMissing } from './common.js';
import { TransientStorageError, isInterrupted } from './errors.js';
import { ObjectStore, type ByteRange } from './object-store.js';
import {
  DEFAULT_GCS_CHUNK_SIZE,
  DEFAULT_GCS_MAX_RETRIES,
  DEFAULT_GCS_RESUMABLE_THRESHOLD,
  checkGcsOptions,
  gcsLocation,
  sameGcsEndpoint,
  type GcsOptions,
} from './gcs-config.js';
import { asBuffer, payloadLength, payloadParts, payloadStream } from './payload.js';
import type { ObjectInfo, Payload, PutOptions, Storage } from './types.js';

export { DEFAULT_GCS_RESUMABLE_THRESHOLD, parseGcsUrl, type GcsEnv, type GcsOptions } from './gcs-config.js';

/** Per HTTP request; a 64 MiB single-request upload must fit in it. */
const REQUEST_TIMEOUT_MS = 300_000;

/**
 * A repository in a Google Cloud Storage bucket, through the official SDK (JSON API) with
 * Application Default Credentials, or none for an emulator (`auth: false`). `ifNotExists` is sent
 * as the precondition `ifGenerationMatch: 0`, which GCS evaluates atomically: create-only.
 *
 * The SDK retries each request (`maxRetries`); a body cut off after the answer began fails with a
 * TransientStorageError, which the retry middleware (middleware/retry.ts, applied by openStorage)
 * repeats.
 */
export class GcsStorage extends ObjectStore implements Storage {
  /** ifGenerationMatch: 0 is evaluated atomically by GCS. */
  readonly atomicCreate = true;
  readonly client: GcsClient;
  private readonly bucket: Bucket;
  private readonly resumableThreshold: number;
  private readonly chunkSize: number;
  private readonly maxAttempts: number;
  private readonly credentialHint: string;

  constructor(options: GcsOptions) {
    super(gcsLocation(options), { kind: 'bucket', name: options.bucket }, options, 1000);
    checkGcsOptions(options);
    this.resumableThreshold = options.resumableThreshold ?? DEFAULT_GCS_RESUMABLE_THRESHOLD;
    this.chunkSize = options.chunkSize ?? DEFAULT_GCS_CHUNK_SIZE;
    const maxRetries = Math.max(0, options.maxRetries ?? DEFAULT_GCS_MAX_RETRIES);
    this.maxAttempts = maxRetries + 1;
    const auth = options.auth !== false;
    this.credentialHint = auth
      ? "the credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's application-default login or the attached service account)"
      : 'the emulator (authentication is off: auth=false / BACKUP_GCS_USE_AUTH=false)';

    // The SDK reads STORAGE_EMULATOR_HOST itself and sends its JSON API requests there whatever
    // it is told; refuse rather than print one endpoint and talk to another.
    const emulator = process.env.STORAGE_EMULATOR_HOST;
    if (emulator !== undefined && (options.endpoint === undefined || !sameGcsEndpoint(emulator, options.endpoint))) {
      throw new UsageError(
        `STORAGE_EMULATOR_HOST is set (${publicEndpoint(emulator)}) and the GCS SDK would send requests there, not to ` +
          `${options.endpoint ? publicEndpoint(options.endpoint) : 'Google Cloud Storage'}: unset it, or give the same endpoint.`,
      );
    }

    const config: StorageOptions = {
      // Retries with exponential backoff and jitter (2^n s plus up to 1 s, at most 32 s apart,
      // 10 minutes in all) for 408, 429, 5xx and broken or refused connections; 401/403/404/412
      // are answers, not retried. RetryAlways also retries writes without a precondition, which
      // is safe for cairn: every key is written create-only (config, manifests: ifGenerationMatch
      // 0, which a retry cannot turn into an overwrite), or under a name only its one writer uses
      // with the same bytes on every attempt (packs and indexes by id), or rewritten only by its
      // one owner (a lock under its holder's random name), so a repeated write never replaces
      // someone else's object. It also keeps File#save
      // from switching retries off on the shared client for a write without a precondition.
      retryOptions: {
        autoRetry: maxRetries > 0,
        maxRetries: Math.max(1, maxRetries), // 0 reads as "default" to the SDK; autoRetry=false is what turns retries off
        retryDelayMultiplier: 2,
        maxRetryDelay: 32,
        totalTimeout: 600,
        idempotencyStrategy: IdempotencyStrategy.RetryAlways,
        retryableErrorFn: isRetryable,
      },
      timeout: REQUEST_TIMEOUT_MS,
    };
    if (options.projectId) config.projectId = options.projectId;
    if (options.endpoint) {
      config.apiEndpoint = options.endpoint;
      // With a custom endpoint the SDK sends no credentials unless told to: an emulator wants
      // none; a private or regional Google endpoint wants them.
      config.useAuthWithCustomEndpoint = auth;
    }
    // Builds the client only: credentials are looked up on the first request, not here.
    this.client = new GcsClient(config);
    this.bucket = this.client.bucket(this.holder.name);
  }

  private file(key: string): File {
    return this.bucket.file(this.prefix + checkKey(key));
  }

  async put(key: string, data: Payload, options: PutOptions = {}): Promise<void> {
    throwIfAborted(options.signal);
    const file = this.file(key);
    const parts = payloadParts(data);
    // An object in parts (a pack) is given as a function returning a new stream over views of
    // its parts, never concatenated: the SDK pipes it to the upload and, being a function, calls
    // it again for a retry (a stream itself it would not retry).
    const body = parts.length <= 1 ? asBuffer(parts[0] ?? new Uint8Array(0)) : () => payloadStream(data);
    const resumable = payloadLength(data) > this.resumableThreshold;
    try {
      // The SDK takes no AbortSignal: a write in flight finishes (or fails) before cancellation is seen.
      await file.save(body, {
        resumable,
        ...(resumable ? { chunkSize: this.chunkSize } : {}),
        validation: 'crc32c',
        contentType: 'application/octet-stream',
        ...(options.ifNotExists ? { preconditionOpts: { ifGenerationMatch: 0 } } : {}),
      });
    } catch (err) {
      if (options.ifNotExists && statusOf(err) === 412) {
        // The SDK retries a write whose answer was lost; the retry then meets our own object.
        if (await holdsBytes(this, key, data)) return;
        throw new ConflictError(`Object "${key}" already exists in ${this.location}.`, { cause: err });
      }
      throw this.mapError(err, `write ${key}`, key, options.signal);
    }
  }

  /**
   * Reads an object (or an inclusive byte range of it). Whole objects are checked against their
   * CRC32C. The SDK retries until the response starts; a body cut off midway (connection reset,
   * a proxy dropping the socket, a CRC32C mismatch) is a TransientStorageError, for the retry
   * middleware to repeat the read.
   */
  protected async readBytes(key: string, range: ByteRange | undefined, signal?: AbortSignal): Promise<Buffer> {
    const stream = this.file(key).createReadStream(range ? { start: range.start, end: range.end, validation: false } : { validation: 'crc32c' });
    let responded = false;
    stream.once('response', () => (responded = true));
    try {
      return await readAll(stream, signal);
    } catch (err) {
      if (signal?.aborted || !responded || !isInterrupted(err)) throw err;
      throw new TransientStorageError(`Cannot read ${key} in ${this.location}: the connection broke midway (${(err as Error).message}).`, { cause: err });
    }
  }

  async *list(prefix: string, signal?: AbortSignal): AsyncIterable<ObjectInfo> {
    let pageToken: string | undefined;
    do {
      throwIfAborted(signal);
      let page;
      try {
        page = await this.bucket.getFiles({
          prefix: this.prefix + prefix,
          autoPaginate: false,
          maxResults: this.listPageSize,
          ...(pageToken ? { pageToken } : {}),
          // Names, sizes and times only: a full object resource is ~1 KiB each.
          fields: 'items(name,size,updated),nextPageToken',
        });
      } catch (err) {
        throw this.mapError(err, `list ${prefix}`, undefined, signal);
      }
      const [items, nextQuery] = page;
      for (const item of items) {
        // With `fields`, the SDK hands back the raw resources ({ name, size, updated }) rather than
        // File objects ({ name, metadata: { size, updated } }); read either.
        const o = item as unknown as {
          name?: string;
          size?: string | number;
          updated?: string;
          metadata?: { size?: string | number; updated?: string };
        };
        if (typeof o.name !== 'string' || !o.name.startsWith(this.prefix)) continue;
        const modified = new Date(o.metadata?.updated ?? o.updated ?? Number.NaN);
        if (Number.isNaN(modified.getTime())) {
          throw new StorageError(`Listing ${this.location} gave no update time for "${o.name}": the server is not GCS-compatible enough.`);
        }
        yield { key: o.name.slice(this.prefix.length), size: Number(o.metadata?.size ?? o.size ?? 0), modified };
      }
      pageToken = (nextQuery as { pageToken?: string } | null | undefined)?.pageToken;
    } while (pageToken);
  }

  async delete(key: string): Promise<void> {
    await unlessMissing(() => this.file(key).delete(), (err) => this.mapError(err, `delete ${key}`, key));
  }

  exists(key: string): Promise<boolean> {
    // Not File#exists: it reads a missing bucket as a missing object.
    return unlessMissing(() => this.file(key).getMetadata(), (err) => this.mapError(err, `check ${key}`, key));
  }

  protected pastEnd(err: unknown): boolean {
    return statusOf(err) === 416;
  }

  protected describeError(err: unknown, action: string, key: string | undefined): Error {
    const status = statusOf(err);
    const message = (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
    if (status === 404 && /bucket does not exist/i.test(message)) {
      return this.missingHolder(action, err);
    }
    if (status === 404) return new NotFoundError(`Object "${key ?? ''}" not found in ${this.location}.`, { cause: err });
    if (/could not load the default credentials/i.test(message)) {
      return new StorageError(
        `Cannot ${action} in ${this.location}: no Google credentials found. Set GOOGLE_APPLICATION_CREDENTIALS to a ` +
          'service-account key file, run "gcloud auth application-default login", or run with an attached service account; ' +
          'for an emulator, turn authentication off (auth=false / BACKUP_GCS_USE_AUTH=false).',
        { cause: err },
      );
    }
    if (/client_email|private_key|incoming JSON object|refresh_token|invalid_grant|invalid_client|unauthorized_client/i.test(message)) {
      return new StorageError(
        `Cannot ${action} in ${this.location}: the Google credentials could not be read or were refused: ${message}. ` +
          'Check GOOGLE_APPLICATION_CREDENTIALS (a service-account key file as downloaded from the console) or renew the ' +
          'login with "gcloud auth application-default login".',
        { cause: err },
      );
    }
    if (status === 401 || status === 403) {
      return new StorageError(
        `Cannot ${action} in ${this.location}: access denied${status ? ` (${status})` : ''}: ${message} Check ${this.credentialHint} ` +
          `and that the account has a role that may read, write, list and delete objects in bucket "${this.holder.name}" ` +
          '(e.g. roles/storage.objectAdmin).',
        { cause: err },
      );
    }
    const retried = this.maxAttempts > 1 && isRetryable(err) ? ' (after retrying)' : '';
    const code = (err as { code?: unknown } | undefined)?.code;
    const label = typeof code === 'string' ? `${code}: ` : status ? `HTTP ${status}: ` : '';
    return new StorageError(`Cannot ${action} in ${this.location}${retried}: ${label}${message}`, { cause: err });
  }
}

/** Collects a read stream; an abort destroys it. */
function readAll(stream: Readable, signal?: AbortSignal): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const onAbort = () => stream.destroy(new CancelledError());
    signal?.addEventListener('abort', onAbort, { once: true });
    const done = (err?: unknown) => {
      signal?.removeEventListener('abort', onAbort);
      if (err) reject(err instanceof Error ? err : new Error(String(err)));
      else resolve(Buffer.concat(chunks));
    };
    stream.on('data', (c: Buffer | string) => chunks.push(typeof c === 'string' ? Buffer.from(c) : c));
    stream.once('error', done);
    stream.once('end', () => done());
  });
}

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ECONNABORTED', 'EPIPE', 'EAI_AGAIN']);

/**
 * The SDK's rule (408, 429, 5xx, resets) plus a connection refused or timed out, so that writes
 * also wait out a server that is restarting (reads already retry every failure without a response).
 */
function isRetryable(err: unknown): boolean {
  if (!err || typeof err !== 'object') return false;
  if (RETRYABLE_ERR_FN_DEFAULT(err as ApiError)) return true;
  const e = err as { code?: unknown; type?: unknown };
  return (typeof e.code === 'string' && CONNECTION_CODES.has(e.code)) || e.type === 'request-timeout';
}

/** The HTTP status of an SDK error: ApiError#code, GaxiosError#status or its response's. */
function statusOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; status?: unknown; response?: { status?: unknown; statusCode?: unknown } } | undefined;
  for (const v of [e?.code, e?.status, e?.response?.status, e?.response?.statusCode]) {
    if (typeof v === 'number') return v;
    if (typeof v === 'string' && /^\d{3}$/.test(v)) return Number(v);
  }
  return undefined;
}

