/**
 * Issue 12 (PostgreSQL side of the restore path): item 2 — a repository's manifest, roles
 * script and schema archive are hostile data (names only ever quoted, no psql meta-command
 * ever run, archive entries of unknown types refused, subscriptions never restored) — and
 * item 8 — URL query parameters are honoured (libpq's meaning) or refused by name, never
 * silently ignored, and a password never shows in a location, an error or a command line.
 *
 * Hostile inputs: HOSTILE_URLS, PASSWORDS, HOSTILE_ROLE_SCRIPTS, HOSTILE_PG_MANIFESTS,
 * HOSTILE_TOCS, HOSTILE_FUNCTION_ARGS and the archives / names of the integration tests
 * (counted in the last test).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CairnError, UsageError } from '../../src/core/errors.js';
import { ownerToken } from '../../src/core/owner.js';
import type { BackupManifest } from '../../src/core/schemas.js';
import { runBackup } from '../../src/jobs/backup.js';
import { runRestore } from '../../src/jobs/restore.js';
import { Repository } from '../../src/repo/repository.js';
import { openTarget } from '../../src/sources/index.js';
import { clientConfig, connect, parsePostgresUrl, pgLocation, previewUrl, redactUrl, toolEnv } from '../../src/sources/postgres/connection.js';
import { ROLES_COLLECTION, SCHEMA_COLLECTION } from '../../src/sources/postgres/definitions.js';
import { checkRoleStatement, roleStatements, splitSqlScript } from '../../src/sources/postgres/roles.js';
import { PostgresSource } from '../../src/sources/postgres/source.js';
import { checkedToc } from '../../src/sources/postgres/target.js';
import { parseToc } from '../../src/sources/postgres/toc.js';
import { parseSqliteUrl } from '../../src/sources/sqlite/sql.js';
import type { ConflictPolicy, RestoreItem, RestoreOptions, RestoreResult, RestoreTarget } from '../../src/sources/types.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { collection, editManifest } from '../helpers/hostile.js';
import { redactUrl as serverRedactUrl, scrubSecrets } from '../../src/server/redact.js';

const BASE = 'postgres://postgres@127.0.0.1:5432';
const prefix = `cairn_sec_${randomBytes(3).toString('hex')}`;
const SRC = `${prefix}_src`;
const databases = new Set<string>([SRC]);
const roles = new Set<string>();
let n = 0;
const dbName = (label: string): string => {
  const name = `${prefix}_${label}_${++n}`;
  databases.add(name);
  return name;
};

async function admin<T>(fn: (c: pg.Client) => Promise<T>, database = 'postgres'): Promise<T> {
  const c = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

const dbExists = (name: string): Promise<boolean> => admin(async (c) => (await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1);
const roleExists = (name: string): Promise<boolean> => admin(async (c) => (await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [name])).rowCount === 1);

const HOSTILE_TABLE = 'x"; DROP TABLE keep; --';
let dir: string;
let repo: Repository;
let root: string;
let id: string;
let original: Buffer;
/** A file a hostile statement tries to create (on this host: the server runs here too). */
let marker: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-sec-restore-pg-'));
  marker = path.join(os.tmpdir(), `${prefix}-marker`);
  await admin((c) => c.query(`CREATE DATABASE ${SRC}`));
  await admin(
    (c) =>
      c.query(`
        CREATE TABLE keep (k int PRIMARY KEY);
        INSERT INTO keep VALUES (1), (2);
        CREATE TABLE "x""; DROP TABLE keep; --" ("a""); DROP TABLE keep; --" text, n int);
        INSERT INTO "x""; DROP TABLE keep; --" VALUES ('it''s', 1), (E'back\\\\slash', 2);
        CREATE TABLE rls (k int);
        ALTER TABLE rls ENABLE ROW LEVEL SECURITY;
      `),
    SRC,
  );
  root = path.join(dir, 'repo');
  repo = await Repository.init(new FileSystemStorage(root));
  const m = await runBackup({ repo, source: new PostgresSource(parsePostgresUrl(`${BASE}/${SRC}`), { roles: true }), jobs: 1, compressionWorkers: 0 });
  id = m.id;
  original = fs.readFileSync(path.join(root, 'backups', id));
}, 60_000);

