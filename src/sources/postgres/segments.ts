/**
 * Segments: how a large table is cut into block ranges that parallel sessions read under the
 * same snapshot, each with its own `COPY (SELECT … WHERE ctid …) TO STDOUT` (TID range scans,
 * PostgreSQL 14+). The segments together hold the same rows in the same order as one COPY of
 * the table (physical order), so the restore loads them as that many COPYs into one table (see
 * load.ts) and checks the row count over all of them.
 */
import { quoteIdent } from './catalog.js';

/**
 * Tables of at least this many blocks (64 MiB) are read in block ranges, in parallel, under the
 * same snapshot (TID range scans, PostgreSQL 14+).
 */
export const SEGMENT_MIN_BLOCKS = 8192;
/** Smallest range (8 MiB; less when a smaller minimum is configured). */
const SEGMENT_FLOOR_BLOCKS = 1024;

/**
 * Block ranges for a table of `blocks` blocks read by `jobs` streams: between jobs+1 and 2×jobs
 * ranges of a power-of-two size, so that the boundaries stay where they were when the table
 * grows a little (appended rows only change the last range, and deduplicate as before). The
 * last range is open-ended: rows added to new blocks since the sizes were read are in it.
 * `blocks`: the table's size in 8 KiB blocks; `jobs`: the parallel streams of the backup;
 * `minBlocks`: smaller tables are not cut. Returns `[first block, end block (exclusive) or null
 * for open-ended]` pairs, or [] when the table is read by one COPY.
 */
export function segmentRanges(blocks: number, jobs: number, minBlocks = SEGMENT_MIN_BLOCKS): [number, number | null][] {
  if (jobs < 2 || blocks < minBlocks) return [];
  let size = Math.max(1, Math.min(SEGMENT_FLOOR_BLOCKS, Math.floor(minBlocks / 8)));
  while (size * 2 * jobs < blocks) size *= 2;
  const ranges: [number, number | null][] = [];
  for (let lo = 0; lo < blocks; lo += size) ranges.push([lo, lo + size < blocks ? lo + size : null]);
  return ranges.length > 1 ? ranges : [];
}

/**
 * The COPY statements that read table `schema.name` in the given block ranges (see
 * segmentRanges); `columnList`: the quoted, comma-separated columns to read ('' for none);
 * `quote`: how identifiers are written in the session (catalog.ts identQuoter).
 */
export function segmentCopySql(
  schema: string,
  name: string,
  columnList: string,
  ranges: [number, number | null][],
  quote: (name: string) => string = quoteIdent,
): string[] {
  // The same rows in the same order as COPY of the table (physical order), in pieces.
  // An empty select list is valid SQL and, unlike `*`, never reads generated columns.
  const select = `SELECT ${columnList} FROM ONLY ${quote(schema)}.${quote(name)}`;
  return ranges.map(([lo, hi]) => `COPY (${select} WHERE ctid >= '(${lo},0)'::tid${hi === null ? '' : ` AND ctid < '(${hi},0)'::tid`}) TO STDOUT`);
}
