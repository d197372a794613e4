/**
 * MySQL/MariaDB round trips through the built CLI: Chinook and the every-kind fixture
 * (fixtures/mysql/every-kind.sql) backed up with `cairn backup create` and restored with
 * `cairn restore` into a new and into an existing empty database must come back identical:
 * `mysqldump --no-data` (AUTO_INCREMENT counters, routines, triggers, events) and every table's
 * CHECKSUM TABLE (history rows included) and every sequence's state. Also --include / --rename,
 * and the position line of `cairn backup show`. Databases `cairn_rt_<pid>_<label>`, dropped in
 * afterAll; the comparison helpers are tested first against copies made without cairn.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackupManifest } from '../../src/core/schemas.js';
import { cairn, cairnJson, type CliResult } from '../helpers/cli.js';
import { checksums, column, createDatabase, databaseExists, dropScratchDatabases, ensureMysql, ident, lit, loadChinook, loadEveryKind, loadSqlFile, loadSqlText, MY_HOST, MY_PORT, MY_USER, MYSQL_EVERY_KIND_SQL, myUrl, schemaDump, snapshotOf, sql, stagingDatabases } from '../helpers/mysql.js';

const databases = new Set<string>();
let work: string;
let repo: string;
let chinook: string;
let every: string;

/** A scratch database name (registered for afterAll). */
function dbName(label: string): string {
  const name = `cairn_rt_${process.pid}_${label}`;
  databases.add(name);
  return name;
}

const once = <T>(fn: () => T): (() => T) => {
  let done = false;
  let value: T;
  return () => {
    if (!done) {
      value = fn();
      done = true;
    }
    return value;
  };
};

function ok(r: CliResult): CliResult {
  expect(r.code, `exit ${r.code}: ${r.stderr}`).toBe(0);
  return r;
}

const collationOf = async (db: string): Promise<string> =>
  String((await sql('', `SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ${lit(db)}`))[0]?.[0]);

/** `cairn backup create` of a database, once per id. */
const backups = new Map<string, () => BackupManifest>();
function backupOf(db: string, id: string): BackupManifest {
  if (!backups.has(id)) backups.set(id, once(() => cairnJson<BackupManifest>(['backup', 'create', '--source', myUrl(db), '--repo', repo, '--id', id])));
  return (backups.get(id) as () => BackupManifest)();
}

beforeAll(async () => {
  ensureMysql();
  work = mkdtempSync(join(tmpdir(), 'cairn-my-rt-'));
  repo = join(work, 'repo');
  ok(cairn(['repo', 'init', repo]));
  chinook = dbName('chinook');
  loadChinook(chinook);
  every = dbName('every');
  await createDatabase(every);
  await loadEveryKind(every);
}, 120_000);

