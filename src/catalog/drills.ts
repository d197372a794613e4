import { ConflictError, NotFoundError, UsageError } from '../core/errors.js';
import type { DrillRun, DrillSpec, DrillState, DrillStore } from '../jobs/drill.js';
import { catalogDb, constraintViolated, type CatalogDb, type CatalogTarget } from './sql.js';
import { REGISTERED_NAME } from './registry.js';
import { forgetAlertOutcome } from './alerts.js';

export type { DrillRun, DrillSpec, DrillState } from '../jobs/drill.js';

interface DrillRow {
  name: string;
  source: string;
  repository: string;
  target_location: string;
  cron: string | null;
  timezone: string;
  checks: string;
  enabled: number;
  created_at: string;
  last_due: string | null;
}

interface RunRow {
  id: number;
  drill: string;
  job_id: string | null;
  trigger: string;
  started_at: string;
  finished_at: string;
  state: string;
  backup_id: string | null;
  recovery_seconds: number | null;
  rows_compared: number;
  tables: string;
  checks: string;
  error: string | null;
}

/**
 * Restore drills and the record of their runs, in the catalog of a data folder. A drill's
 * target URL (which may carry a password) stays in the catalog file (mode 0600) and is handed
 * only to the code that connects (`targetUrl`); listings show its location.
 */
export class SqliteDrillStore implements DrillStore {
  private readonly db: CatalogDb;

  constructor(target: CatalogTarget) {
    this.db = catalogDb(target);
    // SQLite only: the shared PostgreSQL catalog's tables are pg-migrations.ts's.
    if (this.db.dialect === 'sqlite') {
      this.db.exec(`
        CREATE TABLE IF NOT EXISTS drills (
          name TEXT PRIMARY KEY, source TEXT NOT NULL, repository TEXT NOT NULL, target_url TEXT NOT NULL, target_location TEXT NOT NULL,
          cron TEXT, timezone TEXT NOT NULL, checks TEXT NOT NULL, enabled INTEGER NOT NULL, created_at TEXT NOT NULL, last_due TEXT);
        CREATE TABLE IF NOT EXISTS drill_runs (
          id INTEGER PRIMARY KEY AUTOINCREMENT, drill TEXT NOT NULL, job_id TEXT, trigger TEXT NOT NULL, started_at TEXT NOT NULL,
          finished_at TEXT NOT NULL, state TEXT NOT NULL, backup_id TEXT, recovery_seconds REAL, rows_compared INTEGER NOT NULL,
          tables TEXT NOT NULL, checks TEXT NOT NULL, error TEXT);
        CREATE INDEX IF NOT EXISTS drill_runs_drill ON drill_runs (drill, id);
        CREATE TABLE IF NOT EXISTS drill_scratch (drill TEXT PRIMARY KEY, location TEXT NOT NULL, since TEXT NOT NULL);`);
    }
  }

  /**
   * Adds a drill. `targetUrl` is kept as given (secrets included); `spec.target` is its location.
   * @throws UsageError for an invalid name; ConflictError when the name is taken.
   */
  add(spec: DrillSpec, targetUrl: string): DrillState {
    if (!REGISTERED_NAME.test(spec.name)) throw new UsageError(`Invalid drill name "${spec.name}": use lowercase letters, digits, - and _ (up to 63), starting with a letter or digit.`);
    try {
      this.db
        .prepare('INSERT INTO drills (name, source, repository, target_url, target_location, cron, timezone, checks, enabled, created_at, last_due) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)')
        .run(spec.name, spec.source, spec.repository, this.db.seal(targetUrl, `drills.target_url:${spec.name}`), spec.target, spec.cron, spec.timezone, JSON.stringify(spec.checks), spec.enabled ? 1 : 0, spec.createdAt);
    } catch (err) {
      if (constraintViolated(err) === 'primary') throw new ConflictError(`A drill named "${spec.name}" exists already; remove it first (cairn drill remove ${spec.name}) or choose another name.`);
      throw err;
    }
    return this.get(spec.name);
  }

  get(name: string): DrillState {
    const row = this.db.prepare('SELECT * FROM drills WHERE name = ?').get(name) as DrillRow | undefined;
    if (!row) throw new NotFoundError(`No drill named "${name}"; list them with: cairn drill list`);
    return {
      name: row.name,
      source: row.source,
      repository: row.repository,
      target: row.target_location,
      cron: row.cron,
      timezone: row.timezone,
      checks: JSON.parse(row.checks) as string[],
      enabled: row.enabled === 1,
      createdAt: row.created_at,
      lastDue: row.last_due,
    };
  }

