/**
 * Hash routes, parsed and built (pure: no DOM, no Preact, so unit tests import it alone):
 * `#/backups`, `#/backups/<id>?repository=…`.
 */
export interface Route {
  /** First path segment: overview, backups, restore, jobs, schedules, sources, repositories, tokens. */
  screen: string;
  /** Second segment, decoded (a backup id), when there is one. */
  id?: string;
  query: URLSearchParams;
}

export function parseHash(hash: string): Route {
  const raw = hash.replace(/^#\/?/, '');
  const q = raw.indexOf('?');
  const path = q >= 0 ? raw.slice(0, q) : raw;
  const [screen = '', id] = path.split('/');
  let decoded: string | undefined;
  try {
    decoded = id ? decodeURIComponent(id) : undefined;
  } catch {
    decoded = id;
  }
  return { screen: screen || 'overview', ...(decoded ? { id: decoded } : {}), query: new URLSearchParams(q >= 0 ? raw.slice(q + 1) : '') };
}

/** `#/screen[/id][?query]` with undefined and empty values left out. */
export function href(path: string, query: Record<string, string | number | undefined | null> = {}): string {
  const given = Object.entries(query).filter((e): e is [string, string | number] => e[1] !== undefined && e[1] !== null && e[1] !== '');
  return `#/${path}${given.length ? `?${new URLSearchParams(given.map(([k, v]): [string, string] => [k, String(v)])).toString()}` : ''}`;
}
