import { statSync } from 'node:fs';
import { UsageError } from '../core/errors.js';
import { parseBool, parseStoreUrl, publicEndpoint, resolveEndpoint, storeLocation, type StoreUrlSpec } from './common.js';
import { openLazily } from './lazy.js';
import type { StorageBackend } from './registry.js';

/** Objects above this size are sent as a resumable upload (a single-request upload below it), like S3 multipart. */
export const DEFAULT_GCS_RESUMABLE_THRESHOLD = 64 * 1024 * 1024;
/** Resumable uploads go in requests of this size, so a broken one resumes from the last chunk (a multiple of 256 KiB). */
export const DEFAULT_GCS_CHUNK_SIZE = 16 * 1024 * 1024;
/** Retries after the first attempt (6 attempts in all, like S3). */
export const DEFAULT_GCS_MAX_RETRIES = 5;

const CHUNK_GRANULARITY = 256 * 1024;

export interface GcsOptions {
  bucket: string;
  /** Folder inside the bucket; "" for the bucket root. */
  prefix?: string;
  /** Project id handed to the SDK (`?project=` / GCP_PROJECT); object operations do not need one. */
  projectId?: string;
  /**
   * JSON API endpoint of an emulator or a private / regional endpoint, e.g. http://127.0.0.1:4443;
   * https://storage.googleapis.com when absent.
   */
  endpoint?: string;
  /**
   * true (default): Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's
   * application-default login, the attached service account). false: no credentials are sent, for
   * an emulator; needs `endpoint`.
   */
  auth?: boolean;
  /** Retries after the first attempt, with exponential backoff and jitter; 0 turns retries off. */
  maxRetries?: number;
  resumableThreshold?: number;
  chunkSize?: number;
  /** Objects per listing page (GCS caps it at 1000). */
  listPageSize?: number;
}

/** Environment variables the GCS backend reads (a subset of process.env). */
export interface GcsEnv {
  GOOGLE_APPLICATION_CREDENTIALS?: string;
  GCP_PROJECT?: string;
  /** The SDK's own emulator variable: when set, the SDK sends its requests there. */
  STORAGE_EMULATOR_HOST?: string;
}

/**
 * GCS bucket names: lowercase letters, digits, "-", "_" and ".", starting and ending with a letter
 * or digit, 3–63 characters (up to 222 with dots, each dot-separated part at most 63).
 */
export function checkGcsBucket(bucket: string, where: string): void {
  const ok =
    /^[a-z0-9][a-z0-9._-]*[a-z0-9]$/.test(bucket) &&
    bucket.length >= 3 &&
    bucket.length <= (bucket.includes('.') ? 222 : 63) &&
    bucket.split('.').every((part) => part.length > 0 && part.length <= 63);
  if (!ok) {
    throw new UsageError(
      `Invalid GCS bucket name "${bucket}" (${where}): a bucket name has 3 to 63 lowercase letters, digits, "-", "_" ` +
        'or ".", and starts and ends with a letter or digit.',
    );
  }
}

/** Whether an endpoint is Google's own service (which always needs credentials). */
function isGoogleEndpoint(endpoint: string): boolean {
  try {
    const host = new URL(endpoint).hostname.toLowerCase();
    return host === 'googleapis.com' || host.endsWith('.googleapis.com');
  } catch {
    return false;
  }
}

