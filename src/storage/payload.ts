/**
 * Helpers over a put's Payload (types.ts): one byte array or parts stored as their concatenation.
 * None of them copies the parts except payloadBytes, which backends use only for small objects
 * or where an API takes nothing but one buffer.
 */
import { Readable } from 'node:stream';
import type { Payload } from './types.js';

/** The parts of a payload, in order (a single array is one part). */
export function payloadParts(data: Payload): readonly Uint8Array[] {
  return data instanceof Uint8Array ? [data] : data;
}

/** Total length in bytes. */
export function payloadLength(data: Payload): number {
  if (data instanceof Uint8Array) return data.byteLength;
  let n = 0;
  for (const part of data) n += part.byteLength;
  return n;
}

/** A Buffer view of a byte array (no copy). */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The payload as one Buffer: a view when it is one array, a copy of the parts otherwise. */
export function payloadBytes(data: Payload): Buffer {
  if (data instanceof Uint8Array) return asBuffer(data);
  if (data.length === 1) return asBuffer(data[0] as Uint8Array);
  return Buffer.concat(data as Uint8Array[]);
}

/**
 * Views of bytes [start, start + length) of the payload, in order, without copying: what one
 * upload request (a whole object, an S3 part, an Azure block) sends.
 */
export function* payloadSlices(data: Payload, start = 0, length = payloadLength(data) - start): Generator<Buffer> {
  let skip = start;
  let left = length;
  for (const part of payloadParts(data)) {
    if (left <= 0) return;
    if (skip >= part.byteLength) {
      skip -= part.byteLength;
      continue;
    }
    const take = Math.min(part.byteLength - skip, left);
    yield asBuffer(part).subarray(skip, skip + take);
    skip = 0;
    left -= take;
  }
}

/**
 * A new readable stream of bytes [start, start + length) of the payload (default: all of it),
 * made of views of the parts. Each attempt of an upload needs a new one: a stream is read once.
 */
export function payloadStream(data: Payload, start = 0, length = payloadLength(data) - start): Readable {
  return Readable.from(payloadSlices(data, start, length), { objectMode: false });
}

/** Whether `bytes` holds exactly the payload's bytes. */
export function payloadEquals(data: Payload, bytes: Uint8Array): boolean {
  if (payloadLength(data) !== bytes.byteLength) return false;
  const whole = asBuffer(bytes);
  let at = 0;
  for (const part of payloadParts(data)) {
    if (!asBuffer(part).equals(whole.subarray(at, at + part.byteLength))) return false;
    at += part.byteLength;
  }
  return true;
}
