/** `cairn job`: the jobs of a cairn server (list, show, wait, cancel). */
import type { Command } from 'commander';
import { UsageError } from '../../core/errors.js';
import type { JobRecord } from '../../jobs/ports.js';
import { formatBytes, keyValueLines, table } from '../format.js';
import { progressLine } from '../progress-bar.js';
import { printJson, type CliContext } from '../options.js';
import { jobError, needServer, serverOption, type ServerFlags } from '../remote.js';

export function registerJobCommands(program: Command, { io, signal }: CliContext): void {
  const job = program.command('job').description('jobs of a cairn server (--server or CAIRN_SERVER, token in CAIRN_TOKEN)');
  job
    .command('list')
    .description('list jobs, newest first')
    .addOption(serverOption())
    .option('--limit <n>', 'at most this many jobs (1-1000)', '1000')
    .option('--offset <n>', 'skip this many of the newest first', '0')
    .option('--json', 'print JSON (as GET /v1/jobs: jobs, total, limit, offset)')
    .action(async (opts: ServerFlags & { json?: boolean; limit: string; offset: string }) => {
      const limit = Number(opts.limit);
      const offset = Number(opts.offset);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new UsageError(`--limit must be a whole number from 1 to 1000, not "${opts.limit}".`);
      if (!Number.isInteger(offset) || offset < 0) throw new UsageError(`--offset must be a whole number of 0 or more, not "${opts.offset}".`);
      const client = await needServer(opts);
      // The API's page is 100 by default; the command lists up to 1000 unless told otherwise.
      const page = await client.jobs.page({ limit, offset });
      const { jobs } = page;
      if (opts.json) return printJson(io, page);
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
        if (opts.json) printJson(io, record);
        else if (name === 'show') io.out(jobShowLines(record).join('\n'));
        else io.out(`${record.id}  ${record.kind}  ${record.state}${record.error ? `  ${record.error.code}: ${record.error.message}` : ''}`);
        if (name === 'wait' && record.state !== 'SUCCESS') throw jobError(record);
      });
  }

}

/** Order of a job's fields in `job show`; fields not named here follow, as the server sent them. */
const JOB_FIELDS = ['id', 'kind', 'state', 'createdAt', 'updatedAt', 'finishedAt', 'key', 'error', 'params', 'progress', 'result'] as const;

/**
 * The whole job record, one `key: value` line per field, params, progress and result indented
 * below their key; progress also reads as the progress bar does ("about 41% … about 4 s left").
 */
function jobShowLines(record: JobRecord): string[] {
  const fields = record as unknown as Record<string, unknown>;
  const order: readonly string[] = JOB_FIELDS;
  const keys = [...order.filter((k) => k in fields), ...Object.keys(fields).filter((k) => !order.includes(k))];
  return keys.flatMap((k) => {
    const value = fields[k];
    if (k === 'progress' && typeof value === 'object' && value !== null) {
      return [`progress: ${jobProgressLine(record).trim()}`, ...keyValueLines(value as Record<string, unknown>, [], '  ')];
    }
    return keyValueLines({ [k]: value });
  });
}

/** A job's progress as the progress bar shows it ("about 41% … about 4 s left" for a backup). */
function jobProgressLine(job: JobRecord): string {
  const p = job.progress;
  const secs = Math.max(0.001, ((job.finishedAt ? Date.parse(job.finishedAt) : Date.now()) - Date.parse(job.createdAt)) / 1000);
  const phase = job.state === 'TRANSFERRING' || job.state === 'STARTED' ? 'transferring' : job.state === 'FINALIZING' || job.state === 'TRANSFERRED' ? 'finalizing' : 'done';
  return `  ${progressLine({ phase, ...p }, secs).trim()}`;
}
