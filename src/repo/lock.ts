import { CorruptionError, LockedError, NotFoundError, StorageError, UsageError, throwIfAborted } from '../core/errors.js';
import { quotePrefix, randomId } from '../core/ids.js';
import { currentProcessIdentity, processProvenGone, type ProcessIdentity } from '../core/process.js';
import { LockDocumentSchema, type LockDocument } from '../core/schemas.js';
import type { Storage } from '../storage/types.js';
import { MAX_SMALL_DOCUMENT_BYTES, decodeMetadata, encodeMetadata } from './metadata.js';
import { sleep } from '../core/sleep.js';

/** A held lock is rewritten in place this often, so that its storage time advances. */
export const REFRESH_INTERVAL_MS = 60_000;
/**
 * A lock whose object the storage last wrote this long before an object the observer has just
 * written belongs to a holder that stopped: it is stale. Holders give up (their signal aborts)
 * after STALE_AFTER_MS / 2 without a successful refresh, well before anyone may judge them stale.
 */
export const STALE_AFTER_MS = 10 * 60_000;
/** Pauses (ms) before reading a lock that read as damaged again: it may have been mid-rewrite. */
const TORN_READ_RETRIES = [50, 150, 400];
/** How long release() waits for a refresh in flight before deleting the lock anyway. */
const RELEASE_WAIT_MS = 10_000;
/** A lock document is a few hundred bytes; anything much larger is damage, not read. */
const MAX_LOCK_BYTES = 64 * 1024;
export const LOCKS_PREFIX = 'locks/';
/** The key of a lock cairn writes: locks/<lockId>, 32 hex digits (randomId()). */
const LOCK_KEY = /^locks\/[0-9a-f]{32}$/;

export interface LockOptions {
  exclusive: boolean;
  /** Shown to whoever the lock blocks, e.g. "backup of /srv/app.db". */
  operation: string;
  /** The holder's clock, for the createdAt/refreshedAt fields people read; staleness never uses it. */
  now?: () => Date;
  /** Default REFRESH_INTERVAL_MS; must be below staleAfterMs / 2. */
  refreshIntervalMs?: number;
  /** Default STALE_AFTER_MS: both for judging other locks and for giving up our own. */
  staleAfterMs?: number;
  /** Cancels acquiring (not the lock once held: release() does that). */
  signal?: AbortSignal;
  /**
   * How long to keep trying while the repository is locked (ms; default 0: fail at once). Retries
   * come at random intervals (0.2 s growing to 5 s), so racers that failed together separate.
   */
  waitMs?: number;
  /**
   * Called once, on the first conflict, when acquire() is going to wait (waitMs > 0) rather than
   * fail: with the LockedError of that conflict (its `holder` says who blocks). Lets a CLI say
   * that it waits and for whom.
   */
  onWait?: (blocked: LockedError) => void;
}

/** One object under locks/, as listed. */
export interface LockHolder {
  key: string;
  /** The storage's last-modified time of the object (its clock, not ours). */
  modified: Date;
  /** The decoded document; undefined when the object is unreadable (see `problem`). */
  doc?: LockDocument;
  /** Why the document cannot be read (torn, garbage, wrong schema, too large). */
  problem?: string;
}

/**
 * Repository locks in the manner of restic and kopia: backups, restores and verify hold shared
 * locks, prune and deletes an exclusive one. Acquiring = write our lock object, then list the
 * others; on a conflict we remove ours and fail, so two racing writers can both fail but never
 * both win.
 *
 * A holder rewrites its lock object in place every refresh interval. Another process judges it
 * stale only (a) by proof, when it runs on the same host, boot and PID namespace and the pid is
 * gone or belongs to a process with another start time, or (b) by age on the *storage's* clock:
 * the lock object's `modified` against that of an object the observer has just written itself.
 * Nobody's local clock is compared with anyone else's, so a holder whose clock is off, or which
 * runs in a container with its own PID namespace, is never taken for dead while it refreshes.
 *
 * When the holder cannot refresh for staleAfterMs / 2, or its lock object vanished, the lock is
 * lost: `signal` aborts with a LockedError and the operation must stop, because from then on
 * prune may treat the holder's unfinished data as garbage.
 */
