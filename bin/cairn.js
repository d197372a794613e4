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
const { main } = await import('../dist/cli/main.js');
const run = main(process.argv, undefined, { interrupted: () => interrupted });
// `early` stays installed while main runs (main reads `interrupted` once, at its start; its own
// handlers do the rest): a signal's listeners must never all be removed, even for a moment, or
// the operating system's default action (death by signal) applies to a signal landing then.
process.exitCode = await run;
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
