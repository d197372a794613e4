/**
 * Pack files: many compressed blobs followed by a header that lists them, so that a pack can
 * be understood on its own (an index can always be rebuilt from the packs). Layout, see
 * docs/repository-format.md:
 *
 *   blob 0 | blob 1 | … | header (HEADER_ENTRY_SIZE bytes per blob) | u32le header length | "CRNPACK1"
 */
import { createHash } from 'node:crypto';
import type { CompressionAlgorithm, IndexEntry } from '../core/schemas.js';
import { CorruptionError } from '../core/errors.js';

export const PACK_MAGIC = Buffer.from('CRNPACK1', 'ascii');
export const HEADER_ENTRY_SIZE = 1 + 1 + 4 + 4 + 32;
const TRAILER_SIZE = 4 + PACK_MAGIC.length;
const BLOB_TYPE_DATA = 0;

const COMPRESSION_CODES: Record<CompressionAlgorithm, number> = { none: 0, zstd: 1, gzip: 2 };
const COMPRESSION_BY_CODE: CompressionAlgorithm[] = ['none', 'zstd', 'gzip'];

export function packKey(packId: string): string {
  return `data/${packId.slice(0, 2)}/${packId}`;
}

/**
 * A pack ready to store: its bytes are `parts` in order (the blobs as they were added, then the
 * header and trailer), never concatenated, so a pack costs its size in memory once; Storage.put
 * takes the parts as they are.
 */
export interface FinishedPack {
  /** SHA-256 of the whole pack (the parts' concatenation), hex: the pack's name. */
  id: string;
  parts: Buffer[];
  /** Total bytes of the parts. */
  length: number;
  blobs: IndexEntry[];
}

/**
 * A blob that is a small view on a much larger buffer (an incompressible chunk compressed inline
 * is a view on its source's buffer) would keep all of that buffer alive for as long as the pack
 * is held, building and then uploading: such a blob is copied into a buffer of its own.
 */
function compact(stored: Buffer): Buffer {
  return stored.buffer.byteLength > 2 * stored.length + 64 * 1024 ? Buffer.from(stored) : stored;
}

/** Collects blobs in memory until the pack reaches its target size. */
export class PackBuilder {
  private readonly parts: Buffer[] = [];
  private readonly entries: IndexEntry[] = [];
  private size = 0;

  get byteLength(): number {
    return this.size;
  }

  get blobCount(): number {
    return this.entries.length;
  }

  add(id: string, stored: Buffer, rawLength: number, compression: CompressionAlgorithm): IndexEntry {
    const entry: IndexEntry = { id, offset: this.size, length: stored.length, rawLength, compression };
    this.parts.push(compact(stored));
    this.entries.push(entry);
    this.size += stored.length;
    return entry;
  }

  finish(): FinishedPack {
    const header = Buffer.alloc(this.entries.length * HEADER_ENTRY_SIZE + TRAILER_SIZE);
    let p = 0;
    for (const e of this.entries) {
      header.writeUInt8(BLOB_TYPE_DATA, p);
      header.writeUInt8(COMPRESSION_CODES[e.compression], p + 1);
      header.writeUInt32LE(e.length, p + 2);
      header.writeUInt32LE(e.rawLength, p + 6);
      header.write(e.id, p + 10, 32, 'hex');
      p += HEADER_ENTRY_SIZE;
    }
    header.writeUInt32LE(this.entries.length * HEADER_ENTRY_SIZE, p);
    PACK_MAGIC.copy(header, p + 4);
    // The id over the parts as they are: the same SHA-256 as of their concatenation, no copy.
    const hash = createHash('sha256');
    for (const part of this.parts) hash.update(part);
    hash.update(header);
    const parts = [...this.parts, header];
    return { id: hash.digest('hex'), parts, length: this.size + header.length, blobs: this.entries.slice() };
  }
}

/** Reads the blob list from a whole pack; throws CorruptionError when the pack is malformed. */
export function parsePackHeader(pack: Buffer, packId: string): IndexEntry[] {
  const bad = (why: string): CorruptionError =>
    new CorruptionError(`Pack ${packKey(packId)} is damaged: ${why}.`, { objects: [packKey(packId)] });
  if (pack.length < TRAILER_SIZE || !pack.subarray(pack.length - PACK_MAGIC.length).equals(PACK_MAGIC)) {
    throw bad('its trailer is missing');
  }
  const headerLength = pack.readUInt32LE(pack.length - TRAILER_SIZE);
  if (headerLength % HEADER_ENTRY_SIZE !== 0 || headerLength > pack.length - TRAILER_SIZE) throw bad('its header length is invalid');
  const headerStart = pack.length - TRAILER_SIZE - headerLength;
  const entries: IndexEntry[] = [];
  let offset = 0;
  for (let p = headerStart; p < headerStart + headerLength; p += HEADER_ENTRY_SIZE) {
    const compression = COMPRESSION_BY_CODE[pack.readUInt8(p + 1)];
    if (pack.readUInt8(p) !== BLOB_TYPE_DATA || !compression) throw bad('its header names an unknown blob type');
    const length = pack.readUInt32LE(p + 2);
    entries.push({ id: pack.toString('hex', p + 10, p + 42), offset, length, rawLength: pack.readUInt32LE(p + 6), compression });
    offset += length;
  }
  if (offset !== headerStart) throw bad('its header does not match its size');
  return entries;
}
