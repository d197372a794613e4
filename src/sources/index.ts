/**
 * The database engines behind one surface: open a source or a target by URL, name rules and
 * manifest checks by a manifest's kind. Everything engine-specific is in the engine's folder,
 * found through registry.ts.
 */
import { UsageError } from '../core/errors.js';
import type { BackupManifest } from '../core/schemas.js';
import type { SourceOptions, UrlTrust } from './driver.js';
import { driverForKind, driverForUrl, engines, findDriver, namingFor } from './registry.js';
import type { DatabaseSource, RestoreTarget, ScratchTarget } from './types.js';

export type * from './types.js';
export type { EngineCapabilities, EngineDriver, SourceOptions, UrlTrust } from './driver.js';
export { driverForKind, driverForUrl, engines, findDriver, namingFor, refuseOtherEngine, supportedUrlForms } from './registry.js';

/** The database a backup reads, by URL (UsageError for an unsupported or malformed URL). */
export function openSource(url: string, options: SourceOptions = {}): DatabaseSource {
  const driver = driverForUrl(url);
  if (options.roles || options.rolesWithPasswords) refuseRoles(driver.kind, 'record');
  return driver.openSource(url, options);
}

/**
 * `url` with a relative file path made absolute by its engine (EngineDriver.absoluteUrl), so that
 * it names the same database from any working directory; URLs of engines without relative paths,
 * and values no engine takes (a registered source name), are returned as they are.
 */
export function absoluteSourceUrl(url: string): string {
  return findDriver(url)?.absoluteUrl?.(url) ?? url;
}

/**
 * Throws UsageError when roles (`flag`: --roles, or --no-owner / --no-privileges, which leave
 * roles out) are asked of an engine that has none (capabilities.roles false), rather than
 * quietly backing up or restoring as if the flag meant something there.
 */
export function refuseRoles(kind: string, verb: 'record' | 'restore', flag = '--roles'): void {
  if (driverForKind(kind)?.capabilities.roles) return;
  const withRoles = engines().filter((d) => d.capabilities.roles).map((d) => d.kind);
  const what = flag === '--roles' ? `no roles to ${verb}` : 'no roles, owners or grants';
  throw new UsageError(
    `${flag}: ${kind} databases have ${what}; leave ${flag} out` +
      (withRoles.length > 0 ? ` (it applies to ${withRoles.join(', ')}).` : '.'),
  );
}

/**
 * The database a restore writes into, by URL (UsageError for an unsupported or malformed URL;
 * `trust.untrusted`: EngineDriver's UrlTrust).
 */
export function openTarget(url: string, trust: UrlTrust = {}): RestoreTarget {
  return driverForUrl(url).openTarget(url, trust);
}

/**
 * A restore drill's scratch database, by URL (ScratchTarget): UsageError for an unsupported or
 * malformed URL, or one that names no single database.
 */
export function openScratch(url: string, trust: UrlTrust = {}): ScratchTarget {
  return driverForUrl(url).openScratch(url, trust);
}

/**
 * True when a name a user wrote (e.g. the old name of a --rename) names the collection `name`
 * under the rules of the source kind (SQLite: "album" is "Album"; PostgreSQL: exact, `public`
 * for a bare name), or a group it is in (a whole-server backup: the database `shop`).
 */
export function namesCollection(kind: string, written: string, name: string): boolean {
  const rules = namingFor(kind);
  const q = rules.qualify(written);
  // Or a group it belongs to (a database of a whole-server backup: `shop` for shop/public.t).
  return rules.key(q) === rules.key(name) || rules.regroup?.(name, q, q) !== undefined;
}

/**
 * What a restore of each backup would refuse in its manifest before touching a target (SQLite:
 * definitions that are not the one expected CREATE statement, hostile fields), as verify
 * problems: a manifest whose checksum was recomputed after an edit passes the checksum, and must
 * still not pass `verify`. Each engine says what it checks (EngineDriver.manifestProblems).
 */
export function definitionProblems(manifests: BackupManifest[]): { object: string; message: string; affects: string[] }[] {
  return manifests.flatMap((m) =>
    (driverForKind(m.source.kind)?.manifestProblems(m) ?? []).map((message) => ({ object: `backups/${m.id}`, message, affects: [m.id] })),
  );
}
