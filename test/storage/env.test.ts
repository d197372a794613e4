import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/core/errors.js';
import { FileSystemStorage, LazyStorage, openStorage, parseS3Url, storageFromEnv } from '../../src/storage/index.js';

function usage(env: NodeJS.ProcessEnv): string {
  try {
    storageFromEnv(env);
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return (err as Error).message;
  }
  throw new Error('expected a UsageError');
}

describe('storageFromEnv', () => {
  it('returns undefined when no repository variable is set', () => {
    expect(storageFromEnv({ PATH: '/bin' })).toBeUndefined();
  });

  it('opens a folder from BACKUP_FILESYSTEM_PATH', () => {
    const s = storageFromEnv({ BACKUP_FILESYSTEM_PATH: '/srv/backups' });
    expect(s).toBeInstanceOf(FileSystemStorage);
    expect(s?.location).toBe('file:///srv/backups');
  });

  it('builds an S3 repository without contacting it, keys out of its location', () => {
    const s = storageFromEnv({
      BACKUP_S3_BUCKET: 'b',
      BACKUP_S3_PATH: '/nightly/',
      BACKUP_S3_ENDPOINT: 'minio.internal:9000',
      BACKUP_S3_USE_SSL: 'true',
      AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
      AWS_SECRET_ACCESS_KEY: 'verysecret',
    });
    expect(s).toBeInstanceOf(LazyStorage);
    expect(s?.location).toBe(`s3://b/nightly/?endpoint=${encodeURIComponent('https://minio.internal:9000')}`);
    expect(s?.location).not.toMatch(/AKID|verysecret/);
  });

  it.each([
    [{ BACKUP_S3_BUCKET: '' }, /BACKUP_S3_BUCKET is set but empty/],
    [{ BACKUP_S3_BUCKET: 'b/p' }, /BACKUP_S3_PATH/],
    [{ BACKUP_S3_PATH: 'x' }, /BACKUP_S3_PATH is set but BACKUP_S3_BUCKET is not/],
    [{ BACKUP_S3_BUCKET: 'b', BACKUP_S3_USE_SSL: 'maybe', BACKUP_S3_ENDPOINT: 'h:1' }, /BACKUP_S3_USE_SSL/],
    [{ BACKUP_S3_BUCKET: 'b', BACKUP_S3_USE_SSL: 'false' }, /BACKUP_S3_ENDPOINT/],
    [{ BACKUP_S3_BUCKET: 'b', BACKUP_S3_ENDPOINT: 'https://h', BACKUP_S3_USE_SSL: 'false' }, /BACKUP_S3_ENDPOINT.*make them agree/],
    [{ BACKUP_S3_BUCKET: 'b', BACKUP_S3_ENDPOINT: ' ' }, /BACKUP_S3_ENDPOINT is set but empty/],
    [{ BACKUP_S3_BUCKET: 'b', AWS_ACCESS_KEY_ID: 'k' }, /AWS_SECRET_ACCESS_KEY/],
    [{ BACKUP_S3_BUCKET: 'b', AWS_SECRET_ACCESS_KEY: 's' }, /AWS_ACCESS_KEY_ID/],
    [{ BACKUP_FILESYSTEM_PATH: '' }, /BACKUP_FILESYSTEM_PATH is set but empty/],
    [{ BACKUP_FILESYSTEM_PATH: '/a', BACKUP_S3_BUCKET: 'b' }, /set only one/],
    [{ BACKUP_AZURE_CONTAINER: '' }, /BACKUP_AZURE_CONTAINER is set but empty/],
    [{ BACKUP_AZURE_PATH: 'x' }, /BACKUP_AZURE_CONTAINER/],
    [{ BACKUP_AZURE_CONTAINER: 'c' }, /AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT/],
    [{ BACKUP_AZURE_CONTAINER: 'c', AZURE_STORAGE_ACCOUNT: 'a', AZURE_BLOCK_SIZE: '0' }, /AZURE_BLOCK_SIZE/],
    [{ BACKUP_GCS_BUCKET: 'g' }, /storage\.googleapis\.com/],
  ] as [NodeJS.ProcessEnv, RegExp][])('refuses %j at once', (env, message) => {
    expect(usage(env)).toMatch(message);
  });
});

describe('openStorage', () => {
  it('parses S3 URL options', () => {
    expect(parseS3Url('s3://bucket')).toMatchObject({ bucket: 'bucket', prefix: '' });
    expect(parseS3Url('s3://bucket/a/b?endpoint=127.0.0.1:9000&tls=false')).toMatchObject({ prefix: 'a/b', endpoint: 'http://127.0.0.1:9000' });
    expect(openStorage('s3://bucket/a/b?region=eu-west-1').location).toBe('s3://bucket/a/b/');
  });

  it('explains GCS and unknown schemes', () => {
    expect(() => openStorage('gs://b/p')).toThrow(/S3-compatible endpoint/);
    expect(() => openStorage('swift://c/p')).toThrow(/Unsupported repository URL scheme/);
  });
});
