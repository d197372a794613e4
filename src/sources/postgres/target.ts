/**
 * PostgreSQL restore target: the coordinator of a restore. The steps live in their own modules:
 * - plan.ts: the restore items checked and parsed into a Plan; the archive's TOC checked;
 * - conflicts.ts: what in the target stands in the way (the "fail" / "overwrite" policies);
 * - new-database.ts: the target database does not exist (staging database, renamed in);
 * - existing-database.ts (with staging-plan.ts, staging.ts): the target database exists
 *   (staging objects, switched in by one short transaction);
 * - replace.ts: `--on-conflict replace`, a new database swapped in for the existing one;
 * - load.ts: the COPY loading of the data, sequences, materialized views, renames, ANALYZE;
 * - leftovers.ts: the staging lock, the marks, and the cleanup of what killed restores left.
 *
 * The "(schema)" collection is a `pg_dump --format=custom --schema-only` archive of the whole
 * source database. It is written to a private temporary folder (mode 0700, the file 0600), its
 * table of contents is filtered to the restore selection (see toc.ts), and pg_restore recreates
 * the objects from it; the table data is loaded with `COPY … FROM STDIN` from the collections'
 * streams. Both ways in are all-or-nothing: the target appears restored or stays as it was.
 *
 * Ownership and grants are restored as recorded: the roles must exist in the target (restore
 * them with `roles: true` from the "(roles)" collection, run before anything else, statement by
 * statement through the driver (never psql: see roles.ts) on the maintenance database; "already
 * exists" errors there are expected and ignored), unless `noOwner` / `noPrivileges` leave them
 * out (ownership.ts); a restore that fails on them says so.
 *
 * The schema archive is SQL that pg_restore runs as the target URL's role: cairn cannot make a
 * forged archive harmless by reading it. What it limits: entries of types pg_dump never writes
 * refuse the restore, subscriptions are never restored (checkedToc), the SQL runs in a staging
 * database or staging transaction of the restore, never through psql, and names from the
 * manifest are only ever quoted identifiers or parameters. Restore with a role that owns the
 * target database (CREATEDB for new ones) and is not a superuser: the archive can then do
 * nothing that role could not do.
 * Not restored: database-level properties (ALTER DATABASE … SET, the database's comment and
 * grants). Foreign tables are never restored. A foreign key is kept only when the table it
 * references is restored too or already exists in the target.
 *
 * Renames: objects are created under their source names, then renamed (and moved to another
 * schema, created if missing) at the end; indexes, constraints and owned sequences keep their
 * names. Into an existing database, live objects holding a renamed collection's source names
 * step aside for the switch (beside.ts): the copy restores beside its original.
 *
 * Before anything is written: a view selected without the relations it reads is refused
 * (view-needs.ts); the result says what was created where (plan-summary.ts).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { CairnError, CorruptionError, throwIfAborted, UsageError } from '../../core/errors.js';
import { ownerToken } from '../../core/owner.js';
import type { ConflictPolicy, RestoreItem, RestoreOptions, RestoreResult, RestoreTarget } from '../types.js';
import { connect, pgLocation, type PgConnectionSettings } from './connection.js';
import { assertNoConflicts, existingRelations } from './conflicts.js';
import { ROLES_COLLECTION } from './definitions.js';
import { restoreIntoExistingDatabase, SWITCH_LOCK_TIMEOUT_MS } from './existing-database.js';
import { dropAbandonedStaging, dropAbandonedStagingRelations, removeAbandonedTempDirs, TMP_PREFIX, watchSession } from './leftovers.js';
import { restoreIntoNewDatabase, withMaintenance } from './new-database.js';
import { isEmptyDatabase, planSummary } from './plan-summary.js';
import { assertViewsHaveTheirRelations } from './view-needs.js';
import { assertRoutinesHaveTheirRelations, routineOutcomes, routinesInTarget } from './routine-restore.js';
import { checkedToc, planItems, splitName, supportSequences, type RestoreRun } from './plan.js';
import { ownershipArgs, withOwnershipHint } from './ownership.js';
import { checkReplaceable, DEFAULT_SESSIONS_TIMEOUT_MS, replacingSwitch, type ReplacePolicy } from './replace.js';
import { roleStatements } from './roles.js';
import { EARLY_MIN_BYTES } from './post-data.js';
import { parseToc, readFkReferences } from './toc.js';
import { archiveScript, runTool } from './tools.js';

// Names the tests and older importers take from this module; they live where they belong now.
export { checkedToc, splitName } from './plan.js';
export { dropStatementForTest, isAbandonedStaging, processExists, removeAbandonedTempDirs, STAGING_MARK, STAGING_MAX_AGE_MS } from './leftovers.js';
export { SWITCH_LOCK_TIMEOUT_MS } from './existing-database.js';

/** Largest roles script accepted (pg_dumpall --roles-only of thousands of roles is a few MB). */
const MAX_ROLES_SCRIPT_BYTES = 64 * 1024 * 1024;

