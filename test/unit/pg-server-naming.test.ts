/**
 * Names of whole-server PostgreSQL backups (`<database>/<name>`): how users write them, how they
 * read back from list flags, database renames, and the selection over them.
 */
import { describe, expect, it } from 'vitest';
import { parseNameList, parseRenames, selectNames } from '../../src/core/selection.js';
import { databaseKey } from '../../src/jobs/database-key.js';
import { driverForUrl, namesCollection, namingFor } from '../../src/sources/index.js';
import { databasePropertyStatements } from '../../src/sources/postgres/server-database.js';

const rules = namingFor('postgres-server');
const NAMES = ['shop/', 'shop/(schema)', 'shop/public.orders', 'shop/sales.orders', 'crm/', 'crm/(schema)', 'crm/public.orders', '"a/b"/', '"a/b"/public.t', 'a,b/', 'a,b/public.x'];
const selectable = NAMES.filter((n) => !n.endsWith('(schema)'));

describe('whole-server names', () => {
  it('a bare name is the whole database; db/table is read by the one-database rules; quotes read SQL-style', () => {
    expect(rules.qualify('shop')).toBe('shop/*');
    expect(rules.qualify('shop/orders')).toBe('shop/public.orders');
    expect(rules.qualify('shop/*')).toBe('shop/*');
    expect(rules.qualify('shop/')).toBe('shop/');
    expect(rules.qualify('"a/b"/t')).toBe('"a/b"/public.t');
    expect(rules.qualify('"a/b"')).toBe('"a/b"/*');
    expect(rules.unquoted('Shop/Orders')).toBe('Shop/public.orders');
  });

  it('selects whole databases, patterns and single tables; an unknown name is an error listing the names', () => {
    expect([...selectNames(selectable, { include: ['shop'] }, rules)].sort()).toEqual(['shop/', 'shop/public.orders', 'shop/sales.orders']);
    expect([...selectNames(selectable, { include: ['*/*.orders'] }, rules)].sort()).toEqual(['crm/public.orders', 'shop/public.orders', 'shop/sales.orders']);
    // As in a one-database backup, a bare table name means public.
    expect([...selectNames(selectable, { include: ['*/orders'] }, rules)].sort()).toEqual(['crm/public.orders', 'shop/public.orders']);
    expect([...selectNames(selectable, { exclude: ['shop', '"a/b"', '"a,b"'] }, rules)].sort()).toEqual(['crm/', 'crm/public.orders']);
    expect([...selectNames(selectable, { include: ['"a/b"/t'] }, rules)]).toEqual(['"a/b"/public.t']);
    expect(() => selectNames(selectable, { include: ['nope'] }, rules)).toThrow(/Unknown collection: nope\/\*.*Available: shop\//);
  });

  it('written names read back through the list flags', () => {
    for (const n of selectable) {
      const [back] = parseNameList([rules.written(n)]) ?? [];
      expect(rules.qualify(back ?? ''), n).toBe(n);
    }
    expect(rules.written('a,b/public.x')).toBe('"a,b"/public.x');
  });

  it('a rename of a database renames each of its collections, and only those', () => {
    const pair = [...parseRenames(['shop=shop_copy'])][0] ?? ['', ''];
    const [from, to] = [rules.qualify(pair[0]), rules.qualify(pair[1])];
    expect(rules.regroup?.('shop/public.orders', from ?? '', to ?? '')).toBe('shop_copy/public.orders');
    expect(rules.regroup?.('shop/', from ?? '', to ?? '')).toBe('shop_copy/');
    expect(rules.regroup?.('crm/public.orders', from ?? '', to ?? '')).toBeUndefined();
    expect(rules.regroup?.('shop/public.orders', 'shop/public.orders', 'shop/public.x')).toBeUndefined();
    expect(rules.regroup?.('"a/b"/public.t', rules.qualify('"a/b"'), rules.qualify('c/d'))).toBeUndefined();
    expect(rules.regroup?.('"a/b"/public.t', rules.qualify('"a/b"'), rules.qualify('"c/d"'))).toBe('"c/d"/public.t');
    // The API checks renames with namesCollection: a database names its collections.
    expect(namesCollection('postgres-server', 'shop', 'shop/public.orders')).toBe(true);
    expect(namesCollection('postgres-server', 'shop', 'crm/public.orders')).toBe(false);
  });
});

describe('whole-server URLs', () => {
  it('a URL without a database names the server: its location and database key are its own, the same however it is spelled', () => {
    const driver = driverForUrl('postgres://app:pw@db1:5432/');
    expect(driver.location('postgres://app:pw@db1:5432/')).toBe('postgres://app@db1:5432/');
    // Without the slash (and no database named anywhere) it is refused, never read as one database.
    expect(() => driver.location('postgres://app@db1')).toThrow(/write postgres:\/\/host\/ for the whole server, or postgres:\/\/host\/db for one database/);
    const key = databaseKey(driver.location('postgres://app@localhost:5432/'));
    expect(key).toBe('postgres://localhost:5432/');
    expect(databaseKey(driver.location('postgresql://other@127.0.0.1/'))).toBe(key);
    // Through the Unix socket: the same machine (a socket-form location has its key too).
    expect(databaseKey(driver.location('postgres://app@/?host=/var/run/postgresql&port=5432'))).toBe(key);
    // Never the key of one database of that server, nor of another server.
    expect(databaseKey(driver.location('postgres://app@localhost:5432/postgres'))).not.toBe(key);
    expect(databaseKey(driver.location('postgres://app@localhost:5433/'))).not.toBe(key);
  });
});

describe('database properties from a manifest (untrusted)', () => {
  it('builds grants, comment, limit and settings from checked values; refuses what PostgreSQL never records', () => {
    const { statements, refused } = databasePropertyStatements(
      'new"db',
      {
        database: 'x',
        owner: 'o',
        collections: 0,
        acl: ['=T/o', 'o=CTc/o', '"we ""ird"=c*/o', 'x=Z/o', 'evil; DROP'],
        comment: "it's \\ here",
        connectionLimit: 3,
        settings: [
          { role: null, config: ['search_path="$user", public, "A b"', 'work_mem=8MB', 'session_preload_libraries=evil', 'bad name=1'] },
          { role: 'r"1', config: ['statement_timeout=5s'] },
        ],
      },
      true,
    );
    expect(statements).toEqual([
      'REVOKE ALL ON DATABASE "new""db" FROM PUBLIC',
      'GRANT TEMPORARY ON DATABASE "new""db" TO PUBLIC',
      'GRANT CREATE, TEMPORARY, CONNECT ON DATABASE "new""db" TO "o"',
      'GRANT CONNECT ON DATABASE "new""db" TO "we ""ird" WITH GRANT OPTION',
      `COMMENT ON DATABASE "new""db" IS E'it''s \\\\ here'`,
      'ALTER DATABASE "new""db" CONNECTION LIMIT 3',
      `ALTER DATABASE "new""db" SET search_path TO E'$user', E'public', E'A b'`,
      `ALTER DATABASE "new""db" SET work_mem TO E'8MB'`,
      `ALTER ROLE "r""1" IN DATABASE "new""db" SET statement_timeout TO E'5s'`,
    ]);
    expect(refused).toEqual(['x=Z/o', 'evil; DROP', 'session_preload_libraries=evil', 'bad name=1']);
    // --no-privileges: no grants at all.
    expect(databasePropertyStatements('d', { database: 'd', owner: 'o', collections: 0, acl: ['=T/o'] }, false).statements).toEqual([]);
  });
});
