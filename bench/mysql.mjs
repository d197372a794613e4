#!/usr/bin/env node
// `npm run bench -- --engine mysql`: cairn against mysqldump | gzip and mydumper / myloader on the
// local MariaDB (or MySQL) server, in the same run, with the same thread count.
//
//   node bench/run.js --engine mysql [--quick] [--scale-mib N] [--tables N] [--runs N] [--jobs N]
//                     [--tools cairn,mysqldump,mydumper] [--recreate] [--workdir DIR]
//                     [--mysql mysql://root@127.0.0.1:3306] [--keep-work]
//   node bench/run.js --engine mysql --cleanup   drop the data sets (bench_my_*) and leftovers
//
// Data set (created once on the server from seq_1_to_N sequence tables, reused while its marker
// table cairn_bench_marker holds the generator version; --recreate forces), bench_my_<mib>:
//   customers / products / orders / events (events the large one: text, ints, decimals,
//   datetimes, JSON, a LONGBLOB with compressible and incompressible content), audit_log (no
//   primary key), <tables> small tables of 10 rows (default 500, --quick 100), a view, a trigger,
//   a procedure, a function and an event; ~<mib> MiB of InnoDB data and indexes (DATA_LENGTH +
//   INDEX_LENGTH; default 1024, --quick 100).
// Jobs, each run alternately --runs times (default 3), order rotating; medians reported:
//   backup:  cairn backup create --jobs N; mysqldump --single-transaction --routines --triggers
//            --events | gzip; mydumper -t N --trx-consistency-only -G -E -R -c
//   restore: cairn restore --jobs N; gunzip | mysql (CREATE DATABASE first); myloader -t N -o
// Every restore is verified (same tables, views, routines, triggers, events; same row count in
// every table; CHECKSUM TABLE equal on each tool's first restore): a wrong restore is a failure.
// Results: markdown on stdout; JSON in bench/results/<timestamp>-mysql.json and under the
// "mysql" key of bench/results/latest.json (the PostgreSQL results there are kept).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { MiB, alternate, dirBytes, ensureDebianPackage, option, fmt, log, measurer, mib, procComm, procStat, ratio, rm, scratchDatabases, ticksToSeconds, writeResults } from './measure.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const argv = process.argv.slice(2);

