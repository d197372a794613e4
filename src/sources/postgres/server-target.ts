/**
 * Whole-server restore target (`postgres://user@host:port/`): restores the databases of a
 * whole-server backup (server-source.ts), all or those selected, each under its own name or a
 * renamed one (`--rename shop=shop_copy`), with the server's roles and tablespaces on request.
 *
 * Each database is restored by the one-database target (target.ts), unchanged, with the items of
 * that database, their names stripped of the `<database>/` part. A database is restored when at
 * least one of its selectable entries (its `<database>/` entry or a table, view, sequence) is
 * selected; a collection cannot be renamed into another database (its definition is in its own
 * database's schema archive).
 *
 * Conflicts, checked for every database before anything is created or changed:
 * - `fail` (default): a database that exists on the target refuses the restore, all of them named
 *   in one ConflictError, except `postgres`, the maintenance database every server has: into it
 *   the one-database rules apply (its objects that the restore would create must not exist);
 * - `overwrite`: each existing database gets a restore into an existing database, with that
 *   policy (target.ts checks each; one refusal refuses the whole restore before any is written).
 *
 * Atomicity: every database is built completely (a new one as a staging database
 * `<name>__cairn_<id>`, an existing one in staging tables) before any is switched in; then all
 * switch in, one after another, each in its own short step (a rename for a new database, one
 * transaction for an existing one). A failure or cancellation before the switches leaves the
 * server as it was (the staging databases are dropped; a killed restore's are dropped by the
 * next restore on the server). PostgreSQL cannot rename several databases in one transaction:
 * should a switch itself fail (a database of that name was created meanwhile), the databases
 * switched before it stay restored, and the error names which did and which did not. A
 * half-written database never appears under its real name. While waiting for the others, each
 * built database holds one session: restoring more databases at once than free connections
 * fails (restore them in groups with --include).
 *
 * Roles and tablespaces (`roles: true`, CLI `--roles`): run first, statement by statement
 * through the driver after every statement is checked (roles.ts for roles; here: only the
 * statements pg_dumpall writes for tablespaces). A role or tablespace that exists is kept as it
 * is. A tablespace that cannot be created (its directory does not exist on the target, or is not
 * empty) is said in the warnings; when any tablespace the backup records is missing on the
 * target, every database is restored with pg_restore --no-tablespaces (objects into the default
 * tablespace), said in the warnings too. After the switch-in, each database gets its recorded
 * owner (unless noOwner), grants (unless noPrivileges), comment, connection limit and settings
 * (server-database.ts); one that cannot be set (a role the target lacks) is a warning. Databases
 * are created in the default tablespace.
 */
import type pg from 'pg';
import { ConflictError, CorruptionError, SourceError, throwIfAborted, UsageError } from '../../core/errors.js';
import type { ConflictPolicy, RestoreItem, RestoreOptions, RestoreResult, RestoreTarget } from '../types.js';
import { quoteIdent } from './catalog.js';
import { pgLocation, type PgConnectionSettings } from './connection.js';
import { ROLES_COLLECTION } from './definitions.js';
import { roleStatements, splitSqlScript } from './roles.js';
import { databasePart, splitServerName } from './server-naming.js';
import { databasePropertyStatements } from './server-database.js';
import { connectMaintenance, POSTGRES_SERVER_KIND, TABLESPACES_COLLECTION, type PgDatabaseDefinition, type PgTablespacesDefinition } from './server-source.js';
import { PostgresTarget } from './target.js';

/** Largest roles or tablespaces script accepted (thousands of roles are a few MB). */
const MAX_SCRIPT_BYTES = 64 * 1024 * 1024;
/** The maintenance database every server has: restored into under the one-database rules. */
const MAINTENANCE = 'postgres';

/** The items of one database of the backup, as the one-database target takes them. */
interface DatabaseGroup {
  /** Its name in the backup. */
  source: string;
  /** Its name on the target (a --rename of the database). */
  target: string;
  definition: PgDatabaseDefinition | undefined;
  items: RestoreItem[];
  /** Selectable entries restored (other than its own `<database>/` entry). */
  selected: number;
  renamed: boolean;
}

