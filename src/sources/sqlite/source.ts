/**
 * SQLite source: reads one consistent snapshot of a database file.
 *
 * Consistency: the snapshot is a single read transaction (`BEGIN` + a first read) held open on a
 * read-only connection until close(); every listCollections()/readData() call reads inside it.
 * - WAL mode: the read transaction pins a WAL read mark, so other processes keep writing and
 *   committing while the backup runs, and the backup sees the database exactly as it was when
 *   the snapshot was opened. (A checkpoint cannot move past the pinned mark, so the WAL file may
 *   grow until the backup finishes.)
 * - Rollback-journal mode (journal_mode=DELETE/TRUNCATE/PERSIST, the SQLite default): the open
 *   read transaction holds a SHARED lock on the file for the whole backup. Readers are not
 *   affected, but writers cannot commit until the backup finishes: they wait (busy_timeout) and
 *   may fail with SQLITE_BUSY. Switch the database to WAL (`PRAGMA journal_mode=WAL`) to back it
 *   up while it is being written.
 *
 * What is captured, per collection:
 * - every ordinary table ("table"): its CREATE TABLE, columns, explicit indexes, triggers,
 *   WITHOUT ROWID flag, AUTOINCREMENT counter (sqlite_sequence) and all rows. Rows keep their
 *   storage classes exactly (rows-v1). For a rowid table without an INTEGER PRIMARY KEY alias,
 *   the hidden rowid is stored as the first value of each row so that a restore keeps rowids;
 * - every view ("view"): its CREATE VIEW and any INSTEAD OF triggers on it;
 * - every virtual table of SQLite's own modules ("virtual_table", virtual.ts): its CREATE VIRTUAL
 *   TABLE and its shadow tables' rows;
 * - the file's properties ("sqlite_database", database.ts): user_version, application_id,
 *   encoding, page size, auto_vacuum, WAL, and the sqlite_stat1/stat4 rows of the tables.
 * TEXT keeps its bytes, valid UTF-8 or not (tableQuery). A WITHOUT ROWID table keyed by an
 * application collation is read from a private copy of the snapshot (collated-copy.ts). Not captured: virtual tables of other
 * modules (a warning names each), sqlite_stat2/3 and the temp schema. Application collations and
 * functions are named in warnings (app-names.ts). Generated columns are recreated by the CREATE
 * TABLE and not stored.
 *
 * readData() streams must be consumed one at a time (one SQLite connection per snapshot).
 * cairn's own server catalog (PRAGMA application_id, see catalog-mark.ts) is refused on the
 * opened connection, whatever path led to it.
 */
import { isUtf8 } from 'node:buffer';
import fs from 'node:fs';
import path from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import Database from './driver.js';
import { sqliteError } from './errors.js';
import { CairnError, NotFoundError, SourceError, throwIfAborted } from '../../core/errors.js';
import type { CollectionDescriptor, DatabaseSource, DataStream, SnapshotOptions, SourceCheckReport, SourceSnapshot } from '../types.js';
import { RowEncoder, ROWS_V1, TextBytes } from '../row-codec.js';
import { isStagingFileName, removeAbandonedStaging } from './staging.js';
import { explainOpenFailure, refuseProtectedFile, refuseServerCatalog } from './catalog-mark.js';
import { Pacer } from '../pace.js';
import { sqliteChangeEvidence } from './change-evidence.js';
import {
  quoteIdent,
  SQLITE_KIND,
  type SqliteColumn,
  type SqliteNamedSql,
  type SqliteTableDefinition,
  type SqliteViewDefinition,
} from './sql.js';
import { foldName } from './naming.js';
import { sqliteLocation } from './connection.js';
import { DATABASE_KIND, describeDatabase, statRows } from './database.js';
import { appCollations, knownFunctions, unknownFunctions } from './app-names.js';
import { CollatedCopy, needsCollatedCopy } from './collated-copy.js';
import { shadowColumns, VIRTUAL_KIND, VIRTUAL_MODULES, virtualModule, type ShadowDefinition, type VirtualDefinition } from './virtual.js';