/** An endpoint as the SDK compares it: with a scheme, without trailing slashes. */
export function sameGcsEndpoint(a: string, b: string): boolean {
  const norm = (e: string) => (/^[a-z][a-z0-9+.-]*:\/\//i.test(e.trim()) ? e.trim() : `https://${e.trim()}`).replace(/\/+$/, '');
  return norm(a) === norm(b);
}

/**
 * An endpoint the SDK can use as it is: it appends "/storage/v1/…" to it and prints the whole URL in
 * its errors, so user info or a query string would be both broken and leaked.
 */
function checkPlainEndpoint(endpoint: string, what: string): string {
  const u = new URL(endpoint);
  if (u.username || u.password || u.search || u.hash) {
    throw new UsageError(
      `${what} must be a plain address such as http://127.0.0.1:4443, without user info or a query string: ` +
        'GCS credentials come from GOOGLE_APPLICATION_CREDENTIALS, not from the endpoint.',
    );
  }
  return endpoint;
}

/** Refuses options the SDK or the service would refuse later (or silently misread), naming what to fix. */
export function checkGcsOptions(options: GcsOptions): void {
  if (!options.bucket) throw new UsageError('No GCS bucket given: write gs://bucket/prefix.');
  checkGcsBucket(options.bucket, `in gs://${options.bucket}`);
  if (options.auth === false) {
    if (!options.endpoint) {
      throw new UsageError(
        'GCS authentication is off (auth=false / BACKUP_GCS_USE_AUTH=false), which is for an emulator: give its address ' +
          'with the "endpoint" URL parameter or STORAGE_EMULATOR_HOST, or turn authentication back on.',
      );
    }
    if (isGoogleEndpoint(options.endpoint)) {
      throw new UsageError(
        `GCS authentication is off (auth=false / BACKUP_GCS_USE_AUTH=false) but the endpoint ${publicEndpoint(options.endpoint)} ` +
          "is Google's own service, which needs credentials: turn authentication back on.",
      );
    }
  }
  const chunk = options.chunkSize ?? DEFAULT_GCS_CHUNK_SIZE;
  if (chunk < CHUNK_GRANULARITY || chunk % CHUNK_GRANULARITY !== 0) {
    throw new UsageError('The GCS chunk size must be a multiple of 256 KiB.');
  }
}

/** Where a GCS repository lives, safe to print (no credentials; the endpoint without user info or query). */
export function gcsLocation(options: GcsOptions): string {
  return storeLocation('gs', options.bucket, options.prefix, options.endpoint);
}

/**
 * Completes URL or BACKUP_GCS_* options from the environment: the project from GCP_PROJECT (unless
 * given), the endpoint from STORAGE_EMULATOR_HOST (which the SDK obeys whatever it is told), and a
 * check that GOOGLE_APPLICATION_CREDENTIALS, when set, names a file. Credentials themselves are
 * left to the SDK (Application Default Credentials).
 */
export function completeGcsOptions(options: GcsOptions, env: GcsEnv, endpointWhat: string | undefined): GcsOptions {
  if (options.projectId === undefined && env.GCP_PROJECT !== undefined) {
    if (!env.GCP_PROJECT.trim()) throw new UsageError('GCP_PROJECT is set but empty: give the project id, or unset it.');
    options.projectId = env.GCP_PROJECT.trim();
  }
  const emulator = env.STORAGE_EMULATOR_HOST;
  if (emulator !== undefined) {
    if (!emulator.trim()) throw new UsageError("STORAGE_EMULATOR_HOST is set but empty: give the emulator's address, or unset it.");
    const resolved = checkPlainEndpoint(resolveEndpoint(emulator, undefined, 'STORAGE_EMULATOR_HOST'), 'STORAGE_EMULATOR_HOST');
    if (options.endpoint === undefined) options.endpoint = resolved;
    else if (!sameGcsEndpoint(options.endpoint, resolved)) {
      throw new UsageError(
        `STORAGE_EMULATOR_HOST (${publicEndpoint(resolved)}) and ${endpointWhat ?? 'the endpoint'} (${publicEndpoint(options.endpoint)}) ` +
          'disagree, and the GCS SDK sends its requests to STORAGE_EMULATOR_HOST: unset it, or make them the same.',
      );
    }
  }
  if (options.auth !== false) {
    const keyFile = env.GOOGLE_APPLICATION_CREDENTIALS;
    if (keyFile !== undefined) {
      if (!keyFile.trim()) {
        throw new UsageError(
          'GOOGLE_APPLICATION_CREDENTIALS is set but empty: give the path of a service-account key file, or unset it to use ' +
            "gcloud's application-default login or the attached service account.",
        );
      }
      let isFile = false;
      try {
        isFile = statSync(keyFile).isFile();
      } catch {
        throw new UsageError(
          `GOOGLE_APPLICATION_CREDENTIALS names "${keyFile}", which does not exist: fix the path of the service-account key file, ` +
            "or unset it to use gcloud's application-default login or the attached service account.",
        );
      }
      if (!isFile) throw new UsageError(`GOOGLE_APPLICATION_CREDENTIALS names "${keyFile}", which is not a file: give the key file's path.`);
    }
  }
  checkGcsOptions(options);
  return options;
}

const GCS_URL: StoreUrlSpec = {
  service: 'GCS',
  form: 'gs://bucket/prefix',
  holder: 'bucket',
  params: ['endpoint', 'project', 'auth'],
  credentials:
    'set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file ' +
    "(or use gcloud's application-default login or an attached service account)",
  secretParams: { pattern: /key|secret|token|password|credential/i, credentials: 'set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file' },
};

/**
 * Parses `gs://bucket/prefix?project=…&endpoint=…&auth=false`. Credentials never go in the URL:
 * they come from Application Default Credentials.
 */
export function parseGcsUrl(url: string, env: GcsEnv = process.env): GcsOptions {
  const { url: u, holder: bucket, prefix } = parseStoreUrl(url, GCS_URL);
  checkGcsBucket(bucket, 'the bucket in the gs:// URL');
  const options: GcsOptions = { bucket, prefix };
  const project = u.searchParams.get('project');
  if (project !== null) {
    if (!project.trim()) throw new UsageError('The "project" URL parameter is empty: give the project id, or leave it out.');
    options.projectId = project.trim();
  }
  const endpoint = u.searchParams.get('endpoint');
  if (endpoint !== null) {
    options.endpoint = checkPlainEndpoint(resolveEndpoint(endpoint, undefined, 'the "endpoint" URL parameter'), 'The "endpoint" URL parameter');
  }
  const auth = u.searchParams.get('auth');
  if (auth !== null) options.auth = parseBool(auth, 'the "auth" URL parameter');
  return completeGcsOptions(options, env, 'the "endpoint" URL parameter');
}

/** Options from the server-style variables, once BACKUP_GCS_BUCKET has been read and checked for "/". */
export function gcsOptionsFromEnv(bucket: string, env: GcsEnv & { BACKUP_GCS_PATH?: string; BACKUP_GCS_USE_AUTH?: string }): GcsOptions {
  checkGcsBucket(bucket, 'BACKUP_GCS_BUCKET');
  const options: GcsOptions = { bucket, prefix: env.BACKUP_GCS_PATH ?? '' };
  if (env.BACKUP_GCS_USE_AUTH !== undefined) options.auth = parseBool(env.BACKUP_GCS_USE_AUTH, 'BACKUP_GCS_USE_AUTH');
  if (options.auth === false && env.STORAGE_EMULATOR_HOST === undefined) {
    throw new UsageError(
      "BACKUP_GCS_USE_AUTH=false is for an emulator: set STORAGE_EMULATOR_HOST to the emulator's address, or unset " +
        'BACKUP_GCS_USE_AUTH to use Application Default Credentials.',
    );
  }
  return completeGcsOptions(options, env, undefined);
}

/** Google Cloud Storage; the GCS SDK loads on first use. */
export const gcsBackend: StorageBackend<GcsOptions> = {
  schemes: ['gs'],
  form: GCS_URL.form,
  parse: (url, env) => parseGcsUrl(url, env as GcsEnv),
  open: openLazily(checkGcsOptions, gcsLocation, true, async (options) => new (await import('./gcs.js')).GcsStorage(options)),
  // The SDK retries requests; the middleware repeats reads cut off midway, with the same budget.
  retry: (options) => ({ attempts: Math.max(0, options.maxRetries ?? DEFAULT_GCS_MAX_RETRIES) + 1 }),
  env: {
    select: 'BACKUP_GCS_BUCKET',
    what: 'bucket name',
    folder: 'BACKUP_GCS_PATH',
    companions: ['BACKUP_GCS_PATH', 'BACKUP_GCS_USE_AUTH'],
    read: (bucket, env) => gcsOptionsFromEnv(bucket, env as GcsEnv & { BACKUP_GCS_PATH?: string; BACKUP_GCS_USE_AUTH?: string }),
  },
};
