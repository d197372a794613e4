/**
 * ArchiveStorage: a `.cairn` archive file read as a read-only repository. The member headers are
 * scanned once (on first use) into a map from key to offset; get/getRange/list/exists are then
 * reads of the file at those offsets. Everything the scan does not like is refused before any
 * object is served: a header with a bad checksum, a member that is not a repository object
 * (`../x`, `/etc/x`, an unknown folder), a duplicate, a size past the end of the file or above
 * 1 GiB, a missing head or end member, another format version.
 *
 * Repository.lock works unchanged: lock objects (`locks/…`) are kept in memory, since several
 * readers of one archive never need to see each other's locks (nothing can write it). Any other
 * put or delete is a StorageError saying the archive is read-only.
 */
import { createHash } from 'node:crypto';
import { createReadStream, openSync, readSync, closeSync, statSync, type Stats } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { basename, isAbsolute, resolve } from 'node:path';
import { ConflictError, CorruptionError, NotFoundError, StorageError, UsageError, throwIfAborted } from '../../core/errors.js';
import { checkKey } from '../common.js';
import { payloadParts } from '../payload.js';
import type { ObjectInfo, Payload, PutOptions, Storage } from '../types.js';
import {
  ARCHIVE_END,
  ARCHIVE_EXTENSION,
  ARCHIVE_FORMAT,
  ARCHIVE_FORMAT_VERSION,
  ARCHIVE_HEAD,
  ArchiveEndSchema,
  ArchiveHeadSchema,
  MAX_ARCHIVE_DOCUMENT_BYTES,
  isArchiveObject,
  type ArchiveEnd,
  type ArchiveHead,
} from './format.js';
import { BLOCK, MAX_MEMBER_BYTES, TarHeaderError, isZeroBlock, padding, parseHeader } from './tar.js';

const LOCKS_PREFIX = 'locks/';

interface Member {
  /** Offset of the member's data (after its header). */
  offset: number;
  size: number;
  modified: Date;
}

/** What a scan learned: the members by key, and the head and end documents. */
export interface ArchiveContents {
  head: ArchiveHead;
  end: ArchiveEnd;
  members: Map<string, Member>;
  /** The archive file's size when it was scanned. */
  fileSize: number;
}

export class ArchiveStorage implements Storage {
  /** How messages name the archive: its path, or what the caller shows instead ("stdin"). */
  readonly location: string;
  /** The archive file's absolute path. */
  readonly path: string;
  readonly atomicCreate = true;
  private scanning: Promise<ArchiveContents> | undefined;
  private readonly locks = new Map<string, { data: Buffer; modified: Date }>();

  /**
   * @param file the archive's path (made absolute). No I/O until first use.
   * @param shownAs what messages call it instead of the path (`import -`: "stdin", not the
   *   temporary file it was spooled to, which is gone by the time the message is read).
   */
  constructor(file: string, shownAs?: string) {
    this.path = isAbsolute(file) ? file : resolve(file);
    this.location = shownAs ?? this.path;
  }

  /** The scanned contents (scanned once; a refused archive is refused on every call). */
  contents(): Promise<ArchiveContents> {
    this.scanning ??= scanArchive(this.path, this.location);
    return this.scanning;
  }

  /**
   * Reads every byte before the end member and compares their SHA-256 with the end member's:
   * any flipped byte, in a pack, a manifest or a header, fails here. Import calls it before it
   * adds anything; verify calls it too. Streams the file: memory stays flat.
   * @throws CorruptionError naming the archive.
   */
  async verifyChecksum(signal?: AbortSignal): Promise<ArchiveEnd> {
    const { end, fileSize } = await this.contents();
    const hash = createHash('sha256');
    let read = 0;
    if (end.bytes > 0) {
      const stream = createReadStream(this.path, { start: 0, end: end.bytes - 1, highWaterMark: 1024 * 1024, ...(signal ? { signal } : {}) });
      try {
        for await (const chunk of stream) {
          hash.update(chunk as Buffer);
          read += (chunk as Buffer).length;
        }
      } catch (err) {
        throwIfAborted(signal);
        throw new StorageError(`Cannot read the archive ${this.location}: ${(err as Error).message}.`, { cause: err });
      }
    }
    if (read !== end.bytes || (await stat(this.path)).size !== fileSize) {
      throw damaged(this.location, 'it changed while it was read');
    }
    if (hash.digest('hex') !== end.sha256) {
      throw damaged(this.location, `its content does not match the checksum in ${ARCHIVE_END} (a damaged or altered byte somewhere in it)`);
    }
    return end;
  }

  async put(key: string, data: Payload, options?: PutOptions): Promise<void> {
    checkKey(key);
    if (!key.startsWith(LOCKS_PREFIX)) throw this.readOnlyError(`write ${key}`);
    if (options?.ifNotExists && this.locks.has(key)) throw new ConflictError(`${key} already exists in ${this.location}.`);
    // A copy: the caller may reuse its buffers; locks are small.
    this.locks.set(key, { data: Buffer.concat(payloadParts(data)), modified: new Date() });
  }

