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
 * - views ("view") and materialized views ("materialized_view"): definitions only (a
 *   materialized view is refreshed at restore, as pg_restore does).
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
 * and client_encoding UTF8 (the `pg` default): a pg-copy-text stream is UTF-8.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import type { Readable } from 'node:stream';
import { CancelledError, CairnError, SourceError, throwIfAborted } from '../../core/errors.js';
import type { CollectionDescriptor, DatabaseSource, DataStream, SnapshotOptions, SourceSnapshot } from '../types.js';
import {
  readColumns,
  readRelationSizes,
  readDatabaseInfo,
  readDependents,
  readOwnedSequences,
  readRelations,
  readRoleNames,
  readSequenceValues,
  qualified,
  quoteIdent,
  quoteLiteral,
  type CatalogRelation,
} from './catalog.js';
import { connect, pgError, pgLocation, toolEnv, toolVersion, type PgConnectionSettings } from './connection.js';
import { isStagingRelationName, stagingDatabaseId } from './staging.js';
import {
  PG_COPY_TEXT,
  PG_DUMP_CUSTOM,
  PG_ROLES_SQL,
  ROLES_COLLECTION,
  SCHEMA_COLLECTION,
  type PgRolesDefinition,
  type PgSchemaDefinition,
  type PgSequenceDefinition,
  type PgTableDefinition,
  type PgViewDefinition,
} from './definitions.js';

export const POSTGRES_KIND = 'postgres';

export interface PostgresSourceOptions {
  /** Also back up roles (pg_dumpall --roles-only; needs a superuser). */
  roles?: boolean;
  /** With roles: keep password hashes (default: --no-role-passwords). */
  rolesWithPasswords?: boolean;
  /** How long taking a table lock may wait, in ms (default 30 000). */
  lockTimeoutMs?: number;
  /** Tables of at least this many blocks are read in parallel block ranges (default 8192 = 64 MiB). */
  segmentMinBlocks?: number;
}

const DEFAULT_LOCK_TIMEOUT_MS = 30_000;
/** Tables per LOCK TABLE statement. */
const LOCK_BATCH = 500;
const NEWLINE = 0x0a;

/** Session settings for reading data the way pg_dump does. */
const SESSION_SETUP = [
  "SET DateStyle = 'ISO'",
  "SET IntervalStyle = 'postgres'",
  'SET extra_float_digits = 3',
  "SET search_path = ''",
  'SET row_security = off',
  'SET statement_timeout = 0',
  'SET idle_in_transaction_session_timeout = 0',
].join('; ');

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
    const client = await connect(s);
    const snapshot = new PostgresSnapshot(s, this.options, client, Math.max(1, Math.floor(options.jobs) || 1));
    const onAbort = (): void => void cancelBackend(s, client);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await snapshot.load(options.select, pgDumpVersion, signal);
      return snapshot;
    } catch (err) {
      await snapshot.close().catch(() => undefined);
      if (signal?.aborted) throw abortError(signal);
      throw pgError(err, s);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }
}

interface Session {
  client: pg.Client;
  main: boolean;
  busy: boolean;
  /** Unusable: closed, or left in an unknown state. */
  broken: boolean;
  /**
   * The savepoint of the last COPY, which finished, is still open: it is released together with
   * the next statement (one round trip per table less; 10,000 tables make that count).
   */
  savepointOpen?: boolean;
}

interface TableEntry {
  descriptor: CollectionDescriptor;
  relation: CatalogRelation;
  copySql: string | null;
  /** One COPY per block range when the table is read in segments. */
  segmentSql?: string[];
}

/**
 * Tables of at least this many blocks (64 MiB) are read in block ranges, in parallel, under the
 * same snapshot (TID range scans, PostgreSQL 14+).
 */
const SEGMENT_MIN_BLOCKS = 8192;
/** Smallest range (8 MiB; less when a smaller minimum is configured). */
const SEGMENT_FLOOR_BLOCKS = 1024;

/**
 * Block ranges for a table of `blocks` blocks read by `jobs` streams: between jobs+1 and 2×jobs
 * ranges of a power-of-two size, so that the boundaries stay where they were when the table
 * grows a little (appended rows only change the last range, and deduplicate as before). The
 * last range is open-ended: rows added to new blocks since the sizes were read are in it.
 */
