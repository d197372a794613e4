/** /v1/servers: the cairn servers sharing the job catalog (each one's heartbeat and lease). */
import type { RouteKit } from './kit.js';

export function serverRoutes({ on, center }: RouteKit): void {
  on('listServers', async (c) => c.json({ servers: await center.servers() }));
}
