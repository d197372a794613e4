/**
 * The sessions of one MySQL/MariaDB snapshot and the streams that read table data in them.
 *
 * Every session is a connection.ts session (stored bytes, UTC, permissive sql_mode) inside
 * `START TRANSACTION WITH CONSISTENT SNAPSHOT`, opened while the global lock held commits back,
 * so they all see one moment. A read takes a free session, streams `SELECT …` row by row
 * (mysql2 pauses the socket when the consumer is behind: backpressure reaches the server) and
 * encodes each row as mysql-tsv-v1 (format.ts) into large buffers.
 *
 * A read that does not finish (aborted, consumer stopped, server error) leaves its connection
 * in the middle of a result set: the session is dropped (socket destroyed) and the server told
 * to stop the statement (`KILL QUERY`, from a short session of its own), so the snapshot goes
 * on with the others.
 */
import type { Readable } from 'node:stream';
import type mysql from 'mysql2/promise';
import { CairnError, CancelledError, SourceError, throwIfAborted } from '../../core/errors.js';
import type { DataStream } from '../types.js';
import { connect, mysqlError, type MysqlSettings } from './connection.js';
import { escapeInto, NULL_FIELD } from './format.js';

/** A buffer is handed out once it holds this many bytes. */
export const YIELD_BYTES = 256 * 1024;

/** One row of a query, each value the bytes the server sent (null for NULL). */
export type RawRow = (Buffer | null)[];

const asBytes = (field: { buffer(): Buffer | null }): Buffer | null => field.buffer();

/**
 * Runs `sql` and returns its rows as raw bytes (never decoded by the driver: a latin1 value
 * stays latin1). Throws the driver's error (callers map it with mysqlError).
 */
export async function queryRaw(conn: mysql.Connection, sql: string): Promise<RawRow[]> {
  const [rows] = await conn.query({ sql, rowsAsArray: true, typeCast: asBytes as never });
  return Array.isArray(rows) ? (rows as unknown as RawRow[]) : [];
}

/** Runs `sql` and returns its rows as text (UTF-8: catalog values, names, SHOW CREATE statements). */
export async function queryText(conn: mysql.Connection, sql: string): Promise<(string | null)[][]> {
  return (await queryRaw(conn, sql)).map((r) => r.map((v) => (v === null ? null : v.toString('utf8'))));
}

/** One snapshot session. */
export interface Session {
  conn: mysql.Connection;
  /** The server's connection id (KILL QUERY). */
  threadId: number;
  busy: boolean;
  /** Unusable: lost, or left in the middle of a result set. */
  broken: boolean;
}

/** A session set up for the snapshot; `lockTimeoutMs`: lock_wait_timeout (metadata locks). */
export async function openSession(settings: MysqlSettings, lockTimeoutMs: number): Promise<Session> {
  const conn = await connect(settings, { lockTimeoutMs });
  const threadId = (conn as unknown as { threadId?: number }).threadId ?? (conn as unknown as { connection: { threadId: number } }).connection.threadId;
  return { conn, threadId, busy: false, broken: false };
}

/** Starts the session's snapshot transaction (REPEATABLE READ, consistent snapshot). */
export async function startSnapshot(session: Session): Promise<void> {
  await session.conn.query('SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ');
  await session.conn.query('START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY');
}

/** Drops a connection at once (a result set may be in flight). */
export function destroySession(session: Session): void {
  session.broken = true;
  try {
    (session.conn as unknown as { connection: { destroy(): void } }).connection.destroy();
  } catch {
    // Already gone.
  }
}

/** Asks the server to stop what `threadId` runs, from a short session of its own; never throws. */
export async function killQuery(settings: MysqlSettings, threadId: number): Promise<void> {
  try {
    const conn = await connect(settings, { database: '' });
    try {
      await conn.query(`KILL QUERY ${Math.floor(threadId)}`);
    } finally {
      await conn.end().catch(() => undefined);
    }
  } catch {
    // The statement ends anyway when the server next writes to the closed socket.
  }
}

/** The signal's reason when it is a CairnError, else a CancelledError. */
export function abortError(signal: AbortSignal): CairnError {
  const reason: unknown = signal.reason;
  return reason instanceof CairnError ? reason : new CancelledError();
}

/**
 * The snapshot's read sessions: readers wait for a free one. Methods throw SourceError once
 * close() was called.
 */
export class SessionPool {
  private readonly waiters: (() => void)[] = [];
  private closing: Promise<void> | undefined;
  /** KILL QUERY requests in flight: close() waits for them. */
  private readonly kills = new Set<Promise<void>>();

  constructor(
    private readonly settings: MysqlSettings,
    readonly sessions: Session[],
  ) {}

  get closed(): boolean {
    return this.closing !== undefined;
  }

  assertOpen(): void {
    if (this.closing !== undefined) throw new SourceError('MySQL snapshot is closed.');
  }

