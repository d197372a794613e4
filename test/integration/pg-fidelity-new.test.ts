/**
 * Issue 14, PostgreSQL lines 1, 3, 4, 5, 7, 8: backup and restore into a NEW database, each
 * compared with what pg_dump | pg_restore makes of the same input (pg-cases.ts pgDumpReference),
 * with siblings of each kind: tables with no columns (also with every column dropped or
 * generated, read in parallel segments, under --include / --rename and overwrite); extensions'
 * configuration tables and sequences (pg_extension_config_dump, with and without a filter);
 * non-UTF8 databases (SQL_ASCII, WIN1252, also with non-ASCII names and segments), and a restore
 * into a database of another encoding; the ICU locale provider; foreign tables (a view over one,
 * a foreign partition, --include, rename); extended statistics and the other objects that hang
 * off a table (statistics targets, comments on statistics, statistics in another schema).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBackup } from '../../src/jobs/backup.js';
import { runRestore } from '../../src/jobs/restore.js';
import type { BackupManifest } from '../../src/core/schemas.js';
import { Repository } from '../../src/repo/repository.js';
import { openSource, openTarget } from '../../src/sources/index.js';
import { asciiIdent } from '../../src/sources/postgres/catalog.js';
import { databaseOptions } from '../../src/sources/postgres/new-database.js';
import { PostgresSource } from '../../src/sources/postgres/source.js';
import { parsePostgresUrl } from '../../src/sources/postgres/connection.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { CASE_OPTIONS, createCaseDatabase, databaseProperties, installCaseExtension, pgDumpReference } from '../helpers/pg-cases.js';
import { createDatabaseWith, dropDatabase, ensurePostgres, pgEnv, pgUrl, psql, schemaDump, sequenceStates, snapshotOf, tableChecksums } from '../helpers/postgres.js';

/** psql's environment for SQL holding names outside ASCII (psql's default follows the locale). */
const UTF8 = pgEnv({ PGCLIENTENCODING: 'UTF8' });
let dir: string;
let repo: Repository;
const made: string[] = [];
let counter = 0;

beforeAll(async () => {
  ensurePostgres();
  dir = mkdtempSync(join(tmpdir(), 'cairn-pgfid-'));
  repo = await Repository.init(new FileSystemStorage(join(dir, 'repo')), { compression: { algorithm: 'none', level: 'default' } });
}, 60_000);

afterAll(() => {
  for (const db of made) dropDatabase(db);
  rmSync(dir, { recursive: true, force: true });
});

/** A database name that does not exist (dropped at the end). */
function fresh(prefix: string): string {
  const name = `cairn_t_fid_${prefix}_${process.pid}_${counter++}`;
  made.push(name);
  dropDatabase(name);
  return name;
}

/** Loads case `name` (plus `extra` SQL) into a new database with its options. */
function caseDb(name: string, extra = ''): string {
  const db = createCaseDatabase(name, `fid_${name}`);
  made.push(db);
  if (extra) psql(db, extra, UTF8);
  return db;
}

function reference(db: string, name: string): string {
  const ref = pgDumpReference(db, name);
  made.push(ref);
  return ref;
}

async function backup(db: string, options: { include?: string[]; segmentMinBlocks?: number; jobs?: number } = {}): Promise<BackupManifest> {
  const id = `fid${counter++}`;
  const source =
    options.segmentMinBlocks !== undefined ? new PostgresSource(parsePostgresUrl(pgUrl(db)), { segmentMinBlocks: options.segmentMinBlocks }) : openSource(pgUrl(db));
  return runBackup({
    repo,
    source,
    id,
    compressionWorkers: 0,
    ...(options.jobs !== undefined ? { jobs: options.jobs } : {}),
    ...(options.include ? { selection: { include: options.include } } : {}),
  });
}

async function restoreNew(manifest: BackupManifest, prefix: string, options: { include?: string[]; renames?: [string, string][] } = {}): Promise<string> {
  const target = fresh(prefix);
  await runRestore({
    repo,
    backupId: manifest.id,
    target: openTarget(pgUrl(target)),
    ...(options.include ? { selection: { include: options.include } } : {}),
    ...(options.renames ? { renames: new Map(options.renames) } : {}),
  });
  return target;
}

/** Backup of case `name`, restored into a new database: equal to pg_dump | pg_restore's. */
async function sameAsPgDump(name: string, extra = ''): Promise<{ db: string; restored: string; ref: string; manifest: BackupManifest }> {
  const db = caseDb(name, extra);
  const manifest = await backup(db);
  const restored = await restoreNew(manifest, name);
  const ref = reference(db, name);
  expect(snapshotOf(restored)).toEqual(snapshotOf(ref));
  return { db, restored, ref, manifest };
}

