/**
 * PostgreSQL source: one consistent snapshot of one database, read the way pg_dump reads it.
 *
 * Consistency: a main session opens `REPEATABLE READ, READ ONLY` and exports its snapshot
 * (pg_export_snapshot). Everything is read in that snapshot: the catalog (in the main session),
 * the schema archive (`pg_dump --snapshot=…`), and table data (COPY in the main session or in
 * worker sessions that import the snapshot with SET TRANSACTION SNAPSHOT). Writers go on while
 * the backup runs; the backup sees the database as it was when the snapshot was taken.
 *
 * Locks: like pg_dump, the main session takes ACCESS SHARE on every selected table and
 * partition and holds it until close(), so a concurrent DROP TABLE / ALTER TABLE waits for the
 * backup to finish (plain reads and writes are not affected). Taking a lock gives up after
 * lock_timeout (30 s) with a clear error instead of queueing forever behind another session's
 * ACCESS EXCLUSIVE lock. A worker takes its own ACCESS SHARE lock with NOWAIT before each COPY;
 * when it cannot (a DDL statement is queued behind the backup's lock), the table is read in the
 * main session instead, which already holds the lock, so the backup never deadlocks with the
 * queued statement.
 *
 * What is captured:
 * - "(schema)": `pg_dump --format=custom --schema-only` of the whole database (every schema,
 *   type, function, extension, table, index, constraint, trigger, view, grant, comment …),
 *   whatever the selection; the restore side picks entries out of it by catalog OID;
 * - "(roles)" (option roles): `pg_dumpall --roles-only`, without passwords unless
 *   rolesWithPasswords. pg_dumpall needs a superuser for that;
 * - every table ("table"), partitioned table ("partitioned_table", no data of its own) and leaf
 *   partition ("partition"): columns, owned objects, owned sequences' values and all rows as
 *   COPY text (generated columns left out, as COPY does);
 * - standalone sequences ("sequence"): their value;
 * - views ("view"), materialized views ("materialized_view") and foreign tables
 *   ("foreign_table"): definitions only (a materialized view is refreshed at restore, as
 *   pg_restore does; a foreign table's data lives elsewhere);
 * - extensions' configuration tables ("extension_table", not selectable: they go with their
 *   extension): the rows the extension's pg_extension_config_dump filter selects, as pg_dump
 *   reads them; configuration sequences' values are in the "(schema)" definition.
 * The "(schema)" definition also records the database's encoding (the data's), collation,
 * ctype, locale provider, ICU / builtin locale, which a new database gets, and the collation
 * version, which it does not (its indexes are built by the target's library: docs/postgres.md).
 * Sequence values are read right after the snapshot is taken: sequences are not transactional,
 * so a value can be ahead of the rows the snapshot sees, never behind.
 * Not captured (said in warnings): large objects, the data of foreign tables, the staging tables
 * and sequences of a cairn restore into the database (named `…__cairn_…`, see staging.ts; a
 * backup running while a restore loads never locks nor reads them). Not captured and
 * not warned about: other databases of the cluster, tablespaces, cluster settings.
 *
 * Data sessions set DateStyle=ISO, IntervalStyle=postgres, extra_float_digits=3,
 * search_path='' (so regclass and similar values are schema-qualified), row_security=off (a
 * table whose policies would hide rows from the user fails instead of being backed up partly),
 * and, once the catalog is read (under UTF8, the `pg` default), client_encoding = the database's
 * encoding: a pg-copy-text stream holds the stored bytes, as pg_dump's data does.
 *
 * This module reads the catalog, takes the locks and describes the collections; the sessions
 * and their COPY streams are session-pool.ts, the pg_dump / pg_dumpall streams tool-stream.ts,
 * and how large tables are cut into parallel block ranges segments.ts.
 */
