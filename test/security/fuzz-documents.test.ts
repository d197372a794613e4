/**
 * Property tests over every parser of a document cairn reads back from storage: manifests,
 * index documents, the repository config, lock documents, pack headers, compressed blobs and
 * the bounded zstd decoder under them. Whatever the bytes (arbitrary, or a valid document
 * mutated: bit flips, truncation, fields replaced by huge numbers, long or path-like strings,
 * deep nesting, `__proto__` keys, fields swapped or dropped, checksums recomputed by the
 * attacker), a parser either returns a value that satisfies the invariants its callers rely on,
 * or throws a CairnError (CORRUPT; USAGE only for "newer format" configs) with a short message:
 * never another exception, never a hang, never an unbounded allocation.
 *
 * Fixed seed, modest runs: the file runs in a few seconds. PROPERTY_RUNS and FIXED_HOSTILE
 * count what was tried (the note reports the total).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CairnError } from '../../src/core/errors.js';
import { BACKUP_ID_PATTERN, IndexDocumentSchema, type BackupManifest, type IndexDocument } from '../../src/core/schemas.js';
import { decodeLock } from '../../src/repo/lock.js';
import {
  MAX_METADATA_DEPTH,
  boundedZstdDecompress,
  decodeMetadata,
  encodeManifest,
  encodeMetadata,
  manifestChecksum,
} from '../../src/repo/metadata.js';
import { decodeManifest, encodeRepositoryConfig, parseRepositoryConfig } from '../../src/repo/repository.js';
import { PackBuilder, parsePackHeader } from '../../src/repo/pack.js';
import { compressBlob, decompressBlob, MAX_RAW_BLOB } from '../../src/repo/compression.js';
import { sha256Hex } from '../../src/repo/hash.js';
import { repositoryConfig } from '../helpers/manifests.js';

const SEED = 12_2026;
/** Runs per property, by name: their sum is the number of generated hostile documents. */
export const PROPERTY_RUNS: Record<string, number> = {};
/** Hand-written hostile inputs in this file, by name. */
export const FIXED_HOSTILE: Record<string, number> = {};

/** Per property: how many inputs parsed (and met the invariants) and how many were refused. */
const OUTCOMES: Record<string, { ok: number; refused: number }> = {};
let current = '';

function property<T>(name: string, arb: fc.Arbitrary<T>, predicate: (value: T) => void, numRuns: number): void {
  PROPERTY_RUNS[name] = numRuns;
  current = name;
  OUTCOMES[name] = { ok: 0, refused: 0 };
  fc.assert(
    fc.property(arb, (v) => {
      predicate(v);
    }),
    { seed: SEED, numRuns, endOnFailure: true },
  );
}

/** Runs `parse`: a result must satisfy `invariant`; a failure must be a short CairnError. */
function parsesOrCorrupt<T>(parse: () => T, invariant: (value: T) => void, allowed: string[] = ['CORRUPT']): 'ok' | 'refused' {
  let value: T;
  try {
    value = parse();
  } catch (err) {
    if (!(err instanceof CairnError) || !allowed.includes(err.code)) {
      throw new Error(`expected a CairnError (${allowed.join('/')}), got ${String(err)}`, { cause: err });
    }
    // Errors quote at most a short prefix of what they read.
    expect(err.message.length).toBeLessThan(700);
    const o = OUTCOMES[current];
    if (o) o.refused++;
    return 'refused';
  }
  invariant(value);
  const o = OUTCOMES[current];
  if (o) o.ok++;
  // Nothing leaked into Object.prototype through a "__proto__" key.
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  return 'ok';
}

const HEX64 = /^[0-9a-f]{64}$/;
const isCount = (n: number): boolean => Number.isSafeInteger(n) && n >= 0;

// --- valid documents -------------------------------------------------------------------------

const chunk = (n: number): string => sha256Hex(Buffer.from(`chunk ${n}`));