/** Restores `manifest` into the existing database `db` with --on-conflict overwrite. */
async function overwrite(manifest: BackupManifest, db: string, include?: string[]): Promise<void> {
  await runRestore({ repo, backupId: manifest.id, target: openTarget(pgUrl(db)), onConflict: 'overwrite', ...(include ? { selection: { include } } : {}) });
}

/**
 * The stored bytes of a text column, in hex, by id. textsend converts to the client encoding,
 * which is psql's default here (the database's: stdin is not a terminal), so the bytes are the
 * stored ones; names outside ASCII are given as Unicode escapes.
 */
const bytesOf = (db: string, table: string, column: string): string =>
  psql(db, `SELECT string_agg(id || '=' || encode(textsend(${column}), 'hex'), ',' ORDER BY id) FROM ${table}`).trim();

describe('line 1: tables with no columns', () => {
  it('nocols: zero-column tables and one whose only column was dropped keep their rows, as pg_dump', async () => {
    const { restored, manifest } = await sameAsPgDump('nocols');
    expect(psql(restored, 'SELECT (SELECT count(*) FROM flags) || \',\' || (SELECT count(*) FROM was_wide)').trim()).toBe('3,2');
    expect(manifest.collections.find((c) => c.name === 'public.flags')?.rowCount).toBe(3);
  });

  it('nocols_empty: an empty zero-column table', async () => {
    const { restored } = await sameAsPgDump('nocols_empty');
    expect(psql(restored, 'SELECT count(*) FROM empty_nocols').trim()).toBe('0');
  });

  it('siblings: every column generated, a zero-column table read in parallel segments, --include and --rename of one', async () => {
    const db = caseDb(
      'nocols',
      `CREATE TABLE gen_only (x int GENERATED ALWAYS AS (7) STORED); INSERT INTO gen_only DEFAULT VALUES; INSERT INTO gen_only DEFAULT VALUES;
       CREATE TABLE big_nocols (); INSERT INTO big_nocols SELECT FROM generate_series(1, 200000);`,
    );
    const manifest = await backup(db, { segmentMinBlocks: 64, jobs: 3 });
    expect(manifest.collections.find((c) => c.name === 'public.big_nocols')?.segments?.length ?? 1).toBeGreaterThan(1);
    const restored = await restoreNew(manifest, 'nocols_seg');
    expect(snapshotOf(restored)).toEqual(snapshotOf(reference(db, 'nocols')));
    expect(psql(restored, 'SELECT count(*) FROM big_nocols').trim()).toBe('200000');

    const one = await restoreNew(manifest, 'nocols_inc', { include: ['public.flags'], renames: [['public.flags', 'public.flags2']] });
    expect(psql(one, 'SELECT count(*) FROM flags2').trim()).toBe('3');
    expect(psql(one, "SELECT count(*) FROM pg_class WHERE relname IN ('normal', 'flags')").trim()).toBe('0');

    // Overwrite into an existing database holding the same tables.
    const existing = caseDb('nocols', 'INSERT INTO flags DEFAULT VALUES;');
    await overwrite(manifest, existing, ['public.flags', 'public.was_wide', 'public.gen_only']);
    expect(psql(existing, 'SELECT (SELECT count(*) FROM flags) || \',\' || (SELECT count(*) FROM gen_only)').trim()).toBe('3,2');
  });
});

describe('line 3: extension configuration tables and sequences', () => {
  const why = installCaseExtension();

  it.skipIf(why !== undefined)(`extcfg: user rows (the filter's) and the configuration sequence's value come back, as pg_dump${why ? ` — skipped: ${why}` : ''}`, async () => {
    const { restored, manifest } = await sameAsPgDump('extcfg');
    const settings = (db: string): string => psql(db, "SELECT string_agg(k || '=' || v || '=' || is_default, ',' ORDER BY k) FROM bh_settings").trim();
    expect(settings(restored)).toBe('retention=30 days=false,schema_version=1=true,timezone=Europe/Berlin=false');
    expect(sequenceStates(restored)['public.bh_job_seq']).toBe('7:true');
    expect(manifest.collections.find((c) => c.name === 'public.bh_settings')).toMatchObject({ kind: 'extension_table', selectable: false, rowCount: 2 });
  });

  it.skipIf(why !== undefined)(`extcfg under --include of one table: the extension comes with its configuration${why ? ` — skipped: ${why}` : ''}`, async () => {
    const db = caseDb('extcfg');
    const manifest = await backup(db);
    const restored = await restoreNew(manifest, 'extcfg_inc', { include: ['public.app'] });
    expect(psql(restored, "SELECT count(*) FROM bh_settings WHERE k IN ('timezone', 'retention')").trim()).toBe('2');
    expect(sequenceStates(restored)['public.bh_job_seq']).toBe('7:true');
    // A backup of one table still carries the configuration: it goes with the extension.
    const one = await backup(db, { include: ['public.app'] });
    const again = await restoreNew(one, 'extcfg_inc2');
    expect(psql(again, "SELECT count(*) FROM bh_settings WHERE NOT is_default").trim()).toBe('2');
  });
});

