/**
 * `--on-conflict replace` into an existing PostgreSQL database: the whole database becomes the
 * backup. The backup is restored into a staging database exactly as a new-database restore
 * (new-database.ts: `<target>__cairn_<id>`, under the staging lock of the maintenance session),
 * then swapped in by one transaction on the maintenance database "postgres" (ALTER DATABASE …
 * RENAME is transactional, tested):
 *
 *   BEGIN; ALTER DATABASE target RENAME TO <target>__cairn_<id2>;   -- the old one
 *          ALTER DATABASE staging RENAME TO target;
 *          (the old database's owner, comment, connection limit, settings and grants onto the new);
 *   COMMIT; DROP DATABASE <target>__cairn_<id2> WITH (FORCE);
 *
 * id2 is a second staging id whose lock the same session holds, so the old database gets a
 * staging name only in the transaction that gives the new one the target's name: a kill -9 at
 * any point leaves the target name on the old or on the new database, never on neither, and the
 * old one, once renamed, is an ordinary leftover (dropped by the next restore on the server, as
 * any staging database whose lock is free: leftovers.ts). It is never dropped before the commit.
 *
 * Sessions: ALTER DATABASE … RENAME fails while any other session is connected to the database
 * (after waiting 5 s for them), and holds a lock that makes new connections wait until the
 * transaction ends (then they fail, "database … does not exist", and a retry reaches the new
 * database). The policy for those connected (SessionsPolicy) is applied before the load (refuse
 * fails at once, without loading) and again at the swap: refuse names each session's user,
 * application and pid; wait polls until they leave, bounded by the timeout and the signal;
 * terminate ends them with pg_terminate_backend, and again at each try of the swap.
 *
 * Database-level properties: the new database has the backup's encoding and locale (created as
 * a new-database restore creates it). What the backup does not record, the database's owner,
 * comment, connection limit, `ALTER DATABASE … SET` settings (per role too) and grants, is
 * carried over from the database replaced, each in a savepoint of the swap: one that cannot be
 * (not allowed to this role) is left out and named in a warning rather than failing the swap.
 */
import type pg from 'pg';
import { ConflictError, SourceError, throwIfAborted, UsageError } from '../../core/errors.js';
import { sleep } from '../../core/sleep.js';
import type { SessionsPolicy } from '../types.js';
import { quoteIdent, quoteLiteral } from './catalog.js';
import { pgError, type PgConnectionSettings } from './connection.js';
import { takeStagingLock } from './leftovers.js';
import { MAINTENANCE_DB, withMaintenance, type Switcher } from './new-database.js';
import { LIST_SETTINGS, splitList } from './server-database.js';
import { stagingDatabaseName } from './staging.js';

/** Default for `sessions: "wait"`: 5 minutes. */
export const DEFAULT_SESSIONS_TIMEOUT_MS = 5 * 60 * 1000;
/** How often the sessions on the target are looked at while waiting. */
const POLL_MS = 250;
/** Tries of the swap under "wait"/"terminate" when a session slips in between the check and the swap. */
const SWAP_TRIES = 20;

export interface ReplacePolicy {
  sessions: SessionsPolicy;
  timeoutMs: number;
  signal: AbortSignal | undefined;
}

/** A session on the database being replaced, as pg_stat_activity shows it. */
interface Session {
  pid: number;
  user: string | null;
  application: string | null;
  client: string | null;
}

/**
 * Checks, before anything is loaded, that `target` may be replaced by this role and applies the
 * sessions policy once (refuse throws now rather than after the load). Errors: UsageError for
 * the maintenance database, a template, a role that does not own the database or lacks
 * CREATEDB; ConflictError for sessions under "refuse" or still there after a "wait".
 */
export async function checkReplaceable(settings: PgConnectionSettings, policy: ReplacePolicy): Promise<void> {
  const target = settings.database;
  if (target === MAINTENANCE_DB) {
    throw new UsageError(
      `--on-conflict replace cannot replace the database "${MAINTENANCE_DB}": cairn works from it while switching databases. Restore into another database, or use --on-conflict overwrite.`,
    );
  }
  await withMaintenance(settings, async (c) => {
    const { rows } = await c.query<{ template: boolean; owns: boolean; createdb: boolean }>(
      `SELECT d.datistemplate AS template, pg_catalog.pg_has_role(d.datdba, 'USAGE') AS owns,
              (SELECT r.rolcreatedb OR r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) AS createdb
         FROM pg_catalog.pg_database d WHERE d.datname = $1`,
      [target],
    );
    const row = rows[0];
    if (row === undefined) return; // gone meanwhile: restored as a new database
    if (row.template) throw new UsageError(`--on-conflict replace: "${target}" is a template database; cairn does not replace templates.`);
    if (!row.owns || !row.createdb) {
      throw new UsageError(
        `--on-conflict replace: the role in the target URL must own the database "${target}" (or be a member of its owner) and have CREATEDB, to create its replacement and rename both; connect as such a role.`,
      );
    }
    // Refused now rather than after the load; waiting and ending sessions come at the switch.
    if (policy.sessions === 'refuse') await settleSessions(c, target, policy);
  });
}