afterAll(async () => {
  await dropScratchDatabases(databases);
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('comparison helpers (without cairn)', () => {
  it('a database compares equal with itself, and the every-kind fixture loads alike with the mariadb client and through mysql2', async () => {
    const first = await snapshotOf(every);
    expect(await snapshotOf(every)).toEqual(first);
    expect(first.schema).toContain('AUTO_INCREMENT=1000');
    expect(Object.keys(first.checksums)).toEqual(expect.arrayContaining(['prices', 'legacy_myisam', 'CaseTable', 'casetable', 'sequence ticket_seq']));
    const viaClient = dbName('every_client');
    await createDatabase(viaClient);
    loadSqlFile(viaClient, MYSQL_EVERY_KIND_SQL);
    const other = await snapshotOf(viaClient);
    expect(other.schema).toBe(first.schema);
    // The history of `prices` records when each load ran: its rows differ, and only those.
    const { prices: a, ...restA } = first.checksums;
    const { prices: b, ...restB } = other.checksums;
    expect(restB).toEqual(restA);
    expect(b).not.toBe(a);
  }, 60_000);

  it('a mysqldump copy compares equal where mysqldump is exact, and unequal where it is not', async () => {
    const copy = dbName('dumpcopy');
    await createDatabase(copy, await collationOf(every));
    const dump = spawnSync(
      'mysqldump',
      ['-h', MY_HOST, '-P', String(MY_PORT), '-u', MY_USER, '--routines', '--triggers', '--events', '--dump-history', '--hex-blob', '--skip-add-locks', every],
      { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 },
    );
    expect(dump.status, dump.stderr).toBe(0);
    loadSqlText(copy, dump.stdout, `mysqldump ${every}`);
    const [src, dst] = [await snapshotOf(every), await snapshotOf(copy)];
    // mysqldump keeps a column default's sequence qualified with the source database's name
    // (`nextval(`cairn_rt_…_every`.`ticket_seq`)`): the copy's default still draws from the
    // source. The comparison sees exactly that line.
    const differing = (x: string, y: string): string[] => x.split('\n').filter((l) => !y.split('\n').includes(l));
    expect(differing(dst.schema, src.schema)).toEqual([`  \`id\` int(11) NOT NULL DEFAULT nextval(${ident(every)}.\`ticket_seq\`),`]);
    // mysqldump writes FLOAT as rounded text, turns invalid dates into zeros under its own
    // sql_mode and loses a 4-byte character in an ENUM value: those tables differ, no other.
    const changed = Object.keys(src.checksums).filter((t) => src.checksums[t] !== dst.checksums[t]);
    expect(changed.sort()).toEqual(['choices', 'numbers', 'times']);
    expect(Object.keys(dst.checksums).sort()).toEqual(Object.keys(src.checksums).sort());
  }, 60_000);

  it('a changed row, AUTO_INCREMENT counter, sequence state or routine is seen', async () => {
    const db = dbName('changes');
    await createDatabase(db);
    await sql(db, 'CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(10)); INSERT INTO t (v) VALUES (\'a\'); CREATE SEQUENCE s; CREATE FUNCTION f() RETURNS INT RETURN 1');
    const base = await snapshotOf(db);
    await sql(db, "UPDATE t SET v = 'b'");
    expect((await checksums(db)).t).not.toBe(base.checksums.t);
    await sql(db, 'ALTER TABLE t AUTO_INCREMENT = 50');
    expect(schemaDump(db)).not.toBe(base.schema);
    await sql(db, 'SELECT SETVAL(s, 500)');
    expect((await checksums(db))['sequence s']).not.toBe(base.checksums['sequence s']);
    const before = schemaDump(db);
    await sql(db, 'DROP FUNCTION f; CREATE FUNCTION f() RETURNS INT RETURN 2');
    expect(schemaDump(db)).not.toBe(before);
  }, 60_000);
});

describe('cairn backup and restore, MySQL', () => {
  for (const [label, source] of [['Chinook', () => chinook], ['every-kind', () => every]] as const) {
    const id = label.toLowerCase();

    it(`${label}: restored into a new database, schema (AUTO_INCREMENT included) and every table identical`, async () => {
      const db = source();
      const manifest = backupOf(db, id);
      expect(manifest.source.kind).toBe('mysql');
      const target = dbName(`${id.replace('-', '_')}_new`);
      ok(cairn(['restore', id, '--repo', repo, '--to', myUrl(target)]));
      expect(await collationOf(target)).toBe(await collationOf(db));
      const [want, got] = [await snapshotOf(db), await snapshotOf(target)];
      expect(got.schema).toBe(want.schema);
      expect(got.checksums).toEqual(want.checksums);
      expect(await stagingDatabases(target)).toEqual([]);
    }, 60_000);

    it(`${label}: restored into an existing empty database, identical`, async () => {
      const db = source();
      backupOf(db, id);
      const target = dbName(`${id.replace('-', '_')}_existing`);
      await createDatabase(target, await collationOf(db));
      ok(cairn(['restore', id, '--repo', repo, '--to', myUrl(target)]));
      const [want, got] = [await snapshotOf(db), await snapshotOf(target)];
      expect(got.schema).toBe(want.schema);
      expect(got.checksums).toEqual(want.checksums);
      expect(await stagingDatabases(target)).toEqual([]);
    }, 60_000);
  }

  it('Chinook: --include Artist,Album with --rename Album=Record restores those two, their rows and the foreign key under the new name', async () => {
    backupOf(chinook, 'chinook');
    const target = dbName('chinook_rename');
    ok(cairn(['restore', 'chinook', '--repo', repo, '--to', myUrl(target), '--include', 'Artist,Album', '--rename', 'Album=Record']));
    expect(await column(target, `SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() ORDER BY 1`)).toEqual(['Artist', 'Record']);
    const [want, got] = [await checksums(chinook), await checksums(target)];
    expect(got).toEqual({ Artist: want.Artist, Record: want.Album });
    expect(await column(target, 'SELECT COUNT(*) FROM `Record`')).toEqual(await column(chinook, 'SELECT COUNT(*) FROM `Album`'));
    // The foreign key comes along, renamed with its table, pointing at the restored Artist…
    expect(await sql(target, `SELECT TABLE_NAME, REFERENCED_TABLE_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE()`)).toEqual([['Record', 'Artist']]);
    // …and holds.
    await expect(sql(target, 'INSERT INTO `Record` (`AlbumId`, `Title`, `ArtistId`) VALUES (100000, \'orphan\', 999999)')).rejects.toMatchObject({ code: 'ER_NO_REFERENCED_ROW_2' });
    // The rename is recorded in the output: nothing is created under the old name.
    expect(await databaseExists(target)).toBe(true);
    expect(await stagingDatabases(target)).toEqual([]);
  }, 60_000);

  it('backup show prints the backup\'s binary log position (or why there is none)', async () => {
    backupOf(chinook, 'chinook');
    const r = ok(cairn(['backup', 'show', 'chinook', '--repo', repo]));
    const line = r.stdout.split('\n').find((l) => l.startsWith('Position'));
    expect(line, r.stdout).toBeDefined();
    const logBin = String((await sql('', 'SELECT @@log_bin'))[0]?.[0]);
    if (logBin === '0') expect(line).toMatch(/binary log is off/);
    else expect(line).toMatch(/binlog \S+ offset \d+/);
  }, 60_000);
});
