// Measurement helpers shared by the PostgreSQL bench (run.js) and the MySQL bench (mysql.mjs):
// timing a command under /usr/bin/time, server CPU from /proc, alternating runs, medians.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

export const MiB = 1024 * 1024;
export const log = (...a) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}]`, ...a);

const clkTck = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;

/** /proc/<pid>/stat fields we use (CPU in clock ticks), or null when the process is gone. */
export function procStat(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
    return { ppid: Number(f[1]), utime: Number(f[11]), stime: Number(f[12]), cutime: Number(f[13]), cstime: Number(f[14]) };
  } catch {
    return null;
  }
}
export const ticksToSeconds = (ticks) => ticks / clkTck;
export function procComm(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/**
 * A measurer bound to a scratch directory (for /usr/bin/time's output) and a function giving the
 * database server's CPU seconds so far (or null when it cannot be read).
 *
 * timed(cmd, args, {env}) runs cmd under /usr/bin/time and returns {wall, cpu, user, sys, rssMiB,
 * serverCpu, stdout} (seconds, MiB; rssMiB is the peak RSS of the largest process of the job);
 * it throws when the command exits non-zero.
 */
export function measurer({ workDir, serverCpu }) {
  function timed(cmd, args, { env } = {}) {
    const tf = path.join(workDir(), 'time.out');
    const s0 = serverCpu();
    const t0 = performance.now();
    const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S %M', '-o', tf, cmd, ...args], {
      encoding: 'utf8',
      maxBuffer: 1024 * MiB,
      env: { ...process.env, ...env },
    });
    const wall = (performance.now() - t0) / 1000;
    const s1 = serverCpu();
    if (r.status !== 0) {
      throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status}: ${(r.stderr || '').trim().slice(-2000)}`);
    }
    const last = fs.readFileSync(tf, 'utf8').trim().split('\n').pop().split(' ').map(Number);
    return {
      wall,
      cpu: last[1] + last[2],
      user: last[1],
      sys: last[2],
      rssMiB: last[3] / 1024,
      serverCpu: s0 == null || s1 == null ? null : s1 - s0,
      stdout: r.stdout,
    };
  }
  return { timed };
}

export const sh = (script) => ['sh', ['-c', script]];
/** A bash pipeline with pipefail (a failing first stage fails the job), `args` as $1, $2, …: no quoting. */
export const pipeline = (script, ...args) => ['bash', ['-c', `set -o pipefail; ${script}`, 'bash', ...args]];

/**
 * Makes sure the commands `commands` exist, installing Debian's package `pkg` with apt-get when
 * one is missing (as root; apt-get update once if the first install fails). Returns null when
 * they are there, else a sentence saying why not and what to do.
 */
export function ensureDebianPackage(pkg, commands) {
  const present = () => spawnSync('sh', ['-c', commands.map((c) => `command -v ${c}`).join(' && ')], { encoding: 'utf8' }).status === 0;
  if (present()) return null;
  if (spawnSync('sh', ['-c', 'command -v apt-get'], { encoding: 'utf8' }).status !== 0) return `${commands.join('/')} not installed and there is no apt-get to install it: install ${pkg}`;
  if (process.getuid?.() !== 0) return `${commands.join('/')} not installed and installing it needs root: run \`sudo apt-get install ${pkg}\``;
  log(`installing ${pkg} (apt-get install ${pkg})`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => spawnSync('apt-get', ['install', '-y', '-q', '--no-install-recommends', pkg], { encoding: 'utf8', env }).status === 0;
  if (!install()) {
    spawnSync('apt-get', ['update', '-q'], { encoding: 'utf8', env });
    install();
  }
  return present() ? null : `${commands.join('/')} not installed and \`apt-get install ${pkg}\` failed (no network or no such package?): install it yourself`;
}

export function dirBytes(p) {
  let total = 0;
  const st = fs.statSync(p, { throwIfNoEntry: false });
  if (!st) return 0;
  if (!st.isDirectory()) return st.size;
  for (const e of fs.readdirSync(p)) total += dirBytes(path.join(p, e));
  return total;
}
export const rm = (p) => fs.rmSync(p, { recursive: true, force: true });
/** The value after `--name` on the command line (a string), else `dflt`: the bench scripts' one option reader. */
export const option = (name, dflt, argv = process.argv.slice(2)) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
};

