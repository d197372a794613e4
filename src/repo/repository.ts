import {
  BackupManifestSchema,
  REPOSITORY_FORMAT_VERSION,
  RepositoryConfigSchema,
  type BackupManifest,
  type CompressionSettings,
  type RepositoryConfig,
} from '../core/schemas.js';
import { ConflictError, CorruptionError, NotFoundError, UsageError } from '../core/errors.js';
import { isBackupId, quotePrefix, randomId, validateBackupId } from '../core/ids.js';
import type { Storage } from '../storage/types.js';
import { createExclusive, removeClaims } from '../storage/common.js';
import { DEFAULT_CHUNKER_PARAMS, validateChunkerParams, type ChunkerParams } from './chunker.js';
import { MAX_SMALL_DOCUMENT_BYTES, checkManifestChecksum, decodeJson, encodeManifest, manifestChecksum, parseDocument } from './metadata.js';
import { RepositoryLock, type LockOptions } from './lock.js';
import { SEALED_MAGIC, keyedChunkId } from './crypto.js';
import { EncryptedStorage } from './encrypted-storage.js';
import { sha256Hex } from './hash.js';
import { createFirstSlot, currentSlotId, hasKeyObjects, rememberUnlocked, unlock, unlockedKeysOf, type Unlocked } from './keys.js';

/** How long a lock() keeps retrying while the repository is locked, and how it says so (LockOptions). */
export type LockRetry = Pick<LockOptions, 'waitMs' | 'signal' | 'onWait'>;
import { mapLimit } from '../core/errgroup.js';

export const CONFIG_KEY = 'config';
export const DEFAULT_PACK_SIZE = 16 * 1024 * 1024;

export function manifestKey(id: string): string {
  return `backups/${id}`;
}

/** A manifest object as listed: its backup id, size in bytes as stored, and modified time (storage clock). */
export interface BackupObject {
  id: string;
  size: number;
  modified: Date;
}

/** A manifest as read, and whether it carried a checksum (format-1 manifests may not). */
export interface ReadManifest {
  manifest: BackupManifest;
  checksummed: boolean;
}

/**
 * Decodes a stored manifest: bounded decode, checksum (required in format-2 repositories),
 * schema, and its id against the name it was stored under. Every reader goes through this.
 * @throws CorruptionError naming the object and the field.
 */
export function decodeManifest(bytes: Buffer, id: string, options: { checksumRequired: boolean; what?: string }): ReadManifest {
  const key = manifestKey(id);
  const what = options.what ?? `Manifest of backup "${id}" (${key})`;
  const json = decodeJson(bytes, what, [key]);
  const state = checkManifestChecksum(json, what, [key], options.checksumRequired);
  const manifest = parseDocument(json, BackupManifestSchema, what, [key]);
  if (manifest.id !== id) {
    throw new CorruptionError(`Manifest ${key} names another backup (${quotePrefix(manifest.id)}): it was altered or misplaced. Run cairn repair.`, {
      objects: [key],
    });
  }
  delete manifest.checksum;
  return { manifest, checksummed: state === 'checksummed' };
}

/**
 * Parses a stored config: bounded decode, then the schema (chunker and pack-size bounds, so a
 * hostile config can make no writer allocate without bound or loop).
 * @throws UsageError for a newer format; CorruptionError naming the field otherwise.
 */
export function parseRepositoryConfig(bytes: Buffer, location: string): RepositoryConfig {
  const what = `Repository config at ${location}`;
  const json = decodeJson(bytes, what, [CONFIG_KEY], MAX_SMALL_DOCUMENT_BYTES) as { formatVersion?: unknown } | null;
  const version = json !== null && typeof json === 'object' ? json.formatVersion : undefined;
  if (typeof version === 'number' && Number.isSafeInteger(version) && version > REPOSITORY_FORMAT_VERSION) {
    throw new UsageError(
      `The repository at ${location} uses format version ${version}; this cairn reads versions up to ${REPOSITORY_FORMAT_VERSION}. Upgrade cairn.`,
    );
  }
  // Format 2 configs carry a checksum (a flipped bit in the id or a size is damage, not another
  // repository); format 1 ones do not.
  checkManifestChecksum(json, what, [CONFIG_KEY], version === REPOSITORY_FORMAT_VERSION);
  const config = parseDocument(json, RepositoryConfigSchema, what, [CONFIG_KEY]);
  delete config.checksum;
  return config;
}