/** The Switcher of a replace (see the module comment). */
export function replacingSwitch(settings: PgConnectionSettings, policy: ReplacePolicy): Switcher {
  const target = settings.database;
  // Waiting for sessions happens while the restore can still be cancelled.
  const prepare = (owner: pg.Client): Promise<void> => settleSessions(owner, target, policy);
  const switchIn = async (owner: pg.Client, staging: string): Promise<string[]> => {
    // A second id, locked by this session: the old database's name while it waits to be dropped.
    const oldName = stagingDatabaseName(target, await takeStagingLock(owner));
    for (let attempt = 1; ; attempt++) {
      await settleSessions(owner, target, policy);
      throwIfAborted(policy.signal);
      let warnings: string[];
      try {
        warnings = await swap(owner, staging, target, oldName);
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === '55006' && policy.sessions !== 'refuse' && attempt < SWAP_TRIES) continue;
        if (code === '55006') {
          const sessions = await otherSessions(owner, target);
          throw new ConflictError(sessionsMessage(target, sessions, 'the switch'));
        }
        throw pgError(err, settings, MAINTENANCE_DB);
      }
      // Committed: the target is the new database. The old one is dropped now; should that
      // fail (or the process die first), it is a leftover whose lock frees with this session.
      await owner.query(`DROP DATABASE IF EXISTS ${quoteIdent(oldName)} WITH (FORCE)`).catch((err: unknown) => {
        warnings.push(`The replaced database, now "${oldName}", could not be dropped (${(err as Error).message}); the next restore on this server drops it.`);
      });
      return warnings;
    }
  };
  return { prepare, switchIn };
}

