import { randomBytes } from 'node:crypto';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConflictError, NotFoundError, StorageError, UsageError } from '../../src/core/errors.js';
import { LazyStorage, innermost, openStorage, storageFromEnv } from '../../src/storage/index.js';
import { S3Storage, parseS3Url } from '../../src/storage/s3.js';
import { S3RVER_CREDENTIALS, startS3rver, type LocalServer } from '../helpers/object-servers.js';
import { describeStorageContract } from './contract.js';

const BUCKET = 'cairn-test';
let server: LocalServer;
const opened: S3Storage[] = [];
let n = 0;

beforeAll(async () => {
  server = await startS3rver([BUCKET]);
});
afterAll(async () => {
  for (const s of opened) s.destroy();
  await server?.stop();
});

function s3(options: Partial<ConstructorParameters<typeof S3Storage>[0]> = {}): S3Storage {
  const s = new S3Storage({
    bucket: BUCKET,
    prefix: `run-${process.pid}/t${++n}`,
    endpoint: server.url,
    credentials: S3RVER_CREDENTIALS,
    // Small enough that the 20 MiB object goes through the multipart path too.
    multipartThreshold: 8 * 1024 * 1024,
    partSize: 5 * 1024 * 1024,
    ...options,
  });
  opened.push(s);
  return s;
}

describeStorageContract('S3 (s3rver)', () => s3(), {
  atomicIfNotExists: false,
  bestEffortReason: 'S3 put is checked with HeadObject first; s3rver ignores If-None-Match',
  manyKeys: 1100,
  parallelPuts: 50,
});

/** Counts the commands a client sends, by name. */
function countCommands(s: S3Storage): Map<string, number> {
  const counts = new Map<string, number>();
  s.client.middlewareStack.add(
    (next, context) => async (args) => {
      const cmd = context.commandName ?? '?';
      counts.set(cmd, (counts.get(cmd) ?? 0) + 1);
      return next(args);
    },
    { step: 'initialize' },
  );
  return counts;
}

