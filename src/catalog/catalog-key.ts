/**
 * The shared catalog's secrets key (CAIRN_CATALOG_KEY): registered sources' URLs (which may carry
 * a password), drill targets' URLs and notification channels' settings are kept in the shared
 * PostgreSQL catalog sealed with it (AES-256-GCM, a fresh 96-bit nonce per value, the row's
 * identity as associated data so a sealed value cannot be moved to another row), never in plain
 * text. Every replica is given the same key; the catalog keeps a check value (an HMAC of a fixed
 * text, not the key) so that a replica with another key refuses to start instead of failing to
 * read every secret later.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { CorruptionError, KeyError, UsageError } from '../core/errors.js';

const PREFIX = 'sealed:v1:';

export class CatalogKey {
  private constructor(private readonly key: Buffer) {}

  /**
   * The key in CAIRN_CATALOG_KEY: 32 bytes as base64 (44 characters) or hex (64).
   * @throws UsageError naming the variable and how to make a key when it is missing or malformed.
   */
  static fromEnv(env: NodeJS.ProcessEnv = process.env): CatalogKey {
    const text = env.CAIRN_CATALOG_KEY?.trim();
    const how = 'make one with `openssl rand -base64 32` and give the same value to every replica (docs/deployment.md)';
    if (!text) throw new UsageError(`A shared catalog needs CAIRN_CATALOG_KEY: registered sources' passwords and channel secrets are stored encrypted with it; ${how}.`);
    const key = /^[0-9a-f]{64}$/i.test(text) ? Buffer.from(text, 'hex') : Buffer.from(text, 'base64');
    if (key.length !== 32 || (!/^[0-9a-f]{64}$/i.test(text) && key.toString('base64') !== text)) {
      throw new UsageError(`CAIRN_CATALOG_KEY is not a 32-byte key in base64 or hex; ${how}.`);
    }
    return new CatalogKey(key);
  }

  /** What the catalog stores to recognise this key (an HMAC of a fixed text; reveals nothing of the key). */
  checkValue(): string {
    return createHmac('sha256', this.key).update('cairn catalog key check v1').digest('hex');
  }

  /** @throws KeyError when `stored` (the catalog's check value) is not this key's. */
  verify(stored: string): void {
    const mine = Buffer.from(this.checkValue(), 'hex');
    const theirs = Buffer.from(stored, 'hex');
    if (theirs.length !== mine.length || !timingSafeEqual(mine, theirs)) {
      throw new KeyError('CAIRN_CATALOG_KEY is not the key this shared catalog was set up with: give this replica the same CAIRN_CATALOG_KEY as the others.');
    }
  }

  seal(plain: string, context: string): string {
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce);
    cipher.setAAD(Buffer.from(context));
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return PREFIX + Buffer.concat([nonce, cipher.getAuthTag(), body]).toString('base64');
  }

  /** @throws CorruptionError when the value is not sealed by this key for this row. */
  unseal(stored: string, context: string): string {
    if (!stored.startsWith(PREFIX)) throw new CorruptionError(`A secret in the shared catalog (${context}) is not sealed; it was written by hand or by another tool. Register it again.`, { objects: [] });
    const raw = Buffer.from(stored.slice(PREFIX.length), 'base64');
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, 12));
      decipher.setAAD(Buffer.from(context));
      decipher.setAuthTag(raw.subarray(12, 28));
      return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
    } catch {
      throw new CorruptionError(`A secret in the shared catalog (${context}) cannot be opened with CAIRN_CATALOG_KEY: it was changed or moved. Register it again.`, { objects: [] });
    }
  }
}
