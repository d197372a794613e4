/**
 * `cairn export --format sql` of a MySQL/MariaDB backup: one plain script that the `mysql` /
 * `mariadb` client loads into an empty database (`mysql --default-character-set=utf8mb4
 * --comments db < file`; without --comments the client strips comments inside routine, trigger
 * and event bodies before the server sees them), with nothing of cairn installed, in the order a
 * restore creates things:
 *
 * 1. a header: SET NAMES utf8mb4, foreign and unique checks off, autocommit off, the sql_mode a
 *    restore loads under (connection.ts SESSION_SQL_MODE: zero and partial dates, 0 in
 *    AUTO_INCREMENT columns, no strict mode; backslash escapes on), time_zone +00:00 (TIMESTAMPs
 *    are stored in UTC), and the database's default character set and collation as the backup's
 *    (a restore creates a new database with them);
 * 2. sequences (MariaDB), created and set to their next value;
 * 3. tables, from their recorded SHOW CREATE TABLE (AUTO_INCREMENT counter, partitions, keys,
 *    CHECKs kept), renamed where the export renames them (their foreign keys follow);
 * 4. each table's rows as multi-row INSERTs of at most INSERT_BYTES each (one larger row is a
 *    statement of its own), committed per table; generated columns left out of the column list,
 *    invisible and system-versioning columns named (history rows through
 *    system_versioning_insert_history);
 * 5. procedures and functions, views (in the backup's order, which is their dependency order),
 *    triggers (after the data, so they do not fire on it) and events, each under the sql_mode and
 *    character sets it was created with, compound bodies inside DELIMITER blocks;
 * 6. users and grants (a `--roles` backup) as comments only: they are server-wide and need
 *    privileges a database's script should not assume; `cairn restore --roles` applies them.
 *
 * Values are written so that the stored bytes come back exactly: numbers bare; BINARY, BLOB,
 * spatial values as 0x… hex, BIT as 0x… hex; text in a UTF-8 column (and any value of another
 * ASCII-compatible character set that is pure ASCII) as a quoted string, since the stored field's
 * escapes (format.ts mysql-tsv-v1) are MySQL's own string escapes; any other text (latin1 bytes,
 * UTF-16, bytes that are not valid UTF-8) as `_charset X'…'`, the column's own bytes.
 *
 * Streams: memory holds one row, one output buffer and the reader's packs, whatever the size.
 */
import { isUtf8 } from 'node:buffer';
import { CorruptionError } from '../../core/errors.js';
import { throwIfAborted } from '../../core/errors.js';
import type { SqlScriptContext } from '../driver.js';
import { OutputBuffer } from '../dump.js';
import { copyLines } from '../postgres/dump.js';
import type { RestoreItem } from '../types.js';
import { ident, SESSION_SQL_MODE } from './connection.js';
import { aimSequenceDefaults, renameObject, retargetTrigger, rewriteReferences, tokenize } from './definitions.js';
import type { MysqlColumn, MysqlGrantsDefinition, MysqlRoutine, MysqlTableDefinition } from './format.js';
import { columnCharset } from './load.js';
import { planItems, type Plan, type PlannedObject } from './plan.js';

/** Bytes of one INSERT statement at most (fewer than the server's and client's default max_allowed_packet, 16 MiB; as mysqldump's net_buffer_length order). */
export const INSERT_BYTES = 1024 * 1024;

const NUMBER_TYPES = new Set(['tinyint', 'smallint', 'mediumint', 'int', 'integer', 'bigint', 'decimal', 'float', 'double', 'year']);
const BINARY_TYPES = new Set(['binary', 'varbinary', 'tinyblob', 'blob', 'mediumblob', 'longblob', 'geometry', 'point', 'linestring', 'polygon', 'multipoint', 'multilinestring', 'multipolygon', 'geometrycollection']);
const CHAR_TYPES = new Set(['char', 'varchar', 'tinytext', 'text', 'mediumtext', 'longtext', 'enum', 'set']);
const UTF8_CHARSETS = new Set(['utf8mb4', 'utf8mb3', 'utf8']);
/** Character sets in which ASCII text is not ASCII bytes: always written as their bytes. */
const WIDE_CHARSETS = new Set(['ucs2', 'utf16', 'utf16le', 'utf32']);

