import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConflictError, NotFoundError, StorageError, UsageError } from '../../src/core/errors.js';
import { AzureBlobStorage, parseAzureUrl, type AzureOptions } from '../../src/storage/azure.js';
import { LazyStorage, innermost, openStorage, storageFromEnv } from '../../src/storage/index.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite, type LocalServer } from '../helpers/object-servers.js';
import { describeStorageContract } from './contract.js';

const CONTAINER = 'cairn-test';
let server: LocalServer;
let n = 0;

beforeAll(async () => {
  server = await startAzurite();
  await az().containerClient.createIfNotExists();
});
afterAll(async () => {
  await server?.stop();
});

function az(options: Partial<AzureOptions> = {}): AzureBlobStorage {
  return new AzureBlobStorage({
    container: CONTAINER,
    prefix: `run-${process.pid}/t${++n}`,
    account: AZURITE_ACCOUNT,
    key: AZURITE_KEY,
    endpoint: server.url,
    // Small blocks so the 20 MiB object is staged as blocks and committed (Put Block List).
    blockSize: 4 * 1024 * 1024,
    concurrency: 2,
    // Small pages so listing 1,100 blobs follows continuation markers.
    listPageSize: 500,
    ...options,
  });
}

describeStorageContract('Azure Blob (azurite)', () => az(), { atomicIfNotExists: true, manyKeys: 1100, parallelPuts: 50 });

describe('Azure backend', () => {
  it('refuses ifNotExists on a block-list upload too', async () => {
    const s = az();
    const big = randomBytes(9 * 1024 * 1024);
    await s.put('big', big, { ifNotExists: true });
    await expect(s.put('big', randomBytes(9 * 1024 * 1024), { ifNotExists: true })).rejects.toBeInstanceOf(ConflictError);
    expect((await s.get('big')).equals(big)).toBe(true);
  });

  it('names the container when it does not exist', async () => {
    const s = az({ container: 'no-such-container' });
    await expect(s.put('x', Buffer.from('x'))).rejects.toThrow(/container "no-such-container" does not exist/);
    await expect(s.get('x')).rejects.toBeInstanceOf(StorageError);
  });

  it('names the variable to fix when the key is refused', async () => {
    const s = az({ key: Buffer.from('not the key').toString('base64') });
    const err = await s.put('x', Buffer.from('x')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as Error).message).toMatch(/AZURE_STORAGE_KEY/);
  });

  it('opens from a URL with a connection string, and from server-style variables', async () => {
    const connectionString =
      `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=${server.url};`;
    const env = { AZURE_STORAGE_CONNECTION_STRING: connectionString, AZURE_BLOCK_SIZE: '4MiB', AZURE_CONCURRENCY: '2' };
    expect(parseAzureUrl(`azure://${CONTAINER}/a/b`, env)).toMatchObject({ container: CONTAINER, prefix: 'a/b', blockSize: 4 * 1024 * 1024, concurrency: 2 });
    const fromUrl = openStorage(`azure://${CONTAINER}/from-url`, env);
    await fromUrl.put('k', Buffer.from('url'));
    expect((await fromUrl.get('k')).toString()).toBe('url');
    expect(fromUrl.location).not.toContain(AZURITE_KEY);

    const fromEnv = storageFromEnv({
      BACKUP_AZURE_CONTAINER: CONTAINER,
      BACKUP_AZURE_PATH: 'from-env',
      AZURE_STORAGE_ACCOUNT: AZURITE_ACCOUNT,
      AZURE_STORAGE_KEY: AZURITE_KEY,
    });
    expect(innermost(fromEnv!)).toBeInstanceOf(LazyStorage);
    expect(await (innermost(fromEnv!) as LazyStorage).backend()).toBeInstanceOf(AzureBlobStorage);
    // No endpoint given: it points at the real Azure account URL, which this test never contacts.
    expect(fromEnv?.location).toBe(`azure://${CONTAINER}/from-env/`);
    await expect(fromUrl.get('missing')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('fails at once on bad Azure settings, naming the variable', () => {
    expect(() => openStorage('azure://c/p', {})).toThrow(/AZURE_STORAGE_CONNECTION_STRING/);
    expect(() => openStorage('azure://c/p', { AZURE_STORAGE_CONNECTION_STRING: ' ' })).toThrow(/AZURE_STORAGE_CONNECTION_STRING is set but empty/);
    expect(() => openStorage('azure://c/p', { AZURE_STORAGE_ACCOUNT: 'a', AZURE_BLOCK_SIZE: 'big' })).toThrow(/AZURE_BLOCK_SIZE/);
    expect(() => openStorage('azure://c/p', { AZURE_STORAGE_ACCOUNT: 'a', AZURE_CONCURRENCY: '0' })).toThrow(/AZURE_CONCURRENCY/);
    expect(() => openStorage('azure://c/p?sig=abc', { AZURE_STORAGE_ACCOUNT: 'a' })).toThrow(UsageError);
    // An empty key means anonymous access: accepted.
    expect(openStorage('azure://c/p', { AZURE_STORAGE_ACCOUNT: 'a', AZURE_STORAGE_KEY: '' }).location).toBe('azure://c/p/');
  });
});
