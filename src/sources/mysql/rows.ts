/**
 * The fast row path of a backup: text-protocol row packets → mysql-tsv-v1 (format.ts), straight
 * from the bytes the driver received, without a Buffer or an object per value.
 *
 * A row of a text result set is a packet holding one length-encoded string per column (0xFB
 * alone for NULL; a length of 1, 3, 4 or 9 bytes, then the value's bytes). mysql-tsv-v1 is the
 * same values, escaped (`\` TAB LF CR NUL 0x1A), separated by TAB, NULL as `\N`, ending in LF:
 * so a row is encoded in one pass over its packet. The output is the same, byte for byte, as
 * format.ts's escapeInto applied to each value (the tests compare the two).
 *
 * Encoded bytes go into buffers of about `chunkBytes`; full ones wait in `ready` for the
 * consumer. A value larger than a buffer is escaped piece by piece into several buffers, so no
 * buffer is ever larger than `chunkBytes + SLACK`.
 */
import { SourceError } from '../../core/errors.js';

/** Escape table: 0 = the byte as it is, else the letter after the backslash (format.ts). */
const ESCAPE = new Uint8Array(256);
ESCAPE[0x5c] = 0x5c;
ESCAPE[0x09] = 0x74;
ESCAPE[0x0a] = 0x6e;
ESCAPE[0x0d] = 0x72;
ESCAPE[0x00] = 0x30;
ESCAPE[0x1a] = 0x5a;

/** Room kept past chunkBytes: a row's separators and NULLs are written without a bounds check per byte. */
const SLACK = 64;
/** A value that does not fit is split in pieces of at least this many bytes (fewer, larger copies). */
const MIN_PIECE = 4096;

/**
 * Escapes src[from, to) into out at pos; out must have room for 2 × (to - from) bytes. Returns
 * the new position. A loop over a typed-array table (about 3 ns a byte in V8, an order of
 * magnitude faster than a lookup in an object), four bytes at a time while none needs escaping.
 */
export function escapeRange(src: Uint8Array, from: number, to: number, out: Uint8Array, pos: number): number {
  const T = ESCAPE;
  let i = from;
  const end4 = to - 3;
  while (i < end4) {
    const c0 = src[i] as number;
    const c1 = src[i + 1] as number;
    const c2 = src[i + 2] as number;
    const c3 = src[i + 3] as number;
    if (((T[c0] as number) | (T[c1] as number) | (T[c2] as number) | (T[c3] as number)) === 0) {
      out[pos] = c0;
      out[pos + 1] = c1;
      out[pos + 2] = c2;
      out[pos + 3] = c3;
      pos += 4;
      i += 4;
      continue;
    }
    const e = T[c0] as number;
    if (e === 0) {
      out[pos++] = c0;
    } else {
      out[pos++] = 0x5c;
      out[pos++] = e;
    }
    i++;
  }
  for (; i < to; i++) {
    const c = src[i] as number;
    const e = T[c] as number;
    if (e === 0) {
      out[pos++] = c;
    } else {
      out[pos++] = 0x5c;
      out[pos++] = e;
    }
  }
  return pos;
}

/** Encodes text-protocol row packets as mysql-tsv-v1 lines (see the module comment). */
export class TsvRowEncoder {
  /** Full buffers, oldest first, waiting to be taken. */
  readonly ready: Buffer[] = [];
  /** Rows encoded so far. */
  rows = 0;
  private out: Buffer;
  private pos = 0;

  /**
   * `what` names the table in errors; `columns` is the number of values of each row (a packet
   * with another number is a protocol error); `chunkBytes` the size of the buffers handed out.
   */
  constructor(
    private readonly what: string,
    private readonly columns: number,
    private readonly chunkBytes: number,
  ) {
    this.out = Buffer.allocUnsafe(chunkBytes + SLACK);
  }

  /**
   * Encodes the row whose payload is buf[start, end) (after the 4-byte packet header). Throws
   * SourceError when the packet is not a row of `columns` values.
   */
  row(buf: Uint8Array, start: number, end: number): void {
    let p = start;
    const n = this.columns;
    for (let i = 0; i < n; i++) {
      // Separator, NULL and the final LF: at most 4 bytes, always within SLACK.
      if (this.pos + 4 > this.out.length) this.flush();
      const out = this.out;
      if (i > 0) out[this.pos++] = 0x09;
      if (p >= end) throw this.malformed(i);
      const b = buf[p++] as number;
      let len: number;
      if (b < 0xfb) {
        len = b;
      } else if (b === 0xfb) {
        out[this.pos++] = 0x5c;
        out[this.pos++] = 0x4e;
        continue;
      } else if (b === 0xfc) {
        len = (buf[p] as number) | ((buf[p + 1] as number) << 8);
        p += 2;
      } else if (b === 0xfd) {
        len = (buf[p] as number) | ((buf[p + 1] as number) << 8) | ((buf[p + 2] as number) << 16);
        p += 3;
      } else if (b === 0xfe) {
        const lo = ((buf[p] as number) | ((buf[p + 1] as number) << 8) | ((buf[p + 2] as number) << 16) | ((buf[p + 3] as number) << 24)) >>> 0;
        const hi = ((buf[p + 4] as number) | ((buf[p + 5] as number) << 8) | ((buf[p + 6] as number) << 16) | ((buf[p + 7] as number) << 24)) >>> 0;
        len = hi * 0x1_0000_0000 + lo;
        p += 8;
      } else {
        throw this.malformed(i);
      }
      const to = p + len;
      if (to > end) throw this.malformed(i);
      this.value(buf, p, to);
      p = to;
    }
    if (p !== end) throw this.malformed(n);
    if (this.pos + 1 > this.out.length) this.flush();
    this.out[this.pos++] = 0x0a;
    this.rows++;
    if (this.pos >= this.chunkBytes) this.flush();
  }

  /** Escapes one value, across buffers when it does not fit in the current one. */
  private value(buf: Uint8Array, from: number, to: number): void {
    while (from < to) {
      // Room for the worst case (every byte escaped). A large value fills the buffer in pieces
      // of half the space left, so mostly unescaped bytes still fill it nearly to the end.
      let room = (this.out.length - this.pos) >> 1;
      if (room < to - from && room < MIN_PIECE) {
        this.flush();
        room = (this.out.length - this.pos) >> 1;
      }
      const stop = Math.min(to, from + room);
      this.pos = escapeRange(buf, from, stop, this.out, this.pos);
      from = stop;
    }
  }

  /** Moves the current buffer (if it holds anything) to `ready` and starts a new one. */
  flush(): void {
    if (this.pos === 0) return;
    this.ready.push(this.out.subarray(0, this.pos));
    this.out = Buffer.allocUnsafe(this.chunkBytes + SLACK);
    this.pos = 0;
  }

  private malformed(column: number): SourceError {
    return new SourceError(
      `Reading MySQL table ${this.what}: the server sent a row the driver cannot read (column ${column + 1} of ${this.columns}); retry the backup, and report it if it happens again.`,
    );
  }
}
