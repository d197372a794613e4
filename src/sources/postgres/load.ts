/**
 * Loading data into a restore's tables, and the steps that follow the data in both paths.
 *
 * loadParallel COPYs every table's stream (`COPY … FROM STDIN`, pg-copy-text) with `jobs`
 * sessions of its own, largest first; a table the backup read in segments (see source.ts) is
 * loaded as that many COPYs into the same table, so one large table does not leave the other
 * sessions idle. Each table's row count is checked against the manifest's once all its segments
 * are in: a stream that holds more or fewer rows is a CorruptionError. Progress is reported
 * every PROGRESS_BYTES of a table's stream and at its end.
 *
 * Then: setSequences, refreshMaterializedViews and applyRenames run in one session (in the
 * staging database, or inside the switch transaction), analyzeParallel with `jobs` sessions.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { CairnError, ConflictError, CorruptionError, SourceError, throwIfAborted } from '../../core/errors.js';
import { runGroup } from '../../core/errgroup.js';
import { randomId } from '../../core/ids.js';
import type { RestoreOptions } from '../types.js';
import { identQuoter, quoteIdent } from './catalog.js';
import { connect, pgError, type PgConnectionSettings } from './connection.js';
import type { PgSequenceState, PgTableDefinition } from './definitions.js';
import { display } from './naming.js';
import { ALTER_WORD, qname, supportSequences, type Plan, type PlannedCollection, type QName } from './plan.js';
import { truncated } from './staging.js';
import type { TocEntry } from './toc.js';

/**
 * Settings of the sessions that COPY the data in: those of the script pg_restore runs (no
 * statement, lock or idle timeout the role or database may set cuts a long COPY; search_path
 * empty and row security off, as for pg_restore's COPY; XML read as content), and the styles the
 * backup wrote the text in (an interval written in postgres style reads otherwise under
 * IntervalStyle=sql_standard).
 */
export const LOAD_SESSION_SETTINGS = [
  'SET statement_timeout = 0',
  'SET lock_timeout = 0',
  'SET idle_in_transaction_session_timeout = 0',
  "SELECT pg_catalog.set_config('search_path', '', false)",
  'SET check_function_bodies = false',
  'SET xmloption = content',
  'SET row_security = off',
  "SET DateStyle = 'ISO'",
  "SET IntervalStyle = 'postgres'",
];

/** Bytes of a table's stream between two progress reports. */
const PROGRESS_BYTES = 4 * 1024 * 1024;

/** Running totals of one table over its segments. */
interface TableLoad {
  /** Rows seen in the streams so far (for progress). */
  rows: number;
  bytes: number;
  /** Rows COPY reported loaded. */
  copied: number;
  /** Segments not loaded yet. */
  left: number;
}

/**
 * COPYs one table's stream (or one segment of it) in; once every segment is in, checks the row
 * count against the backup's.
 */
