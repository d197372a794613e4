/**
 * What a request may NAME (the role checks say what it may DO): by default only sources and
 * repositories registered on the server (by name), and the repository the BACKUP_* variables
 * describe ("default"). Ad-hoc URLs and paths are refused unless the server was started with
 * --allow-urls (ServerOptions.allowAdHocUrls), and then only for operators and admins: a viewer
 * never makes the server connect to a host or read a path nobody registered. In every mode, a
 * SQLite file or a file-system repository in the server's own data folder (the catalog with its
 * tokens and passwords, the lock) is refused, however the path is spelled: `file:` URLs, `..`,
 * symbolic links (resolved component by component, also dangling ones), other letter case, and
 * hard links to the data folder's files.
 *
 * Trust: a registered source's URL was written by an admin, and is resolved with the server's
 * own settings (PostgreSQL: service files, PG* variables, ~/.pgpass, the Unix socket), as the CLI
 * resolves its own. A URL that arrives ad hoc in a request (from an operator or an admin, or from
 * a schedule made with one, as the scheduler runs it) is resolved untrusted (UrlTrust): from its
 * own text only, so it can never borrow the server's passwords or identity for a host it names.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CairnError, NotFoundError, UsageError } from '../core/errors.js';
import type { Role } from '../catalog/tokens.js';
import { REGISTERED_NAME, RESERVED_REPOSITORY_NAME, type SqliteRegistry, type StoredPasswordSource } from '../catalog/registry.js';
import { readPasswordFile, readPasswordSource } from '../core/password-source.js';
import { Repository } from '../repo/repository.js';
import { findDriver } from '../sources/registry.js';
import { databaseKey } from '../jobs/database-key.js';
import { FileSystemStorage, openStorage, type Storage } from '../storage/index.js';
import { quote, quoteUrl } from './redact.js';

/** A request names something it may not: answered 403 FORBIDDEN. */
export class ForbiddenError extends CairnError {
  constructor(message: string) {
    super('USAGE', message);
    this.name = 'ForbiddenError';
  }
}

/** Who asks: a token's role, or the server itself (its scheduler runs what was accepted before). */
export type Asker = Role | 'server';

/** The name the BACKUP_* repository goes by in requests (and the default when none is given). */
export const DEFAULT_REPOSITORY = RESERVED_REPOSITORY_NAME;

/** Whether `value` has a registered name's form (the catalog's rule: one registry of names). */
export const isName = (value: string): boolean => REGISTERED_NAME.test(value);

/** A database a request names: its URL, and whether it came ad hoc (resolved untrusted). */
export interface DatabaseRef {
  url: string;
  untrusted: boolean;
}

export interface AccessOptions {
  dataDir: string;
  registry: SqliteRegistry;
  /** Operators and admins may name URLs and paths nobody registered (never the data folder). */
  allowAdHocUrls?: boolean;
  /** The repository of the BACKUP_* variables: used when a request names none, and as "default". */
  defaultRepository?: Storage;
  /** Names in the server's registry (`POST /v1/repositories`, or `cairn repo add` with the server's data folder as CAIRN_DATA_DIR) → their URL (else the value). */
  resolveConfigName?: (value: string) => Promise<string>;
  /** Locations of databases no request may name: the PostgreSQL job catalog (--catalog). */
  protectedDatabases?: string[];
  /** The server's environment: CAIRN_PASSWORD_FILE / CAIRN_PASSWORD open an encrypted BACKUP_* repository. */
  env?: NodeJS.ProcessEnv;
}

/** Where the password of a repository a request names would come from. */
type PasswordPlan = { kind: 'default' } | { kind: 'ad-hoc' } | { kind: 'registered'; name: string; source: StoredPasswordSource | undefined };

/** `child` is `parent` or inside it (both absolute, normalised). */
function within(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith(`..${path.sep}`) && rel !== '..' && !path.isAbsolute(rel));
}

/**
 * The path a name leads to: every existing component's symbolic link followed (dangling links
 * too, by their target), the components that do not exist yet kept as written.
 */
export function resolveThroughLinks(p: string): string {
  let todo = path.resolve(p).split(path.sep).filter(Boolean);
  let cur = path.parse(path.resolve(p)).root;
  for (let hops = 0; todo.length > 0; ) {
    const part = todo.shift() as string;
    const next = path.join(cur, part);
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(next);
    } catch {
      st = undefined;
    }
    if (st?.isSymbolicLink()) {
      if (++hops > 40) return next; // a loop: nothing opens it either
      const target = path.resolve(cur, fs.readlinkSync(next));
      todo = [...target.split(path.sep).filter(Boolean), ...todo];
      cur = path.parse(target).root;
      continue;
    }
    cur = next;
  }
  return cur;
}

export class AccessPolicy {
  readonly dataDir: string;
  private readonly dataDirReal: string;

  constructor(private readonly options: AccessOptions) {
    this.dataDir = path.resolve(options.dataDir);
    this.dataDirReal = resolveThroughLinks(this.dataDir);
    if (options.defaultRepository) this.checkStorage(options.defaultRepository, 'The BACKUP_* repository');
  }

