import { constants as fsConstants, statSync, type Stats } from 'node:fs';
import { chmod, lstat, mkdir, open, readdir, realpath, rename, rm, stat, link, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CairnError, ConflictError, NotFoundError, StorageError, UsageError, throwIfAborted } from '../core/errors.js';
import { randomId } from '../core/ids.js';
import { OWNER_TOKEN_PATTERN, ownerIsDead, ownerToken, parseOwnerToken } from '../core/owner.js';
import type { StorageBackend } from './registry.js';
import { asBuffer, payloadParts } from './payload.js';
import type { ObjectInfo, Payload, PutOptions, Storage } from './types.js';

const TEMP_MARKER = '.tmp-';
/**
 * Modes of what this backend creates, as restic: objects readable by their owner only, folders
 * enterable by their owner only. Set explicitly (chmod after create), so that a permissive
 * umask changes nothing. Existing objects and folders keep their modes.
 */
export const FILE_MODE = 0o600;
export const DIR_MODE = 0o700;

/**
 * A repository in a local (or mounted) directory. Every write goes to a temporary file in the
 * destination folder, is fsynced, then renamed into place and the folder fsynced, so a crash
 * leaves either the whole object or nothing (plus a dot-named temp file that listing ignores).
 */
export class FileSystemStorage implements Storage {
  readonly location: string;
  /** link() refuses to replace a name: create-only writes are atomic. */
  readonly atomicCreate = true;
  private readonly knownDirs = new Set<string>();

  constructor(readonly root: string) {
    this.location = `file://${root}`;
  }

  /**
   * The file of a key. Keys come from cairn and from listings (hostile names included): a key
   * with an empty, "." or ".." segment, a NUL or a backslash never reaches the filesystem, so no
   * key can name anything outside the root.
   */
  private path(key: string): string {
    const parts = key.split('/');
    if (key.length > 4096 || key.includes('\0') || key.includes('\\') || parts.some((p) => p === '' || p === '.' || p === '..')) {
      const shown = key.length > 60 ? `${key.slice(0, 60)}…` : key;
      throw new StorageError(`Invalid object key ${JSON.stringify(shown)}: keys are "/"-separated names without empty, "." or ".." parts.`);
    }
    return join(this.root, ...parts);
  }

  private async ensureDir(dir: string): Promise<void> {
    if (this.knownDirs.has(dir)) return;
    try {
      await makeDirs(dir);
    } catch (err) {
      throw wrap(err, `create the folder ${dir}`, this.location);
    }
    this.knownDirs.add(dir);
    await removeAbandonedTempFiles(dir);
  }

