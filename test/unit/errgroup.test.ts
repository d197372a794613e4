import { describe, expect, it } from 'vitest';
import { mapLimit, runGroup } from '../../src/core/errgroup.js';
import { CancelledError } from '../../src/core/errors.js';

/** A promise with its resolve function, to hold a call in flight until the test lets it go. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** Resolves when `signal` aborts. */
function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
}

describe('mapLimit (errgroup semantics)', () => {
  it('returns results in input order, whatever order the calls finish in', async () => {
    const delays = [30, 5, 20, 0, 10, 1];
    const out = await mapLimit(delays, 3, async (ms, i) => {
      await new Promise((r) => setTimeout(r, ms));
      return `${i}:${ms}`;
    });
    expect(out).toEqual(delays.map((ms, i) => `${i}:${ms}`));
  });

  it('never has more than `limit` calls in flight, and uses all of them', async () => {
    let inFlight = 0;
    let most = 0;
    await mapLimit(Array.from({ length: 20 }, (_, i) => i), 4, async (i) => {
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((r) => setTimeout(r, i % 3));
      inFlight--;
    });
    expect(most).toBe(4);
    expect(inFlight).toBe(0);
    expect(await mapLimit([], 4, async () => 1)).toEqual([]);
    // A limit below 1 still makes progress, one call at a time.
    expect(await mapLimit([1, 2], 0, async (x) => x * 2)).toEqual([2, 4]);
  });

  it('stops the siblings on the first failure, waits for them, then rethrows that failure', async () => {
    const boom = new Error('boom');
    const started: number[] = [];
    const sawAbort: number[] = [];
    const finished: number[] = [];
    const reasons: unknown[] = [];
    const slowGo = deferred();
    let settled = false;
    const run = mapLimit([0, 1, 2, 3, 4, 5], 3, async (i, _index, signal) => {
      started.push(i);
      if (i === 1) throw boom;
      if (i === 0) {
        // A call that does not watch the signal: the pool must wait for it all the same.
        await slowGo.promise;
      } else {
        await aborted(signal);
        sawAbort.push(i);
        reasons.push(signal.reason);
      }
      finished.push(i);
      throw new CancelledError();
    }).finally(() => (settled = true));

    // Item 2 is in flight when 1 fails, sees the abort and ends; item 0 holds the pool open.
    await new Promise((r) => setTimeout(r, 20));
    expect(settled).toBe(false);
    expect(sawAbort).toEqual([2]);
    slowGo.resolve();
    await expect(run).rejects.toBe(boom);
    // Nothing started after the failure, and nothing ran on after the rejection.
    expect(started).toEqual([0, 1, 2]);
    const finishedAtReject = [...finished].sort();
    await new Promise((r) => setTimeout(r, 20));
    expect(finished.sort()).toEqual(finishedAtReject);
    expect(finishedAtReject).toEqual([0, 2]);
    expect(reasons).toEqual([boom]);
  });

  it('an outer abort stops the pool with CancelledError once the calls in flight have ended', async () => {
    const outer = new AbortController();
    const started: number[] = [];
    let inFlight = 0;
    const run = mapLimit(
      [0, 1, 2, 3, 4, 5, 6, 7],
      2,
      async (i, _index, signal) => {
        started.push(i);
        inFlight++;
        try {
          if (i === 3) outer.abort();
          await Promise.race([aborted(signal), new Promise((r) => setTimeout(r, 3))]);
          if (signal.aborted) await new Promise((r) => setTimeout(r, 5)); // cleaning up after the abort
        } finally {
          inFlight--;
        }
        return i;
      },
      outer.signal,
    );
    await expect(run).rejects.toBeInstanceOf(CancelledError);
    expect(inFlight).toBe(0);
    // Item 3 aborts; at most its one sibling had started beside it, and nothing after.
    expect(started).toContain(3);
    expect(started.length).toBeLessThanOrEqual(5);

    // Already aborted: nothing starts at all.
    const calls: number[] = [];
    await expect(mapLimit([1, 2], 2, async (x) => calls.push(x), outer.signal)).rejects.toBeInstanceOf(CancelledError);
    expect(calls).toEqual([]);
  });
});

describe('runGroup (errgroup Go and Wait)', () => {
  it('the first failure aborts the siblings, the group waits for them, then rethrows that failure', async () => {
    const events: string[] = [];
    const gate = deferred();
    const bothSawAbort = deferred();
    const sibling = async (signal: AbortSignal): Promise<void> => {
      await aborted(signal);
      events.push('sibling saw abort');
      if (events.filter((e) => e === 'sibling saw abort').length === 2) bothSawAbort.resolve();
      await gate.promise; // still busy after the abort: the group must wait
      events.push('sibling ended');
      throw new Error('sibling error after the abort');
    };
    const failing = async (): Promise<void> => {
      await Promise.resolve();
      events.push('failed');
      throw new Error('first');
    };
    const run = runGroup([sibling, failing, sibling]);
    let settled = false;
    void run.catch(() => undefined).finally(() => (settled = true));
    await bothSawAbort.promise;
    await new Promise((r) => setImmediate(r)); // let a premature settlement show
    expect(events).toEqual(['failed', 'sibling saw abort', 'sibling saw abort']);
    expect(settled).toBe(false);
    gate.resolve();
    await expect(run).rejects.toThrow('first');
    expect(events.filter((e) => e === 'sibling ended')).toHaveLength(2);
  });

  it('an outer abort stops every task and rejects with CancelledError; no failure resolves', async () => {
    const outer = new AbortController();
    const run = runGroup([aborted, aborted], outer.signal);
    outer.abort();
    await expect(run).rejects.toBeInstanceOf(CancelledError);
    await expect(runGroup([async () => undefined, async () => undefined])).resolves.toBeUndefined();
  });
});