export function segmentRanges(blocks: number, jobs: number, minBlocks = SEGMENT_MIN_BLOCKS): [number, number | null][] {
  if (jobs < 2 || blocks < minBlocks) return [];
  let size = Math.max(1, Math.min(SEGMENT_FLOOR_BLOCKS, Math.floor(minBlocks / 8)));
  while (size * 2 * jobs < blocks) size *= 2;
  const ranges: [number, number | null][] = [];
  for (let lo = 0; lo < blocks; lo += size) ranges.push([lo, lo + size < blocks ? lo + size : null]);
  return ranges.length > 1 ? ranges : [];
}

class PostgresSnapshot implements SourceSnapshot {
  serverVersion = '';
  readonly warnings: string[] = [];
  readonly maxParallelReads: number;
  private snapshotId = '';
  private excludedFromArchive: string[] = [];
  private collections: CollectionDescriptor[] = [];
  private byName = new Map<string, CollectionDescriptor>();
  private readonly tables = new Map<string, TableEntry>();
  private readonly main: Session;
  private readonly workers: Session[] = [];
  private connecting = 0;
  private readonly waiters: (() => void)[] = [];
  private readonly children = new Set<ChildProcess>();
  private closing: Promise<void> | undefined;

  constructor(
    private readonly settings: PgConnectionSettings,
    private readonly options: PostgresSourceOptions,
    client: pg.Client,
    private readonly jobs: number,
  ) {
    this.main = { client, main: true, busy: true, broken: false };
    this.maxParallelReads = jobs;
  }

