/**
 * Restoring a renamed copy beside the live object of its original name, on PostgreSQL (issue
 * 15, StarRocks `RESTORE … TABLE a AS b`): `--include public.orders --rename
 * public.orders=public.orders_yesterday` into the database where public.orders lives. The live
 * objects stay exactly as they were (their dump, rows and sequences compared before and after);
 * the copy holds the backup's rows, its clashing index, constraint, sequence and statistics
 * names take the new table name; `--on-conflict overwrite` replaces an earlier copy. Also what
 * the result says was created where (RestoreResult.plan): new, existing, existing and empty.
 *
 * A seeded random run (fixed seed here; CAIRN_BESIDE_SEEDS=1..20 for more) changes the live
 * table, backs up, and restores a random listed backup beside it, checking after each step that
 * the copy holds exactly what that backup held and the live table is untouched.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConflictError, UsageError } from '../../src/core/errors.js';
import { runBackup } from '../../src/jobs/backup.js';
import { runRestore } from '../../src/jobs/restore.js';
import { Repository } from '../../src/repo/repository.js';
import { openSource, openTarget } from '../../src/sources/index.js';
import type { PostgresTarget } from '../../src/sources/postgres/target.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { cairn, cairnJson } from '../helpers/cli.js';
import { dropDatabase, ensurePostgres, ident, pgEnv, pgUrl, psql, sequenceStates, tableChecksums } from '../helpers/postgres.js';

const made: string[] = [];
/** A new empty database named with this file's prefix (dropped in afterAll). */
const newDatabase = (what: string): string => {
  const name = `i15sel_${what}_${randomBytes(4).toString('hex')}`;
  psql('postgres', `CREATE DATABASE ${ident(name)}`);
  made.push(name);
  return name;
};
/** A database name with this file's prefix that does not exist yet (dropped in afterAll). */
const unusedName = (what: string): string => {
  const name = `i15sel_${what}_${randomBytes(4).toString('hex')}`;
  made.push(name);
  return name;
};

/** Copies are named orders_yesterday*, copy_*: the rest of the database is the live part. */
const isCopy = (qualified: string): boolean => /^public\.(orders_yesterday|copy_)/.test(qualified);

