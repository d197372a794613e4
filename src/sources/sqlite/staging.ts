/**
 * Staging files of SQLite restores: `.<target basename>.cairn-restore-<owner>-<8 hex>` next to
 * the target, where <owner> says which process made it (see ../owner.ts). A restore killed
 * outright (SIGKILL, power loss) cannot remove its staging file (as big as the restored data)
 * nor its -journal / -wal / -shm companions; the next restore into any file of that folder, and
 * the next backup of any file in it, remove those whose owner is provably gone. Files whose
 * owner may be alive (another machine on a shared folder, another container, an unknown name)
 * are left alone.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { OWNER_TOKEN_PATTERN, ownerIsDead, ownerToken, parseOwnerToken } from '../../core/owner.js';

const MARK = '.cairn-restore-';
const COMPANIONS = ['', '-journal', '-wal', '-shm'];
/** Longest file name most filesystems take, in bytes. */
const NAME_MAX = 255;

const STAGING_FILE = new RegExp(`^\\..*\\.cairn-restore-(${OWNER_TOKEN_PATTERN})-[0-9a-f]{8}(-journal|-wal|-shm)?$`);

/** A fresh staging path for a restore into `target` (an absolute path), owned by this process. */
export function stagingPath(target: string): string {
  const suffix = `${MARK}${ownerToken()}-${randomBytes(4).toString('hex')}`;
  // Room for the longest companion suffix; a very long target name is shortened (the name only
  // has to be unique in the folder and recognisable).
  let base = path.basename(target);
  while (base.length > 0 && Buffer.byteLength(`.${base}${suffix}-journal`) > NAME_MAX) base = [...base].slice(0, -1).join('');
  return path.join(path.dirname(target), `.${base}${suffix}`);
}

/**
 * Creates the (empty) staging file, private to this user: 0600 whatever the umask, so rows
 * restored from a backup are never readable by others while they are loaded (SQLite opens the
 * existing file; a target created by the restore keeps this mode).
 */
export function createStagingFile(staging: string): void {
  const fd = fs.openSync(staging, 'wx', 0o600);
  try {
    fs.fchmodSync(fd, 0o600);
  } finally {
    fs.closeSync(fd);
  }
}

/** Whether a file name is a restore's staging file (or a companion of one), of this or an older version. */
export function isStagingFileName(name: string): boolean {
  return name.startsWith('.') && name.includes(MARK);
}

/**
 * Removes the staging files (and companions) in `dir` whose owner is provably gone; best
 * effort and silent. Returns the names removed.
 */
export function removeAbandonedStaging(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  const verdicts = new Map<string, boolean>();
  for (const name of names) {
    const m = STAGING_FILE.exec(name);
    if (!m) continue;
    const token = m[1] as string;
    let dead = verdicts.get(token);
    if (dead === undefined) {
      const owner = parseOwnerToken(token);
      dead = owner !== undefined && ownerIsDead(owner);
      verdicts.set(token, dead);
    }
    if (!dead) continue;
    const full = path.join(dir, name);
    try {
      // Only plain files: never follow or remove something else that happens to match.
      if (!fs.lstatSync(full).isFile()) continue;
      fs.rmSync(full, { force: true });
      removed.push(name);
    } catch {
      /* best effort */
    }
  }
  return removed;
}

/** Removes a staging file and its companions; best effort. */
export function removeStagingFile(staging: string): void {
  for (const suffix of COMPANIONS) {
    try {
      fs.rmSync(staging + suffix, { force: true });
    } catch {
      /* best effort */
    }
  }
}
