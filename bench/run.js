#!/usr/bin/env node
// `npm run bench`: cairn against pg_dump / pg_restore on the local PostgreSQL (issue 4).
//
//   node bench/run.js [--quick] [--scale-mib N] [--tables N] [--only a,b,c,e,l,p,s,u,v] [--runs N]
//                     [--jobs N] [--recreate] [--workdir DIR] [--pg URL] [--keep-work]
//   node bench/run.js --scaling [--scale-points 0.1,1,4] [--chart FILE] [--runs N]
//                     the scaling curve (set b at each size in GiB; default points 0.1,1,4):
//                     cairn backup / restore time and peak RSS, pg_dump -Fd -jN time; an SVG
//                     chart into --chart (default docs/performance-scaling.svg). Only the curve
//                     runs unless --only names sets too (--only b,scaling); off by default: 4 GiB
//                     takes long. --scale-points alone implies --scaling.
//   node bench/run.js --chart-from bench/results/<file>.json [--chart FILE]
//                     redraw the scaling chart from a run's results (measures nothing)
//   node bench/run.js --raise-lock-limit ...   first raise max_locks_per_transaction for set c
//                     (ALTER SYSTEM + pg_ctlcluster restart of a local Debian cluster)
//   node bench/run.js --engine mysql [...]   cairn against mysqldump | gzip and mydumper/myloader on
//                     the local MariaDB/MySQL (bench/mysql.mjs; --engine mysql --help for its options)
//   node bench/run.js --split ...    the local server pinned to CPU 0 and the measured tools (cairn,
//                     pg_dump, psql: every child of the bench) to CPU 1 (taskset), so that client and
//                     server do not compete for the same core; affinities are restored at the end
//   node bench/run.js --cleanup      drop the reusable data sets (bench_a_*, bench_b_*, bench_c_*,
//                                    and <workdir>/cairn-bench-sets: set s)
//   node bench/run.js --libs [...]   the library measurements (bench/libs.mjs)
//   node bench/run.js --upload [--gib N] [--pack-mib 16,128]   memory while a multi-GiB stream
//                                    uploads to S3 (s3rver; bench/upload.mjs)
//
// Data sets (created once, reused while their marker comment matches; --recreate forces):
//   a  bench_a_<mib>  pgbench tables, ~<mib> MiB (default 1024, --quick 100): very compressible
//   b  bench_b_<mib>  mixed types (random-word text, numerics, timestamps, jsonb, bytea, uuid);
//                     customers / products / orders / events (events is the large one)
//                     with restic as a third peer: pg_dump -Fc | restic backup --stdin into a
//                     local restic repository (full, unchanged and +2 % second backups, restore
//                     through restic dump | pg_restore, one stream); restic installed with apt
//                     when missing (skipped with the reason when it cannot be)
//   c  bench_c_<n>    <n> small tables (default 10000, --quick 1000) of 10 rows each
//   s  <workdir>/cairn-bench-sets/bench_s_<mib>.sqlite  a SQLite file of ~<mib> MiB (default 1024,
//                     --quick 100; `--only s`): cairn against sqlite3 .backup + zstd -3,
//                     sqlite3 VACUUM INTO + zstd -3 and restic backup <file>; restore
//                     (zstd -d + rename; restic restore); a second backup after a small change
//   e  (set b's database) cairn into a plain and an encrypted repository (`--only e`, issue 18):
//                     full backup and restore, alternating; the KDF (scrypt N=2^17) runs in each
//                     encrypted command, as it would for a user
//   l  (no database) `cairn server`'s backup listing with 10,000 backups (`--only l`, issue 19;
//                     bench/listing.mjs): first page (limit=50, newest first) with the summary
//                     cache cold and warm, against the full listing; median of --runs (default 5)
//   u  (no database) start-up (`--only u`, issue 22): `cairn --version` and a backup of a one-row
//                     SQLite file into a local repository, each run alone --runs times (default 10),
//                     median wall and CPU; goals 0.15 s and 0.4 s wall; part of every default run
//   v  (SQLite)       one row holding a 120 MiB BLOB, and one a 120 MiB TEXT (`--only v`, issue 22;
//                     bench/large-value.mjs): peak RSS of backup and restore, goal ≤ 256 MiB
//   p  (no database)  prune of a repository with 1,000 backups and 100,000 packs (`--only p`,
//                     issue 22; bench/prune-scale.mjs): wall time and peak RSS, goals ≤ 600 s, ≤ 256 MiB
// Every measurement runs the tools alternately (the order rotates each run) --runs times
// (default 3) and reports the median wall time, client CPU (user+sys of the process and its
// children, from /usr/bin/time), PostgreSQL server CPU (the postmaster and its children, from
// /proc, when the server is local), peak RSS of the largest process and output bytes.
// Absolute seconds mean little on a shared machine; the ratios of tools run back to back do.
// Results: a markdown table on stdout, JSON in bench/results/<timestamp>.json and latest.json.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { lineChartsSvg } from './chart.mjs';
import { MiB, alternate as alternateRuns, dirBytes, median, option, fmt, log, measurer, mib, pipeline, procComm, procStat, ratio, rm, scratchDatabases, sh, ticksToSeconds, writeResults } from './measure.mjs';
import { ensureSqliteSet, restic as resticTool, resticProblem, sqliteChangeSql, sqliteCount } from './peers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const argv = process.argv.slice(2);

if (argv.includes('--engine')) {
  const engine = argv[argv.indexOf('--engine') + 1];
  const rest = argv.filter((a, i) => a !== '--engine' && argv[i - 1] !== '--engine');
  if (engine === 'mysql' || engine === 'mariadb') {
    const r = spawnSync(process.execPath, [path.join(here, 'mysql.mjs'), ...rest], { stdio: 'inherit' });
    process.exit(r.status ?? 1);
  }
  if (engine !== 'postgres') {
    console.error(`--engine ${engine ?? ''}: write --engine postgres (the default) or --engine mysql`);
    process.exit(2);
  }
  argv.splice(0, argv.length, ...rest);
}
if (argv.includes('--upload')) {
  const script = path.join(here, 'upload.mjs');
  const r = spawnSync(process.execPath, [script, ...argv.filter((a) => a !== '--upload')], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
if (argv.includes('--libs')) {
  const script = path.join(here, 'libs.mjs');
  const r = spawnSync(process.execPath, [script, ...argv.filter((a) => a !== '--libs')], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

// ---------------------------------------------------------------------------------------------
// options
const has = (name) => argv.includes(`--${name}`);
const opt = (name, dflt) => option(name, dflt, argv);
const known = new Set(['chart-from', 'raise-lock-limit', 'split', 'quick', 'scale-mib', 'tables', 'only', 'runs', 'jobs', 'recreate', 'workdir', 'pg', 'keep-work', 'cleanup', 'help', 'scaling', 'scale-points', 'chart']);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (!a.startsWith('--')) continue;
  if (!known.has(a.slice(2))) {
    console.error(`unknown option ${a}`);
    process.exit(2);
  }
}
if (has('help')) {
  const text = fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1);
  console.log(text.slice(0, text.findIndex((l) => !l.startsWith('//'))).map((l) => l.slice(3)).join('\n'));
  process.exit(0);
}
const quick = has('quick');
const scaleMiB = Number(opt('scale-mib', quick ? 100 : 1024));
const tableCount = Number(opt('tables', quick ? 1000 : 10000));
const scaling = has('scaling') || has('scale-points');
const only = new Set(opt('only', scaling ? 'scaling' : 'a,b,c,u').split(',').map((s) => s.trim()).filter(Boolean));
if (scaling) only.add('scaling');
for (const k of only) {
  if (!['a', 'b', 'c', 'e', 'l', 'p', 's', 'u', 'v', 'scaling'].includes(k)) {
    console.error(`--only: unknown set ${k}; write a comma-separated list of a, b, c, e, l, p, s, u, v, scaling`);
    process.exit(2);
  }
}
const scalePoints = opt('scale-points', '0.1,1,4').split(',').map((v) => Number(v.trim()));
if (scalePoints.some((v) => !Number.isFinite(v) || v <= 0)) {
  console.error('--scale-points needs sizes in GiB, comma-separated, e.g. 0.1,1,4');
  process.exit(2);
}
const chartFile = path.resolve(opt('chart', path.join(root, 'docs', 'performance-scaling.svg')));
// reusable data sets that are files (set s), beside the runs' scratch folders
const setsDir = path.join(opt('workdir', os.tmpdir()), 'cairn-bench-sets');
const runs = Math.max(1, Number(opt('runs', 3)));
const jobs = Math.max(1, Number(opt('jobs', 2)));
const recreate = has('recreate');
const pgBase = opt('pg', 'postgres://postgres@127.0.0.1:5432').replace(/\/+$/, '');
const keepWork = has('keep-work');
for (const [k, v] of [['scale-mib', scaleMiB], ['tables', tableCount], ['runs', runs], ['jobs', jobs]]) {
  if (!Number.isFinite(v) || v <= 0) {
    console.error(`--${k} needs a positive number`);
    process.exit(2);
  }
}

const cairnBin = path.join(root, 'bin', 'cairn.js');
const dbUrl = (db) => `${pgBase}/${db}`;

// ---------------------------------------------------------------------------------------------
// PostgreSQL helpers (psql; the data sets are generated server-side)
function psql(db, sql, { quiet = false } = {}) {
  const r = spawnSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-At', '-d', dbUrl(db), '-f', '-'], {
    input: sql,
    encoding: 'utf8',
    maxBuffer: 256 * MiB,
  });
  if (r.status !== 0) {
    if (quiet) return null;
    throw new Error(`psql on ${db} failed: ${r.stderr.trim().slice(0, 2000)}`);
  }
  return r.stdout.trim();
}
const lit = (s) => `'${String(s).replace(/'/g, "''")}'`;
const ident = (s) => `"${String(s).replace(/"/g, '""')}"`;
const dbExists = (db) => psql('postgres', `SELECT 1 FROM pg_database WHERE datname = ${lit(db)}`) === '1';
const dbComment = (db) => psql('postgres', `SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = ${lit(db)}`);
const dbSize = (db) => Number(psql('postgres', `SELECT pg_database_size(${lit(db)})`));
function dropDb(db) {
  psql('postgres', `DROP DATABASE IF EXISTS ${ident(db)} WITH (FORCE)`);
}
function createDb(db, marker) {
  dropDb(db);
  psql('postgres', `CREATE DATABASE ${ident(db)} TEMPLATE template0`);
  if (marker) psql('postgres', `COMMENT ON DATABASE ${ident(db)} IS ${lit(marker + ' (incomplete)')}`);
}
const markComplete = (db, marker) => psql('postgres', `COMMENT ON DATABASE ${ident(db)} IS ${lit(marker)}`);