  /** A name in the server's registry (see above) → its URL (else the value as given). */
  async resolveConfigName(value: string): Promise<string> {
    return this.options.resolveConfigName ? this.options.resolveConfigName(value) : value;
  }

  get allowAdHocUrls(): boolean {
    return Boolean(this.options.allowAdHocUrls);
  }

  /** The data folder's own files, by device and inode (hard links to them are refused too). */
  private dataFiles(): Set<string> {
    const ids = new Set<string>();
    for (const dir of new Set([this.dataDir, this.dataDirReal])) {
      let names: string[] = [];
      try {
        names = fs.readdirSync(dir);
      } catch {
        continue;
      }
      for (const n of names) {
        try {
          const st = fs.statSync(path.join(dir, n));
          if (st.isFile()) ids.add(`${st.dev}:${st.ino}`);
        } catch {
          /* gone meanwhile */
        }
      }
    }
    return ids;
  }

  /** True when the path is, or is inside, the data folder (or, `container`, holds it). */
  private touchesDataDir(p: string, container: boolean): boolean {
    const candidates = [path.resolve(p), resolveThroughLinks(p)];
    const dirs = [this.dataDir, this.dataDirReal];
    for (const c of candidates) {
      for (const d of dirs) {
        // Letter case too: on a case-insensitive file system /Data is /data.
        for (const [x, y] of [[c, d], [c.toLowerCase(), d.toLowerCase()]] as const) {
          if (within(x, y) || (container && within(y, x))) return true;
        }
      }
    }
    return false;
  }

  private refuseDataDir(what: string): never {
    throw new ForbiddenError(`${what} is in the server's data folder (its catalog holds tokens and passwords): never allowed; choose another place.`);
  }

  /** A SQLite file (source or target) must not be, or be a hard link to, a data-folder file. */
  checkSqlitePath(file: string, what = 'That SQLite file'): void {
    if (this.touchesDataDir(file, false)) this.refuseDataDir(what);
    try {
      const st = fs.statSync(file);
      if (this.dataFiles().has(`${st.dev}:${st.ino}`)) this.refuseDataDir(`${what} (a hard link)`);
    } catch (err) {
      if (err instanceof CairnError) throw err;
      /* does not exist: the path check was enough */
    }
  }

  /** A file-system repository must not be in the data folder nor contain it. */
  checkStorage(storage: Storage, what = 'That repository'): void {
    if (storage instanceof FileSystemStorage && this.touchesDataDir(storage.root, true)) this.refuseDataDir(what);
  }

  /**
   * A database URL's checks: a local file (SQLite) not in the data folder; a database not the
   * server's job catalog (however the URL spells it: user, localhost/127.0.0.1, socket), the URL
   * resolved as it will be opened (`untrusted`: an ad-hoc URL, UrlTrust).
   */
  checkDatabaseUrl(url: string, what: string, untrusted = false): void {
    const driver = findDriver(url);
    if (!driver) return;
    const file = driver.localFile?.(url);
    if (file !== undefined) this.checkSqlitePath(file, what);
    else if (this.options.protectedDatabases?.length) {
      const key = databaseKey(driver.location(url, { untrusted }));
      // A key ending in "/" names a whole server (every database on it): the catalog's server too.
      if (this.options.protectedDatabases.some((d) => databaseKey(d) === key || (key.endsWith('/') && databaseKey(d).startsWith(key)))) {
        throw new ForbiddenError(`${what} is, or holds, the server's job catalog (--catalog): never allowed; choose another database (for a whole server: another server).`);
      }
    }
  }

  private adHoc(value: string, kind: string, who: Asker): void {
    if (who === 'server' || who === 'admin' || who === 'operator') {
      if (who === 'server' || this.options.allowAdHocUrls) return;
      throw new ForbiddenError(
        `This server accepts only registered ${kind === 'repository' ? 'repositories' : 'sources'} by name, not ${quoteUrl(value)}: ` +
          `an admin registers it (POST /v1/${kind === 'repository' ? 'repositories' : 'sources'}), or starts the server with --allow-urls.`,
      );
    }
    throw new ForbiddenError(`A viewer names only registered ${kind === 'repository' ? 'repositories' : 'sources'}, not ${quoteUrl(value)}: list them with GET /v1/${kind === 'repository' ? 'repositories' : 'sources'}.`);
  }

  /** The storage a request's `repository` names (undefined or empty: the BACKUP_* one). */
  async repositoryStorage(value: string | undefined, who: Asker): Promise<Storage> {
    return (await this.repositoryTarget(value, who)).storage;
  }

