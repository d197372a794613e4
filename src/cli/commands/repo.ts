/**
 * `cairn repo`: create repositories and register names for them in the one registry of names,
 * the catalog of $CAIRN_DATA_DIR (docs/cli.md, "Named repositories").
 */
import { resolve as resolvePath } from 'node:path';
import type { Command } from 'commander';
import { NotFoundError, UsageError } from '../../core/errors.js';
import { validateName } from '../../catalog/registry.js';
import { resolveRepository, withRepositoryNames } from '../../config/registry.js';
import { Repository } from '../../repo/repository.js';
import { openStorage } from '../../storage/index.js';
import { table } from '../format.js';
import { catalogPath, compressionFrom, printJson, type CliContext } from '../options.js';

export function registerRepoCommands(program: Command, { io }: CliContext): void {
  const repo = program.command('repo').description('create and inspect repositories');
  repo
    .command('init <repo>')
    .description('create a repository (a registered name, a path, or a URL)')
    .option('--compression <algorithm>', 'default compression: zstd, gzip or none', 'zstd')
    .option('--level <level>', 'default level: fastest, default or best', 'default')
    .option('--pack-size <MiB>', 'target pack size in MiB', '16')
    .option('--json', 'print JSON')
    .action(async (url: string, opts: { compression: string; level: string; packSize: string; json?: boolean }) => {
      const packSize = Number(opts.packSize);
      if (!Number.isFinite(packSize) || packSize <= 0) throw new UsageError(`Invalid --pack-size "${opts.packSize}": give a number of MiB, e.g. 16.`);
      const repository = await Repository.init(openStorage(await resolveRepository(url)), {
        compression: compressionFrom(opts, { algorithm: 'zstd', level: 'default' }),
        packSize: Math.round(packSize * 1024 * 1024),
      });
      if (opts.json) printJson(io, { location: repository.location, config: repository.config });
      else io.out(`Initialised repository ${repository.location} (id ${repository.config.id}).`);
    });

  repo
    .command('add <name> <url>')
    .description('register a repository under a name usable wherever a repository is taken')
    .option('--json', 'print JSON')
    .action(async (name: string, url: string, opts: { json?: boolean }) => {
      validateName('repository', name);
      const storage = openStorage(url); // checks that the URL parses; the repository need not exist yet
      // A plain path is kept absolute, so that the name means the same folder from anywhere.
      if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) url = resolvePath(url);
      await withRepositoryNames(undefined, (registry) => registry.add('repository', name, url, storage.location));
      const catalog = catalogPath(undefined);
      if (opts.json) printJson(io, { name, url, location: storage.location, catalog });
      else io.out(`Registered repository ${name} -> ${url} (in ${catalog}).`);
    });

  repo
    .command('list')
    .description('list the registered repositories')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const repos = (await withRepositoryNames(undefined, (registry) => registry.entries('repository'), { value: [] })).map((r) => ({ name: r.name, url: r.url, addedAt: r.createdAt }));
      if (opts.json) return printJson(io, { repositories: repos });
      if (repos.length === 0) return io.out(`No repositories registered (${catalogPath(undefined)}). Add one with: cairn repo add <name> <url>`);
      io.out(table(['NAME', 'URL', 'ADDED'], repos.map((r) => [r.name, r.url, r.addedAt ?? '-'])));
    });

  repo
    .command('remove <name>')
    .description('forget a registered name (the repository and its backups are not touched)')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { json?: boolean }) => {
      const url = await withRepositoryNames(undefined, (registry) => {
        const registered = registry.url('repository', name);
        if (registered === undefined) throw new NotFoundError(`No repository named "${name}" is registered in ${catalogPath(undefined)}. List them with: cairn repo list`);
        registry.remove('repository', name);
        return registered;
      });
      if (opts.json) printJson(io, { removed: name, url, dataDeleted: false });
      else io.out(`Removed the name ${name} (${url}). No data was deleted: the repository and its backups are still there.`);
    });
}