  async load(select: (names: string[]) => Set<string>, pgDumpVersion: string, signal: AbortSignal | undefined): Promise<void> {
    const c = this.main.client;
    await c.query(SESSION_SETUP);
    await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
    const exported = await c.query<{ id: string }>('SELECT pg_export_snapshot() AS id');
    this.snapshotId = exported.rows[0]?.id ?? '';
    const lockTimeout = Math.max(1, Math.floor(this.options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS));
    await c.query(`SET LOCAL lock_timeout = ${lockTimeout}`);
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
    const roles = this.options.roles ? await readRoleNames(c) : [];
    throwIfAborted(signal);

    const isTable = (r: CatalogRelation): boolean => r.relkind === 'r' || r.relkind === 'p';
    const selectable = relations.filter(
      (r) => isTable(r) || r.relkind === 'v' || r.relkind === 'm' || (r.relkind === 'S' && !r.ownedSequence),
    );
    const names = selectable.map((r) => `${r.schema}.${r.name}`);
    const chosen = select(names);
    const selected = selectable.filter((r) => chosen.has(`${r.schema}.${r.name}`));
    // pg_dump leaves unselected tables, partitions and views out of the schema archive, so it
    // neither locks them (writers and DDL on them go on) nor needs the privilege to read them.
    // Standalone sequences stay: a selected table's default may use one.
    this.excludedFromArchive = [...selectable.filter((r) => r.relkind !== 'S' && !chosen.has(`${r.schema}.${r.name}`)), ...staging]
      .map((r) => `${pgDumpPattern(r.schema)}.${pgDumpPattern(r.name)}`);
    if (staging.length > 0) {
      const shown = staging.slice(0, 5).map((r) => `${r.schema}.${r.name}`).join(', ') + (staging.length > 5 ? ` and ${staging.length - 5} more` : '');
      this.warnings.push(`staging relation${staging.length === 1 ? '' : 's'} of a cairn restore into this database (running, or killed) not backed up: ${shown}`);
    }

    // Lock what will be read, then make sure it is still what the catalog said.
    const toLock = selected.filter(isTable);
    await this.lockTables(toLock);
    await this.recheckTables(toLock);
    throwIfAborted(signal);

    const relOids = selected.filter((r) => r.relkind !== 'S').map((r) => r.oid);
    const columns = await readColumns(c, selected.filter(isTable).map((r) => r.oid));
    const sizes = await readRelationSizes(c, toLock.filter((r) => r.relkind === 'r').map((r) => r.oid));
    const serverVersionNum = Number(version.rows[0]?.n ?? 0);
    const dependents = await readDependents(c, relOids);
    const owned = await readOwnedSequences(c, toLock.map((r) => r.oid));
    const standalone = selected.filter((r) => r.relkind === 'S');
    const seqList = [...[...owned.values()].flat(), ...standalone];
    const values = new Map(
      (await readSequenceValues(c, seqList)).map((v) => [`${v.schema}.${v.name}`, v] as const),
    );
    throwIfAborted(signal);

    const schemaDef: PgSchemaDefinition = {
      database: this.settings.database,
      encoding: info.encoding,
      collate: info.collate,
      ctype: info.ctype,
      pgDumpVersion,
      extensions: info.extensions,
      standaloneSequenceOids: relations.filter((r) => r.relkind === 'S' && !r.ownedSequence).map((r) => r.oid),
    };
    const out: CollectionDescriptor[] = [
      { name: SCHEMA_COLLECTION, kind: 'pg_schema', selectable: false, dataFormat: PG_DUMP_CUSTOM, definition: { ...schemaDef } },
    ];
    if (this.options.roles) {
      const rolesDef: PgRolesDefinition = { withPasswords: this.options.rolesWithPasswords === true, roles };
      out.push({ name: ROLES_COLLECTION, kind: 'pg_roles', selectable: false, dataFormat: PG_ROLES_SQL, definition: { ...rolesDef } });
    }

    // Tables: parents before their partitions.
    const byName = new Map(relations.map((x) => [`${x.schema}.${x.name}`, x]));
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
        sequences: (owned.get(r.oid) ?? []).flatMap((q) => values.get(`${q.schema}.${q.name}`) ?? []),
      };
      const kind = r.relkind === 'p' ? 'partitioned_table' : r.partitionOf !== null ? 'partition' : 'table';
      const descriptor: CollectionDescriptor = { name: `${r.schema}.${r.name}`, kind, definition: { ...def } };
      let copySql: string | null = null;
      let segmentSql: string[] | undefined;
      if (r.relkind === 'r') {
        descriptor.dataFormat = PG_COPY_TEXT;
        const columnList = copyColumns.map(quoteIdent).join(', ');
        copySql = `COPY ${qualified(r.schema, r.name)} (${columnList}) TO STDOUT`;
        const size = sizes.get(r.oid);
        if (size !== undefined) descriptor.estimatedBytes = size.bytes;
        // TID range scans arrived in PostgreSQL 14; before, each range would scan the whole table.
        const ranges = serverVersionNum >= 140000 && size !== undefined ? segmentRanges(size.blocks, this.jobs, this.options.segmentMinBlocks) : [];
        if (ranges.length > 1) {
          // The same rows in the same order as COPY of the table (physical order), in pieces.
          const select = `SELECT ${columnList || '*'} FROM ONLY ${qualified(r.schema, r.name)}`;
          segmentSql = ranges.map(([lo, hi]) =>
            `COPY (${select} WHERE ctid >= '(${lo},0)'::tid${hi === null ? '' : ` AND ctid < '(${hi},0)'::tid`}) TO STDOUT`,
          );
          descriptor.segments = segmentSql.length;
        }
      }
      out.push(descriptor);
      this.tables.set(descriptor.name, { descriptor, relation: r, copySql, ...(segmentSql ? { segmentSql } : {}) });
    }
    for (const r of standalone) {
      const v = values.get(`${r.schema}.${r.name}`);
      const def: PgSequenceDefinition = {
        schema: r.schema,
        name: r.name,
        oid: r.oid,
        lastValue: v?.lastValue ?? '1',
        isCalled: v?.isCalled ?? false,
      };
      out.push({ name: `${r.schema}.${r.name}`, kind: 'sequence', definition: { ...def } });
    }
    for (const relkind of ['v', 'm'] as const) {
      for (const r of selected.filter((x) => x.relkind === relkind)) {
        const def: PgViewDefinition = { schema: r.schema, name: r.name, oid: r.oid, relkind, dependentOids: dependents.get(r.oid) ?? [] };
        out.push({ name: `${r.schema}.${r.name}`, kind: relkind === 'v' ? 'view' : 'materialized_view', definition: { ...def } });
      }
    }
    this.collections = out;
    this.byName = new Map(out.map((d) => [d.name, d]));

    if (info.largeObjects > 0) {
      this.warnings.push(`${info.largeObjects} large object${info.largeObjects === 1 ? ' is' : 's are'} not backed up`);
    }
    const foreign = relations.filter((r) => r.relkind === 'f').map((r) => `${r.schema}.${r.name}`);
    if (foreign.length > 0) {
      const shown = foreign.slice(0, 5).join(', ') + (foreign.length > 5 ? ` and ${foreign.length - 5} more` : '');
      this.warnings.push(
        `data of foreign table${foreign.length === 1 ? '' : 's'} ${shown} is not backed up (the definition${foreign.length === 1 ? ' is' : 's are'} in the schema archive)`,
      );
    }
    this.main.busy = false;
  }

  /** ACCESS SHARE on every table to read, in batches, as pg_dump does. */
  private async lockTables(tables: CatalogRelation[]): Promise<void> {
    const c = this.main.client;
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
        const name = culprit === undefined ? `one of ${batch.length} tables` : `table ${culprit.schema}.${culprit.name}`;
        if (code === '42P01') {
          throw new SourceError(`PostgreSQL ${name} was dropped while the backup started; retry the backup.`, { cause: err });
        }
        throw new SourceError(
          `Cannot lock ${name} for the backup: another session holds a conflicting lock (e.g. ALTER TABLE, DROP, VACUUM FULL, a long transaction that changed its definition) and did not release it within ${lockTimeoutText(this.options)}. Retry when it has finished.`,
          { cause: err },
        );
      }
    }
  }

  /** After a failed batch lock: the first table that cannot be locked right now. */
  private async findUnlockable(batch: CatalogRelation[]): Promise<CatalogRelation | undefined> {
    const c = this.main.client;
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
    const { rows } = await this.main.client.query<{ i: number; oid: number | null }>(
      'SELECT i, to_regclass(n)::oid AS oid FROM unnest($1::text[]) WITH ORDINALITY AS t(n, i)',
      [tables.map((r) => qualified(r.schema, r.name))],
    );
    for (const row of rows) {
      const r = tables[Number(row.i) - 1];
      if (r !== undefined && (row.oid === null || Number(row.oid) !== r.oid)) {
        throw new SourceError(`PostgreSQL table ${r.schema}.${r.name} was dropped while the backup started; retry the backup.`);
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
      return this.toolStream(
        'pg_dump',
        [
          '--format=custom',
          '--schema-only',
          '--no-password',
          `--snapshot=${this.snapshotId}`,
          '--lock-wait-timeout=30000',
          ...this.excludedFromArchive.map((p) => `--exclude-table=${p}`),
        ],
        signal,
      );
    }
    if (known.name === ROLES_COLLECTION && known.kind === 'pg_roles') {
      const args = ['--roles-only', '--no-password'];
      if (!this.options.rolesWithPasswords) args.push('--no-role-passwords');
      return this.toolStream('pg_dumpall', args, signal);
    }
    const table = this.tables.get(known.name);
    if (table?.copySql == null) return emptyStream();
    if (segment === undefined) {
      if (table.segmentSql !== undefined) {
        throw new Error(`Internal error: table ${known.name} is read in ${table.segmentSql.length} segments; pass a segment.`);
      }
      return this.copyStream(table, table.copySql, signal);
    }
    const sql = table.segmentSql?.[segment];
    if (sql === undefined) throw new Error(`Internal error: table ${known.name} has no segment ${segment}.`);
    return this.copyStream(table, sql, signal);
  }

  /** Streams a tool's stdout; its stderr becomes the error when it exits non-zero. */
  private toolStream(tool: 'pg_dump' | 'pg_dumpall', args: string[], signal: AbortSignal | undefined): DataStream {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    const settings = this.settings;
    async function* generate(): AsyncGenerator<Uint8Array> {
      throwIfAborted(signal);
      self.assertOpen();
      const child = spawn(tool, args, { env: toolEnv(settings), stdio: ['ignore', 'pipe', 'pipe'] });
      self.children.add(child);
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => {
        if (stderr.length < 65_536) stderr += d.toString();
      });
      let spawnError: Error | undefined;
      const exited = new Promise<number | null>((resolve) => {
        child.on('error', (err) => {
          spawnError = err;
          resolve(null);
        });
        child.on('close', (code) => resolve(code));
      });
      const onAbort = (): void => void child.kill('SIGTERM');
      signal?.addEventListener('abort', onAbort, { once: true });
      let finished = false;
      try {
        for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
          yield chunk;
          throwIfAborted(signal);
        }
        const code = await exited;
        throwIfAborted(signal);
        if (spawnError !== undefined) {
          throw new SourceError(`${tool} could not be started: ${spawnError.message}. Install the PostgreSQL client tools.`);
        }
        if (code !== 0) throw toolError(tool, code, scrub(stderr, settings), settings);
        finished = true;
      } catch (err) {
        // Whatever the abort broke (the killed tool's pipe, a stream's AbortError) is a cancellation.
        if (signal?.aborted) throw abortError(signal);
        throw err;
      } finally {
        signal?.removeEventListener('abort', onAbort);
        if (!finished && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        self.children.delete(child);
      }
    }
    return { rowCount: 0, [Symbol.asyncIterator]: generate };
  }

  private copyStream(table: TableEntry, sql: string, signal: AbortSignal | undefined): DataStream {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    let rowCount = 0;
    const name = table.descriptor.name;
    async function* generate(): AsyncGenerator<Uint8Array> {
      throwIfAborted(signal);
      let session = await self.acquire(false, signal);
      let stream: Readable | undefined;
      let done = false;
      let cancelled: Promise<void> | undefined;
      const cancel = (): void => {
        if (stream !== undefined && !done && cancelled === undefined) cancelled = cancelBackend(self.settings, session.client);
      };
      signal?.addEventListener('abort', cancel, { once: true });
      try {
        if (!session.main && !(await self.lockInWorker(session, table.relation))) {
          // A lock request is queued behind the backup's own lock: read in the main session,
          // which holds the lock already.
          self.release(session);
          session = await self.acquire(true, signal);
          await session.client.query(savepointSql(session));
        } else if (session.main) {
          await session.client.query(savepointSql(session));
        }
        throwIfAborted(signal);
        stream = session.client.query(copyTo(sql));
        for await (const chunk of stream.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
          let i = chunk.indexOf(NEWLINE);
          while (i !== -1) {
            rowCount++;
            i = chunk.indexOf(NEWLINE, i + 1);
          }
          yield chunk;
          throwIfAborted(signal);
        }
        done = true;
        session.savepointOpen = true;
      } catch (err) {
        if (signal?.aborted) throw abortError(signal);
        if (err instanceof CairnError) throw err;
        if (self.closing !== undefined) throw new SourceError(`Reading PostgreSQL table ${name}: the snapshot was closed.`, { cause: err });
        const mapped = pgError(err, self.settings);
        throw new SourceError(`Reading PostgreSQL table ${name}: ${mapped.message}`, { cause: err });
      } finally {
        signal?.removeEventListener('abort', cancel);
        if (!done) await self.recover(session, stream, cancel, () => cancelled);
        self.release(session);
      }
    }
    return {
      get rowCount() {
        return rowCount;
      },
      [Symbol.asyncIterator]: generate,
    };
  }

  /** SAVEPOINT, then LOCK … NOWAIT in a worker (one round trip); false when the lock is not free right now. */
  private async lockInWorker(session: Session, r: CatalogRelation): Promise<boolean> {
    try {
      await session.client.query(`${savepointSql(session)}; LOCK TABLE ONLY ${qualified(r.schema, r.name)} IN ACCESS SHARE MODE NOWAIT`);
      return true;
    } catch (err) {
      if ((err as { code?: string }).code !== '55P03') throw err;
      await session.client.query('ROLLBACK TO SAVEPOINT cairn_copy');
      await session.client.query('RELEASE SAVEPOINT cairn_copy');
      return false;
    }
  }

  /**
   * After a COPY that did not finish (aborted, consumer stopped, server error): stop it, and
   * bring the session back to the state before the COPY (its savepoint), or mark it broken.
   */
  private async recover(
    session: Session,
    stream: Readable | undefined,
    cancel: () => void,
    cancelled: () => Promise<void> | undefined,
  ): Promise<void> {
    if (session.broken || this.closing !== undefined) return;
    try {
      if (stream !== undefined && !stream.readableEnded && !stream.errored) {
        cancel();
        await withTimeout(drain(stream), 10_000);
      }
      await cancelled();
      // A cancel that arrived after the COPY ended can hit the next statement: retry until
      // the session answers cleanly.
      for (let attempt = 0; ; attempt++) {
        try {
          await session.client.query('ROLLBACK TO SAVEPOINT cairn_copy');
          await session.client.query('SELECT 1');
          await session.client.query('RELEASE SAVEPOINT cairn_copy');
          session.savepointOpen = false;
          return;
        } catch (err) {
          if ((err as { code?: string }).code !== '57014' || attempt >= 2) throw err;
        }
      }
    } catch {
      this.markBroken(session);
    }
  }

  private markBroken(session: Session): void {
    session.broken = true;
    destroyClient(session.client);
    if (!session.main) this.workers.splice(this.workers.indexOf(session), 1);
  }

  /** A session to COPY in: the main one when free, else a worker (opened lazily, up to jobs - 1). */
  private async acquire(mainOnly: boolean, signal: AbortSignal | undefined): Promise<Session> {
    for (;;) {
      throwIfAborted(signal);
      this.assertOpen();
      if (this.main.broken) {
        throw new SourceError('The PostgreSQL snapshot session was lost after an interrupted read; retry the backup.');
      }
      if (!this.main.busy) {
        this.main.busy = true;
        return this.main;
      }
      if (!mainOnly) {
        const idle = this.workers.find((w) => !w.busy && !w.broken);
        if (idle !== undefined) {
          idle.busy = true;
          return idle;
        }
        if (this.workers.length + this.connecting < this.jobs - 1) {
          this.connecting++;
          try {
            const worker = await this.openWorker();
            worker.busy = true;
            this.workers.push(worker);
            return worker;
          } finally {
            this.connecting--;
          }
        }
      }
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          signal?.removeEventListener('abort', wake);
          resolve();
        };
        this.waiters.push(wake);
        signal?.addEventListener('abort', wake, { once: true });
      });
    }
  }

  private release(session: Session): void {
    session.busy = false;
    for (const wake of this.waiters.splice(0)) wake();
  }

  private async openWorker(): Promise<Session> {
    const client = await connect(this.settings);
    try {
      await client.query(SESSION_SETUP);
      await client.query(
        `BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT ${quoteLiteral(this.snapshotId)}`,
      );
      await client.query(`SET LOCAL lock_timeout = ${Math.floor(this.options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS)}`);
    } catch (err) {
      destroyClient(client);
      throw pgError(err, this.settings);
    }
    if (this.closing !== undefined) {
      destroyClient(client);
      this.assertOpen();
    }
    return { client, main: false, busy: false, broken: false };
  }

  async close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    for (const child of this.children) child.kill('SIGTERM');
    for (const wake of this.waiters.splice(0)) wake();
    const sessions = [...this.workers.splice(0), this.main];
    await Promise.all(
      sessions.map(async (session) => {
        if (session.broken) return;
        session.broken = true;
        if (session.busy) {
          // A COPY may be in flight: the connection cannot take another statement until it
          // ends, and the transaction only read, so dropping the connection loses nothing.
          destroyClient(session.client);
          return;
        }
        try {
          await withTimeout(session.client.query('ROLLBACK'), 5_000);
          await withTimeout(session.client.end(), 5_000);
        } catch {
          destroyClient(session.client);
        }
      }),
    );
  }

  private assertOpen(): void {
    if (this.closing !== undefined) throw new SourceError('PostgreSQL snapshot is closed.');
  }
}

