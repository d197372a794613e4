/**
 * Scoped tokens: what a token limited to named sources and repositories may name and see. The
 * one place these rules live; the route kit (routes/kit.ts) applies them in openRepo and
 * sourceUrl (every request that names a source, target or repository goes through one of those),
 * and the routes that list or look up things by other keys (jobs, schedules, backups, overview,
 * registrations) ask the same Scope. An unscoped token's Scope allows everything.
 *
 * Rules: a scoped token (sources or repositories limited) names registered names only, never
 * ad-hoc URLs; a limited side allows only its listed names ("default" is the BACKUP_*
 * repository, allowed only when listed); a restore target is a source for this purpose. Things
 * recorded by location (jobs, backups) are matched through the registry: a backup or job is in
 * scope when every database it names is a listed source's database (databaseKey) and every
 * repository it names is a listed repository's location. Out of scope: 403 FORBIDDEN naming the
 * token's scope; listings leave such things out.
 */
import type { SqliteRegistry } from '../catalog/registry.js';
import type { ScheduleSpec } from '../catalog/schedules.js';
import type { TokenInfo } from '../catalog/tokens.js';
import type { JobRecord } from '../catalog/types.js';
import { databaseKey } from '../jobs/database-key.js';
import { DEFAULT_REPOSITORY, ForbiddenError, isName, type AccessPolicy } from './access.js';
import { quote, quoteUrl } from './redact.js';

/** Job params that name a database (a location, or a registered name). */
const DATABASE_PARAMS = ['source', 'target'] as const;
/** Job params that name a repository (a location, or a registered name). */
const REPOSITORY_PARAMS = ['repository', 'from', 'to'] as const;

const keyOf = (location: string): string | undefined => {
  try {
    return databaseKey(location);
  } catch {
    return undefined; // not a location any engine reads: matches nothing
  }
};

export class Scope {
  private readonly sources: ReadonlySet<string> | null;
  private readonly repositories: ReadonlySet<string> | null;
  private sourceKeysCache?: Set<string>;
  private repositoryLocationsCache?: Set<string>;

  constructor(
    private readonly token: Pick<TokenInfo, 'name' | 'id' | 'sources' | 'repositories'> | undefined,
    private readonly access: AccessPolicy,
    private readonly registry: SqliteRegistry,
  ) {
    this.sources = token?.sources ? new Set(token.sources) : null;
    this.repositories = token?.repositories ? new Set(token.repositories) : null;
  }

  /** True when the token is limited on either side. */
  get limited(): boolean {
    return this.sources !== null || this.repositories !== null;
  }

  /** "token ci (sources shop, crm; repositories main)", for 403 messages. */
  private describe(): string {
    const parts = [
      ...(this.sources ? [`sources ${[...this.sources].join(', ')}`] : []),
      ...(this.repositories ? [`repositories ${[...this.repositories].join(', ')}`] : []),
    ];
    const who = this.token?.name ? `token ${quote(this.token.name)}` : `token ${this.token?.id ?? ''}`;
    return `${who} is scoped to ${parts.join('; ')}`;
  }

  private refuse(what: string): never {
    throw new ForbiddenError(`${what} is outside this token's scope: the ${this.describe()}. Use a token scoped to it (an admin makes one: cairn token create --role … --source … --repository …).`);
  }

  /** Whether a registered source name is in scope. */
  sourceName(name: string): boolean {
    return this.sources === null || this.sources.has(name);
  }

  /** Whether a repository name ("default" for the BACKUP_* one) is in scope. */
  repositoryName(name: string): boolean {
    return this.repositories === null || this.repositories.has(name);
  }

  /**
   * A request's `source` or restore `target` (a registered name or a URL). ForbiddenError for
   * a URL (a scoped token never names one) or a name outside the scope.
   */
  checkSource(value: string, what: 'source' | 'target' = 'source'): void {
    if (!this.limited) return;
    if (!isName(value)) throw new ForbiddenError(`A scoped token names registered sources only, not ${quoteUrl(value)}: the ${this.describe()}.`);
    if (!this.sourceName(value)) this.refuse(`The ${what === 'target' ? 'restore target' : 'source'} ${quote(value)}`);
  }

  /** A request's `repository` (undefined or empty: "default"). ForbiddenError as checkSource. */
  checkRepository(value: string | undefined): void {
    if (!this.limited) return;
    const name = value === undefined || value === '' ? DEFAULT_REPOSITORY : value;
    if (!isName(name)) throw new ForbiddenError(`A scoped token names registered repositories only, not ${quoteUrl(name)}: the ${this.describe()}.`);
    if (!this.repositoryName(name)) this.refuse(`The repository ${quote(name)}`);
  }

