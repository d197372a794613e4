/**
 * PostgreSQL URLs and environment as psql and pg_dump read them (issue 16), through the CLI as a
 * user runs it, with an environment of the test's own (no PG* variable inherited): the Unix
 * socket (`postgres:///db`, `?host=`, a percent-encoded socket host), PGHOST / PGPORT /
 * PGDATABASE, a service file, sslmode against this server (which has no SSL), an unknown
 * service, and ~/.pgpass on a server that asks for a password.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, PROJECT_ROOT } from '../helpers/cli.js';
import { createDatabase, dropDatabase, ensurePostgres, passwordClusterUnavailable, psql, startPasswordCluster } from '../helpers/postgres.js';

const work = fs.mkdtempSync(path.join(tmpdir(), 'cairn-pg-conninfo-'));
const repo = path.join(work, 'repo');
let db = '';
const dropLater: string[] = [];

/** The process environment without any PG* variable, plus `env`. */
function cleanEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) out[k] = v;
  return { ...out, ...env };
}

function run(args: string[], env: NodeJS.ProcessEnv): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: PROJECT_ROOT, env: cleanEnv(env), encoding: 'utf8', timeout: 120_000 });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

let n = 0;
/** Backs up `url` with `env`; the manifest's source location and the row count of public.t. */
function backup(url: string, env: NodeJS.ProcessEnv): { location: string; rows: number } {
  const id = `b${++n}`;
  const r = run(['backup', 'create', '--source', url, '--repo', repo, '--id', id, '--json'], env);
  expect(r.code, r.stderr).toBe(0);
  const show = JSON.parse(run(['backup', 'show', id, '--repo', repo, '--json'], {}).stdout) as {
    source: { location: string };
    collections: { name: string; rowCount?: number }[];
  };
  return { location: show.source.location, rows: show.collections.find((c) => c.name === 'public.t')?.rowCount ?? -1 };
}

beforeAll(() => {
  ensurePostgres();
  db = createDatabase('conninfo');
  psql(db, 'CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 7);');
  const r = run(['repo', 'init', repo, '--json'], {});
  expect(r.code, r.stderr).toBe(0);
});

afterAll(() => {
  for (const d of [db, ...dropLater]) if (d) dropDatabase(d);
  fs.rmSync(work, { recursive: true, force: true });
});

describe('the Unix socket', () => {
  it('postgres:///<db> with PGUSER=postgres: the default socket directory', () => {
    const b = backup(`postgres:///${db}`, { PGUSER: 'postgres' });
    expect(b).toEqual({ location: `postgres:///${db}?host=%2Fvar%2Frun%2Fpostgresql&port=5432&user=postgres`, rows: 7 });
  });

  it('?host=/var/run/postgresql, and the socket directory as a percent-encoded host', () => {
    expect(backup(`postgres:///${db}?host=/var/run/postgresql`, { PGUSER: 'postgres' }).rows).toBe(7);
    const b = backup(`postgresql://postgres@%2Fvar%2Frun%2Fpostgresql/${db}`, {});
    expect(b.location).toBe(`postgres:///${db}?host=%2Fvar%2Frun%2Fpostgresql&port=5432&user=postgres`);
  });

  it('a restore target through the socket (pg_restore gets the same connection by PG* variables)', () => {
    const target = `${db}_restored`;
    dropLater.push(target);
    const r = run(['restore', 'b1', '--repo', repo, '--to', `postgres:///${target}`, '--json'], { PGUSER: 'postgres' });
    expect(r.code, r.stderr).toBe(0);
    expect(psql(target, 'SELECT count(*) FROM t;').trim()).toBe('7');
  });
});

