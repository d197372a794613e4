/**
 * The REST API's schemas (zod), named by the route table (routes/table.ts): request bodies
 * (strict: unknown fields are refused with their names) and answers. Every exported schema is a
 * component of /openapi.json under its export name, and the SDK's types are inferred from them.
 * Every string, array and map of a request has a limit (LIMITS), so a hostile body costs little
 * to refuse, and errors quote at most a short prefix of what was sent.
 */
import { z } from 'zod';
import type { AuditEntry as CatalogAuditEntry } from '../catalog/audit.js';
import type { Registration as CatalogRegistration } from '../catalog/registry.js';
import { RUN_STATUSES, type ScheduleRun as CatalogScheduleRun, type ScheduleSpec } from '../catalog/schedules.js';
import { ROLES, type TokenInfo as CatalogTokenInfo } from '../catalog/tokens.js';
import { JOB_STATES, type JobRecord } from '../catalog/types.js';
import type { ServerRecord } from '../jobs/ports.js';
import { BackupManifestSchema, BackupTypeSchema, CollectionEntrySchema } from '../core/schemas.js';
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
  // Typed as what clients send (the SDK's type); at run time anything, checked by the array below.
  (sent: Record<string, string>) => {
    const v: unknown = sent;
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.entries(v) : v;
  },
  z.array(z.tuple([str(LIMITS.collection), str(LIMITS.collection)]), { error: 'expected an object of "old name": "new name"' }).max(LIMITS.items),
);

/**
 * How /openapi.json shows schemas JSON Schema cannot derive: `renames` is parsed into pairs but
 * sent as an object.
 */
export const DOCUMENTED_AS = new Map<z.core.$ZodType, Record<string, unknown>>([
  [renames, { type: 'object', additionalProperties: { type: 'string', minLength: 1, maxLength: LIMITS.collection }, maxProperties: LIMITS.items, description: '"old name": "new name"' }],
]);

export const CreateBackupBody = z
  .object({
    source: location,
    /** Absent: the server's default repository (BACKUP_* variables). */
    repository: location.optional(),
    id: str(LIMITS.id).optional(),
    ...selection,
    /** When it expires: a duration from now (30d, 6mo), a date (2027-01-31) or never (the default). */
    expires: str(LIMITS.text).optional(),
    /** Also record the roles and memberships (PostgreSQL) or the users and grants of the database (MySQL/MariaDB); no password hashes. */
    roles: z.boolean().optional(),
    /** With roles: include password hashes (an admin token only). */
    rolesWithPasswords: z.boolean().optional(),
    /**
     * How long to wait for each table lock (PostgreSQL lock_timeout), the global read lock and
     * metadata locks (MySQL/MariaDB lock_wait_timeout) or the file's lock (SQLite busy timeout), in
     * seconds, before the job fails (error SOURCE). Default 30 (PostgreSQL, MySQL), 5 (SQLite).
     */
    lockTimeoutSeconds: z.number().int().min(1).max(86_400).optional(),
    /**
     * MySQL/MariaDB: hold the global read lock until the non-transactional tables (MyISAM, Aria)
     * have been read, so they are consistent with the rest (writes wait meanwhile). Default: read
     * them after the lock, with a warning naming them. Other engines have no such tables.
     */
    lockNonTransactional: z.boolean().optional(),
    /** Fail (error SOURCE, nothing committed) when the source gives warnings, instead of keeping the backup with them. */
    strict: z.boolean().optional(),
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
  .refine(noBoth, noBothMessage)
  .refine((b) => !b.rolesWithPasswords || b.roles === true, { message: 'rolesWithPasswords goes with "roles": true' });
export type CreateBackupBody = z.infer<typeof CreateBackupBody>;

export const CreateRestoreBody = z
  .object({
    backup: str(LIMITS.id),
    repository: location.optional(),
    target: location,
    ...selection,
    renames: renames.optional(),
    onConflict: z.enum(['fail', 'overwrite', 'replace']).optional(),
    /** onConflict "replace": other sessions/processes using the target at the switch (default refuse). */
    sessions: z.enum(['refuse', 'wait', 'terminate']).optional(),
    /** sessions "wait": the longest wait, in seconds (default 300). */
    sessionsTimeoutSeconds: z.number().int().min(1).max(7 * 86400).optional(),
    roles: z.boolean().optional(),
    /** PostgreSQL: objects belong to the restoring role, not their recorded owners (pg_restore --no-owner). */
    noOwner: z.boolean().optional(),
    /** PostgreSQL: grants and default privileges are left out (pg_restore --no-privileges). */
    noPrivileges: z.boolean().optional(),
    jobs: z.number().int().min(1).max(64).optional(),
    /** A share of the machine's cores, 1–80 %: an alternative to jobs (as on a backup). */
    cpuPercentage: z.number().int().min(1).max(80).optional(),
    dryRun: z.boolean().optional().describe('true: check only (the backup, the selection, the policy, conflicts in the target), write nothing, start no job: answers 200 RestorePlan'),
  })
  .strict()
  .refine(noBoth, noBothMessage)
  .refine((r) => !(r.jobs !== undefined && r.cpuPercentage !== undefined), { message: 'give "jobs" or "cpuPercentage", not both' });
export type CreateRestoreBody = z.infer<typeof CreateRestoreBody>;

export const CreateCopyBody = z.object({ backup: str(LIMITS.id), from: location, to: location }).strict();
/** Every backup of `from` that `to` lacks (optionally only one source's: its name or location as listed). */
export const CreateSyncBody = z.object({ from: location, to: location, source: str(LIMITS.url).optional() }).strict();
/**
 * POST /v1/exports: backups of one repository into one .cairn archive kept in the server's data
 * folder (GET /v1/exports/{jobId}/file downloads it); `backups` or `all`, and optionally a
 * recompression.
 */
export const CreateExportBody = z
  .object({
    repository: location.optional(),
    backups: z.array(str(LIMITS.id)).min(1).max(LIMITS.items).optional(),
    all: z.boolean().optional(),
    compression: z.enum(['zstd', 'gzip', 'none']).optional(),
    level: z.enum(['fastest', 'default', 'best']).optional(),
  })
  .strict()
  .refine((v) => (v.backups !== undefined) !== Boolean(v.all), { message: 'give backups (a list of ids) or all: true, one of the two' })
  .refine((v) => v.level === undefined || v.compression !== undefined, { message: 'level goes with compression' });
/** POST /v1/imports: the archive is the request body; these say where it goes. */
export const ImportQuery = z.object({
  repository: str(LIMITS.url).optional().describe('a registered name, or "default" (also when left out); a URL only with --allow-urls'),
  as: str(LIMITS.id).optional().describe('the id the backup gets (an archive of one backup), for one whose id the repository holds already'),
});
/** PATCH /v1/backups/{id}: a duration from now (30d), a date (2027-01-31 or an ISO time) or "never". */
export const PatchBackupBody = z.object({ expires: str(LIMITS.text) }).strict();
export const CreateVerifyBody = z
  .object({ repository: location.optional(), backups: z.array(str(LIMITS.id)).max(LIMITS.items).optional(), readData: z.boolean().optional() })
  .strict();
/** graceSeconds: unreferenced packs younger than this are kept (default 3600; see docs/reliability.md). */
export const CreatePruneBody = z
  .object({ repository: location.optional(), dryRun: z.boolean().optional(), graceSeconds: z.number().int().nonnegative().max(10 * 365 * 86400).optional() })
  .strict();
/** cairn repair: rebuild the index from the packs present, salvage intact blobs, record what backups lost. */
export const CreateRepairBody = z.object({ repository: location.optional(), dryRun: z.boolean().optional() }).strict();
/** cairn backup expire: delete every backup whose expiry has passed (dryRun: only list them). */
export const ExpireBody = z.object({ repository: location.optional(), dryRun: z.boolean().optional() }).strict();

const count = z.number().int().min(1).max(100_000);
const text = str(LIMITS.text);
/** A schedule's keep* rules as a request gives them (keepWithin a duration, e.g. "7d"); none required. */
const retentionRules = {
  keepLast: count.optional(),
  keepWithin: text.optional(),
  keepHourly: count.optional(),
  keepDaily: count.optional(),
  keepWeekly: count.optional(),
  keepMonthly: count.optional(),
  keepYearly: count.optional(),
};
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
    ...retentionRules,
    expires: text.optional(),
    /** A second repository (registered name; a URL with --allow-urls): each run's backups are copied there. */
    copyTo: location.optional(),
    whenUnchanged: z.enum(['backup', 'skip']).optional().describe('skip: no backup while the source has not changed since the schedule\'s last backup (default backup)'),
    disabled: z.boolean().optional(),
  })
  .strict()
  .refine(noBoth, noBothMessage);

