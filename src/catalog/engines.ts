/**
 * What the SQLite catalog needs from the SQLite engine: the better-sqlite3 build for this
 * Node.js (the catalog is a SQLite file), and the catalog mark (application_id "CRNC") with
 * protectFile, which every SQLite source and target checks so that no backup or restore ever
 * opens the catalog, whatever path leads there. Each from the narrow module that holds it, not
 * the engine's index, so that opening the catalog does not load every engine and pg (about
 * 190 ms, measured). PostgresJobCatalog (catalog/postgres.ts), which needs pg anyway, imports
 * the PostgreSQL connection helpers itself.
 */
export { default as SqliteDatabase } from '../sources/sqlite/driver.js';
export { CATALOG_APPLICATION_ID, fileMark, protectFile } from '../sources/sqlite/catalog-mark.js';
