/**
 * What a new user's trial of the CLI ran into, each kind fixed and checked here with the real
 * CLI as a subprocess: relative paths given to `schedule add` / `schedule edit` / `source add`
 * stored absolute (a schedule run from another folder finds the same repository and database);
 * `dump` of PostgreSQL's "(schema)" and of a mistyped name; `schedule show` listing the
 * selection; flags typed by habit from pg_restore / pg_dump / restic; `repo init` on /proc and
 * on a regular file; a registered source name given to `backup create` in this process.
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHINOOK, cairn, cairnJson } from '../helpers/cli.js';
import { createDatabase, dropDatabase, ensurePostgres, pgUrl, psql } from '../helpers/postgres.js';

let work: string;
const at = (name: string): string => join(work, name);
/** A private data folder (names, schedules) and nothing inherited that would name a repository or server. */
const env = (): NodeJS.ProcessEnv => ({ CAIRN_DATA_DIR: at('data'), CAIRN_REPO: '', CAIRN_SERVER: '', CAIRN_TOKEN: '' });
const run = (args: string[], cwd = work): ReturnType<typeof cairn> => cairn(args, { cwd, env: env() });

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'cairn-trial-'));
  cpSync(CHINOOK, at('app.db'));
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('relative paths are stored absolute', () => {
  interface Shown {
    schedule: { source: string; repository: string; copyTo?: string };
  }

  it('schedule add: --repo, --copy-to and a sqlite: source given relative run from another folder', () => {
    expect(run(['repo', 'init', 'rc']).code).toBe(0);
    expect(run(['repo', 'init', 'rc2']).code).toBe(0);
    const add = run(['schedule', 'add', 'rel', '--source', 'sqlite:app.db', '--repo', 'rc', '--copy-to', 'rc2', '--cron', '@daily']);
    expect(add.code, add.stderr).toBe(0);
    // A bare word that is no registered name is a folder: said once, with the folder it became.
    expect(add.stderr).toContain(`--repo "rc" is not a registered repository name, so it is the folder ${at('rc')}`);
    const shown = cairnJson<Shown>(['schedule', 'show', 'rel'], { cwd: '/', env: env() }).schedule;
    expect(shown.repository).toBe(at('rc'));
    expect(shown.copyTo).toBe(at('rc2'));
    expect(shown.source).toBe(`sqlite://${at('app.db')}`);
    // From / (where "rc" and "app.db" mean nothing), the run backs up the same file into the same repositories.
    const r = run(['schedule', 'run-now', 'rel'], '/');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toContain('warning');
    for (const repo of ['rc', 'rc2']) {
      const list = cairnJson<{ backups: { schedule?: string }[] }>(['backup', 'list', '--repo', at(repo)], { env: env() });
      expect(list.backups.map((b) => b.schedule)).toEqual(['rel']);
    }
    expect(existsSync('/rc')).toBe(false);
  });

  it('schedule edit: a relative --repo / --copy-to / --source is stored absolute too; a registered name stays a name', () => {
    mkdirSync(at('sub'));
    cpSync(CHINOOK, join(at('sub'), 'other.db'));
    const edit = run(['schedule', 'edit', 'rel', '--repo', 'r-edit', '--copy-to', './r-copy', '--source', 'sqlite:other.db'], at('sub'));
    expect(edit.code, edit.stderr).toBe(0);
    let shown = cairnJson<Shown>(['schedule', 'show', 'rel'], { env: env() }).schedule;
    expect(shown.repository).toBe(join(at('sub'), 'r-edit'));
    expect(shown.copyTo).toBe(join(at('sub'), 'r-copy'));
    expect(shown.source).toBe(`sqlite://${join(at('sub'), 'other.db')}`);

    expect(run(['repo', 'add', 'named', at('rc')]).code).toBe(0);
    const named = run(['schedule', 'edit', 'rel', '--repo', 'named'], '/');
    expect(named.code, named.stderr).toBe(0);
    expect(named.stderr).not.toContain('not a registered');
    shown = cairnJson<Shown>(['schedule', 'show', 'rel'], { env: env() }).schedule;
    expect(shown.repository).toBe('named');
  });

  it('source add: a relative sqlite: URL is registered absolute', () => {
    const r = cairnJson<{ location: string }>(['source', 'add', 'app', 'sqlite:app.db'], { cwd: work, env: env() });
    expect(r.location).toBe(`sqlite://${at('app.db')}`);
    // The name, given to a backup in another folder, still reads the same file.
    const b = cairnJson<{ source: { location: string } }>(['backup', 'create', '--source', 'app', '--repo', at('rc')], { cwd: '/', env: env() });
    expect(b.source.location).toBe(`sqlite://${at('app.db')}`);
  });
});

