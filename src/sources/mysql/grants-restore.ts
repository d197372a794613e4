/**
 * `--roles`: the "(users and grants)" collection restored as `CREATE USER IF NOT EXISTS` and
 * `GRANT` statements (users are server-wide: existing ones are kept as they are, and given the
 * recorded grants). The collection is read from its data stream when it has one (one statement
 * per line: the CREATE USER statements with password hashes, format.ts MYSQL_GRANTS_SQL) and from
 * its definition (every string that is such a statement, in order, whatever its shape; backups
 * written before the data stream held the hashes there). Only CREATE USER / CREATE ROLE / GRANT / SET DEFAULT ROLE statements
 * run: the backup is data, never arbitrary SQL.
 */
import type mysql from 'mysql2/promise';
import { CorruptionError } from '../../core/errors.js';
import type { RestoreItem } from '../types.js';
import { ident } from './connection.js';
import { GRANTS_COLLECTION } from './format.js';
import { tokenize, type Token } from './definitions.js';

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

/** A LIKE pattern matching exactly `name` (a database-level grant's database part is one). */
const likeExactly = (name: string): string => name.replace(/[\\_%]/g, '\\$&');

/**
 * A GRANT line with its database `source` replaced by `target`. A database-level grant
 * (`ON db.*`) names a LIKE pattern: it is aimed when that pattern is the source's name, escaped
 * (`shop\_db`: written escaped, `new\_db`) or plain (written as the admin wrote it: plain,
 * `new_db`, when the source's name held `_` or `%`, so it was a pattern already; escaped when it
 * held none, so that an exact grant stays exact and never covers `newXdb` too); a wider pattern
 * (`shop%`) is kept as it is. A table- or routine-level grant names the database exactly. The statement is read with
 * the SQL lexer, so a quoted column or user name holding " ON `x`." is never taken for the clause.
 */
export function aimGrant(statement: string, source: string, target: string): string {
  const toks = tokenize(statement).filter((t) => t.kind !== 'ws' && t.kind !== 'comment');
  const word = (t: Token | undefined, w: string): boolean => t?.kind === 'word' && t.text.toUpperCase() === w;
  let i = toks.findIndex((t) => word(t, 'ON'));
  if (i < 0) return statement;
  i++;
  if (word(toks[i], 'PROCEDURE') || word(toks[i], 'FUNCTION')) i++;
  else if (word(toks[i], 'PACKAGE')) i += word(toks[i + 1], 'BODY') ? 2 : 1;
  const dbTok = toks[i];
  const object = toks[i + 2];
  if (dbTok?.kind !== 'id' || toks[i + 1]?.text !== '.' || object === undefined) return statement;
  const db = dbTok.text;
  let to: string | undefined;
  if (object.text === '*' && object.kind === 'punct') {
    // The source's name written plain holding `_` or `%` was a pattern: the target's is too.
    if (db === source) to = /[_%\\]/.test(source) ? target : likeExactly(target);
    else if (db === likeExactly(source)) to = likeExactly(target);
  } else if (db === source) {
    to = target;
  }
  return to === undefined ? statement : statement.slice(0, dbTok.start) + ident(to) + statement.slice(dbTok.end);
}

/** Appended to a CREATE USER whose password the backup left out; restoreGrants reports it. */
const LOCKED = ' ACCOUNT LOCK /* cairn: no password in the backup */';

/**
 * Whether the CREATE USER `create` of `account` would leave the user open without a password:
 * its hash was left out (passwordLeftOut; definitions written before that field: a backup
 * without passwords whose CREATE USER names no authentication of its own, such as unix_socket).
 */
function lockFor(account: Record<string, unknown>, create: string, withPasswords: unknown): boolean {
  if (account.isRole === true || /\bACCOUNT\s+LOCK\b/i.test(create)) return false;
  if (account.passwordLeftOut !== undefined) return account.passwordLeftOut === true;
  return withPasswords === false && !/\bIDENTIFIED\s+(VIA|WITH)\s+['`]?(?!mysql_native_password|ed25519|caching_sha2_password|sha256_password|mysql_old_password)\w/i.test(create);
}

/**
 * The statements of the collection, checked. Grants on the backed-up database (the definition's
 * `database`) are aimed at `target`, the database restored into (aimGrant). A user whose password
 * the backup left out (taken without --roles-with-passwords) is created locked (`ACCOUNT LOCK`),
 * never open without a password; restoreGrants says so. `noPrivileges` (--no-privileges): the
 * CREATE USER / CREATE ROLE statements only.
 */
export async function grantStatements(item: RestoreItem, target: string, options: { noPrivileges?: boolean } = {}): Promise<string[]> {
  const out: string[] = [];
  const def = item.entry.definition;
  // The data stream first: the CREATE USER statements with password hashes (createInData), so
  // that each user exists before the definition's GRANTs name it.
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
  if (Array.isArray(def.accounts)) {
    for (const account of def.accounts as unknown[]) {
      const statements: string[] = [];
      collect(account, statements);
      const a = typeof account === 'object' && account !== null ? (account as Record<string, unknown>) : {};
      out.push(...statements.map((c) => (/^\s*CREATE\s+USER\b/i.test(c) && lockFor(a, c, def.withPasswords) ? `${c}${LOCKED}` : c)));
    }
  } else {
    collect(def, out);
  }
  const source = def.database;
  // --no-privileges: the users (and roles) only; every GRANT (privileges and role grants) and
  // SET DEFAULT ROLE (which names a granted role) left out.
  return out
    .filter((s) => !options.noPrivileges || /^\s*CREATE\s+(USER|ROLE)\b/i.test(s))
    .map((s) => s.replace(/^\s*CREATE\s+(USER|ROLE)\s+(?!IF\s+NOT\s+EXISTS)/i, 'CREATE $1 IF NOT EXISTS '))
    .map((s) => (typeof source === 'string' && source !== target && /^\s*GRANT\b/i.test(s) ? aimGrant(s, source, target) : s));
}

/** Runs grantStatements' statements; returns warnings for those the server refused (the restore goes on without them). */
export async function restoreGrants(conn: mysql.Connection, statements: string[]): Promise<string[]> {
  const warnings: string[] = [];
  const locked: string[] = [];
  for (const s of statements) {
    try {
      const [result] = await conn.query<mysql.ResultSetHeader>(s);
      // IF NOT EXISTS: a user that existed is kept as it was (a note, no lock).
      if (s.endsWith(LOCKED) && result.warningStatus === 0) locked.push(/^\s*CREATE\s+USER\s+IF\s+NOT\s+EXISTS\s+(`(?:[^`]|``)*`@`(?:[^`]|``)*`)/i.exec(s)?.[1] ?? 'a user');
    } catch (err) {
      warnings.push(`not restored: ${s.replace(LOCKED, ' ACCOUNT LOCK').slice(0, 120).replace(/IDENTIFIED\s+BY\s+(PASSWORD\s+)?'[^']*'/gi, 'IDENTIFIED BY ***')} (${(err as { sqlMessage?: string }).sqlMessage ?? (err as Error).message})`);
    }
  }
  if (locked.length > 0) {
    warnings.push(
      `${locked.join(', ')} ${locked.length === 1 ? 'was' : 'were'} created locked: the backup holds no password hashes (taken without --roles-with-passwords), and a user without a password would let anyone in. Give each a password and unlock it: ALTER USER ${locked[0]} IDENTIFIED BY '…' ACCOUNT UNLOCK (or back up with --roles-with-passwords).`,
    );
  }
  return warnings;
}
