/**
 * The engine contract suite (./contract.ts) for MySQL/MariaDB: scratch databases
 * `cairn_ec_<pid>_<n>` on the local server (127.0.0.1:3306, root), dropped afterwards.
 *
 * The suite writes SQL the standard way (identifiers in double quotes, strings with '' and
 * backslashes as plain characters), so the sessions that run it use ANSI_QUOTES and
 * NO_BACKSLASH_ESCAPES (test/helpers/mysql.ts ANSI_SQL_MODE).
 */
import { describe, expect, it } from 'vitest';
import { createDatabase, databaseExists, dropDatabase, ensureMysql, ident, lit, loadEveryKind, myUrl, snapshotOf, sql } from '../helpers/mysql.js';
import { describeEngineContract, type EngineFixture, type ObjectKind } from './contract.js';

ensureMysql();
const made: string[] = [];
let n = 0;
const dbOf = (url: string): string => decodeURIComponent(new URL(url).pathname.slice(1));
/** `LIKE` pattern text for `s` taken literally (escape character |). */
const likeText = (s: string): string => s.replace(/[|%_]/g, (c) => `|${c}`);

/**
 * The suite's DDL in MySQL terms: its TEXT is "text of any length" (PostgreSQL's and SQLite's
 * TEXT), and MySQL's TEXT holds 65,535 bytes (the suite stores ~1.2 MB), so a TEXT column type
 * becomes LONGTEXT. Only the uppercase type keyword before `,` or `)` of a column definition is
 * rewritten; the suite's string literals hold no such text.
 */
const dialect = (text: string): string => text.replace(/ TEXT(?=\s*[,)])/g, ' LONGTEXT');

/** The suite's SQL: ANSI quoting, strict, integers as numbers. */
const run = (db: string, text: string): Promise<unknown[][]> => sql(db, dialect(text), { ansi: true, numbers: true });
const column = async (db: string, text: string): Promise<string[]> => (await sql(db, text)).map((r) => String(r[0]));

/** Staging databases of restores into `db`: `<db, first 40 characters>__cairn_<hex>` (design: restore). */
const stagingDatabases = (db: string): Promise<string[]> =>
  column('', `SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ${lit(`${likeText(db.slice(0, 40))}__cairn_%`)} ESCAPE '|' ORDER BY 1`);

/**
 * One line per object of each kind, from information_schema: its name and definition. Where a
 * definition names the database itself (a view's tables, `db`.`t`; a column default's sequence),
 * objects() writes `<db>` instead, so that copies in other databases compare equal. Names are
 * compared and grouped as bytes (BINARY): information_schema's collation is case-insensitive,
 * and `CaseTable` and `casetable` are two tables.
 */
