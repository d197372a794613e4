/**
 * Staging databases of MySQL/MariaDB restores: `<target, first 40 characters>__cairn_<8 hex>`
 * (and `…_old`, where an overwrite parks the tables it replaces until they are dropped). The
 * restoring session holds `GET_LOCK('<staging name>', 0)` for its whole life, so a staging
 * database whose lock is free belongs to a restore that was killed: the next restore to that
 * target drops it before starting.
 */
import crypto from 'node:crypto';
import type mysql from 'mysql2/promise';
import { hexLiteral, ident } from './connection.js';
import { exec, select } from './session.js';

export const STAGING_INFIX = '__cairn_';
export const OLD_SUFFIX = '_old';

/** A new staging database name for `target` (≤ 60 characters: within MySQL's 64). */
export function stagingName(target: string): string {
  return `${[...target].slice(0, 40).join('')}${STAGING_INFIX}${crypto.randomBytes(4).toString('hex')}`;
}

/** Whether `name` is a staging database (or its `_old` companion) of a restore to `target`; its lock name. */
export function stagingOf(name: string, target: string): string | undefined {
  const prefix = [...target].slice(0, 40).join('') + STAGING_INFIX;
  if (!name.startsWith(prefix)) return undefined;
  const rest = name.slice(prefix.length);
  const m = /^([0-9a-f]{8})(_old)?$/.exec(rest);
  return m ? prefix + m[1] : undefined;
}

/** A lock name as SQL (GET_LOCK refuses an introducer on a hex literal: CONVERT instead). */
const lockName = (name: string): string => `CONVERT(${hexLiteral(name)} USING utf8mb4)`;

/**
 * Takes the staging lock in `conn` (held until the session ends). Throws when another session
 * holds it (never expected: the name is random).
 */
export async function takeStagingLock(conn: mysql.Connection, staging: string): Promise<void> {
  const rows = await select(conn, `SELECT GET_LOCK(${lockName(staging)}, 0)`);
  if (Number(rows[0]?.[0]) !== 1) throw new Error(`the staging lock ${staging} is held by another session`);
}

/**
 * Drops the staging databases of restores to `target` that were killed (their lock is free).
 * Returns their names.
 */
export async function dropAbandonedStaging(conn: mysql.Connection, target: string): Promise<string[]> {
  const rows = await select(conn, `SELECT SCHEMA_NAME FROM information_schema.SCHEMATA`);
  const dropped: string[] = [];
  for (const r of rows) {
    const name = String(r[0]);
    const lock = stagingOf(name, target);
    if (lock === undefined) continue;
    const free = await select(conn, `SELECT IS_FREE_LOCK(${lockName(lock)})`);
    if (Number(free[0]?.[0]) !== 1) continue;
    await exec(conn, `DROP DATABASE IF EXISTS ${ident(name)}`);
    dropped.push(name);
  }
  return dropped;
}
