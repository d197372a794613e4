/**
 * The examples of docs/api.md run (issue 16). Every fenced ```sh block's `curl …` lines run with
 * bash against a real cairn server this test starts, as written but for the placeholders below,
 * and must answer 2xx (or the status a trailing comment starts with, `# 409 …`) with a body that
 * parses as JSON (but for /metrics and /v1/jobs/{id}/events); a job an answer starts must end
 * SUCCESS. Every ```ts block is type-checked against the SDK (src/sdk/index.ts) with the
 * TypeScript compiler, then executed against the same server. Blocks run in document order, each
 * once no job of an earlier one runs.
 *
 * The server (startServer, in this process, no --allow-urls, no BACKUP_* variables) has in its
 * data folder an admin, an operator and a viewer token, and these registered names:
 * - sources `shop` (a SQLite database, a copy of Chinook), `shop_copy` and `shop-copy` (SQLite
 *   files that restores create);
 * - file repositories `prod` (holding one backup of `shop` before the first block), `offsite`.
 *
 * Placeholder convention (what the docs write, what it stands for here):
 * - `$S`, `$CAIRN_SERVER`, `http://localhost:8080`, `http://127.0.0.1:8080`: the server's URL.
 * - `$T` (as the docs define it) the operator token; `$CAIRN_TOKEN`, `$TOKEN` the admin token.
 * - `$H`: `-H "Authorization: Bearer $T" -H 'content-type: application/json'`, as the docs
 *   define it (written out before bash runs: a variable could not carry the quotes).
 * - A backup id `<source>-<yyyyMMdd>[-<HHmmss>]` (shop-20261130-030000), in TS also `'<source>-…'`:
 *   the newest backup of that source in the repository the line names (`"repository":"X"`,
 *   `repository=X`, `"from":"X"`, `repository: 'X'`), else in `prod`, when the line runs.
 * - `<id>` in a curl line: the job id of the previous answer of the block.
 * - TS: `import … from 'cairn-backup/sdk'` imports src/sdk/index.ts; `cairn` (unless the block
 *   declares it) is a client with the operator token and `admin` one with the admin token;
 *   `process.env.CAIRN_TOKEN` is the admin token.
 * - A schedule a block names (`"name":"X"`, `name: 'X'`) is removed, and the files of `shop_copy`
 *   and `shop-copy` are deleted, before the block runs: blocks that show the same schedule or
 *   restore each create it anew. A TS block's jobs (also those it does not wait for) must end
 *   SUCCESS.
 *
 * What cannot run here is marked in the doc with `<!-- examples: not run: REASON -->` (or `not
 * run "TEXT": REASON` for the lines containing TEXT) right before the block; the test prints each
 * reason. A marked TS block is still type-checked, only not executed. Anything else that looks
 * like a placeholder (`<name>`, `…`, another `$VAR`, a URL that is not the server's) or a line
 * of an sh block that is not a curl command fails the test with what to do: add a rule here or
 * mark the block.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TERMINAL_STATES } from '../../src/catalog/types.js';
import { SqliteTokenStore } from '../../src/catalog/tokens.js';
import { Repository } from '../../src/repo/repository.js';
import { CairnApiError, CairnClient, JobFailedError } from '../../src/sdk/index.js';
import { catalogFile, startServer, type RunningServer } from '../../src/server/index.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { waitJob } from '../helpers/api.js';
import { CHINOOK, PROJECT_ROOT } from '../helpers/cli.js';
import { extractBlocks, itNotRun, type Block, type Command } from '../helpers/doc-examples.js';

const DOC = 'docs/api.md';
const BLOCKS = extractBlocks(DOC, readFileSync(join(PROJECT_ROOT, DOC), 'utf8'), { langs: ['sh', 'ts', 'typescript'] });
const SDK = join(PROJECT_ROOT, 'src', 'sdk', 'index.js');
const HOW_TO = `add a placeholder rule to test/integration/docs-api-examples.test.ts, or mark the block in ${DOC} with <!-- examples: not run: REASON --> (or not run "TEXT": REASON for some of its lines)`;
const ID_PLACEHOLDER = /\b([a-z][a-z0-9]*(?:[-_][a-z0-9]+)*?)-(20\d{6})(?:-\d{6})?\b/g;
const DOC_HOSTS = /https?:\/\/(?:localhost|127\.0\.0\.1):8080/g;
/** Registered SQLite sources that restores create; removed before each block. */
const RESTORE_TARGETS = ['shop_copy', 'shop-copy'];
const KNOWN_VARS = new Set(['S', 'T', 'CAIRN_SERVER', 'CAIRN_TOKEN', 'TOKEN']);