async function copyTable(
  client: pg.Client,
  t: PlannedCollection,
  segment: number | undefined,
  load: TableLoad,
  into: QName,
  options: RestoreOptions,
  settings: PgConnectionSettings,
  database: string,
  session: CopySession,
): Promise<number> {
  const { signal, onProgress } = options;
  const def = t.table as PgTableDefinition;
  const name = t.item.entry.name;
  throwIfAborted(signal);
  const { quote } = session;
  // No list for a table with no columns to name: COPY reads one (empty) line per row.
  const cols = def.copyColumns.length > 0 ? ` (${def.copyColumns.map(quote).join(', ')})` : '';
  let reported = 0;
  async function* counted(): AsyncGenerator<Uint8Array> {
    for await (const chunk of t.item.data(segment)) {
      load.bytes += chunk.length;
      reported += chunk.length;
      for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) load.rows++;
      if (reported >= PROGRESS_BYTES) {
        reported = 0;
        onProgress?.({ collection: name, rows: load.rows, bytes: load.bytes });
      }
      yield chunk;
    }
  }
  // Loaded with the first COPY, not at start-up (issue 22).
  const { from: copyFrom } = await import('pg-copy-streams');
  const stream = client.query(copyFrom(`COPY ${quote(into.schema)}.${quote(into.name)}${cols} FROM STDIN`));
  try {
    await pipeline(Readable.from(counted()), stream, ...(signal ? [{ signal }] : []));
  } catch (err) {
    throwIfAborted(signal);
    if (err instanceof CairnError) throw err;
    const code = (err as { code?: string }).code;
    if (code && /^[0-9A-Z]{5}$/.test(code)) {
      // 22P05 untranslatable character, 22021 invalid byte sequence: the text cannot be had in the target's encoding.
      const hint =
        (code === '22P05' || code === '22021') && session.dataEncoding !== session.serverEncoding
          ? ` The backup's text is in encoding ${session.dataEncoding} and the database "${database}" uses ${session.serverEncoding}; PostgreSQL converts only what has an equivalent, and this text has none. Restore into a new database (cairn creates it with encoding ${session.dataEncoding}) or into one created with that encoding.`
          : '';
      throw new SourceError(`Cannot load table "${name}": ${pgError(err, settings, database).message}${hint}`, { cause: err });
    }
    throw err;
  }
  const rows = stream.rowCount;
  load.copied += rows;
  load.left--;
  if (load.left === 0 && load.copied !== t.item.entry.rowCount) {
    throw new CorruptionError(`Table "${name}": the backup recorded ${t.item.entry.rowCount} rows but its data holds ${load.copied}.`, { objects: [], collections: [name] });
  }
  onProgress?.({ collection: name, rows: load.rows, bytes: load.bytes });
  return rows;
}

/** A loading session's encodings and how identifiers are written in its statements (catalog.ts identQuoter). */
interface CopySession {
  /** The encoding the backup's data is in. */
  dataEncoding: string;
  clientEncoding: string;
  serverEncoding: string;
  quote: (name: string) => string;
}

/**
 * Sets the session's client_encoding to the encoding the backup's data is in (the source
 * database's; UTF8 for backups that did not record it), so that COPY stores the bytes as they
 * were when the target has the same encoding (a new database always has), and PostgreSQL
 * converts them, or refuses what has no equivalent, when it has another. SQL_ASCII data into a
 * database of another encoding is the exception: under client_encoding SQL_ASCII, COPY stores
 * any bytes unchecked (0xE9 would land in a UTF8 database as invalid UTF-8), so the data is
 * declared to be in the target's encoding instead: bytes valid there are stored as they are,
 * others are refused.
 */
export async function startCopySession(client: pg.Client, plan: Plan): Promise<CopySession> {
  const dataEncoding = plan.schemaDef.dataEncoding ?? 'UTF8';
  const server = await client.query<{ e: string }>("SELECT current_setting('server_encoding') AS e");
  const serverEncoding = server.rows[0]?.e ?? dataEncoding;
  const clientEncoding = dataEncoding === 'SQL_ASCII' ? serverEncoding : dataEncoding;
  await client.query("SELECT set_config('client_encoding', $1, false)", [clientEncoding]);
  return { dataEncoding, clientEncoding, serverEncoding, quote: identQuoter(clientEncoding, serverEncoding) };
}

/**
 * Work a loading worker takes between its COPYs once tables are loaded (post-data.ts): `loaded`
 * hears of each table whose every segment is in; `take` hands out the next piece of work ready
 * to run in the worker's session (with the load's group signal), or undefined. A worker with no
 * unit left to start waits, while others still load, for the work their tables may bring.
 */
export interface AfterLoad {
  loaded(t: PlannedCollection): void;
  take(): ((client: pg.Client, signal: AbortSignal) => Promise<void>) | undefined;
}

/**
 * Loads every table's data of the plan into `database` with `jobs` parallel COPY sessions (see
 * the module comment), each table into the relation `into` names (default: its source name).
 * Returns the rows COPY reported loaded. The first failure aborts the other sessions' COPYs
 * (core/errgroup.ts runGroup), waits for them to end, and is rethrown (an abort as the
 * signal's reason); CorruptionError when a table's
 * rows differ from the manifest's count, SourceError when PostgreSQL refuses a row; `after`'s
 * errors as the loads' (AfterLoad: work on loaded tables in the workers' slots).
 */
