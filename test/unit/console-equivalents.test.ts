/**
 * The console's "Show CLI / curl / SDK" (web/src/equivalents.ts) names only real things: every
 * action's CLI command is a command of the real commander program (main.ts buildProgram) with
 * flags it has and as many operands as it takes; every curl call's method and path is a route of
 * the server's route table; every SDK call is a method of CairnClient.
 */
import type { Command, Option } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';
import { CairnClient } from '../../src/sdk/index.js';
import { ROUTES } from '../../src/server/routes/table.js';
import { ACTIONS, equivalents, shellQuote, type Action, type ActionParams } from '../../web/src/equivalents.js';

/** Parameters for each action, with every optional field that changes the command given. */
const SAMPLES: { [A in Action]: ActionParams[A][] } = {
  'backup.create': [{ source: 'app' }, { source: 'app', repository: 'offsite' }],
  'backup.setExpiry': [{ id: 'app-20261201-031500', expires: '30d' }, { id: 'app-1', expires: 'never', repository: 'offsite' }],
  'backup.delete': [{ id: 'app-20261201-031500' }, { id: 'app-1', repository: 'offsite' }],
  'backup.deletionPreview': [{ id: 'app-1' }, { id: 'app-1', repository: 'offsite' }],
  'copy.create': [{ backup: 'app-1', from: 'default', to: 'offsite' }],
  'export.create': [{ backups: ['app-1'] }, { backups: ['app-1', 'app-2'], repository: 'offsite' }],
  'export.download': [{ jobId: 'export-0123456789abcdef' }],
  'restore.dryRun': [
    { backup: 'app-1', target: 'app' },
    { backup: 'app-1', repository: 'offsite', target: 'copy', include: ['Album', 'Artist'], renames: { Album: 'Album_old', "it's": 'b c' }, onConflict: 'fail' },
  ],
  'restore.create': [
    { backup: 'app-1', target: 'app', onConflict: 'replace' },
    { backup: 'app-1', target: 'copy', exclude: ['audit.*'], renames: { Album: 'Album_2' }, onConflict: 'overwrite' },
  ],
  'job.cancel': [{ id: 'backup-0123456789abcdef' }],
  'schedule.create': [
    { name: 'nightly', source: 'app', cron: '0 3 * * *' },
    { name: 'nightly', source: 'app', repository: 'offsite', cron: '0 3 * * *', timezone: 'Europe/Paris', keepLast: 3, keepWithin: '2d', keepHourly: 24, keepDaily: 7, keepWeekly: 4, keepMonthly: 12, keepYearly: 2 },
  ],
  'schedule.enable': [{ name: 'nightly' }],
  'schedule.disable': [{ name: 'nightly' }],
  'schedule.runNow': [{ name: 'nightly' }],
  'schedule.remove': [{ name: 'nightly' }],
  'cron.preview': [{ cron: '0 3 * * *', timezone: 'Europe/Paris' }],
  'retention.preview': [{ source: 'app', keepDaily: 7 }, { schedule: 'nightly', repository: 'offsite' }],
  'source.add': [{ name: 'app', url: 'sqlite:///srv/app.db' }],
  'source.remove': [{ name: 'app' }, { name: 'app', force: true }],
  'source.check': [{ name: 'app' }],
  'repository.add': [{ name: 'offsite', url: 's3://bucket/cairn' }, { name: 'vault', url: '/backups/vault', passwordFile: '/etc/cairn/pw' }, { name: 'vault', url: '/b', passwordCommand: 'pass show cairn' }],
  'repository.remove': [{ name: 'offsite' }],
  'token.create': [{ role: 'viewer' }, { role: 'admin', name: 'ci backups' }],
  'token.revoke': [{ id: '0123456789ab' }],
  'alert.channelAdd': [
    { name: 'ops-hook', type: 'webhook', url: 'https://ops.example.com/cairn', secretGiven: true },
    { name: 'team', type: 'slack', secretGiven: true },
    { name: 'phone', type: 'ntfy', url: 'https://ntfy.example.com', topic: 'cairn-prod', secretGiven: true },
    { name: 'phone2', type: 'ntfy', topic: 'cairn-prod' },
    { name: 'dba', type: 'email', host: 'smtp.example.com', port: 587, security: 'starttls', user: 'cairn', from: 'cairn@example.com', to: ['dba@example.com', 'oncall@example.com'], secretGiven: true },
  ],
  'alert.channelTest': [{ name: 'ops-hook' }],
  'alert.channelRemove': [{ name: 'ops-hook' }],
  'alert.ruleAdd': [{ channel: 'ops-hook' }, { channel: 'ops-hook', on: ['failure', 'recovery'], source: 'app', schedule: 'nightly' }],
  'alert.ruleRemove': [{ id: '0123456789ab' }],
  'alert.deliveries': [{}, { state: 'failed', channel: 'ops-hook', limit: 50 }],
};

