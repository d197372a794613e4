/**
 * `cairn drill`: restore drills, stored in the catalog of --data-dir (run on their cron by cairn
 * server) or, with --server, on a running server. `run-now` without --server runs the drill in
 * this process and prints what it found.
 */
import { Option, type Command } from 'commander';
import { NotFoundError, UsageError } from '../../core/errors.js';
import { REGISTERED_NAME, SqliteRegistry } from '../../catalog/registry.js';
import { SqliteDrillStore, type DrillRun, type DrillState } from '../../catalog/drills.js';
import type { DrillEnvironment } from '../../jobs/drill.js';
import type { JobRecord } from '../../jobs/ports.js';
import { absoluteSourceUrl, openScratch, openSource, openTarget } from '../../sources/index.js';
import { table } from '../format.js';
import { catalogPath, collect, dataDirOf, dataDirOption, openRepository, printJson, type CliContext, type DataDirFlags } from '../options.js';
import { callServer, jobError, serverClient, serverOption, type ServerFlags } from '../remote.js';

interface DrillAddFlags extends DataDirFlags, ServerFlags {
  source: string;
  target?: string;
  targetEnv?: string;
  repo?: string;
  repository?: string;
  schedule?: string;
  cron?: string;
  timezone?: string;
  check?: string[];
  disabled?: boolean;
  json?: boolean;
}

type Flags = DataDirFlags & ServerFlags & { json?: boolean };

/** The value of one of two spellings of an option; UsageError when both are given and differ. */
function oneOf(opts: DrillAddFlags, a: 'repo' | 'schedule', b: 'repository' | 'cron'): string | undefined {
  const [x, y] = [opts[a], opts[b]];
  if (x !== undefined && y !== undefined && x !== y) throw new UsageError(`--${a} and --${b} are the same option; give one of them.`);
  return x ?? y;
}

/** A drill with its next due time, as the API shows it. */
type Shown = DrillState & { nextRun: string | null };

/** How this process resolves a drill's names: the catalog's registry, the CLI's repositories. */
function localEnvironment(registry: SqliteRegistry, dataDir: string | undefined, checkUrl: (url: string) => void): DrillEnvironment {
  return {
    sourceUrl: (name) => registry.url('source', name),
    sourceLocations: () => registry.list('source').map((r) => r.location),
    checkTargetUrl: checkUrl,
    openRepository: (value) => {
      if (value !== 'default' && registry.url('repository', value) === undefined) {
        throw new NotFoundError(`No repository named "${value}" is registered: register it (cairn repo add ${value} <url>), or use "default", the server's BACKUP_* repository.`);
      }
      return openRepository(value === 'default' ? undefined : value, dataDir);
    },
    openSource: (url) => openSource(url),
    openTarget: (url) => openTarget(url),
    openScratch: (url) => openScratch(url),
  };
}

/** Runs `use` with the data folder's drill store, registry and environment, closed after. */
async function withLocal<T>(dataDir: string | undefined, use: (store: SqliteDrillStore, env: DrillEnvironment, registry: SqliteRegistry) => Promise<T> | T): Promise<T> {
  const { AccessPolicy } = await import('../../server/access.js');
  const registry = new SqliteRegistry(catalogPath(dataDir));
  const store = new SqliteDrillStore(catalogPath(dataDir));
  try {
    const access = new AccessPolicy({ dataDir: dataDirOf(dataDir), registry });
    return await use(store, localEnvironment(registry, dataDir, (url) => access.checkDatabaseUrl(url, 'That drill target')), registry);
  } finally {
    store.close();
    registry.close();
  }
}

async function shown(d: DrillState): Promise<Shown> {
  const { DrillScheduler } = await import('../../jobs/drill.js');
  return { ...d, nextRun: DrillScheduler.next(d, new Date())?.toISOString() ?? null };
}

const describeRun = (r: DrillRun): string =>
  `${r.finishedAt} ${r.state}${r.backupId ? ` backup ${r.backupId}` : ''}${r.recoverySeconds !== null ? `, recovered in ${r.recoverySeconds.toFixed(1)} s` : ''}` +
  `, ${r.rowsCompared} table(s) compared, ${r.checks.filter((c) => c.ok).length}/${r.checks.length} check(s) true${r.error ? `: ${r.error.message}` : ''}`;

