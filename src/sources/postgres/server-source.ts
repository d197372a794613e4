/**
 * Whole-server source (`postgres://user@host:port/`, no database): every database of the server,
 * its roles and its tablespaces in one backup, kind "postgres-server" (names: server-naming.ts).
 *
 * Each database is read by the one-database source (source.ts), unchanged: its collections are
 * those of a one-database backup, named `<database>/<name>`, beside a data-less `<database>/`
 * entry (kind `pg_database`: owner, grants, comment, connection limit, and how many collections
 * it has: server-database.ts). The server's own
 * collections: `(roles)` (`pg_dumpall --roles-only`, passwords only with rolesWithPasswords) and
 * `(tablespaces)` (`pg_dumpall --tablespaces-only`), both not selectable.
 *
 * Consistency: as with pg_dumpall, each database is its own snapshot. PostgreSQL cannot take one
 * snapshot across databases; the databases' snapshots are all taken (one after another) before
 * any data is read, and held until the backup ends, so each database is consistent in itself.
 * Roles and tablespaces are read when their stream runs (they are not transactional data).
 *
 * Which databases: every one that accepts connections, except template0 and template1
 * (datistemplate) and staging databases of cairn restores; `postgres` is included, as
 * pg_dumpall does (it may hold user objects). A database that cannot be connected to
 * (datallowconn false) is skipped and said in the warnings. A database dropped between the
 * listing and the taking of its snapshot is skipped and said in the warnings; one dropped WITH
 * (FORCE) after that ends the backup's sessions on it, and the backup fails (retry it). A
 * database created after the listing is not in the backup.
 *
 * Selection: names are read from every database's catalog first (a short session each), the
 * backup's select() runs once over all of them, and only databases where something is selected
 * are opened: `--include 'shop/*'` never opens (nor locks anything in) the other databases. A
 * database that cannot be read (no CONNECT privilege, …) fails the backup, naming it, only when
 * it is selected: `--exclude` leaves it out.
 *
 * Sessions: one per selected database is held for the whole backup (its snapshot), plus the
 * readers: a server with more databases than free connections cannot be backed up whole (select
 * part of it with --include, or raise max_connections).
 */
import type { ChildProcess } from 'node:child_process';
import type pg from 'pg';
import { CairnError, NotFoundError, SourceError, throwIfAborted } from '../../core/errors.js';
import type { CollectionDescriptor, DatabaseSource, DataStream, SnapshotOptions, SourceCheckReport, SourceSnapshot } from '../types.js';
import { readRelations, readRoleNames } from './catalog.js';
import { connect, pgError, pgLocation, toolVersion, type PgConnectionSettings, type SessionDefaults } from './connection.js';
import { checkPostgres } from './tool-check.js';
import { PG_ROLES_SQL, ROLES_COLLECTION, type PgRolesDefinition } from './definitions.js';
import { DATABASE_PROPERTIES_COLUMNS, type PgDatabaseDefinition } from './server-database.js';
import { serverName } from './server-naming.js';
import { readRoutines } from './routines.js';
import { PostgresSource, selectableNames as namesOf, type PostgresSourceOptions } from './source.js';
import { isStagingRelationName, stagingDatabaseId } from './staging.js';
import { toolStream } from './tool-stream.js';
import { DEFAULT_LOCK_TIMEOUT_MS } from './session-pool.js';

export type { PgDatabaseDefinition } from './server-database.js';

export const POSTGRES_SERVER_KIND = 'postgres-server';
export const TABLESPACES_COLLECTION = '(tablespaces)';
/** stdout of `pg_dumpall --tablespaces-only`. */
export const PG_TABLESPACES_SQL = 'pg_dumpall-tablespaces-sql';
/** Maintenance databases tried, in order, for the server's own sessions. */
const MAINTENANCE_DATABASES = ['postgres', 'template1'];


/** Definition of the "(tablespaces)" collection. */
export interface PgTablespacesDefinition {
  tablespaces: { name: string; location: string }[];
}

export class PostgresServerSource implements DatabaseSource {
  readonly kind = POSTGRES_SERVER_KIND;
  readonly name: string;
  readonly location: string;

  constructor(
    readonly settings: PgConnectionSettings,
    readonly options: PostgresSourceOptions = {},
  ) {
    this.location = pgLocation(settings, '');
    this.name = `${settings.host.startsWith('/') ? 'local' : settings.host}-${settings.port}`;
  }

  /** See DatabaseSource.check: on the maintenance database; pg_dump, pg_dumpall and pg_restore. */
  async check(): Promise<SourceCheckReport> {
    const { client, database } = await connectMaintenance(this.settings);
    await client.end().catch(() => undefined);
    return checkPostgres(this.settings, database, ['pg_dump', 'pg_dumpall', 'pg_restore']);
  }

