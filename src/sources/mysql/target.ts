/**
 * The MySQL/MariaDB restore target (to be written: staging database, parallel LOAD DATA, one
 * RENAME TABLE to switch in).
 */
import { SourceError } from '../../core/errors.js';
import type { ConflictPolicy, RestoreItem, RestoreOptions, RestoreResult, RestoreTarget } from '../types.js';
import { mysqlLocation, type MysqlSettings } from './connection.js';
import { MYSQL_KIND } from './format.js';

export class MysqlTarget implements RestoreTarget {
  readonly kind = MYSQL_KIND;
  readonly location: string;
  constructor(readonly settings: MysqlSettings) {
    this.location = mysqlLocation(settings);
  }
  check(_items: RestoreItem[], _onConflict: ConflictPolicy): Promise<void> {
    return Promise.reject(new SourceError('MySQL restores are not written yet.'));
  }
  restore(_items: RestoreItem[], _options: RestoreOptions): Promise<RestoreResult> {
    return Promise.reject(new SourceError('MySQL restores are not written yet.'));
  }
}
