/**
 * `cairn dump` and `cairn diff`: read a repository's backups without any database. dump writes
 * one collection's rows as CSV or SQL (the engine spells them: EngineDriver.openDump); diff
 * compares two backups' manifests (jobs/diff.ts).
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Option, type Command } from 'commander';
import { CairnError, StorageError } from '../../core/errors.js';
import type { BackupDiff, CollectionDiff } from '../../jobs/diff.js';
import { DUMP_FORMATS, prepareDump, streamDump, type DumpFormat } from '../../jobs/dump.js';
import { namingFor } from '../../sources/index.js';
import { formatBytes, formatCount, plural, table } from '../format.js';
import {
  openLockingRepository,
  openRepository,
  printJson,
  repoOption,
  retryLockOption,
  type CliContext,
  type CommonOptions,
  type RetryLockFlags,
} from '../options.js';

interface DumpFlags extends CommonOptions, RetryLockFlags {
  format: DumpFormat;
  output?: string;
}

export function registerInspectCommands(program: Command, { io, signal }: CliContext): void {
  program
    .command('dump <id> <collection>')
    .description(
      'write the rows of one table of a backup as CSV or SQL to stdout (or --output), read from the repository alone; the name is read as --include reads it (PostgreSQL: t is public.t, quoted parts exact; MySQL/MariaDB: exact; SQLite: ASCII case ignored)',
    )
    .addOption(repoOption())
    .addOption(
      new Option('--format <format>', 'csv: a header row, then RFC 4180 rows (NULL an empty field, an empty string ""); sql: INSERT statements in BEGIN/COMMIT for the backup\'s engine')
        .choices([...DUMP_FORMATS])
        .default('csv'),
    )
    .option('-o, --output <file>', 'write to this file (replaced only once the dump is complete) instead of stdout')
    // dump reads under a shared repository lock, which a prune's or repair's exclusive one blocks.
    .addOption(retryLockOption())
    .action(async (id: string, collection: string, opts: DumpFlags) => {
      const repository = await openLockingRepository(opts.repo, opts, { io, signal });
      const prepared = await prepareDump(repository, id, collection, opts.format, signal);
      const source = Readable.from(streamDump(repository, prepared, signal));
      if (opts.output === undefined) {
        // stdout stays open: Node owns it.
        await pipeline(source, process.stdout, { end: false, signal });
        return;
      }
      // Into a temporary file beside the target, renamed over it once complete: a failed or
      // cancelled dump never leaves a truncated file under the name asked for.
      const file = path.resolve(opts.output);
      const temp = path.join(path.dirname(file), `.${path.basename(file)}.cairn-${randomBytes(4).toString('hex')}`);
      try {
        await pipeline(source, createWriteStream(temp, { flags: 'wx' }), { signal });
        await rename(temp, file);
      } catch (err) {
        await rm(temp, { force: true });
        const code = (err as NodeJS.ErrnoException).code;
        if (typeof code === 'string' && /^E[A-Z]+$/.test(code) && !(err instanceof CairnError)) {
          throw new StorageError(`Cannot write ${file}: ${(err as Error).message}. Check the folder exists and is writable, or write to stdout (leave out --output).`);
        }
        throw err;
      }
      const rules = namingFor(prepared.manifest.source.kind);
      io.err(`Wrote ${plural(prepared.entry.rowCount, 'row')} of ${rules.written(prepared.entry.name)} from backup ${prepared.manifest.id} to ${file} (${opts.format}).`);
    });

  program
    .command('diff <a> <b>')
    .description('compare two backups of one source: collections added, removed, changed (content or definition differs) and unchanged, with row counts and bytes of each side')
    .addOption(repoOption())
    .option('--json', 'print JSON')
    .action(async (a: string, b: string, opts: CommonOptions) => {
      const started = Date.now();
      const repository = await openRepository(opts.repo);
      const diff = await (await import('../../jobs/diff.js')).diffBackups(repository, a, b, signal);
      if (opts.json) return printJson(io, { ...diff, durationMs: Date.now() - started });
      io.out(formatDiff(diff));
    });
}

const signed = (n: number, f: (n: number) => string): string => (n > 0 ? `+${f(n)}` : n < 0 ? `-${f(-n)}` : '0');
const ORDER: Record<string, number> = { changed: 0, added: 1, removed: 2, unchanged: 3 };

/** The human form of a diff: a summary line, then one table row per collection (changes first). */
export function formatDiff(diff: BackupDiff): string {
  const s = diff.summary;
  const rules = namingFor(diff.b.kind);
  const rows = [...diff.collections].sort((x, y) => (ORDER[x.status] ?? 9) - (ORDER[y.status] ?? 9)).map((c: CollectionDiff) => [
    c.status,
    // As backup show writes names: database-wide collections ("(schema)") as they are.
    c.selectable ? rules.written(c.name) : c.name,
    c.kind,
    c.hasRows && c.a.rows !== null ? formatCount(c.a.rows) : '-',
    c.hasRows && c.b.rows !== null ? formatCount(c.b.rows) : '-',
    c.hasRows ? signed(c.rowsDelta, formatCount) : '-',
    c.a.bytes !== null ? formatBytes(c.a.bytes) : '-',
    c.b.bytes !== null ? formatBytes(c.b.bytes) : '-',
    c.sameContent === null ? '-' : c.sameContent ? 'same' : 'differs',
    c.definitionChanged === null ? '-' : c.definitionChanged ? 'differs' : 'same',
  ]);
  return [
    `Backup ${diff.a.id} (${diff.a.createdAt}) → ${diff.b.id} (${diff.b.createdAt}): ${s.added} added, ${s.removed} removed, ${s.changed} changed, ${s.unchanged} unchanged; rows ${signed(s.rowsDelta, formatCount)}, bytes ${signed(s.bytesDelta, formatBytes)}.`,
    ...(diff.a.source !== diff.b.source ? [`Note: the backups are of different sources (${diff.a.source}, ${diff.b.source}).`] : []),
    '',
    table(['STATUS', 'COLLECTION', 'KIND', 'ROWS A', 'ROWS B', 'ROWS Δ', 'BYTES A', 'BYTES B', 'CONTENT', 'DEFINITION'], rows),
  ].join('\n');
}
