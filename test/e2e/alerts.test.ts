/**
 * The console's Alerts screen (admin) and the jobs screen's stuck marker, end to end in a real
 * browser against the real `cairn server` (harness.ts, started with --stuck-after 2s) and a real
 * webhook receiver (node:http on 127.0.0.1, test/helpers/receivers.ts) that checks the HMAC
 * signature. An admin adds a webhook channel, tests it (the receiver gets the signed sample, the
 * screen says delivered), tests one whose receiver is down (failed, with the reason), adds a rule
 * and sees the deliveries of a real backup; Slack, ntfy and email channels made through their forms
 * deliver to a receiver and an SMTP server (smtp-server, AUTH); no secret comes back. A viewer or
 * an operator has no Alerts entry. axe-core finds no serious violation on the screen and its
 * dialog. With CAIRN_SCREENSHOTS=1 it writes docs/console/alerts.png.
 */
import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { SMTPServer } from 'smtp-server';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CairnClient } from '../../src/sdk/index.js';
import { CLI } from '../helpers/cli.js';
import { pgUrl } from '../helpers/postgres.js';
import { Receiver } from '../helpers/receivers.js';
import { describeViolations, seriousViolations } from './axe.js';
import { browserMissing, DESKTOP, launchBrowser, newContext, PHONE, signedInPage, signIn, startConsoleEnv, type ConsoleEnv } from './harness.js';

const missing = browserMissing();
if (missing) console.log(`console alerts e2e tests skipped: ${missing}`);
const SCREENSHOTS = process.env.CAIRN_SCREENSHOTS === '1';
const SHOTS_DIR = fileURLToPath(new URL('../../docs/console/', import.meta.url));
const SECRET = 'e2e-hmac-secret-0123456789abcdef';

let env: ConsoleEnv;
let browser: Browser;
let receiver: Receiver;

const api = (role: keyof ConsoleEnv['tokens']): CairnClient => new CairnClient({ url: env.url, token: env.tokens[role] });

/** A TCP port nothing listens on (bound, then closed): a receiver that is down. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

async function screenReady(page: Page): Promise<void> {
  await page.locator('#page-title').waitFor();
  await page.locator('.loading').first().waitFor({ state: 'detached' });
}

/** Opens a screen through the navigation (the phone's menu first when the nav is collapsed). */
async function gotoScreen(page: Page, screen: string): Promise<void> {
  const link = page.getByTestId(`nav-${screen}`);
  await link.waitFor({ state: 'attached' });
  if (!(await link.isVisible())) await page.getByRole('button', { name: 'Menu' }).click();
  await link.click();
  await expect.poll(() => link.getAttribute('aria-current')).toBe('page');
  const menu = page.getByRole('button', { name: 'Menu' });
  if (await menu.isVisible()) await expect.poll(() => menu.getAttribute('aria-expanded')).toBe('false');
  await screenReady(page);
}

/** The error of a failed step with what the browser showed then and the server log's tail. */
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

/**
 * Runs a command line the console shows in sh, as a user would paste it (an admin token).
 * Asynchronously: the webhook receiver lives in this process and must answer meanwhile.
 */
function runShell(line: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      'sh',
      ['-c', `cairn() { "$CAIRN_NODE" "$CAIRN_CLI" "$@"; }\n${line}`],
      { env: { ...process.env, CAIRN_SERVER: env.url, CAIRN_TOKEN: env.tokens.admin, CAIRN_NODE: process.execPath, CAIRN_CLI: CLI }, encoding: 'utf8', timeout: 60_000 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }),
    );
  });
}

/** Adds a webhook channel through the screen's dialog. */
async function addWebhook(page: Page, name: string, url: string): Promise<void> {
  await page.getByRole('button', { name: 'Add channel' }).click();
  const dialog = page.getByRole('dialog', { name: 'Add a channel' });
  await dialog.getByLabel('Name', { exact: true }).fill(name);
  await dialog.getByLabel('Type', { exact: true }).selectOption('webhook');
  await dialog.getByLabel('URL', { exact: true }).fill(url);
  const secret = dialog.getByLabel('HMAC secret');
  expect(await secret.getAttribute('type')).toBe('password');
  await secret.fill(SECRET);
  await dialog.getByRole('button', { name: 'Add channel' }).click();
  await dialog.waitFor({ state: 'hidden' });
  await page.getByTestId(`channel-row-${name}`).waitFor();
}

