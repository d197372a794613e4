/**
 * What a PostgreSQL restore does, worked out before anything is written: the restore items
 * checked and parsed into a Plan (one PlannedCollection per table, view or sequence, plus the
 * "(schema)" and "(roles)" items), the archive's table of contents checked as hostile input
 * (checkedToc), and the selection handed to the TOC filter (tocSelection, see toc.ts).
 *
 * Definitions come from the manifest, which a restore reads as untrusted: they are validated
 * with zod here, so the later steps can rely on their shapes. Errors: SourceError for an item
 * the PostgreSQL target cannot read (wrong format, unknown kind, no "(schema)"), CorruptionError
 * for a definition that does not parse, ConflictError for two collections restored under one
 * name.
 */
import type pg from 'pg';
import { z } from 'zod';
import { ConflictError, CorruptionError, SourceError, UsageError } from '../../core/errors.js';
import type { RestoreItem, RestoreOptions } from '../types.js';
import { quoteIdent } from './catalog.js';
import type { PgConnectionSettings } from './connection.js';
import {
  PG_COPY_TEXT,
  PG_DUMP_CUSTOM,
  ROLES_COLLECTION,
  SCHEMA_COLLECTION,
  type PgSchemaDefinition,
  type PgSequenceState,
  type PgRoutineDefinition,
  type PgTableDefinition,
} from './definitions.js';
import { display, legacyDisplay, postgresNaming, splitName, type QName } from './naming.js';
import { callClosure } from './routines.js';
import { isStagingRelationName } from './staging.js';
import { isKnownDesc, NEVER_RESTORED_DESCS, type TocEntry, type TocSelection } from './toc.js';

// Name helpers the other restore modules import from here.
export { display, splitName, type QName } from './naming.js';

const ColumnSchema = z.object({ name: z.string(), type: z.string(), notNull: z.boolean(), generated: z.boolean().optional().default(false) });
const SequenceStateSchema = z.object({
  schema: z.string(),
  name: z.string(),
  lastValue: z.string().regex(/^-?\d+$/),
  isCalled: z.boolean(),
});
const SequenceDefinitionSchema = SequenceStateSchema.extend({ oid: z.number().int() });
const TableDefinitionSchema = z.object({
  schema: z.string(),
  name: z.string(),
  oid: z.number().int(),
  relkind: z.enum(['r', 'p']),
  partitionOf: z.string().nullable(),
  copyColumns: z.array(z.string()),
  columns: z.array(ColumnSchema),
  dependentOids: z.array(z.number().int()),
  sequences: z.array(SequenceStateSchema),
  usedSequences: z.array(SequenceDefinitionSchema).optional(),
  routineOids: z.array(z.number().int()).optional(),
});
const ExtensionTableDefinitionSchema = TableDefinitionSchema.extend({ extension: z.string(), condition: z.string() });
const ViewDefinitionSchema = z.object({
  schema: z.string(),
  name: z.string(),
  oid: z.number().int(),
  relkind: z.enum(['v', 'm']),
  dependentOids: z.array(z.number().int()),
  populated: z.boolean().optional(),
  routineOids: z.array(z.number().int()).optional(),
});
const ForeignTableDefinitionSchema = z.object({
  schema: z.string(),
  name: z.string(),
  oid: z.number().int(),
  relkind: z.literal('f'),
  partitionOf: z.string().nullable(),
  dependentOids: z.array(z.number().int()),
  routineOids: z.array(z.number().int()).optional(),
});
const RoutineDefinitionSchema = z.object({
  schema: z.string(),
  name: z.string(),
  overloads: z.array(z.object({ oid: z.number().int(), signature: z.string(), prokind: z.enum(['f', 'p', 'w']), definitionHash: z.string().optional() })).min(1),
  calls: z.array(z.number().int()),
  relations: z.array(z.string()),
});
const SchemaDefinitionSchema = z.object({
  database: z.string(),
  encoding: z.string().min(1),
  collate: z.string(),
  ctype: z.string(),
  // Names of encodings and providers go into SQL (as literals, and checked here: a manifest is untrusted).
  dataEncoding: z.string().regex(/^[A-Za-z0-9_]+$/).optional(),
  localeProvider: z.enum(['libc', 'icu', 'builtin']).optional(),
  locale: z.string().optional(),
  icuRules: z.string().optional(),
  collationVersion: z.string().optional(),
  pgDumpVersion: z.string().optional(),
  extensions: z.array(z.object({ name: z.string(), schema: z.string(), version: z.string() })).optional(),
  extensionSequences: z.array(SequenceStateSchema).optional(),
  standaloneSequenceOids: z.array(z.number().int()).optional(),
  standaloneSequences: z.array(SequenceDefinitionSchema).optional(),
  routineOids: z.array(z.number().int()).optional(),
  supportRoutineOids: z.array(z.number().int()).optional(),
  routineCalls: z.array(z.tuple([z.number().int(), z.array(z.number().int())])).optional(),
  routineRelations: z.array(z.object({ oid: z.number().int(), signature: z.string(), relations: z.array(z.string()) })).optional(),
});