/**
 * A second test extension, like pg_cron's cron.job: a configuration table registered without a
 * filter (every row is the user's), its serial's sequence registered too, a generated column.
 */
function installSecondExtension(): string | undefined {
  const r = spawnSync('pg_config', ['--sharedir'], { encoding: 'utf8' });
  if (r.status !== 0) return 'pg_config is not installed (package postgresql-server-dev-all or libpq-dev)';
  const dir = join(r.stdout.trim(), 'extension');
  try {
    writeFileSync(join(dir, 'bh_cfg2.control'), "comment = 'bh test extension: unfiltered configuration table'\ndefault_version = '1.0'\nrelocatable = false\nschema = public\n");
    writeFileSync(
      join(dir, 'bh_cfg2--1.0.sql'),
      `CREATE TABLE bh_jobs (jobid bigserial PRIMARY KEY, command text NOT NULL, label text GENERATED ALWAYS AS (upper(command)) STORED);
SELECT pg_catalog.pg_extension_config_dump('bh_jobs', '');
SELECT pg_catalog.pg_extension_config_dump('bh_jobs_jobid_seq', '');
`,
    );
  } catch (e) {
    return `cannot write the test extension into ${dir} (${(e as Error).message}); run the tests as a user that may`;
  }
  return undefined;
}

describe('line 3 sibling: a configuration table without a filter and its serial sequence (as pg_cron)', () => {
  const why = installSecondExtension();
  it.skipIf(why !== undefined)(`every row and the sequence come back, generated column recomputed, as pg_dump${why ? ` — skipped: ${why}` : ''}`, async () => {
    const db = createDatabaseWith('fid_cron', 'TEMPLATE template0');
    made.push(db);
    psql(db, `CREATE EXTENSION bh_cfg2; INSERT INTO bh_jobs (command) VALUES ('vacuum'), ('analyze'), ('reindex'); DELETE FROM bh_jobs WHERE command = 'analyze';`);
    const manifest = await backup(db);
    const restored = await restoreNew(manifest, 'cron');
    const ref = pgDumpReference(db, 'cron');
    made.push(ref);
    const jobs = (d: string): string => psql(d, "SELECT string_agg(jobid || ':' || command || ':' || label, ',' ORDER BY jobid) FROM bh_jobs").trim();
    expect(jobs(restored)).toBe('1:vacuum:VACUUM,3:reindex:REINDEX');
    expect(jobs(restored)).toBe(jobs(ref));
    expect(sequenceStates(restored)).toEqual(sequenceStates(ref));
    expect(sequenceStates(restored)['public.bh_jobs_jobid_seq']).toBe('3:true');
    psql(restored, "INSERT INTO bh_jobs (command) VALUES ('next')");
    expect(psql(restored, "SELECT jobid FROM bh_jobs WHERE command = 'next'").trim()).toBe('4');
  });
});