function validManifest(id = 'app-20261130-101500'): BackupManifest {
  const at = '2026-11-30T10:15:00.000Z';
  return {
    formatVersion: 1,
    id,
    createdAt: at,
    completedAt: at,
    type: 'scheduled',
    schedule: 'nightly',
    scheduleId: 'f00d',
    expiresAt: null,
    source: { kind: 'sqlite', name: 'app', location: 'sqlite:///data/app.db', serverVersion: '3.45.0' },
    scope: { include: ['users', 'orders'] },
    compression: { algorithm: 'zstd', level: 'default' },
    collections: [
      {
        name: 'users',
        kind: 'table',
        definition: { sql: 'CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)', columns: ['id', 'name'] },
        dataFormat: 'rows-v1',
        rowCount: 12,
        logicalBytes: 4096,
        storedBytes: 1024,
        newBytes: 1024,
        chunks: [chunk(1), chunk(2), chunk(3)],
        segments: [2, 1],
      },
      {
        name: 'v_users',
        kind: 'view',
        definition: { sql: 'CREATE VIEW v_users AS SELECT * FROM users' },
        rowCount: 0,
        logicalBytes: 0,
        storedBytes: 0,
        newBytes: 0,
        chunks: [],
        damage: { missingChunks: 1, detectedAt: at },
      },
    ],
    totals: { collections: 2, rows: 12, logicalBytes: 4096, storedBytes: 1024, newBytes: 1024, reusedBytes: 0, chunks: 3, newChunks: 3 },
    warnings: ['a warning'],
  };
}

function validIndex(): IndexDocument {
  return {
    formatVersion: 1,
    supersedes: [chunk(90)],
    packs: [
      {
        id: chunk(100),
        length: 5000,
        blobs: [
          { id: chunk(1), offset: 0, length: 1000, rawLength: 4000, compression: 'zstd' },
          { id: chunk(2), offset: 1000, length: 3000, rawLength: 3000, compression: 'none' },
        ],
      },
    ],
  };
}

const validConfig = repositoryConfig();

const validLock = {
  exclusive: false,
  operation: 'backup',
  hostname: 'db1',
  pid: 4242,
  createdAt: '2026-11-30T10:15:00.000Z',
  refreshedAt: '2026-11-30T10:16:00.000Z',
  lockId: 'abcd',
  processStart: '123456',
  bootId: 'boot',
  pidNamespace: 'pid:[4026531836]',
};

function validPack(): Buffer {
  const b = new PackBuilder();
  for (let i = 0; i < 4; i++) {
    const raw = Buffer.from(`row ${i} `.repeat(50 + i * 30));
    const c = compressBlob(raw, i % 2 ? 'zstd' : 'gzip', 'default');
    b.add(sha256Hex(raw), c.data, raw.length, c.algorithm);
  }
  return Buffer.concat(b.finish().parts);
}

// --- invariants ------------------------------------------------------------------------------

function manifestInvariant(id: string) {
  return ({ manifest: m }: { manifest: BackupManifest }): void => {
    expect(m.id).toBe(id);
    expect(BACKUP_ID_PATTERN.test(m.id)).toBe(true);
    for (const n of Object.values(m.totals)) expect(isCount(n)).toBe(true);
    for (const c of m.collections) {
      expect(c.name.length).toBeGreaterThan(0);
      expect(c.name.length).toBeLessThanOrEqual(4096);
      for (const n of [c.rowCount, c.logicalBytes, c.storedBytes, c.newBytes]) expect(isCount(n)).toBe(true);
      for (const ch of c.chunks) expect(HEX64.test(ch)).toBe(true);
      if (c.segments) expect(c.segments.reduce((a, b) => a + b, 0)).toBe(c.chunks.length);
      expect(Object.getPrototypeOf(c.definition)).not.toHaveProperty('polluted');
    }
    // What was read can be written again (no cycle, no depth that overflows the encoder).
    expect(() => encodeManifest(m)).not.toThrow();
  };
}

