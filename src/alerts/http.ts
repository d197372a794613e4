/** What the HTTP channel types share: checked URLs, shown without secrets, and one POST per attempt. */
import { UsageError } from '../core/errors.js';
import { scrubSecrets } from '../sources/redact.js';
import type { ChannelSettings } from './types.js';

/** An http(s) URL, checked. @throws UsageError naming `what` (never quoting the value: it may be a secret). */
export function httpUrl(value: string | undefined, what: string): string {
  if (!value) throw new UsageError(`${what} is missing: give the receiver's http:// or https:// URL.`);
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new UsageError(`${what} is not a URL: give the receiver's http:// or https:// URL.`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`${what} must be an http:// or https:// URL, not ${u.protocol}//….`);
  // fetch refuses such a URL at every delivery, and on a command line ps shows the password.
  if (u.username || u.password) throw new UsageError(`${what} must not include a user name or password (user:password@host): use the channel's secret instead (webhook: its HMAC secret, ntfy: its access token; --secret-file or --secret-env).`);
  return u.href;
}

/**
 * A URL as listings show it: scheme, host and port only (paths and queries of webhook URLs
 * often carry tokens: Slack's whole path is one), "/…" when there was more.
 */
export function shownUrl(value: string): string {
  try {
    const u = new URL(value);
    return `${u.protocol}//${u.host}${u.pathname !== '/' || u.search ? '/…' : ''}`;
  } catch {
    return '(invalid URL)';
  }
}

/** Refuses settings another channel type takes, naming them. */
export function onlySettings(type: string, settings: ChannelSettings, allowed: (keyof ChannelSettings)[]): void {
  const extra = (Object.keys(settings) as (keyof ChannelSettings)[]).filter((k) => settings[k] !== undefined && !allowed.includes(k));
  if (extra.length) throw new UsageError(`A ${type} channel does not take ${extra.join(', ')}; it takes ${allowed.join(', ')}.`);
}

/**
 * POSTs `body`; resolves on 2xx. Errors name the receiver by shownUrl and the status, with at
 * most 200 characters of its answer (scrubbed), or the network error's code.
 */
export async function post(url: string, headers: Record<string, string>, body: string, signal: AbortSignal): Promise<void> {
  let res: Response;
  try {
    res = await fetch(url, { method: 'POST', headers: { 'user-agent': 'cairn-alerts/1', ...headers }, body, signal, redirect: 'error' });
  } catch (err) {
    if (signal.aborted) throw new Error(`${shownUrl(url)} did not answer in time (${signal.reason instanceof Error ? signal.reason.message : 'aborted'})`, { cause: err });
    const cause = err instanceof Error ? (err.cause as NodeJS.ErrnoException | undefined) : undefined;
    throw new Error(`cannot reach ${shownUrl(url)}: ${cause?.code ?? cause?.message ?? (err as Error).message}`, { cause: err });
  }
  if (res.ok) {
    await res.body?.cancel().catch(() => undefined);
    return;
  }
  const text = (await res.text().catch(() => '')).slice(0, 200).replace(/\s+/g, ' ').trim();
  throw new Error(`${shownUrl(url)} answered HTTP ${res.status}${text ? `: ${scrubSecrets(text)}` : ''}`);
}

/** A string setting of a stored config (configs are written by configure, so shapes hold). */
export const str = (config: Record<string, unknown>, key: string): string => (typeof config[key] === 'string' ? (config[key] as string) : '');
