/**
 * `cairn export`: backups as one standalone `.cairn` archive (or, with --format sql, one backup
 * as a plain SQL script for the engine's own client); `cairn import`: an archive's backups into a
 * repository. An archive is also a read-only repository: `--repo FILE.cairn` works for restore,
 * verify, backup list/show (storage/registry.ts opens it).
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, statSync } from 'node:fs';
import { link, open, rename, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable, type Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { Option, type Command } from 'commander';
import { mayBeName } from '../../config/registry.js';
import { CairnError, ConflictError, StorageError, UsageError } from '../../core/errors.js';
import { parseRenames } from '../../core/selection.js';
import type { ExportProgress, ExportResult } from '../../jobs/export.js';
import type { ImportProgress, ImportResult } from '../../jobs/import.js';
import type { Progress } from '../../jobs/progress.js';
import { Repository } from '../../repo/repository.js';
import { formatBytes, formatDuration, plural } from '../format.js';
import {
  collect,
  compressionFrom,
  NAME_QUOTING,
  openLockingRepository,
  printJson,
  repoOption,
  retryLockOption,
  selectionFrom,
  selectionOptions,
  type CliContext,
  type CommonOptions,
  type Io,
  type RetryLockFlags,
  type SelectionFlags,
} from '../options.js';
import { passwordFor } from '../password.js';
import { ProgressBar } from '../progress-bar.js';

interface ExportFlags extends CommonOptions, SelectionFlags, RetryLockFlags {
  all?: boolean;
  output?: string;
  force?: boolean;
  compression?: string;
  level?: string;
  format: 'cairn' | 'sql';
  rename?: string[];
  /** false with --no-owner / --no-privileges (commander's negatable flags). */
  owner?: boolean;
  privileges?: boolean;
}

interface ImportFlags extends CommonOptions, RetryLockFlags {
  as?: string;
}

