import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, utimes, writeFile, readFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LockedError, StorageError } from '../../src/core/errors.js';
import { currentProcessIdentity, processStartTicks } from '../../src/core/process.js';
import type { LockDocument } from '../../src/core/schemas.js';
import {
  LOCKS_PREFIX,
  RepositoryLock,
  STALE_AFTER_MS,
  isStale,
  listLocks,
  removeLocks,
  removeStaleLocks,
  type LockHolder,
} from '../../src/repo/lock.js';
import { encodeMetadata } from '../../src/repo/metadata.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import type { ObjectInfo, Storage } from '../../src/storage/types.js';
import { PROJECT_ROOT, cairn } from '../helpers/cli.js';

let dir: string;
let root: string;
let storage: FileSystemStorage;
const children: ChildProcess[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cairn-lock-'));
  root = join(dir, 'repo');
  storage = new FileSystemStorage(root);
});
afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

const MIN = 60_000;

/** Makes the storage's time of an object `ms` older, as if its writer stopped refreshing that long ago. */
async function age(key: string, ms: number): Promise<void> {
  const t = new Date(Date.now() - ms);
  await utimes(join(root, ...key.split('/')), t, t);
}

/** A lock document as another process would write it. */
function foreignDoc(overrides: Partial<LockDocument> = {}): LockDocument {
  const at = new Date().toISOString();
  return { exclusive: false, operation: 'backup elsewhere', hostname: 'some-other-host', pid: 4242, createdAt: at, refreshedAt: at, ...overrides };
}

async function putDoc(key: string, doc: unknown): Promise<void> {
  await storage.put(key, encodeMetadata(doc));
}

function holder(doc: LockDocument, modified = new Date()): LockHolder {
  return { key: 'locks/x', modified, doc };
}

function withAbort(signal: AbortSignal): Promise<unknown> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve(signal.reason);
    signal.addEventListener('abort', () => resolve(signal.reason), { once: true });
  });
}

const DIST_LOCK = join(PROJECT_ROOT, 'dist/repo/lock.js');
const DIST_FS = join(PROJECT_ROOT, 'dist/storage/fs.js');

/**
 * A child process (the built code, as cairn runs) that takes a lock on `root`, prints its key and
 * pid as JSON, then holds it until killed ("hold") or simply ends without releasing ("exit").
 */
function childHolderCode(): string {
  return `
    const [root, exclusive, mode] = process.argv.slice(-3);
    const { FileSystemStorage } = await import(${JSON.stringify(DIST_FS)});
    const { RepositoryLock } = await import(${JSON.stringify(DIST_LOCK)});
    const lock = await RepositoryLock.acquire(new FileSystemStorage(root), { exclusive: exclusive === 'true', operation: 'child holder' });
    console.log(JSON.stringify({ key: lock.key, pid: process.pid }));
    if (mode === 'hold') setInterval(() => undefined, 1 << 30);
  `;
}

function startHolder(prefixArgs: string[], exclusive: boolean, mode: 'hold' | 'exit'): { child: ChildProcess; ready: Promise<{ key: string; pid: number }> } {
  if (!existsSync(DIST_LOCK)) throw new Error(`${DIST_LOCK} is missing: run "npm run build" first (npm test does).`);
  const [cmd, ...pre] = prefixArgs.length > 0 ? prefixArgs : [process.execPath];
  const args = [...pre, ...(prefixArgs.length > 0 ? [process.execPath] : []), '--input-type=module', '-e', childHolderCode(), root, String(exclusive), mode];
  const child = spawn(cmd as string, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  let err = '';
  const ready = new Promise<{ key: string; pid: number }>((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) resolve(JSON.parse(line) as { key: string; pid: number });
    });
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => reject(new Error(`lock holder exited ${code} before holding the lock: ${err}`)));
  });
  return { child, ready };
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
    else child.on('exit', (code) => resolve(code));
  });
}

