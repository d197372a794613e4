/**
 * Reading and filtering the table of contents of a `pg_dump --format=custom --schema-only`
 * archive (the "(schema)" collection), and splitting the SQL script `pg_restore -f -` prints
 * into one block per archive entry.
 *
 * A TOC line (`pg_restore -l`) reads `dumpId; tableoid oid DESC schema tag owner`, where DESC
 * may be several words ("MATERIALIZED VIEW", "FK CONSTRAINT"), schema is "-" for objects
 * outside a schema, and tag may contain spaces (a constraint's tag is "table constraint").
 * Names are not quoted there: schema names with spaces are recognised from the archive's own
 * SCHEMA entries; owner names are assumed to have none.
 */
import fs from 'node:fs';
import path from 'node:path';
import { readIdent } from './staging.js';
import { display } from './naming.js';

export interface TocEntry {
  /** The line as printed by `pg_restore -l` (what a `-L` list file holds). */
  line: string;
  dumpId: number;
  tableoid: number;
  oid: number;
  desc: string;
  /** "-" when the object is not in a schema. */
  schema: string;
  tag: string;
  owner: string;
}

/** Every entry type pg_dump 10–17 writes, longest first so that prefixes match correctly. */
const DESCS = [
  'PUBLICATION TABLES IN SCHEMA',
  'TEXT SEARCH CONFIGURATION',
  'MATERIALIZED VIEW DATA',
  'FOREIGN DATA WRAPPER',
  'TEXT SEARCH DICTIONARY',
  'TEXT SEARCH TEMPLATE',
  'TEXT SEARCH PARSER',
  'PUBLICATION TABLE',
  'SEQUENCE OWNED BY',
  'MATERIALIZED VIEW',
  'LARGE OBJECT',
  'OPERATOR FAMILY',
  'OPERATOR CLASS',
  'ACCESS METHOD',
  'CHECK CONSTRAINT',
  'FK CONSTRAINT',
  'EVENT TRIGGER',
  'FOREIGN TABLE',
  'SECURITY LABEL',
  'SEQUENCE SET',
  'TABLE ATTACH',
  'INDEX ATTACH',
  'ROW SECURITY',
  'DEFAULT ACL',
  'USER MAPPING',
  'SHELL TYPE',
  'TABLE DATA',
  'BLOB METADATA',
  'BLOBS',
  'BLOB',
  'SUBSCRIPTION TABLE',
  'SUBSCRIPTION',
  'PUBLICATION',
  'PROCEDURAL LANGUAGE',
  'STATISTICS DATA',
  'STATISTICS',
  'CONSTRAINT',
  'COLLATION',
  'CONVERSION',
  'AGGREGATE',
  'PROCEDURE',
  'EXTENSION',
  'ENCODING',
  'STDSTRINGS',
  'SEARCHPATH',
  'DATABASE PROPERTIES',
  'DATABASE',
  'FUNCTION',
  'OPERATOR',
  'SEQUENCE',
  'TRANSFORM',
  'TRIGGER',
  'COMMENT',
  'DEFAULT',
  'LANGUAGE',
  'DOMAIN',
  'POLICY',
  'SCHEMA',
  'SERVER',
  'INDEX',
  'TABLE',
  'TYPE',
  'VIEW',
  'CAST',
  'RULE',
  'ACL',
].sort((a, b) => b.length - a.length);
const KNOWN_DESCS = new Set(DESCS);

/** Relations that are (or may be) collections. */
export const RELATION_DESCS = new Set(['TABLE', 'VIEW', 'MATERIALIZED VIEW', 'SEQUENCE', 'FOREIGN TABLE']);
/** Objects of a table whose tag is "table name" (or just "table" for ROW SECURITY). */
const TABLE_PREFIXED_DESCS = new Set([
  'CONSTRAINT',
  'FK CONSTRAINT',
  'CHECK CONSTRAINT',
  'TRIGGER',
  'RULE',
  'POLICY',
  'DEFAULT',
  'ROW SECURITY',
]);
/** Entries that hold data: the target loads data itself (and a schema-only archive has none). */
const DATA_DESCS = new Set(['TABLE DATA', 'SEQUENCE SET', 'MATERIALIZED VIEW DATA', 'BLOBS', 'BLOB', 'LARGE OBJECT', 'STATISTICS DATA']);
const DESCRIBING_DESCS = new Set(['COMMENT', 'ACL', 'SECURITY LABEL']);

