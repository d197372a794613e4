/**
 * The engine contract suite (./contract.ts) for PostgreSQL: scratch databases
 * `cairn_ec_<pid>_<n>` on the local server, dropped afterwards.
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { dropDatabase, ensurePostgres, EVERY_KIND_SQL, ident, lit, PG_HOST, PG_PORT, PG_USER, pgUrl, snapshotOf } from '../helpers/postgres.js';
import { describeEngineContract, type EngineFixture, type ObjectKind } from './contract.js';

ensurePostgres();
const made: string[] = [];
let n = 0;
const dbOf = (url: string): string => decodeURIComponent(new URL(url).pathname.slice(1));
const SYSTEM = "NOT IN ('pg_catalog', 'information_schema', 'pg_toast')";
/** bigint (count(*)) as a number, like the other integers. */
const types = { getTypeParser: (oid: number, format?: 'text' | 'binary') => (oid === 20 ? Number : pg.types.getTypeParser(oid, format)) };

/**
 * Runs SQL (any number of statements) in a database and returns the last result's rows as arrays.
 * A client of its own each time, never a psql child: the cases run at once, and a synchronous
 * child would stop all of them while it runs.
 */
async function sql(db: string, text: string): Promise<unknown[][]> {
  const client = new pg.Client({ host: PG_HOST, port: PG_PORT, user: PG_USER, database: db, types });
  await client.connect();
  try {
    const result = (await client.query({ text, rowMode: 'array' })) as unknown as pg.QueryResult | pg.QueryResult[];
    return ((Array.isArray(result) ? result.at(-1) : result)?.rows ?? []) as unknown[][];
  } finally {
    await client.end();
  }
}

const column = async (db: string, text: string): Promise<string[]> => (await sql(db, text)).map((r) => String(r[0]));
const stagingDatabases = (db: string): Promise<string[]> =>
  column('postgres', `SELECT datname FROM pg_database WHERE datname LIKE ${lit(`${db.replace(/_/g, '\\_')}\\_\\_cairn\\_%`)} ORDER BY 1`);
const exists = async (db: string): Promise<boolean> =>
  (await sql('postgres', `SELECT 1 FROM pg_database WHERE datname = ${lit(db)}`)).length > 0;

/** One line per object of each kind: its name and its definition as the server prints it. */
const OBJECT_QUERIES: Record<ObjectKind, string> = {
  tables: `SELECT n.nspname || '.' || c.relname || ' ' || c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p') AND n.nspname ${SYSTEM}`,
  indexes: `SELECT schemaname || '.' || indexname || ': ' || indexdef FROM pg_indexes WHERE schemaname ${SYSTEM}`,
  views: `SELECT schemaname || '.' || viewname || ': ' || definition FROM pg_views WHERE schemaname ${SYSTEM}
          UNION ALL SELECT schemaname || '.' || matviewname || ' (materialized): ' || definition FROM pg_matviews WHERE schemaname ${SYSTEM}`,
  triggers: `SELECT tgrelid::regclass::text || ' ' || tgname || ': ' || pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal`,
  sequences: `SELECT schemaname || '.' || sequencename || ': ' || data_type || ' ' || start_value || ' ' || increment_by || ' ' || min_value
                || ' ' || max_value || ' ' || cycle || ' last ' || coalesce(last_value::text, 'none') FROM pg_sequences WHERE schemaname ${SYSTEM}`,
  constraints: `SELECT coalesce(nullif(conrelid, 0)::regclass::text, contypid::regtype::text) || ' ' || conname || ': ' || pg_get_constraintdef(c.oid)
                  FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname ${SYSTEM}`,
};

const fixture: EngineFixture = {
  kind: 'postgres',
  async createDatabase() {
    const url = this.missingDatabase();
    await sql('postgres', `CREATE DATABASE ${ident(dbOf(url))}`);
    return url;
  },
  missingDatabase() {
    const name = `cairn_ec_${process.pid}_${++n}`;
    made.push(name);
    return pgUrl(name);
  },
  exists: (url) => exists(dbOf(url)),
  exec: async (url, text) => void (await sql(dbOf(url), text)),
  query: (url, text) => sql(dbOf(url), text),
  // pg_dump --schema-only, every table's rows by checksum, every sequence's state.
  dump: (url) => snapshotOf(dbOf(url)),
  objects: async (url) => {
    const kinds = Object.keys(OBJECT_QUERIES) as ObjectKind[];
    const all = await sql(dbOf(url), kinds.map((k) => `SELECT ${lit(k)}, x FROM (${OBJECT_QUERIES[k]}) o(x)`).join('\nUNION ALL\n') + ' ORDER BY 1, 2');
    return Object.fromEntries(kinds.map((k) => [k, all.filter((r) => r[0] === k).map((r) => String(r[1]))])) as Record<ObjectKind, string[]>;
  },
  tables: (url) =>
    column(dbOf(url), `SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                        WHERE c.relkind IN ('r', 'p') AND n.nspname ${SYSTEM} ORDER BY 1`),
  // Staging databases named after the target, and staging relations inside it.
  leftovers: async (url) => {
    const db = dbOf(url);
    const databases = await stagingDatabases(db);
    if (!(await exists(db))) return databases;
    return [...databases, ...(await column(db, "SELECT relname FROM pg_class WHERE relname LIKE '%\\_\\_cairn\\_%' ORDER BY 1"))];
  },
  collection: (table) => `public.${table}`,
  blobType: 'bytea',
  blobLiteral: (bytes) => `'\\x${bytes.toString('hex')}'::bytea`,
  // The fixture has no psql meta-commands: it runs as one multi-statement query.
  addEveryKind: async (url) => void (await sql(dbOf(url), readFileSync(EVERY_KIND_SQL, 'utf8'))),
  unsupported: {},
  cleanup: async () => {
    for (const name of made) {
      for (const staging of await stagingDatabases(name)) dropDatabase(staging);
      dropDatabase(name);
    }
  },
};

describeEngineContract('PostgreSQL', fixture);