function indexInvariant(doc: IndexDocument): void {
  for (const s of doc.supersedes) expect(HEX64.test(s)).toBe(true);
  for (const p of doc.packs) {
    expect(HEX64.test(p.id)).toBe(true);
    for (const b of p.blobs) {
      expect(HEX64.test(b.id)).toBe(true);
      expect(isCount(b.offset) && isCount(b.length) && isCount(b.rawLength)).toBe(true);
      expect(b.offset + b.length).toBeLessThanOrEqual(p.length);
      expect(b.rawLength).toBeLessThanOrEqual(MAX_RAW_BLOB);
    }
  }
}

function configInvariant(c: ReturnType<typeof parseRepositoryConfig>): void {
  const { minSize, avgSize, maxSize } = c.chunker;
  expect(minSize).toBeGreaterThanOrEqual(64);
  expect(maxSize).toBeLessThanOrEqual(64 * 1024 * 1024);
  expect(minSize < avgSize && avgSize < maxSize).toBe(true);
  expect(avgSize & (avgSize - 1)).toBe(0);
  expect(c.packSize).toBeGreaterThanOrEqual(1024 * 1024);
  expect(c.packSize).toBeLessThanOrEqual(1024 * 1024 * 1024);
}

function lockInvariant(l: ReturnType<typeof decodeLock>): void {
  expect(Number.isSafeInteger(l.pid) && l.pid >= 0).toBe(true);
  expect(l.hostname.length).toBeLessThanOrEqual(4096);
  if (l.processStart !== undefined) expect(/^\d{1,32}$/.test(l.processStart)).toBe(true);
}

function packInvariant(pack: Buffer) {
  return (entries: ReturnType<typeof parsePackHeader>): void => {
    let offset = 0;
    for (const e of entries) {
      expect(e.offset).toBe(offset);
      expect(HEX64.test(e.id)).toBe(true);
      expect(['none', 'zstd', 'gzip']).toContain(e.compression);
      offset += e.length;
    }
    expect(offset).toBeLessThanOrEqual(pack.length);
  };
}

// --- mutations -------------------------------------------------------------------------------

const DEEP = '\u0000DEEP\u0000';
const PROTO = '\u0000PROTO\u0000';
const deepJson = (n: number): string => '['.repeat(n) + ']'.repeat(n);

/** Hostile replacement values; DEEP and PROTO are markers replaced in the serialized text. */
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(
    2 ** 53,
    2 ** 64,
    1e308,
    -1,
    -0,
    0.5,
    Number.MAX_SAFE_INTEGER,
    '',
    '../x',
    'sub/dir',
    '/etc/passwd',
    'a'.repeat(200_000),
    'é\u0000\u202e',
    null,
    true,
    [],
    {},
    DEEP,
    PROTO,
    'CREATE TABLE t (a); ATTACH DATABASE \'/tmp/x\' AS x',
  ),
  fc.integer(),
  fc.double(),
  fc.string({ maxLength: 80 }),
  fc.array(fc.string({ maxLength: 8 }), { maxLength: 5 }),
);

type Path = (string | number)[];

function paths(v: unknown, prefix: Path = [], out: Path[] = []): Path[] {
  out.push(prefix);
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, [...prefix, i], out));
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) paths(x, [...prefix, k], out);
  return out;
}

type Mutation = { kind: 'set'; at: number; value: unknown } | { kind: 'delete'; at: number } | { kind: 'swap'; at: number; other: number } | { kind: 'add'; at: number; key: string; value: unknown };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: hostileValue }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('swap' as const), at: fc.nat(), other: fc.nat() }),
  fc.record({ kind: fc.constant('add' as const), at: fc.nat(), key: fc.constantFrom('__proto__', 'constructor', 'x', 'checksum', 'id'), value: hostileValue }),
);

function getAt(doc: unknown, path: Path): unknown {
  return path.reduce<unknown>((v, k) => (v as Record<string | number, unknown>)[k], doc);
}

function setAt(doc: unknown, path: Path, value: unknown): unknown {
  if (path.length === 0) return value;
  const parent = getAt(doc, path.slice(0, -1)) as Record<string | number, unknown>;
  parent[path[path.length - 1] as string | number] = value;
  return doc;
}

