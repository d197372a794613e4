/**
 * The documents a repository holds (config, backup manifests, indexes, locks), as zod schemas:
 * everything read back from storage is validated, so a damaged or foreign object fails with a
 * clear message instead of deep inside a restore. docs/repository-format.md describes them.
 */
import { z } from 'zod';

export const FORMAT_VERSION = 1;

const hexId = z.string().regex(/^[0-9a-f]{64}$/, 'expected a 64-character hex id');
const isoTime = z.iso.datetime({ offset: false, precision: 3 });
const count = z.number().int().nonnegative();

export const CompressionAlgorithmSchema = z.enum(['zstd', 'gzip', 'none']);
export type CompressionAlgorithm = z.infer<typeof CompressionAlgorithmSchema>;
export const CompressionLevelSchema = z.enum(['fastest', 'default', 'best']);
export type CompressionLevel = z.infer<typeof CompressionLevelSchema>;

export const CompressionSettingsSchema = z.object({
  algorithm: CompressionAlgorithmSchema,
  level: CompressionLevelSchema,
});
export type CompressionSettings = z.infer<typeof CompressionSettingsSchema>;

/**
 * Encryption is part of the config from v1 so that an encrypted repository needs no new layout:
 * "none" today; "aes-256-gcm" will add a KDF description and a wrapped master key here.
 */
export const EncryptionSettingsSchema = z.object({ algorithm: z.literal('none') });

export const RepositoryConfigSchema = z.object({
  formatVersion: z.literal(FORMAT_VERSION),
  id: z.string().regex(/^[0-9a-f]{32}$/),
  createdAt: isoTime,
  hash: z.literal('sha256'),
  chunker: z.object({
    algorithm: z.literal('fastcdc-2020'),
    minSize: count,
    avgSize: count,
    maxSize: count,
  }),
  compression: CompressionSettingsSchema,
  packSize: z.number().int().min(1024 * 1024),
  encryption: EncryptionSettingsSchema,
});
export type RepositoryConfig = z.infer<typeof RepositoryConfigSchema>;

export const CollectionEntrySchema = z.object({
  /** The name users write in --include/--exclude/--rename. */
  name: z.string().min(1),
  kind: z.string().min(1),
  /** Source-specific definition (DDL, columns): enough to recreate, rename and compare it. */
  definition: z.record(z.string(), z.unknown()),
  /** How the data stream is encoded, e.g. "rows-v1"; absent for collections without data. */
  dataFormat: z.string().optional(),
  /** false for database-wide collections (e.g. a schema archive) that include/exclude never drop. */
  selectable: z.boolean().optional(),
  rowCount: count,
  logicalBytes: count,
  storedBytes: count,
  newBytes: count,
  chunks: z.array(hexId),
  /**
   * Chunks per segment, when the data was read as several streams in parallel (a large table in
   * ranges): `chunks` is their concatenation and each segment is a complete stream of its own.
   */
  segments: z.array(count).min(2).optional(),
  /**
   * Set by `cairn repair` when some of this collection's chunks were lost (their pack missing or
   * damaged): prune then keeps what is left instead of refusing to run, and verify and restore
   * name the collection. A later backup that uploads the same chunks again heals it.
   */
  damage: z.object({ missingChunks: count, detectedAt: isoTime }).optional(),
}).refine((e) => e.segments === undefined || e.segments.reduce((a, b) => a + b, 0) === e.chunks.length, {
  message: 'segments must add up to the number of chunks',
  path: ['segments'],
});
export type CollectionEntry = z.infer<typeof CollectionEntrySchema>;

export const BackupTypeSchema = z.enum(['manual', 'scheduled']);
export type BackupType = z.infer<typeof BackupTypeSchema>;

export const ScopeSchema = z.object({
  include: z.array(z.string()).optional(),
  exclude: z.array(z.string()).optional(),
});
export type Scope = z.infer<typeof ScopeSchema>;

export const TotalsSchema = z.object({
  collections: count,
  rows: count,
  logicalBytes: count,
  storedBytes: count,
  newBytes: count,
  reusedBytes: count,
  chunks: count,
  newChunks: count,
});
export type Totals = z.infer<typeof TotalsSchema>;

export const BackupManifestSchema = z.object({
  formatVersion: z.literal(FORMAT_VERSION),
  id: z.string(),
  /** When the consistent snapshot was taken: the moment the backup represents. */
  createdAt: isoTime,
  completedAt: isoTime,
  type: BackupTypeSchema,
  /** The schedule that made it (scheduled backups): its retention rules apply to it. */
  schedule: z.string().optional(),
  /** The id of the schedule that made it: retention touches only backups carrying its own id. */
  scheduleId: z.string().optional(),
  expiresAt: isoTime.nullable(),
  source: z.object({
    kind: z.string(),
    name: z.string(),
    /** Connection location with any secret removed. */
    location: z.string(),
    serverVersion: z.string(),
  }),
  scope: ScopeSchema,
  compression: CompressionSettingsSchema,
  collections: z.array(CollectionEntrySchema),
  totals: TotalsSchema,
  warnings: z.array(z.string()),
});
export type BackupManifest = z.infer<typeof BackupManifestSchema>;

export const BlobTypeSchema = z.enum(['data']);

export const IndexEntrySchema = z.object({
  id: hexId,
  offset: count,
  length: count,
  rawLength: count,
  compression: CompressionAlgorithmSchema,
});
export type IndexEntry = z.infer<typeof IndexEntrySchema>;

export const IndexDocumentSchema = z.object({
  formatVersion: z.literal(FORMAT_VERSION),
  /** Index objects this one replaces (written by prune); readers ignore the superseded ones. */
  supersedes: z.array(hexId),
  packs: z.array(z.object({ id: hexId, length: count, blobs: z.array(IndexEntrySchema) })),
});
export type IndexDocument = z.infer<typeof IndexDocumentSchema>;

/**
 * A repository lock (locks/<lockId>). The process fields after `pid` arrived with lock format 2;
 * locks written before lack them and are then never judged dead by proof, only by storage age.
 * `createdAt`/`refreshedAt` are the holder's clock, for people: staleness never reads them.
 */
export const LockDocumentSchema = z.object({
  exclusive: z.boolean(),
  operation: z.string(),
  hostname: z.string(),
  pid: z.number().int(),
  createdAt: isoTime,
  refreshedAt: isoTime,
  /** Random, the same for the lock's whole life; also the last part of its key. */
  lockId: z.string().optional(),
  /** /proc/<pid>/stat field 22 (clock ticks from boot to the process start), decimal. */
  processStart: z.string().regex(/^\d+$/).optional(),
  /** /proc/sys/kernel/random/boot_id of the holder's kernel. */
  bootId: z.string().optional(),
  /** readlink /proc/self/ns/pid of the holder, e.g. "pid:[4026531836]". */
  pidNamespace: z.string().optional(),
});
export type LockDocument = z.infer<typeof LockDocumentSchema>;
