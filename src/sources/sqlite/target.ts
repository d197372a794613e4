/**
 * SQLite restore target: the coordinator of a restore (SqliteTarget). The steps live in their
 * own modules:
 * - plan.ts: the restore items checked (manifest definitions as hostile input) and turned into
 *   the SQL each table or view runs in the target, renames applied; checkSqliteCollections;
 * - conflicts.ts: what in the target stands in the way (the "fail" / "overwrite" policies);
 * - load.ts: the staging file loaded from the streams, and the copy from it into an existing
 *   target; staging.ts: the staging file's name and mode, and the cleanup after killed
 *   restores;
 * - replace.ts: `--on-conflict replace`, a new file renamed over the existing one;
 * - files.ts: the fsyncs and link checks of putting a new target in place; errors.ts: SQLite's
 *   errors as SourceError.
 *
 * A restore never writes into the target until every byte of every collection has been read,
 * verified and loaded: all data goes first into a staging file next to the target
 * (".<basename>.cairn-restore-<owner>-<random>", journal and fsync off: it is thrown away on
 * failure; see staging.ts for what removes the file of a restore killed outright).
 * Then it is switched in:
 * - target file missing: the staging file is fsynced and linked/renamed into place, and the
 *   directory fsynced, so the target appears complete or not at all;
 * - target file exists: one `BEGIN IMMEDIATE` transaction on the target attaches the staging
 *   file, drops what is being overwritten, recreates each table from its original SQL (renamed
 *   when asked), copies the rows across (keeping rowids), then indexes, virtual tables (their
 *   shadow rows copied: virtual.ts), AUTOINCREMENT counters, triggers, views, the database's
 *   properties (database.ts) and, last, definitions that name application collations or
 *   functions put back as written (app-names.ts), and commits. Foreign-key enforcement is off during the switch.
 * What the restore did differently from a plain load comes back as RestoreResult.warnings
 * (restore-warnings.ts): stand-ins for application collations and functions with the REINDEX
 * each affected index needs, properties an existing file keeps, text converted for UTF-16.
 * Any failure or abort before the switch leaves the target byte-identical; a failure during the
 * switch rolls the transaction back. An AbortSignal is honoured until the switch starts.
 * cairn's own server catalog (PRAGMA application_id, see catalog-mark.ts) is never written: the
 * opened target is checked in check() and again under the switch's write lock, whatever path
 * (symbolic or hard link, a parent folder's link) led to it.
 *
 * Renames rewrite the table name in its CREATE TABLE (including self-references), in its
 * indexes and triggers (ON/FROM/INTO/UPDATE/JOIN/REFERENCES positions and qualified columns),
 * and give its indexes and triggers new names (old table name replaced, or the new table name
 * prefixed) since those names are database-wide. A renamed view only gets its own name changed.
 */
import fs from 'node:fs';
import path from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import Database from './driver.js';
import { ConflictError, NotFoundError, SourceError, UsageError, throwIfAborted } from '../../core/errors.js';
import type { ConflictPolicy, RestoreItem, RestoreOptions, RestoreResult, RestoreTarget } from '../types.js';
import { quoteIdent, SQLITE_KIND } from './sql.js';
import { foldName } from './naming.js';
import { sqliteLocation } from './connection.js';
import { removeAbandonedStaging, removeStagingFile, stagingPath } from './staging.js';
import { explainOpenFailure, refuseProtectedFile, refuseServerCatalog } from './catalog-mark.js';
import { Pacer } from '../pace.js';
import { databaseOf, planItems, statNames, type Planned, type PlannedTable } from './plan.js';
import { applyDatabase, databaseConflicts, readStatRows, type PlannedDatabase, type StatRow } from './database.js';
import { findConflicts, missingTriggerTargets, readExisting } from './conflicts.js';
import { copyFromStaging, copyShadowsFromStaging, createIndex, createObject, createTrigger, finishStagingDefinitions, loadStaging, setSequence, STAGING_SCHEMA } from './load.js';
import { createVirtual, VIRTUAL_KIND } from './virtual.js';
import { appNameRewrites, knownFunctions, needsUncheckedLoad, restoreDefinitions } from './app-names.js';
import { propertyWarnings, readFileProperties, standInWarnings, type FileProperties } from './restore-warnings.js';
import { fsyncDir, fsyncFile, lexists } from './files.js';
import { sqliteError } from './errors.js';
import { replaceFile } from './replace.js';

