#!/usr/bin/env node
// Thin launcher: the compiled CLI lives in dist/ (npm run build). main() watches stdout itself:
// a reader that stops early (`cairn … | head`) ends the command quietly with 0, a full disk with
// exit 8, and in both cases the command's cleanup (repository locks) runs before the process
// ends (no process.exit here).
import { main } from '../dist/cli/main.js';

process.exitCode = await main(process.argv);