const NAME = /^\w{1,64}$/;
const MODE = /^[A-Z_,]*$/;
const TZ = /^(SYSTEM|[+-]\d{1,2}:\d{2}|[A-Za-z_/+-]{1,64})$/;

/** What the restore session is set back to after an object created under its own modes. */
const SESSION_RESET = `SET SESSION sql_mode = '${SESSION_SQL_MODE}', character_set_client = utf8mb4, collation_connection = utf8mb4_general_ci, time_zone = '+00:00';`;

/** How one stored column's field is written. */
type ValueKind = { kind: 'number' } | { kind: 'bytes' } | { kind: 'text'; charset: string };

/** The backup (the context's entries) as one SQL script for the mysql client (see the module comment). */
export async function* mysqlSqlScript(context: SqlScriptContext): AsyncGenerator<Buffer> {
  const { manifest, signal } = context;
  const items: RestoreItem[] = context.entries.map(({ entry, targetName }) => ({ entry, targetName, data: () => context.read(entry) }));
  // The restore's own checks: malformed definitions (CorruptionError), two objects under one
  // name, a view or trigger reading a renamed table (UsageError), before anything is written.
  const plan = planItems(items, true);
  checkStatements(plan);
  const warnings = [...plan.warnings];
  if (plan.grants !== undefined) {
    const def = plan.grants.entry.definition as unknown as MysqlGrantsDefinition;
    warnings.push(
      `users and grants of the backup are left out of this script (listed as comments at its end${def.withPasswords === true ? ', without their CREATE USER statements, which carry password hashes' : ''}): create them yourself, or use cairn restore --roles.`,
    );
  }
  for (const w of warnings) context.onWarning?.(w);
  const out = new OutputBuffer();
  const line = (text = ''): void => out.add(`${text}\n`);

  line(`-- cairn export of backup ${comment(manifest.id)} (${comment(manifest.source.kind)}, ${comment(manifest.source.serverVersion)}), taken ${comment(manifest.createdAt)}`);
  line(`-- Load it into an empty database: mysql --default-character-set=utf8mb4 --comments <database> < this-file`);
  line(`-- (without --comments the client strips comments inside routine, trigger and event bodies).`);
  line(`-- Users and grants are never applied by this script (comments at the end, when the backup holds them).`);
  for (const w of warnings) line(`-- Warning: ${comment(w)}`);
  line();
  line('SET NAMES utf8mb4;');
  line(`SET SESSION sql_mode = '${SESSION_SQL_MODE}';`);
  line("SET SESSION time_zone = '+00:00';");
  line('SET SESSION foreign_key_checks = 0;');
  line('SET SESSION unique_checks = 0;');
  line('SET SESSION autocommit = 0;');
  const charset = plan.routines?.def.charset ?? plan.tables[0]?.def.charset;
  const collation = plan.routines?.def.collation ?? plan.tables[0]?.def.collation;
  if (charset !== undefined && NAME.test(charset)) {
    line("-- The database's defaults as the backup's (a restore creates a new database with them).");
    line(`ALTER DATABASE CHARACTER SET ${charset}${collation !== undefined && NAME.test(collation) ? ` COLLATE ${collation}` : ''};`);
  }
  line();

  const renamed = new Map(plan.tables.map((t) => [t.source, t.target]));
  const sequences = new Map(plan.sequences.map((s) => [s.source, s.target]));
  for (const s of plan.sequences) {
    line(`-- Sequence ${comment(ident(s.target))}${s.target !== s.source ? ` (${comment(ident(s.source))} in the backup)` : ''}`);
    line(`${renameObject(s.def.createSql, 'SEQUENCE', s.target)};`);
    // RESTART sets the next value exactly (SETVAL never moves a sequence below its start).
    line(`ALTER SEQUENCE ${ident(s.target)} RESTART WITH ${BigInt(s.def.nextValue).toString()};`);
    line();
  }
  for (const t of plan.tables) {
    line(`-- Table ${comment(ident(t.target))}${t.target !== t.source ? ` (${comment(ident(t.source))} in the backup)` : ''}`);
    line(`${createTable(t, renamed, sequences)};`);
    line();
  }
  const flushed = out.take();
  if (flushed) yield flushed;

  for (const t of plan.tables) {
    throwIfAborted(signal);
    yield* tableRows(t, context, out);
  }

  const routines = plan.routines?.def.routines ?? [];
  for (const r of routines.filter((x) => x.kind !== 'EVENT')) {
    line(`-- ${r.kind === 'PROCEDURE' ? 'Procedure' : 'Function'} ${comment(ident(r.name))}`);
    created(out, routineModes(r), r.createSql);
  }
  for (const v of plan.views) {
    line(`-- View ${comment(ident(v.target))}`);
    created(out, { characterSetClient: v.def.charset ?? 'utf8mb4', collationConnection: v.def.collation ?? 'utf8mb4_general_ci' }, renameObject(v.def.createSql, 'VIEW', v.target));
  }
  for (const t of plan.tables) {
    for (const trig of t.def.triggers) {
      line(`-- Trigger ${comment(ident(trig.name))} on ${comment(ident(t.target))}`);
      const modes: Modes = {
        characterSetClient: typeof trig.characterSetClient === 'string' ? trig.characterSetClient : 'utf8mb4',
        collationConnection: typeof trig.collationConnection === 'string' ? trig.collationConnection : 'utf8mb4_general_ci',
      };
      // A trigger that recorded no sql_mode gets the loading server's default, as a restore gives it.
      if (typeof trig.sqlMode === 'string') modes.sqlMode = trig.sqlMode;
      else modes.globalSqlMode = true;
      created(out, modes, retargetTrigger(trig.createSql, t.target));
    }
  }
  for (const r of routines.filter((x) => x.kind === 'EVENT')) {
    line(`-- Event ${comment(ident(r.name))}`);
    created(out, routineModes(r), r.createSql);
  }
  if (plan.grants !== undefined) grantComments(plan.grants.entry.definition as unknown as MysqlGrantsDefinition, out);
  line('SET SESSION foreign_key_checks = 1;');
  line('SET SESSION unique_checks = 1;');
  line('COMMIT;');
  line('-- End of the cairn export.');
  const rest = out.take(true);
  if (rest) yield rest;
}

