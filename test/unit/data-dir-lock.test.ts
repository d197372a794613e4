/**
 * One job runner per data folder: the lock is the kernel's, so two processes racing for it
 * cannot both win, and it is gone with its holder.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LockedError } from '../../src/core/errors.js';
import { DataDirLock, lockFile } from '../../src/server/data-dir-lock.js';
import { CLI } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'cairn-datadir-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the data folder lock', () => {
  it('refuses a second holder (naming the first), and is free again once released', () => {
    const folder = join(dir, 'a');
    const first = DataDirLock.acquire(folder, 'cairn server');
    first.setUrl('http://127.0.0.1:1234');
    const err = (() => {
      try {
        DataDirLock.acquire(folder, 'cairn server');
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(LockedError);
    const escaped = folder.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    expect((err as Error).message).toMatch(
      new RegExp(
        `^The data folder ${escaped} is in use by cairn server \\(pid ${process.pid} on .+, since \\d{4}-.+Z, listening on http://127\\.0\\.0\\.1:1234\\): ` +
          'one cairn server per data folder; use that server \\(--server http://127\\.0\\.0\\.1:1234\\), stop it first, or give this one another --data-dir\\.$',
      ),
    );
    first.release();
    first.release(); // idempotent
    DataDirLock.acquire(folder, 'cairn server').release();
  });

  it('a lock file cairn did not write is named, not taken silently', () => {
    const folder = join(dir, 'foreign');
    DataDirLock.acquire(folder, 'x').release();
    writeFileSync(lockFile(folder), 'not a database, definitely not '.repeat(10));
    expect(() => DataDirLock.acquire(folder, 'cairn server')).toThrow(/server\.lock\.db is not the lock file cairn writes.*delete it/);
  });

  it('three servers started at once on one folder: exactly one listens, the others exit 5', async () => {
    const folder = join(dir, 'race');
    const start = () =>
      new Promise<{ listening: boolean; code: number | null; stderr: string; kill: () => void }>((resolve) => {
        const child = spawn(process.execPath, [CLI, 'server', '--listen', '127.0.0.1:0', '--data-dir', folder], { stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        child.stderr?.on('data', (d: Buffer) => {
          stderr += d.toString();
          if (/"msg":"cairn server listening on/.test(stderr)) resolve({ listening: true, code: null, stderr, kill: () => child.kill('SIGTERM') });
        });
        child.once('exit', (code) => resolve({ listening: false, code, stderr, kill: () => undefined }));
      });
    const results = await Promise.all([start(), start(), start()]);
    try {
      expect(results.filter((r) => r.listening)).toHaveLength(1);
      for (const r of results.filter((x) => !x.listening)) {
        expect(r.code, r.stderr).toBe(5);
        expect(r.stderr).toMatch(new RegExp(`The data folder ${folder} is in use by (cairn server \\(pid \\d+|another cairn process)`));
      }
    } finally {
      for (const r of results) r.kill();
    }
  }, 60_000);
});
