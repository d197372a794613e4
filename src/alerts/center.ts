/**
 * The AlertCenter: where everything that notices something reports (AlertSink), and what turns
 * job ends and scheduled runs that could not start into events. It matches each event against
 * the rules, records one delivery per channel and sends it in the background with retries and
 * exponential backoff; emit never waits and never throws, so a channel that is down never delays
 * or fails a backup.
 */
import { ALERT_KINDS, type AlertEvent, type AlertKind, type AlertSink } from '../core/alerts.js';
import { UsageError } from '../core/errors.js';
import { REGISTERED_NAME } from '../catalog/registry.js';
import type { AlertDelivery, AlertRule, SqliteAlertStore, StoredChannel } from '../catalog/alerts.js';
import type { JobRecord } from '../jobs/ports.js';
import { scrubSecrets } from '../sources/redact.js';
import { channelDriver } from './registry.js';

export interface AlertCenterOptions {
  store: SqliteAlertStore;
  /** Registered sources (name → location), to name a job's source by its name and match rules by either. */
  sources?: () => { name: string; location: string }[];
  /**
   * Waits before each retry, in ms: attempts = length + 1. Default 1 s, 4 s, 16 s, 64 s, 256 s
   * (6 attempts over about 5.6 min).
   */
  retryDelaysMs?: number[];
  /** How long one attempt may take, in ms (default 15 000). */
  attemptTimeoutMs?: number;
  /** Where a delivery that finally failed is reported (default: nowhere; it is recorded anyway). */
  log?: (line: string) => void;
  now?: () => Date;
}

/** The rule a channel without rules has: failures of anything. */
export const DEFAULT_RULE_ON: AlertKind[] = ['failure'];

/** @throws UsageError */
export function validateChannelName(name: string): string {
  if (!REGISTERED_NAME.test(name)) throw new UsageError(`Invalid alert channel name "${name.slice(0, 64)}": use 1-63 lowercase letters, digits, "-" or "_", starting with a letter or digit.`);
  return name;
}

