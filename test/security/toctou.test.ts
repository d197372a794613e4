/**
 * Time of check, time of use (issue 12, item 1, found by a trial after the path checks): the
 * server checks a SQLite path when a request arrives, but the job opens the file later, by path.
 * A symbolic link swapped after the check (of the file, or of a parent folder), or a hard link
 * made after it, led a backup to read the server's catalog (tokens, registered passwords) and a
 * restore to overwrite its `tokens` table. The fix is on the opened file: the catalog carries
 * PRAGMA application_id 0x43524E43 and SQLite sources and targets refuse it on the connection
 * they read or write through.
 *   - unit: SqliteSource / SqliteTarget (and runRestore, swapping at the last moment before the
 *     switch: onFinalizing) on every way of leading a path to a catalog made by the real catalog
 *     code; the catalog byte-identical afterwards, its tokens unchanged;
 *   - end to end, through real servers, deterministic without sleeps: the path is swapped after
 *     the server accepted the request and before the job opens the file (a scheduled backup
 *     waiting for a repository lock the test holds; a restore whose job reads its manifest from a
 *     FIFO the test feeds).
 * Every way and every request is a hostile input; the total is printed (HOSTILE INPUTS TRIED).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAnswer, waitJob as waitForJob } from '../helpers/api.js';
import { CATALOG_APPLICATION_ID, catalogFile, fileMark, openCatalogDatabase } from '../../src/catalog/database.js';
import { SqliteRegistry } from '../../src/catalog/registry.js';
import { SqliteTokenStore } from '../../src/catalog/tokens.js';
import type { JobRecord } from '../../src/catalog/types.js';
import { runRestore } from '../../src/jobs/restore.js';
import { manifestKey, Repository } from '../../src/repo/repository.js';
import { AccessPolicy } from '../../src/server/access.js';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { ServerCatalogError } from '../../src/sources/sqlite/catalog-mark.js';
import Database from '../../src/sources/sqlite/driver.js';
import { SqliteSource, SqliteTarget } from '../../src/sources/sqlite/index.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { backupInto } from '../helpers/hostile.js';

const CAIRN = fileURLToPath(new URL('../../bin/cairn.js', import.meta.url));
const tried: Record<string, number> = {};
const count = (what: string, n = 1): void => void (tried[what] = (tried[what] ?? 0) + n);

/** The token the crafted `tokens` table makes admin: it must never authenticate anywhere. */
const EVIL_ID = 'e0e0e0e0e0e0';
const EVIL_TOKEN = `cairn_${EVIL_ID}_${'A'.repeat(43)}`;
const REGISTERED_PASSWORD = 'Catalog-S3cret-x8Qm';

let work: string;
/** A database whose only table is a `tokens` table shaped as the catalog's, EVIL_TOKEN admin. */
let crafted: string;
/** A repository holding a backup of `crafted`. */
let craftedRepo: { repo: Repository; id: string; root: string };

const sha = (file: string): string => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

function innocentDb(file: string): void {
  const db = new Database(file);
  db.exec("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO items (name) VALUES ('a'), ('b');");
  db.close();
}

/** A catalog as the server makes it: tokens and a registered source with a password. */
function makeCatalog(dataDir: string): { file: string; admin: string } {
  const file = catalogFile(dataDir);
  const store = new SqliteTokenStore(file);
  const admin = store.create('admin').token;
  store.create('operator');
  store.close();
  const registry = new SqliteRegistry(file);
  registry.add('source', 'secret-pg', `postgres://postgres:${REGISTERED_PASSWORD}@127.0.0.1:5432/x`, 'postgres://postgres@127.0.0.1:5432/x');
  registry.close();
  return { file, admin };
}

/** Replaces (atomically, as `ln -sfn` does) whatever is at `link` by a symbolic link to `target`. */
function swapLink(target: string, link: string): void {
  const tmp = `${link}.swap-${process.pid}`;
  fs.rmSync(tmp, { force: true });
  fs.symlinkSync(target, tmp);
  fs.renameSync(tmp, link);
}

