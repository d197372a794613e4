/**
 * Issue 14, lines 9–11, through the built CLI against the local PostgreSQL server, each compared
 * with what pg_dump | pg_restore makes of the same input:
 * - 9: a restore by a role that is not a superuser (it owns the target database, has CREATEDB)
 *   of a backup whose objects belong to `postgres` and whose grants name a role the target
 *   lacks: refused with an error naming --no-owner / --no-privileges, and with them identical
 *   to `pg_restore --no-owner --no-privileges` as that role; new database, existing database,
 *   overwrite. Siblings: schemas, types and functions owned by another role, a SECURITY DEFINER
 *   function, column grants, ALTER DEFAULT PRIVILEGES, policies TO a role (present: kept; absent:
 *   refused by both, the error names --roles); the every-kind fixture as that role.
 * - 10: `--include` of a table whose default draws from a standalone sequence restored that
 *   sequence at its start; siblings: another table's serial, a sequence in another schema, one
 *   a PL/pgSQL function of the default or a trigger calls; backups made with --include; new
 *   database, overwrite, existing sequence ahead (not moved back) or behind (moved forward).
 * - 11: names with spaces at the ends, commas, "=", dots, quotes and letter case only:
 *   quoting rules and repeatable flags on backup --include, restore --include / --exclude /
 *   --rename; SQLite too.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from '../../src/sources/sqlite/driver.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cairn, cairnJson } from '../helpers/cli.js';
import { caseFile, createCaseDatabase, pgDumpReference } from '../helpers/pg-cases.js';
import {
  createDatabase,
  createDatabaseWith,
  dropDatabase,
  ensurePostgres,
  ident,
  lit,
  loadEveryKind,
  pgEnv,
  pgUrl,
  psql,
  schemaDump,
  sequenceStates,
  tableChecksums,
} from '../helpers/postgres.js';

const EXIT = { USAGE: 2, SOURCE: 7 };
let work: string;
const databases = new Set<string>();
const roles: string[] = [];
const hex = (): string => randomBytes(4).toString('hex');

/** A name for a database a restore creates (dropped in afterAll). */
function targetName(prefix: string): string {
  const name = `cairn_t_${prefix}_${hex()}`;
  databases.add(name);
  return name;
}
function made(db: string): string {
  databases.add(db);
  return db;
}
function ok(args: string[]): string {
  const r = cairn(args);
  if (r.code !== 0) throw new Error(`cairn ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}
const exists = (db: string): boolean => psql('postgres', `SELECT 1 FROM pg_database WHERE datname = ${lit(db)}`).trim() === '1';

beforeAll(() => {
  ensurePostgres();
  work = mkdtempSync(join(tmpdir(), 'cairn-pgopt-'));
});

afterAll(() => {
  for (const db of databases) dropDatabase(db);
  for (const role of roles) psql('postgres', `DROP ROLE IF EXISTS ${ident(role)}`);
  rmSync(work, { recursive: true, force: true });
});

describe.sequential('line 9: restore as a role that is not a superuser (--no-owner, --no-privileges)', () => {
  let repo: string;
  let app: string;
  let dump: string;
  let ref: string;
  const SIBLINGS = (app: string, gone: string): string => `
    CREATE SCHEMA owned_s;
    CREATE TYPE owned_s.mood AS ENUM ('sad', 'ok');
    CREATE TABLE owned_s.t (id int PRIMARY KEY, secret text, m owned_s.mood);
    INSERT INTO owned_s.t VALUES (1, 's', 'ok');
    CREATE FUNCTION owned_s.count_items() RETURNS bigint LANGUAGE sql SECURITY DEFINER AS 'SELECT count(*) FROM public.items';
    GRANT USAGE ON SCHEMA owned_s TO ${ident(gone)};
    GRANT SELECT ON public.items TO ${ident(gone)};
    GRANT SELECT (id) ON owned_s.t TO ${ident(gone)};
    GRANT EXECUTE ON FUNCTION owned_s.count_items() TO ${ident(gone)};
    ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO ${ident(gone)};
    ALTER DEFAULT PRIVILEGES IN SCHEMA owned_s GRANT INSERT ON TABLES TO ${ident(gone)};
    ALTER TABLE public.items ENABLE ROW LEVEL SECURITY;
    CREATE POLICY mine ON public.items FOR SELECT TO ${ident(app)} USING (name <> 'hidden');
    CREATE POLICY everyone ON public.items FOR SELECT TO PUBLIC USING (true);`;

  beforeAll(() => {
    repo = join(work, 'repo-owner');
    ok(['repo', 'init', repo]);
    app = `cairn_t_app_${hex()}`;
    const gone = `cairn_t_gone_${hex()}`;
    roles.push(app, gone);
    psql('postgres', `CREATE ROLE ${ident(app)} LOGIN CREATEDB; CREATE ROLE ${ident(gone)};`);
    const source = createCaseDatabase('owner');
    psql(source, SIBLINGS(app, gone));
    ok(['backup', 'create', '--source', pgUrl(source), '--repo', repo, '--id', 'own']);
    // The reference's input: pg_dump of the same database, taken before the grantee goes.
    dump = join(work, 'owner.dump');
    const d = spawnSync('pg_dump', ['--format=custom', '-f', dump, '-d', source], { env: pgEnv() });
    expect(d.status, d.stderr?.toString()).toBe(0);
    // The target server lacks the grantee: drop it (and the source that uses it).
    dropDatabase(source);
    psql('postgres', `DROP ROLE ${ident(gone)}`);
    // pg_restore --no-owner --no-privileges as the application role, into a database it owns.
    ref = made(createDatabaseWith('owner_ref', `OWNER ${ident(app)} TEMPLATE template0`));
    const r = spawnSync('pg_restore', ['--exit-on-error', '--no-owner', '--no-privileges', '-d', ref, dump], { env: pgEnv({ PGUSER: app }) });
    expect(r.status, r.stderr?.toString()).toBe(0);
  });

  it('without the options: refused into a new and into an existing database, the error names --no-owner, nothing created', () => {
    const fresh = targetName('owner_new');
    const r = cairn(['restore', 'own', '--repo', repo, '--to', pgUrl(fresh, app)]);
    expect(r.code).toBe(EXIT.SOURCE);
    expect(r.stderr).toMatch(/must be member of role "postgres"|must be able to SET ROLE "postgres"/);
    expect(r.stderr).toMatch(/--no-owner \(API: noOwner\)/);
    expect(exists(fresh)).toBe(false);

    const existing = made(createDatabaseWith('owner_ex', `OWNER ${ident(app)} TEMPLATE template0`));
    const before = schemaDump(existing);
    const e = cairn(['restore', 'own', '--repo', repo, '--to', pgUrl(existing, app)]);
    expect(e.code).toBe(EXIT.SOURCE);
    expect(e.stderr).toMatch(/--no-owner \(API: noOwner\)/);
    expect(e.stderr).not.toMatch(/SELECT on the tables to back up/);
    expect(schemaDump(existing)).toBe(before);
  });

  it('--no-owner alone: the grants name a role the target lacks, and the error says --no-privileges', () => {
    const fresh = targetName('owner_noown');
    const r = cairn(['restore', 'own', '--repo', repo, '--to', pgUrl(fresh, app), '--no-owner']);
    expect(r.code).toBe(EXIT.SOURCE);
    expect(r.stderr).toMatch(/role "cairn_t_gone_[0-9a-f]+" does not exist/);
    expect(r.stderr).toMatch(/restore with --no-privileges \(API: noPrivileges\)/);
    expect(r.stderr).toMatch(/--roles/);
    expect(exists(fresh)).toBe(false);
  });

  it('with both, into a new database: what pg_restore --no-owner --no-privileges makes as that role', () => {
    const fresh = targetName('owner_ok');
    ok(['restore', 'own', '--repo', repo, '--to', pgUrl(fresh, app), '--no-owner', '--no-privileges']);
    expect(schemaDump(fresh)).toBe(schemaDump(ref));
    expect(tableChecksums(fresh)).toEqual(tableChecksums(ref));
    expect(sequenceStates(fresh)).toEqual(sequenceStates(ref));
    // Everything belongs to the restoring role, the SECURITY DEFINER function too.
    expect(psql(fresh, `SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class WHERE relnamespace IN ('public'::regnamespace, 'owned_s'::regnamespace)`).trim()).toBe(app);
    expect(psql(fresh, `SELECT pg_get_userbyid(proowner) || ' ' || prosecdef FROM pg_proc WHERE proname = 'count_items'`).trim()).toBe(`${app} true`);
    expect(psql(fresh, `SELECT count(*) FROM pg_default_acl`).trim()).toBe('0');
  });

  it('with both, into an existing database it owns, then again with --on-conflict overwrite: the same', () => {
    const existing = made(createDatabaseWith('owner_ex2', `OWNER ${ident(app)} TEMPLATE template0`));
    ok(['restore', 'own', '--repo', repo, '--to', pgUrl(existing, app), '--no-owner', '--no-privileges']);
    expect(schemaDump(existing)).toBe(schemaDump(ref));
    expect(tableChecksums(existing)).toEqual(tableChecksums(ref));
    psql(existing, `INSERT INTO public.items (name) VALUES ('later')`, pgEnv({ PGUSER: app }));
    ok(['restore', 'own', '--repo', repo, '--to', pgUrl(existing, app), '--no-owner', '--no-privileges', '--on-conflict', 'overwrite', '--include', 'public.items,public.v,owned_s.t']);
    expect(schemaDump(existing)).toBe(schemaDump(ref));
    expect(tableChecksums(existing)).toEqual(tableChecksums(ref));
  });

  it('the every-kind fixture as that role: new database, existing database, overwrite all identical to pg_restore --no-owner --no-privileges', () => {
    const source = made(createDatabase('owner_every'));
    loadEveryKind(source);
    const everyDump = join(work, 'every.dump');
    expect(spawnSync('pg_dump', ['--format=custom', '-f', everyDump, '-d', source], { env: pgEnv() }).status).toBe(0);
    const everyRef = made(createDatabaseWith('owner_every_ref', `OWNER ${ident(app)} TEMPLATE template0`));
    const r = spawnSync('pg_restore', ['--exit-on-error', '--no-owner', '--no-privileges', '-d', everyRef, everyDump], { env: pgEnv({ PGUSER: app }) });
    expect(r.status, r.stderr?.toString()).toBe(0);
    ok(['backup', 'create', '--source', pgUrl(source), '--repo', repo, '--id', 'every']);
    const expected = { schema: schemaDump(everyRef), tables: tableChecksums(everyRef), sequences: sequenceStates(everyRef) };
    const fresh = targetName('owner_every_new');
    ok(['restore', 'every', '--repo', repo, '--to', pgUrl(fresh, app), '--no-owner', '--no-privileges']);
    expect({ schema: schemaDump(fresh), tables: tableChecksums(fresh), sequences: sequenceStates(fresh) }).toEqual(expected);
    const existing = made(createDatabaseWith('owner_every_ex', `OWNER ${ident(app)} TEMPLATE template0`));
    ok(['restore', 'every', '--repo', repo, '--to', pgUrl(existing, app), '--no-owner', '--no-privileges']);
    expect({ schema: schemaDump(existing), tables: tableChecksums(existing), sequences: sequenceStates(existing) }).toEqual(expected);
    ok(['restore', 'every', '--repo', repo, '--to', pgUrl(existing, app), '--no-owner', '--no-privileges', '--on-conflict', 'overwrite']);
    expect({ schema: schemaDump(existing), tables: tableChecksums(existing), sequences: sequenceStates(existing) }).toEqual(expected);
  });

  it('through the API and the SDK: noOwner and noPrivileges restore, without them the job error names them', async () => {
    const { CreateRestoreBody } = await import('../../src/server/schemas.js');
    expect(CreateRestoreBody.safeParse({ backup: 'own', target: 'x', noOwner: 'yes' }).success).toBe(false);
    expect(CreateRestoreBody.safeParse({ backup: 'own', target: 'x', noOwners: true }).success).toBe(false);
    const { SqliteTokenStore } = await import('../../src/catalog/tokens.js');
    const { catalogFile, startServer } = await import('../../src/server/index.js');
    const { CairnClient, JobFailedError } = await import('../../src/sdk/index.js');
    const dataDir = join(work, 'server-data');
    const store = new SqliteTokenStore(catalogFile(dataDir));
    const token = store.create('operator').token;
    store.close();
    const server = await startServer({ dataDir, port: 0, allowAdHocUrls: true });
    try {
      const client = new CairnClient({ url: server.url, token });
      const refused = targetName('owner_api_refused');
      const failed = await client.restores.create({ backup: 'own', repository: repo, target: pgUrl(refused, app) }, { waitForCompletion: true, pollMs: 50 }).catch((e: unknown) => e);
      expect(failed).toBeInstanceOf(JobFailedError);
      expect((failed as Error).message).toMatch(/--no-owner \(API: noOwner\)/);
      const fresh = targetName('owner_api');
      const job = await client.restores.create({ backup: 'own', repository: repo, target: pgUrl(fresh, app), noOwner: true, noPrivileges: true }, { waitForCompletion: true, pollMs: 50 });
      expect(job.state).toBe('SUCCESS');
      expect(schemaDump(fresh)).toBe(schemaDump(ref));
    } finally {
      await server.close();
    }
  });

  it('a policy TO a role the target lacks: pg_restore fails with both options too, and cairn says to create it or use --roles', () => {
    const gone = `cairn_t_gone2_${hex()}`;
    roles.push(gone);
    psql('postgres', `CREATE ROLE ${ident(gone)}`);
    const source = made(createCaseDatabase('owner', 'owner_pol'));
    psql(source, `CREATE POLICY only_gone ON public.items TO ${ident(gone)} USING (true);`);
    const policyDump = join(work, 'owner-policy.dump');
    expect(spawnSync('pg_dump', ['--format=custom', '-f', policyDump, '-d', source], { env: pgEnv() }).status).toBe(0);
    ok(['backup', 'create', '--source', pgUrl(source), '--repo', repo, '--id', 'own-policy']);
    psql(source, `DROP POLICY only_gone ON public.items`);
    psql('postgres', `DROP ROLE ${ident(gone)}`);
    const refFail = made(createDatabaseWith('owner_polref', `OWNER ${ident(app)} TEMPLATE template0`));
    const pr = spawnSync('pg_restore', ['--exit-on-error', '--no-owner', '--no-privileges', '-d', refFail, policyDump], { env: pgEnv({ PGUSER: app }) });
    expect(pr.status).not.toBe(0);
    expect(pr.stderr.toString()).toMatch(/does not exist/);
    const fresh = targetName('owner_pol');
    const r = cairn(['restore', 'own-policy', '--repo', repo, '--to', pgUrl(fresh, app), '--no-owner', '--no-privileges']);
    expect(r.code).toBe(EXIT.SOURCE);
    expect(r.stderr).toMatch(/in a policy or a role membership.*create the role first, or restore the backup's roles with --roles/);
    expect(exists(fresh)).toBe(false);
  });

  it('SQLite has no owners or grants: --no-owner and --no-privileges are refused by name', () => {
    const file = join(work, 'plain.db');
    const db = new Database(file);
    db.exec('CREATE TABLE t (a); INSERT INTO t VALUES (1);');
    db.close();
    ok(['backup', 'create', '--source', `sqlite://${file}`, '--repo', repo, '--id', 'lite']);
    for (const flag of ['--no-owner', '--no-privileges']) {
      const r = cairn(['restore', 'lite', '--repo', repo, '--to', `sqlite://${join(work, `copy${flag}.db`)}`, flag]);
      expect(r.code).toBe(EXIT.USAGE);
      expect(r.stderr).toContain(`${flag}: sqlite databases have no roles, owners or grants; leave ${flag} out`);
    }
  });
});

