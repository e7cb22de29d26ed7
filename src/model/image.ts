/**
 * The contract every image source meets, after go-containerregistry's
 * `v1.Image`: a manifest, the config's exact bytes, and each layer blob as a
 * stream opened on demand. Digests, v1 ids and verification are computed by
 * the save pipeline, not by sources.
 *
 * @module
 */

/** A content descriptor as it appears in a manifest or index. */
export interface Descriptor {
  /** Media type of the referenced content. */
  mediaType: string;
  /** `sha256:<hex>` of the referenced bytes. */
  digest: string;
  /** Byte length of the referenced bytes. */
  size: number;
  /** Where a foreign layer may be fetched from. */
  urls?: string[];
  /** Free-form annotations. */
  annotations?: Record<string, string>;
  /** Platform, on index entries. */
  platform?: Platform;
}

/** An image platform, as in an OCI index entry. */
export interface Platform {
  /** Operating system, e.g. `linux`. */
  os: string;
  /** CPU architecture, e.g. `amd64`. */
  architecture: string;
  /** CPU variant, e.g. `v8`. */
  variant?: string;
}

/** A Docker v2.2 or OCI image manifest; `layers` are oldest (base) first. */
export interface Manifest {
  /** Always 2. */
  schemaVersion: number;
  /** Docker v2.2 or OCI manifest media type; OCI allows it to be absent. */
  mediaType?: string;
  /** The config blob. */
  config: Descriptor;
  /** The layer blobs, base first. */
  layers: Descriptor[];
}

/**
 * What a source knows or can do beyond `Image.openLayer` for one layer.
 * Every member is optional; what is missing has a slower fallback.
 *
 * @example A file-backed source that can seek
 * ```ts
 * import type { LayerAccess } from "./image.ts";
 * declare function openFile(offset: number): Promise<ReadableStream<Uint8Array>>;
 * const access: LayerAccess = { openBlobFrom: openFile };
 * ```
 */
export interface LayerAccess {
  /**
   * Opens the blob as stored from a byte offset without reading what comes
   * before it (a file, an HTTP `Range` request). Without it, a ranged read
   * opens the blob and skips to the offset.
   */
  openBlobFrom?(offset: number): Promise<ReadableStream<Uint8Array>>;
  /**
   * The uncompressed tar's byte length, when the source can learn it
   * without reading the blob (asked only when uncompressed output needs
   * it). Without it, or when it answers `undefined`, uncompressed output
   * counts it in a first pass.
   */
  uncompressedSize?(): Promise<number | undefined>;
  /**
   * The layer's uncompressed tar as the source stores it (a docker
   * archive's `layer.tar`): its exact length and how to open it from an
   * offset. Uncompressed output reads it instead of the blob.
   */
  uncompressed?: {
    size: number;
    openFrom(offset: number): Promise<ReadableStream<Uint8Array>>;
  };
}

/**
 * An image, as the save pipeline reads it. Every method may be called more
 * than once; `openLayer` in particular is called again for a second pass or a
 * second tag, so a source must be able to reopen a blob.
 *
 * @example A minimal image over in-memory blobs
 * ```ts
 * import type { Image } from "./image.ts";
 * declare const manifest: import("./image.ts").Manifest;
 * declare const blobs: Map<string, Uint8Array<ArrayBuffer>>;
 * const image: Image = {
 *   rawManifest: async () => new TextEncoder().encode(JSON.stringify(manifest)),
 *   manifest: async () => manifest,
 *   rawConfig: async () => blobs.get(manifest.config.digest)!,
 *   openLayer: async (layer) => new Blob([blobs.get(layer.digest)!]).stream(),
 * };
 * ```
 */
export interface Image {
  /** The manifest's exact bytes. */
  rawManifest(): Promise<Uint8Array>;
  /** The manifest, parsed. */
  manifest(): Promise<Manifest>;
  /** The config blob's exact bytes; they are hashed as they are. */
  rawConfig(): Promise<Uint8Array>;
  /** Opens one of the manifest's layer blobs, as stored (usually gzip). */
  openLayer(layer: Descriptor): Promise<ReadableStream<Uint8Array>>;
  /**
   * What the source can do beyond `openLayer` for one layer: seek into the
   * blob, tell its uncompressed size, serve the uncompressed tar it stores.
   * Read only through `describeLayer()` (layer.ts), the one probe point;
   * without it, every layer takes the slow paths.
   */
  layerAccess?(layer: Descriptor): Promise<LayerAccess | undefined>;
}

/** Media types the pipeline understands. */
export const MEDIA_TYPES = {
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerManifestList:
    "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  dockerLayerTar: "application/vnd.docker.image.rootfs.diff.tar",
  dockerForeignLayerGzip:
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayerTar: "application/vnd.oci.image.layer.v1.tar",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  ociLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  ociForeignLayerTar: "application/vnd.oci.image.layer.nondistributable.v1.tar",
  ociForeignLayerGzip:
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
  ociForeignLayerZstd:
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
} as const;

/** How a layer blob is stored. */
export type LayerCompression = "none" | "gzip" | "zstd";

const LAYER_COMPRESSION: Record<string, LayerCompression> = {
  [MEDIA_TYPES.dockerLayerGzip]: "gzip",
  [MEDIA_TYPES.dockerLayerTar]: "none",
  [MEDIA_TYPES.dockerForeignLayerGzip]: "gzip",
  [MEDIA_TYPES.ociLayerTar]: "none",
  [MEDIA_TYPES.ociLayerGzip]: "gzip",
  [MEDIA_TYPES.ociLayerZstd]: "zstd",
  [MEDIA_TYPES.ociForeignLayerTar]: "none",
  [MEDIA_TYPES.ociForeignLayerGzip]: "gzip",
  [MEDIA_TYPES.ociForeignLayerZstd]: "zstd",
};

/**
 * The compression of a layer media type, or `undefined` for a type that is
 * not a layer we know.
 *
 * @example
 * ```ts
 * import { layerCompression } from "./image.ts";
 * layerCompression("application/vnd.oci.image.layer.v1.tar+gzip"); // "gzip"
 * ```
 */
export function layerCompression(
  mediaType: string,
): LayerCompression | undefined {
  return Object.hasOwn(LAYER_COMPRESSION, mediaType)
    ? LAYER_COMPRESSION[mediaType]
    : undefined;
}

/**
 * Whether a layer is foreign (docker) or non-distributable (OCI): listed in
 * `LayerSources` of manifest.json.
 *
 * @example
 * ```ts
 * import { isForeignLayer } from "./image.ts";
 * isForeignLayer("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"); // true
 * ```
 */
export function isForeignLayer(mediaType: string): boolean {
  return mediaType === MEDIA_TYPES.dockerForeignLayerGzip ||
    mediaType.startsWith("application/vnd.oci.image.layer.nondistributable.");
}
