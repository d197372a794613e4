/** The signed-in session (role, token name, CSRF token) as the screens see it. */
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { Role } from './api.js';
import type { SessionInfo } from './types.js';

export const SessionContext = createContext<SessionInfo | null>(null);

export function useSession(): SessionInfo {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession outside a signed-in console');
  return s;
}

export function useRole(): Role {
  return useSession().role;
}