  async put(key: string, data: Payload, options: PutOptions = {}): Promise<void> {
    throwIfAborted(options.signal);
    const target = this.path(key);
    const dir = dirname(target);
    await this.ensureDir(dir);
    // The writer's identity is in the name, so that the next writer in this folder can remove
    // the file if this process dies (kill -9) before renaming it into place.
    const temp = join(dir, `.${basename(target)}${TEMP_MARKER}${ownerToken()}-${randomId(6)}`);
    try {
      const handle = await open(temp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, FILE_MODE);
      try {
        await handle.chmod(FILE_MODE);
        await writeParts(handle, payloadParts(data));
        await handle.sync();
      } finally {
        await handle.close();
      }
      if (options.ifNotExists) {
        // link() refuses to replace an existing name, which makes "create only" atomic here.
        try {
          await link(temp, target);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
            throw new ConflictError(`Object "${key}" already exists in ${this.location}.`);
          }
          throw err;
        }
        await unlink(temp);
      } else {
        await rename(temp, target);
      }
      await syncDir(dir);
    } catch (err) {
      await rm(temp, { force: true });
      throw wrap(err, `write ${key}`, this.location);
    }
  }

  async get(key: string, signal?: AbortSignal): Promise<Buffer> {
    throwIfAborted(signal);
    const handle = await this.openForRead(key);
    try {
      return await handle.readFile();
    } finally {
      await handle.close();
    }
  }

  async getRange(key: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    throwIfAborted(signal);
    const handle = await this.openForRead(key);
    try {
      const buf = Buffer.allocUnsafe(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(buf, done, length - done, offset + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      if (done !== length) {
        throw new StorageError(
          `Object "${key}" in ${this.location} is shorter than expected (wanted bytes ${offset}-${offset + length}).`,
        );
      }
      return buf;
    } finally {
      await handle.close();
    }
  }

  private async openForRead(key: string) {
    try {
      return await open(this.path(key), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new NotFoundError(`Object "${key}" not found in ${this.location}.`);
      }
      throw wrap(err, `read ${key}`, this.location);
    }
  }

  /**
   * Walks the folder under `prefix`. Symbolic links are followed (a `data/xx` linked to another
   * disk is part of the repository), each directory is read once (a link loop ends there), and
   * every error except an entry vanishing while we look throws: a listing that silently leaves
   * objects out would let prune delete data still in use. A link whose target is missing (an
   * unmounted disk) is such an error too.
   */
  async *list(prefix: string, signal?: AbortSignal): AsyncIterable<ObjectInfo> {
    const slash = prefix.lastIndexOf('/');
    const startDir = slash >= 0 ? this.path(prefix.slice(0, slash)) : this.root;
    const visited = new Set<string>();
    const stack = [startDir];
    while (stack.length > 0) {
      throwIfAborted(signal);
      const dir = stack.pop() as string;
      let entries;
      try {
        const dirInfo = await stat(dir);
        const id = `${dirInfo.dev}:${dirInfo.ino}`;
        if (visited.has(id)) continue;
        visited.add(id);
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        // The start folder not existing is an empty listing; a sub-folder removed meanwhile
        // (prune deleting its last pack) held nothing we must report. A link to a missing
        // folder is neither.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw wrap(err, `list ${prefix}`, this.location);
        await this.refuseDanglingLink(dir, prefix);
        continue;
      }
      // Dot-files are temp files; a name with a backslash is one no key can address (path()
      // refuses it) and cairn never writes: neither is an object of the repository.
      const names = entries.filter((entry) => !entry.name.startsWith('.') && !entry.name.includes('\\')).map((entry) => entry.name);
      // stat() without a thread-pool round trip per file (4-5× faster for a folder of 10,000
      // manifests), in slices of 128 with a turn of the event loop between them so that no
      // request waits behind a large folder.
      for (let at = 0; at < names.length; at += 128) {
        if (at > 0) await new Promise<void>((resolve) => setImmediate(resolve));
        for (const name of names.slice(at, at + 128)) {
          const full = join(dir, name);
          const key = relative(this.root, full).split(sep).join('/');
          const info = this.statNow(full, prefix) ?? (await this.statEntry(full, key, prefix));
          if (!info) continue;
          if (info.isDirectory()) {
            // Descend only where keys under the prefix can be.
            const folder = `${key}/`;
            if (folder.startsWith(prefix) || prefix.startsWith(folder)) stack.push(full);
            continue;
          }
          if (!info.isFile() || !key.startsWith(prefix)) continue;
          yield { key, size: info.size, modified: info.mtime };
        }
      }
    }
  }

  /** statSync following links; undefined when it failed with ENOENT (statEntry then says why). */
  private statNow(full: string, prefix: string): Stats | undefined {
    try {
      return statSync(full);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw wrap(err, `list ${prefix}`, this.location);
      return undefined;
    }
  }

  /** stat() following links; undefined when the entry vanished meanwhile. */
  private async statEntry(full: string, key: string, prefix: string) {
    try {
      return await stat(full);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw wrap(err, `list ${prefix}`, this.location);
    }
    await this.refuseDanglingLink(full, prefix, key);
    return undefined;
  }

  /** Throws when `full` (missing as far as stat() can tell) is a symbolic link to nothing. */
  private async refuseDanglingLink(full: string, prefix: string, key = relative(this.root, full).split(sep).join('/')): Promise<void> {
    const link = await lstat(full).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return undefined;
      throw wrap(err, `list ${prefix}`, this.location);
    });
    if (link?.isSymbolicLink()) {
      throw new StorageError(
        `Cannot list ${prefix} in ${this.location}: "${key || '.'}" is a symbolic link to something that does not exist ` +
          '(an unmounted disk?). Restore its target before running anything on this repository.',
      );
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await rm(this.path(key), { force: true });
    } catch (err) {
      throw wrap(err, `delete ${key}`, this.location);
    }
  }

  async linksOutside(key: string): Promise<boolean> {
    try {
      const [root, real] = await Promise.all([realpath(this.root), realpath(this.path(key))]);
      return real !== root && !real.startsWith(root.endsWith(sep) ? root : `${root}${sep}`);
    } catch {
      return false; // gone (or unreadable): nothing there to protect
    }
  }

  async exists(key: string): Promise<boolean> {
    try {
      await stat(this.path(key));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw wrap(err, `stat ${key}`, this.location);
    }
  }

  /**
   * Removes temp files older than `maxAgeMs` that crashed writers left behind, in linked folders
   * too. Age is measured on the filesystem's clock (a probe file's mtime, unless `now` is given in
   * ms), which on a network mount may differ from ours.
   */
  async removeStaleTempFiles(maxAgeMs: number, now?: number): Promise<number> {
    const reference = now ?? (await this.fileSystemNow());
    let removed = 0;
    const visited = new Set<string>();
    const stack = [this.root];
    while (stack.length > 0) {
      const dir = stack.pop() as string;
      const dirInfo = await stat(dir).catch(() => undefined);
      if (!dirInfo || visited.has(`${dirInfo.dev}:${dirInfo.ino}`)) continue;
      visited.add(`${dirInfo.dev}:${dirInfo.ino}`);
      const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
      for (const entry of entries) {
        const full = join(dir, entry.name);
        const isTemp = entry.name.startsWith('.') && entry.name.includes(TEMP_MARKER);
        if (!isTemp && !entry.isDirectory() && !entry.isSymbolicLink()) continue;
        const info = await stat(full).catch(() => undefined);
        if (!info) continue;
        if (info.isDirectory()) stack.push(full);
        else if (isTemp && info.isFile() && reference - info.mtimeMs > maxAgeMs) {
          await rm(full, { force: true });
          removed++;
        }
      }
    }
    return removed;
  }

  /** The filesystem's current time: the mtime of a file written now (then removed). */
  private async fileSystemNow(): Promise<number> {
    await this.ensureDir(this.root);
    const probe = join(this.root, `.clock${TEMP_MARKER}${randomId(6)}`);
    try {
      await writeFile(probe, '', { mode: FILE_MODE });
      return (await stat(probe)).mtimeMs;
    } finally {
      await rm(probe, { force: true });
    }
  }
}

