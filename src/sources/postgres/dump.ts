/**
 * `cairn dump` of a PostgreSQL table: its stored `COPY … TO STDOUT` text, one line per row, read
 * back into fields and written as CSV or as INSERT statements.
 *
 * Each field of COPY text is the column's text output (DateStyle ISO, IntervalStyle postgres,
 * extra_float_digits 3, bytea as `\x…` hex, booleans `t` / `f`, arrays and json as PostgreSQL
 * prints them) with backslash escapes and `\N` for NULL. Unescaped, that text is exactly what
 * `COPY … TO STDOUT (FORMAT csv)` would write and what `COPY … FROM` or a quoted literal in an
 * INSERT reads back. Bytes are written as the backup holds them: in the database's encoding
 * (`dataEncoding` of the "(schema)" collection; UTF-8 for a UTF8 database), never converted,
 * so nothing is lost; the SQL form says so with `SET client_encoding`.
 */
import { UsageError } from '../../core/errors.js';
import type { BackupManifest, CollectionEntry } from '../../core/schemas.js';
import { csvRecord, OutputBuffer, quoteBytes, type CollectionDump, type DumpFormat } from '../dump.js';
import { identQuoter, quoteIdent, unicodeEscaped } from './catalog.js';
import { PG_COPY_TEXT, SCHEMA_COLLECTION, type PgColumn, type PgSchemaDefinition, type PgSequenceState } from './definitions.js';
import { serverName, splitServerName } from './server-naming.js';
import { POSTGRES_SERVER_KIND } from './server-source.js';

const TAB = 0x09;
const LF = 0x0a;
const BACKSLASH = 0x5c;
const QUOTE = 0x27;

/**
 * The dump of one PostgreSQL table (kinds table, partition; a whole-server backup's too). Throws
 * UsageError for a collection without rows of its own (a view, a sequence, a partitioned
 * parent, the schema archive, roles).
 */
export function openPostgresDump(manifest: BackupManifest, entry: CollectionEntry, format: DumpFormat): CollectionDump {
  if (entry.dataFormat !== PG_COPY_TEXT) {
    const why = entry.kind === 'partitioned_table' ? 'its rows are in its partitions; dump each partition' : 'it has no rows to dump; dump a table';
    throw new UsageError(`"${entry.name}" is a ${entry.kind.replace(/_/g, ' ')}: ${why} (cairn backup show ${manifest.id} lists the collections and their rows).`);
  }
  const def = entry.definition as { schema?: unknown; name?: unknown; copyColumns?: unknown; columns?: unknown };
  if (typeof def.schema !== 'string' || typeof def.name !== 'string' || !Array.isArray(def.copyColumns) || !def.copyColumns.every((c) => typeof c === 'string')) {
    throw new UsageError(`"${entry.name}" has no usable table definition in backup ${manifest.id}; run cairn verify ${manifest.id}.`);
  }
  const copyColumns = def.copyColumns as string[];
  const types = new Map(((Array.isArray(def.columns) ? def.columns : []) as PgColumn[]).map((c) => [c.name, c.type]));
  const encoding = dataEncoding(manifest, entry);
  if (format === 'csv') return (data) => csvDump(data, copyColumns);
  // Identifiers in the script's own encoding (catalog.ts identQuoter: Unicode escapes outside
  // UTF8, which need standard_conforming_strings, set below).
  const quote = identQuoter(encoding, encoding);
  const table = `${quote(def.schema)}.${quote(def.name)}`;
  // A `GENERATED ALWAYS AS IDENTITY` column takes a value of its own only with OVERRIDING
  // SYSTEM VALUE; the definition does not record which columns are identity columns, and the
  // clause is harmless without one, so every dump of a PostgreSQL 10+ table (identity columns
  // exist from 10 on, and so does the clause) carries it. Generated (stored) columns are not in
  // copyColumns: they are computed again on insert.
  const overriding = supportsOverriding(manifest.source.serverVersion) ? ' OVERRIDING SYSTEM VALUE' : '';
  const prefix =
    copyColumns.length === 0
      ? undefined
      : Buffer.from(`INSERT INTO ${table} (${copyColumns.map(quote).join(', ')})${overriding} VALUES (`, 'utf8');
  const casts = copyColumns.map((c) => (types.get(c) === 'bytea' ? Buffer.from('::bytea') : undefined));
  const header = [
    `SET client_encoding = '${encoding.replace(/'/g, "''")}';`,
    'SET standard_conforming_strings = on;',
    'SET DateStyle = ISO;',
    'SET IntervalStyle = postgres;',
    'BEGIN;',
    '',
  ].join('\n');
  const trailer = sequenceValues(def as { sequences?: unknown }, quote === quoteIdent) + 'COMMIT;\n';
  return (data) => sqlDump(data, header, prefix, casts, `INSERT INTO ${table} DEFAULT VALUES;\n`, trailer);
}

