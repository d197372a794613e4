/**
 * The torture test's operations, as plain JSON data: a step list can be printed, saved as a
 * regression and replayed. A step names backups by `pick` (a fraction of the current list, not
 * an id), so a shortened sequence still means something when the shrinker removes steps.
 */
import { Rng } from './random.js';

/**
 * Milliseconds after the child started at which it gets SIGKILL (it may have finished by then);
 * a negative number -n means SIGTERM at n ms: a cancellation, which the CLI must handle cleanly.
 */
export type Kill = number | undefined;

export type DamageTarget = 'pack' | 'index' | 'manifest' | 'lock';
export type DamageHow = 'flip' | 'truncate' | 'delete' | 'junk' | 'add';
export type PairKind = 'backup+prune' | 'backup+backup' | 'prune+prune' | 'backup+restoreSource' | 'prune+copy';

export type Step =
  /** Small random changes to the source database (inserts, updates, deletes, a table added or dropped, a big blob). */
  | { op: 'mutate'; seed: number }
  | { op: 'backup'; expires?: boolean; kill?: Kill }
  | { op: 'delete'; pick: number; kill?: Kill }
  /** set-expiry of one backup to a past date, then `backup expire`. */
  | { op: 'expire'; pick: number; kill?: Kill }
  /** Retention done by the harness: delete every backup but the newest n. */
  | { op: 'keepLast'; n: number }
  /** grace: the default --grace (1h: young packs are kept), else --grace 0 (everything unreferenced goes). */
  | { op: 'prune'; grace?: boolean; kill?: Kill }
  | { op: 'copy'; pick: number; kill?: Kill }
  | { op: 'restore'; pick: number; mode: 'new' | 'overwrite'; kill?: Kill }
  | { op: 'repair'; kill?: Kill }
  /** Two children at once; the second starts `delayMs` after the first; `kill` applies to child `killWhich`. */
  | { op: 'pair'; kind: PairKind; pick: number; delayMs: number; killWhich?: 0 | 1; kill?: Kill }
  | { op: 'damage'; target: DamageTarget; how: DamageHow; pick: number; seed: number };

export interface GenerateOptions {
  /** Include damage steps (only when `cairn repair` exists). */
  damage: boolean;
  /**
   * Operations to leave out (e.g. ["prune"] to look for other faults while a prune bug is open):
   * step ops, pair kinds, an op name inside a pair kind ("prune" drops "backup+prune" too), or a
   * damage target (pack, index, manifest, lock).
   */
  without?: string[];
}