// --cleanup: the reusable data sets and anything a killed run left behind
if (has('cleanup')) {
  const dbs = psql('postgres', `SELECT datname FROM pg_database WHERE datname ~ '^bench_(a|b|c|tmp)_' AND (datname LIKE 'bench_tmp_%' OR shobj_description(oid, 'pg_database') LIKE 'cairn-bench%')`);
  for (const db of dbs ? dbs.split('\n') : []) {
    log(`dropping ${db}`);
    dropDb(db);
  }
  log(`removing ${setsDir}`);
  rm(setsDir);
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// measurement
// The postmaster: a process named postgres whose parent is not named postgres.
const postmasterPid = (() => {
  if (!/(127\.0\.0\.1|localhost|\[::1\])/.test(pgBase)) return null;
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || !/^postgres/.test(procComm(d))) continue;
    const st = procStat(d);
    if (st && !/^postgres/.test(procComm(st.ppid))) return Number(d);
  }
  return null;
})();
/** CPU seconds used so far by the server: the postmaster, its live children and reaped ones. */
function serverCpu() {
  if (!postmasterPid) return null;
  const pm = procStat(postmasterPid);
  if (!pm) return null;
  let ticks = pm.utime + pm.stime + pm.cutime + pm.cstime;
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const st = procStat(d);
    if (st && st.ppid === postmasterPid) ticks += st.utime + st.stime;
  }
  return ticksToSeconds(ticks);
}

