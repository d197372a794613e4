/**
 * Notification channels, alert rules and the record of every delivery (issue 20), in the
 * server's catalog file (mode 0600, like registered source URLs): a channel's config holds its
 * secrets (webhook HMAC secret, Slack webhook URL, ntfy token, SMTP password) and is only read
 * back by the AlertCenter that sends; listings go through src/alerts's publicChannel.
 */
import { randomBytes } from 'node:crypto';
import { ConflictError, NotFoundError } from '../core/errors.js';
import type { AlertKind } from '../core/alerts.js';
import { catalogDb, constraintViolated, ownerGone, type CatalogDb, type CatalogTarget } from './sql.js';

export const CHANNEL_TYPES = ['webhook', 'slack', 'ntfy', 'email'] as const;
export type ChannelType = (typeof CHANNEL_TYPES)[number];

/** A channel as stored: `config` is the type's settings, secrets included (never answered as is). */
export interface StoredChannel {
  name: string;
  type: ChannelType;
  config: Record<string, unknown>;
  createdAt: string;
}

export interface AlertRule {
  /** 12 hex digits. */
  id: string;
  channel: string;
  on: AlertKind[];
  /** Only events of this source (a registered name or a location); null: any. */
  source: string | null;
  /** Only events of this schedule (by name); null: any. */
  schedule: string | null;
  createdAt: string;
}

export const DELIVERY_STATES = ['pending', 'delivered', 'failed'] as const;
export type DeliveryState = (typeof DELIVERY_STATES)[number];

/** One event sent (or being sent) to one channel. No secrets: titles and errors are scrubbed before they are recorded. */
export interface AlertDelivery {
  id: number;
  channel: string;
  /** The event kind, or "test" for a sample sent by `alert channel test`. */
  kind: string;
  title: string;
  /** When the event happened (ISO). */
  at: string;
  state: DeliveryState;
  attempts: number;
  lastError: string | null;
  deliveredAt: string | null;
}

export interface DeliveryFilter {
  state?: DeliveryState;
  channel?: string;
  /** Default 100, at most 1000; newest first. */
  limit?: number;
  offset?: number;
}

type DeliveryRow = { id: number; channel: string; kind: string; title: string; at: string; state: DeliveryState; attempts: number; last_error: string | null; delivered_at: string | null };
const delivery = (r: DeliveryRow): AlertDelivery => ({ id: r.id, channel: r.channel, kind: r.kind, title: r.title, at: r.at, state: r.state, attempts: r.attempts, lastError: r.last_error, deliveredAt: r.delivered_at });

/** How many deliveries the catalog keeps (the oldest ended ones go first). */
export const KEPT_DELIVERIES = 10_000;

/**
 * Forgets the last outcome the alerts remember for `key` ("drill:<name>"…), in the catalog `db`
 * (a no-op when alerts never wrote there): a subject removed and added again under the same
 * name starts without the old one's failures, so its first success is no "recovery".
 */
export function forgetAlertOutcome(db: CatalogDb, key: string): void {
  const table = db.dialect === 'postgres' || db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alert_outcomes'").get();
  if (table) db.prepare('DELETE FROM alert_outcomes WHERE key = ?').run(key);
}

export class SqliteAlertStore {
  private readonly db: CatalogDb;
  private readonly owner: string;

  /**
   * `owner` (a shared catalog): this server's id, recorded with the deliveries it makes (their
   * retries wait in its memory), so that failPending fails its own and those of servers that are
   * gone, never another live replica's.
   */
  constructor(target: CatalogTarget, options: { owner?: string } = {}) {
    this.owner = options.owner ?? '';
    this.db = catalogDb(target);
    // SQLite only: the shared PostgreSQL catalog's tables are pg-migrations.ts's.
    if (this.db.dialect === 'sqlite') {
      this.db.exec(`
        CREATE TABLE IF NOT EXISTS alert_channels (name TEXT PRIMARY KEY, type TEXT NOT NULL, config TEXT NOT NULL, created_at TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS alert_rules (id TEXT PRIMARY KEY, channel TEXT NOT NULL, "on" TEXT NOT NULL, source TEXT, schedule TEXT, created_at TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS alert_deliveries (
          id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL, kind TEXT NOT NULL, title TEXT NOT NULL, at TEXT NOT NULL,
          state TEXT NOT NULL, attempts INTEGER NOT NULL, last_error TEXT, delivered_at TEXT);
        CREATE INDEX IF NOT EXISTS alert_deliveries_state ON alert_deliveries (state, id);
        CREATE TABLE IF NOT EXISTS alert_outcomes (key TEXT PRIMARY KEY, outcome TEXT NOT NULL, at TEXT NOT NULL);`);
    }
  }

