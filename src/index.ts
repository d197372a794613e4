/** cairn's programmatic surface: the same operations the CLI runs. */
export * from './core/errors.js';
export * from './core/schemas.js';
export { generateBackupId, validateBackupId } from './core/ids.js';
export { Repository } from './repo/repository.js';
export { prune, type PruneReport } from './repo/prune.js';
export { verifyBackups, type VerifyReport } from './repo/verify.js';
export { runBackup, type BackupOptions } from './jobs/backup.js';
export { runRestore, type RestoreOptions, type RestoreSummary } from './jobs/restore.js';
export { openSource, openTarget } from './sources/index.js';
export { openStorage, FileSystemStorage, type Storage } from './storage/index.js';
