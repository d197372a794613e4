/**
 * One job runner per data folder. A second `cairn server` on a folder in use would mark the
 * first one's running jobs INTERRUPTED (they share the server id kept there) and run backups of
 * sources the first is backing up; so the folder is locked while a server (or an in-process
 * `schedule run-now`) uses it.
 *
 * The lock is an OS file lock (POSIX fcntl, taken through SQLite's exclusive locking mode on
 * <data-dir>/server.lock.db), not a pid file: the kernel drops it when the holder dies, even by
 * kill -9, so there is no stale lock to judge (no pid reuse, PID namespace or clock question),
 * and two processes racing for it cannot both win. Who holds it is written beside it, in
 * <data-dir>/server.lock (pid, host, start time, address), for the refusal message and for
 * people; a leftover of that file (a holder killed) is simply overwritten by the next holder.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { LockedError } from '../core/errors.js';
import { SqliteDatabase as Database } from '../catalog/engines.js';
import { makeDirsSync } from '../core/folders.js';

export interface DataDirHolder {
  /** What holds it: "cairn server" or "cairn schedule run-now". */
  command: string;
  pid: number;
  host: string;
  startedAt: string;
  /** A server's API address, once it listens. */
  url?: string;
}

export const lockFile = (dataDir: string): string => path.join(dataDir, 'server.lock.db');
const infoFile = (dataDir: string): string => path.join(dataDir, 'server.lock');

export class DataDirLock {
  private released = false;

  private constructor(
    readonly dataDir: string,
    private readonly db: BetterSqlite3.Database,
    private holder: DataDirHolder,
  ) {}

  /**
   * Takes the data folder's lock, or throws LockedError naming the process that holds it (its
   * pid, host, command and address) and the folder. Never waits.
   */
  static acquire(dataDir: string, command: string): DataDirLock {
    const dir = path.resolve(dataDir);
    makeDirsSync(dir, 0o700);
    const db = new Database(lockFile(dir), { timeout: 0 });
    try {
      // Exclusive locking mode keeps the file lock from the first write until the connection
      // closes (or the process dies): other processes cannot even read the file meanwhile.
      db.pragma('locking_mode = EXCLUSIVE');
      db.exec('BEGIN EXCLUSIVE');
      db.exec('CREATE TABLE IF NOT EXISTS holder (info TEXT NOT NULL)');
      db.exec('DELETE FROM holder');
      const holder: DataDirHolder = { command, pid: process.pid, host: os.hostname(), startedAt: new Date().toISOString() };
      db.prepare('INSERT INTO holder (info) VALUES (?)').run(JSON.stringify(holder));
      db.exec('COMMIT');
      const lock = new DataDirLock(dir, db, holder);
      lock.writeInfo();
      return lock;
    } catch (err) {
      db.close();
      const code = (err as { code?: string }).code ?? '';
      if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) throw inUse(dir, readHolder(dir));
      if (code.startsWith('SQLITE_NOTADB') || code.startsWith('SQLITE_CORRUPT')) {
        throw new LockedError(`${lockFile(dir)} is not the lock file cairn writes (${(err as Error).message}); if no cairn server uses ${dir}, delete it and start again.`);
      }
      throw err;
    }
  }

  /** Records the server's address, for the message a second process gets. */
  setUrl(url: string): void {
    this.holder = { ...this.holder, url };
    this.writeInfo();
  }

  /** Releases the lock (idempotent). The info file goes first, while the lock is still held. */
  release(): void {
    if (this.released) return;
    this.released = true;
    try {
      fs.rmSync(infoFile(this.dataDir), { force: true });
    } finally {
      this.db.close();
    }
  }

  private writeInfo(): void {
    // Written whole then renamed, so a reader never sees half of it.
    const tmp = `${infoFile(this.dataDir)}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, `${JSON.stringify(this.holder)}\n`, { mode: 0o600 });
    fs.renameSync(tmp, infoFile(this.dataDir));
  }
}

function readHolder(dir: string): DataDirHolder | undefined {
  try {
    const h = JSON.parse(fs.readFileSync(infoFile(dir), 'utf8')) as DataDirHolder;
    return typeof h.pid === 'number' ? h : undefined;
  } catch {
    return undefined; // it is being written or was never written: the message says less
  }
}

/** The error for a folder in use; `holder` may be unknown (the holder is starting). */
export function inUse(dir: string, holder: DataDirHolder | undefined): LockedError {
  const who = holder
    ? `${holder.command} (pid ${holder.pid} on ${holder.host}, since ${holder.startedAt}${holder.url ? `, listening on ${holder.url}` : ''})`
    : 'another cairn process';
  const hint = holder?.url
    ? `use that server (--server ${holder.url}), stop it first, or give this one another --data-dir`
    : 'stop it first, or give this one another --data-dir';
  return new LockedError(`The data folder ${dir} is in use by ${who}: one cairn server per data folder; ${hint}.`);
}
