#!/usr/bin/env node
// Kill campaign: SIGKILL the real CLI at random moments of each operation, then run the next
// operation of the same kind and check that nothing was lost, half-written or left behind.
//
//   npm run kill-campaign -- [--kills N] [--seed S] [--engine sqlite|postgres|both]
//                            [--ops backup,restore-new,restore-overwrite,prune,copy,delete,expire]
//                            [--mb M] [--out summary.json] [--json] [--keep]
//
// For each operation and engine: one unkilled run measures the operation's duration; then N
// times: prepare (a small change to the source, a new backup… whatever the operation needs),
// start `node bin/cairn.js <op>`, SIGKILL it either at a time drawn uniformly in [0, duration]
// or (every 4th kill) the moment a progress marker appears (its lock, first pack, index,
// manifest, staging file or database, a deleted index or pack…), then run the same kind of
// operation again, `cairn verify --read-data`, and check:
// - corrupt repository: verify fails, a listed backup does not restore to exactly what it
//   backed up (SQLite: row-level digest, storage classes kept; PostgreSQL: count and md5 of
//   the ordered rows per table), a backup that must exist is gone, or `backup list` fails;
// - half-written target: a killed restore into a new target left it neither absent nor
//   complete; into an existing one, neither unchanged nor complete;
// - leftovers after the next run: SQLite staging files `.<name>.cairn-restore-*` in the
//   target's folder, PostgreSQL staging databases `<target>_cairn_<hex>` and `…__cairn_<hex>`
//   staging tables, repository temporary files `.*.tmp-*`, and (after the next prune) locks of
//   dead processes;
// - next run failed: the operation run after the kill did not succeed.
// Prints a table (op × engine) and a JSON summary (--out file, or --json on stdout).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import * as L from './campaign-lib.mjs';

const ALL_OPS = ['backup', 'restore-new', 'restore-overwrite', 'prune', 'copy', 'delete', 'expire'];
const opts = L.parseArgs(process.argv.slice(2), {
  kills: 10,
  seed: 1,
  engine: 'sqlite',
  ops: ALL_OPS.join(','),
  mb: 4,
  out: '',
  json: false,
  keep: false,
  markerEvery: 4,
  maxBackups: 3,
});
const ops = opts.ops.split(',').map((s) => s.trim()).filter(Boolean);
for (const op of ops) if (!ALL_OPS.includes(op)) throw new Error(`unknown op ${op} (one of ${ALL_OPS.join(', ')})`);
const engines = opts.engine === 'both' ? ['sqlite', 'postgres'] : [opts.engine];
for (const e of engines) if (!['sqlite', 'postgres'].includes(e)) throw new Error(`unknown engine ${e}`);

const log = (s) => process.stderr.write(`${s}\n`);
const r = L.rng(opts.seed);
const work = L.tmpDir('cairn-killc');
const tag = randomBytes(3).toString('hex');
const started = Date.now();
/** True while the measuring (unkilled) run's next operation runs: the repository checks are skipped. */
let measuring = false;

/** A failure found in one iteration. */
function failure(list, kind, detail, what) {
  list.push({ kind, ...(what ? { what } : {}), detail: L.oneLine(detail, 600) });
}

// ------------------------------------------------------------------ engines

/**
 * What the campaign needs of an engine: a source it can change and digest, restore targets
 * (URL, digest, drop) and the staging leftovers restores may leave.
 */
function sqliteEngine(opName) {
  const dir = path.join(work, 'sqlite', opName);
  const targets = path.join(dir, 'targets');
  fs.mkdirSync(targets, { recursive: true });
  const src = path.join(dir, 'source.db');
  L.makeSqliteSource(src, r, opts.mb);
  let n = 0;
  return {
    name: 'sqlite',
    dir,
    sourceUrl: `sqlite://${src}`,
    digest: () => L.sqliteDigest(src),
    mutate: () => L.mutateSqlite(src, r),
    newTarget: (label) => path.join(targets, `${label}-${++n}.db`),
    targetUrl: (t) => `sqlite://${t}`,
    targetDigest: (t) => L.sqliteDigest(t),
    targetExists: (t) => fs.existsSync(t),
    dropTarget: (t) => {
      for (const f of [t, `${t}-journal`, `${t}-wal`, `${t}-shm`]) fs.rmSync(f, { force: true });
    },
    /** Staging files in the targets folder (every restore target lives there). */
    leftovers: () => L.sqliteStagingFiles(targets).map((f) => `targets/${f}`),
    stagingAppeared: () => L.sqliteStagingFiles(targets).length > 0,
    /** Removes what leftovers() found, so that each kill is judged on its own. */
    removeLeftovers: () => {
      for (const f of L.sqliteStagingFiles(targets)) fs.rmSync(path.join(targets, f), { force: true });
    },
    cleanup: () => {},
  };
}