  /** A schedule: its source, repository and second repository must all be in scope. */
  schedule(spec: Pick<ScheduleSpec, 'source' | 'repository' | 'copyTo'>): boolean {
    if (!this.limited) return true;
    const names = [spec.source, spec.repository, ...(spec.copyTo !== undefined ? [spec.copyTo] : [])];
    if (!names.every(isName)) return false;
    return this.sourceName(spec.source) && this.repositoryName(spec.repository) && (spec.copyTo === undefined || this.repositoryName(spec.copyTo));
  }

  /** A restore drill: its source and repository must both be in scope (its target is a scratch copy). */
  drill(spec: { source: string; repository: string }): boolean {
    return this.sourceValue(spec.source) && this.repositoryValue(spec.repository);
  }

  checkDrill(spec: { name: string; source: string; repository: string }): void {
    if (!this.drill(spec)) this.refuse(`Drill ${quote(spec.name)} (source ${quoteUrl(spec.source)}, repository ${quoteUrl(spec.repository)})`);
  }

  checkSchedule(spec: Pick<ScheduleSpec, 'name' | 'source' | 'repository' | 'copyTo'>): void {
    if (!this.schedule(spec)) this.refuse(`Schedule ${quote(spec.name)} (source ${quoteUrl(spec.source)}, repository ${quoteUrl(spec.repository)})`);
  }

  /** The databases (databaseKey) of the in-scope sources. */
  private sourceKeys(): Set<string> {
    this.sourceKeysCache ??= new Set(
      this.registry
        .list('source')
        .filter((r) => this.sourceName(r.name))
        .map((r) => keyOf(r.location))
        .filter((k): k is string => k !== undefined),
    );
    return this.sourceKeysCache;
  }

  /** The locations of the in-scope repositories. */
  private repositoryLocations(): Set<string> {
    if (!this.repositoryLocationsCache) {
      const set = new Set(this.registry.list('repository').filter((r) => this.repositoryName(r.name)).map((r) => r.location));
      const def = this.access.defaultRepositoryLocation;
      if (def !== undefined && this.repositoryName(DEFAULT_REPOSITORY)) set.add(def);
      this.repositoryLocationsCache = set;
    }
    return this.repositoryLocationsCache;
  }

  /** Whether a database location (a backup's or job's source) belongs to an in-scope source. */
  sourceLocation(location: string): boolean {
    if (this.sources === null) return true;
    const key = keyOf(location);
    return key !== undefined && this.sourceKeys().has(key);
  }

  /** Whether a repository location (as jobs record it) is an in-scope repository's. */
  repositoryLocation(location: string): boolean {
    return this.repositories === null || this.repositoryLocations().has(location);
  }

  /** A source value recorded by a job: a registered name or a location. */
  private sourceValue(value: string): boolean {
    return this.sources === null || (isName(value) ? this.sourceName(value) : this.sourceLocation(value));
  }

  private repositoryValue(value: string): boolean {
    return this.repositories === null || (isName(value) ? this.repositoryName(value) : this.repositoryLocation(value));
  }

  /**
   * Whether a job is in scope: every database and repository its params name is, and it names
   * at least one (a job naming nothing a scope could judge is not shown to a scoped token).
   */
  job(job: Pick<JobRecord, 'params'>): boolean {
    if (!this.limited) return true;
    // A restore drill is about its source and repository; its target is a scratch copy.
    if (typeof job.params.drill === 'string') {
      return typeof job.params.source === 'string' && typeof job.params.repository === 'string' && this.drill({ source: job.params.source, repository: job.params.repository });
    }
    let named = 0;
    for (const k of DATABASE_PARAMS) {
      const v = job.params[k];
      if (typeof v !== 'string') continue;
      named++;
      if (!this.sourceValue(v)) return false;
    }
    for (const k of REPOSITORY_PARAMS) {
      const v = job.params[k];
      if (typeof v !== 'string') continue;
      named++;
      if (!this.repositoryValue(v)) return false;
    }
    return named > 0;
  }

  checkJob(job: Pick<JobRecord, 'id' | 'params'>): void {
    if (!this.job(job)) this.refuse(`Job ${job.id}`);
  }

  /** A backup by the location its manifest records as its source. */
  checkBackup(id: string, sourceLocation: string): void {
    if (!this.sourceLocation(sourceLocation)) this.refuse(`Backup ${quote(id)} (of ${quoteUrl(sourceLocation)})`);
  }
}
