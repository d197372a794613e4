import { ConflictError, NotFoundError } from '../core/errors.js';
import { type RunStatus, type ScheduleRun, type ScheduleSpec, type ScheduleState, type ScheduleStore } from '../jobs/ports.js';
import { newScheduleId } from '../jobs/schedule-spec.js';
import { catalogDb, constraintViolated, ownerGone, type CatalogDb, type CatalogTarget } from './sql.js';

// The schedule records and the ScheduleStore interface belong to the jobs layer (its Scheduler
// runs them); this file implements the store. Re-exported for the catalog's users.
export { RUN_STATUSES } from '../jobs/ports.js';
export { newScheduleId };
export type { RetentionRules, RunStatus, ScheduleRun, ScheduleSpec, ScheduleState, ScheduleStore } from '../jobs/ports.js';

/** A run's owner is no live replica (sql.ts). */
const GONE = ownerGone('schedule_runs');

/**
 * Schedules and the record of every due time: (schedule, due time) is a primary key, so a due
 * time fires at most once, even when a server restarts in the middle of it.
 */
export class SqliteScheduleStore implements ScheduleStore {
  private readonly db: CatalogDb;
  private readonly owner: string;

  /**
   * `owner` (a shared catalog): this server's id, recorded with the runs it queues (they wait in
   * its memory), so that endQueued ends its own and those of servers that are gone, never those
   * another live replica waits on.
   */
  constructor(target: CatalogTarget, options: { owner?: string } = {}) {
    this.owner = options.owner ?? '';
    this.db = catalogDb(target);
    // SQLite only: the shared PostgreSQL catalog's tables are pg-migrations.ts's.
    if (this.db.dialect === 'sqlite') {
      this.db.exec(`
        CREATE TABLE IF NOT EXISTS schedules (name TEXT PRIMARY KEY, spec TEXT NOT NULL, enabled INTEGER NOT NULL, last_due TEXT, id TEXT);
        CREATE TABLE IF NOT EXISTS schedule_runs (
          schedule TEXT NOT NULL, due_at TEXT NOT NULL, status TEXT NOT NULL, job_id TEXT, at TEXT NOT NULL, reason TEXT,
          PRIMARY KEY (schedule, due_at));`);
      this.migrate();
    }
  }

  /**
   * Catalogs from before schedule ids and run reasons: adds the columns and gives every schedule
   * an id. In one immediate transaction, so a server and a CLI opening the catalog at once do not
   * both migrate. Backups made before carry no id: retention matches those by name and source.
   */
  private migrate(): void {
    this.db
      .transaction(() => {
        const columns = (table: string): string[] => (this.db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).map((c) => c.name);
        if (!columns('schedules').includes('id')) this.db.exec('ALTER TABLE schedules ADD COLUMN id TEXT');
        if (!columns('schedule_runs').includes('reason')) this.db.exec('ALTER TABLE schedule_runs ADD COLUMN reason TEXT');
        const setId = this.db.prepare('UPDATE schedules SET id = ? WHERE name = ?');
        for (const { name } of this.db.prepare('SELECT name FROM schedules WHERE id IS NULL').all() as { name: string }[]) setId.run(newScheduleId(), name);
        this.db.exec('CREATE UNIQUE INDEX IF NOT EXISTS schedules_id ON schedules (id)');
      })
      .immediate();
  }

  /** Adds a schedule; it gets a new id when `spec.id` is empty. */
  add(spec: ScheduleSpec): void {
    const id = spec.id || newScheduleId();
    spec.id = id;
    try {
      this.db.prepare('INSERT INTO schedules (name, spec, enabled, last_due, id) VALUES (?, ?, ?, NULL, ?)').run(spec.name, JSON.stringify(spec), spec.enabled ? 1 : 0, id);
    } catch (err) {
      const code = constraintViolated(err);
      if (code === 'primary') throw new ConflictError(`A schedule named "${spec.name}" exists already; remove it first or choose another name.`);
      if (code === 'unique') throw new ConflictError(`A schedule with id "${id}" exists already; schedule ids are generated, leave it out.`);
      throw err;
    }
  }

  get(name: string): ScheduleState {
    const row = this.db.prepare('SELECT spec, enabled, last_due, id FROM schedules WHERE name = ?').get(name) as { spec: string; enabled: number; last_due: string | null; id: string } | undefined;
    if (!row) throw new NotFoundError(`No schedule named "${name}"; list them with: cairn schedule list`);
    return { ...(JSON.parse(row.spec) as ScheduleSpec), id: row.id, enabled: row.enabled === 1, lastDue: row.last_due };
  }

  list(): ScheduleState[] {
    return (this.db.prepare('SELECT name FROM schedules ORDER BY name').all() as { name: string }[]).map((r) => this.get(r.name));
  }

