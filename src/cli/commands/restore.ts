/** `cairn restore`: a backup into a database, here or through a server. */
import { Option, type Command } from 'commander';
import { addDuration, parseDuration } from '../../core/durations.js';
import { ConflictError, UsageError } from '../../core/errors.js';
import { parseRenames } from '../../core/selection.js';
import type { RestorePlan } from '../../jobs/restore-plan.js';
import { openTarget } from '../../sources/index.js';
import { formatBytes, formatCount, formatDuration, plural, table } from '../format.js';
import { collect, type Io, NAME_QUOTING, openLockingRepository, parseJobs, refuseRetryLockRemote, retryLockOption, type RetryLockFlags, printJson, repoOption, selectionFrom, selectionOptions, type CliContext, type CommonOptions, type SelectionFlags } from '../options.js';
import { ProgressBar } from '../progress-bar.js';
import { requireRepoName, runOnServer, serverClient, serverOption, type ServerFlags } from '../remote.js';

interface RestoreFlags extends CommonOptions, SelectionFlags, ServerFlags, RetryLockFlags {
  to: string;
  rename?: string[];
  onConflict: 'fail' | 'overwrite' | 'replace';
  sessions?: 'refuse' | 'wait' | 'terminate';
  sessionsTimeout?: string;
  jobs?: string;
  roles?: boolean;
  /** commander's --no-owner / --no-privileges: false when given. */
  owner: boolean;
  privileges: boolean;
  dryRun?: boolean;
}

