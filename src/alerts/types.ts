/**
 * What every notification channel type implements (one file per type, listed in registry.ts):
 * checking the settings an admin gives into the config the catalog stores, describing a config
 * without its secrets, and sending one event.
 */
import type { AlertEvent } from '../core/alerts.js';
import type { ChannelType } from '../catalog/alerts.js';

/**
 * A channel's settings as given (REST body, CLI flags); each type reads its own and refuses
 * the others. Secrets: `secret` (webhook HMAC key), `url` of a Slack channel, `token` (ntfy),
 * `password` (SMTP).
 */
export interface ChannelSettings {
  url?: string | undefined;
  secret?: string | undefined;
  topic?: string | undefined;
  token?: string | undefined;
  host?: string | undefined;
  port?: number | undefined;
  security?: 'tls' | 'starttls' | 'none' | undefined;
  user?: string | undefined;
  password?: string | undefined;
  from?: string | undefined;
  to?: string[] | undefined;
  /** email: PEM certificates to trust for the SMTP server's TLS (a private CA), besides the system's. */
  ca?: string | undefined;
}

/** A channel as listed: never a secret. */
export interface ChannelView {
  /** Where it sends, without secrets: scheme and host of a URL, an SMTP server and recipients. */
  target: string;
  /** Whether the channel holds a secret (HMAC key, Slack URL, ntfy token, SMTP password). */
  secretSet: boolean;
  /** The type's other settings that are not secret. */
  settings: Record<string, string | number | boolean | string[]>;
}

/** One event on its way to one channel. */
export interface Outgoing {
  event: AlertEvent;
  /** The delivery's id (alert_deliveries), sent along so a receiver can tell retries apart. */
  deliveryId: number;
  /** This attempt's time. */
  sentAt: Date;
}

export interface ChannelDriver {
  type: ChannelType;
  /** The config to store. @throws UsageError naming the setting that is missing, invalid or not of this type. */
  configure(settings: ChannelSettings): Record<string, unknown>;
  describe(config: Record<string, unknown>): ChannelView;
  /** The config's secret values, scrubbed from any error text before it is recorded. */
  secrets(config: Record<string, unknown>): string[];
  /**
   * Sends one event; resolves once the receiver accepted it (HTTP 2xx, SMTP 250).
   * @throws Error whose message names the receiver by scheme and host only, never a secret.
   */
  send(config: Record<string, unknown>, out: Outgoing, signal: AbortSignal): Promise<void>;
}