export class PostgresServerTarget implements RestoreTarget {
  readonly kind = POSTGRES_SERVER_KIND;
  readonly location: string;

  constructor(readonly settings: PgConnectionSettings) {
    this.location = pgLocation(settings, '');
  }

  async check(items: RestoreItem[], onConflict: ConflictPolicy): Promise<void> {
    await this.checkGroups(groupItems(items).groups, onConflict);
  }

  async restore(items: RestoreItem[], options: RestoreOptions): Promise<RestoreResult> {
    const { signal } = options;
    throwIfAborted(signal);
    const { groups, roles, tablespaces } = groupItems(items);
    if (groups.length === 0) throw new UsageError('Nothing to restore: the selection keeps no database of the backup. Check --include / --exclude.');
    await this.checkGroups(groups, options.onConflict);
    throwIfAborted(signal);
    const warnings: string[] = [];
    let noTablespaces = options.noTablespaces === true;
    if (options.roles) {
      if (roles === undefined) throw new UsageError('--roles: this backup holds no roles; restore without --roles.');
      await this.runScript(roleStatements(await readScript(roles, signal), ROLES_COLLECTION), signal, warnings, 'role');
      if (tablespaces !== undefined) await this.runScript(tablespaceStatements(await readScript(tablespaces, signal)), signal, warnings, 'tablespace');
    }
    if (!noTablespaces && tablespaces !== undefined) {
      const missing = await this.missingTablespaces(tablespaces);
      if (missing.length > 0) {
        noTablespaces = true;
        warnings.push(
          `tablespace${missing.length === 1 ? '' : 's'} ${missing.join(', ')} of the backup ${missing.length === 1 ? 'does' : 'do'} not exist on ${this.location}${options.roles ? '' : ' (restore with --roles to create them)'}: every object was restored into the default tablespace`,
        );
      }
    }
    return this.restoreDatabases(groups, { ...options, roles: false, noTablespaces }, warnings);
  }

