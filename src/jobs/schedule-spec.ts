import { UsageError } from '../core/errors.js';
import { parseDuration } from '../core/durations.js';
import { randomId } from '../core/ids.js';
import type { RetentionRules, ScheduleSpec } from './ports.js';
import { cronOf } from './scheduler.js';

/**
 * A new schedule's id: random, so that schedules of the same name in other data folders (other
 * servers on the same repository) never claim each other's backups. Here, not in ports.ts,
 * so that ports.ts (which the SDK's types reach) imports nothing.
 */
export function newScheduleId(): string {
  return `sch-${randomId(12)}`;
}

/** What `schedule add` and POST /v1/schedules take (the SDK's CreateScheduleRequest). */
export interface ScheduleInput extends RetentionRules {
  name: string;
  /** Database URL or a registered source name. */
  source: string;
  repository: string;
  /** Five cron fields or @hourly, @daily, @weekly, @monthly, @yearly. */
  cron: string;
  timezone?: string;
  include?: string[];
  exclude?: string[];
  pattern?: string;
  expires?: string;
  /** A second repository its backups are copied to after each run (cairn sync). */
  copyTo?: string;
  /** "skip": no backup when the source has not changed since the schedule's last one (default "backup"). */
  whenUnchanged?: 'backup' | 'skip';
  disabled?: boolean;
}

const NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
export const DEFAULT_PATTERN = '{source}-{yyyyMMdd-HHmmss}';

/** Validates what `schedule add` / POST /v1/schedules give, every problem named. */
export function buildScheduleSpec(input: ScheduleInput, now: Date): ScheduleSpec {
  if (!NAME.test(input.name)) throw new UsageError(`Invalid schedule name "${input.name}": use lowercase letters, digits, - and _ (up to 63).`);
  if (input.include && input.exclude) throw new UsageError('Give --include or --exclude, not both.');
  const timezone = input.timezone ?? 'UTC';
  cronOf(input.cron, timezone);
  if (input.keepWithin) parseDuration(input.keepWithin, '--keep-within');
  if (input.expires) parseDuration(input.expires, '--expires');
  const counts = ['keepLast', 'keepHourly', 'keepDaily', 'keepWeekly', 'keepMonthly', 'keepYearly'] as const;
  for (const k of counts) {
    const v = input[k];
    if (v !== undefined && (!Number.isInteger(v) || v < 1 || v > 100_000)) {
      throw new UsageError(`Invalid --${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} ${String(v)}: give a whole number from 1.`);
    }
  }
  if (input.copyTo !== undefined && input.copyTo === input.repository) throw new UsageError(`--copy-to names the schedule's own repository (${input.copyTo}): give a second repository.`);
  if (input.whenUnchanged !== undefined && input.whenUnchanged !== 'backup' && input.whenUnchanged !== 'skip') {
    throw new UsageError(`Invalid --when-unchanged "${String(input.whenUnchanged)}": give skip (no backup while the database has not changed) or backup (the default).`);
  }
  const pattern = input.pattern ?? DEFAULT_PATTERN;
  if (!/\{(yyyy|MM|dd|HH|mm|ss)|\{[^}]*(yyyy|HH|ss)/.test(pattern)) {
    throw new UsageError(`Invalid --pattern "${pattern}": it needs a time in it (e.g. {yyyyMMdd-HHmmss}) so that each run gets its own id.`);
  }
  const retention: ScheduleSpec['retention'] = {};
  for (const k of [...counts, 'keepWithin'] as const) if (input[k] !== undefined) (retention as Record<string, unknown>)[k] = input[k];
  return {
    id: newScheduleId(),
    name: input.name,
    source: input.source,
    repository: input.repository,
    cron: input.cron,
    timezone,
    ...(input.include ? { include: input.include } : {}),
    ...(input.exclude ? { exclude: input.exclude } : {}),
    pattern,
    retention,
    ...(input.expires ? { expires: input.expires } : {}),
    ...(input.copyTo ? { copyTo: input.copyTo } : {}),
    ...(input.whenUnchanged === 'skip' ? { whenUnchanged: 'skip' as const } : {}),
    enabled: !input.disabled,
    createdAt: now.toISOString(),
  };
}

/**
 * What `schedule edit` and PATCH /v1/schedules/{name} take: each field optional; null clears an
 * optional one (include / exclude, a retention rule, expires, copyTo).
 */
export type ScheduleChanges = {
  [K in Exclude<keyof ScheduleInput, 'name' | 'disabled'>]?: K extends 'source' | 'repository' | 'cron' | 'timezone' | 'pattern' | 'whenUnchanged' ? ScheduleInput[K] : ScheduleInput[K] | null;
};

/** The fields of ScheduleChanges that null may clear. */
export const CLEARABLE = ['include', 'exclude', 'keepLast', 'keepWithin', 'keepHourly', 'keepDaily', 'keepWeekly', 'keepMonthly', 'keepYearly', 'expires', 'copyTo'] as const;

/**
 * A schedule with `changes` applied, checked as buildScheduleSpec checks a new one (every problem
 * a UsageError). Keeps its id, name, creation time and enabled state. include or exclude given
 * replaces the selection. `timingChanged`: the cron or time zone differs, so due times count
 * from the edit (the caller moves the schedule's lastDue to now: runs the old cron would have
 * made are neither run nor recorded missed).
 * @throws UsageError when no change is given or the result is invalid.
 */
export function applyScheduleChanges(current: ScheduleSpec, changes: ScheduleChanges, now: Date): { spec: ScheduleSpec; timingChanged: boolean } {
  const given = Object.entries(changes).filter(([, v]) => v !== undefined);
  if (given.length === 0) throw new UsageError(`Nothing to change in schedule "${current.name}": give at least one option (cairn schedule edit --help lists them).`);
  const input: ScheduleInput & Record<string, unknown> = {
    name: current.name,
    source: current.source,
    repository: current.repository,
    cron: current.cron,
    timezone: current.timezone,
    ...(current.include ? { include: current.include } : {}),
    ...(current.exclude ? { exclude: current.exclude } : {}),
    pattern: current.pattern,
    ...current.retention,
    ...(current.expires !== undefined ? { expires: current.expires } : {}),
    ...(current.copyTo !== undefined ? { copyTo: current.copyTo } : {}),
    ...(current.whenUnchanged ? { whenUnchanged: current.whenUnchanged } : {}),
  };
  if (changes.include) delete input.exclude;
  if (changes.exclude) delete input.include;
  for (const [k, v] of given) {
    if (v === null) delete input[k];
    else input[k] = v;
  }
  const built = buildScheduleSpec(input, now);
  const spec: ScheduleSpec = { ...built, id: current.id, createdAt: current.createdAt, enabled: current.enabled };
  return { spec, timingChanged: spec.cron !== current.cron || spec.timezone !== current.timezone };
}

/**
 * The change a store's `update` applies for `changes` made at `now`: merged onto the schedule as
 * it is inside the store's transaction (not onto an earlier read), with `dueFrom` = now when the
 * cron or time zone changed (see applyScheduleChanges).
 * @throws UsageError as applyScheduleChanges.
 */
export function scheduleEdit(changes: ScheduleChanges, now: Date): (current: ScheduleSpec) => { spec: ScheduleSpec; dueFrom?: string } {
  return (current) => {
    const { spec, timingChanged } = applyScheduleChanges(current, changes, now);
    return timingChanged ? { spec, dueFrom: now.toISOString() } : { spec };
  };
}
