/**
 * Secrets out of free text bound for a log or an answer. It lives beside the engine registry
 * because the engines' URL usage forms ("postgres://user[:password]@host…") are no secret and
 * must survive it; the server (answers, logs) and the scheduler (run records) both use it.
 */
import { decodeParamNames } from '../core/param-names.js';
import { GRANTS_KIND } from './mysql/format.js';
import { withoutPasswords } from './mysql/grants.js';
import { supportedUrlForms } from './registry.js';

/** Placeholder URLs of usage hints, as the messages print them (every engine's). */
const USAGE_FORMS = supportedUrlForms();
const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** One usage form standing alone (a capture group, so split() keeps it as an odd part). */
const USAGE_FORM = new RegExp(`(?<=^|\\s)(${USAGE_FORMS.map(escapeRegExp).join('|')})(?=$|\\s|[.,;](?:$|\\s))`);

/**
 * Scrubs secrets from text bound for a log or an answer: passwords in URLs
 * (scheme://user:password@host, up to the last "@", so a password with a raw "/" or "@" is
 * scrubbed whole), secret query and key=value parameters (password, secret, token, key,
 * signature…, in any letter case, and by their decoded names: `pass%77ord=` is `password=`),
 * bearer tokens and cairn API tokens. Errors can quote a URL they failed on; the log must not
 * keep it.
 */
export function scrubSecrets(text: string): string {
  // Usage forms quoted in hints ("write postgres://user[:password]@host[:port]/dbname.") are no
  // secret: kept as written when they stand alone (between spaces or at an end, a full stop or
  // comma after), every other part of the text scrubbed as usual.
  const parts = text.split(USAGE_FORM);
  return parts.map((part, i) => (i % 2 === 1 ? part : scrubPart(part))).join('');
}

function scrubPart(text: string): string {
  return decodeParamNames(text)
    .replace(/\b([a-z][a-z0-9+.-]*:\/\/[^\s/:@]*):[^\s]*@/gi, '$1:***@')
    .replace(/\b((?:[a-z0-9_-]*(?:password|passwd|pwd|secret|token|signature|credential|sig|key))\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s&;,"')]+)/gi, '$1***')
    .replace(/\bBearer\s+\S+/gi, 'Bearer ***')
    .replace(/\bcairn_([0-9a-f]{12})_[A-Za-z0-9_-]+/g, 'cairn_$1_***');
}

/**
 * A manifest as printed (backup list / show / create --json): the same, except that the
 * password hashes a MySQL/MariaDB `(users and grants)` definition held before they moved to its
 * data stream (backups written with --roles-with-passwords by an older cairn) are left out of
 * its CREATE USER statements. New backups never hold them; the stored manifest is not changed
 * (a restore still reads them).
 */
export function manifestForDisplay<M extends { collections: { kind: string; definition: Record<string, unknown> }[] }>(manifest: M): M {
  if (!manifest.collections.some((c) => c.kind === GRANTS_KIND)) return manifest;
  return {
    ...manifest,
    collections: manifest.collections.map((c) => {
      if (c.kind !== GRANTS_KIND || !Array.isArray(c.definition.accounts)) return c;
      const accounts = (c.definition.accounts as unknown[]).map((a) =>
        typeof a === 'object' && a !== null && typeof (a as { createSql?: unknown }).createSql === 'string'
          ? { ...a, createSql: withoutPasswords((a as { createSql: string }).createSql) }
          : a,
      );
      return { ...c, definition: { ...c.definition, accounts } };
    }),
  };
}
