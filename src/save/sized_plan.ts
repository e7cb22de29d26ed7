/**
 * The tarball's members with every size known before the first byte, where
 * that is possible without reading layer bodies: descriptor sizes in
 * `layers: "compressed"` mode, and in `"uncompressed"` mode sizes a source
 * knows (`Image.uncompressedSize`) or plain tar blobs. With them the total
 * length is known up front, and any byte range can be served by opening
 * only the members it touches.
 *
 * @module
 */

import { skipBytes } from "../_streams.ts";
import { sha256Hex } from "../digest.ts";
import { type Descriptor, type Image, layerCompression } from "../image.ts";
import type { SaveEntries, SaveOptions } from "../save.ts";
import {
  isDeferredEntry,
  isLayerEntry,
  type LayerEntry,
  LayerSizes,
  type PlannedEntry,
} from "./entries.ts";
import { openBlob, openLayerContent } from "./layers.ts";
import { planStream } from "./pipeline.ts";
import type { ConvertedImage } from "./v1.ts";

/** A member whose size is known and whose body can be opened at an offset. */
export interface SizedMember {
  /** Member name. */
  name: string;
  /** Body size. */
  size: number;
  /**
   * Opens the body from `offset`. From 0 the body is verified as `save()`
   * verifies it; from later offsets it cannot be hashed whole, so it is not.
   */
  open(offset: number): Promise<ReadableStream<Uint8Array>>;
}

/** A plan whose sizes are all known, with an identity for its bytes. */
export interface SizedPlan {
  /** The members, in order; `undefined` when a size needs a layer read. */
  members: SizedMember[] | undefined;
  /**
   * A strong validator of the output bytes: a digest over the options that
   * shape them, the tags, each manifest and config digest, and the v1 json.
   */
  etag: string;
}

/**
 * Plans a save and learns every member's size without reading a layer body.
 *
 * @example
 * ```ts
 * import { sizedPlan } from "./sized_plan.ts";
 * import type { Image } from "../image.ts";
 * declare const image: Image;
 * const { members, etag } = await sizedPlan([["app:v1", image]], { layers: "compressed" });
 * ```
 */
export async function sizedPlan(
  entries: SaveEntries,
  options: SaveOptions = {},
): Promise<SizedPlan> {
  const images: ConvertedImage[] = [];
  const planned: PlannedEntry[] = [];
  await planStream(entries, options, (image) => images.push(image))
    .pipeTo(
      new WritableStream({ write: (entry) => void planned.push(entry) }),
    );
  return {
    members: await sizeMembers(planned, options),
    etag: await etagOf(images, options),
  };
}

async function sizeMembers(
  planned: PlannedEntry[],
  options: SaveOptions,
): Promise<SizedMember[] | undefined> {
  const compressed = options.layers === "compressed";
  const verify = options.verify ?? true;
  const sizes = new LayerSizes();
  const members: SizedMember[] = [];
  for (const entry of planned) {
    if (isDeferredEntry(entry)) {
      const built = await entry.build(sizes);
      if (built) {
        members.push(bytesMember(built.name, built.body as Uint8Array));
      }
    } else if (!isLayerEntry(entry)) {
      members.push(bytesMember(entry.name, entry.body as Uint8Array));
    } else {
      const size = compressed
        ? entry.layer.size
        : await knownUncompressedSize(entry.image, entry.layer);
      if (size === undefined) return undefined;
      sizes.set(entry.layer, entry.diffId, size);
      members.push(layerMember(entry, size, compressed, verify));
    }
  }
  return members;
}

/**
 * A layer's uncompressed size when it is known without reading the blob.
 *
 * @example
 * ```ts
 * import { knownUncompressedSize } from "./sized_plan.ts";
 * import type { Image } from "../image.ts";
 * declare const image: Image;
 * await knownUncompressedSize(image, (await image.manifest()).layers[0]);
 * ```
 */
export async function knownUncompressedSize(
  image: Image,
  layer: Descriptor,
): Promise<number | undefined> {
  const known = await image.uncompressedSize?.(layer);
  if (known !== undefined) return known;
  return layerCompression(layer.mediaType) === "none" ? layer.size : undefined;
}

function bytesMember(name: string, body: Uint8Array): SizedMember {
  return {
    name,
    size: body.byteLength,
    open: (offset) =>
      Promise.resolve(
        new Blob([body.subarray(offset) as Uint8Array<ArrayBuffer>]).stream(),
      ),
  };
}

function layerMember(
  entry: LayerEntry,
  size: number,
  compressed: boolean,
  verify: boolean,
): SizedMember {
  const { image, layer, diffId } = entry;
  const asStored = compressed ||
    (layerCompression(layer.mediaType) === "none" &&
      !image.openUncompressedLayer);
  return {
    name: entry.name,
    size,
    open: async (offset) => {
      if (offset === 0) {
        return asStored
          ? await openBlob(image, layer, verify)
          : await openLayerContent(image, layer, diffId, {
            blobDigest: verify,
            diffId: verify,
            size,
          });
      }
      if (asStored && image.openLayerFrom) {
        return await image.openLayerFrom(layer, offset);
      }
      const whole = asStored
        ? await image.openLayer(layer)
        : await openLayerContent(image, layer, diffId, {
          blobDigest: false,
          diffId: false,
        });
      return skipBytes(whole, offset);
    },
  };
}

async function etagOf(
  images: ConvertedImage[],
  options: SaveOptions,
): Promise<string> {
  const identity = JSON.stringify({
    v: 1,
    format: options.format ?? "docker",
    layers: options.layers ?? "uncompressed",
    images: await Promise.all(images.map(async (image) => [
      image.tag,
      await sha256Hex(image.rawManifest),
      image.configHex,
      image.topId,
      await sha256Hex(
        new TextEncoder().encode(JSON.stringify(
          image.ancestry.map((v1) => [
            v1.id,
            typeof v1.json === "string"
              ? v1.json
              : new TextDecoder().decode(v1.json),
          ]),
        )),
      ),
    ])),
  });
  const hex = await sha256Hex(new TextEncoder().encode(identity));
  return `"${hex.slice(0, 40)}"`;
}
