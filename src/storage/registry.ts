import { UsageError } from '../core/errors.js';
import { ArchiveStorage, isArchiveFile } from './archive/reader.js';
import { azureBackend } from './azure-config.js';
import { envValue } from './common.js';
import { fileBackend } from './fs.js';
import { gcsBackend } from './gcs-config.js';
import { RetryStorage, type RetryOptions } from './middleware/retry.js';
import { s3Backend } from './s3-config.js';
import type { Storage } from './types.js';

/**
 * What a storage backend contributes to the registry: its URL schemes, how it reads a URL and
 * the server-style environment, how it prints where it points without secrets, and how it is
 * built. Each backend declares one in its SDK-free module (`fileBackend` in fs.ts, `s3Backend`
 * in s3-config.ts…) so that opening a local repository never loads a cloud SDK.
 *
 * @typeParam O the backend's options (S3Options…), checked by `parse` and `env.read`.
 */
export interface StorageBackend<O> {
  /** Lowercase URL schemes it serves, without "://" ("s3" for s3://…). */
  schemes: readonly string[];
  /** How its URLs look, for the list of supported ones in errors: "s3://bucket/prefix". */
  form: string;
  /**
   * Options from a URL of one of its schemes (a plain path for the file system backend);
   * credentials come from `env`, never from the URL. No I/O.
   * @throws UsageError naming what to fix.
   */
  parse(url: string, env: NodeJS.ProcessEnv): O;
  /** The storage the options name; no I/O (an SDK-backed one loads on first use: LazyStorage). */
  open(options: O): Storage;
  /**
   * Settings of the retry middleware openStorage wraps it in, or false for none (the local file
   * system, which has no transient failures and which callers recognise by its class).
   */
  retry: false | ((options: O) => RetryOptions);
  /** How it is chosen and configured by server-style variables (storageFromEnv), if at all. */
  env?: StorageEnvSpec<O>;
}

/** The server-style variables of one backend. */
export interface StorageEnvSpec<O> {
  /** The variable that chooses this backend, e.g. BACKUP_S3_BUCKET. */
  select: string;
  /** What it holds, for messages: "bucket name". */
  what: string;
  /** The variable for the folder inside, when `select` names a bucket or container ("/" in `select` is then refused). */
  folder?: string;
  /** Variables that mean nothing without `select`: refused when set alone. */
  companions: readonly string[];
  /** Options once `select` was found set, trimmed and not empty. @throws UsageError naming the variable. */
  read(value: string, env: NodeJS.ProcessEnv): O;
}

/** A registered backend, its options type erased. */
interface Registered {
  schemes: readonly string[];
  form: string;
  fromUrl(url: string, env: NodeJS.ProcessEnv): Storage;
  env?: Omit<StorageEnvSpec<unknown>, 'read'> & { open(value: string, env: NodeJS.ProcessEnv): Storage };
}

const backends: Registered[] = [];
const bySchemes = new Map<string, Registered>();

/**
 * Adds a backend: openStorage serves its schemes, storageFromEnv its variables.
 * @throws Error when a scheme is taken.
 */
export function registerStorageBackend<O>(backend: StorageBackend<O>): void {
  const build = (options: O): Storage => {
    const storage = backend.open(options);
    return backend.retry ? new RetryStorage(storage, backend.retry(options)) : storage;
  };
  const env = backend.env;
  const registered: Registered = {
    schemes: backend.schemes,
    form: backend.form,
    fromUrl: (url, e) => build(backend.parse(url, e)),
    ...(env ? { env: { ...env, open: (value: string, e: NodeJS.ProcessEnv) => build(env.read(value, e)) } } : {}),
  };
  for (const scheme of backend.schemes) {
    if (bySchemes.has(scheme)) throw new Error(`Storage scheme "${scheme}://" is registered twice.`);
  }
  for (const scheme of backend.schemes) bySchemes.set(scheme, registered);
  backends.push(registered);
}

// The built-in backends, in the order their URL forms and variables are listed in messages.
registerStorageBackend(fileBackend);
registerStorageBackend(s3Backend);
registerStorageBackend(azureBackend);
registerStorageBackend(gcsBackend);

/**
 * Opens the storage a repository URL names: a plain path, `file:///abs/path`,
 * `s3://bucket/prefix?endpoint=…&region=…&forcePathStyle=…&tls=…` or
 * `azure://container/prefix?endpoint=…` or `gs://bucket/prefix?project=…&endpoint=…&auth=false`,
 * through the backend registered for its scheme, wrapped in the retry middleware. Credentials
 * never come from the URL: S3 uses the AWS chain, Azure the AZURE_STORAGE_* variables, GCS
 * Application Default Credentials. A local path that is an archive file (isArchiveFile: one stat)
 * opens a read-only ArchiveStorage. No other I/O: a bad configuration fails here, a network one on use.
 * @throws UsageError for an empty or malformed URL or an unknown scheme, naming what to write.
 */
export function openStorage(url: string, env: NodeJS.ProcessEnv = process.env): Storage {
  if (!url) throw new UsageError('No repository given: pass --repo <path or URL>.');
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1]?.toLowerCase() ?? 'file';
  // A .cairn archive file (cairn export) is a read-only repository: restore, verify and list read it in place.
  if (scheme === 'file' && isArchiveFile(fileBackend.parse(url, env))) return new ArchiveStorage(fileBackend.parse(url, env));
  const backend = bySchemes.get(scheme);
  if (!backend) {
    throw new UsageError(`Unsupported repository URL scheme "${scheme}://" in "${url}". Supported: ${backends.map((b) => b.form).join(', ')}.`);
  }
  return backend.fromUrl(url, env);
}

/**
 * Server-style configuration: the repository from the one backend whose selecting variable is
 * set (BACKUP_FILESYSTEM_PATH, BACKUP_S3_BUCKET, BACKUP_AZURE_CONTAINER, BACKUP_GCS_BUCKET), or
 * undefined when none is. A misconfigured backend fails at once with a UsageError naming the
 * variable to fix; so do variables of a backend that is not chosen.
 */
export function storageFromEnv(env: NodeJS.ProcessEnv = process.env): Storage | undefined {
  const specs = backends.flatMap((b) => (b.env ? [b.env] : []));
  const chosen = specs.filter((s) => env[s.select] !== undefined);
  if (chosen.length > 1) throw new UsageError(`Several repositories are configured (${chosen.map((s) => s.select).join(', ')}): set only one of them.`);
  for (const spec of specs) {
    if (spec === chosen[0]) continue;
    for (const n of spec.companions) {
      if (env[n] !== undefined && env[n] !== '') throw new UsageError(`${n} is set but ${spec.select} is not: set ${spec.select} too, or unset ${n}.`);
    }
  }
  const spec = chosen[0];
  if (!spec) return undefined;
  const value = envValue(env, spec.select, spec.what) as string;
  if (spec.folder && value.includes('/')) throw new UsageError(`${spec.select} holds a ${spec.what} only: put the folder in ${spec.folder}.`);
  return spec.open(value, env);
}