/** Pids of the postmaster's live children (backends and auxiliary processes). */
function serverChildren() {
  const out = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const st = procStat(d);
    if (st && st.ppid === postmasterPid) out.push(Number(d));
  }
  return out;
}
/** A process's CPU affinity list ("0,1", "0-3"), or null when it cannot be read. */
function affinity(pid) {
  const r = spawnSync('taskset', ['-c', '-p', String(pid)], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim().split(':').pop().trim() : null;
}
/** Pins every thread of `pid` to `cpus` (taskset -a); false when the process is gone. */
function pin(pid, cpus) {
  return spawnSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' }).status === 0;
}
/**
 * --split: the server (the postmaster and its current children; new backends inherit the
 * postmaster's affinity) on CPU 0, this process, and so every tool it starts, on CPU 1. Restores
 * the previous affinities when the process exits (also after Ctrl-C: scratchDatabases exits).
 * A server restarted meanwhile (--raise-lock-limit) comes back unpinned: pin after it.
 */
function pinSplit() {
  const fail = (why) => {
    console.error(`--split: ${why}`);
    process.exit(2);
  };
  if (!postmasterPid) fail('needs the PostgreSQL server on this machine (its postmaster in /proc)');
  if (os.cpus().length < 2) fail('needs at least 2 CPUs');
  const serverBefore = affinity(postmasterPid);
  const selfBefore = affinity(process.pid);
  if (serverBefore === null || selfBefore === null) fail('needs taskset (util-linux) and the right to change the server\'s affinity (run as root or as the postgres user)');
  if (!pin(postmasterPid, '0')) fail(`could not pin the postmaster (pid ${postmasterPid}) to CPU 0`);
  for (const pid of serverChildren()) pin(pid, '0');
  pin(process.pid, '1');
  process.on('exit', () => {
    pin(postmasterPid, serverBefore);
    for (const pid of serverChildren()) pin(pid, serverBefore);
    pin(process.pid, selfBefore);
  });
  log(`--split: PostgreSQL (postmaster ${postmasterPid} and its children) on CPU 0, the measured tools on CPU 1; restored to ${serverBefore} at the end`);
}

let work; // scratch directory, set in main
const { timed } = measurer({ workDir: () => work, serverCpu });
/** restic's commands (bench/peers.mjs), measured like every tool; bound in main (needs work). */
let restic;
/** Runs the tools alternately --runs times (measure.mjs alternate). */
const alternate = (title, tools, { n = runs, rotate = true } = {}) => alternateRuns(title, tools, { n, rotate });

// ---------------------------------------------------------------------------------------------
// tools
function cairn(args, env) {
  return timed(process.execPath, [cairnBin, ...args], { env });
}
/** The password of set e's encrypted repository, given as a user would (the environment). */
const ENCRYPTED_ENV = { CAIRN_PASSWORD: 'bench password e', CAIRN_NEW_PASSWORD: 'bench password e' };
function cairnInit(repo, { encrypted = false } = {}) {
  rm(repo);
  const r = spawnSync(process.execPath, [cairnBin, 'repo', 'init', repo, ...(encrypted ? ['--encryption'] : [])], {
    encoding: 'utf8',
    env: { ...process.env, ...(encrypted ? ENCRYPTED_ENV : {}) },
  });
  if (r.status !== 0) throw new Error(`cairn repo init failed: ${r.stderr}`);
}
/** A full or incremental backup of database `db` (or of a source URL such as sqlite://…) into `repo`. */
function cairnBackup(db, repo, id, env) {
  const before = dirBytes(repo);
  const s = cairn(['backup', 'create', '--source', db.includes('://') ? db : dbUrl(db), '--repo', repo, '--id', id, '--jobs', String(jobs), '--json'], env);
  const m = JSON.parse(s.stdout);
  s.bytes = dirBytes(repo) - before; // repository growth
  s.newBytes = m.totals.newBytes;
  s.storedBytes = m.totals.storedBytes;
  s.logicalBytes = m.totals.logicalBytes;
  return s;
}
function cairnRestore(repo, id, db, env) {
  dropDb(db);
  const s = cairn(['restore', id, '--repo', repo, '--to', dbUrl(db), '--jobs', String(jobs), '--json'], env);
  return s;
}
function pgDump(db, dir, extra = []) {
  rm(dir);
  const s = timed('pg_dump', ['-Fd', `-j${jobs}`, ...extra, '-f', dir, '-d', dbUrl(db)]);
  s.bytes = dirBytes(dir);
  return s;
}
function pgRestore(dir, db) {
  dropDb(db);
  // createdb is part of the job: cairn creates its target database too.
  const q = (s) => `'${s.replace(/'/g, `'\\''`)}'`;
  return timed(...sh(`psql -X -q -d ${q(dbUrl('postgres'))} -c ${q(`CREATE DATABASE ${ident(db)} TEMPLATE template0`)} && pg_restore -j${jobs} -d ${q(dbUrl(db))} ${q(dir)}`));
}

/** User tables with their main-fork blocks and total size, largest first. */
function tables(db) {
  const out = psql(db, `SELECT format('%I.%I', n.nspname, c.relname), pg_relation_size(c.oid) / 8192, pg_table_size(c.oid)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
    ORDER BY 3 DESC, 1`);
  return out ? out.split('\n').map((l) => {
    const [name, blocks, bytes] = l.split('|');
    return { name, blocks: Number(blocks), bytes: Number(bytes) };
  }) : [];
}

/**
 * The physical bound: COPY … TO STDOUT of every table into /dev/null by `jobs` psql sessions in
 * parallel. Large tables are split into ctid ranges (TID range scans) so that every stream has
 * about the same amount of work, even when one table dominates.
 */
function copyScripts(db, dir) {
  const ts = tables(db);
  const total = ts.reduce((a, t) => a + t.bytes, 0);
  const load = Array(jobs).fill(0);
  const parts = Array.from({ length: jobs }, () => []);
  for (const t of ts) {
    if (jobs > 1 && t.bytes > total / (2 * jobs) && t.blocks >= jobs) {
      const step = Math.ceil(t.blocks / jobs);
      for (let k = 0; k < jobs; k++) {
        const lo = `ctid >= '(${k * step},0)'::tid`;
        const where = k === jobs - 1 ? lo : `${lo} AND ctid < '(${(k + 1) * step},0)'::tid`;
        parts[k].push(`COPY (SELECT * FROM ${t.name} WHERE ${where}) TO STDOUT;`);
        load[k] += t.bytes / jobs;
      }
    } else {
      const k = load.indexOf(Math.min(...load));
      parts[k].push(`COPY ${t.name} TO STDOUT;`);
      load[k] += t.bytes;
    }
  }
  return parts.map((p, k) => {
    const f = path.join(dir, `copy-${k}.sql`);
    fs.writeFileSync(f, `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\n${p.join('\n')}\nCOMMIT;\n`);
    return f;
  });
}
function rawCopy(db, scripts) {
  const q = (s) => `'${s}'`;
  const start = scripts.map((f, k) => `psql -X -q -v ON_ERROR_STOP=1 -d ${q(dbUrl(db))} -f ${q(f)} > /dev/null & p${k}=$!;`).join(' ');
  const wait = scripts.map((_, k) => `wait $p${k} || exit 1;`).join(' ');
  return timed(...sh(`${start} ${wait}`));
}

// ---------------------------------------------------------------------------------------------
// data sets
const VOCAB = (() => {
  // deterministic pseudo-words from syllables (a seeded LCG), 2000 of them
  const syl = ['ka', 'to', 'ri', 'ne', 'sa', 'lo', 'mi', 'du', 'pe', 'ar', 'en', 'ol', 'ti', 'ba', 've', 'ru', 'co', 'da', 'in', 'um', 'st', 'ch', 'or', 'ex'];
  let x = 42;
  const rnd = () => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648);
  const words = new Set();
  while (words.size < 2000) {
    const n = 1 + Math.floor(rnd() * 4);
    let w = '';
    for (let i = 0; i < n; i++) w += syl[Math.floor(rnd() * syl.length)];
    words.add(w);
  }
  return [...words];
})();
const vocabCte = `WITH v AS (SELECT ARRAY[${VOCAB.map((w) => `'${w}'`).join(',')}]::text[] AS w)`;
// skewed word choice (frequent words are frequent, as in real text)
const word = `v.w[1 + floor(random() ^ 3 * ${VOCAB.length})::int]`;
const words = (n) => `array_to_string(ARRAY(SELECT ${word} FROM generate_series(1, ${n})), ' ')`;

const eventsInsert = (lo, hi, customers) => `${vocabCte}
INSERT INTO events (id, created_at, customer_id, kind, amount, payload, note, blob)
SELECT g, timestamptz '2023-01-01 00:00:00+00' + g * interval '3 seconds' + random() * interval '2 seconds',
  1 + floor(random() * ${customers})::int,
  (ARRAY['view','click','search','add_to_cart','purchase','login','logout','refund'])[1 + floor(random() ^ 2 * 8)::int],
  round((random() * 500)::numeric, 2),
  jsonb_build_object('ua', ${word} || '/' || floor(random() * 20)::int, 'ip', '10.' || floor(random() * 255)::int || '.' || floor(random() * 255)::int || '.' || (g % 255),
    'ok', random() < 0.95, 'ms', floor(random() * 900)::int, 'tags', jsonb_build_array(${word}, ${word})),
  ${words('2 + (g % 19)')},
  CASE WHEN g % 5 = 0 THEN decode(md5(g::text || random()::text) || md5(random()::text), 'hex') END
FROM v, generate_series(${lo}, ${hi}) g;`;

function createSetB(db, mib, marker) {
  createDb(db, marker);
  psql(db, `
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL, country char(2), created_at timestamptz NOT NULL,
  balance numeric(12,2), bio text, prefs jsonb);
CREATE TABLE products (id int PRIMARY KEY, sku text UNIQUE NOT NULL, title text, price numeric(10,2), stock int, attrs jsonb, updated_at timestamptz);
CREATE TABLE orders (id bigint PRIMARY KEY, uid uuid NOT NULL, customer_id int NOT NULL, ordered_at timestamptz NOT NULL, status text NOT NULL,
  total numeric(12,2), items jsonb, shipping_address text);
CREATE TABLE events (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, customer_id int, kind text, amount numeric(12,2),
  payload jsonb, note text, blob bytea);
${vocabCte}
INSERT INTO products SELECT g, 'SKU-' || lpad(g::text, 6, '0'), initcap(${words('2 + g % 4')}), round((1 + random() * 300)::numeric, 2),
  floor(random() * 1000)::int, jsonb_build_object('color', ${word}, 'size', (ARRAY['S','M','L','XL'])[1 + g % 4], 'weight_g', floor(random() * 5000)::int),
  now() - random() * interval '400 days'
FROM v, generate_series(1, 5000) g;`);
  // Batches of ~1/10 of the target until the database reaches it: customers ~8%, orders ~20%,
  // events the rest (bytes per row measured on the first batch).
  const target = mib * MiB;
  let c = 0;
  let o = 0;
  let e = 0;
  let perRow = 350; // bytes per event row incl. indexes, refined after the first batch
  for (let batch = 0; dbSize(db) < target && batch < 1000; batch++) {
    const remaining = target - dbSize(db);
    const slice = Math.min(remaining, target / 10);
    const nc = Math.max(100, Math.round((slice * 0.08) / (perRow * 1.2)));
    const no = Math.max(100, Math.round((slice * 0.2) / (perRow * 1.3)));
    const ne = Math.max(1000, Math.round((slice * 0.72) / perRow));
    const before = dbSize(db);
    psql(db, `${vocabCte}
INSERT INTO customers SELECT g, initcap(${word}) || ' ' || initcap(${word}), ${word} || '.' || g || '@' || ${word} || '.example',
  (ARRAY['DE','FR','US','GB','NL','PL','ES','IT','SE','JP'])[1 + floor(random() ^ 2 * 10)::int],
  timestamptz '2020-01-01 00:00:00+00' + g * interval '17 minutes', round((random() * 10000 - 2000)::numeric, 2),
  CASE WHEN g % 3 = 0 THEN ${words('5 + g % 30')} END,
  jsonb_build_object('newsletter', random() < 0.3, 'lang', (ARRAY['en','de','fr'])[1 + g % 3], 'theme', ${word})
FROM v, generate_series(${c + 1}, ${c + nc}) g;
${vocabCte}
INSERT INTO orders SELECT g, gen_random_uuid(), 1 + floor(random() * ${c + nc})::int, timestamptz '2022-01-01 00:00:00+00' + g * interval '41 seconds',
  (ARRAY['new','paid','shipped','delivered','cancelled'])[1 + floor(random() ^ 2 * 5)::int], round((random() * 900)::numeric, 2),
  (SELECT jsonb_agg(jsonb_build_object('line', s.i, 'product', 1 + floor(random() * 5000)::int, 'qty', 1 + floor(random() * 4)::int))
     FROM generate_series(1, 1 + g % 4) s(i)),
  floor(random() * 300)::int || ' ' || initcap(${word}) || ' Street, ' || initcap(${word})
FROM v, generate_series(${o + 1}, ${o + no}) g;
${eventsInsert(e + 1, e + ne, c + nc)}`);
    const grown = dbSize(db) - before;
    if (batch === 0 && grown > 0) perRow = grown / (nc * 1.2 + no * 1.3 + ne); // rough, good enough
    c += nc;
    o += no;
    e += ne;
    log(`${db}: ${(dbSize(db) / MiB).toFixed(0)} / ${mib} MiB`);
  }
  psql(db, `CREATE INDEX events_created_at ON events (created_at); CREATE INDEX orders_customer ON orders (customer_id);
ALTER TABLE orders ADD FOREIGN KEY (customer_id) REFERENCES customers (id);
CREATE VIEW revenue_by_day AS SELECT date_trunc('day', ordered_at) AS day, sum(total) AS total FROM orders GROUP BY 1;
VACUUM (FREEZE, ANALYZE);`);
  markComplete(db, marker);
}

function createSetA(db, mib, marker) {
  createDb(db, marker);
  const scale = Math.max(1, Math.round(mib / 15));
  const r = spawnSync('pgbench', ['-i', '-q', '-I', 'dtGvp', '-s', String(scale), '-d', dbUrl(db)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`pgbench -i failed: ${r.stderr}`);
  psql(db, 'VACUUM (FREEZE, ANALYZE);');
  markComplete(db, marker);
}

function createSetC(db, n, marker) {
  createDb(db, marker);
  const schemas = 10;
  psql(db, Array.from({ length: schemas }, (_, s) => `CREATE SCHEMA s${s};`).join('\n'));
  const per = 250; // tables per transaction: each holds a few locks until commit
  for (let lo = 0; lo < n; lo += per) {
    const hi = Math.min(n, lo + per) - 1;
    psql(db, `DO $$ BEGIN FOR i IN ${lo}..${hi} LOOP
  EXECUTE format('CREATE TABLE s%s.t%s (id int PRIMARY KEY, name text NOT NULL, qty int, price numeric(8,2), updated_at timestamptz DEFAULT now())', i % ${schemas}, lpad(i::text, 5, '0'));
  EXECUTE format('INSERT INTO s%s.t%s (id, name, qty, price) SELECT g, ''item '' || g || '' of %s'', g * 7 %% 13, g * 1.25 FROM generate_series(1, 10) g', i % ${schemas}, lpad(i::text, 5, '0'), i);
END LOOP; END $$;`);
    if ((hi + 1) % 2000 === 0 || hi + 1 === n) log(`${db}: ${hi + 1} / ${n} tables`);
  }
  psql(db, 'VACUUM (FREEZE, ANALYZE);');
  markComplete(db, marker);
}

/** The data set `key` (a, b, c), created when missing; `size` MiB for a and b (default --scale-mib). */
function ensureSet(key, size = scaleMiB) {
  const spec = {
    a: { db: `bench_a_${size}`, marker: `cairn-bench a v1 mib=${size}`, create: (db, m) => createSetA(db, size, m) },
    b: { db: `bench_b_${size}`, marker: `cairn-bench b v1 mib=${size}`, create: (db, m) => createSetB(db, size, m) },
    c: { db: `bench_c_${tableCount}`, marker: `cairn-bench c v1 tables=${tableCount}`, create: (db, m) => createSetC(db, tableCount, m) },
  }[key];
  if (!recreate && dbExists(spec.db) && dbComment(spec.db) === spec.marker) {
    log(`reusing ${spec.db} (${(dbSize(spec.db) / MiB).toFixed(0)} MiB)`);
  } else {
    log(`creating ${spec.db}`);
    const t0 = performance.now();
    spec.create(spec.db, spec.marker);
    log(`created ${spec.db} in ${((performance.now() - t0) / 1000).toFixed(0)} s (${(dbSize(spec.db) / MiB).toFixed(0)} MiB)`);
  }
  return spec.db;
}

/** SQL that appends `add` rows to the data set's largest table (new keys, at the end). */
function appendSql(key, db, add) {
  if (key === 'a') {
    const max = Number(psql(db, 'SELECT max(aid) FROM pgbench_accounts'));
    return `INSERT INTO pgbench_accounts (aid, bid, abalance, filler) SELECT aid, (aid - 1) / 100000 + 1, 0, '' FROM generate_series(${max + 1}, ${max + add}) aid;`;
  }
  const [max, cust] = psql(db, 'SELECT max(id), (SELECT max(id) FROM customers) FROM events').split('|').map(Number);
  return eventsInsert(max + 1, max + add, cust);
}

// ---------------------------------------------------------------------------------------------
// the measurements
const scratch = scratchDatabases({ dropDb, onCleanup: () => work && !keepWork && rm(work) });
const tmpDb = scratch.name;
const dropTmp = scratch.drop;
function rowCount(db, table) {
  return Number(psql(db, `SELECT count(*) FROM ${table}`));
}

/** Set e: the cost of client-side encryption, plain and encrypted repositories side by side on set b's data. */
function benchEncryption() {
  const db = ensureSet('b');
  const dir = path.join(work, 'e');
  fs.mkdirSync(dir, { recursive: true });
  const plain = path.join(dir, 'plain');
  const sealed = path.join(dir, 'encrypted');
  const largest = tables(db)[0].name;
  const res = { database: db, database_bytes: dbSize(db) };
  log('[e] full backup, plain and encrypted');
  res.full_backup = alternate('e full backup', {
    plain: (i) => {
      cairnInit(plain);
      return cairnBackup(db, plain, `plain-${i}`);
    },
    encrypted: (i) => {
      cairnInit(sealed, { encrypted: true });
      return cairnBackup(db, sealed, `encrypted-${i}`, ENCRYPTED_ENV);
    },
  });
  const last = res.full_backup.plain.runs - 1;
  log('[e] restore, plain and encrypted');
  const rp = tmpDb('e_plain');
  const re = tmpDb('e_encrypted');
  res.restore = alternate('e restore', {
    plain: () => {
      const s = cairnRestore(plain, `plain-${last}`, rp);
      res.restore_check_plain ??= rowCount(rp, largest) === rowCount(db, largest);
      dropDb(rp);
      return s;
    },
    encrypted: () => {
      const s = cairnRestore(sealed, `encrypted-${last}`, re, ENCRYPTED_ENV);
      res.restore_check_encrypted ??= rowCount(re, largest) === rowCount(db, largest);
      dropDb(re);
      return s;
    },
  });
  // What opening costs: the KDF of one key slot, in a command that does nothing else.
  res.open = alternate('e backup list', {
    plain: () => cairn(['backup', 'list', '--repo', plain, '--json']),
    encrypted: () => cairn(['backup', 'list', '--repo', sealed, '--json'], ENCRYPTED_ENV),
  });
  res.repository_bytes = { plain: dirBytes(plain), encrypted: dirBytes(sealed) };
  rm(dir);
  return res;
}

function benchVolume(key) {
  const db = ensureSet(key);
  const dir = path.join(work, key);
  fs.mkdirSync(dir, { recursive: true });
  const repo = path.join(dir, 'repo');
  const dumpGz = path.join(dir, 'dump');
  const dumpZ0 = path.join(dir, 'dump-z0');
  const scripts = copyScripts(db, dir);
  const largest = tables(db)[0].name;
  const res = { database: db, database_bytes: dbSize(db), largest_table: largest };
  // restic, on set b only (issue 22): pg_dump -Fc | restic backup --stdin, one file name for
  // every snapshot (the snapshots of the +2 % copy too), restored from the last full snapshot.
  const resticRepo = path.join(dir, 'restic');
  const resticName = `set-${key}.dump`;
  let resticFull = null;
  if (key === 'b') res.restic_skipped = resticProblem() ?? undefined;
  const withRestic = key === 'b' && !res.restic_skipped;
  const peer = (tool) => (withRestic ? { restic: tool } : {});

  log(`[${key}] full backup`);
  res.full_backup = alternate(`${key} full backup`, {
    cairn: (i) => {
      cairnInit(repo); // a fresh repository every run
      return cairnBackup(db, repo, `full-${i}`);
    },
    pg_dump: () => pgDump(db, dumpGz),
    pg_dump_z0: () => pgDump(db, dumpZ0, ['-Z0']),
    raw_copy: () => rawCopy(db, scripts),
    ...peer(() => {
      resticFull = null;
      restic.init(resticRepo); // a fresh repository every run, as for cairn
      const s = restic.backupDump(dbUrl(db), resticRepo, resticName);
      resticFull = s.snapshot;
      return s;
    }),
  });
  const fb = res.full_backup;
  res.logical_bytes = fb.cairn.samples[0]?.logicalBytes ?? null;
  const lastFull = fb.cairn.error ? null : `full-${fb.cairn.runs - 1}`;

  if (lastFull) {
    log(`[${key}] second backup, no change`);
    res.unchanged_backup = alternate(`${key} unchanged backup`, {
      cairn: (i) => cairnBackup(db, repo, `unchanged-${i}`),
      pg_dump: () => pgDump(db, dumpGz),
      ...(resticFull ? { restic: () => restic.backupDump(dbUrl(db), resticRepo, resticName) } : {}),
    });
    log(`[${key}] second backup after appending 2% rows to ${largest}`);
    const copy = tmpDb(`${key}_append`);
    dropDb(copy);
    psql('postgres', `CREATE DATABASE ${ident(copy)} TEMPLATE ${ident(db)} STRATEGY FILE_COPY`);
    const appendDump = path.join(dir, 'dump-append');
    // each run appends another 2% of the original row count and backs up again into the same
    // repository (the first time, the repository holds the unchanged data from the backups above)
    const addRows = Math.max(1, Math.round(rowCount(copy, largest) * 0.02));
    res.appended_rows_per_run = addRows;
    res.appended_backup = alternate(`${key} appended backup`, {
      append: () => timed('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', dbUrl(copy), '-c', appendSql(key, copy, addRows)]),
      cairn: (i) => cairnBackup(copy, repo, `appended-${i}`),
      pg_dump: () => pgDump(copy, appendDump),
      ...(resticFull ? { restic: () => restic.backupDump(dbUrl(copy), resticRepo, resticName) } : {}),
    }, { rotate: false });
    rm(appendDump);
    dropTmp(copy);

    log(`[${key}] restore`);
    const rc = tmpDb(`${key}_rc`);
    const rp = tmpDb(`${key}_rp`);
    const rr = tmpDb(`${key}_rr`);
    res.restore = alternate(`${key} restore`, {
      cairn: () => {
        const s = cairnRestore(repo, lastFull, rc);
        res.restore_check_cairn ??= rowCount(rc, largest) === rowCount(db, largest);
        dropDb(rc);
        return s;
      },
      pg_restore: () => {
        const s = pgRestore(dumpGz, rp);
        res.restore_check_pg_restore ??= rowCount(rp, largest) === rowCount(db, largest);
        dropDb(rp);
        return s;
      },
      ...(resticFull ? {
        restic: () => {
          dropDb(rr);
          const s = restic.restoreDump(resticRepo, resticFull, resticName, dbUrl('postgres'), `CREATE DATABASE ${ident(rr)} TEMPLATE template0`, dbUrl(rr));
          res.restore_check_restic ??= rowCount(rr, largest) === rowCount(db, largest);
          dropDb(rr);
          return s;
        },
      } : {}),
    });
    dropTmp(rc);
    dropTmp(rp);
    dropTmp(rr);
  }
  rm(dir);
  return res;
}

/**
 * Set s: a SQLite file (bench/peers.mjs makes it once). The backups read a copy in the work dir,
 * which the small change before the second backup then modifies in place (the reusable set
 * stays as made; restic sees the same path, as it would for a user's database file).
 */
function benchSqlite() {
  const src = ensureSqliteSet({ dir: setsDir, mib: scaleMiB, vocab: VOCAB, recreate });
  const dir = path.join(work, 's');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'db.sqlite');
  fs.copyFileSync(src, file);
  const repo = path.join(dir, 'repo');
  const resticRepo = path.join(dir, 'restic');
  const out = path.join(dir, 'out.db');
  const zst = path.join(dir, 'out.db.zst');
  const vzst = path.join(dir, 'vacuum.db.zst');
  const restored = path.join(dir, 'restored.db');
  const resticTarget = path.join(dir, 'restic-restore');
  const events = sqliteCount(file, 'events');
  const res = { file: src, file_bytes: fs.statSync(src).size, events };
  res.restic_skipped = resticProblem() ?? undefined;
  const withRestic = !res.restic_skipped;
  let resticSnap = null;
  let cairnFull = null;
  const check = (f) => sqliteCount(f, 'events') === events;

  log(`[s] backup of ${mib(res.file_bytes)} MiB SQLite file`);
  res.backup = alternate('s backup', {
    cairn: (i) => {
      cairnInit(repo);
      cairnFull = null;
      const s = cairnBackup(`sqlite://${file}`, repo, `full-${i}`);
      cairnFull = `full-${i}`;
      return s;
    },
    // sqlite3's online backup into a new file, compressed by zstd's default level (single thread)
    sqlite_backup_zstd: () => {
      rm(zst);
      const s = timed(...pipeline('sqlite3 "$1" ".backup \'$2\'" && zstd -3 -q -f --rm "$2" -o "$3"', file, out, zst));
      s.bytes = fs.statSync(zst).size;
      return s;
    },
    sqlite_vacuum_into_zstd: () => {
      rm(vzst);
      rm(out);
      const s = timed(...pipeline('sqlite3 "$1" "VACUUM INTO \'$2\'" && zstd -3 -q -f --rm "$2" -o "$3"', file, out, vzst));
      s.bytes = fs.statSync(vzst).size;
      return s;
    },
    ...(withRestic ? {
      restic: () => {
        resticSnap = null;
        restic.init(resticRepo);
        const s = restic.backupFile(file, resticRepo);
        resticSnap = s.snapshot;
        return s;
      },
    } : {}),
  });

  log('[s] restore');
  res.restore = alternate('s restore', {
    ...(cairnFull ? {
      cairn: () => {
        rm(restored);
        const s = cairn(['restore', cairnFull, '--repo', repo, '--to', `sqlite://${restored}`, '--json']);
        res.restore_check_cairn ??= check(restored);
        rm(restored);
        return s;
      },
    } : {}),
    ...(fs.existsSync(zst) ? {
      // decompress beside the target, then rename into place: the target is whole or absent
      zstd_d: () => {
        rm(restored);
        const s = timed(...pipeline('zstd -d -q -f "$1" -o "$2.tmp" && mv "$2.tmp" "$2"', zst, restored));
        res.restore_check_zstd_d ??= check(restored);
        rm(restored);
        return s;
      },
    } : {}),
    ...(resticSnap ? {
      restic: () => {
        const s = restic.restoreFile(resticRepo, resticSnap, resticTarget);
        res.restore_check_restic ??= check(path.join(resticTarget, 'db.sqlite'));
        rm(resticTarget);
        return s;
      },
    } : {}),
  });
  rm(out);

  if (cairnFull) {
    res.change = 'per run: 1,000 of the newest 10,000 events updated and 1,000 appended';
    log(`[s] second backup after a small change (${res.change})`);
    // each run changes the file again, then each tool backs it up into its repository of the
    // last full backup (as set b's +2 % step)
    res.changed_backup = alternate('s changed backup', {
      change: () => timed('sqlite3', [file, sqliteChangeSql(file)]),
      cairn: (i) => cairnBackup(`sqlite://${file}`, repo, `changed-${i}`),
      ...(resticSnap ? { restic: () => restic.backupFile(file, resticRepo) } : {}),
    }, { rotate: false });
  }
  rm(dir);
  // PostgreSQL plays no part in set s: its CPU over these intervals is other load, not shown
  for (const job of [res.backup, res.restore, res.changed_backup]) {
    for (const t of Object.values(job ?? {})) {
      t.server_cpu_s = null;
      for (const x of t.samples) x.serverCpu = null;
    }
  }
  return res;
}

