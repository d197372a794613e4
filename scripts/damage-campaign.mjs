#!/usr/bin/env node
// Damage campaign: damage one object of a repository at a time and check that verify reports
// it, that the damage stays contained to what depends on it, and that `cairn repair` brings
// the rest back.
//
//   npm run damage-campaign -- [--seed S] [--per-kind N] [--kinds pack,index,manifest,config,lock]
//                              [--damages flip,truncate,delete,junk,add-junk] [--mb M]
//                              [--backups 2..4] [--out summary.json] [--json] [--keep] [--no-repair]
//
// A repository (pack size 1 MiB, so that tables share packs and a table spans several) holds
// several backups of a SQLite source (several tables, a blob table; one backup of a subset).
// For each object kind (pack, index, manifest, config, lock) and each damage (flip a byte,
// truncate, delete, replace with junk, add a junk object), N times: copy the repository,
// damage one object, then:
// - `cairn verify --read-data --json` must exit 6 naming the damaged object and every
//   collection (`backup: collection`) that depends on it. A collection depends on a pack when
//   one of its chunks has a damaged blob there (the bytes hit, everything after a cut, the
//   whole pack when deleted or replaced) and no intact copy elsewhere; on an index document
//   when one of its chunks is indexed by that document only; on a manifest when it is that
//   backup's. "missed": verify exits 0 (or does not name the object or a dependent
//   collection) while something depends on the damage, or exits 0 while a dependent
//   collection cannot be restored exactly.
// - "uncontained": a collection that does not depend on the damage fails to restore exactly
//   (restore with --include of the collections that do not depend on it), or verify names it.
// - Config damage: every command (backup list/create, restore, verify, prune, delete, copy,
//   repair) must fail with exit 6 (CORRUPT; 3 or 4 for a deleted config and `repo init`), never
//   silently proceed ("missed" otherwise).
// - Lock damage: a process holding a lock is stopped (SIGSTOP) and its lock damaged, or a junk
//   lock is added: `prune` (exclusive) and `backup create` (shared) must both be refused
//   (exit 5): an unreadable lock blocks like an exclusive one until it is stale.
// - Then `cairn repair` (when this build has it): afterwards the collections that do not
//   depend on the damage restore exactly, a new backup works and restores exactly, and prune
//   runs ("repair failed" otherwise).
// Prints a table kind × damage → cases, missed, uncontained, repair failed, and totals.
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import * as L from './campaign-lib.mjs';

const KINDS = ['pack', 'index', 'manifest', 'config', 'lock'];
const DAMAGES = ['flip', 'truncate', 'delete', 'junk', 'add-junk'];
const opts = L.parseArgs(process.argv.slice(2), {
  seed: 1,
  perKind: 2,
  kinds: KINDS.join(','),
  damages: DAMAGES.join(','),
  mb: 3,
  out: '',
  json: false,
  keep: false,
  repair: true,
  noRepair: false,
  backups: 4,
});
const kinds = opts.kinds.split(',').filter(Boolean);
const damages = opts.damages.split(',').filter(Boolean);
for (const k of kinds) if (!KINDS.includes(k)) throw new Error(`unknown kind ${k}`);
for (const d of damages) if (!DAMAGES.includes(d)) throw new Error(`unknown damage ${d}`);
const doRepair = opts.repair && !opts.noRepair;

const log = (s) => process.stderr.write(`${s}\n`);
const r = L.rng(opts.seed);
const work = L.tmpDir('cairn-damagec');
const started = Date.now();

// ------------------------------------------------------------------ the pristine repository

const src = path.join(work, 'source.db');
const pristine = path.join(work, 'pristine');
const targets = path.join(work, 'targets');
fs.mkdirSync(targets);
let targetN = 0;
const newTarget = () => path.join(targets, `t${++targetN}.db`);
const dropTarget = (t) => {
  for (const f of [t, `${t}-journal`, `${t}-wal`, `${t}-shm`]) fs.rmSync(f, { force: true });
};

function must(res, what) {
  if (res.code !== 0) throw new Error(`${what} exited ${res.code}: ${res.stderr}`);
  return res;
}

