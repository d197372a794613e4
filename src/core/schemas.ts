/**
 * The documents a repository holds (config, backup manifests, indexes, locks), as zod schemas:
 * everything read back from storage is validated, so a damaged or foreign object fails with a
 * clear message instead of deep inside a restore. docs/repository-format.md describes them.
 */
import { z } from 'zod';

/** Format of the documents (manifests, index documents): the `formatVersion` they carry. */
export const FORMAT_VERSION = 1;
/**
 * Format of a repository, in its config. 2: the config and every manifest must carry a checksum
 * (readers refuse one without); 1: manifests written before checksums are still read (and flagged).
 * Both read the same objects otherwise. New repositories are created with 2.
 */
export const REPOSITORY_FORMAT_VERSION = 2;

/*
 * Bounds on what a stored document may claim. Every field read from storage is hostile input:
 * a number must be a safe integer within what cairn could have written, a string short enough
 * to print and to use as a name, an id one of the forms cairn writes.
 */
/** Largest byte count or row count a document may claim (2^53 - 1). */
const MAX_COUNT = Number.MAX_SAFE_INTEGER;
/** Longest name (collection, source, schedule) and short text field. */
export const MAX_NAME_LENGTH = 4096;
/** Longest free text (a location, a warning). */
const MAX_TEXT_LENGTH = 16 * 1024;
/** Most list entries where a real document has few (scope lists, warnings). */
const MAX_SHORT_LIST = 100_000;

const hexId = z.string().regex(/^[0-9a-f]{64}$/, 'expected a 64-character hex id');
const isoTime = z.iso.datetime({ offset: false, precision: 3 });
const count = z.number().int().nonnegative().max(MAX_COUNT);
const name = z.string().min(1).max(MAX_NAME_LENGTH);
const text = z.string().max(MAX_TEXT_LENGTH);
/** Same pattern as validateBackupId (src/core/ids.ts). */
export const BACKUP_ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,127}$/;
const backupId = z.string().max(128).regex(BACKUP_ID_PATTERN, 'expected a backup id (1-128 of a-z, 0-9, "-", "_")');
/** Chunker bounds: the same as validateChunkerParams (src/repo/chunker.ts). */
const CHUNK_LOWER = 64;
const CHUNK_UPPER = 64 * 1024 * 1024;
/** Pack size bounds: the same as `repo init` accepts. */
export const MIN_PACK_SIZE = 1024 * 1024;
export const MAX_PACK_SIZE = 1024 * 1024 * 1024;
/**
 * Largest stored pack a document may describe (8 GiB): packs are sealed once past packSize (at
 * most 1 GiB), and copy may overshoot by one source pack; the real check is that every blob lies
 * inside its pack and the pack read back is as long as indexed.
 */
const MAX_PACK_LENGTH = 8 * 1024 * 1024 * 1024;
/** Largest raw chunk (MAX_RAW_BLOB in compression.ts). */
const MAX_RAW = CHUNK_UPPER;

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
 * Encryption is part of the config from v1 so that an encrypted repository needs no new layout.
 * "aes-256-gcm": every object but the config and the key slots (keys/) is sealed; chunk ids are
 * HMAC-SHA256 keyed (docs/repository-format.md, "Encryption"). The keys live in keys/, never here.
 */
export const EncryptionSettingsSchema = z.discriminatedUnion('algorithm', [
  z.object({ algorithm: z.literal('none') }),
  z.object({ algorithm: z.literal('aes-256-gcm'), chunkIds: z.literal('hmac-sha256') }),
]);
export type EncryptionSettings = z.infer<typeof EncryptionSettingsSchema>;

const chunkSize = z.number().int().min(CHUNK_LOWER).max(CHUNK_UPPER);

export const RepositoryConfigSchema = z.object({
  formatVersion: z.union([z.literal(1), z.literal(REPOSITORY_FORMAT_VERSION)]),
  id: z.string().regex(/^[0-9a-f]{32}$/),
  createdAt: isoTime,
  hash: z.literal('sha256'),
  // A hostile config must not make the chunker allocate without bound or loop: the same bounds
  // as `repo init` (validateChunkerParams).
  chunker: z
    .object({
      algorithm: z.literal('fastcdc-2020'),
      minSize: chunkSize,
      avgSize: chunkSize,
      maxSize: chunkSize,
    })
    .refine((c) => (c.avgSize & (c.avgSize - 1)) === 0, { message: 'avgSize must be a power of two', path: ['avgSize'] })
    .refine((c) => c.minSize < c.avgSize && c.avgSize < c.maxSize, { message: 'sizes must satisfy minSize < avgSize < maxSize' }),
  compression: CompressionSettingsSchema,
  packSize: z.number().int().min(MIN_PACK_SIZE).max(MAX_PACK_SIZE),
  encryption: EncryptionSettingsSchema,
  /** Format 2: `sha256:<hex>` over the canonical JSON of the rest, as in manifests. */
  checksum: z.string().regex(/^sha256:[0-9a-f]{64}$/).optional(),
});
export type RepositoryConfig = z.infer<typeof RepositoryConfigSchema>;

