/**
 * Key slots of an encrypted repository (`keys/<id>`), as restic's key files: one random master
 * secret per repository, wrapped once per password. Any slot's password opens the repository;
 * adding, removing or changing a password rewrites only slots, never data.
 *
 * A slot is plain JSON (it is read before any key is known):
 *   { formatVersion: 1, id, createdAt, hostname, username,
 *     kdf: { algorithm: "scrypt", N, r, p, salt (base64, 32 bytes) },
 *     secret: base64 of seal(scrypt(password, salt), master secret, "cairn key slot v1 <repository id> <slot id>") }
 * The associated data binds a slot to its repository and name: a slot copied from another
 * repository, or left by an `init` that did not finish, opens nothing here.
 */
import { randomBytes } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import { z } from 'zod';
import { ConflictError, CorruptionError, KeyError, NotFoundError, UsageError } from '../core/errors.js';
import { randomId } from '../core/ids.js';
import type { Storage } from '../storage/types.js';
import { MASTER_SECRET_BYTES, checkScryptParams, deriveKeys, sameSecret, scryptKey, scryptParamsForNewSlot, seal, unseal, type RepositoryKeys, type ScryptParams } from './crypto.js';
import { decodeJson, parseDocument } from './metadata.js';

export const KEYS_PREFIX = 'keys/';
const SLOT_KEY = /^keys\/[0-9a-f]{32}$/;
/** A slot is a few hundred bytes; more is damage. */
const MAX_SLOT_BYTES = 64 * 1024;
/** More slots than this is damage or abuse: each costs a KDF run to try. */
const MAX_SLOTS = 64;

const KeySlotSchema = z.object({
  formatVersion: z.literal(1),
  id: z.string().regex(/^[0-9a-f]{32}$/),
  createdAt: z.string().max(64),
  hostname: z.string().max(255),
  username: z.string().max(255),
  kdf: z.object({
    algorithm: z.literal('scrypt'),
    N: z.number().int(),
    r: z.number().int(),
    p: z.number().int(),
    salt: z.string().max(100),
  }),
  secret: z.string().max(1000),
});
type KeySlot = z.infer<typeof KeySlotSchema>;

/** What `cairn key list` shows of a slot. */
export interface KeySlotInfo {
  id: string;
  createdAt: string;
  hostname: string;
  username: string;
  /** scrypt parameters, e.g. "scrypt N=131072 r=8 p=1". */
  kdf: string;
  /** The slot whose password opened this repository. */
  current: boolean;
}

/** An unlocked repository's secrets, kept by keys.ts only. */
export interface Unlocked {
  keys: RepositoryKeys;
  slotId: string;
  secret: Buffer;
}

/** Where this process keeps what an opened repository needs to add slots: the master secret. */
export interface KeyHolder {
  readonly rawStorage: Storage;
  readonly config: { id: string };
}
const secrets = new WeakMap<KeyHolder, Unlocked>();

/** Called by Repository when it opens or creates an encrypted repository. */
export function rememberUnlocked(holder: KeyHolder, unlocked: Unlocked): void {
  secrets.set(holder, unlocked);
}

function unlockedOf(holder: KeyHolder): Unlocked {
  const u = secrets.get(holder);
  if (!u) throw new UsageError('This repository is not encrypted: it has no keys to manage. Create an encrypted one with: cairn repo init --encryption <location>');
  return u;
}

function aadOf(repositoryId: string, slotId: string): string {
  return `cairn key slot v1 ${repositoryId} ${slotId}`;
}

function identity(): { hostname: string; username: string } {
  let username = 'unknown';
  try {
    username = userInfo().username;
  } catch {
    // No passwd entry (a container's arbitrary uid): the name is only shown in `key list`.
  }
  return { hostname: hostname(), username };
}

/** Writes a new slot for `password` holding `secret`; returns its id. */
async function writeSlot(storage: Storage, repositoryId: string, secret: Buffer, password: string, params: ScryptParams = scryptParamsForNewSlot()): Promise<KeySlotInfo> {
  const id = randomId();
  const salt = randomBytes(32);
  const kek = await scryptKey(password, salt, params);
  const slot: KeySlot = {
    formatVersion: 1,
    id,
    createdAt: new Date().toISOString(),
    ...identity(),
    kdf: { algorithm: 'scrypt', ...params, salt: salt.toString('base64') },
    secret: seal(kek, secret, aadOf(repositoryId, id)).toString('base64'),
  };
  await storage.put(`${KEYS_PREFIX}${id}`, Buffer.from(JSON.stringify(slot, null, 2) + '\n'), { ifNotExists: true });
  return infoOf(slot, false);
}

