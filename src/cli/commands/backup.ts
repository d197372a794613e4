/** `cairn backup`: create (here or through a server), list, show, delete, set-expiry, expire. */
import type { Command } from 'commander';
import { addDuration, parseDuration } from '../../core/durations.js';
import { UsageError } from '../../core/errors.js';
import type { BackupManifest } from '../../core/schemas.js';
import { runBackup } from '../../jobs/backup.js';
import { resolveSource } from '../../config/registry.js';
import { openSource } from '../../sources/index.js';
import { namingFor } from '../../sources/registry.js';
import { formatBytes, formatCount, formatDuration, plural, table } from '../format.js';
import {
  openLockingRepository,
  compressionFrom,
  openRepository,
  MAX_LOCK_TIMEOUT_MS,
  parseWaitMs,
  refuseRetryLockRemote,
  retryLockOption,
  type RetryLockFlags,
  parseExpiry,
  parseJobs,
  printJson,
  repoCommand,
  repoOption,
  selectionFrom,
  selectionOptions,
  type CliContext,
  type CommonOptions,
  type Io,
  type SelectionFlags,
} from '../options.js';
import { ProgressBar } from '../progress-bar.js';
import { manifestForDisplay } from '../../sources/redact.js';
import { callServer, requireRepoName, runOnServer, serverClient, serverOption, type ServerFlags } from '../remote.js';

interface BackupCreateFlags extends CommonOptions, SelectionFlags, ServerFlags, RetryLockFlags {
  lockTimeout?: string;
  lockNontransactional?: boolean;
  strict?: boolean;
  source: string;
  expires?: string;
  id?: string;
  compression?: string;
  level?: string;
  jobs?: string;
  roles?: boolean;
  rolesWithPasswords?: boolean;
}

