/**
 * The MySQL/MariaDB restore target: the coordinator of a restore. The steps live in their own
 * modules:
 * - plan.ts: the items checked and sorted into a Plan (renames, views and triggers that read a
 *   renamed table refused before anything is written);
 * - conflicts.ts: what an existing target holds and what of it stands in the way (fail / overwrite);
 * - leftovers.ts: the staging database's name and lock, and the cleanup of killed restores';
 * - load.ts: the staging database filled (CREATE TABLE, sequences, parallel LOAD DATA LOCAL
 *   from the backup's streams, any server warning a failure) and the views, triggers and
 *   routines checked by creating them there;
 * - switch.ts: every statement of the switch prepared, then one RENAME TABLE into the target,
 *   then the views, triggers, routines and events;
 * - journal.ts: the switch journal, written before the target changes, from which a restore
 *   killed around its switch is finished (or undone) by the next restore to that target;
 * - grants-restore.ts: users and grants (--roles).
 *
 * Nothing is created in the target until the switch: a failure or an abort before it leaves the
 * target exactly as it was, and the staging database is dropped. A failure after it undoes it.
 * If the process is killed, the next restore to that target settles what it left: before the
 * switch, the target is as it was and the staging databases are dropped; after it, the restore
 * is finished from its journal (and says so in a warning).
 */
import os from 'node:os';
import type mysql from 'mysql2/promise';
import { CairnError, throwIfAborted, UsageError } from '../../core/errors.js';
import type { ConflictPolicy, RestoreItem, RestoreOptions, RestorePlanSummary, RestoreResult, RestoreTarget } from '../types.js';
import { ident, mysqlError, mysqlLocation, type MysqlSettings } from './connection.js';
import { assertNoConflicts, isEmpty, kindOf, orphanWarnings, readTargetState, type TargetState } from './conflicts.js';
import { MYSQL_KIND } from './format.js';
import { grantStatements } from './grants-restore.js';
import { logDatabase, writeJournal } from './journal.js';
import { OLD_SUFFIX, settleAbandoned, stagingMark, stagingName, takeStagingLock } from './leftovers.js';
import { createStagingObjects, loadData, validateInStaging } from './load.js';
import { outsideReferences, planItems, viewOutsideReferences, type Plan } from './plan.js';
import { close, exec, openSession, select, textLit } from './session.js';
import { prepareSwitch, runSwitch, settleSessions, type PreparedSwitch } from './switch.js';

/** Restores a backup of one MySQL/MariaDB database into the database the settings name (see the module comment). */
export class MysqlTarget implements RestoreTarget {
  readonly kind = MYSQL_KIND;
  readonly location: string;

  constructor(readonly settings: MysqlSettings) {
    this.location = mysqlLocation(settings);
  }

  /** The conflict checks of restore() without writing anything (ConflictError, UsageError, CorruptionError). */
  async check(items: RestoreItem[], onConflict: ConflictPolicy): Promise<void> {
    const plan = planItems(items);
    const conn = await openSession(this.settings, '');
    try {
      const state = await this.targetState(conn, plan);
      if (state !== undefined) await assertNoConflicts(conn, this.settings.database, this.location, plan, state, onConflict);
      this.assertReferencesExist(plan, state, onConflict);
    } finally {
      await close(conn);
    }
  }