/** `pg_dump --schema-only` of everything but the copies, normalised as schemaDump is. */
function liveDump(db: string): string {
  const r = spawnSync('pg_dump', ['--schema-only', '-d', db, '-T', 'public.orders_yesterday*', '-T', 'public.copy_*'], { env: pgEnv(), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout
    .split('\n')
    .filter((line) => !/^\\(un)?restrict\b/.test(line) && !/^-- Dumped (from|by) /.test(line))
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

const without = (rec: Record<string, string>): Record<string, string> => Object.fromEntries(Object.entries(rec).filter(([k]) => !isCopy(k)));
/** The live part of a database: its dump, rows and sequences, copies left out. */
const live = (db: string): { schema: string; tables: Record<string, string>; sequences: Record<string, string> } => ({
  schema: liveDump(db),
  tables: without(tableChecksums(db)),
  sequences: without(sequenceStates(db)),
});
const rowsOf = (db: string, rel: string): string => psql(db, `SELECT coalesce(string_agg(t::text, ';' ORDER BY t::text), '') FROM ${rel} t`).trim();

const SCHEMA = `
  CREATE TABLE customers (id serial PRIMARY KEY, name text UNIQUE);
  CREATE TABLE orders (id serial PRIMARY KEY, customer int REFERENCES customers, total numeric CHECK (total >= 0),
                       ident bigint GENERATED ALWAYS AS IDENTITY);
  CREATE INDEX idx_total ON orders (total);
  CREATE STATISTICS orders_stats (dependencies) ON customer, total FROM orders;
  CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
  CREATE TRIGGER orders_touch BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION touch();
  COMMENT ON TABLE orders IS 'the orders';
  COMMENT ON INDEX idx_total IS 'by total';
  CREATE VIEW big_orders AS SELECT o.id, orders.total FROM orders JOIN orders o USING (id) WHERE orders.total > 10;
  CREATE MATERIALIZED VIEW order_totals AS SELECT customer, sum(total) AS s FROM orders GROUP BY customer;
  CREATE VIEW big_ids AS SELECT id FROM big_orders;
  CREATE UNIQUE INDEX order_totals_customer ON order_totals (customer);
  CREATE TABLE events (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
  CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
  CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
  INSERT INTO customers (name) VALUES ('a'), ('b');
  INSERT INTO orders (customer, total) VALUES (1, 5), (2, 50), (1, 20);
  INSERT INTO events VALUES (1, '2024-05-01'), (2, '2025-05-01');
  REFRESH MATERIALIZED VIEW order_totals;`;

let dir: string;
let repoDir: string;
let shop: string;
/** Rows of the backed-up objects at backup time. */
let backedUp: { orders: string; events: string; totals: string; big: string };

beforeAll(async () => {
  ensurePostgres();
  dir = mkdtempSync(join(tmpdir(), 'cairn-beside-'));
  repoDir = join(dir, 'repo');
  shop = newDatabase('shop');
  psql(shop, SCHEMA);
  const repo = await Repository.init(new FileSystemStorage(repoDir), { compression: { algorithm: 'none', level: 'default' } });
  await runBackup({ repo, source: openSource(pgUrl(shop)), id: 'yesterday', compressionWorkers: 0 });
  backedUp = { orders: rowsOf(shop, 'orders'), events: rowsOf(shop, 'events'), totals: rowsOf(shop, 'order_totals'), big: rowsOf(shop, 'big_orders') };
  // Today's changes: the live objects differ from the backup's.
  psql(shop, `INSERT INTO orders (customer, total) VALUES (2, 70); UPDATE orders SET total = 6 WHERE total = 5; DELETE FROM events WHERE id = 2;
              INSERT INTO events VALUES (3, '2024-07-01'); REFRESH MATERIALIZED VIEW order_totals;`);
}, 60_000);

afterAll(() => {
  for (const db of made) dropDatabase(db);
  rmSync(dir, { recursive: true, force: true });
});

describe('PostgreSQL restore beside the live table', () => {
  it('CLI: orders restored as orders_yesterday next to orders, which is untouched; clashing names take the new table name', () => {
    const before = live(shop);
    const todays = rowsOf(shop, 'orders');
    const r = cairnJson<{ rows: number; warnings?: string[]; plan: { database: string; created: Record<string, number>; renamed: Record<string, string>; summary: string } }>([
      'restore', 'yesterday', '--repo', repoDir, '--to', pgUrl(shop), '--include', 'public.orders', '--rename', 'public.orders=public.orders_yesterday',
    ]);
    expect(r.rows).toBe(3);
    expect(rowsOf(shop, 'orders_yesterday')).toBe(backedUp.orders);
    expect(rowsOf(shop, 'orders')).toBe(todays);
    expect(live(shop)).toEqual(before);
    // The copy's own objects, renamed where the live ones hold the names.
    const names = psql(
      shop,
      `SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relname LIKE 'orders_yesterday%' OR relname LIKE 'idx_total%'`,
    ).trim();
    expect(names).toBe('idx_total,idx_total_orders_yesterday,orders_yesterday,orders_yesterday_id_seq,orders_yesterday_ident_seq,orders_yesterday_pkey');
    expect(psql(shop, `SELECT string_agg(stxname, ',' ORDER BY stxname) FROM pg_statistic_ext`).trim()).toBe('orders_stats,orders_yesterday_stats');
    expect(psql(shop, `SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'orders_yesterday'::regclass`).trim()).toBe(
      "nextval('orders_yesterday_id_seq'::regclass)",
    );
    expect(psql(shop, `SELECT string_agg(conname, ',' ORDER BY conname) FROM pg_constraint WHERE conrelid = 'orders_yesterday'::regclass`).trim()).toBe(
      'orders_customer_fkey,orders_total_check,orders_yesterday_pkey',
    );
    expect(psql(shop, `SELECT tgname FROM pg_trigger WHERE tgrelid = 'orders_yesterday'::regclass AND NOT tgisinternal`).trim()).toBe('orders_touch');
    expect(psql(shop, `SELECT obj_description('orders_yesterday'::regclass) || '/' || obj_description('idx_total_orders_yesterday'::regclass)`).trim()).toBe('the orders/by total');
    // The copy's sequence goes on from the backup's state, the live one from today's.
    expect(psql(shop, `SELECT last_value FROM orders_yesterday_id_seq`).trim()).toBe('3');
    expect(psql(shop, `SELECT last_value FROM orders_id_seq`).trim()).toBe('4');
    expect(r.warnings?.join('\n')).toMatch(/constraint \(and its index\) "orders_pkey" of public\.orders_yesterday restored as "orders_yesterday_pkey"/);
    expect(r.warnings?.join('\n')).toMatch(/index "idx_total" of public\.orders_yesterday restored as "idx_total_orders_yesterday"/);
    expect(r.plan.database).toBe('existing');
    expect(r.plan.created).toEqual({ table: 1 });
    expect(r.plan.renamed).toEqual({ 'public.orders': 'public.orders_yesterday' });
  });

  it('CLI: a second time is refused unless --on-conflict overwrite, which replaces the copy and still leaves orders alone', () => {
    psql(shop, `DELETE FROM orders_yesterday WHERE total > 10`);
    const before = live(shop);
    const copyBefore = rowsOf(shop, 'orders_yesterday');
    const args = ['restore', 'yesterday', '--repo', repoDir, '--to', pgUrl(shop), '--include', 'public.orders', '--rename', 'public.orders=public.orders_yesterday'];
    const refused = cairn(args);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/Table public\.orders_yesterday already exists/);
    expect(rowsOf(shop, 'orders_yesterday')).toBe(copyBefore);
    const r = cairn([...args, '--on-conflict', 'overwrite']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Into existing database .*: created nothing; replaced 1 table; renamed public\.orders → public\.orders_yesterday\./);
    expect(rowsOf(shop, 'orders_yesterday')).toBe(backedUp.orders);
    expect(live(shop)).toEqual(before);
    expect(psql(shop, `SELECT count(*) FROM pg_class WHERE relname LIKE 'cairn\\_aside%' OR relname LIKE '%\\_\\_cairn\\_%'`).trim()).toBe('0');
  });

  it('a session holding a lock on the live table makes the switch give up after its lock timeout, changing nothing', async () => {
    const { default: pg } = await import('pg');
    const before = live(shop);
    const copy = (): string => (psql(shop, `SELECT to_regclass('public.orders_yesterday') IS NOT NULL`).trim() === 't' ? rowsOf(shop, 'orders_yesterday') : 'none');
    const copyBefore = copy();
    const holder = new pg.Client({ connectionString: pgUrl(shop) });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE public.orders IN ACCESS SHARE MODE');
      const target = openTarget(pgUrl(shop)) as PostgresTarget;
      target.switchLockTimeoutMs = 300;
      const repo = await Repository.open(new FileSystemStorage(repoDir));
      const err = await runRestore({
        repo,
        backupId: 'yesterday',
        target,
        selection: { include: ['public.orders'] },
        renames: new Map([['public.orders', 'public.orders_yesterday']]),
        onConflict: 'overwrite',
      }).catch((e: unknown) => e);
      expect(String(err)).toMatch(/held a lock .* Nothing was changed/);
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      await holder.end();
    }
    expect(live(shop)).toEqual(before);
    expect(copy()).toBe(copyBefore);
    expect(psql(shop, `SELECT count(*) FROM pg_class WHERE relname LIKE 'cairn\\_aside%' OR relname LIKE '%\\_\\_cairn\\_%'`).trim()).toBe('0');
  });

  it('API: a partitioned table with its partitions, a view and a materialized view beside theirs, in one restore', async () => {
    const { SqliteTokenStore } = await import('../../src/catalog/tokens.js');
    const { catalogFile, startServer } = await import('../../src/server/index.js');
    const { CairnClient } = await import('../../src/sdk/index.js');
    const dataDir = join(dir, 'server');
    const store = new SqliteTokenStore(catalogFile(dataDir));
    const token = store.create('operator').token;
    store.close();
    const server = await startServer({ dataDir, port: 0, allowAdHocUrls: true });
    try {
      const before = live(shop);
      const client = new CairnClient({ url: server.url, token });
      const job = await client.restores.create(
        {
          backup: 'yesterday',
          repository: repoDir,
          target: pgUrl(shop),
          include: ['public.events*', 'public.big_orders', 'public.order_totals'],
          renames: {
            'public.events': 'public.copy_events',
            'public.events_2024': 'public.copy_events_2024',
            'public.events_2025': 'public.copy_events_2025',
            'public.big_orders': 'public.copy_big_orders',
            'public.order_totals': 'public.copy_order_totals',
          },
        },
        { waitForCompletion: true, pollMs: 50 },
      );
      expect(job.state).toBe('SUCCESS');
      const result = job.result as { warnings?: string[]; plan: { created: Record<string, number>; summary: string } };
      expect(result.plan.created).toEqual({ table: 2, 'partitioned table': 1, view: 1, 'materialized view': 1 });
      expect(result.warnings?.join('\n')).toMatch(/"events_2024_pkey" of public\.copy_events_2024 restored as "copy_events_2024_pkey"/);
      expect(rowsOf(shop, 'copy_events')).toBe(backedUp.events);
      expect(psql(shop, `SELECT string_agg(inhrelid::regclass::text, ',' ORDER BY 1) FROM pg_inherits WHERE inhparent = 'copy_events'::regclass`).trim()).toBe(
        'copy_events_2024,copy_events_2025',
      );
      // The view and the materialized view read the live orders (not restored): today's rows.
      expect(rowsOf(shop, 'copy_big_orders')).toBe(rowsOf(shop, 'big_orders'));
      expect(rowsOf(shop, 'copy_order_totals')).toBe(rowsOf(shop, 'order_totals'));
      expect(psql(shop, `SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'copy_order_totals'::regclass`).trim()).toBe('copy_order_totals_customer');
      expect(live(shop)).toEqual(before);
      // A partition alone would be attached to the live parent, whose partition holds its bounds: refused.
      const repo = await Repository.open(new FileSystemStorage(repoDir));
      const lone = await runRestore({ repo, backupId: 'yesterday', target: openTarget(pgUrl(shop)), selection: { include: ['public.events_2024'] }, renames: new Map([['public.events_2024', 'public.copy_2024']]) }).catch((e: unknown) => e);
      expect(lone).toBeInstanceOf(ConflictError);
      expect((lone as Error).message).toMatch(/without its partitioned table public\.events, so it would be attached to public\.events/);
      expect(live(shop)).toEqual(before);
    } finally {
      await server.close();
    }
  });

  it('a partitioned table renamed with a partition keeping a name the target uses is refused, overwrite or not, the live table untouched', async () => {
    const before = live(shop);
    const liveEvents = rowsOf(shop, 'events');
    const repo = await Repository.open(new FileSystemStorage(repoDir));
    for (const onConflict of ['fail', 'overwrite'] as const) {
      // events_2025 is renamed; events_2024 keeps its name, which is the live events' partition.
      const err = await runRestore({
        repo,
        backupId: 'yesterday',
        target: openTarget(pgUrl(shop)),
        selection: { include: ['public.events*'] },
        renames: new Map([['public.events', 'public.copy_ev'], ['public.events_2025', 'public.copy_ev_2025']]),
        onConflict,
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConflictError);
      expect((err as Error).message).toMatch(/Partitioned table public\.events is restored as public\.copy_ev, but its partition public\.events_2024 keeps a name that exists in .*--rename public\.events_2024=public\.copy_ev_2024\)/);
      expect((err as Error).message).not.toMatch(/events_2025 keeps/);
      expect(live(shop)).toEqual(before);
      expect(rowsOf(shop, 'events')).toBe(liveEvents);
      expect(psql(shop, `SELECT string_agg(inhrelid::regclass::text, ',' ORDER BY 1) FROM pg_inherits WHERE inhparent = 'events'::regclass`).trim()).toBe('events_2024,events_2025');
      expect(psql(shop, `SELECT to_regclass('public.copy_ev') IS NULL AND to_regclass('public.copy_ev_2025') IS NULL`).trim()).toBe('t');
    }
  });

  it('the result says what was created where: an existing empty database (merged), then not empty, a new one', async () => {
    const empty = newDatabase('empty');
    const r = cairn(['restore', 'yesterday', '--repo', repoDir, '--to', pgUrl(empty), '--include', 'public.customers,public.orders,public.big_orders']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`Into existing database ${pgUrl(empty)} (empty: merged into it): created 2 tables, 1 view.`);
    const repo = await Repository.open(new FileSystemStorage(repoDir));
    // Not empty any more: merged with what it holds.
    const again = await runRestore({ repo, backupId: 'yesterday', target: openTarget(pgUrl(empty)), selection: { include: ['public.events*'] } });
    expect(again.plan?.database).toBe('existing');
    expect(again.plan?.summary).toMatch(/\(merged with what it holds\): created 2 tables, 1 partitioned table$/);
    // A view whose relations are neither restored nor there: refused before anything is written.
    const bare = newDatabase('bare');
    const refused = await runRestore({ repo, backupId: 'yesterday', target: openTarget(pgUrl(bare)), selection: { include: ['public.big_ids', 'public.order_totals'] } }).catch(
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(UsageError);
    expect((refused as Error).message).toContain(
      'view public.big_orders (read by public.big_ids); table public.orders (read by public.order_totals, public.big_orders) are not restored and not in the target. Nothing was changed. Add --include public.big_orders,public.orders',
    );
    expect(psql(bare, `SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace`).trim()).toBe('0');
    // Into a database that has them, the view alone restores.
    const view = await runRestore({ repo, backupId: 'yesterday', target: openTarget(pgUrl(empty)), selection: { include: ['public.big_ids'] } });
    expect(view.plan?.created).toEqual({ view: 1 });
    const fresh = unusedName('new');
    const created = await runRestore({ repo, backupId: 'yesterday', target: openTarget(pgUrl(fresh)), selection: { include: ['public.customers'] } });
    expect(created.plan).toMatchObject({ database: 'new', created: { table: 1 }, replaced: {} });
  });
});

/** A small deterministic generator (mulberry32). */
function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function seeds(): number[] {
  const spec = process.env.CAIRN_BESIDE_SEEDS;
  if (!spec) return [7];
  const m = /^(\d+)\.\.(\d+)$/.exec(spec);
  if (!m) return spec.split(',').map(Number);
  return Array.from({ length: Number(m[2]) - Number(m[1]) + 1 }, (_, i) => Number(m[1]) + i);
}

describe('the relations a view reads', () => {
  it('are the qualified names of its SQL outside literals and comments', async () => {
    const { qualifiedNames } = await import('../../src/sources/postgres/view-needs.js');
    const names = qualifiedNames(`CREATE VIEW public.v AS SELECT o.id, 'public.fake' FROM (public.orders o JOIN "S x"."T" t USING (id)) -- public.gone\n WHERE x.y > 1;`);
    expect([...names].map((k) => k.replace('\u0000', '.')).sort()).toEqual(['S x.T', 'o.id', 'public.orders', 'public.v', 'x.y']);
  });
});

describe('PostgreSQL restore beside, seeded random sequences', () => {
  for (const seed of seeds()) {
    it(`seed ${seed}: every listed backup restores beside the live table to exactly what it held, the live table untouched`, async () => {
      const rnd = generator(seed);
      const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
      const db = newDatabase(`rnd${seed}`);
      psql(db, `CREATE TABLE t (id serial PRIMARY KEY, v text); CREATE INDEX t_v ON t (v); INSERT INTO t (v) VALUES ('a');`);
      const repo = await Repository.init(new FileSystemStorage(join(dir, `rnd-${seed}`)), { compression: { algorithm: 'none', level: 'default' } });
      const held = new Map<string, string>();
      const steps = process.env.CAIRN_BESIDE_SEEDS ? 10 : 2;
      for (let step = 0; step < steps; step++) {
        const op = rnd();
        if (op < 0.3) psql(db, `INSERT INTO t (v) VALUES ('${step}-${Math.floor(rnd() * 100)}')`);
        else if (op < 0.5) psql(db, `UPDATE t SET v = v || '!' WHERE id = (SELECT min(id) FROM t)`);
        else if (op < 0.6) psql(db, `DELETE FROM t WHERE id = (SELECT max(id) FROM t)`);
        if (held.size === 0 || rnd() < 0.5) {
          const id = `b${step}`;
          await runBackup({ repo, source: openSource(pgUrl(db)), id, compressionWorkers: 0, selection: { include: ['public.t'] } });
          held.set(id, rowsOf(db, 't'));
        }
        const backupId = pick([...held.keys()]);
        const copy = pick(['copy_a', 'copy_b']);
        const exists = psql(db, `SELECT to_regclass('public.${copy}') IS NOT NULL`).trim() === 't';
        const before = live(db);
        const restore = (onConflict: 'fail' | 'overwrite') =>
          runRestore({ repo, backupId, target: openTarget(pgUrl(db)), selection: { include: ['public.t'] }, renames: new Map([['public.t', `public.${copy}`]]), onConflict });
        if (exists && rnd() < 0.3) {
          const err = await restore('fail').catch((e: unknown) => e);
          expect(err, `seed ${seed} step ${step}`).toBeInstanceOf(ConflictError);
        } else {
          await restore(exists ? 'overwrite' : 'fail');
          expect(rowsOf(db, copy), `seed ${seed} step ${step}: ${copy} from ${backupId}`).toBe(held.get(backupId));
        }
        expect(live(db), `seed ${seed} step ${step}`).toEqual(before);
      }
    }, 120_000);
  }
});
