/**
 * What each console action is as a CLI command, a curl call and an SDK call, generated from the
 * same request the console sends. Pure functions: no DOM, no fetch, so the unit test
 * (test/unit/console-equivalents.test.ts) can check every CLI command against the real commander
 * tree and every curl call against the server's route table.
 *
 * `cli` is null when cairn has no command for the action (the `cliNote` says so); `cliNote` also
 * says where a command runs when it does not go through the server (`--server`), e.g. on the
 * server's host with its data folder.
 */

export interface Equivalent {
  /** HTTP method and path (with the query) of the request. */
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  path: string;
  /** JSON body, when the request has one. */
  body?: unknown;
  cli: string | null;
  cliNote?: string;
  curl: string;
  sdk: string;
}

type Retention = { keepLast?: number; keepWithin?: string; keepHourly?: number; keepDaily?: number; keepWeekly?: number; keepMonthly?: number; keepYearly?: number };

/** Every action of the console and its parameters. */
export interface ActionParams {
  'backup.create': { source: string; repository?: string };
  'backup.setExpiry': { id: string; expires: string; repository?: string };
  'backup.delete': { id: string; repository?: string };
  'backup.deletionPreview': { id: string; repository?: string };
  'copy.create': { backup: string; from: string; to: string };
  'export.create': { backups: string[]; repository?: string };
  'export.download': { jobId: string };
  'restore.dryRun': RestoreParams;
  'restore.create': RestoreParams;
  'job.cancel': { id: string };
  'schedule.create': ScheduleParams;
  'schedule.enable': { name: string };
  'schedule.disable': { name: string };
  'schedule.runNow': { name: string };
  'schedule.remove': { name: string };
  'cron.preview': { cron: string; timezone: string };
  'retention.preview': { repository?: string; source?: string; schedule?: string; timezone?: string } & Retention;
  'source.add': { name: string; url: string };
  'source.remove': { name: string; force?: boolean };
  'source.check': { name: string };
  'repository.add': { name: string; url: string; passwordFile?: string; passwordCommand?: string };
  'repository.remove': { name: string; force?: boolean };
  'token.create': { role: 'admin' | 'operator' | 'viewer'; name?: string };
  'token.revoke': { id: string };
  'alert.channelAdd': AlertChannelParams;
  'alert.channelTest': { name: string };
  'alert.channelRemove': { name: string };
  'alert.ruleAdd': { channel: string; on?: string[]; source?: string; schedule?: string };
  'alert.ruleRemove': { id: string };
  'alert.deliveries': { state?: 'pending' | 'delivered' | 'failed'; channel?: string; limit?: number };
}

/**
 * A notification channel as the console adds it, without its secret: `secretGiven` says whether
 * one is sent (webhook HMAC key, ntfy token, SMTP password; a Slack channel's secret is its URL,
 * so its `url` is never here). The equivalents read the secret from a file or a variable.
 */
export interface AlertChannelParams {
  name: string;
  type: 'webhook' | 'slack' | 'ntfy' | 'email';
  url?: string;
  topic?: string;
  host?: string;
  port?: number;
  security?: 'tls' | 'starttls' | 'none';
  user?: string;
  from?: string;
  to?: string[];
  secretGiven?: boolean;
}
export type Action = keyof ActionParams;

export interface RestoreParams {
  backup: string;
  repository?: string;
  target: string;
  include?: string[];
  exclude?: string[];
  renames?: Record<string, string>;
  onConflict?: 'fail' | 'overwrite' | 'replace';
}

export interface ScheduleParams extends Retention {
  name: string;
  source: string;
  repository?: string;
  cron: string;
  timezone?: string;
}