export class RepositoryLock {
  /** Aborts (reason: a LockedError) when the lock is lost. Hand it to the operation the lock guards. */
  readonly signal: AbortSignal;
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private inflight: Promise<void> | undefined;
  private released = false;
  /**
   * When the last write that succeeded started, on two clocks: the monotonic one (immune to clock
   * steps) and the wall clock (which, unlike the monotonic one on Linux, runs on while the machine
   * is suspended). The longer of the two elapsed times counts.
   */
  private lastWriteStarted: { mono: number; wall: number };
  private lastError: unknown;

  private constructor(
    private readonly storage: Storage,
    /** The lock object's key, `locks/<lockId>`; it never changes (refreshes rewrite it in place). */
    readonly key: string,
    private doc: LockDocument,
    private readonly now: () => Date,
    private readonly refreshIntervalMs: number,
    private readonly staleAfterMs: number,
    writeStarted: { mono: number; wall: number },
  ) {
    this.signal = this.controller.signal;
    this.lastWriteStarted = writeStarted;
  }

  /** The random id in the lock's document and key. */
  get lockId(): string {
    return this.key.slice(LOCKS_PREFIX.length);
  }

  /** Whether the lock was lost (then `signal` is aborted). */
  get lost(): boolean {
    return this.controller.signal.aborted;
  }

  /**
   * Takes a shared or exclusive lock on the repository in `storage`.
   *
   * @throws LockedError when a live lock conflicts (a readable exclusive one, any one when we want
   *   exclusive, or an unreadable one, which counts as exclusive); StorageError when the storage
   *   fails or does not list our own lock right after writing it; CancelledError on `signal`.
   */
  static async acquire(storage: Storage, options: LockOptions): Promise<RepositoryLock> {
    const deadline = Date.now() + Math.max(0, options.waitMs ?? 0);
    for (let attempt = 1; ; attempt++) {
      try {
        return await RepositoryLock.tryAcquire(storage, options);
      } catch (err) {
        if (!(err instanceof LockedError) || Date.now() >= deadline) throw err;
        if (attempt === 1) options.onWait?.(err);
        const pause = Math.min(deadline - Date.now(), Math.random() * Math.min(5_000, 200 * 2 ** attempt));
        await sleep(pause, options.signal);
      }
    }
  }

  private static async tryAcquire(storage: Storage, options: LockOptions): Promise<RepositoryLock> {
    const now = options.now ?? (() => new Date());
    const refreshIntervalMs = options.refreshIntervalMs ?? REFRESH_INTERVAL_MS;
    const staleAfterMs = options.staleAfterMs ?? STALE_AFTER_MS;
    if (!(refreshIntervalMs > 0 && refreshIntervalMs < staleAfterMs / 2)) {
      throw new UsageError(`Lock refresh interval ${refreshIntervalMs} ms must be above 0 and below half the stale age ${staleAfterMs} ms.`);
    }
    throwIfAborted(options.signal);
    const self = currentProcessIdentity();
    const lockId = randomId();
    const doc = lockDocument(options.exclusive, options.operation, lockId, now(), self);
    const key = `${LOCKS_PREFIX}${lockId}`;
    const writeStarted = { mono: performance.now(), wall: Date.now() };
    try {
      // Inside the try: a failed put may still have written the object, and nobody else would
      // remove it. Not aborted midway (see refresh()): the signal is checked once it has settled.
      await storage.put(key, encodeMetadata(doc));
      throwIfAborted(options.signal);
      const locks = await listLocks(storage, options.signal);
      const storageNow = ownTime(storage, locks, key);
      const live = locks.filter((l) => l.key !== key && !isStale(l, storageNow, staleAfterMs, self));
      const unreadable = live.find((l) => !l.doc);
      const blocking = live.find((l) => l.doc && (options.exclusive || l.doc.exclusive));
      if (blocking?.doc) {
        const d = blocking.doc;
        const holder = `${quotePrefix(d.operation, 200)} (pid ${d.pid} on ${quotePrefix(d.hostname, 100)}, since ${d.createdAt})`;
        throw new LockedError(
          // Fields read from storage: quoted short.
          `Repository ${storage.location} is locked by ${quotePrefix(d.operation, 200)} (pid ${d.pid} on ${quotePrefix(d.hostname, 100)}, since ${d.createdAt}; lock ${quotePrefix(blocking.key, 100)}). ` +
            `Wait for it to finish and retry. A lock left by a process that died expires ${minutes(staleAfterMs)} after its last refresh ` +
            `(at ${expiry(blocking, staleAfterMs)} by the storage's clock); if you are sure no cairn uses the repository, ` +
            '`cairn unlock --remove-all` removes it.',
          { holder },
        );
      }
      if (unreadable) throw unreadableError(storage, unreadable, staleAfterMs);
    } catch (err) {
      await storage.delete(key).catch(() => undefined);
      throw err;
    }
    const lock = new RepositoryLock(storage, key, doc, now, refreshIntervalMs, staleAfterMs, writeStarted);
    lock.timer = setInterval(() => lock.tick(), refreshIntervalMs);
    // A held lock must not keep a finished process alive.
    lock.timer.unref();
    return lock;
  }

