/**
 * Issue 12, item 2 (SQLite): a manifest edited by whoever can write the repository must not make
 * a restore run SQL of its choosing. Each hostile definition below is written into a real
 * backup's manifest on disk, then restored into a new file and over an existing one: the
 * restore is refused with a CORRUPT error, creates no file (no ATTACH / VACUUM INTO target, no
 * target, no staging leftover), and leaves an existing target byte-identical.
 *
 * HOSTILE_DEFINITIONS + HOSTILE_FIELDS + LEXER_CASES are the hostile inputs of this file (counted in the last test).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CairnError } from '../../src/core/errors.js';
import type { BackupManifest } from '../../src/core/schemas.js';
import type { Repository } from '../../src/repo/repository.js';
import Database from '../../src/sources/sqlite/driver.js';
import { checkDefinitionSql, DefinitionError, type ExpectedObject } from '../../src/sources/sqlite/validate.js';
import { lexSql } from '../../src/sources/sqlite/lexer.js';
import { cairn } from '../helpers/cli.js';
import { dumpSqlite } from '../helpers/sqlite-compare.js';
import { backupInto, collection, editManifest, listFiles, restoreError } from '../helpers/hostile.js';

let dir: string;
let repo: Repository;
let root: string;
let id: string;
let original: Buffer;
/** Files a hostile statement tries to create. */
let evil: string;
let evil2: string;
let existing: string;

interface TableDef {
  sql: string;
  columns: { name: string; type: string; notNull: boolean; defaultValue: string | null; pk: number; generated: boolean }[];
  indexes: { name: string; sql: string }[];
  triggers: { name: string; sql: string }[];
  withoutRowid: boolean;
  rowidColumn: string | null;
  autoincrement: string | null;
}
interface ViewDef {
  sql: string;
  triggers?: { name: string; sql: string }[];
}

const tableDef = (m: BackupManifest, name = 't'): TableDef => collection(m, name).definition as unknown as TableDef;
const viewDef = (m: BackupManifest): ViewDef => collection(m, 'v').definition as unknown as ViewDef;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-sec-restore-sqlite-'));
  evil = path.join(dir, 'evil.db');
  evil2 = path.join(dir, 'evil2.db');
  const src = path.join(dir, 'src.db');
  const db = new Database(src);
  db.exec(`
    CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT);
    CREATE INDEX idx_t_v ON t(v);
    CREATE TABLE other (a TEXT);
    CREATE TRIGGER tr_t AFTER INSERT ON t BEGIN INSERT INTO other (a) VALUES ('fired'); END;
    CREATE VIEW v AS SELECT k, v FROM t;
    CREATE TRIGGER tr_v INSTEAD OF INSERT ON v BEGIN INSERT INTO t (k, v) VALUES (new.k, new.v); END;
  `);
  db.exec("INSERT INTO other (a) VALUES ('o1'); DELETE FROM other; INSERT INTO other (a) VALUES ('kept');");
  db.exec("DROP TRIGGER tr_t; INSERT INTO t VALUES (1, 'one'), (2, 'two');");
  db.exec("CREATE TRIGGER tr_t AFTER INSERT ON t BEGIN INSERT INTO other (a) VALUES ('fired'); END;");
  db.close();
  ({ repo, id, root } = await backupInto(dir, `sqlite://${src}`));
  original = fs.readFileSync(path.join(root, 'backups', id));
  // An existing target: the same database, restored once (cleanly).
  existing = path.join(dir, 'existing.db');
  expect(await restoreError(repo, id, `sqlite://${existing}`)).toBeUndefined();
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const sha = (file: string): string => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/** Restores the edited manifest into a new file and over the existing one; checks that nothing happened. */
async function assertRefused(label: string, edit: (m: BackupManifest) => void): Promise<void> {
  fs.writeFileSync(path.join(root, 'backups', id), original);
  editManifest(root, id, edit);
  const before = listFiles(dir);
  const existingHash = sha(existing);
  const fresh = path.join(dir, `new-${createHash('sha1').update(label).digest('hex').slice(0, 8)}.db`);
  for (const [target, policy] of [
    [fresh, 'fail'],
    [existing, 'overwrite'],
  ] as const) {
    const err = await restoreError(repo, id, `sqlite://${target}`, policy);
    expect(err, `${label} → ${target}`).toBeInstanceOf(CairnError);
    // Over an existing table, a definition that no longer matches it may be refused as a
    // conflict before it is even loaded; into a new file, only the checks can refuse it.
    const codes = policy === 'fail' ? ['CORRUPT'] : ['CORRUPT', 'CONFLICT'];
    expect(codes, `${label}: ${(err as Error).message}`).toContain((err as CairnError).code);
    // The message names the problem without echoing the whole payload.
    expect((err as Error).message.length, label).toBeLessThan(1200);
  }
  expect(fs.existsSync(fresh), label).toBe(false);
  expect(fs.existsSync(evil), label).toBe(false);
  expect(fs.existsSync(evil2), label).toBe(false);
  expect(sha(existing), label).toBe(existingHash);
  // No file appeared anywhere (no staging leftover, no journal, no attached database).
  expect(listFiles(dir), label).toEqual(before);
}

