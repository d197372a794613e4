import { UsageError } from '../core/errors.js';
import { checkSqliteCollections, SqliteSource, SqliteTarget, parseSqliteUrl, SQLITE_KIND } from './sqlite/index.js';
import { CairnError } from '../core/errors.js';
import type { BackupManifest } from '../core/schemas.js';
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

/**
 * What a restore of each backup would refuse in its manifest before touching a target (SQLite:
 * definitions that are not the one expected CREATE statement, hostile fields), as verify
 * problems: a manifest whose checksum was recomputed after an edit passes the checksum, and must
 * still not pass `verify`. PostgreSQL schema archives are checked at restore (docs/security.md).
 */
export function definitionProblems(manifests: BackupManifest[]): { object: string; message: string; affects: string[] }[] {
  const problems: { object: string; message: string; affects: string[] }[] = [];
  for (const m of manifests) {
    if (m.source.kind !== SQLITE_KIND) continue;
    try {
      checkSqliteCollections(m.collections);
    } catch (err) {
      if (!(err instanceof CairnError)) throw err;
      problems.push({ object: `backups/${m.id}`, message: err.message, affects: [m.id] });
    }
  }
  return problems;
}
