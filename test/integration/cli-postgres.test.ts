/**
 * End-to-end: the built `cairn` CLI against the local PostgreSQL server (127.0.0.1:5432, user
 * postgres) and local filesystem repositories. Every database a test creates is named
 * `cairn_t_<prefix>_<random>` and dropped in afterAll.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackupManifest } from '../../src/core/schemas.js';
import { cairn, cairnAsync, cairnJson, type CliResult } from '../helpers/cli.js';
import {
  createDatabase,
  databaseExists,
  dropDatabase,
  ensurePostgres,
  ident,
  listDatabases,
  listTables,
  lit,
  loadChinook,
  loadEveryKind,
  pgEnv,
  pgUrl,
  passwordClusterUnavailable,
  pgbenchInit,
  psql,
  schemaDump,
  snapshotOf,
  startPasswordCluster,
  tableChecksums,
  type ScratchCluster,
} from '../helpers/postgres.js';

const EXIT = { USAGE: 2, NOT_FOUND: 3, CONFLICT: 4, SOURCE: 7, CANCELLED: 130 };

let work: string;
let chinook: string;
let every: string;
/** Databases to drop in afterAll (created ones, and restore targets that may exist). */
const databases = new Set<string>();
const roles = new Set<string>();

function hex(): string {
  return randomBytes(4).toString('hex');
}

function newDb(prefix: string): string {
  const name = createDatabase(prefix);
  databases.add(name);
  return name;
}

/** A name for a database that a restore will create. */
function newTargetName(prefix: string): string {
  const name = `cairn_t_${prefix}_${hex()}`;
  databases.add(name);
  return name;
}

function newRepo(name: string): string {
  const repo = join(work, name);
  const r = cairn(['repo', 'init', repo]);
  expect(r.code, r.stderr).toBe(0);
  return repo;
}

function ok(r: CliResult): CliResult {
  expect(r.code, `exit ${r.code}: ${r.stderr}`).toBe(0);
  return r;
}

function selectableNames(m: BackupManifest): string[] {
  return m.collections.filter((c) => c.selectable !== false).map((c) => c.name).sort();
}

/** One clear line on stderr, no stack trace, nothing on stdout. */
function expectOneLineError(r: CliResult, code: number, message?: RegExp): void {
  expect(r.code, r.stderr).toBe(code);
  expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(r.stdout).toBe('');
  if (message) expect(r.stderr).toMatch(message);
}

/**
 * Staging databases of a restore into `target`: cairn names them `<target>__cairn_<restore id>`
 * (other suites may be restoring into their own databases at the same time, so only names
 * derived from this target count).
 */
function stagingFor(target: string): string[] {
  const like = target.replace(/[\\%_]/g, (c) => `\\${c}`);
  return listDatabases(`${like}\\_\\_cairn\\_%`);
}

/** The advisory lock "cair" + id that the owner of a staging object holds (see src/sources/postgres/staging.ts). */
function stagingLockHeld(id: string): boolean {
  return (
    psql('postgres', `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = ${0x63616972} AND objid = ${Number.parseInt(id, 16)} AND objsubid = 2 AND granted;`).trim() !== '0'
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function exitOf(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((r) => child.once('exit', (code) => r(code)));
}

/** Waits until `cond` holds (polling), or the deadline passes; returns whether it held. */
async function waitFor(cond: () => boolean, timeoutMs: number, everyMs = 20): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (cond()) return true;
    await sleep(everyMs);
  }
  return cond();
}

/** Waits until no session of application "cairn" (or any client) is left on `db`. */
async function waitForNoSessions(db: string): Promise<void> {
  await waitFor(() => psql('postgres', `SELECT count(*) FROM pg_stat_activity WHERE datname = ${lit(db)} AND pid <> pg_backend_pid();`).trim() === '0', 15_000, 100);
}

beforeAll(() => {
  ensurePostgres();
  work = mkdtempSync(join(tmpdir(), 'cairn-pg-'));
  chinook = newDb('chinook');
  loadChinook(chinook);
  every = newDb('every');
  loadEveryKind(every);
});

afterAll(() => {
  for (const db of databases) {
    try {
      dropDatabase(db);
    } catch (err) {
      console.error(`could not drop ${db}: ${String(err)}`);
    }
  }
  for (const role of roles) {
    try {
      psql('postgres', `DROP ROLE IF EXISTS ${ident(role)};`);
    } catch (err) {
      console.error(`could not drop role ${role}: ${String(err)}`);
    }
  }
  if (work) rmSync(work, { recursive: true, force: true });
});

describe.sequential('Chinook round trip', () => {
  it('backs up, shows the tables with row counts, and restores into a new database with the same schema and rows', () => {
    const repo = newRepo('chinook-repo');
    const manifest = cairnJson<BackupManifest>(['backup', 'create', '--source', pgUrl(chinook), '--repo', repo]);
    expect(manifest.source).toMatchObject({ kind: 'postgres', name: chinook });
    expect(manifest.source.location).toContain(chinook);
    expect(selectableNames(manifest)).toEqual(
      expect.arrayContaining(['public.album', 'public.artist', 'public.track', 'public.invoice', 'public.invoice_line', 'public.playlist_track']),
    );
    const rows = Object.fromEntries(manifest.collections.map((c) => [c.name, c.rowCount]));
    expect(rows).toMatchObject({ 'public.track': 3503, 'public.album': 347, 'public.artist': 275, 'public.invoice_line': 2240, 'public.playlist_track': 8715 });

    const show = ok(cairn(['backup', 'show', manifest.id, '--repo', repo]));
    expect(show.stdout).toMatch(/public\.track\s+table\s+3,503/);
    expect(show.stdout).toMatch(/public\.playlist_track\s+table\s+8,715/);
    expect(show.stdout).toMatch(/public\.artist\s+table\s+275/);

    const target = newTargetName('chinook_copy');
    ok(cairn(['restore', manifest.id, '--repo', repo, '--to', pgUrl(target)]));
    expect(schemaDump(target)).toEqual(schemaDump(chinook));
    expect(tableChecksums(target)).toEqual(tableChecksums(chinook));
    expect(stagingFor(target)).toEqual([]); // no staging database left behind
  });
});