/**
 * PATCH /v1/schedules/{name}: only the fields given change, checked as when adding. null clears
 * an optional field (a retention rule, expires, copyTo, the selection); include or exclude given
 * replaces the selection (the other is dropped). Enabling and disabling have their own routes.
 */
export const UpdateScheduleBody = z
  .object({
    source: location.optional(),
    repository: location.optional(),
    cron: text.optional(),
    timezone: text.optional(),
    include: names.nullable().optional(),
    exclude: names.nullable().optional(),
    pattern: text.optional(),
    keepLast: count.nullable().optional(),
    keepWithin: text.nullable().optional(),
    keepHourly: count.nullable().optional(),
    keepDaily: count.nullable().optional(),
    keepWeekly: count.nullable().optional(),
    keepMonthly: count.nullable().optional(),
    keepYearly: count.nullable().optional(),
    expires: text.nullable().optional(),
    copyTo: location.nullable().optional(),
    whenUnchanged: z.enum(['backup', 'skip']).optional(),
  })
  .strict()
  .refine((v) => !(v.include && v.exclude), noBothMessage)
  .refine((v) => Object.keys(v).length > 0, { message: 'give at least one field to change' });

export const RegisterBody = z.object({ name: str(LIMITS.name), url: location }).strict();

/**
 * POST /v1/repositories: a name and URL, and for an encrypted repository where the server reads
 * its password (one of the two; admin only, as registration is). Kept in the catalog as given,
 * never answered back; the password itself is read at each open and never stored.
 */
export const RegisterRepositoryBody = RegisterBody.extend({
  passwordFile: str(LIMITS.url).optional().describe("an encrypted repository's password: the first line of this file on the server"),
  passwordCommand: str(LIMITS.url).optional().describe("an encrypted repository's password: the first line this command (sh -c, on the server) prints"),
})
  .strict()
  .refine((v) => !(v.passwordFile !== undefined && v.passwordCommand !== undefined), { message: 'give passwordFile or passwordCommand, not both' });

/** POST /v1/tokens: a role and a label (the label is free text, shown in listings). */
export const CreateTokenBody = z
  .object({
    role: z.enum(ROLES, { error: (i) => `unknown role ${quote(String(i.input))}, use one of ${ROLES.join(', ')}` }),
    name: z.string().max(LIMITS.name).optional().describe('a label to recognise it by (default empty)'),
    sources: z.array(z.string().max(LIMITS.name)).max(100).optional().describe('scope: only these registered sources (as sources and restore targets); not for admin tokens'),
    repositories: z.array(z.string().max(LIMITS.name)).max(100).optional().describe('scope: only these registered repositories ("default": the BACKUP_* one); not for admin tokens'),
  })
  .strict();

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

