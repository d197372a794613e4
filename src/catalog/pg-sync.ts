/**
 * The shared PostgreSQL catalog behind the stores' synchronous CatalogDb surface (sql.ts).
 *
 * Why synchronous: every store was written against better-sqlite3, whose calls return at once,
 * and their callers (routes, the scheduler, the CLI) rely on it — a schedule's "read, decide,
 * record the run" has no await in it, so no other request of the process interleaves. Keeping
 * that contract for PostgreSQL keeps one store implementation for both catalogs, tested by the
 * same tests. The statements run in a worker thread that owns one `pg` connection; the calling
 * thread posts a statement and waits on a shared flag (Atomics.wait) for the answer, as
 * synckit does. A statement on loopback costs about what a SQLite write with fsync costs (see
 * docs/deployment.md for the figure); the wait is bounded (`timeoutMs`), as SQLite's busy
 * timeout bounds a wait for its lock.
 *
 * Coordination between replicas is PostgreSQL's: unique keys (a due time is recorded once),
 * conditional updates (a drill's due time is claimed once) and, for transactions, one advisory
 * transaction lock (CATALOG_TX_LOCK_KEY) that serialises catalog transactions across replicas
 * the way SQLite's write lock does on one file.
 */
import { createRequire } from 'node:module';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { clientConfig, parsePostgresUrl, pgError, pgLocation, type PgConnectionSettings } from '../sources/postgres/connection.js';
import { CairnError, SourceError } from '../core/errors.js';
import type { CatalogKey } from './catalog-key.js';
import type { CatalogDb, CatalogStatement, CatalogTransaction } from './sql.js';

/** How long statements fail fast after the catalog could not be reached, ms. */
const DOWN_FOR_MS = 2000;

/** pg_advisory_xact_lock's key for catalog transactions ("cairn" + "tx"). */
export const CATALOG_TX_LOCK_KEY = 0x636169726e7478n;

const WORKER_CODE = `
'use strict';
const { workerData } = require('node:worker_threads');
const pg = require(workerData.pgPath);
// int8 (count(*), ids, ms times) as numbers: every value the catalog keeps is below 2^53.
pg.types.setTypeParser(20, (v) => Number(v));
const { port, flag, config, keepIdentityCheck } = workerData;
const signal = new Int32Array(flag);
let client = null;
const connect = async () => {
  const ssl = config.ssl ? { ...config.ssl, ...(keepIdentityCheck ? {} : { checkServerIdentity: () => undefined }) } : config.ssl;
  const c = new pg.Client({ ...config, ssl });
  c.on('error', () => { if (client === c) client = null; });
  await c.connect();
  return c;
};
// An error of the connection (not of the statement): the next statement reconnects.
const broken = (err) => !/^[0-9A-Z]{5}$/.test(String(err && err.code)) || /^(08|57P)/.test(String(err.code));
// The answer carries its request's id; the counter tells the waiting thread that one is there.
let id = 0;
const answer = (reply) => {
  port.postMessage({ ...reply, id });
  Atomics.add(signal, 0, 1);
  Atomics.notify(signal, 0);
};
port.on('message', async (req) => {
  id = req.id;
  if (req.close) {
    if (client) await client.end().catch(() => undefined);
    client = null;
    return answer({ rows: [], rowCount: 0 });
  }
  for (let attempt = 0; ; attempt++) {
    try {
      if (!client) {
        if (req.inTransaction) throw Object.assign(new Error('the connection to the catalog was lost in the middle of a transaction'), { code: 'ECONNRESET' });
        client = await connect();
      }
      const r = await client.query(req.params ? { text: req.sql, values: req.params } : req.sql);
      const last = Array.isArray(r) ? r[r.length - 1] : r;
      return answer({ rows: (last && last.rows) || [], rowCount: (last && last.rowCount) || 0 });
    } catch (err) {
      const lost = broken(err);
      if (lost && client) { client.end().catch(() => undefined); client = null; }
      // Outside a transaction a statement whose connection had dropped (the catalog restarted) is tried once more.
      if (lost && attempt === 0 && !req.inTransaction) continue;
      return answer({ error: { message: String(err && err.message), code: err && err.code, constraint: err && err.constraint } });
    }
  }
});
`;

interface Reply {
  id: number;
  rows: Record<string, unknown>[];
  rowCount: number;
  error?: { message: string; code?: string; constraint?: string };
}