import type { ChildProcess } from 'node:child_process';
import type pg from 'pg';
import { SourceError, throwIfAborted } from '../../core/errors.js';
import type { CollectionDescriptor, DatabaseSource, DataStream, SnapshotOptions, SourceCheckReport, SourceSnapshot } from '../types.js';
import {
  readColumns,
  readRelationSizes,
  readDatabaseInfo,
  readDependents,
  readExtensionConfig,
  readOwnedSequences,
  readUsedSequences,
  readRelations,
  readRoleNames,
  readSequenceValues,
  identQuoter,
  qualified,
  type CatalogRelation,
} from './catalog.js';
import { connect, pgError, pgLocation, toolVersion, type PgConnectionSettings } from './connection.js';
import { isStagingRelationName, stagingDatabaseId } from './staging.js';
import { display } from './naming.js';
import {
  PG_COPY_TEXT,
  PG_DUMP_CUSTOM,
  PG_ROLES_SQL,
  ROLES_COLLECTION,
  SCHEMA_COLLECTION,
  type PgRolesDefinition,
  type PgExtensionTableDefinition,
  type PgForeignTableDefinition,
  type PgSchemaDefinition,
  type PgSequenceDefinition,
  type PgSequenceState,
  type PgTableDefinition,
  type PgViewDefinition,
} from './definitions.js';
import { segmentCopySql, segmentRanges } from './segments.js';
import { readChangeEvidence } from './change-evidence.js';
import { callClosure, readRoutineCatalog, routineGroups, type CatalogRoutine, type PgRoutineDefinition, type RoutineGroup } from './routines.js';
import { abortError, cancelBackend, DEFAULT_LOCK_TIMEOUT_MS, SESSION_SETUP, SessionPool } from './session-pool.js';
import { checkPostgres } from './tool-check.js';
import { checkPgDumpVersion, LOCK_TABLE_ADVICE, toolStream, type ToolStreamContext } from './tool-stream.js';

// segmentRanges is imported from here by the tests and older code.
export { segmentRanges } from './segments.js';

export const POSTGRES_KIND = 'postgres';

export interface PostgresSourceOptions {
  /** Also back up roles (pg_dumpall --roles-only; needs a superuser). */
  roles?: boolean;
  /** With roles: keep password hashes (default: --no-role-passwords). */
  rolesWithPasswords?: boolean;
  /** How long taking a table lock may wait, in ms (default 30 000; SourceOptions.lockTimeoutMs). */
  lockTimeoutMs?: number;
  /** Tables of at least this many blocks are read in parallel block ranges (default 8192 = 64 MiB). */
  segmentMinBlocks?: number;
}

/** Tables per LOCK TABLE statement. */
const LOCK_BATCH = 500;

export class PostgresSource implements DatabaseSource {
  readonly kind = POSTGRES_KIND;
  readonly name: string;
  readonly location: string;

  constructor(
    readonly settings: PgConnectionSettings,
    readonly options: PostgresSourceOptions = {},
  ) {
    this.name = settings.database;
    this.location = pgLocation(settings);
  }

  /** lock_timeout of every session of this source, in ms. */
  private get lockTimeoutMs(): number {
    return Math.max(1, Math.floor(this.options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS));
  }

  /** See DatabaseSource.check: the server's version; pg_dump and pg_restore at least its major version. */
  async check(): Promise<SourceCheckReport> {
    return checkPostgres(this.settings, this.settings.database, ['pg_dump', 'pg_restore']);
  }

  /** See DatabaseSource.changeEvidence and change-evidence.ts; throws SourceError when the database cannot be reached. */
  async changeEvidence(signal?: AbortSignal): Promise<string | undefined> {
    throwIfAborted(signal);
    const client = await connect(this.settings, undefined, { lockTimeoutMs: this.lockTimeoutMs });
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
      const evidence = await readChangeEvidence(client);
      await client.query('COMMIT');
      return evidence;
    } catch (err) {
      throw pgError(err, this.settings);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  async openSnapshot(options: SnapshotOptions): Promise<SourceSnapshot> {
    const { signal } = options;
    throwIfAborted(signal);
    const s = this.settings;
    if (stagingDatabaseId(s.database) !== undefined) {
      throw new SourceError(
        `${this.location} is the staging database of a cairn restore (being loaded, or left by a killed one: the next restore on this server drops it), not a database to back up; back up the restore's target instead.`,
      );
    }
    const pgDumpVersion = await toolVersion('pg_dump');
    if (this.options.roles) await toolVersion('pg_dumpall');
    throwIfAborted(signal);
    // lock_timeout from the first query on: the change evidence reads every sequence and the
    // catalog reads call functions that lock, before any table lock is asked for.
    const client = await connect(s, undefined, { lockTimeoutMs: this.lockTimeoutMs });
    const snapshot = new PostgresSnapshot(s, this.options, client, Math.max(1, Math.floor(options.jobs) || 1));
    const onAbort = (): void => void cancelBackend(s, client);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await snapshot.load(options.select, pgDumpVersion, signal);
      return snapshot;
    } catch (err) {
      await snapshot.close().catch(() => undefined);
      if (signal?.aborted) throw abortError(signal);
      if ((err as { code?: string }).code === '55P03') throw await lockTimeoutError(s, this.options, err);
      throw pgError(err, s);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }
}

interface TableEntry {
  descriptor: CollectionDescriptor;
  relation: CatalogRelation;
  copySql: string | null;
  /** One COPY per block range when the table is read in segments. */
  segmentSql?: string[];
}

class PostgresSnapshot implements SourceSnapshot {
  serverVersion = '';
  changeEvidence?: string;
  readonly warnings: string[] = [];
  readonly maxParallelReads: number;
  private excludedFromArchive: string[] = [];
  private collections: CollectionDescriptor[] = [];
  private byName = new Map<string, CollectionDescriptor>();
  private readonly tables = new Map<string, TableEntry>();
  private readonly pool: SessionPool;
  /** pg_dump / pg_dumpall processes running for this snapshot's streams: close() kills them. */
  private readonly children = new Set<ChildProcess>();

