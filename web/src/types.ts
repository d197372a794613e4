/**
 * Answers of the routes the console uses that this SDK build may not type yet (the issue 19
 * contract: sessions, overview, deletion preview, restore dry run, source check, retention and
 * cron previews, paged listings). Older answers come from the SDK's own types.
 */
import type { BackupSummary, JobRecord, Schedule } from '../../src/sdk/index.js';
import type { Role } from './api.js';

export type { BackupSummary, JobRecord, Schedule };

export interface SessionInfo {
  role: Role;
  tokenId: string;
  tokenName: string;
  expiresAt: string | null;
  csrfToken?: string;
}

export interface BackupPage {
  repository: string;
  backups: (BackupSummary & { durationMs?: number; schedule?: string | null; repository?: string })[];
  damaged: { id: string; message: string }[];
  total?: number;
  offset?: number;
  limit?: number;
}

export interface SourceHealth {
  key: string;
  location: string;
  kind: string;
  repository: string;
  backups: number;
  newest: { id: string; createdAt: string; completedAt: string } | null;
  ageSeconds: number | null;
  lastResult: { status: string; at: string; jobId?: string; error?: { code: string; message: string } } | null;
  schedules: { name: string; cron: string; timezone: string; enabled: boolean; nextRun: string | null; intervalSeconds: number }[];
  status: 'failing' | 'late' | 'never' | 'running' | 'ok';
  logicalBytes: number;
  storedBytes: number;
  dedupRatio: number | null;
  history: { id: string; createdAt: string; durationMs: number; logicalBytes: number; storedBytes: number; newBytes: number }[];
}

export interface Overview {
  generatedAt: string;
  sources: SourceHealth[];
  repositories: { name: string; location: string; backups: number; storedBytes: number; logicalBytes: number; dedupRatio: number | null; error?: { code: string; message: string } | string }[];
}

export interface DeletionPreview {
  id: string;
  repository: string;
  uniqueChunks: number;
  uniqueStoredBytes: number;
  sharedChunks: number;
  totalChunks: number;
  note: string;
}

export interface DryRun {
  dryRun: true;
  ok: boolean;
  backupId: string;
  target: string;
  onConflict: string;
  collections: { name: string; targetName: string; kind: string; rows: number; logicalBytes: number }[];
  conflicts: { name: string; message: string }[];
  message: string;
}

export interface SourceCheck {
  name: string;
  kind: string;
  location: string;
  ok: boolean;
  serverVersion?: string;
  tools?: { name: string; version: string; ok: boolean; message?: string }[];
  error?: { code: string; message: string };
  durationMs: number;
}

export interface RetentionPreview {
  repository: string;
  keep: { id: string; createdAt: string; reasons: string[] }[];
  remove: { id: string; createdAt: string }[];
}

export interface CronPreview {
  cron: string;
  timezone: string;
  description: string;
  nextRuns: string[];
}

/** A schedule as listed, with the issue 19 additions. */
export type ScheduleShown = Schedule & { description?: string; nextRuns?: string[] };