export function registerRestoreCommand(program: Command, { io, signal }: CliContext): void {
  selectionOptions(
    program
      .command('restore <id>')
      .description('restore a backup into a database')
      .addOption(repoOption())
      .requiredOption('--to <url>', 'target database URL, e.g. sqlite:///path/to/copy.db; postgres://user@host:port/db; postgres://user@host:port/ for a whole-server backup; mysql://user@host:port/db or mariadb://… (created when missing)'),
  )
    .option('--rename <old=new>', `restore a collection under another name (repeatable, or comma-separated; split at the first "=" outside quotes)${NAME_QUOTING}`, collect)
    .addOption(
      new Option('--on-conflict <policy>', 'when a target collection exists: fail, overwrite it (same columns), or replace the whole database with the backup (objects made since are gone)')
        .choices(['fail', 'overwrite', 'replace'])
        .default('fail'),
    )
    .addOption(
      new Option('--sessions <policy>', 'with --on-conflict replace: other sessions (PostgreSQL; MySQL/MariaDB: those whose current database is the target, or holding a lock on its tables) or processes (SQLite) using the target at the switch: refuse (default; names them), wait for them to leave, or terminate them (PostgreSQL, MySQL/MariaDB: KILL CONNECTION)').choices([
        'refuse',
        'wait',
        'terminate',
      ]),
    )
    .option('--sessions-timeout <duration>', 'with --sessions wait: how long to wait, e.g. 30s, 10m (default 5m)')
    .option('--jobs <n>', 'tables loaded in parallel (default: the number of cores)')
    .option('--roles', 'also restore the roles recorded in the backup (PostgreSQL; a whole-server backup: and its tablespaces) or its users and grants (MySQL/MariaDB: CREATE USER IF NOT EXISTS, then the GRANTs)')
    .option('--no-owner', 'objects belong to the restoring role, not their recorded owners (PostgreSQL, as pg_restore --no-owner); MySQL/MariaDB: the DEFINER of views, triggers, routines and events becomes the restoring user (CURRENT_USER)')
    .option('--no-privileges', 'leave out grants and default privileges (PostgreSQL, as pg_restore --no-privileges; MySQL/MariaDB: with --roles, the users without their GRANTs)')
    .option('--dry-run', 'check only: list the collections the restore would write and the conflicts in the target, write nothing (exit 4 when there are conflicts)')
    .option('--json', 'print JSON')
    .addOption(retryLockOption())
    .addOption(serverOption())
    .option('--no-wait', 'with a server: print the job id at once instead of waiting')
    .action(
      async (id: string, opts: RestoreFlags) => {
        const selection = selectionFrom(opts);
        const jobs = parseJobs(opts.jobs);
        const renames = parseRenames(opts.rename);
        const sessionsTimeoutMs = opts.sessionsTimeout !== undefined ? durationMs(opts.sessionsTimeout, '--sessions-timeout') : undefined;
        const client = await serverClient(opts);
        // What a server takes for both a dry run and a restore job (its timeout in seconds); built
        // only once the remote checks passed, as the repository must then be a name.
        const serverRequest = () => ({
          backup: id,
          repository: requireRepoName(opts.repo),
          target: opts.to,
          ...selection,
          ...(renames.size ? { renames: Object.fromEntries(renames) } : {}),
          onConflict: opts.onConflict,
          ...(opts.sessions ? { sessions: opts.sessions } : {}),
          ...(sessionsTimeoutMs !== undefined ? { sessionsTimeoutSeconds: Math.ceil(sessionsTimeoutMs / 1000) } : {}),
          ...(opts.roles ? { roles: true } : {}),
          ...(opts.owner === false ? { noOwner: true } : {}),
          ...(opts.privileges === false ? { noPrivileges: true } : {}),
        });
        if (opts.dryRun) {
          if (opts.wait === false) throw new UsageError('--no-wait starts a job; a --dry-run starts none: leave one out.');
          const request = {
            selection,
            renames,
            onConflict: opts.onConflict,
            ...(opts.sessions ? { sessions: opts.sessions } : {}),
            ...(sessionsTimeoutMs !== undefined ? { sessionsTimeoutMs } : {}),
            roles: Boolean(opts.roles),
            noOwner: opts.owner === false,
            noPrivileges: opts.privileges === false,
          };
          let plan: RestorePlan;
          if (client) {
            refuseRetryLockRemote(opts);
            plan = await client.restores.dryRun(serverRequest());
          } else {
            const repository = await openLockingRepository(opts.repo, opts, { io, signal });
            plan = await (await import('../../jobs/restore-plan.js')).planRestore({ repo: repository, backupId: id, target: openTarget(opts.to), ...request, signal });
          }
          printPlan(io, plan, Boolean(opts.json));
          if (!plan.ok) throw new ConflictError(`The dry run found ${plural(plan.conflicts.length, 'conflict')} in ${plan.target} (listed above); nothing was written.`);
          return;
        }
        if (client) {
          refuseRetryLockRemote(opts);
          const started = Date.now();
          const final = await runOnServer(client, io, signal, opts, () =>
            client.restores.create({ ...serverRequest(), ...(jobs ? { jobs } : {}) }),
          );
          if (!final) return;
          const summary = final.result as { backupId: string; target: string; collections: number; rows: number; warnings?: string[]; plan?: { summary: string } };
          if (opts.json) return printJson(io, summary);
          for (const w of summary.warnings ?? []) io.err(`cairn: warning: ${w}`);
          if (summary.plan) io.out(`${summary.plan.summary}.`);
          return io.out(
            `Restored backup ${summary.backupId} into ${summary.target} in ${formatDuration(Date.now() - started)}: ` +
              `${plural(summary.collections, 'collection')}, ${plural(summary.rows, 'row')}.`,
          );
        }
        if (opts.wait === false) throw new UsageError('--no-wait needs a server (--server or CAIRN_SERVER): without one the restore runs in this process.');
        const target = openTarget(opts.to);
        const repository = await openLockingRepository(opts.repo, opts, { io, signal });
        const bar = new ProgressBar('restore', process.stderr, !opts.json && Boolean(process.stderr.isTTY));
        const started = Date.now();
        try {
          const summary = await (await import('../../jobs/restore.js')).runRestore({
            repo: repository,
            backupId: id,
            target,
            selection,
            renames,
            onConflict: opts.onConflict,
            ...(opts.sessions ? { sessions: opts.sessions } : {}),
            ...(sessionsTimeoutMs !== undefined ? { sessionsTimeoutMs } : {}),
            ...(jobs !== undefined ? { jobs } : {}),
            roles: Boolean(opts.roles),
            noOwner: opts.owner === false,
            noPrivileges: opts.privileges === false,
            signal,
            onProgress: (p) => bar.update(p),
          });
          bar.done();
          if (opts.json) return printJson(io, summary);
          for (const w of summary.warnings ?? []) io.err(`cairn: warning: ${w}`);
          if (summary.plan) io.out(`${summary.plan.summary}.`);
          io.out(
            `Restored backup ${summary.backupId} into ${summary.target} in ${formatDuration(Date.now() - started)}: ` +
              `${plural(summary.collections, 'collection')}, ${plural(summary.rows, 'row')}.`,
          );
        } finally {
          bar.done();
        }
      },
    );

}

/** A dry run's plan: the JSON answer as the API gives it, or a table of collections and the conflicts. */
function printPlan(io: Io, plan: RestorePlan, json: boolean): void {
  if (json) return printJson(io, plan);
  io.out(`Dry run: restore of backup ${plan.backupId} into ${plan.target} (on conflict: ${plan.onConflict}).`);
  io.out(
    table(
      ['COLLECTION', 'RESTORED AS', 'KIND', 'ROWS', 'SIZE'],
      plan.collections.map((c) => [c.name, c.targetName, c.kind, formatCount(c.rows), formatBytes(c.logicalBytes)]),
    ),
  );
  if (plan.conflicts.length > 0) {
    io.out(`Conflicts (${plan.conflicts.length}):`);
    for (const k of plan.conflicts) io.out(`- ${k.name}: ${k.message}`);
  }
  io.out(plan.message);
}

/** A duration option in milliseconds (seconds to weeks; months and years are refused as too long to mean). */
function durationMs(value: string, option: string): number {
  const d = parseDuration(value, `${option} value`);
  if (d.unit === 'mo' || d.unit === 'y') throw new UsageError(`${option} ${value}: give seconds, minutes, hours, days or weeks (e.g. 30s, 10m).`);
  return addDuration(new Date(0), d).getTime();
}
