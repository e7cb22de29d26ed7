/**
 * sha256 digests computed with `node:crypto`, never with our own code, so a
 * test's expectation does not share a bug with what it checks.
 *
 * @module
 */

import { createHash } from "node:crypto";

/** Lowercase hex sha256 of bytes or of a string's UTF-8. */
export function sha256Hex(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

/** `sha256:<hex>` of bytes or of a string's UTF-8. */
export function digestOf(data: Uint8Array | string): string {
  return `sha256:${sha256Hex(data)}`;
}

/** The hex part of a `sha256:` digest. */
export function hexPart(digest: string): string {
  return digest.slice(digest.lastIndexOf(":") + 1);
}

/** `sha256:<hex>` and byte length of chunks, streamed, nothing kept. */
export async function digestChunks(
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
): Promise<{ digest: string; size: number }> {
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of chunks) {
    hash.update(chunk);
    size += chunk.byteLength;
  }
  return { digest: `sha256:${hash.digest("hex")}`, size };
}
