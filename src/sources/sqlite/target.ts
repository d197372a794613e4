/**
 * SQLite restore target.
 *
 * A restore never writes into the target until every byte of every collection has been read,
 * verified and loaded: all data goes first into a staging file next to the target
 * (".<basename>.cairn-restore-<owner>-<random>", journal and fsync off: it is thrown away on
 * failure; see staging.ts for what removes the file of a restore killed outright).
 * Then it is switched in:
 * - target file missing: the staging file is fsynced and linked/renamed into place, and the
 *   directory fsynced, so the target appears complete or not at all;
 * - target file exists: one `BEGIN IMMEDIATE` transaction on the target attaches the staging
 *   file, drops what is being overwritten, recreates each table from its original SQL (renamed
 *   when asked), copies the rows across (keeping rowids), then indexes, AUTOINCREMENT counters,
 *   triggers and views, and commits. Foreign-key enforcement is off during the switch.
 * Any failure or abort before the switch leaves the target byte-identical; a failure during the
 * switch rolls the transaction back. An AbortSignal is honoured until the switch starts.
 * cairn's own server catalog (PRAGMA application_id, see catalog-mark.ts) is never written: the
 * opened target is checked in check() and again under the switch's write lock, whatever path
 * (symbolic or hard link, a parent folder's link) led to it.
 *
 * Renames rewrite the table name in its CREATE TABLE (including self-references), in its
 * indexes and triggers (ON/FROM/INTO/UPDATE/JOIN/REFERENCES positions and qualified columns),
 * and give its indexes and triggers new names (old table name replaced, or the new table name
 * prefixed) since those names are database-wide. A renamed view only gets its own name changed.
 */
import fs from 'node:fs';
import path from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import Database from './driver.js';
import { z } from 'zod';
import {
  CairnError,
  ConflictError,
  CorruptionError,
  SourceError,
  throwIfAborted,
} from '../../core/errors.js';
import type {
  ConflictPolicy,
  RestoreItem,
  RestoreOptions,
  RestoreResult,
  RestoreTarget,
} from '../types.js';
import type { CollectionEntry } from '../../core/schemas.js';
import { RowDecoder, ROWS_V1 } from '../row-codec.js';
import {
  quoteIdent,
  renameCreatedObject,
  renamedObjectName,
  renameTableReferences,
  SQLITE_KIND,
  type SqliteColumn,
  type SqliteNamedSql,
  type SqliteTableDefinition,
} from './sql.js';
import { foldName } from './naming.js';
import { sqliteLocation } from './connection.js';
import { dataColumns } from './source.js';
import { createStagingFile, removeAbandonedStaging, removeStagingFile, stagingPath } from './staging.js';
import { explainOpenFailure, refuseProtectedFile, refuseServerCatalog } from './catalog-mark.js';
import { checkDefinition, MAX_NAME_LENGTH, preview, runDefinition } from './validate.js';
import { Pacer } from '../pace.js';

const BUSY_TIMEOUT_MS = 5000;
const PROGRESS_ROWS = 65536;
/** Rows per staging transaction. */
const BATCH_ROWS = 262144;
const STAGING_SCHEMA = 'cairn_staging';

const NamedSqlSchema = z.object({ name: z.string(), sql: z.string() });
const TableDefinitionSchema = z.object({
  sql: z.string().min(1),
  columns: z.array(
    z.object({
      name: z.string(),
      type: z.string(),
      notNull: z.boolean(),
      defaultValue: z.string().nullable(),
      pk: z.number().int(),
      generated: z.boolean().optional().default(false),
    }),
  ),
  indexes: z.array(NamedSqlSchema),
  triggers: z.array(NamedSqlSchema),
  withoutRowid: z.boolean(),
  rowidColumn: z.string().nullable(),
  autoincrement: z.string().regex(/^-?\d+$/).nullable(),
});
const ViewDefinitionSchema = z.object({
  sql: z.string().min(1),
  triggers: z.array(NamedSqlSchema).optional(),
});

interface PlannedBase {
  item: RestoreItem;
  /** Name created in the target. */
  name: string;
  createSql: string;
  triggers: SqliteNamedSql[];
}