/**
 * Entries a restore never runs, whatever the archive says: a subscription makes the target
 * server connect to another server and copy from it (pg_restore --no-subscriptions).
 */
export const NEVER_RESTORED_DESCS = new Set(['SUBSCRIPTION', 'SUBSCRIPTION TABLE']);

/** Whether `desc` is an entry type pg_dump writes. */
export function isKnownDesc(desc: string): boolean {
  return KNOWN_DESCS.has(desc);
}

export function parseToc(text: string): TocEntry[] {
  const lines = text.split('\n');
  // Schema names may contain spaces: learn them from the SCHEMA entries (whose own schema
  // field is always "-"), then read each entry's schema as the longest known name it starts with.
  const schemas = new Set<string>();
  for (const raw of lines) {
    const m = /^\d+; \d+ \d+ SCHEMA - (.*) \S*$/.exec(raw.replace(/\r$/, ''));
    if (m?.[1] !== undefined && m[1].includes(' ')) schemas.add(m[1]);
  }
  const spaced = [...schemas].sort((a, b) => b.length - a.length);
  const entries: TocEntry[] = [];
  for (const raw of lines) {
    const line = raw.replace(/\r$/, '');
    if (line === '' || line.startsWith(';')) continue;
    const m = /^(\d+); (\d+) (\d+) (.*)$/.exec(line);
    if (!m) continue;
    const rest = m[4] as string;
    const desc = DESCS.find((d) => rest.startsWith(`${d} `));
    if (desc === undefined) {
      // Unknown entry type from a newer pg_dump: keep it whole, it is never table-bound here.
      entries.push({ line, dumpId: Number(m[1]), tableoid: Number(m[2]), oid: Number(m[3]), desc: rest.split(' ')[0] ?? '', schema: '-', tag: '', owner: '' });
      continue;
    }
    const after = rest.slice(desc.length + 1);
    const known = spaced.find((name) => after.startsWith(`${name} `));
    const sp = known !== undefined ? known.length : after.indexOf(' ');
    const schema = sp < 0 ? after : after.slice(0, sp);
    const tail = sp < 0 ? '' : after.slice(sp + 1);
    const last = tail.lastIndexOf(' ');
    const tag = last < 0 ? tail : tail.slice(0, last);
    const owner = last < 0 ? '' : tail.slice(last + 1);
    entries.push({ line, dumpId: Number(m[1]), tableoid: Number(m[2]), oid: Number(m[3]), desc, schema, tag, owner });
  }
  return entries;
}

/** What the restore selected, in source names. */
export interface TocSelection {
  /** Catalog OIDs of the selected relations (tables, views, materialized views, standalone sequences). */
  relationOids: Set<number>;
  /** Relations created whether selected or not: standalone sequences, which a restored table's default may use. */
  supportOids: Set<number>;
  /** Catalog OIDs of objects that go with a selected relation (indexes, constraints, owned sequences, …) → that relation ("schema.name"). */
  dependentOids: Map<number, string>;
  /** "schema.name" of sequences owned by selected tables. */
  ownedSequences: Set<string>;
  /** "schema.name" of selected partitions → "schema.parent". */
  partitionParents: Map<string, string>;
  /** "schema.name" of every selected collection. */
  selected: Set<string>;
  /** Whether a relation ("schema.name", source name) exists in the target already (case B), or never (case A). */
  existsInTarget: (qualified: string) => boolean;
  /** Referenced table ("schema.name") of each FK CONSTRAINT entry, by dumpId; missing: unknown (kept). */
  fkReferences: Map<number, string>;
  /**
   * Routines (FUNCTION / PROCEDURE entries, by catalog OID) the restore creates, out of
   * `routineUniverse` (those the backup lists as collections); entries outside the universe are
   * kept. Absent (a backup made before routines were collections): every routine is kept.
   */
  routines?: { restored: Set<number>; universe: Set<number> };
}