/** How long the read snapshot waits for a writer's lock on the file by default (ms). */
export const DEFAULT_BUSY_TIMEOUT_MS = 5000;
/** Rows between AbortSignal and clock checks while streaming. */
const CHECK_ROWS = 256;

export class SqliteSource implements DatabaseSource {
  readonly kind = SQLITE_KIND;
  readonly name: string;
  readonly location: string;
  readonly path: string;

  /**
   * `file`: the database path. `busyTimeoutMs`: how long taking the read snapshot waits while
   * another connection holds a lock that keeps readers out (a rollback-journal writer
   * committing, a WAL recovery), before the backup fails (default DEFAULT_BUSY_TIMEOUT_MS).
   */
  constructor(
    file: string,
    private readonly busyTimeoutMs = DEFAULT_BUSY_TIMEOUT_MS,
  ) {
    this.path = path.resolve(file);
    this.name = path.basename(this.path, path.extname(this.path));
    this.location = sqliteLocation(this.path);
  }

  /** See DatabaseSource.changeEvidence and change-evidence.ts. */
  async changeEvidence(): Promise<string | undefined> {
    if (!fs.existsSync(this.path)) return undefined;
    return sqliteChangeEvidence(this.path);
  }

  /** See DatabaseSource.check: the file opens read-only as a database; its library's version (SQLite has no server and needs no tools). */
  async check(): Promise<SourceCheckReport> {
    if (!fs.existsSync(this.path)) throw new NotFoundError(`SQLite database not found: ${this.path}. Check the path; cairn does not create a source database.`);
    assertDatabaseFile(this.path);
    refuseProtectedFile(this.path, 'backup');
    let db: BetterSqlite3.Database | undefined;
    try {
      db = new Database(this.path, { readonly: true, fileMustExist: true, timeout: this.busyTimeoutMs });
      db.prepare('SELECT count(*) FROM sqlite_schema').get();
      refuseServerCatalog(db, this.path, 'backup');
      return { serverVersion: db.prepare('SELECT sqlite_version()').pluck().get() as string };
    } catch (err) {
      if (err instanceof CairnError) throw err;
      throw toSourceError(explainOpenFailure(err, this.path, 'backup'), this.path);
    } finally {
      db?.close();
    }
  }

  async openSnapshot(options: Partial<SnapshotOptions> = {}): Promise<SourceSnapshot> {
    const { signal } = options;
    throwIfAborted(signal);
    if (!fs.existsSync(this.path)) {
      throw new NotFoundError(
        `SQLite database not found: ${this.path}. Check the path; cairn does not create a source database.`,
      );
    }
    assertDatabaseFile(this.path);
    refuseProtectedFile(this.path, 'backup');
    // Staging files of restores killed outright next to this database (never one that may be alive).
    removeAbandonedStaging(path.dirname(this.path));
    let db: BetterSqlite3.Database | undefined;
    // Before the read transaction: a commit after this point is in the backup and makes the
    // next comparison differ (never the other way round).
    const evidence = sqliteChangeEvidence(this.path);
    try {
      db = new Database(this.path, { readonly: true, fileMustExist: true, timeout: this.busyTimeoutMs });
      db.defaultSafeIntegers(true);
      // Lets a TEXT value be read again as bytes while its table's rows are being read (tableQuery),
      // on this read-only connection, inside the snapshot's read transaction.
      db.unsafeMode(true);
      db.pragma(`busy_timeout = ${Math.max(0, Math.floor(this.busyTimeoutMs))}`);
      db.exec('BEGIN');
      // The first read starts the read transaction and fixes the snapshot (WAL read mark).
      db.prepare('SELECT count(*) FROM sqlite_schema').get();
      // What was opened, not what the path looked like when it was checked: a link swapped or
      // made since then may lead to cairn's own server catalog (see catalog-mark.ts).
      refuseServerCatalog(db, this.path, 'backup');
      const version = db.prepare('SELECT sqlite_version()').pluck().get() as string;
      const encoding = String(db.pragma('main.encoding', { simple: true }));
      const snapshot = new SqliteSnapshot(db, version, options.select ?? ((names) => new Set(names)), encoding === 'UTF-8');
      snapshot.load();
      snapshot.changeEvidence = evidence;
      // Used pages: a rough size of the data, for backup progress.
      const pages = Number(db.pragma('main.page_count', { simple: true })) - Number(db.pragma('main.freelist_count', { simple: true }));
      snapshot.estimatedBytes = Math.max(0, pages) * Number(db.pragma('main.page_size', { simple: true }));
      return snapshot;
    } catch (err) {
      if (db?.open) {
        try {
          if (db.inTransaction) db.exec('ROLLBACK');
        } catch {
          /* ignore */
        }
        db.close();
      }
      if (isBusy(err)) {
        throw new SourceError(
          `Cannot read SQLite database ${this.path}: another connection holds a lock on the file that keeps readers out (a writer committing in rollback-journal mode, or a recovery) and did not release it within ${msText(this.busyTimeoutMs)}. ` +
            'Retry when it has finished, or wait longer with --lock-timeout (API: lockTimeoutSeconds); a database in WAL mode (PRAGMA journal_mode=WAL) does not block backups.',
          { cause: err },
        );
      }
      throw toSourceError(explainOpenFailure(err, this.path, 'backup'), this.path);
    }
  }
}

