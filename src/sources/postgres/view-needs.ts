/**
 * What a restored view or materialized view reads: its relations, checked before anything is
 * written. pg_restore would otherwise fail midway (`relation "public.orders" does not exist`)
 * when `--include` selects a view without the tables it reads, into a database that lacks them.
 *
 * The relations come from the view's own SQL in the schema archive (pg_dump qualifies every
 * name, under an empty search_path): each `schema.name` outside literals and comments that the
 * archive defines as a table, view, materialized view or foreign table. A view read by a
 * selected view is followed in turn (views over views), so the message names every relation
 * missing at once. Functions need no check here: those a restored view uses come along with it
 * (routines.ts); routines selected by name have their own check (routine-restore.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '../../core/errors.js';
import { display, postgresNaming } from './naming.js';
import type { Plan, QName } from './plan.js';
import { relKey, rewriteQualified } from './staging.js';
import { listFile, type ScriptBlock, type TocEntry } from './toc.js';

const VIEW_DESCS = new Set(['VIEW', 'MATERIALIZED VIEW']);
const READ_DESCS: Record<string, string> = { TABLE: 'table', VIEW: 'view', 'MATERIALIZED VIEW': 'materialized view', 'FOREIGN TABLE': 'foreign table' };

/** Every `schema.name` pair the SQL names outside literals, dollar quotes and comments (relKey form). */
export function qualifiedNames(sql: string): Set<string> {
  const seen = new Set<string>();
  // rewriteQualified looks every qualified name up in its map: record the lookups, rename nothing.
  const recorder = new (class extends Map<string, string> {
    override get(key: string): string | undefined {
      seen.add(key);
      return undefined;
    }
  })([['', '']]);
  rewriteQualified(sql, recorder);
  return seen;
}

/**
 * Throws UsageError, before anything is written, when a restored view or materialized view reads
 * relations that the restore leaves out and the target does not have, naming them and the
 * `--include` that adds them. `script` prints the archive's SQL for a list file (tools.ts
 * archiveScript); `present` says which of some names exist in the target, as "schema.name"
 * (naming.ts display; nothing, for a new database). `exporting`: the message speaks of a plain-SQL
 * export (which has no target) rather than a restore.
 */
export async function assertViewsHaveTheirRelations(
  plan: Plan,
  toc: TocEntry[],
  tmp: string,
  script: (listPath: string) => Promise<ScriptBlock[]>,
  present: (names: QName[]) => Promise<Set<string>>,
  exporting = false,
): Promise<void> {
  const views = plan.collections.filter((c) => c.relkind === 'v' || c.relkind === 'm');
  if (views.length === 0) return;
  const relations = new Map<string, { q: QName; word: string }>();
  for (const e of toc) {
    const word = READ_DESCS[e.desc];
    if (word !== undefined) relations.set(relKey(e.schema, e.tag), { q: { schema: e.schema, name: e.tag }, word });
  }
  const viewEntries = toc.filter((e) => VIEW_DESCS.has(e.desc));
  const list = path.join(tmp, 'views.list');
  fs.writeFileSync(list, listFile(viewEntries), { mode: 0o600 });
  const sqlOf = new Map<string, string>();
  for (const b of await script(list)) {
    if (b.desc !== undefined && VIEW_DESCS.has(b.desc)) sqlOf.set(relKey(b.schema as string, b.name as string), b.sql);
  }
  const restored = new Set(plan.collections.map((c) => relKey(c.source.schema, c.source.name)));
  /** relKey → the views that read it. */
  const wanted = new Map<string, Set<string>>();
  const visited = new Set<string>();
  const follow = (key: string, reader: string): void => {
    if (visited.has(key)) return;
    visited.add(key);
    for (const ref of qualifiedNames(sqlOf.get(key) ?? '')) {
      if (ref === key || !relations.has(ref) || restored.has(ref)) continue;
      wanted.set(ref, (wanted.get(ref) ?? new Set()).add(reader));
    }
  };
  const show = (key: string): string => {
    const r = relations.get(key);
    return r === undefined ? key : postgresNaming.written(display(r.q));
  };
  for (const v of views) follow(relKey(v.source.schema, v.source.name), postgresNaming.written(v.item.entry.name));
  if (wanted.size === 0) return;
  const there = await present([...wanted.keys()].map((k) => (relations.get(k) as { q: QName }).q));
  // The missing ones; a missing view is restored by adding it, and needs what it reads in turn.
  const missing: string[] = [];
  const queue = [...wanted.keys()];
  while (queue.length > 0) {
    const key = queue.shift() as string;
    const r = relations.get(key) as { q: QName; word: string };
    if (there.has(display(r.q)) || missing.includes(key)) continue;
    missing.push(key);
    if (r.word === 'view' || r.word === 'materialized view') {
      const before = new Set(wanted.keys());
      follow(key, show(key));
      const more = [...wanted.keys()].filter((k) => !before.has(k));
      if (more.length > 0) {
        for (const name of await present(more.map((m) => (relations.get(m) as { q: QName }).q))) there.add(name);
        queue.push(...more);
      }
    }
  }
  if (missing.length === 0) return;
  const lines = missing.map((k) => `${relations.get(k)?.word ?? 'relation'} ${show(k)} (read by ${[...(wanted.get(k) ?? [])].join(', ')})`);
  if (exporting) {
    throw new UsageError(
      `Cannot export the selected view${views.length === 1 ? '' : 's'}: ${lines.join('; ')} ${missing.length === 1 ? 'is' : 'are'} left out of this export, so the script would not load. Nothing was written. Add --include ${missing.map(show).join(',')}, or --exclude the view${views.length === 1 ? '' : 's'}.`,
    );
  }
  throw new UsageError(
    `Cannot restore the selected view${views.length === 1 ? '' : 's'}: ${lines.join('; ')} ${missing.length === 1 ? 'is' : 'are'} not restored and not in the target. Nothing was changed. Add --include ${missing.map(show).join(',')} (or restore into a database that has ${missing.length === 1 ? 'it' : 'them'}).`,
  );
}