describe('backup create --source NAME in this process', () => {
  it('an unregistered name says where names are looked up and how to register one', () => {
    const r = run(['backup', 'create', '--source', 'nosuch', '--repo', at('rc')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^cairn: error: "nosuch" is neither a database URL nor a source registered in .*catalog\.db: register it \(cairn source add nosuch <url>/m);
  });
});

describe('schedule show', () => {
  it('lists the selection, the pattern and the rest the JSON has', () => {
    const add = run(['schedule', 'add', 'sel', '--source', `sqlite://${at('app.db')}`, '--repo', at('rc'), '--cron', '@daily', '--include', 'Album,Artist', '--pattern', 'x-{yyyyMMdd-HHmmss}']);
    expect(add.code, add.stderr).toBe(0);
    const show = run(['schedule', 'show', 'sel']);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/^ {2}include +Album, Artist$/m);
    expect(show.stdout).toMatch(/^ {2}pattern +x-\{yyyyMMdd-HHmmss\}$/m);
    expect(show.stdout).toMatch(/^ {2}created +\d{4}-/m);
    const edit = run(['schedule', 'edit', 'sel', '--exclude', 'Track']);
    expect(edit.code, edit.stderr).toBe(0);
    const again = run(['schedule', 'show', 'sel']).stdout;
    expect(again).toMatch(/^ {2}exclude +Track$/m);
    expect(again).not.toMatch(/^ {2}include/m);
  });
});

describe('dump names', () => {
  const dbs: string[] = [];
  let repo: string;

  beforeAll(() => {
    ensurePostgres();
    const db = createDatabase('trial');
    dbs.push(db);
    psql(db, 'CREATE TABLE t (id int); INSERT INTO t VALUES (1); CREATE TABLE albums (id int);');
    repo = at('pg-repo');
    expect(run(['repo', 'init', repo]).code).toBe(0);
    const b = run(['backup', 'create', '--source', pgUrl(db), '--repo', repo, '--id', 'p1']);
    expect(b.code, b.stderr).toBe(0);
  });

  afterAll(() => {
    for (const db of dbs) dropDatabase(db);
  });

  it('"(schema)" is found and refused as having no rows (not "unknown … did you mean" itself)', () => {
    const r = run(['dump', 'p1', '(schema)', '--repo', repo]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^cairn: error: "\(schema\)" belongs to the whole database .*it has no rows to dump; dump a table/m);
    expect(r.stderr).not.toContain('public.(schema)');
  });

  it('a typo gets the close names (edit distance), in dump and in --include alike', () => {
    const r = run(['dump', 'p1', 'tt', '--repo', repo]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Unknown collection in backup "p1": public\.tt\. Did you mean public\.t\?/);
    // The list of what there is holds tables only: "(schema)" cannot be dumped.
    expect(r.stderr).toMatch(/Available: public\.albums, public\.t\.$/m);
    const swapped = run(['backup', 'create', '--source', pgUrl(dbs[0] as string), '--repo', repo, '--include', 'ablums']);
    expect(swapped.code).toBe(2);
    expect(swapped.stderr).toMatch(/Did you mean public\.albums\?/);
  });
});

describe('advice in errors', () => {
  it.each([
    [['restore', 'b1', '--repo', 'r', '--target', 'x'], /unknown option '--target': the database to restore into is --to <url>/],
    [['restore', '--source', 'x', '--repo', 'r'], /unknown option '--source': the backup to restore is the first argument: cairn restore <backup id> --to <url>/],
    [['restore', 'b1', '--to', 'sqlite:x.db', '-d', 'x'], /unknown option '-d': the database to restore into is --to <url> \(pg_restore's -d\)/],
    [['backup', 'create', '--dbname', 'x', '--repo', 'r'], /unknown option '--dbname': the database to back up is --source <url>/],
    // A command's option given before the command: moved after the command the line names.
    [['--server', 'http://127.0.0.1:1', 'job', 'list'], /unknown option '--server' before the command: options go after the command they belong to, e\.g\. cairn job list --server …/],
    [['--repo', 'r', 'backup', 'list'], /unknown option '--repo' before the command: .* cairn backup list --repo …/],
  ])('%j names the flag cairn takes', (args, problem) => {
    const r = run(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(problem);
  });

  it('an unknown flag without an alias keeps the plain message', () => {
    const r = run(['restore', 'b1', '--to', 'sqlite:x.db', '--bogus']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^cairn: error: unknown option '--bogus'$/m);
    // Before the command too: no command takes it, so nothing to move.
    expect(run(['--bogus', 'job', 'list']).stderr).toMatch(/^cairn: error: unknown option '--bogus'$/m);
  });

  it('repo init under /proc says the folder cannot be created there and why (exit 8)', () => {
    const r = run(['repo', 'init', '/proc/cairn-trial-repo']);
    expect(r.code).toBe(8);
    expect(r.stderr).toMatch(/^cairn: error: Cannot create the folder \/proc\/cairn-trial-repo: its parent \/proc does not accept new folders .*Choose a folder on a disk/m);
    expect(r.stderr).not.toContain('ENOENT');
  });

  it('repo init on a regular file says it is a file, not a folder', () => {
    writeFileSync(at('afile'), 'x');
    const r = run(['repo', 'init', 'afile']);
    expect(r.code).toBe(8);
    expect(r.stderr).toMatch(/afile is a regular file, not a folder; give a new or empty folder as the repository\./);
    expect(r.stderr).not.toContain('parent folders');
  });
});