  private tick(): void {
    if (this.released || this.lost) return;
    // Checked before refreshing too: if this process was stalled (a blocked event loop, a
    // suspended VM), others may already have judged the lock stale.
    if (this.overdue()) return;
    if (this.inflight) return;
    this.inflight = this.refresh().finally(() => {
      this.inflight = undefined;
    });
  }

  /** Loses the lock when no write succeeded for half the stale age; true then. */
  private overdue(): boolean {
    const silentMs = Math.max(performance.now() - this.lastWriteStarted.mono, Date.now() - this.lastWriteStarted.wall);
    if (silentMs < this.staleAfterMs / 2) return false;
    const why = this.lastError === undefined ? '' : `: ${(this.lastError as Error).message ?? String(this.lastError)}`;
    this.lose(`it could not be refreshed for ${seconds(silentMs)}${why}`);
    return true;
  }

  /** Rewrites the lock object in place, after checking it is still there. */
  private async refresh(): Promise<void> {
    const started = { mono: performance.now(), wall: Date.now() };
    try {
      if (!(await this.storage.exists(this.key))) {
        if (!this.released) this.lose('its lock object was removed (by `cairn unlock`, or by a process that took it for stale)');
        return;
      }
      if (this.released || this.lost) return;
      const doc = { ...this.doc, refreshedAt: this.now().toISOString() };
      try {
        // No signal, here or in any lock write: a request aborted midway may still reach the store
        // and land after the delete that follows, leaving a lock behind that blocks prune for the
        // stale age (azurite did, under CI load). A lock document is a few hundred bytes.
        await this.storage.put(this.key, encodeMetadata(doc));
      } finally {
        // Released while we wrote: release() deleted the object after waiting for us (or gave up
        // waiting), so this write, succeeded or failed, may have put it back. Delete it once the
        // write has settled, when it can no longer land later.
        if (this.released) await this.storage.delete(this.key).catch(() => undefined);
      }
      if (this.released) return;
      this.doc = doc;
      this.lastWriteStarted = started;
      this.lastError = undefined;
    } catch (err) {
      if (this.released || this.lost) return;
      // Retried on the next tick; overdue() gives up in time.
      this.lastError = err;
      this.overdue();
    }
  }

  private lose(why: string): void {
    if (this.lost) return;
    if (this.timer) clearInterval(this.timer);
    this.controller.abort(
      new LockedError(
        `Lost the ${this.doc.exclusive ? 'exclusive' : 'shared'} lock ${this.key} on ${this.storage.location} for "${this.doc.operation}": ${why}. ` +
          'The operation was stopped, because without the lock prune may remove what it writes or reads. Run it again.',
      ),
    );
  }

  /**
   * The storage's current time: rewrites the lock now (a refresh) and reads back the time the
   * storage gives the object. For comparing with other objects' `modified`, e.g. prune's safety
   * window for young packs, without trusting the local clock.
   *
   * @throws LockedError when the lock is lost or released; StorageError from the storage.
   */
  async storageNow(signal?: AbortSignal): Promise<Date> {
    await this.inflight;
    await this.assertHeld();
    const started = { mono: performance.now(), wall: Date.now() };
    const doc = { ...this.doc, refreshedAt: this.now().toISOString() };
    await this.storage.put(this.key, encodeMetadata(doc)); // not aborted midway: see refresh()
    this.doc = doc;
    throwIfAborted(signal);
    this.lastWriteStarted = started;
    for await (const o of this.storage.list(LOCKS_PREFIX, signal)) if (o.key === this.key) return o.modified;
    throw new StorageError(`Cannot read the storage's time from ${this.storage.location}: the lock ${this.key} just written is not listed.`);
  }

