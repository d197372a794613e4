/**
 * `cairn copy <id>`: one backup to another repository; `cairn sync` (= `cairn copy --all`): every
 * backup the target lacks. Only missing chunks are sent; here or through a server.
 */
import type { Command } from 'commander';
import { UsageError } from '../../core/errors.js';
import type { CopyProgress, SyncProgress, SyncResult } from '../../jobs/copy.js';
import type { Progress } from '../../jobs/progress.js';
import type { Repository } from '../../repo/repository.js';
import { formatBytes, formatCount, formatDuration, plural } from '../format.js';
import { openLockingRepository, printJson, refuseRetryLockRemote, retryLockOption, type CliContext, type Io, type RetryLockFlags } from '../options.js';
import { ProgressBar } from '../progress-bar.js';
import { runOnServer, serverClient, serverOption, type ServerFlags } from '../remote.js';

interface CopyFlags extends ServerFlags, RetryLockFlags {
  from: string;
  to: string;
  all?: boolean;
  source?: string;
  json?: boolean;
}

const SYNC_NOTE = 'Backups deleted or expired in --from are not removed from --to; a backup --to holds under the same id with other content is reported as a conflict and left alone.';

export function registerCopyCommand(program: Command, ctx: CliContext): void {
  const { io, signal } = ctx;
  program
    .command('copy [id]')
    .description('copy one backup (or with --all every backup the target lacks, as cairn sync) to another repository (any backends); only missing chunks are sent')
    .requiredOption('--from <repo>', 'source repository: a registered name, a path, or a URL')
    .requiredOption('--to <repo>', 'target repository (initialised): a registered name, a path, or a URL')
    .option('--all', 'every backup of --from that --to lacks (as cairn sync)')
    .option('--source <name>', "with --all: only this source's backups (its name or location as cairn backup list shows it)")
    .option('--json', 'print JSON')
    .addOption(retryLockOption())
    .addOption(serverOption())
    .option('--no-wait', 'with a server: print the job id at once instead of waiting')
    .addHelpText('after', `\nWith --all: ${SYNC_NOTE}`)
    .action(async (id: string | undefined, opts: CopyFlags) => {
      if (opts.all) {
        if (id !== undefined) throw new UsageError(`Give a backup id or --all, not both (got "${id}").`);
        return sync(opts, ctx);
      }
      if (id === undefined) throw new UsageError('Name the backup to copy (cairn copy <id> --from … --to …), or copy every missing one with --all.');
      if (opts.source !== undefined) throw new UsageError('--source goes with --all (or cairn sync): a single backup is named by its id.');
      const client = await serverClient(opts);
      if (client) {
        refuseRetryLockRemote(opts);
        const started = Date.now();
        const final = await runOnServer(client, io, signal, opts, () => client.copies.create({ backup: id, from: opts.from, to: opts.to }));
        if (!final) return;
        const result = final.result as unknown as { backupId: string; from: string; to: string; chunksCopied: number; bytesCopied: number; chunksSkipped: number };
        if (opts.json) return printJson(io, result);
        return printCopied(io, result, started);
      }
      if (opts.wait === false) throw new UsageError('--no-wait needs a server (--server or CAIRN_SERVER): without one the copy runs in this process.');
      const from = await openLockingRepository(opts.from, opts, ctx, 'from');
      const to = await openLockingRepository(opts.to, opts, ctx);
      warnDecrypting(io, from, to);
      const { runCopy } = await import('../../jobs/copy.js');
      const bar = new ProgressBar('copy', process.stderr, !opts.json && Boolean(process.stderr.isTTY));
      const started = Date.now();
      let result;
      try {
        result = await runCopy({ from, to, backupId: id, signal, onProgress: (p) => bar.update(copyProgress(p)) });
      } finally {
        bar.done();
      }
      if (opts.json) return printJson(io, result);
      printCopied(io, result, started);
    });

  program
    .command('sync')
    .description('bring --to up to date with every backup of --from it lacks (optionally one source\'s); only missing chunks are sent, each backup verified before it appears')
    .requiredOption('--from <repo>', 'source repository: a registered name, a path, or a URL')
    .requiredOption('--to <repo>', 'target repository (initialised): a registered name, a path, or a URL')
    .option('--source <name>', "only this source's backups (its name or location as cairn backup list shows it)")
    .option('--json', 'print JSON')
    .addOption(retryLockOption())
    .addOption(serverOption())
    .option('--no-wait', 'with a server: print the job id at once instead of waiting')
    .addHelpText('after', `\n${SYNC_NOTE} Running it again copies only what is new. Exit code 4 (CONFLICT) or 6 (CORRUPT) when a backup was left out, after the report.`)
    .action((opts: CopyFlags) => sync(opts, ctx));
}