/** pg_class.relkind of a restored collection: table, partitioned table, view, materialized view, sequence, foreign table. */
export type Relkind = 'r' | 'p' | 'v' | 'm' | 'S' | 'f';

/** One table, view or sequence to restore: where it comes from (source) and where it goes (target). */
export interface PlannedCollection {
  item: RestoreItem;
  relkind: Relkind;
  oid: number;
  source: QName;
  target: QName;
  dependentOids: number[];
  table?: PgTableDefinition;
  /** Standalone sequence state. */
  sequence?: PgSequenceState;
  /** The parent ("schema.name") of a foreign table that is a partition (a table's is table.partitionOf). */
  partitionOf?: string | null;
  /** Materialized view: false when it was unpopulated at backup (not refreshed at restore). */
  populated?: boolean;
  /** The routines it needs (absent in older backups). */
  routineOids?: number[];
}

/** One function or procedure collection to restore (every overload of its name; never renamed). */
export interface PlannedRoutine {
  item: RestoreItem;
  kind: 'function' | 'procedure';
  definition: PgRoutineDefinition;
}

/** The restore items, checked: the schema archive, the roles script (if any) and the collections. */
export interface Plan {
  schemaItem: RestoreItem;
  schemaDef: Pick<
    PgSchemaDefinition,
    | 'encoding'
    | 'collate'
    | 'ctype'
    | 'standaloneSequenceOids'
    | 'dataEncoding'
    | 'localeProvider'
    | 'locale'
    | 'icuRules'
    | 'collationVersion'
    | 'extensionSequences'
    | 'standaloneSequences'
    | 'routineOids'
    | 'supportRoutineOids'
    | 'routineCalls'
    | 'routineRelations'
  >;
  rolesItem: RestoreItem | undefined;
  collections: PlannedCollection[];
  /** Functions and procedures selected by name (routines.ts). */
  routines: PlannedRoutine[];
  /**
   * Extensions' configuration tables (kind "extension_table"): not collections of their own
   * (never renamed, staged or replaced); their rows go into the table the extension creates.
   */
  extensionTables: PlannedCollection[];
  /**
   * Into an existing database: which sequences the restore does not select but sets
   * (supportSequences) exist in the target ("schema.name"), found before anything is created;
   * those are only moved forward. Undefined into a new database.
   */
  sequencesInTarget?: Set<string>;
}

/**
 * One restore under way, as the two paths (new-database.ts, existing-database.ts) need it: the
 * plan, the schema archive written to `archive` (mode 0600) inside the private folder `tmp`, its
 * checked table of contents and foreign-key references (dumpId → "schema.table"), the number of
 * parallel sessions, the options (their signal also aborts when the lock session is lost) and
 * `lease`, which watches a session holding the staging lock (see leftovers.ts watchSession).
 */
