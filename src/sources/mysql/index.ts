/**
 * The MySQL / MariaDB engine (mysql2): `mysql://user[:password]@host[:port]/dbname` or
 * `mariadb://…`. Files: connection.ts (URLs, password sources, redaction, location, database
 * key, sessions, errors), naming.ts (exact names), format.ts (collection kinds, definitions, the
 * mysql-tsv-v1 data format), source.ts (backup: with catalog.ts, sessions.ts, segments.ts, grants.ts), target.ts (restore), dump.ts
 * (`cairn dump` of a table, `cairn diff`'s shape of a definition).
 */
import { UsageError } from '../../core/errors.js';
import type { EngineDriver, UrlTrust } from '../driver.js';
import { MYSQL_SCHEMES, MYSQL_URL_FORMS, mysqlDatabaseKey, mysqlLocation, parseMysqlUrl, previewUrl, redactMysqlUrl, type MysqlSettings } from './connection.js';
import { openMysqlDump, mysqlShape } from './dump.js';
import { MYSQL_KIND, ROUTINES_KIND, GRANTS_KIND } from './format.js';
import { mysqlNaming } from './naming.js';
import { definitionProblems } from './plan.js';
import { MysqlSource } from './source.js';
import { mysqlSqlScript } from './sql-script.js';
import { MysqlTarget } from './target.js';
import { MysqlScratch } from './scratch.js';

/** The settings of a URL that names one database; UsageError for one that names none (a whole server is not supported). */
function databaseSettings(url: string, trust: UrlTrust = {}): MysqlSettings {
  const s = parseMysqlUrl(url, trust);
  if (s.database === '') {
    throw new UsageError(
      `The MySQL URL "${previewUrl(url)}" names no database: cairn backs up and restores one MySQL or MariaDB database at a time (a whole server is not supported). Add the database to the path: ${MYSQL_URL_FORMS}.`,
    );
  }
  return s;
}

export const mysqlDriver: EngineDriver = {
  kind: MYSQL_KIND,
  schemes: MYSQL_SCHEMES,
  urlForms: [MYSQL_URL_FORMS],
  naming: mysqlNaming,
  capabilities: { parallelReads: true, segments: true, roles: true, databaseWideKinds: [ROUTINES_KIND, GRANTS_KIND] },
  snapshotMetadata: ['serverVersion', 'position'],
  redactUrl: redactMysqlUrl,
  location: (url, trust) => mysqlLocation(databaseSettings(url, trust)),
  databaseKey: mysqlDatabaseKey,
  openSource: (url, options) => new MysqlSource(databaseSettings(url, options), options),
  openTarget: (url, trust) => new MysqlTarget(databaseSettings(url, trust)),
  openScratch: (url, trust) => new MysqlScratch(databaseSettings(url, trust)),
  // What a restore would refuse in the definitions (plan.ts), found by verify without a target.
  manifestProblems: (manifest) => manifest.collections.flatMap((c) => definitionProblems(c)),
  openDump: openMysqlDump,
  openSqlScript: mysqlSqlScript,
  shapeOf: mysqlShape,
};
