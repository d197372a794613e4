/**
 * Streaming FastCDC content-defined chunker (FastCDC 2020 style).
 *
 * - Gear hash, 32-bit, `h = (h << 1) + GEAR[byte]`; the hash restarts at every chunk start, and
 *   the first `minSize` bytes of a chunk are skipped (not hashed), so a boundary depends only on
 *   the bytes since the start of its chunk.
 * - Normalized chunking (level 2): before `avgSize` bytes a stricter mask with log2(avg)+2 bits is
 *   used, after it a looser one with log2(avg)-2 bits; a cut is forced at `maxSize`.
 * - The mask bits are the top bits of the 32-bit hash, which depend on the last 32 bytes.
 * - A cut is placed *after* the byte whose hash matched.
 *
 * Boundaries are a pure function of the byte stream and the parameters: they do not depend on
 * how the input is split into `push()` calls, and the gear table is generated from a fixed seed,
 * so they are identical across runs, machines and Node versions. Changing the table, the masks or
 * the cut rule changes every boundary (and so deduplication against existing repositories):
 * treat them as part of the repository format.
 *
 * Memory: the chunker holds at most `maxSize` bytes of the current, unfinished chunk (as
 * references to the pushed buffers, so that each byte is copied once, into the chunk it ends up
 * in) plus the chunks it returns from one `push()`. A caller must not modify a buffer after
 * pushing it.
 */

export interface ChunkerParams {
  minSize: number;
  avgSize: number;
  maxSize: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;

export const DEFAULT_CHUNKER_PARAMS: ChunkerParams = Object.freeze({
  minSize: 256 * KiB,
  avgSize: 1 * MiB,
  maxSize: 4 * MiB,
});

/** Smallest and largest sizes accepted for any of min/avg/max. */
const LOWER_BOUND = 64;
const UPPER_BOUND = 64 * MiB;

/** Normalization level: the strict mask has log2(avg)+NC bits, the loose one log2(avg)-NC. */
const NORMALIZATION = 2;

export function validateChunkerParams(p: ChunkerParams): void {
  if (p === null || typeof p !== 'object') {
    throw new Error('chunker params must be an object { minSize, avgSize, maxSize }');
  }
  for (const key of ['minSize', 'avgSize', 'maxSize'] as const) {
    const v = p[key];
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
      throw new Error(`chunker ${key} must be an integer number of bytes, got ${String(v)}`);
    }
    if (v < LOWER_BOUND || v > UPPER_BOUND) {
      throw new Error(
        `chunker ${key} must be between ${LOWER_BOUND} bytes and ${UPPER_BOUND} bytes (64 MiB), got ${v}`,
      );
    }
  }
  const { minSize, avgSize, maxSize } = p;
  if ((avgSize & (avgSize - 1)) !== 0) {
    throw new Error(`chunker avgSize must be a power of two, got ${avgSize}`);
  }
  if (!(minSize < avgSize && avgSize < maxSize)) {
    throw new Error(
      `chunker sizes must satisfy minSize < avgSize < maxSize, got min=${minSize} avg=${avgSize} max=${maxSize}`,
    );
  }
}

/**
 * Gear table: 256 32-bit values from mulberry32 with a fixed seed. Part of the repository format;
 * never change the seed or the generator.
 */
const GEAR_SEED = 0x63616972; // "cair"
const GEAR: Int32Array = (() => {
  const t = new Int32Array(256);
  let s = GEAR_SEED | 0;
  for (let i = 0; i < 256; i++) {
    s = (s + 0x6d2b79f5) | 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    t[i] = z ^ (z >>> 14);
  }
  return t;
})();

/** Top `bits` bits of a 32-bit word set, as a signed int32. */
function topMask(bits: number): number {
  return bits >= 32 ? -1 : (~0 << (32 - bits)) | 0;
}

export class FastCdcChunker {
  private readonly minSize: number;
  private readonly avgSize: number;
  private readonly maxSize: number;
  private readonly maskS: number;
  private readonly maskL: number;
  /** The current, unfinished chunk: views of pushed buffers, `pendingLen` bytes in all. */
  private pending: Uint8Array[] = [];
  private pendingLen = 0;
  /** Gear hash state at the end of the pending bytes. */
  private hash = 0;
  private finished = false;

  constructor(params: ChunkerParams) {
    validateChunkerParams(params);
    this.minSize = params.minSize;
    this.avgSize = params.avgSize;
    this.maxSize = params.maxSize;
    const bits = Math.round(Math.log2(params.avgSize));
    this.maskS = topMask(bits + NORMALIZATION);
    this.maskL = topMask(Math.max(1, bits - NORMALIZATION));
  }

  /** Feed bytes; returns zero or more complete chunks (fresh Buffers, never aliasing `data`). */
  push(data: Uint8Array): Buffer[] {
    if (this.finished) throw new Error('FastCdcChunker: push() after finish()');
    const out: Buffer[] = [];
    const n = data.length;
    let off = 0;
    while (off < n) {
      const pos = this.pendingLen; // chunk position of data[off]
      const take = Math.min(n - off, this.maxSize - pos);
      const cut = this.scan(data, off, off + take, pos);
      if (cut >= 0 || pos + take === this.maxSize) {
        const end = cut >= 0 ? cut : off + take;
        out.push(this.emit(data, off, end));
        off = end;
      } else {
        this.pending.push(data.subarray(off, off + take));
        this.pendingLen = pos + take;
        off += take;
      }
    }
    return out;
  }