describe.sequential('every kind of object', () => {
  it('restores schemas, partitions, views, functions, triggers, types, comments, grants, ownership, policies, rows and sequence values', () => {
    const repo = newRepo('every-repo');
    const manifest = cairnJson<BackupManifest>(['backup', 'create', '--source', pgUrl(every), '--repo', repo, '--id', 'every']);
    const names = manifest.collections.map((c) => c.name);
    expect(names).toEqual(
      expect.arrayContaining([
        'public.Customer',
        'Sales Ünit.Bestellung',
        'Sales Ünit.Position',
        'Sales Ünit.events',
        'Sales Ünit.events_2023',
        'Sales Ünit.events_2024',
        'Sales Ünit.events_2024_Nord',
        'Sales Ünit.events_default',
        'inventory.items',
        'public.empty_table',
      ]),
    );
    expect(manifest.collections.find((c) => c.name === 'public.Customer')?.rowCount).toBe(240);
    expect(manifest.collections.find((c) => c.name === 'public.empty_table')?.rowCount).toBe(0);

    const target = newTargetName('every_copy');
    ok(cairn(['restore', 'every', '--repo', repo, '--to', pgUrl(target)]));
    const src = snapshotOf(every);
    const dst = snapshotOf(target);
    expect(dst.schema).toEqual(src.schema);
    expect(dst.tables).toEqual(src.tables);
    expect(dst.sequences).toEqual(src.sequences);
    // Spot checks that say what went wrong when the whole-dump comparison fails.
    expect(dst.tables['public.audit_log']).toBe(src.tables['public.audit_log']); // triggers did not fire during the load
    expect(dst.tables['public.Umsatz pro Monat']).not.toBe('unpopulated');
    expect(psql(target, `SELECT relrowsecurity FROM pg_class WHERE oid = 'public.notes'::regclass;`).trim()).toBe('t');
    expect(psql(target, `SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'inventory.items'::regclass;`).trim()).toBe('cairn_owner');
    expect(stagingFor(target)).toEqual([]);

    // Into the existing copy, once its rows changed: every collection is staged and switched in.
    psql(target, `UPDATE "Customer" SET "Full Name" = 'changed'; DELETE FROM "Sales Ünit"."Position"; DELETE FROM public.audit_log;`);
    ok(cairn(['restore', 'every', '--repo', repo, '--to', pgUrl(target), '--on-conflict', 'overwrite']));
    const again = snapshotOf(target);
    expect(again.schema).toEqual(src.schema);
    expect(again.tables).toEqual(src.tables);
    expect(again.sequences).toEqual(src.sequences);
    expect(psql(target, `SELECT count(*) FROM pg_class WHERE relname LIKE '%\\_\\_cairn\\_%';`).trim()).toBe('0');
  });
});

