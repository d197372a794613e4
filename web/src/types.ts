/**
 * The answers the console reads, named for the screens: all from the server's route table and
 * schemas (type-only imports, erased from the bundle), as the SDK types them.
 */
import type { AnswerOf } from '../../src/server/routes/table.js';
import type { BackupSummary, JobRecord, RestorePlan, Schedule } from '../../src/sdk/index.js';

export type { BackupSummary, JobRecord, Schedule };

export type SessionInfo = AnswerOf<'getSession'>['session'];
/** GET /v1/backups: a page of the listing with total, offset and limit. */
export type BackupPage = AnswerOf<'listBackups'>;
export type Overview = AnswerOf<'getOverview'>;
export type SourceHealth = Overview['sources'][number];
export type DeletionPreview = AnswerOf<'backupDeletionPreview'>;
/** POST /v1/restores with dryRun: true. */
export type DryRun = RestorePlan;
export type SourceCheck = AnswerOf<'checkSource'>;
export type RetentionPreview = AnswerOf<'retentionPreview'>;
export type CronPreview = AnswerOf<'cronPreview'>;
/** A schedule as listed, with its cron in words and its next runs. */
export type ScheduleShown = Schedule;
/** Alerts (admin): a channel as listed (never its secret), a rule, a delivery. */
export type AlertChannel = AnswerOf<'listAlertChannels'>['channels'][number];
export type AlertRule = AnswerOf<'listAlertRules'>['rules'][number];
export type AlertDelivery = AnswerOf<'listAlertDeliveries'>['deliveries'][number];
