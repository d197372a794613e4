/**
 * The SQLite engine (better-sqlite3): `sqlite:///abs/path.db` or `sqlite:relative/path.db`.
 * Files: connection.ts (URLs, location, database key), naming.ts (ASCII-only case folding),
 * source.ts, target.ts (restores; its steps in plan.ts, conflicts.ts, load.ts, files.ts,
 * errors.ts, virtual.ts, database.ts, app-names.ts); dump.ts (`cairn dump`); engine helpers: driver.ts (the better-sqlite3 build), sql.ts, lexer.ts
 * and validate.ts (definitions from a manifest are checked data), staging.ts, catalog-mark.ts.
 */
import { CairnError } from '../../core/errors.js';
import type { EngineDriver } from '../driver.js';
import { parseSqliteUrl, sqliteDatabaseKey, sqliteLocation, SQLITE_URL_FORMS } from './connection.js';
import { sqliteNaming } from './naming.js';
import { SqliteSource } from './source.js';
import { SQLITE_KIND } from './sql.js';
import { checkSqliteCollections } from './plan.js';
import { SqliteTarget } from './target.js';
import { SqliteScratch } from './scratch.js';
import { openSqliteDump, sqliteShape } from './dump.js';
import { sqliteSqlScript } from './sql-script.js';

export { SqliteSource } from './source.js';
export { checkSqliteCollections } from './plan.js';
export { SqliteTarget } from './target.js';
export { parseSqliteUrl } from './connection.js';
export { SQLITE_KIND } from './sql.js';
export type { SqliteColumn, SqliteNamedSql, SqliteTableDefinition, SqliteViewDefinition } from './sql.js';

export const sqliteDriver: EngineDriver = {
  kind: SQLITE_KIND,
  schemes: ['sqlite'],
  urlForms: SQLITE_URL_FORMS,
  naming: sqliteNaming,
  // One connection per snapshot: streams are read one at a time, whole.
  capabilities: { parallelReads: false, segments: false, roles: false, databaseWideKinds: [] },
  snapshotMetadata: ['serverVersion'],
  // A file path holds no secret.
  redactUrl: (url) => url,
  location: (url) => sqliteLocation(parseSqliteUrl(url)),
  databaseKey: sqliteDatabaseKey,
  localFile: parseSqliteUrl,
  // sqlite:relative.db → sqlite:///abs/relative.db (the location is that URL, and holds no secret).
  absoluteUrl: (url) => sqliteLocation(parseSqliteUrl(url)),
  openSource: (url, options) => new SqliteSource(parseSqliteUrl(url), options.lockTimeoutMs),
  openTarget: (url) => new SqliteTarget(parseSqliteUrl(url)),
  openScratch: (url) => new SqliteScratch(parseSqliteUrl(url)),
  manifestProblems(manifest) {
    // The checks a restore makes before it opens the target (definitions are the one CREATE
    // statement expected, names are not SQLite's own…), so that verify refuses what restore would.
    try {
      checkSqliteCollections(manifest.collections);
      return [];
    } catch (err) {
      if (!(err instanceof CairnError)) throw err;
      return [err.message];
    }
  },
  openDump: openSqliteDump,
  openSqlScript: sqliteSqlScript,
  shapeOf: sqliteShape,
};