export interface FilteredToc {
  /** Entries to restore, in archive order. */
  kept: TocEntry[];
  /** TABLE ATTACH / INDEX ATTACH entries of partitions whose parent is not restored but exists in the target: to run after the partition's indexes exist. */
  lateAttach: TocEntry[];
  /** Keys (see entryKey) of kept entries that belong to a restored collection. */
  collectionKeys: Set<string>;
  /**
   * Foreign keys of the backup from tables the restore leaves alone but the target has onto
   * restored tables: not added (they would constrain, and cascade into, a table the user did not
   * restore), named in a warning.
   */
  inboundFks: { table: string; constraint: string; references: string }[];
  /** Foreign keys of restored tables left out: the table they reference is neither restored nor in the target. */
  droppedFks: { table: string; constraint: string; references: string }[];
}

/** The warning for a foreign key filterToc left out (FilteredToc.droppedFks). */
export function droppedFkWarning(d: FilteredToc['droppedFks'][number]): string {
  return `foreign key "${d.constraint}" of ${d.table} not restored: it references ${d.references}, which this restore leaves out and the target does not have (restore both together to keep it)`;
}

/** droppedFkWarning for a plain-SQL export (which has no target). */
export function droppedFkExportWarning(d: FilteredToc['droppedFks'][number]): string {
  return `foreign key "${d.constraint}" of ${d.table} left out of this script: it references ${d.references}, which this export leaves out (export both together to keep it)`;
}

/** The warning for a foreign key of a table left alone onto a restored table (FilteredToc.inboundFks). */
export function inboundFkWarning(d: FilteredToc['inboundFks'][number]): string {
  return `foreign key "${d.constraint}" of ${d.table} (in the target, not restored) onto ${d.references} not added: the backup has it, but this restore changes only what it restores (restore ${d.table} too, or add the key yourself)`;
}

/** Identifies an entry by what `pg_restore -f -` prints in its header: type, schema and name. */
export function entryKey(desc: string, schema: string, tag: string): string {
  return `${desc}\u0000${schema}\u0000${tag}`;
}

/** A relation's key in the filter's sets: its collection name (naming.ts display, one per relation). */
const q = (schema: string, name: string): string => display({ schema, name });

/**
 * Keeps what the restore needs: every entry not tied to a relation (schemas, types,
 * functions, extensions, …), the selected relations with their dependents, comments and
 * grants, foreign keys whose referenced table is restored too or already exists in the
 * target (the others are listed in droppedFks); foreign keys of tables in the target onto
 * restored tables are listed in inboundFks, not kept.
 */
