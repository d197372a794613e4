import { CancelledError, StorageError } from '../core/errors.js';

/**
 * A storage failure worth another attempt of the whole operation: a response cut off midway, an
 * injected fault. The retry middleware (middleware/retry.ts) repeats operations that fail with
 * it; every other error is permanent to it (NotFoundError, ConflictError, access denied, a
 * missing bucket, CancelledError).
 *
 * Backends throw it only for failures their SDK did not already retry: the AWS, Azure and GCS
 * SDKs retry each request (5xx, throttling, resets before the answer) with their own backoff,
 * and retrying those again would multiply the attempts and the time to report a dead server.
 * A backend without SDK retries (plain HTTP, SFTP) throws it for 5xx, throttling and resets.
 */
export class TransientStorageError extends StorageError {}

/** Error codes of a connection that broke while a response body was read. */
const INTERRUPTED_CODES = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE', 'CONTENT_DOWNLOAD_MISMATCH']);

/**
 * Whether a response body failed because the connection broke (worth a new request), not
 * because of a server answer or a cancellation.
 */
export function isInterrupted(err: unknown): boolean {
  if (err instanceof CancelledError) return false;
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string' && INTERRUPTED_CODES.has(code)) return true;
  const message = err instanceof Error ? err.message : '';
  return /^aborted$|socket hang up|premature close|terminated/i.test(message);
}

/** Whether the retry middleware may repeat an operation that failed with `err`. */
export function isTransient(err: unknown): boolean {
  return err instanceof TransientStorageError;
}
