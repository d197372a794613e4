/**
 * Which progress counters mean something for each job kind (the server's job records carry the
 * same fields for every kind, zero where a kind counts nothing: a copy has no rows), and how a
 * canceled job's error reads (its state already says CANCELED: not "CANCELED, CANCELLED").
 */
import type { JobKind } from '../../src/jobs/ports.js';

export interface JobCounters {
  /** progress.bytes (and the speed from it). */
  bytes: boolean;
  /** progress.rows. */
  rows: boolean;
  /** What collectionsDone / collectionsTotal count for this kind, null when nothing. */
  items: string | null;
}

/** As the server reports them (src/server/routes/operations.ts, exports.ts, backups.ts). */
export const JOB_COUNTERS: Record<JobKind, JobCounters> = {
  backup: { bytes: true, rows: true, items: 'Collections' },
  restore: { bytes: true, rows: true, items: 'Collections' },
  copy: { bytes: true, rows: false, items: 'Packs' },
  export: { bytes: true, rows: false, items: 'Packs' },
  sync: { bytes: true, rows: false, items: 'Backups' },
  import: { bytes: true, rows: false, items: 'Backups' },
  verify: { bytes: false, rows: false, items: 'Backups' },
  prune: { bytes: false, rows: false, items: null },
  repair: { bytes: false, rows: false, items: null },
  // A drill is a restore into a scratch database (then counts and checks).
  drill: { bytes: true, rows: true, items: 'Collections' },
};

/** A kind this console does not know yet: every counter, as before. */
export function countersOf(kind: string): JobCounters {
  return Object.hasOwn(JOB_COUNTERS, kind) ? JOB_COUNTERS[kind as JobKind] : { bytes: true, rows: true, items: 'Collections' };
}

/**
 * The code to show beside a job's error message: none for a canceled job whose code only repeats
 * its state (CANCELLED, the error code's spelling, beside the state CANCELED).
 */
export function errorCodeShown(job: { state: string; error?: { code: string } | null }): string | undefined {
  if (!job.error) return undefined;
  return job.state === 'CANCELED' && job.error.code === 'CANCELLED' ? undefined : job.error.code;
}