export function registerArchiveCommands(program: Command, ctx: CliContext): void {
  const { io, signal } = ctx;
  selectionOptions(
    program
      .command('export [ids...]')
      .description('write backups into one standalone .cairn archive (a tar of repository objects: each chunk once, checksummed), or one backup as a plain SQL script (--format sql)')
      .addOption(repoOption())
      .option('--all', 'every backup of the repository')
      .option('-o, --output <file>', 'the file to write ("-": stdout); default <id>.cairn, for several backups <repository>-<UTC time>.cairn, with --format sql <id>.sql (.sql.gz / .sql.zst compress)')
      .option('--force', 'replace the output file if it exists')
      .option('--compression <algorithm>', 'recompress every blob: zstd, gzip or none (default: blobs kept as stored)')
      .option('--level <level>', 'with --compression: fastest, default or best')
      .addOption(new Option('--format <format>', 'cairn: an archive cairn import / restore / verify read; sql: a script the engine\'s own client loads (psql -f, sqlite3 db < file, mysql db < file)').choices(['cairn', 'sql']).default('cairn')),
  )
    .option('--rename <old=new>', `with --format sql: a collection under another name (as cairn restore --rename)${NAME_QUOTING}`, collect)
    .option('--no-owner', 'with --format sql: leave out object ownership (ALTER … OWNER TO), for loading where the backup\'s roles do not exist (PostgreSQL; as pg_dump --no-owner)')
    .option('--no-privileges', 'with --format sql: leave out grants (PostgreSQL; as pg_dump --no-privileges)')
    .option('--json', 'print JSON (not with -o -)')
    .addOption(retryLockOption())
    .action(async (ids: string[], opts: ExportFlags) => {
      if (opts.format === 'sql') return exportSql(ids, opts, ctx);
      if (opts.include || opts.exclude || opts.rename) throw new UsageError('--include, --exclude and --rename go with --format sql: an archive holds whole backups.');
      if (opts.owner === false || opts.privileges === false) throw new UsageError('--no-owner and --no-privileges go with --format sql: an archive keeps backups as they are (cairn restore takes them).');
      if (opts.all && ids.length > 0) throw new UsageError(`Give backup ids or --all, not both (got ${ids.join(', ')}).`);
      if (!opts.all && ids.length === 0) throw new UsageError('Name the backups to export (cairn export <id>... --repo …), or export every one with --all.');
      if (opts.level !== undefined && opts.compression === undefined) throw new UsageError('--level goes with --compression (e.g. --compression zstd --level best).');
      const output = outputOf(opts);
      // Checked before the repository is opened: a wrong flag costs nothing.
      const compression = opts.compression !== undefined ? compressionFrom(opts, { algorithm: 'zstd', level: 'default' }) : undefined;
      const repository = await openLockingRepository(opts.repo, opts, ctx);
      const backupIds = opts.all ? await repository.listBackupIds(signal) : ids;
      if (backupIds.length === 0) throw new UsageError(`${repository.location} holds no backups to export.`);
      const file = output ?? defaultArchiveName(backupIds, opts.repo, repository);
      if (file !== '-') checkOverwrite(file, Boolean(opts.force));
      const { runExport } = await import('../../jobs/export.js');
      const bar = new ProgressBar('export', process.stderr, !opts.json && Boolean(process.stderr.isTTY));
      const started = Date.now();
      let result: ExportResult;
      try {
        result = await writeOutput(file, Boolean(opts.force), signal, (out) => runExport({ repo: repository, backupIds, output: out, ...(compression ? { compression } : {}), signal, onProgress: (p) => bar.update(exportProgress(p)) }));
      } finally {
        bar.done();
      }
      const shown = file === '-' ? 'stdout' : path.resolve(file);
      if (opts.json) return printJson(io, { file: shown, ...result });
      const line =
        `Exported ${plural(result.backups.length, 'backup')} from ${repository.location} to ${shown} in ${formatDuration(Date.now() - started)}: ` +
        `${formatBytes(result.bytes)}, ${plural(result.chunks, 'chunk')} in ${plural(result.packs, 'pack')}${result.encrypted ? ', encrypted as the repository is' : ''}.`;
      // With the archive on stdout, the report goes to stderr.
      if (file === '-') io.err(line);
      else io.out(line);
    });

  program
    .command('import <file>')
    .description('add the backups of a .cairn archive to a repository ("-": read the archive from stdin); the archive is checked whole first, only chunks the repository lacks are sent')
    .addOption(repoOption())
    .option('--as <id>', 'the id the backup gets (an archive of one backup): for one whose id the repository holds already')
    .option('--json', 'print JSON')
    .addOption(retryLockOption())
    .action(async (file: string, opts: ImportFlags) => {
      const to = await openLockingRepository(opts.repo, opts, ctx);
      // Before the archive is read: an archive target is refused as every writer refuses one.
      to.requireWritable('import into it');
      const { importConflicts, runImport } = await import('../../jobs/import.js');
      const bar = new ProgressBar('import', process.stderr, !opts.json && Boolean(process.stderr.isTTY));
      const started = Date.now();
      let result: ImportResult;
      try {
        const run = (f: string): Promise<ImportResult> =>
          runImport({
            file: f,
            to,
            ...(opts.as !== undefined ? { asId: opts.as } : {}),
            // The spooled copy of stdin is gone once the command ends: messages say "stdin".
            ...(file === '-' ? { displayName: 'stdin' } : {}),
            openArchive: (archive) => Repository.open(archive, { password: passwordFor('from', archive.location), signal }),
            deferConflicts: true,
            signal,
            onProgress: (p) => bar.update(importProgress(p)),
          });
        result = file === '-' ? await fromStdin(signal, run) : await run(file);
      } finally {
        bar.done();
      }
      // As cairn sync: the report first, then the error naming what was left out (exit 4).
      const problem = importConflicts(result);
      if (opts.json) printJson(io, result);
      else if (!problem || result.imported.length + result.skipped.length > 0) printImported(io, result, started);
      if (problem) throw problem;
    });
}

/** `export --format sql`: one backup as a plain SQL script. */
async function exportSql(ids: string[], opts: ExportFlags, ctx: CliContext): Promise<void> {
  const { io, signal } = ctx;
  if (opts.all || ids.length !== 1) throw new UsageError('--format sql writes one backup: name exactly one id (cairn export <id> --format sql).');
  if (opts.compression !== undefined || opts.level !== undefined) throw new UsageError('--compression and --level are for archives; a SQL script is compressed by its name: -o FILE.sql.gz or -o FILE.sql.zst.');
  const id = ids[0] as string;
  const selection = selectionFrom(opts);
  const renames = parseRenames(opts.rename);
  const file = outputOf(opts) ?? `${id}.sql`;
  if (file !== '-') checkOverwrite(file, Boolean(opts.force));
  const repository = await openLockingRepository(opts.repo, opts, ctx);
  if (repository.config.encryption.algorithm !== 'none') {
    io.err(`cairn: note: the repository is encrypted but a SQL script is not: ${file === '-' ? 'what goes to stdout' : file} holds the backup's data in plain text.`);
  }
  const { sqlExport } = await import('../../jobs/sql-export.js');
  const { CompressStream } = await import('zstd-napi');
  // Compressed by the name asked for; the script itself is always plain SQL.
  const compressor = (): Transform | undefined => (/\.gz$/i.test(file) ? createGzip() : /\.zst$/i.test(file) ? new CompressStream({ compressionLevel: 3 }) : undefined);
  const started = Date.now();
  // What the script leaves out or what will not work once loaded: written in the script as
  // comments, and said here (stderr, or the --json document's "warnings"), as restore says its own.
  const warnings: string[] = [];
  await writeOutput(file, Boolean(opts.force), signal, async (out) => {
    const script = Readable.from(
      sqlExport({ repo: repository, backupId: id, selection, renames, noOwner: opts.owner === false, noPrivileges: opts.privileges === false, onWarning: (w) => warnings.push(w), signal }),
    );
    const packer = compressor();
    if (packer) await pipeline(script, packer, out, { end: false, signal });
    else await pipeline(script, out, { end: false, signal });
  });
  const line = `Wrote backup ${id} as SQL to ${file === '-' ? 'stdout' : path.resolve(file)} in ${formatDuration(Date.now() - started)}.`;
  if (opts.json && file !== '-') return printJson(io, { backupId: id, file: path.resolve(file), warnings });
  for (const w of warnings) io.err(`cairn: warning: ${w}`);
  io.err(line);
}