/** What the catalog says about tokens now (opened read-only: nothing is written). */
function tokenIds(file: string): string[] {
  const db = new Database(file, { readonly: true });
  try {
    return (db.prepare('SELECT id FROM tokens ORDER BY id').pluck().all() as string[]);
  } finally {
    db.close();
  }
}

/**
 * Ways a path can lead to the catalog after it was checked. `setup` makes the innocent state
 * (the path leads to an innocent database, or, with `missing`, to nothing: a restore target
 * to create) and returns the path and the swap that makes it lead to the catalog.
 */
interface Way {
  name: string;
  setup(scratch: string, dataDir: string, missing: boolean): { file: string; swap: () => void };
}
const WAYS: Way[] = [
  {
    name: 'symbolic link to the catalog, swapped in',
    setup(s, d, missing) {
      const file = path.join(s, 'app.db');
      if (!missing) {
        innocentDb(path.join(s, 'innocent.db'));
        fs.symlinkSync(path.join(s, 'innocent.db'), file);
      }
      return { file, swap: () => swapLink(catalogFile(d), file) };
    },
  },
  {
    name: 'relative symbolic link to the catalog',
    setup(s, d, missing) {
      const file = path.join(s, 'rel.db');
      if (!missing) innocentDb(file);
      return { file, swap: () => swapLink(path.relative(s, catalogFile(d)), file) };
    },
  },
  {
    name: 'chain of symbolic links, the last one swapped',
    setup(s, d, missing) {
      const file = path.join(s, 'chain.db');
      const mid = path.join(s, 'mid.db');
      if (!missing) innocentDb(path.join(s, 'innocent-chain.db'));
      fs.symlinkSync(path.join(s, 'innocent-chain.db'), mid); // dangling when missing
      fs.symlinkSync(mid, file);
      return { file, swap: () => swapLink(catalogFile(d), mid) };
    },
  },
  {
    name: 'dangling symbolic link pointed at the catalog',
    setup(s, d) {
      const file = path.join(s, 'dangling.db');
      fs.symlinkSync(path.join(s, 'nowhere', 'x.db'), file);
      return { file, swap: () => swapLink(catalogFile(d), file) };
    },
  },
  {
    name: 'parent folder swapped for the data folder (same file name)',
    setup(s, d, missing) {
      const innocentDir = path.join(s, 'innocent-dir');
      fs.mkdirSync(innocentDir);
      if (!missing) innocentDb(path.join(innocentDir, 'catalog.db'));
      const dir = path.join(s, 'dir');
      fs.symlinkSync(innocentDir, dir);
      return { file: path.join(dir, 'catalog.db'), swap: () => swapLink(d, dir) };
    },
  },
  {
    name: 'grandparent folder swapped (data folder one level down)',
    setup(s, d, missing) {
      const innocentTop = path.join(s, 'innocent-top');
      fs.mkdirSync(path.join(innocentTop, path.basename(d)), { recursive: true });
      if (!missing) innocentDb(path.join(innocentTop, path.basename(d), 'catalog.db'));
      const top = path.join(s, 'top');
      fs.symlinkSync(innocentTop, top);
      return { file: path.join(top, path.basename(d), 'catalog.db'), swap: () => swapLink(path.dirname(d), top) };
    },
  },
  {
    name: 'hard link to the catalog made after the check',
    setup(s, d, missing) {
      const file = path.join(s, 'hard.db');
      if (!missing) innocentDb(file);
      return {
        file,
        swap: () => {
          const tmp = `${file}.hard-${process.pid}`;
          fs.linkSync(catalogFile(d), tmp);
          fs.renameSync(tmp, file);
        },
      };
    },
  },
];

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(tmpdir(), 'cairn-toctou-'));
  // The crafted table: the catalog's own CREATE TABLE for tokens, with one admin row.
  const scratchCatalog = makeCatalog(path.join(work, 'scratch-data'));
  const db = new Database(scratchCatalog.file, { readonly: true });
  const tokensSql = db.prepare("SELECT sql FROM sqlite_schema WHERE name = 'tokens'").pluck().get() as string;
  db.close();
  crafted = path.join(work, 'crafted.db');
  const c = new Database(crafted);
  c.exec(tokensSql);
  c.prepare('INSERT INTO tokens (id, name, role, hash, created_at) VALUES (?, ?, ?, ?, ?)').run(
    EVIL_ID,
    'evil',
    'admin',
    createHash('sha256').update(EVIL_TOKEN).digest(),
    new Date().toISOString(),
  );
  c.close();
  craftedRepo = await backupInto(path.join(work, 'crafted-repo'), `sqlite://${crafted}`);
}, 60_000);