/**
 * The scaling curve: set b at each of --scale-points (GiB), made once per size and reused;
 * cairn backup (fresh repository) and restore, pg_dump -Fd -jN as the reference line,
 * alternately --runs times at each size.
 */
function benchScaling() {
  const points = [];
  const loadavg = os.loadavg();
  for (const gib of [...scalePoints].sort((x, y) => x - y)) {
    const size = Math.max(1, Math.round(gib * 1024));
    const db = ensureSet('b', size);
    const dir = path.join(work, `scale-${size}`);
    fs.mkdirSync(dir, { recursive: true });
    const repo = path.join(dir, 'repo');
    const dump = path.join(dir, 'dump');
    const rc = tmpDb(`scale_${size}_rc`);
    const point = { gib, mib: size, database: db, database_bytes: dbSize(db) };
    log(`[scaling] ${gib} GiB (${db}): backup`);
    let id = null;
    point.backup = alternate(`scaling ${gib} GiB backup`, {
      cairn: (i) => {
        cairnInit(repo);
        id = null;
        const s = cairnBackup(db, repo, `full-${i}`);
        id = `full-${i}`;
        return s;
      },
      pg_dump: () => pgDump(db, dump),
    });
    rm(dump);
    if (id) {
      log(`[scaling] ${gib} GiB: restore`);
      point.restore = alternate(`scaling ${gib} GiB restore`, {
        cairn: () => {
          const s = cairnRestore(repo, id, rc);
          dropDb(rc);
          return s;
        },
      });
    }
    dropTmp(rc);
    rm(dir);
    points.push(point);
  }
  return { points, jobs, runs, loadavg };
}