const OWNED_TEMP = new RegExp(`^\\..*${TEMP_MARKER.replace('.', '\\.')}(${OWNER_TOKEN_PATTERN})-[0-9a-f]+$`);

/**
 * Removes, in one folder, the temp files of writers that are provably dead (same host, boot and
 * PID namespace, pid gone or reused: see src/core/owner.ts). Runs once per folder per process,
 * on its first write there, so a killed backup's half-written object is gone after the next run
 * without a scan of the whole repository; files of writers that may be alive are never touched.
 */
async function removeAbandonedTempFiles(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    const m = OWNED_TEMP.exec(name);
    const owner = m ? parseOwnerToken(m[1] as string) : undefined;
    if (owner && ownerIsDead(owner)) await rm(join(dir, name), { force: true }).catch(() => undefined);
  }
}

/** Parts written one after the other (at most this many per writev, the usual IOV_MAX). */
const WRITEV_MAX_PARTS = 1024;

/**
 * Writes the parts in order from the file's current position, with writev: a pack of 10,000
 * small blobs takes ten calls, not 10,000, and nothing is concatenated first. A short write (the
 * kernel may stop a large writev early) goes on from where it stopped.
 */
async function writeParts(handle: FileHandle, parts: readonly Uint8Array[]): Promise<void> {
  const queue = parts.filter((p) => p.byteLength > 0).map(asBuffer);
  let next = 0;
  while (next < queue.length) {
    let { bytesWritten } = await handle.writev(queue.slice(next, next + WRITEV_MAX_PARTS));
    if (bytesWritten === 0) throw new Error('the disk accepted no bytes (writev wrote 0)');
    while (next < queue.length && bytesWritten >= (queue[next] as Buffer).length) bytesWritten -= (queue[next++] as Buffer).length;
    if (bytesWritten > 0) queue[next] = (queue[next] as Buffer).subarray(bytesWritten);
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * mkdir -p, one folder at a time, each created one chmod-ed to DIR_MODE. Not Node's
 * mkdir({ recursive: true }): that retries for ever where a folder's parent exists but refuses
 * children with ENOENT (/proc/x spins at 100% CPU, deaf to SIGTERM, on Node 20). Here every step
 * is a single mkdir, so the walk ends after at most one attempt per path component.
 */
async function makeDirs(dir: string): Promise<void> {
  const missing: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    try {
      await stat(d);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      missing.push(d);
      if (dirname(d) === d) break;
    }
  }
  for (const d of missing.reverse()) {
    try {
      await mkdir(d, { mode: DIR_MODE });
    } catch (err) {
      // Another writer created it meanwhile: fine, it is there.
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
      // ENOENT although the parent was just found: a parent that takes no new folders (/proc,
      // /sys: the kernel's view, not a disk), or one removed meanwhile. Node's "ENOENT … mkdir"
      // leaves the user guessing.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new StorageError(
          `Cannot create the folder ${d}: its parent ${dirname(d)} does not accept new folders (a virtual filesystem such as /proc or /sys, or it was removed meanwhile). Choose a folder on a disk, e.g. under your home folder or /var/backups.`,
          { cause: err },
        );
      }
      throw err;
    }
    await chmod(d, DIR_MODE);
  }
}