export async function loadParallel(
  settings: PgConnectionSettings,
  database: string,
  plan: Plan,
  jobs: number,
  options: RestoreOptions,
  into: (t: PlannedCollection) => QName = (t) => t.source,
  after?: AfterLoad,
): Promise<number> {
  const tables = plan.collections.filter((c) => c.table !== undefined && c.item.entry.dataFormat !== undefined);
  const segmentsOf = (t: PlannedCollection): number => Math.max(1, t.item.segments ?? 1);
  const units = tables
    .flatMap((t) => Array.from({ length: segmentsOf(t) }, (_, k) => ({ t, segment: segmentsOf(t) > 1 ? k : undefined })))
    .map((u, i) => ({ ...u, i }))
    // largest first: a big table's segments start at once, small tables fill the gaps
    .sort((a, b) => b.t.item.entry.logicalBytes / segmentsOf(b.t) - a.t.item.entry.logicalBytes / segmentsOf(a.t) || a.i - b.i);
  const loaded = new Map<PlannedCollection, TableLoad>(tables.map((t) => [t, { rows: 0, bytes: 0, copied: 0, left: segmentsOf(t) }]));
  let next = 0;
  let rows = 0;
  let inFlight = 0;
  // Settled whenever a unit ends: a worker with nothing to start waits on it for `after` work.
  let wake = (): void => undefined;
  let unitEnded = new Promise<void>((r) => (wake = r));
  const ended = (): void => {
    wake();
    unitEnded = new Promise<void>((r) => (wake = r));
  };
  // One session per worker; the first failure aborts the others' COPYs (errgroup semantics).
  const worker = async (group: AbortSignal): Promise<void> => {
    if (next >= units.length) return;
    const client = await connect(settings, database);
    const aborted = new Promise<void>((r) => group.addEventListener('abort', () => r(), { once: true }));
    try {
      for (const sql of LOAD_SESSION_SETTINGS) await client.query(sql);
      const session = await startCopySession(client, plan);
      while (!group.aborted) {
        // Work on loaded tables first (after.take), while it overlaps loads; once none is
        // left, what remains is the final post-data's (in parallel there).
        const job = next < units.length || inFlight > 0 ? after?.take() : undefined;
        if (job !== undefined) {
          await job(client, group);
          continue;
        }
        if (next < units.length) {
          const u = units[next++] as (typeof units)[number];
          const load = loaded.get(u.t) as TableLoad;
          inFlight++;
          try {
            // Not `rows += await …`: that reads `rows` before the await, so parallel workers
            // would overwrite each other's additions (a restore of 1,000,110 rows said 499,712).
            const copied = await copyTable(client, u.t, u.segment, load, into(u.t), { ...options, signal: group }, settings, database, session);
            rows += copied;
            if (load.left === 0) after?.loaded(u.t);
          } finally {
            inFlight--;
            ended();
          }
          continue;
        }
        // Nothing to start: while others load, a table they finish may bring work.
        if (after === undefined || inFlight === 0) break;
        await Promise.race([unitEnded, aborted]);
      }
    } finally {
      await client.end().catch(() => undefined);
    }
  };
  await runGroup(Array.from({ length: Math.min(jobs, units.length) }, () => worker), options.signal);
  return rows;
}

/**
 * Partitioned tables whose partitions cannot be loaded one by one: pg_dump's rule
 * (getPartitioningInfo, pg_dump 11.20+ / 15.3+: the hash opclass `enum_ops` among the key's
 * opclasses: an enum value hashes by its OID, which differs in a restored database), widened to
 * every hash key whose hash is not the same in another database: a key column whose type holds
 * an enum or a reg* type (written as a name, read back as a new OID) anywhere in it (domain,
 * array, range, multirange, composite), and a nondeterministic collation (its hash is the ICU
 * sort key, which may change with the ICU version). The argument is the tables' current names
 * ("schema"."name" as regclass text).
 */
