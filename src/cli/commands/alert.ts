/**
 * `cairn alert`: notification channels, rules and deliveries — in the catalog of --data-dir, or
 * through a server (--server / CAIRN_SERVER, an admin token in CAIRN_TOKEN). Secrets (webhook
 * HMAC key, Slack URL, ntfy token, SMTP password) are read from a file or an environment
 * variable, never from the command line where `ps` shows them.
 */
import { readFile } from 'node:fs/promises';
import type { CatalogTarget } from '../../catalog/sql.js';
import type { Command } from 'commander';
import { UsageError } from '../../core/errors.js';
import type { SqliteAlertStore } from '../../catalog/alerts.js';
import type { CairnClient } from '../../sdk/index.js';
import { table } from '../format.js';
import { collect, dataDirOption, printJson, withStore, type CliContext, type DataDirFlags } from '../options.js';
import { callServer, serverClient, serverOption, type ServerFlags } from '../remote.js';

type Flags = DataDirFlags & ServerFlags & { json?: boolean };

interface ChannelAddFlags extends Flags {
  type: string;
  url?: string;
  urlFile?: string;
  urlEnv?: string;
  secretFile?: string;
  secretEnv?: string;
  topic?: string;
  smtpHost?: string;
  smtpPort?: string;
  smtpSecurity?: string;
  smtpUser?: string;
  from?: string;
  to?: string[];
  smtpCaFile?: string;
}

const openStore = async (file: CatalogTarget): Promise<SqliteAlertStore> => new (await import('../../catalog/alerts.js')).SqliteAlertStore(file);

/** Runs on the server when one is named, else on the catalog of --data-dir (or the shared one of CAIRN_CATALOG). */
async function either<T>(opts: Flags, remote: (client: CairnClient) => Promise<T>, local: (store: SqliteAlertStore) => T | Promise<T>): Promise<T> {
  const client = await serverClient(opts);
  if (client) return callServer(() => remote(client));
  // The catalog of --data-dir, or the shared one when CAIRN_CATALOG names it.
  return withStore(openStore, opts.dataDir, local);
}

/** A secret from a file (its first line) or an environment variable; undefined when neither flag is given. */
async function readSecret(file: string | undefined, env: string | undefined, what: string): Promise<string | undefined> {
  if (file !== undefined && env !== undefined) throw new UsageError(`Give ${what} with one of the -file and -env options, not both.`);
  if (file !== undefined) {
    const { readPasswordFile } = await import('../../core/password-source.js');
    return readPasswordFile(file, what, `an empty first line: ${what} must not be empty`);
  }
  if (env !== undefined) {
    const value = process.env[env];
    if (!value) throw new UsageError(`The environment variable ${env} (${what}) is not set or empty.`);
    return value;
  }
  return undefined;
}

/** The first line of a file (a Slack URL kept in a file). */
async function firstLineOf(file: string, what: string): Promise<string> {
  try {
    return ((await readFile(file, 'utf8')).split(/\r?\n/)[0] ?? '').trim();
  } catch (err) {
    throw new UsageError(`Cannot read ${file} (${what}): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}.`);
  }
}

const port = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new UsageError(`Invalid --smtp-port "${v}": give 1-65535.`);
  return n;
};

