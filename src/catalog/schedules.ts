import type BetterSqlite3 from 'better-sqlite3';
import { ConflictError, NotFoundError } from '../core/errors.js';
import { openCatalogDatabase } from './database.js';

/** A schedule's retention as written: counts, and `keepWithin` as a duration ("3d"). */
export interface RetentionRules {
  keepLast?: number;
  keepWithin?: string;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
}

/** What `cairn schedule add` records. Durations are kept as written ("3d"). */
export interface ScheduleSpec {
  name: string;
  /** Database URL or a registered source name. */
  source: string;
  repository: string;
  /** Five-field cron expression or @hourly / @daily / @weekly … */
  cron: string;
  /** IANA time zone the cron expression and calendar retention buckets are read in. */
  timezone: string;
  include?: string[];
  exclude?: string[];
  /** Backup id pattern: {source}, {schedule}, {yyyy} {MM} {dd} {HH} {mm} {ss} (UTC). */
  pattern: string;
  retention: RetentionRules;
  /** Expiry of each backup it makes, e.g. "7d". */
  expires?: string;
  enabled: boolean;
  createdAt: string;
}

export type RunStatus = 'started' | 'skipped-running' | 'skipped-missed';

export interface ScheduleRun {
  schedule: string;
  dueAt: string;
  status: RunStatus;
  jobId: string | null;
  at: string;
}

export interface ScheduleState extends ScheduleSpec {
  /** The latest due time handled (run or skipped). */
  lastDue: string | null;
}

/**
 * Schedules and the record of every due time: (schedule, due time) is a primary key, so a due
 * time fires at most once, even when a server restarts in the middle of it.
 */
export class SqliteScheduleStore {
  private readonly db: BetterSqlite3.Database;

  constructor(file: string) {
    this.db = openCatalogDatabase(file);
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS schedules (name TEXT PRIMARY KEY, spec TEXT NOT NULL, enabled INTEGER NOT NULL, last_due TEXT);
      CREATE TABLE IF NOT EXISTS schedule_runs (
        schedule TEXT NOT NULL, due_at TEXT NOT NULL, status TEXT NOT NULL, job_id TEXT, at TEXT NOT NULL,
        PRIMARY KEY (schedule, due_at));`);
  }

  add(spec: ScheduleSpec): void {
    try {
      this.db.prepare('INSERT INTO schedules (name, spec, enabled, last_due) VALUES (?, ?, ?, NULL)').run(spec.name, JSON.stringify(spec), spec.enabled ? 1 : 0);
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw new ConflictError(`A schedule named "${spec.name}" exists already; remove it first or choose another name.`);
      throw err;
    }
  }

  get(name: string): ScheduleState {
    const row = this.db.prepare('SELECT spec, enabled, last_due FROM schedules WHERE name = ?').get(name) as { spec: string; enabled: number; last_due: string | null } | undefined;
    if (!row) throw new NotFoundError(`No schedule named "${name}"; list them with: cairn schedule list`);
    return { ...(JSON.parse(row.spec) as ScheduleSpec), enabled: row.enabled === 1, lastDue: row.last_due };
  }

  list(): ScheduleState[] {
    return (this.db.prepare('SELECT name FROM schedules ORDER BY name').all() as { name: string }[]).map((r) => this.get(r.name));
  }

  setEnabled(name: string, enabled: boolean): void {
    this.get(name);
    this.db.prepare('UPDATE schedules SET enabled = ? WHERE name = ?').run(enabled ? 1 : 0, name);
  }

  remove(name: string): void {
    this.get(name);
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM schedules WHERE name = ?').run(name);
      this.db.prepare('DELETE FROM schedule_runs WHERE schedule = ?').run(name);
    })();
  }

  setLastDue(name: string, dueAt: string): void {
    this.db.prepare('UPDATE schedules SET last_due = ? WHERE name = ? AND (last_due IS NULL OR last_due < ?)').run(dueAt, name, dueAt);
  }

  /** Records a due time; false when it was recorded before (it has fired or been skipped already). */
  recordRun(name: string, dueAt: string, status: RunStatus, at: string, jobId: string | null = null): boolean {
    return this.db.prepare('INSERT OR IGNORE INTO schedule_runs (schedule, due_at, status, job_id, at) VALUES (?, ?, ?, ?, ?)').run(name, dueAt, status, jobId, at).changes > 0;
  }

  setRunJob(name: string, dueAt: string, jobId: string): void {
    this.db.prepare('UPDATE schedule_runs SET job_id = ? WHERE schedule = ? AND due_at = ?').run(jobId, name, dueAt);
  }

  setRunStatus(name: string, dueAt: string, status: RunStatus): void {
    this.db.prepare('UPDATE schedule_runs SET status = ? WHERE schedule = ? AND due_at = ?').run(status, name, dueAt);
  }

  /** Newest first. */
  runs(name: string, limit = 100): ScheduleRun[] {
    return (this.db.prepare('SELECT schedule, due_at, status, job_id, at FROM schedule_runs WHERE schedule = ? ORDER BY due_at DESC LIMIT ?').all(name, limit) as {
      schedule: string;
      due_at: string;
      status: RunStatus;
      job_id: string | null;
      at: string;
    }[]).map((r) => ({ schedule: r.schedule, dueAt: r.due_at, status: r.status, jobId: r.job_id, at: r.at }));
  }

  close(): void {
    this.db.close();
  }
}
