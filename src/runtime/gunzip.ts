/**
 * Streaming gunzip: `node:zlib` where present (it reads every member of a
 * multi-member gzip and honours backpressure through `Duplex.toWeb`),
 * `DecompressionStream("gzip")` elsewhere.
 *
 * @module
 */

import { importNode } from "./_import.ts";

/** Which implementation `createGunzip` uses. */
export type GunzipBackend = "node" | "web";

// zlib's output chunk: large enough to keep per-chunk costs low, small enough
// that a highly compressible layer never bursts memory.
const CHUNK_SIZE = 64 * 1024;

/**
 * A transform from gzip bytes to the bytes they hold.
 *
 * @param backend force one implementation (tests use it for the fallback)
 * @example
 * ```ts
 * import { createGunzip } from "./gunzip.ts";
 * declare const gz: ReadableStream<Uint8Array>;
 * const plain = gz.pipeThrough(await createGunzip());
 * ```
 */
export async function createGunzip(
  backend?: GunzipBackend,
): Promise<ReadableWritablePair<Uint8Array, Uint8Array>> {
  if (backend !== "web") {
    const zlib = await importNode<typeof import("node:zlib")>("node:zlib");
    const stream = await importNode<typeof import("node:stream")>(
      "node:stream",
    );
    if (zlib && stream) {
      return stream.Duplex.toWeb(
        zlib.createGunzip({ chunkSize: CHUNK_SIZE }),
      ) as unknown as ReadableWritablePair<Uint8Array, Uint8Array>;
    }
    if (backend === "node") {
      throw new Error("Cannot gunzip: node:zlib is missing");
    }
  }
  return new DecompressionStream("gzip") as unknown as ReadableWritablePair<
    Uint8Array,
    Uint8Array
  >;
}
