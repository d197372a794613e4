/**
 * Restoring into a database that does not exist yet, all-or-nothing.
 *
 * Everything is built in a staging database `<target>__cairn_<id>` (pre-data with pg_restore,
 * data with parallel COPY sessions, post-data with `pg_restore -j`, sequences, materialized view
 * refresh, renames, ANALYZE), then switched in with `ALTER DATABASE … RENAME TO <target>` from
 * the maintenance database "postgres". The target appears complete or not at all; any failure or
 * abort drops the staging database (`DROP DATABASE … WITH (FORCE)`). If the target appeared
 * meanwhile, the switch fails: the staging database is dropped and a ConflictError thrown.
 *
 * The new database is owned by the connecting user and created with the source's encoding,
 * LC_COLLATE, LC_CTYPE, locale provider and ICU / builtin locale (databaseOptions);
 * database-level properties (ALTER DATABASE … SET, its comment and grants) are not restored.
 */
import fs from 'node:fs';
import path from 'node:path';
import type pg from 'pg';
import { ConflictError, CorruptionError, SourceError, throwIfAborted } from '../../core/errors.js';
import type { RestoreResult } from '../types.js';
import { quoteIdent, quoteLiteral } from './catalog.js';
import { connect, pgError, pgLocation, type PgConnectionSettings } from './connection.js';
import { runStep } from './conflicts.js';
import { stagingComment, takeStagingLock } from './leftovers.js';
import { analyzeParallel, applyRenames, loadParallel, partitionRootLoads, postDataPasses, refreshMaterializedViews, setSequences } from './load.js';
import { tocSelection, type Plan, type RestoreRun } from './plan.js';
import { EarlyPostData, earlyPostData } from './post-data.js';
import { stagingDatabaseName } from './staging.js';
import { droppedFkWarning, entryKey, filterToc, listFile } from './toc.js';
import { archiveScript, dbnameConninfo, runTool } from './tools.js';

/** The database sessions connect to for work on databases themselves (create, rename, drop; roles). */
export const MAINTENANCE_DB = 'postgres';

/** Runs `fn` with a session on the maintenance database, ended after. Errors: as connect's and fn's. */
export async function withMaintenance<T>(settings: PgConnectionSettings, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  return withClient(settings, MAINTENANCE_DB, fn);
}