  /**
   * Checks, now, that the lock is still held: not lost, refreshed in time, and its object still in
   * the repository. Call it just before a commit point (writing a manifest), so that an operation
   * whose lock was taken from it (e.g. after the machine was suspended) does not commit.
   *
   * @throws LockedError when the lock is lost (then `signal` is aborted too) or released;
   *   StorageError when the storage cannot be asked.
   */
  async assertHeld(): Promise<void> {
    if (this.released) throw new LockedError(`The lock ${this.key} on ${this.storage.location} was already released.`);
    if (!this.lost && !this.overdue() && !(await this.storage.exists(this.key))) {
      this.lose('its lock object was removed (by `cairn unlock`, or by a process that took it for stale)');
    }
    if (this.lost) throw this.signal.reason as LockedError;
  }

  /** Stops refreshing and removes the lock object (also after the lock was lost). Idempotent. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    if (this.timer) clearInterval(this.timer);
    // A refresh still writing is waited for (see refresh() for why it is never aborted); one that
    // hangs past the wait deletes the object itself when its write settles.
    if (this.inflight) await Promise.race([this.inflight, new Promise((r) => setTimeout(r, RELEASE_WAIT_MS).unref())]);
    await this.storage.delete(this.key);
  }
}

/**
 * Every object under locks/, decoded where possible. An object gone between list and get is left
 * out; an unreadable one is returned with `problem` set and no `doc`.
 *
 * @throws StorageError (or CancelledError) when listing or reading fails for another reason.
 */
export async function listLocks(storage: Storage, signal?: AbortSignal): Promise<LockHolder[]> {
  const result: LockHolder[] = [];
  for await (const info of storage.list(LOCKS_PREFIX, signal)) {
    if (info.size > MAX_LOCK_BYTES) {
      result.push({ key: info.key, modified: info.modified, problem: `it is ${info.size} bytes, far larger than a lock` });
      continue;
    }
    // Some stores (s3rver, some gateways and network filesystems) let a read see an object half
    // rewritten while its holder refreshes it: a lock that reads as damaged is read again before
    // it counts as unreadable.
    for (let attempt = 0; ; attempt++) {
      let bytes: Buffer | undefined;
      try {
        bytes = await storage.get(info.key, signal);
        result.push({ key: info.key, modified: info.modified, doc: decodeLock(bytes, info.key) });
        break;
      } catch (err) {
        if (err instanceof NotFoundError) break; // released meanwhile
        // Damaged: undecodable, or (encrypted repository) failing authentication in the read
        // itself. Either way an unreadable lock, never an error that stops every command,
        // unlock --remove-all included.
        if (!(err instanceof CorruptionError)) throw err;
        // Read again once in any case, and more often when what we read is not the size listed
        // (the mark of a read racing a rewrite): a lock damaged for good costs one short pause.
        const torn = bytes === undefined || bytes.length !== info.size;
        if (attempt < (torn ? TORN_READ_RETRIES.length : 1)) {
          await sleep(TORN_READ_RETRIES[attempt] as number, signal);
          continue;
        }
        result.push({ key: info.key, modified: info.modified, problem: err.message.replace(/\.$/, '') });
        break;
      }
    }
  }
  return result;
}

/**
 * Whether a listed lock is stale, as seen by this process. `storageNow` is the storage's time of
 * an object the observer wrote just before listing (its own lock, or a probe); without it, only
 * proof counts. Unreadable locks are stale only by age.
 */
export function isStale(
  lock: LockHolder,
  storageNow: Date | undefined,
  staleAfterMs: number = STALE_AFTER_MS,
  self: ProcessIdentity = currentProcessIdentity(),
): boolean {
  if (storageNow && storageNow.getTime() - lock.modified.getTime() > staleAfterMs) return true;
  const d = lock.doc;
  if (!d) return false;
  return processProvenGone({ hostname: d.hostname, pid: d.pid, startTicks: d.processStart, bootId: d.bootId, pidNamespace: d.pidNamespace }, self);
}

export interface RemoveLocksOptions {
  /**
   * A lock this process holds on the repository: its object is the reference for storage time
   * and it is never removed. Without it a short-lived probe lock is written for the reference.
   */
  lock?: RepositoryLock;
  staleAfterMs?: number;
  /** Remove every lock but `lock`, live or not (`cairn unlock --remove-all`). */
  all?: boolean;
  signal?: AbortSignal;
}

/**
 * Deletes stale locks (all locks with `all`), unreadable ones included once stale by age; returns
 * the keys removed. Prune calls it while holding the exclusive lock; `cairn unlock` without one.
 */
export async function removeLocks(storage: Storage, options: RemoveLocksOptions = {}): Promise<string[]> {
  const staleAfterMs = options.staleAfterMs ?? STALE_AFTER_MS;
  let reference = options.lock?.key;
  let probe: string | undefined;
  if (!reference && !options.all) {
    // A shared lock document, so that any cairn reading it meanwhile understands it (and, were we
    // killed right now, proves it stale).
    const lockId = randomId();
    probe = `${LOCKS_PREFIX}${lockId}`;
    const doc = lockDocument(false, 'clock probe of removing stale locks', lockId, new Date(), currentProcessIdentity());
    await storage.put(probe, encodeMetadata(doc)); // not aborted midway: see refresh()
    reference = probe;
  }
  const removed: string[] = [];
  try {
    throwIfAborted(options.signal);
    const locks = await listLocks(storage, options.signal);
    const storageNow = reference ? ownTime(storage, locks, reference) : undefined;
    for (const l of locks) {
      if (l.key === reference) continue;
      // locks/ may be a link to a folder of other files (a server's data folder): there, only a
      // lock (by its name, what cairn names locks, or its content) is deleted as a stale lock.
      // (`all` is the user's own order.)
      if (!options.all && !LOCK_KEY.test(l.key) && !l.doc && (await storage.linksOutside?.(l.key))) continue;
      if (options.all || isStale(l, storageNow, staleAfterMs)) {
        await storage.delete(l.key);
        removed.push(l.key);
      }
    }
  } finally {
    if (probe) await storage.delete(probe).catch(() => undefined);
  }
  return removed;
}

/** Deletes stale locks and returns how many; see removeLocks. */
export async function removeStaleLocks(storage: Storage, options: Omit<RemoveLocksOptions, 'all'> = {}): Promise<number> {
  return (await removeLocks(storage, options)).length;
}

function lockDocument(exclusive: boolean, operation: string, lockId: string, at: Date, self: ProcessIdentity): LockDocument {
  const time = at.toISOString();
  return {
    exclusive,
    operation,
    hostname: self.hostname,
    pid: self.pid,
    createdAt: time,
    refreshedAt: time,
    lockId,
    ...(self.startTicks ? { processStart: self.startTicks } : {}),
    ...(self.bootId ? { bootId: self.bootId } : {}),
    ...(self.pidNamespace ? { pidNamespace: self.pidNamespace } : {}),
  };
}

/** The storage time of our own object in a listing made right after writing it. */
function ownTime(storage: Storage, locks: LockHolder[], key: string): Date {
  const mine = locks.find((l) => l.key === key);
  if (!mine) {
    throw new StorageError(
      `Cannot lock ${storage.location}: a listing right after writing ${key} did not show it, so this storage does not ` +
        'list what was just written and locks cannot work on it.',
    );
  }
  return mine.modified;
}

function unreadableError(storage: Storage, lock: LockHolder, staleAfterMs: number): LockedError {
  return new LockedError(
    `Repository ${storage.location} has an unreadable lock ${lock.key} (${lock.problem ?? 'damaged'}), which blocks like an exclusive lock. ` +
      'If no cairn runs on this repository, remove it with `cairn unlock --remove-all`; ' +
      `otherwise wait until it expires at ${expiry(lock, staleAfterMs)} (by the storage's clock).`,
    { holder: `an unreadable lock ${quotePrefix(lock.key, 100)}` },
  );
}

function expiry(lock: LockHolder, staleAfterMs: number): string {
  return new Date(lock.modified.getTime() + staleAfterMs).toISOString();
}

function minutes(ms: number): string {
  return ms >= 60_000 ? `${Math.round(ms / 60_000)} minutes` : `${Math.round(ms / 1000)} seconds`;
}


function seconds(ms: number): string {
  return `${Math.round(ms / 1000)} s`;
}

/** Parses a stored lock document (bounded: a lock is a few hundred bytes). */
export function decodeLock(bytes: Buffer, key: string): LockDocument {
  const what = key.length > 80 ? `${key.slice(0, 80)}…` : key;
  return decodeMetadata(bytes, LockDocumentSchema, what, [key], MAX_SMALL_DOCUMENT_BYTES);
}
