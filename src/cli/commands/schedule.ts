/** `cairn schedule`: automatic backups, stored in the catalog of --data-dir and run by cairn server. */
import type { CatalogTarget } from '../../catalog/sql.js';
import { resolve as resolvePath } from 'node:path';
import { Option, type Command } from 'commander';
import { NotFoundError, UsageError } from '../../core/errors.js';
import { REGISTERED_NAME, SqliteRegistry } from '../../catalog/registry.js';
import { SqliteScheduleStore } from '../../catalog/schedules.js';
import type { JobRecord, RetentionRules } from '../../jobs/ports.js';
import { mayBeName, withRepositoryNames } from '../../config/registry.js';
import { absoluteSourceUrl, openSource } from '../../sources/index.js';
import { table } from '../format.js';
import {
  catalogCommand,
  catalogPath,
  collect,
  dataDirOption,
  dataDirOf,
  openRepository,
  printJson,
  repoOption,
  selectionFrom,
  selectionOptions,
  withStore,
  type CliContext,
  type DataDirFlags,
  type SelectionFlags,
} from '../options.js';
import { callServer, jobError, requireRepoName, serverClient, serverOption, type ServerFlags } from '../remote.js';

/** The --keep-* flags are the retention rules as written. */
interface ScheduleAddFlags extends SelectionFlags, DataDirFlags, RetentionRules {
  source: string;
  repo?: string;
  cron: string;
  timezone?: string;
  pattern?: string;
  expires?: string;
  copyTo?: string;
  whenUnchanged?: string;
  disabled?: boolean;
}

const RETENTION_FLAGS = ['keepLast', 'keepWithin', 'keepHourly', 'keepDaily', 'keepWeekly', 'keepMonthly', 'keepYearly', 'expires'] as const;

/** The settings `schedule edit --unset` removes (as the API's null). */
const UNSETTABLE = ['include', 'exclude', 'keep-last', 'keep-within', 'keep-hourly', 'keep-daily', 'keep-weekly', 'keep-monthly', 'keep-yearly', 'expires', 'copy-to'] as const;

/**
 * A repository value (--repo, --copy-to) as a schedule stores it: a URL, or a name registered in
 * the catalog of `dataDir`, as given; anything else is a path relative to this working
 * directory, stored absolute, so that the server (started elsewhere) and `run-now` from any
 * folder find the same repository. A bare word that is not a registered name is such a path
 * too, as every other command reads it (config/registry.ts resolveRepository); `note` says so.
 */
async function pinnedRepository(value: string, dataDir: string | undefined, flag: string, note: (text: string) => void): Promise<string> {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return value;
  if (mayBeName(value) && (await withRepositoryNames(dataDir, (registry) => registry.url('repository', value) !== undefined, { value: false }))) return value;
  const absolute = resolvePath(value);
  if (mayBeName(value)) note(`cairn: note: ${flag} "${value}" is not a registered repository name, so it is the folder ${absolute} (register a name with: cairn repo add ${value} <url>).`);
  return absolute;
}

/**
 * A source value as a schedule stores it: a registered source name as given (looked up at each
 * run); a URL with its relative file path made absolute (sqlite:app.db → sqlite:///…/app.db).
 */
const pinnedSource = (value: string): string => (mayBeName(value) ? value : absoluteSourceUrl(value));

const openSchedules = (file: CatalogTarget): SqliteScheduleStore => new SqliteScheduleStore(file);

const intOpt = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`Invalid count "${v}": give a whole number from 1.`);
  return n;
};

/** The options add and edit share: the backup id pattern and the retention rules (keep-*). */
function idAndRetentionOptions(command: Command): Command {
  return command
    .option('--pattern <pattern>', 'backup ids: {source}, {schedule} and a time like {yyyyMMdd-HHmmss} (UTC)')
    .option('--keep-last <n>', 'keep the newest n backups of this schedule', intOpt)
    .option('--keep-within <duration>', 'keep every backup of this schedule younger than this (3d, 4w, 6mo…)')
    .option('--keep-hourly <n>', 'keep the newest backup of each of the last n hours that have one', intOpt)
    .option('--keep-daily <n>', 'same per day', intOpt)
    .option('--keep-weekly <n>', 'same per ISO week', intOpt)
    .option('--keep-monthly <n>', 'same per month', intOpt)
    .option('--keep-yearly <n>', 'same per year', intOpt);
}

/** The next time an enabled schedule runs (ISO), else null. */
async function nextRunOf(s: { enabled: boolean; cron: string; timezone: string }): Promise<string | null> {
  const { cronOf } = await import('../../jobs/scheduler.js');
  return s.enabled ? cronOf(s.cron, s.timezone).nextRun(new Date())?.toISOString() ?? null : null;
}

