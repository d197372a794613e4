// Set l (issue 19): the backup listing of `cairn server` with many backups.
//
//   node bench/listing.mjs [--backups N] [--runs N] [--json FILE]   (needs the build: npm run build)
//
// One real small SQLite backup (the CLI), then N-1 more manifests written cheaply: copies of it
// with new ids and createdAt a minute apart, through the repository's manifest writer. A real
// server (startServer → createApp) over HTTP with a viewer token, and timed (median of --runs):
//   first page cold   GET /v1/backups?limit=50&sort=createdAt&order=desc, summary cache emptied first
//   first page warm   the same, cache filled
//   full cold         GET /v1/backups (no paging: every backup), cache emptied first: what every
//                     listing cost before the cache (each manifest read)
//   full warm         the same, cache filled
//   cli list          `cairn backup list --repo <dir>` (a process; the CLI has no summary cache)
// Prints a small table on stderr and the result as JSON (stdout, or --json FILE).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { log, median, option } from './measure.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const argv = process.argv.slice(2);
const opt = (name, dflt) => option(name, dflt, argv);
const backups = Number(opt('backups', '10000'));
const runs = Number(opt('runs', '5'));
const jsonOut = opt('json', undefined);

const dist = (p) => import(path.join(root, 'dist', p));
const { Repository } = await dist('repo/repository.js');
const { FileSystemStorage } = await dist('storage/fs.js');
const { SqliteTokenStore } = await dist('catalog/tokens.js');
const { startServer, catalogFile } = await dist('server/index.js');
const { default: Database } = await dist('sources/sqlite/driver.js');
const { mapLimit } = await dist('core/errgroup.js');

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-bench-listing-'));
const repoPath = path.join(work, 'repo');
const dataDir = path.join(work, 'data');
let server;
try {
  const repo = await Repository.init(new FileSystemStorage(repoPath));
  const db = path.join(work, 'small.db');
  const d = new Database(db);
  d.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES ('a'), ('b'), ('c');");
  d.close();
  const r = spawnSync(process.execPath, [path.join(root, 'bin', 'cairn.js'), 'backup', 'create', '--source', `sqlite://${db}`, '--repo', repoPath, '--id', 'seed', '--json'], { encoding: 'utf8', env: { ...process.env, CAIRN_REPO: '', CAIRN_SERVER: '' } });
  if (r.status !== 0) throw new Error(`the seed backup failed: ${r.stderr}`);
  const seed = await repo.readManifest('seed');
  const t0 = Date.parse('2025-01-01T00:00:00Z');
  const started = performance.now();
  const ids = Array.from({ length: backups - 1 }, (_, i) => i);
  await mapLimit(ids, 16, async (i) => {
    const at = new Date(t0 + i * 60_000).toISOString();
    await repo.writeManifest({ ...seed, id: `copy-${String(i).padStart(5, '0')}`, createdAt: at, completedAt: at });
  });
  log(`set l: ${backups} manifests in ${repoPath} (${((performance.now() - started) / 1000).toFixed(1)} s to write)`);

  const store = new SqliteTokenStore(catalogFile(dataDir));
  const token = store.create('viewer', 'bench').token;
  store.close();
  const catalog = () => new Database(catalogFile(dataDir));
  // Cold: the cache table emptied and a new server process state (the store keeps its rows in
  // memory too), as after the first start on an existing repository.
  const coldStart = async () => {
    await server?.close();
    const c = catalog();
    if (c.prepare("SELECT 1 FROM sqlite_master WHERE name = 'backup_summaries'").get()) c.prepare('DELETE FROM backup_summaries').run();
    c.close();
    server = await startServer({ dataDir, port: 0, scheduleTickMs: 3600_000, env: { BACKUP_FILESYSTEM_PATH: repoPath } });
  };
  // Rows read within 2 s of a manifest's write are read again next time (SETTLE_MS): measure
  // as a server would see manifests written before, not this very second.
  await new Promise((resolve) => setTimeout(resolve, 2100));
  const get = async (query) => {
    const t = performance.now();
    const res = await fetch(`${server.url}/v1/backups${query}`, { headers: { authorization: `Bearer ${token}` } });
    const body = await res.json();
    const ms = performance.now() - t;
    if (!res.ok) throw new Error(`GET /v1/backups${query}: ${res.status} ${JSON.stringify(body).slice(0, 300)}`);
    return { ms, body };
  };
  const page = '?limit=50&sort=createdAt&order=desc';
  const samples = { first_page_cold_ms: [], first_page_warm_ms: [], full_cold_ms: [], full_warm_ms: [] };
  let check;
  for (let i = 0; i < runs; i++) {
    await coldStart();
    samples.first_page_cold_ms.push((await get(page)).ms);
    const warm = await get(page);
    samples.first_page_warm_ms.push(warm.ms);
    check = warm.body;
    await coldStart();
    samples.full_cold_ms.push((await get('')).ms);
    const full = await get('');
    samples.full_warm_ms.push(full.ms);
    if (full.body.backups.length !== backups) throw new Error(`the full listing has ${full.body.backups.length} backups, not ${backups}`);
  }
  if (check.total !== backups || check.backups.length !== 50 || check.backups[0].id !== 'seed' || check.backups[1].id !== `copy-${String(backups - 2).padStart(5, '0')}`) {
    throw new Error(`unexpected first page: total ${check.total}, ${check.backups.length} backups, first ${check.backups[0]?.id}`);
  }
  // The CLI's `cairn backup list` (no summary cache: every manifest read), as a user runs it.
  samples.cli_list_ms = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    const cli = spawnSync(process.execPath, [path.join(root, 'bin', 'cairn.js'), 'backup', 'list', '--repo', repoPath], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, env: { ...process.env, CAIRN_REPO: '', CAIRN_SERVER: '' } });
    samples.cli_list_ms.push(performance.now() - t);
    if (cli.status !== 0 || cli.stdout.split('\n').filter((l) => l.startsWith('copy-')).length !== backups - 1) throw new Error(`cairn backup list failed or listed too few: ${cli.stderr.slice(0, 300)}`);
  }
  const result = { backups, runs, ...Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, Math.round(median(v) * 10) / 10])), samples };
  result.warm_page_vs_full_cold = Math.round((result.first_page_warm_ms / result.full_cold_ms) * 1000) / 1000;
  result.cold_page_vs_full_cold = Math.round((result.first_page_cold_ms / result.full_cold_ms) * 1000) / 1000;
  log(`set l (${backups} backups, median of ${runs}): first page cold ${result.first_page_cold_ms} ms, warm ${result.first_page_warm_ms} ms; full listing cold ${result.full_cold_ms} ms, warm ${result.full_warm_ms} ms; CLI backup list ${result.cli_list_ms} ms; warm page / full cold ${result.warm_page_vs_full_cold}`);
  const text = JSON.stringify(result, null, 2);
  if (jsonOut) fs.writeFileSync(jsonOut, text);
  else console.log(text);
} finally {
  await server?.close();
  fs.rmSync(work, { recursive: true, force: true });
}
