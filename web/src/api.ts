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

let csrfToken: string | undefined;
let onExpired: (() => void) | undefined;

/**
 * Set after sign-in (and on load, from GET /v1/session): sent as X-CSRF-Token on POST/PATCH/DELETE,
 * by the SDK client and by `call`.
 */
export function setCsrfToken(token: string | undefined): void {
  csrfToken = token;
  client.setCsrfToken(token);
}
/** Called once per 401 outside the session routes: the app shows the sign-in page. */
export function onSessionExpired(listener: () => void): void {
  onExpired = listener;
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

/**
 * A request to a route the SDK of this build may not have a method for yet (answers typed in
 * types.ts, from the API contract). Same errors as the SDK's: CairnApiError with the server's code.
 */
export async function call<T>(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['x-csrf-token'] = csrfToken;
  const res = await consoleFetch(path, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (!res.ok) {
    const err = (parsed as { error?: { code?: string; message?: string } } | undefined)?.error;
    throw new CairnApiError(res.status, err?.code ?? `HTTP_${res.status}`, err?.message ?? `${method} ${path} answered ${res.status}`);
  }
  return parsed as T;
}

/** `?a=1&b=2` of the defined, non-empty values. */
export function qs(params: Record<string, string | number | boolean | undefined | null>): string {
  const given = Object.entries(params).filter((e): e is [string, string | number | boolean] => e[1] !== undefined && e[1] !== null && e[1] !== '');
  return given.length ? `?${new URLSearchParams(given.map(([k, v]) => [k, String(v)])).toString()}` : '';
}

/** A readable message for any error a request threw; a missing route says which part is not there. */
export function describeError(err: unknown): string {
  if (err instanceof CairnApiError) {
    if (err.status === 404 && (err.code === 'HTTP_404' || err.message.startsWith('No route'))) return 'This server does not offer this yet (route not found): update cairn.';
    return `${err.message} (${err.code})`;
  }
  if (err instanceof TypeError) return `The server cannot be reached: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}
