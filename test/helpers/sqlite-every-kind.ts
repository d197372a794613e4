/**
 * The SQLite every-kind fixture the engine contract (test/engines/sqlite.test.ts) and the
 * plain-SQL export tests load: every storage class, typed and untyped columns, WITHOUT ROWID,
 * STRICT, AUTOINCREMENT, generated columns, triggers, views, FTS5, R*Tree, statistics.
 */
export const SQLITE_EVERY_KIND = `
CREATE TABLE "Kunde Ünit" (id INTEGER PRIMARY KEY, "Full Name" TEXT NOT NULL COLLATE NOCASE, email TEXT UNIQUE,
  age INT DEFAULT 0 CHECK (age >= 0), score REAL, avatar BLOB, created TEXT DEFAULT CURRENT_TIMESTAMP);
CREATE INDEX "idx kunde name" ON "Kunde Ünit" ("Full Name");
CREATE INDEX idx_adults ON "Kunde Ünit" (age) WHERE age > 18;
CREATE INDEX idx_email_lower ON "Kunde Ünit" (lower(email));
CREATE TABLE bestellung (id INTEGER PRIMARY KEY, kunde_id INTEGER NOT NULL REFERENCES "Kunde Ünit" (id) ON DELETE CASCADE,
  amount NUMERIC CHECK (amount > 0), CONSTRAINT uq_bestellung UNIQUE (kunde_id, amount));
CREATE TABLE untyped (a, b);
CREATE TABLE kv (k TEXT PRIMARY KEY, v) WITHOUT ROWID;
CREATE TABLE counter (id INTEGER PRIMARY KEY AUTOINCREMENT, label TEXT);
CREATE TABLE strict_t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, r REAL, t TEXT, b BLOB, a ANY) STRICT;
CREATE TABLE gen (a INT, b INT GENERATED ALWAYS AS (a * 2) VIRTUAL, c INT GENERATED ALWAYS AS (a + 1) STORED);
CREATE TABLE audit (id INTEGER PRIMARY KEY, what TEXT);
CREATE TRIGGER kunde_audit AFTER UPDATE ON "Kunde Ünit" BEGIN INSERT INTO audit (what) VALUES ('update ' || new.id); END;
CREATE VIEW adults AS SELECT id, "Full Name" FROM "Kunde Ünit" WHERE age >= 18;
CREATE VIEW adult_count AS SELECT count(*) AS n FROM adults;
CREATE TRIGGER adults_insert INSTEAD OF INSERT ON adults BEGIN INSERT INTO "Kunde Ünit" (id, "Full Name", age) VALUES (new.id, new."Full Name", 18); END;
INSERT INTO "Kunde Ünit" (id, "Full Name", email, age, score, avatar, created) VALUES
  (1, 'Ada', 'ada@example.com', 36, 1.5, X'00FF10', '2024-01-01'), (2, 'Zoë Ünïcødé', NULL, 12, NULL, NULL, '2024-02-02'),
  (3, '日本語 名前', 'jp@example.com', 70, -0.0, X'', '2024-03-03');
UPDATE "Kunde Ünit" SET age = age + 1 WHERE id = 1;
INSERT INTO bestellung (id, kunde_id, amount) VALUES (1, 1, 9.99), (2, 1, 100), (3, 3, 0.5);
INSERT INTO untyped (rowid, a, b) VALUES (1, 9223372036854775807, -9223372036854775808), (2, -0.0, 1e308), (3, 'text', X'DEADBEEF'),
  (4, NULL, ''), (7, 9007199254740993, 1.0), (1000, X'', 'far rowid');
INSERT INTO kv (k, v) VALUES ('b', 2), ('a', 'one'), ('c', NULL);
INSERT INTO counter (label) VALUES ('s1'), ('s2'), ('s3'), ('s4');
DELETE FROM counter WHERE id >= 3;
INSERT INTO strict_t (id, n, r, t, b, a) VALUES (1, 42, 2.5, 'x', X'01', 'any text'), (2, -1, NULL, NULL, NULL, 3);
INSERT INTO gen (a) VALUES (21), (NULL);
-- Issue 14: text that is not UTF-8, a virtual table of each family, statistics, user_version.
INSERT INTO untyped (rowid, a, b) VALUES (8, CAST(X'61FF62' AS TEXT), 'a' || char(0) || 'b');
CREATE VIRTUAL TABLE notiz USING fts5(text);
INSERT INTO notiz VALUES ('erinnere an die Milch'), ('ruf den Klempner an');
CREATE VIRTUAL TABLE boxen USING rtree(id, minx, maxx);
INSERT INTO boxen VALUES (1, 0, 10), (2, 5, 15);
ANALYZE;
PRAGMA user_version = 14;
`;
