/**
 * File-system steps of putting a restored SQLite file in place (target.ts, linkIntoPlace):
 * whether a name is taken, and the fsyncs that make the new file and its directory entry
 * durable before the restore reports success. Kept here rather than shared with
 * ../../storage/fs.ts: that one's directory sync is private to the storage backend and throws,
 * while a restore must carry on where a directory cannot be fsynced (see fsyncDir).
 */
import fs from 'node:fs';

/** Whether anything is at the path, a dangling symbolic link included. */
export function lexists(file: string): boolean {
  try {
    fs.lstatSync(file);
    return true;
  } catch {
    return false;
  }
}

/**
 * fsync of a file (opened read-write: some platforms refuse to flush a read-only handle), in the
 * thread pool: a whole restored file can take seconds. Throws the file system's error.
 */
export async function fsyncFile(file: string): Promise<void> {
  const handle = await fs.promises.open(file, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** fsync of a path opened with `flags`, on the main thread; throws the file system's error. */
function fsyncPath(file: string, flags: string): void {
  const fd = fs.openSync(file, flags);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * fsync of a directory, so that a name just linked or renamed into it survives a crash. Never
 * throws: where directories cannot be fsynced the rename is atomic all the same.
 */
export function fsyncDir(dir: string): void {
  try {
    fsyncPath(dir, 'r');
  } catch {
    // Some platforms/filesystems cannot fsync a directory; the rename is still atomic.
  }
}