const attach = (): string => `ATTACH DATABASE '${evil}' AS x`;
const vacuum = (): string => `VACUUM INTO '${evil2}'`;

/** [label, edit] — each edits one definition of the backup's manifest. */
export const HOSTILE_DEFINITIONS: [string, (m: BackupManifest) => void][] = [
  // Statements appended to a table's CREATE TABLE (the case and variants).
  ['table; ATTACH; VACUUM INTO (issue 12)', (m) => void (tableDef(m).sql += `; ${attach()}; CREATE TABLE x.y(a); VACUUM INTO '${evil2}'`)],
  ['table; ATTACH', (m) => void (tableDef(m).sql += `; ${attach()}`)],
  ['table; VACUUM INTO', (m) => void (tableDef(m).sql += `; ${vacuum()}`)],
  ['table; PRAGMA writable_schema', (m) => void (tableDef(m).sql += '; PRAGMA writable_schema = ON')],
  ['table; PRAGMA journal_mode', (m) => void (tableDef(m).sql += '; PRAGMA main.journal_mode = WAL')],
  ['table;; ATTACH', (m) => void (tableDef(m).sql += `;;${attach()}`)],
  ['table; lower-case attach', (m) => void (tableDef(m).sql += `;attach '${evil}' as x`)],
  ['table /* */; ATTACH', (m) => void (tableDef(m).sql += `/* comment */; ${attach()}`)],
  ['table --\\n; ATTACH', (m) => void (tableDef(m).sql += `-- comment\n; ${attach()}`)],
  ['table with ";" in a string, then ATTACH', (m) => void (tableDef(m).sql = `CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT DEFAULT ';'); ${attach()}`)],
  ['table with "--" in a string, then ATTACH', (m) => void (tableDef(m).sql = `CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT DEFAULT '--'); ${attach()}`)],
  ['table with "/*" in a string, then ATTACH', (m) => void (tableDef(m).sql = `CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT DEFAULT '/*'); ${attach()} --*/`)],
  ['table with ";" in a quoted column name, then ATTACH', (m) => void (tableDef(m).sql = `CREATE TABLE t (k INTEGER PRIMARY KEY, "v;" TEXT); ${attach()}`)],
  ['table with "]" tricks', (m) => void (tableDef(m).sql = `CREATE TABLE t (k INTEGER PRIMARY KEY, [v"] TEXT); ${attach()}`)],
  ['NUL then ATTACH', (m) => void (tableDef(m).sql += `\u0000; ${attach()}`)],
  ['fullwidth semicolon then ATTACH', (m) => void (tableDef(m).sql += `\uff1b ${attach()}`)],
  ['no-break space in the name', (m) => void (tableDef(m).sql = 'CREATE TABLE t\u00a0x (k INTEGER PRIMARY KEY, v TEXT)')],
  ['unterminated string hiding ATTACH', (m) => void (tableDef(m).sql = `CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT DEFAULT 'x); ${attach()}`)],
  ['unterminated block comment', (m) => void (tableDef(m).sql += `; /* ${attach()}`)],
  // The statement itself is not the expected CREATE TABLE.
  ['ATTACH instead of CREATE TABLE', (m) => void (tableDef(m).sql = attach())],
  ['VACUUM INTO instead of CREATE TABLE', (m) => void (tableDef(m).sql = vacuum())],
  ['PRAGMA instead of CREATE TABLE', (m) => void (tableDef(m).sql = 'PRAGMA writable_schema = ON')],
  ['DROP TABLE instead of CREATE TABLE', (m) => void (tableDef(m).sql = 'DROP TABLE other')],
  ['INSERT instead of CREATE TABLE', (m) => void (tableDef(m).sql = "INSERT INTO other VALUES ('x')")],
  ['comment before ATTACH', (m) => void (tableDef(m).sql = `/* CREATE TABLE t(k) */ ${attach()}`)],
  ['CREATE TEMP TABLE', (m) => void (tableDef(m).sql = 'CREATE TEMP TABLE t (k INTEGER PRIMARY KEY, v TEXT)')],
  ['CREATE TABLE temp.t', (m) => void (tableDef(m).sql = 'CREATE TABLE temp.t (k INTEGER PRIMARY KEY, v TEXT)')],
  ['CREATE TABLE x.t (another schema)', (m) => void (tableDef(m).sql = 'CREATE TABLE x.t (k INTEGER PRIMARY KEY, v TEXT)')],
  ['CREATE TABLE of another name', (m) => void (tableDef(m).sql = 'CREATE TABLE other2 (k INTEGER PRIMARY KEY, v TEXT)')],
  ['CREATE TABLE AS SELECT from the schema', (m) => void (tableDef(m).sql = 'CREATE TABLE t AS SELECT * FROM sqlite_schema')],
  ['CREATE VIRTUAL TABLE', (m) => void (tableDef(m).sql = 'CREATE VIRTUAL TABLE t USING fts5(k, v)')],
  ['CREATE TABLE IF NOT EXISTS', (m) => void (tableDef(m).sql = 'CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v TEXT)')],
  ['CREATE VIEW as the table', (m) => void (tableDef(m).sql = 'CREATE VIEW t AS SELECT 1 AS k, 2 AS v')],
  ['CREATE INDEX as the table', (m) => void (tableDef(m).sql = 'CREATE INDEX t ON other(a)')],
  ['load_extension() in a CHECK', (m) => void (tableDef(m).sql = `CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT CHECK (load_extension('${evil}') IS NULL))`)],
  ['load_extension() in a generated column', (m) => void (tableDef(m).sql = `CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT, g AS (load_extension('${evil}')))`)],
  ['WITHOUT ROWID against the recorded flag', (m) => void (tableDef(m).sql = 'CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT) WITHOUT ROWID')],
  ['columns the CREATE TABLE does not create', (m) => void (tableDef(m).sql = 'CREATE TABLE t (k INTEGER PRIMARY KEY, w TEXT)')],
  ['a 5 MB definition', (m) => void (tableDef(m).sql = `CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT DEFAULT '${'x'.repeat(5 * 1024 * 1024)}')`)],
  // Indexes.
  ['index; ATTACH', (m) => void ((tableDef(m).indexes[0] as { sql: string }).sql += `; ${attach()}`)],
  ['index on another table', (m) => void ((tableDef(m).indexes[0] as { sql: string }).sql = 'CREATE INDEX idx_t_v ON other(a)')],
  ['index of another name than recorded', (m) => void ((tableDef(m).indexes[0] as { sql: string }).sql = 'CREATE INDEX idx_other ON t(v)')],
  ['index recorded under a sqlite_ name', (m) => void ((tableDef(m).indexes[0] as { name: string }).name = 'sqlite_autoindex_t_9')],
  ['index that is a trigger', (m) => void ((tableDef(m).indexes[0] as { sql: string }).sql = "CREATE TRIGGER idx_t_v AFTER INSERT ON t BEGIN DELETE FROM other; END")],
  ['index with load_extension()', (m) => void ((tableDef(m).indexes[0] as { sql: string }).sql = `CREATE INDEX idx_t_v ON t(load_extension('${evil}'))`)],
  ['index that is VACUUM INTO', (m) => void ((tableDef(m).indexes[0] as { sql: string }).sql = vacuum())],
  ['TEMP index', (m) => void ((tableDef(m).indexes[0] as { sql: string }).sql = 'CREATE INDEX temp.idx_t_v ON t(v)')],
  // Triggers.
  ['trigger on another table', (m) => void ((tableDef(m).triggers[0] as { sql: string }).sql = 'CREATE TRIGGER tr_t AFTER INSERT ON other BEGIN DELETE FROM t; END')],
  ['trigger on sqlite_schema', (m) => void ((tableDef(m).triggers[0] as { sql: string }).sql = 'CREATE TRIGGER tr_t AFTER INSERT ON sqlite_schema BEGIN SELECT 1; END')],
  ['trigger UPDATE OF on another table', (m) => void ((tableDef(m).triggers[0] as { sql: string }).sql = 'CREATE TRIGGER tr_t AFTER UPDATE OF a ON other BEGIN SELECT 1; END')],
  ['trigger body with ATTACH', (m) => void ((tableDef(m).triggers[0] as { sql: string }).sql = `CREATE TRIGGER tr_t AFTER INSERT ON t BEGIN ${attach()}; END`)],
  ['trigger body with VACUUM INTO', (m) => void ((tableDef(m).triggers[0] as { sql: string }).sql = `CREATE TRIGGER tr_t AFTER INSERT ON t BEGIN ${vacuum()}; END`)],
  ['trigger body with PRAGMA', (m) => void ((tableDef(m).triggers[0] as { sql: string }).sql = 'CREATE TRIGGER tr_t AFTER INSERT ON t BEGIN PRAGMA writable_schema = ON; END')],
  ['trigger; END; ATTACH ... AS end', (m) => void ((tableDef(m).triggers[0] as { sql: string }).sql = `CREATE TRIGGER tr_t AFTER INSERT ON t BEGIN SELECT 1; END; ATTACH '${evil}' AS end`)],
  ['trigger; END; ATTACH; END', (m) => void ((tableDef(m).triggers[0] as { sql: string }).sql = `CREATE TRIGGER tr_t AFTER INSERT ON t BEGIN SELECT 1; END; ${attach()}; END`)],
  ['trigger; END; END (COMMIT)', (m) => void ((tableDef(m).triggers[0] as { sql: string }).sql = 'CREATE TRIGGER tr_t AFTER INSERT ON t BEGIN SELECT 1; END; END')],
  ['TEMP trigger on main.t', (m) => void ((tableDef(m).triggers[0] as { sql: string }).sql = "CREATE TEMP TRIGGER tr_t AFTER INSERT ON main.t BEGIN INSERT INTO other VALUES ('x'); END")],
  ['trigger of another name than recorded', (m) => void ((tableDef(m).triggers[0] as { sql: string }).sql = 'CREATE TRIGGER tr_other AFTER INSERT ON t BEGIN SELECT 1; END')],
  ['trigger body calling load_extension()', (m) => void ((tableDef(m).triggers[0] as { sql: string }).sql = `CREATE TRIGGER tr_t AFTER INSERT ON t BEGIN SELECT load_extension('${evil}'); END`)],
  // Views and their triggers.
  ['view; ATTACH', (m) => void (viewDef(m).sql += `; ${attach()}`)],
  ['view of another name', (m) => void (viewDef(m).sql = 'CREATE VIEW v2 AS SELECT 1')],
  ['TEMP view', (m) => void (viewDef(m).sql = 'CREATE TEMP VIEW v AS SELECT 1')],
  ['view that is a table', (m) => void (viewDef(m).sql = 'CREATE TABLE v (a)')],
  ['view trigger on the table', (m) => void ((viewDef(m).triggers?.[0] as { sql: string }).sql = 'CREATE TRIGGER tr_v AFTER INSERT ON t BEGIN DELETE FROM other; END')],
  ['view trigger; VACUUM INTO', (m) => void ((viewDef(m).triggers?.[0] as { sql: string }).sql += `; ${vacuum()}`)],
];

