/**
 * makeDirsSync (src/core/folders.ts): mkdir -p one folder at a time, never Node's recursive
 * mkdir (which spins for ever under /proc): what it creates, what it returns, how it fails.
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { StorageError } from '../../src/core/errors.js';
import { makeDirsSync } from '../../src/core/folders.js';

const root = mkdtempSync(join(tmpdir(), 'cairn-folders-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('makeDirsSync', () => {
  it('creates every missing folder with the mode and returns the first one created; undefined when it existed', () => {
    const deep = join(root, 'a', 'b', 'c');
    expect(makeDirsSync(deep, 0o700)).toBe(join(root, 'a'));
    expect(statSync(deep).isDirectory()).toBe(true);
    expect(statSync(join(root, 'a', 'b')).mode & 0o077).toBe(0);
    expect(makeDirsSync(deep, 0o700)).toBeUndefined();
  });

  it('fails with a StorageError naming the folder: under a regular file, and under /proc', () => {
    const file = join(root, 'file');
    writeFileSync(file, 'x');
    expect(() => makeDirsSync(join(file, 'sub'), 0o700)).toThrow(StorageError);
    expect(() => makeDirsSync('/proc/x/y', 0o700)).toThrow(/Cannot create the folder \/proc\/x/);
  });
});
