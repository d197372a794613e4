import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { describeStorageContract } from './contract.js';

let dir: string;
let n = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cairn-fs-contract-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describeStorageContract('filesystem', () => new FileSystemStorage(join(dir, `repo-${++n}`)), {
  atomicIfNotExists: true,
  manyKeys: 1100,
});
