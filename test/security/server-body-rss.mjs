#!/usr/bin/env node
/**
 * Not a test (vitest runs *.test.ts): measures a cairn server's resident memory before and after
 * a 300 MB request body (issue 12, item 6). Build first (npm run build), then:
 *
 *   node test/security/server-body-rss.mjs [dist folder, default ./dist] [chunked|length]
 *
 * The server runs in a child process (its RSS read from /proc/<pid>/status); the body is offered
 * in 1 MiB pieces, chunked or with a Content-Length, until the server answers.
 */
import { fork } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

if (process.argv[2] === '--child') {
  const [dist, dataDir] = process.argv.slice(3);
  const { startServer, catalogFile } = await import(path.resolve(dist, 'server/index.js'));
  const { SqliteTokenStore } = await import(path.resolve(dist, 'catalog/tokens.js'));
  const store = new SqliteTokenStore(catalogFile(dataDir));
  const token = store.create('operator').token;
  store.close();
  const s = await startServer({ dataDir, port: 0, env: {} });
  process.send({ url: s.url, token });
} else {
  const dist = process.argv[2] ?? 'dist';
  const mode = process.argv[3] ?? 'chunked';
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-rss-'));
  const child = fork(new URL(import.meta.url).pathname, ['--child', dist, dataDir], { stdio: 'inherit' });
  const { url, token } = await new Promise((resolve) => child.once('message', resolve));
  const status = (field) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'))[1]) / 1024;
  await fetch(`${url}/healthz`);
  const before = status('VmRSS');
  const total = 300 * 1024 * 1024;
  const piece = Buffer.alloc(1024 * 1024, 0x41);
  const started = Date.now();
  const answer = await new Promise((resolve) => {
    const u = new URL(`${url}/v1/backups`);
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...(mode === 'chunked' ? { 'transfer-encoding': 'chunked' } : { 'content-length': String(total + 8) }) };
    let sent = 0;
    let answered = false;
    const req = http.request({ host: u.hostname, port: u.port, method: 'POST', path: u.pathname, headers }, (res) => {
      answered = true;
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, sent, body: body.slice(0, 160) }));
    });
    req.on('error', (e) => (answered ? undefined : resolve({ status: `socket ${e.code}`, sent })));
    const pump = () => {
      while (!answered && sent < total) {
        sent += piece.length;
        if (!req.write(piece)) return void req.once('drain', pump);
      }
      if (!answered) req.end('"}'.padEnd(8));
    };
    req.write('{"a":"');
    pump();
  });
  await new Promise((resolve) => setTimeout(resolve, 500));
  console.log(JSON.stringify({ dist, mode, status: answer.status, mibSent: Math.round(answer.sent / 1048576), ms: Date.now() - started, rssBeforeMiB: Math.round(before), rssAfterMiB: Math.round(status('VmRSS')), peakMiB: Math.round(status('VmHWM')), answer: answer.body }));
  child.kill();
  fs.rmSync(dataDir, { recursive: true, force: true });
}