export interface RestoreRun {
  settings: PgConnectionSettings;
  /** The target as people read it (pgLocation), for messages. */
  location: string;
  plan: Plan;
  toc: TocEntry[];
  fkReferences: Map<number, string>;
  archive: string;
  tmp: string;
  jobs: number;
  options: RestoreOptions;
  /** Flags given to every pg_restore run (--no-owner, --no-privileges: see ownership.ts). */
  pgRestoreArgs: string[];
  lease: (client: pg.Client) => () => void;
  /** Signatures of the selected routines the existing target has with another definition (routine-restore.ts existingRoutines); empty into a new database. */
  routinesInTarget?: ReadonlySet<string>;
  /** Into a new database: logical bytes of loaded tables that start an early post-data batch (post-data.ts EARLY_MIN_BYTES). */
  earlyPostDataMinBytes?: number;
}

/** How people read a relkind, for messages. */
export const KIND_WORD: Record<Relkind, string> = { r: 'table', p: 'partitioned table', v: 'view', m: 'materialized view', S: 'sequence', f: 'foreign table' };
/** The word of ALTER / DROP statements for a relkind. */
export const ALTER_WORD: Record<Relkind, string> = { r: 'TABLE', p: 'TABLE', v: 'VIEW', m: 'MATERIALIZED VIEW', S: 'SEQUENCE', f: 'FOREIGN TABLE' };

/** A name as SQL: both parts quoted. */
export const qname = (n: QName): string => `${quoteIdent(n.schema)}.${quoteIdent(n.name)}`;
/**
 * Where a collection goes: when it keeps its name and that name is its definition's (as this
 * version or an older one wrote it, see naming.ts legacyDisplay), the parts the definition
 * records; else the target
 * name split as a user writes it (a manifest whose name and definition disagree goes where its
 * name says, as the user selected it).
 */
function targetName(item: RestoreItem, source: QName): QName {
  const kept = item.targetName === item.entry.name && (item.entry.name === display(source) || item.entry.name === legacyDisplay(source));
  return kept ? { schema: source.schema, name: source.name } : splitName(item.targetName);
}

/** What every planned relation takes from its definition: kind, OID, names, dependents and the routines it needs. */
function plannedRelation(
  item: RestoreItem,
  def: QName & { relkind: Relkind; oid: number; dependentOids: number[]; routineOids?: number[] | undefined },
): PlannedCollection {
  return {
    item,
    relkind: def.relkind,
    oid: def.oid,
    source: def,
    target: targetName(item, def),
    dependentOids: def.dependentOids,
    ...(def.routineOids !== undefined ? { routineOids: def.routineOids } : {}),
  };
}

/** A definition that does not parse: the manifest was altered or damaged. */
function invalid(entry: RestoreItem['entry'], what: string, message: string): CorruptionError {
  return new CorruptionError(`${what} "${entry.name}" has an invalid PostgreSQL definition: ${message}`, { objects: [], collections: [entry.name] });
}

/**
 * Checks and parses the restore items. Throws SourceError for an item the PostgreSQL target
 * cannot read, CorruptionError for an invalid definition, ConflictError when two collections
 * would be restored under one name.
 */
