/**
 * Restoring into a database that exists: load into staging objects, then switch them in with
 * one short transaction; the switch is the only moment existing objects are locked.
 *
 * Load (committed transactions, no lock on any existing object): new supporting objects of the
 * archive (schemas, types, functions, … — existing ones are kept as they are: their entries are
 * skipped); each restored table, its owned sequences and each restored standalone sequence
 * under a staging name `<name>__cairn_<id>_<n>` in its schema (pre-data SQL rewritten, see
 * staging-plan.ts and staging.ts), marked with the staging comment (leftovers.ts) in the
 * transaction that creates it; a copy of each domain the archive gives a NOT VALID check that
 * the target has already (StagingPlan.domainSwaps), typing the staged columns; the data COPYed
 * in (`jobs` parallel sessions under pg_restore's settings, load.ts; partitions under a hash
 * partitioning that is not portable through their staged root, load.ts partitionRootLoads); indexes,
 * primary / unique / exclusion constraints (staging names too), check constraints, foreign keys
 * between restored tables and the attaching of restored partitions to restored parents.
 * Switch (one transaction, `lock_timeout` switchLockTimeoutMs, default 10 s): drop what is
 * overwritten (RESTRICT: dependents make it fail; cycles among the replaced dropped together),
 * swap the staged domain copies in, rename the staged tables, sequences, indexes
 * and constraints to their names, clear the marks, then run with the final names what is cheap:
 * defaults, views, materialized views, triggers, rules, policies, extended statistics,
 * comments, grants, attaching a partition to an existing parent, and foreign keys to existing
 * tables, added NOT VALID (on a partitioned table, which cannot have one, checked right there);
 * set sequences, refresh the materialized views that held data at backup (inside the switch,
 * so none shows unpopulated after the commit that was populated before, unless its refresh
 * failed or it reads a foreign table: then a warning names it), rename, COMMIT.
 * After the commit: VALIDATE CONSTRAINT for those foreign keys (SHARE UPDATE EXCLUSIVE, which
 * does not block writers; one that does not hold stays NOT VALID and is reported as an error
 * although the restore is in), then ANALYZE.
 * Any failure or abort before the switch commits drops every staging object and every new
 * supporting object created (best effort, leftovers.ts dropStagedObjects): the target is as it
 * was. A lock wait over the timeout fails the same way, with a clear error.
 *
 * Renamed collections are created under their source names and renamed in the switch; live
 * objects holding those names (a renamed copy restored beside its original) are moved aside for
 * the switch and given their names back at its end (beside.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import type pg from 'pg';
import { ConflictError, SourceError, throwIfAborted } from '../../core/errors.js';
import type { RestoreResult } from '../types.js';
import { quoteIdent, quoteLiteral } from './catalog.js';
import { connect } from './connection.js';
import { besideNames, giveBack, moveAside } from './beside.js';
import { dropReplaced, existingRelations, isDuplicateObject, runStep } from './conflicts.js';
import { createdRecord, dropStagedObjects, stagingComment, takeStagingLock, type StagedObjects } from './leftovers.js';
import { applyRenames, isAhead, loadParallel, partitionRootLoads, refreshMaterializedViews, setSequences } from './load.js';
import { display, qname, splitName, targetOf, tocSelection, type PlannedCollection, type QName, type RestoreRun } from './plan.js';
import { stagingPlan, type StagingPlan } from './staging-plan.js';
import { createdDomain, createdSchema, relKey } from './staging.js';
import { describedObject, droppedFkWarning, entryKey, filterToc, inboundFkWarning, listedName, listFile, type ScriptBlock } from './toc.js';
import { archiveScript } from './tools.js';
import { blockKey, movedToSwitch, replaceRoutine, routineSteps } from './routine-restore.js';

/** How long the switch into an existing database waits for a lock before giving up. */
export const SWITCH_LOCK_TIMEOUT_MS = 10_000;

/**
 * Restores `run` into the existing database the settings name (see the module comment);
 * `switchLockTimeoutMs` bounds the switch's lock waits. Returns the collections and rows
 * restored. Errors: ConflictError (something the restore creates exists, or dependents block an
 * overwrite), SourceError (a lock wait over the timeout, a lost lock session, a step that
 * failed; also after the commit when a foreign key to an existing table does not hold: the
 * restore is in, the key left NOT VALID), CorruptionError from the load, the signal's reason on
 * abort. Before the switch commits, every failure leaves the target as it was.
 */
