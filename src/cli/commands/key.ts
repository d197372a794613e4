/**
 * `cairn key list|add|remove|passwd`: the key slots of an encrypted repository, as restic's
 * `key` command (docs/cli.md, "Keys and passwords"). Each opens the repository with a password
 * it has (src/cli/password.ts); `add` and `passwd` then take a new one (--new-password-file,
 * CAIRN_NEW_PASSWORD, or typed twice on a terminal). Slots are small objects under keys/ that
 * wrap the one master secret: adding or removing one rewrites no data.
 */
import type { Command } from 'commander';
import { UsageError } from '../../core/errors.js';
import { addKey, changePassword, listKeys, removeKey, type KeySlotInfo } from '../../repo/keys.js';
import type { Repository } from '../../repo/repository.js';
import { table } from '../format.js';
import { openRepository, printJson, repoCommand, type CliContext, type CommonOptions } from '../options.js';
import { newPassword } from '../password.js';

/** Opens the repository --repo names and refuses a plain one (it has no keys to manage). */
async function openEncrypted(opts: CommonOptions, writes?: string): Promise<Repository> {
  const repo = await openRepository(opts.repo);
  // Key commands take no lock, so they check here, before a new password is asked for.
  if (writes !== undefined) repo.requireWritable(writes);
  if (!repo.encrypted) {
    throw new UsageError(`The repository ${repo.location} is not encrypted: it has no key slots. Encryption is chosen when a repository is created (cairn repo init --encryption); copy the backups into a new encrypted repository with cairn sync.`);
  }
  return repo;
}

export function registerKeyCommands(program: Command, { io, signal }: CliContext): void {
  const key = program.command('key').description("manage the passwords (key slots) of an encrypted repository");

  repoCommand(key, 'list', "list the key slots; * marks the one this command's password opened").action(async (opts: CommonOptions) => {
    const repo = await openEncrypted(opts);
    const keys = await listKeys(repo, signal);
    if (opts.json) return printJson(io, { repository: repo.location, keys });
    io.out(table(['', 'ID', 'USER', 'HOST', 'CREATED', 'KDF'], keys.map((k) => [k.current ? '*' : '', k.id, k.username || '-', k.hostname || '-', k.createdAt, k.kdf])));
  });

  repoCommand(key, 'add', 'add a key slot for another password (the new password: --new-password-file, CAIRN_NEW_PASSWORD, or typed twice)').action(async (opts: CommonOptions) => {
    const repo = await openEncrypted(opts, 'add a key slot to it');
    const added = await addKey(repo, await newPassword('key add', repo.location, { signal }));
    if (opts.json) return printJson(io, { repository: repo.location, key: added });
    io.out(`Added key slot ${added.id} to ${repo.location}: the new password opens the repository too.`);
  });

  repoCommand(key, 'remove <id>', 'remove a key slot (its id, or a unique prefix of 4 or more characters); never the last one, nor the one in use').action(async (id: string, opts: CommonOptions) => {
    const repo = await openEncrypted(opts, 'remove a key slot from it');
    const before = await listKeys(repo, signal);
    await removeKey(repo, id);
    const after = new Set((await listKeys(repo, signal)).map((k) => k.id));
    const removed = before.find((k: KeySlotInfo) => !after.has(k.id))?.id ?? id;
    if (opts.json) return printJson(io, { repository: repo.location, removed });
    io.out(`Removed key slot ${removed} from ${repo.location}: its password no longer opens the repository.`);
  });

  repoCommand(key, 'passwd', 'change the password in use: adds a slot for the new password, then removes the old one').action(async (opts: CommonOptions) => {
    const repo = await openEncrypted(opts, 'change its password');
    const old = repo.keySlotId;
    const next = await changePassword(repo, await newPassword('key passwd', repo.location, { signal }));
    if (opts.json) return printJson(io, { repository: repo.location, key: next, removed: old ?? null });
    io.out(`Changed the password of ${repo.location}: new key slot ${next.id}${old ? `, old slot ${old} removed` : ''}. The old password no longer opens it.`);
  });
}
