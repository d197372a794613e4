/**
 * `--on-conflict replace` into an existing SQLite file: the whole file becomes the backup. The
 * backup is loaded into a staging file beside the target as for a new file (the backup's
 * encoding, page size, journal mode, user_version and application_id), fsynced, given the old
 * file's permission bits (and owner, where this user may), then put in place with one rename(),
 * and the folder fsynced: a kill at any point leaves the old file or the new one at the name,
 * never neither, and a staging file that the next restore or backup in the folder removes.
 *
 * The old file's companions must not outlive it: a `-wal` beside the new file would be replayed
 * into it (its frames are pages of the old file), a hot `-journal` rolled back into it, and a
 * `-shm` shared with a process still on the old file. So, under the switch:
 * 1. a target in WAL mode is first set to rollback mode (`journal_mode=DELETE`), which SQLite
 *    does only with no other connection open on the file (in WAL mode each holds a lock as long
 *    as it is open): the WAL is checkpointed into the file and removed, the -shm too;
 * 2. `BEGIN EXCLUSIVE` on the old file: no other connection reads or writes it (a hot journal
 *    of a crashed writer is rolled back into the old file first);
 * 3. the old file's -journal, -wal and -shm (none should be left; a persisted empty journal
 *    may) are removed, then the staging file is renamed over the target, the folder fsynced.
 * Should the switch fail before the rename, a target that was in WAL mode is set back to it.
 *
 * Processes holding the old file open. A connection keeps its file descriptor: after the switch
 * it would go on reading the old (unlinked) file, and a write through it would create a
 * -journal next to the new file that another process could roll back into the new one. So,
 * on Linux, every other process with the file open (seen in /proc/<pid>/fd: processes of this
 * user, all of them as root) counts as a session: refused by default (naming pid and command),
 * or waited for (`--sessions wait`); cairn never ends them (`terminate` is refused for files).
 * In WAL mode SQLite's own lock refuses the switch as well, wherever it runs; elsewhere than
 * Linux, connections of other processes to a file in rollback mode that are idle cannot be seen:
 * stop the applications using the file before replacing it.
 */
import fs from 'node:fs';
import path from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import Database from './driver.js';
import { ConflictError, throwIfAborted, UsageError } from '../../core/errors.js';
import { sleep } from '../../core/sleep.js';
import type { RestoreItem, RestoreOptions, RestoreResult, SessionsPolicy } from '../types.js';
import { explainOpenFailure, refuseProtectedFile, refuseServerCatalog } from './catalog-mark.js';
import { sqliteError } from './errors.js';
import { fsyncDir, fsyncFile } from './files.js';
import { knownFunctions } from './app-names.js';
import { loadStaging } from './load.js';
import { databaseOf, planItems } from './plan.js';
import { readStatRows } from './database.js';
import { standInWarnings } from './restore-warnings.js';
import { removeAbandonedStaging, removeStagingFile, stagingPath } from './staging.js';

/** Default for `sessions: "wait"`: 5 minutes. */
const DEFAULT_TIMEOUT_MS = 5 * 60 * 1000;
const POLL_MS = 200;
/** How long the switch waits for another connection's lock, in milliseconds. */
const BUSY_TIMEOUT_MS = 2000;
const COMPANIONS = ['-journal', '-wal', '-shm'];

/** Another process with the file open. */
export interface FileHolder {
  pid: number;
  command: string;
}

/**
 * The other processes that have `file` (or its -wal) open, from /proc (Linux: processes whose
 * /proc/<pid>/fd this user may read); undefined where there is no /proc.
 */
