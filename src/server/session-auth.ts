/**
 * Who a /v1 request is: a bearer token (scripts, the CLI, the SDK in Node), else the console's
 * session cookie. A bearer request needs nothing else (a browser never adds an Authorization
 * header by itself, so it cannot be forged cross-site). A cookie is sent by the browser whoever
 * made the page, so a cookie-authenticated request other than GET/HEAD must also carry the
 * session's CSRF token in X-CSRF-Token (a page of another origin cannot read it), and must not
 * come from another origin (Origin header, when present). The cookie is SameSite=Strict as well:
 * two locks, either one enough.
 */
import { timingSafeEqual } from 'node:crypto';
import type { Context } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import type { SessionRecord, SqliteSessionStore } from '../catalog/sessions.js';
import type { SqliteTokenStore, TokenInfo } from '../catalog/tokens.js';
import type { Env } from './routes/kit.js';

export const SESSION_COOKIE = 'cairn_session';
export const CSRF_HEADER = 'X-CSRF-Token';

/** A request's identity, or the error answer to give (status, code, message). */
export type Identity =
  | { ok: true; token: TokenInfo; via: 'bearer' }
  | { ok: true; token: TokenInfo; via: 'cookie'; session: SessionRecord }
  | { ok: false; status: 401 | 403; code: 'UNAUTHORIZED' | 'SESSION_EXPIRED' | 'CSRF'; message: string };

const UNAUTHORIZED = 'Missing or unknown bearer token: send Authorization: Bearer <token> (cairn token create --role …), or sign in to the console.';
const EXPIRED = 'Your session has ended (signed out, expired, idle for an hour, or its token was revoked): sign in again.';
export const CSRF_MESSAGE = 'Missing or wrong X-CSRF-Token: the console sends it; scripts use a bearer token.';
const ORIGIN_MESSAGE = 'This request came from another origin than the server\'s: the console sends requests from its own page only; scripts use a bearer token.';

/** Methods that change nothing: no CSRF token needed. */
const SAFE = new Set(['GET', 'HEAD']);

/**
 * The identity of a /v1 request. Bearer first: a request with an Authorization header is
 * judged by it alone (a wrong token is 401 even with a valid cookie).
 */
export function identify(c: Context<Env>, tokens: SqliteTokenStore, sessions: SqliteSessionStore): Identity {
  const header = c.req.header('authorization');
  if (header !== undefined) {
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    const token = m?.[1] ? tokens.authenticate(m[1]) : undefined;
    return token ? { ok: true, token, via: 'bearer' } : { ok: false, status: 401, code: 'UNAUTHORIZED', message: UNAUTHORIZED };
  }
  const id = getCookie(c, SESSION_COOKIE);
  if (!id) return { ok: false, status: 401, code: 'UNAUTHORIZED', message: UNAUTHORIZED };
  const found = sessions.lookup(id);
  // An unknown id is answered as an ended one: a cookie the browser still holds after the
  // session was deleted (sign out elsewhere, a new data folder) means "sign in again".
  if (found.state !== 'live') return { ok: false, status: 401, code: 'SESSION_EXPIRED', message: EXPIRED };
  // The role is the token's now: a revoked token ends its sessions at once.
  const token = tokens.get(found.session.tokenId);
  if (!token) {
    sessions.delete(id);
    return { ok: false, status: 401, code: 'SESSION_EXPIRED', message: EXPIRED };
  }
  const refused = SAFE.has(c.req.method) ? undefined : forged(c, found.session);
  if (refused) return { ok: false, status: 403, code: 'CSRF', message: refused };
  return { ok: true, token, via: 'cookie', session: found.session };
}

/** Why a cookie-authenticated change is refused (another origin, or no / a wrong X-CSRF-Token), else undefined. */
export function forged(c: Context<Env>, session: SessionRecord): string | undefined {
  return crossSite(c) ?? (csrfMatches(c.req.header(CSRF_HEADER), session.csrfToken) ? undefined : CSRF_MESSAGE);
}

/**
 * The Origin refusal message when the request names an origin other than the server's, else
 * undefined. The server is its Host header, or the host a reverse proxy says it was reached at
 * (X-Forwarded-Host): a page of another site cannot add that header to a request of its
 * visitor's browser (a custom header needs a CORS preflight, which this server never grants).
 */
export function crossSite(c: Context<Env>): string | undefined {
  const origin = c.req.header('origin');
  if (origin === undefined) return undefined;
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    return ORIGIN_MESSAGE; // "null" (sandboxed frames, file: pages) and anything unparsable
  }
  const own = [c.req.header('host'), c.req.header('x-forwarded-host')?.split(',')[0]].map((h) => h?.trim().toLowerCase());
  return host !== '' && own.includes(host) ? undefined : ORIGIN_MESSAGE;
}

/** Constant-time comparison of the sent CSRF token with the session's. */
function csrfMatches(sent: string | undefined, expected: string): boolean {
  if (sent === undefined) return false;
  const a = Buffer.from(sent);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Whether the request came over https (directly, or per a proxy's X-Forwarded-Proto). */
function overHttps(c: Context<Env>): boolean {
  const forwarded = c.req.header('x-forwarded-proto')?.split(',')[0]?.trim().toLowerCase();
  return forwarded === 'https' || new URL(c.req.url).protocol === 'https:';
}

/** Sets the session cookie: HttpOnly, SameSite=Strict, Path=/, Max-Age its absolute lifetime; Secure over https. */
export function setSessionCookie(c: Context<Env>, id: string, maxAgeSeconds: number): void {
  setCookie(c, SESSION_COOKIE, id, { httpOnly: true, sameSite: 'Strict', path: '/', maxAge: Math.max(0, Math.floor(maxAgeSeconds)), ...(overHttps(c) ? { secure: true } : {}) });
}

/** Clears the session cookie in the browser (Max-Age=0). */
export function clearSessionCookie(c: Context<Env>): void {
  deleteCookie(c, SESSION_COOKIE, { httpOnly: true, sameSite: 'Strict', path: '/', ...(overHttps(c) ? { secure: true } : {}) });
}

/** The session id the request's cookie names, if any. */
export const sessionCookie = (c: Context<Env>): string | undefined => getCookie(c, SESSION_COOKIE);