function infoOf(slot: KeySlot, current: boolean): KeySlotInfo {
  return { id: slot.id, createdAt: slot.createdAt, hostname: slot.hostname, username: slot.username, kdf: `scrypt N=${slot.kdf.N} r=${slot.kdf.r} p=${slot.kdf.p}`, current };
}

/** Every slot under keys/, parsed; a damaged one is reported, not thrown, unless it is the only kind there. */
async function readSlots(storage: Storage, signal?: AbortSignal): Promise<{ slots: KeySlot[]; damaged: string[] }> {
  const slots: KeySlot[] = [];
  const damaged: string[] = [];
  let seen = 0;
  for await (const info of storage.list(KEYS_PREFIX, signal)) {
    if (++seen > MAX_SLOTS) throw new CorruptionError(`${storage.location} holds more than ${MAX_SLOTS} objects under keys/: more than cairn ever writes. Remove the ones that are not key slots.`, { objects: ['keys/'] });
    if (!SLOT_KEY.test(info.key) || info.size > MAX_SLOT_BYTES) {
      damaged.push(info.key);
      continue;
    }
    try {
      const bytes = await storage.get(info.key, signal);
      const slot = parseDocument(decodeJson(bytes, `Key slot ${info.key}`, [info.key], MAX_SLOT_BYTES), KeySlotSchema, `Key slot ${info.key}`, [info.key]);
      if (`${KEYS_PREFIX}${slot.id}` !== info.key) throw new CorruptionError(`Key slot ${info.key} names another slot.`, { objects: [info.key] });
      checkScryptParams(slot.kdf, `Key slot ${info.key}`);
      slots.push(slot);
    } catch (err) {
      if (err instanceof NotFoundError) continue; // removed since the listing
      if (!(err instanceof CorruptionError)) throw err;
      damaged.push(info.key);
    }
  }
  slots.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  return { slots, damaged };
}

/**
 * Processes keep what they unlocked, by repository id, so that a server opening a repository for
 * every request runs the (deliberately slow) KDF once. An entry is used only for the same
 * password and while its slot still exists (a removed slot's password stops working at once).
 */
const unlockCache = new Map<string, { password: string; unlocked: Unlocked }>();

/**
 * Opens an encrypted repository's master secret with `password`: tries every slot (newest
 * first) until one opens.
 * @throws KeyError when no slot opens with it; CorruptionError when keys/ holds no slot.
 */
export async function unlock(storage: Storage, repositoryId: string, password: string, signal?: AbortSignal): Promise<Unlocked> {
  const cached = unlockCache.get(repositoryId);
  if (cached && sameSecret(cached.password, password) && (await storage.exists(`${KEYS_PREFIX}${cached.unlocked.slotId}`))) return cached.unlocked;
  const { slots, damaged } = await readSlots(storage, signal);
  if (slots.length === 0) {
    throw new CorruptionError(
      `The encrypted repository at ${storage.location} has no readable key slot under keys/${damaged.length > 0 ? ` (damaged: ${damaged.join(', ')})` : ''}: without one its data cannot be opened. Restore keys/ from a copy of the repository.`,
      { objects: damaged.length > 0 ? damaged : ['keys/'] },
    );
  }
  for (const slot of slots.slice().reverse()) {
    const kek = await scryptKey(password, Buffer.from(slot.kdf.salt, 'base64'), slot.kdf);
    let secret: Buffer;
    try {
      secret = unseal(kek, Buffer.from(slot.secret, 'base64'), aadOf(repositoryId, slot.id), `Key slot keys/${slot.id}`);
    } catch {
      continue; // another password's slot (or one from another repository)
    }
    if (secret.length !== MASTER_SECRET_BYTES) continue;
    const unlocked = { keys: deriveKeys(secret, repositoryId), slotId: slot.id, secret };
    unlockCache.set(repositoryId, { password, unlocked });
    return unlocked;
  }
  throw new KeyError(
    `Wrong password for the encrypted repository at ${storage.location}: it opens none of its ${slots.length} key slot(s) (or the slot it belongs to is damaged). ` +
      'Check the password given for this repository (docs/cli.md, "Passwords"); a lost password cannot be recovered, but any other slot\'s password still opens it.',
  );
}

