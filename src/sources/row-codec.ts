/**
 * "rows-v1": a compact, streaming binary encoding of table rows that keeps SQLite's storage
 * classes exactly.
 *
 *   row    = varint(valueCount) value*
 *   value  = tag payload
 *   tag 0  NULL     (no payload)
 *   tag 1  INTEGER  zigzag varint of the 64-bit signed value (1..10 bytes)
 *   tag 2  REAL     8 bytes, IEEE 754 float64 little-endian (keeps -0; NaN payload bits are not
 *                   significant)
 *   tag 3  TEXT     varint(byteLength) + the text's bytes: UTF-8, or exactly the bytes SQLite held
 *                   when they are not valid UTF-8 (SQLite stores any bytes as TEXT, and keeps them)
 *   tag 4  BLOB     varint(byteLength) + bytes
 *
 * Varints are unsigned LEB128 (7 bits per byte, low groups first, high bit = "more").
 * A stream is a plain concatenation of rows: there is no header, no framing and no trailer, so
 * the encoder may cut its output anywhere and the decoder accepts arbitrary slices.
 *
 * JavaScript types: INTEGER <-> bigint, REAL <-> number, TEXT <-> string (or TextBytes, for
 * text whose bytes are not valid UTF-8: decoding them to a string would replace them), BLOB <-> Buffer
 * (any Uint8Array is accepted when encoding), NULL <-> null (undefined is encoded as NULL).
 * A JavaScript number is always REAL, even when it holds an integral value: read SQLite with
 * safeIntegers(true) so that integers arrive as bigints.
 */
import { isUtf8 } from 'node:buffer';
import { CorruptionError } from '../core/errors.js';

/**
 * A TEXT value given as its bytes: encoded as TEXT with exactly these bytes, and what the decoder
 * returns for a TEXT value whose bytes are not valid UTF-8 (a string would hold U+FFFD instead).
 */
export class TextBytes {
  constructor(readonly bytes: Uint8Array) {}
}

export const ROWS_V1 = 'rows-v1';

const TAG_NULL = 0;
const TAG_INTEGER = 1;
const TAG_REAL = 2;
const TAG_TEXT = 3;
const TAG_BLOB = 4;

/** Output buffers are handed out once they hold at least this many bytes. */
const TARGET_CHUNK = 256 * 1024;
/** Longer strings are measured first instead of reserving 3 bytes per UTF-16 unit. */
const LONG_STRING = 64 * 1024;
/** Strings up to this length try a plain ASCII copy loop before the native encoder. */
const ASCII_LOOP = 24;

const INT_MIN = -(2n ** 63n);
const INT_MAX = 2n ** 63n - 1n;
/** |v| <= 2^52: zigzag value <= 2^53, exact in a double. */
const FAST_MIN = -(2n ** 52n);
const FAST_MAX = 2n ** 52n;

/** Cached bigints for small decoded integers (avoids one heap allocation per value). */
const SMALL_MIN = -128;
const SMALL_MAX = 1023;
const SMALL_BIGINTS: bigint[] = [];
for (let i = SMALL_MIN; i <= SMALL_MAX; i++) SMALL_BIGINTS.push(BigInt(i));

function toBigInt(n: number): bigint {
  return n >= SMALL_MIN && n <= SMALL_MAX ? (SMALL_BIGINTS[n - SMALL_MIN] as bigint) : BigInt(n);
}

export class RowEncoder {
  private buf: Buffer;
  private pos = 0;
  private readonly target: number;

  constructor(targetChunkSize = TARGET_CHUNK) {
    this.target = targetChunkSize;
    this.buf = Buffer.allocUnsafe(targetChunkSize + 4096);
  }

  /** Bytes buffered and not yet handed out. */
  get pending(): number {
    return this.pos;
  }

  /** Appends one row; returns a full chunk (~256 KiB) when one is ready. */
  push(values: unknown[]): Buffer | undefined {
    const n = values.length;
    this.ensure(10 + n * 11);
    this.pos = writeVarint(this.buf, this.pos, n);
    for (let i = 0; i < n; i++) this.writeValue(values[i]);
    return this.pos >= this.target ? this.take() : undefined;
  }

  /** Hands out whatever is buffered (undefined when nothing is). */
  flush(): Buffer | undefined {
    return this.pos > 0 ? this.take() : undefined;
  }

