/**
 * Secrets out of free text bound for a log or an answer. It lives beside the engine registry
 * because the engines' URL usage forms ("postgres://user[:password]@host…") are no secret and
 * must survive it; the server (answers, logs) and the scheduler (run records) both use it.
 */
import { decodeParamNames } from '../core/param-names.js';
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