// ---------------------------------------------------------------------------------------------
// options
const has = (name) => argv.includes(`--${name}`);
const opt = (name, dflt) => option(name, dflt, argv);
const known = new Set(['quick', 'scale-mib', 'tables', 'runs', 'jobs', 'tools', 'recreate', 'workdir', 'mysql', 'keep-work', 'cleanup', 'help']);
for (const a of argv) {
  if (a.startsWith('--') && !known.has(a.slice(2))) {
    console.error(`unknown option ${a} (--engine mysql --help lists the options)`);
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
const smallTables = Number(opt('tables', quick ? 100 : 500));
const runs = Number(opt('runs', 3));
const jobs = Number(opt('jobs', 2));
const tools = new Set(opt('tools', 'cairn,mysqldump,mydumper').split(',').map((s) => s.trim()).filter(Boolean));
const recreate = has('recreate');
const keepWork = has('keep-work');
for (const [k, v] of [['scale-mib', scaleMiB], ['tables', smallTables], ['runs', runs], ['jobs', jobs]]) {
  if (!Number.isInteger(v) || v <= 0) {
    console.error(`--${k} needs a positive whole number`);
    process.exit(2);
  }
}
for (const t of tools) {
  if (!['cairn', 'mysqldump', 'mydumper'].includes(t)) {
    console.error(`--tools: unknown tool ${t}; write a comma-separated list of cairn, mysqldump, mydumper`);
    process.exit(2);
  }
}

// The server: host, port and user from --mysql; a password only from MYSQL_PWD (never on a
// command line, except mydumper/myloader, which cannot read it otherwise).
const serverUrl = new URL(opt('mysql', 'mysql://root@127.0.0.1:3306'));
if (serverUrl.password) {
  console.error('--mysql: put the password in MYSQL_PWD, not in the URL (it would show in process lists)');
  process.exit(2);
}
const host = serverUrl.hostname || '127.0.0.1';
const port = serverUrl.port || '3306';
const user = decodeURIComponent(serverUrl.username || 'root');
const connArgs = ['--protocol=TCP', '-h', host, '-P', port, '-u', user];
const myloaderConn = ['-h', host, '-P', port, '-u', user, ...(process.env.MYSQL_PWD ? ['-p', process.env.MYSQL_PWD] : [])];
const dbUrl = (db) => `mysql://${encodeURIComponent(user)}@${host.includes(':') ? `[${host}]` : host}:${port}/${db}`;
const cairnBin = path.join(root, 'bin', 'cairn.js');

// ---------------------------------------------------------------------------------------------
// the mysql client (the data set is generated server-side)
/** Runs SQL through the mysql client (batch mode, tab-separated rows); returns stdout trimmed. */
function mysql(db, sql, { quiet = false } = {}) {
  const r = spawnSync('mysql', [...connArgs, '--batch', '--skip-column-names', ...(db ? [db] : [])], { input: sql, encoding: 'utf8', maxBuffer: 256 * MiB });
  if (r.status !== 0) {
    if (quiet) return null;
    throw new Error(`mysql${db ? ` on ${db}` : ''} failed: ${(r.stderr || r.error?.message || '').trim().slice(0, 2000)}`);
  }
  return r.stdout.replace(/\n$/, '');
}
const rows = (out) => (out ? out.split('\n').map((l) => l.split('\t')) : []);
const ident = (s) => `\`${String(s).replace(/`/g, '``')}\``;
const lit = (s) => `'${String(s).replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
const dropDb = (db) => mysql(null, `DROP DATABASE IF EXISTS ${ident(db)}`);
const dbExists = (db) => mysql(null, `SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ${lit(db)}`) === '1';
/**
 * Bytes of the database's tables and indexes (InnoDB pages in use, from the statistics ANALYZE
 * TABLE refreshes): the files' sizes would count InnoDB's preallocation, which dominates small
 * sets (every table's file starts at 64 KiB to 9 MiB).
 */
const dbSize = (db) => Number(mysql(null, `SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${lit(db)}`));
/** Bytes of the database's InnoDB files. */
const dbFileSize = (db) => Number(mysql(null, `SELECT COALESCE(SUM(FILE_SIZE), 0) FROM information_schema.INNODB_SYS_TABLESPACES WHERE NAME LIKE ${lit(db.replace(/[_%\\]/g, '\\$&') + '/%')}`));

if (has('cleanup')) {
  const dbs = rows(mysql(null, `SELECT s.SCHEMA_NAME FROM information_schema.SCHEMATA s WHERE s.SCHEMA_NAME REGEXP '^bench_tmp_[0-9]+_my_'
  OR (s.SCHEMA_NAME REGEXP '^bench_my_[0-9]+$' AND EXISTS (SELECT 1 FROM information_schema.TABLES t WHERE t.TABLE_SCHEMA = s.SCHEMA_NAME AND t.TABLE_NAME = 'cairn_bench_marker'))`));
  for (const [db] of dbs) {
    log(`dropping ${db}`);
    dropDb(db);
  }
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// measurement: server CPU is mariadbd's (one process, all threads) when the server is local
const serverPid = (() => {
  if (!/^(127\.0\.0\.1|localhost|::1|\[::1\])$/.test(host)) return null;
  for (const d of fs.readdirSync('/proc')) if (/^\d+$/.test(d) && /^(mariadbd|mysqld)$/.test(procComm(d))) return Number(d);
  return null;
})();
function serverCpu() {
  const st = serverPid && procStat(serverPid);
  return st ? ticksToSeconds(st.utime + st.stime) : null;
}
let work; // scratch directory, set in main
const { timed } = measurer({ workDir: () => work, serverCpu });
const bash = (script) => ['bash', ['-o', 'pipefail', '-c', script]];
const q = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;

// ---------------------------------------------------------------------------------------------
// data set
const GENERATOR = 'cairn-bench mysql v2';
const VOCAB = (() => {
  // deterministic pseudo-words from syllables (a seeded LCG), 2000 of them (as the PostgreSQL set b)
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
// A skewed random word (frequent words are frequent, as in real text): ELT evaluates only the
// chosen argument, so 2000 constant arguments cost parsing once per statement, not per row.
const WORD = `ELT(1 + FLOOR(POW(RAND(), 3) * ${VOCAB.length}), ${VOCAB.map((w) => `'${w}'`).join(',')})`;
const words = (max, countExpr) => `SUBSTRING_INDEX(CONCAT_WS(' ', ${Array(max).fill(WORD).join(', ')}), ' ', ${countExpr})`;
const pick = (list, skew = 1) => `ELT(1 + FLOOR(POW(RAND(), ${skew}) * ${list.length}), ${list.map((w) => `'${w}'`).join(',')})`;

const SCHEMA = `
CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL, email VARCHAR(200) NOT NULL, country CHAR(2),
  created_at DATETIME NOT NULL, balance DECIMAL(12,2), bio TEXT, prefs JSON) ENGINE=InnoDB;