/** Applies mutations to a copy of `doc` and serializes it (markers expanded). */
function mutate(doc: unknown, ms: Mutation[]): string {
  let d = structuredClone(doc);
  for (const m of ms) {
    const all = paths(d);
    const path = all[m.at % all.length] as Path;
    if (m.kind === 'set') d = setAt(d, path, m.value);
    else if (m.kind === 'delete' && path.length > 0) {
      const parent = getAt(d, path.slice(0, -1));
      const key = path[path.length - 1] as string | number;
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete (parent as Record<string, unknown>)[key as string];
    } else if (m.kind === 'swap') {
      const other = all[m.other % all.length] as Path;
      const isPrefix = (a: Path, b: Path): boolean => a.length <= b.length && a.every((k, i) => b[i] === k);
      if (!isPrefix(path, other) && !isPrefix(other, path)) {
        const a = getAt(d, path);
        const b = getAt(d, other);
        d = setAt(d, path, b);
        d = setAt(d, other, a);
      }
    } else if (m.kind === 'add') {
      const target = getAt(d, path);
      if (target !== null && typeof target === 'object' && !Array.isArray(target)) {
        // "__proto__" as an own key (as JSON.parse makes it), through a marker.
        (target as Record<string, unknown>)[m.key === '__proto__' ? '\u0000PROTOKEY\u0000' : m.key] = m.value;
      }
    }
  }
  return JSON.stringify(d)
    .replaceAll(JSON.stringify(DEEP), deepJson(MAX_METADATA_DEPTH + 20))
    .replaceAll(JSON.stringify(PROTO), '{"__proto__":{"polluted":true}}')
    .replaceAll(JSON.stringify('\u0000PROTOKEY\u0000'), '"__proto__"');
}

/** Byte-level damage: bit flips, truncation, a byte run overwritten. */
const byteDamage = fc.record({
  flips: fc.array(fc.record({ at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }), { maxLength: 4 }),
  cut: fc.option(fc.nat(), { nil: undefined }),
});

function damage(bytes: Buffer, d: { flips: { at: number; bit: number }[]; cut: number | undefined }): Buffer {
  let b = Buffer.from(bytes);
  for (const f of d.flips) {
    const i = f.at % b.length;
    b[i] = (b[i] as number) ^ (1 << f.bit);
  }
  if (d.cut !== undefined) b = b.subarray(0, d.cut % (b.length + 1));
  return b;
}

// --- the properties --------------------------------------------------------------------------

const ID = 'app-20261130-101500';

