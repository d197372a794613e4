/** The channel types, one line each (a new type: a file like webhook.ts and a line here). */
import { UsageError } from '../core/errors.js';
import { CHANNEL_TYPES, type ChannelType, type StoredChannel } from '../catalog/alerts.js';
import type { ChannelDriver, ChannelView } from './types.js';
import { webhookChannel } from './webhook.js';
import { slackChannel } from './slack.js';
import { ntfyChannel } from './ntfy.js';
import { emailChannel } from './email.js';

const CHANNELS: Record<ChannelType, ChannelDriver> = {
  webhook: webhookChannel,
  slack: slackChannel,
  ntfy: ntfyChannel,
  email: emailChannel,
};

/** @throws UsageError naming the types there are. */
export function channelDriver(type: string): ChannelDriver {
  const d = (CHANNELS as Record<string, ChannelDriver | undefined>)[type];
  if (!d) throw new UsageError(`Unknown alert channel type "${type.slice(0, 32)}": use one of ${CHANNEL_TYPES.join(', ')}.`);
  return d;
}

/** A channel as the API and `alert channel list` show it: no secret. */
export type PublicChannel = { name: string; type: ChannelType; createdAt: string } & ChannelView;

export function publicChannel(c: StoredChannel): PublicChannel {
  return { name: c.name, type: c.type, createdAt: c.createdAt, ...channelDriver(c.type).describe(c.config) };
}