/** The config as stored: pretty JSON (people and other tools read it), with its checksum. */
export function encodeRepositoryConfig(config: RepositoryConfig): Buffer {
  const plain = JSON.parse(JSON.stringify(config)) as Record<string, unknown>;
  delete plain.checksum;
  return Buffer.from(JSON.stringify({ ...plain, checksum: manifestChecksum(plain) }, null, 2) + '\n');
}

/** Message for an object under backups/ whose name is not a backup id. */
export function foreignManifestMessage(key: string): string {
  return `${quotePrefix(key)} under backups/ is not a backup: its name is not a backup id (cairn never writes such a name). Move it away, or run cairn repair, which quarantines it.`;
}

export interface InitOptions {
  compression?: CompressionSettings;
  packSize?: number;
  chunker?: ChunkerParams;
  /** Client-side encryption (AES-256-GCM, keyed chunk ids) with a first key slot for `password`. */
  encryption?: { password: string };
}

export interface OpenOptions {
  /**
   * Gives the password of an encrypted repository; called only when the config says it is
   * encrypted (a plain repository never asks).
   */
  password?: () => Promise<string>;
  /** Keys already unlocked for the repository with this id (openWithKeysOf): used instead of a password when the ids match. */
  unlocked?: { id: string; keys: Unlocked };
  signal?: AbortSignal;
}

/** The password sources, for messages: where cairn looks for a repository's password. */
export const PASSWORD_SOURCES = 'CAIRN_PASSWORD, CAIRN_PASSWORD_FILE or --password-command (or type it at the prompt on a terminal)';

/**
 * A repository: self-describing storage of packs, indexes and backup manifests. Any cairn that
 * can reach the storage can open it, because the config object says how everything was written.
 */
export class Repository {
  /**
   * `storage`: what cairn reads and writes through (for an encrypted repository, the view that
   * seals and opens every object); `rawStorage`: the backend underneath (the same object for a
   * plain repository).
   */
  readonly storage: Storage;
  private readonly idKey: Buffer | undefined;
  private readonly keyFingerprint: string | undefined;

  private constructor(
    readonly rawStorage: Storage,
    readonly config: RepositoryConfig,
    unlocked?: Unlocked,
  ) {
    this.storage = unlocked ? new EncryptedStorage(rawStorage, unlocked.keys.dataKey) : rawStorage;
    this.idKey = unlocked?.keys.idKey;
    this.keyFingerprint = unlocked?.keys.fingerprint;
    if (unlocked) rememberUnlocked(this, unlocked);
    this.chunkId = this.idKey ? keyedChunkId.bind(undefined, this.idKey) : sha256Hex;
    this.sealedView = unlocked ? (inner: Storage) => new EncryptedStorage(inner, unlocked.keys.dataKey) : (inner: Storage) => inner;
  }

  get location(): string {
    return this.storage.location;
  }

  /** Whether every object but the config and key slots is encrypted (client-side). */
  get encrypted(): boolean {
    return this.config.encryption.algorithm !== 'none';
  }

  /** The key slot whose password opened this repository (encrypted repositories). */
  get keySlotId(): string | undefined {
    return currentSlotId(this);
  }

  /**
   * The id of a chunk with this raw content: SHA-256 hex, or, in an encrypted repository,
   * HMAC-SHA256 keyed with the repository's id key (so the store cannot confirm known content).
   */
  readonly chunkId: (raw: Uint8Array) => string;

  /**
   * A view of another storage that seals objects with this repository's keys (an archive being
   * written of an encrypted repository); `inner` itself for a plain repository.
   */
  readonly sealedView: (inner: Storage) => Storage;

