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
  {
    // Every other store of a server (sql.ts: the same store code runs on SQLite and here). Times
    // are ISO-8601 text as in SQLite (they sort as text); secrets are sealed (catalog-key.ts).
    version: 3,
    name: 'server state: tokens, sessions, registrations, schedules, alerts, drills, audit, health',
    sql: `
CREATE TABLE cairn_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE tokens (
  id text PRIMARY KEY, name text NOT NULL, role text NOT NULL, hash bytea NOT NULL UNIQUE, created_at text NOT NULL,
  sources text, repositories text);
CREATE TABLE sessions (
  hash bytea PRIMARY KEY, token_id text NOT NULL, csrf text NOT NULL,
  created_at bigint NOT NULL, expires_at bigint NOT NULL, last_seen bigint NOT NULL);
CREATE INDEX sessions_token ON sessions (token_id);
CREATE TABLE registrations (
  kind text NOT NULL, name text NOT NULL, url text NOT NULL, location text NOT NULL, created_at text NOT NULL,
  password_source text, rpo_seconds bigint, PRIMARY KEY (kind, name));
CREATE TABLE schedules (name text PRIMARY KEY, spec text NOT NULL, enabled integer NOT NULL, last_due text, id text);
CREATE UNIQUE INDEX schedules_id ON schedules (id);
-- owner: the server whose memory a queued run waits in (ended when that server is gone).
CREATE TABLE schedule_runs (
  schedule text NOT NULL, due_at text NOT NULL, status text NOT NULL, job_id text, at text NOT NULL, reason text,
  owner text NOT NULL DEFAULT '', PRIMARY KEY (schedule, due_at));
CREATE TABLE alert_channels (name text PRIMARY KEY, type text NOT NULL, config text NOT NULL, created_at text NOT NULL);
CREATE TABLE alert_rules (id text PRIMARY KEY, channel text NOT NULL, "on" text NOT NULL, source text, schedule text, created_at text NOT NULL);
-- owner: the server that delivers it (its retries wait in that server's memory).
CREATE TABLE alert_deliveries (
  id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, channel text NOT NULL, kind text NOT NULL, title text NOT NULL, at text NOT NULL,
  state text NOT NULL, attempts integer NOT NULL, last_error text, delivered_at text, owner text NOT NULL DEFAULT '');
CREATE INDEX alert_deliveries_state ON alert_deliveries (state, id);
CREATE TABLE alert_outcomes (key text PRIMARY KEY, outcome text NOT NULL, at text NOT NULL);
CREATE TABLE drills (
  name text PRIMARY KEY, source text NOT NULL, repository text NOT NULL, target_url text NOT NULL, target_location text NOT NULL,
  cron text, timezone text NOT NULL, checks text NOT NULL, enabled integer NOT NULL, created_at text NOT NULL, last_due text);
CREATE TABLE drill_runs (
  id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, drill text NOT NULL, job_id text, trigger text NOT NULL, started_at text NOT NULL,
  finished_at text NOT NULL, state text NOT NULL, backup_id text, recovery_seconds double precision, rows_compared bigint NOT NULL,
  tables text NOT NULL, checks text NOT NULL, error text);
CREATE INDEX drill_runs_drill ON drill_runs (drill, id);
CREATE TABLE drill_scratch (drill text PRIMARY KEY, location text NOT NULL, since text NOT NULL);
CREATE TABLE audit_log (
  id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, at text NOT NULL, type text NOT NULL,
  actor_token_id text, actor_name text, actor_role text, via text NOT NULL, address text,
  method text NOT NULL, path text NOT NULL, route text, action text NOT NULL, target text,
  status integer, result text NOT NULL, job_id text);
CREATE INDEX audit_log_at ON audit_log (at);
-- Append-only, as in SQLite: no UPDATE, DELETE or TRUNCATE by any replica (or anyone with the catalog's role).
CREATE FUNCTION cairn_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only: records are never changed or deleted';
END $$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log FOR EACH ROW EXECUTE FUNCTION cairn_audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log FOR EACH STATEMENT EXECUTE FUNCTION cairn_audit_log_append_only();
CREATE TABLE rpo_breaches (key text PRIMARY KEY, since text NOT NULL);`,
  },
  {
    // GET /v1/events on any replica tells of every replica's jobs: it polls the rows changed
    // since its last look. changed_at is the database's clock (the owners' clocks may differ),
    // set when a record changes — not when only a lease is renewed.
    version: 4,
    name: 'job changes for event streams across replicas',
    sql: `
ALTER TABLE cairn_jobs ADD COLUMN IF NOT EXISTS changed_at timestamptz NOT NULL DEFAULT clock_timestamp();
CREATE INDEX IF NOT EXISTS cairn_jobs_changed ON cairn_jobs (changed_at);
CREATE FUNCTION cairn_jobs_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' OR NEW.record IS DISTINCT FROM OLD.record THEN
    NEW.changed_at := clock_timestamp();
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER cairn_jobs_touch BEFORE INSERT OR UPDATE ON cairn_jobs FOR EACH ROW EXECUTE FUNCTION cairn_jobs_touch();`,
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