  private take(): Buffer {
    const out = this.buf.subarray(0, this.pos);
    this.buf = Buffer.allocUnsafe(Math.max(this.target + 4096, 64));
    this.pos = 0;
    return out;
  }

  /** Makes room for `extra` more bytes (the current chunk may grow past the target). */
  private ensure(extra: number): void {
    const need = this.pos + extra;
    if (need <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2));
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
  }

  private writeValue(v: unknown): void {
    // Room for a tag, a 10-byte varint or an 8-byte double was reserved by push().
    const buf = this.buf;
    if (typeof v === 'bigint') {
      buf[this.pos++] = TAG_INTEGER;
      if (v >= FAST_MIN && v <= FAST_MAX) {
        const n = Number(v);
        this.pos = writeVarint(buf, this.pos, n >= 0 ? n * 2 : -n * 2 - 1);
      } else {
        if (v < INT_MIN || v > INT_MAX) {
          throw new RangeError(`integer ${v} does not fit in 64 bits`);
        }
        this.pos = writeBigVarint(buf, this.pos, v >= 0n ? v << 1n : ((-v) << 1n) - 1n);
      }
    } else if (typeof v === 'string') {
      this.writeText(v);
    } else if (typeof v === 'number') {
      buf[this.pos++] = TAG_REAL;
      this.pos = buf.writeDoubleLE(v, this.pos);
    } else if (v === null || v === undefined) {
      buf[this.pos++] = TAG_NULL;
    } else if (v instanceof Uint8Array || v instanceof TextBytes) {
      const bytes = v instanceof TextBytes ? v.bytes : v;
      const len = bytes.length;
      this.ensure(11 + len);
      const b = this.buf;
      b[this.pos++] = v instanceof TextBytes ? TAG_TEXT : TAG_BLOB;
      this.pos = writeVarint(b, this.pos, len);
      b.set(bytes, this.pos);
      this.pos += len;
    } else {
      throw new TypeError(`cannot encode a value of type ${typeof v} (${Object.prototype.toString.call(v)})`);
    }
  }

  private writeText(s: string): void {
    const len = s.length;
    if (len > LONG_STRING) {
      const bytes = Buffer.byteLength(s, 'utf8');
      this.ensure(11 + bytes);
      const buf = this.buf;
      buf[this.pos++] = TAG_TEXT;
      this.pos = writeVarint(buf, this.pos, bytes);
      this.pos += utf8Write(buf, s, this.pos, bytes);
      return;
    }
    // Reserve the worst case (3 bytes per UTF-16 unit), write the text, then the length in front
    // of it, moving the text down when the length needs fewer bytes than reserved.
    const reserved = varintSize(len * 3);
    this.ensure(1 + reserved + len * 3);
    const buf = this.buf;
    const p = this.pos;
    buf[p] = TAG_TEXT;
    const start = p + 1 + reserved;
    // ASCII fast path, falling back to the native encoder at the first non-ASCII unit.
    let i = 0;
    if (len <= ASCII_LOOP) {
      for (; i < len; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        buf[start + i] = c;
      }
    }
    const written = i === len ? len : i + utf8Write(buf, i === 0 ? s : s.substring(i), start + i, len * 3);
    const actual = varintSize(written);
    if (actual !== reserved) buf.copyWithin(p + 1 + actual, start, start + written);
    writeVarint(buf, p + 1, written);
    this.pos = p + 1 + actual + written;
  }
}

