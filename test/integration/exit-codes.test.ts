/**
 * Issue 16: every exit code of docs/cli.md's "Exit codes" table, walked with the real CLI as a
 * subprocess, each cause its row lists where the CLI can be brought to it: the exit code, the
 * `cairn: error:` line on stderr naming the problem, and with --json one document on stdout,
 * `{"error":{code,message,exitCode},"durationMs":N}`, with the documented code string. The table is parsed from
 * docs/cli.md: a code documented there that this file does not walk fails the last test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteTokenStore } from '../../src/catalog/tokens.js';
import { EXIT_CODES } from '../../src/core/errors.js';
import { Repository } from '../../src/repo/repository.js';
import { catalogFile, startServer, type RunningServer } from '../../src/server/index.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { CHINOOK, CLI, PROJECT_ROOT, cairn, cairnRun } from '../helpers/cli.js';
import { createDatabase, dropDatabase, ensurePostgres, ident, lit, pgUrl, psql } from '../helpers/postgres.js';

/** The `code` string of each exit code, as docs/cli.md "Output and errors" names them. */
const CODE_NAMES: Record<number, string> = {
  1: 'INTERNAL',
  2: 'USAGE',
  3: 'NOT_FOUND',
  4: 'CONFLICT',
  5: 'LOCKED',
  6: 'CORRUPT',
  7: 'SOURCE',
  8: 'STORAGE',
  9: 'KEY',
  11: 'LEASE_LOST',
  130: 'CANCELLED',
};

const CLI_MD = readFileSync(join(PROJECT_ROOT, 'docs/cli.md'), 'utf8');