CREATE TABLE products (id INT PRIMARY KEY, sku VARCHAR(20) NOT NULL UNIQUE, title VARCHAR(200), price DECIMAL(10,2), stock INT,
  attrs JSON, updated_at DATETIME(6)) ENGINE=InnoDB;
CREATE TABLE orders (id BIGINT PRIMARY KEY, uid CHAR(36) NOT NULL, customer_id INT NOT NULL, ordered_at DATETIME NOT NULL,
  status VARCHAR(16) NOT NULL, total DECIMAL(12,2), items JSON, shipping_address VARCHAR(255), KEY orders_customer (customer_id),
  CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id)) ENGINE=InnoDB;
CREATE TABLE events (id BIGINT PRIMARY KEY, created_at DATETIME(6) NOT NULL, customer_id INT, kind VARCHAR(16), amount DECIMAL(12,2),
  payload JSON, note TEXT, blob_data LONGBLOB, KEY events_created_at (created_at)) ENGINE=InnoDB;
CREATE TABLE audit_log (logged_at DATETIME(6) NOT NULL, actor VARCHAR(64), action VARCHAR(32), amount DECIMAL(10,2), detail TEXT,
  KEY audit_logged_at (logged_at)) ENGINE=InnoDB COMMENT 'no primary key';
CREATE VIEW revenue_by_day AS SELECT CAST(ordered_at AS DATE) AS day, SUM(total) AS total FROM orders GROUP BY CAST(ordered_at AS DATE);
CREATE TRIGGER products_touch BEFORE UPDATE ON products FOR EACH ROW SET NEW.updated_at = NOW(6);
DELIMITER //
CREATE PROCEDURE customer_orders(IN cid INT) READS SQL DATA BEGIN SELECT * FROM orders WHERE customer_id = cid ORDER BY id; END//
CREATE FUNCTION order_total(oid BIGINT) RETURNS DECIMAL(12,2) READS SQL DATA RETURN (SELECT total FROM orders WHERE id = oid)//
DELIMITER ;
CREATE EVENT purge_audit ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM audit_log WHERE logged_at < NOW() - INTERVAL 1 YEAR;
INSERT INTO products SELECT seq, CONCAT('SKU-', LPAD(seq, 6, '0')), ${words(5, '2 + seq % 4')}, ROUND(1 + RAND() * 300, 2), FLOOR(RAND() * 1000),
  JSON_OBJECT('color', ${WORD}, 'size', ELT(1 + seq % 4, 'S', 'M', 'L', 'XL'), 'weight_g', FLOOR(RAND() * 5000)),
  TIMESTAMP'2026-01-01 00:00:00' - INTERVAL FLOOR(RAND() * 400 * 86400) SECOND
FROM seq_1_to_5000;`;

/** One batch of rows: customers, orders, events and audit_log rows after the given last ids. */
function batchSql(c, nc, o, no, e, ne, a, na) {
  return `SET SESSION foreign_key_checks = 0, unique_checks = 0;
INSERT INTO customers SELECT seq, CONCAT(${WORD}, ' ', ${WORD}), CONCAT(${WORD}, '.', seq, '@', ${WORD}, '.example'),
  ${pick(['DE', 'FR', 'US', 'GB', 'NL', 'PL', 'ES', 'IT', 'SE', 'JP'], 2)}, TIMESTAMP'2020-01-01 00:00:00' + INTERVAL seq * 17 MINUTE,
  ROUND(RAND() * 10000 - 2000, 2), IF(seq % 3 = 0, ${words(30, '5 + seq % 26')}, NULL),
  JSON_OBJECT('newsletter', RAND() < 0.3, 'lang', ELT(1 + seq % 3, 'en', 'de', 'fr'), 'theme', ${WORD})