interface PlannedTable extends PlannedBase {
  kind: 'table';
  def: SqliteTableDefinition;
  indexes: SqliteNamedSql[];
  /** Columns in the data stream / INSERT (hidden rowid first when kept). */
  columns: string[];
}

interface PlannedView extends PlannedBase {
  kind: 'view';
}

type Planned = PlannedTable | PlannedView;

interface ExistingObject {
  type: string;
  name: string;
  tblName: string;
  sql: string | null;
}

export class SqliteTarget implements RestoreTarget {
  readonly kind = SQLITE_KIND;
  readonly location: string;
  readonly path: string;

  constructor(file: string) {
    this.path = path.resolve(file);
    this.location = sqliteLocation(this.path);
  }

  async check(items: RestoreItem[], onConflict: ConflictPolicy): Promise<void> {
    const plan = planItems(items);
    if (!fs.existsSync(this.path)) return;
    const db = this.openTarget(true);
    try {
      // Early, so that nothing of the catalog (its tables' columns) is quoted in a conflict;
      // checked again under the write lock before anything changes (switchIntoExisting).
      refuseServerCatalog(db, this.path, 'restore');
      this.assertNoConflicts(db, plan, onConflict);
    } finally {
      db.close();
    }
  }

  async restore(items: RestoreItem[], options: RestoreOptions): Promise<RestoreResult> {
    const { signal, onProgress, onConflict } = options;
    throwIfAborted(signal);
    // Staging files of restores killed outright (this folder only; never one that may be
    // alive), even when this restore is refused.
    removeAbandonedStaging(path.dirname(this.path));
    await this.check(items, onConflict);
    const plan = planItems(items);
    // A backup without tables restores into an existing file as nothing to do; a missing target
    // is still created (empty), so that the restore gives back what the backup holds.
    if (plan.length === 0 && fs.existsSync(this.path)) return { collections: 0, rows: 0 };

    const staging = stagingPath(this.path);
    let rows = 0;
    try {
      rows = await loadStaging(staging, plan, signal, onProgress);
      throwIfAborted(signal);
      options.onFinalizing?.();
      if (!(await this.linkIntoPlace(staging))) {
        await this.switchIntoExisting(staging, plan, onConflict);
      }
    } finally {
      removeStagingFile(staging);
    }
    return { collections: plan.length, rows };
  }

