/**
 * Direct access to a repository's objects, bypassing cairn, for what a user (or a disk) might do
 * to them: read a pack's header, flip a byte, truncate, delete, add junk. Filesystem folders and
 * S3 buckets (reached directly, not through the fault proxy).
 */
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';

export interface RawStore {
  /** Keys (relative to the repository root, "/"-separated) under `prefix`, dot-files included. */
  list(prefix: string): Promise<string[]>;
  get(key: string): Promise<Buffer>;
  put(key: string, data: Buffer): Promise<void>;
  delete(key: string): Promise<void>;
}

export function fsStore(root: string): RawStore {
  return {
    async list(prefix) {
      const out: string[] = [];
      const walk = async (dir: string): Promise<void> => {
        let names: string[];
        try {
          names = await readdir(dir);
        } catch {
          return;
        }
        for (const n of names) {
          const p = join(dir, n);
          if ((await stat(p)).isDirectory()) await walk(p);
          else out.push(relative(root, p).split('\\').join('/'));
        }
      };
      await walk(join(root, prefix));
      return out.sort();
    },
    get: (key) => readFile(join(root, key)),
    async put(key, data) {
      await mkdir(dirname(join(root, key)), { recursive: true });
      await writeFile(join(root, key), data);
    },
    delete: (key) => rm(join(root, key), { force: true }),
  };
}

export function s3Store(endpoint: string, bucket: string, prefix: string, credentials: { accessKeyId: string; secretAccessKey: string }): RawStore {
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const full = (key: string): string => `${prefix}/${key}`;
  return {
    async list(p) {
      const out: string[] = [];
      let token: string | undefined;
      do {
        const r = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: full(p), ContinuationToken: token }));
        for (const o of r.Contents ?? []) if (o.Key) out.push(o.Key.slice(prefix.length + 1));
        token = r.IsTruncated ? r.NextContinuationToken : undefined;
      } while (token);
      return out.sort();
    },
    async get(key) {
      const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: full(key) }));
      return Buffer.from(await r.Body!.transformToByteArray());
    },
    async put(key, data) {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: full(key), Body: data }));
    },
    async delete(key) {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: full(key) }));
    },
  };
}

export interface PackBlob {
  id: string;
  offset: number;
  length: number;
}

/** The blobs a pack's header lists, with their offsets (docs/repository-format.md), or [] when it cannot be read. */
export function packBlobs(pack: Buffer): PackBlob[] {
  const TRAILER = 4 + 8;
  if (pack.length < TRAILER || pack.subarray(pack.length - 8).toString('ascii') !== 'CRNPACK1') return [];
  const headerLength = pack.readUInt32LE(pack.length - TRAILER);
  if (headerLength % 42 !== 0 || headerLength > pack.length - TRAILER) return [];
  const start = pack.length - TRAILER - headerLength;
  const blobs: PackBlob[] = [];
  let offset = 0;
  for (let p = start; p < start + headerLength; p += 42) {
    const length = pack.readUInt32LE(p + 2);
    blobs.push({ id: pack.subarray(p + 10, p + 42).toString('hex'), offset, length });
    offset += length;
  }
  return blobs;
}
