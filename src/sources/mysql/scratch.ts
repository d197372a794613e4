/**
 * A restore drill's scratch MySQL / MariaDB database (ScratchTarget): checks run in a READ ONLY
 * transaction, row counts by `SELECT COUNT(*)`, and drop() is `DROP DATABASE IF EXISTS`.
 */
import type { CollectionEntry } from '../../core/schemas.js';
import type { ScratchTarget } from '../types.js';
import { connect, ident, mysqlError, mysqlLocation, type MysqlSettings } from './connection.js';
import { TABLE_KIND } from './format.js';

/** A value as read on cairn's binary sessions: bytes become text (a check's 1, 't', 'true'). */
const plain = (v: unknown): unknown => (Buffer.isBuffer(v) ? v.toString('utf8') : v);

export class MysqlScratch implements ScratchTarget {
  readonly location: string;

  constructor(private readonly settings: MysqlSettings) {
    this.location = mysqlLocation(settings);
  }

  private async read(sql: string): Promise<unknown[][]> {
    const conn = await connect(this.settings);
    try {
      await conn.query('START TRANSACTION READ ONLY');
      const [rows] = await conn.query({ sql, rowsAsArray: true });
      await conn.query('ROLLBACK');
      return Array.isArray(rows) ? (rows as unknown[][]) : [];
    } catch (err) {
      throw mysqlError(err, this.settings);
    } finally {
      await conn.end().catch(() => undefined);
    }
  }

  async query(sql: string): Promise<unknown> {
    return plain((await this.read(sql))[0]?.[0]);
  }

  async countRows(entry: CollectionEntry): Promise<number | undefined> {
    if (entry.kind !== TABLE_KIND || entry.dataFormat === undefined) return undefined;
    return Number(plain((await this.read(`SELECT COUNT(*) FROM ${ident(this.settings.database)}.${ident(entry.name)}`))[0]?.[0] ?? 0));
  }

  async exists(): Promise<boolean> {
    const conn = await connect(this.settings, { database: '' });
    try {
      const [rows] = await conn.query({ sql: 'SELECT 1 FROM information_schema.schemata WHERE schema_name = ?', values: [this.settings.database], rowsAsArray: true });
      return Array.isArray(rows) && rows.length > 0;
    } catch (err) {
      throw mysqlError(err, this.settings);
    } finally {
      await conn.end().catch(() => undefined);
    }
  }

  async drop(): Promise<void> {
    const conn = await connect(this.settings, { database: '' });
    try {
      await conn.query(`DROP DATABASE IF EXISTS ${ident(this.settings.database)}`);
    } catch (err) {
      throw mysqlError(err, this.settings);
    } finally {
      await conn.end().catch(() => undefined);
    }
  }
}
