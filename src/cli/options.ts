/**
 * What the command groups (src/cli/commands/*) share: the context they run in, option builders
 * (--repo, --include/--exclude, --data-dir, --json), the parsing of option values (selection,
 * compression, --jobs, --grace, expiry) and how a repository value becomes a Repository.
 */
import { Command, Option } from 'commander';
import { addDuration, parseDuration } from '../core/durations.js';
import { UsageError } from '../core/errors.js';
import { CompressionAlgorithmSchema, CompressionLevelSchema, type CompressionSettings } from '../core/schemas.js';
import { parseNameList, validateSelection, type Selection } from '../core/selection.js';
import { catalogFile, defaultDataDir } from '../catalog/database.js';
import type { CatalogTarget } from '../catalog/sql.js';
import { resolveRepositoryEntry } from '../config/registry.js';
import { Repository } from '../repo/repository.js';
import { openStorage, storageFromEnv } from '../storage/index.js';
import { passwordFor, type PasswordRole } from './password.js';

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  /** `performance.now()` when the command started (main.ts sets it): printJson's `durationMs`. */
  startedAt?: number;
}

/** What every command group gets: where to print, and the signal Ctrl-C / SIGTERM abort. */
export interface CliContext {
  io: Io;
  signal: AbortSignal;
  /**
   * For a command whose stderr is a log (`cairn server`): SIGINT / SIGTERM is its normal stop,
   * which it reports itself, so main prints none of its cancel notices.
   */
  quietSignals?: () => void;
}

export interface CommonOptions {
  repo?: string;
  json?: boolean;
}

export interface SelectionFlags {
  include?: string[];
  exclude?: string[];
}

export interface DataDirFlags {
  dataDir?: string;
  json?: boolean;
}

/**
 * Prints `value` as the one JSON document --json promises (indented unless `compact`). An object
 * gets `durationMs` last at its top level: the command's wall time in whole milliseconds, from
 * `io.startedAt` to now (docs/cli.md "Output and errors"). List commands pass an object too
 * (`{ backups: [...] }`, the REST API's answer shape), so every document carries the duration; an
 * array would be printed as it is, without one.
 */
export function printJson(io: Io, value: unknown, compact = false): void {
  const doc =
    io.startedAt !== undefined && typeof value === 'object' && value !== null && !Array.isArray(value)
      ? { ...value, durationMs: Math.max(0, Math.round(performance.now() - io.startedAt)) }
      : value;
  io.out(compact ? JSON.stringify(doc) : JSON.stringify(doc, null, 2));
}

export const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

/** --grace: a duration (30m, 1h, 2d) or 0; returns milliseconds. */
export function parseGrace(value: string): number {
  if (value.trim() === '0') return 0;
  const d = parseDuration(value, '--grace');
  return addDuration(new Date(0), d).getTime();
}

/**
 * A wait given as a duration (cairn's syntax: 90s, 5m, 2h…; no milliseconds) or, when `zero` is
 * allowed, 0; returns milliseconds. UsageError naming `flag` for anything else or above `maxMs`.
 */
export function parseWaitMs(value: string, flag: string, options: { zero: boolean; maxMs: number }): number {
  if (options.zero && value.trim() === '0') return 0;
  const forms = `a duration such as 1s, 30s, 5m or 2h${options.zero ? ', or 0' : ''}`;
  let ms: number;
  try {
    ms = addDuration(new Date(0), parseDuration(value, flag)).getTime();
  } catch (err) {
    if (err instanceof UsageError) throw new UsageError(`Invalid ${flag} "${value}": write ${forms}.`);
    throw err;
  }
  if (ms > options.maxMs) throw new UsageError(`Invalid ${flag} "${value}": at most ${options.maxMs / 3_600_000} hours; write ${forms}.`);
  return ms;
}

/** The longest --lock-timeout (and the API's lockTimeoutSeconds, 86 400): a day. */
export const MAX_LOCK_TIMEOUT_MS = 86_400_000;

/** The longest --retry-lock: a day (a wait longer than that is a job for a schedule). */
export const MAX_RETRY_LOCK_MS = 86_400_000;

export interface RetryLockFlags {
  retryLock?: string;
}

/** --retry-lock on every command that takes a repository lock (see lockRetryFrom). */
export function retryLockOption(): Option {
  return new Option(
    '--retry-lock <duration>',
    'while another cairn holds a conflicting repository lock, keep retrying this long (30s, 5m, 2h; default 0: fail at once with exit 5)',
  );
}

/** --retry-lock in ms (0 when absent); UsageError for a malformed value. Call before opening anything. */
export function retryLockMs(opts: RetryLockFlags): number {
  return opts.retryLock === undefined ? 0 : parseWaitMs(opts.retryLock, '--retry-lock', { zero: true, maxMs: MAX_RETRY_LOCK_MS });
}

/**
 * Applies --retry-lock to `repo`: each lock it takes retries for that long, cancelled by
 * `signal` (Ctrl-C), and the first wait is said once on stderr with who holds the lock. Without
 * the flag (or with 0) locks fail at once as before. Returns `repo`.
 */
