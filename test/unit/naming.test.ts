/**
 * Each engine's name rules (src/sources/<engine>/naming.ts) and the selection that uses them,
 * the registry that finds engines by URL scheme and manifest kind, and the shape every engine
 * folder keeps. The round trips on real databases are in test/integration/naming.test.ts.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXACT_NAMES, selectNames } from '../../src/core/selection.js';
import { databaseKey } from '../../src/jobs/database-key.js';
import { definitionProblems, namesCollection, openSource, openTarget } from '../../src/sources/index.js';
import { driverForKind, driverForUrl, engines, findDriver, namingFor } from '../../src/sources/registry.js';
import { postgresNaming } from '../../src/sources/postgres/naming.js';
import { sqliteNaming } from '../../src/sources/sqlite/naming.js';
import { renamedObjectName } from '../../src/sources/sqlite/sql.js';
import type { BackupManifest } from '../../src/core/schemas.js';

const select = (names: string[], include: string[], rules = sqliteNaming): string[] => [...selectNames(names, { include }, rules)].sort();

describe('SQLite names: ASCII letters fold, nothing else does', () => {
  it('"Users" and "users" are one name, "Ä" and "ä" are two', () => {
    expect(sqliteNaming.key('Users')).toBe(sqliteNaming.key('users'));
    expect(sqliteNaming.key('Ä')).not.toBe(sqliteNaming.key('ä'));
    expect(sqliteNaming.key('ÄBC')).toBe(sqliteNaming.key('Äbc'));
    expect(sqliteNaming.qualify('Users')).toBe('Users');
  });

  it('selection: exact first, then ASCII folding only', () => {
    const names = ['Ä', 'ä', 'Users', 'Invoice', 'InvoiceLine'];
    expect(select(names, ['Ä'])).toEqual(['Ä']);
    expect(select(names, ['ä'])).toEqual(['ä']);
    expect(select(names, ['users'])).toEqual(['Users']);
    expect(select(names, ['invoice*'])).toEqual(['Invoice', 'InvoiceLine']);
    // Only "ä" exists: an "Ä" is another table to SQLite, so it is unknown, not "ä".
    // "Ä" is not "ä" to SQLite; the error offers it, since letter case is the likely slip.
    expect(() => select(['ä'], ['Ä'])).toThrow(/Unknown collection: Ä\. Did you mean ä\? .* Available: ä/);
  });

  it('indexes of a renamed table: the table name inside theirs is found by SQLite\'s folding', () => {
    expect(renamedObjectName('idx_USERS_email', 'users', 'people')).toBe('idx_people_email');
    // "Ä" is not "ä" to SQLite: the index name does not hold the table's, so it gets a prefix.
    expect(renamedObjectName('idx_Ä', 'ä', 'x')).toBe('x_idx_Ä');
  });
});

describe('PostgreSQL names: exact, public by default', () => {
  it('"Users" and users are two names, as are schemas "S" and s', () => {
    expect(postgresNaming.key('public.Users')).not.toBe(postgresNaming.key('public.users'));
    expect(postgresNaming.key('S.t')).not.toBe(postgresNaming.key('s.t'));
    expect(postgresNaming.qualify('film')).toBe('public.film');
    expect(postgresNaming.qualify('S.t')).toBe('S.t');
  });

  it('selection: exact first, then the pattern as PostgreSQL reads it unquoted', () => {
    const names = ['public.Users', 'public.users', 'public.artist', 'S.t', 's.t', 'public.Ärger'];
    const pg = (include: string[]): string[] => select(names, include, postgresNaming);
    expect(pg(['Users'])).toEqual(['public.Users']);
    expect(pg(['users'])).toEqual(['public.users']);
    // Unquoted USERS is users to PostgreSQL: never both tables.
    expect(pg(['USERS'])).toEqual(['public.users']);
    expect(pg(['Artist'])).toEqual(['public.artist']);
    expect(pg(['S.*'])).toEqual(['S.t']);
    expect(pg(['s.*'])).toEqual(['s.t']);
    // Non-ASCII letters are not folded by PostgreSQL (UTF8): "ärger" is not "Ärger".
    expect(() => pg(['ärger'])).toThrow(/Unknown collection: public\.ärger/);
    expect(pg(['Ärger'])).toEqual(['public.Ärger']);
  });

  it('renames name a collection by the engine rules', () => {
    expect(namesCollection('postgres', 'Users', 'public.Users')).toBe(true);
    expect(namesCollection('postgres', 'users', 'public.Users')).toBe(false);
    expect(namesCollection('sqlite', 'album', 'Album')).toBe(true);
    expect(namesCollection('sqlite', 'ä', 'Ä')).toBe(false);
  });
});

describe('registry', () => {
  it('finds every engine by each of its URL schemes (any letter case) and by its manifest kind', () => {
    expect(driverForUrl('sqlite:///tmp/x.db').kind).toBe('sqlite');
    expect(driverForUrl('postgres://u@h/db').kind).toBe('postgres');
    expect(driverForUrl('PostgreSQL://u@h/db').kind).toBe('postgres');
    expect(driverForUrl('MariaDB://u@h/db').kind).toBe('mysql');
    for (const d of engines()) {
      expect(driverForKind(d.kind)).toBe(d);
      for (const s of d.schemes) expect(findDriver(`${s}://x`)).toBe(d);
    }
    expect(namingFor('no-such-engine')).toBe(EXACT_NAMES);
  });

  it('refuses an unknown scheme or a text without one, naming the supported URLs and no password', () => {
    expect(() => openSource('oracle://app:Secret-1@db/shop')).toThrow(
      'Unsupported database URL scheme "oracle:" in "oracle://app:***@db/shop". Supported: sqlite:///absolute/path.db, sqlite:relative/path.db, postgres://user[:password]@host[:port]/dbname or mysql://user[:password]@host[:port]/dbname.',
    );
    expect(() => openTarget('shop.db')).toThrow(/"shop\.db" is not a database URL\. Write sqlite:\/\/\/absolute\/path\.db/);
  });

  it('database keys by engine: spellings of one database share one key', () => {
    expect(databaseKey('postgres://a@LOCALHOST:5432/db')).toBe(databaseKey('postgres://b@127.0.0.1:5432/db'));
    expect(databaseKey('sqlite:///tmp/../tmp/x.db')).toBe(databaseKey('sqlite:///tmp/x.db'));
    expect(databaseKey('other://x')).toBe('other://x');
  });

  it('manifest checks dispatch by kind: a SQLite definition that is not a CREATE is a problem, an unknown kind has none', () => {
    const manifest = (kind: string): BackupManifest =>
      ({
        id: `b-${kind}`,
        source: { kind, name: 'x', location: 'x', serverVersion: '1' },
        collections: [{ name: 't', kind: 'table', definition: { sql: 'DROP TABLE t' }, rowCount: 0, logicalBytes: 0, storedBytes: 0, newBytes: 0, chunks: [] }],
      }) as unknown as BackupManifest;
    const problems = definitionProblems([manifest('sqlite'), manifest('no-such-engine')]);
    expect(problems.map((p) => p.object)).toEqual(['backups/b-sqlite']);
  });
});

describe('engine folders', () => {
  const root = join(import.meta.dirname, '../../src');
  const folders = readdirSync(join(root, 'sources'), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);

  it('every engine folder has the same files: index, connection, naming, source, target', () => {
    expect(folders.sort()).toEqual(['mysql', 'postgres', 'sqlite']);
    for (const f of folders) {
      const files = readdirSync(join(root, 'sources', f));
      for (const name of ['index.ts', 'connection.ts', 'naming.ts', 'source.ts', 'target.ts']) expect(files, `${f}/${name}`).toContain(name);
    }
    expect(engines().length).toBe(folders.length);
  });

  it('no engine kind, scheme or folder is named by the jobs, the core, the CLI or the server', () => {
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (p.endsWith('.ts')) {
          readFileSync(p, 'utf8').split('\n').forEach((line, i) => {
            if (/'(postgres|postgresql|sqlite)'|SQLITE_KIND|POSTGRES_KIND|sources\/postgres\/(?!connection)|sources\/sqlite\/index/.test(line)) offenders.push(`${p}:${i + 1}: ${line.trim()}`);
          });
        }
      }
    };
    for (const d of ['jobs', 'core', 'cli', 'server']) walk(join(root, d));
    expect(offenders).toEqual([]);
  });
});

describe('unknown names in a selection', () => {
  it('are named with the noun in the right number (the trial saw `collection in backup "x"s`)', () => {
    expect(() => selectNames(['a', 'b'], { include: ['x'] }, sqliteNaming, 'collection in backup "b1"')).toThrow('Unknown collection in backup "b1": x. Available: a, b.');
    expect(() => selectNames(['a', 'b'], { include: ['x', 'y'] }, sqliteNaming, 'collection in backup "b1"')).toThrow('Unknown collections in backup "b1": x, y. Available: a, b.');
    expect(() => selectNames(['a'], { exclude: ['x', 'y'] }, sqliteNaming)).toThrow('Unknown collections: x, y.');
  });
});

describe('unknown names: what the user probably meant', () => {
  it('offers names a typo away (edit distance over the last part; a swap counts once), never a one-letter stranger', async () => {
    const { postgresNaming } = await import('../../src/sources/postgres/naming.js');
    expect(() => selectNames(['public.t', 'public.v'], { include: ['tt'] }, postgresNaming)).toThrow(/Did you mean public\.t\?/);
    expect(() => selectNames(['Album', 'Artist'], { include: ['albmu'] }, sqliteNaming)).toThrow(/Did you mean Album\?/);
    expect(() => selectNames(['InvoiceLine', 'Invoice'], { include: ['InvoiceLnie'] }, sqliteNaming)).toThrow(/Did you mean InvoiceLine\?/);
    expect(() => selectNames(['a', 'b'], { include: ['c'] }, sqliteNaming)).not.toThrow(/Did you mean/);
    // Wildcards match by design: a pattern that matches nothing gets no typo guess.
    expect(() => selectNames(['Album'], { include: ['Albu*x'] }, sqliteNaming)).not.toThrow(/Did you mean/);
  });

  it('offers the name a comma split, spaces at the ends or letter case hid, written as it must be typed', async () => {
    const { postgresNaming } = await import('../../src/sources/postgres/naming.js');
    expect(() => selectNames(['public.x,y', 'public.z'], { include: ['x', 'y'] }, postgresNaming)).toThrow(/Did you mean public\."x,y"\?/);
    expect(() => selectNames(['public.trail ', 'public.z'], { include: ['trail'] }, postgresNaming)).toThrow(/Did you mean public\."trail "\?/);
    expect(() => selectNames(['Ä', 'x,y'], { include: ['x'] }, sqliteNaming)).toThrow(/Did you mean "x,y"\? \(A name holding ","/);
    // A name far from every one gets no suggestion; one a typo away (edit distance) does.
    expect(() => selectNames(['public.Users', 'public.z'], { include: ['public.orders'] }, postgresNaming)).not.toThrow(/Did you mean/);
    expect(() => selectNames(['public.Users', 'public.z'], { include: ['public.users2'] }, postgresNaming)).toThrow(/Did you mean public\.Users\?/);
    expect(() => selectNames(['a', 'b'], { include: ['c'] }, sqliteNaming)).toThrow(/^Unknown collection: c\. Available: a, b\.$/);
  });
});

describe('PostgreSQL names within 63 bytes', () => {
  it('truncated keeps its suffix whole and cuts whole characters of the name (numbered index names stay distinct)', async () => {
    const { truncated } = await import('../../src/sources/postgres/staging.js');
    const base = 'é'.repeat(31); // 62 bytes
    const numbered = [1, 2, 3].map((n) => truncated(base, `_${n}`));
    expect(new Set(numbered).size).toBe(3);
    for (const n of numbered) expect(Buffer.byteLength(n)).toBeLessThanOrEqual(63);
    expect(numbered[0]).toBe(`${'é'.repeat(30)}_1`);
    expect(truncated('short', '_1')).toBe('short_1');
    expect(truncated(`${'a'.repeat(70)}`)).toBe('a'.repeat(63));
  });
});

describe('names on the command line (issue 14 line 11): lists split and trim only outside double quotes', () => {
  const parse = async (values: string[]): Promise<string[] | undefined> => (await import('../../src/core/selection.js')).parseNameList(values);
  const renames = async (values: string[]): Promise<[string, string][]> => [...(await import('../../src/core/selection.js')).parseRenames(values)];

  it('keeps spaces at the ends, commas, "=", dots, "*" and doubled quotes inside quotes; repeated flags add up', async () => {
    expect(await parse(['public."say ""hi"" "'])).toEqual(['public."say ""hi"" "']);
    expect(await parse(['" lead", "trail " ,plain', '"a,b"'])).toEqual(['" lead"', '"trail "', 'plain', '"a,b"']);
    expect(await parse(['"x.y","k=v",st*r'])).toEqual(['"x.y"', '"k=v"', 'st*r']);
    expect(await parse(['"line1\nline2"'])).toEqual(['"line1\nline2"']);
    // A quote that does not open a part is a character: `we"ird` is one name.
    expect(await parse(['public.we"ird,x'])).toEqual(['public.we"ird', 'x']);
  });

  it('each engine reads the quoted form back as the name itself', () => {
    expect(postgresNaming.qualify('public."say ""hi"" "')).toBe('public.say "hi" ');
    expect(postgresNaming.qualify('"say ""hi"" "')).toBe('public.say "hi" ');
    expect(postgresNaming.qualify('" lead"')).toBe('public. lead');
    expect(postgresNaming.qualify('public."x.y"')).toBe('public."x.y"');
    expect(postgresNaming.qualify('"a.b".t')).toBe('"a.b".t');
    expect(sqliteNaming.qualify('"say ""hi"" "')).toBe('say "hi" ');
    expect(sqliteNaming.qualify('"a,b"')).toBe('a,b');
    // and writes every name so that a list gives it back
    for (const name of ['public.say "hi" ', 'public. lead', 'public.a,b', 'public.k=v', 'public."x.y"', 'public.Users', 'public.line1\nline2']) {
      expect(postgresNaming.qualify(postgresNaming.written(name)), name).toBe(name);
    }
    for (const name of ['say "hi" ', ' lead', 'a,b', 'k=v', 'x.y', '"q"']) expect(sqliteNaming.qualify(sqliteNaming.written(name)), name).toBe(name);
  });

  it('--rename splits at the first "=" outside quotes, keeps quoted spaces, and refuses a pair without both sides', async () => {
    expect(await renames(['"say ""hi"" "=" trail "'])).toEqual([['"say ""hi"" "', '" trail "']]);
    expect(await renames(['"k=v"=kv,users="u,1=2.x"'])).toEqual([['"k=v"', 'kv'], ['users', '"u,1=2.x"']]);
    await expect(renames(['"k=v"'])).rejects.toThrow(/write it as old=new/);
    await expect(renames(['a='])).rejects.toThrow(/write it as old=new/);
  });
});

describe('sequence positions (issue 14 line 10): an existing sequence is only moved forward', () => {
  it('compares the next value nextval would return, in the direction of the increment', async () => {
    const { isAhead } = await import('../../src/sources/postgres/load.js');
    expect(isAhead({ lastValue: '1004', isCalled: true }, { lastValue: '1000', isCalled: false }, 1n)).toBe(true);
    expect(isAhead({ lastValue: '1004', isCalled: true }, { lastValue: '2000', isCalled: true }, 1n)).toBe(false);
    expect(isAhead({ lastValue: '5', isCalled: false }, { lastValue: '5', isCalled: true }, 1n)).toBe(false);
    expect(isAhead({ lastValue: '-11', isCalled: true }, { lastValue: '-2', isCalled: true }, -1n)).toBe(true);
    expect(isAhead({ lastValue: '-11', isCalled: true }, { lastValue: '-20', isCalled: true }, -1n)).toBe(false);
    expect(isAhead({ lastValue: '9223372036854775806', isCalled: true }, { lastValue: '9223372036854775805', isCalled: true }, 1n)).toBe(true);
  });
});

describe('restore errors on owners and grants (issue 14 line 9) name the options that leave them out', () => {
  it('ownership, a missing role, a denied permission; only the options not given yet', async () => {
    const { withOwnershipHint, ownershipArgs } = await import('../../src/sources/postgres/ownership.js');
    const { SourceError, ConflictError } = await import('../../src/core/errors.js');
    const owner = new SourceError('Cannot restore into x: pg_restore failed (exit 1): ERROR:  must be member of role "postgres" | Command was: ALTER TABLE public.items OWNER TO postgres;');
    expect(String((withOwnershipHint(owner, {}) as Error).message)).toMatch(/OWNER TO postgres\. The backup records object owners.*--no-owner \(API: noOwner\).*--no-privileges/);
    const missing = new SourceError('x', { cause: { code: '42704', message: 'role "gone" does not exist' } });
    expect((withOwnershipHint(missing, { noOwner: true }) as Error).message).toMatch(/restore with --no-privileges \(API: noPrivileges\).*--roles/);
    expect((withOwnershipHint(missing, { noOwner: true, noPrivileges: true, roles: true }) as Error).message).toMatch(/in a policy or a role membership.*create the role first\.$/);
    const denied = new SourceError('PostgreSQL refused an operation: permission denied for schema s. Grant the user "app" the privilege it needs (e.g. SELECT on the tables to back up).', { cause: { code: '42501' } });
    const m = (withOwnershipHint(denied, { noOwner: true, noPrivileges: true }) as Error).message;
    expect(m).not.toMatch(/SELECT on the tables to back up/);
    expect(m).toMatch(/permission denied for schema s\. Restore as a role that has this privilege/);
    const createdb = new SourceError('PostgreSQL refused an operation: permission denied to create database. Grant the user "app" the privilege it needs (e.g. SELECT on the tables to back up).', { cause: { code: '42501' } });
    expect((withOwnershipHint(createdb, {}) as Error).message).toMatch(/permission denied to create database\. A restore into a new database creates it: give the restoring role CREATEDB/);
    const other = new ConflictError('exists');
    expect(withOwnershipHint(other, {})).toBe(other);
    expect(ownershipArgs({ noOwner: true, noPrivileges: true })).toEqual(['--no-owner', '--no-privileges']);
    expect(ownershipArgs({})).toEqual([]);
  });
});

describe('names holding control characters', () => {
  it('are written in double quotes (a line break or a tab stays inside one name) and read back unchanged', () => {
    for (const [rules, name] of [
      [postgresNaming, 'public.line1\nline2'],
      [postgresNaming, 'public.tab\there'],
      [sqliteNaming, 'line1\nline2'],
    ] as const) {
      const written = rules.written(name);
      expect(written, JSON.stringify(name)).toMatch(/"/);
      expect(rules.qualify(written)).toBe(name);
      expect([...selectNames([name, 'public.other', 'other'], { include: [written] }, rules)]).toEqual([name]);
    }
  });
});