describe.sequential('line 10: the sequences a restored table draws from keep their values', () => {
  let repo: string;
  let source: string;
  let ref: string;
  /** A new row's key per table, and the sequences: what an insert after the restore must give. */
  const SIBLINGS = `
    CREATE SCHEMA other;
    CREATE SEQUENCE other.ext_no START 500;
    CREATE TABLE owner_t (id serial PRIMARY KEY);
    INSERT INTO owner_t SELECT FROM generate_series(1, 4);
    CREATE TABLE borrower (id int PRIMARY KEY DEFAULT nextval('owner_t_id_seq'), e bigint UNIQUE DEFAULT nextval('other.ext_no'));
    INSERT INTO borrower SELECT FROM generate_series(1, 3);
    CREATE SEQUENCE fn_no START 70;
    CREATE FUNCTION next_fn() RETURNS bigint LANGUAGE plpgsql AS $$BEGIN RETURN nextval('fn_no'); END$$;
    CREATE TABLE by_fn (id bigint PRIMARY KEY DEFAULT next_fn());
    INSERT INTO by_fn SELECT FROM generate_series(1, 3);
    CREATE SEQUENCE trg_no INCREMENT -1 START -10 MINVALUE -1000 MAXVALUE -1;
    CREATE FUNCTION set_id() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.id := nextval('trg_no'); RETURN NEW; END$$;
    CREATE TABLE by_trigger (id bigint PRIMARY KEY);
    CREATE TRIGGER set_id BEFORE INSERT ON by_trigger FOR EACH ROW EXECUTE FUNCTION set_id();
    INSERT INTO by_trigger VALUES (0), (0);
    CREATE TABLE ident_t (id bigint GENERATED BY DEFAULT AS IDENTITY (START 40) PRIMARY KEY);
    INSERT INTO ident_t DEFAULT VALUES; INSERT INTO ident_t DEFAULT VALUES;`;
  const insertKey: Record<string, string> = {
    'public.tickets': `INSERT INTO tickets (subject) VALUES ('after') RETURNING no`,
    'public.borrower': `INSERT INTO borrower DEFAULT VALUES RETURNING id || '/' || e`,
    'public.by_fn': `INSERT INTO by_fn DEFAULT VALUES RETURNING id`,
    'public.by_trigger': `INSERT INTO by_trigger VALUES (0) RETURNING id`,
    'public.ident_t': `INSERT INTO ident_t DEFAULT VALUES RETURNING id`,
  };
  /** The key an insert after a restore gets, as in the source (and in pg_restore's copy). */
  const NEXT_KEY: Record<string, string> = { 'public.tickets': '1005', 'public.borrower': '8/503', 'public.by_fn': '73', 'public.by_trigger': '-12', 'public.ident_t': '42' };
  const SEQUENCE_OF: Record<string, string[]> = {
    'public.tickets': ['public.ticket_no'],
    'public.borrower': ['public.owner_t_id_seq', 'other.ext_no'],
    'public.by_fn': ['public.fn_no'],
    'public.by_trigger': ['public.trg_no'],
    'public.ident_t': ['public.ident_t_id_seq'],
  };
  const statesOf = (db: string, names: string[]): string[] => {
    const all = sequenceStates(db);
    return names.map((n) => `${n}=${all[n] ?? 'missing'}`);
  };

  beforeAll(() => {
    repo = join(work, 'repo-seq');
    ok(['repo', 'init', repo]);
    source = made(createCaseDatabase('seqsel'));
    psql(source, SIBLINGS);
    ok(['backup', 'create', '--source', pgUrl(source), '--repo', repo, '--id', 'full']);
    ok(['backup', 'create', '--source', pgUrl(source), '--repo', repo, '--id', 'some', '--include', 'tickets,borrower,by_fn,by_trigger,ident_t']);
    ref = made(pgDumpReference(source, 'seqsel'));
  });

  for (const backup of ['full', 'some']) {
    it(`--include of one table (backup "${backup}") into a new database: its sequences as pg_restore has them, the next insert takes the next key`, () => {
      for (const table of Object.keys(insertKey)) {
        const fresh = targetName('seq_new');
        ok(['restore', backup, '--repo', repo, '--to', pgUrl(fresh), '--include', table]);
        expect(statesOf(fresh, SEQUENCE_OF[table] as string[]), table).toEqual(statesOf(ref, SEQUENCE_OF[table] as string[]));
        expect(tableChecksums(fresh)[table], table).toBe(tableChecksums(ref)[table]);
        expect(psql(fresh, insertKey[table] as string).trim(), table).toBe(NEXT_KEY[table]);
      }
    });
  }

  it('overwrite into a copy whose sequence is behind moves it forward; one that is ahead is not moved back; a missing one is created at its value', () => {
    const existing = made(pgDumpReference(source, 'seqsel'));
    psql(existing, `SELECT setval('ticket_no', 1001); SELECT setval('other.ext_no', 900); DROP TABLE by_fn; DROP FUNCTION next_fn(); DROP SEQUENCE fn_no;`);
    ok(['restore', 'some', '--repo', repo, '--to', pgUrl(existing), '--include', 'tickets,borrower,by_fn', '--on-conflict', 'overwrite']);
    const s = sequenceStates(existing);
    const src = sequenceStates(source);
    expect(s['public.ticket_no']).toBe(src['public.ticket_no']);
    expect(s['other.ext_no']).toBe('900:true');
    expect(s['public.fn_no']).toBe(src['public.fn_no']);
    expect(psql(existing, insertKey['public.tickets'] as string).trim()).toBe('1005');
    expect(psql(existing, insertKey['public.by_fn'] as string).trim()).toBe('73');
    // A sequence no restored table uses is left alone in an existing database.
    psql(existing, `SELECT setval('trg_no', -2)`);
    ok(['restore', 'some', '--repo', repo, '--to', pgUrl(existing), '--include', 'tickets', '--on-conflict', 'overwrite']);
    expect(sequenceStates(existing)['public.trg_no']).toBe('-2:true');
  });
});

