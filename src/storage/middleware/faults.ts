import { sleep } from '../../core/sleep.js';
import { TransientStorageError } from '../errors.js';
import type { ObjectInfo, Storage } from '../types.js';
import { STORAGE_OPS, StorageMiddleware, type StorageCall, type StorageOp } from './wrapper.js';

export type StorageFaultKind =
  /** A TransientStorageError before the call reaches the backend (a 503, a refused connection). */
  | 'fail'
  /**
   * The call reaches the backend and does its work, then a TransientStorageError: the answer was
   * lost (a put landed, a delete happened). A listing breaks after its first item (a listing of
   * one item or none completes).
   */
  | 'lostReply'
  /** The call is held for a while (within `delayMs`) before it reaches the backend. */
  | 'delay';

export const STORAGE_FAULT_KINDS: readonly StorageFaultKind[] = ['fail', 'lostReply', 'delay'];

export interface FaultOptions {
  /** Share of calls that get a fault, 0..1. */
  rate: number;
  /** PRNG seed: the same seed and the same call order give the same faults. Default 1. */
  seed?: number;
  /** Which faults to inject (equally likely); all kinds by default. */
  kinds?: readonly StorageFaultKind[];
  /** Which operations may get one; all by default. */
  ops?: readonly StorageOp[];
  /** Range of an injected delay, ms; [1, 20] by default. */
  delayMs?: [number, number];
}

export interface FaultStats {
  calls: number;
  faults: Record<StorageFaultKind, number>;
}

/** mulberry32: a small, seedable PRNG returning floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Fault injection around any backend, for tests: a seeded share of calls fails before or after
 * reaching the backend, or is delayed (test/helpers/fault-proxy.ts does the same at the HTTP
 * level for S3). Faults are TransientStorageErrors, which RetryStorage retries.
 */
export class FaultStorage extends StorageMiddleware {
  private readonly random: () => number;
  private readonly kinds: readonly StorageFaultKind[];
  private readonly ops: ReadonlySet<StorageOp>;
  private readonly counts: FaultStats = { calls: 0, faults: { fail: 0, lostReply: 0, delay: 0 } };
  private enabled = true;

  constructor(
    inner: Storage,
    private readonly options: FaultOptions,
  ) {
    super(inner);
    this.random = seededRandom(options.seed ?? 1);
    this.kinds = options.kinds ?? STORAGE_FAULT_KINDS;
    this.ops = new Set(options.ops ?? STORAGE_OPS);
  }

  /** Calls seen and faults injected so far. */
  stats(): FaultStats {
    return { calls: this.counts.calls, faults: { ...this.counts.faults } };
  }

  /** Turns injection on or off (e.g. off while setting up, on for the part under test). */
  setEnabled(enabled: boolean): void {
    this.enabled = enabled;
  }

  protected async around<T>(call: StorageCall, run: () => Promise<T>): Promise<T> {
    const kind = await this.before(call);
    const result = await run();
    if (kind === 'lostReply') throw this.fault(call, kind);
    return result;
  }

  protected override async *aroundList(call: StorageCall, run: () => AsyncIterable<ObjectInfo>): AsyncIterable<ObjectInfo> {
    const kind = await this.before(call);
    let given = 0;
    for await (const item of run()) {
      if (kind === 'lostReply' && given === 1) throw this.fault(call, kind);
      given++;
      yield item;
    }
  }

  /** Draws this call's fault; throws a 'fail', sits out a 'delay'. */
  private async before(call: StorageCall): Promise<StorageFaultKind | undefined> {
    this.counts.calls++;
    if (!this.enabled || !this.ops.has(call.op) || this.random() >= this.options.rate) return undefined;
    const kind = this.kinds[Math.floor(this.random() * this.kinds.length)] as StorageFaultKind;
    this.counts.faults[kind]++;
    if (kind === 'fail') throw this.fault(call, kind);
    if (kind === 'delay') {
      const [min, max] = this.options.delayMs ?? [1, 20];
      await sleep(min + this.random() * (max - min), call.signal);
    }
    return kind;
  }

  private fault(call: StorageCall, kind: StorageFaultKind): TransientStorageError {
    return new TransientStorageError(`Injected fault (${kind}) on ${call.op} "${call.key}" in ${this.location}.`);
  }
}
