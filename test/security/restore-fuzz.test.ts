/**
 * Property tests (fast-check, fixed seed) over what the restore path reads from a repository or
 * a user: SQLite definitions (checker + runner against a real SQLite), the roles-script
 * splitter, PostgreSQL URLs and archive tables of contents. NUM_RUNS per property is the number
 * of hostile inputs each contributes (reported by the last test).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CorruptionError, UsageError } from '../../src/core/errors.js';
import { parsePostgresUrl, pgLocation, previewUrl } from '../../src/sources/postgres/connection.js';
import { roleStatements } from '../../src/sources/postgres/roles.js';
import { checkedToc } from '../../src/sources/postgres/target.js';
import { parseToc } from '../../src/sources/postgres/toc.js';
import Database from '../../src/sources/sqlite/driver.js';
import { quoteIdent } from '../../src/sources/sqlite/sql.js';
import { runDefinition } from '../../src/sources/sqlite/validate.js';

const SEED = 1212;
const NUM_RUNS = { definitions: 600, names: 300, roles: 1000, urls: 1000, tocs: 500 };
let dir: string;
let evil: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-sec-fuzz-'));
  evil = path.join(dir, 'evil.db');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Pieces of SQL an attacker would combine. */
const fragment = (): fc.Arbitrary<string> =>
  fc.constantFrom(
    ';',
    ' ',
    '\n',
    '\t',
    '\u00a0',
    '\uff1b',
    '\u0000',
    "'",
    '"',
    '`',
    '[',
    ']',
    '--',
    '/*',
    '*/',
    '(',
    ')',
    'END',
    'BEGIN',
    'main.',
    'temp.',
    'TEMP ',
    'IF NOT EXISTS ',
    `ATTACH '${'<evil>'}' AS x`,
    `VACUUM INTO '${'<evil>'}'`,
    'PRAGMA writable_schema = ON',
    'DETACH main',
    'CREATE TABLE t2(a)',
    'CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END',
    'SELECT 1',
    'INSERT INTO t VALUES (1)',
    "load_extension('x')",
    'x',
    't',
  );

const payload = (): fc.Arbitrary<string> => fc.array(fragment(), { minLength: 1, maxLength: 8 }).map((parts) => parts.join(''));

function freshDb(): InstanceType<typeof Database> {
  const db = new Database(':memory:');
  db.pragma('trusted_schema = OFF');
  db.exec('CREATE TABLE base (a)');
  return db;
}

describe('SQLite definitions (checker + runner against SQLite)', () => {
  it('a definition with hostile pieces inserted anywhere either creates exactly the expected object or is refused as CORRUPT; nothing is attached, no file appears', () => {
    const bases: { sql: string; kind: 'table' | 'index' | 'trigger' | 'view'; name: string; table?: string }[] = [
      { sql: 'CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)', kind: 'table', name: 't' },
      { sql: 'CREATE INDEX i ON base (a)', kind: 'index', name: 'i', table: 'base' },
      { sql: 'CREATE TRIGGER tr AFTER INSERT ON base BEGIN INSERT INTO base VALUES (1); END', kind: 'trigger', name: 'tr', table: 'base' },
      { sql: 'CREATE VIEW v AS SELECT a FROM base', kind: 'view', name: 'v' },
    ];
    fc.assert(
      fc.property(fc.constantFrom(...bases), fc.nat(), payload(), (base, at, extra) => {
        const where = at % (base.sql.length + 1);
        const sql = (base.sql.slice(0, where) + extra.replaceAll('<evil>', evil) + base.sql.slice(where)).slice(0, 2000);
        const db = freshDb();
        try {
          runDefinition(db, sql, { kind: base.kind, name: base.name, ...(base.table ? { table: base.table } : {}) }, 'c');
          // Accepted: exactly the object (plus automatic indexes) was created.
          const rows = db.prepare("SELECT type, name, tbl_name AS t FROM main.sqlite_schema WHERE name NOT LIKE 'sqlite_%' AND name <> 'base'").all() as { type: string; name: string; t: string }[];
          expect(rows).toEqual([{ type: base.kind, name: base.name, t: base.table ?? base.name }]);
        } catch (err) {
          expect(err).toBeInstanceOf(CorruptionError);
        }
        expect((db.prepare('PRAGMA database_list').all() as { name: string }[]).map((d) => d.name).filter((d) => d !== 'main' && d !== 'temp')).toEqual([]);
        expect(db.prepare('SELECT count(*) AS n FROM temp.sqlite_schema').get()).toEqual({ n: 0 });
        db.close();
        expect(fs.existsSync(evil)).toBe(false);
      }),
      { seed: SEED, numRuns: NUM_RUNS.definitions },
    );
  });

  it('any name, quoted as cairn quotes, is read back as that name and creates that table', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 30, unit: 'grapheme' }), (name) => {
        fc.pre(!name.includes('\u0000') && !name.toLowerCase().startsWith('sqlite_'));
        const db = freshDb();
        try {
          runDefinition(db, `CREATE TABLE ${quoteIdent(name)} (a)`, { kind: 'table', name }, name);
          const created = db.prepare("SELECT name FROM main.sqlite_schema WHERE type = 'table' AND name <> 'base'").pluck().all();
          expect(created).toEqual([name]);
        } catch (err) {
          // Only a name that folds to the existing table's may be refused.
          expect(err).toBeInstanceOf(CorruptionError);
          expect(name.toLowerCase()).toBe('base');
        } finally {
          db.close();
        }
      }),
      { seed: SEED, numRuns: NUM_RUNS.names },
    );
  });
});

