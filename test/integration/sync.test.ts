/**
 * cairn sync / copy --all: a second repository brought up to date with every backup it lacks.
 * A seeded random sequence (backup in A, delete in A, delete + prune in B, a clashing backup in
 * B, sync) checks after every step that every backup listed in B verifies and restores to
 * exactly what it held; scenarios over the CLI and a server check the report, idempotence,
 * --source, conflicts, a damaged source backup, and a prune of B while a sync runs.
 * More seeds: CAIRN_SYNC_SEEDS=1..20 npx vitest run test/integration/sync.test.ts
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LockedError } from '../../src/core/errors.js';
import { runBackup } from '../../src/jobs/backup.js';
import { runSync, type SyncResult } from '../../src/jobs/copy.js';
import { runRestore } from '../../src/jobs/restore.js';
import { prune } from '../../src/repo/prune.js';
import { Repository } from '../../src/repo/repository.js';
import { verifyBackups } from '../../src/repo/verify.js';
import { SqliteTokenStore } from '../../src/catalog/tokens.js';
import { CairnClient } from '../../src/sdk/index.js';
import { catalogFile, startServer } from '../../src/server/index.js';
import { openSource, openTarget } from '../../src/sources/index.js';
import Database from '../../src/sources/sqlite/driver.js';
import { seededRandom } from '../../src/storage/middleware/faults.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import type { PutOptions, Storage } from '../../src/storage/types.js';
import { cairn, cairnRun } from '../helpers/cli.js';
import { dumpSqlite } from '../helpers/sqlite-compare.js';

type Dump = ReturnType<typeof dumpSqlite>;

/** The CLI in a child process without blocking this one (a server in this process keeps answering). */
const cairnAsyncRun = cairnRun;
let work: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'cairn-sync-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const newRepo = (name: string): Promise<Repository> => Repository.init(new FileSystemStorage(join(work, name)), { packSize: 1024 * 1024 });

/** A small SQLite database: one table of rows, changed by `mutate`. */
function makeDb(path: string): void {
  const db = new Database(path);
  db.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT, payload BLOB)');
  db.close();
}
function mutate(path: string, random: () => number, step: number): void {
  const db = new Database(path);
  const insert = db.prepare('INSERT INTO items (label, payload) VALUES (?, ?)');
  for (let i = 0; i < 1 + Math.floor(random() * 20); i++) insert.run(`row ${step}-${i}`, Buffer.alloc(Math.floor(random() * 3000), step % 251));
  if (random() < 0.5) db.prepare('DELETE FROM items WHERE id % ? = 0').run(2 + Math.floor(random() * 5));
  if (random() < 0.5) db.prepare("UPDATE items SET label = label || '!' WHERE id % 3 = ?").run(step % 3);
  db.close();
}

/** Every backup listed in `repo` verifies (reading data) and restores to exactly `expected`. */
async function checkAll(repo: Repository, expected: Map<string, Dump>, tag: string): Promise<void> {
  const all = await repo.readAllManifests();
  expect(all.damaged, tag).toEqual([]);
  expect(all.manifests.map((m) => m.id).sort(), tag).toEqual([...expected.keys()].sort());
  const report = await verifyBackups(repo, all.manifests, { readData: true });
  expect(report.problems, tag).toEqual([]);
  for (const m of all.manifests) {
    const file = join(work, `restore-${tag.replace(/\W+/g, '_')}-${m.id}.db`);
    await runRestore({ repo, backupId: m.id, target: openTarget(`sqlite://${file}`) });
    expect(dumpSqlite(file), `${tag}: ${m.id}`).toEqual(expected.get(m.id));
    rmSync(file);
  }
}

/** One backup of the repository at `dir` restores to exactly `expected`. */
async function checkOne(dir: string, id: string, expected: Dump): Promise<void> {
  const repo = await Repository.open(new FileSystemStorage(dir));
  const file = join(work, `one-${id}.db`);
  await runRestore({ repo, backupId: id, target: openTarget(`sqlite://${file}`) });
  expect(dumpSqlite(file)).toEqual(expected);
  rmSync(file);
}

