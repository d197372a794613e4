/**
 * Schedules as shown (API answers, `cairn schedule list/show --json`): a schedule keeps its
 * source as given, which may be a URL with a password; what leaves is the registered name, or
 * the URL's location (never a secret), or, when it does not even parse, a redacted form.
 */
import type { ScheduleSpec } from '../catalog/schedules.js';
import { openSource } from '../sources/index.js';
import { isName } from './access.js';
import { answerMessage, redactUrl } from './redact.js';
import type { ScheduleRun } from '../catalog/schedules.js';

export function publicSource(value: string): string {
  if (isName(value)) return value;
  // Only well-formed URLs are parsed for a location: in "postgres:user:pw@host" the password
  // would land in the database name.
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value) && !/^sqlite:[^@]*$/i.test(value)) return '***';
  try {
    return openSource(value).location;
  } catch {
    return redactUrl(value);
  }
}

export function publicRepository(value: string): string {
  return isName(value) ? value : redactUrl(value);
}

export function publicSchedule<T extends Pick<ScheduleSpec, 'source' | 'repository' | 'copyTo'>>(s: T): T {
  return { ...s, source: publicSource(s.source), repository: publicRepository(s.repository), ...(s.copyTo !== undefined ? { copyTo: publicRepository(s.copyTo) } : {}) };
}

/** A schedule's runs as shown: a reason (an error message) may quote the schedule's source URL. */
export function publicRuns<R extends Pick<ScheduleRun, 'reason'>>(runs: R[], s: Pick<ScheduleSpec, 'source' | 'repository'>): R[] {
  return runs.map((r) => (r.reason ? { ...r, reason: answerMessage(r.reason, [s.source, s.repository]) } : r));
}
