import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../core/errors.js';
import { azureLocation, azureOptionsFromEnv, checkAzureOptions, parseAzureUrl, type AzureEnv, type AzureOptions } from './azure-config.js';
import { parseBool, resolveEndpoint } from './common.js';
import { FileSystemStorage } from './fs.js';
import { checkGcsOptions, gcsLocation, gcsOptionsFromEnv, parseGcsUrl, type GcsEnv, type GcsOptions } from './gcs-config.js';
import { LazyStorage } from './lazy.js';
import { parseS3Url, s3Location, type S3Options } from './s3-config.js';
import type { Storage } from './types.js';

export type { Storage, ObjectInfo, PutOptions } from './types.js';
export { FileSystemStorage } from './fs.js';
export { CLAIM_EXPIRY_MS, createExclusive, createExclusiveByClaims, removeClaims, removeExpiredClaims } from './common.js';
export { LazyStorage } from './lazy.js';
export { parseS3Url, type S3Options } from './s3-config.js';
export { parseAzureUrl, type AzureOptions } from './azure-config.js';
export { parseGcsUrl, type GcsOptions } from './gcs-config.js';
// The SDK-backed classes (S3Storage in ./s3.js, AzureBlobStorage in ./azure.js, GcsStorage in
// ./gcs.js) are loaded on first use only; import those modules directly to use them eagerly.

/** An S3 repository; the AWS SDK loads on first use. */
export function s3Storage(options: S3Options): Storage {
  if (!options.bucket) throw new UsageError('No S3 bucket given: write s3://bucket/prefix.');
  return new LazyStorage(s3Location(options), false, async () => new (await import('./s3.js')).S3Storage(options));
}

/** An Azure Blob repository; the Azure SDK loads on first use. */
export function azureStorage(options: AzureOptions): Storage {
  checkAzureOptions(options);
  return new LazyStorage(azureLocation(options), true, async () => new (await import('./azure.js')).AzureBlobStorage(options));
}

/** A Google Cloud Storage repository; the GCS SDK loads on first use. */
export function gcsStorage(options: GcsOptions): Storage {
  checkGcsOptions(options);
  return new LazyStorage(gcsLocation(options), true, async () => new (await import('./gcs.js')).GcsStorage(options));
}

/**
 * Opens the storage a repository URL names: a plain path, `file:///abs/path`,
 * `s3://bucket/prefix?endpoint=…&region=…&forcePathStyle=…&tls=…` or
 * `azure://container/prefix?endpoint=…` or `gs://bucket/prefix?project=…&endpoint=…&auth=false`.
 * Credentials never come from the URL: S3 uses the AWS chain, Azure the AZURE_STORAGE_*
 * variables, GCS Application Default Credentials.
 */
export function openStorage(url: string, env: NodeJS.ProcessEnv = process.env): Storage {
  if (!url) throw new UsageError('No repository given: pass --repo <path or URL>.');
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined) return new FileSystemStorage(isAbsolute(url) ? url : resolve(url));
  if (scheme === 'file') {
    try {
      return new FileSystemStorage(fileURLToPath(url));
    } catch {
      throw new UsageError(`Invalid repository URL "${url}": write file:///absolute/path or a plain path.`);
    }
  }
  if (scheme === 's3') return s3Storage(parseS3Url(url));
  if (scheme === 'azure') return azureStorage(parseAzureUrl(url, env as AzureEnv));
  if (scheme === 'gs') return gcsStorage(parseGcsUrl(url, env as GcsEnv));
  throw new UsageError(
    `Unsupported repository URL scheme "${scheme}://" in "${url}". Supported: a local path, file:///absolute/path, ` +
      's3://bucket/prefix, azure://container/prefix, gs://bucket/prefix.',
  );
}

/** Reads a variable: undefined when unset, a UsageError naming it when set but blank. */
function required(env: NodeJS.ProcessEnv, name: string, what: string): string | undefined {
  const v = env[name];
  if (v === undefined) return undefined;
  if (v.trim() === '') throw new UsageError(`${name} is set but empty: give the ${what}, or unset it.`);
  return v.trim();
}

function orphan(env: NodeJS.ProcessEnv, names: string[], needs: string): void {
  for (const n of names) {
    if (env[n] !== undefined && env[n] !== '') throw new UsageError(`${n} is set but ${needs} is not: set ${needs} too, or unset ${n}.`);
  }
}

