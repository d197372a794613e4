/**
 * The documented examples run. Every `cairn …` / `npx cairn …` line of the fenced ```sh blocks of
 * docs/cli.md and of README.md's "Using it" section runs with bash, as written but for the
 * placeholders below, in a temporary folder of its own per block, and must exit 0 (or the code
 * the line documents). A documented example that fails fails this test.
 *
 * Placeholder convention (what the docs write, what it stands for here; W is the block's folder):
 * - Paths under /backups/ and /srv/, also inside URLs (file:///backups/repo,
 *   sqlite:///srv/app.db): the same paths under W. /srv/app.db is a SQLite database (a copy of
 *   Chinook). A repository under /backups/ that the block names but does not `repo init` itself is
 *   initialised before the block runs, with one backup of /srv/app.db in it.
 * - A backup id `<source>-<yyyyMMdd>[-<HHmmss>]` (app-20261122-031500): the newest backup whose id
 *   starts with `<source>-` in the repositories under W/backups when the line runs.
 * - `npx cairn` runs as `cairn`, which is the built bin/cairn.js (first on PATH); CAIRN_DATA_DIR
 *   is W/data, CAIRN_REPO, CAIRN_SERVER and CAIRN_TOKEN are unset.
 * - A trailing comment `# exit N` documents that the line exits with N (default 0).
 * - In a block whose commands start with `$ `, the other lines are output and are not run.
 *
 * What cannot run here is marked in the docs, in an HTML comment right before the block (not
 * shown when rendered); the test prints each reason:
 *   <!-- examples: not run: REASON -->          the whole block
 *   <!-- examples: not run "TEXT": REASON -->   the lines of the block that contain TEXT
 * Anything else that looks like a placeholder (another absolute path, a host in a URL, an s3://,
 * azure:// or gs:// repository, a `<name>`, `…` or `[--option]` of a synopsis) or a line that is
 * not a cairn command fails the test with what to do: add a rule here or mark the block. Nothing
 * runs outside the temporary folder.
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHINOOK, CLI, PROJECT_ROOT, cairn } from '../helpers/cli.js';
import { extractBlocks, itNotRun, type Block } from '../helpers/doc-examples.js';

const HOW_TO = 'add a placeholder rule to test/integration/docs-examples.test.ts, or mark the block in the doc with <!-- examples: not run: REASON --> (or not run "TEXT": REASON for some of its lines)';
const ID_PLACEHOLDER = /\b([a-z][a-z0-9]*(?:-[a-z0-9]+)*?)-(20\d{6})(?:-\d{6})?\b/g;

/**
 * The command with its placeholders replaced for folder `w`, or the problems that keep it from
 * running (unknown placeholders, not a cairn command).
 */
