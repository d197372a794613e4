/**
 * SQL rewriting for restores into an existing database: the tables of the restore are created
 * and loaded under staging names (`<name>__cairn_<id>_<n>`, below) next to the objects they replace,
 * then renamed to their real names in one short transaction (see target.ts).
 *
 * pg_dump prints relation names schema-qualified and quoted as quote_ident() does
 * (`public.film`, `"Sales Ünit"."Order Lines"`); index and constraint names it prints bare after
 * `CREATE [UNIQUE] INDEX` and `ADD CONSTRAINT`. The rewrite reads the statement as tokens
 * (string literals, dollar-quoted bodies and comments are left alone) and replaces the
 * qualified names found in a map (and `'schema.name'::regclass` literals, as in the defaults
 * `nextval('s.seq'::regclass)` pg_dump prints inline for partitions); the bare index /
 * constraint name only at the head of the entry's statement.
 */
import { randomBytes } from 'node:crypto';

/** Key of a relation in a rename map. */
export function relKey(schema: string, name: string): string {
  return `${schema}\u0000${name}`;
}

const quote = (name: string): string => `"${name.replace(/"/g, '""')}"`;

/**
 * Staging names. Every staging object of one restore carries the restore's id (8 hex digits, a
 * 32-bit random number) in its name, so that it is recognised from the name alone, even when a
 * kill came before its marking comment:
 * - the staging database of a restore into a new database: `<target>__cairn_<id>`;
 * - staging tables, sequences, indexes and constraints of a restore into an existing database:
 *   `<name>__cairn_<id>_<n>` (n: a counter in base 36, unique within the restore).
 * The leading part is truncated so the whole fits in 63 bytes. While the restore runs, a session
 * of it holds the advisory lock (STAGING_LOCK_CLASS, id) — on the maintenance database for a
 * staging database, on the target database for staging relations — and takes it before creating
 * anything under the id: when that lock is free, the owner is gone (its session ended, which a
 * killed process's does at once) and the objects can be dropped. Names of these forms are
 * reserved for cairn. `<name>__cairn_<6 hex>` (relations) and `<target>_cairn_<8 hex>`
 * (databases) are the forms of older versions, recognised by their comment only.
 */
export const STAGING_LOCK_CLASS = 0x63616972; // "cair"

/** A new restore id: 8 hex digits. */
export function newRestoreId(): string {
  return randomBytes(4).toString('hex');
}

/** The id as the second key of pg_advisory_lock(int4, int4). */
export function restoreLockKey(id: string): number {
  return Number.parseInt(id, 16) | 0;
}

/**
 * `name` + `suffix` within PostgreSQL's 63-byte identifier limit: whole characters of `name`
 * dropped from its end until it fits, `suffix` always kept.
 */
export function truncated(name: string, suffix = ''): string {
  const chars = [...name];
  while (chars.length > 0 && Buffer.byteLength(chars.join('') + suffix) > 63) chars.pop();
  return chars.join('') + suffix;
}

/** `<name>__cairn_<id>_<n>`, the original part truncated so the whole fits in 63 bytes. */
export function stagingRelationName(name: string, id: string, n: number): string {
  return truncated(name, `__cairn_${id}_${n.toString(36)}`);
}

/** `<target>__cairn_<id>`, the target part truncated so the whole fits in 63 bytes. */
export function stagingDatabaseName(target: string, id: string): string {
  return truncated(target, `__cairn_${id}`);
}

const STAGING_RELATION = /__cairn_([0-9a-f]{8})_[0-9a-z]+$/;
const LEGACY_STAGING_RELATION = /__cairn_[0-9a-f]{6}$/;
const STAGING_DATABASE = /__cairn_([0-9a-f]{8})$/;

/** The restore id in a staging relation's name, or undefined. */
export function stagingRelationId(name: string): string | undefined {
  return STAGING_RELATION.exec(name)?.[1];
}

/** The restore id in a staging database's name, or undefined. */
export function stagingDatabaseId(name: string): string | undefined {
  return STAGING_DATABASE.exec(name)?.[1];
}