export function planItems(items: RestoreItem[]): Plan {
  let schemaItem: RestoreItem | undefined;
  let schemaDef: Plan['schemaDef'] | undefined;
  let rolesItem: RestoreItem | undefined;
  const collections: PlannedCollection[] = [];
  const extensionTables: PlannedCollection[] = [];
  const routines: PlannedRoutine[] = [];
  for (const item of items) {
    const { entry } = item;
    if (entry.name === SCHEMA_COLLECTION) {
      if (entry.dataFormat !== PG_DUMP_CUSTOM) {
        throw new SourceError(`The "${SCHEMA_COLLECTION}" collection is stored as "${entry.dataFormat ?? 'none'}", expected "${PG_DUMP_CUSTOM}".`);
      }
      const parsed = SchemaDefinitionSchema.safeParse(entry.definition);
      if (!parsed.success) throw invalid(entry, 'Collection', parsed.error.message);
      schemaItem = item;
      schemaDef = parsed.data;
      continue;
    }
    if (entry.name === ROLES_COLLECTION) {
      rolesItem = item;
      continue;
    }
    switch (entry.kind) {
      case 'table':
      case 'partitioned_table':
      case 'partition': {
        const parsed = TableDefinitionSchema.safeParse(entry.definition);
        if (!parsed.success) throw invalid(entry, 'Table', parsed.error.message);
        const def = parsed.data as PgTableDefinition;
        if (entry.dataFormat !== undefined && entry.dataFormat !== PG_COPY_TEXT) {
          throw new SourceError(`Table "${entry.name}" is stored as "${entry.dataFormat}", which the PostgreSQL target cannot read (expected "${PG_COPY_TEXT}").`);
        }
        collections.push({ ...plannedRelation(item, def), table: def });
        break;
      }
      case 'function':
      case 'procedure': {
        const parsed = RoutineDefinitionSchema.safeParse(entry.definition);
        if (!parsed.success) throw invalid(entry, entry.kind === 'function' ? 'Function' : 'Procedure', parsed.error.message);
        if (item.targetName !== entry.name) {
          throw new UsageError(
            `--rename of ${postgresNaming.written(entry.name)}: a ${entry.kind} is restored under its own name (its body, and the triggers and defaults that call it, name it). Restore it into another database, or rename it there afterwards with ALTER ${entry.kind.toUpperCase()}.`,
          );
        }
        routines.push({ item, kind: entry.kind, definition: parsed.data });
        break;
      }
      case 'extension_table': {
        const parsed = ExtensionTableDefinitionSchema.safeParse(entry.definition);
        if (!parsed.success) throw invalid(entry, 'Extension table', parsed.error.message);
        const def = parsed.data as PgTableDefinition;
        if (entry.dataFormat !== PG_COPY_TEXT) {
          throw new SourceError(`Extension table "${entry.name}" is stored as "${entry.dataFormat ?? 'none'}", expected "${PG_COPY_TEXT}".`);
        }
        extensionTables.push({ item, relkind: 'r', oid: def.oid, source: def, target: { schema: def.schema, name: def.name }, dependentOids: [], table: def });
        break;
      }
      case 'view':
      case 'materialized_view': {
        const parsed = ViewDefinitionSchema.safeParse(entry.definition);
        if (!parsed.success) throw invalid(entry, 'View', parsed.error.message);
        const def = parsed.data;
        collections.push({ ...plannedRelation(item, def), ...(def.populated !== undefined ? { populated: def.populated } : {}) });
        break;
      }
      case 'foreign_table': {
        const parsed = ForeignTableDefinitionSchema.safeParse(entry.definition);
        if (!parsed.success) throw invalid(entry, 'Foreign table', parsed.error.message);
        const def = parsed.data;
        collections.push({ ...plannedRelation(item, def), partitionOf: def.partitionOf });
        break;
      }
      case 'sequence': {
        const parsed = SequenceDefinitionSchema.safeParse(entry.definition);
        if (!parsed.success) throw invalid(entry, 'Sequence', parsed.error.message);
        const def = parsed.data;
        collections.push({ item, relkind: 'S', oid: def.oid, source: def, target: targetName(item, def), dependentOids: [], sequence: def });
        break;
      }
      default:
        throw new SourceError(`Cannot restore "${entry.name}": PostgreSQL has no collections of kind "${entry.kind}".`);
    }
  }
  if (schemaItem === undefined || schemaDef === undefined) {
    throw new SourceError(`The backup has no "${SCHEMA_COLLECTION}" collection: it was not made from PostgreSQL, or is incomplete.`);
  }
  const seen = new Map<string, string>();
  for (const c of collections) {
    // One name to PostgreSQL only when spelled the same: "Users" and users are two tables.
    const key = postgresNaming.key(display(c.target));
    const prior = seen.get(key);
    if (prior !== undefined) {
      throw new ConflictError(`"${c.item.entry.name}" and "${prior}" would both be restored as "${key}". Use --rename.`);
    }
    seen.set(key, c.item.entry.name);
  }
  for (const c of collections) checkNewName(c);
  return { schemaItem, schemaDef, rolesItem, collections, routines, extensionTables };
}

