/**
 * `cairn export --format sql`: a backup written out as one plain SQL script that the engine's own
 * client loads with no cairn installed (EngineDriver.openSqlScript spells each engine's SQL).
 */
import { UsageError } from '../core/errors.js';
import type { Selection } from '../core/selection.js';
import type { Repository } from '../repo/repository.js';

export interface SqlExportOptions {
  repo: Repository;
  backupId: string;
  /** --include / --exclude, as restore takes them. */
  selection?: Selection;
  /** --rename old=new, as restore takes them. */
  renames?: Map<string, string>;
  signal?: AbortSignal;
}

/**
 * The script's bytes, streamed (plain, uncompressed: the caller compresses for .gz / .zst).
 * @throws NotFoundError (backup), UsageError (selection, an engine without SQL export),
 *   CorruptionError (damaged data), CancelledError.
 */
// eslint-disable-next-line require-yield
export async function* sqlExport(options: SqlExportOptions): AsyncGenerator<Buffer> {
  throw new UsageError(`Plain-SQL export of backup ${options.backupId} is not built yet.`);
}