/*
 * Answers of the REST API. Not used to check what the server sends (handlers build plain
 * objects); they document it in /openapi.json, give the SDK its types, and the API tests
 * parse real answers with them, so a field added, renamed or dropped fails a test.
 */
const when = z.string().describe('ISO 8601 time, UTC');

/** Every error answer: a stable code (docs/api.md) and a message that says what to do. */
export const ErrorAnswer = z.object({ error: z.object({ code: z.string(), message: z.string() }) });

export const JOB_KINDS = ['backup', 'restore', 'copy', 'sync', 'verify', 'prune', 'repair', 'export', 'import', 'drill'] as const satisfies readonly JobRecord['kind'][];
export const JobKind = z.enum(JOB_KINDS);
export const JobState = z.enum(JOB_STATES);
/** A job record as answered (catalog/types JobRecord; its error message redacted). */
export const Job = z.object({
  id: z.string(),
  kind: JobKind,
  state: JobState,
  /** What "one active job per key" is about, e.g. a backup's source location. */
  key: z.string().nullable(),
  params: z.record(z.string(), z.unknown()).describe('the request, locations only, never secrets'),
  progress: z.object({
    bytes: z.number(),
    bytesTotal: z.number().optional().describe('exact for restores and copies; estimated for backups (see estimated)'),
    rowsTotal: z.number().optional().describe('backups: rows expected, from the source catalog'),
    percent: z.number().optional().describe('share done, 0–100, never above 100 and never going back'),
    estimated: z.boolean().optional().describe('bytesTotal, rowsTotal and percent are estimates ("about")'),
    rows: z.number(),
    collectionsDone: z.number(),
    collectionsTotal: z.number(),
    throughput: z.number().describe('bytes per second'),
    rowsPerSecond: z.number().optional().describe('rows per second over the job so far'),
    etaSeconds: z.number().optional(),
    collection: z.string().optional(),
    stalledSince: z.string().optional().describe('no progress since this time (ISO), for longer than the server\'s --stuck-after; cleared when it moves'),
  }),
  result: z.record(z.string(), z.unknown()).nullable().describe("the job's outcome once it succeeded, e.g. { backupId, totals }"),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
  createdAt: when,
  updatedAt: when,
  finishedAt: when.nullable(),
  server: z.string().optional().describe('the server that runs or ran it: its id, as GET /v1/servers lists the replicas of a shared catalog'),
});
export type Job = z.infer<typeof Job>;
// The answer's schema and the catalog's record must not drift apart (either way).
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const _jobMatches: Same<Job, JobRecord> = true;

export const JobAnswer = z.object({ job: Job });
export const JobList = z.object({
  jobs: z.array(Job).describe('newest first'),
  total: z.number().describe('jobs matching kind and state, before limit and offset'),
  limit: z.number(),
  offset: z.number(),
});

/** POST /v1/restores {dryRun: true}: what a restore would write, and what is in its way (jobs/restore-plan.ts). */
export const RestorePlan = z.object({
  dryRun: z.literal(true),
  ok: z.boolean().describe('false exactly when conflicts is not empty'),
  backupId: z.string(),
  target: z.string().describe("the target's location"),
  onConflict: z.enum(['fail', 'overwrite', 'replace']),
  collections: z
    .array(z.object({ name: z.string(), targetName: z.string().describe('the name it gets in the target (renames applied)'), kind: z.string(), rows: z.number(), logicalBytes: z.number() }))
    .describe('the collections a restore would write (not the entries every restore carries, such as PostgreSQL\'s schema archive)'),
  conflicts: z.array(z.object({ name: z.string().describe('the collection (as restored) it is about, else the target'), message: z.string() })),
  message: z.string(),
});
export type RestorePlan = z.infer<typeof RestorePlan>;

/** A complete backup in a listing (a summary of its manifest, cached by the server). */
export const BackupListed = z.object({
  id: z.string(),
  status: z.literal('SUCCESS'),
  type: BackupTypeSchema,
  source: BackupManifestSchema.shape.source,
  schedule: z.string().nullable().describe('the schedule that made it; null for a manual backup'),
  createdAt: when,
  completedAt: when,
  durationMs: z.number().describe('completedAt − createdAt'),
  expiresAt: when.nullable(),
  size: z.object({ logicalBytes: z.number(), storedBytes: z.number(), newBytes: z.number() }),
  collections: z.number(),
  rows: z.number(),
  repository: z.string().describe("the repository's location"),
});
/** A backup that is not (yet) in the repository: a job running, failed or cancelled. */
export const BackupUnfinished = z.object({
  id: z.string().nullable().describe('null when the job was started without an id'),
  status: JobState.exclude(['SUCCESS']),
  jobId: z.string(),
  source: z.object({ location: z.string() }),
  createdAt: when,
  finishedAt: when.nullable(),
  error: Job.shape.error,
});
export const BackupList = z.object({
  repository: z.string(),
  backups: z.array(z.union([BackupListed, BackupUnfinished])),
  damaged: z.array(z.object({ id: z.string(), message: z.string() })).describe('objects under backups/ that cannot be read or are not backups'),
  unchecksummed: z.array(z.string()).describe('manifests written before repository format 2'),
  total: z.number().describe('how many backups pass the filters (before offset and limit)'),
  offset: z.number(),
  limit: z.number().nullable().describe('null: no limit was given (every backup)'),
});
export type BackupListed = z.infer<typeof BackupListed>;
export type BackupUnfinished = z.infer<typeof BackupUnfinished>;

