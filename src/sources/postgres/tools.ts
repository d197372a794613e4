/**
 * Running the PostgreSQL client tools (pg_restore, psql) as child processes: connection
 * settings and the password go through the environment only (toolEnv), never the command line;
 * failures become SourceErrors quoting the tool's first meaningful error lines, scrubbed.
 */
import { spawn } from 'node:child_process';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SourceError, stoppedBySignal, throwIfAborted } from '../../core/errors.js';
import { toolEnv, type PgConnectionSettings } from './connection.js';
import { decodeDatabaseText } from './encoding.js';
import { splitScript, type ScriptBlock } from './toc.js';

export interface ToolRun {
  stdout: string;
  stderr: string;
  /** false when stdout held bytes that could not be read in `encoding` (encoding.ts). */
  exact: boolean;
}

export interface ToolOptions {
  settings: PgConnectionSettings;
  /** Database the tool connects to through PGDATABASE. */
  database: string;
  /** Fed to the tool's standard input. */
  input?: AsyncIterable<Uint8Array>;
  signal?: AbortSignal;
  /** Accept a non-zero exit (the caller reads stderr). */
  allowFailure?: boolean;
  /** What the tool was doing, for the error message ("Cannot restore … into …"). */
  what: string;
  /** PostgreSQL encoding of stdout (a schema archive's script or listing is in its database's); default UTF-8. */
  encoding?: string;
}

export async function runTool(tool: 'pg_restore' | 'psql', args: string[], options: ToolOptions): Promise<ToolRun & { code: number }> {
  const { settings, signal } = options;
  throwIfAborted(signal);
  const child = spawn(tool, args, {
    env: toolEnv(settings, options.database),
    stdio: [options.input ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    ...(signal ? { signal } : {}),
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on('data', (d: Buffer) => out.push(d));
  child.stderr?.on('data', (d: Buffer) => err.push(d));
  const exited = new Promise<number>((resolve, reject) => {
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') {
        reject(new SourceError(`${tool} is not installed or not on PATH. Install the PostgreSQL client tools (Debian: apt-get install postgresql-client).`));
      } else reject(e);
    });
    child.on('close', (code, how) => {
      const stopped = stoppedBySignal(tool, how);
      if (stopped) reject(stopped);
      else resolve(code ?? -1);
    });
  });
  let feeding: Promise<void> = Promise.resolve();
  if (options.input && child.stdin) {
    const stdin = child.stdin;
    stdin.on('error', () => undefined); // EPIPE when the tool exits early: its exit code tells
    feeding = pipeline(Readable.from(options.input), stdin).catch((e: unknown) => {
      child.kill('SIGTERM');
      throw e;
    });
  }
  let code: number;
  try {
    [code] = await Promise.all([exited, feeding]);
  } catch (e) {
    throwIfAborted(signal);
    throw e;
  }
  throwIfAborted(signal);
  const { text: stdout, exact } = decodeDatabaseText(Buffer.concat(out), options.encoding);
  const stderr = scrub(Buffer.concat(err).toString('utf8'), settings);
  if (code !== 0 && !options.allowFailure) {
    throw new SourceError(`${options.what}: ${tool} failed (exit ${code}): ${firstErrors(stderr)}`);
  }
  return { stdout, stderr, code, exact };
}

export function scrub(text: string, settings: PgConnectionSettings): string {
  return settings.password ? text.split(settings.password).join('***') : text;
}

/**
 * Option lists and passwords inside SQL a tool quotes ("Command was: CREATE USER MAPPING … OPTIONS
 * (password '…')", "CREATE ROLE … PASSWORD '…'"): foreign servers and user mappings keep their
 * credentials in options, so none of them is quoted.
 */
export function redactQuotedSql(line: string): string {
  return line
    .replace(/\bOPTIONS\s*\((?:[^()']|'(?:[^']|'')*')*\)?/gi, 'OPTIONS (…)')
    .replace(/\b(PASSWORD)\s+(?:E?'(?:[^']|'')*'?|\S+)/gi, '$1 ***');
}

/** The first meaningful lines of a tool's stderr (SQL it quotes without option lists or passwords). */
export function firstErrors(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => redactQuotedSql(l.trim()))
    .filter((l) => l !== '');
  const meaningful = lines.filter((l) => /error|fatal|detail|hint|command was/i.test(l) && !/^pg_restore: warning: errors ignored/i.test(l));
  const chosen = (meaningful.length > 0 ? meaningful : lines).slice(0, 4);
  return chosen.length > 0 ? chosen.join(' | ') : 'no error message';
}

/** A libpq connection string naming only the database (host, user, password come from the environment). */
export function dbnameConninfo(database: string): string {
  return `dbname='${database.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/**
 * The SQL `pg_restore -f -` prints for the entries of a list file (`-L listPath`), optionally
 * of one section only ('pre-data', 'post-data'), split into one block per archive entry (see
 * toc.ts splitScript); `extra`: more pg_restore flags (--no-owner, --no-privileges); `encoding`: the
 * archive's (its database's) encoding, `exact` false when its text could not be read in it
 * (encoding.ts). Nothing is run. Errors: SourceError when pg_restore cannot read the
 * archive; the signal's reason on abort.
 */
export async function archiveScript(
  settings: PgConnectionSettings,
  archive: string,
  listPath: string,
  section: string | undefined,
  signal: AbortSignal | undefined,
  extra: string[] = [],
  encoding?: string,
): Promise<ScriptBlock[] & { exact: boolean }> {
  const args = ['-f', '-', ...(section ? [`--section=${section}`] : []), ...extra, '-L', listPath, archive];
  const { stdout, exact } = await runTool('pg_restore', args, { settings, database: settings.database, signal, what: 'Cannot read the schema archive', encoding });
  // The script says `SET client_encoding = '<archive's>'`: the text is decoded here, and runs in
  // cairn's sessions, which speak UTF-8 (node-postgres sends and reads nothing else). Keeping the
  // SET would make the server read UTF-8 bytes as, say, WIN1252 ("café" stored as "cafÃ©").
  const blocks = splitScript(stdout).map((b) => ({
    ...b,
    ...(b.desc === undefined ? { sql: withoutClientEncoding(b.sql) } : {}),
    settings: withoutClientEncoding(b.settings),
  }));
  return Object.assign(blocks, { exact });
}

const withoutClientEncoding = (sql: string): string => sql.replace(/^SET client_encoding = [^\n]*$/gm, '');
