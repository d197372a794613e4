/** /v1/overview: how every source's backups are doing, in every repository the caller may name. */
import { serverOverview } from '../health.js';
import type { RouteKit } from './kit.js';

export function overviewRoutes(kit: RouteKit): void {
  // A scoped token's overview: its repositories, and in them its sources only.
  kit.on('getOverview', async (c) => c.json(await serverOverview(kit, (name) => kit.openRepo(c, name), c.req.raw.signal, false, kit.scope(c))));
}
