import { gunzipSync, gzipSync, constants as zlibConstants } from 'node:zlib';
import { compress as zstdCompress, decompress as zstdDecompress } from 'zstd-napi';
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

export function decompressBlob(stored: Uint8Array, algorithm: CompressionAlgorithm, rawLength: number, what: string): Buffer {
  let out: Buffer;
  try {
    if (algorithm === 'none') out = Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength);
    else if (algorithm === 'zstd') out = zstdDecompress(stored);
    else out = gunzipSync(stored);
  } catch (err) {
    throw new CorruptionError(`Cannot decompress ${what} (${algorithm}): ${(err as Error).message}.`, { objects: [what] });
  }
  if (out.length !== rawLength) {
    throw new CorruptionError(`${what} decompressed to ${out.length} bytes, expected ${rawLength}.`, { objects: [what] });
  }
  return out;
}
