/**
 * One contract suite for every database engine (as restic's backend tests and drizzle's shared
 * dialect tests): what cairn promises for any source/target pair, driven through the public
 * entry points only (openSource/openTarget, runBackup, runRestore, a file system repository).
 * Each engine supplies an EngineFixture (test/engines/<engine>.test.ts); an engine passes every
 * case or declares, with a reason, the cases it cannot support: those are printed as
 * `engine X does not support <case>: <reason>` and skipped with that reason in their title.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { CancelledError, ConflictError, CorruptionError, UsageError, throwIfAborted } from '../../src/core/errors.js';
import type { BackupManifest } from '../../src/core/schemas.js';
import { runBackup, type BackupOptions } from '../../src/jobs/backup.js';
import type { Progress } from '../../src/jobs/progress.js';
import { runRestore, type RestoreOptions, type RestoreSummary } from '../../src/jobs/restore.js';
import type { Repository } from '../../src/repo/repository.js';
import { openSource, openTarget } from '../../src/sources/index.js';
import { damageChunk, tempRepository, withPackReadHook, type TempRepository } from '../helpers/engines.js';

export const OBJECT_KINDS = ['tables', 'indexes', 'views', 'triggers', 'sequences', 'constraints'] as const;
export type ObjectKind = (typeof OBJECT_KINDS)[number];

export const CANCEL_PHASES = ['before it starts', 'while reading packs', 'while loading rows', 'at the switch'] as const;
export type CancelPhase = (typeof CANCEL_PHASES)[number];

/** Every case of the suite, by the name an engine uses to declare it unsupported. */
export type EngineCase =
  | 'round trip into a new database'
  | 'round trip into an existing database'
  | `object kind: ${ObjectKind}`
  | 'NULLs'
  | 'empty tables'
  | 'large values'
  | 'binary data'
  | 'Unicode'
  | 'include'
  | 'exclude'
  | 'rename'
  | 'rename beside the original'
  | 'conflict: fail'
  | 'conflict: overwrite'
  | 'conflict: replace'
  | `cancel ${CancelPhase}`
  | 'damaged data'
  | 'progress and row counts'
  | 'naming: ASCII case'
  | 'naming: non-ASCII case';

/**
 * How the suite drives one engine. URLs are what a user passes to `--from` / `--to`. Query
 * results are arrays of values: integers as numbers, text as strings, binary as Buffers, NULL as
 * null (the suite compares them with values it knows). The cases run concurrently, each on
 * databases of its own: a fixture must not block the event loop for long (talk to a server
 * through an async client) and must find leftovers per database, not per server or folder.
 */
type Maybe<T> = T | Promise<T>;

export interface EngineFixture {
  /** The source kind manifests record (`sqlite`, `postgres`). */
  kind: string;
  /** A fresh, empty database; returns its URL. */
  createDatabase(): Maybe<string>;
  /** The URL of a database that does not exist (a restore creates it). */
  missingDatabase(): string;
  exists(url: string): Maybe<boolean>;
  /** Runs DDL/DML: any number of statements. */
  exec(url: string, sql: string): Maybe<void>;
  query(url: string, sql: string): Promise<unknown[][]>;
  /** The whole database (schema, rows, sequence states): equal exactly when the databases are. */
  dump(url: string): Maybe<unknown>;
  /** Per object kind, a sorted description of each object (name and definition). */
  objects(url: string): Maybe<Record<ObjectKind, string[]>>;
  /** The tables of the database as collection names, sorted. */
  tables(url: string): Maybe<string[]>;
  /** What restores into `url` may leave behind (staging files, databases, relations): [] when none. */
  leftovers(url: string): Maybe<string[]>;
  /** The collection name a backup records for a table created as `table` (PostgreSQL: public.table). */
  collection(table: string): string;
  /** The column type for binary data, and a literal for given bytes. */
  blobType: string;
  blobLiteral(bytes: Buffer): string;
  /** Adds every other type and object kind the engine supports, with rows, to a database. */
  addEveryKind(url: string): Maybe<void>;
  /** Cases the engine cannot support, with the reason printed when they are skipped. */
  unsupported: Partial<Record<EngineCase, string>>;
  /** Drops every database the fixture made. */
  cleanup(): Maybe<void>;
}

