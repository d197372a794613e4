/**
 * The `cairn` command: program setup, the command groups (src/cli/commands/, one module per
 * group, registered in the order --help lists them), signals and the mapping of errors to exit
 * codes (docs/cli.md). Shared option helpers are in options.ts, server calls in remote.ts.
 *
 * Start-up (issue 22): every command's definition is built on each run (help, suggestions and
 * misplaced-flag advice need all of them), so a command module imports at its top only what its
 * definitions need; what an action runs (restore, export, prune, the server…) is imported inside
 * the action with `await import()`. bin/cairn.js answers a lone --version without this file.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, type Option, type ParseOptionsResult } from 'commander';
import { CairnError, CancelledError, EXIT_CODES, StorageError, type ErrorCode } from '../core/errors.js';
import { registerArchiveCommands } from './commands/archive.js';
import { registerBackupCommands } from './commands/backup.js';
import { registerCopyCommand } from './commands/copy.js';
import { registerInspectCommands } from './commands/inspect.js';
import { registerJobCommands } from './commands/job.js';
import { registerKeyCommands } from './commands/key.js';
import { registerMaintenanceCommands } from './commands/maintenance.js';
import { registerRepoCommands } from './commands/repo.js';
import { registerRestoreCommand } from './commands/restore.js';
import { registerScheduleCommands } from './commands/schedule.js';
import { registerServerCommand } from './commands/server.js';
import { registerSourceCommands } from './commands/source.js';
import { registerTokenCommands } from './commands/token.js';
import { registerAlertCommands } from './commands/alert.js';
import { registerDrillCommands } from './commands/drill.js';
import { registerAuditCommand } from './commands/audit.js';
import { registerServersCommand } from './commands/servers.js';
import { adviseForArchive } from '../storage/archive/advice.js';
import { openedArchive, printJson, resetOpenedArchive, takeExitCode, type CliContext, type Io } from './options.js';
import { registerStatusCommand } from './commands/status.js';
import { addPasswordOptions } from './password.js';
import { apiError, isApiError } from './remote.js';

export type { Io } from './options.js';

/** A second SIGINT / SIGTERM sooner than this after the first is the same interrupt delivered twice (process and process group), not a second Ctrl-C. */
const REPEAT_SIGNAL_MS = 1000;

/**
 * Runs the CLI and returns the exit code (documented in docs/cli.md). Without `io` it prints to
 * the process's stdout and stderr and watches stdout for write errors (watchStdout): a reader
 * that closed early (EPIPE: `cairn … | head`) ends the command quietly with 0, any other error
 * (ENOSPC: `> /dev/full`) with a StorageError, exit 8. Either way the command is cancelled
 * through its signal and its finally blocks (repository locks) run before the process ends.
 * `launch.interrupted`: whether a SIGINT / SIGTERM came before main was called (bin/cairn.js
 * catches them while it loads the CLI); the command is then cancelled before it starts.
 */
