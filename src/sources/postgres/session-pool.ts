/**
 * The sessions of one PostgreSQL snapshot, and the COPY streams that read table data in them.
 *
 * A pool has the main session (the one that exported the snapshot, took the table locks and
 * holds them until close) and up to `jobs - 1` worker sessions, opened lazily, each of which
 * imports the snapshot (`SET TRANSACTION SNAPSHOT`): every session reads the database as it was
 * when the snapshot was taken. A COPY takes a free session (the main one first); a worker first
 * takes its own ACCESS SHARE lock with NOWAIT, and when it cannot (a DDL statement is queued
 * behind the backup's lock), the table is read in the main session instead, which holds the lock
 * already: the backup never deadlocks with the queued statement.
 *
 * Every COPY runs under a savepoint, so that a COPY that did not finish (aborted, consumer
 * stopped, server error) can be cancelled (protocol CancelRequest) and rolled back, leaving the
 * session usable; a session that does not come back is marked broken and dropped (the main
 * session broken ends the backup: its locks are gone).
 */
import net from 'node:net';
import type { Readable } from 'node:stream';
import type pg from 'pg';
import { CancelledError, CairnError, SourceError, throwIfAborted } from '../../core/errors.js';
import type { DataStream } from '../types.js';
import { quoteIdent, quoteLiteral, type CatalogRelation } from './catalog.js';
import { connect, pgError, type PgConnectionSettings } from './connection.js';
import { copyOut, type CopyOutStream } from './copy-out.js';

/** How long taking a table lock may wait by default, in ms. */
export const DEFAULT_LOCK_TIMEOUT_MS = 30_000;

/** Session settings for reading data the way pg_dump does. */
export const SESSION_SETUP = [
  "SET DateStyle = 'ISO'",
  "SET IntervalStyle = 'postgres'",
  'SET extra_float_digits = 3',
  "SET search_path = ''",
  'SET row_security = off',
  'SET statement_timeout = 0',
  'SET idle_in_transaction_session_timeout = 0',
].join('; ');

/** One session of the pool and its state. */
export interface Session {
  client: pg.Client;
  main: boolean;
  busy: boolean;
  /** Unusable: closed, or left in an unknown state. */
  broken: boolean;
  /**
   * The savepoint of the last COPY, which finished, is still open: it is released together with
   * the next statement (one round trip per table less; 10,000 tables make that count).
   */
  savepointOpen?: boolean;
}

/**
 * The sessions of one snapshot (see the module comment). The main session is busy until its
 * owner clears `main.busy` (after reading the catalog and taking the locks); `snapshotId` must be
 * set before the first worker is opened. Every method throws SourceError('PostgreSQL snapshot
 * is closed.') once close() was called.
 */
export class SessionPool {
  /** The exported snapshot the workers import (pg_export_snapshot()). */
  snapshotId = '';
  /**
   * The database's encoding, which workers take as client_encoding (set before the first worker
   * opens): COPY then hands over the stored bytes unconverted, as pg_dump does. undefined: UTF8.
   */
  clientEncoding: string | undefined;
  /** How identifiers are written in the sessions' statements under that encoding (catalog.ts identQuoter). */
  quote: (name: string) => string = quoteIdent;
  readonly main: Session;
  private readonly workers: Session[] = [];
  private connecting = 0;
  private readonly waiters: (() => void)[] = [];
  private closing: Promise<void> | undefined;

  /**
   * `client`: the main session, its snapshot transaction open; `jobs`: sessions at most (main
   * included); `lockTimeoutMs`: the workers' lock_timeout (default DEFAULT_LOCK_TIMEOUT_MS).
   */
  constructor(
    private readonly settings: PgConnectionSettings,
    client: pg.Client,
    private readonly jobs: number,
    private readonly lockTimeoutMs: number | undefined,
  ) {
    this.main = { client, main: true, busy: true, broken: false };
  }

  /** Whether close() was called. */
  get closed(): boolean {
    return this.closing !== undefined;
  }

