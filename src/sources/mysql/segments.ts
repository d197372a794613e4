/**
 * Segments: a large table with a single-column integer primary key is read as several key ranges,
 * in parallel sessions of the same snapshot. InnoDB returns a table's rows in primary-key order,
 * so the ranges, in order, hold the same rows in the same order as one read of the whole table;
 * the restore loads them in parallel into one table and checks the row count over all of them.
 */
import { ident } from './connection.js';

/** Tables whose data (information_schema.TABLES.DATA_LENGTH) is at least this large are cut (64 MiB). */
export const SEGMENT_MIN_BYTES = 64 * 1024 * 1024;

/** The environment variable that lowers (or raises) SEGMENT_MIN_BYTES, e.g. for tests. */
export const SEGMENT_MIN_BYTES_ENV = 'CAIRN_MYSQL_SEGMENT_MIN_BYTES';

/** Integer column types a key range can cut. */
export const INTEGER_TYPES = new Set(['tinyint', 'smallint', 'mediumint', 'int', 'integer', 'bigint']);

/** The threshold in bytes: `explicit`, else the environment's CAIRN_MYSQL_SEGMENT_MIN_BYTES, else 64 MiB. */
export function segmentMinBytes(explicit?: number, env: NodeJS.ProcessEnv = process.env): number {
  if (explicit !== undefined && Number.isFinite(explicit) && explicit >= 0) return explicit;
  const fromEnv = Number(env[SEGMENT_MIN_BYTES_ENV]);
  return env[SEGMENT_MIN_BYTES_ENV] !== undefined && Number.isFinite(fromEnv) && fromEnv >= 0 ? fromEnv : SEGMENT_MIN_BYTES;
}

/**
 * The boundaries that cut the keys min..max (inclusive) into up to `count` ranges of about equal
 * width: `count - 1` increasing values at most (fewer when the range is narrow). [] when the
 * table is read whole.
 */
export function segmentBounds(min: bigint, max: bigint, count: number): bigint[] {
  const width = max - min + 1n;
  const n = BigInt(Math.max(1, Math.floor(count)));
  const parts = width < n ? width : n;
  if (parts < 2n) return [];
  const bounds: bigint[] = [];
  for (let k = 1n; k < parts; k++) {
    const b = min + (width * k) / parts;
    if (bounds.length === 0 || b > (bounds[bounds.length - 1] as bigint)) bounds.push(b);
  }
  return bounds;
}

/**
 * The WHERE clause of segment `i` of `bounds.length + 1`: the first and last are open-ended, so
 * rows inserted beyond MIN/MAX (none in the snapshot, but said for clarity) are never lost.
 */
export function segmentWhere(column: string, bounds: bigint[], i: number): string {
  const c = ident(column);
  const lo = i > 0 ? bounds[i - 1] : undefined;
  const hi = i < bounds.length ? bounds[i] : undefined;
  if (lo === undefined && hi === undefined) return '';
  if (lo === undefined) return ` WHERE ${c} < ${hi}`;
  if (hi === undefined) return ` WHERE ${c} >= ${lo}`;
  return ` WHERE ${c} >= ${lo} AND ${c} < ${hi}`;
}
