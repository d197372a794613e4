/**
 * The cryptography of encrypted repositories, in one place: sealing objects (AES-256-GCM),
 * keyed chunk ids (HMAC-SHA256), the keys derived from the master secret (HKDF-SHA256) and the
 * password-based key derivation of key slots (scrypt). Everything comes from node:crypto
 * (OpenSSL); nothing here is home-made cryptography, only the choice and framing of primitives.
 *
 * Design sources: restic's repository design (a random master key, wrapped per password in key
 * files; everything else encrypted and authenticated) and kopia's (content ids keyed with HMAC so
 * that the store cannot confirm known content).
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, scrypt as scryptCallback, timingSafeEqual } from 'node:crypto';
import { CorruptionError, UsageError } from '../core/errors.js';

/** Magic of a sealed object: "CRNE" then the format byte 1. */
export const SEALED_MAGIC = Buffer.from('CRNE\x01', 'latin1');
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
/** Bytes a sealed object adds to its plaintext: magic, nonce, tag. */
export const SEALED_OVERHEAD = SEALED_MAGIC.length + NONCE_BYTES + TAG_BYTES;
/** Length of the master secret and of each derived key, in bytes. */
export const KEY_BYTES = 32;
export const MASTER_SECRET_BYTES = 64;

/** The keys an unlocked repository works with, derived from its master secret. */
export interface RepositoryKeys {
  /** AES-256-GCM key for every sealed object. */
  readonly dataKey: Buffer;
  /** HMAC-SHA256 key for chunk ids. */
  readonly idKey: Buffer;
  /** Compares keys without revealing them: equal fingerprints = same keys. */
  readonly fingerprint: string;
}

/**
 * Derives the working keys from a master secret (HKDF-SHA256, RFC 5869, with the repository id
 * as salt, so the same secret in two repositories would still give different keys).
 */
export function deriveKeys(masterSecret: Buffer, repositoryId: string): RepositoryKeys {
  const salt = Buffer.from(repositoryId, 'utf8');
  const dataKey = Buffer.from(hkdfSync('sha256', masterSecret, salt, 'cairn data key v1', KEY_BYTES));
  const idKey = Buffer.from(hkdfSync('sha256', masterSecret, salt, 'cairn chunk id key v1', KEY_BYTES));
  const fingerprint = Buffer.from(hkdfSync('sha256', masterSecret, salt, 'cairn key fingerprint v1', 16)).toString('hex');
  return { dataKey, idKey, fingerprint };
}

/** Keyed chunk id: HMAC-SHA256(idKey, raw content), hex. The store cannot compute it for content it knows. */
export function keyedChunkId(idKey: Buffer, raw: Uint8Array): string {
  return createHmac('sha256', idKey).update(raw).digest('hex');
}

/**
 * Seals `plain` under `key` with AES-256-GCM and a random 96-bit nonce; `aad` (the object's key
 * in the repository) is authenticated too, so an object moved to another name fails to open.
 * Output: magic | nonce | ciphertext | tag. Random nonces: at 2^32 objects per key the
 * collision bound (NIST SP 800-38D §8.3) is still far away for a backup repository.
 */
export function seal(key: Buffer, plain: Uint8Array, aad: string): Buffer {
  const parts = sealParts(key, [plain], aad);
  return Buffer.concat(parts, SEALED_OVERHEAD + plain.length);
}

/**
 * seal() over plaintext given in parts (one object: their concatenation), returning the sealed
 * object in parts: magic and nonce, the ciphertext of each part (GCM is a stream mode: each
 * update gives exactly as many bytes as it takes), the tag. Byte for byte what seal() gives for
 * the concatenated plaintext, without building that concatenation or the sealed one.
 */
export function sealParts(key: Buffer, plain: Uint8Array | readonly Uint8Array[], aad: string): Buffer[] {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const out: Buffer[] = [Buffer.concat([SEALED_MAGIC, nonce])];
  for (const part of plain instanceof Uint8Array ? [plain] : plain) {
    if (part.byteLength > 0) out.push(cipher.update(part));
  }
  const final = cipher.final();
  if (final.length > 0) out.push(final);
  out.push(cipher.getAuthTag());
  return out;
}

