/**
 * Whole reads of the small things a source parses (indexes, manifests,
 * configs, an archive's JSON members), bounded before they are read and
 * blobs checked against their descriptors: same size, same sha256.
 *
 * The cap follows containers/image (skopeo): `iolimits.MaxManifestBodySize`
 * and `MaxConfigBodySize` are both 4 MiB, the limit distribution's registry
 * puts on manifests. containerd allows 20 MiB; nothing real comes near 4.
 *
 * @module
 */

import { concatBytes } from "../util/streams.ts";
import { sha256Hex } from "../model/digest.ts";
import { DockerSaveError, type DockerSaveErrorCode } from "../model/errors.ts";
import type { Descriptor } from "../model/image.ts";

/**
 * The most bytes any JSON document (index, manifest, config, `manifest.json`,
 * `repositories`, `<id>/json`) is read whole with: 4 MiB, as containers/image.
 *
 * @example
 * ```ts
 * import { MAX_JSON_BYTES } from "./bounded_read.ts";
 * MAX_JSON_BYTES; // 4194304
 * ```
 */
export const MAX_JSON_BYTES = 4 * 1024 * 1024;

/**
 * A stream's bytes, whole, when it has at most `limit` of them; `undefined`
 * (the stream cancelled after reading at most one chunk past `limit`)
 * otherwise.
 *
 * @example
 * ```ts
 * import { readAtMost } from "./bounded_read.ts";
 * await readAtMost(new Blob(["{}"]).stream(), 1024); // Uint8Array [123, 125]
 * await readAtMost(new Blob(["{}"]).stream(), 1); // undefined
 * ```
 */
export async function readAtMost(
  stream: ReadableStream<Uint8Array>,
  limit: number,
): Promise<Uint8Array | undefined> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return concatBytes(chunks);
    length += value.byteLength;
    if (length > limit) {
      await reader.cancel().catch(() => {});
      return undefined;
    }
    chunks.push(value);
  }
}

/** How `readVerifiedBlob` bounds and names what it reads. */
export interface ReadVerifiedBlobOptions {
  /**
   * The code for a descriptor over `MAX_JSON_BYTES`.
   * @default {"BAD_MANIFEST"}
   */
  code?: DockerSaveErrorCode;
}

/**
 * A blob read whole and checked against its descriptor: a size over
 * `MAX_JSON_BYTES` is refused before anything is read, a stream longer or shorter than
 * the size gives `SIZE_MISMATCH` (reading at most one chunk past it), other
 * bytes `DIGEST_MISMATCH`. The digest must be sha256 (see `blobPath`).
 *
 * @example
 * ```ts
 * import { readVerifiedBlob } from "./bounded_read.ts";
 * import type { Descriptor } from "../model/image.ts";
 * declare const descriptor: Descriptor;
 * declare const open: () => Promise<ReadableStream<Uint8Array>>;
 * const bytes = await readVerifiedBlob(open, descriptor, `manifest ${descriptor.digest}`);
 * ```
 */
export async function readVerifiedBlob(
  open: () => Promise<ReadableStream<Uint8Array>>,
  descriptor: Descriptor,
  what: string,
  options: ReadVerifiedBlobOptions = {},
): Promise<Uint8Array> {
  if (descriptor.size > MAX_JSON_BYTES) {
    throw new DockerSaveError(
      options.code ?? "BAD_MANIFEST",
      `Cannot read ${what}: its descriptor says ${descriptor.size} bytes, more than the ${MAX_JSON_BYTES} allowed`,
    );
  }
  const bytes = await readAtMost(await open(), descriptor.size);
  if (bytes === undefined) {
    throw new DockerSaveError(
      "SIZE_MISMATCH",
      `Cannot read ${what}: it has more than ${descriptor.size} bytes`,
    );
  }
  if (bytes.byteLength !== descriptor.size) {
    throw new DockerSaveError(
      "SIZE_MISMATCH",
      `Cannot read ${what}: it has ${bytes.byteLength} bytes, expected ${descriptor.size}`,
    );
  }
  const digest = `sha256:${await sha256Hex(bytes)}`;
  if (digest !== descriptor.digest) {
    throw new DockerSaveError(
      "DIGEST_MISMATCH",
      `Cannot verify ${what}: its bytes hash to ${digest}`,
    );
  }
  return bytes;
}
