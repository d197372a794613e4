/**
 * Issue 16: errors a user meets from the command line name the problem and the fix and exit with
 * the documented code (docs/cli.md), never "internal error" (1). The CLI runs as a subprocess.
 */
import { spawn } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteTokenStore } from '../../src/catalog/tokens.js';
import { catalogFile, startServer, type RunningServer } from '../../src/server/index.js';
import { CHINOOK, CLI, cairn, cairnJson, cairnRun } from '../helpers/cli.js';

let work: string;
let repo: string;
let backupId: string;

/** The CLI without blocking this process (a test server here must keep answering). */
const cli = cairnRun;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'cairn-errs16-'));
  repo = join(work, 'repo');
  expect(cairn(['repo', 'init', repo]).code).toBe(0);
  backupId = cairnJson<{ id: string }>(['backup', 'create', '--source', `sqlite://${CHINOOK}`, '--repo', repo]).id;
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('a folder the filesystem refuses (a repository, a data folder)', () => {
  it.each([
    ['repo init', ['repo', 'init', '/proc/x']],
    ['a data folder (token list --data-dir)', ['token', 'list', '--data-dir', '/proc/x']],
  ])('%s fails fast with a storage error naming the path (no endless mkdir loop under /proc)', async (_what, args) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    clearTimeout(killer);
    expect(code).toBe(8);
    expect(stderr).toMatch(/^cairn: error: .*\/proc\/x/m);
  }, 30_000);
});

describe('SQLite restore into a folder that does not exist', () => {
  it('exits 3 naming the missing folder and the fix, and creates nothing', () => {
    const dir = join(work, 'nonexistent-dir');
    const r = cairn(['restore', backupId, '--repo', repo, '--to', `sqlite://${join(dir, 'x.db')}`]);
    expect(r.stderr).not.toMatch(/internal error|ENOENT/);
    expect(r.stderr).toMatch(new RegExp(`^cairn: error: The folder ${dir} does not exist.*mkdir -p ${dir}`, 'm'));
    expect(r.code).toBe(3);
    expect(existsSync(dir)).toBe(false);
  });
});

describe('a mistyped flag', () => {
  it('is named, with the flag it resembles, even when a required option is missing too', () => {
    const r = cairn(['backup', 'create', '--sorce', 'x', '--repo', repo]);
    expect(r.stderr).toContain("unknown option '--sorce'");
    expect(r.stderr).toContain('Did you mean --source?');
    expect(r.stderr).not.toContain('required option');
    expect(r.code).toBe(2);
  });

  it('leaves the missing-option error as it was when every flag is known', () => {
    const r = cairn(['backup', 'create', '--repo', repo]);
    expect(r.stderr).toContain("required option '--source <url>' not specified");
    expect(r.code).toBe(2);
  });
});

describe('talking to a cairn server', () => {
  let server: RunningServer | undefined;
  let token: string;

  beforeAll(async () => {
    const dataDir = join(work, 'data');
    const store = new SqliteTokenStore(catalogFile(dataDir));
    token = store.create('viewer').token;
    store.close();
    server = await startServer({ dataDir, port: 0, scheduleTickMs: 3600_000, env: {} });
  });

  afterAll(async () => {
    await server?.close();
  });

  it('an unreachable server is a storage error (exit 8) naming it, the cause and the real command to start one', async () => {
    // A port nothing listens on: one the kernel gave, closed again.
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const r = await cli(['job', 'list', '--server', `http://127.0.0.1:${port}`], { CAIRN_TOKEN: '' });
    expect(r.stderr).not.toContain('internal error');
    expect(r.stderr).toMatch(new RegExp(`^cairn: error: cannot connect to cairn server at http://127\\.0\\.0\\.1:${port}: .+; is it running\\? Start it with: cairn server \\(`, 'm'));
    // `cairn server start` is not a command: the advice must not name it.
    expect(r.stderr).not.toContain('server start');
    expect(r.code).toBe(8);
  });

  it("a port Node's fetch refuses (1: a \"bad port\") is a usage error (exit 2) saying to use another port", async () => {
    const r = await cli(['job', 'list', '--server', 'http://127.0.0.1:1'], { CAIRN_TOKEN: '' });
    expect(r.stderr).toMatch(/^cairn: error: cannot connect to cairn server at http:\/\/127\.0\.0\.1:1: its port is one that Node's fetch refuses to connect to .*Run the server on another port/m);
    expect(r.stderr).not.toContain('is it running');
    expect(r.code).toBe(2);
  });

  it('a token the server refuses (401) is a usage error (exit 2) saying so', async () => {
    const r = await cli(['job', 'list', '--server', server!.url], { CAIRN_TOKEN: 'not-a-token' });
    expect(r.stderr).toMatch(/^cairn: error: the server refused the token: .*CAIRN_TOKEN/m);
    expect(r.code).toBe(2);
  });

  it('the token it knows is accepted (the refusal above is about the token)', async () => {
    const r = await cli(['job', 'list', '--server', server!.url, '--json'], { CAIRN_TOKEN: token });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ jobs: expect.any(Array), durationMs: expect.any(Number) });
  });
});

describe('--json errors', () => {
  it('print one JSON document on stdout with the code, message and exit code; the human line stays on stderr', () => {
    const r = cairn(['backup', 'show', 'nope', '--repo', repo, '--json']);
    expect(r.code).toBe(3);
    const doc = JSON.parse(r.stdout) as { error: { code: string; message: string; exitCode: number } };
    expect(doc.error.code).toBe('NOT_FOUND');
    expect(doc.error.exitCode).toBe(3);
    expect(doc.error.message).toContain('"nope" not found');
    expect(r.stderr).toContain(`cairn: error: ${doc.error.message}`);
  });

  it('cover usage errors commander reports', () => {
    const r = cairn(['backup', 'create', '--sorce', 'x', '--repo', repo, '--json']);
    expect(r.code).toBe(2);
    const doc = JSON.parse(r.stdout) as { error: { code: string; message: string; exitCode: number } };
    expect(doc.error).toMatchObject({ code: 'USAGE', exitCode: 2 });
    expect(doc.error.message).toContain("unknown option '--sorce'");
  });

  it('are not printed on stdout without --json', () => {
    const r = cairn(['backup', 'show', 'nope', '--repo', repo]);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('');
  });

  it('add no second document after a command printed its own (verify --json of a damaged repository)', () => {
    const damaged = join(work, 'damaged');
    cpSync(repo, damaged, { recursive: true });
    const data = join(damaged, 'data');
    for (const sub of readdirSync(data)) rmSync(join(data, sub), { recursive: true });
    const r = cairn(['verify', '--repo', damaged, '--json']);
    expect(r.code).toBe(6);
    const doc = JSON.parse(r.stdout) as { ok: boolean; error?: unknown };
    expect(doc.ok).toBe(false);
    expect(doc.error).toBeUndefined();
  });
});
