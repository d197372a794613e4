/** `cairn server`: serves the REST API until SIGINT / SIGTERM (docs/api.md). */
import { Option, type Command } from 'commander';
import { UsageError } from '../../core/errors.js';
import { dataDirOf, dataDirOption, type CliContext } from '../options.js';

export function registerServerCommand(program: Command, { io, signal, quietSignals }: CliContext): void {
  program
    .command('server')
    .description('serve the REST API; jobs run in this process, their records in --data-dir (docs/api.md)')
    .option('--listen <host:port>', 'address to listen on; 0.0.0.0 to accept other machines', '127.0.0.1:8080')
    .addOption(dataDirOption())
    .addOption(new Option('--catalog <postgres-url>', 'keep all server state (jobs, tokens, sources, repositories, schedules, alerts, drills, audit log) in PostgreSQL, shared by several replicas; needs CAIRN_CATALOG_KEY (docs/deployment.md; default: SQLite in --data-dir)').env('CAIRN_CATALOG'))
    .option('--trust-forwarded-for', "the audit log takes the caller's address from X-Forwarded-For (only behind a proxy that sets it; docs/deployment.md)")
    .option('--no-console', 'do not serve the web console at / (the API is unchanged)')
    .option('--allow-urls', 'let operator and admin tokens name sources, targets and repositories by URL or path, not only by registered name (never the data folder; viewers never; a PostgreSQL URL so named uses no PG* variable, service file, ~/.pgpass or Unix socket of the server; a MySQL URL no MYSQL_PWD, option file or Unix socket)')
    .addOption(new Option('--log-format <format>', 'log lines on stderr as json or logfmt').choices(['json', 'logfmt']).default('json'))
    .addOption(new Option('--log-level <level>', 'least level logged: debug (also every request), info (start-up, job start and end), warn (failed jobs and requests), error (default: CAIRN_LOG_LEVEL, else info)').choices(['debug', 'info', 'warn', 'error']))
    .option('--stuck-after <duration>', 'mark a running job stuck (progress.stalledSince, a stuck alert) when it reports no progress for this long: 90s, 30m, 2h; 0 never', '30m')
    .option('--lease <duration>', 'with --catalog: how long a job stays ours without renewal; a server that stops renewing (crashed, cut off) has its jobs marked interrupted by the others this long after: 10s, 30s, 2m', '30s')
    .addHelpText('after', '\nRequests name registered sources and repositories (cairn source add, cairn repo add with this data folder as\nCAIRN_DATA_DIR, POST /v1/sources, POST /v1/repositories) and "default", the repository the BACKUP_* variables describe (used when a request names none).')
    .action(async (opts: { listen: string; dataDir?: string; catalog?: string; allowUrls?: boolean; console: boolean; logFormat: string; logLevel?: string; stuckAfter: string; lease: string; trustForwardedFor?: boolean }, cmd: Command) => {
      const { host, port } = parseListen(opts.listen);
      // A password on the command line is in every process list of the machine.
      if (opts.catalog && cmd.getOptionValueSource('catalog') === 'cli' && hasPassword(opts.catalog)) {
        throw new UsageError('Do not put the catalog\'s password in --catalog: process lists show the command line. Give the URL in CAIRN_CATALOG instead, or the password in ~/.pgpass (or PGPASSFILE).');
      }
      const stuckAfterMs = parseStuckAfter(opts.stuckAfter);
      const leaseMs = parseLease(opts.lease);
      const { startServer } = await import('../../server/index.js');
      const { createLogger, parseLogFormat, parseLogLevel } = await import('../../server/log.js');
      const logger = createLogger({ format: parseLogFormat(opts.logFormat), level: parseLogLevel(opts.logLevel ?? (process.env.CAIRN_LOG_LEVEL || 'info')), write: (line) => io.err(line) });
      // Its stderr is a log: a signal is the normal stop, logged here rather than as a cancel notice.
      quietSignals?.();
      const server = await startServer({
        dataDir: dataDirOf(opts.dataDir),
        ...(opts.catalog ? { catalogUrl: opts.catalog } : {}),
        host,
        port,
        ...(opts.allowUrls ? { allowAdHocUrls: true } : {}),
        console: opts.console,
        logger,
        stuckAfterMs,
        ...(opts.trustForwardedFor ? { trustForwardedFor: true } : {}),
        leaseMs,
      });
      // The address is the command's output, not a log line: printed on stdout whatever
      // --log-level says, so `--listen 127.0.0.1:0 --log-level warn` still tells the port chosen.
      io.out(`cairn server listening on ${server.url}`);
      await new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
      logger.info('cairn server stopping: cancelling running jobs', { url: server.url });
      await server.close();
      logger.info('cairn server stopped', { url: server.url });
    });
}

/** "host:port", ":port" or "port"; IPv6 hosts in brackets. */
function parseListen(value: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(value) ?? /^()()(\d+)$/.exec(value);
  const port = Number(m?.[3]);
  if (!m || !Number.isInteger(port) || port > 65535) throw new UsageError(`Invalid --listen "${value}": write host:port, e.g. 127.0.0.1:8080.`);
  return { host: m[1] || m[2] || '127.0.0.1', port };
}

/** --stuck-after: a duration in s, m, h or d as milliseconds; "0" turns the watchdog off. */
function parseStuckAfter(value: string): number {
  if (value.trim() === '0') return 0;
  const m = /^(\d{1,6})\s*(s|m|h|d)$/.exec(value.trim().toLowerCase());
  if (!m || Number(m[1]) <= 0) throw new UsageError(`Invalid --stuck-after "${value}": write a duration such as 90s, 30m or 2h, or 0 to never mark jobs stuck.`);
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
}

/** --lease: a duration in s or m as milliseconds, 2 s to 10 min (renewed every third of it). */
function parseLease(value: string): number {
  const m = /^(\d{1,6})\s*(s|m)$/.exec(value.trim().toLowerCase());
  const ms = m ? Number(m[1]) * (m[2] === 's' ? 1000 : 60_000) : NaN;
  if (!(ms >= 2000 && ms <= 600_000)) throw new UsageError(`Invalid --lease "${value}": write a duration from 2s to 10m, such as 30s.`);
  return ms;
}

/** A URL with a password in it: user:password@, or a password= parameter however it is spelt (%77, case). */
function hasPassword(value: string): boolean {
  if (/^[a-z][a-z0-9+.-]*:\/\/[^/@?#]*:[^/@?#]*@/i.test(value)) return true;
  const query = value.split('?')[1]?.split('#')[0] ?? '';
  return query.split('&').some((pair) => {
    try {
      return decodeURIComponent(pair.split('=')[0]?.replace(/\+/g, ' ') ?? '').trim().toLowerCase() === 'password';
    } catch {
      return /password/i.test(pair); // malformed escapes: refused if it may be one
    }
  });
}