  async openSnapshot(options: SnapshotOptions): Promise<SourceSnapshot> {
    const { signal } = options;
    throwIfAborted(signal);
    await toolVersion('pg_dump');
    await toolVersion('pg_dumpall');
    // Every session of a backup waits at most the lock timeout for any lock, from its first query.
    const session = { lockTimeoutMs: this.options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS };
    const { client, database } = await connectMaintenance(this.settings, session);
    const snapshot = new ServerSnapshot({ ...this.settings, database }, client, this.options.rolesWithPasswords === true);
    try {
      // Roles are the server's: recorded once, not in every database.
      await snapshot.load(options, { ...(this.options.lockTimeoutMs !== undefined ? { lockTimeoutMs: this.options.lockTimeoutMs } : {}), ...(this.options.segmentMinBlocks !== undefined ? { segmentMinBlocks: this.options.segmentMinBlocks } : {}) });
      return snapshot;
    } catch (err) {
      await snapshot.close().catch(() => undefined);
      throwIfAborted(signal);
      throw pgError(err, this.settings, database);
    }
  }
}

/** A session on the server's maintenance database (postgres, else template1); `session` as connect's. */
export async function connectMaintenance(settings: PgConnectionSettings, session: SessionDefaults = {}): Promise<{ client: pg.Client; database: string }> {
  let last: unknown;
  for (const database of MAINTENANCE_DATABASES) {
    try {
      return { client: await connect(settings, database, session), database };
    } catch (err) {
      last = err;
      if (!isMissingDatabase(err)) throw err;
    }
  }
  throw last;
}

function isMissingDatabase(err: unknown): boolean {
  return err instanceof NotFoundError || (err instanceof CairnError && (err.cause as { code?: string } | undefined)?.code === '3D000');
}

/** The names a one-database snapshot offers to select (as source.ts chooses them), read in a short session. */
async function selectableNames(settings: PgConnectionSettings, database: string, lockTimeoutMs: number): Promise<string[]> {
  const client = await connect(settings, database, { lockTimeoutMs });
  try {
    await client.query("SELECT pg_catalog.set_config('search_path', '', false)");
    const relations = (await readRelations(client)).filter((r) => !isStagingRelationName(r.name));
    return namesOf(relations, await readRoutines(client));
  } finally {
    await client.end().catch(() => undefined);
  }
}

interface OpenDatabase {
  database: string;
  snapshot: SourceSnapshot;
  /** Inner collection by server name. */
  inner: Map<string, CollectionDescriptor>;
}

class ServerSnapshot implements SourceSnapshot {
  serverVersion = '';
  readonly warnings: string[] = [];
  maxParallelReads = 1;
  private collections: CollectionDescriptor[] = [];
  private readonly databases: OpenDatabase[] = [];
  private readonly byName = new Map<string, OpenDatabase>();
  private readonly children = new Set<ChildProcess>();
  private closed = false;

  constructor(
    private readonly settings: PgConnectionSettings,
    private readonly client: pg.Client,
    private readonly withPasswords: boolean,
  ) {}