afterAll(() => {
  fs.rmSync(work, { recursive: true, force: true });
  const total = Object.values(tried).reduce((a, b) => a + b, 0);
  console.log(`HOSTILE INPUTS TRIED (test/security/toctou.test.ts): ${total} — ${JSON.stringify(tried)}`);
});

describe('the catalog marks itself', () => {
  it('a new catalog, and one made before the mark, carry application_id 0x43524E43 in the main file', () => {
    const dir = path.join(work, 'mark-data');
    const { file } = makeCatalog(dir);
    expect(CATALOG_APPLICATION_ID).toBe(0x43524e43);
    expect(fileMark(file)).toBe(CATALOG_APPLICATION_ID);
    // A catalog from before the mark (application_id 0, in WAL mode, the -wal holding the rest):
    // the next open marks it, in the main file itself (a hard link reads no -wal).
    const old = path.join(work, 'old-data', 'catalog.db');
    fs.mkdirSync(path.dirname(old), { recursive: true });
    const raw = new Database(old);
    raw.pragma('journal_mode = WAL');
    raw.exec('CREATE TABLE tokens (id TEXT PRIMARY KEY)');
    expect(fileMark(old)).toBe(0);
    const holder = new Database(old); // another connection keeps the -wal alive
    holder.prepare('SELECT 1').get();
    raw.close();
    const reopened = openCatalogDatabase(old);
    expect(fileMark(old)).toBe(CATALOG_APPLICATION_ID);
    expect(Number(reopened.pragma('application_id', { simple: true }))).toBe(CATALOG_APPLICATION_ID);
    reopened.close();
    holder.close();
  });
});

describe('SqliteSource refuses the catalog, whatever path leads there', () => {
  for (const way of WAYS) {
    it(way.name, async () => {
      count('source: way');
      const dataDir = path.join(work, `src-${WAYS.indexOf(way)}`, 'data');
      const scratch = path.join(work, `src-${WAYS.indexOf(way)}`, 'scratch');
      fs.mkdirSync(scratch, { recursive: true });
      const { file: catalog, admin } = makeCatalog(dataDir);
      const before = sha(catalog);
      const { file, swap } = way.setup(scratch, dataDir, false);
      // The server's path check passes on the innocent state: it cannot see the future.
      const registry = new SqliteRegistry(catalog);
      const policy = new AccessPolicy({ dataDir, registry });
      const innocentSha = sha(catalog);
      expect(() => policy.checkSqlitePath(file)).not.toThrow();
      registry.close();
      // Before the swap, the file reads (it is innocent), or is not there (a dangling link).
      if (way.name.startsWith('dangling')) {
        await expect(new SqliteSource(file).openSnapshot()).rejects.toThrow(/not found/);
      } else {
        const snap = await new SqliteSource(file).openSnapshot();
        expect((await snap.listCollections()).map((c) => c.name)).toEqual(['items']);
        await snap.close();
      }
      swap();
      count('source: open after swap');
      const err = await new SqliteSource(file).openSnapshot().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ServerCatalogError);
      expect((err as ServerCatalogError).code).toBe('USAGE');
      expect((err as Error).message).toMatch(/cairn's server catalog .*tokens and registered passwords: it cannot be backed up through cairn.*stop the server and copy its data folder/);
      expect((err as Error).message).not.toContain(REGISTERED_PASSWORD);
      // And the other way round: a path check made now refuses too (it resolves the links).
      const again = new SqliteRegistry(catalog);
      if (!way.name.startsWith('hard link')) expect(() => new AccessPolicy({ dataDir, registry: again }).checkSqlitePath(file)).toThrow(/data folder/);
      again.close();
      expect(sha(catalog)).toBe(innocentSha);
      expect(before).toBe(innocentSha);
      const store = new SqliteTokenStore(catalog);
      expect(store.authenticate(admin)?.role).toBe('admin');
      store.close();
    });
  }
});

