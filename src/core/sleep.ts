import { CancelledError } from './errors.js';

/**
 * Waits `ms` milliseconds (backoff between retries). Rejects with CancelledError as soon as
 * `signal` aborts, so that a cancelled operation never sits out a retry pause.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new CancelledError());
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new CancelledError());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
