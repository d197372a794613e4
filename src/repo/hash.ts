import { createHash } from 'node:crypto';

/** Content address of a chunk or pack: SHA-256, lowercase hex (docs/library-choices.md says why). */
export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}