const tables = L.makeSqliteSource(src, r, opts.mb);
must(L.cairn(['repo', 'init', pristine, '--pack-size', '1']), 'repo init');
/** backup id → { tables: { name: digest } } of what it must restore to. */
const expected = new Map();
const plan = [
  { id: 'b1' },
  { id: 'b2', mutate: true, include: ['users', 'settings', 'tags'] },
  { id: 'b3', mutate: true },
  { id: 'b4', mutate: true },
];
for (const b of plan.slice(0, Math.max(2, Math.min(plan.length, opts.backups)))) {
  if (b.mutate) L.mutateSqlite(src, r);
  const d = L.sqliteDigest(src);
  const args = ['backup', 'create', '--source', `sqlite://${src}`, '--repo', pristine, '--id', b.id];
  if (b.include) args.push('--include', b.include.join(','));
  must(L.cairn(args), `backup ${b.id}`);
  const names = b.include ?? tables;
  expected.set(b.id, Object.fromEntries(names.map((n) => [n, d.tables[n]])));
}
L.mutateSqlite(src, r);
const sourceNow = L.sqliteDigest(src);

/** What is in the pristine repository: packs with their blobs, index documents, manifests. */
async function inventory(repo) {
  const indexDocs = new Map();
  for (const f of L.listFiles(path.join(repo, 'index'))) {
    if (f.startsWith('.')) continue;
    indexDocs.set(f, await L.readDocument(path.join(repo, 'index', f)));
  }
  const superseded = new Set([...indexDocs.values()].flatMap((d) => d.supersedes ?? []));
  /** chunk → [{ pack, offset, length, index }] */
  const locations = new Map();
  const packs = new Map();
  for (const [id, doc] of indexDocs) {
    if (superseded.has(id)) continue;
    for (const p of doc.packs) {
      packs.set(p.id, { id: p.id, key: `data/${p.id.slice(0, 2)}/${p.id}`, length: p.length, blobs: p.blobs });
      for (const b of p.blobs) {
        if (!locations.has(b.id)) locations.set(b.id, []);
        locations.get(b.id).push({ pack: p.id, offset: b.offset, length: b.length, index: id });
      }
    }
  }
  const manifests = new Map();
  for (const f of L.listFiles(path.join(repo, 'backups'))) {
    if (f.startsWith('.')) continue;
    manifests.set(f, await L.readDocument(path.join(repo, 'backups', f)));
  }
  /** "backup: collection" → Set(chunk) */
  const users = new Map();
  for (const [id, m] of manifests) for (const c of m.collections) users.set(`${id}: ${c.name}`, new Set(c.chunks));
  return { indexDocs: [...indexDocs.keys()].filter((i) => !superseded.has(i)), locations, packs, manifests, users };
}
const inv = await inventory(pristine);
log(`pristine repository: ${inv.manifests.size} backups, ${inv.packs.size} packs, ${inv.indexDocs.length} index documents, ${inv.users.size} collections`);

/** Collections (of `users`) using any chunk in `chunks` for which no intact location remains. */
function dependentsOf(lostChunks) {
  const out = new Set();
  for (const [who, chunks] of inv.users) for (const c of chunks) if (lostChunks.has(c)) out.add(who);
  return out;
}

/** Chunks whose every location is damaged. `damaged(loc)` says whether one location is hit. */
function lostChunks(damaged) {
  const lost = new Set();
  for (const [chunk, locs] of inv.locations) if (locs.every(damaged)) lost.add(chunk);
  return lost;
}

const hasRepair = (() => {
  const res = L.cairn(['repair', '--help']);
  return res.code === 0 && /repair/i.test(res.stdout);
})();
if (doRepair && !hasRepair) log('cairn repair: not in this build: repair checks not run');

// ------------------------------------------------------------------ damage

function flip(file) {
  const buf = fs.readFileSync(file);
  const at = r.int(buf.length);
  buf[at] ^= 1 << r.int(8);
  fs.writeFileSync(file, buf);
  return { at, size: buf.length, what: `flipped a bit of byte ${at} of ${buf.length}` };
}
function truncate(file) {
  const size = fs.statSync(file).size;
  const to = r.int(size);
  fs.truncateSync(file, to);
  return { at: to, size, what: `truncated to ${to} of ${size} bytes` };
}
function junk(file) {
  const size = fs.statSync(file).size;
  const n = 1 + r.int(Math.max(2, size));
  fs.writeFileSync(file, r.bytes(n));
  return { size, what: `replaced with ${n} random bytes` };
}
function remove(file) {
  fs.rmSync(file);
  return { what: 'deleted' };
}

function objectNamed(text, names) {
  return names.some((n) => n && text.includes(n));
}