  constructor(
    private readonly settings: PgConnectionSettings,
    private readonly options: PostgresSourceOptions,
    client: pg.Client,
    private readonly jobs: number,
  ) {
    this.pool = new SessionPool(settings, client, jobs, options.lockTimeoutMs);
    this.maxParallelReads = jobs;
  }

  async load(select: (names: string[]) => Set<string>, pgDumpVersion: string, signal: AbortSignal | undefined): Promise<void> {
    const c = this.pool.main.client;
    await c.query(SESSION_SETUP);
    await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
    const exported = await c.query<{ id: string }>('SELECT pg_export_snapshot() AS id');
    this.pool.snapshotId = exported.rows[0]?.id ?? '';
    // In the snapshot just fixed, before any sequence value is read (change-evidence.ts).
    this.changeEvidence = await readChangeEvidence(c);
    const version = await c.query<{ v: string; n: string }>(
      "SELECT current_setting('server_version') AS v, current_setting('server_version_num') AS n",
    );
    this.serverVersion = (version.rows[0]?.v ?? '').split(' ')[0] ?? '';
    checkPgDumpVersion(pgDumpVersion, Number(version.rows[0]?.n ?? 0), this.serverVersion);
    throwIfAborted(signal);

    // Catalog, in the snapshot. A restore into this database may be loading its staging tables
    // and sequences (or have left them, killed): they are never part of a backup, never locked
    // (a lock would hold up that restore's switch) and never read.
    const catalog = await readRelations(c);
    const staging = catalog.filter((r) => isStagingRelationName(r.name));
    const relations = catalog.filter((r) => !isStagingRelationName(r.name));
    const info = await readDatabaseInfo(c);
    const extensionConfig = await readExtensionConfig(c);
    const roles = this.options.roles ? await readRoleNames(c) : [];
    throwIfAborted(signal);

    const routineCatalog = await readRoutineCatalog(c);
    throwIfAborted(signal);

    const isTable = (r: CatalogRelation): boolean => r.relkind === 'r' || r.relkind === 'p';
    const selectable = selectableRelations(relations);
    const groups = routineGroups(routineCatalog.routines, new Set(relations.map((r) => display(r))));
    const chosen = select([...selectable.map((r) => display(r)), ...groups.map((g) => g.name)]);
    const selected = selectable.filter((r) => chosen.has(display(r)));
    // pg_dump leaves unselected tables, partitions and views out of the schema archive, so it
    // neither locks them (writers and DDL on them go on) nor needs the privilege to read them.
    // Standalone sequences stay: a selected table's default may use one.
    this.excludedFromArchive = [...selectable.filter((r) => r.relkind !== 'S' && !chosen.has(display(r))), ...staging]
      .map((r) => `${pgDumpPattern(r.schema)}.${pgDumpPattern(r.name)}`);
    if (staging.length > 0) {
      const shown = staging.slice(0, 5).map((r) => display(r)).join(', ') + (staging.length > 5 ? ` and ${staging.length - 5} more` : '');
      this.warnings.push(`staging relation${staging.length === 1 ? '' : 's'} of a cairn restore into this database (running, or killed) not backed up: ${shown}`);
    }

    // Lock what will be read, then make sure it is still what the catalog said.
    const toLock = selected.filter(isTable);
    const configTables = extensionConfig.filter((r) => r.relkind === 'r');
    await this.lockTables([...toLock, ...configTables]);
    await this.recheckTables([...toLock, ...configTables]);
    throwIfAborted(signal);

    const relOids = selected.filter((r) => r.relkind !== 'S').map((r) => r.oid);
    const columns = await readColumns(c, [...selected.filter(isTable), ...configTables].map((r) => r.oid));
    const sizes = await readRelationSizes(c, toLock.filter((r) => r.relkind === 'r').map((r) => r.oid));
    const serverVersionNum = Number(version.rows[0]?.n ?? 0);
    const dependents = await readDependents(c, relOids);
    const owned = await readOwnedSequences(c, toLock.map((r) => r.oid));
    const used = await readUsedSequences(c, toLock.map((r) => r.oid));
    const standalone = selected.filter((r) => r.relkind === 'S');
    // A sequence pg_dump writes makes it read its owning table's columns and defaults
    // (pg_get_expr, which locks the table) even when the table is excluded: the sequences of
    // tables left out go too, unless a selected table's default or a routine draws from them.
    // So a table outside the selection is neither locked nor read by the backup.
    const leftOut = selectable.filter((r) => isTable(r) && !chosen.has(display(r))).map((r) => r.oid);
    const stillNeeded = new Set([...[...used.values()].flat().map((q) => q.oid), ...[...routineCatalog.relationsOf.values()].flatMap((set) => [...set])]);
    for (const q of [...(await readOwnedSequences(c, leftOut)).values()].flat()) {
      if (!stillNeeded.has(q.oid)) this.excludedFromArchive.push(`${pgDumpPattern(q.schema)}.${pgDumpPattern(q.name)}`);
    }
    // Every standalone sequence's value, selected or not (a restore creates them all), and
    // those the selected tables draw from (issue 14: an --include restarted them).
    const allStandalone = relations.filter((r) => r.relkind === 'S' && !r.ownedSequence);
    const seqList = uniqueSequences([...[...owned.values()].flat(), ...standalone, ...allStandalone, ...[...used.values()].flat()]);
    const values = new Map(
      (await readSequenceValues(c, seqList)).map((v) => [display(v), v] as const),
    );
    const extensionSequences = await readSequenceValues(c, extensionConfig.filter((r) => r.relkind === 'S'));
    throwIfAborted(signal);

    // Routines: those selected by name, those the selected relations need, those supporting
    // objects need (restored with every selection), each with what it calls (routines.ts).
    // The manifest records direct uses and direct calls only (the call graph once, in
    // "(schema)"): closures of every routine would grow with the square of a call chain.
    const needsOf = (oid: number): number[] => [...(routineCatalog.usedByRelation.get(oid) ?? [])].sort((a, b) => a - b);
    const starts = [...routineCatalog.support];
    for (const g of groups) if (chosen.has(g.name)) starts.push(...g.overloads.map((o) => o.oid));
    for (const r of selected) starts.push(...needsOf(r.oid));
    const listed = callClosure(starts, routineCatalog.calls);
    const relationName = new Map(relations.map((r) => [r.oid, display(r)] as const));
    const relationsOfRoutine = (oid: number): string[] => [...(routineCatalog.relationsOf.get(oid) ?? [])].flatMap((rel) => relationName.get(rel) ?? []);
    const signatureOf = new Map(routineCatalog.routines.map((r) => [r.oid, r.signature] as const));
    const selectedNames = new Set(selected.map((r) => display(r)));
    const routineCollections: CollectionDescriptor[] = [];
    for (const g of groups) {
      if (!g.overloads.some((o) => listed.has(o.oid))) continue;
      const def = routineDefinition(g, routineCatalog.calls, relationsOfRoutine);
      routineCollections.push({ name: g.name, kind: g.kind, definition: { ...def } });
      // What it and the routines it calls need (a callee taking a table's row type too).
      const needs = [...new Set([...callClosure(g.overloads.map((o) => o.oid), routineCatalog.calls)].flatMap(relationsOfRoutine))].sort();
      const outside = needs.filter((n) => !selectedNames.has(n));
      if (chosen.has(g.name) && outside.length > 0) {
        this.warnings.push(
          `${g.kind} ${g.name} needs ${outside.join(', ')} (a row type it takes or returns, or rows its body reads), which this backup leaves out: restore it into a database that has ${outside.length === 1 ? 'that relation' : 'those relations'}, or back ${outside.length === 1 ? 'it' : 'them'} up too`,
        );
      }
    }

    const schemaDef: PgSchemaDefinition = {
      database: this.settings.database,
      encoding: info.encoding,
      collate: info.collate,
      ctype: info.ctype,
      dataEncoding: info.encoding,
      localeProvider: info.localeProvider,
      ...(info.locale !== undefined ? { locale: info.locale } : {}),
      ...(info.icuRules !== undefined ? { icuRules: info.icuRules } : {}),
      ...(info.collationVersion !== undefined ? { collationVersion: info.collationVersion } : {}),
      pgDumpVersion,
      extensions: info.extensions,
      ...(extensionSequences.length > 0 ? { extensionSequences } : {}),
      standaloneSequenceOids: allStandalone.map((r) => r.oid),
      standaloneSequences: allStandalone.flatMap((r) => sequenceDefinition(r, values)),
      routineOids: routineCatalog.routines.map((r) => r.oid),
      supportRoutineOids: [...routineCatalog.support].sort((a, b) => a - b),
      routineRelations: [...listed]
        .sort((a, b) => a - b)
        .flatMap((oid) => {
          const needs = relationsOfRoutine(oid);
          return needs.length === 0 ? [] : [{ oid, signature: signatureOf.get(oid) ?? String(oid), relations: needs.sort() }];
        }),
      routineCalls: [...routineCatalog.calls]
        .filter(([oid, callees]) => listed.has(oid) && callees.size > 0)
        .map(([oid, callees]) => [oid, [...callees].sort((a, b) => a - b)] as [number, number[]])
        .sort((a, b) => a[0] - b[0]),
    };
    const out: CollectionDescriptor[] = [
      { name: SCHEMA_COLLECTION, kind: 'pg_schema', selectable: false, dataFormat: PG_DUMP_CUSTOM, definition: { ...schemaDef } },
    ];
    if (this.options.roles) {
      const rolesDef: PgRolesDefinition = { withPasswords: this.options.rolesWithPasswords === true, roles };
      out.push({ name: ROLES_COLLECTION, kind: 'pg_roles', selectable: false, dataFormat: PG_ROLES_SQL, definition: { ...rolesDef } });
    }

    // Data travels in the database's own encoding, byte for byte, as pg_dump's does: under
    // UTF8, text of a SQL_ASCII database is refused (its bytes need not be UTF-8) and WIN1252's
    // 0x81 has no Unicode equivalent. The catalog was read under UTF8 (names are JS strings);
    // the COPY statements from here on are read by the server in the database's encoding.
    await c.query("SELECT set_config('client_encoding', $1, false)", [info.encoding]);
    this.pool.clientEncoding = info.encoding;
    const quote = identQuoter(info.encoding, info.encoding);
    this.pool.quote = quote;

    // Tables: parents before their partitions.
    const byName = new Map(relations.map((x) => [display(x), x]));
    const depth = (r: CatalogRelation): number => {
      let d = 0;
      let parent = r.partitionOf;
      while (parent !== null && d < 100) {
        d++;
        parent = byName.get(parent)?.partitionOf ?? null;
      }
      return d;
    };
    const tables = toLock.map((r) => ({ r, d: depth(r) })).sort((a, b) => a.d - b.d).map((x) => x.r);
    for (const r of tables) {
      const cols = columns.get(r.oid) ?? [];
      const copyColumns = cols.filter((col) => !col.generated).map((col) => col.name);
      const def: PgTableDefinition = {
        schema: r.schema,
        name: r.name,
        oid: r.oid,
        relkind: r.relkind as 'r' | 'p',
        partitionOf: r.partitionOf,
        copyColumns,
        columns: cols,
        dependentOids: dependents.get(r.oid) ?? [],
        sequences: (owned.get(r.oid) ?? []).flatMap((q) => values.get(display(q)) ?? []),
        usedSequences: (used.get(r.oid) ?? []).flatMap((q) => sequenceDefinition(q, values)),
        routineOids: needsOf(r.oid),
      };
      const kind = r.relkind === 'p' ? 'partitioned_table' : r.partitionOf !== null ? 'partition' : 'table';
      const descriptor: CollectionDescriptor = { name: display(r), kind, definition: { ...def } };
      let copySql: string | null = null;
      let segmentSql: string[] | undefined;
      if (r.relkind === 'r') {
        descriptor.dataFormat = PG_COPY_TEXT;
        const columnList = copyColumns.map(quote).join(', ');
        // No column list when there is no column to name (a table with no columns, or whose
        // columns were all dropped or are generated): `COPY t ()` is a syntax error, and COPY
        // without a list reads the same columns (never generated ones), one line per row,
        // empty lines for a table with no columns.
        copySql = `COPY ${quote(r.schema)}.${quote(r.name)}${columnList === '' ? '' : ` (${columnList})`} TO STDOUT`;
        const size = sizes.get(r.oid);
        if (size !== undefined) descriptor.estimatedBytes = size.bytes;
        if (size?.rows !== undefined) descriptor.estimatedRows = size.rows;
        // TID range scans arrived in PostgreSQL 14; before, each range would scan the whole table.
        const ranges = serverVersionNum >= 140000 && size !== undefined ? segmentRanges(size.blocks, this.jobs, this.options.segmentMinBlocks) : [];
        if (ranges.length > 1) {
          segmentSql = segmentCopySql(r.schema, r.name, columnList, ranges, quote);
          descriptor.segments = segmentSql.length;
        }
      }
      out.push(descriptor);
      this.tables.set(descriptor.name, { descriptor, relation: r, copySql, ...(segmentSql ? { segmentSql } : {}) });
    }
    // Extension configuration tables: the rows the extension's filter selects, as pg_dump
    // dumps them (`COPY (SELECT … WHERE <filter>)`), into the table CREATE EXTENSION makes.
    for (const r of configTables) {
      const cols = columns.get(r.oid) ?? [];
      const copyColumns = cols.filter((col) => !col.generated).map((col) => col.name);
      const def: PgExtensionTableDefinition = {
        schema: r.schema,
        name: r.name,
        oid: r.oid,
        relkind: 'r',
        partitionOf: null,
        copyColumns,
        columns: cols,
        dependentOids: [],
        sequences: [],
        extension: r.extension,
        condition: r.condition,
      };
      const descriptor: CollectionDescriptor = { name: display(r), kind: 'extension_table', selectable: false, dataFormat: PG_COPY_TEXT, definition: { ...def } };
      const copySql = `COPY (SELECT ${copyColumns.map(quote).join(', ')} FROM ONLY ${quote(r.schema)}.${quote(r.name)} ${r.condition}) TO STDOUT`;
      out.push(descriptor);
      this.tables.set(descriptor.name, { descriptor, relation: r, copySql });
    }
    for (const r of standalone) {
      const v = values.get(display(r));
      const def: PgSequenceDefinition = {
        schema: r.schema,
        name: r.name,
        oid: r.oid,
        lastValue: v?.lastValue ?? '1',
        isCalled: v?.isCalled ?? false,
      };
      out.push({ name: display(r), kind: 'sequence', definition: { ...def } });
    }
    for (const relkind of ['v', 'm'] as const) {
      for (const r of selected.filter((x) => x.relkind === relkind)) {
        const def: PgViewDefinition = {
          schema: r.schema,
          name: r.name,
          oid: r.oid,
          relkind,
          dependentOids: dependents.get(r.oid) ?? [],
          ...(relkind === 'm' ? { populated: r.populated } : {}),
          routineOids: needsOf(r.oid),
        };
        out.push({ name: display(r), kind: relkind === 'v' ? 'view' : 'materialized_view', definition: { ...def } });
      }
    }
    for (const r of selected.filter((x) => x.relkind === 'f')) {
      const def: PgForeignTableDefinition = {
        schema: r.schema,
        name: r.name,
        oid: r.oid,
        relkind: 'f',
        partitionOf: r.partitionOf,
        dependentOids: dependents.get(r.oid) ?? [],
        routineOids: needsOf(r.oid),
      };
      out.push({ name: display(r), kind: 'foreign_table', definition: { ...def } });
    }
    out.push(...routineCollections);
    this.collections = out;
    this.byName = new Map(out.map((d) => [d.name, d]));

    if (info.largeObjects > 0) {
      this.warnings.push(`${info.largeObjects} large object${info.largeObjects === 1 ? ' is' : 's are'} not backed up`);
    }
    const foreign = selected.filter((r) => r.relkind === 'f').map((r) => display(r));
    if (foreign.length > 0) {
      const shown = foreign.slice(0, 5).join(', ') + (foreign.length > 5 ? ` and ${foreign.length - 5} more` : '');
      this.warnings.push(
        `data of foreign table${foreign.length === 1 ? '' : 's'} ${shown} is not backed up: it lives on another server or in a file; the definition${foreign.length === 1 ? ' is' : 's are'} (with servers and user mappings) backed up and restored`,
      );
    }
    this.pool.main.busy = false;
  }

