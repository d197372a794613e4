import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { UsageError } from '../../src/core/errors.js';
import { FileSystemStorage, LazyStorage, RetryStorage, innermost, openStorage, parseGcsUrl, parseS3Url, storageFromEnv } from '../../src/storage/index.js';

// The gs:// tests below check configuration only: no GCS server or emulator runs here.
let tmp: string;
let keyFile: string;
let savedEmulatorHost: string | undefined;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'cairn-env-'));
  keyFile = join(tmp, 'key.json');
  writeFileSync(keyFile, JSON.stringify({ type: 'service_account', private_key: 'PRIVATEKEYSECRET', client_email: 'x@p.iam.gserviceaccount.com' }));
  // The SDK reads it from process.env whatever it is told.
  savedEmulatorHost = process.env.STORAGE_EMULATOR_HOST;
  delete process.env.STORAGE_EMULATOR_HOST;
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
  if (savedEmulatorHost !== undefined) process.env.STORAGE_EMULATOR_HOST = savedEmulatorHost;
});

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
    // Wrapped in the retry middleware, around the SDK that loads on first use.
    expect(s).toBeInstanceOf(RetryStorage);
    expect(innermost(s!)).toBeInstanceOf(LazyStorage);
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
    [{ BACKUP_GCS_BUCKET: '' }, /BACKUP_GCS_BUCKET is set but empty/],
    [{ BACKUP_GCS_BUCKET: ' ' }, /BACKUP_GCS_BUCKET is set but empty/],
    [{ BACKUP_GCS_BUCKET: 'bkt/nightly' }, /BACKUP_GCS_BUCKET holds a bucket name only: put the folder in BACKUP_GCS_PATH/],
    [{ BACKUP_GCS_BUCKET: 'gs://bkt' }, /BACKUP_GCS_PATH/],
    [{ BACKUP_GCS_BUCKET: 'Bad_Bucket' }, /Invalid GCS bucket name "Bad_Bucket" \(BACKUP_GCS_BUCKET\)/],
    [{ BACKUP_GCS_BUCKET: 'ab' }, /Invalid GCS bucket name "ab"/],
    [{ BACKUP_GCS_PATH: 'x' }, /BACKUP_GCS_PATH is set but BACKUP_GCS_BUCKET is not/],
    [{ BACKUP_GCS_USE_AUTH: 'false' }, /BACKUP_GCS_USE_AUTH is set but BACKUP_GCS_BUCKET is not/],
    [{ BACKUP_GCS_BUCKET: 'bkt', BACKUP_GCS_USE_AUTH: 'maybe' }, /Invalid value "maybe" for BACKUP_GCS_USE_AUTH/],
    [{ BACKUP_GCS_BUCKET: 'bkt', BACKUP_GCS_USE_AUTH: '' }, /BACKUP_GCS_USE_AUTH/],
    [{ BACKUP_GCS_BUCKET: 'bkt', BACKUP_GCS_USE_AUTH: 'false' }, /BACKUP_GCS_USE_AUTH=false is for an emulator: set STORAGE_EMULATOR_HOST/],
    [
      { BACKUP_GCS_BUCKET: 'bkt', GOOGLE_APPLICATION_CREDENTIALS: '/nonexistent/key.json' },
      /GOOGLE_APPLICATION_CREDENTIALS names "\/nonexistent\/key\.json", which does not exist/,
    ],
    [{ BACKUP_GCS_BUCKET: 'bkt', GOOGLE_APPLICATION_CREDENTIALS: ' ' }, /GOOGLE_APPLICATION_CREDENTIALS is set but empty/],
    [{ BACKUP_GCS_BUCKET: 'bkt', GOOGLE_APPLICATION_CREDENTIALS: tmpdir() }, /GOOGLE_APPLICATION_CREDENTIALS names .* which is not a file/],
    [{ BACKUP_GCS_BUCKET: 'bkt', GCP_PROJECT: ' ' }, /GCP_PROJECT is set but empty/],
    [{ BACKUP_GCS_BUCKET: 'bkt', STORAGE_EMULATOR_HOST: '' }, /STORAGE_EMULATOR_HOST is set but empty/],
    [{ BACKUP_GCS_BUCKET: 'bkt', STORAGE_EMULATOR_HOST: 'ftp://x' }, /STORAGE_EMULATOR_HOST .* must be an http/],
    [{ BACKUP_GCS_BUCKET: 'bkt', BACKUP_GCS_USE_AUTH: 'false', STORAGE_EMULATOR_HOST: 'https://storage.googleapis.com' }, /needs credentials/],
    [{ BACKUP_GCS_BUCKET: 'bkt', BACKUP_S3_BUCKET: 'b' }, /Several repositories are configured \(BACKUP_S3_BUCKET, BACKUP_GCS_BUCKET\)/],
    [{ BACKUP_GCS_BUCKET: 'bkt', BACKUP_AZURE_CONTAINER: 'c' }, /set only one/],
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

  it('names the supported schemes for an unknown one', () => {
    expect(() => openStorage('swift://c/p')).toThrow(/Unsupported repository URL scheme.*gs:\/\/bucket\/prefix/);
  });
});