  /** Whether a chunk id means the same content here and in `other` (both plain, or the same keys). */
  sameChunkIds(other: Repository): boolean {
    return this.config.hash === other.config.hash && this.keyFingerprint === other.keyFingerprint;
  }

  static async init(storage: Storage, options: InitOptions = {}): Promise<Repository> {
    const chunker = options.chunker ?? DEFAULT_CHUNKER_PARAMS;
    validateChunkerParams(chunker);
    const packSize = options.packSize ?? DEFAULT_PACK_SIZE;
    if (!Number.isInteger(packSize) || packSize < 1024 * 1024 || packSize > 1024 * 1024 * 1024) {
      throw new UsageError(`Invalid pack size ${packSize}: choose between 1 MiB and 1024 MiB.`);
    }
    // A location that holds repository objects but no config lost its config: writing a new
    // one (another id, maybe other chunker settings) would hide that and mix two repositories.
    if (await storage.exists(CONFIG_KEY)) {
      throw new ConflictError(`A repository already exists at ${storage.location}; use it as it is, or choose another location.`);
    }
    for (const prefix of ['backups/', 'index/', 'data/', 'keys/']) {
      for await (const info of storage.list(prefix)) {
        throw new ConflictError(
          `${storage.location} already holds cairn repository data (${info.key}) but no config object: its config was lost or removed. ` +
            'Nothing was written. Restore the config from a copy of the repository, or choose an empty location for a new one.',
        );
      }
    }
    const config: RepositoryConfig = {
      formatVersion: REPOSITORY_FORMAT_VERSION,
      id: randomId(16),
      createdAt: new Date().toISOString(),
      hash: 'sha256',
      chunker: { algorithm: 'fastcdc-2020', ...chunker },
      compression: options.compression ?? { algorithm: 'zstd', level: 'default' },
      packSize,
      encryption: options.encryption ? { algorithm: 'aes-256-gcm', chunkIds: 'hmac-sha256' } : { algorithm: 'none' },
    };
    // The first key slot goes before the config: a slot is bound to the repository id, so one
    // left by an init that stopped here opens nothing, while a config without a slot would be
    // an encrypted repository nobody can open.
    const unlocked = options.encryption ? await createFirstSlot(storage, config.id, options.encryption.password) : undefined;
    try {
      // The config is plain JSON so that any tool (and a human) can tell what a repository is.
      await storage.put(CONFIG_KEY, encodeRepositoryConfig(config), { ifNotExists: true });
    } catch (err) {
      if (err instanceof ConflictError) {
        throw new ConflictError(`A repository already exists at ${storage.location}; use it as it is, or choose another location.`);
      }
      throw err;
    }
    return new Repository(storage, config, unlocked);
  }

  /**
   * Opens the repository at `storage`; an encrypted one with the password `options.password`
   * gives.
   * @throws NotFoundError (no repository); UsageError (encrypted and no password source);
   *   KeyError (wrong password); CorruptionError (config or key slots damaged, or a config that
   *   says "not encrypted" beside key slots: altered to make cairn write plain data).
   */
  static async open(storage: Storage, options: OpenOptions = {}): Promise<Repository> {
    let bytes: Buffer;
    try {
      bytes = await storage.get(CONFIG_KEY, options.signal);
    } catch (err) {
      if (err instanceof NotFoundError) {
        throw new NotFoundError(`No cairn repository at ${storage.location}. Create one with: cairn repo init ${storage.location}`);
      }
      throw err;
    }
    const config = parseRepositoryConfig(bytes, storage.location);
    if (config.encryption.algorithm === 'none') {
      // The config is plain text: one edited to say "none" would make a cairn write the next
      // backups in the clear into an encrypted repository. Key slots give it away.
      // Key slots give it away, and so do sealed objects (key slots moved aside as well).
      const evidence = (await hasKeyObjects(storage, options.signal)) ? 'key slots (keys/)' : await sealedObject(storage, options.signal);
      if (evidence !== undefined) {
        throw new CorruptionError(
          `The config of ${storage.location} says the repository is not encrypted, but it holds ${evidence}: the config was altered or replaced. Nothing was read or written. Restore the config (and keys/) from a copy of the repository.`,
          { objects: [CONFIG_KEY] },
        );
      }
      return new Repository(storage, config);
    }
    if (options.unlocked && options.unlocked.id === config.id) return new Repository(storage, config, options.unlocked.keys);
    if (!options.password) {
      throw new UsageError(`The repository at ${storage.location} is encrypted: give its password with ${PASSWORD_SOURCES}.`);
    }
    const password = await options.password();
    return new Repository(storage, config, await unlock(storage, config.id, password, options.signal));
  }