  /** ACCESS SHARE on every table to read, in batches, as pg_dump does. */
  private async lockTables(tables: CatalogRelation[]): Promise<void> {
    const c = this.pool.main.client;
    for (let start = 0; start < tables.length; start += LOCK_BATCH) {
      const batch = tables.slice(start, start + LOCK_BATCH);
      await c.query('SAVEPOINT cairn_lock');
      try {
        await c.query(`LOCK TABLE ${batch.map((r) => `ONLY ${qualified(r.schema, r.name)}`).join(', ')} IN ACCESS SHARE MODE`);
        await c.query('RELEASE SAVEPOINT cairn_lock');
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === '53200') {
          throw new SourceError(`PostgreSQL ran out of lock slots after locking ${start} of ${tables.length} tables. ${LOCK_TABLE_ADVICE}`, { cause: err });
        }
        if (code !== '55P03' && code !== '42P01') throw err;
        await c.query('ROLLBACK TO SAVEPOINT cairn_lock');
        const culprit = await this.findUnlockable(batch);
        const name = culprit === undefined ? `one of ${batch.length} tables` : `table ${display(culprit)}`;
        if (code === '42P01') {
          throw new SourceError(`PostgreSQL ${name} was dropped while the backup started; retry the backup.`, { cause: err });
        }
        throw new SourceError(
          `Cannot lock ${name} for the backup: another session holds a conflicting lock (e.g. ALTER TABLE, DROP, VACUUM FULL, a long transaction that changed its definition) and did not release it within ${lockTimeoutText(this.options)}. Retry when it has finished, or wait longer with --lock-timeout (API: lockTimeoutSeconds).`,
          { cause: err },
        );
      }
    }
  }