function postgresEngine(opName) {
  const base = `cairn_killc_${tag}`;
  L.makePgSource(base, r, opts.mb);
  let n = 0;
  const created = new Set();
  return {
    name: 'postgres',
    dir: path.join(work, 'postgres', opName),
    sourceUrl: L.pgUrl(base),
    digest: () => L.pgDigest(base),
    mutate: () => L.mutatePg(base, r),
    newTarget: (label) => {
      const t = `${base}_${label.replace(/[^a-z0-9]/g, '')}${++n}`;
      created.add(t);
      return t;
    },
    targetUrl: (t) => L.pgUrl(t),
    targetDigest: (t) => L.pgDigest(t),
    targetExists: (t) => L.pgDatabases(t.replace(/_/g, '\\_')).length > 0,
    dropTarget: (t) => L.pgDrop(t),
    /** Staging databases of any target, and staging tables in existing targets. */
    leftovers: (existing = []) => [
      ...L.pgStagingDatabases(base).map((d) => `database ${d}`),
      ...existing.filter((t) => L.pgDatabases(t.replace(/_/g, '\\_')).length > 0).flatMap((t) => L.pgStagingRelations(t).map((x) => `${t}: ${x}`)),
    ],
    stagingAppeared: (existing = []) =>
      L.pgStagingDatabases(base).length > 0 || existing.some((t) => L.pgStagingRelations(t).length > 0),
    removeLeftovers: (existing = []) => {
      for (const d of L.pgStagingDatabases(base)) L.pgDrop(d);
      for (const t of existing) {
        for (const rel of L.pgStagingRelations(t, true)) L.psql(t, `DROP ${rel.kind === 'S' ? 'SEQUENCE' : 'TABLE'} IF EXISTS ${rel.name} CASCADE;`);
      }
    },
    cleanup: () => {
      for (const d of L.pgDatabases(`${base.replace(/_/g, '\\_')}%`)) L.pgDrop(d);
    },
  };
}

// ------------------------------------------------------------------ repository model

/**
 * A repository and what each of its backups must restore to. `expected` maps a backup id to
 * the source digest it was taken from; `mustExist` holds the ids no operation under test may
 * remove.
 */
class Repo {
  constructor(eng, dir) {
    this.eng = eng;
    this.dir = dir;
    this.expected = new Map();
    this.mustExist = new Set();
    this.counter = 0;
    const init = L.cairn(['repo', 'init', dir]);
    if (init.code !== 0) throw new Error(`repo init failed: ${init.stderr}`);
  }

  /** A new backup of the source as it is now (not under test: it must succeed). */
  backup(prefix = 'b') {
    const id = `${prefix}-${++this.counter}`;
    const digest = this.eng.digest();
    const res = L.cairn(['backup', 'create', '--source', this.eng.sourceUrl, '--repo', this.dir, '--id', id]);
    if (res.code !== 0) return { id, error: `backup create ${id} exited ${res.code}: ${res.stderr}` };
    this.expected.set(id, digest);
    this.mustExist.add(id);
    return { id };
  }

  list() {
    const res = L.cairn(['backup', 'list', '--repo', this.dir, '--json']);
    if (res.code !== 0) return { error: `backup list exited ${res.code}: ${res.stderr}` };
    try {
      const doc = JSON.parse(res.stdout);
      if (!Array.isArray(doc.backups)) return { error: `backup list --json printed no backups array: ${res.stdout.slice(0, 200)}` };
      return { ids: doc.backups.map((m) => m.id) };
    } catch (err) {
      return { error: `backup list --json printed no JSON: ${err.message}` };
    }
  }

  /**
   * The backups whose manifests are in the folder, oldest first (ids end in a counter): the
   * campaign's own bookkeeping, cheaper than a CLI run; the checks use `backup list`.
   */
  fsList() {
    const dir = path.join(this.dir, 'backups');
    const num = (id) => Number(id.slice(id.lastIndexOf('-') + 1));
    const ids = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => !f.startsWith('.')).sort((a, b) => num(a) - num(b)) : [];
    return { ids };
  }

  /** Deletes backups (not under test) until at most `keep` remain. */
  trim(keep) {
    const { ids } = this.fsList();
    for (const id of ids.slice(0, Math.max(0, ids.length - keep))) {
      const res = L.cairn(['backup', 'delete', id, '--repo', this.dir]);
      if (res.code === 0) {
        this.mustExist.delete(id);
        this.expected.delete(id);
      }
    }
  }

  /**
   * The full check: `backup list`, `verify --read-data`, and a restore of every listed backup
   * compared with what it backed up. Returns problems (strings); none means intact.
   */
  check({ restoreAll = true } = {}) {
    // The unkilled measuring run is not a kill: its next run happens, the checks do not.
    if (measuring) return [];
    const problems = [];
    const listed = this.list();
    if (listed.error) return [listed.error];
    for (const id of this.mustExist) if (!listed.ids.includes(id)) problems.push(`backup ${id} vanished from the listing`);
    const v = L.cairn(['verify', '--repo', this.dir, '--read-data']);
    if (v.code !== 0) problems.push(`verify --read-data exited ${v.code}: ${v.stderr}`);
    if (!restoreAll) return problems;
    for (const id of listed.ids) {
      const want = this.expected.get(id);
      if (!want) {
        problems.push(`backup ${id} is listed but no operation could have made it`);
        continue;
      }
      const t = this.eng.newTarget('chk');
      try {
        const res = L.cairn(['restore', id, '--repo', this.dir, '--to', this.eng.targetUrl(t)]);
        if (res.code !== 0) problems.push(`restore ${id} exited ${res.code}: ${res.stderr}`);
        else if (!L.sameDigest(this.eng.targetDigest(t), want)) problems.push(`restore ${id} differs from what it backed up`);
      } finally {
        this.eng.dropTarget(t);
      }
    }
    return problems;
  }
}