export function registerScheduleCommands(program: Command, ctx: CliContext): void {
  const { io } = ctx;
  const schedule = program.command('schedule').description('automatic backups, run by cairn server (stored in its --data-dir)');
  idAndRetentionOptions(
    selectionOptions(
      schedule
        .command('add <name>')
        .description('add a schedule')
        .requiredOption('--source <url>', 'database URL (or a source registered on the server)')
        .addOption(repoOption())
        .requiredOption('--cron <expression>', 'five cron fields ("0 3 * * *") or @hourly, @daily, @weekly, @monthly, @yearly'),
    )
      .option('--timezone <zone>', 'IANA time zone of the cron expression and of daily/weekly/… retention (default UTC)'),
  )
    .option('--expires <duration>', 'each backup expires after this long (deleted even if retention would keep it)')
    .option('--copy-to <repo>', "a second repository: after each run, this schedule's backups it lacks are copied there (as cairn sync; nothing is deleted there, not even by retention)")
    .option('--when-unchanged <what>', 'skip: no backup when the database has not changed since this schedule\'s last backup (recorded skipped-unchanged); backup (default): one anyway')
    .option('--disabled', 'add it paused')
    .addOption(dataDirOption())
    .option('--json', 'print JSON')
    .action(async (name: string, opts: ScheduleAddFlags) => {
      const { buildScheduleSpec } = await import('../../jobs/schedule-spec.js');
      const selection = selectionFrom(opts);
      const spec = buildScheduleSpec(
        {
          name,
          source: opts.source,
          repository: requireRepoName(opts.repo),
          cron: opts.cron,
          ...(opts.timezone ? { timezone: opts.timezone } : {}),
          ...selection,
          ...(opts.pattern ? { pattern: opts.pattern } : {}),
          ...Object.fromEntries(RETENTION_FLAGS.filter((k) => opts[k] !== undefined).map((k) => [k, opts[k]])),
          ...(opts.copyTo ? { copyTo: opts.copyTo } : {}),
          ...(opts.whenUnchanged !== undefined ? { whenUnchanged: opts.whenUnchanged as 'backup' | 'skip' } : {}),
          ...(opts.disabled ? { disabled: true } : {}),
        },
        new Date(),
      );
      const note = (text: string): void => io.err(text);
      spec.source = pinnedSource(spec.source);
      spec.repository = await pinnedRepository(spec.repository, opts.dataDir, '--repo', note);
      if (spec.copyTo) spec.copyTo = await pinnedRepository(spec.copyTo, opts.dataDir, '--copy-to', note);
      await withStore(openSchedules, opts.dataDir, (store) => store.add(spec));
      const next = await nextRunOf(spec);
      const { publicSchedule } = await import('../../server/public.js');
      if (opts.json) return printJson(io, { ...publicSchedule(spec), nextRun: next });
      io.out(`Added schedule ${name} (${spec.cron} ${spec.timezone}); ${next ? `next run ${next}` : 'disabled'}. cairn server runs it.`);
    });
  idAndRetentionOptions(
    selectionOptions(
      schedule
        .command('edit <name>')
        .description('change a schedule: only the options given (checked as for add); a running cairn server uses it from its next look (within 15 s)')
        .option('--source <url>', 'database URL (or a source registered on the server)')
        // No CAIRN_REPO here: a variable set in the shell must not move a schedule unasked.
        .addOption(new Option('--repo <repo>', 'repository: a registered name, a path, or a URL'))
        .option('--cron <expression>', 'five cron fields ("0 3 * * *") or @hourly, @daily, …; due times count from now'),
    )
      .option('--timezone <zone>', 'IANA time zone of the cron expression and of calendar retention; due times count from now'),
  )
    .option('--expires <duration>', 'each new backup expires after this long')
    .option('--copy-to <repo>', 'a second repository each run copies to')
    .option('--when-unchanged <what>', 'skip or backup (see schedule add)')
    .option('--unset <option>', `remove a setting (repeatable): ${UNSETTABLE.join(', ')}`, collect)
    .addOption(dataDirOption())
    .option('--json', 'print JSON')
    .action(async (name: string, opts: Omit<ScheduleAddFlags, 'source' | 'cron'> & { source?: string; cron?: string; unset?: string[] }) => {
      const { scheduleEdit } = await import('../../jobs/schedule-spec.js');
      const changes: Record<string, unknown> = {};
      const selection = selectionFrom(opts);
      for (const [k, v] of Object.entries({ source: opts.source, repository: opts.repo, cron: opts.cron, timezone: opts.timezone, pattern: opts.pattern, copyTo: opts.copyTo, whenUnchanged: opts.whenUnchanged, ...selection })) {
        if (v !== undefined) changes[k] = v;
      }
      for (const k of RETENTION_FLAGS) if (opts[k] !== undefined) changes[k] = opts[k];
      for (const given of opts.unset ?? []) {
        const flag = given.replace(/^--/, '');
        if (!(UNSETTABLE as readonly string[]).includes(flag)) throw new UsageError(`Cannot --unset "${given}": give one of ${UNSETTABLE.join(', ')} (change the others with their own option).`);
        const key = flag.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
        if (changes[key] !== undefined) throw new UsageError(`--${flag} and --unset ${flag} contradict each other: give one.`);
        changes[key] = null;
      }
      const note = (text: string): void => io.err(text);
      if (typeof changes.source === 'string') changes.source = pinnedSource(changes.source);
      if (typeof changes.repository === 'string') changes.repository = await pinnedRepository(changes.repository, opts.dataDir, '--repo', note);
      if (typeof changes.copyTo === 'string') changes.copyTo = await pinnedRepository(changes.copyTo, opts.dataDir, '--copy-to', note);
      const now = new Date();
      // Read, merged and written in one write transaction: a server's PATCH or another edit at
      // the same time is not overwritten with what this process read before.
      const spec = await withStore(openSchedules, opts.dataDir, (store) => store.update(name, scheduleEdit(changes, now)));
      const next = await nextRunOf(spec);
      const { publicSchedule } = await import('../../server/public.js');
      if (opts.json) return printJson(io, { ...publicSchedule(spec), nextRun: next });
      io.out(`Changed schedule ${name} (${Object.keys(changes).join(', ')}); ${next ? `next run ${next}` : 'disabled'}.`);
    });
  catalogCommand(schedule, 'list', 'list schedules with their next run').action(async (opts: DataDirFlags) => {
    const { publicSchedule } = await import('../../server/public.js');
    await withStore(openSchedules, opts.dataDir, async (store) => {
      // Sources as registered names or locations: a URL's password never leaves the catalog.
      const list = [];
      for (const s of store.list()) list.push({ ...publicSchedule(s), nextRun: await nextRunOf(s) });
      if (opts.json) return printJson(io, { schedules: list });
      if (list.length === 0) return io.out('No schedules. Add one with: cairn schedule add <name> --source … --repo … --cron "0 3 * * *"');
      io.out(table(['NAME', 'CRON', 'ZONE', 'SOURCE', 'ENABLED', 'NEXT RUN', 'LAST DUE'], list.map((s) => [s.name, s.cron, s.timezone, s.source, s.enabled ? 'yes' : 'no', s.nextRun ?? '-', s.lastDue ?? '-'])));
    });
  });
  catalogCommand(schedule, 'show <name>', 'a schedule, its retention and its recent runs').action(async (name: string, opts: DataDirFlags) => {
    const { publicRuns, publicSchedule } = await import('../../server/public.js');
    const { describeCron, nextRuns } = await import('../../jobs/cron-preview.js');
    await withStore(openSchedules, opts.dataDir, (store) => {
      const stored = store.get(name);
      // As GET /v1/schedules/{name} answers it: the cron in words and the next 5 due times.
      const next = stored.enabled ? nextRuns(stored.cron, stored.timezone, 5) : [];
      const s = { ...publicSchedule(stored), description: describeCron(stored.cron, stored.timezone), nextRuns: next };
      const runs = publicRuns(store.runs(name, 20), stored);
      if (opts.json) return printJson(io, { schedule: s, runs });
      io.out(
        [
          `Schedule ${s.name} (${s.enabled ? 'enabled' : 'disabled'})`,
          `  id           ${s.id}`,
          `  created      ${s.createdAt}`,
          `  cron         ${s.cron} (${s.timezone}); last due ${s.lastDue ?? 'none yet'}`,
          `  in words     ${s.description} (${s.timezone})`,
          `  next runs    ${next.join('\n               ') || 'none (disabled)'}`,
          `  source       ${s.source}`,
          `  repository   ${s.repository}`,
          // Every field the JSON has that a user sets (written as --include / --exclude take them).
          ...(s.include ? [`  include      ${s.include.join(', ')}`] : []),
          ...(s.exclude ? [`  exclude      ${s.exclude.join(', ')}`] : []),
          ...(!s.include && !s.exclude ? ['  collections  all'] : []),
          `  pattern      ${s.pattern}`,
          `  retention    ${Object.entries(s.retention).map(([k, v]) => `${k}=${v}`).join(' ') || 'none (keeps everything)'}`,
          `  expires      ${s.expires ?? 'never'}`,
          ...(s.copyTo ? [`  copy to      ${s.copyTo}`] : []),
          `  unchanged    ${s.whenUnchanged === 'skip' ? 'skip (no backup while the source has not changed)' : 'backup'}`,
          `  runs         ${runs.map((r) => `${r.dueAt} ${r.status}${r.jobId ? ` (job ${r.jobId})` : ''}${r.reason ? `: ${r.reason}` : ''}`).join('\n               ') || 'none yet'}`,
        ].join('\n'),
      );
    });
  });
  for (const [cmd, description] of [['enable', 'resume a schedule'], ['disable', 'pause a schedule'], ['remove', 'remove a schedule (its backups are kept)']] as const) {
    catalogCommand(schedule, `${cmd} <name>`, description).action(async (name: string, opts: DataDirFlags) => {
      await withStore(openSchedules, opts.dataDir, (store) => (cmd === 'remove' ? store.remove(name) : store.setEnabled(name, cmd === 'enable')));
      // --json: what was done, as the API's answer would say it (remove: the name; enable /
      // disable: the schedule's new state and next run).
      if (opts.json) {
        if (cmd === 'remove') return printJson(io, { removed: name, backupsDeleted: false });
        const { publicSchedule } = await import('../../server/public.js');
        const spec = await withStore(openSchedules, opts.dataDir, (store) => store.get(name));
        return printJson(io, { ...publicSchedule(spec), nextRun: await nextRunOf(spec) });
      }
      io.out(cmd === 'remove' ? `Removed schedule ${name}; its backups are kept.` : `Schedule ${name} ${cmd}d.`);
    });
  }
  schedule
    .command('run-now <name>')
    .description('run a schedule once now (its retention applies afterwards)')
    .addOption(dataDirOption())
    .addOption(serverOption())
    .option('--json', 'print JSON')
    .action(async (name: string, opts: ServerFlags & DataDirFlags) => {
      const client = await serverClient(opts);
      let job: JobRecord;
      if (client) {
        // 409 when its database is busy, else the real reason (404 unknown source, …): exit codes follow.
        job = await callServer(() => client.schedules.runNow(name));
        job = await client.jobs.wait(job.id, { signal: ctx.signal, pollMs: 300 });
      } else {
        job = await runNowHere(name, opts.dataDir, ctx);
      }
      if (opts.json) printJson(io, job);
      if (job.state !== 'SUCCESS') throw jobError(job);
      if (!opts.json) {
        const deleted = (job.result?.deleted as string[] | undefined) ?? [];
        for (const w of (job.result?.warnings as string[] | undefined) ?? []) io.err(`cairn: warning: ${w}`);
        const copied = job.result?.copied as string[] | undefined;
        if (job.result?.skipped === 'unchanged') io.out(`Schedule ${name} ran: no backup, the source is ${String(job.result.reason)} (--when-unchanged skip).`);
        else io.out(`Schedule ${name} ran: backup ${String(job.result?.backupId)}${deleted.length ? `; retention and expiry deleted ${deleted.join(', ')}` : ''}${copied ? `; copied ${copied.length ? copied.join(', ') : 'nothing new'} to the second repository` : ''}.`);
      }
    });
}

