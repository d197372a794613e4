/**
 * Issue 16: every --json result is an object that carries `durationMs` at its top level, the
 * command's wall time in whole milliseconds; list commands print the REST API's answer keys for
 * the same resource (`{"backups":[…],…}`), so they carry it too (docs/cli.md "Output and
 * errors"). Table-driven: each command runs as a user runs it, as a subprocess, in
 * the order a user would (a backup before its restore); through a server for the job commands.
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { SqliteTokenStore } from '../../src/catalog/tokens.js';
import { BackupList, JobList, RepositoryList, ScheduleList, SourceList } from '../../src/server/schemas.js';
import { catalogFile, startServer, type RunningServer } from '../../src/server/index.js';
import { CHINOOK, cairn, cairnRun } from '../helpers/cli.js';

let work: string;
/** The id `token create` printed, for `token revoke`. */
let tokenId = '';
const at = (name: string): string => join(work, name);
const env = (): NodeJS.ProcessEnv => ({ CAIRN_DATA_DIR: at('data'), CAIRN_REPO: '', CAIRN_SERVER: '', CAIRN_TOKEN: '' });

/**
 * `object`: a document with durationMs; otherwise a list command's document: the REST API's
 * answer schema for the same resource (its keys, the list under `list`), or for tokens (no API
 * route lists them) the key alone.
 */
type Shape = 'object' | { list: string; api?: z.ZodObject<z.ZodRawShape> };
const list = (key: string, api?: z.ZodObject<z.ZodRawShape>): Shape => ({ list: key, ...(api ? { api } : {}) });

/** Each command with --json, in an order where each finds what the ones before made. */
const COMMANDS: [string, () => string[], Shape][] = [
  ['repo init', () => ['repo', 'init', at('repo')], 'object'],
  ['repo add', () => ['repo', 'add', 'second', at('second')], 'object'],
  ['repo list', () => ['repo', 'list'], list('repositories', RepositoryList)],
  ['backup create', () => ['backup', 'create', '--source', `sqlite://${at('src.db')}`, '--repo', at('repo'), '--id', 'b1'], 'object'],
  ['backup list', () => ['backup', 'list', '--repo', at('repo')], list('backups', BackupList)],
  ['backup show', () => ['backup', 'show', 'b1', '--repo', at('repo')], 'object'],
  ['backup set-expiry', () => ['backup', 'set-expiry', 'b1', '30d', '--repo', at('repo')], 'object'],
  ['backup expire', () => ['backup', 'expire', '--dry-run', '--repo', at('repo')], 'object'],
  ['restore', () => ['restore', 'b1', '--repo', at('repo'), '--to', `sqlite://${at('restored.db')}`], 'object'],
  ['repo init (second)', () => ['repo', 'init', 'second'], 'object'],
  ['copy', () => ['copy', 'b1', '--from', at('repo'), '--to', 'second'], 'object'],
  ['sync', () => ['sync', '--from', at('repo'), '--to', 'second'], 'object'],
  ['verify', () => ['verify', '--repo', at('repo'), '--read-data'], 'object'],
  ['prune', () => ['prune', '--repo', at('repo'), '--dry-run'], 'object'],
  ['repair', () => ['repair', '--repo', at('repo'), '--dry-run'], 'object'],
  ['unlock', () => ['unlock', '--repo', at('repo')], 'object'],
  ['source add', () => ['source', 'add', 'app', `sqlite://${at('src.db')}`], 'object'],
  ['source list', () => ['source', 'list'], list('sources', SourceList)],
  ['schedule add', () => ['schedule', 'add', 'nightly', '--source', 'app', '--repo', at('repo'), '--cron', '0 3 * * *'], 'object'],
  ['schedule list', () => ['schedule', 'list'], list('schedules', ScheduleList)],
  ['schedule show', () => ['schedule', 'show', 'nightly'], 'object'],
  ['schedule run-now', () => ['schedule', 'run-now', 'nightly'], 'object'],
  ['token create', () => ['token', 'create', '--role', 'viewer'], 'object'],
  ['token list', () => ['token', 'list'], list('tokens')],
  ['schedule disable', () => ['schedule', 'disable', 'nightly'], 'object'],
  ['schedule enable', () => ['schedule', 'enable', 'nightly'], 'object'],
  ['schedule remove', () => ['schedule', 'remove', 'nightly'], 'object'],
  ['token revoke', () => ['token', 'revoke', tokenId], 'object'],
  ['backup delete', () => ['backup', 'delete', 'b1', '--repo', at('repo')], 'object'],
  ['source remove', () => ['source', 'remove', 'app', '--force'], 'object'],
  ['repo remove', () => ['repo', 'remove', 'second'], 'object'],
];