  /**
   * Opens the repository at `storage` (an exported archive of `sibling`, say) with the keys of
   * the opened repository `sibling`, without a password: possible only when it is `sibling`'s
   * own repository (same id, so the same master secret) or it is not encrypted.
   * @throws UsageError when it is encrypted with other keys (`otherwise` says what to do);
   *   otherwise as open().
   */
  static async openWithKeysOf(storage: Storage, sibling: Repository, otherwise: string): Promise<Repository> {
    const unlocked = unlockedKeysOf(sibling);
    return Repository.open(storage, {
      password: () => Promise.reject(new UsageError(otherwise)),
      ...(unlocked ? { unlocked: { id: sibling.config.id, keys: unlocked } } : {}),
    });
  }

  /** Whether the repository can never be written (a `.cairn` archive). */
  get readOnly(): boolean {
    return this.rawStorage.readOnlyError !== undefined;
  }

  /**
   * @param operation what would write, as a phrase after "Cannot" ("back up into it").
   * @throws StorageError (exit 8) on a read-only repository, saying to import the archive first.
   */
  requireWritable(operation: string): void {
    const err = this.rawStorage.readOnlyError?.(operation);
    if (err) throw err;
  }

  /** Format 2 and later: a manifest without a checksum is refused (format 1 reads it, flagged). */
  get checksumsRequired(): boolean {
    return this.config.formatVersion >= 2;
  }

  /**
   * How every lock() of this repository waits when its caller does not say (the CLI's
   * `--retry-lock`): set once after opening, so each operation that locks (backup, restore, copy,
   * verify, prune, repair, delete, set-expiry) honours it without passing it down.
   */
  lockRetry: LockRetry = {};

  /**
   * Takes a shared or exclusive repository lock. `waitMs`: keep retrying that long while the
   * repository is locked (default: lockRetry's, else 0: fail at once with LockedError); `signal`
   * (combined with lockRetry's) cancels the wait with CancelledError; `onWait` as in LockOptions.
   */
  lock(exclusive: boolean, operation: string, options: LockRetry & { writes?: string } = {}): Promise<RepositoryLock> {
    // The one place a writing job is refused on a read-only repository (an archive), before any
    // work: every writer locks first, exclusive (prune, repair) or naming what it writes.
    if (exclusive || options.writes !== undefined) this.requireWritable(options.writes ?? `run ${operation} on it`);
    const d = this.lockRetry;
    const signals = [options.signal, d.signal].filter((s): s is AbortSignal => s !== undefined);
    const waitMs = options.waitMs ?? d.waitMs;
    const onWait = options.onWait ?? d.onWait;
    return RepositoryLock.acquire(this.storage, {
      exclusive,
      operation,
      ...(waitMs !== undefined ? { waitMs } : {}),
      ...(onWait ? { onWait } : {}),
      ...(signals.length > 0 ? { signal: signals.length === 1 ? signals[0] : AbortSignal.any(signals) } : {}),
    });
  }

  /** The backup ids under backups/; objects there whose name is not a backup id are left out. */
  async listBackupIds(signal?: AbortSignal): Promise<string[]> {
    return (await this.listBackupKeys(signal)).ids;
  }

