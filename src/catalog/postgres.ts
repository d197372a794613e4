import pg from 'pg';
import { clientConfig, parsePostgresUrl, pgError, pgLocation, type PgConnectionSettings } from '../sources/postgres/connection.js';
import { migrate } from './pg-migrations.js';
import { TERMINAL_STATES, type JobCatalog, type JobError, type JobFilter, type JobRecord } from '../jobs/ports.js';



/**
 * Job records in a PostgreSQL database, for deployments where several servers share one catalog
 * (`cairn server --catalog postgres://…`). Same records as the SQLite catalog; each server
 * fails only its own unfinished jobs at start-up (by `owner`).
 */
export class PostgresJobCatalog implements JobCatalog {
  private constructor(
    private readonly pool: pg.Pool,
    private readonly settings: PgConnectionSettings,
  ) {}

  /** Connects and brings the catalog's schema up to date (migrations); errors name the server, never the password. */
  static async open(url: string, owner = ''): Promise<PostgresJobCatalog> {
    const settings = parsePostgresUrl(url);
    const pool = new pg.Pool({ ...clientConfig(settings), max: 4 });
    pool.on('error', () => undefined); // an idle client's error: the next query reports it
    const catalog = new PostgresJobCatalog(pool, settings);
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

  async insert(job: JobRecord, owner: string): Promise<void> {
    await this.query('INSERT INTO cairn_jobs (id, kind, state, key, owner, created_at, record) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
      job.id,
      job.kind,
      job.state,
      job.key,
      owner,
      job.createdAt,
      JSON.stringify(job),
    ]);
  }

  async update(job: JobRecord): Promise<void> {
    await this.query('UPDATE cairn_jobs SET state = $1, record = $2 WHERE id = $3', [job.state, JSON.stringify(job), job.id]);
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

  async close(): Promise<void> {
    await this.pool.end();
  }
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
