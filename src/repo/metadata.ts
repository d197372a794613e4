import { compress as zstdCompress, decompress as zstdDecompress } from 'zstd-napi';
import type { z } from 'zod';
import { CorruptionError } from '../core/errors.js';

const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

/**
 * Manifests, indexes and locks: JSON, zstd-compressed with the frame's content checksum
 * (XXH64), so that a flipped bit that still decodes to valid JSON — a changed number in a
 * manifest — is detected on read. Readers also accept plain JSON and frames written before
 * the checksum (no flag).
 */
export function encodeMetadata(doc: unknown): Buffer {
  return zstdCompress(Buffer.from(JSON.stringify(doc), 'utf8'), { compressionLevel: 3, checksumFlag: true });
}

export function decodeMetadata<S extends z.ZodType>(bytes: Buffer, schema: S, what: string): z.infer<S> {
  let json: unknown;
  try {
    const text = bytes.subarray(0, 4).equals(ZSTD_MAGIC) ? zstdDecompress(bytes).toString('utf8') : bytes.toString('utf8');
    json = JSON.parse(text);
  } catch (err) {
    throw new CorruptionError(`${what} cannot be read: ${(err as Error).message}.`, { objects: [what] });
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    const where = first?.path.join('.') || '(root)';
    throw new CorruptionError(`${what} is not valid: ${where}: ${first?.message ?? 'invalid'}.`, { objects: [what] });
  }
  return parsed.data;
}
