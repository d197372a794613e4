/**
 * Repository-side helpers for the engine contract suite (test/engines/contract.ts): a file
 * system repository in a temporary folder, a view of it that reports reads of pack files (to
 * cancel a restore while it reads them), and damage to one stored chunk.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChunkIndex } from '../../src/repo/chunk-index.js';
import { packKey } from '../../src/repo/pack.js';
import { Repository } from '../../src/repo/repository.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import type { Storage } from '../../src/storage/types.js';

export interface TempRepository {
  repo: Repository;
  /** The folder the file system storage writes into (packs are under data/). */
  root: string;
  remove(): void;
}

/** A new, empty repository in a fresh temporary folder. */
export async function tempRepository(label: string): Promise<TempRepository> {
  const dir = mkdtempSync(join(tmpdir(), `cairn-ec-${label}-`));
  const root = join(dir, 'repo');
  const repo = await Repository.init(new FileSystemStorage(root));
  return { repo, root, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * The same repository, read through a storage that calls `onPackRead` before every read of a
 * pack (keys under data/): the restore has passed its checks and is loading data.
 */
export async function withPackReadHook(repo: Repository, onPackRead: (key: string) => void): Promise<Repository> {
  const inner = repo.storage;
  const tapped = new Proxy(inner, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const fn = value as (...args: unknown[]) => unknown;
      if (prop === 'get' || prop === 'getRange') {
        return (key: string, ...rest: unknown[]) => {
          if (key.startsWith('data/')) onPackRead(key);
          return fn.call(target, key, ...rest);
        };
      }
      return fn.bind(target);
    },
  }) as Storage;
  return Repository.open(tapped);
}

/**
 * Flips one byte in the middle of a stored chunk, inside its pack file: the pack keeps its name
 * and header, only that chunk no longer matches its hash. Returns the pack's key.
 */
export async function damageChunk(temp: TempRepository, chunkId: string): Promise<string> {
  const { chunks } = await ChunkIndex.load(temp.repo.storage);
  const at = chunks.get(chunkId);
  if (!at) throw new Error(`chunk ${chunkId} is not in the index`);
  const key = packKey(at.packId);
  const file = join(temp.root, ...key.split('/'));
  const bytes = readFileSync(file);
  const pos = at.offset + Math.floor(at.length / 2);
  bytes[pos] = (bytes[pos] as number) ^ 0xff;
  writeFileSync(file, bytes);
  return key;
}
