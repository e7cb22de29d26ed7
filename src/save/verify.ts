/**
 * The verifying stage: a pass-through that counts and hashes the bytes it
 * carries and errors the stream, before the data ends, when they differ from
 * what was promised.
 *
 * @module
 */

import { DockerSaveError, type DockerSaveErrorCode } from "../model/errors.ts";
import { createSha256, type Hasher } from "../runtime/hash.ts";

/** What the bytes through a `VerifyStream` must be. */
export interface VerifyExpectation {
  /** `sha256:<hex>` the bytes must hash to; omit to skip hashing. */
  digest?: string;
  /** Exact byte count; omit to only count. */
  size?: number;
  /** Error code for a digest mismatch. */
  code: Extract<DockerSaveErrorCode, "DIGEST_MISMATCH" | "DIFF_ID_MISMATCH">;
  /**
   * Error code for a size mismatch.
   * @default {"SIZE_MISMATCH"}
   */
  sizeCode?: Extract<
    DockerSaveErrorCode,
    "SIZE_MISMATCH" | "UNCOMPRESSED_SIZE_MISMATCH"
  >;
  /** How the error message names the bytes, e.g. `layer sha256:…`. */
  label: string;
}

/**
 * Counts and hashes bytes in flight. Errors with `SIZE_MISMATCH` as soon as
 * more bytes arrive than expected, and with `SIZE_MISMATCH` or the given
 * digest code at the end, before the last chunk is passed on. `bytes` holds
 * the count so far.
 *
 * @example
 * ```ts
 * import { VerifyStream } from "./verify.ts";
 * declare const blob: ReadableStream<Uint8Array>;
 * const checked = blob.pipeThrough(
 *   new VerifyStream({ digest: "sha256:…", size: 12, code: "DIGEST_MISMATCH", label: "layer" }),
 * );
 * ```
 */
export class VerifyStream extends TransformStream<Uint8Array, Uint8Array> {
  /** Bytes seen so far. */
  bytes = 0;

  /** @param expect what the bytes must be */
  constructor(expect: VerifyExpectation) {
    let hasher: Hasher | undefined;
    // The last chunk is held back until the bytes are verified, so a consumer
    // never receives a complete body that failed its check.
    let held: Uint8Array | undefined;
    super({
      start: async () => {
        if (expect.digest) hasher = await createSha256();
      },
      transform: (chunk, controller) => {
        // An empty chunk must not take the held-back place of real bytes.
        if (chunk.byteLength === 0) return;
        this.bytes += chunk.byteLength;
        if (expect.size !== undefined && this.bytes > expect.size) {
          throw sizeError(expect, this.bytes, "more than");
        }
        const hashed = hasher?.update(chunk);
        if (held) controller.enqueue(held);
        held = chunk;
        // A hash that runs behind is awaited: back-pressure, and the chunk
        // is read before anyone frees it.
        return hashed;
      },
      flush: async (controller) => {
        if (expect.size !== undefined && this.bytes !== expect.size) {
          throw sizeError(expect, this.bytes, "");
        }
        if (hasher && expect.digest) {
          const actual = `sha256:${await hasher.hexDigest()}`;
          if (actual !== expect.digest) {
            throw new DockerSaveError(
              expect.code,
              `Cannot verify ${expect.label}: its bytes hash to ${actual}, expected ${expect.digest}`,
            );
          }
        }
        if (held) controller.enqueue(held);
      },
    });
  }
}

function sizeError(
  expect: VerifyExpectation,
  bytes: number,
  more: string,
): DockerSaveError {
  return new DockerSaveError(
    expect.sizeCode ?? "SIZE_MISMATCH",
    `Cannot verify ${expect.label}: it has ${
      more ? `${more} ` : ""
    }${bytes} bytes, expected ${expect.size}`,
  );
}