FROM seq_${c + 1}_to_${c + nc};
INSERT INTO orders SELECT seq, UUID(), 1 + FLOOR(RAND() * ${c + nc}), TIMESTAMP'2022-01-01 00:00:00' + INTERVAL seq * 41 SECOND,
  ${pick(['new', 'paid', 'shipped', 'delivered', 'cancelled'], 2)}, ROUND(RAND() * 900, 2),
  IF(seq % 2, JSON_ARRAY(JSON_OBJECT('line', 1, 'product', 1 + FLOOR(RAND() * 5000), 'qty', 1 + FLOOR(RAND() * 4)),
                         JSON_OBJECT('line', 2, 'product', 1 + FLOOR(RAND() * 5000), 'qty', 1 + FLOOR(RAND() * 4))),
              JSON_ARRAY(JSON_OBJECT('line', 1, 'product', 1 + FLOOR(RAND() * 5000), 'qty', 1 + FLOOR(RAND() * 4)))),
  CONCAT(FLOOR(RAND() * 300), ' ', ${WORD}, ' Street, ', ${WORD})
FROM seq_${o + 1}_to_${o + no};
INSERT INTO events SELECT seq, TIMESTAMP'2023-01-01 00:00:00' + INTERVAL seq * 3 SECOND + INTERVAL FLOOR(RAND() * 2000000) MICROSECOND,
  1 + FLOOR(RAND() * ${c + nc}), ${pick(['view', 'click', 'search', 'add_to_cart', 'purchase', 'login', 'logout', 'refund'], 2)},
  ROUND(RAND() * 500, 2),
  JSON_OBJECT('ua', CONCAT(${WORD}, '/', FLOOR(RAND() * 20)), 'ip', CONCAT('10.', FLOOR(RAND() * 255), '.', FLOOR(RAND() * 255), '.', seq % 255),
    'ok', RAND() < 0.95, 'ms', FLOOR(RAND() * 900), 'tags', JSON_ARRAY(${WORD}, ${WORD})),
  ${words(20, '2 + seq % 19')},
  CASE seq % 10 WHEN 0 THEN RANDOM_BYTES(256 + seq % 768)
                WHEN 5 THEN REPEAT(CONCAT(${WORD}, ' ', seq, ' ', ${WORD}, '; '), 8 + seq % 40) END
FROM seq_${e + 1}_to_${e + ne};
INSERT INTO audit_log SELECT TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq * 7 SECOND, CONCAT('user', FLOOR(RAND() * 500)),
  ${pick(['login', 'update', 'delete', 'export', 'grant'], 2)}, IF(seq % 4 = 0, NULL, ROUND(RAND() * 100, 2)), ${words(12, '1 + seq % 12')}
FROM seq_${a + 1}_to_${a + na};`;
}

function smallTablesSql(lo, hi) {
  const out = [];
  for (let i = lo; i < hi; i++) {
    const t = `small_${String(i).padStart(4, '0')}`;
    out.push(`CREATE TABLE ${t} (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL, qty INT, price DECIMAL(8,2), updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP) ENGINE=InnoDB;
INSERT INTO ${t} (id, name, qty, price, updated_at) SELECT seq, CONCAT('item ', seq, ' of ${i}'), seq * 7 % 13, seq * 1.25, TIMESTAMP'2026-01-01 00:00:00' FROM seq_1_to_10;`);
  }
  return out.join('\n');
}

function createSet(db, marker) {
  dropDb(db);
  mysql(null, `CREATE DATABASE ${ident(db)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  mysql(db, SCHEMA);
  for (let lo = 0; lo < smallTables; lo += 250) mysql(db, smallTablesSql(lo, Math.min(smallTables, lo + 250)));
  // Batches of ~1/10 of the target until the files reach it: customers ~8 %, orders ~20 %,
  // events the rest, audit_log a tenth of the events' row count (bytes per row from batch 1).
  const target = scaleMiB * MiB;
  let [c, o, e, a] = [0, 0, 0, 0];
  let perRow = 400;
  for (let batch = 0; dbSize(db) < target && batch < 1000; batch++) {
    const before = dbSize(db);
    const slice = Math.min(target - before, target / 10);
    const nc = Math.max(100, Math.round((slice * 0.08) / (perRow * 0.9)));
    const no = Math.max(100, Math.round((slice * 0.2) / (perRow * 0.7)));
    const ne = Math.max(1000, Math.round((slice * 0.72) / perRow));
    const na = Math.max(100, Math.round(ne / 10));
    mysql(db, batchSql(c, nc, o, no, e, ne, a, na) + '\nANALYZE TABLE customers, orders, events, audit_log;');
    const grown = dbSize(db) - before;
    if (batch === 0 && grown > 0) perRow = grown / (nc * 0.9 + no * 0.7 + ne + na * 0.4); // rough, good enough
    [c, o, e, a] = [c + nc, o + no, e + ne, a + na];
    log(`${db}: ${(dbSize(db) / MiB).toFixed(0)} / ${scaleMiB} MiB`);
  }
  mysql(db, `ANALYZE TABLE customers, products, orders, events, audit_log;
CREATE TABLE cairn_bench_marker (generator VARCHAR(200) PRIMARY KEY, created_at DATETIME NOT NULL) ENGINE=InnoDB;
INSERT INTO cairn_bench_marker VALUES (${lit(marker)}, NOW());`);
}