/**
 * Runs a schedule's job in this process, like a server would: not beside a server on this data
 * folder (one job per database is enforced within one process); the error names it.
 */
async function runNowHere(name: string, dataDir: string | undefined, { io }: CliContext): Promise<JobRecord> {
  const [{ SqliteJobCatalog }, { JobCenter }, { Scheduler }, { scheduledBackupLauncher }, { DataDirLock }, { AccessPolicy }] = await Promise.all([
    import('../../catalog/sqlite.js'),
    import('../../jobs/job-center.js'),
    import('../../jobs/scheduler.js'),
    import('../../jobs/scheduled-backup.js'),
    import('../../server/data-dir-lock.js'),
    import('../../server/access.js'),
  ]);
  const lock = DataDirLock.acquire(dataDirOf(dataDir), 'cairn schedule run-now');
  const store = new SqliteScheduleStore(catalogPath(dataDir));
  const registry = new SqliteRegistry(catalogPath(dataDir));
  const catalog = new SqliteJobCatalog(catalogPath(dataDir));
  const access = new AccessPolicy({ dataDir: dataDirOf(dataDir), registry });
  try {
    const center = new JobCenter(catalog, { log: (line) => io.err(line) });
    const scheduler = new Scheduler(store, {
      now: () => new Date(),
      launch: scheduledBackupLauncher({
        center,
        now: () => new Date(),
        openRepository: (repo) => openRepository(repo, dataDir),
        openSource: (v) => {
          if (REGISTERED_NAME.test(v) && registry.url('source', v) === undefined) {
            throw new NotFoundError(`Schedule "${name}" names source "${v}", which is not registered: register it (cairn source add ${v} <url>) or change the schedule.`);
          }
          const url = registry.url('source', v) ?? v;
          access.checkDatabaseUrl(url, 'That source');
          return openSource(url);
        },
      }),
    });
    const id = await scheduler.runNow(name);
    const job = await center.wait(id);
    await scheduler.idle(); // the run's record is final (e.g. skipped-unchanged) before the catalog closes
    return job;
  } finally {
    store.close();
    registry.close();
    await catalog.close();
    lock.release();
  }
}