const { chunks: _chunks, segments: _segments, definition: _definition, ...collectionShown } = CollectionEntrySchema.shape;
/** A backup's manifest as answered: each collection's chunk ids counted, definitions left out. */
export const BackupDetail = BackupManifestSchema.extend({ collections: z.array(z.object({ ...collectionShown, chunks: z.number().describe('how many chunks') })) });
export type BackupDetail = z.infer<typeof BackupDetail>;
export const ExpiredBackups = z.object({ repository: z.string(), dryRun: z.boolean(), expired: z.array(z.string()).describe('ids deleted, or with dryRun those that would be') });
export const BackupExpiry = z.object({ id: z.string(), repository: z.string(), expiresAt: when.nullable().describe('null: never expires') });
/** The 202 of POST /v1/backups: the job, and the id the backup will have (chosen when the job starts). */
export const BackupStarted = z.object({
  job: Job,
  backupId: z.string().describe("the backup's id; GET /v1/backups/{id} answers while it runs. A generated id that another source's backup takes meanwhile gets a suffix: the job's result.backupId is final"),
});
/** GET /v1/backups/{id} while the backup runs, or after it failed or was cancelled (from the job center). */
export const BackupInProgress = z.object({
  id: z.string(),
  status: JobState.exclude(['SUCCESS']),
  jobId: z.string(),
  source: z.object({ location: z.string() }),
  repository: z.string(),
  createdAt: when,
  finishedAt: when.nullable(),
  progress: Job.shape.progress,
  error: Job.shape.error,
});
export type BackupInProgress = z.infer<typeof BackupInProgress>;
export const BackupShown = z.union([BackupDetail, BackupInProgress]);
export const BackupDeleted = z.object({ deleted: z.string(), repository: z.string(), note: z.string() });
/** GET /v1/backups/{id}/deletion-preview: what a prune after deleting the backup would free. */
export const DeletionPreview = z.object({
  id: z.string(),
  repository: z.string(),
  uniqueChunks: z.number().describe('chunks no other backup references'),
  uniqueStoredBytes: z.number().describe('their stored (compressed) bytes, from the index'),
  sharedChunks: z.number().describe('chunks other backups reference too (kept)'),
  totalChunks: z.number().describe('distinct chunks the backup references'),
  note: z.string().describe('what the numbers do not cover'),
});
const sourceBytes = {
  logicalBytes: z.number().describe('Σ logical bytes of its backups'),
  addedBytes: z.number().describe('Σ newBytes: what each of its backups added to the repository when it was made (not what the source holds now: copies add nothing, deleting its first backup moves nothing)'),
  dedupRatio: z.number().nullable().describe('logicalBytes / addedBytes'),
};
const repositoryBytes = {
  logicalBytes: z.number().describe('Σ logical bytes of its backups'),
  storedBytes: z.number().describe('bytes of the packs under data/ as the storage lists them: what it stores now'),
  dedupRatio: z.number().nullable().describe('logicalBytes / storedBytes'),
};
/** One source (a database) in one repository, on the overview. */
export const SourceHealth = z.object({
  key: z.string().describe('the database its location names'),
  name: z.string().optional().describe('the registered source naming this database (the first of names)'),
  names: z.array(z.string()).optional().describe('every registered source naming this database, sorted'),
  location: z.string(),
  kind: z.string(),
  repository: z.string().describe('the repository name ("default" or registered)'),
  backups: z.number(),
  newest: z.object({ id: z.string(), createdAt: when, completedAt: when }).nullable(),
  ageSeconds: z.number().nullable().describe('since the newest backup completed'),
  lastResult: z
    .object({ status: z.string().describe('SUCCESS, FAILED, CANCELED or a running state'), at: when, jobId: z.string().optional(), error: z.object({ code: z.string(), message: z.string() }).optional() })
    .nullable(),
  schedules: z.array(z.object({ name: z.string(), cron: z.string(), timezone: z.string(), enabled: z.boolean(), nextRun: when.nullable(), intervalSeconds: z.number().nullable() })),
  status: z.enum(['failing', 'late', 'never', 'running', 'ok']),
  ...sourceBytes,
  history: z.array(z.object({ id: z.string(), createdAt: when, durationMs: z.number(), logicalBytes: z.number(), storedBytes: z.number(), newBytes: z.number() })).describe('the newest 30 backups, oldest first'),
});
/** GET /v1/overview. */
export const Overview = z.object({
  generatedAt: when,
  sources: z.array(SourceHealth).describe('failing, late, never, running, ok; then oldest newest backup first'),
  repositories: z.array(z.object({ name: z.string(), location: z.string(), backups: z.number(), ...repositoryBytes, error: z.object({ code: z.string(), message: z.string() }).optional() })),
});

