/**
 * `npm run torture -- --seed N --steps M [--backend fs|s3] [--faults 0.1] [--runs K] [--without prune] [--encrypted] [--no-shrink] [--keep] [--replay file.json]`
 *
 * Runs the model-based random test (docs in test/torture/README.md). Exit 0: no invariant
 * violated; exit 1: a violation (report printed, minimal sequence saved); exit 2: bad arguments.
 */
import { readFileSync } from 'node:fs';
import { replay, torture, type Regression } from './torture.js';
import { removeLiveTempDirs } from './world.js';

// Ctrl-C: remove the runs' temp folders (children die with the terminal's process group; the
// s3rver child and its folder go with them through its own exit handling).
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    removeLiveTempDirs();
    process.exit(130);
  });
}

function usage(message: string): never {
  console.error(`torture: ${message}\nusage: npm run torture -- --seed N --steps M [--backend fs|s3] [--faults 0.1] [--engine sqlite] [--runs K] [--without prune,copy] [--encrypted] [--no-shrink] [--no-save] [--keep] [--replay file.json]`);
  process.exit(2);
}

function parse(argv: string[]): Record<string, string | boolean> {
  const out: Record<string, string | boolean> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) usage(`unexpected argument "${a}"`);
    const [k, inline] = a.slice(2).split('=', 2) as [string, string | undefined];
    if (['no-shrink', 'no-save', 'keep', 'encrypted'].includes(k)) out[k] = true;
    else if (inline !== undefined) out[k] = inline;
    else {
      const v = argv[++i];
      if (v === undefined) usage(`--${k} needs a value`);
      out[k] = v;
    }
  }
  return out;
}

function int(v: string | boolean | undefined, name: string, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) usage(`--${name} must be a whole number, not "${v}"`);
  return n;
}

async function main(): Promise<number> {
  const args = parse(process.argv.slice(2));
  const known = ['seed', 'steps', 'backend', 'faults', 'engine', 'runs', 'no-shrink', 'no-save', 'keep', 'replay', 'without', 'encrypted'];
  for (const k of Object.keys(args)) if (!known.includes(k)) usage(`unknown option --${k}`);
  const log = (line: string): void => void process.stdout.write(`${line}\n`);
  if (typeof args.replay === 'string') {
    const regression = JSON.parse(readFileSync(args.replay, 'utf8')) as Regression;
    log(`replaying ${regression.name} (${regression.steps.length} steps, ${regression.backend})`);
    const r = await replay(regression, log);
    if (r.violation) {
      log(`\nVIOLATION at step ${r.violation.step + 1} (${r.violation.stepText}):\n  ${r.violation.message}`);
      return 1;
    }
    log('passes');
    return 0;
  }
  const engine = args.engine ?? 'sqlite';
  if (engine !== 'sqlite') usage(`--engine ${String(engine)}: only sqlite is modelled so far (PostgreSQL is not implemented in the torture test yet)`);
  const backend = args.backend ?? 'fs';
  if (backend !== 'fs' && backend !== 's3') usage(`--backend must be fs or s3, not "${String(backend)}"`);
  const faults = args.faults === undefined ? (backend === 's3' ? 0.1 : 0) : Number(args.faults);
  if (!(faults >= 0 && faults <= 1)) usage(`--faults must be a share from 0 to 1, not "${String(args.faults)}"`);
  if (backend === 'fs' && faults > 0) usage('--faults applies to --backend s3 only');
  const seed = int(args.seed, 'seed', 1);
  const steps = int(args.steps, 'steps', 50);
  const runs = int(args.runs, 'runs', 1);
  let total = 0;
  let totalMs = 0;
  let failed = 0;
  for (let k = 0; k < runs; k++) {
    log(`torture: seed ${seed + k}, ${steps} steps, backend ${backend}${backend === 's3' ? ` (faults ${faults})` : ''}`);
    const without = typeof args.without === 'string' ? args.without.split(',').filter(Boolean) : undefined;
    const out = await torture({
      seed: seed + k,
      steps,
      backend,
      faults,
      shrink: !args['no-shrink'],
      save: !args['no-save'],
      keep: Boolean(args.keep),
      log,
      ...(without ? { without } : {}),
      ...(args.encrypted ? { encrypted: true } : {}),
    });
    const r = out.result;
    const run = r.violation ? r.violation.step : r.stepsRun;
    const stepTime = r.stepMs.length ? r.stepMs.reduce((a, b) => a + b, 0) / r.stepMs.length : 0;
    total += run;
    totalMs += r.stepMs.reduce((a, b) => a + b, 0);
    log(
      `seed ${seed + k}: ${r.violation ? `VIOLATION (${r.violation.kind}) at step ${r.violation.step + 1}` : 'no violation'}; ` +
        `${run} steps passed in ${(r.ms / 1000).toFixed(1)} s (${Math.round(stepTime)} ms per step with its checks)`,
    );
    log(`  operations: ${Object.entries(r.counts).map(([k2, v]) => `${k2} ${v}`).join(', ')}`);
    if (r.notes.length) log(`  notes: ${r.notes.slice(0, 5).join('; ')}`);
    if (r.violation) failed++;
  }
  log(`\ntorture total: ${runs} run(s), ${total} steps passed, ${failed} violation(s), ${total ? Math.round(totalMs / total) : 0} ms per step`);
  return failed > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
