/**
 * Errors of the SQLite source and restore target (source.ts, target.ts, load.ts) as cairn's
 * typed errors.
 */
import { CairnError, SourceError } from '../../core/errors.js';

/**
 * The error to throw for `err`, raised while doing `what` (a sentence start, e.g. "Cannot
 * restore into /x.db"): cairn's own errors unchanged, a driver error (code SQLITE_...) as a
 * SourceError saying what went wrong and, for a file that is not a database or a locked one,
 * what to do; anything else as an Error. Never throws.
 */
export function sqliteError(err: unknown, what: string): Error {
  if (err instanceof CairnError) return err;
  if (err instanceof Error && 'code' in err && typeof err.code === 'string' && err.code.startsWith('SQLITE_')) {
    const hint =
      err.code === 'SQLITE_NOTADB'
        ? ' The file is not a SQLite database (or is encrypted).'
        : err.code.startsWith('SQLITE_BUSY')
          ? ' The database is locked by another process; retry later.'
          : '';
    return new SourceError(`${what}: ${err.message}.${hint}`, { cause: err });
  }
  return err instanceof Error ? err : new Error(String(err));
}
