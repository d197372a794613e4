/**
 * The restore items of a MySQL/MariaDB backup checked and sorted into a Plan: tables (with their
 * triggers), views, sequences, the database-wide "(routines)" and "(users and grants)"
 * collections, and the renames. Definitions come from a manifest: they are data to check, never
 * trusted as they are (every CREATE statement must create the object it claims, of its kind).
 */
import { CorruptionError, UsageError } from '../../core/errors.js';
import type { RestoreItem } from '../types.js';
import { bodyNames, createdName, referencedTables, tokenize } from './definitions.js';
import {
  GRANTS_KIND,
  MYSQL_TSV,
  ROUTINES_KIND,
  SEQUENCE_KIND,
  TABLE_KIND,
  VIEW_KIND,
  type MysqlRoutinesDefinition,
  type MysqlSequenceDefinition,
  type MysqlTableDefinition,
  type MysqlViewDefinition,
} from './format.js';

export interface PlannedObject<D> {
  item: RestoreItem;
  def: D;
  /** Name in the backup. */
  source: string;
  /** Name in the target. */
  target: string;
}

export interface Plan {
  tables: PlannedObject<MysqlTableDefinition>[];
  /** In the backup's order (dependency order). */
  views: PlannedObject<MysqlViewDefinition>[];
  sequences: PlannedObject<MysqlSequenceDefinition>[];
  routines?: { item: RestoreItem; def: MysqlRoutinesDefinition };
  grants?: RestoreItem;
  /** Source name → target name, for the renamed tables, views and sequences. */
  renamed: Map<string, string>;
  /** Restore warnings found while planning (routines reading a renamed table). */
  warnings: string[];
}

const isStr = (v: unknown): v is string => typeof v === 'string';

/**
 * What is wrong with one collection's definition, as messages ([] when nothing): the checks a
 * restore makes before writing, also run by `verify` (manifestProblems).
 */
export function definitionProblems(entry: { name: string; kind: string; definition: Record<string, unknown>; dataFormat?: string }): string[] {
  const d = entry.definition;
  const where = `${entry.kind} "${entry.name}"`;
  const out: string[] = [];
  const create = (keyword: 'TABLE' | 'SEQUENCE' | 'VIEW'): void => {
    if (!isStr(d.createSql)) {
      out.push(`${where}: the definition has no createSql.`);
      return;
    }
    const name = createdName(d.createSql, keyword);
    if (name !== entry.name) out.push(`${where}: its createSql does not create ${keyword.toLowerCase()} "${entry.name}" (it names ${name === undefined ? 'nothing' : `"${name}"`}).`);
  };
  switch (entry.kind) {
    case TABLE_KIND: {
      create('TABLE');
      if (entry.dataFormat !== MYSQL_TSV) out.push(`${where}: data format "${entry.dataFormat ?? 'none'}" is not ${MYSQL_TSV}.`);
      const cols = d.columns;
      if (!Array.isArray(cols) || cols.length === 0 || !cols.every((c: unknown) => typeof c === 'object' && c !== null && isStr((c as { name?: unknown }).name) && typeof (c as { stored?: unknown }).stored === 'boolean')) {
        out.push(`${where}: the definition's columns are missing or malformed.`);
      }
      if (!Array.isArray(d.triggers) || !d.triggers.every((t: unknown) => typeof t === 'object' && t !== null && isStr((t as { name?: unknown }).name) && isStr((t as { createSql?: unknown }).createSql))) {
        out.push(`${where}: the definition's triggers are missing or malformed.`);
      } else {
        for (const t of d.triggers as { name: string; createSql: string }[]) {
          if (createdName(t.createSql, 'TRIGGER') !== t.name) out.push(`${where}: trigger "${t.name}"'s createSql does not create it.`);
        }
      }
      break;
    }
    case VIEW_KIND:
      create('VIEW');
      if (!Array.isArray(d.references) || !d.references.every(isStr)) out.push(`${where}: the definition's references are missing or malformed.`);
      break;
    case SEQUENCE_KIND:
      create('SEQUENCE');
      if (!isStr(d.nextValue) || !/^-?\d{1,20}$/.test(d.nextValue)) out.push(`${where}: nextValue is not an integer.`);
      break;
    case ROUTINES_KIND: {
      if (!isStr(d.charset) || !/^\w{1,64}$/.test(d.charset) || !isStr(d.collation) || !/^\w{1,64}$/.test(d.collation)) out.push(`${where}: charset/collation are missing or malformed.`);
      const rs = d.routines;
      if (!Array.isArray(rs)) {
        out.push(`${where}: the definition's routines are missing.`);
        break;
      }
      for (const r of rs as Record<string, unknown>[]) {
        const kind = r.kind;
        if ((kind !== 'PROCEDURE' && kind !== 'FUNCTION' && kind !== 'EVENT') || !isStr(r.name) || !isStr(r.createSql) || !isStr(r.sqlMode)) {
          out.push(`${where}: a routine is malformed.`);
          continue;
        }
        if (createdName(r.createSql, kind) !== r.name) out.push(`${where}: ${kind.toLowerCase()} "${r.name}"'s createSql does not create it.`);
        for (const k of ['characterSetClient', 'collationConnection'] as const) {
          if (r[k] !== undefined && (!isStr(r[k]) || !/^\w{1,64}$/.test(r[k]))) out.push(`${where}: ${kind.toLowerCase()} "${r.name}" has a malformed ${k}.`);
        }
        if (!/^[A-Z_,]*$/.test(r.sqlMode)) out.push(`${where}: ${kind.toLowerCase()} "${r.name}" has a malformed sqlMode.`);
      }
      break;
    }
    case GRANTS_KIND:
      break;
    default:
      out.push(`${where}: kind "${entry.kind}" is not a MySQL collection kind.`);
  }
  return out;
}