const UNSAFE_PARTITIONING_SQL = `
  WITH RECURSIVE parts AS (
    SELECT p.name, pt.partrelid, pt.partstrat, pt.partattrs::int2[] AS attrs, pt.partclass::oid[] AS classes, pt.partcollation::oid[] AS colls
      FROM unnest($1::text[]) AS p(name) JOIN pg_catalog.pg_partitioned_table pt ON pt.partrelid = p.name::regclass
  ), keytypes(name, t) AS (
    SELECT parts.name, a.atttypid FROM parts JOIN pg_catalog.pg_attribute a ON a.attrelid = parts.partrelid AND a.attnum = ANY(parts.attrs)
     WHERE parts.partstrat = 'h'
    UNION
    SELECT k.name, x.t FROM keytypes k JOIN pg_catalog.pg_type ty ON ty.oid = k.t
     CROSS JOIN LATERAL (
       SELECT ty.typbasetype WHERE ty.typbasetype <> 0
       UNION ALL SELECT ty.typelem WHERE ty.typelem <> 0
       UNION ALL SELECT r.rngsubtype FROM pg_catalog.pg_range r WHERE r.rngtypid = ty.oid OR r.rngmultitypid = ty.oid
       UNION ALL SELECT ca.atttypid FROM pg_catalog.pg_attribute ca WHERE ty.typrelid <> 0 AND ca.attrelid = ty.typrelid AND ca.attnum > 0 AND NOT ca.attisdropped
     ) AS x(t)
  )
  SELECT parts.name, CASE
      WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_opclass c JOIN pg_catalog.pg_am am ON am.oid = c.opcmethod
                    WHERE c.oid = ANY(parts.classes) AND c.opcname = 'enum_ops' AND am.amname = 'hash'
                      AND c.opcnamespace = 'pg_catalog'::regnamespace) THEN 'hash partitioning on an enum'
      WHEN EXISTS (SELECT 1 FROM keytypes k JOIN pg_catalog.pg_type ty ON ty.oid = k.t
                    WHERE k.name = parts.name AND ty.typtype = 'e') THEN 'hash partitioning on a type holding an enum'
      WHEN EXISTS (SELECT 1 FROM keytypes k JOIN pg_catalog.pg_type ty ON ty.oid = k.t
                    WHERE k.name = parts.name AND ty.typnamespace = 'pg_catalog'::regnamespace AND ty.typname LIKE 'reg%') THEN 'hash partitioning on an object reference (reg* type)'
      WHEN parts.partstrat = 'h' AND EXISTS (SELECT 1 FROM pg_catalog.pg_collation co WHERE co.oid = ANY(parts.colls) AND NOT co.collisdeterministic)
        THEN 'hash partitioning under a nondeterministic collation'
    END AS reason
    FROM parts`;

/**
 * Where each partition's rows go when its hash partitioning is not portable (see
 * UNSAFE_PARTITIONING_SQL): through the topmost restored partitioned table above it, as
 * pg_dump --load-via-partition-root loads, so that each row lands in the partition its hash
 * picks in this database (loading a partition directly fails with "violates partition
 * constraint"). `current` gives a restored table's name in `client`'s database at this point
 * (its staging name in an existing database). Returns the partitions so routed → the name to
 * COPY into, and one line per partitioned table saying so. A partition whose unsafe parent is
 * not restored (it exists in the target) is loaded directly.
 */
