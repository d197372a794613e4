/**
 * The storage middleware (src/storage/middleware/) on the file-system backend: retries with
 * backoff, metrics, fault injection, and the registry that wraps backends in them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CancelledError, ConflictError, NotFoundError, StorageError } from '../../src/core/errors.js';
import {
  FaultStorage,
  FileSystemStorage,
  LazyStorage,
  MetricsStorage,
  RetryStorage,
  StorageMiddleware,
  TransientStorageError,
  innermost,
  openStorage,
  registerStorageBackend,
  storageFromEnv,
  type ObjectInfo,
  type StorageCall,
  type Storage,
} from '../../src/storage/index.js';
import { listKeys as keys } from './contract.js';

let dir: string;
let n = 0;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cairn-middleware-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fsStorage(): FileSystemStorage {
  return new FileSystemStorage(join(dir, `repo-${++n}`));
}

/** Fails the first `failures` calls of each operation with `error()`, then passes calls through. */
class Flaky extends StorageMiddleware {
  readonly calls: StorageCall['op'][] = [];
  private left = new Map<string, number>();

  constructor(
    inner: Storage,
    private readonly failures: number,
    private readonly error: () => Error = () => new TransientStorageError('503 Slow Down'),
  ) {
    super(inner);
  }

  protected async around<T>(call: StorageCall, run: () => Promise<T>): Promise<T> {
    this.calls.push(call.op);
    const left = this.left.get(call.op) ?? this.failures;
    this.left.set(call.op, left - 1);
    if (left > 0) throw this.error();
    return run();
  }
}

