/**
 * Commands that run through a cairn server (--server / CAIRN_SERVER, token in CAIRN_TOKEN): the
 * client, starting and waiting for a job, and the mapping of a job's or an API error's code to
 * the CLI's exit code (docs/cli.md). The SDK is loaded only when a server is named.
 */
import { Option } from 'commander';
import { CairnError, EXIT_CODES, StorageError, UsageError, type ErrorCode } from '../core/errors.js';
import type { JobRecord } from '../jobs/ports.js';
import type { CairnClient } from '../sdk/index.js';
import { printJson, type Io } from './options.js';

export interface ServerFlags {
  server?: string;
  /** false with --no-wait */
  wait?: boolean;
}

export function serverOption(): Option {
  return new Option('--server <url>', 'run through a cairn server instead of in this process (token in CAIRN_TOKEN)').env('CAIRN_SERVER');
}

/** A client for --server, or undefined when none is named (the command runs in this process). */
export async function serverClient(opts: ServerFlags): Promise<CairnClient | undefined> {
  if (!opts.server) return undefined;
  const { CairnClient } = await import('../sdk/index.js');
  if (!/^https?:\/\//.test(opts.server)) throw new UsageError(`Invalid --server "${opts.server}": give its URL, e.g. http://127.0.0.1:8080.`);
  return new CairnClient({ url: opts.server, fetch: connectingFetch(opts.server), ...(process.env.CAIRN_TOKEN ? { token: process.env.CAIRN_TOKEN } : {}) });
}

/**
 * fetch, with a server that cannot be reached (refused, unknown host, reset) as a StorageError
 * (exit 8, docs/cli.md) naming it and the cause, instead of undici's bare "fetch failed".
 */
function connectingFetch(server: string): typeof fetch {
  return async (input, init) => {
    try {
      return await fetch(input, init);
    } catch (err) {
      if (init?.signal?.aborted || (err instanceof Error && err.name === 'AbortError')) throw err;
      const cause: unknown = err instanceof Error ? err.cause : undefined;
      const why = cause instanceof Error ? cause.message : err instanceof Error ? err.message : String(err);
      if (why === 'bad port') {
        // fetch refuses ports that browsers block (1, 22, 25, 6000, …; the Fetch standard's list)
        // before connecting: no server can be reached there, so retrying will not help.
        throw new UsageError(
          `cannot connect to cairn server at ${server}: its port is one that Node's fetch refuses to connect to (a "bad port" of the Fetch standard, such as 1, 22 or 6000). Run the server on another port (cairn server --listen 127.0.0.1:8080) and point --server / CAIRN_SERVER at it.`,
          { cause: err },
        );
      }
      const code = (cause as NodeJS.ErrnoException | undefined)?.code;
      const hint =
        code === 'ENOTFOUND' || code === 'EAI_AGAIN'
          ? 'check the host name in --server / CAIRN_SERVER'
          : 'is it running? Start it with: cairn server (its first log line says the URL it listens on), or fix --server / CAIRN_SERVER';
      throw new StorageError(`cannot connect to cairn server at ${server}: ${why}; ${hint}.`, { cause: err });
    }
  };
}

export async function needServer(opts: ServerFlags): Promise<CairnClient> {
  const client = await serverClient(opts);
  if (!client) throw new UsageError('This command talks to a cairn server: pass --server <url> or set CAIRN_SERVER (and CAIRN_TOKEN).');
  return client;
}

export function requireRepoName(repo: string | undefined): string {
  if (!repo) throw new UsageError('With --server, name the repository with --repo: a name registered on the server, "default" for its BACKUP_* repository, or a URL when it runs with --allow-urls.');
  return repo;
}

/** The CLI error for a job that did not succeed: the job's own code, so the exit code matches. */
export function jobError(job: JobRecord): CairnError {
  const code = job.error?.code;
  const known = code !== undefined && code in EXIT_CODES ? (code as ErrorCode) : job.state === 'CANCELED' ? 'CANCELLED' : 'INTERNAL';
  return new CairnError(known, job.error?.message ?? `Job ${job.id} ended ${job.state}.`);
}

/** The CLI error for an API error: its code when the CLI knows it (exit codes follow), 401/403 as usage errors. */
export function apiError(err: { status: number; code: string; message: string }): CairnError {
  if (err.code in EXIT_CODES) return new CairnError(err.code as ErrorCode, err.message);
  if (err.status === 401) {
    const token = process.env.CAIRN_TOKEN ? 'the token in CAIRN_TOKEN' : 'no token (CAIRN_TOKEN is not set)';
    return new UsageError(`the server refused the token: it got ${token}, which it does not know or no longer accepts. Set CAIRN_TOKEN to a token of that server (cairn token create --role … on it, with its --data-dir).`);
  }
  if (err.status === 403) return new UsageError(`${err.message} (the token comes from CAIRN_TOKEN)`);
  return new CairnError('INTERNAL', err.message);
}

/** An SDK CairnApiError (told by its name: the SDK is loaded only when a server is named). */
export function isApiError(err: unknown): err is { status: number; code: string; message: string } {
  return err instanceof Error && err.name === 'CairnApiError' && typeof (err as { status?: unknown }).status === 'number';
}

/** Runs an API call; its CairnApiError becomes the CLI error of the same code (apiError). */
export async function callServer<T>(call: () => Promise<T>): Promise<T> {
  const { CairnApiError } = await import('../sdk/index.js');
  try {
    return await call();
  } catch (err) {
    if (err instanceof CairnApiError) throw apiError(err);
    throw err;
  }
}

/**
 * Starts a job on the server; with --no-wait prints its id (or record) and returns undefined,
 * else waits for it: Ctrl-C cancels the job on the server. A failed job throws its error.
 */
export async function runOnServer(
  client: CairnClient,
  io: Io,
  signal: AbortSignal,
  opts: ServerFlags & { json?: boolean },
  start: () => Promise<JobRecord>,
): Promise<JobRecord | undefined> {
  const started = await callServer(start);
  if (opts.wait === false) {
    if (opts.json) printJson(io, started);
    else io.out(started.id);
    return undefined;
  }
  let final: JobRecord;
  try {
    final = await client.jobs.wait(started.id, { signal, pollMs: 300 });
  } catch (err) {
    if (!signal.aborted) throw err;
    await client.jobs.cancel(started.id).catch(() => undefined);
    final = await client.jobs.wait(started.id, { pollMs: 300 });
  }
  if (final.state !== 'SUCCESS') throw jobError(final);
  return final;
}