/** A CREATE TABLE for the script: renamed, its foreign keys aimed at the exported tables' new names, sequence defaults at the database it is loaded into. */
function createTable(t: PlannedObject<MysqlTableDefinition>, renamed: ReadonlyMap<string, string>, sequences: ReadonlyMap<string, string>): string {
  const sql = rewriteReferences(renameObject(t.def.createSql, 'TABLE', t.target), (ref) => renamed.get(ref));
  if (sequences.size === 0) return sql;
  // SHOW CREATE TABLE qualifies a default's sequence with the backed-up database's name: the
  // exported sequences are named unqualified (the database the script is loaded into). A NUL
  // stands in for the database while aiming (it cannot occur in a statement).
  const marker = `${ident('\u0000')}.`;
  return aimSequenceDefaults(sql, sequences, '\u0000').sql.split(marker).join('');
}

/** Session settings an object is created under (SHOW CREATE reports them; mysqldump replays them). */
interface Modes {
  sqlMode?: string;
  /** The loading server's default (@@GLOBAL.sql_mode): a trigger that recorded none. */
  globalSqlMode?: boolean;
  characterSetClient?: string;
  collationConnection?: string;
  timeZone?: string;
}

function routineModes(r: MysqlRoutine): Modes {
  return {
    sqlMode: r.sqlMode,
    characterSetClient: r.characterSetClient,
    collationConnection: r.collationConnection,
    ...(r.kind === 'EVENT' ? { timeZone: typeof r.timeZone === 'string' ? r.timeZone : 'SYSTEM' } : {}),
  };
}