describe('the catalog held open by this process: a link to any of its files is refused before it is opened', () => {
  it('catalog.db, its -wal and -shm, by symbolic and hard link: refused without an open; the open catalog keeps its locks, its -wal and every write', async () => {
    const dataDir = path.join(work, 'held', 'data');
    const scratch = path.join(work, 'held', 'scratch');
    fs.mkdirSync(scratch, { recursive: true });
    const { file: catalog } = makeCatalog(dataDir);
    // Held open as a server holds it, in WAL mode, with a write only its -wal has yet.
    const held = openCatalogDatabase(catalog);
    held.exec("CREATE TABLE IF NOT EXISTS probe (v TEXT); INSERT INTO probe VALUES ('before')");
    expect(fs.existsSync(`${catalog}-wal`)).toBe(true);
    let n = 0;
    for (const suffix of ['', '-wal', '-shm']) {
      for (const kind of ['symlink', 'hardlink'] as const) {
        const link = path.join(scratch, `link-${n++}.db`);
        if (kind === 'symlink') fs.symlinkSync(`${catalog}${suffix}`, link);
        else fs.linkSync(`${catalog}${suffix}`, link);
        count('held catalog: file × link kind');
        const err = await new SqliteSource(link).openSnapshot().catch((e: unknown) => e);
        expect(err, `${suffix || 'main'} by ${kind}`).toBeInstanceOf(ServerCatalogError);
        const target = new SqliteTarget(link);
        await expect(target.check([], 'overwrite')).rejects.toBeInstanceOf(ServerCatalogError);
        // No -wal or -shm of the link's own name: SQLite never opened it.
        expect(fs.existsSync(`${link}-wal`)).toBe(false);
      }
    }
    // The held connection still works, its -wal is still there, and what it wrote survives a reopen.
    held.exec("INSERT INTO probe VALUES ('after')");
    expect(fs.existsSync(`${catalog}-wal`)).toBe(true);
    held.close();
    const reopened = new Database(catalog, { readonly: true });
    expect(reopened.prepare('SELECT v FROM probe ORDER BY rowid').pluck().all()).toEqual(['before', 'after']);
    reopened.close();
  });
});

