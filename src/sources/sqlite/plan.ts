/**
 * What a SQLite restore will create, worked out before anything is written: each restore item
 * checked and parsed into a Planned table or view, with the SQL it runs in the target (renames
 * applied, see sql.ts). Definitions come from the manifest, which a restore reads as untrusted:
 * their shapes are checked with zod, their names and fields here, their SQL by validate.ts,
 * both as recorded and as they will run. Errors: SourceError for an item the SQLite target
 * cannot read (wrong data format, unknown kind), CorruptionError for a definition that does not
 * parse or is not what it claims, ConflictError for two collections restored under one name.
 */
import { z } from 'zod';
import { ConflictError, CorruptionError, SourceError } from '../../core/errors.js';
import type { CollectionEntry } from '../../core/schemas.js';
import type { RestoreItem } from '../types.js';
import { ROWS_V1 } from '../row-codec.js';
import {
  renameCreatedObject,
  renamedObjectName,
  renameTableReferences,
  type SqliteColumn,
  type SqliteNamedSql,
  type SqliteTableDefinition,
} from './sql.js';
import { foldName } from './naming.js';
import { dataColumns } from './source.js';
import { checkDefinition, MAX_NAME_LENGTH, preview } from './validate.js';
import { checkVirtual, VIRTUAL_KIND, VirtualDefinitionSchema, type VirtualDefinition } from './virtual.js';
import { DATABASE_KIND, planDatabase, type PlannedDatabase, type StatNames } from './database.js';

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

/** What every planned object has: the item it comes from and the SQL that creates it. */
interface PlannedBase {
  item: RestoreItem;
  /** Name created in the target. */
  name: string;
  createSql: string;
  triggers: SqliteNamedSql[];
}

/** A table: created, loaded with the item's rows (`columns`, in order), then indexed. */
export interface PlannedTable extends PlannedBase {
  kind: 'table';
  def: SqliteTableDefinition;
  indexes: SqliteNamedSql[];
  /** Columns in the data stream / INSERT (hidden rowid first when kept). */
  columns: string[];
}

/** A view: created after every table; it has no data. */
export interface PlannedView extends PlannedBase {
  kind: 'view';
}

/** A virtual table (virtual.ts): created after the tables, its shadow tables then filled. */
export interface PlannedVirtual extends PlannedBase {
  kind: 'virtual_table';
  def: VirtualDefinition;
  /** Each shadow table's name in the target (`<name>_<suffix>`), in definition order. */
  shadowNames: string[];
}

/** One restored collection, as planItems() leaves it. */
export type Planned = PlannedTable | PlannedView | PlannedVirtual;

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

/**
 * Validates the items and computes the SQL each one needs in the target: tables first (in
 * manifest order), then views. Throws SourceError, CorruptionError or ConflictError (see above).
 */
export function planItems(items: RestoreItem[]): Planned[] {
  const seen = new Map<string, string>();
  const plan: Planned[] = [];
  const duplicates: string[] = [];
  for (const item of items) {
    // The database's properties (database.ts) are no table or view: checked there.
    if (item.entry.kind === DATABASE_KIND) {
      planDatabase(item);
      continue;
    }
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
  // Tables first (in manifest order), then virtual tables, then views.
  return [...plan.filter((p) => p.kind === 'table'), ...plan.filter((p) => p.kind === VIRTUAL_KIND), ...plan.filter((p) => p.kind === 'view')];
}

/** The database properties among the items (checked), or undefined when the backup has none. */
export function databaseOf(items: RestoreItem[]): PlannedDatabase | undefined {
  const found = items.filter((i) => i.entry.kind === DATABASE_KIND);
  if (found.length > 1) {
    throw new CorruptionError("Refusing to restore: the backup's manifest records the database properties twice. The manifest was altered or damaged; nothing was changed.", {
      objects: [],
      collections: found.map((i) => i.entry.name),
    });
  }
  return found[0] === undefined ? undefined : planDatabase(found[0]);
}

/** Statistics names: each restored table's (and shadow table's) backup name → its target name, its indexes likewise. */
export function statNames(plan: Planned[]): StatNames {
  const tables = new Map<string, string>();
  const indexes = new Map<string, string>();
  for (const p of plan) {
    // A virtual table's shadow tables have statistics of their own.
    if (p.kind === VIRTUAL_KIND) p.def.shadows.forEach((sh, i) => tables.set(foldName(`${p.item.entry.name}_${sh.suffix}`), p.shadowNames[i] as string));
    if (p.kind !== 'table') continue;
    tables.set(foldName(p.item.entry.name), p.name);
    p.def.indexes.forEach((idx, i) => indexes.set(foldName(idx.name), (p.indexes[i] as SqliteNamedSql).name));
  }
  return { tables, indexes };
}

function planItem(item: RestoreItem): Planned {
  const { entry, targetName } = item;
  const renamed = targetName !== entry.name;
  // An index or trigger of a renamed table or view: its name and the table it names follow.
  const rename = (s: SqliteNamedSql): SqliteNamedSql => {
    if (!renamed) return s;
    const name = renamedObjectName(s.name, entry.name, targetName);
    return { name, sql: renameTableReferences(s.sql, entry.name, targetName, name) };
  };
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
    const triggers = (parsed.data.triggers ?? []).map(rename);
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
  if (entry.kind === VIRTUAL_KIND) {
    const parsed = VirtualDefinitionSchema.safeParse(entry.definition);
    if (!parsed.success || entry.dataFormat !== ROWS_V1) {
      throw new CorruptionError(`Virtual table "${entry.name}" has an invalid SQLite definition: ${parsed.error?.message ?? 'wrong data format'}`, {
        objects: [],
        collections: [entry.name],
      });
    }
    checkName(entry.name, entry.name, 'virtual table');
    checkName(targetName, entry.name, 'virtual table');
    const createSql = renamed ? renameCreatedObject(parsed.data.sql, targetName) : parsed.data.sql;
    checkVirtual(parsed.data, createSql, targetName, entry.name);
    return {
      kind: VIRTUAL_KIND,
      item,
      name: targetName,
      createSql,
      triggers: [],
      def: parsed.data,
      shadowNames: parsed.data.shadows.map((sh) => `${targetName}_${sh.suffix}`),
    };
  }
  throw new SourceError(`Cannot restore "${entry.name}": SQLite has no collections of kind "${entry.kind}".`);
}

/** Hidden rowid names a table definition may record. */
const ROWID_NAMES = new Set(['rowid', '_rowid_', 'oid']);

/**
 * The CorruptionError for a manifest definition of `collection` that is not what it claims
 * (`why`, a phrase following "the definition of … in the backup's manifest"): says that nothing
 * was changed and what to do.
 */
export function invalid(collection: string, why: string): CorruptionError {
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
function checkPlanned(p: PlannedTable | PlannedView): void {
  const collection = p.item.entry.name;
  checkName(p.name, collection, p.kind);
  checkDefinition(p.createSql, { kind: p.kind, name: p.name }, collection);
  if (p.kind === 'table') for (const idx of p.indexes) checkDefinition(idx.sql, { kind: 'index', name: idx.name, table: p.name }, collection);
  for (const tr of p.triggers) checkDefinition(tr.sql, { kind: 'trigger', name: tr.name, table: p.name }, collection);
}