/**
 * PostgreSQL keeps at most NAMEDATALEN - 1 = 63 bytes of an identifier and cuts longer ones
 * without an error (docs: "Identifiers and Key Words"), so a --rename to a longer name would
 * restore under another name than asked, or collide with the table it came from. Names the
 * backup recorded are within the limit already; a new one is refused with UsageError.
 */
export const MAX_IDENTIFIER_BYTES = 63;



/**
 * A --rename's new schema and name, checked before anything is created (UsageError naming the
 * fix): not empty, not a system schema, not a staging name, within MAX_IDENTIFIER_BYTES.
 * Names the backup recorded are not checked: they exist already.
 */
function checkNewName(c: PlannedCollection): void {
  for (const [part, value, recorded] of [
    ['schema', c.target.schema, c.source.schema],
    ['name', c.target.name, c.source.name],
  ] as const) {
    const bytes = Buffer.byteLength(value, 'utf8');
    if (value !== recorded && value === '') {
      throw new UsageError(`--rename of "${c.item.entry.name}": the new ${part} is empty; write the new name as schema.name or name.`);
    }
    if (value !== recorded && part === 'schema' && (value.startsWith('pg_') || value === 'information_schema')) {
      throw new UsageError(
        `--rename of "${c.item.entry.name}": "${value}" is a system schema name (PostgreSQL reserves pg_* and information_schema); choose another schema.`,
      );
    }
    if (value !== recorded && part === 'name' && isStagingRelationName(value)) {
      throw new UsageError(
        `--rename of "${c.item.entry.name}": names ending in __cairn_<8 hex digits>_<n> are reserved for cairn's staging tables ` +
          `(a later restore would take "${value}" for a leftover). Choose another name.`,
      );
    }
    if (value !== recorded && bytes > MAX_IDENTIFIER_BYTES) {
      throw new UsageError(
        `--rename of "${c.item.entry.name}": the new ${part} "${value}" is ${bytes} bytes; PostgreSQL keeps at most ${MAX_IDENTIFIER_BYTES} bytes of a name ` +
          '(it would cut the rest without a word). Choose a shorter name.',
      );
    }
  }
}

/** The TOC filter's input (see toc.ts filterToc) for a plan; `existsInTarget` takes "schema.name". */
export function tocSelection(plan: Plan, fkReferences: Map<number, string>, existsInTarget: (q: string) => boolean): TocSelection {
  const relationOids = new Set<number>();
  const dependentOids = new Map<number, string>();
  const ownedSequences = new Set<string>();
  const partitionParents = new Map<string, string>();
  const selected = new Set<string>();
  for (const c of plan.collections) {
    const name = display(c.source);
    relationOids.add(c.oid);
    selected.add(name);
    for (const oid of c.dependentOids) dependentOids.set(oid, name);
    for (const s of c.table?.sequences ?? []) ownedSequences.add(display(s));
    const parent = c.table?.partitionOf ?? c.partitionOf;
    if (parent) partitionParents.set(name, parent);
  }
  const supportOids = new Set(plan.schemaDef.standaloneSequenceOids ?? []);
  // Sequences a restored table draws from, also another table's serial: created when missing.
  for (const c of plan.collections) for (const s of c.table?.usedSequences ?? []) supportOids.add(s.oid);
  const routines = restoredRoutines(plan);
  return { relationOids, supportOids, dependentOids, ownedSequences, partitionParents, selected, existsInTarget, fkReferences, ...(routines ? { routines } : {}) };
}