  /** After a failed batch lock: the first table that cannot be locked right now. */
  private async findUnlockable(batch: CatalogRelation[]): Promise<CatalogRelation | undefined> {
    const c = this.pool.main.client;
    for (const r of batch) {
      await c.query('SAVEPOINT cairn_lock_one');
      try {
        await c.query(`LOCK TABLE ONLY ${qualified(r.schema, r.name)} IN ACCESS SHARE MODE NOWAIT`);
        await c.query('RELEASE SAVEPOINT cairn_lock_one');
      } catch {
        await c.query('ROLLBACK TO SAVEPOINT cairn_lock_one');
        return r;
      }
    }
    return undefined;
  }

  /**
   * The catalog was read in the snapshot; a table dropped (or dropped and recreated) after that
   * but before the lock no longer matches the current catalog, which name lookups see.
   */
  private async recheckTables(tables: CatalogRelation[]): Promise<void> {
    if (tables.length === 0) return;
    const { rows } = await this.pool.main.client.query<{ i: number; oid: number | null }>(
      'SELECT i, to_regclass(n)::oid AS oid FROM unnest($1::text[]) WITH ORDINALITY AS t(n, i)',
      [tables.map((r) => qualified(r.schema, r.name))],
    );
    for (const row of rows) {
      const r = tables[Number(row.i) - 1];
      if (r !== undefined && (row.oid === null || Number(row.oid) !== r.oid)) {
        throw new SourceError(`PostgreSQL table ${display(r)} was dropped while the backup started; retry the backup.`);
      }
    }
  }

