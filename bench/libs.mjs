#!/usr/bin/env node
// Library throughput measurements behind docs/library-choices.md.
//
//   node bench/libs.mjs [--mib 256] [--budget 8] [--piece-kib 1024] [--json]
//
// Input: N MiB of deterministic synthetic CSV-like rows (ids, ISO timestamps, numbers, random
// words, hex). Each row is skipped when its package is absent:
// - chunker:   ../dist/repo/chunker.js (run `npm run build` first), or CAIRN_CHUNKER_MODULE=<path>
// - blake3:    hash-wasm and/or blake3-wasm@2.1.5 (not project dependencies; install them in a
//              scratch dir and point BENCH_MODULE_PATHS at it, default /tmp/measure)
// - WASM CDC:  @dstanesc/wasm-chunking-fastcdc-node, fastcdc-wasm (same, comparison only)
// - zstd:      zstd-napi (project dependency)
// Compression works on independent pieces of --piece-kib (default 1 MiB, about one chunk, which
// is how the repository compresses) unless the row says "stream". Slow rows stop after --budget
// seconds (at least 16 MiB); the MiB column says how much input the figure is based on.
import { createHash, createHmac } from 'node:crypto';
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';
import os from 'node:os';
import zlib from 'node:zlib';
import { promisify } from 'node:util';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

const MiB = 1024 * 1024;
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? Number(args[i + 1]) : dflt;
};
const TOTAL_MIB = opt('mib', 256);
const BUDGET_S = opt('budget', 8);
const PIECE = opt('piece-kib', 1024) * 1024;
const JSON_OUT = args.includes('--json');
const here = path.dirname(fileURLToPath(import.meta.url));

// ---------- optional modules ----------
const searchDirs = [here, ...(process.env.BENCH_MODULE_PATHS ?? '/tmp/measure').split(':').filter(Boolean)];
function load(name) {
  for (const dir of searchDirs) {
    try {
      return createRequire(path.join(dir, 'noop.js'))(name);
    } catch {
      /* try next */
    }
  }
  return null;
}

// ---------- deterministic input ----------
function mulberry32(seed) {
  let s = seed | 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return ((z ^ (z >>> 14)) >>> 0) / 4294967296;
  };
}
function makeCsv(totalBytes, seed = 12345) {
  const rnd = mulberry32(seed);
  const syll = ['al', 'be', 'cor', 'da', 'en', 'fi', 'go', 'ha', 'is', 'jo', 'ka', 'lu', 'mi', 'no', 'or', 'pa', 'qui', 'ra', 'si', 'tu', 'um', 've', 'wa', 'xi', 'yo', 'ze'];
  const words = [];
  for (let i = 0; i < 4096; i++) {
    let w = '';
    const n = 1 + Math.floor(rnd() * 3);
    for (let j = 0; j < n; j++) w += syll[Math.floor(rnd() * syll.length)];
    words.push(w);
  }
  const status = ['active', 'pending', 'closed', 'failed', 'refunded'];
  const buf = Buffer.alloc(totalBytes);
  let off = 0;
  let id = 1;
  let t = Date.UTC(2024, 0, 1);
  while (off < totalBytes) {
    t += Math.floor(rnd() * 5000);
    const nw = 2 + Math.floor(rnd() * 6);
    let text = '';
    // Skewed word choice (product of two uniforms), so some words are much more common.
    for (let j = 0; j < nw; j++) text += (j ? ' ' : '') + words[Math.floor(rnd() * rnd() * words.length)];
    const row = `${id++},${new Date(t).toISOString()},${Math.floor(rnd() * 100000)},"${text}",${(rnd() * 10000).toFixed(2)},${status[Math.floor(rnd() * 5)]},${Math.floor(rnd() * 4294967296).toString(16)}\n`;
    off += buf.write(row, off, 'latin1');
  }
  return buf;
}