describe('fuzz: manifests', () => {
  it('valid manifests round-trip through encodeManifest/decodeManifest', () => {
    expect(parsesOrCorrupt(() => decodeManifest(encodeManifest(validManifest()), ID, { checksumRequired: true }), manifestInvariant(ID))).toBe('ok');
  });

  it('the checksum is over content, not form: reordered keys and whitespace still verify; plain JSON reads too', () => {
    const text = encodeManifestText(validManifest());
    const reorder = (v: unknown): unknown =>
      Array.isArray(v) ? v.map(reorder) : v !== null && typeof v === 'object' ? Object.fromEntries(Object.entries(v).reverse().map(([k, x]) => [k, reorder(x)])) : v;
    const pretty = JSON.stringify(reorder(JSON.parse(text)), null, 3);
    expect(pretty).not.toBe(text);
    expect(parsesOrCorrupt(() => decodeManifest(Buffer.from(pretty), ID, { checksumRequired: true }), manifestInvariant(ID))).toBe('ok');
    expect(parsesOrCorrupt(() => decodeManifest(encodeMetadata(JSON.parse(pretty)), ID, { checksumRequired: true }), manifestInvariant(ID))).toBe('ok');
  });

  it('arbitrary bytes, plain or as a zstd frame', () => {
    property(
      'manifest: arbitrary bytes',
      fc.tuple(fc.uint8Array({ maxLength: 2048 }), fc.boolean()),
      ([bytes, zstd]) => {
        const b = zstd ? encodeMetadata(Buffer.from(bytes).toString('latin1')) : Buffer.from(bytes);
        parsesOrCorrupt(() => decodeManifest(b, ID, { checksumRequired: false }), manifestInvariant(ID));
      },
      300,
    );
  });

  it('mutated documents, checksum left stale: always refused', () => {
    property(
      'manifest: mutated, stale checksum',
      fc.array(mutation, { minLength: 1, maxLength: 3 }),
      (ms) => {
        const doc = JSON.parse(encodeManifestText(validManifest())) as Record<string, unknown>;
        const text = mutate(doc, ms);
        if (text === JSON.stringify(doc)) return; // a no-op mutation (e.g. a swap of equal values)
        const r = parsesOrCorrupt(() => decodeManifest(encodeMetadata(JSON.parse(text)), ID, { checksumRequired: true }), manifestInvariant(ID));
        // Any change to the content is caught by the checksum (canonical JSON: key order and
        // whitespace do not count, content does).
        const same = sameContent(doc, text);
        if (!same) expect(r).toBe('refused');
      },
      400,
    );
  });

  it('mutated documents with the checksum recomputed (an attacker who can write): schema and id checks hold', () => {
    property(
      'manifest: mutated, checksum recomputed',
      fc.array(mutation, { minLength: 1, maxLength: 3 }),
      (ms) => {
        const { checksum: _c, ...doc } = JSON.parse(encodeManifestText(validManifest())) as Record<string, unknown>;
        const text = mutate(doc, ms);
        let bytes: Buffer;
        try {
          const parsed = JSON.parse(text) as unknown;
          if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed) || text.includes('[[[[[[[[[[')) {
            bytes = Buffer.from(text); // no checksum to recompute over a non-object or a deep one
          } else {
            const obj = parsed as Record<string, unknown>;
            bytes = Buffer.from(`${text.slice(0, -1)}${text.length > 2 ? ',' : ''}"checksum":${JSON.stringify(manifestChecksum(obj))}}`);
          }
        } catch {
          bytes = Buffer.from(text);
        }
        parsesOrCorrupt(() => decodeManifest(bytes, ID, { checksumRequired: false }), manifestInvariant(ID));
      },
      400,
    );
  });

  it('byte damage to a stored manifest (zstd and plain)', () => {
    property(
      'manifest: byte damage',
      fc.tuple(byteDamage, fc.boolean()),
      ([d, plain]) => {
        const stored = plain ? Buffer.from(encodeManifestText(validManifest())) : encodeManifest(validManifest());
        parsesOrCorrupt(() => decodeManifest(damage(stored, d), ID, { checksumRequired: true }), manifestInvariant(ID));
      },
      300,
    );
  });

  it('manifests claiming another id, read under hostile names', () => {
    const claims = ['../x', 'sub/dir', 'x'.repeat(50_000), 'APP', '', 'app-20261130-101501', '.', 'a\u0000b', 'a'.repeat(129)];
    FIXED_HOSTILE['manifest: claimed ids'] = claims.length;
    for (const claim of claims) {
      const bytes = encodeManifest({ ...validManifest(), id: claim });
      expect(parsesOrCorrupt(() => decodeManifest(bytes, ID, { checksumRequired: true }), manifestInvariant(ID))).toBe('refused');
    }
  });
});

function encodeManifestText(m: BackupManifest): string {
  return JSON.stringify({ ...m, checksum: manifestChecksum(JSON.parse(JSON.stringify(m)) as Record<string, unknown>) });
}

/** Whether the mutated text has the same JSON content as the document (then the checksum holds). */
function sameContent(doc: unknown, text: string): boolean {
  try {
    return manifestChecksum(JSON.parse(text) as Record<string, unknown>) === manifestChecksum(doc as Record<string, unknown>);
  } catch {
    return false;
  }
}

