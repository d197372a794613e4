import { UsageError } from '../core/errors.js';
import { normalizePrefix, parseBool, publicEndpoint, resolveEndpoint } from './common.js';

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

/** Where an S3 repository lives, safe to print (no keys; the endpoint without user info or query). */
export function s3Location(options: S3Options): string {
  const endpointPart = options.endpoint ? `?endpoint=${encodeURIComponent(publicEndpoint(options.endpoint))}` : '';
  return `s3://${options.bucket}/${normalizePrefix(options.prefix ?? '')}${endpointPart}`;
}

const S3_PARAMS = new Set(['endpoint', 'region', 'forcePathStyle', 'tls']);

/**
 * Parses `s3://bucket/prefix?endpoint=…&region=…&forcePathStyle=true&tls=false`. Keys never go in
 * the URL: they come from the AWS credential chain.
 */
export function parseS3Url(url: string): S3Options {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(`Invalid S3 URL "${url}": write s3://bucket/prefix.`);
  }
  if (u.username || u.password) {
    throw new UsageError('Do not put credentials in the S3 URL: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or use a profile or role).');
  }
  const bucket = decodeURIComponent(u.hostname);
  if (!bucket) throw new UsageError(`No bucket in "${url}": write s3://bucket/prefix.`);
  for (const name of u.searchParams.keys()) {
    if (!S3_PARAMS.has(name)) {
      throw new UsageError(
        /key|secret|token|password/i.test(name)
          ? `Do not put credentials in the S3 URL ("${name}"): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.`
          : `Unknown S3 URL parameter "${name}". Known: ${[...S3_PARAMS].join(', ')}.`,
      );
    }
  }
  const options: S3Options = { bucket, prefix: decodeURIComponent(u.pathname.replace(/^\//, '')) };
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
