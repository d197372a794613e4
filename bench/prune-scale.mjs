#!/usr/bin/env node
// Prune at scale (issue 22): a file-system repository with --backups manifests and --packs packs
// (written directly with cairn's own PackBuilder, index documents and manifests: generating them
// through real backups would take hours), a share of them unreferenced, then `cairn prune` under
// /usr/bin/time: wall seconds, CPU seconds and peak RSS, against the goal (minutes, ≤ 256 MiB).
//
//   node bench/prune-scale.mjs [--backups 1000] [--packs 100000] [--blobs 10] [--refs 1000]
//                              [--unused 0.1] [--workdir DIR] [--json FILE] [--keep]
//
// Each pack holds --blobs small blobs (stored uncompressed: prune's cost is in metadata, not in
// bytes); backup i references --refs chunks drawn from a window that slides over the chunks, so
// consecutive backups share most of them (as daily backups do); the packs of the last --unused
// share of chunks are referenced by no backup and are deleted. Packs and index documents are
// dated two hours back so that prune's one-hour grace period does not keep them.
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i === -1 ? dflt : argv[i + 1];
};
const backups = Number(opt('backups', 1000));
const packs = Number(opt('packs', 100000));
const blobsPerPack = Number(opt('blobs', 10));
const refs = Number(opt('refs', 1000));
const unused = Number(opt('unused', 0.1));

const { FileSystemStorage } = await import(path.join(root, 'dist/storage/fs.js'));
const { Repository } = await import(path.join(root, 'dist/repo/repository.js'));
const { PackBuilder, packKey } = await import(path.join(root, 'dist/repo/pack.js'));
const { writeIndexDocument } = await import(path.join(root, 'dist/repo/chunk-index.js'));
const { FORMAT_VERSION } = await import(path.join(root, 'dist/core/schemas.js'));

const work = fs.mkdtempSync(path.join(opt('workdir', os.tmpdir()), 'cairn-prune-scale-'));
const dir = path.join(work, 'repo');
const log = (m) => console.error(`[prune-scale ${new Date().toISOString().slice(11, 19)}] ${m}`);
const storage = new FileSystemStorage(dir);
const repo = await Repository.init(storage);
const old = new Date(Date.now() - 2 * 3600_000);

log(`writing ${packs} packs of ${blobsPerPack} blobs into ${dir}`);
const chunkIds = [];
let indexPacks = [];
for (let p = 0; p < packs; p++) {
  const builder = new PackBuilder();
  for (let b = 0; b < blobsPerPack; b++) {
    const raw = randomBytes(48);
    const id = createHash('sha256').update(raw).digest('hex');
    builder.add(id, raw, raw.length, 'none');
    chunkIds.push(id);
  }
  const pack = builder.finish();
  const file = path.join(dir, packKey(pack.id));
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, Buffer.concat(pack.parts ?? [pack.bytes]));
  fs.utimesSync(file, old, old);
  indexPacks.push({ id: pack.id, length: pack.length ?? pack.bytes.length, blobs: pack.blobs });
  if (indexPacks.length === 2000 || p === packs - 1) {
    await writeIndexDocument(storage, indexPacks);
    indexPacks = [];
  }
  if ((p + 1) % 20000 === 0) log(`${p + 1} packs`);
}
const usable = Math.floor(chunkIds.length * (1 - unused));
const step = Math.max(1, Math.floor((usable - refs) / Math.max(1, backups - 1)));
log(`writing ${backups} manifests of ${refs} chunks each (window step ${step})`);
for (let i = 0; i < backups; i++) {
  const start = Math.min(i * step, usable - refs);
  const chunks = chunkIds.slice(start, start + refs);
  const now = new Date().toISOString();
  await repo.writeManifest({
    formatVersion: FORMAT_VERSION, id: `scale-${String(i).padStart(5, '0')}`, createdAt: now, completedAt: now, type: 'manual', expiresAt: null,
    source: { kind: 'test', name: 'scale', location: 'test:', serverVersion: '1' }, scope: {}, compression: { algorithm: 'zstd', level: 'default' },
    collections: [{ name: 'c', kind: 'table', definition: {}, rowCount: 0, logicalBytes: 0, storedBytes: 0, newBytes: 0, chunks }],
    totals: { collections: 1, rows: 0, logicalBytes: 0, storedBytes: 0, newBytes: 0, reusedBytes: 0, chunks: chunks.length, newChunks: 0 },
    warnings: [],
  });
}
for (const f of fs.readdirSync(path.join(dir, 'index'))) fs.utimesSync(path.join(dir, 'index', f), old, old);

log('cairn prune');
const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S %M', process.execPath, path.join(root, 'bin/cairn.js'), 'prune', '--repo', dir, '--json'], { encoding: 'utf8', maxBuffer: 64 << 20 });
const timeLine = r.stderr.trim().split('\n').pop();
const [wall, user, sys, rssKiB] = timeLine.split(' ').map(Number);
let report = null;
try {
  report = JSON.parse(r.stdout);
} catch {
  log(`prune exited ${r.status}: ${r.stderr.slice(0, 2000)}`);
}
const result = { backups, packs, blobs_per_pack: blobsPerPack, refs_per_backup: refs, unused_share: unused, exit: r.status, wall_s: wall, cpu_s: +(user + sys).toFixed(2), peak_rss_mib: Math.round(rssKiB / 1024), report, goal: { wall_s: 'minutes', peak_rss_mib: 256 } };
console.log(JSON.stringify(result, null, 2));
if (opt('json')) fs.writeFileSync(opt('json'), JSON.stringify(result, null, 2));
if (!argv.includes('--keep')) fs.rmSync(work, { recursive: true, force: true });
process.exit(r.status === 0 ? 0 : 1);
