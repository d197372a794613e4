import type { RepositoryLock } from './lock.js';
import type { Repository } from './repository.js';

/**
 * Runs `fn` under a repository lock and releases it afterwards. `fn` gets one signal that
 * aborts when the caller's does or when the lock is lost (a refresh failed or the lock object
 * vanished): an operation must never go on believing it holds a lock it no longer has.
 */
export async function withLock<T>(
  repo: Repository,
  exclusive: boolean,
  operation: string,
  signal: AbortSignal | undefined,
  fn: (signal: AbortSignal, lock: RepositoryLock) => Promise<T>,
): Promise<T> {
  const lock = await repo.lock(exclusive, operation, signal ? { signal } : {});
  try {
    return await fn(lockedSignal(lock, signal), lock);
  } finally {
    await lock.release().catch(() => undefined);
  }
}

/** The caller's signal combined with the lock's own "lost" signal. */
export function lockedSignal(lock: Pick<RepositoryLock, 'signal'>, signal: AbortSignal | undefined): AbortSignal {
  return signal ? AbortSignal.any([signal, lock.signal]) : lock.signal;
}