function wrap(err: unknown, action: string, location: string): Error {
  if (err instanceof CairnError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  const why =
    code === 'ENOSPC'
      ? 'the disk is full. Free space and retry.'
      : code === 'EACCES' || code === 'EPERM'
        ? "permission denied. Check the folder's owner and mode."
        : code === 'EROFS'
          ? 'the filesystem is read-only.'
          : code === 'ENOTDIR'
            ? notADirectory((err as NodeJS.ErrnoException).path, location.slice('file://'.length))
            : err instanceof Error
            ? `${err.message}.`
            : String(err);
  return new StorageError(`Cannot ${action} in ${location}: ${why}`, { cause: err });
}

/**
 * Why a path gave ENOTDIR, and what to do: the first of its parent paths (from the root down) that
 * exists and is not a folder, e.g. "not a directory: /tmp/x/f is a regular file; choose …". Node's
 * own message names the whole path only, which leaves the user to find the culprit.
 */
function notADirectory(path: string | undefined, root?: string): string {
  const fix = 'choose a path whose parent folders are all folders.';
  if (path !== undefined) {
    const ancestors: string[] = [];
    for (let p = path; ; p = dirname(p)) {
      ancestors.unshift(p);
      if (dirname(p) === p) break;
    }
    for (const p of ancestors) {
      let s: Stats;
      try {
        s = statSync(p);
      } catch {
        break; // it does not exist (or cannot be looked at): nothing below it to blame
      }
      if (!s.isDirectory()) {
        // The repository's own path is the file: its parents are fine, the path itself is not.
        if (p === root) return `${p} is ${kindOf(s)}, not a folder; give a new or empty folder as the repository.`;
        return `not a directory: ${p} is ${kindOf(s)}; ${fix}`;
      }
    }
  }
  return `not a directory (a part of the path is not a folder); ${fix}`;
}

function kindOf(s: Stats): string {
  if (s.isFile()) return 'a regular file';
  if (s.isFIFO()) return 'a named pipe';
  if (s.isSocket()) return 'a socket';
  if (s.isCharacterDevice()) return 'a character device';
  if (s.isBlockDevice()) return 'a block device';
  return 'not a folder';
}

/** A local (or mounted) folder: a plain path, relative to the working directory, or file:///absolute/path. */
export const fileBackend: StorageBackend<string> = {
  schemes: ['file'],
  form: 'a local path, file:///absolute/path',
  parse(url) {
    if (!/^file:\/\//i.test(url)) return isAbsolute(url) ? url : resolve(url);
    try {
      return fileURLToPath(url);
    } catch {
      throw new UsageError(`Invalid repository URL "${url}": write file:///absolute/path or a plain path.`);
    }
  },
  open: (root) => new FileSystemStorage(root),
  // Local errors (ENOSPC, EACCES, EIO) do not pass with a retry; and callers such as the server's
  // check of the data folder recognise a FileSystemStorage by its class.
  retry: false,
  env: {
    select: 'BACKUP_FILESYSTEM_PATH',
    what: 'repository folder',
    companions: [],
    read: (path) => (isAbsolute(path) ? path : resolve(path)),
  },
};