function seeds(): number[] {
  const spec = process.env.CAIRN_SYNC_SEEDS;
  // Seed 3 copies, skips and meets conflicts within its 14 steps.
  if (!spec) return [3];
  const m = /^(\d+)\.\.(\d+)$/.exec(spec);
  return m ? Array.from({ length: Number(m[2]) - Number(m[1]) + 1 }, (_, i) => Number(m[1]) + i) : spec.split(',').map(Number);
}

describe('sync: seeded random sequences', () => {
  for (const seed of seeds()) {
    it(`seed ${seed}: after every step each backup in B verifies and restores to what it held`, async () => {
      const random = seededRandom(seed);
      const pick = <T>(list: T[]): T | undefined => (list.length ? list[Math.floor(random() * list.length)] : undefined);
      const [a, b] = [await newRepo(`a-${seed}`), await newRepo(`b-${seed}`)];
      const db = join(work, `src-${seed}.db`);
      const other = join(work, `other-${seed}.db`);
      makeDb(db);
      makeDb(other);
      const inA = new Map<string, Dump>();
      const inB = new Map<string, Dump>();
      let n = 0;
      const steps = Number(process.env.CAIRN_SYNC_STEPS ?? 14);
      for (let step = 0; step < steps; step++) {
        const r = random();
        let op: string;
        if (r < 0.35 || inA.size === 0) {
          op = 'backup-a';
          mutate(db, random, step);
          const id = `b${n++}`;
          await runBackup({ repo: a, source: openSource(`sqlite://${db}`), id, compressionWorkers: 0, jobs: 1 });
          inA.set(id, dumpSqlite(db));
        } else if (r < 0.45) {
          // A backup in B under an id A will use next, with other content: a conflict to come.
          op = 'clash-b';
          const id = `b${n}`;
          if (inB.has(id)) continue;
          mutate(other, random, step);
          await runBackup({ repo: b, source: openSource(`sqlite://${other}`), id, compressionWorkers: 0, jobs: 1 });
          inB.set(id, dumpSqlite(other));
        } else if (r < 0.6) {
          op = 'delete-a';
          const id = pick([...inA.keys()]) as string;
          await a.deleteBackup(id);
          inA.delete(id);
        } else if (r < 0.72) {
          op = 'prune-b';
          const id = pick([...inB.keys()]);
          if (id !== undefined && random() < 0.7) {
            await b.deleteBackup(id);
            inB.delete(id);
          }
          await prune(b, { unindexedGraceMs: 0 });
        } else {
          op = 'sync';
          const result = await runSync({ from: a, to: b });
          const expectCopied = [...inA.keys()].filter((id) => !inB.has(id));
          expect(result.copied.map((c) => c.backupId).sort()).toEqual(expectCopied.sort());
          const both = [...inA.keys()].filter((id) => inB.has(id));
          // A backup B already holds is skipped when it is the same one, a conflict otherwise.
          const same = both.filter((id) => inB.get(id) === inA.get(id));
          expect(result.skipped.sort()).toEqual(same.sort());
          expect(result.conflicts.map((c) => c.backupId).sort()).toEqual(both.filter((id) => !same.includes(id)).sort());
          expect(result.failed).toEqual([]);
          for (const id of expectCopied) inB.set(id, inA.get(id) as Dump);
          // Idempotent: nothing more to send.
          const again = await runSync({ from: a, to: b });
          expect(again.copied).toEqual([]);
          expect(again.bytesCopied).toBe(0);
        }
        await checkAll(b, inB, `seed ${seed} step ${step} (${op})`);
      }
    }, 120_000);
  }
});

describe('sync beside a prune', () => {
  it('holds a shared lock on B: a prune of B is refused while it runs, and B is whole afterwards', async () => {
    const [a, b] = [await newRepo('lock-a'), await newRepo('lock-b')];
    const db = join(work, 'lock.db');
    makeDb(db);
    mutate(db, seededRandom(3), 1);
    await runBackup({ repo: a, source: openSource(`sqlite://${db}`), id: 'one', compressionWorkers: 0 });
    const pruned: unknown[] = [];
    let tried: Promise<void> | undefined;
    const result = await runSync({
      from: a,
      to: b,
      onProgress: (p) => {
        if (p.backup && !tried) tried = prune(b, { unindexedGraceMs: 0 }).then(() => void pruned.push('ran'), (err: unknown) => void pruned.push(err));
      },
    });
    await tried;
    expect(pruned).toHaveLength(1);
    expect(pruned[0]).toBeInstanceOf(LockedError);
    expect(result.copied.map((c) => c.backupId)).toEqual(['one']);
    await checkAll(b, new Map([['one', dumpSqlite(db)]]), 'beside prune');
  });
});

