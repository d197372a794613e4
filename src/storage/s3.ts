import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type CompletedPart,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { CairnError, ConflictError, NotFoundError, StorageError, UsageError, throwIfAborted } from '../core/errors.js';
import { mapLimit } from '../core/errgroup.js';
import { checkKey, holdsBytes, unlessMissing } from './common.js';
import { TransientStorageError, isInterrupted } from './errors.js';
import { payloadLength, payloadParts, payloadStream } from './payload.js';
import { ObjectStore, type ByteRange } from './object-store.js';
import { DEFAULT_MAX_ATTEMPTS, DEFAULT_MULTIPART_THRESHOLD, DEFAULT_PART_SIZE, checkS3Options, s3Location, type S3Options } from './s3-config.js';
import type { ObjectInfo, Payload, PutOptions, Storage } from './types.js';

export { DEFAULT_MULTIPART_THRESHOLD, parseS3Url, type S3Options } from './s3-config.js';

/**
 * A repository in an S3 bucket (or any S3-compatible store). Objects are written whole with
 * PutObject, or as a multipart upload above `multipartThreshold`. `ifNotExists` is a HeadObject
 * check (refuses in the sequential case everywhere) plus `If-None-Match: *` on the write, which
 * AWS S3 evaluates atomically (412 → ConflictError). Several S3-compatible servers ignore that
 * header (s3rver, some Swift and older gateways), so `atomicCreate` is false: writers that may
 * race use `createExclusive` (common.ts).
 *
 * The SDK retries each request (standard mode, `maxAttempts`); a body cut off after the answer
 * began fails with a TransientStorageError, which the retry middleware (middleware/retry.ts,
 * applied by openStorage) repeats.
 *
 * An object given in parts (a pack: its blobs and header) is sent as a stream of those parts with
 * its length known, one request or, above the threshold, one stream per part of a multipart
 * upload made here: never concatenated into one buffer. The SDK does not retry a request whose
 * body is a stream (it cannot read it twice), so a failure it would have retried is a
 * TransientStorageError instead, and the retry middleware repeats the put with new streams over
 * the same parts.
 */
export class S3Storage extends ObjectStore implements Storage {
  /** If-None-Match may be ignored by S3-compatible servers: see the class comment. */
  readonly atomicCreate = false;
  readonly client: S3Client;
  private readonly bucket: string;
  private readonly multipartThreshold: number;
  private readonly partSize: number;

  constructor(options: S3Options) {
    super(s3Location(options), { kind: 'bucket', name: options.bucket }, options, 1000);
    checkS3Options(options);
    this.bucket = options.bucket;
    this.multipartThreshold = options.multipartThreshold ?? DEFAULT_MULTIPART_THRESHOLD;
    this.partSize = Math.max(5 * 1024 * 1024, options.partSize ?? DEFAULT_PART_SIZE);

    const config: S3ClientConfig = {
      maxAttempts: Math.max(1, options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS),
      retryMode: 'standard',
      // s3rver and several S3-compatible stores reject the newer default CRC checksums.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: { connectionTimeout: 10_000, requestTimeout: 120_000 },
      // Without a logger the SDK prints "An error was encountered in a non-retryable streaming
      // request." on the console for every failed streamed put: cairn reports (and retries)
      // those failures itself, and the CLI's output must stay its own.
      logger: QUIET_LOGGER,
    };
    const region = options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
    if (region) config.region = region;
    else if (options.endpoint) config.region = 'us-east-1';
    if (options.endpoint) config.endpoint = options.endpoint;
    config.forcePathStyle = options.forcePathStyle ?? this.customEndpoint;
    if (options.credentials) config.credentials = options.credentials;
    // On Node 20 the SDK warns that its releases after January 2027 will need Node 22. That is
    // for cairn's dependency updates to handle, not something a user can act on, and the
    // multi-line warning would break the CLI's one-line error output. A user's own setting wins.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    this.client = new S3Client(config);
  }

  private fullKey(key: string): string {
    return this.prefix + checkKey(key);
  }

  async put(key: string, data: Payload, options: PutOptions = {}): Promise<void> {
    throwIfAborted(options.signal);
    const streamed = payloadParts(data).length > 1;
    if (options.ifNotExists && (await this.exists(key))) {
      throw new ConflictError(`Object "${key}" already exists in ${this.location}.`);
    }
    try {
      await this.write(key, data, options.ifNotExists === true, options.signal);
    } catch (err) {
      const status = statusOf(err);
      const name = nameOf(err);
      if (options.ifNotExists && (status === 412 || name === 'PreconditionFailed')) {
        // The SDK retries a write whose answer was lost; the retry then meets our own object.
        if (await holdsBytes(this, key, data)) return;
        throw new ConflictError(`Object "${key}" already exists in ${this.location}.`, { cause: err });
      }
      if (options.ifNotExists && (status === 409 || name === 'ConditionalRequestConflict')) {
        // Another create-only write of this key is in flight: it wins, we do not.
        throw new ConflictError(`Object "${key}" is being created by another writer in ${this.location}.`, { cause: err });
      }
      if (options.ifNotExists && (status === 501 || name === 'NotImplemented')) {
        // A server that refuses the condition outright: the HeadObject check above is all it gets.
        try {
          await this.write(key, data, false, options.signal);
          return;
        } catch (retryErr) {
          throw this.mapError(retryErr, `write ${key}`, key, options.signal);
        }
      }
      const mapped = this.mapError(err, `write ${key}`, key, options.signal);
      if (streamed && !options.signal?.aborted && !(err instanceof CairnError) && sdkWouldRetry(err)) {
        throw new TransientStorageError(mapped.message, { cause: err });
      }
      throw mapped;
    }
  }