export function applyRetryLock(repo: Repository, opts: RetryLockFlags, { io, signal }: CliContext): Repository {
  if (opts.retryLock === undefined) return repo;
  const waitMs = retryLockMs(opts);
  if (waitMs === 0) return repo;
  let said = false;
  repo.lockRetry = {
    waitMs,
    signal,
    onWait: (blocked) => {
      if (said) return;
      said = true;
      io.err(`cairn: repository ${repo.location} is locked by ${blocked.holder ?? 'another process'}; waiting up to ${opts.retryLock?.trim()} for it (--retry-lock).`);
    },
  };
  return repo;
}

/**
 * openRepository for a command that takes a repository lock: --retry-lock is checked first (a
 * usage error before any storage is touched), then applied to the opened repository.
 */
export async function openLockingRepository(value: string | undefined, opts: RetryLockFlags, ctx: CliContext, role: PasswordRole = 'repository'): Promise<Repository> {
  retryLockMs(opts);
  return applyRetryLock(await openRepository(value, undefined, role), opts, ctx);
}

/** With a server the lock is the server's to take: --retry-lock would silently do nothing there. */
export function refuseRetryLockRemote(opts: RetryLockFlags): void {
  if (opts.retryLock !== undefined) {
    throw new UsageError('--retry-lock applies when the command runs in this process, not through a server (--server / CAIRN_SERVER): leave it out, or run the command without the server.');
  }
}

/** `never`, a duration from `now`, or a date / ISO time (the API's `expires` parses the same). */
export { parseExpiry } from '../core/durations.js';

export function repoOption(): Option {
  return new Option(
    '--repo <repo>',
    'repository: a registered name, a path, or a URL (file://, s3://, azure://, gs://); without it, BACKUP_FILESYSTEM_PATH / BACKUP_S3_* / BACKUP_AZURE_* / BACKUP_GCS_* (docs/storage.md)',
  ).env('CAIRN_REPO');
}

/**
 * How --help says to write a name that a list would split or trim (core/selection.ts
 * parseNameList / parseRenames; docs/cli.md has the details): a short pointer on each flag, the
 * rule once below the options.
 */
export const NAME_QUOTING = '; quote names as shown below';
export const NAME_HELP = `
Names: a name, or a PostgreSQL schema or table part, that holds "," "=" "." '"' or a line break,
or starts or ends with a space, goes in double quotes, SQL style (a quote inside doubled; a line
break typed as itself inside the quotes); repeat the flag or separate names with ",". Examples:
  --include 'public."say ""hi"" "'   --include '" lead"' --include 'public."a,b"'
  --rename '"k=v"=kv'                --rename 'users="Users 2"'
MySQL/MariaDB: a name may also be written in backticks, e.g. --include '\`order\`'.
A name that matches nothing is an error that lists the names as they are to be typed.`;

export function selectionOptions(cmd: Command): Command {
  return cmd
    .addHelpText('after', NAME_HELP)
    .option('--include <names>', `only these collections (comma-separated, * wildcards; repeatable)${NAME_QUOTING}`, collect)
    .option('--exclude <names>', `every collection but these (comma-separated, * wildcards; repeatable)${NAME_QUOTING}`, collect);
}

export function selectionFrom(opts: SelectionFlags): Selection {
  const selection: Selection = {};
  const include = parseNameList(opts.include);
  const exclude = parseNameList(opts.exclude);
  if (include) selection.include = include;
  if (exclude) selection.exclude = exclude;
  validateSelection(selection);
  return selection;
}

export function compressionFrom(opts: { compression?: string; level?: string }, fallback: CompressionSettings): CompressionSettings {
  const algorithm = opts.compression ?? fallback.algorithm;
  const level = opts.level ?? fallback.level;
  const a = CompressionAlgorithmSchema.safeParse(algorithm);
  if (!a.success) throw new UsageError(`Unknown compression "${algorithm}": use zstd, gzip or none.`);
  const l = CompressionLevelSchema.safeParse(level);
  if (!l.success) throw new UsageError(`Unknown compression level "${level}": use fastest, default or best.`);
  // A level given for no compression would be silently ignored (every command that takes both).
  // "default" passes: it is what `repo init` sets when --level is not given.
  if (opts.level !== undefined && opts.level !== 'default' && a.data === 'none') {
    throw new UsageError(`--level ${opts.level} has no meaning without compression${opts.compression === undefined ? ' (the repository stores blobs uncompressed)' : ''}: leave out --level, or choose --compression zstd or gzip.`);
  }
  return { algorithm: a.data, level: l.data };
}

/** --jobs: a whole number from 1 to 256, or undefined when not given. */
export function parseJobs(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new UsageError(`Invalid --jobs "${value}": give a whole number from 1 to 256.`);
  return n;
}

