/**
 * Issue 18, part E: passwords and key slots of encrypted repositories through the real CLI (a
 * subprocess per command): every password source in its order, a wrong password (exit 9, one
 * line), no source and no terminal (exit 2 naming the sources), the prompt on a terminal
 * (util-linux `script` gives one), a plain repository that never asks, `key list|add|remove|
 * passwd`, rotation and lost-slot recovery, and the password absent from process lists
 * (/proc/<pid>/cmdline while cairn waits on its password command) and from --json output.
 * Key slots are written with CAIRN_TEST_WEAK_KDF=1 (scrypt N = 2^10) so that each open is quick.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHINOOK, CLI, PROJECT_ROOT } from '../helpers/cli.js';

const PASSWORD = 'correct horse 7f3a battery staple';
const OTHER = 'second-slot Zq9!x';
const NEWER = 'rotated pass 55e1';

let work: string;
let dataDir: string;
let repo: string;
let plain: string;
/** Every stdout of a --json run: searched for the passwords at the end. */
const jsonOutputs: string[] = [];

/** Our environment without any cairn password or repository variable, plus `extra`. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^CAIRN_/.test(k) && !/^BACKUP_/.test(k)) env[k] = v;
  return { ...env, CAIRN_DATA_DIR: dataDir, CAIRN_TEST_WEAK_KDF: '1', ...extra };
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The built CLI, stdin not a terminal (/dev/null). */
function cairn(args: string[], env: NodeJS.ProcessEnv = {}): Run {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: PROJECT_ROOT, env: cleanEnv(env), encoding: 'utf8', timeout: 120_000, stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error) throw r.error;
  if (args.includes('--json')) jsonOutputs.push(r.stdout);
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function ok(args: string[], env: NodeJS.ProcessEnv = {}): Run {
  const r = cairn(args, env);
  expect(r.code, `cairn ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r;
}

/** The ids of the backups --repo lists, opened with `env`'s password. */
function backupIds(repository: string, env: NodeJS.ProcessEnv, extra: string[] = []): string[] {
  const r = ok(['backup', 'list', '--repo', repository, '--json', ...extra], env);
  return (JSON.parse(r.stdout) as { backups: { id: string }[] }).backups.map((b) => b.id);
}

/** The one `cairn: error:` line of a failed run (and nothing else on stderr). */
function errorLine(r: Run): string {
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^cairn: error: /);
  return lines[0] as string;
}

interface KeyRow {
  id: string;
  current: boolean;
  hostname: string;
  username: string;
  createdAt: string;
  kdf: string;
}

function keys(env: NodeJS.ProcessEnv): KeyRow[] {
  return (JSON.parse(ok(['key', 'list', '--repo', repo, '--json'], env).stdout) as { keys: KeyRow[] }).keys;
}

const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
const hasScript = existsSync('/usr/bin/script');

/**
 * Runs the CLI on a pseudo-terminal (`script`), answering each prompt that matches with the next
 * answer, once the prompt is shown (the CLI has turned echo off by then). Resolves with the exit
 * code and everything the terminal showed.
 */
function onTerminal(args: string[], answers: [RegExp, string][], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; output: string }> {
  const command = [process.execPath, CLI, ...args].map(shellQuote).join(' ');
  const child = spawn('script', ['-qfec', command, '/dev/null'], { cwd: PROJECT_ROOT, env: cleanEnv(env), stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  let answered = 0;
  let seenUpTo = 0;
  child.stdout.on('data', (d: Buffer) => {
    output += d.toString();
    const next = answers[answered];
    if (next && next[0].test(output.slice(seenUpTo))) {
      seenUpTo = output.length;
      answered++;
      child.stdin.write(`${next[1]}\r`);
    }
  });
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, output })));
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'cairn-keys-'));
  dataDir = join(work, 'data');
  repo = join(work, 'enc');
  plain = join(work, 'plain');
  ok(['repo', 'init', plain]);
  ok(['backup', 'create', '--source', `sqlite://${CHINOOK}`, '--repo', plain, '--id', 'p1']);
}, 120_000);

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('repo init --encryption', () => {
  it('takes the new password from CAIRN_NEW_PASSWORD, says it cannot be recovered and names the key slot', () => {
    const r = ok(['repo', 'init', repo, '--encryption'], { CAIRN_NEW_PASSWORD: PASSWORD });
    expect(r.stdout).toMatch(/encrypted/);
    expect(r.stdout).toMatch(/The password cannot be recovered/);
    const slot = /Its key slot is keys\/([0-9a-f]{32})\./.exec(r.stdout)?.[1];
    expect(slot, r.stdout).toBeDefined();
    expect(readdirSync(join(repo, 'keys'))).toEqual([slot]);
    expect(r.stdout + r.stderr).not.toContain(PASSWORD);
    ok(['backup', 'create', '--source', `sqlite://${CHINOOK}`, '--repo', repo, '--id', 'e1'], { CAIRN_PASSWORD: PASSWORD });
  }, 60_000);

  it('--json names the key slot; --new-password-file and CAIRN_PASSWORD work too', () => {
    const file = join(work, 'init-pw');
    writeFileSync(file, `${PASSWORD}\n`);
    const a = JSON.parse(ok(['repo', 'init', join(work, 'enc-json'), '--encryption', '--new-password-file', file, '--json']).stdout) as { keySlot: string; config: { encryption: { algorithm: string } } };
    expect(a.keySlot).toMatch(/^keys\/[0-9a-f]{32}$/);
    expect(a.config.encryption.algorithm).toBe('aes-256-gcm');
    expect(backupIds(join(work, 'enc-json'), { CAIRN_PASSWORD: PASSWORD })).toEqual([]);
    ok(['repo', 'init', join(work, 'enc-env'), '--encryption'], { CAIRN_PASSWORD: OTHER });
    expect(backupIds(join(work, 'enc-env'), { CAIRN_PASSWORD: OTHER })).toEqual([]);
  });

  it('without a new password and without a terminal: exit 2 naming the sources, nothing created', () => {
    const target = join(work, 'enc-none');
    const r = cairn(['repo', 'init', target, '--encryption']);
    expect(r.code).toBe(2);
    expect(errorLine(r)).toMatch(/needs the new password: pass --new-password-file <file>, set CAIRN_NEW_PASSWORD, --password-command, CAIRN_PASSWORD_FILE, CAIRN_PASSWORD, or run on a terminal/);
    expect(existsSync(join(target, 'config'))).toBe(false);
  });
});