  private async write(key: string, data: Payload, createOnly: boolean, signal: AbortSignal | undefined): Promise<void> {
    const Key = this.fullKey(key);
    const condition = createOnly ? { IfNoneMatch: '*' } : {};
    const length = payloadLength(data);
    if (!(data instanceof Uint8Array) && data.length > 1) {
      if (length > this.multipartThreshold) return this.writeMultipart(Key, data, length, condition, signal);
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key, Body: payloadStream(data), ContentLength: length, ...condition }), {
        abortSignal: signal,
      });
      return;
    }
    data = payloadParts(data)[0] ?? new Uint8Array(0);
    if (data.length > this.multipartThreshold) {
      // The condition travels to CompleteMultipartUpload, where S3 evaluates it.
      const upload = new Upload({
        client: this.client,
        params: { Bucket: this.bucket, Key, Body: data, ...condition },
        partSize: this.partSize,
        queueSize: 4,
        leavePartsOnError: false,
      });
      const onAbort = () => void upload.abort();
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        await upload.done();
      } finally {
        signal?.removeEventListener('abort', onAbort);
      }
    } else {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key, Body: data, ContentLength: data.length, ...condition }), {
        abortSignal: signal,
      });
    }
  }

  /**
   * A multipart upload of an object in parts: each part of `partSize` bytes is a stream over
   * views of the object's parts (no copy), up to 4 at a time. The condition travels to
   * CompleteMultipartUpload, where S3 evaluates it. On any failure the upload is aborted, so no
   * stored part is left behind to be billed.
   */
  private async writeMultipart(Key: string, data: Payload, length: number, condition: { IfNoneMatch?: string }, signal: AbortSignal | undefined): Promise<void> {
    const created = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key }), { abortSignal: signal });
    const UploadId = created.UploadId;
    if (!UploadId) throw new StorageError(`Cannot write ${Key} in ${this.location}: the server started a multipart upload without an upload id.`);
    try {
      const starts = Array.from({ length: Math.ceil(length / this.partSize) }, (_, i) => i * this.partSize);
      const parts = await mapLimit(
        starts,
        4,
        async (start, i, group): Promise<CompletedPart> => {
          const size = Math.min(this.partSize, length - start);
          const out = await this.client.send(
            new UploadPartCommand({ Bucket: this.bucket, Key, UploadId, PartNumber: i + 1, Body: payloadStream(data, start, size), ContentLength: size }),
            { abortSignal: group },
          );
          return { PartNumber: i + 1, ETag: out.ETag };
        },
        signal,
      );
      await this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId, MultipartUpload: { Parts: parts }, ...condition }), {
        abortSignal: signal,
      });
    } catch (err) {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId })).catch(() => undefined);
      throw err;
    }
  }

  /**
   * GetObject and read its body. The SDK's retries end once the response headers arrive: a body
   * cut off midway (connection reset, a proxy or load balancer dropping the socket) or shorter
   * than announced is a TransientStorageError, for the retry middleware to repeat the read.
   */
  protected async readBytes(key: string, range: ByteRange | undefined, signal?: AbortSignal): Promise<Buffer> {
    const Range = range ? `bytes=${range.start}-${range.end}` : undefined;
    const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key), Range }), { abortSignal: signal });
    let buf: Buffer;
    try {
      buf = await bodyToBuffer(out.Body);
    } catch (err) {
      if (signal?.aborted || !isInterrupted(err)) throw err;
      throw new TransientStorageError(`Cannot read ${key} in ${this.location}: the connection broke midway (${(err as Error).message}).`, { cause: err });
    }
    if (out.ContentLength !== undefined && buf.length !== out.ContentLength) {
      throw new TransientStorageError(`Cannot read ${key} in ${this.location}: the answer was cut off (got ${buf.length} of ${out.ContentLength} bytes).`);
    }
    return buf;
  }

  async *list(prefix: string, signal?: AbortSignal): AsyncIterable<ObjectInfo> {
    const Prefix = this.prefix + prefix;
    let ContinuationToken: string | undefined;
    do {
      throwIfAborted(signal);
      let page;
      try {
        page = await this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix, ContinuationToken, MaxKeys: this.listPageSize }),
          { abortSignal: signal },
        );
      } catch (err) {
        throw this.mapError(err, `list ${prefix}`, undefined, signal);
      }
      for (const o of page.Contents ?? []) {
        if (o.Key === undefined || !o.Key.startsWith(this.prefix)) continue;
        if (!o.LastModified) throw new StorageError(`Listing ${this.location} gave no LastModified for "${o.Key}": the server is not S3-compatible enough.`);
        yield { key: o.Key.slice(this.prefix.length), size: o.Size ?? 0, modified: o.LastModified };
      }
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
      if (page.IsTruncated && !ContinuationToken) {
        throw new StorageError(`Listing ${this.location} stopped: the server said there is more but gave no continuation token.`);
      }
    } while (ContinuationToken);
  }

  async delete(key: string): Promise<void> {
    await unlessMissing(() => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key) })), (err) => this.mapError(err, `delete ${key}`, key));
  }

  exists(key: string): Promise<boolean> {
    return unlessMissing(() => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key) })), (err) => this.mapError(err, `check ${key}`, key));
  }

  /** Closes the client's sockets. */
  destroy(): void {
    this.client.destroy();
  }

  protected pastEnd(err: unknown): boolean {
    return statusOf(err) === 416 || nameOf(err) === 'InvalidRange';
  }

  protected describeError(err: unknown, action: string, key: string | undefined): Error {
    const name = nameOf(err);
    const status = statusOf(err);
    const message = err instanceof Error ? err.message : String(err);
    if (name === 'NoSuchBucket') {
      return this.missingHolder(action, err);
    }
    if (name === 'NoSuchKey' || name === 'NotFound' || status === 404) {
      return new NotFoundError(`Object "${key ?? ''}" not found in ${this.location}.`, { cause: err });
    }
    if (
      status === 403 ||
      name === 'AccessDenied' ||
      name === 'InvalidAccessKeyId' ||
      name === 'SignatureDoesNotMatch' ||
      name === 'ExpiredToken' ||
      name === 'InvalidToken'
    ) {
      return new StorageError(
        `Cannot ${action} in ${this.location}: access denied (${name}). Check the credentials ` +
          `(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the instance role) and that they may read, write, ` +
          `list and delete in bucket "${this.bucket}".`,
        { cause: err },
      );
    }
    if (name === 'CredentialsProviderError') {
      return new StorageError(
        `Cannot ${action} in ${this.location}: no AWS credentials found. Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, ` +
          `or AWS_PROFILE, or run with an instance role / web identity.`,
        { cause: err },
      );
    }
    if (/region is missing/i.test(message)) {
      return new UsageError(`No AWS region for ${this.location}: set AWS_REGION or add ?region=… to the URL.`, { cause: err });
    }
    const attempts = (err as { $metadata?: { attempts?: number } } | undefined)?.$metadata?.attempts;
    const tried = attempts && attempts > 1 ? ` (after ${attempts} attempts)` : '';
    return new StorageError(`Cannot ${action} in ${this.location}${tried}: ${name ? `${name}: ` : ''}${message}`, { cause: err });
  }
}

