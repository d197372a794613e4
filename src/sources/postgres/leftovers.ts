/**
 * The staging lock, the marks on staging objects, and the cleanup of what killed restores left.
 *
 * Leftovers of a killed restore (SIGKILL, power loss: no chance to clean up): every staging
 * object is named with the restore's id (see staging.ts), and a session of the restore holds the
 * advisory lock of that id (takeStagingLock) from before the first one is created until they are
 * switched in or dropped: on the maintenance database for the staging database (the same session
 * runs CREATE DATABASE, so a kill during it cannot free the lock before the database exists), on
 * the target database for staging tables and sequences. Should that session end early, the
 * restore stops (watchSession).
 * Every restore first drops, best effort and silently, the staging databases of this server
 * (dropAbandonedStaging) and the staging tables and sequences of the target database when it
 * exists (dropAbandonedStagingRelations) whose lock is free: their owner is gone, whatever host
 * or container it ran on, whether or not it got to mark them.
 * The comment `cairn restore staging: host=<hostname> pid=<pid> started=<ISO>` on them
 * (stagingComment) is for people; objects of older versions (other names) are still dropped by
 * that comment when written on this host by a process that is gone, or older than 24 hours
 * (isAbandonedStaging). The temporary folder is `cairn-pg-restore-<owner>-<random>`
 * (../../core/owner.ts); those whose owner is provably gone are removed
 * (removeAbandonedTempDirs).
 * New supporting objects (a schema, a type, a function) that the load's first transaction
 * created are listed in the comment of one of its staging relations (createdRecord, same
 * transaction): the cleanup drops them after the relations, newest first, as the relation's
 * owner (SET ROLE, no CASCADE), so a forged list cannot make it drop what that role could not.
 * Nothing else is ever dropped.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { SourceError } from '../../core/errors.js';
import { OWNER_TOKEN_PATTERN, ownerIsDead, parseOwnerToken } from '../../core/owner.js';
import { processExists } from '../../core/process.js';
import { quoteIdent } from './catalog.js';
import { connect, type PgConnectionSettings } from './connection.js';
import { qname, type QName } from './plan.js';
import {
  newRestoreId,
  restoreLockKey,
  STAGING_DATABASE_SQL_PATTERN,
  STAGING_LOCK_CLASS,
  STAGING_RELATION_SQL_PATTERN,
  stagingDatabaseId,
  stagingRelationId,
} from './staging.js';

/** Start of the comment that marks a staging database (see the module comment). */
export const STAGING_MARK = 'cairn restore staging:';
/** A marked staging database older than this is dropped whatever host or process wrote it. */
export const STAGING_MAX_AGE_MS = 24 * 60 * 60 * 1000;
/** Temporary folders are `<tmpdir>/cairn-pg-restore-<owner token>-<random>` (see ../owner.ts). */
export const TMP_PREFIX = 'cairn-pg-restore-';

/** A supporting object (schema, type, function, …) a restore created, as its archive entry names it. */
export interface CreatedObject {
  desc: string;
  schema: string;
  name: string;
}

/** The comment that marks a staging database as this process's. */
export function stagingComment(now = new Date()): string {
  return `${STAGING_MARK} host=${os.hostname()} pid=${process.pid} started=${now.toISOString()}`;
}

export { processExists };

/**
 * Whether a database with this comment is a staging database left behind by a restore that
 * cannot finish any more: written on this host by a process that is gone, or older than
 * STAGING_MAX_AGE_MS whatever the host. Unmarked or unreadable comments: never.
 */
export function isAbandonedStaging(comment: string | null | undefined, now = Date.now()): boolean {
  if (!comment?.startsWith(STAGING_MARK)) return false;
  const m = /^ host=(.*) pid=(\d+) started=(\S+)$/.exec(comment.slice(STAGING_MARK.length));
  if (!m) return false;
  const at = Date.parse(m[3] ?? '');
  if (Number.isNaN(at)) return false;
  if (now - at > STAGING_MAX_AGE_MS) return true;
  return m[1] === os.hostname() && !processExists(Number(m[2]));
}