/**
 * The repository a command names (a name registered in the catalog of `dataDir`, default
 * $CAIRN_DATA_DIR or ~/.local/share/cairn; a path; a URL), else the one the server-style
 * BACKUP_* variables describe. An encrypted one asks for its password (src/cli/password.ts:
 * `role` "from" for a copy's source reads --from-password-command, CAIRN_FROM_PASSWORD_FILE,
 * CAIRN_FROM_PASSWORD); a plain one never does. KeyError (exit 9) for a wrong password.
 */
let archiveInUse: string | undefined;

/**
 * The `.cairn` archive the running command opened as a repository, if any: main passes the
 * command's messages through adviseForArchive for it (no cairn repair, verify with --repo FILE).
 */
export function openedArchive(): string | undefined {
  return archiveInUse;
}

/** Forgets the archive of a previous command (main runs one command per call). */
export function resetOpenedArchive(): void {
  archiveInUse = undefined;
}

export async function openRepository(value: string | undefined, dataDir?: string, role: PasswordRole = 'repository'): Promise<Repository> {
  const repo = await openAnyRepository(value, dataDir, role);
  if (repo.readOnly) archiveInUse = repo.location;
  return repo;
}

async function openAnyRepository(value: string | undefined, dataDir: string | undefined, role: PasswordRole): Promise<Repository> {
  if (value === undefined || value === '') {
    const storage = storageFromEnv(process.env);
    if (storage === undefined) {
      throw new UsageError(
        'No repository given: pass --repo <name, path or URL>, set CAIRN_REPO, or describe one with BACKUP_FILESYSTEM_PATH, BACKUP_S3_BUCKET, BACKUP_AZURE_CONTAINER or BACKUP_GCS_BUCKET (docs/storage.md).',
      );
    }
    return Repository.open(storage, { password: passwordFor(role, storage.location) });
  }
  const { url, passwordSource } = await resolveRepositoryEntry(value, dataDir);
  const storage = openStorage(url);
  return Repository.open(storage, { password: passwordFor(role, storage.location, passwordSource) });
}

/**
 * A subcommand on one repository: `name`, its description, --repo, the command's own `flags`
 * ([flags, description, default?]) and --json, in the order --help has always shown them.
 */
export function repoCommand(parent: Command, name: string, description: string, ...flags: [string, string, string?][]): Command {
  const cmd = parent.command(name).description(description).addOption(repoOption());
  for (const [f, d, dflt] of flags) cmd.option(f, d, dflt);
  return cmd.option('--json', 'print JSON');
}

/** --data-dir: where cairn server keeps its catalog; the token, source and schedule commands edit it. */
export function dataDirOption(): Option {
  return new Option('--data-dir <dir>', "the server's data folder (default: $CAIRN_DATA_DIR, else ~/.local/share/cairn)");
}

export const dataDirOf = (dataDir: string | undefined): string => dataDir ?? defaultDataDir();
/**
 * The SQLite catalog file of --data-dir.
 * @throws UsageError when CAIRN_CATALOG names a shared catalog: the command reads or writes the
 * local file only, which the replicas do not read (docs/deployment.md says what to use instead).
 */
export const catalogPath = (dataDir: string | undefined): string => {
  if (process.env.CAIRN_CATALOG) {
    throw new UsageError(
      'This command works on the SQLite catalog of --data-dir, but CAIRN_CATALOG names a shared catalog, which the servers read instead: manage shared sources, repositories, schedules and drills through a replica — the same command with --server URL where it has one, else the REST API (/v1/sources, /v1/repositories, /v1/schedules, /v1/drills; docs/api.md), the SDK or the console — or unset CAIRN_CATALOG to use the local catalog.',
    );
  }
  return catalogFile(dataDirOf(dataDir));
};

/**
 * A subcommand that edits or reads the catalog of --data-dir: `name`, its description, then
 * --data-dir and (unless `json` is false) --json, in the order --help has always shown them.
 */
export function catalogCommand(parent: Command, name: string, description: string, json = true): Command {
  const cmd = parent.command(name).description(description).addOption(dataDirOption());
  return json ? cmd.option('--json', 'print JSON') : cmd;
}

/**
 * Runs `use` with a store opened on the catalog of --data-dir — or on the shared catalog when
 * CAIRN_CATALOG names one (with CAIRN_CATALOG_KEY, as the servers have) — and closes it after.
 */
export async function withStore<S extends { close(): unknown }, T>(open: (target: CatalogTarget) => S | Promise<S>, dataDir: string | undefined, use: (store: S) => T | Promise<T>): Promise<T> {
  const shared = process.env.CAIRN_CATALOG ? await (await import('../catalog/shared.js')).openSharedCatalog(process.env.CAIRN_CATALOG) : undefined;
  try {
    const store = await open(shared ?? catalogFile(dataDirOf(dataDir)));
    try {
      return await use(store);
    } finally {
      await store.close();
    }
  } finally {
    shared?.close();
  }
}

/** An exit code a command that succeeded asks for (`cairn status`: 10 when degraded), read once and reset by main. */
let requestedExit = 0;
export function requestExitCode(code: number): void {
  requestedExit = code;
}
export function takeExitCode(): number {
  const code = requestedExit;
  requestedExit = 0;
  return code;
}
