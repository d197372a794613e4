/**
 * Property tests (fast-check, fixed seed) over what the server puts in its answers: URL
 * redaction, quoting of hostile input, the last guard on error messages, zod error descriptions,
 * and the data-folder check against the file system's own answer (realpath). The number of
 * generated hostile inputs is printed at the end (HOSTILE INPUTS TRIED).
 */
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteRegistry } from '../../src/catalog/registry.js';
import { AccessPolicy } from '../../src/server/access.js';
import { QUOTE_MAX, answerMessage, quote, redactUrl, safeMessage } from '../../src/server/redact.js';
import { CreateBackupBody, CreateRestoreBody, describeZodError } from '../../src/server/schemas.js';
import { openSource, openTarget } from '../../src/sources/index.js';

const SEED = 20261130;
const tried: Record<string, number> = {};
const run = (name: string, property: fc.IProperty<never> | fc.IAsyncProperty<never>, numRuns: number): void => {
  fc.assert(property as fc.IProperty<unknown>, { seed: SEED, numRuns });
  tried[name] = numRuns;
};

const work = fs.mkdtempSync(path.join(tmpdir(), 'cairn-sec-redact-'));
afterAll(() => {
  fs.rmSync(work, { recursive: true, force: true });
  const total = Object.values(tried).reduce((a, b) => a + b, 0);
  console.log(`HOSTILE INPUTS TRIED (test/security/server-redact.test.ts): ${total} — ${JSON.stringify(tried)}`);
});

/** Passwords as people (and attackers) write them: any printable character, "/", "@", ":", "?", "#" included. */
const password = fc
  .string({ unit: fc.constantFrom(...'abcXYZ019-_.~!$&\'()*+,;=:@/?#[]%" é€'.split('')), minLength: 8, maxLength: 40 })
  .filter((p) => /[a-zA-Z0-9]{3}/.test(p) && p.trim() === p);

describe('secrets in URLs', () => {
  it('redactUrl never shows the password, however it breaks the URL', () => {
    run(
      'redactUrl: URL with a hostile password',
      fc.property(password, fc.constantFrom('postgres', 'postgresql', 'mysql', 's3', 'sqlite'), fc.constantFrom('app', 'u-1', ''), fc.constantFrom('db.internal:5432/shop', 'h/db?sslmode=require', '[::1]/x'), (pw, scheme, user, rest) => {
        const url = `${scheme}://${user}:${pw}@${rest}`;
        fc.pre(!rest.includes(pw));
        expect(redactUrl(url)).not.toContain(pw);
      }) as never,
      1000,
    );
  });

  it('opening a source or target by such a URL: the error as answered (answerMessage) and the location never show the password', () => {
    run(
      'openSource/openTarget: URL with a hostile password',
      fc.property(password, fc.constantFrom('postgres', 'postgresql', 'POSTGRES', 'sqlite', 'mysql', 'postgres+x'), fc.boolean(), (pw, scheme, target) => {
        const url = `${scheme}://app:${pw}@db.internal:5432/shop`;
        try {
          const opened = target ? openTarget(url) : openSource(url);
          // Valid only when the password ends the authority early: no more than a fragment may show.
          expect(opened.location).not.toContain(pw);
        } catch (err) {
          expect(answerMessage((err as Error).message, [url])).not.toContain(pw);
        }
      }) as never,
      1000,
    );
  });
});

