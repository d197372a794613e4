import { FORMAT_VERSION, type BackupManifest } from '../../src/core/schemas.js';

/** A minimal valid manifest whose one collection references `chunks`. */
export function manifest(id: string, chunks: string[]): BackupManifest {
  const now = new Date().toISOString();
  return {
    formatVersion: FORMAT_VERSION,
    id,
    createdAt: now,
    completedAt: now,
    type: 'manual',
    expiresAt: null,
    source: { kind: 'test', name: 't', location: 'test:', serverVersion: '1' },
    scope: {},
    compression: { algorithm: 'zstd', level: 'default' },
    collections: [{ name: 'c', kind: 'table', definition: {}, rowCount: 0, logicalBytes: 0, storedBytes: 0, newBytes: 0, chunks }],
    totals: { collections: 1, rows: 0, logicalBytes: 0, storedBytes: 0, newBytes: 0, reusedBytes: 0, chunks: chunks.length, newChunks: 0 },
    warnings: [],
  };
}

/** A valid repository config document (format 2, default chunker and pack size), as stored minus its checksum. */
export function repositoryConfig(): Record<string, unknown> {
  return {
    formatVersion: 2,
    id: '0123456789abcdef0123456789abcdef',
    createdAt: '2026-11-30T10:15:00.000Z',
    hash: 'sha256',
    chunker: { algorithm: 'fastcdc-2020', minSize: 262144, avgSize: 1048576, maxSize: 4194304 },
    compression: { algorithm: 'zstd', level: 'default' },
    packSize: 16777216,
    encryption: { algorithm: 'none' },
  };
}
