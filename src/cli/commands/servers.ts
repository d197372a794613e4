/**
 * `cairn servers`: the cairn servers sharing a job catalog (GET /v1/servers through --server):
 * which are alive (their lease runs), their version and URL, their latest heartbeat, their jobs.
 */
import type { Command } from 'commander';
import { table } from '../format.js';
import { printJson, type CliContext } from '../options.js';
import { callServer, needServer, serverOption, type ServerFlags } from '../remote.js';

export function registerServersCommand(program: Command, { io }: CliContext): void {
  program
    .command('servers')
    .description('the cairn servers sharing the job catalog of --server: alive or not, version, URL, latest heartbeat, active jobs')
    .addOption(serverOption())
    .option('--json', 'print JSON')
    .action(async (opts: ServerFlags & { json?: boolean }) => {
      const client = await needServer(opts);
      const servers = await callServer(() => client.servers.list());
      if (opts.json) return printJson(io, { servers });
      io.out(
        table(
          ['ID', 'STATUS', 'VERSION', 'URL', 'HEARTBEAT', 'LEASE UNTIL', 'JOBS'],
          servers.map((s) => [s.id, s.stoppedAt ? `stopped ${s.stoppedAt}` : s.alive ? 'alive' : 'lease expired', s.version, s.url ?? '-', s.heartbeatAt, s.leaseUntil, String(s.activeJobs)]),
        ),
      );
    });
}