/** The step list of one seed. The same (seed, count, options) always give the same list. */
export function generateSteps(seed: number, count: number, options: GenerateOptions): Step[] {
  const rng = new Rng(seed);
  const steps: Step[] = [];
  // A rough count of live backups, only to keep the repository small (invariant checks restore
  // every listed backup after each step, so their number sets the cost of a step).
  let live = 0;
  const kill = (p: number): Kill => (rng.chance(p) ? killDelay(rng) : undefined);
  // Start with something to work on.
  steps.push({ op: 'mutate', seed: rng.seed() }, { op: 'backup' });
  live = 1;
  const without = new Set(options.without ?? []);
  const pairKinds = (['backup+prune', 'backup+backup', 'prune+prune', 'backup+restoreSource', 'prune+copy'] as PairKind[]).filter(
    (k) => !without.has(k) && !k.split('+').some((part) => without.has(part) || (part === 'restoreSource' && without.has('restore'))),
  );
  while (steps.length < count) {
    const weights = {
      mutate: 22,
      backup: 18,
      restore: 8,
      delete: 3,
      expire: 3,
      keepLast: live > 5 ? 30 : 2,
      prune: 9,
      copy: 5,
      repair: options.damage ? 2 : 0,
      pair: 12,
      damage: options.damage ? 4 : 0,
    };
    for (const k of Object.keys(weights) as (keyof typeof weights)[]) if (without.has(k) || (k === 'pair' && pairKinds.length === 0)) weights[k] = 0;
    const op = rng.weighted(weights);
    switch (op) {
      case 'mutate':
        steps.push({ op, seed: rng.seed() });
        break;
      case 'backup':
        steps.push({ op, ...(rng.chance(0.2) ? { expires: true } : {}), kill: kill(0.25) });
        live++;
        break;
      case 'restore':
        steps.push({ op, pick: rng.next(), mode: rng.chance(0.5) ? 'new' : 'overwrite', kill: kill(0.3) });
        break;
      case 'delete':
      case 'expire':
        steps.push({ op, pick: rng.next(), kill: kill(0.15) });
        live = Math.max(0, live - 1);
        break;
      case 'keepLast': {
        const n = rng.int(1, 3);
        steps.push({ op, n });
        live = Math.min(live, n);
        break;
      }
      case 'prune':
        steps.push({ op, ...(rng.chance(0.15) ? { grace: true } : {}), kill: kill(0.3) });
        break;
      case 'copy':
        steps.push({ op, pick: rng.next(), kill: kill(0.25) });
        break;
      case 'repair':
        steps.push({ op, kill: kill(0.2) });
        break;
      case 'pair': {
        const kind = rng.pick(pairKinds);
        const k = kill(0.3);
        steps.push({ op, kind, pick: rng.next(), delayMs: rng.int(0, 400), ...(k !== undefined ? { killWhich: rng.chance(0.5) ? 0 : 1, kill: k } : {}) });
        if (kind.startsWith('backup')) live += kind === 'backup+backup' ? 2 : 1;
        break;
      }
      case 'damage': {
        const targets: Partial<Record<DamageTarget, number>> = { pack: 5, index: 3, manifest: 2, lock: 1 };
        for (const t of Object.keys(targets) as DamageTarget[]) if (without.has(t)) delete targets[t];
        if (Object.keys(targets).length === 0) break;
        const target = rng.weighted<DamageTarget>(targets);
        const how = rng.pick<DamageHow>(['flip', 'truncate', 'delete', 'junk', 'add']);
        steps.push({ op, target, how, pick: rng.next(), seed: rng.seed() });
        break;
      }
    }
  }
  // Drop undefined fields so the JSON stays readable.
  return steps.map((s) => JSON.parse(JSON.stringify(s)) as Step);
}

/**
 * A child is killed at a random moment: mostly while it works (a CLI process needs ~250 ms to
 * start), sometimes very early or late.
 */
function killDelay(rng: Rng): number {
  const r = rng.next();
  const ms = r < 0.1 ? rng.int(0, 200) : r < 0.85 ? rng.int(200, 900) : rng.int(900, 2500);
  // One in four is a cancellation (SIGTERM) rather than a kill -9.
  return rng.chance(0.25) ? -Math.max(1, ms) : ms;
}

export function killText(k: number): string {
  return k < 0 ? `cancel@${-k}ms` : `kill@${k}ms`;
}

/** One line per step, for reports. */
export function describeStep(s: Step): string {
  const kill = 'kill' in s && s.kill !== undefined ? ` ${killText(s.kill)}` : '';
  switch (s.op) {
    case 'mutate':
      return `mutate seed=${s.seed}`;
    case 'backup':
      return `backup${s.expires ? ' --expires' : ''}${kill}`;
    case 'delete':
    case 'expire':
    case 'copy':
      return `${s.op} pick=${s.pick.toFixed(3)}${kill}`;
    case 'keepLast':
      return `keepLast ${s.n}`;
    case 'prune':
      return `prune${s.grace ? '' : ' --grace 0'}${kill}`;
    case 'repair':
      return `repair${kill}`;
    case 'restore':
      return `restore ${s.mode} pick=${s.pick.toFixed(3)}${kill}`;
    case 'pair':
      return `${s.kind} pick=${s.pick.toFixed(3)} delay=${s.delayMs}ms${s.kill !== undefined ? ` ${killText(s.kill)} of child ${s.killWhich}` : ''}`;
    case 'damage':
      return `damage ${s.how} ${s.target} pick=${s.pick.toFixed(3)} seed=${s.seed}`;
  }
}