/** Restores a backup of one PostgreSQL database into the database the settings name (see the module comment). */
export class PostgresTarget implements RestoreTarget {
  readonly kind = 'postgres';
  readonly location: string;
  /** How long the switch into an existing database waits for a lock before giving up (changing nothing). */
  switchLockTimeoutMs = SWITCH_LOCK_TIMEOUT_MS;
  /** Into a new database: loaded tables' logical bytes that start building their indexes during the load (post-data.ts; tests lower it). */
  earlyPostDataMinBytes = EARLY_MIN_BYTES;

  constructor(readonly settings: PgConnectionSettings) {
    this.location = pgLocation(settings);
  }

  async check(items: RestoreItem[], onConflict: ConflictPolicy): Promise<void> {
    refuseServerBackup(items, this.location);
    const plan = planItems(items);
    // The whole database is replaced: nothing of the target stands in the way.
    if (onConflict === 'replace') return;
    const client = await this.connectTargetIfExists();
    if (client === undefined) return;
    try {
      await assertNoConflicts(client, plan, onConflict, this.location);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  async restore(items: RestoreItem[], userOptions: RestoreOptions): Promise<RestoreResult> {
    throwIfAborted(userOptions.signal);
    refuseServerBackup(items, this.location);
    const plan = planItems(items);
    if (userOptions.roles && !plan.rolesItem) {
      // Asked for roles the backup does not hold: say so rather than restore without them.
      throw new UsageError(
        `--roles: this backup holds no roles (it was taken without --roles); restore without --roles, or back up with --roles first.`,
      );
    }
    const jobs = Math.max(1, Math.floor(userOptions.jobs ?? os.availableParallelism()));
    removeAbandonedTempDirs();
    await withMaintenance(this.settings, dropAbandonedStaging).catch(() => undefined);
    const replacing: ReplacePolicy | undefined =
      userOptions.onConflict === 'replace'
        ? { sessions: userOptions.sessions ?? 'refuse', timeoutMs: userOptions.sessionsTimeoutMs ?? DEFAULT_SESSIONS_TIMEOUT_MS, signal: userOptions.signal }
        : undefined;
    if (replacing) await checkReplaceable(this.settings, replacing);
    // Replacing, the restoring session never stays on the target: it could not be renamed.
    const existing = replacing ? undefined : await this.connectTargetIfExists();
    let summary = planSummary(plan, this.location, replacing ? 'replaced-whole' : 'new', new Set());
    let differingRoutines = new Set<string>();
    if (existing !== undefined) {
      try {
        await dropAbandonedStagingRelations(existing);
        // The selected routines the target has, read once: for the conflicts, the plan and the switch.
        const routinesThere = await routinesInTarget(existing, plan);
        differingRoutines = routinesThere.differing;
        await assertNoConflicts(existing, plan, userOptions.onConflict, this.location, differingRoutines);
        // What the result reports as created where (read before anything is written).
        const replaced = await existingRelations(existing, plan.collections.map((c) => c.target));
        summary = planSummary(plan, this.location, (await isEmptyDatabase(existing)) ? 'existing-empty' : 'existing', replaced, routineOutcomes(plan, routinesThere));
        // Sequences the restore sets without selecting them: those that exist only move forward.
        plan.sequencesInTarget = await existingRelations(existing, supportSequences(plan).map((s) => s.state));
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
      // The listing is in the archive's (the source database's) encoding, as its names are.
      const encoding = plan.schemaDef.encoding;
      const listing = await runTool('pg_restore', ['-l', archive], { settings: this.settings, database: this.settings.database, signal, what: 'Cannot read the schema archive', encoding });
      const toc = checkedToc(parseToc(listing.stdout));
      const fkReferences = await readFkReferences(toc, tmp, (list) => archiveScript(this.settings, archive, list, undefined, signal, [], encoding));
      // A view selected without the relations it reads: refused here, before anything is written.
      await assertViewsHaveTheirRelations(
        plan,
        toc,
        tmp,
        (list) => archiveScript(this.settings, archive, list, undefined, signal, [], encoding),
        async (names) => {
          if (existing === undefined) return new Set<string>();
          const c = await connect(this.settings);
          try {
            return await existingRelations(c, names);
          } finally {
            await c.end().catch(() => undefined);
          }
        },
      );
      // A function or procedure selected without the relations whose row types it uses: the same.
      await assertRoutinesHaveTheirRelations(plan, async (names) => {
        if (existing === undefined) return new Set<string>();
        const c = await connect(this.settings);
        try {
          return await existingRelations(c, names.map(splitName));
        } finally {
          await c.end().catch(() => undefined);
        }
      });
      if (options.roles && plan.rolesItem) await this.restoreRoles(plan.rolesItem, signal);
      throwIfAborted(signal);
      const run: RestoreRun = { settings: this.settings, location: this.location, plan, toc, fkReferences, archive, tmp, jobs, options, pgRestoreArgs: ownershipArgs(options), lease, routinesInTarget: differingRoutines, earlyPostDataMinBytes: this.earlyPostDataMinBytes };
      // Replacing: a new database, swapped in for the target if it exists by then (replace.ts).
      const result = replacing
        ? await restoreIntoNewDatabase(run, replacingSwitch(this.settings, { ...replacing, signal }))
        : existing === undefined
          ? await restoreIntoNewDatabase(run)
          : await restoreIntoExistingDatabase(run, this.switchLockTimeoutMs);
      return { ...result, plan: summary };
    } catch (err) {
      throw withOwnershipHint(err, options);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }

  /** A session on the target database, or undefined when the database does not exist. */
  private async connectTargetIfExists(): Promise<pg.Client | undefined> {
    try {
      return await connect(this.settings);
    } catch (err) {
      if (err instanceof CairnError && (err.cause as { code?: string } | undefined)?.code === '3D000') return undefined;
      throw err;
    }
  }

  /** Runs the roles script of the "(roles)" collection on the maintenance database (see the module comment). */
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
    await withMaintenance(this.settings, async (c) => {
      for (const statement of statements) {
        throwIfAborted(signal);
        await c.query(statement).catch(() => undefined);
      }
    });
  }
}

/** Writes a stream to a new private file (0600); on abort, the signal's reason is thrown. */
async function writeFile(data: AsyncIterable<Uint8Array>, file: string, signal: AbortSignal | undefined): Promise<void> {
  await pipeline(Readable.from(data), fs.createWriteStream(file, { mode: 0o600 }), ...(signal ? [{ signal }] : [])).catch((err: unknown) => {
    throwIfAborted(signal);
    throw err;
  });
}

/**
 * A whole-server backup (its `<database>/` entries) restores through a server URL: say how,
 * rather than fail on names a one-database restore does not know.
 */
function refuseServerBackup(items: RestoreItem[], location: string): void {
  const database = items.find((i) => i.entry.kind === 'pg_database');
  if (database === undefined) return;
  const name = (database.entry.definition as { database?: unknown }).database;
  const db = typeof name === 'string' ? name : 'db';
  throw new UsageError(
    `This is a backup of a whole PostgreSQL server, and ${location} names one database: restore to the server's URL without a database (postgres://user@host:port/), choosing databases with --include '${db}/*' and renaming with --rename ${db}=<new name>.`,
  );
}
