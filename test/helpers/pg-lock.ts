/** A PostgreSQL table lock held by another session, for tests of what waits behind one. */
import pg from 'pg';
import { pgUrl } from './postgres.js';

/** A session holding ACCESS EXCLUSIVE on `table` of `database` until release(): backups of it wait at their LOCK TABLE. */
export async function holdTableLock(database: string, table: string): Promise<{ release: () => Promise<void> }> {
  const client = new pg.Client({ connectionString: pgUrl(database) });
  await client.connect();
  await client.query('BEGIN');
  await client.query(`LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`);
  return {
    release: async () => {
      await client.query('COMMIT');
      await client.end();
    },
  };
}
