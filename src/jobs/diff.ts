/**
 * `cairn diff`: what changed between two backups, from their manifests alone (nothing is read
 * from packs). A collection is matched across the backups by the engine's name rules; it is
 * "changed" when its content differs (its chunk list is not the same: content-defined chunks
 * make equal data give equal chunks), its definition's shape differs (EngineDriver.shapeOf:
 * columns and DDL, not OIDs or sequence values) or its kind does. Row deltas are count(b) −
 * count(a), not a count of changed rows.
 */
import { UsageError } from '../core/errors.js';
import type { BackupManifest, CollectionEntry } from '../core/schemas.js';
import { driverForKind, namingFor } from '../sources/index.js';
import type { Repository } from '../repo/repository.js';

export type DiffStatus = 'added' | 'removed' | 'changed' | 'unchanged';

/** One side's numbers; null when the collection is not in that backup. */
export interface DiffSide {
  rows: number | null;
  /** Logical bytes of its data stream. */
  bytes: number | null;
}

export interface CollectionDiff {
  /** The name in b (in a for a removed collection). */
  name: string;
  kind: string;
  status: DiffStatus;
  a: DiffSide;
  b: DiffSide;
  /** count(b) − count(a), a missing side counting 0. */
  rowsDelta: number;
  bytesDelta: number;
  /** Same chunk list (byte-identical data); null when one side is missing. */
  sameContent: boolean | null;
  /** Definition shape (columns, DDL) or kind differs; null when one side is missing. */
  definitionChanged: boolean | null;
  /** Whether the collection holds rows (tables; not views, sequences, database-wide archives). */
  hasRows: boolean;
  /** false for database-wide collections (a schema archive, roles) that --include never names. */
  selectable: boolean;
}

export interface BackupRef {
  id: string;
  createdAt: string;
  source: string;
  kind: string;
}

export interface BackupDiff {
  a: BackupRef;
  b: BackupRef;
  collections: CollectionDiff[];
  summary: Record<DiffStatus, number> & { rowsDelta: number; bytesDelta: number };
}

/**
 * Compares backups `aId` and `bId` of one repository. Throws NotFoundError for an unknown id,
 * UsageError when they are backups of different engines (their names and definitions do not
 * compare).
 */
export async function diffBackups(repo: Repository, aId: string, bId: string, signal?: AbortSignal): Promise<BackupDiff> {
  const [a, b] = await Promise.all([repo.readManifest(aId, signal), repo.readManifest(bId, signal)]);
  return diffManifests(a, b);
}

/** diffBackups on manifests already read. */
export function diffManifests(a: BackupManifest, b: BackupManifest): BackupDiff {
  if (a.source.kind !== b.source.kind) {
    throw new UsageError(`Backup ${a.id} is a ${a.source.kind} backup and ${b.id} a ${b.source.kind} backup: diff compares two backups of one engine. Pick two backups of the same source (cairn backup list).`);
  }
  const rules = namingFor(b.source.kind);
  const shapeOf = driverForKind(b.source.kind)?.shapeOf ?? ((e: CollectionEntry) => e.definition);
  const inA = new Map(a.collections.map((c) => [rules.key(c.name), c]));
  const seen = new Set<string>();
  const out: CollectionDiff[] = [];
  for (const cb of b.collections) {
    const key = rules.key(cb.name);
    seen.add(key);
    const ca = inA.get(key);
    out.push(compare(ca, cb, shapeOf));
  }
  for (const ca of a.collections) if (!seen.has(rules.key(ca.name))) out.push(compare(ca, undefined, shapeOf));
  const summary = { added: 0, removed: 0, changed: 0, unchanged: 0, rowsDelta: 0, bytesDelta: 0 };
  for (const d of out) {
    summary[d.status]++;
    summary.rowsDelta += d.rowsDelta;
    summary.bytesDelta += d.bytesDelta;
  }
  return { a: ref(a), b: ref(b), collections: out, summary };
}

function ref(m: BackupManifest): BackupRef {
  return { id: m.id, createdAt: m.createdAt, source: m.source.location, kind: m.source.kind };
}

function compare(a: CollectionEntry | undefined, b: CollectionEntry | undefined, shapeOf: (e: CollectionEntry) => unknown): CollectionDiff {
  const either = (b ?? a) as CollectionEntry;
  // As backup show counts rows: tables' data, not a database-wide archive's bytes.
  const hasRows = either.dataFormat !== undefined && either.selectable !== false;
  const side = (e: CollectionEntry | undefined): DiffSide => (e ? { rows: e.rowCount, bytes: e.logicalBytes } : { rows: null, bytes: null });
  let status: DiffStatus;
  let sameContent: boolean | null = null;
  let definitionChanged: boolean | null = null;
  if (!a) status = 'added';
  else if (!b) status = 'removed';
  else {
    sameContent = a.chunks.length === b.chunks.length && a.chunks.every((c, i) => c === b.chunks[i]);
    definitionChanged = a.kind !== b.kind || canonical(shapeOf(a)) !== canonical(shapeOf(b));
    status = sameContent && !definitionChanged ? 'unchanged' : 'changed';
  }
  return {
    name: either.name,
    kind: either.kind,
    status,
    a: side(a),
    b: side(b),
    rowsDelta: (b?.rowCount ?? 0) - (a?.rowCount ?? 0),
    bytesDelta: (b?.logicalBytes ?? 0) - (a?.logicalBytes ?? 0),
    sameContent,
    definitionChanged,
    hasRows,
    selectable: either.selectable !== false,
  };
}

/** JSON with object keys sorted, so that two equal definitions give one text. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) : v,
  );
}