describe('line 4: non-UTF8 databases travel byte for byte', () => {
  it('sqlascii: bytes 0xE9 and 0x92 in a SQL_ASCII database', async () => {
    const { db, restored } = await sameAsPgDump('sqlascii');
    expect(bytesOf(restored, 'customers', 'name')).toBe(bytesOf(db, 'customers', 'name'));
    expect(bytesOf(restored, 'customers', 'name')).toContain('4a6f73e9');
    expect(databaseProperties(restored).split(' ')[0]).toBe('SQL_ASCII');
  });

  it('win1252: 0x81 (no Unicode equivalent); non-ASCII names; a table read in segments', async () => {
    const extra = `CREATE TABLE big (id int, body text); INSERT INTO big SELECT g, convert_from('\\x8081e9'::bytea, 'WIN1252') || g FROM generate_series(1, 20000) g;
      DO $$ BEGIN EXECUTE 'COMMENT ON TABLE notes IS ' || quote_literal(convert_from('\\x81'::bytea, 'WIN1252')); END $$;`;
    const db = caseDb('win1252', extra);
    // A PGCLIENTENCODING of the user's (UTF8 here) must not make pg_dump convert the archive:
    // the comment's 0x81 has no UTF8 equivalent.
    process.env.PGCLIENTENCODING = 'UTF8';
    let manifest: BackupManifest;
    try {
      manifest = await backup(db, { segmentMinBlocks: 16, jobs: 3 });
    } finally {
      delete process.env.PGCLIENTENCODING;
    }
    expect(manifest.collections.find((c) => c.name === 'public.big')?.segments?.length ?? 1).toBeGreaterThan(1);
    const restored = await restoreNew(manifest, 'win1252');
    expect(snapshotOf(restored)).toEqual(snapshotOf(reference(db, 'win1252')));
    expect(bytesOf(restored, 'notes', 'body')).toBe('1=8063616665,2=41814242');
    expect(databaseProperties(restored).split(' ')[0]).toBe('WIN1252');
  });

  it('win1252 with names outside ASCII: new database, and --include / --rename of one', async () => {
    // (The snapshot helpers read names through psql in the database's encoding: compared here by bytes.)
    const db = caseDb('win1252', `CREATE TABLE "café" ("née" text, id int); INSERT INTO "café" VALUES (convert_from('\\x81e9'::bytea, 'WIN1252'), 1);`);
    const names = (d: string): string => psql(d, "SELECT string_agg(relname || ':' || encode(convert_to(relname, 'WIN1252'), 'hex'), ',' ORDER BY relname) FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'", UTF8).trim();
    const manifest = await backup(db, { jobs: 2 });
    const restored = await restoreNew(manifest, 'win1252_names');
    expect(names(restored)).toBe(names(db));
    expect(names(restored)).toContain('café:636166e9');
    expect(bytesOf(restored, 'U&"caf\\00e9"', 'U&"n\\00e9e"')).toBe('1=81e9');
    const one = await restoreNew(manifest, 'win1252_inc', { include: ['public.café'], renames: [['public.café', 'public.crème']] });
    expect(names(one)).toBe('crème:6372e86d65');
    expect(bytesOf(one, 'U&"cr\\00e8me"', 'U&"n\\00e9e"')).toBe('1=81e9');
  });

  it('a restore into an existing database of another encoding fails naming both encodings, and changes nothing', async () => {
    const db = caseDb('win1252');
    const manifest = await backup(db);
    const utf8 = createDatabaseWith('fid_utf8', 'TEMPLATE template0 ENCODING UTF8');
    made.push(utf8);
    const before = snapshotOf(utf8);
    await expect(overwrite(manifest, utf8)).rejects.toThrow(/encoding WIN1252 and the database "[^"]+" uses UTF8/);
    expect(snapshotOf(utf8)).toEqual(before);
    // SQL_ASCII bytes that are not UTF-8: refused the same way.
    const ascii = await backup(caseDb('sqlascii'));
    await expect(overwrite(ascii, utf8)).rejects.toThrow(/encoding SQL_ASCII and the database "[^"]+" uses UTF8/);
    expect(snapshotOf(utf8)).toEqual(before);
    // Text that has an equivalent is converted: WIN1252 0xE9 is é in UTF8.
    const convertible = await backup(caseDb('win1252', `DELETE FROM notes; INSERT INTO notes VALUES (3, convert_from('\\x636166e9'::bytea, 'WIN1252'));`));
    await overwrite(convertible, utf8);
    expect(psql(utf8, 'SELECT body FROM notes').trim()).toBe('café');
  });
});

describe('line 4 kind: non-UTF8 schemas into an existing database', () => {
  // The schema's text (names, defaults, checks, comments, view bodies) in WIN1252: pg_restore
  // prints it in that encoding, cairn runs it through UTF-8 sessions. It was stored
  // double-encoded ("cafÃ©"), or the restore failed on the names.
  const schema = `CREATE TABLE café (x text DEFAULT 'né' CHECK (x <> 'ü'), y int UNIQUE);
    CREATE TABLE plain (i int REFERENCES café (y));
    INSERT INTO café VALUES ('€uro', 1); INSERT INTO plain VALUES (1);
    CREATE VIEW vé AS SELECT x AS "spalte ß" FROM café;
    COMMENT ON TABLE café IS 'résumé € Œ ™';`; // € Œ ™: WIN1252's 0x80, 0x8C, 0x99
  /** pg_dump's output (schema and rows) as bytes (Latin-1 text): psql's helpers read names as UTF-8. */
  const dump = (db: string): string =>
    spawnSync('pg_dump', ['-d', db], { env: pgEnv(), encoding: 'latin1', maxBuffer: 64 * 1024 * 1024 })
      .stdout.split('\n')
      .filter((l) => !/^\\(un)?restrict\b|^-- Dumped (from|by) /.test(l))
      .join('\n');
  const win1252 = (prefix: string): string => {
    const db = createDatabaseWith(prefix, `TEMPLATE template0 ENCODING 'WIN1252' LC_COLLATE 'C' LC_CTYPE 'C'`);
    made.push(db);
    return db;
  };

  it('WIN1252: over a copy, into an empty database in two parts, and into a UTF8 database, the schema text is the source’s', async () => {
    const db = win1252('fid_w_src');
    psql(db, schema, UTF8);
    const manifest = await backup(db);
    const copy = await restoreNew(manifest, 'w_copy');
    psql(copy, `DELETE FROM plain; UPDATE café SET x = 'changed';`, UTF8);
    await overwrite(manifest, copy);
    expect(dump(copy)).toBe(dump(db));
    expect(dump(db)).toContain('caf\u00e9'); // the name's one byte, 0xE9
    const parts = win1252('fid_w_parts');
    await runRestore({ repo, backupId: manifest.id, target: openTarget(pgUrl(parts)), selection: { include: ['public.café'] } });
    await runRestore({ repo, backupId: manifest.id, target: openTarget(pgUrl(parts)), selection: { exclude: ['public.café'] } });
    expect(dump(parts)).toBe(dump(db));
    const utf8 = createDatabaseWith('fid_w_utf8', 'TEMPLATE template0 ENCODING UTF8');
    made.push(utf8);
    await runRestore({ repo, backupId: manifest.id, target: openTarget(pgUrl(utf8)) });
    const text = (d: string): string =>
      psql(
        d,
        `SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'café'::regclass
         UNION ALL SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'café'::regclass AND contype = 'c'
         UNION ALL SELECT obj_description('café'::regclass) UNION ALL SELECT pg_get_viewdef('vé'::regclass) UNION ALL SELECT x FROM café`,
        UTF8,
      );
    expect(text(utf8)).toBe(text(db));
    expect(text(utf8)).toContain("'né'::text");
  });

  it('SQL_ASCII: schema bytes that are no characters are refused into an existing database (nothing changed), and kept into a new one', async () => {
    const db = createDatabaseWith('fid_a_src', `TEMPLATE template0 ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'`);
    made.push(db);
    // A default literal holding the byte 0xE9 (the statement is built in the server, so the byte arrives as itself).
    psql(db, `DO $$ BEGIN EXECUTE 'CREATE TABLE t (x text DEFAULT ' || quote_literal(convert_from('\\x4a6f73e9'::bytea, 'SQL_ASCII')) || ')'; END $$;`);
    const manifest = await backup(db);
    const copy = await restoreNew(manifest, 'a_copy');
    expect(dump(copy)).toBe(dump(db));
    expect(dump(db)).toContain("'Jos\u00e9'::text");
    const before = dump(copy);
    await expect(overwrite(manifest, copy)).rejects.toThrow(/holds bytes that are not characters of its SQL_ASCII encoding.*Nothing was changed\. Restore into a new database/);
    expect(dump(copy)).toBe(before);
  });
});

