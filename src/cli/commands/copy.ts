/** `cairn copy`: one backup to another repository; only the chunks it lacks are sent. */
import type { Command } from 'commander';
import { runCopy, type CopyProgress } from '../../jobs/copy.js';
import type { Progress } from '../../jobs/progress.js';
import { formatBytes, formatCount, formatDuration, plural } from '../format.js';
import { openRepository, printJson, type CliContext } from '../options.js';
import { ProgressBar } from '../progress-bar.js';

export function registerCopyCommand(program: Command, { io, signal }: CliContext): void {
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
      if (opts.json) return printJson(io, result);
      io.out(
        `Copied backup ${result.backupId} from ${result.from} to ${result.to} in ${formatDuration(Date.now() - started)}: ` +
          `${plural(result.chunksCopied, 'chunk')} sent (${formatBytes(result.bytesCopied)}), ${formatCount(result.chunksSkipped)} already there; verified.`,
      );
    });

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
