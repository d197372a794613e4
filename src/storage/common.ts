import { ConflictError, NotFoundError, StorageError, UsageError, throwIfAborted } from '../core/errors.js';
import { randomId } from '../core/ids.js';
import type { Payload, Storage } from './types.js';
import { payloadEquals, payloadLength } from './payload.js';
import { sleep } from '../core/sleep.js';

/** Refuses keys that could escape the repository folder; returns the key unchanged. */
export function checkKey(key: string): string {
  if (key === '' || key.startsWith('/') || key.split('/').some((part) => part === '..' || part === '.')) {
    throw new StorageError(`Invalid object key ${JSON.stringify(key.length > 60 ? `${key.slice(0, 60)}…` : key)}.`);
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

/**
 * A variable's value, trimmed: undefined when unset.
 * @throws UsageError naming it when set but blank.
 */
export function envValue(env: NodeJS.ProcessEnv, name: string, what: string): string | undefined {
  const v = env[name];
  if (v === undefined) return undefined;
  if (v.trim() === '') throw new UsageError(`${name} is set but empty: give the ${what}, or unset it.`);
  return v.trim();
}

/** How an object store's URLs look, for parseStoreUrl's messages. */
export interface StoreUrlSpec {
  /** The service as users name it: "S3", "GCS", "Azure". */
  service: string;
  /** The URL form: "s3://bucket/prefix". */
  form: string;
  /** What the host part names: "bucket", "container". */
  holder: string;
  /** The query parameters it knows. */
  params: readonly string[];
  /** Where credentials go instead of the URL's user info: "set AWS_ACCESS_KEY_ID and …". */
  credentials: string;
  /** Parameters refused as credentials rather than as unknown, and where those go instead. */
  secretParams?: { pattern: RegExp; credentials: string };
}

/**
 * The parts every object-store URL has (`scheme://holder/prefix?params`), checked alike: a URL
 * that does not parse, credentials in it, no bucket or container, and unknown parameters are
 * refused with a UsageError that says what to write.
 * @returns the URL, its holder (bucket or container, decoded) and prefix (decoded, may be "").
 */
export function parseStoreUrl(url: string, spec: StoreUrlSpec): { url: URL; holder: string; prefix: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(`Invalid ${spec.service} URL "${url}": write ${spec.form}.`);
  }
  if (u.username || u.password) throw new UsageError(`Do not put credentials in the ${spec.service} URL: ${spec.credentials}.`);
  const holder = decodeURIComponent(u.hostname);
  if (!holder) throw new UsageError(`No ${spec.holder} in "${url}": write ${spec.form}.`);
  for (const name of u.searchParams.keys()) {
    if (spec.params.includes(name)) continue;
    if (spec.secretParams?.pattern.test(name)) {
      throw new UsageError(`Do not put credentials in the ${spec.service} URL ("${name}"): ${spec.secretParams.credentials}.`);
    }
    throw new UsageError(`Unknown ${spec.service} URL parameter "${name}". Known: ${spec.params.join(', ')}.`);
  }
  return { url: u, holder, prefix: decodeURIComponent(u.pathname.replace(/^\//, '')) };
}

/** Where an object-store repository lives, safe to print: `scheme://holder/prefix/`, the endpoint without user info or query. */
export function storeLocation(scheme: string, holder: string, prefix: string | undefined, endpoint: string | undefined): string {
  const endpointPart = endpoint ? `?endpoint=${encodeURIComponent(publicEndpoint(endpoint))}` : '';
  return `${scheme}://${holder}/${normalizePrefix(prefix ?? '')}${endpointPart}`;
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

/**
 * A create-only write refused because the key exists is read back up to this size, to tell a
 * repeat of our own write (whose first answer was lost) from another writer's object.
 */
export const RECHECK_MAX_BYTES = 4 * 1024 * 1024;

/** Whether `key` holds exactly `data`: false for objects above RECHECK_MAX_BYTES and on any error. */
export async function holdsBytes(store: Pick<Storage, 'get'>, key: string, data: Payload): Promise<boolean> {
  if (payloadLength(data) > RECHECK_MAX_BYTES) return false;
  try {
    return payloadEquals(data, await store.get(key));
  } catch {
    return false;
  }
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

/** Where createExclusive puts its claims: `claims/<escaped key>/<random>`. */
export const CLAIMS_PREFIX = 'claims/';
/**
 * A claim older than this (on the storage's clock, against a fresh one) belongs to a writer that
 * died between claiming and writing: it no longer blocks the key, and prune may delete it.
 */
export const CLAIM_EXPIRY_MS = 24 * 60 * 60_000;

/** The folder holding the claims on `key`: "/" and "%" escaped, so the key is one path segment. */
export function claimFolder(key: string): string {
  return `${CLAIMS_PREFIX}${checkKey(key).replace(/%/g, '%25').replace(/\//g, '%2F')}/`;
}

/**
 * How long createExclusiveByClaims waits for rival claims to go before it gives up (ms). Rivals
 * that are alive finish in a few round trips; only a claim left by a writer that died between
 * claiming and writing holds a key this long (until CLAIM_EXPIRY_MS, or prune, removes it).
 */
export const CLAIM_WAIT_MS = 60_000;

/**
 * Creates `key` only if it does not exist, safely even where `put(…, { ifNotExists })` is not
 * atomic (`storage.atomicCreate` false, e.g. S3-compatible servers that ignore If-None-Match).
 * Where it is atomic this is that put; otherwise createExclusiveByClaims.
 *
 * @throws ConflictError when the key exists or other writers keep claiming it; StorageError etc.
 *   from the storage; CancelledError when `signal` aborts.
 */
export async function createExclusive(storage: Storage, key: string, bytes: Uint8Array, signal?: AbortSignal): Promise<void> {
  if (storage.atomicCreate) return storage.put(key, bytes, { ifNotExists: true, signal });
  return createExclusiveByClaims(storage, key, bytes, signal);
}

/**
 * Create-only write by claims, for any backend: write a claim `claims/<escaped key>/<random>`,
 * list the claims on the key, and go on only when ours is the only one (younger than
 * CLAIM_EXPIRY_MS); then check the key is absent and write it.
 *
 * Safety: a writer decides only from a listing made while its own claim was in place, and two
 * writers never both see themselves alone, provided listing shows every object whose write
 * completed before the listing began (S3, Azure, GCS and filesystems do): whichever listed last
 * began after the other's claim was written. Listed claims that a HEAD finds gone are ignored,
 * so a listing that still shows deleted objects delays no one.
 *
 * Progress: when writers see each other, the one whose claim name sorts lowest keeps its claim
 * and lists again; every other one removes its claim and claims again only once that lower claim
 * is gone. So the lowest live claim only ever waits for higher ones to leave, and they do: one
 * racer gets through in a few round trips however slow the storage is, and the others then find
 * its object and fail with ConflictError. (Backing off symmetrically, as an earlier version did,
 * let two writers on a loaded storage keep meeting until both gave up.) The winner's claim is
 * left in place (a few bytes) beside the object; prune may delete claims older than
 * CLAIM_EXPIRY_MS.
 *
 * @param waitMs how long rival claims may stay before this gives up (default CLAIM_WAIT_MS).
 * @throws ConflictError when the key exists, or rival claims stay for `waitMs` (a writer
 *   died holding one); StorageError etc. from the storage; CancelledError when `signal` aborts.
 */
export async function createExclusiveByClaims(
  storage: Storage,
  key: string,
  bytes: Uint8Array,
  signal?: AbortSignal,
  waitMs = CLAIM_WAIT_MS,
): Promise<void> {
  const folder = claimFolder(key);
  const claim = `${folder}${randomId()}`;
  const deadline = Date.now() + waitMs;
  const exists = (): Promise<void> =>
    storage.exists(key).then((yes) => {
      if (yes) throw new ConflictError(`Object "${key}" already exists in ${storage.location}.`);
    });
  const giveUp = (): ConflictError =>
    new ConflictError(
      `Object "${key}" is being created by another writer in ${storage.location} (its claim stayed for ${Math.round(waitMs / 1000)} s). ` +
        'If no other cairn is writing there, run "cairn prune" after a day to clear the claims of writers that died.',
    );
  let held = false;
  let written = false;
  try {
    for (;;) {
      throwIfAborted(signal);
      await exists();
      if (!held) {
        await storage.put(claim, Buffer.from(JSON.stringify({ key, claimedAt: new Date().toISOString() })), { signal });
        held = true;
      }
      const claims: { key: string; modified: Date }[] = [];
      for await (const o of storage.list(folder, signal)) claims.push(o);
      const ours = claims.find((c) => c.key === claim);
      if (!ours) {
        throw new StorageError(
          `Cannot create "${key}" safely in ${storage.location}: a listing right after writing ${claim} did not show it, ` +
            'so this storage does not list what was just written and concurrent writers cannot be told apart.',
        );
      }
      const listed = claims.filter((c) => c.key !== claim && ours.modified.getTime() - c.modified.getTime() < CLAIM_EXPIRY_MS);
      // A listing may lag a deletion (Swift's container listings do under load): a rival claim
      // that is gone no longer counts. Safe: its writer decides only after claiming again, and
      // then its listing, begun after ours was written, shows ours.
      const present = await Promise.all(listed.map((c) => storage.exists(c.key)));
      const rivals = listed.filter((_, i) => present[i]).map((c) => c.key);
      if (rivals.length === 0) {
        await exists();
        await storage.put(key, bytes, { ifNotExists: true, signal });
        written = true;
        return;
      }
      if (Date.now() >= deadline) throw giveUp();
      const lower = rivals.filter((r) => r < claim).sort()[0];
      if (lower === undefined) {
        // Ours is the lowest: keep it, and look again once the others have seen it and left.
        await sleep(10 + Math.random() * 20, signal);
        continue;
      }
      // Yield to the lower claim: remove ours, and claim again only when that one is gone
      // (its writer gave up) and the key is still absent (else it won and we fail).
      await storage.delete(claim).catch(() => undefined);
      held = false;
      for (let wait = 1; await storage.exists(lower); wait++) {
        if (Date.now() >= deadline) throw giveUp();
        await sleep(20 + Math.random() * Math.min(500, 20 * wait), signal);
        await exists();
      }
    }
  } finally {
    // A claim stays only beside the object it made; otherwise it would block the key for a day.
    if (held && !written) await storage.delete(claim).catch(() => undefined);
  }
}


/**
 * Removes the claims createExclusiveByClaims left on `key`: call it after deleting the object, so
 * that the key can be created again at once rather than after CLAIM_EXPIRY_MS.
 */
export async function removeClaims(storage: Storage, key: string, signal?: AbortSignal): Promise<void> {
  const folder = claimFolder(key);
  for await (const o of storage.list(folder, signal)) await storage.delete(o.key);
}

/**
 * Deletes claims older than CLAIM_EXPIRY_MS on the storage's clock (against a probe claim it
 * writes and removes): those of writers that died between claiming and writing, and those left
 * beside objects written long ago. For prune. Returns the keys removed.
 */
export async function removeExpiredClaims(storage: Storage, signal?: AbortSignal): Promise<string[]> {
  const probe = `${CLAIMS_PREFIX}%7Eprobe/${randomId()}`;
  await storage.put(probe, Buffer.from('{}'), { signal });
  const removed: string[] = [];
  try {
    const claims: { key: string; modified: Date }[] = [];
    for await (const o of storage.list(CLAIMS_PREFIX, signal)) claims.push(o);
    const now = claims.find((c) => c.key === probe)?.modified;
    if (!now) return removed;
    for (const c of claims) {
      if (c.key !== probe && now.getTime() - c.modified.getTime() > CLAIM_EXPIRY_MS) {
        await storage.delete(c.key);
        removed.push(c.key);
      }
    }
  } finally {
    await storage.delete(probe).catch(() => undefined);
  }
  return removed;
}