/** Files in a repository folder (relative), for markers. */
function filesUnder(dir, sub) {
  const d = path.join(dir, sub);
  return L.listFiles(d).filter((f) => !path.basename(f).startsWith('.'));
}

/** Removes temp files once counted, so that each kill is judged on its own. */
/** A failure for every temp file left in `repo` after the next `operation`; then removes them. */
function leftoverTempFiles(repo, f, operation) {
  const tmp = L.repoTempFiles(repo);
  if (tmp.length) failure(f, 'leftover', `repository temp files in ${path.basename(repo)} after the next ${operation}: ${tmp.join(', ')}`, 'repository temp files');
  for (const file of tmp) fs.rmSync(path.join(repo, file), { force: true });
}

/** Locks in `repo` written by processes that are gone (or unreadable ones). */
async function deadLocks(repo) {
  const locks = await L.readLocks(repo);
  return locks.filter((l) => l.unreadable || (l.hostname === os.hostname() && !L.processAlive(l.pid))).map((l) => l.key);
}

// ------------------------------------------------------------------ one kill

/**
 * Runs `args` and SIGKILLs it at `killAt` ms after the start, or when `marker()` first holds
 * (polled every few ms). Returns { killed, elapsed, result }.
 */
async function runAndKill(args, { killAt, marker }) {
  const t0 = Date.now();
  const { child, done } = L.cairnChild(args);
  let finished = false;
  let killedAt;
  const kill = () => {
    if (!finished && killedAt === undefined) {
      killedAt = Date.now() - t0;
      child.kill('SIGKILL');
    }
  };
  let timer;
  let poll;
  if (marker) {
    poll = (async () => {
      while (!finished && killedAt === undefined) {
        let hit = false;
        try {
          hit = await marker();
        } catch {
          hit = false;
        }
        if (hit) return kill();
        await L.sleep(3);
      }
    })();
  } else timer = setTimeout(kill, killAt);
  const result = await done;
  finished = true;
  clearTimeout(timer);
  await poll;
  return { killed: result.signal === 'SIGKILL', killedAt, elapsed: Date.now() - t0, result };
}

// ------------------------------------------------------------------ operations

/**
 * Each operation: setup(eng) once → state; prepare(state, i) before each run → run context;
 * args(ctx) the command killed; markers(ctx) name → () => boolean; after(ctx, run, failures)
 * runs the next operation of the same kind and every check.
 */
/** Backs up (after a change each time) until the repository holds maxBackups + 1 backups; returns their ids. */
function topUpBackups(repo, c) {
  for (let n = repo.fsList().ids.length; n < opts.maxBackups + 1; n++) {
    repo.eng.mutate();
    const b = repo.backup();
    if (b.error) c.setupError = b.error;
  }
  return repo.fsList().ids;
}

