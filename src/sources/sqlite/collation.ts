/**
 * Collations an application registers itself (Android's LOCALIZED and UNICODE, an app's own):
 * SQLite only has BINARY, NOCASE and RTRIM, and refuses to create a table, index, view or
 * trigger that names another one ("no such collation sequence"), so such a database could
 * never be restored. A backup names them in a warning; a restore creates each object with
 * BINARY in their place (the fallback: any rows that were distinct stay distinct, so UNIQUE
 * constraints hold) and, once everything is loaded, puts the definitions back as written
 * (PRAGMA writable_schema, defensive mode off for that statement only: only the collation
 * names differ from what ran). Indexes on those columns are then in BINARY order: the
 * application must run `REINDEX <collation>` with its collation registered before relying on
 * them (Android does it when the locale recorded in android_metadata changes).
 */
import type BetterSqlite3 from 'better-sqlite3';
import { lexSql, type Lexeme } from './lexer.js';
import { quoteIdent } from './sql.js';

/** Collations every SQLite has. */
const BUILT_IN = new Set(['binary', 'nocase', 'rtrim']);

function collationAt(t: Lexeme[], i: number): Lexeme | undefined {
  const word = t[i];
  if (word === undefined || word.kind !== 'ident' || word.quoted || word.value.toUpperCase() !== 'COLLATE') return undefined;
  // Comments and whitespace sit between them when lexed with trivia.
  let k = i + 1;
  while (t[k]?.kind === 'trivia') k++;
  const name = t[k];
  return name !== undefined && (name.kind === 'ident' || name.kind === 'string') ? name : undefined;
}

/** The application collations `sql` names (as written, first spelling of each), in order. */
export function appCollations(sql: string): string[] {
  let t: Lexeme[];
  try {
    t = lexSql(sql);
  } catch {
    return [];
  }
  const out = new Map<string, string>();
  for (let i = 0; i < t.length; i++) {
    const name = collationAt(t, i);
    if (name !== undefined && !BUILT_IN.has(name.value.toLowerCase()) && !out.has(name.value.toLowerCase())) out.set(name.value.toLowerCase(), name.value);
  }
  return [...out.values()];
}

/** `sql` with every application collation replaced by BINARY (unchanged when it names none). */
export function withFallbackCollations(sql: string): string {
  if (appCollations(sql).length === 0) return sql;
  const t = lexSql(sql, { trivia: true });
  for (let i = 0; i < t.length; i++) {
    const name = collationAt(t, i);
    if (name === undefined || BUILT_IN.has(name.value.toLowerCase())) continue;
    const k = t.indexOf(name);
    t[k] = { kind: 'ident', text: 'BINARY', value: 'BINARY', quoted: false };
  }
  return t.map((x) => x.text).join('');
}

/** A definition created with the fallback, to be put back as written. */
export interface CollationRewrite {
  type: 'table' | 'index' | 'view' | 'trigger';
  name: string;
  /** The definition as the backup recorded it (renamed). */
  sql: string;
}

/**
 * Puts the definitions back as written, in `schema`'s sqlite_schema (main: the staging file, or
 * the target inside the switch's transaction, as its last change). Each row must exist and
 * have been created from the fallback's text (createObject & co.); nothing else is touched.
 */
export function restoreCollations(db: BetterSqlite3.Database, rewrites: CollationRewrite[]): void {
  if (rewrites.length === 0) return;
  db.unsafeMode(true);
  try {
    db.pragma('writable_schema = ON');
    try {
      const update = db.prepare('UPDATE main.sqlite_schema SET sql = ? WHERE type = ? AND name = ?');
      for (const r of rewrites) {
        const changed = update.run(r.sql, r.type, r.name).changes;
        if (changed !== 1) throw new Error(`the ${r.type} ${quoteIdent(r.name)} created with a fallback collation was not found to restore its definition`);
      }
    } finally {
      db.pragma('writable_schema = OFF');
    }
  } finally {
    db.unsafeMode(false);
  }
}

/** Every definition of the plan that names an application collation, as the backup recorded it (renamed). */
export function collationRewrites(objects: { kind: string; name: string; createSql: string; indexes?: { name: string; sql: string }[]; triggers: { name: string; sql: string }[] }[]): CollationRewrite[] {
  const out: CollationRewrite[] = [];
  const add = (type: CollationRewrite['type'], name: string, sql: string): void => {
    if (appCollations(sql).length > 0) out.push({ type, name, sql });
  };
  for (const p of objects) {
    if (p.kind !== 'table' && p.kind !== 'view') continue;
    add(p.kind, p.name, p.createSql);
    for (const idx of p.indexes ?? []) add('index', idx.name, idx.sql);
    for (const tr of p.triggers) add('trigger', tr.name, tr.sql);
  }
  return out;
}
