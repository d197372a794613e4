/** Progress of a backup or restore, reported as it goes (CLI progress bar, API job records). */
export interface Progress {
  phase: 'starting' | 'transferring' | 'finalizing' | 'done';
  /** Collection being processed, if any. */
  collection?: string;
  collectionsDone: number;
  collectionsTotal: number;
  rows: number;
  /** Logical (uncompressed) bytes processed. */
  bytes: number;
  /**
   * Logical bytes expected in all, when known: exact for restores and copies; for backups an
   * estimate (`estimated`), raised to `bytes` when the data is larger: the logical bytes read so
   * far scaled to the estimated rows once 1 % of them is read, before that (or without a row
   * estimate: SQLite, never-analyzed PostgreSQL tables) the source's stored size.
   */
  bytesTotal?: number;
  /** Rows expected in all (backups: the source catalog's estimate, e.g. PostgreSQL's reltuples). */
  rowsTotal?: number;
  /**
   * Share done, 0–100: never above 100 and never lower than in an earlier report of the same
   * operation (an estimate that proves low holds the share below 100 until the end).
   */
  percent?: number;
  /** bytesTotal, rowsTotal and percent are estimates (say "about"). */
  estimated?: boolean;
}

export type ProgressListener = (progress: Progress) => void;

/** What a backup expects to read, from the source's catalog (any part may be unknown). */
export interface ProgressEstimate {
  /**
   * Bytes of the selected data as the source stores it (PostgreSQL pg_table_size: heap pages with
   * tuple headers, free space and dead rows, TOAST compressed; SQLite: the file's used pages).
   * Not the logical bytes a backup counts: see EstimatedShare for how the total shown is made.
   */
  bytes?: number;
  /** Rows of the selected data (PostgreSQL reltuples); undefined unless every data collection has one. */
  rows?: number;
}

/**
 * Turns a backup's counts into a share done against an estimate that may be wrong: rows against
 * the estimated rows when known (closer to what is read than on-disk sizes), else bytes against
 * the estimated bytes, else collections done. The share stays at most 99 until the backup is
 * done, never goes back, and the totals shown are raised to what was read when it is more.
 * bytesTotal is projected in logical bytes once rows move (see `fields`).
 */
export class EstimatedShare {
  private last = 0;

  constructor(private readonly estimate: ProgressEstimate) {}

  /** The estimate fields of a Progress for these counts (`done`: the backup finished). */
  fields(p: Pick<Progress, 'rows' | 'bytes' | 'collectionsDone' | 'collectionsTotal'>, done = false): Pick<Progress, 'bytesTotal' | 'rowsTotal' | 'percent' | 'estimated'> {
    const { rows } = this.estimate;
    let raw: number;
    if (rows !== undefined && rows > 0) raw = p.rows / rows;
    else if (this.estimate.bytes !== undefined && this.estimate.bytes > 0) raw = p.bytes / this.estimate.bytes;
    else raw = p.collectionsTotal > 0 ? p.collectionsDone / p.collectionsTotal : 0;
    const share = done ? 100 : Math.min(99, Math.floor(raw * 1000) / 10);
    this.last = Math.max(this.last, Number.isFinite(share) ? share : 0);
    // The catalog's bytes are what the source stores (PostgreSQL: pages with tuple headers, free
    // space, dead rows and TOAST as compressed), not the logical bytes `bytes` counts, and
    // differ from them by a factor of about 0.5–2. Once 1 % of the estimated rows is read, the
    // total shown is the bytes read so far scaled to all rows: the same measure as `bytes`.
    const projected = rows !== undefined && rows > 0 && p.rows >= rows / 100 ? Math.round((p.bytes * rows) / p.rows) : this.estimate.bytes;
    return {
      ...(projected !== undefined ? { bytesTotal: done ? p.bytes : Math.max(projected, p.bytes) } : {}),
      ...(rows !== undefined ? { rowsTotal: done ? p.rows : Math.max(rows, p.rows) } : {}),
      percent: this.last,
      estimated: !done,
    };
  }
}

/** How fast an operation goes and when it should end, from its counts and the time since it started. */
export interface ProgressRates {
  /** Logical bytes per second over the whole operation so far. */
  throughput: number;
  /** Rows per second over the whole operation so far. */
  rowsPerSecond: number;
  /**
   * Seconds left: with a share (`percent`, backups: estimated) elapsed × left / done once at least
   * 1 % is done (earlier the figure swings wildly); else bytes left at the rate so far; undefined
   * when neither is known or nothing has moved yet.
   */
  etaSeconds?: number;
}

/**
 * Throughput and time left of a progress report. `elapsedSeconds`: time since the operation
 * started (a floor of 1 ms keeps the rates finite). Pure: the CLI's progress line and the job
 * records of the server both use it, so they agree.
 */
export function progressRates(p: Pick<Progress, 'bytes' | 'rows' | 'bytesTotal' | 'percent'>, elapsedSeconds: number): ProgressRates {
  const elapsed = Math.max(0.001, elapsedSeconds);
  const throughput = p.bytes / elapsed;
  const rowsPerSecond = p.rows / elapsed;
  const eta =
    p.percent !== undefined ? (p.percent >= 1 ? (elapsed * (100 - Math.min(100, p.percent))) / p.percent : undefined)
    : p.bytesTotal !== undefined && throughput > 0 ? (p.bytesTotal - p.bytes) / throughput
    : undefined;
  return { throughput, rowsPerSecond, ...(eta !== undefined && Number.isFinite(eta) ? { etaSeconds: Math.max(0, eta) } : {}) };
}