export const median = (xs) => {
  const v = xs.filter((x) => x != null && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};
export const ratio = (a, b) => (a == null || b == null || b === 0 ? null : a / b);

/** Summary of the samples of one tool in one measurement. */
export function summarize(samples) {
  return {
    runs: samples.length,
    wall_s: median(samples.map((s) => s.wall)),
    cpu_s: median(samples.map((s) => s.cpu)),
    server_cpu_s: median(samples.map((s) => s.serverCpu)),
    peak_rss_mib: samples.length ? Math.max(...samples.map((s) => s.rssMiB)) : null,
    output_bytes: median(samples.map((s) => s.bytes)),
    new_bytes: median(samples.map((s) => s.newBytes)),
    samples: samples.map((s) => Object.fromEntries(Object.entries(s).filter(([k]) => k !== 'stdout'))),
  };
}

/**
 * Runs every tool of `tools` (name -> function(run) returning a sample) alternately `n` times,
 * rotating the order, and returns name -> summary. A tool that fails is recorded with its error
 * and not run again.
 */
export function alternate(title, tools, { n, rotate = true }) {
  const names = Object.keys(tools);
  const samples = Object.fromEntries(names.map((k) => [k, []]));
  const errors = {};
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < names.length; j++) {
      const name = names[rotate ? (i + j) % names.length : j];
      if (errors[name]) continue;
      try {
        const s = tools[name](i);
        samples[name].push(s);
        log(`${title} / ${name} run ${i + 1}: ${s.wall.toFixed(2)} s wall, ${s.cpu.toFixed(2)} s cpu, ${s.rssMiB.toFixed(0)} MiB rss` + (s.bytes != null ? `, ${(s.bytes / MiB).toFixed(1)} MiB out` : '') + (s.newBytes != null ? `, ${(s.newBytes / MiB).toFixed(2)} MiB new` : ''));
      } catch (err) {
        errors[name] = String(err.message || err).slice(0, 1500);
        log(`${title} / ${name} FAILED: ${errors[name]}`);
      }
    }
  }
  return Object.fromEntries(names.map((k) => [k, errors[k] ? { error: errors[k], ...summarize(samples[k]) } : summarize(samples[k])]));
}

export const fmt = (x, d = 2) => (x == null ? '–' : Number(x).toFixed(d));
export const mib = (b) => (b == null ? '–' : (b / MiB).toFixed(1));

/**
 * Writes a run's result as bench/results/<stamp><suffix>.json and into bench/results/latest.json:
 * `key` null replaces latest.json's top level (the PostgreSQL results) but keeps its `mysql`
 * key; a key ("mysql") replaces only that key. Returns the stamped file's name.
 */
export function writeResults(dir, started, result, { key = null, suffix = '' } = {}) {
  fs.mkdirSync(dir, { recursive: true });
  const stamp = started.toISOString().replace(/[:.]/g, '-') + suffix;
  fs.writeFileSync(path.join(dir, `${stamp}.json`), JSON.stringify(result, null, 2) + '\n');
  const latestFile = path.join(dir, 'latest.json');
  let latest = {};
  try {
    latest = JSON.parse(fs.readFileSync(latestFile, 'utf8'));
  } catch {
    latest = {};
  }
  const merged = key ? { ...latest, [key]: result } : { ...result, ...(latest.mysql ? { mysql: latest.mysql } : {}) };
  fs.writeFileSync(latestFile, JSON.stringify(merged, null, 2) + '\n');
  return `${stamp}.json`;
}

/**
 * A bench run's scratch databases, named `<prefix><label>` (prefix default `bench_tmp_<pid>_`)
 * and dropped by cleanup(), which also runs `onCleanup` (e.g. remove the work folder) and runs on
 * Ctrl-C before exiting 130: an interrupted run leaves nothing on the server. `dropDb(name)`
 * drops one database (the engine's own command).
 */
export function scratchDatabases({ dropDb, prefix = `bench_tmp_${process.pid}_`, onCleanup = () => {} }) {
  const made = new Set();
  const cleanup = () => {
    for (const db of [...made]) {
      try {
        dropDb(db);
      } catch (err) {
        log(`could not drop ${db}: ${err.message}`);
      }
    }
    made.clear();
    onCleanup();
  };
  process.on('SIGINT', () => {
    log('interrupted: cleaning up');
    cleanup();
    process.exit(130);
  });
  return {
    name(label) {
      const db = `${prefix}${label}`;
      made.add(db);
      return db;
    },
    drop(db) {
      dropDb(db);
      made.delete(db);
    },
    cleanup,
  };
}