const OPERATIONS = {
  backup: {
    setup(eng) {
      const repo = new Repo(eng, path.join(eng.dir, 'repo-backup'));
      const b = repo.backup();
      if (b.error) throw new Error(b.error);
      return { repo };
    },
    prepare(s) {
      s.repo.trim(opts.maxBackups - 1);
      s.repo.eng.mutate();
      const id = `k-${++s.repo.counter}`;
      const digest = s.repo.eng.digest();
      // A killed backup may still have committed: then it must restore to this.
      s.repo.expected.set(id, digest);
      const before = { packs: filesUnder(s.repo.dir, 'data').length, index: filesUnder(s.repo.dir, 'index').length, locks: filesUnder(s.repo.dir, 'locks').length };
      return { id, before };
    },
    args: (s, c) => ['backup', 'create', '--source', s.repo.eng.sourceUrl, '--repo', s.repo.dir, '--id', c.id],
    markers: (s, c) => ({
      lock: () => filesUnder(s.repo.dir, 'locks').length > c.before.locks,
      pack: () => filesUnder(s.repo.dir, 'data').length > c.before.packs,
      index: () => filesUnder(s.repo.dir, 'index').length > c.before.index,
      manifest: () => fs.existsSync(path.join(s.repo.dir, 'backups', c.id)),
    }),
    after(s, c, run, f) {
      const next = s.repo.backup('n');
      if (next.error) failure(f, 'next-failed', next.error);
      const listed = s.repo.fsList();
      if (listed.ids.includes(c.id)) s.repo.mustExist.add(c.id);
      else s.repo.expected.delete(c.id);
      for (const p of s.repo.check()) failure(f, 'corrupt', p);
      leftoverTempFiles(s.repo.dir, f, 'backup');
    },
    async finish(s, f) {
      await finalPruneLocks(s.repo, f);
    },
  },

  'restore-new': {
    setup(eng) {
      const repo = new Repo(eng, path.join(eng.dir, 'repo-restore'));
      eng.mutate();
      const b = repo.backup();
      if (b.error) throw new Error(b.error);
      return { repo, id: b.id };
    },
    prepare(s, i) {
      return { target: s.repo.eng.newTarget('new'), i };
    },
    args: (s, c) => ['restore', s.id, '--repo', s.repo.dir, '--to', s.repo.eng.targetUrl(c.target)],
    markers: (s, c) => ({
      staging: () => s.repo.eng.stagingAppeared(),
      target: () => s.repo.eng.targetExists(c.target),
    }),
    after(s, c, run, f) {
      const eng = s.repo.eng;
      const want = s.repo.expected.get(s.id);
      if (eng.targetExists(c.target)) {
        const got = safeDigest(eng, c.target);
        if (!L.sameDigest(got, want)) failure(f, 'half-written', `killed restore into new ${c.target} left it present but incomplete (differs in ${L.diffTables(got, want).join(', ')})`);
      }
      // The next restore: every other time the user's retry into the same (absent) target,
      // else a restore into another target in the same folder / on the same server.
      const same = c.i % 2 === 0 && !eng.targetExists(c.target);
      const next = same ? c.target : eng.newTarget('new');
      const res = L.cairn(['restore', s.id, '--repo', s.repo.dir, '--to', eng.targetUrl(next)]);
      if (res.code !== 0) failure(f, 'next-failed', `restore ${s.id} --to ${next} exited ${res.code}: ${res.stderr}`);
      else if (!L.sameDigest(eng.targetDigest(next), want)) failure(f, 'corrupt', `the next restore into ${next} differs from the backup`);
      const left = eng.leftovers([]);
      if (left.length) failure(f, 'leftover', `after the next restore (${same ? 'into the same target' : 'into another target'}): ${left.join(', ')}`, 'restore staging');
      eng.removeLeftovers([]);
      eng.dropTarget(next);
      eng.dropTarget(c.target);
      for (const p of s.repo.check({ restoreAll: false })) failure(f, 'corrupt', p);
    },
    async finish(s, f) {
      await finalPruneLocks(s.repo, f);
    },
  },

  'restore-overwrite': {
    setup(eng) {
      const repo = new Repo(eng, path.join(eng.dir, 'repo-overwrite'));
      const a = repo.backup();
      eng.mutate();
      eng.mutate();
      const b = repo.backup();
      if (a.error || b.error) throw new Error(a.error ?? b.error);
      const target = eng.newTarget('ovw');
      const res = L.cairn(['restore', a.id, '--repo', repo.dir, '--to', eng.targetUrl(target)]);
      if (res.code !== 0) throw new Error(`initial restore failed: ${res.stderr}`);
      return { repo, ids: [a.id, b.id], target, holds: a.id };
    },
    prepare(s) {
      const id = s.holds === s.ids[0] ? s.ids[1] : s.ids[0];
      return { id, before: s.holds };
    },
    args: (s, c) => ['restore', c.id, '--repo', s.repo.dir, '--to', s.repo.eng.targetUrl(s.target), '--on-conflict', 'overwrite'],
    markers: (s) => ({ staging: () => s.repo.eng.stagingAppeared([s.target]) }),
    after(s, c, run, f) {
      const eng = s.repo.eng;
      const got = safeDigest(eng, s.target);
      const was = s.repo.expected.get(c.before);
      const want = s.repo.expected.get(c.id);
      if (!L.sameDigest(got, was) && !L.sameDigest(got, want)) {
        failure(f, 'half-written', `killed overwrite of ${s.target} left it neither unchanged (${c.before}; differs in ${L.diffTables(got, was).join(', ')}) nor complete (${c.id}; differs in ${L.diffTables(got, want).join(', ')})`);
      }
      const res = L.cairn(['restore', c.id, '--repo', s.repo.dir, '--to', eng.targetUrl(s.target), '--on-conflict', 'overwrite']);
      if (res.code !== 0) failure(f, 'next-failed', `restore ${c.id} --on-conflict overwrite exited ${res.code}: ${res.stderr}`);
      const now = safeDigest(eng, s.target);
      if (L.sameDigest(now, want)) s.holds = c.id;
      else if (L.sameDigest(now, was)) s.holds = c.before;
      else {
        failure(f, 'corrupt', `after the next overwrite ${s.target} matches neither backup; recreating it`);
        eng.dropTarget(s.target);
        L.cairn(['restore', c.id, '--repo', s.repo.dir, '--to', eng.targetUrl(s.target)]);
        s.holds = c.id;
      }
      const left = eng.leftovers([s.target]);
      if (left.length) failure(f, 'leftover', `after the next overwrite: ${left.join(', ')}`, 'restore staging');
      eng.removeLeftovers([s.target]);
      for (const p of s.repo.check({ restoreAll: false })) failure(f, 'corrupt', p);
    },
    async finish(s, f) {
      await finalPruneLocks(s.repo, f);
      s.repo.eng.dropTarget(s.target);
    },
  },

  prune: {
    setup(eng) {
      const repo = new Repo(eng, path.join(eng.dir, 'repo-prune'));
      for (let i = 0; i < 2; i++) {
        eng.mutate();
        const b = repo.backup();
        if (b.error) throw new Error(b.error);
      }
      return { repo };
    },
    prepare(s) {
      // Garbage for prune: a new backup, and the oldest one deleted.
      s.repo.eng.mutate();
      const b = s.repo.backup();
      const c = { setupError: b.error };
      s.repo.trim(opts.maxBackups - 1);
      c.before = { packs: filesUnder(s.repo.dir, 'data'), index: filesUnder(s.repo.dir, 'index'), locks: filesUnder(s.repo.dir, 'locks').length };
      return c;
    },
    args: (s) => ['prune', '--repo', s.repo.dir],
    markers: (s, c) => ({
      lock: () => filesUnder(s.repo.dir, 'locks').length > c.before.locks,
      'new-pack': () => filesUnder(s.repo.dir, 'data').some((p) => !c.before.packs.includes(p)),
      'new-index': () => filesUnder(s.repo.dir, 'index').some((p) => !c.before.index.includes(p)),
      'index-deleted': () => filesUnder(s.repo.dir, 'index').length < c.before.index.length,
      'pack-deleted': () => filesUnder(s.repo.dir, 'data').length < c.before.packs.length,
    }),
    async after(s, c, run, f) {
      if (c.setupError) failure(f, 'next-failed', `setup backup: ${c.setupError}`);
      const res = L.cairn(['prune', '--repo', s.repo.dir]);
      if (res.code !== 0) failure(f, 'next-failed', `prune exited ${res.code}: ${res.stderr}`);
      for (const p of s.repo.check()) failure(f, 'corrupt', p);
      leftoverTempFiles(s.repo.dir, f, 'prune');
      const dead = await deadLocks(s.repo.dir);
      if (dead.length) failure(f, 'leftover', `locks of dead processes after the next prune: ${dead.join(', ')}`, 'locks of dead processes');
      for (const k of dead) fs.rmSync(path.join(s.repo.dir, k), { force: true });
    },
  },

  copy: {
    setup(eng) {
      const from = new Repo(eng, path.join(eng.dir, 'repo-copy-from'));
      const b = from.backup();
      if (b.error) throw new Error(b.error);
      return { from, to: undefined, n: 0 };
    },
    prepare(s) {
      const eng = s.from.eng;
      // Every other run copies into a fresh repository (a full copy), else into the one kept
      // from before (only the changed chunks travel).
      if (!s.to || s.n++ % 2 === 0) {
        if (s.to && !opts.keep) fs.rmSync(s.to.dir, { recursive: true, force: true });
        s.to = new Repo(eng, path.join(eng.dir, `repo-copy-to-${s.n}`));
      }
      s.to.trim(opts.maxBackups - 1);
      s.from.trim(2);
      eng.mutate();
      const b = s.from.backup('a');
      const before = { packs: filesUnder(s.to.dir, 'data').length, index: filesUnder(s.to.dir, 'index').length, locks: filesUnder(s.to.dir, 'locks').length };
      // Whatever the kill, the copied backup may be there afterwards and must then be exact.
      if (!b.error) s.to.expected.set(b.id, s.from.expected.get(b.id));
      return { id: b.id, setupError: b.error, before };
    },
    args: (s, c) => ['copy', c.id, '--from', s.from.dir, '--to', s.to.dir],
    markers: (s, c) => ({
      lock: () => filesUnder(s.to.dir, 'locks').length > c.before.locks,
      pack: () => filesUnder(s.to.dir, 'data').length > c.before.packs,
      index: () => filesUnder(s.to.dir, 'index').length > c.before.index,
      manifest: () => fs.existsSync(path.join(s.to.dir, 'backups', c.id)),
    }),
    after(s, c, run, f) {
      if (c.setupError) failure(f, 'next-failed', `setup backup: ${c.setupError}`);
      const res = L.cairn(['copy', c.id, '--from', s.from.dir, '--to', s.to.dir]);
      const there = s.to.fsList().ids.includes(c.id);
      if (res.code !== 0 && !(res.code === 4 && there)) failure(f, 'next-failed', `copy ${c.id} exited ${res.code}: ${res.stderr}`);
      if (there) s.to.mustExist.add(c.id);
      else failure(f, 'next-failed', `backup ${c.id} is not in the target after the next copy`);
      for (const p of s.to.check()) failure(f, 'corrupt', p);
      for (const p of s.from.check({ restoreAll: false })) failure(f, 'corrupt', `source repository: ${p}`);
      leftoverTempFiles(s.to.dir, f, 'copy');
    },
    async finish(s, f) {
      await finalPruneLocks(s.to, f);
      await finalPruneLocks(s.from, f);
    },
  },

  delete: {
    setup(eng) {
      return { repo: new Repo(eng, path.join(eng.dir, 'repo-delete')) };
    },
    prepare(s) {
      const c = {};
      const ids = topUpBackups(s.repo, c);
      c.id = ids[0];
      // The backup being deleted may be gone or whole afterwards, nothing in between.
      s.repo.mustExist.delete(c.id);
      c.before = filesUnder(s.repo.dir, 'locks').length;
      return c;
    },
    args: (s, c) => ['backup', 'delete', c.id, '--repo', s.repo.dir],
    markers: (s, c) => ({
      lock: () => filesUnder(s.repo.dir, 'locks').length > c.before,
      'manifest-gone': () => !fs.existsSync(path.join(s.repo.dir, 'backups', c.id)),
    }),
    after(s, c, run, f) {
      if (c.setupError) failure(f, 'next-failed', `setup backup: ${c.setupError}`);
      const ids = s.repo.fsList().ids;
      const victim = ids.includes(c.id) ? c.id : ids[0];
      s.repo.mustExist.delete(victim);
      const res = L.cairn(['backup', 'delete', victim, '--repo', s.repo.dir]);
      if (res.code !== 0) failure(f, 'next-failed', `backup delete ${victim} exited ${res.code}: ${res.stderr}`);
      const after = s.repo.fsList().ids;
      if (after.includes(victim)) failure(f, 'next-failed', `backup ${victim} is still listed after the next delete`);
      for (const p of s.repo.check()) failure(f, 'corrupt', p);
      leftoverTempFiles(s.repo.dir, f, 'delete');
    },
    async finish(s, f) {
      await finalPruneLocks(s.repo, f);
    },
  },

  expire: {
    setup(eng) {
      return { repo: new Repo(eng, path.join(eng.dir, 'repo-expire')) };
    },
    prepare(s) {
      const c = {};
      const ids = topUpBackups(s.repo, c);
      // The two oldest expire; the others must stay.
      c.expired = ids.slice(0, 2);
      for (const id of c.expired) {
        const res = L.cairn(['backup', 'set-expiry', id, '2020-01-01', '--repo', s.repo.dir]);
        if (res.code !== 0) c.setupError = `set-expiry ${id} exited ${res.code}: ${res.stderr}`;
        s.repo.mustExist.delete(id);
      }
      c.before = filesUnder(s.repo.dir, 'locks').length;
      return c;
    },
    args: (s) => ['backup', 'expire', '--repo', s.repo.dir],
    markers: (s, c) => ({
      lock: () => filesUnder(s.repo.dir, 'locks').length > c.before,
      'manifest-gone': () => c.expired.some((id) => !fs.existsSync(path.join(s.repo.dir, 'backups', id))),
    }),
    after(s, c, run, f) {
      if (c.setupError) failure(f, 'next-failed', `setup: ${c.setupError}`);
      const res = L.cairn(['backup', 'expire', '--repo', s.repo.dir]);
      if (res.code !== 0) failure(f, 'next-failed', `backup expire exited ${res.code}: ${res.stderr}`);
      const after = s.repo.fsList().ids;
      const left = c.expired.filter((id) => after.includes(id));
      if (left.length) failure(f, 'next-failed', `expired backups still listed after the next expire: ${left.join(', ')}`);
      for (const p of s.repo.check()) failure(f, 'corrupt', p);
      leftoverTempFiles(s.repo.dir, f, 'expire');
    },
    async finish(s, f) {
      await finalPruneLocks(s.repo, f);
    },
  },
};

