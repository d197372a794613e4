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

/**
 * A value at least this long (bytes, or UTF-16 units for a string) is not copied into the
 * encoder's buffer: its bytes are handed out in pieces after its tag and length, so that a
 * 100 MiB value costs no second 100 MiB copy (and its chunks are cut from these pieces one at a
 * time instead of all at once).
 */
const LARGE_VALUE = 1024 * 1024;
/** Bytes (or UTF-16 units) of a large value per piece handed out. */
const LARGE_PIECE = 1024 * 1024;

/** A large value still being handed out: a byte view, or a string and how far it got. */
type LargeValue = { bytes: Uint8Array; at: number } | { text: string; at: number; left: number };

/**
 * Encodes rows into rows-v1 bytes, handed out in pieces of about `targetChunkSize` bytes.
 *
 * Use: `for (let b = enc.push(row); b !== undefined; b = enc.next()) …` for each row, then the
 * same loop from `flush()`. A piece stays valid after the next call (each is a fresh buffer or a
 * view of a large value the caller gave: do not modify a value after pushing it).
 * Errors: RangeError for an integer outside 64 bits, TypeError for a value of no SQLite class.
 */
export class RowEncoder {
  private buf: Buffer;
  private pos = 0;
  private readonly target: number;
  private readonly large: number;
  /** Pieces ready to hand out, in stream order, before what `buf` holds. */
  private readonly queue: (Buffer | LargeValue)[] = [];

  /**
   * @param targetChunkSize bytes per piece handed out (small rows are packed up to this size)
   * @param largeValue bytes (UTF-16 units for strings) from which a value is handed out as views
   *   or pieces of its own instead of being copied into the buffer
   */
  constructor(targetChunkSize = TARGET_CHUNK, largeValue = LARGE_VALUE) {
    this.target = targetChunkSize;
    this.large = Math.max(64, largeValue);
    this.buf = Buffer.allocUnsafe(targetChunkSize + 4096);
  }

  /** Bytes buffered and not yet handed out (not counting large values still queued). */
  get pending(): number {
    return this.pos;
  }

  /**
   * Appends one row; returns the first piece ready (about `targetChunkSize` bytes, or a piece of
   * a large value), or undefined. Call next() until it returns undefined before the next push.
   */
  push(values: unknown[]): Buffer | undefined {
    const n = values.length;
    this.ensure(10 + n * 11);
    this.pos = writeVarint(this.buf, this.pos, n);
    for (let i = 0; i < n; i++) this.writeValue(values[i]);
    if (this.pos >= this.target) this.queue.push(this.take());
    return this.queue.length > 0 ? this.next() : undefined;
  }

  /** The next piece ready after push() or flush() (undefined when there is none). */
  next(): Buffer | undefined {
    const head = this.queue[0];
    if (head === undefined) return undefined;
    if (Buffer.isBuffer(head)) {
      this.queue.shift();
      return head;
    }
    if ('bytes' in head) {
      const end = Math.min(head.bytes.length, head.at + LARGE_PIECE);
      const b = head.bytes;
      const piece = Buffer.from(b.buffer, b.byteOffset + head.at, end - head.at);
      head.at = end;
      if (end === b.length) this.queue.shift();
      return piece;
    }
    // A string: one piece of UTF-16 units, never cut between the halves of a surrogate pair
    // (each half alone would become U+FFFD), encoded on its own.
    const s = head.text;
    let end = Math.min(s.length, head.at + LARGE_PIECE);
    if (end < s.length) {
      const c = s.charCodeAt(end - 1);
      if (c >= 0xd800 && c <= 0xdbff) end--;
    }
    const piece = Buffer.from(s.substring(head.at, end), 'utf8');
    head.at = end;
    head.left -= piece.length;
    if (end === s.length) {
      this.queue.shift();
      // The length written before the text came from Buffer.byteLength: the pieces must add up.
      if (head.left !== 0) throw new Error(`Internal error: a long text encoded to ${head.left} bytes fewer than measured.`);
    }
    return piece;
  }

  /** Hands out whatever is buffered: the first piece, the rest through next() (undefined when nothing is). */
  flush(): Buffer | undefined {
    if (this.pos > 0) this.queue.push(this.take());
    return this.next();
  }

  private take(): Buffer {
    const out = this.buf.subarray(0, this.pos);
    this.buf = Buffer.allocUnsafe(Math.max(this.target + 4096, 64));
    this.pos = 0;
    return out;
  }