afterAll(async () => {
  await admin(async (c) => {
    for (const db of databases) await c.query(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`).catch(() => undefined);
    for (const r of roles) await c.query(`DROP ROLE IF EXISTS "${r}"`).catch(() => undefined);
  });
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(marker, { force: true });
});

/** A target that hands the wrapped one different data for some collections (what a forged repository would hold). */
class Forged implements RestoreTarget {
  readonly kind: string;
  readonly location: string;
  constructor(
    private readonly inner: RestoreTarget,
    private readonly replace: Record<string, (original: Buffer) => Buffer>,
  ) {
    this.kind = inner.kind;
    this.location = inner.location;
  }
  check(items: RestoreItem[], onConflict: ConflictPolicy): Promise<void> {
    return this.inner.check(items, onConflict);
  }
  async restore(items: RestoreItem[], options: RestoreOptions): Promise<RestoreResult> {
    const forged = await Promise.all(
      items.map(async (item) => {
        const edit = this.replace[item.entry.name];
        if (edit === undefined) return item;
        const parts: Buffer[] = [];
        for await (const chunk of item.data()) parts.push(Buffer.from(chunk));
        const bytes = edit(Buffer.concat(parts));
        return { ...item, segments: 1, data: async function* () { yield bytes; } };
      }),
    );
    return this.inner.restore(forged, options);
  }
}

async function restoreInto(target: RestoreTarget, options: { roles?: boolean; onConflict?: ConflictPolicy } = {}): Promise<unknown> {
  try {
    await runRestore({ repo, backupId: id, target, jobs: 1, onConflict: options.onConflict ?? 'fail', ...(options.roles ? { roles: true } : {}) });
    return undefined;
  } catch (err) {
    return err;
  }
}

// ------------------------------------------------------------------------------------------- URLs

/** [url, the parameter name the error must quote] — each refused with a UsageError. */
export const HOSTILE_URLS: [string, string][] = [
  [`${BASE}/db?foo=1`, '"foo"'],
  [`${BASE}/db?hostaddr=10.0.0.1`, '"hostaddr"'],
  [`${BASE}/db?service=evil`, 'service "evil" is not defined'],
  [`${BASE}/db?passfile=/etc/shadow`, '"passfile"'],
  [`${BASE}/db?target_session_attrs=any`, '"target_session_attrs"'],
  [`${BASE}/db?sslcrl=/x`, '"sslcrl"'],
  [`${BASE}/db?__proto__=x`, '"__proto__"'],
  [`${BASE}/db?constructor=x`, '"constructor"'],
  [`${BASE}/db?hasOwnProperty=x`, '"hasOwnProperty"'],
  [`${BASE}/db?HOST=/tmp`, '"HOST"'],
  [`${BASE}/db?a=1&b=2`, '"a", "b"'],
  [`${BASE}/db?${'p'.repeat(5000)}=1`, '…'],
  [`postgres:///db?host=a,b`, 'several hosts'],
  [`postgres:///db?host=/tmp&port=99999`, 'not a number from 1 to 65535'],
  [`postgres:///db?port=5432x`, 'not a number from 1 to 65535'],
  [`${BASE}/db?sslmode=maybe`, 'sslmode'],
  [`${BASE}/db?connect_timeout=soon`, 'connect_timeout'],
  [`${BASE}/?dbname=a/b`, 'names no single database'],
  [`${BASE}/db%ZZ`, 'percent-encoding'],
  // Secret parameters spelled so that a scrubber matching names as written would miss them: the
  // parser decodes names (pass%77ord is password); no error may show the value (HOSTILE_SECRET).
  [`${BASE}/db?pass%77ord=${'sekrit'}&foo=1`, '"foo"'],
  [`${BASE}/db?%70%61%73%73%77%6f%72%64=${'sekrit'}&sslmode=maybe`, 'sslmode'],
  [`${BASE}/db?PASSWORD=${'sekrit'}`, '"PASSWORD"'],
  [`${BASE}/db?PassWord=${'sekrit'}&hostaddr=1`, '"PassWord", "hostaddr"'],
];
/** The value of the secret parameters in HOSTILE_URLS: no error, preview or redacted form shows it. */
const HOSTILE_SECRET = 'sekrit';

/** Passwords with the characters that broke redaction; none may appear in any error or location. */
export const PASSWORDS = ['s3cr/et', 'p@ss/w#rd', 'a?b=c&d', 'x:y:z', 'per%cent', 'sp ace', 'tr/ail/', '@@@', 'q"uo\'te', 'semi;colon'];

describe('PostgreSQL URL query parameters (item 8)', () => {
  it.each(HOSTILE_URLS)('refuses %s by name', (url, quoted) => {
    let err: unknown;
    try {
      parsePostgresUrl(url);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toContain(quoted);
    expect((err as Error).message.length).toBeLessThan(600);
    for (const shown of [(err as Error).message, previewUrl(url), redactUrl(url), serverRedactUrl(url), scrubSecrets(url)]) expect(shown).not.toContain(HOSTILE_SECRET);
  });

  it('a query parameter given twice, or also in the URL, is read as libpq reads it: the last, and the parameter wins', () => {
    expect(parsePostgresUrl(`${BASE}/db?host=a&host=b`).host).toBe('b');
    expect(parsePostgresUrl(`${BASE}/db?host=otherhost`).host).toBe('otherhost');
    expect(parsePostgresUrl(`${BASE}/db?dbname=other`).database).toBe('other');
    expect(parsePostgresUrl(`${BASE}/db?user=eve`).user).toBe('eve');
    const s = parsePostgresUrl('postgres://u:pw@127.0.0.1/db?password=other');
    expect(s.password).toBe('other');
    expect(pgLocation(s)).toBe('postgres://u@127.0.0.1:5432/db');
  });

  it('honours host (a Unix socket directory too), port, user, dbname, sslmode, application_name, connect_timeout and options, in the pg client and the tools', async () => {
    const s = parsePostgresUrl('postgres:///?host=/var/run/postgresql&port=5432&user=postgres&dbname=postgres&application_name=secapp&connect_timeout=7&options=-c%20search_path%3Dpg_catalog');
    expect(s).toMatchObject({ host: '/var/run/postgresql', port: 5432, user: 'postgres', database: 'postgres' });
    const env = toolEnv(s);
    expect(env).toMatchObject({ PGHOST: '/var/run/postgresql', PGPORT: '5432', PGUSER: 'postgres', PGDATABASE: 'postgres', PGAPPNAME: 'secapp', PGCONNECT_TIMEOUT: '7', PGOPTIONS: '-c search_path=pg_catalog' });
    expect(clientConfig(s)).toMatchObject({ host: '/var/run/postgresql', application_name: 'secapp', connectionTimeoutMillis: 7000, options: '-c search_path=pg_catalog' });
    // The location names the socket in a form that reads back to the same settings.
    const back = parsePostgresUrl(pgLocation(s));
    expect(back).toMatchObject({ host: '/var/run/postgresql', port: 5432, user: 'postgres', database: 'postgres' });
    // And it really connects there, with those settings.
    const c = await connect(s);
    try {
      const { rows } = await c.query<{ app: string; path: string; addr: string | null }>(
        "SELECT current_setting('application_name') AS app, current_setting('search_path') AS path, inet_client_addr()::text AS addr",
      );
      expect(rows[0]).toEqual({ app: 'secapp', path: 'pg_catalog', addr: null }); // null: a Unix socket
    } finally {
      await c.end();
    }
    // So do the tools, even with variables in cairn's environment that would send them elsewhere.
    process.env.PGHOSTADDR = '192.0.2.1';
    process.env.PGSERVICE = 'cairn-nonexistent-service';
    let toolsEnv: NodeJS.ProcessEnv;
    try {
      toolsEnv = toolEnv(s);
    } finally {
      delete process.env.PGHOSTADDR;
      delete process.env.PGSERVICE;
    }
    expect(toolsEnv.PGHOSTADDR).toBeUndefined();
    const r = spawnSync('psql', ['-X', '-tA', '-c', "SELECT current_setting('application_name') || ' ' || coalesce(inet_client_addr()::text, 'socket')"], { env: toolsEnv });
    expect(r.stdout.toString().trim()).toBe('secapp socket');
  });

  it('honours sslmode as libpq does: disable is plain, verify-full checks the host name, verify-ca the chain only', () => {
    const base = `${BASE}/db`;
    expect(clientConfig(parsePostgresUrl(`${base}?sslmode=disable`)).ssl).toBe(false);
    const full = clientConfig(parsePostgresUrl(`${base}?sslmode=verify-full`)).ssl as { rejectUnauthorized: boolean; checkServerIdentity?: unknown };
    expect(full.rejectUnauthorized).toBe(true);
    expect(full.checkServerIdentity).toBeUndefined();
    // verify-ca needs the authority to check against, as libpq does (issue 16).
    expect(() => parsePostgresUrl(`${base}?sslmode=verify-ca`)).toThrow(/verify-ca needs sslrootcert/);
    const rootcert = path.join(os.tmpdir(), `cairn-sec-root-${process.pid}.crt`);
    fs.writeFileSync(rootcert, '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n');
    try {
      const withCa = `${base}?sslmode=verify-ca&sslrootcert=${encodeURIComponent(rootcert)}`;
      const ca = clientConfig(parsePostgresUrl(withCa)).ssl as { rejectUnauthorized: boolean; checkServerIdentity?: unknown };
      expect(ca.rejectUnauthorized).toBe(true);
      expect(typeof ca.checkServerIdentity).toBe('function');
      expect(toolEnv(parsePostgresUrl(withCa)).PGSSLMODE).toBe('verify-ca');
    } finally {
      fs.rmSync(rootcert, { force: true });
    }
    expect(() => clientConfig(parsePostgresUrl(`${base}?sslmode=verify-full&sslrootcert=/nonexistent/root.crt`))).toThrow(UsageError);
  });

  it.each(PASSWORDS)('never shows the password %j: not in locations, errors or tool arguments', async (password) => {
    const enc = encodeURIComponent(password);
    const viaQuery = parsePostgresUrl(`postgres://app@127.0.0.1:1/db?password=${enc}`);
    expect(viaQuery.password).toBe(password);
    expect(JSON.stringify(viaQuery.params)).not.toContain(password);
    expect(pgLocation(viaQuery)).not.toContain(password);
    expect(toolEnv(viaQuery).PGPASSWORD).toBe(password);
    // A connection error (nothing listens on port 1) does not carry it.
    const err = await connect(viaQuery).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CairnError);
    expect((err as Error).message).not.toContain(password);
    // Written raw (not percent-encoded) into a URL, in the user info or the query: every
    // redaction and every URL error hides it.
    for (const url of [`postgres://app:${password}@127.0.0.1:5432/db`, `postgres://app@127.0.0.1:5432/db?password=${password}`, `postgres://app:${password}@127.0.0.1:5432/db?bogus=1`]) {
      expect(redactUrl(url)).not.toContain(password);
      expect(previewUrl(url)).not.toContain(password);
      try {
        const s = parsePostgresUrl(url);
        expect(pgLocation(s)).not.toContain(password);
      } catch (e) {
        expect(e).toBeInstanceOf(UsageError);
        expect((e as Error).message).not.toContain(password);
      }
    }
  });

  it('a restore that fails to connect does not show the query password, and the tools never get it on their command line', async () => {
    const password = 'Query-Secret-9/x';
    const target = openTarget(`postgres://postgres@127.0.0.1:5432/${dbName('pw')}?password=${encodeURIComponent(password)}&application_name=cairn-sec`);
    expect(target.location).not.toContain(password);
    const err = await restoreInto(target);
    // trust authentication: the restore works, and the password went nowhere visible
    if (err !== undefined) expect((err as Error).message).not.toContain(password);
  });
});

describe('SQLite URL query parameters (item 8)', () => {
  it.each([
    ['sqlite:///tmp/a.db?mode=ro', '"mode"'],
    ['sqlite:///tmp/a.db?cache=shared&immutable=1', '"cache", "immutable"'],
    ['sqlite:a.db?', 'an empty query'],
    ['sqlite:///tmp/a.db?__proto__=1', '"__proto__"'],
    ['sqlite:///tmp/a.db?vfs=unix-none', '"vfs"'],
  ])('refuses %s by name', (url, quoted) => {
    expect(() => parseSqliteUrl(url)).toThrow(UsageError);
    expect(() => parseSqliteUrl(url)).toThrow(quoted);
  });
});

describe('restore temporary files (item 7)', () => {
  it('the temporary folder is 0700 and the archive and list files in it 0600, whatever the umask', async () => {
    fs.writeFileSync(path.join(root, 'backups', id), original);
    const seen = new Map<string, number>();
    const look = (): void => {
      for (const name of fs.readdirSync(os.tmpdir())) {
        if (!name.startsWith(`cairn-pg-restore-${ownerToken()}-`)) continue;
        const folder = path.join(os.tmpdir(), name);
        try {
          seen.set(folder, fs.statSync(folder).mode & 0o777);
          for (const f of fs.readdirSync(folder)) seen.set(path.join(folder, f), fs.statSync(path.join(folder, f)).mode & 0o777);
        } catch {
          /* gone meanwhile */
        }
      }
    };
    const old = process.umask(0);
    try {
      await runRestore({ repo, backupId: id, target: openTarget(`${BASE}/${dbName('modes')}`), jobs: 1, onProgress: look });
    } finally {
      process.umask(old);
    }
    expect(seen.size).toBeGreaterThan(1);
    for (const [file, mode] of seen) expect(mode, file).toBe(path.basename(file).startsWith('cairn-pg-restore-') ? 0o700 : 0o600);
  }, 60_000);
});

// ------------------------------------------------------------------------------------- roles

const legitRoles = (): string => {
  const r = spawnSync('pg_dumpall', ['-h', '127.0.0.1', '-U', 'postgres', '--roles-only', '--no-role-passwords']);
  expect(r.status).toBe(0);
  return r.stdout.toString('utf8');
};

/** Roles scripts a forged repository could hold: each refused before any statement runs. */
export const HOSTILE_ROLE_SCRIPTS = (marker: string, role: string): string[] => [
  `CREATE ROLE ${role};\n\\! touch ${marker}\n`,
  `\\! touch ${marker}\nCREATE ROLE ${role};\n`,
  `CREATE ROLE ${role}; \\! touch ${marker}\n`,
  `CREATE ROLE ${role};\n\\o ${marker}\nSELECT 1;\n`,
  `CREATE ROLE ${role};\n\\copy (SELECT 1) TO '${marker}'\n`,
  `CREATE ROLE ${role};\n\\setenv X 1\n`,
  `CREATE ROLE ${role};\n\\restrict abc\n\\! touch ${marker}\n`,
  `\\restrict abc\nCREATE ROLE ${role};\n\\unrestrict abc\n\\! touch ${marker}\n`,
  `CREATE ROLE ${role};\nCOPY (SELECT 1) TO PROGRAM 'touch ${marker}';\n`,
  `CREATE ROLE ${role};\nCOPY (SELECT 1) TO '${marker}';\n`,
  `CREATE ROLE ${role};\nSELECT pg_read_file('/etc/passwd');\n`,
  `CREATE ROLE ${role};\nDO $$ BEGIN PERFORM 1; END $$;\n`,
  `CREATE ROLE ${role};\nDROP DATABASE postgres;\n`,
  `CREATE ROLE ${role};\nALTER SYSTEM SET shared_preload_libraries = 'evil';\n`,
  `CREATE ROLE ${role};\nALTER ROLE ${role} SET session_preload_libraries = 'evil';\n`,
  `CREATE ROLE ${role};\nALTER ROLE ${role} SET local_preload_libraries = '$libdir/plugins/evil';\n`,
  `CREATE ROLE ${role};\nSET session_preload_libraries = 'evil';\n`,
  `CREATE ROLE ${role};\nSET ROLE ${role};\n`,
  `CREATE ROLE ${role};\nSET SESSION AUTHORIZATION ${role};\n`,
  `CREATE ROLE ${role};\nCREATE EXTENSION adminpack;\n`,
  `CREATE ROLE ${role};\nCREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';\n`,
  `CREATE ROLE ${role};\nLOAD 'evil';\n`,
  `CREATE ROLE ${role}; /* unterminated\n`,
  `CREATE ROLE ${role}; COMMENT ON ROLE ${role} IS 'unterminated\n`,
  `CREATE ROLE ${role};\nCOMMENT ON ROLE ${role} IS 'x'; \\! touch ${marker}\n`,
  `CREATE ROLE ${role};\nCOMMENT ON ROLE ${role} IS E'x\\''; \\! touch ${marker} --';\n`,
  `CREATE ROLE ${role};\n/* nested /* comment */ still comment */ \\! touch ${marker}\n`,
  `CREATE ROLE ${role};\nCOMMENT ON ROLE ${role} IS $q$x$q$; TRUNCATE keep;\n`,
  `CREATE ROLE ${role};\nCREATE ROLE x; VACUUM;\n`,
  `CREATE ROLE ${role};\nGRANT pg_execute_server_program TO ${role}; CHECKPOINT;\n`,
];

describe('the roles script is data, never a psql script (item 2)', () => {
  it('the real pg_dumpall --roles-only output passes, \\restrict lines dropped', () => {
    const statements = roleStatements(legitRoles(), ROLES_COLLECTION);
    expect(statements.length).toBeGreaterThan(1);
    expect(statements.some((s) => s.startsWith('\\'))).toBe(false);
  });

  it('strings and comments may hold ";" and backslashes: they are read, not split', () => {
    expect(splitSqlScript("COMMENT ON ROLE a IS 'x;\n\\! y';\nCOMMENT ON ROLE a IS E'\\';\\\\'; -- c;\nSET a = $t$;$t$;")).toEqual([
      "COMMENT ON ROLE a IS 'x;\n\\! y'",
      "COMMENT ON ROLE a IS E'\\';\\\\'",
      'SET a = $t$;$t$',
    ]);
    expect(() => checkRoleStatement('CREATE ROLE "a; \\! b"')).not.toThrow();
  });

  it.each(HOSTILE_ROLE_SCRIPTS('<marker>', 'r').map((s, i) => [i, s]))('refuses hostile roles script %i', (_i, script) => {
    expect(() => roleStatements(script, ROLES_COLLECTION)).toThrow(/Refusing to restore the roles/);
  });

  it('a restore with --roles refuses a forged roles script before running any of it: no role, no file, no database', async () => {
    const role = `${prefix}_forged`;
    roles.add(role);
    for (const script of HOSTILE_ROLE_SCRIPTS(marker, role)) {
      const db = dbName('roles');
      const target = new Forged(openTarget(`${BASE}/${db}`), { [ROLES_COLLECTION]: () => Buffer.from(script) });
      const err = await restoreInto(target, { roles: true });
      expect((err as CairnError | undefined)?.code, script).toBe('CORRUPT');
      expect(fs.existsSync(marker), script).toBe(false);
      expect(await roleExists(role), script).toBe(false);
      expect(await dbExists(db), script).toBe(false);
    }
  }, 120_000);

  it('a role name or comment with psql syntax in it is only text', async () => {
    const role = `${prefix} \\! touch ${marker}`;
    roles.add(role);
    const script = `CREATE ROLE "${role}";\nCOMMENT ON ROLE "${role}" IS '\n\\! touch ${marker}\n';\n`;
    const db = dbName('rolestext');
    const err = await restoreInto(new Forged(openTarget(`${BASE}/${db}`), { [ROLES_COLLECTION]: () => Buffer.from(script) }), { roles: true });
    expect(err).toBeUndefined();
    expect(await roleExists(role)).toBe(true);
    expect(fs.existsSync(marker)).toBe(false);
  }, 60_000);
});

// ------------------------------------------------------------------------------ manifest names

describe('names from the manifest are only ever quoted identifiers or parameters', () => {
  it('a table named like an injection round-trips into a new and an existing database; the other table is untouched', async () => {
    fs.writeFileSync(path.join(root, 'backups', id), original);
    const fresh = dbName('names');
    expect(await restoreInto(openTarget(`${BASE}/${fresh}`))).toBeUndefined();
    for (const db of [fresh]) {
      const rows = await admin(async (c) => (await c.query(`SELECT * FROM "x""; DROP TABLE keep; --" ORDER BY n`)).rows, db);
      expect(rows).toEqual([
        { 'a"); DROP TABLE keep; --': "it's", n: 1 },
        { 'a"); DROP TABLE keep; --': 'back\\slash', n: 2 },
      ]);
      expect((await admin((c) => c.query('SELECT count(*)::int AS n FROM keep'), db)).rows[0]).toEqual({ n: 2 });
    }
    // Over the existing database, overwriting: the same.
    const err = await restoreInto(openTarget(`${BASE}/${fresh}`), { onConflict: 'overwrite' });
    expect(err).toBeUndefined();
    expect((await admin((c) => c.query(`SELECT count(*)::int AS n FROM "x""; DROP TABLE keep; --"`), fresh)).rows[0]).toEqual({ n: 2 });
    expect((await admin((c) => c.query('SELECT count(*)::int AS n FROM keep'), fresh)).rows[0]).toEqual({ n: 2 });
  }, 60_000);

  const table = (m: BackupManifest): Record<string, unknown> => collection(m, `public.${HOSTILE_TABLE}`).definition;
  const schemaDef = (m: BackupManifest): Record<string, unknown> => collection(m, SCHEMA_COLLECTION).definition;

  /** Manifest edits with SQL in names and fields: each fails the restore, runs nothing, creates nothing. */
  const HOSTILE_PG_MANIFESTS: [string, (m: BackupManifest) => void][] = [
    ['copyColumns with COPY … TO PROGRAM', (m) => void (table(m).copyColumns = [`a) TO PROGRAM 'touch ${marker}' --`])],
    ['copyColumns with a quote', (m) => void (table(m).copyColumns = ['a"); DROP TABLE keep; --x'])],
    ['table name in the definition', (m) => void (table(m).name = `t"; COPY (SELECT 1) TO PROGRAM 'touch ${marker}'; --`)],
    ['schema name in the definition', (m) => void (table(m).schema = `public"; DROP TABLE keep; --`)],
    ['encoding with SQL', (m) => void (schemaDef(m).encoding = `UTF8' TEMPLATE template1 --`)],
    ['LC_COLLATE with SQL', (m) => void (schemaDef(m).collate = `C'; COPY (SELECT 1) TO PROGRAM 'touch ${marker}'; --`)],
    ['LC_CTYPE with a backslash', (m) => void (schemaDef(m).ctype = `C\\'; DROP DATABASE postgres; --`)],
    ['sequence lastValue with SQL', (m) => void (table(m).sequences = [{ schema: 'public', name: 's', lastValue: '1); DROP TABLE keep; --', isCalled: true }])],
    ['sequence name with SQL', (m) => void (table(m).sequences = [{ schema: 'public', name: `s'::regclass); DROP TABLE keep; --`, lastValue: '1', isCalled: true }])],
    ['relkind outside the enum', (m) => void (table(m).relkind = "r'; DROP TABLE keep; --")],
  ];

  it('a collection name with SQL in it is only the name of the table restored', async () => {
    const name = `t"; DROP TABLE keep; --`; // under 64 bytes: PostgreSQL truncates longer names
    editManifest(root, id, (m) => void (collection(m, `public.${HOSTILE_TABLE}`).name = `public.${name}`));
    try {
      const db = dbName('named');
      expect(await restoreInto(openTarget(`${BASE}/${db}`))).toBeUndefined();
      expect(fs.existsSync(marker)).toBe(false);
      const { rows } = await admin((c) => c.query("SELECT relname FROM pg_class WHERE relname LIKE 't\"%'"), db);
      expect(rows).toEqual([{ relname: name }]);
      expect((await admin((c) => c.query('SELECT count(*)::int AS n FROM keep'), db)).rows[0]).toEqual({ n: 2 });
    } finally {
      fs.writeFileSync(path.join(root, 'backups', id), original);
    }
  }, 60_000);

  it.each(HOSTILE_PG_MANIFESTS)('%s: refused, nothing created or run', async (label, edit) => {
    fs.writeFileSync(path.join(root, 'backups', id), original);
    editManifest(root, id, edit);
    try {
      const db = dbName('forged');
      const err = await restoreInto(openTarget(`${BASE}/${db}`));
      expect(err, label).toBeInstanceOf(CairnError);
      expect(await dbExists(db), label).toBe(false);
      expect(fs.existsSync(marker), label).toBe(false);
      // The source (any other database) is untouched.
      expect((await admin((c) => c.query('SELECT count(*)::int AS n FROM keep'), SRC)).rows[0]).toEqual({ n: 2 });
      expect(await dbExists('postgres')).toBe(true);
    } finally {
      fs.writeFileSync(path.join(root, 'backups', id), original);
    }
  }, 60_000);

  it('counts', () => {
    counts.manifests = HOSTILE_PG_MANIFESTS.length + 2;
  });
});

// ----------------------------------------------------------------------------------- archive

/** TOC lines (pg_restore -l) of types pg_dump never writes. */
export const HOSTILE_TOCS = [
  '5; 0 0 SHELL COMMAND - x postgres',
  '5; 0 0 PROGRAM - touch postgres',
  '5; 0 0 COPY TO PROGRAM public x postgres',
  '5; 0 0 schema - lower postgres',
  '5; 0 0 SCHEMAX - public postgres',
  '5; 0 0 ALTER SYSTEM - x postgres',
  '5; 0 0 LOAD - evil postgres',
  '5; 0 0 DO - x postgres',
  '5; 0 0 \u0000 - x postgres',
  '5; 0 0 TABLE',
];

/** Function argument lists that must never be pasted into a DROP FUNCTION. */
export const HOSTILE_FUNCTION_ARGS = ['f(int); DROP TABLE keep', 'f(int), public.g(text)', "f(int) CASCADE; SELECT '1')", 'f(")"); DROP TABLE keep; --)', 'f(int)) CASCADE --'];

describe('the schema archive (what cairn limits around pg_restore)', () => {
  it.each(HOSTILE_TOCS)('refuses an archive with the entry %j', (line) => {
    const toc = parseToc(`3; 2615 2200 SCHEMA - public postgres\n${line}\n`);
    let err: unknown;
    try {
      checkedToc(toc);
    } catch (e) {
      err = e;
    }
    // A line that parses as a known type is fine; every unknown type is refused.
    if (toc.length === 2 && /^(TABLE|SCHEMA)$/.test(toc[1]?.desc ?? '')) expect(err).toBeUndefined();
    else expect((err as CairnError | undefined)?.code).toBe('CORRUPT');
  });

  it('leaves subscriptions out, whatever else the archive holds', () => {
    const toc = parseToc('3; 2615 2200 SCHEMA - public postgres\n7; 6100 16400 SUBSCRIPTION - evil postgres\n8; 6102 16401 SUBSCRIPTION TABLE - evil t postgres\n');
    expect(checkedToc(toc).map((e) => e.desc)).toEqual(['SCHEMA']);
  });

  it('an archive entry retyped to one pg_dump never writes refuses the restore; nothing is created', async () => {
    fs.writeFileSync(path.join(root, 'backups', id), original);
    const db = dbName('toc');
    const target = new Forged(openTarget(`${BASE}/${db}`), {
      [SCHEMA_COLLECTION]: (archive) => {
        const at = archive.indexOf('ROW SECURITY');
        expect(at).toBeGreaterThan(0);
        const forged = Buffer.from(archive);
        forged.write('ROW_SECURITY', at, 'latin1');
        return forged;
      },
    });
    const err = await restoreInto(target);
    expect((err as CairnError | undefined)?.code).toBe('CORRUPT');
    expect((err as Error).message).toContain('ROW_SECURITY');
    expect(await dbExists(db)).toBe(false);
  }, 60_000);

  it('an entry retyped as a SUBSCRIPTION is not run', async () => {
    fs.writeFileSync(path.join(root, 'backups', id), original);
    const db = dbName('sub');
    const target = new Forged(openTarget(`${BASE}/${db}`), {
      [SCHEMA_COLLECTION]: (archive) => {
        const forged = Buffer.from(archive);
        forged.write('SUBSCRIPTION', archive.indexOf('ROW SECURITY'), 'latin1');
        return forged;
      },
    });
    expect(await restoreInto(target)).toBeUndefined();
    // The entry's SQL (ENABLE ROW LEVEL SECURITY) did not run.
    const { rows } = await admin((c) => c.query("SELECT relrowsecurity FROM pg_class WHERE relname = 'rls'"), db);
    expect(rows).toEqual([{ relrowsecurity: false }]);
  }, 60_000);

  it.each(HOSTILE_FUNCTION_ARGS)('never drops %j as a function (cleanup of a forged record)', async (name) => {
    const { dropStatementForTest } = await import('../../src/sources/postgres/target.js');
    expect(dropStatementForTest({ desc: 'FUNCTION', schema: 'public', name })).toBeUndefined();
    expect(dropStatementForTest({ desc: 'FUNCTION', schema: 'public', name: 'f(integer, "odd ; type")' })).toBe('DROP FUNCTION IF EXISTS "public"."f"(integer, "odd ; type")');
  });
});

const counts = { manifests: 0 };

describe('hostile input count', () => {
  it('reports', () => {
    const total =
      HOSTILE_URLS.length +
      PASSWORDS.length * 3 +
      5 + // SQLite URLs
      HOSTILE_ROLE_SCRIPTS('m', 'r').length * 2 + // unit + through a restore
      1 + // role name / comment with psql syntax
      1 + // injection-named table and column
      counts.manifests +
      HOSTILE_TOCS.length +
      1 + // subscriptions
      2 + // forged archives
      HOSTILE_FUNCTION_ARGS.length;
    console.log(`HOSTILE INPUTS TRIED (test/security/restore-postgres.test.ts): ${total}`);
    expect(total).toBeGreaterThan(100);
  });
});