/**
 * A Storage whose writes (puts and deletes, locks aside) stop after `allowed`: a sync killed at
 * that point (each object write is atomic on the file system).
 */
function dyingAfter(storage: Storage, allowed: number, done: string[]): Storage {
  const act = async (what: string, key: string, op: () => Promise<void>): Promise<void> => {
    if (key.startsWith('locks/')) return op();
    if (done.length >= allowed) throw new Error(`killed before ${what} ${key}`);
    await op();
    done.push(`${what} ${key}`);
  };
  return Object.assign(Object.create(storage) as Storage, {
    put: (key: string, data: Uint8Array, options?: PutOptions) => act('put', key, () => storage.put(key, data, options)),
    delete: (key: string) => act('delete', key, () => storage.delete(key)),
  });
}

describe('sync stopped at every write', () => {
  it('leaves B with only complete backups, and the next sync completes it', async () => {
    const a = await newRepo('kill-a');
    const db = join(work, 'kill.db');
    makeDb(db);
    const random = seededRandom(21);
    const expected = new Map<string, Dump>();
    for (const id of ['k1', 'k2']) {
      mutate(db, random, id.length);
      await runBackup({ repo: a, source: openSource(`sqlite://${db}`), id, compressionWorkers: 0 });
      expected.set(id, dumpSqlite(db));
    }
    let allowed = 0;
    for (; ; allowed++) {
      const storage = new FileSystemStorage(join(work, `kill-b-${allowed}`));
      await Repository.init(storage);
      const done: string[] = [];
      const killed = await runSync({ from: a, to: await Repository.open(dyingAfter(storage, allowed, done)) }).then(
        () => false,
        (err: unknown) => {
          expect(String(err)).toContain('killed before');
          return true;
        },
      );
      const b = await Repository.open(storage);
      // What is visible is complete: the manifest is written last.
      const visible = new Map([...expected].filter(([id]) => existsSync(join(work, `kill-b-${allowed}`, 'backups', id))));
      await checkAll(b, visible, `killed after ${allowed}`);
      const next = await runSync({ from: a, to: b });
      expect(next.copied.length + next.skipped.length).toBe(2);
      await checkAll(b, expected, `after ${allowed}`);
      if (!killed) break;
    }
    // Packs, index and manifest of each backup: every point between them was a kill point.
    expect(allowed).toBeGreaterThanOrEqual(6);
  });
});

