/**
 * Random legal identifiers, per engine (fast-check, fixed seeds so `npm test` is repeatable):
 * any name an engine accepts must back up and restore to exactly the same name, into a new
 * database and into an existing one (conflict policy overwrite too), with --include, --exclude
 * and --rename naming it as a user writes it on the command line (NameRules.written, read back
 * by parseNameList / parseRenames and the engine's qualify).
 *
 * Names are drawn from pieces that have broken, or could break, a parser: dots, double quotes,
 * brackets, backticks, spaces at either end, `,` `=` `*`, reserved words, letters that differ
 * only by case (ASCII and not), "é" composed and decomposed, and names filled to the engine's
 * length limit (PostgreSQL: 63 bytes, multi-byte letters included). Every table gets a column,
 * an index, a unique constraint, a view, a trigger and a foreign key to the previous table
 * named after it; PostgreSQL adds a serial sequence and a partitioned table with a partition.
 * A failure prints the drawn names: keep the smallest failing one as a named test in
 * naming.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseNameList, parseRenames, selectNames } from '../../src/core/selection.js';
import { runBackup } from '../../src/jobs/backup.js';
import { runRestore } from '../../src/jobs/restore.js';
import { Repository } from '../../src/repo/repository.js';
import { openSource, openTarget } from '../../src/sources/index.js';
import { display, postgresNaming, splitName } from '../../src/sources/postgres/naming.js';
import Database from '../../src/sources/sqlite/driver.js';
import { foldName, sqliteNaming } from '../../src/sources/sqlite/naming.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { mysqlNaming } from '../../src/sources/mysql/naming.js';
import { cairn } from '../helpers/cli.js';
import * as my from '../helpers/mysql.js';
import { createDatabase, dropDatabase, ensurePostgres, ident, pgUrl, psql, snapshotOf } from '../helpers/postgres.js';

const PIECES = ['a', 'b', 'Z', '_', '7', '.', '"', ' ', ',', '=', '*', "'", '\\', '-', '$', '\t', '; Type: ', 'é', 'e\u0301', 'ß', 'Ä', 'ä', '日', 'select', 'user', 'order'];
const SQLITE_PIECES = [...PIECES, '[', ']', '`', 'cairn_staging', 'main', 'temp'];
// MySQL/MariaDB: backticks (doubled in SQL), LIKE wildcards (`%`, `_`: grants and SHOW … LIKE
// read them as patterns), characters its file-name encoding spells `@xxxx` (`@`, `/`, `.`), a
// no-break space (allowed at the end, unlike an ASCII one), Cyrillic letters differing by case.
const MYSQL_PIECES = [...PIECES, '`', '``', '%', '@', '/', '[', ']', '\u00a0', 'PRIMARY', 'Ё', 'ё', '__cairn_', '#'];

/** The longest prefix of `s` (whole characters) of at most `bytes` UTF-8 bytes. */
function truncBytes(s: string, bytes: number): string {
  let out = '';
  for (const ch of s) {
    if (Buffer.byteLength(out + ch) > bytes) break;
    out += ch;
  }
  return out;
}

/** Names of 1-8 pieces, one in nine filled to `maxBytes` (repeating its pieces). */
function identifier(pieces: string[], maxBytes: number): fc.Arbitrary<string> {
  const short = fc.array(fc.constantFrom(...pieces), { minLength: 1, maxLength: 8 }).map((a) => a.join(''));
  const full = fc.array(fc.constantFrom(...pieces), { minLength: 1, maxLength: 3 }).map((a) => truncBytes(a.join('').repeat(200), maxBytes));
  return fc.oneof({ weight: 8, arbitrary: short }, { weight: 1, arbitrary: full }).filter((s) => Buffer.byteLength(s) <= maxBytes && s.length > 0);
}

const draw = <T>(arb: fc.Arbitrary<T>, seed: number): T => fc.sample(arb, { seed, numRuns: 1 })[0] as T;

