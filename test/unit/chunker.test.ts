import { createHash } from 'node:crypto';
import { describe, it, expect } from 'vitest';
import {
  DEFAULT_CHUNKER_PARAMS,
  FastCdcChunker,
  chunkStream,
  validateChunkerParams,
  type ChunkerParams,
} from '../../src/repo/chunker.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const SMALL: ChunkerParams = { minSize: 1 * KiB, avgSize: 4 * KiB, maxSize: 16 * KiB };

/** Deterministic pseudo-random bytes (mulberry32). */
function prng(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return (z ^ (z >>> 14)) >>> 0;
  };
}
function randomBytes(n: number, seed: number): Buffer {
  const next = prng(seed);
  const words = new Uint32Array(Math.ceil(n / 4));
  for (let i = 0; i < words.length; i++) words[i] = next();
  return Buffer.from(words.buffer, 0, n);
}

/** Chunks `data`, pushing it in pieces whose sizes come from `sizes` (cycled). */
function chunkWith(data: Uint8Array, params: ChunkerParams, sizes: () => number): Buffer[] {
  const c = new FastCdcChunker(params);
  const out: Buffer[] = [];
  for (let off = 0; off < data.length; ) {
    const n = Math.max(1, sizes());
    out.push(...c.push(data.subarray(off, off + n)));
    off += n;
  }
  out.push(...c.finish());
  return out;
}
const whole = (data: Uint8Array, params: ChunkerParams): Buffer[] => chunkWith(data, params, () => data.length);
const lengths = (chunks: Buffer[]): number[] => chunks.map((c) => c.length);
const boundaryHash = (chunks: Buffer[]): string =>
  createHash('sha256').update(lengths(chunks).join(',')).digest('hex');

describe('validateChunkerParams', () => {
  it('accepts the defaults and sane custom values', () => {
    expect(() => validateChunkerParams(DEFAULT_CHUNKER_PARAMS)).not.toThrow();
    expect(() => validateChunkerParams(SMALL)).not.toThrow();
    expect(() => validateChunkerParams({ minSize: 64, avgSize: 128, maxSize: 256 })).not.toThrow();
    expect(() => validateChunkerParams({ minSize: 16 * MiB, avgSize: 32 * MiB, maxSize: 64 * MiB })).not.toThrow();
  });
  it('rejects bad values with a clear message', () => {
    expect(() => validateChunkerParams({ minSize: 1000, avgSize: 3000, maxSize: 9000 })).toThrow(/power of two/);
    expect(() => validateChunkerParams({ minSize: 4096, avgSize: 4096, maxSize: 9000 })).toThrow(/minSize < avgSize < maxSize/);
    expect(() => validateChunkerParams({ minSize: 1024, avgSize: 4096, maxSize: 4096 })).toThrow(/minSize < avgSize < maxSize/);
    expect(() => validateChunkerParams({ minSize: 32, avgSize: 128, maxSize: 256 })).toThrow(/minSize must be between/);
    expect(() => validateChunkerParams({ minSize: 1 * MiB, avgSize: 64 * MiB, maxSize: 128 * MiB })).toThrow(/maxSize must be between/);
    expect(() => validateChunkerParams({ minSize: 1.5, avgSize: 4096, maxSize: 9000 })).toThrow(/integer/);
    expect(() => validateChunkerParams({ minSize: Number.NaN, avgSize: 4096, maxSize: 9000 })).toThrow(/integer/);
    expect(() => new FastCdcChunker({ minSize: 1000, avgSize: 3000, maxSize: 9000 })).toThrow(/power of two/);
  });
});

