/**
 * What the CLI prints: `--version` (answered by bin/cairn.js without loading the CLI, issue 22),
 * `backup list --json` keeps each backup's collections (without their chunk
 * lists), and `job show` prints the whole job record as `key: value` lines (a server started in
 * this process runs the job; the CLI talks to it from a child process).
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteTokenStore } from '../../src/catalog/tokens.js';
import { catalogFile, startServer, type RunningServer } from '../../src/server/index.js';
import { main } from '../../src/cli/main.js';
import { CHINOOK, CLI, PROJECT_ROOT, cairn, cairnJson, cairnRun } from '../helpers/cli.js';

let work: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'cairn-output-'));
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('--version', () => {
  const version = (JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

  it("prints package.json's version and exits 0, from the launcher (--version, -V) as from the CLI (with other words)", async () => {
    expect(version).toMatch(/^\d+\.\d+\.\d+/);
    for (const args of [['--version'], ['-V'], ['--version', '--debug']]) {
      const r = cairn(args);
      expect([r.code, r.stdout, r.stderr], args.join(' ')).toEqual([0, `${version}\n`, '']);
    }
    // The in-process CLI (commander's --version) says the same.
    const out: string[] = [];
    expect(await main(['node', 'cairn', '--version'], { out: (t) => out.push(t), err: () => undefined })).toBe(0);
    expect(out.join('')).toBe(`${version}\n`);
  });

  it('the launcher runs the bundle of the compiled CLI (scripts/bundle-cli.mjs): the same help for every command as dist/cli/main.js', () => {
    // A bundle left from an older build would print another CLI's help: npm run build makes both.
    const commands = ['', 'backup', 'backup create', 'restore', 'repo init', 'export', 'server', 'schedule'];
    const viaDist = (args: string[]): string => {
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', `const { main } = await import(${JSON.stringify(join(PROJECT_ROOT, 'dist/cli/main.js'))}); process.exitCode = await main(process.argv);`, 'cairn', ...args, '--help'], { encoding: 'utf8' });
      return `${r.status} ${r.stdout}${r.stderr}`;
    };
    for (const c of commands) {
      const args = c === '' ? [] : c.split(' ');
      const r = cairn([...args, '--help']);
      expect(r.stdout, c).toMatch(/^Usage: cairn/);
      expect(`${r.code} ${r.stdout}${r.stderr}`, `cairn ${c} --help`).toBe(viaDist(args));
    }
  });

  it('a stdout that cannot be written to (/dev/full) exits 8 naming stdout, as every command', () => {
    const full = openSync('/dev/full', 'w');
    try {
      const r = spawnSync(process.execPath, [CLI, '--version'], { stdio: ['ignore', full, 'pipe'], encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(8);
      expect(r.stderr).toMatch(/^cairn: error: Cannot write to stdout: ENOSPC/);
    } finally {
      closeSync(full);
    }
  });
});

describe('backup list --json', () => {
  it('gives each backup its collections with names and row counts, without chunks or segments', () => {
    const repo = join(work, 'list-repo');
    expect(cairn(['repo', 'init', repo]).code).toBe(0);
    const created = cairn(['backup', 'create', '--source', `sqlite://${CHINOOK}`, '--repo', repo, '--id', 'listed']);
    expect(created.code, created.stderr).toBe(0);

    type Listed = { id: string; totals: { collections: number }; collections: Record<string, unknown>[] };
    const list = cairnJson<{ backups: Listed[] }>(['backup', 'list', '--repo', repo]).backups;
    expect(list.map((b) => b.id)).toEqual(['listed']);
    const [backup] = list;
    expect(backup?.collections).toHaveLength(11);
    expect(backup?.collections).toHaveLength(backup?.totals.collections ?? -1);
    expect(backup?.collections.map((c) => c.name)).toEqual(expect.arrayContaining(['Album', 'Artist', 'Track', 'Invoice', 'InvoiceLine']));
    expect(backup?.collections.find((c) => c.name === 'Track')).toMatchObject({ kind: 'table', rowCount: 3503 });
    for (const c of backup?.collections ?? []) {
      expect(c).not.toHaveProperty('chunks');
      expect(c).not.toHaveProperty('segments');
      expect(typeof c.rowCount).toBe('number');
    }
    // The chunk lists are still in the repository: backup show --json has them.
    const shown = cairnJson<{ collections: { name: string; chunks: string[] }[] }>(['backup', 'show', 'listed', '--repo', repo]);
    expect(shown.collections.find((c) => c.name === 'Track')?.chunks.length).toBeGreaterThan(0);
  });
});

describe('job show', () => {
  let server: RunningServer;
  let token: string;

  /** The CLI in a child process without blocking this one: the server runs here and must keep answering. */
  const cli = (args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> =>
    cairnRun(args, { CAIRN_SERVER: server.url, CAIRN_TOKEN: token, CAIRN_REPO: '' });

  beforeAll(async () => {
    const dataDir = join(work, 'data');
    const store = new SqliteTokenStore(catalogFile(dataDir));
    token = store.create('operator').token;
    store.close();
    server = await startServer({ dataDir, port: 0, allowAdHocUrls: true, scheduleTickMs: 3600_000, env: {} });
  });

  afterAll(async () => {
    await server?.close();
  });

  it('prints every field of the job record as key: value, params, progress and result indented; --json unchanged', async () => {
    const repo = join(work, 'job-repo');
    expect(cairn(['repo', 'init', repo]).code).toBe(0);
    const queued = await cli(['backup', 'create', '--source', `sqlite://${CHINOOK}`, '--repo', repo, '--id', 'via-job', '--no-wait']);
    expect(queued.code, queued.stderr).toBe(0);
    const id = queued.stdout.trim();
    expect(id).toMatch(/^backup-[0-9a-f]+$/);
    const waited = await cli(['job', 'wait', id]);
    expect(waited.code, waited.stderr).toBe(0);

    const json = await cli(['job', 'show', id, '--json']);
    expect(json.code, json.stderr).toBe(0);
    const { durationMs, ...record } = JSON.parse(json.stdout) as Record<string, unknown> & {
      durationMs: number;
      params: Record<string, unknown>;
      progress: Record<string, unknown>;
      result: Record<string, unknown>;
    };
    expect(Number.isInteger(durationMs) && durationMs >= 0).toBe(true);
    expect(record).toMatchObject({ id, kind: 'backup', state: 'SUCCESS', error: null, result: { backupId: 'via-job' } });
    // --json is the job record as the server has it, unchanged, plus the command's durationMs.
    expect(Object.keys(record)).toEqual(['id', 'kind', 'state', 'key', 'params', 'progress', 'result', 'error', 'createdAt', 'updatedAt', 'finishedAt', 'server']);
    // The server that ran it: its id, as GET /v1/servers names it (host name / server-id).
    expect(record.server).toMatch(/^.+\/[0-9a-f]{16}$/);

    const shown = await cli(['job', 'show', id]);
    expect(shown.code, shown.stderr).toBe(0);
    const lines = shown.stdout.trimEnd().split('\n');
    // Every top-level field, once, at the start of a line; nothing else unindented.
    const topLevel = lines.filter((l) => !l.startsWith(' ')).map((l) => l.slice(0, l.indexOf(':')));
    expect([...topLevel].sort()).toEqual(Object.keys(record).sort());
    expect(lines.slice(0, 3)).toEqual([`id: ${id}`, 'kind: backup', 'state: SUCCESS']);
    expect(lines).toContain(`createdAt: ${String(record.createdAt)}`);
    expect(lines).toContain(`finishedAt: ${String(record.finishedAt)}`);
    expect(lines).toContain('error: none');

    /** The lines indented below `key:` (up to the next unindented line). */
    const below = (key: string): string[] => {
      const at = lines.findIndex((l) => l === `${key}:` || l.startsWith(`${key}: `));
      expect(at, `no ${key} line in:\n${shown.stdout}`).toBeGreaterThanOrEqual(0);
      const end = lines.findIndex((l, i) => i > at && !l.startsWith(' '));
      return lines.slice(at + 1, end === -1 ? undefined : end);
    };
    expect(below('params')).toContain(`  source: sqlite://${CHINOOK}`);
    expect(below('params')).toContain(`  repository: file://${repo}`);
    expect(below('params')).toContain('  id: via-job');
    const progress = below('progress');
    for (const [k, v] of Object.entries(record.progress)) {
      if (typeof v !== 'object') expect(progress).toContain(`  ${k}: ${String(v)}`);
    }
    expect(progress).toContain('  rows: 15607');
    expect(lines.find((l) => l.startsWith('progress: '))).toMatch(/15,607 rows/);
    expect(below('result')).toContain('  backupId: via-job');
    expect(below('result')).toEqual(expect.arrayContaining(['  totals:', '    collections: 11', '    rows: 15607']));
    for (const [k, v] of Object.entries(record.result)) {
      if (v === null || typeof v !== 'object') expect(below('result')).toContain(`  ${k}: ${v === null ? 'none' : String(v)}`);
      else expect(below('result')).toContain(`  ${k}:`);
    }
  }, 120_000);
});