describe('password sources', () => {
  it('--password-command: the first line of its stdout (sh -c)', () => {
    expect(backupIds(repo, {}, ['--password-command', `printf '%s\\n%s\\n' ${shellQuote(PASSWORD)} ignored`])).toEqual(['e1']);
  });

  it('CAIRN_PASSWORD_FILE: the first line, its line break (\\n or \\r\\n) removed', () => {
    const unix = join(work, 'pw-unix');
    const dos = join(work, 'pw-dos');
    writeFileSync(unix, `${PASSWORD}\nsecond line\n`);
    writeFileSync(dos, `${PASSWORD}\r\n`);
    expect(backupIds(repo, { CAIRN_PASSWORD_FILE: unix })).toEqual(['e1']);
    expect(backupIds(repo, { CAIRN_PASSWORD_FILE: dos })).toEqual(['e1']);
  });

  it('CAIRN_PASSWORD', () => {
    expect(backupIds(repo, { CAIRN_PASSWORD: PASSWORD })).toEqual(['e1']);
  });

  it("restic's order: --password-command before CAIRN_PASSWORD_FILE before CAIRN_PASSWORD", () => {
    const right = join(work, 'pw-right');
    const wrong = join(work, 'pw-wrong');
    writeFileSync(right, PASSWORD);
    writeFileSync(wrong, 'not it');
    expect(backupIds(repo, { CAIRN_PASSWORD_FILE: wrong, CAIRN_PASSWORD: 'not it' }, ['--password-command', `cat ${shellQuote(right)}`])).toEqual(['e1']);
    expect(backupIds(repo, { CAIRN_PASSWORD_FILE: right, CAIRN_PASSWORD: 'not it' })).toEqual(['e1']);
    // The file's wrong password wins over a right CAIRN_PASSWORD: exit 9, not a fallback.
    expect(cairn(['backup', 'list', '--repo', repo], { CAIRN_PASSWORD_FILE: wrong, CAIRN_PASSWORD: PASSWORD }).code).toBe(9);
  });

  it('a registered name carries its source: --password-file or --password-command (kept as such, not the password)', () => {
    const file = join(work, 'pw-registered');
    writeFileSync(file, `${PASSWORD}\n`);
    ok(['repo', 'add', 'enc-file', repo, '--password-file', file]);
    ok(['repo', 'add', 'enc-cmd', repo, '--password-command', `cat ${shellQuote(file)}`]);
    expect(backupIds('enc-file', {})).toEqual(['e1']);
    expect(backupIds('enc-cmd', {})).toEqual(['e1']);
    // An explicit source still comes first.
    expect(cairn(['backup', 'list', '--repo', 'enc-file'], { CAIRN_PASSWORD: 'not it' }).code).toBe(9);
    const catalog = readFileSync(join(dataDir, 'catalog.db'));
    const wal = existsSync(join(dataDir, 'catalog.db-wal')) ? readFileSync(join(dataDir, 'catalog.db-wal')) : Buffer.alloc(0);
    expect(catalog.includes(PASSWORD) || wal.includes(PASSWORD)).toBe(false);
    expect(catalog.includes(file) || wal.includes(file)).toBe(true);
  });

  it('the --from repository of copy/sync reads --from-password-command / CAIRN_FROM_PASSWORD*, the --to one the ordinary sources', () => {
    const target = join(work, 'enc-target');
    ok(['repo', 'init', target, '--encryption'], { CAIRN_NEW_PASSWORD: OTHER });
    ok(['copy', 'e1', '--from', repo, '--to', target, '--from-password-command', `echo ${shellQuote(PASSWORD)}`], { CAIRN_PASSWORD: OTHER });
    expect(backupIds(target, { CAIRN_PASSWORD: OTHER })).toEqual(['e1']);
    const fromFile = join(work, 'pw-from');
    writeFileSync(fromFile, PASSWORD);
    const r = ok(['sync', '--from', repo, '--to', target, '--json'], { CAIRN_FROM_PASSWORD_FILE: fromFile, CAIRN_PASSWORD: OTHER });
    expect(JSON.parse(r.stdout)).toMatchObject({ skipped: ['e1'] });
    ok(['sync', '--from', repo, '--to', target], { CAIRN_FROM_PASSWORD: PASSWORD, CAIRN_PASSWORD: OTHER });
    // Each repository's wrong password is exit 9.
    expect(cairn(['sync', '--from', repo, '--to', target], { CAIRN_FROM_PASSWORD: OTHER, CAIRN_PASSWORD: OTHER }).code).toBe(9);
    // Without a --from source, the --from repository is tried with the ordinary sources: one
    // password for both needs giving once (torture seed 8803, encrypted: copy exited 2).
    const same = join(work, 'enc-same');
    ok(['repo', 'init', same, '--encryption'], { CAIRN_NEW_PASSWORD: PASSWORD });
    ok(['copy', 'e1', '--from', repo, '--to', same], { CAIRN_PASSWORD: PASSWORD });
    expect(backupIds(same, { CAIRN_PASSWORD: PASSWORD })).toEqual(['e1']);
    expect(cairn(['sync', '--from', repo, '--to', target], { CAIRN_PASSWORD: OTHER }).code).toBe(9);
    // Into a plain repository: a note says the copies are stored in plain text there.
    const plainTarget = join(work, 'plain-target');
    ok(['repo', 'init', plainTarget]);
    const noted = ok(['copy', 'e1', '--from', repo, '--to', plainTarget, '--json'], { CAIRN_PASSWORD: PASSWORD });
    expect(noted.stderr).toMatch(/is encrypted but .*plain-target is not: what is copied is stored there in plain text/);
  }, 60_000);

  it("import reads an encrypted archive's password from the --from sources", () => {
    const archive = join(work, 'e1.cairn');
    ok(['export', 'e1', '--repo', repo, '-o', archive], { CAIRN_PASSWORD: PASSWORD });
    const target = join(work, 'import-target');
    ok(['repo', 'init', target]);
    const none = cairn(['import', archive, '--repo', target]);
    expect(none.code).toBe(2);
    for (const name of ['--from-password-command', 'CAIRN_FROM_PASSWORD_FILE', 'CAIRN_FROM_PASSWORD']) expect(errorLine(none)).toContain(name);
    expect(cairn(['import', archive, '--repo', target], { CAIRN_FROM_PASSWORD: OTHER }).code).toBe(9);
    ok(['import', archive, '--repo', target, '--from-password-command', `echo ${shellQuote(PASSWORD)}`]);
    expect(backupIds(target, {})).toEqual(['e1']);
  }, 60_000);

  it('a plain repository never asks: the password command is not run', () => {
    const marker = join(work, 'asked');
    expect(backupIds(plain, { CAIRN_PASSWORD: 'whatever' }, ['--password-command', `touch ${shellQuote(marker)}; echo x`])).toEqual(['p1']);
    expect(existsSync(marker)).toBe(false);
    expect(backupIds(plain, {})).toEqual(['p1']);
  });
});

