import { gunzipSync, gzipSync, constants as zlibConstants } from 'node:zlib';
import { compress as zstdCompress } from 'zstd-napi';
import zstdBinding from 'zstd-napi/binding.js';
import type { CompressionAlgorithm, CompressionLevel } from '../core/schemas.js';
import { CorruptionError } from '../core/errors.js';

/**
 * Named levels map to concrete ones chosen by measurement on the reference machine
 * (docs/library-choices.md): "best" must stay fast enough to back up a large database.
 */
export const COMPRESSION_LEVELS: Record<Exclude<CompressionAlgorithm, 'none'>, Record<CompressionLevel, number>> = {
  zstd: { fastest: 1, default: 3, best: 9 },
  gzip: { fastest: 1, default: 6, best: 9 },
};

export interface CompressedBlob {
  data: Buffer;
  /** "none" when compressing did not make the blob smaller: it is then stored as is. */
  algorithm: CompressionAlgorithm;
}

export function compressBlob(raw: Uint8Array, algorithm: CompressionAlgorithm, level: CompressionLevel): CompressedBlob {
  if (algorithm === 'none') return { data: Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength), algorithm };
  const n = COMPRESSION_LEVELS[algorithm][level];
  const packed =
    algorithm === 'zstd'
      ? zstdCompress(raw, { compressionLevel: n })
      : gzipSync(raw, { level: n, strategy: zlibConstants.Z_DEFAULT_STRATEGY });
  if (packed.length >= raw.byteLength) return { data: Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength), algorithm: 'none' };
  return { data: packed, algorithm };
}

/**
 * Largest raw chunk any cairn writes (the chunker's maximum is 4 MiB by default and at most
 * 64 MiB by validateChunkerParams): a recorded size above it is damage, not data.
 */
export const MAX_RAW_BLOB = 64 * 1024 * 1024;

/**
 * Decompresses one stored blob into exactly `rawLength` bytes (its recorded size). Memory is
 * bounded by that size: a damaged or hostile blob that would inflate further is rejected as soon
 * as it overflows the buffer, never inflated first and measured after (a 33 KB zstd frame can
 * claim a gigabyte).
 * @throws CorruptionError naming `what` when the blob cannot be decoded or has another size.
 */
export function decompressBlob(stored: Uint8Array, algorithm: CompressionAlgorithm, rawLength: number, what: string): Buffer {
  if (!Number.isSafeInteger(rawLength) || rawLength < 0 || rawLength > MAX_RAW_BLOB) {
    throw new CorruptionError(`${what} records an impossible size (${rawLength} bytes).`, { objects: [what] });
  }
  let out: Buffer;
  try {
    if (algorithm === 'none') out = Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength);
    else if (algorithm === 'zstd') {
      // One spare byte: a frame that fills it is longer than recorded.
      const dst = Buffer.allocUnsafe(rawLength + 1);
      const n = zstdBinding.decompress(dst, stored);
      out = dst.subarray(0, n);
    } else out = gunzipSync(stored, { maxOutputLength: rawLength + 1 });
  } catch (err) {
    throw new CorruptionError(`Cannot decompress ${what} (${algorithm}): ${(err as Error).message}.`, { objects: [what] });
  }
  if (out.length !== rawLength) {
    throw new CorruptionError(`${what} decompressed to ${out.length === rawLength + 1 ? 'more than ' + rawLength : out.length} bytes, expected ${rawLength}.`, { objects: [what] });
  }
  return out;
}
