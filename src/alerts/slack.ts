/**
 * Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat…): POST `{ text, blocks }`.
 * The webhook URL is the secret (whoever has it may post): stored, never shown beyond its host.
 */
import type { AlertEvent } from '../core/alerts.js';
import type { ChannelDriver } from './types.js';
import { httpUrl, onlySettings, post, shownUrl, str } from './http.js';

const ICON: Record<string, string> = { failure: ':rotating_light:', recovery: ':white_check_mark:', success: ':heavy_check_mark:', rpo: ':hourglass:', stuck: ':warning:', test: ':bell:' };
/** Slack's limits: a header's text 150 characters, a section's 3000. */
const cut = (text: string, max: number): string => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

/** The message body Slack receives. */
export function slackMessage(event: AlertEvent): { text: string; blocks: unknown[] } {
  const facts = [`*${event.kind}*`, event.source && `source ${event.source}`, event.schedule && `schedule ${event.schedule}`, event.drill && `drill ${event.drill}`, event.job && `job ${event.job.id}`, event.at].filter(Boolean).join(' · ');
  return {
    text: `${ICON[event.kind] ?? ''} ${event.title}`.trim(),
    blocks: [
      { type: 'header', text: { type: 'plain_text', text: cut(event.title, 150) } },
      { type: 'section', text: { type: 'mrkdwn', text: cut(event.message || event.title, 3000) } },
      { type: 'context', elements: [{ type: 'mrkdwn', text: cut(facts, 3000) }] },
    ],
  };
}

export const slackChannel: ChannelDriver = {
  type: 'slack',
  configure(settings) {
    onlySettings('slack', settings, ['url']);
    return { url: httpUrl(settings.url, 'The Slack incoming-webhook URL (url)') };
  },
  describe: (config) => ({ target: shownUrl(str(config, 'url')), secretSet: true, settings: {} }),
  secrets: (config) => [str(config, 'url'), new URL(str(config, 'url')).pathname].filter((s) => s.length > 1),
  send: (config, { event }, signal) => post(str(config, 'url'), { 'content-type': 'application/json' }, JSON.stringify(slackMessage(event)), signal),
};
