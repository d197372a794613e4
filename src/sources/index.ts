import { UsageError } from '../core/errors.js';
import { SqliteSource, SqliteTarget, parseSqliteUrl } from './sqlite/index.js';
import { parsePostgresUrl, POSTGRES_URL_FORMS, redactUrl } from './postgres/connection.js';
import { PostgresSource } from './postgres/source.js';
import { PostgresTarget } from './postgres/target.js';
import type { DatabaseSource, RestoreTarget } from './types.js';
import type { Selection } from '../core/selection.js';

export type * from './types.js';

const SUPPORTED = `sqlite:///absolute/path.db, sqlite:relative/path.db or ${POSTGRES_URL_FORMS}`;

function schemeOf(url: string): string {
  const m = /^([a-z][a-z0-9+.-]*):/i.exec(url);
  if (!m?.[1]) throw new UsageError(`"${url}" is not a database URL. Write ${SUPPORTED}.`);
  return m[1].toLowerCase();
}

/** The database a backup reads, by URL. */
export interface SourceOptions {
  /** PostgreSQL: also record roles and memberships. */
  roles?: boolean;
  rolesWithPasswords?: boolean;
}

export function openSource(url: string, options: SourceOptions = {}): DatabaseSource {
  const scheme = schemeOf(url);
  if (scheme === 'sqlite') return new SqliteSource(parseSqliteUrl(url));
  if (scheme === 'postgres' || scheme === 'postgresql') return new PostgresSource(parsePostgresUrl(url), options);
  throw new UsageError(`Unsupported database URL scheme "${scheme}:" in "${redactUrl(url)}". Supported: ${SUPPORTED}.`);
}

/** The database a restore writes into, by URL. */
export function openTarget(url: string): RestoreTarget {
  const scheme = schemeOf(url);
  if (scheme === 'sqlite') return new SqliteTarget(parseSqliteUrl(url));
  if (scheme === 'postgres' || scheme === 'postgresql') return new PostgresTarget(parsePostgresUrl(url));
  throw new UsageError(`Unsupported database URL scheme "${scheme}:" in "${redactUrl(url)}". Supported: ${SUPPORTED}.`);
}


/**
 * Rewrites a collection name or pattern into the form a source kind uses: PostgreSQL qualifies
 * every table with its schema, and a bare `film` means `public.film`.
 */
export function normalizeName(kind: string, name: string): string {
  return kind === 'postgres' && !name.includes('.') ? `public.${name}` : name;
}

export function normalizeSelection(kind: string, selection: Selection): Selection {
  const out: Selection = {};
  if (selection.include) out.include = selection.include.map((p) => normalizeName(kind, p));
  if (selection.exclude) out.exclude = selection.exclude.map((p) => normalizeName(kind, p));
  return out;
}