  /** Queues what is buffered, then the large value (whose tag and length were just written). */
  private queueLarge(v: LargeValue): void {
    this.queue.push(this.take(), v);
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
      if (len >= this.large) {
        this.ensure(11);
        this.buf[this.pos++] = v instanceof TextBytes ? TAG_TEXT : TAG_BLOB;
        this.pos = writeVarint(this.buf, this.pos, len);
        this.queueLarge({ bytes, at: 0 });
        return;
      }
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
    if (len >= this.large) {
      const bytes = Buffer.byteLength(s, 'utf8');
      this.ensure(11);
      this.buf[this.pos++] = TAG_TEXT;
      this.pos = writeVarint(this.buf, this.pos, bytes);
      this.queueLarge({ text: s, at: 0, left: bytes });
      return;
    }
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

/** A TEXT or BLOB value at least this long that is not complete yet is filled in place (RowDecoder). */
const DIRECT_FILL = 64 * 1024;

export interface RowDecoderOptions {
  /**
   * TEXT values of at least `largeValue` bytes come out as TextBytes even when they are valid
   * UTF-8, sparing a string of them and its conversion back to UTF-8 (for a caller that writes
   * the bytes as text anyway). Default false: text is a string unless its bytes are not UTF-8.
   */
  largeTextAsBytes?: boolean;
  /** Bytes from which a value counts as large (default 64 KiB). */
  largeValue?: number;
}

/**
 * Decodes a rows-v1 stream given in arbitrary slices. Memory: the bytes of the row in progress
 * up to its first incomplete value; a large value (≥ `largeValue` bytes) that spans slices is
 * copied once, into a buffer of its exact length, as its bytes arrive.
 * Errors: CorruptionError for bytes that are not rows-v1.
 */
export class RowDecoder {
  /**
   * Unconsumed bytes (own copy; grows as needed): from a row's start, or, while `cur` is set,
   * from the start of its value `cur.next`.
   */
  private pending: Buffer = Buffer.alloc(0);
  private pendingLen = 0;
  /** The row in progress: its values before `next` are decoded. */
  private cur: { row: unknown[]; next: number } | undefined;
  /** Value `cur.next`, a large TEXT or BLOB whose bytes are being copied into `buf`. */
  private big: { buf: Buffer; filled: number; tag: number } | undefined;
  /** Where an incomplete row's unconsumed bytes start (set by readRow when it returns undefined). */
  private resumeAt = 0;
  /** Output of the current parse; reused fields avoid closures in the hot loop. */
  private pos = 0;
  private end = 0;
  private src: Buffer = Buffer.alloc(0);
  /** Total bytes consumed (for error messages). */
  private offset = 0;
  private readonly textAsBytes: boolean;
  private readonly large: number;

  constructor(options: RowDecoderOptions = {}) {
    this.textAsBytes = options.largeTextAsBytes === true;
    this.large = Math.max(1, options.largeValue ?? DIRECT_FILL);
  }

  /** Feeds a slice of the stream; returns the rows completed by it (possibly none). */
  push(bytes: Uint8Array): unknown[][] {
    if (bytes.length === 0) return [];
    let input = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
    const rows: unknown[][] = [];
    const big = this.big;
    if (big !== undefined) {
      const n = Math.min(input.length, big.buf.length - big.filled);
      input.copy(big.buf, big.filled, 0, n);
      big.filled += n;
      this.offset += n;
      if (big.filled < big.buf.length) return rows;
      this.big = undefined;
      const cur = this.cur as { row: unknown[]; next: number };
      cur.row[cur.next++] = this.bytesValue(big.tag, big.buf);
      if (cur.next === cur.row.length) {
        rows.push(cur.row);
        this.cur = undefined;
      }
      input = input.subarray(n);
      if (input.length === 0) return rows;
    }
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
    this.src = src;
    this.end = len;
    let start = 0;
    while (start < len) {
      this.pos = start;
      const row = this.readRow();
      if (row === undefined) {
        start = this.resumeAt;
        break;
      }
      rows.push(row);
      start = this.pos;
    }
    this.offset += start;
    const rest = len - start;
    if (rest === 0) {
      this.pendingLen = 0;
    } else if (src === this.pending) {
      if (start > 0) this.pending.copy(this.pending, 0, start, len);
      this.pendingLen = rest;
    } else {
      if (this.pending.length < rest) this.pending = Buffer.allocUnsafe(Math.max(rest, 64 * 1024));
      src.copy(this.pending, 0, start, len);
      this.pendingLen = rest;
    }
    this.src = EMPTY;
    return rows;
  }

  /** Declares the end of the stream: throws when it stops inside a row. */
  finish(): void {
    if (this.pendingLen > 0 || this.cur !== undefined || this.big !== undefined) {
      const inside = this.big !== undefined ? this.big.buf.length - this.big.filled : 0;
      throw new CorruptionError(
        `${ROWS_V1} stream ends inside a row: ${inside > 0 ? `${inside} bytes of a value missing` : `${this.pendingLen} trailing bytes`} after byte ${this.offset}`,
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

  /** A complete TEXT or BLOB value from its own bytes (`bytes` is kept, not copied). */
  private bytesValue(tag: number, bytes: Buffer): unknown {
    if (tag === TAG_BLOB) return bytes;
    if (this.textAsBytes && bytes.length >= this.large) return new TextBytes(bytes);
    const text = utf8Slice(bytes, 0, bytes.length);
    return text.includes('\uFFFD') && !isUtf8(bytes) ? new TextBytes(bytes) : text;
  }

  /** The row in progress stops before value `i`, whose bytes start at `at`. */
  private incomplete(row: unknown[], i: number, at: number): undefined {
    this.cur = { row, next: i };
    this.resumeAt = at;
    return undefined;
  }

  /**
   * Reads one row (or the rest of `cur`), or undefined when it is incomplete: then `cur` and
   * `resumeAt` say where to go on, or `big` is set and every byte was consumed.
   */
  private readRow(): unknown[] | undefined {
    let row: unknown[];
    let i = 0;
    if (this.cur !== undefined) {
      row = this.cur.row;
      i = this.cur.next;
      this.cur = undefined;
    } else {
      const rowStart = this.pos;
      const count = this.readLength();
      if (count === INCOMPLETE) {
        this.resumeAt = rowStart;
        return undefined;
      }
      // Every value takes at least one byte: a huge count in a short stream is damage, not a row
      // still arriving, unless the bytes simply have not arrived yet.
      if (count > 1 << 20) this.corrupt(`implausible value count ${count}`);
      row = new Array<unknown>(count);
    }
    const count = row.length;
    const src = this.src;
    const end = this.end;
    for (; i < count; i++) {
      const at = this.pos;
      if (at >= end) return this.incomplete(row, i, at);
      const tag = src[this.pos++] as number;
      switch (tag) {
        case TAG_NULL:
          row[i] = null;
          break;
        case TAG_INTEGER: {
          const v = this.readInteger();
          if (v === undefined) return this.incomplete(row, i, at);
          row[i] = v;
          break;
        }
        case TAG_REAL:
          if (this.pos + 8 > end) return this.incomplete(row, i, at);
          row[i] = src.readDoubleLE(this.pos);
          this.pos += 8;
          break;
        case TAG_TEXT:
        case TAG_BLOB: {
          const len = this.readLength();
          if (len === INCOMPLETE) return this.incomplete(row, i, at);
          if (this.pos + len > end) {
            if (len < this.large) return this.incomplete(row, i, at);
            // A large value still arriving: copied into its own buffer as its bytes come, instead
            // of growing the pending bytes (and copying them again) until it is whole.
            const buf = Buffer.allocUnsafe(len);
            src.copy(buf, 0, this.pos, end);
            this.big = { buf, filled: end - this.pos, tag };
            this.cur = { row, next: i };
            this.resumeAt = end;
            return undefined;
          }
          if (tag === TAG_TEXT) {
            if (this.textAsBytes && len >= this.large) {
              row[i] = new TextBytes(Buffer.from(src.subarray(this.pos, this.pos + len)));
            } else {
              const text = utf8Slice(src, this.pos, this.pos + len);
              // U+FFFD is what invalid bytes decode to: only then are the bytes checked, and kept as
              // they are when they are not UTF-8 (a real U+FFFD in valid text stays a string).
              row[i] = text.includes('\uFFFD') && !isUtf8(src.subarray(this.pos, this.pos + len)) ? new TextBytes(Buffer.from(src.subarray(this.pos, this.pos + len))) : text;
            }
          } else {
            const b = Buffer.allocUnsafe(len);
            if (len <= 64) {
              for (let j = 0, p = this.pos; j < len; j++) b[j] = src[p + j] as number;
            } else {
              src.copy(b, 0, this.pos, this.pos + len);
            }
            row[i] = b;
          }
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