  async get(key: string, signal?: AbortSignal): Promise<Buffer> {
    const lock = this.locks.get(key);
    if (lock) return Buffer.from(lock.data);
    const m = await this.member(key);
    return this.read(m.offset, m.size, signal);
  }

  async getRange(key: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    const lock = this.locks.get(key);
    if (lock) return Buffer.from(lock.data.subarray(offset, offset + length));
    const m = await this.member(key);
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) throw new StorageError(`Invalid range ${offset}+${length} of ${key}.`);
    const start = Math.min(offset, m.size);
    return this.read(m.offset + start, Math.min(length, m.size - start), signal);
  }

  async *list(prefix: string, signal?: AbortSignal): AsyncIterable<ObjectInfo> {
    const { members } = await this.contents();
    for (const [key, m] of members) {
      throwIfAborted(signal);
      if (key.startsWith(prefix)) yield { key, size: m.size, modified: m.modified };
    }
    for (const [key, l] of [...this.locks]) if (key.startsWith(prefix)) yield { key, size: l.data.length, modified: l.modified };
  }

  async delete(key: string): Promise<void> {
    if (key.startsWith(LOCKS_PREFIX)) {
      this.locks.delete(key);
      return;
    }
    throw this.readOnlyError(`delete ${key}`);
  }

  async exists(key: string): Promise<boolean> {
    if (this.locks.has(key)) return true;
    return (await this.contents()).members.has(key);
  }

  private async member(key: string): Promise<Member> {
    const m = (await this.contents()).members.get(key);
    if (!m) throw new NotFoundError(`${key} not found in the archive ${this.location}.`);
    return m;
  }

  private async read(position: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    throwIfAborted(signal);
    const handle = await open(this.path, 'r');
    try {
      const buffer = Buffer.allocUnsafe(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(buffer, done, length - done, position + done);
        if (bytesRead === 0) throw damaged(this.location, 'it is shorter than when it was opened');
        done += bytesRead;
      }
      return buffer;
    } finally {
      await handle.close();
    }
  }

  /** The error every write gets (exit 8): Repository.requireWritable throws it before a writing job starts. */
  readOnlyError(operation: string): StorageError {
    return new StorageError(
      `Cannot ${operation}: ${this.location} is a read-only archive. Import it into a repository first (cairn import ${basename(this.location)} --repo <repo>), then work there.`,
    );
  }
}

function damaged(file: string, why: string): CorruptionError {
  return new CorruptionError(`The archive ${file} is damaged or not a cairn archive: ${why}. Nothing was read from it.`, { objects: [file] });
}

/**
 * Reads the headers of an archive file (not its data, except the small head and end members)
 * and checks its structure: see the module comment for what is refused. `file`: how messages
 * name it (default `path`).
 * @throws CorruptionError naming the archive and the member; UsageError for another format version.
 */
