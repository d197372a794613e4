import pg from 'pg';
import { clientConfig, parsePostgresUrl, pgError, pgLocation, type PgConnectionSettings } from '../sources/postgres/connection.js';
import { migrate } from './pg-migrations.js';
import {
  TERMINAL_STATES,
  type CancelRequest,
  type HeartbeatResult,
  type JobCatalog,
  type JobCoordination,
  type JobError,
  type JobFilter,
  type JobRecord,
  type ServerInfo,
  type ServerRecord,
} from '../jobs/ports.js';
import { JobConflictError } from '../jobs/job-center.js';

/** The unique partial index of migration 2: one active job per key, across replicas. */
const ACTIVE_KEY_INDEX = 'cairn_jobs_active_key';
/** NOTIFY channel of cancellation requests; the payload is the job id. */
const CANCEL_CHANNEL = 'cairn_job_cancel';
const TERMINAL = [...TERMINAL_STATES];
/** An ISO time (as JobRecord keeps them) of a timestamptz, in SQL. */
const iso = (expr: string): string => `to_char(${expr} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;



/**
 * Job records in a PostgreSQL database, for deployments where several servers share one catalog
 * (`cairn server --catalog postgres://…`). Same records as the SQLite catalog; each server
 * fails only its own unfinished jobs at start-up (by `owner`).
 */
export class PostgresJobCatalog implements JobCatalog, JobCoordination {
  private constructor(
    private readonly pool: pg.Pool,
    private readonly settings: PgConnectionSettings,
    private readonly owner: string,
  ) {}

  /** Connects and brings the catalog's schema up to date (migrations); errors name the server, never the password. */
  static async open(url: string, owner = ''): Promise<PostgresJobCatalog> {
    const settings = parsePostgresUrl(url);
    const pool = new pg.Pool({ ...clientConfig(settings), ...appName(settings, owner), max: 4 });
    pool.on('error', () => undefined); // an idle client's error: the next query reports it
    const catalog = new PostgresJobCatalog(pool, settings, owner);
    try {
      // The whole shared schema (every store's tables), versioned: see pg-migrations.ts.
      const client = await pool.connect();
      try {
        await migrate(client, owner);
      } finally {
        client.release();
      }
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw pgError(err, settings);
    }
    return catalog;
  }

  /** Leases, reaping and cancellation across the replicas sharing this catalog. */
  get coordination(): JobCoordination {
    return this;
  }

  get location(): string {
    return pgLocation(this.settings);
  }

