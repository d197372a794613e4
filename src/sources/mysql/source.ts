/**
 * The MySQL/MariaDB backup source: one consistent snapshot of one database.
 *
 * Consistency (as mariabackup / mysqldump --single-transaction take it): a lock session takes the
 * global lock for milliseconds (MariaDB ≥ 10.4: `BACKUP STAGE START; BACKUP STAGE BLOCK_COMMIT`,
 * which holds commits and DDL back but lets running statements go on; else `FLUSH TABLES WITH
 * READ LOCK`). Under it, the main session and N = min(jobs, 8) read sessions each start
 * `START TRANSACTION WITH CONSISTENT SNAPSHOT` (no commit can fall between them: they all see
 * one moment), the binlog position of that moment is recorded, the objects are listed and every
 * session takes a shared metadata lock on every selected table (`(SELECT 1 FROM t LIMIT 0) UNION
 * ALL …`), so no DDL changes them until the backup ends and no session waits behind a DDL queued
 * meanwhile. Then the lock is released; with lockNonTransactional it is kept until every
 * non-transactional table (MyISAM, Aria, MEMORY …) has been read, so those are consistent too.
 * A separate lock session is used because BACKUP STAGE END commits the session's transaction.
 * Only one BACKUP STAGE can run on a server: while another backup holds it (mariabackup, another
 * cairn), FLUSH TABLES WITH READ LOCK is taken instead. Table statistics, SHOW CREATE … and the
 * rest of the catalog are read after the lock is released (metadata locks keep tables as they
 * were; views, routines and events are not locked: one dropped meanwhile is left out, said).
 *
 * Without the RELOAD privilege (the lock is refused) the backup reads in one session, in one
 * `START TRANSACTION WITH CONSISTENT SNAPSHOT`, and says so in a warning; MariaDB then still gets
 * the exact binlog position of that snapshot (SHOW STATUS LIKE 'binlog_snapshot_%').
 * lockNonTransactional then takes `LOCK TABLES … READ` on the non-transactional tables before
 * the snapshot starts (the LOCK TABLES privilege), released once they have been read.
 *
 * What is captured: every table (`table`: SHOW CREATE TABLE, columns, primary key, referenced
 * tables, its triggers; data as mysql-tsv-v1, every row version of a system-versioned table),
 * sequence (`sequence`: SHOW CREATE SEQUENCE and its next value), view (`view`: SHOW CREATE VIEW,
 * in dependency order after the tables), the database's procedures, functions and events
 * (`(routines)`, always) and, with options.roles, the accounts that hold privileges in the
 * database (`(users and grants)`, password hashes only with rolesWithPasswords). Not captured,
 * said in warnings: the rows of FEDERATED / CONNECT / SPIDER tables (they live elsewhere),
 * PACKAGEs, routines the user may not see, tables of a cairn restore in progress.
 */
import type mysql from 'mysql2/promise';
import { SourceError, throwIfAborted } from '../../core/errors.js';
import type { SourceOptions } from '../driver.js';
import type { CollectionDescriptor, DatabaseSource, DataStream, SnapshotOptions, SourceCheckReport, SourceSnapshot } from '../types.js';
import {
  readColumns,
  readDatabaseCharset,
  readKeyRange,
  readObjects,
  readPrimaryKeys,
  readReferences,
  readRoutines,
  readSequence,
  readSizes,
  readTriggers,
  readViewReferences,
  REMOTE_ENGINES,
  showCreateTable,
  exactMemberLists,
  showCreateView,
  viewOrder,
  type CatalogColumn,
  type CatalogObject,
} from './catalog.js';
import { connect, ident, mysqlError, mysqlLocation, parseVersion, type MysqlSettings } from './connection.js';
import {
  GRANTS_COLLECTION,
  GRANTS_KIND,
  MYSQL_GRANTS_SQL,
  MYSQL_KIND,
  MYSQL_TSV,
  ROUTINES_COLLECTION,
  ROUTINES_KIND,
  SEQUENCE_KIND,
  TABLE_KIND,
  VIEW_KIND,
  type MysqlRoutinesDefinition,
  type MysqlSequenceDefinition,
  type MysqlTableDefinition,
  type MysqlViewDefinition,
} from './format.js';
import { readGrants } from './grants.js';
import { INTEGER_TYPES, segmentBounds, segmentMinBytes, segmentWhere } from './segments.js';
import { abortError, endSession, openSession, queryText, SessionPool, startSnapshot, withTimeout, type Session } from './sessions.js';