const OBJECT_QUERIES: Record<Exclude<ObjectKind, 'sequences'>, string> = {
  // Aria's PAGE_CHECKSUM=1 is its default and SHOW CREATE TABLE prints it either way; a table
  // created from that statement lists it in CREATE_OPTIONS, one created without it does not.
  tables: `SELECT CONCAT_WS(' ', t.TABLE_NAME, t.TABLE_TYPE, t.ENGINE, t.TABLE_COLLATION,
             TRIM(IF(t.ENGINE = 'Aria', REPLACE(CONCAT(' ', t.CREATE_OPTIONS, ' '), ' page_checksum=1 ', ' '), t.CREATE_OPTIONS)), QUOTE(t.TABLE_COMMENT), 'auto_increment', IFNULL(t.AUTO_INCREMENT, '-'), ':',
             (SELECT GROUP_CONCAT(CONCAT_WS(' ', c.COLUMN_NAME, c.COLUMN_TYPE, c.IS_NULLABLE, IFNULL(c.CHARACTER_SET_NAME, '-'), IFNULL(c.COLLATION_NAME, '-'),
                      'default', IFNULL(c.COLUMN_DEFAULT, '(none)'), c.EXTRA, IFNULL(c.GENERATION_EXPRESSION, '-'), QUOTE(c.COLUMN_COMMENT)) ORDER BY c.ORDINAL_POSITION SEPARATOR '; ')
                FROM information_schema.COLUMNS c WHERE BINARY c.TABLE_SCHEMA = t.TABLE_SCHEMA AND BINARY c.TABLE_NAME = t.TABLE_NAME),
             (SELECT GROUP_CONCAT(CONCAT_WS(' ', p.PARTITION_NAME, p.PARTITION_METHOD, p.PARTITION_EXPRESSION, p.PARTITION_DESCRIPTION) ORDER BY p.PARTITION_ORDINAL_POSITION SEPARATOR '; ')
                FROM information_schema.PARTITIONS p WHERE BINARY p.TABLE_SCHEMA = t.TABLE_SCHEMA AND BINARY p.TABLE_NAME = t.TABLE_NAME AND p.PARTITION_NAME IS NOT NULL))
           FROM information_schema.TABLES t WHERE BINARY t.TABLE_SCHEMA = DATABASE() AND t.TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED')`,
  indexes: `SELECT CONCAT_WS(' ', TABLE_NAME, INDEX_NAME, IF(NON_UNIQUE, 'non-unique', 'unique'), INDEX_TYPE, QUOTE(INDEX_COMMENT), IGNORED, ':',
              GROUP_CONCAT(CONCAT_WS(' ', COLUMN_NAME, IFNULL(SUB_PART, '-'), IFNULL(COLLATION, '-'), NULLABLE) ORDER BY SEQ_IN_INDEX SEPARATOR ', '))
            FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() GROUP BY BINARY TABLE_NAME, BINARY INDEX_NAME, NON_UNIQUE, INDEX_TYPE, INDEX_COMMENT, IGNORED`,
  views: `SELECT CONCAT_WS(' ', TABLE_NAME, ALGORITHM, DEFINER, SECURITY_TYPE, CHECK_OPTION, IS_UPDATABLE, CHARACTER_SET_CLIENT, COLLATION_CONNECTION, ':',
            VIEW_DEFINITION)
          FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE()`,
  triggers: `SELECT CONCAT_WS(' ', EVENT_OBJECT_TABLE, TRIGGER_NAME, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER, DEFINER, SQL_MODE, CHARACTER_SET_CLIENT,
               COLLATION_CONNECTION, DATABASE_COLLATION, ':', ACTION_STATEMENT)
             FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()`,
  constraints: `SELECT CONCAT_WS(' ', tc.TABLE_NAME, tc.CONSTRAINT_NAME, tc.CONSTRAINT_TYPE, ':',
                  (SELECT GROUP_CONCAT(CONCAT_WS(' ', k.COLUMN_NAME, IFNULL(k.REFERENCED_TABLE_NAME, '-'), IFNULL(k.REFERENCED_COLUMN_NAME, '-')) ORDER BY k.ORDINAL_POSITION SEPARATOR ', ')
                     FROM information_schema.KEY_COLUMN_USAGE k
                    WHERE BINARY k.CONSTRAINT_SCHEMA = tc.CONSTRAINT_SCHEMA AND BINARY k.TABLE_NAME = tc.TABLE_NAME AND BINARY k.CONSTRAINT_NAME = tc.CONSTRAINT_NAME),
                  (SELECT CONCAT_WS(' ', r.UNIQUE_CONSTRAINT_NAME, r.MATCH_OPTION, 'on update', r.UPDATE_RULE, 'on delete', r.DELETE_RULE, r.REFERENCED_TABLE_NAME)
                     FROM information_schema.REFERENTIAL_CONSTRAINTS r
                    WHERE BINARY r.CONSTRAINT_SCHEMA = tc.CONSTRAINT_SCHEMA AND BINARY r.TABLE_NAME = tc.TABLE_NAME AND BINARY r.CONSTRAINT_NAME = tc.CONSTRAINT_NAME),
                  (SELECT CONCAT_WS(' ', cc.LEVEL, cc.CHECK_CLAUSE) FROM information_schema.CHECK_CONSTRAINTS cc
                    WHERE BINARY cc.CONSTRAINT_SCHEMA = tc.CONSTRAINT_SCHEMA AND BINARY cc.TABLE_NAME = tc.TABLE_NAME AND BINARY cc.CONSTRAINT_NAME = tc.CONSTRAINT_NAME))
                FROM information_schema.TABLE_CONSTRAINTS tc WHERE BINARY tc.CONSTRAINT_SCHEMA = DATABASE()`,
};