/** The rows of one `## <title>` section of docs/cli.md (up to the next `## ` heading). */
function section(title: string): string {
  const start = CLI_MD.indexOf(`\n## ${title}\n`);
  if (start < 0) throw new Error(`docs/cli.md has no "## ${title}" section`);
  const rest = CLI_MD.slice(start + 1);
  const end = rest.slice(3).search(/^## /m);
  return end < 0 ? rest : rest.slice(0, end + 3);
}

/** The exit codes docs/cli.md's table lists, in its order. */
function documentedExitCodes(): number[] {
  return [...section('Exit codes').matchAll(/^\|\s*(\d+)\s*\|/gm)].map((m) => Number(m[1]));
}

/**
 * Exit codes a case of this file has seen, added when its checks passed — at run time, not when
 * the tests are collected, so that a case skipped (no `script` for the terminal case) or filtered
 * out cannot count a code as covered. The table test, last in the file, compares them with the docs.
 */
const seen = new Set<number>();
/** Why 1 is not provoked. */
const NOT_PROVOKABLE: Record<number, string> = {
  1: 'exit 1 is reserved for bugs: no command line provokes one on purpose, and the CLI has no hook to fake one (a hidden one would be a way to make cairn fail in production)',
  11: 'a job ends LEASE_LOST only on a server sharing a PostgreSQL catalog that cannot renew its lease there; test/integration/replica-jobs.test.ts cuts a server off and sees the job end LEASE_LOST, and --server maps a job\'s code to its exit code as for every other code (remote.ts jobError)',
};

let work: string;
let repo: string;
let dataDir: string;
const env = (): NodeJS.ProcessEnv => ({ CAIRN_DATA_DIR: dataDir, CAIRN_REPO: '', CAIRN_SERVER: '', CAIRN_TOKEN: '' });

interface ErrorDoc {
  error: { code: string; message: string; exitCode: number };
  durationMs: number;
}

/**
 * Checks one failed run: exit code, one `cairn: error:` line matching `problem`, and (json) the
 * error document on stdout agreeing with that line; without --json nothing on stdout.
 */
function expectError(r: { code: number | null; stdout: string; stderr: string }, exit: number, problem: RegExp, json: boolean): void {
  expect(r.code, r.stderr).toBe(exit);
  expect(r.stderr).not.toMatch(/internal error/);
  const line = r.stderr.split('\n').find((l) => l.startsWith('cairn: error: '));
  expect(line, `no "cairn: error:" line in: ${r.stderr}`).toBeDefined();
  // The message may go on over several lines (a list of problems): the first names the problem.
  expect(r.stderr.slice(r.stderr.indexOf('cairn: error: '))).toMatch(problem);
  if (!json) {
    expect(r.stdout).toBe('');
  } else {
    const doc = JSON.parse(r.stdout) as ErrorDoc;
    // durationMs last, as on every --json document (docs/cli.md "Output and errors").
    expect(Object.keys(doc)).toEqual(['error', 'durationMs']);
    expect(Number.isInteger(doc.durationMs) && doc.durationMs >= 0, `durationMs ${doc.durationMs}`).toBe(true);
    expect(doc.error).toEqual({ code: CODE_NAMES[exit], message: expect.any(String), exitCode: exit });
    expect(r.stderr).toContain(`cairn: error: ${doc.error.message}`);
  }
  seen.add(exit);
}

/** One cause of an exit code, run without and with --json (each must fail the same way). */
function walk(exit: number, cause: string, args: () => string[], problem: RegExp, before?: () => void, extraEnv: NodeJS.ProcessEnv = {}): void {
  it(`exit ${exit} (${CODE_NAMES[exit]}): ${cause}`, () => {
    for (const json of [false, true]) {
      before?.();
      const r = cairn(json ? [...args(), '--json'] : args(), { env: { ...env(), ...extraEnv } });
      expectError(r, exit, problem, json);
    }
  });
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'cairn-exit-codes-'));
  repo = join(work, 'repo');
  dataDir = join(work, 'data');
  expect(cairn(['repo', 'init', repo], { env: env() }).code).toBe(0);
  const r = cairn(['backup', 'create', '--source', `sqlite://${CHINOOK}`, '--repo', repo, '--id', 'b1'], { env: env() });
  expect(r.code, r.stderr).toBe(0);
  expect(cairn(['repo', 'add', 'known', repo], { env: env() }).code).toBe(0);
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('exit 0', () => {
  it('exit 0: success prints the result (with --json one document, no error)', () => {
    const r = cairn(['backup', 'show', 'b1', '--repo', repo, '--json'], { env: env() });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const doc = JSON.parse(r.stdout) as { id: string; error?: unknown };
    expect(doc.id).toBe('b1');
    expect(doc.error).toBeUndefined();
    seen.add(0);
  });
});

describe('exit 1', () => {
  // Printed with its reason, on the line that skips it.
  it(`exit 1 (INTERNAL): not provoked: ${NOT_PROVOKABLE[1]}`, (ctx) => {
    console.log(`skipped: exit 1 (INTERNAL): ${NOT_PROVOKABLE[1]}`);
    ctx.skip(NOT_PROVOKABLE[1]);
  });
  it(`exit 11 (LEASE_LOST): not provoked here: ${NOT_PROVOKABLE[11]}`, (ctx) => {
    console.log(`skipped: exit 11 (LEASE_LOST): ${NOT_PROVOKABLE[11]}`);
    ctx.skip(NOT_PROVOKABLE[11]);
  });
});