function verifyReport(repo) {
  const res = L.cairn(['verify', '--repo', repo, '--read-data', '--json']);
  let named = [];
  try {
    const doc = JSON.parse(res.stdout);
    named = (doc.problems ?? []).flatMap((p) => p.affects ?? []);
  } catch {
    // no JSON: the error line is all there is
  }
  return { code: res.code, text: `${res.stdout}\n${res.stderr}`, named: new Set(named), stderr: res.stderr };
}

/** Restores `names` of backup `id` (all when undefined) into a new file: true when every one is exact. */
function restoresExactly(repo, id, names) {
  const t = newTarget();
  try {
    const args = ['restore', id, '--repo', repo, '--to', `sqlite://${t}`];
    if (names) args.push('--include', names.join(','));
    const res = L.cairn(args);
    if (res.code !== 0) return { ok: false, why: `restore ${id}${names ? ` --include ${names.join(',')}` : ''} exited ${res.code}: ${L.oneLine(res.stderr, 240)}` };
    const got = L.sqliteDigest(t);
    const want = expected.get(id);
    const wrong = (names ?? Object.keys(want)).filter((n) => got?.tables[n] !== want[n]);
    return wrong.length ? { ok: false, why: `restore ${id}: ${wrong.join(', ')} differ from the backup` } : { ok: true };
  } finally {
    dropTarget(t);
  }
}

/**
 * The checks of one data case (pack, index, manifest). `deps`: dependent "backup: collection";
 * `allowNamed`: also acceptable in verify's report; `objectNames`: strings one of which names
 * the damaged object (empty: it cannot be named, e.g. a deleted index); `mustReport`: verify
 * must exit 6 even without dependents.
 */
function checkDataCase(repo, c) {
  const out = { missed: [], uncontained: [], repair: [] };
  const v = verifyReport(repo);
  const reported = v.code === 6;
  const namedIn = (who) => v.named.has(who) || v.text.includes(who);
  if (c.deps.size > 0 || c.mustReport) {
    if (!reported) out.missed.push(`verify exited ${v.code} (want 6): ${L.oneLine(v.stderr || v.text, 200)}`);
    else {
      if (c.objectNames.length && !objectNamed(v.text, c.objectNames)) out.missed.push(`verify did not name ${c.objectNames[0]}: ${L.oneLine(v.stderr, 300)}`);
      // A damaged manifest cannot tell which collections it had: naming the backup is enough.
      const unnamed = c.depsByObject ? [] : [...c.deps].filter((d) => !namedIn(d));
      if (unnamed.length) out.missed.push(`verify did not name dependent ${unnamed.join(', ')}`);
    }
  } else if (v.code !== 0 && v.code !== 6) out.missed.push(`verify exited ${v.code}: ${L.oneLine(v.stderr, 200)}`);
  const wronglyNamed = [...inv.users.keys()].filter((w) => !c.deps.has(w) && !c.allowNamed?.has(w) && namedIn(w));
  if (wronglyNamed.length) out.uncontained.push(`verify named collections that do not depend on the damage: ${wronglyNamed.join(', ')}`);

  for (const [id] of inv.manifests) {
    if (c.skipBackups?.has(id)) continue;
    const names = Object.keys(expected.get(id));
    const fine = names.filter((n) => !c.deps.has(`${id}: ${n}`));
    const hurt = names.filter((n) => c.deps.has(`${id}: ${n}`));
    if (fine.length) {
      const res = restoresExactly(repo, id, fine.length === names.length ? undefined : fine);
      if (!res.ok) {
        // Which of them: one by one, so the report names the collections that broke.
        const broken = fine.length === 1 ? fine : fine.filter((n) => !restoresExactly(repo, id, [n]).ok);
        out.uncontained.push(`${broken.map((n) => `${id}: ${n}`).join(', ') || `${id} (all parts restore alone)`} failed to restore: ${res.why}`);
      }
    }
    if (hurt.length && v.code === 0) {
      const res = restoresExactly(repo, id, hurt);
      if (!res.ok) out.missed.push(`verify exited 0 but ${hurt.map((n) => `${id}: ${n}`).join(', ')} cannot be restored: ${res.why}`);
    }
  }

  if (doRepair && hasRepair) {
    const rep = L.cairn(['repair', '--repo', repo]);
    if (rep.code !== 0 && rep.code !== 6) out.repair.push(`repair exited ${rep.code}: ${L.oneLine(rep.stderr, 240)}`);
    const nb = L.cairn(['backup', 'create', '--source', `sqlite://${src}`, '--repo', repo, '--id', 'after-repair']);
    if (nb.code !== 0) out.repair.push(`backup after repair exited ${nb.code}: ${L.oneLine(nb.stderr, 240)}`);
    const pr = L.cairn(['prune', '--repo', repo]);
    if (pr.code !== 0) out.repair.push(`prune after repair exited ${pr.code}: ${L.oneLine(pr.stderr, 240)}`);
    if (nb.code === 0) {
      const t = newTarget();
      const res = L.cairn(['restore', 'after-repair', '--repo', repo, '--to', `sqlite://${t}`]);
      if (res.code !== 0) out.repair.push(`restore of the backup made after repair exited ${res.code}: ${L.oneLine(res.stderr, 240)}`);
      else if (!L.sameDigest(L.sqliteDigest(t), sourceNow)) out.repair.push('the backup made after repair does not restore exactly');
      dropTarget(t);
    }
    for (const [id] of inv.manifests) {
      if (c.skipBackups?.has(id)) continue;
      const fine = Object.keys(expected.get(id)).filter((n) => !c.deps.has(`${id}: ${n}`));
      if (!fine.length) continue;
      const res = restoresExactly(repo, id, fine);
      if (!res.ok) out.repair.push(`after repair and prune: ${res.why}`);
    }
  }
  return out;
}

