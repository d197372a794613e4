/**
 * The sessions of one MySQL/MariaDB snapshot and the streams that read table data in them.
 *
 * Every session is a connection.ts session (stored bytes, UTC, permissive sql_mode) inside
 * `START TRANSACTION WITH CONSISTENT SNAPSHOT`, opened while the global lock held commits back,
 * so they all see one moment. A read takes a free session and runs `SELECT …`; each row packet
 * is encoded as mysql-tsv-v1 straight from the bytes received (rows.ts: no value objects) into
 * large buffers, and the socket is paused while a few of them wait for the consumer
 * (backpressure reaches the server).
 *
 * A read that does not finish (aborted, consumer stopped, server error) leaves its connection
 * in the middle of a result set: the session is dropped (socket destroyed) and the server told
 * to stop the statement (`KILL QUERY`, from a short session of its own), so the snapshot goes
 * on with the others.
 */
import type mysql from 'mysql2/promise';
import { CairnError, CancelledError, SourceError, throwIfAborted } from '../../core/errors.js';
import type { DataStream } from '../types.js';
import { connect, mysqlError, type MysqlSettings } from './connection.js';
import { TsvRowEncoder } from './rows.js';

/** A buffer is handed out once it holds this many bytes. */
export const YIELD_BYTES = 256 * 1024;
/** A read pauses the socket while this many buffers wait for the consumer… */
const MAX_READY = 4;
/** …and resumes it once no more than this many do. */
const RESUME_READY = 1;

/** The parts of mysql2's core connection and Query command a read uses (mysql2 3.x). */
interface CoreConnection {
  query(options: { sql: string }): RawQuery;
  pause(): void;
  resume(): void;
  on(event: 'error', listener: (err: unknown) => void): void;
  removeListener(event: 'error', listener: (err: unknown) => void): void;
}
interface RawQuery {
  /** The query's state for row packets: see read(). */
  row: (this: RawQuery, packet: RowPacket, connection: unknown) => unknown;
  /** Columns of the result set, known before its first row. */
  _fieldCount: number;
  on(event: 'error', listener: (err: unknown) => void): void;
  on(event: 'end', listener: () => void): void;
}
interface RowPacket {
  buffer: Buffer;
  /** Start of the payload (after the 4-byte header). */
  offset: number;
  /** End of the payload. */
  end: number;
  isEOF(): boolean;
}

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
    let encoder: TsvRowEncoder | undefined;
    async function* generate(): AsyncGenerator<Uint8Array> {
      let session: Session | undefined;
      let done = false;
      let failure: unknown;
      let wake: (() => void) | undefined;
      let core: CoreConnection | undefined;
      let lost: ((err: unknown) => void) | undefined;
      const notify = (): void => {
        const w = wake;
        wake = undefined;
        w?.();
      };
      const stop = (): void => {
        if (session !== undefined && !done) self.drop(session);
        failure ??= signal === undefined ? new CancelledError() : abortError(signal);
        notify();
      };
      try {
        throwIfAborted(signal);
        session = await self.acquire(signal);
        signal?.addEventListener('abort', stop, { once: true });
        const driver = (session.conn as unknown as { connection: CoreConnection }).connection;
        core = driver;
        let ended = false;
        let paused = false;
        const query = driver.query({ sql });
        const textRow = query.row;
        if (typeof textRow !== 'function') throw new Error('Internal error: this mysql2 version has no Query.row to read rows from.');
        // The driver hands every row packet to its query's `row` state: this one encodes the
        // packet's bytes straight into mysql-tsv-v1 (rows.ts) instead of building a row of
        // values, and pauses the socket while enough output waits for the consumer.
        const row = function (this: RawQuery, packet: RowPacket, connection: unknown): unknown {
          if (failure !== undefined) return row;
          if (packet.isEOF()) return textRow.call(this, packet, connection);
          try {
            encoder ??= new TsvRowEncoder(what, this._fieldCount, YIELD_BYTES);
            encoder.row(packet.buffer, packet.offset, packet.end);
            if (encoder.ready.length >= MAX_READY && !paused) {
              paused = true;
              driver.pause();
            }
            if (encoder.ready.length > 0) notify();
          } catch (err) {
            failure = err;
            if (!paused) {
              paused = true;
              driver.pause();
            }
            notify();
          }
          return row;
        };
        query.row = row;
        query.on('error', (err: unknown) => {
          failure ??= err;
          notify();
        });
        query.on('end', () => {
          ended = true;
          encoder?.flush();
          notify();
        });
        // A lost connection is reported to the connection, not to a query without a callback.
        lost = (err: unknown): void => {
          failure ??= err ?? new Error('The connection was lost.');
          notify();
        };
        driver.on('error', lost);
        for (;;) {
          if (failure !== undefined) throw failure;
          const chunk = encoder?.ready.shift();
          if (chunk !== undefined) {
            if (paused && (encoder?.ready.length ?? 0) <= RESUME_READY) {
              paused = false;
              // Replays the packets that arrived meanwhile: may fill `ready` (and pause) again.
              driver.resume();
            }
            yield chunk;
            continue;
          }
          if (ended) break;
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
        }
        done = true;
      } catch (err) {
        if (signal?.aborted) throw abortError(signal);
        if (err instanceof CairnError) throw err;
        if (self.closed) throw new SourceError(`Reading MySQL table ${what}: the snapshot was closed.`, { cause: err });
        throw new SourceError(`Reading MySQL table ${what}: ${mysqlError(err, self.settings).message}`, { cause: err });
      } finally {
        signal?.removeEventListener('abort', stop);
        if (lost !== undefined) core?.removeListener('error', lost);
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
        return encoder?.rows ?? 0;
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
