import { createHash } from 'node:crypto';
import { compress as zstdCompress } from 'zstd-napi';
import zstdBinding from 'zstd-napi/binding.js';
import type { z } from 'zod';
import { CorruptionError } from '../core/errors.js';

export const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

/**
 * Largest decoded metadata document (manifest, index, lock, config) a reader accepts: V8 cannot
 * hold a longer string, so nothing larger could be parsed anyway; the bound makes a hostile
 * zstd frame (a few KB claiming gigabytes) fail before it allocates more than this.
 */
export const MAX_METADATA_BYTES = 512 * 1024 * 1024 - 64;
/** Deepest nesting of arrays and objects accepted in a stored document (cairn writes at most ~6). */
export const MAX_METADATA_DEPTH = 64;

/**
 * Manifests, indexes and locks: JSON, zstd-compressed with the frame's content checksum
 * (XXH64), so that a flipped bit that still decodes to valid JSON — a changed number in a
 * manifest — is detected on read. Readers also accept plain JSON and frames written before
 * the checksum (no flag).
 */
export function encodeMetadata(doc: unknown): Buffer {
  return zstdCompress(Buffer.from(JSON.stringify(doc), 'utf8'), { compressionLevel: 3, checksumFlag: true });
}

/**
 * Decompresses zstd frames into at most `max` bytes: output is produced in bounded steps, so a
 * frame that claims (or inflates to) more fails once it passes the bound, never allocates first.
 */
export function boundedZstdDecompress(src: Buffer, max: number): Buffer {
  const dctx = new zstdBinding.DCtx();
  const parts: Buffer[] = [];
  let total = 0;
  let input = src;
  let lastReturn = 0;
  const step = 1 << 17;
  while (input.length > 0 || lastReturn > 0) {
    const out = Buffer.allocUnsafe(step);
    const [ret, produced, consumed] = dctx.decompressStream(out, input);
    lastReturn = ret;
    input = input.subarray(consumed);
    if (produced > 0) {
      total += produced;
      if (total > max) throw new Error(`it decompresses to more than ${max} bytes`);
      parts.push(out.subarray(0, produced));
    }
    if (produced === 0 && consumed === 0) {
      if (ret !== 0) throw new Error('the zstd frame is truncated');
      break;
    }
  }
  return Buffer.concat(parts, total);
}

/**
 * Structural limits every stored JSON document must respect before it is believed: nesting
 * depth (a deep document would overflow the stack of JSON.stringify when cairn writes it again)
 * and no `__proto__` key (cairn never writes one; a JavaScript object silently turns it into a
 * prototype). Iterative, so the check itself cannot overflow.
 */
export function checkJsonStructure(json: unknown): string | undefined {
  const stack: { v: unknown; d: number }[] = [{ v: json, d: 0 }];
  while (stack.length > 0) {
    const { v, d } = stack.pop() as { v: unknown; d: number };
    if (v === null || typeof v !== 'object') continue;
    if (d >= MAX_METADATA_DEPTH) return `it is nested deeper than ${MAX_METADATA_DEPTH} levels`;
    if (Array.isArray(v)) {
      for (const item of v) if (item !== null && typeof item === 'object') stack.push({ v: item, d: d + 1 });
      continue;
    }
    for (const key of Object.keys(v)) {
      if (key === '__proto__') return 'it has a "__proto__" key';
      const item = (v as Record<string, unknown>)[key];
      if (item !== null && typeof item === 'object') stack.push({ v: item, d: d + 1 });
    }
  }
  return undefined;
}

/** Smaller bound for small documents (config, locks): a few KB in practice. */
export const MAX_SMALL_DOCUMENT_BYTES = 1024 * 1024;

/**
 * Decodes bytes to parsed JSON (zstd or plain) of at most `maxBytes` decoded bytes, depth- and
 * key-checked; CorruptionError naming `what`.
 */
export function decodeJson(bytes: Buffer, what: string, objects: string[] = [what], maxBytes = MAX_METADATA_BYTES): unknown {
  let json: unknown;
  try {
    if (bytes.length > maxBytes) throw new Error(`it is larger than ${maxBytes} bytes`);
    const text = bytes.subarray(0, 4).equals(ZSTD_MAGIC) ? boundedZstdDecompress(bytes, maxBytes).toString('utf8') : bytes.toString('utf8');
    json = JSON.parse(text);
  } catch (err) {
    throw new CorruptionError(`${what} cannot be read: ${shortMessage(err)}.`, { objects });
  }
  const bad = checkJsonStructure(json);
  if (bad) throw new CorruptionError(`${what} is not valid: ${bad}.`, { objects });
  return json;
}