/** A registered source or repository: its URL (which may hold a password) never leaves the server. */
export const Registration = z.object({
  kind: z.enum(['source', 'repository']),
  name: z.string(),
  location: z.string(),
  createdAt: when,
  passwordSource: z.enum(['file', 'command']).optional().describe('an encrypted repository: where the server reads its password (the path or command is never shown)'),
  rpoSeconds: z.number().optional().describe("a source's recovery point objective as set, in seconds (absent: the default from its schedules)"),
});
export type Registration = z.infer<typeof Registration>;
const _registrationMatches: Same<Registration, CatalogRegistration> = true;
export const RegisteredSource = Registration.extend({ kind: z.literal('source') });
export const RegisteredRepository = Registration.extend({ kind: z.literal('repository') });
export const SourceAdded = z.object({ source: RegisteredSource });
export const RepositoryAdded = z.object({ repository: RegisteredRepository });
export const SourceList = z.object({ sources: z.array(RegisteredSource) });
export const RepositoryList = z.object({ repositories: z.array(RegisteredRepository) });
export const SourceRemoved = z.object({
  removed: z.string(),
  deletedScheduledBackups: z.array(z.string()),
  disabledSchedules: z.array(z.string()).describe('enabled schedules that used it, disabled by force=true'),
  note: z.string(),
});
export const RepositoryRemoved = SourceRemoved.omit({ deletedScheduledBackups: true });
/** POST /v1/sources/{name}/check: a connection test of a registered source (an error is an answer, not a failure). */
export const SourceCheck = z.object({
  name: z.string(),
  kind: z.string(),
  location: z.string(),
  ok: z.boolean().describe('connected, and every tool a backup needs is there and new enough'),
  serverVersion: z.string().optional().describe("the server's version (SQLite: the library's)"),
  tools: z
    .array(z.object({ name: z.string(), version: z.string().describe('empty when missing'), ok: z.boolean(), message: z.string().optional().describe('why not, and what to install') }))
    .optional()
    .describe('PostgreSQL: pg_dump and pg_restore (a whole server: pg_dumpall too), each at least the server\'s major version'),
  error: z.object({ code: z.string(), message: z.string() }).optional().describe('why it could not connect (never a password)'),
  durationMs: z.number(),
});

const retention = z.object({
  keepLast: z.number().optional(),
  keepWithin: z.string().optional(),
  keepHourly: z.number().optional(),
  keepDaily: z.number().optional(),
  keepWeekly: z.number().optional(),
  keepMonthly: z.number().optional(),
  keepYearly: z.number().optional(),
});
/** A schedule as shown (server/public.ts): its source a registered name or a URL's location. */
export const Schedule = z.object({
  id: z.string(),
  name: z.string(),
  source: z.string(),
  repository: z.string(),
  cron: z.string(),
  timezone: z.string(),
  include: z.array(z.string()).optional(),
  exclude: z.array(z.string()).optional(),
  pattern: z.string(),
  retention,
  expires: z.string().optional(),
  copyTo: z.string().optional().describe("the second repository this schedule's backups are copied to after each run"),
  whenUnchanged: z.enum(['backup', 'skip']).optional().describe('absent: backup'),
  enabled: z.boolean(),
  createdAt: when,
  lastDue: when.nullable().optional().describe('the latest due time handled; absent in the answer that creates it'),
  nextRun: when.nullable().optional().describe('null when disabled; absent in enable/disable answers'),
  description: z.string().optional().describe('the cron in plain words, e.g. "At 03:00" (24-hour times, in the schedule\'s time zone)'),
  nextRuns: z.array(when).optional().describe('the next 5 due times, as the scheduler computes them; empty while disabled'),
});
export type Schedule = z.infer<typeof Schedule>;
const _scheduleMatches: Same<Omit<Schedule, 'lastDue' | 'nextRun' | 'description' | 'nextRuns'>, ScheduleSpec> = true;
export const ScheduleAnswer = z.object({ schedule: Schedule });
export const ScheduleList = z.object({ schedules: z.array(Schedule) });
export const ScheduleRun = z.object({
  schedule: z.string(),
  dueAt: when,
  status: z.enum(RUN_STATUSES),
  jobId: z.string().nullable(),
  at: when,
  reason: z.string().nullable().describe('why it was skipped or failed; null for started runs'),
});
export type ScheduleRun = z.infer<typeof ScheduleRun>;
const _runMatches: Same<ScheduleRun, CatalogScheduleRun> = true;
export const ScheduleDetail = z.object({ schedule: Schedule, runs: z.array(ScheduleRun).describe('newest first, at most 50') });
export const ScheduleRemoved = z.object({ removed: z.string(), note: z.string() });

/** GET /v1/cron-preview: a cron expression in a time zone, checked as a schedule's is. */
export const CronPreviewQuery = z.object({
  cron: z.string({ error: 'cron is required: five fields (minute hour day month weekday, e.g. "0 3 * * *") or @hourly, @daily, @weekly, @monthly, @yearly' }).max(LIMITS.text).describe('five fields or @hourly, @daily, @weekly, @monthly, @yearly'),
  timezone: z.string().max(LIMITS.text).optional().describe('an IANA time zone (default UTC)'),
  count: z
    .string()
    .regex(/^[1-9][0-9]?$/, { error: (i) => `count is a number from 1 to 50, not ${quote(String(i.input))}` })
    .refine((v) => Number(v) <= 50, { error: (i) => `count is a number from 1 to 50, not ${quote(String(i.input))}` })
    .optional()
    .describe('how many next runs (1–50, default 5)'),
});
/**
 * POST /v1/retention-previews: which backups rules would keep. `schedule`: that schedule's own
 * backups (in its repository unless one is given), by its own rules and zone when no keep* is
 * given; `source`: the scheduled backups of that source (manual ones are never retention
 * candidates). Nothing is deleted.
 */
export const RetentionPreviewBody = z
  .object({
    repository: location.optional(),
    source: location.optional(),
    schedule: str(LIMITS.name).optional(),
    ...retentionRules,
    timezone: text.optional().describe('the zone calendar buckets (days, weeks…) are counted in: default the schedule\'s, else UTC'),
  })
  .strict()
  .refine((v) => !(v.source !== undefined && v.schedule !== undefined), { message: 'give "source" or "schedule", not both' })
  .refine((v) => v.source !== undefined || v.schedule !== undefined, { message: 'give "source" (its scheduled backups) or "schedule" (its own backups)' });
