/**
 * GET /v1/health (liveness without a token; with one, each source against its recovery point
 * objective and the stuck jobs) and PATCH /v1/sources/:name (a source's objective).
 */
import { parseRpo } from '../../jobs/health.js';
import { identify } from '../session-auth.js';
import { registeredName, type RouteKit } from './kit.js';

export function healthRoutes(kit: RouteKit): void {
  const { on, registry } = kit;
  on('getHealth', async (c) => {
    // Load balancers ask without a token: they get the liveness answer. A token (or a console
    // session) gets the details; a wrong one is refused rather than answered as anonymous.
    if (c.req.header('authorization') === undefined && c.req.header('cookie') === undefined) return c.json({ status: 'ok' as const });
    const who = identify(c, kit.tokens, kit.sessions);
    if (!who.ok) {
      if (c.req.header('authorization') === undefined) return c.json({ status: 'ok' as const }); // a stale console cookie: anonymous
      return c.json({ error: { code: who.code, message: who.message } }, who.status);
    }
    c.set('token', who.token);
    const { report } = await kit.health.forRequest((name) => kit.openRepo(c, name), c.req.raw.signal, kit.scope(c));
    return c.json(report);
  });
  on('updateSource', (c, { body }) => {
    const name = registeredName(c.req.param('name') ?? '', 'source');
    return c.json({ source: registry.setRpo(name, parseRpo(body.rpo)) });
  });
}
