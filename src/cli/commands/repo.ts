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
import { newPassword } from '../password.js';

export function registerRepoCommands(program: Command, { io, signal }: CliContext): void {
  const repo = program.command('repo').description('create and inspect repositories');
  repo
    .command('init <repo>')
    .description('create a repository (a registered name, a path, or a URL)')
    .option('--compression <algorithm>', 'default compression: zstd, gzip or none', 'zstd')
    .option('--level <level>', 'default level: fastest, default or best', 'default')
    .option('--pack-size <MiB>', 'target pack size in MiB', '16')
    .option('--encryption', 'encrypt every object (AES-256-GCM) under a password: --new-password-file, CAIRN_NEW_PASSWORD, the usual password sources, or typed twice on a terminal')
    .option('--json', 'print JSON')
    .action(async (url: string, opts: { compression: string; level: string; packSize: string; encryption?: boolean; json?: boolean }) => {
      const packSize = Number(opts.packSize);
      if (!Number.isFinite(packSize) || packSize <= 0) throw new UsageError(`Invalid --pack-size "${opts.packSize}": give a number of MiB, e.g. 16.`);
      const storage = openStorage(await resolveRepository(url));
      const repository = await Repository.init(storage, {
        compression: compressionFrom(opts, { algorithm: 'zstd', level: 'default' }),
        packSize: Math.round(packSize * 1024 * 1024),
        // Asked only after the flags are checked, so a typo costs no typing.
        ...(opts.encryption ? { encryption: { password: await newPassword('init', storage.location, { signal }) } } : {}),
      });
      const slot = repository.keySlotId;
      if (opts.json) return printJson(io, { location: repository.location, config: repository.config, ...(slot ? { keySlot: `keys/${slot}` } : {}) });
      io.out(`Initialised repository ${repository.location} (id ${repository.config.id}${repository.encrypted ? ', encrypted' : ''}).`);
      if (repository.encrypted) {
        io.out(
          `Its key slot is keys/${slot ?? '?'}. The password cannot be recovered: without it (or another slot's, cairn key add) the backups cannot be read. Keep it somewhere safe.`,
        );
      }
    });

  repo
    .command('add <name> <url>')
    .description('register a repository under a name usable wherever a repository is taken')
    .option('--password-file <file>', "an encrypted repository: read its password from this file's first line when it is opened by this name (the path is kept, not the password)")
    .option('--password-command <command>', 'an encrypted repository: run this (sh -c) for its password when it is opened by this name (the command is kept, not the password)')
    .option('--json', 'print JSON')
    .action(async (name: string, url: string, opts: { json?: boolean; passwordFile?: string; passwordCommand?: string }) => {
      catalogPath(undefined); // the local catalog only: refused first when CAIRN_CATALOG names a shared one
      validateName('repository', name);
      if (opts.passwordFile !== undefined && opts.passwordCommand !== undefined) throw new UsageError('Give --password-file or --password-command, not both.');
      const storage = openStorage(url); // checks that the URL parses; the repository need not exist yet
      // A plain path is kept absolute, so that the name means the same folder from anywhere.
      if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) url = resolvePath(url);
      const passwordSource = opts.passwordFile !== undefined ? { file: resolvePath(opts.passwordFile) } : opts.passwordCommand !== undefined ? { command: opts.passwordCommand } : undefined;
      await withRepositoryNames(undefined, (registry) => registry.add('repository', name, url, storage.location, passwordSource));
      const catalog = catalogPath(undefined);
      const how = passwordSource === undefined ? '' : 'file' in passwordSource ? ` with its password read from ${passwordSource.file}` : ' with its password from the command given';
      if (opts.json) return printJson(io, { name, url, location: storage.location, catalog, ...(passwordSource ? { passwordSource: 'file' in passwordSource ? 'file' : 'command' } : {}) });
      io.out(`Registered repository ${name} -> ${url}${how} (in ${catalog}).`);
    });

  repo
    .command('list')
    .description('list the registered repositories')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      catalogPath(undefined); // the local catalog only: refused when CAIRN_CATALOG names a shared one
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
      catalogPath(undefined); // the local catalog only: refused when CAIRN_CATALOG names a shared one
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