/** MariaDB sequences: each one's settings and state (its one row), by name. */
async function sequences(db: string): Promise<string[]> {
  const names = await column(db, `SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'SEQUENCE' ORDER BY 1`);
  if (names.length === 0) return [];
  const rows = await sql(
    db,
    names
      .map((s) => `SELECT ${lit(s)}, CONCAT_WS(' ', 'next', next_not_cached_value, 'min', minimum_value, 'max', maximum_value, 'start', start_value, 'increment', increment, 'cache', cache_size, 'cycle', cycle_option, cycle_count) FROM ${ident(s)}`)
      .join(' UNION ALL '),
  );
  return rows.map((r) => `${String(r[0])}: ${String(r[1])}`).sort();
}

async function objects(url: string): Promise<Record<ObjectKind, string[]>> {
  const db = dbOf(url);
  const kinds = Object.keys(OBJECT_QUERIES) as Exclude<ObjectKind, 'sequences'>[];
  // The database's own name (a view's tables, a default's sequence: `db`.`s`) reads `<db>`.
  const own = (line: string): string => line.split(`${ident(db)}.`).join('`<db>`.');
  const lists = await Promise.all([...kinds.map(async (k) => (await column(db, OBJECT_QUERIES[k])).map(own).sort()), sequences(db)]);
  return Object.fromEntries([...kinds, 'sequences'].map((k, i) => [k, lists[i]])) as Record<ObjectKind, string[]>;
}

/** Whether table names are case-sensitive here (lower_case_table_names = 0: Linux's default). */
const caseSensitiveNames = String((await sql('', 'SELECT @@lower_case_table_names'))[0]?.[0]) === '0';
const caseReason = 'the server folds table names to lowercase (lower_case_table_names ≠ 0), so "Users" and "users" are one table';

const fixture: EngineFixture = {
  kind: 'mysql',
  async createDatabase() {
    const url = this.missingDatabase();
    await createDatabase(dbOf(url));
    return url;
  },
  missingDatabase() {
    const name = `cairn_ec_${process.pid}_${++n}`;
    made.push(name);
    return myUrl(name);
  },
  exists: (url) => databaseExists(dbOf(url)),
  exec: async (url, text) => void (await run(dbOf(url), text)),
  query: (url, text) => run(dbOf(url), text),
  // mysqldump --no-data (AUTO_INCREMENT, routines, triggers, events), every table's checksum
  // (history rows included), every sequence's next value.
  dump: (url) => snapshotOf(dbOf(url)),
  objects,
  tables: (url) => column(dbOf(url), `SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') ORDER BY 1`),
  // Staging databases named after the target, and staging or old tables (`…__cairn_…`) inside it.
  leftovers: async (url) => {
    const db = dbOf(url);
    const databases = await stagingDatabases(db);
    if (!(await databaseExists(db))) return databases;
    return [...databases, ...(await column(db, `SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE '%|_|_cairn|_%' ESCAPE '|' ORDER BY 1`))];
  },
  collection: (table) => table,
  blobType: 'LONGBLOB',
  blobLiteral: (bytes) => (bytes.length === 0 ? "X''" : `X'${bytes.toString('hex')}'`),
  // Through mysql2 as one multi-statement query (the file has no DELIMITER lines).
  addEveryKind: (url) => loadEveryKind(dbOf(url)),
  unsupported: caseSensitiveNames ? {} : { 'naming: ASCII case': caseReason, 'naming: non-ASCII case': caseReason },
  cleanup: async () => {
    for (const name of made) {
      for (const staging of await stagingDatabases(name)) await dropDatabase(staging);
      await dropDatabase(name);
    }
  },
};

