import { describe, expect, it } from 'vitest';
import { CorruptionError } from '../../src/core/errors.js';
import { RowDecoder, RowEncoder, TextBytes } from '../../src/sources/row-codec.js';

function encodeAll(rows: unknown[][], chunkSize?: number, largeValue?: number): Buffer {
  return Buffer.concat(encodePieces(rows, chunkSize, largeValue));
}

/** The pieces the encoder hands out, each copied when it comes. */
function encodePieces(rows: unknown[][], chunkSize?: number, largeValue?: number): Buffer[] {
  const enc = new RowEncoder(chunkSize, largeValue);
  const parts: Buffer[] = [];
  for (const r of rows) {
    for (let c = enc.push(r); c; c = enc.next()) parts.push(Buffer.from(c));
  }
  for (let c = enc.flush(); c; c = enc.next()) parts.push(Buffer.from(c));
  return parts;
}

function decodeSlices(bytes: Buffer, cuts: number[], dec = new RowDecoder()): unknown[][] {
  const out: unknown[][] = [];
  let prev = 0;
  for (const cut of [...cuts, bytes.length]) {
    out.push(...dec.push(bytes.subarray(prev, cut)));
    prev = cut;
  }
  dec.finish();
  return out;
}

/** Compares with storage classes: bigint vs number, -0 vs 0, Buffer contents. */
function normalise(rows: unknown[][]): unknown[][] {
  return rows.map((r) =>
    r.map((v) => {
      if (v === undefined) return 'null';
      if (typeof v === 'bigint') return `i:${v}`;
      if (typeof v === 'number') return Object.is(v, -0) ? 'r:-0' : Number.isNaN(v) ? 'r:NaN' : `r:${v}`;
      if (typeof v === 'string') return `t:${v}`;
      if (Buffer.isBuffer(v)) return `x:${v.toString('hex')}`;
      if (v instanceof TextBytes) return `t:${Buffer.from(v.bytes).toString('utf8')}`;
      if (v instanceof Uint8Array) return `x:${Buffer.from(v).toString('hex')}`;
      return v === null ? 'null' : `?${String(v)}`;
    }),
  );
}

const MAX = 2n ** 63n - 1n;
const MIN = -(2n ** 63n);

const sample: unknown[][] = [
  [1n, 'hello', 3.5, null, Buffer.from([1, 2, 3])],
  [],
  [0n, -1n, MAX, MIN, MAX - 1n, MIN + 1n, 2n ** 52n, -(2n ** 52n), 2n ** 53n + 1n, -(2n ** 53n) - 1n],
  [-0, 0, Number.MAX_VALUE, Number.MIN_VALUE, -Infinity, Infinity, 1e-300],
  ['', Buffer.alloc(0), 'héllo wörld ✓ 𝄞 日本語', 'x'.repeat(300), 'é'.repeat(100)],
  [127n, 128n, -64n, -65n, 16383n, 16384n, 2n ** 28n, -(2n ** 28n), 2n ** 49n, -(2n ** 49n)],
  [null, null],
];