/**
 * Opens a sealed object.
 * @throws CorruptionError naming `what` when it is not a sealed object or fails authentication
 *   (altered, truncated, written under another name or with another key).
 */
export function unseal(key: Buffer, sealed: Uint8Array, aad: string, what: string): Buffer {
  const bytes = Buffer.isBuffer(sealed) ? sealed : Buffer.from(sealed.buffer, sealed.byteOffset, sealed.length);
  if (bytes.length < SEALED_OVERHEAD || !bytes.subarray(0, SEALED_MAGIC.length).equals(SEALED_MAGIC)) {
    throw new CorruptionError(
      // No advice here: each reader (a lock, a manifest, a pack) adds what fits it.
      `${what} is not an encrypted object of this repository (${bytes.length < SEALED_OVERHEAD ? 'too short' : 'no encryption header'}): it was altered, truncated or written by something else.`,
      { objects: [aad] },
    );
  }
  const nonce = bytes.subarray(SEALED_MAGIC.length, SEALED_MAGIC.length + NONCE_BYTES);
  const tag = bytes.subarray(bytes.length - TAG_BYTES);
  const decipher = createDecipheriv('aes-256-gcm', key, nonce);
  decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(tag);
  const body = decipher.update(bytes.subarray(SEALED_MAGIC.length + NONCE_BYTES, bytes.length - TAG_BYTES));
  try {
    return Buffer.concat([body, decipher.final()]);
  } catch {
    throw new CorruptionError(
      `${what} failed authentication: it was altered or damaged after it was written (or moved from another name).`,
      { objects: [aad] },
    );
  }
}

/**
 * scrypt parameters of a key slot. The default is OWASP's minimum for scrypt (Password Storage
 * Cheat Sheet: N = 2^17, r = 8, p = 1; 128 MiB of memory); measured here at ~1.7 s per
 * derivation on one core (docs/security.md).
 */
export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}
export const DEFAULT_SCRYPT: ScryptParams = { N: 2 ** 17, r: 8, p: 1 };
/**
 * Test suites only: `CAIRN_TEST_WEAK_KDF=1` makes new key slots cheap to open (N = 2^10). A slot
 * keeps the parameters it was written with, so this never weakens an existing repository.
 */
export function scryptParamsForNewSlot(env: NodeJS.ProcessEnv = process.env): ScryptParams {
  return env.CAIRN_TEST_WEAK_KDF === '1' ? { N: 2 ** 10, r: 8, p: 1 } : DEFAULT_SCRYPT;
}

/** Bounds a stored slot's parameters may take: a hostile slot must not make cairn allocate gigabytes. */
export function checkScryptParams(p: ScryptParams, what: string): void {
  const ok =
    Number.isInteger(p.N) && p.N >= 2 ** 10 && p.N <= 2 ** 22 && (p.N & (p.N - 1)) === 0 && Number.isInteger(p.r) && p.r >= 1 && p.r <= 32 && Number.isInteger(p.p) && p.p >= 1 && p.p <= 16;
  if (!ok || 128 * p.N * p.r * p.p > 1024 * 1024 * 1024) {
    throw new CorruptionError(`${what} asks for scrypt parameters outside what cairn accepts (N ${p.N}, r ${p.r}, p ${p.p}): it was altered.`, { objects: [what] });
  }
}

/** The key-encryption key of a slot: scrypt(password, salt), 32 bytes. */
export function scryptKey(password: string, salt: Buffer, params: ScryptParams): Promise<Buffer> {
  if (password.length === 0) return Promise.reject(new UsageError('The repository password is empty: give a non-empty password.'));
  return new Promise((resolve, reject) =>
    scryptCallback(password.normalize('NFC'), salt, KEY_BYTES, { ...params, maxmem: 256 * params.N * params.r * params.p + 1024 * 1024 }, (err, key) =>
      err ? reject(err) : resolve(key),
    ),
  );
}

/** Constant-time equality of two secrets (passwords in the unlock cache). */
export function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}
