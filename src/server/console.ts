/**
 * The web console's files: `npm run build` writes them to dist/web (web/vite.config.ts), and
 * `cairn server` serves them at / (off with --no-console). Only GET and HEAD of paths outside
 * the API (/v1/, /healthz, /openapi.json, /metrics); a path that names no file falls through
 * to the API's 404 (the console routes with #/… in the URL, so no path needs index.html).
 *
 * Every file goes out with a strict Content-Security-Policy (nothing but this origin's own
 * scripts, styles and API; no framing), nosniff, no referrer. Vite's hashed files under
 * /assets/ never change, so they are cached for a year; index.html and the rest are revalidated.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Context, MiddlewareHandler, Next } from 'hono';
import type { Env } from './routes/kit.js';

export interface ConsoleOptions {
  /** The folder of the built console (index.html, assets/); default: defaultConsoleDir(). */
  dir?: string;
}

export const CONSOLE_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.webmanifest': 'application/manifest+json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/** Paths of the API itself: never looked up among the console's files. */
const API = /^\/(?:v1(?:\/|$)|healthz$|openapi\.json$|metrics$)/;

/**
 * dist/web beside the built server (dist/server/console.js → dist/web/). Run from the sources
 * (src/server/console.ts, as the tests do), the built copy is ../../dist/web/.
 */
export function defaultConsoleDir(): string {
  const beside = fileURLToPath(new URL('../web/', import.meta.url));
  const fromSources = fileURLToPath(new URL('../../dist/web/', import.meta.url));
  return !fs.existsSync(path.join(beside, 'index.html')) && fs.existsSync(path.join(fromSources, 'index.html')) ? fromSources : beside;
}

/** The middleware serving the console's files (register it before the API's routes). */
export function serveConsole(options: ConsoleOptions = {}): MiddlewareHandler<Env> {
  const root = path.resolve(options.dir ?? defaultConsoleDir());
  return async (c: Context<Env>, next: Next) => {
    const method = c.req.method;
    if ((method !== 'GET' && method !== 'HEAD') || API.test(c.req.path)) return next();
    // The path as sent (percent-encoded), decoded once here.
    const rel = relativePath(new URL(c.req.url).pathname);
    if (rel === undefined) return c.text('Refused: the path leaves the console\'s folder.', 400, { ...CONSOLE_HEADERS });
    if (!fs.existsSync(path.join(root, 'index.html'))) {
      // Without a build, only / says why (other paths are the API's 404).
      if (rel !== 'index.html') return next();
      return c.text('The console is not built: run npm run build (it writes dist/web), or start the server with --no-console.\n', 503, { ...CONSOLE_HEADERS, 'cache-control': 'no-store' });
    }
    const file = await regularFile(root, rel);
    if (!file) return next();
    const etag = `W/"${file.size.toString(16)}-${Math.floor(file.mtimeMs).toString(16)}"`;
    const headers: Record<string, string> = {
      ...CONSOLE_HEADERS,
      'content-type': TYPES[path.extname(rel).toLowerCase()] ?? 'application/octet-stream',
      'cache-control': rel.startsWith('assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
      etag,
    };
    if (c.req.header('if-none-match') === etag) return c.body(null, 304, headers);
    headers['content-length'] = String(file.size);
    if (method === 'HEAD') return c.body(null, 200, headers);
    return c.body(await fs.promises.readFile(file.real), 200, headers);
  };
}

/**
 * The file a URL path names, relative to the console's folder ("/" → index.html), or
 * undefined when it would leave the folder: a ".." segment (also percent-encoded), a
 * backslash, a NUL, or a path that does not decode.
 */
export function relativePath(urlPath: string): string | undefined {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return undefined;
  }
  if (decoded.includes('\0') || decoded.includes('\\')) return undefined;
  const parts = decoded.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) return undefined;
  return parts.length === 0 ? 'index.html' : parts.join('/');
}

/** A regular file inside `root` (symbolic links resolved, and still inside), or undefined. */
async function regularFile(root: string, rel: string): Promise<{ real: string; size: number; mtimeMs: number } | undefined> {
  try {
    const realRoot = await fs.promises.realpath(root);
    const real = await fs.promises.realpath(path.join(root, rel));
    if (!real.startsWith(realRoot + path.sep)) return undefined;
    const st = await fs.promises.stat(real);
    return st.isFile() ? { real, size: st.size, mtimeMs: st.mtimeMs } : undefined;
  } catch {
    return undefined;
  }
}
