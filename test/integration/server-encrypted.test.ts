/**
 * Issue 18, part E: encrypted repositories on a real `cairn server` (a subprocess, its log on
 * stderr at debug level). A repository is registered with the source of its password
 * (`passwordFile` / `passwordCommand`, admin only; or `cairn repo add --password-file` on the
 * server's data folder), never the password; the registration checks it (a wrong one is 403
 * KEY); an encrypted repository named by a URL or registered without a source is refused with
 * a message saying how to register it; jobs run on it. The password is then searched for in
 * every answer, the server's log, the job records and the catalog file.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CairnClient } from '../../src/sdk/index.js';
import { CHINOOK, CLI, PROJECT_ROOT } from '../helpers/cli.js';
import { readAnswer, waitJob, type Answer } from '../helpers/api.js';

const PASSWORD = 'server side 8c1d secret';
const WRONG = 'server wrong 77aa';

let work: string;
let dataDir: string;
let repo: string;
let server: ChildProcess;
let url: string;
let admin: string;
let operator: string;
let serverLog = '';
/** Every answer body of this file: searched for the password at the end. */
const answers: string[] = [];

function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^CAIRN_/.test(k) && !/^BACKUP_/.test(k)) env[k] = v;
  return { ...env, CAIRN_DATA_DIR: dataDir, CAIRN_TEST_WEAK_KDF: '1', ...extra };
}

function cairn(args: string[], env: NodeJS.ProcessEnv = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: PROJECT_ROOT, env: cleanEnv(env), encoding: 'utf8', timeout: 120_000, stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

async function call(method: string, path: string, token: string, body?: unknown): Promise<Answer> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const a = await readAnswer(res);
  answers.push(a.text);
  return a;
}

