/**
 * The storage contract against OpenStack Swift's S3 API (Debian's python3-swift, single node on
 * loopback): a second S3 implementation that, unlike s3rver, behaves like AWS S3 in multipart
 * ETags and pagination, and answers a conditional put (If-None-Match: *) with 501.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBackup } from '../../src/jobs/backup.js';
import { runRestore } from '../../src/jobs/restore.js';
import { Repository } from '../../src/repo/repository.js';
import { verifyBackups } from '../../src/repo/verify.js';
import { openSource, openTarget } from '../../src/sources/index.js';
import { S3Storage } from '../../src/storage/s3.js';
import { SWIFT_CREDENTIALS, startSwift, swiftUnavailable, type LocalServer } from '../helpers/object-servers.js';
import { dumpSqlite } from '../helpers/sqlite-compare.js';
import { describeStorageContract } from './contract.js';

const BUCKET = 'cairn-swift';
const unavailable = swiftUnavailable();
if (unavailable) console.log(`Swift S3 tests skipped: ${unavailable}`);

let server: LocalServer | undefined;
const opened: S3Storage[] = [];
let n = 0;

function swift(options: Partial<ConstructorParameters<typeof S3Storage>[0]> = {}): S3Storage {
  if (!server) throw new Error('Swift is not running');
  const s = new S3Storage({
    bucket: BUCKET,
    prefix: `run-${process.pid}/t${++n}`,
    endpoint: server.url,
    region: 'us-east-1',
    credentials: SWIFT_CREDENTIALS,
    multipartThreshold: 8 * 1024 * 1024,
    partSize: 5 * 1024 * 1024,
    ...options,
  });
  opened.push(s);
  return s;
}

describe.skipIf(unavailable !== undefined)('OpenStack Swift (S3 API)', () => {
  beforeAll(async () => {
    const t0 = Date.now();
    server = await startSwift([BUCKET]);
    console.log(`Swift started in ${Date.now() - t0} ms at ${server.url}`);
  }, 60_000);
  afterAll(async () => {
    for (const s of opened) s.destroy();
    await server?.stop();
  });

  describeStorageContract('S3 (OpenStack Swift s3api)', () => swift(), {
    atomicIfNotExists: false,
    bestEffortReason: 'Swift answers If-None-Match: * with 501: put checks with HeadObject first',
    manyKeys: 1100,
    parallelPuts: 20,
  });

  it('a SQLite backup into Swift verifies and restores identically', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-swift-'));
    try {
      const chinook = new URL('../../fixtures/chinook/chinook.sqlite', import.meta.url).pathname;
      const repo = await Repository.init(swift());
      const m = await runBackup({ repo, source: openSource(`sqlite://${chinook}`), id: 'c1' });
      expect((await verifyBackups(repo, [m], { readData: true })).problems).toEqual([]);
      const out = join(dir, 'restored.sqlite');
      await runRestore({ repo, backupId: 'c1', target: openTarget(`sqlite://${out}`) });
      expect(dumpSqlite(out)).toEqual(dumpSqlite(chinook));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