/**
 * Server-style configuration: the repository from BACKUP_FILESYSTEM_PATH, BACKUP_S3_*,
 * BACKUP_AZURE_* or BACKUP_GCS_* (exactly one), or undefined when none is set. A misconfigured backend fails at
 * once with a UsageError naming the variable to fix.
 */
export function storageFromEnv(env: NodeJS.ProcessEnv = process.env): Storage | undefined {
  const chosen = ['BACKUP_FILESYSTEM_PATH', 'BACKUP_S3_BUCKET', 'BACKUP_AZURE_CONTAINER', 'BACKUP_GCS_BUCKET'].filter((n) => env[n] !== undefined);
  if (chosen.length > 1) throw new UsageError(`Several repositories are configured (${chosen.join(', ')}): set only one of them.`);
  if (!chosen.includes('BACKUP_S3_BUCKET')) orphan(env, ['BACKUP_S3_PATH', 'BACKUP_S3_ENDPOINT', 'BACKUP_S3_USE_SSL'], 'BACKUP_S3_BUCKET');
  if (!chosen.includes('BACKUP_AZURE_CONTAINER')) orphan(env, ['BACKUP_AZURE_PATH'], 'BACKUP_AZURE_CONTAINER');
  if (!chosen.includes('BACKUP_GCS_BUCKET')) orphan(env, ['BACKUP_GCS_PATH', 'BACKUP_GCS_USE_AUTH'], 'BACKUP_GCS_BUCKET');

  const fsPath = required(env, 'BACKUP_FILESYSTEM_PATH', 'repository folder');
  if (fsPath !== undefined) return new FileSystemStorage(isAbsolute(fsPath) ? fsPath : resolve(fsPath));

  const bucket = required(env, 'BACKUP_S3_BUCKET', 'bucket name');
  if (bucket !== undefined) {
    if (bucket.includes('/')) throw new UsageError('BACKUP_S3_BUCKET holds a bucket name only: put the folder in BACKUP_S3_PATH.');
    const options: S3Options = { bucket, prefix: env.BACKUP_S3_PATH ?? '' };
    const tls = env.BACKUP_S3_USE_SSL === undefined ? undefined : parseBool(env.BACKUP_S3_USE_SSL, 'BACKUP_S3_USE_SSL');
    const endpoint = required(env, 'BACKUP_S3_ENDPOINT', 'S3 endpoint URL');
    if (endpoint !== undefined) options.endpoint = resolveEndpoint(endpoint, tls, 'BACKUP_S3_ENDPOINT');
    else if (tls === false) throw new UsageError('BACKUP_S3_USE_SSL=false needs BACKUP_S3_ENDPOINT: AWS S3 is only reached over TLS.');
    const region = required(env, 'AWS_REGION', 'region');
    if (region !== undefined) options.region = region;
    const keyId = env.AWS_ACCESS_KEY_ID;
    const secret = env.AWS_SECRET_ACCESS_KEY;
    if (keyId !== undefined || secret !== undefined) {
      if (!keyId?.trim()) throw new UsageError('AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is empty or unset: set both, or neither to use the AWS credential chain.');
      if (!secret?.trim()) throw new UsageError('AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is empty or unset: set both, or neither to use the AWS credential chain.');
      options.credentials = { accessKeyId: keyId.trim(), secretAccessKey: secret.trim() };
      if (env.AWS_SESSION_TOKEN) options.credentials.sessionToken = env.AWS_SESSION_TOKEN;
    }
    return s3Storage(options);
  }

  const container = required(env, 'BACKUP_AZURE_CONTAINER', 'container name');
  if (container !== undefined) {
    if (container.includes('/')) throw new UsageError('BACKUP_AZURE_CONTAINER holds a container name only: put the folder in BACKUP_AZURE_PATH.');
    return azureStorage({ container, prefix: env.BACKUP_AZURE_PATH ?? '', ...azureOptionsFromEnv(env as AzureEnv) });
  }

  const gcsBucket = required(env, 'BACKUP_GCS_BUCKET', 'bucket name');
  if (gcsBucket !== undefined) {
    if (gcsBucket.includes('/')) throw new UsageError('BACKUP_GCS_BUCKET holds a bucket name only: put the folder in BACKUP_GCS_PATH.');
    return gcsStorage(gcsOptionsFromEnv(gcsBucket, env));
  }
  return undefined;
}