export const CollectionEntrySchema = z.object({
  /** The name users write in --include/--exclude/--rename. */
  name,
  kind: z.string().min(1).max(64),
  /**
   * Source-specific definition (DDL, columns): enough to recreate, rename and compare it. Data to
   * validate, never code to trust: each source's target checks it against its own schema.
   */
  definition: z.record(z.string().max(MAX_NAME_LENGTH), z.unknown()),
  /** How the data stream is encoded, e.g. "rows-v1"; absent for collections without data. */
  dataFormat: z.string().min(1).max(64).optional(),
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
  segments: z.array(count).min(2).max(1_000_000).optional(),
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
  include: z.array(z.string().max(MAX_NAME_LENGTH)).max(MAX_SHORT_LIST).optional(),
  exclude: z.array(z.string().max(MAX_NAME_LENGTH)).max(MAX_SHORT_LIST).optional(),
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
  /** Must also equal the name it is stored under (checked by the reader). */
  id: backupId,
  /** When the consistent snapshot was taken: the moment the backup represents. */
  createdAt: isoTime,
  completedAt: isoTime,
  type: BackupTypeSchema,
  /** The schedule that made it (scheduled backups): its retention rules apply to it. */
  schedule: name.optional(),
  /** The id of the schedule that made it: retention touches only backups carrying its own id. */
  scheduleId: name.optional(),
  expiresAt: isoTime.nullable(),
  source: z.object({
    kind: z.string().max(64),
    name: z.string().max(MAX_NAME_LENGTH),
    /** Connection location with any secret removed. */
    location: text,
    serverVersion: z.string().max(MAX_NAME_LENGTH),
    /** The source's change evidence at the snapshot (SourceSnapshot.changeEvidence): schedules with --when-unchanged skip compare it. */
    changeEvidence: z.string().max(512).optional(),
    /**
     * Where the snapshot sits in the server's change log, as the engine names it (MySQL: binlog
     * file, offset, GTID set; or why there is none): what a later log replay starts from.
     */
    position: z.record(z.string().max(64), z.string().max(4096)).optional(),
  }),
  scope: ScopeSchema,
  compression: CompressionSettingsSchema,
  collections: z.array(CollectionEntrySchema),
  totals: TotalsSchema,
  warnings: z.array(text).max(MAX_SHORT_LIST),
  /** `sha256:<hex>` over the canonical JSON of the rest (src/repo/metadata.ts); checked by readers. */
  checksum: z.string().regex(/^sha256:[0-9a-f]{64}$/).optional(),
});
export type BackupManifest = z.infer<typeof BackupManifestSchema>;

export const BlobTypeSchema = z.enum(['data']);

export const IndexEntrySchema = z.object({
  id: hexId,
  offset: z.number().int().nonnegative().max(MAX_PACK_LENGTH),
  /** Stored length: a u32 in the pack header. */
  length: z.number().int().nonnegative().max(0xffffffff),
  rawLength: z.number().int().nonnegative().max(MAX_RAW),
  compression: CompressionAlgorithmSchema,
});
export type IndexEntry = z.infer<typeof IndexEntrySchema>;

export const IndexDocumentSchema = z.object({
  formatVersion: z.literal(FORMAT_VERSION),
  /** Index objects this one replaces (written by prune); readers ignore the superseded ones. */
  supersedes: z.array(hexId),
  /**
   * 32 random hex digits, in every document written since (older ones lack it). An index is named
   * by its hash, and a superseded name stays ignored for as long as the superseding document
   * lives: without this, a backup whose new packs and index are byte-identical to ones a prune
   * removed (the same data backed up again) would write its index under that superseded name,
   * and readers would ignore it.
   */
  nonce: z.string().regex(/^[0-9a-f]{32}$/).optional(),
  packs: z.array(
    z
      .object({ id: hexId, length: z.number().int().nonnegative().max(MAX_PACK_LENGTH), blobs: z.array(IndexEntrySchema) })
      // Every blob lies inside its pack: a reader slices the pack by these numbers.
      .refine((p) => p.blobs.every((b) => b.offset + b.length <= p.length), { message: 'a blob lies beyond the end of its pack', path: ['blobs'] }),
  ),
});
export type IndexDocument = z.infer<typeof IndexDocumentSchema>;

/**
 * A repository lock (locks/<lockId>). The process fields after `pid` arrived with lock format 2;
 * locks written before lack them and are then never judged dead by proof, only by storage age.
 * `createdAt`/`refreshedAt` are the holder's clock, for people: staleness never reads them.
 */
export const LockDocumentSchema = z.object({
  exclusive: z.boolean(),
  operation: z.string().max(MAX_TEXT_LENGTH),
  hostname: z.string().max(MAX_NAME_LENGTH),
  pid: z.number().int().min(0).max(0x7fffffff),
  createdAt: isoTime,
  refreshedAt: isoTime,
  /** Random, the same for the lock's whole life; also the last part of its key. */
  lockId: z.string().max(MAX_NAME_LENGTH).optional(),
  /** /proc/<pid>/stat field 22 (clock ticks from boot to the process start), decimal. */
  processStart: z.string().max(32).regex(/^\d+$/).optional(),
  /** /proc/sys/kernel/random/boot_id of the holder's kernel. */
  bootId: z.string().max(MAX_NAME_LENGTH).optional(),
  /** readlink /proc/self/ns/pid of the holder, e.g. "pid:[4026531836]". */
  pidNamespace: z.string().max(MAX_NAME_LENGTH).optional(),
});
export type LockDocument = z.infer<typeof LockDocumentSchema>;
