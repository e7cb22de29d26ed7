/**
 * Stage 4 of `save()`: turn planned layer members into tar entries. A layer's
 * uncompressed size must be in its tar header, before its body, so it comes
 * from the cheapest place that knows it: the descriptor (plain tar blobs), the
 * source (`Image.uncompressedSize`), or a first streaming pass that counts the
 * bytes without keeping them. The body is opened only when the tar writer
 * reaches it, and is verified while it streams.
 *
 * @module
 */

import { DockerSaveError } from "../errors.ts";
import { type Descriptor, type Image, layerCompression } from "../image.ts";
import { createGunzip } from "../runtime/gunzip.ts";
import { isLayerEntry, type LayerEntry, type PlannedEntry } from "./plan.ts";
import type { TarEntry } from "./tar_writer.ts";
import { VerifyStream } from "./verify.ts";

/** Options for layer members. */
export interface LayerOptions {
  /**
   * Check each blob's sha256 and size against its descriptor and each
   * uncompressed layer's sha256 against its diff_id.
   * @default {true}
   */
  verify?: boolean;
}

/**
 * Opens a layer's uncompressed bytes: the blob, checked against its
 * descriptor, gunzipped when compressed, checked against its diff_id (and
 * `size`, when given). Errors are `DockerSaveError`s naming the layer.
 *
 * @example
 * ```ts
 * import { openLayerContent } from "./layers.ts";
 * import type { Image } from "../image.ts";
 * declare const image: Image;
 * const layer = (await image.manifest()).layers[0];
 * const tar = await openLayerContent(image, layer, "sha256:…");
 * ```
 */
export async function openLayerContent(
  image: Image,
  layer: Descriptor,
  diffId: string,
  size?: number,
  options: LayerOptions = {},
): Promise<ReadableStream<Uint8Array>> {
  const verify = options.verify ?? true;
  const compression = layerCompression(layer.mediaType);
  if (compression !== "none" && compression !== "gzip") {
    throw new DockerSaveError(
      "UNSUPPORTED_MEDIA_TYPE",
      `Cannot uncompress layer ${layer.digest}: media type "${layer.mediaType}" is not supported`,
    );
  }
  const blob = await image.openLayer(layer);
  let stream = blob.pipeThrough(
    new VerifyStream({
      digest: verify ? layer.digest : undefined,
      size: layer.size,
      code: "DIGEST_MISMATCH",
      label: `layer ${layer.digest}`,
    }),
  );
  if (compression === "gzip") {
    stream = withLayerErrors(stream.pipeThrough(await createGunzip()), layer);
  }
  return stream.pipeThrough(
    new VerifyStream({
      digest: verify ? diffId : undefined,
      size,
      code: "DIFF_ID_MISMATCH",
      label: `uncompressed layer ${layer.digest} (diff_id ${diffId})`,
    }),
  );
}

/**
 * The byte length of a layer's uncompressed content, from the cheapest place
 * that knows it; the last resort reads the blob once and counts.
 *
 * @example
 * ```ts
 * import { uncompressedSize } from "./layers.ts";
 * import type { Image } from "../image.ts";
 * declare const image: Image;
 * const layer = (await image.manifest()).layers[0];
 * await uncompressedSize(image, layer, "sha256:…");
 * ```
 */
export async function uncompressedSize(
  image: Image,
  layer: Descriptor,
  diffId: string,
  options: LayerOptions = {},
): Promise<number> {
  if (layerCompression(layer.mediaType) === "none") return layer.size;
  const known = await image.uncompressedSize?.(layer);
  if (known !== undefined) return known;
  const reader =
    (await openLayerContent(image, layer, diffId, undefined, options))
      .getReader();
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return size;
    size += value.byteLength;
  }
}

/**
 * Stage 4 as a Web Streams transform: planned members in, tar entries out.
 * Each layer is sized only when the tar writer asks for it (the readable side
 * holds nothing), and each size is learnt once per blob and diff_id.
 *
 * @example
 * ```ts
 * import { LayerStream } from "./layers.ts";
 * import type { PlannedEntry } from "./plan.ts";
 * declare const planned: ReadableStream<PlannedEntry>;
 * const entries = planned.pipeThrough(new LayerStream());
 * ```
 */
export class LayerStream extends TransformStream<PlannedEntry, TarEntry> {
  /** @param options verification options */
  constructor(options: LayerOptions = {}) {
    const sizes = new Map<string, number>();
    super(
      {
        transform: async (entry, controller) => {
          if (!isLayerEntry(entry)) return controller.enqueue(entry);
          const key = `${entry.layer.digest} ${entry.diffId}`;
          let size = sizes.get(key);
          if (size === undefined) {
            size = await uncompressedSize(
              entry.image,
              entry.layer,
              entry.diffId,
              options,
            );
            sizes.set(key, size);
          }
          controller.enqueue(layerTarEntry(entry, size, options));
        },
      },
      undefined,
      { highWaterMark: 0 },
    );
  }
}

function layerTarEntry(
  entry: LayerEntry,
  size: number,
  options: LayerOptions,
): TarEntry {
  return {
    name: entry.name,
    size,
    body: () =>
      openLayerContent(entry.image, entry.layer, entry.diffId, size, options),
  };
}

// zlib's errors name no layer; say which one failed.
function withLayerErrors(
  stream: ReadableStream<Uint8Array>,
  layer: Descriptor,
): ReadableStream<Uint8Array> {
  const reader = stream.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (error) {
        controller.error(
          error instanceof DockerSaveError ? error : new DockerSaveError(
            "BAD_LAYER",
            `Cannot uncompress layer ${layer.digest}: ${
              (error as Error).message
            }`,
            { cause: error },
          ),
        );
      }
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}