export function fileHolders(file: string): FileHolder[] | undefined {
  let pids: string[];
  try {
    pids = fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n));
  } catch {
    return undefined;
  }
  const ids = new Set<string>();
  for (const f of [file, `${file}-wal`]) {
    try {
      const st = fs.statSync(f);
      ids.add(`${st.dev}:${st.ino}`);
    } catch {
      /* absent */
    }
  }
  const holders: FileHolder[] = [];
  for (const pid of pids) {
    if (Number(pid) === process.pid) continue;
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    const holds = fds.some((fd) => {
      try {
        const st = fs.statSync(`/proc/${pid}/fd/${fd}`);
        return ids.has(`${st.dev}:${st.ino}`);
      } catch {
        return false;
      }
    });
    if (!holds) continue;
    let command = '?';
    try {
      command = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    } catch {
      /* gone meanwhile */
    }
    holders.push({ pid: Number(pid), command });
  }
  return holders;
}

function holdersMessage(file: string, holders: FileHolder[], extra = ''): string {
  const list = holders.slice(0, 10).map((h) => `pid ${h.pid} (${h.command})`).join(', ');
  return (
    `Cannot replace ${file}: ${holders.length} other process(es) have it open: ${list}${holders.length > 10 ? ` and ${holders.length - 10} more` : ''}; nothing was changed.${extra} ` +
    'After the switch they would go on with the old file (and a write through them could damage the new one): stop them, or restore with --sessions wait (until they close it).'
  );
}

/**
 * Applies the sessions policy to the processes holding `file`: returns when none is left.
 * Errors: ConflictError (refuse; wait past its deadline), the signal's reason on abort.
 */
async function settleHolders(file: string, policy: SessionsPolicy, deadline: number, signal: AbortSignal | undefined): Promise<void> {
  for (;;) {
    throwIfAborted(signal);
    const holders = fileHolders(file) ?? [];
    if (holders.length === 0) return;
    if (policy === 'refuse') throw new ConflictError(holdersMessage(file, holders));
    if (Date.now() >= deadline) throw new ConflictError(holdersMessage(file, holders, ' They still had it open when --sessions-timeout ran out.'));
    await sleep(POLL_MS, signal).catch(() => throwIfAborted(signal));
  }
}