export async function partitionRootLoads(
  client: pg.Client,
  plan: Plan,
  current: (c: PlannedCollection) => QName,
): Promise<{ into: Map<PlannedCollection, QName>; warnings: string[] }> {
  const into = new Map<PlannedCollection, QName>();
  const parents = plan.collections.filter((c) => c.relkind === 'p');
  if (parents.length === 0) return { into, warnings: [] };
  const { rows } = await client.query<{ name: string; reason: string | null }>(UNSAFE_PARTITIONING_SQL, [parents.map((p) => qname(current(p)))]);
  const reasons = new Map<PlannedCollection, string>();
  for (const p of parents) {
    const reason = rows.find((r) => r.name === qname(current(p)))?.reason;
    if (reason) reasons.set(p, reason);
  }
  if (reasons.size === 0) return { into, warnings: [] };
  const bySource = new Map(plan.collections.filter((c) => c.table !== undefined).map((c) => [display(c.source), c]));
  const routed = new Map<PlannedCollection, { reason: string; partitions: PlannedCollection[] }>();
  for (const c of plan.collections) {
    if (c.relkind !== 'r' || !c.table?.partitionOf) continue;
    let reason: string | undefined;
    let root: PlannedCollection | undefined;
    for (let up = bySource.get(c.table.partitionOf); up !== undefined; up = up.table?.partitionOf ? bySource.get(up.table.partitionOf) : undefined) {
      reason ??= reasons.get(up);
      root = up;
    }
    if (reason === undefined || root === undefined) continue;
    into.set(c, current(root));
    const entry = routed.get(root) ?? { reason, partitions: [] };
    entry.partitions.push(c);
    routed.set(root, entry);
  }
  const warnings = [...routed].map(([root, { reason, partitions }]) => {
    const shown = partitions.slice(0, 5).map((c) => display(c.target)).join(', ');
    const more = partitions.length > 5 ? ` and ${partitions.length - 5} more` : '';
    return `rows of ${shown}${more} were loaded through their partitioned table ${display(root.target)} (${reason}: a row's partition may differ from the source's), as pg_dump --load-via-partition-root does.`;
  });
  return { into, warnings };
}

/**
 * The post-data entries of a new-database restore in `pg_restore -j` runs, in order, each run
 * with its number of parallel jobs: partition indexes are attached one at a time (two workers
 * attaching indexes under one partitioned index deadlock: seen with a sub-partitioned table's
 * unique key), foreign keys, which may need the attached indexes, after them; the rest in
 * parallel before. `serialFirst`: entries to run one at a time before everything else (their
 * own deadlocks). Empty runs are left out.
 */
export function postDataPasses(kept: TocEntry[], jobs: number, serialFirst: TocEntry[] = []): { entries: TocEntry[]; jobs: number }[] {
  const rest = kept.filter((e) => !serialFirst.includes(e));
  const attaches = rest.filter((e) => e.desc === 'INDEX ATTACH');
  const passes =
    attaches.length === 0
      ? [{ entries: rest, jobs }]
      : [
          { entries: rest.filter((e) => e.desc !== 'INDEX ATTACH' && e.desc !== 'FK CONSTRAINT'), jobs },
          { entries: attaches, jobs: 1 },
          { entries: rest.filter((e) => e.desc === 'FK CONSTRAINT'), jobs },
        ];
  return [{ entries: serialFirst, jobs: 1 }, ...passes].filter((p) => p.entries.length > 0);
}

/**
 * ANALYZE of every table and materialized view of a database with `jobs` sessions (largest
 * first), as `vacuumdb --analyze-only -j` does: one ANALYZE statement would use one core.
 * `skip`: catalog OIDs of tables analyzed already (post-data.ts, during the load).
 */
export async function analyzeParallel(settings: PgConnectionSettings, database: string, jobs: number, signal: AbortSignal | undefined, skip: Set<number> = new Set()): Promise<void> {
  const first = await connect(settings, database);
  const clients = [first];
  try {
    const all = await first.query<{ name: string; oid: number }>(
      `SELECT format('%I.%I', n.nspname, c.relname) AS name, c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relkind IN ('r', 'm', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
         -- ANALYZE of a partitioned table samples its foreign partitions through their wrapper
         -- (a file, another server): not part of restoring this database, and may fail.
         AND NOT (c.relkind = 'p' AND EXISTS (
           WITH RECURSIVE tree(oid) AS (SELECT c.oid UNION ALL SELECT i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.oid)
           SELECT 1 FROM tree JOIN pg_class f ON f.oid = tree.oid WHERE f.relkind = 'f'))
       ORDER BY pg_table_size(c.oid) DESC, 1`,
    );
    const rows = all.rows.filter((r) => !skip.has(Number(r.oid)));
    for (let k = 1; k < Math.min(jobs, rows.length); k++) clients.push(await connect(settings, database));
    let next = 0;
    await runGroup(
      clients.map((client) => async (group: AbortSignal) => {
        while (!group.aborted && next < rows.length) {
          await client.query(`ANALYZE ${(rows[next++] as { name: string }).name}`);
        }
      }),
      signal,
    );
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  }
}