/**
 * Runs `fn` while holding the staging lock of restore `id` in this session, when it is free
 * (the restore that owned it is gone); returns whether it ran. The lock is let go after.
 */
async function withAbandonedLock(client: pg.Client, id: string, fn: () => Promise<void>): Promise<boolean> {
  const key = [STAGING_LOCK_CLASS, restoreLockKey(id)];
  const { rows } = await client.query<{ ok: boolean }>('SELECT pg_catalog.pg_try_advisory_lock($1, $2) AS ok', key);
  if (rows[0]?.ok !== true) return false;
  try {
    await fn();
  } finally {
    await client.query('SELECT pg_catalog.pg_advisory_unlock($1, $2)', key).catch(() => undefined);
  }
  return true;
}

/**
 * Drops the abandoned staging databases of the server, through a session on the maintenance
 * database (where their owners hold their locks): those named `…__cairn_<id>` whose lock is
 * free, and those of older versions marked by their comment (see isAbandonedStaging). Best
 * effort, silent.
 */
export async function dropAbandonedStaging(client: pg.Client): Promise<void> {
  let rows: { datname: string; comment: string | null }[];
  try {
    ({ rows } = await client.query<{ datname: string; comment: string | null }>(
      `SELECT datname, pg_catalog.shobj_description(oid, 'pg_database') AS comment
         FROM pg_catalog.pg_database
        WHERE datname <> pg_catalog.current_database()
          AND (datname ~ $3 OR pg_catalog.left(pg_catalog.shobj_description(oid, 'pg_database'), $2) = $1)`,
      [STAGING_MARK, STAGING_MARK.length, STAGING_DATABASE_SQL_PATTERN],
    ));
  } catch {
    return;
  }
  for (const r of rows) {
    const drop = async (): Promise<void> => {
      await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(r.datname)} WITH (FORCE)`);
    };
    const id = stagingDatabaseId(r.datname);
    try {
      if (id !== undefined) await withAbandonedLock(client, id, drop);
      else if (isAbandonedStaging(r.comment)) await drop();
    } catch {
      /* best effort */
    }
  }
}

/** What a restore into an existing database has staged so far, to drop should it not switch in. */
export interface StagedObjects {
  /** Staging tables (by their staging names), committed and marked. */
  tables: QName[];
  /** Staging sequences (owned by staging tables, or not yet: created before OWNED BY). */
  sequences: QName[];
  /** New supporting objects (types, functions, schemas, …), in creation order. */
  objects: CreatedObject[];
}

/**
 * Drops what a failed restore into an existing database staged, in a session of its own (the
 * restore's may be broken); best effort, silent: what stays is dropped by a later restore once
 * the lock is free.
 */
export async function dropStagedObjects(settings: PgConnectionSettings, created: StagedObjects): Promise<void> {
  if (created.tables.length + created.sequences.length + created.objects.length === 0) return;
  let client: pg.Client;
  try {
    client = await connect(settings);
  } catch {
    return;
  }
  try {
    await dropRelations(client, 'TABLE', created.tables);
    await dropRelations(client, 'SEQUENCE', created.sequences);
    for (const o of [...created.objects].reverse()) {
      const sql = dropStatement(o);
      if (sql) await client.query(sql).catch(() => undefined);
    }
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Drops relations together (they may reference each other), else one by one; best effort. */
async function dropRelations(client: pg.Client, word: 'TABLE' | 'SEQUENCE', names: QName[]): Promise<void> {
  if (names.length === 0) return;
  try {
    await client.query(`DROP ${word} IF EXISTS ${names.map(qname).join(', ')}`);
  } catch {
    for (const n of names) await client.query(`DROP ${word} IF EXISTS ${qname(n)}`).catch(() => undefined);
  }
}

const FUNCTION_ARGS = /^\((?:[^;'"\\()]|"(?:[^"]|"")*")*\)$/;

/** How to drop a supporting object the load phase created, or undefined (it stays). */
function dropStatement(o: CreatedObject): string | undefined {
  switch (o.desc) {
    case 'SCHEMA':
    case 'EXTENSION':
      return `DROP ${o.desc} IF EXISTS ${quoteIdent(o.name)}`;
    case 'TYPE':
    case 'SHELL TYPE':
    case 'DOMAIN':
    case 'SEQUENCE':
    case 'COLLATION':
      return `DROP ${o.desc === 'SHELL TYPE' ? 'TYPE' : o.desc} IF EXISTS ${qname(o)}`;
    case 'FUNCTION':
    case 'PROCEDURE':
    case 'AGGREGATE': {
      const paren = o.name.indexOf('(');
      if (paren <= 0) return undefined;
      // The argument list is written as is: only one parenthesised list of type names (quoted
      // ones included), no ";" or "'" outside quotes — a name read back from a comment or an
      // archive cannot smuggle in a second object or statement.
      if (!FUNCTION_ARGS.test(o.name.slice(paren))) return undefined;
      return `DROP ${o.desc} IF EXISTS ${quoteIdent(o.schema)}.${quoteIdent(o.name.slice(0, paren))}${o.name.slice(paren)}`;
    }
    default:
      return undefined;
  }
}

/** dropStatement, for the tests of what a forged record can make it drop. */
export const dropStatementForTest = dropStatement;

/**
 * Drops the staging tables and sequences left in this database by restores that cannot finish
 * any more: those named `…__cairn_<id>_<n>` whose restore's lock (held on this database) is
 * free, and those of older versions (see isAbandonedStaging). Their indexes and constraints go
 * with them. Only relations that carry the staging mark as their comment (set in the transaction
 * that creates them) are ever dropped: a user's table that merely has such a name is never
 * touched (a table renamed to `x__cairn_0123abcd_1` was dropped by the next restore). Best
 * effort, silent.
 */
export async function dropAbandonedStagingRelations(client: pg.Client): Promise<void> {
  let rows: { schema: string; name: string; relkind: string; owner: string; comment: string | null }[];
  try {
    ({ rows } = await client.query<{ schema: string; name: string; relkind: string; owner: string; comment: string | null }>(
      `SELECT n.nspname AS schema, c.relname AS name, c.relkind::text AS relkind, pg_catalog.pg_get_userbyid(c.relowner) AS owner,
              pg_catalog.obj_description(c.oid, 'pg_class') AS comment
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'S') AND c.relname ~ $3
          AND pg_catalog.left(pg_catalog.obj_description(c.oid, 'pg_class'), $2) = $1`,
      [STAGING_MARK, STAGING_MARK.length, STAGING_RELATION_SQL_PATTERN],
    ));
  } catch {
    return;
  }
  const drop = async (relations: typeof rows): Promise<void> => {
    await dropRelations(client, 'TABLE', relations.filter((r) => r.relkind !== 'S'));
    await dropRelations(client, 'SEQUENCE', relations.filter((r) => r.relkind === 'S'));
  };
  const byRestore = new Map<string, typeof rows>();
  const legacy: typeof rows = [];
  for (const r of rows) {
    const id = stagingRelationId(r.name);
    if (id === undefined) {
      if (isAbandonedStaging(r.comment)) legacy.push(r);
      continue;
    }
    byRestore.set(id, [...(byRestore.get(id) ?? []), r]);
  }
  for (const [id, relations] of byRestore) {
    await withAbandonedLock(client, id, async () => {
      await drop(relations);
      for (const r of relations) await dropRecorded(client, r.comment, r.owner);
    }).catch(() => undefined);
  }
  await drop(legacy).catch(() => undefined);
}

/** Start of the line of a staging relation's comment that lists the supporting objects its restore created. */
const CREATED_PREFIX = 'created: ';

/** The record of created supporting objects that can be dropped (see dropStatement), or undefined when none. */
export function createdRecord(objects: CreatedObject[]): string | undefined {
  const droppable = objects.filter((o) => dropStatement(o) !== undefined).map((o) => ({ desc: o.desc, schema: o.schema, name: o.name }));
  return droppable.length > 0 ? `${CREATED_PREFIX}${JSON.stringify(droppable)}` : undefined;
}

/**
 * Drops, newest first, the supporting objects recorded in a staging relation's comment, each as
 * the relation's owner (SET ROLE): a record can only make cairn drop what that role could drop
 * itself (the comment can only be written by it, or a superuser). Best effort: an object others
 * have started to use meanwhile stays (no CASCADE).
 */
async function dropRecorded(client: pg.Client, comment: string | null, owner: string): Promise<void> {
  const line = comment?.split('\n').find((l) => l.startsWith(CREATED_PREFIX));
  if (line === undefined) return;
  let objects: unknown;
  try {
    objects = JSON.parse(line.slice(CREATED_PREFIX.length));
  } catch {
    return;
  }
  if (!Array.isArray(objects)) return;
  for (const o of [...(objects as unknown[])].reverse()) {
    const { desc, schema, name } = (o ?? {}) as Record<string, unknown>;
    if (typeof desc !== 'string' || typeof schema !== 'string' || typeof name !== 'string') continue;
    const sql = dropStatement({ desc, schema, name });
    if (sql === undefined) continue;
    try {
      await client.query('BEGIN');
      await client.query(`SET LOCAL ROLE ${quoteIdent(owner)}`);
      await client.query(sql);
      await client.query('COMMIT');
    } catch {
      await client.query('ROLLBACK').catch(() => undefined);
    }
  }
}

/**
 * Removes the temporary folders of restores whose process is provably gone (see ../owner.ts:
 * same machine, boot and PID namespace, pid gone or reused), and those of older versions
 * (`cairn-pg-restore-<pid>-…`) whose pid does not exist here; best effort, silent.
 */
export function removeAbandonedTempDirs(dir = os.tmpdir()): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  const uid = process.getuid?.();
  const current = new RegExp(`^${TMP_PREFIX}(${OWNER_TOKEN_PATTERN})-`);
  const legacy = new RegExp(`^${TMP_PREFIX}(\\d+)-`);
  for (const name of names) {
    const token = current.exec(name)?.[1];
    if (token !== undefined) {
      const owner = parseOwnerToken(token);
      if (owner === undefined || !ownerIsDead(owner)) continue;
    } else {
      const m = legacy.exec(name);
      if (!m) continue;
      const pid = Number(m[1]);
      if (pid === process.pid || processExists(pid)) continue;
    }
    const full = path.join(dir, name);
    try {
      const st = fs.lstatSync(full);
      if (!st.isDirectory() || (uid !== undefined && st.uid !== uid)) continue;
      fs.rmSync(full, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
}

/**
 * Takes the staging lock (STAGING_LOCK_CLASS, id) for a new restore id in this session and
 * returns the id; see staging.ts.
 */
export async function takeStagingLock(client: pg.Client): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    const id = newRestoreId();
    const { rows } = await client.query<{ ok: boolean }>('SELECT pg_catalog.pg_try_advisory_lock($1, $2) AS ok', [STAGING_LOCK_CLASS, restoreLockKey(id)]);
    if (rows[0]?.ok === true) return id;
    // Another restore drew the same id (1 in 4 billion): draw again.
    if (attempt >= 10) throw new SourceError('Cannot take a staging lock on the PostgreSQL server: every id tried is taken.');
  }
}

/**
 * Aborts `lost` (with a SourceError) when the client's connection fails or ends, until the
 * returned function is called.
 */
export function watchSession(client: pg.Client, lost: AbortController): () => void {
  const onLost = (err?: unknown): void => {
    if (lost.signal.aborted) return;
    const detail = err instanceof Error ? `: ${err.message}` : '';
    lost.abort(
      new SourceError(
        `The restore lost its PostgreSQL session holding the staging lock${detail}. It stopped, leaving the target as it was: restore again.`,
      ),
    );
  };
  const onEnd = (): void => onLost();
  client.on('error', onLost);
  client.on('end', onEnd);
  return () => {
    client.off('error', onLost);
    client.off('end', onEnd);
  };
}
