/**
 * Named repositories for the CLI, so that `--repo prod` can stand for `s3://bucket/prefix?…`.
 * The names live in the one registry of names, the catalog of a data folder
 * (src/catalog/registry.ts; `--data-dir`, else $CAIRN_DATA_DIR, else ~/.local/share/cairn), which
 * `cairn server` on that data folder reads too. Repository URLs hold no credentials.
 *
 * Earlier versions kept these names in a configuration file ($CAIRN_CONFIG, else
 * $XDG_CONFIG_HOME/cairn/config.json, else ~/.config/cairn/config.json). Its names are moved into
 * the catalog the first time the CLI looks names up (importLegacyNames); the file keeps its
 * other keys, and any name the catalog already holds for another URL.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { chmod, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { catalogFile, defaultDataDir } from '../catalog/database.js';
import { REGISTERED_NAME, SqliteRegistry, type StoredPasswordSource } from '../catalog/registry.js';
import { UsageError } from '../core/errors.js';
import { openStorage } from '../storage/index.js';

const LegacyConfigSchema = z.looseObject({
  repositories: z.record(z.string(), z.object({ url: z.string().min(1), addedAt: z.string().optional() })).optional(),
});
type LegacyConfig = z.infer<typeof LegacyConfigSchema>;

/** Where earlier versions kept repository names, from the environment. */
export function legacyConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.CAIRN_CONFIG) return env.CAIRN_CONFIG;
  const base = env.XDG_CONFIG_HOME ? env.XDG_CONFIG_HOME : join(env.HOME || homedir(), '.config');
  return join(base, 'cairn', 'config.json');
}

/** A value could be a name only when it contains no "/", ":" or "\" (so paths and URLs never are). */
export function mayBeName(value: string): boolean {
  return !value.includes('/') && !value.includes(':') && !value.includes('\\') && REGISTERED_NAME.test(value);
}

async function readLegacyConfig(path: string): Promise<LegacyConfig | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new UsageError(`Cannot read the cairn configuration ${path}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new UsageError(`The cairn configuration ${path} is not valid JSON: fix or remove it.`);
  }
  const parsed = LegacyConfigSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UsageError(`The cairn configuration ${path} is invalid (${issue ? `${issue.path.join('.') || 'top level'}: ${issue.message}` : 'unknown problem'}): fix or remove it.`);
  }
  return parsed.data;
}

/** Writes the configuration atomically: a temp file beside it (mode 0600), then a rename. */
async function writeLegacyConfig(path: string, config: LegacyConfig): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, JSON.stringify(config, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
    await chmod(tmp, 0o600);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw new UsageError(`Cannot write the cairn configuration ${path}: ${(err as Error).message}`);
  }
}

/**
 * Moves the repository names of the legacy configuration file into the catalog of `dataDir`;
 * returns the names moved. A name the catalog holds already stays in the file unless it stands
 * for the same URL; an invalid or reserved one stays in the file too.
 */
export async function importLegacyNames(dataDir: string, env: NodeJS.ProcessEnv = process.env): Promise<string[]> {
  const path = legacyConfigPath(env);
  const config = await readLegacyConfig(path);
  const entries = Object.entries(config?.repositories ?? {});
  if (!config || entries.length === 0) return [];
  const kept: NonNullable<LegacyConfig['repositories']> = {};
  const moved: string[] = [];
  const registry = new SqliteRegistry(catalogFile(dataDir));
  try {
    for (const [name, { url, addedAt }] of entries) {
      const existing = registry.url('repository', name);
      if (existing === url) moved.push(name);
      else if (existing !== undefined) kept[name] = { url, ...(addedAt ? { addedAt } : {}) };
      else {
        try {
          registry.add('repository', name, url, openStorage(url).location);
          moved.push(name);
        } catch {
          kept[name] = { url, ...(addedAt ? { addedAt } : {}) };
        }
      }
    }
  } finally {
    registry.close();
  }
  const { repositories: _old, ...rest } = config;
  await writeLegacyConfig(path, Object.keys(kept).length > 0 ? { ...rest, repositories: kept } : rest);
  return moved;
}

/**
 * Opens the registry of `dataDir` (default: $CAIRN_DATA_DIR, else ~/.local/share/cairn) after
 * moving any legacy names in, runs `use`, and closes it. With `ifMissing`, a data folder without
 * a catalog answers that instead of being created (a lookup creates nothing).
 */
export async function withRepositoryNames<T>(dataDir: string | undefined, use: (registry: SqliteRegistry) => T, ifMissing?: { value: T }): Promise<T> {
  const dir = dataDir ?? defaultDataDir();
  await importLegacyNames(dir);
  if (ifMissing && !fs.existsSync(catalogFile(dir))) return ifMissing.value;
  const registry = new SqliteRegistry(catalogFile(dir));
  try {
    return use(registry);
  } finally {
    registry.close();
  }
}

/**
 * The repository URL a `--repo` value stands for: a name registered in the catalog of `dataDir`
 * (no "/" and no ":") gives its URL; anything else, including an unregistered name, is a path or
 * URL and is returned as is.
 */
export async function resolveRepository(value: string, dataDir?: string): Promise<string> {
  if (!mayBeName(value)) return value;
  return withRepositoryNames(dataDir, (registry) => registry.url('repository', value) ?? value, { value });
}

/**
 * resolveRepository, with the password source a registered name carries (`cairn repo add NAME
 * URL --password-file F | --password-command C`): where an encrypted repository's password is
 * read when no flag or variable gives one (src/cli/password.ts).
 */
export async function resolveRepositoryEntry(value: string, dataDir?: string): Promise<{ url: string; passwordSource?: StoredPasswordSource }> {
  if (!mayBeName(value)) return { url: value };
  return withRepositoryNames(
    dataDir,
    (registry) => {
      const url = registry.url('repository', value);
      if (url === undefined) return { url: value };
      const passwordSource = registry.passwordSource('repository', value);
      return passwordSource ? { url, passwordSource } : { url };
    },
    { value: { url: value } },
  );
}

/**
 * The database URL a `--source` value stands for in this process (backup create without a
 * server): a name registered with `cairn source add` in the catalog of `dataDir` (as `--repo`
 * names are looked up, resolveRepository) gives its URL; a URL is returned as is. A word that
 * could be a name but is not registered is a UsageError saying where names are looked up.
 */
export async function resolveSource(value: string, dataDir?: string): Promise<string> {
  if (!mayBeName(value)) return value;
  const url = await withRepositoryNames(dataDir, (registry) => registry.url('source', value), { value: undefined });
  if (url !== undefined) return url;
  throw new UsageError(
    `"${value}" is neither a database URL nor a source registered in ${catalogFile(dataDir ?? defaultDataDir())}: register it (cairn source add ${value} <url>, with the same $CAIRN_DATA_DIR), or write a URL such as sqlite:///absolute/path.db or postgres://user@host:port/dbname.`,
  );
}
