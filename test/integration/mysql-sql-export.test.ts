/**
 * Plain-SQL export of MySQL/MariaDB backups (EngineDriver.openSqlScript, src/sources/mysql/sql-script.ts):
 * the every-kind fixture and Chinook backed up with `cairn backup create`, written out as one
 * script, loaded with the `mysql` client (`mysql --default-character-set=utf8mb4 db < file`) into
 * a fresh database, and compared with the source as the restore tests compare (mysqldump
 * --no-data schema with AUTO_INCREMENT, routines, triggers, events; CHECKSUM TABLE of every table,
 * history rows included; every sequence's next value). Also a rename, an exclude, and values at
 * their edges (several INSERT statements per table, a row larger than one statement's bound,
 * character sets whose bytes are not UTF-8). The script is built here from the repository as
 * sqlExport will (entries = the manifest's collections, each read through the chunk index).
 * Scratch databases `cairn_h18_<pid>_<label>`, dropped in afterAll.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, createWriteStream, mkdtempSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackupManifest } from '../../src/core/schemas.js';
import { sqlExport } from '../../src/jobs/sql-export.js';
import { Repository } from '../../src/repo/repository.js';
import { mysqlDriver } from '../../src/sources/mysql/index.js';
import { INSERT_BYTES } from '../../src/sources/mysql/sql-script.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { cairn, cairnJson } from '../helpers/cli.js';
import { checksums, column, createDatabase, dropScratchDatabases, ensureMysql, ident, lit, loadChinook, loadEveryKind, MY_HOST, MY_PORT, MY_USER, myUrl, schemaDump, snapshotOf, sql } from '../helpers/mysql.js';

const databases = new Set<string>();
const users: string[] = [];
let work: string;
let repo: string;
let chinook: string;
let every: string;
let edges: string;

function dbName(label: string): string {
  const name = `cairn_h18_${process.pid}_${label}`;
  databases.add(name);
  return name;
}

const collationOf = async (db: string): Promise<string> =>
  String((await sql('', `SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ${lit(db)}`))[0]?.[0]);

const backups = new Map<string, BackupManifest>();
function backupOf(db: string, id: string): BackupManifest {
  let m = backups.get(id);
  if (m === undefined) {
    m = cairnJson<BackupManifest>(['backup', 'create', '--source', myUrl(db), '--repo', repo, '--id', id]);
    backups.set(id, m);
  }
  return m;
}

interface ExportChoice {
  /** Collections left out (tables, views, sequences; database-wide ones always go). */
  exclude?: string[];
  renames?: Record<string, string>;
}

/** Writes backup `id` as a script through sqlExport (selection and renames as restore takes them) and returns its path. */
async function exportScript(id: string, choice: ExportChoice = {}): Promise<string> {
  const repository = await Repository.open(new FileSystemStorage(repo));
  const script = sqlExport({
    repo: repository,
    backupId: id,
    ...(choice.exclude?.length ? { selection: { exclude: choice.exclude } } : {}),
    ...(choice.renames ? { renames: new Map(Object.entries(choice.renames)) } : {}),
  });
  const file = join(work, `${id}-${Object.keys(choice.renames ?? {}).length}-${(choice.exclude ?? []).length}.sql`);
  await pipeline(Readable.from(script), createWriteStream(file));
  return file;
}

