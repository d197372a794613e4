/**
 * Streaming the output of pg_dump / pg_dumpall (the "(schema)" and "(roles)" collections) as a
 * collection's data: the tool's stdout is the stream, its stderr (kept up to 64 KiB, the
 * password scrubbed) becomes the error when it exits non-zero. The connection settings and the
 * password go through the environment only (toolEnv), never the command line. An abort kills
 * the tool (SIGTERM), and so does a consumer that stops reading.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { SourceError, stoppedBySignal, throwIfAborted } from '../../core/errors.js';
import type { DataStream } from '../types.js';
import { toolEnv, type PgConnectionSettings } from './connection.js';
import { abortError } from './session-pool.js';
import { scrub } from './tools.js';

/** What a tool stream needs from the snapshot it belongs to. */
export interface ToolStreamContext {
  settings: PgConnectionSettings;
  /** The running tools of the snapshot, which its close() kills; the stream adds and removes its own. */
  running: Set<ChildProcess>;
  /** Throws when the snapshot is closed (checked when the stream starts). */
  assertOpen: () => void;
  /** The lock wait given to the tool (`--lock-wait-timeout`) as people read it ("30 s"), for its error. */
  lockTimeout?: string;
}

/**
 * A stream of the tool's stdout; the tool starts when the stream is first read. rowCount stays
 * 0. Errors: SourceError (the tool cannot be started, or exits non-zero: see toolError), the
 * signal's reason (a CairnError) or CancelledError on abort.
 */
export function toolStream(tool: 'pg_dump' | 'pg_dumpall', args: string[], signal: AbortSignal | undefined, context: ToolStreamContext): DataStream {
  const { settings, running, assertOpen } = context;
  async function* generate(): AsyncGenerator<Uint8Array> {
    throwIfAborted(signal);
    assertOpen();
    const child = spawn(tool, args, { env: toolEnv(settings), stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < 65_536) stderr += d.toString();
    });
    let spawnError: Error | undefined;
    let stoppedBy: NodeJS.Signals | null = null;
    const exited = new Promise<number | null>((resolve) => {
      child.on('error', (err) => {
        spawnError = err;
        resolve(null);
      });
      child.on('close', (code, how) => {
        stoppedBy = how;
        resolve(code);
      });
    });
    const onAbort = (): void => void child.kill('SIGTERM');
    signal?.addEventListener('abort', onAbort, { once: true });
    let finished = false;
    try {
      for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
        yield chunk;
        throwIfAborted(signal);
      }
      const code = await exited;
      throwIfAborted(signal);
      if (spawnError !== undefined) {
        throw new SourceError(`${tool} could not be started: ${spawnError.message}. Install the PostgreSQL client tools.`);
      }
      if (code !== 0) throw stoppedBySignal(tool, stoppedBy) ?? toolError(tool, code, scrub(stderr, settings), settings, context.lockTimeout);
      finished = true;
    } catch (err) {
      // Whatever the abort broke (the killed tool's pipe, a stream's AbortError) is a cancellation.
      if (signal?.aborted) throw abortError(signal);
      throw err;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      if (!finished && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      running.delete(child);
    }
  }
  return { rowCount: 0, [Symbol.asyncIterator]: generate };
}

/** What to do when the server's lock table is too small for the tables of one backup. */
export const LOCK_TABLE_ADVICE =
  'A backup holds a share lock on every table it reads until it ends, as pg_dump does, and its schema dump (pg_dump) takes as many again: ' +
  'the server needs max_locks_per_transaction × (max_connections + max_prepared_transactions) of at least about twice the number of tables. ' +
  'Raise max_locks_per_transaction (ALTER SYSTEM SET max_locks_per_transaction = …, then restart PostgreSQL), or back up fewer tables at a time with --include/--exclude.';

/** The error for a tool that exited non-zero: what to do for the failures people meet (roles without a superuser, lock slots, login). */
function toolError(tool: string, code: number | null, stderr: string, s: PgConnectionSettings, lockTimeout?: string): SourceError {
  const detail = stderr.trim().split('\n').slice(-5).join(' ').trim() || `exit code ${code}`;
  // pg_dump's --lock-wait-timeout is a statement_timeout around its LOCK TABLE statements.
  const locked = /statement timeout[\s\S]*LOCK TABLE (?:ONLY )?(\S+(?: \S+)*?) IN ACCESS SHARE MODE/i.exec(stderr);
  if (locked) {
    return new SourceError(
      `Cannot lock table ${locked[1]} for the backup's schema dump (${tool}): another session holds a conflicting lock (e.g. ALTER TABLE, DROP, VACUUM FULL, LOCK TABLE) and did not release it within ${lockTimeout ?? 'the lock timeout'}. Retry when it has finished, or wait longer with --lock-timeout (API: lockTimeoutSeconds).`,
    );
  }
  if (tool === 'pg_dumpall' && /permission denied|must be superuser/i.test(stderr)) {
    return new SourceError(
      `pg_dumpall --roles-only failed: backing up roles (--roles) needs a superuser; connect as one or drop --roles. (${detail})`,
    );
  }
  if (/out of shared memory|max_locks_per_transaction/i.test(stderr)) {
    return new SourceError(`${tool} ran out of lock slots on the server. ${LOCK_TABLE_ADVICE}`);
  }
  if (/password authentication failed|no password supplied/i.test(stderr)) {
    return new SourceError(
      `${tool} could not log in to PostgreSQL at ${s.host}:${s.port} as "${s.user}": ${detail}. Check the password (URL, PGPASSWORD or ~/.pgpass).`,
    );
  }
  return new SourceError(`${tool} failed (exit code ${code}): ${detail}`);
}

/**
 * pg_dump refuses to dump a server newer than itself; say so before starting. `pgDumpVersion`:
 * `pg_dump --version` output; throws SourceError when its major version is older than the server's.
 */
export function checkPgDumpVersion(pgDumpVersion: string, serverVersionNum: number, serverVersion: string): void {
  const m = /\)\s*(\d+)/.exec(pgDumpVersion) ?? /(\d+)/.exec(pgDumpVersion);
  const dumpMajor = m?.[1] !== undefined ? Number(m[1]) : NaN;
  const serverMajor = Math.floor(serverVersionNum / 10_000);
  if (Number.isFinite(dumpMajor) && serverMajor > 0 && dumpMajor < serverMajor) {
    throw new SourceError(
      `${pgDumpVersion} cannot back up PostgreSQL ${serverVersion}: pg_dump must be at least as new as the server. Install the PostgreSQL ${serverMajor} client tools (Debian: apt-get install postgresql-client-${serverMajor}).`,
    );
  }
}