/** What compresses a SQL script, by the output's name. */
const SQL_SUFFIXES = /\.sql(\.gz|\.zst)?$/i;
/** Compression suffixes export does not write: a file under such a name would not be what it says. */
const OTHER_COMPRESSION = /\.(bz2|xz|lz4|lz|lzma|zip|7z|br|z|tgz|tbz2|txz)$/i;
const ANY_COMPRESSION = /\.(gz|zst|zstd|bz2|xz|lz4|lz|lzma|zip|7z|br|z|tgz|tbz2|txz)$/i;

/**
 * -o as given; `-o -` refused where it cannot work, and a name that says another format or a
 * compression the output will not have (x.sql for an archive, x.sql.bz2, x.cairn.gz).
 */
function outputOf(opts: ExportFlags): string | undefined {
  const file = opts.output;
  if (file !== undefined && file !== '-') {
    const name = path.basename(file);
    if (opts.format === 'sql') {
      if (OTHER_COMPRESSION.test(name)) throw new UsageError(`-o ${file}: --format sql compresses by the name with .gz or .zst only (-o FILE.sql.gz, -o FILE.sql.zst); nothing writes ${path.extname(name)}. Name the file .sql, .sql.gz or .sql.zst.`);
      if (/\.cairn$/i.test(name)) throw new UsageError(`-o ${file} names an archive, but --format sql writes a SQL script: did you mean an archive (leave out --format sql), or -o ${name.replace(/\.cairn$/i, '.sql')}?`);
    } else {
      if (SQL_SUFFIXES.test(name)) throw new UsageError(`-o ${file} names a SQL script, but export writes a .cairn archive unless told otherwise: did you mean --format sql? (An archive is named FILE.cairn.)`);
      if (ANY_COMPRESSION.test(name)) throw new UsageError(`-o ${file}: an archive is not compressed by its name (it would be a plain tar under ${path.extname(name)}). Name it FILE.cairn, and recompress its blobs with --compression zstd if you want it smaller.`);
    }
  }
  if (file === '-') {
    if (opts.json) throw new UsageError('--json prints on stdout, where -o - writes the export: write to a file (-o FILE), or leave out --json.');
    if (process.stdout.isTTY) throw new UsageError('stdout is a terminal: redirect it (cairn export … -o - > FILE, or | ssh …), or write a file with -o FILE.');
  }
  return opts.output;
}

