/**
 * The world the console's browser tests run in: the real `cairn server` (bin/cairn.js, built by
 * pretest) as a child process on a free port, with its own data folder and `default` repository
 * (BACKUP_FILESYSTEM_PATH) in a temporary folder; admin, operator and viewer tokens made by
 * `cairn token create --json`; a registered SQLite source (a copy of the Chinook fixture), a
 * registered PostgreSQL source (a scratch database with a table another session can lock, so a
 * backup of it stays running until it is cancelled) and a second registered repository; and
 * headless Debian chromium driven by playwright-core.
 *
 * Nothing here is mocked: the browser talks to the server over HTTP, the server to the databases.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { CHINOOK, CLI, PROJECT_ROOT } from '../helpers/cli.js';
import { ensurePostgres, ident, pgEnv, pgUrl, psql } from '../helpers/postgres.js';

/** Debian's chromium (apt-get install chromium); .ci/run installs it when missing. */
export const CHROMIUM = process.env.CAIRN_CHROMIUM ?? '/usr/bin/chromium';

/** Flags for a headless browser in a container: no sandbox (root in CI), no GPU, no phoning home. */
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export const DESKTOP = { width: 1280, height: 800 } as const;
export const PHONE = { width: 390, height: 844 } as const;

/**
 * Why the browser tests cannot run here, or null when they can. In CI (CI=true) a missing
 * browser is an error, not a skip: the tests must not pass by not running.
 */
export function browserMissing(): string | null {
  if (existsSync(CHROMIUM)) return null;
  const reason = `${CHROMIUM} not found: install Debian chromium (apt-get install -y --no-install-recommends chromium) or set CAIRN_CHROMIUM`;
  if (process.env.CI === 'true') throw new Error(`console e2e tests need a browser in CI: ${reason}`);
  return reason;
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
}

export type Role = 'admin' | 'operator' | 'viewer';

export interface ConsoleEnv {
  /** The server's base URL, `http://127.0.0.1:<port>` (no trailing slash). */
  url: string;
  work: string;
  dataDir: string;
  /** The `default` repository's folder. */
  repoPath: string;
  /** A second registered repository (name `offsite`). */
  offsitePath: string;
  tokens: Record<Role, string>;
  /** Registered SQLite source `app` → its file (a copy of Chinook). */
  sqlite: { name: string; path: string };
  /** Registered PostgreSQL source `bigdb` → scratch database `db` with table `public.big`. */
  pg: { name: string; db: string };
  /** Everything the server wrote on stderr so far (for failure messages). */
  serverLog(): string;
  stop(): Promise<void>;
}

function cli(args: string[], env: NodeJS.ProcessEnv): string {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: PROJECT_ROOT, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`cairn ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** Waits for the server's one stdout line `cairn server listening on <url>`; rejects if it exits first. */
function listeningUrl(child: ChildProcess, log: () => string): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`cairn server did not listen within 30 s:\n${log()}`)), 30_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve((m[1] as string).replace(/\/$/, ''));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`cairn server exited ${code} before listening:\n${log()}`));
    });
  });
}

/**
 * Prepares data folder, repositories, sources and tokens with the CLI, then starts the server.
 * `bigRows` sizes the PostgreSQL table (rows of two md5 strings); `serverArgs` are added to
 * `cairn server`'s flags (e.g. a short --stuck-after).
 */
export async function startConsoleEnv(options: { bigRows?: number; serverArgs?: string[] } = {}): Promise<ConsoleEnv> {
  ensurePostgres();
  const work = mkdtempSync(join(tmpdir(), 'cairn-e2e-'));
  const dataDir = join(work, 'data');
  const repoPath = join(work, 'repo');
  const offsitePath = join(work, 'offsite');
  const sqlitePath = join(work, 'app.db');
  copyFileSync(CHINOOK, sqlitePath);
  const env: NodeJS.ProcessEnv = { CAIRN_DATA_DIR: dataDir, BACKUP_FILESYSTEM_PATH: repoPath };
  delete process.env.CAIRN_REPO;

  const db = `cairn_h19_e2e_${randomBytes(4).toString('hex')}`;
  psql('postgres', `CREATE DATABASE ${ident(db)};`);
  const rows = options.bigRows ?? 50_000;
  psql(db, `CREATE TABLE big AS SELECT g AS id, md5(g::text) AS a, md5((g * 7)::text) AS b FROM generate_series(1, ${rows}) g; CREATE TABLE small (id int PRIMARY KEY); INSERT INTO small VALUES (1);`);

  cli(['repo', 'init', repoPath], env);
  cli(['repo', 'init', offsitePath], env);
  cli(['repo', 'add', 'offsite', offsitePath], env);
  cli(['source', 'add', 'app', `sqlite://${sqlitePath}`, '--data-dir', dataDir], env);
  cli(['source', 'add', 'bigdb', pgUrl(db), '--data-dir', dataDir], env);
  const tokens = {} as Record<Role, string>;
  for (const role of ['admin', 'operator', 'viewer'] as const) {
    tokens[role] = (JSON.parse(cli(['token', 'create', '--role', role, '--name', `e2e-${role}`, '--data-dir', dataDir, '--json'], env)) as { token: string }).token;
  }

  let stderr = '';
  const child = spawn(process.execPath, [CLI, 'server', '--listen', '127.0.0.1:0', '--data-dir', dataDir, ...(options.serverArgs ?? [])], {
    cwd: work,
    env: { ...pgEnv(), ...env, CAIRN_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const serverLog = (): string => stderr;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let url: string;
  try {
    url = await listeningUrl(child, serverLog);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }

  return {
    url,
    work,
    dataDir,
    repoPath,
    offsitePath,
    tokens,
    sqlite: { name: 'app', path: sqlitePath },
    pg: { name: 'bigdb', db },
    serverLog,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        // SIGTERM cancels running jobs and waits for them; a hung stop must not hang the suite.
        const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(killer);
      }
      try {
        psql('postgres', `DROP DATABASE IF EXISTS ${ident(db)} WITH (FORCE);`);
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    },
  };
}

/** A fresh browser context (own cookies) at a viewport, with a base URL so pages use `/#/…`. */
export async function newContext(browser: Browser, env: ConsoleEnv, viewport: { width: number; height: number } = DESKTOP): Promise<BrowserContext> {
  const context = await browser.newContext({ baseURL: env.url, viewport, timezoneId: 'Europe/Paris', locale: 'en-GB' });
  context.setDefaultTimeout(15_000);
  context.setDefaultNavigationTimeout(20_000);
  return context;
}

/** Signs in through the sign-in form with the role's token and waits for the signed-in console. */
export async function signIn(page: Page, env: ConsoleEnv, role: Role): Promise<void> {
  await page.goto('/');
  const field = page.getByLabel(/token/i).first();
  await field.fill(env.tokens[role]);
  await page.getByRole('button', { name: /sign in/i }).click();
  // The navigation (collapsed behind the Menu button at phone width, so not necessarily visible).
  await page.getByTestId('nav-overview').waitFor({ state: 'attached' });
}

/** A new context and page already signed in as `role`. */
export async function signedInPage(browser: Browser, env: ConsoleEnv, role: Role, viewport = DESKTOP): Promise<{ context: BrowserContext; page: Page }> {
  const context = await newContext(browser, env, viewport);
  const page = await context.newPage();
  await signIn(page, env, role);
  return { context, page };
}