/** `mysql --default-character-set=utf8mb4 [extra] db < file`; throws with the client's message on failure. */
function loadScript(db: string, file: string, extra: string[] = []): void {
  const fd = openSync(file, 'r');
  try {
    const r = spawnSync('mysql', ['--default-character-set=utf8mb4', ...extra, '-h', MY_HOST, '-P', String(MY_PORT), '-u', MY_USER, db], { stdio: [fd, 'pipe', 'pipe'], encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`mysql ${db} < ${file} exited ${r.status}: ${r.stderr.trim()}`);
    expect(r.stdout).toBe('');
  } finally {
    closeSync(fd);
  }
}

/** The SQL statements of a script as the client splits them, roughly: INSERT statements only, with their sizes. */
function insertStatements(text: string, table: string): string[] {
  const head = `INSERT INTO ${ident(table)} `;
  return text.split(';\n').filter((s) => s.startsWith(head) || s.includes(`\n${head}`)).map((s) => s.slice(s.indexOf(head)));
}

beforeAll(async () => {
  ensureMysql();
  work = mkdtempSync(join(tmpdir(), 'cairn-h18-mysqlsql-'));
  repo = join(work, 'repo');
  const init = cairn(['repo', 'init', repo]);
  expect(init.code, init.stderr).toBe(0);
  chinook = dbName('chinook');
  loadChinook(chinook);
  every = dbName('every');
  await createDatabase(every);
  await loadEveryKind(every);
  edges = dbName('edges');
  await createDatabase(edges);
  await sql(
    edges,
    `SET SESSION sql_mode = 'ALLOW_INVALID_DATES,NO_ENGINE_SUBSTITUTION';
     CREATE TABLE e (
       id INT NOT NULL PRIMARY KEY,
       s VARCHAR(200) CHARACTER SET utf8mb4,
       l VARCHAR(50) CHARACTER SET latin1,
       w VARCHAR(20) CHARACTER SET utf16,
       c2 VARCHAR(20) CHARACTER SET cp1251,
       big LONGBLOB,
       bits BIT(64),
       d DATETIME(6),
       n DECIMAL(65,30),
       f FLOAT, g DOUBLE
     ) ENGINE=InnoDB;
     INSERT INTO e VALUES
       (1, 'quote '' backslash \\\\ semicolons ;; $$ // DELIMITER ; */ -- # \\\\N', X'e9e8ff', 'ASCII in UTF-16', _cp1251 X'cff0e8e2e5f2', NULL, b'0', '0000-00-00 00:00:00.000000', -0.000000000000000000000000000001, -0e0, 1e-300),
       (2, 'line\\nbreak\\rreturn\\ttab\\0nul\\Zctrlz', 'plain ascii', 'ünï 😀', 'ascii', X'', X'FFFFFFFFFFFFFFFF', '2020-02-31 23:59:59.999999', 99999999999999999999999999999999999.999999999999999999999999999999, 3.4028234e38, -1.7976931348623157e308),
       (3, '\\\\N', '', '', '', REPEAT(X'00275c0a', 800000), X'8000000000000000', '9999-12-31 23:59:59.999999', 0, 1.17549435e-38, 5e-324),
       (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
     CREATE TABLE many (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, v VARCHAR(300)) AUTO_INCREMENT = 7;
     INSERT INTO many (v) SELECT REPEAT(CHAR(65 + seq % 26), 200 + seq % 100) FROM seq_1_to_20000;
     ALTER TABLE many AUTO_INCREMENT = 50000;
     CREATE TABLE blobs (id INT NOT NULL PRIMARY KEY, b VARBINARY(2000));
     INSERT INTO blobs SELECT seq, REPEAT(UNHEX(SHA2(seq, 512)), 16) FROM seq_1_to_3000;`,
  );
}, 180_000);

afterAll(async () => {
  for (const u of users) await sql('', `DROP USER IF EXISTS ${lit(u)}@'%'`);
  await dropScratchDatabases(databases);
  if (work && process.env.CAIRN_TEST_KEEP === undefined) rmSync(work, { recursive: true, force: true });
});

describe('plain-SQL export of a MySQL backup, loaded with the mysql client', () => {
  for (const [label, source] of [['every-kind', () => every], ['Chinook', () => chinook]] as const) {
    const id = `sql-${label.toLowerCase()}`;
    it(`${label}: the script loads into a fresh database; schema and every table identical`, async () => {
      const db = source();
      backupOf(db, id);
      const file = await exportScript(id);
      const text = readFileSync(file, 'utf8');
      expect(text.startsWith('-- cairn export of backup')).toBe(true);
      expect(text.split('\n').filter((l) => /^SET (NAMES utf8mb4|SESSION (foreign_key_checks|unique_checks) = 0|SESSION time_zone = '\+00:00');$/.test(l))).toHaveLength(4);
      const target = dbName(`${id.replace(/\W/g, '_')}`);
      await createDatabase(target, 'utf8mb4_unicode_ci');
      loadScript(target, file);
      // The database's defaults come from the backup, not from how the empty one was made.
      expect(await collationOf(target)).toBe(await collationOf(db));
      const [want, got] = [await snapshotOf(db), await snapshotOf(target)];
      expect(got.schema).toBe(want.schema);
      expect(got.checksums).toEqual(want.checksums);
    }, 120_000);
  }

  it('every-kind: compound routines and triggers sit in DELIMITER blocks, generated columns are left out of INSERTs, grants are never applied', async () => {
    backupOf(every, 'sql-every-kind');
    const text = readFileSync(await exportScript('sql-every-kind'), 'utf8');
    expect(/^DELIMITER ;;\nCREATE DEFINER=`root`@`[^`]+` PROCEDURE `restock`/m.test(text)).toBe(true);
    expect(/^END;;\nDELIMITER ;$/m.test(text)).toBe(true);
    // products: `total` (VIRTUAL) and `upper_name` (STORED) are computed; `secret` (INVISIBLE) is named.
    const products = insertStatements(text, 'products');
    expect(products).toHaveLength(1);
    expect(products[0]).toMatch(/^INSERT INTO `products` \(`id`, `name`, `price`, `qty`, `secret`, `code`, `created`, `changed`\) VALUES\n/);
    // Triggers come after every INSERT, so they do not fire on the data.
    expect(text.lastIndexOf('INSERT INTO ')).toBeLessThan(text.indexOf('TRIGGER `products_bi`'));
    expect(/^\s*(GRANT|CREATE USER)/im.test(text)).toBe(false);
  }, 120_000);

  it('values at their edges: quotes, backslashes, delimiters in strings, latin1 / utf16 / cp1251 bytes, a 3 MB row, 20 000 rows and 6 MB of hex in bounded INSERTs, AUTO_INCREMENT kept', async () => {
    backupOf(edges, 'sql-edges');
    const file = await exportScript('sql-edges');
    const text = readFileSync(file, 'latin1');
    // `many` needs several statements, each within the bound; the 3 MB row is a statement of its own.
    const many = insertStatements(text, 'many');
    expect(many.length).toBeGreaterThan(3);
    for (const s of many) expect(s.length).toBeLessThanOrEqual(INSERT_BYTES);
    // Binary values are written as hex (twice their size): the bound holds for the written size.
    const blobs = insertStatements(text, 'blobs');
    expect(blobs.length).toBeGreaterThan(5);
    for (const s of blobs) expect(s.length).toBeLessThanOrEqual(INSERT_BYTES);
    const rows = insertStatements(text, 'e');
    expect(rows.some((s) => s.length > 3_000_000 && s.split('\n(').length === 2)).toBe(true);
    expect(text.includes("_latin1 X'e9e8ff'")).toBe(true);
    expect(text.includes("_cp1251 X'cff0e8e2e5f2'")).toBe(true);
    const target = dbName('edges_loaded');
    await createDatabase(target);
    loadScript(target, file);
    const [want, got] = [await snapshotOf(edges), await snapshotOf(target)];
    expect(got.schema).toBe(want.schema);
    expect(got.schema).toContain('AUTO_INCREMENT=50000');
    expect(got.checksums).toEqual(want.checksums);
    expect(await column(target, 'SELECT HEX(l) FROM e ORDER BY id')).toEqual(['E9E8FF', '706C61696E206173636969', '', 'null']);
    expect(statSync(file).size).toBeGreaterThan(6_000_000);
  }, 180_000);

  it('Chinook with Album renamed to Record and Track excluded: the rows under the new name, the foreign key follows it', async () => {
    backupOf(chinook, 'sql-chinook');
    const excluded = ['Track', 'InvoiceLine', 'PlaylistTrack'];
    const file = await exportScript('sql-chinook', { renames: { Album: 'Record' }, exclude: excluded });
    const target = dbName('chinook_renamed');
    await createDatabase(target);
    loadScript(target, file);
    const tables = await column(target, `SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() ORDER BY 1`);
    expect(tables).toContain('Record');
    expect(tables).not.toContain('Album');
    for (const t of excluded) expect(tables).not.toContain(t);
    const [want, got] = [await checksums(chinook, [...excluded, 'Album']), await checksums(target, ['Record'])];
    expect(got).toEqual(want);
    expect((await checksums(target)).Record).toBe((await checksums(chinook)).Album);
    expect(await sql(target, `SELECT TABLE_NAME, REFERENCED_TABLE_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = 'Record'`)).toEqual([['Record', 'Artist']]);
    // The renamed table's definition is the source's under its new name.
    const show = async (db: string, t: string): Promise<string> => String((await sql(db, `SHOW CREATE TABLE ${ident(t)}`))[0]?.[1]);
    expect(await show(target, 'Record')).toBe((await show(chinook, 'Album')).replace('CREATE TABLE `Album`', 'CREATE TABLE `Record`'));
    // The other tables' schema is the source's.
    const others = schemaDump(target, ['Record']);
    expect(others).toBe(schemaDump(chinook, [...excluded, 'Album']));
  }, 120_000);

  it('every-kind with a view and a table excluded and a table renamed: the rest identical; renaming a table a view reads is refused', async () => {
    backupOf(every, 'sql-every-kind');
    const left = ['v on odd name', 'empty_table'];
    const file = await exportScript('sql-every-kind', { exclude: left, renames: { buckets: 'pails' } });
    const target = dbName('every_partial');
    await createDatabase(target);
    loadScript(target, file);
    const want = await snapshotOf(every, [...left, 'buckets']);
    const got = await snapshotOf(target, ['pails']);
    expect(got.schema).toBe(want.schema);
    expect(got.checksums).toEqual(want.checksums);
    expect((await checksums(target)).pails).toBe((await checksums(every)).buckets);
    // A view's query is not rewritten: as restore, the export refuses before writing anything.
    await expect(exportScript('sql-every-kind', { renames: { products: 'goods' } })).rejects.toThrow(/View "v_\w+" reads "products", which this export renames; a view's query is not rewritten\. Exclude the view \(--exclude "v_\w+"\), or export without renaming "products"\./);
  }, 120_000);

  it('cairn export --format sql --rename (CLI): a procedure still naming the renamed table is a warning on stderr and in --json, worded for an export', async () => {
    const db = dbName('warn');
    await createDatabase(db);
    await sql(db, `CREATE TABLE products (id INT PRIMARY KEY, qty INT NOT NULL); INSERT INTO products VALUES (1, 5);
      CREATE PROCEDURE restock(IN p_id INT) UPDATE products SET qty = qty + 1 WHERE id = p_id`);
    backupOf(db, 'sql-warn');
    const file = join(work, 'warn.sql');
    const expected = 'procedure "restock" may name "products", renamed in this script: its body is written unchanged and still uses the old name.';
    const r = cairn(['export', 'sql-warn', '--format', 'sql', '--rename', 'products=products_2', '-o', file, '--repo', repo]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr.split('\n').filter((l) => l.startsWith('cairn: warning: '))).toEqual([`cairn: warning: ${expected}`]);
    expect(r.stderr).not.toMatch(/restore|target/i);
    const text = readFileSync(file, 'utf8');
    expect(text).toContain(`-- Warning: ${expected}\n`);
    expect(text).not.toMatch(/this restore|the target/);
    // The script loads; the procedure is there, unchanged (it names `products`, as the warning says).
    const target = dbName('warn_load');
    await createDatabase(target);
    loadScript(target, file);
    expect(await column(target, `SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()`)).toEqual(['products_2']);
    expect(await column(target, `SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE()`)).toEqual(['restock']);
    const j = cairn(['export', 'sql-warn', '--format', 'sql', '--rename', 'products=products_2', '-o', file, '--force', '--json', '--repo', repo]);
    expect(j.code, j.stderr).toBe(0);
    expect(j.stderr).not.toMatch(/warning/);
    expect(JSON.parse(j.stdout)).toMatchObject({ backupId: 'sql-warn', file, warnings: [expected] });
    // Without the rename, no warning.
    const plain = cairn(['export', 'sql-warn', '--format', 'sql', '-o', file, '--force', '--json', '--repo', repo]);
    expect(JSON.parse(plain.stdout)).toMatchObject({ warnings: [] });
  }, 120_000);

  it('users and grants (--roles-with-passwords) are comments only, without the password hash; a procedure\'s comments stay with mysql --comments', async () => {
    const db = dbName('roles');
    await createDatabase(db);
    const user = `cairn_h18_${process.pid}_u`;
    users.push(user);
    await sql(db, `CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1);
      CREATE PROCEDURE p() BEGIN
        -- a line comment; with a semicolon
        /* a block comment */ SELECT COUNT(*) FROM t;
      END`);
    await sql('', `CREATE USER ${lit(user)}@'%' IDENTIFIED BY 'h18-secret'; GRANT SELECT, INSERT ON ${ident(db)}.* TO ${lit(user)}@'%'`);
    const hash = String((await sql('', `SELECT authentication_string FROM mysql.user WHERE User = ${lit(user)}`))[0]?.[0]);
    expect(hash).toMatch(/^\*[0-9A-F]{40}$/);
    const m = cairnJson<BackupManifest>(['backup', 'create', '--source', myUrl(db), '--repo', repo, '--id', 'sql-roles', '--roles', '--roles-with-passwords']);
    expect(m.collections.map((c) => c.name)).toContain('(users and grants)');
    const file = await exportScript('sql-roles');
    const text = readFileSync(file, 'utf8');
    // Left out of the script, and said so (stderr through the CLI), never with the hash.
    const cli = cairn(['export', 'sql-roles', '--format', 'sql', '-o', join(work, 'roles-cli.sql'), '--repo', repo]);
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stderr).toMatch(/cairn: warning: users and grants of the backup are left out of this script \(listed as comments at its end, without their CREATE USER statements, which carry password hashes\): create them yourself, or use cairn restore --roles\./);
    expect(cli.stderr.includes(hash)).toBe(false);
    expect(JSON.stringify(m).includes(hash)).toBe(false);
    const grantLines = text.split('\n').filter((l) => l.includes('GRANT'));
    expect(grantLines.some((l) => l.startsWith('--   GRANT SELECT, INSERT ON ') && l.includes(user))).toBe(true);
    expect(grantLines.every((l) => l.startsWith('--'))).toBe(true);
    expect(text.includes(hash)).toBe(false);
    expect(text.includes('h18-secret')).toBe(false);
    // Loaded as the mysql client does by default, the procedure's comments are stripped by the
    // client (documented); with --comments the schema is the source's.
    const plain = dbName('roles_plain');
    await createDatabase(plain);
    loadScript(plain, file);
    expect(schemaDump(plain)).not.toContain('a block comment');
    const kept = dbName('roles_comments');
    await createDatabase(kept);
    loadScript(kept, file, ['--comments']);
    const [want, got] = [await snapshotOf(db), await snapshotOf(kept)];
    expect(got.schema).toContain('-- a line comment; with a semicolon');
    expect(got.schema).toBe(want.schema);
    expect(got.checksums).toEqual(want.checksums);
  }, 120_000);

  it('a manifest whose statements would make the client do more than create the object is refused before anything is written', async () => {
    backupOf(edges, 'sql-edges');
    const repository = await Repository.open(new FileSystemStorage(repo));
    const manifest = await repository.readManifest('sql-edges');
    const tampered = (createSql: string) => {
      const m = structuredClone(manifest);
      const e = m.collections.find((c) => c.name === 'e');
      if (e === undefined) throw new Error('no table e');
      e.definition = { ...e.definition, createSql };
      return m;
    };
    const original = String(manifest.collections.find((c) => c.name === 'e')?.definition.createSql);
    for (const [createSql, why] of [
      [`${original};\nDROP DATABASE mysql`, /a ';' outside a string/],
      [`${original}\n\\! touch /tmp/cairn-h18-owned`, /a backslash outside a string/],
    ] as const) {
      const m = tampered(createSql);
      const script = mysqlDriver.openSqlScript?.({ manifest: m, entries: m.collections.map((entry) => ({ entry, targetName: entry.name })), read: async function* () {} });
      await expect(script?.next()).rejects.toThrow(why);
    }
  }, 60_000);
});