/**
 * Refuses what SQLite would read as an empty database although it is none: a 0-byte file (a
 * typo'd path, a file truncated by a failed copy) opens as a database without tables, and its
 * backup would "succeed" with nothing in it. A 0-byte main file with a non-empty WAL is a real
 * database whose pages are all still in the WAL. Also refuses a restore's staging file: it is
 * half-loaded by design and never a source. Throws SourceError.
 */
function assertDatabaseFile(file: string): void {
  if (isStagingFileName(path.basename(file))) {
    throw new SourceError(
      `${file} is the staging file of a cairn restore (being loaded, or left by a killed one), not a database to back up; back up the restore's target file instead.`,
    );
  }
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    throw new NotFoundError(`SQLite database not found: ${file} (${(err as Error).message}). Check the path; cairn does not create a source database.`);
  }
  if (st.isDirectory()) throw new SourceError(`${file} is a directory, not a SQLite database; check the path.`);
  if (!st.isFile()) throw new SourceError(`${file} is not a regular file, so not a SQLite database; check the path.`);
  if (st.size === 0) {
    let walSize = 0;
    try {
      walSize = fs.statSync(`${file}-wal`).size;
    } catch {
      /* no WAL */
    }
    if (walSize === 0) throw new SourceError(`${file} is empty (0 bytes), not a SQLite database; check the path.`);
  }
}

function isBusy(err: unknown): boolean {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' && err.code.startsWith('SQLITE_BUSY');
}