describe.sequential('include, exclude, rename and conflicts', () => {
  let repo: string;
  let everyRepo: string;
  beforeAll(() => {
    repo = newRepo('select-repo');
    ok(cairn(['backup', 'create', '--source', pgUrl(chinook), '--repo', repo, '--id', 'full']));
    everyRepo = newRepo('select-every-repo');
    ok(cairn(['backup', 'create', '--source', pgUrl(every), '--repo', everyRepo, '--id', 'full']));
  });

  it('backs up only the included tables (schema-qualified or bare = public), or all but the excluded ones', () => {
    const inc = cairnJson<BackupManifest>(['backup', 'create', '--source', pgUrl(chinook), '--repo', repo, '--id', 'inc', '--include', 'public.artist,public.album']);
    expect(selectableNames(inc)).toEqual(['public.album', 'public.artist']);
    expect(inc.collections.find((c) => c.name === 'public.album')?.rowCount).toBe(347);
    // The table data were already stored by "full".
    for (const c of inc.collections.filter((c) => c.selectable !== false)) expect(c.newBytes, c.name).toBe(0);

    const bare = cairnJson<BackupManifest>(['backup', 'create', '--source', pgUrl(chinook), '--repo', repo, '--id', 'bare', '--include', 'artist,album']);
    expect(selectableNames(bare)).toEqual(['public.album', 'public.artist']);

    const exc = cairnJson<BackupManifest>(['backup', 'create', '--source', pgUrl(chinook), '--repo', repo, '--id', 'exc', '--exclude', 'public.invoice*']);
    const names = selectableNames(exc);
    expect(names).not.toContain('public.invoice');
    expect(names).not.toContain('public.invoice_line');
    expect(names).toEqual(expect.arrayContaining(['public.album', 'public.track', 'public.customer']));
  });

  it('backs up a whole schema by pattern ("Sales Ünit".*) and restores it into a new database', () => {
    // The shell turns "Sales Ünit".* into the argument Sales Ünit.*
    const m = cairnJson<BackupManifest>(['backup', 'create', '--source', pgUrl(every), '--repo', everyRepo, '--id', 'sales', '--include', 'Sales Ünit.*']);
    // Relations of the schema only; routines of other schemas come along when its tables need
    // them (a trigger's function), and only those.
    const routines = m.collections.filter((c) => c.kind === 'function' || c.kind === 'procedure').map((c) => c.name);
    const names = selectableNames(m).filter((n) => !routines.includes(n));
    expect(names.length).toBeGreaterThanOrEqual(8);
    for (const n of names) expect(n.startsWith('Sales Ünit.'), n).toBe(true);
    for (const n of routines.filter((r) => !r.startsWith('Sales Ünit.'))) {
      expect(psql(every, `SELECT count(*) FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'Sales Ünit' AND p.proname = '${n.split('.')[1]}'`).trim(), n).not.toBe('0');
    }
    expect(names).toEqual(expect.arrayContaining(['Sales Ünit.Bestellung', 'Sales Ünit.Position', 'Sales Ünit.events', 'Sales Ünit.events_2024_Süd']));

    const target = newTargetName('sales');
    ok(cairn(['restore', 'sales', '--repo', everyRepo, '--to', pgUrl(target)]));
    const restored = listTables(target);
    expect(restored).toEqual(names.filter((n) => listTables(every).includes(n)).sort());
    const src = tableChecksums(every);
    const dst = tableChecksums(target);
    for (const [table, sum] of Object.entries(dst)) expect(sum, table).toBe(src[table]);
    expect(Object.keys(dst).length).toBeGreaterThanOrEqual(6);
  });

  it('restores a subset, one table under a new name', () => {
    const target = newTargetName('subset');
    ok(cairn(['restore', 'full', '--repo', repo, '--to', pgUrl(target), '--include', 'public.artist,public.album', '--rename', 'public.album=public.album2']));
    expect(listTables(target)).toEqual(['public.album2', 'public.artist']);
    const src = tableChecksums(chinook);
    const dst = tableChecksums(target);
    expect(dst['public.album2']).toBe(src['public.album']);
    expect(dst['public.artist']).toBe(src['public.artist']);
  });

  it('refuses to restore over existing tables under --on-conflict fail (exit 4) and leaves the target unchanged', () => {
    const target = newDb('conflict');
    loadChinook(target);
    psql(target, `UPDATE artist SET name = 'mine' WHERE artist_id = 1; CREATE TABLE public.mine (x int); INSERT INTO public.mine VALUES (42);`);
    const before = snapshotOf(target);
    const r = cairn(['restore', 'full', '--repo', repo, '--to', pgUrl(target)]);
    // Several tables conflict: a list of them is fine (one line each), a stack trace is not.
    expect(r.code, r.stderr).toBe(EXIT.CONFLICT);
    expect(r.stderr).toMatch(/public\.artist.*already exists.*--on-conflict overwrite/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.stdout).toBe('');
    expect(snapshotOf(target)).toEqual(before);
  });

  it('--on-conflict overwrite replaces tables whose columns match, leaving the others alone', () => {
    const target = newDb('overwrite');
    loadChinook(target);
    psql(target, `DELETE FROM playlist_track WHERE playlist_id > 5; UPDATE invoice_line SET quantity = 9 WHERE invoice_line_id % 3 = 0; UPDATE genre SET name = 'changed';`);
    const before = snapshotOf(target);
    ok(cairn(['restore', 'full', '--repo', repo, '--to', pgUrl(target), '--include', 'public.playlist_track,public.invoice_line', '--on-conflict', 'overwrite']));
    const src = tableChecksums(chinook);
    const after = tableChecksums(target);
    expect(after['public.playlist_track']).toBe(src['public.playlist_track']);
    expect(after['public.invoice_line']).toBe(src['public.invoice_line']);
    for (const t of Object.keys(before.tables).filter((t) => t !== 'public.playlist_track' && t !== 'public.invoice_line')) {
      expect(after[t], t).toBe(before.tables[t]);
    }
    expect(schemaDump(target)).toEqual(before.schema);
  });

  it('--on-conflict overwrite refuses a table whose columns differ (exit 4) and writes nothing', () => {
    const target = newDb('overwrite_diff');
    loadChinook(target);
    psql(target, `ALTER TABLE artist ADD COLUMN extra integer; DELETE FROM playlist_track WHERE playlist_id > 5;`);
    const before = snapshotOf(target);
    const r = cairn(['restore', 'full', '--repo', repo, '--to', pgUrl(target), '--include', 'public.playlist_track,public.artist', '--on-conflict', 'overwrite']);
    expectOneLineError(r, EXIT.CONFLICT, /artist/);
    expect(snapshotOf(target)).toEqual(before);
  });

  it('restores a single partition into an existing database whose partitioned parent exists', () => {
    const target = newTargetName('partition');
    ok(cairn(['restore', 'full', '--repo', everyRepo, '--to', pgUrl(target), '--exclude', 'Sales Ünit.events_2023']));
    expect(listTables(target)).not.toContain('Sales Ünit.events_2023');
    expect(listTables(target)).toContain('Sales Ünit.events');

    ok(cairn(['restore', 'full', '--repo', everyRepo, '--to', pgUrl(target), '--include', 'Sales Ünit.events_2023']));
    const parent = psql(target, `SELECT inhparent::regclass FROM pg_inherits WHERE inhrelid = '"Sales Ünit".events_2023'::regclass;`).trim();
    expect(parent).toBe('"Sales Ünit".events');
    expect(tableChecksums(target)).toEqual(tableChecksums(every));
    expect(schemaDump(target)).toEqual(schemaDump(every));
  });

  it('rejects unknown tables in --include (exit 2), at backup and at restore', () => {
    expectOneLineError(
      cairn(['backup', 'create', '--source', pgUrl(chinook), '--repo', repo, '--include', 'public.nope']),
      EXIT.USAGE,
      /Unknown collection.*public\.nope/,
    );
    expectOneLineError(cairn(['backup', 'create', '--source', pgUrl(chinook), '--repo', repo, '--include', 'nope']), EXIT.USAGE, /public\.nope/);
    const target = newTargetName('unknown');
    expectOneLineError(cairn(['restore', 'full', '--repo', repo, '--to', pgUrl(target), '--include', 'public.nope']), EXIT.USAGE, /public\.nope/);
    expect(databaseExists(target)).toBe(false);
  });
});

