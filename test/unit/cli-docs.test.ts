/**
 * docs/cli.md keeps up with the CLI: every command of the program commander builds (main.ts
 * buildProgram, the same tree `cairn --help` prints) has a line in the synopsis at the top of
 * docs/cli.md naming each of its long options (`--keep-* …` stands for every --keep- option),
 * and every long option is also described somewhere below the synopsis.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';

const doc = readFileSync(new URL('../../docs/cli.md', import.meta.url), 'utf8');
const synopsisStart = doc.indexOf('```\ncairn ');
const synopsisEnd = doc.indexOf('```\n', synopsisStart + 4);
const synopsis = doc.slice(synopsisStart + 4, synopsisEnd);
const body = doc.slice(synopsisEnd);

/**
 * Options the paragraph right after the synopsis ("Global: …") names for many commands at once
 * (--debug, --password-command): not repeated on each command's line.
 */
const globalParagraph = doc.slice(synopsisEnd, doc.indexOf('\n## ', synopsisEnd));
const GLOBAL = new Set([...globalParagraph.matchAll(/`(--[a-z-]+)/g)].map((m) => m[1] as string));

/** Synopsis entries: a `cairn …` line with its indented continuation lines. */
const entries = synopsis.split(/\n(?=cairn )/).map((e) => e.replace(/\s+/g, ' ').trim());

interface Leaf {
  path: string;
  options: string[];
}

/** Every command that runs something (no subcommands), with its long options. */
function leaves(): Leaf[] {
  const program = buildProgram({ io: { out: () => undefined, err: () => undefined }, signal: new AbortController().signal });
  const out: Leaf[] = [];
  const walk = (c: Command, prefix: string[]): void => {
    for (const sub of c.commands) {
      const path = [...prefix, sub.name()];
      if (sub.commands.length > 0) walk(sub, path);
      else out.push({ path: path.join(' '), options: sub.options.map((o) => o.long).filter((l): l is string => l !== undefined) });
    }
  };
  walk(program, []);
  return out;
}

/** Whether `entry` names `option`, literally or through a `--prefix-*` wildcard. */
function names(entry: string, option: string): boolean {
  if (new RegExp(`${option}(?![a-z-])`).test(entry)) return true;
  return [...entry.matchAll(/(--[a-z-]+)\*/g)].some((m) => option.startsWith(m[1] as string));
}

describe('docs/cli.md and the command tree', () => {
  const all = leaves();

  it('finds the synopsis, the global options and the commands (the walk works)', () => {
    expect([...GLOBAL]).toEqual(expect.arrayContaining(['--debug', '--password-command', '--from-password-command']));
    expect(entries.length).toBeGreaterThan(30);
    expect(all.map((l) => l.path)).toEqual(expect.arrayContaining(['dump', 'diff', 'stats', 'schedule edit', 'backup create', 'token revoke']));
    expect(all.length).toBeGreaterThan(30);
  });

  it('has a synopsis line for every command, naming each of its long options', () => {
    const problems: string[] = [];
    for (const leaf of all) {
      const mine = entries.filter((e) => e === `cairn ${leaf.path}` || e.startsWith(`cairn ${leaf.path} `));
      if (mine.length === 0) {
        problems.push(`no synopsis line for "cairn ${leaf.path}"`);
        continue;
      }
      for (const option of leaf.options) {
        if (GLOBAL.has(option)) continue;
        if (!mine.some((e) => names(e, option))) problems.push(`cairn ${leaf.path}: ${option} is not in its synopsis`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('describes every long option below the synopsis', () => {
    const missing = [...new Set(all.flatMap((l) => l.options))].filter((o) => !names(body, o));
    expect(missing).toEqual([]);
  });

  it('lists no synopsis line for a command that does not exist', () => {
    const paths = new Set(all.map((l) => l.path));
    const unknown = entries.filter((e) => ![...paths].some((p) => e === `cairn ${p}` || e.startsWith(`cairn ${p} `)));
    expect(unknown).toEqual([]);
  });
});
