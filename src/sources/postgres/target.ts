/**
 * PostgreSQL restore target.
 *
 * The "(schema)" collection is a `pg_dump --format=custom --schema-only` archive of the whole
 * source database. It is written to a private temporary file (mode 0600), its table of contents
 * is filtered to the restore selection (see toc.ts), and pg_restore recreates the objects from
 * it; the table data is loaded with `COPY … FROM STDIN` from the collections' streams.
 *
 * Two ways in, both all-or-nothing:
 * - The target database does not exist: everything is built in a staging database
 *   `<target>__cairn_<id>` (pre-data with pg_restore, data with parallel COPY sessions,
 *   post-data with `pg_restore -j`, sequences, materialized view refresh, renames, ANALYZE),
 *   then switched in with `ALTER DATABASE … RENAME TO <target>` from the maintenance database
 *   "postgres". The target appears complete or not at all; any failure or abort drops the
 *   staging database (`DROP DATABASE … WITH (FORCE)`). If the target appeared meanwhile, the
 *   switch fails: the staging database is dropped and a ConflictError thrown.
 * - The target database exists: load into staging objects, then switch them in with one short
 *   transaction; the switch is the only moment existing objects are locked.
 *   Load (committed transactions, no lock on any existing object): new supporting objects of the
 *   archive (schemas, types, functions, … — existing ones are kept as they are: their entries are
 *   skipped); each restored table, its owned sequences and each restored standalone sequence
 *   under a staging name `<name>__cairn_<id>_<n>` in its schema (pre-data SQL rewritten, see
 *   staging.ts), marked with the staging comment below in the transaction that creates it; the
 *   data COPYed in (`jobs` parallel sessions); indexes, primary / unique / exclusion constraints
 *   (staging names too), check constraints, foreign keys between restored tables and the
 *   attaching of restored partitions to restored parents.
 *   Switch (one transaction, `lock_timeout` switchLockTimeoutMs, 10 s): drop what is overwritten
 *   (RESTRICT: dependents make it fail), rename the staged tables, sequences, indexes and
 *   constraints to their names, clear the marks, then run with the final names what is cheap:
 *   defaults, views, materialized views, triggers, rules, policies, extended statistics,
 *   comments, grants, attaching a partition to an existing parent, and foreign keys to existing
 *   tables, added NOT VALID (on a partitioned table, which cannot have one, checked right
 *   there); set sequences, refresh materialized views (inside the switch: the target never shows
 *   an unpopulated one), rename, COMMIT.
 *   After the commit: VALIDATE CONSTRAINT for those foreign keys (SHARE UPDATE EXCLUSIVE, which
 *   does not block writers; one that does not hold stays NOT VALID and is reported as an error
 *   although the restore is in), then ANALYZE.
 *   Any failure or abort before the switch commits drops every staging object and every new
 *   supporting object created (best effort): the target is as it was. A lock wait over the
 *   timeout fails the same way, with a clear error.
 *
 * Ownership and grants are restored as recorded: the roles must exist in the target (restore
 * them with `roles: true` from the "(roles)" collection, run before anything else, statement by
 * statement through the driver (never psql: see roles.ts) on the maintenance database; "already
 * exists" errors there are expected and ignored).
 *
 * The schema archive is SQL that pg_restore runs as the target URL's role: cairn cannot make a
 * forged archive harmless by reading it. What it limits: entries of types pg_dump never writes
 * refuse the restore, subscriptions are never restored (checkedToc), the SQL runs in a staging
 * database or staging transaction of the restore, never through psql, and names from the
 * manifest are only ever quoted identifiers or parameters. Restore with a role that owns the
 * target database (CREATEDB for new ones) and is not a superuser: the archive can then do
 * nothing that role could not do.
 * Not restored: database-level properties (ALTER DATABASE … SET, the database's comment and
 * grants), the new database is owned by the connecting user and created with the source's
 * encoding, LC_COLLATE and LC_CTYPE. Foreign tables are never restored. A foreign key is kept
 * only when the table it references is restored too or already exists in the target.
 *
 * Renames: objects are created under their source names, then renamed (and moved to another
 * schema, created if missing) at the end; indexes, constraints and owned sequences keep their
 * names. Into an existing database, a renamed collection's source name must therefore be free.
 *
 * Leftovers of a killed restore (SIGKILL, power loss: no chance to clean up): every staging
 * object is named with the restore's id (see staging.ts), and a session of the restore holds the
 * advisory lock of that id from before the first one is created until they are switched in or
 * dropped: on the maintenance database for the staging database (the same session runs CREATE
 * DATABASE, so a kill during it cannot free the lock before the database exists), on the target
 * database for staging tables and sequences. Should that session end early, the restore stops.
 * Every restore first drops, best effort and silently, the staging databases of this server and
 * the staging tables and sequences of the target database (when it exists) whose lock is free:
 * their owner is gone, whatever host or container it ran on, whether or not it got to mark them.
 * The comment `cairn restore staging: host=<hostname> pid=<pid> started=<ISO>` on them is for
 * people; objects of older versions (other names) are still dropped by that comment when
 * written on this host by a process that is gone, or older than 24 hours. The temporary folder
 * is `cairn-pg-restore-<owner>-<random>` (../owner.ts); those whose owner is provably gone are
 * removed. New
 * supporting objects (a schema, a type, a function) that the load's first transaction created
 * are listed in the comment of one of its staging relations (same transaction): the cleanup drops
 * them after the relations, newest first, as the relation's owner (SET ROLE, no CASCADE), so a
 * forged list cannot make it drop what that role could not. Nothing else is ever dropped.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { z } from 'zod';
import { CairnError, ConflictError, CorruptionError, SourceError, throwIfAborted } from '../../core/errors.js';
import { processExists } from '../../core/process.js';
import { OWNER_TOKEN_PATTERN, ownerIsDead, ownerToken, parseOwnerToken } from '../../core/owner.js';
import { quoteIdent, quoteLiteral } from './catalog.js';
import type { ConflictPolicy, RestoreItem, RestoreOptions, RestoreResult, RestoreTarget } from '../types.js';
import { connect, pgError, pgLocation, type PgConnectionSettings } from './connection.js';
import {
  PG_COPY_TEXT,
  PG_DUMP_CUSTOM,
  ROLES_COLLECTION,
  SCHEMA_COLLECTION,
  type PgSchemaDefinition,
  type PgSequenceState,
  type PgTableDefinition,
} from './definitions.js';
import {
  describedObject,
  entryKey,
  filterToc,
  isKnownDesc,
  listFile,
  NEVER_RESTORED_DESCS,
  parseToc,
  referencedTable,
  splitScript,
  type ScriptBlock,
  type TocEntry,
} from './toc.js';
import {
  addedConstraint,
  attachedIndex,
  foreignKeyNotValid,
  headRelation,
  relKey,
  renameAddedConstraint,
  renameCreatedIndex,
  newRestoreId,
  restoreLockKey,
  rewriteQualified,
  STAGING_DATABASE_SQL_PATTERN,
  STAGING_LOCK_CLASS,
  STAGING_RELATION_SQL_PATTERN,
  stagingDatabaseId,
  stagingDatabaseName,
  stagingRelationId,
  stagingRelationName as stagingRelationNameOf,
} from './staging.js';
import { dbnameConninfo, runTool } from './tools.js';
import { roleStatements } from './roles.js';

const MAINTENANCE_DB = 'postgres';
/** Start of the comment that marks a staging database (see the module comment). */
export const STAGING_MARK = 'cairn restore staging:';
/** A marked staging database older than this is dropped whatever host or process wrote it. */
export const STAGING_MAX_AGE_MS = 24 * 60 * 60 * 1000;
/** Temporary folders are `<tmpdir>/cairn-pg-restore-<owner token>-<random>` (see ../owner.ts). */
const TMP_PREFIX = 'cairn-pg-restore-';
const PROGRESS_BYTES = 4 * 1024 * 1024;
/** Largest roles script accepted (pg_dumpall --roles-only of thousands of roles is a few MB). */
const MAX_ROLES_SCRIPT_BYTES = 64 * 1024 * 1024;
/** Errors that say "this object exists already". */
const DUPLICATE_CODES = new Set(['42710', '42P07', '42723', '42P06', '42P04', '42P05']);

