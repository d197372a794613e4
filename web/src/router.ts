/**
 * Hash routing: `#/backups`, `#/backups/<id>?repository=…`. The server serves one page; the
 * hash says which screen, and screen state worth sharing (filters, paging) lives in its query.
 */
import { useEffect, useState } from 'preact/hooks';
import { href, parseHash, type Route } from './hash.js';

export { href, parseHash, type Route };

export function go(path: string, query: Record<string, string | number | undefined | null> = {}): void {
  location.hash = href(path, query);
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const update = (): void => setRoute(parseHash(location.hash));
    addEventListener('hashchange', update);
    return () => removeEventListener('hashchange', update);
  }, []);
  return route;
}
