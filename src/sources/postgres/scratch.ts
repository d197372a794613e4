/**
 * A restore drill's scratch PostgreSQL database (ScratchTarget): checks run in a READ ONLY
 * transaction with a statement timeout, row counts by `SELECT count(*) FROM ONLY` (inheritance
 * children count on their own), and drop() is `DROP DATABASE … WITH (FORCE)` from the
 * maintenance database, ending any session still on it.
 */
import { UsageError } from '../../core/errors.js';
import type { CollectionEntry } from '../../core/schemas.js';
import type { ScratchTarget } from '../types.js';
import { quoteIdent } from './catalog.js';
import { connect, pgError, pgLocation, type PgConnectionSettings } from './connection.js';
import { PG_COPY_TEXT } from './definitions.js';
import { withMaintenance } from './new-database.js';

/** How long one check may run (a drill must end; a runaway query on a scratch copy is a failed check). */
const CHECK_TIMEOUT_MS = 10 * 60_000;

export class PostgresScratch implements ScratchTarget {
  readonly location: string;

  constructor(private readonly settings: PgConnectionSettings) {
    if (settings.database === '') {
      throw new UsageError(`A drill's scratch target names one database, not a whole server (${pgLocation(settings)}): add a database name to the URL, e.g. postgres://host:5432/drill_scratch.`);
    }
    this.location = pgLocation(settings);
  }

  private async read<T>(sql: string, values: unknown[] = []): Promise<T[][]> {
    const client = await connect(this.settings);
    try {
      await client.query(`BEGIN READ ONLY`);
      await client.query(`SET LOCAL statement_timeout = ${CHECK_TIMEOUT_MS}`);
      const res = await client.query<T[]>({ text: sql, values, rowMode: 'array' });
      await client.query('ROLLBACK');
      return res.rows;
    } catch (err) {
      throw pgError(err, this.settings);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  async query(sql: string): Promise<unknown> {
    return (await this.read<unknown>(sql))[0]?.[0];
  }

  async countRows(entry: CollectionEntry): Promise<number | undefined> {
    const def = entry.definition as { schema?: unknown; name?: unknown; relkind?: unknown };
    // Plain tables with a COPY stream (extension configuration tables hold only the rows the
    // extension's filter kept: not comparable); partitioned parents, views, sequences hold none.
    if (entry.kind === 'extension_table' || entry.dataFormat !== PG_COPY_TEXT || def.relkind !== 'r') return undefined;
    if (typeof def.schema !== 'string' || typeof def.name !== 'string') return undefined;
    const rows = await this.read<string>(`SELECT count(*) FROM ONLY ${quoteIdent(def.schema)}.${quoteIdent(def.name)}`);
    return Number(rows[0]?.[0] ?? 0);
  }

  async exists(): Promise<boolean> {
    const found = await withMaintenance(this.settings, (c) => c.query('SELECT 1 FROM pg_database WHERE datname = $1', [this.settings.database])).catch((err: unknown) => {
      throw pgError(err, this.settings);
    });
    return (found.rowCount ?? 0) > 0;
  }

  async drop(): Promise<void> {
    await withMaintenance(this.settings, (c) => c.query(`DROP DATABASE IF EXISTS ${quoteIdent(this.settings.database)} WITH (FORCE)`)).catch((err: unknown) => {
      throw pgError(err, this.settings);
    });
  }
}
