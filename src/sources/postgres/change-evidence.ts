/**
 * Change evidence of a PostgreSQL database, for schedules with --when-unchanged skip. Every
 * change to data or definitions (INSERT, UPDATE, DELETE, TRUNCATE, DDL, setval, large objects,
 * unlogged tables included) needs a transaction id, so the transaction snapshot
 * (txid_current_snapshot(): the next id to be assigned and the ids in progress) moves whenever
 * one commits. Not used: pg_stat_database.xact_commit (read-only transactions count too),
 * pg_stat_user_tables counters (flushed up to a minute late: a change could read as none), the
 * WAL position alone (unlogged tables write none). What no transaction id covers is added:
 * sequence values (nextval logs only every 32 values and takes no id), the server's start time
 * (a restart, a point-in-time recovery, unlogged tables emptied by a crash) and the database's
 * oid (dropped and made again). Transaction ids are the cluster's, so a change in any database
 * of the server reads as a change here too: a backup is made, which is wasteful, never wrong.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';

/**
 * The evidence as seen by `client`'s current transaction, which must be REPEATABLE READ and
 * have fixed its snapshot already (or be about to fix it with this query): the evidence is then
 * exactly the state the transaction reads. Sequences are read now, so call it before the backup
 * reads sequence values: a nextval in between makes the next comparison differ. Assigns no
 * transaction id (reads only).
 */
export async function readChangeEvidence(client: pg.Client): Promise<string> {
  const { rows } = await client.query<{ snap: string; started: string; db: string; seqs: string | null }>(
    `SELECT txid_current_snapshot()::text AS snap, extract(epoch FROM pg_postmaster_start_time())::text AS started,
       (SELECT oid FROM pg_database WHERE datname = current_database())::text AS db,
       (SELECT string_agg(format('%I.%I=%s', schemaname, sequencename, coalesce(last_value::text, '-')), ',' ORDER BY schemaname, sequencename)
          FROM pg_sequences) AS seqs`,
  );
  const r = rows[0];
  if (r === undefined) throw new Error('Internal error: the change evidence query answered no row.');
  // Hashed: the list of transactions in progress has no bound.
  return `pg1:${createHash('sha256').update(JSON.stringify([r.db, r.started, r.snap, r.seqs ?? ''])).digest('hex')}`;
}