describe('line 5: the ICU locale provider', () => {
  it('icu: the new database has the source provider, ICU locale, collate/ctype; sort order as the source', async () => {
    const { db, restored } = await sameAsPgDump('icu');
    expect(databaseProperties(restored)).toBe(databaseProperties(db));
    expect(psql(restored, 'SELECT s FROM sorted').trim()).toBe(psql(db, 'SELECT s FROM sorted').trim());
    expect(psql(restored, 'SELECT s FROM sorted').trim()).toBe('a,ä,B,c,Z');
    const one = await restoreNew(await backup(db, { include: ['public.words'] }), 'icu_inc');
    expect(databaseProperties(one)).toBe(databaseProperties(db));
    expect(psql(one, "SELECT string_agg(w, ',' ORDER BY w) FROM words").trim()).toBe('a,ä,B,c,Z');
  });

  it('icu_range: range partitions on text under ICU restore with every row in its partition', async () => {
    const { db, restored, manifest } = await sameAsPgDump('icu_range');
    expect(tableChecksums(restored)).toEqual(tableChecksums(db));
    const def = manifest.collections.find((c) => c.name === '(schema)')?.definition as Record<string, unknown>;
    expect(def).toMatchObject({ localeProvider: 'icu', locale: 'de-DE' });
    expect(typeof def.collationVersion).toBe('string');
    // A libc database (the default) records its provider too.
    expect(CASE_OPTIONS.nocols).toBeUndefined();
  });
});