// ------------------------------------------------------------------ cases per kind

function copyRepo() {
  const dir = path.join(work, `case-${randomBytes(4).toString('hex')}`);
  fs.cpSync(pristine, dir, { recursive: true });
  return dir;
}

const damageFns = { flip, truncate, delete: remove, junk };

function packCase(repo, damage) {
  if (damage === 'add-junk') {
    const id = randomBytes(32).toString('hex');
    fs.mkdirSync(path.join(repo, 'data', id.slice(0, 2)), { recursive: true });
    fs.writeFileSync(path.join(repo, 'data', id.slice(0, 2), id), r.bytes(1000 + r.int(100_000)));
    return { object: `data/${id.slice(0, 2)}/${id} (junk)`, deps: new Set(), objectNames: [], mustReport: false };
  }
  const pack = r.pick([...inv.packs.values()]);
  const d = damageFns[damage](path.join(repo, pack.key));
  let hit;
  if (damage === 'flip') hit = (loc) => loc.pack === pack.id && d.at >= loc.offset && d.at < loc.offset + loc.length;
  else if (damage === 'truncate') hit = (loc) => loc.pack === pack.id && loc.offset + loc.length > d.at;
  else hit = (loc) => loc.pack === pack.id;
  const deps = dependentsOf(lostChunks(hit));
  // Users of the pack whose blobs were not hit: acceptable to name only when no blob was hit
  // (a damaged header): the pack is damaged, but their data is not.
  const packUsers = new Set([...inv.users].filter(([, ch]) => [...ch].some((c) => inv.locations.get(c)?.some((l) => l.pack === pack.id))).map(([w]) => w));
  return { object: `${pack.key} (${d.what})`, deps, allowNamed: deps.size === 0 ? packUsers : undefined, objectNames: [pack.id], mustReport: true };
}

function indexCase(repo, damage) {
  if (damage === 'add-junk') {
    const id = randomBytes(32).toString('hex');
    fs.writeFileSync(path.join(repo, 'index', id), r.bytes(100 + r.int(5000)));
    return { object: `index/${id} (junk)`, deps: new Set(), objectNames: [id], mustReport: true };
  }
  const id = r.pick(inv.indexDocs);
  const d = damageFns[damage](path.join(repo, 'index', id));
  // A damaged index document cannot be trusted at all: what only it indexes is lost until repair.
  const deps = dependentsOf(lostChunks((loc) => loc.index === id));
  return { object: `index/${id} (${d.what})`, deps, objectNames: damage === 'delete' ? [] : [id], mustReport: damage !== 'delete' };
}

function manifestCase(repo, damage) {
  if (damage === 'add-junk') {
    const id = `junk-${randomBytes(3).toString('hex')}`;
    fs.writeFileSync(path.join(repo, 'backups', id), r.bytes(100 + r.int(3000)));
    return { object: `backups/${id} (junk)`, deps: new Set(), objectNames: [id], mustReport: true };
  }
  const id = r.pick([...inv.manifests.keys()]);
  const d = damageFns[damage](path.join(repo, 'backups', id));
  if (damage === 'delete') {
    // A backup exists exactly when its manifest does: a deleted one is a deleted backup, which
    // nothing can tell from damage. Only containment is checked.
    return { object: `backups/${id} (deleted)`, deps: new Set(), objectNames: [], mustReport: false, skipBackups: new Set([id]) };
  }
  const deps = new Set([...inv.users.keys()].filter((w) => w.startsWith(`${id}: `)));
  return { object: `backups/${id} (${d.what})`, deps, depsByObject: true, objectNames: [`backups/${id}`, id], mustReport: true };
}

