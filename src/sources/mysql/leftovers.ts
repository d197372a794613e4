/**
 * Staging databases of MySQL/MariaDB restores: `<target, first 40 characters>__cairn_<8 hex>`
 * (and `…_old`, where an overwrite parks the tables it replaces until they are dropped, and
 * `…_log`, the switch journal: journal.ts). The restoring session holds
 * `GET_LOCK('<staging name>', 0)` for its whole life, so a staging database whose lock is free
 * belongs to a restore that was killed: the next restore to that target settles it before
 * starting. Killed after its switch (the journal's marker renamed), the killed restore is
 * finished: the views, triggers, routines and events it had not created yet are created, the
 * tables it replaced dropped. Killed before, it is undone: what it had dropped from the target
 * just before the RENAME is put back, a database it had created for it dropped while empty.
 * Then its databases are dropped, the journal last, and each one named in a warning.
 *
 * A database is cairn's only if it says so: every one of them is created with the comment
 * STAGING_COMMENT (MariaDB's database COMMENT, stored with the database by the CREATE DATABASE
 * itself: no moment where it exists unmarked, and nothing inside it that a restored table's name
 * could clash with). A user's database that merely matches the name pattern is never touched.
 */
import crypto from 'node:crypto';
import type mysql from 'mysql2/promise';
import { hexLiteral, ident } from './connection.js';
import { describeObjects, LOG_SUFFIX, logDatabase, readJournal, settleJournal } from './journal.js';
import { exec, select } from './session.js';

export const STAGING_INFIX = '__cairn_';
export const OLD_SUFFIX = '_old';
/** The COMMENT of every database a restore creates for itself (staging, `_old`, `_log`): only those are ever dropped as leftovers. */
export const STAGING_COMMENT = 'cairn restore staging: dropped by cairn; safe to drop when no restore runs';
/** The clause that marks a database cairn's own, for its CREATE DATABASE. */
export const stagingMark = (): string => ` COMMENT '${STAGING_COMMENT}'`;

/** A new staging database name for `target` (≤ 60 characters: within MySQL's 64). */
export function stagingName(target: string): string {
  return `${[...target].slice(0, 40).join('')}${STAGING_INFIX}${crypto.randomBytes(4).toString('hex')}`;
}

/** Whether `name` is a staging database (or its `_old` or `_log` companion) of a restore to `target`; its lock name. */
export function stagingOf(name: string, target: string): string | undefined {
  const prefix = [...target].slice(0, 40).join('') + STAGING_INFIX;
  if (!name.startsWith(prefix)) return undefined;
  const rest = name.slice(prefix.length);
  const m = /^([0-9a-f]{8})(_old|_log)?$/.exec(rest);
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

/** What settling the leftovers of killed restores did, as warnings for the restore that found them. */
export interface Settled {
  /** Databases dropped. */
  dropped: string[];
  /** One line per killed restore that was finished or undone in the target. */
  messages: string[];
}

/**
 * Settles the leftovers of restores to `target` that were killed (their lock is free): each is
 * finished or undone from its journal (see the module comment), then its databases dropped.
 * Takes each one's lock while settling it, so two restores never settle one twice. `location`
 * names the target in messages. Throws SourceError when the server refuses a step (the
 * leftovers are then kept, journal included, for the next try).
 */
export async function settleAbandoned(conn: mysql.Connection, target: string, location: string): Promise<Settled> {
  const rows = await select(conn, `SELECT SCHEMA_NAME, SCHEMA_COMMENT FROM information_schema.SCHEMATA`);
  const groups = new Map<string, string[]>();
  for (const r of rows) {
    const name = String(r[0]);
    // Not created by a restore (a user's database that happens to match the pattern): left alone.
    if (r[1] !== STAGING_COMMENT) continue;
    const lock = stagingOf(name, target);
    if (lock === undefined) continue;
    groups.set(lock, [...(groups.get(lock) ?? []), name]);
  }
  const settled: Settled = { dropped: [], messages: [] };
  const ofTarget = location;
  for (const [lock, names] of groups) {
    if (Number((await select(conn, `SELECT GET_LOCK(${lockName(lock)}, 0)`))[0]?.[0]) !== 1) continue;
    try {
      if (names.includes(logDatabase(lock))) {
        const journal = await readJournal(conn, logDatabase(lock));
        if (journal !== undefined) {
          const done = await settleJournal(conn, lock, journal);
          const what = done.created.length > 0 ? describeObjects(done.created) : '';
          // Targets sharing their first 40 characters share the staging prefix: name the right one.
          const of = journal.target === target ? location : journal.target;
          if (journal.switched) {
            settled.messages.push(
              `finished an interrupted restore of ${of} (it was stopped after switching its tables in${what ? `; created ${what}` : ''}${journal.forward.some((s) => s.op === 'sql' && s.what === 'the replaced tables') ? '; dropped the tables it replaced' : ''}).`,
            );
          } else if (what !== '' || done.droppedTarget) {
            settled.messages.push(`undid an interrupted restore of ${of} (it was stopped just before switching its tables in${what ? `; put back ${what}` : ''}${done.droppedTarget ? `; dropped the database ${journal.target} it had created` : ''}).`);
          }
        }
      }
      const removed: string[] = [];
      // Staging, then `_old`, then the journal: last, so that a kill while dropping leaves it for the next restore.
      const rank = (n: string): number => (n.endsWith(LOG_SUFFIX) ? 2 : n.endsWith(OLD_SUFFIX) ? 1 : 0);
      for (const name of [...names].sort((a, b) => rank(a) - rank(b))) {
        await exec(conn, `DROP DATABASE IF EXISTS ${ident(name)}`);
        settled.dropped.push(name);
        removed.push(name);
      }
      settled.messages.push(`removed the database${removed.length === 1 ? '' : 's'} ${removed.join(', ')} left by an interrupted restore to ${ofTarget}.`);
    } finally {
      await select(conn, `SELECT RELEASE_LOCK(${lockName(lock)})`);
    }
  }
  return settled;
}