/** Every action, for tests and for the equivalents of a screen. */
export const ACTIONS = [
  'backup.create', 'backup.setExpiry', 'backup.delete', 'backup.deletionPreview', 'copy.create', 'export.create', 'export.download',
  'restore.dryRun', 'restore.create', 'job.cancel', 'schedule.create', 'schedule.enable', 'schedule.disable', 'schedule.runNow',
  'schedule.remove', 'cron.preview', 'retention.preview', 'source.add', 'source.remove', 'source.check', 'repository.add',
  'repository.remove', 'token.create', 'token.revoke', 'alert.channelAdd', 'alert.channelTest', 'alert.channelRemove', 'alert.ruleAdd',
  'alert.ruleRemove', 'alert.deliveries',
] as const satisfies readonly Action[];

/** A word for a POSIX shell: as is when it is safe, else in single quotes. */
export function shellQuote(word: string): string {
  if (word !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** A JavaScript literal for the SDK snippets (single-quoted strings, as the repository's style). */
function js(value: unknown): string {
  if (typeof value === 'string') return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\n/g, '\\n')}'`;
  if (Array.isArray(value)) return `[${value.map(js).join(', ')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined);
    if (!entries.length) return '{}';
    return `{ ${entries.map(([k, v]) => `${/^[A-Za-z_$][\w$]*$/.test(k) ? k : js(k)}: ${js(v)}`).join(', ')} }`;
  }
  return String(value);
}

/** `?a=1&b=2` of the defined parameters, or "". */
function query(params: Record<string, string | number | boolean | undefined>): string {
  const given = Object.entries(params).filter((e): e is [string, string | number | boolean] => e[1] !== undefined && e[1] !== '');
  return given.length ? `?${new URLSearchParams(given.map(([k, v]): [string, string] => [k, String(v)])).toString()}` : '';
}

/** Drops undefined fields (and empty arrays/objects), so bodies show only what is sent. */
function compact<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(o).filter(([, v]) => v !== undefined && v !== '' && !(Array.isArray(v) && v.length === 0) && !(v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0)),
  ) as Partial<T>;
}

function curl(method: Equivalent['method'], path: string, body?: unknown): string {
  const parts = [`curl -fsS`];
  if (method !== 'GET') parts.push(`-X ${method}`);
  parts.push(`"$CAIRN_SERVER${path}"`, `-H "Authorization: Bearer $CAIRN_TOKEN"`);
  if (body !== undefined) parts.push(`-H 'Content-Type: application/json'`, `-d ${shellQuote(JSON.stringify(body))}`);
  return parts.join(' \\\n  ');
}

/** `--flag value` pairs for the defined values. */
function flags(pairs: [string, string | number | undefined][]): string[] {
  return pairs.filter((p): p is [string, string | number] => p[1] !== undefined && p[1] !== '').map(([f, v]) => `${f} ${shellQuote(String(v))}`);
}

const repoOf = (r: string | undefined): string => r ?? 'default';
/**
 * `--repo` for a command run on the server's host: a registered name as is; the server's default
 * repository is what the BACKUP_* variables describe, which is also what the CLI uses without --repo.
 */
const hostRepo = (r: string | undefined): string => (r && r !== 'default' ? ` --repo ${shellQuote(r)}` : '');
const ON_HOST_DEFAULT = " with the server's BACKUP_* variables in its environment (the default repository)";
const VIA_SERVER = '--server "$CAIRN_SERVER"';
const ON_HOST = "runs on the server's host against its data folder (CAIRN_DATA_DIR); there is no --server form";
const NO_CLI = (what: string): string => `no cairn command does this: ${what}`;

function build(method: Equivalent['method'], path: string, body: unknown, cli: string | null, sdk: string, cliNote?: string): Equivalent {
  return { method, path, ...(body !== undefined ? { body } : {}), cli, ...(cliNote ? { cliNote } : {}), curl: curl(method, path, body), sdk };
}

function retentionFlags(r: Retention): string[] {
  return flags([
    ['--keep-last', r.keepLast], ['--keep-within', r.keepWithin], ['--keep-hourly', r.keepHourly], ['--keep-daily', r.keepDaily],
    ['--keep-weekly', r.keepWeekly], ['--keep-monthly', r.keepMonthly], ['--keep-yearly', r.keepYearly],
  ]);
}

function restoreCli(p: RestoreParams, dryRun: boolean): string {
  const words = ['cairn restore', shellQuote(p.backup), ...flags([['--repo', repoOf(p.repository)], ['--to', p.target]])];
  if (p.include?.length) words.push(`--include ${shellQuote(p.include.join(','))}`);
  if (p.exclude?.length) words.push(`--exclude ${shellQuote(p.exclude.join(','))}`);
  for (const [from, to] of Object.entries(p.renames ?? {})) words.push(`--rename ${shellQuote(`${from}=${to}`)}`);
  if (p.onConflict) words.push(`--on-conflict ${p.onConflict}`);
  if (dryRun) words.push('--dry-run');
  words.push(VIA_SERVER);
  return words.join(' ');
}

/** Per channel type: the body field holding its secret, the file the CLI reads it from, what it is. */
const ALERT_SECRET = {
  webhook: { key: 'secret', file: 'hook.secret', what: 'the HMAC secret (16 characters or more)' },
  slack: { key: 'url', file: 'slack.url', what: 'the Slack incoming-webhook URL (whoever has it may post)' },
  ntfy: { key: 'token', file: 'ntfy.token', what: 'the ntfy access token' },
  email: { key: 'password', file: 'smtp.password', what: 'the SMTP password' },
} as const;

/**
 * `cairn alert channel add`, curl and SDK for a channel. The secret never appears: the CLI reads
 * it from a file (--secret-file, or --url-file for Slack; never on the command line, where ps
 * shows it), curl sends a placeholder to replace, the SDK reads an environment variable.
 */
function alertChannelAdd(c: AlertChannelParams): Equivalent {
  const secret = ALERT_SECRET[c.type];
  const withSecret = c.type === 'slack' || c.secretGiven === true;
  const shown = compact({
    name: c.name, type: c.type, url: c.type === 'slack' ? undefined : c.url, topic: c.topic, host: c.host, port: c.port, security: c.security, user: c.user, from: c.from, to: c.to,
  });
  const body = withSecret ? { ...shown, [secret.key]: `<${secret.key === 'url' ? 'Slack URL' : secret.key}>` } : shown;
  const cli = [
    'cairn alert channel add', shellQuote(c.name),
    ...flags([['--type', c.type], ['--url', c.type === 'slack' ? undefined : c.url], ['--topic', c.topic], ['--smtp-host', c.host], ['--smtp-port', c.port], ['--smtp-security', c.security], ['--smtp-user', c.user], ['--from', c.from]]),
    ...(c.to ?? []).map((t) => `--to ${shellQuote(t)}`),
    ...(withSecret ? [`${c.type === 'slack' ? '--url-file' : '--secret-file'} ${secret.file}`] : []),
    VIA_SERVER,
  ].join(' ');
  const envName = `CAIRN_ALERT_${secret.key.toUpperCase()}`;
  const sdkBody = withSecret ? js(shown).replace(/ }$/, `, ${secret.key}: process.env.${envName} })`) : js(shown);
  const note = withSecret ? `write ${secret.what} into ${secret.file} first (its first line); in curl replace <${secret.key === 'url' ? 'Slack URL' : secret.key}>, in the SDK set ${envName}` : undefined;
  return build('POST', '/v1/alert-channels', body, cli, `await cairn.alerts.addChannel(${sdkBody});`, note);
}

/** The three equivalents of `action` with `params`. */
export function equivalents<A extends Action>(action: A, params: ActionParams[A]): Equivalent {
  const p = params as never;
  switch (action) {
    case 'backup.create': {
      const { source, repository } = p as ActionParams['backup.create'];
      const body = compact({ source, repository });
      return build('POST', '/v1/backups', body, `cairn backup create --source ${shellQuote(source)} --repo ${shellQuote(repoOf(repository))} ${VIA_SERVER}`, `await cairn.backups.create(${js(body)});`);
    }
    case 'backup.setExpiry': {
      const { id, expires, repository } = p as ActionParams['backup.setExpiry'];
      return build(
        'PATCH', `/v1/backups/${encodeURIComponent(id)}${query({ repository })}`, { expires },
        `cairn backup set-expiry ${shellQuote(id)} ${shellQuote(expires)} --repo ${shellQuote(repoOf(repository))} ${VIA_SERVER}`,
        `await cairn.backups.setExpiry(${js(id)}, ${js(expires)}${repository ? `, ${js({ repository })}` : ''});`,
      );
    }
    case 'backup.delete': {
      const { id, repository } = p as ActionParams['backup.delete'];
      return build(
        'DELETE', `/v1/backups/${encodeURIComponent(id)}${query({ repository })}`, undefined,
        `cairn backup delete ${shellQuote(id)}${hostRepo(repository)}`,
        `await cairn.backups.delete(${js(id)}${repository ? `, ${js({ repository })}` : ''});`,
        `${ON_HOST}${hostRepo(repository) ? '' : ON_HOST_DEFAULT}; space comes back with cairn prune${hostRepo(repository)}`,
      );
    }
    case 'backup.deletionPreview': {
      const { id, repository } = p as ActionParams['backup.deletionPreview'];
      return build(
        'GET', `/v1/backups/${encodeURIComponent(id)}/deletion-preview${query({ repository })}`, undefined, null,
        `await cairn.backups.deletionPreview(${js(id)}${repository ? `, ${js({ repository })}` : ''});`,
        NO_CLI('cairn prune --dry-run after a delete shows what it frees'),
      );
    }
    case 'copy.create': {
      const { backup, from, to } = p as ActionParams['copy.create'];
      const body = { backup, from, to };
      return build('POST', '/v1/copies', body, `cairn copy ${shellQuote(backup)} --from ${shellQuote(from)} --to ${shellQuote(to)} ${VIA_SERVER}`, `await cairn.copies.create(${js(body)});`);
    }
    case 'export.create': {
      const { backups, repository } = p as ActionParams['export.create'];
      const body = compact({ repository, backups });
      return build(
        'POST', '/v1/exports', body,
        `cairn export ${backups.map(shellQuote).join(' ')}${hostRepo(repository)} -o ${shellQuote(`${backups[0] ?? 'backup'}.cairn`)}`,
        `const job = await cairn.exports.create(${js(body)}, { waitForCompletion: true });\nconst stream = await cairn.exports.download(job.id);`,
        `${ON_HOST}${hostRepo(repository) ? '' : ON_HOST_DEFAULT}; it writes the archive where it runs`,
      );
    }
    case 'export.download': {
      const { jobId } = p as ActionParams['export.download'];
      return build('GET', `/v1/exports/${encodeURIComponent(jobId)}/file`, undefined, null, `const stream = await cairn.exports.download(${js(jobId)});`, NO_CLI('cairn export writes the archive itself'));
    }
    case 'restore.dryRun':
    case 'restore.create': {
      const r = p as RestoreParams;
      const dryRun = action === 'restore.dryRun';
      const body = compact({ backup: r.backup, repository: r.repository, target: r.target, include: r.include, exclude: r.exclude, renames: r.renames, onConflict: r.onConflict, ...(dryRun ? { dryRun: true } : {}) });
      return build('POST', '/v1/restores', body, restoreCli(r, dryRun), dryRun ? `await cairn.restores.dryRun(${js(body)});` : `await cairn.restores.create(${js(body)});`);
    }
    case 'job.cancel': {
      const { id } = p as ActionParams['job.cancel'];
      return build('POST', `/v1/jobs/${encodeURIComponent(id)}/cancel`, undefined, `cairn job cancel ${shellQuote(id)} ${VIA_SERVER}`, `await cairn.jobs.cancel(${js(id)});`);
    }
    case 'schedule.create': {
      const s = p as ScheduleParams;
      const body = compact({ ...s });
      // cairn schedule add --repo takes a registered name or a location: "default" there would be
      // a folder of that name, not the server's BACKUP_* repository.
      if (!s.repository || s.repository === 'default')
        return build('POST', '/v1/schedules', body, null, `await cairn.schedules.create(${js(body)});`, NO_CLI("cairn schedule add cannot name the server's default repository (its --repo takes a registered name or a location): register the repository with cairn repo add and name it"));
      const cli = ['cairn schedule add', shellQuote(s.name), ...flags([['--source', s.source], ['--repo', s.repository], ['--cron', s.cron], ['--timezone', s.timezone]]), ...retentionFlags(s)].join(' ');
      return build('POST', '/v1/schedules', body, cli, `await cairn.schedules.create(${js(body)});`, ON_HOST);
    }
    case 'schedule.enable':
    case 'schedule.disable':
    case 'schedule.remove': {
      const { name } = p as ActionParams['schedule.enable'];
      const verb = action.slice('schedule.'.length);
      const method = verb === 'remove' ? 'DELETE' : 'POST';
      const path = `/v1/schedules/${encodeURIComponent(name)}${verb === 'remove' ? '' : `/${verb}`}`;
      return build(method, path, undefined, `cairn schedule ${verb} ${shellQuote(name)}`, `await cairn.schedules.${verb}(${js(name)});`, ON_HOST);
    }
    case 'schedule.runNow': {
      const { name } = p as ActionParams['schedule.runNow'];
      return build('POST', `/v1/schedules/${encodeURIComponent(name)}/run`, undefined, `cairn schedule run-now ${shellQuote(name)} ${VIA_SERVER}`, `await cairn.schedules.runNow(${js(name)});`);
    }
    case 'cron.preview': {
      const { cron, timezone } = p as ActionParams['cron.preview'];
      return build('GET', `/v1/cron-preview${query({ cron, timezone })}`, undefined, null, `await cairn.schedules.cronPreview(${js(cron)}, ${js(timezone)});`, NO_CLI('cairn schedule show <name> prints a saved schedule\'s next run'));
    }
    case 'retention.preview': {
      const body = compact({ ...(p as ActionParams['retention.preview']) });
      return build('POST', '/v1/retention-previews', body, null, `await cairn.retention.preview(${js(body)});`, NO_CLI('scheduled runs apply these rules after each backup'));
    }
    case 'source.add': {
      const { name, url } = p as ActionParams['source.add'];
      return build('POST', '/v1/sources', { name, url }, `cairn source add ${shellQuote(name)} ${shellQuote(url)}`, `await cairn.sources.add(${js(name)}, ${js(url)});`, ON_HOST);
    }
    case 'source.remove': {
      const { name, force } = p as ActionParams['source.remove'];
      return build(
        'DELETE', `/v1/sources/${encodeURIComponent(name)}${query({ force: force ? 'true' : undefined })}`, undefined,
        `cairn source remove ${shellQuote(name)}${force ? ' --force' : ''}`, `await cairn.sources.remove(${js(name)}${force ? ', { force: true }' : ''});`, ON_HOST,
      );
    }
    case 'source.check': {
      const { name } = p as ActionParams['source.check'];
      return build('POST', `/v1/sources/${encodeURIComponent(name)}/check`, undefined, null, `await cairn.sources.check(${js(name)});`, NO_CLI('a backup reports an unreachable source as error SOURCE'));
    }
    case 'repository.add': {
      const { name, url, passwordFile, passwordCommand } = p as ActionParams['repository.add'];
      const body = compact({ name, url, passwordFile, passwordCommand });
      const password = compact({ passwordFile, passwordCommand });
      return build(
        'POST', '/v1/repositories', body,
        ['cairn repo add', shellQuote(name), shellQuote(url), ...flags([['--password-file', passwordFile], ['--password-command', passwordCommand]])].join(' '),
        `await cairn.repositories.add(${js(name)}, ${js(url)}${Object.keys(password).length ? `, ${js(password)}` : ''});`, ON_HOST,
      );
    }
    case 'repository.remove': {
      const { name, force } = p as ActionParams['repository.remove'];
      return build(
        'DELETE', `/v1/repositories/${encodeURIComponent(name)}${query({ force: force ? 'true' : undefined })}`, undefined,
        `cairn repo remove ${shellQuote(name)}`, `await cairn.repositories.remove(${js(name)}${force ? ', { force: true }' : ''});`, ON_HOST,
      );
    }
    case 'token.create': {
      const { role, name } = p as ActionParams['token.create'];
      const body = compact({ role, name });
      return build('POST', '/v1/tokens', body, ['cairn token create', ...flags([['--role', role], ['--name', name]])].join(' '), `const { secret } = await cairn.tokens.create(${js(body)});`, ON_HOST);
    }
    case 'token.revoke': {
      const { id } = p as ActionParams['token.revoke'];
      return build('DELETE', `/v1/tokens/${encodeURIComponent(id)}`, undefined, `cairn token revoke ${shellQuote(id)}`, `await cairn.tokens.revoke(${js(id)});`, ON_HOST);
    }
    case 'alert.channelAdd':
      return alertChannelAdd(p as AlertChannelParams);
    case 'alert.channelTest': {
      const { name } = p as ActionParams['alert.channelTest'];
      return build('POST', `/v1/alert-channels/${encodeURIComponent(name)}/test`, undefined, `cairn alert channel test ${shellQuote(name)} ${VIA_SERVER}`, `await cairn.alerts.testChannel(${js(name)});`);
    }
    case 'alert.channelRemove': {
      const { name } = p as ActionParams['alert.channelRemove'];
      return build('DELETE', `/v1/alert-channels/${encodeURIComponent(name)}`, undefined, `cairn alert channel remove ${shellQuote(name)} ${VIA_SERVER}`, `await cairn.alerts.removeChannel(${js(name)});`);
    }
    case 'alert.ruleAdd': {
      const r = p as ActionParams['alert.ruleAdd'];
      const body = compact({ channel: r.channel, on: r.on, source: r.source, schedule: r.schedule });
      const cli = ['cairn alert rule add', ...flags([['--channel', r.channel], ['--on', r.on?.length ? r.on.join(',') : undefined], ['--source', r.source], ['--schedule', r.schedule]]), VIA_SERVER].join(' ');
      return build('POST', '/v1/alert-rules', body, cli, `await cairn.alerts.addRule(${js(body)});`);
    }
    case 'alert.ruleRemove': {
      const { id } = p as ActionParams['alert.ruleRemove'];
      return build('DELETE', `/v1/alert-rules/${encodeURIComponent(id)}`, undefined, `cairn alert rule remove ${shellQuote(id)} ${VIA_SERVER}`, `await cairn.alerts.removeRule(${js(id)});`);
    }
    case 'alert.deliveries': {
      const { state, channel, limit } = p as ActionParams['alert.deliveries'];
      const q = compact({ state, channel, limit });
      return build(
        'GET', `/v1/alert-deliveries${query({ state, channel, limit })}`, undefined,
        ['cairn alert deliveries', ...flags([['--state', state], ['--channel', channel], ['--limit', limit]]), VIA_SERVER].join(' '),
        `await cairn.alerts.deliveries(${Object.keys(q).length ? js(q) : ''});`,
      );
    }
  }
  throw new Error(`unknown console action ${String(action)}`);
}

/** The SDK snippet's first lines: how `cairn` is made. */
export const SDK_PREAMBLE = "import { CairnClient } from 'cairn-backup/sdk';\nconst cairn = new CairnClient({ url: process.env.CAIRN_SERVER ?? 'http://127.0.0.1:8080', token: process.env.CAIRN_TOKEN });";
