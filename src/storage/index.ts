import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../core/errors.js';
import { FileSystemStorage } from './fs.js';
import type { Storage } from './types.js';

export type { Storage, ObjectInfo, PutOptions } from './types.js';
export { FileSystemStorage } from './fs.js';

/** Opens the storage a repository URL names: `file:///abs/path` or a plain path. */
export function openStorage(url: string): Storage {
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
  throw new UsageError(`Unsupported repository URL scheme "${scheme}://" in "${url}". Supported: a local path or file:///absolute/path.`);
}