/** Bytes a varint of n takes. */
function varintSize(n: number): number {
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

/**
 * Node's Buffer has native utf8Write/utf8Slice methods under the public write()/toString()
 * wrappers; calling them directly skips argument normalisation that costs more than the copy
 * for short strings. They are undocumented, so fall back to the public API when absent.
 */
interface FastBuffer extends Buffer {
  utf8Write?(s: string, offset: number, length: number): number;
  utf8Slice?(start: number, end: number): string;
}
const proto = Buffer.prototype as FastBuffer;
const nativeUtf8Write = typeof proto.utf8Write === 'function' ? proto.utf8Write : undefined;
const nativeUtf8Slice = typeof proto.utf8Slice === 'function' ? proto.utf8Slice : undefined;

function utf8Write(buf: Buffer, s: string, offset: number, length: number): number {
  return nativeUtf8Write !== undefined ? nativeUtf8Write.call(buf, s, offset, length) : buf.write(s, offset, length, 'utf8');
}

function utf8Slice(buf: Buffer, start: number, end: number): string {
  return nativeUtf8Slice !== undefined ? nativeUtf8Slice.call(buf, start, end) : buf.toString('utf8', start, end);
}

/** Writes a non-negative integer < 2^53 as a varint; returns the new position. */
function writeVarint(buf: Buffer, pos: number, n: number): number {
  while (n > 0x7fffffff) {
    buf[pos++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  while (n > 0x7f) {
    buf[pos++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  buf[pos++] = n;
  return pos;
}

function writeBigVarint(buf: Buffer, pos: number, n: bigint): number {
  while (n > 0x7fn) {
    buf[pos++] = Number(n & 0x7fn) | 0x80;
    n >>= 7n;
  }
  buf[pos++] = Number(n);
  return pos;
}

/** Thrown internally when a row runs past the end of the available bytes. */
const INCOMPLETE = -1;

export class RowDecoder {
  /** Unconsumed bytes of an incomplete row (own copy; grows as needed). */
  private pending: Buffer = Buffer.alloc(0);
  private pendingLen = 0;
  /** Output of the current parse; reused fields avoid closures in the hot loop. */
  private pos = 0;
  private end = 0;
  private src: Buffer = Buffer.alloc(0);
  /** Total bytes consumed into complete rows (for error messages). */
  private offset = 0;

  /** Feeds a slice of the stream; returns the rows completed by it (possibly none). */
  push(bytes: Uint8Array): unknown[][] {
    if (bytes.length === 0) return [];
    const input = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
    let src: Buffer;
    let len: number;
    if (this.pendingLen === 0) {
      src = input;
      len = input.length;
    } else {
      const need = this.pendingLen + input.length;
      if (need > this.pending.length) {
        const bigger = Buffer.allocUnsafe(Math.max(need, this.pending.length * 2));
        this.pending.copy(bigger, 0, 0, this.pendingLen);
        this.pending = bigger;
      }
      input.copy(this.pending, this.pendingLen);
      this.pendingLen = need;
      src = this.pending;
      len = need;
    }
    const rows: unknown[][] = [];
    this.src = src;
    this.end = len;
    let rowStart = 0;
    while (rowStart < len) {
      this.pos = rowStart;
      const row = this.readRow();
      if (row === undefined) break;
      rows.push(row);
      rowStart = this.pos;
    }
    this.offset += rowStart;
    const rest = len - rowStart;
    if (rest === 0) {
      this.pendingLen = 0;
    } else if (src === this.pending) {
      if (rowStart > 0) this.pending.copy(this.pending, 0, rowStart, len);
      this.pendingLen = rest;
    } else {
      if (this.pending.length < rest) this.pending = Buffer.allocUnsafe(Math.max(rest, 64 * 1024));
      src.copy(this.pending, 0, rowStart, len);
      this.pendingLen = rest;
    }
    this.src = EMPTY;
    return rows;
  }

  /** Declares the end of the stream: throws when it stops inside a row. */
  finish(): void {
    if (this.pendingLen > 0) {
      throw new CorruptionError(
        `${ROWS_V1} stream ends inside a row: ${this.pendingLen} trailing bytes after byte ${this.offset}`,
        { objects: [] },
      );
    }
  }

  private corrupt(what: string): never {
    throw new CorruptionError(`${ROWS_V1} stream is damaged near byte ${this.offset + this.pos}: ${what}`, {
      objects: [],
    });
  }

  /** Reads a varint < 2^53 (lengths, counts); INCOMPLETE when the bytes run out. */
  private readLength(): number {
    const src = this.src;
    const end = this.end;
    let p = this.pos;
    if (p >= end) return INCOMPLETE;
    let b = src[p++] as number;
    if (b < 0x80) {
      this.pos = p;
      return b;
    }
    let result = b & 0x7f;
    let mul = 128;
    for (let i = 1; ; i++) {
      if (p >= end) return INCOMPLETE;
      b = src[p++] as number;
      result += (b & 0x7f) * mul;
      if (b < 0x80) break;
      mul *= 128;
      if (i >= 7) this.corrupt('length varint too long');
    }
    if (result > Number.MAX_SAFE_INTEGER) this.corrupt('length out of range');
    this.pos = p;
    return result;
  }

  /** Reads one row, or undefined (position unspecified) when it is incomplete. */
  private readRow(): unknown[] | undefined {
    const count = this.readLength();
    if (count === INCOMPLETE) return undefined;
    // Every value takes at least one byte: a huge count in a short stream is damage, not a row
    // still arriving, unless the bytes simply have not arrived yet.
    if (count > 1 << 20) this.corrupt(`implausible value count ${count}`);
    const row = new Array<unknown>(count);
    const src = this.src;
    const end = this.end;
    for (let i = 0; i < count; i++) {
      if (this.pos >= end) return undefined;
      const tag = src[this.pos++] as number;
      switch (tag) {
        case TAG_NULL:
          row[i] = null;
          break;
        case TAG_INTEGER: {
          const v = this.readInteger();
          if (v === undefined) return undefined;
          row[i] = v;
          break;
        }
        case TAG_REAL:
          if (this.pos + 8 > end) return undefined;
          row[i] = src.readDoubleLE(this.pos);
          this.pos += 8;
          break;
        case TAG_TEXT: {
          const len = this.readLength();
          if (len === INCOMPLETE || this.pos + len > end) return undefined;
          const text = utf8Slice(src, this.pos, this.pos + len);
          // U+FFFD is what invalid bytes decode to: only then are the bytes checked, and kept as
          // they are when they are not UTF-8 (a real U+FFFD in valid text stays a string).
          row[i] = text.includes('\uFFFD') && !isUtf8(src.subarray(this.pos, this.pos + len)) ? new TextBytes(Buffer.from(src.subarray(this.pos, this.pos + len))) : text;
          this.pos += len;
          break;
        }
        case TAG_BLOB: {
          const len = this.readLength();
          if (len === INCOMPLETE || this.pos + len > end) return undefined;
          const b = Buffer.allocUnsafe(len);
          if (len <= 64) {
            for (let j = 0, p = this.pos; j < len; j++) b[j] = src[p + j] as number;
          } else {
            src.copy(b, 0, this.pos, this.pos + len);
          }
          row[i] = b;
          this.pos += len;
          break;
        }
        default:
          this.pos--;
          this.corrupt(`unknown value tag ${tag}`);
      }
    }
    return row;
  }

  private readInteger(): bigint | undefined {
    const src = this.src;
    const end = this.end;
    let p = this.pos;
    // Up to 4 bytes (28 bits) in int32 arithmetic.
    let z = 0;
    let shift = 0;
    let b = 0;
    do {
      if (p >= end) return undefined;
      b = src[p++] as number;
      z |= (b & 0x7f) << shift;
      shift += 7;
    } while (b >= 0x80 && shift < 28);
    if (b < 0x80) {
      this.pos = p;
      return toBigInt((z >>> 1) ^ -(z & 1));
    }
    // Up to 7 bytes (49 bits) in double arithmetic.
    let zn = z;
    let mul = 2 ** 28;
    do {
      if (p >= end) return undefined;
      b = src[p++] as number;
      zn += (b & 0x7f) * mul;
      mul *= 128;
      shift += 7;
    } while (b >= 0x80 && shift < 49);
    if (b < 0x80) {
      this.pos = p;
      return BigInt(zn % 2 === 0 ? zn / 2 : -(zn + 1) / 2);
    }
    // Up to 10 bytes (64 bits) with bigints.
    let zb = BigInt(zn);
    let bshift = 49n;
    do {
      if (p >= end) return undefined;
      b = src[p++] as number;
      zb |= BigInt(b & 0x7f) << bshift;
      bshift += 7n;
      if (bshift > 70n) {
        this.pos = p;
        this.corrupt('integer varint too long');
      }
    } while (b >= 0x80);
    if (zb >> 64n !== 0n) {
      this.pos = p;
      this.corrupt('integer out of 64-bit range');
    }
    this.pos = p;
    return (zb & 1n) === 0n ? zb >> 1n : -((zb + 1n) >> 1n);
  }
}

const EMPTY = Buffer.alloc(0);
