/**
 * What the server tells people about (issue 20): the events that alert rules match and
 * notification channels deliver. Types only, here in core so that every layer that notices
 * something (the job center's stuck-job watchdog, the health checker's recovery point
 * objectives, restore drills) can report it without depending on how it is delivered
 * (src/alerts, which implements AlertSink).
 */

/**
 * - failure: a job ended FAILED, or a scheduled run could not start;
 * - success: a job ended SUCCESS;
 * - recovery: the first success of a source (or schedule, or drill) after one or more failures;
 * - rpo: a source's newest good backup is older than its recovery point objective (once per breach);
 * - stuck: a running job has reported no progress for the configured time (once per job).
 */
export type AlertKind = 'failure' | 'success' | 'recovery' | 'rpo' | 'stuck';
export const ALERT_KINDS = ['failure', 'success', 'recovery', 'rpo', 'stuck'] as const satisfies readonly AlertKind[];

export interface AlertEvent {
  kind: AlertKind;
  /** When it happened (ISO 8601, UTC). */
  at: string;
  /** The registered source name it concerns when there is one, else its location (never a secret). */
  source?: string;
  /** The schedule that started the job or run, by name. */
  schedule?: string;
  /** The restore drill, by name. */
  drill?: string;
  /** The job it concerns. */
  job?: { id: string; kind: string; state: string; error?: { code: string; message: string } };
  /** One line for people: what happened and to what ("backup of shop failed"). No secrets. */
  title: string;
  /** More: the error, the age against the objective, what to do. No secrets. */
  message: string;
  /** Structured details for machine receivers (ages in seconds, ids). */
  details?: Record<string, unknown>;
}

/** Where events are reported; emit never throws and never waits for delivery. */
export interface AlertSink {
  emit(event: AlertEvent): void;
}
