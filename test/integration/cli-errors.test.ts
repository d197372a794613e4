/**
 * Issue 16: errors a user meets from the command line name the problem and the fix and exit with
 * the documented code (docs/cli.md), never "internal error" (1). The CLI runs as a subprocess.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHINOOK, CLI, cairn, cairnJson } from '../helpers/cli.js';

let work: string;
let repo: string;
let backupId: string;

/** The CLI without blocking this process (a test server here must keep answering). */
function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'cairn-errs16-'));
  repo = join(work, 'repo');
  expect(cairn(['repo', 'init', repo]).code).toBe(0);
  backupId = cairnJson<{ id: string }>(['backup', 'create', '--source', `sqlite://${CHINOOK}`, '--repo', repo]).id;
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('repo init on a path the filesystem refuses', () => {
  it('fails fast with a storage error naming the path (no endless mkdir loop under /proc)', async () => {
    const child = spawn(process.execPath, [CLI, 'repo', 'init', '/proc/x'], { stdio: ['ignore', 'pipe', 'pipe'] });
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