/** `?` placeholders as `$1…` (outside quoted text) and SQLite's INSERT OR IGNORE as ON CONFLICT DO NOTHING. */
export function toPostgresSql(sql: string): string {
  let out = '';
  let n = 0;
  let quote: string | null = null;
  for (const ch of sql) {
    if (quote !== null) {
      if (ch === quote) quote = null;
      out += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      out += ch;
    } else out += ch === '?' ? `$${++n}` : ch;
  }
  const ignore = /^\s*INSERT\s+OR\s+IGNORE\s+/i;
  return ignore.test(out) ? `${out.replace(ignore, 'INSERT ')} ON CONFLICT DO NOTHING` : out;
}

export interface PgCatalogDbOptions {
  /** Seals the secrets kept in the catalog (CAIRN_CATALOG_KEY). */
  key: CatalogKey;
  /** Longest wait for one statement, ms (default 30 000); the statement itself is limited to 20 s. */
  timeoutMs?: number;
}

export class PgCatalogDb implements CatalogDb {
  readonly dialect = 'postgres' as const;
  private worker: Worker | undefined;
  private port: MessagePort | undefined;
  private readonly flag = new Int32Array(new SharedArrayBuffer(4));
  private readonly statements = new Map<string, string>();
  /** The id of the latest request: an answer with another id is a stale one (of a request that timed out). */
  private requestId = 0;
  private holders = 1;
  private depth = 0;
  /**
   * After the catalog could not be reached: until this time (Date.now() ms) statements fail at
   * once with that error instead of each blocking the event loop for a connection timeout while
   * PostgreSQL is down (the server keeps answering, with errors naming the catalog).
   */
  private downUntil = 0;
  private downError: Error | undefined;
  private readonly timeoutMs: number;

