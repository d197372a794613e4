/**
 * Which backups a retention policy keeps. Pure: the caller says what "now" is and in which time
 * zone calendar buckets (hour, day, ISO week, month, year) are counted, so schedules in Tokyo
 * keep Tokyo days. Rules combine like restic's `forget`: a backup is kept when any rule keeps
 * it. Only backups of the policy's own schedule are candidates; manual backups never are.
 */
import { addDuration, type Duration } from '../core/durations.js';

export interface RetentionPolicy {
  keepLast?: number;
  keepWithin?: Duration;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
}

export interface RetentionCandidate {
  id: string;
  createdAt: string;
}

export interface RetentionDecision {
  keep: Map<string, string[]>;
  remove: string[];
}

/** True when the policy keeps something bounded (an empty policy keeps everything). */
export function hasRules(p: RetentionPolicy): boolean {
  return [p.keepLast, p.keepWithin, p.keepHourly, p.keepDaily, p.keepWeekly, p.keepMonthly, p.keepYearly].some((v) => v !== undefined);
}

export function applyRetention(backups: RetentionCandidate[], policy: RetentionPolicy, now: Date, timeZone = 'UTC'): RetentionDecision {
  const newestFirst = [...backups].sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id));
  const keep = new Map<string, string[]>();
  const mark = (id: string, why: string): void => void keep.set(id, [...(keep.get(id) ?? []), why]);
  if (!hasRules(policy)) {
    for (const b of newestFirst) mark(b.id, 'no retention rules');
    return { keep, remove: [] };
  }
  if (policy.keepLast) newestFirst.slice(0, policy.keepLast).forEach((b) => mark(b.id, 'last'));
  if (policy.keepWithin) {
    const since = addDuration(now, policy.keepWithin, -1).getTime();
    for (const b of newestFirst) if (Date.parse(b.createdAt) > since) mark(b.id, `within ${policy.keepWithin.text}`);
  }
  const toParts = calendarParts(timeZone);
  const partsCache = new Map<number, Parts>();
  const parts = (d: Date): Parts => {
    let p = partsCache.get(d.getTime());
    if (p === undefined) partsCache.set(d.getTime(), (p = toParts(d)));
    return p;
  };
  const buckets: [keyof RetentionPolicy, string, (d: Date) => string][] = [
    ['keepHourly', 'hourly', (d) => { const p = parts(d); return `${p.year}-${p.month}-${p.day} ${p.hour}`; }],
    ['keepDaily', 'daily', (d) => { const p = parts(d); return `${p.year}-${p.month}-${p.day}`; }],
    ['keepWeekly', 'weekly', (d) => isoWeek(parts(d))],
    ['keepMonthly', 'monthly', (d) => { const p = parts(d); return `${p.year}-${p.month}`; }],
    ['keepYearly', 'yearly', (d) => `${parts(d).year}`],
  ];
  for (const [rule, name, bucketOf] of buckets) {
    const n = policy[rule] as number | undefined;
    if (!n) continue;
    const seen = new Set<string>();
    for (const b of newestFirst) {
      if (seen.size >= n) break;
      const bucket = bucketOf(new Date(b.createdAt));
      if (seen.has(bucket)) continue; // the newest of each bucket represents it
      seen.add(bucket);
      mark(b.id, name);
    }
  }
  return { keep, remove: newestFirst.filter((b) => !keep.has(b.id)).map((b) => b.id) };
}

interface Parts {
  year: number;
  month: number;
  day: number;
  hour: number;
}

function calendarParts(timeZone: string): (d: Date) => Parts {
  const fmt = new Intl.DateTimeFormat('en-US', { timeZone, year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', hourCycle: 'h23' });
  return (d) => {
    const parts = fmt.formatToParts(d);
    const get = (type: string): number => Number(parts.find((p) => p.type === type)?.value);
    return { year: get('year'), month: get('month'), day: get('day'), hour: get('hour') };
  };
}

/** ISO 8601 week of a calendar date, e.g. "2024-W09". */
function isoWeek(p: Parts): string {
  const date = new Date(Date.UTC(p.year, p.month - 1, p.day));
  const dayNum = (date.getUTCDay() + 6) % 7; // Monday = 0
  date.setUTCDate(date.getUTCDate() - dayNum + 3); // Thursday of this week
  const weekYear = date.getUTCFullYear();
  const firstThursday = new Date(Date.UTC(weekYear, 0, 4));
  const week = 1 + Math.round((date.getTime() - firstThursday.getTime()) / 86400e3 / 7 - ((firstThursday.getUTCDay() + 6) % 7 - 3) / 7);
  return `${weekYear}-W${String(week).padStart(2, '0')}`;
}