describe.sequential('line 11: names with spaces at the ends, commas, "=", dots and quotes', () => {
  let repo: string;
  let source: string;
  let ref: string;
  const SIBLINGS = `
    CREATE TABLE " lead" (id int); INSERT INTO " lead" VALUES (1);
    CREATE TABLE "a,b" (id int); INSERT INTO "a,b" VALUES (2);
    CREATE TABLE "k=v" (id int); INSERT INTO "k=v" VALUES (3);
    CREATE TABLE "x.y" (id int); INSERT INTO "x.y" VALUES (4);
    CREATE TABLE "st*r" (id int); INSERT INTO "st*r" VALUES (5);
    CREATE TABLE "st_r" (id int); INSERT INTO "st_r" VALUES (6);`;
  const tables = (db: string): string[] => Object.keys(tableChecksums(db)).sort();

  beforeAll(() => {
    repo = join(work, 'repo-names');
    ok(['repo', 'init', repo]);
    source = made(createCaseDatabase('newline'));
    psql(source, readFileSync(caseFile('casenames'), 'utf8') + SIBLINGS);
    ok(['backup', 'create', '--source', pgUrl(source), '--repo', repo, '--id', 'names']);
    ref = made(pgDumpReference(source, 'newline'));
  });

  it('the table "say ""hi"" " (trailing space, quotes) by its quoted name, on restore and on backup; unquoted, the error offers that spelling', () => {
    const fresh = targetName('nm_hi');
    ok(['restore', 'names', '--repo', repo, '--to', pgUrl(fresh), '--include', 'public."say ""hi"" "']);
    expect(tables(fresh)).toEqual(['public.say "hi" ']);
    expect(tableChecksums(fresh)['public.say "hi" ']).toBe(tableChecksums(ref)['public.say "hi" ']);
    const bad = cairn(['restore', 'names', '--repo', repo, '--to', pgUrl(targetName('nm_bad')), '--include', 'say "hi" ']);
    expect(bad.code).toBe(EXIT.USAGE);
    expect(bad.stderr).toContain('Did you mean public."say ""hi"" "?');
    // backup --include takes the same spelling (here without the schema).
    ok(['backup', 'create', '--source', pgUrl(source), '--repo', repo, '--id', 'names-hi', '--include', '"say ""hi"" "']);
    const manifest = cairnJson<{ collections: { name: string }[] }>(['backup', 'show', 'names-hi', '--repo', repo]);
    expect(manifest.collections.map((c) => c.name).filter((n) => n !== '(schema)')).toEqual(['public.say "hi" ']);
  });

  it('repeatable flags and quoted lists: " lead", "a,b", "k=v", "x.y", "st*r" each alone, users and "Users" apart', () => {
    const fresh = targetName('nm_many');
    ok([
      'restore', 'names', '--repo', repo, '--to', pgUrl(fresh),
      '--include', '" lead"', '--include', 'public."a,b","k=v"', '--include', 'public."x.y"', '--include', 'st*r', '--include', '"Users"',
    ]);
    expect(tables(fresh)).toEqual(['public. lead', 'public.Users', 'public.a,b', 'public.k=v', 'public.st*r', 'public.x.y']);
    for (const t of tables(fresh)) expect(tableChecksums(fresh)[t], t).toBe(tableChecksums(ref)[t]);
    const lower = targetName('nm_lower');
    ok(['restore', 'names', '--repo', repo, '--to', pgUrl(lower), '--include', 'users']);
    expect(tables(lower)).toEqual(['public.users']);
  });

  it('--exclude with quoted names, and --rename to and from names with spaces at the ends, ",", "=" and "."', () => {
    const fresh = targetName('nm_excl');
    ok(['restore', 'names', '--repo', repo, '--to', pgUrl(fresh), '--exclude', '"say ""hi"" ","Users",public."a,b"', '--exclude', '" lead"', '--exclude', '"line1\nline2"']);
    expect(tables(fresh)).toEqual(['public.k=v', 'public.st*r', 'public.st_r', 'public.users', 'public.x.y']);
    const renamed = targetName('nm_ren');
    ok([
      'restore', 'names', '--repo', repo, '--to', pgUrl(renamed), '--include', '"say ""hi"" ",users,"a,b"',
      '--rename', '"say ""hi"" "=" trail "', '--rename', 'users="u,1=2.x"', '--rename', '"a,b"="Users"',
    ]);
    expect(tables(renamed)).toEqual(['public. trail ', 'public.Users', 'public.u,1=2.x']);
    expect(tableChecksums(renamed)['public. trail ']).toBe(tableChecksums(ref)['public.say "hi" ']);
    expect(tableChecksums(renamed)['public.u,1=2.x']).toBe(tableChecksums(ref)['public.users']);
  });

  it('overwrite into an existing copy by the quoted names', () => {
    const existing = made(pgDumpReference(source, 'newline'));
    psql(existing, `INSERT INTO "say ""hi"" " VALUES (8); DELETE FROM " lead";`);
    ok(['restore', 'names', '--repo', repo, '--to', pgUrl(existing), '--include', '"say ""hi"" "," lead"', '--on-conflict', 'overwrite']);
    expect(tableChecksums(existing)).toEqual(tableChecksums(ref));
  });

  it('SQLite: the same names by the same rules (trailing and leading spaces, ",", "=", quotes), backup and restore', () => {
    const file = join(work, 'names.db');
    const db = new Database(file);
    db.exec(`CREATE TABLE "say ""hi"" " (id); INSERT INTO "say ""hi"" " VALUES (7);
             CREATE TABLE " lead" (id); INSERT INTO " lead" VALUES (1);
             CREATE TABLE "a,b" (id); INSERT INTO "a,b" VALUES (2);
             CREATE TABLE "k=v" (id); INSERT INTO "k=v" VALUES (3);
             CREATE TABLE other (id);`);
    db.close();
    ok(['backup', 'create', '--source', `sqlite://${file}`, '--repo', repo, '--id', 'lite-names', '--exclude', 'other']);
    const copy = join(work, 'names-copy.db');
    ok(['restore', 'lite-names', '--repo', repo, '--to', `sqlite://${copy}`, '--include', '"say ""hi"" "', '--include', '" lead","a,b"', '--rename', '"a,b"="k=v2 "']);
    const out = new Database(copy, { readonly: true });
    const names = (out.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`).all() as { name: string }[]).map((r) => r.name);
    out.close();
    expect(names).toEqual([' lead', 'k=v2 ', 'say "hi" ']);
  });

  it('--help says how to write such names', () => {
    for (const cmd of [['restore', '--help'], ['backup', 'create', '--help']]) {
      const help = ok(cmd).replace(/\s+/g, ' ');
      expect(help).toMatch(/--include <names>.*repeatable.*quote names as shown below.*Names: .*goes in double quotes.*--include 'public."say ""hi"" "'/);
    }
    expect(ok(['restore', '--help']).replace(/\s+/g, ' ')).toMatch(/--rename <old=new>.*split at the first "=" outside quotes/);
  });
});
