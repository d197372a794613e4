/** `cairn token`: API tokens of cairn server, in the catalog of --data-dir (only their hashes). */
import type { CatalogTarget } from '../../catalog/sql.js';
import type { Command } from 'commander';
import { NotFoundError } from '../../core/errors.js';
import { SqliteTokenStore } from '../../catalog/tokens.js';
import { table } from '../format.js';
import { catalogCommand, collect, dataDirOption, printJson, withStore, type CliContext, type DataDirFlags } from '../options.js';

/** A token's scope in a listing: "sources shop,crm; repositories main", or "-" for none. */
const scopeText = (t: { sources: string[] | null; repositories: string[] | null }): string =>
  [...(t.sources ? [`sources ${t.sources.join(',')}`] : []), ...(t.repositories ? [`repositories ${t.repositories.join(',')}`] : [])].join('; ') || '-';

const openTokens = (file: CatalogTarget): SqliteTokenStore => new SqliteTokenStore(file);

export function registerTokenCommands(program: Command, { io }: CliContext): void {
  const token = program.command('token').description('API tokens for cairn server (only their hashes are stored)');
  token
    .command('create')
    .description('create a token and print it once')
    .requiredOption('--role <role>', 'admin (everything), operator (backup, restore, cancel, delete) or viewer (read only)')
    .option('--name <name>', 'a label to recognise it by', '')
    .option('--source <name>', 'scope: only this registered source, as source or restore target (repeatable; not for admin tokens)', collect)
    .option('--repository <name>', 'scope: only this registered repository, "default" for the BACKUP_* one (repeatable; not for admin tokens)', collect)
    .addOption(dataDirOption())
    .option('--json', 'print JSON')
    .action((opts: DataDirFlags & { role: string; name: string; source?: string[]; repository?: string[] }) =>
      withStore(openTokens, opts.dataDir, (store) => {
        const t = store.create(opts.role, opts.name, { sources: opts.source ?? null, repositories: opts.repository ?? null });
        if (opts.json) printJson(io, t);
        else {
          // The token alone on stdout, so that TOKEN=$(cairn token create …) holds just the token.
          io.out(t.token);
          io.err(`(token ${t.id}, role ${t.role}${t.sources || t.repositories ? `, scoped to ${scopeText(t)}` : ''}: shown once, only its hash is kept; send it as Authorization: Bearer <token>)`);
        }
      }),
    );
  catalogCommand(token, 'list', 'list tokens (never their secrets)').action((opts: DataDirFlags) =>
    withStore(openTokens, opts.dataDir, (store) => {
      const list = store.list();
      if (opts.json) printJson(io, { tokens: list });
      else io.out(list.length ? table(['ID', 'ROLE', 'NAME', 'SCOPE', 'CREATED'], list.map((t) => [t.id, t.role, t.name || '-', scopeText(t), t.createdAt])) : 'No tokens. Create one with: cairn token create --role admin');
    }),
  );
  catalogCommand(token, 'revoke <id>', 'revoke a token').action((id: string, opts: DataDirFlags) =>
    withStore(openTokens, opts.dataDir, (store) => {
      if (!store.revoke(id)) throw new NotFoundError(`No token ${id}; list them with: cairn token list`);
      if (opts.json) printJson(io, { revoked: id });
      else io.out(`Revoked token ${id}.`);
    }),
  );
}
