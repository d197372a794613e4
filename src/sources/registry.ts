/**
 * Every engine cairn knows, by URL scheme and by manifest kind. Adding an engine is one folder
 * (src/sources/<engine>/, see driver.ts) and one line in DRIVERS.
 */
import { UsageError } from '../core/errors.js';
import { EXACT_NAMES, type NameRules } from '../core/selection.js';
import type { EngineDriver } from './driver.js';
import { mysqlDriver } from './mysql/index.js';
import { postgresDriver } from './postgres/index.js';
import { sqliteDriver } from './sqlite/index.js';

const DRIVERS: readonly EngineDriver[] = [sqliteDriver, postgresDriver, mysqlDriver];

const bySchemes = new Map<string, EngineDriver>();
const byKind = new Map<string, EngineDriver>();
/** Each kind's engine: a variant's (e.g. postgres-server) is the driver that declares it. */
const engineByKind = new Map<string, EngineDriver>();
for (const d of DRIVERS) {
  // Two engines on one scheme or kind would make the choice depend on the list's order.
  for (const k of [d, ...(d.variants ?? [])]) {
    if (byKind.has(k.kind)) throw new Error(`Internal error: two database engines of kind "${k.kind}".`);
    byKind.set(k.kind, k);
    engineByKind.set(k.kind, d);
  }
  for (const s of d.schemes) {
    if (bySchemes.has(s)) throw new Error(`Internal error: two database engines for the URL scheme "${s}:".`);
    bySchemes.set(s, d);
  }
}

/** Every registered engine, in registration order. */
export function engines(): readonly EngineDriver[] {
  return DRIVERS;
}

/** Every URL form the engines accept, for messages ("Supported: …"). */
export function supportedUrlForms(): string[] {
  return DRIVERS.flatMap((d) => d.urlForms);
}

function supportedText(): string {
  const forms = supportedUrlForms();
  return forms.length > 1 ? `${forms.slice(0, -1).join(', ')} or ${forms.at(-1)}` : (forms[0] ?? '');
}

/** The URL's scheme, lowercase; undefined when the text does not start with one. */
export function schemeOf(url: string): string | undefined {
  return /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
}

/** The engine a URL names, or undefined (no scheme, or one no engine answers to). */
export function findDriver(url: string): EngineDriver | undefined {
  const scheme = schemeOf(url);
  return scheme === undefined ? undefined : bySchemes.get(scheme);
}

/**
 * The engine a URL names. Throws UsageError, saying which URLs are supported, for a text that
 * is not a URL or names a scheme no engine answers to (the URL redacted in the message).
 */
export function driverForUrl(url: string): EngineDriver {
  const scheme = schemeOf(url);
  if (scheme === undefined) throw new UsageError(`"${redactAnyUrl(url)}" is not a database URL. Write ${supportedText()}.`);
  const driver = bySchemes.get(scheme);
  if (!driver) throw new UsageError(`Unsupported database URL scheme "${scheme}:" in "${redactAnyUrl(url)}". Supported: ${supportedText()}.`);
  return driver;
}

/** The engine of a manifest's `source.kind` (undefined for a kind this build does not know). */
export function driverForKind(kind: string): EngineDriver | undefined {
  return byKind.get(kind);
}

/**
 * Refuses (UsageError) restoring a backup of one engine into another's target, e.g. a SQLite
 * backup to a postgres:// URL, before anything is read; kinds this build does not know pass
 * (their own checks speak).
 */
export function refuseOtherEngine(backupKind: string, backupId: string, targetKind: string, targetLocation: string): void {
  const from = engineByKind.get(backupKind);
  const to = engineByKind.get(targetKind);
  if (from === undefined || to === undefined || from === to) return;
  throw new UsageError(
    `Backup "${backupId}" is a ${from.kind} backup; it cannot be restored into ${targetLocation}, a ${to.kind} database. Restore it to a URL of the form ${from.urlForms.join(' or ')}.`,
  );
}

/** The name rules of a manifest's `source.kind`; exact names for a kind this build does not know. */
export function namingFor(kind: string): NameRules {
  return byKind.get(kind)?.naming ?? EXACT_NAMES;
}

/**
 * A URL of no known engine, redacted the strictest way any engine knows (every engine's rule
 * applied), so that a message about a mistyped scheme never shows a password.
 */
function redactAnyUrl(url: string): string {
  return DRIVERS.reduce((text, d) => d.redactUrl(text), url);
}
