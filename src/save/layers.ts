/**
 * Stage 4 of `save()`: turn planned layer members into tar entries.
 *
 * In `"uncompressed"` mode (the reference's) a layer's uncompressed size must
 * be in its tar header, before its body, so it comes from the cheapest place
 * that knows it: the descriptor (plain tar blobs), the source
 * (`Image.uncompressedSize`), or a first streaming pass that gunzips and
 * counts without keeping anything. In `"compressed"` mode the blob is written
 * as stored, its size taken from the descriptor, in one pass.
 *
 * Every byte is hashed once: the blob against its digest (in the counting
 * pass when there is one, else while writing), the written layer against its
 * diff_id while writing. Bodies are opened only when the tar writer reaches
 * them.
 *
 * @module
 */

import { DockerSaveError } from "../errors.ts";
import { type Descriptor, type Image, layerCompression } from "../image.ts";
import { createDecompressor } from "../runtime/decompress.ts";
import { mapErrors } from "../_streams.ts";
import {
  isDeferredEntry,
  isLayerEntry,
  type LayerEntry,
  LayerSizes,
  type PlannedEntry,
} from "./entries.ts";
import type { TarEntry } from "./tar_writer.ts";
import { VerifyStream } from "./verify.ts";

/** How layers are stored in the tarball. */
export type LayerMode = "uncompressed" | "compressed";

/** Options for layer members. */
export interface LayerOptions {
  /**
   * Check each blob's sha256 and size against its descriptor and each
   * uncompressed layer's sha256 against its diff_id.
   * @default {true}
   */
  verify?: boolean;
  /**
   * `"uncompressed"`: `layer.tar` holds the tar itself, as the reference
   * writes it. `"compressed"`: `layer.tar` holds the blob as stored (gzip or
   * zstd), one pass, no decompression; docker, podman and skopeo decompress
   * it on load.
   * @default {"uncompressed"}
   */
  layers?: LayerMode;
}

/** What `openLayerContent` checks. */
export interface LayerChecks {
  /** Hash the blob against its digest. */
  blobDigest: boolean;
  /** Hash the uncompressed bytes against the diff_id. */
  diffId: boolean;
  /** The exact uncompressed size, when known. */
  size?: number;
}

/**
 * Opens a layer's uncompressed bytes: the blob, checked against its
 * descriptor (size always, digest when asked), gunzipped when compressed,
 * checked against its diff_id and `size` when asked. Errors are
 * `DockerSaveError`s naming the layer.
 *
 * @example
 * ```ts
 * import { openLayerContent } from "./layers.ts";
 * import type { Image } from "../image.ts";
 * declare const image: Image;
 * const layer = (await image.manifest()).layers[0];
 * const tar = await openLayerContent(image, layer, "sha256:…", {
 *   blobDigest: true,
 *   diffId: true,
 * });
 * ```
 */
export async function openLayerContent(
  image: Image,
  layer: Descriptor,
  diffId: string,
  checks: LayerChecks,
): Promise<ReadableStream<Uint8Array>> {
  const direct = await image.openUncompressedLayer?.(layer);
  if (direct) return verifyContent(direct, layer, diffId, checks);
  const compression = layerCompression(layer.mediaType);
  let stream = await openBlob(image, layer, checks.blobDigest);
  if (compression && compression !== "none") {
    // zlib's errors name no layer; say which one failed.
    stream = mapErrors(
      stream.pipeThrough(await createDecompressor(compression)),
      (error) =>
        error instanceof DockerSaveError ? error : new DockerSaveError(
          "BAD_LAYER",
          `Cannot uncompress layer ${layer.digest}: ${
            (error as Error).message
          }`,
          { cause: error },
        ),
    );
  }
  return verifyContent(stream, layer, diffId, checks);
}

function verifyContent(
  stream: ReadableStream<Uint8Array>,
  layer: Descriptor,
  diffId: string,
  checks: LayerChecks,
): ReadableStream<Uint8Array> {
  if (!checks.diffId && checks.size === undefined) return stream;
  return stream.pipeThrough(
    new VerifyStream({
      digest: checks.diffId ? diffId : undefined,
      size: checks.size,
      code: "DIFF_ID_MISMATCH",
      label: `uncompressed layer ${layer.digest} (diff_id ${diffId})`,
    }),
  );
}

/**
 * Opens a blob as stored, checked against its descriptor's size, and its
 * digest when `verifyDigest`.
 *
 * @example
 * ```ts
 * import { openBlob } from "./layers.ts";
 * import type { Image } from "../image.ts";
 * declare const image: Image;
 * const blob = await openBlob(image, (await image.manifest()).layers[0], true);
 * ```
 */
