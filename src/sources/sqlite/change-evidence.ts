/**
 * Change evidence of a SQLite database file, for schedules with --when-unchanged skip: a digest
 * of what every committed write transaction alters on disk. Rollback-journal mode: the header's
 * file change counter (bytes 24–27, incremented by every commit), its page count, the file's
 * size, mtime and inode (not ctime: opening the database, even read-only, touches it). WAL
 * mode: besides the main file, the -wal file's header (checkpoint
 * sequence and salts, renewed whenever the log restarts), size and mtime, and the wal-index
 * header in -shm (its change counter, last valid frame and checksums move with every commit;
 * not the file's times, which readers' marks move).
 * Equal digests of two moments mean no commit in between; a checkpoint, VACUUM or a copied
 * file reads as a change (a backup is made, which is only wasteful, never wrong).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';

/** Bytes of the database header: file change counter (24–27), page count (28–31) and version-valid-for (92–95). */
const HEADER_BYTES = 100;
/** The WAL header (32 bytes) and the first wal-index header of -shm (48 bytes). */
const WAL_HEADER_BYTES = 32;
const SHM_HEADER_BYTES = 48;

/**
 * The digest of `file`'s state now ("sqlite1:<sha256 hex>"). Call it before the snapshot's read
 * transaction starts, so that a commit in between makes the next comparison differ.
 */
export function sqliteChangeEvidence(file: string): string {
  const h = createHash('sha256');
  // `withStat`: readers write their read marks into -shm (its mtime moves on every read), so
  // only its header, which only commits and checkpoints change, counts.
  const part = (label: string, path: string, bytes: number, withStat = true): void => {
    let fd: number;
    try {
      fd = fs.openSync(path, 'r');
    } catch {
      h.update(`${label}:absent;`);
      return;
    }
    try {
      const st = fs.fstatSync(fd, { bigint: true });
      const head = Buffer.alloc(bytes);
      const n = fs.readSync(fd, head, 0, bytes, 0);
      h.update(withStat ? `${label}:${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:` : `${label}:`);
      h.update(head.subarray(0, n));
      h.update(';');
    } finally {
      fs.closeSync(fd);
    }
  };
  part('main', file, HEADER_BYTES);
  // An empty -wal holds no frame: every committed page is in the main file, whose header, size
  // and mtime count. An empty log and its -shm read as absent, so that the files a reader
  // (cairn's own backup among them) creates when it opens a WAL database are no change.
  if (walHoldsFrames(`${file}-wal`)) {
    part('wal', `${file}-wal`, WAL_HEADER_BYTES);
    part('shm', `${file}-shm`, SHM_HEADER_BYTES, false);
  } else h.update('wal:empty;');
  return `sqlite1:${h.digest('hex')}`;
}

/** Whether a -wal file exists with more than nothing in it (a header means frames may follow). */
function walHoldsFrames(path: string): boolean {
  try {
    return fs.statSync(path).size > 0;
  } catch {
    return false;
  }
}