/** A POSIX shell line's words: single and double quotes, backslash-newline continuations. */
function words(line: string): string[] {
  const out: string[] = [];
  let cur: string | undefined;
  let i = 0;
  const s = line.replace(/\\\n/g, ' ');
  while (i < s.length) {
    const c = s[i]!;
    if (c === "'") {
      const end = s.indexOf("'", i + 1);
      cur = (cur ?? '') + s.slice(i + 1, end);
      i = end + 1;
    } else if (c === '"') {
      let j = i + 1;
      let v = '';
      while (s[j] !== '"') {
        if (s[j] === '\\') j++;
        v += s[j];
        j++;
      }
      cur = (cur ?? '') + v;
      i = j + 1;
    } else if (c === '\\') {
      cur = (cur ?? '') + s[i + 1];
      i += 2;
    } else if (/\s/.test(c)) {
      if (cur !== undefined) out.push(cur);
      cur = undefined;
      i++;
    } else {
      cur = (cur ?? '') + c;
      i++;
    }
  }
  if (cur !== undefined) out.push(cur);
  return out;
}

const program = buildProgram({ io: { out: () => undefined, err: () => undefined }, signal: new AbortController().signal });

/** Checks a `cairn …` line against the command tree; returns the command's path. */
function checkCli(line: string): string {
  const w = words(line);
  expect(w[0]).toBe('cairn');
  let cmd: Command = program;
  let i = 1;
  for (; i < w.length; i++) {
    const sub = cmd.commands.find((c) => c.name() === w[i]);
    if (!sub) break;
    cmd = sub;
  }
  const path = w.slice(1, i).join(' ');
  expect(cmd.commands, `"${line}" stops at "${path}", which has subcommands`).toHaveLength(0);
  const options: readonly Option[] = [...cmd.options, ...program.options];
  const operands: string[] = [];
  for (; i < w.length; i++) {
    const word = w[i]!;
    if (word.startsWith('-')) {
      const option = options.find((o) => o.long === word || o.short === word);
      expect(option, `${path}: no option ${word} (in "${line}")`).toBeDefined();
      if (option!.required || option!.optional) i++;
    } else {
      operands.push(word);
    }
  }
  const args = cmd.registeredArguments;
  const variadic = args.some((a) => a.variadic);
  expect(operands.length, `${path}: operands ${JSON.stringify(operands)}`).toBeGreaterThanOrEqual(args.filter((a) => a.required).length);
  if (!variadic) expect(operands.length, `${path}: operands ${JSON.stringify(operands)}`).toBeLessThanOrEqual(args.length);
  return path;
}

const routes = Object.values(ROUTES).map((r) => ({ method: r.method.toUpperCase(), re: new RegExp(`^${r.path.replace(/:[a-zA-Z]+/g, '[^/]+')}$`) }));

function checkCurl(curl: string, method: string, path: string): void {
  const w = words(curl);
  expect(w[0]).toBe('curl');
  const x = w.indexOf('-X');
  expect(x >= 0 ? w[x + 1] : 'GET').toBe(method);
  const url = w.find((v) => v.startsWith('$CAIRN_SERVER/'));
  expect(url).toBe(`$CAIRN_SERVER${path}`);
  const bare = path.split('?')[0]!;
  expect(routes.some((r) => r.method === method && r.re.test(bare)), `${method} ${bare} is not in the route table`).toBe(true);
  const d = w.indexOf('-d');
  if (d >= 0) expect(() => JSON.parse(w[d + 1]!)).not.toThrow();
}

