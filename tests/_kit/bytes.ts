/**
 * Bytes for the tests: UTF-8 and JSON bytes of values, a stream read to its
 * end (whole or chunk by chunk), chunks joined, and byte comparisons that
 * name where two arrays differ.
 *
 * @module
 */

import assert from "node:assert/strict";

const encoder = new TextEncoder();

/** UTF-8 bytes of a string. */
export const text = (s: string): Uint8Array => encoder.encode(s);

/** JSON bytes of a value. */
export function json(value: unknown): Uint8Array {
  return text(JSON.stringify(value));
}

/** All bytes of a stream. */
export async function readAll(
  stream: ReadableStream<Uint8Array>,
): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Reads a stream to its end, pushing every chunk into `chunks`. */
export async function collect(
  stream: ReadableStream<Uint8Array>,
  chunks: Uint8Array[],
): Promise<void> {
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    chunks.push(value);
  }
}

/** The chunks as one byte array. */
export { concatBytes as concat } from "../../src/util/streams.ts";

/** Asserts equal bytes, naming the first offset where they differ. */
export function assertSameBytes(
  actual: Uint8Array,
  expected: Uint8Array,
): void {
  const limit = Math.min(actual.length, expected.length);
  let at = 0;
  while (at < limit && actual[at] === expected[at]) at++;
  assert.ok(
    at === limit && actual.length === expected.length,
    `bytes differ at offset ${at} (lengths ${actual.length} vs ${expected.length})`,
  );
}

/** Asserts two byte arrays are equal, naming what differs. */
export function sameBytes(
  actual: Uint8Array,
  expected: Uint8Array,
  what: string,
): void {
  assert.equal(actual.byteLength, expected.byteLength, `${what}: length`);
  assert.ok(
    Buffer.from(actual).equals(Buffer.from(expected)),
    `${what}: bytes differ`,
  );
}
