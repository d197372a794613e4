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
  /** Logical bytes expected in all, when known (restores know it; backups do not). */
  bytesTotal?: number;
}

export type ProgressListener = (progress: Progress) => void;
