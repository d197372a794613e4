import { UsageError } from '../core/errors.js';
import { parsePositiveInt, parseSize, parseStoreUrl, resolveEndpoint, storeLocation, type StoreUrlSpec } from './common.js';
import { openLazily } from './lazy.js';
import type { StorageBackend } from './registry.js';

export const DEFAULT_AZURE_BLOCK_SIZE = 40 * 1024 * 1024;
export const DEFAULT_AZURE_CONCURRENCY = 1;
export const MAX_AZURE_BLOCK_SIZE = 4000 * 1024 * 1024;

export interface AzureOptions {
  container: string;
  prefix?: string;
  /** Takes precedence over account + key; may carry its own BlobEndpoint (azurite). */
  connectionString?: string;
  account?: string;
  /** Shared key; "" means anonymous access (public containers, or a SAS in the endpoint). */
  key?: string;
  /** Blob service URL, e.g. http://127.0.0.1:10000/devstoreaccount1; else https://<account>.blob.core.windows.net. */
  endpoint?: string;
  /** Objects above this size are uploaded as blocks of this size (default 40 MiB). */
  blockSize?: number;
  /** Blocks uploaded at once (default 1). */
  concurrency?: number;
  maxTries?: number;
  /** Blobs per listing page (Azure caps it at 5000). */
  listPageSize?: number;
}

/** Refuses options the service would refuse later, naming what to fix. */
export function checkAzureOptions(options: AzureOptions): void {
  if (!options.container) throw new UsageError('No Azure container given: write azure://container/prefix.');
  const size = options.blockSize ?? DEFAULT_AZURE_BLOCK_SIZE;
  if (size < 1 || size > MAX_AZURE_BLOCK_SIZE) throw new UsageError('AZURE_BLOCK_SIZE must be between 1 byte and 4000 MiB.');
  if (!options.connectionString && !options.account) {
    throw new UsageError('No Azure credentials: set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY.');
  }
}

/** The blob service URL a connection string names (BlobEndpoint, else built from account and suffix). */
export function connectionStringEndpoint(connectionString: string): string | undefined {
  const parts = new Map<string, string>();
  for (const part of connectionString.split(';')) {
    const i = part.indexOf('=');
    if (i > 0) parts.set(part.slice(0, i).trim().toLowerCase(), part.slice(i + 1).trim());
  }
  if (parts.get('blobendpoint')) return parts.get('blobendpoint');
  const account = parts.get('accountname');
  if (!account) return undefined;
  return `${parts.get('defaultendpointsprotocol') ?? 'https'}://${account}.blob.${parts.get('endpointsuffix') ?? 'core.windows.net'}`;
}

/** Where an Azure repository lives, safe to print: no key, no SAS query string. */
export function azureLocation(options: AzureOptions): string {
  const endpoint = options.endpoint ?? (options.connectionString ? connectionStringEndpoint(options.connectionString) : undefined);
  return storeLocation('azure', options.container, options.prefix, endpoint);
}

/** Environment variables the Azure backend reads (a subset of process.env). */
export interface AzureEnv {
  AZURE_STORAGE_CONNECTION_STRING?: string;
  AZURE_STORAGE_ACCOUNT?: string;
  AZURE_STORAGE_KEY?: string;
  AZURE_BLOCK_SIZE?: string;
  AZURE_CONCURRENCY?: string;
}

/** Credentials, block size and concurrency from the AZURE_* variables. */
export function azureOptionsFromEnv(env: AzureEnv): Omit<AzureOptions, 'container'> {
  const options: Omit<AzureOptions, 'container'> = {};
  if (env.AZURE_STORAGE_CONNECTION_STRING !== undefined) {
    if (!env.AZURE_STORAGE_CONNECTION_STRING.trim()) {
      throw new UsageError('AZURE_STORAGE_CONNECTION_STRING is set but empty: give the connection string, or unset it to use AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY.');
    }
    options.connectionString = env.AZURE_STORAGE_CONNECTION_STRING.trim();
  } else if (env.AZURE_STORAGE_ACCOUNT !== undefined && env.AZURE_STORAGE_ACCOUNT.trim() !== '') {
    options.account = env.AZURE_STORAGE_ACCOUNT.trim();
    options.key = (env.AZURE_STORAGE_KEY ?? '').trim();
  } else {
    throw new UsageError('No Azure credentials: set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY (an empty key means anonymous).');
  }
  if (env.AZURE_BLOCK_SIZE !== undefined) {
    options.blockSize = parseSize(env.AZURE_BLOCK_SIZE, 'AZURE_BLOCK_SIZE');
    if (options.blockSize > MAX_AZURE_BLOCK_SIZE) throw new UsageError('AZURE_BLOCK_SIZE is above the 4000 MiB Azure allows.');
  }
  if (env.AZURE_CONCURRENCY !== undefined) options.concurrency = parsePositiveInt(env.AZURE_CONCURRENCY, 'AZURE_CONCURRENCY', 64);
  return options;
}

const AZURE_URL: StoreUrlSpec = {
  service: 'Azure',
  form: 'azure://container/prefix',
  holder: 'container',
  params: ['endpoint'],
  credentials: 'set AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_KEY',
};

/** Parses `azure://container/prefix?endpoint=…`; credentials come from `env`. */
export function parseAzureUrl(url: string, env: AzureEnv = process.env): AzureOptions {
  const { url: u, holder: container, prefix } = parseStoreUrl(url, AZURE_URL);
  const options: AzureOptions = { container, prefix, ...azureOptionsFromEnv(env) };
  const endpoint = u.searchParams.get('endpoint');
  if (endpoint !== null) options.endpoint = resolveEndpoint(endpoint, undefined, 'the "endpoint" URL parameter');
  return options;
}

/** Azure Blob Storage; the Azure SDK loads on first use. */
export const azureBackend: StorageBackend<AzureOptions> = {
  schemes: ['azure'],
  form: AZURE_URL.form,
  parse: (url, env) => parseAzureUrl(url, env as AzureEnv),
  open: openLazily(checkAzureOptions, azureLocation, true, async (options) => new (await import('./azure.js')).AzureBlobStorage(options)),
  // The SDK retries requests and resumes broken downloads itself; nothing it throws is transient
  // today, so the middleware only serves faults injected in tests and future transient errors.
  retry: (options) => ({ attempts: options.maxTries ?? 6 }),
  env: {
    select: 'BACKUP_AZURE_CONTAINER',
    what: 'container name',
    folder: 'BACKUP_AZURE_PATH',
    companions: ['BACKUP_AZURE_PATH'],
    read: (container, env) => ({ container, prefix: env.BACKUP_AZURE_PATH ?? '', ...azureOptionsFromEnv(env as AzureEnv) }),
  },
};