  /** @throws ConflictError when the name is taken. */
  addChannel(channel: Omit<StoredChannel, 'createdAt'>, now = new Date()): StoredChannel {
    const stored = { ...channel, createdAt: now.toISOString() };
    try {
      this.db.prepare('INSERT INTO alert_channels (name, type, config, created_at) VALUES (?, ?, ?, ?)').run(stored.name, stored.type, this.db.seal(JSON.stringify(stored.config), `alert_channels.config:${stored.name}`), stored.createdAt);
    } catch (err) {
      if (constraintViolated(err) === 'primary') throw new ConflictError(`An alert channel named "${channel.name}" exists already; remove it first (cairn alert channel remove ${channel.name}) or choose another name.`);
      throw err;
    }
    return stored;
  }

  /** The channel with its secrets (for sending only). @throws NotFoundError */
  channel(name: string): StoredChannel {
    const r = this.db.prepare('SELECT name, type, config, created_at FROM alert_channels WHERE name = ?').get(name) as { name: string; type: ChannelType; config: string; created_at: string } | undefined;
    if (!r) throw new NotFoundError(`No alert channel named "${name}"; list them with: cairn alert channel list`);
    return { name: r.name, type: r.type, config: JSON.parse(this.db.unseal(r.config, `alert_channels.config:${r.name}`)) as Record<string, unknown>, createdAt: r.created_at };
  }

  /** Every channel with its secrets, by name (for sending; list publicly through publicChannel). */
  channels(): StoredChannel[] {
    return (this.db.prepare('SELECT name FROM alert_channels ORDER BY name').all() as { name: string }[]).map((r) => this.channel(r.name));
  }

  /** Removes a channel and its rules (its deliveries stay on record). @returns how many rules went with it. @throws NotFoundError */
  removeChannel(name: string): number {
    this.channel(name);
    return this.db.transaction(() => {
      this.db.prepare('DELETE FROM alert_channels WHERE name = ?').run(name);
      return this.db.prepare('DELETE FROM alert_rules WHERE channel = ?').run(name).changes;
    })();
  }

  /** @throws NotFoundError for an unknown channel. */
  addRule(rule: Omit<AlertRule, 'id' | 'createdAt'>, now = new Date()): AlertRule {
    this.channel(rule.channel);
    const stored: AlertRule = { id: randomBytes(6).toString('hex'), ...rule, createdAt: now.toISOString() };
    this.db.prepare('INSERT INTO alert_rules (id, channel, "on", source, schedule, created_at) VALUES (?, ?, ?, ?, ?, ?)').run(stored.id, stored.channel, JSON.stringify(stored.on), stored.source, stored.schedule, stored.createdAt);
    return stored;
  }

  /** Oldest first; `channel`: only its rules. */
  rules(channel?: string): AlertRule[] {
    const rows = (channel === undefined
      ? this.db.prepare('SELECT * FROM alert_rules ORDER BY created_at, id').all()
      : this.db.prepare('SELECT * FROM alert_rules WHERE channel = ? ORDER BY created_at, id').all(channel)) as { id: string; channel: string; on: string; source: string | null; schedule: string | null; created_at: string }[];
    return rows.map((r) => ({ id: r.id, channel: r.channel, on: JSON.parse(r.on) as AlertKind[], source: r.source, schedule: r.schedule, createdAt: r.created_at }));
  }

  /** @throws NotFoundError */
  removeRule(id: string): void {
    if (this.db.prepare('DELETE FROM alert_rules WHERE id = ?').run(id).changes === 0) throw new NotFoundError(`No alert rule ${id}; list them with: cairn alert rule list`);
  }