export const RetentionPreview = z.object({
  repository: z.string(),
  timezone: z.string(),
  rules: retention.describe('the rules applied (a schedule\'s own when none were given; empty: everything is kept)'),
  keep: z.array(z.object({ id: z.string(), createdAt: when, reasons: z.array(z.string()).describe('the rules keeping it: last, within 7d, hourly, daily, weekly, monthly, yearly, or "no retention rules"') })).describe('newest first'),
  remove: z.array(z.object({ id: z.string(), createdAt: when, expired: z.literal(true).optional().describe('its expiry has passed: a run deletes it whatever the rules') })).describe('newest first'),
  note: z.string(),
});
export const CronPreview = z.object({
  cron: z.string(),
  timezone: z.string(),
  description: z.string().describe('the expression in plain words (24-hour times, in that time zone)'),
  nextRuns: z.array(when).describe('the next due times, oldest first, as the scheduler computes them'),
});

/** An API token as listed: never its secret (only a hash is stored). */
export const TokenInfo = z.object({
  id: z.string().describe('12 hex digits; the secret starts cairn_<id>_'),
  name: z.string(),
  role: z.enum(ROLES),
  createdAt: when,
  sources: z.array(z.string()).nullable().describe('scope: the sources it may name (null: every one)'),
  repositories: z.array(z.string()).nullable().describe('scope: the repositories it may name (null: every one)'),
});
export type TokenInfo = z.infer<typeof TokenInfo>;
const _tokenMatches: Same<TokenInfo, CatalogTokenInfo> = true;
export const TokenList = z.object({ tokens: z.array(TokenInfo).describe('oldest first') });
/** The answer that creates a token: the only time its secret is shown. */
export const TokenCreated = z.object({ token: TokenInfo, secret: z.string().describe('send as Authorization: Bearer <secret>; shown once, only its SHA-256 is kept') });
export const TokenRevoked = z.object({
  revoked: z.string(),
  self: z.boolean().describe('true: it was the token of this very request, which no longer works'),
  note: z.string(),
});

/** Console sessions (POST /v1/sessions, GET and DELETE /v1/session): a token traded for an HttpOnly cookie. */
export const CreateSessionBody = z.object({ token: str(LIMITS.text).describe('an API token (cairn token create); only the session cookie is kept by the browser') }).strict();
export const Session = z.object({
  role: z.enum(ROLES),
  tokenId: z.string(),
  tokenName: z.string(),
  expiresAt: when.nullable().describe('the session\'s absolute end (8 h after sign-in; 1 h without a request ends it sooner); null for a bearer token'),
  csrfToken: z.string().optional().describe('cookie sessions only: send it as X-CSRF-Token on every request other than GET and HEAD'),
});
export const SessionCreated = z.object({ session: Session });
export const SessionAnswer = z.object({ session: Session, via: z.enum(['cookie', 'bearer']) });
export const SignedOut = z.object({ signedOut: z.literal(true) });

/** GET /v1/stats: one source's share of the repository (one database, however its location was spelled). */
export const SourceStats = z.object({
  location: z.string().describe("the location of the source's newest backup"),
  locations: z.array(z.string()).describe('every location its backups recorded for this database (by the engine\'s database key), newest first'),
  kind: z.string(),
  backups: z.number(),
  newest: when.describe("completedAt of the source's newest backup"),
  logicalBytes: z.number().describe("sum of its backups' logical bytes"),
  uniqueStoredBytes: z.number().describe('stored (compressed) bytes of the chunks no other source references: at most what deleting all its backups and pruning frees'),
});
export const Stats = z.object({
  repository: z.string(),
  backups: z.number(),
  packs: z.number(),
  storedBytes: z.number().describe('bytes of the packs under data/, as the storage lists them'),
  logicalBytes: z.number().describe("sum of every backup's logical (uncompressed) bytes"),
  uniqueChunks: z.number(),
  uniqueRawBytes: z.number().describe('distinct chunks referenced, uncompressed'),
  uniqueStoredBytes: z.number().describe('distinct chunks referenced, as stored'),
  dedupRatio: z.number().nullable().describe('logicalBytes / uniqueRawBytes; null without data'),
  compressionRatio: z.number().nullable().describe('uniqueRawBytes / uniqueStoredBytes; null without data'),
  unindexedChunks: z.number().describe('referenced chunks the index lacks (cairn verify names them)'),
  sources: z.array(SourceStats).describe('newest backup first'),
  damaged: z.array(z.object({ id: z.string(), message: z.string() })).describe('manifests that cannot be read, left out of every number'),
});
export type Stats = z.infer<typeof Stats>;

export const Health = z.object({ status: z.literal('ok') });
/** GET /v1/servers: the cairn servers sharing the job catalog (times from the catalog database's clock). */
export const Server = z.object({
  id: z.string().describe('the server id (host/random, kept in its data folder): the owner of its jobs'),
  host: z.string(),
  version: z.string().describe("cairn's version"),
  url: z.string().nullable().describe('where its API listens (as it sees itself)'),
  pid: z.number(),
  startedAt: when,
  heartbeatAt: when.describe('its latest heartbeat'),
  leaseUntil: when.describe('it is taken for alive until then; its jobs are failed (INTERRUPTED) by the others after their own leases run out'),
  alive: z.boolean().describe('its lease is running (leaseUntil is in the future)'),
  stoppedAt: when.nullable().describe('set when it stopped cleanly'),
  activeJobs: z.number().describe('its jobs not yet ended'),
});
export const ServerList = z.object({ servers: z.array(Server).describe('oldest start first; with the SQLite catalog, this server only') });
const _serverMatches: Same<z.infer<typeof Server>, ServerRecord> = true;
/** /openapi.json: an OpenAPI 3.1 document (only its outline is described here). */
export const OpenApiDocument = z.looseObject({ openapi: z.literal('3.1.0'), info: z.looseObject({ title: z.string(), version: z.string() }), paths: z.record(z.string(), z.unknown()) });