describe('RetryStorage', () => {
  it('retries transient errors with exponential backoff and full jitter, then succeeds', async () => {
    const flaky = new Flaky(fsStorage(), 3);
    const pauses: { attempt: number; delayMs: number }[] = [];
    const s = new RetryStorage(flaky, { baseDelayMs: 4, maxDelayMs: 20, random: () => 0.99, onRetry: (e) => pauses.push(e) });
    const started = Date.now();
    await s.put('data/x', Buffer.from('hello'));
    expect((await s.get('data/x')).toString()).toBe('hello');
    expect(flaky.calls.filter((op) => op === 'put')).toHaveLength(4);
    // 4·2^n ms, capped at 20, times the jitter draw.
    expect(pauses.slice(0, 3).map((p) => [p.attempt, Math.round(p.delayMs * 100) / 100])).toEqual([
      [1, 7.92],
      [2, 15.84],
      [3, 19.8],
    ]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(40);
  });

  it('gives up after `attempts`, rethrowing the last transient error', async () => {
    const flaky = new Flaky(fsStorage(), 100);
    const s = new RetryStorage(flaky, { attempts: 3, baseDelayMs: 1 });
    await expect(s.exists('k')).rejects.toBeInstanceOf(TransientStorageError);
    expect(flaky.calls).toEqual(['exists', 'exists', 'exists']);
  });

  it('stops at a permanent error at once', async () => {
    const inner = new MetricsStorage(fsStorage());
    const s = new RetryStorage(inner, { baseDelayMs: 1 });
    await expect(s.get('missing')).rejects.toBeInstanceOf(NotFoundError);
    await s.put('config', Buffer.from('a'), { ifNotExists: true });
    await expect(s.put('config', Buffer.from('b'), { ifNotExists: true })).rejects.toBeInstanceOf(ConflictError);
    const denied = new Flaky(fsStorage(), 100, () => new StorageError('access denied'));
    await expect(new RetryStorage(denied, { baseDelayMs: 1 }).put('k', Buffer.from('x'))).rejects.toThrow(/access denied/);
    expect(inner.snapshot().get.calls).toBe(1);
    expect(inner.snapshot().put.calls).toBe(2);
    expect(denied.calls).toEqual(['put']);
  });

  it('stops promptly when the signal aborts, also in the middle of a pause', async () => {
    const flaky = new Flaky(fsStorage(), 100);
    const s = new RetryStorage(flaky, { baseDelayMs: 60_000, maxDelayMs: 60_000, random: () => 1 });
    const controller = new AbortController();
    const started = Date.now();
    const put = s.put('k', Buffer.from('x'), { signal: controller.signal });
    setTimeout(() => controller.abort(), 30);
    await expect(put).rejects.toBeInstanceOf(CancelledError);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(flaky.calls).toEqual(['put']);
    // Already aborted: no call at all.
    await expect(s.get('k', controller.signal)).rejects.toBeInstanceOf(CancelledError);
    expect(flaky.calls).toEqual(['put']);
  });

  it('takes a create-only write whose answer was lost as done when the object holds its bytes', async () => {
    const inner = fsStorage();
    const lost = new FaultStorage(inner, { rate: 1, kinds: ['lostReply'], ops: ['put'] });
    const s = new RetryStorage(lost, { baseDelayMs: 1 });
    await s.put('backups/b1', Buffer.from('manifest'), { ifNotExists: true });
    expect((await inner.get('backups/b1')).toString()).toBe('manifest');
    // Someone else's object under the key is still a conflict.
    await expect(s.put('backups/b1', Buffer.from('other'), { ifNotExists: true })).rejects.toBeInstanceOf(ConflictError);
  });

  it('starts a broken listing again without giving a key twice', async () => {
    const inner = fsStorage();
    for (const k of ['a', 'b', 'c', 'd']) await inner.put(`data/${k}`, Buffer.from(k));
    let listings = 0;
    /** The first listing breaks after two items. */
    const breaksOnce = new (class extends StorageMiddleware {
      protected around<T>(_call: StorageCall, run: () => Promise<T>): Promise<T> {
        return run();
      }
      protected override async *aroundList(_call: StorageCall, run: () => AsyncIterable<ObjectInfo>): AsyncIterable<ObjectInfo> {
        const listing = ++listings;
        let given = 0;
        for await (const item of run()) {
          if (listing === 1 && given === 2) throw new TransientStorageError('connection reset');
          given++;
          yield item;
        }
      }
    })(inner);
    const given: string[] = [];
    for await (const o of new RetryStorage(breaksOnce, { baseDelayMs: 1 }).list('data/')) given.push(o.key);
    expect(listings).toBe(2);
    expect(given.sort()).toEqual(['data/a', 'data/b', 'data/c', 'data/d']);

    // A listing that always breaks: given up after its attempts.
    const alwaysBreaks = new FaultStorage(inner, { rate: 1, kinds: ['lostReply'], ops: ['list'] });
    let retries = 0;
    await expect(keys(new RetryStorage(alwaysBreaks, { attempts: 3, baseDelayMs: 1, onRetry: () => retries++ }), 'data/')).rejects.toBeInstanceOf(
      TransientStorageError,
    );
    expect(retries).toBe(2);
  });

  it('keeps location, atomicCreate and linksOutside of the backend', async () => {
    const inner = fsStorage();
    const s = new RetryStorage(new MetricsStorage(inner));
    expect(s.location).toBe(inner.location);
    expect(s.atomicCreate).toBe(true);
    await s.put('k', Buffer.from('x'));
    expect(await s.linksOutside?.('k')).toBe(false);
    expect(innermost(s)).toBe(inner);
    // A backend without links (every one but the file system's): none on the wrapper either.
    expect(new RetryStorage(new LazyStorage('x', true, async () => inner)).linksOutside).toBeUndefined();
  });
});

describe('MetricsStorage', () => {
  it('counts calls, failures, bytes, listed objects and time per operation', async () => {
    let clock = 0;
    const s = new MetricsStorage(fsStorage(), () => (clock += 5));
    await s.put('data/a', Buffer.from('abc'));
    await s.put('data/b', Buffer.from('defgh'));
    expect((await s.get('data/b')).length).toBe(5);
    expect((await s.getRange('data/b', 1, 2)).toString()).toBe('ef');
    await expect(s.get('missing')).rejects.toBeInstanceOf(NotFoundError);
    expect(await keys(s, 'data/')).toEqual(['data/a', 'data/b']);
    await s.delete('data/a');
    const m = s.snapshot();
    expect(m.put).toEqual({ calls: 2, errors: 0, bytes: 8, items: 0, ms: 10 });
    expect(m.get).toEqual({ calls: 2, errors: 1, bytes: 5, items: 0, ms: 10 });
    expect(m.getRange).toMatchObject({ calls: 1, bytes: 2 });
    expect(m.list).toMatchObject({ calls: 1, errors: 0, items: 2, ms: 15 }); // two items and the end
    expect(m.delete).toMatchObject({ calls: 1, errors: 0 });
    expect(m.exists.calls).toBe(0);
    s.reset();
    expect(s.snapshot().put.calls).toBe(0);
  });

  it('inside the retry middleware, counts every attempt', async () => {
    const metrics = new MetricsStorage(new Flaky(fsStorage(), 2));
    await new RetryStorage(metrics, { baseDelayMs: 1 }).put('k', Buffer.from('xy'));
    expect(metrics.snapshot().put).toMatchObject({ calls: 3, errors: 2, bytes: 2 });
  });
});

describe('FaultStorage', () => {
  it('injects faults at the seeded rate, the same ones for the same seed', async () => {
    const inner = fsStorage();
    await inner.put('k', Buffer.from('x'));
    const outcomes = async (seed: number): Promise<string> => {
      const s = new FaultStorage(inner, { rate: 0.3, seed, kinds: ['fail', 'lostReply'] });
      let out = '';
      for (let i = 0; i < 1000; i++) out += await s.exists('k').then(() => '.', () => 'x');
      const stats = s.stats();
      expect(stats.calls).toBe(1000);
      expect(stats.faults.fail + stats.faults.lostReply).toBe(out.split('x').length - 1);
      return out;
    };
    const a = await outcomes(7);
    const faults = a.split('x').length - 1;
    expect(faults).toBeGreaterThan(250);
    expect(faults).toBeLessThan(350);
    expect(await outcomes(7)).toBe(a);
    expect(await outcomes(8)).not.toBe(a);
  });

  it('a backend behind faults and the retry middleware still reads back everything it wrote', async () => {
    const inner = fsStorage();
    const faults = new FaultStorage(inner, { rate: 0.3, seed: 20261130, delayMs: [1, 3] });
    const s = new RetryStorage(faults, { attempts: 12, baseDelayMs: 1, maxDelayMs: 4 });
    const written = new Map<string, string>();
    for (let i = 0; i < 40; i++) {
      const key = `data/${String(i).padStart(2, '0')}`;
      await s.put(key, Buffer.from(`object ${i}`), { ifNotExists: i % 2 === 0 });
      written.set(key, `object ${i}`);
    }
    for (const [key, value] of written) expect((await s.get(key)).toString()).toBe(value);
    expect(await keys(s, 'data/')).toEqual([...written.keys()].sort());
    await s.delete('data/00');
    expect(await s.exists('data/00')).toBe(false);
    const stats = faults.stats();
    for (const kind of ['fail', 'lostReply', 'delay'] as const) expect(stats.faults[kind], kind).toBeGreaterThan(0);
  });
});

describe('the backend registry', () => {
  it('opens a local path as the bare file-system backend and a cloud URL behind the retry middleware', () => {
    const local = openStorage(join(dir, 'plain'));
    expect(local).toBeInstanceOf(FileSystemStorage);
    expect(openStorage(`file://${join(dir, 'plain')}`)).toBeInstanceOf(FileSystemStorage);
    expect(storageFromEnv({ BACKUP_FILESYSTEM_PATH: join(dir, 'plain') })).toBeInstanceOf(FileSystemStorage);
    expect(openStorage('s3://bucket/p', {})).toBeInstanceOf(RetryStorage);
    expect(() => openStorage('')).toThrow(/No repository given/);
    expect(() => openStorage('ftp://h/p')).toThrow(/Supported: a local path, file:\/\/\/absolute\/path, s3:\/\/bucket\/prefix, azure:\/\/container\/prefix, gs:\/\/bucket\/prefix\./);
  });

  it('serves a backend added with one registration, by URL and by variables, wrapped with its retry settings', async () => {
    const faults: FaultStorage[] = [];
    registerStorageBackend<{ root: string }>({
      schemes: ['flaky', 'flaky+fs'],
      form: 'flaky://name',
      parse: (url) => ({ root: join(dir, new URL(url).hostname) }),
      open: ({ root }) => {
        const f = new FaultStorage(new FileSystemStorage(root), { rate: 0.5, seed: 3, kinds: ['fail'] });
        faults.push(f);
        return f;
      },
      retry: () => ({ attempts: 20, baseDelayMs: 1, maxDelayMs: 2 }),
      env: { select: 'BACKUP_FLAKY_NAME', what: 'name', companions: ['BACKUP_FLAKY_MODE'], read: (name) => ({ root: join(dir, name) }) },
    });
    const s = openStorage('FLAKY+fs://one');
    expect(s).toBeInstanceOf(RetryStorage);
    for (let i = 0; i < 10; i++) await s.put(`k${i}`, Buffer.from(`v${i}`));
    expect((await s.get('k9')).toString()).toBe('v9');
    expect(faults[0]!.stats().faults.fail).toBeGreaterThan(0);

    const fromEnv = storageFromEnv({ BACKUP_FLAKY_NAME: 'one' })!;
    expect((await fromEnv.get('k3')).toString()).toBe('v3');
    expect(() => storageFromEnv({ BACKUP_FLAKY_MODE: 'x' })).toThrow(/BACKUP_FLAKY_MODE is set but BACKUP_FLAKY_NAME is not/);
    expect(() => storageFromEnv({ BACKUP_FLAKY_NAME: 'a', BACKUP_S3_BUCKET: 'b' })).toThrow(/Several repositories .*BACKUP_S3_BUCKET, BACKUP_FLAKY_NAME/);
    expect(() => openStorage('ftp://h/p')).toThrow(/gs:\/\/bucket\/prefix, flaky:\/\/name\./);
    expect(() => registerStorageBackend({ schemes: ['s3'], form: 'x', parse: () => 0, open: () => s, retry: false })).toThrow(/registered twice/);
  });
});