describe('line 7: foreign tables', () => {
  it('fdw: the foreign table, its server and a view over it restore; the warning says the data is not backed up', async () => {
    const { restored, manifest } = await sameAsPgDump('fdw');
    expect(psql(restored, 'SELECT line FROM host').trim()).toBe(readFileSync('/etc/hostname', 'utf8').trim());
    expect(manifest.warnings.join('\n')).toMatch(/data of foreign table public\.etc_hostname is not backed up.*definition is .*restored/);
    expect(manifest.collections.find((c) => c.name === 'public.etc_hostname')?.kind).toBe('foreign_table');
  });

  it('fdw2 and siblings: a foreign partition, a user mapping, a check constraint and comment; --include and --rename of a foreign table', async () => {
    const extra = `CREATE TABLE parts (k int, line text) PARTITION BY LIST (k);
      CREATE TABLE parts_local PARTITION OF parts FOR VALUES IN (1);
      CREATE FOREIGN TABLE parts_file PARTITION OF parts FOR VALUES IN (2) SERVER files OPTIONS (filename '/etc/hostname');
      INSERT INTO parts_local VALUES (1, 'x');
      CREATE USER MAPPING FOR CURRENT_USER SERVER files;
      ALTER FOREIGN TABLE etc_hostname ADD CONSTRAINT not_empty CHECK (line <> '');
      COMMENT ON FOREIGN TABLE etc_hostname IS 'the host name';`;
    const { restored, manifest } = await sameAsPgDump('fdw2', extra);
    expect(psql(restored, "SELECT obj_description('etc_hostname'::regclass)").trim()).toBe('the host name');
    const one = await restoreNew(manifest, 'fdw_inc', { include: ['public.etc_hostname'], renames: [['public.etc_hostname', 'public.hostname']] });
    expect(psql(one, 'SELECT count(*) FROM hostname').trim()).toBe('1');
    expect(psql(one, "SELECT count(*) FROM pg_class WHERE relname IN ('t', 'etc_hostname')").trim()).toBe('0');
    // Overwrite into a copy of the source: the foreign table is replaced like a view.
    const existing = caseDb('fdw');
    await overwrite(manifest, existing, ['public.t']);
    expect(psql(existing, 'SELECT count(*) FROM t').trim()).toBe('1');
  });

  it('a materialized view reading a foreign table (directly, through a view, through a partition, through a function) is not refreshed: the restore reaches no foreign server', async () => {
    const extra = `CREATE TABLE parts (line text) PARTITION BY LIST (line);
      CREATE FOREIGN TABLE parts_file PARTITION OF parts DEFAULT SERVER files OPTIONS (filename '/etc/hostname');
      CREATE MATERIALIZED VIEW m_direct AS SELECT line FROM etc_hostname;
      CREATE MATERIALIZED VIEW m_view AS SELECT line FROM host;
      CREATE MATERIALIZED VIEW m_part AS SELECT line FROM parts;
      CREATE MATERIALIZED VIEW m_local AS SELECT id FROM t;
      CREATE FUNCTION host_fn() RETURNS SETOF text LANGUAGE sql AS 'SELECT line FROM etc_hostname';
      CREATE MATERIALIZED VIEW m_fn AS SELECT * FROM host_fn() AS h(line);`;
    const db = caseDb('fdw', extra);
    const manifest = await backup(db);
    const target = fresh('fdw_mv');
    const result = await runRestore({ repo, backupId: manifest.id, target: openTarget(pgUrl(target)) });
    const populated = psql(target, `SELECT string_agg(relname || '=' || relispopulated, ',' ORDER BY relname) FROM pg_class WHERE relkind = 'm'`).trim();
    expect(populated).toBe('m_direct=false,m_fn=false,m_local=true,m_part=false,m_view=false');
    for (const m of ['m_direct', 'm_view', 'm_part', 'm_fn']) {
      expect(result.warnings?.join('\n')).toContain(`materialized view public.${m} is left unpopulated: it reads a foreign table`);
    }
    // The same over an existing copy.
    const existing = caseDb('fdw', extra);
    await overwrite(manifest, existing);
    expect(psql(existing, `SELECT string_agg(relname || '=' || relispopulated, ',' ORDER BY relname) FROM pg_class WHERE relkind = 'm'`).trim()).toBe(populated);
  });
});

describe('line 8: extended statistics and the objects that hang off a table', () => {
  it('idxstats: CREATE STATISTICS, statistics targets on a column and an expression index, as pg_dump', async () => {
    const { restored } = await sameAsPgDump('idxstats');
    const schema = schemaDump(restored);
    expect(schema).toContain('CREATE STATISTICS public.s_ab (dependencies) ON a, b FROM public.s;');
    expect(schema).toContain('ALTER COLUMN a SET STATISTICS 500');
    expect(schema).toMatch(/ALTER INDEX public\.s_lower_email ALTER COLUMN 1 SET STATISTICS 1000/);
  });

  it('siblings: statistics in another schema with a comment and a target, on expressions; --include of another table leaves them out', async () => {
    const extra = `CREATE SCHEMA st; CREATE STATISTICS st.s_expr (ndistinct) ON (a + b), (a * 2) FROM s;
      ALTER STATISTICS st.s_expr SET STATISTICS 300; COMMENT ON STATISTICS st.s_expr IS 'expr stats';
      CREATE TABLE other (id int); INSERT INTO other VALUES (1);
      CREATE MATERIALIZED VIEW mv AS SELECT a, b FROM s; CREATE STATISTICS s_mv (mcv) ON a, b FROM mv;`;
    const { restored, manifest } = await sameAsPgDump('idxstats', extra);
    expect(psql(restored, "SELECT obj_description(oid, 'pg_statistic_ext') || ',' || stxstattarget FROM pg_statistic_ext WHERE stxname = 's_expr'").trim()).toBe('expr stats,300');
    const one = await restoreNew(manifest, 'idx_inc', { include: ['public.other'] });
    expect(psql(one, 'SELECT count(*) FROM pg_statistic_ext').trim()).toBe('0');
    expect(psql(one, 'SELECT count(*) FROM other').trim()).toBe('1');
    const renamed = await restoreNew(manifest, 'idx_ren', { include: ['public.s'], renames: [['public.s', 'app.s2']] });
    expect(psql(renamed, "SELECT string_agg(stxname, ',' ORDER BY stxname) FROM pg_statistic_ext WHERE stxrelid = 'app.s2'::regclass").trim()).toBe('s_ab,s_expr');
  });
});