describe('failures', () => {
  it('a wrong password: exit 9 with one line naming the repository, never the password; --json code KEY', () => {
    const r = cairn(['backup', 'list', '--repo', repo], { CAIRN_PASSWORD: 'wrong-password-123' });
    expect(r.code).toBe(9);
    const line = errorLine(r);
    expect(line).toContain(repo);
    expect(line).not.toContain('wrong-password-123');
    expect(r.stdout).toBe('');
    const j = cairn(['backup', 'list', '--repo', repo, '--json'], { CAIRN_PASSWORD: 'wrong-password-123' });
    expect(j.code).toBe(9);
    expect(JSON.parse(j.stdout)).toMatchObject({ error: { code: 'KEY', exitCode: 9 } });
    expect(j.stdout).not.toContain('wrong-password-123');
  });

  it('no password source and no terminal: exit 2 naming --password-command, CAIRN_PASSWORD_FILE and CAIRN_PASSWORD', () => {
    const r = cairn(['backup', 'list', '--repo', repo]);
    expect(r.code).toBe(2);
    const line = errorLine(r);
    for (const name of ['--password-command', 'CAIRN_PASSWORD_FILE', 'CAIRN_PASSWORD']) expect(line).toContain(name);
    // copy's --from names its own sources.
    const c = cairn(['copy', 'e1', '--from', repo, '--to', plain]);
    expect(c.code).toBe(2);
    for (const name of ['--from-password-command', 'CAIRN_FROM_PASSWORD_FILE', 'CAIRN_FROM_PASSWORD']) expect(errorLine(c)).toContain(name);
  });

  it('a failing --password-command is a clear error (exit 2) that does not repeat what it printed', () => {
    const r = cairn(['backup', 'list', '--repo', repo, '--password-command', 'echo leaked-output-9; exit 3']);
    expect(r.code).toBe(2);
    expect(errorLine(r)).toMatch(/^cairn: error: The --password-command failed: it exited with code 3/);
    expect(r.stderr).not.toContain('leaked-output-9');
    const empty = cairn(['backup', 'list', '--repo', repo, '--password-command', 'true']);
    expect(empty.code).toBe(2);
    expect(errorLine(empty)).toMatch(/empty password/);
  });

  it('an unreadable CAIRN_PASSWORD_FILE names the file', () => {
    const r = cairn(['backup', 'list', '--repo', repo], { CAIRN_PASSWORD_FILE: join(work, 'no-such-file') });
    expect(r.code).toBe(2);
    expect(errorLine(r)).toMatch(/Cannot read the password file .*no-such-file \(CAIRN_PASSWORD_FILE\): it does not exist/);
  });
});