/** Other fields of a definition and names, as hostile input. */
export const HOSTILE_FIELDS: [string, (m: BackupManifest) => void][] = [
  ['rowidColumn with SQL in it', (m) => void (tableDef(m).rowidColumn = 'k); DROP TABLE other; --')],
  ['rowidColumn naming a real column', (m) => void (tableDef(m, 'other').rowidColumn = 'a')],
  ['column name with SQL in it', (m) => void ((tableDef(m).columns[1] as { name: string }).name = 'v"); DROP TABLE other; --')],
  ['column name twice', (m) => void ((tableDef(m).columns[1] as { name: string }).name = 'K')],
  ['column name with NUL', (m) => void ((tableDef(m).columns[1] as { name: string }).name = 'v\u0000x')],
  ['no columns', (m) => void (tableDef(m).columns = [])],
  ['definition is a string', (m) => void (collection(m, 't').definition = 'CREATE TABLE t(k)' as unknown as Record<string, unknown>)],
  ['definition sql is a number', (m) => void ((tableDef(m) as unknown as { sql: unknown }).sql = 42)],
  ['table named sqlite_sequence', (m) => {
    collection(m, 'other').name = 'sqlite_sequence';
    tableDef(m, 'sqlite_sequence').sql = 'CREATE TABLE sqlite_sequence (a TEXT)';
  }],
  ['index name with NUL', (m) => void ((tableDef(m).indexes[0] as { name: string }).name = 'idx\u0000')],
  ['index name of 5000 characters', (m) => void ((tableDef(m).indexes[0] as { name: string }).name = 'i'.repeat(5000))],
];