  private async query<R extends pg.QueryResultRow>(sql: string, values: unknown[]): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(sql, values);
    } catch (err) {
      throw pgError(err, this.settings);
    }
  }

  async insert(job: JobRecord, owner: string, leaseMs?: number): Promise<void> {
    // A running job of the key may end between the refused insert and the look-up: try again then.
    for (let attempt = 0; ; attempt++) {
      try {
        await this.pool.query(
          `INSERT INTO cairn_jobs (id, kind, state, key, owner, created_at, record, lease_until)
           VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $8::bigint IS NULL THEN NULL ELSE now() + $8::bigint * interval '1 millisecond' END)`,
          [job.id, job.kind, job.state, job.key, owner, job.createdAt, JSON.stringify(job), leaseMs ?? null],
        );
        return;
      } catch (err) {
        if (!isActiveKeyViolation(err) || job.key === null) throw pgError(err, this.settings);
        const { rows } = await this.query<{ record: JobRecord }>(
          'SELECT record FROM cairn_jobs WHERE key = $1 AND NOT (state = ANY($2::text[])) LIMIT 1',
          [job.key, TERMINAL],
        );
        if (rows[0]) throw new JobConflictError(rows[0].record);
        if (attempt >= 2) throw pgError(err, this.settings);
      }
    }
  }

  /** Never rewrites a row that has ended: a job another replica failed (its lease expired) stays failed. */
  async update(job: JobRecord): Promise<void> {
    await this.query('UPDATE cairn_jobs SET state = $1, record = $2 WHERE id = $3 AND NOT (state = ANY($4::text[]))', [
      job.state,
      JSON.stringify(job),
      job.id,
      TERMINAL,
    ]);
  }

  async get(id: string): Promise<JobRecord | undefined> {
    const { rows } = await this.query<{ record: JobRecord }>('SELECT record FROM cairn_jobs WHERE id = $1', [id]);
    return rows[0]?.record;
  }

  async list(filter: JobFilter = {}): Promise<JobRecord[]> {
    const { where, values } = whereOf(filter);
    values.push(Math.max(1, Math.min(filter.limit ?? 1000, 10_000)), Math.max(0, filter.offset ?? 0));
    const { rows } = await this.query<{ record: JobRecord }>(
      `SELECT record FROM cairn_jobs ${where} ORDER BY created_at DESC, id DESC LIMIT $${values.length - 1} OFFSET $${values.length}`,
      values,
    );
    return rows.map((r) => r.record);
  }

  async count(filter: JobFilter = {}): Promise<number> {
    const { where, values } = whereOf(filter);
    const { rows } = await this.query<{ n: string }>(`SELECT count(*) AS n FROM cairn_jobs ${where}`, values);
    return Number(rows[0]?.n ?? 0);
  }

  async failUnfinished(owner: string, error: JobError, at: string): Promise<number> {
    const patch = { state: 'FAILED', error, updatedAt: at, finishedAt: at };
    const { rowCount } = await this.query(
      `UPDATE cairn_jobs SET state = 'FAILED', record = record || $1::jsonb WHERE owner = $2 AND NOT (state = ANY($3::text[]))`,
      [JSON.stringify(patch), owner, [...TERMINAL_STATES]],
    );
    return rowCount ?? 0;
  }

  async heartbeat(server: ServerInfo, activeIds: readonly string[], leaseMs: number): Promise<HeartbeatResult> {
    const lease = Math.max(1, Math.round(leaseMs));
    await this.query(
      `INSERT INTO cairn_servers (id, host, version, url, pid, started_at, heartbeat_at, lease_until, stopped_at)
       VALUES ($1, $2, $3, $4, $5, now(), now(), now() + $6::bigint * interval '1 millisecond', NULL)
       ON CONFLICT (id) DO UPDATE SET host = EXCLUDED.host, version = EXCLUDED.version, url = EXCLUDED.url,
         -- a new process under the same id (a restart) starts again; the same one keeps its start
         started_at = CASE WHEN cairn_servers.pid = EXCLUDED.pid AND cairn_servers.stopped_at IS NULL THEN cairn_servers.started_at ELSE now() END,
         pid = EXCLUDED.pid, heartbeat_at = now(), lease_until = EXCLUDED.lease_until, stopped_at = NULL`,
      [server.id, server.host, server.version, server.url, server.pid, lease],
    );
    if (activeIds.length === 0) return { renewed: [], lost: [], cancelRequested: [] };
    const { rows } = await this.query<{ id: string; cancel_requested: boolean }>(
      `UPDATE cairn_jobs SET lease_until = now() + $1::bigint * interval '1 millisecond'
       WHERE owner = $2 AND id = ANY($3::text[]) AND NOT (state = ANY($4::text[]))
       RETURNING id, cancel_requested`,
      [lease, server.id, [...activeIds], TERMINAL],
    );
    const renewed = new Set(rows.map((r) => r.id));
    return {
      renewed: [...renewed],
      lost: activeIds.filter((id) => !renewed.has(id)),
      cancelRequested: rows.filter((r) => r.cancel_requested).map((r) => r.id),
    };
  }

  async reapExpired(): Promise<JobRecord[]> {
    // One statement: two replicas reaping at once each wait for the other's row locks, then see
    // the row FAILED and skip it, so every job is reaped (and reported) once.
    const { rows } = await this.query<{ record: JobRecord }>(
      `UPDATE cairn_jobs SET state = 'FAILED', record = record || jsonb_build_object(
         'state', 'FAILED',
         'error', jsonb_build_object('code', 'INTERRUPTED', 'message', format(
           'interrupted: the server %s holding its lease stopped renewing it (the lease ran out at %s, by the catalog database''s clock); its partial data is removed by prune. Start the job again.',
           owner, ${iso('lease_until')})),
         'updatedAt', ${iso('now()')}, 'finishedAt', ${iso('now()')})
       WHERE lease_until < now() AND NOT (state = ANY($1::text[]))
       RETURNING record`,
      [TERMINAL],
    );
    return rows.map((r) => r.record);
  }

  async requestCancel(id: string): Promise<CancelRequest> {
    const client = await this.connect();
    try {
      await client.query('BEGIN');
      // The row lock orders this against the owner's writes: the state seen is the state now.
      const { rows } = await client.query<{ record: JobRecord; owner: string; state: string }>(
        'SELECT record, owner, state FROM cairn_jobs WHERE id = $1 FOR UPDATE',
        [id],
      );
      const row = rows[0];
      if (!row) {
        await client.query('ROLLBACK');
        return { outcome: 'missing' };
      }
      if (TERMINAL_STATES.has(row.state as JobRecord['state']) || row.state === 'FINALIZING') {
        await client.query('ROLLBACK');
        return { outcome: row.state === 'FINALIZING' ? 'finalizing' : 'ended', job: row.record, owner: row.owner };
      }
      await client.query('UPDATE cairn_jobs SET cancel_requested = true WHERE id = $1', [id]);
      // Delivered at commit; an owner that misses it sees cancel_requested at its next heartbeat.
      await client.query('SELECT pg_notify($1, $2)', [CANCEL_CHANNEL, id]);
      await client.query('COMMIT');
      return { outcome: 'requested', job: { ...row.record, state: 'CANCELLING' }, owner: row.owner };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw pgError(err, this.settings);
    } finally {
      client.release();
    }
  }

  async listenCancels(listener: (id: string) => void): Promise<() => Promise<void>> {
    let stopped = false;
    let client: pg.Client | undefined;
    let retry: NodeJS.Timeout | undefined;
    // A dedicated session (LISTEN belongs to one connection, never a pooled one); when it drops,
    // it is opened again after a second. Requests sent meanwhile reach the owner through the
    // heartbeat's cancelRequested.
    const open = async (): Promise<void> => {
      const c = new pg.Client({ ...clientConfig(this.settings), ...appName(this.settings, this.owner) });
      c.on('notification', (n) => {
        if (n.channel === CANCEL_CHANNEL && n.payload) listener(n.payload);
      });
      const again = (): void => {
        if (stopped || client !== c) return;
        client = undefined;
        void c.end().catch(() => undefined);
        retry = setTimeout(() => void open().catch(() => undefined), 1000);
        retry.unref();
      };
      c.on('error', again);
      c.on('end', again);
      client = c;
      try {
        await c.connect();
        await c.query(`LISTEN ${CANCEL_CHANNEL}`);
      } catch (err) {
        again();
        throw pgError(err, this.settings);
      }
    };
    try {
      await open();
    } catch (err) {
      // Not listening at all: no retries behind the caller's back (it was told, and nothing could stop them).
      stopped = true;
      if (retry) clearTimeout(retry);
      throw err;
    }
    return async () => {
      stopped = true;
      if (retry) clearTimeout(retry);
      const c = client;
      client = undefined;
      await c?.end().catch(() => undefined);
    };
  }

  async changedSince(since: string | null, exceptOwner: string): Promise<{ records: JobRecord[]; cursor: string }> {
    if (since === null) {
      const { rows } = await this.query<{ now: Date }>('SELECT clock_timestamp() AS now', []);
      return { records: [], cursor: (rows[0] as { now: Date }).now.toISOString() };
    }
    const { rows } = await this.query<{ record: JobRecord; changed_at: Date; now: Date }>(
      'SELECT record, changed_at, clock_timestamp() AS now FROM cairn_jobs WHERE changed_at > $1 AND owner <> $2 ORDER BY changed_at LIMIT 1000',
      [since, exceptOwner],
    );
    const last = rows[rows.length - 1];
    // A full page: go on from its last change; else from now.
    const cursor = rows.length === 1000 && last ? last.changed_at : (rows[0]?.now ?? new Date(since));
    return { records: rows.map((r) => r.record), cursor: cursor.toISOString() };
  }

  async listServers(): Promise<ServerRecord[]> {
    const { rows } = await this.query<{
      id: string; host: string; version: string; url: string | null; pid: number;
      started_at: Date; heartbeat_at: Date; lease_until: Date; stopped_at: Date | null; alive: boolean; active_jobs: string;
    }>(
      `SELECT s.*, s.lease_until > now() AS alive,
         (SELECT count(*) FROM cairn_jobs j WHERE j.owner = s.id AND NOT (j.state = ANY($1::text[]))) AS active_jobs
       FROM cairn_servers s ORDER BY s.started_at, s.id`,
      [TERMINAL],
    );
    return rows.map((r) => ({
      id: r.id,
      host: r.host,
      version: r.version,
      url: r.url,
      pid: r.pid,
      startedAt: r.started_at.toISOString(),
      heartbeatAt: r.heartbeat_at.toISOString(),
      leaseUntil: r.lease_until.toISOString(),
      alive: r.alive,
      stoppedAt: r.stopped_at ? r.stopped_at.toISOString() : null,
      activeJobs: Number(r.active_jobs),
    }));
  }

  async markStopped(serverId: string): Promise<void> {
    await this.query('UPDATE cairn_servers SET stopped_at = now(), lease_until = now() WHERE id = $1', [serverId]);
  }

  private async connect(): Promise<pg.PoolClient> {
    try {
      return await this.pool.connect();
    } catch (err) {
      throw pgError(err, this.settings);
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

/**
 * application_name of the catalog's sessions: "cairn <server id>", so pg_stat_activity tells the
 * replicas apart (unless the URL sets one). At most 63 bytes (PostgreSQL's NAMEDATALEN - 1).
 */
function appName(settings: PgConnectionSettings, owner: string): { application_name?: string } {
  if (settings.params.application_name !== undefined || !owner) return {};
  return { application_name: Buffer.from(`cairn ${owner}`).subarray(0, 63).toString('utf8').replace(/\uFFFD$/, '') };
}

/** A unique violation of the one-active-job-per-key index (SQLSTATE 23505). */
function isActiveKeyViolation(err: unknown): boolean {
  const e = err as { code?: string; constraint?: string };
  return e.code === '23505' && e.constraint === ACTIVE_KEY_INDEX;
}

/** The WHERE clause ($1…) of a filter's kind, state and key, and its values. */
function whereOf(filter: JobFilter): { where: string; values: unknown[] } {
  const where: string[] = [];
  const values: unknown[] = [];
  for (const [column, value] of [['kind', filter.kind], ['state', filter.state], ['key', filter.key]] as const) {
    if (value === undefined) continue;
    values.push(value);
    where.push(`${column} = $${values.length}`);
  }
  return { where: where.length ? `WHERE ${where.join(' AND ')}` : '', values };
}