describe('on a terminal', () => {
  it(`prompts without echo; repo init --encryption asks twice${hasScript ? '' : ' — skipped: util-linux `script` (a pseudo-terminal) is not installed'}`, async (ctx) => {
    if (!hasScript) {
      console.log('skipped: terminal prompt: util-linux `script` is not installed');
      return ctx.skip();
    }
    const target = join(work, 'enc-tty');
    const typed = 'typed on the tty 42';
    const init = await onTerminal(['repo', 'init', target, '--encryption'], [
      [/New password for repository .*: $/, typed],
      [/Type it again: $/, typed],
    ]);
    expect(init.code, init.output).toBe(0);
    expect(init.output).not.toContain(typed);
    const list = await onTerminal(['backup', 'list', '--repo', target], [[/Password for repository .*: $/, typed]]);
    expect(list.code, list.output).toBe(0);
    expect(list.output).toMatch(/No backups/i);
    expect(list.output).not.toContain(typed);
    const wrong = await onTerminal(['backup', 'list', '--repo', target], [[/Password for repository .*: $/, 'nope']]);
    expect(wrong.code, wrong.output).toBe(9);
    const differ = await onTerminal(['repo', 'init', join(work, 'enc-tty2'), '--encryption'], [
      [/New password/, 'one'],
      [/Type it again/, 'two'],
    ]);
    expect(differ.code, differ.output).toBe(2);
    expect(differ.output).toMatch(/The two passwords typed differ/);
    expect(existsSync(join(work, 'enc-tty2', 'config'))).toBe(false);
  }, 60_000);
});