export function registerBackupCommands(program: Command, { io, signal }: CliContext): void {
  const backup = program.command('backup').description('create, list, show and delete backups');
  selectionOptions(
    backup
      .command('create')
      .description('back up a database into a repository')
      .requiredOption('--source <url>', 'database URL, e.g. sqlite:///path/to/app.db; postgres:///app (read as psql reads it: PG* variables, services, the Unix socket); postgres://user@host:port/ (no database): the whole server; mysql://user@host:port/db or mariadb://… (one database; password from the URL, MYSQL_PWD or ~/.my.cnf); or a source name registered with cairn source add')
      .addOption(repoOption())
      .option('--id <id>', 'backup id (lowercase letters, digits, - and _); generated when absent')
      .option('--expires <duration>', 'delete it automatically after this long (30m, 12h, 3d, 4w, 6mo, 1y; default: never)'),
  )
    .option('--compression <algorithm>', 'zstd, gzip or none (default: the repository\'s)')
    .option('--level <level>', 'fastest, default or best (default: the repository\'s)')
    .option('--jobs <n>', 'tables read in parallel (default: the number of cores)')
    .option('--roles', 'also record the roles and memberships (PostgreSQL) or the users and grants of the database (MySQL/MariaDB); no password hashes')
    .option('--roles-with-passwords', 'with --roles: include password hashes')
    .option('--lock-timeout <duration>', 'how long to wait for each table lock (PostgreSQL), the global read lock and table metadata locks (MySQL/MariaDB lock_wait_timeout) or the database file\'s lock (SQLite busy timeout) before failing with exit 7: 1s, 30s, 5m (default 30s PostgreSQL and MySQL, 5s SQLite)')
    .option('--lock-nontransactional', 'MySQL/MariaDB only: hold the global read lock until the non-transactional tables (MyISAM, Aria, …) have been read, so they are consistent with the rest; writes to the whole server wait meanwhile (default: read them after the lock, with a warning naming them; other engines have no such tables)')
    .option('--strict', 'fail (exit 7, nothing committed) when the backup has warnings, e.g. data it cannot capture, instead of committing it with them')
    .addOption(retryLockOption())
    .option('--json', 'print the manifest as JSON')
    .addOption(serverOption())
    .option('--no-wait', 'with a server: print the job id at once instead of waiting')
    .action(async (opts: BackupCreateFlags) => {
      const selection = selectionFrom(opts);
      const jobs = parseJobs(opts.jobs);
      if (opts.rolesWithPasswords && !opts.roles) throw new UsageError('--roles-with-passwords goes with --roles.');
      if (opts.expires !== undefined) parseDuration(opts.expires, '--expires');
      const lockTimeoutMs = opts.lockTimeout !== undefined ? parseWaitMs(opts.lockTimeout, '--lock-timeout', { zero: false, maxMs: MAX_LOCK_TIMEOUT_MS }) : undefined;
      const client = await serverClient(opts);
      if (client) {
        refuseRetryLockRemote(opts);
        const repo = requireRepoName(opts.repo);
        const compression = opts.compression || opts.level ? compressionFrom(opts, { algorithm: 'zstd', level: 'default' }) : undefined;
        const final = await runOnServer(client, io, signal, opts, () =>
          client.backups.create({
            source: opts.source,
            repository: repo,
            ...(opts.id !== undefined ? { id: opts.id } : {}),
            ...selection,
            ...(opts.expires !== undefined ? { expires: opts.expires } : {}),
            ...(opts.roles ? { roles: true } : {}),
            ...(opts.rolesWithPasswords ? { rolesWithPasswords: true } : {}),
            ...(lockTimeoutMs !== undefined ? { lockTimeoutSeconds: lockTimeoutMs / 1000 } : {}),
            ...(opts.lockNontransactional ? { lockNonTransactional: true } : {}),
            ...(opts.strict ? { strict: true } : {}),
            ...(compression || jobs ? { config: { ...(opts.compression ? { compression: compression?.algorithm } : {}), ...(opts.level ? { level: compression?.level } : {}), ...(jobs ? { jobs } : {}) } } : {}),
          }),
        );
        if (!final) return;
        const m = (await client.backups.get(String(final.result?.backupId), { repository: repo })) as unknown as BackupManifest;
        if (opts.json) return printJson(io, manifestForDisplay(m));
        return printBackupCreated(io, m, Date.parse(final.createdAt));
      }
      if (opts.wait === false) throw new UsageError('--no-wait needs a server (--server or CAIRN_SERVER): without one the backup runs in this process.');
      // A registered source name resolves here as a --repo name does: from the catalog of $CAIRN_DATA_DIR.
      const source = openSource(await resolveSource(opts.source), { roles: Boolean(opts.roles), rolesWithPasswords: Boolean(opts.rolesWithPasswords), ...(lockTimeoutMs !== undefined ? { lockTimeoutMs } : {}), ...(opts.lockNontransactional ? { lockNonTransactional: true } : {}) });
      const repository = await openLockingRepository(opts.repo, opts, { io, signal });
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
          ...(opts.strict ? { strict: true } : {}),
          signal,
          onProgress: (p) => bar.update(p),
        });
      } finally {
        bar.done();
      }
      if (opts.json) return printJson(io, manifestForDisplay(manifest));
      printBackupCreated(io, manifest, started);
    });

  repoCommand(backup, 'list', 'list the backups in a repository, oldest first', ['--schedule <name>', 'only the backups this schedule made']).action(async (opts: CommonOptions & { schedule?: string }) => {
    const repository = await openRepository(opts.repo);
    const all = await repository.readAllManifests(signal);
    for (const d of all.damaged) io.err(`cairn: warning: backup ${d.id} is not listed: ${d.message} Run cairn verify and cairn repair.`);
    const manifests = all.manifests.filter((m) => opts.schedule === undefined || m.schedule === opts.schedule);
    if (opts.json) {
      // The keys of GET /v1/backups (repository, backups, damaged, unchecksummed, total, offset, limit). Each collection
      // as the manifest has it, minus its chunk list (and the segments that split it).
      return printJson(io, {
        repository: repository.location,
        backups: manifests.map(manifestForDisplay).map((m) => ({ ...m, collections: m.collections.map(({ chunks: _c, segments: _s, ...collection }) => collection) })),
        damaged: all.damaged,
        unchecksummed: all.unchecksummed,
        // GET /v1/backups's paging fields: the CLI lists every backup (no --limit).
        total: manifests.length,
        offset: 0,
        limit: null,
      });
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
      if (opts.json) return printJson(io, manifestForDisplay(m));
      const t = m.totals;
      io.out(
        [
          `Backup      ${m.id}`,
          `Created     ${m.createdAt} (completed ${m.completedAt})`,
          `Type        ${m.type}`,
          `Expires     ${m.expiresAt ?? 'never'}`,
          `Source      ${m.source.location} (${m.source.kind} ${m.source.serverVersion})`,
          ...(m.source.position ? [`Position    ${formatPosition(m.source.position)}`] : []),
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
              // As the name is typed (--include): a trailing space or a line break is seen.
              c.selectable === false ? c.name : namingFor(m.source.kind).written(c.name),
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

  repoCommand(backup, 'delete <id>', 'delete a backup (its space is reclaimed by cairn prune)').addOption(retryLockOption()).action(async (id: string, opts: CommonOptions & RetryLockFlags) => {
    const repository = await openLockingRepository(opts.repo, opts, { io, signal });
    await repository.deleteBackup(id);
    if (opts.json) printJson(io, { deleted: id }, true);
    else io.out(`Deleted backup ${id}. Run cairn prune${opts.repo ? ` --repo ${opts.repo}` : ''} to reclaim its space.`);
  });

  repoCommand(backup, 'set-expiry <id> <when>', 'change when a backup expires: a duration from now (30d, 6mo…), a date (2027-01-31 or ISO time), or never').addOption(retryLockOption()).addOption(serverOption()).action(async (id: string, when: string, opts: CommonOptions & ServerFlags & RetryLockFlags) => {
    const client = await serverClient(opts);
    if (client) {
      refuseRetryLockRemote(opts);
      const r = await callServer(() => client.backups.setExpiry(id, when, { repository: requireRepoName(opts.repo) }));
      if (opts.json) return printJson(io, { id, expiresAt: r.expiresAt }, true);
      return io.out(`Backup ${id} ${r.expiresAt ? `expires at ${r.expiresAt}` : 'never expires'}.`);
    }
    const repository = await openLockingRepository(opts.repo, opts, { io, signal });
    const manifest = await repository.readManifest(id, signal);
    manifest.expiresAt = parseExpiry(when, new Date());
    await repository.updateManifest(manifest, signal);
    if (opts.json) printJson(io, { id, expiresAt: manifest.expiresAt }, true);
    else io.out(`Backup ${id} ${manifest.expiresAt ? `expires at ${manifest.expiresAt}` : 'never expires'}.`);
  });

  repoCommand(backup, 'expire', 'delete every backup whose expiry has passed (manual or scheduled; those without an expiry are never touched)', ['--dry-run', 'list them, delete nothing']).addOption(retryLockOption()).action(async (opts: CommonOptions & RetryLockFlags & { dryRun?: boolean }) => {
    const repository = await openLockingRepository(opts.repo, opts, { io, signal });
    // Refused on an archive whether or not a backup has expired (deleteBackup would refuse only then).
    if (!opts.dryRun) repository.requireWritable('expire backups in it');
    const { expiredBackups } = await import('../../jobs/scheduled-backup.js');
    const expired = expiredBackups(await repository.listManifests(signal), new Date());
    if (!opts.dryRun) for (const m of expired) await repository.deleteBackup(m.id);
    const ids = expired.map((m) => m.id);
    if (opts.json) return printJson(io, { dryRun: Boolean(opts.dryRun), expired: ids });
    if (ids.length === 0) return io.out('No backup has expired.');
    io.out(`${opts.dryRun ? 'Would delete' : 'Deleted'} ${plural(ids.length, 'expired backup')}: ${ids.join(', ')}.${opts.dryRun ? '' : ' Run cairn prune to reclaim their space.'}`);
  });

}

/** A snapshot's log position for people: "binlog mysql-bin.000003 offset 1234, GTID 0-1-55"; "binlog off". */
export function formatPosition(position: Record<string, string>): string {
  if (position.binlog === 'off') return 'none: the server\'s binary log is off (log_bin = 0), so no log replay can start from this backup';
  const parts: string[] = [];
  if (position.binlogFile !== undefined) parts.push(`binlog ${position.binlogFile} offset ${position.binlogOffset ?? '?'}`);
  if (position.gtid !== undefined && position.gtid !== '') parts.push(`GTID ${position.gtid}`);
  for (const [k, v] of Object.entries(position)) if (!['binlog', 'binlogFile', 'binlogOffset', 'gtid'].includes(k)) parts.push(`${k} ${v}`);
  return parts.join(', ') || 'none recorded';
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