/** `cairn sync` and `cairn copy --all`: the report first, then the error naming what was left out. */
async function sync(opts: CopyFlags, { io, signal }: CliContext): Promise<void> {
  const started = Date.now();
  let result: SyncResult;
  const client = await serverClient(opts);
  if (client) {
    refuseRetryLockRemote(opts);
    // A sync that left backups out ends FAILED on the server, its error naming them (syncProblems).
    const final = await runOnServer(client, io, signal, opts, () => client.syncs.create({ from: opts.from, to: opts.to, ...(opts.source !== undefined ? { source: opts.source } : {}) }));
    if (!final) return;
    result = final.result as unknown as SyncResult;
  } else {
    if (opts.wait === false) throw new UsageError('--no-wait needs a server (--server or CAIRN_SERVER): without one the sync runs in this process.');
    const from = await openLockingRepository(opts.from, opts, { io, signal }, 'from');
    const to = await openLockingRepository(opts.to, opts, { io, signal });
    warnDecrypting(io, from, to);
    const { runSync } = await import('../../jobs/copy.js');
    const bar = new ProgressBar('sync', process.stderr, !opts.json && Boolean(process.stderr.isTTY));
    try {
      result = await runSync({ from, to, ...(opts.source !== undefined ? { source: opts.source } : {}), signal, onProgress: (p) => bar.update(syncProgress(p)) });
    } finally {
      bar.done();
    }
  }
  if (opts.json) printJson(io, result);
  else printSynced(io, result, started);
  const problem = (await import('../../jobs/copy.js')).syncProblems(result);
  if (problem) throw problem;
}

function printCopied(io: Io, result: { backupId: string; from: string; to: string; chunksCopied: number; bytesCopied: number; chunksSkipped: number }, started: number): void {
  io.out(
    `Copied backup ${result.backupId} from ${result.from} to ${result.to} in ${formatDuration(Date.now() - started)}: ` +
      `${plural(result.chunksCopied, 'chunk')} sent (${formatBytes(result.bytesCopied)}), ${formatCount(result.chunksSkipped)} already there; verified.`,
  );
}

function printSynced(io: Io, r: SyncResult, started: number): void {
  const lines = [
    `Synced ${r.from} to ${r.to} in ${formatDuration(Date.now() - started)}: ${plural(r.copied.length, 'backup')} copied (${plural(r.chunksCopied, 'chunk')}, ${formatBytes(r.bytesCopied)} sent), ` +
      `${formatCount(r.skipped.length)} already there (identical), ${plural(r.conflicts.length, 'conflict')}, ${formatCount(r.failed.length)} failed.`,
    ...r.copied.map((c) => `  copied    ${c.backupId}: ${plural(c.chunksCopied, 'chunk')} sent (${formatBytes(c.bytesCopied)}), ${formatCount(c.chunksSkipped)} already there; verified`),
    ...r.skipped.map((id) => `  skipped   ${id}: already there, identical`),
    ...r.conflicts.map((c) => `  conflict  ${c.backupId}: ${c.message}`),
    ...r.failed.map((f) => `  failed    ${f.backupId}: ${f.message}`),
  ];
  io.out(lines.join('\n'));
}

/** A copy's progress in the progress bar's terms: packs stand for collections. */
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

/** A sync's progress in the progress bar's terms: backups stand for collections. */
export function syncProgress(p: SyncProgress): Progress {
  return {
    phase: p.phase,
    ...(p.backup ? { collection: p.backup } : {}),
    collectionsDone: p.backupsDone,
    collectionsTotal: p.backupsTotal,
    rows: 0,
    bytes: p.bytesCopied,
    bytesTotal: p.bytesTotal,
  };
}

/** Backups leaving an encrypted repository for a plain one are stored in plain text there: say so (stderr, also with --json). */
export function warnDecrypting(io: CliContext['io'], from: Repository, to: Repository): void {
  if (from.encrypted && !to.encrypted) {
    io.err(`cairn: note: ${from.location} is encrypted but ${to.location} is not: what is copied is stored there in plain text.`);
  }
}