/**
 * Writes one CREATE (view, routine, trigger, event) under its recorded modes, then the session's
 * own back. The statement is UTF-8 text (SHOW CREATE printed it so): a recorded client
 * character set other than UTF-8 is kept only when the statement is ASCII (the same bytes in
 * either), else the statement is read as utf8mb4 (its text is the same; only the character set
 * recorded with it differs). A statement holding ';' runs inside a DELIMITER block.
 */
function created(out: OutputBuffer, modes: Modes, sql: string): void {
  const sets: string[] = [];
  if (modes.sqlMode !== undefined && MODE.test(modes.sqlMode)) sets.push(`sql_mode = '${modes.sqlMode}'`);
  else if (modes.globalSqlMode === true) sets.push('sql_mode = @@GLOBAL.sql_mode');
  const ascii = isAscii(Buffer.from(sql, 'utf8'));
  if (modes.characterSetClient !== undefined && NAME.test(modes.characterSetClient)) {
    sets.push(`character_set_client = ${UTF8_CHARSETS.has(modes.characterSetClient) || ascii ? modes.characterSetClient : 'utf8mb4'}`);
  }
  if (modes.collationConnection !== undefined && NAME.test(modes.collationConnection)) sets.push(`collation_connection = ${modes.collationConnection}`);
  if (modes.timeZone !== undefined && TZ.test(modes.timeZone)) sets.push(`time_zone = '${modes.timeZone}'`);
  if (sets.length > 0) out.add(`SET SESSION ${sets.join(', ')};\n`);
  if (hasSemicolon(sql)) {
    const delimiter = [';;', '$$', '//', '@@', '%%%'].find((d) => !sql.includes(d)) ?? ';;;;';
    out.add(`DELIMITER ${delimiter}\n${sql}${delimiter}\nDELIMITER ;\n`);
  } else {
    out.add(`${sql};\n`);
  }
  if (sets.length > 0) out.add(`${SESSION_RESET}\n`);
  out.add('\n');
}

/** A ';' outside strings and comments: the statement is a compound one (or not one statement). */
function hasSemicolon(sql: string): boolean {
  return tokenize(sql).some((t) => t.kind === 'punct' && t.text === ';');
}

/**
 * Every recorded statement must reach the server as one statement through the mysql client: a
 * manifest is data, and the client acts on more than SQL (a backslash command outside quotes
 * such as `\!` runs a shell; a DELIMITER line changes how the rest is split). SHOW CREATE output
 * holds neither. Tables, views and sequences hold no ';' either. CorruptionError otherwise.
 */
function checkStatements(plan: Plan): void {
  const refuse = (what: string, why: string): never => {
    throw new CorruptionError(`The backup's definition of ${what} cannot be written as SQL: ${why}, which SHOW CREATE never prints; run cairn verify on the backup.`, { objects: [], collections: [] });
  };
  const check = (what: string, sql: string, compound: boolean): void => {
    const toks = tokenize(sql);
    if (toks.some((t) => t.kind === 'punct' && t.text === '\\')) refuse(what, 'a backslash outside a string');
    if (!compound && toks.some((t) => t.kind === 'punct' && t.text === ';')) refuse(what, "a ';' outside a string");
    if (/^\s*delimiter\b/im.test(sql)) refuse(what, 'a line starting with DELIMITER');
  };
  for (const t of plan.tables) {
    check(`table "${t.source}"`, t.def.createSql, false);
    for (const trig of t.def.triggers) check(`trigger "${trig.name}"`, trig.createSql, true);
  }
  for (const v of plan.views) check(`view "${v.source}"`, v.def.createSql, false);
  for (const s of plan.sequences) check(`sequence "${s.source}"`, s.def.createSql, false);
  for (const r of plan.routines?.def.routines ?? []) check(`${r.kind.toLowerCase()} "${r.name}"`, r.createSql, true);
}

