/**
 * `cairn dump` of a SQLite table: its rows-v1 stream (row-codec.ts) decoded row by row and
 * written as CSV or as INSERT statements that SQLite reads back to the same values and storage
 * classes.
 *
 * Columns are those the backup stored, in order: a rowid table without an INTEGER PRIMARY KEY
 * has its hidden rowid first, under the name the backup recorded (`rowid`, `_rowid_` or `oid`),
 * so that rowids survive a reload; generated columns are not stored and not written.
 *
 * Values: INTEGER as decimal; REAL as the shortest decimal that reads back to the same double,
 * always with a "." or an exponent (`1.0`, not `1`, which would read back as INTEGER), infinities
 * as `9e999` / `-9e999` in SQL and `Infinity` / `-Infinity` in CSV; TEXT as UTF-8 (text whose
 * bytes are not UTF-8, or that holds NUL, as `CAST(X'…' AS TEXT)` in SQL and its bytes in CSV);
 * BLOB as `X'…'` in SQL and `\x…` hex in CSV; NULL as `NULL` / an empty unquoted field.
 */
import { CorruptionError, UsageError } from '../../core/errors.js';
import type { BackupManifest, CollectionEntry } from '../../core/schemas.js';
import { csvRecord, hex, OutputBuffer, type CollectionDump, type DumpFormat } from '../dump.js';
import { RowDecoder, TextBytes } from '../row-codec.js';
import { ROWS_V1 } from '../row-codec.js';
import { dataColumns } from './source.js';
import { quoteIdent, type SqliteTableDefinition } from './sql.js';

/** The dump of one SQLite table; UsageError for a view, a virtual table or the database's settings. */
export function openSqliteDump(manifest: BackupManifest, entry: CollectionEntry, format: DumpFormat): CollectionDump {
  if (entry.kind !== 'table' || entry.dataFormat !== ROWS_V1) {
    throw new UsageError(
      `"${entry.name}" is a ${entry.kind.replace(/_/g, ' ')}: it has no rows of its own to dump; dump a table (cairn backup show ${manifest.id} lists the collections and their rows).`,
    );
  }
  const def = entry.definition as Partial<SqliteTableDefinition>;
  if (!Array.isArray(def.columns) || !def.columns.every((c) => typeof c?.name === 'string') || (def.rowidColumn !== null && typeof def.rowidColumn !== 'string')) {
    throw new UsageError(`"${entry.name}" has no usable table definition in backup ${manifest.id}; run cairn verify ${manifest.id}.`);
  }
  const columns = dataColumns(def as SqliteTableDefinition);
  if (format === 'csv') {
    return (data) =>
      rows(data, columns, (values, out) => csvRecord(values.map(csvValue), out), (out) => csvRecord(columns, out));
  }
  const prefix = `INSERT INTO ${quoteIdent(entry.name)} (${columns.map(quoteIdent).join(', ')}) VALUES (`;
  return (data) =>
    rows(
      data,
      columns,
      (values, out) => out.add(`${prefix}${values.map(sqlValue).join(', ')});\n`),
      (out) => out.add('BEGIN;\n'),
      (out) => out.add('COMMIT;\n'),
    );
}

async function* rows(
  data: AsyncIterable<Uint8Array>,
  columns: string[],
  row: (values: unknown[], out: OutputBuffer) => void,
  header: (out: OutputBuffer) => void,
  trailer?: (out: OutputBuffer) => void,
): AsyncGenerator<Buffer> {
  const out = new OutputBuffer();
  const decoder = new RowDecoder();
  header(out);
  for await (const slice of data) {
    for (const values of decoder.push(slice)) {
      if (values.length !== columns.length) {
        throw new CorruptionError(`A row holds ${values.length} values for ${columns.length} columns (${columns.join(', ')}): the backup's data does not match its definition; run cairn verify --read-data.`, { objects: [] });
      }
      row(values, out);
    }
    const b = out.take();
    if (b) yield b;
  }
  decoder.finish();
  trailer?.(out);
  const rest = out.take(true);
  if (rest) yield rest;
}

/** A REAL as the shortest decimal that reads back to it, with "." or an exponent so it stays REAL. */
function real(v: number): string {
  if (Object.is(v, -0)) return '-0.0';
  const s = String(v);
  return /[.eE]/.test(s) ? s : `${s}.0`;
}

function csvValue(v: unknown): Uint8Array | string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'bigint' || typeof v === 'string') return String(v);
  if (typeof v === 'number') return Number.isNaN(v) ? null : Number.isFinite(v) ? real(v) : v > 0 ? 'Infinity' : '-Infinity';
  if (v instanceof TextBytes) return v.bytes;
  return `\\x${hex(v as Uint8Array)}`;
}

/** One value as a SQLite literal that reads back to the same value and storage class (see the module comment). */
export function sqlValue(v: unknown): string {
  if (v === null || v === undefined) return 'NULL';
  if (typeof v === 'bigint') return String(v);
  // SQLite stores a NaN as NULL; 9e999 overflows to infinity when SQLite reads it.
  if (typeof v === 'number') return Number.isNaN(v) ? 'NULL' : Number.isFinite(v) ? real(v) : v > 0 ? '9e999' : '-9e999';
  if (typeof v === 'string') return v.includes('\0') ? `CAST(X'${Buffer.from(v, 'utf8').toString('hex')}' AS TEXT)` : `'${v.replace(/'/g, "''")}'`;
  if (v instanceof TextBytes) return `CAST(X'${hex(v.bytes)}' AS TEXT)`;
  return `X'${hex(v as Uint8Array)}'`;
}

/**
 * The shape of a SQLite collection for `cairn diff`: its definition without the AUTOINCREMENT
 * counter (which moves with the data).
 */
export function sqliteShape(entry: CollectionEntry): unknown {
  return Object.fromEntries(Object.entries(entry.definition).filter(([k]) => k !== 'autoincrement'));
}
