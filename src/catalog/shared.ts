/**
 * Opening the shared PostgreSQL catalog (`cairn server --catalog`, CAIRN_CATALOG for the CLI's
 * catalog commands): the key first (a replica without CAIRN_CATALOG_KEY fails before it touches
 * the database), then the schema brought up to date (migrations under their advisory lock),
 * then the stores' connection, whose first statement checks the key against the catalog's.
 */
import { CatalogKey } from './catalog-key.js';
import { PostgresJobCatalog } from './postgres.js';
import { PgCatalogDb } from './pg-sync.js';

/**
 * The stores' connection to the shared catalog at `url`, migrated. `owner`: the server id
 * recorded beside migrations it applies.
 * @throws UsageError (no or malformed CAIRN_CATALOG_KEY, a catalog newer than this cairn),
 * KeyError (another key than the catalog's), SourceError (cannot connect).
 */
export async function openSharedCatalog(url: string, options: { owner?: string; env?: NodeJS.ProcessEnv } = {}): Promise<PgCatalogDb> {
  const key = CatalogKey.fromEnv(options.env ?? process.env);
  const jobs = await PostgresJobCatalog.open(url, options.owner ?? '');
  await jobs.close();
  return PgCatalogDb.open(url, { key });
}