// ---------- helpers ----------
const results = [];
function record(group, name, inBytes, seconds, extra = {}) {
  const r = { group, name, mib: inBytes / MiB, mibps: inBytes / MiB / seconds, ...extra };
  results.push(r);
  const ratio = r.ratio !== undefined ? `  ratio ${r.ratio.toFixed(2)}` : '';
  const dec = r.decMibps !== undefined ? `  decompress ${r.decMibps.toFixed(0)} MiB/s` : '';
  console.error(`${group.padEnd(12)} ${name.padEnd(34)} ${r.mibps.toFixed(1).padStart(8)} MiB/s  (${r.mib.toFixed(0)} MiB)${ratio}${dec}`);
}
function pieces(buf, size) {
  const out = [];
  for (let o = 0; o < buf.length; o += size) out.push(buf.subarray(o, Math.min(buf.length, o + size)));
  return out;
}
/** Runs fn over pieces until all are done or the time budget is used (min 16 MiB). */
function budgeted(ps, fn) {
  const t0 = performance.now();
  let inBytes = 0;
  const outs = [];
  for (const p of ps) {
    outs.push(fn(p));
    inBytes += p.length;
    if (inBytes >= 16 * MiB && (performance.now() - t0) / 1000 > BUDGET_S) break;
  }
  return { seconds: (performance.now() - t0) / 1000, inBytes, outs };
}
async function budgetedAsync(ps, fn, concurrency) {
  const t0 = performance.now();
  let inBytes = 0;
  let next = 0;
  let stop = false;
  const outs = [];
  async function worker() {
    while (!stop && next < ps.length) {
      const i = next++;
      outs[i] = await fn(ps[i]);
      inBytes += ps[i].length;
      if (inBytes >= 16 * MiB && (performance.now() - t0) / 1000 > BUDGET_S) stop = true;
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { seconds: (performance.now() - t0) / 1000, inBytes, outs: outs.filter(Boolean) };
}
const sum = (bufs) => bufs.reduce((a, b) => a + b.length, 0);
function timeDecompress(outs, fn) {
  const t0 = performance.now();
  let n = 0;
  for (const o of outs) n += fn(o).length;
  return n / MiB / ((performance.now() - t0) / 1000);
}

// ---------- main ----------
console.error(`node ${process.version}, ${os.cpus().length}x ${os.cpus()[0]?.model ?? '?'}; input ${TOTAL_MIB} MiB CSV-like, pieces ${PIECE / 1024} KiB, budget ${BUDGET_S}s`);
let t = performance.now();
const data = makeCsv(TOTAL_MIB * MiB);
console.error(`generated in ${((performance.now() - t) / 1000).toFixed(1)} s`);
const ps = pieces(data, PIECE);
const streamPs = pieces(data, 64 * 1024);

// Chunker
{
  const modPath = process.env.CAIRN_CHUNKER_MODULE ?? path.join(here, '../dist/repo/chunker.js');
  if (existsSync(modPath)) {
    const { FastCdcChunker, DEFAULT_CHUNKER_PARAMS: P } = await import(pathToFileURL(path.resolve(modPath)).href);
    const warm = data.subarray(0, 16 * MiB);
    for (const [label, feed] of [['64 KiB pushes', streamPs], ['whole buffer', [data]]]) {
      const w = new FastCdcChunker(P); // warm-up (JIT) on 16 MiB
      for (let o = 0; o < warm.length; o += 64 * 1024) w.push(warm.subarray(o, o + 64 * 1024));
      t = performance.now();
      const c = new FastCdcChunker(P);
      let n = 0;
      for (const p of feed) n += c.push(p).length;
      n += c.finish().length;
      record('chunker', `cairn FastCDC TS, ${label}`, data.length, (performance.now() - t) / 1000, { chunks: n, avgChunkKiB: data.length / n / 1024 });
    }
    const wasm = [
      ['@dstanesc/wasm-chunking-fastcdc-node', (m) => m.compute_chunks],
      ['fastcdc-wasm', (m) => m.get_chunks],
    ];
    for (const [name, pick] of wasm) {
      const m = load(name);
      if (!m) continue;
      pick(m)(warm, P.minSize, P.avgSize, P.maxSize); // warm-up (WASM tier-up)
      t = performance.now();
      const offs = pick(m)(data, P.minSize, P.avgSize, P.maxSize);
      record('chunker', `${name} (whole buffer)`, data.length, (performance.now() - t) / 1000, { chunks: offs.length });
    }
  } else {
    console.error(`chunker: ${modPath} not found (run npm run build), skipped`);
  }
}

// Hashes (one hash per piece, as for chunk ids)
{
  t = performance.now();
  for (const p of ps) createHash('sha256').update(p).digest();
  record('hash', 'sha256 (node:crypto)', data.length, (performance.now() - t) / 1000);
  const key = Buffer.alloc(32, 7);
  t = performance.now();
  for (const p of ps) createHmac('sha256', key).update(p).digest();
  record('hash', 'hmac-sha256 (node:crypto)', data.length, (performance.now() - t) / 1000);
  t = performance.now();
  for (const p of ps) createHash('sha512-256').update(p).digest();
  record('hash', 'sha512-256 (node:crypto)', data.length, (performance.now() - t) / 1000);
  const hw = load('hash-wasm');
  if (hw) {
    const h = await hw.createBLAKE3();
    t = performance.now();
    for (const p of ps) h.init().update(p).digest('binary');
    record('hash', 'blake3 (hash-wasm)', data.length, (performance.now() - t) / 1000);
  }
  const b3 = load('blake3-wasm');
  if (b3) {
    t = performance.now();
    for (const p of ps) b3.hash(p);
    record('hash', 'blake3 (blake3-wasm)', data.length, (performance.now() - t) / 1000);
  }
}

// zstd
const zstd = load('zstd-napi');
if (zstd) {
  for (const level of [1, 3, 6, 9, 12, 15, 19]) {
    const r = budgeted(ps, (p) => zstd.compress(p, { compressionLevel: level }));
    const dec = timeDecompress(r.outs, (o) => zstd.decompress(o));
    record('zstd', `level ${level} sync compress()`, r.inBytes, r.seconds, { level, ratio: r.inBytes / sum(r.outs), decMibps: dec });
  }
  // zstd-napi has no async (thread-pool) API: CompressStream is a Transform that compresses on
  // the main thread; nbWorkers uses zstd's own threads (whole stream, not per chunk).
  for (const [level, workers] of [[1, 0], [3, 0], [9, 0], [1, 2], [3, 2], [9, 2]]) {
    const limit = Math.min(data.length, Math.max(16 * MiB, Math.round(BUDGET_S * MiB * (level >= 9 ? 10 : 60))));
    const input = streamPs.slice(0, Math.ceil(limit / streamPs[0].length));
    let outBytes = 0;
    t = performance.now();
    await pipeline(
      Readable.from(input),
      new zstd.CompressStream({ compressionLevel: level, ...(workers ? { nbWorkers: workers } : {}) }),
      new Writable({ write(c, _e, cb) { outBytes += c.length; cb(); } }),
    );
    const inBytes = sum(input);
    record('zstd', `level ${level} CompressStream${workers ? `, nbWorkers ${workers}` : ''} (stream)`, inBytes, (performance.now() - t) / 1000, { level, ratio: inBytes / outBytes });
  }
} else {
  console.error('zstd-napi not installed, skipped');
}

// gzip (node:zlib)
{
  const gzip = promisify(zlib.gzip);
  for (const level of [1, 6, 9]) {
    const r = budgeted(ps, (p) => zlib.gzipSync(p, { level }));
    const dec = timeDecompress(r.outs, (o) => zlib.gunzipSync(o));
    record('gzip', `level ${level} gzipSync`, r.inBytes, r.seconds, { level, ratio: r.inBytes / sum(r.outs), decMibps: dec });
    const a = await budgetedAsync(ps, (p) => gzip(p, { level }), 2);
    record('gzip', `level ${level} async gzip, 2 in flight`, a.inBytes, a.seconds, { level, ratio: a.inBytes / sum(a.outs) });
  }
  // Node 22.15+/23.8+ ship zstd in node:zlib; measured when present.
  if (typeof zlib.zstdCompressSync === 'function') {
    for (const level of [1, 3, 9, 19]) {
      const r = budgeted(ps, (p) => zlib.zstdCompressSync(p, { params: { [zlib.constants.ZSTD_c_compressionLevel]: level } }));
      record('zstd', `level ${level} node:zlib zstdCompressSync`, r.inBytes, r.seconds, { level, ratio: r.inBytes / sum(r.outs) });
    }
  }
}

if (JSON_OUT) console.log(JSON.stringify({ node: process.version, date: new Date().toISOString(), totalMiB: TOTAL_MIB, pieceKiB: PIECE / 1024, results }, null, 2));