/** Runs `fn` with a session on `database`, ended after. Errors: as connect's and fn's. */
async function withClient<T>(settings: PgConnectionSettings, database: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await connect(settings, database);
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * How a finished staging database takes the target's name, in the maintenance session `owner`
 * (which holds the staging lock). `prepare` runs before the point of no return (onFinalizing:
 * still cancellable), `switchIn` after it and returns warnings; either throws, leaving the
 * staging database under its name (it is dropped), when it cannot. Default: a rename that fails
 * when the target exists.
 */
export interface Switcher {
  prepare(owner: pg.Client): Promise<void>;
  switchIn(owner: pg.Client, staging: string): Promise<string[]>;
}

/**
 * Restores `run` into the database the settings name, which does not exist (see the module
 * comment). Returns the collections and rows restored. Errors: ConflictError when the target
 * appeared meanwhile, SourceError / CorruptionError from the steps (pg_restore, COPY), the
 * signal's reason on abort; in every case the staging database is dropped.
 */
export async function restoreIntoNewDatabase(run: RestoreRun, switcher?: Switcher): Promise<RestoreResult> {
  const { settings, plan, toc, fkReferences, archive, tmp, jobs, options, lease, pgRestoreArgs } = run;
  const { signal } = options;
  const target = settings.database;
  const filtered = filterToc(toc, tocSelection(plan, fkReferences, () => false));
  const list = path.join(tmp, 'restore.list');
  fs.writeFileSync(list, listFile(filtered.kept), { mode: 0o600 });

  // One maintenance session for the whole restore: it holds the staging lock, creates the
  // staging database (so that, killed during CREATE DATABASE, the lock is held until the
  // database exists, and a later restore sees both), switches it in or drops it, and only
  // then lets the lock go.
  const owner = await connect(settings, MAINTENANCE_DB);
  const unwatch = lease(owner);
  let staging: string | undefined;
  try {
    const id = await takeStagingLock(owner);
    staging = stagingDatabaseName(target, id);
    const serverVersion = Number((await owner.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0]?.v ?? 0);
    const createOptions = databaseOptions(plan.schemaDef, serverVersion, target);
    try {
      await owner.query(`CREATE DATABASE ${quoteIdent(staging)} TEMPLATE template0 ${createOptions}`);
    } catch (err) {
      staging = undefined;
      throw pgError(err, settings, MAINTENANCE_DB);
    }
    // For people looking at the server: which host and process this database is staging for.
    await owner.query(`COMMENT ON DATABASE ${quoteIdent(staging)} IS ${quoteLiteral(stagingComment())}`).catch(() => undefined);
    const conninfo = dbnameConninfo(staging);
    const what = `Cannot restore into ${pgLocation(settings, staging)} (staging for ${target})`;
    const database = staging;
    const pgRestore = (args: string[]) => runTool('pg_restore', [...pgRestoreArgs, ...args], { settings, database, signal, what });
    throwIfAborted(signal);
    await pgRestore(['--section=pre-data', '-L', list, '--exit-on-error', '--no-password', '-d', conninfo, archive]);
    // Partitions whose hash partitioning is not portable load through their root (load.ts).
    const routing = await withClient(settings, staging, (c) => partitionRootLoads(c, plan, (t) => t.source));
    // The manifest (untrusted) names each configuration table: only a table an extension of this
    // database registered (pg_extension.extconfig) takes rows that way.
    await withClient(settings, staging, (c) => checkExtensionTables(c, plan));
    const warnings = [...routing.warnings, ...filtered.droppedFks.map(droppedFkWarning)];
    // The extensions' configuration tables exist now (CREATE EXTENSION, pre-data) with the
    // extension's own rows: the user's rows go in beside them, as pg_restore loads them.
    // Index entries that also alter their table (CLUSTER ON, REPLICA IDENTITY USING INDEX) take
    // a stronger lock while holding CREATE INDEX's: two of them on one table, run in parallel,
    // deadlock (pg_restore -j does too). They run one by one first; the rest in passes.
    const post = await archiveScript(settings, archive, list, 'post-data', signal, [], plan.schemaDef.encoding);
    const upgrading = new Set(post.filter((b) => b.desc === 'INDEX' && /\bALTER TABLE\b/.test(b.sql)).map((b) => entryKey('INDEX', b.schema as string, b.name as string)));
    const serial = filtered.kept.filter((e) => upgrading.has(entryKey(e.desc, e.schema, e.tag)));
    // A large table's indexes and keys are built (and it is analyzed) as soon as it is loaded,
    // while other tables still load (post-data.ts); the rest of post-data follows the load.
    const postKeys = new Set(post.map((b) => entryKey(b.desc ?? '', b.schema ?? '', b.name ?? '')));
    const early = new EarlyPostData(
      earlyPostData(plan, filtered.kept, new Set(filtered.kept.filter((e) => postKeys.has(entryKey(e.desc, e.schema, e.tag)))), new Set(serial), (t) => routing.into.has(t)),
      tmp,
      (args, s) => runTool('pg_restore', [...pgRestoreArgs, ...args, '-d', conninfo, archive], { settings, database, signal: s, what }),
      run.earlyPostDataMinBytes,
    );
    const rows = await loadParallel(settings, staging, { ...plan, collections: [...plan.collections, ...plan.extensionTables] }, jobs, options, (t) => routing.into.get(t) ?? t.source, jobs > 1 ? early : undefined);
    throwIfAborted(signal);
    const rest = filtered.kept.filter((e) => !early.done.has(e));
    for (const [k, { entries, jobs: j }] of postDataPasses(rest, jobs, serial).entries()) {
      const passList = path.join(tmp, `post-${k}.list`);
      fs.writeFileSync(passList, listFile(entries), { mode: 0o600 });
      await pgRestore(['--section=post-data', '-L', passList, '-j', String(j), '--exit-on-error', '--no-password', '-d', conninfo, archive]);
    }
    const client = await connect(settings, staging);
    try {
      await runStep(settings, staging, async () => {
        await setSequences(client, plan, signal);
        for (const q of plan.schemaDef.extensionSequences ?? []) {
          await client.query('SELECT pg_catalog.setval($1::regclass, $2::bigint, $3::boolean)', [`${quoteIdent(q.schema)}.${quoteIdent(q.name)}`, q.lastValue, q.isCalled]);
        }
        warnings.push(...(await refreshMaterializedViews(client, plan, false, signal)));
        await applyRenames(client, plan, signal);
      });
    } finally {
      await client.end().catch(() => undefined);
    }
    const ready = staging;
    await runStep(settings, staging, () => analyzeParallel(settings, ready, jobs, signal, early.analyzed));
    if (switcher) await switcher.prepare(owner);
    throwIfAborted(signal);
    await options.beforeSwitch?.();
    options.onFinalizing?.();
    if (switcher) warnings.push(...(await switcher.switchIn(owner, staging)));
    else await switchIn(settings, owner, staging, target);
    staging = undefined;
    return { collections: plan.collections.length + plan.routines.length, rows, ...(warnings.length > 0 ? { warnings } : {}) };
  } finally {
    unwatch();
    // Dropped before the lock is let go (ending the session): never unowned and undropped.
    if (staging !== undefined) await dropStaging(settings, owner, staging);
    await owner.end().catch(() => undefined);
  }
}

/**
 * A manifest's text (untrusted) as an escape-string literal: quotes and backslashes escaped, so
 * it reads the same whatever the session's standard_conforming_strings.
 */
function escapedLiteral(value: string): string {
  if (value.includes('\u0000')) throw new SourceError('The backup records a locale or encoding name holding a NUL byte: the manifest was altered or damaged; nothing was changed.');
  return `E'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/**
 * The CREATE DATABASE options that give the new database the source's encoding, LC_COLLATE,
 * LC_CTYPE and default collation provider with its locale (and ICU rules): the default
 * collation decides sort order and which partition a text key belongs to, so a database made
 * with another would sort differently or refuse rows. The recorded provider is named (libc too)
 * on PostgreSQL 15+, where template0 may have been initialised with ICU. The collation version
 * is the target's own: the restore builds every index with the target's library. Errors:
 * SourceError when the target server is too old for the source's provider.
 */

export function databaseOptions(def: Plan['schemaDef'], serverVersion: number, target: string): string {
  const parts = [`ENCODING ${escapedLiteral(def.encoding)}`, `LC_COLLATE ${escapedLiteral(def.collate)}`, `LC_CTYPE ${escapedLiteral(def.ctype)}`];
  const provider = def.localeProvider ?? 'libc';
  const needs = provider === 'builtin' ? 170000 : provider === 'icu' ? 150000 : 0;
  if (serverVersion < needs) {
    throw new SourceError(
      `Cannot create the database "${target}": the backup's database uses the ${provider} locale provider${def.locale ? ` (locale ${def.locale})` : ''}, which needs PostgreSQL ${needs / 10000} or later; the target server is ${Math.floor(serverVersion / 10000)}. Restore on a newer server.`,
    );
  }
  // A backup that did not record its provider (made before it was recorded) gets template0's, as before.
  if (serverVersion >= 150000 && def.localeProvider !== undefined) parts.push(`LOCALE_PROVIDER ${provider}`);
  if (provider === 'icu' && def.locale !== undefined) parts.push(`ICU_LOCALE ${escapedLiteral(def.locale)}`);
  if (provider === 'icu' && def.icuRules !== undefined) {
    if (serverVersion < 160000) {
      throw new SourceError(`Cannot create the database "${target}": the backup's database has ICU rules, which need PostgreSQL 16 or later. Restore on a newer server.`);
    }
    parts.push(`ICU_RULES ${escapedLiteral(def.icuRules)}`);
  }
  if (provider === 'builtin' && def.locale !== undefined) parts.push(`BUILTIN_LOCALE ${escapedLiteral(def.locale)}`);
  return parts.join(' ');
}