  /**
   * A stream of the rows `sql` (a `COPY … TO STDOUT`) reads from the table `relation`, in a free
   * session of the pool; `name` is the collection's name, for messages. rowCount counts the
   * rows read so far. The stream's pieces are batches of rows of up to 256 KiB (copy-out.ts). Errors: SourceError (the server's, mapped; the snapshot closed), the
   * signal's reason (a CairnError) or CancelledError on abort.
   */
  copy(relation: CatalogRelation, name: string, sql: string, signal: AbortSignal | undefined): DataStream {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    let rowCount = 0;
    async function* generate(): AsyncGenerator<Uint8Array> {
      throwIfAborted(signal);
      let session = await self.acquire(false, signal);
      let stream: CopyOutStream | undefined;
      let done = false;
      let cancelled: Promise<void> | undefined;
      const cancel = (): void => {
        if (stream !== undefined && !done && cancelled === undefined) cancelled = cancelBackend(self.settings, session.client);
      };
      signal?.addEventListener('abort', cancel, { once: true });
      try {
        if (!session.main && !(await self.lockInWorker(session, relation))) {
          // A lock request is queued behind the backup's own lock: read in the main session,
          // which holds the lock already.
          self.release(session);
          session = await self.acquire(true, signal);
          await session.client.query(savepointSql(session));
        } else if (session.main) {
          await session.client.query(savepointSql(session));
        }
        // No await between this check and `stream` being set: cancel needs the stream.
        throwIfAborted(signal);
        const copy = session.client.query(copyOut(sql));
        stream = copy;
        for await (const chunk of copy.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
          rowCount = copy.rows;
          yield chunk;
          throwIfAborted(signal);
        }
        rowCount = copy.rows;
        done = true;
        session.savepointOpen = true;
      } catch (err) {
        if (signal?.aborted) throw abortError(signal);
        if (err instanceof CairnError) throw err;
        if (self.closed) throw new SourceError(`Reading PostgreSQL table ${name}: the snapshot was closed.`, { cause: err });
        const mapped = pgError(err, self.settings);
        throw new SourceError(`Reading PostgreSQL table ${name}: ${mapped.message}`, { cause: err });
      } finally {
        signal?.removeEventListener('abort', cancel);
        if (!done) await self.recover(session, stream, cancel, () => cancelled);
        self.release(session);
      }
    }
    return {
      get rowCount() {
        return rowCount;
      },
      [Symbol.asyncIterator]: generate,
    };
  }

  /** SAVEPOINT, then LOCK … NOWAIT in a worker (one round trip); false when the lock is not free right now. */
  private async lockInWorker(session: Session, r: CatalogRelation): Promise<boolean> {
    try {
      await session.client.query(`${savepointSql(session)}; LOCK TABLE ONLY ${this.quote(r.schema)}.${this.quote(r.name)} IN ACCESS SHARE MODE NOWAIT`);
      return true;
    } catch (err) {
      if ((err as { code?: string }).code !== '55P03') throw err;
      await session.client.query('ROLLBACK TO SAVEPOINT cairn_copy');
      await session.client.query('RELEASE SAVEPOINT cairn_copy');
      return false;
    }
  }

  /**
   * After a COPY that did not finish (aborted, consumer stopped, server error): stop it, and
   * bring the session back to the state before the COPY (its savepoint), or mark it broken.
   */
  private async recover(
    session: Session,
    stream: Readable | undefined,
    cancel: () => void,
    cancelled: () => Promise<void> | undefined,
  ): Promise<void> {
    if (session.broken || this.closed) return;
    try {
      if (stream !== undefined && !stream.readableEnded && !stream.errored) {
        cancel();
        await withTimeout(drain(stream), 10_000);
      }
      await cancelled();
      // A cancel that arrived after the COPY ended can hit the next statement: retry until
      // the session answers cleanly.
      for (let attempt = 0; ; attempt++) {
        try {
          await session.client.query('ROLLBACK TO SAVEPOINT cairn_copy');
          await session.client.query('SELECT 1');
          await session.client.query('RELEASE SAVEPOINT cairn_copy');
          session.savepointOpen = false;
          return;
        } catch (err) {
          if ((err as { code?: string }).code !== '57014' || attempt >= 2) throw err;
        }
      }
    } catch {
      this.markBroken(session);
    }
  }

  private markBroken(session: Session): void {
    session.broken = true;
    destroyClient(session.client);
    if (!session.main) this.workers.splice(this.workers.indexOf(session), 1);
  }

