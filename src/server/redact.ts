import { scrubSecrets } from '../sources/redact.js';

export { scrubSecrets };

/**
 * A URL (one value, not free text) safe to show: everything between "://" and the last "@" is
 * the user information; its password part (after the first ":") becomes ***, and when the user
 * part itself looks broken (it holds "/", "?" or "#"), all of it does. Secret query parameters
 * are scrubbed too. A value that fails to parse as a URL is redacted the same way.
 */
export function redactUrl(url: string): string {
  const m = /^([a-z][a-z0-9+.-]*:\/\/)([^]*)@/i.exec(url);
  let out = url;
  if (m) {
    const userinfo = m[2] ?? '';
    const colon = userinfo.indexOf(':');
    const user = colon < 0 ? userinfo : userinfo.slice(0, colon);
    const safe = /[/?#\s]/.test(user) ? '***' : colon < 0 ? user : `${user}:***`;
    out = `${m[1]}${safe}@${url.slice(m[0].length)}`;
  }
  return scrubSecrets(out);
}

/** At most this many characters of any input are quoted back in an answer. */
export const QUOTE_MAX = 64;

/**
 * Input quoted in a message: control characters replaced, at most `max` characters and "…"
 * after a longer one, in double quotes. Hostile input (a 50 MB id) is never echoed whole.
 */
export function quote(value: unknown, max = QUOTE_MAX): string {
  const text = typeof value === 'string' ? value : String(value);
  const head = Array.from(text.slice(0, max * 2 + 2)).slice(0, max).join('');
  // eslint-disable-next-line no-control-regex -- control characters are what it replaces
  const clean = head.replace(/[\u0000-\u001f\u007f-\u009f"\\]/g, '?');
  return `"${clean}${head.length < text.length ? '…' : ''}"`;
}

/** A URL quoted in a message: redacted first, then cut like quote(). */
export const quoteUrl = (value: string, max = QUOTE_MAX): string => quote(redactUrl(value), max);

/** The longest message an answer carries. */
const MESSAGE_MAX = 2000;

/**
 * The last guard on an error message bound for an answer: secrets scrubbed, every quoted
 * string longer than QUOTE_MAX cut to its prefix (messages from deeper layers may quote a
 * whole input), every bare word over 128 characters too, and the whole capped.
 */
export function safeMessage(message: string): string {
  const clipped = scrubSecrets(message)
    // eslint-disable-next-line no-control-regex -- control characters from input are replaced
    .replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, '?')
    // every quoted string, paired from the left (a pattern for long ones only would pair the
    // closing quote of one with the opening quote of the next), clipped when long
    .replace(/"([^"\n]*)"/g, (m, inner: string) => (inner.length > QUOTE_MAX ? quote(inner) : m))
    // and any unquoted run of 129+ characters without a space (a path or URL quoted bare)
    .replace(/[^\s"]{129,}/g, (run) => `${run.slice(0, QUOTE_MAX)}…`);
  return clipped.length > MESSAGE_MAX ? `${clipped.slice(0, MESSAGE_MAX)}…` : clipped;
}

/**
 * An error message as answered to a request: every verbatim occurrence of what the request sent
 * (its URLs, names, paths) replaced by its redacted form first — the exact way to hide a password
 * that broke the URL it was in, wherever a deeper layer quoted it — then safeMessage().
 */
export function answerMessage(message: string, inputs: readonly string[] = []): string {
  let out = message;
  for (const v of [...inputs].sort((a, b) => b.length - a.length)) {
    if (v.length >= 4 && out.includes(v)) out = out.split(v).join(redactUrl(v));
  }
  return safeMessage(out);
}
