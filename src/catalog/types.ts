/**
 * Job records: what the job center persists so that jobs can be listed, watched and, after a
 * crash, reported as interrupted. The jobs layer owns these types and the JobCatalog interface
 * (src/jobs/ports.ts); the catalog implements it. Re-exported here for the catalog's users.
 */
export { JOB_STATES, TERMINAL_STATES } from '../jobs/ports.js';
export type { JobCatalog, JobError, JobFilter, JobKind, JobProgress, JobRecord, JobState } from '../jobs/ports.js';