describe('roles scripts', () => {
  it('any script is split and checked, or refused as CORRUPT: never another error, never a statement with an unquoted backslash', () => {
    const piece = fc.oneof(
      fc.constantFrom('CREATE ROLE a;', 'ALTER ROLE a WITH LOGIN;', "COMMENT ON ROLE a IS 'x';", 'GRANT a TO b;', '\\! id\n', '\\restrict k\n', "E'\\'", '$$', '$q$', '/*', '*/', '--', '\n', "'", '"', ';', 'SET ROLE a;', 'COPY x TO PROGRAM', 'DO $$ $$;'),
      fc.string({ maxLength: 8 }),
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 12 }).map((p) => p.join('')), (script) => {
        try {
          const statements = roleStatements(script, '(roles)');
          for (const s of statements) expect(/^(SET|CREATE\s+ROLE|ALTER\s+ROLE|GRANT|COMMENT\s+ON\s+ROLE|SECURITY\s+LABEL)\s/i.test(s)).toBe(true);
        } catch (err) {
          expect(err).toBeInstanceOf(CorruptionError);
          expect((err as Error).message.length).toBeLessThan(600);
        }
      }),
      { seed: SEED, numRuns: NUM_RUNS.roles },
    );
  });
});

describe('PostgreSQL URLs', () => {
  it('any URL is parsed or refused with a UsageError; a password (in the user info, raw or encoded, or in ?password=) never shows', () => {
    const password = fc.string({ minLength: 6, maxLength: 20 }).filter((p) => !/^\s|\s$/.test(p));
    const param = fc.tuple(fc.constantFrom('host', 'port', 'sslmode', 'foo', '__proto__', 'application_name', 'options', 'dbname', 'user', 'x y'), fc.string({ maxLength: 10 }));
    fc.assert(
      fc.property(password, fc.array(param, { maxLength: 4 }), fc.constantFrom('userinfo-raw', 'userinfo-encoded', 'query-raw', 'query-encoded'), (pw, params, where) => {
        const query = params.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`);
        if (where === 'query-raw') query.push(`password=${pw}`);
        if (where === 'query-encoded') query.push(`password=${encodeURIComponent(pw)}`);
        const userinfo = where === 'userinfo-raw' ? `app:${pw}` : where === 'userinfo-encoded' ? `app:${encodeURIComponent(pw)}` : 'app';
        const url = `postgres://${userinfo}@127.0.0.1:5432/db${query.length ? `?${query.join('&')}` : ''}`;
        expect(previewUrl(url)).not.toContain(pw);
        try {
          const s = parsePostgresUrl(url);
          expect(pgLocation(s)).not.toContain(pw);
          expect(JSON.stringify(s.params)).not.toContain(pw);
        } catch (err) {
          expect(err).toBeInstanceOf(UsageError);
          expect((err as Error).message).not.toContain(pw);
          expect((err as Error).message.length).toBeLessThan(700);
        }
      }),
      { seed: SEED, numRuns: NUM_RUNS.urls },
    );
  });
});

describe('archive tables of contents', () => {
  it('any TOC text is parsed and checked, or refused as CORRUPT; a kept entry is always of a known type', () => {
    const line = fc.oneof(
      fc.string({ maxLength: 60 }),
      fc.tuple(fc.nat(999), fc.constantFrom('TABLE', 'SCHEMA', 'SUBSCRIPTION', 'ACL', 'EVIL', 'FK CONSTRAINT', 'SHELL', 'x'), fc.string({ maxLength: 20 })).map(([id, d, rest]) => `${id}; 0 0 ${d} ${rest}`),
    );
    fc.assert(
      fc.property(fc.array(line, { maxLength: 10 }).map((l) => l.join('\n')), (text) => {
        try {
          const kept = checkedToc(parseToc(text));
          expect(kept.some((e) => e.desc === 'SUBSCRIPTION' || e.desc === 'SUBSCRIPTION TABLE')).toBe(false);
        } catch (err) {
          expect(err).toBeInstanceOf(CorruptionError);
        }
      }),
      { seed: SEED, numRuns: NUM_RUNS.tocs },
    );
  });

  it('reports its hostile inputs', () => {
    const total = Object.values(NUM_RUNS).reduce((a, b) => a + b, 0);
    console.log(`HOSTILE INPUTS TRIED (test/security/restore-fuzz.test.ts): ${total} (fast-check runs)`);
    expect(total).toBe(3400);
  });
});