  async restore(items: RestoreItem[], options: RestoreOptions): Promise<RestoreResult> {
    throwIfAborted(options.signal);
    const plan = planItems(items);
    if (options.roles && plan.grants === undefined) {
      throw new UsageError(`--roles: this backup holds no users and grants (it was taken without --roles); restore without --roles, or back up with --roles first.`);
    }
    const target = this.settings.database;
    const jobs = Math.max(1, Math.floor(options.jobs ?? os.availableParallelism()));
    const staging = stagingName(target);
    let main: mysql.Connection | undefined;
    let stagingCreated = false;
    let prepared: PreparedSwitch | undefined;
    let settled: string[] = [];
    const warnings = [...plan.warnings];
    try {
      main = await openSession(this.settings, '');
      // A restore to this target that was killed: finished (or undone) first, and said so.
      settled = (await settleAbandoned(main, target, this.location)).messages;
      warnings.push(...settled);
      await takeStagingLock(main, staging);
      const state = await this.targetState(main, plan);
      if (state !== undefined) await assertNoConflicts(main, target, this.location, plan, state, options.onConflict);
      this.assertReferencesExist(plan, state, options.onConflict);
      // Refused early too (nothing loaded for nothing); checked again just before the switch.
      if (options.onConflict === 'replace' && state !== undefined && (options.sessions ?? 'refuse') === 'refuse') await settleSessions(main, target, this.location, 'refuse', 0);
      const summary = planSummary(plan, this.location, state, options.onConflict);
      const fallbackMode = String((await select(main, 'SELECT @@GLOBAL.sql_mode'))[0]?.[0] ?? '');
      const charset = plan.routines?.def.charset ?? plan.tables[0]?.def.charset;
      const collation = plan.routines?.def.collation ?? plan.tables[0]?.def.collation;
      // Read (and checked) before anything is written; run after the switch.
      const grants = options.roles && plan.grants ? await grantStatements(plan.grants, target, { noPrivileges: options.noPrivileges === true }) : [];
      throwIfAborted(options.signal);

      await exec(main, `CREATE DATABASE ${ident(staging)}${charset && /^\w+$/.test(charset) ? ` CHARACTER SET ${charset}` : ''}${collation && /^\w+$/.test(collation) ? ` COLLATE ${collation}` : ''}${stagingMark()}`);
      stagingCreated = true;
      await exec(main, `USE ${ident(staging)}`);
      await exec(main, `SET SESSION foreign_key_checks = 0`);
      const run = { settings: this.settings, plan, target, staging, jobs, options };
      await createStagingObjects(main, run);
      const rows = await loadData(run);
      throwIfAborted(options.signal);
      await validateInStaging(main, run, fallbackMode, new Set(viewOutsideReferences(plan).keys()));
      throwIfAborted(options.signal);

      // Every statement of the switch built and journaled before the target changes, so that
      // the window between the RENAME and the last object is as short as the server allows, and
      // a kill inside it is finished by the next restore (journal.ts).
      // Users are server-wide: created only once the restore has switched in, so that a restore
      // stopped before leaves the server as it was; one the server refuses is a warning.
      const switchRun = { plan, target, staging, options, fallbackMode, grants, ...(charset ? { charset } : {}), ...(collation ? { collation } : {}) };
      prepared = await prepareSwitch(main, switchRun, state, options.onConflict);
      await writeJournal(main, staging, prepared.journal);
      throwIfAborted(options.signal);

      await options.beforeSwitch?.();
      throwIfAborted(options.signal);
      // replace switches the whole database: other sessions using it are refused, awaited or ended.
      if (options.onConflict === 'replace' && state !== undefined) {
        warnings.push(...(await settleSessions(main, target, this.location, options.sessions ?? 'refuse', options.sessionsTimeoutMs ?? 5 * 60_000, options.signal)));
        throwIfAborted(options.signal);
      }
      options.onFinalizing?.();
      // The point of no return: no cancellation from here on.
      warnings.push(...(await runSwitch(main, switchRun, prepared)));
      // overwrite: rows of tables left in place that the restored ones no longer match (or the
      // other way round) are said, never silent. A check that fails is a warning too.
      if (options.onConflict === 'overwrite' && state !== undefined) {
        warnings.push(...(await orphanWarnings(main, target, new Set(plan.tables.map((t) => t.target))).catch((err: unknown) => [`the foreign keys between restored and kept tables could not be checked: ${(err as Error).message}`])));
      }
      for (const [table, refs] of outsideReferences(plan)) {
        if (state === undefined || refs.some((r) => !state.relations.has(r))) {
          warnings.push(`table "${table}" has foreign keys to ${refs.map((r) => `"${r}"`).join(', ')}, which this restore does not bring${state === undefined ? '' : ' and the target lacked'}: they were kept, unchecked.`);
        }
      }
      return {
        collections: plan.tables.length + plan.views.length + plan.sequences.length + (plan.routines ? 1 : 0) + (options.roles && plan.grants ? 1 : 0),
        rows,
        ...(warnings.length > 0 ? { warnings } : {}),
        plan: summary,
      };
    } catch (err) {
      const failure = err instanceof CairnError ? err : mysqlError(err, this.settings);
      // The settling of a killed restore happened even though this one failed: say so.
      if (settled.length > 0) failure.message = `${failure.message} (Before that, this restore ${settled.map((m) => m.replace(/\.$/, '')).join('; ')}.)`;
      throw failure;
    } finally {
      if (main !== undefined) {
        if (stagingCreated) {
          await exec(main, `DROP DATABASE IF EXISTS ${ident(staging)}`).catch(() => undefined);
          // A switch whose undo failed keeps its journal (and the tables it replaced): the next
          // restore to this target settles it. Otherwise nothing of the restore remains.
          if (prepared?.keepJournal !== true) {
            await exec(main, `DROP DATABASE IF EXISTS ${ident(staging + OLD_SUFFIX)}`).catch(() => undefined);
            await exec(main, `DROP DATABASE IF EXISTS ${ident(logDatabase(staging))}`).catch(() => undefined);
          }
        }
        await close(main);
      }
    }
  }

