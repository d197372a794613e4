/**
 * A PostgreSQL source's connection test (DatabaseSource.check): the server's version, and the
 * client tools a backup runs, each at least the server's major version (the check a backup makes
 * before it starts, checkPgDumpVersion, applied to each tool and reported instead of thrown).
 */
import { CairnError } from '../../core/errors.js';
import type { SourceCheckReport, ToolCheck } from '../types.js';
import { connect, pgError, toolVersion, type PgConnectionSettings } from './connection.js';
import { checkPgDumpVersion } from './tool-stream.js';

type PgTool = 'pg_dump' | 'pg_restore' | 'pg_dumpall';

/**
 * Connects to `database` of the server (read-only: one SELECT of settings), then checks `tools`.
 * Errors: as a backup's connection (pgError: SourceError, NotFoundError).
 */
export async function checkPostgres(settings: PgConnectionSettings, database: string, tools: PgTool[]): Promise<SourceCheckReport> {
  let serverVersion: string;
  let versionNum: number;
  const client = await connect(settings, database);
  try {
    const { rows } = await client.query<{ v: string; n: string }>("SELECT current_setting('server_version') AS v, current_setting('server_version_num') AS n");
    serverVersion = (rows[0]?.v ?? '').split(' ')[0] ?? '';
    versionNum = Number(rows[0]?.n ?? 0);
  } catch (err) {
    throw pgError(err, settings, database);
  } finally {
    await client.end().catch(() => undefined);
  }
  return { serverVersion, tools: await Promise.all(tools.map((t) => checkPgTool(t, versionNum, serverVersion))) };
}

/** One tool: missing (not ok, how to install), older than the server's major (not ok, which to install), else ok. */
export async function checkPgTool(tool: PgTool, serverVersionNum: number, serverVersion: string): Promise<ToolCheck> {
  let line: string;
  try {
    line = await toolVersion(tool);
  } catch (err) {
    return { name: tool, version: '', ok: false, message: err instanceof Error ? err.message : String(err) };
  }
  const version = /\)\s*([0-9][0-9.]*\w*)/.exec(line)?.[1] ?? line;
  try {
    checkPgDumpVersion(line, serverVersionNum, serverVersion);
  } catch (err) {
    if (!(err instanceof CairnError)) throw err;
    // The backup's message speaks of pg_dump; each tool must be as new as the server.
    const message = tool === 'pg_dump' ? err.message : err.message.replace('cannot back up', tool === 'pg_restore' ? 'cannot restore into' : 'cannot read').replace('pg_dump must', `${tool} must`);
    return { name: tool, version, ok: false, message };
  }
  return { name: tool, version, ok: true };
}
