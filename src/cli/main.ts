import { resolve as resolvePath } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { CairnError, CancelledError, EXIT_CODES, NotFoundError, UsageError, type ErrorCode } from '../core/errors.js';
import { addDuration, parseDuration } from '../core/durations.js';
import { catalogFile, defaultDataDir } from '../catalog/database.js';
import { SqliteRegistry } from '../catalog/registry.js';
import { SqliteScheduleStore } from '../catalog/schedules.js';
import { SqliteTokenStore } from '../catalog/tokens.js';
import type { JobRecord } from '../catalog/types.js';
import type { BackupManifest, CompressionSettings } from '../core/schemas.js';
import type { Progress } from '../jobs/progress.js';
import { CompressionAlgorithmSchema, CompressionLevelSchema } from '../core/schemas.js';
import { parseNameList, parseRenames, validateSelection, type Selection } from '../core/selection.js';
import { addRepository, configPath, listRepositories, removeRepository, resolveRepository, validateRepoName } from '../config/registry.js';
import { runBackup } from '../jobs/backup.js';
import { runCopy, type CopyProgress } from '../jobs/copy.js';
import { runRestore } from '../jobs/restore.js';
import { prune } from '../repo/prune.js';
import { repair } from '../repo/repair.js';
import { listLocks, removeLocks } from '../repo/lock.js';
import { Repository } from '../repo/repository.js';
import { verifyBackupsLocked, verifyFailure } from '../repo/verify.js';
import { definitionProblems, openSource, openTarget } from '../sources/index.js';
import { openStorage, storageFromEnv } from '../storage/index.js';
import { formatBytes, formatCount, formatDuration, plural, table } from './format.js';
import { ProgressBar } from './progress-bar.js';

interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
}

interface CommonOptions {
  repo?: string;
  json?: boolean;
}

interface SelectionFlags {
  include?: string[];
  exclude?: string[];
}

interface ServerFlags {
  server?: string;
  /** false with --no-wait */
  wait?: boolean;
}

interface BackupCreateFlags extends CommonOptions, SelectionFlags, ServerFlags {
  source: string;
  expires?: string;
  id?: string;
  compression?: string;
  level?: string;
  jobs?: string;
  roles?: boolean;
  rolesWithPasswords?: boolean;
}

interface RestoreFlags extends CommonOptions, SelectionFlags, ServerFlags {
  to: string;
  rename?: string[];
  onConflict: 'fail' | 'overwrite';
  jobs?: string;
  roles?: boolean;
}