describe('fuzz: index documents', () => {
  const parse = (b: Buffer) => () => decodeMetadata(b, IndexDocumentSchema, 'Index index/x');

  it('arbitrary bytes', () => {
    property('index: arbitrary bytes', fc.uint8Array({ maxLength: 2048 }), (bytes) => void parsesOrCorrupt(parse(Buffer.from(bytes)), indexInvariant), 200);
  });

  it('mutated documents', () => {
    property(
      'index: mutated',
      fc.array(mutation, { minLength: 1, maxLength: 3 }),
      (ms) => void parsesOrCorrupt(parse(encodeMetadata(JSON.parse(mutate(validIndex(), ms)))), indexInvariant),
      400,
    );
  });

  it('byte damage', () => {
    property('index: byte damage', byteDamage, (d) => void parsesOrCorrupt(parse(damage(encodeMetadata(validIndex()), d)), indexInvariant), 200);
  });
});

describe('fuzz: repository config', () => {
  const parse = (b: Buffer) => () => parseRepositoryConfig(b, 'file:///fuzz');
  /** JSON text with the checksum recomputed over what it holds (an attacker who can write). */
  const sealed = (text: string): Buffer => {
    try {
      const v = JSON.parse(text) as unknown;
      if (v === null || typeof v !== 'object' || Array.isArray(v) || text.includes('[[[[[[[[[[')) return Buffer.from(text);
      const { checksum: _c, ...rest } = v as Record<string, unknown>;
      return Buffer.from(JSON.stringify({ ...rest, checksum: manifestChecksum(rest) }));
    } catch {
      return Buffer.from(text);
    }
  };

  it('valid config parses; every single-bit flip of a stored config is refused', () => {
    const stored = encodeRepositoryConfig(validConfig as Parameters<typeof encodeRepositoryConfig>[0]);
    expect(parsesOrCorrupt(parse(stored), configInvariant)).toBe('ok');
    let flips = 0;
    for (let at = 0; at < stored.length; at++) {
      for (let bit = 0; bit < 8; bit++) {
        const b = Buffer.from(stored);
        b[at] = (b[at] as number) ^ (1 << bit);
        expect(parsesOrCorrupt(parse(b), configInvariant, ['CORRUPT', 'USAGE']), `byte ${at} bit ${bit}`).toBe('refused');
        flips++;
      }
    }
    FIXED_HOSTILE['config: single-bit flips'] = flips;
  });

  it('arbitrary bytes', () => {
    property('config: arbitrary bytes', fc.uint8Array({ maxLength: 1024 }), (bytes) => void parsesOrCorrupt(parse(Buffer.from(bytes)), configInvariant, ['CORRUPT', 'USAGE']), 200);
  });

  it('mutated configs (chunker sizes, pack size, versions, …)', () => {
    property(
      'config: mutated',
      fc.array(mutation, { minLength: 1, maxLength: 3 }),
      (ms) => void parsesOrCorrupt(parse(sealed(mutate(validConfig, ms))), configInvariant, ['CORRUPT', 'USAGE']),
      400,
    );
  });

  it('chunker and pack-size values around every bound', () => {
    const sizes = fc.oneof(fc.constantFrom(0, 63, 64, 65, 2 ** 26, 2 ** 26 + 1, 2 ** 31, 2 ** 53, -64, 1e300, 0.5), fc.integer({ min: 0, max: 2 ** 27 }));
    property(
      'config: chunker/pack bounds',
      fc.record({
        chunker: fc.oneof(
          fc.record({ minSize: sizes, avgSize: sizes, maxSize: sizes }),
          // Near-valid: avg a power of two, min and max around it and around the bounds.
          fc.integer({ min: 5, max: 25 }).chain((e) =>
            fc.record({
              minSize: fc.oneof(fc.integer({ min: Math.min(60, 2 ** e), max: 2 ** e }), sizes),
              avgSize: fc.constant(2 ** e),
              maxSize: fc.oneof(fc.integer({ min: 2 ** e, max: 2 ** 26 + 2 }), sizes),
            }),
          ),
        ),
        packSize: fc.oneof(sizes, fc.constantFrom(2 ** 20, 2 ** 24, 2 ** 30, 2 ** 30 + 1)),
      }),
      ({ packSize, chunker }) =>
        void parsesOrCorrupt(parse(sealed(JSON.stringify({ ...validConfig, packSize, chunker: { algorithm: 'fastcdc-2020', ...chunker } }))), configInvariant),
      300,
    );
  });
});

