/**
 * Where the CLI gets the password of an encrypted repository, in restic's order and manner
 * (docs/cli.md, "Passwords"):
 *
 * 1. `--password-command CMD`: run with `sh -c`, its stdout's first line (stdin and stderr are
 *    the terminal's, so `pass`, `gpg` or `op` can ask their own questions);
 * 2. `CAIRN_PASSWORD_FILE`: the file's first line (its line break removed);
 * 3. `CAIRN_PASSWORD`;
 * 4. a registered repository's own source (`cairn repo add NAME URL --password-file F` or
 *    `--password-command C`), when the repository was named by that name;
 * 5. a prompt that does not echo, when stdin is a terminal;
 * 6. else a UsageError naming the sources.
 *
 * A copy's (or import's) source repository reads `--from-password-command`,
 * `CAIRN_FROM_PASSWORD_FILE`, `CAIRN_FROM_PASSWORD` first, then the sources 1-3 above (one
 * password for both repositories is common). A new password (`repo init
 * --encryption`, `key add`, `key passwd`) comes from `--new-password-file F`, `CAIRN_NEW_PASSWORD`,
 * else is typed twice on a terminal. Every function here is called only when a repository is
 * encrypted (Repository.open asks through a callback), so plain repositories never ask.
 *
 * Passwords never go on a command line (process lists) or into a message: errors name the
 * source (a flag, a variable, a file path), never what it gave.
 */
import type { Command } from 'commander';
import { CancelledError, UsageError } from '../core/errors.js';
import { nonEmpty, readPasswordFile, readPasswordSource, runPasswordCommand, type PasswordSource } from '../core/password-source.js';

export type { PasswordSource } from '../core/password-source.js';

/** Which repository of a command the password is for: the one it works on, or a copy's source. */
export type PasswordRole = 'repository' | 'from';

/** The password flags of the command being run (set before its action: addPasswordOptions). */
export interface PasswordFlags {
  passwordCommand?: string;
  fromPasswordCommand?: string;
  newPasswordFile?: string;
}

/** The names of one role's sources, as errors and docs spell them. */
const SOURCES: Record<PasswordRole, { command: string; file: string; env: string }> = {
  repository: { command: '--password-command', file: 'CAIRN_PASSWORD_FILE', env: 'CAIRN_PASSWORD' },
  from: { command: '--from-password-command', file: 'CAIRN_FROM_PASSWORD_FILE', env: 'CAIRN_FROM_PASSWORD' },
};

let currentFlags: PasswordFlags = {};

/** Sets the flags the password functions read: main's preAction hook, from the command run. */
export function usePasswordFlags(flags: PasswordFlags): void {
  currentFlags = {
    ...(flags.passwordCommand !== undefined ? { passwordCommand: flags.passwordCommand } : {}),
    ...(flags.fromPasswordCommand !== undefined ? { fromPasswordCommand: flags.fromPasswordCommand } : {}),
    ...(flags.newPasswordFile !== undefined ? { newPasswordFile: flags.newPasswordFile } : {}),
  };
}

/**
 * Adds `--password-command` to every command that takes `--repo` (or, as `repo init`, creates
 * one), `--from-password-command` to those with `--from` and those listed in `fromPassword`
 * (`import`: its archive), `--new-password-file` to those listed in `newPassword` (paths such
 * as `key add`), and a hook that hands the parsed values to this
 * module before each action. Called once by buildProgram, after every command is registered.
 */
export function addPasswordOptions(program: Command, newPassword: string[], fromPassword: string[] = []): void {
  const walk = (cmd: Command, path: string): void => {
    const has = (flag: string): boolean => cmd.options.some((o) => o.long === flag);
    if (has('--repo') || path === 'repo init' || has('--from')) {
      cmd.option('--password-command <command>', 'run this (sh -c) and use the first line it prints as the repository password (else CAIRN_PASSWORD_FILE, CAIRN_PASSWORD, a prompt)');
    }
    if (has('--from') || fromPassword.includes(path)) {
      cmd.option('--from-password-command <command>', "the --from repository's password: run this (sh -c), first line (else CAIRN_FROM_PASSWORD_FILE, CAIRN_FROM_PASSWORD, a prompt)");
    }
    if (newPassword.includes(path)) {
      cmd.option('--new-password-file <file>', 'the new password: the first line of this file (else CAIRN_NEW_PASSWORD, or typed twice on a terminal)');
    }
    for (const sub of cmd.commands) walk(sub, path === '' ? sub.name() : `${path} ${sub.name()}`);
  };
  walk(program, '');
  program.hook('preAction', (_program, action) => usePasswordFlags(action.opts<PasswordFlags>()));
}

/** What the password functions read besides the flags: the environment and the terminal. */
export interface PasswordContext {
  env?: NodeJS.ProcessEnv;
  flags?: PasswordFlags;
  /** The terminal to prompt on (default: process.stdin / process.stderr when stdin is a TTY). */
  tty?: Terminal | undefined;
  signal?: AbortSignal;
}

/** A terminal: where a password is typed without echo. */
export interface Terminal {
  input: NodeJS.ReadStream;
  output: NodeJS.WritableStream;
}

function defaultTerminal(): Terminal | undefined {
  return process.stdin.isTTY ? { input: process.stdin, output: process.stderr } : undefined;
}

/**
 * Reads a line typed on `tty` without echoing it (raw mode): Enter ends it, Backspace deletes,
 * Ctrl-C or Ctrl-D on an empty line cancels (CancelledError, exit 130).
 */