  /**
   * Builds every database, holds each just before its switch until all are built, then lets
   * them switch in (see the module comment). Returns the sums and every warning, by database.
   */
  private async restoreDatabases(groups: DatabaseGroup[], options: RestoreOptions, warnings: string[]): Promise<RestoreResult> {
    const { signal } = options;
    let release!: () => void;
    let stop!: (reason: unknown) => void;
    const gate = new Promise<void>((resolve, reject) => {
      release = resolve;
      stop = reject;
    });
    gate.catch(() => undefined);
    const running: { group: DatabaseGroup; done: Promise<RestoreResult> }[] = [];
    const settle = async (err: unknown): Promise<never> => {
      stop(err);
      await Promise.allSettled(running.map((r) => r.done));
      throw err;
    };
    for (const group of groups) {
      if (signal?.aborted) await settle(signal.reason);
      let reached!: () => void;
      const atGate = new Promise<void>((resolve) => (reached = resolve));
      const done = new PostgresTarget({ ...this.settings, database: group.target }).restore(group.items, {
        ...options,
        partial: group.renamed || group.definition === undefined || group.selected < group.definition.collections,
        ...(options.onProgress ? { onProgress: (p) => options.onProgress?.({ ...p, collection: `${databasePart(group.source)}/${p.collection}` }) } : {}),
        onFinalizing: undefined,
        beforeSwitch: async () => {
          reached();
          await gate;
        },
      });
      const run = { group, done };
      running.push(run);
      // The next database is built once this one waits at the gate (or is done, or failed).
      try {
        await Promise.race([atGate, run.done]);
      } catch (err) {
        await settle(err);
      }
    }
    if (signal?.aborted) await settle(signal.reason);
    try {
      options.onFinalizing?.();
    } catch (err) {
      await settle(err);
    }
    release();
    const results = await Promise.allSettled(running.map((r) => r.done));
    const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [{ group: running[i]!.group, reason: r.reason as unknown }] : []));
    if (failed.length > 0) {
      const done = running.filter((r, i) => results[i]?.status === 'fulfilled').map((r) => r.group.target);
      const first = failed[0]!.reason;
      const message = first instanceof Error ? first.message : String(first);
      const what = `${failed.map((f) => f.group.target).join(', ')} not restored (${message})`;
      throw first instanceof ConflictError
        ? new ConflictError(`Restore of the server backup into ${this.location} stopped at the switch: ${what}; restored: ${done.join(', ') || 'none'}.`, { cause: first })
        : new SourceError(`Restore of the server backup into ${this.location} stopped at the switch: ${what}; restored: ${done.join(', ') || 'none'}.`, { cause: first });
    }
    let collections = 0;
    let rows = 0;
    for (const [i, r] of results.entries()) {
      if (r.status !== 'fulfilled') continue;
      const group = running[i]!.group;
      collections += r.value.collections;
      rows += r.value.rows;
      warnings.push(...(r.value.warnings ?? []).map((w) => `database ${group.target}: ${w}`));
    }
    warnings.push(...(await this.restoreProperties(groups, options)));
    return { collections, rows, ...(warnings.length > 0 ? { warnings } : {}) };
  }

  /** Refuses (ConflictError, every database named) before anything is written; see the module comment. */
  private async checkGroups(groups: DatabaseGroup[], onConflict: ConflictPolicy): Promise<void> {
    // A replace swaps one database for another; across a server its all-built-then-switched order
    // (beforeSwitch) is not the replace path's, so it is refused rather than half-supported.
    if (onConflict === 'replace') {
      const first = groups[0]?.target ?? 'shop';
      throw new UsageError(
        `--on-conflict replace rolls back one database from a backup of that database; it is not available for a whole-server restore. ` +
          `Use --on-conflict overwrite, or restore ${first} beside the live one (--rename ${first}=${first}_restored) and switch over yourself.`,
      );
    }
    const existing = await this.existingDatabases();
    const clash = groups.filter((g) => existing.has(g.target) && g.target !== MAINTENANCE);
    if (onConflict === 'fail' && clash.length > 0) {
      const names = clash.map((g) => g.target);
      // The fixes name the database as the backup has it: --rename and --exclude take those names.
      const first = clash[0] as DatabaseGroup;
      throw new ConflictError(
        `Database${names.length === 1 ? '' : 's'} ${names.join(', ')} already exist${names.length === 1 ? 's' : ''} on ${this.location}; nothing was restored. ` +
          `Restore ${names.length === 1 ? 'it' : 'them'} under another name (--rename ${first.source}=${first.target}_copy), leave ${names.length === 1 ? 'it' : 'them'} out (--exclude '${first.source}/*'), or restore into ${names.length === 1 ? 'it' : 'them'} with --on-conflict overwrite.`,
      );
    }
    for (const g of groups) {
      if (existing.has(g.target)) await new PostgresTarget({ ...this.settings, database: g.target }).check(g.items, onConflict);
    }
  }

  private async existingDatabases(): Promise<Set<string>> {
    return this.withMaintenance(async (c) => new Set((await c.query<{ datname: string }>('SELECT datname FROM pg_catalog.pg_database')).rows.map((r) => r.datname)));
  }

  private async withMaintenance<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
    const { client } = await connectMaintenance(this.settings);
    try {
      return await fn(client);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /** The tablespaces the backup records that the target lacks. */
  private async missingTablespaces(item: RestoreItem): Promise<string[]> {
    const recorded = (item.entry.definition as Partial<PgTablespacesDefinition>).tablespaces ?? [];
    if (!Array.isArray(recorded) || recorded.length === 0) return [];
    const present = await this.withMaintenance(async (c) => new Set((await c.query<{ spcname: string }>('SELECT spcname FROM pg_catalog.pg_tablespace')).rows.map((r) => r.spcname)));
    return recorded.map((t) => String(t?.name)).filter((n) => !present.has(n));
  }

  /**
   * Runs checked statements on the maintenance database, outside a transaction (CREATE
   * TABLESPACE cannot run in one). One that fails does not stop the others: "already exists"
   * keeps what the target has; other failures of CREATE TABLESPACE are warnings.
   */
  private async runScript(statements: string[], signal: AbortSignal | undefined, warnings: string[], what: 'role' | 'tablespace'): Promise<void> {
    await this.withMaintenance(async (c) => {
      for (const statement of statements) {
        throwIfAborted(signal);
        try {
          await c.query(statement);
        } catch (err) {
          const e = err as { code?: string; message?: string };
          if (e.code === '42710') continue;
          if (what === 'tablespace' && /^CREATE\s+TABLESPACE\s/i.test(statement)) warnings.push(`tablespace not created (${e.message ?? String(err)})`);
        }
      }
    });
  }

  /**
   * The recorded owner (unless noOwner), grants (unless noPrivileges), comment and connection
   * limit of each restored database, after the switch-in (server-database.ts); a statement that
   * fails is a warning. The maintenance database `postgres` keeps the target's.
   */
  private async restoreProperties(groups: DatabaseGroup[], options: RestoreOptions): Promise<string[]> {
    const warnings: string[] = [];
    await this.withMaintenance(async (c) => {
      const current = new Map((await c.query<{ datname: string; owner: string }>('SELECT datname, pg_catalog.pg_get_userbyid(datdba) AS owner FROM pg_catalog.pg_database')).rows.map((r) => [r.datname, r.owner]));
      for (const g of groups) {
        const def = g.definition;
        if (def === undefined || g.target === MAINTENANCE) continue;
        const owner = def.owner;
        if (!options.noOwner && typeof owner === 'string' && owner !== '' && current.get(g.target) !== owner) {
          try {
            await c.query(`ALTER DATABASE ${quoteIdent(g.target)} OWNER TO ${quoteIdent(owner)}`);
          } catch (err) {
            warnings.push(`database ${g.target}: owner ${owner} not set (${(err as Error).message}); it belongs to the restoring role`);
          }
        }
        const { statements, refused } = databasePropertyStatements(g.target, def, !options.noPrivileges);
        if (refused.length > 0) warnings.push(`database ${g.target}: grants or settings refused, left out: ${refused.join(', ')}`);
        for (const statement of statements) {
          try {
            await c.query(statement);
          } catch (err) {
            warnings.push(`database ${g.target}: ${statement.split(' ON DATABASE')[0]?.slice(0, 60)} … not restored (${(err as Error).message})`);
          }
        }
      }
    });
    return warnings;
  }
}