function substitute(text: string, w: string): { command: string; problems: string[] } {
  const problems: string[] = [];
  if (!/^(?:[A-Z_][A-Z0-9_]*=\S*\s+)*(?:npx\s+)?cairn(?:\s|$)/.test(text)) problems.push('not a cairn command line (only `cairn …` and `npx cairn …` lines run)');
  const command = text.replace(/\bnpx\s+cairn\b/g, 'cairn').replace(/(?<![\w.])(?<!:\/)\/(backups|srv)(?=\/|\b)/g, `${w}/$1`);
  const rest = command.split(w).join('W');
  const unknown = [
    ...rest.matchAll(/(?:^|[\s='"(])(\/[^\s'"]*)/g),
    ...rest.matchAll(/(\w+:\/\/\/[^\s'"]*)/g),
    ...rest.matchAll(/\b((?:postgres(?:ql)?|s3|azure|gs|https?):\/\/[^\s'"]*)/g),
    ...rest.matchAll(/(<[A-Za-z][\w .-]*>|…|\[--?[\w-]+)/g),
  ].map((m) => m[1]!);
  for (const u of new Set(unknown)) problems.push(`unknown placeholder ${JSON.stringify(u)}`);
  return { command, problems };
}

let work: string;
const CAIRN_ENV = (w: string): NodeJS.ProcessEnv => ({
  PATH: `${join(work, 'bin')}:${process.env.PATH ?? ''}`,
  CAIRN_DATA_DIR: join(w, 'data'),
  CAIRN_REPO: '',
  CAIRN_SERVER: '',
  CAIRN_TOKEN: '',
});

/** The ids of the backups in the repositories under `w`/backups (each oldest first). */
function backupIds(w: string): string[] {
  const root = join(w, 'backups');
  if (!existsSync(root)) return [];
  const ids: string[] = [];
  for (const name of readdirSync(root)) {
    if (!existsSync(join(root, name, 'config'))) continue;
    const r = cairn(['backup', 'list', '--repo', join(root, name), '--json'], { env: CAIRN_ENV(w) });
    if (r.code !== 0) throw new Error(`backup list of ${name} exited ${r.code}: ${r.stderr}`);
    ids.push(...(JSON.parse(r.stdout) as { backups: { id: string }[] }).backups.map((b) => b.id));
  }
  return ids;
}

/** Replaces each backup id placeholder of `command` with the newest matching backup in `w`. */
function resolveIds(command: string, w: string): { command: string; problems: string[] } {
  const problems: string[] = [];
  if (!new RegExp(ID_PLACEHOLDER.source).test(command)) return { command, problems };
  const ids = backupIds(w);
  const resolved = command.replace(ID_PLACEHOLDER, (id: string, source: string) => {
    const found = ids.filter((x) => x.startsWith(`${source}-`) && /^\d/.test(x.slice(source.length + 1))).at(-1);
    if (found === undefined) problems.push(`backup id placeholder ${id}: no backup of "${source}" in the repositories under /backups (have: ${ids.join(', ') || 'none'}); an earlier line of the block must make one`);
    return found ?? id;
  });
  return { command: resolved, problems };
}

/**
 * Runs a block's commands in a new folder; returns one line per failure (empty when all
 * passed) and prints each line not run with its reason.
 */
function runBlock(block: Block): string[] {
  const w = mkdtempSync(join(work, 'block-'));
  mkdirSync(join(w, 'srv'));
  cpSync(CHINOOK, join(w, 'srv', 'app.db'));
  const all = block.commands.map((c) => c.text).join('\n');
  // Repositories the block uses without creating them: initialised, with a backup of /srv/app.db.
  for (const m of new Set([...all.matchAll(/(?<![\w.])(?<!:\/)\/backups\/([\w.-]+)/g)].map((x) => x[1]!))) {
    if (new RegExp(`repo init (?:file://)?/backups/${m}\\b`).test(all)) continue;
    const repo = join(w, 'backups', m);
    for (const args of [['repo', 'init', repo], ['backup', 'create', '--source', `sqlite://${join(w, 'srv', 'app.db')}`, '--repo', repo]]) {
      const r = cairn(args, { env: CAIRN_ENV(w) });
      if (r.code !== 0) return [`setup: cairn ${args.join(' ')} exited ${r.code}: ${r.stderr}`];
    }
  }
  const failures: string[] = [];
  for (const c of block.commands) {
    const where = `${block.where.split(':')[0]}:${c.line}`;
    const skip = block.skipLines.find((s) => c.text.includes(s.text));
    if (skip) {
      console.log(`not run: ${where}: ${skip.reason}: ${c.text}`);
      continue;
    }
    const sub = substitute(c.text, w);
    const ids = sub.problems.length === 0 ? resolveIds(sub.command, w) : { command: sub.command, problems: [] };
    const problems = [...sub.problems, ...ids.problems];
    if (problems.length > 0) {
      failures.push(`${where}: ${c.text}\n  ${problems.join('\n  ')}\n  (${HOW_TO})`);
      continue;
    }
    const r = spawnSync('bash', ['-o', 'pipefail', '-c', ids.command], { cwd: w, env: { ...process.env, ...CAIRN_ENV(w) }, encoding: 'utf8', timeout: 120_000 });
    if (r.status !== c.exit) {
      failures.push(`${where}: ${c.text}\n  ran: ${ids.command}\n  exited ${r.status ?? r.signal} (documented: ${c.exit})\n  stderr: ${r.stderr.trim()}`);
    }
  }
  return failures;
}

const DOCS: [string, string | undefined][] = [
  ['docs/cli.md', undefined],
  ['README.md', 'Using it'],
];
const BLOCKS = DOCS.flatMap(([doc, section]) => extractBlocks(doc, readFileSync(join(PROJECT_ROOT, doc), 'utf8'), section));

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'cairn-docs-examples-'));
  mkdirSync(join(work, 'bin'));
  writeFileSync(join(work, 'bin', 'cairn'), `#!/bin/sh\nexec '${process.execPath}' '${CLI}' "$@"\n`, { mode: 0o755 });
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('the extractor', () => {
  it('finds the sh blocks of both documents, README.md\'s "Using it" among them', () => {
    expect(BLOCKS.filter((b) => b.where.startsWith('README.md')).length).toBeGreaterThanOrEqual(2);
    expect(BLOCKS.filter((b) => b.where.startsWith('docs/cli.md')).length).toBeGreaterThanOrEqual(1);
    expect(BLOCKS.filter((b) => b.notRun === undefined && b.commands.length > 0).length).toBeGreaterThanOrEqual(2);
  });

  it('reads prompts, continuations, comments and documented exit codes; reports unknown placeholders', () => {
    const md = [
      '<!-- examples: not run "s3://": needs S3 -->',
      '```sh',
      'npx cairn repo init /backups/repo   # or file:///backups/repo',
      'cairn backup show app-20261122-031500 --repo /backups/repo \\',
      "  --json  # exit 3",
      '```',
      '```sh',
      '$ cairn verify --repo /var/lib/repo',
      'output # not a command',
      '```',
    ].join('\n');
    const [a, b] = extractBlocks('x.md', md);
    expect(a!.skipLines).toEqual([{ text: 's3://', reason: 'needs S3' }]);
    expect(a!.commands).toEqual([
      { line: 3, text: 'npx cairn repo init /backups/repo', exit: 0, comment: 'or file:///backups/repo' },
      { line: 4, text: 'cairn backup show app-20261122-031500 --repo /backups/repo  --json', exit: 3, comment: 'exit 3' },
    ]);
    expect(b!.commands.map((c) => c.text)).toEqual(['cairn verify --repo /var/lib/repo']);
    expect(substitute('npx cairn restore x --repo file:///backups/r --to sqlite:///srv/a.db', '/w')).toEqual({ command: 'cairn restore x --repo file:///w/backups/r --to sqlite:///w/srv/a.db', problems: [] });
    expect(substitute('cairn verify --repo /var/lib/repo', '/w').problems).toEqual(['unknown placeholder "/var/lib/repo"']);
    expect(substitute("cairn repo add o 's3://backups/cairn'", '/w').problems).toEqual(['unknown placeholder "s3://backups/cairn"']);
    expect(substitute('curl http://x', '/w').problems[0]).toMatch(/not a cairn command/);
  });

  it('a failing example fails its block, with the command and its error', () => {
    const failures = runBlock({ where: 'x.md:1', lang: 'sh', skipLines: [], body: [], commands: [{ line: 2, text: 'cairn backup show nope-1 --repo /backups/repo', exit: 0 }] });
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatch(/x\.md:2: cairn backup show nope-1[\s\S]*exited 3 \(documented: 0\)[\s\S]*stderr: cairn: error: /);
  });
});

describe('documented examples', () => {
  for (const block of BLOCKS) {
    if (block.notRun !== undefined) {
      itNotRun(block.where, block.notRun);
      continue;
    }
    it(`${block.where} (${block.commands.length} commands)`, () => {
      expect(block.commands.length, `${block.where}: an sh block without cairn commands; mark it <!-- examples: not run: REASON -->`).toBeGreaterThan(0);
      expect(runBlock(block)).toEqual([]);
    }, 300_000);
  }
});
