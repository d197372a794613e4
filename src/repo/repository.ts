import {
  BackupManifestSchema,
  FORMAT_VERSION,
  RepositoryConfigSchema,
  type BackupManifest,
  type CompressionSettings,
  type RepositoryConfig,
} from '../core/schemas.js';
import { ConflictError, CorruptionError, NotFoundError, UsageError } from '../core/errors.js';
import { randomId, validateBackupId } from '../core/ids.js';
import type { Storage } from '../storage/types.js';
import { createExclusive, removeClaims } from '../storage/common.js';
import { DEFAULT_CHUNKER_PARAMS, validateChunkerParams, type ChunkerParams } from './chunker.js';
import { decodeMetadata, encodeMetadata } from './metadata.js';
import { RepositoryLock } from './lock.js';
import { mapLimit } from './concurrency.js';

export const CONFIG_KEY = 'config';
export const DEFAULT_PACK_SIZE = 16 * 1024 * 1024;

export function manifestKey(id: string): string {
  return `backups/${id}`;
}

export interface InitOptions {
  compression?: CompressionSettings;
  packSize?: number;
  chunker?: ChunkerParams;
}

/**
 * A repository: self-describing storage of packs, indexes and backup manifests. Any cairn that
 * can reach the storage can open it, because the config object says how everything was written.
 */
export class Repository {
  private constructor(
    readonly storage: Storage,
    readonly config: RepositoryConfig,
  ) {}

  get location(): string {
    return this.storage.location;
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
    for (const prefix of ['backups/', 'index/', 'data/']) {
      for await (const info of storage.list(prefix)) {
        throw new ConflictError(
          `${storage.location} already holds cairn repository data (${info.key}) but no config object: its config was lost or removed. ` +
            'Nothing was written. Restore the config from a copy of the repository, or choose an empty location for a new one.',
        );
      }
    }
    const config: RepositoryConfig = {
      formatVersion: FORMAT_VERSION,
      id: randomId(16),
      createdAt: new Date().toISOString(),
      hash: 'sha256',
      chunker: { algorithm: 'fastcdc-2020', ...chunker },
      compression: options.compression ?? { algorithm: 'zstd', level: 'default' },
      packSize,
      encryption: { algorithm: 'none' },
    };
    try {
      // The config is plain JSON so that any tool (and a human) can tell what a repository is.
      await storage.put(CONFIG_KEY, Buffer.from(JSON.stringify(config, null, 2) + '\n'), { ifNotExists: true });
    } catch (err) {
      if (err instanceof ConflictError) {
        throw new ConflictError(`A repository already exists at ${storage.location}; use it as it is, or choose another location.`);
      }
      throw err;
    }
    return new Repository(storage, config);
  }

  static async open(storage: Storage): Promise<Repository> {
    let bytes: Buffer;
    try {
      bytes = await storage.get(CONFIG_KEY);
    } catch (err) {
      if (err instanceof NotFoundError) {
        throw new NotFoundError(`No cairn repository at ${storage.location}. Create one with: cairn repo init ${storage.location}`);
      }
      throw err;
    }
    let json: { formatVersion?: unknown };
    try {
      json = JSON.parse(bytes.toString('utf8')) as { formatVersion?: unknown };
    } catch {
      throw new CorruptionError(`The config of the repository at ${storage.location} is not valid JSON.`, { objects: [CONFIG_KEY] });
    }
    if (typeof json.formatVersion === 'number' && json.formatVersion > FORMAT_VERSION) {
      throw new UsageError(
        `The repository at ${storage.location} uses format version ${json.formatVersion}; this cairn reads version ${FORMAT_VERSION}. Upgrade cairn.`,
      );
    }
    const config = decodeMetadata(bytes, RepositoryConfigSchema, `Repository config at ${storage.location}`);
    return new Repository(storage, config);
  }

  /**
   * Takes a shared or exclusive repository lock. `waitMs`: keep retrying that long while the
   * repository is locked (default 0: fail at once with LockedError).
   */
  lock(exclusive: boolean, operation: string, options: { waitMs?: number; signal?: AbortSignal } = {}): Promise<RepositoryLock> {
    return RepositoryLock.acquire(this.storage, { exclusive, operation, ...options });
  }

  async listBackupIds(signal?: AbortSignal): Promise<string[]> {
    const ids: string[] = [];
    for await (const info of this.storage.list('backups/', signal)) ids.push(info.key.slice('backups/'.length));
    return ids.sort();
  }

  async hasBackup(id: string): Promise<boolean> {
    return this.storage.exists(manifestKey(validateBackupId(id)));
  }

  async readManifest(id: string, signal?: AbortSignal): Promise<BackupManifest> {
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
    const manifest = decodeMetadata(bytes, BackupManifestSchema, `Manifest of backup "${id}" (${manifestKey(id)})`);
    if (manifest.id !== id) {
      throw new CorruptionError(`Manifest ${manifestKey(id)} names another backup ("${manifest.id}"): it was altered or misplaced. Run cairn repair.`, {
        objects: [manifestKey(id)],
      });
    }
    return manifest;
  }

  /**
   * Every readable backup, oldest first, and the manifests that cannot be read (named, not
   * thrown): one damaged manifest must not hide every other backup from list or verify.
   */
  async readAllManifests(signal?: AbortSignal): Promise<{ manifests: BackupManifest[]; damaged: { id: string; message: string }[] }> {
    const ids = await this.listBackupIds(signal);
    const damaged: { id: string; message: string }[] = [];
    const read = await mapLimit(ids, 8, async (id) => {
      try {
        return await this.readManifest(id, signal);
      } catch (err) {
        if (err instanceof NotFoundError) return undefined; // deleted since the listing
        if (!(err instanceof CorruptionError)) throw err;
        damaged.push({ id, message: err.message });
        return undefined;
      }
    });
    const manifests = read.filter((m): m is BackupManifest => m !== undefined);
    manifests.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
    return { manifests, damaged: damaged.sort((a, b) => a.id.localeCompare(b.id)) };
  }

  /** Every backup, oldest first. */
  async listManifests(signal?: AbortSignal): Promise<BackupManifest[]> {
    const ids = await this.listBackupIds(signal);
    const manifests = await mapLimit(ids, 8, (id) => this.readManifest(id, signal));
    return manifests.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  }

  /** The manifest is written last and only once: its existence is what makes a backup visible. */
  async writeManifest(manifest: BackupManifest, signal?: AbortSignal): Promise<void> {
    try {
      // Create-only even where the backend's conditional put is not atomic (claims, see
      // createExclusive): two backups that picked the same generated id never overwrite each other.
      await createExclusive(this.storage, manifestKey(manifest.id), encodeMetadata(manifest), signal);
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
    const lock = await this.lock(false, `update ${manifest.id}`);
    try {
      if (!(await this.hasBackup(manifest.id))) throw new NotFoundError(`Backup "${manifest.id}" not found in ${this.location}.`);
      await this.storage.put(manifestKey(manifest.id), encodeMetadata(manifest), { signal });
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
    const lock = await this.lock(false, `delete ${id}`);
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

export function duplicateBackup(id: string, location: string): ConflictError {
  return new ConflictError(`A backup with id "${id}" already exists in ${location}. Choose another --id, or omit --id to generate one.`);
}
