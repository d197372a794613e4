#!/usr/bin/env node
// Thin launcher: the compiled CLI lives in dist/bundle/ (npm run build). main() watches stdout itself:
// a reader that stops early (`cairn … | head`) ends the command quietly with 0, a full disk with
// exit 8, and in both cases the command's cleanup (repository locks) runs before the process
// ends (process.exit only once main has returned and nothing is left to do: see run()).
//
// Ctrl-C / SIGTERM are caught from the first line on: loading the CLI takes a moment, and a
// signal in it must end the command as a cancel does (error line, exit 130), not kill Node.
let interrupted = false;
const early = () => void (interrupted = true);
process.on('SIGINT', early);
process.on('SIGTERM', early);
// `cairn --version` alone is answered here, from package.json, without loading the CLI (its
// modules take most of a second; issue 22): the same line and exit codes as main's --version
// (a closed pipe 0, any other write error 8, docs/cli.md).
const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  const { readFileSync } = await import('node:fs');
  const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  process.stdout.on('error', (err) => {
    if (err.code === 'EPIPE') return;
    process.stderr.write(`cairn: error: Cannot write to stdout: ${err.message}. Free space on the device stdout goes to (or redirect it elsewhere) and run the command again.\n`);
    process.exitCode = 8;
  });
  process.stdout.write(`${version}\n`);
} else {
  await run();
}

/** Loads and runs the CLI; its exit code becomes the process's. */
async function run() {
  const compileCache = await enableCompileCache();
  // The bundled CLI (scripts/bundle-cli.mjs, part of `npm run build`): the same code as
  // dist/cli/main.js in a few files, which loads in a third of the time.
  const { main } = await import('../dist/bundle/main.js');
  const running = main(process.argv, undefined, { interrupted: () => interrupted });
  // `early` stays installed while main runs (main reads `interrupted` once, at its start; its own
  // handlers do the rest): a signal's listeners must never all be removed, even for a moment, or
  // the operating system's default action (death by signal) applies to a signal landing then.
  process.exitCode = await running;
  // The command has finished and its exit code stands. A Ctrl-C or SIGTERM while Node winds down
  // (connection pools closing) must not turn it into a death by signal: end now, with that code,
  // once stdout and stderr have taken what was written (cli-cancel-race found "exit SIGINT" after
  // a complete backup's JSON had been printed; mysql-kill found one landing between main's end and
  // this handler, when `early` was already gone).
  const finished = () => process.stdout.write('', () => process.stderr.write('', () => process.exit(process.exitCode ?? 0)));
  process.on('SIGINT', finished);
  process.on('SIGTERM', finished);
  process.off('SIGINT', early);
  process.off('SIGTERM', early);
  // Nor may one landing while Node tears itself down after the last event: its natural exit
  // closes every handle, our signal handlers with them, and for the few milliseconds before the
  // process is gone the default action applies again (a Ctrl-C drawn at random around the end of
  // `cairn backup list` killed 21 runs in 200 by SIGINT; mysql-kill saw one after a complete
  // restore). 'beforeExit' comes once nothing is left to do (sockets closed, streams flushed);
  // process.exit from there ends the process without closing the handlers first.
  // process.exit skips Node's own write of the compile cache at a natural exit: write it first.
  process.once('beforeExit', () => {
    try {
      compileCache?.flushCompileCache?.(); // Node ≥ 22.10
    } catch {
      // A cache that cannot be written is only a slower next start.
    }
    process.exit(process.exitCode ?? 0);
  });
}

/**
 * Node 22.1+ can keep V8's compiled code of the CLI's modules on disk between runs
 * (module.enableCompileCache; Node 20 has no such function, and then nothing happens). The cache
 * lives in the user's own cache folder ($XDG_CACHE_HOME or ~/.cache, /cairn/compile-cache),
 * never in a folder another user could have made: the code read back is run. Any failure
 * (no home, a read-only disk, a folder not ours) leaves the cache off, never the command.
 * NODE_DISABLE_COMPILE_CACHE=1 turns it off. Returns node:module when the cache is on (its
 * flushCompileCache writes the cache before process.exit), else undefined.
 */
async function enableCompileCache() {
  const module = await import('node:module');
  if (typeof module.enableCompileCache !== 'function') return undefined;
  try {
    const { mkdirSync, statSync } = await import('node:fs');
    const { homedir } = await import('node:os');
    const { join } = await import('node:path');
    const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
    const dir = join(base, 'cairn', 'compile-cache');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = statSync(dir);
    if (typeof process.getuid === 'function' && (st.uid !== process.getuid() || (st.mode & 0o022) !== 0)) return undefined;
    module.enableCompileCache(dir);
    return module;
  } catch {
    // The command runs without the cache.
    return undefined;
  }
}