describe('cairn key', () => {
  it('list marks the slot in use; add gives a second password; both open the repository', () => {
    const before = keys({ CAIRN_PASSWORD: PASSWORD });
    expect(before).toHaveLength(1);
    expect(before[0]?.current).toBe(true);
    const human = ok(['key', 'list', '--repo', repo], { CAIRN_PASSWORD: PASSWORD }).stdout;
    expect(human).toMatch(new RegExp(`\\*\\s+${before[0]?.id}`));
    const added = JSON.parse(ok(['key', 'add', '--repo', repo, '--json'], { CAIRN_PASSWORD: PASSWORD, CAIRN_NEW_PASSWORD: OTHER }).stdout) as { key: KeyRow };
    expect(added.key.id).toMatch(/^[0-9a-f]{32}$/);
    const both = keys({ CAIRN_PASSWORD: OTHER });
    expect(both.map((k) => k.id).sort()).toEqual([before[0]?.id, added.key.id].sort());
    expect(both.find((k) => k.current)?.id).toBe(added.key.id);
    expect(backupIds(repo, { CAIRN_PASSWORD: PASSWORD })).toEqual(['e1']);
    expect(backupIds(repo, { CAIRN_PASSWORD: OTHER })).toEqual(['e1']);
  });

  it('key add without a new password and no terminal: exit 2 naming --new-password-file and CAIRN_NEW_PASSWORD', () => {
    const r = cairn(['key', 'add', '--repo', repo], { CAIRN_PASSWORD: PASSWORD });
    expect(r.code).toBe(2);
    expect(errorLine(r)).toMatch(/--new-password-file.*CAIRN_NEW_PASSWORD/);
  });

  it('remove refuses the slot in use (exit 4); lost-slot recovery: remove the lost one with the other password', () => {
    const all = keys({ CAIRN_PASSWORD: PASSWORD });
    const first = all.find((k) => k.current) as KeyRow;
    const second = all.find((k) => !k.current) as KeyRow;
    const self = cairn(['key', 'remove', first.id, '--repo', repo], { CAIRN_PASSWORD: PASSWORD });
    expect(self.code).toBe(4);
    // PASSWORD is "lost": its slot goes, opened with OTHER (a unique prefix is enough).
    const removed = JSON.parse(ok(['key', 'remove', first.id.slice(0, 8), '--repo', repo, '--json'], { CAIRN_PASSWORD: OTHER }).stdout) as { removed: string };
    expect(removed.removed).toBe(first.id);
    expect(cairn(['backup', 'list', '--repo', repo], { CAIRN_PASSWORD: PASSWORD }).code).toBe(9);
    expect(backupIds(repo, { CAIRN_PASSWORD: OTHER })).toEqual(['e1']);
    expect(keys({ CAIRN_PASSWORD: OTHER }).map((k) => k.id)).toEqual([second.id]);
    // The last slot is never removed.
    expect(cairn(['key', 'remove', second.id, '--repo', repo], { CAIRN_PASSWORD: OTHER }).code).toBe(4);
    // Back to PASSWORD for the tests after: a slot for it again.
    ok(['key', 'add', '--repo', repo], { CAIRN_PASSWORD: OTHER, CAIRN_NEW_PASSWORD: PASSWORD });
  });

  it('passwd rotates: the old password fails (exit 9), the new one opens, other slots untouched', () => {
    const before = keys({ CAIRN_PASSWORD: OTHER });
    const file = join(work, 'pw-new');
    writeFileSync(file, `${NEWER}\n`);
    const r = JSON.parse(ok(['key', 'passwd', '--repo', repo, '--new-password-file', file, '--json'], { CAIRN_PASSWORD: OTHER }).stdout) as { key: KeyRow; removed: string };
    expect(r.removed).toBe(before.find((k) => k.current)?.id);
    expect(cairn(['backup', 'list', '--repo', repo], { CAIRN_PASSWORD: OTHER }).code).toBe(9);
    expect(backupIds(repo, { CAIRN_PASSWORD: NEWER })).toEqual(['e1']);
    expect(backupIds(repo, { CAIRN_PASSWORD: PASSWORD })).toEqual(['e1']);
    const after = keys({ CAIRN_PASSWORD: NEWER });
    expect(after.find((k) => k.current)?.id).toBe(r.key.id);
    expect(after).toHaveLength(2);
  });

  it('key commands on a plain repository: exit 2', () => {
    const r = cairn(['key', 'list', '--repo', plain]);
    expect(r.code).toBe(2);
    expect(errorLine(r)).toMatch(/is not encrypted/);
  });
});

