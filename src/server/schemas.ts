/**
 * Request bodies of the REST API (zod, strict: unknown fields are refused with their names).
 * Every string, array and map has a limit (LIMITS), so a hostile body costs little to refuse,
 * and errors quote at most a short prefix of what was sent.
 */
import { z } from 'zod';
import { quote } from './redact.js';

/** The limits of request fields; the body itself is capped at LIMITS.bodyBytes. */
export const LIMITS = {
  bodyBytes: 1024 * 1024,
  /** Source, repository and target: a registered name or a URL. */
  url: 2048,
  /** Registered names and schedule names (the registries allow 63). */
  name: 63,
  /** Backup ids (core/ids: 128). */
  id: 128,
  /** A collection name or pattern (PostgreSQL: schema.table, 63 bytes each, quoted). */
  collection: 512,
  /** include / exclude / backups / renames entries. */
  items: 10_000,
  /** cron expressions, time zones, durations, id patterns. */
  text: 256,
} as const;

const str = (max: number) => z.string().min(1).max(max);
const location = str(LIMITS.url);
const names = z.array(str(LIMITS.collection)).min(1).max(LIMITS.items);
const selection = {
  include: names.optional(),
  exclude: names.optional(),
};
const noBoth = (v: { include?: string[] | undefined; exclude?: string[] | undefined }): boolean => !(v.include && v.exclude);
const noBothMessage = { message: 'give "include" or "exclude", not both' };

/**
 * A JSON object of old → new names as a list of pairs. Not z.record: it builds a plain object,
 * where a key "__proto__" is silently lost; here every key, "__proto__", "constructor" and
 * "prototype" included, is an ordinary name (they are valid table names).
 */
const renames = z.preprocess(
  (v) => (v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.entries(v as Record<string, unknown>) : v),
  z.array(z.tuple([str(LIMITS.collection), str(LIMITS.collection)]), { error: 'expected an object of "old name": "new name"' }).max(LIMITS.items),
);

export const CreateBackupBody = z
  .object({
    source: location,
    /** Absent: the server's default repository (BACKUP_* variables). */
    repository: location.optional(),
    id: str(LIMITS.id).optional(),
    ...selection,
    config: z
      .object({
        compression: z.enum(['zstd', 'gzip', 'none']).optional(),
        level: z.enum(['fastest', 'default', 'best']).optional(),
        jobs: z.number().int().min(1).max(64).optional(),
        /** A share of the machine's cores, 1–80 %: an alternative to jobs. */
        cpuPercentage: z.number().int().min(1).max(80).optional(),
        /** Target pack size in MiB (default: the repository's). */
        packSizeMiB: z.number().int().min(1).max(1024).optional(),
      })
      .strict()
      .refine((c) => !(c.jobs !== undefined && c.cpuPercentage !== undefined), { message: 'give "jobs" or "cpuPercentage", not both' })
      .optional(),
  })
  .strict()
  .refine(noBoth, noBothMessage);
export type CreateBackupBody = z.infer<typeof CreateBackupBody>;

export const CreateRestoreBody = z
  .object({
    backup: str(LIMITS.id),
    repository: location.optional(),
    target: location,
    ...selection,
    renames: renames.optional(),
    onConflict: z.enum(['fail', 'overwrite']).optional(),
    roles: z.boolean().optional(),
    jobs: z.number().int().min(1).max(64).optional(),
  })
  .strict()
  .refine(noBoth, noBothMessage);
export type CreateRestoreBody = z.infer<typeof CreateRestoreBody>;

export const CreateCopyBody = z.object({ backup: str(LIMITS.id), from: location, to: location }).strict();
export const CreateVerifyBody = z
  .object({ repository: location.optional(), backups: z.array(str(LIMITS.id)).max(LIMITS.items).optional(), readData: z.boolean().optional() })
  .strict();
/** graceSeconds: unreferenced packs younger than this are kept (default 3600; see docs/reliability.md). */
export const CreatePruneBody = z
  .object({ repository: location.optional(), dryRun: z.boolean().optional(), graceSeconds: z.number().int().nonnegative().max(10 * 365 * 86400).optional() })
  .strict();

const count = z.number().int().min(1).max(100_000);
const text = str(LIMITS.text);
export const CreateScheduleBody = z
  .object({
    name: str(LIMITS.name),
    source: location,
    /** Absent: the server's default repository ("default"). */
    repository: location.optional(),
    cron: text,
    timezone: text.optional(),
    ...selection,
    pattern: text.optional(),
    keepLast: count.optional(),
    keepWithin: text.optional(),
    keepHourly: count.optional(),
    keepDaily: count.optional(),
    keepWeekly: count.optional(),
    keepMonthly: count.optional(),
    keepYearly: count.optional(),
    expires: text.optional(),
    disabled: z.boolean().optional(),
  })
  .strict()
  .refine(noBoth, noBothMessage);

export const RegisterBody = z.object({ name: str(LIMITS.name), url: location }).strict();

/** One line per problem: `field: message`; field names and keys quoted short, at most 10 problems. */
export function describeZodError(error: z.ZodError): string {
  const issues = error.issues.slice(0, 10).map((i) => {
    const at = i.path.length ? i.path.map((p) => (typeof p === 'string' && !/^[A-Za-z0-9_]{1,64}$/.test(p) ? quote(p, 32) : String(p))).join('.') : 'body';
    if (i.code === 'unrecognized_keys') {
      const keys = i.keys.slice(0, 5).map((k) => quote(k, 32));
      return `${at}: unknown field${i.keys.length > 1 ? 's' : ''} ${keys.join(', ')}${i.keys.length > 5 ? ` and ${i.keys.length - 5} more` : ''}`;
    }
    return `${at}: ${i.message.length > 200 ? `${i.message.slice(0, 200)}…` : i.message}`;
  });
  return issues.join('; ') + (error.issues.length > 10 ? `; and ${error.issues.length - 10} more problems` : '');
}