/**
 * The items by database, names stripped of their database part; the server's own collections
 * apart. Errors: UsageError for items of a one-database backup, CorruptionError for a name the
 * source never writes, UsageError for a collection renamed into another database.
 */
function groupItems(items: RestoreItem[]): { groups: DatabaseGroup[]; roles?: RestoreItem; tablespaces?: RestoreItem } {
  const byDatabase = new Map<string, DatabaseGroup>();
  let roles: RestoreItem | undefined;
  let tablespaces: RestoreItem | undefined;
  for (const item of items) {
    const { entry } = item;
    if (entry.name === ROLES_COLLECTION && entry.kind === 'pg_roles') {
      roles = item;
      continue;
    }
    if (entry.name === TABLESPACES_COLLECTION && entry.kind === 'pg_tablespaces') {
      tablespaces = item;
      continue;
    }
    const from = splitServerName(entry.name);
    if (from.database === undefined) {
      throw new UsageError(
        `This backup is of one PostgreSQL database, not of a whole server: restore it with --to postgres://user@host:port/<database> (a database URL).`,
      );
    }
    const to = splitServerName(item.targetName);
    if (to.database === undefined) throw new CorruptionError(`The backup's collection "${entry.name}" is restored under a name with no database part.`, { objects: [], collections: [entry.name] });
    let group = byDatabase.get(from.database);
    if (group === undefined) {
      group = { source: from.database, target: to.database, definition: undefined, items: [], selected: 0, renamed: false };
      byDatabase.set(from.database, group);
    }
    if (to.database !== group.target) {
      throw new UsageError(
        `--rename ${entry.name}=${item.targetName}: a collection cannot move to another database (its definition is in its database's schema archive). Rename the whole database (--rename ${from.database}=${to.database}) or restore into the same database.`,
      );
    }
    if (entry.kind === 'pg_database') {
      group.definition = entry.definition as unknown as PgDatabaseDefinition;
      continue;
    }
    if (entry.selectable !== false) group.selected++;
    if (from.rest !== to.rest) group.renamed = true;
    group.items.push({ ...item, entry: { ...entry, name: from.rest }, targetName: to.rest });
  }
  // A database restores when something of it was selected (its own entry counts).
  const groups = [...byDatabase.values()].filter((g) => g.definition !== undefined || g.selected > 0);
  const seen = new Map<string, string>();
  for (const g of groups) {
    const other = seen.get(g.target);
    if (other !== undefined) throw new UsageError(`Two databases of the backup would be restored as "${g.target}" (${other} and ${g.source}); change a --rename.`);
    seen.set(g.target, g.source);
  }
  return { groups, ...(roles ? { roles } : {}), ...(tablespaces ? { tablespaces } : {}) };
}