function ensureSet() {
  const db = `bench_my_${scaleMiB}`;
  const marker = `${GENERATOR} mib=${scaleMiB} tables=${smallTables}`;
  const have = dbExists(db) ? mysql(db, 'SELECT generator FROM cairn_bench_marker', { quiet: true }) : null;
  if (!recreate && have === marker) {
    log(`reusing ${db} (${(dbSize(db) / MiB).toFixed(0)} MiB)`);
  } else {
    log(`creating ${db}${have ? ` (it holds "${have}", not "${marker}")` : ''}`);
    const t0 = performance.now();
    createSet(db, marker);
    log(`created ${db} in ${((performance.now() - t0) / 1000).toFixed(0)} s (${(dbSize(db) / MiB).toFixed(0)} MiB)`);
  }
  return db;
}

// ---------------------------------------------------------------------------------------------
// verification: a restore counts only when it restored everything
/** Objects and exact row counts of a database: {objects: sorted "kind name" lines, counts: name -> rows}. */
function inventory(db) {
  const objects = rows(mysql(null, `SELECT CONCAT('table ', TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${lit(db)} AND TABLE_TYPE = 'BASE TABLE'
UNION ALL SELECT CONCAT('view ', TABLE_NAME) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ${lit(db)}
UNION ALL SELECT CONCAT(LOWER(ROUTINE_TYPE), ' ', ROUTINE_NAME) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ${lit(db)}
UNION ALL SELECT CONCAT('trigger ', TRIGGER_NAME) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ${lit(db)}
UNION ALL SELECT CONCAT('event ', EVENT_NAME) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ${lit(db)}`)).map((r) => r[0]).sort();
  const tables = objects.filter((o) => o.startsWith('table ')).map((o) => o.slice(6));
  const counts = {};
  for (let i = 0; i < tables.length; i += 200) {
    const part = tables.slice(i, i + 200);
    for (const [t, n] of rows(mysql(db, part.map((t) => `SELECT ${lit(t)}, COUNT(*) FROM ${ident(t)}`).join('\nUNION ALL ')))) counts[t] = Number(n);
  }
  return { objects, counts };
}
function checksums(db, tables) {
  const out = {};
  for (let i = 0; i < tables.length; i += 200) {
    for (const [t, sum] of rows(mysql(db, `CHECKSUM TABLE ${tables.slice(i, i + 200).map(ident).join(', ')} EXTENDED`))) out[t.slice(t.indexOf('.') + 1)] = sum;
  }
  return out;
}
let source; // inventory of the data set, and its checksums once needed
const checked = new Set();
/** Throws, naming the first differences, unless `db` holds what the source holds. */
function verify(tool, db) {
  const got = inventory(db);
  const missing = source.objects.filter((o) => !got.objects.includes(o));
  const extra = got.objects.filter((o) => !source.objects.includes(o));
  const wrong = Object.keys(source.counts).filter((t) => t in got.counts && got.counts[t] !== source.counts[t]);
  const problems = [];
  if (missing.length) problems.push(`missing ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` (+${missing.length - 5})` : ''}`);
  if (extra.length) problems.push(`extra ${extra.slice(0, 5).join(', ')}`);
  if (wrong.length) problems.push(`row counts differ: ${wrong.slice(0, 5).map((t) => `${t} ${got.counts[t]} (source ${source.counts[t]})`).join(', ')}`);
  if (!problems.length && !checked.has(tool)) {
    const tables = Object.keys(source.counts);
    source.sums ??= checksums(source.db, tables);
    const sums = checksums(db, tables);
    const bad = tables.filter((t) => sums[t] !== source.sums[t]);
    if (bad.length) problems.push(`CHECKSUM TABLE differs for ${bad.slice(0, 5).join(', ')}`);
    checked.add(tool);
  }
  if (problems.length) throw new Error(`restore by ${tool} into ${db} is not the source: ${problems.join('; ')}`);
}