/** The swap transaction; returns warnings. Throws the server's error after rolling back. */
async function swap(c: pg.Client, staging: string, target: string, oldName: string): Promise<string[]> {
  const warnings: string[] = [];
  await c.query('BEGIN');
  try {
    // New connections wait on the database lock the rename takes; a swap that cannot get it soon gives up.
    await c.query(`SET LOCAL lock_timeout = '10s'`);
    const exists = (await c.query('SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1', [target])).rowCount === 1;
    if (exists) await c.query(`ALTER DATABASE ${quoteIdent(target)} RENAME TO ${quoteIdent(oldName)}`);
    await c.query(`COMMENT ON DATABASE ${quoteIdent(staging)} IS NULL`);
    await c.query(`ALTER DATABASE ${quoteIdent(staging)} RENAME TO ${quoteIdent(target)}`);
    if (exists) warnings.push(...(await carryProperties(c, oldName, target)));
    await c.query('COMMIT');
    return warnings;
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** `name=value` of pg_db_role_setting as the SQL that sets it again (a list setting item by item). */
export function settingValue(name: string, value: string): string {
  return LIST_SETTINGS.has(name.toLowerCase()) ? splitList(value).map(quoteLiteral).join(', ') : quoteLiteral(value);
}

/**
 * Gives the new database `target` what the backup does not record from the old one (see the
 * module comment), each statement in a savepoint; returns a warning per one left out.
 */
async function carryProperties(c: pg.Client, oldName: string, target: string): Promise<string[]> {
  const warnings: string[] = [];
  const { rows } = await c.query<{ owner: string; comment: string | null; connlimit: number; acl: boolean }>(
    `SELECT pg_catalog.pg_get_userbyid(datdba) AS owner, pg_catalog.shobj_description(oid, 'pg_database') AS comment,
            datconnlimit AS connlimit, datacl IS NOT NULL AS acl
       FROM pg_catalog.pg_database WHERE datname = $1`,
    [oldName],
  );
  const old = rows[0];
  if (old === undefined) return warnings;
  const t = quoteIdent(target);
  const statements: { sql: string; what: string }[] = [{ sql: `ALTER DATABASE ${t} OWNER TO ${quoteIdent(old.owner)}`, what: `owner ${old.owner}` }];
  if (old.comment !== null) statements.push({ sql: `COMMENT ON DATABASE ${t} IS ${quoteLiteral(old.comment)}`, what: 'comment' });
  if (old.connlimit !== -1) statements.push({ sql: `ALTER DATABASE ${t} CONNECTION LIMIT ${Number(old.connlimit)}`, what: 'connection limit' });
  const settings = await c.query<{ role: string | null; config: string[] }>(
    `SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE pg_catalog.pg_get_userbyid(s.setrole) END AS role, s.setconfig AS config
       FROM pg_catalog.pg_db_role_setting s JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase WHERE d.datname = $1`,
    [oldName],
  );
  for (const s of settings.rows) {
    for (const entry of s.config ?? []) {
      const eq = entry.indexOf('=');
      if (eq <= 0) continue;
      const name = entry.slice(0, eq);
      const set = `SET ${quoteIdent(name)} TO ${settingValue(name, entry.slice(eq + 1))}`;
      statements.push(
        s.role === null
          ? { sql: `ALTER DATABASE ${t} ${set}`, what: `setting ${name}` }
          : { sql: `ALTER ROLE ${quoteIdent(s.role)} IN DATABASE ${t} ${set}`, what: `setting ${name} of role ${s.role}` },
      );
    }
  }
  if (old.acl) {
    // Explicit grants replace the defaults (PUBLIC's CONNECT and TEMPORARY) as they did on the old one.
    statements.push({ sql: `REVOKE ALL ON DATABASE ${t} FROM PUBLIC`, what: 'grants' });
    const grants = await c.query<{ grantee: string | null; privilege: string; grantable: boolean }>(
      `SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_catalog.pg_get_userbyid(a.grantee) END AS grantee, a.privilege_type AS privilege, a.is_grantable AS grantable
         FROM pg_catalog.pg_database d CROSS JOIN LATERAL pg_catalog.aclexplode(d.datacl) a
        WHERE d.datname = $1 AND a.grantee <> d.datdba`,
      [oldName],
    );
    for (const g of grants.rows) {
      if (!/^[A-Z ]+$/.test(g.privilege)) continue;
      const to = g.grantee === null ? 'PUBLIC' : quoteIdent(g.grantee);
      statements.push({ sql: `GRANT ${g.privilege} ON DATABASE ${t} TO ${to}${g.grantable ? ' WITH GRANT OPTION' : ''}`, what: `grant of ${g.privilege} to ${g.grantee ?? 'PUBLIC'}` });
    }
  }
  for (const s of statements) {
    await c.query('SAVEPOINT cairn_property');
    try {
      await c.query(s.sql);
      await c.query('RELEASE SAVEPOINT cairn_property');
    } catch (err) {
      await c.query('ROLLBACK TO SAVEPOINT cairn_property');
      warnings.push(`The replaced database's ${s.what} was not carried over to the restored one: ${(err as Error).message}.`);
    }
  }
  return warnings;
}

/** The other sessions connected to `database` (not this one). */
async function otherSessions(c: pg.Client, database: string): Promise<Session[]> {
  const { rows } = await c.query<Session>(
    `SELECT pid, usename AS user, application_name AS application, pg_catalog.host(client_addr) AS client
       FROM pg_catalog.pg_stat_activity WHERE datname = $1 AND pid <> pg_catalog.pg_backend_pid() ORDER BY pid`,
    [database],
  );
  return rows;
}

/**
 * Applies the sessions policy to `database` through `c` (a maintenance session): returns when
 * none is left. Errors: ConflictError under refuse (naming them), or when wait's timeout passes;
 * the signal's reason on abort.
 */
async function settleSessions(c: pg.Client, database: string, policy: ReplacePolicy): Promise<void> {
  const deadline = Date.now() + policy.timeoutMs;
  for (;;) {
    throwIfAborted(policy.signal);
    const sessions = await otherSessions(c, database);
    if (sessions.length === 0) return;
    if (policy.sessions === 'refuse') throw new ConflictError(sessionsMessage(database, sessions, 'the restore'));
    if (policy.sessions === 'terminate') {
      for (const s of sessions) {
        const ok = (await c.query<{ ok: boolean }>('SELECT pg_catalog.pg_terminate_backend($1) AS ok', [s.pid])).rows[0]?.ok;
        if (ok !== true) throw new SourceError(`Cannot end session ${s.pid} on "${database}" (pg_terminate_backend refused: the role needs pg_signal_backend or to be a member of the session's role); end it yourself or use --sessions wait.`);
      }
    } else if (Date.now() >= deadline) {
      throw new ConflictError(`${sessionsMessage(database, sessions, 'the restore')} They were still there after waiting ${Math.round(policy.timeoutMs / 1000)} s (--sessions-timeout).`);
    }
    await sleep(POLL_MS, policy.signal).catch(() => throwIfAborted(policy.signal));
  }
}

/** Who is connected, and the way out, for an error message. */
function sessionsMessage(database: string, sessions: Session[], what: string): string {
  const list = sessions
    .slice(0, 10)
    .map((s) => `pid ${s.pid} (user ${s.user ?? '?'}, application ${s.application ? JSON.stringify(s.application) : 'unnamed'}${s.client ? `, from ${s.client}` : ''})`)
    .join('; ');
  const more = sessions.length > 10 ? ` and ${sessions.length - 10} more` : '';
  return (
    `Cannot replace the database "${database}": ${sessions.length} other session(s) are connected to it: ${list}${more}; nothing was changed by ${what}. ` +
    'Close them, or restore with --sessions wait (until they leave) or --sessions terminate (end them).'
  );
}