describe('FastCdcChunker', () => {
  const data = randomBytes(1 * MiB, 1);

  it('gives no chunks for an empty stream', () => {
    expect(new FastCdcChunker(SMALL).finish()).toEqual([]);
    const c = new FastCdcChunker(SMALL);
    expect(c.push(new Uint8Array(0))).toEqual([]);
    expect(c.finish()).toEqual([]);
  });

  it('reassembles to the input and respects min/max bounds', () => {
    for (const input of [data, Buffer.alloc(200 * KiB), Buffer.alloc(200 * KiB, 0xab)]) {
      const chunks = whole(input, SMALL);
      expect(Buffer.concat(chunks).equals(input)).toBe(true);
      chunks.forEach((c, i) => {
        expect(c.length).toBeLessThanOrEqual(SMALL.maxSize);
        if (i < chunks.length - 1) expect(c.length).toBeGreaterThanOrEqual(SMALL.minSize);
        else expect(c.length).toBeGreaterThan(0);
      });
    }
    // Input shorter than minSize: one chunk.
    expect(lengths(whole(data.subarray(0, 700), SMALL))).toEqual([700]);
  });

  it('gives identical boundaries however the input is split', () => {
    const ref = lengths(whole(data, SMALL));
    const rnd = prng(42);
    expect(lengths(chunkWith(data, SMALL, () => 1 + (rnd() % 20_000)))).toEqual(ref);
    expect(lengths(chunkWith(data, SMALL, () => 1 + (rnd() % 64)))).toEqual(ref);
    expect(lengths(chunkWith(data, SMALL, () => SMALL.maxSize))).toEqual(ref);
    expect(lengths(chunkWith(data, SMALL, () => SMALL.minSize - 1))).toEqual(ref);
    const prefix = data.subarray(0, 96 * KiB);
    expect(lengths(chunkWith(prefix, SMALL, () => 1))).toEqual(lengths(whole(prefix, SMALL)));
  });

  it('gives identical boundaries however the input is split, default params', () => {
    const big = randomBytes(12 * MiB, 7);
    const ref = lengths(whole(big, DEFAULT_CHUNKER_PARAMS));
    expect(ref.length).toBeGreaterThan(3);
    const rnd = prng(9);
    expect(lengths(chunkWith(big, DEFAULT_CHUNKER_PARAMS, () => 1 + (rnd() % (3 * MiB))))).toEqual(ref);
    expect(lengths(chunkWith(big, DEFAULT_CHUNKER_PARAMS, () => 64 * KiB))).toEqual(ref);
  });

  it('averages roughly avgSize on random data', () => {
    const chunks = whole(randomBytes(4 * MiB, 3), SMALL);
    const mean = (4 * MiB) / chunks.length;
    expect(mean).toBeGreaterThan(SMALL.avgSize * 0.8);
    expect(mean).toBeLessThan(SMALL.avgSize * 1.5);
  });

  it('has fixed, deterministic boundaries (repository format)', () => {
    const chunks = whole(data, SMALL);
    expect(chunks.length).toBe(227);
    expect(boundaryHash(chunks)).toBe('b3f4ade4254a6db13374e3dbe9f9b42ae4230111c655f7ecda834b471a49b5bf');
    const big = whole(randomBytes(12 * MiB, 7), DEFAULT_CHUNKER_PARAMS);
    expect(lengths(big)).toEqual([744753, 1558367, 498899, 708829, 2841845, 1067375, 1598802, 1378102, 1073948, 1111992]);
  });

  it('only changes the first chunks when bytes are inserted near the start', () => {
    const edited = Buffer.concat([data.subarray(0, 100), Buffer.from('inserted bytes!'), data.subarray(100)]);
    const a = whole(data, SMALL).map((c) => createHash('sha256').update(c).digest('hex'));
    const b = whole(edited, SMALL).map((c) => createHash('sha256').update(c).digest('hex'));
    const inA = new Set(a);
    const changed = b.filter((h) => !inA.has(h)).length;
    expect(changed).toBeGreaterThanOrEqual(1);
    expect(changed).toBeLessThanOrEqual(2);
    expect(b.slice(changed)).toEqual(a.slice(a.length - (b.length - changed)));
  });

  it('returns chunks that do not alias the input or each other', () => {
    const input = Buffer.from(data.subarray(0, 256 * KiB));
    const c = new FastCdcChunker(SMALL);
    const chunks = [...c.push(input.subarray(0, 100 * KiB)), ...c.push(input.subarray(100 * KiB)), ...c.finish()];
    const copy = Buffer.concat(chunks);
    input.fill(0);
    expect(Buffer.concat(chunks).equals(copy)).toBe(true);
    expect(copy.equals(Buffer.from(data.subarray(0, 256 * KiB)))).toBe(true);
  });

  it('refuses push() after finish()', () => {
    const c = new FastCdcChunker(SMALL);
    c.finish();
    expect(() => c.push(new Uint8Array(1))).toThrow();
  });
});

/**
 * The chunker's cut rule as first written (a plain loop per byte over a whole buffer), kept as
 * the reference: the unrolled scan must give exactly its boundaries (they are repository format).
 */