describe.sequential('a larger database: deduplication, secrets, interruption', () => {
  let big: string;
  let repo: string;
  const PASSWORD = `Pw-${hex()}-Sëcret`;

  beforeAll(() => {
    big = newDb('big');
    pgbenchInit(big, 5); // 500,000 accounts, ~70 MB of rows
    repo = newRepo('big-repo');
    ok(cairn(['backup', 'create', '--source', pgUrl(big), '--repo', repo, '--id', 'b1']));
  }, 180_000);

  it('a second backup of the unchanged database stores under 1% new bytes', () => {
    const second = cairnJson<BackupManifest>(['backup', 'create', '--source', pgUrl(big), '--repo', repo, '--id', 'b2']);
    expect(second.totals.storedBytes).toBeGreaterThan(0);
    expect(second.totals.newBytes).toBeLessThan(0.01 * second.totals.storedBytes);
  }, 120_000);

  it('never shows the password from the URL in child processes\' command lines, output or manifests', async () => {
    // 127.0.0.1 is trusted here, so any password is accepted: what matters is where it ends up.
    const url = pgUrl(big, 'postgres', PASSWORD);
    const child = cairnAsync(['backup', 'create', '--source', url, '--repo', repo, '--id', 'pw', '--json']);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const seen = new Map<number, string>(); // descendant pid → command line
    const pid = child.pid ?? -1;
    while (child.exitCode === null && child.signalCode === null) {
      for (const [p, cmd] of descendants(pid)) seen.set(p, cmd);
      await sleep(5);
    }
    const code = await exitOf(child);
    expect(code, stderr).toBe(0);
    console.log(`password test: saw ${seen.size} child process(es) of cairn: ${[...seen.values()].map((c) => c.split(' ')[0]).join(', ') || 'none'}`);
    for (const cmd of seen.values()) expect(cmd).not.toContain(PASSWORD);
    expect(stdout).not.toContain(PASSWORD);
    expect(stderr).not.toContain(PASSWORD);
    expect(stdout).not.toContain(encodeURIComponent(PASSWORD));
    const m = JSON.parse(stdout) as BackupManifest;
    expect(m.source.location).not.toContain(PASSWORD);
    for (const args of [['backup', 'show', 'pw'], ['backup', 'list']]) {
      const r = cairn([...args, '--repo', repo, '--json']);
      expect(r.stdout).not.toContain(PASSWORD);
      expect(r.stdout).not.toContain(encodeURIComponent(PASSWORD));
    }
    // Nothing in the repository holds it either (manifests, indexes, locks; packs are compressed).
    for (const file of filesUnder(repo)) {
      const text = readFileSync(file).toString('latin1');
      expect(text.includes(PASSWORD) || text.includes(encodeURIComponent(PASSWORD)), file).toBe(false);
    }
    // A failing restore with a password in the URL does not print it either.
    const bad = cairn(['restore', 'pw', '--repo', repo, '--to', `postgres://postgres:${encodeURIComponent(PASSWORD)}@127.0.0.1:1/x`]);
    expect(bad.code).toBe(EXIT.SOURCE);
    expect(bad.stderr + bad.stdout).not.toContain(PASSWORD);
    expect(bad.stderr + bad.stdout).not.toContain(encodeURIComponent(PASSWORD));
  }, 120_000);

  /** Whether a COPY is running on `db` (in a session other than this check's). */
  const copyingInto = (db: string): boolean =>
    psql('postgres', `SELECT count(*) FROM pg_stat_activity WHERE datname = ${lit(db)} AND state = 'active' AND query ILIKE '%COPY%' AND pid <> pg_backend_pid();`).trim() !== '0';

  // SIGINT: the restore cleans up itself. SIGKILL as soon as the staging database exists (during
  // or right after CREATE DATABASE, before or after its comment) and while the data loads: the
  // killed process cannot clean up, and the next restore must.
  for (const [signal, moment] of [['SIGINT', 'load'], ['SIGKILL', 'create'], ['SIGKILL', 'load']] as const) {
    it(`a restore into a new database stopped with ${signal} (${moment}) leaves no database under the target name, nor anything after the next restore`, async () => {
      const target = newTargetName(`${signal.toLowerCase()}_${moment}`);
      const child = cairnAsync(['restore', 'b1', '--repo', repo, '--to', pgUrl(target)]);
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      const staging = (): string[] => stagingFor(target);
      const reached = (): boolean => (moment === 'create' ? staging().length > 0 : staging().some((d) => copyingInto(d)));
      expect(await waitFor(() => reached() || child.exitCode !== null, 60_000, 5)).toBe(true);
      expect(child.exitCode, `restore finished before the moment was seen: ${stderr}`).toBeNull();
      child.kill(signal);
      const code = await exitOf(child);
      expect(databaseExists(target)).toBe(false);
      if (signal === 'SIGINT') {
        expect(code).toBe(EXIT.CANCELLED);
        expect(stderr).toMatch(/cancel/i);
        expect(staging(), 'a cancelled restore removes its staging database').toEqual([]);
        return;
      }
      const left = staging();
      console.log(`after SIGKILL (${moment}): staging database(s) left behind ${JSON.stringify(left)}`);
      for (const d of left) databases.add(d); // dropped in afterAll should the test fail
      expect(left).toHaveLength(1);
      const name = left[0] as string;
      const comment = psql('postgres', `SELECT coalesce(shobj_description(oid, 'pg_database'), '(none)') FROM pg_database WHERE datname = ${lit(name)};`).trim();
      console.log(`  its comment: ${comment}`);
      // The killed process's session ends: its lock on the staging database's id is let go.
      const id = /__cairn_([0-9a-f]{8})$/.exec(name)?.[1] as string;
      expect(id).toBeDefined();
      expect(await waitFor(() => !stagingLockHeld(id), 15_000, 20)).toBe(true);
      const pid = child.pid as number;
      const tempDirs = (): string[] => readdirSync(tmpdir()).filter((n) => new RegExp(`^cairn-pg-restore-[0-9a-f]{10}-${pid}-`).test(n));
      expect(tempDirs().length, 'its temporary folder (unless a parallel restore removed it already)').toBeLessThanOrEqual(1);
      // The next restore into this server (into another new database) removes both, whether
      // or not the comment was set…
      const other = newTargetName('after_kill');
      ok(cairn(['restore', 'b1', '--repo', repo, '--to', pgUrl(other), '--include', 'public.pgbench_branches']));
      expect(databaseExists(other)).toBe(true);
      expect(stagingFor(target), 'the next restore drops the abandoned staging database').toEqual([]);
      expect(tempDirs(), 'the next restore removes the abandoned temporary folder').toEqual([]);
      expect(stagingFor(other)).toEqual([]);
      expect(psql('postgres', `SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = ${lit(other)};`).trim()).toBe('');
      // …and the killed restore, run again, restores its target.
      ok(cairn(['restore', 'b1', '--repo', repo, '--to', pgUrl(target), '--include', 'public.pgbench_branches', '--include', 'public.pgbench_tellers']));
      const want = tableChecksums(big);
      expect(tableChecksums(target)).toEqual({ 'public.pgbench_branches': want['public.pgbench_branches'], 'public.pgbench_tellers': want['public.pgbench_tellers'] });
      expect(stagingFor(target)).toEqual([]);
    }, 180_000);
  }

  for (const signal of ['SIGINT', 'SIGKILL'] as const) {
    it(`a restore into an existing database stopped with ${signal} leaves it unchanged`, async () => {
      const target = newDb(`${signal.toLowerCase()}_existing`);
      pgbenchInit(target, 1); // same tables and columns, other rows
      psql(target, `UPDATE pgbench_branches SET bbalance = 7; INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, 1, 5, '2024-01-01');`);
      const before = snapshotOf(target);
      const child = cairnAsync(['restore', 'b1', '--repo', repo, '--to', pgUrl(target), '--on-conflict', 'overwrite']);
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      const started = await waitFor(() => copyingInto(target) || child.exitCode !== null, 60_000);
      expect(started).toBe(true);
      expect(child.exitCode, `restore finished before its COPY was seen: ${stderr}`).toBeNull();
      child.kill(signal);
      const code = await exitOf(child);
      if (signal === 'SIGINT') expect(code).toBe(EXIT.CANCELLED);
      await waitForNoSessions(target);
      const staged = (): string[] =>
        psql(target, `SELECT relname || ' ' || coalesce(obj_description(oid, 'pg_class'), '') FROM pg_class WHERE relname LIKE '%\\_\\_cairn\\_%' AND relkind IN ('r', 'p', 'S') ORDER BY 1;`)
          .split('\n')
          .filter(Boolean);
      if (signal === 'SIGKILL') {
        // The load commits into staging tables (the existing ones are not locked meanwhile): a
        // killed process leaves them behind, named with its restore's id (and marked)…
        const left = staged();
        console.log(`after SIGKILL: staging relations left behind ${JSON.stringify(left)}`);
        expect(left.length).toBeGreaterThan(0);
        for (const r of left) expect(r).toMatch(new RegExp(`__cairn_[0-9a-f]{8}_[0-9a-z]+ cairn restore staging: host=\\S+ pid=${child.pid as number} started=\\d{4}-`));
        // …until the next restore into this database (even one refused for conflicts) drops them.
        expect(cairn(['restore', 'b1', '--repo', repo, '--to', pgUrl(target), '--include', 'public.pgbench_branches']).code).toBe(EXIT.CONFLICT);
      }
      expect(staged()).toEqual([]);
      expect(snapshotOf(target)).toEqual(before);
    }, 120_000);
  }

  it('reports the rows it restored with --jobs 2 and a table loaded in parallel segments', () => {
    const b1 = cairnJson<BackupManifest>(['backup', 'show', 'b1', '--repo', repo]);
    const accounts = b1.collections.find((c) => c.name === 'public.pgbench_accounts');
    expect(accounts?.segments?.length ?? 1, 'pgbench_accounts (500,000 rows) was read in segments').toBeGreaterThan(1);
    const target = newTargetName('jobs2');
    const summary = cairnJson<{ rows: number; collections: number }>(['restore', 'b1', '--repo', repo, '--to', pgUrl(target), '--jobs', '2']);
    const count = (db: string): number =>
      Number(psql(db, 'SELECT (SELECT count(*) FROM pgbench_accounts) + (SELECT count(*) FROM pgbench_branches) + (SELECT count(*) FROM pgbench_tellers) + (SELECT count(*) FROM pgbench_history);').trim());
    expect(count(big)).toBe(500_055);
    expect(count(target)).toBe(500_055);
    expect(summary.rows).toBe(500_055);
    expect(b1.totals.rows).toBe(500_055);
  }, 180_000);

  // Ctrl-C at several moments of a backup: connecting and taking the snapshot, dumping the
  // schema (pg_dump), copying rows, writing packs. Exit 130, one error line, no backup; or, only
  // when the Ctrl-C lands after the commit point (possible at packs), exit 0 with the complete
  // backup kept, verified, and the CLI saying the cancel came too late.
  for (const moment of ['session', 'pg_dump', 'copy', 'packs'] as const) {
    it(`Ctrl-C during a backup (${moment}) exits 130 and leaves no backup`, async () => {
      // Small packs, so that some are written long before the end.
      const fresh = join(work, `sigint-${moment}-repo`);
      ok(cairn(['repo', 'init', fresh, '--pack-size', '1']));
      const child = cairnAsync(['backup', 'create', '--source', pgUrl(big), '--repo', fresh, '--jobs', '2']);
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      const pid = child.pid as number;
      const sessions = (extra: string): boolean =>
        psql('postgres', `SELECT count(*) FROM pg_stat_activity WHERE datname = ${lit(big)} AND pid <> pg_backend_pid() ${extra};`).trim() !== '0';
      const packs = (): boolean => existsSync(join(fresh, 'data')) && readdirSync(join(fresh, 'data'), { recursive: true, withFileTypes: true }).some((e) => e.isFile());
      const reached = {
        session: () => sessions(''),
        pg_dump: () => [...descendants(pid).values()].some((cmd) => /(^|\/)pg_dump /.test(cmd)),
        copy: () => sessions(`AND state = 'active' AND query ILIKE 'COPY%TO STDOUT%'`),
        packs,
      }[moment];
      expect(await waitFor(() => reached() || child.exitCode !== null, 60_000, 5)).toBe(true);
      expect(child.exitCode, `the backup ended before the moment was seen: ${stderr}`).toBeNull();
      child.kill('SIGINT');
      const code = await exitOf(child);
      if (moment === 'packs' && code === 0) {
        // Packs become visible as the rows end: a Ctrl-C can land after the commit point, where
        // the backup is complete and kept, and the CLI says so. Never anything in between.
        expect(stderr).toMatch(/the cancel came too late: the command had already finished, and its result stands/);
        const listed = cairnJson<{ backups: BackupManifest[] }>(['backup', 'list', '--repo', fresh]).backups;
        expect(listed).toHaveLength(1);
        ok(cairn(['verify', '--repo', fresh, '--read-data']));
        await waitForNoSessions(big);
        return;
      }
      expect(code, stderr).toBe(EXIT.CANCELLED);
      expect(stderr).toMatch(/cancel/i);
      expect(stderr).not.toMatch(/internal error|AbortError|This operation was aborted/);
      expect(stderr.trim().split('\n').filter((l) => l.startsWith('cairn: error:'))).toHaveLength(1);
      expect(cairnJson<{ backups: BackupManifest[] }>(['backup', 'list', '--repo', fresh]).backups).toEqual([]);
      await waitForNoSessions(big);
    }, 120_000);
  }

  it('a backup of a database while a restore loads into it succeeds and holds only the real tables', async () => {
    const target = newDb('busy');
    pgbenchInit(target, 1);
    // One COPY session, largest table first: pgbench_accounts loads for a few seconds, then the others.
    const child = cairnAsync(['restore', 'b1', '--repo', repo, '--to', pgUrl(target), '--on-conflict', 'overwrite', '--jobs', '1']);
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const stagedTellers = (): string => psql(target, `SELECT relname FROM pg_class WHERE relname LIKE 'pgbench\\_tellers\\_\\_cairn\\_%' AND relkind = 'r';`).trim();
    expect(await waitFor(() => (copyingInto(target) && stagedTellers() !== '') || child.exitCode !== null, 60_000, 5)).toBe(true);
    expect(child.exitCode, `restore finished before its COPY was seen: ${stderr}`).toBeNull();
    // Hold the restore in its load: its COPY into the staging pgbench_tellers waits for this lock.
    const holder = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: target });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`LOCK TABLE public.${ident(stagedTellers())} IN SHARE MODE`);
      const waiting = (): boolean =>
        psql('postgres', `SELECT count(*) FROM pg_stat_activity WHERE datname = ${lit(target)} AND wait_event_type = 'Lock' AND query ILIKE 'COPY%tellers%';`).trim() !== '0';
      expect(await waitFor(() => waiting() || child.exitCode !== null, 60_000, 10)).toBe(true);
      expect(child.exitCode, `restore finished before it reached pgbench_tellers: ${stderr}`).toBeNull();
      const side = newRepo('busy-repo');
      const m = cairnJson<BackupManifest>(['backup', 'create', '--source', pgUrl(target), '--repo', side]);
      expect(selectableNames(m)).toEqual(['public.pgbench_accounts', 'public.pgbench_branches', 'public.pgbench_history', 'public.pgbench_tellers']);
      expect(m.collections.some((c) => c.name.includes('__cairn_'))).toBe(false);
      expect(m.warnings.join('\n')).toMatch(/staging relations? of a cairn restore .*pgbench_\w+__cairn_/);
      // The backup is of the database as it was: pgbench scale 1.
      expect(m.collections.find((c) => c.name === 'public.pgbench_accounts')?.rowCount).toBe(100_000);
      // What it holds restores, without any staging object.
      const copy = newTargetName('busy_copy');
      ok(cairn(['restore', m.id, '--repo', side, '--to', pgUrl(copy)]));
      expect(listTables(copy)).toEqual(['public.pgbench_accounts', 'public.pgbench_branches', 'public.pgbench_history', 'public.pgbench_tellers']);
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      await holder.end();
    }
    // Let go, the restore finishes.
    const code = await exitOf(child);
    expect(code, stderr).toBe(0);
    expect(tableChecksums(target)).toEqual(tableChecksums(big));
    expect(psql(target, `SELECT count(*) FROM pg_class WHERE relname LIKE '%\\_\\_cairn\\_%';`).trim()).toBe('0');
  }, 180_000);
});

