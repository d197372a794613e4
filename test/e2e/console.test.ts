/**
 * The web console end to end, in a real browser (headless Debian chromium via playwright-core)
 * against the real `cairn server` child process, real SQLite and PostgreSQL sources (harness.ts).
 * The issue's scenarios: sign in (and out); back up a SQLite source and watch it reach SUCCESS;
 * restore it with a rename through the wizard, the dry run showing a conflict first; cancel a
 * running PostgreSQL backup; create a schedule and see its next runs; a viewer sees no delete
 * button and forged requests get 403; axe-core finds no serious or critical violation on any
 * screen at 1280×800 and 390×844. With CAIRN_SCREENSHOTS=1 (`npm run screenshots`) the walk over
 * the screens also writes docs/console/*.png.
 *
 * Selectors are roles and accessible names first, the design's data-testids where a name is
 * ambiguous. Every wait is for a state (an element, a job state, an answer), bounded.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CairnClient } from '../../src/sdk/index.js';
import Database from '../../src/sources/sqlite/driver.js';
import { CLI } from '../helpers/cli.js';
import { pgUrl } from '../helpers/postgres.js';
import { describeViolations, seriousViolations } from './axe.js';
import { browserMissing, DESKTOP, launchBrowser, newContext, PHONE, signedInPage, signIn, startConsoleEnv, type ConsoleEnv } from './harness.js';

const missing = browserMissing();
if (missing) console.log(`console e2e tests skipped: ${missing}`);

const SCREENSHOTS = process.env.CAIRN_SCREENSHOTS === '1';
/** Names of buttons that call a mutating route (what a viewer must not be offered). */
const MUTATING = /\b(back up|cancel|new schedule|run now|disable|enable|register|remove|delete|edit expiry|copy to|export|restore|create|revoke|test connection)\b/i;

/**
 * In the page: '' when the document is no wider than the window, else by how much and the widest
 * elements that stick out without a scrolling container of their own (for the failure message).
 */
const SIDEWAYS = `(() => {
  const root = document.documentElement;
  const excess = root.scrollWidth - root.clientWidth;
  if (excess <= 0) return '';
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    const box = el.getBoundingClientRect();
    if (box.right <= root.clientWidth + 0.5 || box.width === 0) continue;
    let p = el.parentElement;
    let clipped = false;
    for (; p && p !== document.body; p = p.parentElement) if (getComputedStyle(p).overflowX !== 'visible') clipped = true;
    if (!clipped) out.push(el.tagName.toLowerCase() + (el.className ? '.' + String(el.className).replace(/ +/g, '.') : '') + ' to ' + Math.round(box.right) + ' px');
  }
  return 'by ' + excess + ' px: ' + out.slice(-4).join(', ');
})()`;

/** The screens in the navigation, in its order (an admin sees them all). */
const SCREENS = ['overview', 'backups', 'restore', 'jobs', 'schedules', 'sources', 'repositories', 'tokens', 'alerts'] as const;
const SHOTS_DIR = fileURLToPath(new URL('../../docs/console/', import.meta.url));

let env: ConsoleEnv;
let browser: Browser;

const api = (role: keyof ConsoleEnv['tokens']): CairnClient => new CairnClient({ url: env.url, token: env.tokens[role] });

/** A finished SQLite backup of `app` (made through the API when a scenario needs one of its own). */
async function sqliteBackup(): Promise<string> {
  const job = await api('operator').backups.create({ source: env.sqlite.name }, { waitForCompletion: true, pollMs: 50 });
  expect(job.state).toBe('SUCCESS');
  return (job.result as { backupId: string }).backupId;
}

/** Status, parsed body and code of a fetch the page itself sends (its cookie, its origin). */
async function pageFetch(page: Page, path: string, init: { method: string; headers?: Record<string, string>; body?: string }): Promise<{ status: number; code: string | undefined }> {
  return page.evaluate(
    async ({ path, init }) => {
      const res = await fetch(path, { ...init, credentials: 'same-origin' });
      let code: string | undefined;
      try {
        code = ((await res.json()) as { error?: { code?: string } }).error?.code;
      } catch {
        code = undefined;
      }
      return { status: res.status, code };
    },
    { path, init },
  );
}

/** The page's session as GET /v1/session reports it (its cookie), csrfToken included. */
async function pageSession(page: Page): Promise<{ role: string; csrfToken: string } | null> {
  return page.evaluate(async () => {
    const res = await fetch('/v1/session', { credentials: 'same-origin' });
    if (res.status !== 200) return null;
    return ((await res.json()) as { session: { role: string; csrfToken: string } | null }).session;
  });
}

/**
 * Runs a command line the console shows (its CLI or curl equivalent) in sh, as a user would paste
 * it: CAIRN_SERVER and CAIRN_TOKEN (a token of `role`) set, `cairn` the built CLI.
 */
