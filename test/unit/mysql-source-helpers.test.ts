/**
 * The MySQL source's pure helpers: key-range bounds and WHERE clauses, the identifier chains of
 * a stored view definition, view dependency order, password hashes left out of CREATE USER, the
 * SHOW GRANTS lines that concern one database, and `cairn diff`'s shape.
 */
import { describe, expect, it } from 'vitest';
import { identifierChains, viewOrder } from '../../src/sources/mysql/catalog.js';
import { mysqlShape } from '../../src/sources/mysql/dump.js';
import { coversDatabase, grantsForDatabase, withoutPasswords } from '../../src/sources/mysql/grants.js';
import { segmentBounds, segmentMinBytes, segmentWhere } from '../../src/sources/mysql/segments.js';

describe('MySQL source helpers', () => {
  it('cuts a key range into about equal parts, open-ended at both ends', () => {
    expect(segmentBounds(1n, 3000n, 4)).toEqual([751n, 1501n, 2251n]);
    expect(segmentBounds(5n, 5n, 4)).toEqual([]);
    expect(segmentBounds(1n, 2n, 8)).toEqual([2n]);
    expect(segmentBounds(-9223372036854775808n, 9223372036854775807n, 2)).toEqual([0n]);
    expect([0, 1, 2].map((i) => segmentWhere('id', [10n, 20n], i))).toEqual([' WHERE `id` < 10', ' WHERE `id` >= 10 AND `id` < 20', ' WHERE `id` >= 20']);
    expect(segmentMinBytes(undefined, { CAIRN_MYSQL_SEGMENT_MIN_BYTES: '1' })).toBe(1);
    expect(segmentMinBytes(undefined, {})).toBe(64 * 1024 * 1024);
    expect(segmentMinBytes(5, { CAIRN_MYSQL_SEGMENT_MIN_BYTES: '1' })).toBe(5);
  });

  it('reads identifier chains outside string literals, and orders views after what they read', () => {
    expect(identifierChains("select `d`.`t`.`a` AS `a`, 'x `no`' from `d`.`t` join `d`.`we``ird` on 1")).toEqual([['d', 't', 'a'], ['a'], ['d', 't'], ['d', 'we`ird']]);
    const refs = new Map([['b_on_z', ['z_base']], ['c', ['b_on_z', 'z_base']]]);
    expect(viewOrder(['c', 'b_on_z', 'z_base', 'a'], refs)).toEqual(['a', 'z_base', 'b_on_z', 'c']);
  });

  it('leaves password hashes out and keeps the grants of one database', () => {
    expect(withoutPasswords("CREATE USER `u`@`%` IDENTIFIED BY PASSWORD '*ABC'")).toBe('CREATE USER `u`@`%`');
    expect(withoutPasswords("CREATE USER `u`@`%` IDENTIFIED VIA mysql_native_password USING '*AB\\'C' OR unix_socket")).toBe('CREATE USER `u`@`%` IDENTIFIED VIA mysql_native_password OR unix_socket');
    expect(withoutPasswords("CREATE USER `u`@`%` IDENTIFIED WITH 'caching_sha2_password' AS 0x2441 REQUIRE NONE")).toBe("CREATE USER `u`@`%` IDENTIFIED WITH 'caching_sha2_password' REQUIRE NONE");
    expect(coversDatabase('shop\\_1', 'shop_1')).toBe(true);
    expect(coversDatabase('shop\\_1', 'shopX1')).toBe(false);
    expect(coversDatabase('sh%', 'shop_1')).toBe(true);
    const lines = [
      "GRANT USAGE ON *.* TO `u`@`%` IDENTIFIED BY PASSWORD '*ABC'",
      'GRANT SELECT ON `shop`.* TO `u`@`%`',
      'GRANT SELECT ON `other`.* TO `u`@`%`',
      'GRANT INSERT ON `shop`.`t` TO `u`@`%`',
      'GRANT EXECUTE ON PROCEDURE `shop`.`p` TO `u`@`%`',
      'GRANT `reader` TO `u`@`%`',
    ];
    expect(grantsForDatabase(lines, 'shop')).toEqual([lines[1], lines[3], lines[4], lines[5]]);
  });

  it('compares shapes without the AUTO_INCREMENT counter or a sequence value', () => {
    const shape = mysqlShape({ name: 't', kind: 'table', definition: { createSql: 'CREATE TABLE `t` (…) ENGINE=InnoDB AUTO_INCREMENT=42 DEFAULT CHARSET=utf8mb4', autoIncrement: 42, engine: 'InnoDB' } } as never);
    expect(shape).toEqual({ createSql: 'CREATE TABLE `t` (…) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4', engine: 'InnoDB' });
    expect(mysqlShape({ name: 's', kind: 'sequence', definition: { createSql: 'CREATE SEQUENCE `s`', nextValue: '9' } } as never)).toEqual({ createSql: 'CREATE SEQUENCE `s`' });
  });
});