describe('lock documents', () => {
  it('record host, pid, process start time, boot id, PID namespace and a stable lock id', async () => {
    const lock = await RepositoryLock.acquire(storage, { exclusive: false, operation: 'backup' });
    const [held] = await listLocks(storage);
    const self = currentProcessIdentity();
    expect(held?.key).toBe(lock.key);
    expect(lock.key).toBe(`${LOCKS_PREFIX}${lock.lockId}`);
    expect(held?.doc).toMatchObject({ hostname: hostname(), pid: process.pid, lockId: lock.lockId, exclusive: false, operation: 'backup' });
    // On Linux these come from /proc; the suite runs on Linux.
    expect(held?.doc?.processStart).toBe(processStartTicks(process.pid));
    expect(held?.doc?.processStart).toMatch(/^\d+$/);
    expect(held?.doc?.bootId).toBe((await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim());
    expect(held?.doc?.pidNamespace).toMatch(/^pid:\[\d+\]$/);
    expect(held?.doc?.pidNamespace).toBe(self.pidNamespace);
    await lock.release();
    expect(await listLocks(storage)).toEqual([]);
  });

  it('reads a lock document of the old format (no process identity)', async () => {
    await putDoc('locks/old', foreignDoc({ hostname: hostname() }));
    const [old] = await listLocks(storage);
    expect(old?.doc?.operation).toBe('backup elsewhere');
    expect(old?.problem).toBeUndefined();
  });
});

describe('staleness', () => {
  it('never takes a refreshing holder whose clock is 15 minutes behind for stale', async () => {
    const skewed = () => new Date(Date.now() - 15 * MIN);
    const lock = await RepositoryLock.acquire(storage, { exclusive: false, operation: 'backup on a slow clock', now: skewed });
    const [held] = await listLocks(storage);
    // The document says 15 minutes ago; the storage says just now.
    expect(Date.now() - Date.parse(held?.doc?.refreshedAt ?? '')).toBeGreaterThan(14 * MIN);
    await expect(RepositoryLock.acquire(storage, { exclusive: true, operation: 'prune' })).rejects.toThrow(/locked by "backup on a slow clock"/);
    expect(await removeStaleLocks(storage)).toBe(0);
    expect((await listLocks(storage)).map((l) => l.key)).toEqual([lock.key]);
    await lock.release();
  });

  it('takes a lock for stale when the storage last wrote it longer ago than the stale age', async () => {
    await putDoc('locks/abandoned', foreignDoc({ exclusive: true }));
    await expect(RepositoryLock.acquire(storage, { exclusive: false, operation: 'backup' })).rejects.toBeInstanceOf(LockedError);
    await age('locks/abandoned', STALE_AFTER_MS - MIN);
    await expect(RepositoryLock.acquire(storage, { exclusive: false, operation: 'backup' })).rejects.toBeInstanceOf(LockedError);
    await age('locks/abandoned', STALE_AFTER_MS + MIN);
    const lock = await RepositoryLock.acquire(storage, { exclusive: true, operation: 'prune' });
    expect(await removeStaleLocks(storage, { lock })).toBe(1);
    expect((await listLocks(storage)).map((l) => l.key)).toEqual([lock.key]);
    await lock.release();
  });

  it('keeps a holder that refreshes alive past the stale age, and lets an abandoned lock expire', async () => {
    // Generous for a loaded machine: the holder gives up only after 1 s without a successful write.
    const timing = { refreshIntervalMs: 50, staleAfterMs: 2000 };
    const live = await RepositoryLock.acquire(storage, { exclusive: true, operation: 'live prune', ...timing });
    await putDoc('locks/abandoned', foreignDoc());
    const started = Date.now();
    // Past the stale age: the live holder's lock must block every attempt.
    while (Date.now() - started < 1.25 * timing.staleAfterMs) {
      await expect(RepositoryLock.acquire(storage, { exclusive: false, operation: 'backup', ...timing })).rejects.toThrow(/locked by "live prune"/);
    }
    expect(live.signal.aborted).toBe(false);
    await live.release();
    // The abandoned one was written > 2.5 s ago on the storage's clock: stale by age now.
    const lock = await RepositoryLock.acquire(storage, { exclusive: true, operation: 'prune', ...timing });
    expect(await removeStaleLocks(storage, { lock, staleAfterMs: timing.staleAfterMs })).toBe(1);
    await lock.release();
  });

  it('proves a holder dead only on the same host, boot and PID namespace, by pid and start time', () => {
    const self = currentProcessIdentity();
    const mine: LockDocument = {
      ...foreignDoc(),
      hostname: self.hostname,
      pid: self.pid,
      processStart: self.startTicks,
      bootId: self.bootId,
      pidNamespace: self.pidNamespace,
    };
    const deadPid = 2 ** 22 + 4321; // above Linux's pid_max
    const otherStart = String(BigInt(self.startTicks ?? '0') + 1n);
    expect(isStale(holder(mine), new Date())).toBe(false); // ourselves
    expect(isStale(holder({ ...mine, pid: deadPid }), new Date())).toBe(true); // pid gone
    expect(isStale(holder({ ...mine, processStart: otherStart }), new Date())).toBe(true); // pid reused by us
    const initStart = processStartTicks(1);
    expect(initStart).toMatch(/^\d+$/);
    expect(isStale(holder({ ...mine, pid: 1, processStart: String(BigInt(initStart ?? '0') + 7n) }), new Date())).toBe(true); // reused pid, alive
    expect(isStale(holder({ ...mine, pid: 1, processStart: initStart }), new Date())).toBe(false); // that very process
    // Not proof: any of host, boot or namespace differs, or the document has no process identity.
    expect(isStale(holder({ ...mine, pid: deadPid, hostname: 'elsewhere' }), new Date())).toBe(false);
    expect(isStale(holder({ ...mine, pid: deadPid, bootId: 'another-boot' }), new Date())).toBe(false);
    expect(isStale(holder({ ...mine, pid: deadPid, pidNamespace: 'pid:[4026599999]' }), new Date())).toBe(false);
    const { processStart: _s, bootId: _b, pidNamespace: _n, ...oldFormat } = { ...mine, pid: deadPid };
    expect(isStale(holder(oldFormat), new Date())).toBe(false);
    // …until the storage says it was not refreshed for the stale age.
    expect(isStale(holder(oldFormat, new Date(0)), new Date(STALE_AFTER_MS + 1))).toBe(true);
  });

  it('an old-format lock of a dead pid on this host blocks until it is stale by storage time', async () => {
    await putDoc('locks/old', foreignDoc({ hostname: hostname(), pid: 2 ** 22 + 99, exclusive: true, operation: 'old prune' }));
    await expect(RepositoryLock.acquire(storage, { exclusive: false, operation: 'backup' })).rejects.toThrow(/locked by "old prune"/);
    await age('locks/old', STALE_AFTER_MS + MIN);
    const lock = await RepositoryLock.acquire(storage, { exclusive: false, operation: 'backup' });
    await lock.release();
  });

  it('removes the lock of a killed process on this host at once (proof), not waiting for the stale age', async () => {
    const h = startHolder([], true, 'hold');
    const { key, pid } = await h.ready;
    await expect(RepositoryLock.acquire(storage, { exclusive: false, operation: 'backup' })).rejects.toThrow(/locked by "child holder"/);
    h.child.kill('SIGKILL');
    await exited(h.child);
    expect((await listLocks(storage)).find((l) => l.key === key)?.doc?.pid).toBe(pid);
    const lock = await RepositoryLock.acquire(storage, { exclusive: true, operation: 'prune' });
    expect(await removeStaleLocks(storage, { lock })).toBe(1);
    await lock.release();
  });

  const unshareProbe = spawnSync('unshare', ['--pid', '--fork', '--mount-proc', '--kill-child', 'true'], { encoding: 'utf8' });
  const unshareMissing = unshareProbe.status === 0 ? undefined : (unshareProbe.stderr || unshareProbe.error?.message || `exit ${unshareProbe.status}`).trim();

  for (const mountProc of [true, false]) {
    const how = mountProc ? 'unshare --pid --fork --mount-proc' : 'unshare --pid --fork (the host\'s /proc)';
    it(`never takes a running holder in another PID namespace with the same hostname for dead (${how})`, async () => {
      let key: string;
      if (!unshareMissing) {
        const h = startHolder(['unshare', '--pid', '--fork', ...(mountProc ? ['--mount-proc'] : []), '--kill-child'], false, 'hold');
        const ready = await h.ready;
        key = ready.key;
        // pid 1 in its namespace; here pid 1 is init, alive with another start time. Only the
        // namespace tells them apart.
        expect(ready.pid).toBe(1);
        const [held] = await listLocks(storage);
        // Without its own /proc, /proc/1 would be our init: no start time is recorded then.
        if (mountProc) expect(held?.doc?.processStart).toMatch(/^\d+$/);
        else expect(held?.doc?.processStart).toBeUndefined();
      } else {
        console.info(`[lock.test] unshare --pid is not available here (${unshareMissing}): using a constructed lock document of another PID namespace`);
        const self = currentProcessIdentity();
        key = 'locks/in-container';
        await putDoc(key, { ...foreignDoc({ hostname: self.hostname, pid: 1 }), processStart: '1', bootId: self.bootId, pidNamespace: 'pid:[4026599999]' });
      }
      const [held] = await listLocks(storage);
      expect(held?.doc?.hostname).toBe(hostname());
      expect(held?.doc?.bootId).toBe(currentProcessIdentity().bootId);
      expect(held?.doc?.pidNamespace).not.toBe(currentProcessIdentity().pidNamespace);
      await expect(RepositoryLock.acquire(storage, { exclusive: true, operation: 'prune' })).rejects.toThrow(/locked by "child holder"|locked by "backup elsewhere"/);
      expect(await removeStaleLocks(storage)).toBe(0);
      expect((await listLocks(storage)).map((l) => l.key)).toEqual([key]);
    });
  }

  it('inside a PID namespace without its own /proc, proves nothing dead (its /proc/<pid> is another process)', async (ctx) => {
    if (unshareMissing) {
      console.info(`[lock.test] skipping: unshare --pid is not available here (${unshareMissing})`);
      ctx.skip();
      return;
    }
    // A holder and an observer in one new namespace that still sees the host's /proc.
    const holderFile = join(dir, 'holder.mjs');
    const observerFile = join(dir, 'observer.mjs');
    await writeFile(holderFile, childHolderCode());
    await writeFile(
      observerFile,
      `const [root] = process.argv.slice(2);
       const { FileSystemStorage } = await import(${JSON.stringify(DIST_FS)});
       const { listLocks, isStale } = await import(${JSON.stringify(DIST_LOCK)});
       const { currentProcessIdentity } = await import(${JSON.stringify(join(PROJECT_ROOT, 'dist/core/process.js'))});
       const s = new FileSystemStorage(root);
       let locks = [];
       for (let i = 0; i < 400 && locks.length === 0; i++) {
         locks = await listLocks(s);
         if (locks.length === 0) await new Promise((r) => setTimeout(r, 25));
       }
       console.log(JSON.stringify({ self: currentProcessIdentity(), locks: locks.map((l) => ({ pid: l.doc?.pid, stale: isStale(l, l.modified) })) }));`,
    );
    const node = process.execPath;
    const script = `"${node}" "${holderFile}" "$1" false hold & "${node}" "${observerFile}" "$1"; kill $!`;
    const r = spawnSync('unshare', ['--pid', '--fork', '--kill-child', 'sh', '-c', script, 'sh', root], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.status, r.stderr).toBe(0);
    // The observer's line: the holder may print after it (it is killed only once the observer ends).
    const line = r.stdout.split('\n').find((l) => l.startsWith('{"self":'));
    expect(line, r.stdout).toBeDefined();
    const out = JSON.parse(line ?? '{}') as { self: { pid: number; startTicks?: string }; locks: { pid: number; stale: boolean }[] };
    expect(out.self.startTicks).toBeUndefined();
    expect(out.locks).toHaveLength(1);
    expect(out.locks[0]?.pid).not.toBe(out.self.pid);
    expect(out.locks[0]?.stale).toBe(false);
  });
});

describe('unreadable locks', () => {
  const valid = encodeMetadata(foreignDoc());
  const cases: [string, Buffer][] = [
    ['garbage', Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00, 0x01])],
    ['torn JSON', Buffer.from('{"exclusive":false,"operation":"bac')],
    ['torn zstd', valid.subarray(0, Math.floor(valid.length / 2))],
    ['empty', Buffer.alloc(0)],
    ['wrong schema', Buffer.from(JSON.stringify({ hello: 'world' }))],
    ['far too large', Buffer.alloc(200 * 1024, 0x20)],
  ];
  for (const [what, bytes] of cases) {
    it(`blocks shared and exclusive lockers (${what}) until stale by storage age, then is removed`, async () => {
      await storage.put('locks/damaged', bytes);
      for (const exclusive of [false, true]) {
        const err = await RepositoryLock.acquire(storage, { exclusive, operation: 'x' }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(LockedError);
        expect((err as Error).message).toMatch(/unreadable lock locks\/damaged .*cairn unlock.*expires at \d{4}-/s);
      }
      expect(await removeStaleLocks(storage)).toBe(0);
      await age('locks/damaged', STALE_AFTER_MS + MIN);
      const lock = await RepositoryLock.acquire(storage, { exclusive: true, operation: 'prune' });
      expect(await removeStaleLocks(storage, { lock })).toBe(1);
      expect((await listLocks(storage)).map((l) => l.key)).toEqual([lock.key]);
      await lock.release();
    });
  }

  it('reads a lock again when a read raced its rewrite (shorter than listed), not calling it unreadable', async () => {
    await putDoc('locks/refreshing', foreignDoc({ operation: 'refreshing backup' }));
    await storage.put('locks/damaged', Buffer.from('{"exclusive":tr'));
    const reads = new Map<string, number>();
    // As s3rver does while an object is overwritten: the first read of the live lock is cut short.
    const tearing: Storage = Object.assign(Object.create(storage) as FileSystemStorage, {
      async get(key: string): Promise<Buffer> {
        const n = (reads.get(key) ?? 0) + 1;
        reads.set(key, n);
        const bytes = await storage.get(key);
        return key === 'locks/refreshing' && n <= 2 ? bytes.subarray(0, n === 1 ? 0 : 7) : bytes;
      },
    });
    const locks = await listLocks(tearing);
    expect(locks.find((l) => l.key === 'locks/refreshing')?.doc?.operation).toBe('refreshing backup');
    expect(locks.find((l) => l.key === 'locks/damaged')?.problem).toMatch(/cannot be read/);
    expect(reads.get('locks/refreshing')).toBe(3);
    // Damaged for good, at its listed size: read twice, then reported.
    expect(reads.get('locks/damaged')).toBe(2);
  });

  it('ignores a lock removed between listing and reading', async () => {
    await putDoc('locks/leaving', foreignDoc({ exclusive: true }));
    // The holder releases right after the listing saw its lock.
    const racing: Storage = Object.assign(Object.create(storage) as FileSystemStorage, {
      async *list(prefix: string): AsyncIterable<ObjectInfo> {
        for await (const o of storage.list(prefix)) {
          if (o.key === 'locks/leaving') await storage.delete(o.key);
          yield o;
        }
      },
    });
    const lock = await RepositoryLock.acquire(racing, { exclusive: true, operation: 'prune' });
    expect((await listLocks(storage)).map((l) => l.key)).toEqual([lock.key]);
    await lock.release();
  });
});

