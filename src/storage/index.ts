/**
 * The storage layer's one export surface: the Storage interface, the backends' registry
 * (openStorage, storageFromEnv), the middleware and the create-only helpers. The SDK-backed
 * classes (S3Storage in ./s3.js, AzureBlobStorage in ./azure.js, GcsStorage in ./gcs.js) are
 * loaded on first use only; import those modules directly to use them eagerly.
 */
export type { Storage, ObjectInfo, PutOptions } from './types.js';
export { FileSystemStorage } from './fs.js';
export { CLAIM_EXPIRY_MS, createExclusive, createExclusiveByClaims, removeClaims, removeExpiredClaims } from './common.js';
export { TransientStorageError, isTransient } from './errors.js';
export { LazyStorage } from './lazy.js';
export { openStorage, registerStorageBackend, storageFromEnv, type StorageBackend, type StorageEnvSpec } from './registry.js';
export { StorageMiddleware, innermost, type StorageCall, type StorageOp } from './middleware/wrapper.js';
export { RetryStorage, type RetryOptions } from './middleware/retry.js';
export { MetricsStorage, type OpMetrics, type StorageMetrics } from './middleware/metrics.js';
export { FaultStorage, type FaultOptions, type StorageFaultKind } from './middleware/faults.js';
export { parseS3Url, type S3Options } from './s3-config.js';
export { parseAzureUrl, type AzureOptions } from './azure-config.js';
export { parseGcsUrl, type GcsOptions } from './gcs-config.js';