describe('exit 2: usage', () => {
  walk(2, 'unknown flag', () => ['backup', 'list', '--repo', repo, '--bogus'], /^cairn: error: unknown option '--bogus'/);
  walk(2, 'bad id', () => ['backup', 'create', '--source', `sqlite://${CHINOOK}`, '--repo', repo, '--id', 'Bad Id!'], /^cairn: error: Invalid backup id "Bad Id!"/);
  walk(2, 'bad database URL', () => ['backup', 'create', '--source', 'ftp://host/db', '--repo', repo], /^cairn: error: Unsupported database URL scheme "ftp:"/);
  walk(2, 'bad repository URL', () => ['backup', 'list', '--repo', 'ftp://host/repo'], /^cairn: error: Unsupported repository URL scheme "ftp:\/\/"/);
  walk(2, 'include with exclude', () => ['backup', 'create', '--source', `sqlite://${CHINOOK}`, '--repo', repo, '--include', 'Artist', '--exclude', 'Album'], /^cairn: error: --include and --exclude cannot be used together/);
  walk(2, 'copy into the repository it reads', () => ['copy', 'b1', '--from', repo, '--to', repo], /^cairn: error: --from and --to name the same repository \(file:\/\/.*\): its backups are there already\. Give --to another repository \(create one with: cairn repo init <path>/);
  walk(2, 'unknown collection', () => ['backup', 'create', '--source', `sqlite://${CHINOOK}`, '--repo', repo, '--include', 'Nope'], /^cairn: error: Unknown collection: Nope\. Available: Album/);

  describe('a token the server refuses', () => {
    let server: RunningServer | undefined;

    beforeAll(async () => {
      const serverData = join(work, 'server-data');
      const store = new SqliteTokenStore(catalogFile(serverData));
      store.create('viewer');
      store.close();
      server = await startServer({ dataDir: serverData, port: 0, scheduleTickMs: 3600_000, env: {} });
    });

    afterAll(async () => {
      await server?.close();
    });

    it('exit 2 (USAGE): a token the server refuses (401), and none given', async () => {
      for (const token of ['not-a-token', '']) {
        for (const json of [false, true]) {
          const r = await cairnRun(['job', 'list', '--server', server!.url, ...(json ? ['--json'] : [])], { ...env(), CAIRN_TOKEN: token });
          expectError(r, 2, /^cairn: error: the server refused the token: .*CAIRN_TOKEN/, json);
        }
      }
    });
  });
});

describe('exit 3: not found', () => {
  walk(3, 'repository', () => ['backup', 'list', '--repo', join(work, 'no-repo-here')], /^cairn: error: No cairn repository at file:\/\/.*no-repo-here\. Create one with: cairn repo init/);
  walk(3, 'backup', () => ['backup', 'show', 'no-such-backup', '--repo', repo], /^cairn: error: Backup "no-such-backup" not found in .*cairn backup list/);
  walk(3, 'registered repository name', () => ['repo', 'remove', 'never-registered'], /^cairn: error: No repository named "never-registered" is registered .*cairn repo list/);
  walk(3, 'source database (SQLite)', () => ['backup', 'create', '--source', `sqlite://${join(work, 'missing.db')}`, '--repo', repo], /^cairn: error: SQLite database not found: .*missing\.db\. Check the path/);
  walk(3, 'the folder of a SQLite restore target', () => ['restore', 'b1', '--repo', repo, '--to', `sqlite://${join(work, 'no-dir', 'x.db')}`], /^cairn: error: The folder .*no-dir does not exist.*mkdir -p/);

  describe('PostgreSQL', () => {
    beforeAll(() => ensurePostgres());
    walk(3, 'source database (PostgreSQL)', () => ['backup', 'create', '--source', pgUrl(`cairn_t_never_${randomBytes(4).toString('hex')}`), '--repo', repo], /^cairn: error: PostgreSQL database "cairn_t_never_[0-9a-f]+" does not exist on 127\.0\.0\.1:5432\. Check the database name/);
  });
});

describe('exit 4: conflict', () => {
  walk(4, 'backup id taken', () => ['backup', 'create', '--source', `sqlite://${CHINOOK}`, '--repo', repo, '--id', 'b1'], /^cairn: error: A backup with id "b1" already exists in .*Choose another --id/);
  walk(4, "backup id taken in a copy's target", () => ['copy', 'b1', '--from', repo, '--to', join(work, 'copy-target')], /^cairn: error: .*"b1".*(exists|already)/i, () => {
    if (readdirSafe(join(work, 'copy-target')).length === 0) cpSync(repo, join(work, 'copy-target'), { recursive: true });
  });
  walk(4, 'repository name already registered', () => ['repo', 'add', 'known', repo], /^cairn: error: A repository named "known" is registered already/);
  walk(4, 'repository already initialised', () => ['repo', 'init', repo], /^cairn: error: A repository already exists at file:\/\/.*choose another location/);
  walk(4, 'target collection exists', () => ['restore', 'b1', '--repo', repo, '--to', `sqlite://${join(work, 'existing.db')}`], /^cairn: error: Cannot restore into .*existing\.db: \d+ conflicts:\n- Table "Album" already exists .*--on-conflict overwrite/, () => cpSync(CHINOOK, join(work, 'existing.db')));
});

describe('exit 5: locked', () => {
  it('exit 5 (LOCKED): another process holds the repository (an exclusive lock, as a prune takes)', async () => {
    const held = await (await Repository.open(new FileSystemStorage(repo))).lock(true, 'prune (exit-codes test)');
    try {
      for (const json of [false, true]) {
        const r = await cairnRun(['backup', 'delete', 'b1', '--repo', repo, ...(json ? ['--json'] : [])], env());
        expectError(r, 5, /^cairn: error: .*locked.*prune \(exit-codes test\)/i, json);
      }
    } finally {
      await held.release();
    }
    // The lock was the reason: released, the repository answers again.
    expect(cairn(['backup', 'show', 'b1', '--repo', repo], { env: env() }).code).toBe(0);
  });
});

describe('exit 6: corruption', () => {
  const damaged = (): string => join(work, 'damaged');
  walk(6, 'a damaged pack (restore)', () => ['restore', 'b1', '--repo', damaged(), '--to', `sqlite://${join(work, 'from-damaged.db')}`], /^cairn: error: Restore of backup "b1" stopped, nothing was written to the target: .*cairn verify b1 --read-data/, () => {
    if (readdirSafe(damaged()).length > 0) return;
    cpSync(repo, damaged(), { recursive: true });
    // Overwrite bytes in the middle of every pack: every blob check fails.
    for (const name of readdirSync(join(damaged(), 'data'), { recursive: true, encoding: 'utf8' })) {
      const file = join(damaged(), 'data', name);
      if (!statSync(file).isFile()) continue;
      const bytes = readFileSync(file);
      bytes.fill(0x55, Math.floor(bytes.length / 3), Math.floor(bytes.length / 3) + 64);
      writeFileSync(file, bytes);
    }
  });
  it('exit 6 (CORRUPT): verify --read-data names the damaged pack (its --json is its own report, no error document)', () => {
    const r = cairn(['verify', '--repo', damaged(), '--read-data'], { env: env() });
    expect(r.code, r.stderr).toBe(6);
    expect(r.stderr).toMatch(/^cairn: error: .*data\/[0-9a-f]{2}\/[0-9a-f]{64}/m);
    seen.add(6);
  });
});

function readdirSafe(dir: string): string[] {
  try {
    return statSync(dir).isDirectory() ? readdirSync(dir) : [];
  } catch {
    return [];
  }
}

describe('exit 7: source or target database error', () => {
  walk(7, 'a SQLite source that is not a database', () => ['backup', 'create', '--source', `sqlite://${join(work, 'not-a-db.txt')}`, '--repo', repo], /^cairn: error: Cannot read SQLite database .*not-a-db\.txt: file is not a database/, () => writeFileSync(join(work, 'not-a-db.txt'), 'plain text, no SQLite header\n'.repeat(20)));

  describe('PostgreSQL', () => {
    let db: string;
    const role = `cairn_t_noselect_${randomBytes(4).toString('hex')}`;

    beforeAll(() => {
      ensurePostgres();
      db = createDatabase('exit7');
      psql(db, `CREATE TABLE secret (k int); INSERT INTO secret VALUES (1); CREATE ROLE ${ident(role)} LOGIN; GRANT CONNECT ON DATABASE ${ident(db)} TO ${ident(role)};`);
    });

    afterAll(() => {
      dropDatabase(db);
      psql('postgres', `DROP ROLE IF EXISTS ${ident(role)};`);
    });

    walk(7, 'a PostgreSQL role without SELECT on a table', () => ['backup', 'create', '--source', pgUrl(db, role), '--repo', repo], new RegExp(`^cairn: error: PostgreSQL refused an operation: permission denied for table secret\\. Grant the user "${role}" the privilege it needs`));
  });
});

describe('exit 8: storage', () => {
  walk(8, 'a repository under a regular file', () => ['repo', 'init', join(work, 'a-file', 'repo')], /^cairn: error: Cannot stat config in file:\/\/.*a-file\/repo: not a directory: \/.*\/a-file is a regular file; choose a path whose parent folders are all folders\.$/m, () => writeFileSync(join(work, 'a-file'), 'x'));

  it('exit 8 (STORAGE): a cairn server that cannot be reached', async () => {
    const port = await closedPort();
    for (const json of [false, true]) {
      const r = await cairnRun(['job', 'list', '--server', `http://127.0.0.1:${port}`, ...(json ? ['--json'] : [])], env());
      expectError(r, 8, new RegExp(`^cairn: error: cannot connect to cairn server at http://127\\.0\\.0\\.1:${port}: .+; is it running\\?`), json);
    }
  });
});

/** A port nothing listens on: one the kernel gave us, closed again. */
function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const address = s.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      s.close(() => resolve(port));
    });
  });
}

