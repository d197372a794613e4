/**
 * The console's one way to the server: the TypeScript SDK (src/sdk), authenticated by the
 * session cookie (no bearer token in the page), with the session's CSRF token sent on every
 * request that changes something. A 401 from any request outside sign-in means the session
 * ended: the app goes back to the sign-in page saying so.
 */
import { CairnApiError, CairnClient } from '../../src/sdk/index.js';

export { CairnApiError };
export type Role = 'viewer' | 'operator' | 'admin';

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };
/** Whether `role` may do what `least` may (admin ⊃ operator ⊃ viewer). */
export function can(role: Role | undefined, least: Role): boolean {
  return role !== undefined && RANK[role] >= RANK[least];
}

let onExpired: (() => void) | undefined;

/**
 * Set after sign-in (and on load, from GET /v1/session; the SDK's session calls set it too):
 * the SDK sends it as X-CSRF-Token on POST/PATCH/DELETE.
 */
export function setCsrfToken(token: string | undefined): void {
  client.setCsrfToken(token);
}
/** Called once per 401 outside the session routes: the app shows the sign-in page. */
export function onSessionExpired(listener: () => void): void {
  onExpired = listener;
}

/**
 * Whether the session still stands (GET /v1/session); on 401 the app shows the sign-in page with
 * the session-ended notice, as any other 401 does. For what cannot see a 401 itself: an
 * EventSource that errors (its stream ended or could not open) reports no status. Another
 * failure (the server unreachable) is not a verdict: true.
 */
export async function checkSession(): Promise<boolean> {
  try {
    await client.session.get();
    return true;
  } catch (err) {
    if (!(err instanceof CairnApiError && err.status === 401)) return true;
    onExpired?.();
    return false;
  }
}

/** The browser's fetch with the session cookie, noticing a 401 (the session ended). */
const consoleFetch: typeof fetch = async (input, init = {}) => {
  const res = await fetch(input, { ...init, credentials: 'same-origin' });
  const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
  if (res.status === 401 && !/\/v1\/sessions?(\?|$)/.test(new URL(url, location.href).pathname)) onExpired?.();
  return res;
};

/** The SDK client the screens use: no bearer token, the browser's cookie authenticates. */
export const client = new CairnClient({ url: location.origin, fetch: consoleFetch });

/** A readable message for any error a request threw; a missing route says which part is not there. */
export function describeError(err: unknown): string {
  if (err instanceof CairnApiError) {
    if (err.status === 404 && (err.code === 'HTTP_404' || err.message.startsWith('No route'))) return 'This server does not offer this yet (route not found): update cairn.';
    return `${err.message} (${err.code})`;
  }
  if (err instanceof TypeError) return `The server cannot be reached: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

/**
 * What an action button does with its request: when it succeeds, the screen's error is cleared
 * and `done` runs (a reload); when it fails, its message goes to `setError`.
 */
export function settle(request: Promise<unknown>, done: () => void, setError: (message: string | undefined) => void): void {
  request.then(
    () => {
      setError(undefined);
      done();
    },
    (err: unknown) => setError(describeError(err)),
  );
}
