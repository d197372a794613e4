import { UsageError } from '../core/errors.js';
import { envValue, parseBool, parseStoreUrl, resolveEndpoint, storeLocation, type StoreUrlSpec } from './common.js';
import { openLazily } from './lazy.js';
import type { StorageBackend } from './registry.js';

/** Objects above this size are sent as a multipart upload (a single PutObject takes up to 5 GiB). */
export const DEFAULT_MULTIPART_THRESHOLD = 64 * 1024 * 1024;
export const DEFAULT_PART_SIZE = 16 * 1024 * 1024;
export const DEFAULT_MAX_ATTEMPTS = 6;

export interface S3Options {
  bucket: string;
  /** Folder inside the bucket; "" for the bucket root. */
  prefix?: string;
  /** Full URL of an S3-compatible service (MinIO, Ceph, R2, GCS interoperability…); AWS when absent. */
  endpoint?: string;
  /** Region; else AWS_REGION / the shared config; "us-east-1" when a custom endpoint is given. */
  region?: string;
  /** Path-style addressing (http://host/bucket/key); the default when a custom endpoint is given. */
  forcePathStyle?: boolean;
  /** Explicit keys; when absent the standard AWS chain (env, shared config, SSO, web identity, instance role). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Attempts per request including the first (standard retry strategy: backoff with jitter). */
  maxAttempts?: number;
  multipartThreshold?: number;
  partSize?: number;
  /** Keys per ListObjectsV2 page (S3 caps it at 1000). */
  listPageSize?: number;
}

/** Refuses options S3 would refuse later. */
export function checkS3Options(options: S3Options): void {
  if (!options.bucket) throw new UsageError('No S3 bucket given: write s3://bucket/prefix.');
}

/** Where an S3 repository lives, safe to print (no keys; the endpoint without user info or query). */
export function s3Location(options: S3Options): string {
  return storeLocation('s3', options.bucket, options.prefix, options.endpoint);
}

const S3_URL: StoreUrlSpec = {
  service: 'S3',
  form: 's3://bucket/prefix',
  holder: 'bucket',
  params: ['endpoint', 'region', 'forcePathStyle', 'tls'],
  credentials: 'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or use a profile or role)',
  secretParams: { pattern: /key|secret|token|password/i, credentials: 'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY' },
};

/**
 * Parses `s3://bucket/prefix?endpoint=…&region=…&forcePathStyle=true&tls=false`. Keys never go in
 * the URL: they come from the AWS credential chain.
 */
export function parseS3Url(url: string): S3Options {
  const { url: u, holder: bucket, prefix } = parseStoreUrl(url, S3_URL);
  const options: S3Options = { bucket, prefix };
  const tlsParam = u.searchParams.get('tls');
  const tls = tlsParam === null ? undefined : parseBool(tlsParam, 'the "tls" URL parameter');
  const endpoint = u.searchParams.get('endpoint');
  if (endpoint !== null) options.endpoint = resolveEndpoint(endpoint, tls, 'the "endpoint" URL parameter');
  else if (tls === false) throw new UsageError('"tls=false" needs an "endpoint" parameter: AWS S3 is only reached over TLS.');
  const region = u.searchParams.get('region');
  if (region) options.region = region;
  const fps = u.searchParams.get('forcePathStyle');
  if (fps !== null) options.forcePathStyle = parseBool(fps, 'the "forcePathStyle" URL parameter');
  return options;
}

/** Options from BACKUP_S3_* and the AWS_* variables, once BACKUP_S3_BUCKET has been read. */
export function s3OptionsFromEnv(bucket: string, env: NodeJS.ProcessEnv): S3Options {
  const options: S3Options = { bucket, prefix: env.BACKUP_S3_PATH ?? '' };
  const tls = env.BACKUP_S3_USE_SSL === undefined ? undefined : parseBool(env.BACKUP_S3_USE_SSL, 'BACKUP_S3_USE_SSL');
  const endpoint = envValue(env, 'BACKUP_S3_ENDPOINT', 'S3 endpoint URL');
  if (endpoint !== undefined) options.endpoint = resolveEndpoint(endpoint, tls, 'BACKUP_S3_ENDPOINT');
  else if (tls === false) throw new UsageError('BACKUP_S3_USE_SSL=false needs BACKUP_S3_ENDPOINT: AWS S3 is only reached over TLS.');
  const region = envValue(env, 'AWS_REGION', 'region');
  if (region !== undefined) options.region = region;
  const keyId = env.AWS_ACCESS_KEY_ID;
  const secret = env.AWS_SECRET_ACCESS_KEY;
  if (keyId !== undefined || secret !== undefined) {
    if (!keyId?.trim()) throw new UsageError('AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is empty or unset: set both, or neither to use the AWS credential chain.');
    if (!secret?.trim()) throw new UsageError('AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is empty or unset: set both, or neither to use the AWS credential chain.');
    options.credentials = { accessKeyId: keyId.trim(), secretAccessKey: secret.trim() };
    if (env.AWS_SESSION_TOKEN) options.credentials.sessionToken = env.AWS_SESSION_TOKEN;
  }
  return options;
}

/** S3 and S3-compatible stores; the AWS SDK loads on first use. */
export const s3Backend: StorageBackend<S3Options> = {
  schemes: ['s3'],
  form: S3_URL.form,
  parse: (url) => parseS3Url(url),
  // If-None-Match may be ignored by S3-compatible servers: atomicCreate is false (see S3Storage).
  open: openLazily(checkS3Options, s3Location, false, async (options) => new (await import('./s3.js')).S3Storage(options)),
  // The SDK retries requests; the middleware repeats reads cut off midway, with the same budget.
  retry: (options) => ({ attempts: options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS }),
  env: {
    select: 'BACKUP_S3_BUCKET',
    what: 'bucket name',
    folder: 'BACKUP_S3_PATH',
    companions: ['BACKUP_S3_PATH', 'BACKUP_S3_ENDPOINT', 'BACKUP_S3_USE_SSL'],
    read: s3OptionsFromEnv,
  },
};
