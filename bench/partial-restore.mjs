// Issue 22 (a): what a restore reads from storage. A SQLite database with --big-tables tables of
// --big-mb MB each (t1, t2, …: random, incompressible bytes) and one table `t2_small` of --small-kb KB
// (stored between t2 and t3), backed
// up into a file-system repository with --pack-mib packs. Then, through a storage wrapper that
// counts the bytes each get / getRange returns:
//   partial   cairn restore --include t2_small into a new file: bytes read under data/ (packs) and
//             elsewhere (config, manifest, index documents, locks), beside the small table's
//             stored bytes (its chunks' lengths in the index) and the goal (≤ 2 × stored)
//   full      the whole backup into a new file, --runs times: median wall time and bytes read
//   --compare DIR   also restore the whole backup with the build in DIR (e.g. a copy of main's
//             dist/), alternating with this build run by run, on the same repository: on a
//             shared machine only alternating runs compare fairly
//
//   node bench/partial-restore.mjs [--big-tables 3] [--big-mb 64] [--small-kb 200] [--pack-mib 16]
//                                  [--runs 3] [--dist DIR] [--compare DIR] [--json FILE]   (needs the build)
//
// --dist points at another build (e.g. a copy of main's dist/) to measure before / after.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { log, median, option } from './measure.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const argv = process.argv.slice(2);
const opt = (name, dflt) => option(name, dflt, argv);
const bigTables = Number(opt('big-tables', '3'));
const bigMb = Number(opt('big-mb', '64'));
const smallKb = Number(opt('small-kb', '200'));
const packMib = Number(opt('pack-mib', '16'));
const runs = Number(opt('runs', '3'));
const distDir = path.resolve(opt('dist', path.join(root, 'dist')));
const jsonOut = opt('json', undefined);
const compareDir = opt('compare', undefined);

const dist = (p) => import(path.join(distDir, p));
const { Repository } = await dist('repo/repository.js');
const { FileSystemStorage } = await dist('storage/fs.js');
const { StorageMiddleware } = await dist('storage/middleware/wrapper.js');
const { ChunkIndex } = await dist('repo/chunk-index.js');
const { runBackup } = await dist('jobs/backup.js');
const { runRestore } = await dist('jobs/restore.js');
const { openSource, openTarget } = await dist('sources/index.js');
const { default: Database } = await dist('sources/sqlite/driver.js');

/** Bytes returned by get / getRange, per top-level folder of the key ("data", "index", …). */
class Counting extends StorageMiddleware {
  bytes = new Map();
  calls = 0;
  async around(call, run) {
    const result = await run();
    if (call.op === 'get' || call.op === 'getRange') {
      const folder = call.key.split('/')[0];
      this.bytes.set(folder, (this.bytes.get(folder) ?? 0) + result.length);
      if (folder === 'data') this.calls++;
    }
    return result;
  }
  reset() {
    this.bytes = new Map();
    this.calls = 0;
  }
  get data() {
    return this.bytes.get('data') ?? 0;
  }
  get fixed() {
    return [...this.bytes].filter(([k]) => k !== 'data').reduce((n, [, v]) => n + v, 0);
  }
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-bench-partial-'));
try {
  const db = path.join(work, 'src.db');
  const d = new Database(db);
  const rowBytes = 8192;
  for (let t = 1; t <= bigTables; t++) {
    d.exec(`CREATE TABLE t${t} (id INTEGER PRIMARY KEY, v BLOB)`);
    d.exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${Math.round((bigMb * 1e6) / rowBytes)}) INSERT INTO t${t} SELECT i, randomblob(${rowBytes}) FROM n`);
  }
  d.exec('CREATE TABLE t2_small (id INTEGER PRIMARY KEY, v BLOB)');
  d.exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${Math.round((smallKb * 1e3) / 1000)}) INSERT INTO t2_small SELECT i, randomblob(1000) FROM n`);
  d.close();
  log(`database ${(fs.statSync(db).size / 1e6).toFixed(1)} MB (${bigTables} × ${bigMb} MB + ${smallKb} KB), packs ${packMib} MiB, build ${distDir}`);

