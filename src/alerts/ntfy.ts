/**
 * ntfy (https://ntfy.sh or a self-hosted server): POST the message as text to <server>/<topic>
 * with headers Title, Priority (high for failure, rpo and stuck; default otherwise) and Tags;
 * `Authorization: Bearer <token>` when the channel has a token. A topic on a public server is as
 * good as a password: listings show its first two characters only.
 */
import { UsageError } from '../core/errors.js';
import type { AlertEvent } from '../core/alerts.js';
import type { ChannelDriver } from './types.js';
import { httpUrl, onlySettings, post, shownUrl, str } from './http.js';

const TAGS: Record<string, string> = { failure: 'rotating_light', recovery: 'white_check_mark', success: 'heavy_check_mark', rpo: 'hourglass', stuck: 'warning', test: 'bell' };

/** A header value as ntfy reads it: ASCII as is, anything else RFC 2047 encoded (fetch refuses non-Latin-1 headers). */
const header = (text: string): string => (/^[\x20-\x7e]*$/.test(text) ? text : `=?UTF-8?B?${Buffer.from(text, 'utf8').toString('base64')}?=`);

/** The request ntfy receives: headers and text body. */
export function ntfyMessage(event: AlertEvent): { headers: Record<string, string>; body: string } {
  return {
    headers: {
      'content-type': 'text/plain; charset=utf-8',
      title: header(event.title.slice(0, 250)),
      priority: event.kind === 'failure' || event.kind === 'rpo' || event.kind === 'stuck' ? 'high' : 'default',
      tags: `${TAGS[event.kind] ?? 'bell'},cairn,${event.kind}`,
    },
    body: [event.message || event.title, event.job ? `job ${event.job.id}` : '', event.at].filter(Boolean).join('\n'),
  };
}

export const ntfyChannel: ChannelDriver = {
  type: 'ntfy',
  configure(settings) {
    onlySettings('ntfy', settings, ['url', 'topic', 'token']);
    const url = httpUrl(settings.url ?? 'https://ntfy.sh', 'The ntfy server URL (url)');
    if (!settings.topic || !/^[A-Za-z0-9_-]{1,64}$/.test(settings.topic)) throw new UsageError('An ntfy channel needs a topic (topic) of 1-64 letters, digits, "-" or "_".');
    return { url: url.replace(/\/+$/, ''), topic: settings.topic, ...(settings.token ? { token: settings.token } : {}) };
  },
  describe: (config) => ({ target: shownUrl(str(config, 'url')), secretSet: Boolean(config.token), settings: { topic: `${str(config, 'topic').slice(0, 2)}…` } }),
  secrets: (config) => [str(config, 'token'), str(config, 'topic')].filter(Boolean),
  async send(config, { event }, signal) {
    const { headers, body } = ntfyMessage(event);
    const token = str(config, 'token');
    await post(`${str(config, 'url')}/${str(config, 'topic')}`, { ...headers, ...(token ? { authorization: `Bearer ${token}` } : {}) }, body, signal);
  },
};
