#!/usr/bin/env node
// Memory while a multi-GiB stream uploads to an S3 repository (issue 5): a backup of one
// synthetic collection of --gib GiB of incompressible bytes, through the real pipeline
// (chunker, dedup, compression pool, packs, S3 uploads — multipart when a pack is over 64 MiB)
// into s3rver started here on loopback. RSS is sampled every 100 ms; memory is "flat" when the
// peak of the second half of the stream is within 32 MiB of the first half's.
//
//   node bench/run.js --upload [--gib N] [--pack-mib M ...]     (default: 3 GiB; packs of 16 and 128 MiB)
import { spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { option } from './measure.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const argv = process.argv.slice(2);
const opt = (name, dflt) => option(name, dflt, argv);
const gib = Number(opt('gib', 3));
const packMiBs = (opt('pack-mib', '16,128')).split(',').map(Number);
if (!(gib > 0) || packMiBs.some((p) => !(p >= 1 && p <= 1024))) {
  console.error('--gib needs a positive number, --pack-mib numbers between 1 and 1024');
  process.exit(2);
}
const MiB = 1024 * 1024;
const log = (...a) => console.error(`[upload ${new Date().toISOString().slice(11, 19)}]`, ...a);

const { runBackup } = await import(path.join(root, 'dist/jobs/backup.js'));
const { Repository } = await import(path.join(root, 'dist/repo/repository.js'));
const { S3Storage } = await import(path.join(root, 'dist/storage/s3.js'));

/** s3rver on a free loopback port (a child process: it needs --openssl-legacy-provider on Node 20). */
async function startS3rver(dir, bucket) {
  const require = createRequire(import.meta.url);
  const pkg = require.resolve('s3rver/package.json');
  const bin = path.join(path.dirname(pkg), require('s3rver/package.json').bin.s3rver);
  const child = spawn(process.execPath, [bin, '-d', dir, '-a', '127.0.0.1', '-p', '0', '--silent', '--configure-bucket', bucket], {
    env: { ...process.env, NODE_OPTIONS: [process.env.NODE_OPTIONS, '--openssl-legacy-provider'].filter(Boolean).join(' ') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const port = await new Promise((resolve, reject) => {
    const onData = (d) => {
      out += d.toString();
      const m = /listening on [\d.]+:(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => reject(new Error(`s3rver exited with ${code}: ${out}`)));
  });
  child.stdout.resume();
  child.stderr.resume();
  return { url: `http://127.0.0.1:${port}`, stop: () => new Promise((r) => (child.once('exit', r), child.kill('SIGTERM'))) };
}

/** A source with one collection: `bytes` of random data in 1 MiB pieces. */
function syntheticSource(bytes, onBytes) {
  const collection = { name: 'stream', kind: 'table', definition: {}, dataFormat: 'raw' };
  return {
    kind: 'synthetic',
    name: 'upload-bench',
    location: 'synthetic://upload-bench',
    async openSnapshot() {
      return {
        serverVersion: '0',
        warnings: [],
        maxParallelReads: 1,
        async listCollections() {
          return [collection];
        },
        readData() {
          let rowCount = 0;
          return {
            get rowCount() {
              return rowCount;
            },
            async *[Symbol.asyncIterator]() {
              for (let done = 0; done < bytes; done += MiB) {
                const piece = randomFillSync(Buffer.allocUnsafe(Math.min(MiB, bytes - done)));
                rowCount++;
                onBytes(done + piece.length);
                yield piece;
              }
            },
          };
        },
        async close() {},
      };
    },
  };
}

async function measure(packMiB) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-upload-'));
  const server = await startS3rver(dir, 'bench');
  const storage = new S3Storage({ bucket: 'bench', prefix: `p${packMiB}`, endpoint: server.url, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  const total = Math.round(gib * 1024 * MiB);
  const samples = []; // [bytes streamed, rss]
  let streamed = 0;
  const timer = setInterval(() => samples.push([streamed, process.memoryUsage().rss]), 100);
  const t0 = Date.now();
  try {
    const repo = await Repository.init(storage, { packSize: packMiB * MiB });
    const m = await runBackup({ repo, source: syntheticSource(total, (b) => (streamed = b)), id: 'upload', jobs: 1 });
    const seconds = (Date.now() - t0) / 1000;
    samples.push([total, process.memoryUsage().rss]);
    const firstHalf = Math.max(...samples.filter(([b]) => b <= total / 2).map(([, r]) => r));
    const secondHalf = Math.max(...samples.filter(([b]) => b > total / 2).map(([, r]) => r));
    const quart = [0.25, 0.5, 0.75, 1].map((q) => Math.max(...samples.filter(([b]) => b <= q * total).map(([, r]) => r)) / MiB);
    const r = {
      pack_mib: packMiB,
      gib,
      seconds,
      mib_per_s: total / MiB / seconds,
      stored_mib: m.totals.storedBytes / MiB,
      peak_rss_mib_by_quarter: quart.map((x) => Math.round(x)),
      peak_rss_first_half_mib: Math.round(firstHalf / MiB),
      peak_rss_second_half_mib: Math.round(secondHalf / MiB),
      flat: secondHalf <= firstHalf + 32 * MiB,
    };
    log(JSON.stringify(r));
    return r;
  } finally {
    clearInterval(timer);
    storage.destroy();
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const results = [];
for (const p of packMiBs) results.push(await measure(p));
console.log(`## upload memory — ${gib} GiB of incompressible data into S3 (s3rver), ${os.cpus().length} cores, Node ${process.version}\n`);
console.log('| pack MiB | MiB/s | peak RSS MiB at 25 / 50 / 75 / 100 % | first half / second half | flat |');
console.log('|---:|---:|---|---|---|');
for (const r of results) {
  console.log(`| ${r.pack_mib} | ${r.mib_per_s.toFixed(0)} | ${r.peak_rss_mib_by_quarter.join(' / ')} | ${r.peak_rss_first_half_mib} / ${r.peak_rss_second_half_mib} | ${r.flat ? 'yes' : 'NO'} |`);
}
const dir = path.join(here, 'results');
fs.mkdirSync(dir, { recursive: true });
fs.writeFileSync(path.join(dir, 'upload-latest.json'), JSON.stringify({ at: new Date().toISOString(), results }, null, 2) + '\n');
console.log('\nJSON: bench/results/upload-latest.json');
