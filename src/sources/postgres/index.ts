/**
 * The PostgreSQL engine (pg + pg-copy-streams for data, pg_dump/pg_restore for the schema):
 * `postgres://user[:password]@host[:port]/dbname` (or `postgresql://`).
 * Files: connection.ts (URLs, redaction, location, database key, sessions), naming.ts (exact
 * names, `public` by default), source.ts, target.ts; engine helpers: the source's
 * session-pool.ts, tool-stream.ts, segments.ts, catalog.ts; the target's plan.ts, conflicts.ts,
 * new-database.ts, existing-database.ts, staging-plan.ts, load.ts, leftovers.ts, ownership.ts; shared:
 * definitions.ts, roles.ts, staging.ts, toc.ts, tools.ts.
 */
import type { EngineDriver } from '../driver.js';
import { parsePostgresUrl, pgLocation, postgresDatabaseKey, POSTGRES_URL_FORMS, redactUrl } from './connection.js';
import { postgresNaming } from './naming.js';
import { PostgresSource, POSTGRES_KIND } from './source.js';
import { PostgresTarget } from './target.js';

export const postgresDriver: EngineDriver = {
  kind: POSTGRES_KIND,
  schemes: ['postgres', 'postgresql'],
  urlForms: [POSTGRES_URL_FORMS],
  naming: postgresNaming,
  // Parallel COPY sessions share one exported snapshot; large tables are read in block ranges.
  // The schema archive (pg_dump) and the roles script belong to the whole database.
  capabilities: { parallelReads: true, segments: true, roles: true, databaseWideKinds: ['pg_schema', 'pg_roles'] },
  snapshotMetadata: ['serverVersion'],
  redactUrl,
  location: (url) => pgLocation(parsePostgresUrl(url)),
  databaseKey: postgresDatabaseKey,
  openSource: (url, options) => new PostgresSource(parsePostgresUrl(url), options),
  openTarget: (url) => new PostgresTarget(parsePostgresUrl(url)),
  // Schema archives are checked when a restore reads them (docs/security.md).
  manifestProblems: () => [],
};