describe('the password stays out of sight', () => {
  it('is in no process command line while cairn waits on its password command, before and after it printed the password', async () => {
    // The command prints the password from one fifo, then waits on a second one: cairn holds the
    // password (in its pipe buffer) while every process is still there to be looked at.
    const fifo = join(work, 'pw-fifo');
    const hold = join(work, 'hold-fifo');
    for (const f of [fifo, hold]) expect(spawnSync('mkfifo', [f]).status).toBe(0);
    const child: ChildProcess = spawn(process.execPath, [CLI, 'backup', 'list', '--repo', repo, '--json', '--password-command', `cat ${shellQuote(fifo)}; cat ${shellQuote(hold)}`], {
      cwd: PROJECT_ROOT,
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    const pid = child.pid as number;
    const pids = (parent: number): number[] =>
      spawnSync('ps', ['-o', 'pid=', '--ppid', String(parent)], { encoding: 'utf8', timeout: 5000 })
        .stdout.split('\n')
        .map((x) => Number(x.trim()))
        .filter((n) => n > 0);
    const tree = (): number[] => [pid, ...pids(pid).flatMap((p) => [p, ...pids(p)])];
    // Read only while cairn is alive and waiting (a process that is exiting is not read).
    const cmdline = (p: number): string => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ');
      } catch {
        return '';
      }
    };
    const waitingOn = async (name: string): Promise<string[]> => {
      for (;;) {
        expect(child.exitCode, `cairn ended early: ${stderr}`).toBeNull();
        const lines = tree().map(cmdline);
        if (lines.some((l) => l.startsWith(`cat ${name}`))) return [...lines, spawnSync('ps', ['-eo', 'args'], { encoding: 'utf8', timeout: 5000 }).stdout];
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const before = await waitingOn(fifo);
    const writer = spawn('sh', ['-c', `printf '%s\\n' "$PW" > ${shellQuote(fifo)}`], { env: { ...process.env, PW: PASSWORD }, stdio: 'ignore' });
    await new Promise((r) => writer.once('close', r));
    const after = await waitingOn(hold);
    writeFileSync(hold, 'more\n');
    expect(await exited, stderr).toBe(0);
    const lines = [...before, ...after];
    expect(lines.some((l) => l.includes('--password-command'))).toBe(true);
    expect(lines.filter((l) => l.includes(PASSWORD))).toEqual([]);
    jsonOutputs.push(stdout);
    expect((JSON.parse(stdout) as { backups: { id: string }[] }).backups.map((b) => b.id)).toEqual(['e1']);
  }, 60_000);

  it('is in no --json output of this file', () => {
    expect(jsonOutputs.length).toBeGreaterThan(10);
    for (const out of jsonOutputs) for (const pw of [PASSWORD, OTHER, NEWER]) expect(out).not.toContain(pw);
  });
});