/** Kinds as given ("failure,recovery" or a list), checked. @throws UsageError naming the kinds there are. */
export function parseKinds(value: string | string[]): AlertKind[] {
  const list = (Array.isArray(value) ? value : value.split(',')).map((k) => k.trim()).filter(Boolean);
  const bad = list.filter((k) => !(ALERT_KINDS as readonly string[]).includes(k));
  if (bad.length || list.length === 0) throw new UsageError(`Invalid alert kinds ${bad.length ? `"${bad.join(',').slice(0, 64)}"` : '(none given)'}: use one or more of ${ALERT_KINDS.join(', ')}.`);
  return [...new Set(list)] as AlertKind[];
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    t.unref();
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

export class AlertCenter implements AlertSink {
  private readonly store: SqliteAlertStore;
  private readonly delays: number[];
  private readonly timeoutMs: number;
  private readonly now: () => Date;
  private readonly closing = new AbortController();
  private readonly inFlight = new Set<Promise<void>>();

  constructor(private readonly options: AlertCenterOptions) {
    this.store = options.store;
    this.delays = options.retryDelaysMs ?? [1000, 4000, 16_000, 64_000, 256_000];
    this.timeoutMs = options.attemptTimeoutMs ?? 15_000;
    this.now = options.now ?? (() => new Date());
  }

  /**
   * Deliveries a previous process left pending become failed (their retries were in its
   * memory). Call once at start-up. @returns how many.
   */
  recoverPending(): number {
    return this.store.failPending('the server stopped before it was delivered');
  }

  /** Matches the event against the rules and queues one delivery per matching channel. Never throws, never waits. */
  emit(event: AlertEvent): void {
    if (this.closing.signal.aborted) return;
    try {
      // A drill's due time that could not start (the DrillScheduler tells it here, with no job)
      // is a failure of that drill: its next pass is then a recovery, as after a failed run.
      if (event.kind === 'failure' && event.drill !== undefined && event.job === undefined) {
        this.store.swapOutcome(this.subject('drill', { drill: event.drill }).key, 'failure', event.at);
      }
      const safe = this.scrubbed(this.named(event));
      for (const channel of this.matching(safe)) this.queue(channel, safe);
    } catch (err) {
      this.options.log?.(`alerts: ${safe(err)}`);
    }
  }

  /**
   * Sends a sample event to one channel now, one attempt, recorded as a delivery of kind "test".
   * @returns the delivery (delivered, or failed with the reason).
   * @throws NotFoundError for an unknown channel.
   */
  async test(name: string): Promise<AlertDelivery> {
    const channel = this.store.channel(name);
    const at = this.now().toISOString();
    const event: AlertEvent = {
      kind: 'failure',
      at,
      title: `cairn test alert for channel ${name}`,
      message: 'This is a test sent by `cairn alert channel test` (or POST /v1/alert-channels/{name}/test): when you read it, the channel works.',
      details: { test: true },
    };
    const id = this.store.addDelivery({ channel: name, kind: 'test', title: event.title, at });
    await this.attempt(channel, event, id, 1, true);
    return this.store.delivery(id);
  }

  /** Tells of a job that ended: failure, success and recovery events (CANCELED jobs tell nothing). */
  jobEnded(job: JobRecord): void {
    if (job.state !== 'SUCCESS' && job.state !== 'FAILED') return;
    // A scheduled run that could not start is recorded as a FAILED job too (jobs/health.ts
    // recordingFailedStarts), but told once, by runFailed with the run's own words.
    if (job.params.notStarted === true) return;
    try {
      const subject = this.subject(job.kind, job.params);
      const outcome = job.state === 'SUCCESS' ? 'success' : 'failure';
      const at = job.finishedAt ?? this.now().toISOString();
      // A recovery: this same subject's previous outcome was a failure (one key per subject).
      const recovered = this.store.swapOutcome(subject.key, outcome, at) === 'failure' && outcome === 'success';
      const what = subject.label;
      const base = {
        at,
        ...(subject.source ? { source: subject.source } : {}),
        ...(subject.schedule ? { schedule: subject.schedule } : {}),
        ...(subject.drill ? { drill: subject.drill } : {}),
        job: { id: job.id, kind: job.kind, state: job.state, ...(job.error ? { error: job.error } : {}) },
        details: { ...(subject.location ? { sourceLocation: subject.location } : {}), ...(typeof job.result?.backupId === 'string' ? { backupId: job.result.backupId } : {}) },
      };
      if (outcome === 'failure') {
        this.emit({ ...base, kind: 'failure', title: `${what} failed`, message: job.error ? `${job.error.code}: ${job.error.message}` : `Job ${job.id} failed.` });
        return;
      }
      const done = job.kind === 'drill' ? drillSummary(job) : typeof job.result?.backupId === 'string' ? `Backup ${job.result.backupId} written.` : `Job ${job.id} succeeded.`;
      if (recovered) this.emit({ ...base, kind: 'recovery', title: `${what} succeeded again after failing`, message: done });
      this.emit({ ...base, kind: 'success', title: `${what} succeeded`, message: done });
    } catch (err) {
      this.options.log?.(`alerts: job ${job.id}: ${safe(err)}`);
    }
  }

  /** Tells of a scheduled run that could not start (the Scheduler's onRunFailed): a failure. */
  runFailed(schedule: { name: string; source: string }, dueAt: string, reason: string): void {
    try {
      const subject = this.subject('backup', { schedule: schedule.name, source: schedule.source });
      const at = this.now().toISOString();
      this.store.swapOutcome(subject.key, 'failure', at);
      this.emit({
        kind: 'failure',
        at,
        schedule: schedule.name,
        ...(subject.source ? { source: subject.source } : {}),
        title: `scheduled backup ${schedule.name} could not start`,
        message: `The run due at ${dueAt} did not start: ${reason}`,
        details: { dueAt, ...(subject.location ? { sourceLocation: subject.location } : {}) },
      });
    } catch (err) {
      this.options.log?.(`alerts: schedule ${schedule.name}: ${safe(err)}`);
    }
  }

  /**
   * Stops: no new deliveries; those in flight get `graceMs` to finish an attempt under way,
   * then their retries stop (they stay pending and the next start marks them failed).
   */
  async close(graceMs = 2000): Promise<void> {
    const pending = Promise.allSettled([...this.inFlight]);
    const grace = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
    this.closing.abort(new Error('the server is stopping'));
    await Promise.race([pending, grace]);
  }

  /** Resolves when every delivery queued so far has ended (delivered or failed): for tests and the CLI. */
  async idle(): Promise<void> {
    while (this.inFlight.size) await Promise.allSettled([...this.inFlight]);
  }

  /** The channels whose rules match `event`; a channel without rules takes failures of anything. */
  private matching(event: AlertEvent): StoredChannel[] {
    const rules = this.store.rules();
    const sources = this.options.sources?.() ?? [];
    // A source is named by its registered name or its location, by the event and by the rule alike.
    const spellings = (value: string | undefined): string[] => (value === undefined ? [] : [value, ...sources.filter((s) => s.name === value).map((s) => s.location)]);
    const location = typeof event.details?.sourceLocation === 'string' ? event.details.sourceLocation : undefined;
    const eventSource = new Set([...spellings(event.source), ...spellings(location)]);
    const sourceMatches = (ruleSource: string): boolean => spellings(ruleSource).some((s) => eventSource.has(s));
    const matches = (r: Pick<AlertRule, 'on' | 'source' | 'schedule'>): boolean =>
      r.on.includes(event.kind) && (r.source === null || sourceMatches(r.source)) && (r.schedule === null || r.schedule === event.schedule);
    return this.store.channels().filter((c) => {
      const own = rules.filter((r) => r.channel === c.name);
      return own.length === 0 ? matches({ on: DEFAULT_RULE_ON, source: null, schedule: null }) : own.some(matches);
    });
  }

  private queue(channel: StoredChannel, event: AlertEvent): void {
    const id = this.store.addDelivery({ channel: channel.name, kind: event.kind, title: event.title, at: event.at });
    const run = (async () => {
      for (let attempt = 1; ; attempt++) {
        const last = attempt > this.delays.length;
        if (await this.attempt(channel, event, id, attempt, last)) return;
        if (last || this.closing.signal.aborted) return;
        await sleep(this.delays[attempt - 1] ?? 0, this.closing.signal);
        if (this.closing.signal.aborted) return; // stays pending: the next start records it failed
      }
    })()
      .catch((err: unknown) => this.options.log?.(`alerts: delivery ${id} to ${channel.name}: ${safe(err)}`))
      .finally(() => this.inFlight.delete(run));
    this.inFlight.add(run);
  }

  /** One attempt, recorded; true when delivered. `last`: a failure is final (state failed). */
  private async attempt(channel: StoredChannel, event: AlertEvent, id: number, attempt: number, last: boolean): Promise<boolean> {
    const driver = channelDriver(channel.type);
    const signal = AbortSignal.any([AbortSignal.timeout(this.timeoutMs), this.closing.signal]);
    try {
      await driver.send(channel.config, { event, deliveryId: id, sentAt: this.now() }, signal);
      this.store.updateDelivery(id, { state: 'delivered', attempts: attempt, lastError: null, deliveredAt: this.now().toISOString() });
      return true;
    } catch (err) {
      let message = err instanceof Error ? err.message : String(err);
      // A receiver's error could echo what it was sent or a URL: no secret of the channel is recorded.
      for (const secret of driver.secrets(channel.config)) if (secret.length >= 4) message = message.split(secret).join('***');
      message = safe(message).slice(0, 500);
      this.store.updateDelivery(id, { state: last ? 'failed' : 'pending', attempts: attempt, lastError: message });
      if (last) this.options.log?.(`alerts: delivery ${id} of "${event.title}" to channel ${channel.name} failed after ${attempt} attempt(s): ${message}`);
      return false;
    }
  }

  /**
   * The event with its source named the same way whoever emits it (job ends, the stuck-job
   * watchdog, the RPO monitor, drills): a location of a registered source becomes that source's
   * name, the location kept in details.sourceLocation, and the location quoted in the title or
   * message becomes the name too.
   */
  private named(event: AlertEvent): AlertEvent {
    if (event.source === undefined) return event;
    const raw = event.source;
    const registered = (this.options.sources?.() ?? []).find((s) => s.location === raw || scrubSecrets(s.location) === raw);
    if (!registered || registered.name === raw) return event;
    const spellings = [...new Set([raw, registered.location, scrubSecrets(registered.location)])].sort((a, b) => b.length - a.length);
    const rename = (text: string): string => spellings.reduce((t, l) => t.split(l).join(registered.name), text);
    return {
      ...event,
      source: registered.name,
      title: rename(event.title),
      message: rename(event.message),
      details: { ...event.details, sourceLocation: typeof event.details?.sourceLocation === 'string' ? event.details.sourceLocation : scrubSecrets(registered.location) },
    };
  }

  /** An event with its free text scrubbed (an error message may quote a URL with a password). */
  private scrubbed(event: AlertEvent): AlertEvent {
    return {
      ...event,
      title: scrubSecrets(event.title),
      message: scrubSecrets(event.message),
      ...(event.job?.error ? { job: { ...event.job, error: { ...event.job.error, message: scrubSecrets(event.job.error.message) } } } : {}),
    };
  }

  /**
   * What a job is about: its source (registered name when registered, else location), schedule
   * and drill; the one outcome key that remembers its last outcome for recovery; a label for titles.
   * Keys: a drill by its name only (its source's backups say nothing of it); a backup by its
   * source, and its schedule when scheduled; a restore by its target; copy and sync by both
   * repositories; verify, prune and repair by their repository.
   */
  private subject(kind: string, params: Record<string, unknown>): { key: string; source?: string; location?: string; schedule?: string; drill?: string; label: string } {
    const str = (k: string): string | undefined => (typeof params[k] === 'string' ? (params[k] as string) : undefined);
    const raw = str('source');
    const registered = raw === undefined ? undefined : (this.options.sources?.() ?? []).find((s) => s.location === raw || s.name === raw);
    const source = registered?.name ?? (raw === undefined ? undefined : scrubSecrets(raw));
    const location = registered?.location ?? (raw === undefined ? undefined : scrubSecrets(raw));
    const schedule = str('schedule');
    const drill = str('drill');
    const part = (k: string, v: string | undefined): string => (v === undefined ? '' : `:${k}:${v}`);
    const key = drill
      ? `drill:${drill}`
      : kind === 'backup'
        ? `backup${part('source', location)}${part('schedule', schedule)}`
        : kind === 'restore'
          ? `restore${part('target', str('target'))}`
          : kind === 'copy' || kind === 'sync'
            ? `${kind}${part('from', str('from'))}${part('to', str('to'))}${part('source', str('source'))}`
            : `${kind}${part('source', location)}${part('repository', str('repository'))}`;
    // What titles call the job: "backup of shop", "restore drill weekly", "restore of shop-… into /srv/copy.db", "verify of /backups/repo".
    const shown = (k: string): string | undefined => (str(k) === undefined ? undefined : scrubSecrets(str(k) as string));
    const label = drill
      ? `restore drill ${drill}`
      : kind === 'restore' && shown('target')
        ? `restore of ${shown('backup') ?? 'a backup'} into ${(this.options.sources?.() ?? []).find((s) => s.location === str('target'))?.name ?? shown('target')}`
        : kind === 'copy' || kind === 'sync'
          ? `${kind} ${shown('backup') ? `of ${shown('backup')} ` : ''}from ${shown('from') ?? '?'} to ${shown('to') ?? '?'}`
          : `${kind}${source ? ` of ${source}` : shown('repository') ? ` of ${shown('repository')}` : ''}`;
    return { key, ...(source ? { source } : {}), ...(location ? { location } : {}), ...(schedule ? { schedule } : {}), ...(drill ? { drill } : {}), label };
  }
}

/**
 * What a drill's success says, from its job result (DrillOutcome): the backup restored, tables
 * and rows compared, checks passed, recovery time in seconds.
 */
function drillSummary(job: JobRecord): string {
  const r = job.result ?? {};
  const tables = Array.isArray(r.tables) ? r.tables.length : 0;
  const checks = Array.isArray(r.checks) ? (r.checks as { ok?: unknown }[]) : [];
  const backup = typeof r.backupId === 'string' ? r.backupId : '?';
  const rows = typeof r.rowsCompared === 'number' ? `, ${r.rowsCompared} rows` : '';
  const time = typeof r.recoverySeconds === 'number' ? `; recovery time ${r.recoverySeconds} s` : '';
  return `Restored backup ${backup}: ${tables} table(s) compared${rows}, ${checks.filter((c) => c.ok === true).length}/${checks.length} check(s) passed${time}.`;
}

const safe = (err: unknown): string => scrubSecrets(err instanceof Error ? err.message : String(err));
