/**
 * The staging plan of a restore into an existing database (see existing-database.ts): which
 * entries of the pre- and post-data scripts `pg_restore -f -` prints build the staged objects
 * in the load phase, with their SQL rewritten to staging names (staging.ts), and which run in
 * the switch under the final names; the renames that give the staged objects their names back;
 * the foreign keys to validate after the switch.
 *
 * Staging names are `<name>__cairn_<id>_<n>` (stagingRelationName in staging.ts): tables, their
 * owned sequences, restored standalone sequences, and the indexes and primary / unique /
 * exclusion constraints on staged tables, and copies of domains with NOT VALID checks
 * (StagingPlan.domainSwaps). Nothing in the load phase uses a real name of the target, so
 * loading never writes into, or locks, an existing object.
 */
import { SourceError } from '../../core/errors.js';
import { quoteIdent } from './catalog.js';
import { qname, splitName, type Plan, type PlannedCollection, type QName } from './plan.js';
import {
  addedConstraint,
  attachedIndex,
  createdDomain,
  createdIndex,
  createdRelation,
  foreignKeyNotValid,
  headRelation,
  notValidDomainCheck,
  relKey,
  renameAddedConstraint,
  renameCreatedIndex,
  rewriteQualified,
  stagingRelationName as stagingRelationNameOf,
} from './staging.js';
import { describedObject, entryKey, referencedTable, type ScriptBlock } from './toc.js';

/** One block of the load phase: its SQL (rewritten to staging names) and what it creates. */
export interface LoadStep {
  sql: string;
  /** false: a supporting object, skipped when it exists already. */
  mustSucceed: boolean;
  /** The staging table / sequence the step creates. */
  table?: QName;
  sequence?: QName;
  /** The staging domain the step creates (see StagingPlan.domainSwaps). */
  domain?: QName;
}

/** The result of stagingPlan; blocks are the pre-/post-data ScriptBlocks themselves (identity keys). */
export interface StagingPlan {
  /** Blocks run in the load phase, with their rewritten SQL; every other block runs in the switch. */
  load: Map<ScriptBlock, LoadStep>;
  /** SQL to run in the switch instead of the block's own (foreign keys added NOT VALID). */
  switchSql: Map<ScriptBlock, string>;
  /** Statements of the switch giving the staged objects their names back. */
  renames: {
    sql: string;
    clearComment?: string;
    /** A restored standalone sequence's rename: kept in place instead when objects left alone use it (existing-database.ts). */
    sequence?: { staging: QName; final: QName };
  }[];
  /** Foreign keys added NOT VALID in the switch, to validate after it (source table names). */
  validate: { table: QName; constraint: string }[];
  /**
   * Domains of the target replaced in the switch by a staging copy: the archive gives the
   * domain a NOT VALID check (rows older than the check may break it) and it exists in the
   * target with that check already, so rows could not be COPYed into a column of it. The copy
   * (`staging`, created without its NOT VALID checks, as pg_dump creates it) types the staged
   * tables' columns; the switch drops the target's domain and gives the copy its name, then adds
   * the NOT VALID checks (the archive's post-data entries), as pg_restore --clean would. A
   * domain over a staged one is staged too. In the order the switch swaps them: a domain
   * before its base.
   */
  domainSwaps: { schema: string; name: string; staging: string }[];
  /** Staging name of a planned table. */
  tableName(t: PlannedCollection): string;
}

/**
 * Which entries of the pre- and post-data scripts build the staged tables (the load phase,
 * SQL rewritten to staging names) and which run in the switch (everything that only makes
 * sense, or is only cheap, once the names are final: views, materialized views, defaults,
 * triggers, rules, policies, comments, grants, attaching to an existing parent, foreign keys to
 * existing tables).
 * `pre` / `post`: the pre- and post-data scripts of the filtered archive; `collectionKeys`: the
 * entry keys (toc.ts entryKey) of the restored collections; `restoreId`: the id that goes into
 * every staging name. The returned tableName throws SourceError for a table the archive does not
 * define.
 */