/** Child processes (recursively) of `root`, with their command lines, from /proc. */
function descendants(root: number): Map<number, string> {
  const parents = new Map<number, number>();
  const cmdlines = new Map<number, string>();
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return new Map();
  }
  for (const e of entries) {
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(Number(e), ppid);
      cmdlines.set(Number(e), readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0').join(' ').trim());
    } catch {
      // the process ended meanwhile
    }
  }
  const out = new Map<number, string>();
  const isDescendant = (pid: number): boolean => {
    let p = parents.get(pid);
    for (let depth = 0; p !== undefined && depth < 20; depth++) {
      if (p === root) return true;
      p = parents.get(p);
    }
    return false;
  };
  for (const [pid, cmd] of cmdlines) if (pid !== root && isDescendant(pid)) out.set(pid, cmd);
  return out;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .filter((f) => statSync(f).size < 10 * 1024 * 1024);
}

describe.sequential('a restore into an existing database killed outright, with new supporting objects', () => {
  it('the next restore drops its staging tables and the schema, type and function it created', async () => {
    const src = newDb('support_src');
    psql(
      src,
      `CREATE SCHEMA extra;
       CREATE TYPE extra.mood AS ENUM ('sad', 'ok', 'happy');
       CREATE FUNCTION extra.twice(i int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT i * 2';
       CREATE TABLE extra.feelings (id int PRIMARY KEY, m extra.mood, n int DEFAULT extra.twice(21), note text);
       INSERT INTO extra.feelings SELECT g, (ARRAY['sad','ok','happy']::extra.mood[])[1 + g % 3], g, repeat(md5(g::text), 4) FROM generate_series(1, 400000) g;`,
    );
    const repo = newRepo('support-repo');
    ok(cairn(['backup', 'create', '--source', pgUrl(src), '--repo', repo, '--id', 's']));
    const target = newDb('support_target');
    psql(target, 'CREATE TABLE mine (x int); INSERT INTO mine VALUES (1);');
    const before = snapshotOf(target);
    const child = cairnAsync(['restore', 's', '--repo', repo, '--to', pgUrl(target)]);
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const copying = (): boolean =>
      psql('postgres', `SELECT count(*) FROM pg_stat_activity WHERE datname = ${lit(target)} AND state = 'active' AND query ILIKE '%COPY%' AND pid <> pg_backend_pid();`).trim() !== '0';
    expect(await waitFor(() => copying() || child.exitCode !== null, 60_000, 5)).toBe(true);
    expect(child.exitCode, `restore finished before its COPY was seen: ${stderr}`).toBeNull();
    child.kill('SIGKILL');
    await exitOf(child);
    await waitForNoSessions(target);
    // Left behind: the staging table and what the load's first transaction created for it.
    const objects = (): string =>
      psql(target, `SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = 'extra') || ' ' || (SELECT count(*) FROM pg_type WHERE typname = 'mood') || ' ' || (SELECT count(*) FROM pg_proc WHERE proname = 'twice') || ' ' || (SELECT count(*) FROM pg_class WHERE relname LIKE '%\\_\\_cairn\\_%');`).trim();
    const left = objects();
    console.log(`after SIGKILL: schema, type, function, staging relations: ${left}`);
    expect(left).toMatch(/^1 1 1 [1-9]\d*$/);
    // The next restore into this database (of another backup) cleans all of it up.
    const tiny = newDb('support_tiny');
    psql(tiny, 'CREATE TABLE tiny (x int); INSERT INTO tiny VALUES (7);');
    ok(cairn(['backup', 'create', '--source', pgUrl(tiny), '--repo', repo, '--id', 'tiny']));
    ok(cairn(['restore', 'tiny', '--repo', repo, '--to', pgUrl(target)]));
    expect(objects()).toBe('0 0 0 0');
    expect(psql(target, 'SELECT x FROM tiny;').trim()).toBe('7');
    psql(target, 'DROP TABLE tiny;');
    expect(snapshotOf(target)).toEqual(before);
  }, 180_000);
});