/**
 * The scaling chart (SVG) from measured points only: time and peak RSS against size. `sc` is a
 * result's sets.scaling, `started` its start (a Date), `points` the --scale-points asked for.
 */
function scalingChart(sc, started, points) {
  const pts = sc.points;
  const at = (get) => pts.map((p) => [p.database_bytes / 1024 / MiB, get(p)]).filter(([, y]) => y != null);
  const sizes = pts.map((p) => `${(p.database_bytes / 1024 / MiB).toFixed(2)}`).join(', ');
  return lineChartsSvg({
    title: `cairn on set b at ${sizes} GiB (measured sizes; ${os.cpus().length} cores, --jobs ${sc.jobs})`,
    subtitle: `npm run bench -- --scale-points ${points.join(',')} --runs ${sc.runs} · ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC · median of ${sc.runs} run${sc.runs === 1 ? '' : 's'} ${sc.loadavg ? ` · load average ${sc.loadavg.map((v) => v.toFixed(1)).join(' ')} at start` : ''}`,
    xLabel: 'database size, GiB (pg_database_size)',
    panels: [
      {
        yLabel: 'seconds (wall)',
        series: [
          { name: 'cairn backup', points: at((p) => p.backup.cairn.wall_s) },
          { name: 'cairn restore', points: at((p) => p.restore?.cairn.wall_s) },
          { name: `pg_dump -Fd -j${sc.jobs}`, points: at((p) => p.backup.pg_dump.wall_s), dashed: true },
        ],
      },
      {
        yLabel: 'peak RSS, MiB',
        series: [
          { name: 'cairn backup', points: at((p) => p.backup.cairn.peak_rss_mib) },
          { name: 'cairn restore', points: at((p) => p.restore?.cairn.peak_rss_mib) },
        ],
      },
    ],
  });
}

/**
 * pg_dump and cairn hold a lock on every table until they finish (cairn's snapshot session and
 * its pg_dump schema dump: about two per table); the server's lock table has
 * max_locks_per_transaction × (max_connections + max_prepared_transactions) slots, 6,400 by
 * default, which 10,000 tables exceed for both tools. Returns null when there is room, else why not.
 */
