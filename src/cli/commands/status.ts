/**
 * `cairn status`: each source's newest good backup against its recovery point objective, and
 * the stuck jobs — from the data folder's catalog (the server's, read in this process) or
 * through a server (--server). Breaches first. Exit code 10 when a source is breached or a job
 * stuck (docs/cli.md), so that a cron job or a monitoring check can act on it.
 */
import type { Command } from 'commander';
import { formatSeconds, type HealthReport } from '../../jobs/health.js';
import { UsageError } from '../../core/errors.js';
import { table } from '../format.js';
import { catalogPath, dataDirOf, dataDirOption, printJson, requestExitCode, type CliContext } from '../options.js';
import { callServer, serverClient, serverOption } from '../remote.js';

/** The exit code of `cairn status` when a source is past its objective or a job is stuck. */
export const STATUS_DEGRADED_EXIT = 10;

/** The report as the data folder's catalog and the repositories it names tell it, read in this process. */
async function localReport(dataDir: string): Promise<HealthReport> {
  const { SqliteRegistry } = await import('../../catalog/registry.js');
  const { SqliteScheduleStore } = await import('../../catalog/schedules.js');
  const { SqliteJobCatalog } = await import('../../catalog/sqlite.js');
  const { SqliteSummaryStore } = await import('../../catalog/summaries.js');
  const { AccessPolicy } = await import('../../server/access.js');
  const { serverHealth } = await import('../../server/health.js');
  const { storageFromEnv } = await import('../../storage/index.js');
  const { TERMINAL_STATES } = await import('../../jobs/ports.js');
  // The local catalog only (catalogPath refuses when CAIRN_CATALOG names a shared one: ask a replica with --server).
  const file = catalogPath(dataDir);
  const { existsSync } = await import('node:fs');
  if (!existsSync(file)) {
    const { NotFoundError } = await import('../../core/errors.js');
    throw new NotFoundError(`No cairn catalog in ${dataDir}: give the server's data folder with --data-dir (or CAIRN_DATA_DIR), or ask the server with --server URL.`);
  }
  const registry = new SqliteRegistry(file);
  const schedules = new SqliteScheduleStore(file);
  const jobs = new SqliteJobCatalog(file);
  const summaries = new SqliteSummaryStore(file);
  try {
    const defaultRepository = storageFromEnv(process.env);
    // As the server started on this data folder would: its registered names, the BACKUP_* repository.
    const access = new AccessPolicy({
      dataDir, registry, env: process.env,
      ...(defaultRepository ? { defaultRepository } : {}),
      resolveConfigName: async (value) => registry.url('repository', value) ?? value,
    });
    const { report } = await serverHealth(
      { center: { list: (f) => jobs.list(f) }, registry, schedules, access, summaries, activeJobs: async () => (await jobs.list({ limit: 1000 })).filter((j) => !TERMINAL_STATES.has(j.state)) },
      (name) => access.repository(name, 'server'),
    );
    return report;
  } finally {
    registry.close();
    schedules.close();
    summaries.close();
    await jobs.close();
  }
}

/** The report as lines: breached sources first with their age against the objective, then the others, then stuck jobs. */
export function formatStatus(report: HealthReport): string {
  const breached = report.sources.filter((s) => s.breached);
  const out: string[] = [];
  out.push(
    report.status === 'ok'
      ? `OK: ${report.sources.length} source(s) within their recovery point objectives, no stuck job.`
      : `DEGRADED: ${breached.length} source(s) past their recovery point objective, ${report.stuckJobs.length} stuck job(s).`,
  );
  const age = (s: HealthReport['sources'][number]) => (s.ageSeconds === null ? 'never' : formatSeconds(s.ageSeconds));
  const rpo = (s: HealthReport['sources'][number]) => (s.rpoSeconds === null ? '-' : `${formatSeconds(s.rpoSeconds)} (${s.rpoFrom})`);
  if (report.sources.length > 0) {
    out.push(
      '',
      table(
        ['SOURCE', 'LAST GOOD BACKUP', 'AGE', 'RPO', 'STATE'],
        report.sources.map((s) => [s.name ?? s.location, s.lastSuccessAt ?? '-', age(s), rpo(s), s.breached ? 'BREACHED' : s.rpoSeconds === null ? 'no objective' : 'ok']),
      ),
    );
  } else out.push('', 'No sources: register one with cairn source add, or back one up.');
  if (report.stuckJobs.length > 0) {
    out.push('', table(['STUCK JOB', 'KIND', 'STATE', 'NO PROGRESS SINCE', 'SOURCE'], report.stuckJobs.map((j) => [j.id, j.kind, j.state, j.stalledSince, j.source ?? '-'])));
  }
  return out.join('\n');
}

export function registerStatusCommand(program: Command, { io }: CliContext): void {
  program
    .command('status')
    .description(`each source's newest good backup against its recovery point objective, breaches first, and stuck jobs; exit code ${STATUS_DEGRADED_EXIT} when any (from --data-dir, or through --server)`)
    .addOption(dataDirOption())
    .addOption(serverOption())
    .option('--json', 'print JSON (the GET /v1/health answer)')
    .action(async (opts: { dataDir?: string; server?: string; json?: boolean }) => {
      const client = await serverClient(opts);
      const report = client ? ((await callServer(() => client.health.get())) as HealthReport) : await localReport(dataDirOf(opts.dataDir));
      // Without a token the server answers its liveness only ({ status: "ok" }), not the report.
      if (!Array.isArray((report as Partial<HealthReport>).sources)) {
        throw new UsageError('The server answered its liveness only: the health report needs a token of any role. Give it with CAIRN_TOKEN.');
      }
      if (opts.json) printJson(io, report);
      else io.out(formatStatus(report));
      if (report.status !== 'ok') requestExitCode(STATUS_DEGRADED_EXIT);
    });
}