describe.sequential('consistent backups under load (pgbench)', () => {
  it('5 times: a backup taken while pgbench runs restores to a database whose balances add up', async () => {
    const src = newDb('load');
    const results: string[] = [];
    for (let round = 1; round <= 5; round++) {
      pgbenchInit(src, 2);
      const bench = spawn('pgbench', ['-c', '4', '-T', '20', '-n', src], { env: pgEnv(), stdio: 'ignore' });
      try {
        await sleep(1000);
        expect(bench.exitCode, 'pgbench is running').toBeNull();
        const repo = newRepo(`load-repo-${round}`);
        const backup = await runAsync(['backup', 'create', '--source', pgUrl(src), '--repo', repo, '--id', `load-${round}`]);
        expect(backup.code, backup.stderr).toBe(0);
        expect(bench.exitCode, 'pgbench was still writing when the backup finished').toBeNull();
        bench.kill('SIGKILL');
        await exitOf(bench);
        const target = newTargetName(`load_copy${round}`);
        const restore = await runAsync(['restore', `load-${round}`, '--repo', repo, '--to', pgUrl(target)]);
        expect(restore.code, restore.stderr).toBe(0);
        const [a, t, b, h, n] = psql(
          target,
          `SELECT (SELECT sum(abalance) FROM pgbench_accounts), (SELECT sum(tbalance) FROM pgbench_tellers),
                  (SELECT sum(bbalance) FROM pgbench_branches), (SELECT coalesce(sum(delta), 0) FROM pgbench_history),
                  (SELECT count(*) FROM pgbench_history);`,
        )
          .trim()
          .split('|');
        results.push(`round ${round}: ${n} transactions, balance ${a}`);
        expect({ round, tellers: t, branches: b, history: h }).toEqual({ round, tellers: a, branches: a, history: a });
        expect(Number(n), 'the backup saw transactions').toBeGreaterThan(0);
        expect(psql(target, 'SELECT count(*) FROM pgbench_accounts;').trim()).toBe('200000');
        dropDatabase(target);
      } finally {
        bench.kill('SIGKILL');
        await exitOf(bench);
      }
    }
    console.log(`under load: ${results.join('; ')}`);
  }, 240_000);
});