describe('fuzz: lock documents', () => {
  const parse = (b: Buffer) => () => decodeLock(b, 'locks/fuzz');

  it('arbitrary bytes and mutated locks', () => {
    property('lock: arbitrary bytes', fc.uint8Array({ maxLength: 1024 }), (bytes) => void parsesOrCorrupt(parse(Buffer.from(bytes)), lockInvariant), 200);
    property(
      'lock: mutated',
      fc.array(mutation, { minLength: 1, maxLength: 3 }),
      (ms) => void parsesOrCorrupt(parse(encodeMetadata(JSON.parse(mutate(validLock, ms)))), lockInvariant),
      300,
    );
  });
});

describe('fuzz: pack headers', () => {
  const pack = validPack();

  it('a valid pack parses', () => {
    expect(parsePackHeader(pack, 'p')).toHaveLength(4);
  });

  it('arbitrary bytes, with and without a trailer', () => {
    property(
      'pack: arbitrary bytes',
      fc.tuple(fc.uint8Array({ maxLength: 4096 }), fc.boolean(), fc.nat()),
      ([bytes, trailer, headerLength]) => {
        let b = Buffer.from(bytes);
        if (trailer) {
          const t = Buffer.alloc(12);
          t.writeUInt32LE(headerLength % 2 ? (headerLength * 42) >>> 0 : headerLength >>> 0, 0);
          t.write('CRNPACK1', 4, 'ascii');
          b = Buffer.concat([b, t]);
        }
        parsesOrCorrupt(() => parsePackHeader(b, 'p'), packInvariant(b));
      },
      400,
    );
  });

  it('byte damage to a valid pack', () => {
    property('pack: byte damage', byteDamage, (d) => {
      const b = damage(pack, d);
      parsesOrCorrupt(() => parsePackHeader(b, 'p'), packInvariant(b));
    }, 400);
  });
});

describe('fuzz: compressed blobs', () => {
  it('arbitrary stored bytes and recorded sizes decode to exactly that size or CORRUPT', () => {
    const sizes = fc.oneof(fc.nat({ max: 1 << 16 }), fc.constantFrom(-1, 0.5, 2 ** 31, 2 ** 53, MAX_RAW_BLOB, MAX_RAW_BLOB + 1, Number.NaN, Infinity));
    property(
      'blob: arbitrary',
      fc.tuple(fc.uint8Array({ maxLength: 2048 }), fc.constantFrom('zstd' as const, 'gzip' as const, 'none' as const), sizes),
      ([bytes, algorithm, rawLength]) =>
        void parsesOrCorrupt(() => decompressBlob(Buffer.from(bytes), algorithm, rawLength, 'chunk x'), (out) => expect(out.length).toBe(rawLength)),
      400,
    );
  });

  it('damaged real blobs', () => {
    const raw = Buffer.from('some rows, '.repeat(2000));
    property(
      'blob: byte damage',
      fc.tuple(byteDamage, fc.constantFrom('zstd' as const, 'gzip' as const)),
      ([d, algorithm]) => {
        const c = compressBlob(raw, algorithm, 'default');
        parsesOrCorrupt(() => decompressBlob(damage(c.data, d), algorithm, raw.length, 'chunk x'), (out) => expect(out.length).toBe(raw.length));
      },
      300,
    );
  });
});