let dir: string;
let repo: Repository;
let backups = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cairn-naming-random-'));
  repo = await Repository.init(new FileSystemStorage(join(dir, 'repo')), { compression: { algorithm: 'none', level: 'default' } });
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('names as users write them (no database)', () => {
  it('PostgreSQL: every (schema, name) is one collection name, written and read back unchanged', () => {
    const part = identifier(PIECES, 63);
    fc.assert(
      fc.property(fc.uniqueArray(fc.tuple(part, part), { minLength: 1, maxLength: 6, selector: ([s, n]) => `${s}\u0000${n}` }), (pairs) => {
        const names = pairs.map(([schema, name]) => display({ schema, name }));
        // One collection name per relation: "a.b".t and a."b.t" differ.
        expect(new Set(names).size).toBe(pairs.length);
        for (const [i, n] of names.entries()) expect(splitName(n)).toEqual({ schema: pairs[i]?.[0], name: pairs[i]?.[1] });
        const written = names.map((n) => postgresNaming.written(n));
        const read = (parseNameList(written.join(',')) ?? []).map((w) => postgresNaming.qualify(w));
        expect(read).toEqual(names);
        // Each selects itself alone, even beside names its glob characters would match.
        for (const [i, w] of written.entries()) expect([...selectNames(names, { include: [w] }, postgresNaming)]).toEqual([names[i]]);
        const renames = parseRenames(written.map((w, i) => `${w}=${written[(i + 1) % written.length]}`));
        expect([...renames].map(([from, to]) => [postgresNaming.qualify(from), postgresNaming.qualify(to)])).toEqual(names.map((n, i) => [n, names[(i + 1) % names.length]]));
      }),
      { seed: 1313, numRuns: 300 },
    );
  });

  it('MySQL/MariaDB: every name is written and read back unchanged', () => {
    const name = fc.array(fc.constantFrom(...MYSQL_PIECES), { minLength: 1, maxLength: 8 }).map((a) => a.join('').slice(0, 64));
    fc.assert(
      fc.property(fc.uniqueArray(name, { minLength: 1, maxLength: 6 }), (names) => {
        const written = names.map((n) => mysqlNaming.written(n));
        expect((parseNameList(written.join(',')) ?? []).map((w) => mysqlNaming.qualify(w))).toEqual(names);
        for (const [i, w] of written.entries()) expect([...selectNames(names, { include: [w] }, mysqlNaming)]).toEqual([names[i]]);
        const renames = parseRenames(written.map((w, i) => `${w}=${written[(i + 1) % written.length]}`));
        expect([...renames].map(([from, to]) => [mysqlNaming.qualify(from), mysqlNaming.qualify(to)])).toEqual(names.map((n, i) => [n, names[(i + 1) % names.length]]));
      }),
      { seed: 1313, numRuns: 300 },
    );
  });

  it('SQLite: every name is written and read back unchanged', () => {
    fc.assert(
      fc.property(fc.uniqueArray(identifier(SQLITE_PIECES, 300), { minLength: 1, maxLength: 6, selector: foldName }), (names) => {
        const written = names.map((n) => sqliteNaming.written(n));
        expect((parseNameList(written.join(',')) ?? []).map((w) => sqliteNaming.qualify(w))).toEqual(names);
        for (const [i, w] of written.entries()) expect([...selectNames(names, { include: [w] }, sqliteNaming)]).toEqual([names[i]]);
        const renames = parseRenames(written.map((w, i) => `${w}=${written[(i + 1) % written.length]}`));
        expect([...renames].map(([from, to]) => [sqliteNaming.qualify(from), sqliteNaming.qualify(to)])).toEqual(names.map((n, i) => [n, names[(i + 1) % names.length]]));
      }),
      { seed: 1313, numRuns: 300 },
    );
  });
});

