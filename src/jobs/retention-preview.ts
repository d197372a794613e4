/**
 * What a retention policy would keep and remove, without deleting anything: the decision a
 * scheduled run makes (applyScheduleRetention: applyRetention over the schedule's own backups,
 * and expired ones removed whatever the rules say), for POST /v1/retention-previews.
 */
import { parseDuration } from '../core/durations.js';
import type { BackupManifest } from '../core/schemas.js';
import type { RetentionRules, ScheduleSpec } from './ports.js';
import { applyRetention, type RetentionPolicy } from './retention.js';
import { retentionPolicy } from './scheduler.js';

// The keep* rules as a request or a schedule gives them: a schedule's own type.
export type { RetentionRules };

export const RULE_NAMES = ['keepLast', 'keepWithin', 'keepHourly', 'keepDaily', 'keepWeekly', 'keepMonthly', 'keepYearly'] as const;

export interface RetentionPreviewResult {
  /** Newest first; reasons as applyRetention gives them ("last", "within 7d", "daily", …). */
  keep: { id: string; createdAt: string; reasons: string[] }[];
  /** Newest first; `expired: true` when its expiry has passed (a run deletes it whatever the rules). */
  remove: { id: string; createdAt: string; expired?: true }[];
}

/** The rules given (only those set), or undefined when none is. */
export function rulesGiven(r: RetentionRules): RetentionRules | undefined {
  const given = Object.fromEntries(RULE_NAMES.filter((k) => r[k] !== undefined).map((k) => [k, r[k]])) as RetentionRules;
  return Object.keys(given).length > 0 ? given : undefined;
}

/** Rules as a RetentionPolicy (the scheduler's conversion). Errors: UsageError for a bad keepWithin. */
export function policyOf(rules: RetentionRules): RetentionPolicy {
  // Checked here with the API's field name; retentionPolicy names the CLI's flag.
  if (rules.keepWithin !== undefined) parseDuration(rules.keepWithin, 'keepWithin');
  return retentionPolicy({ retention: rules } as ScheduleSpec);
}

/**
 * The decision over `candidates` (already chosen: a schedule's own backups, or a source's
 * scheduled ones), at `now`, counting calendar buckets in `timeZone`.
 */
export function previewRetention(candidates: BackupManifest[], rules: RetentionRules, now: Date, timeZone: string): RetentionPreviewResult {
  const { keep } = applyRetention(candidates.map((m) => ({ id: m.id, createdAt: m.createdAt })), policyOf(rules), now, timeZone);
  const newestFirst = [...candidates].sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id));
  const expired = (m: BackupManifest): boolean => m.expiresAt !== null && Date.parse(m.expiresAt) <= now.getTime();
  return {
    keep: newestFirst.filter((m) => keep.has(m.id) && !expired(m)).map((m) => ({ id: m.id, createdAt: m.createdAt, reasons: keep.get(m.id) ?? [] })),
    remove: newestFirst.filter((m) => !keep.has(m.id) || expired(m)).map((m) => ({ id: m.id, createdAt: m.createdAt, ...(expired(m) ? { expired: true as const } : {}) })),
  };
}
