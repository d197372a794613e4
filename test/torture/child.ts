/** Runs the built CLI as a child process, with a timeout and an optional SIGKILL at a given moment. */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project folder: the nearest parent holding bin/cairn.js (this file runs from test/torture or a compiled copy). */
function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'bin', 'cairn.js'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('torture: cannot find bin/cairn.js above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
  return dir;
}

export const PROJECT_ROOT = projectRoot();
export const CLI = join(PROJECT_ROOT, 'bin', 'cairn.js');

export interface ChildResult {
  args: string[];
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The harness sent its kill signal (SIGKILL, or SIGTERM to cancel) before the child exited. */
  killed: boolean;
  /** The child ran past its timeout (and was killed): a hang. */
  timedOut: boolean;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface ChildOptions {
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** ms after spawn to signal the child (if still running). */
  killAfterMs?: number;
  /** SIGKILL (default), or SIGTERM: a cancellation the CLI handles (exit 130). */
  killSignal?: 'SIGKILL' | 'SIGTERM';
  timeoutMs: number;
}

export function runCairn(args: string[], options: ChildOptions): Promise<ChildResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let killed = false;
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const killTimer =
      options.killAfterMs !== undefined
        ? setTimeout(() => {
            if (child.exitCode === null && child.signalCode === null) {
              killed = true;
              child.kill(options.killSignal ?? 'SIGKILL');
            }
          }, options.killAfterMs)
        : undefined;
    const timeout = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timeout);
      if (killTimer) clearTimeout(killTimer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timeout);
      if (killTimer) clearTimeout(killTimer);
      resolve({ args, code, signal, killed: killed && !timedOut, timedOut, stdout, stderr, ms: Date.now() - started });
    });
  });
}

export function describeResult(r: ChildResult): string {
  const how = r.timedOut ? `timed out after ${r.ms} ms` : r.killed ? `${r.signal ? 'killed' : `signalled, exit ${r.code},`} after ${r.ms} ms` : `exit ${r.code} after ${r.ms} ms`;
  const err = r.stderr.trim().split('\n').slice(-3).join(' | ');
  return `cairn ${r.args.join(' ')}: ${how}${err ? `: ${err}` : ''}`;
}

type CliMain = (argv: string[], io: { out: (t: string) => void; err: (t: string) => void }) => Promise<number>;
let cliMain: Promise<CliMain> | undefined;

/**
 * Runs a command of the built CLI inside this process (same dist/ code as a child would run,
 * without a Node start-up each time): for the checks after every step, which are most of the
 * commands a run issues and are never killed. The environment must already be process.env.
 */
export async function runCairnInProcess(args: string[]): Promise<ChildResult> {
  const started = Date.now();
  cliMain ??= import(join(PROJECT_ROOT, 'dist', 'cli', 'main.js')).then((m: { main: CliMain }) => m.main);
  const main = await cliMain;
  let stdout = '';
  let stderr = '';
  const code = await main(['node', 'cairn', ...args], {
    out: (t) => (stdout += t.endsWith('\n') ? t : `${t}\n`),
    err: (t) => (stderr += t.endsWith('\n') ? t : `${t}\n`),
  });
  return { args, code, signal: null, killed: false, timedOut: false, stdout, stderr, ms: Date.now() - started };
}
