/**
 * What in a SQLite target stands in the way of a restore plan (the "fail" / "overwrite"
 * policies: findConflicts), read before anything is loaded and again under the switch's write
 * lock; and the check that a created table has the columns its manifest records (assertColumns),
 * since the rows are read in that order.
 */
import type BetterSqlite3 from 'better-sqlite3';
import type { ConflictPolicy } from '../types.js';
import { quoteIdent, type SqliteColumn } from './sql.js';
import { foldName } from './naming.js';
import { preview } from './validate.js';
import { invalid, type Planned, type PlannedTable } from './plan.js';
import { lexSql, type Lexeme } from './lexer.js';
import { contentTable, VIRTUAL_KIND } from './virtual.js';

/** A row of the target's sqlite_schema. */
export interface ExistingObject {
  type: string;
  name: string;
  tblName: string;
  sql: string | null;
}

/**
 * The created table has the columns (and rowid kind) the manifest records, which the rows are
 * read as. Throws CorruptionError (see plan.ts, invalid) when its CREATE TABLE says otherwise.
 */
export function assertColumns(db: BetterSqlite3.Database, t: PlannedTable): void {
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

/** The target's schema objects (main database), by folded name. */
export function readExisting(db: BetterSqlite3.Database): Map<string, ExistingObject> {
  const rows = db.prepare('SELECT type, name, tbl_name AS tblName, sql FROM main.sqlite_schema').all() as ExistingObject[];
  return new Map(rows.map((r) => [foldName(r.name), r]));
}

/** A row of PRAGMA table_xinfo, integers as bigint (safe integers). */
interface XInfoRow {
  name: string;
  type: string;
  notnull: bigint;
  pk: bigint;
}

/** Columns as a conflict message quotes them: `name TYPE NOT NULL PK1, …`. */
function describeColumns(cols: { name: string; type: string; notNull: boolean; pk: number }[]): string {
  return cols
    .map((c) => `${c.name}${c.type ? ` ${c.type}` : ''}${c.notNull ? ' NOT NULL' : ''}${c.pk ? ` PK${c.pk}` : ''}`)
    .join(', ');
}

/**
 * Every reason the plan cannot be applied to the target `file` (its path, for the messages)
 * under the policy, as user-facing sentences saying what to do; empty when there is none.
 */
export function findConflicts(db: BetterSqlite3.Database, plan: Planned[], onConflict: ConflictPolicy, file: string): string[] {
  const existing = readExisting(db);
  const problems: string[] = [];
  const replaced = new Set<string>();
  const label = (type: string): string => (type === 'table' ? 'Table' : type === 'view' ? 'View' : type === 'index' ? 'Index' : type === 'trigger' ? 'Trigger' : 'Object');
  for (const p of plan) {
    const found = existing.get(foldName(p.name));
    if (found === undefined) continue;
    const isVirtual = found.type === 'table' && /^CREATE\s+VIRTUAL\b/i.test(found.sql ?? '');
    const foundKind = isVirtual ? VIRTUAL_KIND : found.type;
    if (onConflict === 'fail') {
      problems.push(
        `${label(found.type)} "${found.name}" already exists in ${file}. Use --on-conflict overwrite to replace it, --rename to restore it under another name, or --exclude it.`,
      );
      continue;
    }
    if (foundKind !== p.kind) {
      const [was, is] = [foundKind.replace('_', ' '), p.kind.replace('_', ' ')];
      problems.push(
        `"${found.name}" exists in ${file} as a ${was}, and the backup has a ${is}: overwrite only replaces a ${is} with a ${is}. Use --rename to restore it under another name, or --exclude it.`,
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
  // The shadow tables a restored virtual table creates must not clash with objects that stay.
  for (const p of plan) {
    if (p.kind !== VIRTUAL_KIND) continue;
    for (const shadow of p.shadowNames) {
      const found = existing.get(foldName(shadow));
      if (found === undefined || replaced.has(foldName(p.name))) continue;
      problems.push(
        `${label(found.type)} "${found.name}" already exists in ${file}, and the virtual table "${p.name}" keeps its index in a table of that name. Drop it, or use --rename or --exclude.`,
      );
    }
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

function isWord(t: Lexeme | undefined, ...words: string[]): boolean {
  return t !== undefined && t.kind === 'ident' && !t.quoted && words.includes(t.value.toUpperCase());
}

/** The tables a trigger's body writes into (INSERT/REPLACE INTO, UPDATE [OR …], DELETE FROM), by name as written. */
export function triggerWrites(sql: string): string[] {
  const t = lexSql(sql);
  const begin = t.findIndex((x) => isWord(x, 'BEGIN'));
  const out: string[] = [];
  for (let i = Math.max(begin, 0); i < t.length; i++) {
    let k: number;
    if (isWord(t[i], 'INTO') || (isWord(t[i], 'FROM') && isWord(t[i - 1], 'DELETE'))) k = i + 1;
    else if (isWord(t[i], 'UPDATE') && (t[i - 1]?.text === ';' || isWord(t[i - 1], 'BEGIN'))) {
      k = i + 1;
      if (isWord(t[k], 'OR')) k += 2;
    } else continue;
    if (t[k + 1]?.text === '.') k += 2;
    const name = t[k];
    if (name !== undefined && (name.kind === 'ident' || name.kind === 'string')) out.push(name.value);
  }
  return out;
}

/**
 * Restored triggers that write into a table the restored database will not have (neither
 * restored nor in the target, `existing` by folded name): every write that fires them would
 * fail ("no such table"), as FTS sync triggers do when their virtual table is left out. One
 * sentence per trigger, saying what to do.
 */
export function missingTriggerTargets(plan: Planned[], existing: Set<string>, exporting = false): string[] {
  const [result, bring] = exporting ? ['the loaded script', 'Export'] : ['the restored database', 'Restore'];
  const present = new Set(existing);
  for (const p of plan) {
    present.add(foldName(p.name));
    if (p.kind === VIRTUAL_KIND) for (const s of p.shadowNames) present.add(foldName(s));
  }
  const problems: string[] = [];
  for (const p of plan) {
    const content = p.kind === VIRTUAL_KIND ? contentTable(p.createSql) : undefined;
    if (content !== undefined && !present.has(foldName(content))) {
      problems.push(
        `Virtual table "${p.name}" indexes the rows of "${content}" (content='${content}'), which ${result} would not have: its searches would fail. ${bring} "${content}" too, under that name (--include; --rename does not rewrite the content= option), or --exclude "${p.item.entry.name}".`,
      );
    }
    for (const tr of p.triggers) {
      const missing = [...new Set(triggerWrites(tr.sql).filter((n) => !present.has(foldName(n))))];
      if (missing.length === 0) continue;
      problems.push(
        `Trigger "${tr.name}" of "${p.name}" writes into ${missing.map((n) => `"${n}"`).join(', ')}, which ${result} would not have: every change that fires it would fail. ${bring} ${missing.length > 1 ? 'them' : 'it'} too (--include), or --exclude "${p.item.entry.name}".`,
      );
    }
  }
  return problems;
}
