import { hostname } from 'node:os';
import { LockDocumentSchema, type LockDocument } from '../core/schemas.js';
import { LockedError } from '../core/errors.js';
import { randomId } from '../core/ids.js';
import { processExists } from '../core/process.js';
import type { Storage } from '../storage/types.js';
import { decodeMetadata, encodeMetadata } from './metadata.js';

/** A live lock is rewritten this often; one not rewritten for STALE_AFTER_MS belongs to a dead process. */
export const REFRESH_INTERVAL_MS = 60_000;
export const STALE_AFTER_MS = 10 * 60_000;

export interface LockHolder {
  key: string;
  doc: LockDocument;
}

/**
 * Repository locks, restic-style: backups and restores hold shared locks, delete and prune an
 * exclusive one. Acquiring = write our lock object, then list the others; on a conflict we
 * remove ours and fail, so two racing writers can both fail but never both win. Locks are
 * advisory and never block writers of *other* backups: shared holders coexist.
 */
export class RepositoryLock {
  private timer: NodeJS.Timeout | undefined;
  private released = false;

  private constructor(
    private readonly storage: Storage,
    private key: string,
    private doc: LockDocument,
  ) {}

  static async acquire(storage: Storage, options: { exclusive: boolean; operation: string; now?: () => Date }): Promise<RepositoryLock> {
    const now = options.now ?? (() => new Date());
    const at = now().toISOString();
    const doc: LockDocument = {
      exclusive: options.exclusive,
      operation: options.operation,
      hostname: hostname(),
      pid: process.pid,
      createdAt: at,
      refreshedAt: at,
    };
    const key = `locks/${randomId()}`;
    await storage.put(key, encodeMetadata(doc));
    const lock = new RepositoryLock(storage, key, doc);
    try {
      const others = (await listLocks(storage)).filter((l) => l.key !== key && !isStale(l.doc, now()));
      const blocking = others.find((l) => options.exclusive || l.doc.exclusive);
      if (blocking) {
        const d = blocking.doc;
        throw new LockedError(
          `Repository ${storage.location} is locked by "${d.operation}" (pid ${d.pid} on ${d.hostname}, since ${d.createdAt}). ` +
            `Wait for it to finish and retry; a lock left by a process that died expires ${STALE_AFTER_MS / 60_000} minutes after its last refresh.`,
        );
      }
    } catch (err) {
      await storage.delete(key).catch(() => undefined);
      throw err;
    }
    lock.timer = setInterval(() => void lock.refresh(now).catch(() => undefined), REFRESH_INTERVAL_MS);
    lock.timer.unref();
    return lock;
  }

  /** Objects are never rewritten in place: a refresh writes a new lock and removes the old one. */
  private async refresh(now: () => Date): Promise<void> {
    if (this.released) return;
    const doc = { ...this.doc, refreshedAt: now().toISOString() };
    const key = `locks/${randomId()}`;
    await this.storage.put(key, encodeMetadata(doc));
    const old = this.key;
    this.key = key;
    this.doc = doc;
    await this.storage.delete(old);
    if (this.released) await this.storage.delete(key);
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    if (this.timer) clearInterval(this.timer);
    await this.storage.delete(this.key);
  }
}

export async function listLocks(storage: Storage): Promise<LockHolder[]> {
  const result: LockHolder[] = [];
  for await (const info of storage.list('locks/')) {
    try {
      const doc = decodeMetadata(await storage.get(info.key), LockDocumentSchema, info.key);
      result.push({ key: info.key, doc });
    } catch {
      // A lock removed between list and get, or a torn one: neither holds the repository.
    }
  }
  return result;
}

/** A lock is stale when its process is gone (same host) or it has not been refreshed in time. */
export function isStale(doc: LockDocument, now: Date): boolean {
  if (now.getTime() - Date.parse(doc.refreshedAt) > STALE_AFTER_MS) return true;
  if (doc.hostname === hostname() && doc.pid !== process.pid) return !processExists(doc.pid);
  return false;
}

/** Deletes stale locks; prune calls this while it holds the exclusive lock. */
export async function removeStaleLocks(storage: Storage, now = new Date()): Promise<number> {
  let removed = 0;
  for (const lock of await listLocks(storage)) {
    if (isStale(lock.doc, now)) {
      await storage.delete(lock.key);
      removed++;
    }
  }
  return removed;
}
