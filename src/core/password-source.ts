/**
 * Reading a password from where it is kept, for the CLI (src/cli/password.ts) and the server
 * (a registered repository's source, src/server/access.ts): a file's first line, or the first
 * line a command prints. Errors name the source (a flag, a variable, a file path, a registered
 * name), never the password nor what a command printed.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { CancelledError, stoppedBySignal, UsageError } from './errors.js';

/** A password source kept for a registered repository (the catalog holds this, never the password). */
export type PasswordSource = { file: string } | { command: string };

/** The most a password command or file may give: a password is a line, not a stream. */
const MAX_PASSWORD_OUTPUT = 64 * 1024;

/** The first line of `text` without its line break (a "\r\n" file too). */
function firstLine(text: string): string {
  const end = text.indexOf('\n');
  const line = end < 0 ? text : text.slice(0, end);
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}

/** `need`: why it must not be empty (default: an encrypted repository's). @throws UsageError */
export function nonEmpty(password: string, from: string, need = 'an empty password: an encrypted repository needs a non-empty one'): string {
  if (password === '') throw new UsageError(`${from} gave ${need}.`);
  return password;
}

/** The first line of a password file; UsageError naming the file (never its content) when unreadable. */
export async function readPasswordFile(file: string, label: string, need?: string): Promise<string> {
  let text: string;
  try {
    const bytes = await readFile(file);
    if (bytes.length > MAX_PASSWORD_OUTPUT) throw new UsageError(`${label} (${file}) is larger than ${MAX_PASSWORD_OUTPUT} bytes: a password file holds the password on its first line.`);
    text = bytes.toString('utf8');
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'is not readable by this user' : code === 'EISDIR' ? 'is a folder' : (err as Error).message;
    throw new UsageError(`Cannot read the password file ${file} (${label}): it ${why}. Fix the path or its permissions.`);
  }
  return nonEmpty(firstLine(text), `The password file ${file} (${label})`, need);
}

/**
 * Runs `command` with `sh -c` and returns the first line of its stdout. `interactive`: the
 * command shares this process's stdin and stderr (a CLI user's `gpg` may ask for a passphrase);
 * otherwise (the server) stdin is empty and stderr is discarded, since it could echo a secret.
 * A command that fails, is killed or prints no line is a UsageError naming `label`, never its
 * output. Output beyond 64 KiB stops the command (a password is one line).
 */
export function runPasswordCommand(command: string, label: string, options: { interactive: boolean; signal?: AbortSignal }): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', command], {
      stdio: [options.interactive ? 'inherit' : 'ignore', 'pipe', options.interactive ? 'inherit' : 'ignore'],
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLong = false;
    child.stdout?.on('data', (chunk: Buffer) => {
      if (tooLong) return;
      size += chunk.length;
      if (size > MAX_PASSWORD_OUTPUT) {
        tooLong = true;
        child.kill('SIGTERM');
        return;
      }
      chunks.push(chunk);
    });
    child.on('error', (err) => {
      if (options.signal?.aborted) return reject(new CancelledError(`Cancelled while ${label} ran.`));
      reject(new UsageError(`${label} could not be started (${(err as Error).message}).`));
    });
    child.on('close', (code, signal) => {
      if (tooLong) return reject(new UsageError(`${label} printed more than ${MAX_PASSWORD_OUTPUT} bytes: it should print the password on one line.`));
      if (options.signal?.aborted) return reject(new CancelledError(`Cancelled while ${label} ran.`));
      const stopped = stoppedBySignal(label, signal);
      if (stopped) return reject(stopped);
      if (code !== 0) {
        const why = signal ? `was killed by ${signal}` : `exited with code ${code}`;
        return reject(new UsageError(`${label} failed: it ${why}${options.interactive ? ' (its messages, if any, are above)' : ''}. Fix the command, or give the password another way.`));
      }
      try {
        resolve(nonEmpty(firstLine(Buffer.concat(chunks).toString('utf8')), label));
      } catch (err) {
        reject(err as Error);
      }
    });
  });
}

/** Reads a password from a registered repository's source (the server's way: never interactive). */
export function readPasswordSource(source: PasswordSource, label: string, options: { interactive: boolean; signal?: AbortSignal } = { interactive: false }): Promise<string> {
  return 'file' in source ? readPasswordFile(source.file, label) : runPasswordCommand(source.command, label, options);
}
