/**
 * One torture run: generate a seed's steps, run them with the invariants checked after each, and
 * on a violation shrink the sequence and save it as a regression (test/torture/regressions/).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, PROJECT_ROOT } from './child.js';
import { startS3Backend } from './servers.js';
import { shrink } from './shrink.js';
import { describeStep, generateSteps, type Step } from './steps.js';
import { runSequence, type RunConfig, type RunResult, type Violation } from './world.js';

export const REGRESSIONS_DIR = join(PROJECT_ROOT, 'test', 'torture', 'regressions');

/** A saved minimal failing sequence. */
export interface Regression {
  name: string;
  found: string;
  seed: number;
  backend: 'fs' | 's3';
  faults: number;
  kind: string;
  /** The violation as first seen, and on the minimal sequence. */
  message: string;
  failingStep: string;
  /** "lead": fails on the main it was found on; the replay test runs it only with TORTURE_REPLAY_ALL=1. */
  expectFixedBy?: string;
  flaky?: boolean;
  /** Found with encrypted repositories (`--encrypted`); replayed the same way. */
  encrypted?: boolean;
  steps: Step[];
}

export interface TortureOptions {
  seed: number;
  steps: number;
  backend: 'fs' | 's3';
  faults: number;
  shrink: boolean;
  /** Write the minimal sequence to test/torture/regressions (default true). */
  save: boolean;
  keep?: boolean;
  log: (line: string) => void;
  /** Shrink budget (replays). */
  shrinkRuns?: number;
  shrinkMs?: number;
  /** Operations left out of the generated steps (see GenerateOptions.without). */
  without?: string[];
  /** Encrypted repositories (RunConfig.encrypted; damage steps left out). */
  encrypted?: boolean;
}

/** Whether the built CLI has a command (`repair`: damage steps need it). */
export function commandAvailable(name: string): boolean {
  const r = spawnSync(process.execPath, [CLI, name, '--help'], { cwd: PROJECT_ROOT, encoding: 'utf8', timeout: 30_000 });
  return r.status === 0 && new RegExp(`Usage: cairn ${name}`).test(r.stdout);
}

export function repairAvailable(): boolean {
  return commandAvailable('repair');
}

export interface TortureOutcome {
  result: RunResult;
  regression?: Regression;
  file?: string;
  s3Stats?: string;
}

export async function withBackend<T>(backend: 'fs' | 's3', faults: number, seed: number, f: (config: Omit<RunConfig, 'log' | 'hasRepair'>) => Promise<T>, onStats?: (s: string) => void): Promise<T> {
  if (backend === 'fs') return f({ backend });
  const s3 = await startS3Backend(faults, seed);
  try {
    return await f({ backend, s3: s3.setup });
  } finally {
    onStats?.(s3.stats());
    await s3.stop();
  }
}

export async function torture(options: TortureOptions): Promise<TortureOutcome> {
  const hasRepair = repairAvailable();
  if (!hasRepair) options.log('note: the built CLI has no `cairn repair`: damage steps are left out of the generated sequence');
  const steps = generateSteps(options.seed, options.steps, { damage: hasRepair && !options.encrypted, ...(options.without ? { without: options.without } : {}) });
  let s3Stats: string | undefined;
  return withBackend(
    options.backend,
    options.faults,
    options.seed,
    async (base) => {
      const config: RunConfig = {
        ...base,
        hasRepair,
        hasUnlock: commandAvailable('unlock'),
        log: options.log,
        ...(options.keep ? { keep: true } : {}),
        ...(options.encrypted ? { encrypted: true } : {}),
      };
      const result = await runSequence(steps, config);
      if (!result.violation) return { result, ...(s3Stats ? { s3Stats } : {}) };
      const v = result.violation;
      options.log(`\nVIOLATION at step ${v.step + 1} (${v.stepText}), seed ${options.seed}, backend ${options.backend}:\n  ${v.message}\n`);
      options.log(`steps:\n${steps.slice(0, v.step + 1).map((s, i) => `  ${i + 1}. ${describeStep(s)}`).join('\n')}`);
      let minimal: Step[] = steps.slice(0, v.step + 1);
      let minimalViolation: Violation = v;
      let flaky = false;
      if (options.shrink) {
        options.log('\nshrinking…');
        const quiet: RunConfig = { ...config, log: () => undefined, keep: false };
        const s = await shrink(steps, v, (candidate) => runSequence(candidate, quiet), {
          maxRuns: options.shrinkRuns ?? 60,
          maxMs: options.shrinkMs ?? 15 * 60_000,
          // Timing (kills, concurrent pairs) can make a failure come and go: replay such candidates twice.
          tries: steps.slice(0, v.step + 1).some((st) => st.op === 'pair' || ('kill' in st && st.kill !== undefined)) ? 2 : 1,
          log: options.log,
        });
        minimal = s.steps;
        minimalViolation = s.violation;
        flaky = s.flaky;
      }
      const name = `${options.backend}-${options.encrypted ? 'encrypted-' : ''}seed${options.seed}-${options.without?.length ? `without-${options.without.join('-')}-` : ''}${v.kind.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '').toLowerCase()}`.slice(0, 100);
      const regression: Regression = {
        name,
        found: new Date().toISOString(),
        seed: options.seed,
        backend: options.backend,
        faults: options.faults,
        kind: minimalViolation.kind,
        message: minimalViolation.message,
        failingStep: minimalViolation.stepText,
        expectFixedBy: 'lead',
        ...(options.encrypted ? { encrypted: true } : {}),
        ...(flaky ? { flaky } : {}),
        steps: minimal,
      };
      let file: string | undefined;
      if (options.save) {
        mkdirSync(REGRESSIONS_DIR, { recursive: true });
        file = join(REGRESSIONS_DIR, `${name}.json`);
        writeFileSync(file, `${JSON.stringify(regression, null, 2)}\n`);
        options.log(`\nsaved the ${minimal.length}-step sequence to ${file}`);
      }
      return { result, regression, ...(file ? { file } : {}) };
    },
    (s) => {
      s3Stats = s;
      options.log(`s3: ${s}`);
    },
  );
}

/** Replays a saved regression; the run's violation, if any, is returned. */
export async function replay(regression: Regression, log: (line: string) => void = () => undefined): Promise<RunResult> {
  const hasRepair = repairAvailable();
  return withBackend(regression.backend, regression.faults, regression.seed, (base) => runSequence(regression.steps, { ...base, hasRepair, hasUnlock: commandAvailable('unlock'), log, ...(regression.encrypted ? { encrypted: true } : {}), ...(process.env.TORTURE_KEEP ? { keep: true } : {}) }));
}
