/**
 * One name per database, whatever URL reached it: the job center allows one job (backup or
 * restore) per database at a time, and two spellings of the same database must collide.
 */
import fs from 'node:fs';
import path from 'node:path';

/** Host names that mean "this machine" (a Unix socket directory does too). */
const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '::1', '0:0:0:0:0:0:0:1']);

/**
 * The database a location (a source's or target's `location`, never holding a secret) names:
 *
 * - `sqlite:///a/b.db` → `sqlite:<realpath>`: symlinks and relative spellings resolved; for a file
 *   that does not exist yet (a new restore target), its folder's real path and its name.
 * - `postgres://user@host:port/db` → `postgres://host:port/db`: the user does not change the
 *   database; localhost, 127.0.0.1, ::1 and a socket folder are one server.
 * - anything else: the location as given.
 */
export function databaseKey(location: string): string {
  const sqlite = /^sqlite:(?:\/\/)?(\/.*)$/i.exec(location);
  if (sqlite?.[1]) return `sqlite:${realFile(sqlite[1])}`;
  // Greedy host part: the port and database are the last ":port/db" (a socket folder has slashes).
  const pg = /^postgres(?:ql)?:\/\/(?:[^@/]*@)?(.*):(\d+)\/([^/]*)$/i.exec(location);
  if (pg) {
    let host = (pg[1] ?? '').replace(/^\[(.*)\]$/, '$1').toLowerCase();
    if (host === '' || host.startsWith('/') || LOCAL_HOSTS.has(host)) host = 'localhost';
    let db = pg[3] ?? '';
    try {
      db = decodeURIComponent(db);
    } catch {
      /* kept as written */
    }
    return `postgres://${host}:${pg[2]}/${db}`;
  }
  return location;
}

function realFile(file: string): string {
  const abs = path.resolve(file);
  try {
    return fs.realpathSync(abs);
  } catch {
    try {
      return path.join(fs.realpathSync(path.dirname(abs)), path.basename(abs));
    } catch {
      return abs;
    }
  }
}