/** A wait as people read it ("5 s"), for messages. */
function msText(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

function toSourceError(err: unknown, file: string): Error {
  return sqliteError(err, `Cannot read SQLite database ${file}`);
}

interface SchemaRow {
  type: string;
  name: string;
  tbl_name: string;
  sql: string | null;
}

interface TableListRow {
  name: string;
  type: string;
  wr: bigint;
}

interface XInfoRow {
  cid: bigint;
  name: string;
  type: string;
  notnull: bigint;
  dflt_value: string | null;
  pk: bigint;
  hidden: bigint;
}

interface IndexListRow {
  name: string;
  origin: string;
}

class SqliteSnapshot implements SourceSnapshot {
  readonly warnings: string[] = [];
  /** One connection holds the snapshot, and better-sqlite3 runs one statement at a time on it. */
  readonly maxParallelReads = 1;
  estimatedBytes?: number;
  changeEvidence?: string;
  private collections: CollectionDescriptor[] = [];
  private closed = false;
  private streaming = false;
  /** The rows being read: the connection cannot run anything else (nor close) until it is done. */
  private active: IterableIterator<unknown[]> | undefined;
  /** The copy WITHOUT ROWID tables keyed by an application collation are read from (collated-copy.ts). */
  private copy: CollatedCopy | undefined;

  constructor(
    private readonly db: BetterSqlite3.Database,
    readonly serverVersion: string,
    private readonly select: (names: string[]) => Set<string>,
    /** Text is read as its bytes (kept exactly, valid UTF-8 or not); UTF-16 text is converted by SQLite. */
    private readonly utf8: boolean,
  ) {}

  /** Reads the schema once, inside the snapshot transaction. */
  load(): void {
    const db = this.db;
    const schema = db
      .prepare("SELECT type, name, tbl_name, sql FROM main.sqlite_schema ORDER BY rowid")
      .all() as SchemaRow[];
    const tableList = db.prepare('PRAGMA main.table_list').all() as TableListRow[];
    const listType = new Map(tableList.map((t) => [foldName(t.name), t]));
    const hasSequence = schema.some((r) => r.type === 'table' && r.name === 'sqlite_sequence');
    const seqStmt = hasSequence ? db.prepare('SELECT seq FROM main.sqlite_sequence WHERE name = ?') : undefined;

    const byTable = (type: string, table: string): SqliteNamedSql[] =>
      schema
        .filter((r) => r.type === type && r.sql !== null && foldName(r.tbl_name) === foldName(table))
        .map((r) => ({ name: r.name, sql: r.sql as string }));

    const skipped = new Set<string>();
    /** Shadow tables carried with their virtual table (listed before or after it). */
    const carried = new Set<string>();
    const virtuals: CollectionDescriptor[] = [];
    const tables: CollectionDescriptor[] = [];
    const views: CollectionDescriptor[] = [];
    for (const row of schema) {
      if (row.type !== 'table' && row.type !== 'view') continue;
      if (foldName(row.name).startsWith('sqlite_')) continue;
      const listed = listType.get(foldName(row.name));
      if (row.type === 'view') {
        const triggers = byTable('trigger', row.name);
        const definition: SqliteViewDefinition = { sql: row.sql ?? '' };
        if (triggers.length > 0) definition.triggers = triggers;
        views.push({ name: row.name, kind: 'view', definition: { ...definition } });
        continue;
      }
      if (listed?.type === 'virtual' || /^CREATE\s+VIRTUAL\b/i.test(row.sql ?? '')) {
        const described = this.describeVirtual(row, schema, tableList, byTable);
        if (described !== undefined) {
          virtuals.push(described.collection);
          for (const n of described.shadows) carried.add(foldName(n));
          continue;
        }
        skipped.add(row.name);
        continue;
      }
      if (listed?.type === 'shadow') {
        if (!carried.has(foldName(row.name))) skipped.add(row.name);
        continue;
      }
      tables.push(this.describeTable(row, listed, byTable, seqStmt));
    }
    for (const n of [...skipped]) if (carried.has(foldName(n))) skipped.delete(n);
    if (skipped.size > 0) {
      const shadows = [...skipped].filter((n) => !this.warnings.some((w) => w.startsWith(`virtual table ${n} `)));
      if (shadows.length > 0) {
        this.warnings.push(`shadow tables of virtual tables are not backed up: ${shadows.join(', ')}`);
      }
    }
    this.warnAppCollations(schema, skipped);
    const database = describeDatabase(db, this.warnings);
    this.collections = [...tables, ...virtuals, ...views, ...(database ? [database] : [])];
  }

  /** One warning per application collation (app-names.ts) the backed-up schema names. */
  private warnAppCollations(schema: SchemaRow[], skipped: Set<string>): void {
    const users = new Map<string, { name: string; objects: string[] }>();
    for (const r of schema) {
      if (r.sql === null || skipped.has(r.tbl_name) || foldName(r.tbl_name).startsWith('sqlite_')) continue;
      for (const c of appCollations(r.sql)) {
        const entry = users.get(c.toLowerCase()) ?? { name: c, objects: [] };
        entry.objects.push(`${r.type} ${r.name}`);
        users.set(c.toLowerCase(), entry);
      }
    }
    for (const { name, objects } of users.values()) {
      this.warnings.push(
        `collation ${name} (used by ${objects.join(', ')}) is registered by the application, not by SQLite: a restore keeps these definitions but builds their indexes in BINARY order; run REINDEX ${name} from the application (with its collation registered) after a restore`,
      );
    }
    const functions = new Map<string, { name: string; objects: string[] }>();
    for (const r of schema) {
      if (r.sql === null || skipped.has(r.tbl_name) || foldName(r.tbl_name).startsWith('sqlite_') || /^CREATE\s+VIRTUAL\b/i.test(r.sql)) continue;
      for (const f of unknownFunctions(r.sql, knownFunctions())) {
        const entry = functions.get(f.toLowerCase()) ?? { name: f, objects: [] };
        entry.objects.push(`${r.type} ${r.name}`);
        functions.set(f.toLowerCase(), entry);
      }
    }
    for (const { name, objects } of functions.values()) {
      this.warnings.push(
        `function ${name}() (used by ${objects.join(', ')}) is not one of SQLite's: a restore keeps these definitions, loads the rows without evaluating CHECK constraints that call it and builds indexes on it with a placeholder (run REINDEX from the application, with the function registered); it refuses a STORED generated column computed by it`,
      );
    }
  }

  /**
   * A virtual table of one of SQLite's own modules with its shadow tables (virtual.ts), or
   * undefined (with a warning) for another module, which cairn cannot recreate.
   */
  private describeVirtual(
    row: SchemaRow,
    schema: SchemaRow[],
    tableList: TableListRow[],
    byTable: (type: string, table: string) => SqliteNamedSql[],
  ): { collection: CollectionDescriptor; shadows: string[] } | undefined {
    let mod: string | undefined;
    try {
      mod = virtualModule(row.sql ?? '', row.name);
    } catch {
      mod = undefined;
    }
    // FTS3/4's compress=/uncompress= call application functions on every row (see virtual.ts).
    const compress = mod !== undefined && /\b(?:un)?compress\s*=/i.test(row.sql ?? '');
    if (mod === undefined || !VIRTUAL_MODULES.has(foldName(mod)) || compress) {
      const triggers = schema.filter((r) => r.type === 'trigger' && r.sql !== null && foldName(r.sql).includes(foldName(row.name))).map((r) => r.name);
      this.warnings.push(
        `virtual table ${row.name} is not backed up: ${compress ? `its compress=/uncompress= options call application functions` : `its module ${mod ?? '(unreadable)'} is not one of SQLite's own (${[...VIRTUAL_MODULES].join(', ')})`}` +
          (triggers.length > 0 ? `; triggers that may use it (${triggers.join(', ')}) would fail in a restored copy, and a restore refuses those that write into it` : ''),
      );
      return undefined;
    }
    const prefix = `${foldName(row.name)}_`;
    const shadows: ShadowDefinition[] = [];
    const names: string[] = [];
    for (const t of tableList) {
      if (t.type !== 'shadow' || !foldName(t.name).startsWith(prefix)) continue;
      const shadowRow = schema.find((r) => r.type === 'table' && r.name === t.name);
      if (shadowRow === undefined) continue;
      const d = this.describeTable(shadowRow, t, byTable, undefined).definition as unknown as SqliteTableDefinition;
      shadows.push({
        suffix: t.name.slice(prefix.length),
        columns: d.columns.filter((c) => !c.generated).map((c) => c.name),
        withoutRowid: d.withoutRowid,
        rowidColumn: d.rowidColumn as ShadowDefinition['rowidColumn'],
      });
      names.push(t.name);
    }
    const definition: VirtualDefinition = { sql: row.sql ?? '', module: mod, shadows };
    return { collection: { name: row.name, kind: VIRTUAL_KIND, definition: { ...definition }, dataFormat: ROWS_V1 }, shadows: names };
  }

  private describeTable(
    row: SchemaRow,
    listed: TableListRow | undefined,
    byTable: (type: string, table: string) => SqliteNamedSql[],
    seqStmt: BetterSqlite3.Statement | undefined,
  ): CollectionDescriptor {
    const db = this.db;
    const q = quoteIdent(row.name);
    const xinfo = db.prepare(`PRAGMA main.table_xinfo(${q})`).all() as XInfoRow[];
    const columns: SqliteColumn[] = xinfo.map((c) => ({
      name: c.name,
      type: c.type,
      notNull: c.notnull !== 0n,
      defaultValue: c.dflt_value,
      pk: Number(c.pk),
      generated: c.hidden === 2n || c.hidden === 3n,
    }));
    const withoutRowid = listed !== undefined ? listed.wr !== 0n : /\)\s*WITHOUT\s+ROWID\s*$/i.test(row.sql ?? '');
    let rowidColumn: string | null = null;
    if (!withoutRowid) {
      // A rowid table has an INTEGER PRIMARY KEY alias exactly when it has a primary key that is
      // not backed by an index (origin "pk"): the alias *is* the rowid.
      const pkCols = columns.filter((c) => c.pk > 0);
      const indexes = db.prepare(`PRAGMA main.index_list(${q})`).all() as IndexListRow[];
      const hasAlias = pkCols.length === 1 && !indexes.some((i) => i.origin === 'pk');
      if (!hasAlias) {
        const names = new Set(columns.map((c) => foldName(c.name)));
        rowidColumn = ['rowid', '_rowid_', 'oid'].find((n) => !names.has(n)) ?? null;
        if (rowidColumn === null) {
          this.warnings.push(
            `table ${row.name} has columns named rowid, _rowid_ and oid: its hidden rowids are not preserved`,
          );
        }
      }
    }
    let autoincrement: string | null = null;
    if (seqStmt !== undefined) {
      const seq = seqStmt.pluck().get(row.name) as bigint | number | undefined;
      if (seq !== undefined && seq !== null) autoincrement = String(seq);
    }
    const definition: SqliteTableDefinition = {
      sql: row.sql ?? '',
      columns,
      indexes: byTable('index', row.name),
      triggers: byTable('trigger', row.name),
      withoutRowid,
      rowidColumn,
      autoincrement,
    };
    return { name: row.name, kind: 'table', definition: { ...definition }, dataFormat: ROWS_V1 };
  }

  async listCollections(): Promise<CollectionDescriptor[]> {
    this.assertOpen();
    const selected = this.selected();
    return this.collections.filter((c) => c.selectable === false || selected.has(c.name)).map((c) => ({ ...c }));
  }

  /** The selectable collections chosen by the snapshot's `select`. */
  private selected(): Set<string> {
    return this.select(this.collections.filter((c) => c.selectable !== false).map((c) => c.name));
  }

  readData(collection: CollectionDescriptor, signal?: AbortSignal): DataStream {
    this.assertOpen();
    const known = this.collections.find((c) => c.name === collection.name && c.kind === collection.kind);
    if (known === undefined) {
      throw new SourceError(`SQLite ${collection.kind} "${collection.name}" is not in this snapshot.`);
    }
    let rowCount = 0;
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    const empty = known.kind !== 'table' && known.kind !== DATABASE_KIND && known.kind !== VIRTUAL_KIND;
    async function* generate(): AsyncGenerator<Uint8Array> {
      if (empty) return;
      if (self.streaming) throw new SourceError('SQLite snapshot: read one collection at a time.');
      self.assertOpen();
      throwIfAborted(signal);
      self.streaming = true;
      let iter: IterableIterator<unknown[]>;
      let finish: ((row: unknown[]) => void) | undefined;
      if (known!.kind === DATABASE_KIND) {
        // The statistics of the tables backed up (their names lead each row).
        const selected = self.selected();
        const tables = self.collections
          .filter((c) => (c.kind === 'table' || c.kind === VIRTUAL_KIND) && selected.has(c.name))
          .flatMap((c) =>
            c.kind === 'table' ? [c.name] : (c.definition as unknown as VirtualDefinition).shadows.map((sh) => `${c.name}_${sh.suffix}`),
          )
          .map(foldName);
        iter = statRows(self.db, new Set(tables));
      } else if (known!.kind === VIRTUAL_KIND) {
        iter = self.shadowRows(known!.name, known!.definition as unknown as VirtualDefinition);
      } else {
        const def = known!.definition as unknown as SqliteTableDefinition;
        let reader = self.db;
        if (needsCollatedCopy(def)) {
          // SQLite cannot open this table without the application's collation (collated-copy.ts).
          try {
            self.copy ??= await CollatedCopy.make(self.db);
          } catch (err) {
            self.streaming = false;
            throw err;
          }
          self.assertOpen();
          reader = self.copy.db;
        }
        const query = tableQuery(reader, known!.name, def, self.utf8);
        const stmt = reader.prepare(query.sql).raw(true).safeIntegers(true);
        iter = stmt.iterate() as IterableIterator<unknown[]>;
        finish = query.finish;
      }
      self.active = iter;
      const encoder = new RowEncoder();
      try {
        let sinceCheck = 0;
        const pacer = new Pacer();
        for (const row of iter) {
          rowCount++;
          finish?.(row);
          let chunk = encoder.push(row);
          if (++sinceCheck >= CHECK_ROWS) {
            sinceCheck = 0;
            throwIfAborted(signal);
            // better-sqlite3 reads synchronously, and a consumer that has nothing to wait for
            // (unchanged data: every chunk is known) never gives the event loop a turn: a
            // signal, an HTTP request or a lock refresh would wait for the whole table.
            if (pacer.due()) {
              await pacer.pause();
              throwIfAborted(signal);
            }
          }
          // A row with a large value comes out in several pieces, handed on one at a time so
          // that the chunks cut from them are written before the next piece is made.
          for (; chunk !== undefined; chunk = encoder.next()) {
            yield chunk;
            throwIfAborted(signal);
          }
        }
        // close() while this generator waited for the event loop ends the rows early: that is
        // no complete read.
        throwIfAborted(signal);
        self.assertOpen();
        for (let last = encoder.flush(); last !== undefined; last = encoder.next()) yield last;
      } catch (err) {
        throw toSourceError(err, self.db.name);
      } finally {
        iter.return?.();
        self.active = undefined;
        self.streaming = false;
      }
    }
    return {
      get rowCount() {
        return rowCount;
      },
      [Symbol.asyncIterator]: generate,
    };
  }

  /** Every shadow table's rows, each led by the shadow's position in the definition. */
  private *shadowRows(name: string, def: VirtualDefinition): Generator<unknown[]> {
    for (const [k, shadow] of def.shadows.entries()) {
      const table: SqliteTableDefinition = {
        sql: '',
        columns: shadow.columns.map((c) => ({ name: c, type: '', notNull: false, defaultValue: null, pk: 0, generated: false })),
        indexes: [],
        triggers: [],
        withoutRowid: shadow.withoutRowid,
        rowidColumn: shadow.rowidColumn,
        autoincrement: null,
      };
      const query = tableQuery(this.db, `${name}_${shadow.suffix}`, table, this.utf8, shadowColumns(shadow));
      const stmt = this.db.prepare(query.sql).raw(true).safeIntegers(true);
      for (const row of stmt.iterate() as IterableIterator<unknown[]>) {
        query.finish(row);
        yield [BigInt(k), ...row];
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // A read paused between batches (the consumer gave up: an abort, an error) still holds the
    // statement; ROLLBACK and close() would fail with "connection is busy" until it is ended.
    try {
      this.active?.return?.();
    } catch {
      /* ended already */
    }
    this.active = undefined;
    try {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
    } finally {
      try {
        this.db.close();
      } finally {
        this.copy?.close();
      }
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new SourceError('SQLite snapshot is closed.');
  }
}

/** Data columns of a table: the hidden rowid first (when kept), then every stored column. */
export function dataColumns(def: SqliteTableDefinition): string[] {
  const cols = def.columns.filter((c) => !c.generated).map((c) => c.name);
  return def.rowidColumn !== null ? [def.rowidColumn, ...cols] : cols;
}

/** Columns whose storage class travels in one mask value (bits of a safe JavaScript integer). */
const MASK_BITS = 30;

/**
 * A row read with text as bytes: the values are followed by the masks saying which of them are
 * text; those become TextBytes (encoded as TEXT, byte for byte) and the masks go.
 */
function markText(row: unknown[], width: number): void {
  for (let m = width; m < row.length; m++) {
    let mask = Number(row[m] as bigint);
    let i = (m - width) * MASK_BITS;
    while (mask !== 0) {
      if (mask & 1) row[i] = new TextBytes(row[i] as Uint8Array);
      mask >>>= 1;
      i++;
    }
  }
  row.length = width;
}

/** A table's SELECT, and what turns each row it returns into the row to encode. */
interface TableQuery {
  sql: string;
  /** Number of data values; values after them are the query's own (rowid, masks). */
  width: number;
  /** Makes `row` the data row (in place): TEXT whose bytes are not UTF-8 as TextBytes. */
  finish(row: unknown[]): void;
}

/**
 * The SELECT of a table's data columns (`columns`, default dataColumns(def)), in rowid (or
 * primary key) order. A string from SQLite holds U+FFFD where the TEXT's bytes were not valid
 * UTF-8, so in a UTF-8 database (`utf8`) such text is read again as bytes:
 * - a rowid table: the rowid follows the values, and a string holding U+FFFD is read again by
 *   rowid, cast to BLOB (which keeps the bytes; the connection runs it while the rows are read,
 *   in the same read transaction); bytes that are valid UTF-8 keep the string;
 * - a WITHOUT ROWID table (whose key may itself be such text): every TEXT value is read as
 *   bytes, with masks after the values saying which were text (about twice as slow).
 */
function tableQuery(db: BetterSqlite3.Database, table: string, def: SqliteTableDefinition, utf8: boolean, columns?: string[]): TableQuery {
  const names = columns ?? dataColumns(def);
  const width = names.length;
  let cols = names.map(quoteIdent).join(', ');
  let finish = (row: unknown[]): void => {
    row.length = width;
  };
  const taken = new Set(names.map(foldName));
  const rowid = def.withoutRowid ? undefined : ['_rowid_', 'rowid', 'oid'].find((n) => !taken.has(n));
  if (utf8 && width > 0 && rowid !== undefined) {
    cols = `${cols}, ${rowid}`;
    const refetch = new Map<number, BetterSqlite3.Statement>();
    const from = `main.${quoteIdent(table)}`;
    finish = (row) => {
      for (let i = 0; i < width; i++) {
        const v = row[i];
        if (typeof v !== 'string' || !v.includes('\uFFFD')) continue;
        let stmt = refetch.get(i);
        if (stmt === undefined) {
          stmt = db.prepare(`SELECT CAST(${quoteIdent(names[i] as string)} AS BLOB) FROM ${from} WHERE ${rowid} = ?`).pluck().safeIntegers(true);
          refetch.set(i, stmt);
        }
        const bytes = stmt.get(row[width]) as Buffer;
        if (!isUtf8(bytes)) row[i] = new TextBytes(bytes);
      }
      row.length = width;
    };
  } else if (utf8 && width > 0) {
    const values = names.map((n) => {
      const c = quoteIdent(n);
      return n === def.rowidColumn ? c : `CASE WHEN typeof(${c}) = 'text' THEN CAST(${c} AS BLOB) ELSE ${c} END`;
    });
    const masks: string[] = [];
    for (let at = 0; at < names.length; at += MASK_BITS) {
      const bits = names.slice(at, at + MASK_BITS).map((n, k) => `((typeof(${quoteIdent(n)}) = 'text') << ${k})`);
      masks.push(`(${bits.join(' | ')})`);
    }
    cols = [...values, ...masks].join(', ');
    finish = (row) => markText(row, width);
  }
  let order: string;
  if (def.withoutRowid) {
    const pk = def.columns.filter((c) => c.pk > 0).sort((a, b) => a.pk - b.pk);
    order = pk.map((c) => quoteIdent(c.name)).join(', ');
  } else if (def.rowidColumn !== null) {
    order = quoteIdent(def.rowidColumn);
  } else {
    const alias = def.columns.find((c) => c.pk > 0);
    order = alias !== undefined ? quoteIdent(alias.name) : '';
  }
  return { sql: `SELECT ${cols} FROM main.${quoteIdent(table)}${order ? ` ORDER BY ${order}` : ''}`, width, finish };
}