// ---------------------------------------------------------------------------------------------
// tools
function cairnInit(repo) {
  rm(repo);
  const r = spawnSync(process.execPath, [cairnBin, 'repo', 'init', repo], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cairn repo init failed: ${r.stderr}`);
}
function cairnBackup(db, repo, id) {
  const before = dirBytes(repo);
  const s = timed(process.execPath, [cairnBin, 'backup', 'create', '--source', dbUrl(db), '--repo', repo, '--id', id, '--jobs', String(jobs), '--json']);
  const m = JSON.parse(s.stdout);
  s.bytes = dirBytes(repo) - before; // repository growth
  s.newBytes = m.totals?.newBytes;
  s.storedBytes = m.totals?.storedBytes;
  s.logicalBytes = m.totals?.logicalBytes;
  return s;
}
function cairnRestore(repo, id, db) {
  dropDb(db);
  return timed(process.execPath, [cairnBin, 'restore', id, '--repo', repo, '--to', dbUrl(db), '--jobs', String(jobs), '--json']);
}
function mysqldumpGzip(db, file) {
  rm(file);
  const s = timed(...bash(`mysqldump ${connArgs.map(q).join(' ')} --single-transaction --routines --triggers --events ${q(db)} | gzip > ${q(file)}`));
  s.bytes = fs.statSync(file).size;
  return s;
}
function mysqlRestore(file, db, charset) {
  dropDb(db);
  // CREATE DATABASE is part of the job: cairn creates its target database too.
  const create = `CREATE DATABASE ${ident(db)} CHARACTER SET ${charset.charset} COLLATE ${charset.collation}`;
  return timed(...bash(`mysql ${connArgs.map(q).join(' ')} -e ${q(create)} && gunzip -c ${q(file)} | mysql ${connArgs.map(q).join(' ')} ${q(db)}`));
}
// mydumper's consistent mode for InnoDB: --trx-consistency-only holds FLUSH TABLES WITH READ
// LOCK only until every thread has started its consistent snapshot (as cairn's backup does).
// No --rows: chunking the large tables made both mydumper and myloader slower here (1 GiB set,
// 2 threads, 2 cores: dump 58 s whole tables, 62 s with -r 100000, 76 s with -r 500000; load
// 118 s against 130 s), so the peer runs in its faster configuration.
function mydumper(db, dir) {
  rm(dir);
  const s = timed('mydumper', [...myloaderConn, '-B', db, '-t', String(jobs), '--trx-consistency-only', '-G', '-E', '-R', '-c', '-v', '1', '-o', dir]);
  s.bytes = dirBytes(dir);
  return s;
}
function myloader(dir, db) {
  dropDb(db);
  return timed('myloader', [...myloaderConn, '-t', String(jobs), '-d', dir, '-B', db, '-o', '-v', '1']);
}

/** mydumper/myloader present, installing Debian's package when missing; else why not. */
const ensureMydumper = () => ensureDebianPackage('mydumper', ['mydumper', 'myloader']);

// ---------------------------------------------------------------------------------------------
const scratch = scratchDatabases({ dropDb, prefix: `bench_tmp_${process.pid}_my_`, onCleanup: () => work && !keepWork && rm(work) });
const tmpDb = scratch.name;

const targetSpec = {
  backup_vs_mysqldump_gzip: ['≤ 0.5', (v) => v <= 0.5],
  backup_vs_mydumper: ['≤ 1.0', (v) => v <= 1],
  restore_vs_mysql: ['≤ 0.5', (v) => v <= 0.5],
  restore_vs_myloader: ['≤ 1.0', (v) => v <= 1],
  repository_bytes_vs_gzip_dump: ['≤ 1.0', (v) => v <= 1],
  peak_rss_mib: ['≤ 256', (v) => v <= 256],
};

function markdown(result) {
  const o = result.options;
  const lines = [];
  lines.push(`## cairn MySQL benchmark — ${result.started_at} (${o.quick ? 'quick' : 'full'}, ${result.dataset.database} ${mib(result.dataset.bytes)} MiB, ${result.dataset.tables} tables, ${o.runs} runs, --jobs ${o.jobs}, ${os.cpus().length} cores, ${result.host.server})`);
  lines.push('');
  lines.push('| job | tool | wall s | client CPU s | server CPU s | peak RSS MiB | output MiB | cairn / peer (wall) |');
  lines.push('|---|---|---:|---:|---:|---:|---:|---:|');
  const failures = [];
  for (const [job, m] of [['backup', result.backup], ['restore', result.restore]]) {
    for (const [tool, s] of Object.entries(m)) {
      if (s.skipped) {
        lines.push(`| ${job} | ${tool} | skipped: ${s.skipped} | | | | | |`);
        continue;
      }
      if (s.error) failures.push(`${job} / ${tool} FAILED: ${s.error.split('\n')[0].slice(0, 400)}`);
      const rr = tool === 'cairn' ? '' : fmt(ratio(m.cairn?.wall_s, s.wall_s));
      lines.push(`| ${job} | ${(result.labels[tool] ?? tool).replace(/\|/g, '\\|')}${s.error ? ' (FAILED)' : ''} | ${fmt(s.wall_s)} | ${fmt(s.cpu_s)} | ${fmt(s.server_cpu_s)} | ${fmt(s.peak_rss_mib, 0)} | ${job === 'backup' ? mib(s.output_bytes) : ''} | ${rr} |`);
    }
  }
  lines.push('');
  lines.push('Output = repository growth (cairn) or dump size. Client CPU = user+sys of the tool and its children; server CPU = mariadbd over the same interval. Every restore was verified (objects, row counts, CHECKSUM TABLE).');
  for (const f of failures) lines.push(`- ${f}`);
  lines.push('');
  lines.push('| ratio | value | target | met |');
  lines.push('|---|---:|---|---|');
  for (const [k, v] of Object.entries(result.ratios)) {
    const t = result.targets[k];
    lines.push(`| ${k} | ${fmt(v, 3)} | ${t ? t.text : ''} | ${t ? (t.met == null ? '–' : t.met ? 'yes' : 'NO') : ''} |`);
  }
  return lines.join('\n');
}

function main() {
  const started = new Date();
  work = fs.mkdtempSync(path.join(opt('workdir', os.tmpdir()), 'cairn-bench-mysql-'));
  const version = mysql(null, 'SELECT VERSION()');
  const dumpVersion = spawnSync('mysqldump', ['--version'], { encoding: 'utf8' }).stdout?.trim();
  const skipMydumper = tools.has('mydumper') ? ensureMydumper() : 'not in --tools';
  if (tools.has('mydumper') && skipMydumper) log(`mydumper / myloader skipped: ${skipMydumper}`);
  const mydumperVersion = skipMydumper ? null : spawnSync('mydumper', ['--version'], { encoding: 'utf8' }).stdout?.trim();
  log(`work dir ${work}; server ${version}; ${dumpVersion}; ${mydumperVersion ?? 'no mydumper'}; server CPU from ${serverPid ? `mariadbd ${serverPid}` : '(not available)'}`);
  let result;
  try {
    const db = ensureSet();
    source = { db, ...inventory(db) };
    const [charset, collation] = rows(mysql(null, `SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ${lit(db)}`))[0];
    const dataset = { database: db, bytes: dbSize(db), file_bytes: dbFileSize(db), tables: Object.keys(source.counts).length, rows: Object.values(source.counts).reduce((x, y) => x + y, 0), objects: source.objects.length, generator: `${GENERATOR} mib=${scaleMiB} tables=${smallTables}` };
    log(`${db}: ${mib(dataset.bytes)} MiB, ${dataset.tables} tables, ${dataset.rows} rows`);

    const repo = path.join(work, 'repo');
    const dumpFile = path.join(work, 'dump.sql.gz');
    const dumpDir = path.join(work, 'mydumper');
    let lastCairn = null;
    let haveDump = false;
    let haveDir = false;
    const backupTools = {};
    if (tools.has('cairn')) {
      backupTools.cairn = (i) => {
        cairnInit(repo); // a fresh repository every run
        const s = cairnBackup(db, repo, `full-${i}`);
        lastCairn = `full-${i}`;
        return s;
      };
    }
    if (tools.has('mysqldump')) {
      backupTools.mysqldump_gzip = () => {
        const s = mysqldumpGzip(db, dumpFile);
        haveDump = true;
        return s;
      };
    }
    if (tools.has('mydumper') && !skipMydumper) {
      backupTools.mydumper = () => {
        const s = mydumper(db, dumpDir);
        haveDir = true;
        return s;
      };
    }
    log('backup');
    const backup = alternate('backup', backupTools, { n: runs });
    if (tools.has('mydumper') && skipMydumper) backup.mydumper = { skipped: skipMydumper };

    const rc = tmpDb('rc');
    const rm_ = tmpDb('rm');
    const rl = tmpDb('rl');
    const restoreTools = {};
    const checkedRestore = (tool, db2, f) => {
      const s = f();
      verify(tool, db2);
      dropDb(db2);
      return s;
    };
    if (tools.has('cairn')) {
      restoreTools.cairn = () => {
        if (!lastCairn) throw new Error('no cairn backup to restore (the backup failed)');
        return checkedRestore('cairn', rc, () => cairnRestore(repo, lastCairn, rc));
      };
    }
    if (tools.has('mysqldump')) {
      restoreTools.mysql = () => {
        if (!haveDump) throw new Error('no mysqldump output to restore');
        return checkedRestore('mysql', rm_, () => mysqlRestore(dumpFile, rm_, { charset, collation }));
      };
    }
    if (tools.has('mydumper') && !skipMydumper) {
      restoreTools.myloader = () => {
        if (!haveDir) throw new Error('no mydumper output to restore');
        return checkedRestore('myloader', rl, () => myloader(dumpDir, rl));
      };
    }
    log('restore');
    const restore = alternate('restore', restoreTools, { n: runs });
    if (tools.has('mydumper') && skipMydumper) restore.myloader = { skipped: skipMydumper };

    const ok = (s) => (s && !s.error && !s.skipped ? s : null);
    const cb = ok(backup.cairn);
    const cr = ok(restore.cairn);
    const ratios = {
      backup_vs_mysqldump_gzip: ratio(cb?.wall_s, ok(backup.mysqldump_gzip)?.wall_s),
      backup_vs_mydumper: ratio(cb?.wall_s, ok(backup.mydumper)?.wall_s),
      restore_vs_mysql: ratio(cr?.wall_s, ok(restore.mysql)?.wall_s),
      restore_vs_myloader: ratio(cr?.wall_s, ok(restore.myloader)?.wall_s),
      repository_bytes_vs_gzip_dump: ratio(cb?.output_bytes, ok(backup.mysqldump_gzip)?.output_bytes),
      repository_bytes_vs_mydumper: ratio(cb?.output_bytes, ok(backup.mydumper)?.output_bytes),
      backup_cpu_vs_mysqldump_gzip: ratio(cb?.cpu_s, ok(backup.mysqldump_gzip)?.cpu_s),
      peak_rss_mib: cb || cr ? Math.max(cb?.peak_rss_mib ?? 0, cr?.peak_rss_mib ?? 0) : null,
    };
    const targets = Object.fromEntries(Object.entries(targetSpec).map(([k, [text, f]]) => [k, { text, met: ratios[k] == null ? null : f(ratios[k]) }]));
    result = {
      started_at: started.toISOString(),
      finished_at: new Date().toISOString(),
      options: { quick, scale_mib: scaleMiB, small_tables: smallTables, runs, jobs, tools: [...tools] },
      host: { cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model, mem_mib: Math.round(os.totalmem() / MiB), node: process.version, server: version, mysqldump: dumpVersion, mydumper: mydumperVersion, loadavg: os.loadavg() },
      dataset,
      labels: {
        cairn: `cairn --jobs ${jobs}`,
        mysqldump_gzip: 'mysqldump --single-transaction | gzip',
        mydumper: `mydumper -t ${jobs} --trx-consistency-only -c`,
        mysql: 'gunzip | mysql',
        myloader: `myloader -t ${jobs}`,
      },
      notes: {
        ratios: 'cairn wall time / peer wall time (medians of alternating runs); bytes: cairn repository growth / dump size',
        peak_rss_mib: 'largest peak RSS of any cairn process (backup or restore)',
        verification: 'each restore is checked against the source: tables, views, routines, triggers, events, exact row counts of every table; CHECKSUM TABLE on the first restore of each tool',
      },
      ratios,
      targets,
      backup,
      restore,
    };
  } finally {
    scratch.cleanup();
  }
  const file = writeResults(path.join(here, 'results'), started, result, { key: 'mysql', suffix: '-mysql' });
  console.log(markdown(result));
  console.log(`\nJSON: bench/results/${file} (and the mysql key of bench/results/latest.json)`);
}

main();
