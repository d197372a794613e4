/**
 * SQLite URLs: `sqlite:///absolute/path.db` or `sqlite:relative/path.db`, a local file and no
 * secret, so the location is the URL of the resolved path and redaction changes nothing.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '../../core/errors.js';

export const SQLITE_URL_FORMS = ['sqlite:///absolute/path.db', 'sqlite:relative/path.db'] as const;

/**
 * A URL as an error quotes it: cut at 160 characters, and a password in an authority
 * (`sqlite://user:secret@host/…`, which SQLite URLs refuse) shown as *** — secrets never
 * appear in errors (docs/security.md).
 */
function shortUrl(text: string): string {
  const hidden = text.replace(/^(sqlite:\/\/[^/@:]*:)[^/]*@/i, '$1***@');
  return hidden.length > 160 ? `${hidden.slice(0, 160)}…` : hidden;
}

/**
 * `sqlite:///abs/path.db` → "/abs/path.db"; `sqlite:relative/path.db` → resolved against the
 * current directory. The path is taken literally (no percent-decoding); a query ("?…") is
 * refused, naming its parameters. Throws UsageError.
 */
export function parseSqliteUrl(url: string): string {
  const forms = 'Use sqlite:///absolute/path.db or sqlite:relative/path.db.';
  if (typeof url !== 'string' || !url.toLowerCase().startsWith('sqlite:')) {
    throw new UsageError(`Not a SQLite URL: "${shortUrl(String(url))}". ${forms}`);
  }
  const rest = url.slice('sqlite:'.length);
  // No query parameter is supported (cairn opens the file itself, read-only for a backup):
  // refused by name rather than taken as part of the file name or silently ignored.
  const query = rest.indexOf('?');
  if (query >= 0) {
    const names = [...new URLSearchParams(rest.slice(query + 1)).keys()].map((k) => `"${k.slice(0, 40)}"`);
    throw new UsageError(
      `SQLite URL "${shortUrl(url.slice(0, 'sqlite:'.length + query))}" has query parameters (${names.join(', ') || 'an empty query'}), and SQLite URLs take none. ${forms}`,
    );
  }
  let file: string;
  if (rest.startsWith('//')) {
    // sqlite://<authority>/path: only an empty authority (a local file) is accepted.
    const afterSlashes = rest.slice(2);
    if (!afterSlashes.startsWith('/')) {
      throw new UsageError(`Unsupported SQLite URL: "${shortUrl(url)}" (a host is not allowed). ${forms}`);
    }
    file = afterSlashes;
  } else {
    file = rest;
  }
  if (file === '' || file === '/') {
    throw new UsageError(`SQLite URL "${shortUrl(url)}" has no file path. ${forms}`);
  }
  return path.resolve(process.cwd(), file);
}

/** `sqlite:///abs/path.db`: what sources and targets report as their location. */
export function sqliteLocation(file: string): string {
  return `sqlite://${path.resolve(file)}`;
}

/**
 * `sqlite:///a/b.db` → `sqlite:<realpath>`: symbolic links and relative spellings resolved; for
 * a file that does not exist yet (a new restore target), its folder's real path and its name.
 * Undefined for a location that is not a SQLite one.
 */
export function sqliteDatabaseKey(location: string): string | undefined {
  const m = /^sqlite:(?:\/\/)?(\/.*)$/i.exec(location);
  return m?.[1] ? `sqlite:${realFile(m[1])}` : undefined;
}

function realFile(file: string): string {
  const abs = path.resolve(file);
  try {
    return fs.realpathSync(abs);
  } catch {
    try {
      return path.join(fs.realpathSync(path.dirname(abs)), path.basename(abs));
    } catch {
      return abs;
    }
  }
}