/*
 * Alerts (issue 20, docs/operations.md "Notifications"): notification channels (secrets are
 * written, never answered: `secretSet` and a target of scheme and host only), rules, deliveries.
 */
const ALERT_KIND_VALUES = ['failure', 'success', 'recovery', 'rpo', 'stuck'] as const;
const secretField = (what: string) => str(LIMITS.text * 8).optional().describe(`${what}; stored in the catalog (mode 0600), never answered`);
export const CreateAlertChannelBody = z
  .object({
    name: str(LIMITS.name).describe('lowercase letters, digits, - and _'),
    type: z.enum(['webhook', 'slack', 'ntfy', 'email'], { error: (i) => `unknown channel type ${quote(String(i.input))}, use webhook, slack, ntfy or email` }),
    url: str(LIMITS.url).optional().describe('webhook: the receiver URL; slack: the incoming-webhook URL (a secret); ntfy: the server (default https://ntfy.sh)'),
    secret: secretField('webhook: the HMAC-SHA256 key of X-Cairn-Signature (16 characters or more)'),
    topic: str(64).optional().describe('ntfy: the topic'),
    token: secretField('ntfy: an access token (Authorization: Bearer)'),
    host: str(253).optional().describe('email: the SMTP server'),
    port: z.number().int().min(1).max(65535).optional().describe('email: default 465 (tls), 587 (starttls), 25 (none)'),
    security: z.enum(['tls', 'starttls', 'none']).optional().describe('email: tls (implicit), starttls (required; default) or none'),
    user: str(LIMITS.text).optional().describe('email: the SMTP user'),
    password: secretField('email: the SMTP password'),
    from: str(LIMITS.text).optional().describe('email: the sender address'),
    to: z.array(str(LIMITS.text)).min(1).max(50).optional().describe('email: the recipients'),
    ca: str(64 * 1024).optional().describe('email: PEM certificates to trust for the SMTP server (a private CA)'),
  })
  .strict();
export const AlertChannel = z.object({
  name: z.string(),
  type: z.enum(['webhook', 'slack', 'ntfy', 'email']),
  createdAt: when,
  target: z.string().describe('where it sends, without secrets: scheme and host of a URL ("/…" when it has a path), or smtp://host:port → recipients'),
  secretSet: z.boolean().describe('the channel holds a secret (HMAC key, Slack URL, ntfy token, SMTP password), which is never answered'),
  settings: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.array(z.string())])).describe('the settings that are not secret (email: host, port, security, user, from, to; ntfy: the topic\'s first characters)'),
});
export const AlertChannelList = z.object({ channels: z.array(AlertChannel) });
export const AlertChannelAnswer = z.object({ channel: AlertChannel });
export const AlertChannelRemoved = z.object({ removed: z.string(), rulesRemoved: z.number().describe('its rules, removed with it (its deliveries stay on record)') });
export const AlertDelivery = z.object({
  id: z.number(),
  channel: z.string(),
  kind: z.string().describe('the event kind (failure, success, recovery, rpo, stuck) or test'),
  title: z.string(),
  at: when.describe('when the event happened'),
  state: z.enum(['pending', 'delivered', 'failed']).describe('pending while attempts remain'),
  attempts: z.number(),
  lastError: z.string().nullable().describe('why the last attempt failed (scheme and host of the receiver, its status; never a secret)'),
  deliveredAt: when.nullable(),
});
export const AlertTestAnswer = z.object({ delivery: AlertDelivery.describe('one attempt, sent before the answer: delivered, or failed with lastError') });
export const AlertDeliveryQuery = z.object({
  state: z.enum(['pending', 'delivered', 'failed'], { error: (i) => `state is pending, delivered or failed, not ${quote(String(i.input))}` }).optional(),
  channel: z.string().max(LIMITS.name).optional(),
  limit: z.string().regex(/^[0-9]{1,4}$/, 'limit is a whole number 1-1000').optional().describe('default 100, at most 1000'),
  offset: z.string().regex(/^[0-9]{1,9}$/, 'offset is a whole number').optional(),
});
export const AlertDeliveryList = z.object({ deliveries: z.array(AlertDelivery).describe('newest first'), total: z.number().describe('how many match the filters') });
export const CreateAlertRuleBody = z
  .object({
    channel: str(LIMITS.name),
    on: z.array(z.enum(ALERT_KIND_VALUES, { error: (i) => `unknown alert kind ${quote(String(i.input))}, use ${ALERT_KIND_VALUES.join(', ')}` })).min(1).max(5).optional().describe('default ["failure"]'),
    source: str(LIMITS.url).optional().describe('only events of this source: a registered name or a location'),
    schedule: str(LIMITS.name).optional().describe('only events of this schedule'),
  })
  .strict();
export const AlertRule = z.object({
  id: z.string().describe('12 hex digits'),
  channel: z.string(),
  on: z.array(z.enum(ALERT_KIND_VALUES)),
  source: z.string().nullable(),
  schedule: z.string().nullable(),
  createdAt: when,
});
export const AlertRuleList = z.object({ rules: z.array(AlertRule).describe('oldest first; a channel without rules gets failures of anything') });
export const AlertRuleAnswer = z.object({ rule: AlertRule });
export const AlertRuleRemoved = z.object({ removed: z.string() });
// ---- Health (issue 20): recovery point objectives, GET /v1/health, stuck jobs ----