/** How long opening the target waits for another connection's lock, in milliseconds. */
const BUSY_TIMEOUT_MS = 5000;

/**
 * Restores SQLite collections into the file at `file` (resolved to an absolute path), all or
 * nothing: see above. Errors: ConflictError (what is in the way, or two collections under one
 * name), CorruptionError (a damaged backup), SourceError (a file that cannot be opened or
 * written), ServerCatalogError (cairn's own catalog), or what throwIfAborted throws on abort.
 */
export class SqliteTarget implements RestoreTarget {
  readonly kind = SQLITE_KIND;
  readonly location: string;
  readonly path: string;

  constructor(file: string) {
    this.path = path.resolve(file);
    this.location = sqliteLocation(this.path);
  }

  /** `partial`: see RestoreOptions.partial (the file's user_version and application_id are then no conflict). */
  async check(items: RestoreItem[], onConflict: ConflictPolicy, partial = false): Promise<void> {
    const plan = planItems(items);
    const database = databaseOf(items);
    this.assertFolder();
    if (!fs.existsSync(this.path)) {
      this.assertTriggerTargets(plan, new Set());
      return;
    }
    const db = this.openTarget(true);
    try {
      // The whole file is replaced: nothing in it stands in the way.
      if (onConflict === 'replace') return refuseServerCatalog(db, this.path, 'restore');
      // Early, so that nothing of the catalog (its tables' columns) is quoted in a conflict;
      // checked again under the write lock before anything changes (switchIntoExisting).
      refuseServerCatalog(db, this.path, 'restore');
      this.assertNoConflicts(db, plan, onConflict, partial ? undefined : database);
    } finally {
      db.close();
    }
  }

  /**
   * The target's folder must exist: the staging file is created next to the target, and a restore
   * creates no folders (a mistyped path would otherwise grow a tree). Checked before anything is
   * written.
   */
  private assertFolder(): void {
    const dir = path.dirname(this.path);
    let stat: fs.Stats;
    try {
      stat = fs.statSync(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') {
        throw new NotFoundError(
          `The folder ${dir} does not exist, so ${this.path} cannot be created in it. Create the folder first (mkdir -p ${dir}) or restore to a file in an existing folder.`,
          { cause: err },
        );
      }
      throw new SourceError(`Cannot read the folder ${dir}: ${(err as Error).message}. Check its permissions.`, { cause: err });
    }
    if (!stat.isDirectory()) {
      throw new UsageError(`${dir} is not a folder, so ${this.path} cannot be created in it. Restore to a file in an existing folder.`);
    }
  }