describe('the environment', () => {
  it('PGHOST, PGPORT, PGDATABASE and PGUSER fill a URL that lacks them', () => {
    const b = backup('postgres://', { PGHOST: '127.0.0.1', PGPORT: '5432', PGDATABASE: db, PGUSER: 'postgres' });
    expect(b).toEqual({ location: `postgres://postgres@127.0.0.1:5432/${db}`, rows: 7 });
  });

  it('a service file named by PGSERVICEFILE; the URL overrides its values', () => {
    const file = path.join(work, 'pg_service.conf');
    fs.writeFileSync(file, `[cairn_test]\nhost=127.0.0.1\nport=5432\nuser=postgres\ndbname=${db}\n[cairn_wrong_db]\nhost=127.0.0.1\nuser=postgres\ndbname=cairn_no_such_db\n`);
    expect(backup('postgres://?service=cairn_test', { PGSERVICEFILE: file }).location).toBe(`postgres://postgres@127.0.0.1:5432/${db}`);
    expect(backup('postgres://', { PGSERVICEFILE: file, PGSERVICE: 'cairn_test' }).rows).toBe(7);
    expect(backup(`postgres:///${db}?service=cairn_wrong_db`, { PGSERVICEFILE: file }).location).toBe(`postgres://postgres@127.0.0.1:5432/${db}`);
  });

  it('an unknown service is a usage error (exit 2) naming the files searched', () => {
    const file = path.join(work, 'other_service.conf');
    fs.writeFileSync(file, '[something_else]\ndbname=x\n');
    const r = run(['backup', 'create', '--source', `postgres:///${db}?service=cairn_nope`, '--repo', repo], { PGSERVICEFILE: file, PGSYSCONFDIR: work });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain('service "cairn_nope" is not defined');
    expect(r.stderr).toContain(file);
    expect(r.stderr).toContain(path.join(work, 'pg_service.conf'));
  });
});

describe('sslmode against a server without SSL', () => {
  it('sslmode=disable connects; sslmode=require is a source error (exit 7) naming SSL', () => {
    expect(backup(`postgres://postgres@127.0.0.1:5432/${db}?sslmode=disable`, {}).rows).toBe(7);
    const r = run(['backup', 'create', '--source', `postgres://postgres@127.0.0.1:5432/${db}?sslmode=require`, '--repo', repo], {});
    expect(r.code, r.stderr).toBe(7);
    expect(r.stderr).toMatch(/SSL/);
    expect(r.stderr).toContain('sslmode=disable');
  });

  it('PGSSLMODE=prefer falls back to plain text, as libpq does', () => {
    expect(backup(`postgres://postgres@127.0.0.1:5432/${db}`, { PGSSLMODE: 'prefer' }).rows).toBe(7);
  });
});

describe('~/.pgpass', () => {
  const unavailable = passwordClusterUnavailable();
  it.skipIf(unavailable !== undefined)(`a server that asks for a password gets the one in PGPASSFILE, without a deprecation warning${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
    const cluster = startPasswordCluster();
    try {
      const password = fs.readFileSync(path.join(cluster.dir, 'pw'), 'utf8').trim();
      spawnSync('psql', ['-X', '-q', '-h', cluster.socketDir, '-p', String(cluster.port), '-U', 'postgres', '-d', 'postgres', '-c', 'CREATE TABLE t AS SELECT generate_series(1, 7) AS id'], { encoding: 'utf8' });
      const url = `postgres://postgres@127.0.0.1:${cluster.port}/postgres`;
      // Without the file: refused, and the error says where a password may come from.
      const refused = run(['backup', 'create', '--source', url, '--repo', repo], { PGPASSFILE: path.join(work, 'none') });
      expect(refused.code, refused.stderr).toBe(7);
      expect(refused.stderr).toMatch(/password/);
      const passfile = path.join(work, 'pgpass');
      fs.writeFileSync(passfile, `127.0.0.1:${cluster.port}:*:postgres:${password}\n`, { mode: 0o600 });
      const r = run(['backup', 'create', '--source', url, '--repo', repo, '--id', 'pgpass', '--json'], { PGPASSFILE: passfile });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).not.toMatch(/deprecat/i);
      const show = JSON.parse(run(['backup', 'show', 'pgpass', '--repo', repo, '--json'], {}).stdout) as { source: { location: string }; collections: { name: string; rowCount?: number }[] };
      expect(show.collections.find((c) => c.name === 'public.t')?.rowCount).toBe(7);
      expect(JSON.stringify(show)).not.toContain(password);
    } finally {
      cluster.stop();
    }
  });
});