/**
 * Sets the restored sequences (owned and standalone) to their backed-up values, and the others
 * the restore sets (plan.ts supportSequences): one it created (every one into a new database)
 * to its backed-up value; one that existed in the target and that a restored table draws from
 * only forward, never behind what it has handed out already (when the restoring role may read
 * and set it); other existing ones not at all.
 * A support sequence the archive did not hold (a backup older than its table) is left alone.
 */
export async function setSequences(client: pg.Client, plan: Plan, signal: AbortSignal | undefined): Promise<void> {
  const states: PgSequenceState[] = [];
  for (const c of plan.collections) {
    states.push(...(c.table?.sequences ?? []));
    if (c.sequence) states.push(c.sequence);
  }
  for (const s of states) {
    throwIfAborted(signal);
    await client.query('SELECT pg_catalog.setval($1::regclass, $2::bigint, $3::boolean)', [qname(s), s.lastValue, s.isCalled]);
  }
  for (const { state: s, used } of supportSequences(plan)) {
    throwIfAborted(signal);
    const existed = plan.sequencesInTarget?.has(display(s)) ?? false;
    if (existed && !used) continue;
    // An existing sequence the restoring role may not read and set (another role's) is left as it is.
    const found = await client.query<{ inc: string; allowed: boolean }>(
      `SELECT q.seqincrement::text AS inc, pg_catalog.has_sequence_privilege(q.seqrelid, 'SELECT') AND pg_catalog.has_sequence_privilege(q.seqrelid, 'UPDATE') AS allowed
         FROM pg_catalog.pg_sequence q WHERE q.seqrelid = pg_catalog.to_regclass($1)`,
      [qname(s)],
    );
    const inc = found.rows[0]?.inc;
    if (inc === undefined || (existed && !found.rows[0]?.allowed)) continue;
    if (existed) {
      const { rows } = await client.query<{ last: string; called: boolean }>(`SELECT last_value::text AS last, is_called AS called FROM ${qname(s)}`);
      const now = rows[0];
      if (now === undefined || !isAhead(s, { lastValue: now.last, isCalled: now.called }, BigInt(inc))) continue;
    }
    await client.query('SELECT pg_catalog.setval($1::regclass, $2::bigint, $3::boolean)', [qname(s), s.lastValue, s.isCalled]);
  }
}

/**
 * Whether state `a` of a sequence is past state `b` (increment `inc`): the value the next
 * nextval would return comes later in the sequence's direction.
 */
export function isAhead(a: Pick<PgSequenceState, 'lastValue' | 'isCalled'>, b: Pick<PgSequenceState, 'lastValue' | 'isCalled'>, inc: bigint): boolean {
  const next = (x: Pick<PgSequenceState, 'lastValue' | 'isCalled'>): bigint => BigInt(x.lastValue) + (x.isCalled ? inc : 0n);
  return inc > 0n ? next(a) > next(b) : next(a) < next(b);
}

/**
 * Refreshes the restored materialized views that held data at backup time (one left WITH NO
 * DATA stays unpopulated, as pg_restore leaves it: pg_dump writes no REFRESH for it); one that
 * reads another waits for it (retried until no progress). A view whose query still fails (on
 * the data as restored: a division by zero, a volatile function, a table not restored) is left
 * unpopulated rather than failing the restore: returns one warning per such view. One that
 * reads a foreign table is never refreshed (it stays unpopulated, with a warning).
 * `inTransaction`: each refresh runs under a savepoint, so a failed one leaves the transaction usable.
 */
export async function refreshMaterializedViews(client: pg.Client, plan: Plan, inTransaction: boolean, signal: AbortSignal | undefined): Promise<string[]> {
  let pending = plan.collections.filter((c) => c.relkind === 'm' && c.populated !== false);
  // One that reads a foreign table (through views and partitions too) is not refreshed: that
  // would make the database server connect to the foreign server (a file, another host) during
  // the restore, on the word of a schema archive (docs/security.md).
  const foreign = new Set<PlannedCollection>();
  for (const m of pending) if (await readsForeignTable(client, m.source)) foreign.add(m);
  pending = pending.filter((m) => !foreign.has(m));
  const skipped = [...foreign].map(
    (m) =>
      `materialized view ${display(m.target)} is left unpopulated: it reads a foreign table (or calls a function while the database has a foreign server or dblink), and refreshing it would reach another server during the restore; run REFRESH MATERIALIZED VIEW when that is wanted.`,
  );
  return [...skipped, ...(await refreshEach(client, pending, inTransaction, signal))];
}