  /** End of stream: returns the remaining bytes as the final chunk (none if nothing is pending). */
  finish(): Buffer[] {
    if (this.finished) return [];
    this.finished = true;
    const out: Buffer[] = [];
    if (this.pendingLen > 0) out.push(this.emit(new Uint8Array(0), 0, 0));
    this.pending = [];
    this.pendingLen = 0;
    this.hash = 0;
    return out;
  }

  /** Completes the current chunk with data[from, to) and resets the chunk state. */
  private emit(data: Uint8Array, from: number, to: number): Buffer {
    const head = this.pendingLen;
    const chunk = Buffer.allocUnsafe(head + (to - from));
    let at = 0;
    for (const part of this.pending) {
      chunk.set(part, at);
      at += part.length;
    }
    chunk.set(data.subarray(from, to), head);
    this.pending = [];
    this.pendingLen = 0;
    this.hash = 0;
    return chunk;
  }

  /**
   * Scans d[from, to), where d[from] is at chunk position `pos`, for a cut point. Returns the
   * index just after the matching byte, or -1 (and saves the hash state) if there is none.
   */
  private scan(d: Uint8Array, from: number, to: number, pos: number): number {
    const i = from + Math.max(0, this.minSize - pos);
    // Strict mask until the chunk reaches avgSize bytes, the loose one after.
    const normEnd = Math.min(to, from + Math.max(0, this.avgSize - pos));
    let h = this.hash;
    if (i < normEnd) {
      const cut = gearScan(d, i, normEnd, this.maskS, h);
      if (cut >= 0) {
        this.hash = 0;
        return cut;
      }
      h = scanHash;
    }
    const j = Math.max(i, normEnd);
    if (j < to) {
      const cut = gearScan(d, j, to, this.maskL, h);
      if (cut >= 0) {
        this.hash = 0;
        return cut;
      }
      h = scanHash;
    }
    this.hash = h;
    return -1;
  }
}

/** The hash after a gearScan() that found no cut (a second return value, without allocating). */
let scanHash = 0;

/**
 * The gear hash over d[i, end) from state `h`: the index just after the first byte where
 * `(h & mask) === 0`, or -1 (the final state then in scanHash). The hot loop of a backup's main
 * thread: unrolled by 8, which measured 7–21 % faster than the plain loop under V8 (fewer loop
 * tests per byte); the hash and the cut rule are exactly the plain loop's.
 */
function gearScan(d: Uint8Array, i: number, end: number, mask: number, h: number): number {
  const G = GEAR;
  const end8 = i + ((end - i) & ~7);
  for (; i < end8; i += 8) {
    h = ((h << 1) + G[d[i]!]!) | 0;
    if ((h & mask) === 0) return i + 1;
    h = ((h << 1) + G[d[i + 1]!]!) | 0;
    if ((h & mask) === 0) return i + 2;
    h = ((h << 1) + G[d[i + 2]!]!) | 0;
    if ((h & mask) === 0) return i + 3;
    h = ((h << 1) + G[d[i + 3]!]!) | 0;
    if ((h & mask) === 0) return i + 4;
    h = ((h << 1) + G[d[i + 4]!]!) | 0;
    if ((h & mask) === 0) return i + 5;
    h = ((h << 1) + G[d[i + 5]!]!) | 0;
    if ((h & mask) === 0) return i + 6;
    h = ((h << 1) + G[d[i + 6]!]!) | 0;
    if ((h & mask) === 0) return i + 7;
    h = ((h << 1) + G[d[i + 7]!]!) | 0;
    if ((h & mask) === 0) return i + 8;
  }
  for (; i < end; i++) {
    h = ((h << 1) + G[d[i]!]!) | 0;
    if ((h & mask) === 0) return i + 1;
  }
  scanHash = h;
  return -1;
}

/** Convenience: chunk an async byte stream. Throws `signal.reason` when the AbortSignal fires. */
export async function* chunkStream(
  source: AsyncIterable<Uint8Array>,
  params: ChunkerParams,
  signal?: AbortSignal,
): AsyncGenerator<Buffer> {
  const chunker = new FastCdcChunker(params);
  signal?.throwIfAborted();
  const it = source[Symbol.asyncIterator]();
  let done = false;
  try {
    for (;;) {
      const r = await nextOrAbort(it, signal);
      if (r.done === true) {
        done = true;
        break;
      }
      const chunks = chunker.push(r.value);
      for (const c of chunks) {
        signal?.throwIfAborted();
        yield c;
      }
    }
    for (const c of chunker.finish()) {
      signal?.throwIfAborted();
      yield c;
    }
  } finally {
    // Early exit (abort, error, consumer stopped): let the source release its resources.
    if (!done && typeof it.return === 'function') {
      Promise.resolve(it.return()).catch(() => undefined);
    }
  }
}

function nextOrAbort(
  it: AsyncIterator<Uint8Array>,
  signal: AbortSignal | undefined,
): Promise<IteratorResult<Uint8Array>> {
  if (signal === undefined) return it.next();
  signal.throwIfAborted();
  return new Promise<IteratorResult<Uint8Array>>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    it.next().then(
      (r) => {
        signal.removeEventListener('abort', onAbort);
        resolve(r);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