function safeDigest(eng, t) {
  try {
    return eng.targetDigest(t);
  } catch (err) {
    return { schema: `unreadable: ${err.message}`, tables: {} };
  }
}

/** At the end of a series: a prune must remove every lock the killed processes left. */
async function finalPruneLocks(repo, f) {
  const res = L.cairn(['prune', '--repo', repo.dir]);
  if (res.code !== 0) failure(f, 'next-failed', `final prune exited ${res.code}: ${res.stderr}`);
  const dead = await deadLocks(repo.dir);
  if (dead.length) failure(f, 'leftover', `locks of dead processes after the final prune: ${dead.join(', ')}`, 'locks of dead processes');
  for (const p of repo.check()) failure(f, 'corrupt', `after the final prune: ${p}`);
}

// ------------------------------------------------------------------ the campaign

async function campaign(engName, opName) {
  const op = OPERATIONS[opName];
  const row = { op: opName, engine: engName, attempts: 0, kills: 0, markerKills: 0, completed: 0, corrupt: 0, halfWritten: 0, leftovers: 0, nextFailed: 0, durationMs: 0, failures: [] };
  const t0 = Date.now();
  let eng;
  try {
    eng = engName === 'sqlite' ? sqliteEngine(opName) : postgresEngine(opName);
    fs.mkdirSync(eng.dir, { recursive: true });
    const s = op.setup(eng);
    // Measure the operation's duration once (unkilled), then check as after a kill.
    {
      const c = op.prepare(s, -1);
      const m = L.cairn(op.args(s, c));
      row.durationMs = m.ms;
      row.measuredMs = m.ms;
      if (m.code !== 0) row.failures.push({ iteration: -1, kind: 'next-failed', detail: L.oneLine(`unkilled ${opName} exited ${m.code}: ${m.stderr}`) });
      const f = [];
      measuring = true;
      try {
        await op.after(s, c, { killed: false }, f);
      } finally {
        measuring = false;
      }
      for (const x of f) row.failures.push({ iteration: -1, ...x });
    }
    const markerNames = Object.keys(op.markers(s, {}));
    let markerTurn = 0;
    for (let i = 0; i < opts.kills; i++) {
      const c = op.prepare(s, i);
      const useMarker = opts.markerEvery > 0 && i % opts.markerEvery === opts.markerEvery - 1 && markerNames.length > 0;
      const markerName = useMarker ? markerNames[markerTurn++ % markerNames.length] : undefined;
      const killAt = useMarker ? undefined : Math.floor(r.next() * row.durationMs);
      const run = await runAndKill(op.args(s, c), useMarker ? { marker: op.markers(s, c)[markerName] } : { killAt });
      row.attempts++;
      if (run.killed) {
        row.kills++;
        if (useMarker) row.markerKills++;
      } else {
        row.completed++;
        // Finished before its moment: the machine is faster now than when measured; follow it,
        // so that kill times stay spread over the real run.
        if (!useMarker && run.result.code === 0) row.durationMs = Math.round((row.durationMs + run.elapsed) / 2);
      }
      const f = [];
      if (!run.killed && run.result.code !== 0) failure(f, 'next-failed', `unkilled ${opName} exited ${run.result.code}: ${run.result.stderr}`);
      await op.after(s, c, run, f);
      const kinds = new Set(f.map((x) => x.kind));
      if (kinds.has('corrupt')) row.corrupt++;
      if (kinds.has('half-written')) row.halfWritten++;
      if (kinds.has('leftover')) row.leftovers++;
      if (kinds.has('next-failed')) row.nextFailed++;
      const at = useMarker ? `marker ${markerName}${run.killedAt !== undefined ? ` @${run.killedAt}ms` : ''}` : `@${killAt}ms`;
      for (const x of f) row.failures.push({ iteration: i, killed: run.killed, at, ...x });
      log(`${engName} ${opName} #${i} ${run.killed ? 'killed' : 'completed'} ${at}${f.length ? `: ${f.map((x) => `${x.kind}: ${x.detail.slice(0, 160)}`).join(' | ')}` : ''}`);
    }
    if (op.finish) {
      const f = [];
      await op.finish(s, f);
      const kinds = new Set(f.map((x) => x.kind));
      if (kinds.has('corrupt')) row.corrupt++;
      if (kinds.has('leftover')) row.leftovers++;
      if (kinds.has('next-failed')) row.nextFailed++;
      for (const x of f) row.failures.push({ iteration: 'final', ...x });
      if (f.length) log(`${engName} ${opName} final: ${f.map((x) => `${x.kind}: ${x.detail.slice(0, 160)}`).join(' | ')}`);
    }
  } catch (err) {
    row.failures.push({ iteration: 'setup', kind: 'error', detail: L.oneLine(err.stack ?? err.message) });
    row.error = L.oneLine(err.message);
    log(`${engName} ${opName}: campaign error: ${err.stack ?? err.message}`);
  } finally {
    eng?.cleanup();
    if (eng && !opts.keep) fs.rmSync(eng.dir, { recursive: true, force: true });
  }
  row.seconds = Math.round((Date.now() - t0) / 1000);
  // Runs with leftovers, by what was left.
  row.leftoverKinds = {};
  for (const it of new Set(row.failures.filter((x) => x.kind === 'leftover').map((x) => `${x.iteration}\u0000${x.what}`))) {
    const what = it.split('\u0000')[1];
    row.leftoverKinds[what] = (row.leftoverKinds[what] ?? 0) + 1;
  }
  return row;
}

