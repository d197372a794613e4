/**
 * /v1/alert-channels, /v1/alert-rules, /v1/alert-deliveries: notifications, admin only. A
 * channel's secrets go into the catalog and never come back out (publicChannel).
 */
import { NotFoundError, UsageError } from '../../core/errors.js';
import { REGISTERED_NAME } from '../../catalog/registry.js';
import { DEFAULT_RULE_ON, validateChannelName } from '../../alerts/center.js';
import { channelDriver, publicChannel } from '../../alerts/registry.js';
import { quote } from '../redact.js';
import type { RouteKit } from './kit.js';

export function alertRoutes({ on, alerts, alertStore, registry, schedules }: RouteKit): void {
  const store = () => {
    if (!alertStore || !alerts) throw new NotFoundError('Alerts are not set up on this server.');
    return { store: alertStore, center: alerts };
  };
  on('listAlertChannels', (c) => c.json({ channels: store().store.channels().map(publicChannel) }));
  on('createAlertChannel', (c, { body: { name, type, ...settings } }) => {
    const config = channelDriver(type).configure(settings);
    const stored = store().store.addChannel({ name: validateChannelName(name), type, config });
    return c.json({ channel: publicChannel(stored) }, 201);
  });
  on('removeAlertChannel', (c) => {
    const name = c.req.param('name') ?? '';
    return c.json({ removed: name, rulesRemoved: store().store.removeChannel(name) });
  });
  on('testAlertChannel', async (c) => c.json({ delivery: await store().center.test(c.req.param('name') ?? '') }));
  on('listAlertRules', (c) => c.json({ rules: store().store.rules() }));
  on('createAlertRule', (c, { body }) => {
    const { store: s } = store();
    if (body.schedule !== undefined) schedules.get(body.schedule); // 404 naming it
    if (body.source !== undefined && REGISTERED_NAME.test(body.source) && registry.url('source', body.source) === undefined) {
      // A bare word is a name; a location has a scheme or a path separator.
      throw new NotFoundError(`No source named ${quote(body.source)}: register it (cairn source add) or give its location as backups record it.`);
    }
    const rule = s.addRule({ channel: body.channel, on: body.on ?? DEFAULT_RULE_ON, source: body.source ?? null, schedule: body.schedule ?? null });
    return c.json({ rule }, 201);
  });
  on('removeAlertRule', (c) => {
    const id = c.req.param('id') ?? '';
    if (!/^[0-9a-f]{12}$/.test(id)) throw new NotFoundError(`No alert rule ${quote(id)}: rule ids are 12 hex digits (GET /v1/alert-rules lists them).`);
    store().store.removeRule(id);
    return c.json({ removed: id });
  });
  on('listAlertDeliveries', (c, { query }) => {
    const limit = query.limit === undefined ? 100 : Number(query.limit);
    if (limit < 1 || limit > 1000) throw new UsageError(`Invalid limit ${limit}: give 1-1000.`);
    return c.json(store().store.deliveries({ ...(query.state ? { state: query.state } : {}), ...(query.channel ? { channel: query.channel } : {}), limit, offset: Number(query.offset ?? 0) }));
  });
}