  /**
   * The names under backups/: `ids` are backup ids, `foreign` the keys that are not (a folder
   * `backups/sub/dir`, a name with odd characters): never read as a backup, never used to build
   * another key; listing reports them, prune refuses while they exist, repair quarantines them.
   */
  async listBackupKeys(signal?: AbortSignal): Promise<{ ids: string[]; foreign: string[] }> {
    const ids: string[] = [];
    const foreign: string[] = [];
    for await (const info of this.storage.list('backups/', signal)) {
      const name = info.key.slice('backups/'.length);
      if (info.key.startsWith('backups/') && isBackupId(name)) ids.push(name);
      else foreign.push(info.key);
    }
    return { ids: ids.sort(), foreign: foreign.sort() };
  }

  /**
   * listBackupKeys with each manifest object's size (bytes as stored) and modified time (the
   * storage's clock): what a summary cache validates its rows against (jobs/backup-summaries.ts).
   */
  async listBackupObjects(signal?: AbortSignal): Promise<{ objects: BackupObject[]; foreign: string[] }> {
    const objects: BackupObject[] = [];
    const foreign: string[] = [];
    for await (const info of this.storage.list('backups/', signal)) {
      const name = info.key.slice('backups/'.length);
      if (info.key.startsWith('backups/') && isBackupId(name)) objects.push({ id: name, size: info.size, modified: info.modified });
      else foreign.push(info.key);
    }
    return { objects: objects.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)), foreign: foreign.sort() };
  }

  async hasBackup(id: string): Promise<boolean> {
    return this.storage.exists(manifestKey(validateBackupId(id)));
  }

  async readManifest(id: string, signal?: AbortSignal): Promise<BackupManifest> {
    return (await this.readManifestChecked(id, signal)).manifest;
  }

  /** readManifest, also saying whether the manifest carried a checksum. */
  async readManifestChecked(id: string, signal?: AbortSignal): Promise<ReadManifest> {
    validateBackupId(id);
    let bytes: Buffer;
    try {
      bytes = await this.storage.get(manifestKey(id), signal);
    } catch (err) {
      if (err instanceof NotFoundError) {
        throw new NotFoundError(`Backup "${id}" not found in ${this.location}. List the backups with: cairn backup list --repo ${this.location}`);
      }
      throw err;
    }
    return decodeManifest(bytes, id, { checksumRequired: this.checksumsRequired });
  }

  /**
   * Every readable backup, oldest first, and the manifests that cannot be read (named, not
   * thrown): one damaged manifest must not hide every other backup from list or verify. Objects
   * under backups/ whose name is not a backup id are reported in `damaged` too (their `id` is
   * the key after "backups/"), and `unchecksummed` names the manifests read without a checksum
   * (format-1 repositories only).
   */
  async readAllManifests(
    signal?: AbortSignal,
  ): Promise<{ manifests: BackupManifest[]; damaged: { id: string; message: string }[]; unchecksummed: string[] }> {
    const { ids, foreign } = await this.listBackupKeys(signal);
    const damaged: { id: string; message: string }[] = foreign.map((key) => ({ id: key.slice('backups/'.length), message: foreignManifestMessage(key) }));
    const unchecksummed: string[] = [];
    const read = await mapLimit(ids, 8, async (id, _i, signal) => {
      try {
        const r = await this.readManifestChecked(id, signal);
        if (!r.checksummed) unchecksummed.push(id);
        return r.manifest;
      } catch (err) {
        if (err instanceof NotFoundError) return undefined; // deleted since the listing
        if (!(err instanceof CorruptionError)) throw err;
        damaged.push({ id, message: err.message });
        return undefined;
      }
    }, signal);
    const manifests = read.filter((m): m is BackupManifest => m !== undefined);
    manifests.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
    return { manifests, damaged: damaged.sort((a, b) => a.id.localeCompare(b.id)), unchecksummed: unchecksummed.sort() };
  }

  /**
   * Every backup, oldest first.
   * @throws CorruptionError when any manifest cannot be read or an object under backups/ is not
   *   a backup (prune must never act on a partial picture).
   */
  async listManifests(signal?: AbortSignal): Promise<BackupManifest[]> {
    const { ids, foreign } = await this.listBackupKeys(signal);
    if (foreign.length > 0) throw new CorruptionError(foreignManifestMessage(foreign[0] as string), { objects: foreign });
    const manifests = await mapLimit(ids, 8, (id, _i, group) => this.readManifest(id, group), signal);
    return manifests.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  }

  /** The manifest is written last and only once: its existence is what makes a backup visible. */
  async writeManifest(manifest: BackupManifest, signal?: AbortSignal): Promise<void> {
    checkWritable(manifest);
    try {
      // Create-only even where the backend's conditional put is not atomic (claims, see
      // createExclusive): two backups that picked the same generated id never overwrite each other.
      await createExclusive(this.storage, manifestKey(manifest.id), encodeManifest(manifest), signal);
    } catch (err) {
      if (err instanceof ConflictError) throw duplicateBackup(manifest.id, this.location);
      throw err;
    }
  }

  /**
   * Rewrites an existing backup's manifest with changed metadata (its expiry): the data it
   * references is the same, so only the manifest object is replaced.
   */
  async updateManifest(manifest: BackupManifest, signal?: AbortSignal): Promise<void> {
    // Shared: only prune (which must see a stable set of references) needs the exclusive lock.
    checkWritable(manifest);
    const lock = await this.lock(false, `update ${manifest.id}`, { writes: `change backup ${manifest.id} in it` });
    try {
      if (!(await this.hasBackup(manifest.id))) throw new NotFoundError(`Backup "${manifest.id}" not found in ${this.location}.`);
      await this.storage.put(manifestKey(manifest.id), encodeManifest(manifest), { signal });
    } finally {
      await lock.release();
    }
  }

  /**
   * Removes the manifest only; the data it alone referenced goes at the next prune. A shared
   * lock is enough: dropping references is safe beside backups (they only add) and restores
   * (prune, which needs the exclusive lock, cannot remove packs while they read).
   */
  async deleteBackup(id: string): Promise<void> {
    const lock = await this.lock(false, `delete ${id}`, { writes: `delete backup ${id} from it` });
    try {
      if (!(await this.hasBackup(id))) {
        throw new NotFoundError(`Backup "${id}" not found in ${this.location}.`);
      }
      await this.storage.delete(manifestKey(id));
      // Without this the id could not be used again for a day on a backend without atomic create.
      await removeClaims(this.storage, manifestKey(id)).catch(() => undefined);
    } finally {
      await lock.release();
    }
  }
}

