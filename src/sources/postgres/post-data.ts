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
 * Only tables worth a pg_restore process of their own take this way (EARLY_MIN_BYTES): with
 * thousands of small tables, one process per table would cost more than it overlaps, and the
 * final `pg_restore -j` builds them in parallel anyway.
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
 * The AfterLoad of a restore into a new database: batches of loaded tables' early entries run
 * through `pgRestore` (one process, one job, the entries in archive order), then ANALYZE of the
 * batch's tables in the worker's session. `minBytes`: a batch starts only when the loaded
 * tables waiting hold this many logical bytes. `done` (read after the load) holds the entries
 * built and `analyzed` the tables analyzed.
 */
export class EarlyPostData implements AfterLoad {
  readonly done = new Set<TocEntry>();
  /** Catalog OIDs (in the staging database) of the tables analyzed. */
  readonly analyzed = new Set<number>();
  private readonly ready: PlannedCollection[] = [];
  private batch = 0;

  constructor(
    private readonly tables: Map<PlannedCollection, EarlyTable>,
    private readonly kept: TocEntry[],
    private readonly tmp: string,
    private readonly pgRestore: (args: string[], signal: AbortSignal) => Promise<unknown>,
    private readonly minBytes = EARLY_MIN_BYTES,
  ) {}

  loaded(t: PlannedCollection): void {
    if (this.tables.has(t)) this.ready.push(t);
  }

  take(): ((client: pg.Client, signal: AbortSignal) => Promise<void>) | undefined {
    const bytes = this.ready.reduce((n, t) => n + t.item.entry.logicalBytes, 0);
    if (this.ready.length === 0 || bytes < this.minBytes) return undefined;
    const tables = this.ready.splice(0);
    const mine = new Set(tables.flatMap((t) => (this.tables.get(t) as EarlyTable).entries));
    const entries = this.kept.filter((e) => mine.has(e));
    const list = path.join(this.tmp, `early-${this.batch++}.list`);
    return async (client, signal) => {
      fs.writeFileSync(list, listFile(entries), { mode: 0o600 });
      await this.pgRestore(['--section=post-data', '-L', list, '--exit-on-error', '--no-password'], signal);
      for (const e of entries) this.done.add(e);
      const analyze = tables.filter((t) => (this.tables.get(t) as EarlyTable).analyze);
      for (const t of analyze) {
        throwIfAborted(signal);
        await client.query(`ANALYZE ${qname(t.source)}`);
        const { rows } = await client.query<{ oid: number }>('SELECT pg_catalog.to_regclass($1)::oid AS oid', [qname(t.source)]);
        if (rows[0]?.oid != null) this.analyzed.add(Number(rows[0].oid));
      }
    };
  }
}
