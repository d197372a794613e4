/**
 * The `.cairn` archive format (docs/repository-format.md, "Archives"): a ustar tar whose members
 * are repository objects, framed by a first member describing the archive and a last one
 * checksumming everything before it.
 */
import { z } from 'zod';
import { isBackupId } from '../../core/ids.js';

export const ARCHIVE_FORMAT = 'cairn-archive';
export const ARCHIVE_FORMAT_VERSION = 1;
export const ARCHIVE_HEAD = 'cairn-archive.json';
export const ARCHIVE_END = 'cairn-archive-end.json';
/** The file name extension `--repo` recognises an archive by (any file starting with ARCHIVE_HEAD's header is one too). */
export const ARCHIVE_EXTENSION = '.cairn';
/** The head and end documents are small: anything larger is refused before it is read. */
export const MAX_ARCHIVE_DOCUMENT_BYTES = 1024 * 1024;

export const ArchiveHeadSchema = z.object({
  format: z.literal(ARCHIVE_FORMAT),
  formatVersion: z.literal(ARCHIVE_FORMAT_VERSION),
  createdAt: z.string(),
  backups: z.array(z.string().refine(isBackupId, 'not a backup id')).min(1),
  encrypted: z.boolean(),
  cairnVersion: z.string(),
});
export type ArchiveHead = z.infer<typeof ArchiveHeadSchema>;

export const ArchiveEndSchema = z.object({
  /** Members before the end member (the head included). */
  members: z.number().int().min(2),
  /** Bytes of the tar stream before the end member's header. */
  bytes: z.number().int().min(0),
  /** SHA-256 (hex) of those bytes. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});
export type ArchiveEnd = z.infer<typeof ArchiveEndSchema>;

const LAYOUT: RegExp[] = [/^config$/, /^keys\/[0-9a-f]{32}$/, /^index\/[0-9a-f]{64}$/];
const PACK = /^data\/([0-9a-f]{2})\/([0-9a-f]{64})$/;

/**
 * Whether `name` is a repository object an archive may hold between its head and end members:
 * `config`, `keys/<32 hex>`, `data/<2 hex>/<pack id>` (the folder its id's first two characters),
 * `index/<64 hex>`, `backups/<backup id>`. Nothing else: no `..`, no absolute path, no other folder.
 */
export function isArchiveObject(name: string): boolean {
  if (LAYOUT.some((r) => r.test(name))) return true;
  const pack = PACK.exec(name);
  if (pack) return (pack[2] as string).startsWith(pack[1] as string);
  return name.startsWith('backups/') && isBackupId(name.slice('backups/'.length));
}