describe('SqliteTarget refuses the catalog, whatever path leads there (onConflict overwrite, a crafted tokens table)', () => {
  const variants: { name: string; missing: boolean; when: 'before' | 'finalizing' }[] = [
    { name: 'target missing at the check, swapped at the switch', missing: true, when: 'finalizing' },
    { name: 'innocent target at the check, swapped at the switch', missing: false, when: 'finalizing' },
    { name: 'swapped before the restore starts', missing: false, when: 'before' },
  ];
  for (const way of WAYS) {
    for (const v of variants) {
      if (way.name.startsWith('dangling') && !v.missing) continue;
      it(`${way.name}; ${v.name}`, async () => {
        count('target: way × moment');
        const base = path.join(work, `tgt-${WAYS.indexOf(way)}-${variants.indexOf(v)}`);
        const dataDir = path.join(base, 'data');
        const scratch = path.join(base, 'scratch');
        fs.mkdirSync(scratch, { recursive: true });
        const { file: catalog, admin } = makeCatalog(dataDir);
        const catalogBefore = sha(catalog);
        const tokensBefore = tokenIds(catalog);
        const dataNames = fs.readdirSync(dataDir).sort();
        const { file, swap } = way.setup(scratch, dataDir, v.missing);
        const registry = new SqliteRegistry(catalog);
        expect(() => new AccessPolicy({ dataDir, registry }).checkSqlitePath(file)).not.toThrow();
        registry.close();
        if (v.when === 'before') swap();
        let swapped = v.when === 'before';
        const err = await runRestore({
          repo: craftedRepo.repo,
          backupId: craftedRepo.id,
          target: new SqliteTarget(file),
          onConflict: 'overwrite',
          onFinalizing: () => {
            if (!swapped) swap();
            swapped = true;
          },
        }).catch((e: unknown) => e);
        expect(swapped).toBe(true);
        expect(err, String(err)).toBeInstanceOf(ServerCatalogError);
        expect((err as Error).message).toMatch(/cairn's server catalog .*cairn never restores into it; nothing was changed/);
        // The catalog byte-identical, its tokens the same; the crafted token unknown.
        expect(sha(catalog)).toBe(catalogBefore);
        expect(tokenIds(catalog)).toEqual(tokensBefore);
        const store = new SqliteTokenStore(catalog);
        expect(store.authenticate(admin)?.role).toBe('admin');
        expect(store.authenticate(EVIL_TOKEN)).toBeUndefined();
        store.close();
        // No staging file (nor anything else) left in the data folder or next to the path.
        expect(fs.readdirSync(dataDir).filter((n) => !/^catalog\.db(-wal|-shm)?$/.test(n))).toEqual(dataNames.filter((n) => !/^catalog\.db(-wal|-shm)?$/.test(n)));
        expect(fs.readdirSync(path.dirname(path.resolve(file))).filter((n) => n.includes('.cairn-restore-'))).toEqual([]);
      });
    }
  }

  it('the restore still works on an innocent target (the check is no blanket refusal)', async () => {
    const file = path.join(work, 'fine-target.db');
    const r = await runRestore({ repo: craftedRepo.repo, backupId: craftedRepo.id, target: new SqliteTarget(file), onConflict: 'overwrite' });
    expect(r.collections).toBe(1);
    const db = new Database(file, { readonly: true });
    expect(db.prepare('SELECT id FROM tokens').pluck().all()).toEqual([EVIL_ID]);
    db.close();
    // And into the existing file again (the existing-file path, overwrite).
    const again = await runRestore({ repo: craftedRepo.repo, backupId: craftedRepo.id, target: new SqliteTarget(file), onConflict: 'overwrite' });
    expect(again.collections).toBe(1);
  });
});

describe('the CLI refuses the catalog too (every mode)', () => {
  it('cairn backup create and cairn restore --on-conflict overwrite, by a symbolic link: exit 2, the catalog unchanged', () => {
    const dataDir = path.join(work, 'cli-data');
    const { file: catalog, admin } = makeCatalog(dataDir);
    const before = sha(catalog);
    const link = path.join(work, 'cli-link.db');
    fs.symlinkSync(catalog, link);
    const b = spawnSync(process.execPath, [CAIRN, 'backup', 'create', '--source', `sqlite://${link}`, '--repo', craftedRepo.root], { encoding: 'utf8' });
    count('CLI backup of a link to the catalog');
    expect(b.status, b.stderr).toBe(2);
    expect(b.stderr).toMatch(/server catalog .*cannot be backed up through cairn/);
    const r = spawnSync(process.execPath, [CAIRN, 'restore', craftedRepo.id, '--repo', craftedRepo.root, '--to', `sqlite://${link}`, '--on-conflict', 'overwrite'], { encoding: 'utf8' });
    count('CLI restore over a link to the catalog');
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/server catalog .*never restores into it/);
    expect(sha(catalog)).toBe(before);
    const store = new SqliteTokenStore(catalog);
    expect(store.authenticate(admin)?.role).toBe('admin');
    expect(store.authenticate(EVIL_TOKEN)).toBeUndefined();
    store.close();
  });
});