  private openTarget(readonly: boolean): BetterSqlite3.Database {
    refuseProtectedFile(this.path, 'restore');
    let db: BetterSqlite3.Database | undefined;
    try {
      db = new Database(this.path, { readonly, fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
      db.defaultSafeIntegers(true);
      db.prepare('SELECT count(*) FROM main.sqlite_schema').get();
      return db;
    } catch (err) {
      db?.close();
      throw sqliteError(explainOpenFailure(err, this.path, 'restore'), `Cannot open restore target ${this.path}`);
    }
  }

  private assertNoConflicts(db: BetterSqlite3.Database, plan: Planned[], onConflict: ConflictPolicy): void {
    const problems = findConflicts(db, plan, onConflict, this.path);
    if (problems.length === 1) throw new ConflictError(problems[0] as string);
    if (problems.length > 1) {
      throw new ConflictError(
        `Cannot restore into ${this.path}: ${problems.length} conflicts:\n${problems.map((p) => `- ${p}`).join('\n')}`,
      );
    }
  }

  /** Target missing: puts the staging file in place. Returns false when the target exists now. */
  private async linkIntoPlace(staging: string): Promise<boolean> {
    if (fs.existsSync(this.path)) return false;
    // In the thread pool: syncing the whole restored file can take seconds.
    await fsyncFile(staging);
    try {
      // link() never replaces an existing file: a target created meanwhile is not clobbered.
      fs.linkSync(staging, this.path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return false;
      if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'EXDEV' || code === 'ENOSYS') {
        // A file system without hard links: rename() would replace whatever is at the name now,
        // so anything there (a file, a link, a dangling link) goes the existing-file way, which
        // opens it and checks what it is. What remains between this lstat and the rename cannot
        // reach a file's contents: rename() replaces a directory entry (a link put there is
        // replaced, never followed), and a parent folder swapped meanwhile takes the staging
        // file's name away with it (same folder), so the rename fails.
        if (lexists(this.path)) return false;
        fs.renameSync(staging, this.path);
      } else {
        throw err;
      }
    }
    fsyncDir(path.dirname(this.path));
    return true;
  }

  private async switchIntoExisting(staging: string, plan: Planned[], onConflict: ConflictPolicy): Promise<void> {
    const db = this.openTarget(false);
    try {
      // At once, before the staging file is attached (a parent folder swapped for the data
      // folder would otherwise make ATTACH look for it there); again under the write lock below.
      refuseServerCatalog(db, this.path, 'restore');
    } catch (err) {
      db.close();
      throw err;
    }
    const fk = Number(db.pragma('foreign_keys', { simple: true }));
    let attached = false;
    try {
      db.pragma('foreign_keys = OFF');
      // Functions with side effects are refused inside the definitions created below.
      db.pragma('trusted_schema = OFF');
      db.prepare(`ATTACH DATABASE ? AS ${STAGING_SCHEMA}`).run(staging);
      attached = true;
      db.exec('BEGIN IMMEDIATE');
      try {
        // What was opened is what is written: a link swapped or made since check() (or since the
        // server checked the path) may lead to cairn's server catalog. Checked under the write
        // lock, before any change.
        refuseServerCatalog(db, this.path, 'restore');
        // Re-check under the write lock: the target may have changed since check().
        this.assertNoConflicts(db, plan, onConflict);
        const existing = readExisting(db);
        const replaced = plan.filter((p) => existing.has(foldName(p.name)));
        for (const p of replaced.filter((r) => r.kind === 'view')) db.exec(`DROP VIEW main.${quoteIdent(p.name)}`);
        for (const p of replaced.filter((r) => r.kind === 'table')) db.exec(`DROP TABLE main.${quoteIdent(p.name)}`);
        const tables = plan.filter((p): p is PlannedTable => p.kind === 'table');
        const pacer = new Pacer();
        for (const t of tables) {
          createObject(db, t);
          await copyFromStaging(db, t, pacer);
          for (const idx of t.indexes) createIndex(db, t, idx);
        }
        for (const t of tables) setSequence(db, 'main', t);
        for (const t of tables) for (const tr of t.triggers) createTrigger(db, t, tr);
        for (const v of plan) if (v.kind === 'view') createObject(db, v);
        for (const v of plan) if (v.kind === 'view') for (const tr of v.triggers) createTrigger(db, v, tr);
        db.exec('COMMIT');
      } catch (err) {
        if (db.inTransaction) db.exec('ROLLBACK');
        throw err;
      }
    } catch (err) {
      throw sqliteError(err, `Cannot restore into ${this.path}`);
    } finally {
      try {
        if (attached) db.exec(`DETACH DATABASE ${STAGING_SCHEMA}`);
        db.pragma(`foreign_keys = ${fk ? 'ON' : 'OFF'}`);
      } finally {
        db.close();
      }
    }
  }
}

function sqliteError(err: unknown, what: string): Error {
  if (err instanceof CairnError) return err;
  if (err instanceof Error && 'code' in err && typeof err.code === 'string' && err.code.startsWith('SQLITE_')) {
    const hint =
      err.code === 'SQLITE_NOTADB'
        ? ' The file is not a SQLite database.'
        : err.code.startsWith('SQLITE_BUSY')
          ? ' The database is locked by another process; retry later.'
          : '';
    return new SourceError(`${what}: ${err.message}.${hint}`, { cause: err });
  }
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * Checks a manifest's SQLite collections as a restore of all of them would (definitions as
 * validated data, fields, names), without a target: what `verify` runs, so that it fails on a
 * manifest a restore would refuse. Throws CorruptionError (or ConflictError) as the restore does.
 */
export function checkSqliteCollections(entries: CollectionEntry[]): void {
  const noData = (): AsyncIterable<Uint8Array> => {
    throw new Error('a definition check reads no data');
  };
  planItems(entries.map((entry) => ({ entry, targetName: entry.name, data: noData })));
}

/** Validates the items and computes the SQL each one needs in the target. */
function planItems(items: RestoreItem[]): Planned[] {
  const seen = new Map<string, string>();
  const plan: Planned[] = [];
  const duplicates: string[] = [];
  for (const item of items) {
    const key = foldName(item.targetName);
    const prior = seen.get(key);
    if (prior !== undefined) {
      duplicates.push(`"${item.entry.name}" and "${prior}" would both be restored as "${item.targetName}"`);
    }
    seen.set(key, item.entry.name);
    plan.push(planItem(item));
  }
  if (duplicates.length > 0) {
    throw new ConflictError(`Two collections would get the same name: ${duplicates.join('; ')}. Use --rename.`);
  }
  // Tables first (in manifest order), then views.
  return [...plan.filter((p) => p.kind === 'table'), ...plan.filter((p) => p.kind === 'view')];
}

function planItem(item: RestoreItem): Planned {
  const { entry, targetName } = item;
  const renamed = targetName !== entry.name;
  if (entry.kind === 'table') {
    if (entry.dataFormat !== ROWS_V1) {
      throw new SourceError(
        `Table "${entry.name}" is stored as "${entry.dataFormat ?? 'none'}", which the SQLite target cannot read (expected "${ROWS_V1}").`,
      );
    }
    const parsed = TableDefinitionSchema.safeParse(entry.definition);
    if (!parsed.success) {
      throw new CorruptionError(`Table "${entry.name}" has an invalid SQLite definition: ${parsed.error.message}`, {
        objects: [],
        collections: [entry.name],
      });
    }
    const def: SqliteTableDefinition = { ...parsed.data, columns: parsed.data.columns as SqliteColumn[] };
    checkTableFields(entry.name, def);
    // The definitions as recorded, then as they will run (renamed): both are checked.
    checkDefinition(def.sql, { kind: 'table', name: entry.name }, entry.name);
    for (const idx of def.indexes) checkDefinition(idx.sql, { kind: 'index', name: idx.name, table: entry.name }, entry.name);
    for (const tr of def.triggers) checkDefinition(tr.sql, { kind: 'trigger', name: tr.name, table: entry.name }, entry.name);
    const rename = (s: SqliteNamedSql): SqliteNamedSql => {
      if (!renamed) return s;
      const name = renamedObjectName(s.name, entry.name, targetName);
      return { name, sql: renameTableReferences(s.sql, entry.name, targetName, name) };
    };
    const table: PlannedTable = {
      kind: 'table',
      item,
      name: targetName,
      def,
      createSql: renamed ? renameTableReferences(def.sql, entry.name, targetName, targetName) : def.sql,
      indexes: def.indexes.map(rename),
      triggers: def.triggers.map(rename),
      columns: dataColumns(def),
    };
    checkPlanned(table);
    return table;
  }
  if (entry.kind === 'view') {
    const parsed = ViewDefinitionSchema.safeParse(entry.definition);
    if (!parsed.success) {
      throw new CorruptionError(`View "${entry.name}" has an invalid SQLite definition: ${parsed.error.message}`, {
        objects: [],
        collections: [entry.name],
      });
    }
    checkName(entry.name, entry.name, 'view');
    checkDefinition(parsed.data.sql, { kind: 'view', name: entry.name }, entry.name);
    for (const tr of parsed.data.triggers ?? []) {
      checkName(tr.name, entry.name, 'trigger');
      checkDefinition(tr.sql, { kind: 'trigger', name: tr.name, table: entry.name }, entry.name);
    }
    const triggers = (parsed.data.triggers ?? []).map((s) => {
      if (!renamed) return s;
      const name = renamedObjectName(s.name, entry.name, targetName);
      return { name, sql: renameTableReferences(s.sql, entry.name, targetName, name) };
    });
    const view: PlannedView = {
      kind: 'view',
      item,
      name: targetName,
      createSql: renamed ? renameCreatedObject(parsed.data.sql, targetName) : parsed.data.sql,
      triggers,
    };
    checkPlanned(view);
    return view;
  }
  throw new SourceError(`Cannot restore "${entry.name}": SQLite has no collections of kind "${entry.kind}".`);
}

/** Hidden rowid names a table definition may record. */
const ROWID_NAMES = new Set(['rowid', '_rowid_', 'oid']);

function invalid(collection: string, why: string): CorruptionError {
  return new CorruptionError(
    `Refusing to restore: the definition of "${preview(collection)}" in the backup's manifest ${why}. The manifest was altered or damaged; nothing was changed. Restore another backup, or --exclude "${preview(collection)}".`,
    { objects: [], collections: [collection] },
  );
}

/** Names read from a manifest: no NUL, not absurdly long, not SQLite's own (sqlite_…). */
function checkName(name: string, collection: string, what: string): void {
  if (name.length === 0) throw invalid(collection, `has an empty ${what} name`);
  if (name.length > MAX_NAME_LENGTH) throw invalid(collection, `has a ${what} name longer than ${MAX_NAME_LENGTH} characters`);
  if (name.includes('\u0000')) throw invalid(collection, `has a ${what} name with a NUL character`);
  if (foldName(name).startsWith('sqlite_')) throw invalid(collection, `names a ${what} "${preview(name)}" (names starting with sqlite_ are SQLite's own)`);
}

/** The fields of a table definition besides its SQL, as hostile input. */
function checkTableFields(collection: string, def: SqliteTableDefinition): void {
  checkName(collection, collection, 'table');
  if (def.columns.length === 0) throw invalid(collection, 'has no columns');
  const seen = new Set<string>();
  for (const c of def.columns) {
    if (c.name.length > MAX_NAME_LENGTH || c.name.includes('\u0000')) throw invalid(collection, `has an invalid column name "${preview(c.name)}"`);
    const key = foldName(c.name);
    if (seen.has(key)) throw invalid(collection, `names the column "${preview(c.name)}" twice`);
    seen.add(key);
  }
  if (def.rowidColumn !== null) {
    if (!ROWID_NAMES.has(def.rowidColumn)) throw invalid(collection, `has "${preview(def.rowidColumn)}" as its hidden rowid (only rowid, _rowid_ or oid)`);
    if (seen.has(def.rowidColumn) || def.withoutRowid) throw invalid(collection, `keeps a hidden rowid "${def.rowidColumn}" it cannot have`);
  }
  for (const idx of def.indexes) checkName(idx.name, collection, 'index');
  for (const tr of def.triggers) checkName(tr.name, collection, 'trigger');
}

/** The SQL each planned object will run, after renames: checked against the names it must create. */
function checkPlanned(p: Planned): void {
  const collection = p.item.entry.name;
  checkName(p.name, collection, p.kind);
  checkDefinition(p.createSql, { kind: p.kind, name: p.name }, collection);
  if (p.kind === 'table') for (const idx of p.indexes) checkDefinition(idx.sql, { kind: 'index', name: idx.name, table: p.name }, collection);
  for (const tr of p.triggers) checkDefinition(tr.sql, { kind: 'trigger', name: tr.name, table: p.name }, collection);
}

function createObject(db: BetterSqlite3.Database, p: Planned): void {
  runDefinition(db, p.createSql, { kind: p.kind, name: p.name }, p.item.entry.name);
}

function createIndex(db: BetterSqlite3.Database, t: PlannedTable, idx: SqliteNamedSql): void {
  runDefinition(db, idx.sql, { kind: 'index', name: idx.name, table: t.name }, t.item.entry.name);
}

function createTrigger(db: BetterSqlite3.Database, p: Planned, tr: SqliteNamedSql): void {
  runDefinition(db, tr.sql, { kind: 'trigger', name: tr.name, table: p.name }, p.item.entry.name);
}

/** The created table has the columns (and rowid kind) the manifest records, which the rows are read as. */
function assertColumns(db: BetterSqlite3.Database, t: PlannedTable): void {
  const actual = db.prepare(`PRAGMA main.table_xinfo(${quoteIdent(t.name)})`).safeIntegers(true).all() as (XInfoRow & { hidden: bigint })[];
  const wanted = t.def.columns;
  const same =
    actual.length === wanted.length &&
    actual.every((c, i) => foldName(c.name) === foldName((wanted[i] as SqliteColumn).name) && (c.hidden === 2n || c.hidden === 3n) === (wanted[i] as SqliteColumn).generated);
  if (!same) {
    throw invalid(t.item.entry.name, `records columns (${preview(wanted.map((c) => c.name).join(', '))}) that its CREATE TABLE does not create (${preview(actual.map((c) => c.name).join(', '))})`);
  }
  const listed = db.prepare(`PRAGMA main.table_list(${quoteIdent(t.name)})`).safeIntegers(true).all() as { wr: bigint }[];
  if (listed.length === 1 && (listed[0]?.wr !== 0n) !== t.def.withoutRowid) {
    throw invalid(t.item.entry.name, `says the table is${t.def.withoutRowid ? '' : ' not'} WITHOUT ROWID, and its CREATE TABLE says otherwise`);
  }
}

function readExisting(db: BetterSqlite3.Database): Map<string, ExistingObject> {
  const rows = db.prepare('SELECT type, name, tbl_name AS tblName, sql FROM main.sqlite_schema').all() as ExistingObject[];
  return new Map(rows.map((r) => [foldName(r.name), r]));
}

interface XInfoRow {
  name: string;
  type: string;
  notnull: bigint;
  pk: bigint;
}

function describeColumns(cols: { name: string; type: string; notNull: boolean; pk: number }[]): string {
  return cols
    .map((c) => `${c.name}${c.type ? ` ${c.type}` : ''}${c.notNull ? ' NOT NULL' : ''}${c.pk ? ` PK${c.pk}` : ''}`)
    .join(', ');
}

/** Every reason the plan cannot be applied to the target, as user-facing sentences. */
function findConflicts(db: BetterSqlite3.Database, plan: Planned[], onConflict: ConflictPolicy, file: string): string[] {
  const existing = readExisting(db);
  const problems: string[] = [];
  const replaced = new Set<string>();
  const label = (type: string): string => (type === 'table' ? 'Table' : type === 'view' ? 'View' : type === 'index' ? 'Index' : type === 'trigger' ? 'Trigger' : 'Object');
  for (const p of plan) {
    const found = existing.get(foldName(p.name));
    if (found === undefined) continue;
    const isVirtual = found.type === 'table' && /^CREATE\s+VIRTUAL\b/i.test(found.sql ?? '');
    const foundKind = isVirtual ? 'virtual table' : found.type;
    if (onConflict === 'fail') {
      problems.push(
        `${label(found.type)} "${found.name}" already exists in ${file}. Use --on-conflict overwrite to replace it, --rename to restore it under another name, or --exclude it.`,
      );
      continue;
    }
    if (foundKind !== p.kind) {
      problems.push(
        `"${found.name}" exists in ${file} as a ${foundKind}, and the backup has a ${p.kind}: overwrite only replaces a ${p.kind} with a ${p.kind}. Use --rename to restore it under another name, or --exclude it.`,
      );
      continue;
    }
    if (p.kind === 'table') {
      const current = (db.prepare(`PRAGMA main.table_xinfo(${quoteIdent(found.name)})`).all() as XInfoRow[]).map(
        (c) => ({ name: c.name, type: c.type, notNull: c.notnull !== 0n, pk: Number(c.pk) }),
      );
      const wanted = p.def.columns;
      const same =
        current.length === wanted.length &&
        current.every((c, i) => {
          const w = wanted[i] as SqliteColumn;
          return (
            foldName(c.name) === foldName(w.name) &&
            c.type.toUpperCase() === w.type.toUpperCase() &&
            c.notNull === w.notNull &&
            c.pk === w.pk
          );
        });
      if (!same) {
        problems.push(
          `Table "${found.name}" in ${file} has different columns than the backup (target: ${describeColumns(current)}; backup: ${describeColumns(wanted)}). Use --rename to restore it under another name, or --exclude it.`,
        );
        continue;
      }
    }
    replaced.add(foldName(found.name));
  }
  // Index and trigger names are database-wide: they must not clash with objects that stay.
  const created = new Map<string, string>();
  for (const p of plan) {
    const names = [...(p.kind === 'table' ? p.indexes : []), ...p.triggers];
    for (const obj of names) {
      const key = foldName(obj.name);
      const owner = created.get(key);
      if (owner !== undefined) {
        problems.push(`"${obj.name}" would be created for both "${owner}" and "${p.name}". Use --rename.`);
        continue;
      }
      created.set(key, p.name);
      if (plan.some((o) => foldName(o.name) === key)) {
        problems.push(`"${obj.name}" (of "${p.name}") has the same name as a restored collection. Use --rename.`);
        continue;
      }
      const found = existing.get(key);
      if (found === undefined) continue;
      const goesAway = replaced.has(foldName(found.tblName)) || replaced.has(key);
      if (!goesAway) {
        problems.push(
          `${label(found.type)} "${found.name}" (on "${found.tblName}") already exists in ${file}, and the restore creates "${obj.name}" for "${p.name}". Drop it, or use --rename or --exclude.`,
        );
      }
    }
  }
  return problems;
}

/** Loads every collection into a fresh staging file; returns the number of rows. */
async function loadStaging(
  staging: string,
  plan: Planned[],
  signal: AbortSignal | undefined,
  onProgress: RestoreOptions['onProgress'],
): Promise<number> {
  // Created empty, private (0600 whatever the umask), before SQLite opens it.
  createStagingFile(staging);
  const db = new Database(staging);
  let total = 0;
  try {
    // Functions with side effects are refused inside the definitions created below.
    db.pragma('trusted_schema = OFF');
    db.pragma('journal_mode = OFF');
    db.pragma('synchronous = OFF');
    db.pragma('foreign_keys = OFF');
    db.pragma('cache_size = -65536');
    // Writes the header now: SQLite leaves a database without tables as a 0-byte file, which
    // nothing (cairn's backup included) would recognise as a database.
    db.pragma('user_version = 0');
    const tables = plan.filter((p): p is PlannedTable => p.kind === 'table');
    for (const t of tables) {
      throwIfAborted(signal);
      createObject(db, t);
      assertColumns(db, t);
      const loaded = await loadTable(db, t, signal, onProgress);
      total += loaded;
    }
    for (const t of tables) for (const idx of t.indexes) createIndex(db, t, idx);
    for (const t of tables) setSequence(db, 'main', t);
    for (const t of tables) for (const tr of t.triggers) createTrigger(db, t, tr);
    for (const v of plan) if (v.kind === 'view') createObject(db, v);
    for (const v of plan) if (v.kind === 'view') for (const tr of v.triggers) createTrigger(db, v, tr);
    throwIfAborted(signal);
    // Views and their triggers have no data: their streams are not read.
  } catch (err) {
    if (db.inTransaction) db.exec('ROLLBACK');
    throw sqliteError(err, 'Cannot load the restore staging database');
  } finally {
    db.close();
  }
  return total;
}

async function loadTable(
  db: BetterSqlite3.Database,
  t: PlannedTable,
  signal: AbortSignal | undefined,
  onProgress: RestoreOptions['onProgress'],
): Promise<number> {
  const name = t.item.entry.name;
  const cols = t.columns;
  const insert = db.prepare(
    `INSERT INTO main.${quoteIdent(t.name)} (${cols.map(quoteIdent).join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`,
  );
  const decoder = new RowDecoder();
  const pacer = new Pacer();
  let rows = 0;
  let bytes = 0;
  let batch = 0;
  const report = (): void => onProgress?.({ collection: name, rows, bytes });
  const damaged = (err: CorruptionError): CorruptionError =>
    new CorruptionError(`Table "${name}": ${err.message}`, { objects: err.objects, collections: [name] });
  db.exec('BEGIN');
  try {
    for await (const chunk of t.item.data()) {
      throwIfAborted(signal);
      bytes += chunk.length;
      let decoded: unknown[][];
      try {
        decoded = decoder.push(chunk);
      } catch (err) {
        throw err instanceof CorruptionError ? damaged(err) : err;
      }
      for (const row of decoded) {
        if (row.length !== cols.length) {
          throw new CorruptionError(
            `Table "${name}": row ${rows + 1} has ${row.length} values, expected ${cols.length}.`,
            { objects: [], collections: [name] },
          );
        }
        insert.run(row);
        rows++;
        if (rows % PROGRESS_ROWS === 0) report();
        // Inserting a chunk's rows is synchronous: give signals and requests a turn meanwhile.
        if (rows % 256 === 0 && pacer.due()) {
          await pacer.pause();
          throwIfAborted(signal);
        }
        if (++batch >= BATCH_ROWS) {
          batch = 0;
          db.exec('COMMIT');
          db.exec('BEGIN');
        }
      }
    }
    try {
      decoder.finish();
    } catch (err) {
      throw err instanceof CorruptionError ? damaged(err) : err;
    }
    db.exec('COMMIT');
  } catch (err) {
    if (db.inTransaction) db.exec('ROLLBACK');
    throw err;
  }
  if (rows !== t.item.entry.rowCount) {
    throw new CorruptionError(
      `Table "${name}": the backup recorded ${t.item.entry.rowCount} rows but its data holds ${rows}.`,
      { objects: [], collections: [name] },
    );
  }
  report();
  return rows;
}

/** Sets the table's AUTOINCREMENT counter to the backed-up value. */
function setSequence(db: BetterSqlite3.Database, schema: string, t: PlannedTable): void {
  if (t.def.autoincrement === null) return;
  const seq = BigInt(t.def.autoincrement);
  const exists = db
    .prepare(`SELECT count(*) FROM ${schema}.sqlite_schema WHERE type = 'table' AND name = 'sqlite_sequence'`)
    .pluck()
    .get() as bigint;
  if (exists === 0n) return; // the table was not created with AUTOINCREMENT
  const updated = db.prepare(`UPDATE ${schema}.sqlite_sequence SET seq = ? WHERE name = ?`).run(seq, t.name);
  if (updated.changes === 0) {
    db.prepare(`INSERT INTO ${schema}.sqlite_sequence (name, seq) VALUES (?, ?)`).run(t.name, seq);
  }
}

/** Rows per INSERT … SELECT of the switch, between turns of the event loop. */
const SWITCH_BATCH_ROWS = 50_000;

/**
 * Copies a table's rows from the attached staging file into the target, inside the switch's
 * transaction: a rowid table in batches of rowid ranges with a turn of the event loop between
 * them when due (one statement over 100 MB keeps the main thread for seconds), a WITHOUT ROWID
 * table in one statement.
 */
async function copyFromStaging(db: BetterSqlite3.Database, t: PlannedTable, pacer: Pacer): Promise<void> {
  const cols = t.columns.map(quoteIdent).join(', ');
  const from = `${STAGING_SCHEMA}.${quoteIdent(t.name)}`;
  const insert = `INSERT INTO main.${quoteIdent(t.name)} (${cols}) SELECT ${cols} FROM ${from}`;
  if (t.def.withoutRowid) {
    db.exec(insert);
    return;
  }
  // Batch bounds by keyset (sparse rowids make ranges of fixed width useless). The rowid of the
  // staging table, whatever its columns are called: _rowid_ always names it in the staging file
  // unless a real column has that name, then rowid or oid.
  const names = new Set(t.def.columns.map((c) => foldName(c.name)));
  const rowid = ['_rowid_', 'rowid', 'oid'].find((n) => !names.has(n));
  if (rowid === undefined) {
    db.exec(insert);
    return;
  }
  // The last rowid of the batch starting at a rowid.
  const bound = db.prepare(`SELECT ${rowid} FROM ${from} WHERE ${rowid} >= ? ORDER BY ${rowid} LIMIT 1 OFFSET ${SWITCH_BATCH_ROWS - 1}`).pluck();
  const first = db.prepare(`SELECT min(${rowid}) FROM ${from}`).pluck().get() as bigint | null;
  if (first === null) return;
  const range = db.prepare(`${insert} WHERE ${rowid} >= ? AND ${rowid} <= ?`);
  const rest = db.prepare(`${insert} WHERE ${rowid} >= ?`);
  let lo: bigint = first;
  for (;;) {
    const hi = bound.get(lo) as bigint | undefined;
    if (hi === undefined) {
      rest.run(lo);
      return;
    }
    range.run(lo, hi);
    if (hi === 9223372036854775807n) return;
    lo = hi + 1n;
    if (pacer.due()) await pacer.pause();
  }
}

/** Whether anything is at the path, a dangling symbolic link included. */
function lexists(file: string): boolean {
  try {
    fs.lstatSync(file);
    return true;
  } catch {
    return false;
  }
}

/** fsync of a file, in the thread pool. */
async function fsyncFile(file: string): Promise<void> {
  const handle = await fs.promises.open(file, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function fsyncPath(file: string, flags: string): void {
  const fd = fs.openSync(file, flags);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function fsyncDir(dir: string): void {
  try {
    fsyncPath(dir, 'r');
  } catch {
    // Some platforms/filesystems cannot fsync a directory; the rename is still atomic.
  }
}