  /**
   * A stream of the rows of `sql` (a SELECT of a table's read expressions) as mysql-tsv-v1, read in
   * a free session; `what` names the table for messages; `onEnd` runs once the stream has ended
   * (read to the end or not). rowCount counts the rows read so far. Errors: SourceError, the
   * signal's reason (a CairnError) or CancelledError on abort.
   */
  read(sql: string, what: string, signal: AbortSignal | undefined, onEnd?: () => void): DataStream {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    let rowCount = 0;
    async function* generate(): AsyncGenerator<Uint8Array> {
      let session: Session | undefined;
      let stream: Readable | undefined;
      let done = false;
      const stop = (): void => {
        if (session !== undefined && !done) self.drop(session);
      };
      try {
        throwIfAborted(signal);
        session = await self.acquire(signal);
        signal?.addEventListener('abort', stop, { once: true });
        const core = (session.conn as unknown as { connection: { query(o: object): { stream(o: object): Readable } } }).connection;
        // Few rows buffered ahead: a row may hold a huge value (backpressure pauses the socket).
        stream = core.query({ sql, rowsAsArray: true, typeCast: asBytes }).stream({ highWaterMark: 16 });
        let out = Buffer.allocUnsafe(YIELD_BYTES * 2);
        let pos = 0;
        for await (const row of stream.iterator({ destroyOnReturn: false }) as AsyncIterable<RawRow>) {
          for (let i = 0; i < row.length; i++) {
            const v = row[i] as Buffer | null;
            // Room for the worst case: every byte escaped, plus the separator.
            if (v !== null && v.length > YIELD_BYTES) {
              // A huge value is escaped slice by slice into buffers of the usual size: it is
              // held once (as the driver received it), never copied whole.
              if (i > 0) {
                if (pos + 1 > out.length) {
                  yield out.subarray(0, pos);
                  out = Buffer.allocUnsafe(YIELD_BYTES * 2 + 2);
                  pos = 0;
                }
                out[pos++] = 0x09;
              }
              for (let at = 0; at < v.length; at += YIELD_BYTES) {
                if (pos + YIELD_BYTES * 2 > out.length) {
                  yield out.subarray(0, pos);
                  out = Buffer.allocUnsafe(YIELD_BYTES * 2 + 2);
                  pos = 0;
                }
                pos = escapeInto(v.subarray(at, Math.min(v.length, at + YIELD_BYTES)), out, pos);
              }
              continue;
            }
            const need = 1 + (v === null ? 2 : v.length * 2);
            if (pos + need + 1 > out.length) {
              yield out.subarray(0, pos);
              out = Buffer.allocUnsafe(YIELD_BYTES * 2 + 2);
              pos = 0;
            }
            if (i > 0) out[pos++] = 0x09;
            if (v === null) pos += NULL_FIELD.copy(out, pos);
            else pos = escapeInto(v, out, pos);
          }
          if (pos + 1 > out.length) {
            yield out.subarray(0, pos);
            out = Buffer.allocUnsafe(YIELD_BYTES * 2 + 2);
            pos = 0;
          }
          out[pos++] = 0x0a;
          rowCount++;
          if (pos >= YIELD_BYTES) {
            yield out.subarray(0, pos);
            out = Buffer.allocUnsafe(YIELD_BYTES * 2 + 2);
            pos = 0;
          }
          if (signal?.aborted) throw abortError(signal);
        }
        done = true;
        if (pos > 0) yield out.subarray(0, pos);
      } catch (err) {
        if (signal?.aborted) throw abortError(signal);
        if (err instanceof CairnError) throw err;
        if (self.closed) throw new SourceError(`Reading MySQL table ${what}: the snapshot was closed.`, { cause: err });
        throw new SourceError(`Reading MySQL table ${what}: ${mysqlError(err, self.settings).message}`, { cause: err });
      } finally {
        signal?.removeEventListener('abort', stop);
        if (session !== undefined) {
          // A result set not read to its end keeps the connection busy: drop the session.
          if (!done) self.drop(session);
          self.release(session);
        }
        onEnd?.();
      }
    }
    return {
      get rowCount() {
        return rowCount;
      },
      [Symbol.asyncIterator]: generate,
    };
  }

  /** Ends a session whose statement did not finish, and stops the statement on the server. */
  private drop(session: Session): void {
    if (session.broken) return;
    destroySession(session);
    const kill = killQuery(this.settings, session.threadId);
    this.kills.add(kill);
    void kill.finally(() => this.kills.delete(kill));
  }

  private async acquire(signal: AbortSignal | undefined): Promise<Session> {
    for (;;) {
      throwIfAborted(signal);
      this.assertOpen();
      const live = this.sessions.filter((s) => !s.broken);
      if (live.length === 0) throw new SourceError('Every MySQL snapshot session was lost (interrupted reads or a lost connection); retry the backup.');
      const idle = live.find((s) => !s.busy);
      if (idle !== undefined) {
        idle.busy = true;
        return idle;
      }
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          signal?.removeEventListener('abort', wake);
          resolve();
        };
        this.waiters.push(wake);
        signal?.addEventListener('abort', wake, { once: true });
      });
    }
  }

  private release(session: Session): void {
    session.busy = false;
    for (const wake of this.waiters.splice(0)) wake();
  }

  /**
   * Ends every session: idle ones roll back and log out (5 s each at most), busy ones are dropped.
   * Waiting readers wake up and fail. Idempotent; never throws.
   */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    for (const wake of this.waiters.splice(0)) wake();
    await Promise.all(this.sessions.map((s) => endSession(s)));
    await Promise.all([...this.kills]);
  }
}

/** ROLLBACK and log out (a busy or broken session is dropped); never throws. */
export async function endSession(s: Session): Promise<void> {
  if (s.broken) return;
  if (s.busy) {
    destroySession(s);
    return;
  }
  s.broken = true;
  try {
    await withTimeout(s.conn.query('ROLLBACK'), 5_000);
    await withTimeout(s.conn.end(), 5_000);
  } catch {
    destroySession(s);
  }
}

export function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
