import fs from 'node:fs';
import path from 'node:path';
import { StorageError } from './errors.js';

/**
 * mkdir -p, synchronously, one folder at a time, each created with `mode`: returns the first
 * folder created (as fs.mkdirSync({ recursive: true }) does), or undefined when `dir` existed.
 * Not Node's recursive mkdir: that retries for ever where a folder's parent exists but refuses
 * children with ENOENT (`/proc/x` spins at 100 % CPU, deaf to SIGTERM, on Node 20; see
 * src/storage/fs.ts makeDirs, its asynchronous twin). Errors: StorageError naming the folder
 * that could not be created and why (ENOENT, EACCES, ENOTDIR…), after at most one attempt per
 * path component.
 */
export function makeDirsSync(dir: string, mode: number): string | undefined {
  const missing: string[] = [];
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    try {
      fs.statSync(d);
      break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOTDIR') throw new StorageError(`Cannot create the folder ${dir}: a part of its path is a file, not a folder. Choose another folder.`, { cause: err });
      if (code !== 'ENOENT') throw new StorageError(`Cannot create the folder ${dir} (${code ?? (err as Error).message}). Choose another folder.`, { cause: err });
      missing.push(d);
      if (path.dirname(d) === d) break;
    }
  }
  let first: string | undefined;
  for (const d of missing.reverse()) {
    try {
      fs.mkdirSync(d, { mode });
      first ??= d;
    } catch (err) {
      // Another process created it meanwhile: fine, it is there.
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') continue;
      throw new StorageError(
        `Cannot create the folder ${d} (${code ?? (err as Error).message}): ${code === 'EACCES' || code === 'EPERM' ? 'permission denied' : 'its parent does not accept new folders'}. Choose another folder.`,
        { cause: err },
      );
    }
  }
  return first;
}