export async function restoreIntoExistingDatabase(run: RestoreRun, switchLockTimeoutMs: number): Promise<RestoreResult> {
  const { settings, location, plan, toc, fkReferences, archive, tmp, jobs, options, lease, pgRestoreArgs } = run;
  const { signal, onConflict } = options;
  const db = settings.database;
  // This session holds the staging lock (on the target database) from before the first staging
  // object is created until they are switched in or dropped.
  const client = await connect(settings);
  const unwatch = lease(client);
  const created: StagedObjects = { tables: [], sequences: [], objects: [] };
  let switched = false;
  try {
    const restoreId = await takeStagingLock(client);
    // What the filter must know about the target: relations referenced by foreign keys and
    // partition parents.
    const asked = new Set<string>([...fkReferences.values()]);
    for (const c of plan.collections) if (c.table?.partitionOf) asked.add(c.table.partitionOf);
    // … and the tables whose foreign keys reference a restored table (named: filterToc inboundFks).
    for (const e of toc) if (e.desc === 'TABLE' || e.desc === 'FOREIGN TABLE') asked.add(display({ schema: e.schema, name: e.tag }));
    // As the TOC lists names (a line break shown as a space).
    const present = new Set([...(await existingRelations(client, [...asked].map(splitName)))].map(listedName));
    const filtered = filterToc(toc, tocSelection(plan, fkReferences, (q) => present.has(q)));
    const list = path.join(tmp, 'restore.list');
    fs.writeFileSync(list, listFile(filtered.kept), { mode: 0o600 });
    const encoding = plan.schemaDef.encoding;
    const pre = await archiveScript(settings, archive, list, 'pre-data', signal, pgRestoreArgs, encoding);
    const post = await archiveScript(settings, archive, list, 'post-data', signal, pgRestoreArgs, encoding);
    let late: ScriptBlock[] = [];
    if (filtered.lateAttach.length > 0) {
      const lateList = path.join(tmp, 'attach.list');
      fs.writeFileSync(lateList, listFile(filtered.lateAttach), { mode: 0o600 });
      late = await archiveScript(settings, archive, lateList, undefined, signal, pgRestoreArgs, encoding);
    }
    // This path runs the archive's SQL through a UTF-8 session (the server converts it to the
    // database's encoding): bytes that are no character of the archive's encoding (SQL_ASCII's
    // above 0x7F, LATIN5's …) would arrive changed. pg_restore into a new database keeps them.
    if (!pre.exact || !post.exact || (late.length > 0 && !(late as typeof pre).exact)) {
      throw new SourceError(
        `Cannot restore into the existing database ${location}: the backup's schema (names, defaults, function bodies…) holds bytes that are not characters of its ${encoding} encoding, which a restore into an existing database cannot carry unchanged. Nothing was changed. Restore into a new database (--to naming one that does not exist; it keeps every byte), then move the tables you need.`,
      );
    }
    throwIfAborted(signal);
    const staging = stagingPlan(plan, pre, post, filtered.collectionKeys, restoreId, await existingDomains(client, pre));
    // Routines selected by name: created, or replaced under overwrite, in the switch (routine-restore.ts).
    const routines = routineSteps(plan, toc, run.routinesInTarget ?? new Set(), onConflict);
    const toSwitch = (b: ScriptBlock): boolean => movedToSwitch(routines, b);
    const mark = stagingComment();

    // Load phase 1, one committed transaction: new supporting objects (types, functions,
    // schemas, …; existing ones are skipped) and the staging tables and sequences, marked.
    let skipped = new Set<string>();
    await runStep(settings, db, async () => {
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
              // Dropped with the other supporting objects should the restore not switch.
              if (step.domain !== undefined) pending.objects.push({ desc: 'DOMAIN', ...step.domain });
            } else if (toSwitch(b)) {
              // created or replaced in the switch
            } else if (await runOptionalEntry(client, b, skipped)) {
              // A schema's name as its statement spells it (its header shows a line break as a space).
              const name = (b.desc === 'SCHEMA' ? createdSchema(b.sql) : undefined) ?? (b.name as string);
              pending.objects.push({ desc: b.desc, schema: b.schema as string, name });
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
    // Partitions whose hash partitioning is not portable load through their (staging) root.
    const stagedName = (t: PlannedCollection): QName => ({ schema: t.source.schema, name: staging.tableName(t) });
    const routing = await partitionRootLoads(client, plan, stagedName);
    const warnings = [...routing.warnings, ...filtered.droppedFks.map(droppedFkWarning), ...filtered.inboundFks.map(inboundFkWarning)];
    const rows = await loadParallel(settings, db, plan, jobs, options, (t) => routing.into.get(t) ?? stagedName(t));

    // Load phase 3, one committed transaction: indexes, constraints and foreign keys between
    // staging tables, under staging names.
    throwIfAborted(signal);
    await runStep(settings, db, async () => {
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
    await options.beforeSwitch?.();
    options.onFinalizing?.();
    await runStep(settings, db, async () => {
      await client.query('BEGIN');
      try {
        await client.query(`SET LOCAL lock_timeout = ${quoteLiteral(`${Math.max(1, Math.round(switchLockTimeoutMs))}ms`)}`);
        const inPlace = onConflict === 'overwrite' ? await dropReplaced(client, plan) : new Set<string>();
        const keptInPlace: InPlaceSequence[] = [];
        // Live objects holding names a renamed copy is created under step aside until the end (beside.ts).
        const aside = await moveAside(client, besideNames(plan, post));
        for (const swap of staging.domainSwaps) await swapDomain(client, swap);
        for (const r of staging.renames) {
          if (r.sequence !== undefined && inPlace.has(display(r.sequence.final))) {
            keptInPlace.push(await replaceSequenceInPlace(client, r.sequence.staging, r.sequence.final, !pgRestoreArgs.includes('--no-owner')));
          } else await client.query(r.sql);
          if (r.clearComment) await client.query(r.clearComment);
        }
        for (const blocks of [pre, post, late]) {
          for (const b of blocks) {
            throwIfAborted(signal);
            if (b.desc !== undefined && (!staging.load.has(b) || toSwitch(b))) {
              const sql = staging.switchSql.get(b) ?? b.sql;
              const replacing = routines.replace.get(blockKey(b) ?? '');
              if (replacing !== undefined) await replaceRoutine(client, b, replacing);
              else if (filtered.collectionKeys.has(entryKey(b.desc, b.schema as string, b.name as string)) && !isSkippedDescription(b, skipped)) {
                if (sql) await client.query(sql);
              } else {
                await runOptionalEntry(client, { ...b, sql }, skipped);
              }
            }
            if (b.settings) await client.query(b.settings.replace(/^SET lock_timeout = [^\n]*$/gm, ''));
          }
        }
        await setSequences(client, plan, signal);
        warnings.push(...(await keepAhead(client, keptInPlace)));
        warnings.push(...(await refreshMaterializedViews(client, plan, true, signal)));
        await applyRenames(client, plan, signal);
        warnings.push(...(await giveBack(client, aside)));
        throwIfAborted(signal);
        await client.query('COMMIT');
        switched = true;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        if ((err as { code?: string }).code === '55P03') {
          throw new SourceError(
            `Cannot switch the restored objects into ${location}: another session held a lock on an object the switch replaces or references for more than ${switchLockTimeoutMs / 1000} s (${(err as Error).message}). Nothing was changed; restore again when the database is quieter.`,
            { cause: err },
          );
        }
        if ((err as { code?: string }).code === '23514' && /^partition constraint of relation/.test((err as Error).message)) {
          throw new SourceError(
            `Cannot attach a restored partition in ${location}: ${(err as Error).message.replace(/\.$/, '')}: some of its rows belong in another partition in this database (a hash partitioning whose hash differs between databases, such as one on an enum). Nothing was changed; restore the partitioned table with its partitions (they are then loaded through it), or into a new database.`,
            { cause: err },
          );
        }
        throw err;
      }
    });

    // After the commit: foreign keys to existing tables were added NOT VALID; validating
    // takes SHARE UPDATE EXCLUSIVE, which does not block writers. Then statistics.
    const invalid: string[] = [];
    for (const fk of staging.validate.map((v) => ({ ...v, table: targetOf(plan, v.table) }))) {
      try {
        await client.query(`ALTER TABLE ${qname(fk.table)} VALIDATE CONSTRAINT ${quoteIdent(fk.constraint)}`);
      } catch (err) {
        invalid.push(`"${fk.constraint}" on "${display(fk.table)}" (${(err as Error).message.replace(/\.$/, '')})`);
      }
    }
    for (const c of plan.collections) {
      if (c.relkind === 'r' || c.relkind === 'p' || c.relkind === 'm') await client.query(`ANALYZE ${qname(c.target)}`).catch(() => undefined);
    }
    if (invalid.length > 0) {
      const one = invalid.length === 1;
      throw new SourceError(
        `The restore into ${location} was committed, but ${one ? 'the foreign key' : 'the foreign keys'} ${invalid.join('; ')} to existing tables ${one ? 'does' : 'do'} not hold for the restored rows: ${one ? 'it is' : 'they are'} left NOT VALID. Fix the rows, then run ALTER TABLE … VALIDATE CONSTRAINT.`,
      );
    }
    return { collections: plan.collections.length + plan.routines.length, rows, ...(warnings.length > 0 ? { warnings } : {}) };
  } finally {
    unwatch();
    // Dropped before the lock is let go (ending the session): never unowned and undropped.
    if (!switched) await dropStagedObjects(settings, created);
    await client.end().catch(() => undefined);
  }
}

/** relKey of the domains the pre-data script creates that exist in the target already. */
async function existingDomains(client: pg.Client, pre: ScriptBlock[]): Promise<Set<string>> {
  const domains = pre.flatMap((b) => (b.desc === 'DOMAIN' ? [createdDomain(b.sql)] : [])).filter((d) => d !== undefined);
  if (domains.length === 0) return new Set();
  const { rows } = await client.query<{ schema: string; name: string }>(
    `SELECT n.nspname AS schema, t.typname AS name FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
      WHERE t.typtype = 'd' AND (n.nspname, t.typname) IN (SELECT * FROM unnest($1::text[], $2::text[]))`,
    [domains.map((d) => d.schema), domains.map((d) => d.name)],
  );
  return new Set(rows.map((r) => relKey(r.schema, r.name)));
}

/**
 * In the switch: replaces the target's domain by the staged copy (StagingPlan.domainSwaps). When
 * objects the restore does not replace use the target's domain (it cannot be dropped), the
 * staged columns are retyped to it instead (a rewrite that checks every row against all of its
 * checks: rows that break a NOT VALID one fail the restore, naming the domain) and the copy dropped.
 */
async function swapDomain(client: pg.Client, swap: StagingPlan['domainSwaps'][number]): Promise<void> {
  const real = qname(swap);
  const copy = qname({ schema: swap.schema, name: swap.staging });
  await client.query('SAVEPOINT cairn_domain');
  try {
    await client.query(`DROP DOMAIN ${real} RESTRICT`);
    await client.query('RELEASE SAVEPOINT cairn_domain');
    await client.query(`ALTER DOMAIN ${copy} RENAME TO ${quoteIdent(swap.name)}`);
    return;
  } catch (err) {
    if ((err as { code?: string }).code !== '2BP01') throw err;
    await client.query('ROLLBACK TO SAVEPOINT cairn_domain');
  }
  const { rows } = await client.query<{ rel: string; col: string }>(
    `SELECT a.attrelid::regclass::text AS rel, a.attname AS col FROM pg_catalog.pg_attribute a
      WHERE a.atttypid = $1::regtype AND a.attnum > 0 AND NOT a.attisdropped`,
    [copy],
  );
  try {
    for (const r of rows) await client.query(`ALTER TABLE ${r.rel} ALTER COLUMN ${quoteIdent(r.col)} TYPE ${real}`);
  } catch (err) {
    throw new SourceError(
      `Cannot restore the columns of domain ${display(swap)}: the restored rows break a check the archive added NOT VALID, and objects that are not restored use the domain in the target, so it cannot be replaced (${(err as Error).message}). Nothing was changed; restore into a new database, or drop those objects' use of the domain first.`,
      { cause: err },
    );
  }
  await client.query(`DROP DOMAIN ${copy} RESTRICT`);
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
    if (!isDuplicateObject(err)) throw err;
    await client.query('ROLLBACK TO SAVEPOINT cairn_entry');
    skipped.add(entryKey(b.desc, b.schema as string, b.name as string));
    return false;
  }
}

/**
 * Overwrite of a standalone sequence that objects this restore leaves alone depend on (a default
 * of a table already there): DROP would take them with it, so the sequence is kept and given the
 * staged one's definition (type, increment, bounds, start, cache, cycle; a column of a table left
 * alone that owns it keeps it) and, with `owner`, its owner; the staged one is dropped. Its value is set with
 * the others (setSequences), then moved back to where it was when that was ahead (keepAhead): a
 * table left alone draws from it. Its comment and grants come from the archive's entries, as
 * for a replaced one; grants the target had stay. Returns its state before. Errors:
 * ConflictError when its value lies outside the backup's bounds (nothing changed).
 */
async function replaceSequenceInPlace(client: pg.Client, staged: QName, final: QName, owner: boolean): Promise<InPlaceSequence> {
  const { rows } = await client.query<{ type: string; inc: string; min: string; max: string; start: string; cache: string; cycle: boolean; owner: string }>(
    `SELECT pg_catalog.format_type(s.seqtypid, NULL) AS type, s.seqincrement::text AS inc, s.seqmin::text AS min, s.seqmax::text AS max,
            s.seqstart::text AS start, s.seqcache::text AS cache, s.seqcycle AS cycle, pg_catalog.pg_get_userbyid(c.relowner) AS owner
       FROM pg_catalog.pg_sequence s JOIN pg_catalog.pg_class c ON c.oid = s.seqrelid WHERE s.seqrelid = pg_catalog.to_regclass($1)`,
    [qname(staged)],
  );
  const d = rows[0];
  if (d === undefined) throw new SourceError(`The staged sequence ${display(staged)} is missing; nothing was changed.`);
  const now = (await client.query<{ last: string; called: boolean }>(`SELECT last_value::text AS last, is_called AS called FROM ${qname(final)}`)).rows[0];
  if (now === undefined) throw new SourceError(`The sequence ${display(final)} is missing; nothing was changed.`);
  if (BigInt(now.last) < BigInt(d.min) || BigInt(now.last) > BigInt(d.max)) {
    throw new ConflictError(
      `Cannot replace sequence "${display(final)}": tables this restore leaves alone draw from it, so it is replaced in place, but its value ${now.last} lies outside the backup's bounds (${d.min} … ${d.max}). Nothing was changed. Restore those tables too, or --exclude the sequence.`,
    );
  }
  await client.query(
    `ALTER SEQUENCE ${qname(final)} AS ${d.type} INCREMENT BY ${d.inc} MINVALUE ${d.min} MAXVALUE ${d.max} START WITH ${d.start} CACHE ${d.cache} ${d.cycle ? 'CYCLE' : 'NO CYCLE'}`,
  );
  if (owner) await client.query(`ALTER SEQUENCE ${qname(final)} OWNER TO ${quoteIdent(d.owner)}`);
  await client.query(`DROP SEQUENCE ${qname(staged)}`);
  return { name: final, lastValue: now.last, isCalled: now.called, increment: BigInt(d.inc) };
}

interface InPlaceSequence {
  name: QName;
  lastValue: string;
  isCalled: boolean;
  increment: bigint;
}

/**
 * After setSequences: a sequence replaced in place whose value was ahead of the backup's goes
 * back to it (the tables left alone drawing from it have used those values). Returns warnings.
 */
async function keepAhead(client: pg.Client, sequences: InPlaceSequence[]): Promise<string[]> {
  const warnings: string[] = [];
  for (const s of sequences) {
    const set = (await client.query<{ last: string; called: boolean }>(`SELECT last_value::text AS last, is_called AS called FROM ${qname(s.name)}`)).rows[0];
    if (set === undefined || !isAhead(s, { lastValue: set.last, isCalled: set.called }, s.increment)) continue;
    await client.query('SELECT pg_catalog.setval($1::regclass, $2::bigint, $3::boolean)', [qname(s.name), s.lastValue, s.isCalled]);
    warnings.push(`sequence ${display(s.name)} kept at ${s.lastValue}, ahead of the backup's ${set.last}: tables this restore leaves alone draw from it`);
  }
  return warnings;
}