// What the fixture itself must get right, whether or not the engine is written yet.
describe('MySQL contract fixture', () => {
  it('runs the suite\'s SQL (ANSI quotes, literal backslashes, long TEXT) and finds its objects and leftovers', async () => {
    const url = await fixture.createDatabase();
    const db = dbOf(url);
    await fixture.exec(url, `CREATE TABLE "Odd ""name""" (id INTEGER PRIMARY KEY, v TEXT, b ${fixture.blobType});
      INSERT INTO "Odd ""name""" (id, v, b) VALUES (1, 'back\\slash ''q''', ${fixture.blobLiteral(Buffer.from([0, 255]))}), (2, '${'x'.repeat(70_000)}', ${fixture.blobLiteral(Buffer.alloc(0))});`);
    expect(await fixture.query(url, `SELECT id, v, b FROM "Odd ""name""" WHERE id = 1`)).toEqual([[1, "back\\slash 'q'", Buffer.from([0, 255])]]);
    expect(await fixture.query(url, `SELECT count(*), length(v) FROM "Odd ""name""" WHERE id = 2`)).toEqual([[1, 70_000]]);
    expect(await fixture.tables(url)).toEqual(['Odd "name"']);
    await fixture.addEveryKind(url);
    const objs = await objects(url);
    for (const kind of Object.keys(objs) as ObjectKind[]) expect(objs[kind].length, kind).toBeGreaterThan(0);
    expect(objs.views.join('\n')).toContain('`<db>`.');
    expect(objs.views.join('\n')).not.toContain(db);
    expect(objs.sequences).toContain('ticket_seq: next 150 min 100 max 1000000 start 100 increment 5 cache 10 cycle 0 0');
    expect(objs.tables.join('\n')).toContain('nextval(`<db>`.`ticket_seq`)');
    // Another database made alike has the same objects: nothing in them depends on the database's name.
    const twin = await fixture.createDatabase();
    await fixture.exec(twin, `CREATE TABLE "Odd ""name""" (id INTEGER PRIMARY KEY, v TEXT, b ${fixture.blobType})`);
    await fixture.addEveryKind(twin);
    expect(await objects(twin)).toEqual(objs);
    // Tables whose names differ only in case are told apart.
    expect(objs.indexes.filter((x) => /^casetable PRIMARY /i.test(x))).toEqual([
      "CaseTable PRIMARY unique BTREE '' NO : id - A ",
      "casetable PRIMARY unique BTREE '' NO : id - A ",
    ]);
    expect(await fixture.leftovers(url)).toEqual([]);
    // Leftovers are found: a staging database of this target, a staging table inside it.
    const staging = `${db.slice(0, 40)}__cairn_0badf00d`;
    await sql('', `CREATE DATABASE \`${staging}\``);
    await sql(db, 'CREATE TABLE `small__cairn_old_0badf00d` (id INT)');
    expect(await fixture.leftovers(url)).toEqual([staging, 'small__cairn_old_0badf00d']);
    await dropDatabase(staging);
    expect(await fixture.exists(url)).toBe(true);
    expect(await fixture.exists(fixture.missingDatabase())).toBe(false);
    // The dump is deterministic and sees a change.
    const before = await fixture.dump(url);
    expect(await fixture.dump(url)).toEqual(before);
    await fixture.exec(url, `UPDATE "Odd ""name""" SET v = 'changed' WHERE id = 1`);
    expect(await fixture.dump(url)).not.toEqual(before);
  }, 60_000);
});

describeEngineContract('MySQL', fixture);