const rows = [];
const skipped = [];
for (const engName of engines) {
  if (engName === 'postgres' && !L.pgAvailable()) {
    skipped.push({ engine: 'postgres', reason: 'PostgreSQL is not accepting connections at 127.0.0.1:5432' });
    log('postgres: skipped: PostgreSQL is not accepting connections at 127.0.0.1:5432');
    continue;
  }
  for (const opName of ops) {
    rows.push(await campaign(engName, opName));
    // A long run leaves its figures so far, should it be stopped before the end.
    if (opts.out) fs.writeFileSync(opts.out, `${JSON.stringify({ campaign: 'kill', partial: true, commit: L.gitCommit(), seed: opts.seed, killsPerOp: opts.kills, rows }, null, 2)}\n`);
  }
}

const totals = rows.reduce(
  (t, x) => ({ kills: t.kills + x.kills, corrupt: t.corrupt + x.corrupt, halfWritten: t.halfWritten + x.halfWritten, leftovers: t.leftovers + x.leftovers, nextFailed: t.nextFailed + x.nextFailed, errors: t.errors + (x.error ? 1 : 0) }),
  { kills: 0, corrupt: 0, halfWritten: 0, leftovers: 0, nextFailed: 0, errors: 0 },
);
const summary = {
  campaign: 'kill',
  commit: L.gitCommit(),
  seed: opts.seed,
  killsPerOp: opts.kills,
  sourceMb: opts.mb,
  date: new Date().toISOString(),
  seconds: Math.round((Date.now() - started) / 1000),
  rows,
  skipped,
  totals,
};
const write = opts.json ? (s) => process.stderr.write(`${s}\n`) : (s) => process.stdout.write(`${s}\n`);
write(`\nkill campaign, commit ${summary.commit}, seed ${opts.seed}, ${summary.seconds} s`);
L.printTable(
  ['op', 'engine', 'runs', 'kills', 'marker kills', 'corrupt repos', 'half-written targets', 'leftovers after next run', 'next run failed', 'op ms'],
  rows.map((x) => [x.op, x.engine, x.attempts, x.kills, x.markerKills, x.corrupt, x.halfWritten, x.leftovers, x.nextFailed, x.measuredMs ?? x.durationMs]).concat([['total', '', '', totals.kills, '', totals.corrupt, totals.halfWritten, totals.leftovers, totals.nextFailed, '']]),
  write,
);
for (const s of skipped) write(`skipped ${s.engine}: ${s.reason}`);
const lk = rows.filter((x) => Object.keys(x.leftoverKinds ?? {}).length);
if (lk.length) write(`leftovers by kind (runs): ${lk.map((x) => `${x.op}/${x.engine}: ${Object.entries(x.leftoverKinds).map(([k, v]) => `${k} ${v}`).join(', ')}`).join('; ')}`);
const distinct = new Map();
for (const x of rows) for (const f of x.failures) {
  const key = `${x.op}/${x.engine}/${f.kind}/${f.detail.replace(/[0-9a-f]{8,}/g, '…').replace(/\d+/g, 'N').slice(0, 120)}`;
  if (!distinct.has(key)) distinct.set(key, { op: x.op, engine: x.engine, ...f, count: 0 });
  distinct.get(key).count++;
}
if (distinct.size) {
  write('\ndistinct failures (first occurrence):');
  for (const d of distinct.values()) write(`- ${d.op}/${d.engine} ${d.kind} ×${d.count} (#${d.iteration}${d.at ? ` ${d.at}` : ''}): ${d.detail}`);
}
summary.distinctFailures = [...distinct.values()];
if (opts.out) fs.writeFileSync(opts.out, `${JSON.stringify(summary, null, 2)}\n`);
if (opts.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
if (!opts.keep) fs.rmSync(work, { recursive: true, force: true });
else log(`work folder kept: ${work}`);
process.exitCode = totals.corrupt + totals.halfWritten + totals.leftovers + totals.nextFailed + totals.errors > 0 ? 1 : 0;