describe('SQLite restore refuses hostile definitions from a manifest', () => {
  it.each(HOSTILE_DEFINITIONS)('%s', async (label, edit) => {
    await assertRefused(label, edit);
  });
  it.each(HOSTILE_FIELDS)('%s', async (label, edit) => {
    await assertRefused(label, edit);
  });

  it('cairn verify fails naming a backup whose definition was edited under a recomputed checksum; the untouched one verifies', () => {
    fs.writeFileSync(path.join(root, 'backups', id), original);
    expect(cairn(['verify', '--repo', root]).code).toBe(0);
    editManifest(root, id, (m) => {
      const t = m.collections.find((c) => c.kind === 'table') as unknown as { definition: { sql: string } };
      t.definition.sql += `; ${attach()}`;
    });
    const r = cairn(['verify', '--repo', root, '--read-data']);
    expect(r.code, r.stderr).toBe(6);
    expect(r.stderr).toContain(`Affects ${id}`);
    expect(r.stderr).toContain('more than one statement');
    fs.writeFileSync(path.join(root, 'backups', id), original);
  });

  it('a name with quotes and SQL in it is only a name: quoted everywhere, nothing else touched', async () => {
    const name = 'x"; DROP TABLE other; --';
    fs.writeFileSync(path.join(root, 'backups', id), original);
    editManifest(root, id, (m) => {
      const c = collection(m, 't');
      c.name = name;
      const def = tableDef(m, name);
      def.sql = `CREATE TABLE "x""; DROP TABLE other; --" (k INTEGER PRIMARY KEY, v TEXT)`;
      def.indexes = [{ name: 'idx; DROP TABLE other', sql: `CREATE INDEX "idx; DROP TABLE other" ON "x""; DROP TABLE other; --"(v)` }];
      def.triggers = [];
      m.collections = m.collections.filter((x) => x.kind === 'table');
    });
    const into = path.join(dir, 'quoted.db');
    fs.copyFileSync(existing, into);
    expect(await restoreError(repo, id, `sqlite://${into}`, 'overwrite')).toBeUndefined();
    const dump = dumpSqlite(into);
    expect(dump.tables[name]?.length).toBe(2);
    expect(dump.tables.other?.length).toBe(1);
    fs.writeFileSync(path.join(root, 'backups', id), original);
  });

  it("a trigger writing to another table is the user's own: restored on its table, and it does not fire during the restore", async () => {
    fs.writeFileSync(path.join(root, 'backups', id), original);
    const into = path.join(dir, 'triggers.db');
    expect(await restoreError(repo, id, `sqlite://${into}`)).toBeUndefined();
    const db = new Database(into, { readonly: true });
    try {
      expect(db.prepare("SELECT tbl_name FROM sqlite_schema WHERE name = 'tr_t'").pluck().get()).toBe('t');
      expect(db.prepare('SELECT a FROM other').pluck().all()).toEqual(['kept']);
    } finally {
      db.close();
    }
  });

  it('the staging file and a target the restore creates are private (0600) whatever the umask', async () => {
    fs.writeFileSync(path.join(root, 'backups', id), original);
    const old = process.umask(0o000);
    try {
      const into = path.join(dir, 'private.db');
      expect(await restoreError(repo, id, `sqlite://${into}`)).toBeUndefined();
      expect(fs.statSync(into).mode & 0o777).toBe(0o600);
    } finally {
      process.umask(old);
    }
  });
});