describe('zstd bombs and lying frame headers', () => {
  /** A zstd frame of `blocks` RLE blocks of 128 KiB each, claiming `claimed` bytes of content. */
  function rleFrame(blocks: number, claimed: bigint | undefined): Buffer {
    const parts: Buffer[] = [Buffer.from([0x28, 0xb5, 0x2f, 0xfd])];
    if (claimed === undefined) parts.push(Buffer.from([0x00, 0x58])); // no content size, window 2^(10+11)... descriptor + window
    else {
      const fcs = Buffer.alloc(8);
      fcs.writeBigUInt64LE(claimed);
      parts.push(Buffer.from([0xc0 | 0x00, 0x58]), fcs); // FCS 8 bytes, window descriptor
    }
    for (let i = 0; i < blocks; i++) {
      const size = 128 * 1024;
      const last = i === blocks - 1 ? 1 : 0;
      const header = (size << 3) | (1 << 1) | last; // RLE block
      parts.push(Buffer.from([header & 0xff, (header >> 8) & 0xff, (header >> 16) & 0xff, 0x20]));
    }
    return Buffer.concat(parts);
  }

  const cases: [string, Buffer][] = [
    ['claims 1 TiB', rleFrame(1, 2n ** 40n)],
    ['claims 2^63', rleFrame(1, 2n ** 63n)],
    ['inflates to 64 MiB from 2 KB', rleFrame(512, undefined)],
    ['inflates to 64 MiB, claims it', rleFrame(512, 512n * 128n * 1024n)],
    ['concatenated bombs', Buffer.concat([rleFrame(64, undefined), rleFrame(64, undefined), rleFrame(64, undefined)])],
    ['truncated frame', rleFrame(4, undefined).subarray(0, 12)],
    ['magic only', Buffer.from([0x28, 0xb5, 0x2f, 0xfd])],
  ];

  it.each(cases)('%s: bounded decoder refuses past its bound, documents fail as CORRUPT', (_name, frame) => {
    expect(() => boundedZstdDecompress(frame, 1024 * 1024)).toThrow();
    // Locks and configs are bounded to 1 MiB decoded: refused without inflating the rest.
    expect(parsesOrCorrupt(() => decodeLock(frame, 'locks/bomb'), lockInvariant)).toBe('refused');
    expect(parsesOrCorrupt(() => parseRepositoryConfig(frame, 'file:///bomb'), configInvariant)).toBe('refused');
  });
  FIXED_HOSTILE['zstd bombs'] = cases.length;

  it('deep nesting far past the bound and __proto__ keys are refused in every document kind', () => {
    const texts = [
      deepJson(100_000),
      `{"a":${deepJson(MAX_METADATA_DEPTH + 1)}}`,
      '{"__proto__":{"polluted":true}}',
      JSON.stringify({ ...validManifest(), checksum: undefined }).replace('"definition":{', '"definition":{"__proto__":{"polluted":true},'),
    ];
    FIXED_HOSTILE['deep/__proto__ documents'] = texts.length * 4;
    for (const t of texts) {
      const b = Buffer.from(t);
      expect(parsesOrCorrupt(() => decodeManifest(b, ID, { checksumRequired: false }), manifestInvariant(ID))).toBe('refused');
      expect(parsesOrCorrupt(() => decodeMetadata(b, IndexDocumentSchema, 'i'), indexInvariant)).toBe('refused');
      expect(parsesOrCorrupt(() => parseRepositoryConfig(b, 'x'), configInvariant)).toBe('refused');
      expect(parsesOrCorrupt(() => decodeLock(b, 'l'), lockInvariant)).toBe('refused');
    }
  });
});

describe('counts', () => {
  it('reports what was tried', () => {
    const generated = Object.values(PROPERTY_RUNS).reduce((a, b) => a + b, 0);
    const fixed = Object.values(FIXED_HOSTILE).reduce((a, b) => a + b, 0);
    // Visible in the vitest output, for the note.
    console.log(`HOSTILE INPUTS TRIED (test/security/fuzz-documents.test.ts): ${generated + fixed} — ${generated} generated over ${Object.keys(PROPERTY_RUNS).length} properties, ${fixed} fixed`);
    console.log(JSON.stringify(OUTCOMES));
    // The mutation properties reach both outcomes: they exercise the schemas, not only the decoder.
    for (const name of ['manifest: mutated, checksum recomputed', 'index: mutated', 'config: mutated', 'lock: mutated', 'config: chunker/pack bounds']) {
      expect(OUTCOMES[name]?.ok, name).toBeGreaterThan(0);
      expect(OUTCOMES[name]?.refused, name).toBeGreaterThan(0);
    }
    expect(generated).toBeGreaterThan(4000);
  });
});
