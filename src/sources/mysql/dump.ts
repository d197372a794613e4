/**
 * `cairn dump` of a MySQL/MariaDB table: its mysql-tsv-v1 stream (format.ts), one line per row,
 * read back into fields and written as CSV or as INSERT statements.
 *
 * Columns are those the backup stored, in order (generated columns are computed by the server
 * and left out; invisible columns and a system-versioned table's ROW_START / ROW_END are there).
 * Bytes are written as the backup holds them, never converted: a column's own character set.
 *
 * CSV: the text form of each value; binary values (BINARY, VARBINARY, BLOB, BIT, GEOMETRY) as
 * `\x…` hex, as SQLite's dump writes BLOBs; NULL as an empty unquoted field.
 *
 * SQL: `SET NAMES binary` (every literal's bytes are taken as they are), the backup's sql_mode
 * plus NO_BACKSLASH_ESCAPES (quotes are doubled, backslashes are plain), UTC, then one INSERT
 * per row in a transaction. Numbers are written bare; BIT, GEOMETRY and any value holding NUL
 * or bytes that are not UTF-8 as X'…'; other values as quoted strings.
 */
import { UsageError } from '../../core/errors.js';
import type { BackupManifest, CollectionEntry } from '../../core/schemas.js';
import { csvRecord, hex, OutputBuffer, quoteBytes, type CollectionDump, type DumpFormat } from '../dump.js';
import { copyLines } from '../postgres/dump.js';
import { ident, SESSION_SQL_MODE } from './connection.js';
import { MYSQL_TSV, TABLE_KIND, parseLine, type MysqlColumn, type MysqlTableDefinition } from './format.js';
import { CorruptionError } from '../../core/errors.js';

const BINARY_TYPES = new Set(['binary', 'varbinary', 'tinyblob', 'blob', 'mediumblob', 'longblob', 'bit', 'geometry', 'point', 'linestring', 'polygon', 'multipoint', 'multilinestring', 'multipolygon', 'geometrycollection']);
const NUMBER_TYPES = new Set(['tinyint', 'smallint', 'mediumint', 'int', 'integer', 'bigint', 'decimal', 'float', 'double', 'year']);

/** The dump of one MySQL table; UsageError for a view, a sequence or a database-wide collection. */
export function openMysqlDump(manifest: BackupManifest, entry: CollectionEntry, format: DumpFormat): CollectionDump {
  if (entry.kind !== TABLE_KIND || entry.dataFormat !== MYSQL_TSV) {
    throw new UsageError(
      `"${entry.name}" is a ${entry.kind.replace(/_/g, ' ')}: it has no rows of its own to dump; dump a table (cairn backup show ${manifest.id} lists the collections and their rows).`,
    );
  }
  const def = entry.definition as Partial<MysqlTableDefinition>;
  if (!Array.isArray(def.columns) || !def.columns.every((c) => typeof c?.name === 'string' && typeof c.dataType === 'string')) {
    throw new UsageError(`"${entry.name}" has no usable table definition in backup ${manifest.id}; run cairn verify ${manifest.id}.`);
  }
  const columns = def.columns.filter((c) => c.stored !== false);
  const names = columns.map((c) => c.name);
  if (format === 'csv') {
    const binary = columns.map((c) => BINARY_TYPES.has(c.dataType));
    return (data) =>
      rows(data, names, (fields, out) => csvRecord(fields.map((f, i) => (f === null ? null : binary[i] ? `\\x${hex(f)}` : f)), out), (out) => csvRecord(names, out));
  }
  const prefix = Buffer.from(`INSERT INTO ${ident(entry.name)} (${names.map(ident).join(', ')}) VALUES (`, 'utf8');
  const header = [
    '/* cairn dump: values are the stored bytes (SET NAMES binary) */',
    'SET NAMES binary;',
    `SET SESSION sql_mode = '${SESSION_SQL_MODE},NO_BACKSLASH_ESCAPES';`,
    "SET SESSION time_zone = '+00:00';",
    ...(def.systemVersioned === true ? ['SET SESSION system_versioning_insert_history = 1;'] : []),
    'START TRANSACTION;',
    '',
  ].join('\n');
  return (data) =>
    rows(
      data,
      names,
      (fields, out) => {
        out.add(prefix);
        for (let i = 0; i < fields.length; i++) {
          if (i > 0) out.add(', ');
          out.add(sqlValue(fields[i] as Buffer | null, columns[i] as MysqlColumn));
        }
        out.add(');\n');
      },
      (out) => out.add(header),
      (out) => out.add('COMMIT;\n'),
    );
}

/** One value as a MySQL literal (see the module comment). */
function sqlValue(v: Buffer | null, column: MysqlColumn): string | Buffer {
  if (v === null) return 'NULL';
  if (NUMBER_TYPES.has(column.dataType) && /^[-+0-9.eE]+$/.test(v.toString('latin1'))) return v;
  if (BINARY_TYPES.has(column.dataType) || v.includes(0) || !isUtf8(v)) return v.length === 0 ? "''" : `X'${hex(v)}'`;
  return quoteBytes(v, 0x27);
}

function isUtf8(b: Buffer): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(b);
    return true;
  } catch {
    return false;
  }
}

async function* rows(
  data: AsyncIterable<Uint8Array>,
  columns: string[],
  row: (fields: (Buffer | null)[], out: OutputBuffer) => void,
  header: (out: OutputBuffer) => void,
  trailer?: (out: OutputBuffer) => void,
): AsyncGenerator<Buffer> {
  const out = new OutputBuffer();
  header(out);
  // A line break inside a value is escaped (\n), so every raw LF ends a row.
  for await (const line of copyLines(data)) {
    const fields = parseLine(line);
    if (fields.length !== columns.length) {
      throw new CorruptionError(`A row holds ${fields.length} values for ${columns.length} columns (${columns.join(', ')}): the backup's data does not match its definition; run cairn verify --read-data.`, { objects: [] });
    }
    row(fields, out);
    const b = out.take();
    if (b) yield b;
  }
  trailer?.(out);
  const rest = out.take(true);
  if (rest) yield rest;
}

/**
 * The shape of a MySQL collection for `cairn diff`: its definition without what moves with the
 * data (the AUTO_INCREMENT counter, in the definition and in SHOW CREATE TABLE's text; a
 * sequence's next value).
 */
export function mysqlShape(entry: CollectionEntry): unknown {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(entry.definition)) {
    if (k === 'autoIncrement' || k === 'nextValue') continue;
    out[k] = k === 'createSql' && typeof v === 'string' ? v.replace(/ AUTO_INCREMENT=\d+/, '') : v;
  }
  return out;
}
