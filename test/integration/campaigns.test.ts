/**
 * The kill and damage campaigns (scripts/kill-campaign.mjs, scripts/damage-campaign.mjs) in
 * their short fixed-seed form: the real CLI SIGKILLed during each operation on SQLite, and
 * each kind of repository object damaged each way once. The full campaigns are
 * `npm run kill-campaign -- --kills 50 --engine both` and `npm run damage-campaign`.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../helpers/cli.js';

interface Failure {
  kind?: string;
  detail?: string;
  problems?: string[];
  object?: string;
  iteration?: number | string;
}

interface KillRow {
  op: string;
  engine: string;
  attempts: number;
  kills: number;
  corrupt: number;
  halfWritten: number;
  leftovers: number;
  nextFailed: number;
  error?: string;
  failures: Failure[];
}

interface DamageRow {
  kind: string;
  damage: string;
  cases: number;
  missed: number;
  uncontained: number;
  repairFailed: number;
  failures: Failure[];
}

/** Runs a campaign script with --json; resolves with its summary (stdout) and its log (stderr). */
function runCampaign<T>(script: string, args: string[]): Promise<{ summary: T; log: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(PROJECT_ROOT, 'scripts', script), ...args, '--json'], { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', () => {
      try {
        resolve({ summary: JSON.parse(out) as T, log: err });
      } catch {
        reject(new Error(`${script} printed no JSON summary. stderr:\n${err}`));
      }
    });
  });
}

// The two run side by side: each is one process at a time, and the machine has two cores.
describe.concurrent('campaigns (short, fixed seeds)', () => {
  it('kill campaign: SIGKILL during every operation on SQLite leaves no corrupt repository, half-written target or leftover', async () => {
    const { summary, log } = await runCampaign<{ rows: KillRow[]; totals: { kills: number } }>('kill-campaign.mjs', [
      '--seed', '11', '--kills', '2', '--engine', 'sqlite', '--mb', '1', '--max-backups', '2', '--marker-every', '2',
    ]);
    const rows = summary.rows;
    expect(rows.map((r) => r.op).sort(), log).toEqual(['backup', 'copy', 'delete', 'expire', 'prune', 'restore-new', 'restore-overwrite']);
    for (const r of rows) expect(r.error, `${r.op}: ${r.error}`).toBeUndefined();
    // Kill times are drawn within the measured duration and one kill per op waits for a
    // progress marker, so most runs are really killed (a run may finish before its moment).
    expect(summary.totals.kills, log).toBeGreaterThanOrEqual(rows.length);
    const failures = rows.flatMap((r) => r.failures.map((f) => `${r.op}/${r.engine} #${f.iteration} ${f.kind}: ${f.detail}`));
    expect(failures).toEqual([]);
    for (const r of rows) expect([r.op, r.corrupt, r.halfWritten, r.leftovers, r.nextFailed]).toEqual([r.op, 0, 0, 0, 0]);
  }, 600_000);

  it('damage campaign: every damaged object is reported, contained to what depends on it, and repaired', async () => {
    const { summary, log } = await runCampaign<{ rows: DamageRow[]; repair: string; totals: { cases: number; missed: number; uncontained: number; repairFailed: number } }>(
      'damage-campaign.mjs',
      ['--seed', '7', '--per-kind', '1', '--mb', '1', '--backups', '2'],
    );
    // 5 kinds × 5 damages, less "lock delete" (a deleted lock looks released).
    expect(summary.totals.cases, log).toBe(24);
    const failures = summary.rows.flatMap((r) => r.failures.map((f) => `${r.kind} ${r.damage} ${f.object}: ${(f.problems ?? []).join(' | ')}`));
    expect(failures).toEqual([]);
    expect([summary.totals.missed, summary.totals.uncontained]).toEqual([0, 0]);
    expect(summary.repair, 'cairn repair must exist and be checked').toBe('run');
    expect(summary.totals.repairFailed).toBe(0);
  }, 600_000);
});
