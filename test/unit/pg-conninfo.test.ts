/**
 * How a PostgreSQL URL is resolved (issue 16), with the environment, the OS user and the home
 * folder injected: libpq's precedence (URL > service > PG* variables > defaults), its defaults
 * (the OS user, a database named after the user, the Unix socket), service files, and the one
 * cairn rule on top (a URL with an empty path "/" is the whole server).
 */
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/core/errors.js';
import { parsePostgresUrl, pgLocation, toolEnv } from '../../src/sources/postgres/connection.js';
import type { ConninfoContext } from '../../src/sources/postgres/conninfo.js';

const work = fs.mkdtempSync(path.join(tmpdir(), 'cairn-conninfo-'));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** A context with exactly this environment, OS user "alice" and a home folder of its own. */
function ctx(env: NodeJS.ProcessEnv = {}, home = path.join(work, 'home-none')): ConninfoContext {
  return { env, osUser: () => 'alice', home: () => home };
}
const resolve = (url: string, env: NodeJS.ProcessEnv = {}, options: { server?: boolean } = { server: true }, home?: string) =>
  parsePostgresUrl(url, options, ctx(env, home));

describe('defaults, as libpq', () => {
  it('no user: the OS user; no database: the user name; no host: the Unix socket in /var/run/postgresql; port 5432', () => {
    const s = resolve('postgres://');
    expect(s).toMatchObject({ host: '/var/run/postgresql', port: 5432, user: 'alice', database: 'alice', password: undefined });
    expect(resolve('postgresql://?user=bob')).toMatchObject({ user: 'bob', database: 'bob' });
  });

  it('PGUSER, PGHOST, PGPORT, PGDATABASE, PGPASSWORD and PGSSLMODE fill what the URL lacks', () => {
    const env = { PGUSER: 'carol', PGHOST: 'db.example', PGPORT: '6543', PGDATABASE: 'shop', PGPASSWORD: 'pw-from-env', PGSSLMODE: 'require' };
    expect(resolve('postgres://', env)).toMatchObject({ host: 'db.example', port: 6543, user: 'carol', database: 'shop', password: 'pw-from-env', params: { sslmode: 'require' } });
    // The URL wins over every variable.
    expect(resolve('postgres://dave:pw@h:7/inv?sslmode=disable', env)).toMatchObject({ host: 'h', port: 7, user: 'dave', database: 'inv', password: 'pw', params: { sslmode: 'disable' } });
    // Without PGDATABASE, the database is named after the user, wherever the user came from.
    expect(resolve('postgres://', { PGUSER: 'carol' })).toMatchObject({ user: 'carol', database: 'carol' });
  });

  it('the Unix socket: postgres:///db, ?host=/path and a percent-encoded host', () => {
    expect(resolve('postgres:///shop')).toMatchObject({ host: '/var/run/postgresql', database: 'shop' });
    expect(resolve('postgres:///shop?host=/tmp')).toMatchObject({ host: '/tmp', database: 'shop' });
    expect(resolve('postgresql://%2Fvar%2Frun%2Fpostgresql/shop')).toMatchObject({ host: '/var/run/postgresql', database: 'shop' });
    expect(resolve('postgres://u@:5433/shop')).toMatchObject({ host: '/var/run/postgresql', port: 5433, user: 'u' });
  });

  it('a URL with an empty path "/" and no database is the whole server, PGDATABASE notwithstanding; without the slash it takes PGDATABASE', () => {
    const env = { PGDATABASE: 'shop' };
    expect(resolve('postgres:///', env).database).toBe('');
    expect(resolve('postgres://h:5432/', env).database).toBe('');
    expect(resolve('postgres://h:5432/?sslmode=disable', env).database).toBe('');
    expect(resolve('postgres://h:5432', env).database).toBe('shop');
    expect(resolve('postgres://', env).database).toBe('shop');
    // Outside whole-server use (the job catalog), the slash is libpq's: PGDATABASE, else the user.
    expect(resolve('postgres://h/', env, {}).database).toBe('shop');
    expect(resolve('postgres://h/', {}, {}).database).toBe('alice');
  });
});