describe.sequential('PostgreSQL, random identifiers', () => {
  const made: string[] = [];
  beforeAll(() => ensurePostgres());
  afterAll(() => {
    for (const d of made) dropDatabase(d);
  });
  const fresh = (label: string): string => {
    const name = `cairn_t_nr_${label}_${process.pid}_${made.length}`;
    made.push(name);
    return name;
  };

  // Not starting with "_": PostgreSQL names a table's array type "_<table>", and a table named
  // so may take it first (CREATE TABLE then fails in the fixture, not in cairn).
  const part = identifier(PIECES, 63).filter((s) => !s.startsWith('_'));
  const spec = fc.record({
    schemas: fc.uniqueArray(part, { minLength: 1, maxLength: 2 }).filter((s) => !s.includes('public')),
    tables: fc.uniqueArray(part, { minLength: 3, maxLength: 5 }),
    // One name always at the 63-byte limit, in multi-byte letters: staging names
    // (`<name>__cairn_<id>_<n>`) and index names built from it are cut to fit.
    long: fc.constantFrom('é', '日', 'Äa', 'e\u0301').map((p) => truncBytes(p.repeat(63), 63)),
    renameTo: fc.tuple(part, part),
  }).map((s) => ({ ...s, tables: s.tables.includes(s.long) ? s.tables : [s.long, ...s.tables] }));

  /** One database per spec: each table in a schema, its objects named after it (63 bytes at most). */
  function build(db: string, s: { schemas: string[]; tables: string[] }): { schema: string; name: string }[] {
    const placed = s.tables.map((name, i) => ({ schema: ['public', ...s.schemas][i % (s.schemas.length + 1)] as string, name }));
    // The same table name in a second schema.
    placed.push({ schema: s.schemas[0] as string, name: s.tables[0] as string });
    const at = (prefix: string, name: string): string => ident(truncBytes(prefix + name, 63));
    let sql = s.schemas.map((x) => `CREATE SCHEMA ${ident(x)};`).join('\n');
    placed.forEach(({ schema, name }, i) => {
      const q = `${ident(schema)}.${ident(name)}`;
      sql += `
        CREATE TABLE ${q} (id serial PRIMARY KEY, ${ident(name)} text CONSTRAINT ${at('~', name)} UNIQUE, ref int);
        CREATE INDEX ${at('#', name)} ON ${q} (${ident(name)}, ref);
        INSERT INTO ${q} (${ident(name)}, ref) VALUES ('row ${i}', 1), ('other', NULL);
        CREATE VIEW ${ident(schema)}.${at('%', name)} AS SELECT * FROM ${q};
        CREATE FUNCTION ${ident(schema)}.${at('@', name)}() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
        CREATE TRIGGER ${at('!', name)} BEFORE INSERT ON ${q} FOR EACH ROW EXECUTE FUNCTION ${ident(schema)}.${at('@', name)}();`;
      const prev = placed[i - 1];
      if (prev) sql += `ALTER TABLE ${q} ADD CONSTRAINT ${at('&', name)} FOREIGN KEY (ref) REFERENCES ${ident(prev.schema)}.${ident(prev.name)} (id);\n`;
    });
    const parent = { schema: placed[1]?.schema as string, name: truncBytes(`(${s.tables[0]}`, 63) };
    const child = { schema: placed[2]?.schema as string, name: truncBytes(`)${s.tables[1]}`, 63) };
    sql += `CREATE TABLE ${ident(parent.schema)}.${ident(parent.name)} (k int, v text) PARTITION BY RANGE (k);
      CREATE TABLE ${ident(child.schema)}.${ident(child.name)} PARTITION OF ${ident(parent.schema)}.${ident(parent.name)} FOR VALUES FROM (0) TO (10);
      INSERT INTO ${ident(parent.schema)}.${ident(parent.name)} VALUES (1, 'in partition');`;
    psql(db, sql);
    return [...placed, parent, child];
  }

  for (const seed of [13, 2026]) {
    it(`seed ${seed}: into a new database, over itself (overwrite), in two restores into an existing one, renamed`, async () => {
      const s = draw(spec, seed);
      const context = `names (seed ${seed}): ${JSON.stringify(s)}`;
      const source = createDatabase('nr_src');
      made.push(source);
      const relations = build(source, s);
      const id = `pg-random-${++backups}`;
      await runBackup({ repo, source: openSource(pgUrl(source)), id, compressionWorkers: 0 });
      const expected = snapshotOf(source);
      const manifest = await repo.readManifest(id);
      const names = manifest.collections.filter((c) => c.selectable !== false).map((c) => c.name);
      for (const r of relations) expect(names, context).toContain(display(r));

      const target = fresh('new');
      await runRestore({ repo, backupId: id, target: openTarget(pgUrl(target)), jobs: 2 });
      expect(snapshotOf(target), context).toEqual(expected);
      await runRestore({ repo, backupId: id, target: openTarget(pgUrl(target)), onConflict: 'overwrite' });
      expect(snapshotOf(target), context).toEqual(expected);

      // The first two tables, then everything else: foreign keys and the partition's parent
      // then reference tables that exist in the target.
      const existing = createDatabase('nr_existing');
      made.push(existing);
      const first = relations.slice(0, 2).map((r) => postgresNaming.written(display(r))).join(',');
      await runRestore({ repo, backupId: id, target: openTarget(pgUrl(existing)), selection: { include: parseNameList(first) as string[] } });
      await runRestore({ repo, backupId: id, target: openTarget(pgUrl(existing)), selection: { exclude: parseNameList(first) as string[] } });
      expect(snapshotOf(existing), context).toEqual(expected);

      // Renamed into an existing database (the new-database path is in naming.test.ts).
      const renamed = createDatabase('nr_renamed');
      made.push(renamed);
      const from = relations[2] as { schema: string; name: string };
      const to = { schema: s.renameTo[0], name: s.renameTo[1] };
      const written = `${postgresNaming.written(display(from))}=${postgresNaming.written(display(to))}`;
      await runRestore({ repo, backupId: id, target: openTarget(pgUrl(renamed)), selection: { include: [postgresNaming.written(display(from))] }, renames: parseRenames([written]) });
      const tables = psql(renamed, `SELECT n.nspname || E'\\x01' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'`);
      expect(tables.replace(/\n$/, '').split('\n'), context).toEqual([`${to.schema}\u0001${to.name}`]);
      expect(psql(renamed, `SELECT count(*) FROM ${ident(to.schema)}.${ident(to.name)}`).trim(), context).toBe('2');
    }, 120_000);
  }
});

