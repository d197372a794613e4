/**
 * Issue 19, the console's files served by a real server: GET / and the built assets with the
 * Content-Security-Policy and the other security headers, year-long caching of hashed assets
 * only, no path leaving the folder (raw requests, encoded dots, symbolic links), 503 naming
 * `npm run build` when nothing is built, the API untouched, and `cairn server --no-console`.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteTokenStore } from '../../src/catalog/tokens.js';
import { CONSOLE_HEADERS, relativePath } from '../../src/server/console.js';
import { catalogFile, startServer, type RunningServer } from '../../src/server/index.js';
import { CLI, PROJECT_ROOT } from '../helpers/cli.js';

let work: string;
let site: string;
let token: string;
const servers: RunningServer[] = [];

const INDEX = '<!doctype html><title>cairn</title><script type="module" src="/assets/index-AbC123.js"></script>';
const SCRIPT = 'console.log("cairn console");';
const SECRET = 'not for the web';

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'cairn-console-serving-'));
  site = join(work, 'web');
  mkdirSync(join(site, 'assets'), { recursive: true });
  writeFileSync(join(site, 'index.html'), INDEX);
  writeFileSync(join(site, 'assets', 'index-AbC123.js'), SCRIPT);
  writeFileSync(join(site, 'assets', 'index-AbC123.css'), 'body{color:#000}');
  writeFileSync(join(site, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
  writeFileSync(join(work, 'secret.txt'), SECRET);
  symlinkSync(join(work, 'secret.txt'), join(site, 'assets', 'link.js'));
});

afterAll(async () => {
  for (const s of servers) await s.close();
  rmSync(work, { recursive: true, force: true });
});

/** A server on a data folder of its own, serving the console as asked. */
async function serve(console: false | { dir: string }): Promise<RunningServer> {
  const dataDir = mkdtempSync(join(work, 'data-'));
  const store = new SqliteTokenStore(catalogFile(dataDir));
  token = store.create('viewer').token;
  store.close();
  const s = await startServer({ dataDir, port: 0, scheduleTickMs: 3600_000, env: {}, console });
  servers.push(s);
  return s;
}