export function filterToc(entries: TocEntry[], selection: TocSelection): FilteredToc {
  const sel = asListed(selection);
  // Every relation the archive knows, by schema → names (longest first, for tag prefixes).
  const relationsBySchema = new Map<string, string[]>();
  const keptRelations = new Set<string>();
  const ownedKept = new Set<string>();
  for (const e of entries) {
    if (!RELATION_DESCS.has(e.desc)) continue;
    const list = relationsBySchema.get(e.schema) ?? [];
    list.push(e.tag);
    relationsBySchema.set(e.schema, list);
    const keep =
      sel.relationOids.has(e.oid) ||
      sel.supportOids.has(e.oid) ||
      sel.dependentOids.has(e.oid) ||
      (e.desc === 'SEQUENCE' && sel.ownedSequences.has(q(e.schema, e.tag)));
    if (keep) keptRelations.add(q(e.schema, e.tag));
    // Owned by a restored table (by OID; by name for older manifests), as the TOC spells it.
    if (e.desc === 'SEQUENCE' && (sel.dependentOids.has(e.oid) || sel.ownedSequences.has(q(e.schema, e.tag)))) ownedKept.add(q(e.schema, e.tag));
  }
  for (const list of relationsBySchema.values()) list.sort((a, b) => b.length - a.length);

  /** The relation a "table something" tag belongs to, or undefined when no relation matches. */
  const ownerByPrefix = (schema: string, tag: string, sep: string): string | undefined => {
    for (const name of relationsBySchema.get(schema) ?? []) {
      if (tag === name || tag.startsWith(name + sep)) return name;
    }
    return undefined;
  };
  const relationKept = (schema: string, name: string): boolean => keptRelations.has(q(schema, name));

  // Indexes: kept by OID only (their tag is the index name).
  const keptIndexes = new Map<string, string | undefined>(); // schema.index → owning relation
  for (const e of entries) {
    if (e.desc === 'INDEX' && sel.dependentOids.has(e.oid)) keptIndexes.set(q(e.schema, e.tag), sel.dependentOids.get(e.oid));
  }

  // Primary key / unique / exclusion constraints have no INDEX entry of their own; on a
  // partition, their index is attached to the parent's by an INDEX ATTACH entry named after
  // the constraint, which must come along with the constraint.
  for (const e of entries) {
    if (e.desc !== 'CONSTRAINT') continue;
    const owner = ownerByPrefix(e.schema, e.tag, ' ');
    if (owner === undefined) continue;
    if (!sel.dependentOids.has(e.oid) && !relationKept(e.schema, owner)) continue;
    const key = q(e.schema, e.tag.slice(owner.length + 1));
    if (!keptIndexes.has(key)) keptIndexes.set(key, q(e.schema, owner));
  }

  // Extended statistics: kept by OID (their tag is their own name), with their comments.
  const keptStatistics = new Set(entries.filter((e) => e.desc === 'STATISTICS' && sel.dependentOids.has(e.oid)).map((e) => q(e.schema, e.tag)));

  // Partitions: attach only when the parent is restored too or exists in the target.
  const attachKept = new Set<string>();
  const attachLate = new Set<string>();
  for (const [partition, parent] of sel.partitionParents) {
    if (sel.selected.has(parent)) attachKept.add(partition);
    else if (sel.existsInTarget(parent)) attachLate.add(partition);
  }

  // Routines the restore leaves out, with their comments, grants and security labels.
  const ROUTINE_DESCS = new Set(['FUNCTION', 'PROCEDURE']);
  const routineLeftOut = (e: TocEntry): boolean =>
    ROUTINE_DESCS.has(e.desc) && sel.routines !== undefined && sel.routines.universe.has(e.oid) && !sel.routines.restored.has(e.oid);
  const droppedRoutines = entries.filter(routineLeftOut);

  const kept: TocEntry[] = [];
  const lateAttach: TocEntry[] = [];
  const inboundFks: FilteredToc['inboundFks'] = [];
  const droppedFks: FilteredToc['droppedFks'] = [];
  const collectionKeys = new Set<string>();
  const keepCollection = (e: TocEntry): void => {
    kept.push(e);
    collectionKeys.add(entryKey(e.desc, e.schema, e.tag));
  };

  for (const e of entries) {
    if (DATA_DESCS.has(e.desc)) continue;
    if (routineLeftOut(e)) continue;
    if (RELATION_DESCS.has(e.desc)) {
      const selectedHere = sel.relationOids.has(e.oid) || sel.dependentOids.has(e.oid) || sel.ownedSequences.has(q(e.schema, e.tag));
      if (selectedHere) keepCollection(e);
      else if (relationKept(e.schema, e.tag)) kept.push(e); // a support object: skipped when it exists
      continue;
    }
    if (e.desc === 'INDEX') {
      if (keptIndexes.has(q(e.schema, e.tag))) keepCollection(e);
      continue;
    }
    if (e.desc === 'STATISTICS') {
      if (keptStatistics.has(q(e.schema, e.tag))) keepCollection(e);
      continue;
    }
    if (e.desc === 'SEQUENCE OWNED BY') {
      // Only with its table: another table's serial that a restored default draws from is
      // created (a support object) without the table that owns it.
      if (ownedKept.has(q(e.schema, e.tag))) keepCollection(e);
      continue;
    }
    if (e.desc === 'TABLE ATTACH') {
      const p = q(e.schema, e.tag);
      if (!relationKept(e.schema, e.tag)) continue;
      if (attachKept.has(p)) keepCollection(e);
      else if (attachLate.has(p)) lateAttach.push(e);
      continue;
    }
    if (e.desc === 'INDEX ATTACH') {
      if (!keptIndexes.has(q(e.schema, e.tag))) continue;
      // The partition index's table: the kept relation whose dependents hold it. Attach the
      // index where its table is attached.
      const table = keptIndexes.get(q(e.schema, e.tag));
      if (table !== undefined && attachLate.has(table)) lateAttach.push(e);
      else if (table === undefined || attachKept.has(table)) keepCollection(e);
      continue;
    }
    if (TABLE_PREFIXED_DESCS.has(e.desc)) {
      const owner = ownerByPrefix(e.schema, e.tag, ' ');
      const mine = sel.dependentOids.has(e.oid) || (owner !== undefined && relationKept(e.schema, owner));
      if (!mine) {
        // Not of a restored relation: dropped when it belongs to another relation of the
        // archive, kept when it belongs to no relation at all (e.g. a domain's constraint). A
        // foreign key of a table in the target onto a restored table is named (inboundFks).
        if (owner === undefined) kept.push(e);
        else if (e.desc === 'FK CONSTRAINT') {
          const ref = sel.fkReferences.get(e.dumpId);
          if (ref !== undefined && sel.selected.has(ref) && sel.existsInTarget(q(e.schema, owner))) {
            inboundFks.push({ table: q(e.schema, owner), constraint: e.tag.slice(owner.length + 1), references: ref });
          }
        }
        continue;
      }
      if (e.desc === 'FK CONSTRAINT') {
        const ref = sel.fkReferences.get(e.dumpId);
        if (ref !== undefined && !sel.selected.has(ref) && !sel.existsInTarget(ref)) {
          droppedFks.push({ table: q(e.schema, owner ?? ''), constraint: owner === undefined ? e.tag : e.tag.slice(owner.length + 1), references: ref });
          continue;
        }
      }
      keepCollection(e);
      continue;
    }
    if (e.desc === 'PUBLICATION TABLE') {
      let owner: string | undefined;
      for (const name of relationsBySchema.get(e.schema) ?? []) {
        if (e.tag.endsWith(` ${name}`)) {
          owner = name;
          break;
        }
      }
      if (owner === undefined || relationKept(e.schema, owner)) kept.push(e);
      continue;
    }
    if (DESCRIBING_DESCS.has(e.desc)) {
      const target = describedObject(e);
      if (target === undefined) {
        kept.push(e);
        continue;
      }
      if (ROUTINE_DESCS.has(target.desc) && droppedRoutines.some((r) => r.schema === e.schema && describesRoutine(r.tag, target.name))) continue;
      let relation: string | undefined;
      if (RELATION_DESCS.has(target.desc)) relation = target.name;
      else if (target.desc === 'INDEX') {
        if (keptIndexes.has(q(e.schema, target.name))) keepCollection(e);
        else if (!entries.some((x) => x.desc === 'INDEX' && x.schema === e.schema && x.tag === target.name)) kept.push(e);
        continue;
      } else if (target.desc === 'STATISTICS') {
        // A comment on an extended statistics object goes with it (it would fail without it).
        if (keptStatistics.has(q(e.schema, target.name))) keepCollection(e);
        else if (!entries.some((x) => x.desc === 'STATISTICS' && x.schema === e.schema && x.tag === target.name)) kept.push(e);
        continue;
      } else if (target.relation !== undefined && (relationsBySchema.get(e.schema) ?? []).includes(target.relation)) {
        relation = target.relation;
      }
      if (relation === undefined) {
        // Describes something that is not a relation of the archive (a function, a type, …).
        if (!RELATION_DESCS.has(target.desc)) kept.push(e);
        continue;
      }
      if (relationKept(e.schema, relation)) keepCollection(e);
      continue;
    }
    kept.push(e);
  }
  return { kept, lateAttach, collectionKeys, inboundFks, droppedFks };
}

