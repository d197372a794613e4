/**
 * The few POSIX tar (ustar) pieces a `.cairn` archive needs: 512-byte member headers (regular
 * files only), their checksum, and the padding rules. Written by hand rather than with a tar
 * package because the reader must refuse far more than a general tar reader accepts (links,
 * devices, pax extensions, GNU long names, base-256 sizes) and must never allocate what a header
 * claims before it has checked it against the file.
 *
 * Header layout (offsets in bytes): name 0..100, mode 100..108, uid 108..116, gid 116..124,
 * size 124..136 (octal), mtime 136..148 (octal), chksum 148..156, typeflag 156, linkname
 * 157..257, magic 257..263 "ustar\0", version 263..265 "00", uname 265..297, gname 297..329,
 * devmajor 329..337, devminor 337..345, prefix 345..500, padding 500..512.
 */

export const BLOCK = 512;
/** Tar writers pad the whole stream to a multiple of this (20 blocks), as GNU and BSD tar do. */
export const RECORD = 20 * BLOCK;
/** The largest member a reader accepts (design: 1 GiB; packs are at most 1 GiB by config). */
export const MAX_MEMBER_BYTES = 1024 * 1024 * 1024;

/** Bytes of padding after `size` bytes of member data, up to the next block. */
export function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/** Splits a name into ustar's prefix (<= 155 bytes) and name (<= 100 bytes) at a "/"; undefined when it cannot. */
function splitName(name: string): { prefix: string; name: string } | undefined {
  if (Buffer.byteLength(name) <= 100) return { prefix: '', name };
  for (let i = name.lastIndexOf('/'); i > 0; i = name.lastIndexOf('/', i - 1)) {
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(rest) <= 100 && rest !== '') return { prefix, name: rest };
  }
  return undefined;
}

function writeOctal(header: Buffer, value: number, offset: number, width: number): void {
  // width - 1 digits and a NUL, zero-padded: what POSIX tar writes.
  header.write(value.toString(8).padStart(width - 1, '0') + '\0', offset, width, 'ascii');
}

/** The header checksum: the sum of all 512 bytes with the checksum field read as 8 spaces. */
export function headerChecksum(header: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (header[i] as number);
  return sum;
}

/**
 * One ustar header for a regular file `name` of `size` bytes modified at `mtime`.
 * @throws Error for a name ustar cannot hold (cairn's names are all far shorter) or a size above 8 GiB.
 */
export function encodeHeader(name: string, size: number, mtime: Date): Buffer {
  const split = splitName(name);
  if (!split) throw new Error(`Tar member name too long for ustar: ${name.slice(0, 80)}…`);
  if (!Number.isSafeInteger(size) || size < 0 || size >= 8 ** 11) throw new Error(`Tar member ${name} size ${size} out of range.`);
  const h = Buffer.alloc(BLOCK);
  h.write(split.name, 0, 100, 'utf8');
  writeOctal(h, 0o644, 100, 8);
  writeOctal(h, 0, 108, 8);
  writeOctal(h, 0, 116, 8);
  writeOctal(h, size, 124, 12);
  writeOctal(h, Math.max(0, Math.floor(mtime.getTime() / 1000)), 136, 12);
  h.write('0', 156, 1, 'ascii');
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  h.write('cairn', 265, 32, 'ascii');
  h.write('cairn', 297, 32, 'ascii');
  h.write(split.prefix, 345, 155, 'utf8');
  // 6 octal digits, NUL, space: the customary spelling of the checksum field.
  h.write(headerChecksum(h).toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return h;
}

/** A parsed member header. */
export interface TarHeader {
  name: string;
  size: number;
  mtime: Date;
  /** The typeflag character ('0' regular file; '\0' is read as '0'). */
  type: string;
}

/** Why a header was refused, for the reader to turn into a CorruptionError naming the offset. */
export class TarHeaderError extends Error {}

/** A NUL-terminated (or full-width) field as text. */
function field(h: Buffer, offset: number, width: number, encoding: BufferEncoding = 'utf8'): string {
  const end = h.indexOf(0, offset);
  return h.toString(encoding, offset, end === -1 || end > offset + width ? offset + width : end);
}

/** An octal numeric field; base-256 (GNU's binary form, high bit set) and anything not octal are refused. */
function octal(h: Buffer, offset: number, width: number, what: string): number {
  if (((h[offset] as number) & 0x80) !== 0) throw new TarHeaderError(`its ${what} is in binary (base-256) form, which no cairn archive uses`);
  const text = field(h, offset, width, 'ascii').trim();
  if (!/^[0-7]{1,12}$/.test(text)) throw new TarHeaderError(`its ${what} field is not an octal number`);
  return parseInt(text, 8);
}

/** Whether a block is all zeros (the tar end marker). */
export function isZeroBlock(block: Uint8Array): boolean {
  for (const b of block) if (b !== 0) return false;
  return true;
}

/**
 * Parses one 512-byte header, checking its checksum and magic.
 * @throws TarHeaderError saying what is wrong.
 */
export function parseHeader(h: Buffer): TarHeader {
  if (h.length !== BLOCK) throw new TarHeaderError('it is cut short');
  const stored = octal(h, 148, 8, 'checksum');
  if (stored !== headerChecksum(h)) throw new TarHeaderError('its checksum does not match its content (a damaged header)');
  if (h.toString('ascii', 257, 262) !== 'ustar') throw new TarHeaderError('it is not a ustar header');
  const rawType = String.fromCharCode(h[156] as number);
  const type = rawType === '\0' ? '0' : rawType;
  const name = field(h, 0, 100);
  const prefix = field(h, 345, 155);
  return { name: prefix ? `${prefix}/${name}` : name, size: octal(h, 124, 12, 'size'), mtime: new Date(octal(h, 136, 12, 'mtime') * 1000), type };
}
