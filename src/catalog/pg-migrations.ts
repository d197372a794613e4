/**
 * The shared catalog's schema in PostgreSQL (`cairn server --catalog postgres://…`), as numbered
 * migrations applied in order at start-up. Each runs in its own transaction and is recorded in
 * cairn_schema_migrations; the whole run holds a session advisory lock, so replicas starting
 * together migrate once (the others wait, then find every version applied). A catalog newer than
 * this server (a version it does not know) is refused: the server would not know its tables.
 * Never edit an applied migration: add the next one.
 */
import type pg from 'pg';
import { UsageError } from '../core/errors.js';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** pg_advisory_lock's key for migrations: "cairn" + "mig" as an int8 (any fixed number works). */
export const MIGRATION_LOCK_KEY = 0x636169726e6d6967n;

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'job records',
    sql: `
CREATE TABLE IF NOT EXISTS cairn_jobs (
  id text PRIMARY KEY,
  kind text NOT NULL,
  state text NOT NULL,
  key text,
  owner text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL,
  record jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS cairn_jobs_created ON cairn_jobs (created_at DESC);
CREATE INDEX IF NOT EXISTS cairn_jobs_owner_state ON cairn_jobs (owner, state);`,
  },
  {
    // Jobs across replicas (docs/reliability.md "Leases"): each running job holds a lease its
    // server renews; one active job per key is a unique index, so every replica refuses the
    // second backup of a source alike. Older duplicates (possible before this index, when two
    // replicas only checked their own memory) are failed first, or the index could not be built.
    version: 2,
    name: 'job leases, one active job per key, servers',
    sql: `
ALTER TABLE cairn_jobs ADD COLUMN IF NOT EXISTS lease_until timestamptz;
ALTER TABLE cairn_jobs ADD COLUMN IF NOT EXISTS cancel_requested boolean NOT NULL DEFAULT false;
WITH ranked AS (
  SELECT id, row_number() OVER (PARTITION BY key ORDER BY created_at DESC, id DESC) AS n
  FROM cairn_jobs WHERE key IS NOT NULL AND state NOT IN ('SUCCESS', 'FAILED', 'CANCELED')
)
UPDATE cairn_jobs j SET state = 'FAILED', record = j.record || jsonb_build_object(
  'state', 'FAILED',
  'error', jsonb_build_object('code', 'INTERRUPTED', 'message',
    'interrupted: a newer job of the same database was running when the catalog was upgraded to one active job per key; its partial data is removed by prune'),
  'updatedAt', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
  'finishedAt', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
FROM ranked WHERE j.id = ranked.id AND ranked.n > 1;
CREATE UNIQUE INDEX IF NOT EXISTS cairn_jobs_active_key ON cairn_jobs (key)
  WHERE key IS NOT NULL AND state NOT IN ('SUCCESS', 'FAILED', 'CANCELED');
CREATE INDEX IF NOT EXISTS cairn_jobs_lease ON cairn_jobs (lease_until)
  WHERE state NOT IN ('SUCCESS', 'FAILED', 'CANCELED');
CREATE TABLE IF NOT EXISTS cairn_servers (
  id text PRIMARY KEY,
  host text NOT NULL,
  version text NOT NULL,
  url text,
  pid integer NOT NULL,
  started_at timestamptz NOT NULL,
  heartbeat_at timestamptz NOT NULL,
  lease_until timestamptz NOT NULL,
  stopped_at timestamptz
);`,
  },
];

export interface MigrationResult {
  /** Versions this call applied (empty when another replica had applied them all). */
  applied: number[];
  /** The catalog's version afterwards. */
  version: number;
}

/**
 * Applies the migrations `client`'s database lacks, under the advisory lock. `appliedBy` is
 * recorded beside each version (the server id). Throws UsageError when the catalog has a
 * version this server does not know (upgrade the server).
 */
export async function migrate(client: pg.ClientBase, appliedBy: string, migrations: readonly Migration[] = MIGRATIONS): Promise<MigrationResult> {
  await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY.toString()]);
  try {
    await client.query(`CREATE TABLE IF NOT EXISTS cairn_schema_migrations (
      version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), applied_by text NOT NULL DEFAULT '')`);
    const { rows } = await client.query<{ version: number }>('SELECT version FROM cairn_schema_migrations');
    const done = new Set(rows.map((r) => Number(r.version)));
    const known = Math.max(0, ...migrations.map((m) => m.version));
    const newest = Math.max(0, ...done);
    if (newest > known) {
      throw new UsageError(
        `The shared catalog is at schema version ${newest}, newer than this cairn server knows (${known}): another replica runs a newer cairn. Upgrade this server to the same version as the others.`,
      );
    }
    const applied: number[] = [];
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (done.has(m.version)) continue;
      await client.query('BEGIN');
      try {
        await client.query(m.sql);
        await client.query('INSERT INTO cairn_schema_migrations (version, name, applied_by) VALUES ($1, $2, $3)', [m.version, m.name, appliedBy]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
      applied.push(m.version);
    }
    return { applied, version: Math.max(newest, ...applied) };
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY.toString()]).catch(() => undefined);
  }
}