let work: string;
let server: RunningServer;
let tokens: { admin: string; operator: string; viewer: string };
let admin: CairnClient;
let operator: CairnClient;

let typeErrors: string[];
/** A ts block the compiler must refuse (a misspelt field): the check can fail. */
const WRONG_TS: Block = { where: 'wrong.md:1', lang: 'ts', skipLines: [], commands: [], body: [{ n: 2, text: '// a comment' }, { n: 3, text: "await cairn.backups.create({ sorce: 'shop' });" }] };

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'cairn-api-examples-'));
  // First: compiling blocks this process for seconds, which must not happen while the server
  // and its clients hold idle keep-alive connections (the server would close them under a request).
  typeErrors = typeCheck([...BLOCKS.filter((b) => b.lang !== 'sh'), WRONG_TS]);
  const dataDir = join(work, 'data');
  const store = new SqliteTokenStore(catalogFile(dataDir));
  tokens = { admin: store.create('admin', 'docs').token, operator: store.create('operator').token, viewer: store.create('viewer').token };
  store.close();
  copyFileSync(CHINOOK, join(work, 'shop.db'));
  for (const name of ['prod', 'offsite']) await Repository.init(new FileSystemStorage(join(work, name)));
  server = await startServer({ dataDir, port: 0, scheduleTickMs: 3600_000, env: {}, log: () => {} });
  admin = new CairnClient({ url: server.url, token: tokens.admin });
  operator = new CairnClient({ url: server.url, token: tokens.operator });
  await admin.sources.add('shop', `sqlite://${join(work, 'shop.db')}`);
  for (const target of RESTORE_TARGETS) await admin.sources.add(target, `sqlite://${join(work, `${target}.db`)}`);
  await admin.repositories.add('prod', `file://${join(work, 'prod')}`);
  await admin.repositories.add('offsite', `file://${join(work, 'offsite')}`);
  await operator.backups.create({ source: 'shop', repository: 'prod' }, { waitForCompletion: true, pollMs: 25 });
  mkdirSync(join(work, 'bin'));
  // The shim curl: the documented command, its body kept in a file, its status on stdout.
  writeFileSync(join(work, 'bin', 'curl'), `#!/bin/sh\nexec /usr/bin/curl -sS -o "$EXAMPLE_BODY" -w '%{http_code}' "$@"\n`, { mode: 0o755 });
}, 60_000);

