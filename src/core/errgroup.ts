import { CairnError, CancelledError } from './errors.js';

/**
 * errgroup semantics for a bounded pool (as Go's golang.org/x/sync/errgroup with SetLimit): the
 * first failure aborts a signal shared by every call so that siblings stop early, no new item is
 * started, and the returned promise settles only once every call in flight has settled, so no
 * work of the pool runs after it rejects (callers may then release what the calls used: a lock,
 * a pack builder, a temporary folder).
 *
 * @param items what to work on; `fn` is called once per item, at most `limit` calls at a time
 *   (limit below 1 counts as 1), items started in input order.
 * @param fn gets the item, its index and the group's signal, which aborts when a sibling fails or
 *   `signal` aborts: pass it to storage and database calls so they stop promptly.
 * @param signal an outer signal: when it aborts, no new item starts and the pool rejects with
 *   CancelledError (or the signal's reason when it is a CairnError) once the calls in flight settled.
 * @returns the results in input order.
 * @throws the first error a call threw (later errors, often CancelledErrors caused by the abort,
 *   are dropped); CancelledError when `signal` aborted first.
 */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number, signal: AbortSignal) => Promise<R>,
  signal?: AbortSignal,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (group: AbortSignal): Promise<void> => {
    while (!group.aborted && next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T, i, group);
    }
  };
  await runGroup(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, () => worker), signal);
  return results;
}

/**
 * errgroup's Go and Wait for tasks that are long-lived workers rather than items (e.g. one
 * database session each, pulling work from a shared queue): every task starts at once with the
 * group's signal; the first failure aborts that signal so the others stop early; the returned
 * promise settles only once every task has settled, then rethrows the first error.
 *
 * @param tasks each gets the group's signal, which aborts when a sibling fails or `signal` aborts.
 * @param signal an outer signal: its abort rejects the group with CancelledError (or the
 *   signal's reason when it is a CairnError) once the tasks settled.
 * @throws the first error a task threw (later ones, often caused by the abort, are dropped);
 *   CancelledError when `signal` aborted first.
 */
export async function runGroup(tasks: readonly ((signal: AbortSignal) => Promise<void>)[], signal?: AbortSignal): Promise<void> {
  const group = new AbortController();
  let failure: { error: unknown } | undefined;
  const fail = (error: unknown): void => {
    if (failure) return;
    failure = { error };
    group.abort(error);
  };
  const onOuterAbort = (): void => fail(outerReason(signal));
  if (signal?.aborted) onOuterAbort();
  else signal?.addEventListener('abort', onOuterAbort, { once: true });
  try {
    await Promise.all(
      tasks.map(async (task) => {
        if (failure) return;
        try {
          await task(group.signal);
        } catch (err) {
          fail(err);
        }
      }),
    );
  } finally {
    signal?.removeEventListener('abort', onOuterAbort);
  }
  if (failure) throw failure.error;
}

/** What an aborted outer signal rejects with, as throwIfAborted: its reason when a CairnError, else CancelledError. */
function outerReason(signal: AbortSignal | undefined): unknown {
  const reason: unknown = signal?.reason;
  return reason instanceof CairnError ? reason : new CancelledError();
}