describe('quoting hostile input', () => {
  it('quote() keeps at most QUOTE_MAX characters, no control characters, no quote that closes early', () => {
    run(
      'quote: arbitrary strings',
      fc.property(fc.string({ unit: 'binary', maxLength: 2000 }), (s) => {
        const q = quote(s);
        expect(q.startsWith('"')).toBe(true);
        // eslint-disable-next-line no-control-regex -- the property is about control characters
        expect(q).not.toMatch(/[\u0000-\u001f\u007f]/);
        expect(q.slice(1, -1).replace(/…$/, '')).not.toContain('"');
        expect(Array.from(q).length).toBeLessThanOrEqual(QUOTE_MAX + 3);
      }) as never,
      1000,
    );
  });

  it('safeMessage() caps every message and every long run of input', () => {
    run(
      'safeMessage: messages quoting arbitrary input',
      fc.property(fc.string({ maxLength: 300 }), fc.string({ unit: 'grapheme', minLength: 0, maxLength: 3000 }), fc.boolean(), (prefix, input, quoted) => {
        const m = safeMessage(`${prefix} ${quoted ? `"${input}"` : input} and more`);
        expect(m.length).toBeLessThanOrEqual(2001);
        expect(m).not.toMatch(/[^\s"]{130,}/);
      }) as never,
      500,
    );
  });

  it('safeMessage() clips a long quoted input without touching the text between quoted strings', () => {
    const m = safeMessage(`expected one of "manual" or "scheduled", got "${'x'.repeat(200)}" — and this text between quotes stays as it is, however long it runs on "s"`);
    expect(m).toContain('expected one of "manual" or "scheduled", got "');
    expect(m).toContain('— and this text between quotes stays as it is, however long it runs on "s"');
    expect(m).not.toContain('x'.repeat(QUOTE_MAX + 1));
  });

  it('describeZodError() of any JSON body stays short and never echoes a long key or value', () => {
    const key = fc.oneof(fc.constantFrom('source', 'repository', 'id', 'include', 'renames', '__proto__', 'constructor', 'prototype', 'config'), fc.string({ maxLength: 500 }));
    const value = fc.oneof(fc.string({ maxLength: 5000 }), fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.string({ maxLength: 300 }), { maxLength: 30 }), fc.dictionary(fc.string({ maxLength: 300 }), fc.string({ maxLength: 300 }), { maxKeys: 20 }));
    run(
      'describeZodError: arbitrary bodies',
      fc.property(fc.dictionary(key, value, { maxKeys: 30 }), fc.boolean(), (raw, restore) => {
        const body = JSON.parse(JSON.stringify(raw)) as unknown;
        const r = (restore ? CreateRestoreBody : CreateBackupBody).safeParse(body);
        if (r.success) return;
        const text = describeZodError(r.error);
        expect(text.length).toBeLessThan(4000);
        expect(text).not.toMatch(/[^\s"]{200,}/);
      }) as never,
      500,
    );
  });
});

describe('the data folder, by the file system\'s own answer', () => {
  it('any path whose realpath is in the data folder is refused as a SQLite file and as a repository', () => {
    const dataDir = path.join(work, 'data');
    const registry = new SqliteRegistry(path.join(dataDir, 'catalog.db'));
    fs.mkdirSync(path.join(work, 'elsewhere', 'deep'), { recursive: true });
    fs.writeFileSync(path.join(work, 'elsewhere', 'ok.db'), '');
    fs.symlinkSync(dataDir, path.join(work, 'elsewhere', 'to-data'));
    fs.symlinkSync(path.join(work, 'elsewhere', 'to-data'), path.join(work, 'elsewhere', 'deep', 'chain'));
    fs.symlinkSync(path.join(dataDir, 'catalog.db'), path.join(work, 'elsewhere', 'cat.db'));
    fs.symlinkSync('..', path.join(work, 'elsewhere', 'deep', 'up'));
    const access = new AccessPolicy({ dataDir, registry });
    const segment = fc.constantFrom('..', '.', '', 'data', 'elsewhere', 'deep', 'to-data', 'chain', 'up', 'cat.db', 'catalog.db', 'ok.db', 'catalog.db-wal', 'x');
    run(
      'AccessPolicy: path spellings vs realpath',
      fc.property(fc.array(segment, { minLength: 1, maxLength: 7 }), (parts) => {
        const candidate = [work, ...parts].join('/');
        let real: string | undefined;
        try {
          real = fs.realpathSync(candidate);
        } catch {
          real = undefined;
        }
        const realData = fs.realpathSync(dataDir);
        const inside = real !== undefined && (real === realData || real.startsWith(`${realData}/`));
        if (!inside) return;
        expect(() => access.checkSqlitePath(candidate), candidate).toThrow(/data folder/);
        expect(() => access.checkDatabaseUrl(`sqlite://${candidate}`, 'x'), candidate).toThrow(/data folder/);
      }) as never,
      1000,
    );
    // and the control: a file elsewhere is accepted
    expect(() => access.checkSqlitePath(path.join(work, 'elsewhere', 'ok.db'))).not.toThrow();
    registry.close();
  });
});
