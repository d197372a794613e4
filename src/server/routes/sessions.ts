/**
 * /v1/sessions, /v1/session: the console's sign-in. A token (typed once into the sign-in page)
 * is traded for a session cookie the page's scripts cannot read (HttpOnly); the page keeps only
 * the CSRF token, which it sends as X-CSRF-Token (session-auth.ts checks it).
 */
import type { Context } from 'hono';
import type { SessionRecord } from '../../catalog/sessions.js';
import type { TokenInfo } from '../../catalog/tokens.js';
import { clearSessionCookie, crossSite, forged, sessionCookie, setSessionCookie } from '../session-auth.js';
import type { Env, RouteKit } from './kit.js';

/** The same answer for every failure: which part was wrong is not told. */
const SIGN_IN_FAILED = 'Unknown or revoked token: sign in with a token from cairn token create (or an admin\'s POST /v1/tokens).';

/** A session as answered: csrfToken only for a cookie session. */
const shown = (token: TokenInfo, session: SessionRecord | undefined) => ({
  role: token.role,
  tokenId: token.id,
  tokenName: token.name,
  expiresAt: session?.expiresAt ?? null,
  ...(session ? { csrfToken: session.csrfToken } : {}),
});

const csrfError = (c: Context<Env>, message: string) => c.json({ error: { code: 'CSRF', message } }, 403);

export function sessionRoutes({ on, tokens, sessions, accessChanged }: RouteKit): void {
  on('createSession', (c, { body }) => {
    // A sign-in posted by another site's page would sign the browser in as someone else.
    const refused = crossSite(c);
    if (refused) return csrfError(c, refused);
    const token = tokens.authenticate(body.token);
    if (!token) return c.json({ error: { code: 'UNAUTHORIZED', message: SIGN_IN_FAILED } }, 401);
    const { id, session } = sessions.create(token.id);
    setSessionCookie(c, id, sessions.lifetimeMs / 1000);
    return c.json({ session: shown(token, session) }, 201);
  });

  on('getSession', (c) => {
    const session = c.get('session');
    return c.json({ session: shown(c.get('token'), session), via: session ? ('cookie' as const) : ('bearer' as const) });
  });

  // No valid session needed (an expired one still gets its cookie cleared); a live one is ended
  // only with its CSRF token, like any other change made with the cookie.
  on('deleteSession', (c) => {
    const id = sessionCookie(c);
    if (id) {
      const found = sessions.lookup(id);
      const refused = found.state === 'live' ? forged(c, found.session) : undefined;
      if (refused) return csrfError(c, refused);
      sessions.delete(id);
      accessChanged();
    }
    clearSessionCookie(c);
    return c.json({ signedOut: true as const });
  });
}