export function registerDrillCommands(program: Command, ctx: CliContext): void {
  const { io } = ctx;
  const drill = program.command('drill').description('restore drills: restore the newest backup into a scratch database, compare row counts, run checks, drop it (run by cairn server on their cron)');
  drill
    .command('add <name>')
    .description('add a restore drill (the target URL stays in the catalog; never a registered source)')
    .requiredOption('--source <name>', 'a registered source: its newest backup is restored')
    .option('--target <url>', 'the scratch database URL: one that does not exist (created and dropped at every run; cairn never replaces one it did not create); one with a password: --target-env')
    .option('--target-env <variable>', 'read the scratch database URL from this environment variable (a password in it stays out of ps and the shell history)')
    .option('--repo <name>', 'a registered repository, or "default" (the server\'s BACKUP_* repository; the default) (env: CAIRN_REPO)')
    .option('--repository <name>', 'the same as --repo (as cairn token create spells it)')
    .option('--schedule <cron>', 'when it runs: five cron fields ("0 5 * * 0") or @daily, @weekly…; left out: run-now only')
    // The first spelling of --schedule, kept working for scripts written with it.
    .addOption(new Option('--cron <expression>').hideHelp())
    .option('--timezone <zone>', 'IANA time zone of the schedule (default UTC)')
    .option('--check <sql>', 'a SQL query whose first column must be true (repeatable), e.g. "SELECT count(*) > 0 FROM orders"', collect)
    .option('--disabled', 'add it paused')
    .addOption(dataDirOption())
    .addOption(serverOption())
    .option('--json', 'print JSON')
    .action(async (name: string, opts: DrillAddFlags) => {
      if ((opts.target === undefined) === (opts.targetEnv === undefined)) throw new UsageError('Give the scratch database with --target <url> or --target-env <variable> (one of them).');
      const given = opts.target ?? process.env[opts.targetEnv ?? ''];
      if (!given) throw new UsageError(`--target-env ${opts.targetEnv}: the environment variable is not set or empty; export it with the scratch database URL.`);
      // CAIRN_REPO as every command that names a repository takes it; a flag given wins.
      const repository = oneOf(opts, 'repo', 'repository') ?? (process.env.CAIRN_REPO || undefined);
      const cron = oneOf(opts, 'schedule', 'cron');
      const input = {
        name,
        source: opts.source,
        target: absoluteSourceUrl(given),
        ...(repository ? { repository } : {}),
        ...(cron ? { cron } : {}),
        ...(opts.timezone ? { timezone: opts.timezone } : {}),
        ...(opts.check ? { checks: opts.check } : {}),
        ...(opts.disabled ? { disabled: true } : {}),
      };
      const client = await serverClient(opts);
      let added: Shown;
      if (client) added = await callServer(() => client.drills.add(input));
      else {
        const { buildDrillSpec } = await import('../../jobs/drill.js');
        added = await withLocal(opts.dataDir, async (store, env) => {
          store.refuseTaken(name);
          const { spec, targetUrl } = await buildDrillSpec(input, env, new Date());
          await env.openRepository(spec.repository);
          return shown(store.add(spec, targetUrl));
        });
      }
      if (opts.json) return printJson(io, added);
      io.out(`Added drill ${name}: ${added.source} into ${added.target}; ${added.nextRun ? `next run ${added.nextRun}` : added.cron ? 'disabled' : 'no cron (run it with cairn drill run-now)'}.`);
    });
  drill
    .command('list')
    .description('list drills with their next run')
    .addOption(dataDirOption())
    .addOption(serverOption())
    .option('--json', 'print JSON')
    .action(async (opts: Flags) => {
      const client = await serverClient(opts);
      const list: Shown[] = client ? await callServer(() => client.drills.list()) : await withLocal(opts.dataDir, (store) => Promise.all(store.list().map(shown)));
      if (opts.json) return printJson(io, { drills: list });
      if (list.length === 0) return io.out('No drills. Add one with: cairn drill add <name> --source S --repository R --schedule "0 5 * * 0" --target <scratch database URL that does not exist>');
      io.out(table(['NAME', 'SOURCE', 'REPO', 'TARGET', 'SCHEDULE', 'CHECKS', 'ENABLED', 'NEXT RUN'], list.map((d) => [d.name, d.source, d.repository, d.target, d.cron ?? '-', String(d.checks.length), d.enabled ? 'yes' : 'no', d.nextRun ?? '-'])));
    });
  drill
    .command('show <name>')
    .description('a drill and its recent runs: recovery time, tables compared, checks')
    .addOption(dataDirOption())
    .addOption(serverOption())
    .option('--json', 'print JSON')
    .action(async (name: string, opts: Flags) => {
      const client = await serverClient(opts);
      const { drill: d, runs } = client
        ? await callServer(() => client.drills.get(name))
        : await withLocal(opts.dataDir, async (store) => ({ drill: await shown(store.get(name)), runs: store.runs(name, 20) }));
      if (opts.json) return printJson(io, { drill: d, runs });
      io.out(
        [
          `Drill ${d.name} (${d.enabled ? 'enabled' : 'disabled'})`,
          `  source       ${d.source}`,
          `  repository   ${d.repository}`,
          `  target       ${d.target}`,
          `  schedule     ${d.cron ? `${d.cron} (${d.timezone}); next run ${d.nextRun ?? 'none'}` : 'none (run-now only)'}`,
          `  checks       ${d.checks.join('\n               ') || 'none (row counts only)'}`,
          `  runs         ${runs.map(describeRun).join('\n               ') || 'none yet'}`,
        ].join('\n'),
      );
    });
  drill
    .command('run-now <name>')
    .description('run a drill now and wait for it (without --server: in this process); exit code of the failure when it does not pass')
    .addOption(dataDirOption())
    .addOption(serverOption())
    .option('--json', 'print JSON')
    .action(async (name: string, opts: Flags) => {
      const client = await serverClient(opts);
      let job: JobRecord;
      if (client) {
        job = await callServer(() => client.drills.runNow(name));
        job = await client.jobs.wait(job.id, { signal: ctx.signal, pollMs: 300 });
      } else job = await runHere(name, opts.dataDir, ctx);
      if (opts.json) printJson(io, job);
      if (job.state !== 'SUCCESS') throw jobError(job);
      if (!opts.json) {
        const r = job.result ?? {};
        const checks = (r.checks as { ok: boolean }[] | undefined) ?? [];
        io.out(`Drill ${name} passed: backup ${String(r.backupId)} restored into ${String(r.target)} and dropped; ${String(r.rowsCompared)} table(s) match the backup's row counts, ${checks.length} check(s) true; recovery time ${Number(r.recoverySeconds).toFixed(1)} s.`);
      }
    });
  drill
    .command('remove <name>')
    .description('remove a drill and the record of its runs')
    .addOption(dataDirOption())
    .addOption(serverOption())
    .option('--json', 'print JSON')
    .action(async (name: string, opts: Flags) => {
      const client = await serverClient(opts);
      if (client) await callServer(() => client.drills.remove(name));
      else {
        if (!REGISTERED_NAME.test(name)) throw new UsageError(`Invalid drill name "${name}".`);
        await withLocal(opts.dataDir, (store) => store.remove(name));
      }
      if (opts.json) return printJson(io, { removed: name });
      io.out(`Removed drill ${name}.`);
    });
}

/** Runs a drill's job in this process, as a server would (not beside a server on this data folder). */
async function runHere(name: string, dataDir: string | undefined, { io }: CliContext): Promise<JobRecord> {
  const [{ SqliteJobCatalog }, { JobCenter }, { DataDirLock }, { drillOpener, startDrillJob }] = await Promise.all([
    import('../../catalog/sqlite.js'),
    import('../../jobs/job-center.js'),
    import('../../server/data-dir-lock.js'),
    import('../../jobs/drill.js'),
  ]);
  const lock = DataDirLock.acquire(dataDirOf(dataDir), 'cairn drill run-now');
  const catalog = new SqliteJobCatalog(catalogPath(dataDir));
  try {
    return await withLocal(dataDir, async (store, env) => {
      const center = new JobCenter(catalog, { log: (line) => io.err(line) });
      const job = await startDrillJob({ center, store, open: drillOpener(store, env) }, name, 'manual');
      return center.wait(job.id);
    });
  } finally {
    await catalog.close();
    lock.release();
  }
}