describe('the overwrite path (restore --on-conflict overwrite into an existing database) on these cases', () => {
  const why = installCaseExtension();
  for (const name of ['nocols', 'nocols_empty', 'extcfg', 'sqlascii', 'win1252', 'icu', 'icu_range', 'fdw', 'fdw2', 'idxstats']) {
    const skip = name === 'extcfg' ? why : undefined;
    it.skipIf(skip !== undefined)(`${name}: a backup overwrites a changed copy of its database, which ends as the source${skip ? ` — skipped: ${skip}` : ''}`, async () => {
      const db = caseDb(name);
      const manifest = await backup(db);
      // The existing database: the same case with its tables' rows gone.
      const existing = caseDb(name);
      const tables = psql(existing, "SELECT string_agg(format('%I.%I', schemaname, tablename), ', ') FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'bh_settings'").trim();
      if (tables !== '') psql(existing, `TRUNCATE ${tables}`);
      await overwrite(manifest, existing);
      expect(snapshotOf(existing)).toEqual(snapshotOf(db));
    });
  }
});

describe('pieces, without a server', () => {
  it('databaseOptions: the recorded provider and locale; a server too old for them is refused by name; older backups name none', () => {
    const base = { encoding: 'UTF8', collate: 'C.UTF-8', ctype: 'C.UTF-8' };
    expect(databaseOptions({ ...base, localeProvider: 'icu', locale: 'de-DE' }, 150004, 'app')).toBe(
      "ENCODING E'UTF8' LC_COLLATE E'C.UTF-8' LC_CTYPE E'C.UTF-8' LOCALE_PROVIDER icu ICU_LOCALE E'de-DE'",
    );
    expect(databaseOptions({ ...base, localeProvider: 'libc' }, 150004, 'app')).toContain('LOCALE_PROVIDER libc');
    expect(databaseOptions({ ...base, localeProvider: 'builtin', locale: 'C.UTF-8' }, 170000, 'app')).toContain("LOCALE_PROVIDER builtin BUILTIN_LOCALE E'C.UTF-8'");
    expect(() => databaseOptions({ ...base, localeProvider: 'icu', locale: 'de-DE' }, 140010, 'app')).toThrow(/icu locale provider \(locale de-DE\), which needs PostgreSQL 15/);
    expect(() => databaseOptions({ ...base, localeProvider: 'icu', locale: 'de', icuRules: '&a<b' }, 150004, 'app')).toThrow(/ICU rules, which need PostgreSQL 16/);
    expect(databaseOptions(base, 150004, 'app')).not.toContain('LOCALE_PROVIDER');
  });

  it('databaseOptions: a manifest’s locale names (untrusted) stay one literal each, whatever standard_conforming_strings says', () => {
    const hostile = ["de' TEMPLATE template1 --", "de\\' TEMPLATE template1 --", 'a\\b', "''", '\\'];
    for (const locale of hostile) {
      const options = databaseOptions({ encoding: 'UTF8', collate: locale, ctype: 'C', localeProvider: 'icu', locale }, 150004, 'app');
      const literal = /LC_COLLATE (E'(?:[^'\\]|''|\\.)*')/.exec(options)?.[1] as string;
      expect(literal, options).toBeDefined();
      expect(options).toBe(`ENCODING E'UTF8' LC_COLLATE ${literal} LC_CTYPE E'C' LOCALE_PROVIDER icu ICU_LOCALE ${literal}`);
      for (const scs of ['on', 'off']) expect(psql('postgres', `SET standard_conforming_strings = ${scs}; SELECT ${literal};`).trim()).toBe(locale);
    }
    expect(() => databaseOptions({ encoding: 'UTF8', collate: 'a\u0000', ctype: 'C' }, 150004, 'app')).toThrow(/NUL byte/);
  });

  it('asciiIdent writes any name in ASCII only (Unicode escapes), quotes and backslashes doubled', () => {
    expect(asciiIdent('plain')).toBe('"plain"');
    expect(asciiIdent('café')).toBe('U&"caf\\00e9"');
    expect(asciiIdent('a"b\\c\n😀')).toBe('U&"a""b\\\\c\\000a\\+01f600"');
  });
});