export async function openBlob(
  image: Image,
  layer: Descriptor,
  verifyDigest: boolean,
): Promise<ReadableStream<Uint8Array>> {
  return (await image.openLayer(layer)).pipeThrough(
    new VerifyStream({
      digest: verifyDigest ? layer.digest : undefined,
      size: layer.size,
      code: "DIGEST_MISMATCH",
      label: `layer ${layer.digest}`,
    }),
  );
}

/**
 * The byte length of a layer's uncompressed content, from the cheapest place
 * that knows it, and whether the blob's digest was checked on the way. The
 * last resort reads the blob once, checks its digest, and counts.
 *
 * @example
 * ```ts
 * import { uncompressedSize } from "./layers.ts";
 * import type { Image } from "../image.ts";
 * declare const image: Image;
 * const layer = (await image.manifest()).layers[0];
 * const { size } = await uncompressedSize(image, layer, "sha256:…", true);
 * ```
 */
export async function uncompressedSize(
  image: Image,
  layer: Descriptor,
  diffId: string,
  verify: boolean,
  signal?: AbortSignal,
): Promise<{ size: number; blobChecked: boolean }> {
  const known = await image.uncompressedSize?.(layer);
  if (known !== undefined) return { size: known, blobChecked: false };
  if (layerCompression(layer.mediaType) === "none") {
    return { size: layer.size, blobChecked: false };
  }
  const reader = (await openLayerContent(image, layer, diffId, {
    blobDigest: verify,
    diffId: false,
  })).getReader();
  const stop = () => reader.cancel(signal?.reason).catch(() => {});
  if (signal?.aborted) await stop();
  signal?.addEventListener("abort", stop);
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (signal?.aborted) throw signal.reason;
      if (done) return { size, blobChecked: verify };
      size += value.byteLength;
    }
  } finally {
    signal?.removeEventListener("abort", stop);
  }
}

/**
 * Stage 4: resolves planned members into tar entries, one at a time as the
 * tar writer asks. Each layer is sized once per blob and diff_id; `cancel()`
 * stops a counting pass that is under way.
 *
 * @example
 * ```ts
 * import { LayerResolver } from "./layers.ts";
 * import type { PlannedEntry } from "./entries.ts";
 * declare const planned: PlannedEntry[];
 * const resolver = new LayerResolver({ layers: "compressed" });
 * for (const entry of planned) await resolver.resolve(entry);
 * ```
 */
export class LayerResolver {
  #verify: boolean;
  #compressed: boolean;
  #sizes = new LayerSizes();
  // Blobs whose digest a counting pass already checked.
  #checkedBlobs = new Set<string>();
  #abort = new AbortController();

  /** @param options layer mode and verification */
  constructor(options: LayerOptions = {}) {
    this.#verify = options.verify ?? true;
    this.#compressed = (options.layers ?? "uncompressed") === "compressed";
  }

  /** The tar entry for a planned member; `undefined` to skip it. */
  async resolve(entry: PlannedEntry): Promise<TarEntry | undefined> {
    if (isDeferredEntry(entry)) return await entry.build(this.#sizes);
    if (!isLayerEntry(entry)) return entry;
    if (this.#compressed) return compressedEntry(entry, this.#verify);
    const { layer, diffId } = entry;
    let size = this.#sizes.get(layer, diffId);
    if (size === undefined) {
      const learnt = await uncompressedSize(
        entry.image,
        layer,
        diffId,
        this.#verify,
        this.#abort.signal,
      );
      size = learnt.size;
      this.#sizes.set(layer, diffId, size);
      if (learnt.blobChecked) this.#checkedBlobs.add(layer.digest);
    }
    const blobDigest = this.#verify && !this.#checkedBlobs.has(layer.digest);
    return uncompressedEntry(entry, size, blobDigest, this.#verify);
  }

  /** Stops a counting pass under way (the output was cancelled). */
  cancel(reason?: unknown): void {
    this.#abort.abort(reason);
  }
}

function compressedEntry(entry: LayerEntry, verify: boolean): TarEntry {
  return {
    name: entry.name,
    size: entry.layer.size,
    body: () => openBlob(entry.image, entry.layer, verify),
  };
}

function uncompressedEntry(
  entry: LayerEntry,
  size: number,
  blobDigest: boolean,
  diffId: boolean,
): TarEntry {
  return {
    name: entry.name,
    size,
    body: () =>
      openLayerContent(entry.image, entry.layer, entry.diffId, {
        blobDigest,
        diffId,
        size,
      }),
  };
}