function runShell(line: string, role: keyof ConsoleEnv['tokens']): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('sh', ['-c', `cairn() { "$CAIRN_NODE" "$CAIRN_CLI" "$@"; }\n${line}`], {
    env: { ...process.env, CAIRN_SERVER: env.url, CAIRN_TOKEN: env.tokens[role], CAIRN_NODE: process.execPath, CAIRN_CLI: CLI },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** What one scenario leaves for the next (each makes its own when it ran alone or failed). */
const shared: { sqliteBackupId?: string } = {};

/** Waits until the screen shows its heading and nothing is loading any more. */
async function screenReady(page: Page): Promise<void> {
  await page.locator('#page-title').waitFor();
  await page.locator('.loading').first().waitFor({ state: 'detached' });
}

/**
 * The error of a failed step with what the browser showed then (each page's address and text),
 * so that a failure in CI says where the console was, not only which locator timed out.
 */
async function explained(err: unknown, ...contexts: BrowserContext[]): Promise<unknown> {
  if (!(err instanceof Error)) return err;
  const shown: string[] = [];
  for (const page of contexts.flatMap((c) => c.pages())) {
    const text = await page.evaluate(() => (globalThis as unknown as { document: { body: { innerText: string } } }).document.body.innerText).catch(() => '(unreadable)');
    shown.push(`--- ${page.url()}\n${text.replace(/\n{2,}/g, '\n').slice(0, 1500)}`);
  }
  err.message += `\n\nThe browser showed:\n${shown.join('\n')}\n--- server log (tail)\n${env.serverLog().slice(-1500)}`;
  return err;
}

/** Opens a backup's details (default repository) and waits until they are shown, collections included. */
async function openBackup(page: Page, id: string): Promise<void> {
  await page.goto(`/#/backups/${id}?repository=default`);
  await page.getByRole('heading', { level: 1, name: id }).waitFor();
  await page.getByRole('heading', { name: /collections/i }).waitFor();
  await screenReady(page);
}

/** Opens a screen through the navigation (the phone's menu first when the nav is collapsed). */
async function gotoScreen(page: Page, screen: string): Promise<void> {
  const link = page.getByTestId(`nav-${screen}`);
  // The shell renders once GET /v1/session answered; then the link is either shown or in the menu.
  await link.waitFor({ state: 'attached' });
  if (!(await link.isVisible())) await page.getByRole('button', { name: 'Menu' }).click();
  await link.click();
  await expect.poll(() => link.getAttribute('aria-current')).toBe('page');
  // At phone width the menu closes once a screen is chosen (also the one already shown).
  const menu = page.getByRole('button', { name: 'Menu' });
  if (await menu.isVisible()) await expect.poll(() => menu.getAttribute('aria-expanded')).toBe('false');
  await screenReady(page);
}

/** With CAIRN_SCREENSHOTS=1: the page as it is now into docs/console/<name>.png (the whole page, or the viewport). */
async function shot(page: Page, name: string, fullPage = true): Promise<void> {
  if (!SCREENSHOTS) return;
  mkdirSync(SHOTS_DIR, { recursive: true });
  await page.screenshot({ path: `${SHOTS_DIR}${name}.png`, fullPage, animations: 'disabled', caret: 'hide' });
}

/** Starts a backup of a registered source from the console; returns the job's id. */
async function startBackupInConsole(page: Page, source: string): Promise<string> {
  await gotoScreen(page, 'sources');
  const row = page.getByTestId(`source-row-${source}`);
  const started = page.waitForResponse((r) => r.url().endsWith('/v1/backups') && r.request().method() === 'POST');
  await row.getByRole('button', { name: 'Back up now' }).click();
  const res = await started;
  expect(res.status()).toBe(202);
  return ((await res.json()) as { job: { id: string } }).job.id;
}

/**
 * For the screenshots: backups of both sources over changing data (the overview's charts), one
 * of them through the schedule (type scheduled), so that the screens show more than one row.
 */
async function moreHistory(): Promise<void> {
  for (let i = 1; i <= 3; i++) {
    const db = new Database(env.sqlite.path);
    try {
      db.exec(`INSERT INTO Track (Name, MediaTypeId, Milliseconds, UnitPrice) SELECT Name || ' (take ${i})', MediaTypeId, Milliseconds, UnitPrice FROM Track`);
    } finally {
      db.close();
    }
    await sqliteBackup();
  }
  await api('operator').backups.create({ source: env.pg.name }, { waitForCompletion: true, pollMs: 50 });
  const schedules = await api('viewer').schedules.list();
  if (schedules.some((x) => x.name === 'nightly-app')) await api('operator').schedules.runNow('nightly-app', { waitForCompletion: true, pollMs: 50 });
}

// Bounded waits inside each test (15 s per step, 60 s for a job); this bounds a test as a whole.
describe.skipIf(missing !== null).sequential('web console in a real browser', { timeout: 120_000 }, () => {
  beforeAll(async () => {
    [env, browser] = await Promise.all([startConsoleEnv(), launchBrowser()]);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await env?.stop();
  }, 60_000);

  it('serves the console at / with its security headers', async () => {
    const res = await fetch(`${env.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(res.headers.get('x-frame-options')).toBe('DENY');
  });

  it('signs in with a token (HttpOnly, SameSite=Strict cookie), survives a reload, signs out', async () => {
    const context = await newContext(browser, env);
    const page = await context.newPage();
    try {
      await page.goto('/');
      const token = page.getByTestId('signin-token');
      await expect.poll(() => token.getAttribute('type')).toBe('password');
      // A wrong token: an error, still on the sign-in page, no cookie.
      await token.fill('not-a-token');
      await page.getByTestId('signin-submit').click();
      await page.getByRole('alert').filter({ hasText: /./ }).first().waitFor();
      expect((await context.cookies()).find((c) => c.name === 'cairn_session')).toBeUndefined();

      await signIn(page, env, 'operator');
      const cookie = (await context.cookies()).find((c) => c.name === 'cairn_session');
      expect(cookie?.httpOnly).toBe(true);
      expect(cookie?.sameSite).toBe('Strict');
      // document.cookie cannot see it (HttpOnly): a script injected into the page cannot steal it.
      expect(await page.evaluate(() => (globalThis as unknown as { document: { cookie: string } }).document.cookie)).not.toContain('cairn_session');
      expect((await pageSession(page))?.role).toBe('operator');

      await page.reload();
      await page.getByTestId('nav-overview').waitFor({ state: 'attached' });
      expect((await pageSession(page))?.role).toBe('operator');

      const signOut = page.getByRole('button', { name: /sign out/i }).first();
      if (!(await signOut.isVisible())) await page.getByRole('button', { name: /menu/i }).click();
      await signOut.click();
      await page.getByTestId('signin-token').waitFor();
      // Said only once the server ended the session: the cookie is gone by then.
      await page.getByRole('status').filter({ hasText: 'You are signed out.' }).waitFor();
      expect((await context.cookies()).find((c) => c.name === 'cairn_session')).toBeUndefined();
      expect(await pageSession(page)).toBeNull();
    } catch (err) {
      throw await explained(err, context);
    } finally {
      await context.close();
    }
  });

  /** A new browser context signed in with a token's secret (a token made for the test, not a harness role). */
  async function signedInWith(secret: string) {
    const context = await newContext(browser, env);
    const page = await context.newPage();
    await page.goto('/');
    await page.getByTestId('signin-token').fill(secret);
    await page.getByTestId('signin-submit').click();
    await page.getByTestId('nav-overview').waitFor({ state: 'attached' });
    return { context, page };
  }

  it('revoking the token ends its console session at once: the next request shows the sign-in page', async () => {
    const admin = api('admin');
    const { token, secret } = await admin.tokens.create({ role: 'viewer', name: 'e2e-revoked' });
    const { context, page } = await signedInWith(secret);
    try {
      await gotoScreen(page, 'backups');
      await admin.tokens.revoke(token.id);
      await page.getByTestId('nav-jobs').click();
      await page.getByTestId('signin-token').waitFor();
      await page.getByRole('status').filter({ hasText: /sign in again/i }).waitFor();
      // The cookie no longer opens anything, even sent by hand.
      expect(await pageSession(page)).toBeNull();
      expect((await pageFetch(page, '/v1/backups', { method: 'GET' })).status).toBe(401);
    } catch (err) {
      throw await explained(err, context);
    } finally {
      await context.close();
    }
  });

  it('revoking the token while the Jobs page is open: its live stream ends and the page goes to sign-in by itself', async () => {
    const admin = api('admin');
    const { token, secret } = await admin.tokens.create({ role: 'viewer', name: 'e2e-revoked-live' });
    const { context, page } = await signedInWith(secret);
    try {
      await gotoScreen(page, 'jobs');
      await page.getByText('Live', { exact: true }).waitFor();
      await admin.tokens.revoke(token.id);
      // No click: a revocation through the server ends the stream at once; the page then asks
      // GET /v1/session and, answered 401, shows sign-in with the notice, not "Live". (The
      // browser's reconnect and the check take a moment; a loaded CI machine gets room.)
      await page.getByTestId('signin-token').waitFor({ timeout: 30_000 });
      await page.getByRole('status').filter({ hasText: /sign in again/i }).waitFor();
    } catch (err) {
      throw await explained(err, context);
    } finally {
      await context.close();
    }
  }, 70_000);

  it('works from the keyboard: sign-in, the skip link, a dialog that takes and gives back focus', async () => {
    const backupId = shared.sqliteBackupId ?? (await sqliteBackup());
    const context = await newContext(browser, env);
    const page = await context.newPage();
    const focused = (): Promise<string> =>
      page.evaluate(() => {
        const el = (globalThis as unknown as { document: { activeElement: { id: string; tagName: string; textContent: string | null; getAttribute(n: string): string | null } | null } }).document.activeElement;
        return el ? `${el.tagName.toLowerCase()}#${el.id}[${el.getAttribute('data-testid') ?? ''}] ${(el.textContent ?? '').trim().slice(0, 30)}` : '';
      });
    try {
      await page.goto('/');
      await page.getByTestId('signin-token').waitFor();
      await page.keyboard.press('Tab');
      expect(await focused()).toContain('[signin-token]');
      await page.keyboard.type(env.tokens.operator);
      await page.keyboard.press('Enter');
      await page.getByTestId('nav-overview').waitFor({ state: 'attached' });
      await screenReady(page);
      // The first Tab reaches the skip link, which moves focus to the content.
      await page.keyboard.press('Tab');
      expect(await focused()).toContain('Skip to content');
      await page.keyboard.press('Enter');
      expect(await focused()).toMatch(/^main#main/);

      await openBackup(page, backupId);
      const del = page.getByTestId('delete-backup');
      await del.focus();
      await page.keyboard.press('Enter');
      const dialog = page.getByRole('dialog');
      await dialog.waitFor();
      // Focus moved into the dialog …
      expect(await dialog.evaluate((d) => d.contains((globalThis as unknown as { document: { activeElement: unknown } }).document.activeElement as never))).toBe(true);
      await page.keyboard.press('Escape');
      await dialog.waitFor({ state: 'hidden' });
      // … and back to the button that opened it; nothing was deleted.
      expect(await focused()).toContain('[delete-backup]');
      expect((await api('viewer').backups.get(backupId)).id).toBe(backupId);
    } catch (err) {
      throw await explained(err, context);
    } finally {
      await context.close();
    }
  });

  it('backs up the SQLite source; the jobs screen, open in another tab, follows it live to SUCCESS', async () => {
    const { context, page: jobsTab } = await signedInPage(browser, env, 'operator');
    try {
      await gotoScreen(jobsTab, 'jobs');
      const sourcesTab = await context.newPage();
      await sourcesTab.goto('/');
      const jobId = await startBackupInConsole(sourcesTab, env.sqlite.name);
      // The panel under the sources table follows the job (GET /v1/jobs/{id}/events).
      await expect.poll(() => sourcesTab.getByTestId(`job-state-${jobId}`).textContent(), { timeout: 60_000 }).toBe('SUCCESS');
      // The other tab was never reloaded: the row came through GET /v1/events.
      await jobsTab.getByTestId(`job-row-${jobId}`).waitFor();
      await expect.poll(() => jobsTab.getByTestId(`job-state-${jobId}`).textContent(), { timeout: 30_000 }).toBe('SUCCESS');
      const job = await api('viewer').jobs.get(jobId);
      expect(job.state).toBe('SUCCESS');
      const backupId = (job.result as { backupId: string }).backupId;
      await gotoScreen(jobsTab, 'backups');
      const row = jobsTab.getByTestId(`backup-row-${backupId}`);
      await row.waitFor();
      expect(await row.textContent()).toContain(env.sqlite.name);
      // Its time in the viewer's zone (the browser's: Europe/Paris), UTC on hover.
      const time = row.locator('time').first();
      const iso = (await time.getAttribute('datetime')) as string;
      expect(Math.abs(Date.parse(iso) - Date.parse(job.createdAt))).toBeLessThan(60_000);
      expect(await time.getAttribute('title')).toBe(`${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`);
      const paris = new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Paris', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(new Date(iso));
      expect(await time.textContent()).toContain(paris);
      shared.sqliteBackupId = backupId;
    } catch (err) {
      throw await explained(err, context);
    } finally {
      await context.close();
    }
  });

  it('restores through the wizard with a rename: the dry run shows the conflict first', async () => {
    const backupId = shared.sqliteBackupId ?? (await sqliteBackup());
    const { context, page } = await signedInPage(browser, env, 'operator');
    try {
      await gotoScreen(page, 'restore');
      const next = page.getByRole('button', { name: 'Next' });
      // 1. The backup.
      await page.getByLabel('Backup', { exact: true }).selectOption(backupId);
      await page.getByText(/collections, .* rows/).waitFor();
      await next.click();
      // 2. The target: the database the backup came from.
      await page.getByLabel('Restore into').selectOption(env.sqlite.name);
      await page.getByText(/database the backup was taken from/).waitFor();
      await next.click();
      // 3. The scope: Artist alone, under its own name for now.
      await page.getByRole('button', { name: 'Select none' }).click();
      await page.getByLabel('Artist', { exact: true }).check();
      await next.click();
      // 4. Policy "fail" (the default): the check lists Artist as a conflict, and Start stays off.
      await page.getByTestId('restore-check').click();
      const conflicts = page.getByTestId('restore-conflicts');
      await conflicts.waitFor();
      expect(await conflicts.textContent()).toContain('Artist');
      await shot(page, 'restore-conflict');
      // The console's "Show CLI / curl / SDK" for this very check, run as a script would run it.
      const shown = page.getByTestId('equivalents').first();
      await shown.locator('summary').click();
      const [cliText, curlText] = await shown.locator('pre').allTextContents();
      expect(cliText).toMatch(/^cairn restore .*--dry-run/);
      const curlRun = runShell(curlText as string, 'operator');
      expect(curlRun.code, curlRun.stderr).toBe(0);
      const answer = JSON.parse(curlRun.stdout) as { dryRun: boolean; ok: boolean; conflicts: Array<{ name: string }> };
      expect(answer).toMatchObject({ dryRun: true, ok: false });
      expect(answer.conflicts.map((c) => c.name).join(' ')).toContain('Artist');
      const cliRun = runShell(cliText as string, 'operator');
      expect(`${cliRun.stdout}${cliRun.stderr}`).toContain('Artist');
      expect(cliRun.code).not.toBe(0);
      expect(await page.getByTestId('restore-start').isDisabled()).toBe(true);
      // Back to the scope: restore it beside the live table as Artist_restored.
      await page.getByRole('button', { name: 'Back' }).click();
      await page.getByLabel('New name for Artist').fill('Artist_restored');
      await next.click();
      await page.getByTestId('restore-check').click();
      await page.getByRole('status').filter({ hasText: /no conflict/i }).waitFor();
      expect(await conflicts.count()).toBe(0);
      await page.getByTestId('restore-start').click();
      const result = page.getByTestId('restore-result');
      await result.waitFor();
      await expect.poll(() => result.locator('[data-testid^="job-state-"]').textContent(), { timeout: 60_000 }).toBe('SUCCESS');
      await shot(page, 'restore-result');

      const db = new Database(env.sqlite.path, { readonly: true });
      try {
        const count = (table: string): number => (db.prepare(`SELECT count(*) AS n FROM "${table}"`).get() as { n: number }).n;
        expect(count('Artist_restored')).toBe(count('Artist'));
        expect(count('Artist')).toBe(275);
      } finally {
        db.close();
      }
    } catch (err) {
      throw await explained(err, context);
    } finally {
      await context.close();
    }
  });

  it('creates a schedule with a live cron preview and shows its next five runs in its own zone', async () => {
    const { context, page } = await signedInPage(browser, env, 'operator');
    try {
      await gotoScreen(page, 'schedules');
      await page.getByRole('button', { name: 'New schedule' }).click();
      const dialog = page.getByRole('dialog', { name: 'New schedule' });
      await dialog.waitFor();
      await dialog.getByLabel('Name', { exact: true }).fill('nightly-app');
      await dialog.getByLabel('Source', { exact: true }).selectOption(env.sqlite.name);
      await dialog.getByLabel('Cron', { exact: true }).fill('30 3 * * *');
      // Another zone than the browser's (Europe/Paris): the runs must be shown at 03:30 there.
      await dialog.getByLabel('Time zone').fill('America/New_York');
      await dialog.getByLabel('Keep last').fill('3');
      const preview = dialog.getByTestId('cron-preview-runs');
      await expect.poll(async () => (await preview.locator('time').allTextContents()).filter((t) => t.includes('03:30')).length, { timeout: 15_000 }).toBe(5);
      await dialog.getByText(/kept/).waitFor();
      await shot(page, 'schedule-new', false);
      await dialog.getByRole('button', { name: 'Create schedule' }).click();
      await dialog.waitFor({ state: 'hidden' });

      const card = page.getByTestId('schedule-nightly-app');
      await card.waitFor();
      const runs = card.getByTestId('schedule-next-runs').locator('time');
      await expect.poll(() => runs.count()).toBe(5);
      const shown = await runs.evaluateAll((els) => els.map((e) => ({ iso: e.getAttribute('datetime'), text: e.textContent ?? '' })));
      const expected = (await api('viewer').schedules.get('nightly-app')) as unknown as { schedule: { nextRuns: string[] } };
      expect(shown.map((r) => r.iso)).toEqual(expected.schedule.nextRuns);
      for (const r of shown) {
        expect(r.text).toContain('03:30');
        // 03:30 in New York is 08:30 or 07:30 UTC (standard or daylight time).
        expect(r.iso).toMatch(/T0[78]:30:00/);
      }
    } catch (err) {
      throw await explained(err, context);
    } finally {
      await context.close();
    }
  });

  it('cancels a running PostgreSQL backup from the jobs screen', async () => {
    // Another session holds an exclusive lock on the big table: the backup waits for its
    // ACCESS SHARE lock (up to the 30 s lock timeout), so it is reliably running when cancelled.
    const blocker = new pg.Client({ connectionString: pgUrl(env.pg.db) });
    await blocker.connect();
    const { context, page } = await signedInPage(browser, env, 'operator');
    try {
      await blocker.query('BEGIN; LOCK TABLE big IN ACCESS EXCLUSIVE MODE');
      const jobId = await startBackupInConsole(page, env.pg.name);
      await gotoScreen(page, 'jobs');
      const state = page.getByTestId(`job-state-${jobId}`);
      await expect.poll(() => state.textContent(), { timeout: 20_000 }).toMatch(/STARTED|TRANSFERRING/);
      await shot(page, 'jobs-running', false);
      await page.getByTestId(`job-cancel-${jobId}`).click();
      // A confirmation, when the console asks for one.
      const dialog = page.getByRole('dialog');
      const confirm = dialog.getByRole('button', { name: /cancel (the )?job|yes|confirm/i });
      if (await dialog.isVisible()) await confirm.click();
      await expect.poll(() => state.textContent(), { timeout: 30_000 }).toBe('CANCELED');
      expect((await api('viewer').jobs.get(jobId)).state).toBe('CANCELED');
      // Cancelled, not merely shown so: no backup of the source was written.
      const listed = await api('viewer').backups.list();
      expect(listed.filter((b) => b.status === 'SUCCESS' && b.source.location.includes(env.pg.db))).toEqual([]);
      expect(listed.some((b) => b.source.location.includes(env.pg.db))).toBe(true);
    } catch (err) {
      throw await explained(err, context);
    } finally {
      await blocker.query('ROLLBACK').catch(() => undefined);
      await blocker.end();
      await context.close();
    }
  });

  it('backups: sorted by a column header and filtered by the server, exactly as the API lists them', async () => {
    await sqliteBackup();
    const { context, page } = await signedInPage(browser, env, 'viewer');
    try {
      const shownIds = (): Promise<string[]> =>
        page.locator('[data-testid^="backup-row-"]').evaluateAll((rows) => rows.map((r) => (r.getAttribute('data-testid') ?? '').slice('backup-row-'.length)));
      const apiIds = async (query: Record<string, string>): Promise<string[]> => {
        const answer = await api('viewer').backups.listPage({ limit: '25', offset: '0', ...query } as never);
        return answer.backups.map((b) => b.id ?? ('jobId' in b ? (b as { jobId: string }).jobId : ''));
      };
      await gotoScreen(page, 'backups');
      // Newest first by default.
      expect(await page.getByRole('columnheader', { name: /created/i }).getAttribute('aria-sort')).toBe('descending');
      await expect.poll(shownIds).toEqual(await apiIds({ sort: 'createdAt', order: 'desc' }));
      const total = (await api('viewer').backups.listPage({ limit: '25', offset: '0' } as never)).total;
      expect(total).toBeGreaterThanOrEqual(3);
      await page.getByRole('navigation', { name: 'Pages' }).getByText(`1–${total} of ${total}`).waitFor();
      // The Size header sorts by size (largest first or smallest first), a second click the other way.
      const size = page.getByRole('columnheader', { name: /size/i });
      await size.getByRole('button').click();
      await expect.poll(() => size.getAttribute('aria-sort')).not.toBe('none');
      const first = (await size.getAttribute('aria-sort')) === 'ascending' ? 'asc' : 'desc';
      await expect.poll(shownIds).toEqual(await apiIds({ sort: 'logicalBytes', order: first }));
      await size.getByRole('button').click();
      const second = first === 'asc' ? 'desc' : 'asc';
      await expect.poll(() => size.getAttribute('aria-sort')).toBe(second === 'asc' ? 'ascending' : 'descending');
      await expect.poll(shownIds).toEqual(await apiIds({ sort: 'logicalBytes', order: second }));
      expect(await page.getByRole('columnheader', { name: /created/i }).getAttribute('aria-sort')).toBe('none');
      // The phone's Sort by select follows the header: it shows that very sort (an option, selected).
      await expect.poll(() => page.locator('#f-sort').evaluate((el) => { const sel = el as unknown as { selectedIndex: number; value: string }; return sel.selectedIndex >= 0 ? sel.value : null; })).toBe(`logicalBytes:${second}`);
      // Status CANCELED: the cancelled PostgreSQL backup alone (when that scenario ran).
      await page.getByLabel('Status').selectOption('CANCELED');
      const cancelled = await apiIds({ status: 'CANCELED', sort: 'logicalBytes', order: second });
      await expect.poll(shownIds).toEqual(cancelled);
      await page.getByLabel('Status').selectOption('SUCCESS');
      await page.getByLabel('Source').selectOption(env.sqlite.name);
      const ok = await apiIds({ status: 'SUCCESS', source: env.sqlite.name, sort: 'logicalBytes', order: second });
      expect(ok.length).toBeGreaterThanOrEqual(2);
      await expect.poll(shownIds).toEqual(ok);
    } catch (err) {
      throw await explained(err, context);
    } finally {
      await context.close();
    }
  });

  it('exports a backup and downloads the archive with the session cookie; cairn verify accepts it', async () => {
    const backupId = shared.sqliteBackupId ?? (await sqliteBackup());
    const { context, page } = await signedInPage(browser, env, 'operator');
    try {
      await openBackup(page, backupId);
      await page.getByRole('button', { name: 'Export archive' }).click();
      const dialog = page.getByRole('dialog', { name: 'Export to an archive' });
      await dialog.getByRole('button', { name: 'Start export' }).click();
      const link = page.getByRole('link', { name: `download ${backupId}.cairn` });
      await link.waitFor({ timeout: 60_000 });
      const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
      const file = join(env.work, `${backupId}.cairn`);
      await download.saveAs(file);
      const verified = spawnSync(process.execPath, [CLI, 'verify', file, '--read-data', '--json'], { encoding: 'utf8', timeout: 60_000 });
      expect(verified.status, verified.stderr).toBe(0);
      expect(verified.stdout).toContain(backupId);
    } catch (err) {
      throw await explained(err, context);
    } finally {
      await context.close();
    }
  });

  it('copies a backup to another repository from its details; it is listed there', async () => {
    const backupId = shared.sqliteBackupId ?? (await sqliteBackup());
    const { context, page } = await signedInPage(browser, env, 'operator');
    try {
      await openBackup(page, backupId);
      await page.getByRole('button', { name: /copy to repository/i }).click();
      const dialog = page.getByRole('dialog', { name: 'Copy to another repository' });
      await dialog.getByLabel('Copy to').selectOption('offsite');
      const started = page.waitForResponse((r) => r.url().endsWith('/v1/copies') && r.request().method() === 'POST');
      await dialog.getByRole('button', { name: 'Start copy' }).click();
      const jobId = ((await (await started).json()) as { job: { id: string } }).job.id;
      await expect.poll(() => page.getByTestId(`job-state-${jobId}`).textContent(), { timeout: 60_000 }).toBe('SUCCESS');
      // A copy counts packs and bytes, never rows: its panel shows no "Rows 0".
      const panel = page.locator('section.job-panel', { has: page.getByTestId(`job-state-${jobId}`) });
      await panel.getByText('Packs', { exact: true }).waitFor();
      expect(await panel.getByText('Rows', { exact: true }).count()).toBe(0);
      expect((await api('viewer').backups.get(backupId, { repository: 'offsite' })).id).toBe(backupId);
      await page.goto('/#/backups?repository=offsite');
      await page.getByTestId(`backup-row-${backupId}`).waitFor();
    } catch (err) {
      throw await explained(err, context);
    } finally {
      await context.close();
    }
  });

  it('admin: a token made in the console signs in once its secret is copied; sources are registered, tested and removed', async () => {
    const { context, page } = await signedInPage(browser, env, 'admin');
    try {
      await gotoScreen(page, 'tokens');
      await page.getByRole('button', { name: 'New token' }).click();
      const create = page.getByRole('dialog', { name: /token/i });
      await create.getByLabel('Name', { exact: true }).fill('e2e-made');
      await create.getByLabel('Role').selectOption('viewer');
      await create.getByRole('button', { name: 'Create token' }).click();
      const secret = (await page.getByTestId('token-secret').textContent())?.trim() ?? '';
      expect(secret.length).toBeGreaterThan(20);
      const other = await newContext(browser, env);
      try {
        const otherPage = await other.newPage();
        await otherPage.goto('/');
        await otherPage.getByTestId('signin-token').fill(secret);
        await otherPage.getByTestId('signin-submit').click();
        await otherPage.getByTestId('nav-overview').waitFor({ state: 'attached' });
        expect((await pageSession(otherPage))?.role).toBe('viewer');
      } finally {
        await other.close();
      }
      // Shown once: after a reload only its name and role are listed.
      await page.reload();
      await screenReady(page);
      await page.getByRole('cell', { name: 'e2e-made' }).or(page.getByRole('rowheader', { name: 'e2e-made' })).first().waitFor();
      expect(await page.getByTestId('token-secret').count()).toBe(0);
      expect(await page.content()).not.toContain(secret);

      // Test the connection of the PostgreSQL source: reachable, its version shown.
      await gotoScreen(page, 'sources');
      const pgRow = page.getByTestId(`source-row-${env.pg.name}`);
      await pgRow.getByRole('button', { name: 'Test connection' }).click();
      await pgRow.getByText(/postgres \d+/).waitFor({ timeout: 30_000 });
      // Register one on a port nothing listens on: its test fails, without a password shown.
      await page.getByRole('button', { name: 'Register source' }).click();
      const reg = page.getByRole('dialog', { name: 'Register a source' });
      await reg.getByLabel('Name', { exact: true }).fill('deadpg');
      await reg.getByLabel('URL', { exact: true }).fill('postgres://postgres:hunter2@127.0.0.1:1/nothing');
      await reg.getByRole('button', { name: 'Register' }).click();
      const dead = page.getByTestId('source-row-deadpg');
      await dead.waitFor();
      expect(await dead.textContent()).not.toContain('hunter2');
      await dead.getByRole('button', { name: 'Test connection' }).click();
      await dead.getByText('FAILED').waitFor({ timeout: 30_000 });
      expect(await dead.textContent()).toContain('connection refused');
      expect(await dead.textContent()).not.toContain('hunter2');
      await dead.getByRole('button', { name: 'Remove source deadpg' }).click();
      await page.getByRole('dialog', { name: 'Remove source deadpg?' }).getByRole('button', { name: 'Remove', exact: true }).click();
      await dead.waitFor({ state: 'detached' });
      expect((await api('viewer').sources.list()).map((x) => x.name).sort()).toEqual([env.sqlite.name, env.pg.name].sort());
    } catch (err) {
      throw await explained(err, context);
    } finally {
      await context.close();
    }
  });

  it('a viewer sees no delete button; forged requests get 403 and change nothing', async () => {
    const backupId = shared.sqliteBackupId ?? (await sqliteBackup());
    const viewer = await signedInPage(browser, env, 'viewer');
    const operator = await signedInPage(browser, env, 'operator');
    try {
      // The operator's details view has the button (so its absence below means something).
      await openBackup(operator.page, backupId);
      await operator.page.getByTestId('delete-backup').waitFor();

      await openBackup(viewer.page, backupId);
      expect(await viewer.page.getByTestId('delete-backup').count()).toBe(0);
      expect(await viewer.page.getByRole('button', { name: /delete|restore|copy|edit expiry/i }).count()).toBe(0);
      // No screen shows a viewer a button that changes anything, nor the operator-only screens.
      expect(await viewer.page.getByTestId('nav-restore').count()).toBe(0);
      expect(await viewer.page.getByTestId('nav-tokens').count()).toBe(0);
      expect(await viewer.page.getByTestId('nav-alerts').count()).toBe(0);
      for (const screen of ['overview', 'backups', 'jobs', 'schedules', 'sources', 'repositories']) {
        await gotoScreen(viewer.page, screen);
        const mutating = await viewer.page.getByRole('button', { name: MUTATING }).allTextContents();
        expect(mutating, `${screen}: buttons a viewer must not see`).toEqual([]);
      }
      // An operator has no admin buttons: no registering or removing sources, no tokens screen.
      expect(await operator.page.getByTestId('nav-tokens').count()).toBe(0);
      expect(await operator.page.getByTestId('nav-alerts').count()).toBe(0);
      await gotoScreen(operator.page, 'sources');
      await operator.page.getByRole('button', { name: 'Back up now' }).first().waitFor();
      expect(await operator.page.getByRole('button', { name: /register|remove/i }).count()).toBe(0);

      const path = `/v1/backups/${backupId}?repository=default`;
      // The operator's own cookie without the CSRF header, and with a guessed one: refused.
      expect(await pageFetch(operator.page, path, { method: 'DELETE' })).toEqual({ status: 403, code: 'CSRF' });
      expect(await pageFetch(operator.page, path, { method: 'DELETE', headers: { 'X-CSRF-Token': 'guessed-csrf-token' } })).toEqual({ status: 403, code: 'CSRF' });
      // The viewer's cookie with its right CSRF token: the role refuses it.
      const csrf = (await pageSession(viewer.page))?.csrfToken;
      expect(csrf).toBeTruthy();
      expect(await pageFetch(viewer.page, path, { method: 'DELETE', headers: { 'X-CSRF-Token': csrf as string } })).toEqual({ status: 403, code: 'FORBIDDEN' });
      expect((await api('viewer').backups.get(backupId)).id).toBe(backupId);
    } catch (err) {
      throw await explained(err, viewer.context, operator.context);
    } finally {
      await viewer.context.close();
      await operator.context.close();
    }
  });

  it('a form on another site posting to the API while an operator is signed in does nothing', async () => {
    const { context, page } = await signedInPage(browser, env, 'operator');
    try {
      const before = (await api('viewer').jobs.list()).length;
      // A page of another origin (served by the browser's router, never the network) that posts
      // a backup request to the server the moment it loads, as a cross-site request forgery would.
      const form = `<!doctype html><title>evil</title><form method="post" action="${env.url}/v1/backups" enctype="text/plain"><input type="hidden" name='{"source":"${env.sqlite.name}","x":"' value='"}'></form><script>document.forms[0].submit()</script>`;
      await context.route('http://evil.example/**', (route) => route.fulfill({ contentType: 'text/html', body: form }));
      const answered = page.waitForResponse((r) => r.url() === `${env.url}/v1/backups`);
      await page.goto('http://evil.example/');
      const res = await answered;
      // SameSite=Strict: the cookie is not sent on a cross-site request (401); were it sent, the
      // Origin check and the missing CSRF header would refuse it (403).
      expect([401, 403]).toContain(res.status());
      expect((await api('viewer').jobs.list()).length).toBe(before);
    } catch (err) {
      throw await explained(err, context);
    } finally {
      await context.close();
    }
  });

  it('axe-core: no serious or critical violation on any screen at 1280×800 and 390×844', async () => {
    const backupId = shared.sqliteBackupId ?? (await sqliteBackup());
    if (SCREENSHOTS) await moreHistory();
    // The scan itself can fail: a page with an image without text has a critical violation.
    const probe = await browser.newPage();
    try {
      await probe.setContent('<!doctype html><html lang="en"><title>probe</title><main><img src="data:,"></main></html>');
      expect((await seriousViolations(probe)).map((v) => v.id)).toContain('image-alt');
    } finally {
      await probe.close();
    }
    const problems: string[] = [];
    const scanned: string[] = [];
    for (const [size, viewport] of [['desktop', DESKTOP], ['phone', PHONE]] as const) {
      const context = await newContext(browser, env, viewport);
      const page = await context.newPage();
      try {
        const check = async (screen: string, take: boolean, full = true): Promise<void> => {
          const found = await seriousViolations(page);
          if (found.length) problems.push(describeViolations(`${screen} at ${size}`, found));
          // Usable at phone width: wide tables scroll inside their card, the page never sideways.
          const overflow = await page.evaluate(SIDEWAYS);
          if (overflow) problems.push(`${screen} at ${size}: the page scrolls sideways ${overflow}`);
          scanned.push(`${screen}@${size}`);
          if (take) await shot(page, `${screen}${size === 'phone' ? '-phone' : ''}`, full);
        };
        await page.goto('/');
        await page.getByTestId('signin-token').waitFor();
        await check('sign-in', size === 'desktop');
        await signIn(page, env, 'admin');
        for (const screen of SCREENS) {
          await gotoScreen(page, screen);
          // alerts.png is taken by alerts.test.ts, with channels, rules and deliveries to show.
          await check(screen, screen !== 'alerts' && (size === 'desktop' || screen === 'overview' || screen === 'backups'));
        }
        await openBackup(page, backupId);
        await check('backup-details', size === 'desktop');
        // The delete confirmation (a <dialog>, with the deletion preview), then dismissed.
        await page.getByTestId('delete-backup').click();
        const dialog = page.getByRole('dialog');
        await dialog.waitFor();
        await dialog.getByTestId('deletion-preview').waitFor();
        await check('delete-dialog', size === 'desktop', false);
        await page.keyboard.press('Escape');
        await dialog.waitFor({ state: 'hidden' });
        if (size === 'phone') {
          await page.getByRole('button', { name: 'Menu' }).click();
          await page.getByTestId('nav-overview').waitFor();
          await check('menu', true, false);
        }
      } catch (err) {
        throw await explained(err, context);
      } finally {
        await context.close();
      }
    }
    expect(problems.join('\n')).toBe('');
    expect(scanned.length).toBe(2 * (SCREENS.length + 3) + 1);
  });
});