/** Whether a relation is named like a restore's staging relation (this version's or an older one's). */
export function isStagingRelationName(name: string): boolean {
  return STAGING_RELATION.test(name) || LEGACY_STAGING_RELATION.test(name);
}

/** SQL regular expression (for `~`) matching staging relation names, of any version. */
export const STAGING_RELATION_SQL_PATTERN = '__cairn_([0-9a-f]{8}_[0-9a-z]+|[0-9a-f]{6})$';
/** SQL regular expression (for `~`) matching this version's staging database names. */
export const STAGING_DATABASE_SQL_PATTERN = '__cairn_[0-9a-f]{8}$';

const IDENT_START = /[A-Za-z_\u0080-\uffff]/;
const IDENT_PART = /[A-Za-z0-9_$\u0080-\uffff]/;

/** Reads an identifier at `i` (quoted or bare): its name and the index after it, or undefined. */
export function readIdent(sql: string, i: number): { name: string; end: number } | undefined {
  if (sql[i] === '"') {
    let j = i + 1;
    let name = '';
    while (j < sql.length) {
      if (sql[j] === '"') {
        if (sql[j + 1] === '"') {
          name += '"';
          j += 2;
          continue;
        }
        return { name, end: j + 1 };
      }
      name += sql[j];
      j++;
    }
    return undefined;
  }
  if (!IDENT_START.test(sql[i] ?? '')) return undefined;
  let j = i + 1;
  while (j < sql.length && IDENT_PART.test(sql[j] as string)) j++;
  return { name: sql.slice(i, j), end: j };
}

/** The end of a string literal / dollar quote / comment starting at `i`, or undefined when none starts there. */
function skipOpaque(sql: string, i: number): number | undefined {
  const c = sql[i];
  if (c === "'") {
    // E'…' strings escape with backslashes; standard strings only with ''.
    const escaped = (sql[i - 1] === 'E' || sql[i - 1] === 'e') && !IDENT_PART.test(sql[i - 2] ?? ' ');
    let j = i + 1;
    while (j < sql.length) {
      if (escaped && sql[j] === '\\') {
        j += 2;
        continue;
      }
      if (sql[j] === "'") {
        if (sql[j + 1] === "'") {
          j += 2;
          continue;
        }
        return j + 1;
      }
      j++;
    }
    return sql.length;
  }
  if (c === '-' && sql[i + 1] === '-') {
    const nl = sql.indexOf('\n', i);
    return nl < 0 ? sql.length : nl;
  }
  if (c === '/' && sql[i + 1] === '*') {
    const end = sql.indexOf('*/', i + 2);
    return end < 0 ? sql.length : end + 2;
  }
  if (c === '$' && !IDENT_PART.test(sql[i - 1] ?? ' ')) {
    const m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 64));
    if (m) {
      const end = sql.indexOf(m[0], i + m[0].length);
      return end < 0 ? sql.length : end + m[0].length;
    }
  }
  return undefined;
}

/**
 * Replaces every schema-qualified name `schema.name` whose key (relKey) is in `map` with
 * `schema."<new name>"`. A longer chain (`schema.table.column`) is matched on its first two
 * parts. Literals, dollar-quoted text and comments are copied unchanged.
 */
export function rewriteQualified(sql: string, map: ReadonlyMap<string, string>): string {
  if (map.size === 0) return sql;
  let out = '';
  let i = 0;
  while (i < sql.length) {
    const opaque = skipOpaque(sql, i);
    if (opaque !== undefined) {
      out += sql[i] === "'" && sql.startsWith('::regclass', opaque) ? rewriteRegclass(sql.slice(i, opaque), map) : sql.slice(i, opaque);
      i = opaque;
      continue;
    }
    const prev = sql[i - 1] ?? ' ';
    const first = IDENT_PART.test(prev) && sql[i] !== '"' ? undefined : readIdent(sql, i);
    if (first === undefined) {
      out += sql[i];
      i++;
      continue;
    }
    if (sql[first.end] !== '.' || prev === '.') {
      out += sql.slice(i, first.end);
      i = first.end;
      continue;
    }
    const second = readIdent(sql, first.end + 1);
    if (second === undefined) {
      out += sql.slice(i, first.end + 1);
      i = first.end + 1;
      continue;
    }
    const renamed = map.get(relKey(first.name, second.name));
    out += renamed === undefined ? sql.slice(i, second.end) : `${sql.slice(i, first.end + 1)}${quote(renamed)}`;
    i = second.end;
    // The rest of a chain (".column") is not a relation name.
    while (sql[i] === '.') {
      const next = readIdent(sql, i + 1);
      if (next === undefined) break;
      out += sql.slice(i, next.end);
      i = next.end;
    }
  }
  return out;
}