/** How long the lock and metadata locks may wait by default, in ms. */
export const DEFAULT_LOCK_TIMEOUT_MS = 30_000;
/** Read sessions at most. */
const MAX_SESSIONS = 8;
/** Tables per metadata-lock statement. */
const LOCK_BATCH = 200;

/** Tuning for tests and experts (the driver passes none). */
export interface MysqlSourceTuning {
  /** Tables at least this large are read in key ranges (default CAIRN_MYSQL_SEGMENT_MIN_BYTES or 64 MiB). */
  segmentMinBytes?: number;
}

/** A cairn restore's staging database (`<target>__cairn_<8 hex>`). */
const STAGING_DATABASE = /__cairn_[0-9a-f]{8}$/;
/** Tables an `overwrite` restore moved aside in the target (`<name>__cairn_old_<hex>`). */
const ASIDE_TABLE = /__cairn_old_[0-9a-f]{4,}$/;

export class MysqlSource implements DatabaseSource {
  readonly kind = MYSQL_KIND;
  readonly name: string;
  readonly location: string;

  constructor(
    readonly settings: MysqlSettings,
    readonly options: SourceOptions,
    readonly tuning: MysqlSourceTuning = {},
  ) {
    this.name = settings.database;
    this.location = mysqlLocation(settings);
  }

  /** See DatabaseSource.check: connects to the database and reads the server's version (no tools: the driver reads everything). */
  async check(): Promise<SourceCheckReport> {
    const conn = await connect(this.settings);
    try {
      const version = (await queryText(conn, 'SELECT VERSION()'))[0]?.[0] ?? '';
      return { serverVersion: version };
    } catch (err) {
      throw mysqlError(err, this.settings);
    } finally {
      await conn.end().catch(() => undefined);
    }
  }

  /**
   * Opens the snapshot (see the module comment). Errors: SourceError (server, privileges, lock
   * timeout), NotFoundError (no such database), CancelledError or the signal's reason on abort.
   */
  async openSnapshot(options: SnapshotOptions): Promise<SourceSnapshot> {
    const { signal } = options;
    throwIfAborted(signal);
    if (STAGING_DATABASE.test(this.settings.database)) {
      throw new SourceError(
        `${this.location} is the staging database of a cairn restore (being loaded, or left by a killed one: the next restore to its target drops it), not a database to back up; back up the restore's target instead.`,
      );
    }
    const lockTimeoutMs = Math.max(1, Math.floor(this.options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS));
    const main = await openSession(this.settings, lockTimeoutMs);
    const snapshot = new MysqlSnapshot(this.settings, this.options, this.tuning, main, lockTimeoutMs);
    const onAbort = (): void => void snapshot.close();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await snapshot.load(options.select, Math.max(1, Math.floor(options.jobs) || 1), signal);
      return snapshot;
    } catch (err) {
      await snapshot.close().catch(() => undefined);
      if (signal?.aborted) throw abortError(signal);
      throw mysqlError(err, this.settings);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }
}

interface TableEntry {
  descriptor: CollectionDescriptor;
  object: CatalogObject;
  /** SELECT … FROM t [FOR SYSTEM_TIME ALL], without a WHERE. */
  select: string;
  /** Segment i reads `select + where[i]`. */
  where?: string[];
}

class MysqlSnapshot implements SourceSnapshot {
  serverVersion = '';
  position?: Record<string, string>;
  readonly warnings: string[] = [];
  maxParallelReads = 1;
  private collections: CollectionDescriptor[] = [];
  private byName = new Map<string, CollectionDescriptor>();
  /** The CREATE USER statements with password hashes (rolesWithPasswords): the `(users and grants)` data stream. */
  private passwordStatements: string[] = [];
  private readonly tables = new Map<string, TableEntry>();
  private pool: SessionPool | undefined;
  private readonly sessions: Session[] = [];
  /** The session that holds the global lock while it is held. */
  private lockSession: Session | undefined;
  private lockKind: 'backup-stage' | 'ftwrl' | 'lock-tables' | undefined;
  /** Non-transactional tables still to be read under the lock (lockNonTransactional). */
  private lockedReads = new Set<string>();
  private closing: Promise<void> | undefined;