describe('gs:// configuration (no GCS server: none runs here)', () => {
  it('parses bucket, prefix, project, endpoint and auth', () => {
    expect(parseGcsUrl('gs://my-bucket', {})).toEqual({ bucket: 'my-bucket', prefix: '' });
    expect(parseGcsUrl('gs://my-bucket/a/b/', {})).toEqual({ bucket: 'my-bucket', prefix: 'a/b/' });
    expect(parseGcsUrl('gs://b.example.com/p?project=proj-1', {})).toEqual({ bucket: 'b.example.com', prefix: 'p', projectId: 'proj-1' });
    const emu = parseGcsUrl(`gs://bkt/nightly?endpoint=${encodeURIComponent('http://127.0.0.1:4443')}&auth=false`, {});
    expect(emu).toEqual({ bucket: 'bkt', prefix: 'nightly', endpoint: 'http://127.0.0.1:4443', auth: false });
    // A private or regional Google endpoint keeps authentication; host:port means https.
    expect(parseGcsUrl('gs://bkt/p?endpoint=storage.europe-west3.rep.googleapis.com', {})).toMatchObject({
      endpoint: 'https://storage.europe-west3.rep.googleapis.com',
    });
    expect(parseGcsUrl('gs://bkt/p?auth=true', {})).toMatchObject({ auth: true });
  });

  it('takes the project from GCP_PROJECT unless the URL names one', () => {
    expect(parseGcsUrl('gs://bkt/p', { GCP_PROJECT: 'env-proj' }).projectId).toBe('env-proj');
    expect(parseGcsUrl('gs://bkt/p?project=url-proj', { GCP_PROJECT: 'env-proj' }).projectId).toBe('url-proj');
  });

  it('takes the endpoint from STORAGE_EMULATOR_HOST, which the SDK obeys, and refuses a different one', () => {
    expect(parseGcsUrl('gs://bkt/p?auth=false', { STORAGE_EMULATOR_HOST: 'http://localhost:4443' })).toMatchObject({
      endpoint: 'http://localhost:4443',
      auth: false,
    });
    expect(() => parseGcsUrl('gs://bkt/p?endpoint=http://other:1', { STORAGE_EMULATOR_HOST: 'http://localhost:4443' })).toThrow(
      /STORAGE_EMULATOR_HOST .* disagree/,
    );
  });

  it.each([
    ['gs://user:secret@bkt/p', /Do not put credentials in the GCS URL: set GOOGLE_APPLICATION_CREDENTIALS/],
    ['gs://bkt/p?token=abc', /Do not put credentials in the GCS URL \("token"\)/],
    ['gs://bkt/p?credentials=abc', /Do not put credentials in the GCS URL \("credentials"\)/],
    ['gs://bkt/p?access_key=abc', /Do not put credentials/],
    ['gs://bkt/p?region=eu', /Unknown GCS URL parameter "region"\. Known: endpoint, project, auth\./],
    ['gs://bkt/p?auth=maybe', /Invalid value "maybe" for the "auth" URL parameter/],
    ['gs://bkt/p?auth=false', /authentication is off .* give its address with the "endpoint" URL parameter or STORAGE_EMULATOR_HOST/],
    ['gs://bkt/p?auth=false&endpoint=https://storage.googleapis.com', /Google's own service, which needs credentials/],
    ['gs://bkt/p?endpoint=ftp://h', /"endpoint" URL parameter .* must be an http/],
    ['gs://bkt/p?endpoint=', /"endpoint" URL parameter is empty/],
    ['gs://bkt/p?project=', /"project" URL parameter is empty/],
    ['gs:///p', /No bucket in "gs:\/\/\/p"/],
    ['gs://My_Bucket/p', /Invalid GCS bucket name "My_Bucket"/],
    ['gs://-bkt/p', /Invalid GCS bucket name "-bkt"/],
  ])('refuses %s at once', (url, message) => {
    let err: unknown;
    try {
      openStorage(url, {});
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toMatch(message);
  });

  it('checks GOOGLE_APPLICATION_CREDENTIALS names a file when authentication is on, and only then', () => {
    expect(() => openStorage('gs://bkt/p', { GOOGLE_APPLICATION_CREDENTIALS: join(tmp, 'missing.json') })).toThrow(
      /GOOGLE_APPLICATION_CREDENTIALS names ".*missing\.json", which does not exist/,
    );
    expect(openStorage('gs://bkt/p', { GOOGLE_APPLICATION_CREDENTIALS: keyFile }).location).toBe('gs://bkt/p/');
    const emulator = `gs://bkt/p?auth=false&endpoint=${encodeURIComponent('http://127.0.0.1:4443')}`;
    expect(openStorage(emulator, { GOOGLE_APPLICATION_CREDENTIALS: join(tmp, 'missing.json') }).location).toContain('gs://bkt/p/');
  });

  it('prints a location without secrets, and keeps secrets out of the endpoint (the SDK prints it in its errors)', () => {
    const s = openStorage(`gs://bkt/p/q?auth=false&endpoint=${encodeURIComponent('http://127.0.0.1:4443/')}`, {});
    expect(s.location).toBe(`gs://bkt/p/q/?endpoint=${encodeURIComponent('http://127.0.0.1:4443')}`);
    for (const endpoint of ['http://user:pass@127.0.0.1:4443', 'http://127.0.0.1:4443/?sig=SIGSECRET']) {
      expect(() => openStorage(`gs://bkt/p?auth=false&endpoint=${encodeURIComponent(endpoint)}`, {})).toThrow(
        /"endpoint" URL parameter must be a plain address .* not from the endpoint/,
      );
    }
    expect(() => openStorage('gs://bkt/p?auth=false', { STORAGE_EMULATOR_HOST: 'http://u:p@127.0.0.1:4443' })).toThrow(
      /STORAGE_EMULATOR_HOST must be a plain address/,
    );
    const fromEnv = storageFromEnv({ BACKUP_GCS_BUCKET: 'bkt', BACKUP_GCS_PATH: '/nightly/db/', GCP_PROJECT: 'proj', GOOGLE_APPLICATION_CREDENTIALS: keyFile });
    expect(innermost(fromEnv!)).toBeInstanceOf(LazyStorage);
    expect(fromEnv?.location).toBe('gs://bkt/nightly/db/');
    expect(fromEnv?.location).not.toMatch(/key\.json|PRIVATEKEYSECRET|proj/);
  });

  it('builds an emulator repository from BACKUP_GCS_* and STORAGE_EMULATOR_HOST, ignoring credentials when auth is off', () => {
    const s = storageFromEnv({
      BACKUP_GCS_BUCKET: 'bkt',
      BACKUP_GCS_USE_AUTH: 'false',
      STORAGE_EMULATOR_HOST: 'http://127.0.0.1:4443',
      GOOGLE_APPLICATION_CREDENTIALS: '/nonexistent/key.json',
    });
    expect(s?.location).toBe(`gs://bkt/?endpoint=${encodeURIComponent('http://127.0.0.1:4443')}`);
  });

  it('loads the SDK lazily and builds a GcsStorage without network I/O', async () => {
    const connect = vi.spyOn(Socket.prototype, 'connect');
    try {
      const { GcsStorage } = await import('../../src/storage/gcs.js');
      const lazy = openStorage('gs://bkt/repo?project=proj-1', { GOOGLE_APPLICATION_CREDENTIALS: keyFile });
      expect(innermost(lazy)).toBeInstanceOf(LazyStorage);
      const backend = await (innermost(lazy) as LazyStorage).backend();
      expect(backend).toBeInstanceOf(GcsStorage);
      expect(backend.location).toBe('gs://bkt/repo/');
      const client = (backend as InstanceType<typeof GcsStorage>).client;
      expect(client.apiEndpoint).toBe('https://storage.googleapis.com');
      expect(client.customEndpoint).toBe(false);
      expect(client.projectId).toBe('proj-1');
      expect(client.retryOptions).toMatchObject({ autoRetry: true, maxRetries: 5, idempotencyStrategy: 0 /* RetryAlways */ });

      const emulator = (await (
        innermost(openStorage(`gs://bkt/repo?auth=false&endpoint=${encodeURIComponent('http://127.0.0.1:4443')}`, {})) as LazyStorage
      ).backend()) as InstanceType<typeof GcsStorage>;
      expect(emulator.client.apiEndpoint).toBe('http://127.0.0.1:4443');
      expect(emulator.client.customEndpoint).toBe(true);
      expect(emulator.client.useAuthWithCustomEndpoint).toBe(false);

      const privateEndpoint = (await (
        innermost(openStorage('gs://bkt/repo?endpoint=https://storage.europe-west3.rep.googleapis.com', {})) as LazyStorage
      ).backend()) as InstanceType<typeof GcsStorage>;
      expect(privateEndpoint.client.useAuthWithCustomEndpoint).toBe(true);
      await new Promise((resolve) => setTimeout(resolve, 50)); // anything started in the background would show by now
      expect(connect).not.toHaveBeenCalled();
    } finally {
      connect.mockRestore();
    }
  });

  it('refuses to build a client the SDK would point at STORAGE_EMULATOR_HOST behind its back', async () => {
    const { GcsStorage } = await import('../../src/storage/gcs.js');
    process.env.STORAGE_EMULATOR_HOST = 'http://127.0.0.1:4443';
    try {
      expect(() => new GcsStorage({ bucket: 'bkt' })).toThrow(/STORAGE_EMULATOR_HOST is set .* unset it, or give the same endpoint/);
      expect(new GcsStorage({ bucket: 'bkt', endpoint: 'http://127.0.0.1:4443/', auth: false }).location).toContain('gs://bkt/');
    } finally {
      delete process.env.STORAGE_EMULATOR_HOST;
    }
  });
});