describe.skipIf(missing !== null).sequential('console: alerts screen and stuck jobs in a real browser', { timeout: 120_000 }, () => {
  beforeAll(async () => {
    [env, browser, receiver] = await Promise.all([startConsoleEnv({ bigRows: 5_000, serverArgs: ['--stuck-after', '2s'] }), launchBrowser(), Receiver.start()]);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await receiver?.close();
    await env?.stop();
  }, 60_000);

  it('admin: adds a webhook channel, tests it (signed sample received: delivered), adds a rule, sees the deliveries of a backup', async () => {
    const { context, page } = await signedInPage(browser, env, 'admin');
    try {
      await gotoScreen(page, 'alerts');
      // The add dialog's CLI equivalent reads the secret from a file, never from the command line.
      await page.getByRole('button', { name: 'Add channel' }).click();
      const dialog = page.getByRole('dialog', { name: 'Add a channel' });
      await dialog.getByLabel('HMAC secret').fill(SECRET);
      const eq = dialog.getByTestId('equivalents');
      await eq.locator('summary').click();
      const [cliText, curlText, sdkText] = await eq.locator('pre').allTextContents();
      expect(cliText).toContain('--secret-file hook.secret');
      for (const text of [cliText, curlText, sdkText]) expect(text).not.toContain(SECRET);
      if (SCREENSHOTS) {
        await dialog.getByLabel('Name', { exact: true }).fill('ops-hook');
        await dialog.getByLabel('URL', { exact: true }).fill('https://ops.example.com/cairn');
        // Its equivalents folded again: the dialog fits the window.
        await eq.locator('summary').click();
        mkdirSync(SHOTS_DIR, { recursive: true });
        await page.screenshot({ path: `${SHOTS_DIR}alerts-channel-new.png`, animations: 'disabled', caret: 'hide' });
      }
      await dialog.getByRole('button', { name: 'Cancel' }).click();
      await dialog.waitFor({ state: 'hidden' });

      const hookUrl = `${receiver.url}/cairn/hook`;
      await addWebhook(page, 'ops-hook', hookUrl);
      const row = page.getByTestId('channel-row-ops-hook');
      expect(await row.textContent()).toContain('set');
      expect(await page.content()).not.toContain(SECRET);

      // Test: the receiver gets the sample, signed with the secret; the row says delivered.
      await row.getByRole('button', { name: 'Test channel ops-hook' }).click();
      const result = page.getByTestId('channel-test-ops-hook');
      await expect.poll(() => result.textContent(), { timeout: 20_000 }).toContain('delivered');
      const sample = receiver.received.find((r) => r.path === '/cairn/hook');
      expect(sample).toBeDefined();
      expect(sample!.headers['x-cairn-signature']).toBe(`sha256=${createHmac('sha256', SECRET).update(sample!.body).digest('hex')}`);
      expect((JSON.parse(sample!.body) as { title: string }).title).toContain('ops-hook');

      // The "Show CLI" of the test, run as shown: delivered again.
      const rowEq = page.getByTestId('equivalents').first();
      await rowEq.locator('summary').click();
      const testCli = (await rowEq.locator('pre').first().textContent()) ?? '';
      expect(testCli).toMatch(/^cairn alert channel test ops-hook --server/);
      const ran = await runShell(testCli);
      expect(ran.code, ran.stderr).toBe(0);
      expect(ran.stdout).toContain('delivered');

      // A channel whose receiver is down: failed, with the reason (its scheme and host only).
      const port = await closedPort();
      await addWebhook(page, 'down-hook', `http://127.0.0.1:${port}/secret-path-token`);
      await page.getByRole('button', { name: 'Test channel down-hook' }).click();
      const failed = page.getByTestId('channel-test-down-hook');
      await expect.poll(() => failed.textContent(), { timeout: 20_000 }).toContain('failed');
      const reason = (await failed.textContent()) ?? '';
      expect(reason).toMatch(/127\.0\.0\.1/);
      expect(reason).not.toContain('secret-path-token');

      // A rule: successes and failures of the SQLite source go to ops-hook.
      await page.getByRole('button', { name: 'Add rule' }).click();
      const ruleDialog = page.getByRole('dialog', { name: 'Add a rule' });
      await ruleDialog.getByLabel('Channel', { exact: true }).selectOption('ops-hook');
      await ruleDialog.getByLabel(/^success/).check();
      await expect.poll(async () => (await ruleDialog.getByLabel('Source', { exact: true }).locator('option').allTextContents()).includes(env.sqlite.name)).toBe(true);
      await ruleDialog.getByLabel('Source', { exact: true }).selectOption(env.sqlite.name);
      await ruleDialog.getByRole('button', { name: 'Add rule' }).click();
      await ruleDialog.waitFor({ state: 'hidden' });
      const rules = await api('admin').alerts.listRules();
      expect(rules).toHaveLength(1);
      expect(rules[0]).toMatchObject({ channel: 'ops-hook', on: ['failure', 'success'], source: env.sqlite.name, schedule: null });
      await page.getByTestId(`rule-row-${rules[0]!.id}`).waitFor();

      // A real backup of that source: its success is delivered and listed, newest first.
      const job = await api('operator').backups.create({ source: env.sqlite.name }, { waitForCompletion: true, pollMs: 50 });
      expect(job.state).toBe('SUCCESS');
      await expect.poll(async () => (await api('admin').alerts.deliveries({ state: 'delivered' })).deliveries.some((d) => d.kind === 'success'), { timeout: 30_000 }).toBe(true);
      await page.getByRole('button', { name: 'Refresh' }).click();
      const table = page.getByRole('region', { name: 'Deliveries, newest first' });
      await expect.poll(async () => (await table.locator('tbody tr').first().textContent()) ?? '', { timeout: 15_000 }).toContain('success');
      const firstRow = (await table.locator('tbody tr').first().textContent()) ?? '';
      expect(firstRow).toContain('ops-hook');
      expect(firstRow).toContain('delivered');
      expect(receiver.received.some((r) => (JSON.parse(r.body) as { kind: string }).kind === 'success')).toBe(true);
      // The state filter: failed shows the down channel's test alone.
      await page.getByLabel('State', { exact: true }).selectOption('failed');
      await expect.poll(async () => (await table.locator('tbody tr').allTextContents()).map((t) => t.includes('down-hook')), { timeout: 15_000 }).toEqual([true]);
      if (SCREENSHOTS) {
        await page.getByLabel('State', { exact: true }).selectOption('');
        await rowEq.locator('summary').click();
        await screenReady(page);
        mkdirSync(SHOTS_DIR, { recursive: true });
        await page.screenshot({ path: `${SHOTS_DIR}alerts.png`, fullPage: true, animations: 'disabled', caret: 'hide' });
      }

      // Removing a channel through its confirmation.
      await page.getByRole('button', { name: 'Remove channel down-hook' }).click();
      await page.getByRole('dialog', { name: 'Remove channel down-hook?' }).getByRole('button', { name: 'Remove', exact: true }).click();
      await page.getByTestId('channel-row-down-hook').waitFor({ state: 'detached' });
      expect((await api('admin').alerts.listChannels()).map((c) => c.name)).toEqual(['ops-hook']);
      expect(await page.content()).not.toContain(SECRET);
    } catch (err) {
      throw await explained(err, context);
    } finally {
      await context.close();
    }
  });

  it('admin: the Slack, ntfy and email forms make channels that deliver (a real receiver, a real SMTP server with AUTH); their secrets never come back', async () => {
    const SLACK_PATH = '/services/T000/B000/slack-secret-path';
    const NTFY_TOKEN = 'tk_e2e_ntfy_token_secret';
    const SMTP_PASSWORD = 'e2e-smtp-password-secret';
    const mails: { to: string[]; data: string }[] = [];
    const smtp = new SMTPServer({
      secure: false, disabledCommands: ['STARTTLS'], allowInsecureAuth: true, authOptional: false, logger: false,
      onAuth(auth, _session, callback) {
        const ok = auth.username === 'alerts' && auth.password === SMTP_PASSWORD;
        callback(ok ? null : new Error('Invalid username or password'), ok ? { user: auth.username } : undefined);
      },
      onData(stream, session, callback) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          mails.push({ to: session.envelope.rcptTo.map((r) => r.address), data: Buffer.concat(chunks).toString('utf8') });
          callback();
        });
      },
    });
    await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
    const smtpPort = (smtp.server.address() as { port: number }).port;
    const { context, page } = await signedInPage(browser, env, 'admin');
    try {
      await gotoScreen(page, 'alerts');
      const open = async (name: string, type: string) => {
        await page.getByRole('button', { name: 'Add channel' }).click();
        const dialog = page.getByRole('dialog', { name: 'Add a channel' });
        await dialog.getByLabel('Name', { exact: true }).fill(name);
        await dialog.getByLabel('Type', { exact: true }).selectOption(type);
        return dialog;
      };
      const addAndTest = async (dialog: Awaited<ReturnType<typeof open>>, name: string) => {
        await dialog.getByRole('button', { name: 'Add channel' }).click();
        await dialog.waitFor({ state: 'hidden' });
        await page.getByRole('button', { name: `Test channel ${name}` }).click();
        await expect.poll(() => page.getByTestId(`channel-test-${name}`).textContent(), { timeout: 20_000 }).toContain('delivered');
      };

      let dialog = await open('team-chat', 'slack');
      const slackUrl = dialog.getByLabel('Incoming-webhook URL');
      expect(await slackUrl.getAttribute('type')).toBe('password');
      await slackUrl.fill(`${receiver.url}${SLACK_PATH}`);
      await addAndTest(dialog, 'team-chat');
      const slack = receiver.received.find((r) => r.path === SLACK_PATH);
      expect((JSON.parse(slack!.body) as { text: string }).text).toContain('team-chat');

      dialog = await open('phone', 'ntfy');
      await dialog.getByLabel('Server', { exact: true }).fill(receiver.url);
      await dialog.getByLabel('Topic', { exact: true }).fill('cairn-e2e');
      await dialog.getByLabel('Access token').fill(NTFY_TOKEN);
      await addAndTest(dialog, 'phone');
      const ntfy = receiver.received.find((r) => r.path === '/cairn-e2e');
      expect(ntfy!.headers.authorization).toBe(`Bearer ${NTFY_TOKEN}`);

      dialog = await open('dba-mail', 'email');
      await dialog.getByLabel('SMTP host').fill('127.0.0.1');
      await dialog.getByLabel('Port', { exact: true }).fill(String(smtpPort));
      await dialog.getByLabel('Security', { exact: true }).selectOption('none');
      await dialog.getByLabel('SMTP user').fill('alerts');
      await dialog.getByLabel('SMTP password').fill(SMTP_PASSWORD);
      await dialog.getByLabel('From', { exact: true }).fill('cairn@example.test');
      await dialog.getByLabel('To', { exact: true }).fill('ops@example.test, dba@example.test');
      await addAndTest(dialog, 'dba-mail');
      expect(mails).toHaveLength(1);
      expect(mails[0]!.to).toEqual(['ops@example.test', 'dba@example.test']);
      expect(mails[0]!.data).toContain('dba-mail');

      const listed = await api('admin').alerts.listChannels();
      for (const name of ['team-chat', 'phone', 'dba-mail']) expect(listed.find((c) => c.name === name)?.secretSet).toBe(true);
      await page.reload();
      await screenReady(page);
      await page.getByTestId('channel-row-dba-mail').waitFor();
      const html = await page.content();
      for (const secret of [SLACK_PATH, NTFY_TOKEN, SMTP_PASSWORD]) {
        expect(html).not.toContain(secret);
        expect(JSON.stringify(listed)).not.toContain(secret);
      }
    } catch (err) {
      throw await explained(err, context);
    } finally {
      await context.close();
      await new Promise<void>((resolve) => smtp.close(() => resolve()));
    }
  });

  it('a viewer and an operator have no Alerts entry, and the screen says admins only', async () => {
    const viewer = await signedInPage(browser, env, 'viewer');
    const operator = await signedInPage(browser, env, 'operator');
    const admin = await signedInPage(browser, env, 'admin');
    try {
      await admin.page.getByTestId('nav-alerts').waitFor();
      for (const { page } of [viewer, operator]) {
        expect(await page.getByTestId('nav-alerts').count()).toBe(0);
        await page.goto('/#/alerts');
        await page.getByRole('heading', { level: 1, name: 'Admins only' }).waitFor();
        expect(await page.getByRole('button', { name: /add channel|test channel/i }).count()).toBe(0);
      }
    } catch (err) {
      throw await explained(err, viewer.context, operator.context);
    } finally {
      await viewer.context.close();
      await operator.context.close();
      await admin.context.close();
    }
  });

  it('axe-core: no serious or critical violation on the Alerts screen and its dialog, at 1280×800 and 390×844', async () => {
    if ((await api('admin').alerts.listChannels()).length === 0) await api('admin').alerts.addChannel({ name: 'axe-hook', type: 'webhook', url: `${receiver.url}/axe`, secret: SECRET });
    const problems: string[] = [];
    for (const [size, viewport] of [['desktop', DESKTOP], ['phone', PHONE]] as const) {
      const context = await newContext(browser, env, viewport);
      const page = await context.newPage();
      try {
        await signIn(page, env, 'admin');
        await gotoScreen(page, 'alerts');
        await page.locator('[data-testid^="channel-row-"]').first().waitFor();
        let found = await seriousViolations(page);
        if (found.length) problems.push(describeViolations(`alerts at ${size}`, found));
        const overflow = await page.evaluate(() => {
          const root = (globalThis as unknown as { document: { documentElement: { scrollWidth: number; clientWidth: number } } }).document.documentElement;
          return root.scrollWidth - root.clientWidth;
        });
        if (overflow > 0) problems.push(`alerts at ${size}: the page scrolls sideways by ${overflow} px`);
        await page.getByRole('button', { name: 'Add channel' }).click();
        const dialog = page.getByRole('dialog', { name: 'Add a channel' });
        await dialog.getByLabel('Type', { exact: true }).selectOption('email');
        await dialog.getByLabel('SMTP host').waitFor();
        found = await seriousViolations(page);
        if (found.length) problems.push(describeViolations(`add-channel dialog (email) at ${size}`, found));
        await page.keyboard.press('Escape');
        await dialog.waitFor({ state: 'hidden' });
      } catch (err) {
        throw await explained(err, context);
      } finally {
        await context.close();
      }
    }
    expect(problems.join('\n')).toBe('');
  });

  it('jobs screen: a running job with no progress for --stuck-after shows "stuck since …"', async () => {
    // Another session holds an exclusive lock on the table: the backup waits and reports nothing.
    const blocker = new pg.Client({ connectionString: pgUrl(env.pg.db) });
    await blocker.connect();
    const { context, page } = await signedInPage(browser, env, 'viewer');
    let jobId: string | undefined;
    try {
      await blocker.query('BEGIN; LOCK TABLE big IN ACCESS EXCLUSIVE MODE');
      await gotoScreen(page, 'jobs');
      jobId = (await api('operator').backups.create({ source: env.pg.name })).id;
      const mark = page.getByTestId(`job-stuck-${jobId}`);
      await mark.waitFor({ timeout: 20_000 });
      expect(await mark.textContent()).toMatch(/stuck since/);
      const job = await api('viewer').jobs.get(jobId);
      expect(job.progress.stalledSince).toBeDefined();
      expect(await mark.locator('time').getAttribute('datetime')).toBe(job.progress.stalledSince);
      // Ended (cancelled): the marker goes.
      await api('operator').jobs.cancel(jobId);
      await expect.poll(() => page.getByTestId(`job-state-${jobId}`).textContent(), { timeout: 30_000 }).toBe('CANCELED');
      expect(await mark.count()).toBe(0);
    } catch (err) {
      throw await explained(err, context);
    } finally {
      await blocker.query('ROLLBACK').catch(() => undefined);
      await blocker.end();
      await context.close();
    }
  });
});
