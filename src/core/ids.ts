import { randomBytes } from 'node:crypto';
import { UsageError } from './errors.js';

const BACKUP_ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,127}$/;

/** Whether `id` is a backup id: also how names listed under backups/ are told from foreign objects. */
export function isBackupId(id: unknown): id is string {
  return typeof id === 'string' && id.length <= 128 && BACKUP_ID_PATTERN.test(id);
}

/** At most `max` characters of untrusted text, JSON-quoted, for error messages. */
export function quotePrefix(text: string, max = 40): string {
  if (text.length <= max) return JSON.stringify(text);
  return `${JSON.stringify(text.slice(0, max)).slice(0, -1)}…" (${text.length} characters)`;
}

/** Backup ids become object names in every backend, so they are restricted to a portable set. */
export function validateBackupId(id: string): string {
  if (!isBackupId(id)) {
    throw new UsageError(
      `Invalid backup id ${quotePrefix(String(id))}: use 1-128 lowercase letters, digits, "-" or "_", starting with a letter or digit.`,
    );
  }
  return id;
}

/** `<source>-<yyyyMMdd-HHmmss>` in UTC, e.g. `chinook-20261122-031500`. */
export function generateBackupId(sourceName: string, at: Date): string {
  const slug =
    sourceName
      .toLowerCase()
      .replace(/[^a-z0-9_-]+/g, '-')
      .replace(/^[-_]+|[-_]+$/g, '')
      .slice(0, 100) || 'backup';
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  const stamp =
    `${at.getUTCFullYear()}${p(at.getUTCMonth() + 1)}${p(at.getUTCDate())}` +
    `-${p(at.getUTCHours())}${p(at.getUTCMinutes())}${p(at.getUTCSeconds())}`;
  return `${slug}-${stamp}`;
}

/** Random hex id for locks, temp files and repositories. */
export function randomId(bytes = 16): string {
  return randomBytes(bytes).toString('hex');
}