function token(role: string): string {
  const r = cairn(['token', 'create', '--role', role, '--data-dir', dataDir, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { token: string }).token;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'cairn-server-enc-'));
  dataDir = join(work, 'data');
  repo = join(work, 'enc');
  expect(cairn(['repo', 'init', repo, '--encryption'], { CAIRN_NEW_PASSWORD: PASSWORD }).code).toBe(0);
  const b = cairn(['backup', 'create', '--source', `sqlite://${CHINOOK}`, '--repo', repo, '--id', 'e1'], { CAIRN_PASSWORD: PASSWORD });
  expect(b.code, b.stderr).toBe(0);
  writeFileSync(join(work, 'pw'), `${PASSWORD}\n`);
  writeFileSync(join(work, 'pw-wrong'), `${WRONG}\n`);
  admin = token('admin');
  operator = token('operator');
  server = spawn(process.execPath, [CLI, 'server', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--allow-urls', '--log-level', 'debug'], { cwd: PROJECT_ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  server.stderr?.on('data', (d: Buffer) => (serverLog += d.toString()));
  let stdout = '';
  url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no address after 15 s: ${stdout}${serverLog}`)), 15_000);
    server.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString();
      const m = /cairn server listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    server.once('exit', (code) => reject(new Error(`server exited (${code}): ${stdout}${serverLog}`)));
  });
}, 60_000);

afterAll(async () => {
  if (server && server.exitCode === null) {
    const closed = new Promise((r) => server.once('close', r));
    server.kill('SIGTERM');
    await closed;
  }
  rmSync(work, { recursive: true, force: true });
});

describe('registering an encrypted repository', () => {
  it('without a password source: 400 saying to register it with passwordFile or passwordCommand', async () => {
    const a = await call('POST', '/v1/repositories', admin, { name: 'nosource', url: repo });
    expect(a.status).toBe(400);
    expect(a.json.error.message).toMatch(/is encrypted: register it with the source of its password, passwordFile .* or passwordCommand/);
  });

  it('with a wrong password: 403 KEY, nothing registered', async () => {
    const a = await call('POST', '/v1/repositories', admin, { name: 'wrongpw', url: repo, passwordFile: join(work, 'pw-wrong') });
    expect(a.status).toBe(403);
    expect(a.json.error.code).toBe('KEY');
    expect(a.text).not.toContain(WRONG);
    const list = await call('GET', '/v1/repositories', admin);
    expect(list.json.repositories.map((r: { name: string }) => r.name)).not.toContain('wrongpw');
  });

  it('a failing passwordCommand: 400 naming the field, not its output; a relative passwordFile: 400; both: 400', async () => {
    const a = await call('POST', '/v1/repositories', admin, { name: 'failing', url: repo, passwordCommand: 'echo out-77x; echo err-77x >&2; exit 4' });
    expect(a.status).toBe(400);
    expect(a.json.error.message).toMatch(/^passwordCommand failed: it exited with code 4/);
    expect(a.text).not.toMatch(/77x/);
    expect((await call('POST', '/v1/repositories', admin, { name: 'rel', url: repo, passwordFile: 'pw' })).status).toBe(400);
    expect((await call('POST', '/v1/repositories', admin, { name: 'both', url: repo, passwordFile: join(work, 'pw'), passwordCommand: 'true' })).status).toBe(400);
  });

  it('an operator may not register one (403)', async () => {
    const a = await call('POST', '/v1/repositories', operator, { name: 'byop', url: repo, passwordFile: join(work, 'pw') });
    expect(a.status).toBe(403);
  });

  it('with passwordFile or passwordCommand: 201, the answer shows the kind of source only', async () => {
    const file = await call('POST', '/v1/repositories', admin, { name: 'encfile', url: repo, passwordFile: join(work, 'pw') });
    expect(file.status, file.text).toBe(201);
    expect(file.json.repository).toMatchObject({ name: 'encfile', kind: 'repository', passwordSource: 'file' });
    expect(file.text).not.toContain(join(work, 'pw'));
    const cmd = await call('POST', '/v1/repositories', admin, { name: 'enccmd', url: repo, passwordCommand: `cat '${join(work, 'pw')}'` });
    expect(cmd.status, cmd.text).toBe(201);
    expect(cmd.json.repository.passwordSource).toBe('command');
    expect(cmd.text).not.toContain('cat ');
    const list = await call('GET', '/v1/repositories', operator);
    expect(list.json.repositories.find((r: { name: string }) => r.name === 'encfile')).toMatchObject({ passwordSource: 'file' });
    expect(list.text).not.toContain(join(work, 'pw'));
  });

  it('a plain repository registered with a password source: 400', async () => {
    const plain = join(work, 'plain');
    expect(cairn(['repo', 'init', plain]).code).toBe(0);
    const a = await call('POST', '/v1/repositories', admin, { name: 'plainpw', url: plain, passwordFile: join(work, 'pw') });
    expect(a.status).toBe(400);
    expect(a.json.error.message).toMatch(/is not encrypted/);
  });

  it('the SDK passes the source too', async () => {
    const r = await new CairnClient({ url, token: admin }).repositories.add('encsdk', repo, { passwordFile: join(work, 'pw') });
    expect(r).toMatchObject({ name: 'encsdk', passwordSource: 'file' });
  });
});

describe('using it', () => {
  it('reads, backs up and verifies by its registered name', async () => {
    for (const name of ['encfile', 'enccmd']) {
      const list = await call('GET', `/v1/backups?repository=${name}`, operator);
      expect(list.status, list.text).toBe(200);
      expect(list.json.backups.map((b: { id: string }) => b.id)).toContain('e1');
    }
    const started = await call('POST', '/v1/backups', operator, { source: `sqlite://${CHINOOK}`, repository: 'encfile', id: 'api1' });
    expect(started.status, started.text).toBe(202);
    const job = await waitJob(url, operator, started.json.job.id);
    expect(job.state, JSON.stringify(job)).toBe('SUCCESS');
    const verify = await call('POST', '/v1/verifications', operator, { repository: 'enccmd' });
    expect(verify.status, verify.text).toBe(202);
    expect((await waitJob(url, operator, verify.json.job.id)).state).toBe('SUCCESS');
    // The CLI with the password reads the backup the server wrote.
    const r = cairn(['backup', 'list', '--repo', repo, '--json'], { CAIRN_PASSWORD: PASSWORD });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('"api1"');
  }, 60_000);

  it('a name registered with `cairn repo add --password-file` on the data folder works the same', async () => {
    const r = cairn(['repo', 'add', 'enccli', repo, '--password-file', join(work, 'pw')]);
    expect(r.code, r.stderr).toBe(0);
    const list = await call('GET', '/v1/backups?repository=enccli', operator);
    expect(list.status, list.text).toBe(200);
    expect(list.json.backups.map((b: { id: string }) => b.id)).toContain('e1');
  });

  it('exports an archive (still encrypted) and imports it back by upload; an archive of another repository fails saying to use the CLI', async () => {
    // Another encrypted repository's archive (the server holds no password for it). Made with
    // child processes that leave the event loop running: a blocking spawnSync of seconds keeps
    // fetch from seeing the server close an idle keep-alive connection, which it then reuses.
    const other = join(work, 'other-enc');
    const run = async (args: string[], env: NodeJS.ProcessEnv): Promise<void> => {
      await promisify(execFile)(process.execPath, [CLI, ...args], { cwd: PROJECT_ROOT, env: cleanEnv(env) });
    };
    await run(['repo', 'init', other, '--encryption'], { CAIRN_NEW_PASSWORD: 'another one' });
    await run(['backup', 'create', '--source', `sqlite://${CHINOOK}`, '--repo', other, '--id', 'o1'], { CAIRN_PASSWORD: 'another one' });
    const file = join(work, 'o1.cairn');
    await run(['export', 'o1', '--repo', other, '-o', file], { CAIRN_PASSWORD: 'another one' });
    const started = await call('POST', '/v1/exports', operator, { repository: 'encfile', backups: ['e1'] });
    expect(started.status, started.text).toBe(202);
    expect((await waitJob(url, operator, started.json.job.id)).state).toBe('SUCCESS');
    const download = await fetch(`${url}/v1/exports/${started.json.job.id}/file`, { headers: { authorization: `Bearer ${operator}` } });
    expect(download.status).toBe(200);
    const archive = Buffer.from(await download.arrayBuffer());
    expect(archive.includes(Buffer.from('AC/DC'))).toBe(false); // Chinook's first artist: sealed
    const upload = async (bytes: Buffer, query: string): Promise<Answer> => {
      const res = await fetch(`${url}/v1/imports?${query}`, { method: 'POST', headers: { authorization: `Bearer ${operator}`, 'content-type': 'application/octet-stream' }, body: bytes });
      const a = await readAnswer(res);
      answers.push(a.text);
      return a;
    };
    const back = await upload(archive, 'repository=encfile&as=e1-again');
    expect(back.status, back.text).toBe(202);
    const done = await waitJob(url, operator, back.json.job.id);
    expect(done.state, JSON.stringify(done)).toBe('SUCCESS');
    const foreign = await upload(readFileSync(file), 'repository=encfile');
    expect(foreign.status, foreign.text).toBe(202);
    const failed = await waitJob(url, operator, foreign.json.job.id);
    expect(failed.state).toBe('FAILED');
    expect(JSON.stringify(failed)).toMatch(/encrypted with the keys of another repository.*cairn import FILE/);
  }, 120_000);

  it('an encrypted repository named by a URL (ad hoc, --allow-urls) is refused with how to register it', async () => {
    const a = await call('GET', `/v1/backups?repository=${encodeURIComponent(repo)}`, admin);
    expect(a.status).toBe(400);
    expect(a.json.error.message).toMatch(/is encrypted: the server opens an encrypted repository only by a registered name that carries its password source; an admin registers it with its password source \(POST \/v1\/repositories with passwordFile or passwordCommand/);
    const job = await call('POST', '/v1/backups', operator, { source: `sqlite://${CHINOOK}`, repository: repo });
    expect(job.status).toBe(400);
  });

  it('a password file changed to a wrong password afterwards: 403 KEY naming the repository, not the password', async () => {
    const file = join(work, 'pw-later');
    writeFileSync(file, `${PASSWORD}\n`);
    expect((await call('POST', '/v1/repositories', admin, { name: 'later', url: repo, passwordFile: file })).status).toBe(201);
    writeFileSync(file, `${WRONG}\n`);
    const a = await call('GET', '/v1/backups?repository=later', operator);
    expect(a.status).toBe(403);
    expect(a.json.error.code).toBe('KEY');
    expect(a.text).not.toContain(WRONG);
  });
});

describe('the password stays on the server', () => {
  it('is in no answer, log line, job record or catalog file', async () => {
    const jobs = await call('GET', '/v1/jobs', admin);
    expect(jobs.status).toBe(200);
    expect(jobs.json.jobs.length).toBeGreaterThanOrEqual(2);
    for (const j of jobs.json.jobs as { id: string }[]) await call('GET', `/v1/jobs/${j.id}`, admin);
    expect(answers.length).toBeGreaterThan(20);
    for (const text of answers) {
      expect(text).not.toContain(PASSWORD);
      expect(text).not.toContain(WRONG);
    }
    expect(serverLog.length).toBeGreaterThan(0);
    expect(serverLog).toMatch(/"level":"(debug|warn)"/);
    expect(serverLog).not.toContain(PASSWORD);
    expect(serverLog).not.toContain(WRONG);
    for (const f of ['catalog.db', 'catalog.db-wal']) {
      const p = join(dataDir, f);
      if (!existsSync(p)) continue;
      const bytes = readFileSync(p);
      expect(bytes.includes(PASSWORD), f).toBe(false);
    }
  });
});
