import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { CompressionPool, defaultCompressionWorkers } from '../../src/repo/compression-pool.js';
import { compressBlob, decompressBlob } from '../../src/repo/compression.js';

const pools: CompressionPool[] = [];
function pool(workers: number): CompressionPool {
  const p = new CompressionPool({ workers });
  pools.push(p);
  return p;
}
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close()));
});

const text = Buffer.from('row,1,hello world\n'.repeat(5000));

describe('compression pool', () => {
  it('defaults to one worker less than the cores, at least one', () => {
    expect(defaultCompressionWorkers()).toBeGreaterThanOrEqual(1);
    expect(new CompressionPool().size).toBe(defaultCompressionWorkers());
    expect(() => new CompressionPool({ workers: -1 })).toThrow(RangeError);
  });

  describe.each([0, 1, 2])('with %i workers', (workers) => {
    it.each(['zstd', 'gzip', 'none'] as const)('round-trips %s like compressBlob and stores incompressible data as is', async (algorithm) => {
      const p = pool(workers);
      const c = await p.compress(text, algorithm, 'default');
      expect(c.algorithm).toBe(algorithm);
      expect(decompressBlob(c.data, c.algorithm, text.length, 'x')).toEqual(text);
      expect(c.data.equals(compressBlob(text, algorithm, 'default').data)).toBe(true);
      if (algorithm !== 'none') expect(c.data.length).toBeLessThan(text.length / 5);

      const noise = randomBytes(64 * 1024);
      const n = await p.compress(noise, algorithm, 'best');
      expect(n.algorithm).toBe('none');
      expect(n.data.equals(noise)).toBe(true);
    });

    it('completes many concurrent tasks, each with its own result', async () => {
      const p = pool(workers);
      const inputs = Array.from({ length: 60 }, (_, i) => Buffer.from(`chunk ${i} `.repeat(2000 + i * 37)));
      const results = await Promise.all(inputs.map((b, i) => p.compress(b, i % 3 === 0 ? 'gzip' : 'zstd', 'fastest')));
      results.forEach((r, i) => expect(decompressBlob(r.data, r.algorithm, inputs[i]!.length, `#${i}`).equals(inputs[i]!)).toBe(true));
    });
  });

  it('with transfer, moves a whole buffer to the worker and copies a view', async () => {
    const p = pool(1);
    const own = Buffer.from(text); // > 8 KiB: an ArrayBuffer of its own
    const expected = Buffer.from(own);
    const big = Buffer.from('abcdefgh'.repeat(100_000));
    const view = big.subarray(1000, 200_000);
    const [a, b] = await Promise.all([p.compress(own, 'zstd', 'default', true), p.compress(view, 'zstd', 'default', true)]);
    expect(own.buffer.byteLength).toBe(0); // detached: moved, not copied
    expect(big.length).toBe(800_000);
    expect(decompressBlob(a.data, a.algorithm, expected.length, 'a').equals(expected)).toBe(true);
    expect(decompressBlob(b.data, b.algorithm, view.length, 'b').equals(view)).toBe(true);
    // Incompressible and moved: the worker hands the same bytes back.
    const noise = randomBytes(64 * 1024);
    const noiseCopy = Buffer.from(noise);
    const n = await p.compress(noise, 'zstd', 'default', true);
    expect(n).toEqual({ data: noiseCopy, algorithm: 'none' });
  });

  it('leaves the caller’s buffer alone, also when it is a view on a larger one', async () => {
    const p = pool(1);
    const big = Buffer.from('abcdefgh'.repeat(100_000));
    const view = big.subarray(1000, 200_000);
    const small = Buffer.from('tiny'); // from Node's shared Buffer pool
    const [a, b] = await Promise.all([p.compress(view, 'zstd', 'default'), p.compress(small, 'zstd', 'default')]);
    expect(view.length).toBe(199_000);
    expect(big.length).toBe(800_000);
    expect(small.toString()).toBe('tiny');
    expect(decompressBlob(a.data, a.algorithm, view.length, 'a').equals(view)).toBe(true);
    expect(b).toEqual({ data: small, algorithm: 'none' });
  });

  it('refuses work once closed, and rejects what was still pending', async () => {
    const p = pool(1);
    const pending = expect(p.compress(randomBytes(8 * 1024 * 1024), 'zstd', 'best')).rejects.toThrow(/closed/);
    await p.close();
    await pending;
    await expect(p.compress(text, 'zstd', 'default')).rejects.toThrow(/compression pool is closed/);
    await p.close(); // twice is harmless
  });

  it('rejects the tasks of a worker that dies instead of hanging, and goes on with a new one', async () => {
    const p = pool(1);
    await p.compress(text, 'zstd', 'default'); // starts the worker
    const workers = (p as unknown as { workers: { worker: { terminate(): Promise<number> } }[] }).workers;
    const pending = expect(p.compress(randomBytes(8 * 1024 * 1024), 'zstd', 'best')).rejects.toThrow(/compression worker stopped/);
    await workers[0]!.worker.terminate();
    await pending;
    const c = await p.compress(text, 'gzip', 'default');
    expect(decompressBlob(c.data, c.algorithm, text.length, 'x')).toEqual(text);
  });
});