export function promptHidden(question: string, tty: Terminal): Promise<string> {
  const { input, output } = tty;
  return new Promise((resolve, reject) => {
    // Echo off before the prompt shows: what is typed as soon as it appears is never echoed.
    const wasRaw = input.isRaw;
    input.setRawMode(true);
    output.write(question);
    let typed = '';
    const finish = (err?: Error): void => {
      input.off('data', onData);
      input.setRawMode(wasRaw);
      input.pause();
      output.write('\n');
      if (err) reject(err);
      else resolve(typed);
    };
    const onData = (chunk: Buffer): void => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return finish();
        if (ch === '\u0003' || (ch === '\u0004' && typed === '')) return finish(new CancelledError('Cancelled at the password prompt.'));
        if (ch === '\u007f' || ch === '\b') typed = [...typed].slice(0, -1).join('');
        else if (ch >= ' ' || ch === '\t') typed += ch;
      }
    };
    input.on('data', onData);
    input.resume();
  });
}

/** How a repository is named in prompts and errors (a location, never a secret). */
function describe(where: string | undefined): string {
  return where ? `repository ${where}` : 'the repository';
}

/**
 * The function Repository.open calls for an encrypted repository's password (`role`: the
 * command's repository, or a copy's --from one; `where`: its location, for the prompt and the
 * errors; `registered`: the source a registered name carries). It reads the sources in the
 * order this file's comment gives, when called (so a plain repository asks for nothing).
 */
export function passwordFor(role: PasswordRole, where: string | undefined, registered?: PasswordSource, context: PasswordContext = {}): () => Promise<string> {
  return async () => {
    const env = context.env ?? process.env;
    const flags = context.flags ?? currentFlags;
    const names = SOURCES[role];
    const command = role === 'from' ? flags.fromPasswordCommand : flags.passwordCommand;
    if (command !== undefined && command !== '') return runPasswordCommand(command, `The ${names.command}`, { interactive: true, ...(context.signal ? { signal: context.signal } : {}) });
    const file = env[names.file];
    if (file !== undefined && file !== '') return readPasswordFile(file, names.file);
    const password = env[names.env];
    if (password !== undefined && password !== '') return password;
    // A copy between two repositories with one password (the common case) needs it given once:
    // without a --from source, the source repository is tried with the command's own.
    if (role === 'from') {
      const own = SOURCES.repository;
      if (flags.passwordCommand !== undefined && flags.passwordCommand !== '') {
        return runPasswordCommand(flags.passwordCommand, `The ${own.command}`, { interactive: true, ...(context.signal ? { signal: context.signal } : {}) });
      }
      const ownFile = env[own.file];
      if (ownFile !== undefined && ownFile !== '') return readPasswordFile(ownFile, own.file);
      const ownPassword = env[own.env];
      if (ownPassword !== undefined && ownPassword !== '') return ownPassword;
    }
    if (registered) {
      const label = 'file' in registered ? `the password file registered for ${describe(where)}` : `the password command registered for ${describe(where)}`;
      return readPasswordSource(registered, label, { interactive: true, ...(context.signal ? { signal: context.signal } : {}) });
    }
    const tty = 'tty' in context ? context.tty : defaultTerminal();
    if (tty) return nonEmpty(await promptHidden(`Password for ${describe(where)}: `, tty), 'The prompt');
    throw new UsageError(
      `${where ? `The repository ${where}` : 'The repository'} is encrypted and no password was given: pass ${names.command} <command>, set ${names.file} (a file whose first line is the password) or ${names.env}, or run on a terminal to be asked.`,
    );
  };
}

/** What a new password is for, in prompts and errors. */
export type NewPasswordUse = 'init' | 'key add' | 'key passwd';

/**
 * A new password: `--new-password-file F` (first line), else CAIRN_NEW_PASSWORD, else (for
 * `repo init --encryption` only) the ordinary sources (--password-command, CAIRN_PASSWORD_FILE,
 * CAIRN_PASSWORD: the ones later commands read), else typed twice on a terminal (they must
 * match). None of them: UsageError naming them. An empty password is refused.
 */
export async function newPassword(use: NewPasswordUse, where: string, context: PasswordContext = {}): Promise<string> {
  const env = context.env ?? process.env;
  const flags = context.flags ?? currentFlags;
  if (flags.newPasswordFile !== undefined && flags.newPasswordFile !== '') return readPasswordFile(flags.newPasswordFile, '--new-password-file');
  const fromEnv = env.CAIRN_NEW_PASSWORD;
  if (fromEnv === '') throw new UsageError('CAIRN_NEW_PASSWORD is set but empty: an empty password is refused. Set it to the new password, or unset it to be asked.');
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  if (use === 'init') {
    const names = SOURCES.repository;
    if (flags.passwordCommand) return runPasswordCommand(flags.passwordCommand, `The ${names.command}`, { interactive: true, ...(context.signal ? { signal: context.signal } : {}) });
    if (env[names.file]) return readPasswordFile(env[names.file] as string, names.file);
    if (env[names.env]) return env[names.env] as string;
  }
  const tty = 'tty' in context ? context.tty : defaultTerminal();
  if (tty) {
    const first = nonEmpty(await promptHidden(`New password for repository ${where}: `, tty), 'The prompt');
    const again = await promptHidden('Type it again: ', tty);
    if (again !== first) throw new UsageError('The two passwords typed differ: nothing was changed; run the command again.');
    return first;
  }
  const also = use === 'init' ? ', --password-command, CAIRN_PASSWORD_FILE, CAIRN_PASSWORD' : '';
  throw new UsageError(`${use === 'init' ? 'cairn repo init --encryption' : `cairn ${use}`} needs the new password: pass --new-password-file <file>, set CAIRN_NEW_PASSWORD${also}, or run on a terminal to type it twice.`);
}
