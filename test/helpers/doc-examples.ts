/**
 * Reading the documented examples out of Markdown, shared by the tests that run them
 * (test/integration/docs-examples.test.ts: docs/cli.md and README.md; docs-api-examples.test.ts:
 * docs/api.md). A test decides what its blocks' lines mean and how placeholders are replaced;
 * this module only finds the fenced blocks, their lines and their markers.
 *
 * What cannot run is marked in the doc, in HTML comments right before the block (blank lines
 * between allowed; not shown when rendered):
 *   <!-- examples: not run: REASON -->          the whole block
 *   <!-- examples: not run "TEXT": REASON -->   the lines of the block that contain TEXT
 */
import { it } from 'vitest';

/**
 * A test for a block marked `<!-- examples: not run: REASON -->`: skipped, printing its reason
 * on the line that skips it (a skip always says why).
 */
export function itNotRun(where: string, reason: string): void {
  it(`${where}: not run: ${reason}`, (ctx) => {
    console.log(`not run: ${where}: ${reason}`);
    ctx.skip(reason);
  });
}

/** One fenced block of a document. */
export interface Block {
  /** `docs/cli.md:286`: the document and the line of the opening fence. */
  where: string;
  /** The fence's language (`sh`, `ts`, …). */
  lang: string;
  /** The reason of a `not run:` marker for the whole block. */
  notRun?: string;
  /** `not run "TEXT":` markers: lines containing `text` are not run, for `reason`. */
  skipLines: { text: string; reason: string }[];
  /** Shell blocks: the commands (see extractBlocks). */
  commands: Command[];
  /** The block's lines as written, with their line numbers in the document. */
  body: { n: number; text: string }[];
}

export interface Command {
  /** Line number in the document. */
  line: number;
  /** The command as documented, continuation lines joined, without its trailing comment. */
  text: string;
  /** The exit code the line documents (`# exit N`), else 0. */
  exit: number;
  /** The trailing comment (after `#`, trimmed), when there is one. */
  comment?: string;
}

export const MARKER = /^<!--\s*examples:\s*not run(?:\s+"([^"]+)")?\s*:\s*(.*?)\s*-->\s*$/;

export interface ExtractOptions {
  /** Only the lines under this `## ` heading. */
  section?: string;
  /** Fence languages to take (default: `sh`). */
  langs?: string[];
}

/**
 * The fenced blocks of `text` (a Markdown document named `doc`) in the languages asked for, with
 * their markers. For shell blocks (`sh`, `bash`, `shell`) `commands` holds the lines that run:
 * continuation lines (`\`) joined, blank and comment lines left out, a trailing `# comment` split
 * off (a `# exit N` in it is the documented exit code); in a block whose commands start with
 * `$ `, the other lines are output and are left out.
 */
export function extractBlocks(doc: string, text: string, options: ExtractOptions | string = {}): Block[] {
  const { section, langs = ['sh'] } = typeof options === 'string' ? { section: options } : options;
  const lines = text.split('\n');
  const blocks: Block[] = [];
  let inSection = section === undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (section !== undefined && /^## /.test(line)) inSection = line.slice(3).trim() === section;
    const fence = /^```(\w+)\s*$/.exec(line);
    if (!inSection || !fence || !langs.includes(fence[1]!)) continue;
    const block: Block = { where: `${doc}:${i + 1}`, lang: fence[1]!, skipLines: [], commands: [], body: [] };
    // Markers: the HTML comments right above the fence (blank lines between allowed).
    for (let j = i - 1; j >= 0; j--) {
      const above = lines[j]!.trim();
      if (above === '') continue;
      const m = MARKER.exec(above);
      if (!m) break;
      if (m[1] !== undefined) block.skipLines.push({ text: m[1], reason: m[2]! });
      else block.notRun = m[2]!;
    }
    for (i++; i < lines.length && !/^```/.test(lines[i]!); i++) block.body.push({ n: i + 1, text: lines[i]! });
    if (['sh', 'bash', 'shell'].includes(block.lang)) block.commands = shellCommands(block.body);
    blocks.push(block);
  }
  return blocks;
}

/** The commands of a shell block's lines (see extractBlocks). */
function shellCommands(body: { n: number; text: string }[]): Command[] {
  const commands: Command[] = [];
  const prompted = body.some((b) => b.text.startsWith('$ '));
  for (let k = 0; k < body.length; k++) {
    let text = body[k]!.text;
    const n = body[k]!.n;
    if (prompted) {
      if (!text.startsWith('$ ')) continue; // output
      text = text.slice(2);
    }
    if (text.trim() === '' || text.trimStart().startsWith('#')) continue;
    while (text.endsWith('\\') && k + 1 < body.length) text = `${text.slice(0, -1)} ${body[++k]!.text.trim()}`;
    const { command, comment } = splitComment(text);
    const exit = /\bexit (\d+)\b/.exec(comment ?? '');
    commands.push({ line: n, text: command.trim(), exit: exit ? Number(exit[1]) : 0, ...(comment !== undefined ? { comment: comment.trim() } : {}) });
  }
  return commands;
}

/** A shell line and its trailing `# comment` (a `#` outside quotes after a space). */
export function splitComment(text: string): { command: string; comment?: string } {
  let quote: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === "'" || c === '"') quote = c;
    else if (c === '#' && (i === 0 || /\s/.test(text[i - 1]!))) return { command: text.slice(0, i), comment: text.slice(i + 1) };
  }
  return { command: text };
}