/** A `'schema.name'` literal cast to regclass (as in `nextval('s.seq'::regclass)`), renamed when in the map. */
function rewriteRegclass(literal: string, map: ReadonlyMap<string, string>): string {
  if (!literal.endsWith("'") || literal.length < 2) return literal;
  const text = literal.slice(1, -1).replace(/''/g, "'");
  const first = readIdent(text, 0);
  if (first === undefined || text[first.end] !== '.') return literal;
  const second = readIdent(text, first.end + 1);
  if (second === undefined || second.end !== text.length) return literal;
  const renamed = map.get(relKey(first.name, second.name));
  if (renamed === undefined) return literal;
  return `'${`${text.slice(0, first.end + 1)}${quote(renamed)}`.replace(/'/g, "''")}'`;
}

// A bare identifier as the SQL lexer reads one (pg_dump leaves only [a-z_][a-z0-9_]* unquoted):
// never the ';' or ',' that may follow it (`ATTACH PARTITION public.t_pkey;` named "t_pkey;").
const IDENT = '(?:"(?:[^"]|"")*"|[A-Za-z_\\u0080-\\uffff][A-Za-z0-9_$\\u0080-\\uffff]*)';
const QUALIFIED = `(${IDENT})\\.(${IDENT})`;
const unquote = (s: string): string => (s.startsWith('"') ? s.slice(1, -1).replace(/""/g, '"') : s);

/**
 * The table an entry's statement is about, from its head: `CREATE [UNIQUE] INDEX i ON [ONLY] s.t`,
 * `ALTER TABLE [ONLY] s.t`, `ALTER INDEX s.i` (for INDEX ATTACH: the parent index). undefined
 * when the statement starts otherwise.
 */
export function headRelation(sql: string): { schema: string; name: string } | undefined {
  const m =
    new RegExp(`^CREATE (?:UNIQUE )?INDEX ${IDENT} ON (?:ONLY )?${QUALIFIED}`).exec(sql) ??
    new RegExp(`^ALTER (?:TABLE|INDEX) (?:ONLY )?${QUALIFIED}`).exec(sql);
  if (!m) return undefined;
  return { schema: unquote(m[1] as string), name: unquote(m[2] as string) };
}

/**
 * The relation a pre-data entry is named after, as its SQL spells it: the table or sequence of
 * `CREATE [UNLOGGED|FOREIGN] TABLE s.t` / `CREATE SEQUENCE s.q`, the sequence of `ALTER SEQUENCE
 * s.q OWNED BY …`, the partition of `ALTER TABLE [ONLY] p ATTACH PARTITION s.t`. The entry
 * headers pg_restore prints show a line break in a name as a space (its sanitize_line); the
 * statement shows the name itself. undefined for other statements.
 */
export function createdRelation(sql: string): { schema: string; name: string } | undefined {
  const m =
    new RegExp(`^CREATE (?:UNLOGGED |FOREIGN )?(?:TABLE|SEQUENCE) ${QUALIFIED}`).exec(sql) ??
    new RegExp(`^ALTER SEQUENCE ${QUALIFIED} OWNED BY `).exec(sql) ??
    new RegExp(`^ALTER TABLE (?:ONLY )?${IDENT}\\.${IDENT} ATTACH PARTITION ${QUALIFIED}`).exec(sql);
  if (!m) return undefined;
  return { schema: unquote(m[1] as string), name: unquote(m[2] as string) };
}