/** A request with the path exactly as written (fetch would resolve dot segments first). */
function raw(base: string, path: string, method = 'GET'): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: hostname, port, path, method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('serving the built console', () => {
  let url: string;
  beforeAll(async () => {
    url = (await serve({ dir: site })).url;
  });

  it('GET / is index.html with the security headers, revalidated; hashed assets are cached for a year', async () => {
    const index = await fetch(`${url}/`);
    expect(index.status).toBe(200);
    expect(await index.text()).toBe(INDEX);
    expect(index.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(index.headers.get('content-security-policy')).toBe(
      "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    );
    expect(index.headers.get('x-content-type-options')).toBe('nosniff');
    expect(index.headers.get('referrer-policy')).toBe('no-referrer');
    expect(index.headers.get('x-frame-options')).toBe('DENY');
    expect(index.headers.get('cache-control')).toBe('no-cache');
    const script = await fetch(`${url}/assets/index-AbC123.js`);
    expect([script.status, await script.text()]).toEqual([200, SCRIPT]);
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(script.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    for (const [k, v] of Object.entries(CONSOLE_HEADERS)) expect(script.headers.get(k)).toBe(v);
    expect((await fetch(`${url}/assets/index-AbC123.css`)).headers.get('content-type')).toBe('text/css; charset=utf-8');
    const icon = await fetch(`${url}/favicon.svg`);
    expect([icon.status, icon.headers.get('content-type'), icon.headers.get('cache-control')]).toEqual([200, 'image/svg+xml', 'no-cache']);
    // Revalidation: the same ETag answers 304.
    const again = await fetch(`${url}/`, { headers: { 'if-none-match': index.headers.get('etag') ?? '' } });
    expect(again.status).toBe(304);
    const head = await raw(url, '/assets/index-AbC123.js', 'HEAD');
    expect([head.status, head.body, head.headers['content-length']]).toEqual([200, '', String(SCRIPT.length)]);
  });

  it('the API is untouched; a path naming no file is the API\'s 404; only GET and HEAD', async () => {
    expect(await (await fetch(`${url}/healthz`)).json()).toEqual({ status: 'ok' });
    expect((await fetch(`${url}/openapi.json`)).headers.get('content-type')).toMatch(/json/);
    expect((await fetch(`${url}/v1/jobs`)).status).toBe(401);
    expect((await fetch(`${url}/v1/jobs`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    const missing = await fetch(`${url}/assets/nope.js`);
    expect([missing.status, ((await missing.json()) as { error: { code: string } }).error.code]).toEqual([404, 'NOT_FOUND']);
    expect((await fetch(`${url}/assets`)).status).toBe(404); // a folder is no file
    expect((await fetch(`${url}/`, { method: 'POST' })).status).toBe(404);
  });

  it('no path leaves the folder: dot segments (also encoded), backslashes, NUL, symbolic links', async () => {
    for (const path of ['/../secret.txt', '/assets/../../secret.txt', '/%2e%2e/secret.txt', '/assets/%2E%2E%2F%2E%2E%2Fsecret.txt', '/assets/..%5c..%5csecret.txt', '/%00', '/assets/%zz', '/assets/link.js']) {
      const a = await raw(url, path);
      expect([400, 404], `${path}: ${a.status}`).toContain(a.status);
      expect(a.body, path).not.toContain(SECRET);
    }
    expect(relativePath('/')).toBe('index.html');
    expect(relativePath('/assets/./x.js')).toBe('assets/x.js');
    expect(relativePath('/a/%2e%2e/b')).toBeUndefined();
    expect(relativePath('/a\\b')).toBeUndefined();
  });
});

describe('without a built console', () => {
  it('/ answers 503 saying to run npm run build; other paths are the API\'s', async () => {
    const { url } = await serve({ dir: join(work, 'not-built') });
    const a = await fetch(`${url}/`);
    expect(a.status).toBe(503);
    expect(await a.text()).toMatch(/the console is not built: run npm run build/i);
    expect(a.headers.get('content-security-policy')).toBe(CONSOLE_HEADERS['content-security-policy']);
    expect((await fetch(`${url}/assets/index.js`)).status).toBe(404);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
  });

  it('console: false (cairn server --no-console): / is 404', async () => {
    const { url } = await serve(false);
    expect((await fetch(`${url}/`)).status).toBe(404);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
  });
});

describe('cairn server (built)', () => {
  const built = existsSync(join(PROJECT_ROOT, 'dist', 'web', 'index.html')) && existsSync(join(PROJECT_ROOT, 'dist', 'cli', 'main.js'));

  /** Starts `cairn server` with the given flags; its URL, and a stop function. */
  async function cairnServer(flags: string[]): Promise<{ url: string; stop: () => Promise<void> }> {
    const dataDir = mkdtempSync(join(work, 'cli-data-'));
    const child = spawn(process.execPath, [CLI, 'server', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--log-level', 'warn', ...flags], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /listening on (http:\S+)/.exec(out);
        if (m?.[1]) resolve(m[1]);
      });
      child.on('exit', (code) => reject(new Error(`cairn server exited ${code}: ${out}`)));
    });
    return { url, stop: () => new Promise<void>((resolve) => (child.once('exit', () => resolve()), child.kill('SIGTERM'))) };
  }

  it.skipIf(!built)('serves dist/web at / by default, and nothing with --no-console', async () => {
    const on = await cairnServer([]);
    try {
      const index = await fetch(`${on.url}/`);
      expect(index.status).toBe(200);
      const html = await index.text();
      expect(html).toMatch(/<div id="app"|<script type="module"/);
      // Every asset index.html names is served, cached for a year.
      const assets = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1] as string);
      expect(assets.length).toBeGreaterThan(0);
      for (const a of assets) {
        const res = await fetch(`${on.url}${a}`);
        expect([a, res.status, res.headers.get('cache-control')]).toEqual([a, 200, 'public, max-age=31536000, immutable']);
      }
    } finally {
      await on.stop();
    }
    const off = await cairnServer(['--no-console']);
    try {
      expect((await fetch(`${off.url}/`)).status).toBe(404);
      expect((await fetch(`${off.url}/healthz`)).status).toBe(200);
    } finally {
      await off.stop();
    }
  }, 60_000);
});