/** An objective as written: a duration (26h, 90m, 2d) or "default" (from the source's schedules). */
const rpoText = z.string().max(16).describe('a duration (30m, 26h, 2d, 1w) or "default": the objective from its schedules (the longest gap between runs + 1/12)');
/** POST /v1/sources: a name, a URL and optionally its recovery point objective. */
export const RegisterSourceBody = RegisterBody.extend({ rpo: rpoText.optional() }).strict();
/** PATCH /v1/sources/:name: its recovery point objective. */
export const PatchSourceBody = z.object({ rpo: rpoText }).strict();
/** One source on GET /v1/health: its newest good backup against its recovery point objective. */
export const SourceRpo = z.object({
  key: z.string().describe('the database its location names'),
  name: z.string().optional().describe('the registered source naming this database'),
  location: z.string(),
  lastSuccessAt: when.nullable().describe('when its newest good backup completed, in any repository listed'),
  ageSeconds: z.number().nullable().describe('since lastSuccessAt'),
  rpoSeconds: z.number().nullable().describe('its recovery point objective; null: none'),
  rpoFrom: z.enum(['set', 'schedule', 'none']).describe('set by name (--rpo), from its schedules, or none (never breached)'),
  breached: z.boolean().describe('no good backup within the objective'),
});
/** A running job that reported no progress for the server's --stuck-after. */
export const StuckJob = z.object({ id: z.string(), kind: z.string(), state: z.string(), stalledSince: when, source: z.string().optional(), schedule: z.string().optional() });
/** GET /v1/health: without a token the liveness answer; with one, the sources and stuck jobs. */
export const HealthReport = z.object({
  status: z.enum(['ok', 'degraded']).describe('degraded: a source is past its objective or a job is stuck (HTTP status is 200 either way)'),
  generatedAt: when.optional(),
  sources: z.array(SourceRpo).optional().describe('breached first, then oldest newest backup first'),
  stuckJobs: z.array(StuckJob).optional(),
});
// Restore drills (issue 20): src/jobs/drill.ts, routes/drills.ts.
/** POST /v1/drills: target is the scratch database's URL (kept in the catalog, shown as its location). */
export const CreateDrillBody = z
  .object({
    name: str(LIMITS.name),
    source: str(LIMITS.name).describe('a registered source'),
    repository: location.optional().describe('a registered repository, or "default" (also when left out)'),
    target: location.describe("the scratch database's URL: never the source nor any registered source; dropped after every run"),
    cron: text.optional().describe('five cron fields or @daily, @weekly…; left out: the drill runs on request only'),
    timezone: text.optional(),
    checks: z.array(z.string().min(1).max(10_000)).max(50).optional().describe('SQL queries whose first column of the first row must be true (true, 1, t)'),
    disabled: z.boolean().optional(),
  })
  .strict();
export const Drill = z.object({
  name: z.string(),
  source: z.string(),
  repository: z.string(),
  target: z.string().describe("the scratch database's location (never its password)"),
  cron: z.string().nullable(),
  timezone: z.string(),
  checks: z.array(z.string()),
  enabled: z.boolean(),
  createdAt: when,
  lastDue: when.nullable(),
  nextRun: when.nullable().describe('null: no cron, or disabled'),
});
export const DrillTableCount = z.object({ name: z.string(), expected: z.number().describe("the manifest's rowCount"), actual: z.number().describe('counted in the scratch copy'), ok: z.boolean() });
export const DrillCheckResult = z.object({ sql: z.string(), ok: z.boolean(), value: z.string().nullable().describe('the first column of the first row, as text'), error: z.string().optional() });
export const DrillRun = z.object({
  id: z.number(),
  drill: z.string(),
  jobId: z.string().nullable().describe('null: the due time could not start a job (error says why)'),
  trigger: z.enum(['schedule', 'manual']),
  startedAt: when,
  finishedAt: when,
  state: z.enum(['SUCCESS', 'FAILED', 'CANCELED']),
  backupId: z.string().nullable(),
  recoverySeconds: z.number().nullable().describe('restore start to the last check done: the measured recovery time'),
  rowsCompared: z.number().describe('tables whose row count was compared'),
  tables: z.array(DrillTableCount),
  checks: z.array(DrillCheckResult),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
});
export const DrillAnswer = z.object({ drill: Drill });
export const DrillList = z.object({ drills: z.array(Drill) });
export const DrillDetail = z.object({ drill: Drill, runs: z.array(DrillRun).describe('newest first, at most 20') });
export const DrillRemoved = z.object({ removed: z.string() });
/** One audit record (catalog/audit.ts): who did what, from where, with what result; never a secret. */
export const AuditEntry = z.object({
  id: z.number().describe('increasing: the order records were written'),
  at: when,
  type: z.enum(['request', 'job']),
  actorTokenId: z.string().nullable(),
  actorName: z.string().nullable().describe('the token\'s label; "scheduler" for what the server started by itself'),
  actorRole: z.string().nullable(),
  via: z.enum(['token', 'session', 'server', 'none']),
  address: z.string().nullable().describe("the caller's address (the connection's peer)"),
  method: z.string().describe('HTTP method, or JOB for a job\'s end'),
  path: z.string().describe('without the query'),
  route: z.string().nullable().describe('the route id (createBackup…), jobEnded for a job\'s end'),
  action: z.string(),
  target: z.string().nullable().describe('what it named: key=value pairs of names and locations (URLs redacted)'),
  status: z.number().nullable().describe('the HTTP status answered (null for a job)'),
  result: z.string().describe('ok, the error code of a refused request, or the job\'s final state'),
  jobId: z.string().nullable(),
});
export const AuditList = z.object({ entries: z.array(AuditEntry).describe('newest first'), total: z.number(), limit: z.number(), offset: z.number() });
const _auditMatches: Same<z.infer<typeof AuditEntry>, CatalogAuditEntry> = true;
