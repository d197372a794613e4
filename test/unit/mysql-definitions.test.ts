/**
 * The rewrites of recorded CREATE statements (src/sources/mysql/definitions.ts): only real
 * identifiers change, never text in strings, comments or other names.
 */
import { describe, expect, it } from 'vitest';
import { bodyNames, createdName, definerToCurrentUser, referencedTables, renameObject, retargetTrigger, rewriteReferences } from '../../src/sources/mysql/definitions.js';
import { definitionProblems } from '../../src/sources/mysql/plan.js';

const TABLE = "CREATE TABLE `a``b` (\n  `id` int(11) NOT NULL COMMENT 'REFERENCES `p` (x)',\n  `p` int DEFAULT NULL, -- REFERENCES `p`\n  CONSTRAINT `fk` FOREIGN KEY (`p`) REFERENCES `p` (`id`),\n  CONSTRAINT `fk2` FOREIGN KEY (`p`) REFERENCES `other`.`p` (`id`)\n) ENGINE=InnoDB";

describe('MySQL definition rewrites', () => {
  it('renames the created object only, with backticks doubled', () => {
    expect(createdName(TABLE, 'TABLE')).toBe('a`b');
    const out = renameObject(TABLE, 'TABLE', 'new`name');
    expect(out.startsWith('CREATE TABLE `new``name` (')).toBe(true);
    expect(out.slice(out.indexOf('('))).toBe(TABLE.slice(TABLE.indexOf('(')));
    expect(renameObject(TABLE, 'TABLE', 'a`b')).toBe(TABLE);
  });

  it('rewrites unqualified REFERENCES, leaving strings, comments and other databases alone', () => {
    expect(referencedTables(TABLE)).toEqual(['p']);
    const out = rewriteReferences(TABLE, (t) => (t === 'p' ? 'parent' : undefined));
    expect(out).toContain("COMMENT 'REFERENCES `p` (x)'");
    expect(out).toContain('-- REFERENCES `p`');
    expect(out).toContain('REFERENCES `parent` (`id`)');
    expect(out).toContain('REFERENCES `other`.`p` (`id`)');
    expect(rewriteReferences(TABLE, () => ({ database: 'tgt db', name: 'p' }))).toContain('REFERENCES `tgt db`.`p` (`id`)');
  });

  it('DEFINER → CURRENT_USER in the head only; triggers re-aimed at their table', () => {
    const trig = "CREATE DEFINER=`root`@`localhost` TRIGGER `t1` BEFORE INSERT ON `book` FOR EACH ROW SET NEW.note = 'DEFINER=`x`@`y` ON `book`'";
    expect(definerToCurrentUser(trig)).toBe("CREATE DEFINER=CURRENT_USER TRIGGER `t1` BEFORE INSERT ON `book` FOR EACH ROW SET NEW.note = 'DEFINER=`x`@`y` ON `book`'");
    expect(definerToCurrentUser("CREATE DEFINER='u'@'%' PROCEDURE `p`() SELECT 1")).toBe('CREATE DEFINER=CURRENT_USER PROCEDURE `p`() SELECT 1');
    expect(retargetTrigger(trig, 'volume')).toContain('BEFORE INSERT ON `volume` FOR EACH ROW');
    expect(retargetTrigger(trig, 'volume')).toContain("'DEFINER=`x`@`y` ON `book`'");
    expect(bodyNames("CREATE TRIGGER `t` AFTER INSERT ON `book` FOR EACH ROW INSERT INTO audit VALUES ('book')", 'ON')).toEqual(new Set(['FOR', 'EACH', 'ROW', 'INSERT', 'INTO', 'audit', 'VALUES']));
  });

  it('a definition whose CREATE names another object is a problem', () => {
    expect(definitionProblems({ name: 'v', kind: 'view', definition: { createSql: 'CREATE VIEW `w` AS SELECT 1', references: [] } })).toEqual(['view "v": its createSql does not create view "v" (it names "w").']);
    expect(definitionProblems({ name: 's', kind: 'sequence', definition: { createSql: 'CREATE SEQUENCE `s` start with 1', nextValue: '1; DROP' } })).toEqual(['sequence "s": nextValue is not an integer.']);
  });
});