const ColumnSchema = z.object({ name: z.string(), type: z.string(), notNull: z.boolean(), generated: z.boolean().optional().default(false) });
const SequenceStateSchema = z.object({
  schema: z.string(),
  name: z.string(),
  lastValue: z.string().regex(/^-?\d+$/),
  isCalled: z.boolean(),
});
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
});
const ViewDefinitionSchema = z.object({
  schema: z.string(),
  name: z.string(),
  oid: z.number().int(),
  relkind: z.enum(['v', 'm']),
  dependentOids: z.array(z.number().int()),
});
const SequenceDefinitionSchema = SequenceStateSchema.extend({ oid: z.number().int() });
const SchemaDefinitionSchema = z.object({
  database: z.string(),
  encoding: z.string().min(1),
  collate: z.string(),
  ctype: z.string(),
  pgDumpVersion: z.string().optional(),
  extensions: z.array(z.object({ name: z.string(), schema: z.string(), version: z.string() })).optional(),
  standaloneSequenceOids: z.array(z.number().int()).optional(),
});

type Relkind = 'r' | 'p' | 'v' | 'm' | 'S';

interface QName {
  schema: string;
  name: string;
}

interface PlannedCollection {
  item: RestoreItem;
  relkind: Relkind;
  oid: number;
  source: QName;
  target: QName;
  dependentOids: number[];
  table?: PgTableDefinition;
  /** Standalone sequence state. */
  sequence?: PgSequenceState;
}

interface Plan {
  schemaItem: RestoreItem;
  schemaDef: Pick<PgSchemaDefinition, 'encoding' | 'collate' | 'ctype' | 'standaloneSequenceOids'>;
  rolesItem: RestoreItem | undefined;
  collections: PlannedCollection[];
}

const KIND_WORD: Record<Relkind, string> = { r: 'table', p: 'partitioned table', v: 'view', m: 'materialized view', S: 'sequence' };
const ALTER_WORD: Record<Relkind, string> = { r: 'TABLE', p: 'TABLE', v: 'VIEW', m: 'MATERIALIZED VIEW', S: 'SEQUENCE' };

const qname = (n: QName): string => `${quoteIdent(n.schema)}.${quoteIdent(n.name)}`;
const display = (n: QName): string => `${n.schema}.${n.name}`;

/** "schema.name" → parts (split at the first dot; a bare name means public). */
export function splitName(name: string): QName {
  const dot = name.indexOf('.');
  return dot < 0 ? { schema: 'public', name } : { schema: name.slice(0, dot), name: name.slice(dot + 1) };
}

export class PostgresTarget implements RestoreTarget {
  readonly kind = 'postgres';
  readonly location: string;
  /** How long the switch into an existing database waits for a lock before giving up (changing nothing). */
  switchLockTimeoutMs = SWITCH_LOCK_TIMEOUT_MS;

  constructor(readonly settings: PgConnectionSettings) {
    this.location = pgLocation(settings);
  }

