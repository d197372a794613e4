/** /v1/stats: what a repository stores and what deduplication and compression save. */
import { databaseKey } from '../../jobs/database-key.js';
import { repositoryStats } from '../../repo/stats.js';
import type { RouteKit } from './kit.js';

export function statsRoutes({ on, openRepo, scope }: RouteKit): void {
  on('getStats', async (c, { query }) => {
    const stats = await repositoryStats(await openRepo(c, query.repository), { signal: c.req.raw.signal, sourceKey: databaseKey });
    // A token scoped to sources sees theirs in the per-source part (the repository's totals are its own).
    if (scope(c).limited) stats.sources = stats.sources.filter((s) => scope(c).sourceLocation(s.location));
    return c.json(stats);
  });
}
