/**
 * Post-data work that overlaps the load of a restore into a new database (new-database.ts), as
 * `pg_restore -j` schedules it per table: once every segment of a large table is loaded, its
 * indexes and primary key / unique / exclusion constraints are built, and the table analyzed,
 * in a loading worker's slot (load.ts loadParallel, AfterLoad) while the other workers still
 * load other tables. Everything else of post-data (foreign keys, which need both tables loaded
 * and the referenced unique index built; triggers, rules, policies, partition attachments,
 * index entries that alter their table, comments) runs after the load as before, without the
 * entries built early.
 *
 * Only large tables take this way (EARLY_MIN_BYTES), each entry its own pg_restore process:
 * with thousands of small tables, one process per entry would cost more than it overlaps, and
 * the final `pg_restore -j` builds them in parallel anyway.
 */
import fs from 'node:fs';
import path from 'node:path';
import type pg from 'pg';
import { throwIfAborted } from '../../core/errors.js';
import type { AfterLoad } from './load.js';
import { qname, type PlannedCollection } from './plan.js';
import { listFile, type TocEntry } from './toc.js';

/** Logical bytes of loaded tables below which no early post-data batch starts (its pg_restore would cost more than it overlaps). */
export const EARLY_MIN_BYTES = 32 * 1024 * 1024;

/** What of post-data a table may have built early: its index and constraint entries, and whether it may be analyzed then. */
export interface EarlyTable {
  entries: TocEntry[];
  /** Every index of the table is among `entries`: ANALYZE then sees the indexes' expressions, as it would at the end. */
  analyze: boolean;
}

/**
 * Which post-data entries of `kept` (the filtered archive, in archive order) belong to one plain
 * table of the plan (not partitioned, not a partition, not loaded through another relation):
 * INDEX entries (except `serial`, those that also alter their table) and CONSTRAINT entries
 * (primary key, unique, exclusion), attributed by the catalog OIDs the backup recorded for the
 * table (PlannedCollection.dependentOids). `postData`: the keys (TocEntry objects) of post-data
 * entries. Returns the tables with at least one such entry.
 */
export function earlyPostData(
  plan: { collections: PlannedCollection[] },
  kept: TocEntry[],
  postData: Set<TocEntry>,
  serial: Set<TocEntry>,
  routed: (t: PlannedCollection) => boolean,
): Map<PlannedCollection, EarlyTable> {
  const owners = new Map<number, PlannedCollection>();
  for (const c of plan.collections) {
    if (c.relkind !== 'r' || c.table === undefined || c.table.partitionOf || c.partitionOf || routed(c)) continue;
    for (const oid of c.dependentOids) owners.set(oid, c);
  }
  const out = new Map<PlannedCollection, EarlyTable>();
  const late = new Set<PlannedCollection>();
  for (const e of kept) {
    if (!postData.has(e) || (e.desc !== 'INDEX' && e.desc !== 'CONSTRAINT')) continue;
    const c = owners.get(e.oid);
    if (c === undefined) continue;
    // A constraint's tag is "table constraint": a second check that the OID names this table's.
    const mismatch = e.schema !== c.source.schema || (e.desc === 'CONSTRAINT' && !e.tag.startsWith(`${c.source.name} `));
    if (mismatch || serial.has(e)) {
      late.add(c);
      continue;
    }
    const t = out.get(c) ?? { entries: [], analyze: true };
    t.entries.push(e);
    out.set(c, t);
  }
  for (const c of late) {
    const t = out.get(c);
    if (t) t.analyze = false;
  }
  return out;
}

/**
 * The AfterLoad of a restore into a new database. Loaded tables wait until together they hold
 * `minBytes` logical bytes; then each of their early entries is one piece of work (one
 * `pgRestore` of that entry: several of one table can build at once, as with `pg_restore -j`),
 * and whoever finishes a table's last entry runs its ANALYZE in the worker's session. `done`
 * (read after the load) holds the entries built and `analyzed` the tables analyzed.
 */
export class EarlyPostData implements AfterLoad {
  readonly done = new Set<TocEntry>();
  /** Catalog OIDs (in the staging database) of the tables analyzed. */
  readonly analyzed = new Set<number>();
  private readonly ready: PlannedCollection[] = [];
  private readonly queue: { t: PlannedCollection; e: TocEntry }[] = [];
  /** Entries of each queued table not built yet. */
  private readonly left = new Map<PlannedCollection, number>();
  private built = 0;

  constructor(
    private readonly tables: Map<PlannedCollection, EarlyTable>,
    private readonly tmp: string,
    private readonly pgRestore: (args: string[], signal: AbortSignal) => Promise<unknown>,
    private readonly minBytes = EARLY_MIN_BYTES,
  ) {}

  loaded(t: PlannedCollection): void {
    if (!this.tables.has(t)) return;
    this.ready.push(t);
    if (this.ready.reduce((n, r) => n + r.item.entry.logicalBytes, 0) < this.minBytes) return;
    for (const r of this.ready.splice(0)) {
      const { entries } = this.tables.get(r) as EarlyTable;
      this.left.set(r, entries.length);
      for (const e of entries) this.queue.push({ t: r, e });
    }
  }

  take(): ((client: pg.Client, signal: AbortSignal) => Promise<void>) | undefined {
    const next = this.queue.shift();
    if (next === undefined) return undefined;
    const { t, e } = next;
    const list = path.join(this.tmp, `early-${this.built++}.list`);
    return async (client, signal) => {
      fs.writeFileSync(list, listFile([e]), { mode: 0o600 });
      await this.pgRestore(['--section=post-data', '-L', list, '--exit-on-error', '--no-password'], signal);
      this.done.add(e);
      const left = (this.left.get(t) as number) - 1;
      this.left.set(t, left);
      if (left > 0 || !(this.tables.get(t) as EarlyTable).analyze) return;
      throwIfAborted(signal);
      await client.query(`ANALYZE ${qname(t.source)}`);
      const { rows } = await client.query<{ oid: number }>('SELECT pg_catalog.to_regclass($1)::oid AS oid', [qname(t.source)]);
      if (rows[0]?.oid != null) this.analyzed.add(Number(rows[0].oid));
    };
  }
}