  async listCollections(): Promise<CollectionDescriptor[]> {
    this.assertOpen();
    return structuredClone(this.collections);
  }

  readData(collection: CollectionDescriptor, signal?: AbortSignal, segment?: number): DataStream {
    this.assertOpen();
    const found = this.byName.get(collection.name);
    const known = found?.kind === collection.kind ? found : undefined;
    if (known === undefined) {
      throw new SourceError(`PostgreSQL ${collection.kind} "${collection.name}" is not in this snapshot.`);
    }
    if (known.name === SCHEMA_COLLECTION && known.kind === 'pg_schema') {
      return toolStream(
        'pg_dump',
        [
          '--format=custom',
          '--schema-only',
          '--no-password',
          `--snapshot=${this.pool.snapshotId}`,
          // pg_dump sets lock_timeout to 0 in its session and applies this to its LOCK TABLE
          // statements only; the tables it reads without locking them first are kept few by
          // excludedFromArchive.
          `--lock-wait-timeout=${Math.max(1, Math.floor(this.options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS))}`,
          ...this.excludedFromArchive.map((p) => `--exclude-table=${p}`),
        ],
        signal,
        this.toolContext(),
      );
    }
    if (known.name === ROLES_COLLECTION && known.kind === 'pg_roles') {
      const args = ['--roles-only', '--no-password'];
      if (!this.options.rolesWithPasswords) args.push('--no-role-passwords');
      return toolStream('pg_dumpall', args, signal, this.toolContext());
    }
    const table = this.tables.get(known.name);
    if (table?.copySql == null) return emptyStream();
    if (segment === undefined) {
      if (table.segmentSql !== undefined) {
        throw new Error(`Internal error: table ${known.name} is read in ${table.segmentSql.length} segments; pass a segment.`);
      }
      return this.pool.copy(table.relation, table.descriptor.name, table.copySql, signal);
    }
    const sql = table.segmentSql?.[segment];
    if (sql === undefined) throw new Error(`Internal error: table ${known.name} has no segment ${segment}.`);
    return this.pool.copy(table.relation, table.descriptor.name, sql, signal);
  }