/** A new savepoint before a COPY, releasing the previous COPY's in the same statement. */
function savepointSql(session: Session): string {
  const sql = session.savepointOpen ? 'RELEASE SAVEPOINT cairn_copy; SAVEPOINT cairn_copy' : 'SAVEPOINT cairn_copy';
  session.savepointOpen = false;
  return sql;
}

function lockTimeoutText(options: PostgresSourceOptions): string {
  const ms = options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

function emptyStream(): DataStream {
  return {
    rowCount: 0,
    async *[Symbol.asyncIterator]() {
      /* no data */
    },
  };
}

function abortError(signal: AbortSignal): CairnError {
  const reason: unknown = signal.reason;
  return reason instanceof CairnError ? reason : new CancelledError();
}

function scrub(text: string, s: PgConnectionSettings): string {
  return s.password ? text.split(s.password).join('***') : text;
}

/** What to do when the server's lock table is too small for the tables of one backup. */
const LOCK_TABLE_ADVICE =
  'A backup holds a share lock on every table it reads until it ends, as pg_dump does, and its schema dump (pg_dump) takes as many again: ' +
  'the server needs max_locks_per_transaction × (max_connections + max_prepared_transactions) of at least about twice the number of tables. ' +
  'Raise max_locks_per_transaction (ALTER SYSTEM SET max_locks_per_transaction = …, then restart PostgreSQL), or back up fewer tables at a time with --include/--exclude.';

function toolError(tool: string, code: number | null, stderr: string, s: PgConnectionSettings): SourceError {
  const detail = stderr.trim().split('\n').slice(-5).join(' ').trim() || `exit code ${code}`;
  if (tool === 'pg_dumpall' && /permission denied|must be superuser/i.test(stderr)) {
    return new SourceError(
      `pg_dumpall --roles-only failed: backing up roles (--roles) needs a superuser; connect as one or drop --roles. (${detail})`,
    );
  }
  if (/out of shared memory|max_locks_per_transaction/i.test(stderr)) {
    return new SourceError(`${tool} ran out of lock slots on the server. ${LOCK_TABLE_ADVICE}`);
  }
  if (/password authentication failed|no password supplied/i.test(stderr)) {
    return new SourceError(
      `${tool} could not log in to PostgreSQL at ${s.host}:${s.port} as "${s.user}": ${detail}. Check the password (URL, PGPASSWORD or ~/.pgpass).`,
    );
  }
  return new SourceError(`${tool} failed (exit code ${code}): ${detail}`);
}

/** pg_dump refuses to dump a server newer than itself; say so before starting. */
function checkPgDumpVersion(pgDumpVersion: string, serverVersionNum: number, serverVersion: string): void {
  const m = /\)\s*(\d+)/.exec(pgDumpVersion) ?? /(\d+)/.exec(pgDumpVersion);
  const dumpMajor = m?.[1] !== undefined ? Number(m[1]) : NaN;
  const serverMajor = Math.floor(serverVersionNum / 10_000);
  if (Number.isFinite(dumpMajor) && serverMajor > 0 && dumpMajor < serverMajor) {
    throw new SourceError(
      `${pgDumpVersion} cannot back up PostgreSQL ${serverVersion}: pg_dump must be at least as new as the server. Install the PostgreSQL ${serverMajor} client tools (Debian: apt-get install postgresql-client-${serverMajor}).`,
    );
  }
}