describe('refresh and loss', () => {
  it('rewrites the lock in place: same key, later storage time', async () => {
    const lock = await RepositoryLock.acquire(storage, { exclusive: false, operation: 'backup', refreshIntervalMs: 20, staleAfterMs: 5_000 });
    const [first] = await listLocks(storage);
    let now = first;
    const deadline = Date.now() + 5_000;
    while (now && first && now.modified.getTime() <= first.modified.getTime() && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
      [now] = await listLocks(storage);
    }
    expect(now?.key).toBe(lock.key);
    expect(now?.modified.getTime()).toBeGreaterThan(first?.modified.getTime() ?? Infinity);
    expect(now?.doc?.lockId).toBe(first?.doc?.lockId);
    expect(Date.parse(now?.doc?.refreshedAt ?? '')).toBeGreaterThanOrEqual(Date.parse(first?.doc?.refreshedAt ?? ''));
    expect(await listLocks(storage)).toHaveLength(1);
    await lock.release();
    expect(await listLocks(storage)).toEqual([]);
  });

  it('release during a refresh leaves no lock, even when an aborted write would still land at the store', async () => {
    // CI, azurite under load: release() aborted the refresh's put, deleted the object, and the
    // aborted request reached the store afterwards: a lock object outlived its holder.
    const landings: Promise<void>[] = [];
    let refreshing!: () => void;
    const refreshStarted = new Promise<void>((r) => (refreshing = r));
    let puts = 0;
    const store = Object.create(storage) as Storage;
    store.put = (key, data, options) => {
      if (++puts === 1) return storage.put(key, data); // the acquisition's write
      refreshing();
      // The store gets the request and writes it 150 ms later, whatever the caller does meanwhile.
      const landed = new Promise<void>((r) => setTimeout(r, 150)).then(() => storage.put(key, data));
      landings.push(landed);
      return new Promise<void>((resolve, reject) => {
        options?.signal?.addEventListener('abort', () => reject(options.signal?.reason), { once: true });
        landed.then(resolve, reject);
      });
    };
    const lock = await RepositoryLock.acquire(store, { exclusive: false, operation: 'backup', refreshIntervalMs: 20, staleAfterMs: 5_000 });
    await refreshStarted;
    await lock.release();
    await Promise.all(landings);
    expect(await listLocks(storage)).toEqual([]);
  });

  it('is lost when its lock object vanishes: the signal aborts with a LockedError', async () => {
    const lock = await RepositoryLock.acquire(storage, { exclusive: false, operation: 'backup', refreshIntervalMs: 20, staleAfterMs: 5_000 });
    const aborted = withAbort(lock.signal);
    await removeLocks(storage, { all: true });
    const reason = await aborted;
    expect(reason).toBeInstanceOf(LockedError);
    expect((reason as Error).message).toMatch(/Lost the shared lock locks\/\w+ .*removed.*operation was stopped/s);
    expect(lock.lost).toBe(true);
    await lock.release();
  });

  it('assertHeld: passes while held, throws the LockedError once the object is gone or the lock released', async () => {
    const lock = await RepositoryLock.acquire(storage, { exclusive: false, operation: 'backup', refreshIntervalMs: 60_000, staleAfterMs: 600_000 });
    await lock.assertHeld();
    await storage.delete(lock.key);
    // Noticed at once, not at the next refresh a minute later.
    await expect(lock.assertHeld()).rejects.toThrow(/Lost the shared lock .*removed/);
    expect(lock.signal.aborted).toBe(true);
    expect(lock.signal.reason).toBeInstanceOf(LockedError);
    await lock.release();
    await expect(lock.assertHeld()).rejects.toThrow(/already released/);
  });

  it('is lost when refreshing keeps failing for half the stale age', async () => {
    const timing = { refreshIntervalMs: 20, staleAfterMs: 2000 };
    const locksDir = join(root, 'locks');
    let store: Storage = storage;
    let failing = false;
    // The storage refuses every write into locks/ from now on (the lock object itself stays, so
    // the refresh finds it): the immutable attribute stops even root. Where chattr is not
    // available, the storage's put fails the same way through a wrapper.
    const immutable = () => spawnSync('chattr', ['+i', locksDir], { encoding: 'utf8' });
    const probe = spawnSync('chattr', ['-i', dir], { encoding: 'utf8' });
    const chattr = probe.status === 0;
    if (!chattr) {
      console.info(`[lock.test] chattr is not usable here (${(probe.stderr || probe.error?.message || '').trim()}): failing writes through a Storage wrapper`);
      store = Object.assign(Object.create(storage) as FileSystemStorage, {
        put: (key: string, data: Uint8Array) => (failing ? Promise.reject(new StorageError(`Cannot write ${key}: permission denied (injected).`)) : storage.put(key, data)),
      });
    }
    const lock = await RepositoryLock.acquire(store, { exclusive: true, operation: 'prune', ...timing });
    try {
      const started = performance.now();
      const aborted = withAbort(lock.signal);
      if (chattr) expect(immutable().status).toBe(0);
      failing = true;
      const reason = await aborted;
      const after = performance.now() - started;
      expect(reason).toBeInstanceOf(LockedError);
      expect((reason as Error).message).toMatch(/could not be refreshed for \d+ s: .*(not permitted|permission denied)/is);
      // Not at the first failure (20 ms in) but about half the stale age after the last success,
      // and before anyone could take it for stale.
      expect(after).toBeGreaterThanOrEqual(timing.staleAfterMs / 4);
      expect(after).toBeLessThan(timing.staleAfterMs);
    } finally {
      if (chattr) spawnSync('chattr', ['-i', locksDir]);
      failing = false;
      await lock.release();
    }
    expect(await listLocks(storage)).toEqual([]);
  });

  it('is lost when this process stalled for half the stale age (others may have taken it for stale)', async () => {
    const lock = await RepositoryLock.acquire(storage, { exclusive: false, operation: 'backup', refreshIntervalMs: 20, staleAfterMs: 400 });
    const aborted = withAbort(lock.signal);
    // Synchronous work that blocks the event loop, as a long hash or a suspended VM would.
    const until = performance.now() + 260;
    while (performance.now() < until) {
      /* busy */
    }
    expect((await aborted) as Error).toBeInstanceOf(LockedError);
    expect((lock.signal.reason as Error).message).toMatch(/could not be refreshed for/);
    await lock.release();
    expect(await listLocks(storage)).toEqual([]);
  });

  it('leaves no lock behind when released while a refresh is being written', async () => {
    for (let i = 0; i < 20; i++) {
      const lock = await RepositoryLock.acquire(storage, { exclusive: false, operation: `r${i}`, refreshIntervalMs: 1, staleAfterMs: 5_000 });
      await new Promise((r) => setTimeout(r, i % 5));
      await lock.release();
    }
    expect(await listLocks(storage)).toEqual([]);
  });

  it('does not keep a process alive: a holder that ends without release exits at once', async () => {
    const h = startHolder([], false, 'exit');
    const started = Date.now();
    const { key } = await h.ready;
    expect(await exited(h.child)).toBe(0);
    expect(Date.now() - started).toBeLessThan(30_000); // the refresh interval is 60 s
    expect((await listLocks(storage)).map((l) => l.key)).toEqual([key]);
  });
});

