/** `cairn restore`: a backup into a database, here or through a server. */
import { Option, type Command } from 'commander';
import { UsageError } from '../../core/errors.js';
import { parseRenames } from '../../core/selection.js';
import { runRestore } from '../../jobs/restore.js';
import { openTarget } from '../../sources/index.js';
import { formatDuration, plural } from '../format.js';
import { collect, NAME_QUOTING, openRepository, parseJobs, printJson, repoOption, selectionFrom, selectionOptions, type CliContext, type CommonOptions, type SelectionFlags } from '../options.js';
import { ProgressBar } from '../progress-bar.js';
import { requireRepoName, runOnServer, serverClient, serverOption, type ServerFlags } from '../remote.js';

interface RestoreFlags extends CommonOptions, SelectionFlags, ServerFlags {
  to: string;
  rename?: string[];
  onConflict: 'fail' | 'overwrite';
  jobs?: string;
  roles?: boolean;
  /** commander's --no-owner / --no-privileges: false when given. */
  owner: boolean;
  privileges: boolean;
}

export function registerRestoreCommand(program: Command, { io, signal }: CliContext): void {
  selectionOptions(
    program
      .command('restore <id>')
      .description('restore a backup into a database')
      .addOption(repoOption())
      .requiredOption('--to <url>', 'target database URL, e.g. sqlite:///path/to/copy.db'),
  )
    .option('--rename <old=new>', `restore a collection under another name (repeatable, or comma-separated; split at the first "=" outside quotes)${NAME_QUOTING}`, collect)
    .addOption(new Option('--on-conflict <policy>', 'when a target collection exists').choices(['fail', 'overwrite']).default('fail'))
    .option('--jobs <n>', 'tables loaded in parallel (default: the number of cores)')
    .option('--roles', 'also restore the roles recorded in the backup (PostgreSQL)')
    .option('--no-owner', 'objects belong to the restoring role, not their recorded owners (PostgreSQL, as pg_restore --no-owner)')
    .option('--no-privileges', 'leave out grants and default privileges (PostgreSQL, as pg_restore --no-privileges)')
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
              ...(opts.owner === false ? { noOwner: true } : {}),
              ...(opts.privileges === false ? { noPrivileges: true } : {}),
              ...(jobs ? { jobs } : {}),
            }),
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
