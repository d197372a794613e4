/**
 * How a PostgreSQL URL is resolved (issue 16), with the environment, the OS user and the home
 * folder injected: libpq's precedence (URL > service > PG* variables > defaults), its defaults
 * (the OS user, a database named after the user, the Unix socket), service files, and the one
 * cairn rules on top (a URL with an empty path "/" is the whole server; a URL without a path that
 * names no database is refused); untrusted resolution (ad-hoc URLs from API requests); one
 * database key for every spelling of a database; redaction by decoded parameter names.
 */
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/core/errors.js';
import { clientConfig, parsePostgresUrl, pgLocation, pgpassPassword, postgresDatabaseKey, redactUrl, toolEnv } from '../../src/sources/postgres/connection.js';
import type { ConninfoContext } from '../../src/sources/postgres/conninfo.js';
import { redactUrl as serverRedactUrl, safeMessage } from '../../src/server/redact.js';
import { scrubSecrets } from '../../src/sources/redact.js';

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
    // (A lone "/" outside whole-server use: libpq's reading.)
    const s = resolve('postgres:///', {}, {});
    expect(s).toMatchObject({ host: '/var/run/postgresql', port: 5432, user: 'alice', database: 'alice', password: undefined });
    expect(resolve('postgresql:///?user=bob', {}, {})).toMatchObject({ user: 'bob', database: 'bob' });
  });

  it('PGUSER, PGHOST, PGPORT, PGDATABASE, PGPASSWORD and PGSSLMODE fill what the URL lacks', () => {
    const env = { PGUSER: 'carol', PGHOST: 'db.example', PGPORT: '6543', PGDATABASE: 'shop', PGPASSWORD: 'pw-from-env', PGSSLMODE: 'require' };
    expect(resolve('postgres://', env)).toMatchObject({ host: 'db.example', port: 6543, user: 'carol', database: 'shop', password: 'pw-from-env', params: { sslmode: 'require' } });
    // The URL wins over every variable.
    expect(resolve('postgres://dave:pw@h:7/inv?sslmode=disable', env)).toMatchObject({ host: 'h', port: 7, user: 'dave', database: 'inv', password: 'pw', params: { sslmode: 'disable' } });
    // Without PGDATABASE, the database is named after the user, wherever the user came from.
    expect(resolve('postgres:///', { PGUSER: 'carol' }, {})).toMatchObject({ user: 'carol', database: 'carol' });
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

/** The thrown error of `fn` (fails the test when nothing is thrown). */
function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}

describe('a URL without a path names a database, or is refused', () => {
  it('no path, no ?dbname=, no service dbname, no PGDATABASE: a usage error saying how to write the whole server or one database', () => {
    for (const url of ['postgres://postgres@db:5432', 'postgres://db', 'postgres://', 'postgres://db:5432?sslmode=disable', 'postgresql://?user=bob']) {
      for (const options of [{ server: true }, {}]) {
        const err = thrown(() => resolve(url, {}, options));
        expect(err).toBeInstanceOf(UsageError);
        expect((err as UsageError).exitCode).toBe(2);
        expect(err.message).toContain('names no database');
        expect(err.message).toContain('write postgres://host/ for the whole server, or postgres://host/db for one database');
      }
    }
  });

  it('with PGDATABASE, ?dbname= or a service dbname it is that database (libpq); with a lone "/" the whole server', () => {
    expect(resolve('postgres://postgres@db:5432', { PGDATABASE: 'shop' }).database).toBe('shop');
    expect(resolve('postgres://postgres@db:5432?dbname=inv').database).toBe('inv');
    const file = path.join(work, 'nopath.conf');
    fs.writeFileSync(file, '[s]\ndbname=svc_db\n');
    expect(resolve('postgres://db?service=s', { PGSERVICEFILE: file }).database).toBe('svc_db');
    expect(resolve('postgres://postgres@db:5432/').database).toBe('');
  });
});

describe('untrusted URLs (ad hoc in an API request) use nothing of the server', () => {
  const file = path.join(work, 'untrusted-services.conf');
  fs.writeFileSync(file, '[prod]\nhost=prod.internal\nuser=svc\npassword=svc-secret\ndbname=prod_db\n');
  const serverEnv = { PGSERVICEFILE: file, PGPASSWORD: 'env-secret', PGUSER: 'envuser', PGDATABASE: 'envdb', PGHOST: 'envhost', PGPORT: '6000', PGSSLMODE: 'require' };
  const untrusted = (url: string, env: NodeJS.ProcessEnv = serverEnv) => parsePostgresUrl(url, { server: true, untrusted: true }, ctx(env));

  it('a URL naming everything resolves from its own text only: no PG* variable fills anything', () => {
    const s = untrusted('postgres://bob@db.example/shop');
    expect(s).toMatchObject({ host: 'db.example', port: 5432, user: 'bob', database: 'shop', password: undefined, params: {}, untrusted: true });
    expect(untrusted('postgres://bob:pw@db.example:7000/?sslmode=disable')).toMatchObject({ port: 7000, database: '', password: 'pw', params: { sslmode: 'disable' } });
  });

  it('?service= is refused (before any file is read), also with the name percent-encoded; PGSERVICE is not read', () => {
    for (const url of ['postgres://attacker.example/?service=prod', 'postgres://u@attacker.example/db?servic%65=prod', 'postgres://u@attacker.example/db?dbname=x&service=nope']) {
      const err = thrown(() => untrusted(url));
      expect(err).toBeInstanceOf(UsageError);
      expect(err.message).toMatch(/names a service .*nothing of the server's own settings/);
      expect(err.message).not.toContain('svc-secret');
    }
    expect(untrusted('postgres://u@h.example/db', { ...serverEnv, PGSERVICE: 'prod' })).toMatchObject({ host: 'h.example', user: 'u', password: undefined });
  });

  it('the Unix socket, a missing host and a missing user are refused: peer authentication would use the server\'s OS user', () => {
    for (const [url, why] of [
      ['postgres:///postgres', 'names no host'],
      ['postgres://postgres@/postgres', 'names no host'],
      ['postgres://postgres@:5433/postgres', 'names no host'],
      ['postgres://postgres@h/postgres?host=/var/run/postgresql', 'Unix socket folder'],
      ['postgres://postgres@%2Ftmp/postgres', 'Unix socket folder'],
      ['postgres://h.example/postgres', 'names no user'],
    ] as const) {
      const err = thrown(() => untrusted(url));
      expect(err, url).toBeInstanceOf(UsageError);
      expect(err.message, url).toContain(why);
    }
  });

  it('certificate files of the server are refused before they are read', () => {
    for (const k of ['sslcert', 'sslkey', 'sslrootcert']) {
      const err = thrown(() => untrusted(`postgres://u@h.example/db?sslmode=require&${k}=/nonexistent/${k}`));
      expect(err.message).toContain(`names a file of the server (${k})`);
    }
  });

  it('no path and no ?dbname=: refused (PGDATABASE is not read)', () => {
    expect(thrown(() => untrusted('postgres://u@h.example')).message).toContain('names no database');
  });

  it('no ~/.pgpass and no inherited PG* variable for the connection and the tools', async () => {
    const pgpass = path.join(work, 'pgpass');
    fs.writeFileSync(pgpass, 'h.example:5432:*:u:pgpass-secret\n', { mode: 0o600 });
    const saved = { ...process.env };
    delete process.env.PGPASSWORD; // (with it set, the pgpass module reads no file)
    Object.assign(process.env, { PGPASSFILE: pgpass, PGSSLCERT: '/etc/server.crt', PGOPTIONS: '-c x=1' });
    try {
      const trusted = parsePostgresUrl('postgres://u@h.example/db', {}, ctx({}));
      expect(await pgpassPassword(trusted)).toBe('pgpass-secret');
      const s = untrusted('postgres://u@h.example/db');
      expect(await pgpassPassword(s)).toBeUndefined();
      const password = clientConfig(s).password as () => unknown;
      expect(typeof password).toBe('function');
      expect(await password()).toBeUndefined();
      process.env.PGPASSWORD = 'env-secret';
      const env = toolEnv(s);
      expect(env.PGPASSWORD).toBeUndefined();
      expect(env.PGOPTIONS).toBeUndefined();
      expect(env.PGPASSFILE).not.toBe(pgpass);
      expect(fs.existsSync(env.PGPASSFILE as string)).toBe(false);
      expect(env.PGSSLCERT).not.toBe('/etc/server.crt');
      expect(env).toMatchObject({ PGHOST: 'h.example', PGUSER: 'u', PGDATABASE: 'db', PGGSSENCMODE: 'disable' });
    } finally {
      for (const k of ['PGPASSFILE', 'PGPASSWORD', 'PGSSLCERT', 'PGOPTIONS']) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
    }
  });
});

describe('one database key for every spelling of a database', () => {
  /** The key of a URL's location, as the server computes it (location, then key). */
  const keyOf = (url: string, env: NodeJS.ProcessEnv = {}) => postgresDatabaseKey(pgLocation(parsePostgresUrl(url, { server: true }, ctx(env))));

  it('the Unix socket (default or named), localhost, 127.0.0.1 and ::1, with and without a user, on one port: one key', () => {
    const spellings = [
      'postgres:///cairn_catalog',
      'postgres:///cairn_catalog?host=/var/run/postgresql',
      'postgres://x@/cairn_catalog?host=/var/run/postgresql',
      'postgres://postgres@/cairn_catalog',
      'postgres://u@%2Ftmp/cairn_catalog',
      'postgres://localhost/cairn_catalog',
      'postgres://LocalHost:5432/cairn_catalog',
      'postgres://127.0.0.1/cairn_catalog',
      'postgres://cairn@127.0.0.1:5432/cairn_catalog',
      'postgres://cairn:pw@[::1]:5432/cairn_catalog',
      'postgres://?dbname=cairn_catalog',
    ];
    for (const url of spellings) expect(keyOf(url), url).toBe('postgres://localhost:5432/cairn_catalog');
    // Through the variables too: the location names what they resolved to.
    expect(keyOf('postgres://', { PGDATABASE: 'cairn_catalog', PGHOST: '/tmp' })).toBe('postgres://localhost:5432/cairn_catalog');
    // The socket-form location itself (what a manifest or job records) has the key.
    expect(postgresDatabaseKey('postgres:///cairn_catalog?host=%2Fvar%2Frun%2Fpostgresql&port=5432&user=postgres')).toBe('postgres://localhost:5432/cairn_catalog');
  });

  it('another port, database or host is another key; a whole server ends in "/"', () => {
    const key = keyOf('postgres:///app');
    expect(keyOf('postgres://localhost:5433/app')).not.toBe(key);
    expect(keyOf('postgres:///app2')).not.toBe(key);
    expect(keyOf('postgres://db.example/app')).toBe('postgres://db.example:5432/app');
    expect(keyOf('postgres:///')).toBe('postgres://localhost:5432/');
    expect(keyOf('postgres://u@127.0.0.1:5432/')).toBe('postgres://localhost:5432/');
    expect(keyOf('postgres://u@[2001:db8::1]/a%2Fb'.replace('%2Fb', 'b'))).toBe('postgres://[2001:db8::1]:5432/ab');
    expect(postgresDatabaseKey('sqlite:///x.db')).toBeUndefined();
  });
});

describe('redaction by decoded parameter names', () => {
  const hostile = 'postgres://u@h/db?pass%77ord=sekrit&foo=1';

  it('the parser reads pass%77ord as password; the error quoting the URL does not show it', () => {
    const err = thrown(() => parsePostgresUrl(hostile, {}, ctx({})));
    expect(err.message).toContain('"foo"');
    expect(err.message).not.toContain('sekrit');
    expect(parsePostgresUrl('postgres://u@h/db?pass%77ord=sekrit', {}, ctx({})).password).toBe('sekrit');
  });

  it('redactUrl and scrubSecrets hide a secret parameter whatever the escapes or letter case of its name', () => {
    for (const url of [hostile, 'postgres://u@h/db?%70%61%73%73%77%6F%72%64=sekrit', 'postgres://u@h/db?PASSWORD=sekrit', 'postgres://u@h/db?Pass%57ord=sekrit&x=1']) {
      for (const out of [redactUrl(url), serverRedactUrl(url), scrubSecrets(`failed on ${url} today`), safeMessage(`failed on ${url}`)]) {
        expect(out, url).not.toContain('sekrit');
      }
    }
    // Any engine's or storage's URL in free text: the generic secret names too.
    const s3 = 'https://h/x?X-Amz-Sig%6Eature=sekrit&to%6Ben=sekrit';
    for (const out of [serverRedactUrl(s3), scrubSecrets(`failed on ${s3}`)]) expect(out).not.toContain('sekrit');
    // An escape that spells no name character is kept as written.
    expect(scrubSecrets('a%2Fb=1')).toBe('a%2Fb=1');
  });
});