/** True unless the server version is known to be older than 10 (no identity columns, no OVERRIDING). */
function supportsOverriding(serverVersion: string): boolean {
  const major = /^(\d+)/.exec(serverVersion)?.[1];
  return major === undefined || Number(major) >= 10;
}

/**
 * `setval` of each sequence the table owns (serial and identity columns, OWNED BY) to its value
 * in the snapshot, as `pg_dump --data-only` writes them, so rows inserted after the load do not
 * collide with the loaded ones. A sequence missing from the target is passed over (to_regclass
 * is NULL: no row), so the rows load into a table made without it too. Values that are not
 * integers (a hostile manifest) are left out.
 */
function sequenceValues(def: { sequences?: unknown }, rawText: boolean): string {
  const list = Array.isArray(def.sequences) ? (def.sequences as Partial<PgSequenceState>[]) : [];
  let out = '';
  for (const s of list) {
    if (typeof s.schema !== 'string' || typeof s.name !== 'string' || typeof s.lastValue !== 'string' || !/^-?\d{1,19}$/.test(s.lastValue)) continue;
    const name = textLiteral(`${quoteIdent(s.schema)}.${quoteIdent(s.name)}`, rawText);
    out += `SELECT pg_catalog.setval(c.oid, ${s.lastValue}, ${s.isCalled === true}) FROM (SELECT pg_catalog.to_regclass(${name}) AS oid) c WHERE c.oid IS NOT NULL;\n`;
  }
  return out;
}

/**
 * A string constant: as it is when its bytes are read right (`raw`: a UTF8 script, or a
 * SQL_ASCII server), else ASCII only with Unicode escapes (`U&'caf\00e9'`), which the server
 * converts to its own encoding whatever the client encoding (as catalog.ts asciiIdent).
 */
export function textLiteral(value: string, raw: boolean): string {
  if (raw || /^[\x20-\x7e]*$/.test(value)) return `'${value.replace(/'/g, "''")}'`;
  return `U&'${unicodeEscaped(value, "'")}'`;
}

/** The encoding of the table's data: the database's, as its "(schema)" collection records it. */
function dataEncoding(manifest: BackupManifest, entry: CollectionEntry): string {
  let schemaName = SCHEMA_COLLECTION;
  if (manifest.source.kind === POSTGRES_SERVER_KIND) {
    const { database } = splitServerName(entry.name);
    if (database !== undefined) schemaName = serverName(database, SCHEMA_COLLECTION);
  }
  const schema = manifest.collections.find((c) => c.name === schemaName)?.definition as Partial<PgSchemaDefinition> | undefined;
  // Backups made before the encoding was recorded hold UTF-8 data (definitions.ts).
  const enc = schema?.dataEncoding;
  return typeof enc === 'string' && /^[A-Za-z0-9_]{1,64}$/.test(enc) ? enc : 'UTF8';
}

async function* csvDump(data: AsyncIterable<Uint8Array>, columns: string[]): AsyncGenerator<Buffer> {
  const out = new OutputBuffer();
  csvRecord(columns, out);
  for await (const line of copyLines(data)) {
    csvRecord(copyFields(line), out);
    const b = out.take();
    if (b) yield b;
  }
  const rest = out.take(true);
  if (rest) yield rest;
}

async function* sqlDump(
  data: AsyncIterable<Uint8Array>,
  header: string,
  prefix: Buffer | undefined,
  casts: (Buffer | undefined)[],
  defaultValues: string,
  trailer: string,
): AsyncGenerator<Buffer> {
  const out = new OutputBuffer();
  out.add(header);
  for await (const line of copyLines(data)) {
    if (prefix === undefined) {
      out.add(defaultValues);
    } else {
      out.add(prefix);
      const fields = copyFields(line);
      for (let i = 0; i < fields.length; i++) {
        if (i > 0) out.add(', ');
        const f = fields[i] as Buffer | null;
        if (f === null) {
          out.add('NULL');
          continue;
        }
        out.add(literal(f));
        const cast = casts[i];
        if (cast) out.add(cast);
      }
      out.add(');\n');
    }
    const b = out.take();
    if (b) yield b;
  }
  out.add(trailer);
  const rest = out.take(true);
  if (rest) yield rest;
}