/** The domain a `CREATE DOMAIN s.d AS …` statement creates, as the SQL spells it (see createdRelation). */
export function createdDomain(sql: string): { schema: string; name: string } | undefined {
  const m = new RegExp(`^CREATE DOMAIN ${QUALIFIED}`).exec(sql);
  if (!m) return undefined;
  return { schema: unquote(m[1] as string), name: unquote(m[2] as string) };
}

/**
 * The domain of `ALTER DOMAIN s.d ADD CONSTRAINT c CHECK (…) NOT VALID;` (pg_dump writes a
 * domain's NOT VALID check as such a post-data entry of its own), or undefined.
 */
export function notValidDomainCheck(sql: string): { schema: string; name: string } | undefined {
  const m = new RegExp(`^ALTER DOMAIN ${QUALIFIED}\\s+ADD CONSTRAINT ${IDENT} CHECK `).exec(sql);
  if (!m || !/\bNOT VALID;(?:\s|--[^\n]*)*$/.test(sql)) return undefined;
  return { schema: unquote(m[1] as string), name: unquote(m[2] as string) };
}

/** The schema a `CREATE SCHEMA <name>` statement creates, as the SQL spells it (see createdRelation). */
export function createdSchema(sql: string): string | undefined {
  const m = /^CREATE SCHEMA ("(?:[^"]|"")*"|[^\s".(;]+)/.exec(sql);
  return m ? unquote(m[1] as string) : undefined;
}

/** The index a `CREATE [UNIQUE] INDEX <name> ON …` statement creates, as the SQL spells it (see createdRelation). */
export function createdIndex(sql: string): string | undefined {
  const m = new RegExp(`^CREATE (?:UNIQUE )?INDEX (${IDENT}) ON `).exec(sql);
  return m ? unquote(m[1] as string) : undefined;
}

/** The name in `ALTER INDEX a ATTACH PARTITION s.child`, or undefined. */
export function attachedIndex(sql: string): { schema: string; name: string } | undefined {
  const m = new RegExp(`^ALTER INDEX ${IDENT}\\.${IDENT} ATTACH PARTITION ${QUALIFIED}`).exec(sql);
  if (!m) return undefined;
  return { schema: unquote(m[1] as string), name: unquote(m[2] as string) };
}

/** Renames the index at the head of `CREATE [UNIQUE] INDEX <name> ON …`. */
export function renameCreatedIndex(sql: string, to: string): string {
  return sql.replace(new RegExp(`^(CREATE (?:UNIQUE )?INDEX )${IDENT}( ON )`), (_m, a: string, b: string) => `${a}${quote(to)}${b}`);
}

/** The constraint name in `ALTER TABLE [ONLY] s.t ADD CONSTRAINT <name> …` (the entry's first statement). */
export function addedConstraint(sql: string): string | undefined {
  const m = new RegExp(`^ALTER TABLE (?:ONLY )?${IDENT}\\.${IDENT}\\s+ADD CONSTRAINT (${IDENT}) `).exec(sql);
  return m ? unquote(m[1] as string) : undefined;
}

/** Renames the constraint `ADD CONSTRAINT <name>` of the entry's first statement. */
export function renameAddedConstraint(sql: string, to: string): string {
  return sql.replace(
    new RegExp(`^(ALTER TABLE (?:ONLY )?${IDENT}\\.${IDENT}\\s+ADD CONSTRAINT )${IDENT}( )`),
    (_m, a: string, b: string) => `${a}${quote(to)}${b}`,
  );
}

/**
 * A foreign key's statement with `NOT VALID` added (before the closing semicolon), or
 * undefined when it is not valid already (then it stays as it is: nothing to validate later).
 */
export function foreignKeyNotValid(sql: string): string | undefined {
  // The entry's one statement, possibly followed by comment lines (the script's last entry).
  const end = sql.lastIndexOf(';');
  if (end < 0) return undefined;
  const statement = sql.slice(0, end);
  const rest = sql.slice(end + 1);
  if (statement.includes(';') || !/^(?:\s|--[^\n]*)*$/.test(rest) || /\bNOT VALID\s*$/.test(statement)) return undefined;
  return `${statement} NOT VALID;${rest}`;
}