/** Renames the staging database to the target name, retrying while a last session closes. */
async function switchIn(settings: PgConnectionSettings, c: pg.Client, staging: string, target: string): Promise<void> {
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
          `The database "${target}" was created on ${settings.host}:${settings.port} while the restore was running; nothing was changed. Restore again to merge into it, or choose another database name.`,
        );
      }
      if (code === '55006' && attempt < 50) {
        // Some session (autovacuum, a late worker) is still on the staging database.
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      throw pgError(err, settings, MAINTENANCE_DB);
    }
  }
}

/** Drops the staging database: in the owner session, or a new one when that one is broken. */
async function dropStaging(settings: PgConnectionSettings, owner: pg.Client, staging: string): Promise<void> {
  const sql = `DROP DATABASE IF EXISTS ${quoteIdent(staging)} WITH (FORCE)`;
  try {
    await owner.query(sql);
  } catch {
    try {
      await withMaintenance(settings, (c) => c.query(sql));
    } catch {
      /* best effort: the original error matters more; a later restore drops it (its lock is free) */
    }
  }
}

/**
 * Every extension configuration table of the plan (kind "extension_table"), and every
 * configuration sequence whose value it sets, is one an extension created in the staging
 * database registered with pg_extension_config_dump. Errors:
 * CorruptionError naming the first that is not (nothing is loaded).
 */
async function checkExtensionTables(client: pg.Client, plan: Plan): Promise<void> {
  const sequences = plan.schemaDef.extensionSequences ?? [];
  if (plan.extensionTables.length === 0 && sequences.length === 0) return;
  const { rows } = await client.query<{ name: string }>(
    `SELECT n.nspname || E'\\x01' || c.relname AS name FROM pg_catalog.pg_extension e CROSS JOIN LATERAL unnest(e.extconfig) AS u(reloid)
       JOIN pg_catalog.pg_class c ON c.oid = u.reloid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace`,
  );
  const registered = new Set(rows.map((r) => r.name));
  for (const t of plan.extensionTables) {
    if (!registered.has(`${t.source.schema}\u0001${t.source.name}`)) {
      throw new CorruptionError(
        `Refusing to restore: the backup says "${t.item.entry.name}" is an extension's configuration table, but no extension of the restored database registered it. The backup was altered or damaged; nothing was changed.`,
        { objects: [], collections: [t.item.entry.name] },
      );
    }
  }
  for (const q of sequences) {
    if (!registered.has(`${q.schema}\u0001${q.name}`)) {
      throw new CorruptionError(
        `Refusing to restore: the backup sets the value of "${q.schema}.${q.name}" as an extension's configuration sequence, but no extension of the restored database registered it. The backup was altered or damaged; nothing was changed.`,
        { objects: [], collections: [] },
      );
    }
  }
}
