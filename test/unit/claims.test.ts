import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConflictError } from '../../src/core/errors.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { createExclusiveByClaims } from '../../src/storage/common.js';
// Seeded generator (mulberry32), so a failing round can be replayed.
import { seededRandom as seeded } from '../../src/storage/middleware/faults.js';
import type { ObjectInfo, Payload, PutOptions, Storage } from '../../src/storage/types.js';

/**
 * A storage whose every call takes `delayMs` give or take 10 %, like a loaded S3-compatible
 * server: the case where writers backing off symmetrically by less than a round trip kept
 * meeting until all gave up (CI, OpenStack Swift: two racers, both failed with "it kept claiming
 * it"). Deletes may also stay listed for a while (`ghostMs`), as where listings lag deletions.
 */
class SlowStorage implements Storage {
  readonly atomicCreate = false;
  private readonly ghosts = new Map<string, { info: ObjectInfo; until: number }>();
  constructor(
    private readonly inner: FileSystemStorage,
    private readonly delayMs: number,
    private readonly random: () => number,
    private readonly ghostMs = 0,
  ) {}
  get location(): string { return this.inner.location; }
  private wait(): Promise<void> { return new Promise((r) => setTimeout(r, this.delayMs * (0.9 + 0.2 * this.random()))); }
  async put(key: string, data: Payload, options?: PutOptions): Promise<void> { await this.wait(); return this.inner.put(key, data, options); }
  async get(key: string, signal?: AbortSignal): Promise<Buffer> { await this.wait(); return this.inner.get(key, signal); }
  async getRange(key: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> { await this.wait(); return this.inner.getRange(key, offset, length, signal); }
  async *list(prefix: string, signal?: AbortSignal): AsyncIterable<ObjectInfo> {
    await this.wait();
    const all: ObjectInfo[] = [];
    for await (const o of this.inner.list(prefix, signal)) all.push(o);
    for (const [key, g] of this.ghosts) {
      if (g.until < Date.now()) this.ghosts.delete(key);
      else if (key.startsWith(prefix) && !all.some((o) => o.key === key)) all.push(g.info);
    }
    await this.wait();
    yield* all;
  }
  async delete(key: string): Promise<void> {
    await this.wait();
    if (this.ghostMs > 0) {
      for await (const o of this.inner.list(key)) if (o.key === key) this.ghosts.set(key, { info: o, until: Date.now() + this.ghostMs });
    }
    return this.inner.delete(key);
  }
  async exists(key: string): Promise<boolean> { await this.wait(); return this.inner.exists(key); }
}


describe('createExclusiveByClaims on a slow storage', () => {
  const dirs: string[] = [];
  afterAll(async () => { for (const d of dirs) await rm(d, { recursive: true, force: true }); });

  it.each([
    ['calls of 60 ms', 0],
    ['calls of 60 ms, deletions listed for 2 s more', 2000],
  ])('of 2, 3 and 5 racing writers exactly one wins every round, the others see ConflictError (%s)', async (_name, ghostMs) => {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-claims-'));
    dirs.push(dir);
    const inner = new FileSystemStorage(dir);
    let rounds = 0;
    for (const writers of [2, 3, 5]) {
      for (let round = 0; round < 4; round++) {
        const s = new SlowStorage(inner, 60, seeded(1000 * writers + round), ghostMs);
        const key = `backups/g${ghostMs}-w${writers}-r${round}`;
        const results = await Promise.allSettled(
          Array.from({ length: writers }, (_, i) => createExclusiveByClaims(s, key, Buffer.from(`writer ${i}`))),
        );
        const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
        expect(won, `${writers} writers, round ${round}: ${results.map((r) => (r.status === 'rejected' ? String(r.reason) : 'won')).join(' / ')}`).toHaveLength(1);
        for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(ConflictError);
        expect((await inner.get(key)).toString()).toBe(`writer ${won[0]}`);
        // Only the winner's claim stays, beside its object.
        const left: string[] = [];
        for await (const o of inner.list(`claims/backups%2Fg${ghostMs}-w${writers}-r${round}/`)) left.push(o.key);
        expect(left).toHaveLength(1);
        rounds++;
      }
    }
    expect(rounds).toBe(12);
  }, 120_000);
});
