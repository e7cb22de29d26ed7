/**
 * `save()`: the docker-save tarball of `[tag, image]` pairs as one
 * pull-based `ReadableStream`, composed of the stages in `save/`.
 *
 * @module
 */

import type { Image } from "../model/image.ts";
import type { ImageIndex } from "../model/image_index.ts";
import type { LayerMode } from "./layers.ts";
import { planSave } from "./pipeline.ts";
import type { SaveFormat } from "./plan.ts";
import type { ProgressListener, ProgressUpdate } from "./progress.ts";
import { writePlan } from "./write.ts";

/** Options for `save()`. */
export interface SaveOptions {
  /**
   * Verify every blob against its descriptor (sha256, size) and every
   * uncompressed layer against its diff_id while streaming. Turning it off
   * saves the hashing but lets a corrupt or substituted blob through into a
   * tarball that looks complete.
   * @default {true}
   */
  verify?: boolean;
  /**
   * `"uncompressed"` (the reference's format): each `layer.tar` holds the
   * layer tar itself, gunzipped while streaming. `"compressed"`: each
   * `layer.tar` holds the blob as stored (gzip or zstd), sized from its
   * descriptor, in one pass; docker, podman and skopeo decompress it on load.
   * @default {"uncompressed"}
   */
  layers?: LayerMode;
  /**
   * The tarball's layout. `"docker"`: the reference's format, byte-exact.
   * `"oci"`: an OCI image layout tarball (`oci-layout`, `index.json`,
   * `blobs/sha256/`), with an `org.opencontainers.image.ref.name` per tag.
   * `"docker+oci"`: both at once, each blob stored once, for classic
   * `docker load` and the containerd store alike.
   * @default {"docker"}
   */
  format?: SaveFormat;
  /**
   * Which platform of an image index `manifest.json` names in the
   * `docker+oci` format (classic `docker load` and podman load that one),
   * `os/arch[/variant]`; the first image of the index when none matches.
   * @default {"linux/amd64"}
   */
  defaultPlatform?: string;
  /**
   * Told how far each layer has been read, as the tarball is pulled: an
   * observer only, the bytes are the same with or without it.
   *
   * @example Log each finished layer
   * ```ts
   * import { save } from "../../mod.ts";
   * import type { Image } from "../../mod.ts";
   * declare const image: Image;
   * save([["app:v1", image]], {
   *   onProgress: (u) => u.state === "done" && console.error(u.name, u.total),
   * });
   * ```
   */
  onProgress?: ProgressListener;
}

export type { LayerMode, ProgressListener, ProgressUpdate, SaveFormat };

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
  // Planned on the first read, so nothing is asked of an image before then.
  return writePlan(() => planSave(entries, options), options);
}
