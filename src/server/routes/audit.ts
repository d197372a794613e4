/** /v1/audit: the audit log (catalog/audit.ts), admin only, newest first. */
import { parseListDate } from './table.js';
import type { RouteKit } from './kit.js';

export function auditRoutes({ on, audit }: RouteKit): void {
  on('listAudit', (c, { query }) => {
    const limit = query.limit ?? 100;
    const offset = query.offset ?? 0;
    const { entries, total } = audit
      ? audit.list({
          ...(query.since !== undefined ? { sinceMs: parseListDate(query.since, 'since') as number } : {}),
          ...(query.until !== undefined ? { untilMs: parseListDate(query.until, 'until') as number } : {}),
          ...(query.actor !== undefined ? { actor: query.actor } : {}),
          limit,
          offset,
        })
      : { entries: [], total: 0 };
    return c.json({ entries, total, limit, offset });
  });
}
