/**
 * A cron expression in plain words (cronstrue) and its next due times, computed as the scheduler
 * computes them (cronOf: croner in the schedule's zone), for GET /v1/cron-preview and the
 * `description` / `nextRuns` of schedule answers.
 */
import cronstrue from 'cronstrue';
import { UsageError } from '../core/errors.js';
import { cronOf } from './scheduler.js';

/** What a preview answers; nextRuns are ISO times (UTC), oldest first. */
export interface CronPreview {
  cron: string;
  timezone: string;
  description: string;
  nextRuns: string[];
}

/** How many next runs a preview may ask for. */
export const MAX_PREVIEW_RUNS = 50;

/** The five-field forms of the shorthands the scheduler accepts (cronstrue knows no @daily). */
const SHORTHANDS: Record<string, string> = {
  '@hourly': '0 * * * *',
  '@daily': '0 0 * * *',
  '@weekly': '0 0 * * 0',
  '@monthly': '0 0 1 * *',
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
};

/**
 * "At 03:00", "Every 15 minutes, Monday through Friday": the expression in words (24-hour
 * times, in the schedule's own zone). Errors: UsageError for an expression the scheduler refuses.
 */
export function describeCron(cron: string, timezone = 'UTC'): string {
  cronOf(cron, timezone); // the scheduler's own checks first, with its messages
  try {
    return cronstrue.toString(SHORTHANDS[cron] ?? cron, { use24HourTimeFormat: true, verbose: false });
  } catch {
    // croner accepts a few forms cronstrue cannot put in words: the expression stands for itself.
    return `cron ${cron}`;
  }
}

/**
 * The next `count` (1–50) due times after `after` (default now), as Scheduler.next finds them
 * one after the other; fewer when the expression has no more (a date in the past). Errors:
 * UsageError naming the bad cron, time zone or count.
 */
export function cronPreview(cron: string, timezone = 'UTC', count = 5, after: Date = new Date()): CronPreview {
  if (!Number.isInteger(count) || count < 1 || count > MAX_PREVIEW_RUNS) throw new UsageError(`count is 1–${MAX_PREVIEW_RUNS}, not ${count}.`);
  const description = describeCron(cron, timezone);
  return { cron, timezone, description, nextRuns: nextRuns(cron, timezone, count, after) };
}

/** The next `count` due times after `after`, ISO (UTC). */
export function nextRuns(cron: string, timezone: string, count: number, after: Date = new Date()): string[] {
  const schedule = cronOf(cron, timezone);
  const runs: string[] = [];
  let at: Date | null = after;
  while (runs.length < count && at !== null) {
    at = schedule.nextRun(at);
    if (at !== null) runs.push(at.toISOString());
  }
  return runs;
}
