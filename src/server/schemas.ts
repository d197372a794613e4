/** Request bodies of the REST API (zod, strict: unknown fields are refused with their names). */
import { z } from 'zod';

const names = z.array(z.string().min(1)).min(1);
const selection = {
  include: names.optional(),
  exclude: names.optional(),
};
const noBoth = (v: { include?: string[] | undefined; exclude?: string[] | undefined }): boolean => !(v.include && v.exclude);
const noBothMessage = { message: 'give "include" or "exclude", not both' };

export const CreateBackupBody = z
  .object({
    source: z.string().min(1),
    repository: z.string().min(1),
    id: z.string().min(1).optional(),
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
    backup: z.string().min(1),
    repository: z.string().min(1),
    target: z.string().min(1),
    ...selection,
    renames: z.record(z.string().min(1), z.string().min(1)).optional(),
    onConflict: z.enum(['fail', 'overwrite']).optional(),
    roles: z.boolean().optional(),
    jobs: z.number().int().min(1).max(64).optional(),
  })
  .strict()
  .refine(noBoth, noBothMessage);
export type CreateRestoreBody = z.infer<typeof CreateRestoreBody>;

export const CreateCopyBody = z.object({ backup: z.string().min(1), from: z.string().min(1), to: z.string().min(1) }).strict();
export const CreateVerifyBody = z
  .object({ repository: z.string().min(1), backups: z.array(z.string().min(1)).optional(), readData: z.boolean().optional() })
  .strict();
/** graceSeconds: unreferenced packs younger than this are kept (default 3600; see docs/reliability.md). */
export const CreatePruneBody = z.object({ repository: z.string().min(1), dryRun: z.boolean().optional(), graceSeconds: z.number().int().nonnegative().optional() }).strict();

const count = z.number().int().min(1).max(100_000);
export const CreateScheduleBody = z
  .object({
    name: z.string().min(1),
    source: z.string().min(1),
    repository: z.string().min(1),
    cron: z.string().min(1),
    timezone: z.string().min(1).optional(),
    ...selection,
    pattern: z.string().min(1).optional(),
    keepLast: count.optional(),
    keepWithin: z.string().min(1).optional(),
    keepHourly: count.optional(),
    keepDaily: count.optional(),
    keepWeekly: count.optional(),
    keepMonthly: count.optional(),
    keepYearly: count.optional(),
    expires: z.string().min(1).optional(),
    disabled: z.boolean().optional(),
  })
  .strict()
  .refine(noBoth, noBothMessage);

export const RegisterBody = z.object({ name: z.string().min(1), url: z.string().min(1) }).strict();

/** One line per problem: `field: message`. */
export function describeZodError(error: z.ZodError): string {
  return error.issues
    .map((i) => {
      const at = i.path.length ? i.path.join('.') : 'body';
      if (i.code === 'unrecognized_keys') return `${at}: unknown field${i.keys.length > 1 ? 's' : ''} ${i.keys.map((k) => `"${k}"`).join(', ')}`;
      return `${at}: ${i.message}`;
    })
    .join('; ');
}