describe('line 8 kind: everything that hangs off one table goes with it under --include, as pg_dump -t', () => {
  const FUNCTION = `CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;`;
  const TABLE = (t: string, replicaIdentity = true): string => `
    CREATE TABLE ${t} (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, a int DEFAULT 3 CHECK (a > 0), b int, r int4range,
      c text COMPRESSION pglz, EXCLUDE USING gist (r WITH &&));
    ALTER TABLE ${t} ALTER COLUMN c SET STORAGE EXTERNAL, ALTER COLUMN b SET STATISTICS 200, ALTER COLUMN a SET (n_distinct = 5);
    CREATE UNIQUE INDEX ${t}_b ON ${t} (b); CREATE INDEX ${t}_partial ON ${t} (a) WHERE a > 10; ALTER TABLE ${t} CLUSTER ON ${t}_b;
    CREATE UNIQUE INDEX ${t}_ab ON ${t} (a, b); ALTER TABLE ${t} ALTER COLUMN a SET NOT NULL, ALTER COLUMN b SET NOT NULL;
    ${replicaIdentity ? `ALTER TABLE ${t} REPLICA IDENTITY USING INDEX ${t}_ab;` : ''}
    CREATE TRIGGER ${t}_touch BEFORE UPDATE ON ${t} FOR EACH ROW EXECUTE FUNCTION public.touch();
    CREATE RULE ${t}_nodel AS ON DELETE TO ${t} WHERE old.a = 42 DO INSTEAD NOTHING;
    ALTER TABLE ${t} ENABLE ROW LEVEL SECURITY; CREATE POLICY ${t}_p ON ${t} USING (a > 1);
    CREATE STATISTICS ${t}_s (ndistinct, mcv) ON a, b FROM ${t};
    COMMENT ON TABLE ${t} IS 't'; COMMENT ON COLUMN ${t}.a IS 'col'; COMMENT ON INDEX ${t}_b IS 'idx';
    COMMENT ON CONSTRAINT ${t}_pkey ON ${t} IS 'pk'; COMMENT ON TRIGGER ${t}_touch ON ${t} IS 'trg';
    COMMENT ON RULE ${t}_nodel ON ${t} IS 'rule'; COMMENT ON POLICY ${t}_p ON ${t} IS 'pol'; COMMENT ON STATISTICS ${t}_s IS 'st';
    GRANT SELECT ON ${t} TO PUBLIC; GRANT UPDATE (b) ON ${t} TO PUBLIC;
    INSERT INTO ${t} (a, b, r, c) VALUES (1, 1, '[1,2)', 'x'), (2, 2, '[3,4)', 'y');`;

  it('a table with every such object, and another with the same kinds: --include of one is pg_dump -t of it', async () => {
    const db = createDatabaseWith('fid_hang', 'TEMPLATE template0');
    made.push(db);
    psql(db, `CREATE EXTENSION btree_gist; ${FUNCTION} ${TABLE('k')} ${TABLE('other')}`);
    const manifest = await backup(db);
    const restored = await restoreNew(manifest, 'hang', { include: ['public.k'] });

    const ref = createDatabaseWith('fid_hang_ref', 'TEMPLATE template0');
    made.push(ref);
    psql(ref, `CREATE EXTENSION btree_gist; ${FUNCTION}`);
    const dump = spawnSync('pg_dump', ['--format=custom', '-t', 'public.k', '-d', db], { env: pgEnv(), maxBuffer: 64 * 1024 * 1024 });
    expect(dump.status, dump.stderr?.toString()).toBe(0);
    const load = spawnSync('pg_restore', ['--exit-on-error', '-d', ref], { env: pgEnv(), input: dump.stdout });
    expect(load.status, load.stderr?.toString()).toBe(0);
    // One difference, on purpose: pg_dump -t leaves extended statistics out (it picks them by
    // schema, not by table); cairn keeps them with their table, as a whole-database dump does.
    psql(ref, `CREATE STATISTICS public.k_s (ndistinct, mcv) ON a, b FROM public.k; COMMENT ON STATISTICS public.k_s IS 'st';`);
    expect(snapshotOf(restored)).toEqual(snapshotOf(ref));
    expect(schemaDump(restored)).toContain('CREATE STATISTICS public.k_s');
    expect(schemaDump(restored)).not.toContain('other');

  });

  it('the overwrite path: a copy whose table lost its rows gets them back, with every object', async () => {
    // With REPLICA IDENTITY USING INDEX: the staged index's entry names it by its staging name
    // there too (it failed with '"k_ab" is not an index for table "k__cairn_…"').
    const sql = `CREATE EXTENSION btree_gist; ${FUNCTION} ${TABLE('k')} ${TABLE('other')}`;
    const db = createDatabaseWith('fid_hang2', 'TEMPLATE template0');
    made.push(db);
    psql(db, sql);
    const manifest = await backup(db);
    const existing = createDatabaseWith('fid_hang_ow', 'TEMPLATE template0');
    made.push(existing);
    psql(existing, `${sql} TRUNCATE k;`);
    await overwrite(manifest, existing, ['public.k']);
    expect(snapshotOf(existing)).toEqual(snapshotOf(db));
  });
});