export function registerAlertCommands(program: Command, ctx: CliContext): void {
  const { io } = ctx;
  const alert = program.command('alert').description('notifications: channels (webhook, slack, ntfy, email), rules and deliveries (admin)');
  const sub = (parent: Command, name: string, description: string): Command =>
    parent.command(name).description(description).addOption(dataDirOption()).addOption(serverOption()).option('--json', 'print JSON');
  const channel = alert.command('channel').description('notification channels');

  sub(channel, 'add <name>', 'add a channel; its secret is read from a file or a variable and stored in the catalog (mode 0600), never shown')
    .requiredOption('--type <type>', 'webhook, slack, ntfy or email')
    .option('--url <url>', 'webhook: the receiver; ntfy: the server (default https://ntfy.sh). Not for slack: its URL is a secret')
    .option('--url-file <file>', 'read the URL from the first line of this file (slack: its incoming-webhook URL)')
    .option('--url-env <var>', 'read the URL from this environment variable')
    .option('--secret-file <file>', "read the secret from this file's first line: webhook HMAC key, ntfy token, SMTP password")
    .option('--secret-env <var>', 'read the secret from this environment variable (neither given: asked for on the terminal)')
    .option('--topic <topic>', 'ntfy: the topic')
    .option('--smtp-host <host>', 'email: the SMTP server')
    .option('--smtp-port <port>', 'email: its port (default 465 for tls, 587 for starttls, 25 for none)')
    .option('--smtp-security <mode>', 'email: tls, starttls (default) or none')
    .option('--smtp-user <user>', 'email: the SMTP user (password: --secret-file / --secret-env)')
    .option('--from <address>', 'email: the sender')
    .option('--to <address>', 'email: a recipient (repeatable)', collect)
    .option('--smtp-ca-file <file>', "email: PEM certificates to trust for the SMTP server's TLS (a private CA)")
    .action(async (name: string, opts: ChannelAddFlags) => {
      const { channelDriver } = await import('../../alerts/registry.js');
      const { validateChannelName } = await import('../../alerts/center.js');
      const driver = channelDriver(opts.type);
      validateChannelName(name);
      if (opts.url !== undefined && opts.type === 'slack') throw new UsageError('A Slack webhook URL is a secret (anyone with it may post): give it with --url-file or --url-env, not --url, which ps shows.');
      if ([opts.url, opts.urlFile, opts.urlEnv].filter((v) => v !== undefined).length > 1) throw new UsageError('Give the URL once: --url, --url-file or --url-env.');
      const tty = process.stdin.isTTY ? { input: process.stdin, output: process.stderr } : undefined;
      // Typed at a prompt without echo when neither flag gives it and a terminal is there.
      const prompt = async (question: string): Promise<string | undefined> => (tty ? (await import('../password.js')).promptHidden(question, tty) : undefined);
      let url = opts.urlFile !== undefined ? await firstLineOf(opts.urlFile, 'the channel URL') : opts.urlEnv !== undefined ? await readSecret(undefined, opts.urlEnv, 'the channel URL') : opts.url;
      if (url === undefined && driver.type === 'slack') url = await prompt(`Slack incoming-webhook URL for channel ${name}: `);
      let secret = await readSecret(opts.secretFile, opts.secretEnv, `the ${opts.type} channel's secret`);
      if (secret === undefined && driver.type === 'webhook') secret = await prompt(`HMAC secret for webhook channel ${name} (16 characters or more): `);
      if (secret === undefined && driver.type === 'email' && opts.smtpUser !== undefined) secret = await prompt(`SMTP password of ${opts.smtpUser}: `);
      // No flag and no terminal to ask on: say which flags give it (the driver's message names the API's field).
      if (secret === undefined && driver.type === 'webhook') throw new UsageError(`A webhook channel needs an HMAC secret of at least 16 characters: give it with --secret-file <file> or --secret-env <variable> (no terminal to ask on). Generate one, e.g. openssl rand -hex 32.`);
      if (secret !== undefined && driver.type === 'webhook' && secret.length < 16) throw new UsageError(`The webhook channel's secret (from ${opts.secretFile !== undefined ? `--secret-file ${opts.secretFile}` : opts.secretEnv !== undefined ? `--secret-env ${opts.secretEnv}` : 'the terminal'}) is shorter than 16 characters: give a longer one, e.g. openssl rand -hex 32.`);
      const secretKey = { webhook: 'secret', ntfy: 'token', email: 'password', slack: undefined }[driver.type];
      if (secret !== undefined && secretKey === undefined) throw new UsageError('A slack channel has no separate secret: its URL is the secret (--url-file / --url-env).');
      const settings = {
        ...(url !== undefined ? { url } : {}),
        ...(secret !== undefined && secretKey ? { [secretKey]: secret } : {}),
        ...(opts.topic !== undefined ? { topic: opts.topic } : {}),
        ...(opts.smtpHost !== undefined ? { host: opts.smtpHost } : {}),
        ...(opts.smtpPort !== undefined ? { port: port(opts.smtpPort) } : {}),
        ...(opts.smtpSecurity !== undefined ? { security: opts.smtpSecurity as 'tls' | 'starttls' | 'none' } : {}),
        ...(opts.smtpUser !== undefined ? { user: opts.smtpUser } : {}),
        ...(opts.from !== undefined ? { from: opts.from } : {}),
        ...(opts.to !== undefined ? { to: opts.to } : {}),
        ...(opts.smtpCaFile !== undefined ? { ca: await readFile(opts.smtpCaFile, 'utf8').catch((err: NodeJS.ErrnoException) => { throw new UsageError(`Cannot read --smtp-ca-file ${opts.smtpCaFile}: ${err.code ?? err.message}.`); }) } : {}),
      };
      if (settings.security !== undefined && !['tls', 'starttls', 'none'].includes(settings.security)) throw new UsageError(`Invalid --smtp-security "${settings.security}": give tls, starttls or none.`);
      const shown = await either(
        opts,
        (client) => client.alerts.addChannel({ name, type: driver.type, ...settings }),
        async (store) => (await import('../../alerts/registry.js')).publicChannel(store.addChannel({ name, type: driver.type, config: driver.configure(settings) })),
      );
      if (opts.json) return printJson(io, shown);
      io.out(`Added ${shown.type} channel ${name} (${shown.target}${shown.secretSet ? ', secret stored' : ''}). It gets failures until you add rules: cairn alert rule add --channel ${name} --on failure,recovery. Try it: cairn alert channel test ${name}`);
    });

  sub(channel, 'list', 'list channels (never their secrets)').action(async (opts: Flags) => {
    const { publicChannel } = await import('../../alerts/registry.js');
    const list = await either(opts, (client) => client.alerts.listChannels(), (store) => store.channels().map(publicChannel));
    if (opts.json) return printJson(io, { channels: list });
    if (list.length === 0) return io.out('No alert channels. Add one with: cairn alert channel add <name> --type webhook --url … --secret-file …');
    io.out(table(['NAME', 'TYPE', 'TARGET', 'SECRET', 'CREATED'], list.map((c) => [c.name, c.type, c.target, c.secretSet ? 'set' : '-', c.createdAt])));
  });

  sub(channel, 'remove <name>', 'remove a channel and its rules (its deliveries stay on record)').action(async (name: string, opts: Flags) => {
    const answer = await either(opts, (client) => client.alerts.removeChannel(name), (store) => ({ removed: name, rulesRemoved: store.removeChannel(name) }));
    if (opts.json) return printJson(io, answer);
    io.out(`Removed channel ${name}${answer.rulesRemoved ? ` and its ${answer.rulesRemoved} rule(s)` : ''}.`);
  });

  sub(channel, 'test <name>', 'send a sample alert now and say whether it was delivered (exit 2 naming the reason when not)').action(async (name: string, opts: Flags) => {
    const delivery = await either(
      opts,
      (client) => client.alerts.testChannel(name),
      async (store) => {
        const { AlertCenter } = await import('../../alerts/center.js');
        return new AlertCenter({ store }).test(name);
      },
    );
    if (opts.json) printJson(io, delivery);
    else if (delivery.state === 'delivered') io.out(`Test alert delivered to ${name}.`);
    if (delivery.state !== 'delivered') throw new UsageError(`The test alert to channel ${name} was not delivered: ${delivery.lastError ?? 'unknown error'}. Fix the channel (remove and add it again) and retry.`);
  });

  const rule = alert.command('rule').description('which events go to which channel (a channel without rules gets failures of anything)');
  sub(rule, 'add', 'add a rule')
    .requiredOption('--channel <name>', 'the channel')
    .option('--on <kinds>', 'comma-separated: failure, success, recovery, rpo, stuck (default failure)')
    .option('--source <source>', 'only events of this source (a registered name or a location)')
    .option('--schedule <name>', 'only events of this schedule')
    .action(async (opts: Flags & { channel: string; on?: string; source?: string; schedule?: string }) => {
      const { parseKinds, DEFAULT_RULE_ON } = await import('../../alerts/center.js');
      const on = opts.on === undefined ? DEFAULT_RULE_ON : parseKinds(opts.on);
      const created = await either(
        opts,
        (client) => client.alerts.addRule({ channel: opts.channel, on, ...(opts.source ? { source: opts.source } : {}), ...(opts.schedule ? { schedule: opts.schedule } : {}) }),
        (store) => store.addRule({ channel: opts.channel, on, source: opts.source ?? null, schedule: opts.schedule ?? null }),
      );
      if (opts.json) return printJson(io, created);
      io.out(`Added rule ${created.id}: ${created.on.join(', ')}${created.source ? ` of source ${created.source}` : ''}${created.schedule ? ` of schedule ${created.schedule}` : ''} → channel ${created.channel}.`);
    });
  sub(rule, 'list', 'list rules').action(async (opts: Flags) => {
    const rules = await either(opts, (client) => client.alerts.listRules(), (store) => store.rules());
    if (opts.json) return printJson(io, { rules });
    if (rules.length === 0) return io.out('No alert rules: every channel gets failures of anything. Add one with: cairn alert rule add --channel <name> --on failure,recovery');
    io.out(table(['ID', 'CHANNEL', 'ON', 'SOURCE', 'SCHEDULE'], rules.map((r) => [r.id, r.channel, r.on.join(','), r.source ?? '*', r.schedule ?? '*'])));
  });
  sub(rule, 'remove <id>', 'remove a rule').action(async (id: string, opts: Flags) => {
    await either(opts, (client) => client.alerts.removeRule(id), (store) => {
      store.removeRule(id);
      return { removed: id };
    });
    if (opts.json) return printJson(io, { removed: id });
    io.out(`Removed rule ${id}.`);
  });

  sub(alert, 'deliveries', 'what was sent where, newest first: pending (retrying), delivered, failed (with the last error)')
    .option('--state <state>', 'pending, delivered or failed')
    .option('--channel <name>', 'one channel only')
    .option('--limit <n>', 'at most this many (default 100, at most 1000)')
    .action(async (opts: Flags & { state?: string; channel?: string; limit?: string }) => {
      if (opts.state !== undefined && !['pending', 'delivered', 'failed'].includes(opts.state)) throw new UsageError(`Invalid --state "${opts.state}": give pending, delivered or failed.`);
      const limit = opts.limit === undefined ? 100 : Number(opts.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new UsageError(`Invalid --limit "${opts.limit}": give 1-1000.`);
      const filter = { ...(opts.state ? { state: opts.state as 'pending' | 'delivered' | 'failed' } : {}), ...(opts.channel ? { channel: opts.channel } : {}), limit };
      const answer = await either(opts, (client) => client.alerts.deliveries(filter), (store) => store.deliveries(filter));
      if (opts.json) return printJson(io, answer);
      if (answer.deliveries.length === 0) return io.out('No deliveries.');
      io.out(table(['ID', 'AT', 'CHANNEL', 'KIND', 'STATE', 'ATTEMPTS', 'TITLE', 'LAST ERROR'], answer.deliveries.map((d) => [String(d.id), d.at, d.channel, d.kind, d.state, String(d.attempts), d.title, d.lastError ?? '-'])));
    });
}
