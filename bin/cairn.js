#!/usr/bin/env node
// Thin launcher: the compiled CLI lives in dist/ (npm run build). main() watches stdout itself:
// a reader that stops early (`cairn … | head`) ends the command quietly with 0, a full disk with
// exit 8, and in both cases the command's cleanup (repository locks) runs before the process
// ends (no process.exit here).
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
  const { main } = await import('../dist/cli/main.js');
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
}