  async load(options: SnapshotOptions, sourceOptions: PostgresSourceOptions): Promise<void> {
    const { signal } = options;
    const c = this.client;
    this.serverVersion = ((await c.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]?.v ?? '').split(' ')[0] ?? '';
    type Properties = Omit<PgDatabaseDefinition, 'database' | 'collections'>;
    const { rows: dbs } = await c.query<{ datname: string; datallowconn: boolean } & Properties>(
      `SELECT d.datname, d.datallowconn, ${DATABASE_PROPERTIES_COLUMNS} FROM pg_catalog.pg_database d WHERE NOT d.datistemplate ORDER BY d.datname`,
    );
    const roles = await readRoleNames(c);
    const { rows: spaces } = await c.query<{ name: string; location: string }>(
      "SELECT spcname AS name, pg_catalog.pg_tablespace_location(oid) AS location FROM pg_catalog.pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global') ORDER BY spcname",
    );
    // `error`: the database could not be read (no CONNECT privilege, …): it fails the backup
    // only when something of it is selected, so --exclude can leave it out.
    const candidates: { database: string; properties: Properties; names: string[]; error?: unknown }[] = [];
    for (const db of dbs) {
      throwIfAborted(signal);
      // A restore's staging database is not a database of the server yet (or any more).
      if (stagingDatabaseId(db.datname) !== undefined) continue;
      if (!db.datallowconn) {
        this.warnings.push(`database ${db.datname} accepts no connections (datallowconn false): not backed up`);
        continue;
      }
      try {
        const properties: Properties = { owner: db.owner, acl: db.acl, comment: db.comment, connectionLimit: db.connectionLimit, settings: db.settings ?? [] };
        candidates.push({ database: db.datname, properties, names: await selectableNames(this.settings, db.datname, sourceOptions.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS) });
      } catch (err) {
        throwIfAborted(signal);
        if (isMissingDatabase(err)) this.warnings.push(`database ${db.datname} was dropped while the backup started: not backed up`);
        else candidates.push({ database: db.datname, properties: { owner: db.owner }, names: [], error: err });
      }
    }
    // The selection runs once, over every database's names (a pattern must match somewhere).
    const all = candidates.flatMap((d) => [serverName(d.database, ''), ...d.names.map((n) => serverName(d.database, n))]);
    const chosen = options.select(all);
    const selected = candidates.filter((d) => chosen.has(serverName(d.database, '')) || d.names.some((n) => chosen.has(serverName(d.database, n))));
    const unreadable = selected.find((d) => d.error !== undefined);
    if (unreadable !== undefined) {
      const err = pgError(unreadable.error, this.settings, unreadable.database);
      throw new SourceError(`Cannot read database ${unreadable.database} of the server: ${err.message} Or leave it out: --exclude '${unreadable.database}'.`, { cause: err });
    }
    const jobs = Math.max(1, Math.floor(options.jobs) || 1);
    this.maxParallelReads = jobs;
    const perDatabase = Math.max(1, Math.floor(jobs / Math.max(1, selected.length)));
    const out: CollectionDescriptor[] = [];
    const rolesDef: PgRolesDefinition = { withPasswords: this.withPasswords, roles };
    out.push({ name: ROLES_COLLECTION, kind: 'pg_roles', selectable: false, dataFormat: PG_ROLES_SQL, definition: { ...rolesDef } });
    const spacesDef: PgTablespacesDefinition = { tablespaces: spaces };
    out.push({ name: TABLESPACES_COLLECTION, kind: 'pg_tablespaces', selectable: false, dataFormat: PG_TABLESPACES_SQL, definition: { ...spacesDef } });
    for (const d of selected) {
      throwIfAborted(signal);
      const pre = new Set(d.names);
      const select = (names: string[]): Set<string> => {
        // Relations created since the names were read are offered to the selection again.
        const fresh = names.filter((n) => !pre.has(n)).map((n) => serverName(d.database, n));
        const again = fresh.length > 0 ? options.select([...all, ...fresh]) : chosen;
        return new Set(names.filter((n) => again.has(serverName(d.database, n))));
      };
      let snapshot: SourceSnapshot;
      try {
        snapshot = await new PostgresSource({ ...this.settings, database: d.database }, sourceOptions).openSnapshot({ select, jobs: perDatabase, ...(signal ? { signal } : {}) });
      } catch (err) {
        if (!isMissingDatabase(err)) throw err;
        this.warnings.push(`database ${d.database} was dropped while the backup started: not backed up`);
        continue;
      }
      const open: OpenDatabase = { database: d.database, snapshot, inner: new Map() };
      this.databases.push(open);
      const inner = await snapshot.listCollections();
      const def: PgDatabaseDefinition = { database: d.database, ...d.properties, collections: inner.filter((x) => x.selectable !== false).length };
      out.push({ name: serverName(d.database, ''), kind: 'pg_database', definition: { ...def } });
      for (const col of inner) {
        const name = serverName(d.database, col.name);
        open.inner.set(name, col);
        this.byName.set(name, open);
        out.push({ ...col, name });
      }
      this.warnings.push(...snapshot.warnings.map((w) => `database ${d.database}: ${w}`));
    }
    this.collections = out;
  }

  async listCollections(): Promise<CollectionDescriptor[]> {
    this.assertOpen();
    return structuredClone(this.collections);
  }

  readData(collection: CollectionDescriptor, signal?: AbortSignal, segment?: number): DataStream {
    this.assertOpen();
    if (collection.name === ROLES_COLLECTION && collection.kind === 'pg_roles') {
      const args = ['--roles-only', '--no-password'];
      if (!this.withPasswords) args.push('--no-role-passwords');
      return toolStream('pg_dumpall', args, signal, this.toolContext());
    }
    if (collection.name === TABLESPACES_COLLECTION && collection.kind === 'pg_tablespaces') {
      return toolStream('pg_dumpall', ['--tablespaces-only', '--no-password'], signal, this.toolContext());
    }
    const open = this.byName.get(collection.name);
    const inner = open?.inner.get(collection.name);
    if (open === undefined || inner === undefined || inner.kind !== collection.kind) {
      throw new SourceError(`PostgreSQL ${collection.kind} "${collection.name}" is not in this snapshot.`);
    }
    return open.snapshot.readData(inner, signal, segment);
  }

  private toolContext() {
    return { settings: this.settings, running: this.children, assertOpen: () => this.assertOpen() };
  }

  private assertOpen(): void {
    if (this.closed) throw new SourceError('The PostgreSQL server snapshot is closed.');
  }

  /** Kills the running tools, closes every database's snapshot and the maintenance session; idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const child of this.children) child.kill('SIGTERM');
    await Promise.all(this.databases.map((d) => d.snapshot.close().catch(() => undefined)));
    await this.client.end().catch(() => undefined);
  }
}