/**
 * The first manifest or index document, when it is sealed (an encrypted repository's object):
 * described for the message, else undefined. Two listings' first pages and at most two reads.
 */
async function sealedObject(storage: Storage, signal?: AbortSignal): Promise<string | undefined> {
  for (const prefix of ['backups/', 'index/']) {
    for await (const info of storage.list(prefix, signal)) {
      const head = await storage.getRange(info.key, 0, Math.min(info.size, SEALED_MAGIC.length), signal).catch(() => undefined);
      if (head?.equals(SEALED_MAGIC)) return `encrypted objects (${info.key})`;
      break;
    }
  }
  return undefined;
}

/**
 * A manifest is only ever written under a backup id, whatever the document claims, and only if
 * every reader will accept it (the same schema and bounds): a backup is never made visible in a
 * form that would then read as damaged.
 */
function checkWritable(manifest: BackupManifest): void {
  if (!isBackupId(manifest.id)) {
    throw new CorruptionError(`Refusing to write a manifest under ${quotePrefix(String(manifest.id))}: not a backup id. Nothing was written.`, { objects: [] });
  }
  const parsed = BackupManifestSchema.safeParse(manifest);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    const where = first?.path.map((p) => String(p).slice(0, 40)).join('.') || '(root)';
    throw new UsageError(
      `Cannot write backup "${manifest.id}": its manifest would not be readable (${where}: ${(first?.message ?? 'invalid').slice(0, 200)}). Nothing was made visible.`,
    );
  }
}

export function duplicateBackup(id: string, location: string): ConflictError {
  return new ConflictError(`A backup with id "${id}" already exists in ${location}. Choose another --id, or omit --id to generate one.`);
}