/** Runs the CLI without blocking the event loop (so timers and child watchers keep running). */
function runAsync(args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = cairnAsync(args);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

describe.sequential('errors get one clear line and a distinct exit code', () => {
  let repo: string;
  let privDb = '';
  let privRole = '';
  beforeAll(() => {
    repo = newRepo('errors-repo');
    ok(cairn(['backup', 'create', '--source', pgUrl(chinook), '--repo', repo, '--id', 'ok', '--include', 'public.artist']));
  });

  it('server unreachable → exit 7', () => {
    expectOneLineError(cairn(['backup', 'create', '--source', 'postgres://postgres@127.0.0.1:1/whatever', '--repo', repo]), EXIT.SOURCE, /127\.0\.0\.1:1/);
    expectOneLineError(cairn(['restore', 'ok', '--repo', repo, '--to', 'postgres://postgres@127.0.0.1:1/whatever']), EXIT.SOURCE, /127\.0\.0\.1:1/);
  });

  it('missing database → exit 3', () => {
    const name = `cairn_t_missing_${hex()}`;
    expectOneLineError(cairn(['backup', 'create', '--source', pgUrl(name), '--repo', repo]), EXIT.NOT_FOUND, new RegExp(name));
  });

  it('a role without SELECT on a table → exit 7 naming the table', () => {
    const db = newDb('priv');
    const role = `cairn_t_nosel_${hex()}`;
    roles.add(role);
    psql(
      db,
      `CREATE ROLE ${ident(role)} LOGIN;
       CREATE TABLE public.open_table (id int PRIMARY KEY, v text); INSERT INTO public.open_table VALUES (1, 'a');
       CREATE TABLE public.secret_table (id int PRIMARY KEY, v text); INSERT INTO public.secret_table VALUES (1, 'b');
       GRANT CONNECT ON DATABASE ${ident(db)} TO ${ident(role)};
       GRANT USAGE ON SCHEMA public TO ${ident(role)};
       GRANT SELECT ON public.open_table TO ${ident(role)};`,
    );
    privDb = db;
    privRole = role;
    const r = cairn(['backup', 'create', '--source', pgUrl(db, role), '--repo', repo]);
    expectOneLineError(r, EXIT.SOURCE, /secret_table/);
  });

  it('the same role can back up the rest with --exclude of the table it cannot read', () => {
    expect(privDb && privRole, 'set up by the previous test').toBeTruthy();
    const r = cairnJson<BackupManifest>(['backup', 'create', '--source', pgUrl(privDb, privRole), '--repo', repo, '--exclude', 'public.secret_table']);
    expect(selectableNames(r)).toEqual(['public.open_table']);
  });

  it('restoring over existing objects under --on-conflict fail → exit 4, source untouched', () => {
    const before = snapshotOf(chinook);
    expectOneLineError(cairn(['restore', 'ok', '--repo', repo, '--to', pgUrl(chinook)]), EXIT.CONFLICT, /artist/);
    expect(snapshotOf(chinook)).toEqual(before);
  });

  it('unknown table in --include → exit 2', () => {
    expectOneLineError(cairn(['backup', 'create', '--source', pgUrl(chinook), '--repo', repo, '--include', 'public.artists']), EXIT.USAGE, /public\.artists/);
  });

  it('a malformed PostgreSQL URL → exit 2', () => {
    // (postgres://host:port/ without a database is a whole-server source, not a malformed URL.)
    expectOneLineError(cairn(['backup', 'create', '--source', 'postgres://postgres@127.0.0.1:port/chinook', '--repo', repo]), EXIT.USAGE, /Invalid PostgreSQL URL/);
    expectOneLineError(cairn(['backup', 'create', '--source', 'postgres://postgres@127.0.0.1:5432/a/b', '--repo', repo]), EXIT.USAGE, /names no single database/);
  });

  describe.sequential('on a server that checks passwords', () => {
    // The shared server trusts every connection from 127.0.0.1 and the local socket
    // (pg_hba.conf: "local all all trust", "host all all 127.0.0.1/32 trust"), so a wrong password
    // cannot be detected there. A throw-away cluster with scram-sha-256 host auth can.
    let cluster: ScratchCluster | undefined;
    const unavailable = passwordClusterUnavailable();
    if (unavailable) console.log(`skipping the password tests: ${unavailable}`);
    const RIGHT = `Right-${hex()}-Pässwort`;
    const WRONG = `Wrong-${hex()}-Pässwort`;

    beforeAll(() => {
      if (unavailable) return;
      cluster = startPasswordCluster();
      const env = pgEnv({ PGHOST: cluster.socketDir, PGPORT: String(cluster.port) });
      psql('postgres', `CREATE ROLE cairn_pw LOGIN SUPERUSER PASSWORD ${lit(RIGHT)}; CREATE TABLE public.t (id int PRIMARY KEY); INSERT INTO public.t VALUES (1), (2);`, env);
    });
    afterAll(() => cluster?.stop());

    const url = (password: string): string =>
      `postgres://cairn_pw:${encodeURIComponent(password)}@127.0.0.1:${cluster?.port ?? 0}/postgres`;

    it.skipIf(Boolean(unavailable))('a wrong password → exit 7, and the password is never echoed', () => {
      const r = cairn(['backup', 'create', '--source', url(WRONG), '--repo', repo]);
      expectOneLineError(r, EXIT.SOURCE, /password/i);
      expect(r.stderr).toContain('cairn_pw');
      expect(r.stderr + r.stdout).not.toContain(WRONG);
      expect(r.stderr + r.stdout).not.toContain(encodeURIComponent(WRONG));
      const viaEnv = cairn(['backup', 'create', '--source', `postgres://cairn_pw@127.0.0.1:${cluster?.port ?? 0}/postgres`, '--repo', repo], {
        env: { PGPASSWORD: WRONG },
      });
      expectOneLineError(viaEnv, EXIT.SOURCE, /password/i);
      expect(viaEnv.stderr + viaEnv.stdout).not.toContain(WRONG);
      const restore = cairn(['restore', 'ok', '--repo', repo, '--to', url(WRONG).replace(/\/postgres$/, '/newdb')]);
      expectOneLineError(restore, EXIT.SOURCE, /password/i);
      expect(restore.stderr + restore.stdout).not.toContain(WRONG);
    });

    it.skipIf(Boolean(unavailable))('the right password works and is not stored or printed', () => {
      const r = cairn(['backup', 'create', '--source', url(RIGHT), '--repo', repo, '--id', 'pw-ok', '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout + r.stderr).not.toContain(RIGHT);
      expect(r.stdout + r.stderr).not.toContain(encodeURIComponent(RIGHT));
      const m = JSON.parse(r.stdout) as BackupManifest;
      expect(m.collections.find((c) => c.name === 'public.t')?.rowCount).toBe(2);
      const show = cairn(['backup', 'show', 'pw-ok', '--repo', repo, '--json']);
      expect(show.stdout).not.toContain(RIGHT);
      expect(show.stdout).not.toContain(encodeURIComponent(RIGHT));
    });
  });
});
