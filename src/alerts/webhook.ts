/**
 * Generic webhook: POST application/json `{ version: 1, deliveryId, sentAt, ...event }` with
 * `X-Cairn-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed with the channel's
 * secret>`, `X-Cairn-Timestamp` (Unix seconds, also in the signed body as sentAt), `X-Cairn-Event`
 * (the kind) and `X-Cairn-Delivery` (the same id across retries). docs/operations.md shows how a
 * receiver checks the signature.
 */
import { createHmac } from 'node:crypto';
import { UsageError } from '../core/errors.js';
import type { ChannelDriver } from './types.js';
import { httpUrl, onlySettings, post, shownUrl, str } from './http.js';

/** The signature header's value for a raw body. */
export function signature(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

export const webhookChannel: ChannelDriver = {
  type: 'webhook',
  configure(settings) {
    onlySettings('webhook', settings, ['url', 'secret']);
    const url = httpUrl(settings.url, 'The webhook URL (url)');
    if (!settings.secret || settings.secret.length < 16) throw new UsageError('A webhook channel needs a secret of at least 16 characters (secret): receivers check the X-Cairn-Signature made with it. Generate one, e.g. openssl rand -hex 32.');
    return { url, secret: settings.secret };
  },
  describe: (config) => ({ target: shownUrl(str(config, 'url')), secretSet: Boolean(config.secret), settings: {} }),
  secrets: (config) => [str(config, 'secret'), str(config, 'url')].filter(Boolean),
  async send(config, { event, deliveryId, sentAt }, signal) {
    const body = JSON.stringify({ version: 1, deliveryId, sentAt: sentAt.toISOString(), ...event });
    await post(
      str(config, 'url'),
      {
        'content-type': 'application/json',
        'x-cairn-event': event.kind,
        'x-cairn-delivery': String(deliveryId),
        'x-cairn-timestamp': String(Math.floor(sentAt.getTime() / 1000)),
        'x-cairn-signature': signature(str(config, 'secret'), body),
      },
      body,
      signal,
    );
  },
};
