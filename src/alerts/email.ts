/**
 * Email through an SMTP server (nodemailer): security `tls` (implicit TLS, port 465),
 * `starttls` (required STARTTLS, port 587; the default) or `none` (plain, for a relay on
 * localhost); AUTH with `user` and `password` when given; the server's certificate is checked,
 * against the system's CAs and `ca` (PEM) when given. Subject "[cairn] <title>", a text body.
 */
import nodemailer from 'nodemailer';
import { UsageError } from '../core/errors.js';
import type { AlertEvent } from '../core/alerts.js';
import type { ChannelDriver } from './types.js';
import { onlySettings, str } from './http.js';

const ADDRESS = /^[^\s@<>]+@[^\s@<>]+$/;
const DEFAULT_PORT = { tls: 465, starttls: 587, none: 25 } as const;

/** Whether `host` is this machine (127.0.0.0/8, ::1, localhost): the only place plain SMTP may carry a password. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/**
 * Security none with a user or password toward another machine would send the password in
 * clear text (AUTH PLAIN): refused. @throws UsageError naming --smtp-security starttls|tls.
 */
export function refuseClearTextAuth(host: string, security: string, auth: boolean): void {
  if (security === 'none' && auth && !isLoopbackHost(host)) {
    throw new UsageError(`With SMTP security none the user and password would go in clear text to ${host}: use --smtp-security starttls|tls (API: "security": "starttls" or "tls"), or no user/password for a relay on this machine (localhost, 127.0.0.0/8, ::1).`);
  }
}

/** The mail as sent: subject and text. */
export function emailMessage(event: AlertEvent): { subject: string; text: string } {
  const facts = [
    `kind: ${event.kind}`,
    `at: ${event.at}`,
    event.source && `source: ${event.source}`,
    event.schedule && `schedule: ${event.schedule}`,
    event.drill && `drill: ${event.drill}`,
    event.job && `job: ${event.job.id} (${event.job.kind}, ${event.job.state})`,
  ].filter(Boolean);
  return { subject: `[cairn] ${event.title}`.replace(/[\r\n]+/g, ' '), text: `${event.message || event.title}\n\n${facts.join('\n')}\n` };
}

export const emailChannel: ChannelDriver = {
  type: 'email',
  configure(settings) {
    onlySettings('email', settings, ['host', 'port', 'security', 'user', 'password', 'from', 'to', 'ca']);
    if (!settings.host || !/^[A-Za-z0-9.:[\]-]{1,253}$/.test(settings.host)) throw new UsageError('An email channel needs the SMTP server\'s host name (host).');
    const security = settings.security ?? 'starttls';
    const port = settings.port ?? DEFAULT_PORT[security];
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`Invalid SMTP port ${port}: give 1-65535.`);
    if (!settings.from || !ADDRESS.test(settings.from)) throw new UsageError('An email channel needs a sender address (from), e.g. cairn@example.com.');
    if (!settings.to?.length || !settings.to.every((a) => ADDRESS.test(a))) throw new UsageError('An email channel needs one or more recipient addresses (to), e.g. ops@example.com.');
    if (settings.password && !settings.user) throw new UsageError('An SMTP password (password) needs a user name (user).');
    refuseClearTextAuth(settings.host, security, Boolean(settings.user || settings.password));
    if (settings.ca !== undefined && !/-----BEGIN CERTIFICATE-----/.test(settings.ca)) throw new UsageError('The SMTP CA (ca) must be PEM certificates (-----BEGIN CERTIFICATE-----).');
    if (settings.ca !== undefined && security === 'none') throw new UsageError('A CA (ca) is for TLS: give security tls or starttls.');
    return { host: settings.host, port, security, from: settings.from, to: settings.to, ...(settings.user ? { user: settings.user } : {}), ...(settings.password ? { password: settings.password } : {}), ...(settings.ca ? { ca: settings.ca } : {}) };
  },
  describe: (config) => ({
    target: `smtp://${str(config, 'host')}:${String(config.port)} → ${(config.to as string[]).join(', ')}`,
    secretSet: Boolean(config.password),
    settings: { host: str(config, 'host'), port: config.port as number, security: str(config, 'security'), from: str(config, 'from'), to: config.to as string[], ...(config.user ? { user: str(config, 'user') } : {}), ...(config.ca ? { customCa: true } : {}) },
  }),
  secrets: (config) => [str(config, 'password')].filter(Boolean),
  async send(config, { event }, signal) {
    const security = str(config, 'security');
    // Defence in depth: a config stored before the check existed (or edited) never sends a password in clear text.
    refuseClearTextAuth(str(config, 'host'), security, Boolean(config.user || config.password));
    const transport = nodemailer.createTransport({
      host: str(config, 'host'),
      port: config.port as number,
      secure: security === 'tls',
      requireTLS: security === 'starttls',
      ignoreTLS: security === 'none',
      // Certificates are always checked (no "insecure" switch): a private CA is trusted by giving it.
      ...(config.ca ? { tls: { ca: str(config, 'ca') } } : {}),
      ...(config.user ? { auth: { user: str(config, 'user'), pass: str(config, 'password') } } : {}),
      connectionTimeout: 10_000,
      greetingTimeout: 10_000,
      socketTimeout: 20_000,
    });
    const onAbort = (): void => transport.close();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const { subject, text } = emailMessage(event);
      await transport.sendMail({ from: str(config, 'from'), to: config.to as string[], subject, text });
    } catch (err) {
      const e = err as { code?: string; responseCode?: number; message?: string };
      throw new Error(`smtp://${str(config, 'host')}:${String(config.port)}: ${signal.aborted ? 'did not answer in time' : [e.code, e.message].filter(Boolean).join(' ')}`, { cause: err });
    } finally {
      signal.removeEventListener('abort', onAbort);
      transport.close();
    }
  },
};