  /**
   * Changes a schedule: `change` gets its current state and answers the new spec and, when due
   * times are to count from a new time (its cron or time zone changed), `dueFrom` (ISO; an
   * earlier lastDue moves up to it). The read, `change` and the write are one BEGIN IMMEDIATE
   * transaction, so two edits at once — from this process or another one sharing the catalog
   * file — each apply their changes onto the other's result instead of one writing back a stale
   * copy over the other. `change` must be synchronous and quick (it holds the write lock): do
   * access checks and anything async before, and only the merge onto `current` in it; what it
   * throws rolls the transaction back and is rethrown. The id, name and enabled state stay.
   * The scheduler reads the store at each tick, so a running server uses the new spec at its next one.
   * @returns the schedule as stored after the change.
   * @throws NotFoundError for an unknown schedule; whatever `change` throws.
   */
  update(name: string, change: (current: ScheduleState) => { spec: ScheduleSpec; dueFrom?: string }): ScheduleState {
    return this.db
      .transaction(() => {
        const current = this.get(name);
        const { spec, dueFrom } = change(current);
        const { lastDue: _lastDue, ...stored } = { ...spec, id: current.id, name, enabled: current.enabled } as ScheduleState;
        this.db.prepare('UPDATE schedules SET spec = ? WHERE name = ?').run(JSON.stringify(stored), name);
        if (dueFrom !== undefined) this.setLastDue(name, dueFrom);
        return this.get(name);
      })
      .immediate();
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
  recordRun(name: string, dueAt: string, status: RunStatus, at: string, jobId: string | null = null, reason: string | null = null): boolean {
    if (this.db.dialect === 'postgres') {
      // Shared: the insert that a replica wins is the claim of the due time; the owner is recorded
      // so that a claim whose server died before starting its job can be taken over.
      return this.db.prepare('INSERT INTO schedule_runs (schedule, due_at, status, job_id, at, reason, owner) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING').run(name, dueAt, status, jobId, at, reason, this.owner).changes > 0;
    }
    return this.db.prepare('INSERT OR IGNORE INTO schedule_runs (schedule, due_at, status, job_id, at, reason) VALUES (?, ?, ?, ?, ?, ?)').run(name, dueAt, status, jobId, at, reason).changes > 0;
  }

  setRunJob(name: string, dueAt: string, jobId: string): void {
    this.db.prepare('UPDATE schedule_runs SET job_id = ? WHERE schedule = ? AND due_at = ?').run(jobId, name, dueAt);
  }

  setRunStatus(name: string, dueAt: string, status: RunStatus, reason: string | null = null): void {
    if (this.db.dialect === 'postgres') {
      this.db.prepare('UPDATE schedule_runs SET status = ?, reason = ?, owner = ? WHERE schedule = ? AND due_at = ?').run(status, reason, this.owner, name, dueAt);
    } else this.db.prepare('UPDATE schedule_runs SET status = ?, reason = ? WHERE schedule = ? AND due_at = ?').run(status, reason, name, dueAt);
  }

  endQueued(reason: string, own = true): number {
    if (this.db.dialect === 'sqlite') return own ? this.db.prepare("UPDATE schedule_runs SET status = 'failed', reason = ? WHERE status = 'queued'").run(reason).changes : 0;
    // Shared: this server's own (at its start-up) and those of servers whose lease has run out.
    return this.db
      .prepare(`UPDATE schedule_runs SET status = 'failed', reason = ? WHERE status = 'queued' AND (${own ? 'owner = ? OR ' : 'owner <> ? AND '}${GONE})`)
      .run(reason, this.owner).changes;
  }

  /**
   * Shared catalog only (SQLite: none): takes over the due times since `since` (ISO) whose run a
   * replica that is gone had claimed but cannot finish — its job was failed as interrupted (its
   * lease ran out), or it died before starting one. Each is handed to exactly one caller (a
   * conditional update: the row's lock makes a second replica see it taken), recorded started
   * again under this server with `reason`; the caller runs them.
   */
  takeOverOrphaned(since: string, at: string, reason: string): { schedule: string; dueAt: string }[] {
    if (this.db.dialect === 'sqlite') return [];
    const rows = this.db
      .prepare(
        // The reason keeps the interrupted job's id (the run's job_id moves to the new one).
        `UPDATE schedule_runs SET owner = ?, job_id = NULL, status = 'started', at = ?, reason = ? || coalesce(' (its job ' || job_id || ' was interrupted)', '')
         WHERE status = 'started' AND due_at >= ? AND owner <> ? AND (
           (job_id IS NOT NULL AND EXISTS (SELECT 1 FROM cairn_jobs j WHERE j.id = schedule_runs.job_id AND j.state = 'FAILED' AND j.record->'error'->>'code' = 'INTERRUPTED'))
           OR (job_id IS NULL AND ${GONE}))
         RETURNING schedule, due_at`,
      )
      .all(this.owner, at, reason, since, this.owner) as { schedule: string; due_at: string }[];
    return rows.map((r) => ({ schedule: r.schedule, dueAt: r.due_at }));
  }

  /** Newest first. */
  runs(name: string, limit = 100): ScheduleRun[] {
    return (this.db.prepare('SELECT schedule, due_at, status, job_id, at, reason FROM schedule_runs WHERE schedule = ? ORDER BY due_at DESC LIMIT ?').all(name, limit) as {
      schedule: string;
      due_at: string;
      status: RunStatus;
      job_id: string | null;
      at: string;
      reason: string | null;
    }[]).map((r) => ({ schedule: r.schedule, dueAt: r.due_at, status: r.status, jobId: r.job_id, at: r.at, reason: r.reason }));
  }

  close(): void {
    this.db.close();
  }
}