/** Validates parsed JSON against a schema; CorruptionError naming the document and the field. */
export function parseDocument<S extends z.ZodType>(json: unknown, schema: S, what: string, objects: string[] = [what]): z.infer<S> {
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    const where = first?.path.map((p) => (typeof p === 'symbol' ? '?' : String(p).slice(0, 40))).join('.') || '(root)';
    throw new CorruptionError(`${what} is not valid: ${where}: ${(first?.message ?? 'invalid').slice(0, 200)}.`, { objects });
  }
  return parsed.data;
}

export function decodeMetadata<S extends z.ZodType>(bytes: Buffer, schema: S, what: string, objects: string[] = [what], maxBytes = MAX_METADATA_BYTES): z.infer<S> {
  return parseDocument(decodeJson(bytes, what, objects, maxBytes), schema, what, objects);
}

function shortMessage(err: unknown): string {
  const m = err instanceof Error ? err.message : String(err);
  // JSON.parse quotes the input around the error position, and what was read may be any file a
  // symbolic link in the repository points at (/etc/shadow): say where, never what.
  if (err instanceof SyntaxError) {
    const at = /at position (\d+)/.exec(m)?.[1];
    return `it is not valid JSON${at !== undefined ? ` (at byte ${at})` : /end of JSON|Unexpected end/i.test(m) ? ' (it ends too early)' : ''}`;
  }
  return m.length > 160 ? `${m.slice(0, 160)}…` : m;
}

// ---------------------------------------------------------------------------------------------
// Manifest (and config) checksums

/** The field of a stored manifest (or format-2 config) that carries its checksum: `sha256:<64 hex>`. */
export const CHECKSUM_FIELD = 'checksum';
const CHECKSUM_PATTERN = /^sha256:[0-9a-f]{64}$/;

/**
 * Canonical JSON: object keys sorted (by UTF-16 code units), no whitespace, numbers and strings
 * as JSON.stringify writes them. JSON.parse(JSON.stringify(x)) has the same canonical form as x
 * for every JSON value, so a reader recomputes exactly what the writer hashed. Callers check the
 * depth first (checkJsonStructure).
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    const s = JSON.stringify(value);
    return s === undefined ? 'null' : s;
  }
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v)).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
}

/** `sha256:<hex>` over the canonical JSON of the document without its checksum field. */
export function manifestChecksum(doc: Record<string, unknown>): string {
  const { [CHECKSUM_FIELD]: _omit, ...rest } = doc;
  return `sha256:${createHash('sha256').update(canonicalJson(rest), 'utf8').digest('hex')}`;
}

/** The manifest as stored: its fields plus `checksum`. */
export function encodeManifest(manifest: object): Buffer {
  const plain = JSON.parse(JSON.stringify(manifest)) as Record<string, unknown>;
  delete plain[CHECKSUM_FIELD];
  return encodeMetadata({ ...plain, [CHECKSUM_FIELD]: manifestChecksum(plain) });
}

/**
 * Checks a parsed manifest's (or config's) checksum. Returns "checksummed" or "unchecksummed"
 * (written before checksums, format 1); throws CorruptionError when it has one that does not
 * match, or none where `required`.
 */
export function checkManifestChecksum(json: unknown, what: string, objects: string[], required: boolean): 'checksummed' | 'unchecksummed' {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) return 'unchecksummed'; // the schema rejects it
  const doc = json as Record<string, unknown>;
  const claimed = doc[CHECKSUM_FIELD];
  if (claimed === undefined) {
    if (required) {
      throw new CorruptionError(
        `${what} carries no checksum, which repository format 2 requires: it was altered (its checksum removed) or written by a foreign tool.`,
        { objects },
      );
    }
    return 'unchecksummed';
  }
  if (typeof claimed !== 'string' || !CHECKSUM_PATTERN.test(claimed)) {
    throw new CorruptionError(`${what} is not valid: checksum: expected "sha256:<64 hex>".`, { objects });
  }
  if (manifestChecksum(doc) !== claimed) {
    throw new CorruptionError(`${what} does not match its checksum: its content was altered or damaged after it was written.`, { objects });
  }
  return 'checksummed';
}
