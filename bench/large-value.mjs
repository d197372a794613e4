// Set v (issue 22): memory of one large value. A SQLite database holding one row with a BLOB of
// --mib MiB (default 120, random bytes: incompressible), and one holding a TEXT of --mib MiB
// (hex digits), each backed up into a fresh repository and restored into a new file, under
// /usr/bin/time; the restored value is checked byte for byte (SHA-256) before a run counts.
//
//   node bench/large-value.mjs [--mib N] [--runs N] [--json FILE]   (needs the build: npm run build)
//
// Reports wall time and peak RSS (medians of --runs, default 1) on stderr and the result as JSON
// (stdout, or --json FILE). Goal: peak RSS ≤ 256 MiB for backup and restore of a 120 MiB value.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { log, measurer, median, option, rm } from './measure.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const argv = process.argv.slice(2);
const opt = (name, dflt) => option(name, dflt, argv);
const sizeMiB = Number(opt('mib', '120'));
const runs = Math.max(1, Number(opt('runs', '1')));
const jsonOut = opt('json', undefined);
const cairnBin = path.join(root, 'bin', 'cairn.js');
const { default: Database } = await import(path.join(root, 'dist', 'sources/sqlite/driver.js'));

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-bench-large-value-'));
const { timed } = measurer({ workDir: () => work, serverCpu: () => null });
const cairn = (args) => timed(process.execPath, [cairnBin, ...args]);

/** SHA-256 of each row's value, read in the bench's process (its memory is not measured). */
function digests(file) {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT id, typeof(v), v FROM t ORDER BY id').raw(true).all().map(([id, type, v]) => `${id}:${type}:${createHash('sha256').update(v).digest('hex')}`);
  } finally {
    db.close();
  }
}

const kinds = {
  blob: `randomblob(${sizeMiB} * 1024 * 1024)`,
  text: `hex(randomblob(${sizeMiB} * 512 * 1024))`,
};

const result = { value_mib: sizeMiB, runs, goal_peak_rss_mib: 256 };
try {
  for (const [kind, expr] of Object.entries(kinds)) {
    const src = path.join(work, `${kind}.db`);
    const db = new Database(src);
    db.exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, v ${kind.toUpperCase()}); INSERT INTO t VALUES (1, ${expr});`);
    db.close();
    const expected = digests(src);
    const backups = [];
    const restores = [];
    for (let i = 0; i < runs; i++) {
      const repo = path.join(work, `repo-${kind}`);
      rm(repo);
      const init = spawnSync(process.execPath, [cairnBin, 'repo', 'init', repo], { encoding: 'utf8' });
      if (init.status !== 0) throw new Error(`cairn repo init failed: ${init.stderr}`);
      log(`[v] ${kind} ${sizeMiB} MiB: backup ${i + 1}/${runs}`);
      backups.push(cairn(['backup', 'create', '--source', `sqlite://${src}`, '--repo', repo, '--id', 'v', '--json']));
      const to = path.join(work, `${kind}-restored.db`);
      rm(to);
      log(`[v] ${kind} ${sizeMiB} MiB: restore ${i + 1}/${runs}`);
      restores.push(cairn(['restore', 'v', '--repo', repo, '--to', `sqlite://${to}`, '--json']));
      const got = digests(to);
      if (JSON.stringify(got) !== JSON.stringify(expected)) throw new Error(`the restored ${kind} differs from the source: ${got} against ${expected}`);
      rm(to);
      rm(repo);
    }
    const summary = (xs) => ({ wall_s: median(xs.map((x) => x.wall)), cpu_s: median(xs.map((x) => x.cpu)), peak_rss_mib: median(xs.map((x) => x.rssMiB)), samples: xs.map((x) => ({ wall_s: x.wall, peak_rss_mib: x.rssMiB })) });
    result[kind] = { backup: summary(backups), restore: summary(restores) };
    rm(src);
  }
} finally {
  rm(work);
}

for (const kind of Object.keys(kinds)) {
  for (const job of ['backup', 'restore']) {
    const s = result[kind][job];
    log(`[v] ${kind} ${sizeMiB} MiB ${job}: ${s.wall_s.toFixed(2)} s, peak RSS ${s.peak_rss_mib.toFixed(0)} MiB (goal ≤ 256)`);
  }
}
const json = JSON.stringify(result, null, 2) + '\n';
if (jsonOut) fs.writeFileSync(jsonOut, json);
else process.stdout.write(json);