describe('cairn sync and cairn copy --all (CLI and server)', () => {
  let env: NodeJS.ProcessEnv;
  let dbs: { shop: string; crm: string };
  const repoA = (): string => join(work, 'cli-a');
  const repoB = (): string => join(work, 'cli-b');

  beforeAll(async () => {
    env = { CAIRN_CONFIG: join(work, 'cfg', 'cairn.json'), CAIRN_DATA_DIR: join(work, 'cli-data'), CAIRN_REPO: undefined, CAIRN_SERVER: undefined };
    dbs = { shop: join(work, 'shop.db'), crm: join(work, 'crm.db') };
    const a = await newRepo('cli-a');
    await newRepo('cli-b');
    const random = seededRandom(11);
    for (const [name, path] of Object.entries(dbs)) {
      makeDb(path);
      for (let i = 1; i <= 2; i++) {
        mutate(path, random, i);
        await runBackup({ repo: a, source: openSource(`sqlite://${path}`), id: `${name}-${i}`, compressionWorkers: 0 });
      }
    }
  });

  const json = (args: string[]): { code: number; result: SyncResult; stderr: string } => {
    const r = cairn([...args, '--json'], { env });
    return { code: r.code, result: JSON.parse(r.stdout || 'null') as SyncResult, stderr: r.stderr };
  };

  it('copies one source with --source, then the rest with copy --all; a second run sends nothing', async () => {
    const first = json(['sync', '--from', repoA(), '--to', repoB(), '--source', 'shop']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.result.copied.map((c) => c.backupId)).toEqual(['shop-1', 'shop-2']);
    expect(first.result.bytesCopied).toBeGreaterThan(0);

    const rest = json(['copy', '--all', '--from', repoA(), '--to', repoB()]);
    expect(rest.code, rest.stderr).toBe(0);
    expect(rest.result.copied.map((c) => c.backupId)).toEqual(['crm-1', 'crm-2']);
    expect(rest.result.skipped.sort()).toEqual(['shop-1', 'shop-2']);

    const text = cairn(['sync', '--from', repoA(), '--to', repoB()], { env });
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/0 backups copied \(0 chunks, 0 B sent\), 4 already there \(identical\), 0 conflicts/);
    const b = await Repository.open(new FileSystemStorage(repoB()));
    expect((await verifyBackups(b, await b.listManifests(), { readData: true })).problems).toEqual([]);
  });

  it('reports a backup B holds under the same id with other content as a conflict and leaves it alone (exit 4)', async () => {
    const b = await Repository.open(new FileSystemStorage(repoB()));
    const a = await Repository.open(new FileSystemStorage(repoA()));
    await runBackup({ repo: a, source: openSource(`sqlite://${dbs.shop}`), id: 'clash', compressionWorkers: 0 });
    await runBackup({ repo: b, source: openSource(`sqlite://${dbs.crm}`), id: 'clash', compressionWorkers: 0 });
    const before = readFileSync(join(repoB(), 'backups', 'clash'));
    const r = cairn(['sync', '--from', repoA(), '--to', repoB()], { env });
    expect(r.code).toBe(4);
    expect(r.stdout).toMatch(/conflict {2}clash: a backup with this id but other content exists/);
    expect(r.stderr).toMatch(/left out 1: clash/);
    expect(readFileSync(join(repoB(), 'backups', 'clash'))).toEqual(before);
    await b.deleteBackup('clash');
  });

  it('copies the others when one backup of A is damaged, naming it (exit 6)', async () => {
    const a = await Repository.open(new FileSystemStorage(repoA()));
    const db = join(work, 'lonely.db');
    makeDb(db);
    mutate(db, seededRandom(99), 5);
    const packFiles = (): string[] => readdirSync(join(repoA(), 'data'), { recursive: true }).map(String).filter((f) => /[0-9a-f]{64}$/.test(f));
    const packsBefore = new Set(packFiles());
    // Damage the packs only "lonely" wrote (crm-3 repeats crm's data: its chunks are elsewhere too).
    await runBackup({ repo: a, source: openSource(`sqlite://${db}`), id: 'lonely', compressionWorkers: 0 });
    const fresh = packFiles().filter((f) => !packsBefore.has(f));
    expect(fresh.length).toBeGreaterThan(0);
    await runBackup({ repo: a, source: openSource(`sqlite://${dbs.crm}`), id: 'crm-3', compressionWorkers: 0 });
    for (const f of fresh) {
      const p = join(repoA(), 'data', f);
      const bytes = readFileSync(p);
      bytes.writeUInt8((bytes.readUInt8(bytes.length >> 1) ^ 0xff) & 0xff, bytes.length >> 1);
      writeFileSync(p, bytes);
    }
    const r = json(['sync', '--from', repoA(), '--to', repoB()]);
    expect(r.code).toBe(6);
    expect(r.result.failed.map((f) => f.backupId)).toEqual(['lonely']);
    expect(r.result.failed[0]?.message).toMatch(/damaged/);
    expect(r.result.copied.map((c) => c.backupId)).toContain('crm-3');
    expect(await (await Repository.open(new FileSystemStorage(repoB()))).hasBackup('lonely')).toBe(false);
    await a.deleteBackup('lonely');
  });

  it('copies a schedule\'s backups to --copy-to after each run (cairn schedule add --copy-to, run-now)', async () => {
    const dataDir = join(work, 'sched-data');
    const add = cairn(['schedule', 'add', 'crm-nightly', '--source', `sqlite://${dbs.crm}`, '--repo', repoA(), '--cron', '@daily', '--copy-to', repoB(), '--data-dir', dataDir], { env });
    expect(add.code, add.stderr).toBe(0);
    const run = cairn(['schedule', 'run-now', 'crm-nightly', '--data-dir', dataDir, '--json'], { env });
    expect(run.code, run.stderr).toBe(0);
    const job = JSON.parse(run.stdout) as { result: { backupId: string; copied: string[] } };
    // Only this schedule's backups: the manual crm-* ones are not its to copy.
    expect(job.result.copied).toEqual([job.result.backupId]);
    await checkOne(repoB(), job.result.backupId, dumpSqlite(dbs.crm));
    expect(cairn(['schedule', 'add', 'x', '--source', `sqlite://${dbs.crm}`, '--repo', repoA(), '--cron', '@daily', '--copy-to', repoA(), '--data-dir', dataDir], { env }).stderr).toMatch(/--copy-to names the schedule's own repository/);
    // A second repository that cannot be opened: the backup is made, the copy is a warning.
    expect(cairn(['schedule', 'add', 'broken', '--source', `sqlite://${dbs.crm}`, '--repo', repoA(), '--cron', '@daily', '--copy-to', join(work, 'nowhere'), '--data-dir', dataDir], { env }).code).toBe(0);
    const broken = cairn(['schedule', 'run-now', 'broken', '--data-dir', dataDir], { env });
    expect(broken.code, broken.stderr).toBe(0);
    expect(broken.stderr).toMatch(/warning: the copy to the second repository \(copyTo\) failed \(.*\); it is retried at the next run/);
    expect(broken.stdout).toMatch(/Schedule broken ran: backup (crm-\S+)/);
  });

  it('runs through a server (cairn sync --server, POST /v1/syncs) and refuses bad arguments', async () => {
    const dataDir = join(work, 'server-data');
    const store = new SqliteTokenStore(catalogFile(dataDir));
    const token = store.create('operator').token;
    store.close();
    const server = await startServer({ dataDir, port: 0, allowAdHocUrls: true, scheduleTickMs: 3600_000, env: {} });
    try {
      const a = await Repository.open(new FileSystemStorage(repoA()));
      const db = join(work, 'late.db');
      makeDb(db);
      mutate(db, seededRandom(5), 2);
      await runBackup({ repo: a, source: openSource(`sqlite://${db}`), id: 'late', compressionWorkers: 0 });
      // Asynchronously: the server runs in this process and must keep answering.
      const r = await cairnAsyncRun(['sync', '--server', server.url, '--from', repoA(), '--to', repoB(), '--source', 'late', '--json'], { ...env, CAIRN_TOKEN: token });
      expect(r.code, r.stderr).toBe(0);
      const result = JSON.parse(r.stdout) as SyncResult;
      expect(result.copied.map((c) => c.backupId)).toEqual(['late']);
      await runBackup({ repo: a, source: openSource(`sqlite://${db}`), id: 'late-2', compressionWorkers: 0 });
      const one = await cairnAsyncRun(['copy', 'late-2', '--server', server.url, '--from', repoA(), '--to', repoB()], { ...env, CAIRN_TOKEN: token });
      expect(one.code, one.stderr).toBe(0);
      expect(one.stdout).toMatch(/^Copied backup late-2 from .* to .*: 0 chunks sent \(0 B\), \d+ already there; verified\.$/m);
      // A schedule with copyTo: each run's backup is copied to the second repository.
      const client = new CairnClient({ url: server.url, token });
      const schedule = await client.schedules.create({ name: 'late-copy', source: `sqlite://${db}`, repository: repoA(), cron: '@daily', copyTo: repoB() });
      expect(schedule.copyTo).toBe(repoB());
      const run = await client.schedules.runNow('late-copy', { waitForCompletion: true });
      const made = String(run.result?.backupId);
      expect(run.result?.copied).toEqual([made]);
      expect(run.result?.warnings).toBeUndefined();
      await checkOne(repoB(), made, dumpSqlite(db));
    } finally {
      await server.close();
    }
    expect(cairn(['copy', '--from', repoA(), '--to', repoB()], { env }).stderr).toMatch(/Name the backup to copy .* or copy every missing one with --all/);
    expect(cairn(['sync', '--help'], { env }).stdout).toMatch(/not removed from --to/);
    const typo = cairn(['sync', '--from', repoA(), '--to', repoB(), '--source', 'shp'], { env });
    expect(typo.code).toBe(3);
    expect(typo.stderr).toMatch(/No backup of source "shp" in .*: give a source's name or location as cairn backup list shows it \(crm, late, shop\)/);
  });
});