  private constructor(
    private readonly settings: PgConnectionSettings,
    private readonly config: Record<string, unknown>,
    private readonly keepIdentityCheck: boolean,
    private readonly options: PgCatalogDbOptions,
  ) {
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  /**
   * Connects to the catalog at `url` (its password from the URL or ~/.pgpass, read once here).
   * The schema must be migrated already (PostgresJobCatalog.open does it).
   * @throws SourceError-like CairnErrors naming the server (never the password) when it cannot connect.
   */
  static async open(url: string, options: PgCatalogDbOptions): Promise<PgCatalogDb> {
    const settings = parsePostgresUrl(url);
    const config = clientConfig(settings);
    const password = typeof config.password === 'function' ? await (config.password as () => Promise<string | undefined>)() : config.password;
    const ssl = config.ssl && typeof config.ssl === 'object' ? config.ssl : undefined;
    const { checkServerIdentity, ...sslData } = ssl ?? {};
    const plain: Record<string, unknown> = {
      host: config.host, port: config.port, user: config.user, database: config.database,
      ...(password !== undefined ? { password } : {}),
      ...(ssl ? { ssl: sslData } : {}),
      connectionTimeoutMillis: 5000,
      statement_timeout: 20_000,
      application_name: 'cairn catalog',
    };
    const db = new PgCatalogDb(settings, plain, ssl !== undefined && checkServerIdentity === undefined, options);
    // Connects now (a wrong URL fails at start-up, not at the first request) and checks the key:
    // the first replica records its check value, every later one must match it.
    db.prepare("INSERT INTO cairn_meta (key, value) VALUES ('catalog_key_check', ?) ON CONFLICT (key) DO NOTHING").run(options.key.checkValue());
    try {
      options.key.verify(String((db.prepare("SELECT value FROM cairn_meta WHERE key = 'catalog_key_check'").get() as { value: string }).value));
    } catch (err) {
      db.close();
      throw err;
    }
    return db;
  }

  get location(): string {
    return pgLocation(this.settings);
  }

  /** Another holder of this connection (a store); each holder calls close() once. */
  retain(): PgCatalogDb {
    this.holders++;
    return this;
  }

  prepare(sql: string): CatalogStatement {
    let text = this.statements.get(sql);
    if (text === undefined) {
      text = toPostgresSql(sql);
      this.statements.set(sql, text);
    }
    const statement = text;
    return {
      run: (...params) => ({ changes: this.call(statement, params).rowCount }),
      get: (...params) => this.call(statement, params).rows[0],
      all: (...params) => this.call(statement, params).rows,
    };
  }

  seal(plain: string, context: string): string {
    return this.options.key.seal(plain, context);
  }

  unseal(stored: string, context: string): string {
    return this.options.key.unseal(stored, context);
  }

  exec(sql: string): void {
    this.call(sql, undefined);
  }

  transaction<A extends unknown[], R>(fn: (...args: A) => R): CatalogTransaction<A, R> {
    const run = (...args: A): R => {
      const savepoint = `cairn_sp_${this.depth}`;
      this.call(this.depth === 0 ? 'BEGIN' : `SAVEPOINT ${savepoint}`, undefined);
      if (this.depth === 0) this.call('SELECT pg_advisory_xact_lock($1)', [CATALOG_TX_LOCK_KEY.toString()]);
      this.depth++;
      let result: R;
      try {
        result = fn(...args);
      } catch (err) {
        this.depth--;
        try {
          this.call(this.depth === 0 ? 'ROLLBACK' : `ROLLBACK TO SAVEPOINT ${savepoint}`, undefined);
        } catch {
          /* the connection is gone: PostgreSQL rolled back itself */
        }
        throw err;
      }
      this.depth--;
      this.call(this.depth === 0 ? 'COMMIT' : `RELEASE SAVEPOINT ${savepoint}`, undefined);
      return result;
    };
    return Object.assign(run, { immediate: run });
  }

  close(): void {
    if (--this.holders > 0) return;
    if (this.worker) {
      try {
        this.send({ close: true });
      } catch {
        /* closing anyway */
      }
      void this.worker.terminate();
    }
    this.worker = undefined;
    this.port = undefined;
  }

  /** Starts the worker (again, after a timeout killed it). */
  private ensureWorker(): MessagePort {
    if (this.port) return this.port;
    const { port1, port2 } = new MessageChannel();
    const pgPath = createRequire(import.meta.url).resolve('pg');
    this.worker = new Worker(WORKER_CODE, {
      eval: true,
      workerData: { port: port2, flag: this.flag.buffer, config: this.config, keepIdentityCheck: this.keepIdentityCheck, pgPath },
      transferList: [port2],
    });
    this.worker.unref();
    this.worker.on('error', () => undefined);
    this.port = port1;
    return port1;
  }

  private send(message: Record<string, unknown>): Reply {
    if (this.holders <= 0) throw new CairnError('INTERNAL', `The shared catalog at ${this.location} was closed.`);
    const port = this.ensureWorker();
    const id = ++this.requestId;
    port.postMessage({ ...message, id });
    // Wait for the answer with this id: the counter moves on every answer, and a message may
    // become readable just after it moved, so read, then wait only while the counter stays.
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      const seen = Atomics.load(this.flag, 0);
      const received = receiveMessageOnPort(port)?.message as Reply | undefined;
      if (received?.id === id) return received;
      if (received) continue; // an answer to a request that timed out
      const left = deadline - Date.now();
      if (left <= 0 || Atomics.wait(this.flag, 0, seen, left) === 'timed-out') break;
    }
    // The worker's state is unknown now: a new one (and connection) for the next statement.
    void this.worker?.terminate();
    this.worker = undefined;
    this.port = undefined;
    this.depth = 0;
    throw new SourceError(`The shared catalog at ${this.location} did not answer within ${Math.round(this.timeoutMs / 1000)} s; check that PostgreSQL is up and reachable from this server.`);
  }

  private call(sql: string, params: unknown[] | undefined): Reply {
    if (this.downError && Date.now() < this.downUntil) throw this.downError;
    let reply: Reply;
    try {
      reply = this.send({ sql, params: params?.map((p) => (p === undefined ? null : p)), inTransaction: this.depth > 0 });
    } catch (err) {
      // Only the catalog not answering fails the next statements fast, never another error.
      if (err instanceof SourceError) {
        this.downError = err;
        this.downUntil = Date.now() + DOWN_FOR_MS;
      }
      throw err;
    }
    if (reply.error) {
      const { message, code, constraint } = reply.error;
      if (code !== undefined && /^[0-9A-Z]{5}$/.test(code) && !/^(08|57P|28)/.test(code)) {
        // A statement's error (a unique key, a trigger's refusal): its SQLSTATE and constraint kept for the store.
        throw Object.assign(new Error(message), { code, ...(constraint ? { constraint } : {}) });
      }
      const down = pgError(Object.assign(new Error(message), { code }), this.settings);
      this.downError = down;
      this.downUntil = Date.now() + DOWN_FOR_MS;
      throw down;
    }
    this.downError = undefined;
    return reply;
  }
}
