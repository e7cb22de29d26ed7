/**
 * In-memory images: from a manifest, a config and blobs as they are, or built
 * from layer tars and a config (digests, diff_ids and manifest computed).
 * For tests, demos and images made on the fly.
 *
 * @module
 */

import { sha256Hex } from "../model/digest.ts";
import { DockerSaveError } from "../model/errors.ts";
import {
  type Descriptor,
  type Image,
  type Manifest,
  MEDIA_TYPES,
} from "../model/image.ts";

/** The parts of an in-memory image, as stored. */
export interface MemoryImageParts {
  /** The manifest: its exact bytes, or a value to serialise. */
  manifest: Uint8Array | Manifest;
  /** The config blob's exact bytes. */
  config: Uint8Array;
  /** Layer blobs by digest. */
  blobs: Map<string, Uint8Array> | Record<string, Uint8Array>;
}

/**
 * An image over blobs held in memory, served exactly as given (nothing is
 * checked here; `save()` verifies).
 *
 * @example
 * ```ts
 * import { fromMemory } from "./memory.ts";
 * declare const manifest: Uint8Array, config: Uint8Array, layer: Uint8Array;
 * const image = fromMemory({ manifest, config, blobs: { "sha256:…": layer } });
 * ```
 */
export function fromMemory(parts: MemoryImageParts): Image {
  const rawManifest = parts.manifest instanceof Uint8Array
    ? parts.manifest
    : new TextEncoder().encode(JSON.stringify(parts.manifest));
  const blobs = parts.blobs instanceof Map
    ? parts.blobs
    : new Map(Object.entries(parts.blobs));
  const openBlob = (layer: Descriptor, offset: number) => {
    const blob = blobs.get(layer.digest);
    if (!blob) {
      return Promise.reject(
        new DockerSaveError(
          "BLOB_NOT_FOUND",
          `Cannot open layer ${layer.digest}: no such blob in memory`,
        ),
      );
    }
    return Promise.resolve(chunkedStream(blob.subarray(offset)));
  };
  return {
    rawManifest: () => Promise.resolve(rawManifest),
    manifest: () => {
      try {
        return Promise.resolve(
          JSON.parse(new TextDecoder().decode(rawManifest)),
        );
      } catch (error) {
        return Promise.reject(
          new DockerSaveError(
            "BAD_MANIFEST",
            `Cannot read in-memory manifest: ${(error as Error).message}`,
          ),
        );
      }
    },
    rawConfig: () => Promise.resolve(parts.config),
    openLayer: (layer: Descriptor) => openBlob(layer, 0),
    layerAccess: (layer: Descriptor) =>
      Promise.resolve({
        openBlobFrom: (offset: number) => openBlob(layer, offset),
      }),
  };
}

/** Chunk size of in-memory blob streams, as a file read would give. */
const CHUNK_SIZE = 64 * 1024;

// Pull-based, in file-sized chunks, so memory images behave like files.
function chunkedStream(bytes: Uint8Array): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= bytes.byteLength) return controller.close();
      controller.enqueue(bytes.subarray(offset, offset + CHUNK_SIZE));
      offset += CHUNK_SIZE;
    },
  }, { highWaterMark: 0 });
}

/** What `buildImage` makes an image from. */
export interface BuildImageOptions {
  /** Uncompressed layer tars, base first. */
  layers: Uint8Array[];
  /**
   * Config fields; `rootfs` is filled in. Serialised with `JSON.stringify`.
   * @default {{ architecture: "amd64", os: "linux" }}
   */
  config?: Record<string, unknown>;
  /**
   * Store layers gzip-compressed (`CompressionStream`; its bytes may differ
   * between runtimes) or as plain tars (the same bytes everywhere).
   * @default {"none"}
   */
  compression?: "none" | "gzip";
  /**
   * Manifest and config media types.
   * @default {"oci"}
   */
  mediaTypes?: "oci" | "docker";
}

/**
 * Builds an image from layer tars and a config: diff_ids, blob digests and
 * the manifest are computed.
 *
 * @example
 * ```ts
 * import { buildImage } from "./memory.ts";
 * declare const layerTar: Uint8Array;
 * const image = await buildImage({ layers: [layerTar], config: { os: "linux", architecture: "amd64" } });
 * ```
 */
export async function buildImage(options: BuildImageOptions): Promise<Image> {
  const oci = (options.mediaTypes ?? "oci") === "oci";
  const gzip = options.compression === "gzip";
  const blobs = new Map<string, Uint8Array>();
  const diffIds: string[] = [];
  const layers: Descriptor[] = [];
  for (const tar of options.layers) {
    diffIds.push(`sha256:${await sha256Hex(tar)}`);
    const blob = gzip ? await gzipBytes(tar) : tar;
    const digest = `sha256:${await sha256Hex(blob)}`;
    blobs.set(digest, blob);
    layers.push({
      mediaType: oci
        ? (gzip ? MEDIA_TYPES.ociLayerGzip : MEDIA_TYPES.ociLayerTar)
        : (gzip ? MEDIA_TYPES.dockerLayerGzip : MEDIA_TYPES.dockerLayerTar),
      size: blob.byteLength,
      digest,
    });
  }
  const config = new TextEncoder().encode(JSON.stringify({
    ...(options.config ?? { architecture: "amd64", os: "linux" }),
    rootfs: { type: "layers", diff_ids: diffIds },
  }));
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: oci ? MEDIA_TYPES.ociManifest : MEDIA_TYPES.dockerManifest,
    config: {
      mediaType: oci ? MEDIA_TYPES.ociConfig : MEDIA_TYPES.dockerConfig,
      size: config.byteLength,
      digest: `sha256:${await sha256Hex(config)}`,
    },
    layers,
  };
  return fromMemory({ manifest, config, blobs });
}

async function gzipBytes(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