  async check(items: RestoreItem[], onConflict: ConflictPolicy): Promise<void> {
    const plan = planItems(items);
    const client = await this.connectTargetIfExists();
    if (client === undefined) return;
    try {
      await this.assertNoConflicts(client, plan, onConflict);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  async restore(items: RestoreItem[], userOptions: RestoreOptions): Promise<RestoreResult> {
    throwIfAborted(userOptions.signal);
    const plan = planItems(items);
    const jobs = Math.max(1, Math.floor(userOptions.jobs ?? os.availableParallelism()));
    removeAbandonedTempDirs();
    await this.withMaintenance(dropAbandonedStaging).catch(() => undefined);
    const existing = await this.connectTargetIfExists();
    if (existing !== undefined) {
      try {
        await dropAbandonedStagingRelations(existing);
        await this.assertNoConflicts(existing, plan, userOptions.onConflict);
      } finally {
        await existing.end().catch(() => undefined);
      }
    }
    // The session holding the staging lock (see staging.ts) ending stops the restore: from then
    // on another restore may take its staging objects for abandoned and drop them.
    const lost = new AbortController();
    const signal = userOptions.signal ? AbortSignal.any([userOptions.signal, lost.signal]) : lost.signal;
    const options: RestoreOptions = { ...userOptions, signal };
    const lease = (client: pg.Client): (() => void) => watchSession(client, lost);
    throwIfAborted(signal);
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `${TMP_PREFIX}${ownerToken()}-`));
    // Private whatever the umask: the archive and list files in it are 0600 too.
    fs.chmodSync(tmp, 0o700);
    try {
      const archive = path.join(tmp, 'schema.dump');
      await writeFile(plan.schemaItem.data(), archive, signal);
      const toc = checkedToc(parseToc((await this.pgRestore(['-l', archive], signal, 'Cannot read the schema archive')).stdout));
      const fkReferences = await this.readFkReferences(archive, toc, tmp, signal);
      if (options.roles && plan.rolesItem) await this.restoreRoles(plan.rolesItem, signal);
      throwIfAborted(signal);
      if (existing === undefined) {
        return await this.restoreIntoNewDatabase(plan, toc, fkReferences, archive, tmp, jobs, options, lease);
      }
      return await this.restoreIntoExistingDatabase(plan, toc, fkReferences, archive, tmp, jobs, options, lease);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }

  // ---------------------------------------------------------------- connections and tools

  /** A session on the target database, or undefined when the database does not exist. */
  private async connectTargetIfExists(): Promise<pg.Client | undefined> {
    try {
      return await connect(this.settings);
    } catch (err) {
      if (err instanceof CairnError && (err.cause as { code?: string } | undefined)?.code === '3D000') return undefined;
      throw err;
    }
  }

  private async withMaintenance<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
    const client = await connect(this.settings, MAINTENANCE_DB);
    try {
      return await fn(client);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  private pgRestore(args: string[], signal: AbortSignal | undefined, what: string, database = this.settings.database) {
    return runTool('pg_restore', args, { settings: this.settings, database, signal, what });
  }

  /** The SQL pg_restore prints for a list of entries (optionally one section of them). */
  private async script(archive: string, listPath: string, section: string | undefined, signal: AbortSignal | undefined): Promise<ScriptBlock[]> {
    const args = ['-f', '-', ...(section ? [`--section=${section}`] : []), '-L', listPath, archive];
    const { stdout } = await this.pgRestore(args, signal, 'Cannot read the schema archive');
    return splitScript(stdout);
  }

  /** Which table each foreign key of the archive references, by dumpId. */
  private async readFkReferences(archive: string, toc: TocEntry[], tmp: string, signal: AbortSignal | undefined): Promise<Map<number, string>> {
    const fks = toc.filter((e) => e.desc === 'FK CONSTRAINT');
    const result = new Map<number, string>();
    if (fks.length === 0) return result;
    const list = path.join(tmp, 'fk.list');
    fs.writeFileSync(list, listFile(fks), { mode: 0o600 });
    const byKey = new Map(fks.map((e) => [entryKey(e.desc, e.schema, e.tag), e.dumpId]));
    for (const block of await this.script(archive, list, undefined, signal)) {
      if (block.desc !== 'FK CONSTRAINT') continue;
      const id = byKey.get(entryKey(block.desc, block.schema as string, block.name as string));
      const ref = referencedTable(block.sql);
      if (id !== undefined && ref !== undefined) result.set(id, ref);
    }
    return result;
  }

  private async restoreRoles(item: RestoreItem, signal: AbortSignal | undefined): Promise<void> {
    // Not through psql: its meta-commands (\!, \o, \copy) would run on this host. Every
    // statement is checked before the first one runs (see roles.ts).
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of item.data()) {
      throwIfAborted(signal);
      size += chunk.length;
      if (size > MAX_ROLES_SCRIPT_BYTES) {
        throw new CorruptionError(`Refusing to restore the roles: the "${ROLES_COLLECTION}" collection is larger than ${MAX_ROLES_SCRIPT_BYTES / 1024 / 1024} MiB, which no roles dump is. Restore without --roles.`, {
          objects: [],
          collections: [ROLES_COLLECTION],
        });
      }
      chunks.push(Buffer.from(chunk));
    }
    const statements = roleStatements(Buffer.concat(chunks).toString('utf8'), ROLES_COLLECTION);
    // Roles are cluster-wide and outside any transaction: existing ones report "already exists",
    // and, as psql with ON_ERROR_STOP=0 did, a statement that fails does not stop the others.
    await this.withMaintenance(async (c) => {
      for (const statement of statements) {
        throwIfAborted(signal);
        await c.query(statement).catch(() => undefined);
      }
    });
  }

  // ---------------------------------------------------------------- conflicts

  private async assertNoConflicts(client: pg.Client, plan: Plan, onConflict: ConflictPolicy): Promise<void> {
    const problems = await findConflicts(client, plan, onConflict, this.location);
    if (problems.length === 1) throw new ConflictError(problems[0] as string);
    if (problems.length > 1) {
      throw new ConflictError(`Cannot restore into ${this.location}: ${problems.length} conflicts:\n${problems.map((p) => `- ${p}`).join('\n')}`);
    }
  }

  // ---------------------------------------------------------------- case A: new database

  private async restoreIntoNewDatabase(
    plan: Plan,
    toc: TocEntry[],
    fkReferences: Map<number, string>,
    archive: string,
    tmp: string,
    jobs: number,
    options: RestoreOptions,
    lease: (client: pg.Client) => () => void,
  ): Promise<RestoreResult> {
    const { signal } = options;
    const target = this.settings.database;
    const filtered = filterToc(toc, tocSelection(plan, fkReferences, () => false));
    const list = path.join(tmp, 'restore.list');
    fs.writeFileSync(list, listFile(filtered.kept), { mode: 0o600 });

    // One maintenance session for the whole restore: it holds the staging lock, creates the
    // staging database (so that, killed during CREATE DATABASE, the lock is held until the
    // database exists, and a later restore sees both), switches it in or drops it, and only
    // then lets the lock go.
    const owner = await connect(this.settings, MAINTENANCE_DB);
    const unwatch = lease(owner);
    let staging: string | undefined;
    try {
      const id = await takeStagingLock(owner);
      staging = stagingDatabaseName(target, id);
      const def = plan.schemaDef;
      try {
        await owner.query(
          `CREATE DATABASE ${quoteIdent(staging)} TEMPLATE template0 ENCODING ${quoteLiteral(def.encoding)} LC_COLLATE ${quoteLiteral(def.collate)} LC_CTYPE ${quoteLiteral(def.ctype)}`,
        );
      } catch (err) {
        staging = undefined;
        throw pgError(err, this.settings, MAINTENANCE_DB);
      }
      // For people looking at the server: which host and process this database is staging for.
      await owner.query(`COMMENT ON DATABASE ${quoteIdent(staging)} IS ${quoteLiteral(stagingComment())}`).catch(() => undefined);
      const conninfo = dbnameConninfo(staging);
      const what = `Cannot restore into ${pgLocation(this.settings, staging)} (staging for ${target})`;
      throwIfAborted(signal);
      await this.pgRestore(['--section=pre-data', '-L', list, '--exit-on-error', '--no-password', '-d', conninfo, archive], signal, what, staging);
      const rows = await this.loadParallel(staging, plan, jobs, options);
      throwIfAborted(signal);
      await this.pgRestore(
        ['--section=post-data', '-L', list, '-j', String(jobs), '--exit-on-error', '--no-password', '-d', conninfo, archive],
        signal,
        what,
        staging,
      );
      const client = await connect(this.settings, staging);
      try {
        await runStep(this.settings, staging, async () => {
          await setSequences(client, plan, signal);
          await refreshMaterializedViews(client, plan, false, signal);
          await applyRenames(client, plan, signal);
        });
      } finally {
        await client.end().catch(() => undefined);
      }
      const ready = staging;
      await runStep(this.settings, staging, () => analyzeParallel(this.settings, ready, jobs, signal));
      throwIfAborted(signal);
      options.onFinalizing?.();
      await this.switchIn(owner, staging, target);
      staging = undefined;
      return { collections: plan.collections.length, rows };
    } finally {
      unwatch();
      // Dropped before the lock is let go (ending the session): never unowned and undropped.
      if (staging !== undefined) await this.dropStaging(owner, staging);
      await owner.end().catch(() => undefined);
    }
  }

  /** Renames the staging database to the target name, retrying while a last session closes. */
  private async switchIn(c: pg.Client, staging: string, target: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        // One transaction: the target never carries the staging mark, even for a moment.
        await c.query('BEGIN');
        await c.query(`COMMENT ON DATABASE ${quoteIdent(staging)} IS NULL`);
        await c.query(`ALTER DATABASE ${quoteIdent(staging)} RENAME TO ${quoteIdent(target)}`);
        await c.query('COMMIT');
        return;
      } catch (err) {
        await c.query('ROLLBACK').catch(() => undefined);
        const code = (err as { code?: string }).code;
        if (code === '42P04') {
          throw new ConflictError(
            `The database "${target}" was created on ${this.settings.host}:${this.settings.port} while the restore was running; nothing was changed. Restore again to merge into it, or choose another database name.`,
          );
        }
        if (code === '55006' && attempt < 50) {
          // Some session (autovacuum, a late worker) is still on the staging database.
          await new Promise((r) => setTimeout(r, 100));
          continue;
        }
        throw pgError(err, this.settings, MAINTENANCE_DB);
      }
    }
  }

  /** Drops the staging database: in the owner session, or a new one when that one is broken. */
  private async dropStaging(owner: pg.Client, staging: string): Promise<void> {
    const sql = `DROP DATABASE IF EXISTS ${quoteIdent(staging)} WITH (FORCE)`;
    try {
      await owner.query(sql);
    } catch {
      try {
        await this.withMaintenance((c) => c.query(sql));
      } catch {
        /* best effort: the original error matters more; a later restore drops it (its lock is free) */
      }
    }
  }

  /**
   * Loads every table's data into the staging database with `jobs` parallel COPY sessions. A
   * table the backup read in segments is loaded as that many COPYs into the same table, so one
   * large table does not leave the other sessions idle; its row count is checked over all of them.
   */
  private async loadParallel(staging: string, plan: Plan, jobs: number, options: RestoreOptions, into: (t: PlannedCollection) => QName = (t) => t.source): Promise<number> {
    const tables = plan.collections.filter((c) => c.table !== undefined && c.item.entry.dataFormat !== undefined);
    const segmentsOf = (t: PlannedCollection): number => Math.max(1, t.item.segments ?? 1);
    const units = tables
      .flatMap((t) => Array.from({ length: segmentsOf(t) }, (_, k) => ({ t, segment: segmentsOf(t) > 1 ? k : undefined })))
      .map((u, i) => ({ ...u, i }))
      // largest first: a big table's segments start at once, small tables fill the gaps
      .sort((a, b) => b.t.item.entry.logicalBytes / segmentsOf(b.t) - a.t.item.entry.logicalBytes / segmentsOf(a.t) || a.i - b.i);
    const loaded = new Map<PlannedCollection, TableLoad>(tables.map((t) => [t, { rows: 0, bytes: 0, copied: 0, left: segmentsOf(t) }]));
    let next = 0;
    let rows = 0;
    let failed = false;
    const worker = async (): Promise<void> => {
      if (next >= units.length) return;
      const client = await connect(this.settings, staging);
      try {
        while (!failed && next < units.length) {
          const u = units[next++] as (typeof units)[number];
          // Not `rows += await …`: that reads `rows` before the await, so parallel workers
          // would overwrite each other's additions (a restore of 1,000,110 rows said 499,712).
          const copied = await copyTable(client, u.t, u.segment, loaded.get(u.t) as TableLoad, into(u.t), options, this.settings, staging);
          rows += copied;
        }
      } catch (err) {
        failed = true;
        throw err;
      } finally {
        await client.end().catch(() => undefined);
      }
    };
    const results = await Promise.allSettled(Array.from({ length: Math.min(jobs, units.length) }, () => worker()));
    const rejected = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (rejected) {
      throwIfAborted(options.signal);
      throw rejected.reason;
    }
    return rows;
  }

  // ---------------------------------------------------------------- case B: existing database

  /**
   * Loads into staging objects (committed, touching no existing object), then switches them in
   * with one short transaction; see the module comment. Anything staged is dropped unless the
   * switch committed.
   */
  private async restoreIntoExistingDatabase(
    plan: Plan,
    toc: TocEntry[],
    fkReferences: Map<number, string>,
    archive: string,
    tmp: string,
    jobs: number,
    options: RestoreOptions,
    lease: (client: pg.Client) => () => void,
  ): Promise<RestoreResult> {
    const { signal, onConflict } = options;
    const db = this.settings.database;
    // This session holds the staging lock (on the target database) from before the first staging
    // object is created until they are switched in or dropped.
    const client = await connect(this.settings);
    const unwatch = lease(client);
    const created: StagedObjects = { tables: [], sequences: [], objects: [] };
    let switched = false;
    try {
      const restoreId = await takeStagingLock(client);
      // What the filter must know about the target: relations referenced by foreign keys and
      // partition parents.
      const asked = new Set<string>([...fkReferences.values()]);
      for (const c of plan.collections) if (c.table?.partitionOf) asked.add(c.table.partitionOf);
      const present = await existingRelations(client, [...asked].map(splitName));
      const filtered = filterToc(toc, tocSelection(plan, fkReferences, (q) => present.has(q)));
      const list = path.join(tmp, 'restore.list');
      fs.writeFileSync(list, listFile(filtered.kept), { mode: 0o600 });
      const pre = await this.script(archive, list, 'pre-data', signal);
      const post = await this.script(archive, list, 'post-data', signal);
      let late: ScriptBlock[] = [];
      if (filtered.lateAttach.length > 0) {
        const lateList = path.join(tmp, 'attach.list');
        fs.writeFileSync(lateList, listFile(filtered.lateAttach), { mode: 0o600 });
        late = await this.script(archive, lateList, undefined, signal);
      }
      throwIfAborted(signal);
      const staging = stagingPlan(plan, pre, post, filtered.collectionKeys, restoreId);
      const mark = stagingComment();

      // Load phase 1, one committed transaction: new supporting objects (types, functions,
      // schemas, …; existing ones are skipped) and the staging tables and sequences, marked.
      let skipped = new Set<string>();
      await runStep(this.settings, db, async () => {
        const pending: StagedObjects = { tables: [], sequences: [], objects: [] };
        await client.query('BEGIN');
        try {
          skipped = await existingSharedObjects(client);
          for (const b of pre) {
            throwIfAborted(signal);
            const step = staging.load.get(b);
            if (b.desc === undefined) {
              if (b.sql) await client.query(b.sql);
            } else if (step !== undefined) {
              if (step.mustSucceed) {
                await client.query(step.sql);
                if (step.table !== undefined) {
                  await client.query(`COMMENT ON TABLE ${qname(step.table)} IS ${quoteLiteral(mark)}`);
                  pending.tables.push(step.table);
                }
                if (step.sequence !== undefined) {
                  await client.query(`COMMENT ON SEQUENCE ${qname(step.sequence)} IS ${quoteLiteral(mark)}`);
                  pending.sequences.push(step.sequence);
                }
              } else if (await runOptionalEntry(client, b, skipped)) {
                pending.objects.push({ desc: b.desc, schema: b.schema as string, name: b.name as string });
              }
            }
            if (b.settings) await client.query(b.settings);
          }
          // What this transaction created besides the staging relations, recorded on one of them
          // in the same transaction: a later restore drops it too should this process be killed.
          const record = createdRecord(pending.objects);
          const holder = pending.tables[0] ?? pending.sequences[0];
          if (record !== undefined && holder !== undefined) {
            const word = pending.tables[0] !== undefined ? 'TABLE' : 'SEQUENCE';
            await client.query(`COMMENT ON ${word} ${qname(holder)} IS ${quoteLiteral(`${mark}\n${record}`)}`);
          }
          throwIfAborted(signal);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw err;
        }
        Object.assign(created, pending);
      });

      // Load phase 2: the data, COPYed into the staging tables (own sessions, autocommit).
      const rows = await this.loadParallel(db, plan, jobs, options, (t) => ({ schema: t.source.schema, name: staging.tableName(t) }));

      // Load phase 3, one committed transaction: indexes, constraints and foreign keys between
      // staging tables, under staging names.
      throwIfAborted(signal);
      await runStep(this.settings, db, async () => {
        await client.query('BEGIN');
        try {
          for (const b of post) {
            throwIfAborted(signal);
            const step = staging.load.get(b);
            if (step !== undefined) await client.query(step.sql);
          }
          throwIfAborted(signal);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw err;
        }
      });

      // The switch: one short transaction, the only one that locks existing objects.
      throwIfAborted(signal);
      options.onFinalizing?.();
      await runStep(this.settings, db, async () => {
        await client.query('BEGIN');
        try {
          await client.query(`SET LOCAL lock_timeout = ${quoteLiteral(`${Math.max(1, Math.round(this.switchLockTimeoutMs))}ms`)}`);
          if (onConflict === 'overwrite') await dropReplaced(client, plan);
          for (const r of staging.renames) {
            await client.query(r.sql);
            if (r.clearComment) await client.query(r.clearComment);
          }
          for (const blocks of [pre, post, late]) {
            for (const b of blocks) {
              throwIfAborted(signal);
              if (b.desc !== undefined && !staging.load.has(b)) {
                const sql = staging.switchSql.get(b) ?? b.sql;
                if (filtered.collectionKeys.has(entryKey(b.desc, b.schema as string, b.name as string)) && !isSkippedDescription(b, skipped)) {
                  if (sql) await client.query(sql);
                } else {
                  await runOptionalEntry(client, { ...b, sql }, skipped);
                }
              }
              if (b.settings) await client.query(b.settings.replace(/^SET lock_timeout = [^\n]*$/gm, ''));
            }
          }
          await setSequences(client, plan, signal);
          await refreshMaterializedViews(client, plan, true, signal);
          await applyRenames(client, plan, signal);
          throwIfAborted(signal);
          await client.query('COMMIT');
          switched = true;
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined);
          if ((err as { code?: string }).code === '55P03') {
            throw new SourceError(
              `Cannot switch the restored objects into ${this.location}: another session held a lock on an object the switch replaces or references for more than ${this.switchLockTimeoutMs / 1000} s (${(err as Error).message}). Nothing was changed; restore again when the database is quieter.`,
              { cause: err },
            );
          }
          throw err;
        }
      });

      // After the commit: foreign keys to existing tables were added NOT VALID; validating
      // takes SHARE UPDATE EXCLUSIVE, which does not block writers. Then statistics.
      const invalid: string[] = [];
      for (const fk of staging.validate) {
        const table = targetOf(plan, fk.table);
        try {
          await client.query(`ALTER TABLE ${qname(table)} VALIDATE CONSTRAINT ${quoteIdent(fk.constraint)}`);
        } catch (err) {
          invalid.push(`"${fk.constraint}" on "${display(table)}" (${(err as Error).message.replace(/\.$/, '')})`);
        }
      }
      for (const c of plan.collections) {
        if (c.relkind === 'r' || c.relkind === 'p' || c.relkind === 'm') await client.query(`ANALYZE ${qname(c.target)}`).catch(() => undefined);
      }
      if (invalid.length > 0) {
        const one = invalid.length === 1;
        throw new SourceError(
          `The restore into ${this.location} was committed, but ${one ? 'the foreign key' : 'the foreign keys'} ${invalid.join('; ')} to existing tables ${one ? 'does' : 'do'} not hold for the restored rows: ${one ? 'it is' : 'they are'} left NOT VALID. Fix the rows, then run ALTER TABLE … VALIDATE CONSTRAINT.`,
        );
      }
      return { collections: plan.collections.length, rows };
    } finally {
      unwatch();
      // Dropped before the lock is let go (ending the session): never unowned and undropped.
      if (!switched) await this.dropStagedObjects(created);
      await client.end().catch(() => undefined);
    }
  }

  /** Drops what a failed restore into an existing database staged; best effort, silent. */
  private async dropStagedObjects(created: StagedObjects): Promise<void> {
    if (created.tables.length + created.sequences.length + created.objects.length === 0) return;
    let client: pg.Client;
    try {
      client = await connect(this.settings);
    } catch {
      return;
    }
    try {
      await dropRelations(client, 'TABLE', created.tables);
      await dropRelations(client, 'SEQUENCE', created.sequences);
      for (const o of [...created.objects].reverse()) {
        const sql = dropStatement(o);
        if (sql) await client.query(sql).catch(() => undefined);
      }
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}

// ------------------------------------------------------------------ planning

function invalid(entry: RestoreItem['entry'], what: string, message: string): CorruptionError {
  return new CorruptionError(`${what} "${entry.name}" has an invalid PostgreSQL definition: ${message}`, { objects: [], collections: [entry.name] });
}

function planItems(items: RestoreItem[]): Plan {
  let schemaItem: RestoreItem | undefined;
  let schemaDef: Plan['schemaDef'] | undefined;
  let rolesItem: RestoreItem | undefined;
  const collections: PlannedCollection[] = [];
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
    const target = splitName(item.targetName);
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
        collections.push({ item, relkind: def.relkind, oid: def.oid, source: def, target, dependentOids: def.dependentOids, table: def });
        break;
      }
      case 'view':
      case 'materialized_view': {
        const parsed = ViewDefinitionSchema.safeParse(entry.definition);
        if (!parsed.success) throw invalid(entry, 'View', parsed.error.message);
        const def = parsed.data;
        collections.push({ item, relkind: def.relkind, oid: def.oid, source: def, target, dependentOids: def.dependentOids });
        break;
      }
      case 'sequence': {
        const parsed = SequenceDefinitionSchema.safeParse(entry.definition);
        if (!parsed.success) throw invalid(entry, 'Sequence', parsed.error.message);
        const def = parsed.data;
        collections.push({ item, relkind: 'S', oid: def.oid, source: def, target, dependentOids: [], sequence: def });
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
    const key = display(c.target);
    const prior = seen.get(key);
    if (prior !== undefined) {
      throw new ConflictError(`"${c.item.entry.name}" and "${prior}" would both be restored as "${key}". Use --rename.`);
    }
    seen.set(key, c.item.entry.name);
  }
  return { schemaItem, schemaDef, rolesItem, collections };
}