export async function main(argv: string[], io?: Io, launch: { interrupted?: () => boolean } = {}): Promise<number> {
  const controller = new AbortController();
  const stdout = io === undefined ? watchStdout(controller) : undefined;
  io ??= defaultIo();
  // The wall time a --json document reports as durationMs (printJson).
  const startedAt = io.startedAt ?? performance.now();
  // Whether the command printed on stdout: a --json command that printed its document before
  // failing (verify's report) gets no second one for its error.
  let printed = false;
  let firstSignalAt: number | undefined;
  let quiet = false;
  const json = argv.includes('--json');
  const onSignal = (): void => {
    const now = performance.now();
    if (firstSignalAt !== undefined) {
      // One Ctrl-C can arrive twice: a terminal sends it to the whole process group, and
      // `timeout` or a supervisor sends it to the process and then to its group. Only a
      // second one a while later is the user asking to stop at once.
      if (now - firstSignalAt < REPEAT_SIGNAL_MS) return;
      // Stopping at once leaves what the cleanup would have removed (repository locks): say so.
      const message = 'Stopped at once by a second Ctrl-C: repository locks this command held may be left behind; run `cairn unlock --repo <repo>` to remove them.';
      io.err(`cairn: error: ${message}`);
      if (json && !printed) io.out(JSON.stringify({ error: { code: 'CANCELLED', message, exitCode: EXIT_CODES.CANCELLED }, durationMs: Math.max(0, Math.round(performance.now() - startedAt)) }, null, 2));
      process.exitCode = EXIT_CODES.CANCELLED;
      // Only once stdout and stderr have taken the lines (a pipe is written asynchronously).
      process.stdout.write('', () => process.stderr.write('', () => process.exit(EXIT_CODES.CANCELLED)));
      return;
    }
    firstSignalAt = now;
    if (!quiet) io.err('cairn: cancelling (press Ctrl-C again to stop at once)…');
    // The reason is what code that throws `signal.reason` (or signal.throwIfAborted()) throws:
    // a CancelledError, exit 130, not a DOMException "This operation was aborted".
    controller.abort(new CancelledError('Cancelled (interrupted by Ctrl-C or SIGTERM).'));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // A signal that came while the launcher loaded the CLI (bin/cairn.js): the command is
  // cancelled before it starts. Checked once main's own handlers are in place, so none is lost.
  if (launch.interrupted?.() === true) onSignal();
  const debug = argv.includes('--debug');
  resetOpenedArchive();
  const tracked: Io = {
    ...io,
    startedAt,
    out: (text) => {
      printed = true;
      io.out(text);
    },
    // Warnings about an archive the command reads get advice that fits an archive.
    err: (text) => io.err(forArchive(text)),
  };
  try {
    controller.signal.throwIfAborted();
    await buildProgram({ io: tracked, signal: controller.signal, quietSignals: () => void (quiet = true) }).parseAsync(argv);
    const failed = await stdout?.settled();
    if (failed !== undefined) return outputFailure(failed, io, debug);
    // A Ctrl-C that came after the point of no return (a backup's manifest written, a restore
    // switched in): the command finished, and its result stands.
    if (controller.signal.aborted && !quiet) io.err('cairn: the cancel came too late: the command had already finished, and its result stands.');
    return takeExitCode(); // 0 unless the command asked for another (cairn status)
  } catch (err) {
    // What failed after stdout did (a pipeline's EPIPE, the cancel it caused) follows from it.
    const failed = await stdout?.settled();
    if (failed !== undefined) return outputFailure(failed, io, debug);
    // A failure caused by a Ctrl-C to the process group (a child killed by it, its pipe
    // closed) can be seen before our own handler has run: let a signal that arrived run first.
    await new Promise((resolve) => setImmediate(resolve));
    return reportError(cancelledIfAborted(err, controller.signal), tracked, debug, json && !printed);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** The process's stdout as main watches it: the first write error, once every write is done. */
interface StdoutWatch {
  /** Waits until what was written has been handed to the OS; the first write error, if any. */
  settled(): Promise<NodeJS.ErrnoException | undefined>;
}

/**
 * Listens for write errors on process.stdout (and swallows stderr's: there is nowhere left to
 * report them). The first stdout error aborts `controller`, so a command still producing output
 * stops (CancelledError for EPIPE, else the StorageError main reports); nothing calls
 * process.exit, so pending releases (repository locks) finish before the process ends.
 */
function watchStdout(controller: AbortController): StdoutWatch {
  let failure: NodeJS.ErrnoException | undefined;
  const fail = (err: NodeJS.ErrnoException): void => {
    if (failure !== undefined) return;
    failure = err;
    controller.abort(err.code === 'EPIPE' ? new CancelledError('The reader of stdout closed it.') : stdoutError(err));
  };
  process.stdout.on('error', fail);
  process.stderr.on('error', () => undefined);
  return {
    settled: () =>
      new Promise((resolve) => {
        // An empty write's callback runs once the writes before it are done, with the error
        // of a stream that failed (possibly before its 'error' event is emitted).
        if (failure !== undefined || process.stdout.destroyed) return resolve(failure);
        process.stdout.write('', (err) => {
          if (err) fail(err as NodeJS.ErrnoException);
          resolve(failure);
        });
      }),
  };
}

function stdoutError(err: NodeJS.ErrnoException): StorageError {
  return new StorageError(
    `Cannot write to stdout: ${err.message}. Free space on the device stdout goes to (or redirect it elsewhere; cairn dump can write a file with --output) and run the command again.`,
    { cause: err },
  );
}

/**
 * The exit of a command whose stdout failed: 0 for EPIPE (the reader took what it wanted and
 * closed the pipe, as `| head` does: quiet, as Unix tools are, and no failure under pipefail),
 * else the StorageError, exit 8, on stderr only (stdout cannot take a --json error document).
 */
function outputFailure(err: NodeJS.ErrnoException, io: Io, debug: boolean): number {
  if (err.code === 'EPIPE') return 0;
  return reportError(stdoutError(err), io, debug, false);
}

function defaultIo(): Io {
  return {
    out: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
    err: (text) => process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
  };
}

/**
 * After Ctrl-C / SIGTERM, an error that is not a CairnError comes from the abort itself (Node's
 * AbortError from a stream, a child process, a timer; a driver's "Connection terminated"):
 * the operation was cancelled, exit 130. CairnErrors keep their meaning (a conflict found
 * before the signal is still a conflict).
 */
function cancelledIfAborted(err: unknown, signal: AbortSignal): unknown {
  if (!signal.aborted || err instanceof CairnError || err instanceof CommanderError) return err;
  const reason: unknown = signal.reason;
  return reason instanceof CairnError ? reason : new CancelledError();
}

/**
 * Prints the error and returns the exit code. With --json on the command line the error is also
 * one JSON document on stdout, `{"error":{"code","message","exitCode"},"durationMs"}` (docs/cli.md), so that
 * a script reading stdout gets something to parse; the human line stays on stderr.
 */
/** `text` with advice that fits the archive the command opened as a repository, if it opened one. */
function forArchive(text: string): string {
  const archive = openedArchive();
  return archive === undefined ? text : adviseForArchive(text, archive);
}

function reportError(err: unknown, io: Io, debug: boolean, json: boolean): number {
  const report = (code: ErrorCode, message: string, exitCode: number): number => {
    // printJson adds durationMs last, as on every --json document (docs/cli.md).
    if (json) printJson(io, { error: { code, message, exitCode } });
    return exitCode;
  };
  if (err instanceof CommanderError) {
    // Commander already printed its message (help and version exit with 0).
    if (err.exitCode === 0) return 0;
    return report('USAGE', err.message.replace(/^error: /, ''), EXIT_CODES.USAGE);
  }
  // A server's answer that a command did not map itself (callServer) maps the same way here.
  if (isApiError(err)) err = apiError(err);
  if (err instanceof CairnError) {
    // Advice that fits the archive the command read (repair cannot write it).
    err.message = forArchive(err.message);
    io.err(`cairn: error: ${err.message}`);
    if (debug && err.stack) io.err(err.stack);
    return report(err.code, err.message, err.exitCode);
  }
  const e = err instanceof Error ? err : new Error(String(err));
  io.err(`cairn: internal error: ${e.message}${debug ? '' : ' (run with --debug for details)'}`);
  if (debug && e.stack) io.err(e.stack);
  return report('INTERNAL', `internal error: ${e.message}`, EXIT_CODES.INTERNAL);
}

/** The parts of commander's Command this file calls that its typings leave out. */
interface CommandInternals {
  missingMandatoryOptionValue(option: Option): never;
  unknownOption(flag: string): void;
}

/**
 * Flags that users of pg_restore, pg_dump and restic type by habit, per command (its path
 * without "cairn"), and what cairn takes instead: an unknown-option error names the replacement
 * rather than only the closest spelling. Kept to mappings that are true for cairn.
 */
export const FLAG_ALIASES: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  restore: {
    '--target': 'the database to restore into is --to <url> (restic restore --target is a folder; cairn restores into a database)',
    '--dbname': "the database to restore into is --to <url> (pg_restore's --dbname)",
    '-d': "the database to restore into is --to <url> (pg_restore's -d)",
    '--source': 'the backup to restore is the first argument: cairn restore <backup id> --to <url> (list ids with cairn backup list)',
    '--clean': "for pg_restore's --clean, use --on-conflict overwrite (existing tables get the backup's rows) or --on-conflict replace (the whole database becomes the backup)",
  },
  'backup create': {
    '--dbname': "the database to back up is --source <url> (pg_dump's --dbname)",
    '-d': "the database to back up is --source <url> (pg_dump's -d)",
    '--target': 'the repository to write to is --repo <repo>',
  },
};

/**
 * commander checks required options before unknown ones, so `backup create --sorce x` said only
 * that --source is missing. A mistyped flag is the mistake to report: with one on the command
 * line, the unknown-option error (naming it and suggesting the closest flag) comes first.
 */
class CairnCommand extends Command {
  private unknownArgs: string[] = [];

  override createCommand(name?: string): Command {
    return new CairnCommand(name);
  }

  override parseOptions(argv: string[]): ParseOptionsResult {
    const parsed = super.parseOptions(argv);
    this.unknownArgs = parsed.unknown;
    return parsed;
  }

  /** An unknown flag with a known meaning elsewhere (FLAG_ALIASES) says what cairn takes instead. */
  unknownOption(flag: string): void {
    const path = [this.name()];
    for (let c = this.parent; c?.parent; c = c.parent) path.unshift(c.name());
    const advice = FLAG_ALIASES[path.join(' ')]?.[flag];
    if (advice !== undefined) this.error(`error: unknown option '${flag}': ${advice}.`, { exitCode: EXIT_CODES.USAGE, code: 'commander.unknownOption' });
    const placed = this.parent ? undefined : this.optionOfACommand(flag);
    if (placed !== undefined) this.error(`error: unknown option '${flag}' before the command: options go after the command they belong to, e.g. ${placed}.`, { exitCode: EXIT_CODES.USAGE, code: 'commander.unknownOption' });
    (Command.prototype as unknown as CommandInternals).unknownOption.call(this, flag);
  }

  /**
   * `cairn --server URL job list`: a flag given before the command it belongs to (commander
   * reads options per command). The command line with the flag moved after the command named
   * on it (`cairn job list --server …`), or after the first command that takes it; undefined
   * when no command takes it.
   */
  private optionOfACommand(flag: string): string | undefined {
    const name = flag.split('=')[0] ?? flag;
    const takes = (c: Command): boolean => c.options.some((o) => o.long === name || o.short === name);
    // The command the rest of the line names, as deep as its words go.
    const root: Command = this as Command;
    let named = root;
    const path: string[] = [];
    for (const word of this.unknownArgs) {
      const sub = named.commands.find((c) => c.name() === word || c.aliases().includes(word));
      if (sub === undefined) continue;
      named = sub;
      path.push(sub.name());
    }
    if (named !== root && takes(named)) return `cairn ${path.join(' ')} ${name} …`;
    const walk = (c: Command, at: string[]): string | undefined => {
      for (const sub of c.commands) {
        if (takes(sub)) return `cairn ${[...at, sub.name()].join(' ')} ${name} …`;
        const deeper = walk(sub, [...at, sub.name()]);
        if (deeper !== undefined) return deeper;
      }
      return undefined;
    };
    return walk(root, []);
  }

  missingMandatoryOptionValue(option: Option): never {
    const first = this.unknownArgs[0];
    // Throws (exitOverride) unless the command allows unknown options.
    if (first !== undefined && first.startsWith('-')) this.unknownOption(first);
    return (Command.prototype as unknown as CommandInternals).missingMandatoryOptionValue.call(this, option);
  }
}

/**
 * cairn's version, from its package.json (two folders up from src/cli and from dist/cli; the
 * launcher, bin/cairn.js, answers a lone `--version` from the same file).
 */
function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

export function buildProgram(ctx: CliContext): Command {
  const program = new CairnCommand('cairn')
    .description('Backup and restore for PostgreSQL, MySQL/MariaDB and SQLite databases.')
    .version(packageVersion())
    .option('--debug', 'print stack traces with errors')
    .exitOverride()
    // commander's own errors ("error: unknown option …") read like every other error, `cairn: error: …`.
    .configureOutput({
      writeOut: (s) => ctx.io.out(s),
      writeErr: (s) => ctx.io.err(s.trimEnd()),
      outputError: (s, write) => write(s.replace(/^error: /, 'cairn: error: ')),
    })
    .showHelpAfterError('(run with --help for usage)');
  for (const register of [
    registerRepoCommands,
    registerKeyCommands,
    registerBackupCommands,
    registerRestoreCommand,
    registerCopyCommand,
    registerArchiveCommands,
    registerInspectCommands,
    registerMaintenanceCommands,
    registerJobCommands,
    registerSourceCommands,
    registerScheduleCommands,
    registerDrillCommands,
    registerServerCommand,
    registerTokenCommands,
    registerAlertCommands,
    registerStatusCommand,
    registerAuditCommand,
    registerServersCommand,
  ]) {
    register(program, ctx);
  }
  // Every command that opens a repository takes --password-command (src/cli/password.ts).
  addPasswordOptions(program, ['repo init', 'key add', 'key passwd'], ['import']);
  return program;
}