  /** What the target database holds, or undefined when it does not exist. */
  private async targetState(conn: mysql.Connection, plan: Plan): Promise<TargetState | undefined> {
    const exists = await select(conn, `SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ${textLit(this.settings.database)}`);
    return exists.length === 0 ? undefined : readTargetState(conn, this.settings.database, plan);
  }

  /**
   * A view selected without what it reads, which the target does not hold either (or will not
   * hold after a replace): refused before anything is written.
   */
  private assertReferencesExist(plan: Plan, state: TargetState | undefined, policy: ConflictPolicy): void {
    for (const [view, refs] of viewOutsideReferences(plan)) {
      const missing = refs.filter((r) => state === undefined || policy === 'replace' || !state.relations.has(r));
      if (missing.length > 0) {
        throw new UsageError(
          `View "${view}" reads ${missing.map((r) => `"${r}"`).join(', ')}, which this restore leaves out${state === undefined || policy === 'replace' ? '' : ' and the target does not hold'}. Include ${missing.length === 1 ? 'it' : 'them'} too, or exclude the view (--exclude ${JSON.stringify(view)}).`,
        );
      }
    }
  }
}

const KIND_ORDER = ['table', 'view', 'sequence', 'procedure', 'function', 'event'];
const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
const counted = (counts: Record<string, number>): string =>
  KIND_ORDER.filter((w) => (counts[w] ?? 0) > 0)
    .map((w) => plural(counts[w] as number, w))
    .join(', ');

/** What the restore creates where, worded as PostgreSQL's plan-summary.ts words it. */
export function planSummary(plan: Plan, location: string, state: TargetState | undefined, policy: ConflictPolicy): RestorePlanSummary {
  const database: RestorePlanSummary['database'] = state === undefined ? 'new' : policy === 'replace' ? 'replaced-whole' : isEmpty(state) ? 'existing-empty' : 'existing';
  const created: Record<string, number> = {};
  const replaced: Record<string, number> = {};
  const renamed: Record<string, string> = Object.fromEntries(plan.renamed);
  const add = (word: string, exists: boolean): void => {
    const into = exists && database !== 'replaced-whole' ? replaced : created;
    into[word] = (into[word] ?? 0) + 1;
  };
  for (const o of [...plan.tables, ...plan.views, ...plan.sequences]) add(kindOf(o.item.entry.kind === 'view' ? 'VIEW' : o.item.entry.kind === 'sequence' ? 'SEQUENCE' : 'BASE TABLE'), state?.relations.has(o.target) ?? false);
  for (const r of plan.routines?.def.routines ?? []) {
    const key = `${r.kind} ${r.name}`;
    // Identical in the target: left as it is, neither created nor replaced.
    if (policy !== 'replace' && state?.identical.has(key) === true) continue;
    add(r.kind.toLowerCase(), state?.routines.has(key) ?? false);
  }
  const where =
    database === 'new'
      ? `Into new database ${location}`
      : database === 'replaced-whole'
        ? `Into ${location}, replaced whole by the backup (--on-conflict replace)`
        : database === 'existing-empty'
          ? `Into existing database ${location} (empty: merged into it)`
          : `Into existing database ${location} (merged with what it holds)`;
  const parts = [
    Object.keys(created).length > 0 ? `created ${counted(created)}` : 'created nothing',
    ...(Object.keys(replaced).length > 0 ? [`replaced ${counted(replaced)}`] : []),
    ...(Object.keys(renamed).length > 0 ? [`renamed ${Object.entries(renamed).map(([a, b]) => `${a} → ${b}`).join(', ')}`] : []),
  ];
  return { database, location, created, replaced, renamed, summary: `${where}: ${parts.join('; ')}` };
}
