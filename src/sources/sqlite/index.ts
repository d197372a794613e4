/** SQLite driver: `sqlite:///abs/path.db` or `sqlite:relative/path.db`. */
export { SqliteSource } from './source.js';
export { checkSqliteCollections, SqliteTarget } from './target.js';
export { parseSqliteUrl, SQLITE_KIND } from './sql.js';
export type { SqliteColumn, SqliteNamedSql, SqliteTableDefinition, SqliteViewDefinition } from './sql.js';