  const storage = new FileSystemStorage(path.join(work, 'repo'));
  const init = await Repository.init(storage, { packSize: packMib * 1024 * 1024 });
  await runBackup({ repo: init, source: openSource(`sqlite://${db}`), id: 'b' });
  const counting = new Counting(storage);
  const repo = await Repository.open(counting);
  const manifest = await repo.readManifest('b');
  const { chunks } = await ChunkIndex.load(storage);
  const smallEntry = manifest.collections.find((c) => c.name === 't2_small');
  const stored = smallEntry.chunks.reduce((n, id) => n + chunks.get(id).length, 0);

  counting.reset();
  await runRestore({ repo, backupId: 'b', target: openTarget(`sqlite://${path.join(work, 'partial.db')}`), selection: { include: ['t2_small'] } });
  const partial = { dataBytes: counting.data, dataReads: counting.calls, fixedBytes: counting.fixed, fixed: Object.fromEntries([...counting.bytes].filter(([k]) => k !== 'data')), storedBytes: stored, goalBytes: 2 * stored };
  log(`partial: ${partial.dataBytes} B from packs in ${partial.dataReads} reads + ${partial.fixedBytes} B fixed (${JSON.stringify(partial.fixed)}); small table stored ${stored} B; goal ≤ ${2 * stored} B: ${partial.dataBytes <= 2 * stored ? 'met' : 'MISSED'}`);

  // Each build restores through its own modules (and its own wrapper class) from the same files.
  const builds = [{ name: 'this', dir: distDir, repo, counting, runRestore, openTarget }];
  if (compareDir) {
    const other = (p) => import(path.join(path.resolve(compareDir), p));
    const { StorageMiddleware: OtherMiddleware } = await other('storage/middleware/wrapper.js');
    const OtherCounting = class extends OtherMiddleware {};
    for (const k of ['around', 'reset']) OtherCounting.prototype[k] = Counting.prototype[k];
    for (const k of ['data', 'fixed']) Object.defineProperty(OtherCounting.prototype, k, Object.getOwnPropertyDescriptor(Counting.prototype, k));
    const otherCounting = new OtherCounting(new (await other('storage/fs.js')).FileSystemStorage(path.join(work, 'repo')));
    otherCounting.reset();
    builds.push({
      name: 'compare',
      dir: path.resolve(compareDir),
      repo: await (await other('repo/repository.js')).Repository.open(otherCounting),
      counting: otherCounting,
      runRestore: (await other('jobs/restore.js')).runRestore,
      openTarget: (await other('sources/index.js')).openTarget,
    });
  }
  const full = {};
  for (const b of builds) full[b.name] = { dist: b.dir, runs: [] };
  for (let r = 0; r < runs; r++) {
    for (const b of builds) {
      b.counting.reset();
      const to = path.join(work, `full-${b.name}-${r}.db`);
      const t0 = performance.now();
      await b.runRestore({ repo: b.repo, backupId: 'b', target: b.openTarget(`sqlite://${to}`) });
      full[b.name].runs.push((performance.now() - t0) / 1000);
      Object.assign(full[b.name], { dataBytes: b.counting.data, dataReads: b.counting.calls });
      fs.rmSync(to, { force: true });
    }
  }
  for (const [name, f] of Object.entries(full)) {
    f.wallSeconds = median(f.runs);
    log(`full (${name}: ${f.dist}): median ${f.wallSeconds.toFixed(2)} s of ${runs} (${f.runs.map((t) => t.toFixed(2)).join(', ')}), ${f.dataBytes} B from packs in ${f.dataReads} reads`);
  }
  const result = { bigTables, bigMb, smallKb, packMib, dist: distDir, partial, full };
  if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify(result, null, 2));
  else console.log(JSON.stringify(result));
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