/** Runs the CLI and returns the exit code (documented in docs/cli.md). */
export async function main(argv: string[], io: Io = defaultIo()): Promise<number> {
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = (): void => {
    interrupts++;
    if (interrupts > 1) process.exit(EXIT_CODES.CANCELLED);
    io.err('cairn: cancelling (press Ctrl-C again to stop at once)…');
    // The reason is what code that throws `signal.reason` (or signal.throwIfAborted()) throws:
    // a CancelledError, exit 130, not a DOMException "This operation was aborted".
    controller.abort(new CancelledError('Cancelled (interrupted by Ctrl-C or SIGTERM).'));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const debug = argv.includes('--debug');
  try {
    await buildProgram(io, controller.signal).parseAsync(argv);
    return 0;
  } catch (err) {
    return reportError(cancelledIfAborted(err, controller.signal), io, debug);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function defaultIo(): Io {
  return {
    out: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
    err: (text) => process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
  };
}

/**
 * After Ctrl-C / SIGTERM, an error that is not a CairnError comes from the abort itself (Node's
 * AbortError from a stream, a child process, a timer; a driver's "Connection terminated"):
 * the operation was cancelled, exit 130. CairnErrors keep their meaning (a conflict found
 * before the signal is still a conflict).
 */
function cancelledIfAborted(err: unknown, signal: AbortSignal): unknown {
  if (!signal.aborted || err instanceof CairnError || err instanceof CommanderError) return err;
  const reason: unknown = signal.reason;
  return reason instanceof CairnError ? reason : new CancelledError();
}

function reportError(err: unknown, io: Io, debug: boolean): number {
  if (err instanceof CommanderError) {
    // Commander already printed its message (help and version exit with 0).
    return err.exitCode === 0 ? 0 : EXIT_CODES.USAGE;
  }
  if (err instanceof CairnError) {
    io.err(`cairn: error: ${err.message}`);
    if (debug && err.stack) io.err(err.stack);
    return err.exitCode;
  }
  const e = err instanceof Error ? err : new Error(String(err));
  io.err(`cairn: internal error: ${e.message}${debug ? '' : ' (run with --debug for details)'}`);
  if (debug && e.stack) io.err(e.stack);
  return EXIT_CODES.INTERNAL;
}

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

/** --grace: a duration (30m, 1h, 2d) or 0. */
function parseGrace(value: string): number {
  if (value.trim() === '0') return 0;
  const d = parseDuration(value, '--grace');
  return addDuration(new Date(0), d).getTime();
}

function repoOption(): Option {
  return new Option(
    '--repo <repo>',
    'repository: a registered name, a path, or a URL (file://, s3://, azure://, gs://); without it, BACKUP_FILESYSTEM_PATH / BACKUP_S3_* / BACKUP_AZURE_* / BACKUP_GCS_* (docs/storage.md)',
  ).env('CAIRN_REPO');
}

function selectionOptions(cmd: Command): Command {
  return cmd
    .option('--include <names>', 'only these collections (comma-separated, * wildcards; repeatable)', collect)
    .option('--exclude <names>', 'every collection but these (comma-separated, * wildcards; repeatable)', collect);
}

function selectionFrom(opts: { include?: string[]; exclude?: string[] }): Selection {
  const selection: Selection = {};
  const include = parseNameList(opts.include);
  const exclude = parseNameList(opts.exclude);
  if (include) selection.include = include;
  if (exclude) selection.exclude = exclude;
  validateSelection(selection);
  return selection;
}

function compressionFrom(opts: { compression?: string; level?: string }, fallback: CompressionSettings): CompressionSettings {
  const algorithm = opts.compression ?? fallback.algorithm;
  const level = opts.level ?? fallback.level;
  const a = CompressionAlgorithmSchema.safeParse(algorithm);
  if (!a.success) throw new UsageError(`Unknown compression "${algorithm}": use zstd, gzip or none.`);
  const l = CompressionLevelSchema.safeParse(level);
  if (!l.success) throw new UsageError(`Unknown compression level "${level}": use fastest, default or best.`);
  return { algorithm: a.data, level: l.data };
}

function parseJobs(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new UsageError(`Invalid --jobs "${value}": give a whole number from 1 to 256.`);
  return n;
}

/** A registered name (no "/" and no ":") stands for its URL; anything else is a path or URL. */
/** The repository a command names, else the one the server-style BACKUP_* variables describe. */
async function openRepository(value: string | undefined): Promise<Repository> {
  if (value === undefined || value === '') {
    const storage = storageFromEnv(process.env);
    if (storage === undefined) {
      throw new UsageError(
        'No repository given: pass --repo <name, path or URL>, set CAIRN_REPO, or describe one with BACKUP_FILESYSTEM_PATH, BACKUP_S3_BUCKET, BACKUP_AZURE_CONTAINER or BACKUP_GCS_BUCKET (docs/storage.md).',
      );
    }
    return Repository.open(storage);
  }
  return Repository.open(openStorage(await resolveRepository(value)));
}

function copyProgress(p: CopyProgress): Progress {
  return {
    phase: p.phase,
    collectionsDone: p.packsDone,
    collectionsTotal: p.packsTotal,
    rows: 0,
    bytes: p.bytesCopied,
    bytesTotal: p.bytesTotal,
  };
}

function buildProgram(io: Io, signal: AbortSignal): Command {
  const program = new Command('cairn')
    .description('Backup and restore for PostgreSQL and SQLite databases.')
    .version('0.1.0')
    .option('--debug', 'print stack traces with errors')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s.trimEnd()) })
    .showHelpAfterError('(run with --help for usage)');

  const repo = program.command('repo').description('create and inspect repositories');
  repo
    .command('init <repo>')
    .description('create a repository (a registered name, a path, or a URL)')
    .option('--compression <algorithm>', 'default compression: zstd, gzip or none', 'zstd')
    .option('--level <level>', 'default level: fastest, default or best', 'default')
    .option('--pack-size <MiB>', 'target pack size in MiB', '16')
    .option('--json', 'print JSON')
    .action(async (url: string, opts: { compression: string; level: string; packSize: string; json?: boolean }) => {
      const packSize = Number(opts.packSize);
      if (!Number.isFinite(packSize) || packSize <= 0) throw new UsageError(`Invalid --pack-size "${opts.packSize}": give a number of MiB, e.g. 16.`);
      const repository = await Repository.init(openStorage(await resolveRepository(url)), {
        compression: compressionFrom(opts, { algorithm: 'zstd', level: 'default' }),
        packSize: Math.round(packSize * 1024 * 1024),
      });
      if (opts.json) io.out(JSON.stringify({ location: repository.location, config: repository.config }, null, 2));
      else io.out(`Initialised repository ${repository.location} (id ${repository.config.id}).`);
    });

  repo
    .command('add <name> <url>')
    .description('register a repository under a name usable wherever a repository is taken')
    .option('--json', 'print JSON')
    .action(async (name: string, url: string, opts: { json?: boolean }) => {
      validateRepoName(name);
      const storage = openStorage(url); // checks that the URL parses; the repository need not exist yet
      // A plain path is kept absolute, so that the name means the same folder from anywhere.
      if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) url = resolvePath(url);
      await addRepository(name, url);
      if (opts.json) io.out(JSON.stringify({ name, url, location: storage.location, config: configPath() }, null, 2));
      else io.out(`Registered repository ${name} -> ${storage.location} (in ${configPath()}).`);
    });

  repo
    .command('list')
    .description('list the registered repositories')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const repos = await listRepositories();
      if (opts.json) return io.out(JSON.stringify(repos, null, 2));
      if (repos.length === 0) return io.out(`No repositories registered (${configPath()}). Add one with: cairn repo add <name> <url>`);
      io.out(table(['NAME', 'URL', 'ADDED'], repos.map((r) => [r.name, r.url, r.addedAt ?? '-'])));
    });

  repo
    .command('remove <name>')
    .description('forget a registered name (the repository and its backups are not touched)')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { json?: boolean }) => {
      const url = await removeRepository(name);
      if (opts.json) io.out(JSON.stringify({ removed: name, url, dataDeleted: false }, null, 2));
      else io.out(`Removed the name ${name} (${url}). No data was deleted: the repository and its backups are still there.`);
    });

  const backup = program.command('backup').description('create, list, show and delete backups');
  selectionOptions(
    backup
      .command('create')
      .description('back up a database into a repository')
      .requiredOption('--source <url>', 'database URL, e.g. sqlite:///path/to/app.db')
      .addOption(repoOption())
      .option('--id <id>', 'backup id (lowercase letters, digits, - and _); generated when absent')
      .option('--expires <duration>', 'delete it automatically after this long (30m, 12h, 3d, 4w, 6mo, 1y; default: never)'),
  )
    .option('--compression <algorithm>', 'zstd, gzip or none (default: the repository\'s)')
    .option('--level <level>', 'fastest, default or best (default: the repository\'s)')
    .option('--jobs <n>', 'tables read in parallel (default: the number of cores)')
    .option('--roles', 'also record the server\'s roles and memberships (PostgreSQL; no password hashes)')
    .option('--roles-with-passwords', 'with --roles: include password hashes')
    .option('--json', 'print the manifest as JSON')
    .addOption(serverOption())
    .option('--no-wait', 'with a server: print the job id at once instead of waiting')
    .action(async (opts: BackupCreateFlags) => {
      const selection = selectionFrom(opts);
      const jobs = parseJobs(opts.jobs);
      if (opts.rolesWithPasswords && !opts.roles) throw new UsageError('--roles-with-passwords goes with --roles.');
      if (opts.expires !== undefined) parseDuration(opts.expires, '--expires');
      const client = await serverClient(opts);
      if (client && opts.expires !== undefined) throw new UsageError('--expires is not available through a server yet: set it afterwards with cairn backup set-expiry.');
      if (client) {
        if (opts.roles) throw new UsageError('--roles is not available through a server yet: run the backup without --server.');
        const repo = requireRepoName(opts.repo);
        const compression = opts.compression || opts.level ? compressionFrom(opts, { algorithm: 'zstd', level: 'default' }) : undefined;
        const final = await runOnServer(client, io, signal, opts, () =>
          client.backups.create({
            source: opts.source,
            repository: repo,
            ...(opts.id !== undefined ? { id: opts.id } : {}),
            ...selection,
            ...(compression || jobs ? { config: { ...(opts.compression ? { compression: compression?.algorithm } : {}), ...(opts.level ? { level: compression?.level } : {}), ...(jobs ? { jobs } : {}) } } : {}),
          }),
        );
        if (!final) return;
        const m = (await client.backups.get(String(final.result?.backupId), repo)) as unknown as BackupManifest;
        if (opts.json) return io.out(JSON.stringify(m, null, 2));
        return printBackupCreated(io, m, Date.parse(final.createdAt));
      }
      if (opts.wait === false) throw new UsageError('--no-wait needs a server (--server or CAIRN_SERVER): without one the backup runs in this process.');
      const source = openSource(opts.source, { roles: Boolean(opts.roles), rolesWithPasswords: Boolean(opts.rolesWithPasswords) });
      const repository = await openRepository(opts.repo);
      const compression = compressionFrom(opts, repository.config.compression);
      const bar = new ProgressBar('backup', process.stderr, !opts.json && Boolean(process.stderr.isTTY));
      const started = Date.now();
      let manifest: BackupManifest;
      try {
        manifest = await runBackup({
          repo: repository,
          source,
          ...(opts.expires !== undefined ? { expiresAt: addDuration(new Date(), parseDuration(opts.expires, '--expires')) } : {}),
          ...(opts.id !== undefined ? { id: opts.id } : {}),
          selection,
          compression,
          ...(jobs !== undefined ? { jobs } : {}),
          signal,
          onProgress: (p) => bar.update(p),
        });
      } finally {
        bar.done();
      }
      if (opts.json) return io.out(JSON.stringify(manifest, null, 2));
      printBackupCreated(io, manifest, started);
    });

  backup
    .command('list')
    .description('list the backups in a repository, oldest first')
    .addOption(repoOption())
    .option('--schedule <name>', 'only the backups this schedule made')
    .option('--json', 'print JSON')
    .action(async (opts: CommonOptions & { schedule?: string }) => {
      const repository = await openRepository(opts.repo);
      const all = await repository.readAllManifests(signal);
      for (const d of all.damaged) io.err(`cairn: warning: backup ${d.id} is not listed: ${d.message} Run cairn verify and cairn repair.`);
      const manifests = all.manifests.filter((m) => opts.schedule === undefined || m.schedule === opts.schedule);
      if (opts.json) {
        return io.out(JSON.stringify(manifests.map(({ collections: _c, ...rest }) => rest), null, 2));
      }
      if (manifests.length === 0) return io.out(`No backups in ${repository.location}.`);
      io.out(
        table(
          ['ID', 'CREATED (UTC)', 'TYPE', 'SOURCE', 'COLLECTIONS', 'ROWS', 'SIZE', 'STORED', 'NEW', 'EXPIRES'],
          manifests.map((m) => [
            m.id,
            m.createdAt,
            m.schedule ? `scheduled (${m.schedule})` : m.type,
            `${m.source.kind}:${m.source.name}`,
            String(m.totals.collections),
            formatCount(m.totals.rows),
            formatBytes(m.totals.logicalBytes),
            formatBytes(m.totals.storedBytes),
            formatBytes(m.totals.newBytes),
            m.expiresAt ?? 'never',
          ]),
        ),
      );
    });

  backup
    .command('show <id>')
    .description('details of one backup: collections, row counts, sizes, new and reused bytes')
    .addOption(repoOption())
    .option('--json', 'print the manifest as JSON')
    .action(async (id: string, opts: CommonOptions) => {
      const repository = await openRepository(opts.repo);
      const m = await repository.readManifest(id, signal);
      if (opts.json) return io.out(JSON.stringify(m, null, 2));
      const t = m.totals;
      io.out(
        [
          `Backup      ${m.id}`,
          `Created     ${m.createdAt} (completed ${m.completedAt})`,
          `Type        ${m.type}`,
          `Expires     ${m.expiresAt ?? 'never'}`,
          `Source      ${m.source.location} (${m.source.kind} ${m.source.serverVersion})`,
          `Scope       ${m.scope.include ? `include ${m.scope.include.join(',')}` : m.scope.exclude ? `exclude ${m.scope.exclude.join(',')}` : 'everything'}`,
          `Compression ${m.compression.algorithm} (${m.compression.level})`,
          `Rows        ${formatCount(t.rows)} in ${t.collections} collections`,
          `Size        ${formatBytes(t.logicalBytes)} logical, ${formatBytes(t.storedBytes)} stored`,
          `New data    ${formatBytes(t.newBytes)} new, ${formatBytes(t.reusedBytes)} reused from earlier backups (${t.newChunks} of ${t.chunks} chunks new)`,
          ...m.warnings.map((w) => `Warning     ${w}`),
          ...m.collections
            .filter((c) => c.damage)
            .map((c) => `Damaged     ${c.name}: ${plural(c.damage?.missingChunks ?? 0, 'chunk')} lost (found by cairn repair at ${c.damage?.detectedAt}); the next backup of the same data may heal it`),
          '',
          table(
            ['COLLECTION', 'KIND', 'ROWS', 'LOGICAL', 'STORED', 'NEW', 'CHUNKS'],
            m.collections.map((c) => [
              c.name,
              c.kind,
              c.dataFormat && c.selectable !== false ? formatCount(c.rowCount) : '-',
              formatBytes(c.logicalBytes),
              formatBytes(c.storedBytes),
              formatBytes(c.newBytes),
              c.damage ? `${c.chunks.length} (${c.damage.missingChunks} lost)` : String(c.chunks.length),
            ]),
          ),
        ].join('\n'),
      );
    });

  backup
    .command('delete <id>')
    .description('delete a backup (its space is reclaimed by cairn prune)')
    .addOption(repoOption())
    .option('--json', 'print JSON')
    .action(async (id: string, opts: CommonOptions) => {
      const repository = await openRepository(opts.repo);
      await repository.deleteBackup(id);
      if (opts.json) io.out(JSON.stringify({ deleted: id }));
      else io.out(`Deleted backup ${id}. Run cairn prune${opts.repo ? ` --repo ${opts.repo}` : ''} to reclaim its space.`);
    });

  backup
    .command('set-expiry <id> <when>')
    .description('change when a backup expires: a duration from now (30d, 6mo…), a date (2027-01-31 or ISO time), or never')
    .addOption(repoOption())
    .option('--json', 'print JSON')
    .action(async (id: string, when: string, opts: CommonOptions) => {
      const repository = await openRepository(opts.repo);
      const manifest = await repository.readManifest(id, signal);
      manifest.expiresAt = parseExpiry(when, new Date());
      await repository.updateManifest(manifest, signal);
      if (opts.json) io.out(JSON.stringify({ id, expiresAt: manifest.expiresAt }));
      else io.out(`Backup ${id} ${manifest.expiresAt ? `expires at ${manifest.expiresAt}` : 'never expires'}.`);
    });

  backup
    .command('expire')
    .description('delete every backup whose expiry has passed (manual or scheduled; those without an expiry are never touched)')
    .addOption(repoOption())
    .option('--dry-run', 'list them, delete nothing')
    .option('--json', 'print JSON')
    .action(async (opts: CommonOptions & { dryRun?: boolean }) => {
      const repository = await openRepository(opts.repo);
      const { expiredBackups } = await import('../jobs/scheduled-backup.js');
      const expired = expiredBackups(await repository.listManifests(signal), new Date());
      if (!opts.dryRun) for (const m of expired) await repository.deleteBackup(m.id);
      const ids = expired.map((m) => m.id);
      if (opts.json) return io.out(JSON.stringify({ dryRun: Boolean(opts.dryRun), expired: ids }, null, 2));
      if (ids.length === 0) return io.out('No backup has expired.');
      io.out(`${opts.dryRun ? 'Would delete' : 'Deleted'} ${plural(ids.length, 'expired backup')}: ${ids.join(', ')}.${opts.dryRun ? '' : ' Run cairn prune to reclaim their space.'}`);
    });

  selectionOptions(
    program
      .command('restore <id>')
      .description('restore a backup into a database')
      .addOption(repoOption())
      .requiredOption('--to <url>', 'target database URL, e.g. sqlite:///path/to/copy.db'),
  )
    .option('--rename <old=new>', 'restore a collection under another name (repeatable)', collect)
    .addOption(new Option('--on-conflict <policy>', 'when a target collection exists').choices(['fail', 'overwrite']).default('fail'))
    .option('--jobs <n>', 'tables loaded in parallel (default: the number of cores)')
    .option('--roles', 'also restore the roles recorded in the backup (PostgreSQL)')
    .option('--json', 'print JSON')
    .addOption(serverOption())
    .option('--no-wait', 'with a server: print the job id at once instead of waiting')
    .action(
      async (id: string, opts: RestoreFlags) => {
        const selection = selectionFrom(opts);
        const jobs = parseJobs(opts.jobs);
        const renames = parseRenames(opts.rename);
        const client = await serverClient(opts);
        if (client) {
          const started = Date.now();
          const final = await runOnServer(client, io, signal, opts, () =>
            client.restores.create({
              backup: id,
              repository: requireRepoName(opts.repo),
              target: opts.to,
              ...selection,
              ...(renames.size ? { renames: Object.fromEntries(renames) } : {}),
              onConflict: opts.onConflict,
              ...(opts.roles ? { roles: true } : {}),
              ...(jobs ? { jobs } : {}),
            }),
          );
          if (!final) return;
          const summary = final.result as { backupId: string; target: string; collections: number; rows: number };
          if (opts.json) return io.out(JSON.stringify(summary, null, 2));
          return io.out(
            `Restored backup ${summary.backupId} into ${summary.target} in ${formatDuration(Date.now() - started)}: ` +
              `${plural(summary.collections, 'collection')}, ${plural(summary.rows, 'row')}.`,
          );
        }
        if (opts.wait === false) throw new UsageError('--no-wait needs a server (--server or CAIRN_SERVER): without one the restore runs in this process.');
        const target = openTarget(opts.to);
        const repository = await openRepository(opts.repo);
        const bar = new ProgressBar('restore', process.stderr, !opts.json && Boolean(process.stderr.isTTY));
        const started = Date.now();
        try {
          const summary = await runRestore({
            repo: repository,
            backupId: id,
            target,
            selection,
            renames,
            onConflict: opts.onConflict,
            ...(jobs !== undefined ? { jobs } : {}),
            roles: Boolean(opts.roles),
            signal,
            onProgress: (p) => bar.update(p),
          });
          bar.done();
          if (opts.json) return io.out(JSON.stringify(summary, null, 2));
          io.out(
            `Restored backup ${summary.backupId} into ${summary.target} in ${formatDuration(Date.now() - started)}: ` +
              `${plural(summary.collections, 'collection')}, ${plural(summary.rows, 'row')}.`,
          );
        } finally {
          bar.done();
        }
      },
    );

  program
    .command('copy <id>')
    .description('copy one backup to another repository (any backends); only missing chunks are sent')
    .requiredOption('--from <repo>', 'source repository: a registered name, a path, or a URL')
    .requiredOption('--to <repo>', 'target repository (initialised): a registered name, a path, or a URL')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { from: string; to: string; json?: boolean }) => {
      const from = await openRepository(opts.from);
      const to = await openRepository(opts.to);
      const bar = new ProgressBar('copy', process.stderr, !opts.json && Boolean(process.stderr.isTTY));
      const started = Date.now();
      let result;
      try {
        result = await runCopy({ from, to, backupId: id, signal, onProgress: (p) => bar.update(copyProgress(p)) });
      } finally {
        bar.done();
      }
      if (opts.json) return io.out(JSON.stringify(result, null, 2));
      io.out(
        `Copied backup ${result.backupId} from ${result.from} to ${result.to} in ${formatDuration(Date.now() - started)}: ` +
          `${plural(result.chunksCopied, 'chunk')} sent (${formatBytes(result.bytesCopied)}), ${formatCount(result.chunksSkipped)} already there; verified.`,
      );
    });

  program
    .command('verify [id]')
    .description('check that backups can be restored (all backups when no id is given)')
    .addOption(repoOption())
    .option('--read-data', 'download every pack and check every chunk (slow, thorough)')
    .option('--json', 'print JSON')
    .action(async (id: string | undefined, opts: CommonOptions & { readData?: boolean }) => {
      const repository = await openRepository(opts.repo);
      const all = id
        ? await repository.readManifestChecked(id, signal).then((r) => ({ manifests: [r.manifest], damaged: [], unchecksummed: r.checksummed ? [] : [id] }))
        : await repository.readAllManifests(signal);
      const report = await verifyBackupsLocked(repository, all.manifests, { readData: Boolean(opts.readData), signal });
      // A manifest that cannot be read is a backup that cannot be restored: it is a problem too.
      for (const d of all.damaged) report.problems.unshift({ object: `backups/${d.id}`, message: d.message, affects: [d.id] });
      // And one a restore would refuse (an edited definition under a recomputed checksum).
      report.problems.unshift(...definitionProblems(all.manifests));
      // Manifests written before checksums (format-1 repositories): readable, but an edit would go unnoticed.
      if (all.unchecksummed.length > 0 && !opts.json) {
        io.err(`cairn: warning: ${all.unchecksummed.length} manifest(s) carry no checksum (written before repository format 2), so an edit to them cannot be detected: ${all.unchecksummed.slice(0, 10).join(', ')}${all.unchecksummed.length > 10 ? ', …' : ''}.`);
      }
      if (opts.json) io.out(JSON.stringify({ ok: report.problems.length === 0, ...report, unchecksummed: all.unchecksummed }, null, 2));
      if (report.problems.length > 0) throw verifyFailure(report);
      if (!opts.json) {
        io.out(
          `Verified ${report.backups.length} backup(s): ${report.chunks} chunks in ${report.packs} packs` +
            (opts.readData ? `, ${formatBytes(report.bytesRead)} read and checked.` : ' present (add --read-data to check their content).'),
        );
      }
    });

  program
    .command('prune')
    .description('remove data that no backup references (refuses, deleting nothing, while the repository is inconsistent)')
    .addOption(repoOption())
    .option('--dry-run', 'report what would be removed, remove nothing')
    .option('--grace <duration>', 'delete or repack unreferenced packs only once they are this old on the storage clock: a running backup may still need them (30m, 1h, 1d; 0 = at once)', '1h')
    .option('--json', 'print JSON')
    .action(async (opts: CommonOptions & { dryRun?: boolean; grace: string }) => {
      const unindexedGraceMs = parseGrace(opts.grace);
      const repository = await openRepository(opts.repo);
      const report = await prune(repository, { dryRun: Boolean(opts.dryRun), unindexedGraceMs, signal });
      if (opts.json) return io.out(JSON.stringify(report, null, 2));
      for (const key of report.foreignObjects) io.err(`cairn: warning: ${key} is not a pack; prune left it alone.`);
      io.out(
        `${report.dryRun ? 'Would remove' : 'Removed'} ${report.packsDeleted} of ${report.packsTotal} packs` +
          (report.packsRepacked ? `, ${report.dryRun ? 'would repack' : 'repacked'} ${report.packsRepacked}` : '') +
          `, ${report.dryRun ? 'freeing about' : 'freed'} ${formatBytes(report.bytesFreed)}` +
          (report.packsKeptYoung ? `; kept ${plural(report.packsKeptYoung, 'unreferenced pack')} younger than --grace ${opts.grace}` : '') +
          (report.staleLocksRemoved ? `; removed ${report.staleLocksRemoved} stale lock(s)` : '') +
          '.',
      );
    });

  program
    .command('repair')
    .description('rebuild the index from the packs present, salvage intact blobs of damaged packs, and record which backups lost what')
    .addOption(repoOption())
    .option('--dry-run', 'report what would change, change nothing')
    .option('--json', 'print JSON')
    .action(async (opts: CommonOptions & { dryRun?: boolean }) => {
      const repository = await openRepository(opts.repo);
      const report = await repair(repository, { dryRun: Boolean(opts.dryRun), signal });
      if (opts.json) return io.out(JSON.stringify(report, null, 2));
      const would = report.dryRun ? 'would ' : '';
      io.out(
        `Read ${plural(report.packsRead, 'pack')}: ${report.packsIntact} intact, ${report.packsDamaged.length} damaged` +
          (report.packsDamaged.length ? ` (${report.blobsSalvaged} blob(s) ${would}saved, ${report.blobsLost} lost)` : '') +
          `; ${report.dryRun ? 'would write' : 'wrote'} one index document in place of ${plural(report.indexesReplaced, 'old one')}` +
          (report.indexesDamaged.length ? ` (${report.indexesDamaged.length} damaged)` : '') +
          '.',
      );
      for (const id of report.manifestsQuarantined) io.out(`Backup ${id}: its manifest is unreadable; ${would}moved to quarantine/backups/.`);
      for (const key of report.foreignLeftAlone) io.err(`cairn: warning: ${key} is not a cairn object; repair left it alone: move it out of the repository (prune refuses while it is there).`);
      for (const b of report.backupsDamaged) {
        io.out(`Backup ${b.id} lost data in ${b.collections.map((c) => `${c.name} (${plural(c.missingChunks, 'chunk')})`).join(', ')}; the other collections restore. The next backup of the same data uploads what is missing again.`);
      }
      for (const id of report.backupsHealed) io.out(`Backup ${id} is whole again: a later backup uploaded its missing chunks.`);
      if (report.backupsDamaged.length === 0 && report.manifestsQuarantined.length === 0) io.out('Every backup is complete.');
    });

  program
    .command('unlock')
    .description('remove stale repository locks (of processes that died); --remove-all removes every lock')
    .addOption(repoOption())
    .option('--remove-all', 'remove every lock, also of running processes: only when you are sure no cairn uses the repository')
    .option('--json', 'print JSON')
    .action(async (opts: CommonOptions & { removeAll?: boolean }) => {
      const repository = await openRepository(opts.repo);
      const removed = await removeLocks(repository.storage, { all: Boolean(opts.removeAll), signal });
      const left = await listLocks(repository.storage, signal);
      if (opts.json) return io.out(JSON.stringify({ removed, remaining: left.map((l) => ({ key: l.key, ...l.doc, problem: l.problem })) }, null, 2));
      io.out(`Removed ${plural(removed.length, 'lock')}${removed.length ? `: ${removed.join(', ')}` : ''}.`);
      for (const l of left) {
        io.out(
          l.doc
            ? `Still held: ${l.key}, "${l.doc.operation}" (${l.doc.exclusive ? 'exclusive' : 'shared'}, pid ${l.doc.pid} on ${l.doc.hostname}, since ${l.doc.createdAt}).`
            : `Still there: ${l.key}, unreadable (${l.problem ?? 'damaged'}); it expires by age, or --remove-all removes it.`,
        );
      }
    });

  const job = program.command('job').description('jobs of a cairn server (--server or CAIRN_SERVER, token in CAIRN_TOKEN)');
  job
    .command('list')
    .description('list jobs, newest first')
    .addOption(serverOption())
    .option('--json', 'print JSON')
    .action(async (opts: ServerFlags & { json?: boolean }) => {
      const client = await needServer(opts);
      const jobs = await client.jobs.list();
      if (opts.json) return io.out(JSON.stringify(jobs, null, 2));
      if (jobs.length === 0) return io.out('No jobs.');
      io.out(table(['ID', 'KIND', 'STATE', 'CREATED', 'PROGRESS', 'ERROR'], jobs.map((j) => [j.id, j.kind, j.state, j.createdAt, formatBytes(j.progress.bytes), j.error?.message ?? ''])));
    });
  for (const [name, description] of [
    ['show', 'show one job'],
    ['wait', 'wait until a job has ended; exits as the job did'],
    ['cancel', 'cancel a job'],
  ] as const) {
    job
      .command(`${name} <id>`)
      .description(description)
      .addOption(serverOption())
      .option('--json', 'print JSON')
      .action(async (id: string, opts: ServerFlags & { json?: boolean }) => {
        const client = await needServer(opts);
        const record = name === 'show' ? await client.jobs.get(id) : name === 'cancel' ? await client.jobs.cancel(id) : await client.jobs.wait(id, { signal, pollMs: 300 });
        if (opts.json) io.out(JSON.stringify(record, null, 2));
        else io.out(`${record.id}  ${record.kind}  ${record.state}${record.error ? `  ${record.error.code}: ${record.error.message}` : ''}`);
        if (name === 'wait' && record.state !== 'SUCCESS') throw jobError(record);
      });
  }

  const source = program.command('source').description('database sources registered by name for cairn server and its schedules (stored in its --data-dir)');
  source
    .command('add <name> <url>')
    .description('register a source; its URL (with any password) stays in the server\'s catalog file (mode 0600)')
    .addOption(dataDirOption())
    .option('--json', 'print JSON')
    .action(async (name: string, url: string, opts: { dataDir?: string; json?: boolean }) => {
      const location = openSource(url).location;
      const registry = new SqliteRegistry(catalogPath(opts.dataDir));
      try {
        const { AccessPolicy } = await import('../server/access.js');
        new AccessPolicy({ dataDir: opts.dataDir ?? defaultDataDir(), registry }).checkDatabaseUrl(url, 'That source');
        const r = registry.add('source', name, url, location);
        if (opts.json) io.out(JSON.stringify(r, null, 2));
        else io.out(`Registered source ${name} -> ${location}.`);
      } finally {
        registry.close();
      }
    });
  source
    .command('list')
    .description('list registered sources (never their passwords)')
    .addOption(dataDirOption())
    .option('--json', 'print JSON')
    .action(async (opts: { dataDir?: string; json?: boolean }) => {
      const registry = new SqliteRegistry(catalogPath(opts.dataDir));
      try {
        const list = registry.list('source');
        if (opts.json) return io.out(JSON.stringify(list, null, 2));
        io.out(list.length ? table(['NAME', 'LOCATION', 'ADDED'], list.map((r) => [r.name, r.location, r.createdAt])) : 'No sources registered.');
      } finally {
        registry.close();
      }
    });
  source
    .command('remove <name>')
    .description('forget a source; refused while enabled schedules use it (--force disables them); its backups are kept unless --delete-scheduled-backups (manual backups always are)')
    .option('--delete-scheduled-backups', 'also delete the backups its schedules made')
    .option('--force', 'disable the enabled schedules that use it, and remove it')
    .addOption(dataDirOption())
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { deleteScheduledBackups?: boolean; force?: boolean; dataDir?: string; json?: boolean }) => {
      const registry = new SqliteRegistry(catalogPath(opts.dataDir));
      const store = new SqliteScheduleStore(catalogPath(opts.dataDir));
      let deleted: string[] = [];
      let disabled: string[] = [];
      try {
        const url = registry.url('source', name);
        if (url === undefined) throw new NotFoundError(`No source named "${name}" is registered; list them with: cairn source list`);
        const { deleteScheduledBackupsOf, enabledSchedulesUsing, sourceInUse } = await import('../jobs/scheduled-backup.js');
        // Its enabled schedules would fail at every run: refused unless --force, which disables them.
        const using = enabledSchedulesUsing(store.list(), name);
        if (using.length > 0 && !opts.force) throw sourceInUse(name, using, '--force');
        if (opts.deleteScheduledBackups) deleted = await deleteScheduledBackupsOf(name, openSource(url).location, store.list(), openRepository);
        for (const s of using) store.setEnabled(s, false);
        disabled = using;
        registry.remove('source', name);
      } finally {
        registry.close();
        store.close();
      }
      if (opts.json) return io.out(JSON.stringify({ removed: name, deletedScheduledBackups: deleted, disabledSchedules: disabled }, null, 2));
      io.out(
        `Removed source ${name}.${deleted.length ? ` Deleted ${plural(deleted.length, 'scheduled backup')} (run cairn prune to reclaim the space); manual backups are kept.` : ' Its backups are kept.'}` +
          (disabled.length ? ` Disabled ${plural(disabled.length, 'schedule')} that used it: ${disabled.join(', ')}.` : ''),
      );
    });

  const schedule = program.command('schedule').description('automatic backups, run by cairn server (stored in its --data-dir)');
  const intOpt = (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`Invalid count "${v}": give a whole number from 1.`);
    return n;
  };
  selectionOptions(
    schedule
      .command('add <name>')
      .description('add a schedule')
      .requiredOption('--source <url>', 'database URL (or a source registered on the server)')
      .addOption(repoOption())
      .requiredOption('--cron <expression>', 'five cron fields ("0 3 * * *") or @hourly, @daily, @weekly, @monthly, @yearly'),
  )
    .option('--timezone <zone>', 'IANA time zone of the cron expression and of daily/weekly/… retention (default UTC)')
    .option('--pattern <pattern>', 'backup ids: {source}, {schedule} and a time like {yyyyMMdd-HHmmss} (UTC)')
    .option('--keep-last <n>', 'keep the newest n backups of this schedule', intOpt)
    .option('--keep-within <duration>', 'keep every backup of this schedule younger than this (3d, 4w, 6mo…)')
    .option('--keep-hourly <n>', 'keep the newest backup of each of the last n hours that have one', intOpt)
    .option('--keep-daily <n>', 'same per day', intOpt)
    .option('--keep-weekly <n>', 'same per ISO week', intOpt)
    .option('--keep-monthly <n>', 'same per month', intOpt)
    .option('--keep-yearly <n>', 'same per year', intOpt)
    .option('--expires <duration>', 'each backup expires after this long (deleted even if retention would keep it)')
    .option('--disabled', 'add it paused')
    .addOption(dataDirOption())
    .option('--json', 'print JSON')
    .action(async (name: string, opts: SelectionFlags & { source: string; repo?: string; cron: string; timezone?: string; pattern?: string; keepLast?: number; keepWithin?: string; keepHourly?: number; keepDaily?: number; keepWeekly?: number; keepMonthly?: number; keepYearly?: number; expires?: string; disabled?: boolean; dataDir?: string; json?: boolean }) => {
      const { buildScheduleSpec } = await import('../jobs/schedule-spec.js');
      const selection = selectionFrom(opts);
      const spec = buildScheduleSpec(
        {
          name,
          source: opts.source,
          repository: requireRepoName(opts.repo),
          cron: opts.cron,
          ...(opts.timezone ? { timezone: opts.timezone } : {}),
          ...selection,
          ...(opts.pattern ? { pattern: opts.pattern } : {}),
          ...Object.fromEntries((['keepLast', 'keepWithin', 'keepHourly', 'keepDaily', 'keepWeekly', 'keepMonthly', 'keepYearly', 'expires'] as const).filter((k) => opts[k] !== undefined).map((k) => [k, opts[k]])),
          ...(opts.disabled ? { disabled: true } : {}),
        },
        new Date(),
      );
      // A plain path is kept absolute, so that the server finds the same folder.
      if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(spec.repository) && /[/.]/.test(spec.repository)) spec.repository = resolvePath(spec.repository);
      const store = new SqliteScheduleStore(catalogPath(opts.dataDir));
      try {
        store.add(spec);
      } finally {
        store.close();
      }
      const { cronOf } = await import('../jobs/scheduler.js');
      const next = spec.enabled ? cronOf(spec.cron, spec.timezone).nextRun(new Date())?.toISOString() ?? null : null;
      const { publicSchedule } = await import('../server/public.js');
      if (opts.json) return io.out(JSON.stringify({ ...publicSchedule(spec), nextRun: next }, null, 2));
      io.out(`Added schedule ${name} (${spec.cron} ${spec.timezone}); ${next ? `next run ${next}` : 'disabled'}. cairn server runs it.`);
    });
  schedule
    .command('list')
    .description('list schedules with their next run')
    .addOption(dataDirOption())
    .option('--json', 'print JSON')
    .action(async (opts: { dataDir?: string; json?: boolean }) => {
      const store = new SqliteScheduleStore(catalogPath(opts.dataDir));
      const { cronOf } = await import('../jobs/scheduler.js');
      const { publicSchedule } = await import('../server/public.js');
      try {
        // Sources as registered names or locations: a URL's password never leaves the catalog.
        const list = store.list().map((s) => ({ ...publicSchedule(s), nextRun: s.enabled ? cronOf(s.cron, s.timezone).nextRun(new Date())?.toISOString() ?? null : null }));
        if (opts.json) return io.out(JSON.stringify(list, null, 2));
        if (list.length === 0) return io.out('No schedules. Add one with: cairn schedule add <name> --source … --repo … --cron "0 3 * * *"');
        io.out(table(['NAME', 'CRON', 'ZONE', 'SOURCE', 'ENABLED', 'NEXT RUN', 'LAST DUE'], list.map((s) => [s.name, s.cron, s.timezone, s.source, s.enabled ? 'yes' : 'no', s.nextRun ?? '-', s.lastDue ?? '-'])));
      } finally {
        store.close();
      }
    });
  schedule
    .command('show <name>')
    .description('a schedule, its retention and its recent runs')
    .addOption(dataDirOption())
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { dataDir?: string; json?: boolean }) => {
      const store = new SqliteScheduleStore(catalogPath(opts.dataDir));
      const { publicRuns, publicSchedule } = await import('../server/public.js');
      try {
        const stored = store.get(name);
        const s = publicSchedule(stored);
        const runs = publicRuns(store.runs(name, 20), stored);
        if (opts.json) return io.out(JSON.stringify({ schedule: s, runs }, null, 2));
        io.out(
          [
            `Schedule ${s.name} (${s.enabled ? 'enabled' : 'disabled'})`,
            `  id           ${s.id}`,
            `  cron         ${s.cron} (${s.timezone})`,
            `  source       ${s.source}`,
            `  repository   ${s.repository}`,
            `  retention    ${Object.entries(s.retention).map(([k, v]) => `${k}=${v}`).join(' ') || 'none (keeps everything)'}`,
            `  expires      ${s.expires ?? 'never'}`,
            `  runs         ${runs.map((r) => `${r.dueAt} ${r.status}${r.jobId ? ` (job ${r.jobId})` : ''}${r.reason ? `: ${r.reason}` : ''}`).join('\n               ') || 'none yet'}`,
          ].join('\n'),
        );
      } finally {
        store.close();
      }
    });
  for (const [cmd, description] of [['enable', 'resume a schedule'], ['disable', 'pause a schedule'], ['remove', 'remove a schedule (its backups are kept)']] as const) {
    schedule
      .command(`${cmd} <name>`)
      .description(description)
      .addOption(dataDirOption())
      .action(async (name: string, opts: { dataDir?: string }) => {
        const store = new SqliteScheduleStore(catalogPath(opts.dataDir));
        try {
          if (cmd === 'remove') store.remove(name);
          else store.setEnabled(name, cmd === 'enable');
        } finally {
          store.close();
        }
        io.out(cmd === 'remove' ? `Removed schedule ${name}; its backups are kept.` : `Schedule ${name} ${cmd}d.`);
      });
  }
  schedule
    .command('run-now <name>')
    .description('run a schedule once now (its retention applies afterwards)')
    .addOption(dataDirOption())
    .addOption(serverOption())
    .option('--json', 'print JSON')
    .action(async (name: string, opts: ServerFlags & { dataDir?: string; json?: boolean }) => {
      const client = await serverClient(opts);
      let job: JobRecord;
      if (client) {
        const { CairnApiError } = await import('../sdk/index.js');
        try {
          job = await client.schedules.runNow(name);
        } catch (err) {
          // 409 when its database is busy, else the real reason (404 unknown source, …): exit codes follow.
          if (err instanceof CairnApiError) throw apiError(err);
          throw err;
        }
        job = await client.jobs.wait(job.id, { signal, pollMs: 300 });
      } else {
        const [{ SqliteJobCatalog }, { JobCenter }, { Scheduler }, { scheduledBackupLauncher }, { DataDirLock }] = await Promise.all([
          import('../catalog/sqlite.js'),
          import('./../jobs/job-center.js'),
          import('../jobs/scheduler.js'),
          import('../jobs/scheduled-backup.js'),
          import('../server/data-dir-lock.js'),
        ]);
        // Runs the job in this process, like a server would: not beside a server on this data
        // folder (one job per database is enforced within one process); the error names it.
        const lock = DataDirLock.acquire(opts.dataDir ?? defaultDataDir(), 'cairn schedule run-now');
        const store = new SqliteScheduleStore(catalogPath(opts.dataDir));
        const registry = new SqliteRegistry(catalogPath(opts.dataDir));
        const catalog = new SqliteJobCatalog(catalogPath(opts.dataDir));
        const { AccessPolicy } = await import('../server/access.js');
        const access = new AccessPolicy({ dataDir: opts.dataDir ?? defaultDataDir(), registry });
        try {
          const center = new JobCenter(catalog, { log: (line) => io.err(line) });
          const scheduler = new Scheduler(store, {
            now: () => new Date(),
            launch: scheduledBackupLauncher({
              center,
              now: () => new Date(),
              openRepository,
              openSource: (v) => {
                if (/^[a-z0-9][a-z0-9_-]*$/.test(v) && registry.url('source', v) === undefined) {
                  throw new NotFoundError(`Schedule "${name}" names source "${v}", which is not registered: register it (cairn source add ${v} <url>) or change the schedule.`);
                }
                const url = registry.url('source', v) ?? v;
                access.checkDatabaseUrl(url, 'That source');
                return openSource(url);
              },
            }),
          });
          const id = await scheduler.runNow(name);
          job = await center.wait(id);
        } finally {
          store.close();
          registry.close();
          await catalog.close();
          lock.release();
        }
      }
      if (opts.json) io.out(JSON.stringify(job, null, 2));
      if (job.state !== 'SUCCESS') throw jobError(job);
      if (!opts.json) {
        const deleted = (job.result?.deleted as string[] | undefined) ?? [];
        for (const w of (job.result?.warnings as string[] | undefined) ?? []) io.err(`cairn: warning: ${w}`);
        io.out(`Schedule ${name} ran: backup ${String(job.result?.backupId)}${deleted.length ? `; retention and expiry deleted ${deleted.join(', ')}` : ''}.`);
      }
    });

  program
    .command('server')
    .description('serve the REST API; jobs run in this process, their records in --data-dir (docs/api.md)')
    .option('--listen <host:port>', 'address to listen on; 0.0.0.0 to accept other machines', '127.0.0.1:8080')
    .addOption(dataDirOption())
    .addOption(new Option('--catalog <postgres-url>', 'keep job records in PostgreSQL, shared by several servers (default: SQLite in --data-dir)').env('CAIRN_CATALOG'))
    .option('--allow-urls', 'let operator and admin tokens name sources, targets and repositories by URL or path, not only by registered name (never the data folder; viewers never)')
    .addHelpText('after', '\nRequests name registered sources and repositories (cairn source add, POST /v1/sources, POST /v1/repositories)\nand "default", the repository the BACKUP_* variables describe (used when a request names none).')
    .action(async (opts: { listen: string; dataDir?: string; catalog?: string; allowUrls?: boolean }) => {
      const { host, port } = parseListen(opts.listen);
      const { startServer } = await import('../server/index.js');
      const server = await startServer({
        dataDir: opts.dataDir ?? defaultDataDir(),
        ...(opts.catalog ? { catalogUrl: opts.catalog } : {}),
        host,
        port,
        ...(opts.allowUrls ? { allowAdHocUrls: true } : {}),
        log: (line) => io.err(line),
      });
      await new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
      await server.close();
    });

  const token = program.command('token').description('API tokens for cairn server (only their hashes are stored)');
    token
    .command('create')
    .description('create a token and print it once')
    .requiredOption('--role <role>', 'admin (everything), operator (backup, restore, cancel, delete) or viewer (read only)')
    .option('--name <name>', 'a label to recognise it by', '')
    .addOption(dataDirOption())
    .option('--json', 'print JSON')
    .action(async (opts: { role: string; name: string; dataDir?: string; json?: boolean }) => {
      const store = new SqliteTokenStore(catalogPath(opts.dataDir));
      try {
        const t = store.create(opts.role, opts.name);
        if (opts.json) io.out(JSON.stringify(t, null, 2));
        else io.out(`${t.token}\n(token ${t.id}, role ${t.role}: shown once, only its hash is kept; send it as Authorization: Bearer <token>)`);
      } finally {
        store.close();
      }
    });
  token
    .command('list')
    .description('list tokens (never their secrets)')
    .addOption(dataDirOption())
    .option('--json', 'print JSON')
    .action(async (opts: { dataDir?: string; json?: boolean }) => {
      const store = new SqliteTokenStore(catalogPath(opts.dataDir));
      try {
        const list = store.list();
        if (opts.json) io.out(JSON.stringify(list, null, 2));
        else io.out(list.length ? table(['ID', 'ROLE', 'NAME', 'CREATED'], list.map((t) => [t.id, t.role, t.name || '-', t.createdAt])) : 'No tokens. Create one with: cairn token create --role admin');
      } finally {
        store.close();
      }
    });
  token
    .command('revoke <id>')
    .description('revoke a token')
    .addOption(dataDirOption())
    .action(async (id: string, opts: { dataDir?: string }) => {
      const store = new SqliteTokenStore(catalogPath(opts.dataDir));
      try {
        if (!store.revoke(id)) throw new NotFoundError(`No token ${id}; list them with: cairn token list`);
        io.out(`Revoked token ${id}.`);
      } finally {
        store.close();
      }
    });

  return program;
}