const q = (name: string): string => `"${name.replace(/"/g, '""')}"`;
const lit = (s: string): string => `'${s.replace(/'/g, "''")}'`;
const once = <T>(fn: () => Promise<T>): (() => Promise<T>) => {
  let p: Promise<T> | undefined;
  return () => (p ??= fn());
};

// The data every case works with: four tables with known rows.
const UNICODE = ['Zoë Ünïcødé', '日本語の名前', 'emoji 😀🎉👩‍👩‍👧', 'O\'Brien "quoted" back\\slash', 'עברית מימין', 'e\u0301 combining', 'tab\there, line\nbreak'];
const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
const LARGE_TEXT = 'Größe 大きい 😀 value. '.repeat(45_000); // ~1.2 MB of UTF-8
const LARGE_BLOB = randomBytes(1024 * 1024);
const LARGE_ID = 100;
type Row = [number, string | null, string | null, Buffer | null];
const ITEMS: Row[] = [
  [1, 'plain', 'text', Buffer.from([0x00, 0xff])],
  [2, null, null, null],
  [3, '', '', Buffer.alloc(0)],
  ...UNICODE.map((s, i): Row => [10 + i, s, s, ALL_BYTES]),
  [LARGE_ID, 'large', LARGE_TEXT, LARGE_BLOB],
];
const SMALL: [number, string][] = [[1, 'one'], [2, 'two'], [3, 'three']];
const OTHER: [number, string][] = [[1, 'a'], [2, 'b']];
const CORE_TABLES = ['items', 'no_rows', 'other', 'small'];
const CORE_ROWS = ITEMS.length + SMALL.length + OTHER.length;

function coreSql(f: EngineFixture): string {
  const val = (v: string | number | Buffer | null): string =>
    v === null ? 'NULL' : Buffer.isBuffer(v) ? f.blobLiteral(v) : typeof v === 'number' ? String(v) : lit(v);
  const pairs = (rows: [number, string][]): string => rows.map((r) => `(${r.map(val).join(', ')})`).join(', ');
  return [
    `CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT, body TEXT, data ${f.blobType});`,
    'CREATE TABLE no_rows (id INTEGER PRIMARY KEY, note TEXT);',
    'CREATE TABLE small (id INTEGER PRIMARY KEY, v TEXT);',
    'CREATE TABLE other (id INTEGER PRIMARY KEY, v TEXT);',
    ...ITEMS.map((r) => `INSERT INTO items (id, label, body, data) VALUES (${r.map(val).join(', ')});`),
    `INSERT INTO small (id, v) VALUES ${pairs(SMALL)};`,
    `INSERT INTO other (id, v) VALUES ${pairs(OTHER)};`,
  ].join('\n');
}

/** An existing target: a `small` with other rows (same columns) and a table of its own, `keep`. */
const EXISTING_SQL = `CREATE TABLE small (id INTEGER PRIMARY KEY, v TEXT);
INSERT INTO small (id, v) VALUES (1, 'mine');
CREATE TABLE keep (id INTEGER PRIMARY KEY, v TEXT);
INSERT INTO keep (id, v) VALUES (1, 'kept');`;