describe('exit 9: key', () => {
  let encrypted: string;
  // Key slots made cheap to open (scrypt N = 2^10) for the test; the password sources are cleared.
  const keyEnv = { CAIRN_TEST_WEAK_KDF: '1', CAIRN_PASSWORD_FILE: '', CAIRN_NEW_PASSWORD: '' };

  beforeAll(() => {
    encrypted = join(work, 'encrypted');
    const r = cairn(['repo', 'init', encrypted, '--encryption'], { env: { ...env(), ...keyEnv, CAIRN_NEW_PASSWORD: 'the right one' } });
    expect(r.code, r.stderr).toBe(0);
  });

  walk(9, 'a wrong password', () => ['backup', 'list', '--repo', encrypted], /^cairn: error: Wrong password for the encrypted repository at file:\/\/.*encrypted: it opens none of its 1 key slot/, undefined, { ...keyEnv, CAIRN_PASSWORD: 'not the right one' });
});

describe('exit 130: cancelled', () => {
  let db: string;
  let cancelRepo: string;

  beforeAll(() => {
    ensurePostgres();
    db = createDatabase('exit130');
    // ~100 MB of rows: the backup runs for seconds, long after its first progress line.
    psql(db, 'CREATE TABLE big AS SELECT g, md5(g::text) AS a, md5((g + 1)::text) AS b FROM generate_series(1, 1000000) g;');
    cancelRepo = join(work, 'cancel-repo');
    expect(cairn(['repo', 'init', cancelRepo], { env: env() }).code).toBe(0);
  }, 120_000);

  afterAll(() => {
    dropDatabase(db);
  });

  const hasScript = readdirSafe('/usr/bin').includes('script');
  it(`exit 130 (CANCELLED): Ctrl-C on the terminal during a PostgreSQL backup, once its progress line is shown${hasScript ? '' : ' — skipped: util-linux `script` (a pseudo-terminal) is not installed'}`, async (ctx) => {
    if (!hasScript) {
      console.log('skipped: exit 130 on a terminal: util-linux `script` is not installed, no pseudo-terminal to type Ctrl-C into');
      return ctx.skip();
    }
    // The progress line is drawn only on a terminal: `script` gives the CLI one, and a Ctrl-C
    // typed into it is a real one (the terminal sends SIGINT to the foreground process group).
    const command = [process.execPath, CLI, 'backup', 'create', '--source', pgUrl(db), '--repo', cancelRepo].map(shellQuote).join(' ');
    const child = spawn('script', ['-qfec', command, '/dev/null'], { env: { ...process.env, ...env() }, stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    const progress = new Promise<boolean>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        output += d.toString();
        if (/backup \[[#.]+\]/.test(output)) resolve(true);
      });
      child.once('exit', () => resolve(false));
    });
    expect(await progress, `no progress line before the backup ended: ${output}`).toBe(true);
    child.stdin.write('\x03');
    const code = await exitOf(child);
    expect(code, output).toBe(130);
    expect(output).toMatch(/cairn: error: Cancelled \(interrupted by Ctrl-C or SIGTERM\)/);
    expect(listBackups(cancelRepo)).toEqual([]);
    seen.add(130);
  }, 120_000);

  it('exit 130 (CANCELLED): SIGINT during a PostgreSQL backup with --json (no progress line: awaits the COPY of the table)', async () => {
    const child = spawn(process.execPath, [CLI, 'backup', 'create', '--source', pgUrl(db), '--repo', cancelRepo, '--json'], { env: { ...process.env, ...env() }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const copying = (): boolean => psql('postgres', `SELECT count(*) FROM pg_stat_activity WHERE datname = ${lit(db)} AND state = 'active' AND query ILIKE 'COPY%TO STDOUT%';`).trim() !== '0';
    while (child.exitCode === null && !copying()) await new Promise((r) => setImmediate(r));
    expect(child.exitCode, `the backup ended before its COPY was seen: ${stderr}`).toBeNull();
    child.kill('SIGINT');
    const code = await exitOf(child);
    expectError({ code, stdout, stderr }, 130, /^cairn: error: Cancelled \(interrupted by Ctrl-C or SIGTERM\)/, true);
    expect(listBackups(cancelRepo)).toEqual([]);
  }, 120_000);
});

function listBackups(repository: string): string[] {
  const r = cairn(['backup', 'list', '--repo', repository, '--json'], { env: env() });
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { backups: { id: string }[] }).backups.map((b) => b.id);
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function exitOf(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((r) => child.once('exit', (code) => r(code)));
}

describe('exit 10', () => {
  it('exit 10: cairn status when a source is past its recovery point objective (the command itself succeeded: no error)', async () => {
    // Backed up (b1, in "known") a moment ago with an objective of 1 s: breached once a second has gone by.
    expect(cairn(['source', 'add', 'late', `sqlite://${CHINOOK}`, '--rpo', '1s'], { env: env() }).code).toBe(0);
    const deadline = Date.now() + 20_000;
    let r = cairn(['status', '--json'], { env: env() });
    while (r.code === 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      r = cairn(['status', '--json'], { env: env() });
    }
    expect(r.code, r.stderr).toBe(10);
    expect(r.stderr).toBe('');
    const doc = JSON.parse(r.stdout) as { status: string; sources: { name?: string; breached: boolean }[]; error?: unknown };
    expect(doc.status).toBe('degraded');
    expect(doc.sources[0]).toMatchObject({ name: 'late', breached: true });
    expect(doc.error).toBeUndefined();
    seen.add(10);
  });
});

describe('the table in docs/cli.md', () => {
  it('lists exactly the exit codes the cases of this file saw when they ran (or declares not provokable, with the reason)', () => {
    const documented = documentedExitCodes();
    expect(documented.length).toBeGreaterThan(5);
    const covered = new Set([...seen, ...Object.keys(NOT_PROVOKABLE).map(Number)]);
    expect(
      documented.filter((c) => !covered.has(c)),
      'documented exit codes no case here saw (a skipped case, or one filtered out with -t, does not count: run the whole file)',
    ).toEqual([]);
    expect([...covered].filter((c) => !documented.includes(c)), 'exit codes walked here that docs/cli.md does not document').toEqual([]);
  });

  it('names each error code string, and the code maps to the same exit codes', () => {
    const names = section('Output and errors');
    for (const name of Object.values(CODE_NAMES)) expect(names).toContain(`\`${name}\``);
    expect(Object.fromEntries(Object.entries(EXIT_CODES).map(([name, exit]) => [exit, name]))).toEqual(CODE_NAMES);
  });
});