  private toolContext(): ToolStreamContext {
    return { settings: this.settings, running: this.children, assertOpen: () => this.assertOpen(), lockTimeout: lockTimeoutText(this.options) };
  }

  /** Kills the running tools and ends the sessions (see SessionPool.close); idempotent. */
  close(): Promise<void> {
    if (!this.pool.closed) for (const child of this.children) child.kill('SIGTERM');
    return this.pool.close();
  }

  private assertOpen(): void {
    this.pool.assertOpen();
  }
}

/**
 * The error for a statement of the snapshot's reading (not LOCK TABLE, which names its table
 * itself) that hit lock_timeout: a catalog function or a sequence read waiting for a relation
 * that another session holds exclusively. Names the relations others hold in a mode that keeps
 * readers out, read in a short session of its own (the snapshot's is gone).
 */
async function lockTimeoutError(settings: PgConnectionSettings, options: PostgresSourceOptions, cause: unknown): Promise<SourceError> {
  let held: string[] = [];
  try {
    const client = await connect(settings, undefined, { lockTimeoutMs: 1000 });
    try {
      const { rows } = await client.query<{ schema: string; name: string; relkind: string }>(
        `SELECT DISTINCT n.nspname AS schema, c.relname AS name, c.relkind::text AS relkind
           FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_class c ON c.oid = l.relation
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE l.granted AND l.mode = 'AccessExclusiveLock' AND l.pid <> pg_catalog.pg_backend_pid()
            AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
          ORDER BY 1, 2 LIMIT 6`,
      );
      held = rows.map((r) => `${r.relkind === 'S' ? 'sequence' : r.relkind === 'v' || r.relkind === 'm' ? 'view' : 'table'} ${display(r)}`);
    } finally {
      await client.end().catch(() => undefined);
    }
  } catch {
    // Only the message is poorer: the lock timeout is still what failed.
  }
  const what = held.length === 0 ? 'a relation' : held.length > 5 ? `${held.slice(0, 5).join(', ')} or another` : held.join(' or ');
  return new SourceError(
    `Cannot read ${what} for the backup: another session holds a conflicting lock (e.g. ALTER TABLE, DROP, VACUUM FULL, LOCK TABLE) and did not release it within ${lockTimeoutText(options)}. Retry when it has finished, or wait longer with --lock-timeout (API: lockTimeoutSeconds).`,
    { cause },
  );
}

