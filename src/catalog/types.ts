/**
 * Job records: what the job center persists so that jobs can be listed, watched and, after a
 * crash, reported as interrupted. Records hold locations (never credentials) and parameters.
 */

export type JobKind = 'backup' | 'restore' | 'copy' | 'verify' | 'prune';

/**
 * STARTED → TRANSFERRING → TRANSFERRED → FINALIZING → SUCCESS, or FAILED / CANCELED from any
 * state before FINALIZING (CANCELLING while a cancellation is under way). FINALIZING (a restore
 * switching in, a manifest being written) cannot be cancelled.
 */
export const JOB_STATES = ['STARTED', 'TRANSFERRING', 'TRANSFERRED', 'FINALIZING', 'CANCELLING', 'SUCCESS', 'FAILED', 'CANCELED'] as const;
export type JobState = (typeof JOB_STATES)[number];

export const TERMINAL_STATES: ReadonlySet<JobState> = new Set(['SUCCESS', 'FAILED', 'CANCELED']);

export interface JobProgress {
  bytes: number;
  /** Known for restores, copies and verifies; absent for backups (the size is found by reading). */
  bytesTotal?: number;
  rows: number;
  collectionsDone: number;
  collectionsTotal: number;
  /** Bytes per second over the job so far. */
  throughput: number;
  /** Seconds left, when bytesTotal is known and the job is moving. */
  etaSeconds?: number;
  collection?: string;
}

export interface JobError {
  /** A stable code (CairnError codes, or INTERRUPTED). */
  code: string;
  message: string;
}

export interface JobRecord {
  id: string;
  kind: JobKind;
  state: JobState;
  /** What "one active job per key" is about: a backup's source location. */
  key: string | null;
  /** The request, without secrets. */
  params: Record<string, unknown>;
  progress: JobProgress;
  /** The job's outcome (e.g. the backup manifest's id and totals) once it succeeded. */
  result: Record<string, unknown> | null;
  error: JobError | null;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
}

export interface JobFilter {
  kind?: JobKind;
  state?: JobState;
  key?: string;
  limit?: number;
}

/**
 * Where job records live: an embedded SQLite file by default, PostgreSQL for shared deployments.
 * `owner` names the server that runs a job, so that a server starting up fails only the jobs it
 * left running itself, not those of another replica sharing the catalog.
 */
export interface JobCatalog {
  insert(job: JobRecord, owner: string): Promise<void>;
  update(job: JobRecord): Promise<void>;
  get(id: string): Promise<JobRecord | undefined>;
  /** Newest first. */
  list(filter?: JobFilter): Promise<JobRecord[]>;
  /** Every job of `owner` not in a terminal state becomes FAILED with `error`; returns how many. */
  failUnfinished(owner: string, error: JobError, at: string): Promise<number>;
  close(): Promise<void>;
}
