/**
 * The issue-14 additions to a SQLite manifest (virtual tables, the database properties) are
 * hostile input too: edited manifests are refused before the target changes.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CorruptionError } from '../../src/core/errors.js';
import Database from '../../src/sources/sqlite/driver.js';
import { backupInto, collection, editManifest, restoreError } from '../helpers/hostile.js';

let tmp: string;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-sqlite-hostile-14-'));
});

afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

let n = 0;
async function hostile(edit: Parameters<typeof editManifest>[2]): Promise<{ err: unknown; target: string; before: Buffer }> {
  const dir = path.join(tmp, `case-${++n}`);
  fs.mkdirSync(dir);
  const src = path.join(dir, 'src.db');
  const db = new Database(src);
  db.pragma('user_version = 5');
  db.exec(`CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO docs VALUES (1, 'hello world');
    CREATE VIRTUAL TABLE f USING fts5(body); INSERT INTO f VALUES ('hello');`);
  db.close();
  const { repo, id, root } = await backupInto(dir, `sqlite://${src}`);
  editManifest(root, id, edit);
  // An existing target with a table the edit may aim at.
  const target = path.join(dir, 'target.db');
  const t = new Database(target);
  t.exec(`CREATE TABLE f_keep (block, id); INSERT INTO f_keep VALUES (1, 2); CREATE VIRTUAL TABLE f USING fts5(body);`);
  t.close();
  const before = fs.readFileSync(target);
  return { err: await restoreError(repo, id, `sqlite://${target}`, 'overwrite'), target, before };
}

describe('edited virtual table and database definitions are refused, the target untouched', () => {
  it.each([
    ['a module that is not one of SQLite own (dbstat)', "CREATE VIRTUAL TABLE f USING dbstat(main)"],
    ['sqlite_dbpage, which writes pages', 'CREATE VIRTUAL TABLE f USING sqlite_dbpage'],
    ['a second statement', "CREATE VIRTUAL TABLE f USING fts5(body); DROP TABLE docs"],
    ['another name', 'CREATE VIRTUAL TABLE g USING fts5(body)'],
    ['FTS4 compress=, which calls a function on every row', "CREATE VIRTUAL TABLE f USING fts4(body, compress=hex, uncompress=hex)"],
  ])('%s', async (_what, sql) => {
    const { err, target, before } = await hostile((m) => {
      const def = collection(m, 'f').definition as { sql: string; module: string };
      def.sql = sql;
    });
    expect(err).toBeInstanceOf(CorruptionError);
    expect(fs.readFileSync(target).equals(before)).toBe(true);
  });

  it('a shadow table suffix aimed at an existing table of the target', async () => {
    const { err, target, before } = await hostile((m) => {
      const def = collection(m, 'f').definition as { shadows: { suffix: string; columns: string[]; withoutRowid: boolean; rowidColumn: string | null }[] };
      def.shadows.push({ suffix: 'keep', columns: ['block', 'id'], withoutRowid: false, rowidColumn: null });
    });
    expect(err).toBeInstanceOf(CorruptionError);
    expect(String((err as Error).message)).toMatch(/did not create|does not create/);
    expect(fs.readFileSync(target).equals(before)).toBe(true);
  });

  it("the database properties setting cairn's catalog mark, or out of range", async () => {
    for (const edit of [{ applicationId: 0x43524e43 }, { pageSize: 3000 }, { encoding: 'EBCDIC' }]) {
      const { err, target, before } = await hostile((m) => {
        Object.assign(collection(m, 'sqlite_database').definition, edit);
      });
      expect(err, JSON.stringify(edit)).toBeInstanceOf(CorruptionError);
      expect(fs.readFileSync(target).equals(before)).toBe(true);
    }
  });
});