/**
 * A string constant under standard_conforming_strings: the bytes between single quotes, quotes
 * doubled (0x27 is never part of a multibyte character in a server encoding).
 */
function literal(bytes: Buffer): Buffer {
  return quoteBytes(bytes, QUOTE);
}

/**
 * The lines of a COPY text stream, without their LF. A line break inside a value is escaped
 * (`\n`), and LF is never part of a multibyte character in a server encoding, so every raw LF
 * ends a row. Holds at most one incomplete line between slices.
 */
export async function* copyLines(data: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
  let pending: Buffer | undefined;
  for await (const slice of data) {
    let b = Buffer.isBuffer(slice) ? slice : Buffer.from(slice.buffer, slice.byteOffset, slice.length);
    let start = 0;
    let nl = b.indexOf(LF);
    if (pending !== undefined && nl >= 0) {
      b = Buffer.concat([pending, b]);
      nl += pending.length;
      pending = undefined;
    }
    while (nl >= 0) {
      yield b.subarray(start, nl);
      start = nl + 1;
      nl = b.indexOf(LF, start);
    }
    if (start < b.length) {
      const rest = b.subarray(start);
      pending = pending === undefined ? Buffer.from(rest) : Buffer.concat([pending, rest]);
    }
  }
  if (pending !== undefined && pending.length > 0) yield pending;
}

/**
 * One COPY text line → its fields: null for `\N`, else the bytes with PostgreSQL's escapes
 * undone (`\b \f \n \r \t \v \\`, octal `\ooo`, hex `\xhh`, and a backslash before any other
 * character standing for that character). An empty line is a row of a table without columns.
 */
export function copyFields(line: Buffer): (Buffer | null)[] {
  if (line.length === 0) return [];
  const fields: (Buffer | null)[] = [];
  let start = 0;
  for (;;) {
    let end = line.indexOf(TAB, start);
    if (end < 0) end = line.length;
    fields.push(unescapeField(line.subarray(start, end)));
    if (end === line.length) return fields;
    start = end + 1;
  }
}

const SIMPLE: Record<number, number> = { 0x62: 0x08, 0x66: 0x0c, 0x6e: 0x0a, 0x72: 0x0d, 0x74: 0x09, 0x76: 0x0b };

function unescapeField(f: Buffer): Buffer | null {
  if (f.length === 2 && f[0] === BACKSLASH && f[1] === 0x4e) return null;
  if (!f.includes(BACKSLASH)) return f;
  const out = Buffer.allocUnsafe(f.length);
  let p = 0;
  for (let i = 0; i < f.length; i++) {
    const c = f[i] as number;
    if (c !== BACKSLASH || i + 1 >= f.length) {
      out[p++] = c;
      continue;
    }
    const n = f[++i] as number;
    const simple = SIMPLE[n];
    if (simple !== undefined) {
      out[p++] = simple;
    } else if (n >= 0x30 && n <= 0x37) {
      let v = n - 0x30;
      for (let k = 0; k < 2 && i + 1 < f.length && (f[i + 1] as number) >= 0x30 && (f[i + 1] as number) <= 0x37; k++) v = v * 8 + ((f[++i] as number) - 0x30);
      out[p++] = v & 0xff;
    } else if (n === 0x78 && i + 1 < f.length && isHex(f[i + 1] as number)) {
      let v = hexValue(f[++i] as number);
      if (i + 1 < f.length && isHex(f[i + 1] as number)) v = v * 16 + hexValue(f[++i] as number);
      out[p++] = v;
    } else {
      out[p++] = n;
    }
  }
  return out.subarray(0, p);
}

const isHex = (c: number): boolean => (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
const hexValue = (c: number): number => (c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x61 + 10);

/**
 * The shape of a PostgreSQL collection for `cairn diff`: a table's columns (name, type, not
 * null, generated), kind and partition parent; a view's or another object's definition without
 * OIDs, sequence values and the lists of dependent objects' OIDs (which change with a restore or
 * with the data, not with the schema). The "(schema)" archive's definition is compared without
 * pg_dump's version line.
 */
export function postgresShape(entry: CollectionEntry): unknown {
  const VOLATILE = new Set(['oid', 'dependentOids', 'sequences', 'usedSequences', 'routineOids', 'lastValue', 'isCalled', 'pgDumpVersion', 'extensionSequences', 'collationVersion', 'routineCalls']);
  return Object.fromEntries(Object.entries(entry.definition).filter(([k]) => !VOLATILE.has(k)));
}
