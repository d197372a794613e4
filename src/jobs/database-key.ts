/**
 * One name per database, whatever URL reached it: the job center allows one job (backup or
 * restore) per database at a time, and two spellings of the same database must collide.
 */
import { findDriver } from '../sources/registry.js';

/**
 * The database a location (a source's or target's `location`, never holding a secret) names,
 * by its engine's rule (EngineDriver.databaseKey), e.g.:
 *
 * - `sqlite:///a/b.db` → `sqlite:<realpath>`: symlinks and relative spellings resolved; for a file
 *   that does not exist yet (a new restore target), its folder's real path and its name.
 * - `postgres://user@host:port/db` → `postgres://host:port/db`: the user does not change the
 *   database; localhost, 127.0.0.1, ::1 and a socket folder are one server.
 * - anything else: the location as given.
 */
export function databaseKey(location: string): string {
  return findDriver(location)?.databaseKey(location) ?? location;
}