  constructor(
    private readonly settings: MysqlSettings,
    private readonly options: SourceOptions,
    private readonly tuning: MysqlSourceTuning,
    private readonly main: Session,
    private readonly lockTimeoutMs: number,
  ) {
    this.sessions.push(main);
  }

  async load(select: (names: string[]) => Set<string>, jobs: number, signal: AbortSignal | undefined): Promise<void> {
    const c = this.main.conn;
    const [versionText, logBin] = (await queryText(c, 'SELECT VERSION(), @@log_bin'))[0] ?? [];
    const version = parseVersion(versionText ?? '');
    this.serverVersion = version.mariadb ? `${version.version}-MariaDB` : version.version;
    const binlog = logBin === '1';
    throwIfAborted(signal);

    const locked = await this.takeGlobalLock(version);
    throwIfAborted(signal);
    let objects: CatalogObject[];
    let chosen: Set<string>;
    if (locked) {
      // Under the lock: every snapshot starts at the same moment.
      const n = Math.min(jobs, MAX_SESSIONS);
      const opened = await Promise.allSettled(
        Array.from({ length: n }, async () => {
          const s = await openSession(this.settings, this.lockTimeoutMs);
          this.sessions.push(s);
          await startSnapshot(s);
          return s;
        }),
      );
      const failed = opened.find((r) => r.status === 'rejected');
      if (failed) throw (failed as PromiseRejectedResult).reason;
      await startSnapshot(this.main);
      this.position = binlog ? await this.binlogPosition(version.mariadb) : { binlog: 'off' };
      ({ objects, chosen } = await this.listAndLock(select, this.sessions));
      this.maxParallelReads = n;
      const nonTransactional = objects.filter((o) => chosen.has(o.name) && o.type === 'table' && !o.transactional && !REMOTE_ENGINES.has((o.engine ?? '').toUpperCase()));
      if (this.options.lockNonTransactional && nonTransactional.length > 0) {
        this.lockedReads = new Set(nonTransactional.map((o) => o.name));
      } else {
        await this.releaseGlobalLock();
      }
      this.pool = new SessionPool(this.settings, this.sessions.filter((s) => s !== this.main));
    } else {
      if (this.options.lockNonTransactional) await this.lockNonTransactionalTables(select);
      await startSnapshot(this.main);
      if (binlog) this.position = version.mariadb ? await this.snapshotBinlogPosition() : undefined;
      else this.position = { binlog: 'off' };
      ({ objects, chosen } = await this.listAndLock(select, [this.main]));
      this.warnings.push(
        `reads were not parallel: the user "${this.settings.user}" may not take the global lock that lines up parallel snapshots (it lacks the RELOAD privilege), so one session read everything${binlog && !version.mariadb ? ' and no binlog position was recorded' : ''}; GRANT RELOAD ON *.* TO the user for parallel reads`,
      );
      const unlocked = objects.filter((o) => chosen.has(o.name) && o.type === 'table' && !o.transactional && !this.lockedReads.has(o.name) && !REMOTE_ENGINES.has((o.engine ?? '').toUpperCase()));
      if (this.options.lockNonTransactional && unlocked.length > 0) {
        this.warnings.push(
          `--lock-nontransactional was not honoured for ${shortList(unlocked.map((o) => o.name))}: without the RELOAD privilege the global lock cannot be taken, and LOCK TABLES was refused or the table is new; GRANT RELOAD ON *.* (or LOCK TABLES on the database) TO the user`,
        );
      }
    }
    throwIfAborted(signal);
    await this.describe(objects, chosen, jobs, signal);
    // The main session read the catalog; from now on it serves reads too when it is the only one.
    this.pool ??= new SessionPool(this.settings, [this.main]);
  }