  /** Throws ConflictError when a drill has the name (checked before anything else of a new drill). */
  refuseTaken(name: string): void {
    if (this.db.prepare('SELECT 1 FROM drills WHERE name = ?').get(name) !== undefined) {
      throw new ConflictError(`A drill named "${name}" exists already; remove it first (cairn drill remove ${name}) or choose another name.`);
    }
  }

  /** The URL to connect to the drill's scratch target (secrets included): never for answers. */
  targetUrl(name: string): string {
    const row = this.db.prepare('SELECT target_url FROM drills WHERE name = ?').get(name) as { target_url: string } | undefined;
    if (!row) throw new NotFoundError(`No drill named "${name}"; list them with: cairn drill list`);
    return this.db.unseal(row.target_url, `drills.target_url:${name}`);
  }

  list(): DrillState[] {
    return (this.db.prepare('SELECT name FROM drills ORDER BY name').all() as { name: string }[]).map((r) => this.get(r.name));
  }

  setEnabled(name: string, enabled: boolean): void {
    this.get(name);
    this.db.prepare('UPDATE drills SET enabled = ? WHERE name = ?').run(enabled ? 1 : 0, name);
  }

  setLastDue(name: string, dueAt: string): boolean {
    return this.db.prepare('UPDATE drills SET last_due = ? WHERE name = ? AND (last_due IS NULL OR last_due < ?)').run(dueAt, name, dueAt).changes === 1;
  }

  /** Removes a drill and the record of its runs. @throws NotFoundError for an unknown drill. */
  remove(name: string): void {
    this.get(name);
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM drills WHERE name = ?').run(name);
      this.db.prepare('DELETE FROM drill_runs WHERE drill = ?').run(name);
      // A copy an interrupted run left stays where it is: no later drill may take it for its own.
      this.db.prepare('DELETE FROM drill_scratch WHERE drill = ?').run(name);
      // Its last outcome too: a drill added again under this name has no failures to recover from.
      forgetAlertOutcome(this.db, `drill:${name}`);
    })();
  }

  scratchPending(name: string): string | null {
    const row = this.db.prepare('SELECT location FROM drill_scratch WHERE drill = ?').get(name) as { location: string } | undefined;
    return row?.location ?? null;
  }

  setScratchPending(name: string, location: string | null): void {
    if (location === null) this.db.prepare('DELETE FROM drill_scratch WHERE drill = ?').run(name);
    else this.db.prepare('INSERT INTO drill_scratch (drill, location, since) VALUES (?, ?, ?) ON CONFLICT (drill) DO UPDATE SET location = excluded.location, since = excluded.since').run(name, location, new Date().toISOString());
  }

  recordRun(run: Omit<DrillRun, 'id'>): DrillRun {
    const info = this.db
      .prepare(
        'INSERT INTO drill_runs (drill, job_id, trigger, started_at, finished_at, state, backup_id, recovery_seconds, rows_compared, tables, checks, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id',
      )
      .get(run.drill, run.jobId, run.trigger, run.startedAt, run.finishedAt, run.state, run.backupId, run.recoverySeconds, run.rowsCompared, JSON.stringify(run.tables), JSON.stringify(run.checks), run.error ? JSON.stringify(run.error) : null);
    return { ...run, id: Number((info as { id: number }).id) };
  }

  /** A drill's runs, newest first (at most `limit`). */
  runs(name: string, limit = 20): DrillRun[] {
    return (this.db.prepare('SELECT * FROM drill_runs WHERE drill = ? ORDER BY id DESC LIMIT ?').all(name, limit) as RunRow[]).map((r) => ({
      id: r.id,
      drill: r.drill,
      jobId: r.job_id,
      trigger: r.trigger === 'schedule' ? 'schedule' : 'manual',
      startedAt: r.started_at,
      finishedAt: r.finished_at,
      state: r.state as DrillRun['state'],
      backupId: r.backup_id,
      recoverySeconds: r.recovery_seconds,
      rowsCompared: r.rows_compared,
      tables: JSON.parse(r.tables) as DrillRun['tables'],
      checks: JSON.parse(r.checks) as DrillRun['checks'],
      error: r.error ? (JSON.parse(r.error) as DrillRun['error']) : null,
    }));
  }

  close(): void {
    this.db.close();
  }
}