  /**
   * What a request's `repository` names: its storage, and where its password comes from when it
   * is encrypted: the source registered with the name, the server's own CAIRN_PASSWORD_FILE /
   * CAIRN_PASSWORD for the BACKUP_* repository, none for an ad-hoc URL.
   */
  private async repositoryTarget(value: string | undefined, who: Asker): Promise<{ storage: Storage; password: PasswordPlan }> {
    if (value === undefined || value === '' || (value === DEFAULT_REPOSITORY && this.options.registry.url('repository', value) === undefined)) {
      if (this.options.defaultRepository) return { storage: this.options.defaultRepository, password: { kind: 'default' } };
      throw new CairnError(
        value ? 'NOT_FOUND' : 'USAGE',
        value
          ? 'No default repository: the server was started without BACKUP_FILESYSTEM_PATH, BACKUP_S3_BUCKET, BACKUP_AZURE_CONTAINER or BACKUP_GCS_BUCKET; name a registered repository.'
          : 'Give the repository (a registered name: GET /v1/repositories); this server has no default one (BACKUP_* variables).',
      );
    }
    const registered = this.options.registry.url('repository', value);
    let url: string;
    let password: PasswordPlan = { kind: 'ad-hoc' };
    if (registered !== undefined) {
      url = registered;
      password = { kind: 'registered', name: value, source: this.options.registry.passwordSource('repository', value) };
    } else {
      const configured = isName(value) && this.options.resolveConfigName ? await this.options.resolveConfigName(value) : value;
      if (configured === value) {
        if (isName(value)) throw new NotFoundError(`No repository named ${quote(value)} is registered: list them with GET /v1/repositories.`);
        this.adHoc(value, 'repository', who);
      } else password = { kind: 'registered', name: value, source: this.options.registry.passwordSource('repository', value) };
      url = configured;
    }
    const storage = openStorage(url);
    this.checkStorage(storage);
    return { storage, password };
  }

  /** The location of the repository "default" names (a registration of that name, else the BACKUP_* one), if any. */
  get defaultRepositoryLocation(): string | undefined {
    return this.options.registry.list('repository').find((r) => r.name === DEFAULT_REPOSITORY)?.location ?? this.options.defaultRepository?.location;
  }

  /** Whether the server has a BACKUP_* repository (named "default" unless a registration took the name). */
  get hasDefaultRepository(): boolean {
    return this.options.defaultRepository !== undefined || this.options.registry.url('repository', DEFAULT_REPOSITORY) !== undefined;
  }

  async repository(value: string | undefined, who: Asker): Promise<Repository> {
    const { storage, password } = await this.repositoryTarget(value, who);
    return Repository.open(storage, { password: () => this.password(password, storage.location) });
  }

  /**
   * The password of an encrypted repository, read when Repository.open asks (a plain one never
   * does): from the registered source (a file read, or a command run without a terminal, its
   * stderr discarded), never cached, never logged. Errors name the registration, never the
   * password nor the command's output.
   */
  private async password(plan: PasswordPlan, location: string): Promise<string> {
    if (plan.kind === 'registered' && plan.source) {
      const label = `the password ${'file' in plan.source ? 'file' : 'command'} registered with repository ${quote(plan.name)}`;
      return readPasswordSource(plan.source, label, { interactive: false });
    }
    if (plan.kind === 'default') {
      const env = this.options.env ?? process.env;
      if (env.CAIRN_PASSWORD_FILE) return readPasswordFile(env.CAIRN_PASSWORD_FILE, "the server's CAIRN_PASSWORD_FILE");
      if (env.CAIRN_PASSWORD) return env.CAIRN_PASSWORD;
      throw new UsageError(`The default repository ${location} is encrypted and the server was started without its password: set CAIRN_PASSWORD_FILE (or CAIRN_PASSWORD) for the server, or register the repository with its password source.`);
    }
    const how = 'an admin registers it with its password source (POST /v1/repositories with passwordFile or passwordCommand, or cairn repo add NAME URL --password-file F)';
    if (plan.kind === 'registered') throw new UsageError(`The repository ${quote(plan.name)} is encrypted and was registered without a password source: ${how.replace('registers it', 'registers it again')}.`);
    throw new UsageError(`The repository ${location} is encrypted: the server opens an encrypted repository only by a registered name that carries its password source; ${how}.`);
  }

  /**
   * The database to connect to for a request's `source` or `target`: a registered name (its URL,
   * trusted), or an ad-hoc URL (untrusted, whoever asks: the scheduler runs what a request
   * gave). Open it with `{ untrusted }` (openSource, openTarget).
   */
  databaseUrl(value: string, who: Asker, what: 'source' | 'target' = 'source'): DatabaseRef {
    let ref: DatabaseRef;
    if (isName(value)) {
      const registered = this.options.registry.url('source', value);
      if (registered === undefined) throw new NotFoundError(`No source named ${quote(value)} is registered: list them with GET /v1/sources${who === 'server' ? ', or register it' : ''}.`);
      ref = { url: registered, untrusted: false };
    } else {
      this.adHoc(value, 'source', who);
      ref = { url: value, untrusted: true };
    }
    this.checkDatabaseUrl(ref.url, what === 'source' ? 'That source' : 'That restore target', ref.untrusted);
    return ref;
  }
}