function tocSelection(plan: Plan, fkReferences: Map<number, string>, existsInTarget: (q: string) => boolean) {
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
    for (const s of c.table?.sequences ?? []) ownedSequences.add(`${s.schema}.${s.name}`);
    if (c.table?.partitionOf) partitionParents.set(name, c.table.partitionOf);
  }
  const supportOids = new Set(plan.schemaDef.standaloneSequenceOids ?? []);
  return { relationOids, supportOids, dependentOids, ownedSequences, partitionParents, selected, existsInTarget, fkReferences };
}

/** The comment that marks a staging database as this process's. */
function stagingComment(now = new Date()): string {
  return `${STAGING_MARK} host=${os.hostname()} pid=${process.pid} started=${now.toISOString()}`;
}

export { processExists };

/**
 * Whether a database with this comment is a staging database left behind by a restore that
 * cannot finish any more: written on this host by a process that is gone, or older than
 * STAGING_MAX_AGE_MS whatever the host. Unmarked or unreadable comments: never.
 */
export function isAbandonedStaging(comment: string | null | undefined, now = Date.now()): boolean {
  if (!comment?.startsWith(STAGING_MARK)) return false;
  const m = /^ host=(.*) pid=(\d+) started=(\S+)$/.exec(comment.slice(STAGING_MARK.length));
  if (!m) return false;
  const at = Date.parse(m[3] ?? '');
  if (Number.isNaN(at)) return false;
  if (now - at > STAGING_MAX_AGE_MS) return true;
  return m[1] === os.hostname() && !processExists(Number(m[2]));
}