/** Config damage: every command must fail with CORRUPT (or NOT_FOUND when it is gone). */
function configCase(repo, damage) {
  const file = path.join(repo, 'config');
  let d;
  if (damage === 'add-junk') {
    fs.appendFileSync(file, r.bytes(1 + r.int(200)));
    d = { what: 'junk appended' };
  } else d = damageFns[damage](file);
  const t = newTarget();
  const other = path.join(work, `other-${randomBytes(3).toString('hex')}`);
  must(L.cairn(['repo', 'init', other]), 'repo init (copy target)');
  const commands = [
    ['backup', 'list', '--repo', repo],
    ['backup', 'show', 'b1', '--repo', repo],
    ['backup', 'create', '--source', `sqlite://${src}`, '--repo', repo, '--id', 'cfg'],
    ['restore', 'b1', '--repo', repo, '--to', `sqlite://${t}`],
    ['verify', '--repo', repo, '--read-data'],
    ['prune', '--repo', repo],
    ['backup', 'delete', 'b2', '--repo', repo],
    ['backup', 'expire', '--repo', repo],
    ['copy', 'b1', '--from', repo, '--to', other],
  ];
  if (hasRepair) commands.push(['repair', '--repo', repo]);
  if (damage === 'delete') commands.push(['repo', 'init', repo]);
  const missed = [];
  for (const args of commands) {
    const res = L.cairn(args);
    const ok = damage === 'delete' ? [3, 4, 6].includes(res.code) : res.code === 6;
    if (!ok) missed.push(`${args.slice(0, 2).join(' ')} exited ${res.code}${res.code === 0 ? ' (proceeded)' : `: ${L.oneLine(res.stderr, 160)}`}`);
  }
  dropTarget(t);
  fs.rmSync(other, { recursive: true, force: true });
  return { object: `config (${d.what})`, missed, uncontained: [], repair: [] };
}

/** Lock damage: a stopped holder's lock is damaged (or junk added); both lock modes must be refused. */
async function lockCase(repo, damage) {
  if (damage === 'delete') return undefined;
  let holder;
  let lockFile;
  let what;
  if (damage === 'add-junk') {
    const id = randomBytes(16).toString('hex');
    lockFile = path.join(repo, 'locks', id);
    fs.mkdirSync(path.dirname(lockFile), { recursive: true });
    fs.writeFileSync(lockFile, r.bytes(10 + r.int(300)));
    what = `locks/${id} (junk)`;
  } else {
    // A live exclusive holder (prune), stopped while it holds its lock.
    for (let attempt = 0; attempt < 8 && !holder; attempt++) {
      const before = new Set(L.listFiles(path.join(repo, 'locks')));
      const { child, done } = L.cairnChild(['prune', '--repo', repo]);
      let exited = false;
      done.then(() => (exited = true));
      let found;
      while (!exited && !found) {
        found = L.listFiles(path.join(repo, 'locks')).find((f) => !f.startsWith('.') && !before.has(f));
        if (!found) await L.sleep(1);
      }
      if (found && !exited) {
        child.kill('SIGSTOP');
        await L.sleep(20);
        if (fs.existsSync(path.join(repo, 'locks', found)) && !exited) {
          holder = { child, done };
          lockFile = path.join(repo, 'locks', found);
          break;
        }
      }
      child.kill('SIGKILL');
      await done;
    }
    if (!holder) return { object: 'lock', missed: ['could not stop a prune while it held its lock (harness)'], uncontained: [], repair: [] };
    const d = damageFns[damage](lockFile);
    what = `locks/${path.basename(lockFile)} of a stopped prune (${d.what})`;
  }
  const missed = [];
  for (const args of [
    ['prune', '--repo', repo],
    ['backup', 'create', '--source', `sqlite://${src}`, '--repo', repo, '--id', `lk-${randomBytes(2).toString('hex')}`],
  ]) {
    const res = L.cairn(args);
    if (res.code !== 5) missed.push(`${args.slice(0, 2).join(' ')} exited ${res.code} (want 5, LOCKED)${res.code ? `: ${L.oneLine(res.stderr, 160)}` : ''}`);
  }
  if (holder) {
    holder.child.kill('SIGKILL');
    await holder.done;
  }
  return { object: what, missed, uncontained: [], repair: [] };
}