const client = new CairnClient({ url: 'http://127.0.0.1:1' }) as unknown as Record<string, Record<string, unknown>>;

function checkSdk(sdk: string): void {
  const calls = [...sdk.matchAll(/cairn\.([a-zA-Z]+)\.([a-zA-Z]+)\(/g)];
  expect(calls.length).toBeGreaterThan(0);
  for (const [, group, method] of calls) expect(typeof client[group!]?.[method!], `cairn.${group}.${method} is not an SDK method`).toBe('function');
}

describe('console equivalents (web/src/equivalents.ts)', () => {
  it('has samples for every action', () => {
    expect(Object.keys(SAMPLES).sort()).toEqual([...ACTIONS].sort());
  });

  for (const action of ACTIONS) {
    it(`${action}: CLI command and flags exist, curl route exists, SDK method exists`, () => {
      for (const params of SAMPLES[action] as ActionParams[typeof action][]) {
        const e = equivalents(action, params as never);
        if (e.cli === null) expect(e.cliNote, `${action} without a CLI command says why`).toMatch(/no cairn command/);
        else checkCli(e.cli);
        checkCurl(e.curl, e.method, e.path);
        checkSdk(e.sdk);
      }
    });
  }

  it('quotes what the shell would split or expand, and round-trips it', () => {
    for (const word of ['plain', "it's", 'a b', '$HOME', '*', '', 'x;rm -rf /', 'a"b']) expect(words(`echo ${shellQuote(word)}`)).toEqual(['echo', word]);
  });

  it('never puts an alert channel\'s secret on the command line: the CLI reads it from a file', () => {
    const hook = equivalents('alert.channelAdd', { name: 'ops-hook', type: 'webhook', url: 'https://ops.example.com/cairn', secretGiven: true });
    expect(words(hook.cli!)).toEqual(['cairn', 'alert', 'channel', 'add', 'ops-hook', '--type', 'webhook', '--url', 'https://ops.example.com/cairn', '--secret-file', 'hook.secret', '--server', '$CAIRN_SERVER']);
    expect(hook.body).toEqual({ name: 'ops-hook', type: 'webhook', url: 'https://ops.example.com/cairn', secret: '<secret>' });
    expect(hook.sdk).toContain('secret: process.env.CAIRN_ALERT_SECRET');
    const slack = equivalents('alert.channelAdd', { name: 'team', type: 'slack', url: 'https://hooks.slack.com/services/T0/B0/XYZ', secretGiven: true });
    expect(slack.cli).toContain('--url-file slack.url');
    for (const text of [slack.cli, slack.curl, slack.sdk]) expect(text).not.toContain('XYZ');
    const mail = equivalents('alert.channelAdd', { name: 'dba', type: 'email', host: 'smtp.example.com', user: 'cairn', to: ['a@example.com'], secretGiven: true });
    expect(words(mail.cli!)).toContain('--secret-file');
    expect(mail.body).toMatchObject({ password: '<password>', to: ['a@example.com'] });
  });

  it('renders a restore with renames, include and policy as the real flags', () => {
    const e = equivalents('restore.create', { backup: 'app-1', target: 'copy', include: ['Album'], renames: { Album: 'Album_old' }, onConflict: 'fail' });
    expect(words(e.cli!)).toEqual(['cairn', 'restore', 'app-1', '--repo', 'default', '--to', 'copy', '--include', 'Album', '--rename', 'Album=Album_old', '--on-conflict', 'fail', '--server', '$CAIRN_SERVER']);
    expect(e.body).toEqual({ backup: 'app-1', target: 'copy', include: ['Album'], renames: { Album: 'Album_old' }, onConflict: 'fail' });
  });
});