export function stagingPlan(
  plan: Plan,
  pre: ScriptBlock[],
  post: ScriptBlock[],
  collectionKeys: Set<string>,
  restoreId: string,
  existingDomains: ReadonlySet<string> = new Set(),
): StagingPlan {
  let counter = 0;
  const stagingRelationName = (name: string): string => stagingRelationNameOf(name, restoreId, counter++);
  const names = new Map<string, string>();
  const stagedTables = new Map<string, PlannedCollection>();
  /** Sequences owned by staged tables, and restored standalone sequences. */
  const ownedSequences = new Set<string>();
  for (const c of plan.collections) {
    if (c.sequence !== undefined) {
      // A standalone sequence: staged too, a staged table's default may use it.
      ownedSequences.add(relKey(c.source.schema, c.source.name));
      names.set(relKey(c.source.schema, c.source.name), stagingRelationName(c.source.name));
    }
    if (c.table === undefined) continue;
    const key = relKey(c.source.schema, c.source.name);
    stagedTables.set(key, c);
    names.set(key, stagingRelationName(c.source.name));
    for (const s of c.table.sequences) {
      ownedSequences.add(relKey(s.schema, s.name));
      names.set(relKey(s.schema, s.name), stagingRelationName(s.name));
    }
  }
  const isCollection = (b: ScriptBlock): boolean => b.desc !== undefined && collectionKeys.has(entryKey(b.desc, b.schema as string, b.name as string));
  const onStaged = (b: ScriptBlock): QName | undefined => {
    const head = headRelation(b.sql);
    return head !== undefined && stagedTables.has(relKey(head.schema, head.name)) ? head : undefined;
  };
  const load = new Map<ScriptBlock, LoadStep>();
  const switchSql = new Map<ScriptBlock, string>();
  const tableRenames: StagingPlan['renames'] = [];
  const sequenceRenames: StagingPlan['renames'] = [];
  const indexRenames: StagingPlan['renames'] = [];
  const constraintRenames: StagingPlan['renames'] = [];
  const validate: StagingPlan['validate'] = [];
  const createdTables = new Set<string>();
  const rename = (word: string, schema: string, staging: string, name: string): string =>
    `ALTER ${word} ${qname({ schema, name: staging })} RENAME TO ${quoteIdent(name)}`;

  // Index and constraint names first: INDEX ATTACH statements name both sides.
  const indexes = new Map<ScriptBlock, string>();
  const constraints = new Map<ScriptBlock, string>();
  for (const b of post) {
    if (!isCollection(b) || (b.desc !== 'INDEX' && b.desc !== 'CONSTRAINT')) continue;
    const head = onStaged(b);
    if (head === undefined) continue;
    const name = b.desc === 'INDEX' ? createdIndex(b.sql) : addedConstraint(b.sql);
    if (name === undefined) continue;
    const staging = stagingRelationName(name);
    names.set(relKey(head.schema, name), staging);
    if (b.desc === 'INDEX') {
      indexes.set(b, staging);
      indexRenames.push({ sql: rename('INDEX', head.schema, staging, name) });
    } else {
      constraints.set(b, staging);
      // pg_dump's CONSTRAINT entries are primary key, unique and exclusion constraints, each
      // with its index of the same name: renaming the index renames the constraint too, and
      // works on a typed table too (ALTER TABLE … RENAME CONSTRAINT does not: "cannot rename
      // column of typed table").
      constraintRenames.push({ sql: rename('INDEX', head.schema, staging, name) });
    }
  }

  // Domains to stage (see StagingPlan.domainSwaps): present in the target, with a NOT VALID
  // check in the archive or over a domain staged (its columns check the base's checks too), and
  // used by a staged table or a staged domain.
  const domainSwaps: StagingPlan['domainSwaps'] = [];
  const stagedDomains = new Set<string>();
  const domainBlocks = new Map<string, { schema: string; name: string; sql: string }>();
  for (const b of pre) {
    const d = b.desc === 'DOMAIN' ? createdDomain(b.sql) : undefined;
    if (d !== undefined) domainBlocks.set(relKey(d.schema, d.name), { ...d, sql: b.sql });
  }
  const mentions = (sql: string, key: string): boolean => rewriteQualified(sql, new Map([[key, '']])) !== sql;
  const needs = new Set<string>();
  for (const b of post) {
    const d = b.desc === 'CHECK CONSTRAINT' ? notValidDomainCheck(b.sql) : undefined;
    if (d !== undefined && existingDomains.has(relKey(d.schema, d.name))) needs.add(relKey(d.schema, d.name));
  }
  for (let grew = true; grew; ) {
    grew = false;
    for (const [key, d] of domainBlocks) {
      if (needs.has(key) || !existingDomains.has(key)) continue;
      if ([...needs].some((base) => mentions(d.sql, base))) {
        needs.add(key);
        grew = true;
      }
    }
  }
  const tableSql = pre.filter((b) => b.desc === 'TABLE' && isCollection(b)).map((b) => b.sql);
  for (let grew = true; grew; ) {
    grew = false;
    for (const key of needs) {
      if (stagedDomains.has(key)) continue;
      const users = [...tableSql, ...[...stagedDomains].map((k) => domainBlocks.get(k)?.sql ?? '')];
      if (users.some((sql) => mentions(sql, key))) {
        stagedDomains.add(key);
        grew = true;
      }
    }
  }
  // In creation order; the switch swaps them in reverse (a domain before its base).
  for (const [key, d] of domainBlocks) {
    if (!stagedDomains.has(key)) continue;
    const staging = stagingRelationName(d.name);
    names.set(key, staging);
    domainSwaps.unshift({ schema: d.schema, name: d.name, staging });
  }
  /** Comments, grants, labels on a staged domain: in the switch, once the copy has the name. */
  const onStagedDomain = (b: ScriptBlock): boolean => {
    if (stagedDomains.size === 0 || (b.desc !== 'COMMENT' && b.desc !== 'ACL' && b.desc !== 'SECURITY LABEL')) return false;
    const obj = describedObject({ line: '', dumpId: 0, tableoid: 0, oid: 0, desc: b.desc, schema: b.schema as string, tag: b.name as string, owner: '' });
    return obj?.desc === 'DOMAIN' && stagedDomains.has(relKey(b.schema as string, obj.name));
  };

  for (const b of pre) {
    if (b.desc === undefined) continue;
    if (!isCollection(b)) {
      const domain = b.desc === 'DOMAIN' ? createdDomain(b.sql) : undefined;
      const staging = domain === undefined ? undefined : names.get(relKey(domain.schema, domain.name));
      if (domain !== undefined && staging !== undefined && stagedDomains.has(relKey(domain.schema, domain.name))) {
        load.set(b, { sql: rewriteQualified(b.sql, names), mustSucceed: true, domain: { schema: domain.schema, name: staging } });
      } else if (domain !== undefined) {
        // A new domain over a staged one: over the copy, which takes the name in the switch.
        load.set(b, { sql: rewriteQualified(b.sql, names), mustSucceed: false });
      } else if (!onStagedDomain(b)) {
        load.set(b, { sql: b.sql, mustSucceed: false });
      }
      continue;
    }
    // Names as the statement spells them (a header shows a line break in a name as a space).
    const created = createdRelation(b.sql);
    const schema = created?.schema ?? (b.schema as string);
    const relation = created?.name ?? (b.name as string);
    const key = relKey(schema, relation);
    const staging = names.get(key);
    if (b.desc === 'TABLE' && stagedTables.has(key) && staging !== undefined) {
      createdTables.add(key);
      load.set(b, { sql: rewriteQualified(b.sql, names), mustSucceed: true, table: { schema, name: staging } });
      tableRenames.push({
        sql: rename('TABLE', schema, staging, relation),
        clearComment: `COMMENT ON TABLE ${qname({ schema, name: relation })} IS NULL`,
      });
    } else if (b.desc === 'SEQUENCE' && ownedSequences.has(key) && staging !== undefined) {
      load.set(b, { sql: rewriteQualified(b.sql, names), mustSucceed: true, sequence: { schema, name: staging } });
      sequenceRenames.push({
        sql: rename('SEQUENCE', schema, staging, relation),
        clearComment: `COMMENT ON SEQUENCE ${qname({ schema, name: relation })} IS NULL`,
        sequence: { staging: { schema, name: staging }, final: { schema, name: relation } },
      });
    } else if (b.desc === 'SEQUENCE OWNED BY' && ownedSequences.has(key)) {
      load.set(b, { sql: rewriteQualified(b.sql, names), mustSucceed: true });
    } else if (b.desc === 'TABLE ATTACH' && stagedTables.has(key) && onStaged(b) !== undefined) {
      load.set(b, { sql: rewriteQualified(b.sql, names), mustSucceed: true });
    }
  }

  for (const b of post) {
    if (!isCollection(b)) continue;
    if (b.desc === 'INDEX ATTACH') {
      const parent = headRelation(b.sql);
      const child = attachedIndex(b.sql);
      if (parent && child && names.has(relKey(parent.schema, parent.name)) && names.has(relKey(child.schema, child.name))) {
        load.set(b, { sql: rewriteQualified(b.sql, names), mustSucceed: true });
      }
      continue;
    }
    const head = onStaged(b);
    if (head === undefined) continue;
    const index = indexes.get(b);
    const constraint = constraints.get(b);
    if (index !== undefined) {
      load.set(b, { sql: rewriteQualified(renameClusterOn(renameCreatedIndex(b.sql, index), createdIndex(b.sql) as string, index), names), mustSucceed: true });
    } else if (constraint !== undefined) {
      const name = addedConstraint(b.sql) as string;
      load.set(b, { sql: rewriteQualified(renameClusterOn(renameAddedConstraint(b.sql, constraint), name, constraint), names), mustSucceed: true });
    } else if (b.desc === 'CHECK CONSTRAINT') {
      load.set(b, { sql: rewriteQualified(b.sql, names), mustSucceed: true });
    } else if (b.desc === 'FK CONSTRAINT') {
      const ref = referencedTable(b.sql);
      const refName = ref === undefined ? undefined : splitName(ref);
      if (refName !== undefined && stagedTables.has(relKey(refName.schema, refName.name))) {
        load.set(b, { sql: rewriteQualified(b.sql, names), mustSucceed: true });
        continue;
      }
      // References an existing table: added in the switch. NOT VALID (a partitioned table
      // cannot have one before PostgreSQL 18: its key is checked in the switch).
      const table = stagedTables.get(relKey(head.schema, head.name));
      const name = addedConstraint(b.sql);
      const notValid = table?.relkind === 'r' && name !== undefined ? foreignKeyNotValid(b.sql) : undefined;
      if (notValid !== undefined && name !== undefined) {
        switchSql.set(b, notValid);
        validate.push({ table: head, constraint: name });
      }
    }
  }
  return {
    load,
    switchSql,
    renames: [...tableRenames, ...sequenceRenames, ...indexRenames, ...constraintRenames],
    validate,
    domainSwaps,
    tableName: (t) => {
      // Never the table's own name: loading must not write into an existing table.
      const key = relKey(t.source.schema, t.source.name);
      const name = names.get(key);
      if (name === undefined || !createdTables.has(key)) throw new SourceError(`Cannot restore "${t.item.entry.name}": the schema archive has no definition of its table.`);
      return name;
    },
  };
}

/**
 * The statements of an index's entry that name the index as a property of its table
 * (`ALTER TABLE … CLUSTER ON <index>`, `ALTER TABLE … REPLICA IDENTITY USING INDEX <index>`),
 * with the index's staging name.
 */
function renameClusterOn(sql: string, name: string, staging: string): string {
  return sql.replace(/ (CLUSTER ON|REPLICA IDENTITY USING INDEX) ("(?:[^"]|"")*"|[^\s";]+);/g, (m, clause: string, ident: string) => {
    const unquoted = ident.startsWith('"') ? ident.slice(1, -1).replace(/""/g, '"') : ident;
    return unquoted === name ? ` ${clause} ${quoteIdent(staging)};` : m;
  });
}
