import { NotFoundError, StorageError, UsageError } from '../core/errors.js';

/** Refuses keys that could escape the repository folder; returns the key unchanged. */
export function checkKey(key: string): string {
  if (key === '' || key.startsWith('/') || key.split('/').some((part) => part === '..' || part === '.')) {
    throw new StorageError(`Invalid object key "${key}".`);
  }
  return key;
}

/** "a/b", "/a/b/", "a//b" → "a/b/"; "" or "/" → "". */
export function normalizePrefix(prefix: string): string {
  const parts = prefix.split('/').filter((p) => p !== '');
  if (parts.some((p) => p === '..' || p === '.')) throw new UsageError(`Invalid repository path "${prefix}".`);
  return parts.length === 0 ? '' : `${parts.join('/')}/`;
}

const TRUE = new Set(['1', 'true', 'yes', 'on']);
const FALSE = new Set(['0', 'false', 'no', 'off']);

export function parseBool(value: string, what: string): boolean {
  const v = value.trim().toLowerCase();
  if (TRUE.has(v)) return true;
  if (FALSE.has(v)) return false;
  throw new UsageError(`Invalid value "${value}" for ${what}: write true or false.`);
}

/**
 * An endpoint as the SDKs want it: a full URL. "host:port" gets https:// (or http:// when `tls` is
 * false); a URL whose scheme contradicts `tls` is refused.
 */
export function resolveEndpoint(endpoint: string, tls: boolean | undefined, what: string): string {
  const raw = endpoint.trim();
  if (!raw) throw new UsageError(`${what} is empty: give the server's URL, e.g. http://127.0.0.1:9000.`);
  const hasScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw);
  const full = hasScheme ? raw : `${tls === false ? 'http' : 'https'}://${raw}`;
  let u: URL;
  try {
    u = new URL(full);
  } catch {
    throw new UsageError(`${what} "${raw}" is not a valid URL: write e.g. http://127.0.0.1:9000.`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new UsageError(`${what} "${raw}" must be an http:// or https:// URL.`);
  }
  if (tls !== undefined && (u.protocol === 'https:') !== tls) {
    throw new UsageError(`${what} "${publicEndpoint(raw)}" says ${u.protocol.slice(0, -1)} but TLS is set ${tls ? 'on' : 'off'}: make them agree.`);
  }
  return full;
}

/** An endpoint without user info or query string (SAS tokens), safe to print. */
export function publicEndpoint(endpoint: string): string {
  try {
    const u = new URL(endpoint);
    u.username = '';
    u.password = '';
    u.search = '';
    u.hash = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return '<invalid endpoint>';
  }
}

/** "41943040", "40MiB", "40M", "512KiB" → bytes. */
export function parseSize(value: string, what: string): number {
  const m = /^\s*(\d+)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*$/i.exec(value);
  if (!m) throw new UsageError(`Invalid size "${value}" for ${what}: write bytes or e.g. 40MiB.`);
  const unit = (m[2] ?? 'b').toLowerCase()[0];
  const mult = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1;
  const n = Number(m[1]) * mult;
  if (!Number.isSafeInteger(n) || n <= 0) throw new UsageError(`Invalid size "${value}" for ${what}: it must be above zero.`);
  return n;
}

export function parsePositiveInt(value: string, what: string, max: number): number {
  const v = value.trim();
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > max) {
    throw new UsageError(`Invalid value "${value}" for ${what}: write a whole number from 1 to ${max}.`);
  }
  return Number(v);
}

/**
 * getRange as every object-store backend does it: a zero-length range only checks that the
 * object exists; `read` fetches the bytes (an empty buffer for a range past the end), and an
 * answer shorter than asked for is an error rather than silently short data.
 */
export async function readExactRange(
  store: { readonly location: string; exists(key: string): Promise<boolean> },
  key: string,
  offset: number,
  length: number,
  read: () => Promise<Buffer>,
): Promise<Buffer> {
  if (length === 0) {
    if (!(await store.exists(key))) throw new NotFoundError(`Object "${key}" not found in ${store.location}.`);
    return Buffer.alloc(0);
  }
  const buf = await read();
  if (buf.length !== length) {
    throw new StorageError(`Object "${key}" in ${store.location} is shorter than expected (wanted bytes ${offset}-${offset + length}, got ${buf.length}).`);
  }
  return buf;
}

/** Runs `op`; true when it succeeded, false when its mapped error is NotFoundError, else throws that error. */
export async function unlessMissing(op: () => Promise<unknown>, mapError: (err: unknown) => Error): Promise<boolean> {
  try {
    await op();
    return true;
  } catch (err) {
    const mapped = mapError(err);
    if (mapped instanceof NotFoundError) return false;
    throw mapped;
  }
}