/**
 * Runs `fn` while holding the staging lock of restore `id` in this session, when it is free
 * (the restore that owned it is gone); returns whether it ran. The lock is let go after.
 */
async function withAbandonedLock(client: pg.Client, id: string, fn: () => Promise<void>): Promise<boolean> {
  const key = [STAGING_LOCK_CLASS, restoreLockKey(id)];
  const { rows } = await client.query<{ ok: boolean }>('SELECT pg_catalog.pg_try_advisory_lock($1, $2) AS ok', key);
  if (rows[0]?.ok !== true) return false;
  try {
    await fn();
  } finally {
    await client.query('SELECT pg_catalog.pg_advisory_unlock($1, $2)', key).catch(() => undefined);
  }
  return true;
}

/**
 * Drops the abandoned staging databases of the server, through a session on the maintenance
 * database (where their owners hold their locks): those named `…__cairn_<id>` whose lock is
 * free, and those of older versions marked by their comment (see isAbandonedStaging). Best
 * effort, silent.
 */
async function dropAbandonedStaging(client: pg.Client): Promise<void> {
  let rows: { datname: string; comment: string | null }[];
  try {
    ({ rows } = await client.query<{ datname: string; comment: string | null }>(
      `SELECT datname, pg_catalog.shobj_description(oid, 'pg_database') AS comment
         FROM pg_catalog.pg_database
        WHERE datname <> pg_catalog.current_database()
          AND (datname ~ $3 OR pg_catalog.left(pg_catalog.shobj_description(oid, 'pg_database'), $2) = $1)`,
      [STAGING_MARK, STAGING_MARK.length, STAGING_DATABASE_SQL_PATTERN],
    ));
  } catch {
    return;
  }
  for (const r of rows) {
    const drop = async (): Promise<void> => {
      await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(r.datname)} WITH (FORCE)`);
    };
    const id = stagingDatabaseId(r.datname);
    try {
      if (id !== undefined) await withAbandonedLock(client, id, drop);
      else if (isAbandonedStaging(r.comment)) await drop();
    } catch {
      /* best effort */
    }
  }
}

// ------------------------------------------------------------------ staging (case B)

/** How long the switch into an existing database waits for a lock before giving up. */
export const SWITCH_LOCK_TIMEOUT_MS = 10_000;

interface StagedObjects {
  /** Staging tables (by their staging names), committed and marked. */
  tables: QName[];
  /** Staging sequences (owned by staging tables, or not yet: created before OWNED BY). */
  sequences: QName[];
  /** New supporting objects (types, functions, schemas, …), in creation order. */
  objects: { desc: string; schema: string; name: string }[];
}

interface LoadStep {
  sql: string;
  /** false: a supporting object, skipped when it exists already. */
  mustSucceed: boolean;
  /** The staging table / sequence the step creates. */
  table?: QName;
  sequence?: QName;
}

interface StagingPlan {
  /** Blocks run in the load phase, with their rewritten SQL; every other block runs in the switch. */
  load: Map<ScriptBlock, LoadStep>;
  /** SQL to run in the switch instead of the block's own (foreign keys added NOT VALID). */
  switchSql: Map<ScriptBlock, string>;
  /** Statements of the switch giving the staged objects their names back. */
  renames: { sql: string; clearComment?: string }[];
  /** Foreign keys added NOT VALID in the switch, to validate after it (source table names). */
  validate: { table: QName; constraint: string }[];
  /** Staging name of a planned table. */
  tableName(t: PlannedCollection): string;
}

/**
 * Which entries of the pre- and post-data scripts build the staged tables (the load phase,
 * SQL rewritten to staging names) and which run in the switch (everything that only makes
 * sense, or is only cheap, once the names are final: views, materialized views, defaults,
 * triggers, rules, policies, comments, grants, attaching to an existing parent, foreign keys to
 * existing tables).
 */
function stagingPlan(plan: Plan, pre: ScriptBlock[], post: ScriptBlock[], collectionKeys: Set<string>, restoreId: string): StagingPlan {
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
    const name = b.desc === 'INDEX' ? (b.name as string) : addedConstraint(b.sql);
    if (name === undefined) continue;
    const staging = stagingRelationName(name);
    names.set(relKey(head.schema, name), staging);
    if (b.desc === 'INDEX') {
      indexes.set(b, staging);
      indexRenames.push({ sql: rename('INDEX', head.schema, staging, name) });
    } else {
      constraints.set(b, staging);
      constraintRenames.push({ sql: `ALTER TABLE ${qname(head)} RENAME CONSTRAINT ${quoteIdent(staging)} TO ${quoteIdent(name)}` });
    }
  }

  for (const b of pre) {
    if (b.desc === undefined) continue;
    if (!isCollection(b)) {
      load.set(b, { sql: b.sql, mustSucceed: false });
      continue;
    }
    const schema = b.schema as string;
    const key = relKey(schema, b.name as string);
    const staging = names.get(key);
    if (b.desc === 'TABLE' && stagedTables.has(key) && staging !== undefined) {
      createdTables.add(key);
      load.set(b, { sql: rewriteQualified(b.sql, names), mustSucceed: true, table: { schema, name: staging } });
      tableRenames.push({
        sql: rename('TABLE', schema, staging, b.name as string),
        clearComment: `COMMENT ON TABLE ${qname({ schema, name: b.name as string })} IS NULL`,
      });
    } else if (b.desc === 'SEQUENCE' && ownedSequences.has(key) && staging !== undefined) {
      load.set(b, { sql: rewriteQualified(b.sql, names), mustSucceed: true, sequence: { schema, name: staging } });
      sequenceRenames.push({
        sql: rename('SEQUENCE', schema, staging, b.name as string),
        clearComment: `COMMENT ON SEQUENCE ${qname({ schema, name: b.name as string })} IS NULL`,
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
      load.set(b, { sql: rewriteQualified(renameClusterOn(renameCreatedIndex(b.sql, index), b.name as string, index), names), mustSucceed: true });
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
    tableName: (t) => {
      // Never the table's own name: loading must not write into an existing table.
      const key = relKey(t.source.schema, t.source.name);
      const name = names.get(key);
      if (name === undefined || !createdTables.has(key)) throw new SourceError(`Cannot restore "${t.item.entry.name}": the schema archive has no definition of its table.`);
      return name;
    },
  };
}

/** `ALTER TABLE … CLUSTER ON <index>` in an index's entry, with the index's staging name. */
function renameClusterOn(sql: string, name: string, staging: string): string {
  return sql.replace(/ CLUSTER ON ("(?:[^"]|"")*"|[^\s";]+);/g, (m, ident: string) => {
    const unquoted = ident.startsWith('"') ? ident.slice(1, -1).replace(/""/g, '"') : ident;
    return unquoted === name ? ` CLUSTER ON ${quoteIdent(staging)};` : m;
  });
}

/** The name a restored table (source name) has after the switch. */
function targetOf(plan: Plan, source: QName): QName {
  return plan.collections.find((c) => c.source.schema === source.schema && c.source.name === source.name)?.target ?? source;
}

/** Whether a block is skipped: its object exists already, or it describes (comments on, grants on) one that does. */
function isSkippedDescription(b: ScriptBlock, skipped: Set<string>): boolean {
  if (b.desc === undefined) return false;
  if (skipped.has(entryKey(b.desc, b.schema as string, b.name as string))) return true;
  if (b.desc === 'COMMENT' || b.desc === 'ACL' || b.desc === 'SECURITY LABEL') {
    const obj = describedObject({ line: '', dumpId: 0, tableoid: 0, oid: 0, desc: b.desc, schema: b.schema as string, tag: b.name as string, owner: '' });
    if (obj && skipped.has(entryKey(obj.desc, b.schema as string, obj.name))) return true;
  }
  return false;
}

/**
 * Runs an entry that is not a restored collection's, in the open transaction: when it fails
 * because its object exists already, it is rolled back to a savepoint and skipped (with its
 * comments and grants). Whether it ran.
 */
async function runOptionalEntry(client: pg.Client, b: ScriptBlock, skipped: Set<string>): Promise<boolean> {
  if (b.desc === undefined || !b.sql || isSkippedDescription(b, skipped)) return false;
  await client.query('SAVEPOINT cairn_entry');
  try {
    await client.query(b.sql);
    await client.query('RELEASE SAVEPOINT cairn_entry');
    return true;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (!code || !DUPLICATE_CODES.has(code)) throw err;
    await client.query('ROLLBACK TO SAVEPOINT cairn_entry');
    skipped.add(entryKey(b.desc, b.schema as string, b.name as string));
    return false;
  }
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

/** Drops relations together (they may reference each other), else one by one; best effort. */
async function dropRelations(client: pg.Client, word: 'TABLE' | 'SEQUENCE', names: QName[]): Promise<void> {
  if (names.length === 0) return;
  try {
    await client.query(`DROP ${word} IF EXISTS ${names.map(qname).join(', ')}`);
  } catch {
    for (const n of names) await client.query(`DROP ${word} IF EXISTS ${qname(n)}`).catch(() => undefined);
  }
}

const FUNCTION_ARGS = /^\((?:[^;'"\\()]|"(?:[^"]|"")*")*\)$/;

/** How to drop a supporting object the load phase created, or undefined (it stays). */
function dropStatement(o: { desc: string; schema: string; name: string }): string | undefined {
  switch (o.desc) {
    case 'SCHEMA':
    case 'EXTENSION':
      return `DROP ${o.desc} IF EXISTS ${quoteIdent(o.name)}`;
    case 'TYPE':
    case 'SHELL TYPE':
    case 'DOMAIN':
    case 'SEQUENCE':
    case 'COLLATION':
      return `DROP ${o.desc === 'SHELL TYPE' ? 'TYPE' : o.desc} IF EXISTS ${qname(o)}`;
    case 'FUNCTION':
    case 'PROCEDURE':
    case 'AGGREGATE': {
      const paren = o.name.indexOf('(');
      if (paren <= 0) return undefined;
      // The argument list is written as is: only one parenthesised list of type names (quoted
      // ones included), no ";" or "'" outside quotes — a name read back from a comment or an
      // archive cannot smuggle in a second object or statement.
      if (!FUNCTION_ARGS.test(o.name.slice(paren))) return undefined;
      return `DROP ${o.desc} IF EXISTS ${quoteIdent(o.schema)}.${quoteIdent(o.name.slice(0, paren))}${o.name.slice(paren)}`;
    }
    default:
      return undefined;
  }
}

/** dropStatement, for the tests of what a forged record can make it drop. */
export const dropStatementForTest = dropStatement;

/**
 * Drops the staging tables and sequences left in this database by restores that cannot finish
 * any more: those named `…__cairn_<id>_<n>` whose restore's lock (held on this database) is
 * free, and those of older versions marked by their comment (see isAbandonedStaging). Their
 * indexes and constraints go with them. Best effort, silent.
 */
async function dropAbandonedStagingRelations(client: pg.Client): Promise<void> {
  let rows: { schema: string; name: string; relkind: string; owner: string; comment: string | null }[];
  try {
    ({ rows } = await client.query<{ schema: string; name: string; relkind: string; owner: string; comment: string | null }>(
      `SELECT n.nspname AS schema, c.relname AS name, c.relkind::text AS relkind, pg_catalog.pg_get_userbyid(c.relowner) AS owner,
              pg_catalog.obj_description(c.oid, 'pg_class') AS comment
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'S') AND c.relname ~ $3
          AND (c.relname ~ $4 OR pg_catalog.left(pg_catalog.obj_description(c.oid, 'pg_class'), $2) = $1)`,
      [STAGING_MARK, STAGING_MARK.length, STAGING_RELATION_SQL_PATTERN, '__cairn_[0-9a-f]{8}_[0-9a-z]+$'],
    ));
  } catch {
    return;
  }
  const drop = async (relations: typeof rows): Promise<void> => {
    await dropRelations(client, 'TABLE', relations.filter((r) => r.relkind !== 'S'));
    await dropRelations(client, 'SEQUENCE', relations.filter((r) => r.relkind === 'S'));
  };
  const byRestore = new Map<string, typeof rows>();
  const legacy: typeof rows = [];
  for (const r of rows) {
    const id = stagingRelationId(r.name);
    if (id === undefined) {
      if (isAbandonedStaging(r.comment)) legacy.push(r);
      continue;
    }
    byRestore.set(id, [...(byRestore.get(id) ?? []), r]);
  }
  for (const [id, relations] of byRestore) {
    await withAbandonedLock(client, id, async () => {
      await drop(relations);
      for (const r of relations) await dropRecorded(client, r.comment, r.owner);
    }).catch(() => undefined);
  }
  await drop(legacy).catch(() => undefined);
}

/** Start of the line of a staging relation's comment that lists the supporting objects its restore created. */
const CREATED_PREFIX = 'created: ';

/** The record of created supporting objects that can be dropped (see dropStatement), or undefined when none. */
function createdRecord(objects: StagedObjects['objects']): string | undefined {
  const droppable = objects.filter((o) => dropStatement(o) !== undefined).map((o) => ({ desc: o.desc, schema: o.schema, name: o.name }));
  return droppable.length > 0 ? `${CREATED_PREFIX}${JSON.stringify(droppable)}` : undefined;
}

/**
 * Drops, newest first, the supporting objects recorded in a staging relation's comment, each as
 * the relation's owner (SET ROLE): a record can only make cairn drop what that role could drop
 * itself (the comment can only be written by it, or a superuser). Best effort: an object others
 * have started to use meanwhile stays (no CASCADE).
 */
async function dropRecorded(client: pg.Client, comment: string | null, owner: string): Promise<void> {
  const line = comment?.split('\n').find((l) => l.startsWith(CREATED_PREFIX));
  if (line === undefined) return;
  let objects: unknown;
  try {
    objects = JSON.parse(line.slice(CREATED_PREFIX.length));
  } catch {
    return;
  }
  if (!Array.isArray(objects)) return;
  for (const o of [...(objects as unknown[])].reverse()) {
    const { desc, schema, name } = (o ?? {}) as Record<string, unknown>;
    if (typeof desc !== 'string' || typeof schema !== 'string' || typeof name !== 'string') continue;
    const sql = dropStatement({ desc, schema, name });
    if (sql === undefined) continue;
    try {
      await client.query('BEGIN');
      await client.query(`SET LOCAL ROLE ${quoteIdent(owner)}`);
      await client.query(sql);
      await client.query('COMMIT');
    } catch {
      await client.query('ROLLBACK').catch(() => undefined);
    }
  }
}

/**
 * Removes the temporary folders of restores whose process is provably gone (see ../owner.ts:
 * same machine, boot and PID namespace, pid gone or reused), and those of older versions
 * (`cairn-pg-restore-<pid>-…`) whose pid does not exist here; best effort, silent.
 */
export function removeAbandonedTempDirs(dir = os.tmpdir()): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  const uid = process.getuid?.();
  const current = new RegExp(`^${TMP_PREFIX}(${OWNER_TOKEN_PATTERN})-`);
  const legacy = new RegExp(`^${TMP_PREFIX}(\\d+)-`);
  for (const name of names) {
    const token = current.exec(name)?.[1];
    if (token !== undefined) {
      const owner = parseOwnerToken(token);
      if (owner === undefined || !ownerIsDead(owner)) continue;
    } else {
      const m = legacy.exec(name);
      if (!m) continue;
      const pid = Number(m[1]);
      if (pid === process.pid || processExists(pid)) continue;
    }
    const full = path.join(dir, name);
    try {
      const st = fs.lstatSync(full);
      if (!st.isDirectory() || (uid !== undefined && st.uid !== uid)) continue;
      fs.rmSync(full, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
}

/**
 * Takes the staging lock (STAGING_LOCK_CLASS, id) for a new restore id in this session and
 * returns the id; see staging.ts.
 */
async function takeStagingLock(client: pg.Client): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    const id = newRestoreId();
    const { rows } = await client.query<{ ok: boolean }>('SELECT pg_catalog.pg_try_advisory_lock($1, $2) AS ok', [STAGING_LOCK_CLASS, restoreLockKey(id)]);
    if (rows[0]?.ok === true) return id;
    // Another restore drew the same id (1 in 4 billion): draw again.
    if (attempt >= 10) throw new SourceError('Cannot take a staging lock on the PostgreSQL server: every id tried is taken.');
  }
}

/**
 * Aborts `lost` (with a SourceError) when the client's connection fails or ends, until the
 * returned function is called.
 */
function watchSession(client: pg.Client, lost: AbortController): () => void {
  const onLost = (err?: unknown): void => {
    if (lost.signal.aborted) return;
    const detail = err instanceof Error ? `: ${err.message}` : '';
    lost.abort(
      new SourceError(
        `The restore lost its PostgreSQL session holding the staging lock${detail}. It stopped, leaving the target as it was: restore again.`,
      ),
    );
  };
  const onEnd = (): void => onLost();
  client.on('error', onLost);
  client.on('end', onEnd);
  return () => {
    client.off('error', onLost);
    client.off('end', onEnd);
  };
}

// ------------------------------------------------------------------ target catalog

interface ExistingRelation {
  schema: string;
  name: string;
  relkind: string;
  oid: number;
}

async function findRelations(client: pg.Client, names: QName[]): Promise<ExistingRelation[]> {
  if (names.length === 0) return [];
  const { rows } = await client.query<{ schema: string; name: string; relkind: string; oid: number }>(
    `SELECT n.nspname AS schema, c.relname AS name, c.relkind::text AS relkind, c.oid::int8::float8 AS oid
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE (n.nspname, c.relname) IN (SELECT * FROM unnest($1::text[], $2::text[]))`,
    [names.map((n) => n.schema), names.map((n) => n.name)],
  );
  return rows;
}

async function existingRelations(client: pg.Client, names: QName[]): Promise<Set<string>> {
  return new Set((await findRelations(client, names)).map((r) => `${r.schema}.${r.name}`));
}

interface ColumnRow {
  name: string;
  type: string;
  qualified: string;
  notNull: boolean;
}

async function tableColumns(client: pg.Client, oid: number): Promise<ColumnRow[]> {
  // format_type() qualifies a type unless its schema is on the search path: compare both the
  // spelling under the session's search path and the fully qualified one (as pg_dump sees it).
  const sql = `SELECT a.attname AS name, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS "notNull"
                 FROM pg_catalog.pg_attribute a
                WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
                ORDER BY a.attnum`;
  const { rows } = await client.query<Omit<ColumnRow, 'qualified'>>(sql, [oid]);
  const { rows: saved } = await client.query<{ path: string }>(`SELECT pg_catalog.current_setting('search_path') AS path`);
  await client.query(`SELECT pg_catalog.set_config('search_path', 'pg_catalog', false)`);
  try {
    const { rows: qualified } = await client.query<{ type: string }>(sql, [oid]);
    return rows.map((r, i) => ({ ...r, qualified: qualified[i]?.type ?? r.type }));
  } finally {
    await client.query(`SELECT pg_catalog.set_config('search_path', $1, false)`, [saved[0]?.path ?? '"$user", public']);
  }
}

function describeColumns(cols: { name: string; type: string; notNull: boolean }[]): string {
  return cols.map((c) => `${c.name} ${c.type}${c.notNull ? ' NOT NULL' : ''}`).join(', ');
}

/** Every reason the plan cannot be applied to the existing target database, as sentences. */
async function findConflicts(client: pg.Client, plan: Plan, onConflict: ConflictPolicy, location: string): Promise<string[]> {
  const names = plan.collections.flatMap((c) => [c.target, c.source]);
  const found = new Map((await findRelations(client, names)).map((r) => [`${r.schema}.${r.name}`, r]));
  const problems: string[] = [];
  const replaced = new Set<string>();
  const hint = 'Use --on-conflict overwrite to replace it, --rename to restore it under another name, or --exclude it.';
  for (const c of plan.collections) {
    const name = display(c.target);
    const existing = found.get(name);
    if (existing === undefined) continue;
    const existingKind = KIND_WORD[existing.relkind as Relkind] ?? (existing.relkind === 'i' || existing.relkind === 'I' ? 'index' : `relation (relkind ${existing.relkind})`);
    if (onConflict === 'fail') {
      problems.push(`${capitalize(existingKind)} "${name}" already exists in ${location}. ${hint}`);
      continue;
    }
    if (existing.relkind !== c.relkind) {
      problems.push(
        `"${name}" exists in ${location} as a ${existingKind}, and the backup has a ${KIND_WORD[c.relkind]}: overwrite only replaces a ${KIND_WORD[c.relkind]} with a ${KIND_WORD[c.relkind]}. Use --rename to restore it under another name, or --exclude it.`,
      );
      continue;
    }
    if (c.table !== undefined) {
      const current = await tableColumns(client, existing.oid);
      const wanted = c.table.columns;
      const same =
        current.length === wanted.length &&
        current.every((col, i) => {
          const w = wanted[i] as (typeof wanted)[number];
          return col.name === w.name && (col.type === w.type || col.qualified === w.type) && col.notNull === w.notNull;
        });
      if (!same) {
        problems.push(
          `Table "${name}" in ${location} has different columns than the backup (target: ${describeColumns(current)}; backup: ${describeColumns(wanted)}). Use --rename to restore it under another name, or --exclude it.`,
        );
        continue;
      }
    }
    replaced.add(name);
  }
  // Objects are created under their source names and renamed at the end: that name must be free.
  for (const c of plan.collections) {
    const source = display(c.source);
    if (source === display(c.target) || !found.has(source) || replaced.has(source)) continue;
    problems.push(
      `"${c.item.entry.name}" is restored as "${display(c.target)}", but "${source}" exists in ${location}: into an existing database a renamed collection is created under its original name first. Restore into a new database, or rename or drop "${source}" first.`,
    );
  }
  return problems;
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** Schemas and extensions the target has: their archive entries (and comments, grants) are skipped. */
async function existingSharedObjects(client: pg.Client): Promise<Set<string>> {
  const skipped = new Set<string>();
  const { rows: schemas } = await client.query<{ name: string }>('SELECT nspname AS name FROM pg_catalog.pg_namespace');
  for (const r of schemas) skipped.add(entryKey('SCHEMA', '-', r.name));
  const { rows: extensions } = await client.query<{ name: string }>('SELECT extname AS name FROM pg_catalog.pg_extension');
  for (const r of extensions) skipped.add(entryKey('EXTENSION', '-', r.name));
  return skipped;
}

// ------------------------------------------------------------------ loading

/** Runs a step, turning driver errors into CairnErrors (duplicates and dependents into conflicts). */
async function runStep(settings: PgConnectionSettings, database: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof CairnError) throw err;
    const e = err as { code?: string; message?: string; detail?: string };
    if (e.code && DUPLICATE_CODES.has(e.code)) {
      throw new ConflictError(
        `Cannot restore into ${pgLocation(settings, database)}: ${e.message ?? 'an object already exists'}. Something the restore creates (an index, constraint or sequence name) exists already; nothing was changed. Drop or rename it, or restore with --rename or --exclude.`,
        { cause: err },
      );
    }
    if (e.code === '2BP01') {
      throw new ConflictError(
        `Cannot replace objects in ${pgLocation(settings, database)}: ${e.message ?? 'other objects depend on them'}${e.detail ? ` (${e.detail.replace(/\n/g, '; ')})` : ''}. Nothing was changed. Drop or change the dependent objects first, or --exclude the collection.`,
        { cause: err },
      );
    }
    throw pgError(err, settings, database);
  }
}

/**
 * Drops the collections an overwrite replaces (RESTRICT: an object that depends on one and is
 * not replaced too makes it fail). A drop that fails only because another replaced object
 * still depends on it is retried after the others, until no progress is made.
 */
async function dropReplaced(client: pg.Client, plan: Plan): Promise<void> {
  const found = new Map((await findRelations(client, plan.collections.map((c) => c.target))).map((r) => [`${r.schema}.${r.name}`, r]));
  // Reverse restore order first: views before the tables they read, partitions before their parent.
  let pending = [...plan.collections].reverse().filter((c) => found.has(display(c.target)));
  while (pending.length > 0) {
    const failed: PlannedCollection[] = [];
    let lastError: unknown;
    for (const c of pending) {
      await client.query('SAVEPOINT cairn_drop');
      try {
        await client.query(`DROP ${ALTER_WORD[c.relkind]} IF EXISTS ${qname(c.target)} RESTRICT`);
        await client.query('RELEASE SAVEPOINT cairn_drop');
      } catch (err) {
        if ((err as { code?: string }).code !== '2BP01') throw err;
        await client.query('ROLLBACK TO SAVEPOINT cairn_drop');
        failed.push(c);
        lastError = err;
      }
    }
    if (failed.length === pending.length) throw lastError;
    pending = failed;
  }
}

/** Running totals of one table over its segments. */
interface TableLoad {
  /** Rows seen in the streams so far (for progress). */
  rows: number;
  bytes: number;
  /** Rows COPY reported loaded. */
  copied: number;
  /** Segments not loaded yet. */
  left: number;
}

/**
 * COPYs one table's stream (or one segment of it) in; once every segment is in, checks the row
 * count against the backup's.
 */
async function copyTable(
  client: pg.Client,
  t: PlannedCollection,
  segment: number | undefined,
  load: TableLoad,
  into: QName,
  options: RestoreOptions,
  settings: PgConnectionSettings,
  database: string,
): Promise<number> {
  const { signal, onProgress } = options;
  const def = t.table as PgTableDefinition;
  const name = t.item.entry.name;
  throwIfAborted(signal);
  const cols = def.copyColumns.length > 0 ? ` (${def.copyColumns.map(quoteIdent).join(', ')})` : '';
  let reported = 0;
  async function* counted(): AsyncGenerator<Uint8Array> {
    for await (const chunk of t.item.data(segment)) {
      load.bytes += chunk.length;
      reported += chunk.length;
      for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) load.rows++;
      if (reported >= PROGRESS_BYTES) {
        reported = 0;
        onProgress?.({ collection: name, rows: load.rows, bytes: load.bytes });
      }
      yield chunk;
    }
  }
  const stream = client.query(copyFrom(`COPY ${qname(into)}${cols} FROM STDIN`));
  try {
    await pipeline(Readable.from(counted()), stream, ...(signal ? [{ signal }] : []));
  } catch (err) {
    throwIfAborted(signal);
    if (err instanceof CairnError) throw err;
    const code = (err as { code?: string }).code;
    if (code && /^[0-9A-Z]{5}$/.test(code)) {
      throw new SourceError(`Cannot load table "${name}": ${pgError(err, settings, database).message}`, { cause: err });
    }
    throw err;
  }
  const rows = stream.rowCount;
  load.copied += rows;
  load.left--;
  if (load.left === 0 && load.copied !== t.item.entry.rowCount) {
    throw new CorruptionError(`Table "${name}": the backup recorded ${t.item.entry.rowCount} rows but its data holds ${load.copied}.`, { objects: [], collections: [name] });
  }
  onProgress?.({ collection: name, rows: load.rows, bytes: load.bytes });
  return rows;
}

/**
 * ANALYZE of every table and materialized view of a database with `jobs` sessions (largest
 * first), as `vacuumdb --analyze-only -j` does: one ANALYZE statement would use one core.
 */
async function analyzeParallel(settings: PgConnectionSettings, database: string, jobs: number, signal: AbortSignal | undefined): Promise<void> {
  const first = await connect(settings, database);
  const clients = [first];
  try {
    const { rows } = await first.query<{ name: string }>(
      `SELECT format('%I.%I', n.nspname, c.relname) AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relkind IN ('r', 'm', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
       ORDER BY pg_table_size(c.oid) DESC, 1`,
    );
    for (let k = 1; k < Math.min(jobs, rows.length); k++) clients.push(await connect(settings, database));
    let next = 0;
    await Promise.all(
      clients.map(async (client) => {
        while (next < rows.length) {
          throwIfAborted(signal);
          await client.query(`ANALYZE ${(rows[next++] as { name: string }).name}`);
        }
      }),
    );
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  }
}

async function setSequences(client: pg.Client, plan: Plan, signal: AbortSignal | undefined): Promise<void> {
  const states: PgSequenceState[] = [];
  for (const c of plan.collections) {
    states.push(...(c.table?.sequences ?? []));
    if (c.sequence) states.push(c.sequence);
  }
  for (const s of states) {
    throwIfAborted(signal);
    await client.query('SELECT pg_catalog.setval($1::regclass, $2::bigint, $3::boolean)', [qname(s), s.lastValue, s.isCalled]);
  }
}

/** Refreshes the restored materialized views; one that reads another waits for it (retry until no progress). */
async function refreshMaterializedViews(client: pg.Client, plan: Plan, inTransaction: boolean, signal: AbortSignal | undefined): Promise<void> {
  let pending = plan.collections.filter((c) => c.relkind === 'm');
  while (pending.length > 0) {
    const failed: PlannedCollection[] = [];
    let lastError: unknown;
    for (const m of pending) {
      throwIfAborted(signal);
      if (inTransaction) await client.query('SAVEPOINT cairn_refresh');
      try {
        await client.query(`REFRESH MATERIALIZED VIEW ${qname(m.source)}`);
        if (inTransaction) await client.query('RELEASE SAVEPOINT cairn_refresh');
      } catch (err) {
        if (inTransaction) await client.query('ROLLBACK TO SAVEPOINT cairn_refresh');
        failed.push(m);
        lastError = err;
      }
    }
    if (failed.length === pending.length) throw lastError;
    pending = failed;
  }
}

async function applyRenames(client: pg.Client, plan: Plan, signal: AbortSignal | undefined): Promise<void> {
  for (const c of plan.collections) {
    const { source, target } = c;
    if (source.schema === target.schema && source.name === target.name) continue;
    throwIfAborted(signal);
    const word = ALTER_WORD[c.relkind];
    if (source.name !== target.name) {
      await client.query(`ALTER ${word} ${qname(source)} RENAME TO ${quoteIdent(target.name)}`);
    }
    if (source.schema !== target.schema) {
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(target.schema)}`);
      await client.query(`ALTER ${word} ${qname({ schema: source.schema, name: target.name })} SET SCHEMA ${quoteIdent(target.schema)}`);
    }
  }
}

async function writeFile(data: AsyncIterable<Uint8Array>, file: string, signal: AbortSignal | undefined): Promise<void> {
  await pipeline(Readable.from(data), fs.createWriteStream(file, { mode: 0o600 }), ...(signal ? [{ signal }] : [])).catch((err: unknown) => {
    throwIfAborted(signal);
    throw err;
  });
}
