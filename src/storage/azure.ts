import {
  AnonymousCredential,
  BlobServiceClient,
  StorageRetryPolicyType,
  StorageSharedKeyCredential,
  type ContainerClient,
  type StoragePipelineOptions,
} from '@azure/storage-blob';
import { randomUUID } from 'node:crypto';
import { ConflictError, NotFoundError, StorageError, UsageError, throwIfAborted } from '../core/errors.js';
import { mapLimit } from '../core/errgroup.js';
import { checkKey, unlessMissing } from './common.js';
import { asBuffer, payloadLength, payloadParts, payloadStream } from './payload.js';
import { ObjectStore, type ByteRange } from './object-store.js';
import { DEFAULT_AZURE_BLOCK_SIZE, DEFAULT_AZURE_CONCURRENCY, azureLocation, checkAzureOptions, type AzureOptions } from './azure-config.js';
import type { ObjectInfo, Payload, PutOptions, Storage } from './types.js';

export { azureOptionsFromEnv, parseAzureUrl, type AzureEnv, type AzureOptions } from './azure-config.js';

/**
 * A repository in an Azure Blob container. `ifNotExists` is sent as `If-None-Match: *`, which
 * Azure (and azurite) evaluate atomically on Put Blob and Put Block List.
 */
export class AzureBlobStorage extends ObjectStore implements Storage {
  /** If-None-Match: * is evaluated atomically by Azure and azurite. */
  readonly atomicCreate = true;
  private readonly container: ContainerClient;
  private readonly blockSize: number;
  private readonly concurrency: number;
  private readonly credentialHint: string;

  constructor(options: AzureOptions) {
    super(azureLocation(options), { kind: 'container', name: options.container }, options, 5000);
    checkAzureOptions(options);
    this.blockSize = options.blockSize ?? DEFAULT_AZURE_BLOCK_SIZE;
    this.concurrency = options.concurrency ?? DEFAULT_AZURE_CONCURRENCY;
    const pipeline: StoragePipelineOptions = {
      retryOptions: {
        retryPolicyType: StorageRetryPolicyType.EXPONENTIAL,
        maxTries: options.maxTries ?? 6,
        retryDelayInMs: 500,
        maxRetryDelayInMs: 30_000,
      },
    };
    let service: BlobServiceClient;
    if (options.connectionString) {
      this.credentialHint = 'AZURE_STORAGE_CONNECTION_STRING';
      try {
        service = BlobServiceClient.fromConnectionString(options.connectionString, pipeline);
      } catch (err) {
        throw new UsageError(`AZURE_STORAGE_CONNECTION_STRING is not a valid connection string: ${(err as Error).message}`);
      }
      if (options.endpoint) service = new BlobServiceClient(options.endpoint, service.credential, pipeline);
    } else {
      if (!options.account) {
        throw new UsageError('No Azure credentials: set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY.');
      }
      const url = options.endpoint ?? `https://${options.account}.blob.core.windows.net`;
      if (options.key) {
        this.credentialHint = 'AZURE_STORAGE_ACCOUNT / AZURE_STORAGE_KEY';
        let credential: StorageSharedKeyCredential;
        try {
          credential = new StorageSharedKeyCredential(options.account, options.key);
        } catch (err) {
          throw new UsageError(`AZURE_STORAGE_KEY is not a valid account key: ${(err as Error).message}`);
        }
        service = new BlobServiceClient(url, credential, pipeline);
      } else {
        this.credentialHint = 'AZURE_STORAGE_KEY (empty: anonymous access)';
        service = new BlobServiceClient(url, new AnonymousCredential(), pipeline);
      }
    }
    this.container = service.getContainerClient(this.holder.name);
  }

  /** The SDK's client for the container, e.g. for tests that create it. */
  get containerClient(): ContainerClient {
    return this.container;
  }

  private blob(key: string) {
    return this.container.getBlockBlobClient(this.prefix + checkKey(key));
  }

