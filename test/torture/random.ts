import { createHash } from 'node:crypto';

/**
 * A small seeded PRNG (mulberry32) with the helpers the torture test draws from. The same seed
 * always gives the same step list, so a failing run can be replayed and shrunk.
 */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [min, max] (both included). */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('Rng.pick from an empty list');
    return items[Math.floor(this.next() * items.length)] as T;
  }

  /** One of `weights`' keys, each with probability proportional to its weight. */
  weighted<K extends string>(weights: Partial<Record<K, number>>): K {
    const entries = Object.entries(weights).filter(([, w]) => (w as number) > 0) as [K, number][];
    const total = entries.reduce((s, [, w]) => s + w, 0);
    let r = this.next() * total;
    for (const [k, w] of entries) {
      if ((r -= w) < 0) return k;
    }
    return entries[entries.length - 1]![0];
  }

  /** A 31-bit seed for a sub-generator. */
  seed(): number {
    return Math.floor(this.next() * 0x7fffffff);
  }

  /** n pseudo-random bytes (SHA-256 in counter mode from one draw: fast for megabyte blobs). */
  bytes(n: number): Buffer {
    const key = String(this.seed());
    const parts: Buffer[] = [];
    for (let i = 0, got = 0; got < n; i++, got += 32) parts.push(createHash('sha256').update(`${key}:${i}`).digest());
    return Buffer.concat(parts).subarray(0, n);
  }
}
