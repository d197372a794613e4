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