/** Opens the existing target for the switch, refusing cairn's own catalog. */
function openTarget(file: string): BetterSqlite3.Database {
  refuseProtectedFile(file, 'restore');
  let db: BetterSqlite3.Database | undefined;
  try {
    db = new Database(file, { fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
    refuseServerCatalog(db, file, 'restore');
    return db;
  } catch (err) {
    db?.close();
    throw sqliteError(explainOpenFailure(err, file, 'restore'), `Cannot open restore target ${file}`);
  }
}

/**
 * Replaces the SQLite file at `file` (which exists) with the backup, see the module comment.
 * Errors: UsageError (sessions "terminate"), ConflictError (processes holding the file),
 * ServerCatalogError, CorruptionError / SourceError from the load, the signal's reason on abort;
 * in every case before the rename the target is as it was.
 */
export async function replaceFile(file: string, items: RestoreItem[], options: RestoreOptions): Promise<RestoreResult> {
  const { signal } = options;
  const policy = options.sessions ?? 'refuse';
  if (policy === 'terminate') {
    throw new UsageError('--sessions terminate: cairn does not end processes that have a SQLite file open; stop them, or use --sessions wait (until they close it) or refuse.');
  }
  const deadline = Date.now() + (options.sessionsTimeoutMs ?? DEFAULT_TIMEOUT_MS);
  // The file itself, not a symbolic link to it: the rename replaces the name it is under.
  const real = fs.realpathSync(file);
  if (path.dirname(real) !== path.dirname(file)) removeAbandonedStaging(path.dirname(real));
  openTarget(real).close();
  // Refused now rather than after the load.
  if (policy === 'refuse') await settleHolders(real, policy, deadline, signal);
  const plan = planItems(items);
  const database = databaseOf(items);
  const stats = database !== undefined ? await readStatRows(database) : [];
  const staging = stagingPath(real);
  const warnings: string[] = [];
  try {
    const rows = await loadStaging(staging, plan, signal, options.onProgress, database && { def: database.def, stats }, undefined, warnings);
    await fsyncFile(staging);
    keepPermissions(real, staging);
    await settleHolders(real, policy, deadline, signal);
    throwIfAborted(signal);
    options.onFinalizing?.();
    await switchFile(real, staging, policy, deadline);
    warnings.push(...standInWarnings(real, plan, knownFunctions()));
    return { collections: plan.length, rows, ...(warnings.length > 0 ? { warnings } : {}) };
  } finally {
    removeStagingFile(staging);
  }
}

/** The old file's permission bits, and its owner and group where this user may set them. */
function keepPermissions(real: string, staging: string): void {
  const st = fs.statSync(real);
  fs.chmodSync(staging, st.mode & 0o7777);
  try {
    fs.chownSync(staging, st.uid, st.gid);
  } catch {
    /* not root: the new file is this user's */
  }
}

/**
 * The switch itself (module comment, steps 1–3). Processes that opened the file since the last
 * look: under "wait" the switch lets go and tries again until the deadline.
 */
async function switchFile(real: string, staging: string, policy: SessionsPolicy, deadline: number): Promise<void> {
  for (;;) {
    const db = openTarget(real);
    let wal = false;
    let switched = false;
    try {
      wal = String(db.pragma('journal_mode', { simple: true })).toLowerCase() === 'wal';
      if (wal) {
        let mode: string;
        try {
          mode = String(db.pragma('journal_mode = DELETE', { simple: true })).toLowerCase();
        } catch (err) {
          if ((err as { code?: string }).code?.startsWith('SQLITE_BUSY') !== true) throw err;
          mode = 'wal';
        }
        if (mode !== 'delete') {
          const holders = fileHolders(real) ?? [];
          if (policy === 'wait' && Date.now() < deadline) {
            wal = false; // still in WAL mode: nothing to set back
            db.close();
            await sleep(POLL_MS);
            continue;
          }
          throw new ConflictError(
            holders.length > 0
              ? holdersMessage(real, holders)
              : `Cannot replace ${real}: another connection has it open (it is in WAL mode, which SQLite leaves only when no other connection is open); nothing was changed. Close it, or restore with --sessions wait.`,
          );
        }
      }
      let locked = true;
      try {
        db.exec('BEGIN EXCLUSIVE');
      } catch (err) {
        // A reader or writer of another connection still in a transaction after the busy timeout.
        if ((err as { code?: string }).code?.startsWith('SQLITE_BUSY') !== true) throw err;
        locked = false;
      }
      const holders = fileHolders(real) ?? [];
      if (!locked || holders.length > 0) {
        if (db.inTransaction) db.exec('ROLLBACK');
        if (policy === 'wait' && Date.now() < deadline) {
          restoreWal(db, wal);
          wal = false;
          db.close();
          await sleep(POLL_MS);
          continue;
        }
        throw new ConflictError(
          holders.length > 0 ? holdersMessage(real, holders) : `Cannot replace ${real}: another connection kept it locked for ${BUSY_TIMEOUT_MS / 1000} s; nothing was changed. Retry, or restore with --sessions wait.`,
        );
      }
      // Under the exclusive lock no transaction of anyone is in progress: what companions are
      // left are not hot; removed before the rename, so none is ever beside the new file.
      for (const suffix of COMPANIONS) fs.rmSync(real + suffix, { force: true });
      fs.renameSync(staging, real);
      switched = true;
      fsyncDir(path.dirname(real));
      db.exec('COMMIT');
      return;
    } catch (err) {
      if (db.inTransaction) db.exec('ROLLBACK');
      if (!switched) restoreWal(db, wal);
      throw sqliteError(err, `Cannot replace ${real}`);
    } finally {
      db.close();
    }
  }
}

/** Sets a target the switch took out of WAL mode back into it (best effort). */
function restoreWal(db: BetterSqlite3.Database, wal: boolean): void {
  if (!wal || !db.open) return;
  try {
    db.pragma('journal_mode = WAL');
  } catch {
    /* it stays in rollback mode, its content unchanged */
  }
}
