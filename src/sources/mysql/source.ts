/**
 * The MySQL/MariaDB backup source (to be written: snapshot, catalog, data streams).
 */
import { SourceError } from '../../core/errors.js';
import type { SourceOptions } from '../driver.js';
import type { DatabaseSource, SnapshotOptions, SourceSnapshot } from '../types.js';
import { mysqlLocation, type MysqlSettings } from './connection.js';
import { MYSQL_KIND } from './format.js';

export class MysqlSource implements DatabaseSource {
  readonly kind = MYSQL_KIND;
  readonly name: string;
  readonly location: string;
  constructor(
    readonly settings: MysqlSettings,
    readonly options: SourceOptions,
  ) {
    this.name = settings.database;
    this.location = mysqlLocation(settings);
  }
  openSnapshot(_options: SnapshotOptions): Promise<SourceSnapshot> {
    return Promise.reject(new SourceError('MySQL backups are not written yet.'));
  }
}