  async restore(items: RestoreItem[], userOptions: RestoreOptions): Promise<RestoreResult> {
    throwIfAborted(userOptions.signal);
    this.assertFolder();
    // Staging files of restores killed outright (this folder only; never one that may be
    // alive), even when this restore is refused.
    removeAbandonedStaging(path.dirname(this.path));
    // Replace: an existing file is switched for a new one (replace.ts); a missing one is created.
    if (userOptions.onConflict === 'replace' && fs.existsSync(this.path)) {
      this.assertTriggerTargets(planItems(items), new Set());
      return replaceFile(this.path, items, userOptions);
    }
    const options: RestoreOptions = userOptions.onConflict === 'replace' ? { ...userOptions, onConflict: 'fail' } : userOptions;
    const { signal, onProgress, onConflict } = options;
    const partial = options.partial === true;
    await this.check(items, onConflict, partial);
    const plan = planItems(items);
    const database = databaseOf(items);
    // A backup without tables restores into an existing file as nothing to do (but its
    // user_version and application_id); a missing target is still created (empty), so that the
    // restore gives back what the backup holds.
    if (plan.length === 0 && database === undefined && fs.existsSync(this.path)) return { collections: 0, rows: 0 };
    const stats = database !== undefined ? await readStatRows(database) : [];

    const staging = stagingPath(this.path);
    let rows = 0;
    const warnings: string[] = [];
    try {
      // Over an existing file, the staging file takes its encoding: SQLite attaches only files of
      // the main file's encoding (and converts the text between them).
      const existing = fs.existsSync(this.path) ? this.properties() : undefined;
      rows = await loadStaging(staging, plan, signal, onProgress, database && { def: database.def, stats }, existing?.encoding, warnings);
      if (existing !== undefined && database !== undefined) warnings.push(...propertyWarnings(this.path, database.def, existing));
      throwIfAborted(signal);
      options.onFinalizing?.();
      if (existing !== undefined && !fs.existsSync(this.path)) finishStagingDefinitions(staging, plan);
      if (!(await this.linkIntoPlace(staging))) {
        await this.switchIntoExisting(staging, plan, onConflict, database, stats, partial);
      }
      // Read from the target, which now holds the definitions as written (a staging file for an
      // existing target kept the stand-ins).
      warnings.push(...standInWarnings(this.path, plan, knownFunctions()));
    } finally {
      removeStagingFile(staging);
    }
    return { collections: plan.length, rows, ...(warnings.length > 0 ? { warnings } : {}) };
  }

  /** The existing target's encoding, page size, auto_vacuum and journal mode, which a restore keeps. */
  private properties(): FileProperties {
    const db = this.openTarget(true);
    try {
      return readFileProperties(db);
    } finally {
      db.close();
    }
  }