/** Creates the master secret and the first slot of a new encrypted repository (before its config is written). */
export async function createFirstSlot(storage: Storage, repositoryId: string, password: string): Promise<Unlocked> {
  const secret = randomBytes(MASTER_SECRET_BYTES);
  const info = await writeSlot(storage, repositoryId, secret, password);
  return { keys: deriveKeys(secret, repositoryId), slotId: info.id, secret };
}

/** The slots of an opened encrypted repository, oldest first; `current` marks the one in use. */
export async function listKeys(repo: KeyHolder, signal?: AbortSignal): Promise<KeySlotInfo[]> {
  const u = unlockedOf(repo);
  const { slots } = await readSlots(repo.rawStorage, signal);
  return slots.map((s) => infoOf(s, s.id === u.slotId));
}

/** Adds a slot for another password; the repository must have been opened (unlocked). */
export async function addKey(repo: KeyHolder, password: string): Promise<KeySlotInfo> {
  const u = unlockedOf(repo);
  return writeSlot(repo.rawStorage, repo.config.id, u.secret, password);
}

/**
 * Removes a slot. Refuses the last one (the data could never be opened again) and the one in
 * use (as restic does: open with another password to remove it, or use changePassword).
 * @throws NotFoundError for an unknown id; ConflictError for the last or the current slot.
 */
export async function removeKey(repo: KeyHolder, id: string): Promise<void> {
  const u = unlockedOf(repo);
  const { slots } = await readSlots(repo.rawStorage);
  if (id.length < 4) throw new UsageError(`"${id}" is too short to name a key slot: give at least 4 characters of its id (cairn key list).`);
  const matches = slots.filter((s) => s.id === id || s.id.startsWith(id));
  if (matches.length === 0) throw new NotFoundError(`No key slot ${JSON.stringify(id)} in ${repo.rawStorage.location}. List them with: cairn key list`);
  if (matches.length > 1) throw new UsageError(`"${id}" names ${matches.length} key slots; give more of the id (cairn key list).`);
  const slot = matches[0] as KeySlot;
  if (slots.length === 1) throw new ConflictError(`Key slot ${slot.id} is the repository's only one: without it nothing could be opened again. Add another first (cairn key add).`);
  if (slot.id === u.slotId) {
    throw new ConflictError(`Key slot ${slot.id} is the one this command opened the repository with. Open it with another password to remove this one, or change this password with: cairn key passwd`);
  }
  await repo.rawStorage.delete(`${KEYS_PREFIX}${slot.id}`);
}

/**
 * Changes the password of the slot in use: writes a new slot, then removes the old one (a crash
 * in between leaves both, never none). Returns the new slot; the repository uses it from now on.
 */
export async function changePassword(repo: KeyHolder, password: string): Promise<KeySlotInfo> {
  const u = unlockedOf(repo);
  const info = await writeSlot(repo.rawStorage, repo.config.id, u.secret, password);
  await repo.rawStorage.delete(`${KEYS_PREFIX}${u.slotId}`);
  const next = { ...u, slotId: info.id };
  secrets.set(repo, next);
  unlockCache.delete(repo.config.id);
  return { ...info, current: true };
}

/** What opened `holder`, if it is an opened encrypted repository (to open its exported archives with the same keys). */
export function unlockedKeysOf(holder: KeyHolder): Unlocked | undefined {
  return secrets.get(holder);
}

/** The id of the slot that opened `repo`, if it is encrypted. */
export function currentSlotId(repo: KeyHolder): string | undefined {
  return secrets.get(repo)?.slotId;
}

/** Any object under keys/ (a plain repository must have none: see Repository.open). */
export async function hasKeyObjects(storage: Storage, signal?: AbortSignal): Promise<boolean> {
  for await (const _ of storage.list(KEYS_PREFIX, signal)) return true;
  return false;
}