/** Text for a `-- ` comment line: line breaks would end the comment. */
function comment(text: string): string {
  return String(text).replace(/[\r\n]+/g, ' ');
}

/** How each stored column's fields are written (see the module comment). */
function valueKinds(def: MysqlTableDefinition, columns: MysqlColumn[]): ValueKind[] {
  return columns.map((c): ValueKind => {
    const type = c.dataType.toLowerCase();
    if (NUMBER_TYPES.has(type)) return { kind: 'number' };
    if (BINARY_TYPES.has(type) || type === 'bit') return { kind: 'bytes' };
    if (CHAR_TYPES.has(type)) {
      const cs = columnCharset(def.createSql, c.name).toLowerCase();
      return { kind: 'text', charset: NAME.test(cs) ? cs : 'binary' };
    }
    // Dates, times, JSON, UUID, INET: text the server reads from UTF-8.
    return { kind: 'text', charset: 'utf8mb4' };
  });
}

const QUOTE = 0x27;
const BACKSLASH = 0x5c;
const TAB = 0x09;

/** A stored field's escapes undone (format.ts: `\\ \t \n \r \0 \Z`, and `\b`). */
function unescape(field: Buffer): Buffer {
  if (!field.includes(BACKSLASH)) return field;
  const out = Buffer.allocUnsafe(field.length);
  let n = 0;
  for (let i = 0; i < field.length; i++) {
    let c = field[i] as number;
    if (c === BACKSLASH && i + 1 < field.length) {
      const e = field[++i] as number;
      c = e === 0x74 ? 0x09 : e === 0x6e ? 0x0a : e === 0x72 ? 0x0d : e === 0x30 ? 0x00 : e === 0x5a ? 0x1a : e === 0x62 ? 0x08 : e;
    }
    out[n++] = c;
  }
  return out.subarray(0, n);
}

