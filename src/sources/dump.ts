/**
 * What `cairn dump` asks of an engine: one collection's rows, decoded from its stored stream and
 * written out as CSV or SQL text. The engine-neutral parts live here (the formats' names, CSV
 * field quoting, a buffered text writer); each engine turns its own data format into rows and
 * spells its own SQL (src/sources/<engine>/dump.ts), behind EngineDriver.openDump.
 */

/** The output formats of `cairn dump`. */
export const DUMP_FORMATS = ['csv', 'sql'] as const;
export type DumpFormat = (typeof DUMP_FORMATS)[number];

/**
 * Turns a collection's data stream (the concatenation of its chunks, as a restore reads it) into
 * the dump's bytes: a header (CSV column names; SQL `BEGIN;`), one line or statement per row, a
 * trailer (SQL `COMMIT;`). Streams: holds one row and one output buffer at a time.
 */
export type CollectionDump = (data: AsyncIterable<Uint8Array>) => AsyncGenerator<Buffer>;

const QUOTE = 0x22;
const COMMA = 0x2c;
const CR = 0x0d;
const LF = 0x0a;

/** Handed out once this many bytes are buffered (fewer, larger writes). */
const FLUSH_AT = 64 * 1024;

/**
 * An append-only output buffer that hands out a Buffer once it holds FLUSH_AT bytes, so a
 * dump writes in large pieces and never holds more than one piece and one row.
 */
export class OutputBuffer {
  private parts: Buffer[] = [];
  private size = 0;

  /** Appends text (UTF-8) or bytes as they are. */
  add(piece: string | Uint8Array): void {
    const b = typeof piece === 'string' ? Buffer.from(piece, 'utf8') : Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.length);
    if (b.length === 0) return;
    this.parts.push(b);
    this.size += b.length;
  }

  /** The buffered bytes when there are at least FLUSH_AT of them (or any, with `all`), else undefined. */
  take(all = false): Buffer | undefined {
    if (this.size === 0 || (!all && this.size < FLUSH_AT)) return undefined;
    const out = this.parts.length === 1 ? (this.parts[0] as Buffer) : Buffer.concat(this.parts, this.size);
    this.parts = [];
    this.size = 0;
    return out;
  }
}

/**
 * One CSV field (RFC 4180), as PostgreSQL's `COPY … CSV` writes and reads it: `null` is an empty,
 * unquoted field; any value that is empty or holds a quote, a comma, CR or LF is double-quoted
 * with its quotes doubled, as is the value `\.` (alone on a line, COPY FROM STDIN would read it
 * as the end of the data). Bytes are written as they are (the caller chose their encoding).
 */
export function csvField(value: Uint8Array | string | null): Buffer {
  if (value === null) return EMPTY;
  const b = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.length);
  let quotes = 0;
  let special = b.length === 0 || (b.length === 2 && b[0] === 0x5c && b[1] === 0x2e);
  for (let i = 0; i < b.length; i++) {
    const c = b[i];
    if (c === QUOTE) quotes++;
    else if (c === COMMA || c === CR || c === LF) special = true;
  }
  if (!special && quotes === 0) return b;
  return quoteBytes(b, QUOTE, quotes);
}

/**
 * `bytes` between two `quote` bytes, each `quote` inside doubled (CSV's "…", SQL's '…').
 * `quotes`: how many `quote` bytes `bytes` holds, when the caller counted them already.
 */
export function quoteBytes(bytes: Uint8Array, quote: number, quotes = bytes.reduce((n, c) => (c === quote ? n + 1 : n), 0)): Buffer {
  const out = Buffer.allocUnsafe(bytes.length + quotes + 2);
  let p = 0;
  out[p++] = quote;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i] as number;
    out[p++] = c;
    if (c === quote) out[p++] = quote;
  }
  out[p] = quote;
  return out;
}

/** One CSV record: the fields joined by commas, ended by LF (PostgreSQL's COPY CSV reads CRLF too). */
export function csvRecord(fields: readonly (Uint8Array | string | null)[], out: OutputBuffer): void {
  for (let i = 0; i < fields.length; i++) {
    if (i > 0) out.add(COMMA_BYTE);
    out.add(csvField(fields[i] ?? null));
  }
  out.add(LF_BYTE);
}

/** Lowercase hex of bytes, e.g. for `\x…` (PostgreSQL bytea) or `X'…'` (SQLite blobs). */
export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('hex');
}

const EMPTY = Buffer.alloc(0);
const COMMA_BYTE = Buffer.from(',');
const LF_BYTE = Buffer.from('\n');
