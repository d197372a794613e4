/**
 * What a PostgreSQL restore creates where, in words and counts (RestoreResult.plan): whether the
 * target database is new, existing or existing and empty (a restore into an existing database
 * merges into it, which an empty one makes easy to miss), how many objects of each kind are
 * created or replaced, and which are renamed. Reported with the restore's result (CLI output,
 * `--json`, the job's result through the API).
 */
import type pg from 'pg';
import type { RestorePlanSummary } from '../types.js';
import { display } from './naming.js';
import { KIND_WORD, type Plan } from './plan.js';

/**
 * Whether the database holds no user objects: no table, view, sequence or foreign table, and no
 * function, outside the system schemas and extensions.
 */
export async function isEmptyDatabase(client: pg.Client): Promise<boolean> {
  const { rows } = await client.query<{ n: string }>(
    `SELECT (SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                AND n.nspname NOT LIKE 'pg\\_%'
                AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'))
          + (SELECT count(*) FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
                AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'))
          AS n`,
  );
  return Number(rows[0]?.n ?? 0) === 0;
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : word.endsWith('x') ? 'es' : 's'}`;

/** "2 tables, 1 view" from counts by kind word, in KIND_WORD's order. */
function counted(counts: Record<string, number>): string {
  return [...Object.values(KIND_WORD), 'function', 'procedure']
    .filter((w) => (counts[w] ?? 0) > 0)
    .map((w) => plural(counts[w] as number, w))
    .join(', ');
}

/**
 * The summary of `plan` restored into `database` (as people read it): `state` says whether the
 * database was created, existed, or existed without user objects; `replaced` holds the target
 * names ("schema.name") an overwrite replaces.
 */
export function planSummary(
  plan: Plan,
  database: string,
  state: RestorePlanSummary['database'],
  replaced: ReadonlySet<string>,
  routines: { replaced: ReadonlySet<string>; kept: ReadonlySet<string> } = { replaced: new Set(), kept: new Set() },
): RestorePlanSummary {
  const created: Record<string, number> = {};
  const replacedCounts: Record<string, number> = {};
  const renamed: Record<string, string> = {};
  for (const c of plan.collections) {
    const word = KIND_WORD[c.relkind];
    const into = replaced.has(display(c.target)) ? replacedCounts : created;
    into[word] = (into[word] ?? 0) + 1;
    if (display(c.source) !== display(c.target)) renamed[display(c.source)] = display(c.target);
  }
  // Functions and procedures selected by name (routines.ts), one per name with its overloads.
  // Those the target has exactly as the backup are kept: neither created nor replaced.
  for (const r of plan.routines) {
    if (routines.kept.has(r.item.entry.name)) continue;
    const into = routines.replaced.has(r.item.entry.name) ? replacedCounts : created;
    into[r.kind] = (into[r.kind] ?? 0) + 1;
  }
  const where = state === 'new' ? `Into new database ${database}` : state === 'replaced-whole' ? `Into a new database swapped in for ${database} (--on-conflict replace)` : state === 'existing-empty' ? `Into existing database ${database} (empty: merged into it)` : `Into existing database ${database} (merged with what it holds)`;
  const parts = [
    Object.keys(created).length > 0 ? `created ${counted(created)}` : 'created nothing',
    ...(Object.keys(replacedCounts).length > 0 ? [`replaced ${counted(replacedCounts)}`] : []),
    ...(Object.keys(renamed).length > 0 ? [`renamed ${Object.entries(renamed).map(([a, b]) => `${a} → ${b}`).join(', ')}`] : []),
  ];
  return { database: state, location: database, created, replaced: replacedCounts, renamed, summary: `${where}: ${parts.join('; ')}` };
}