export function describeEngineContract(name: string, f: EngineFixture): void {
  /** `it` for one case of the suite, or a skip that prints why the engine cannot support it. */
  function caseIt(c: EngineCase, title: string, fn: () => Promise<void>, timeout = 180_000): void {
    const reason = f.unsupported[c];
    if (reason === undefined) {
      it(`${c}: ${title}`, fn, timeout);
      return;
    }
    // Skipped with its reason printed to the run log and given to the reporter as the skip's note.
    it(`${c}: ${title}`, (ctx) => { const why = `engine ${name} does not support it: ${reason}`; console.log(`skipped: ${c}: ${title} (${why})`); ctx.skip(why); });
  }
  const supports = (c: EngineCase): boolean => f.unsupported[c] === undefined;

  const repos: TempRepository[] = [];
  const newRepo = async (label: string): Promise<TempRepository> => {
    const r = await tempRepository(`${f.kind}-${label}`);
    repos.push(r);
    return r;
  };
  const mainRepo = once(() => newRepo('main'));
  const backup = async (repo: Repository, url: string, id: string, extra: Partial<BackupOptions> = {}): Promise<BackupManifest> =>
    runBackup({ repo, source: openSource(url), id, jobs: 2, compressionWorkers: 0, ...extra });
  const restore = async (repo: Repository, id: string, url: string, extra: Partial<RestoreOptions> = {}): Promise<RestoreSummary> =>
    runRestore({ repo, backupId: id, target: openTarget(url), jobs: 2, ...extra });
  const rows = (url: string, table: string, columns = 'id, v'): Promise<unknown[][]> =>
    f.query(url, `SELECT ${columns} FROM ${q(table)} ORDER BY id`);
  const existingTarget = async (): Promise<string> => {
    const url = await f.createDatabase();
    await f.exec(url, EXISTING_SQL);
    return url;
  };

  /** The core tables in one database, backed up once as "core". */
  const core = once(async () => {
    const url = await f.createDatabase();
    await f.exec(url, coreSql(f));
    const { repo } = await mainRepo();
    const manifest = await backup(repo, url, 'core');
    return { url, repo, manifest };
  });

  // The cases run at once (each on databases of its own): most of their time is spent waiting
  // for the server and child processes, and the whole suite must stay fast on a loaded machine.
  describe.concurrent(`engine contract: ${name}`, () => {
    afterAll(async () => {
      for (const r of repos) r.remove();
      await f.cleanup();
    });

    describe('round trip of every type and object kind', () => {
      const source = once(async () => {
        const url = await f.createDatabase();
        await f.exec(url, coreSql(f));
        await f.addEveryKind(url);
        const { repo } = await mainRepo();
        await backup(repo, url, 'every-kind');
        return { url, repo, dump: await f.dump(url) };
      });
      // These databases do not change once made: their objects are listed once.
      const listed = new Map<string, Promise<Record<ObjectKind, string[]>>>();
      const objectsOf = (url: string): Promise<Record<ObjectKind, string[]>> => {
        if (!listed.has(url)) listed.set(url, Promise.resolve(f.objects(url)));
        return listed.get(url) as Promise<Record<ObjectKind, string[]>>;
      };
      const intoNew = once(async () => {
        const { repo } = await source();
        const url = f.missingDatabase();
        await restore(repo, 'every-kind', url);
        return url;
      });
      const intoExisting = once(async () => {
        const { repo } = await source();
        const url = await f.createDatabase();
        await restore(repo, 'every-kind', url, { onConflict: 'fail' });
        return url;
      });
      /** Restored copies of the source, one per supported way in. */
      const targets = async (): Promise<string[]> => [
        ...(supports('round trip into a new database') ? [await intoNew()] : []),
        ...(supports('round trip into an existing database') ? [await intoExisting()] : []),
      ];

      caseIt('round trip into a new database', 'schema, rows and sequences come back identical', async () => {
        const { dump } = await source();
        const target = await intoNew();
        expect(await f.dump(target)).toEqual(dump);
        expect(await f.leftovers(target)).toEqual([]);
      });

      caseIt('round trip into an existing database', 'an empty database receives an identical copy', async () => {
        const { dump } = await source();
        const target = await intoExisting();
        expect(await f.dump(target)).toEqual(dump);
        expect(await f.leftovers(target)).toEqual([]);
      });

      for (const kind of OBJECT_KINDS) {
        caseIt(`object kind: ${kind}`, 'the source has some, and every copy has the same', async () => {
          const { url } = await source();
          const expected = (await objectsOf(url))[kind];
          expect(expected.length, `the source database has no ${kind}: the fixture must create some`).toBeGreaterThan(0);
          for (const target of await targets()) expect((await objectsOf(target))[kind], target).toEqual(expected);
        });
      }

      const items = async (url: string): Promise<Map<number, unknown[]>> =>
        new Map((await rows(url, 'items', 'id, label, body, data')).map((r) => [Number(r[0]), r]));
      const value = (row: Row): unknown[] => [row[0], row[1], row[2], row[3]];

      caseIt('NULLs', 'NULL stays NULL, distinct from empty text and empty binary', async () => {
        for (const target of await targets()) {
          const got = await items(target);
          expect(got.get(2), target).toEqual([2, null, null, null]);
          expect(got.get(3), target).toEqual([3, '', '', Buffer.alloc(0)]);
        }
      });

      caseIt('empty tables', 'a table without rows is created, with no rows', async () => {
        for (const target of await targets()) {
          expect(await f.tables(target)).toContain(f.collection('no_rows'));
          expect(await f.query(target, 'SELECT count(*) FROM no_rows'), target).toEqual([[0]]);
        }
      });

      caseIt('large values', 'a 1 MiB binary value and a 1 MB text value come back byte for byte', async () => {
        for (const target of await targets()) {
          const row = (await items(target)).get(LARGE_ID);
          expect(row?.[1]).toBe('large');
          expect(row?.[2] === LARGE_TEXT, `${target}: large text differs`).toBe(true);
          expect(Buffer.isBuffer(row?.[3]) && LARGE_BLOB.equals(row?.[3] as Buffer), `${target}: large binary differs`).toBe(true);
        }
      });

      caseIt('binary data', 'every byte value, empty and short binary values', async () => {
        for (const target of await targets()) {
          const got = await items(target);
          expect(got.get(1), target).toEqual(value(ITEMS[0] as Row));
          for (let i = 0; i < UNICODE.length; i++) expect(got.get(10 + i)?.[3], target).toEqual(ALL_BYTES);
        }
      });

      caseIt('Unicode', 'text in many scripts, emoji, combining marks, quotes and control characters', async () => {
        for (const target of await targets()) {
          const got = await items(target);
          for (let i = 0; i < UNICODE.length; i++) expect(got.get(10 + i)?.slice(1, 3), target).toEqual([UNICODE[i], UNICODE[i]]);
        }
      });
    });

    describe('selection and renames', () => {
      caseIt('include', 'restores only the named collections; an unknown name is refused before anything is made', async () => {
        const { repo, url } = await core();
        const target = f.missingDatabase();
        const summary = await restore(repo, 'core', target, { selection: { include: ['small', 'items'] } });
        expect(await f.tables(target)).toEqual([f.collection('items'), f.collection('small')].sort());
        expect(summary.rows).toBe(ITEMS.length + SMALL.length);
        expect(await rows(target, 'small')).toEqual(await rows(url, 'small'));
        const never = f.missingDatabase();
        await expect(restore(repo, 'core', never, { selection: { include: ['small', 'no_such_table'] } })).rejects.toBeInstanceOf(UsageError);
        expect(await f.exists(never)).toBe(false);
      });

      caseIt('exclude', 'restores everything but the named collections', async () => {
        const { repo } = await core();
        const target = f.missingDatabase();
        const summary = await restore(repo, 'core', target, { selection: { exclude: ['items'] } });
        expect(await f.tables(target)).toEqual(['no_rows', 'other', 'small'].map(f.collection).sort());
        expect(summary.rows).toBe(SMALL.length + OTHER.length);
        expect(await rows(target, 'other')).toEqual(OTHER);
      });

      caseIt('rename', 'restores a collection under a new name, into a new and into an existing database', async () => {
        const { repo } = await core();
        const renames = new Map([['small', 'small_copy']]);
        const target = f.missingDatabase();
        const summary = await restore(repo, 'core', target, { selection: { include: ['small'] }, renames });
        expect(await f.tables(target)).toEqual([f.collection('small_copy')]);
        expect(await rows(target, 'small_copy')).toEqual(SMALL);
        expect(summary.renamed).toEqual({ [f.collection('small')]: f.collection('small_copy') });
        const existing = await f.createDatabase();
        await f.exec(existing, "CREATE TABLE keep (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO keep (id, v) VALUES (1, 'kept');");
        await restore(repo, 'core', existing, { selection: { include: ['small'] }, renames, onConflict: 'fail' });
        expect(await f.tables(existing)).toEqual(['keep', 'small_copy'].map(f.collection).sort());
        expect(await rows(existing, 'small_copy')).toEqual(SMALL);
        expect(await rows(existing, 'keep')).toEqual([[1, 'kept']]);
      });

      caseIt('rename beside the original', 'a renamed copy lands next to an existing table of the original name, which keeps its rows', async () => {
        const { repo } = await core();
        const existing = await existingTarget();
        await restore(repo, 'core', existing, { selection: { include: ['small'] }, renames: new Map([['small', 'small_copy']]), onConflict: 'fail' });
        expect(await rows(existing, 'small')).toEqual([[1, 'mine']]);
        expect(await rows(existing, 'small_copy')).toEqual(SMALL);
        expect(await f.tables(existing)).toEqual(['keep', 'small', 'small_copy'].map(f.collection).sort());
      });
    });

    describe('conflict policies on an existing target', () => {
      caseIt('conflict: fail', 'the default: an existing collection is refused and nothing changes', async () => {
        const { repo } = await core();
        const target = await existingTarget();
        const before = await f.dump(target);
        const err = await restore(repo, 'core', target).catch((e: unknown) => e);
        expect(err, String(err)).toBeInstanceOf(ConflictError);
        expect((err as Error).message).toContain('small');
        expect(await f.dump(target)).toEqual(before);
        expect(await f.leftovers(target)).toEqual([]);
      });

      caseIt('conflict: overwrite', 'replaces a same-shaped table, keeps the others; a different shape is refused', async () => {
        const { repo } = await core();
        const target = await existingTarget();
        const summary = await restore(repo, 'core', target, { onConflict: 'overwrite' });
        expect(summary.rows).toBe(CORE_ROWS);
        expect(await rows(target, 'small')).toEqual(SMALL);
        expect(await rows(target, 'keep')).toEqual([[1, 'kept']]);
        expect(await f.tables(target)).toEqual([...CORE_TABLES, 'keep'].map(f.collection).sort());
        expect(await f.leftovers(target)).toEqual([]);
        // Same name, other columns: refused under overwrite too, before anything changes.
        const other = await f.createDatabase();
        await f.exec(other, "CREATE TABLE small (id INTEGER PRIMARY KEY, v TEXT, extra INTEGER); INSERT INTO small (id, v, extra) VALUES (1, 'mine', 7);");
        const before = await f.dump(other);
        await expect(restore(repo, 'core', other, { onConflict: 'overwrite' })).rejects.toBeInstanceOf(ConflictError);
        expect(await f.dump(other)).toEqual(before);
        expect(await f.leftovers(other)).toEqual([]);
      });

      caseIt('conflict: replace', 'the whole target becomes the backup: its own tables gone, a changed shape replaced', async () => {
        const { repo, url } = await core();
        const target = await existingTarget();
        await f.exec(target, 'CREATE TABLE other (id INTEGER PRIMARY KEY, v TEXT, extra INTEGER);');
        const summary = await restore(repo, 'core', target, { onConflict: 'replace' });
        expect(summary.rows).toBe(CORE_ROWS);
        expect(await f.dump(target)).toEqual(await f.dump(url));
        expect(await f.tables(target)).toEqual(CORE_TABLES.map(f.collection).sort());
        expect(await f.leftovers(target)).toEqual([]);
        // A part of the backup cannot replace the whole: refused before anything changes.
        const before = await f.dump(target);
        await expect(restore(repo, 'core', target, { onConflict: 'replace', selection: { include: ['small'] } })).rejects.toBeInstanceOf(UsageError);
        expect(await f.dump(target)).toEqual(before);
      });
    });

    describe('cancellation leaves the target as it was', () => {
      for (const phase of CANCEL_PHASES) {
        caseIt(`cancel ${phase}`, 'a new database is not created; an existing one is unchanged', async () => {
          const { repo: plain } = await core();
          for (const existing of [false, true]) {
            const target = existing ? await existingTarget() : f.missingDatabase();
            const before = existing ? await f.dump(target) : undefined;
            const ac = new AbortController();
            let reached = false;
            const cancel = (): void => {
              reached = true;
              ac.abort();
            };
            if (phase === 'before it starts') cancel();
            let repo = plain;
            if (phase === 'while reading packs') repo = await withPackReadHook(plain, () => reached || cancel());
            const err = await restore(repo, 'core', target, {
              signal: ac.signal,
              onConflict: 'overwrite',
              onProgress: (p) => phase === 'while loading rows' && p.phase === 'transferring' && !reached && cancel(),
              // What the job center does: a cancel up to here stops the restore.
              onFinalizing: () => {
                if (phase === 'at the switch') cancel();
                throwIfAborted(ac.signal);
              },
            }).catch((e: unknown) => e);
            const where = existing ? 'into an existing database' : 'into a new database';
            expect(reached, `${where}: the restore never reached "${phase}"`).toBe(true);
            expect(err, `${where}: ${String(err)}`).toBeInstanceOf(CancelledError);
            if (existing) expect(await f.dump(target), where).toEqual(before);
            else expect(await f.exists(target), `${where}: a half-written database was left`).toBe(false);
            expect(await f.leftovers(target), where).toEqual([]);
          }
        });
      }
    });

    caseIt('damaged data', 'a damaged chunk in a pack is refused before the target is written; the rest restores', async () => {
      const { url } = await core();
      const damaged = await newRepo('damaged');
      const manifest = await backup(damaged.repo, url, 'core');
      const victim = manifest.collections.find((c) => c.name === f.collection('other'));
      expect(victim?.chunks.length).toBeGreaterThan(0);
      await damageChunk(damaged, victim?.chunks[0] as string);
      // Into a new database: not created.
      const fresh = f.missingDatabase();
      const err = await restore(damaged.repo, 'core', fresh).catch((e: unknown) => e);
      expect(err, String(err)).toBeInstanceOf(CorruptionError);
      expect((err as CorruptionError).collections).toEqual([f.collection('other')]);
      expect(await f.exists(fresh)).toBe(false);
      expect(await f.leftovers(fresh)).toEqual([]);
      // Into an existing database, even where overwrite would replace a table: unchanged.
      const existing = await existingTarget();
      const before = await f.dump(existing);
      await expect(restore(damaged.repo, 'core', existing, { onConflict: 'overwrite' })).rejects.toBeInstanceOf(CorruptionError);
      expect(await f.dump(existing)).toEqual(before);
      expect(await f.leftovers(existing)).toEqual([]);
      // The damage is that chunk's alone: without its collection the backup restores.
      const rest = f.missingDatabase();
      await restore(damaged.repo, 'core', rest, { selection: { include: ['small'] } });
      expect(await rows(rest, 'small')).toEqual(SMALL);
    });

    caseIt('progress and row counts', 'backup and restore report every row once, and the data holds them', async () => {
      const { url, repo } = await core();
      const backupEvents: Progress[] = [];
      const manifest = await backup(repo, url, 'progress', { onProgress: (p) => backupEvents.push({ ...p }) });
      const counts = { items: ITEMS.length, no_rows: 0, small: SMALL.length, other: OTHER.length };
      for (const [table, n] of Object.entries(counts)) {
        expect(manifest.collections.find((c) => c.name === f.collection(table))?.rowCount, table).toBe(n);
      }
      expect(manifest.totals.rows).toBe(CORE_ROWS);
      expect(backupEvents.at(-1)).toMatchObject({ phase: 'done', rows: CORE_ROWS });

      const events: Progress[] = [];
      const target = f.missingDatabase();
      const summary = await restore(repo, 'progress', target, { onProgress: (p) => events.push({ ...p }) });
      expect(summary.rows).toBe(CORE_ROWS);
      for (const [table, n] of Object.entries(counts)) expect(await f.query(target, `SELECT count(*) FROM ${q(table)}`), table).toEqual([[n]]);
      const moving = events.filter((e) => e.phase === 'transferring');
      expect(moving.length).toBeGreaterThan(0);
      for (let i = 1; i < moving.length; i++) {
        expect((moving[i] as Progress).rows).toBeGreaterThanOrEqual((moving[i - 1] as Progress).rows);
        expect((moving[i] as Progress).bytes).toBeGreaterThanOrEqual((moving[i - 1] as Progress).bytes);
      }
      expect(moving.at(-1)?.rows).toBe(CORE_ROWS);
      for (const table of ['items', 'small', 'other']) expect(moving.map((e) => e.collection)).toContain(f.collection(table));
      const done = events.at(-1);
      // Counted as the restore's summary counts them: not the database-wide entries ((schema), …).
      expect(done).toMatchObject({ phase: 'done', rows: CORE_ROWS, collectionsTotal: manifest.collections.filter((c) => c.selectable !== false).length });
      expect(done?.bytes).toBe(done?.bytesTotal);
      expect(done?.bytesTotal).toBe(manifest.totals.logicalBytes);
    });

    describe('names that differ only by case', () => {
      for (const [c, upper, lower] of [
        ['naming: ASCII case', 'Users', 'users'],
        ['naming: non-ASCII case', 'Ä', 'ä'],
      ] as const) {
        const upperRows = [[1, `${upper} 1`], [2, `${upper} 2`], [3, `${upper} 3`]];
        const lowerRows = [[10, `${lower} 10`], [20, `${lower} 20`]];
        const source = once(async () => {
          const url = await f.createDatabase();
          await f.exec(url, `CREATE TABLE ${q(upper)} (id INTEGER PRIMARY KEY, v TEXT);
            CREATE TABLE ${q(lower)} (id INTEGER PRIMARY KEY, v TEXT);
            INSERT INTO ${q(upper)} (id, v) VALUES ${upperRows.map(([id, v]) => `(${id}, ${lit(String(v))})`).join(', ')};
            INSERT INTO ${q(lower)} (id, v) VALUES ${lowerRows.map(([id, v]) => `(${id}, ${lit(String(v))})`).join(', ')};`);
          const { repo } = await mainRepo();
          const manifest = await backup(repo, url, `names-${upper === 'Ä' ? 'unicode' : 'ascii'}`);
          return { url, repo, manifest };
        });
        const check = async (target: string): Promise<void> => {
          const tables = await f.tables(target);
          expect(tables).toContain(f.collection(upper));
          expect(tables).toContain(f.collection(lower));
          expect(await rows(target, upper)).toEqual(upperRows);
          expect(await rows(target, lower)).toEqual(lowerRows);
        };
        caseIt(c, `"${upper}" and "${lower}" back up as two collections with every row`, async () => {
          const { manifest } = await source();
          const counts = Object.fromEntries(manifest.collections.map((e) => [e.name, e.rowCount]));
          expect(counts).toMatchObject({ [f.collection(upper)]: upperRows.length, [f.collection(lower)]: lowerRows.length });
        });
        caseIt(c, `"${upper}" and "${lower}" restore into a new database with every row`, async () => {
          const { repo, manifest } = await source();
          const target = f.missingDatabase();
          await restore(repo, manifest.id, target);
          await check(target);
        });
        caseIt(c, `"${upper}" and "${lower}" restore into an existing database with every row`, async () => {
          const { repo, manifest } = await source();
          const target = await f.createDatabase();
          await restore(repo, manifest.id, target);
          await check(target);
        });
      }
    });
  });
}
