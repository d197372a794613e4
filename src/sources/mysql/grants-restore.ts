/**
 * `--roles`: the "(users and grants)" collection restored as `CREATE USER IF NOT EXISTS` and
 * `GRANT` statements (users are server-wide: existing ones are kept as they are, and given the
 * recorded grants). The collection is read from its definition (every string that is such a
 * statement, in order, whatever its shape) and from its data stream when it has one (one
 * statement per line). Only CREATE USER / CREATE ROLE / GRANT / SET DEFAULT ROLE statements
 * run: the backup is data, never arbitrary SQL.
 */
import type mysql from 'mysql2/promise';
import { CorruptionError } from '../../core/errors.js';
import type { RestoreItem } from '../types.js';
import { ident } from './connection.js';
import { GRANTS_COLLECTION } from './format.js';
import { exec } from './session.js';

const MAX_BYTES = 64 * 1024 * 1024;
const ALLOWED = /^\s*(CREATE\s+USER|CREATE\s+ROLE|GRANT|SET\s+DEFAULT\s+ROLE)\b/i;

function collect(value: unknown, out: string[]): void {
  if (typeof value === 'string') {
    if (ALLOWED.test(value)) out.push(value.trim().replace(/;\s*$/, ''));
  } else if (Array.isArray(value)) {
    for (const v of value) collect(v, out);
  } else if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) collect(v, out);
  }
}

/**
 * The statements of the collection, checked. Grants on the backed-up database (`ON `db`.…`, when
 * the definition names it as `database`) are aimed at `target`, the database restored into.
 */
export async function grantStatements(item: RestoreItem, target: string): Promise<string[]> {
  const out: string[] = [];
  collect(item.entry.definition, out);
  if (item.entry.dataFormat !== undefined) {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of item.data()) {
      size += c.length;
      if (size > MAX_BYTES) throw new CorruptionError(`The "${GRANTS_COLLECTION}" collection is larger than 64 MiB, which no grants list is. Restore without --roles.`, { objects: [], collections: [GRANTS_COLLECTION] });
      chunks.push(Buffer.from(c));
    }
    for (const line of Buffer.concat(chunks).toString('utf8').split('\n')) {
      if (line.trim() === '') continue;
      if (!ALLOWED.test(line)) throw new CorruptionError(`The "${GRANTS_COLLECTION}" collection holds a statement that is not CREATE USER, CREATE ROLE or GRANT; refusing to run it. Restore without --roles.`, { objects: [], collections: [GRANTS_COLLECTION] });
      out.push(line.trim().replace(/;\s*$/, ''));
    }
  }
  const source = item.entry.definition.database;
  const from = typeof source === 'string' && source !== target ? ` ON ${ident(source)}.` : undefined;
  return out
    .map((s) => s.replace(/^\s*CREATE\s+(USER|ROLE)\s+(?!IF\s+NOT\s+EXISTS)/i, 'CREATE $1 IF NOT EXISTS '))
    .map((s) => (from !== undefined && /^\s*GRANT\b/i.test(s) ? s.split(from).join(` ON ${ident(target)}.`) : s));
}

/** Runs grantStatements' statements; returns warnings for those the server refused (the restore goes on without them). */
export async function restoreGrants(conn: mysql.Connection, statements: string[]): Promise<string[]> {
  const warnings: string[] = [];
  for (const s of statements) {
    await exec(conn, s).catch((err: unknown) => warnings.push(`not restored: ${s.slice(0, 120).replace(/IDENTIFIED\s+BY\s+(PASSWORD\s+)?'[^']*'/gi, 'IDENTIFIED BY ***')} (${(err as { sqlMessage?: string }).sqlMessage ?? (err as Error).message})`));
  }
  return warnings;
}
