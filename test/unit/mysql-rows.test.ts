/**
 * The backup's fast row path (src/sources/mysql/rows.ts): text-protocol row packets encoded
 * straight into mysql-tsv-v1 must give exactly the bytes of format.ts's escapeInto applied to
 * each value, for every byte value, every length encoding (1, 3, 4 and 9 bytes), NULLs, empty
 * values and values larger than the output buffers; a packet that is not a row of the expected
 * columns is refused.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SourceError } from '../../src/core/errors.js';
import { escapeInto, parseLine } from '../../src/sources/mysql/format.js';
import { referenceTsv } from '../helpers/mysql-tsv.js';
import { escapeRange, TsvRowEncoder } from '../../src/sources/mysql/rows.js';

/** A text-protocol row payload: one length-encoded string per value, 0xFB for NULL. */
function packet(values: (Buffer | null)[], wide = false): Buffer {
  const parts: Buffer[] = [];
  for (const v of values) {
    if (v === null) {
      parts.push(Buffer.from([0xfb]));
      continue;
    }
    const n = v.length;
    let head: Buffer;
    if (wide) {
      head = Buffer.alloc(9);
      head[0] = 0xfe;
      head.writeUInt32LE(n, 1);
    } else if (n < 0xfb) {
      head = Buffer.from([n]);
    } else if (n < 0x10000) {
      head = Buffer.from([0xfc, n & 0xff, n >> 8]);
    } else if (n < 0x1000000) {
      head = Buffer.from([0xfd, n & 0xff, (n >> 8) & 0xff, n >> 16]);
    } else {
      head = Buffer.alloc(9);
      head[0] = 0xfe;
      head.writeUInt32LE(n, 1);
    }
    parts.push(head, v);
  }
  return Buffer.concat(parts);
}

/** The reference encoding: escapeInto per value (what the source wrote before rows.ts). */
const reference = referenceTsv;

/** Encodes `rows` (each packet placed inside a larger buffer, as the driver hands them). */
function encode(rows: (Buffer | null)[][], chunkBytes: number, wide = false): { bytes: Buffer; buffers: Buffer[]; rows: number } {
  const columns = rows[0]?.length ?? 0;
  const enc = new TsvRowEncoder('t', columns, chunkBytes);
  const buffers: Buffer[] = [];
  for (const row of rows) {
    const p = packet(row, wide);
    const framed = Buffer.concat([Buffer.from('HEAD'), p, Buffer.from('TAIL')]);
    enc.row(framed, 4, 4 + p.length);
    buffers.push(...enc.ready.splice(0));
  }
  enc.flush();
  buffers.push(...enc.ready.splice(0));
  return { bytes: Buffer.concat(buffers), buffers, rows: enc.rows };
}

const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

describe('MySQL row packets → mysql-tsv-v1', () => {
  it('escapes every byte value as escapeInto does', () => {
    const out = Buffer.alloc(1024);
    const ref = Buffer.alloc(1024);
    const n = escapeRange(allBytes, 0, 256, out, 0);
    expect(out.subarray(0, n)).toEqual(ref.subarray(0, escapeInto(allBytes, ref, 0)));
    expect(parseLine(out.subarray(0, n))).toEqual([allBytes]);
  });

  it('gives the bytes of escapeInto for NULLs, empty values, every length encoding and random bytes', () => {
    const rows: (Buffer | null)[][] = [
      [Buffer.from('1'), null, Buffer.alloc(0), allBytes],
      [null, null, null, null],
      [Buffer.from('a\tb\nc\rd\\e\0f\x1ag'), Buffer.alloc(250, 0x41), Buffer.alloc(251, 0x5c), Buffer.alloc(0x10000, 0x0a)],
      [randomBytes(70_000), randomBytes(3), Buffer.from('ünïcødé ✓ 𝄞'), null],
    ];
    for (let i = 0; i < 200; i++) rows.push([randomBytes(i), i % 7 === 0 ? null : randomBytes(i * 13), Buffer.from(String(i)), randomBytes(1)]);
    const want = reference(rows);
    for (const chunkBytes of [64, 1000, 4096, 256 * 1024]) {
      const got = encode(rows, chunkBytes);
      expect(got.rows).toBe(rows.length);
      expect(got.bytes.equals(want)).toBe(true);
      // No buffer grows past its size (plus the room kept for separators).
      for (const b of got.buffers) expect(b.length).toBeLessThanOrEqual(chunkBytes + 64);
    }
    // The 9-byte length (values of 16 MiB and more) is read too.
    expect(encode(rows.slice(0, 3), 4096, true).bytes.equals(reference(rows.slice(0, 3)))).toBe(true);
  });

  it('splits a value larger than the buffers into full buffers, escaped exactly', () => {
    const big = Buffer.concat([Buffer.alloc(300_000, 0x61), randomBytes(300_000), Buffer.alloc(200_000, 0x5c)]);
    const rows = [[Buffer.from('7'), big]];
    const got = encode(rows, 64 * 1024);
    expect(got.bytes.equals(reference(rows))).toBe(true);
    expect(got.buffers.length).toBeGreaterThan(10);
    // Pieces fill their buffers: no more buffers than twice the minimum.
    expect(got.buffers.length).toBeLessThanOrEqual(Math.ceil((2 * got.bytes.length) / (64 * 1024)));
  });

  it('refuses a packet that is not a row of the expected columns', () => {
    const enc = new TsvRowEncoder('t', 2, 1024);
    const one = packet([Buffer.from('x')]);
    expect(() => enc.row(one, 0, one.length)).toThrow(SourceError);
    const three = packet([Buffer.from('x'), Buffer.from('y'), Buffer.from('z')]);
    expect(() => enc.row(three, 0, three.length)).toThrow(/column 3 of 2/);
    const cut = packet([Buffer.from('x'), Buffer.alloc(300, 0x41)]);
    expect(() => enc.row(cut, 0, cut.length - 1)).toThrow(/column 2 of 2/);
    const bad = Buffer.from([0x01, 0x41, 0xff]);
    expect(() => enc.row(bad, 0, bad.length)).toThrow(SourceError);
  });
});