/** Asks the server to cancel what `client` is running (protocol CancelRequest, no login). */
function cancelBackend(s: PgConnectionSettings, client: pg.Client): Promise<void> {
  const { processID, secretKey } = client as unknown as { processID: number | null; secretKey: number | null };
  if (processID === null || secretKey === null) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const socket = s.host.startsWith('/')
      ? net.connect({ path: `${s.host}/.s.PGSQL.${s.port}` })
      : net.connect({ host: s.host, port: s.port });
    const packet = Buffer.alloc(16);
    packet.writeInt32BE(16, 0);
    packet.writeInt32BE(80877102, 4);
    packet.writeInt32BE(processID, 8);
    packet.writeInt32BE(secretKey, 12);
    socket.setTimeout(5_000, () => socket.destroy());
    socket.on('connect', () => socket.end(packet));
    socket.on('error', () => resolve());
    socket.on('close', () => resolve());
  });
}

/** Drops a connection without waiting for the server (e.g. in the middle of a COPY). */
function destroyClient(client: pg.Client): void {
  const connection = (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection;
  connection?.stream?.destroy();
  client.end().catch(() => undefined);
}

/** Reads a COPY stream to its end or error, discarding data. */
function drain(stream: Readable): Promise<void> {
  return new Promise<void>((resolve) => {
    if (stream.readableEnded || stream.errored) return resolve();
    stream.on('end', () => resolve());
    stream.on('error', () => resolve());
    stream.on('close', () => resolve());
    stream.on('data', () => undefined);
    stream.resume();
  });
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** A pg_dump name pattern that matches exactly this identifier: quoted, so * ? . and case are literal. */
function pgDumpPattern(identifier: string): string {
  return `"${identifier.replaceAll('"', '""')}"`;
}