describe('exclusion', () => {
  it('never lets two racing exclusive lockers both win', async () => {
    let bothWon = 0;
    let oneWon = 0;
    for (let round = 0; round < 30; round++) {
      const results = await Promise.allSettled([
        RepositoryLock.acquire(storage, { exclusive: true, operation: 'a' }),
        RepositoryLock.acquire(storage, { exclusive: true, operation: 'b' }),
      ]);
      const won = results.filter((r): r is PromiseFulfilledResult<RepositoryLock> => r.status === 'fulfilled');
      if (won.length === 2) bothWon++;
      if (won.length === 1) oneWon++;
      for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(LockedError);
      for (const w of won) await w.value.release();
    }
    expect(bothWon).toBe(0);
    console.info(`[lock.test] racing exclusive lockers: one won in ${oneWon} of 30 rounds, neither in ${30 - oneWon}`);
    expect(await listLocks(storage)).toEqual([]);
  });

  it('waits for a lock with waitMs, and never lets two waiting exclusive holders overlap', async () => {
    const first = await RepositoryLock.acquire(storage, { exclusive: true, operation: 'first' });
    await expect(RepositoryLock.acquire(storage, { exclusive: false, operation: 'impatient' })).rejects.toBeInstanceOf(LockedError);
    const started = Date.now();
    await expect(RepositoryLock.acquire(storage, { exclusive: false, operation: 'gives up', waitMs: 400 })).rejects.toThrow(/locked by "first"/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    const releasing = new Promise<void>((resolve) => setTimeout(() => void first.release().then(resolve), 300));
    const patient = await RepositoryLock.acquire(storage, { exclusive: false, operation: 'patient', waitMs: 10_000 });
    await releasing;
    await patient.release();

    // Four workers, each taking the exclusive lock three times: their holding times never overlap.
    const spans: [number, number][] = [];
    await Promise.all(
      Array.from({ length: 4 }, async (_, w) => {
        for (let i = 0; i < 3; i++) {
          const lock = await RepositoryLock.acquire(storage, { exclusive: true, operation: `worker ${w}`, waitMs: 30_000 });
          const from = performance.now();
          await new Promise((r) => setTimeout(r, 5));
          const to = performance.now();
          await lock.release();
          spans.push([from, to]);
        }
      }),
    );
    spans.sort((a, b) => a[0] - b[0]);
    expect(spans).toHaveLength(12);
    for (let i = 1; i < spans.length; i++) expect(spans[i]?.[0]).toBeGreaterThan(spans[i - 1]?.[1] ?? Infinity);
  });

  it('storageNow: the storage time of a write made now', async () => {
    const lock = await RepositoryLock.acquire(storage, { exclusive: true, operation: 'prune' });
    await storage.put('data/probe', Buffer.from('x'));
    let written = new Date(0);
    for await (const o of storage.list('data/')) written = o.modified;
    const now = await lock.storageNow();
    expect(now.getTime()).toBeGreaterThanOrEqual(written.getTime());
    expect(now.getTime() - written.getTime()).toBeLessThan(60_000);
    await lock.release();
    await expect(lock.storageNow()).rejects.toThrow(/already released/);
  });

  it('removes every lock but its own with --remove-all, only stale ones without', async () => {
    await putDoc('locks/live', foreignDoc());
    await storage.put('locks/bad', Buffer.from('x'));
    expect(await removeLocks(storage)).toEqual([]);
    expect((await removeLocks(storage, { all: true })).sort()).toEqual(['locks/bad', 'locks/live']);
    expect(await listLocks(storage)).toEqual([]);
  });
});

describe('cairn unlock', () => {
  it('removes stale locks, and every lock with --remove-all; prune is blocked by an unreadable lock until then', async () => {
    expect(cairn(['repo', 'init', root]).code).toBe(0);
    await storage.put('locks/bad', Buffer.from('junk'));
    await putDoc('locks/live', foreignDoc());
    await putDoc('locks/old', foreignDoc({ operation: 'abandoned' }));
    await age('locks/old', STALE_AFTER_MS + MIN);
    const prune = cairn(['prune', '--repo', root]);
    expect(prune.code).toBe(5);
    expect(prune.stderr).toMatch(/locked by "backup elsewhere"|unreadable lock locks\/bad/);
    const stale = cairn(['unlock', '--repo', root]);
    expect(stale.code).toBe(0);
    expect(stale.stdout).toMatch(/Removed 1 lock: locks\/old\./);
    expect(stale.stdout).toMatch(/Still held: locks\/live, "backup elsewhere"/);
    expect(stale.stdout).toMatch(/Still there: locks\/bad, unreadable/);
    const all = cairn(['unlock', '--repo', root, '--remove-all', '--json']);
    expect(all.code).toBe(0);
    expect((JSON.parse(all.stdout) as { removed: string[] }).removed.sort()).toEqual(['locks/bad', 'locks/live']);
    expect(await listLocks(storage)).toEqual([]);
    expect(cairn(['prune', '--repo', root]).code).toBe(0);
  });
});