  /** A session to COPY in: the main one when free, else a worker (opened lazily, up to jobs - 1). */
  private async acquire(mainOnly: boolean, signal: AbortSignal | undefined): Promise<Session> {
    for (;;) {
      throwIfAborted(signal);
      this.assertOpen();
      if (this.main.broken) {
        throw new SourceError('The PostgreSQL snapshot session was lost after an interrupted read; retry the backup.');
      }
      if (!this.main.busy) {
        this.main.busy = true;
        return this.main;
      }
      if (!mainOnly) {
        const idle = this.workers.find((w) => !w.busy && !w.broken);
        if (idle !== undefined) {
          idle.busy = true;
          return idle;
        }
        if (this.workers.length + this.connecting < this.jobs - 1) {
          this.connecting++;
          try {
            const worker = await this.openWorker();
            worker.busy = true;
            this.workers.push(worker);
            return worker;
          } finally {
            this.connecting--;
          }
        }
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

  private async openWorker(): Promise<Session> {
    const client = await connect(this.settings, undefined, { lockTimeoutMs: this.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS });
    try {
      await client.query(SESSION_SETUP);
      if (this.clientEncoding !== undefined) await client.query("SELECT set_config('client_encoding', $1, false)", [this.clientEncoding]);
      await client.query(
        `BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT ${quoteLiteral(this.snapshotId)}`,
      );
    } catch (err) {
      destroyClient(client);
      throw pgError(err, this.settings);
    }
    if (this.closed) {
      destroyClient(client);
      this.assertOpen();
    }
    return { client, main: false, busy: false, broken: false };
  }

  /**
   * Ends every session: idle ones roll back and log out (5 s each at most), busy ones (a COPY may
   * be in flight) are dropped. Waiting acquirers wake up and fail. Idempotent; never throws.
   */
  async close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    for (const wake of this.waiters.splice(0)) wake();
    const sessions = [...this.workers.splice(0), this.main];
    await Promise.all(
      sessions.map(async (session) => {
        if (session.broken) return;
        session.broken = true;
        if (session.busy) {
          // A COPY may be in flight: the connection cannot take another statement until it
          // ends, and the transaction only read, so dropping the connection loses nothing.
          destroyClient(session.client);
          return;
        }
        try {
          await withTimeout(session.client.query('ROLLBACK'), 5_000);
          await withTimeout(session.client.end(), 5_000);
        } catch {
          destroyClient(session.client);
        }
      }),
    );
  }

  /** Throws SourceError once the pool (the snapshot) is closed. */
  assertOpen(): void {
    if (this.closing !== undefined) throw new SourceError('PostgreSQL snapshot is closed.');
  }
}

/** A new savepoint before a COPY, releasing the previous COPY's in the same statement. */
function savepointSql(session: Session): string {
  const sql = session.savepointOpen ? 'RELEASE SAVEPOINT cairn_copy; SAVEPOINT cairn_copy' : 'SAVEPOINT cairn_copy';
  session.savepointOpen = false;
  return sql;
}

/** The signal's reason when it is a CairnError (a lost session, …), else a CancelledError. */
export function abortError(signal: AbortSignal): CairnError {
  const reason: unknown = signal.reason;
  return reason instanceof CairnError ? reason : new CancelledError();
}

/** Asks the server to cancel what `client` is running (protocol CancelRequest, no login). */
export function cancelBackend(s: PgConnectionSettings, client: pg.Client): Promise<void> {
  const { processID, secretKey } = client as unknown as { processID: number | null; secretKey: number | null };
  if (processID === null || secretKey === null) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const socket = s.host.startsWith('/')
      ? net.connect({ path: `${s.host}/.s.PGSQL.${s.port}` })
      : net.connect({ host: s.host, port: s.port });
    const packet = Buffer.alloc(16);
    packet.writeInt32BE(16, 0);
    packet.writeInt32BE(80877102, 4);
    packet.writeInt32BE(processID, 8);
    packet.writeInt32BE(secretKey, 12);
    socket.setTimeout(5_000, () => socket.destroy());
    socket.on('connect', () => socket.end(packet));
    socket.on('error', () => resolve());
    socket.on('close', () => resolve());
  });
}

/** Drops a connection without waiting for the server (e.g. in the middle of a COPY). */
function destroyClient(client: pg.Client): void {
  const connection = (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection;
  connection?.stream?.destroy();
  client.end().catch(() => undefined);
}

/** Reads a COPY stream to its end or error, discarding data. */
function drain(stream: Readable): Promise<void> {
  return new Promise<void>((resolve) => {
    if (stream.readableEnded || stream.errored) return resolve();
    stream.on('end', () => resolve());
    stream.on('error', () => resolve());
    stream.on('close', () => resolve());
    stream.on('data', () => undefined);
    stream.resume();
  });
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