  /**
   * Takes the global lock in a session of its own; false when the user may not (no RELOAD).
   * Throws SourceError when it is not granted within the lock timeout.
   */
  private async takeGlobalLock(version: ReturnType<typeof parseVersion>): Promise<boolean> {
    const s = await openSession(this.settings, this.lockTimeoutMs);
    this.lockSession = s;
    const backupStage = version.mariadb && (version.major > 10 || (version.major === 10 && version.minor >= 4));
    try {
      if (backupStage) {
        // One BACKUP STAGE at a time on a whole server: while another backup holds it (another
        // cairn holds it for milliseconds; mariabackup for longer) this waits, up to the lock
        // timeout. Never FLUSH TABLES WITH READ LOCK instead: a waiting FTWRL queues behind
        // every long-running statement and, while it waits, blocks every writer of the server.
        this.lockKind = 'backup-stage';
        await s.conn.query('BACKUP STAGE START');
        await s.conn.query('BACKUP STAGE BLOCK_COMMIT');
      } else {
        this.lockKind = 'ftwrl';
        await s.conn.query('FLUSH TABLES WITH READ LOCK');
      }
      return true;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ER_SPECIFIC_ACCESS_DENIED_ERROR' || code === 'ER_DBACCESS_DENIED_ERROR' || code === 'ER_ACCESS_DENIED_ERROR') {
        await this.releaseGlobalLock();
        return false;
      }
      if (code === 'ER_LOCK_WAIT_TIMEOUT') {
        throw new SourceError(
          `MySQL's global lock for the backup (${this.lockKind === 'backup-stage' ? 'BACKUP STAGE BLOCK_COMMIT' : 'FLUSH TABLES WITH READ LOCK'}) was not granted within ${lockTimeoutText(this.lockTimeoutMs)}: a long statement, a DDL or another backup (mariabackup, LOCK TABLES, FLUSH TABLES WITH READ LOCK) holds it. Retry when it has finished, or wait longer with --lock-timeout (API: lockTimeoutSeconds).`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  /**
   * Without RELOAD, lockNonTransactional: `LOCK TABLES … READ` on the selected non-transactional
   * tables in a session of its own, taken before the snapshot starts and kept until they have
   * been read. Their content cannot change from the lock to the read, so it is the content at the
   * moment the snapshot starts: consistent with the rest. Without the LOCK TABLES privilege the
   * backup goes on and warns (see load).
   */
  private async lockNonTransactionalTables(select: (names: string[]) => Set<string>): Promise<void> {
    const objects = (await readObjects(this.main.conn)).filter((o) => !ASIDE_TABLE.test(o.name));
    const chosen = select(objects.map((o) => o.name));
    const names = objects.filter((o) => chosen.has(o.name) && o.type === 'table' && !o.transactional && !REMOTE_ENGINES.has((o.engine ?? '').toUpperCase())).map((o) => o.name);
    if (names.length === 0) return;
    const s = await openSession(this.settings, this.lockTimeoutMs);
    this.lockSession = s;
    this.lockKind = 'lock-tables';
    try {
      await s.conn.query(`LOCK TABLES ${names.map((n) => `${ident(n)} READ`).join(', ')}`);
    } catch (err) {
      const code = (err as { code?: string }).code;
      await this.releaseGlobalLock();
      if (code === 'ER_TABLEACCESS_DENIED_ERROR' || code === 'ER_DBACCESS_DENIED_ERROR' || code === 'ER_SPECIFIC_ACCESS_DENIED_ERROR') return;
      if (code === 'ER_LOCK_WAIT_TIMEOUT') {
        throw new SourceError(
          `LOCK TABLES … READ on the non-transactional tables (--lock-nontransactional) was not granted within ${lockTimeoutText(this.lockTimeoutMs)}: another session writes to or locks one of ${shortList(names)}. Retry when it has finished, or wait longer with --lock-timeout.`,
          { cause: err },
        );
      }
      throw err;
    }
    this.lockedReads = new Set(names);
  }

  /** Ends the global lock (BACKUP STAGE END / UNLOCK TABLES) or the tables' lock, and its session; idempotent, never throws. */
  private async releaseGlobalLock(): Promise<void> {
    const s = this.lockSession;
    if (s === undefined) return;
    this.lockSession = undefined;
    try {
      if (this.lockKind === 'backup-stage') await withTimeout(s.conn.query('BACKUP STAGE END'), 5_000);
      else await withTimeout(s.conn.query('UNLOCK TABLES'), 5_000);
    } catch {
      // Logging out (or dropping the connection) releases it too.
    }
    await endSession(s);
  }

  /** SHOW MASTER STATUS (MySQL 8.4: SHOW BINARY LOG STATUS) and the GTID position, under the lock. */
  private async binlogPosition(mariadb: boolean): Promise<Record<string, string>> {
    const s = this.lockSession ?? this.main;
    let row: (string | null)[] | undefined;
    try {
      row = (await queryText(s.conn, 'SHOW MASTER STATUS'))[0];
    } catch (err) {
      if ((err as { code?: string }).code !== 'ER_PARSE_ERROR') throw err;
      row = (await queryText(s.conn, 'SHOW BINARY LOG STATUS'))[0];
    }
    const position: Record<string, string> = {};
    if (row?.[0]) position.binlogFile = row[0];
    if (row?.[1]) position.binlogOffset = row[1];
    if (mariadb) {
      const gtid = (await queryText(s.conn, 'SELECT @@gtid_binlog_pos'))[0]?.[0];
      if (gtid) position.gtid = gtid;
    } else if (row?.[4]) {
      position.gtid = row[4].replace(/\s+/g, '');
    }
    return position;
  }

  /** MariaDB: the binlog position of the main session's snapshot (exact, no lock needed). */
  private async snapshotBinlogPosition(): Promise<Record<string, string> | undefined> {
    const rows = await queryText(this.main.conn, "SHOW STATUS LIKE 'binlog_snapshot_%'");
    const status = new Map(rows.map((r) => [String(r[0]).toLowerCase(), r[1] ?? '']));
    const file = status.get('binlog_snapshot_file');
    const offset = status.get('binlog_snapshot_position');
    if (!file) return undefined;
    const position: Record<string, string> = { binlogFile: file, binlogOffset: offset ?? '' };
    // The GTID of that moment is not reported without the lock; the file and offset are exact.
    return position;
  }

  /**
   * Lists the objects, asks `select` which to back up, and takes a shared metadata lock on every
   * selected table and sequence in each of `sessions` (their transactions keep it until the end).
   */
  private async listAndLock(select: (names: string[]) => Set<string>, sessions: Session[]): Promise<{ objects: CatalogObject[]; chosen: Set<string> }> {
    const all = await readObjects(this.main.conn);
    const aside = all.filter((o) => ASIDE_TABLE.test(o.name));
    const objects = all.filter((o) => !ASIDE_TABLE.test(o.name));
    if (aside.length > 0) {
      this.warnings.push(`table${aside.length === 1 ? '' : 's'} moved aside by a cairn restore into this database (running, or killed) not backed up: ${shortList(aside.map((o) => o.name))}`);
    }
    const chosen = select(objects.map((o) => o.name));
    const toLock = objects.filter((o) => chosen.has(o.name) && o.type !== 'view').map((o) => o.name);
    await Promise.all(sessions.map((s) => lockMetadata(s.conn, toLock)));
    return { objects, chosen };
  }

  /** Reads the catalog of the selected objects and builds the collections. */
  private async describe(objects: CatalogObject[], chosen: Set<string>, jobs: number, signal: AbortSignal | undefined): Promise<void> {
    const c = this.main.conn;
    const selected = objects.filter((o) => chosen.has(o.name));
    await readSizes(c, selected);
    const columns = await readColumns(c);
    const primaryKeys = await readPrimaryKeys(c);
    const references = await readReferences(c);
    const triggers = await readTriggers(c);
    const charset = await readDatabaseCharset(c);
    throwIfAborted(signal);
    const out: CollectionDescriptor[] = [];
    const minBytes = segmentMinBytes(this.tuning.segmentMinBytes);
    const nonTransactional: string[] = [];
    const remote: string[] = [];
    const unreadMembers: string[] = [];
    // Opened only when a table needs it (exactMemberLists), closed at the end of the catalog.
    let sideSession: Promise<Session> | undefined;
    const side = async (): Promise<mysql.Connection> => (await (sideSession ??= openSession(this.settings, this.lockTimeoutMs))).conn;
    // SHOW CREATE TABLE is one round trip per table: asked in every snapshot session at once
    // (they are idle until the data is read, and see the same locked tables).
    const tables = selected.filter((x) => x.type === 'table');
    const created = await inSessions(
      this.sessions.filter((s) => !s.broken).map((s) => s.conn),
      tables,
      (conn, o) => showCreateTable(conn, o.name),
    );
    try {
      for (const [k, o] of tables.entries()) {
        const cols = columns.get(o.name) ?? [];
        const engine = o.engine ?? '';
        const isRemote = REMOTE_ENGINES.has(engine.toUpperCase());
        const dataColumns: CatalogColumn[] = [...cols];
        if (o.systemVersioned && !cols.some((col) => col.period !== undefined)) {
          // Implicit system versioning: the period columns exist but information_schema hides them.
          dataColumns.push({ name: 'ROW_START', type: 'timestamp(6)', dataType: 'timestamp', stored: true, invisible: true, period: 'start' });
          dataColumns.push({ name: 'ROW_END', type: 'timestamp(6)', dataType: 'timestamp', stored: true, invisible: true, period: 'end' });
        }
        const definition: MysqlTableDefinition = {
          createSql: await (async () => {
            const exact = await exactMemberLists(side, o.name, created[k] ?? '', cols);
            for (const column of exact.unread) unreadMembers.push(`${o.name}.${column}`);
            return exact.createSql;
          })(),
          engine,
          transactional: o.transactional,
          columns: dataColumns.map(({ period: _period, ...col }) => col),
          primaryKey: primaryKeys.get(o.name) ?? [],
          ...(o.autoIncrement !== undefined ? { autoIncrement: o.autoIncrement } : {}),
          ...(o.systemVersioned ? { systemVersioned: true } : {}),
          references: references.get(o.name) ?? [],
          triggers: triggers.get(o.name) ?? [],
          ...(o.collation ? { collation: o.collation, charset: o.collation.split('_')[0] as string } : {}),
        };
        const descriptor: CollectionDescriptor = { name: o.name, kind: TABLE_KIND, definition: { ...definition } };
        if (isRemote) {
          remote.push(`${o.name} (${engine})`);
        } else {
          descriptor.dataFormat = MYSQL_TSV;
          if (o.dataBytes !== undefined) descriptor.estimatedBytes = o.dataBytes;
          if (o.rows !== undefined) descriptor.estimatedRows = o.rows;
          if (!o.transactional && !this.lockedReads.has(o.name)) nonTransactional.push(`${o.name} (${engine})`);
        }
        const exprs = dataColumns.filter((col) => col.stored).map((col) => col.readAs ?? ident(col.name));
        // A table-locking engine (MyISAM, Aria, MEMORY) queues a new read behind a waiting writer;
        // with the tables locked for lockNonTransactional that writer waits for the backup: a
        // deadlock until the lock timeout. HIGH_PRIORITY lets the read go first.
        const select = `SELECT ${o.transactional ? '' : 'HIGH_PRIORITY '}${exprs.join(', ')} FROM ${ident(o.name)}${o.systemVersioned ? ' FOR SYSTEM_TIME ALL' : ''}`;
        const entry: TableEntry = { descriptor, object: o, select };
        const pk = definition.primaryKey;
        const pkColumn = pk.length === 1 ? cols.find((col) => col.name === pk[0]) : undefined;
        if (
          !isRemote &&
          o.transactional &&
          this.maxParallelReads > 1 &&
          pkColumn !== undefined &&
          INTEGER_TYPES.has(pkColumn.dataType) &&
          (o.dataBytes ?? 0) >= minBytes
        ) {
          // A system-versioned table's history shares primary keys across row versions; the
          // range still holds every version of its keys.
          const range = await readKeyRange(c, o.name, pkColumn.name);
          const bounds = range === null ? [] : segmentBounds(range.min, range.max, jobs * 2);
          if (bounds.length > 0) {
            entry.where = Array.from({ length: bounds.length + 1 }, (_, i) => segmentWhere(pkColumn.name, bounds, i));
            descriptor.segments = entry.where.length;
          }
        }
        this.tables.set(o.name, entry);
        out.push(descriptor);
      }
    } finally {
      if (sideSession) await endSession(await sideSession).catch(() => undefined);
    }
    throwIfAborted(signal);
    for (const o of selected.filter((x) => x.type === 'sequence')) {
      const s = await readSequence(c, o.name);
      const definition: MysqlSequenceDefinition = { createSql: s.createSql, nextValue: s.nextValue };
      out.push({ name: o.name, kind: SEQUENCE_KIND, definition: { ...definition } });
    }
    const allNames = new Set(objects.map((o) => o.name));
    const viewRefs = await readViewReferences(c, allNames);
    const views = viewOrder(selected.filter((x) => x.type === 'view').map((x) => x.name), viewRefs);
    const lost: string[] = [];
    for (const name of views) {
      let view: Awaited<ReturnType<typeof showCreateView>>;
      try {
        view = await showCreateView(c, name);
      } catch (err) {
        // Views are not locked: one dropped since the list was read is left out, said.
        if ((err as { code?: string }).code === 'ER_NO_SUCH_TABLE') {
          lost.push(name);
          continue;
        }
        throw err;
      }
      const definition: MysqlViewDefinition = {
        createSql: view.createSql,
        references: viewRefs.get(name) ?? [],
        ...(view.charset ? { charset: view.charset } : {}),
        ...(view.collation ? { collation: view.collation } : {}),
      };
      out.push({ name, kind: VIEW_KIND, definition: { ...definition } });
    }
    throwIfAborted(signal);
    const routines = await readRoutines(c);
    const routinesDefinition: MysqlRoutinesDefinition = { charset: charset.charset, collation: charset.collation, routines: routines.routines };
    out.push({ name: ROUTINES_COLLECTION, kind: ROUTINES_KIND, selectable: false, definition: { ...routinesDefinition } });
    if (this.options.roles) {
      const grants = await readGrants(c, this.options.rolesWithPasswords === true);
      // Password hashes are data (chunks), never the manifest's definition.
      this.passwordStatements = grants.passwordStatements;
      out.push({
        name: GRANTS_COLLECTION,
        kind: GRANTS_KIND,
        selectable: false,
        definition: { ...grants.definition },
        ...(grants.passwordStatements.length > 0 ? { dataFormat: MYSQL_GRANTS_SQL } : {}),
      });
    }
    this.collections = out;
    this.byName = new Map(out.map((d) => [d.name, d]));

    if (nonTransactional.length > 0) {
      this.warnings.push(
        `non-transactional table${nonTransactional.length === 1 ? '' : 's'} ${shortList(nonTransactional)} read without the snapshot's consistency: writes during the backup may show; use --lock-nontransactional (writers wait until they are read)`,
      );
    }
    if (remote.length > 0) {
      this.warnings.push(`data of ${shortList(remote)} is not backed up: it lives on another server or in a file; the definition${remote.length === 1 ? ' is' : 's are'} backed up and restored`);
    }
    if (unreadMembers.length > 0) {
      this.warnings.push(
        `ENUM/SET members of ${shortList(unreadMembers)} hold 4-byte characters that SHOW CREATE TABLE prints as "?", and the user "${this.settings.user}" may not read them exactly (it lacks CREATE TEMPORARY TABLES): a restore will refuse rows holding those members; GRANT CREATE TEMPORARY TABLES ON the database TO the user and back up again`,
      );
    }
    if (lost.length > 0) this.warnings.push(`view${lost.length === 1 ? '' : 's'} ${shortList(lost)} dropped while the backup started: not backed up`);
    if (routines.hidden.length > 0) {
      this.warnings.push(`${shortList(routines.hidden)} not backed up: the user "${this.settings.user}" may not read ${routines.hidden.length === 1 ? 'its' : 'their'} definition (be its definer, or GRANT SELECT ON mysql.proc)`);
    }
    if (routines.mayMiss) {
      this.warnings.push(
        `procedures, functions and events of other definers may be missing: the user "${this.settings.user}" sees only the routines it defines or may execute (GRANT SELECT ON mysql.proc TO it on MariaDB, SHOW_ROUTINE on MySQL, to back them all up); a restore with --on-conflict replace would drop the ones not backed up`,
      );
    }
    if (routines.packages.length > 0) this.warnings.push(`${shortList(routines.packages)} not backed up: cairn does not capture PACKAGEs yet`);
  }

  async listCollections(): Promise<CollectionDescriptor[]> {
    this.assertOpen();
    return structuredClone(this.collections);
  }

  readData(collection: CollectionDescriptor, signal?: AbortSignal, segment?: number): DataStream {
    this.assertOpen();
    const known = this.byName.get(collection.name);
    const table = known?.kind === collection.kind ? this.tables.get(collection.name) : undefined;
    if (known === undefined || known.kind !== collection.kind) {
      throw new SourceError(`MySQL ${collection.kind} "${collection.name}" is not in this snapshot.`);
    }
    if (known.kind === GRANTS_KIND && known.dataFormat === MYSQL_GRANTS_SQL) return linesStream(this.passwordStatements);
    if (table === undefined || table.descriptor.dataFormat === undefined) return emptyStream();
    let where = '';
    if (segment === undefined) {
      if (table.where !== undefined) throw new Error(`Internal error: table ${known.name} is read in ${table.where.length} segments; pass a segment.`);
    } else {
      const w = table.where?.[segment] ?? (segment === 0 && table.where === undefined ? '' : undefined);
      if (w === undefined) throw new Error(`Internal error: table ${known.name} has no segment ${segment}.`);
      where = w;
    }
    const pool = this.pool;
    if (pool === undefined) throw new SourceError('MySQL snapshot is not open.');
    const underLock = this.lockedReads.has(known.name);
    return pool.read(`${table.select}${where}`, known.name, signal, underLock ? () => this.lockedReadDone(known.name) : undefined);
  }

  /** A non-transactional table read under the lock is done: the lock goes when the last is. */
  private lockedReadDone(name: string): void {
    this.lockedReads.delete(name);
    if (this.lockedReads.size === 0) void this.releaseGlobalLock();
  }

  /** Ends every session and releases the global lock if still held; idempotent, never throws. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.releaseGlobalLock();
      if (this.pool !== undefined) await this.pool.close();
      await Promise.all(this.sessions.map((s) => endSession(s)));
    })();
    return this.closing;
  }

  private assertOpen(): void {
    if (this.closing !== undefined) throw new SourceError('MySQL snapshot is closed.');
  }
}

/**
 * A shared metadata lock on each table, held by the session's transaction: `(SELECT 1 FROM t
 * LIMIT 0) UNION ALL …`, in batches. Waits at most lock_wait_timeout for a DDL in progress.
 */
async function lockMetadata(conn: mysql.Connection, tables: string[]): Promise<void> {
  for (let i = 0; i < tables.length; i += LOCK_BATCH) {
    const batch = tables.slice(i, i + LOCK_BATCH);
    try {
      await conn.query(batch.map((t) => `(SELECT 1 FROM ${ident(t)} LIMIT 0)`).join(' UNION ALL '));
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ER_NO_SUCH_TABLE') {
        throw new SourceError(`A MySQL table was dropped while the backup started (${(err as { sqlMessage?: string }).sqlMessage ?? ''}); retry the backup.`, { cause: err });
      }
      if (code === 'ER_LOCK_WAIT_TIMEOUT') {
        throw new SourceError(
          `Cannot lock the tables for the backup: another session holds one of ${batch.length === 1 ? `table ${batch[0]}` : `${batch.length} tables (${shortList(batch)})`} exclusively (ALTER TABLE, DROP, LOCK TABLES … WRITE) and did not release it in time. Retry when it has finished, or wait longer with --lock-timeout (API: lockTimeoutSeconds).`,
          { cause: err },
        );
      }
      throw err;
    }
  }
}

/**
 * `work` applied to every item, each connection running one at a time, all of them at once;
 * the results in the items' order. Rejects with the first error; the other connections stop after
 * the statement they are running.
 */
async function inSessions<T, R>(conns: mysql.Connection[], items: readonly T[], work: (conn: mysql.Connection, item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  await Promise.all(
    conns.map(async (conn) => {
      while (!failed && next < items.length) {
        const i = next++;
        try {
          results[i] = await work(conn, items[i] as T);
        } catch (err) {
          failed = true;
          throw err;
        }
      }
    }),
  );
  return results;
}

/** Up to 5 names, then "and N more". */
function shortList(names: string[]): string {
  return names.slice(0, 5).join(', ') + (names.length > 5 ? ` and ${names.length - 5} more` : '');
}

function lockTimeoutText(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

/** `lines`, one per line (UTF-8): the `(users and grants)` data stream (MYSQL_GRANTS_SQL). Its rowCount is 0: statements are not rows. */
function linesStream(lines: readonly string[]): DataStream {
  return {
    rowCount: 0,
    async *[Symbol.asyncIterator]() {
      if (lines.length > 0) yield Buffer.from(`${lines.join('\n')}\n`, 'utf8');
    },
  };
}

/** The data of a collection that has none. */
function emptyStream(): DataStream {
  return {
    rowCount: 0,
    async *[Symbol.asyncIterator]() {
      /* no data */
    },
  };
}