/**
 * Whether a COMMENT / ACL / SECURITY LABEL tag's object (describedObject's name, e.g.
 * `customer_total(c integer)`: pg_dump writes the identity arguments there, with their names and
 * modes) is the routine whose FUNCTION / PROCEDURE entry's tag is `routineTag` (e.g.
 * `customer_total(integer)`: input argument types only). Same name, as many arguments (OUT ones
 * left out), each the type or ending in " type".
 */
export function describesRoutine(routineTag: string, described: string): boolean {
  const split = (sig: string): { name: string; args: string[] } | undefined => {
    const open = sig.indexOf('(');
    if (open < 0 || !sig.endsWith(')')) return undefined;
    const inner = sig.slice(open + 1, -1).trim();
    const args: string[] = [];
    let depth = 0;
    let quoted = false;
    let start = 0;
    for (let i = 0; i < inner.length; i++) {
      const c = inner[i];
      if (c === '"') quoted = !quoted;
      else if (!quoted && c === '(') depth++;
      else if (!quoted && c === ')') depth--;
      else if (!quoted && depth === 0 && c === ',') {
        args.push(inner.slice(start, i).trim());
        start = i + 1;
      }
    }
    if (inner !== '') args.push(inner.slice(start).trim());
    return { name: sig.slice(0, open).replace(/"/g, ''), args };
  };
  const a = split(routineTag);
  const described_ = split(described);
  // A procedure's identity arguments (PostgreSQL 14+) list its OUT arguments too; its entry's
  // tag lists input types only.
  const b = described_ && { ...described_, args: described_.args.filter((arg) => !/^OUT\s/i.test(arg)) };
  if (a === undefined || b === undefined || a.name !== b.name || a.args.length !== b.args.length) return false;
  return a.args.every((type, i) => {
    const arg = b.args[i] as string;
    return arg === type || arg.endsWith(` ${type}`);
  });
}

/**
 * A name as `pg_restore -l` lists it: its sanitize_line shows a line break (CR or LF) as a
 * space, so the TOC's schemas and tags of `"a<LF>b"` read `a b`.
 */
export function listedName(name: string): string {
  return name.replace(/[\r\n]/g, ' ');
}

/** The selection's names (real ones, from the manifest and the SQL) as the TOC lists them. */
function asListed(sel: TocSelection): TocSelection {
  const set = (names: Set<string>): Set<string> => new Set([...names].map(listedName));
  return {
    ...sel,
    dependentOids: new Map([...sel.dependentOids].map(([oid, name]) => [oid, listedName(name)])),
    ownedSequences: set(sel.ownedSequences),
    partitionParents: new Map([...sel.partitionParents].map(([p, parent]) => [listedName(p), listedName(parent)])),
    selected: set(sel.selected),
    fkReferences: new Map([...sel.fkReferences].map(([id, ref]) => [id, listedName(ref)])),
  };
}

/** Reads one identifier (quoted or not) at the start of `s`: its name and the rest. */
function leadingIdent(s: string): [string, string] {
  const quoted = s.startsWith('"') ? readIdent(s, 0) : undefined;
  if (quoted) return [quoted.name, s.slice(quoted.end)];
  const m = /^[^.( ]*/.exec(s);
  const name = m?.[0] ?? '';
  return [name, s.slice(name.length)];
}

/**
 * The object a COMMENT / ACL / SECURITY LABEL entry describes. Its tag is "TYPE name" with the
 * name quoted as SQL writes it: `TABLE "Order Lines"`, `COLUMN "Order Lines"."Note"`,
 * `CONSTRAINT "c" ON "t"`, `FUNCTION f(integer)`. `name` is unquoted (with a function's
 * argument list kept, as in the function's own tag); `relation` is the table a column,
 * constraint, trigger, rule or policy belongs to.
 */
export function describedObject(e: TocEntry): { desc: string; name: string; relation?: string } | undefined {
  const desc = ['COLUMN', ...DESCS].sort((a, b) => b.length - a.length).find((d) => e.tag.startsWith(`${d} `));
  if (desc === undefined) return undefined;
  const text = e.tag.slice(desc.length + 1);
  const [name, rest] = leadingIdent(text);
  if (desc === 'COLUMN' && rest.startsWith('.')) {
    return { desc, name: leadingIdent(rest.slice(1))[0], relation: name };
  }
  if (['CONSTRAINT', 'TRIGGER', 'RULE', 'POLICY'].includes(desc) && rest.startsWith(' ON ')) {
    const on = rest.slice(4);
    // "ON DOMAIN d" (a domain's constraint) is not a relation.
    if (on.startsWith('DOMAIN ')) return { desc, name };
    return { desc, name, relation: leadingIdent(on)[0] };
  }
  return { desc, name: name + rest };
}

/** Text of a `-L` list file. */
export function listFile(entries: TocEntry[]): string {
  return entries.map((e) => e.line).join('\n') + '\n';
}

export interface ScriptBlock {
  /** From the block header; undefined for the preamble. */
  desc?: string;
  schema?: string;
  name?: string;
  /** Statements of the entry. */
  sql: string;
  /** Trailing `SET …;` lines pg_restore prints between entries (to run whatever happens to the entry). */
  settings: string;
}

const HEADER = /^-- (?:Data for )?Name: (.*); Type: (.*); Schema: (.*); Owner: ([^;\n]*)(?:; Tablespace: [^\n]*)?$/;
/**
 * The header with its type one pg_dump writes: a name holding "; Type: …" cannot move where the
 * type is read (HEADER, which takes any type, is the fallback for a newer pg_dump's).
 */
const KNOWN_HEADER = new RegExp(
  `^-- (?:Data for )?Name: (.*); Type: (${DESCS.map((d) => d.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')}); Schema: (.*); Owner: ([^;\n]*)(?:; Tablespace: [^\n]*)?$`,
);

/**
 * Splits the output of `pg_restore -f -` into the preamble (session settings) and one block
 * per archive entry, each with its header's type, schema and name. psql meta-commands
 * (`\restrict`, `\unrestrict`) are dropped: the script runs through a driver, not psql.
 */
export function splitScript(script: string): ScriptBlock[] {
  const lines = script.split('\n');
  const blocks: ScriptBlock[] = [];
  let current: { desc?: string; schema?: string; name?: string; lines: string[] } = { lines: [] };
  const flush = (): void => {
    // Trailing single-line "SET x = y;" paragraphs are session settings for what follows.
    const body = current.lines.join('\n');
    const paragraphs = body.split(/\n\s*\n/);
    const settings: string[] = [];
    while (paragraphs.length > 0) {
      const p = (paragraphs[paragraphs.length - 1] as string).trim();
      if (p === '' || p.startsWith('--')) {
        if (p !== '') break;
        paragraphs.pop();
        continue;
      }
      if (/^SET [a-z_]+ = [^\n]*;$/.test(p)) {
        settings.unshift(p);
        paragraphs.pop();
        continue;
      }
      break;
    }
    const sql = paragraphs.join('\n\n').trim();
    const block: ScriptBlock = { sql, settings: settings.join('\n') };
    if (current.desc !== undefined) {
      block.desc = current.desc;
      block.schema = current.schema as string;
      block.name = current.name as string;
    }
    if (block.sql !== '' || block.settings !== '' || block.desc !== undefined) blocks.push(block);
  };
  // Inside a quoted name, a literal or a dollar-quoted body a line is text, never a header: a
  // table named "x<LF>--<LF>-- Name: y; Type: TABLE; …<LF>--<LF>z" spells one in its CREATE.
  let lex: LexState = { mode: 'none' };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (lex.mode === 'none' && /^\\(un)?restrict\b/.test(line)) continue;
    const header = lines[i + 1] ?? '';
    const m = lex.mode === 'none' && line === '--' ? (KNOWN_HEADER.exec(header) ?? HEADER.exec(header)) : null;
    if (m && lines[i + 2] === '--') {
      flush();
      current = { desc: m[2] as string, schema: m[3] as string, name: m[1] as string, lines: [] };
      i += 2;
      continue;
    }
    current.lines.push(line);
    lex = afterLine(line, lex);
  }
  flush();
  return blocks;
}

/** Where a line of SQL leaves the lexer: outside anything, or inside a quoted name, a literal, a dollar quote or a block comment. */
type LexState =
  | { mode: 'none' }
  | { mode: 'ident' }
  | { mode: 'literal'; escapes: boolean }
  | { mode: 'dollar'; tag: string }
  | { mode: 'comment'; depth: number };

/** The lexer state after `line` (and its line break), from `state` before it. */
function afterLine(line: string, state: LexState): LexState {
  let s = state;
  let i = 0;
  while (i < line.length) {
    const c = line[i] as string;
    switch (s.mode) {
      case 'none': {
        if (c === '-' && line[i + 1] === '-') return s; // a comment to the end of the line
        if (c === '"') s = { mode: 'ident' };
        else if (c === "'") s = { mode: 'literal', escapes: (line[i - 1] === 'E' || line[i - 1] === 'e') && !/[A-Za-z0-9_$]/.test(line[i - 2] ?? ' ') };
        else if (c === '/' && line[i + 1] === '*') {
          s = { mode: 'comment', depth: 1 };
          i++;
        } else if (c === '$' && !/[A-Za-z0-9_$]/.test(line[i - 1] ?? ' ')) {
          const m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(line.slice(i));
          if (m) {
            s = { mode: 'dollar', tag: m[0] };
            i += m[0].length - 1;
          }
        }
        break;
      }
      case 'ident':
        if (c === '"') {
          if (line[i + 1] === '"') i++;
          else s = { mode: 'none' };
        }
        break;
      case 'literal':
        if (s.escapes && c === '\\') i++;
        else if (c === "'") {
          if (line[i + 1] === "'") i++;
          else s = { mode: 'none' };
        }
        break;
      case 'dollar':
        if (line.startsWith(s.tag, i)) {
          i += s.tag.length - 1;
          s = { mode: 'none' };
        }
        break;
      case 'comment':
        if (c === '*' && line[i + 1] === '/') {
          s = s.depth === 1 ? { mode: 'none' } : { mode: 'comment', depth: s.depth - 1 };
          i++;
        } else if (c === '/' && line[i + 1] === '*') {
          s = { mode: 'comment', depth: s.depth + 1 };
          i++;
        }
        break;
    }
    i++;
  }
  return s;
}

/**
 * The table an FK CONSTRAINT's SQL references: `… REFERENCES schema.table(cols) …`, in
 * source names, as collections are named (naming.ts display). undefined when it cannot be read.
 */
export function referencedTable(sql: string): string | undefined {
  const ident = '(?:"(?:[^"]|"")*"|[^\\s."(]+)';
  const m = new RegExp(`\\bREFERENCES (${ident})\\.(${ident})\\s*\\(`).exec(sql);
  if (!m) return undefined;
  const unquote = (s: string): string => (s.startsWith('"') ? s.slice(1, -1).replace(/""/g, '"') : s);
  return display({ schema: unquote(m[1] as string), name: unquote(m[2] as string) });
}

/**
 * Which table each foreign key of the archive references, by dumpId: the FK entries' SQL, from
 * `script` (pg_restore of a list file written into `tmp`), read for their REFERENCES clause.
 * A restore and a plain-SQL export decide with it which foreign keys a selection must drop.
 */
export async function readFkReferences(toc: TocEntry[], tmp: string, script: (list: string) => Promise<{ desc?: string; schema?: string; name?: string; sql: string }[]>): Promise<Map<number, string>> {
  const fks = toc.filter((e) => e.desc === 'FK CONSTRAINT');
  const result = new Map<number, string>();
  if (fks.length === 0) return result;
  const list = path.join(tmp, 'fk.list');
  fs.writeFileSync(list, listFile(fks), { mode: 0o600 });
  const byKey = new Map(fks.map((e) => [entryKey(e.desc, e.schema, e.tag), e.dumpId]));
  for (const block of await script(list)) {
    if (block.desc !== 'FK CONSTRAINT') continue;
    const id = byKey.get(entryKey(block.desc, block.schema as string, block.name as string));
    const ref = referencedTable(block.sql);
    if (id !== undefined && ref !== undefined) result.set(id, ref);
  }
  return result;
}
