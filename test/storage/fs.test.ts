import { mkdir, mkdtemp, readdir, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StorageError } from '../../src/core/errors.js';
import { CLAIM_EXPIRY_MS, claimFolder, createExclusiveByClaims, removeClaims, removeExpiredClaims } from '../../src/storage/common.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { hostIdentity, ownerToken } from '../../src/core/owner.js';
import { spawnSync } from 'node:child_process';
import { describeStorageContract, listKeys as keys } from './contract.js';

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

describe('filesystem listing', () => {
  it('follows a symlinked data/xx folder (packs on another disk)', async () => {
    const root = join(dir, `sym-${++n}`);
    const s = new FileSystemStorage(root);
    await s.put('data/aa/aa01', Buffer.from('a'));
    const elsewhere = join(dir, `other-disk-${n}`);
    await mkdir(elsewhere, { recursive: true });
    await writeFile(join(elsewhere, 'bb01'), 'b');
    await writeFile(join(elsewhere, 'bb02'), 'bb');
    await symlink(elsewhere, join(root, 'data', 'bb'));
    // A symlinked file is an object too.
    await writeFile(join(dir, `idx-${n}`), 'i');
    await mkdir(join(root, 'index'));
    await symlink(join(dir, `idx-${n}`), join(root, 'index', 'i1'));
    expect(await keys(s, 'data/')).toEqual(['data/aa/aa01', 'data/bb/bb01', 'data/bb/bb02']);
    expect(await keys(s, 'data/bb/')).toEqual(['data/bb/bb01', 'data/bb/bb02']);
    expect(await keys(s, '')).toEqual(['data/aa/aa01', 'data/bb/bb01', 'data/bb/bb02', 'index/i1']);
    const sizes = new Map<string, number>();
    for await (const o of s.list('data/bb/')) sizes.set(o.key, o.size);
    expect(sizes.get('data/bb/bb02')).toBe(2);
    expect((await s.get('data/bb/bb01')).toString()).toBe('b');
    await s.put('data/bb/bb03', Buffer.from('c'));
    expect(await keys(s, 'data/bb/')).toEqual(['data/bb/bb01', 'data/bb/bb02', 'data/bb/bb03']);
  });

  it('lists each folder once when symlinks form a loop', async () => {
    const root = join(dir, `loop-${++n}`);
    const s = new FileSystemStorage(root);
    await s.put('data/aa/aa01', Buffer.from('a'));
    await symlink(join(root, 'data'), join(root, 'data', 'aa', 'loop'));
    const listed = await keys(s, 'data/');
    expect(listed.filter((k) => k.endsWith('aa01'))).toHaveLength(1);
  });

  it('throws on a symlink whose target is missing (an unmounted disk) instead of leaving its objects out', async () => {
    const root = join(dir, `dangling-${++n}`);
    const s = new FileSystemStorage(root);
    await s.put('data/aa/aa01', Buffer.from('a'));
    await symlink(join(dir, 'not-mounted'), join(root, 'data', 'cc'));
    await expect(keys(s, 'data/')).rejects.toThrow(StorageError);
    await expect(keys(s, 'data/')).rejects.toThrow(/data\/cc" is a symbolic link to something that does not exist/);
    // Elsewhere the listing still works.
    expect(await keys(s, 'data/aa/')).toEqual(['data/aa/aa01']);
    // The folder listed itself a dangling link: not an empty listing either.
    await expect(keys(s, 'data/cc/')).rejects.toThrow(/data\/cc" is a symbolic link/);
    await symlink(join(dir, 'not-mounted-either'), join(root, 'index'));
    await expect(keys(s, 'index/')).rejects.toThrow(/"index" is a symbolic link/);
    expect(await keys(s, 'missing/')).toEqual([]);
  });

  it('throws when a folder on the way cannot be read, rather than listing nothing', async () => {
    const root = join(dir, `notdir-${++n}`);
    const s = new FileSystemStorage(root);
    await s.put('config', Buffer.from('c'));
    // "data" is a file where a folder must be: readdir fails with ENOTDIR.
    await writeFile(join(root, 'data'), 'x');
    await expect(keys(s, 'data/')).rejects.toThrow(StorageError);
    expect(await keys(s, 'missing/')).toEqual([]);
  });

  it('removes old temp files left by crashed writers, in linked folders too, and keeps young ones', async () => {
    const root = join(dir, `temps-${++n}`);
    const s = new FileSystemStorage(root);
    await s.put('data/aa/aa01', Buffer.from('a'));
    const elsewhere = join(dir, `temps-disk-${n}`);
    await mkdir(elsewhere);
    await symlink(elsewhere, join(root, 'data', 'bb'));
    const old = [join(root, 'data', 'aa', '.aa02.tmp-abc'), join(elsewhere, '.bb01.tmp-def')];
    const young = join(root, 'data', 'aa', '.aa03.tmp-ghi');
    for (const f of [...old, young]) await writeFile(f, 'partial');
    const twoHoursAgo = new Date(Date.now() - 2 * 3_600_000);
    for (const f of old) await utimes(f, twoHoursAgo, twoHoursAgo);
    expect(await s.removeStaleTempFiles(3_600_000)).toBe(2);
    expect(await readdir(join(root, 'data', 'aa'))).toEqual(['.aa03.tmp-ghi', 'aa01'].sort());
    expect(await readdir(elsewhere)).toEqual([]);
    expect(await readdir(root)).toEqual(['data']); // the clock probe is gone
  });

  it("removes a dead writer's temp file on the first write into its folder, and never a live writer's", async () => {
    const root = join(dir, 'owned-temps');
    await mkdir(join(root, 'data', 'ab'), { recursive: true });
    // A process that has exited: its pid and start time name it in the temp file.
    const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(require("fs").readFileSync("/proc/self/stat", "utf8"))'], { encoding: 'utf8' });
    const start = child.stdout.slice(child.stdout.lastIndexOf(')') + 2).split(' ')[19];
    const dead = `.abcd.tmp-${hostIdentity()}-${child.pid}-${start}-0a1b2c`;
    const live = `.abce.tmp-${ownerToken()}-0a1b2d`;
    const foreign = `.abcf.tmp-0000000000-${child.pid}-${start}-0a1b2e`; // another host: may be alive
    for (const name of [dead, live, foreign]) await writeFile(join(root, 'data', 'ab', name), 'partial');
    await new FileSystemStorage(root).put('data/ab/abcdef', Buffer.from('x'));
    expect((await readdir(join(root, 'data', 'ab'))).sort()).toEqual([live, foreign, 'abcdef'].sort());
  });

  it('claims: left beside the object, removed with removeClaims, expired ones by removeExpiredClaims', async () => {
    const root = join(dir, `claims-${++n}`);
    const s = new FileSystemStorage(root);
    await createExclusiveByClaims(s, 'backups/b1', Buffer.from('m1'));
    await createExclusiveByClaims(s, 'backups/b2', Buffer.from('m2'));
    expect(claimFolder('backups/b1')).toBe('claims/backups%2Fb1/');
    expect(await keys(s, 'claims/backups%2Fb1/')).toHaveLength(1);
    // A writer that died after claiming b3 blocks it (for a day): a writer waits for it (here
    // 1.5 s instead of CLAIM_WAIT_MS), whether its own claim sorts below the dead one or above.
    for (const dead of ['0', 'g']) {
      await s.put(`${claimFolder('backups/b3')}${dead}`, Buffer.from('{}'));
      const t0 = Date.now();
      await expect(createExclusiveByClaims(s, 'backups/b3', Buffer.from('m3'), undefined, 1500)).rejects.toThrow(/being created by another writer/);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(1500);
      expect(await keys(s, 'claims/backups%2Fb3/')).toEqual([`claims/backups%2Fb3/${dead}`]);
      if (dead === '0') await s.delete(`${claimFolder('backups/b3')}0`);
    }
    await s.put(`${claimFolder('backups/b3')}dead`, Buffer.from('{}'));
    await s.delete(`${claimFolder('backups/b3')}g`);
    await s.delete('backups/b1');
    await removeClaims(s, 'backups/b1');
    await createExclusiveByClaims(s, 'backups/b1', Buffer.from('again'));
    const old = new Date(Date.now() - CLAIM_EXPIRY_MS - 60_000);
    const deadClaim = join(root, 'claims', 'backups%2Fb3', 'dead');
    await utimes(deadClaim, old, old);
    expect(await removeExpiredClaims(s)).toEqual(['claims/backups%2Fb3/dead']);
    await createExclusiveByClaims(s, 'backups/b3', Buffer.from('m3'));
    expect((await s.get('backups/b3')).toString()).toBe('m3');
    expect(await keys(s, 'claims/')).toHaveLength(3);
  });
});