/** The lock timeout as people read it ("30 s"), for messages. */
function lockTimeoutText(options: PostgresSourceOptions): string {
  const ms = options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

/** The data of a collection that has none (a partitioned table, a view). */
function emptyStream(): DataStream {
  return {
    rowCount: 0,
    async *[Symbol.asyncIterator]() {
      /* no data */
    },
  };
}

/** The relations a backup offers to select: tables, partitions, views, materialized views, foreign tables, standalone sequences. */
export function selectableRelations(relations: CatalogRelation[]): CatalogRelation[] {
  return relations.filter(
    (r) => r.relkind === 'r' || r.relkind === 'p' || r.relkind === 'v' || r.relkind === 'm' || r.relkind === 'f' || (r.relkind === 'S' && !r.ownedSequence),
  );
}

/** Every name a backup of this database offers to select: its selectable relations and its routine collections (routines.ts). */
export function selectableNames(relations: CatalogRelation[], routines: CatalogRoutine[]): string[] {
  const names = selectableRelations(relations).map((r) => display(r));
  return [...names, ...routineGroups(routines, new Set(relations.map((r) => display(r)))).map((g) => g.name)];
}

/** A routine collection's definition: its overloads, what they call (closure) and the relations those need. */
function routineDefinition(g: RoutineGroup, calls: Map<number, Set<number>>, relationsOf: (oid: number) => string[]): PgRoutineDefinition {
  const own = g.overloads.map((o) => o.oid);
  const called = [...new Set(own.flatMap((oid) => [...(calls.get(oid) ?? [])]))].filter((oid) => !own.includes(oid)).sort((a, b) => a - b);
  const relations = [...new Set(own.flatMap((oid) => relationsOf(oid)))].sort();
  return { schema: g.schema, name: g.routine, overloads: g.overloads.map((o) => ({ oid: o.oid, signature: o.signature, prokind: o.prokind, ...(o.definitionHash !== undefined ? { definitionHash: o.definitionHash } : {}) })), calls: called, relations };
}

/** A pg_dump name pattern that matches exactly this identifier: quoted, so * ? . and case are literal. */
function pgDumpPattern(identifier: string): string {
  return `"${identifier.replaceAll('"', '""')}"`;
}

/** Sequences listed once each (by schema and name), in their first order. */
function uniqueSequences<T extends { schema: string; name: string }>(list: T[]): T[] {
  const seen = new Set<string>();
  return list.filter((s) => {
    const key = display(s);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** A sequence with its value read in the snapshot; none when it could not be read (dropped meanwhile). */
function sequenceDefinition(s: { oid: number; schema: string; name: string }, values: Map<string, PgSequenceState>): PgSequenceDefinition[] {
  const v = values.get(display(s));
  return v === undefined ? [] : [{ schema: s.schema, name: s.name, oid: s.oid, lastValue: v.lastValue, isCalled: v.isCalled }];
}