/**
 * Whether the relation's rules (a view's or materialized view's query) may read a foreign table:
 * directly or through views and partitions, or through a function of the database's own when it
 * has a foreign server or dblink (16384: FirstNormalObjectId, the first OID not built in).
 */
async function readsForeignTable(client: pg.Client, rel: QName): Promise<boolean> {
  const { rows } = await client.query<{ yes: boolean }>(
    `WITH RECURSIVE reads(oid) AS (
       SELECT pg_catalog.to_regclass($1)::oid
       UNION
       SELECT x.oid FROM reads CROSS JOIN LATERAL (
         SELECT d.refobjid AS oid FROM pg_catalog.pg_rewrite r
           JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid AND d.refclassid = 'pg_catalog.pg_class'::regclass
          WHERE r.ev_class = reads.oid
         UNION ALL
         SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent = reads.oid) x)
     SELECT pg_catalog.to_regclass($1) IS NULL
         OR EXISTS (SELECT 1 FROM reads JOIN pg_catalog.pg_class c ON c.oid = reads.oid WHERE c.relkind = 'f')
         -- A function of the database's own (not built in) may read a foreign table or call
         -- dblink, which records no dependency: counted when the database could reach elsewhere.
         OR (EXISTS (SELECT 1 FROM reads JOIN pg_catalog.pg_rewrite w ON w.ev_class = reads.oid
                       JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = w.oid
                        AND d.refclassid = 'pg_catalog.pg_proc'::regclass AND d.refobjid >= 16384)
             AND (EXISTS (SELECT 1 FROM pg_catalog.pg_foreign_server) OR EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'dblink'))) AS yes`,
    [qname(rel)],
  );
  return rows[0]?.yes === true;
}

async function refreshEach(client: pg.Client, views: PlannedCollection[], inTransaction: boolean, signal: AbortSignal | undefined): Promise<string[]> {
  let pending = views;
  const errors = new Map<PlannedCollection, unknown>();
  while (pending.length > 0) {
    const failed: PlannedCollection[] = [];
    for (const m of pending) {
      throwIfAborted(signal);
      if (inTransaction) await client.query('SAVEPOINT cairn_refresh');
      try {
        await client.query(`REFRESH MATERIALIZED VIEW ${qname(m.source)}`);
        if (inTransaction) await client.query('RELEASE SAVEPOINT cairn_refresh');
      } catch (err) {
        if (!(err as { code?: string }).code) throw err;
        if (inTransaction) await client.query('ROLLBACK TO SAVEPOINT cairn_refresh');
        failed.push(m);
        errors.set(m, err);
      }
    }
    if (failed.length === pending.length) {
      return failed.map(
        (m) =>
          `materialized view ${display(m.target)} is left unpopulated: its query failed on the restored data (${(errors.get(m) as Error).message}); run REFRESH MATERIALIZED VIEW once the data allows.`,
      );
    }
    pending = failed;
  }
  return [];
}

/**
 * Gives the restored collections their target names (and schemas, created when missing): they
 * were created under their source names.
 *
 * Two steps, so that renames which trade names (Users → users and users → Users) or move one
 * table into another's place across schemas succeed in any order: first every renamed relation
 * takes a name no other has (short: within the 63-byte limit), then its final one. A relation
 * that moves to another schema takes its indexes and owned sequences along, whose names must be
 * unique in a schema: they are parked too, then get their own names back where free in the new
 * schema, else the table's new name in place of its old one (`t_pkey` → `t2_pkey`), else a
 * numbered one, so a move never fails on a name the user cannot rename (trial: `"S".t` →
 * `public.t2` beside `public.t`, both with `t_pkey`).
 */
