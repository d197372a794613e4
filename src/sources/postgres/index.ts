/**
 * The PostgreSQL engine (pg, copy-out.ts and pg-copy-streams for data, pg_dump/pg_restore for the schema):
 * `postgres://user[:password]@host[:port]/dbname` (or `postgresql://`), or, without a database,
 * `postgres://user[:password]@host[:port]/`: the whole server (variant kind "postgres-server").
 * Files: connection.ts (URLs, redaction, location, database key, sessions) with conninfo.ts
 * (libpq's resolution: service files, PG* variables, defaults), naming.ts (exact
 * names, `public` by default), source.ts, target.ts; engine helpers: the source's
 * session-pool.ts, tool-stream.ts, segments.ts, catalog.ts; the target's plan.ts, conflicts.ts,
 * new-database.ts, existing-database.ts, staging-plan.ts, load.ts, leftovers.ts, ownership.ts; shared:
 * definitions.ts, roles.ts, staging.ts, toc.ts, tools.ts; the whole server: server-naming.ts,
 * server-source.ts, server-target.ts (each database through source.ts and target.ts); dump.ts
 * (`cairn dump` of a table, `cairn diff`'s shape of a definition).
 */
import type { EngineDriver, UrlTrust } from '../driver.js';
import type { DatabaseSource, RestoreTarget } from '../types.js';
import { parsePostgresUrl, pgLocation, postgresDatabaseKey, POSTGRES_URL_FORMS, redactUrl } from './connection.js';
import { postgresNaming } from './naming.js';
import { postgresServerNaming } from './server-naming.js';
import { openPostgresDump, postgresShape } from './dump.js';
import { PostgresServerSource, POSTGRES_SERVER_KIND } from './server-source.js';
import { PostgresServerTarget } from './server-target.js';
import { PostgresSource, POSTGRES_KIND } from './source.js';
import { PostgresTarget } from './target.js';
import { PostgresScratch } from './scratch.js';
import { postgresSqlScript } from './sql-script.js';

/**
 * A database URL opens one database; a URL whose path is a lone "/" and that names no database
 * (`postgres://host:port/`, `postgres:///`) the whole server (conninfo.ts resolveConninfo).
 */
const settingsOf = (url: string, trust: UrlTrust = {}) => parsePostgresUrl(url, { server: true, ...(trust.untrusted ? { untrusted: true } : {}) });
const openSource: EngineDriver['openSource'] = (url, options): DatabaseSource => {
  const s = settingsOf(url, options);
  return s.database === '' ? new PostgresServerSource(s, options) : new PostgresSource(s, options);
};
const openTarget = (url: string, trust: UrlTrust = {}): RestoreTarget => {
  const s = settingsOf(url, trust);
  return s.database === '' ? new PostgresServerTarget(s) : new PostgresTarget(s);
};

const common = {
  schemes: ['postgres', 'postgresql'],
  urlForms: [POSTGRES_URL_FORMS],
  snapshotMetadata: ['serverVersion'],
  redactUrl,
  location: (url: string, trust?: UrlTrust) => pgLocation(settingsOf(url, trust)),
  databaseKey: postgresDatabaseKey,
  openSource,
  openTarget,
  // A whole-server URL is refused there: a drill restores one database.
  openScratch: (url: string, trust?: UrlTrust) => new PostgresScratch(settingsOf(url, trust)),
  // Schema archives are checked when a restore reads them (docs/security.md).
  manifestProblems: () => [],
  openDump: openPostgresDump,
  shapeOf: postgresShape,
} as const;

/** Whole-server backups: `<database>/<name>` collections (server-naming.ts), the server's roles and tablespaces. */
const postgresServerDriver: EngineDriver = {
  ...common,
  kind: POSTGRES_SERVER_KIND,
  // Found by kind only: the URL scheme belongs to postgresDriver, which opens either.
  schemes: [],
  naming: postgresServerNaming,
  capabilities: { parallelReads: true, segments: true, roles: true, databaseWideKinds: ['pg_schema', 'pg_roles', 'pg_tablespaces'] },
};

export const postgresDriver: EngineDriver = {
  ...common,
  kind: POSTGRES_KIND,
  naming: postgresNaming,
  // Parallel COPY sessions share one exported snapshot; large tables are read in block ranges.
  // The schema archive (pg_dump) and the roles script belong to the whole database.
  capabilities: { parallelReads: true, segments: true, roles: true, databaseWideKinds: ['pg_schema', 'pg_roles'] },
  // One database's backup only: a whole-server backup is exported database by database (not yet).
  openSqlScript: postgresSqlScript,
  variants: [postgresServerDriver],
};
