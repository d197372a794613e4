/** Which names in a definition are application collations and functions (app-names.ts). */
import { describe, expect, it } from 'vitest';
import { appCollations, knownFunctions, unknownFunctions, withFallbacks } from '../../src/sources/sqlite/app-names.js';

describe('application names in SQLite definitions', () => {
  const known = knownFunctions();
  it.each([
    ['CREATE TABLE t (a INT CHECK (app_ok(a)), b DEFAULT (app_now()), c AS (app_f(a, b)) VIRTUAL)', ['app_ok', 'app_now', 'app_f']],
    ['CREATE TABLE t (key VARCHAR(64), action DECIMAL(10,2), "x" NUMERIC(3), y REFERENCES p(id), PRIMARY KEY (key), UNIQUE (action), CHECK (length(key) > 0))', []],
    ['CREATE INDEX i ON t (app_fold(name) COLLATE NOCASE, lower(x))', ['app_fold']],
    ['CREATE VIEW v (a, b) AS WITH c1 AS (SELECT 1), c2(x) AS MATERIALIZED (SELECT app_g(2)) SELECT NOT app_h(x) AS h, app_k(x) AS k FROM c2', ['app_g', 'app_h', 'app_k']],
    ['CREATE TRIGGER tr AFTER INSERT ON t WHEN app_w(new.a) BEGIN INSERT INTO log(m) VALUES (app_x(new.a)); UPDATE t SET a = json_extract(new.a, \'$.x\') WHERE EXISTS (SELECT 1 FROM json_each(new.a)); END', ['app_w', 'app_x']],
  ])('%s', (sql, functions) => {
    expect(unknownFunctions(sql, known)).toEqual(functions);
    const fallback = withFallbacks(sql, known);
    expect(unknownFunctions(fallback, known)).toEqual([]);
    // Only those names change.
    expect(fallback.replace(/char\(/g, '')).toBe(functions.reduce((s, f) => s.split(`${f}(`).join(''), sql));
  });

  it('collations: only other than BINARY, NOCASE and RTRIM, quoted or not', () => {
    const sql = `CREATE TABLE t (a TEXT COLLATE LOCALIZED, b COLLATE "UNICODE", c COLLATE nocase, d COLLATE /* x */ phonebook)`;
    expect(appCollations(sql)).toEqual(['LOCALIZED', 'UNICODE', 'phonebook']);
    expect(withFallbacks(sql, knownFunctions())).toBe('CREATE TABLE t (a TEXT COLLATE BINARY, b COLLATE BINARY, c COLLATE nocase, d COLLATE /* x */ BINARY)');
  });
});