function referenceLengths(d: Uint8Array, p: ChunkerParams): number[] {
  const G = new Int32Array(256);
  let s = 0x63616972 | 0;
  for (let i = 0; i < 256; i++) {
    s = (s + 0x6d2b79f5) | 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    G[i] = z ^ (z >>> 14);
  }
  const bits = Math.round(Math.log2(p.avgSize));
  const top = (b: number): number => (b >= 32 ? -1 : (~0 << (32 - b)) | 0);
  const mS = top(bits + 2);
  const mL = top(Math.max(1, bits - 2));
  const out: number[] = [];
  for (let start = 0; start < d.length; ) {
    const end = Math.min(d.length, start + p.maxSize);
    const normEnd = Math.min(end, start + p.avgSize);
    let h = 0;
    let cut = end;
    let i = start + p.minSize;
    for (; i < normEnd; i++) {
      h = ((h << 1) + G[d[i]!]!) | 0;
      if ((h & mS) === 0) break;
    }
    if (i < normEnd) cut = i + 1;
    else {
      for (; i < end; i++) {
        h = ((h << 1) + G[d[i]!]!) | 0;
        if ((h & mL) === 0) break;
      }
      if (i < end) cut = i + 1;
    }
    out.push(cut - start);
    start = cut;
  }
  return out;
}

describe('FastCdcChunker against the reference loop', () => {
  /** Text-like bytes: few distinct values, as in COPY output. */
  function textBytes(n: number, seed: number): Buffer {
    const next = prng(seed);
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = next() % 10 === 0 ? 0x20 : 0x61 + (next() % 6);
    return b;
  }
  const odd: ChunkerParams = { minSize: 100, avgSize: 256, maxSize: 1001 };
  it.each([
    ['random, small params', randomBytes(2 * MiB, 11), SMALL],
    ['text-like, small params', textBytes(2 * MiB, 12), SMALL],
    ['random, odd sizes', randomBytes(300 * KiB, 13), odd],
    ['text-like, odd sizes', textBytes(300 * KiB, 14), odd],
    ['random, default params', randomBytes(12 * MiB, 15), DEFAULT_CHUNKER_PARAMS],
  ] as const)('gives the same boundaries: %s', (_, data, params) => {
    const ref = referenceLengths(data, params);
    expect(ref.length).toBeGreaterThan(5);
    expect(lengths(whole(data, params))).toEqual(ref);
    const rnd = prng(data.length);
    expect(lengths(chunkWith(data, params, () => 1 + (rnd() % (2 * params.avgSize))))).toEqual(ref);
    // Tiny pushes (every unrolled-loop remainder) on the smaller inputs only: they are slow.
    if (data.length <= 2 * MiB) expect(lengths(chunkWith(data.subarray(0, 512 * KiB), params, () => 1 + (rnd() % 13)))).toEqual(referenceLengths(data.subarray(0, 512 * KiB), params));
  });
});

describe('chunkStream', () => {
  async function* pieces(buf: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
    for (let o = 0; o < buf.length; o += size) yield buf.subarray(o, o + size);
  }
  async function collect(it: AsyncIterable<Buffer>): Promise<Buffer[]> {
    const out: Buffer[] = [];
    for await (const c of it) out.push(c);
    return out;
  }
  const data = randomBytes(256 * KiB, 5);

  it('matches the push() API', async () => {
    const chunks = await collect(chunkStream(pieces(data, 10_000), SMALL));
    expect(lengths(chunks)).toEqual(lengths(whole(data, SMALL)));
    expect(await collect(chunkStream(pieces(Buffer.alloc(0), 1), SMALL))).toEqual([]);
  });

  it('throws signal.reason when aborted before start', async () => {
    const ac = new AbortController();
    const reason = new Error('stop now');
    ac.abort(reason);
    await expect(collect(chunkStream(pieces(data, 1000), SMALL, ac.signal))).rejects.toBe(reason);
  });

  it('throws signal.reason when aborted mid-stream', async () => {
    const ac = new AbortController();
    const reason = new Error('cancelled');
    let returned = false;
    async function* endless(): AsyncGenerator<Uint8Array> {
      try {
        for (let i = 0; ; i++) yield randomBytes(4 * KiB, i);
      } finally {
        returned = true;
      }
    }
    const got: Buffer[] = [];
    await expect(
      (async () => {
        for await (const c of chunkStream(endless(), SMALL, ac.signal)) {
          got.push(c);
          if (got.length === 3) ac.abort(reason);
        }
      })(),
    ).rejects.toBe(reason);
    expect(got.length).toBe(3);
    await new Promise((r) => setImmediate(r));
    expect(returned).toBe(true);
  });

  it('throws signal.reason when aborted while the source is waiting', async () => {
    const ac = new AbortController();
    const reason = new Error('timeout');
    const stuck: AsyncIterable<Uint8Array> = {
      [Symbol.asyncIterator]: () => ({ next: () => new Promise<IteratorResult<Uint8Array>>(() => undefined) }),
    };
    setTimeout(() => ac.abort(reason), 10);
    await expect(collect(chunkStream(stuck, SMALL, ac.signal))).rejects.toBe(reason);
  });
});