describe('service files', () => {
  const file = path.join(work, 'services.conf');
  fs.writeFileSync(
    file,
    ['# comment', '[other]', 'dbname=wrong', '', '[shop]', 'host = db.internal', 'port=6000', 'user=svc', 'dbname=shop_db', 'password=svc-secret', 'sslmode=require', '[after]', 'dbname=wrong'].join('\n'),
  );

  it('?service= reads PGSERVICEFILE; the URL overrides the service, which overrides the environment', () => {
    const env = { PGSERVICEFILE: file, PGHOST: 'env-host', PGDATABASE: 'env-db', PGAPPNAME: 'envapp' };
    const s = resolve('postgres://?service=shop', env);
    expect(s).toMatchObject({ host: 'db.internal', port: 6000, user: 'svc', database: 'shop_db', password: 'svc-secret', params: { sslmode: 'require', application_name: 'envapp' } });
    expect(resolve('postgres://me@other-host/mine?service=shop&sslmode=disable', env)).toMatchObject({ host: 'other-host', port: 6000, user: 'me', database: 'mine', params: { sslmode: 'disable' } });
    // A service's database beats the whole-server reading of "/": the service names one.
    expect(resolve('postgres:///?service=shop', env).database).toBe('shop_db');
    // The location never holds the service's password.
    expect(pgLocation(s)).toBe('postgres://svc@db.internal:6000/shop_db');
  });

  it('PGSERVICE names the service when the URL does not; ~/.pg_service.conf is the default file; then PGSYSCONFDIR/pg_service.conf', () => {
    expect(resolve('postgres://', { PGSERVICEFILE: file, PGSERVICE: 'shop' }).database).toBe('shop_db');
    const home = path.join(work, 'home');
    fs.mkdirSync(home, { recursive: true });
    fs.writeFileSync(path.join(home, '.pg_service.conf'), '[mine]\ndbname=from_home\n');
    expect(resolve('postgres://?service=mine', {}, { server: true }, home).database).toBe('from_home');
    const sysconf = path.join(work, 'etc');
    fs.mkdirSync(sysconf, { recursive: true });
    fs.writeFileSync(path.join(sysconf, 'pg_service.conf'), '[mine]\ndbname=from_etc\n[sys]\ndbname=sys_db\n');
    // The user's file first; the system file only for a service the user's file lacks.
    expect(resolve('postgres://?service=mine', { PGSYSCONFDIR: sysconf }, { server: true }, home).database).toBe('from_home');
    expect(resolve('postgres://?service=sys', { PGSYSCONFDIR: sysconf }, { server: true }, home).database).toBe('sys_db');
  });

  it('an unknown service is a usage error naming every file searched', () => {
    const sysconf = path.join(work, 'no-etc');
    let err: unknown;
    try {
      resolve('postgres://?service=nope', { PGSERVICEFILE: file, PGSYSCONFDIR: sysconf });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UsageError);
    const message = (err as Error).message;
    expect(message).toContain('service "nope" is not defined');
    expect(message).toContain(`${file} (no [nope] section)`);
    expect(message).toContain(`${path.join(sysconf, 'pg_service.conf')} (no such file)`);
  });

  it('a keyword cairn does not support, or a nested service, is refused naming the file and line, never its value', () => {
    const bad = path.join(work, 'bad.conf');
    fs.writeFileSync(bad, '[s]\nhostaddr=10.0.0.1\n[n]\nservice=s\n[x]\nnot a keyword line\n');
    expect(() => resolve('postgres://?service=s', { PGSERVICEFILE: bad })).toThrow(/bad\.conf, line 2, sets "hostaddr"/);
    expect(() => resolve('postgres://?service=n', { PGSERVICEFILE: bad })).toThrow(/line 4.*nested services/);
    expect(() => resolve('postgres://?service=x', { PGSERVICEFILE: bad })).toThrow(/line 6: expected keyword=value/);
  });
});

describe('the tools get exactly the resolved connection', () => {
  it('every PG* variable comes from the resolution, none is inherited as it stood', () => {
    const s = resolve('postgres:///shop?sslmode=disable', { PGUSER: 'postgres' });
    const saved = { ...process.env };
    process.env.PGSSLMODE = 'require';
    process.env.PGPORT = '1';
    process.env.PGOPTIONS = '-c work_mem=1';
    process.env.PGSERVICE = 'elsewhere';
    try {
      const env = toolEnv(s);
      expect(env).toMatchObject({ PGHOST: '/var/run/postgresql', PGPORT: '5432', PGUSER: 'postgres', PGDATABASE: 'shop', PGSSLMODE: 'disable' });
      expect(env.PGOPTIONS).toBeUndefined();
      expect(env.PGSERVICE).toBeUndefined();
      expect(env.PGPASSWORD).toBeUndefined();
    } finally {
      for (const k of ['PGSSLMODE', 'PGPORT', 'PGOPTIONS', 'PGSERVICE']) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
    }
  });

  it('sslmode=verify-ca from the environment needs sslrootcert as from the URL', () => {
    expect(() => resolve('postgres://h/db', { PGSSLMODE: 'verify-ca' })).toThrow(/verify-ca needs sslrootcert/);
    expect(() => resolve('postgres://h/db', { PGPORT: 'x' })).toThrow(/port "x" is not a number/);
  });
});
