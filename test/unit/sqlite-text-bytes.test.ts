/** rows-v1 TEXT carries any bytes: valid UTF-8 decodes to a string, anything else to TextBytes. */
import { describe, expect, it } from 'vitest';
import { RowDecoder, RowEncoder, TextBytes } from '../../src/sources/row-codec.js';

function roundTrip(row: unknown[]): unknown[] {
  const enc = new RowEncoder(64);
  const parts: Buffer[] = [];
  const c = enc.push(row);
  if (c) parts.push(c);
  const last = enc.flush();
  if (last) parts.push(last);
  const dec = new RowDecoder();
  const rows = parts.flatMap((p) => dec.push(p));
  dec.finish();
  expect(rows).toHaveLength(1);
  return rows[0] as unknown[];
}

describe('TEXT bytes in rows-v1', () => {
  it('keeps invalid UTF-8 as bytes, valid bytes (a real U+FFFD, NUL) as strings, and blobs as blobs', () => {
    const [a, b, c, d, e] = roundTrip([
      new TextBytes(Buffer.from('61ff62', 'hex')),
      new TextBytes(Buffer.from('a\uFFFDb\u0000c', 'utf8')),
      Buffer.from('61ff62', 'hex'),
      'plain',
      new TextBytes(Buffer.from('eda080', 'hex')), // a UTF-8-encoded surrogate: not UTF-8
    ]);
    expect(a).toBeInstanceOf(TextBytes);
    expect(Buffer.from((a as TextBytes).bytes).toString('hex')).toBe('61ff62');
    expect(b).toBe('a\uFFFDb\u0000c');
    expect(Buffer.isBuffer(c) && c.toString('hex')).toBe('61ff62');
    expect(d).toBe('plain');
    expect(Buffer.from((e as TextBytes).bytes).toString('hex')).toBe('eda080');
  });

  it('encodes a TextBytes holding valid UTF-8 exactly as the string', () => {
    const enc = (v: unknown): string => {
      const e = new RowEncoder();
      e.push([v]);
      return (e.flush() as Buffer).toString('hex');
    };
    expect(enc(new TextBytes(Buffer.from('héllo', 'utf8')))).toBe(enc('héllo'));
  });
});
