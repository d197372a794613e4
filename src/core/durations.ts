/**
 * Durations as people write them: `30m`, `12h`, `3d`, `4w`, `6mo`, `1y` (also `90s`). Months
 * and years are calendar units: "6mo" from 31 August is the end of February, not 180 days.
 */
import { UsageError } from './errors.js';

export type DurationUnit = 's' | 'm' | 'h' | 'd' | 'w' | 'mo' | 'y';

export interface Duration {
  amount: number;
  unit: DurationUnit;
  /** As written, normalised (e.g. "3d"). */
  text: string;
}

const PATTERN = /^(\d{1,6})\s*(s|m|h|d|w|mo|y)$/;
const FIXED_MS: Partial<Record<DurationUnit, number>> = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 };

export function parseDuration(value: string, what = 'duration'): Duration {
  const m = PATTERN.exec(value.trim().toLowerCase());
  if (!m || Number(m[1]) <= 0) {
    throw new UsageError(`Invalid ${what} "${value}": write a positive number and a unit: 30m, 12h, 3d, 4w, 6mo or 1y.`);
  }
  return { amount: Number(m[1]), unit: m[2] as DurationUnit, text: `${Number(m[1])}${m[2]}` };
}

/** `date` moved by `sign` × the duration (calendar months and years clamp to the month's end). */
export function addDuration(date: Date, d: Duration, sign: 1 | -1 = 1): Date {
  const fixed = FIXED_MS[d.unit];
  if (fixed !== undefined) return new Date(date.getTime() + sign * d.amount * fixed);
  const months = (d.unit === 'y' ? 12 : 1) * d.amount * sign;
  const y = date.getUTCFullYear();
  const mo = date.getUTCMonth() + months;
  const targetYear = y + Math.floor(mo / 12);
  const targetMonth = ((mo % 12) + 12) % 12;
  const lastDay = new Date(Date.UTC(targetYear, targetMonth + 1, 0)).getUTCDate();
  const out = new Date(date.getTime());
  out.setUTCFullYear(targetYear, targetMonth, Math.min(date.getUTCDate(), lastDay));
  return out;
}

/**
 * When a backup expires, as `backup set-expiry`, `--expires` and the API's `expires` take it:
 * `never` (null), a duration from `now` (30d, 6mo…), or a date / ISO time (2027-01-31).
 * Returns the ISO time or null; UsageError naming the three forms otherwise.
 */
export function parseExpiry(when: string, now: Date): string | null {
  if (when.trim().toLowerCase() === 'never') return null;
  if (/^\d{4}-\d{2}-\d{2}/.test(when.trim())) {
    const t = Date.parse(when.trim());
    if (Number.isNaN(t)) throw new UsageError(`Invalid expiry date "${when}": write 2027-01-31, an ISO time, a duration (30d) or never.`);
    return new Date(t).toISOString();
  }
  try {
    return addDuration(now, parseDuration(when, 'expiry')).toISOString();
  } catch (err) {
    // The duration's message lists units only; an expiry also takes a date or "never".
    if (err instanceof UsageError) throw new UsageError(`Invalid expiry "${when}": write a duration (30m, 12h, 3d, 4w, 6mo, 1y), a date (2027-01-31 or an ISO time) or never.`);
    throw err;
  }
}