/**
 * The routines a restore creates (routines.ts): those selected by name with those they call,
 * those the restored relations need, and those supporting objects need; `universe`: every
 * routine the backup lists. Undefined for a backup made before routines were collections
 * (every routine of the archive is restored).
 */
export function restoredRoutines(plan: Plan): { restored: Set<number>; universe: Set<number> } | undefined {
  const universe = plan.schemaDef.routineOids;
  if (universe === undefined) return undefined;
  const starts = [...(plan.schemaDef.supportRoutineOids ?? [])];
  for (const c of plan.collections) starts.push(...(c.routineOids ?? []));
  for (const r of plan.routines) starts.push(...r.definition.overloads.map((o) => o.oid), ...r.definition.calls);
  return { restored: callClosure(starts, callGraph(plan)), universe: new Set(universe) };
}

/** The backup's call graph between routines (routine OID → those it calls directly), from "(schema)" and the selected routines. */
export function callGraph(plan: Plan): Map<number, Set<number>> {
  const graph = new Map<number, Set<number>>();
  const add = (from: number, to: number[]): void => {
    const set = graph.get(from) ?? new Set<number>();
    for (const t of to) set.add(t);
    graph.set(from, set);
  };
  for (const [from, to] of plan.schemaDef.routineCalls ?? []) add(from, to);
  for (const r of plan.routines) for (const o of r.definition.overloads) add(o.oid, r.definition.calls);
  return graph;
}

/**
 * The sequences a restore sets besides the restored collections' own (see load.ts
 * setSequences): every standalone sequence the backup recorded (the restore creates them all
 * when missing) and those the restored tables draw from (usedSequences), each once, with the
 * backed-up state; `used` when a restored table draws from it.
 */
export function supportSequences(plan: Plan): { state: PgSequenceState; used: boolean }[] {
  const selected = new Set<string>();
  for (const c of plan.collections) {
    if (c.sequence) selected.add(display(c.source));
    for (const s of c.table?.sequences ?? []) selected.add(display(s));
  }
  const out = new Map<string, { state: PgSequenceState; used: boolean }>();
  for (const s of plan.schemaDef.standaloneSequences ?? []) out.set(display(s), { state: s, used: false });
  for (const c of plan.collections) for (const s of c.table?.usedSequences ?? []) out.set(display(s), { state: s, used: true });
  return [...out.entries()].filter(([name]) => !selected.has(name)).map(([, v]) => v);
}

/** The name a restored table (source name) has after the switch. */
export function targetOf(plan: Plan, source: QName): QName {
  return plan.collections.find((c) => c.source.schema === source.schema && c.source.name === source.name)?.target ?? source;
}

/**
 * The archive's table of contents as hostile input: an entry of a type pg_dump never writes
 * refuses the restore (pg_restore would run its SQL whatever the type says); subscriptions are
 * left out (see NEVER_RESTORED_DESCS).
 */
export function checkedToc(toc: TocEntry[]): TocEntry[] {
  const unknown = toc.filter((e) => !isKnownDesc(e.desc));
  if (unknown.length > 0) {
    const shown = unknown
      .slice(0, 3)
      .map((e) => `"${e.line.length > 80 ? `${e.line.slice(0, 80)}…` : e.line}"`)
      .join(', ');
    throw new CorruptionError(
      `Refusing to restore: the schema archive ("${SCHEMA_COLLECTION}") has ${unknown.length} entr${unknown.length === 1 ? 'y' : 'ies'} of a type pg_dump never writes (${shown}). The backup was altered or damaged, or written by a newer pg_dump than this pg_restore knows; nothing was changed.`,
      { objects: [], collections: [SCHEMA_COLLECTION] },
    );
  }
  return toc.filter((e) => !NEVER_RESTORED_DESCS.has(e.desc));
}