  /**
   * Records a delivery about to be attempted (state pending, no attempt yet); returns its id.
   * The newest KEPT_DELIVERIES are kept: the record does not grow without end.
   */
  addDelivery(d: { channel: string; kind: string; title: string; at: string }): number {
    const row = (
      this.db.dialect === 'postgres'
        ? this.db.prepare("INSERT INTO alert_deliveries (channel, kind, title, at, state, attempts, owner) VALUES (?, ?, ?, ?, 'pending', 0, ?) RETURNING id").get(d.channel, d.kind, d.title, d.at, this.owner)
        : this.db.prepare("INSERT INTO alert_deliveries (channel, kind, title, at, state, attempts) VALUES (?, ?, ?, ?, 'pending', 0) RETURNING id").get(d.channel, d.kind, d.title, d.at)
    ) as { id: number };
    const id = Number(row.id);
    this.db.prepare("DELETE FROM alert_deliveries WHERE id <= ? AND state != 'pending'").run(id - KEPT_DELIVERIES);
    return id;
  }

  /** Records an attempt's outcome: `state` pending while retries remain. */
  updateDelivery(id: number, change: { state: DeliveryState; attempts: number; lastError: string | null; deliveredAt?: string | null }): void {
    this.db.prepare('UPDATE alert_deliveries SET state = ?, attempts = ?, last_error = ?, delivered_at = ? WHERE id = ?').run(change.state, change.attempts, change.lastError, change.deliveredAt ?? null, id);
  }

  delivery(id: number): AlertDelivery {
    const r = this.db.prepare('SELECT * FROM alert_deliveries WHERE id = ?').get(id) as DeliveryRow | undefined;
    if (!r) throw new NotFoundError(`No alert delivery ${id}.`);
    return delivery(r);
  }

  /**
   * Newest first, with how many match the filter (before limit and offset).
   * @throws NotFoundError when `channel` names no channel and none was ever delivered to.
   */
  deliveries(filter: DeliveryFilter = {}): { deliveries: AlertDelivery[]; total: number } {
    // A removed channel's deliveries stay on record and can still be listed; a name never seen is a typo.
    if (filter.channel !== undefined && !this.db.prepare('SELECT 1 FROM alert_channels WHERE name = ? UNION ALL SELECT 1 FROM alert_deliveries WHERE channel = ? LIMIT 1').get(filter.channel, filter.channel)) {
      throw new NotFoundError(`No alert channel named "${filter.channel.slice(0, 64)}" and no deliveries recorded for one; list them with: cairn alert channel list`);
    }
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (filter.state) {
      where.push('state = ?');
      args.push(filter.state);
    }
    if (filter.channel) {
      where.push('channel = ?');
      args.push(filter.channel);
    }
    const w = where.length ? `WHERE ${where.join(' AND ')}` : '';
    const limit = Math.min(Math.max(filter.limit ?? 100, 1), 1000);
    const rows = this.db.prepare(`SELECT * FROM alert_deliveries ${w} ORDER BY id DESC LIMIT ? OFFSET ?`).all(...args, limit, filter.offset ?? 0) as DeliveryRow[];
    const total = (this.db.prepare(`SELECT count(*) AS n FROM alert_deliveries ${w}`).get(...args) as { n: number }).n;
    return { deliveries: rows.map(delivery), total };
  }

  /**
   * Deliveries a stopped process left pending (their retries lived in its memory) become failed
   * with `reason`; returns how many.
   */
  failPending(reason: string, own = true): number {
    const set = "UPDATE alert_deliveries SET state = 'failed', last_error = coalesce(last_error || '; ', '') || ? WHERE state = 'pending'";
    if (this.db.dialect === 'sqlite') return own ? this.db.prepare(set).run(reason).changes : 0;
    // Shared: this server's own (at its start-up) and those of servers whose lease has run out.
    const gone = ownerGone('alert_deliveries');
    return this.db.prepare(`${set} AND (${own ? `owner = ? OR ${gone}` : `owner <> ? AND ${gone}`})`).run(reason, this.owner).changes;
  }

  /**
   * The last outcome recorded under `key` (a source, schedule or drill), and records `outcome`
   * in its place, in one transaction: a recovery is told once even when two jobs end together.
   */
  swapOutcome(key: string, outcome: 'success' | 'failure', at: string): 'success' | 'failure' | undefined {
    return this.db.transaction(() => {
      const before = (this.db.prepare('SELECT outcome FROM alert_outcomes WHERE key = ?').get(key) as { outcome: 'success' | 'failure' } | undefined)?.outcome;
      this.db.prepare('INSERT INTO alert_outcomes (key, outcome, at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET outcome = excluded.outcome, at = excluded.at').run(key, outcome, at);
      return before;
    }).immediate();
  }

  close(): void {
    this.db.close();
  }
}
