/**
 * Writes a `.cairn` archive as a stream: members are appended one at a time to any Writable (a
 * file, stdout, an HTTP response), so memory holds at most the member being written. A running
 * SHA-256 over every byte goes into the end member, which is what makes truncation and damage
 * detectable (ArchiveStorage.verifyChecksum).
 */
import { createHash } from 'node:crypto';
import type { Writable } from 'node:stream';
import { StorageError, throwIfAborted } from '../../core/errors.js';
import { payloadLength, payloadParts } from '../payload.js';
import type { ObjectInfo, Payload, PutOptions, Storage } from '../types.js';
import { ARCHIVE_END, ARCHIVE_HEAD, isArchiveObject, type ArchiveEnd } from './format.js';
import { BLOCK, RECORD, encodeHeader, padding } from './tar.js';

/** What finish() reports: the end member's content, and the archive's total size in bytes. */
export interface ArchiveSummary extends ArchiveEnd {
  totalBytes: number;
}

export class ArchiveWriter {
  private readonly hash = createHash('sha256');
  private written = 0;
  private members = 0;
  private queue: Promise<void> = Promise.resolve();
  private failure: Error | undefined;
  private finished = false;

  /**
   * @param out where the tar bytes go; the writer never ends it (the caller owns it: stdout stays open).
   * @param mtime the modification time every member header carries (the archive's creation time).
   */
  constructor(
    private readonly out: Writable,
    private readonly mtime: Date,
  ) {
    out.on('error', (err) => (this.failure ??= err));
  }

  /** Bytes written so far. */
  get bytes(): number {
    return this.written;
  }

  /**
   * Appends one member, after every member added before it (calls are queued, so concurrent
   * callers such as a pack upload and an index write never interleave their bytes).
   * @throws StorageError when the output fails; CancelledError when `signal` aborts first.
   */
  add(name: string, data: Payload, signal?: AbortSignal): Promise<void> {
    const run = this.queue.then(async () => {
      throwIfAborted(signal);
      if (this.finished) throw new Error(`Archive member ${name} added after the end member.`);
      const length = payloadLength(data);
      await this.write(encodeHeader(name, length, this.mtime));
      // Part by part (a pack's blobs): the member is never concatenated in memory.
      for (const part of payloadParts(data)) if (part.byteLength > 0) await this.write(part);
      const pad = padding(length);
      if (pad > 0) await this.write(Buffer.alloc(pad));
      this.members++;
    });
    // The next member waits for this one, whether it succeeded or not (a failure is sticky: see write()).
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * A write-only Storage whose put() appends a member named by the key: what writeIndexDocument
   * and an encrypting view (Repository.sealedView) write through. Only repository-object names
   * are taken; reads are refused (the archive is not readable while it is written).
   */
  sink(location: string): Storage {
    const refuse = (op: string): never => {
      throw new StorageError(`The archive being written to ${location} cannot be read (${op}) while it is written.`);
    };
    return {
      location,
      atomicCreate: true,
      put: async (key: string, data: Payload, options?: PutOptions): Promise<void> => {
        if (!isArchiveObject(key)) throw new Error(`Refusing to write ${key} into an archive: not a repository object name.`);
        await this.add(key, data, options?.signal);
      },
      get: async () => refuse('get'),
      getRange: async () => refuse('getRange'),
      // eslint-disable-next-line require-yield
      list: async function* (): AsyncIterable<ObjectInfo> {
        refuse('list');
      },
      delete: async () => refuse('delete'),
      exists: async () => refuse('exists'),
    };
  }

  /**
   * Writes the end member (members, bytes and SHA-256 of everything before it), the two zero
   * blocks that end a tar, and zeros up to a whole tar record. The output is not ended.
   */
  async finish(signal?: AbortSignal): Promise<ArchiveSummary> {
    await this.queue;
    throwIfAborted(signal);
    if (this.failure) throw outputError(this.failure);
    if (this.members === 0) throw new Error(`An archive needs its ${ARCHIVE_HEAD} member first.`);
    const end: ArchiveEnd = { members: this.members, bytes: this.written, sha256: this.hash.digest('hex') };
    this.finished = true;
    const body = Buffer.from(JSON.stringify(end, null, 2) + '\n');
    await this.write(encodeHeader(ARCHIVE_END, body.length, this.mtime), false);
    await this.write(body, false);
    const total = this.written + padding(body.length) + 2 * BLOCK;
    await this.write(Buffer.alloc(padding(body.length) + 2 * BLOCK + ((RECORD - (total % RECORD)) % RECORD)), false);
    return { ...end, totalBytes: this.written };
  }

  /** Writes to the output, waiting until it took the bytes (backpressure: memory stays flat). */
  private async write(chunk: Uint8Array, hashed = true): Promise<void> {
    if (this.failure) throw outputError(this.failure);
    if (hashed) this.hash.update(chunk);
    this.written += chunk.byteLength;
    await new Promise<void>((resolve, reject) => {
      this.out.write(chunk, (err) => {
        if (err) {
          this.failure ??= err;
          reject(outputError(err));
        } else resolve();
      });
    });
  }
}

function outputError(err: Error): StorageError {
  if (err instanceof StorageError) return err;
  return new StorageError(`Cannot write the archive: ${err.message}.`, { cause: err });
}
