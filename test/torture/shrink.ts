/**
 * Delta debugging of a failing step list: cut everything after the failing step, then remove
 * chunks of steps (halves, quarters, … single steps) while the same kind of violation still
 * happens. Kills and concurrency make some failures timing-dependent, so a candidate counts as
 * failing only if it fails within `tries` runs.
 */
import type { RunResult, Violation } from './world.js';
import { describeStep, type Step } from './steps.js';

export interface ShrinkOptions {
  /** Runs allowed in total (each is a full replay). */
  maxRuns: number;
  /** Stop after this long (ms). */
  maxMs: number;
  /** Replays per candidate before calling it passing. */
  tries: number;
  log?: (line: string) => void;
}

export interface ShrinkResult {
  steps: Step[];
  violation: Violation;
  runs: number;
  /** The original failure did not happen again on replay. */
  flaky: boolean;
}

export async function shrink(steps: Step[], violation: Violation, run: (steps: Step[]) => Promise<RunResult>, options: ShrinkOptions): Promise<ShrinkResult> {
  const started = Date.now();
  let runs = 0;
  let best = steps.slice(0, violation.step + 1);
  let bestViolation = violation;
  const budgetLeft = (): boolean => runs < options.maxRuns && Date.now() - started < options.maxMs;

  const fails = async (candidate: Step[]): Promise<Violation | undefined> => {
    for (let t = 0; t < options.tries && budgetLeft(); t++) {
      runs++;
      const r = await run(candidate);
      if (r.violation && r.violation.kind === violation.kind) return r.violation;
    }
    return undefined;
  };

  const again = await fails(best);
  if (!again) {
    options.log?.(`shrink: the failure did not happen again in ${options.tries} replays of the ${best.length} steps (timing-dependent); keeping the full sequence`);
    return { steps: best, violation, runs, flaky: true };
  }
  bestViolation = again;
  best = best.slice(0, again.step + 1);

  let chunks = 2;
  while (best.length > 1 && budgetLeft()) {
    const size = Math.ceil(best.length / chunks);
    let removed = false;
    for (let start = 0; start < best.length && budgetLeft(); start += size) {
      const candidate = [...best.slice(0, start), ...best.slice(start + size)];
      if (candidate.length === 0) continue;
      const v = await fails(candidate);
      if (v) {
        best = candidate.slice(0, v.step + 1);
        bestViolation = v;
        removed = true;
        options.log?.(`shrink: ${best.length} steps still fail (${v.kind}) after removing ${size} step(s) [run ${runs}]`);
        break;
      }
    }
    if (removed) {
      chunks = Math.max(chunks - 1, 2);
      continue;
    }
    if (size === 1) break;
    chunks = Math.min(chunks * 2, best.length);
  }
  options.log?.(`shrink: minimal sequence (${best.length} steps, ${runs} replays):\n${best.map((s, i) => `    ${i + 1}. ${describeStep(s)}`).join('\n')}`);
  return { steps: best, violation: bestViolation, runs, flaky: false };
}