/** A script collection's text, refused beyond MAX_SCRIPT_BYTES. */
async function readScript(item: RestoreItem, signal: AbortSignal | undefined): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of item.data()) {
    throwIfAborted(signal);
    size += chunk.length;
    if (size > MAX_SCRIPT_BYTES) {
      throw new CorruptionError(`Refusing to restore the "${item.entry.name}" collection: it is larger than ${MAX_SCRIPT_BYTES / 1024 / 1024} MiB, which pg_dumpall never writes for it. Restore without --roles.`, {
        objects: [],
        collections: [item.entry.name],
      });
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks).toString('utf8');
}

const TABLESPACE_STATEMENTS = [/^SET\s/i, /^CREATE\s+TABLESPACE\s/i, /^ALTER\s+TABLESPACE\s/i, /^(?:GRANT|REVOKE)\s[^;]*\sON\s+TABLESPACE\s/i, /^COMMENT\s+ON\s+TABLESPACE\s/i, /^SECURITY\s+LABEL\s+(?:FOR\s+\S+\s+)?ON\s+TABLESPACE\s/i];

/**
 * The statements of a `pg_dumpall --tablespaces-only` script, each checked: only the kinds it
 * writes (no psql meta-command, no change of the session's role). Throws CorruptionError.
 */
export function tablespaceStatements(script: string): string[] {
  let statements: string[];
  try {
    statements = splitSqlScript(script);
  } catch (err) {
    throw refusedTablespaces((err as Error).message);
  }
  for (const s of statements) {
    if (!TABLESPACE_STATEMENTS.some((re) => re.test(s)) || /^SET\s+(?:SESSION\s+|LOCAL\s+)?(?:ROLE|SESSION[\s_]+AUTHORIZATION)\b/i.test(s)) {
      throw refusedTablespaces(`a statement that is not one pg_dumpall --tablespaces-only writes ("${s.replace(/\s+/g, ' ').slice(0, 60)}")`);
    }
  }
  return statements;
}

function refusedTablespaces(what: string): CorruptionError {
  return new CorruptionError(
    `Refusing to restore the tablespaces: the "${TABLESPACES_COLLECTION}" collection of the backup holds ${what}. The backup was altered or damaged; nothing was run. Restore without --roles, or from another backup.`,
    { objects: [], collections: [TABLESPACES_COLLECTION] },
  );
}
