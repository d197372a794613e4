/** /v1/overview: how every source's backups are doing, in every repository the caller may name. */
import { CairnError } from '../../core/errors.js';
import { cachedDatabaseKey } from '../../jobs/backup-summaries.js';
import { buildOverview } from '../../jobs/overview.js';
import { openSource } from '../../sources/index.js';
import { DEFAULT_REPOSITORY } from '../access.js';
import { safeMessage } from '../redact.js';
import type { RouteKit } from './kit.js';

export function overviewRoutes({ on, center, registry, schedules, scheduler, access, openRepo, summaries, scope: scopeOf }: RouteKit): void {
  on('getOverview', async (c) => {
    // A scoped token's overview: its repositories, and in them its sources only.
    const scope = scopeOf(c);
    const names = [...(access.hasDefaultRepository ? [DEFAULT_REPOSITORY] : []), ...registry.list('repository').map((r) => r.name).filter((n) => n !== DEFAULT_REPOSITORY)].filter((n) => scope.repositoryName(n));
    const overview = await buildOverview({
      repositories: names.map((name) => ({ name, open: () => openRepo(c, name) })),
      ...(summaries ? { store: summaries } : {}),
      jobs: (await center.list({ kind: 'backup', limit: 1000 })).filter((j) => scope.job(j)),
      schedules: schedules.list().filter((s) => scope.schedule(s)),
      registeredSources: registry.list('source').filter((r) => scope.sourceName(r.name)).map((r) => ({ name: r.name, value: r.name })),
      // Parsed only (no connection): a registered name's URL, or the URL a schedule was given.
      sourceOf: (value) => {
        try {
          const ref = access.databaseUrl(value, 'server');
          const source = openSource(ref.url, { untrusted: ref.untrusted });
          return { location: source.location, kind: source.kind };
        } catch {
          return undefined;
        }
      },
      next: (s, after) => scheduler.next(s, after),
      keyOf: cachedDatabaseKey,
      // A repository that cannot be opened or listed is named with why (no secrets), never fails the overview.
      describeError: (err) => (err instanceof CairnError ? { code: err.code, message: safeMessage(err.message) } : { code: 'INTERNAL', message: 'Internal error reading the repository; GET /v1/backups?repository=… answers with the details.' }),
      now: new Date(),
      signal: c.req.raw.signal,
    });
    if (scope.limited) overview.sources = overview.sources.filter((s) => scope.sourceLocation(s.location));
    return c.json(overview);
  });
}