/**
 * The items → a Plan. Throws CorruptionError for a malformed definition, UsageError for a
 * selection the restore cannot honour: two objects restored under one name, a view or a trigger
 * that reads a renamed table or view (its body is not rewritten: a column or alias may share the
 * name, so no rewrite is safe). `exporting`: the plan of `cairn export --format sql`, whose
 * messages speak of the script, not of a restore.
 */
export function planItems(items: RestoreItem[], exporting = false): Plan {
  const verb = exporting ? 'exported' : 'restored';
  const renames = exporting ? 'which this export renames' : 'which this restore renames';
  const without = exporting ? 'export without renaming' : 'restore without renaming';
  const plan: Plan = { tables: [], views: [], sequences: [], renamed: new Map(), warnings: [] };
  const problems: string[] = [];
  for (const item of items) {
    const e = item.entry;
    problems.push(...definitionProblems(e));
    const obj = { item, def: e.definition as never, source: e.name, target: item.targetName };
    if (e.kind === TABLE_KIND) plan.tables.push(obj);
    else if (e.kind === VIEW_KIND) plan.views.push(obj);
    else if (e.kind === SEQUENCE_KIND) plan.sequences.push(obj);
    else if (e.kind === ROUTINES_KIND) plan.routines = { item, def: e.definition as unknown as MysqlRoutinesDefinition };
    else if (e.kind === GRANTS_KIND) plan.grants = item;
    if (e.kind !== ROUTINES_KIND && e.kind !== GRANTS_KIND && item.targetName !== e.name) plan.renamed.set(e.name, item.targetName);
  }
  if (problems.length > 0) {
    throw new CorruptionError(`The backup's definitions cannot be ${verb}: ${problems.slice(0, 5).join(' ')}${problems.length > 5 ? ` (and ${problems.length - 5} more)` : ''}`, {
      objects: [],
      collections: [...new Set(items.map((i) => i.entry.name))].slice(0, 20),
    });
  }
  const byTarget = new Map<string, string>();
  for (const o of [...plan.tables, ...plan.views, ...plan.sequences]) {
    const other = byTarget.get(o.target);
    if (other !== undefined) throw new UsageError(`"${other}" and "${o.source}" would both be ${verb} as "${o.target}": change the --rename, or exclude one of them.`);
    byTarget.set(o.target, o.source);
  }
  // Trigger names are unique per database: two tables' triggers cannot collide in a backup, but
  // say it plainly if a definition claims so.
  const renamedSources = new Set(plan.renamed.keys());
  if (renamedSources.size > 0) {
    for (const v of plan.views) {
      const reads = v.def.references.filter((r) => renamedSources.has(r));
      if (reads.length > 0) {
        throw new UsageError(
          `View "${v.source}" reads ${reads.map((r) => `"${r}"`).join(', ')}, ${renames}; a view's query is not rewritten. Exclude the view (--exclude ${JSON.stringify(v.source)}), or ${without} ${reads.map((r) => `"${r}"`).join(', ')}.`,
        );
      }
    }
    for (const t of plan.tables) {
      for (const trig of t.def.triggers) {
        const names = bodyNames(trig.createSql, 'ON');
        const reads = [...renamedSources].filter((r) => names.has(r));
        if (reads.length > 0) {
          throw new UsageError(
            `Trigger "${trig.name}" of table "${t.source}" names ${reads.map((r) => `"${r}"`).join(', ')}, ${renames}; a trigger's body is not rewritten. ${exporting ? 'Export' : 'Restore'} without renaming ${reads.map((r) => `"${r}"`).join(', ')}, or exclude table "${t.source}" (its triggers go with it).`,
          );
        }
      }
    }
    for (const r of plan.routines?.def.routines ?? []) {
      const names = new Set(tokenize(r.createSql).filter((t) => t.kind === 'id' || t.kind === 'word').map((t) => t.text));
      const reads = [...renamedSources].filter((n) => names.has(n));
      if (reads.length > 0) {
        plan.warnings.push(`${r.kind.toLowerCase()} "${r.name}" may name ${reads.map((n) => `"${n}"`).join(', ')}, ${exporting ? 'renamed in this script: its body is written unchanged' : 'renamed by this restore: its body is restored unchanged'} and still uses the old name.`);
      }
    }
  }
  return plan;
}

/** Tables a table's foreign keys reference that this restore does not bring (they must be in the target). */
export function outsideReferences(plan: Plan): Map<string, string[]> {
  const restored = new Set(plan.tables.map((t) => t.source));
  const out = new Map<string, string[]>();
  for (const t of plan.tables) {
    const missing = [...new Set(referencedTables(t.def.createSql))].filter((r) => !restored.has(r) && r !== t.source);
    if (missing.length > 0) out.set(t.source, missing);
  }
  return out;
}

/** Views' references that this restore does not bring (they must be in the target). */
export function viewOutsideReferences(plan: Plan): Map<string, string[]> {
  const restored = new Set([...plan.tables, ...plan.views, ...plan.sequences].map((o) => o.source));
  const out = new Map<string, string[]>();
  for (const v of plan.views) {
    const missing = v.def.references.filter((r) => !restored.has(r) && r !== v.source);
    if (missing.length > 0) out.set(v.source, missing);
  }
  return out;
}