const QUIET_LOGGER = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

/** Error names the SDK's standard retry strategy treats as transient or throttling. */
const SDK_RETRIED_NAMES = new Set([
  'TimeoutError',
  'RequestTimeout',
  'RequestTimeoutException',
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'RequestThrottledException',
  'TooManyRequestsException',
  'ProvisionedThroughputExceededException',
  'TransactionInProgressException',
  'RequestLimitExceeded',
  'BandwidthLimitExceeded',
  'LimitExceededException',
  'RequestThrottled',
  'SlowDown',
  'PriorRequestNotComplete',
  'EC2ThrottledException',
  'InternalError',
  'ServiceUnavailable',
]);
const SDK_RETRIED_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * Whether the SDK would have retried this failure had the body been a buffer (its standard
 * strategy: 5xx, 429, throttling and timeout errors, dropped connections): for a streamed put,
 * which the SDK sends once, the retry middleware repeats those instead.
 */
function sdkWouldRetry(err: unknown): boolean {
  const status = statusOf(err);
  if (status !== undefined && (status >= 500 || status === 429)) return true;
  if (SDK_RETRIED_NAMES.has(nameOf(err))) return true;
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string' && SDK_RETRIED_CODES.has(code)) return true;
  return isInterrupted(err);
}

function nameOf(err: unknown): string {
  return err instanceof Error ? err.name : '';
}

function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}

async function bodyToBuffer(body: unknown): Promise<Buffer> {
  if (body === undefined || body === null) return Buffer.alloc(0);
  const b = body as { transformToByteArray?: () => Promise<Uint8Array> };
  if (typeof b.transformToByteArray === 'function') {
    const bytes = await b.transformToByteArray();
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  const chunks: Buffer[] = [];
  for await (const c of body as AsyncIterable<Uint8Array>) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}