  private openTarget(readonly: boolean): BetterSqlite3.Database {
    refuseProtectedFile(this.path, 'restore');
    let db: BetterSqlite3.Database | undefined;
    try {
      db = new Database(this.path, { readonly, fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
      db.defaultSafeIntegers(true);
      db.prepare('SELECT count(*) FROM main.sqlite_schema').get();
      return db;
    } catch (err) {
      db?.close();
      throw sqliteError(explainOpenFailure(err, this.path, 'restore'), `Cannot open restore target ${this.path}`);
    }
  }

  private assertNoConflicts(db: BetterSqlite3.Database, plan: Planned[], onConflict: ConflictPolicy, database: PlannedDatabase | undefined): void {
    const problems = findConflicts(db, plan, onConflict, this.path);
    problems.push(...missingTriggerTargets(plan, new Set(readExisting(db).keys())));
    if (database !== undefined && onConflict === 'fail') problems.push(...databaseConflicts(db, database.def, this.path));
    if (problems.length === 1) throw new ConflictError(problems[0] as string, { problems });
    if (problems.length > 1) {
      throw new ConflictError(
        `Cannot restore into ${this.path}: ${problems.length} conflicts:\n${problems.map((p) => `- ${p}`).join('\n')}`,
        { problems },
      );
    }
  }

  /** For a new file: the restored triggers write only into tables it will have. */
  private assertTriggerTargets(plan: Planned[], existing: Set<string>): void {
    const problems = missingTriggerTargets(plan, existing);
    if (problems.length === 1) throw new ConflictError(`Cannot restore into ${this.path}: ${problems[0] as string}`);
    if (problems.length > 1) throw new ConflictError(`Cannot restore into ${this.path}: ${problems.length} problems:\n${problems.map((p) => `- ${p}`).join('\n')}`);
  }

  /** Target missing: puts the staging file in place. Returns false when the target exists now. */
  private async linkIntoPlace(staging: string): Promise<boolean> {
    if (fs.existsSync(this.path)) return false;
    // In the thread pool: syncing the whole restored file can take seconds.
    await fsyncFile(staging);
    try {
      // link() never replaces an existing file: a target created meanwhile is not clobbered.
      fs.linkSync(staging, this.path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return false;
      if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'EXDEV' || code === 'ENOSYS') {
        // A file system without hard links: rename() would replace whatever is at the name now,
        // so anything there (a file, a link, a dangling link) goes the existing-file way, which
        // opens it and checks what it is. What remains between this lstat and the rename cannot
        // reach a file's contents: rename() replaces a directory entry (a link put there is
        // replaced, never followed), and a parent folder swapped meanwhile takes the staging
        // file's name away with it (same folder), so the rename fails.
        if (lexists(this.path)) return false;
        fs.renameSync(staging, this.path);
      } else {
        throw err;
      }
    }
    fsyncDir(path.dirname(this.path));
    return true;
  }

  private async switchIntoExisting(
    staging: string,
    plan: Planned[],
    onConflict: ConflictPolicy,
    database: PlannedDatabase | undefined,
    stats: StatRow[],
    partial: boolean,
  ): Promise<void> {
    const db = this.openTarget(false);
    try {
      // At once, before the staging file is attached (a parent folder swapped for the data
      // folder would otherwise make ATTACH look for it there); again under the write lock below.
      refuseServerCatalog(db, this.path, 'restore');
    } catch (err) {
      db.close();
      throw err;
    }
    const fk = Number(db.pragma('foreign_keys', { simple: true }));
    const rewrites = appNameRewrites(plan, knownFunctions());
    let attached = false;
    try {
      db.pragma('foreign_keys = OFF');
      // As in the staging file (load.ts): CHECKs calling application functions are not evaluated.
      if (needsUncheckedLoad(rewrites, knownFunctions())) db.pragma('ignore_check_constraints = ON');
      // Functions with side effects are refused inside the definitions created below.
      db.pragma('trusted_schema = OFF');
      db.prepare(`ATTACH DATABASE ? AS ${STAGING_SCHEMA}`).run(staging);
      attached = true;
      db.exec('BEGIN IMMEDIATE');
      try {
        // What was opened is what is written: a link swapped or made since check() (or since the
        // server checked the path) may lead to cairn's server catalog. Checked under the write
        // lock, before any change.
        refuseServerCatalog(db, this.path, 'restore');
        // Re-check under the write lock: the target may have changed since check().
        this.assertNoConflicts(db, plan, onConflict, partial ? undefined : database);
        const existing = readExisting(db);
        const replaced = plan.filter((p) => existing.has(foldName(p.name)));
        for (const p of replaced.filter((r) => r.kind === 'view')) db.exec(`DROP VIEW main.${quoteIdent(p.name)}`);
        for (const p of replaced.filter((r) => r.kind === 'table' || r.kind === VIRTUAL_KIND)) db.exec(`DROP TABLE main.${quoteIdent(p.name)}`);
        const tables = plan.filter((p): p is PlannedTable => p.kind === 'table');
        const pacer = new Pacer();
        for (const t of tables) {
          createObject(db, t);
          await copyFromStaging(db, t, pacer);
          for (const idx of t.indexes) createIndex(db, t, idx);
        }
        for (const v of plan) {
          if (v.kind !== VIRTUAL_KIND) continue;
          createVirtual(db, v.createSql, v.name, v.def, v.item.entry.name);
          copyShadowsFromStaging(db, v);
        }
        for (const t of tables) setSequence(db, 'main', t);
        for (const t of tables) for (const tr of t.triggers) createTrigger(db, t, tr);
        for (const v of plan) if (v.kind === 'view') createObject(db, v);
        for (const v of plan) if (v.kind === 'view') for (const tr of v.triggers) createTrigger(db, v, tr);
        if (database !== undefined) applyDatabase(db, 'main', database.def, stats, statNames(plan), !partial);
        // Last change: the definitions as written, application collations and functions included (app-names.ts).
        restoreDefinitions(db, rewrites);
        db.exec('COMMIT');
      } catch (err) {
        if (db.inTransaction) db.exec('ROLLBACK');
        throw err;
      }
    } catch (err) {
      throw sqliteError(err, `Cannot restore into ${this.path}`);
    } finally {
      try {
        if (attached) db.exec(`DETACH DATABASE ${STAGING_SCHEMA}`);
        db.pragma(`foreign_keys = ${fk ? 'ON' : 'OFF'}`);
        db.pragma('ignore_check_constraints = OFF');
      } finally {
        db.close();
      }
    }
  }
}