describe('row codec', () => {
  it('round-trips the sample in one piece', () => {
    const bytes = encodeAll(sample);
    expect(normalise(decodeSlices(bytes, []))).toEqual(normalise(sample));
  });

  it('decodes when split at every offset (and into single bytes)', () => {
    const bytes = encodeAll(sample);
    const expected = normalise(sample);
    for (let cut = 0; cut <= bytes.length; cut++) {
      expect(normalise(decodeSlices(bytes, [cut]))).toEqual(expected);
    }
    for (let cut = 0; cut <= bytes.length; cut += 7) {
      expect(normalise(decodeSlices(bytes, [cut, Math.min(bytes.length, cut + 3)]))).toEqual(expected);
    }
    const single = Array.from({ length: bytes.length }, (_, i) => i);
    expect(normalise(decodeSlices(bytes, single))).toEqual(expected);
  });

  it('preserves -0 and keeps integers and reals apart', () => {
    const [row] = decodeSlices(encodeAll([[-0, 0, 1, 1n]]), []);
    expect(Object.is(row?.[0], -0)).toBe(true);
    expect(Object.is(row?.[1], 0)).toBe(true);
    expect(row?.[2]).toBe(1);
    expect(row?.[3]).toBe(1n);
    expect(Buffer.isBuffer(decodeSlices(encodeAll([[new Uint8Array([9])]]), [])[0]?.[0])).toBe(true);
  });

  it('round-trips random rows across random cuts and small output chunks', () => {
    let seed = 12345;
    const rnd = (): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    const randomValue = (): unknown => {
      switch (Math.floor(rnd() * 6)) {
        case 0:
          return null;
        case 1: {
          const bits = BigInt(Math.floor(rnd() * 64));
          const v = BigInt(Math.floor(rnd() * 2 ** 53)) << (bits > 10n ? bits - 10n : 0n);
          const clipped = BigInt.asIntN(64, v);
          return rnd() < 0.5 ? clipped : BigInt.asIntN(64, -clipped);
        }
        case 2:
          return (rnd() - 0.5) * 10 ** Math.floor(rnd() * 40 - 20);
        case 3: {
          const n = Math.floor(rnd() * (rnd() < 0.1 ? 2000 : 30));
          let s = '';
          for (let i = 0; i < n; i++) {
            const r = rnd();
            s += r < 0.8 ? String.fromCharCode(32 + Math.floor(rnd() * 95)) : r < 0.95 ? 'ü' : '😀';
          }
          return s;
        }
        case 4:
          return Buffer.from(Array.from({ length: Math.floor(rnd() * 100) }, () => Math.floor(rnd() * 256)));
        default:
          return BigInt(Math.floor(rnd() * 200) - 100);
      }
    };
    const rows = Array.from({ length: 3000 }, () => Array.from({ length: Math.floor(rnd() * 12) }, randomValue));
    const bytes = encodeAll(rows, 1000);
    const cuts: number[] = [];
    for (let p = 0; p < bytes.length; p += 1 + Math.floor(rnd() * 500)) cuts.push(p);
    expect(normalise(decodeSlices(bytes, cuts))).toEqual(normalise(rows));
  });

  it('hands out chunks of about the target size', () => {
    const enc = new RowEncoder();
    const sizes: number[] = [];
    for (let i = 0; i < 100_000; i++) {
      const c = enc.push([BigInt(i), `row ${i} with some text`, i / 3]);
      if (c) sizes.push(c.length);
    }
    expect(sizes.length).toBeGreaterThan(5);
    for (const s of sizes) {
      expect(s).toBeGreaterThanOrEqual(256 * 1024);
      expect(s).toBeLessThan(256 * 1024 + 4096);
    }
  });

  it('handles values larger than a chunk', () => {
    const big = Buffer.alloc(1024 * 1024, 7);
    const text = 'ä'.repeat(200_000);
    const rows = [[big, text], [1n]];
    const bytes = encodeAll(rows);
    const cuts = Array.from({ length: 40 }, (_, i) => i * 65536);
    expect(normalise(decodeSlices(bytes, cuts))).toEqual(normalise(rows));
  });

  it('hands out large values as views or pieces of their own, and decodes them across any cuts', () => {
    // Thresholds scaled down (the defaults are 1 MiB out and 64 KiB in) so every path is exercised.
    const blob = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7) % 256));
    const text = 'añ😀'.repeat(700);
    const rows: unknown[][] = [[1n, blob, 'small', text, null], [new TextBytes(Buffer.from([0xff, 0xfe, ...Buffer.from('x'.repeat(300))]))], [blob.subarray(0, 100), 2.5]];
    const pieces = encodePieces(rows, 256, 100);
    const enc = new RowEncoder(256, 100);
    const views: Buffer[] = [];
    for (let c = enc.push(rows[0] as unknown[]); c; c = enc.next()) views.push(c);
    // The blob's bytes are not copied: its pieces are views of the value itself.
    expect(views.some((v) => v.buffer === blob.buffer && v.length > 0)).toBe(true);
    expect(Math.max(...pieces.map((p) => p.length))).toBeLessThanOrEqual(1024 * 1024);
    const bytes = Buffer.concat(pieces);
    expect(bytes.equals(encodeAll(rows))).toBe(true); // the same stream as with no large values
    for (const step of [1, 7, 64, 333, 4096]) {
      const cuts: number[] = [];
      for (let p = step; p < bytes.length; p += step) cuts.push(p);
      expect(normalise(decodeSlices(bytes, cuts, new RowDecoder({ largeValue: 50 })))).toEqual(normalise(rows));
      const asBytes = decodeSlices(bytes, cuts, new RowDecoder({ largeValue: 50, largeTextAsBytes: true }));
      expect(asBytes[0]?.[3]).toBeInstanceOf(TextBytes);
      expect(asBytes[0]?.[2]).toBe('small');
      expect(normalise(asBytes)).toEqual(normalise(rows));
    }
  });

  it('never cuts a long text between the halves of a surrogate pair', () => {
    // The default piece is 1 MiB UTF-16 units: put a pair across that boundary.
    const text = `${'a'.repeat(1024 * 1024 - 1)}😀${'é'.repeat(10)}`;
    const bytes = encodeAll([[text]]);
    const [row] = decodeSlices(bytes, [5, 1024 * 1024]);
    expect(row?.[0]).toBe(text);
  });

  it('reports a stream that ends inside a large value as corruption', () => {
    const bytes = encodeAll([[Buffer.alloc(200_000, 1)]]);
    const dec = new RowDecoder();
    expect(dec.push(bytes.subarray(0, 100_000))).toEqual([]);
    expect(dec.push(bytes.subarray(100_000, bytes.length - 1))).toEqual([]);
    expect(() => dec.finish()).toThrow(/ends inside a row: 1 bytes of a value missing/);
    const whole = new RowDecoder();
    expect(whole.push(bytes.subarray(0, 3)).length + whole.push(bytes.subarray(3)).length).toBe(1);
    whole.finish();
  });

  it('rejects out-of-range integers and unsupported values', () => {
    const enc = new RowEncoder();
    expect(() => enc.push([MAX + 1n])).toThrow(RangeError);
    expect(() => enc.push([MIN - 1n])).toThrow(RangeError);
    expect(() => new RowEncoder().push([{}])).toThrow(TypeError);
    expect(() => new RowEncoder().push([true])).toThrow(TypeError);
  });

  it('reports truncated streams and bad tags as corruption', () => {
    const bytes = encodeAll(sample);
    const dec = new RowDecoder();
    dec.push(bytes.subarray(0, bytes.length - 1));
    expect(() => dec.finish()).toThrow(CorruptionError);
    expect(() => new RowDecoder().push(Buffer.from([1, 9]))).toThrow(CorruptionError);
    // An 11-byte integer varint.
    expect(() => new RowDecoder().push(Buffer.from([1, 1, ...Array(10).fill(0xff), 1]))).toThrow(CorruptionError);
  });
});
