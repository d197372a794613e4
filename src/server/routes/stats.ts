/** /v1/stats: what a repository stores and what deduplication and compression save. */
import { databaseKey } from '../../jobs/database-key.js';
import { repositoryStats } from '../../repo/stats.js';
import type { RouteKit } from './kit.js';

export function statsRoutes({ on, openRepo }: RouteKit): void {
  on('getStats', async (c, { query }) => c.json(await repositoryStats(await openRepo(c, query.repository), { signal: c.req.raw.signal, sourceKey: databaseKey })));
}