/** Direct checks of the definition checker and its lexer: [sql, expected, accepted?]. */
export const LEXER_CASES: [string, ExpectedObject, boolean][] = [
  ['CREATE TABLE t(a)', { kind: 'table', name: 't' }, true],
  ['CREATE TABLE "t"(a);', { kind: 'table', name: 't' }, true],
  ['CREATE TABLE main.[t](a) -- trailing comment', { kind: 'table', name: 't' }, true],
  ['CREATE TABLE `T`(a)', { kind: 'table', name: 't' }, true],
  ["CREATE TABLE 't'(a)", { kind: 'table', name: 't' }, true],
  ['CREATE TABLE "a""b"(x)', { kind: 'table', name: 'a"b' }, true],
  ['CREATE UNIQUE INDEX i ON t(a)', { kind: 'index', name: 'i', table: 't' }, true],
  ['CREATE TRIGGER tr BEFORE UPDATE OF a, "b" ON t FOR EACH ROW WHEN new.a > 0 BEGIN UPDATE u SET x = CASE WHEN 1 THEN 2 END; DELETE FROM w; END', { kind: 'trigger', name: 'tr', table: 't' }, true],
  ['CREATE VIEW v(a) AS SELECT 1', { kind: 'view', name: 'v' }, true],
  ['CREATE TABLE t(a); SELECT 1', { kind: 'table', name: 't' }, false],
  ['CREATE TABLE t(a) ; ; ', { kind: 'table', name: 't' }, false],
  ['CREATE UNIQUE TABLE t(a)', { kind: 'table', name: 't' }, false],
  ['CREATE TABLE t\u00a0(a)', { kind: 'table', name: 't' }, false],
  ['CREATE\u00a0TABLE t(a)', { kind: 'table', name: 't' }, false],
  ['CREATE TABLE t(a) /* open', { kind: 'table', name: 't' }, false],
  ['CREATE TABLE [t(a)', { kind: 'table', name: 't' }, false],
  ['CREATE TABLE "t(a)', { kind: 'table', name: 't' }, false],
  ["CREATE TABLE t(a DEFAULT x'00", { kind: 'table', name: 't' }, false],
  ['CREATE INDEX i ON t', { kind: 'index', name: 'i', table: 't' }, false],
  ['CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END; DETACH x; END', { kind: 'trigger', name: 'tr', table: 't' }, false],
  ['CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1 END', { kind: 'trigger', name: 'tr', table: 't' }, false],
  ['CREATE TRIGGER tr AFTER INSERT ON t BEGIN END', { kind: 'trigger', name: 'tr', table: 't' }, false],
  ['CREATE TRIGGER tr INSTEAD INSERT ON t BEGIN SELECT 1; END', { kind: 'trigger', name: 'tr', table: 't' }, false],
  ['CREATE TRIGGER tr AFTER TRUNCATE ON t BEGIN SELECT 1; END', { kind: 'trigger', name: 'tr', table: 't' }, false],
  ['CREATE TRIGGER tr AFTER INSERT ON x.t BEGIN SELECT 1; END', { kind: 'trigger', name: 'tr', table: 't' }, false],
  ['', { kind: 'table', name: 't' }, false],
  ['   ', { kind: 'table', name: 't' }, false],
  ['CREATE', { kind: 'table', name: 't' }, false],
  ['CREATE TABLE', { kind: 'table', name: 't' }, false],
];

describe('definition checker', () => {
  it.each(LEXER_CASES)('%j', (sql, expected, accepted) => {
    if (accepted) expect(() => checkDefinitionSql(sql, expected)).not.toThrow();
    else expect(() => checkDefinitionSql(sql, expected)).toThrow(DefinitionError);
  });

  it('lexes as SQLite does: only space, tab, LF, FF and CR separate tokens', () => {
    expect(lexSql('a\u00a0b c\u2028d').map((t) => t.value)).toEqual(['a\u00a0b', 'c\u2028d']);
    expect(lexSql("'it''s' \"q\"\"\" [x y] `b``c`").map((t) => t.value)).toEqual(["it's", 'q"', 'x y', 'b`c']);
  });

  it('counts its hostile inputs', () => {
    const hostile = HOSTILE_DEFINITIONS.length + HOSTILE_FIELDS.length + LEXER_CASES.filter((c) => !c[2]).length + 1;
    console.log(`HOSTILE INPUTS TRIED (test/security/restore-sqlite.test.ts): ${hostile}`);
    expect(hostile).toBeGreaterThan(80);
  });
});
