/** `cairn source`: database sources registered by name for cairn server, in the catalog of --data-dir. */
import type { CatalogTarget } from '../../catalog/sql.js';
import type { Command } from 'commander';
import { NotFoundError } from '../../core/errors.js';
import { SqliteRegistry } from '../../catalog/registry.js';
import { SqliteScheduleStore } from '../../catalog/schedules.js';
import { absoluteSourceUrl, openSource } from '../../sources/index.js';
import { plural, table } from '../format.js';
import { formatSeconds, parseRpo } from '../../jobs/health.js';
import { callServer, serverClient, serverOption } from '../remote.js';
import { catalogCommand, catalogPath, dataDirOf, dataDirOption, openRepository, printJson, withStore, type CliContext, type DataDirFlags } from '../options.js';

const openRegistry = (file: CatalogTarget): SqliteRegistry => new SqliteRegistry(file);

export function registerSourceCommands(program: Command, { io }: CliContext): void {
  const source = program.command('source').description('database sources registered by name for cairn server and its schedules (stored in its --data-dir)');
  catalogCommand(source, 'add <name> <url>', "register a source; its URL (with any password) stays in the server's catalog file (mode 0600)")
    .option('--rpo <duration>', 'its recovery point objective: its newest good backup may be at most this old (26h, 2d); default: from its schedules')
    .action(
    async (name: string, given: string, opts: DataDirFlags & { rpo?: string }) => {
      const rpoSeconds = opts.rpo === undefined ? null : parseRpo(opts.rpo);
      // A relative file path (sqlite:app.db) is stored absolute: the server, started in another
      // folder, must open the same database.
      const url = absoluteSourceUrl(given);
      const location = openSource(url).location;
      const { AccessPolicy } = await import('../../server/access.js');
      await withStore(openRegistry, opts.dataDir, (registry) => {
        new AccessPolicy({ dataDir: dataDirOf(opts.dataDir), registry }).checkDatabaseUrl(url, 'That source');
        const r = registry.add('source', name, url, location, undefined, rpoSeconds ?? undefined);
        if (opts.json) printJson(io, r);
        else io.out(`Registered source ${name} -> ${location}.`);
      });
    },
  );
  source
    .command('set <name>')
    .description("change a registered source: --rpo sets its recovery point objective (26h, 2d), --rpo default goes back to the one from its schedules")
    .requiredOption('--rpo <duration|default>', 'its recovery point objective: a duration (30m, 26h, 2d, 1w) or default')
    .addOption(dataDirOption())
    .addOption(serverOption())
    .option('--json', 'print JSON')
    .action(async (name: string, opts: DataDirFlags & { rpo: string; server?: string }) => {
      const seconds = parseRpo(opts.rpo); // checked here first, also before a server is asked
      const client = await serverClient(opts);
      const r = client ? await callServer(() => client.sources.update(name, { rpo: opts.rpo })) : await withStore(openRegistry, opts.dataDir, (registry) => registry.setRpo(name, seconds));
      if (opts.json) return printJson(io, { source: r });
      io.out(r.rpoSeconds === undefined ? `Source ${name}: recovery point objective from its schedules.` : `Source ${name}: recovery point objective ${formatSeconds(r.rpoSeconds)}.`);
    });
  catalogCommand(source, 'list', 'list registered sources (never their passwords)').action((opts: DataDirFlags) =>
    withStore(openRegistry, opts.dataDir, (registry) => {
      const list = registry.list('source');
      if (opts.json) return printJson(io, { sources: list });
      io.out(list.length ? table(['NAME', 'LOCATION', 'RPO', 'ADDED'], list.map((r) => [r.name, r.location, r.rpoSeconds === undefined ? 'default' : formatSeconds(r.rpoSeconds), r.createdAt])) : 'No sources registered.');
    }),
  );
  source
    .command('remove <name>')
    .description('forget a source; refused while enabled schedules use it (--force disables them); its backups are kept unless --delete-scheduled-backups (manual backups always are)')
    .option('--delete-scheduled-backups', 'also delete the backups its schedules made')
    .option('--force', 'disable the enabled schedules that use it, and remove it')
    .addOption(dataDirOption())
    .option('--json', 'print JSON')
    .action(async (name: string, opts: DataDirFlags & { deleteScheduledBackups?: boolean; force?: boolean }) => {
      const registry = new SqliteRegistry(catalogPath(opts.dataDir));
      const store = new SqliteScheduleStore(catalogPath(opts.dataDir));
      let deleted: string[] = [];
      let disabled: string[] = [];
      try {
        const url = registry.url('source', name);
        if (url === undefined) throw new NotFoundError(`No source named "${name}" is registered; list them with: cairn source list`);
        const { deleteScheduledBackupsOf, enabledSchedulesUsing, sourceInUse } = await import('../../jobs/scheduled-backup.js');
        // Its enabled schedules would fail at every run: refused unless --force, which disables them.
        const using = enabledSchedulesUsing(store.list(), name);
        if (using.length > 0 && !opts.force) throw sourceInUse(name, using, '--force');
        if (opts.deleteScheduledBackups) deleted = await deleteScheduledBackupsOf(name, openSource(url).location, store.list(), (repo) => openRepository(repo, opts.dataDir));
        for (const s of using) store.setEnabled(s, false);
        disabled = using;
        registry.remove('source', name);
      } finally {
        registry.close();
        store.close();
      }
      if (opts.json) return printJson(io, { removed: name, deletedScheduledBackups: deleted, disabledSchedules: disabled });
      io.out(
        `Removed source ${name}.${deleted.length ? ` Deleted ${plural(deleted.length, 'scheduled backup')} (run cairn prune to reclaim the space); manual backups are kept.` : ' Its backups are kept.'}` +
          (disabled.length ? ` Disabled ${plural(disabled.length, 'schedule')} that used it: ${disabled.join(', ')}.` : ''),
      );
    });
}
