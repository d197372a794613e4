/**
 * The catalog's one door into src/sources: what it needs from the engines, and nothing else.
 * - SQLite: the better-sqlite3 build for this Node.js (the catalog is a SQLite file), and the
 *   catalog mark (application_id "CRNC") with protectFile, which every SQLite source and target
 *   checks so that no backup or restore ever opens the catalog, whatever path leads there.
 * - PostgreSQL: URL parsing, client settings, location and error mapping for PostgresJobCatalog
 *   (`cairn server --catalog postgres://…`), so its errors read like a source's and never carry
 *   the password.
 * All come from the engines' public indexes (src/sources/<engine>/index.ts).
 */
export { SqliteDatabase, CATALOG_APPLICATION_ID, fileMark, protectFile } from '../sources/sqlite/index.js';
export { clientConfig, parsePostgresUrl, pgError, pgLocation, type PgConnectionSettings } from '../sources/postgres/index.js';
