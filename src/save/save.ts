/**
 * `save()`: the docker-save tarball of `[tag, image]` pairs as one
 * pull-based `ReadableStream`, composed of the stages in `save/`.
 *
 * @module
 */

import type { Image } from "../model/image.ts";
import type { ImageIndex } from "../model/image_index.ts";
import {
  type LayerMode,
  resolveOptions,
  type SaveFormat,
  type SaveOptions,
} from "./options.ts";
import { planSave } from "./pipeline.ts";
import type { ProgressListener, ProgressUpdate } from "./progress.ts";
import { writePlan } from "./write.ts";

export type {
  LayerMode,
  ProgressListener,
  ProgressUpdate,
  SaveFormat,
  SaveOptions,
};

/**
 * `[tag, image]` pairs in order; a `Map<string, Image>` works too. An image
 * index (a multi-platform image) may stand in for an image in the `oci` and
 * `docker+oci` formats.
 */
export type SaveEntries = Iterable<readonly [string, Image | ImageIndex]>;

/**
 * The `docker save`-compatible tarball of the given `[tag, image]` pairs,
 * byte-identical to containerregistry's `multi_image_tarball`. Nothing is read
 * from an image until the consumer pulls; bad input or a failed check errors
 * the stream with a `DockerSaveError` before the tarball's end is written.
 *
 * @example Save an OCI layout image to a file
 * ```ts
 * import { fromOciLayout, save } from "../../mod.ts";
 * const image = await fromOciLayout("./oci", "app");
 * const tar = save([["registry.example.com/app:v1", image]]);
 * await tar.pipeTo(new WritableStream()); // or: return new Response(tar)
 * ```
 */
export function save(
  entries: SaveEntries,
  options: SaveOptions = {},
): ReadableStream<Uint8Array> {
  if (entries == null || typeof entries[Symbol.iterator] !== "function") {
    throw new TypeError(
      "Cannot save: entries is not an iterable of [tag, image] pairs",
    );
  }
  const settings = resolveOptions(options);
  // Planned on the first read, so nothing is asked of an image before then.
  return writePlan(() => planSave(entries, settings), settings);
}
