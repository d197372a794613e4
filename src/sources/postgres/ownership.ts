/**
 * Owners and grants on restore. A schema archive records each object's owner (`ALTER … OWNER
 * TO`) and its grants (ACL and DEFAULT ACL entries: GRANT, REVOKE, ALTER DEFAULT PRIVILEGES).
 * Restored as recorded, they need the roles to exist in the target and the restoring role to be
 * a superuser or a member of every owner: a non-superuser application role on a managed server
 * fails on the first `ALTER TABLE … OWNER TO postgres`. `noOwner` and `noPrivileges` leave them
 * out exactly as pg_restore's `--no-owner` and `--no-privileges` do (the same flags, given to
 * every pg_restore run of the restore, including the `-f -` scripts of the existing-database
 * path): objects then belong to the restoring role, and no grant names a role.
 *
 * What the flags do not leave out (as with pg_restore): policies `TO role`, and role memberships
 * from `--roles`, still name their roles; `SECURITY DEFINER` functions run as their new owner.
 */
import { CairnError, SourceError } from '../../core/errors.js';
import type { RestoreOptions } from '../types.js';

/** The pg_restore flags of a restore's options. */
export function ownershipArgs(options: Pick<RestoreOptions, 'noOwner' | 'noPrivileges' | 'noTablespaces'>): string[] {
  return [...(options.noOwner ? ['--no-owner'] : []), ...(options.noPrivileges ? ['--no-privileges'] : []), ...(options.noTablespaces ? ['--no-tablespaces'] : [])];
}

/** What a failed statement says, whether it came from a session (cause) or from pg_restore's stderr (message). */
function texts(err: CairnError): { code: string | undefined; text: string } {
  const cause = err.cause as { code?: string; message?: string } | undefined;
  return { code: cause?.code, text: `${err.message}\n${cause?.message ?? ''}` };
}

const OWNERSHIP = /must be (?:a )?member of role|must be able to SET ROLE|must be owner of|must be superuser/i;
const MISSING_ROLE = /role "(?:[^"]|"")*" does not exist/i;
const DENIED = /permission denied/i;

/**
 * The error of a failed restore, with what to do when it failed on ownership, on a role the
 * target lacks, or on a permission: the options that leave owners and grants out (those not
 * used yet), --roles, or another role. Other errors are returned as they are.
 */
export function withOwnershipHint(err: unknown, options: Pick<RestoreOptions, 'noOwner' | 'noPrivileges' | 'roles'>): unknown {
  if (!(err instanceof CairnError) || err.code !== 'SOURCE') return err;
  const { code, text } = texts(err);
  const ownership = OWNERSHIP.test(text);
  const missing = MISSING_ROLE.test(text);
  const denied = code === '42501' || DENIED.test(text);
  if (!ownership && !missing && !denied) return err;
  const unused = [...(options.noOwner ? [] : ['--no-owner']), ...(options.noPrivileges ? [] : ['--no-privileges'])];
  const flags = unused.join(' and ');
  const api = unused.map((f) => (f === '--no-owner' ? 'noOwner' : 'noPrivileges')).join(', ');
  let hint: string;
  if (/permission denied to create database/i.test(text)) {
    hint = 'A restore into a new database creates it: give the restoring role CREATEDB (ALTER ROLE … CREATEDB), or create the database (owned by that role) first and restore into it.';
  } else if (missing) {
    hint =
      'The backup names a role the target server lacks' +
      (unused.length > 0 ? ` (as an owner or in a grant): restore with ${flags} (API: ${api}) to leave ${unused.length === 2 ? 'owners and grants' : unused[0] === '--no-owner' ? 'owners' : 'grants'} out, or` : ' (in a policy or a role membership, which --no-owner and --no-privileges keep):') +
      (options.roles ? ' create the role first.' : ' create the role first, or restore the backup\'s roles with --roles (a backup taken with --roles).');
  } else if (ownership && !options.noOwner) {
    hint =
      'The backup records object owners, and the restoring role is neither a superuser nor a member of those roles: restore with --no-owner (API: noOwner) so the objects belong to the restoring role' +
      (options.noPrivileges ? '' : ' (and --no-privileges, when grants name roles it may not grant for)') +
      ', or restore as a superuser.';
  } else if (unused.length > 0) {
    hint = `If the statement comes from the backup's owners or grants, restore with ${flags} (API: ${api}); otherwise restore as a role that has this privilege (a superuser, or the owner of the target database).`;
  } else {
    hint = 'Restore as a role that has this privilege (a superuser, or the owner of the target database; CREATEDB for a new one).';
  }
  // pgError's generic 42501 advice is about backups ("SELECT on the tables"): say the restore's instead.
  const message = err.message.replace(/ Grant the user "[^"]*" the privilege it needs \(e\.g\. SELECT on the tables to back up\)\.$/, '');
  return new SourceError(`${message.replace(/[.;]?$/, '.')} ${hint}`, { cause: err.cause ?? err });
}