function expectShape(what: string, r: { code: number | null; stdout: string; stderr: string }, shape: Shape): void {
  expect(r.code, `${what}: ${r.stderr}`).toBe(0);
  const doc = JSON.parse(r.stdout) as unknown;
  expect(typeof doc === 'object' && doc !== null && !Array.isArray(doc), `${what} prints an object`).toBe(true);
  const { durationMs } = doc as { durationMs?: unknown };
  expect(Number.isInteger(durationMs), `${what}: durationMs ${String(durationMs)}`).toBe(true);
  expect(durationMs as number).toBeGreaterThanOrEqual(0);
  if (shape === 'object') return;
  const listed = (doc as Record<string, unknown>)[shape.list];
  expect(Array.isArray(listed), `${what}: .${shape.list} is an array`).toBe(true);
  expect((listed as unknown[]).length, `${what}: .${shape.list} lists what the commands before made`).toBeGreaterThan(0);
  // The same keys as the API's answer (GET /v1/<resource>), plus durationMs.
  const keys = shape.api ? Object.keys(shape.api.shape) : [shape.list];
  expect(Object.keys(doc as object).sort(), `${what}: keys`).toEqual([...keys, 'durationMs'].sort());
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'cairn-json-duration-'));
  cpSync(CHINOOK, at('src.db'));
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('--json documents carry durationMs', () => {
  it.each(COMMANDS)('%s', (what, args, shape) => {
    const r = cairn([...args(), '--json'], { env: env() });
    expectShape(what, r, shape);
    if (what === 'token create') tokenId = (JSON.parse(r.stdout) as { id: string }).id;
  });

  it('an error document carries durationMs too, after the error', () => {
    const r = cairn(['backup', 'show', 'no-such-backup', '--repo', at('repo'), '--json'], { env: env() });
    expect(r.code, r.stderr).toBe(3);
    const doc = JSON.parse(r.stdout) as { error: { code: string }; durationMs: number };
    expect(Object.keys(doc)).toEqual(['error', 'durationMs']);
    expect(doc.error.code).toBe('NOT_FOUND');
    expect(Number.isInteger(doc.durationMs) && doc.durationMs >= 0).toBe(true);
  });

  it('every command that prints a result takes --json (dump writes data; server writes a log)', async () => {
    const { buildProgram } = await import('../../src/cli/main.js');
    const program = buildProgram({ io: { out: () => undefined, err: () => undefined }, signal: new AbortController().signal });
    const without: string[] = [];
    const walk = (c: typeof program, path: string[]): void => {
      for (const sub of c.commands) {
        const full = [...path, sub.name()];
        if (sub.commands.length > 0) walk(sub, full);
        else if (!sub.options.some((o) => o.long === '--json')) without.push(full.join(' '));
      }
    };
    walk(program, []);
    expect(without.sort()).toEqual(['dump', 'server']);
  });

  it('durationMs is the wall time of the command, not a constant', () => {
    const started = performance.now();
    const r = cairn(['backup', 'create', '--source', `sqlite://${at('src.db')}`, '--repo', at('repo'), '--id', 'timed', '--json'], { env: env() });
    const wall = performance.now() - started;
    expect(r.code, r.stderr).toBe(0);
    const { durationMs } = JSON.parse(r.stdout) as { durationMs: number };
    // A backup of Chinook reads and writes: it takes measurable time, and less than the whole
    // process (which also loads Node and the modules).
    expect(durationMs).toBeGreaterThan(0);
    expect(durationMs).toBeLessThanOrEqual(Math.ceil(wall));
  });
});

describe('through a server', () => {
  let server: RunningServer | undefined;
  let token: string;
  let jobId: string;

  beforeAll(async () => {
    expect(cairn(['repo', 'init', at('server-repo')], { env: env() }).code).toBe(0);
    const dataDir = at('server-data');
    const store = new SqliteTokenStore(catalogFile(dataDir));
    token = store.create('admin').token;
    store.close();
    server = await startServer({ dataDir, port: 0, scheduleTickMs: 3600_000, env: {}, allowAdHocUrls: true });
  });

  afterAll(async () => {
    await server?.close();
  });

  const remote = (args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> =>
    cairnRun([...args, '--server', server!.url, '--json'], { ...env(), CAIRN_TOKEN: token });

  it('backup create --no-wait (the job as started)', async () => {
    const r = await remote(['backup', 'create', '--source', `sqlite://${at('src.db')}`, '--repo', at('server-repo'), '--id', 'via-server', '--no-wait']);
    expectShape('backup create --no-wait', r, 'object');
    jobId = (JSON.parse(r.stdout) as { id: string }).id;
  });

  it.each([
    ['job wait', () => ['job', 'wait', jobId], 'object'],
    ['job show', () => ['job', 'show', jobId], 'object'],
    ['job list', () => ['job', 'list'], list('jobs', JobList)],
    ['backup create (waits for the job)', () => ['backup', 'create', '--source', `sqlite://${at('src.db')}`, '--repo', at('server-repo'), '--id', 'via-server-2'], 'object'],
  ] as [string, () => string[], Shape][])('%s', async (what, args, shape) => {
    expectShape(what, await remote(args()), shape);
  });
});