// ------------------------------------------------------------------ the campaign

const rows = [];
for (const kind of kinds) {
  for (const damage of damages) {
    const row = { kind, damage, cases: 0, missed: 0, uncontained: 0, repairFailed: 0, repairRun: 0, failures: [] };
    if ((kind === 'lock' && damage === 'delete')) {
      row.note = 'n/a: a deleted lock looks like a released one; the holder finds out at its next refresh';
      rows.push(row);
      continue;
    }
    for (let i = 0; i < opts.perKind; i++) {
      const repo = copyRepo();
      let res;
      try {
        if (kind === 'config') res = configCase(repo, damage);
        else if (kind === 'lock') res = await lockCase(repo, damage);
        else {
          const c = kind === 'pack' ? packCase(repo, damage) : kind === 'index' ? indexCase(repo, damage) : manifestCase(repo, damage);
          res = { object: c.object, ...checkDataCase(repo, c), deps: [...c.deps] };
          if (doRepair && hasRepair) row.repairRun++;
        }
      } catch (err) {
        res = { object: '?', missed: [`harness error: ${L.oneLine(err.stack ?? err.message)}`], uncontained: [], repair: [] };
      }
      if (!res) continue;
      row.cases++;
      if (res.missed.length) row.missed++;
      if (res.uncontained.length) row.uncontained++;
      if (res.repair.length) row.repairFailed++;
      const problems = [...res.missed.map((m) => `missed: ${m}`), ...res.uncontained.map((m) => `uncontained: ${m}`), ...res.repair.map((m) => `repair: ${m}`)];
      if (problems.length) row.failures.push({ case: i, object: res.object, dependents: res.deps, problems });
      log(`${kind} ${damage} #${i} ${res.object}${res.deps ? ` [${res.deps.length} dependent]` : ''}: ${problems.length ? problems.map((p) => p.slice(0, 200)).join(' | ') : 'ok'}`);
      if (!opts.keep) fs.rmSync(repo, { recursive: true, force: true });
    }
    rows.push(row);
  }
}

const totals = rows.reduce((t, x) => ({ cases: t.cases + x.cases, missed: t.missed + x.missed, uncontained: t.uncontained + x.uncontained, repairFailed: t.repairFailed + x.repairFailed }), {
  cases: 0,
  missed: 0,
  uncontained: 0,
  repairFailed: 0,
});
const summary = {
  campaign: 'damage',
  commit: L.gitCommit(),
  seed: opts.seed,
  perKind: opts.perKind,
  repair: doRepair ? (hasRepair ? 'run' : 'not in this build: not run') : 'disabled',
  date: new Date().toISOString(),
  seconds: Math.round((Date.now() - started) / 1000),
  repository: { backups: inv.manifests.size, packs: inv.packs.size, indexDocuments: inv.indexDocs.length, collections: inv.users.size },
  rows,
  totals,
};
const write = opts.json ? (s) => process.stderr.write(`${s}\n`) : (s) => process.stdout.write(`${s}\n`);
write(`\ndamage campaign, commit ${summary.commit}, seed ${opts.seed}, ${summary.seconds} s; repair: ${summary.repair}`);
const repairCell = (x) => (doRepair && hasRepair && ['pack', 'index', 'manifest'].includes(x.kind) ? x.repairFailed : 'not run');
L.printTable(
  ['kind', 'damage', 'cases', 'missed', 'uncontained', 'repair failed'],
  rows.map((x) => [x.kind, x.damage, x.note ? 'n/a' : x.cases, x.missed, x.uncontained, repairCell(x)]).concat([['total', '', totals.cases, totals.missed, totals.uncontained, doRepair && hasRepair ? totals.repairFailed : 'not run']]),
  write,
);
const notes = rows.filter((x) => x.note);
for (const n of notes) write(`${n.kind} ${n.damage}: ${n.note}`);
if (rows.some((x) => x.failures.length)) {
  write('\nfailures:');
  for (const x of rows) for (const f of x.failures) write(`- ${x.kind} ${x.damage} #${f.case} ${f.object}: ${f.problems.join(' | ')}`);
}
if (opts.out) fs.writeFileSync(opts.out, `${JSON.stringify(summary, null, 2)}\n`);
if (opts.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
if (!opts.keep) fs.rmSync(work, { recursive: true, force: true });
else log(`work folder kept: ${work}`);
process.exitCode = totals.missed + totals.uncontained + (doRepair && hasRepair ? totals.repairFailed : 0) > 0 ? 1 : 0;