/** "host:port", ":port" or "port"; IPv6 hosts in brackets. */
function parseListen(value: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(value) ?? /^()()(\d+)$/.exec(value);
  const port = Number(m?.[3]);
  if (!m || !Number.isInteger(port) || port > 65535) throw new UsageError(`Invalid --listen "${value}": write host:port, e.g. 127.0.0.1:8080.`);
  return { host: m[1] || m[2] || '127.0.0.1', port };
}

function serverOption(): Option {
  return new Option('--server <url>', 'run through a cairn server instead of in this process (token in CAIRN_TOKEN)').env('CAIRN_SERVER');
}

async function serverClient(opts: ServerFlags) {
  if (!opts.server) return undefined;
  const { CairnClient } = await import('../sdk/index.js');
  if (!/^https?:\/\//.test(opts.server)) throw new UsageError(`Invalid --server "${opts.server}": give its URL, e.g. http://127.0.0.1:8080.`);
  return new CairnClient({ url: opts.server, ...(process.env.CAIRN_TOKEN ? { token: process.env.CAIRN_TOKEN } : {}) });
}

async function needServer(opts: ServerFlags) {
  const client = await serverClient(opts);
  if (!client) throw new UsageError('This command talks to a cairn server: pass --server <url> or set CAIRN_SERVER (and CAIRN_TOKEN).');
  return client;
}

function requireRepoName(repo: string | undefined): string {
  if (!repo) throw new UsageError('With --server, name the repository with --repo: a name registered on the server, "default" for its BACKUP_* repository, or a URL when it runs with --allow-urls.');
  return repo;
}

/** The CLI error for a job that did not succeed: the job's own code, so the exit code matches. */
function jobError(job: JobRecord): CairnError {
  const code = job.error?.code;
  const known = code !== undefined && code in EXIT_CODES ? (code as ErrorCode) : job.state === 'CANCELED' ? 'CANCELLED' : 'INTERNAL';
  return new CairnError(known, job.error?.message ?? `Job ${job.id} ended ${job.state}.`);
}

/**
 * Starts a job on the server; with --no-wait prints its id (or record) and returns undefined,
 * else waits for it: Ctrl-C cancels the job on the server. A failed job throws its error.
 */
async function runOnServer(
  client: NonNullable<Awaited<ReturnType<typeof serverClient>>>,
  io: Io,
  signal: AbortSignal,
  opts: ServerFlags & { json?: boolean },
  start: () => Promise<JobRecord>,
): Promise<JobRecord | undefined> {
  const { CairnApiError } = await import('../sdk/index.js');
  let started: JobRecord;
  try {
    started = await start();
  } catch (err) {
    if (err instanceof CairnApiError) throw apiError(err);
    throw err;
  }
  if (opts.wait === false) {
    io.out(opts.json ? JSON.stringify(started, null, 2) : started.id);
    return undefined;
  }
  let final: JobRecord;
  try {
    final = await client.jobs.wait(started.id, { signal, pollMs: 300 });
  } catch (err) {
    if (!signal.aborted) throw err;
    await client.jobs.cancel(started.id).catch(() => undefined);
    final = await client.jobs.wait(started.id, { pollMs: 300 });
  }
  if (final.state !== 'SUCCESS') throw jobError(final);
  return final;
}

function apiError(err: { status: number; code: string; message: string }): CairnError {
  if (err.code in EXIT_CODES) return new CairnError(err.code as ErrorCode, err.message);
  if (err.status === 401 || err.status === 403) return new UsageError(`${err.message} (the token comes from CAIRN_TOKEN)`);
  return new CairnError('INTERNAL', err.message);
}

function printBackupCreated(io: Io, manifest: BackupManifest, startedMs: number): void {
  const t = manifest.totals;
  for (const w of manifest.warnings) io.err(`cairn: warning: ${w}`);
  io.out(
    [
      `Backup ${manifest.id} created in ${formatDuration(Date.now() - startedMs)}.`,
      `  source       ${manifest.source.location} (${manifest.source.kind} ${manifest.source.serverVersion})`,
      `  snapshot at  ${manifest.createdAt}`,
      `  collections  ${t.collections}, ${formatCount(t.rows)} rows`,
      `  data         ${formatBytes(t.logicalBytes)} logical, ${formatBytes(t.storedBytes)} stored: ${formatBytes(t.newBytes)} new, ${formatBytes(t.reusedBytes)} reused`,
    ].join('\n'),
  );
}

/** `never`, a duration from `now`, or a date / ISO time; returns the ISO time or null. */
function parseExpiry(when: string, now: Date): string | null {
  if (when.trim().toLowerCase() === 'never') return null;
  if (/^\d{4}-\d{2}-\d{2}/.test(when.trim())) {
    const t = Date.parse(when.trim());
    if (Number.isNaN(t)) throw new UsageError(`Invalid expiry date "${when}": write 2027-01-31, an ISO time, a duration (30d) or never.`);
    return new Date(t).toISOString();
  }
  return addDuration(now, parseDuration(when, 'expiry')).toISOString();
}



/** --data-dir: where cairn server keeps its catalog; the token, source and schedule commands edit it. */
function dataDirOption(): Option {
  return new Option('--data-dir <dir>', "the server's data folder (default: $CAIRN_DATA_DIR, else ~/.local/share/cairn)");
}

const catalogPath = (dataDir: string | undefined): string => catalogFile(dataDir ?? defaultDataDir());