/** `<id>.cairn`, or for several backups `<repository name or id>-<UTC time>.cairn`. */
function defaultArchiveName(ids: string[], repoFlag: string | undefined, repo: Repository): string {
  if (ids.length === 1) return `${ids[0]}.cairn`;
  const name = repoFlag !== undefined && mayBeName(repoFlag) ? repoFlag : repo.config.id;
  const at = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${name}-${at}.cairn`;
}

function checkOverwrite(file: string, force: boolean): void {
  if (!existsSync(file)) return;
  if (!statSync(file).isFile()) throw new UsageError(`${path.resolve(file)} exists and is not a file: give -o another name.`);
  if (!force) throw new ConflictError(`${path.resolve(file)} exists: add --force to replace it, or give -o another name. Nothing was written.`);
}

/**
 * Runs `write` into `file` (or stdout for "-"). A file is written under a temporary name beside
 * it, synced, and only then given its name: an interrupted export never leaves a partial file
 * under the name asked for. Without `force` the name is taken with link(), which fails when a
 * file appeared there meanwhile (never overwritten).
 */
async function writeOutput<T>(file: string, force: boolean, signal: AbortSignal, write: (out: Writable) => Promise<T>): Promise<T> {
  if (file === '-') return write(process.stdout);
  const target = path.resolve(file);
  const temp = path.join(path.dirname(target), `.${path.basename(target)}.cairn-${randomBytes(4).toString('hex')}`);
  let out: Writable | undefined;
  // An output error before a writer listens (the folder missing: the open fails while the
  // repository is still being read) would be an unhandled 'error' event: it is kept and thrown.
  let failure: Error | undefined;
  try {
    // Opened here, before any work: a folder that does not exist or cannot be written fails now,
    // with nothing read and no lock taken.
    // Owner-only, as repository files: an export holds a database's contents (in plain text for
    // SQL, and for an archive of a plain repository).
    const handle = await open(temp, 'wx', 0o600);
    out = handle.createWriteStream();
    out.on('error', (err: Error) => (failure ??= err));
    const result = await write(out);
    if (failure) throw failure;
    signal.throwIfAborted();
    await new Promise<void>((resolve, reject) => (out as Writable).end((err?: Error | null) => (err ? reject(err) : resolve())));
    if (failure) throw failure;
    const synced = await open(temp, 'r+');
    try {
      await synced.sync();
    } finally {
      await synced.close();
    }
    if (force) await rename(temp, target);
    else {
      try {
        await link(temp, target);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new ConflictError(`${target} appeared while exporting: add --force to replace it, or give -o another name. Nothing was written there.`);
        throw err;
      }
      await unlink(temp);
    }
    return result;
  } catch (err) {
    out?.destroy();
    // Never in place of the error that matters (rm fails with ENOTDIR when the folder is a file).
    await rm(temp, { force: true }).catch(() => undefined);
    // The writer's StorageError wraps the file's own error: the message names the file either way.
    const cause = err instanceof StorageError && err.cause instanceof Error ? err.cause : err;
    const code = (cause as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code) && !(cause instanceof CairnError)) {
      throw new StorageError(`Cannot write ${target}: ${(cause as Error).message.replace(temp, target)}. Check the folder exists and is writable and has room, or write to stdout with -o -.`, { cause });
    }
    throw err;
  }
}

/** `cairn import -`: the archive spooled from stdin to a temporary file (it is read twice: checked whole, then copied), removed after. */
async function fromStdin<T>(signal: AbortSignal, run: (file: string) => Promise<T>): Promise<T> {
  if (process.stdin.isTTY) throw new UsageError('stdin is a terminal: pipe the archive in (cairn import - < FILE.cairn), or name the file.');
  const temp = path.join(tmpdir(), `cairn-import-${process.pid}-${randomBytes(4).toString('hex')}.cairn`);
  try {
    await pipeline(process.stdin, createWriteStream(temp, { flags: 'wx', mode: 0o600 }), { signal });
    return await run(temp);
  } finally {
    await rm(temp, { force: true });
  }
}

function printImported(io: Io, r: ImportResult, started: number): void {
  const lines = [
    `Imported ${plural(r.imported.length, 'backup')} from ${r.file} into ${r.to} in ${formatDuration(Date.now() - started)}: ${plural(r.chunksCopied, 'chunk')} sent (${formatBytes(r.bytesCopied)}); verified.` +
      (r.skipped.length + r.conflicts.length > 0 ? ` ${r.skipped.length} already there (identical), ${plural(r.conflicts.length, 'conflict')}.` : ''),
    ...r.imported.map((b) => `  ${b.importedAs}${b.importedAs !== b.backupId ? ` (${b.backupId} in the archive)` : ''}: ${plural(b.chunksCopied, 'chunk')} sent, ${b.chunksSkipped} already there`),
    ...r.skipped.map((id) => `  skipped   ${id}: already there, identical`),
    ...r.conflicts.map((c) => `  conflict  ${c.backupId}: ${c.message}`),
  ];
  io.out(lines.join('\n'));
}

function exportProgress(p: ExportProgress): Progress {
  return { phase: p.phase === 'exporting' ? 'transferring' : 'done', collectionsDone: p.packsDone, collectionsTotal: p.packsTotal, rows: 0, bytes: p.bytesRead, bytesTotal: p.bytesTotal };
}

function importProgress(p: ImportProgress): Progress {
  return { phase: p.phase === 'checking' ? 'starting' : p.phase, collectionsDone: p.backupsDone, collectionsTotal: p.backupsTotal, rows: 0, bytes: p.bytesCopied, bytesTotal: p.bytesTotal };
}
