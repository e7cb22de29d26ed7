/**
 * The options of a save, read once: `save()`, `saveToFile()`, `saveSize()`
 * and `saveResponse()` take `SaveOptions`, resolve them here into one
 * `SaveSettings` with every default applied, and every stage reads that.
 *
 * @module
 */

import { layerConcurrency } from "./prefetch.ts";
import type { ProgressListener } from "./progress.ts";

/** How layers are stored in the tarball. */
export type LayerMode = "uncompressed" | "compressed";

/** The tarball layouts `save()` writes. */
export type SaveFormat = "docker" | "oci" | "docker+oci";

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
  /**
   * Layers downloaded at once, as docker's `max-concurrent-downloads`. For
   * a stream, the blobs of the next layers are fetched ahead into a buffer
   * of at most 16 MiB in all while the current one is written; for
   * `saveToFile()`, when every member's size is known before its body, each
   * layer is written into its place in the file as it arrives. 1 reads one
   * layer after another. The bytes are the same whatever the value.
   * @default {3}
   */
  concurrency?: number;
}

/** `SaveOptions` resolved once, every default applied: what the stages read. */
export interface SaveSettings {
  /** Verify blobs and diff_ids while streaming. */
  verify: boolean;
  /** Layers are stored as their blobs (`layers: "compressed"`). */
  compressed: boolean;
  /** The tarball's layout. */
  format: SaveFormat;
  /** The platform of an index that `manifest.json` names (`docker+oci`). */
  defaultPlatform: string;
  /** Told how far each layer has been read. */
  onProgress: ProgressListener | undefined;
  /** Layers downloaded at once (1: one after another). */
  concurrency: number;
}

/**
 * The settings for `options`, each default applied once.
 *
 * @example
 * ```ts
 * import { resolveOptions } from "./options.ts";
 * resolveOptions({ layers: "compressed" }).compressed; // true
 * ```
 */
export function resolveOptions(options: SaveOptions = {}): SaveSettings {
  return {
    verify: options.verify ?? true,
    compressed: options.layers === "compressed",
    format: options.format ?? "docker",
    defaultPlatform: options.defaultPlatform ?? "linux/amd64",
    onProgress: options.onProgress,
    concurrency: layerConcurrency(options.concurrency),
  };
}