  async put(key: string, data: Payload, options: PutOptions = {}): Promise<void> {
    throwIfAborted(options.signal);
    const blob = this.blob(key);
    const conditions = options.ifNotExists ? { ifNoneMatch: '*' } : undefined;
    const maxSingleShotSize = Math.min(this.blockSize, 256 * 1024 * 1024);
    try {
      const parts = payloadParts(data);
      if (parts.length <= 1) {
        await blob.uploadData(asBuffer(parts[0] ?? new Uint8Array(0)), { blockSize: this.blockSize, maxSingleShotSize, concurrency: this.concurrency, conditions, abortSignal: options.signal });
      } else {
        // An object in parts (a pack) goes up as streams over views of its parts, never
        // concatenated. The body is a function returning a new stream: the SDK calls it again for
        // each retry of the request (as its own uploadFile does with file streams).
        const length = payloadLength(data);
        if (length <= maxSingleShotSize) {
          await blob.upload(() => payloadStream(data), length, { conditions, abortSignal: options.signal });
        } else {
          const prefix = randomUUID();
          const starts = Array.from({ length: Math.ceil(length / this.blockSize) }, (_, i) => i * this.blockSize);
          const ids = await mapLimit(
            starts,
            this.concurrency,
            async (start, i, group) => {
              // Block ids of one blob must all have the same length.
              const id = Buffer.from(`${prefix}-${String(i).padStart(6, '0')}`).toString('base64');
              const size = Math.min(this.blockSize, length - start);
              await blob.stageBlock(id, () => payloadStream(data, start, size), size, { abortSignal: group });
              return id;
            },
            options.signal,
          );
          // The condition is evaluated where the blob comes into being: on the block list.
          await blob.commitBlockList(ids, { conditions, abortSignal: options.signal });
        }
      }
    } catch (err) {
      const status = statusOf(err);
      if (options.ifNotExists && (status === 409 || status === 412)) {
        throw new ConflictError(`Object "${key}" already exists in ${this.location}.`, { cause: err });
      }
      throw this.mapError(err, `write ${key}`, key, options.signal);
    }
  }

  /** A download; the SDK resumes a body cut off midway itself (maxRetryRequests). */
  protected async readBytes(key: string, range: ByteRange | undefined, signal?: AbortSignal): Promise<Buffer> {
    const res = await this.blob(key).download(range?.start ?? 0, range ? range.end - range.start + 1 : undefined, { abortSignal: signal, maxRetryRequests: 5 });
    const body = res.readableStreamBody;
    if (!body) return Buffer.alloc(0);
    const chunks: Buffer[] = [];
    for await (const c of body) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
    return Buffer.concat(chunks);
  }

  protected pastEnd(err: unknown): boolean {
    return statusOf(err) === 416;
  }

  async *list(prefix: string, signal?: AbortSignal): AsyncIterable<ObjectInfo> {
    const pages = this.container
      .listBlobsFlat({ prefix: this.prefix + prefix, abortSignal: signal })
      .byPage({ maxPageSize: this.listPageSize });
    while (true) {
      throwIfAborted(signal);
      let page;
      try {
        page = await pages.next();
      } catch (err) {
        throw this.mapError(err, `list ${prefix}`, undefined, signal);
      }
      if (page.done) return;
      for (const item of page.value.segment.blobItems) {
        if (!item.name.startsWith(this.prefix)) continue;
        yield { key: item.name.slice(this.prefix.length), size: item.properties.contentLength ?? 0, modified: item.properties.lastModified };
      }
    }
  }

  async delete(key: string): Promise<void> {
    await unlessMissing(() => this.blob(key).deleteIfExists(), (err) => this.mapError(err, `delete ${key}`, key));
  }

  exists(key: string): Promise<boolean> {
    return unlessMissing(() => this.blob(key).getProperties(), (err) => this.mapError(err, `check ${key}`, key));
  }

  protected describeError(err: unknown, action: string, key: string | undefined): Error {
    const status = statusOf(err);
    const code = codeOf(err);
    const message = err instanceof Error ? err.message.split('\n')[0] : String(err);
    if (code === 'ContainerNotFound') {
      return this.missingHolder(action, err);
    }
    if (status === 404) return new NotFoundError(`Object "${key ?? ''}" not found in ${this.location}.`, { cause: err });
    if (status === 403 || status === 401) {
      return new StorageError(
        `Cannot ${action} in ${this.location}: access denied${code ? ` (${code})` : ''}. Check ${this.credentialHint}.`,
        { cause: err },
      );
    }
    return new StorageError(`Cannot ${action} in ${this.location}: ${code ? `${code}: ` : ''}${message}`, { cause: err });
  }
}

function statusOf(err: unknown): number | undefined {
  const s = (err as { statusCode?: unknown } | undefined)?.statusCode;
  return typeof s === 'number' ? s : undefined;
}

function codeOf(err: unknown): string | undefined {
  const e = err as { code?: unknown; details?: { errorCode?: unknown } } | undefined;
  if (typeof e?.details?.errorCode === 'string') return e.details.errorCode;
  return typeof e?.code === 'string' ? e.code : undefined;
}