const isNumber = (b: Buffer): boolean => {
  if (b.length === 0) return false;
  for (const c of b) if (!((c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2b || c === 0x2e || c === 0x65 || c === 0x45)) return false;
  return true;
};

const isAscii = (b: Buffer): boolean => {
  for (const c of b) if (c >= 0x80) return false;
  return true;
};

/**
 * One field (escaped, as stored) as a literal, added to `out`. The
 * stored escapes are MySQL's string escapes, so a quoted string is the field with its quotes
 * escaped (the session keeps backslash escapes on).
 */
function addValue(field: Buffer, kind: ValueKind, out: OutputBuffer): void {
  if (field.length === 2 && field[0] === BACKSLASH && field[1] === 0x4e) {
    out.add('NULL');
    return;
  }
  if (kind.kind === 'number' && isNumber(field)) {
    out.add(field);
    return;
  }
  if (field.length === 0) {
    out.add("''");
    return;
  }
  const readable = kind.kind === 'number' || (kind.kind === 'text' && (UTF8_CHARSETS.has(kind.charset) ? isUtf8(field) : !WIDE_CHARSETS.has(kind.charset) && isAscii(field)));
  if (readable) {
    let quotes = 0;
    for (let i = field.indexOf(QUOTE); i >= 0; i = field.indexOf(QUOTE, i + 1)) quotes++;
    const q = Buffer.allocUnsafe(field.length + quotes + 2);
    let n = 0;
    q[n++] = QUOTE;
    for (const c of field) {
      if (c === QUOTE) q[n++] = BACKSLASH;
      q[n++] = c;
    }
    q[n++] = QUOTE;
    out.add(q);
    return;
  }
  const raw = unescape(field);
  const text = kind.kind === 'bytes' ? `0x${raw.toString('hex')}` : `_${kind.charset} X'${raw.toString('hex')}'`;
  out.add(text);
}

/** One table's rows as INSERT statements (nothing for a table without rows or stored columns). */
async function* tableRows(t: PlannedObject<MysqlTableDefinition>, context: SqlScriptContext, out: OutputBuffer): AsyncGenerator<Buffer> {
  const columns = t.def.columns.filter((c) => c.stored);
  if (columns.length === 0 || t.item.entry.rowCount === 0) return;
  const kinds = valueKinds(t.def, columns);
  const head = Buffer.from(`INSERT INTO ${ident(t.target)} (${columns.map((c) => ident(c.name)).join(', ')}) VALUES\n`, 'utf8');
  const versioned = t.def.systemVersioned === true;
  out.add(`-- Data of table ${comment(ident(t.target))}\n`);
  // The history rows (ROW_START / ROW_END as stored) go in as they are.
  if (versioned) out.add('SET SESSION system_versioning_insert_history = 1;\n');
  let rows = 0;
  let statement = 0;
  const rowOut = new OutputBuffer();
  for await (const line of copyLines(context.read(t.item.entry))) {
    throwIfAborted(context.signal);
    let fields = 1;
    for (let i = line.indexOf(TAB); i >= 0; i = line.indexOf(TAB, i + 1)) fields++;
    if (fields !== columns.length) {
      throw new CorruptionError(`A row of table "${t.source}" holds ${fields} values for ${columns.length} columns: the backup's data does not match its definition; run cairn verify --read-data.`, {
        objects: [],
        collections: [t.source],
      });
    }
    // The row is built first, so that its written size (hex doubles binary values) decides
    // whether it still fits in the statement.
    rowOut.add('(');
    let start = 0;
    kinds.forEach((kind, k) => {
      const end = k === kinds.length - 1 ? line.length : line.indexOf(TAB, start);
      if (k > 0) rowOut.add(',');
      addValue(line.subarray(start, end), kind, rowOut);
      start = end + 1;
    });
    rowOut.add(')');
    const row = rowOut.take(true) as Buffer;
    if (statement > 0 && statement + 2 + row.length + 2 > INSERT_BYTES) {
      out.add(';\n');
      statement = 0;
    }
    if (statement === 0) {
      out.add(head);
      statement = head.length;
    } else {
      out.add(',\n');
      statement += 2;
    }
    out.add(row);
    statement += row.length;
    rows++;
    const b = out.take();
    if (b) yield b;
  }
  if (statement > 0) out.add(';\n');
  if (rows !== t.item.entry.rowCount) {
    throw new CorruptionError(`Table "${t.source}": the backup recorded ${t.item.entry.rowCount} rows but its data holds ${rows}; run cairn verify --read-data.`, { objects: [], collections: [t.source] });
  }
  if (versioned) out.add('SET SESSION system_versioning_insert_history = 0;\n');
  out.add('COMMIT;\n\n');
}

/**
 * The backup's users and grants, as comments: a database's script does not create server-wide
 * accounts. CREATE USER statements are left out when the backup holds password hashes (a plain
 * file must not carry them); the GRANT lines name the backed-up database.
 */
function grantComments(def: MysqlGrantsDefinition, out: OutputBuffer): void {
  const accounts = Array.isArray(def.accounts) ? def.accounts : [];
  out.add(`-- Users and grants of the backup (on database ${comment(ident(String(def.database)))}): NOT applied by this script.\n`);
  out.add('-- Run them yourself, aimed at the database you loaded (or use cairn restore --roles).\n');
  if (def.withPasswords === true) out.add('-- The CREATE USER statements are left out: the backup holds password hashes, which this plain file does not carry.\n');
  for (const a of accounts) {
    out.add(`--   ${a.isRole ? 'role' : 'account'} ${comment(`'${a.user}'@'${a.host}'`)}${a.passwordLeftOut === true ? ' (had a password: not recorded)' : ''}\n`);
    if (def.withPasswords !== true && typeof a.createSql === 'string') out.add(`--   ${comment(a.createSql)};\n`);
    for (const g of Array.isArray(a.grants) ? a.grants : []) out.add(`--   ${comment(g)};\n`);
  }
  out.add('\n');
}
