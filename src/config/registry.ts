/**
 * Named repositories: a small registry in the user's configuration file, so that `--repo prod`
 * can stand for `s3://bucket/prefix?endpoint=…`. The file is JSON:
 *
 *   { "repositories": { "<name>": { "url": "<repository URL>", "addedAt": "<ISO time>" } } }
 *
 * It lives at $CAIRN_CONFIG, else $XDG_CONFIG_HOME/cairn/config.json, else
 * ~/.config/cairn/config.json; it is written atomically (temp file + rename) with mode 0600.
 * Unknown top-level keys are kept. Credentials never go here: repository URLs hold none.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { ConflictError, NotFoundError, UsageError } from '../core/errors.js';

export const REPO_NAME_PATTERN = /^[a-z0-9][a-z0-9_-]*$/;
const MAX_NAME_LENGTH = 64;

const RegisteredRepositorySchema = z.object({
  url: z.string().min(1),
  addedAt: z.string().optional(),
});
export type RegisteredRepository = z.infer<typeof RegisteredRepositorySchema>;

const ConfigFileSchema = z.looseObject({
  repositories: z.record(z.string().regex(REPO_NAME_PATTERN), RegisteredRepositorySchema).default({}),
});
export type ConfigFile = z.infer<typeof ConfigFileSchema>;

/** Where the configuration file is, from the environment. */
export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.CAIRN_CONFIG) return env.CAIRN_CONFIG;
  const base = env.XDG_CONFIG_HOME ? env.XDG_CONFIG_HOME : join(env.HOME || homedir(), '.config');
  return join(base, 'cairn', 'config.json');
}

export function validateRepoName(name: string): string {
  if (!REPO_NAME_PATTERN.test(name) || name.length > MAX_NAME_LENGTH) {
    throw new UsageError(
      `Invalid repository name "${name}": use 1–${MAX_NAME_LENGTH} lowercase letters, digits, "-" or "_", starting with a letter or digit.`,
    );
  }
  return name;
}

/** The configuration; an empty one when the file does not exist. */
export async function readConfig(env: NodeJS.ProcessEnv = process.env): Promise<ConfigFile> {
  const path = configPath(env);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { repositories: {} };
    throw new UsageError(`Cannot read the cairn configuration ${path}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new UsageError(`The cairn configuration ${path} is not valid JSON: fix or remove it.`);
  }
  const parsed = ConfigFileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UsageError(`The cairn configuration ${path} is invalid (${issue ? `${issue.path.join('.') || 'top level'}: ${issue.message}` : 'unknown problem'}): fix or remove it.`);
  }
  return parsed.data;
}

/** Writes the configuration atomically: a temp file beside it (mode 0600), then a rename. */
export async function writeConfig(config: ConfigFile, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const path = configPath(env);
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
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

export async function listRepositories(env: NodeJS.ProcessEnv = process.env): Promise<{ name: string; url: string; addedAt?: string }[]> {
  const config = await readConfig(env);
  return Object.entries(config.repositories)
    .map(([name, r]) => ({ name, ...r }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

export async function addRepository(name: string, url: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  validateRepoName(name);
  if (!url) throw new UsageError('No repository URL given: cairn repo add <name> <url>.');
  const config = await readConfig(env);
  const existing = config.repositories[name];
  if (existing) {
    throw new ConflictError(`A repository named "${name}" is already registered (${existing.url}). Remove it first with: cairn repo remove ${name}`);
  }
  config.repositories[name] = { url, addedAt: new Date().toISOString() };
  await writeConfig(config, env);
}

/** Forgets a name; the repository's data is not touched. Returns the URL it stood for. */
export async function removeRepository(name: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const config = await readConfig(env);
  const existing = config.repositories[name];
  if (!existing) throw new NotFoundError(`No repository named "${name}" is registered in ${configPath(env)}. List them with: cairn repo list`);
  delete config.repositories[name];
  await writeConfig(config, env);
  return existing.url;
}

/** A value could be a name only when it contains no "/" and no ":" (so paths and URLs never are). */
export function mayBeName(value: string): boolean {
  return !value.includes('/') && !value.includes(':') && !value.includes('\\') && REPO_NAME_PATTERN.test(value);
}

/**
 * The repository URL a `--repo` value stands for: a registered name (no "/" and no ":") gives its
 * URL; anything else, including an unregistered name, is a path or URL and is returned as is.
 */
export async function resolveRepository(value: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (!mayBeName(value)) return value;
  const config = await readConfig(env);
  return config.repositories[value]?.url ?? value;
}