describe('S3 backend', () => {
  it('pages through ListObjectsV2 with continuation tokens', async () => {
    const s = s3({ listPageSize: 100 });
    const counts = countCommands(s);
    await Promise.all(Array.from({ length: 250 }, (_, i) => s.put(`p/${i}`, Buffer.from('x'))));
    const keys: string[] = [];
    for await (const o of s.list('p/')) keys.push(o.key);
    expect(new Set(keys).size).toBe(250);
    expect(counts.get('ListObjectsV2Command')).toBe(3);
  });

  it('uses a multipart upload above the threshold and a single PutObject below it', async () => {
    const s = s3({ multipartThreshold: 6 * 1024 * 1024, partSize: 5 * 1024 * 1024 });
    const counts = countCommands(s);
    const big = randomBytes(12 * 1024 * 1024 + 17);
    const small = randomBytes(6 * 1024 * 1024);
    await s.put('big', big);
    await s.put('small', small);
    expect(counts.get('CreateMultipartUploadCommand')).toBe(1);
    expect(counts.get('UploadPartCommand')).toBe(3);
    expect(counts.get('PutObjectCommand')).toBe(1);
    expect((await s.get('big')).equals(big)).toBe(true);
    expect((await s.get('small')).equals(small)).toBe(true);
    // The same in parts (a pack), streamed: parts of the upload cross the given parts' boundaries.
    const split = (b: Buffer): Buffer[] => [b.subarray(0, 1), b.subarray(1, 4 * 1024 * 1024), b.subarray(4 * 1024 * 1024)];
    await s.put('big-parts', split(big));
    await s.put('small-parts', split(small));
    expect(counts.get('CreateMultipartUploadCommand')).toBe(2);
    expect(counts.get('UploadPartCommand')).toBe(6);
    expect(counts.get('CompleteMultipartUploadCommand')).toBe(2);
    expect(counts.get('PutObjectCommand')).toBe(2);
    expect((await s.get('big-parts')).equals(big)).toBe(true);
    expect((await s.get('small-parts')).equals(small)).toBe(true);
  });

  it('sends If-None-Match: * on create-only writes (atomic on AWS S3), and not on others', async () => {
    const s = s3();
    const seen: { key: string; ifNoneMatch: string | undefined }[] = [];
    s.client.middlewareStack.add(
      (next, context) => async (args) => {
        const req = args.request as { headers?: Record<string, string>; path?: string };
        if (context.commandName === 'PutObjectCommand') seen.push({ key: req.path ?? '', ifNoneMatch: req.headers?.['if-none-match'] });
        return next(args);
      },
      { step: 'finalizeRequest' },
    );
    await s.put('create-only', Buffer.from('x'), { ifNotExists: true });
    await s.put('plain', Buffer.from('x'));
    await s.put('create-only-parts', [Buffer.from('x'), Buffer.from('y')], { ifNotExists: true });
    expect(seen.map((r) => r.ifNoneMatch)).toEqual(['*', undefined, '*']);
    expect(s.atomicCreate).toBe(false);
    expect(openStorage(`s3://${BUCKET}/p?endpoint=${encodeURIComponent(server.url)}`, {}).atomicCreate).toBe(false);
  });

  it('maps a 412 to a conflict, and falls back to a plain write where the server refuses the condition (501)', async () => {
    // In front of s3rver, answers a conditional PutObject itself as the given server would.
    let answer: 412 | 501 = 412;
    const proxy: Server = createServer((req, res) => {
      if (req.method === 'PUT' && req.headers['if-none-match'] === '*') {
        req.resume();
        const code = answer === 412 ? 'PreconditionFailed' : 'NotImplemented';
        res.writeHead(answer, { 'content-type': 'application/xml' });
        res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${code}</Message></Error>`);
        return;
      }
      const target = new URL(server.url);
      const fwd = httpRequest({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      req.pipe(fwd);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const s = s3({ endpoint: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}` });
      await expect(s.put('taken', Buffer.from('x'), { ifNotExists: true })).rejects.toBeInstanceOf(ConflictError);
      expect(await s.exists('taken')).toBe(false);
      answer = 501;
      await s.put('unconditional', Buffer.from('y'), { ifNotExists: true });
      expect((await s.get('unconditional')).toString()).toBe('y');
      // The HeadObject check still refuses the sequential case there.
      await expect(s.put('unconditional', Buffer.from('z'), { ifNotExists: true })).rejects.toBeInstanceOf(ConflictError);
    } finally {
      proxy.closeAllConnections();
      await new Promise((resolve) => proxy.close(resolve));
    }
  });

  it('names the bucket when it does not exist', async () => {
    const s = s3({ bucket: 'no-such-bucket' });
    await expect(s.get('x')).rejects.toThrow(/bucket "no-such-bucket" does not exist/);
    await expect(s.put('x', Buffer.from('x'))).rejects.toBeInstanceOf(StorageError);
  });

  it('names the credentials when they are refused, at once', async () => {
    const s = s3({ credentials: { accessKeyId: 'WRONG', secretAccessKey: 'WRONG' } });
    const started = Date.now();
    const err = await s.put('x', Buffer.from('x')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as Error).message).toMatch(/access denied.*AWS_ACCESS_KEY_ID/s);
    expect(Date.now() - started).toBeLessThan(5_000); // permanent: not retried with backoff
  });

  it('retries a server that is not answering yet, then gives up with a StorageError', async () => {
    const s = new S3Storage({ bucket: BUCKET, endpoint: 'http://127.0.0.1:9', credentials: S3RVER_CREDENTIALS, maxAttempts: 2 });
    opened.push(s);
    const err = await s.get('x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as Error).message).toMatch(/after 2 attempts/);
  });

  it('opens from a URL and from server-style environment variables', async () => {
    const url = `s3://${BUCKET}/from-url?endpoint=${encodeURIComponent(server.url)}&region=us-east-1&forcePathStyle=true`;
    expect(parseS3Url(url)).toMatchObject({ bucket: BUCKET, prefix: 'from-url', endpoint: server.url, region: 'us-east-1', forcePathStyle: true });
    const fromUrl = openStorage(url, {});
    expect(innermost(fromUrl)).toBeInstanceOf(LazyStorage);
    expect(fromUrl.location).toBe(`s3://${BUCKET}/from-url/?endpoint=${encodeURIComponent(server.url)}`);

    const env = {
      BACKUP_S3_BUCKET: BUCKET,
      BACKUP_S3_PATH: 'from-env',
      BACKUP_S3_ENDPOINT: server.url.replace('http://', ''),
      BACKUP_S3_USE_SSL: 'false',
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    };
    const fromEnv = storageFromEnv(env)!;
    await fromEnv.put('k', Buffer.from('via env'));
    expect((await fromEnv.get('k')).toString()).toBe('via env');
    expect(fromEnv.location).not.toContain('S3RVER');
    await expect(fromEnv.get('missing')).rejects.toBeInstanceOf(NotFoundError);
    const backend = await (innermost(fromEnv) as LazyStorage).backend();
    expect(backend).toBeInstanceOf(S3Storage);
    opened.push(backend as S3Storage);
    opened.push((await (innermost(fromUrl) as LazyStorage).backend()) as S3Storage);
  });

  it('refuses credentials and unknown parameters in the URL', () => {
    expect(() => openStorage('s3://b/p?secretKey=x')).toThrow(/AWS_ACCESS_KEY_ID/);
    expect(() => openStorage('s3://key:secret@b/p')).toThrow(UsageError);
    expect(() => openStorage('s3://b/p?foo=1')).toThrow(/Unknown S3 URL parameter "foo"/);
    expect(() => openStorage('s3://b/p?tls=false')).toThrow(/needs an "endpoint"/);
    // gs:// is the native GCS backend now (test/storage/env.test.ts); it refuses URL credentials the same way.
    expect(() => openStorage('gs://bucket/p?secretKey=x', {})).toThrow(/GOOGLE_APPLICATION_CREDENTIALS/);
  });
});