function lockCapacityProblem(tables) {
  const [perTx, conns, prepared] = psql('postgres', `SELECT current_setting('max_locks_per_transaction'), current_setting('max_connections'), current_setting('max_prepared_transactions')`).split('|').map(Number);
  const slots = perTx * (conns + prepared);
  const needed = Math.ceil((2 * tables + 1000) / (conns + prepared));
  if (slots >= 2 * tables + 1000) return null;
  return { slots, perTx, needed, text: `the server's lock table has ${slots} slots (max_locks_per_transaction ${perTx} × ${conns + prepared} connections); ${tables} tables need about ${2 * tables + 1000}, for pg_dump as for cairn. Run the benchmark with --raise-lock-limit (sets max_locks_per_transaction = ${Math.max(256, needed)} and restarts the local cluster), or set it yourself.` };
}
function raiseLockLimit(tables) {
  const p = lockCapacityProblem(tables);
  if (!p) return;
  const value = Math.max(256, p.needed);
  log(`raising max_locks_per_transaction to ${value} and restarting PostgreSQL`);
  psql('postgres', `ALTER SYSTEM SET max_locks_per_transaction = ${value}`);
  const version = fs.readdirSync('/etc/postgresql').sort().pop();
  const r = spawnSync('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'restart'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`pg_ctlcluster restart failed: ${r.stderr}`);
  for (let i = 0; i < 50 && spawnSync('pg_isready', ['-q', '-d', dbUrl('postgres')]).status !== 0; i++) spawnSync('sleep', ['0.2']);
}

function benchTables() {
  if (has('raise-lock-limit')) raiseLockLimit(tableCount);
  const problem = lockCapacityProblem(tableCount);
  if (problem) {
    log(`[c] skipped: ${problem.text}`);
    return { skipped: problem.text, tables: tableCount };
  }
  const db = ensureSet('c');
  const dir = path.join(work, 'c');
  fs.mkdirSync(dir, { recursive: true });
  const repo = path.join(dir, 'repo');
  const dump = path.join(dir, 'dump');
  const rc = tmpDb('c_rc');
  const rp = tmpDb('c_rp');
  const res = { database: db, tables: tableCount, database_bytes: dbSize(db) };
  log(`[c] ${tableCount} tables: backup and restore`);
  let haveRepo = false;
  let haveDump = false;
  const r = alternate(`c ${tableCount} tables`, {
    cairn_backup: (i) => {
      cairnInit(repo);
      const s = cairnBackup(db, repo, `full-${i}`);
      haveRepo = `full-${i}`;
      return s;
    },
    pg_dump: () => {
      const s = pgDump(db, dump);
      haveDump = true;
      return s;
    },
    cairn_restore: () => {
      if (!haveRepo) throw new Error('no cairn backup to restore');
      const s = cairnRestore(repo, haveRepo, rc);
      dropDb(rc);
      return s;
    },
    pg_restore: () => {
      if (!haveDump) throw new Error('no pg_dump output to restore');
      const s = pgRestore(dump, rp);
      dropDb(rp);
      return s;
    },
  });
  res.backup = { cairn: r.cairn_backup, pg_dump: r.pg_dump };
  res.restore = { cairn: r.cairn_restore, pg_restore: r.pg_restore };
  dropTmp(rc);
  dropTmp(rp);
  rm(dir);
  return res;
}

// ---------------------------------------------------------------------------------------------
// report

function volumeRatios(r) {
  if (!r) return {};
  const fb = r.full_backup;
  const out = {
    full_backup_vs_pg_dump: ratio(fb.cairn.wall_s, fb.pg_dump.wall_s),
    full_backup_vs_pg_dump_z0: ratio(fb.cairn.wall_s, fb.pg_dump_z0.wall_s),
    full_backup_bytes_vs_pg_dump: ratio(fb.cairn.output_bytes, fb.pg_dump.output_bytes),
    full_backup_cpu_vs_pg_dump: ratio(fb.cairn.cpu_s, fb.pg_dump.cpu_s),
    copy_rate_share: ratio(fb.raw_copy.wall_s, fb.cairn.wall_s),
    cairn_backup_mib_s: r.logical_bytes && fb.cairn.wall_s ? r.logical_bytes / MiB / fb.cairn.wall_s : null,
    raw_copy_mib_s: r.logical_bytes && fb.raw_copy.wall_s ? r.logical_bytes / MiB / fb.raw_copy.wall_s : null,
  };
  if (r.unchanged_backup) {
    out.unchanged_new_bytes_share = ratio(r.unchanged_backup.cairn.new_bytes, r.unchanged_backup.pg_dump.output_bytes);
    out.unchanged_new_bytes_share_of_full = ratio(r.unchanged_backup.cairn.new_bytes, fb.cairn.output_bytes);
    out.unchanged_backup_vs_pg_dump = ratio(r.unchanged_backup.cairn.wall_s, r.unchanged_backup.pg_dump.wall_s);
  }
  if (r.appended_backup) {
    out.appended_new_bytes_share = ratio(r.appended_backup.cairn.new_bytes, r.appended_backup.pg_dump.output_bytes);
    out.appended_new_bytes_share_of_full = ratio(r.appended_backup.cairn.new_bytes, fb.cairn.output_bytes);
    out.appended_backup_vs_pg_dump = ratio(r.appended_backup.cairn.wall_s, r.appended_backup.pg_dump.wall_s);
  }
  if (r.restore) out.restore_vs_pg_restore = ratio(r.restore.cairn.wall_s, r.restore.pg_restore.wall_s);
  // restic (set b): cairn / restic, wall time and repository growth
  if (fb.restic) {
    out.restic_full_backup = ratio(fb.cairn.wall_s, fb.restic.wall_s);
    out.restic_full_bytes = ratio(fb.cairn.output_bytes, fb.restic.output_bytes);
    out.restic_full_peak_rss = ratio(fb.cairn.peak_rss_mib, fb.restic.peak_rss_mib);
  }
  if (r.unchanged_backup?.restic) {
    out.restic_unchanged_backup = ratio(r.unchanged_backup.cairn.wall_s, r.unchanged_backup.restic.wall_s);
    out.restic_unchanged_new_bytes = ratio(r.unchanged_backup.cairn.output_bytes, r.unchanged_backup.restic.output_bytes);
  }
  if (r.appended_backup?.restic) {
    out.restic_appended_backup = ratio(r.appended_backup.cairn.wall_s, r.appended_backup.restic.wall_s);
    out.restic_appended_new_bytes = ratio(r.appended_backup.cairn.output_bytes, r.appended_backup.restic.output_bytes);
  }
  if (r.restore?.restic) out.restic_restore = ratio(r.restore.cairn.wall_s, r.restore.restic.wall_s);
  return out;
}

/** Set s's ratios, cairn / peer: wall time, output size, new bytes of the changed backup. */
function sqliteRatios(r) {
  if (!r?.backup) return {};
  const b = r.backup;
  const out = {
    sqlite_backup_vs_backup_zstd: ratio(b.cairn.wall_s, b.sqlite_backup_zstd.wall_s),
    sqlite_backup_vs_vacuum_zstd: ratio(b.cairn.wall_s, b.sqlite_vacuum_into_zstd.wall_s),
    sqlite_bytes_vs_backup_zstd: ratio(b.cairn.output_bytes, b.sqlite_backup_zstd.output_bytes),
    sqlite_restore_vs_zstd_d: ratio(r.restore.cairn?.wall_s, r.restore.zstd_d?.wall_s),
  };
  if (b.restic) {
    out.sqlite_backup_vs_restic = ratio(b.cairn.wall_s, b.restic.wall_s);
    out.sqlite_bytes_vs_restic = ratio(b.cairn.output_bytes, b.restic.output_bytes);
    out.sqlite_restore_vs_restic = ratio(r.restore.cairn?.wall_s, r.restore.restic?.wall_s);
  }
  const c = r.changed_backup;
  if (c?.restic) {
    out.sqlite_changed_backup_vs_restic = ratio(c.cairn.wall_s, c.restic.wall_s);
    out.sqlite_changed_new_bytes_vs_restic = ratio(c.cairn.output_bytes, c.restic.output_bytes);
  }
  if (c) out.sqlite_changed_new_bytes_share_of_backup_zstd = ratio(c.cairn.output_bytes, b.sqlite_backup_zstd.output_bytes);
  return out;
}

/**
 * The scaling curve's ratios: time per GiB at the largest size / at the next smaller one (1 =
 * linear; start-up makes small sizes dearer per GiB, so a ratio above 1 means worse than
 * linear), peak RSS at the largest / at the smallest (memory must not grow with data), and
 * cairn / pg_dump at the largest size.
 */
function scalingRatios(sc) {
  const pts = sc?.points ?? [];
  if (pts.length < 2) return {};
  const big = pts[pts.length - 1];
  const prev = pts[pts.length - 2];
  const perGiB = (p, s) => (s?.wall_s == null ? null : s.wall_s / (p.database_bytes / 1024 / MiB));
  return {
    scaling_backup_s_per_gib_growth: ratio(perGiB(big, big.backup.cairn), perGiB(prev, prev.backup.cairn)),
    scaling_restore_s_per_gib_growth: ratio(perGiB(big, big.restore?.cairn), perGiB(prev, prev.restore?.cairn)),
    scaling_peak_rss_growth: ratio(Math.max(big.backup.cairn.peak_rss_mib ?? 0, big.restore?.cairn.peak_rss_mib ?? 0), Math.max(pts[0].backup.cairn.peak_rss_mib ?? 0, pts[0].restore?.cairn.peak_rss_mib ?? 0)),
    scaling_largest_backup_vs_pg_dump: ratio(big.backup.cairn.wall_s, big.backup.pg_dump.wall_s),
  };
}

function cairnPeak(sets) {
  let m = null;
  const visit = (o, underCairn) => {
    if (!o || typeof o !== 'object') return;
    for (const [k, v] of Object.entries(o)) {
      if (k === 'samples') continue;
      if (k === 'peak_rss_mib' && underCairn && v != null) m = Math.max(m ?? 0, v);
      else visit(v, underCairn || k === 'cairn' || k.startsWith('cairn_'));
    }
  };
  visit(sets, false);
  return m;
}

function markdown(result) {
  const lines = [];
  lines.push(`## cairn benchmark — ${result.started_at} (sets ${result.options.only.join(',')}${result.options.scale_points ? ` at ${result.options.scale_points.join(', ')} GiB` : ''}; ${result.options.quick ? 'quick' : 'full'}, ${result.options.scale_mib} MiB sets, ${result.options.tables} tables, ${result.options.runs} runs, --jobs ${result.options.jobs}, ${os.cpus().length} cores${result.options.split ? ', --split: server on CPU 0, tools on CPU 1' : ''})`);
  lines.push('');
  lines.push('| set | job | tool | wall s | client CPU s | server CPU s | peak RSS MiB | output MiB | new MiB | cairn / peer (wall) |');
  lines.push('|---|---|---|---:|---:|---:|---:|---:|---:|---:|');
  const row = (set, job, tool, s, cairnWall) => {
    if (!s) return;
    const rr = tool.startsWith('cairn') || tool === 'append' || cairnWall == null ? '' : fmt(ratio(cairnWall, s.wall_s));
    lines.push(`| ${set} | ${job} | ${tool}${s.error ? ' (FAILED)' : ''} | ${fmt(s.wall_s)} | ${fmt(s.cpu_s)} | ${fmt(s.server_cpu_s)} | ${fmt(s.peak_rss_mib, 0)} | ${mib(s.output_bytes)} | ${s.new_bytes == null ? '' : mib(s.new_bytes)} | ${rr} |`);
  };
  for (const key of ['a', 'b']) {
    const r = result.sets[key];
    if (!r) continue;
    const name = `${key} (${r.database}, ${mib(r.database_bytes)} MiB)`;
    for (const [job, m] of [['full backup', r.full_backup], ['backup, no change', r.unchanged_backup], ['backup, +2% rows', r.appended_backup], ['restore', r.restore]]) {
      if (!m) continue;
      for (const [tool, s] of Object.entries(m)) if (tool !== 'append') row(name, job, tool === 'raw_copy' ? `raw COPY ×${result.options.jobs} (psql)` : tool, s, m.cairn?.wall_s);
    }
  }
  const c = result.sets.c;
  if (c?.skipped) lines.push(`| c (${c.tables} tables) | – | skipped: ${c.skipped} | | | | | | | |`);
  if (c && !c.skipped) {
    const name = `c (${c.tables} tables)`;
    row(name, 'backup', 'cairn', c.backup.cairn, c.backup.cairn.wall_s);
    row(name, 'backup', 'pg_dump', c.backup.pg_dump, c.backup.cairn.wall_s);
    row(name, 'restore', 'cairn', c.restore.cairn, c.restore.cairn.wall_s);
    row(name, 'restore', 'pg_restore', c.restore.pg_restore, c.restore.cairn.wall_s);
  }
  const e = result.sets.e;
  if (e) {
    const name = `e (${e.database}, ${mib(e.database_bytes)} MiB)`;
    for (const [job, m] of [['full backup', e.full_backup], ['restore', e.restore], ['backup list (open)', e.open]]) {
      for (const tool of ['plain', 'encrypted']) {
        const s = m[tool];
        if (!s) continue;
        lines.push(`| ${name} | ${job} | cairn ${tool}${s.error ? ' (FAILED)' : ''} | ${fmt(s.wall_s)} | ${fmt(s.cpu_s)} | ${fmt(s.server_cpu_s)} | ${fmt(s.peak_rss_mib, 0)} | ${mib(s.output_bytes)} | | ${tool === 'encrypted' ? fmt(ratio(s.wall_s, m.plain?.wall_s)) + ' vs plain' : ''} |`);
      }
    }
  }
  const sq = result.sets.s;
  if (sq) {
    const name = `s (SQLite, ${mib(sq.file_bytes)} MiB)`;
    for (const [job, m] of [['backup', sq.backup], ['restore', sq.restore], ['backup after a small change', sq.changed_backup]]) {
      if (!m) continue;
      for (const [tool, s] of Object.entries(m)) if (tool !== 'change') row(name, job, tool, s, m.cairn?.wall_s);
    }
  }
  const sc = result.sets.scaling;
  if (sc) {
    lines.push('');
    lines.push(`| scaling, set b (GiB) | database MiB | cairn backup s | pg_dump -Fd -j${sc.jobs} s | cairn restore s | backup peak RSS MiB | restore peak RSS MiB |`);
    lines.push('|---:|---:|---:|---:|---:|---:|---:|');
    for (const p of sc.points) {
      lines.push(`| ${p.gib} | ${mib(p.database_bytes)} | ${fmt(p.backup.cairn.wall_s)} | ${fmt(p.backup.pg_dump.wall_s)} | ${fmt(p.restore?.cairn.wall_s)} | ${fmt(p.backup.cairn.peak_rss_mib, 0)} | ${fmt(p.restore?.cairn.peak_rss_mib, 0)} |`);
    }
    if (sc.chart) lines.push('', `chart: ${sc.chart}`);
  }
  for (const [key, r] of [['b', result.sets.b], ['s', sq]]) {
    if (r?.restic_skipped) lines.push('', `set ${key}: restic skipped: ${r.restic_skipped}`);
  }
  const l = result.sets.l;
  if (l?.skipped) lines.push('', `set l skipped: ${l.skipped}`);
  if (l && !l.skipped) {
    lines.push('');
    lines.push(`| l (${l.backups} backups, median of ${l.runs}) | ms | vs full listing, cold |`);
    lines.push('|---|---:|---:|');
    for (const [label, k] of [['first page (limit=50, newest first), cache cold', 'first_page_cold_ms'], ['first page, cache warm', 'first_page_warm_ms'], ['full listing, cache cold (every manifest read, as before the cache)', 'full_cold_ms'], ['full listing, cache warm', 'full_warm_ms']]) {
      lines.push(`| ${label} | ${fmt(l[k], 1)} | ${fmt(ratio(l[k], l.full_cold_ms), 3)} |`);
    }
  }
  const v = result.sets.v;
  if (v?.skipped) lines.push('', `set v skipped: ${v.skipped}`);
  if (v && !v.skipped) {
    lines.push('');
    lines.push(`| v (one ${v.value_mib} MiB value, median of ${v.runs}) | job | wall s | client CPU s | peak RSS MiB | goal |`);
    lines.push('|---|---|---:|---:|---:|---|');
    for (const kind of ['blob', 'text']) {
      for (const job of ['backup', 'restore']) {
        const s = v[kind][job];
        lines.push(`| SQLite ${kind.toUpperCase()} | ${job} | ${fmt(s.wall_s)} | ${fmt(s.cpu_s)} | ${fmt(s.peak_rss_mib, 0)} | ≤ ${v.goal_peak_rss_mib} |`);
      }
    }
  }
  const st = result.sets.u;
  if (st) {
    lines.push('');
    lines.push(`| u: start-up (median of ${st.runs}) | wall s | CPU s | goal (wall) |`);
    lines.push('|---|---:|---:|---|');
    lines.push(`| cairn --version | ${fmt(st.version.wall_s)} | ${fmt(st.version.cpu_s)} | ≤ 0.15 |`);
    lines.push(`| backup of a one-row SQLite file to a local repository | ${fmt(st.sqlite_backup.wall_s)} | ${fmt(st.sqlite_backup.cpu_s)} | ≤ 0.4 |`);
  }
  lines.push('');
  lines.push('pg_dump / pg_restore run with -Fd -j' + result.options.jobs + ' (pg_dump_z0 adds -Z0); output = repository growth or dump directory size; new = cairn manifest totals.newBytes (restic: its data_added, before compression).');
  if (result.sets.b?.full_backup?.restic) lines.push('restic (set b) = pg_dump -Fc | restic backup --stdin into a local repository (format 2, compression auto); restore = restic dump | pg_restore -d, one stream (pg_restore -j needs a seekable file).');
  if (sq) lines.push('Set s: sqlite_backup_zstd = sqlite3 .backup + zstd -3; sqlite_vacuum_into_zstd = sqlite3 VACUUM INTO + zstd -3 (its restore is zstd_d too); zstd_d = zstd -d + rename into place; restic = restic backup <file> / restic restore.');
  lines.push('Client CPU = user+sys of the tool and its children; server CPU = PostgreSQL processes over the same interval (includes unrelated load, if any).');
  lines.push('');
  lines.push('| ratio | value | target | met |');
  lines.push('|---|---:|---|---|');
  for (const [k, v] of Object.entries(result.ratios)) {
    const t = result.targets[k];
    lines.push(`| ${k} | ${fmt(v, 3)} | ${t ? t.text : ''} | ${t ? (t.met == null ? '–' : t.met ? 'yes' : 'NO') : ''} |`);
  }
  return lines.join('\n');
}

const targetSpec = {
  full_backup_vs_pg_dump: ['≤ 0.25', (v) => v <= 0.25],
  full_backup_vs_pg_dump_z0: ['≤ 1.2', (v) => v <= 1.2],
  full_backup_bytes_vs_pg_dump: ['≤ 1', (v) => v <= 1],
  copy_rate_share: ['≥ 0.70', (v) => v >= 0.7],
  unchanged_new_bytes_share: ['< 0.01', (v) => v < 0.01],
  appended_new_bytes_share: ['< 0.04', (v) => v < 0.04],
  restore_vs_pg_restore: ['≤ 0.8', (v) => v <= 0.8],
  peak_rss_mib: ['≤ 256', (v) => v <= 256],
  tables_10k_backup_vs_pg_dump: ['< 1', (v) => v < 1],
  tables_10k_restore_vs_pg_restore: ['< 1', (v) => v < 1],
  a_full_backup_vs_pg_dump_z0: ['≤ 1.2', (v) => v <= 1.2],
  // Issue 18: encryption costs at most 10 % wall time.
  encrypted_backup_vs_plain: ['≤ 1.10', (v) => v <= 1.1],
  encrypted_restore_vs_plain: ['≤ 1.10', (v) => v <= 1.1],
  // Issue 19: the console's first page of 10,000 backups well under a second.
  listing_first_page_warm_ms: ['< 250', (v) => v < 250],
  // Issue 22: start-up (set u), median wall seconds.
  startup_version_s: ['≤ 0.15', (v) => v <= 0.15],
  startup_sqlite_backup_s: ['≤ 0.4', (v) => v <= 0.4],
  // Issue 22: memory must not grow with a value's size (set v: one 120 MiB BLOB or TEXT).
  large_value_backup_peak_rss_mib: ['≤ 256', (v) => v <= 256],
  large_value_restore_peak_rss_mib: ['≤ 256', (v) => v <= 256],
  // Issue 22: prune of 1,000 backups and 100,000 packs in minutes, memory flat (set p).
  prune_scale_wall_s: ['≤ 600', (v) => v <= 600],
  prune_scale_peak_rss_mib: ['≤ 256', (v) => v <= 256],
  // Issue 22: restic on set b (pg_dump -Fc | restic backup --stdin), cairn / restic.
  restic_full_backup: ['< 1', (v) => v < 1],
  restic_full_bytes: ['< 1', (v) => v < 1],
  restic_unchanged_backup: ['< 1', (v) => v < 1],
  restic_unchanged_new_bytes: ['< 1', (v) => v < 1],
  restic_appended_backup: ['< 1', (v) => v < 1],
  restic_appended_new_bytes: ['< 1', (v) => v < 1],
  restic_restore: ['< 1', (v) => v < 1],
  // Issue 22: set s, a SQLite file, cairn / peer.
  sqlite_backup_vs_backup_zstd: ['< 1', (v) => v < 1],
  sqlite_backup_vs_vacuum_zstd: ['< 1', (v) => v < 1],
  sqlite_backup_vs_restic: ['< 1', (v) => v < 1],
  sqlite_bytes_vs_backup_zstd: ['≤ 1', (v) => v <= 1],
  sqlite_bytes_vs_restic: ['< 1', (v) => v < 1],
  sqlite_restore_vs_zstd_d: ['≤ 1', (v) => v <= 1],
  sqlite_restore_vs_restic: ['< 1', (v) => v < 1],
  sqlite_changed_backup_vs_restic: ['< 1', (v) => v < 1],
  sqlite_changed_new_bytes_vs_restic: ['< 1', (v) => v < 1],
  sqlite_changed_new_bytes_share_of_backup_zstd: ['< 0.05', (v) => v < 0.05],
  // Issue 22: the scaling curve (set b at --scale-points): linear time, flat memory.
  scaling_backup_s_per_gib_growth: ['≤ 1.1', (v) => v <= 1.1],
  scaling_restore_s_per_gib_growth: ['≤ 1.1', (v) => v <= 1.1],
  scaling_peak_rss_growth: ['≤ 1.25', (v) => v <= 1.25],
  scaling_largest_backup_vs_pg_dump: ['≤ 0.5', (v) => v <= 0.5],
};

/** Set v: bench/large-value.mjs in its own process, its JSON result. */
function benchLargeValue() {
  const out = path.join(work, 'large-value.json');
  const r = spawnSync(process.execPath, [path.join(here, 'large-value.mjs'), '--mib', '120', '--runs', String(opt('runs', '1')), '--json', out], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) return { skipped: `bench/large-value.mjs exited ${r.status}` };
  return JSON.parse(fs.readFileSync(out, 'utf8'));
}

/** Set p: bench/prune-scale.mjs in its own process, its JSON result. */
function benchPruneScale() {
  const out = path.join(work, 'prune-scale.json');
  const r = spawnSync(process.execPath, [path.join(here, 'prune-scale.mjs'), '--workdir', work, '--json', out], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (!fs.existsSync(out)) return { skipped: `bench/prune-scale.mjs exited ${r.status}` };
  return JSON.parse(fs.readFileSync(out, 'utf8'));
}

/** The first line of `cmd arg` (a tool's version), or null when it is not installed. */
function toolVersion(cmd, arg) {
  const r = spawnSync(cmd, [arg], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim().split('\n')[0] : null;
}

/**
 * Set u (issue 22): what a user waits for before anything happens. `cairn --version` and
 * `cairn backup create` of a one-row SQLite file into a local repository, each run 10 times
 * (one after the other, nothing else of the bench running): median wall and CPU
 * (user+sys, less noisy than wall on a shared machine) seconds of each.
 */
async function benchStartup() {
  const n = 10;
  const dir = path.join(work, 'startup');
  fs.mkdirSync(dir);
  const { default: Database } = await import(path.join(root, 'dist', 'sources', 'sqlite', 'driver.js'));
  const file = path.join(dir, 'one.db');
  const db = new Database(file);
  db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'one row')");
  db.close();
  const repo = path.join(dir, 'repo');
  cairn(['repo', 'init', repo]);
  const summary = (samples) => ({ wall_s: median(samples.map((s) => s.wall)), cpu_s: median(samples.map((s) => s.cpu)), peak_rss_mib: Math.max(...samples.map((s) => s.rssMiB)) });
  const version = [];
  const backup = [];
  for (let i = 0; i < n; i++) {
    version.push(cairn(['--version']));
    backup.push(cairn(['backup', 'create', '--source', `sqlite://${file}`, '--repo', repo, '--id', `s${i}`, '--json']));
  }
  log(`set u: --version ${fmt(median(version.map((s) => s.wall)))} s, one-row SQLite backup ${fmt(median(backup.map((s) => s.wall)))} s (medians of ${n})`);
  return { runs: n, version: summary(version), sqlite_backup: summary(backup) };
}

/** Set l: bench/listing.mjs in its own process (it starts a server), its JSON result. */
function benchListing() {
  const out = path.join(work, 'listing.json');
  const r = spawnSync(process.execPath, [path.join(here, 'listing.mjs'), '--backups', '10000', '--runs', String(opt('runs', '5')), '--json', out], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) return { skipped: `bench/listing.mjs exited ${r.status}` };
  return JSON.parse(fs.readFileSync(out, 'utf8'));
}

// ---------------------------------------------------------------------------------------------
// --chart-from FILE: redraw the scaling chart from a results file, measuring nothing
if (has('chart-from')) {
  const r = JSON.parse(fs.readFileSync(opt('chart-from'), 'utf8'));
  if (!r.sets?.scaling?.points?.length) {
    console.error(`--chart-from: ${opt('chart-from')} has no scaling points (sets.scaling); run --scaling first`);
    process.exit(2);
  }
  r.sets.scaling.loadavg ??= r.host?.loadavg;
  fs.writeFileSync(chartFile, scalingChart(r.sets.scaling, new Date(r.started_at), r.options.scale_points ?? r.sets.scaling.points.map((p) => p.gib)));
  log(`scaling chart: ${chartFile}`);
  process.exit(0);
}

async function main() {
  const started = new Date();
  work = fs.mkdtempSync(path.join(opt('workdir', os.tmpdir()), 'cairn-bench-'));
  const pgVersion = psql('postgres', 'SHOW server_version');
  const dumpVersion = spawnSync('pg_dump', ['--version'], { encoding: 'utf8' }).stdout.trim();
  log(`work dir ${work}; PostgreSQL ${pgVersion}; ${dumpVersion}; server CPU from ${postmasterPid ? `postmaster ${postmasterPid}` : '(not available)'}`);
  if (has('split')) pinSplit();
  restic = resticTool({ timed, work });
  const sets = {};
  try {
    if (only.has('a')) sets.a = benchVolume('a');
    if (only.has('b')) sets.b = benchVolume('b');
    if (only.has('c')) sets.c = benchTables();
    if (only.has('e')) sets.e = benchEncryption();
    if (only.has('l')) sets.l = benchListing();
    if (only.has('u')) sets.u = await benchStartup();
    if (only.has('v')) sets.v = benchLargeValue();
    if (only.has('p')) sets.p = benchPruneScale();
    if (only.has('s')) sets.s = benchSqlite();
    if (only.has('scaling')) sets.scaling = benchScaling();
  } finally {
    scratch.cleanup();
  }
  if (sets.scaling?.points.length) {
    fs.mkdirSync(path.dirname(chartFile), { recursive: true });
    fs.writeFileSync(chartFile, scalingChart(sets.scaling, started, scalePoints));
    sets.scaling.chart = path.relative(root, chartFile);
    log(`scaling chart: ${chartFile}`);
  }
  const perSet = { a: volumeRatios(sets.a), b: volumeRatios(sets.b), s: sqliteRatios(sets.s), scaling: scalingRatios(sets.scaling) };
  const main = sets.b ? perSet.b : {};
  const ratios = {
    full_backup_vs_pg_dump: main.full_backup_vs_pg_dump ?? null,
    full_backup_vs_pg_dump_z0: main.full_backup_vs_pg_dump_z0 ?? null,
    full_backup_bytes_vs_pg_dump: main.full_backup_bytes_vs_pg_dump ?? null,
    restore_vs_pg_restore: main.restore_vs_pg_restore ?? null,
    copy_rate_share: main.copy_rate_share ?? null,
    unchanged_new_bytes_share: main.unchanged_new_bytes_share ?? null,
    appended_new_bytes_share: main.appended_new_bytes_share ?? null,
    tables_10k_backup_vs_pg_dump: sets.c?.backup ? ratio(sets.c.backup.cairn.wall_s, sets.c.backup.pg_dump.wall_s) : null,
    tables_10k_restore_vs_pg_restore: sets.c?.restore ? ratio(sets.c.restore.cairn.wall_s, sets.c.restore.pg_restore.wall_s) : null,
    peak_rss_mib: cairnPeak(sets),
    a_full_backup_vs_pg_dump_z0: perSet.a.full_backup_vs_pg_dump_z0 ?? null,
    encrypted_backup_vs_plain: sets.e ? ratio(sets.e.full_backup.encrypted.wall_s, sets.e.full_backup.plain.wall_s) : null,
    encrypted_restore_vs_plain: sets.e ? ratio(sets.e.restore.encrypted.wall_s, sets.e.restore.plain.wall_s) : null,
    listing_first_page_warm_ms: sets.l?.first_page_warm_ms ?? null,
    startup_version_s: sets.u?.version.wall_s ?? null,
    startup_sqlite_backup_s: sets.u?.sqlite_backup.wall_s ?? null,
    large_value_backup_peak_rss_mib: sets.v?.blob ? Math.max(sets.v.blob.backup.peak_rss_mib, sets.v.text.backup.peak_rss_mib) : null,
    large_value_restore_peak_rss_mib: sets.v?.blob ? Math.max(sets.v.blob.restore.peak_rss_mib, sets.v.text.restore.peak_rss_mib) : null,
    prune_scale_wall_s: sets.p?.exit === 0 ? sets.p.wall_s : null,
    prune_scale_peak_rss_mib: sets.p?.exit === 0 ? sets.p.peak_rss_mib : null,
    ...Object.fromEntries(Object.keys(targetSpec).filter((k) => /^restic_/.test(k)).map((k) => [k, main[k] ?? null])),
    ...Object.fromEntries(Object.keys(targetSpec).filter((k) => /^(sqlite|scaling)_/.test(k)).map((k) => [k, perSet.s[k] ?? perSet.scaling[k] ?? null])),
  };
  const targets = Object.fromEntries(Object.entries(targetSpec).map(([k, [text, f]]) => [k, { text, met: ratios[k] == null ? null : f(ratios[k]) }]));
  const result = {
    started_at: started.toISOString(),
    finished_at: new Date().toISOString(),
    options: { quick, scale_mib: scaleMiB, tables: tableCount, only: [...only], runs, jobs, split: has('split'), ...(only.has('scaling') ? { scale_points: scalePoints } : {}) },
    host: { cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model, mem_mib: Math.round(os.totalmem() / MiB), node: process.version, postgres: pgVersion, pg_dump: dumpVersion, restic: toolVersion('restic', 'version'), sqlite3: toolVersion('sqlite3', '--version'), zstd: toolVersion('zstd', '--version'), loadavg: os.loadavg() },
    notes: {
      ratios: 'backup/restore/copy/new-bytes ratios are for data set b (tables_10k_* for c, which has --tables tables); wall-time ratios are medians of alternating runs',
      peak_rss_mib: 'largest peak RSS of any cairn process over all data sets but v (whose large-value goals are large_value_*_peak_rss_mib)',
      copy_rate_share: 'raw parallel COPY TO /dev/null wall time / cairn full backup wall time (same data)',
      startup: 'set u: median wall seconds of `cairn --version` and of a one-row SQLite backup into a local repository (CPU in sets.u)',
      new_bytes_share: 'cairn totals.newBytes / pg_dump -Fd output bytes for the same second backup (_of_full: / cairn full repository size)',
      restic: 'restic_* = cairn / restic on set b (pg_dump -Fc | restic backup --stdin; restore restic dump | pg_restore, one stream); _bytes = repository growth of each',
      sqlite: 'sqlite_* = cairn / peer on set s (a SQLite file): sqlite3 .backup + zstd -3, VACUUM INTO + zstd -3, restic backup <file>; bytes = output (repository growth, .zst size)',
      scaling: 'scaling_* from set b at --scale-points: s_per_gib_growth = seconds per GiB at the largest size / at the next smaller; peak_rss_growth = largest / smallest size',
    },
    ratios,
    targets,
    per_set_ratios: perSet,
    sets,
  };
  const file = writeResults(path.join(here, 'results'), started, result);
  console.log(markdown(result));
  console.log(`\nJSON: bench/results/${file} (and bench/results/latest.json; its mysql key is kept)`);
}

await main();
