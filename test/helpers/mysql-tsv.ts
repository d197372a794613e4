/**
 * The reference mysql-tsv-v1 encoding of rows: format.ts's escapeInto per value, TAB between
 * values, LF after each row (what the MySQL source wrote before rows.ts's packet encoder). The
 * unit test of rows.ts and the read-path test against the server compare with it.
 */
import { escapeInto, NULL_FIELD } from '../../src/sources/mysql/format.js';

export function referenceTsv(rows: (Buffer | null)[][]): Buffer {
  const parts: Buffer[] = [];
  for (const row of rows) {
    const out = Buffer.alloc(row.reduce((n, v) => n + 3 + (v === null ? 2 : 2 * v.length), 1));
    let pos = 0;
    row.forEach((v, i) => {
      if (i > 0) out[pos++] = 0x09;
      pos = v === null ? pos + NULL_FIELD.copy(out, pos) : escapeInto(v, out, pos);
    });
    out[pos++] = 0x0a;
    parts.push(out.subarray(0, pos));
  }
  return Buffer.concat(parts);
}