export async function scanArchive(path: string, file = path): Promise<ArchiveContents> {
  let info: Stats;
  try {
    info = await stat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`No archive at ${file}.`);
    throw new StorageError(`Cannot read the archive ${file}: ${(err as Error).message}.`, { cause: err });
  }
  if (!info.isFile()) throw new UsageError(`${file} is not a file: an archive is one .cairn file.`);
  const fileSize = info.size;
  const handle = await open(path, 'r');
  try {
    const readAt = async (position: number, length: number): Promise<Buffer> => {
      const buffer = Buffer.alloc(length);
      const { bytesRead } = await handle.read(buffer, 0, length, position);
      return buffer.subarray(0, bytesRead);
    };
    const members = new Map<string, Member>();
    let head: ArchiveHead | undefined;
    let position = 0;
    let count = 0;
    for (;;) {
      const block = await readAt(position, BLOCK);
      if (block.length < BLOCK) {
        throw damaged(file, position === 0 ? 'it is empty or too short to be one' : `it ends at byte ${fileSize} without its end member ${ARCHIVE_END} (truncated)`);
      }
      if (isZeroBlock(block)) throw damaged(file, `its tar end comes at byte ${position} before its end member ${ARCHIVE_END} (truncated or cut)`);
      let header;
      try {
        header = parseHeader(block);
      } catch (err) {
        if (!(err instanceof TarHeaderError)) throw err;
        throw damaged(file, `the tar header at byte ${position} is invalid: ${err.message}`);
      }
      const name = header.name;
      const shown = JSON.stringify(name.length > 120 ? `${name.slice(0, 120)}…` : name);
      if (header.type !== '0') throw damaged(file, `member ${shown} at byte ${position} is not a regular file (tar type "${header.type}"); a cairn archive holds only files`);
      if (header.size > MAX_MEMBER_BYTES) throw damaged(file, `member ${shown} claims ${header.size} bytes, more than any member may hold (1 GiB)`);
      const offset = position + BLOCK;
      if (offset + header.size > fileSize) {
        throw damaged(file, `member ${shown} claims ${header.size} bytes from byte ${offset}, past the end of the file (${fileSize} bytes): truncated or damaged`);
      }
      if (count === 0) {
        if (name !== ARCHIVE_HEAD) throw damaged(file, `its first member is ${shown}, not ${ARCHIVE_HEAD}`);
        head = parseHead(file, await readAt(offset, Math.min(header.size, MAX_ARCHIVE_DOCUMENT_BYTES + 1)), header.size);
      } else if (name === ARCHIVE_END) {
        if (header.size > MAX_ARCHIVE_DOCUMENT_BYTES) throw damaged(file, `its end member claims ${header.size} bytes`);
        const end = parseEnd(file, await readAt(offset, header.size));
        if (end.members !== count || end.bytes !== position) {
          throw damaged(file, `its end member records ${end.members} members in ${end.bytes} bytes, but ${count} members in ${position} bytes come before it`);
        }
        // Two zero blocks end a tar; a cut in them is a truncation too (and fails other tar readers).
        const after = offset + header.size + padding(header.size);
        const trailer = await readAt(after, 2 * BLOCK);
        if (trailer.length < 2 * BLOCK || !isZeroBlock(trailer)) throw damaged(file, `the tar end blocks after ${ARCHIVE_END} are missing or not zero (truncated or altered)`);
        return { head: head as ArchiveHead, end, members, fileSize };
      } else {
        if (name === ARCHIVE_HEAD) throw damaged(file, `${ARCHIVE_HEAD} appears twice`);
        if (!isArchiveObject(name)) {
          throw damaged(file, `member ${shown} at byte ${position} is not a repository object (a cairn archive holds config, keys/, data/, index/ and backups/ only; never a path with .., an absolute path or another folder)`);
        }
        if (members.has(name)) throw damaged(file, `member ${shown} appears twice`);
        members.set(name, { offset, size: header.size, modified: header.mtime });
      }
      count++;
      position = offset + header.size + padding(header.size);
    }
  } finally {
    await handle.close();
  }
}

/** A document member as JSON. */
function documentJson(file: string, bytes: Buffer, size: number, name: string): unknown {
  if (size > MAX_ARCHIVE_DOCUMENT_BYTES) throw damaged(file, `its ${name} claims ${size} bytes`);
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    throw damaged(file, `its ${name} is not valid JSON`);
  }
}

function parseHead(file: string, bytes: Buffer, size: number): ArchiveHead {
  const json = documentJson(file, bytes, size, ARCHIVE_HEAD) as { format?: unknown; formatVersion?: unknown } | null;
  if (json && typeof json === 'object' && json.format === ARCHIVE_FORMAT && json.formatVersion !== ARCHIVE_FORMAT_VERSION) {
    const v = typeof json.formatVersion === 'number' ? String(json.formatVersion) : JSON.stringify(json.formatVersion)?.slice(0, 20);
    throw new UsageError(
      `The archive ${file} uses archive format version ${v}; this cairn reads version ${ARCHIVE_FORMAT_VERSION} only. ` +
        (typeof json.formatVersion === 'number' && json.formatVersion > ARCHIVE_FORMAT_VERSION ? 'Use a newer cairn (the one that wrote it, or later) to read it.' : 'It was not written by cairn.'),
    );
  }
  const parsed = ArchiveHeadSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw damaged(file, `its ${ARCHIVE_HEAD} is invalid (${issue ? `${issue.path.join('.') || 'top level'}: ${issue.message}` : 'unknown problem'})`);
  }
  return parsed.data;
}

function parseEnd(file: string, bytes: Buffer): ArchiveEnd {
  const parsed = ArchiveEndSchema.safeParse(documentJson(file, bytes, bytes.length, ARCHIVE_END));
  if (!parsed.success) throw damaged(file, `its ${ARCHIVE_END} is invalid`);
  return parsed.data;
}

/**
 * Whether a repository value names an archive: an existing regular file named *.cairn, or any
 * regular file whose first block is a tar header of `cairn-archive.json`. One stat (and at most
 * one 512-byte read); false for folders, URLs and paths that do not exist.
 */
export function isArchiveFile(path: string): boolean {
  let info: Stats;
  try {
    info = statSync(path);
  } catch {
    return false;
  }
  if (!info.isFile()) return false;
  if (path.toLowerCase().endsWith(ARCHIVE_EXTENSION)) return true;
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const block = Buffer.alloc(BLOCK);
    if (readSync(fd, block, 0, BLOCK, 0) < BLOCK) return false;
    return parseHeader(block).name === ARCHIVE_HEAD;
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
