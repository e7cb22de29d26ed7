/**
 * The members a plan is made of, between planning and tar writing: bytes
 * ready now, layers to open later, and small files built once the layers
 * before them have been sized.
 *
 * @module
 */

import type { Descriptor, Image } from "../model/image.ts";
import type { TarEntry } from "./tar_writer.ts";

/** A layer member whose body and size are resolved when it is reached. */
export interface LayerEntry {
  /** Member name, e.g. `<v1 id>/layer.tar` or `blobs/sha256/<hex>`. */
  name: string;
  /** The image to open the blob from. */
  image: Image;
  /** The layer's manifest descriptor. */
  layer: Descriptor;
  /** The layer's diff_id from the config. */
  diffId: string;
  /**
   * Written as stored whatever the layer mode: a blob of an artifact (an
   * attestation's statement) that is not a layer tar.
   */
  asStored?: boolean;
}

/**
 * A small member built when it is reached, from the layer sizes learnt by
 * then (an OCI manifest of uncompressed layers, whose name is its digest,
 * and the index naming it). `undefined` skips it (a blob already written).
 */
export interface DeferredEntry {
  /** Builds the member; called once, after every earlier member. */
  build: (sizes: LayerSizes) => Promise<TarEntry | undefined>;
}

/** A member as planned. */
export type PlannedEntry = TarEntry | LayerEntry | DeferredEntry;

/**
 * Whether a planned member is a layer still to be opened.
 *
 * @example
 * ```ts
 * import { isLayerEntry, type PlannedEntry } from "./entries.ts";
 * declare const entry: PlannedEntry;
 * if (isLayerEntry(entry)) console.log(entry.layer.digest);
 * ```
 */
export function isLayerEntry(entry: PlannedEntry): entry is LayerEntry {
  return "layer" in entry;
}

/**
 * Whether a planned member is built late.
 *
 * @example
 * ```ts
 * import { isDeferredEntry, type PlannedEntry } from "./entries.ts";
 * declare const entry: PlannedEntry;
 * import { LayerSizes } from "./entries.ts";
 * if (isDeferredEntry(entry)) await entry.build(new LayerSizes());
 * ```
 */
export function isDeferredEntry(entry: PlannedEntry): entry is DeferredEntry {
  return "build" in entry;
}

/**
 * Uncompressed layer sizes learnt during one `save()`, by blob digest and
 * diff_id: each layer is sized once, and late members read the sizes.
 *
 * @example
 * ```ts
 * import { LayerSizes } from "./entries.ts";
 * const sizes = new LayerSizes();
 * sizes.set({ digest: "sha256:…" }, "sha256:…", 10240);
 * ```
 */
export class LayerSizes {
  #sizes = new Map<string, number>();

  /** The size learnt for a layer, if any. */
  get(layer: Pick<Descriptor, "digest">, diffId: string): number | undefined {
    return this.#sizes.get(`${layer.digest} ${diffId}`);
  }

  /** Records a layer's size. */
  set(layer: Pick<Descriptor, "digest">, diffId: string, size: number): void {
    this.#sizes.set(`${layer.digest} ${diffId}`, size);
  }
}

/**
 * A member holding the given bytes.
 *
 * @example
 * ```ts
 * import { bytesEntry } from "./entries.ts";
 * bytesEntry("VERSION", new TextEncoder().encode("1.0"));
 * ```
 */
export function bytesEntry(name: string, body: Uint8Array): TarEntry {
  return { name, size: body.byteLength, body };
}

/**
 * A member holding the UTF-8 bytes of a text.
 *
 * @example
 * ```ts
 * import { textEntry } from "./entries.ts";
 * textEntry("repositories", "{}");
 * ```
 */
export function textEntry(name: string, text: string): TarEntry {
  return bytesEntry(name, new TextEncoder().encode(text));
}