afterAll(async () => {
  await server?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** The newest complete backup of `source` in registered repository `repository`. */
async function newestBackup(source: string, repository: string): Promise<string | undefined> {
  const backups = await admin.backups.list({ repository });
  return backups
    .filter((b) => b.status === 'SUCCESS' && b.id.startsWith(`${source}-`))
    .sort((a, b) => String(a.createdAt).localeCompare(String(b.createdAt)))
    .at(-1)?.id ?? undefined;
}

/** The repository a line names (see the header), else `prod`. */
function repositoryOf(text: string): string {
  return /(?:"repository"\s*:\s*"|repository=|"from"\s*:\s*"|repository:\s*')([\w-]+)/.exec(text)?.[1] ?? 'prod';
}

/** Replaces each backup id placeholder of `text` (and, with `ellipsis`, `'<source>-…'`). */
async function resolveIds(text: string, problems: string[], ellipsis = false): Promise<string> {
  const repository = repositoryOf(text);
  const found = new Map<string, string>();
  const wanted = [...text.matchAll(ID_PLACEHOLDER)].map((m) => [m[0], m[1]!] as const);
  if (ellipsis) wanted.push(...[...text.matchAll(/'([a-z][a-z0-9_]*)-…'/g)].map((m) => [m[0], m[1]!] as const));
  for (const [placeholder, source] of wanted) {
    const id = await newestBackup(source, repository).catch((err: unknown) => {
      problems.push(`backup id placeholder ${placeholder}: cannot list repository "${repository}": ${String(err)}`);
      return '';
    });
    if (id === '') continue;
    if (id === undefined) problems.push(`backup id placeholder ${placeholder}: no backup of "${source}" in repository "${repository}"`);
    else found.set(placeholder, placeholder.startsWith("'") ? `'${id}'` : id);
  }
  let out = text;
  for (const [placeholder, id] of found) out = out.split(placeholder).join(id);
  return out;
}

/**
 * A curl line with its placeholders replaced, or the problems that keep it from running;
 * `previousJob` is the job id of the block's previous answer.
 */
function substituteCurl(text: string, url: string, previousJob?: string): { command: string; problems: string[] } {
  const problems: string[] = [];
  if (!/^curl\s/.test(text)) problems.push('not a curl command line (only `curl …` lines of docs/api.md run)');
  let command = text.replace(/\$H\b/g, `-H "Authorization: Bearer $T" -H 'content-type: application/json'`).replace(DOC_HOSTS, url);
  if (command.includes('<id>')) {
    if (previousJob === undefined) problems.push('<id>: no earlier answer of the block holds a job');
    else command = command.split('<id>').join(previousJob);
  }
  const rest = command.split(url).join('URL');
  const unknown = [
    ...[...rest.matchAll(/\$\{?([A-Za-z_]\w*)/g)].filter((m) => !KNOWN_VARS.has(m[1]!)).map((m) => m[0]),
    ...[...rest.matchAll(/\b[a-z][a-z0-9+]*:\/\/[^\s'",]*/g)].map((m) => m[0]),
    ...[...rest.matchAll(/<[A-Za-z][\w .-]*>|…/g)].map((m) => m[0]),
  ];
  for (const u of new Set(unknown)) problems.push(`unknown placeholder ${JSON.stringify(u)}`);
  return { command, problems };
}

/** The HTTP status a curl line documents: its trailing comment's leading 3-digit number. */
function documentedStatus(c: Command): number | undefined {
  const m = /^(\d{3})\b/.exec(c.comment ?? '');
  return m ? Number(m[1]) : undefined;
}

/** Runs `command` with bash; the status and body the curl shim recorded. */
function runCurl(command: string): Promise<{ status: number; body: string; stderr: string; code: number | null }> {
  const bodyFile = join(work, `body-${Math.random().toString(36).slice(2)}`);
  const env = {
    PATH: `${join(work, 'bin')}:${process.env.PATH ?? ''}`,
    EXAMPLE_BODY: bodyFile,
    HOME: work,
    S: server.url,
    CAIRN_SERVER: server.url,
    T: tokens.operator,
    CAIRN_TOKEN: tokens.admin,
    TOKEN: tokens.admin,
  };
  return new Promise((resolve, reject) => {
    // Asynchronous: the server answers from this process.
    const child = spawn('bash', ['-o', 'pipefail', '-c', command], { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      let body = '';
      try {
        body = readFileSync(bodyFile, 'utf8');
        rmSync(bodyFile);
      } catch {
        // no body written
      }
      resolve({ status: Number(stdout.trim().slice(-3)) || 0, body, stderr, code });
    });
  });
}

/** Waits until no job of the server runs (the examples must not collide: one backup per source). */
async function settle(): Promise<void> {
  for (const job of await admin.jobs.list()) if (!TERMINAL_STATES.has(job.state)) await waitJob(server.url, tokens.admin, job.id);
}

/** Removes the schedules the block names (see the header), when they exist. */
async function removeNamedSchedules(text: string): Promise<void> {
  const names = new Set([...text.matchAll(/"name"\s*:\s*"([\w-]+)"|\bname:\s*'([\w-]+)'/g)].map((m) => (m[1] ?? m[2])!));
  const existing = new Set((await admin.schedules.list()).map((s) => s.name));
  for (const name of names) if (existing.has(name)) await admin.schedules.remove(name);
}

/** Runs a block's curl lines; one line per failure (empty when all passed). */
async function runCurlBlock(block: Block): Promise<string[]> {
  const failures: string[] = [];
  let previousJob: string | undefined;
  for (const c of block.commands) {
    const where = `${DOC}:${c.line}`;
    const skip = block.skipLines.find((s) => c.text.includes(s.text));
    if (skip) {
      console.log(`not run: ${where}: ${skip.reason}: ${c.text}`);
      continue;
    }
    const sub = substituteCurl(c.text, server.url, previousJob);
    const command = sub.problems.length === 0 ? await resolveIds(sub.command, sub.problems) : sub.command;
    if (sub.problems.length > 0) {
      failures.push(`${where}: ${c.text}\n  ${sub.problems.join('\n  ')}\n  (${HOW_TO})`);
      continue;
    }
    const r = await runCurl(command);
    const shown = `${where}: ${c.text}\n  ran: ${command.split(tokens.operator).join('$T').split(tokens.admin).join('$CAIRN_TOKEN')}`;
    const expected = documentedStatus(c);
    const ok = expected === undefined ? r.status >= 200 && r.status < 300 : r.status === expected;
    if (!ok) {
      failures.push(`${shown}\n  answered ${r.status} (documented: ${expected ?? '2xx'}): ${r.body.slice(0, 500)}${r.stderr ? `\n  stderr: ${r.stderr.trim()}` : ''}`);
      continue;
    }
    if (/\/metrics\b|\/events\b/.test(command)) continue;
    let json: { job?: { id?: string } } | undefined;
    try {
      json = JSON.parse(r.body) as typeof json;
    } catch {
      failures.push(`${shown}\n  answered ${r.status} with a body that is not JSON: ${r.body.slice(0, 200)}`);
      continue;
    }
    if (json?.job?.id !== undefined && r.status === 202) {
      previousJob = json.job.id;
      const end = await waitJob(server.url, tokens.admin, previousJob);
      if (end.state !== 'SUCCESS') failures.push(`${shown}\n  its job ${end.id} ended ${end.state}: ${JSON.stringify(end.error)}`);
    }
  }
  return failures;
}

/** A ts block as a module file for the compiler: the prelude of the header's rules, then its lines. */
function tsModule(block: Block): { text: string; prelude: number } {
  const code = block.body.map((b) => b.text).join('\n').replace(/(['"])cairn-backup\/sdk\1/g, `'${SDK}'`);
  const prelude = [
    ...(/import\s*\{[^}]*\bCairnClient\b/.test(code) ? [] : [`import { CairnClient } from '${SDK}';`]),
    ...(/\bconst cairn\b/.test(code) ? [] : ['declare const cairn: CairnClient;']),
    ...(/\bconst admin\b/.test(code) ? [] : ['declare const admin: CairnClient;']),
    'export {};',
  ];
  return { text: `${prelude.join('\n')}\n${code}\n`, prelude: prelude.length };
}

/** The compiler's errors for every ts block, as `docs/api.md:LINE: message`. */
function typeCheck(blocks: Block[]): string[] {
  const dir = mkdtempSync(join(work, 'ts-'));
  const files = new Map<string, { block: Block; prelude: number }>();
  blocks.forEach((block, i) => {
    const file = join(dir, `block-${i}.mts`); // .mts: an ES module, where top-level await is allowed
    const { text, prelude } = tsModule(block);
    writeFileSync(file, text);
    files.set(file, { block, prelude });
  });
  const config = ts.readConfigFile(join(PROJECT_ROOT, 'tsconfig.json'), (f) => ts.sys.readFile(f));
  const { options } = ts.parseJsonConfigFileContent(config.config, ts.sys, PROJECT_ROOT);
  const program = ts.createProgram([...files.keys()], { ...options, noEmit: true, rootDir: undefined, typeRoots: [join(PROJECT_ROOT, 'node_modules', '@types')] });
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const message = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    const entry = d.file ? files.get(d.file.fileName) : undefined;
    if (!d.file || !entry || d.start === undefined) return `${d.file?.fileName ?? '?'}: ${message}`;
    const { line } = d.file.getLineAndCharacterOfPosition(d.start);
    const docLine = entry.block.body[line - entry.prelude]?.n ?? entry.block.where;
    return `${entry.block.where.split(':')[0]}:${docLine}: ${message}`;
  });
}

/** Executes a ts block against the server (see the header for what its names stand for). */
async function runTsBlock(block: Block): Promise<void> {
  const problems: string[] = [];
  let code = block.body.map((b) => b.text).join('\n').replace(DOC_HOSTS, server.url);
  code = await resolveIds(code, problems, true);
  const leftover = [...code.matchAll(/<[A-Za-z][\w .-]*>|…/g)].map((m) => m[0]);
  for (const u of new Set(leftover)) problems.push(`unknown placeholder ${JSON.stringify(u)}`);
  if (problems.length > 0) throw new Error(`${block.where}: ${problems.join('; ')} (${HOW_TO})`);
  const js = ts
    .transpileModule(code, { compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext } })
    .outputText.replace(/^\s*import\s[^;]*;\s*$/gm, '')
    .replace(/^\s*export\s*\{\s*\};?\s*$/gm, '');
  const given: Record<string, unknown> = { CairnClient, CairnApiError, JobFailedError, process: { env: { CAIRN_TOKEN: tokens.admin } } };
  if (!/\bconst cairn\b/.test(code)) given.cairn = operator;
  if (!/\bconst admin\b/.test(code)) given.admin = admin;
  const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor as new (...args: string[]) => (...values: unknown[]) => Promise<void>;
  try {
    await new AsyncFunction(...Object.keys(given), js)(...Object.values(given));
  } catch (err) {
    const detail = err instanceof JobFailedError ? ` (job ${err.job.id}: ${JSON.stringify(err.job.error)})` : '';
    throw new Error(`${block.where}: the example threw ${String(err)}${detail}`);
  }
}

describe('the rules', () => {
  it('finds the sh and ts blocks of docs/api.md', () => {
    expect(BLOCKS.filter((b) => b.lang === 'sh' && b.notRun === undefined).length).toBeGreaterThanOrEqual(5);
    expect(BLOCKS.filter((b) => b.lang === 'ts').length).toBeGreaterThanOrEqual(5);
  });

  it('replaces $H, the server, <id>; reads a documented status; reports unknown placeholders', () => {
    const sub = substituteCurl('curl -s $H -X POST $S/v1/jobs/<id>/cancel', 'http://127.0.0.1:1', 'backup-1');
    expect(sub).toEqual({ command: `curl -s -H "Authorization: Bearer $T" -H 'content-type: application/json' -X POST $S/v1/jobs/backup-1/cancel`, problems: [] });
    expect(substituteCurl('curl http://localhost:8080/healthz', 'http://127.0.0.1:1').command).toBe('curl http://127.0.0.1:1/healthz');
    expect(substituteCurl('curl -d \'{"target":"postgres://db/shop"}\' $X/v1/jobs/<id>', 'http://h:1').problems).toEqual([
      '<id>: no earlier answer of the block holds a job',
      'unknown placeholder "$X"',
      'unknown placeholder "postgres://db/shop"',
      'unknown placeholder "<id>"',
    ]);
    expect(substituteCurl('cairn token list', 'http://h:1').problems[0]).toMatch(/not a curl command/);
    expect(documentedStatus({ line: 1, text: 'curl', exit: 0, comment: '202 { "job": … }' })).toBe(202);
    expect(documentedStatus({ line: 1, text: 'curl', exit: 0, comment: '{"id":"…"}' })).toBeUndefined();
  });

  it('a failing example fails its block, with the line, its status and the answer', async () => {
    const failures = await runCurlBlock({ where: 'x.md:1', lang: 'sh', skipLines: [], body: [], commands: [{ line: 2, text: 'curl -s $H $S/v1/jobs/nope-1', exit: 0 }] });
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatch(/docs\/api\.md:2: curl -s \$H \$S\/v1\/jobs\/nope-1[\s\S]*answered 404 \(documented: 2xx\): \{"error"/);
  });
});

describe('docs/api.md ts blocks', () => {
  it('type-check against the SDK (src/sdk/index.ts)', () => {
    expect(typeErrors.filter((e) => !e.startsWith('wrong.md:'))).toEqual([]);
    // The check works: the misspelt block is refused, at its line.
    expect(typeErrors.filter((e) => e.startsWith('wrong.md:'))).toEqual([expect.stringMatching(/^wrong\.md:3: .*'sorce'/)]);
  });
});

describe('docs/api.md examples', () => {
  for (const block of BLOCKS) {
    if (block.notRun !== undefined) {
      itNotRun(block.where, block.notRun);
      continue;
    }
    it(`${block.where} (${block.lang})`, async () => {
      await settle();
      await removeNamedSchedules(block.body.map((b) => b.text).join('\n'));
      for (const target of RESTORE_TARGETS) rmSync(join(work, `${target}.db`), { force: true });
      if (block.lang === 'sh') {
        expect(block.commands.length, `${block.where}: an sh block without commands; mark it <!-- examples: not run: REASON -->`).toBeGreaterThan(0);
        expect(await runCurlBlock(block)).toEqual([]);
      } else {
        const before = new Set((await admin.jobs.list()).map((j) => j.id));
        await runTsBlock(block);
        // The jobs it started (and did not wait for) must succeed too.
        for (const job of await admin.jobs.list()) {
          if (before.has(job.id)) continue;
          const end = await waitJob(server.url, tokens.admin, job.id);
          expect(end.state, `${block.where}: its ${end.kind} job ${end.id} ended ${end.state}: ${JSON.stringify(end.error)}`).toBe('SUCCESS');
        }
      }
    }, 60_000);
  }
});
