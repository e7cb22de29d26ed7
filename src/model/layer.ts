/**
 * What a source can do with one layer, probed in one place (after
 * go-containerregistry's `partial/with.go`): a source may say more than the
 * `Image` core through one optional method, `Image.layerAccess`, and
 * {@linkcode describeLayer} turns whatever it says into one
 * {@linkcode LayerDescription}, filling the slow fallbacks. Every consumer
 * (the tar writer's stage 4, the sized plan behind `saveResponse`) reads
 * the description, never the source's optional methods.
 *
 * @module
 */

import { skipBytes } from "../util/streams.ts";
import {
  type Descriptor,
  type Image,
  type LayerAccess,
  type LayerCompression,
  layerCompression,
} from "./image.ts";

/**
 * Bytes that can be opened at any offset: `seeks` says whether an offset is
 * reached without reading what comes before it.
 */
export interface ByteSource {
  /** Opens the bytes from `offset` (0: all of them). */
  open(offset: number): Promise<ReadableStream<Uint8Array>>;
  /** Whether `open` seeks rather than reading and dropping. */
  seeks: boolean;
}

/** One layer as every consumer sees it, whatever the source. */
export interface LayerDescription {
  /** The layer's manifest descriptor. */
  descriptor: Descriptor;
  /** How the blob is compressed; `undefined` for a media type we don't know. */
  compression: LayerCompression | undefined;
  /** The blob as stored (the bytes `descriptor.digest` names). */
  blob: ByteSource;
  /**
   * The uncompressed tar as stored, when it is: the blob itself for a plain
   * tar blob (`isBlob`), or a copy the source keeps; `undefined` when the
   * blob must be decompressed.
   */
  uncompressed: (ByteSource & { size: number; isBlob: boolean }) | undefined;
  /**
   * The uncompressed tar's length when it is known without reading a body;
   * the source is asked once, on the first call.
   */
  uncompressedSize(): Promise<number | undefined>;
}

/**
 * The one probe point: everything stage 4 and the sized plan need to know
 * about a layer of `image`, asked of the source once.
 *
 * @example
 * ```ts
 * import { describeLayer } from "./layer.ts";
 * import type { Image } from "./image.ts";
 * declare const image: Image;
 * const [first] = (await image.manifest()).layers;
 * const layer = await describeLayer(image, first);
 * const blob = await layer.blob.open(0);
 * ```
 */
export async function describeLayer(
  image: Image,
  descriptor: Descriptor,
): Promise<LayerDescription> {
  const access: LayerAccess = await image.layerAccess?.(descriptor) ?? {};
  const compression = layerCompression(descriptor.mediaType);
  const { openBlobFrom } = access;
  // From 0 the blob always comes through `openLayer`, the core every
  // wrapper sees; only a later offset takes the source's seek.
  const blob: ByteSource = {
    open: async (offset) => {
      if (offset > 0 && openBlobFrom) return await openBlobFrom(offset);
      const whole = await image.openLayer(descriptor);
      return offset === 0 ? whole : skipBytes(whole, offset);
    },
    seeks: openBlobFrom !== undefined,
  };
  let uncompressed: LayerDescription["uncompressed"];
  if (access.uncompressed) {
    const { size, openFrom } = access.uncompressed;
    uncompressed = {
      open: (offset) => openFrom(offset),
      seeks: true,
      size,
      isBlob: false,
    };
  } else if (compression === "none") {
    uncompressed = { ...blob, size: descriptor.size, isBlob: true };
  }
  let learnt: Promise<number | undefined> | undefined;
  return {
    descriptor,
    compression,
    blob,
    uncompressed,
    uncompressedSize: () =>
      learnt ??= uncompressed
        ? Promise.resolve(uncompressed.size)
        : Promise.resolve(access.uncompressedSize?.()),
  };
}

/**
 * An image that wraps `inner`, replacing some of its members and keeping
 * every other one, so that no capability a source has (`layerAccess`, a
 * docker archive's v1 form, anything later) is lost by forgetting to
 * forward it. Wrappers use this instead of building an `Image` by hand.
 *
 * @example Rename the errors of a source
 * ```ts
 * import { wrapImage } from "./layer.ts";
 * import type { Image } from "./image.ts";
 * declare const inner: Image;
 * const wrapped = wrapImage(inner, {
 *   openLayer: (layer) => inner.openLayer(layer),
 * });
 * ```
 */
export function wrapImage<T extends Image>(
  inner: T,
  overrides: Partial<Image>,
): T {
  return Object.assign(Object.create(inner) as T, overrides);
}