export async function applyRenames(client: pg.Client, plan: Plan, signal: AbortSignal | undefined): Promise<void> {
  const moves = plan.collections.filter((c) => c.source.schema !== c.target.schema || c.source.name !== c.target.name);
  const tag = randomId(4);
  const parked = moves.map((c, i) => ({ c, parked: { schema: c.source.schema, name: `cairn_rename_${tag}_${i}` }, companions: [] as Companion[] }));
  for (const [i, m] of parked.entries()) {
    throwIfAborted(signal);
    if (m.c.source.schema !== m.c.target.schema && m.c.relkind !== 'S' && m.c.relkind !== 'v') {
      m.companions = await parkCompanions(client, m.c.source, `cairn_rename_${tag}_${i}_`);
    }
    await client.query(`ALTER ${ALTER_WORD[m.c.relkind]} ${qname(m.c.source)} RENAME TO ${quoteIdent(m.parked.name)}`);
  }
  for (const { c, parked: p, companions } of parked) {
    throwIfAborted(signal);
    const word = ALTER_WORD[c.relkind];
    let at = p;
    if (c.source.schema !== c.target.schema) {
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(c.target.schema)}`);
      await client.query(`ALTER ${word} ${qname(at)} SET SCHEMA ${quoteIdent(c.target.schema)}`);
      at = { schema: c.target.schema, name: p.name };
    }
    await client.query(`ALTER ${word} ${qname(at)} RENAME TO ${quoteIdent(c.target.name)}`);
    for (const companion of companions) await unparkCompanion(client, companion, c);
  }
}

/** An index or owned sequence parked while its table moves schema: its kind, parked name, own name. */
interface Companion {
  word: 'INDEX' | 'SEQUENCE';
  parked: string;
  original: string;
}

/** Renames the indexes and owned sequences of `rel` to `<prefix><k>` (see applyRenames). */
async function parkCompanions(client: pg.Client, rel: QName, prefix: string): Promise<Companion[]> {
  const { rows } = await client.query<{ name: string; kind: string }>(
    `SELECT c.relname AS name, c.relkind::text AS kind FROM pg_catalog.pg_class c
       JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid WHERE i.indrelid = $1::regclass
     UNION ALL
     SELECT c.relname, c.relkind::text FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class c ON c.oid = d.objid
      WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.refobjid = $1::regclass AND d.deptype IN ('a', 'i') AND c.relkind = 'S'
     ORDER BY 1`,
    [qname(rel)],
  );
  const out: Companion[] = [];
  for (const [k, r] of rows.entries()) {
    const word = r.kind === 'S' ? 'SEQUENCE' : 'INDEX';
    const parked = `${prefix}${k}`;
    await client.query(`ALTER ${word} ${quoteIdent(rel.schema)}.${quoteIdent(r.name)} RENAME TO ${quoteIdent(parked)}`);
    out.push({ word, parked, original: r.name });
  }
  return out;
}

/** Gives a parked companion of `c` a name free in its new schema (see applyRenames). */
async function unparkCompanion(client: pg.Client, companion: Companion, c: PlannedCollection): Promise<void> {
  const schema = c.target.schema;
  const base = companion.original.startsWith(c.source.name) ? truncated(c.target.name + companion.original.slice(c.source.name.length)) : companion.original;
  // The numbered ones keep their number however long the base is (truncated drops from the base).
  const candidates = [...new Set([companion.original, base, ...Array.from({ length: 99 }, (_, n) => truncated(base, `_${n + 1}`))])];
  const { rows } = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = ANY($2)`,
    [schema, candidates],
  );
  const taken = new Set(rows.map((r) => r.name));
  const name = candidates.find((n) => !taken.has(n));
  if (name === undefined) {
    throw new ConflictError(`Cannot name the ${companion.word.toLowerCase()} "${companion.original}" of ${display(c.target)} in schema "${schema}": ${candidates.length} names tried are taken. Rename it in the source or restore into another schema.`);
  }
  await client.query(`ALTER ${companion.word} ${quoteIdent(schema)}.${quoteIdent(companion.parked)} RENAME TO ${quoteIdent(name)}`);
}
