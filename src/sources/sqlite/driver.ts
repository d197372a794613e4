/**
 * The better-sqlite3 build for this Node.js. Version 12 is the last that runs on Node 20, but on
 * Node 24 its ObjectWrap destructors can run after Node's environment is torn down and abort
 * the process at exit (WiseLibs/better-sqlite3#1515); version 13 (N-API, Node >= 22) fixes that
 * and does not load on Node 20. package.json installs both: 13 under the alias
 * `better-sqlite3-node22`. The API is the same.
 */
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';

const require = createRequire(import.meta.url);
const major = Number(process.versions.node.split('.')[0]);

export const SQLITE_DRIVER_PACKAGE = major >= 22 ? 'better-sqlite3-node22' : 'better-sqlite3';

const Database = require(SQLITE_DRIVER_PACKAGE) as typeof BetterSqlite3;
export default Database;
