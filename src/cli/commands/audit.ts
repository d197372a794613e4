/**
 * `cairn audit`: the server's audit log (every mutating API request and every job end), newest
 * first, read from the catalog of --data-dir, or through a server (--server, an admin token).
 */
import type { Command } from 'commander';
import { UsageError } from '../../core/errors.js';
import { SqliteAuditLog, type AuditEntry } from '../../catalog/audit.js';
import { table } from '../format.js';
import { dataDirOption, printJson, withStore, type CliContext, type DataDirFlags } from '../options.js';
import { callServer, serverClient, serverOption, type ServerFlags } from '../remote.js';

interface AuditFlags extends DataDirFlags, ServerFlags {
  since?: string;
  until?: string;
  actor?: string;
  limit: string;
  offset: string;
  json?: boolean;
}

/** A whole number option in [min, max]; UsageError naming the flag otherwise. */
function whole(value: string, flag: string, min: number, max: number): number {
  if (!/^\d{1,10}$/.test(value) || Number(value) < min || Number(value) > max) throw new UsageError(`Invalid ${flag} "${value}": give a whole number from ${min} to ${max}.`);
  return Number(value);
}

/** A --since / --until value checked as the API checks it (a date, or an ISO time with an offset). */
async function bound(value: string | undefined, flag: '--since' | '--until'): Promise<number | undefined> {
  if (value === undefined) return undefined;
  // The API's route table (zod schemas) loads only here, not with every command (issue 22).
  const { parseListDate } = await import('../../server/routes/table.js');
  const ms = parseListDate(value, flag === '--since' ? 'since' : 'until');
  if (ms === undefined) throw new UsageError(`Invalid ${flag} "${value}": give a date (2026-11-30, UTC) or an ISO time (2026-11-30T03:00:00Z).`);
  return ms;
}

/** Who, in the table: the token's label (or id), its role, how it came. */
const who = (e: AuditEntry): string => `${e.actorName || e.actorTokenId || '-'}${e.actorRole ? ` (${e.actorRole})` : ''}`;

export function registerAuditCommand(program: Command, { io }: CliContext): void {
  program
    .command('audit')
    .description("the server's audit log, newest first: every change requested through the API (refused ones too) and every job's end")
    .option('--since <when>', 'only records at or after this date (UTC) or ISO time')
    .option('--until <when>', 'only records up to this ISO time, or to the end of this date (UTC)')
    .option('--actor <name>', 'only records of this token (its name or id), or "scheduler"')
    .option('--limit <n>', 'at most this many records (1-1000)', '50')
    .option('--offset <n>', 'skip this many of the newest first', '0')
    .addOption(dataDirOption())
    .addOption(serverOption())
    .option('--json', 'print JSON')
    .action(async (opts: AuditFlags) => {
      const limit = whole(opts.limit, '--limit', 1, 1000);
      const offset = whole(opts.offset, '--offset', 0, 1_000_000);
      const sinceMs = await bound(opts.since, '--since');
      const untilMs = await bound(opts.until, '--until');
      const client = await serverClient(opts);
      let page: { entries: AuditEntry[]; total: number };
      if (client) {
        page = await callServer(() =>
          client.audit.list({ ...(opts.since ? { since: opts.since } : {}), ...(opts.until ? { until: opts.until } : {}), ...(opts.actor ? { actor: opts.actor } : {}), limit, offset }),
        );
      } else {
        page = await withStore((file) => new SqliteAuditLog(file), opts.dataDir, (log) =>
          log.list({ ...(sinceMs !== undefined ? { sinceMs } : {}), ...(untilMs !== undefined ? { untilMs } : {}), ...(opts.actor ? { actor: opts.actor } : {}), limit, offset }),
        );
      }
      if (opts.json) return printJson(io, { entries: page.entries, total: page.total, limit, offset });
      if (page.entries.length === 0) return io.out(page.total ? `No records past offset ${offset} (${page.total} match).` : 'No audit records match.');
      io.out(
        table(
          ['AT', 'WHO', 'FROM', 'ACTION', 'TARGET', 'RESULT', 'JOB'],
          page.entries.map((e) => [e.at, who(e), e.address ?? '-', `${e.action}${e.type === 'request' ? ` (${e.method} ${e.path})` : ''}`, e.target ?? '-', e.status !== null ? `${e.status} ${e.result}` : e.result, e.jobId ?? '-']),
        ),
      );
      if (page.total > offset + page.entries.length) io.err(`(${page.entries.length} of ${page.total}; more with --offset ${offset + page.entries.length})`);
    });
}