// ---------------------------------------------------------------------------------------------
// End to end, through real servers.

interface Srv {
  server: RunningServer;
  dataDir: string;
  tokens: { admin: string; operator: string; viewer: string };
}

async function serve(dataDir: string): Promise<Srv> {
  const store = new SqliteTokenStore(catalogFile(dataDir));
  const tokens = { admin: store.create('admin').token, operator: store.create('operator').token, viewer: store.create('viewer').token };
  store.close();
  const server = await startServer({ dataDir, port: 0, scheduleTickMs: 3600_000, errorLog: () => undefined, env: {} });
  return { server, dataDir, tokens };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- answers are checked field by field
async function call(srv: Srv, token: string, method: string, route: string, body?: unknown): Promise<{ status: number; json: any; text: string }> {
  const res = await fetch(`${srv.server.url}${route}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return readAnswer(res);
}

function waitJob(srv: Srv, id: string): Promise<JobRecord> {
  return waitForJob(srv.server.url, srv.tokens.viewer, id);
}

/**
 * Writes `bytes` into the FIFO once its reader opens it; when `unless` settles first (the reader
 * will never come: the request or job failed before), the test reads the FIFO itself so that
 * the writer does not wait forever (the assertions on `unless` then say what happened).
 */
async function feed(fifo: string, bytes: Buffer, unless: Promise<unknown>): Promise<void> {
  const fed = fs.promises.writeFile(fifo, bytes);
  const first = await Promise.race([fed.then(() => 'fed'), unless.then(() => 'ended', () => 'ended')]);
  if (first === 'fed') return;
  const fd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  try {
    await fed.catch(() => undefined);
  } finally {
    fs.closeSync(fd);
  }
}

describe('end to end: the path is swapped after the server accepted it, before the job opens it', () => {
  it('scheduled backups (run now) while the test holds the repository lock: refused, nothing written', async () => {
    const base = path.join(work, 'e2e-backup');
    const dataDir = path.join(base, 'data');
    const srv = await serve(dataDir);
    try {
      const repoRoot = path.join(base, 'repo');
      const repo = await Repository.init(new FileSystemStorage(repoRoot));
      expect((await call(srv, srv.tokens.admin, 'POST', '/v1/repositories', { name: 'main', url: repoRoot })).status).toBe(201);
      expect((await call(srv, srv.tokens.admin, 'POST', '/v1/sources', { name: 'secret-pg', url: `postgres://postgres:${REGISTERED_PASSWORD}@127.0.0.1:5432/x` })).status).toBe(201);
      for (const way of WAYS.filter((w) => !w.name.startsWith('dangling'))) {
        const i = WAYS.indexOf(way);
        const scratch = path.join(base, `scratch-${i}`);
        fs.mkdirSync(scratch, { recursive: true });
        const { file, swap } = way.setup(scratch, dataDir, false);
        const name = `victim-${i}`;
        const reg = await call(srv, srv.tokens.admin, 'POST', '/v1/sources', { name, url: `sqlite://${file}` });
        expect(reg.status, reg.text).toBe(201);
        expect((await call(srv, srv.tokens.operator, 'POST', '/v1/schedules', { name, source: name, repository: 'main', cron: '@daily' })).status).toBe(201);
        // The scheduled backup waits for a prune's lock: the test holds one.
        const lock = await repo.lock(true, 'test: hold the job between the check and the open');
        try {
          const run = await call(srv, srv.tokens.operator, 'POST', `/v1/schedules/${name}/run`);
          count('e2e backup: scheduled run, swapped after the check');
          expect(run.status, run.text).toBe(202); // the path was checked: innocent then
          swap();
        } finally {
          await lock.release();
        }
        const jobs = (await call(srv, srv.tokens.viewer, 'GET', '/v1/jobs?kind=backup')).json.jobs as JobRecord[];
        const mine = jobs.find((j) => j.params.schedule === name);
        expect(mine).toBeDefined();
        const job = await waitJob(srv, (mine as JobRecord).id);
        expect(job.state, `${way.name}: ${JSON.stringify(job.error)}`).toBe('FAILED');
        expect(job.error?.code, job.error?.message).toBe('USAGE');
        expect(job.error?.message).toMatch(/server catalog .*cannot be backed up through cairn/);
        expect(JSON.stringify(job)).not.toContain(REGISTERED_PASSWORD);
        // Nothing reached the repository; the server's tokens still work.
        expect(await repo.listManifests()).toEqual([]);
        expect((await call(srv, srv.tokens.admin, 'GET', '/v1/sources')).status).toBe(200);
        expect(fileMark(catalogFile(dataDir))).toBe(CATALOG_APPLICATION_ID);
      }
    } finally {
      await srv.server.close();
    }
  }, 120_000);

  it('restores (onConflict overwrite, a crafted tokens table) whose job reads its manifest from a FIFO: refused, the catalog untouched', async () => {
    const base = path.join(work, 'e2e-restore');
    const dataDir = path.join(base, 'data');
    const srv = await serve(dataDir);
    // The crafted backup, in a repository of its own registered on the server.
    const { root, id } = await backupInto(path.join(base, 'crafted'), `sqlite://${crafted}`);
    const manifestFile = path.join(root, ...manifestKey(id).split('/'));
    const manifestBytes = fs.readFileSync(manifestFile);
    try {
      expect((await call(srv, srv.tokens.admin, 'POST', '/v1/repositories', { name: 'crafted', url: root })).status).toBe(201);
      const catalog = catalogFile(dataDir);
      for (const way of WAYS) {
        for (const missing of way.name.startsWith('dangling') ? [true] : [true, false]) {
          const i = WAYS.indexOf(way);
          const scratch = path.join(base, `scratch-${i}-${missing ? 'missing' : 'innocent'}`);
          fs.mkdirSync(scratch, { recursive: true });
          const { file, swap } = way.setup(scratch, dataDir, missing);
          const name = `target-${i}-${missing ? 'm' : 'i'}`;
          const reg = await call(srv, srv.tokens.admin, 'POST', '/v1/sources', { name, url: `sqlite://${file}` });
          expect(reg.status, reg.text).toBe(201);
          const tokensBefore = tokenIds(catalog);
          // The manifest becomes a FIFO: the request reads it once, the job once more, each
          // when the test writes it.
          fs.rmSync(manifestFile);
          expect(spawnSync('mkfifo', ['-m', '600', manifestFile]).status).toBe(0);
          try {
            const posted = call(srv, srv.tokens.operator, 'POST', '/v1/restores', { backup: id, repository: 'crafted', target: name, onConflict: 'overwrite' });
            await feed(manifestFile, manifestBytes, posted); // for the request
            const r = await posted;
            count('e2e restore: swapped after the check');
            expect(r.status, r.text).toBe(202); // the path was checked: innocent then
            swap();
            const ended = waitJob(srv, r.json.job.id);
            await feed(manifestFile, manifestBytes, ended); // for the job
            const job = await ended;
            expect(job.state, `${way.name}: ${JSON.stringify(job.error)}`).toBe('FAILED');
            expect(job.error?.code, job.error?.message).toBe('USAGE');
            expect(job.error?.message).toMatch(/server catalog .*never restores into it/);
          } finally {
            fs.rmSync(manifestFile, { force: true });
            fs.writeFileSync(manifestFile, manifestBytes, { mode: 0o600 });
          }
          // The catalog's tokens are the server's; the crafted token is nobody.
          expect(tokenIds(catalog)).toEqual(tokensBefore);
          expect((await call(srv, EVIL_TOKEN, 'GET', '/v1/sources')).status).toBe(401);
          expect((await call(srv, srv.tokens.admin, 'GET', '/v1/sources')).status).toBe(200);
          expect(fs.readdirSync(dataDir).filter((n) => n.includes('.cairn-restore-'))).toEqual([]);
        }
      }
    } finally {
      await srv.server.close();
    }
  }, 120_000);
});