describe('SQLite, random identifiers', () => {
  const q = (s: string): string => `"${s.replace(/"/g, '""')}"`;
  const name = identifier(SQLITE_PIECES, 300);
  const spec = fc
    .record({ tables: fc.uniqueArray(name, { minLength: 3, maxLength: 6, selector: foldName }), renameTo: name })
    // One table named like the staging schema cairn attaches (cairn_staging) and a long name.
    .map((s) => ({ ...s, tables: [...new Map(['cairn_staging', 'é'.repeat(200), ...s.tables].map((t) => [foldName(t), t])).values()] }));

  /** Every object and every row: what must come back exactly. */
  function contents(file: string): unknown {
    const d = new Database(file, { readonly: true });
    try {
      const objects = d.prepare(`SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name`).all() as { type: string; name: string }[];
      const rows: Record<string, unknown> = {};
      for (const o of objects) if (o.type === 'table') rows[o.name] = d.prepare(`SELECT * FROM ${q(o.name)} ORDER BY 1`).all();
      return { objects, rows };
    } finally {
      d.close();
    }
  }

  function build(file: string, tables: string[]): void {
    const d = new Database(file);
    try {
      tables.forEach((t, i) => {
        const prev = tables[i - 1];
        d.exec(`CREATE TABLE ${q(t)} (id INTEGER PRIMARY KEY AUTOINCREMENT, ${q(t)} TEXT UNIQUE, ref INTEGER${prev === undefined ? '' : ` REFERENCES ${q(prev)}(id)`});
          CREATE INDEX ${q(`#${t}`)} ON ${q(t)}(${q(t)}, ref);
          INSERT INTO ${q(t)} (${q(t)}, ref) VALUES ('row ${i}', 1), ('other', NULL);
          CREATE VIEW ${q(`%${t}`)} AS SELECT * FROM ${q(t)};
          CREATE TRIGGER ${q(`!${t}`)} AFTER UPDATE ON ${q(t)} BEGIN UPDATE ${q(t)} SET ref = NEW.ref WHERE id = NEW.id AND ref IS NOT NEW.ref; END;`);
      });
    } finally {
      d.close();
    }
  }

  for (const seed of [13, 2026, 7, 99]) {
    it(`seed ${seed}: into a new file, over itself (overwrite), in two restores into an existing one, renamed`, async () => {
      const s = draw(spec, seed);
      const context = `names (seed ${seed}): ${JSON.stringify(s)}`;
      const source = join(dir, `random-${seed}.db`);
      build(source, s.tables);
      const id = `sqlite-random-${++backups}`;
      await runBackup({ repo, source: openSource(`sqlite://${source}`), id, compressionWorkers: 0 });
      const expected = contents(source);

      const target = join(dir, `random-${seed}-new.db`);
      await runRestore({ repo, backupId: id, target: openTarget(`sqlite://${target}`) });
      expect(contents(target), context).toEqual(expected);
      await runRestore({ repo, backupId: id, target: openTarget(`sqlite://${target}`), onConflict: 'overwrite' });
      expect(contents(target), context).toEqual(expected);

      const existing = join(dir, `random-${seed}-existing.db`);
      const first = s.tables.slice(0, 2).map((t) => sqliteNaming.written(t)).join(',');
      await runRestore({ repo, backupId: id, target: openTarget(`sqlite://${existing}`), selection: { include: parseNameList(first) as string[] } });
      await runRestore({ repo, backupId: id, target: openTarget(`sqlite://${existing}`), selection: { exclude: parseNameList(first) as string[] } });
      expect(contents(existing), context).toEqual(expected);

      // Renamed into an existing file (the new-file path is in naming.test.ts).
      const renamed = join(dir, `random-${seed}-renamed.db`);
      const seeded = new Database(renamed);
      seeded.exec('CREATE TABLE "#other" (v TEXT)');
      seeded.close();
      const from = s.tables[1] as string;
      await runRestore({
        repo,
        backupId: id,
        target: openTarget(`sqlite://${renamed}`),
        selection: { include: [sqliteNaming.written(from)] },
        renames: parseRenames([`${sqliteNaming.written(from)}=${sqliteNaming.written(s.renameTo)}`]),
      });
      const d = new Database(renamed, { readonly: true });
      try {
        expect(d.prepare(`SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name = '#other'`).pluck().all(), context).toEqual([s.renameTo, '#other']);
        expect(d.prepare(`SELECT count(*) FROM ${q(s.renameTo)}`).pluck().get(), context).toBe(2);
      } finally {
        d.close();
      }
    });
  }
});

describe.sequential('MySQL/MariaDB, random identifiers', () => {
  const made: string[] = [];
  /** Bytes of each character in the server's file-name encoding (`é` → `@0p`, `日` → `@65e5`). */
  const cost = new Map<string, number>();
  beforeAll(async () => {
    my.ensureMysql();
    const chars = [...new Set(MYSQL_PIECES.join('') + 'ЁёéÄa')];
    const row = (await my.sql('', `SELECT ${chars.map((c) => `LENGTH(CONVERT(${my.lit(c)} USING filename))`).join(', ')}`, { numbers: true }))[0] ?? [];
    chars.forEach((c, i) => cost.set(c, Number(row[i])));
  });
  afterAll(async () => {
    for (const d of made) await my.dropDatabase(d);
  });
  /**
   * A scratch database name starting with drawn pieces (a restore's staging database is named
   * after the target's first 40 characters), then the process id.
   */
  const scratch = (label: string, drawn: string): string => {
    const name = fit(`${drawn.slice(0, 24).replace(/[ \t]+$/, '')}_nr_${label}_${process.pid}_${made.length}`);
    made.push(name);
    return name;
  };
  const fresh = async (label: string, drawn: string): Promise<string> => {
    const name = scratch(label, drawn);
    await my.createDatabase(name);
    return name;
  };

  /**
   * `name` cut to what MariaDB accepts as a table, view or trigger name: 64 characters, no ASCII
   * white space at the end, and a file name (`<encoded>.TRN~`, `<encoded>.frm`) of 255 bytes at
   * most: the encoded name may take 250.
   */
  const fit = (name: string, budget = 250): string => {
    let out = name.slice(0, 64);
    const bytes = (s: string): number => [...s].reduce((n, c) => n + (cost.get(c) ?? 5), 0);
    while (out.length > 0 && (bytes(out) > budget || /[ \t\n\r\v\f]$/.test(out))) out = out.slice(0, -1);
    return out === '' ? 'x' : out;
  };

  const raw = fc.array(fc.constantFrom(...MYSQL_PIECES), { minLength: 1, maxLength: 8 }).map((a) => a.join(''));
  const full = fc.array(fc.constantFrom(...MYSQL_PIECES), { minLength: 1, maxLength: 3 }).map((a) => a.join('').repeat(64));
  const rawName = fc.oneof({ weight: 6, arbitrary: raw }, { weight: 1, arbitrary: full });
  const spec = fc.record({
    tables: fc.array(rawName, { minLength: 3, maxLength: 5 }),
    // One name filled to the 64-character limit in letters of 3-byte file names.
    long: fc.constantFrom('é', 'Äa', 'e\u0301', 'ё'),
    renameTo: rawName,
    database: raw,
  });

  /** The spec's names made legal and distinct (exactly: `A` and `a` are two tables here). */
  function names(s: { tables: string[]; long: string; renameTo: string; database: string }): { tables: string[]; renameTo: string; database: string } {
    const drawn = s.tables.map(fit);
    // A name differing from the second only by letter case: another table here.
    const swapped = [...(drawn[1] as string)].map((c) => (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase())).join('');
    // A view is named `%<table>`: no table may take that name.
    const tables = [...new Set([fit(s.long.repeat(64)), ...drawn, fit(swapped)])].filter((t) => !t.startsWith('%'));
    let renameTo = fit(s.renameTo);
    if (renameTo === '#other' || renameTo === tables[2]) renameTo = fit(`${renameTo}2`);
    return { tables, renameTo, database: s.database };
  }

  /** Each table with a column, an index, a unique key, a trigger and a view named after it, and a foreign key to the previous one. */
  async function build(db: string, tables: string[]): Promise<void> {
    const q = my.ident;
    let text = '';
    tables.forEach((t, i) => {
      // Column names fold case: `id` and `ref` are taken.
      const col = ['id', 'ref'].includes(t.toLowerCase()) ? `c${t}` : t;
      const prev = tables[i - 1];
      text += `CREATE TABLE ${q(t)} (id int AUTO_INCREMENT PRIMARY KEY, ${q(col)} varchar(40), ref int, CONSTRAINT ${q(fit(`~${t}`))} UNIQUE KEY (${q(col)}), KEY ${q(fit(`#${t}`))} (${q(col)}, ref)${
        // Foreign key names are unique per database regardless of case: numbered. Kept to 100
        // bytes of file name: InnoDB holds `<database>/<constraint>` in fixed buffers when a
        // table changes database, and the shared server crashed once (stack smashing) during
        // an overwrite here with a 250-byte one (not reproduced on a private server).
        prev === undefined ? '' : `, CONSTRAINT ${q(fit(`&${i}${t}`, 100))} FOREIGN KEY (ref) REFERENCES ${q(prev)} (id)`
      });
        INSERT INTO ${q(t)} (${q(col)}, ref) VALUES ('row ${i}', 1), ('other', NULL);
        CREATE TRIGGER ${q(fit(`!${t}`))} BEFORE INSERT ON ${q(t)} FOR EACH ROW SET NEW.ref = NEW.ref;
        CREATE VIEW ${q(fit(`%${t}`))} AS SELECT * FROM ${q(t)};\n`;
    });
    text += `CREATE SEQUENCE ${q(fit(`^${tables[0]}`))}; DO NEXTVAL(${q(fit(`^${tables[0]}`))});
      CREATE PROCEDURE ${q(fit(`@${tables[1]}`))}() SELECT 1;`;
    await my.sql(db, text);
  }

  for (const seed of [13, 2026, 7, 99, 31337, 4242]) {
    it(`seed ${seed}: into a new database, over itself (overwrite), in two restores into an existing one, renamed`, async () => {
      const s = names(draw(spec, seed));
      if (process.env.SHOW_NAMES) console.log(JSON.stringify(s));
      const context = `names (seed ${seed}): ${JSON.stringify(s)}`;
      const source = await fresh('src', s.database);
      await build(source, s.tables);
      const id = `mysql-random-${++backups}`;
      await runBackup({ repo, source: openSource(my.myUrl(source)), id, compressionWorkers: 0 });
      const expected = await my.snapshotOf(source);
      const manifest = await repo.readManifest(id);
      const collections = manifest.collections.filter((c) => c.selectable !== false).map((c) => c.name);
      for (const t of s.tables) expect(collections, context).toContain(t);

      const target = scratch('new', s.database);
      await runRestore({ repo, backupId: id, target: openTarget(my.myUrl(target)), jobs: 2 });
      expect(await my.snapshotOf(target), context).toEqual(expected);
      await runRestore({ repo, backupId: id, target: openTarget(my.myUrl(target)), onConflict: 'overwrite' });
      expect(await my.snapshotOf(target), context).toEqual(expected);

      // The first two tables, then everything else (its routine again: overwrite), as a user
      // types them: foreign keys and views then name tables that exist in the target.
      const existing = await fresh('existing', s.database);
      const first = s.tables.slice(0, 2).map((t) => mysqlNaming.written(t)).join(',');
      await runRestore({ repo, backupId: id, target: openTarget(my.myUrl(existing)), selection: { include: parseNameList(first) as string[] } });
      await runRestore({ repo, backupId: id, target: openTarget(my.myUrl(existing)), selection: { exclude: parseNameList(first) as string[] }, onConflict: 'overwrite' });
      expect(await my.snapshotOf(existing), context).toEqual(expected);

      // Renamed into an existing database, its trigger with it: through the built CLI, the
      // names as a user types them (one argument each, as a shell passes a quoted word).
      const renamed = await fresh('renamed', s.database);
      await my.sql(renamed, 'CREATE TABLE `#other` (v text)');
      const from = s.tables[2] as string;
      const cli = cairn(['restore', id, '--repo', join(dir, 'repo'), '--to', my.myUrl(renamed), '--include', mysqlNaming.written(from), '--rename', `${mysqlNaming.written(from)}=${mysqlNaming.written(s.renameTo)}`]);
      expect(cli.code, `${context}\n${cli.stderr}`).toBe(0);
      const tables = await my.column(renamed, `SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME = '#other'`);
      expect(tables, context).toEqual([s.renameTo, '#other']);
      expect(await my.column(renamed, `SELECT count(*) FROM ${my.ident(s.renameTo)}`), context).toEqual(['2']);
      expect(await my.column(renamed, `SELECT EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME = ${my.lit(fit(`!${from}`))}`), context).toEqual([s.renameTo]);
    }, 60_000);
  }
});
