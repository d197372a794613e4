import type BetterSqlite3 from 'better-sqlite3';
import { openCatalogDatabase } from './database.js';
import { TERMINAL_STATES, type JobCatalog, type JobError, type JobFilter, type JobRecord } from '../jobs/ports.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  state TEXT NOT NULL,
  key TEXT,
  owner TEXT NOT NULL DEFAULT '',
  created_at TEXT NOT NULL,
  record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at);
CREATE INDEX IF NOT EXISTS jobs_key_state ON jobs (key, state);
`;

/**
 * The job catalog in an embedded SQLite file (WAL, so readers never wait for the writer). A
 * record is stored whole as JSON, with the columns filters need beside it.
 */
export class SqliteJobCatalog implements JobCatalog {
  private readonly db: BetterSqlite3.Database;

  constructor(file: string) {
    this.db = openCatalogDatabase(file);
    this.db.exec(SCHEMA);
  }

  async insert(job: JobRecord, owner: string): Promise<void> {
    this.db
      .prepare('INSERT INTO jobs (id, kind, state, key, owner, created_at, record) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(job.id, job.kind, job.state, job.key, owner, job.createdAt, JSON.stringify(job));
  }

  async update(job: JobRecord): Promise<void> {
    this.updateNow(job);
  }

  private updateNow(job: JobRecord): void {
    this.db.prepare('UPDATE jobs SET state = ?, record = ? WHERE id = ?').run(job.state, JSON.stringify(job), job.id);
  }

  async get(id: string): Promise<JobRecord | undefined> {
    const row = this.db.prepare('SELECT record FROM jobs WHERE id = ?').get(id) as { record: string } | undefined;
    return row ? (JSON.parse(row.record) as JobRecord) : undefined;
  }

  async list(filter: JobFilter = {}): Promise<JobRecord[]> {
    const { where, args } = whereOf(filter);
    const sql = `SELECT record FROM jobs ${where} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?`;
    args.push(Math.max(1, Math.min(filter.limit ?? 1000, 10_000)), Math.max(0, filter.offset ?? 0));
    return (this.db.prepare(sql).all(...args) as { record: string }[]).map((r) => JSON.parse(r.record) as JobRecord);
  }

  async count(filter: JobFilter = {}): Promise<number> {
    const { where, args } = whereOf(filter);
    return (this.db.prepare(`SELECT count(*) AS n FROM jobs ${where}`).get(...args) as { n: number }).n;
  }

  async failUnfinished(owner: string, error: JobError, at: string): Promise<number> {
    const terminal = [...TERMINAL_STATES];
    const rows = this.db
      .prepare(`SELECT record FROM jobs WHERE owner = ? AND state NOT IN (${terminal.map(() => '?').join(', ')})`)
      .all(owner, ...terminal) as { record: string }[];
    const fail = this.db.transaction((jobs: JobRecord[]) => {
      for (const job of jobs) this.updateNow({ ...job, state: 'FAILED', error, updatedAt: at, finishedAt: at });
    });
    fail(rows.map((r) => JSON.parse(r.record) as JobRecord));
    return rows.length;
  }

  async close(): Promise<void> {
    this.db.close();
  }
}

/** The WHERE clause of a filter's kind, state and key, and its arguments. */
function whereOf(filter: JobFilter): { where: string; args: unknown[] } {
  const where: string[] = [];
  const args: unknown[] = [];
  for (const [column, value] of [['kind', filter.kind], ['state', filter.state], ['key', filter.key]] as const) {
    if (value === undefined) continue;
    where.push(`${column} = ?`);
    args.push(value);
  }
  return { where: where.length ? `WHERE ${where.join(' AND ')}` : '', args };
}
